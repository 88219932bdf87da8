//! Protocol details checked byte by byte with a raw client: both EOF framings, the greeting,
//! the auth switch, pipelining, 16 MiB boundaries, limits and refusals.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_wire::{Error, ServerOptions, capability, command, native_password_response, status};
use common::{
    RAW_CAPABILITIES, RawClient, Reply, TestServer, execute_payload, frame, lenenc_string,
    parse_err, parse_ok,
};

fn assert_err(reply: &Reply, code: u16, sqlstate: &str) {
    match reply {
        Reply::Err {
            code: c,
            sqlstate: s,
            ..
        } => assert_eq!((*c, s.as_str()), (code, sqlstate), "{reply:?}"),
        other => panic!("expected ERR {code}, got {other:?}"),
    }
}

fn assert_ok(reply: &Reply) {
    assert!(
        matches!(reply, Reply::Ok { .. }),
        "expected OK, got {reply:?}"
    );
}

async fn ping(client: &mut RawClient) {
    client.command(&[command::PING]).await;
    let reply = client.read_reply().await;
    assert_ok(&reply);
}

#[tokio::test]
async fn greeting_announces_version_plugin_capabilities_and_autocommit() {
    let server = TestServer::start().await;
    let a = RawClient::open(server.addr).await;
    let b = RawClient::open(server.addr).await;
    let g = &a.greeting;
    assert_eq!(g.version, "8.0.36-cairn-0.1.0");
    assert_eq!(g.plugin, "mysql_native_password");
    assert_eq!(g.collation, 255);
    assert_eq!(g.status, status::AUTOCOMMIT);
    for required in [
        capability::PROTOCOL_41,
        capability::SECURE_CONNECTION,
        capability::PLUGIN_AUTH,
        capability::PLUGIN_AUTH_LENENC_CLIENT_DATA,
        capability::CONNECT_WITH_DB,
        capability::CONNECT_ATTRS,
        capability::MULTI_STATEMENTS,
        capability::MULTI_RESULTS,
        capability::PS_MULTI_RESULTS,
        capability::DEPRECATE_EOF,
        capability::FOUND_ROWS,
        capability::TRANSACTIONS,
        capability::LONG_PASSWORD,
        capability::LONG_FLAG,
        capability::LOCAL_FILES,
    ] {
        assert_ne!(g.capabilities & required, 0, "capability {required:#x}");
    }
    for absent in [
        capability::SSL,
        capability::QUERY_ATTRIBUTES,
        capability::COMPRESS,
        capability::SESSION_TRACK,
    ] {
        assert_eq!(g.capabilities & absent, 0, "capability {absent:#x}");
    }
    assert!(g.scramble.iter().all(|b| (0x21..=0x7E).contains(b)));
    assert_ne!(
        a.greeting.scramble, b.greeting.scramble,
        "a fresh scramble per connection"
    );
    assert_ne!(a.greeting.connection_id, b.greeting.connection_id);
    drop((a, b));
    server.finish().await;
}

