//! # cairn-datad: the data node (NDB's ndbd)
//!
//! A data node belongs to one node group of `NoOfReplicas` data nodes. The node group is one
//! Raft group (raft-rs via `cairn-replication`): its leader is the primary replica. The node
//! holds every partition of every table that maps to its node group, in RAM
//! (`cairn-storage`), and writes its Raft log to its data directory (the redo log).
//!
//! Start-up: register with a management node (proving the cluster secret), take the config and
//! the catalog it pushes, open the Raft log, replay it into the store, join the node group's
//! Raft group, and serve.
//!
//! Serving (see [`node_group`]): SQL nodes send reads and write batches; the leader answers
//! reads after confirming its leadership (a lease, or a heartbeat round), and evaluates writes
//! against its state plus the writes it has proposed but not applied, then proposes the
//! resulting write set; it answers once the entry is committed (in the Raft log of a majority,
//! fsynced) and applied. A node that is not the leader answers "not leader, try node N".
//!
//! Thin shell: [`node_group::NodeGroupLoop`] runs the sans-IO replica and store on one thread;
//! this module owns sockets, files and timers.
//!
//! Transactions: the loop also runs the transactions of its node group as their leader (row
//! locks, each transaction's uncommitted writes, one- and two-phase commit entries, resolving
//! prepared transactions whose coordinator died through their decision group), see
//! `cairn_storage::txn` and [`node_group`].
//!
//! Not yet here: local checkpoints (so the log is replayed from its start on restart),
//! arbitration for two-replica node groups, node-restart commands, follower reads.

pub mod node_group;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_common::ids::NodeId;
use cairn_mgmd::client::{ManagementClient, raft_outbound};
use cairn_proto::data::{DataRequestBody, decode, encode};
use cairn_proto::link::{FrameSender, Identity, Link};
use cairn_proto::pb::{DataResponse, Frame, Hello, frame::Body};
use cairn_proto::{Role, accept};
use cairn_replication::wal::{FileLogStore, WalIdentity, WalOptions, group_dir};
use cairn_replication::{Replica, ReplicaConfig, decode_message};
use node_group::{Event, NodeGroupLoop};
use tokio::net::{TcpListener, TcpStream};

const MAX_RAFT_MESSAGE: usize = 64 << 20;

#[derive(Clone, Debug)]
pub struct DatadOptions {
    pub node_id: u32,
    pub mgm: Vec<String>,
    pub secret: String,
    pub data_dir: Option<PathBuf>,
}

type Inbox = std::sync::mpsc::Sender<Event>;

