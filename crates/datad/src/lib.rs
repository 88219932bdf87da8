//! # cairn-datad: the data node (NDB's ndbd)
//!
//! A data node belongs to one node group of `NoOfReplicas` data nodes. The node group is one
//! Raft group (raft-rs via `cairn-replication`): its leader is the primary replica. The node
//! holds every partition of every table that maps to its node group, in RAM
//! (`cairn-storage`), and writes its Raft log to its data directory (the redo log).
//!
//! Processes: `cairn datad` is an angel ([`angel`]) that runs the real data node as a child
//! process (`--worker`) and starts it again when the management node orders a restart.
//!
//! Start-up (NDB's start phases, reported in heartbeats and shown by `N STATUS`): register with
//! a management node (proving the cluster secret) and take the config and the catalog it
//! pushes (phase 0); open the Raft log (1); restore the newest local checkpoint (2, see
//! [`start`]); replay the log after it (3); join the node group's Raft group and catch up from
//! the leader, by log or by a snapshot of its checkpoint (4); serve ("started").
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
//! Durability (see `node_group::durability`): local checkpoints written while serving (with the
//! node group's replicated transaction state at the cut), the Raft log truncated behind them,
//! checkpoints sent as Raft snapshots ([`snapshot`]) over dedicated connections,
//! `DiskSync = Interval`, and online backups, with file writes on their own thread
//! ([`disk_writer`]).
//!
//! Not yet here: follower reads.

pub mod angel;
pub mod disk_writer;
pub mod heap;
pub mod node_group;
pub mod snapshot;
pub mod start;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use cairn_common::ids::NodeId;
use cairn_control::config::DiskSync;
use cairn_mgmd::client::{ManagementClient, raft_outbound};
use cairn_proto::data::{DataRequestBody, decode, encode};
use cairn_proto::link::{FrameSender, Identity, Link};
use cairn_proto::pb::{DataResponse, Frame, Hello, NodeStatus, frame::Body};
use cairn_proto::recovery::{NodeAction, RecoveryMessage};
use cairn_proto::{Role, accept};
use cairn_replication::wal::{LogStore, WalIdentity, WalOptions, group_dir};
use cairn_replication::{Replica, ReplicaConfig, decode_message};
use cairn_storage::checkpoint::{CheckpointConfig, DiskWriteSpeed, Identity as CheckpointIdentity};
use node_group::{DurabilityEvent, DurabilitySetup, Event, NodeGroupLoop, Reply};
use tokio::net::{TcpListener, TcpStream};

const MAX_RAFT_MESSAGE: usize = 64 << 20;
/// How long a node that stops at once waits for its ack to the management node to leave.
const ACK_GRACE: Duration = Duration::from_millis(200);
/// How long a port still held by a dying predecessor is waited for.
const BIND_WAIT: Duration = Duration::from_secs(15);

#[derive(Clone, Debug)]
pub struct DatadOptions {
    pub node_id: u32,
    pub mgm: Vec<String>,
    pub secret: String,
    pub data_dir: Option<PathBuf>,
    /// `--initial`: wipe this node's checkpoints and Raft log and copy from a live replica.
    pub initial: bool,
    /// `--nostart` (NDB's `-n`): register, then wait for `N START`.
    pub no_start: bool,
    /// Mutual TLS on every link (the cluster's NodeSslDir); None: plain TCP.
    pub tls: Option<cairn_proto::LinkTls>,
    /// `--listen HOST:PORT`: where to listen when it is not the config's HostName:ServerPort
    /// that other nodes dial (a port forward or proxy in between; the tests' recording relay).
    pub listen: Option<(String, u16)>,
}

type Inbox = std::sync::mpsc::Sender<Event>;

/// What the node reports before its node group loop runs (and while it waits).
#[derive(Default)]
struct StartBoard {
    phase: String,
    start_phase: u32,
    notices: Vec<String>,
}