/// Runs the same conversation in the classic framing and with DEPRECATE_EOF.
#[tokio::test]
async fn both_eof_framings() {
    let server = TestServer::start().await;
    for capabilities in [
        RAW_CAPABILITIES,
        RAW_CAPABILITIES | capability::DEPRECATE_EOF,
    ] {
        let mut c = RawClient::login(server.addr, capabilities).await;
        // A text result set: read_reply checks the EOF after the definitions (classic) and the
        // terminator's form.
        let reply = c.query("select * from t").await;
        let Reply::Rows {
            columns,
            status: st,
            ..
        } = &reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!(columns.len(), 9);
        assert_eq!(columns[4].charset, 63);
        assert_eq!(columns[0].schema, "calmail");
        assert_eq!(
            *st & status::AUTOCOMMIT,
            status::AUTOCOMMIT,
            "status after a SELECT"
        );
        let rows = reply.text_rows();
        assert_eq!(rows[0][4].as_deref(), Some(&[0xFF, 0x00][..]));
        assert_eq!(rows[2][1], None);
        assert_eq!(
            rows[1][4].as_deref(),
            Some(&[][..]),
            "empty string, not NULL"
        );

        // Status flags follow the handler, on OK packets and result-set terminators.
        let reply = c.query("begin").await;
        assert_eq!(reply.status() & status::IN_TRANS, status::IN_TRANS);
        let reply = c.query("select 1").await;
        assert_eq!(reply.status() & status::IN_TRANS, status::IN_TRANS);
        assert_eq!(c.query("commit").await.status() & status::IN_TRANS, 0);

        // A prepare reply with parameter and column definitions, then a binary row.
        let (id, params, columns) = c.prepare("select * from t where id = ?").await.unwrap();
        assert_eq!((params.len(), columns.len()), (1, 9));
        assert_eq!(params[0].name, "?");
        c.command(&execute_payload(
            id,
            &[(8, false, Some(3i64.to_le_bytes().to_vec()))],
            true,
        ))
        .await;
        let reply = c.read_reply().await;
        let Reply::Rows { rows, .. } = &reply else {
            panic!("{reply:?}")
        };
        assert_eq!(rows.len(), 1);
        // Header 0, a NULL bitmap of (9 + 2 + 7) / 8 = 2 bytes with bits 3..=10 set (columns 1..=8
        // are NULL; the bitmap starts at bit 2), then the 8-byte id.
        assert_eq!(rows[0][0], 0x00);
        assert_eq!(&rows[0][1..3], &[0b1111_1000, 0b0000_0111]);
        assert_eq!(&rows[0][3..], &3i64.to_le_bytes());
        // A prepare with no parameters and no columns.
        let (_, params, columns) = c.prepare("insert into t values (1)").await.unwrap();
        assert!(params.is_empty() && columns.is_empty());

        // Several results: MORE_RESULTS_EXISTS on all but the last.
        c.command(b"\x03select 1; select * from t; insert into t values (1)")
            .await;
        let replies = c.read_replies().await;
        assert_eq!(replies.len(), 3);
        assert_ne!(replies[0].status() & status::MORE_RESULTS_EXISTS, 0);
        assert_ne!(replies[1].status() & status::MORE_RESULTS_EXISTS, 0);
        assert!(matches!(
            replies[2],
            Reply::Ok {
                affected_rows: 3,
                last_insert_id: 42,
                ..
            }
        ));
        let Reply::Ok { info, .. } = &replies[2] else {
            unreachable!()
        };
        assert_eq!(info, "Records: 3  Duplicates: 0  Warnings: 0");
        assert_eq!(replies[2].status() & status::MORE_RESULTS_EXISTS, 0);

        // COM_FIELD_LIST: definitions with a default-value field, then the terminator.
        c.command(b"\x04t\0").await;
        let mut defs = Vec::new();
        loop {
            let packet = c.expect_packet().await;
            if packet[0] == 0xFE {
                if c.deprecate_eof() {
                    assert!(matches!(parse_ok(&packet), Reply::Ok { .. }));
                } else {
                    assert_eq!(packet.len(), 5);
                }
                break;
            }
            defs.push(common::parse_column(&packet));
        }
        assert_eq!(defs.len(), 9);
        assert!(defs.iter().all(|d| d.extra == [0xFB]));
        c.command(b"\x04t\0na%").await;
        let first = common::parse_column(&c.expect_packet().await);
        assert_eq!(first.name, "name");
        assert_eq!(c.expect_packet().await[0], 0xFE);
        c.command(b"\x04nosuch\0").await;
        assert_err(&c.read_reply().await, 1146, "42S02");

        // COM_SET_OPTION answers with the terminator of the framing in use.
        c.command(&[command::SET_OPTION, 1, 0]).await;
        let packet = c.expect_packet().await;
        assert_eq!(packet[0], 0xFE);
        assert_eq!(packet.len() == 5, !c.deprecate_eof());
        assert_err(&c.query("select 1; select 1").await, 1064, "42000");
        c.command(&[command::SET_OPTION, 0, 0]).await;
        assert_eq!(c.expect_packet().await[0], 0xFE);
        c.command(b"\x03select 1; select 1").await;
        assert_eq!(c.read_replies().await.len(), 2);
        c.command(&[command::SET_OPTION, 9, 0]).await;
        assert_err(&c.read_reply().await, 1047, "08S01");

        // An error in the middle of streamed rows ends the result with an ERR packet.
        let reply = c.query("stream_error 10").await;
        let Reply::Rows {
            rows,
            error: Some(error),
            ..
        } = &reply
        else {
            panic!("{reply:?}")
        };
        assert_eq!(rows.len(), 10);
        assert_err(error, 1317, "70100");
        ping(&mut c).await;
        c.command(&[command::QUIT]).await;
        assert!(c.read_to_end().await.is_empty());
    }
    assert!(server.finish().await.iter().all(Result::is_ok));
}

