//! A short throughput check, not a benchmark and not a timed assertion: how many small
//! proposals per second a single-voter group commits with one `fdatasync` per Raft ready, on
//! this machine's disk, one proposal per ready and 64 per ready (group commit). Run with
//! `cargo test -p cairn-replication --test throughput -- --nocapture` to see the numbers.

use std::time::{Duration, Instant};

use cairn_replication::wal::{FileLogStore, WalIdentity, WalOptions};
use cairn_replication::{EntryPayload, Replica, ReplicaConfig};

fn measure(per_ready: usize, budget: Duration) -> (usize, usize, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let identity = WalIdentity {
        cluster_id: 1,
        node_id: 1,
        group_id: 0,
    };
    let store = FileLogStore::open(dir.path(), WalOptions::new(identity)).unwrap();
    let mut replica = Replica::new(ReplicaConfig::new(0, 1, vec![1]), store).unwrap();
    replica.campaign().unwrap();
    while replica.has_ready() {
        replica.handle_ready().unwrap();
    }
    assert!(replica.is_ready_leader());

    let payload = vec![b'x'; 100];
    let (mut proposed, mut committed, mut readies) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    while start.elapsed() < budget {
        for _ in 0..per_ready {
            replica.propose(payload.clone()).unwrap();
            proposed += 1;
        }
        while replica.has_ready() {
            let out = replica.handle_ready().unwrap();
            readies += 1;
            committed += out
                .committed
                .iter()
                .filter(|entry| matches!(entry.payload, EntryPayload::Data(_)))
                .count();
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(
        committed, proposed,
        "a single voter commits every proposal at once"
    );
    (committed, readies, elapsed)
}

#[test]
fn single_voter_commit_rate_with_fsync() {
    for per_ready in [1, 64] {
        let (committed, readies, elapsed) = measure(per_ready, Duration::from_millis(700));
        let seconds = elapsed.as_secs_f64();
        println!(
            "single voter, fsync per ready, {per_ready:>2} proposal(s) per ready: {:>8.0} proposals/s, \
             {:>6.0} readies/s ({committed} proposals in {seconds:.2} s)",
            committed as f64 / seconds,
            readies as f64 / seconds
        );
    }
}
