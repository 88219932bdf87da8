//! The engine: what every session of one SQL node shares.
//!
//! It holds the backend, the configuration, the clock, the AUTO_INCREMENT ranges this node has
//! reserved, and the status counters of SHOW STATUS. Sessions are per connection and hold an
//! `Arc<Engine>`.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cairn_common::catalog::TableDef;
use cairn_common::row::RowLayout;
use cairn_common::error::Error;
use cairn_common::ids::{PartitionId, TableId};
use cairn_common::ops::{TableRef, WriteOp};

use crate::backend::Backend;

/// The time source. The engine reads no clock of its own (sans-IO): the daemon passes the
/// system clock, tests a fixed or manual one, so NOW() is deterministic under test.
pub trait Clock: Send + Sync {
    /// Microseconds since 1970-01-01 00:00:00 UTC.
    fn now_micros(&self) -> i64;
}

/// The operating system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_micros(&self) -> i64 {
        match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
            Err(_) => 0,
        }
    }
}

/// A clock that says what it is told (tests, simulation).
#[derive(Debug, Default)]
pub struct ManualClock {
    micros: AtomicU64,
}

impl ManualClock {
    pub fn new(micros: i64) -> ManualClock {
        ManualClock { micros: AtomicU64::new(micros.max(0) as u64) }
    }

    pub fn set(&self, micros: i64) {
        self.micros.store(micros.max(0) as u64, Ordering::SeqCst);
    }

    pub fn advance(&self, micros: i64) {
        self.micros.fetch_add(micros.max(0) as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_micros(&self) -> i64 {
        self.micros.load(Ordering::SeqCst) as i64
    }
}

/// Settings of one SQL node's engine.
#[derive(Clone)]
pub struct EngineConfig {
    /// `@@version` and the handshake's version string.
    pub server_version: String,
    /// `@@version_comment` (what the mysql CLI prints in its banner).
    pub version_comment: String,
    /// This SQL node's id (`@@server_id`).
    pub node_id: u32,
    /// AUTO_INCREMENT values reserved at a time per table (NDB's ndb_autoincrement_prefetch_sz).
    pub auto_increment_prefetch: u64,
    /// Rows and bytes per scan answer from one node group.
    pub scan_batch_rows: u32,
    pub scan_batch_bytes: u32,
    /// Most rows a statement may hold in memory at once (sorts, aggregations, join build
    /// sides); beyond it the statement fails with ER_TOO_MANY_ROWS rather than exhausting RAM.
    pub max_materialized_rows: usize,
    /// Most bytes one such operator may hold (MaxStatementMemory; memory.rs); beyond it the
    /// statement fails with 3170.
    pub max_statement_memory: u64,
    /// Most open prepared statements per session (MySQL's max_prepared_stmt_count is global).
    pub max_prepared_statements: usize,
    /// Bytes one statement text may take to tokenize and parse (MySQL's parser_max_mem_size;
    /// `parser_memory.rs`): a larger one is refused with 3170 before it is tokenized.
    pub parser_max_mem_size: u64,
    /// Connection, per-account and node-wide prepared-statement limits (limits.rs).
    pub limits: crate::limits::LimitSettings,
    /// TLS is configured on this node's MySQL port (`@@have_ssl` and `@@have_openssl` say YES,
    /// otherwise DISABLED, as MySQL says them).
    pub tls_configured: bool,
    /// The SQL node's RSA public key for `caching_sha2_password` (PEM), once it exists: the
    /// status variable `Caching_sha2_password_rsa_public_key` (empty until then, or without one).
    pub caching_sha2_public_key: Arc<std::sync::OnceLock<String>>,
    pub clock: Arc<dyn Clock>,
    /// Called at named points of the commit protocol ("after-prepare", "after-decision") so
    /// that fault tests can make the SQL node die exactly there. None in production.
    pub failpoint: Option<crate::txn::Failpoint>,
}

impl fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineConfig")
            .field("server_version", &self.server_version)
            .field("version_comment", &self.version_comment)
            .field("node_id", &self.node_id)
            .field("auto_increment_prefetch", &self.auto_increment_prefetch)
            .field("scan_batch_rows", &self.scan_batch_rows)
            .field("max_materialized_rows", &self.max_materialized_rows)
            .finish_non_exhaustive()
    }
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            server_version: "8.0.36-cairn-0.1.0".into(),
            version_comment: "Cairn clustered in-memory database".into(),
            node_id: 0,
            auto_increment_prefetch: 1000,
            scan_batch_rows: 1024,
            scan_batch_bytes: 1 << 20,
            max_materialized_rows: 4_000_000,
            max_statement_memory: crate::memory::DEFAULT_MAX_STATEMENT_MEMORY,
            max_prepared_statements: 16_382,
            parser_max_mem_size: crate::parser_memory::DEFAULT_PARSER_MAX_MEM_SIZE,
            limits: crate::limits::LimitSettings::default(),
            tls_configured: false,
            caching_sha2_public_key: Arc::default(),
            clock: Arc::new(SystemClock),
            failpoint: None,
        }
    }
}

