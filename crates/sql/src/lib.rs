//! # cairn-sql: the SQL engine of a Cairn SQL node
//!
//! `cairn sqld` is a stateless MySQL-compatible SQL node. This crate is its engine, sans-IO:
//! it turns SQL text into requests to the cluster through the [`Backend`] trait
//! ([`backend`]: catalog, DDL, reads and writes to node groups) and answers with
//! [`Outcome`]s, which the daemon maps onto MySQL packets. It knows nothing of sockets, the
//! wire protocol, threads or the clock (the clock is injected: [`EngineConfig::clock`]).
//!
//! ## A statement's way through
//!
//! 1. **Split** (`lexer`): the text is tokenized once with sqlparser's MySQL tokenizer and cut
//!    on top-level `;` (quotes, comments and `/*! … */` understood; `CREATE FUNCTION/PROCEDURE`
//!    bodies kept whole). Several statements need CLIENT_MULTI_STATEMENTS; execution stops at
//!    the first error, as in MySQL.
//! 2. **Pre-parse** (`parse`): the first tokens classify the statement. SET, SHOW, DESCRIBE,
//!    USE, CREATE/DROP DATABASE, DROP TABLE, TRUNCATE and transaction statements are parsed by
//!    hand (sqlparser loses meaning in some of them); `PARTITION BY KEY (…)` is cut from CREATE
//!    TABLE and `LOCK IN SHARE MODE` from SELECT before sqlparser sees them.
//! 3. **Parse**: everything else by sqlparser 0.64 (`MySqlDialect`). Syntax errors are MySQL's
//!    1064 with its "near '…' at line N" shape.
//! 4. **Plan** (`compile`, `plan`, `dml`): names are resolved against the catalog,
//!    expressions compiled to [`cairn_common::expr::Expr`] with MySQL's result types, and the
//!    access to each table chosen. Values known only at execution (`?`, `@@vars`, `@vars`,
//!    uncorrelated subqueries) are slots bound when the statement runs, so a prepared
//!    statement keeps its plan (it is re-planned only if a table it uses changed).
//! 5. **Execute** (`exec`, `dml`): an operator tree pulled batch by batch; the root is the
//!    result's [`RowSource`], so big scans stream to the client.
//!
//! Prepared statements keep their plan. Text statements with inlined values (what Exim and
//! most web applications send) go through a plan cache shared by the engine's sessions
//! (`cache`): the values that cannot change the plan (WHERE comparison operands, IN-list
//! elements, INSERT values) are taken out, the normalized text is the key, and a hit skips
//! parsing and planning.
//!
//! ## What is pushed down to the data nodes
//!
//! - A WHERE that gives every primary-key column a value (`id = ?`, `(a, b) = (1, 2)`,
//!   `id IN (…)`) becomes `ReadOp::Get`: one request per node group that holds a key, and only
//!   those. The prepared hot path `SELECT … WHERE pk = ?` is bind → one Get → decode → rows.
//! - A WHERE that pins a unique index reads its entry then the row; one with equalities or
//!   ranges on an ordered index's leading columns scans the index (`ReadOp::IndexScan`).
//!   Whole-table aggregations are computed per node group (`ReadOp::Aggregate`) and merged.
//! - Other reads scan every node group in parallel (`ReadOp::Scan`), with the WHERE conjuncts
//!   pushed as a filter (session functions and parameters folded to constants first), only the
//!   needed columns returned, and LIMIT pushed when no ORDER BY, GROUP BY or DISTINCT is
//!   above it. Scans page with `resume`.
//! - UPDATE/DELETE by key ship `UpdateKey`/`DeleteKey` with their expressions: the leader
//!   evaluates `n = n + 1` under its row lock. Otherwise `UpdateWhere`/`DeleteWhere` go to
//!   every group. Writes are batched per node group: one `write()` per group per statement.
//! - AUTO_INCREMENT values come from ranges reserved per table per engine
//!   (`WriteOp::ReserveAutoIncrement` to the group of partition 0, `auto_increment_prefetch`
//!   values at a time; an explicit value above the range reserves above it).
//!
//! Evaluated on the SQL node: joins (hash joins on equality keys; batched key lookups when the
//! inner table's whole primary key is given), GROUP BY and aggregates, HAVING, DISTINCT,
//! ORDER BY (NULLs first, collation-aware), LIMIT/OFFSET, uncorrelated subqueries (run once
//! before the query), correlated subqueries in WHERE and the select list (run once per row of
//! the enclosing query by an Apply operator, with that row's columns bound: a key lookup when
//! they give the inner table's key), and conditions that cannot be shipped (RAND()).
//! Materializing operators hold at most `max_materialized_rows` rows and `max_statement_memory`
//! bytes each (`memory`); a text whose parse would take more than `parser_max_mem_size` is
//! refused before it is tokenized (`parser_memory`). IN lists longer than 128 items are checked
//! here rather than shipped in a data node's filter (`exec::split_long_lists`): a data node
//! would compare each row with every item, inside the loop all its clients share. Expressions
//! are at most 96 levels deep (MySQL's 1436 beyond), so evaluation here and on data nodes stays
//! within its stack.
//!
//! ## Temporary limits, and what is left out
//!
//! - **Transactions** (`txn.rs`) are NDB's: READ COMMITTED, statements evaluated and row-locked
//!   at each node group's leader when they run (errors such as 1062 come at statement time), a
//!   transaction's own writes visible to its reads, `FOR UPDATE` / `LOCK IN SHARE MODE` locks,
//!   lock waits ending with 1205 after TransactionDeadlockDetectionTimeout (which aborts the
//!   transaction, as in NDB), savepoints, and COMMIT in one Raft entry for one node group or by
//!   two-phase commit across several. An autocommit statement that spans node groups is an
//!   implicit transaction, so every statement is atomic. Reads are READ COMMITTED per row: a
//!   reader may see one node group's part of a multi-group commit a moment before another's
//!   (NDB's committed reads behave the same).
//! - **Indexes** (see `docs/sql.md`): unique indexes are hidden tables partitioned by the key,
//!   written in the statement's batches (`unique`); ordered indexes live in each partition on
//!   the data nodes. The planner (`access`, `plan`, `optimize`) uses them for lookups, lookup
//!   joins, ranges, ORDER BY and MIN/MAX; `alter` builds them online; `explain` shows the plan.
//!   Foreign keys are recorded, not checked (as NDB before 7.3).
//! - Window functions (`window`) run on the SQL node after WHERE/GROUP BY/HAVING, before the
//!   select list, DISTINCT, ORDER BY and LIMIT; recursive CTEs (`cte`) run round by round on
//!   the SQL node, bounded by `@@cte_max_recursion_depth` (3636) and `max_materialized_rows`.
//! - Not yet: INTERSECT/EXCEPT, correlated subqueries in HAVING/ORDER BY/ON, in
//!   aggregated queries' select lists, in UPDATE/DELETE, or two levels deep, RANGE window
//!   frames with value offsets, REGEXP, JSON, column changes by ALTER TABLE, views, stored routines, users and grants,
//!   information_schema, GET_LOCK and friends. They answer
//!   1235 naming what is missing.
//! - `SET GLOBAL` is refused (cluster-wide settings belong to the cluster config).
//!   `time_zone` accepts `SYSTEM`/`UTC` and `±HH:MM` offsets; TIMESTAMP values are stored as
//!   given (no conversion between session time zones).
//! - A table without a primary key gets NDB's hidden `$PK BIGINT UNSIGNED`, filled from the
//!   table's AUTO_INCREMENT counter (shared with a declared AUTO_INCREMENT column, which then
//!   sees gaps).
//! - UPDATE assignments with RAND()/UUID() get one value per statement, not per row; an
//!   UPDATE of partition-key columns moves rows with an insert then a delete (not atomic).
//!
//! ## Modules
//!
//! [`backend`] (the contract with the daemon), `engine` (shared state, AUTO_INCREMENT ranges,
//! status counters), `session` (one connection: variables, warnings, transactions, prepared
//! statements), `variables` (the system-variable registry), `types` (result types and column
//! metadata), `show` and `ddl` (SHOW, DESCRIBE, CREATE TABLE and its SHOW CREATE TABLE form),
//! `testing` (feature `testing`: an in-process cluster over `cairn-storage`), `join_using`
//! (USING and NATURAL joins' coalesced columns), `nested_join` (parenthesized joins), `cte`
//! (WITH as derived tables, and recursive CTEs), `window` (window functions), `multi_dml`
//! (multiple-table UPDATE and DELETE).

mod access;
mod alter;
mod alter_columns;
pub mod backend;
mod txn;
mod cache;
mod cte;
mod compile;
mod ddl;
mod dml;
mod engine;
mod exec;
mod information_schema;
mod exec_index;
mod explain;
mod join;
mod join_using;
mod lexer;
pub mod limits;
mod memory;
mod multi_dml;
mod nested_join;
mod optimize;
mod outcome;
mod parse;
mod parser_memory;
mod plan;
mod privileges;
mod privilege_views;
mod processlist;
mod query_text;
mod routine;
mod session;
mod show;
#[cfg(feature = "testing")]
pub mod testing;
mod types;
mod unique;
mod users;
mod variables;
mod window;

pub use backend::Backend;
pub use txn::Failpoint;
pub use engine::{Clock, Engine, EngineConfig, ManualClock, SystemClock};
pub use processlist::KillKind;
pub use query_text::decode_query;
pub use outcome::{ColumnMeta, Outcome, PreparedInfo, Row, RowSource, RowStream};
pub use session::{STATUS_AUTOCOMMIT, STATUS_IN_TRANS, Session, SessionInfo};
