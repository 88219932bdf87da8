//! The prepared primary-key lookup is the hot path (Exim's account lookup): this measures it
//! against the in-process cluster and checks it sends one Get to one node group per execution.
//! Run with `cargo test --release -p cairn-sql --test hot_path -- --nocapture` to see timings.

use std::time::Instant;

use cairn_common::Value;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, Outcome, Session, SessionInfo};

#[tokio::test]
async fn prepared_primary_key_lookup_is_one_get() {
    let cluster = MemoryCluster::new(2);
    let engine = Engine::new(cluster.clone(), EngineConfig::default());
    let mut session = Session::new(engine, SessionInfo::default());
    for sql in [
        "CREATE DATABASE calmail",
        "USE calmail",
        "CREATE TABLE account (id INT UNSIGNED PRIMARY KEY, email VARCHAR(255) NOT NULL, quota BIGINT, active TINYINT(1) NOT NULL DEFAULT 1)",
    ] {
        assert!(!session.execute(sql).await[0].is_error(), "{sql}");
    }
    let mut values = Vec::new();
    for i in 0..2000 {
        values.push(format!("({i}, 'user{i}@example.org', {}, 1)", i * 1024));
    }
    let insert = format!("INSERT INTO account VALUES {}", values.join(","));
    assert!(!session.execute(&insert).await[0].is_error());

    let info = session.prepare("SELECT email, quota FROM account WHERE id = ? AND active = 1").await.unwrap();
    cluster.reset_requests();
    let n = 20_000u64;
    let start = Instant::now();
    for i in 0..n {
        let outcome = session.execute_prepared(info.id, vec![Value::Int((i % 2000) as i64)]).await;
        let Outcome::Rows { rows, .. } = outcome else { panic!("{outcome:?}") };
        let rows = rows.collect().await.unwrap();
        assert_eq!(rows.len(), 1);
    }
    let prepared = start.elapsed();
    let requests = cluster.requests();
    let gets: u64 = requests.values().map(|r| r.gets).sum();
    let scans: u64 = requests.values().map(|r| r.scans).sum();
    assert_eq!((gets, scans), (n, 0), "one Get per execution, no scan");

    let start = Instant::now();
    for i in 0..n {
        let sql = format!("SELECT email, quota FROM account WHERE id = {} AND active = 1", i % 2000);
        let outcome = session.execute(&sql).await.remove(0);
        let Outcome::Rows { rows, .. } = outcome else { panic!("{outcome:?}") };
        assert_eq!(rows.collect().await.unwrap().len(), 1);
    }
    let text = start.elapsed();
    println!(
        "prepared lookup: {:.1} µs/op; text-protocol lookup (split + normalize + plan cache): {:.1} µs/op",
        prepared.as_secs_f64() * 1e6 / n as f64,
        text.as_secs_f64() * 1e6 / n as f64
    );
}