#[tokio::test]
async fn caching_sha2_client_is_switched_to_native_password() {
    let server = TestServer::start().await;
    let mut c = RawClient::open(server.addr).await;
    let scramble = c.greeting.scramble;
    let caps = RAW_CAPABILITIES | capability::DEPRECATE_EOF;
    let response = c.handshake_response(
        caps,
        "root",
        &[0x5A; 32],
        Some("calmail"),
        Some("caching_sha2_password"),
    );
    c.send(1, &response).await;
    let (seq, _, switch) = c.read_packet().await.unwrap();
    assert_eq!(seq, 2);
    assert_eq!(switch[0], 0xFE);
    let mut expected = b"\xFEmysql_native_password\0".to_vec();
    expected.extend_from_slice(&scramble);
    expected.push(0);
    assert_eq!(switch, expected, "same scramble as the greeting");
    c.send(3, &native_password_response(&scramble, b"secret"))
        .await;
    let (seq, _, ok) = c.read_packet().await.unwrap();
    assert_eq!((seq, ok[0]), (4, 0x00));
    ping(&mut c).await;

    // COM_CHANGE_USER with another plugin: switch at sequence 1, answer at 2, OK at 3.
    let mut body = vec![command::CHANGE_USER];
    body.extend_from_slice(b"bob\0");
    body.push(32);
    body.extend_from_slice(&[1; 32]);
    body.extend_from_slice(b"test\0");
    body.extend_from_slice(&45u16.to_le_bytes());
    body.extend_from_slice(b"caching_sha2_password\0");
    c.command(&body).await;
    let (seq, _, switch) = c.read_packet().await.unwrap();
    assert_eq!((seq, switch[0]), (1, 0xFE));
    c.send(2, &native_password_response(&scramble, b"bobpw"))
        .await;
    let (seq, _, ok) = c.read_packet().await.unwrap();
    assert_eq!((seq, ok[0]), (3, 0x00), "{:?}", parse_err(&ok));
    let reply = c.query("select database()").await;
    assert_eq!(reply.text_rows()[0][0].as_deref(), Some(&b"test"[..]));
    drop(c);
    server.finish().await;
}

