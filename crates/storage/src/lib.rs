//! # cairn-storage: the in-memory partition store of a data node
//!
//! A data node (`cairn datad`) holds in RAM every partition of every table that maps to its
//! node group. This crate is that memory, and the leader's evaluation of writes against it. It
//! does no I/O (no sockets, clocks or files; the data node's shell drives it), except for the
//! [`checkpoint`] files, which it reaches only through a `Disk` trait the shell supplies.
//!
//! ## Concepts
//!
//! - [`Store`]: tables → the partitions held here → rows. Rows are packed rows
//!   ([`cairn_common::row`]) stored once, in 32 KiB pages cut into size-class cells shared by
//!   every table ([`arena`]). Each partition has a slot directory (a stable slot number per row,
//!   so scans resume exactly) and a primary-key hash index that stores slot numbers only: keys
//!   are re-derived from the stored row, never stored twice ([`partition`], [`schema`]).
//! - Replicas change the store only by applying committed write sets ([`Store::apply`],
//!   [`Store::apply_write_set`]): deterministic and idempotent.
//! - The leader turns requests ([`cairn_common::ops::WriteOp`]) into write sets with
//!   [`evaluate::evaluate`], reading through the [`Pending`] overlay of write sets it proposed
//!   and has not applied yet.
//! - [`coerce`]: MySQL's rules for storing a value in a column (strict and non-strict), used by
//!   evaluation and meant for the SQL layer too.
//!
//! ## Guarantees and invariants
//!
//! - Applying a write set is all or nothing, and the same log applied to two stores leaves the
//!   same rows in the same slots.
//! - A row that exists for the whole of a scan is returned exactly once, whatever else is
//!   inserted or deleted meanwhile (READ COMMITTED: concurrent inserts may or may not be seen).
//! - Memory freed by DELETE is reusable by any table at once, and whole pages go back to the
//!   system; [`Store::compact`] gathers rows of sparse pages. NDB keeps freed memory per table
//!   until OPTIMIZE TABLE.
//! - A batch of write ops is atomic, sees its own earlier effects, and is refused whole past
//!   DataMemory (1114) or the per-batch limits.
//!
//! ## Indexes
//!
//! - [`ordered`], [`indexing`]: ordered indexes, local to each partition and derived from its
//!   rows on every replica (maintained while applying, built online by walking existing rows
//!   in slices), and index range scans merged across a node group's partitions.
//! - [`aggregate`]: partial aggregation (GROUP BY with COUNT/SUM/MIN/MAX) on the data node.
//!
//! Unique indexes are not this crate's business: each is a hidden table partitioned by the
//! unique key (`cairn_common::catalog::index_table_def`), which the store keeps like any table;
//! the SQL node writes its entries in the same write batches as the base rows.
//!
//! ## Left out
//!
//! Rewriting rows of an older layout after an online column change: they stay as written and
//! decode through the table's layout history (`cairn_common::row`) until an UPDATE rewrites them.
//!
//! Local checkpoints (NDB's LCP) live in [`checkpoint`], online backups in [`backup`]: the parts
//! of this crate that touch files, only through the checkpoint module's `Disk` trait.

pub mod aggregate;
pub mod arena;
pub mod backup;
pub mod checkpoint;
// Store assignment moved to `cairn_common` so that row layouts can convert older rows; the
// path `cairn_storage::coerce` stays for its users.
pub use cairn_common::coerce;
pub mod evaluate;
pub mod indexing;
pub mod ordered;
pub mod partition;
pub mod pending;
pub mod schema;
pub mod store;
pub mod txn;

pub use evaluate::{Limits, evaluate, evaluate_in};
pub use pending::Pending;
pub use txn::{ReadAttempt, TxnLimits, TxnManager, WriteAttempt};
pub use store::{DataUsage, MemoryUsage, ScanBatch, ScanRequest, Store, TableMemory};
