//! The Postgrey greylisting function of `examples/greylist/greylist.sql`, run by the SQL engine
//! over the in-process cluster with a manual clock: the algorithm step by step, the requests
//! one call costs, and how fast the text-protocol call Exim sends is answered.
//! Run with `cargo test --release -p cairn-sql --test greylist -- --nocapture` for timings.

use std::sync::Arc;
use std::time::Instant;

use cairn_common::Value;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, ManualClock, Outcome, Session, SessionInfo};

/// 2024-05-06 07:08:09 UTC.
const START_MICROS: i64 = 1_714_979_289_000_000;

/// The example file as the mysql client would send it: statements split on `;`, except between
/// `DELIMITER //` and `DELIMITER ;`, where `//` ends the statement.
fn example_statements() -> Vec<String> {
    let text = include_str!("../../../examples/greylist/greylist.sql");
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut delimiter = ";".to_string();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("--") && current.trim().is_empty() {
            continue;
        }
        if let Some(d) = trimmed.strip_prefix("DELIMITER ") {
            delimiter = d.trim().to_string();
            continue;
        }
        current.push_str(line);
        current.push('\n');
        if trimmed.ends_with(delimiter.as_str()) {
            let statement = current.trim().trim_end_matches(delimiter.as_str()).trim().to_string();
            statements.push(statement);
            current.clear();
        }
    }
    assert!(current.trim().is_empty(), "unterminated statement in the example: {current}");
    statements
}

struct Setup {
    cluster: Arc<MemoryCluster>,
    clock: Arc<ManualClock>,
    session: Session<MemoryCluster>,
}

async fn setup() -> Setup {
    let cluster = MemoryCluster::new(2);
    let clock = Arc::new(ManualClock::new(START_MICROS));
    let engine = Engine::new(cluster.clone(), EngineConfig { clock: clock.clone(), ..EngineConfig::default() });
    let mut session = Session::new(engine, SessionInfo::default());
    for sql in ["CREATE DATABASE calmail", "USE calmail"] {
        assert!(!session.execute(sql).await[0].is_error(), "{sql}");
    }
    for sql in example_statements() {
        let outcomes = session.execute(&sql).await;
        assert!(outcomes.iter().all(|o| !o.is_error()), "{sql}: {outcomes:?}");
    }
    Setup { cluster, clock, session }
}

async fn scalar(session: &mut Session<MemoryCluster>, sql: &str) -> Value {
    let mut outcomes = session.execute(sql).await;
    match outcomes.remove(0) {
        Outcome::Rows { rows, .. } => rows.collect().await.unwrap().remove(0).remove(0),
        other => panic!("{sql}: {other:?}"),
    }
}

async fn defer(session: &mut Session<MemoryCluster>, key: &str, ip: &str, awl: i64, delay: i64, update: i64) -> i64 {
    let sql = format!("SELECT greylist_defer_p('{key}', '{ip}', {awl}, {delay}, {update})");
    scalar(session, &sql).await.to_i64().unwrap()
}