#[tokio::test]
async fn login_variants_empty_database_attributes_collation() {
    let server = TestServer::start().await;
    // The connector and mysql2 send CONNECT_WITH_DB with an empty name.
    let mut c = RawClient::open(server.addr).await;
    let auth = native_password_response(&c.greeting.scramble, b"secret");
    let caps = RAW_CAPABILITIES | capability::CONNECT_ATTRS | capability::QUERY_ATTRIBUTES;
    let mut response =
        c.handshake_response(caps, "root", &auth, Some(""), Some("mysql_native_password"));
    let mut attrs = lenenc_string(b"_client_name");
    attrs.extend_from_slice(&lenenc_string(b"raw-test"));
    response.extend_from_slice(&lenenc_string(&attrs));
    c.send(1, &response).await;
    assert_eq!(c.expect_packet().await[0], 0x00);
    let reply = c.query("select database()").await;
    assert_eq!(reply.text_rows()[0][0], None);
    {
        let logins = server.shared.logins.lock().unwrap();
        let login = logins.last().unwrap();
        assert_eq!(login.database, None);
        assert_eq!(login.collation, 45);
        assert_eq!(
            login.connect_attrs,
            [("_client_name".to_string(), "raw-test".to_string())]
        );
        assert_eq!(
            login.capabilities & capability::QUERY_ATTRIBUTES,
            0,
            "never negotiated"
        );
    }
    // QUERY_ATTRIBUTES was not negotiated, so a COM_QUERY is plain text.
    assert!(matches!(c.query("select 1").await, Reply::Rows { .. }));

    drop(c);

    // Go 1.5 / PHP style: no PLUGIN_AUTH_LENENC, no plugin name, no database.
    let mut c = RawClient::open(server.addr).await;
    let auth = native_password_response(&c.greeting.scramble, b"secret");
    let caps = capability::PROTOCOL_41 | capability::SECURE_CONNECTION | capability::LONG_PASSWORD;
    let response = c.handshake_response(caps, "root", &auth, None, None);
    c.send(1, &response).await;
    assert_eq!(c.expect_packet().await[0], 0x00);
    ping(&mut c).await;
    drop(c);

    // Wrong password: 1045/28000 and the connection closes.
    let mut c = RawClient::open(server.addr).await;
    let auth = native_password_response(&c.greeting.scramble, b"wrong");
    let response = c.handshake_response(RAW_CAPABILITIES, "root", &auth, None, None);
    c.send(1, &response).await;
    assert_err(&parse_err(&c.expect_packet().await), 1045, "28000");
    assert!(c.read_to_end().await.is_empty());

    // COM_INIT_DB.
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    c.command(b"\x02test").await;
    assert_ok(&c.read_reply().await);
    c.command(b"\x02nope").await;
    assert_err(&c.read_reply().await, 1049, "42000");
    c.command(b"\x02\xFF\xFE").await;
    assert_err(&c.read_reply().await, 1102, "42000");
    let reply = c.query("select database()").await;
    assert_eq!(reply.text_rows()[0][0].as_deref(), Some(&b"test"[..]));
    drop(c);
    server.finish().await;
}

#[tokio::test]
async fn refusals_pre41_tls_and_garbage_handshake() {
    let server = TestServer::start().await;
    let mut c = RawClient::open(server.addr).await;
    c.send(1, &[0x85, 0x00, 0x00, 0x00, 0x00, b'u', 0]).await;
    assert_err(&parse_err(&c.expect_packet().await), 1251, "08004");
    assert!(c.read_to_end().await.is_empty());

    let mut c = RawClient::open(server.addr).await;
    let mut ssl_request = (RAW_CAPABILITIES | capability::SSL).to_le_bytes().to_vec();
    ssl_request.extend_from_slice(&[0, 0, 0, 1, 45]);
    ssl_request.extend_from_slice(&[0; 23]);
    c.send(1, &ssl_request).await;
    assert_err(&parse_err(&c.expect_packet().await), 1043, "08S01");
    assert!(c.read_to_end().await.is_empty());

    let mut c = RawClient::open(server.addr).await;
    c.send(1, &RAW_CAPABILITIES.to_le_bytes()).await;
    assert_err(&parse_err(&c.expect_packet().await), 1043, "08S01");
    assert!(c.read_to_end().await.is_empty());

    let mut c = RawClient::open(server.addr).await;
    c.send(7, b"whatever").await;
    assert_err(&parse_err(&c.expect_packet().await), 1156, "08S01");
    assert!(c.read_to_end().await.is_empty());
    let results = server.finish().await;
    assert_eq!(results.len(), 4);
    assert!(
        results.iter().all(|r| matches!(r, Err(Error::Protocol(_)))),
        "{results:?}"
    );
}

