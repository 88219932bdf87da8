//! Transactions across node groups against real processes: atomic transfers under concurrency,
//! and SQL nodes dying in the middle of two-phase commit.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec};
use mysql_async::prelude::*;

const ACCOUNTS: u32 = 24;
const START_BALANCE: i64 = 1000;

async fn create_bank(pool: &mysql_async::Pool) {
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE bank").await.unwrap();
    conn.query_drop("CREATE TABLE bank.acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)").await.unwrap();
    let rows: Vec<String> = (0..ACCOUNTS).map(|i| format!("({i}, {START_BALANCE})")).collect();
    conn.query_drop(format!("INSERT INTO bank.acct VALUES {}", rows.join(","))).await.unwrap();
}

async fn total(pool: &mysql_async::Pool) -> (i64, u64) {
    let mut conn = pool.get_conn().await.unwrap();
    let row: (i64, u64) = conn.query_first("SELECT SUM(balance), COUNT(*) FROM bank.acct").await.unwrap().unwrap();
    row
}

/// One transfer in a transaction, locking the source row first as an application would.
async fn transfer(conn: &mut mysql_async::Conn, from: u32, to: u32, amount: i64) -> Result<(), mysql_async::Error> {
    conn.query_drop("BEGIN").await?;
    let result = async {
        let balance: Option<i64> = conn.exec_first("SELECT balance FROM bank.acct WHERE id = ? FOR UPDATE", (from,)).await?;
        if balance.unwrap_or(0) >= amount {
            conn.exec_drop("UPDATE bank.acct SET balance = balance - ? WHERE id = ?", (amount, from)).await?;
            conn.exec_drop("UPDATE bank.acct SET balance = balance + ? WHERE id = ?", (amount, to)).await?;
        }
        conn.query_drop("COMMIT").await
    }
    .await;
    if result.is_err() {
        let _ = conn.query_drop("ROLLBACK").await;
    }
    result
}

