//! `caching_sha2_password`'s full authentication on a plain connection, with the RSA key
//! exchange: byte by byte (the key request, the key, the encrypted password, sequence ids, and
//! malformed answers refused with 1045), then with mysql_async, an independent client
//! implementation (its own RSA-OAEP code from mysql_common). The handler keeps MySQL's
//! fast-authentication cache (`common::caching_sha2`), so a first login must take the full path
//! and a broken exchange cannot hide behind a successful fast path.

mod common;

use cairn_wire::{caching_sha2_response, capability, rsa_encrypted_password};
use common::caching_sha2::{Attempt, PASSWORD, USER, key_pair, key_source, start};
use common::{RawClient, parse_err};
use mysql_async::prelude::*;

const CAPABILITIES: u32 = capability::PROTOCOL_41 | capability::SECURE_CONNECTION | capability::PLUGIN_AUTH | capability::LONG_PASSWORD;

/// Sends a handshake response answering the scramble for `password` with caching_sha2_password;
/// returns the client with the server's first reply read.
async fn begin(addr: std::net::SocketAddr, password: &str) -> (RawClient, u8, Vec<u8>) {
    let mut client = RawClient::open(addr).await;
    let answer = caching_sha2_response(&client.greeting.scramble, password.as_bytes());
    let response = client.handshake_response(CAPABILITIES, USER, &answer, None, Some("caching_sha2_password"));
    client.send(1, &response).await;
    let (seq, _, reply) = client.read_packet().await.expect("a reply to the handshake response");
    (client, seq, reply)
}

fn assert_access_denied(reply: &[u8]) {
    match parse_err(reply) {
        common::Reply::Err { code, sqlstate, .. } => assert_eq!((code, sqlstate.as_str()), (1045, "28000")),
        other => panic!("expected 1045, got {other:?}"),
    }
}

#[tokio::test]
async fn full_authentication_without_tls_encrypts_the_password_with_the_servers_key() {
    let (addr, gate) = start(Some(key_source())).await;
    let pem = key_pair().public_key_pem();

    // The client asks for the key (0x02), gets AuthMoreData(0x01 + PEM), sends the password
    // encrypted with it, and is let in.
    let (mut client, seq, reply) = begin(addr, PASSWORD).await;
    assert_eq!((seq, reply.as_slice()), (2, &[0x01, 0x04][..]), "perform_full_authentication");
    client.send(3, &[0x02]).await;
    let (seq, _, key) = client.read_packet().await.expect("the public key");
    assert_eq!(seq, 4);
    assert_eq!(key[0], 0x01);
    assert_eq!(std::str::from_utf8(&key[1..]).unwrap(), pem);
    let scramble = client.greeting.scramble;
    let ciphertext = rsa_encrypted_password(std::str::from_utf8(&key[1..]).unwrap(), PASSWORD.as_bytes(), &scramble).unwrap();
    client.send(5, &ciphertext).await;
    let (seq, _, ok) = client.read_packet().await.expect("the login's answer");
    assert_eq!((seq, ok[0]), (6, 0x00), "{ok:?}");
    client.command(b"\x03select 1").await;
    let (_, _, ok) = client.read_packet().await.expect("the query's answer");
    assert_eq!(ok[..2], [0x00, 7]);

    // Now in the cache: the fast path succeeds, with fast_auth_success before the OK.
    let (mut client, seq, reply) = begin(addr, PASSWORD).await;
    assert_eq!((seq, reply.as_slice()), (2, &[0x01, 0x03][..]));
    assert_eq!(client.read_packet().await.expect("OK").2[0], 0x00);

    // A client that already has the key sends the ciphertext at once (a wrong fast-path answer
    // forces the full path). A wrong password is refused with 1045 after decryption.
    for (password, accepted) in [(PASSWORD, true), ("wrong", false)] {
        let (mut client, _, reply) = begin(addr, "not the password").await;
        assert_eq!(reply, [0x01, 0x04]);
        let ciphertext = rsa_encrypted_password(pem, password.as_bytes(), &client.greeting.scramble).unwrap();
        client.send(3, &ciphertext).await;
        let (seq, _, answer) = client.read_packet().await.expect("the login's answer");
        assert_eq!(seq, 4);
        if accepted { assert_eq!(answer[0], 0x00) } else { assert_access_denied(&answer) }
    }
    let attempts = gate.attempts.lock().unwrap().clone();
    let expected = [
        Attempt { cleartext: false, accepted: false },
        Attempt { cleartext: true, accepted: true },
        Attempt { cleartext: false, accepted: true },
        Attempt { cleartext: false, accepted: false },
        Attempt { cleartext: true, accepted: true },
        Attempt { cleartext: false, accepted: false },
        Attempt { cleartext: true, accepted: false },
    ];
    assert_eq!(attempts, expected);
}