#[tokio::test]
async fn pipelined_commands_in_one_write() {
    let server = TestServer::start().await;
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES).await;

    // Ten pings at once.
    let mut batch = Vec::new();
    for _ in 0..10 {
        batch.extend_from_slice(&frame(&[command::PING], 0));
    }
    c.write(&batch).await;
    for _ in 0..10 {
        let (seq, _, payload) = c.read_packet().await.unwrap();
        assert_eq!((seq, payload[0]), (1, 0x00));
    }

    // Long data then execute, in one write.
    let (id, _, _) = c.prepare("select ?, ?").await.unwrap();
    let mut batch = Vec::new();
    for chunk in [&b"hello, "[..], b"pipelined ", b"world"] {
        let mut body = vec![command::STMT_SEND_LONG_DATA];
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&1u16.to_le_bytes());
        body.extend_from_slice(chunk);
        batch.extend_from_slice(&frame(&body, 0));
    }
    // The long-data parameter is neither NULL nor present in the packet (an empty value).
    let exec = execute_payload(
        id,
        &[
            (8, true, Some(7u64.to_le_bytes().to_vec())),
            (252, false, Some(Vec::new())),
        ],
        true,
    );
    batch.extend_from_slice(&frame(&exec, 0));
    c.write(&batch).await;
    let reply = c.read_reply().await;
    let Reply::Rows { rows, .. } = &reply else {
        panic!("{reply:?}")
    };
    // Binary row: 0x00, bitmap (1 byte), u64 7, lenenc "hello, pipelined world".
    let row = &rows[0];
    assert_eq!(&row[2..10], &7u64.to_le_bytes());
    assert_eq!(&row[10..], &lenenc_string(b"hello, pipelined world")[..]);

    // Close then query, plus a prepare/execute/close/ping burst, in one write.
    let before = server.shared.open_statements.load(Ordering::SeqCst);
    let mut batch = Vec::new();
    let mut close = vec![command::STMT_CLOSE];
    close.extend_from_slice(&id.to_le_bytes());
    batch.extend_from_slice(&frame(&close, 0));
    batch.extend_from_slice(&frame(b"\x03select 1", 0));
    batch.extend_from_slice(&frame(b"\x16select 1", 0));
    batch.extend_from_slice(&frame(&[command::PING], 0));
    c.write(&batch).await;
    assert!(
        matches!(c.read_reply().await, Reply::Rows { .. }),
        "no reply to STMT_CLOSE"
    );
    let (new_id, _, _) = c.read_prepare_reply().await.unwrap();
    assert_ok(&c.read_reply().await);
    assert_eq!(server.shared.open_statements.load(Ordering::SeqCst), before);
    let mut batch = frame(&execute_payload(new_id, &[], false), 0);
    batch.extend_from_slice(&frame(&execute_payload(new_id, &[], false), 0));
    c.write(&batch).await;
    for _ in 0..2 {
        assert!(matches!(c.read_reply().await, Reply::Rows { .. }));
    }
    drop(c);
    server.finish().await;
}

