//! Packet framing: a 3-byte little-endian payload length, a 1-byte sequence id, the payload.
//!
//! A payload of 0xFFFFFF bytes or more travels as a chain: packets of exactly 0xFFFFFF bytes,
//! ending with a shorter one, which is empty when the payload length is a multiple of 0xFFFFFF.
//! Sequence ids increase by one (mod 256) across the whole exchange of one command.
//!
//! Both halves are sans-IO. [`PacketReader`] owns the read buffer: the connection appends what
//! the socket gave (one read may hold several pipelined packets, or a fraction of one) and asks
//! for complete payloads, which are returned as owned vectors so that nothing borrows the
//! buffer while it is refilled. It enforces `max_allowed_packet` on the reassembled payload as
//! soon as a header announces too much, so a client can never make it buffer more than the
//! limit. [`PacketWriter`] frames payloads into an output buffer that the connection flushes
//! once per response.

/// The largest payload of one packet; a payload this long continues in the next packet.
pub(crate) const MAX_CHUNK: usize = 0xFF_FFFF;

/// A reassembled payload and the sequence ids of its first and last packets.
#[derive(Debug)]
pub(crate) struct Packet {
    pub first_seq: u8,
    pub last_seq: u8,
    pub payload: Vec<u8>,
}

/// Why the reader gave up on the stream. Either way the stream cannot be resynchronised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// The payload announced so far exceeds the limit; `seq` is the offending packet's id.
    TooLarge { size: usize, seq: u8 },
    /// A continuation packet carried the wrong sequence id.
    OutOfOrder { expected: u8, got: u8 },
}

/// Reassembles payloads from the bytes of a stream.
#[derive(Debug)]
pub(crate) struct PacketReader {
    buf: Vec<u8>,
    /// Start of the unconsumed bytes in `buf`.
    start: usize,
    max_payload: usize,
    /// The payload of a chain whose final packet has not arrived yet.
    partial: Vec<u8>,
    /// `(first_seq, last_seq)` of the packets already in `partial`, if a chain is in progress.
    chain: Option<(u8, u8)>,
    /// Set while the rest of an oversized payload is read and thrown away.
    discard: Option<Discard>,
}

/// Where the reader stands in an oversized payload it is skipping ([`PacketReader::discard_oversized`]).
#[derive(Debug, Clone, Copy)]
struct Discard {
    /// Payload bytes of the current packet still to skip.
    remaining: usize,
    /// The sequence id of the current packet.
    seq: u8,
    /// The current packet is a full chunk, so another packet of the chain follows.
    more: bool,
    /// Bytes skipped so far, headers included.
    skipped: usize,
}

/// How far [`PacketReader::discard_oversized`] got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscardProgress {
    /// More bytes are needed; `skipped` bytes are behind us.
    NeedMore { skipped: usize },
    /// The whole payload is skipped; `last_seq` is its final packet's sequence id, so the
    /// answer goes out with `last_seq + 1`.
    Done { last_seq: u8 },
}

/// Keep at most this much idle read-buffer capacity per connection after a large packet.
const IDLE_CAPACITY: usize = 64 * 1024;
/// Read at least this much at a time.
const MIN_READ: usize = 16 * 1024;
/// Read this much at a time while skipping an oversized payload.
const DISCARD_READ: usize = 64 * 1024;

impl PacketReader {
    pub fn new(max_payload: usize) -> Self {
        PacketReader {
            buf: Vec::new(),
            start: 0,
            max_payload,
            partial: Vec::new(),
            chain: None,
            discard: None,
        }
    }

    /// Changes the payload limit (the connection phase has a smaller one than commands).
    pub fn set_max_payload(&mut self, max_payload: usize) {
        self.max_payload = max_payload;
    }

    /// The buffer to read more bytes into, with room reserved for what the current packet still
    /// needs (bounded by the payload limit, which headers are checked against first).
    pub fn read_buffer(&mut self) -> &mut Vec<u8> {
        self.compact();
        if self.discard.is_some() {
            // Skipped bytes are dropped as soon as they arrive: read in modest pieces.
            self.buf.reserve(DISCARD_READ);
            return &mut self.buf;
        }
        let buffered = self.buf.len() - self.start;
        let wanted = match self.header() {
            Some((len, _)) => (4 + len).saturating_sub(buffered).max(MIN_READ),
            None => MIN_READ,
        };
        self.buf.reserve(wanted);
        &mut self.buf
    }

