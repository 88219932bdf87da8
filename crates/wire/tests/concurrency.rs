//! 64 connections at once for a few seconds: 48 mysql_async clients mixing prepared statements,
//! queries, multi-statements and pings, and 16 raw clients pipelining long data, executes,
//! resets, queries and pings in single writes. No errors, and every connection task ends.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cairn_wire::{capability, command};
use common::{
    RAW_CAPABILITIES, RawClient, Reply, TestServer, execute_payload, frame, lenenc_string,
};
use mysql_async::prelude::*;
use mysql_async::{Row, Value};

const DURATION: Duration = Duration::from_secs(3);

async fn mysql_async_worker(
    server_opts: mysql_async::OptsBuilder,
    worker: usize,
    ops: Arc<AtomicUsize>,
) {
    let mut conn = mysql_async::Conn::new(server_opts).await.expect("connect");
    let deadline = Instant::now() + DURATION;
    let mut round = 0usize;
    while Instant::now() < deadline {
        let id = (round % 3 + 1) as i64;
        let rows: Vec<Row> = conn
            .exec("select * from t where id = ?", (id,))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0][0], Value::Int(id));
        let text = format!("worker {worker} round {round} 😀");
        let echoed: Option<(String, u64)> = conn
            .exec_first("select ?, ?", (&text, u64::MAX))
            .await
            .unwrap();
        assert_eq!(echoed, Some((text, u64::MAX)));
        let all: Vec<Row> = conn.query("select * from t").await.unwrap();
        assert_eq!(all.len(), 3);
        conn.query_drop("insert into t values (1), (2), (3)")
            .await
            .unwrap();
        assert_eq!(conn.affected_rows(), 3);
        let mut multi = conn.query_iter("select 1; select 1").await.unwrap();
        let a: Vec<i64> = multi.collect().await.unwrap();
        let b: Vec<i64> = multi.collect().await.unwrap();
        assert_eq!((a, b), (vec![1], vec![1]));
        drop(multi);
        if round.is_multiple_of(10) {
            conn.ping().await.unwrap();
        }
        round += 1;
        ops.fetch_add(6, Ordering::Relaxed);
    }
    conn.disconnect().await.unwrap();
}

async fn raw_pipelining_worker(addr: std::net::SocketAddr, worker: usize, ops: Arc<AtomicUsize>) {
    let caps = if worker.is_multiple_of(2) {
        RAW_CAPABILITIES
    } else {
        RAW_CAPABILITIES | capability::DEPRECATE_EOF
    };
    let mut c = RawClient::login(addr, caps).await;
    let (id, _, _) = c.prepare("select ?, ?").await.expect("prepare");
    let deadline = Instant::now() + DURATION;
    let mut round = 0u64;
    while Instant::now() < deadline {
        let mut batch = Vec::new();
        // Long data for parameter 1, then an execute that binds both parameters.
        let mut long = vec![command::STMT_SEND_LONG_DATA];
        long.extend_from_slice(&id.to_le_bytes());
        long.extend_from_slice(&1u16.to_le_bytes());
        long.extend_from_slice(format!("long {round}").as_bytes());
        batch.extend_from_slice(&frame(&long, 0));
        let params = [
            (8u8, true, Some(round.to_le_bytes().to_vec())),
            (252u8, false, Some(Vec::new())),
        ];
        batch.extend_from_slice(&frame(&execute_payload(id, &params, true), 0));
        batch.extend_from_slice(&frame(b"\x03select 1", 0));
        let mut reset = vec![command::STMT_RESET];
        reset.extend_from_slice(&id.to_le_bytes());
        batch.extend_from_slice(&frame(&reset, 0));
        batch.extend_from_slice(&frame(&[command::PING], 0));
        // Types are remembered: the second execute does not re-bind them.
        let params = [
            (8u8, true, Some((round + 1).to_le_bytes().to_vec())),
            (252u8, false, Some(lenenc_string(b"inline"))),
        ];
        batch.extend_from_slice(&frame(&execute_payload(id, &params, false), 0));
        batch.extend_from_slice(&frame(b"\x03select 1; select * from t", 0));
        c.write(&batch).await;

        let Reply::Rows { rows, .. } = c.read_reply().await else {
            panic!("execute")
        };
        assert_eq!(&rows[0][2..10], &round.to_le_bytes());
        assert_eq!(
            &rows[0][10..],
            &lenenc_string(format!("long {round}").as_bytes())[..]
        );
        assert!(matches!(c.read_reply().await, Reply::Rows { .. }));
        assert!(matches!(c.read_reply().await, Reply::Ok { .. }));
        assert!(matches!(c.read_reply().await, Reply::Ok { .. }));
        let Reply::Rows { rows, .. } = c.read_reply().await else {
            panic!("second execute")
        };
        assert_eq!(&rows[0][10..], &lenenc_string(b"inline")[..]);
        let replies = c.read_replies().await;
        assert_eq!(replies.len(), 2);
        round += 1;
        ops.fetch_add(7, Ordering::Relaxed);
    }
    c.command(&[command::QUIT]).await;
    c.read_to_end().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_connections_pipelining_for_a_few_seconds() {
    let server = TestServer::start().await;
    let ops = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..48 {
        let opts = server
            .opts("root", common::ROOT_PASSWORD)
            .db_name(Some("calmail"));
        tasks.spawn(mysql_async_worker(opts, worker, ops.clone()));
    }
    for worker in 0..16 {
        tasks.spawn(raw_pipelining_worker(server.addr, worker, ops.clone()));
    }
    while let Some(joined) = tasks.join_next().await {
        joined.expect("a client task failed");
    }
    let elapsed = started.elapsed();
    let total = ops.load(Ordering::Relaxed);
    println!(
        "64 connections: {total} commands in {elapsed:.1?} ({:.0}/s)",
        total as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(server.connection_count(), 64);
    let results = server.finish().await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
}
