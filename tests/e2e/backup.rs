//! Online backup and restore against real processes: `START BACKUP` while two SQL nodes keep
//! inserting, `cairn restore` into a fresh cluster with another number of node groups, and the
//! restored rows are exactly the backup's cut (a prefix of every writer's sequence, holding
//! everything acknowledged before the backup began and nothing sent after it ended).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec, FIRST_SPARE_API_SLOT, cairn_binary};
use mysql_async::prelude::*;

/// One writer's attempts: id → (sent, answered, acknowledged).
type Log = BTreeMap<u64, (Instant, Instant, bool)>;

fn start_writer(pool: mysql_async::Pool, base: u64, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Log> {
    tokio::spawn(async move {
        let mut log = Log::new();
        let mut id = base;
        while !stop.load(Ordering::Relaxed) {
            id += 1;
            let sent = Instant::now();
            let insert = async {
                let mut conn = pool.get_conn().await?;
                conn.exec_drop("INSERT INTO bk.t VALUES (?, ?)", (id, format!("v{id}"))).await
            };
            let ok = matches!(tokio::time::timeout(Duration::from_secs(10), insert).await, Ok(Ok(())));
            log.insert(id, (sent, Instant::now(), ok));
        }
        log
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_during_writes_restores_into_a_cluster_with_another_node_group_count() {
    let source = Cluster::start(ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 2, ..Default::default() })
        .await
        .unwrap();
    let pools = [source.pool(0, None), source.pool(1, None)];
    let mut conn = pools[0].get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE bk").await.unwrap();
    conn.query_drop("CREATE TABLE bk.t (id BIGINT UNSIGNED PRIMARY KEY, v VARCHAR(100) NOT NULL)").await.unwrap();
    // A unique and an ordered index: backups hold neither; the restore writes the unique
    // index's entries and the target's data nodes build the ordered one.
    conn.query_drop(
        "CREATE TABLE bk.seq (id INT AUTO_INCREMENT PRIMARY KEY, note VARCHAR(20), UNIQUE KEY u_note (note), KEY k_id_note (note, id))",
    )
    .await
    .unwrap();
    for k in 0..30 {
        conn.exec_drop("INSERT INTO bk.seq (note) VALUES (?)", (format!("n{k}"),)).await.unwrap();
    }
    // A stored function is part of the schema a backup carries.
    conn.query_drop("CREATE FUNCTION bk.twice(x INT) RETURNS INT DETERMINISTIC RETURN x * 2").await.unwrap();
    drop(conn);
    // An account with a password and a grant: both are part of what a backup carries.
    let mut conn = pools[0].get_conn().await.unwrap();
    conn.query_drop("CREATE USER 'exim'@'%' IDENTIFIED BY 'exim-secret'").await.unwrap();
    conn.query_drop("GRANT SELECT ON bk.* TO 'exim'@'%'").await.unwrap();
    drop(conn);

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = pools
        .iter()
        .enumerate()
        .map(|(k, pool)| start_writer(pool.clone(), (k as u64 + 1) << 32, stop.clone()))
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = Instant::now();
    let output = source.admin("START BACKUP WAIT COMPLETED").await.unwrap();
    let after = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let mut logs = Vec::new();
    for writer in writers {
        logs.push(writer.await.unwrap());
    }
    println!("{output}");
    assert!(output.contains("Backup 1 started from node 49 completed"), "{output}");
    let records: u64 = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("#Records: ")?.split(' ').next()?.parse().ok())
        .expect("#Records in the output");
    // Each data node that wrote a part left a complete control file in its data directory.
    let parts: Vec<u32> = [1, 2, 3, 4]
        .into_iter()
        .filter(|n| source.data_dir(*n).join(format!("BACKUP/BACKUP-1/BACKUP-1.{n}.ctl")).exists())
        .collect();
    assert_eq!(parts.len(), 2, "one part per node group: {parts:?}");

    // A second backup gets the next id.
    let second = source.admin("START BACKUP NOWAIT").await.unwrap();
    assert!(second.contains("Backup 2 started from node 49"), "{second}");

    // Restore into a cluster of one node group.
    let target = Cluster::start(ClusterSpec { data_nodes: 2, replicas: 2, sql_nodes: 1, spare_api_slots: 1, ..Default::default() })
        .await
        .unwrap();
    let mut command = std::process::Command::new(cairn_binary());
    command.args(["restore", "-c", &target.config.mgmd_addresses().join(","), "-b", "1", "--nodeid"]);
    command.arg(FIRST_SPARE_API_SLOT.to_string()).arg("--config").arg(&target.config_path);
    for n in [1, 2, 3, 4] {
        command.arg("--backup-path").arg(source.data_dir(n));
    }
    let restored = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&restored.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&restored.stderr));
    assert!(restored.status.success(), "cairn restore failed");
    assert!(stdout.contains("NDBT_ProgramExit: 0 - OK"), "{stdout}");

    let pool = target.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    let ids: BTreeSet<u64> = conn.query::<u64, _>("SELECT id FROM bk.t").await.unwrap().into_iter().collect();
    let seq: u64 = conn.query_first("SELECT COUNT(*) FROM bk.seq").await.unwrap().unwrap();
    assert_eq!(ids.len() as u64 + seq, records, "the restored rows are the backup's #Records");
    assert_eq!(seq, 30);
    let mut total_acked = 0;
    for (k, log) in logs.iter().enumerate() {
        let mine: BTreeSet<u64> = ids.iter().copied().filter(|id| log.contains_key(id)).collect();
        total_acked += log.values().filter(|(_, _, ok)| *ok).count();
        for (id, (sent, answered, ok)) in log {
            if *ok && *answered < before {
                assert!(mine.contains(id), "writer {k}: row {id}, acknowledged before START BACKUP, is missing");
            }
            if *sent > after {
                assert!(!mine.contains(id), "writer {k}: row {id}, sent after the backup completed, is in it");
            }
        }
        // One point in time: what a writer got into the backup is a prefix of what it wrote.
        if let Some(&last) = mine.iter().max() {
            let gaps: Vec<u64> =
                log.iter().filter(|(id, (_, _, ok))| **id < last && *ok && !mine.contains(id)).map(|(id, _)| *id).collect();
            assert!(gaps.is_empty(), "writer {k}: the backup holds {last} but not the earlier {gaps:?}");
        }
        let v: Option<String> = conn.exec_first("SELECT v FROM bk.t WHERE id = ?", (*mine.iter().next().unwrap(),)).await.unwrap();
        assert!(v.is_some_and(|v| v.starts_with('v')));
    }
    println!("{} rows restored of {total_acked} acknowledged by the end", ids.len());
    // The unique index works in the target: a lookup by its key, and a duplicate refused.
    let found: Option<u64> = conn.query_first("SELECT id FROM bk.seq WHERE note = 'n7'").await.unwrap();
    assert_eq!(found, Some(8), "a unique-key lookup after the restore");
    let duplicate = conn.query_drop("INSERT INTO bk.seq (note) VALUES ('n5')").await;
    assert!(
        matches!(&duplicate, Err(mysql_async::Error::Server(e)) if e.code == 1062),
        "a duplicate of a restored unique key is refused: {duplicate:?}"
    );
    let ordered: Vec<String> = conn.query("SELECT note FROM bk.seq WHERE note >= 'n2' AND note < 'n3' ORDER BY note").await.unwrap();
    let mut expected: Vec<String> = (0..30).map(|k| format!("n{k}")).filter(|n| n.as_str() >= "n2" && n.as_str() < "n3").collect();
    expected.sort();
    assert_eq!(ordered, expected, "a range over the ordered index after the restore");
    // The stored function came along and runs.
    let twice: Option<i64> = conn.query_first("SELECT bk.twice(21)").await.unwrap();
    assert_eq!(twice, Some(42), "the restored stored function runs");
    // AUTO_INCREMENT goes on above the restored rows; the user came along.
    conn.query_drop("INSERT INTO bk.seq (note) VALUES ('after')").await.unwrap();
    let last: u64 = conn.query_first("SELECT LAST_INSERT_ID()").await.unwrap().unwrap();
    assert!(last > 30, "AUTO_INCREMENT restored: got {last}");
    let grants: Vec<String> = conn.query("SHOW GRANTS FOR 'exim'@'%'").await.unwrap();
    assert!(grants.iter().any(|g| g.contains("GRANT SELECT ON `bk`.* TO `exim`@`%`")), "the grant was restored: {grants:?}");
    // The restored password logs in.
    let exim = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(target.mysql_port(0))
        .user(Some("exim"))
        .pass(Some("exim-secret"))
        .prefer_socket(false);
    let mut exim = mysql_async::Conn::new(exim).await.expect("the restored account logs in with its password");
    let n: Option<u64> = exim.query_first("SELECT COUNT(*) FROM bk.seq WHERE note = 'n7'").await.unwrap();
    assert_eq!(n, Some(1));
    exim.disconnect().await.unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
    for pool in pools {
        pool.disconnect().await.unwrap();
    }
}