    /// True when no bytes of an unfinished packet are buffered: an end of stream here is a
    /// clean disconnect.
    pub fn is_at_boundary(&self) -> bool {
        self.start == self.buf.len() && self.chain.is_none()
    }

    /// True when at least one whole packet is already buffered, so the connection will have
    /// more work without waiting for the socket.
    pub fn has_complete_packet(&self) -> bool {
        match self.header() {
            Some((len, _)) => self.buf.len() - self.start >= 4 + len,
            None => false,
        }
    }

    fn header(&self) -> Option<(usize, u8)> {
        let h = self.buf.get(self.start..self.start + 4)?;
        Some((
            usize::from(h[0]) | usize::from(h[1]) << 8 | usize::from(h[2]) << 16,
            h[3],
        ))
    }

    /// The next complete payload, `Ok(None)` if more bytes are needed.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, FrameError> {
        loop {
            let Some((len, seq)) = self.header() else {
                return Ok(None);
            };
            if let Some((_, last)) = self.chain {
                let expected = last.wrapping_add(1);
                if seq != expected {
                    return Err(FrameError::OutOfOrder { expected, got: seq });
                }
            }
            let size = self.partial.len() + len;
            if size > self.max_payload {
                return Err(FrameError::TooLarge { size, seq });
            }
            if self.buf.len() - self.start < 4 + len {
                return Ok(None);
            }
            let body = &self.buf[self.start + 4..self.start + 4 + len];
            self.start += 4 + len;
            let first_seq = self.chain.map_or(seq, |(first, _)| first);
            if len == MAX_CHUNK {
                self.partial.extend_from_slice(body);
                self.chain = Some((first_seq, seq));
                continue;
            }
            let payload = if self.chain.is_some() {
                self.partial.extend_from_slice(body);
                std::mem::take(&mut self.partial)
            } else {
                body.to_vec()
            };
            self.chain = None;
            return Ok(Some(Packet {
                first_seq,
                last_seq: seq,
                payload,
            }));
        }
    }

    /// Skips the rest of the payload that [`PacketReader::next_packet`] refused as too large,
    /// without keeping any of it: the packet whose header it stopped at, and the rest of its
    /// chain (each packet of 0xFFFFFF bytes is followed by another, with the next sequence id).
    /// Call it again after each read until it says `Done`. The answer to the client must carry
    /// the sequence id after the chain's last packet, which is what a client that wrote the
    /// whole payload before reading expects. A sequence id out of order is an error.
    pub fn discard_oversized(&mut self) -> Result<DiscardProgress, FrameError> {
        let mut state = match self.discard {
            Some(state) => state,
            None => {
                // What was reassembled of the chain so far goes too.
                self.partial = Vec::new();
                self.chain = None;
                let Some((len, seq)) = self.header() else {
                    return Ok(DiscardProgress::NeedMore { skipped: 0 });
                };
                self.start += 4;
                Discard { remaining: len, seq, more: len == MAX_CHUNK, skipped: 4 }
            }
        };
        let result = loop {
            let take = state.remaining.min(self.buf.len() - self.start);
            self.start += take;
            state.remaining -= take;
            state.skipped += take;
            if state.remaining > 0 {
                break Ok(DiscardProgress::NeedMore { skipped: state.skipped });
            }
            if !state.more {
                break Ok(DiscardProgress::Done { last_seq: state.seq });
            }
            let Some((len, seq)) = self.header() else {
                break Ok(DiscardProgress::NeedMore { skipped: state.skipped });
            };
            let expected = state.seq.wrapping_add(1);
            if seq != expected {
                break Err(FrameError::OutOfOrder { expected, got: seq });
            }
            self.start += 4;
            state = Discard { remaining: len, seq, more: len == MAX_CHUNK, skipped: state.skipped + 4 };
        };
        self.discard = match result {
            Ok(DiscardProgress::NeedMore { .. }) => Some(state),
            _ => None,
        };
        self.compact();
        result
    }

    /// Takes the bytes read from the socket but not yet consumed as packets. Used when the
    /// connection switches to TLS after an SSLRequest: a client may send its TLS ClientHello
    /// right behind the SSLRequest, and those bytes belong to the TLS layer, not to us.
    pub fn take_unconsumed(&mut self) -> Vec<u8> {
        let rest = self.buf.split_off(self.start);
        self.buf.clear();
        self.start = 0;
        rest
    }

    /// Drops consumed bytes so the buffer does not grow without bound, and gives back memory
    /// after an unusually large packet.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if self.buf.capacity() > IDLE_CAPACITY && self.chain.is_none() {
                self.buf = Vec::new();
            }
        } else if self.start > 0 && (self.start >= self.buf.len() / 2 || self.start > IDLE_CAPACITY)
        {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.chain.is_none() && self.partial.capacity() > IDLE_CAPACITY {
            self.partial = Vec::new();
        }
    }
}

