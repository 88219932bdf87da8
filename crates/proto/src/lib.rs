//! # cairn-proto: how Cairn nodes talk to each other
//!
//! Every connection between nodes is TCP carrying length-prefixed, checksummed frames
//! (`[u32 length][u32 crc32c][prost Frame]`, see `proto/cairn.proto`). A connection starts with
//! a handshake in which the connecting node proves it knows the cluster secret
//! (HMAC-SHA256 over a fresh nonce, its node id and role) and both sides check they speak the
//! same protocol version. After that, frames carry Raft messages between replicas, registration,
//! heartbeats and catalog pushes between nodes and the management node, and reads and writes
//! from SQL nodes to data nodes.
//!
//! Guarantees:
//! - A bad frame (checksum, encoding) is dropped with a logged reason; the stream goes on. A
//!   length beyond the limit closes the connection (the stream can no longer be trusted).
//!   Nothing a peer sends can make this crate panic.
//! - Frames queued for one connection are coalesced into one write while the previous write is
//!   in flight.
//!
//! Typed Cairn payloads (reads, writes, catalogs) travel as postcard bytes inside the prost
//! envelope: prost keeps the envelope evolvable, postcard carries cairn-common's types
//! (expression trees included) without a second schema; the handshake's protocol version
//! guarantees both ends decode them alike.
//!
//! With TLS configured (`tls`), every link runs a mutual TLS handshake with the cluster CA
//! before the secret handshake, and everything after travels encrypted.

pub mod data;
pub mod frame;
pub mod handshake;
pub mod link;
pub mod recovery;
pub mod rpc;
pub mod tls;

/// The generated protocol messages.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    include!(concat!(env!("OUT_DIR"), "/cairn.rs"));
}

pub use link::{Identity, Link, Peer, accept, accept_admin, connect};
pub use tls::{LinkTls, TlsFiles, TlsSetupError, check_peer_certificate, node_certificate_name};
pub use pb::Role;
pub use rpc::{IdSpace, RpcClient, RpcError};
