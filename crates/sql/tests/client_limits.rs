//! Limits on what a client controls, in-process: hostile nesting and huge IN lists get a clean
//! MySQL error or an answer (never a stack overflow), prepared statements are bounded node-wide
//! (1461, summed over sessions), and an account's MAX_QUERIES_PER_HOUR / MAX_UPDATES_PER_HOUR
//! refuse statements with 1226. Connection limits are tested over the protocol in
//! tests/e2e/limits.rs.

use std::sync::Arc;

use cairn_common::accounts::AccountName;
use cairn_common::error::ErrorKind;
use cairn_sql::limits::LimitSettings;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, ManualClock, Outcome, Session, SessionInfo};

fn engine(limits: LimitSettings) -> (tokio::runtime::Runtime, Arc<Engine<MemoryCluster>>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let config = EngineConfig { clock: Arc::new(ManualClock::new(1_700_000_000_000_000)), limits, ..EngineConfig::default() };
    (rt, Engine::new(MemoryCluster::new(2), config))
}

async fn run(session: &mut Session<MemoryCluster>, sql: &str) -> Outcome {
    let mut outcomes = session.execute(sql).await;
    assert_eq!(outcomes.len(), 1, "{sql:.80}");
    outcomes.remove(0)
}

async fn ok(session: &mut Session<MemoryCluster>, sql: &str) {
    let outcome = run(session, sql).await;
    if let Outcome::Rows { rows, .. } = outcome {
        rows.collect().await.unwrap_or_else(|e| panic!("{sql:.80}: {e}"));
    } else {
        assert!(!outcome.is_error(), "{sql:.80}: {outcome:?}");
    }
}

fn error_code(outcome: &Outcome) -> Option<u16> {
    match outcome {
        Outcome::Error(e) => Some(e.code()),
        _ => None,
    }
}

#[test]
fn hostile_nesting_and_long_in_lists_are_refused_or_answered_cleanly() {
    // A thread with a small stack, as a server task has, shows a recursion that is not bounded.
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(|| {
            let (rt, engine) = engine(LimitSettings::default());
            rt.block_on(async {
                let mut session = Session::new(engine, SessionInfo::default());
                ok(&mut session, "CREATE DATABASE d").await;
                ok(&mut session, "CREATE TABLE d.t (id INT PRIMARY KEY)").await;
                ok(&mut session, "INSERT INTO d.t VALUES (1), (2)").await;
                // 100,000 nested parentheses, and as many nested subqueries: a clean error.
                let parens = format!("SELECT {}1{}", "(".repeat(100_000), ")".repeat(100_000));
                let refused = run(&mut session, &parens).await;
                assert!(error_code(&refused).is_some_and(|c| c != 1105), "{refused:?}");
                let subqueries = format!("SELECT {}1{}", "(SELECT ".repeat(20_000), ")".repeat(20_000));
                let refused = run(&mut session, &subqueries).await;
                assert!(error_code(&refused).is_some_and(|c| c != 1105), "{refused:?}");
                // A 10 MB IN list (about 1.4 million values) is answered or refused, not a crash.
                let values: Vec<String> = (0..1_400_000).map(|i| i.to_string()).collect();
                let in_list = format!("SELECT id FROM d.t WHERE id IN ({})", values.join(","));
                assert!(in_list.len() > 10_000_000);
                match run(&mut session, &in_list).await {
                    Outcome::Rows { rows, .. } => assert_eq!(rows.collect().await.expect("rows").len(), 2),
                    Outcome::Error(e) => assert_ne!(e.kind, ErrorKind::Internal, "{e}"),
                    other => panic!("{other:?}"),
                }
                // The session is still usable.
                ok(&mut session, "SELECT 1").await;
            });
        })
        .expect("thread")
        .join()
        .expect("no stack overflow or panic");
}

#[test]
fn prepared_statements_are_bounded_across_sessions() {
    let (rt, engine) = engine(LimitSettings { max_prepared_statements: 3, ..LimitSettings::default() });
    rt.block_on(async {
        let mut first = Session::new(engine.clone(), SessionInfo::default());
        let mut second = Session::new(engine.clone(), SessionInfo::default());
        let a = first.prepare("SELECT 1").await.expect("first");
        first.prepare("SELECT 2").await.expect("second");
        second.prepare("SELECT 3").await.expect("third");
        let refused = second.prepare("SELECT 4").await.expect_err("a fourth on the node");
        assert_eq!(refused.code(), 1461);
        assert_eq!(refused.message, "Can't create more than max_prepared_stmt_count statements (current value: 3)");
        // Closing one, or a session ending, gives its statements back.
        first.close_prepared(a.id);
        second.prepare("SELECT 4").await.expect("after a close");
        drop(first);
        assert_eq!(engine.limits().open_prepared_statements(), 2);
        second.prepare("SELECT 5").await.expect("after a session ended");
    });
}

#[test]
fn hourly_query_and_update_limits_refuse_statements() {
    let (rt, engine) = engine(LimitSettings::default());
    rt.block_on(async {
        let mut root = Session::new(engine.clone(), SessionInfo::default());
        for sql in [
            "CREATE DATABASE d",
            "CREATE TABLE d.t (id INT PRIMARY KEY)",
            "CREATE USER 'app'@'%' WITH MAX_QUERIES_PER_HOUR 4 MAX_UPDATES_PER_HOUR 1",
            "GRANT SELECT, INSERT ON d.* TO 'app'@'%'",
        ] {
            ok(&mut root, sql).await;
        }
        let info = SessionInfo { user: "app".into(), host: "10.0.0.1".into(), account: Some(AccountName::new("app", "%")), ..SessionInfo::default() };
        let mut app = Session::new(engine.clone(), info);
        ok(&mut app, "INSERT INTO d.t VALUES (1)").await;
        let refused = run(&mut app, "INSERT INTO d.t VALUES (2)").await;
        assert_eq!(error_code(&refused), Some(1226), "{refused:?}");
        ok(&mut app, "SELECT * FROM d.t").await;
        ok(&mut app, "SELECT * FROM d.t").await;
        let Outcome::Error(e) = run(&mut app, "SELECT 1").await else { panic!("the fifth statement must be refused") };
        assert_eq!(e.message, "User 'app' has exceeded the 'max_questions' resource (current value: 4)");
        // Prepared executions count too; FLUSH USER_RESOURCES (by root) starts the hour again.
        ok(&mut root, "FLUSH USER_RESOURCES").await;
        let statement = app.prepare("SELECT ?").await.expect("prepare is not a counted statement");
        assert!(!app.execute_prepared(statement.id, vec![cairn_common::Value::Int(1)]).await.is_error());
    });
}