/// Every row can be locked exclusively: no lock is left behind (a leftover lock makes the locking
/// read wait and fail with 1205). Retries until `within`, since a dead coordinator's prepared
/// transactions are resolved a few seconds after it died.
async fn no_lock_left(pool: &mysql_async::Pool, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let mut conn = pool.get_conn().await.unwrap();
        let attempt = async {
            conn.query_drop("BEGIN").await?;
            let locked: Vec<i64> = conn.query("SELECT balance FROM bank.acct FOR UPDATE").await?;
            conn.query_drop("ROLLBACK").await?;
            Ok::<usize, mysql_async::Error>(locked.len())
        };
        match attempt.await {
            Ok(n) => {
                assert_eq!(n, ACCOUNTS as usize, "the locking read saw every account");
                return;
            }
            Err(e) if Instant::now() < deadline => {
                println!("rows still locked ({e}); waiting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("locks left behind after {within:?}: {e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transfers_through_two_sql_nodes_keep_the_total_while_one_is_killed() {
    let mut cluster = Cluster::start(ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 2, ..Default::default() })
        .await
        .unwrap();
    let first = cluster.pool(0, None);
    let second = cluster.pool(1, None);
    create_bank(&first).await;

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..8u32 {
        let port = cluster.mysql_port((w % 2) as usize);
        let (stop, committed, failed) = (stop.clone(), committed.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            let mut seed = 0x2545_f491_4f6c_dd1du64.wrapping_mul(w as u64 + 1);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                seed
            };
            let opts = |port: u16| {
                mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(port).user(Some("root")).prefer_socket(false)
            };
            let mut conn = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    conn = mysql_async::Conn::new(opts(port)).await.ok();
                    if conn.is_none() {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                }
                let from = (next() % ACCOUNTS as u64) as u32;
                let to = (from + 1 + (next() % (ACCOUNTS as u64 - 1)) as u32) % ACCOUNTS;
                let amount = 1 + (next() % 50) as i64;
                let attempt = tokio::time::timeout(Duration::from_secs(20), transfer(conn.as_mut().unwrap(), from, to, amount)).await;
                match attempt {
                    Ok(Ok(())) => {
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Err(mysql_async::Error::Server(_))) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        // The connection broke (its SQL node was killed): reconnect.
                        failed.fetch_add(1, Ordering::Relaxed);
                        conn = None;
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    // kill -9 the second SQL node while transfers (some mid-commit) run through it.
    cluster.kill9(101);
    tokio::time::sleep(Duration::from_secs(2)).await;
    cluster.start_node(101).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let committed = committed.load(Ordering::Relaxed);
    println!("{committed} transfers committed, {} failed or retried", failed.load(Ordering::Relaxed));
    assert!(committed > 50, "transfers made progress ({committed})");
    no_lock_left(&first, Duration::from_secs(20)).await;
    assert_eq!(total(&first).await, (ACCOUNTS as i64 * START_BALANCE, ACCOUNTS as u64), "money was created or lost");
    assert_eq!(total(&second).await, (ACCOUNTS as i64 * START_BALANCE, ACCOUNTS as u64));
    first.disconnect().await.unwrap();
    second.disconnect().await.unwrap();
}

/// A transfer between two accounts on different node groups, through an SQL node armed to die at
/// `failpoint`. Returns the balances afterwards (read through the other SQL node).
async fn transfer_killed_at(failpoint: &str) -> (i64, i64) {
    let mut cluster = Cluster::start(ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 2, ..Default::default() })
        .await
        .unwrap();
    let survivor = cluster.pool(0, None);
    create_bank(&survivor).await;
    // Two accounts that live on different node groups.
    let catalog = cluster.catalog().await.unwrap();
    let def = catalog.table_by_name("bank", "acct").unwrap().clone();
    let group_of = |id: u32| {
        let p = cairn_common::key::partition_of_primary_key(&def, &[cairn_common::Value::Int(id as i64)]).unwrap();
        def.node_group_of(p).unwrap()
    };
    let a = 0;
    let b = (1..ACCOUNTS).find(|&i| group_of(i) != group_of(a)).expect("accounts on two node groups");

    cluster.stop(101);
    cluster.start_node_with_env(101, &[("CAIRN_FAILPOINT", failpoint)]).unwrap();
    cluster.wait_ready(Duration::from_secs(30)).await.unwrap();
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(cluster.mysql_port(1))
        .user(Some("root"))
        .prefer_socket(false);
    let mut doomed = mysql_async::Conn::new(opts).await.unwrap();
    let result = transfer(&mut doomed, a, b, 100).await;
    assert!(result.is_err(), "the SQL node died before answering COMMIT");
    assert!(cluster.wait_exit(101, Duration::from_secs(10)).is_some(), "the SQL node died at {failpoint}");
    let died = Instant::now();

    // The participants resolve the transaction through the decision group: all or nothing, and
    // its locks go, within a bounded time.
    no_lock_left(&survivor, Duration::from_secs(20)).await;
    println!("locks released {:?} after the SQL node died at {failpoint}", died.elapsed());
    let mut conn = survivor.get_conn().await.unwrap();
    let x: i64 = conn.exec_first("SELECT balance FROM bank.acct WHERE id = ?", (a,)).await.unwrap().unwrap();
    let y: i64 = conn.exec_first("SELECT balance FROM bank.acct WHERE id = ?", (b,)).await.unwrap().unwrap();
    assert_eq!(total(&survivor).await.0, ACCOUNTS as i64 * START_BALANCE);
    drop(conn);
    survivor.disconnect().await.unwrap();
    (x, y)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_dying_after_prepare_leaves_nothing_applied() {
    let (a, b) = transfer_killed_at("after-prepare").await;
    assert_eq!((a, b), (START_BALANCE, START_BALANCE), "no decision was logged: presumed abort");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_dying_after_the_decision_leaves_everything_applied() {
    let (a, b) = transfer_killed_at("after-decision").await;
    assert_eq!((a, b), (START_BALANCE - 100, START_BALANCE + 100), "the decision group logged commit: every participant commits");
}
