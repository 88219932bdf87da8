//! Durability and recovery against real processes: acknowledged writes survive kill -9 of one
//! replica, of the other, and of everything at once (with both DiskSync modes); checkpoints run
//! under load and keep the Raft log bounded; NDB's restart commands; damaged checkpoints and
//! logs are detected at start and recovered from a replica; a directory of another node is
//! refused.
//!
//! The clusters use NoOfReplicas = 2: while one replica of a node group is down, that group
//! commits nothing until the survivor has won arbitration (ArbitrationTimeout, 1 s in tests) and
//! goes on alone; the writers see errors meanwhile. They count only what was acknowledged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec};
use mysql_async::prelude::*;

/// Checkpoints start after 64 KiB of log (NDB's unit: 2^14 words), and at least every 2 s;
/// log segments of 1 MiB so that truncation shows.
const FAST_CHECKPOINTS: &str = "TimeBetweenLocalCheckpoints = 14\nMaxTimeBetweenLocalCheckpoints = 2000\n\
     FragmentLogFileSize = \"1M\"\nMinDiskWriteSpeed = \"20M\"\nMaxDiskWriteSpeed = \"80M\"";

fn payload(id: u64) -> String {
    format!("row-{id}-{}", "p".repeat((id % 50) as usize))
}

/// Writers that insert single rows (autocommit) through their own SQL node as fast as they can,
/// remembering which inserts were acknowledged and which failed (outcome unknown).
struct Writers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<(Vec<u64>, Vec<u64>)>>,
}

impl Writers {
    fn start(pools: &[mysql_async::Pool], table: &'static str) -> Writers {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (k, pool) in pools.iter().enumerate() {
            let (pool, stop) = (pool.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                let (mut acked, mut failed) = (Vec::new(), Vec::new());
                let mut id = (k as u64 + 1) * 1_000_000_000;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    let insert = async {
                        let mut conn = pool.get_conn().await?;
                        conn.exec_drop(format!("INSERT INTO {table} VALUES (?, ?)"), (id, payload(id))).await
                    };
                    match tokio::time::timeout(Duration::from_secs(5), insert).await {
                        Ok(Ok(())) => acked.push(id),
                        _ => {
                            failed.push(id);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                (acked, failed)
            }));
        }
        Writers { stop, tasks }
    }

    async fn finish(self) -> (BTreeSet<u64>, BTreeSet<u64>) {
        self.stop.store(true, Ordering::Relaxed);
        let (mut acked, mut failed) = (BTreeSet::new(), BTreeSet::new());
        for task in self.tasks {
            let (a, f) = task.await.expect("a writer panicked");
            acked.extend(a);
            failed.extend(f);
        }
        (acked, failed)
    }
}

