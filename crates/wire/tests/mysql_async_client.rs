//! The dummy handler driven by a real client, `mysql_async` (which negotiates DEPRECATE_EOF,
//! MULTI_STATEMENTS and PS_MULTI_RESULTS), over TCP.

mod common;

use cairn_wire::{ColumnType, Error, column_flag, status};
use common::{ROOT_PASSWORD, TRICKY_NAME, TestServer};
use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Conn, Row, Value as MyValue};
use std::sync::atomic::Ordering;

fn server_error(result: Result<impl std::fmt::Debug, mysql_async::Error>) -> (u16, String) {
    match result {
        Err(mysql_async::Error::Server(e)) => (e.code, e.state),
        other => panic!("expected a server error, got {other:?}"),
    }
}

async fn assert_usable(conn: &mut Conn) {
    let one: Option<i64> = conn
        .query_first("select 1")
        .await
        .expect("connection still usable");
    assert_eq!(one, Some(1));
}

#[tokio::test]
async fn handshake_and_text_protocol_types() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    assert_eq!(conn.server_version(), (8, 0, 36));
    assert_usable(&mut conn).await;

    let rows: Vec<Row> = conn.query("select * from t").await.unwrap();
    assert_eq!(rows.len(), 3);
    let columns = rows[0].columns_ref();
    let types: Vec<_> = columns.iter().map(|c| c.column_type() as u8).collect();
    assert_eq!(
        types,
        [8, 253, 246, 12, 252, 8, 5, 10, 11],
        "BIGINT, VARCHAR, DECIMAL, DATETIME, BLOB, BIGINT UNSIGNED, DOUBLE, DATE, TIME"
    );
    assert_eq!(
        columns[4].character_set(),
        63,
        "binary columns carry charset 63"
    );
    assert!(columns[5].flags().bits() & column_flag::UNSIGNED != 0);
    assert!(columns[0].flags().bits() & column_flag::PRI_KEY != 0);
    assert_eq!(columns[0].table_str(), "t");
    assert_eq!(columns[0].schema_str(), "calmail");
    assert_eq!(columns[2].decimals(), 2);

    let text = |row: &Row, i: usize| match &row[i] {
        MyValue::Bytes(b) => b.clone(),
        other => panic!("text protocol sent {other:?}"),
    };
    let first = &rows[0];
    assert_eq!(first.get::<i64, _>(0), Some(1));
    assert_eq!(text(first, 1), b"alice");
    assert_eq!(text(first, 2), b"12.50");
    assert_eq!(text(first, 3), b"2024-02-29 13:14:15");
    assert_eq!(text(first, 4), [0xFF, 0x00]);
    assert_eq!(first.get::<u64, _>(5), Some(u64::MAX));
    assert_eq!(first.get::<f64, _>(6), Some(0.5));
    assert_eq!(text(first, 7), b"2000-01-01");
    assert_eq!(text(first, 8), b"01:02:03.000000");
    let second = &rows[1];
    assert_eq!(text(second, 1), TRICKY_NAME.as_bytes());
    assert_eq!(text(second, 2), b"-0.01");
    assert_eq!(text(second, 4), b"", "an empty string is not NULL");
    assert_eq!(text(second, 6), b"-1e300");
    assert_eq!(text(second, 8), b"-26:03:04.500000");
    let third = &rows[2];
    assert_eq!(third.get::<i64, _>(0), Some(3));
    for i in 1..9 {
        assert_eq!(third[i], MyValue::NULL, "column {i} is NULL");
    }
    conn.disconnect().await.unwrap();
    assert!(server.finish().await.iter().all(Result::is_ok));
}

