//! The cluster config loader: any text, as a management node reads it from its file and every
//! node receives it when it registers.

use cairn_control::ClusterConfig;

/// Parses and checks arbitrary bytes as a cluster config (TOML with NDB's names). A config that
/// parses must describe a usable cluster, so the target also walks what the nodes look up.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(config) = ClusterConfig::parse(text) else {
        return;
    };
    for group in config.node_groups() {
        for node in config.members_of(group) {
            let _ = node.address();
            let _ = config.data_node(node.id);
        }
    }
}