#[tokio::test]
async fn postgrey_algorithm_step_by_step() {
    let Setup { clock, mut session, .. } = setup().await;
    let s = &mut session;
    // First sight: recorded, deferred. A retry inside the delay: deferred again.
    assert_eq!(defer(s, "alice@a.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 1);
    clock.advance(299 * 1_000_000);
    assert_eq!(defer(s, "alice@a.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 1);
    // After the delay: accepted, from any address of the same /24 network.
    clock.advance(1_000_000);
    assert_eq!(defer(s, "alice@a.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 0);
    assert_eq!(defer(s, "alice@a.example/bob@b.example", "192.0.2.77", 3, 300, 1).await, 0);
    assert_eq!(
        scalar(s, "SELECT CONCAT(INET_NTOA(net), ' ', attempts, ' ', last_seen - first_seen) FROM greylist_triplet").await,
        Value::text("192.0.2.0 4 300")
    );
    // A new key from 192.0.2.10 is greylisted: the client has 1 pass of the 3 the whitelist needs.
    assert_eq!(defer(s, "carol@c.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 1);
    // Two more accepted attempts make three passes: now anything from it is accepted at once.
    assert_eq!(defer(s, "alice@a.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 0);
    assert_eq!(defer(s, "alice@a.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 0);
    assert_eq!(scalar(s, "SELECT passes FROM greylist_client WHERE ip = INET_ATON('192.0.2.10')").await, Value::UInt(3));
    assert_eq!(defer(s, "dave@d.example/bob@b.example", "192.0.2.10", 3, 300, 1).await, 0);
    // awl_count 0 switches the whitelist off.
    assert_eq!(defer(s, "erin@e.example/bob@b.example", "192.0.2.10", 0, 300, 1).await, 1);
    // timestamp_update 0 leaves last_seen where it was.
    assert_eq!(defer(s, "frank@f.example/bob@b.example", "198.51.100.1", 0, 60, 0).await, 1);
    clock.advance(120 * 1_000_000);
    assert_eq!(defer(s, "frank@f.example/bob@b.example", "198.51.100.1", 0, 60, 0).await, 0);
    assert_eq!(
        scalar(s, "SELECT last_seen - first_seen FROM greylist_triplet WHERE k = 'frank@f.example/bob@b.example'").await,
        Value::UInt(0)
    );
    // What cannot be keyed in four bytes is accepted.
    assert_eq!(defer(s, "x/y", "2001:db8::1", 3, 300, 1).await, 0);
    assert_eq!(defer(s, "x/y", "not an address", 3, 300, 1).await, 0);
    // The IPs are stored in 4 bytes.
    assert_eq!(scalar(s, "SELECT COUNT(*) FROM greylist_client WHERE ip = 3221225994").await, Value::Int(1));
}

/// What one call costs in requests to the node groups: a whitelisted client is one read; a
/// known triplet one read of the whitelist, one upsert and one read; no scans.
#[tokio::test]
async fn one_call_is_a_few_key_operations() {
    let Setup { cluster, clock, mut session } = setup().await;
    let s = &mut session;
    assert_eq!(defer(s, "k", "203.0.113.5", 2, 10, 1).await, 1);
    clock.advance(11 * 1_000_000);
    cluster.reset_requests();
    assert_eq!(defer(s, "k", "203.0.113.5", 2, 10, 1).await, 0);
    let r: Vec<_> = cluster.requests().into_values().collect();
    let (gets, scans, writes): (u64, u64, u64) =
        r.iter().fold((0, 0, 0), |(g, s, w), x| (g + x.gets, s + x.scans, w + x.writes));
    assert_eq!((gets, scans, writes), (2, 0, 2), "whitelist read, triplet upsert and read, client upsert");
    defer(s, "k", "203.0.113.5", 2, 10, 1).await;
    cluster.reset_requests();
    assert_eq!(defer(s, "other", "203.0.113.5", 2, 10, 1).await, 0, "two passes: whitelisted");
    let r: Vec<_> = cluster.requests().into_values().collect();
    let (gets, scans, writes): (u64, u64, u64) =
        r.iter().fold((0, 0, 0), |(g, s, w), x| (g + x.gets, s + x.scans, w + x.writes));
    assert_eq!((gets, scans, writes), (1, 0, 1), "whitelist read and its last_seen update");
}

/// The text-protocol call Exim sends, timed (in-process: no network, no Raft).
#[tokio::test]
async fn text_protocol_call_speed() {
    let Setup { mut session, .. } = setup().await;
    let n = 5_000u32;
    let start = Instant::now();
    for i in 0..n {
        let sql = format!("SELECT greylist_defer_p('sender{}/rcpt', '10.1.{}.{}', 5, 300, 1)", i % 50, (i / 256) % 256, i % 256);
        let outcome = session.execute(&sql).await.remove(0);
        assert!(matches!(outcome, Outcome::Rows { .. }), "{outcome:?}");
    }
    let elapsed = start.elapsed();
    println!("greylist_defer_p through the text protocol: {:.1} µs/call", elapsed.as_secs_f64() * 1e6 / n as f64);
    let parses = scalar(&mut session, "SELECT 1").await;
    assert_eq!(parses, Value::Int(1));
}