#[tokio::test]
async fn prepared_statement_parameters_round_trip_exactly() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let params: Vec<MyValue> = vec![
        MyValue::Int(i64::MIN),
        MyValue::Int(i64::MAX),
        MyValue::UInt(u64::MAX),
        MyValue::Int(-128),
        MyValue::UInt(4_294_967_295),
        MyValue::Bytes("it's a \"quote\"\n\ttab\\ 😀 𝄞".as_bytes().to_vec()),
        MyValue::Bytes(Vec::new()),
        MyValue::NULL,
        MyValue::Double(1.5e-7),
        MyValue::Double(-1e300),
        MyValue::Float(0.25),
        MyValue::Bytes(vec![0, 0xFF, 1]),
        MyValue::Date(2024, 2, 29, 0, 0, 0, 0),
        MyValue::Date(2024, 2, 29, 23, 59, 58, 123_456),
        MyValue::Date(1999, 12, 31, 1, 2, 3, 0),
        MyValue::Time(true, 34, 22, 59, 59, 0),
        MyValue::Time(false, 0, 0, 0, 0, 1),
        MyValue::Bytes(b"-12345678901234567890.123456789".to_vec()),
    ];
    let placeholders = vec!["?"; params.len()].join(", ");
    let sql = format!("select {placeholders}");
    let row: Row = conn
        .exec_first(sql.as_str(), params.clone())
        .await
        .unwrap()
        .expect("one row");
    for (i, sent) in params.iter().enumerate() {
        // mysql_async binds an unsigned value that fits in i64 as a signed BIGINT.
        let expected = match *sent {
            MyValue::UInt(v) if v <= i64::MAX as u64 => MyValue::Int(v as i64),
            ref other => other.clone(),
        };
        assert_eq!(row[i], expected, "parameter {i}");
    }
    let types: Vec<u8> = row
        .columns_ref()
        .iter()
        .map(|c| c.column_type() as u8)
        .collect();
    assert_eq!(types[..5], [8, 8, 8, 8, 8]);
    assert_eq!(types[7], ColumnType::NULL.0);
    assert!(row.columns_ref()[2].flags().bits() & column_flag::UNSIGNED != 0);

    // The same statement again: the client re-binds types, the crate must not care.
    let again: Row = conn
        .exec_first(sql.as_str(), params.clone())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.unwrap(), row.unwrap());
    assert_usable(&mut conn).await;
    drop(conn);
    server.finish().await;
}

#[tokio::test]
async fn binary_protocol_rows_follow_column_types() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let rows: Vec<Row> = conn
        .exec("select * from t where id = ?", (1,))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].clone().unwrap(),
        vec![
            MyValue::Int(1),
            MyValue::Bytes(b"alice".to_vec()),
            MyValue::Bytes(b"12.50".to_vec()),
            MyValue::Date(2024, 2, 29, 13, 14, 15, 0),
            MyValue::Bytes(vec![0xFF, 0x00]),
            MyValue::UInt(u64::MAX),
            MyValue::Double(0.5),
            MyValue::Date(2000, 1, 1, 0, 0, 0, 0),
            MyValue::Time(false, 0, 1, 2, 3, 0),
        ]
    );
    // A number sent as a string parameter.
    let rows: Vec<Row> = conn
        .exec("select * from t where id = ?", ("2",))
        .await
        .unwrap();
    assert_eq!(rows[0][1], MyValue::Bytes(TRICKY_NAME.as_bytes().to_vec()));
    assert_eq!(rows[0][8], MyValue::Time(true, 1, 2, 3, 4, 500_000));
    assert_eq!(rows[0][6], MyValue::Double(-1e300));
    let rows: Vec<Row> = conn
        .exec("select * from t where id = ?", (3,))
        .await
        .unwrap();
    assert_eq!(rows[0][0], MyValue::Int(3));
    assert!(
        rows[0].clone().unwrap()[1..]
            .iter()
            .all(|v| *v == MyValue::NULL)
    );
    let all: Vec<Row> = conn.exec("select * from t", ()).await.unwrap();
    assert_eq!(all.len(), 3);
    drop(conn);
    server.finish().await;
}

#[tokio::test]
async fn errors_carry_code_and_sqlstate_and_the_connection_survives() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    assert_eq!(
        server_error(conn.query_drop("insert dup").await),
        (1062, "23000".into())
    );
    assert_usable(&mut conn).await;
    assert_eq!(
        server_error(conn.query_drop("select * from missing").await),
        (1146, "42S02".into())
    );
    assert_eq!(
        server_error(conn.query_drop("this is not sql").await),
        (1064, "42000".into())
    );
    assert_usable(&mut conn).await;
    // At prepare time, at execute time.
    assert_eq!(
        server_error(conn.exec_drop("select * from missing", ()).await),
        (1146, "42S02".into())
    );
    assert_eq!(
        server_error(conn.exec_drop("fail ?", (1,)).await),
        (1062, "23000".into())
    );
    assert_usable(&mut conn).await;
    // In the middle of a streamed result: rows, then the error.
    let mut result = conn.query_iter("stream_error 1000").await.unwrap();
    let collected: Result<Vec<Row>, _> = result.collect().await;
    assert_eq!(server_error(collected), (1317, "70100".into()));
    drop(result);
    assert_usable(&mut conn).await;
    // A value that does not fit its column in the binary protocol ends the result with 1105.
    let (code, _) = server_error(conn.exec::<Row, _, _>("select bad", ()).await);
    assert_eq!(code, 1105);
    assert_usable(&mut conn).await;
    drop(conn);
    server.finish().await;
}

