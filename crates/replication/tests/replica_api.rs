//! Tests of the replica's API contracts that the golden scripts do not show: message
//! validation, which messages may leave before the log write, one sync per ready, restart
//! checks, log compaction and the snapshot hook.

#![allow(clippy::field_reassign_with_default)]

mod common;

use std::cell::Cell;

use cairn_replication::eraftpb::{ConfState, Entry, Message, MessageType, Snapshot};
use cairn_replication::wal::{FileLogStore, LogStore, MemLogStore};
use cairn_replication::{
    ProposeError, Replica, ReplicaConfig, ReplicaError, SnapshotSource, StepError, encode_message,
};
use common::{Cluster, MemDisk, config};

fn drain<L: LogStore>(replica: &mut Replica<L>) -> Vec<Message> {
    let mut messages = Vec::new();
    while replica.has_ready() {
        for outbox in replica.handle_ready().unwrap().messages {
            messages.extend(outbox.messages);
        }
    }
    messages
}

/// Three in-memory replicas with node 1 elected by hand (every message delivered until none is
/// left), and their log stores.
fn three_with_node_one_elected() -> (Vec<MemLogStore>, Vec<Replica<MemLogStore>>) {
    node_one_elected(3, |_| {})
}

/// `members` in-memory replicas (ids 1, 2, ...), each configured by `configure` after the
/// defaults, with node 1 elected by hand, and their log stores.
fn node_one_elected(
    members: u64,
    configure: impl Fn(&mut ReplicaConfig),
) -> (Vec<MemLogStore>, Vec<Replica<MemLogStore>>) {
    let voters: Vec<u64> = (1..=members).collect();
    let disk: Vec<MemLogStore> = (0..members).map(|_| MemLogStore::new()).collect();
    let mut replicas: Vec<Replica<MemLogStore>> = (1..=members)
        .map(|id| {
            let mut config = config(id, &voters);
            configure(&mut config);
            Replica::new(config, disk[id as usize - 1].clone()).unwrap()
        })
        .collect();
    replicas[0].campaign().unwrap();
    let mut queue = drain(&mut replicas[0]);
    while !queue.is_empty() {
        let mut next = Vec::new();
        for message in queue {
            let to = message.to as usize - 1;
            replicas[to].step(message).unwrap();
            next.extend(drain(&mut replicas[to]));
        }
        queue = next;
    }
    assert!(replicas[0].is_ready_leader());
    (disk, replicas)
}

#[test]
fn replicas_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Replica<FileLogStore>>();
    assert_send::<Replica<MemLogStore>>();
}

#[test]
fn bad_messages_are_refused_and_change_nothing() {
    let mut replica = Replica::new(config(1, &[1, 2, 3]), MemLogStore::new()).unwrap();
    let mut message = Message::default();
    message.set_msg_type(MessageType::MsgHeartbeat);
    message.from = 2;
    message.to = 9;
    message.term = 1;
    assert!(
        matches!(replica.step(message.clone()), Err(StepError::Invalid(_))),
        "wrong destination"
    );

    for local in [
        MessageType::MsgHup,
        MessageType::MsgBeat,
        MessageType::MsgPropose,
        MessageType::MsgCheckQuorum,
    ] {
        let mut forged = Message::default();
        forged.set_msg_type(local);
        forged.to = 1;
        forged.from = 2;
        assert!(
            matches!(replica.step(forged), Err(StepError::Invalid(_))),
            "{local:?}"
        );
    }

    let mut append = Message::default();
    append.set_msg_type(MessageType::MsgAppend);
    append.to = 1;
    append.from = 2;
    append.term = 5;
    append.index = 0;
    for (index, term) in [(1, 5), (3, 5)] {
        let mut entry = Entry::default();
        entry.index = index;
        entry.term = term;
        append.mut_entries().push(entry);
    }
    assert!(
        matches!(replica.step(append), Err(StepError::Invalid(_))),
        "gap in the entries"
    );

    assert!(matches!(
        replica.step_bytes(&[0xff, 0xff, 0xff]),
        Err(StepError::Decode(_))
    ));
    assert_eq!(replica.term(), 0, "nothing was stepped");

    // A well-formed message still works, as bytes too.
    message.to = 1;
    replica
        .step_bytes(&encode_message(&message).unwrap())
        .unwrap();
    assert_eq!(replica.term(), 1);
    assert_eq!(replica.leader_id(), Some(2));
}