#[tokio::test]
async fn sixteen_megabyte_boundaries_raw() {
    let server = TestServer::start().await;
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    // Commands whose payload is exactly 0xFFFFFF and 2 × 0xFFFFFF bytes: the client follows
    // each with an empty packet, and the reply continues the sequence after it.
    for total in [0xFF_FFFF, 2 * 0xFF_FFFF, 17_000_000] {
        let mut payload = b"\x03/*len*/".to_vec();
        payload.resize(total, b'x');
        c.command(&payload).await;
        let (seq, _, head) = c.read_packet().await.unwrap();
        let chunks = total / 0xFF_FFFF + 1;
        assert_eq!(
            seq as usize, chunks,
            "reply continues after the client's last packet"
        );
        assert_eq!(head, [1], "one column");
        c.expect_packet().await; // definition
        assert_eq!(c.expect_packet().await[0], 0xFE); // EOF
        let row = c.expect_packet().await;
        let len: usize = String::from_utf8(common::Cursor::new(&row).lenenc_bytes().to_vec())
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, total - 1, "the handler saw the whole statement");
        assert_eq!(c.expect_packet().await.len(), 5); // EOF
    }
    // A row payload of exactly 0xFFFFFF bytes: sent as a full packet plus an empty one.
    c.command(b"\x03big 16777211").await;
    c.expect_packet().await; // column count
    c.expect_packet().await; // definition
    c.expect_packet().await; // EOF
    let (first, last, row) = c.read_packet().await.unwrap();
    assert_eq!(row.len(), 0xFF_FFFF);
    assert_eq!(
        last,
        first.wrapping_add(1),
        "a full packet and an empty trailer"
    );
    let eof = c.expect_packet().await;
    assert_eq!((eof[0], eof.len()), (0xFE, 5));
    ping(&mut c).await;
    drop(c);
    server.finish().await;
}

