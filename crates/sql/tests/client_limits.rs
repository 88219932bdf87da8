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

async fn rows(session: &mut Session<MemoryCluster>, sql: &str) -> Vec<Vec<cairn_common::Value>> {
    match run(session, sql).await {
        Outcome::Rows { rows, .. } => rows.collect().await.unwrap_or_else(|e| panic!("{sql:.80}: {e}")),
        other => panic!("{sql:.80}: {other:?}"),
    }
}

fn engine_with(config: EngineConfig) -> (tokio::runtime::Runtime, Arc<MemoryCluster>, Arc<Engine<MemoryCluster>>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let cluster = MemoryCluster::new(2);
    let config = EngineConfig { clock: Arc::new(ManualClock::new(1_700_000_000_000_000)), ..config };
    (rt, cluster.clone(), Engine::new(cluster, config))
}

fn list(range: std::ops::Range<i64>) -> String {
    range.map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

#[test]
fn a_statement_too_big_to_parse_is_refused_with_3170_and_the_session_goes_on() {
    let (rt, _cluster, engine) = engine_with(EngineConfig { parser_max_mem_size: 8 << 20, ..EngineConfig::default() });
    rt.block_on(async {
        let mut session = Session::new(engine.clone(), SessionInfo::default());
        let mut other = Session::new(engine.clone(), SessionInfo::default());
        ok(&mut session, "CREATE DATABASE d").await;
        ok(&mut session, "CREATE TABLE d.t (id INT PRIMARY KEY, v INT)").await;
        ok(&mut session, "INSERT INTO d.t VALUES (1, 10), (2, 20)").await;
        // 8 MiB is about 26,000 tokens: a 100,000-item IN list and a 20,000-row VALUES list are
        // refused before they are tokenized, as text and as a prepared statement.
        let in_list = format!("SELECT id FROM d.t WHERE v IN ({})", list(0..100_000));
        let Outcome::Error(e) = run(&mut session, &in_list).await else { panic!("a huge IN list must be refused") };
        assert_eq!((e.code(), e.kind.sqlstate()), (3170, "HY000"));
        assert_eq!(e.message, "Memory capacity of 8388608 bytes for 'parser_max_mem_size' exceeded. Parser bailed out for this query.");
        let values: Vec<String> = (3..20_003).map(|i| format!("({i}, {i})")).collect();
        let insert = format!("INSERT INTO d.t VALUES {}", values.join(","));
        assert_eq!(error_code(&run(&mut session, &insert).await), Some(3170));
        assert_eq!(session.prepare(&in_list).await.expect_err("prepare is bounded too").code(), 3170);
        // Nothing was inserted, and both sessions go on; an IN list within the limit answers.
        let small = format!("SELECT id FROM d.t WHERE v IN ({}) ORDER BY id", list(0..5_000));
        assert_eq!(rows(&mut session, &small).await.len(), 2);
        assert_eq!(rows(&mut other, "SELECT COUNT(*) FROM d.t").await, vec![vec![cairn_common::Value::Int(2)]]);
    });
}

#[test]
fn long_in_lists_are_evaluated_here_and_key_lookups_go_in_bounded_rounds() {
    let (rt, cluster, engine) = engine_with(EngineConfig::default());
    rt.block_on(async {
        let mut session = Session::new(engine.clone(), SessionInfo::default());
        ok(&mut session, "CREATE DATABASE d").await;
        ok(&mut session, "CREATE TABLE d.t (id INT PRIMARY KEY, v INT, KEY (v))").await;
        ok(&mut session, "CREATE TABLE d.wide (id INT PRIMARY KEY, body TEXT, u INT, UNIQUE KEY (u))").await;
        for chunk in 0..3 {
            let values: Vec<String> = (chunk * 1000..(chunk + 1) * 1000).map(|i| format!("({i}, {})", i % 1500)).collect();
            ok(&mut session, &format!("INSERT INTO d.t VALUES {}", values.join(","))).await;
        }
        let values: Vec<String> = (0..1000).map(|i| format!("({i}, 'row {i}', {i})")).collect();
        ok(&mut session, &format!("INSERT INTO d.wide VALUES {}", values.join(","))).await;
        cluster.reset_requests();
        let count = |n: i64| vec![vec![cairn_common::Value::Int(n)]];

        // A literal list on a column without a key, on an ordered index, and one filled by a
        // subquery (its length known only when the query runs), with and without an aggregate
        // the data nodes would otherwise compute: the same answers, and no data node is sent a
        // list of more than 128 items (each would compare every row with every item).
        let in_v = format!("v IN ({})", list(0..1000));
        assert_eq!(rows(&mut session, &format!("SELECT COUNT(*) FROM d.t WHERE {in_v}")).await, count(2000));
        assert_eq!(rows(&mut session, &format!("SELECT id FROM d.t WHERE {in_v} AND id > 2990 ORDER BY id LIMIT 3")).await.len(), 0);
        assert_eq!(rows(&mut session, &format!("SELECT id FROM d.t WHERE {in_v} ORDER BY v LIMIT 3")).await.len(), 3);
        assert_eq!(rows(&mut session, "SELECT COUNT(*) FROM d.t WHERE v IN (SELECT u FROM d.wide)").await, count(2000));
        assert_eq!(rows(&mut session, "SELECT id FROM d.t WHERE v IN (SELECT u FROM d.wide) LIMIT 5").await.len(), 5);
        assert_eq!(rows(&mut session, "SELECT SUM(v) FROM d.t WHERE id IN (SELECT u FROM d.wide WHERE u < 300)").await, vec![vec![
            cairn_common::Value::Decimal(cairn_common::decimal::Decimal::from_i64((0..300).sum()))
        ]]);
        assert_eq!(rows(&mut session, "SELECT COUNT(*) FROM d.t WHERE v NOT IN (SELECT u FROM d.wide)").await, count(1000));
        assert_eq!(rows(&mut session, "SELECT COUNT(*) FROM d.t WHERE v + 0 IN (1, 2, 3)").await, count(6));
        // UPDATE and DELETE with such a list read the keys here, then write by key.
        let in_v200 = format!("v + 0 IN ({})", list(0..200));
        let Outcome::Ok { affected_rows: affected, .. } = run(&mut session, &format!("UPDATE d.t SET v = v + 10000 WHERE {in_v200}")).await else { panic!("update") };
        assert_eq!(affected, 400);
        let in_v = format!("v IN ({})", list(10_000..10_100));
        let Outcome::Ok { affected_rows: affected, .. } = run(&mut session, &format!("DELETE FROM d.t WHERE {in_v} AND id >= 0")).await else { panic!("delete") };
        assert_eq!(affected, 200);
        assert_eq!(rows(&mut session, "SELECT COUNT(*) FROM d.t WHERE v >= 10000").await, count(200));
        let requests = cluster.requests();
        assert!(requests.values().all(|r| r.largest_pushed_in_list <= 128), "{requests:?}");
        assert!(requests.values().any(|r| r.largest_pushed_in_list > 0), "short lists are still shipped: {requests:?}");

        // 1,000 keys of a table whose rows may be 64 KiB wide: by primary key and by unique
        // key, in requests of at most 8 MiB of rows (127 keys), not one request per node group.
        cluster.reset_requests();
        let in_id = format!("id IN ({})", list(0..1000));
        assert_eq!(rows(&mut session, &format!("SELECT id, body FROM d.wide WHERE {in_id}")).await.len(), 1000);
        let in_u = format!("u IN ({})", list(0..1000));
        assert_eq!(rows(&mut session, &format!("SELECT id FROM d.wide WHERE {in_u}")).await.len(), 1000);
        let requests = cluster.requests();
        assert!(requests.values().all(|r| r.largest_lookup <= 128 && r.largest_lookup > 0), "{requests:?}");
        assert!(requests.values().map(|r| r.gets).sum::<u64>() >= 16, "{requests:?}");
    });
}

#[test]
fn operators_that_hold_rows_are_bounded_in_bytes_with_3170() {
    let (rt, _cluster, engine) = engine_with(EngineConfig { max_statement_memory: 1 << 20, ..EngineConfig::default() });
    rt.block_on(async {
        let mut session = Session::new(engine.clone(), SessionInfo::default());
        let mut other = Session::new(engine.clone(), SessionInfo::default());
        ok(&mut session, "CREATE DATABASE d").await;
        ok(&mut session, "CREATE TABLE d.t (id INT PRIMARY KEY, body TEXT)").await;
        // 2,000 rows of 1,000 bytes: about 2 MB, twice MaxStatementMemory.
        for chunk in 0..4 {
            let values: Vec<String> = (chunk * 500..(chunk + 1) * 500).map(|i| format!("({i}, '{i:04}{}')", "x".repeat(996))).collect();
            ok(&mut session, &format!("INSERT INTO d.t VALUES {}", values.join(","))).await;
        }
        for sql in [
            "SELECT id, body FROM d.t ORDER BY body",
            "SELECT DISTINCT body FROM d.t",
            "SELECT body, COUNT(*) FROM d.t GROUP BY body",
            "SELECT a.id FROM d.t a JOIN d.t b ON a.body = b.body",
            "SELECT id FROM d.t WHERE body IN (SELECT body FROM d.t)",
        ] {
            let outcome = run(&mut session, sql).await;
            let error = match outcome {
                Outcome::Error(e) => e,
                Outcome::Rows { rows, .. } => rows.collect().await.expect_err(sql),
                other => panic!("{sql}: {other:?}"),
            };
            assert_eq!(error.code(), 3170, "{sql}: {error}");
            assert!(error.message.starts_with("Memory capacity of 1048576 bytes for 'max_statement_memory' exceeded."), "{}", error.message);
        }
        // What streams is not held: the whole table reaches the client; small sorts still run.
        assert_eq!(rows(&mut session, "SELECT id, body FROM d.t").await.len(), 2000);
        assert_eq!(rows(&mut session, "SELECT id FROM d.t ORDER BY id DESC LIMIT 3").await.len(), 3);
        assert_eq!(rows(&mut other, "SELECT id, body FROM d.t WHERE id < 500 ORDER BY body").await.len(), 500);
    });
}
