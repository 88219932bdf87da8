//! The management node's network side: one listener for everything that talks to it (peer
//! management nodes, data and SQL nodes, admin clients), each connection a task.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_common::catalog::{CatalogOp, CatalogOutcome};
use cairn_common::ids::NodeId;
use cairn_control::config::{ClusterConfig, NodeKind};
use cairn_proto::data::{decode, encode};
use cairn_proto::link::{FrameSender, Identity, Link, LinkError};
use cairn_proto::pb::{AdminReply, CatalogUpdate, DdlResponse, Frame, Hello, Registered, frame::Body};
use cairn_proto::Role;
use cairn_replication::decode_message;
use tokio::net::{TcpListener, TcpStream};

use crate::admin;
use crate::control_loop::{ControlEvent, ControlHandle};
use crate::nodes::{LiveNode, NodeChannel, NodeTable};
use cairn_proto::recovery::RecoveryMessage;

/// How long a DDL may wait for the management nodes to commit it.
const DDL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a DDL waits for connected SQL nodes to acknowledge the new catalog.
const SCHEMA_ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on a Raft message from a peer management node.
const MAX_RAFT_MESSAGE: usize = 64 << 20;

pub struct Shared {
    pub config: ClusterConfig,
    pub identity: Identity,
    pub control: ControlHandle,
    pub nodes: NodeTable,
    /// Backup progress reported by data nodes, for the START BACKUP waiting on it.
    pub backup_events: tokio::sync::broadcast::Sender<cairn_proto::recovery::BackupEvent>,
    /// Backup ids this management node handed out (data nodes report the ones on their disks).
    pub last_backup_id: std::sync::atomic::AtomicU32,
    /// Notified by SHUTDOWN once the data nodes stopped: the management node exits.
    pub shutdown: tokio::sync::Notify,
    /// A connection to the management leader, for forwarding DDL from a follower.
    pub forward: tokio::sync::Mutex<Option<(u32, cairn_proto::RpcClient)>>,
}

impl Shared {
    pub fn new(config: ClusterConfig, identity: Identity, control: ControlHandle) -> Shared {
        Shared {
            config,
            identity,
            control,
            nodes: NodeTable::default(),
            forward: Default::default(),
            backup_events: tokio::sync::broadcast::channel(1024).0,
            last_backup_id: Default::default(),
            shutdown: tokio::sync::Notify::new(),
        }
    }
}