async fn wait_writes_flow(pool: &mysql_async::Pool, table: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let mut before = None;
    loop {
        let count = async {
            let mut conn = pool.get_conn().await.ok()?;
            conn.query_first::<u64, _>(format!("SELECT COUNT(*) FROM {table}")).await.ok().flatten()
        };
        let count = tokio::time::timeout(Duration::from_secs(5), count).await.ok().flatten();
        if let (Some(now), Some(then)) = (count, before)
            && now > then
        {
            return;
        }
        if count.is_some() {
            before = count;
        }
        assert!(Instant::now() < deadline, "writes did not resume within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

async fn conn_query<T: FromRow + Send + 'static>(pool: &mysql_async::Pool, query: &str) -> Vec<T> {
    pool.get_conn().await.unwrap().query(query).await.unwrap()
}

async fn create_table(pool: &mysql_async::Pool, database: &str, table: &str) {
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop(format!("CREATE DATABASE IF NOT EXISTS {database}")).await.unwrap();
    conn.query_drop(format!("CREATE TABLE {database}.{table} (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(100) NOT NULL)"))
        .await
        .unwrap();
}

/// kill -9 of one replica, then the other, then every process at once, with writes going on
/// through two SQL nodes; returns (acknowledged, lost).
async fn crash_everything_while_writing(disk_sync: &str) -> (usize, usize) {
    let extra = format!("{FAST_CHECKPOINTS}\nDiskSync = \"{disk_sync}\"");
    let spec = ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 2, cluster_extra: extra, ..Default::default() };
    let mut cluster = Cluster::start(spec).await.unwrap();
    let pools = [cluster.pool(0, None), cluster.pool(1, None)];
    create_table(&pools[0], "crash", "t").await;
    // An ordered index: not in checkpoints, rebuilt from the rows of every restored partition.
    pools[0].get_conn().await.unwrap().query_drop("CREATE INDEX kv ON crash.t (v)").await.unwrap();
    let writers = Writers::start(&pools, "crash.t");
    wait_writes_flow(&pools[0], "crash.t", Duration::from_secs(20)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // One replica of node group 0, then the other; writes to that group resume each time.
    for victim in [1, 2] {
        cluster.kill9(victim);
        tokio::time::sleep(Duration::from_secs(2)).await;
        cluster.start_node(victim).unwrap();
        cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
        wait_writes_flow(&pools[1], "crash.t", Duration::from_secs(30)).await;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Everything at once: management, data and SQL nodes.
    let all: Vec<u32> = vec![49, 1, 2, 3, 4, 100, 101];
    for id in &all {
        cluster.kill9(*id);
    }
    let (acked, failed) = writers.finish().await;
    for id in [49, 1, 2, 3, 4, 100, 101] {
        cluster.start_node(id).unwrap();
    }
    cluster.wait_ready(Duration::from_secs(90)).await.unwrap();
    let mut conn = pools[0].get_conn().await.unwrap();
    let rows: Vec<(u64, String)> = conn.query("SELECT id, v FROM crash.t").await.unwrap();
    drop(conn);
    let present: BTreeMap<u64, String> = rows.into_iter().collect();
    let lost = acked.iter().filter(|id| !present.contains_key(id)).count();
    // A range over the ordered index gives the rows in index order, once the restored
    // partitions have rebuilt it (until then the query scans).
    let mut by_value: Vec<(String, u64)> = present.iter().map(|(id, v)| (v.clone(), *id)).collect();
    by_value.sort();
    let ranged: Vec<(String, u64)> =
        conn_query(&pools[0], "SELECT v, id FROM crash.t WHERE v >= 'row-' ORDER BY v, id").await;
    assert_eq!(ranged, by_value, "the ordered index after the restarts");
    for (id, v) in &present {
        assert!(acked.contains(id) || failed.contains(id), "row {id} was never written");
        assert_eq!(v, &payload(*id), "row {id} is not whole");
    }
    // Both replicas of every node group hold the same rows.
    for (x, y) in [(1, 2), (3, 4)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = cluster.replica_rows(x, "crash", "t").await.unwrap();
            let right = cluster.replica_rows(y, "crash", "t").await.unwrap();
            if left == right {
                break;
            }
            assert!(Instant::now() < deadline, "replicas {x} and {y} differ after the restart");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    println!(
        "DiskSync = {disk_sync}: {} writes acknowledged, {} failed or unknown, {} rows after the restarts, {lost} acknowledged writes lost",
        acked.len(),
        failed.len(),
        present.len()
    );
    for pool in pools {
        pool.disconnect().await.unwrap();
    }
    (acked.len(), lost)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill9_of_each_replica_and_of_everything() {
    let (acked, lost) = crash_everything_while_writing("Commit").await;
    assert!(acked > 100, "the writers got too little done: {acked}");
    assert_eq!(lost, 0, "DiskSync = Commit must lose no acknowledged write");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_sync_interval_loses_nothing_on_process_crashes() {
    // Interval mode only delays the fsync: every entry is written to the kernel before it is
    // acknowledged, so killing processes loses nothing; only an operating-system crash or power
    // loss of every replica can lose the last TimeBetweenGlobalCheckpoints (docs/operations.md).
    let (acked, lost) = crash_everything_while_writing("Interval").await;
    assert!(acked > 100, "the writers got too little done: {acked}");
    assert_eq!(lost, 0, "kill -9 loses nothing even with DiskSync = Interval");
}

// ----- Checkpoints and the log -----

fn dir_bytes(dir: &Path, suffix: &str) -> (u64, Vec<u64>) {
    let mut total = 0;
    let mut sequences = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                total += entry.metadata().map_or(0, |m| m.len());
                if let Some(seq) = path.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()) {
                    sequences.push(seq);
                }
            }
        }
    }
    sequences.sort_unstable();
    (total, sequences)
}

/// Complete checkpoint ids under a data directory.
fn checkpoints(data_dir: &Path) -> Vec<u64> {
    let mut ids: Vec<u64> = std::fs::read_dir(data_dir.join("lcp"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().join("MANIFEST").exists())
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    ids.sort_unstable();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_complete_under_load_and_the_raft_log_stops_growing() {
    let spec = ClusterSpec { cluster_extra: FAST_CHECKPOINTS.into(), ..Default::default() };
    let cluster = Cluster::start(spec).await.unwrap();
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE ck").await.unwrap();
    conn.query_drop("CREATE TABLE ck.t (id INT PRIMARY KEY, n INT NOT NULL, body VARCHAR(2000) NOT NULL)").await.unwrap();
    // A steady working set of 2,000 rows of 1 KiB, then updates that rewrite them.
    for batch in 0..20 {
        let values: Vec<String> =
            (0..100).map(|i| format!("({}, 0, '{}')", batch * 100 + i, "b".repeat(1000))).collect();
        conn.query_drop(format!("INSERT INTO ck.t VALUES {}", values.join(","))).await.unwrap();
    }
    let raft = cluster.data_dir(2).join("raft");
    // Four writers rewrite the rows until about 3.5 MiB of log were written (1 KiB per update),
    // however long that takes on this machine (bounded): the test is about how much log there
    // is, not how fast it was written.
    const UPDATES: u64 = 3_500;
    const WRITERS: u64 = 4;
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (pool, done, stop) = (pool.clone(), done.clone(), stop.clone());
        writers.push(tokio::spawn(async move {
            let mut conn = pool.get_conn().await.unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let id = (n * WRITERS + writer) % 2000;
                conn.exec_drop("UPDATE ck.t SET n = n + 1, body = ? WHERE id = ?", (format!("{n:0>1000}"), id))
                    .await
                    .unwrap();
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let updates = done.load(Ordering::Relaxed);
        let (bytes, segments) = dir_bytes(&raft, ".wal");
        let ids = checkpoints(&cluster.data_dir(2));
        samples.push((updates, bytes, segments.clone(), ids.clone()));
        println!(
            "t={:>3}s updates={updates:>6} raft log={:>8} bytes in segments {:?} checkpoints={ids:?}",
            started.elapsed().as_secs(),
            bytes,
            segments
        );
        if updates >= UPDATES {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(240), "only {updates} updates in four minutes");
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let newest_segment = samples.iter().flat_map(|s| s.2.iter().copied()).max().unwrap_or(0);
    let last = samples.last().unwrap();
    let checkpoint_ids: BTreeSet<u64> = samples.iter().flat_map(|s| s.3.iter().copied()).collect();
    assert!(checkpoint_ids.len() >= 3, "checkpoints completed while the updates ran: {checkpoint_ids:?}");
    assert!(newest_segment >= 4, "the updates wrote at least 4 MiB of log (segments up to {newest_segment})");
    // The log on disk is the part behind the older of two checkpoints: a few segments, however
    // much was written.
    let late_max = samples.iter().filter(|s| s.0 >= UPDATES / 2).map(|s| s.1).max().unwrap_or(0);
    assert!(last.2.len() <= 5 && late_max <= 6 << 20, "the Raft log kept growing: {:?}", samples.iter().map(|s| s.1).collect::<Vec<_>>());
    drop(conn);
    // The follower's state equals the leader's.
    let left = cluster.replica_rows(1, "ck", "t").await.unwrap();
    let right = cluster.replica_rows(2, "ck", "t").await.unwrap();
    assert_eq!(left.len(), 2000);
    assert_eq!(left, right);
    pool.disconnect().await.unwrap();
}

// ----- NDB's restart commands -----

async fn status(cluster: &Cluster, node: u32) -> String {
    cluster.admin(&format!("{node} STATUS")).await.unwrap()
}

async fn wait_status(cluster: &Cluster, node: u32, want: &str, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let now = status(cluster, node).await;
        if now.contains(want) {
            return now;
        }
        assert!(Instant::now() < deadline, "node {node} did not reach '{want}' within {timeout:?}; last: {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn count(pool: &mysql_async::Pool, table: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let mut conn = pool.get_conn().await?;
            conn.query_first::<u64, _>(format!("SELECT COUNT(*) FROM {table}")).await
        };
        match attempt.await {
            Ok(Some(n)) => return n,
            other => {
                assert!(Instant::now() < deadline, "cannot count {table}: {other:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn insert_rows(pool: &mysql_async::Pool, table: &str, ids: std::ops::Range<u64>) {
    let mut conn = pool.get_conn().await.unwrap();
    for chunk in ids.collect::<Vec<_>>().chunks(200) {
        let values: Vec<String> = chunk.iter().map(|id| format!("({id}, '{}')", payload(*id))).collect();
        conn.query_drop(format!("INSERT INTO {table} VALUES {}", values.join(","))).await.unwrap();
    }
}

/// Waits until both replicas hold the same rows and returns how many.
async fn replicas_agree(cluster: &Cluster, nodes: (u32, u32), database: &str, table: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = cluster.replica_rows(nodes.0, database, table).await;
        let right = cluster.replica_rows(nodes.1, database, table).await;
        if let (Ok(left), Ok(right)) = (&left, &right)
            && left == right
        {
            return left.len();
        }
        assert!(Instant::now() < deadline, "replicas {nodes:?} disagree: {} vs {}", left.map_or(0, |l| l.len()), right.map_or(0, |r| r.len()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_and_system_restarts_follow_ndb_commands() {
    let spec = ClusterSpec { cluster_extra: FAST_CHECKPOINTS.into(), ..Default::default() };
    let mut cluster = Cluster::start(spec).await.unwrap();
    let pool = cluster.pool(0, None);
    create_table(&pool, "rs", "t").await;
    insert_rows(&pool, "rs.t", 0..3000).await;

    // N RESTART: stops, starts, loads its checkpoint, replays, catches up.
    let out = cluster.admin("2 RESTART").await.unwrap();
    assert!(out.contains("Node 2: Node shutdown initiated") && out.contains("Node 2 is being restarted"), "{out}");
    wait_status(&cluster, 2, "Node 2: started", Duration::from_secs(60)).await;
    insert_rows(&pool, "rs.t", 3000..3500).await;
    assert_eq!(replicas_agree(&cluster, (1, 2), "rs", "t").await, 3500);

    // N RESTART -n: stops and waits; N START starts it.
    let out = cluster.admin("2 RESTART -n").await.unwrap();
    assert!(out.contains("restarting, no start"), "{out}");
    let waiting = wait_status(&cluster, 2, "not started", Duration::from_secs(30)).await;
    assert!(waiting.starts_with("Node 2: not started"), "{waiting}");
    let show = cluster.admin("SHOW").await.unwrap();
    assert!(show.contains("not started, Nodegroup: 0"), "{show}");
    let out = cluster.admin("2 START").await.unwrap();
    assert_eq!(out, "Database node 2 is being started.");
    wait_status(&cluster, 2, "Node 2: started", Duration::from_secs(60)).await;

    // N RESTART -i: wipes its files and copies everything from the live replica. The leader has
    // truncated its log behind its checkpoints, so that copy is a snapshot.
    let before = checkpoints(&cluster.data_dir(1)).last().copied().unwrap_or(0);
    insert_rows(&pool, "rs.t", 3500..6000).await;
    // Two checkpoints of node 1 after the inserts: its log is truncated behind the older one.
    let deadline = Instant::now() + Duration::from_secs(60);
    while checkpoints(&cluster.data_dir(1)).iter().filter(|id| **id > before).count() < 2 {
        assert!(Instant::now() < deadline, "node 1 wrote no checkpoints after the inserts");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let out = cluster.admin("2 RESTART -i").await.unwrap();
    assert!(out.contains("restarting, initial"), "{out}");
    wait_status(&cluster, 2, "Node 2: started", Duration::from_secs(90)).await;
    assert_eq!(replicas_agree(&cluster, (1, 2), "rs", "t").await, 6000);
    let log = std::fs::read_to_string(cluster.log_path(2)).unwrap();
    assert!(log.contains("initial start: checkpoints and Raft log removed"), "the node wiped its files");
    assert!(log.contains("installed a snapshot from a live replica"), "the copy came as a snapshot of a checkpoint");

    // N STOP: the node (and its angel) exit.
    let out = cluster.admin("2 STOP").await.unwrap();
    assert!(out.contains("Node 2 has shutdown."), "{out}");
    let exit = cluster.wait_exit(2, Duration::from_secs(20)).expect("node 2 exited after N STOP");
    assert!(exit.success(), "node 2 exited with {exit}");
    assert_eq!(status(&cluster, 2).await, "Node 2: not connected");
    cluster.start_node(2).unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();

    // ALL RESTART: a system restart; every node recovers from its own disk.
    let out = cluster.admin("ALL RESTART").await.unwrap();
    assert!(out.contains("All DB nodes are being restarted."), "{out}");
    for node in [1, 2] {
        wait_status(&cluster, node, &format!("Node {node}: started"), Duration::from_secs(90)).await;
    }
    assert_eq!(count(&pool, "rs.t").await, 6000);

    // SHUTDOWN, then start everything again.
    let out = cluster.admin("SHUTDOWN").await.unwrap();
    assert!(out.contains("2 NDB Cluster node(s) have shutdown."), "{out}");
    for node in [1, 2, 49] {
        assert!(cluster.wait_exit(node, Duration::from_secs(30)).is_some(), "node {node} exited after SHUTDOWN");
    }
    for node in [49, 1, 2] {
        cluster.start_node(node).unwrap();
    }
    let system_restart = Instant::now();
    cluster.wait_ready(Duration::from_secs(90)).await.unwrap();
    println!("system restart (SHUTDOWN, start every process) took {:?} until every node started", system_restart.elapsed());
    assert_eq!(count(&pool, "rs.t").await, 6000);
    assert_eq!(replicas_agree(&cluster, (1, 2), "rs", "t").await, 6000);
    // What the restarts took, as the data nodes logged it (for the operator's notes).
    for node in [1, 2] {
        let log = std::fs::read_to_string(cluster.log_path(node)).unwrap_or_default();
        for line in log.lines().filter(|l| {
            l.contains("local checkpoint restored") || l.contains("installed a snapshot") || l.contains("node started")
        }) {
            println!("node {node}: {line}");
        }
    }
    pool.disconnect().await.unwrap();
}

// ----- Damaged files -----

fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn flip_byte(path: &Path, at: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = (at as usize).min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    std::fs::write(path, bytes).unwrap();
}

/// A cluster of two replicas with rows, where node 2 has complete checkpoints and node 1 has
/// truncated its log (so recovering node 2 takes a snapshot).
async fn cluster_with_checkpoints() -> (Cluster, mysql_async::Pool) {
    let spec = ClusterSpec { cluster_extra: FAST_CHECKPOINTS.into(), ..Default::default() };
    let cluster = Cluster::start(spec).await.unwrap();
    let pool = cluster.pool(0, None);
    create_table(&pool, "dmg", "t").await;
    insert_rows(&pool, "dmg.t", 0..4000).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while checkpoints(&cluster.data_dir(2)).len() < 2 || checkpoints(&cluster.data_dir(1)).len() < 2 {
        assert!(Instant::now() < deadline, "no checkpoints were written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (cluster, pool)
}

async fn restart_and_expect_recovery(cluster: &mut Cluster, pool: &mysql_async::Pool, what: &str) {
    cluster.start_node(2).unwrap();
    // The node reports what it found while it recovers, then serves the replica's rows.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut saw_notice = false;
    loop {
        let now = status(cluster, 2).await;
        saw_notice |= now.contains(what);
        if now.contains("Node 2: started") {
            saw_notice |= now.contains(what);
            break;
        }
        assert!(Instant::now() < deadline, "node 2 did not recover: {now}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(saw_notice, "N STATUS never said '{what}'");
    let log = std::fs::read_to_string(cluster.log_path(2)).unwrap();
    assert!(log.contains(what), "the log names the damage ('{what}')");
    assert_eq!(replicas_agree(cluster, (1, 2), "dmg", "t").await, 4000);
    assert_eq!(count(pool, "dmg.t").await, 4000);
    let damaged: Vec<PathBuf> = std::fs::read_dir(cluster.data_dir(2))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("damaged-")))
        .collect();
    assert!(!damaged.is_empty(), "the damaged files were moved aside");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_checkpoint_is_refused_and_the_node_recovers_from_its_replica() {
    let (mut cluster, pool) = cluster_with_checkpoints().await;
    cluster.stop(2);
    // A flipped byte in every checkpoint of node 2 (so there is nothing to fall back to), and
    // a truncated file.
    let files = files_under(&cluster.data_dir(2).join("lcp"), ".lcp");
    assert!(files.len() >= 2, "checkpoint data files: {files:?}");
    for (k, file) in files.iter().enumerate() {
        if k == 0 {
            let len = std::fs::metadata(file).unwrap().len();
            std::fs::OpenOptions::new().write(true).open(file).unwrap().set_len(len / 2).unwrap();
        } else {
            flip_byte(file, 100 + k as u64 * 7);
        }
    }
    restart_and_expect_recovery(&mut cluster, &pool, "was damaged").await;
    pool.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_raft_log_is_refused_and_the_node_recovers_from_its_replica() {
    let (mut cluster, pool) = cluster_with_checkpoints().await;
    cluster.stop(2);
    let segments = files_under(&cluster.data_dir(2).join("raft"), ".wal");
    let first = segments.first().expect("a log segment");
    // Inside a record in the middle of the first segment: not a torn tail.
    let len = std::fs::metadata(first).unwrap().len();
    assert!(len > 2048, "segment {first:?} holds records");
    flip_byte(first, len / 3);
    restart_and_expect_recovery(&mut cluster, &pool, "the Raft log was damaged").await;
    pool.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_data_directory_is_refused_until_an_initial_restart() {
    let (mut cluster, pool) = cluster_with_checkpoints().await;
    cluster.stop(2);
    // Node 1's files in node 2's place.
    let (source, target) = (cluster.data_dir(1), cluster.data_dir(2));
    std::fs::remove_dir_all(&target).unwrap();
    copy_dir(&source, &target);
    let _ = std::fs::remove_file(target.join("raft").join("0").join("LOCK"));
    cluster.start_node(2).unwrap();
    let refused = wait_status(&cluster, 2, "not started", Duration::from_secs(30)).await;
    assert!(refused.contains("refusing to start") && refused.contains("node 1"), "{refused}");
    // The operator's way out: an initial node restart copies everything from the replica.
    let out = cluster.admin("2 RESTART -i").await.unwrap();
    assert!(out.contains("Node 2 is being restarted"), "{out}");
    wait_status(&cluster, 2, "Node 2: started", Duration::from_secs(90)).await;
    assert_eq!(replicas_agree(&cluster, (1, 2), "dmg", "t").await, 4000);
    pool.disconnect().await.unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// A node that lost its log must never win arbitration: it may lack committed writes, and going
/// on alone would make its empty store the node group's truth and then replace the other
/// replica's rows with it. Node 1 is frozen (SIGSTOP, a hung machine) while node 2 does an
/// initial restart: node 2 must wait for it, not lead, and nothing may be lost once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_log_waits_for_its_replica_instead_of_going_on_alone() {
    let mut cluster = Cluster::start(ClusterSpec::default()).await.unwrap();
    let pool = cluster.pool(0, None);
    create_table(&pool, "ar", "t").await;
    insert_rows(&pool, "ar.t", 0..500).await;

    cluster.signal(1, libc::SIGSTOP);
    cluster.stop(2);
    cluster.start_node_with(2, &["--initial"], &[]).unwrap();
    // Several ArbitrationTimeouts (1 s in tests) with the other replica silent.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let log = std::fs::read_to_string(cluster.log_path(2)).unwrap();
    let wiped_at = log.rfind("initial start: checkpoints and Raft log removed").expect("node 2 did an initial start");
    assert!(!log[wiped_at..].contains("arbitration won"), "node 2 went on alone without its log");
    assert!(!status(&cluster, 2).await.starts_with("Node 2: started"), "node 2 started without its log");

    cluster.signal(1, libc::SIGCONT);
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    assert_eq!(count(&pool, "ar.t").await, 500, "rows were lost");
    assert_eq!(replicas_agree(&cluster, (1, 2), "ar", "t").await, 500);
    pool.disconnect().await.unwrap();
}
