//! A three-node group whose replicas log to real files: commit entries, crash every node at
//! once (drop without a clean close), reopen from disk, and check that nothing committed was
//! lost and that the group elects a leader again and goes on.

mod common;

use common::{Cluster, FileDisk};

#[test]
fn whole_cluster_crash_recovers_from_disk() {
    let root = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::new(
        FileDisk {
            root: root.path().to_path_buf(),
        },
        3,
    );
    cluster.tick(&[1, 2, 3], 12);
    let leader = cluster
        .leader()
        .expect("a leader after the election timeout");
    let mut committed = Vec::new();
    for round in 0..20 {
        let data = format!("row-{round}");
        cluster.propose(leader, &data);
        committed.push(data);
        if round % 5 == 4 {
            cluster.deliver_all();
        }
    }
    cluster.deliver_all();
    cluster.take_events();
    for id in 1..=3 {
        assert_eq!(
            cluster.applied_data(id),
            committed,
            "node {id} before the crash"
        );
    }
    let commit_before = cluster.replica(leader).commit_index();

    // One uncommitted entry: reaches the followers' files but nobody learns it committed.
    cluster.propose(leader, "in-flight");
    cluster.deliver_round();

    // Power cut: every replica is dropped; only the files remain.
    for id in 1..=3 {
        cluster.crash(id);
    }
    for id in 1..=3 {
        cluster.restart(id);
    }
    // Each node replays what its own disk says was committed, before any network traffic.
    for id in 1..=3 {
        let applied = cluster.applied_data(id);
        assert!(
            applied.len() <= committed.len() + 1,
            "node {id} replayed {applied:?}"
        );
        assert_eq!(
            &applied[..applied.len().min(committed.len())],
            &committed[..applied.len().min(committed.len())]
        );
    }

    cluster.tick(&[1, 2, 3], 14);
    let new_leader = cluster.leader().expect("the group elects a leader again");
    assert!(cluster.replica(new_leader).is_ready_leader());
    cluster.propose(new_leader, "after-restart");
    cluster.deliver_all();
    cluster.tick(&[1, 2, 3], 2);

    let commit_after = cluster.replica(new_leader).commit_index();
    assert!(commit_after > commit_before);
    for id in 1..=3 {
        let applied = cluster.applied_data(id);
        // Every entry committed before the crash, in order, then possibly the in-flight entry
        // (it was on a majority's disks, so the new leader may commit it), then the new one.
        assert_eq!(
            &applied[..committed.len()],
            &committed[..],
            "node {id} after the restart"
        );
        let rest: Vec<&str> = applied[committed.len()..]
            .iter()
            .map(String::as_str)
            .collect();
        assert!(
            rest == ["in-flight", "after-restart"] || rest == ["after-restart"],
            "node {id} applied {rest:?} after the committed entries"
        );
        assert_eq!(cluster.replica(id).commit_index(), commit_after);
    }
    // The logs are real files in per-node directories.
    for id in 1..=3 {
        let dir = FileDisk::dir(root.path(), id);
        assert!(std::fs::read_dir(&dir).unwrap().any(|item| {
            item.unwrap()
                .path()
                .extension()
                .is_some_and(|ext| ext == "wal")
        }));
    }
}