/// Counters of SHOW STATUS.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub questions: AtomicU64,
    pub com_select: AtomicU64,
    pub com_insert: AtomicU64,
    pub com_update: AtomicU64,
    pub com_delete: AtomicU64,
    pub com_stmt_prepare: AtomicU64,
    pub com_stmt_execute: AtomicU64,
    pub connections: AtomicU64,
    pub threads_connected: AtomicU64,
    pub key_lookups: AtomicU64,
    pub scans: AtomicU64,
    /// Ordered-index range scans started.
    pub index_scans: AtomicU64,
    /// Aggregations pushed to the data nodes.
    pub pushed_aggregates: AtomicU64,
    pub plan_cache_hits: AtomicU64,
    /// Text statements that could use the plan cache but found no plan.
    pub plan_cache_misses: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// AUTO_INCREMENT values this node reserved for one table and has not handed out.
#[derive(Debug, Clone, Copy, Default)]
struct Reserved {
    next: u64,
    /// Exclusive end of the reserved range.
    end: u64,
}

/// Shared by all sessions of a SQL node.
pub struct Engine<B: Backend> {
    pub(crate) backend: Arc<B>,
    pub(crate) config: EngineConfig,
    reserved: Mutex<HashMap<TableId, Reserved>>,
    /// Row layouts by table and definition version, built once (every lookup, scan and insert
    /// needs one).
    layouts: Mutex<HashMap<(TableId, u64), Arc<RowLayout>>>,
    pub(crate) stats: Stats,
    /// Plans of text-protocol statements by normalized text (cache.rs).
    pub(crate) plans: crate::cache::PlanCache<crate::session::CachedPlan>,
    /// The node's live sessions (SHOW PROCESSLIST, KILL: processlist.rs).
    pub(crate) processes: crate::processlist::Processes,
    /// Connections, account usage and prepared statements counted against the limits.
    pub(crate) limits: crate::limits::NodeLimits,
    /// Parsed stored routines by catalog version (routine/cache.rs).
    pub(crate) routines: crate::routine::cache::RoutineCache,
    /// When this node last synchronized its catalog after a routine was not found (microseconds
    /// of the engine's clock): at most one such round trip per `CATALOG_SYNC_INTERVAL_MICROS`.
    pub(crate) last_catalog_sync_micros: std::sync::atomic::AtomicI64,
    /// A catalog synchronization is under way (one at a time per node).
    pub(crate) catalog_sync_running: std::sync::atomic::AtomicBool,
    /// Started at, for SHOW STATUS Uptime.
    pub(crate) started_micros: i64,
    /// The next transaction number; starts at this node's start time in milliseconds so that
    /// ids are not reused across restarts.
    next_txn: std::sync::atomic::AtomicU64,
}

impl<B: Backend> fmt::Debug for Engine<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<B: Backend> Engine<B> {
    pub fn new(backend: Arc<B>, config: EngineConfig) -> Arc<Engine<B>> {
        let started_micros = config.clock.now_micros();
        let next_txn = std::sync::atomic::AtomicU64::new((started_micros / 1000).max(1) as u64);
        let limits = crate::limits::NodeLimits::new(config.limits);
        Arc::new(Engine {
            next_txn,
            backend,
            config,
            reserved: Mutex::new(HashMap::new()),
            layouts: Mutex::new(HashMap::new()),
            stats: Stats::default(),
            plans: crate::cache::PlanCache::new(),
            processes: crate::processlist::Processes::default(),
            limits,
            routines: crate::routine::cache::RoutineCache::new(),
            last_catalog_sync_micros: std::sync::atomic::AtomicI64::new(i64::MIN),
            catalog_sync_running: std::sync::atomic::AtomicBool::new(false),
            started_micros,
        })
    }

