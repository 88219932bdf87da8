//! The bodies of Cairn's fuzz targets: one function per input a peer or a disk can hand us.
//!
//! # Concept
//!
//! Every byte that reaches Cairn from outside passes through one of a few decoders: the MySQL
//! packet reader and command decoders (`cairn-wire`), the handshake and authentication
//! exchange, the SQL front end (pre-parser, parser, planner and executor in `cairn-sql`), the
//! inter-node frame decoder and the payloads inside frames (`cairn-proto`, `cairn-replication`),
//! the cluster config loader (`cairn-control`), and the readers of local checkpoints
//! (`cairn-storage`) and of the Raft log (`cairn-replication`). Each function here feeds one
//! arbitrary byte string to one of them, through the same public entry points the daemons use.
//!
//! The functions are called from two places:
//!
//! - `fuzz/fuzz_targets/*.rs`, one libFuzzer target per function, built with `cargo fuzz`
//!   (nightly, sanitizers, coverage feedback); `scripts/fuzz.sh` runs each briefly in CI.
//! - `tests/seeds.rs`, a plain stable test that runs every function over the committed seed
//!   corpora in `fuzz/seeds/<target>/`, where every input that once crashed is kept, so the
//!   regressions are checked by `cargo test` even on a machine without nightly.
//!
//! # Guarantees
//!
//! A target returns normally for every input. A panic (an `unwrap` on bad bytes, an index out
//! of range, an arithmetic overflow in a debug build), an abort on a huge allocation, a stack
//! overflow or a hang is a bug in the crate under test, never in the target. Targets also
//! assert the few invariants that hold for any input: the SQL front end never answers with an
//! internal error (which would mean the engine met a state it did not expect), and a frame that
//! decodes re-encodes to a frame that decodes to the same message.
//!
//! # Invariants
//!
//! - Deterministic: the same input takes the same path (no clock or randomness decides what
//!   is parsed), so a crash found by the fuzzer replays in `cargo test`.
//! - Inputs whose checksums would almost never match by chance (frames, checkpoint blocks and
//!   manifests, log records) are also tried in a "sealed" form in which the target computes the
//!   checksums itself, so the fuzzer reaches the decoders behind them.
//!
//! # Left out
//!
//! The TLS layer (not built yet), the admin protocol's text commands, and the backup file
//! reader of `cairn restore`; inputs that need a whole running cluster (a hostile data node's
//! answers to an SQL node) are covered only as far as their decoders.

pub mod checkpoint;
pub mod config;
pub mod frame;
pub mod sql;
pub mod wal;
pub mod wire;

/// The targets by name, as `fuzz/fuzz_targets/` and `fuzz/seeds/` name them.
pub const TARGETS: &[(&str, fn(&[u8]))] = &[
    ("mysql_packets", wire::mysql_packets),
    ("mysql_handshake", wire::mysql_handshake),
    ("sql", sql::sql),
    ("frame", frame::frame),
    ("config", config::config),
    ("checkpoint", checkpoint::checkpoint),
    ("wal", wal::wal),
];
