//! # cairn-common: the vocabulary every Cairn node shares
//!
//! SQL nodes, data nodes and management nodes agree on what a value is, how a row is packed,
//! how keys sort and hash to partitions, what the catalog holds, how an expression evaluates,
//! and which MySQL error number each failure gets. All of that lives here, free of I/O, so that
//! the nodes cannot drift apart and so that tests can exercise it without a cluster.
//!
//! - [`value`], [`decimal`], [`temporal`], [`collation`]: SQL values and MySQL's rules for
//!   comparing and converting them.
//! - [`types`]: column types, their DDL spelling and their protocol metadata.
//! - [`row`]: the packed in-memory row format ("every byte counts").
//! - [`key`]: order-preserving key encoding and the partition hash (an on-disk contract).
//! - [`catalog`]: databases, tables, users; deterministic catalog ops.
//! - [`routine`]: stored functions and procedures as the catalog keeps them.
//! - [`expr`], [`functions`]: expressions evaluated on SQL and data nodes alike.
//! - [`group`]: grouping keys shared by SQL and data nodes.
//! - [`ops`]: requests from SQL nodes to node groups, and the write sets of the Raft log.
//! - [`error`]: the one registry of MySQL error numbers and SQLSTATEs.
//!
//! Where Cairn differs from MySQL here, the module docs say so (DECIMAL stops at 38 digits; the
//! default collation is general_ci for every `_ci` name).

pub mod accounts;
pub mod catalog;
pub mod coerce;
pub mod collation;
pub mod decimal;
pub mod error;
pub mod expr;
pub mod functions;
pub mod group;
pub mod ids;
pub mod key;
pub mod ops;
pub mod routine;
pub mod row;
pub mod set_value;
pub mod temporal;
pub mod types;
pub mod value;

pub use error::{Error, ErrorKind, Result};
pub use value::Value;
