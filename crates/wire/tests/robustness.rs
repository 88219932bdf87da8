//! Hostile input over TCP: thousands of random, malformed and truncated packets, in place of
//! the handshake and after a valid login. The server must answer or close, never panic, and
//! every connection task must end.
//!
//! The inputs come from a seeded generator; set `WIRE_FUZZ_SEED` to replay a run (the seed in
//! use is printed) and `WIRE_FUZZ_CASES` to run more cases.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use cairn_wire::{ServerOptions, capability, command};
use common::{RAW_CAPABILITIES, RawClient, TestServer, frame};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn seed() -> u64 {
    let seed = std::env::var("WIRE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00C0_FFEE);
    println!("WIRE_FUZZ_SEED={seed}");
    seed
}

fn cases(default: usize) -> usize {
    std::env::var("WIRE_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn random_bytes(rng: &mut StdRng, max_len: usize) -> Vec<u8> {
    let len = rng.random_range(0..=max_len);
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

/// Writes `bytes`, half-closes, and reads until the server closes. Connection errors (a reset
/// after the server gave up) are fine; a server that never closes is not.
async fn throw(addr: SocketAddr, read_greeting: bool, bytes: Vec<u8>) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        panic!("connect")
    };
    let mut sink = Vec::new();
    if read_greeting {
        let mut header = [0u8; 4];
        if stream.read_exact(&mut header).await.is_ok() {
            let len =
                usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
            let mut body = vec![0u8; len];
            let _ = stream.read_exact(&mut body).await;
        }
    }
    let _ = stream.write_all(&bytes).await;
    let _ = stream.shutdown().await;
    let read = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut sink)).await;
    assert!(read.is_ok(), "the server kept a hostile connection open");
}

