//! The inter-node protocol: the frame decoder of `cairn-proto` (`[len][crc32c][prost Frame]`),
//! and the payloads the daemons decode out of frames (Raft messages, data requests and
//! answers, catalogs and catalog ops, recovery messages), as a hostile or broken peer would
//! send them.
//!
//! The first input byte chooses the form of the rest: a raw byte stream cut into frames by the
//! decoder (checksums almost never match by chance), or a sealed frame whose length and
//! checksum the target computes, so that the fuzzer reaches the protobuf and postcard decoders.

use bytes::BytesMut;
use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome};
use cairn_proto::data::{DataRequestBody, DataResponseBody, decode};
use cairn_proto::frame::{Decoded, FrameDecoder, HEADER_LEN, encode_frame};
use cairn_proto::pb::frame::Body;
use cairn_proto::recovery::RecoveryMessage;

/// The frame size limit of the fuzzed decoder: small, so the limit is reached by inputs of a
/// size libFuzzer makes.
const MAX_FRAME: usize = 1 << 20;
/// The Raft message size limit the target passes to the codec, as the daemons pass theirs.
const MAX_RAFT_MESSAGE: usize = 1 << 20;

pub fn frame(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut buf = BytesMut::new();
    if mode & 1 == 0 {
        buf.extend_from_slice(rest);
    } else {
        buf.extend_from_slice(&(rest.len() as u32).to_be_bytes());
        buf.extend_from_slice(&crc32c::crc32c(rest).to_be_bytes());
        buf.extend_from_slice(rest);
    }
    let decoder = FrameDecoder::new(MAX_FRAME);
    // Each decoded frame consumes at least its header, so this loop ends.
    while let Ok(Some(decoded)) = decoder.decode(&mut buf) {
        if let Decoded::Frame(frame) = decoded {
            payloads(&frame);
            round_trip(&decoder, &frame);
        }
    }
}

/// What the daemons decode out of a frame's body.
fn payloads(frame: &cairn_proto::pb::Frame) {
    match &frame.body {
        Some(Body::Raft(raft)) => {
            let _ = cairn_replication::decode_message(&raft.message, MAX_RAFT_MESSAGE);
        }
        Some(Body::DataRequest(request)) => {
            let _ = decode::<DataRequestBody>(&request.body);
        }
        Some(Body::DataResponse(response)) => {
            let _ = decode::<DataResponseBody>(&response.body);
        }
        Some(Body::CatalogUpdate(update)) => {
            let _ = decode::<Catalog>(&update.catalog);
        }
        Some(Body::DdlRequest(request)) => {
            let _ = decode::<CatalogOp>(&request.op);
        }
        Some(Body::DdlResponse(response)) => {
            let _ = decode::<Result<CatalogOutcome, cairn_common::Error>>(&response.outcome);
        }
        Some(Body::Recovery(recovery)) => {
            let _ = RecoveryMessage::decode(&recovery.body);
        }
        _ => {}
    }
}

/// A frame that decoded re-encodes to bytes that decode to the same frame.
fn round_trip(decoder: &FrameDecoder, frame: &cairn_proto::pb::Frame) {
    let mut bytes = Vec::new();
    encode_frame(frame, &mut bytes);
    if bytes.len() - HEADER_LEN > MAX_FRAME {
        return;
    }
    let mut buf = BytesMut::from(&bytes[..]);
    match decoder.decode(&mut buf) {
        Ok(Some(Decoded::Frame(again))) => assert_eq!(&again, frame, "a frame changed in a re-encode round trip"),
        other => panic!("a re-encoded frame does not decode: {other:?}"),
    }
}