/// Runs the data node worker (the angel in [`angel`] runs this as a child process). Returns the
/// exit code that tells the angel what to do next.
pub async fn run(options: DatadOptions) -> anyhow::Result<i32> {
    let identity = Identity {
        node_id: options.node_id,
        role: Role::Datad,
        secret: options.secret.clone(),
        software_version: cairn_mgmd::admin::SOFTWARE_VERSION.to_string(),
        tls: options.tls.clone(),
    };
    // SIGHUP (passed on by the angel) reloads the node certificate for links made after it
    // (docs/security.md).
    if let Some(tls) = &options.tls {
        tls.reload_on_sighup(format!("data node {}", options.node_id)).context("cannot listen for SIGHUP")?;
    }
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
    let backup_root = me.backup_data_dir.as_ref().map_or_else(|| data_dir.clone(), PathBuf::from);
    let group = me.node_group;
    let group_id = group.0 as u64;
    let cluster_id = cairn_mgmd::cluster_id(&config);

    // Heartbeats start now, so that N STATUS shows the start phases (and a node waiting for
    // N START) before the node group loop exists.
    let board = Arc::new(Mutex::new(StartBoard { phase: "starting".into(), ..StartBoard::default() }));
    let loop_inbox: Arc<Mutex<Option<Inbox>>> = Arc::default();
    {
        let (board, loop_inbox, management) = (board.clone(), loop_inbox.clone(), management.clone());
        let heartbeat_every = Duration::from_millis(config.cluster.heartbeat_interval_db_api_ms.clamp(50, 5000));
        let backup_root = backup_root.clone();
        let (node_id, data_memory) = (me.id.0, me.data_memory);
        tokio::spawn(async move {
            loop {
                let inbox = loop_inbox.lock().expect("inbox lock").clone();
                let status = match inbox {
                    Some(inbox) => {
                        let (tx, rx) = tokio::sync::oneshot::channel();
                        if inbox.send(Event::Status(tx)).is_err() {
                            return;
                        }
                        rx.await.ok()
                    }
                    None => {
                        let board = board.lock().expect("board lock");
                        Some(NodeStatus {
                            node_id,
                            phase: board.phase.clone(),
                            node_group: group.0,
                            start_phase: board.start_phase,
                            notice: board.notices.join("; "),
                            data_memory_total: data_memory,
                            last_backup_id: cairn_storage::backup::list_backups(&backup_root).last().copied().unwrap_or(0),
                            software_version: cairn_mgmd::admin::SOFTWARE_VERSION.into(),
                            ..Default::default()
                        })
                    }
                };
                if let Some(status) = status {
                    management.heartbeat(status).await;
                }
                tokio::time::sleep(heartbeat_every).await;
            }
        });
    }
    // Requests from the management node: node actions go to this function, backup requests to
    // the loop.
    let (actions_tx, mut actions) = tokio::sync::mpsc::unbounded_channel::<NodeAction>();
    if let Some(mut commands) = management.take_commands() {
        let (management, loop_inbox) = (management.clone(), loop_inbox.clone());
        tokio::spawn(async move {
            while let Some((request_id, message)) = commands.recv().await {
                let answer = match message {
                    RecoveryMessage::Node(action) => {
                        // The ack leaves before the node starts to stop.
                        management.answer(request_id, RecoveryMessage::Ack).await;
                        let _ = actions_tx.send(action);
                        continue;
                    }
                    RecoveryMessage::Backup(request) => {
                        let inbox = loop_inbox.lock().expect("inbox lock").clone();
                        match inbox {
                            Some(inbox) => {
                                let (reply, rx) = tokio::sync::oneshot::channel();
                                let event = Event::Durability(DurabilityEvent::Backup { request, reply });
                                if inbox.send(event).is_err() {
                                    RecoveryMessage::Refused("the data node is shutting down".into())
                                } else {
                                    rx.await.unwrap_or(RecoveryMessage::Refused("the data node is shutting down".into()))
                                }
                            }
                            None => RecoveryMessage::Refused("the data node is starting".into()),
                        }
                    }
                    other => RecoveryMessage::Refused(format!("a data node does not take {other:?}")),
                };
                management.answer(request_id, answer).await;
            }
        });
    }
    let set_phase = |phase: &str| board.lock().expect("board lock").phase = phase.to_string();

    if options.no_start {
        set_phase("not started");
        tracing::info!(node = me.id.0, "not started: waiting for N START");
        if let Some(code) = wait_for_start(&mut actions).await {
            return Ok(code);
        }
        set_phase("starting");
    }

    let listener = match &options.listen {
        Some((host, port)) => bind(host, *port).await?,
        None => bind(&me.host, me.port).await?,
    };
    // Wait for the first catalog push before replaying the log: applying needs table definitions.
    if !management.wait_for_catalog(0, Duration::from_secs(30)).await {
        bail!("the management node sent no catalog");
    }

    let wal_identity = WalIdentity { cluster_id, node_id: me.id.0 as u64, group_id };
    let mut wal_options = WalOptions::new(wal_identity);
    wal_options.sync = config.cluster.disk_sync == DiskSync::Commit;
    wal_options.segment_bytes = config.cluster.fragment_log_file_size.0;
    let checkpoint_identity = CheckpointIdentity { cluster_id, node_id: me.id, node_group: group };
    let restore_threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    let recovered = {
        let board = board.clone();
        let (data_dir, log_dir) = (data_dir.clone(), group_dir(&data_dir, group_id));
        let (initial, replicas) = (options.initial, config.cluster.no_of_replicas);
        tokio::task::spawn_blocking(move || {
            let progress = move |phase: u32, notice: Option<String>| {
                let mut board = board.lock().expect("board lock");
                board.start_phase = board.start_phase.max(phase);
                board.notices.extend(notice);
            };
            start::recover(&start::StartParams {
                data_dir: &data_dir,
                log_dir,
                wal_options,
                identity: checkpoint_identity,
                initial,
                replicas,
                restore_threads,
                progress: &progress,
            })
        })
        .await
        .context("the start task failed")?
    };
    let recovered = match recovered {
        Ok(recovered) => recovered,
        Err(start::StartError::Refused(reason)) => {
            tracing::error!(node = me.id.0, %reason, "this data node will not start; waiting for the operator");
            {
                let mut board = board.lock().expect("board lock");
                board.phase = "not started".into();
                board.notices = vec![reason];
            }
            // N START tries again from scratch; N RESTART -i copies everything from a replica.
            return Ok(wait_for_start(&mut actions).await.unwrap_or(angel::EXIT_RESTART));
        }
        Err(start::StartError::Failed(e)) => return Err(e),
    };

    let members = config.members_of(group);
    let voters: Vec<u64> = members.iter().map(|d| d.id.0 as u64).collect();
    let (tick, heartbeat_tick, election_tick) = cairn_mgmd::raft_timing(config.cluster.heartbeat_interval_db_db_ms);
    let mut replica_config = ReplicaConfig::new(group_id, me.id.0 as u64, voters.clone());
    replica_config.heartbeat_tick = heartbeat_tick;
    replica_config.election_tick = election_tick;
    replica_config.lease_ticks = election_tick - 2;
    replica_config.applied_index = recovered.applied_index;
    // The commit index travels with the next append, or within COMMIT_SEND_DELAY in a
    // heartbeat (node_group.rs): one message and answer less per commit under load.
    replica_config.defer_commit_broadcast = true;
    let replay_until = recovered.log.hard_state().commit;
    let mut replica =
        Replica::new(replica_config, recovered.log).map_err(|e| anyhow::anyhow!("node group replica: {e}"))?;
    let offered = snapshot::OfferedSnapshot::default();
    replica.set_snapshot_source(Box::new(offered.clone()));

    let mut peers = HashMap::new();
    for peer in members.iter().filter(|d| d.id != me.id) {
        let (tx, rx) = tokio::sync::mpsc::channel(8192);
        peers.insert(peer.id.0 as u64, tx);
        tokio::spawn(raft_outbound(peer.address(), identity.clone(), group_id, rx));
    }
    let (to_management, mut management_outbox) = tokio::sync::mpsc::unbounded_channel::<RecoveryMessage>();
    {
        let management = management.clone();
        tokio::spawn(async move {
            while let Some(message) = management_outbox.recv().await {
                management.tell(message).await;
            }
        });
    }
    let settings = node_group::LoopSettings {
        tick,
        data_memory: me.data_memory,
        lock_wait: Duration::from_millis(config.cluster.transaction_deadlock_detection_timeout_ms),
        txn_limits: cairn_storage::TxnLimits {
            max_locks: usize::try_from(config.cluster.max_dml_operations_per_transaction).unwrap_or(usize::MAX),
            max_bytes: config.cluster.max_transaction_bytes.0,
        },
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
    let cluster = &config.cluster;
    let setup = DurabilitySetup {
        data_dir: data_dir.clone(),
        backup_root,
        identity: checkpoint_identity,
        checkpoint_config: CheckpointConfig::default(),
        speed: DiskWriteSpeed {
            min_bytes_per_second: cluster.min_disk_write_speed.0,
            max_bytes_per_second: cluster.max_disk_write_speed.0,
        },
        lcp_log_bytes: cluster.local_checkpoint_log_bytes(),
        lcp_max_interval: (cluster.max_time_between_local_checkpoints_ms > 0)
            .then(|| Duration::from_millis(cluster.max_time_between_local_checkpoints_ms)),
        flush_interval: (cluster.disk_sync == DiskSync::Interval)
            .then(|| Duration::from_millis(cluster.time_between_global_checkpoints_ms)),
        applied_term: recovered.applied_term,
        kept: recovered.kept,
        notices: recovered.notices,
        lost_log: recovered.vote_barrier,
        block_votes: recovered.vote_barrier && members.len() >= 3,
        offered,
        fetch: snapshot::FetchContext {
            config: config.clone(),
            link_identity: identity.clone(),
            data_dir: data_dir.clone(),
            identity: checkpoint_identity,
            checkpoint_config: CheckpointConfig::default(),
            restore_threads,
        },
        runtime: tokio::runtime::Handle::current(),
        inbox: inbox.clone(),
        management: to_management,
        replay_until,
    };
    let node_loop = node_loop
        .with_store(recovered.store, recovered.applied_index, &recovered.txn_state)?
        .with_durability(setup)
        .context("cannot start the checkpoint writer")?;
    let loop_thread = std::thread::Builder::new()
        .name(format!("datad-{}-group-{}", me.id, group))
        .spawn(move || node_loop.run())
        .context("cannot start the node group thread")?;
    *loop_inbox.lock().expect("inbox lock") = Some(inbox.clone());

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

    tracing::info!(node = me.id.0, group = %group, port = me.port, data_dir = %data_dir.display(), "data node serving");
    let serve = Arc::new(Serving {
        config: config.clone(),
        identity: identity.clone(),
        group,
        inbox: inbox.clone(),
        shared: shared.clone(),
        data_dir: data_dir.clone(),
        checkpoint_identity,
    });
    let server = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            let serve = serve.clone();
            tokio::spawn(async move { connection(stream, serve).await });
        }
    });

    let loop_done = tokio::task::spawn_blocking(move || loop_thread.join());
    tokio::pin!(loop_done);
    let code = loop {
        tokio::select! {
            _ = cairn_mgmd::shutdown_signal() => {
                tracing::info!("data node shutting down");
                break 0;
            }
            action = actions.recv() => {
                let code = match action {
                    Some(NodeAction::Stop) | None => 0,
                    Some(NodeAction::Restart { initial, no_start }) => angel::restart_code(initial, no_start),
                    Some(NodeAction::Start) => continue,
                };
                tracing::info!(node = me.id.0, ?action, "stopping on the management node's order");
                break code;
            }
            result = &mut loop_done => {
                server.abort();
                return match result {
                    Ok(Ok(Ok(()))) => Ok(0),
                    Ok(Ok(Err(e))) => Err(e.context("the node group stopped")),
                    _ => bail!("the node group thread panicked"),
                };
            }
        }
    };
    server.abort();
    let _ = inbox.send(Event::Shutdown);
    match loop_done.await {
        Ok(Ok(Ok(()))) => Ok(code),
        Ok(Ok(Err(e))) => Err(e.context("the node group stopped with an error")),
        _ => bail!("the node group thread panicked"),
    }
}

