//! The backup barrier against transactions caught between prepare and decision.
//!
//! Two SQL nodes are armed to stop themselves (SIGSTOP, `CAIRN_FAILPOINT=<point>:stop`) in the
//! middle of a two-phase commit across node groups: one right after both participants logged
//! their prepare (no decision anywhere yet), one right after the decision group logged its
//! commit (the other participant is still prepared and has not heard). `START BACKUP` is given
//! while both are held there, and a third SQL node keeps running transfers meanwhile. The
//! backup is restored into a fresh cluster of one node group, where every transfer must be all
//! or nothing: the money adds up, the transfer stopped after prepare is wholly absent (presumed
//! abort) and the one stopped after the decision is wholly present.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec, FIRST_SPARE_API_SLOT, cairn_binary};
use mysql_async::prelude::*;

const ACCOUNTS: u32 = 24;
const START_BALANCE: i64 = 1000;
const AMOUNT: i64 = 100;

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

fn direct_connection(cluster: &Cluster, k: usize) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(cluster.mysql_port(k))
        .user(Some("root"))
        .prefer_socket(false)
}

async fn balances(pool: &mysql_async::Pool) -> Vec<(u32, i64)> {
    let mut conn = pool.get_conn().await.unwrap();
    conn.query("SELECT id, balance FROM bank.acct ORDER BY id").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_never_cuts_through_a_transaction_between_prepare_and_decision() {
    let mut source = Cluster::start(ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 3, ..Default::default() })
        .await
        .unwrap();
    let live = source.pool(0, None);
    let mut conn = live.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE bank").await.unwrap();
    conn.query_drop("CREATE TABLE bank.acct (id INT PRIMARY KEY, balance BIGINT NOT NULL)").await.unwrap();
    let rows: Vec<String> = (0..ACCOUNTS).map(|i| format!("({i}, {START_BALANCE})")).collect();
    conn.query_drop(format!("INSERT INTO bank.acct VALUES {}", rows.join(","))).await.unwrap();
    drop(conn);

    // Two transfers, each between accounts of different node groups; the remaining accounts
    // carry the live load.
    let catalog = source.catalog().await.unwrap();
    let def = catalog.table_by_name("bank", "acct").unwrap().clone();
    let group_of = |id: u32| {
        let p = cairn_common::key::partition_of_primary_key(&def, &[cairn_common::Value::Int(id as i64)]).unwrap();
        def.node_group_of(p).unwrap()
    };
    let (a, c) = (0, 1);
    let b = (2..ACCOUNTS).find(|&i| group_of(i) != group_of(a)).expect("accounts on two node groups");
    let d = (2..ACCOUNTS).find(|&i| i != b && group_of(i) != group_of(c)).expect("accounts on two node groups");
    let held = [a, b, c, d];
    let free: Vec<u32> = (0..ACCOUNTS).filter(|i| !held.contains(i)).collect();
    let cross_group_pairs: Vec<(u32, u32)> = free
        .iter()
        .flat_map(|&x| free.iter().map(move |&y| (x, y)))
        .filter(|&(x, y)| group_of(x) != group_of(y))
        .collect();
    assert!(!cross_group_pairs.is_empty());

    // SQL node 101 stops once its transfer is prepared on both node groups; 102 once the
    // decision group has logged its commit.
    for (node, point) in [(101, "after-prepare:stop"), (102, "after-decision:stop")] {
        source.stop(node);
        source.start_node_with_env(node, &[("CAIRN_FAILPOINT", point)]).unwrap();
    }
    source.wait_ready(Duration::from_secs(30)).await.unwrap();

    // The live load: cross-group transfers through SQL node 100 for the whole test.
    let stop_live = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicU64::new(0));
    let live_load = {
        let (pool, stop, committed, pairs) = (live.clone(), stop_live.clone(), committed.clone(), cross_group_pairs.clone());
        tokio::spawn(async move {
            let mut k = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let (from, to) = pairs[k % pairs.len()];
                k += 7;
                let Ok(mut conn) = pool.get_conn().await else { continue };
                let attempt = tokio::time::timeout(Duration::from_secs(15), transfer(&mut conn, from, to, 1)).await;
                if matches!(attempt, Ok(Ok(()))) {
                    committed.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    let mut doomed = Vec::new();
    for (k, (from, to)) in [(1, (a, b)), (2, (c, d))] {
        let opts = direct_connection(&source, k);
        doomed.push(tokio::spawn(async move {
            let mut conn = mysql_async::Conn::new(opts).await?;
            transfer(&mut conn, from, to, AMOUNT).await
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(source.is_stopped(101) && source.is_stopped(102)) {
        assert!(Instant::now() < deadline, "the SQL nodes never reached their failpoints");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let both_held = Instant::now();

    // Both transactions are prepared and undecided on at least one node group: no leader
    // resolves a silent coordinator's transaction before 3 s (`RESOLVE_AFTER`), so a backup
    // started well within that finds them in doubt.
    let output = source.admin("START BACKUP WAIT COMPLETED").await.unwrap();
    let asked_within = both_held.elapsed();
    println!("{output}\n(START BACKUP given and completed {asked_within:?} after both transactions were held)");
    assert!(output.contains("Backup 1 started from node 49 completed"), "{output}");
    stop_live.store(true, Ordering::Relaxed);
    live_load.await.unwrap();
    let live_commits = committed.load(Ordering::Relaxed);
    println!("{live_commits} live transfers committed during the test");
    assert!(live_commits > 0, "the live load made progress");
    // The participants resolved both transactions while the barrier waited for them.
    let resolved = (1..=4)
        .map(|n| std::fs::read_to_string(source.log_path(n)).unwrap_or_default())
        .filter(|log| log.contains("resolving a prepared transaction whose coordinator went silent"))
        .count();
    assert!(resolved > 0, "a participant resolved a prepared transaction of a silent coordinator");
    for node in [101, 102] {
        source.kill9(node);
    }
    for task in doomed {
        let outcome = task.await.unwrap();
        assert!(outcome.is_err(), "a stopped SQL node never answered COMMIT");
    }
    let source_balances = balances(&live).await;

    // Restore into one node group.
    let target = Cluster::start(ClusterSpec { data_nodes: 2, replicas: 2, sql_nodes: 1, spare_api_slots: 1, ..Default::default() })
        .await
        .unwrap();
    let mut command = std::process::Command::new(cairn_binary());
    command.args(["restore", "-c", &target.config.mgmd_addresses().join(","), "-b", "1", "--nodeid"]);
    command.arg(FIRST_SPARE_API_SLOT.to_string()).arg("--config").arg(&target.config_path);
    for n in 1..=4 {
        command.arg("--backup-path").arg(source.data_dir(n));
    }
    let restored = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&restored.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&restored.stderr));
    assert!(restored.status.success(), "cairn restore failed");

    let pool = target.pool(0, None);
    let restored = balances(&pool).await;
    let balance = |rows: &[(u32, i64)], id: u32| rows.iter().find(|(i, _)| *i == id).map(|(_, b)| *b);
    assert_eq!(restored.len(), ACCOUNTS as usize, "every account was restored");
    assert_eq!(
        restored.iter().map(|(_, b)| b).sum::<i64>(),
        ACCOUNTS as i64 * START_BALANCE,
        "money was created or lost in the backup: a transaction was cut in half"
    );
    assert_eq!(
        (balance(&restored, a), balance(&restored, b)),
        (Some(START_BALANCE), Some(START_BALANCE)),
        "the transfer held after prepare had no decision: wholly absent"
    );
    assert_eq!(
        (balance(&restored, c), balance(&restored, d)),
        (Some(START_BALANCE - AMOUNT), Some(START_BALANCE + AMOUNT)),
        "the transfer held after its commit decision: wholly present"
    );
    // The source came to the same outcome for both held transfers.
    for id in held {
        assert_eq!(balance(&source_balances, id), balance(&restored, id), "account {id}: source and backup disagree");
    }
    pool.disconnect().await.unwrap();
    live.disconnect().await.unwrap();
}
