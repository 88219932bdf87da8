//! An in-process cluster of replicas over a simulated network, driven one step at a time, and
//! the golden-script runner on top of it.
//!
//! The network is a FIFO queue of messages; a partition drops messages between its sides at
//! delivery time; a crashed node loses its in-memory state, its queued messages, and whatever
//! its disk had not synced. Each node's "state machine" is the list of entries it applied
//! since it (re)started. Elections are deterministic: node `n` times out after exactly
//! `10 + 2 * (n - 1)` ticks, so the lowest-numbered node that can win does.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use cairn_replication::eraftpb::{
    ConfChangeSingle, ConfChangeTransition, ConfChangeType, ConfChangeV2, ConfState, Message,
    MessageType,
};
use cairn_replication::wal::{FileLogStore, LogStore, MemLogStore, WalIdentity, WalOptions};
use cairn_replication::{
    CommittedEntry, ConfChangeOutcome, EntryPayload, LeadershipChange, ProposalId, Replica,
    ReplicaConfig,
};

/// Where nodes keep their logs, and what a crash does to them.
pub trait Disk {
    type Store: LogStore;
    /// Opens node `node`'s log (after a start, restart or crash).
    fn open(&mut self, node: u64) -> Self::Store;
    /// Loses what node `node` had not synced.
    fn crash(&mut self, node: u64);
}

/// In-memory logs that model syncing.
pub struct MemDisk {
    stores: BTreeMap<u64, MemLogStore>,
    sync: bool,
}

impl MemDisk {
    pub fn new(sync: bool) -> MemDisk {
        MemDisk {
            stores: BTreeMap::new(),
            sync,
        }
    }
}

impl Disk for MemDisk {
    type Store = MemLogStore;
    fn open(&mut self, node: u64) -> MemLogStore {
        let sync = self.sync;
        self.stores
            .entry(node)
            .or_insert_with(|| MemLogStore::with_sync(sync))
            .clone()
    }
    fn crash(&mut self, node: u64) {
        if let Some(store) = self.stores.get(&node) {
            store.crash();
        }
    }
}

/// Real log files under a directory, one subdirectory per node.
pub struct FileDisk {
    pub root: PathBuf,
}

impl FileDisk {
    pub fn dir(root: &Path, node: u64) -> PathBuf {
        root.join(format!("node{node}"))
    }
}

impl Disk for FileDisk {
    type Store = FileLogStore;
    fn open(&mut self, node: u64) -> FileLogStore {
        let identity = WalIdentity {
            cluster_id: 1,
            node_id: node,
            group_id: 0,
        };
        FileLogStore::open(&FileDisk::dir(&self.root, node), WalOptions::new(identity))
            .unwrap_or_else(|error| panic!("opening the log of node {node}: {error}"))
    }
    fn crash(&mut self, _node: u64) {
        // Every batch was synced and the files stay: dropping the store is the crash.
    }
}

pub struct Node<L: LogStore> {
    pub replica: Option<Replica<L>>,
    /// The snapshot the state machine was last restored from: (index, data).
    pub snapshot: Option<(u64, String)>,
    /// Entries applied since the node last started.
    pub applied: Vec<CommittedEntry>,
    /// Proposals this node made that have not been resolved, with their data.
    pub proposals: BTreeMap<ProposalId, String>,
}

pub struct Cluster<D: Disk> {
    pub disk: D,
    pub voters: Vec<u64>,
    pub nodes: BTreeMap<u64, Node<D::Store>>,
    queue: VecDeque<Message>,
    partition: Option<Vec<BTreeSet<u64>>>,
    /// Event lines produced since the last command.
    events: Vec<String>,
}

pub fn config(node: u64, voters: &[u64]) -> ReplicaConfig {
    let mut config = ReplicaConfig::new(0, node, voters.to_vec());
    config.election_tick = 10;
    config.heartbeat_tick = 2;
    config.min_election_tick = 10 + 2 * (node as usize - 1);
    config.max_election_tick = config.min_election_tick + 1;
    config
}

