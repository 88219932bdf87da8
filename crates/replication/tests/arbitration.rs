//! NDB's two-replica node group going on with one replica after arbitration, in Raft terms:
//! the survivor forces itself the only voter (under the arbitrator's grant), commits alone, then
//! takes the lost replica back as a learner and promotes it once caught up.

mod common;

use cairn_replication::eraftpb::{ConfChangeSingle, ConfChangeType, ConfChangeV2};
use common::{Cluster, MemDisk};

fn change(kind: ConfChangeType, node: u64) -> ConfChangeV2 {
    let mut single = ConfChangeSingle::default();
    single.set_change_type(kind);
    single.node_id = node;
    let mut change = ConfChangeV2::default();
    change.mut_changes().push(single);
    change
}

fn settle(cluster: &mut Cluster<MemDisk>) {
    for _ in 0..20 {
        let running = cluster.running();
        cluster.tick(&running, 1);
        cluster.deliver_all();
    }
}

#[test]
fn a_two_voter_group_goes_on_with_one_after_arbitration_and_takes_the_other_back() {
    let mut cluster = Cluster::new(MemDisk::new(true), 2);
    cluster.tick(&[1, 2], 12);
    cluster.deliver_all();
    assert_eq!(cluster.leader(), Some(1));
    cluster.propose(1, "a");
    cluster.deliver_all();
    assert_eq!(cluster.applied_data(2), vec!["a"]);
    let epoch_before = cluster.replica(1).conf_epoch();

    // Replica 2 is lost: with two voters nothing commits any more.
    cluster.crash(2);
    cluster.propose(1, "b");
    settle(&mut cluster);
    assert!(!cluster.applied_data(1).contains(&"b".to_string()), "a two-voter group needs both");

    // The arbitrator granted node 1: it forces itself the only voter and goes on alone.
    cluster.replica(1).force_voters(&[1]).unwrap();
    assert!(cluster.replica(1).conf_epoch() > epoch_before, "a new membership epoch");
    cluster.replica(1).campaign().unwrap();
    settle(&mut cluster);
    assert!(cluster.replica(1).is_ready_leader());
    cluster.propose(1, "c");
    settle(&mut cluster);
    assert_eq!(cluster.applied_data(1), vec!["a", "b", "c"], "b, never acknowledged, commits now; c commits alone");

    // Replica 2 comes back with its old membership: it cannot take over (it needs node 1's vote)
    // and node 1 takes it back as a learner, then as a voter once it caught up.
    cluster.restart(2);
    settle(&mut cluster);
    assert_eq!(cluster.leader(), Some(1));
    cluster.replica(1).propose_conf_change(change(ConfChangeType::AddLearnerNode, 2)).unwrap();
    settle(&mut cluster);
    let last = cluster.replica(1).last_index();
    assert_eq!(cluster.replica(1).peer_matched(2), Some(last), "the learner caught up");
    cluster.replica(1).propose_conf_change(change(ConfChangeType::AddNode, 2)).unwrap();
    settle(&mut cluster);
    assert_eq!(cluster.replica(1).conf_state().voters.len(), 2);
    assert_eq!(cluster.applied_data(2), vec!["a", "b", "c"]);

    // Both are voters again: a commit needs both, and both apply it.
    cluster.propose(1, "d");
    settle(&mut cluster);
    assert_eq!(cluster.applied_data(2), vec!["a", "b", "c", "d"]);
    cluster.crash(2);
    cluster.propose(1, "e");
    settle(&mut cluster);
    assert!(!cluster.applied_data(1).contains(&"e".to_string()), "two voters again: one alone cannot commit");
}

#[test]
fn a_forced_membership_survives_a_restart() {
    let mut cluster = Cluster::new(MemDisk::new(true), 2);
    cluster.tick(&[1, 2], 12);
    cluster.deliver_all();
    cluster.propose(1, "a");
    cluster.deliver_all();
    cluster.crash(2);
    cluster.replica(1).force_voters(&[1]).unwrap();
    cluster.replica(1).campaign().unwrap();
    settle(&mut cluster);
    cluster.propose(1, "b");
    settle(&mut cluster);
    // The survivor restarts (its membership came from disk) and leads alone at once.
    cluster.crash(1);
    cluster.restart(1);
    settle(&mut cluster);
    assert_eq!(cluster.replica(1).conf_state().voters, vec![1]);
    assert!(cluster.replica(1).is_ready_leader());
    cluster.propose(1, "c");
    settle(&mut cluster);
    assert!(cluster.applied_data(1).ends_with(&["c".to_string()]));
}
