//! Cairn's Raft glue: raft-rs driven without I/O, and the on-disk Raft log.
//!
//! Every node group of data nodes is one Raft group (the leader is the primary replica;
//! committed entries are applied to the in-memory store on every replica), and the management
//! nodes form one more. Each member of a group is a [`Replica`]: a wrapper around raft-rs's
//! `RawNode` that
//!
//! - takes inputs ([`Replica::tick`], [`Replica::step`], [`Replica::propose`],
//!   [`Replica::read_index`], [`Replica::campaign`]) and returns outputs
//!   ([`Replica::handle_ready`] → [`ReadyOutput`]: messages by destination, committed entries,
//!   read states, leadership changes, proposal outcomes);
//! - persists each Raft `Ready` through a [`wal::LogStore`] as one batch with one `fsync`
//!   (group commit), honouring raft-rs's rule that a follower's messages leave only after the
//!   write while a leader's may leave before it ([`Replica::handle_ready_with`]);
//! - hands out the entries already committed before that write ([`Replica::begin_ready`]), so
//!   an owner applies them and answers their clients while the new entries are being synced
//!   ([`Replica::finish_ready`]).
//!
//! The crate owns no sockets, threads or clocks, so daemon shells drive it over TCP and the
//! simulator drives a whole cluster in one thread. Only [`wal::FileLogStore`] touches the disk;
//! [`wal::MemLogStore`] is its in-memory twin with a model of what was synced.
//!
//! Guarantees: consensus is raft-rs's (etcd's algorithm with pre-vote and check-quorum on); with
//! syncing on (the default), an entry reported committed is in the synced log of a majority;
//! reads are linearizable (the leader checks its lease or confirms its leadership itself,
//! because raft-rs 0.7's lease option serves stale reads after a partition, see
//! [`Replica::read_index`]); recovery refuses damaged or foreign logs with a clear error and
//! cuts off only a torn tail of the last segment. Malformed input from the network or the disk
//! gets an error, not a panic. raft-rs itself still asserts on states that a correct peer and
//! a correct disk cannot produce (a well-formed message that overwrites committed entries, a
//! log store that cannot read back an entry it holds); Raft peers are authenticated cluster
//! members. RUSTSEC-2024-0437 (rust-protobuf 2 recursion) is closed by refusing protobuf
//! groups before decoding, see [`codec`].
//!
//! Where Cairn differs from NDB: NDB commits in memory on every replica and writes its redo log
//! lazily (GCP every 2 s). Cairn commits when a majority has the entry in its log and, by
//! default, fsynced; `sync = false` in [`wal::WalOptions`] plus a timer calling
//! [`Replica::flush_and_sync`] gives NDB's behaviour.
//!
//! State-machine snapshots come from the owner through the [`SnapshotSource`] hook (data nodes
//! offer their local checkpoints, fetched outside Raft). Left out for now: arbitration for
//! two-voter groups (a mgmd decision, not Raft's), witness replicas, asynchronous log writes,
//! and one shared log for several groups.

// rust-protobuf messages have hidden bookkeeping fields, so they are built by assigning
// fields of a default value, as raft-rs itself does.
#![allow(clippy::field_reassign_with_default)]

pub mod codec;
pub mod logging;
mod read;
mod replica;
pub mod wal;

pub use codec::{CodecError, decode_message, encode_message};
/// raft-rs's protobuf types (`Message`, `ConfChangeV2`, `Snapshot`, ...), re-exported so that
/// users of this crate name the same versions.
pub use raft::eraftpb;
pub use replica::{
    CommittedEntry, ConfChangeOutcome, EntryPayload, LeadershipChange, NoSnapshots, Outbox,
    ProposalId, ProposeError, ReadReady, ReadyInProgress, ReadyOutput, Replica, ReplicaConfig, ReplicaError,
    SnapshotSource, StepError,
};