/// A handshake response that is valid in its prefix and random after a random point.
fn mangled_handshake(rng: &mut StdRng) -> Vec<u8> {
    let mut caps: u32 = RAW_CAPABILITIES | rng.random::<u32>() & 0x0FFF_FFFF;
    if rng.random_bool(0.1) {
        caps &= !capability::PROTOCOL_41;
    }
    let mut out = caps.to_le_bytes().to_vec();
    out.extend_from_slice(&rng.random::<u32>().to_le_bytes());
    out.push(rng.random());
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(b"root\0");
    match rng.random_range(0..3) {
        0 => out.push(rng.random()),
        1 => out.extend_from_slice(&[0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]),
        _ => out.extend_from_slice(&random_bytes(rng, 40)),
    }
    out.extend_from_slice(&random_bytes(rng, 60));
    let cut = rng.random_range(0..=out.len());
    out.truncate(cut);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_place_of_the_handshake() {
    let options = ServerOptions {
        handshake_timeout: Some(Duration::from_secs(5)),
        ..ServerOptions::default()
    };
    let server = TestServer::with_options(options).await;
    let mut rng = StdRng::seed_from_u64(seed());
    let total = cases(3000);
    let mut inputs = Vec::with_capacity(total);
    for _ in 0..total {
        let bytes = match rng.random_range(0..6) {
            // Unframed noise.
            0 => random_bytes(&mut rng, 300),
            // One framed packet of noise, with the right or a random sequence id.
            1 => frame(
                &random_bytes(&mut rng, 200),
                if rng.random_bool(0.7) {
                    1
                } else {
                    rng.random()
                },
            ),
            // A plausible handshake response, mangled.
            2 | 3 => frame(&mangled_handshake(&mut rng), 1),
            // A header announcing a huge packet, then a little of it.
            4 => {
                let mut bytes = vec![0xFF, 0xFF, 0xFF, 1];
                bytes.extend_from_slice(&random_bytes(&mut rng, 50));
                bytes
            }
            // Several packets at once.
            _ => {
                let mut bytes = Vec::new();
                for seq in 1..rng.random_range(2..6u8) {
                    bytes.extend_from_slice(&frame(&random_bytes(&mut rng, 64), seq));
                }
                bytes
            }
        };
        inputs.push((rng.random_bool(0.8), bytes));
    }
    for chunk in inputs.chunks(32) {
        let mut tasks = tokio::task::JoinSet::new();
        for (read_greeting, bytes) in chunk.iter().cloned() {
            tasks.spawn(throw(server.addr, read_greeting, bytes));
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("client task");
        }
    }
    let results = server.finish().await;
    assert_eq!(results.len(), total);
    assert!(
        results.iter().any(Result::is_err),
        "garbage must be refused"
    );
}

const COMMANDS: [u8; 18] = [
    command::SLEEP,
    command::QUIT,
    command::INIT_DB,
    command::QUERY,
    command::FIELD_LIST,
    command::STATISTICS,
    command::PING,
    command::CHANGE_USER,
    command::STMT_PREPARE,
    command::STMT_EXECUTE,
    command::STMT_SEND_LONG_DATA,
    command::STMT_CLOSE,
    command::STMT_RESET,
    command::SET_OPTION,
    command::STMT_FETCH,
    command::RESET_CONNECTION,
    0x0D,
    0xFF,
];

/// Statement texts the dummy handler knows, all cheap (no large or endless results).
const SQL: [&str; 12] = [
    "select 1",
    "select * from t",
    "select 1; select * from t",
    "insert dup",
    "insert into t values (1)",
    "stream 50",
    "stream_error 5",
    "select ?, ?, ?",
    "select * from t where id = ?",
    "fail ?",
    "select bad",
    "multi",
];

const TYPES: [u8; 20] = [
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15, 16, 245, 246, 252, 253,
];

/// A value laid out as the binary protocol lays out `ty` (random contents, right shape).
fn plausible_value(rng: &mut StdRng, ty: u8) -> Vec<u8> {
    let mut fixed = |n: usize| {
        let mut bytes = vec![0u8; n];
        rng.fill_bytes(&mut bytes);
        bytes
    };
    match ty {
        1 => fixed(1),
        2 | 13 => fixed(2),
        3 | 9 | 4 => fixed(4),
        8 | 5 => fixed(8),
        6 => Vec::new(),
        7 | 10 | 12 => {
            let len = [0u8, 4, 7, 11][rng.random_range(0..4)];
            let mut bytes = vec![len];
            bytes.extend_from_slice(&random_bytes_exact(rng, usize::from(len)));
            bytes
        }
        11 => {
            let len = [0u8, 8, 12][rng.random_range(0..3)];
            let mut bytes = vec![len];
            bytes.extend_from_slice(&random_bytes_exact(rng, usize::from(len)));
            bytes
        }
        _ => {
            let len = rng.random_range(0..30u8);
            let mut bytes = vec![len];
            bytes.extend_from_slice(&random_bytes_exact(rng, usize::from(len)));
            bytes
        }
    }
}

fn random_bytes_exact(rng: &mut StdRng, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn random_command(rng: &mut StdRng) -> Vec<u8> {
    let code = if rng.random_bool(0.95) {
        COMMANDS[rng.random_range(0..COMMANDS.len())]
    } else {
        rng.random()
    };
    let mut out = vec![code];
    let statement_id: u32 = if rng.random_bool(0.8) {
        rng.random_range(1..4)
    } else {
        rng.random()
    };
    match code {
        command::QUERY | command::STMT_PREPARE => {
            if rng.random_bool(0.7) {
                out.extend_from_slice(SQL[rng.random_range(0..SQL.len())].as_bytes());
            } else {
                out.extend_from_slice(&random_bytes(rng, 80));
            }
        }
        command::STMT_EXECUTE => {
            // Mostly the three statements every fuzz connection prepares (3, 1 and 0
            // parameters) with the right parameter count, so that decoding goes deep.
            let (id, count) = match rng.random_range(0..10) {
                0..=4 => (1, 3),
                5..=7 => (2, 1),
                8 => (3, 0),
                _ => (statement_id, rng.random_range(0..5usize)),
            };
            out.extend_from_slice(&id.to_le_bytes());
            out.push(rng.random_range(0..4));
            out.extend_from_slice(&1u32.to_le_bytes());
            if count > 0 {
                let mut bitmap = vec![0u8; count.div_ceil(8)];
                if rng.random_bool(0.3) {
                    rng.fill_bytes(&mut bitmap);
                }
                out.extend_from_slice(&bitmap);
                let bound = match rng.random_range(0..20) {
                    0..=15 => 1,
                    16..=18 => 0,
                    _ => rng.random(),
                };
                out.push(bound);
                let mut types = Vec::new();
                for _ in 0..count {
                    let ty = if rng.random_bool(0.5) {
                        TYPES[rng.random_range(0..TYPES.len())]
                    } else {
                        rng.random()
                    };
                    types.push(ty);
                    if bound == 1 {
                        out.extend_from_slice(&[ty, if rng.random_bool(0.3) { 0x80 } else { 0 }]);
                    }
                }
                for ty in types {
                    if rng.random_bool(0.8) {
                        out.extend_from_slice(&plausible_value(rng, ty));
                    } else {
                        out.extend_from_slice(&random_bytes(rng, 12));
                    }
                }
            }
            if rng.random_bool(0.2) {
                let cut = rng.random_range(1..=out.len());
                out.truncate(cut);
            }
        }
        command::STMT_SEND_LONG_DATA => {
            out.extend_from_slice(&statement_id.to_le_bytes());
            out.extend_from_slice(&rng.random_range(0..5u16).to_le_bytes());
            out.extend_from_slice(&random_bytes(rng, 100));
        }
        command::STMT_CLOSE | command::STMT_RESET | command::STMT_FETCH => {
            out.extend_from_slice(&statement_id.to_le_bytes());
            out.extend_from_slice(&random_bytes(rng, 6));
        }
        command::CHANGE_USER => {
            // Mostly well-formed enough to reach authentication; often garbage.
            if rng.random_bool(0.5) {
                out.extend_from_slice(b"root\0");
                out.push(rng.random_range(0..30));
            }
            out.extend_from_slice(&random_bytes(rng, 40));
        }
        _ => out.extend_from_slice(&random_bytes(rng, 30)),
    }
    if rng.random_bool(0.05) {
        out.truncate(rng.random_range(0..=out.len()));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_commands_after_a_valid_login() {
    let server = TestServer::start().await;
    let mut rng = StdRng::seed_from_u64(seed().wrapping_add(1));
    let total = cases(1500);
    let mut scripts = Vec::with_capacity(total);
    for _ in 0..total {
        let deprecate_eof = rng.random_bool(0.5);
        let mut batch = Vec::new();
        for _ in 0..rng.random_range(1..40) {
            let payload = random_command(&mut rng);
            // Rarely a wrong sequence id or a lying length.
            let seq = if rng.random_bool(0.02) {
                rng.random()
            } else {
                0
            };
            let mut framed = frame(&payload, seq);
            if rng.random_bool(0.01) {
                framed[0] = framed[0].wrapping_add(rng.random_range(1..20));
            }
            batch.extend_from_slice(&framed);
        }
        scripts.push((deprecate_eof, batch));
    }
    for chunk in scripts.chunks(16) {
        let mut tasks = tokio::task::JoinSet::new();
        for (deprecate_eof, batch) in chunk.iter().cloned() {
            let addr = server.addr;
            tasks.spawn(async move {
                let caps = if deprecate_eof {
                    RAW_CAPABILITIES | capability::DEPRECATE_EOF
                } else {
                    RAW_CAPABILITIES
                };
                let mut client = RawClient::login(addr, caps).await;
                // Three real statements so that ids 1..=3 exist and executes reach decoding.
                for sql in ["select ?, ?, ?", "select * from t where id = ?", "select 1"] {
                    client.prepare(sql).await.expect("prepare");
                }
                client.write(&batch).await;
                let _ = client.stream.shutdown().await;
                client.read_to_end().await;
            });
        }
        while let Some(joined) = tasks.join_next().await {
            joined.expect("client task");
        }
    }
    let results = server.finish().await;
    assert_eq!(results.len(), total);
    println!(
        "{} connections: {} ended cleanly, {} with an error",
        results.len(),
        results.iter().filter(|r| r.is_ok()).count(),
        results.iter().filter(|r| r.is_err()).count()
    );
}

#[tokio::test]
async fn a_server_survives_and_serves_after_the_storm() {
    // After garbage on other connections, a well-behaved client is unaffected.
    let server = TestServer::start().await;
    let mut rng = StdRng::seed_from_u64(seed().wrapping_add(2));
    for _ in 0..50 {
        throw(server.addr, true, random_bytes(&mut rng, 100)).await;
    }
    let mut conn = server.connect().await;
    use mysql_async::prelude::*;
    assert_eq!(
        conn.query_first::<i64, _>("select 1").await.unwrap(),
        Some(1)
    );
    drop(conn);
    server.finish().await;
}