#[tokio::test]
async fn ok_packets_carry_counts_ids_info_warnings_and_status() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    conn.query_drop("insert into t values (1), (2), (3)")
        .await
        .unwrap();
    assert_eq!(conn.affected_rows(), 3);
    assert_eq!(conn.last_insert_id(), Some(42));
    assert_eq!(conn.info(), "Records: 3  Duplicates: 0  Warnings: 0");
    conn.query_drop("warn").await.unwrap();
    assert_eq!(conn.get_warnings(), 2);
    conn.exec_drop("insert into t values (?, ?)", (1, "x"))
        .await
        .unwrap();
    assert_eq!((conn.affected_rows(), conn.last_insert_id()), (1, Some(9)));
    // Without FOUND_ROWS a no-op UPDATE reports changed rows; with it, matched rows.
    conn.query_drop("update t set name = name").await.unwrap();
    assert_eq!(conn.affected_rows(), 1);
    let mut found = Conn::new(server.opts("root", ROOT_PASSWORD).client_found_rows(true))
        .await
        .unwrap();
    found.query_drop("update t set name = name").await.unwrap();
    assert_eq!(found.affected_rows(), 3);
    // Status flags after a SELECT come from the handler: AUTOCOMMIT, then IN_TRANS.
    let _: Vec<Row> = conn.query("select * from t").await.unwrap();
    let status_after = |conn: &Conn| {
        conn.last_ok_packet()
            .map(|ok| ok.status_flags().bits())
            .unwrap_or(0)
    };
    assert_eq!(
        status_after(&conn) & (status::AUTOCOMMIT | status::IN_TRANS),
        status::AUTOCOMMIT
    );
    conn.query_drop("begin").await.unwrap();
    let _: Vec<Row> = conn.query("select * from t").await.unwrap();
    assert_ne!(status_after(&conn) & status::IN_TRANS, 0);
    conn.query_drop("commit").await.unwrap();
    drop((conn, found));
    server.finish().await;
}

#[tokio::test]
async fn ping_reset_connection_and_statement_cleanup() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    conn.ping().await.unwrap();
    conn.query_drop("set @v = 5").await.unwrap();
    assert_eq!(
        conn.query_first::<i64, _>("select @v").await.unwrap(),
        Some(5)
    );
    conn.exec_drop("select ?", (1,)).await.unwrap();
    conn.exec_drop("select 1", ()).await.unwrap();
    assert_eq!(
        server.shared.open_statements.load(Ordering::SeqCst),
        2,
        "cached by the client"
    );
    assert!(
        conn.reset().await.unwrap(),
        "COM_RESET_CONNECTION supported"
    );
    assert_eq!(
        server.shared.open_statements.load(Ordering::SeqCst),
        0,
        "reset closes statements"
    );
    assert_eq!(
        conn.query_first::<Option<i64>, _>("select @v")
            .await
            .unwrap(),
        Some(None)
    );
    // Statements prepared after the reset work, and closing one reaches the handler.
    let stmt = conn.prep("select ?").await.unwrap();
    let echoed: Option<String> = conn.exec_first(&stmt, ("after reset",)).await.unwrap();
    assert_eq!(echoed.as_deref(), Some("after reset"));
    conn.close(stmt).await.unwrap();
    conn.ping().await.unwrap();
    assert_eq!(server.shared.open_statements.load(Ordering::SeqCst), 0);
    conn.disconnect().await.unwrap();
    assert!(server.finish().await.iter().all(Result::is_ok));
}

#[tokio::test]
async fn change_user_reauthenticates_and_failure_closes() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    conn.change_user(
        ChangeUserOpts::default()
            .with_user(Some("bob".into()))
            .with_pass(Some("bobpw".into())),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.query_first::<String, _>("select current_user()")
            .await
            .unwrap()
            .unwrap(),
        "bob@%"
    );
    {
        let logins = server.shared.logins.lock().unwrap();
        let last = logins.last().unwrap();
        assert!(last.change_user);
        assert_eq!(last.user, "bob");
    }
    // An account with an empty password.
    conn.change_user(
        ChangeUserOpts::default()
            .with_user(Some("alice".into()))
            .with_pass(None),
    )
    .await
    .unwrap();
    assert_eq!(
        conn.query_first::<String, _>("select current_user()")
            .await
            .unwrap()
            .unwrap(),
        "alice@%"
    );
    let failed = conn
        .change_user(
            ChangeUserOpts::default()
                .with_user(Some("bob".into()))
                .with_pass(Some("wrong".into())),
        )
        .await;
    assert_eq!(server_error(failed), (1045, "28000".into()));
    assert!(
        conn.query_drop("select 1").await.is_err(),
        "the connection is closed after a failed change"
    );
    drop(conn);
    let results = server.finish().await;
    assert!(
        matches!(results[0], Err(Error::AuthenticationFailed { ref user, .. }) if user == "bob")
    );
}

