//! Soft state: which nodes are connected to this management node and what they last reported.
//! Not replicated; after a management failover it is rebuilt from reconnects and heartbeats.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_proto::Role;
use cairn_proto::link::FrameSender;
use cairn_proto::pb::{Frame, NodeStatus};
use cairn_proto::recovery::RecoveryMessage;
use tokio::sync::oneshot;

/// Requests this management node sends to a registered node over its registration link, and
/// the answers it waits for. Ids come from the accepting side's half of the id space, so they
/// never collide with the node's own requests on the same link.
#[derive(Clone, Debug)]
pub struct NodeChannel {
    sender: FrameSender,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<RecoveryMessage>>>>,
    next_id: Arc<AtomicU64>,
}

impl NodeChannel {
    pub fn new(sender: FrameSender) -> NodeChannel {
        NodeChannel { sender, pending: Arc::default(), next_id: Arc::new(AtomicU64::new(1 << 63)) }
    }

    /// Sends a request and waits for its answer.
    pub async fn call(&self, message: RecoveryMessage, timeout: Duration) -> Result<RecoveryMessage, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().expect("pending lock").insert(id, tx);
        if self.sender.send(Frame { request_id: id, body: Some(message.into_body()) }).await.is_err() {
            self.pending.lock().expect("pending lock").remove(&id);
            return Err("the node disconnected".into());
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err("the node disconnected".into()),
            Err(_) => {
                self.pending.lock().expect("pending lock").remove(&id);
                Err(format!("no answer within {timeout:?}"))
            }
        }
    }

    /// Hands an answer to the request waiting for it; false if none waits (not an answer).
    pub fn deliver(&self, request_id: u64, message: RecoveryMessage) -> Result<(), RecoveryMessage> {
        match self.pending.lock().expect("pending lock").remove(&request_id) {
            Some(waiter) => {
                let _ = waiter.send(message);
                Ok(())
            }
            None => Err(message),
        }
    }
}

#[derive(Clone, Debug)]
pub struct LiveNode {
    pub role: Role,
    /// Where the node connected from.
    pub peer_host: String,
    /// Where it serves (as it registered).
    pub address: String,
    pub software_version: String,
    pub connected_at: Instant,
    pub last_heartbeat: Instant,
    pub status: Option<NodeStatus>,
    /// How to send this node requests (None for nodes that registered without one).
    pub channel: Option<NodeChannel>,
    /// Set when this management node told the node to stop or restart: shown as "stopping"
    /// until it disconnects.
    pub stopping: bool,
    /// The newest catalog version the node acknowledged.
    pub catalog_version: u64,
}

#[derive(Default)]
pub struct NodeTable {
    nodes: Mutex<BTreeMap<u32, LiveNode>>,
}

impl NodeTable {
    /// Records a node as connected; false if the id is already connected (a node id cannot be
    /// claimed twice).
    pub fn connect(&self, id: u32, node: LiveNode) -> bool {
        let mut nodes = self.nodes.lock().expect("node table lock");
        if nodes.contains_key(&id) {
            return false;
        }
        nodes.insert(id, node);
        true
    }

    pub fn is_connected(&self, id: u32) -> bool {
        self.nodes.lock().expect("node table lock").contains_key(&id)
    }

    pub fn disconnect(&self, id: u32) {
        self.nodes.lock().expect("node table lock").remove(&id);
    }

    pub fn heartbeat(&self, id: u32, status: Option<NodeStatus>) {
        if let Some(node) = self.nodes.lock().expect("node table lock").get_mut(&id) {
            node.last_heartbeat = Instant::now();
            if status.is_some() {
                node.status = status;
            }
        }
    }

    pub fn channel(&self, id: u32) -> Option<NodeChannel> {
        self.nodes.lock().expect("node table lock").get(&id).and_then(|n| n.channel.clone())
    }

    /// Marks the registration of node `id` that connected at `connected_at` as stopping. A node
    /// that has already stopped and registered again (a fast restart) is a new registration and
    /// is left alone: it would otherwise show "stopping" until it disconnects again.
    pub fn mark_stopping(&self, id: u32, connected_at: Instant) {
        if let Some(node) = self.nodes.lock().expect("node table lock").get_mut(&id)
            && node.connected_at == connected_at
        {
            node.stopping = true;
        }
    }

    pub fn ack_catalog(&self, id: u32, version: u64) {
        if let Some(node) = self.nodes.lock().expect("node table lock").get_mut(&id) {
            node.catalog_version = node.catalog_version.max(version);
        }
    }

    /// Whether every connected SQL node holds at least this catalog version.
    pub fn sql_nodes_have(&self, version: u64) -> bool {
        self.nodes
            .lock()
            .expect("node table lock")
            .values()
            .filter(|n| n.role == Role::Sqld)
            .all(|n| n.catalog_version >= version)
    }

    pub fn snapshot(&self) -> BTreeMap<u32, LiveNode> {
        self.nodes.lock().expect("node table lock").clone()
    }
}