fn describe(entry: &CommittedEntry) -> String {
    let payload = match &entry.payload {
        EntryPayload::Noop => "noop".to_string(),
        EntryPayload::Data(data) => String::from_utf8_lossy(data).into_owned(),
        EntryPayload::ConfChange { change, outcome } => {
            let changes: Vec<String> = change
                .get_changes()
                .iter()
                .map(|single| format!("{:?}:{}", single.get_change_type(), single.node_id))
                .collect();
            let what = if changes.is_empty() {
                "leave-joint".to_string()
            } else {
                changes.join(",")
            };
            match outcome {
                ConfChangeOutcome::Applied(conf) => {
                    format!("confchange {what} -> {}", membership(conf))
                }
                ConfChangeOutcome::AlreadyApplied => format!("confchange {what} (already applied)"),
                ConfChangeOutcome::Refused(reason) => {
                    format!("confchange {what} refused: {reason}")
                }
            }
        }
    };
    format!("{}@{} {payload}", entry.index, entry.term)
}

pub fn membership(conf: &ConfState) -> String {
    let mut text = format!(
        "voters={:?} learners={:?}",
        sorted(&conf.voters),
        sorted(&conf.learners)
    );
    if !conf.voters_outgoing.is_empty() {
        let _ = write!(text, " outgoing={:?}", sorted(&conf.voters_outgoing));
    }
    if !conf.learners_next.is_empty() {
        let _ = write!(text, " learners_next={:?}", sorted(&conf.learners_next));
    }
    text
}

fn sorted(ids: &[u64]) -> Vec<u64> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids
}

impl<D: Disk> Cluster<D> {
    pub fn new(mut disk: D, size: u64) -> Cluster<D> {
        let voters: Vec<u64> = (1..=size).collect();
        let mut nodes = BTreeMap::new();
        for id in 1..=size {
            let replica =
                Replica::new(config(id, &voters), disk.open(id)).expect("creating a replica");
            nodes.insert(
                id,
                Node {
                    replica: Some(replica),
                    snapshot: None,
                    applied: Vec::new(),
                    proposals: BTreeMap::new(),
                },
            );
        }
        Cluster {
            disk,
            voters,
            nodes,
            queue: VecDeque::new(),
            partition: None,
            events: Vec::new(),
        }
    }

    pub fn replica(&mut self, id: u64) -> &mut Replica<D::Store> {
        self.nodes
            .get_mut(&id)
            .and_then(|node| node.replica.as_mut())
            .unwrap_or_else(|| panic!("node {id} is not running"))
    }

    pub fn take_events(&mut self) -> Vec<String> {
        std::mem::take(&mut self.events)
    }

    fn connected(&self, from: u64, to: u64) -> bool {
        match &self.partition {
            None => true,
            Some(sides) => sides
                .iter()
                .any(|side| side.contains(&from) && side.contains(&to)),
        }
    }