pub async fn run(options: DatadOptions) -> anyhow::Result<()> {
    let identity = Identity {
        node_id: options.node_id,
        role: Role::Datad,
        secret: options.secret.clone(),
        software_version: cairn_mgmd::admin::SOFTWARE_VERSION.to_string(),
    };
    // The address we serve on comes from the config, which comes from the management node.
    let management =
        ManagementClient::connect(options.mgm.clone(), identity.clone(), String::new(), Duration::from_secs(120)).await?;
    let config = management.config.clone();
    let me = config
        .data_node(NodeId(options.node_id))
        .with_context(|| format!("node id {} is not an [[ndbd]] in the cluster config", options.node_id))?
        .clone();
    let data_dir = options
        .data_dir
        .clone()
        .or_else(|| me.data_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(format!("datad-{}", me.id)));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    let listener = TcpListener::bind((me.host.as_str(), me.port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (is the port taken?)", me.host, me.port))?;

    // Wait for the first catalog push before replaying the log: applying needs table definitions.
    if !management.wait_for_catalog(0, Duration::from_secs(30)).await {
        bail!("the management node sent no catalog");
    }
    let group = me.node_group;
    let group_id = group.0 as u64;
    let wal_identity = WalIdentity { cluster_id: cairn_mgmd::cluster_id(&config), node_id: me.id.0 as u64, group_id };
    let mut wal_options = WalOptions::new(wal_identity);
    wal_options.sync = config.cluster.disk_sync == cairn_control::config::DiskSync::Commit;
    let store = FileLogStore::open(&group_dir(&data_dir, group_id), wal_options)
        .map_err(|e| anyhow::anyhow!("the Raft log in {} cannot be used: {e}", data_dir.display()))?;
    let members = config.members_of(group);
    let voters: Vec<u64> = members.iter().map(|d| d.id.0 as u64).collect();
    let (tick, heartbeat_tick, election_tick) = cairn_mgmd::raft_timing(config.cluster.heartbeat_interval_db_db_ms);
    let mut replica_config = ReplicaConfig::new(group_id, me.id.0 as u64, voters.clone());
    replica_config.heartbeat_tick = heartbeat_tick;
    replica_config.election_tick = election_tick;
    replica_config.lease_ticks = election_tick - 2;
    let replica = Replica::new(replica_config, store).map_err(|e| anyhow::anyhow!("node group replica: {e}"))?;

    let mut peers = HashMap::new();
    for peer in members.iter().filter(|d| d.id != me.id) {
        let (tx, rx) = tokio::sync::mpsc::channel(8192);
        peers.insert(peer.id.0 as u64, tx);
        tokio::spawn(raft_outbound(peer.address(), identity.clone(), group_id, rx));
    }
    let settings = node_group::LoopSettings {
        tick,
        data_memory: me.data_memory,
        lock_wait: Duration::from_millis(config.cluster.transaction_deadlock_detection_timeout_ms),
        txn_limits: cairn_storage::TxnLimits::default(),
        arbitration_timeout: Duration::from_millis(config.cluster.arbitration_timeout_ms),
    };
    // The loop's inbox is created with it; the resolver needs it, so it reaches it through a cell.
    let inbox_cell: Arc<std::sync::OnceLock<Inbox>> = Arc::new(std::sync::OnceLock::new());
    let resolver = resolver(config.clone(), identity.clone(), inbox_cell.clone(), tokio::runtime::Handle::current());
    let shared = Arc::new(node_group::SharedReads::new(group, management.catalog_now()));
    let arbitrator: node_group::Arbitrator = {
        let management = management.clone();
        let inbox = inbox_cell.clone();
        let runtime = tokio::runtime::Handle::current();
        Box::new(move |epoch| {
            let management = management.clone();
            let inbox = inbox.clone();
            runtime.spawn(async move {
                match management.arbitrate(group.0, epoch).await {
                    Ok(granted) => {
                        if let Some(inbox) = inbox.get() {
                            let _ = inbox.send(Event::Arbitrated { epoch, granted });
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "the arbitrator did not answer; will ask again"),
                }
            });
        })
    };
    let (node_loop, inbox) = NodeGroupLoop::new(
        me.id.0,
        group,
        replica,
        management.catalog_now(),
        settings,
        peers,
        resolver,
        shared.clone(),
        voters.clone(),
        arbitrator,
    );
    let _ = inbox_cell.set(inbox.clone());
    let loop_thread = std::thread::Builder::new()
        .name(format!("datad-{}-group-{}", me.id, group))
        .spawn(move || node_loop.run())
        .context("cannot start the node group thread")?;

    // Catalog pushes go to the loop.
    let mut catalog_rx = management.catalog.clone();
    let catalog_inbox = inbox.clone();
    tokio::spawn(async move {
        loop {
            let catalog = catalog_rx.borrow_and_update().clone();
            if catalog_inbox.send(Event::Catalog(catalog)).is_err() || catalog_rx.changed().await.is_err() {
                return;
            }
        }
    });
    // Heartbeats carry the node's status to the management node.
    let heartbeat_inbox = inbox.clone();
    let heartbeat_management = management.clone();
    let heartbeat_every = Duration::from_millis(config.cluster.heartbeat_interval_db_api_ms.clamp(50, 5000));
    tokio::spawn(async move {
        loop {
            let (tx, rx) = tokio::sync::oneshot::channel();
            if heartbeat_inbox.send(Event::Status(tx)).is_err() {
                return;
            }
            if let Ok(status) = rx.await {
                heartbeat_management.heartbeat(status).await;
            }
            tokio::time::sleep(heartbeat_every).await;
        }
    });

    tracing::info!(node = me.id.0, group = %group, port = me.port, data_dir = %data_dir.display(), "data node serving");
    let server_config = config.clone();
    let server_identity = identity.clone();
    let server_inbox = inbox.clone();
    let server_shared = shared.clone();
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let config = server_config.clone();
            let identity = server_identity.clone();
            let inbox = server_inbox.clone();
            let shared = server_shared.clone();
            tokio::spawn(async move { connection(stream, identity, config, group, inbox, shared).await });
        }
    });

    let loop_done = tokio::task::spawn_blocking(move || loop_thread.join());
    tokio::pin!(loop_done);
    tokio::select! {
        _ = cairn_mgmd::shutdown_signal() => {
            tracing::info!("data node shutting down");
            server.abort();
            let _ = inbox.send(Event::Shutdown);
            match loop_done.await {
                Ok(Ok(result)) => result,
                _ => bail!("the node group thread panicked"),
            }
        }
        result = &mut loop_done => {
            server.abort();
            match result {
                Ok(Ok(Ok(()))) => Ok(()),
                Ok(Ok(Err(e))) => Err(e.context("the node group stopped")),
                _ => bail!("the node group thread panicked"),
            }
        }
    }
}

fn admit(hello: &Hello, config: &cairn_control::ClusterConfig, group: cairn_common::ids::NodeGroupId) -> Result<(), String> {
    let id = NodeId(hello.node_id);
    match Role::try_from(hello.role) {
        // Peers of the node group (Raft), and data nodes of other groups resolving transactions.
        Ok(Role::Datad) if config.data_node(id).is_some() => Ok(()),
        Ok(Role::Sqld) if config.sql_node(id).is_some() => Ok(()),
        _ => Err(format!("node {} may not connect to a data node of node group {group}", hello.node_id)),
    }
}

