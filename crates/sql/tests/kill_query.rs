//! KILL QUERY against a statement that computes without ever waiting: a join whose every batch
//! pairs thousands of rows with thousands of others. The connection's own interruption (the
//! daemon drops the statement at its next wait) cannot reach such a loop; the executor's check of
//! the session's KILL flag must (`crates/sql/src/processlist.rs`).
//!
//! In process, as the SQL node runs sessions: each statement begins a command (which clears a
//! stale KILL), and KILL comes from a second session of the same engine.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cairn_common::Value;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, Outcome, Session, SessionInfo};

type Cl = MemoryCluster;

/// Runs `sql` as one command, as the daemon does, and returns its rows or its error.
async fn run(session: &mut Session<Cl>, sql: &str) -> Result<Vec<Vec<Value>>, cairn_common::Error> {
    session.begin_command("Query", Some(sql));
    let outcome = session.execute(sql).await.pop();
    let result = match outcome {
        Some(Outcome::Rows { rows, .. }) => rows.collect().await,
        Some(Outcome::Error(e)) => Err(e),
        Some(_) => Ok(Vec::new()),
        None => panic!("{sql}: no outcome"),
    };
    session.end_command();
    result
}

async fn ok(session: &mut Session<Cl>, sql: &str) {
    if let Err(e) = run(session, sql).await {
        panic!("{sql}: {} {}", e.code(), e.message);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_stops_a_cpu_bound_join_between_two_batches() {
    let engine: Arc<Engine<Cl>> = Engine::new(MemoryCluster::new(2), EngineConfig::default());
    // Connection ids as the daemon hands them out: the process list is keyed by them.
    let mut worker = Session::new(engine.clone(), SessionInfo { connection_id: 1, ..SessionInfo::default() });
    ok(&mut worker, "CREATE DATABASE d").await;
    ok(&mut worker, "USE d").await;
    ok(&mut worker, "CREATE TABLE t (id INT PRIMARY KEY, n INT NOT NULL)").await;
    const ROWS: i64 = 4000;
    for start in (0..ROWS).step_by(500) {
        let values: Vec<String> = (start..start + 500).map(|i| format!("({i}, {})", i % 97)).collect();
        ok(&mut worker, &format!("INSERT INTO t VALUES {}", values.join(", "))).await;
    }
    let id = match run(&mut worker, "SELECT CONNECTION_ID()").await.unwrap().first().and_then(|r| r.first()) {
        Some(Value::UInt(id)) => *id,
        Some(Value::Int(id)) => *id as u64,
        other => panic!("CONNECTION_ID() gave {other:?}"),
    };
    assert_eq!(id, 1);

    // No key to join on and a condition no pair meets: 16 million pairs, no row produced, so
    // the join never returns a batch and never waits.
    let join = "SELECT COUNT(*) FROM t a JOIN t b ON a.n + b.n = -1";
    let query = tokio::spawn(async move {
        let started = Instant::now();
        let result = run(&mut worker, join).await;
        (result, started.elapsed(), worker)
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut killer = Session::new(engine.clone(), SessionInfo { connection_id: 2, ..SessionInfo::default() });
    let killed_at = Instant::now();
    ok(&mut killer, &format!("KILL QUERY {id}")).await;

    let (result, took, mut worker) = tokio::time::timeout(Duration::from_secs(120), query)
        .await
        .expect("the join neither finished nor stopped within 120 s")
        .expect("the query task panicked");
    match result {
        Err(e) => {
            assert_eq!((e.code(), e.sqlstate()), (1317, "70100"), "{}", e.message);
            let after_kill = killed_at.elapsed();
            assert!(after_kill < Duration::from_secs(5), "the join stopped {after_kill:?} after KILL QUERY");
        }
        Ok(rows) => panic!("the join ran to its end ({rows:?} after {took:?}) despite KILL QUERY"),
    }

    // The connection stays, and the next command is not hit by the old KILL.
    let count = run(&mut worker, "SELECT COUNT(*) FROM t a JOIN t b ON a.id = b.id").await.unwrap();
    assert_eq!(count, vec![vec![Value::Int(ROWS)]]);
}