    /// Drains every running node's ready state: queues messages, applies entries, records events.
    pub fn process(&mut self) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            loop {
                let node = self.nodes.get_mut(&id).expect("node exists");
                let Some(replica) = node.replica.as_mut() else {
                    break;
                };
                if !replica.has_ready() {
                    break;
                }
                let out = replica.handle_ready().expect("handle_ready");
                for change in &out.leadership {
                    self.events.push(match change {
                        LeadershipChange::BecameLeader { term } => {
                            format!("n{id}: became leader at term {term}")
                        }
                        LeadershipChange::LostLeadership { term } => {
                            format!("n{id}: lost leadership of term {term}")
                        }
                    });
                }
                if let Some(snapshot) = &out.snapshot {
                    let index = snapshot.get_metadata().index;
                    self.events
                        .push(format!("n{id}: restored snapshot at index {index}"));
                    node.snapshot =
                        Some((index, String::from_utf8_lossy(&snapshot.data).into_owned()));
                    node.applied.clear();
                }
                for entry in &out.committed {
                    let id_of = ProposalId {
                        index: entry.index,
                        term: entry.term,
                    };
                    if let Some(data) = node.proposals.remove(&id_of) {
                        self.events.push(format!(
                            "n{id}: proposal {}@{} ({data}) committed",
                            id_of.index, id_of.term
                        ));
                    }
                    node.applied.push(entry.clone());
                }
                for dropped in &out.dropped_proposals {
                    let data = node.proposals.remove(dropped).unwrap_or_default();
                    self.events.push(format!(
                        "n{id}: proposal {}@{} ({data}) dropped",
                        dropped.index, dropped.term
                    ));
                }
                for unknown in &out.unknown_proposals {
                    let data = node.proposals.remove(unknown).unwrap_or_default();
                    self.events.push(format!(
                        "n{id}: proposal {}@{} ({data}) outcome unknown",
                        unknown.index, unknown.term
                    ));
                }
                for read in &out.read_states {
                    self.events.push(format!(
                        "n{id}: read {} ready at index {}",
                        String::from_utf8_lossy(&read.context),
                        read.index
                    ));
                }
                for outbox in out.messages {
                    self.queue.extend(outbox.messages);
                }
            }
        }
    }

    /// Delivers what is queued now (one network round), then lets every node react. Returns
    /// false if nothing was queued.
    pub fn deliver_round(&mut self) -> bool {
        if self.queue.is_empty() {
            return false;
        }
        let batch: Vec<Message> = self.queue.drain(..).collect();
        for message in batch {
            if !self.connected(message.from, message.to) {
                continue;
            }
            let Some(replica) = self
                .nodes
                .get_mut(&message.to)
                .and_then(|node| node.replica.as_mut())
            else {
                continue;
            };
            let (from, to, kind) = (message.from, message.to, message.get_msg_type());
            if let Err(error) = replica.step(message) {
                self.events
                    .push(format!("n{to}: refused {kind:?} from n{from}: {error}"));
            }
            if kind == MessageType::MsgSnapshot {
                // The transport tells the sender that the snapshot arrived, as a shell must.
                if let Some(sender) = self
                    .nodes
                    .get_mut(&from)
                    .and_then(|node| node.replica.as_mut())
                {
                    sender.report_snapshot(to, true);
                }
            }
        }
        self.process();
        true
    }

    /// Delivers until the network is quiet.
    pub fn deliver_all(&mut self) {
        self.process();
        for _ in 0..10_000 {
            if !self.deliver_round() {
                return;
            }
        }
        panic!("the network never went quiet");
    }

    pub fn tick(&mut self, ids: &[u64], times: usize) {
        for _ in 0..times {
            for id in ids {
                if let Some(replica) = self
                    .nodes
                    .get_mut(id)
                    .and_then(|node| node.replica.as_mut())
                {
                    replica.tick();
                }
            }
            self.deliver_all();
        }
    }

    pub fn running(&self) -> Vec<u64> {
        self.nodes
            .iter()
            .filter(|(_, node)| node.replica.is_some())
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn crash(&mut self, id: u64) {
        let node = self.nodes.get_mut(&id).expect("node exists");
        node.replica = None;
        node.snapshot = None;
        node.applied.clear();
        node.proposals.clear();
        self.queue
            .retain(|message| message.to != id && message.from != id);
        self.disk.crash(id);
    }

    pub fn restart(&mut self, id: u64) {
        self.restart_from_checkpoint(id, 0);
    }

    /// Restarts node `id` with a state machine that already holds entries up to
    /// `applied_index` (as if loaded from a checkpoint).
    pub fn restart_from_checkpoint(&mut self, id: u64, applied_index: u64) {
        let store = self.disk.open(id);
        let mut config = config(id, &self.voters);
        config.applied_index = applied_index;
        let replica = Replica::new(config, store).expect("restarting a replica");
        let node = self.nodes.get_mut(&id).expect("node exists");
        node.replica = Some(replica);
        node.applied.clear();
        self.process();
    }

    /// Proposes `data` on node `id`; the outcome line comes before the events it causes.
    pub fn propose(&mut self, id: u64, data: &str) {
        let result = self.replica(id).propose(data.as_bytes().to_vec());
        let line = match result {
            Ok(proposal) => {
                self.nodes
                    .get_mut(&id)
                    .expect("node exists")
                    .proposals
                    .insert(proposal, data.to_string());
                format!("n{id}: proposed {}@{}", proposal.index, proposal.term)
            }
            Err(error) => format!("n{id}: propose refused: {error}"),
        };
        self.events.push(line);
        self.process();
    }

    pub fn note(&mut self, line: String) {
        self.events.push(line);
    }

    pub fn status_lines(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|(id, node)| match &node.replica {
                None => format!("n{id}: down"),
                Some(replica) => {
                    let role = if replica.is_ready_leader() {
                        "leader (ready)".to_string()
                    } else if replica.is_leader() {
                        "leader (not ready)".to_string()
                    } else {
                        match replica.leader_id() {
                            Some(leader) => format!("follower of n{leader}"),
                            None => "follower (no leader)".to_string(),
                        }
                    };
                    format!(
                        "n{id}: {role} term={} last={} commit={} applied={}",
                        replica.term(),
                        replica.last_index(),
                        replica.commit_index(),
                        replica.applied_index()
                    )
                }
            })
            .collect()
    }

    pub fn applied_lines(&self, id: u64) -> Vec<String> {
        let node = &self.nodes[&id];
        if node.applied.is_empty() {
            return vec![format!("n{id}: nothing applied")];
        }
        node.applied
            .iter()
            .map(|entry| format!("n{id}: {}", describe(entry)))
            .collect()
    }

    /// The data entries a node applied, in order.
    pub fn applied_data(&self, id: u64) -> Vec<String> {
        self.nodes[&id]
            .applied
            .iter()
            .filter_map(|entry| match &entry.payload {
                EntryPayload::Data(data) => Some(String::from_utf8_lossy(data).into_owned()),
                _ => None,
            })
            .collect()
    }

    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .find(|(_, node)| {
                node.replica
                    .as_ref()
                    .is_some_and(|replica| replica.is_leader())
            })
            .map(|(id, _)| *id)
    }
}

