//! A minimal raw MySQL client for tests that must control the bytes on the wire: pipelining
//! several commands in one write, and sending garbage.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const COM_QUERY: u8 = 0x03;

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(payload);
    out
}

/// Reads one packet: (sequence id, payload).
pub async fn read_packet(stream: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((header[3], payload))
}

/// Connects and logs in as a user without password (root of a test cluster).
pub async fn login(port: u16, user: &str) -> std::io::Result<TcpStream> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await?;
    let (_, greeting) = tokio::time::timeout(Duration::from_secs(10), read_packet(&mut stream)).await??;
    if greeting.first() != Some(&10) {
        return Err(std::io::Error::other("not a protocol-10 greeting"));
    }
    // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | LONG_PASSWORD | TRANSACTIONS | MULTI_RESULTS
    let capabilities: u32 = (1 << 9) | (1 << 15) | (1 << 19) | 1 | (1 << 13) | (1 << 17);
    let mut response = Vec::new();
    response.extend_from_slice(&capabilities.to_le_bytes());
    response.extend_from_slice(&(16u32 << 20).to_le_bytes());
    response.push(45);
    response.extend_from_slice(&[0u8; 23]);
    response.extend_from_slice(user.as_bytes());
    response.push(0);
    response.push(0); // empty auth response
    response.extend_from_slice(b"mysql_native_password\0");
    stream.write_all(&packet(1, &response)).await?;
    let (_, ok) = read_packet(&mut stream).await?;
    if ok.first() != Some(&0) {
        return Err(std::io::Error::other(format!("login failed: {:?}", String::from_utf8_lossy(&ok))));
    }
    Ok(stream)
}

/// Writes several COM_QUERYs in one write (pipelined) and returns the first byte of each answer.
/// Every statement must answer with a single packet (OK or ERR).
pub async fn pipeline(stream: &mut TcpStream, statements: &[&str]) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for s in statements {
        let mut payload = vec![COM_QUERY];
        payload.extend_from_slice(s.as_bytes());
        bytes.extend_from_slice(&packet(0, &payload));
    }
    stream.write_all(&bytes).await?;
    let mut kinds = Vec::new();
    for _ in statements {
        let (_, answer) = read_packet(stream).await?;
        kinds.push(answer.first().copied().unwrap_or(0xfe));
    }
    Ok(kinds)
}

/// Frames `payload` as a packet with `seq` (for sending deliberately odd packets).
pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    packet(seq, payload)
}