/// Asks the leader of `group` how transaction `txn` ended, trying its members in turn, and hands
/// the answer to the loop. Gives up quietly after a while: the loop asks again.
fn resolver(
    config: cairn_control::ClusterConfig,
    identity: Identity,
    inbox: Arc<std::sync::OnceLock<Inbox>>,
    runtime: tokio::runtime::Handle,
) -> node_group::Resolver {
    Box::new(move |group, txn| {
        let config = config.clone();
        let identity = identity.clone();
        let inbox = inbox.clone();
        runtime.spawn(async move {
            let members: Vec<String> = config.members_of(group).iter().map(|d| d.address()).collect();
            let request = encode(&DataRequestBody::Txn { txn, control: cairn_common::ops::TxnControl::Resolve });
            for _round in 0..10 {
                for address in &members {
                    let Ok(link) = cairn_proto::connect(address, &identity).await else { continue };
                    let (client, _) = cairn_proto::RpcClient::new(link);
                    let body = Body::DataRequest(cairn_proto::pb::DataRequest { body: request.clone() });
                    let Ok(Body::DataResponse(response)) = client.call(body, Duration::from_secs(5)).await else { continue };
                    let Ok(answer) = decode::<cairn_proto::data::DataResponseBody>(&response.body) else { continue };
                    if let Ok(cairn_proto::data::DataReply::Txn(outcome)) = answer {
                        let commit = match outcome {
                            cairn_common::ops::TxnOutcome::Committed => true,
                            cairn_common::ops::TxnOutcome::Aborted => false,
                            _ => continue,
                        };
                        if let Some(inbox) = inbox.get() {
                            let _ = inbox.send(Event::Resolved { txn, commit });
                        }
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            tracing::warn!(%txn, group = %group, "could not reach the decision group; will ask again");
        });
    })
}

async fn connection(
    stream: TcpStream,
    identity: Identity,
    config: cairn_control::ClusterConfig,
    group: cairn_common::ids::NodeGroupId,
    inbox: Inbox,
    shared: Arc<node_group::SharedReads>,
) {
    let link = match accept(stream, &identity, |hello| admit(hello, &config, group)).await {
        Ok(link) => link,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let same_group = config.data_node(NodeId(link.peer.node_id)).is_some_and(|d| d.node_group == group);
    match link.peer.role {
        Role::Datad if same_group => raft_inbound(link, inbox).await,
        Role::Datad => data_session(link, inbox, shared).await,
        Role::Sqld => {
            let sql_node = link.peer.node_id;
            data_session(link, inbox.clone(), shared).await;
            // Its connection is gone: transactions it was running here cannot finish.
            let _ = inbox.send(Event::CoordinatorGone { sql_node });
        }
        _ => {}
    }
}

async fn raft_inbound(mut link: Link, inbox: Inbox) {
    while let Some(frame) = link.receiver.recv().await {
        if let Some(Body::Raft(raft)) = frame.body {
            match decode_message(&raft.message, MAX_RAFT_MESSAGE) {
                Ok(message) => {
                    if inbox.send(Event::Raft(message)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(peer = link.peer.node_id, error = %e, "dropped an undecodable raft message"),
            }
        }
    }
}

/// Reads and writes from one SQL node; many in flight at once, each answered when the loop is
/// done with it.
async fn data_session(mut link: Link, inbox: Inbox, shared: Arc<node_group::SharedReads>) {
    while let Some(frame) = link.receiver.recv().await {
        let Some(Body::DataRequest(request)) = frame.body else { continue };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let event = match decode::<DataRequestBody>(&request.body) {
            Ok(DataRequestBody::Read(op)) => {
                // The hot path: under the leader's lease, answered right here.
                if let Some(answer) = shared.try_read(&op) {
                    respond(&link.sender, frame.request_id, answer).await;
                    continue;
                }
                Event::Read { op, reply: tx }
            }
            Ok(DataRequestBody::Write(ops)) => Event::Write { ops, reply: tx },
            Ok(DataRequestBody::LocalRead(op)) => Event::LocalRead { op, reply: tx },
            Ok(DataRequestBody::TxnRead { step, lock, op }) => Event::TxnRead { step, lock, op, reply: tx },
            Ok(DataRequestBody::TxnWrite { step, ops }) => Event::TxnWrite { step, ops, reply: tx },
            Ok(DataRequestBody::Txn { txn, control }) => Event::Txn { txn, control, reply: tx },
            Err(e) => {
                tracing::warn!(peer = link.peer.node_id, error = %e, "dropped an undecodable data request");
                let body: cairn_proto::data::DataResponseBody = Err(cairn_proto::data::DataError::Failed(e));
                respond(&link.sender, frame.request_id, body).await;
                continue;
            }
        };
        if inbox.send(event).is_err() {
            return;
        }
        let sender = link.sender.clone();
        tokio::spawn(async move {
            let body = rx.await.unwrap_or_else(|_| {
                Err(cairn_proto::data::DataError::Unavailable("the data node is shutting down".into()))
            });
            respond(&sender, frame.request_id, body).await;
        });
    }
}

async fn respond(sender: &FrameSender, request_id: u64, body: cairn_proto::data::DataResponseBody) {
    let frame = Frame { request_id, body: Some(Body::DataResponse(DataResponse { body: encode(&body) })) };
    let _ = sender.send(frame).await;
}