/// Waits in "not started" for the management node's word; None means "start now", Some is the
/// exit code for the angel.
async fn wait_for_start(actions: &mut tokio::sync::mpsc::UnboundedReceiver<NodeAction>) -> Option<i32> {
    let code = tokio::select! {
        _ = cairn_mgmd::shutdown_signal() => return Some(0),
        action = actions.recv() => match action {
            Some(NodeAction::Start) => return None,
            Some(NodeAction::Stop) | None => 0,
            Some(NodeAction::Restart { initial, no_start }) => angel::restart_code(initial, no_start),
        },
    };
    // The process ends now: give the ack queued for the management node a moment to leave.
    tokio::time::sleep(ACK_GRACE).await;
    Some(code)
}

/// Binds the data node's port, waiting for a predecessor that is still exiting.
async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    let deadline = tokio::time::Instant::now() + BIND_WAIT;
    loop {
        match TcpListener::bind((host, port)).await {
            Ok(listener) => return Ok(listener),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {host}:{port} (is the port taken?)")),
        }
    }
}

/// What connection handlers need.
struct Serving {
    config: cairn_control::ClusterConfig,
    identity: Identity,
    group: cairn_common::ids::NodeGroupId,
    inbox: Inbox,
    shared: Arc<node_group::SharedReads>,
    data_dir: PathBuf,
    checkpoint_identity: CheckpointIdentity,
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

async fn connection(stream: TcpStream, serve: Arc<Serving>) {
    let link = match accept(stream, &serve.identity, |hello| admit(hello, &serve.config, serve.group)).await {
        Ok(link) => link,
        Err(e) => {
            tracing::debug!(error = %e, "handshake failed");
            return;
        }
    };
    let same_group = serve.config.data_node(NodeId(link.peer.node_id)).is_some_and(|d| d.node_group == serve.group);
    match link.peer.role {
        // Another replica of this node group: Raft messages and snapshot transfers.
        Role::Datad if same_group => peer_inbound(link, &serve).await,
        // A data node of another group resolving a transaction whose decision group this is.
        Role::Datad => data_session(link, serve.inbox.clone(), serve.shared.clone()).await,
        Role::Sqld => {
            let sql_node = link.peer.node_id;
            data_session(link, serve.inbox.clone(), serve.shared.clone()).await;
            // Its connection is gone: transactions it was running here cannot finish.
            let _ = serve.inbox.send(Event::CoordinatorGone { sql_node });
        }
        _ => {}
    }
}

/// Frames from another replica of this node group: Raft messages, and requests for parts of a
/// checkpoint (snapshot transfers, each on a connection of its own).
async fn peer_inbound(mut link: Link, serve: &Serving) {
    while let Some(frame) = link.receiver.recv().await {
        match frame.body {
            Some(Body::Raft(raft)) => match decode_message(&raft.message, MAX_RAFT_MESSAGE) {
                Ok(message) => {
                    if serve.inbox.send(Event::Raft(message)).is_err() {
                        return;
                    }
                }
                Err(e) => tracing::warn!(peer = link.peer.node_id, error = %e, "dropped an undecodable raft message"),
            },
            Some(body @ Body::Recovery(_)) => match RecoveryMessage::from_body(&body) {
                Some(RecoveryMessage::Fetch(fetch)) => {
                    tracing::debug!(peer = link.peer.node_id, ?fetch, "sending part of a checkpoint");
                    snapshot::serve(
                        serve.data_dir.clone(),
                        serve.checkpoint_identity,
                        fetch,
                        frame.request_id,
                        link.sender.clone(),
                    );
                }
                _ => tracing::warn!(peer = link.peer.node_id, "dropped an unexpected recovery frame"),
            },
            _ => {}
        }
    }
}

/// Reads and writes from one SQL node; many in flight at once, each answered when the loop is
/// done with it (the loop queues the answer on this connection itself, see `Reply`).
async fn data_session(mut link: Link, inbox: Inbox, shared: Arc<node_group::SharedReads>) {
    let runtime = tokio::runtime::Handle::current();
    while let Some(frame) = link.receiver.recv().await {
        let Some(Body::DataRequest(request)) = frame.body else { continue };
        // Made only for a request that goes to the loop: a reply dropped unsent answers
        // "unavailable", so the paths answered here must not hold one.
        let reply = || Reply::new(frame.request_id, link.sender.clone(), runtime.clone());
        let event = match decode::<DataRequestBody>(&request.body) {
            Ok(DataRequestBody::Read(op)) => {
                // The hot path: under the leader's lease, answered right here.
                if let Some(answer) = shared.try_read(&op) {
                    respond(&link.sender, frame.request_id, answer).await;
                    continue;
                }
                Event::Read { op, reply: reply() }
            }
            Ok(DataRequestBody::Write(ops)) => Event::Write { ops, reply: reply() },
            Ok(DataRequestBody::LocalRead(op)) => Event::LocalRead { op, reply: reply() },
            Ok(DataRequestBody::TxnRead { step, lock, op }) => Event::TxnRead { step, lock, op, reply: reply() },
            Ok(DataRequestBody::TxnWrite { step, ops }) => Event::TxnWrite { step, ops, reply: reply() },
            Ok(DataRequestBody::Txn { txn, control }) => Event::Txn { txn, control, reply: reply() },
            Err(e) => {
                tracing::warn!(peer = link.peer.node_id, error = %e, "dropped an undecodable data request");
                let body: cairn_proto::data::DataResponseBody = Err(cairn_proto::data::DataError::Failed(e));
                respond(&link.sender, frame.request_id, body).await;
                continue;
            }
        };
        // Refused only when the loop has stopped; the dropped event's reply then answers
        // "unavailable" itself.
        if inbox.send(event).is_err() {
            return;
        }
    }
}

async fn respond(sender: &FrameSender, request_id: u64, body: cairn_proto::data::DataResponseBody) {
    let frame = Frame { request_id, body: Some(Body::DataResponse(DataResponse { body: encode(&body) })) };
    let _ = sender.send(frame).await;
}