#[tokio::test]
async fn bad_password_and_unknown_database_are_refused() {
    let server = TestServer::start().await;
    let bad = Conn::new(server.opts("root", "nope")).await;
    assert_eq!(server_error(bad), (1045, "28000".into()));
    let unknown_db = Conn::new(server.opts("root", ROOT_PASSWORD).db_name(Some("nosuchdb"))).await;
    assert_eq!(server_error(unknown_db), (1049, "42000".into()));
    let mut alice = Conn::new(server.opts("alice", "")).await.unwrap();
    assert_usable(&mut alice).await;
    drop(alice);
    let results = server.finish().await;
    assert!(matches!(
        results[0],
        Err(Error::AuthenticationFailed { .. })
    ));
    assert!(matches!(
        results[1],
        Err(Error::AuthenticationFailed { .. })
    ));
}

#[tokio::test]
async fn multi_statements_and_multiple_results() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let mut result = conn
        .query_iter("select 1; select * from t; insert into t values (1)")
        .await
        .unwrap();
    let first: Vec<i64> = result.collect().await.unwrap();
    assert_eq!(first, [1]);
    let second: Vec<Row> = result.collect().await.unwrap();
    assert_eq!(second.len(), 3);
    let third: Vec<Row> = result.collect().await.unwrap();
    assert!(third.is_empty());
    assert_eq!(result.affected_rows(), 3);
    assert!(result.is_empty(), "no fourth result");
    drop(result);
    // The first error ends a multi-statement.
    let mut result = conn
        .query_iter("select 1; insert dup; select 1")
        .await
        .unwrap();
    let first: Vec<i64> = result.collect().await.unwrap();
    assert_eq!(first, [1]);
    let failed: Result<Vec<Row>, _> = result.collect().await;
    assert_eq!(server_error(failed), (1062, "23000".into()));
    drop(result);
    assert_usable(&mut conn).await;
    // Several results from one COM_STMT_EXECUTE (PS_MULTI_RESULTS, as CALL gives).
    let mut result = conn.exec_iter("multi", ()).await.unwrap();
    let a: Vec<i64> = result.collect().await.unwrap();
    let b: Vec<Row> = result.collect().await.unwrap();
    assert_eq!((a.len(), b.len()), (1, 3));
    assert_eq!(
        b[0][3],
        MyValue::Date(2024, 2, 29, 13, 14, 15, 0),
        "binary rows in the second set"
    );
    drop(result);
    assert_usable(&mut conn).await;
    drop(conn);
    server.finish().await;
}

#[tokio::test]
async fn streamed_results_in_both_protocols() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    let rows: Vec<(i64, String)> = conn.query("stream 100000").await.unwrap();
    assert_eq!(rows.len(), 100_000);
    assert_eq!(rows[99_999], (99_999, "row 99999".to_string()));
    let rows: Vec<(i64, String)> = conn.exec("stream 30000", ()).await.unwrap();
    assert_eq!(rows.len(), 30_000);
    assert_eq!(rows[12_345], (12_345, "row 12345".to_string()));
    drop(conn);
    server.finish().await;
}

#[tokio::test]
async fn packets_of_sixteen_megabytes_and_more() {
    let server = TestServer::start().await;
    let mut conn = server.connect().await;
    // A 17 MB query: multi-packet in.
    let sql = format!("/*len*/{}", "x".repeat(17_000_000));
    assert_eq!(
        conn.query_first::<u64, _>(sql.as_str()).await.unwrap(),
        Some(sql.len() as u64)
    );
    // A 17 MB row: multi-packet out, text protocol.
    let big: Vec<u8> = conn.query_first("big 17000000").await.unwrap().unwrap();
    assert_eq!(big.len(), 17_000_000);
    // A row payload of exactly 0xFFFFFF bytes (0xFD + 3 length bytes + the value): the
    // client hangs unless the server sends an empty packet after it.
    let exact: Vec<u8> = conn.query_first("big 16777211").await.unwrap().unwrap();
    assert_eq!(exact.len(), 16_777_211);
    // A 17 MB parameter: the client sends it with COM_STMT_SEND_LONG_DATA in chunks, each a
    // multi-packet command, and gets it back as a 17 MB binary row.
    let param = vec![b'p'; 17_000_000];
    let echoed: Vec<u8> = conn
        .exec_first("select ?", (param.clone(),))
        .await
        .unwrap()
        .unwrap();
    assert!(echoed == param);
    // A binary row payload of exactly 0xFFFFFF bytes: 0x00, a one-byte NULL bitmap, 0xFD and
    // three length bytes, then the value.
    let param = vec![b'q'; 0xFF_FFFF - 6];
    let echoed: Vec<u8> = conn
        .exec_first("select ?", (param.clone(),))
        .await
        .unwrap()
        .unwrap();
    assert!(echoed == param);
    assert_usable(&mut conn).await;
    drop(conn);
    server.finish().await;
}
