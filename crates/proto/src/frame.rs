//! Framing: `[u32 length][u32 crc32c][payload]`, both big-endian, payload a prost [`Frame`].
//!
//! The decoder is sans-IO: feed it bytes, take frames out. A frame whose checksum or encoding
//! is bad is dropped and reported (the length prefix kept the stream in step, so reading goes
//! on); a length beyond the limit means the stream cannot be trusted and ends the connection.

use bytes::{Buf, BytesMut};
use prost::Message;

use crate::pb::Frame;

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;
/// Default bound on one frame's payload.
pub const DEFAULT_MAX_FRAME: usize = 64 << 20;

/// Appends the framed encoding of `frame` to `out`.
pub fn encode_frame(frame: &Frame, out: &mut Vec<u8>) {
    let len = frame.encoded_len();
    out.reserve(HEADER_LEN + len);
    let header_at = out.len();
    out.extend_from_slice(&[0u8; HEADER_LEN]);
    frame.encode(out).expect("a Vec grows as needed");
    let crc = crc32c::crc32c(&out[header_at + HEADER_LEN..]);
    out[header_at..header_at + 4].copy_from_slice(&(len as u32).to_be_bytes());
    out[header_at + 4..header_at + 8].copy_from_slice(&crc.to_be_bytes());
}

/// What the decoder found.
#[derive(Debug)]
pub enum Decoded {
    Frame(Frame),
    /// A frame that arrived whole but was bad; the reason is for the log.
    Dropped(String),
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes; the stream is not trusted any more")]
    TooLarge { len: usize, max: usize },
}

#[derive(Debug)]
pub struct FrameDecoder {
    max_frame: usize,
}

impl Default for FrameDecoder {
    fn default() -> FrameDecoder {
        FrameDecoder { max_frame: DEFAULT_MAX_FRAME }
    }
}

impl FrameDecoder {
    pub fn new(max_frame: usize) -> FrameDecoder {
        FrameDecoder { max_frame }
    }

    /// Takes one frame out of `buf` if a whole one is there.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<Decoded>, FrameError> {
        if buf.len() < HEADER_LEN {
            return Ok(None);
        }
        let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len > self.max_frame {
            return Err(FrameError::TooLarge { len, max: self.max_frame });
        }
        if buf.len() < HEADER_LEN + len {
            buf.reserve(HEADER_LEN + len - buf.len());
            return Ok(None);
        }
        let crc = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(len).freeze();
        if crc32c::crc32c(&payload) != crc {
            return Ok(Some(Decoded::Dropped(format!("checksum mismatch on a {len}-byte frame"))));
        }
        match Frame::decode(payload) {
            Ok(frame) if frame.body.is_some() => Ok(Some(Decoded::Frame(frame))),
            Ok(_) => Ok(Some(Decoded::Dropped("frame without a body (unknown message type?)".into()))),
            Err(e) => Ok(Some(Decoded::Dropped(format!("undecodable frame: {e}")))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::{frame::Body, AdminCommand};

    fn sample(id: u64) -> Frame {
        Frame { request_id: id, body: Some(Body::AdminCommand(AdminCommand { command: "SHOW".into() })) }
    }

    #[test]
    fn round_trip_split_anywhere() {
        let mut wire = Vec::new();
        for id in 1..=3 {
            encode_frame(&sample(id), &mut wire);
        }
        for cut in 0..wire.len() {
            let decoder = FrameDecoder::default();
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for chunk in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(chunk);
                while let Some(Decoded::Frame(f)) = decoder.decode(&mut buf).unwrap() {
                    got.push(f.request_id);
                }
            }
            assert_eq!(got, vec![1, 2, 3], "cut at {cut}");
        }
    }

    #[test]
    fn bad_checksum_is_dropped_and_stream_continues() {
        let mut wire = Vec::new();
        encode_frame(&sample(1), &mut wire);
        let first_len = wire.len();
        encode_frame(&sample(2), &mut wire);
        wire[first_len - 1] ^= 0x55; // corrupt the first payload
        let decoder = FrameDecoder::default();
        let mut buf = BytesMut::from(&wire[..]);
        assert!(matches!(decoder.decode(&mut buf).unwrap(), Some(Decoded::Dropped(_))));
        assert!(matches!(decoder.decode(&mut buf).unwrap(), Some(Decoded::Frame(f)) if f.request_id == 2));
    }

    #[test]
    fn oversized_length_is_fatal() {
        let decoder = FrameDecoder::new(1024);
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0][..]);
        assert!(decoder.decode(&mut buf).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let decoder = FrameDecoder::default();
        let mut state = 7u64;
        for _ in 0..5000 {
            let len = (state % 64) as usize;
            let mut bytes = Vec::with_capacity(len + 8);
            let payload_len = (state >> 8) % 40;
            bytes.extend_from_slice(&(payload_len as u32).to_be_bytes());
            for _ in 0..len + 4 {
                state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                bytes.push((state >> 33) as u8);
            }
            // Make the checksum right half the time so prost's decoder sees garbage too.
            if state % 2 == 0 && bytes.len() >= 8 + payload_len as usize {
                let crc = crc32c::crc32c(&bytes[8..8 + payload_len as usize]);
                bytes[4..8].copy_from_slice(&crc.to_be_bytes());
            }
            let mut buf = BytesMut::from(&bytes[..]);
            while let Ok(Some(_)) = decoder.decode(&mut buf) {}
        }
    }
}
