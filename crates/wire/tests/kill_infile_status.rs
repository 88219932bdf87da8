//! KILL QUERY / KILL CONNECTION through a connection's kill handle, LOAD DATA LOCAL INFILE's
//! exchange (request, file packets, empty packet, outcome), and the status flags of each result
//! of a multi-statement, checked with a raw client.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use cairn_wire::{capability, status};
use common::{RAW_CAPABILITIES, RawClient, Reply, TestServer};

fn kill_handle(server: &TestServer, id: u32) -> cairn_wire::KillHandle {
    server.shared.kills.lock().unwrap().get(&id).cloned().expect("a kill handle per connection")
}

#[tokio::test]
async fn kill_query_interrupts_the_command_and_the_connection_goes_on() {
    let server = TestServer::start().await;
    let mut client = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    let id = client.greeting.connection_id;
    let killer = kill_handle(&server, id);
    // A KILL QUERY while nothing runs is forgotten when the next command starts.
    killer.kill_query();
    assert!(matches!(client.query("select 1").await, Reply::Rows { .. }));

    client.command(b"\x03sleep").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    killer.kill_query();
    match tokio::time::timeout(Duration::from_secs(10), client.read_reply()).await.expect("an answer soon after KILL") {
        Reply::Err { code, sqlstate, .. } => assert_eq!((code, sqlstate.as_str()), (1317, "70100")),
        other => panic!("expected ERR 1317, got {other:?}"),
    }
    assert_eq!(server.shared.interrupted.load(Ordering::Relaxed), 1, "the handler was told");
    assert!(matches!(client.query("select 1").await, Reply::Rows { .. }), "the connection stays usable");
    drop(client);
    server.finish().await;
}

#[tokio::test]
async fn kill_connection_closes_an_idle_or_busy_connection() {
    let server = TestServer::start().await;
    let mut idle = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    kill_handle(&server, idle.greeting.connection_id).kill_connection();
    assert!(idle.read_packet().await.is_none(), "an idle connection is closed");

    let mut busy = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    busy.command(b"\x03sleep").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    kill_handle(&server, busy.greeting.connection_id).kill_connection();
    match busy.read_reply().await {
        Reply::Err { code, .. } => assert_eq!(code, 1317),
        other => panic!("expected ERR 1317, got {other:?}"),
    }
    assert!(busy.read_packet().await.is_none(), "then the connection is closed");
    server.finish().await;
}

/// Sends a file in `packet_size` pieces after a LOCAL INFILE request and returns the replies.
async fn load(client: &mut RawClient, query: &str, file: &[u8], packet_size: usize) -> Vec<Reply> {
    let mut payload = vec![cairn_wire::command::QUERY];
    payload.extend_from_slice(query.as_bytes());
    client.command(&payload).await;
    let mut replies = Vec::new();
    let (seq, request) = loop {
        let (first, _, packet) = client.read_packet().await.expect("a reply");
        if packet[0] == 0xFB {
            break (first, packet);
        }
        // A result before the LOAD DATA: read the rest of it.
        assert_eq!(packet[0], 0x01, "a one-column result set, got {packet:?}");
        for _ in 0..2 {
            client.expect_packet().await; // column definition, EOF
        }
        let row = client.expect_packet().await;
        let end = client.expect_packet().await;
        assert_eq!(end[0], 0xFE);
        let status = u16::from_le_bytes([end[3], end[4]]);
        assert_ne!(status & status::MORE_RESULTS_EXISTS, 0, "the request follows");
        replies.push(Reply::Rows { columns: Vec::new(), rows: vec![row], status, warnings: 0, error: None });
    };
    assert_eq!(&request[1..], b"accounts.tsv", "the request names the file");
    let mut next = seq.wrapping_add(1);
    for piece in file.chunks(packet_size) {
        client.send(next, piece).await;
        next = next.wrapping_add(1);
    }
    client.send(next, &[]).await;
    replies.extend(client.read_replies().await);
    replies
}

#[tokio::test]
async fn load_data_local_infile_streams_the_file_to_the_handler() {
    let server = TestServer::start().await;
    let mut client = RawClient::login(server.addr, RAW_CAPABILITIES | capability::LOCAL_FILES).await;
    assert_ne!(client.greeting.capabilities & capability::LOCAL_FILES, 0, "the server offers local files");
    let file = b"1\talice\n2\tbob\n3\tcarol\n";
    let replies = load(&mut client, "load accounts.tsv", file, 5).await;
    match &replies[..] {
        [Reply::Ok { info, status, .. }, Reply::Rows { .. }] => {
            assert_eq!(info, "bytes=22 packets=5 lines=3");
            assert_ne!(status & status::MORE_RESULTS_EXISTS, 0, "the statement after the load follows");
        }
        other => panic!("expected the load's OK and a result set, got {other:?}"),
    }
    // A client that cannot read its file sends the empty packet at once.
    let replies = load(&mut client, "load accounts.tsv", b"", 1).await;
    assert!(matches!(&replies[0], Reply::Ok { info, .. } if info == "bytes=0 packets=0 lines=0"), "{replies:?}");
    // A result before the LOAD DATA in the same text.
    let replies = load(&mut client, "load after-select accounts.tsv", b"x\n", 64).await;
    assert_eq!(replies.len(), 3, "{replies:?}");
    assert!(matches!(client.query("select 1").await, Reply::Rows { .. }), "the connection goes on");
    drop(client);
    server.finish().await;
}

#[tokio::test]
async fn each_result_of_a_multi_statement_carries_its_own_status() {
    let server = TestServer::start().await;
    let mut client = RawClient::login(server.addr, RAW_CAPABILITIES).await;
    client.command(b"\x03begin; insert; commit").await;
    let replies = client.read_replies().await;
    let statuses: Vec<u16> = replies.iter().map(Reply::status).collect();
    assert_eq!(
        statuses,
        vec![
            status::IN_TRANS | status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS,
            status::IN_TRANS | status::AUTOCOMMIT | status::MORE_RESULTS_EXISTS,
            status::AUTOCOMMIT,
        ]
    );
    drop(client);
    server.finish().await;
}

#[tokio::test]
async fn several_results_need_multi_results() {
    let server = TestServer::start().await;
    // Neither MULTI_STATEMENTS nor MULTI_RESULTS: a handler's several results cannot be sent.
    let caps = RAW_CAPABILITIES & !(capability::MULTI_RESULTS | capability::MULTI_STATEMENTS);
    let mut client = RawClient::login(server.addr, caps).await;
    client.command(b"\x03begin; insert; commit").await;
    match client.read_reply().await {
        Reply::Err { code, .. } => assert_eq!(code, 1312),
        other => panic!("expected ERR 1312, got {other:?}"),
    }
    assert!(matches!(client.query("select 1").await, Reply::Rows { .. }));
    drop(client);
    server.finish().await;
}
