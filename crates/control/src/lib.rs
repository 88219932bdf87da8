//! # cairn-control: the management nodes' replicated state, and the cluster config
//!
//! The management nodes (`cairn mgmd`, NDB's ndb_mgmd) form one Raft group. What they replicate
//! is a [`state::ControlState`]: the cluster catalog (databases, tables with their partition
//! maps, users). Commands ([`state::ControlCommand`]) enter the Raft log and are applied in
//! order on every management node; applying is deterministic, so all of them agree.
//!
//! The cluster [`config::ClusterConfig`] is read from one TOML file with NDB's parameter names
//! and checked completely at start; every node gets the same text from the management node it
//! registers with and validates it the same way.
//!
//! Sans-IO: no sockets, files or clocks here; `cairn-mgmd` drives it.
//!
//! Not yet here: arbitration records, backup records, online config changes (later issues add
//! them as further `ControlCommand`s).

pub mod config;
pub mod state;

pub use config::{ClusterConfig, ConfigError};
pub use state::{ControlCommand, ControlOutcome, ControlState};