    /// A cluster-wide unique transaction id coordinated by this SQL node.
    pub(crate) fn next_txn_id(&self) -> cairn_common::ops::TxnId {
        let n = self.next_txn.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        cairn_common::ops::TxnId::new(self.config.node_id, n)
    }

    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The node's connection and resource limits, which the daemon consults at accept and login.
    pub fn limits(&self) -> &crate::limits::NodeLimits {
        &self.limits
    }

    fn reserved(&self) -> std::sync::MutexGuard<'_, HashMap<TableId, Reserved>> {
        // A panic while holding the lock cannot leave the map inconsistent (every update is a
        // single insert or field write), so a poisoned lock is still usable.
        self.reserved.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hands out `count` AUTO_INCREMENT values for `table`, from this node's reserved range
    /// when it has them, reserving a new range (at least `auto_increment_prefetch` values) from
    /// the node group of the table's partition 0 otherwise. The values are increasing but not
    /// necessarily consecutive across a range boundary.
    pub(crate) async fn auto_increment_values(&self, table: &TableDef, count: u64) -> Result<Vec<u64>, Error> {
        let mut out = Vec::with_capacity(count as usize);
        while (out.len() as u64) < count {
            {
                let mut map = self.reserved();
                if let Some(r) = map.get_mut(&table.id) {
                    while r.next < r.end && (out.len() as u64) < count {
                        out.push(r.next);
                        r.next += 1;
                    }
                }
            }
            if (out.len() as u64) >= count {
                break;
            }
            let want = (count - out.len() as u64).max(self.config.auto_increment_prefetch.max(1));
            self.reserve(table, want, 0).await?;
        }
        Ok(out)
    }

    /// Reserves `count` values starting no lower than `at_least`, replacing this node's range.
    async fn reserve(&self, table: &TableDef, count: u64, at_least: u64) -> Result<(), Error> {
        let group = table
            .node_group_of(PartitionId(0))
            .ok_or_else(|| Error::internal(format!("table {}.{} has no partitions", table.database, table.name)))?;
        let op = WriteOp::ReserveAutoIncrement { table: TableRef { id: table.id, version: table.version }, count, at_least };
        let outcome = self.backend.write(group, vec![op]).await?;
        let first = outcome
            .auto_increment
            .ok_or_else(|| Error::internal("the node group answered an AUTO_INCREMENT reservation without a value"))?;
        self.reserved().insert(table.id, Reserved { next: first, end: first.saturating_add(count) });
        Ok(())
    }

    /// Records that a row was inserted with an explicit AUTO_INCREMENT value, so that later
    /// generated values are above it (as MySQL does). Within this node's range the range just
    /// skips ahead; beyond it, a new range is reserved above the value, which also raises the
    /// table's counter on the data nodes for every other SQL node.
    pub(crate) async fn note_explicit_auto_increment(&self, table: &TableDef, value: u64) -> Result<(), Error> {
        if value == u64::MAX {
            return Ok(());
        }
        {
            let mut map = self.reserved();
            if let Some(r) = map.get_mut(&table.id) {
                if value < r.next {
                    return Ok(());
                }
                if value < r.end {
                    r.next = value + 1;
                    return Ok(());
                }
            }
        }
        self.reserve(table, self.config.auto_increment_prefetch.max(1), value + 1).await
    }

    /// The next value this node would hand out for a table, if it holds a range (SHOW CREATE
    /// TABLE's AUTO_INCREMENT=).
    pub(crate) fn peek_auto_increment(&self, table: TableId) -> Option<u64> {
        self.reserved().get(&table).filter(|r| r.next < r.end).map(|r| r.next)
    }

    /// The packed-row layout of a table definition.
    pub(crate) fn layout(&self, table: &TableDef) -> Arc<RowLayout> {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = layouts.get(&(table.id, table.version)) {
            return l.clone();
        }
        // Bounded: layouts of dropped tables and old versions are forgotten wholesale.
        if layouts.len() >= 4096 {
            layouts.clear();
        }
        let layout = Arc::new(table.layout());
        layouts.insert((table.id, table.version), layout.clone());
        layout
    }

    /// Forgets a table's range (after DROP or TRUNCATE TABLE).
    pub(crate) fn forget_auto_increment(&self, table: TableId) {
        self.reserved().remove(&table);
    }
}