#[tokio::test]
async fn max_allowed_packet_is_enforced_from_the_header() {
    let options = ServerOptions {
        max_allowed_packet: 1 << 20,
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(options).await;
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    // Exactly the limit is fine.
    let mut payload = b"\x03/*len*/".to_vec();
    payload.resize(1 << 20, b'x');
    c.command(&payload).await;
    assert!(matches!(c.read_reply().await, Reply::Rows { .. }));
    // A header announcing more is refused from the header: the body is read and thrown away
    // (never buffered), then ERR 1153 follows with the sequence id after the packet's.
    c.write(&[0x01, 0x00, 0x10, 0x00]).await;
    c.write(&vec![b'x'; 0x10_0001]).await;
    let (seq, _, err) = c.read_packet().await.unwrap();
    assert_eq!(seq, 1);
    assert_err(&parse_err(&err), 1153, "08S01");
    assert!(c.read_to_end().await.is_empty());
    // A chain (a 16 MiB - 1 packet and the rest): the answer follows the chain's last packet,
    // which is what a client that writes the whole payload before reading expects.
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    let mut big = b"\x03select '".to_vec();
    big.resize(0xFF_FFFF + 100, b'y');
    c.write(&common::frame(&big, 0)).await;
    let (seq, _, err) = c.read_packet().await.unwrap();
    assert_eq!(seq, 2, "after packets 0 and 1");
    assert_err(&parse_err(&err), 1153, "08S01");
    assert!(c.read_to_end().await.is_empty());

    // Long data beyond the limit: reported by the next execute, and the connection goes on.
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    let (id, _, _) = c.prepare("select ?").await.unwrap();
    for _ in 0..3 {
        let mut body = vec![command::STMT_SEND_LONG_DATA];
        body.extend_from_slice(&id.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        body.resize(500_000, b'L');
        c.command(&body).await;
    }
    c.command(&execute_payload(id, &[(252, false, None)], true))
        .await;
    let reply = c.read_reply().await;
    assert!(matches!(reply, Reply::Err { code: 1105, .. }), "{reply:?}");
    ping(&mut c).await;
    drop(c);
    let results = server.finish().await;
    assert!(matches!(
        results[0],
        Err(Error::PacketTooLarge {
            size: 0x10_0001,
            limit: 0x10_0000
        })
    ));
    assert!(matches!(results[1], Err(Error::PacketTooLarge { size: 0xFF_FFFF, limit: 0x10_0000 })), "{:?}", results[1]);
}

#[tokio::test]
async fn statement_commands_and_their_errors() {
    let options = ServerOptions {
        max_prepared_statements: 3,
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(options).await;
    let mut c = RawClient::login(server.addr, RAW_CAPABILITIES | capability::DEPRECATE_EOF).await;
    let (id, _, _) = c.prepare("select ?").await.unwrap();

    // Executing before any types were bound.
    c.command(&execute_payload(id, &[(8, false, Some(vec![0; 8]))], false))
        .await;
    assert_err(&c.read_reply().await, 1210, "HY000");
    // Truncated parameter value.
    c.command(&execute_payload(id, &[(8, false, Some(vec![0; 3]))], true))
        .await;
    assert_err(&c.read_reply().await, 1835, "HY000");
    // Unknown statement ids.
    c.command(&execute_payload(999, &[], false)).await;
    assert_err(&c.read_reply().await, 1243, "HY000");
    c.command(&[command::STMT_RESET, 99, 0, 0, 0]).await;
    assert_err(&c.read_reply().await, 1243, "HY000");
    // COM_STMT_RESET on a known statement; COM_STMT_FETCH has no cursor to fetch from.
    let mut reset = vec![command::STMT_RESET];
    reset.extend_from_slice(&id.to_le_bytes());
    c.command(&reset).await;
    assert_ok(&c.read_reply().await);
    let mut fetch = vec![command::STMT_FETCH];
    fetch.extend_from_slice(&id.to_le_bytes());
    fetch.extend_from_slice(&10u32.to_le_bytes());
    c.command(&fetch).await;
    assert_err(&c.read_reply().await, 1421, "HY000");
    // Types bound once are remembered.
    c.command(&execute_payload(
        id,
        &[(3, false, Some(5i32.to_le_bytes().to_vec()))],
        true,
    ))
    .await;
    assert!(matches!(c.read_reply().await, Reply::Rows { .. }));
    c.command(&execute_payload(
        id,
        &[(3, false, Some(6i32.to_le_bytes().to_vec()))],
        false,
    ))
    .await;
    let Reply::Rows { rows, .. } = c.read_reply().await else {
        panic!()
    };
    assert_eq!(
        &rows[0][2..],
        &6i64.to_le_bytes(),
        "INT parameter echoed as BIGINT"
    );

    // The statement limit.
    c.prepare("select 1").await.unwrap();
    c.prepare("select 1").await.unwrap();
    assert_err(&c.prepare("select 1").await.unwrap_err(), 1461, "42000");
    assert_eq!(
        server.shared.open_statements.load(Ordering::SeqCst),
        3,
        "the handler was not asked"
    );
    // Prepare errors from the handler.
    let mut close = vec![command::STMT_CLOSE];
    close.extend_from_slice(&id.to_le_bytes());
    c.command(&close).await;
    assert_err(
        &c.prepare("select * from missing").await.unwrap_err(),
        1146,
        "42S02",
    );

    // Unknown and empty commands, then a non-UTF-8 statement.
    c.command(&[0x0D]).await;
    assert_err(&c.read_reply().await, 1047, "08S01");
    c.command(&[]).await;
    assert_err(&c.read_reply().await, 1047, "08S01");
    c.command(&[command::STATISTICS]).await;
    let text = String::from_utf8(c.expect_packet().await).unwrap();
    assert!(text.starts_with("Uptime: "), "{text}");
    c.command(b"\x03select _binary'\xFF\xFE\x00'").await;
    let reply = c.read_reply().await;
    assert_eq!(
        reply.text_rows()[0][0].as_deref(),
        Some(&[0xFF, 0xFE, 0x00][..])
    );
    ping(&mut c).await;

    // A command with a wrong sequence id closes the connection.
    c.send(3, &[command::PING]).await;
    assert_err(&parse_err(&c.expect_packet().await), 1156, "08S01");
    assert!(c.read_to_end().await.is_empty());
    let results = server.finish().await;
    assert!(matches!(results[0], Err(Error::Protocol(_))));
}

#[tokio::test]
async fn silent_client_hits_the_handshake_timeout() {
    let options = ServerOptions {
        handshake_timeout: Some(Duration::from_millis(200)),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(options).await;
    let mut c = RawClient::open(server.addr).await;
    assert!(c.read_to_end().await.is_empty(), "closed without a word");
    let results = server.finish().await;
    assert!(
        matches!(results[0], Err(Error::HandshakeTimeout(_))),
        "{results:?}"
    );
}