#[test]
fn proposals_need_a_leader_and_data() {
    let mut replica = Replica::new(config(1, &[1, 2, 3]), MemLogStore::new()).unwrap();
    assert_eq!(
        replica.propose(b"x".to_vec()),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    assert_eq!(
        replica.read_index(b"r".to_vec()),
        Err(ProposeError::NotLeader { leader_hint: None })
    );
    let mut single = Replica::new(config(1, &[1]), MemLogStore::new()).unwrap();
    single.campaign().unwrap();
    drain(&mut single);
    assert!(single.is_ready_leader());
    assert!(matches!(
        single.propose(Vec::new()),
        Err(ProposeError::Invalid { .. })
    ));
    let id = single.propose(b"x".to_vec()).unwrap();
    assert_eq!((id.index, id.term), (2, 1));
    assert_eq!(single.pending_proposals(), 1);
    let out = single.handle_ready().unwrap();
    assert_eq!(
        out.committed.last().map(|entry| (entry.index, entry.term)),
        Some((2, 1))
    );
    assert_eq!(single.pending_proposals(), 0);
}

#[test]
fn leader_messages_leave_before_the_write_and_follower_messages_after() {
    let (disk, mut replicas) = three_with_node_one_elected();

    let syncs_before = disk[0].sync_count();
    let proposal = replicas[0].propose(b"one".to_vec()).unwrap();
    replicas[0].propose(b"two".to_vec()).unwrap();
    let leader_store = disk[0].clone();
    let early_count = Cell::new(0);
    let out = replicas[0]
        .handle_ready_with(|outbox| {
            assert!(
                outbox
                    .messages
                    .iter()
                    .all(|m| m.get_msg_type() == MessageType::MsgAppend)
            );
            // Sent before the leader's own write: the entries are not in its log yet.
            assert!(leader_store.last_index() < proposal.index);
            early_count.set(early_count.get() + outbox.messages.len());
        })
        .unwrap();
    // Proposals between two Readies leave as one append per follower, and cost one sync.
    assert_eq!(early_count.get(), 2);
    assert!(out.messages.is_empty());
    assert_eq!(
        disk[0].sync_count(),
        syncs_before + 1,
        "two proposals, one sync"
    );
    assert_eq!(disk[0].last_index(), proposal.index + 1);

    // A follower's answer may only leave after its write.
    let append = {
        let mut appends = Vec::new();
        let _ = replicas[0].handle_ready_with(|outbox| appends.extend(outbox.messages));
        appends
    };
    assert!(append.is_empty(), "nothing new to send");
    let mut to_two = Message::default();
    to_two.set_msg_type(MessageType::MsgAppend);
    // Rebuild the append for node 2 from the leader's log.
    to_two.to = 2;
    to_two.from = 1;
    to_two.term = replicas[0].term();
    to_two.log_term = replicas[0].term();
    to_two.index = proposal.index - 1;
    to_two.commit = replicas[0].commit_index();
    to_two.set_entries(
        disk[0]
            .entries(proposal.index, proposal.index + 2, None)
            .unwrap()
            .into(),
    );
    replicas[1].step(to_two).unwrap();
    let follower_early = Cell::new(0);
    let out = replicas[1]
        .handle_ready_with(|_| follower_early.set(follower_early.get() + 1))
        .unwrap();
    assert_eq!(
        follower_early.get(),
        0,
        "a follower sends nothing before its write"
    );
    assert_eq!(disk[1].last_index(), proposal.index + 1);
    let response = &out.messages[0].messages[0];
    assert_eq!(response.get_msg_type(), MessageType::MsgAppendResponse);
    assert_eq!(response.index, proposal.index + 1);
}

/// The appends of many proposals made between two Readies are merged into one message per
/// follower (one encode, one send, one step and one answer per round instead of per proposal),
/// and the follower answers that message once.
#[test]
fn proposals_between_readies_leave_as_one_append_per_follower() {
    let (_disk, mut replicas) = three_with_node_one_elected();
    let first = replicas[0].propose(b"p0".to_vec()).unwrap();
    for i in 1..20 {
        replicas[0].propose(format!("p{i}").into_bytes()).unwrap();
    }
    let messages = drain(&mut replicas[0]);
    let to_two: Vec<&Message> = messages
        .iter()
        .filter(|m| m.to == 2 && m.get_msg_type() == MessageType::MsgAppend)
        .collect();
    assert_eq!(to_two.len(), 1, "one append to node 2, not one per proposal");
    let indexes: Vec<u64> = to_two[0].get_entries().iter().map(|e| e.index).collect();
    assert_eq!(indexes, (first.index..first.index + 20).collect::<Vec<_>>());
    assert_eq!(to_two[0].index, first.index - 1);

    replicas[1].step(to_two[0].clone()).unwrap();
    let answers = drain(&mut replicas[1]);
    assert_eq!(answers.len(), 1, "one answer for the merged append");
    assert_eq!(answers[0].get_msg_type(), MessageType::MsgAppendResponse);
    assert_eq!(answers[0].index, first.index + 19);
    replicas[0].step(answers[0].clone()).unwrap();
    drain(&mut replicas[0]);
    assert_eq!(replicas[0].commit_index(), first.index + 19);
}

/// With `defer_commit_broadcast`, a commit index that advances is not sent in an append of its
/// own: `commit_unsent` says so, and the next append or `send_commit`'s heartbeat carries it.
#[test]
fn a_deferred_commit_index_travels_with_the_next_append_or_a_heartbeat() {
    let (_disk, mut replicas) = node_one_elected(2, |config| config.defer_commit_broadcast = true);
    if replicas[0].commit_unsent() {
        replicas[0].send_commit();
        for message in drain(&mut replicas[0]) {
            replicas[1].step(message).unwrap();
        }
        drain(&mut replicas[1]);
    }
    assert!(!replicas[0].commit_unsent());

    let first = replicas[0].propose(b"a".to_vec()).unwrap();
    let append = drain(&mut replicas[0]);
    assert_eq!(append.len(), 1);
    replicas[1].step(append[0].clone()).unwrap();
    let ack = drain(&mut replicas[1]);
    replicas[0].step(ack[0].clone()).unwrap();
    let after_commit = drain(&mut replicas[0]);
    assert_eq!(replicas[0].commit_index(), first.index);
    assert!(after_commit.is_empty(), "no append only for the commit index: {after_commit:?}");
    assert!(replicas[0].commit_unsent());
    assert!(replicas[1].commit_index() < first.index);

    // The next proposal's append carries it.
    replicas[0].propose(b"b".to_vec()).unwrap();
    let append = drain(&mut replicas[0]);
    assert_eq!(append.len(), 1);
    assert_eq!(append[0].commit, first.index);
    assert!(!replicas[0].commit_unsent());
    replicas[1].step(append[0].clone()).unwrap();
    let ack = drain(&mut replicas[1]);
    assert_eq!(replicas[1].commit_index(), first.index);
    replicas[0].step(ack[0].clone()).unwrap();
    assert!(drain(&mut replicas[0]).is_empty());
    assert!(replicas[0].commit_unsent());

    // Or a heartbeat, when nothing else goes out.
    replicas[0].send_commit();
    let beats = drain(&mut replicas[0]);
    assert_eq!(beats.len(), 1);
    assert_eq!(beats[0].get_msg_type(), MessageType::MsgHeartbeat);
    assert_eq!(beats[0].commit, first.index + 1);
    assert!(!replicas[0].commit_unsent());
    replicas[1].step(beats[0].clone()).unwrap();
    drain(&mut replicas[1]);
    assert_eq!(replicas[1].commit_index(), first.index + 1);
}

/// Merging stops once a round's proposals pass `max_size_per_msg`, so that a merged append
/// stays within what a follower accepts.
#[test]
fn merged_appends_stop_growing_past_the_message_size_limit() {
    let (_disk, mut replicas) = node_one_elected(2, |config| config.max_size_per_msg = 1000);
    // Ten proposals of 300 bytes: merged until the round passed 1000 bytes, then one each.
    for _ in 0..10 {
        replicas[0].propose(vec![7u8; 300]).unwrap();
    }
    let appends: Vec<Message> = drain(&mut replicas[0])
        .into_iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppend)
        .collect();
    let sizes: Vec<usize> = appends.iter().map(|m| m.get_entries().len()).collect();
    assert_eq!(sizes, vec![4, 1, 1, 1, 1, 1, 1], "merged up to the limit, then one each");
    // The next round merges again.
    for _ in 0..3 {
        replicas[0].propose(vec![7u8; 10]).unwrap();
    }
    let appends: Vec<Message> = drain(&mut replicas[0])
        .into_iter()
        .filter(|m| m.get_msg_type() == MessageType::MsgAppend)
        .collect();
    assert_eq!(appends.len(), 1);
    assert_eq!(appends[0].get_entries().len(), 3);
}

