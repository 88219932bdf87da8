//! How data and SQL nodes talk to the management nodes: register, receive the config and every
//! catalog version, send heartbeats, and (SQL nodes) commit DDL.
//!
//! The client keeps one connection, to the management leader when it knows it, and reconnects
//! (to any management node, preferring the leader) whenever it drops; the catalog it holds stays
//! usable meanwhile, so reads and writes go on with every management node down.

use std::sync::Arc;
use std::time::Duration;

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_common::{Error, Result};
use cairn_control::ClusterConfig;
use cairn_proto::data::{decode, encode};
use cairn_proto::pb::{DdlRequest, Frame, Heartbeat, NodeStatus, Register, frame::Body};
use cairn_proto::recovery::RecoveryMessage;
use cairn_proto::{Identity, RpcClient};
use tokio::sync::{Mutex, mpsc, watch};

const CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a DDL caller waits for the pushed catalog to include its change.
const CATALOG_WAIT: Duration = Duration::from_secs(10);
/// How long a DDL waits for a lost management connection to be re-established.
const RECONNECT_WAIT: Duration = Duration::from_secs(5);

pub struct ManagementClient {
    identity: Identity,
    /// Where this node serves, as it registers.
    serving_address: String,
    addresses: Vec<String>,
    pub config: ClusterConfig,
    catalog_tx: watch::Sender<Arc<Catalog>>,
    pub catalog: watch::Receiver<Arc<Catalog>>,
    connection: Mutex<Option<RpcClient>>,
    /// Recovery requests from the management node (node stop/restart, backups): the request id
    /// to answer with, and the request. Taken once by the node that handles them.
    commands_tx: mpsc::UnboundedSender<(u64, RecoveryMessage)>,
    commands_rx: std::sync::Mutex<Option<mpsc::UnboundedReceiver<(u64, RecoveryMessage)>>>,
}

/// A recovery request from the management node and how to answer it.
pub type Command = (u64, RecoveryMessage);

async fn register(
    address: &str,
    identity: &Identity,
    serving_address: &str,
) -> std::result::Result<(RpcClient, tokio::sync::mpsc::UnboundedReceiver<cairn_proto::pb::Frame>, String, u32), String> {
    let link = cairn_proto::connect(address, identity).await.map_err(|e| e.to_string())?;
    let (client, pushes) = RpcClient::new(link);
    let register = Register {
        node_id: identity.node_id,
        role: identity.role as i32,
        address: serving_address.to_string(),
        software_version: identity.software_version.clone(),
    };
    match client.call(Body::Register(register), CALL_TIMEOUT).await {
        Ok(Body::Registered(r)) => Ok((client, pushes, r.config, r.leader_hint)),
        Ok(other) => Err(format!("unexpected answer to registration: {other:?}")),
        Err(e) => Err(e.to_string()),
    }
}