/// Frames payloads into an output buffer.
#[derive(Debug, Default)]
pub(crate) struct PacketWriter {
    buf: Vec<u8>,
    seq: u8,
}

/// Where a packet started, so that a packet that could not be completed can be taken back.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    start: usize,
    seq: u8,
}

impl PacketWriter {
    /// Sets the sequence id of the next packet.
    pub fn set_seq(&mut self, seq: u8) {
        self.seq = seq;
    }

    /// The sequence id the next packet will carry.
    pub fn seq(&self) -> u8 {
        self.seq
    }

    /// Starts a packet; the payload is appended to the returned buffer, then [`Self::finish`].
    pub fn begin(&mut self) -> Mark {
        let mark = Mark {
            start: self.buf.len(),
            seq: self.seq,
        };
        self.buf.extend_from_slice(&[0; 4]);
        mark
    }

    /// The buffer the current payload is appended to.
    pub fn payload(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Frames the payload appended since `mark`, splitting it into a chain if needed.
    pub fn finish(&mut self, mark: Mark) {
        let len = self.buf.len() - mark.start - 4;
        if len < MAX_CHUNK {
            self.buf[mark.start..mark.start + 4].copy_from_slice(&header(len, self.seq));
            self.seq = self.seq.wrapping_add(1);
            return;
        }
        // Rare: a payload of 16 MiB or more. Move it out and write it back in chunks.
        let payload = self.buf.split_off(mark.start + 4);
        self.buf.truncate(mark.start);
        let mut offset = 0;
        loop {
            let n = (payload.len() - offset).min(MAX_CHUNK);
            self.buf.extend_from_slice(&header(n, self.seq));
            self.buf.extend_from_slice(&payload[offset..offset + n]);
            self.seq = self.seq.wrapping_add(1);
            offset += n;
            // A chunk of exactly MAX_CHUNK bytes says "more follows", so a payload that ends
            // on a chunk boundary needs an empty packet to end it.
            if n < MAX_CHUNK {
                break;
            }
        }
    }

    /// Takes back an unfinished packet.
    pub fn abort(&mut self, mark: Mark) {
        self.buf.truncate(mark.start);
        self.seq = mark.seq;
    }

    /// Writes a whole packet.
    pub fn write_packet(&mut self, payload: &[u8]) {
        let mark = self.begin();
        self.buf.extend_from_slice(payload);
        self.finish(mark);
    }

    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The framed bytes waiting to be sent.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Forgets the framed bytes once they are sent, returning memory after a large response.
    pub fn clear(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > 4 * IDLE_CAPACITY {
            self.buf = Vec::new();
        }
    }
}

fn header(len: usize, seq: u8) -> [u8; 4] {
    let len = len as u32;
    [len as u8, (len >> 8) as u8, (len >> 16) as u8, seq]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8], seq: u8) -> (Vec<u8>, u8) {
        let mut writer = PacketWriter::default();
        writer.set_seq(seq);
        writer.write_packet(payload);
        (writer.bytes().to_vec(), writer.seq())
    }

    fn read_all(bytes: &[u8], max: usize, step: usize) -> Result<Vec<Packet>, FrameError> {
        let mut reader = PacketReader::new(max);
        let mut out = Vec::new();
        for chunk in bytes.chunks(step.max(1)) {
            reader.read_buffer().extend_from_slice(chunk);
            while let Some(p) = reader.next_packet()? {
                out.push(p);
            }
        }
        assert!(reader.is_at_boundary());
        Ok(out)
    }

    /// Feeds `bytes` in `step`-sized reads; returns the discard outcome and the largest buffer
    /// capacity seen while skipping.
    fn discard_all(reader: &mut PacketReader, bytes: &[u8], step: usize) -> (Result<DiscardProgress, FrameError>, usize) {
        let mut largest = 0;
        let mut refused = false;
        let mut last = Ok(DiscardProgress::NeedMore { skipped: 0 });
        for chunk in bytes.chunks(step) {
            reader.read_buffer().extend_from_slice(chunk);
            largest = largest.max(reader.buf.capacity() + reader.partial.capacity());
            if !refused {
                match reader.next_packet() {
                    Err(FrameError::TooLarge { .. }) => refused = true,
                    Ok(None) => continue,
                    other => panic!("expected the payload to be refused, got {other:?}"),
                }
            }
            last = reader.discard_oversized();
            if !matches!(last, Ok(DiscardProgress::NeedMore { .. })) {
                break;
            }
        }
        (last, largest)
    }

    #[test]
    fn an_oversized_chain_is_skipped_without_buffering_and_the_next_packet_survives() {
        let payload = vec![7u8; 2 * MAX_CHUNK + 10];
        let (mut bytes, next) = frame(&payload, 0);
        assert_eq!(next, 3);
        let (ping, _) = frame(b"\x0e", 0);
        bytes.extend_from_slice(&ping);
        let mut reader = PacketReader::new(1 << 20);
        let (outcome, largest) = discard_all(&mut reader, &bytes, 300_000);
        assert_eq!(outcome, Ok(DiscardProgress::Done { last_seq: 2 }));
        assert!(largest < 2 << 20, "the reader held {largest} bytes while skipping");
        // What follows the skipped payload is still framed correctly.
        let tail = &bytes[bytes.len() - ping.len()..];
        let consumed_tail = reader.buf.len() - reader.start;
        reader.read_buffer().extend_from_slice(&tail[consumed_tail.min(tail.len())..]);
        let packet = reader.next_packet().unwrap().expect("the packet after the skipped one");
        assert_eq!(packet.payload, b"\x0e");

        // A single oversized packet (no chain) and a chain refused mid-way, in tiny reads.
        for (payload_len, max) in [(5000, 1024), (MAX_CHUNK + 1, MAX_CHUNK)] {
            let (bytes, next) = frame(&vec![1u8; payload_len], 5);
            let mut reader = PacketReader::new(max);
            let (outcome, _) = discard_all(&mut reader, &bytes, 777);
            assert_eq!(outcome, Ok(DiscardProgress::Done { last_seq: next.wrapping_sub(1) }));
        }
    }

    #[test]
    fn a_skipped_chain_with_a_wrong_sequence_id_is_an_error() {
        let (mut bytes, _) = frame(&vec![0u8; MAX_CHUNK + 3], 0);
        // The second packet's header: 4 bytes after the first packet.
        bytes[4 + MAX_CHUNK + 3] = 9;
        let mut reader = PacketReader::new(1 << 20);
        let (outcome, _) = discard_all(&mut reader, &bytes, 1 << 20);
        assert_eq!(outcome, Err(FrameError::OutOfOrder { expected: 1, got: 9 }));
    }

    #[test]
    fn small_packet_has_one_header() {
        let (bytes, next) = frame(b"\x03select 1", 0);
        assert_eq!(&bytes[..4], &[9, 0, 0, 0]);
        assert_eq!(next, 1);
        let packets = read_all(&bytes, 1 << 20, 3).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].payload, b"\x03select 1");
    }

    #[test]
    fn empty_payload_is_one_empty_packet() {
        let (bytes, next) = frame(b"", 7);
        assert_eq!(bytes, [0, 0, 0, 7]);
        assert_eq!(next, 8);
    }

    #[test]
    fn payload_of_exactly_max_chunk_gets_an_empty_trailer() {
        let payload = vec![0x5A; MAX_CHUNK];
        let (bytes, next) = frame(&payload, 1);
        assert_eq!(bytes.len(), 4 + MAX_CHUNK + 4);
        assert_eq!(&bytes[..4], &[0xFF, 0xFF, 0xFF, 1]);
        assert_eq!(&bytes[4 + MAX_CHUNK..], &[0, 0, 0, 2]);
        assert_eq!(next, 3);
        let packets = read_all(&bytes, 32 << 20, 1 << 20).unwrap();
        assert_eq!(packets.len(), 1);
        assert_eq!(packets[0].payload.len(), MAX_CHUNK);
        assert_eq!((packets[0].first_seq, packets[0].last_seq), (1, 2));
    }

    #[test]
    fn payload_over_max_chunk_splits_and_reassembles() {
        let payload: Vec<u8> = (0..MAX_CHUNK * 2 + 10).map(|i| i as u8).collect();
        let (bytes, next) = frame(&payload, 255);
        assert_eq!(bytes.len(), payload.len() + 3 * 4);
        assert_eq!(bytes[3], 255);
        assert_eq!(bytes[4 + MAX_CHUNK + 3], 0, "sequence ids wrap");
        assert_eq!(next, 2);
        let packets = read_all(&bytes, 64 << 20, 777_777).unwrap();
        assert_eq!(packets.len(), 1);
        assert!(packets[0].payload == payload);
    }

    #[test]
    fn pipelined_packets_in_one_read_come_out_in_order() {
        let mut bytes = Vec::new();
        for i in 0..10u8 {
            bytes.extend_from_slice(&frame(&[0x0e, i], 0).0);
        }
        let mut reader = PacketReader::new(1024);
        reader.read_buffer().extend_from_slice(&bytes);
        for i in 0..10u8 {
            assert!(reader.has_complete_packet());
            let p = reader.next_packet().unwrap().unwrap();
            assert_eq!(p.payload, [0x0e, i]);
        }
        assert!(!reader.has_complete_packet());
        assert!(reader.next_packet().unwrap().is_none());
        assert!(reader.is_at_boundary());
    }

    #[test]
    fn byte_by_byte_delivery_works() {
        let mut bytes = frame(b"abc", 0).0;
        bytes.extend_from_slice(&frame(b"", 0).0);
        let packets = read_all(&bytes, 1024, 1).unwrap();
        assert_eq!(packets.len(), 2);
        assert_eq!(packets[1].payload, b"");
    }

    #[test]
    fn oversized_packet_is_refused_from_its_header() {
        let mut reader = PacketReader::new(100);
        // Only the header of a 101-byte packet: refused before any body arrives.
        reader.read_buffer().extend_from_slice(&[101, 0, 0, 0]);
        assert_eq!(
            reader.next_packet().unwrap_err(),
            FrameError::TooLarge { size: 101, seq: 0 }
        );
        let mut reader = PacketReader::new(100);
        reader.read_buffer().extend_from_slice(&[100, 0, 0, 0]);
        assert!(reader.next_packet().unwrap().is_none());
    }

    #[test]
    fn oversized_chain_is_refused_at_the_first_chunk_past_the_limit() {
        let mut reader = PacketReader::new(MAX_CHUNK + 10);
        let mut bytes = header(MAX_CHUNK, 0).to_vec();
        bytes.resize(4 + MAX_CHUNK, 1);
        bytes.extend_from_slice(&header(11, 1));
        reader.read_buffer().extend_from_slice(&bytes);
        assert_eq!(
            reader.next_packet().unwrap_err(),
            FrameError::TooLarge {
                size: MAX_CHUNK + 11,
                seq: 1
            }
        );
    }

    #[test]
    fn chain_with_wrong_sequence_is_refused() {
        let mut bytes = header(MAX_CHUNK, 0).to_vec();
        bytes.resize(4 + MAX_CHUNK, 1);
        bytes.extend_from_slice(&header(0, 5));
        let mut reader = PacketReader::new(64 << 20);
        reader.read_buffer().extend_from_slice(&bytes);
        assert_eq!(
            reader.next_packet().unwrap_err(),
            FrameError::OutOfOrder {
                expected: 1,
                got: 5
            }
        );
    }

    #[test]
    fn aborted_packet_leaves_no_trace() {
        let mut writer = PacketWriter::default();
        writer.set_seq(3);
        writer.write_packet(b"one");
        let mark = writer.begin();
        writer.payload().extend_from_slice(b"half-written");
        writer.abort(mark);
        assert_eq!(writer.seq(), 4);
        writer.write_packet(b"two");
        let packets = read_all(writer.bytes(), 1024, 5).unwrap();
        assert_eq!(
            packets
                .iter()
                .map(|p| p.payload.clone())
                .collect::<Vec<_>>(),
            [b"one", b"two"]
        );
        assert_eq!(packets[1].first_seq, 4);
    }
}
