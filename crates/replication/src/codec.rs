//! Raft messages on the wire: rust-protobuf `eraftpb::Message` to bytes and back.
//!
//! Decoding never panics on bad input. Before the bytes reach rust-protobuf 2.28 they pass a
//! small structural check of the protobuf wire format (field keys, varints, lengths) that also
//! refuses group wire types anywhere in the message tree. `eraftpb` uses no groups, and nested
//! unknown groups are how RUSTSEC-2024-0437 (unbounded recursion in rust-protobuf 2.x, no fixed
//! 2.x release) overflows the stack, so refusing them closes that hole for this decoder. Raft
//! peers are authenticated cluster members in any case.

use protobuf::Message as _;
use raft::eraftpb::Message;

/// Why bytes could not be decoded into a Raft message.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The bytes are not a well-formed protobuf encoding of a Raft message.
    #[error("malformed Raft message: {0}")]
    Malformed(String),
    /// The message is larger than the caller's limit.
    #[error("Raft message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: usize,
    },
}

/// Encodes a Raft message. rust-protobuf only fails to encode messages whose required fields
/// are missing, which `eraftpb` (proto3) has none of, so failure is reported, not expected.
pub fn encode_message(message: &Message) -> Result<Vec<u8>, CodecError> {
    message
        .write_to_bytes()
        .map_err(|error| CodecError::Malformed(error.to_string()))
}

/// Decodes a Raft message from `bytes`, refusing messages over `limit` bytes.
pub fn decode_message(bytes: &[u8], limit: usize) -> Result<Message, CodecError> {
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    check_wire_format(bytes, Schema::Message, 0).map_err(CodecError::Malformed)?;
    Message::parse_from_bytes(bytes).map_err(|error| CodecError::Malformed(error.to_string()))
}

/// The `eraftpb` message types that contain other messages, and which field holds which.
#[derive(Debug, Clone, Copy)]
enum Schema {
    Message,
    Entry,
    Snapshot,
    SnapshotMetadata,
    ConfState,
}

impl Schema {
    fn child(self, field: u64) -> Option<Schema> {
        match (self, field) {
            (Schema::Message, 7) => Some(Schema::Entry),
            (Schema::Message, 9) => Some(Schema::Snapshot),
            (Schema::Snapshot, 2) => Some(Schema::SnapshotMetadata),
            (Schema::SnapshotMetadata, 1) => Some(Schema::ConfState),
            _ => None,
        }
    }
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in 0..10 {
        let byte = *bytes.get(*at).ok_or("varint runs past the end")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".to_string())
}

/// Walks the wire format of `bytes` as message type `schema`, recursing into known nested
/// messages (the depth is fixed by the schema, at most 4).
fn check_wire_format(bytes: &[u8], schema: Schema, depth: usize) -> Result<(), String> {
    if depth > 4 {
        return Err("message nested too deeply".to_string());
    }
    let mut at = 0;
    while at < bytes.len() {
        let key = read_varint(bytes, &mut at)?;
        let field = key >> 3;
        if field == 0 {
            return Err("field number 0".to_string());
        }
        match key & 7 {
            0 => {
                read_varint(bytes, &mut at)?;
            }
            1 => {
                at = at
                    .checked_add(8)
                    .filter(|end| *end <= bytes.len())
                    .ok_or("fixed64 runs past the end")?
            }
            5 => {
                at = at
                    .checked_add(4)
                    .filter(|end| *end <= bytes.len())
                    .ok_or("fixed32 runs past the end")?
            }
            2 => {
                let len = usize::try_from(read_varint(bytes, &mut at)?)
                    .map_err(|_| "length too large")?;
                let end = at
                    .checked_add(len)
                    .filter(|end| *end <= bytes.len())
                    .ok_or("length runs past the end")?;
                if let Some(child) = schema.child(field) {
                    check_wire_format(&bytes[at..end], child, depth + 1)?;
                }
                at = end;
            }
            wire_type => {
                return Err(format!(
                    "wire type {wire_type} (groups are not used by Raft messages)"
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use raft::eraftpb::{ConfState, Entry, MessageType, Snapshot};

    use super::*;

    fn sample() -> Message {
        let mut message = Message::default();
        message.set_msg_type(MessageType::MsgAppend);
        message.to = 2;
        message.from = 1;
        message.term = 3;
        message.index = 10;
        let mut entry = Entry::default();
        entry.index = 11;
        entry.term = 3;
        entry.data = b"payload".to_vec().into();
        message.mut_entries().push(entry);
        let mut snapshot = Snapshot::default();
        snapshot.mut_metadata().index = 9;
        let mut conf_state = ConfState::default();
        conf_state.voters = vec![1, 2, 3];
        snapshot.mut_metadata().set_conf_state(conf_state);
        message.set_snapshot(snapshot);
        message
    }

    #[test]
    fn round_trip() {
        let message = sample();
        let bytes = encode_message(&message).unwrap();
        assert_eq!(decode_message(&bytes, 1 << 20).unwrap(), message);
        assert!(matches!(
            decode_message(&bytes, 4),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn damaged_bytes_give_errors_not_panics() {
        let bytes = encode_message(&sample()).unwrap();
        for cut in 0..bytes.len() {
            let _ = decode_message(&bytes[..cut], 1 << 20);
        }
        for at in 0..bytes.len() {
            for bit in 0..8 {
                let mut damaged = bytes.clone();
                damaged[at] ^= 1 << bit;
                let _ = decode_message(&damaged, 1 << 20);
            }
        }
    }

    #[test]
    fn nested_groups_are_refused() {
        // Field 7 (entries) holding 100,000 nested start-group keys: the input that makes
        // rust-protobuf 2.x recurse without bound.
        let inner = vec![0x0bu8; 100_000];
        let mut bytes = vec![0x3a];
        let mut len = inner.len();
        while len >= 0x80 {
            bytes.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        bytes.push(len as u8);
        bytes.extend_from_slice(&inner);
        let error = decode_message(&bytes, 1 << 20).unwrap_err();
        assert!(error.to_string().contains("wire type 3"), "{error}");
    }
}