impl ManagementClient {
    /// Registers with the first management node that answers, retrying until one does or
    /// `give_up_after` passes.
    pub async fn connect(
        addresses: Vec<String>,
        identity: Identity,
        serving_address: String,
        give_up_after: Duration,
    ) -> anyhow::Result<Arc<ManagementClient>> {
        let started = std::time::Instant::now();
        let mut attempt = 0u32;
        loop {
            for address in &addresses {
                match register(address, &identity, &serving_address).await {
                    Ok((client, pushes, config_text, _leader)) => {
                        let config = ClusterConfig::parse(&config_text)?;
                        let (catalog_tx, catalog) = watch::channel(Arc::new(Catalog::new()));
                        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
                        let this = Arc::new(ManagementClient {
                            commands_tx,
                            commands_rx: std::sync::Mutex::new(Some(commands_rx)),
                            identity,
                            serving_address,
                            addresses: addresses.clone(),
                            config,
                            catalog_tx,
                            catalog,
                            connection: Mutex::new(Some(client)),
                        });
                        tokio::spawn(this.clone().maintain(pushes));
                        return Ok(this);
                    }
                    Err(e) => {
                        if attempt % 20 == 0 {
                            tracing::info!(management = %address, error = %e, "waiting for a management node");
                        }
                    }
                }
            }
            attempt += 1;
            if started.elapsed() > give_up_after {
                anyhow::bail!("no management node answered at {} within {give_up_after:?}", addresses.join(", "));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Takes catalog pushes; on disconnect, registers again.
    async fn maintain(self: Arc<Self>, mut pushes: tokio::sync::mpsc::UnboundedReceiver<cairn_proto::pb::Frame>) {
        loop {
            while let Some(frame) = pushes.recv().await {
                if let Some(body) = &frame.body
                    && let Some(message) = RecoveryMessage::from_body(body)
                {
                    let _ = self.commands_tx.send((frame.request_id, message));
                    continue;
                }
                if let Some(Body::CatalogUpdate(update)) = frame.body {
                    match decode::<Catalog>(&update.catalog) {
                        Ok(mut catalog) => {
                            catalog.reindex();
                            let version = catalog.version;
                            if version >= self.catalog.borrow().version {
                                let _ = self.catalog_tx.send(Arc::new(catalog));
                            }
                            if let Some(client) = self.current().await {
                                let _ = client.notify(Body::CatalogAck(cairn_proto::pb::CatalogAck { version })).await;
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "ignored an undecodable catalog push"),
                    }
                }
            }
            *self.connection.lock().await = None;
            tracing::warn!("lost the management node; reconnecting");
            pushes = loop {
                let mut registered = None;
                for address in &self.addresses {
                    if let Ok((client, pushes, _, _)) = register(address, &self.identity, &self.serving_address).await {
                        registered = Some((client, pushes));
                        break;
                    }
                }
                match registered {
                    Some((client, pushes)) => {
                        *self.connection.lock().await = Some(client);
                        tracing::info!("registered with a management node again");
                        break pushes;
                    }
                    None => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            };
        }
    }

    async fn current(&self) -> Option<RpcClient> {
        self.connection.lock().await.clone()
    }

    pub fn catalog_now(&self) -> Arc<Catalog> {
        self.catalog.borrow().clone()
    }

    /// Waits until the local catalog is at least `version`.
    pub async fn wait_for_catalog(&self, version: u64, timeout: Duration) -> bool {
        let mut rx = self.catalog.clone();
        tokio::time::timeout(timeout, async {
            loop {
                if rx.borrow_and_update().version >= version {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
    }

    /// Sends a heartbeat if connected (a missing one is noticed by the management node).
    pub async fn heartbeat(&self, status: NodeStatus) {
        if let Some(client) = self.current().await {
            let _ = client.notify(Body::Heartbeat(Heartbeat { node_id: self.identity.node_id, status: Some(status) })).await;
        }
    }

    /// The recovery requests the management node sends this node (once; later calls get None).
    pub fn take_commands(&self) -> Option<mpsc::UnboundedReceiver<Command>> {
        self.commands_rx.lock().expect("commands lock").take()
    }

    /// Answers recovery request `request_id` (a lost answer makes the management node time out).
    pub async fn answer(&self, request_id: u64, message: RecoveryMessage) {
        if let Some(client) = self.current().await {
            let _ = client.sender().send(Frame { request_id, body: Some(message.into_body()) }).await;
        }
    }

    /// Sends a recovery message the management node did not ask for (backup progress).
    pub async fn tell(&self, message: RecoveryMessage) -> bool {
        match self.current().await {
            Some(client) => client.notify(message.into_body()).await.is_ok(),
            None => false,
        }
    }

    /// Asks the arbitrator whether this data node may go on alone with membership `epoch` of
    /// its two-replica node group. Err: no answer (the caller asks again later).
    pub async fn arbitrate(&self, group: u32, epoch: u64) -> std::result::Result<bool, String> {
        let client = self.current().await.ok_or("no management node is reachable")?;
        let request = cairn_proto::pb::ArbitrationRequest { group, epoch, node: self.identity.node_id };
        match client.call(Body::ArbitrationRequest(request), CALL_TIMEOUT).await {
            Ok(Body::ArbitrationReply(reply)) if reply.reason.is_empty() => Ok(reply.granted),
            Ok(Body::ArbitrationReply(reply)) => Err(reply.reason),
            Ok(_) => Err("unexpected answer to an arbitration request".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Commits a catalog change and returns once this node's catalog includes it.
    pub async fn ddl(&self, op: CatalogOp) -> Result<CatalogOutcome> {
        // After a management node fails the client reconnects within a second or so; a DDL
        // arriving meanwhile waits for that rather than failing at once.
        let deadline = tokio::time::Instant::now() + RECONNECT_WAIT;
        let client = loop {
            if let Some(client) = self.current().await {
                break client;
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::temporary("no management node is reachable; DDL is unavailable until one is"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let reply = client
            .call(Body::DdlRequest(DdlRequest { op: encode(&op) }), CALL_TIMEOUT)
            .await
            .map_err(|e| Error::temporary(format!("management node: {e}")))?;
        let Body::DdlResponse(response) = reply else {
            return Err(Error::internal("unexpected answer to a DDL request"));
        };
        let outcome: Result<CatalogOutcome> = decode(&response.outcome)?;
        let outcome = outcome?;
        if !self.wait_for_catalog(response.catalog_version, CATALOG_WAIT).await {
            return Err(Error::temporary("the change was committed but this node has not received the new catalog yet"));
        }
        Ok(outcome)
    }
}

/// Keeps a connection to a Raft peer and forwards the messages queued for it, reconnecting
/// with backoff. Messages queued while the peer is unreachable are dropped: Raft resends what
/// matters.
pub async fn raft_outbound(
    address: String,
    identity: Identity,
    group: u64,
    mut outbox: tokio::sync::mpsc::Receiver<cairn_replication::eraftpb::Message>,
) {
    use cairn_proto::pb::{Frame, RaftMessage};
    let mut backoff = Duration::from_millis(50);
    loop {
        match cairn_proto::connect(&address, &identity).await {
            Ok(link) => {
                backoff = Duration::from_millis(50);
                // The peer never sends on this link; its receiver half tells us when it closes.
                let mut receiver = link.receiver;
                let closed = async move { while receiver.recv().await.is_some() {} };
                tokio::pin!(closed);
                loop {
                    tokio::select! {
                        _ = &mut closed => break,
                        message = outbox.recv() => {
                            let Some(message) = message else { return };
                            let Ok(bytes) = cairn_replication::encode_message(&message) else { continue };
                            let frame = Frame { request_id: 0, body: Some(Body::Raft(RaftMessage { group, message: bytes.into() })) };
                            if link.sender.send(frame).await.is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            Err(e) => {
                tracing::debug!(peer = %address, error = %e, "cannot reach raft peer");
                while outbox.try_recv().is_ok() {}
                if outbox.is_closed() {
                    return;
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}