#[test]
fn restart_checks_the_applied_index() {
    let store = MemLogStore::new();
    let mut single = Replica::new(config(1, &[1]), store.clone()).unwrap();
    single.campaign().unwrap();
    drain(&mut single);
    for round in 0..5 {
        single.propose(format!("e{round}").into_bytes()).unwrap();
        drain(&mut single);
    }
    assert_eq!(single.applied_index(), 6);
    assert!(
        matches!(single.compact_log(7), Err(ReplicaError::Config(_))),
        "not applied yet"
    );
    single.compact_log(4).unwrap();
    assert_eq!(store.first_index(), 5);
    drop(single);

    let mut too_far = config(1, &[1]);
    too_far.applied_index = 9;
    assert!(matches!(
        Replica::new(too_far, store.clone()),
        Err(ReplicaError::Config(_))
    ));
    // Entries 1..=4 are gone: an empty state machine cannot start from this log.
    assert!(matches!(
        Replica::new(config(1, &[1]), store.clone()),
        Err(ReplicaError::NeedsSnapshot {
            applied_index: 0,
            first_index: 5
        })
    ));
    // A state machine restored from a checkpoint at 4 can.
    let mut from_checkpoint = config(1, &[1]);
    from_checkpoint.applied_index = 4;
    let mut restarted = Replica::new(from_checkpoint, store).unwrap();
    let out = restarted.handle_ready().unwrap();
    let replayed: Vec<u64> = out.committed.iter().map(|entry| entry.index).collect();
    assert_eq!(replayed, vec![5, 6]);

    let mut bad = config(1, &[1]);
    bad.lease_ticks = 9;
    assert!(matches!(
        Replica::new(bad, MemLogStore::new()),
        Err(ReplicaError::Config(_))
    ));
}

