//! Load generation for Cairn over the MySQL protocol, and the same load against a MariaDB peer.
//!
//! Cairn's performance targets are ratios to MariaDB on the same machine: primary-key selects at
//! 1.5x MariaDB's rate, the Exim account join at 3x, the greylisting stored function at 10x,
//! writes at least level. This crate measures those numbers. It only speaks the MySQL protocol
//! (through `mysql_async`), so the same run can point at either server; `benches/compare.sh`
//! does exactly that, with a private MariaDB started by `scripts/mariadb/start.sh`.
//!
//! # How a run works
//!
//! 1. **Setup** (unless `--no-setup`): recreate the workload's schema and load `--rows` rows in
//!    multi-row INSERT batches ([`run::setup`]). Not measured.
//! 2. **Connect**: open `--connections` connections over TCP (never a Unix socket, see
//!    [`run::connection_options`]); for the binary protocol, prepare the statement on each.
//! 3. **Warm-up, then measure**: every connection is a closed loop (send, read the whole answer,
//!    check it, repeat) in its own task with its own histogram ([`histogram`]); nothing is shared
//!    on the hot path. Operations that start within the measured window count.
//! 4. **Report** ([`report`]): ops, errors, qps, latency percentiles in microseconds.
//!
//! # Guarantees
//!
//! - Every answer is checked against what the data set says it must be ([`workload::Expected`]):
//!   a wrong row count, affected-row count or function result is an error, not a fast operation.
//! - Errors never abort a run: they are counted, and the first few distinct messages reported.
//!   A broken connection is replaced.
//! - The data and the key sequence are deterministic (`--seed`), so two servers see the same load.
//! - All SQL lives in [`schema`]; replacing the measured statement (`--query`) is always visible
//!   in the report.
//!
//! # Left out
//!
//! Open-loop (fixed arrival rate) load, coordinated-omission correction, multi-statement
//! transactions, and skewed (Zipfian) key choice. The closed loop measures what the targets are
//! stated in: throughput at a given concurrency, with the latency each connection saw.

pub mod calmail;
pub mod calmail_run;
pub mod histogram;
pub mod report;
pub mod rng;
pub mod run;
pub mod schema;
pub mod workload;

pub use report::RunReport;
pub use run::{RunConfig, RunError, run, setup};
pub use workload::{Protocol, Workload};
