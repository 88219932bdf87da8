//! The SQL front end: the session's pre-parser (statement splitting, the fast paths that skip
//! the parser), the parser, the planner and the executor of `cairn-sql`, over the in-process
//! two-node-group backend.
//!
//! The input is statement text. Each input gets a fresh cluster holding a small schema shaped
//! like the mail accounts Cairn serves (so that plans have keys, indexes and joins to choose
//! from), runs as one COM_QUERY, then as a prepared statement executed with parameters, and
//! the session must still answer `SELECT 1` afterwards.

use std::sync::Arc;

use cairn_common::Value;
use cairn_common::error::ErrorKind;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, ManualClock, Outcome, Session, SessionInfo};

const SETUP: &[&str] = &[
    "CREATE DATABASE calmail",
    "USE calmail",
    "CREATE TABLE account (id INT PRIMARY KEY, login VARCHAR(32) NOT NULL, host VARCHAR(64), quota_mb DECIMAL(8,2), \
     created DATETIME, active TINYINT(1) NOT NULL DEFAULT 1, UNIQUE KEY (login), KEY (host))",
    "CREATE TABLE alias (a BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, account_id INT, address VARBINARY(64), \
     kind ENUM('forward','local'), KEY (account_id))",
    "INSERT INTO account VALUES (1, 'ann', 'mx1', 100.50, '2024-01-01 00:00:00', 1), (2, 'bob', NULL, NULL, NULL, 0), \
     (3, 'cy', 'mx2', -3.25, '1999-12-31 23:59:59', 1)",
    "INSERT INTO alias (account_id, address, kind) VALUES (1, 'ann@example.org', 'local'), (1, X'00FF', 'forward'), \
     (3, NULL, NULL)",
];

/// Parameters bound to the prepared form, in order, one per placeholder (NULL past the end).
const PARAMS: &[Value] = &[Value::Int(1), Value::Null, Value::Int(-7), Value::UInt(u64::MAX), Value::Double(1.5)];

/// Runs arbitrary bytes as SQL text (invalid UTF-8 is replaced, as the SQL node's decoder does
/// for a utf8mb4 connection).
pub fn sql(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(runtime) => runtime,
        Err(e) => panic!("the fuzz target cannot build a tokio runtime: {e}"),
    };
    runtime.block_on(run(&text));
}

async fn run(text: &str) {
    let cluster = MemoryCluster::new(2);
    let config = EngineConfig {
        clock: Arc::new(ManualClock::new(1_700_000_000_000_000)),
        scan_batch_rows: 2,
        ..EngineConfig::default()
    };
    let engine = Engine::new(cluster, config);
    let mut session = Session::new(engine, SessionInfo::default());
    for statement in SETUP {
        for outcome in session.execute(statement).await {
            assert!(!outcome.is_error(), "the fuzz schema failed to set up at {statement}: {outcome:?}");
        }
    }

    for outcome in session.execute(text).await {
        check(text, outcome).await;
    }
    match session.prepare(text).await {
        Ok(info) => {
            let params = (0..info.param_count as usize)
                .map(|i| PARAMS.get(i).cloned().unwrap_or(Value::Null))
                .collect();
            check(text, session.execute_prepared(info.id, params).await).await;
            session.close_prepared(info.id);
        }
        Err(e) => assert_ne!(e.kind, ErrorKind::Internal, "internal error preparing {text:?}: {e}"),
    }
    // Whatever the text did (an open transaction, a dropped database, a changed variable), the
    // session still answers.
    let after = session.execute("SELECT 1").await;
    assert!(
        matches!(after.as_slice(), [Outcome::Rows { .. }]),
        "the session is unusable after {text:?}: {after:?}"
    );
}

async fn check(text: &str, outcome: Outcome) {
    match outcome {
        Outcome::Error(e) => assert_ne!(e.kind, ErrorKind::Internal, "internal error for {text:?}: {e}"),
        Outcome::Rows { rows, .. } => {
            if let Err(e) = rows.collect().await {
                assert_ne!(e.kind, ErrorKind::Internal, "internal error streaming {text:?}: {e}");
            }
        }
        Outcome::Ok { .. } | Outcome::LocalInfile(_) => {}
    }
}