/// Decides an arbitration request: here if this node leads, else through the leader.
pub async fn arbitrate(shared: &Shared, request: &cairn_proto::pb::ArbitrationRequest) -> Result<bool, String> {
    let deadline = tokio::time::Instant::now() + DDL_TIMEOUT;
    loop {
        let leader = shared.control.leader_id();
        if leader == shared.identity.node_id {
            let command = cairn_control::ControlCommand::Arbitrate { group: request.group, epoch: request.epoch, node: request.node };
            return match shared.control.propose_command(command, DDL_TIMEOUT).await {
                Ok((cairn_control::ControlOutcome::Arbitration { granted }, _)) => {
                    tracing::info!(group = request.group, epoch = request.epoch, node = request.node, granted, "arbitration");
                    Ok(granted)
                }
                Ok(_) => Err("unexpected outcome".into()),
                Err(e) => Err(e.message),
            };
        }
        if leader != 0 {
            if let Ok(client) = leader_client(shared, leader).await {
                if let Ok(Body::ArbitrationReply(reply)) =
                    client.call(Body::ArbitrationRequest(request.clone()), DDL_TIMEOUT).await
                {
                    return if reply.reason.is_empty() { Ok(reply.granted) } else { Err(reply.reason) };
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err("no management leader is reachable to arbitrate".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn leader_client(shared: &Shared, leader: u32) -> Result<cairn_proto::RpcClient, String> {
    let mut forward = shared.forward.lock().await;
    if let Some((id, client)) = forward.as_ref() {
        if *id == leader && !client.is_closed() {
            return Ok(client.clone());
        }
    }
    let address = shared
        .config
        .mgmd(NodeId(leader))
        .map(|m| format!("{}:{}", m.host_name, m.port))
        .ok_or("the leader is not in the config")?;
    let link = cairn_proto::connect(&address, &shared.identity).await.map_err(|e| e.to_string())?;
    let (client, _) = cairn_proto::RpcClient::new(link);
    *forward = Some((leader, client.clone()));
    Ok(client)
}

async fn answer_arbitration(shared: &Shared, sender: &FrameSender, request_id: u64, request: &cairn_proto::pb::ArbitrationRequest) {
    let reply = match arbitrate(shared, request).await {
        Ok(granted) => cairn_proto::pb::ArbitrationReply { granted, reason: String::new() },
        Err(reason) => cairn_proto::pb::ArbitrationReply { granted: false, reason },
    };
    let _ = sender.send(Frame { request_id, body: Some(Body::ArbitrationReply(reply)) }).await;
}

/// Commits a catalog op: here if this node leads, else through the leader. Returns the
/// outcome and the catalog version that includes it.
pub async fn commit_ddl(shared: &Shared, op: CatalogOp) -> cairn_common::Result<(CatalogOutcome, u64)> {
    let deadline = tokio::time::Instant::now() + DDL_TIMEOUT;
    loop {
        let leader = shared.control.leader_id();
        if leader == shared.identity.node_id {
            return shared.control.propose(op, DDL_TIMEOUT).await;
        }
        if leader != 0 {
            match forward_ddl(shared, leader, &op).await {
                Ok(result) => return result,
                Err(problem) => tracing::debug!(leader, %problem, "forwarding DDL failed; retrying"),
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(cairn_common::Error::temporary("no management leader is reachable; DDL is unavailable"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn forward_ddl(shared: &Shared, leader: u32, op: &CatalogOp) -> Result<cairn_common::Result<(CatalogOutcome, u64)>, String> {
    let client = leader_client(shared, leader).await?;
    let reply = client
        .call(Body::DdlRequest(cairn_proto::pb::DdlRequest { op: encode(op) }), DDL_TIMEOUT)
        .await
        .map_err(|e| e.to_string())?;
    let Body::DdlResponse(response) = reply else { return Err("unexpected answer".into()) };
    let outcome: cairn_common::Result<CatalogOutcome> = decode(&response.outcome).map_err(|e| e.to_string())?;
    Ok(outcome.map(|o| (o, response.catalog_version)))
}

pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let shared = shared.clone();
                tokio::spawn(async move { handle_connection(stream, shared).await });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn admit(hello: &Hello, shared: &Shared) -> Result<(), String> {
    let role = Role::try_from(hello.role).unwrap_or(Role::Unspecified);
    let id = NodeId(hello.node_id);
    let configured = shared.config.role_of(id);
    let ok = match role {
        Role::Admin => true,
        Role::Mgmd => configured == Some(NodeKind::Mgmd),
        Role::Datad => configured == Some(NodeKind::Datad),
        Role::Sqld => configured == Some(NodeKind::Sqld),
        Role::Unspecified => false,
    };
    if !ok {
        return Err(format!("node id {} is not configured as a {:?} node", hello.node_id, role));
    }
    if matches!(role, Role::Datad | Role::Sqld) && shared.nodes.is_connected(hello.node_id) {
        return Err(format!("node id {} is already connected", hello.node_id));
    }
    Ok(())
}

async fn handle_connection(stream: TcpStream, shared: Arc<Shared>) {
    let peer = stream.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let admin_password = shared.config.cluster.admin_password.as_deref();
    let link = match cairn_proto::accept_admin(stream, &shared.identity, admin_password, |hello| admit(hello, &shared)).await {
        Ok(link) => link,
        // Refusals (no cluster secret, an admin client included: `cairn mgm` proves the secret
        // like every node; a certificate that does not name the claimed node), failed TLS
        // handshakes and timeouts are already in the audit trail: `cairn_proto::accept` logs them.
        Err(e @ (LinkError::Refused(_) | LinkError::Tls(_) | LinkError::Timeout)) => {
            tracing::debug!(peer = %peer, error = %e, "management connection refused");
            return;
        }
        Err(e) => {
            tracing::warn!(target: "audit", event = "handshake_refused", peer = %peer, error = %e, "management connection refused");
            return;
        }
    };
    match link.peer.role {
        Role::Mgmd => peer_session(link, shared).await,
        Role::Datad | Role::Sqld => node_session(link, shared).await,
        Role::Admin => admin_session(link, &shared).await,
        Role::Unspecified => {}
    }
}

/// A peer management node: Raft messages go straight to the control loop; DDL it forwards
/// (because this node leads) is committed and answered.
async fn peer_session(mut link: Link, shared: Arc<Shared>) {
    while let Some(frame) = link.receiver.recv().await {
        match frame.body {
            Some(Body::Raft(raft)) => match decode_message(&raft.message, MAX_RAFT_MESSAGE) {
                Ok(message) => {
                    if !shared.control.send(ControlEvent::Raft(message)) {
                        return;
                    }
                }
                Err(e) => tracing::warn!(peer = link.peer.node_id, error = %e, "dropped an undecodable raft message"),
            },
            Some(Body::DdlRequest(request)) => {
                let sender = link.sender.clone();
                let shared = shared.clone();
                tokio::spawn(async move { answer_ddl(&shared, &sender, frame.request_id, &request.op).await });
            }
            Some(Body::ArbitrationRequest(request)) => {
                let sender = link.sender.clone();
                let shared = shared.clone();
                tokio::spawn(async move { answer_arbitration(&shared, &sender, frame.request_id, &request).await });
            }
            _ => {}
        }
    }
}

async fn answer_ddl(shared: &Shared, sender: &FrameSender, request_id: u64, op: &[u8]) {
    let result = match decode::<CatalogOp>(op) {
        Ok(op) => commit_ddl(shared, op).await,
        Err(e) => Err(e),
    };
    if let Ok((_, version)) = &result {
        // Answer once every SQL node connected here runs with the new catalog, so that the
        // next statement on any SQL node sees the change. A node that does not acknowledge in
        // time (hung) does not hold DDL up for ever.
        let deadline = tokio::time::Instant::now() + SCHEMA_ACK_TIMEOUT;
        while !shared.nodes.sql_nodes_have(*version) && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !shared.nodes.sql_nodes_have(*version) {
            tracing::warn!(version, "some SQL nodes did not acknowledge the new catalog in time");
        }
    }
    let (outcome, version) = match result {
        Ok((outcome, version)) => (Ok(outcome), version),
        Err(e) => (Err(e), 0),
    };
    let response = DdlResponse { outcome: encode(&outcome), catalog_version: version };
    reply(sender, request_id, Body::DdlResponse(response)).await;
}

async fn reply(sender: &FrameSender, request_id: u64, body: Body) -> bool {
    sender.send(Frame { request_id, body: Some(body) }).await.is_ok()
}

/// A data or SQL node: registration, heartbeats, DDL, and catalog pushes.
async fn node_session(mut link: Link, shared: Arc<Shared>) {
    let node_id = link.peer.node_id;
    let peer_host = link.peer.address.map(|a| a.ip().to_string()).unwrap_or_default();
    // The first frame must be the registration.
    let Some(first) = link.receiver.recv().await else { return };
    let Some(Body::Register(register)) = first.body else {
        tracing::warn!(node = node_id, "a node spoke before registering; closing");
        return;
    };
    let live = LiveNode {
        role: link.peer.role,
        peer_host,
        address: register.address.clone(),
        software_version: register.software_version.clone(),
        connected_at: Instant::now(),
        last_heartbeat: Instant::now(),
        status: None,
        channel: Some(NodeChannel::new(link.sender.clone())),
        stopping: false,
        catalog_version: 0,
    };
    let channel = live.channel.clone();
    if !shared.nodes.connect(node_id, live) {
        tracing::warn!(node = node_id, "refused a second registration of the same node id");
        return;
    }
    tracing::info!(node = node_id, role = ?link.peer.role, address = %register.address, "node registered");
    let registered = Registered { config: shared.config.text.clone(), leader_hint: shared.control.leader_id() };
    if reply(&link.sender, first.request_id, Body::Registered(registered)).await {
        let pusher = tokio::spawn(push_catalog(link.sender.clone(), shared.control.catalog.clone()));
        while let Some(frame) = link.receiver.recv().await {
            match frame.body {
                Some(Body::Heartbeat(hb)) => shared.nodes.heartbeat(node_id, hb.status),
                Some(Body::Recovery(recovery)) => match RecoveryMessage::decode(&recovery.body) {
                    Ok(message) => {
                        let unanswered = match &channel {
                            Some(channel) if frame.request_id != 0 => channel.deliver(frame.request_id, message),
                            _ => Err(message),
                        };
                        match unanswered {
                            Ok(()) => {}
                            Err(RecoveryMessage::BackupEvent(event)) => {
                                let _ = shared.backup_events.send(event);
                            }
                            Err(other) => tracing::debug!(node = node_id, message = ?other, "ignored an unexpected recovery message"),
                        }
                    }
                    Err(e) => tracing::warn!(node = node_id, error = %e, "dropped an undecodable recovery message"),
                },
                Some(Body::CatalogAck(ack)) => shared.nodes.ack_catalog(node_id, ack.version),
                Some(Body::ArbitrationRequest(request)) => {
                    let sender = link.sender.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move { answer_arbitration(&shared, &sender, frame.request_id, &request).await });
                }
                Some(Body::DdlRequest(request)) => {
                    let sender = link.sender.clone();
                    let shared = shared.clone();
                    tokio::spawn(async move { answer_ddl(&shared, &sender, frame.request_id, &request.op).await });
                }
                Some(other) => tracing::debug!(node = node_id, body = ?other, "ignored an unexpected frame"),
                None => {}
            }
        }
        pusher.abort();
    }
    shared.nodes.disconnect(node_id);
    tracing::info!(node = node_id, "node disconnected");
}

/// Sends the catalog now and after every change, newest only (a slow node skips versions).
async fn push_catalog(sender: FrameSender, mut catalog: tokio::sync::watch::Receiver<std::sync::Arc<cairn_common::catalog::Catalog>>) {
    loop {
        let current = catalog.borrow_and_update().clone();
        let update = CatalogUpdate { version: current.version, catalog: encode(current.as_ref()) };
        if sender.send(Frame { request_id: 0, body: Some(Body::CatalogUpdate(update)) }).await.is_err() {
            return;
        }
        if catalog.changed().await.is_err() {
            return;
        }
    }
}

/// The answer to a command that changes the cluster from a client without the admin credential.
const ADMIN_CREDENTIAL_NEEDED: &str =
    "* 1: Access denied\n*   this command needs the admin credential (AdminPassword): give cairn mgm --admin-password, CAIRN_ADMIN_PASSWORD or --admin-password-file";

/// With an AdminPassword configured, only clients that proved it may change the cluster; without
/// one, the cluster secret is enough (as before the setting existed).
fn admin_allowed(link: &Link, shared: &Shared) -> bool {
    shared.config.cluster.admin_password.is_none() || link.peer.admin_credential
}

async fn admin_session(mut link: Link, shared: &Arc<Shared>) {
    while let Some(frame) = link.receiver.recv().await {
        let Some(Body::AdminCommand(command)) = frame.body else { continue };
        tracing::info!(target: "audit", event = "admin_command", node = link.peer.node_id, command = %command.command, "admin command");
        let (text, ok) = match admin::parse(&command.command) {
            Ok(parsed) if admin::changes_state(&parsed) && !admin_allowed(&link, shared) => {
                tracing::warn!(
                    target: "audit",
                    event = "admin_command_refused",
                    node = link.peer.node_id,
                    peer = ?link.peer.address,
                    command = %command.command,
                    "admin command refused: no admin credential"
                );
                (ADMIN_CREDENTIAL_NEEDED.to_string(), false)
            }
            Ok(parsed) if crate::operations::is_operation(&parsed) => crate::operations::run(&parsed, shared).await,
            Ok(parsed) => {
                let nodes = shared.nodes.snapshot();
                let catalog = shared.control.catalog.borrow().clone();
                let interval = shared.config.cluster.heartbeat_interval_db_api_ms;
                let view = admin::View {
                    config: &shared.config,
                    nodes: &nodes,
                    catalog: &catalog,
                    mgm_leader: shared.control.leader_id(),
                    heartbeat_timeout: Duration::from_millis((4 * interval).max(3000)),
                };
                (admin::execute(&parsed, &view), true)
            }
            Err(message) => (message, false),
        };
        if !reply(&link.sender, frame.request_id, Body::AdminReply(AdminReply { text, ok })).await {
            return;
        }
    }
}