/// Serves a fixed snapshot, as a checkpoint provider will.
struct FixedSnapshot(Snapshot);

impl SnapshotSource for FixedSnapshot {
    fn snapshot(&self, request_index: u64, _to: u64) -> Option<Snapshot> {
        (self.0.get_metadata().index >= request_index).then(|| self.0.clone())
    }
}

#[test]
fn a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let mut cluster = Cluster::new(MemDisk::new(true), 3);
    cluster.tick(&[1, 2, 3], 12);
    assert_eq!(cluster.leader(), Some(1));
    cluster.crash(3);
    for round in 0..6 {
        cluster.propose(1, &format!("row{round}"));
    }
    cluster.deliver_all();
    let applied = cluster.replica(1).applied_index();
    let term = cluster.replica(1).term();
    cluster.replica(1).compact_log(applied).unwrap();
    cluster.replica(2).compact_log(applied).unwrap();

    // Without a snapshot source the leader cannot help node 3, and says so by not sending
    // anything (raft-rs retries later); nothing panics and the group goes on.
    cluster.restart(3);
    cluster.tick(&[1, 2, 3], 4);
    assert!(cluster.replica(3).commit_index() < applied);
    cluster.take_events();

    // With one, node 3 restores the state machine from it and follows the log after it.
    let mut snapshot = Snapshot::default();
    snapshot.data = format!("state at {applied}").into_bytes().into();
    snapshot.mut_metadata().index = applied;
    snapshot.mut_metadata().term = term;
    snapshot
        .mut_metadata()
        .set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    cluster
        .replica(1)
        .set_snapshot_source(Box::new(FixedSnapshot(snapshot)));
    cluster.tick(&[1, 2, 3], 4);
    cluster.propose(1, "after");
    cluster.deliver_all();
    let events = cluster.take_events();
    assert!(
        events.contains(&format!("n3: restored snapshot at index {applied}")),
        "{events:?}"
    );
    assert_eq!(
        cluster.nodes[&3].snapshot,
        Some((applied, format!("state at {applied}")))
    );
    assert_eq!(cluster.applied_data(3), vec!["after".to_string()]);
    assert_eq!(
        cluster.replica(3).commit_index(),
        cluster.replica(1).commit_index()
    );
    // Its log now starts after the snapshot, durably: after a crash it needs the state
    // machine from the snapshot again (a checkpoint, later) to start.
    cluster.crash(3);
    cluster.restart_from_checkpoint(3, applied);
    let store_first = cluster.replica(3).log_store().first_index();
    assert_eq!(store_first, applied + 1);
}

