//! # cairn-mgmd: the management node (NDB's ndb_mgmd)
//!
//! One, three or five management nodes form a Raft group (raft-rs through
//! `cairn-replication`) that keeps the cluster catalog. A management node
//!
//! - reads the cluster config (TOML, NDB's names) and refuses to start on any bad value;
//! - admits nodes: a node must prove the cluster secret and be configured under its id and role,
//!   and an id cannot be connected twice;
//! - hands every registered node the config text and pushes it the catalog now and after every
//!   change;
//! - commits DDL from SQL nodes through its Raft group and answers once it is applied;
//! - tracks which nodes are connected and what their heartbeats say (soft state, not
//!   replicated);
//! - answers `cairn mgm` in ndb_mgm's words and format (`SHOW`, `N STATUS`,
//!   `ALL REPORT MEMORY`);
//! - stops and restarts data nodes (`N STOP`, `N RESTART [-n] [-i]`, `N START`, `ALL RESTART`,
//!   `SHUTDOWN`) and coordinates consistent online backups (`START BACKUP`, `ABORT BACKUP`), see
//!   [`operations`].
//!
//! It is not on the data path: reads and writes go from SQL nodes straight to data nodes and
//! continue while every management node is down (no DDL meanwhile).
//!
//! The daemon is a thin shell: [`control_loop`] runs the sans-IO replica and control state on
//! one thread; [`server`] is the tokio side.
//!
//! Not yet here: arbitration for two-replica node groups, the HTTP status page and /metrics.

pub mod admin;
pub mod client;
pub mod control_loop;
pub mod nodes;
pub mod operations;
pub mod server;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_common::ids::NodeId;
use cairn_control::config::ClusterConfig;
use cairn_proto::{Identity, Role};
use cairn_replication::wal::{FileLogStore, WalIdentity, WalOptions, group_dir};
use cairn_replication::{Replica, ReplicaConfig};
use tokio::net::TcpListener;

/// The control plane's Raft group id (data node groups use their node group numbers).
pub const CONTROL_GROUP: u64 = 1 << 32;

#[derive(Clone, Debug)]
pub struct MgmdOptions {
    pub node_id: u32,
    pub config_path: PathBuf,
    pub data_dir: Option<PathBuf>,
}

/// A stable id for a cluster, from its name and secret: logs written for one cluster are
/// refused by another.
pub fn cluster_id(config: &ClusterConfig) -> u64 {
    let name = crc32c::crc32c(config.cluster.name.as_bytes()) as u64;
    let secret = crc32c::crc32c(config.cluster.secret.as_bytes()) as u64;
    (name << 32) | secret
}

/// Raft timing from NDB's heartbeat interval: a heartbeat every interval, leadership lost after
/// three missed ones (NDB declares a node dead after three missed heartbeats).
pub fn raft_timing(heartbeat_interval_ms: u64) -> (Duration, usize, usize) {
    let tick = Duration::from_millis((heartbeat_interval_ms / 2).max(5));
    (tick, 2, 6)
}

pub async fn run(options: MgmdOptions) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&options.config_path)
        .with_context(|| format!("cannot read the cluster config {}", options.config_path.display()))?;
    let config = ClusterConfig::parse(&text)?;
    let me = config
        .mgmd(NodeId(options.node_id))
        .with_context(|| format!("node id {} is not an [[ndb_mgmd]] in the config", options.node_id))?
        .clone();
    let data_dir = options
        .data_dir
        .clone()
        .or_else(|| me.data_dir.as_ref().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(format!("mgmd-{}", me.node_id)));
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create data directory {}", data_dir.display()))?;

    let listener = TcpListener::bind((me.host_name.as_str(), me.port))
        .await
        .with_context(|| format!("cannot listen on {}:{} (is the port taken?)", me.host_name, me.port))?;

    // With NodeSslDir every link of this node, accepted or opened, is mutual TLS; files that
    // are missing or do not match stop the node here rather than let it run in clear.
    let tls = match &config.cluster.node_ssl_dir {
        Some(dir) => Some(
            cairn_proto::LinkTls::load_node(
                &cairn_proto::TlsFiles::for_node(std::path::Path::new(dir), me.node_id),
                me.node_id,
                Role::Mgmd,
            )
            .with_context(|| format!("node-to-node TLS of management node {}", me.node_id))?,
        ),
        None => None,
    };
    // SIGHUP reloads the node certificate for links made after it (docs/security.md).
    if let Some(tls) = &tls {
        tls.reload_on_sighup(format!("management node {}", me.node_id)).context("cannot listen for SIGHUP")?;
    }
    let identity = Identity {
        node_id: me.node_id,
        role: Role::Mgmd,
        secret: config.cluster.secret.clone(),
        software_version: admin::SOFTWARE_VERSION.to_string(),
        tls,
    };
    let wal_identity = WalIdentity { cluster_id: cluster_id(&config), node_id: me.node_id as u64, group_id: CONTROL_GROUP };
    let store = FileLogStore::open(&group_dir(&data_dir, CONTROL_GROUP), WalOptions::new(wal_identity))
        .map_err(|e| anyhow::anyhow!("management Raft log in {}: {e}", data_dir.display()))?;
    let voters: Vec<u64> = config.mgmds.iter().map(|m| m.node_id as u64).collect();
    let (tick, heartbeat_tick, election_tick) = raft_timing(config.cluster.heartbeat_interval_db_db_ms);
    let mut replica_config = ReplicaConfig::new(CONTROL_GROUP, me.node_id as u64, voters);
    replica_config.heartbeat_tick = heartbeat_tick;
    replica_config.election_tick = election_tick;
    replica_config.lease_ticks = election_tick - 2;
    let replica = Replica::new(replica_config, store).map_err(|e| anyhow::anyhow!("management replica: {e}"))?;

    let mut peers = HashMap::new();
    for peer in config.mgmds.iter().filter(|m| m.node_id != me.node_id) {
        let (tx, rx) = tokio::sync::mpsc::channel(4096);
        peers.insert(peer.node_id as u64, tx);
        let address = format!("{}:{}", peer.host_name, peer.port);
        tokio::spawn(client::raft_outbound(address, identity.clone(), CONTROL_GROUP, rx));
    }
    let (control, handle) = control_loop::ControlLoop::new(
        replica,
        config.node_groups(),
        config.cluster.root_password.clone(),
        peers,
        tick,
    );
    let control_thread = std::thread::Builder::new()
        .name(format!("mgmd-{}-control", me.node_id))
        .spawn(move || control.run())
        .context("cannot start the control thread")?;

    let shared = Arc::new(server::Shared::new(config, identity, handle.clone()));
    tracing::info!(node = me.node_id, port = me.port, data_dir = %data_dir.display(), "management node started");
    let server = tokio::spawn(server::serve(listener, shared.clone()));

    tokio::select! {
        _ = shutdown_signal() => {}
        _ = shared.shutdown.notified() => tracing::info!("SHUTDOWN ordered by an administrator"),
    }
    tracing::info!("management node shutting down");
    server.abort();
    handle.send(control_loop::ControlEvent::Shutdown);
    match tokio::task::spawn_blocking(move || control_thread.join()).await {
        Ok(Ok(result)) => result,
        _ => bail!("the control thread panicked"),
    }
}

/// Waits for SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