#[tokio::test]
async fn malformed_or_replayed_answers_are_refused_with_1045_and_never_reach_the_handler() {
    let (addr, gate) = start(Some(key_source())).await;
    let pem = key_pair().public_key_pem();
    let n = key_pair().ciphertext_len();
    // A ciphertext made for another connection's scramble decrypts, but to the wrong password.
    let other_scramble = [7u8; 20];
    let replayed = rsa_encrypted_password(pem, PASSWORD.as_bytes(), &other_scramble).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("the password in clear", format!("{PASSWORD}\0").into_bytes()),
        ("empty", Vec::new()),
        ("one byte short", vec![0x5a; n - 1]),
        ("garbage of the right length", vec![0xa5; n]),
        ("a bit flipped", {
            let mut c = rsa_encrypted_password(pem, PASSWORD.as_bytes(), &[0; 20]).unwrap();
            c[3] ^= 1;
            c
        }),
        ("replayed from another connection", replayed),
    ];
    let mut reached_handler = 0;
    for (what, answer) in cases {
        let (mut client, _, reply) = begin(addr, "wrong").await;
        assert_eq!(reply, [0x01, 0x04], "{what}");
        client.send(3, &answer).await;
        let (seq, _, refusal) = client.read_packet().await.unwrap_or_else(|| panic!("{what}: no answer"));
        assert_eq!(seq, 4, "{what}");
        assert_access_denied(&refusal);
        assert!(client.read_packet().await.is_none(), "{what}: the connection is closed after 1045");
        if what.starts_with("replayed") {
            reached_handler += 1;
        }
    }
    // Only the replayed ciphertext decrypted (to garbage): the handler saw it as a wrong password.
    let attempts = gate.attempts.lock().unwrap().clone();
    assert_eq!(attempts.iter().filter(|a| a.cleartext).count(), reached_handler);
    assert!(attempts.iter().all(|a| !a.accepted));
}

#[tokio::test]
async fn without_a_key_a_failed_fast_path_on_a_plain_connection_is_final() {
    let (addr, gate) = start(None).await;
    let (_, seq, reply) = begin(addr, PASSWORD).await;
    assert_eq!(seq, 2);
    assert_access_denied(&reply);
    assert_eq!(*gate.attempts.lock().unwrap(), [Attempt { cleartext: false, accepted: false }]);
}

#[tokio::test]
async fn a_key_still_being_generated_is_waited_for() {
    let (addr, _gate) = start(Some(cairn_wire::RsaKeySource::generate_in_background(1024))).await;
    let (mut client, _, reply) = begin(addr, PASSWORD).await;
    assert_eq!(reply, [0x01, 0x04]);
    client.send(3, &[0x02]).await;
    let (_, _, key) = client.read_packet().await.expect("the public key, once generated");
    let ciphertext = rsa_encrypted_password(std::str::from_utf8(&key[1..]).unwrap(), PASSWORD.as_bytes(), &client.greeting.scramble).unwrap();
    client.send(5, &ciphertext).await;
    assert_eq!(client.read_packet().await.expect("OK").2[0], 0x00);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_async_logs_in_through_the_rsa_exchange() {
    let (addr, gate) = start(Some(key_source())).await;
    let opts = |password: &str| {
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(addr.port())
            .user(Some(USER))
            .pass(Some(password.to_string()))
            .prefer_socket(false)
    };
    // A wrong password goes through the whole exchange and gets 1045/28000.
    match mysql_async::Conn::new(opts("wrong")).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!((e.code, e.state.as_str()), (1045, "28000")),
        other => panic!("expected 1045, got {other:?}"),
    }
    assert!(gate.cache.lock().unwrap().is_empty());
    let mut conn = mysql_async::Conn::new(opts(PASSWORD)).await.expect("login through RSA");
    conn.query_drop("do 1").await.unwrap();
    conn.disconnect().await.unwrap();
    // The second login takes the fast path.
    let conn = mysql_async::Conn::new(opts(PASSWORD)).await.expect("login on the fast path");
    conn.disconnect().await.unwrap();
    let attempts = gate.attempts.lock().unwrap().clone();
    assert_eq!(
        attempts,
        [
            Attempt { cleartext: false, accepted: false },
            Attempt { cleartext: true, accepted: false },
            Attempt { cleartext: false, accepted: false },
            Attempt { cleartext: true, accepted: true },
            Attempt { cleartext: false, accepted: true },
        ]
    );
}