#[test]
fn committed_entries_are_handed_out_before_the_next_write() {
    let (disk, mut replicas) = three_with_node_one_elected();

    // "one" is written by the leader and the followers; their answers commit it on the leader,
    // whose next Ready carries it as committed.
    let one = replicas[0].propose(b"one".to_vec()).unwrap();
    let appends = drain(&mut replicas[0]);
    let mut answers = Vec::new();
    for message in appends {
        let to = message.to as usize - 1;
        replicas[to].step(message).unwrap();
        answers.extend(drain(&mut replicas[to]));
    }
    for answer in answers {
        replicas[0].step(answer).unwrap();
    }
    // "two" is proposed before the leader handles that Ready: the same Ready writes "two".
    let two = replicas[0].propose(b"two".to_vec()).unwrap();
    let syncs_before = disk[0].sync_count();
    let (in_progress, early) = replicas[0].begin_ready(|_| {}).unwrap();
    let early_indexes: Vec<u64> = early.committed.iter().map(|entry| entry.index).collect();
    assert_eq!(early_indexes, vec![one.index], "the committed entry comes out first");
    assert!(disk[0].last_index() < two.index, "before the write of the new entry");
    assert_eq!(disk[0].sync_count(), syncs_before);

    let rest = replicas[0].finish_ready(in_progress).unwrap();
    assert_eq!(disk[0].last_index(), two.index, "the new entry is written by finish_ready");
    assert_eq!(disk[0].sync_count(), syncs_before + 1);
    assert!(
        rest.committed.iter().all(|entry| entry.index != one.index),
        "an entry handed out early is not handed out again"
    );
    assert_eq!(replicas[0].applied_index(), one.index);
}
