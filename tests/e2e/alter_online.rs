//! Online column changes on a real cluster: one SQL node alters a table (ADD COLUMN FIRST/AFTER,
//! DROP, MODIFY to a wider type, RENAME) while a connection to another SQL node keeps
//! inserting, updating and reading rows. Nothing but the change itself may happen to the rows:
//! every write acknowledged is there with its value, old rows read the added columns' defaults.
//! Then a system restart (SHUTDOWN, start every process): the data nodes recover rows of every
//! layout from their checkpoints and logs, and read them the same way.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec};
use mysql_async::prelude::*;

/// MySQL's ER_TABLE_DEF_CHANGED: a statement planned just before a change; retrying is right.
const TABLE_DEFINITION_CHANGED: u16 = 1412;

/// Runs a statement, retrying what a concurrent schema change may answer; returns affected rows.
async fn write(conn: &mut mysql_async::Conn, sql: &str, retried: &mut u32) -> u64 {
    for _ in 0..50 {
        match conn.query_drop(sql).await {
            Ok(()) => return conn.affected_rows(),
            Err(mysql_async::Error::Server(e)) if e.code == TABLE_DEFINITION_CHANGED => {
                *retried += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{sql}: unexpected error {e}"),
        }
    }
    panic!("{sql}: still refused after 50 tries");
}

/// Every row as (id → (v, extra, tag)), with a deadline for a cluster still recovering.
async fn rows(pool: &mysql_async::Pool) -> BTreeMap<i64, (i64, i64, String)> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let attempt = async {
            let mut conn = pool.get_conn().await?;
            conn.query::<(i64, i64, i64, String), _>("SELECT id, v, extra, tag FROM al.t").await
        };
        match attempt.await {
            Ok(list) => return list.into_iter().map(|(id, v, extra, tag)| (id, (v, extra, tag))).collect(),
            Err(e) => {
                assert!(Instant::now() < deadline, "reading the rows kept failing: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

fn check(found: &BTreeMap<i64, (i64, i64, String)>, expected: &BTreeMap<i64, i64>, when: &str) {
    assert_eq!(found.len(), expected.len(), "{when}: row count");
    for (id, v) in expected {
        let Some((got, extra, tag)) = found.get(id) else { panic!("{when}: row {id} is missing") };
        assert_eq!(got, v, "{when}: v of row {id}");
        assert_eq!(*extra, 7, "{when}: the added column of row {id} reads its default");
        assert_eq!(tag, "x", "{when}: the renamed column of row {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn columns_change_while_rows_are_written_and_survive_a_system_restart() {
    let spec = ClusterSpec { data_nodes: 4, replicas: 2, sql_nodes: 2, ..Default::default() };
    let mut cluster = Cluster::start(spec).await.unwrap();
    let writer_pool = cluster.pool(0, None);
    let alter_pool = cluster.pool(1, None);
    let mut admin = alter_pool.get_conn().await.unwrap();
    admin.query_drop("CREATE DATABASE al").await.unwrap();
    admin.query_drop("CREATE TABLE al.t (id INT PRIMARY KEY, v INT NOT NULL, note VARCHAR(20), KEY ix_v (v))").await.unwrap();
    let values: Vec<String> = (0..300).map(|i| format!("({i}, {i}, 'n{i}')")).collect();
    admin.query_drop(format!("INSERT INTO al.t VALUES {}", values.join(","))).await.unwrap();

    // The writer: inserts new rows, increments older ones, reads back what it wrote.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = stop.clone();
        let pool = writer_pool.clone();
        tokio::spawn(async move {
            let mut conn = pool.get_conn().await.unwrap();
            let mut expected: BTreeMap<i64, i64> = (0..300).map(|i| (i, i)).collect();
            let mut retried = 0u32;
            let mut id = 300i64;
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(write(&mut conn, &format!("INSERT INTO al.t (id, v) VALUES ({id}, {id})"), &mut retried).await, 1);
                expected.insert(id, id);
                let older = id / 2;
                let affected = write(&mut conn, &format!("UPDATE al.t SET v = v + 1 WHERE id = {older}"), &mut retried).await;
                assert_eq!(affected, 1, "row {older} exists");
                *expected.get_mut(&older).unwrap() += 1;
                let read: Option<i64> = conn.query_first(format!("SELECT v FROM al.t WHERE id = {older}")).await.unwrap();
                assert_eq!(read, Some(expected[&older]), "row {older} reads what was written");
                id += 1;
            }
            (expected, retried)
        })
    };

    // The changes, from the other SQL node, while the writer runs.
    let changes = [
        "ALTER TABLE al.t ADD COLUMN extra INT NOT NULL DEFAULT 7 FIRST",
        "ALTER TABLE al.t ADD COLUMN label VARCHAR(10) DEFAULT 'x' AFTER id, DROP COLUMN note",
        "ALTER TABLE al.t MODIFY COLUMN extra BIGINT NOT NULL DEFAULT 7",
        "ALTER TABLE al.t RENAME COLUMN label TO tag",
    ];
    for change in changes {
        tokio::time::sleep(Duration::from_millis(400)).await;
        admin.query_drop(change).await.unwrap_or_else(|e| panic!("{change}: {e}"));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, Ordering::Relaxed);
    let (expected, retried) = writer.await.unwrap();
    println!("{} rows written during 4 column changes, {retried} statements retried", expected.len() - 300);
    assert!(expected.len() > 300, "the writer made progress during the changes");
    check(&rows(&writer_pool).await, &expected, "after the changes");
    let by_index: Vec<i64> = admin.query("SELECT id FROM al.t WHERE v BETWEEN 10 AND 20 ORDER BY v, id").await.unwrap();
    let mut want: Vec<(i64, i64)> = expected.iter().filter(|(_, v)| (10..=20).contains(*v)).map(|(id, v)| (*v, *id)).collect();
    want.sort();
    assert_eq!(by_index, want.into_iter().map(|(_, id)| id).collect::<Vec<_>>(), "the ordered index after the changes");
    drop(admin);

    // System restart: every data node recovers from its own disk.
    let out = cluster.admin("SHUTDOWN").await.unwrap();
    assert!(out.contains("have shutdown"), "{out}");
    for node in [1, 2, 3, 4, 49] {
        assert!(cluster.wait_exit(node, Duration::from_secs(30)).is_some(), "node {node} exited after SHUTDOWN");
    }
    for node in [49, 1, 2, 3, 4] {
        cluster.start_node(node).unwrap();
    }
    cluster.wait_ready(Duration::from_secs(120)).await.unwrap();
    check(&rows(&writer_pool).await, &expected, "after the system restart");
    let mut conn = alter_pool.get_conn().await.unwrap();
    let columns: Vec<String> = conn
        .query("SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'al' AND TABLE_NAME = 't' ORDER BY ORDINAL_POSITION")
        .await
        .unwrap();
    assert_eq!(columns, ["extra", "id", "tag", "v"]);
    drop(conn);
    writer_pool.disconnect().await.unwrap();
    alter_pool.disconnect().await.unwrap();
}
