//! End-to-end tests of the backbone: real processes, real TCP, real Raft, a real MySQL client.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec, raw};
use mysql_async::prelude::*;

fn rows_per_node(report: &str, table: &str) -> Vec<(u32, u64)> {
    report
        .lines()
        .filter(|l| l.contains(&format!(": {table}: ")))
        .filter_map(|l| {
            let node = l.strip_prefix("Node ")?.split(':').next()?.parse().ok()?;
            let rows = l.split(": ").nth(2)?.split(' ').next()?.parse().ok()?;
            Some((node, rows))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_spread_over_node_groups_and_every_sql_node_sees_them() {
    let cluster = Cluster::start(ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 2, ..Default::default() })
        .await
        .unwrap();
    let first = cluster.pool(0, None);
    let second = cluster.pool(1, None);
    let mut a = first.get_conn().await.unwrap();
    a.query_drop("CREATE DATABASE calmail").await.unwrap();
    a.query_drop(
        "CREATE TABLE calmail.account (id INT UNSIGNED NOT NULL PRIMARY KEY, localpart VARCHAR(64) NOT NULL, \
         host VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL DEFAULT 'active')",
    )
    .await
    .unwrap();
    for batch in 0..4u32 {
        let values: Vec<String> =
            (0..500u32).map(|i| batch * 500 + i).map(|id| format!("({id}, 'user{id}', 'imap{}', 'active')", id % 7)).collect();
        a.query_drop(format!("INSERT INTO calmail.account VALUES {}", values.join(","))).await.unwrap();
    }

    // Written through one SQL node, read through the other.
    let mut b = second.get_conn().await.unwrap();
    let (count, sum): (u64, u64) = b.query_first("SELECT COUNT(*), SUM(id) FROM calmail.account").await.unwrap().unwrap();
    assert_eq!((count, sum), (2000, 1999 * 2000 / 2));
    let row: Option<(u32, String, String)> =
        b.exec_first("SELECT id, localpart, host FROM calmail.account WHERE id = ?", (1234u32,)).await.unwrap();
    assert_eq!(row, Some((1234, "user1234".into(), "imap2".into())));
    let hosts: Vec<String> = b.query("SELECT DISTINCT host FROM calmail.account WHERE id < 10 ORDER BY host").await.unwrap();
    assert_eq!(hosts, (0..7).map(|i| format!("imap{i}")).collect::<Vec<_>>());

    // Both node groups hold part of the table, and both replicas of each group hold the same rows.
    // The report comes from heartbeats, and a follower applies a commit a moment after the
    // leader acknowledged it: poll until every node has reported every row.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (report, per_node) = loop {
        let report = cluster.admin("ALL REPORT TABLES").await.unwrap();
        let per_node: std::collections::BTreeMap<u32, u64> = rows_per_node(&report, "calmail.account").into_iter().collect();
        let complete = per_node.len() == 4
            && per_node.get(&1) == per_node.get(&2)
            && per_node.get(&3) == per_node.get(&4)
            && per_node.get(&1).unwrap_or(&0) + per_node.get(&3).unwrap_or(&0) == 2000;
        if complete || Instant::now() > deadline {
            break (report, per_node);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(per_node.len(), 4, "every data node reports the table:\n{report}");
    assert!(per_node[&1] > 0 && per_node[&3] > 0, "both node groups hold rows:\n{report}");
    assert_eq!(per_node[&1] + per_node[&3], 2000, "{report}");
    for (x, y) in [(1, 2), (3, 4)] {
        let left = cluster.replica_rows(x, "calmail", "account").await.unwrap();
        let right = cluster.replica_rows(y, "calmail", "account").await.unwrap();
        assert_eq!(left.len() as u64, per_node[&x]);
        assert_eq!(left, right, "replicas {x} and {y} differ");
    }

    // DDL through the second SQL node is visible through the first.
    b.query_drop("CREATE TABLE calmail.domain (id INT PRIMARY KEY, name VARCHAR(255))").await.unwrap();
    a.query_drop("INSERT INTO calmail.domain VALUES (1, 'berkeley.edu')").await.unwrap();
    let name: Option<String> = b.query_first("SELECT name FROM calmail.domain WHERE id = 1").await.unwrap();
    assert_eq!(name.as_deref(), Some("berkeley.edu"));
    drop((a, b));
    first.disconnect().await.unwrap();
    second.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_leader_of_three_replicas_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start(ClusterSpec { data_nodes: 3, replicas: 3, sql_nodes: 1, ..Default::default() })
        .await
        .unwrap();
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE d").await.unwrap();
    conn.query_drop("CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20))").await.unwrap();
    drop(conn);

    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4i32 {
        let pool = pool.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), 0u32);
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let result = async {
                    let mut conn = pool.get_conn().await?;
                    conn.exec_drop("INSERT INTO d.t VALUES (?, 'x')", (i,)).await
                };
                match tokio::time::timeout(Duration::from_secs(15), result).await {
                    Ok(Ok(())) => acked.push(i),
                    _ => failed += 1,
                }
                i += 4;
            }
            (acked, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let leaders = cluster.leaders().await.unwrap();
    assert_eq!(leaders.len(), 1, "one node group, one primary");
    let victim = leaders[0];
    let killed_at = Instant::now();
    cluster.kill9(victim);
    tokio::time::sleep(Duration::from_secs(4)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acked = BTreeSet::new();
    let mut failed = 0;
    for w in writers {
        let (a, f) = w.await.unwrap();
        acked.extend(a);
        failed += f;
    }

    let mut conn = pool.get_conn().await.unwrap();
    let present: BTreeSet<i32> = conn.query("SELECT id FROM d.t").await.unwrap().into_iter().collect();
    let lost: Vec<&i32> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged writes lost after killing node {victim}: {lost:?}");
    let after_failover = conn
        .query_first::<u64, _>(format!("SELECT COUNT(*) FROM d.t WHERE id > {}", acked.iter().max().unwrap_or(&0) - 200))
        .await
        .unwrap();
    assert!(after_failover.unwrap_or(0) > 0, "writes went on after the failover");
    println!(
        "{} writes acknowledged, {failed} failed around the failover, none lost; killed node {victim} {:?} before the end",
        acked.len(),
        killed_at.elapsed()
    );
    let survivors: Vec<u32> = [1, 2, 3].into_iter().filter(|n| *n != victim).collect();
    // The survivors converge on the same rows.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let x = cluster.replica_rows(survivors[0], "d", "t").await.unwrap();
        let y = cluster.replica_rows(survivors[1], "d", "t").await.unwrap();
        if x == y && x.len() == present.len() {
            break;
        }
        assert!(Instant::now() < deadline, "surviving replicas did not converge");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(conn);
    pool.disconnect().await.unwrap();
}

async fn threads_connected(pool: &mysql_async::Pool) -> u64 {
    let mut conn = pool.get_conn().await.unwrap();
    let row: Option<(String, String)> = conn.query_first("SHOW STATUS LIKE 'Threads_connected'").await.unwrap();
    row.and_then(|(_, v)| v.parse().ok()).unwrap_or(u64::MAX)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_pipelining_for_a_minute_and_garbage_do_no_harm() {
    let seconds: u64 = std::env::var("CAIRN_SOAK_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let mut cluster = Cluster::start(ClusterSpec::default()).await.unwrap();
    let port = cluster.mysql_port(0);
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE soak").await.unwrap();
    conn.query_drop("CREATE TABLE soak.t (id INT PRIMARY KEY, v VARCHAR(32), n INT NOT NULL DEFAULT 0)").await.unwrap();
    conn.query_drop("INSERT INTO soak.t (id, v) VALUES (1, 'one'), (2, 'two'), (3, 'three')").await.unwrap();
    drop(conn);
    let baseline = threads_connected(&pool).await;

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for c in 0..64u32 {
        tasks.push(tokio::spawn(async move {
            let opts = mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(port).user(Some("root")).prefer_socket(false);
            let mut conn = mysql_async::Conn::new(opts).await.expect("connect");
            let mut ops = 0u64;
            let mut i = 0u32;
            while Instant::now() < deadline {
                i += 1;
                let key = 1 + i % 3;
                let v: Option<String> = conn.exec_first("SELECT v FROM soak.t WHERE id = ?", (key,)).await.expect("prepared select");
                assert!(v.is_some());
                let n: Option<u64> = conn.query_first("SELECT COUNT(*) FROM soak.t WHERE id < 4").await.expect("query");
                assert_eq!(n, Some(3));
                let id = 1000 + c * 1_000_000 + i;
                conn.exec_drop("INSERT INTO soak.t (id, v) VALUES (?, ?)", (id, format!("c{c}"))).await.expect("insert");
                if i % 50 == 0 {
                    // A fresh statement each time: prepare, execute, close.
                    let stmt = conn.prep(format!("SELECT id FROM soak.t WHERE id = {key}")).await.expect("prepare");
                    let _: Vec<u32> = conn.exec(&stmt, ()).await.expect("execute");
                    conn.close(stmt).await.expect("close");
                }
                ops += 4;
            }
            conn.disconnect().await.expect("disconnect");
            ops
        }));
    }
    // Meanwhile: pipelined commands in single writes, and garbage of every kind.
    let garbage = tokio::spawn(async move {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut pipelined = 0;
        while Instant::now() < deadline {
            let mut stream = raw::login(port, "root").await.expect("raw login");
            let kinds = raw::pipeline(&mut stream, &["SET @a = 1", "SET @b = 2", "SET @c = @a + @b", "USE soak", "SET NAMES utf8mb4"]).await.expect("pipelined");
            assert!(kinds.iter().all(|k| *k == 0), "every pipelined statement answered OK: {kinds:?}");
            pipelined += 1;
            // Then bytes no client would send, after login and instead of a handshake.
            let mut junk = Vec::new();
            for _ in 0..(next() % 20) {
                let len = (next() % 64) as usize;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                junk.extend_from_slice(&raw::frame(next() as u8, &payload));
            }
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(&junk).await;
            drop(stream);
            if let Ok(mut fresh) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let payload: Vec<u8> = (0..(next() % 200)).map(|_| next() as u8).collect();
                let _ = fresh.write_all(&payload).await;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        pipelined
    });
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a client task failed");
    }
    let pipelined = garbage.await.expect("the garbage task failed");
    assert!(cluster.is_running(100), "the SQL node is still up");
    // Connections from the garbage senders are gone once their sockets close.
    let settle = Instant::now() + Duration::from_secs(20);
    let mut now = threads_connected(&pool).await;
    while now > baseline && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(200)).await;
        now = threads_connected(&pool).await;
    }
    assert!(now <= baseline, "connections leaked: {now} open, {baseline} before");
    println!("{total} statements over 64 connections and {pipelined} pipelined/garbage rounds in {seconds} s; {now} connections open after");
    pool.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_keeps_every_row() {
    let mut cluster = Cluster::start(ClusterSpec::default()).await.unwrap();
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE r").await.unwrap();
    conn.query_drop("CREATE TABLE r.t (id BIGINT PRIMARY KEY, note TEXT)").await.unwrap();
    for i in 0..20 {
        conn.exec_drop("INSERT INTO r.t VALUES (?, ?)", (i, format!("note {i}"))).await.unwrap();
    }
    conn.query_drop("UPDATE r.t SET note = 'changed' WHERE id = 7").await.unwrap();
    conn.query_drop("DELETE FROM r.t WHERE id = 8").await.unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
    for id in [100, 1, 2, 49] {
        cluster.stop(id);
    }
    for id in [49, 1, 2, 100] {
        cluster.start_node(id).unwrap();
    }
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    let count: Option<u64> = conn.query_first("SELECT COUNT(*) FROM r.t").await.unwrap();
    assert_eq!(count, Some(19));
    let note: Option<String> = conn.query_first("SELECT note FROM r.t WHERE id = 7").await.unwrap();
    assert_eq!(note.as_deref(), Some("changed"));
    drop(conn);
    pool.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_management_nodes_and_none_on_the_data_path() {
    let mut cluster = Cluster::start(ClusterSpec { mgmds: 3, ..Default::default() }).await.unwrap();
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE m").await.unwrap();
    conn.query_drop("CREATE TABLE m.t (id INT PRIMARY KEY, v INT)").await.unwrap();
    conn.query_drop("INSERT INTO m.t VALUES (1, 1)").await.unwrap();
    drop(conn);

    // Losing any one management node leaves a majority: DDL goes on, through whichever
    // management node the SQL node reaches (a follower forwards it to the leader).
    for (down, back) in [(49, None), (59, Some(49)), (69, Some(59))] {
        if let Some(id) = back {
            cluster.start_node(id).unwrap();
        }
        cluster.kill9(down);
        let mut conn = pool.get_conn().await.unwrap();
        let table = format!("m.after_{down}");
        let started = Instant::now();
        loop {
            match conn.query_drop(format!("CREATE TABLE {table} (id INT PRIMARY KEY)")).await {
                Ok(()) => break,
                Err(e) if started.elapsed() < Duration::from_secs(30) => {
                    println!("DDL while management node {down} is down: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("DDL failed with management node {down} down: {e}"),
            }
        }
        conn.query_drop(format!("INSERT INTO {table} VALUES (7)")).await.unwrap();
    }

    // With every management node down, reads and writes go on.
    for id in [49, 59, 69] {
        cluster.kill9(id);
    }
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("INSERT INTO m.t VALUES (2, 2)").await.unwrap();
    conn.query_drop("UPDATE m.t SET v = v + 10 WHERE id = 1").await.unwrap();
    let rows: Vec<(i32, i32)> = conn.query("SELECT id, v FROM m.t ORDER BY id").await.unwrap();
    assert_eq!(rows, vec![(1, 11), (2, 2)]);
    drop(conn);
    pool.disconnect().await.unwrap();
}

/// Inserts rows `ids` one at a time, retrying each until `deadline`; returns the acknowledged ones.
async fn insert_until_acked(pool: &mysql_async::Pool, ids: std::ops::Range<i32>, deadline: Instant) -> Vec<i32> {
    let mut acked = Vec::new();
    for id in ids {
        loop {
            let attempt = async {
                let mut conn = pool.get_conn().await?;
                conn.exec_drop("INSERT INTO d.t VALUES (?, 'x')", (id,)).await
            };
            match tokio::time::timeout(Duration::from_secs(15), attempt).await {
                Ok(Ok(())) => {
                    acked.push(id);
                    break;
                }
                Ok(Err(mysql_async::Error::Server(e))) if e.code == 1062 => {
                    // An earlier attempt whose answer was lost did insert it.
                    acked.push(id);
                    break;
                }
                _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
                other => panic!("insert {id} did not go through before the deadline: {other:?}"),
            }
        }
    }
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_lose_either_one_and_go_on_after_arbitration() {
    let mut cluster = Cluster::start(ClusterSpec::default()).await.unwrap();
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE d").await.unwrap();
    conn.query_drop("CREATE TABLE d.t (id INT PRIMARY KEY, v VARCHAR(20))").await.unwrap();
    drop(conn);
    let mut acked = insert_until_acked(&pool, 0..20, Instant::now() + Duration::from_secs(10)).await;

    // Lose the primary: the survivor asks the arbitrator, wins, and goes on alone.
    let first_victim = cluster.leaders().await.unwrap()[0];
    let survivor = 3 - first_victim;
    cluster.kill9(first_victim);
    let lost_at = Instant::now();
    while cluster.leaders().await.unwrap_or_default() != vec![survivor] && lost_at.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("node {survivor} leads alone {:?} after losing node {first_victim}", lost_at.elapsed());
    acked.extend(insert_until_acked(&pool, 20..40, Instant::now() + Duration::from_secs(30)).await);
    println!("writes went on {:?} after losing node {first_victim}", lost_at.elapsed());
    assert_eq!(cluster.leaders().await.unwrap(), vec![survivor]);

    // The lost replica comes back, catches up as a learner, and becomes a voter again.
    cluster.start_node(first_victim).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let back = cluster.replica_rows(first_victim, "d", "t").await.unwrap_or_default();
        if back.len() == 40 && back == cluster.replica_rows(survivor, "d", "t").await.unwrap() {
            break;
        }
        assert!(Instant::now() < deadline, "the restarted replica did not catch up ({} rows)", back.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the promotion to voter a moment, then lose the other replica: the restarted one
    // must go on (it can only if it became a voter holding every committed write).
    tokio::time::sleep(Duration::from_secs(2)).await;
    acked.extend(insert_until_acked(&pool, 40..50, Instant::now() + Duration::from_secs(10)).await);
    cluster.kill9(survivor);
    acked.extend(insert_until_acked(&pool, 50..60, Instant::now() + Duration::from_secs(30)).await);

    let mut conn = pool.get_conn().await.unwrap();
    let present: std::collections::BTreeSet<i32> = conn.query("SELECT id FROM d.t").await.unwrap().into_iter().collect();
    let lost: Vec<&i32> = acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert_eq!(present.len(), 60);
    drop(conn);
    pool.disconnect().await.unwrap();
}
