//! Stored routines across a real cluster: a routine created through one SQL node runs at once
//! on another and survives a full cluster restart; the greylisting function of
//! `examples/greylist/greylist.sql` loses no count when two SQL nodes call it for the same
//! triplet at the same time; Exim's RCPT ACL greylists through it (tests/clients/exim).

use std::time::Duration;

use cairn_e2e::{Cluster, ClusterSpec};
use mysql_async::prelude::*;

/// The example's statements as the mysql client sends them (DELIMITER blocks whole).
fn example_statements() -> Vec<String> {
    let text = include_str!("../../examples/greylist/greylist.sql");
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
            statements.push(current.trim().trim_end_matches(delimiter.as_str()).trim().to_string());
            current.clear();
        }
    }
    statements
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_routine_created_through_one_sql_node_runs_on_another_and_survives_a_restart() {
    let mut cluster = Cluster::start(ClusterSpec { sql_nodes: 2, ..Default::default() }).await.unwrap();
    let first = cluster.pool(0, None);
    let second = cluster.pool(1, None);
    let mut a = first.get_conn().await.unwrap();
    let mut b = second.get_conn().await.unwrap();
    a.query_drop("CREATE DATABASE calmail").await.unwrap();
    a.query_drop("CREATE TABLE calmail.quota (id INT PRIMARY KEY, mb INT NOT NULL)").await.unwrap();
    a.query_drop("INSERT INTO calmail.quota VALUES (1, 100), (2, 250)").await.unwrap();
    // Sent as one statement, as drivers send it; the mysql CLI's DELIMITER workflow is the Exim
    // test's (the schema file goes through the CLI).
    a.query_drop(
        "CREATE FUNCTION calmail.quota_of(account INT) RETURNS INT READS SQL DATA \
         BEGIN DECLARE q INT DEFAULT -1; SELECT mb INTO q FROM quota WHERE id = account; RETURN q; END",
    )
    .await
    .unwrap();
    // At once through the other SQL node: no wait for the catalog push (a node that does not
    // know a routine synchronizes its catalog before saying so).
    let q: Option<i64> = b.query_first("SELECT calmail.quota_of(2)").await.unwrap();
    assert_eq!(q, Some(250));
    a.query_drop(
        "CREATE PROCEDURE calmail.grow(IN account INT, IN by_mb INT, OUT now_mb INT) MODIFIES SQL DATA \
         BEGIN UPDATE quota SET mb = mb + by_mb WHERE id = account; SELECT mb INTO now_mb FROM quota WHERE id = account; \
         SELECT account, now_mb; END",
    )
    .await
    .unwrap();
    // A CALL's result set, then its OK, through the other node; the OUT value in a variable.
    let row: Option<(i64, i64)> = b.query_first("CALL calmail.grow(1, 5, @now)").await.unwrap();
    assert_eq!(row, Some((1, 105)));
    let now: Option<i64> = b.query_first("SELECT @now").await.unwrap();
    assert_eq!(now, Some(105));
    // A prepared statement calling the function, several times (its plan is kept).
    for (id, mb) in [(1i64, 105i64), (2, 250), (3, -1)] {
        let q: Option<i64> = b.exec_first("SELECT calmail.quota_of(?)", (id,)).await.unwrap();
        assert_eq!(q, Some(mb), "quota_of({id})");
    }
    // A replacement made through the second node reaches the first.
    b.query_drop("CREATE OR REPLACE FUNCTION calmail.quota_of(account INT) RETURNS INT RETURN account * 1000").await.unwrap();
    let q: Option<i64> = a.query_first("SELECT calmail.quota_of(2)").await.unwrap();
    assert_eq!(q, Some(2000));
    drop((a, b));
    first.disconnect().await.unwrap();
    second.disconnect().await.unwrap();

    // Every node down, then up again: the routines come back with the catalog.
    for id in [100, 101, 1, 2, 49] {
        cluster.stop(id);
    }
    for id in [49, 1, 2, 100, 101] {
        cluster.start_node(id).unwrap();
    }
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap();
    let second = cluster.pool(1, None);
    let mut b = second.get_conn().await.unwrap();
    let q: Option<i64> = b.query_first("SELECT calmail.quota_of(7)").await.unwrap();
    assert_eq!(q, Some(7000));
    let row: Option<(i64, i64)> = b.query_first("CALL calmail.grow(2, 1, @now)").await.unwrap();
    assert_eq!(row, Some((2, 251)));
    let create: Option<(String, String, String)> =
        b.query_first("SHOW CREATE PROCEDURE calmail.grow").await.ok().flatten().map(|r: mysql_async::Row| {
            let get = |i: usize| r.get::<Option<String>, usize>(i).flatten().unwrap_or_default();
            (get(0), get(1), get(2))
        });
    let (name, _mode, text) = create.expect("SHOW CREATE PROCEDURE answers");
    assert_eq!(name, "grow");
    assert!(text.starts_with("CREATE DEFINER=`root`@`%` PROCEDURE `grow`(IN account INT, IN by_mb INT, OUT now_mb INT)"), "{text}");
    drop(b);
    second.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_greylisting_through_two_sql_nodes_loses_no_count() {
    let cluster = Cluster::start(ClusterSpec { sql_nodes: 2, ..Default::default() }).await.unwrap();
    let pools = [cluster.pool(0, Some("calmail")), cluster.pool(1, Some("calmail"))];
    {
        let setup = cluster.pool(0, None);
        let mut c = setup.get_conn().await.unwrap();
        c.query_drop("CREATE DATABASE calmail").await.unwrap();
        c.query_drop("USE calmail").await.unwrap();
        for statement in example_statements() {
            c.query_drop(&statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        drop(c);
        setup.disconnect().await.unwrap();
    }
    // 16 connections, 8 through each SQL node, call the function for one new triplet at once.
    // All are deferred (the delay has not passed), and every attempt is counted.
    const TASKS: usize = 16;
    const CALLS: usize = 25;
    let call = |pool: mysql_async::Pool, delay: i64| async move {
        let mut c = pool.get_conn().await.unwrap();
        let mut answers = Vec::with_capacity(CALLS);
        for _ in 0..CALLS {
            // The text protocol with literals, as Exim sends it (awl_count is high: the
            // whitelist never kicks in, so every accepted attempt counts a pass).
            let sql = format!("select greylist_defer_p('bob@a.example/alice@b.example','192.0.2.7',1000000,{delay},1)");
            let v: Option<i64> = c.query_first(&sql).await.unwrap();
            answers.push(v.unwrap());
        }
        answers
    };
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        tasks.push(tokio::spawn(call(pools[t % 2].clone(), 300)));
    }
    let mut deferred = 0;
    for t in tasks {
        deferred += t.await.unwrap().into_iter().filter(|v| *v == 1).count();
    }
    assert_eq!(deferred, TASKS * CALLS, "every attempt inside the delay is deferred");
    let mut c = pools[1].get_conn().await.unwrap();
    let attempts: Option<u64> = c.query_first("SELECT attempts FROM greylist_triplet").await.unwrap();
    assert_eq!(attempts, Some((TASKS * CALLS) as u64), "no attempt was lost");
    let rows: Option<u64> = c.query_first("SELECT COUNT(*) FROM greylist_triplet").await.unwrap();
    assert_eq!(rows, Some(1), "one row for the triplet, whoever inserted it");

    // After the delay, all are accepted at once, and every accepted attempt earns a pass.
    c.query_drop("UPDATE greylist_triplet SET first_seen = first_seen - 301").await.unwrap();
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        tasks.push(tokio::spawn(call(pools[t % 2].clone(), 300)));
    }
    let mut accepted = 0;
    for t in tasks {
        accepted += t.await.unwrap().into_iter().filter(|v| *v == 0).count();
    }
    assert_eq!(accepted, TASKS * CALLS);
    let passes: Option<u64> = c.query_first("SELECT passes FROM greylist_client WHERE ip = INET_ATON('192.0.2.7')").await.unwrap();
    assert_eq!(passes, Some((TASKS * CALLS) as u64), "no pass was lost");
    let attempts: Option<u64> = c.query_first("SELECT attempts FROM greylist_triplet").await.unwrap();
    assert_eq!(attempts, Some((2 * TASKS * CALLS) as u64));
    drop(c);
    for p in pools {
        p.disconnect().await.unwrap();
    }
}

/// Runs one of the Exim greylisting scripts of tests/clients/exim against SQL node 0. They need
/// exim4-daemon-heavy and the mariadb CLI (tests/clients/README.md installs them); without them
/// the test says so and passes, as the other client tests are skipped on machines without the
/// client.
async fn run_exim_script(script: &str) {
    let have = |tool: &str| std::process::Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().is_ok_and(|o| o.status.success());
    if !have("exim") || !have("mariadb") {
        eprintln!("SKIP {script}: exim (exim4-daemon-heavy) or the mariadb CLI is not installed");
        return;
    }
    let cluster = Cluster::start(ClusterSpec::default()).await.unwrap();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("clients/exim").join(script);
    let output = tokio::process::Command::new("bash")
        .arg(&path)
        .env("CAIRN_HOST", "127.0.0.1")
        .env("CAIRN_PORT", cluster.mysql_port(0).to_string())
        .env("CAIRN_USER", "root")
        .output();
    let output = tokio::time::timeout(Duration::from_secs(120), output).await.expect("the Exim script finished in time").unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.lines().last() == Some("PASS"),
        "{script} against Cairn:\n{stdout}\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        cluster.log_tails(20)
    );
}

/// The MariaDB-validated Exim test (its own greylisting function, loaded with DELIMITER through
/// the mariadb CLI): the ACL defers the first attempt and accepts a retry after the delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_greylists_through_a_stored_function() {
    run_exim_script("exim_greylist_test.sh").await;
}

/// The same with `examples/greylist/greylist.sql` and CalMail's ACL macros.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exim_greylists_with_the_example_function() {
    run_exim_script("exim_example_greylist_test.sh").await;
}