fn parse_id(word: &str) -> Result<u64, String> {
    word.trim_start_matches('n')
        .parse()
        .map_err(|_| format!("not a node id: {word}"))
}

fn parse_nodes<D: Disk>(cluster: &Cluster<D>, word: &str) -> Result<Vec<u64>, String> {
    if word == "all" {
        return Ok(cluster.nodes.keys().copied().collect());
    }
    word.split(',').map(parse_id).collect()
}

fn parse_change(word: &str) -> Result<ConfChangeSingle, String> {
    let (kind, node) = word
        .split_once(':')
        .ok_or_else(|| format!("expected kind:node, got {word}"))?;
    let mut change = ConfChangeSingle::default();
    change.set_change_type(match kind {
        "add-voter" => ConfChangeType::AddNode,
        "add-learner" => ConfChangeType::AddLearnerNode,
        "remove" => ConfChangeType::RemoveNode,
        other => return Err(format!("unknown change kind {other}")),
    });
    change.node_id = parse_id(node)?;
    Ok(change)
}

/// Runs one script command and returns its output lines.
fn run_command(cluster: &mut Option<Cluster<MemDisk>>, line: &str) -> Result<Vec<String>, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let (&command, args) = words.split_first().ok_or("empty command")?;
    if command == "cluster" {
        let size = args
            .first()
            .ok_or("cluster needs a size")?
            .parse()
            .map_err(|_| "bad size")?;
        let sync = !args.contains(&"nosync");
        *cluster = Some(Cluster::new(MemDisk::new(sync), size));
        return Ok(Vec::new());
    }
    let cluster = cluster
        .as_mut()
        .ok_or("no cluster yet: start with `cluster N`")?;
    let arg = |position: usize| {
        args.get(position)
            .copied()
            .ok_or_else(|| format!("{command}: missing argument"))
    };
    let mut lines = Vec::new();
    match command {
        "campaign" => {
            let id = parse_id(arg(0)?)?;
            if let Err(error) = cluster.replica(id).campaign() {
                cluster.note(format!("n{id}: campaign failed: {error}"));
            }
            cluster.process();
        }
        "propose" => {
            let id = parse_id(arg(0)?)?;
            cluster.propose(id, arg(1)?);
        }
        "read" => {
            let id = parse_id(arg(0)?)?;
            let context = arg(1)?;
            if let Err(error) = cluster.replica(id).read_index(context.as_bytes().to_vec()) {
                cluster.note(format!("n{id}: read refused: {error}"));
            }
            cluster.process();
        }
        "conf" => {
            let id = parse_id(arg(0)?)?;
            let mut change = ConfChangeV2::default();
            // `joint` forces joint consensus (left automatically) even for one change.
            let mut transition = ConfChangeTransition::Auto;
            for word in &args[1..] {
                if *word == "joint" {
                    transition = ConfChangeTransition::Implicit;
                } else {
                    change.mut_changes().push(parse_change(word)?);
                }
            }
            change.set_transition(transition);
            let line = match cluster.replica(id).propose_conf_change(change) {
                Ok(proposal) => {
                    cluster
                        .nodes
                        .get_mut(&id)
                        .expect("node exists")
                        .proposals
                        .insert(proposal, "conf".to_string());
                    format!("n{id}: proposed {}@{}", proposal.index, proposal.term)
                }
                Err(error) => format!("n{id}: propose refused: {error}"),
            };
            cluster.note(line);
            cluster.process();
        }
        "transfer" => {
            let id = parse_id(arg(0)?)?;
            let to = parse_id(arg(1)?)?;
            cluster.replica(id).transfer_leader(to);
            cluster.process();
        }
        "deliver" => match args.first() {
            None => cluster.deliver_all(),
            Some(rounds) => {
                let rounds: usize = rounds.parse().map_err(|_| "bad round count")?;
                cluster.process();
                for _ in 0..rounds {
                    cluster.deliver_round();
                }
            }
        },
        "tick" => {
            let ids = parse_nodes(cluster, arg(0)?)?;
            let times = arg(1)?.parse().map_err(|_| "bad tick count")?;
            cluster.tick(&ids, times);
        }
        "partition" => {
            let text = args.join(" ");
            let sides = text
                .split('|')
                .map(|side| {
                    side.split_whitespace()
                        .map(parse_id)
                        .collect::<Result<BTreeSet<u64>, String>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            cluster.partition = Some(sides);
        }
        "heal" => cluster.partition = None,
        "crash" => cluster.crash(parse_id(arg(0)?)?),
        "restart" => cluster.restart(parse_id(arg(0)?)?),
        "sync" => {
            let id = parse_id(arg(0)?)?;
            cluster
                .replica(id)
                .flush_and_sync()
                .map_err(|error| error.to_string())?;
        }
        "status" => lines.extend(cluster.status_lines()),
        "applied" => lines.extend(cluster.applied_lines(parse_id(arg(0)?)?)),
        "members" => {
            let id = parse_id(arg(0)?)?;
            let conf = cluster.replica(id).conf_state();
            lines.push(format!("n{id}: {}", membership(&conf)));
        }
        other => return Err(format!("unknown command {other}")),
    }
    let mut out = cluster.take_events();
    out.extend(lines);
    Ok(out)
}

/// Runs the script at `path` and compares its output with the expected output in the file;
/// with `UPDATE_GOLDEN=1` it rewrites the file instead.
///
/// Format: `> command` lines, each followed by its expected output lines; `#` comment lines
/// and blank lines are kept as they are.
pub fn run_script(path: &Path) {
    let source = std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    let mut cluster = None;
    let mut generated = String::new();
    for (number, line) in source.lines().enumerate() {
        if let Some(command) = line.strip_prefix("> ") {
            generated.push_str(line);
            generated.push('\n');
            let output = run_command(&mut cluster, command)
                .unwrap_or_else(|error| panic!("{}:{}: {error}", path.display(), number + 1));
            for output_line in output {
                let _ = writeln!(generated, "{output_line}");
            }
        } else if line.starts_with('#') || line.trim().is_empty() {
            generated.push_str(line);
            generated.push('\n');
        }
    }
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(path, &generated)
            .unwrap_or_else(|error| panic!("writing {}: {error}", path.display()));
        return;
    }
    if generated != source {
        let mut diff = String::new();
        let (want, got): (Vec<&str>, Vec<&str>) =
            (source.lines().collect(), generated.lines().collect());
        for line in 0..want.len().max(got.len()) {
            let (expected, actual) = (want.get(line).copied(), got.get(line).copied());
            if expected != actual {
                let _ = writeln!(
                    diff,
                    "line {}:\n  expected: {expected:?}\n  actual:   {actual:?}",
                    line + 1
                );
            }
        }
        panic!(
            "{} does not match (run with UPDATE_GOLDEN=1 to accept the new output):\n{diff}\nfull output:\n{generated}",
            path.display()
        );
    }
}
