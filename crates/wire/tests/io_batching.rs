//! How output reaches the stream: answers to pipelined commands share one write, and a large
//! result goes out in bounded pieces rather than one huge buffer. The server runs over an
//! in-memory duplex stream wrapped to record every write.

mod common;

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use cairn_wire::{ServerOptions, command, native_password_response, serve};
use common::{Dummy, RAW_CAPABILITIES, ROOT_PASSWORD, Shared, frame, parse_greeting};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

/// A stream that records the size of every successful write.
struct Recording {
    inner: DuplexStream,
    writes: Arc<Mutex<Vec<usize>>>,
}

impl AsyncRead for Recording {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Recording {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = result {
            self.writes.lock().unwrap().push(n);
        }
        result
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn read_packet(stream: &mut DuplexStream) -> Vec<u8> {
    let mut payload = Vec::new();
    loop {
        let mut header = [0u8; 4];
        stream.read_exact(&mut header).await.unwrap();
        let len =
            usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body).await.unwrap();
        payload.extend_from_slice(&body);
        if len < 0xFF_FFFF {
            return payload;
        }
    }
}

/// Starts a server on a duplex stream and logs in; returns the client end and the write log.
async fn logged_in() -> (
    DuplexStream,
    Arc<Mutex<Vec<usize>>>,
    tokio::task::JoinHandle<Result<(), cairn_wire::Error>>,
) {
    // A buffer larger than any write the server makes, so a write is never split by the pipe.
    let (client, server_end) = tokio::io::duplex(4 << 20);
    let writes = Arc::new(Mutex::new(Vec::new()));
    let stream = Recording {
        inner: server_end,
        writes: writes.clone(),
    };
    let task = tokio::spawn(serve(
        stream,
        Dummy::new(Arc::new(Shared::default())),
        ServerOptions::default(),
    ));
    let mut client = client;
    let greeting = parse_greeting(&read_packet(&mut client).await);
    let mut response = RAW_CAPABILITIES.to_le_bytes().to_vec();
    response.extend_from_slice(&(1u32 << 24).to_le_bytes());
    response.push(45);
    response.extend_from_slice(&[0; 23]);
    response.extend_from_slice(b"root\0");
    let auth = native_password_response(&greeting.scramble, ROOT_PASSWORD.as_bytes());
    response.push(auth.len() as u8);
    response.extend_from_slice(&auth);
    response.extend_from_slice(b"calmail\0mysql_native_password\0");
    client.write_all(&frame(&response, 1)).await.unwrap();
    assert_eq!(read_packet(&mut client).await[0], 0x00);
    writes.lock().unwrap().clear();
    (client, writes, task)
}

#[tokio::test]
async fn answers_to_pipelined_commands_share_one_write() {
    let (mut client, writes, task) = logged_in().await;
    let mut batch = Vec::new();
    for _ in 0..10 {
        batch.extend_from_slice(&frame(&[command::PING], 0));
    }
    batch.extend_from_slice(&frame(b"\x03select * from t", 0));
    batch.extend_from_slice(&frame(b"\x03select 1; select 1", 0));
    client.write_all(&batch).await.unwrap();
    for _ in 0..10 {
        assert_eq!(read_packet(&mut client).await[0], 0x00);
    }
    // The result set of `select * from t` (count, 9 definitions, EOF, 3 rows, EOF) and two
    // more result sets of 5 packets each.
    for _ in 0..(1 + 9 + 1 + 3 + 1) + 2 * 5 {
        read_packet(&mut client).await;
    }
    assert_eq!(
        writes.lock().unwrap().len(),
        1,
        "{:?}",
        writes.lock().unwrap()
    );
    client.write_all(&frame(&[command::QUIT], 0)).await.unwrap();
    assert!(task.await.unwrap().is_ok());
}

#[tokio::test]
async fn large_results_are_written_in_bounded_pieces() {
    let (mut client, writes, task) = logged_in().await;
    client
        .write_all(&frame(b"\x03stream 200000", 0))
        .await
        .unwrap();
    assert_eq!(read_packet(&mut client).await, [2], "two columns");
    for _ in 0..3 {
        read_packet(&mut client).await; // two definitions and an EOF
    }
    let mut rows = 0;
    while read_packet(&mut client).await.len() != 5 {
        rows += 1;
    }
    assert_eq!(rows, 200_000);
    let writes = writes.lock().unwrap().clone();
    let total: usize = writes.iter().sum();
    let largest = writes.iter().copied().max().unwrap_or(0);
    println!(
        "{total} bytes in {} writes, the largest {largest} bytes",
        writes.len()
    );
    assert!(
        largest < 256 * 1024,
        "bounded by the flush threshold plus one row"
    );
    assert!(
        writes.len() < total / (64 * 1024) + 4,
        "few, large writes: {}",
        writes.len()
    );
    client.write_all(&frame(&[command::QUIT], 0)).await.unwrap();
    assert!(task.await.unwrap().is_ok());
}
