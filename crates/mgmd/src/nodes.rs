//! Soft state: which nodes are connected to this management node and what they last reported.
//! Not replicated; after a management failover it is rebuilt from reconnects and heartbeats.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use cairn_proto::pb::NodeStatus;
use cairn_proto::Role;

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
