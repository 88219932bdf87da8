//! # Connection and resource limits of one SQL node
//!
//! MySQL's limits on what clients may take from a server, kept per SQL node as MySQL keeps them
//! per mysqld (an account with `MAX_USER_CONNECTIONS 10` may hold ten connections on each SQL
//! node; the limits protect a node, and a client that is refused by one node is not helped by
//! the others' counters):
//!
//! - **`max_connections`** (`MaxConnections` of the `[[mysqld]]` section): a connection beyond it
//!   is refused with 1040 before the handshake, except one extra slot that only an account with
//!   SUPER may take (MySQL reserves it for SUPER/CONNECTION_ADMIN so that an administrator can
//!   always get in to see what is wrong); an ordinary account that logs in through that slot
//!   is refused with 1040 after authenticating.
//! - **per-account limits** of `CREATE/ALTER USER … WITH`: `MAX_USER_CONNECTIONS` (open at
//!   once; 1226), `MAX_CONNECTIONS_PER_HOUR`, `MAX_QUERIES_PER_HOUR` (every statement) and
//!   `MAX_UPDATES_PER_HOUR` (statements that change data or the catalog), each 1226 with
//!   MySQL's message. The hourly counters start with an account's first counted event and are
//!   cleared an hour later (MySQL's `reset_utime`) or by `FLUSH USER_RESOURCES`. The global
//!   `max_user_connections` (`MaxUserConnections`) applies to accounts without their own limit
//!   and gives 1203.
//! - **connection errors per host**: a connection from a client address that ends before it
//!   authenticated (a protocol error, a timeout, a disconnect in the middle of the handshake;
//!   not a wrong password, as in MySQL) counts one error against that address; at
//!   `max_connect_errors` (`MaxConnectErrors`) errors in a row the address is refused with 1129
//!   before the handshake until `FLUSH HOSTS`. A successful login clears its address's count.
//!   As in MySQL, 127.0.0.1 and ::1 are never counted (MySQL keeps loopback out of its host
//!   cache), so local health checks and administrators cannot be locked out.
//! - **prepared statements**: `max_prepared_stmt_count` (`MaxPreparedStmtCount`) open at once
//!   on the node, summed over its sessions (1461). Each open statement holds a
//!   [`PreparedSlot`], so the count is right however a statement ends (COM_STMT_CLOSE, reset,
//!   disconnect).
//!
//! Invariants: every counted connection or statement is represented by exactly one guard
//! ([`ConnectionSlot`], [`AccountSlot`], [`PreparedSlot`]) whose `Drop` gives it back, so no
//! path can leak a slot. The state is one mutex per node, taken once per login and, only for
//! accounts with an hourly query limit, once per statement.
//!
//! Left out: per-hour counters shared across SQL nodes (they would need the management nodes'
//! log for every statement), `performance_schema.host_cache`, and name resolution of hosts
//! (Cairn counts by client IP address, as MySQL with `skip_name_resolve`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cairn_common::accounts::{AccountName, ResourceLimits};
use cairn_common::{Error, ErrorKind};

/// One hour in microseconds: the window of the per-hour limits.
const HOUR_MICROS: i64 = 3_600_000_000;

/// The limits an SQL node enforces, from its `[[mysqld]]` section of the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LimitSettings {
    /// Ordinary connections at once; one more is kept for an account with SUPER.
    pub max_connections: u64,
    /// Failed handshakes in a row after which a client address is refused (0: never).
    pub max_connect_errors: u64,
    /// Connections per account at once for accounts without MAX_USER_CONNECTIONS (0: none).
    pub max_user_connections: u64,
    /// Open prepared statements on the node, summed over all sessions.
    pub max_prepared_statements: u64,
}

impl Default for LimitSettings {
    /// MySQL's defaults, except `max_connections`, which follows the config's default.
    fn default() -> LimitSettings {
        LimitSettings { max_connections: 1024, max_connect_errors: 100, max_user_connections: 0, max_prepared_statements: 16_382 }
    }
}

/// What one account has used on this node.
#[derive(Debug, Default)]
struct AccountUsage {
    /// Connections open now.
    open: u64,
    /// When the current hourly window started (engine clock, microseconds).
    window_start_micros: i64,
    connections_this_hour: u64,
    questions_this_hour: u64,
    updates_this_hour: u64,
}

impl AccountUsage {
    /// Clears the hourly counters once their hour is over, as MySQL's
    /// `time_out_user_resource_limits` does.
    fn roll_window(&mut self, now_micros: i64) {
        if now_micros.saturating_sub(self.window_start_micros) >= HOUR_MICROS {
            self.window_start_micros = now_micros;
            self.connections_this_hour = 0;
            self.questions_this_hour = 0;
            self.updates_this_hour = 0;
        }
    }

    fn is_idle(&self) -> bool {
        self.open == 0 && self.connections_this_hour == 0 && self.questions_this_hour == 0 && self.updates_this_hour == 0
    }
}

#[derive(Debug, Default)]
struct State {
    accounts: HashMap<AccountName, AccountUsage>,
    /// Handshakes that failed in a row, by client address.
    host_errors: HashMap<String, u64>,
}

/// Most client addresses whose connection errors are remembered; beyond it the table is
/// cleared rather than grown (MySQL's host cache has a size too, `host_cache_size`). A flood of
/// failed handshakes from many addresses therefore cannot exhaust memory.
const MAX_TRACKED_HOSTS: usize = 10_000;

/// The limits and the usage of one SQL node, shared by its sessions.
#[derive(Debug)]
pub struct NodeLimits {
    settings: LimitSettings,
    /// Connections accepted and not yet closed, authenticated or not.
    open: Arc<AtomicU64>,
    /// Prepared statements open on the node.
    prepared: Arc<AtomicU64>,
    state: Arc<Mutex<State>>,
}

/// A connection counted against `max_connections`; dropping it gives the slot back.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicU64>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// An authenticated connection counted against its account's limits; dropping it gives the
/// account's slot back.
#[derive(Debug)]
pub struct AccountSlot {
    account: AccountName,
    state: Arc<Mutex<State>>,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        let mut state = lock(&self.state);
        if let Some(usage) = state.accounts.get_mut(&self.account) {
            usage.open = usage.open.saturating_sub(1);
            if usage.is_idle() {
                state.accounts.remove(&self.account);
            }
        }
    }
}

/// A prepared statement counted against `max_prepared_stmt_count`.
#[derive(Debug)]
pub struct PreparedSlot {
    prepared: Arc<AtomicU64>,
}

impl Drop for PreparedSlot {
    fn drop(&mut self) {
        self.prepared.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A poisoned lock is still usable: every update under it is a few counter writes that leave
/// the maps consistent even if interrupted.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn user_limit_reached(user: &str, resource: &str, limit: u64) -> Error {
    Error::new(
        ErrorKind::UserLimitReached,
        format!("User '{user}' has exceeded the '{resource}' resource (current value: {limit})"),
    )
}

/// MySQL's 1040, the same before and after the handshake.
pub fn too_many_connections() -> Error {
    Error::new(ErrorKind::TooManyConnections, "Too many connections")
}

impl NodeLimits {
    pub fn new(settings: LimitSettings) -> NodeLimits {
        NodeLimits {
            settings,
            open: Arc::new(AtomicU64::new(0)),
            prepared: Arc::new(AtomicU64::new(0)),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    /// Connections open on the node now.
    pub fn open_connections(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    /// Prepared statements open on the node now.
    pub fn open_prepared_statements(&self) -> u64 {
        self.prepared.load(Ordering::Relaxed)
    }

    /// Whether connection errors of `host` are counted: not for 127.0.0.1 and ::1, which
    /// MySQL's host cache leaves out too.
    fn counts_errors_of(&self, host: &str) -> bool {
        self.settings.max_connect_errors > 0 && host != "127.0.0.1" && host != "::1"
    }

    /// A new TCP connection from `host`, before the handshake: refused with 1129 if the address
    /// is blocked, with 1040 if even the administrator's extra slot is taken.
    pub fn accept(&self, host: &str) -> Result<ConnectionSlot, Error> {
        if self.counts_errors_of(host) {
            let errors = lock(&self.state).host_errors.get(host).copied().unwrap_or(0);
            if errors >= self.settings.max_connect_errors {
                return Err(Error::new(
                    ErrorKind::HostBlocked,
                    format!("Host '{host}' is blocked because of many connection errors; unblock with 'mysqladmin flush-hosts'"),
                ));
            }
        }
        // Counted first, then checked, so that simultaneous accepts cannot all pass.
        let now_open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = ConnectionSlot { open: self.open.clone() };
        if now_open > self.settings.max_connections.saturating_add(1) {
            return Err(too_many_connections());
        }
        Ok(slot)
    }

    /// A connection from `host` ended before it authenticated.
    pub fn connect_error(&self, host: &str) {
        if !self.counts_errors_of(host) {
            return;
        }
        let mut state = lock(&self.state);
        if state.host_errors.len() >= MAX_TRACKED_HOSTS && !state.host_errors.contains_key(host) {
            state.host_errors.clear();
        }
        *state.host_errors.entry(host.to_string()).or_insert(0) += 1;
    }

    /// Connection errors counted against `host` (for tests and diagnostics).
    pub fn connect_errors(&self, host: &str) -> u64 {
        lock(&self.state).host_errors.get(host).copied().unwrap_or(0)
    }

    /// `FLUSH HOSTS`: every blocked address may connect again.
    pub fn flush_hosts(&self) {
        lock(&self.state).host_errors.clear();
    }

    /// `FLUSH USER_RESOURCES`: the hourly counters of every account start again.
    pub fn flush_user_resources(&self) {
        let mut state = lock(&self.state);
        for usage in state.accounts.values_mut() {
            usage.connections_this_hour = 0;
            usage.questions_this_hour = 0;
            usage.updates_this_hour = 0;
        }
        state.accounts.retain(|_, usage| !usage.is_idle());
    }

    /// An authenticated login of `account` from `host` (its connection already holds a
    /// [`ConnectionSlot`]). `administrator`: the account has SUPER and may take the extra slot.
    pub fn login(
        &self,
        account: &AccountName,
        limits: &ResourceLimits,
        administrator: bool,
        host: &str,
        now_micros: i64,
    ) -> Result<AccountSlot, Error> {
        if !administrator && self.open.load(Ordering::Relaxed) > self.settings.max_connections {
            return Err(too_many_connections());
        }
        let mut state = lock(&self.state);
        let usage = state.accounts.entry(account.clone()).or_default();
        usage.roll_window(now_micros);
        if limits.max_user_connections > 0 {
            if usage.open >= limits.max_user_connections {
                return Err(user_limit_reached(&account.user, "max_user_connections", limits.max_user_connections));
            }
        } else if self.settings.max_user_connections > 0 && usage.open >= self.settings.max_user_connections {
            return Err(Error::new(
                ErrorKind::TooManyUserConnections,
                format!("User {} already has more than 'max_user_connections' active connections", account.user),
            ));
        }
        if limits.max_connections_per_hour > 0 && usage.connections_this_hour >= limits.max_connections_per_hour {
            return Err(user_limit_reached(&account.user, "max_connections_per_hour", limits.max_connections_per_hour));
        }
        usage.open += 1;
        usage.connections_this_hour += 1;
        state.host_errors.remove(host);
        Ok(AccountSlot { account: account.clone(), state: self.state.clone() })
    }

    /// Counts one statement of `account` against its hourly limits; `changes_data`: the
    /// statement counts as an update too. Refused statements are not run.
    pub fn charge_statement(&self, account: &AccountName, limits: &ResourceLimits, changes_data: bool, now_micros: i64) -> Result<(), Error> {
        if limits.max_queries_per_hour == 0 && (limits.max_updates_per_hour == 0 || !changes_data) {
            return Ok(());
        }
        let mut state = lock(&self.state);
        let usage = state.accounts.entry(account.clone()).or_default();
        usage.roll_window(now_micros);
        if limits.max_queries_per_hour > 0 {
            if usage.questions_this_hour >= limits.max_queries_per_hour {
                return Err(user_limit_reached(&account.user, "max_questions", limits.max_queries_per_hour));
            }
            usage.questions_this_hour += 1;
        }
        if changes_data && limits.max_updates_per_hour > 0 {
            if usage.updates_this_hour >= limits.max_updates_per_hour {
                return Err(user_limit_reached(&account.user, "max_updates", limits.max_updates_per_hour));
            }
            usage.updates_this_hour += 1;
        }
        Ok(())
    }

    /// A new prepared statement: 1461 past `max_prepared_stmt_count` on the node.
    pub fn prepare(&self) -> Result<PreparedSlot, Error> {
        let now_open = self.prepared.fetch_add(1, Ordering::Relaxed) + 1;
        let slot = PreparedSlot { prepared: self.prepared.clone() };
        if now_open > self.settings.max_prepared_statements {
            return Err(Error::new(
                ErrorKind::TooManyPreparedStatements,
                format!(
                    "Can't create more than max_prepared_stmt_count statements (current value: {})",
                    self.settings.max_prepared_statements
                ),
            ));
        }
        Ok(slot)
    }
}

/// Whether a statement beginning with `first_word` changes data or the catalog, so that
/// MAX_UPDATES_PER_HOUR counts it (MySQL's CF_CHANGES_DATA commands).
pub fn changes_data(first_word: &str) -> bool {
    const CHANGING: &[&str] = &[
        "INSERT", "UPDATE", "DELETE", "REPLACE", "LOAD", "CREATE", "DROP", "ALTER", "RENAME", "TRUNCATE", "GRANT", "REVOKE",
    ];
    CHANGING.iter().any(|w| w.eq_ignore_ascii_case(first_word))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_connections: u64) -> LimitSettings {
        LimitSettings { max_connections, max_connect_errors: 3, max_user_connections: 0, max_prepared_statements: 2 }
    }

    fn exim() -> AccountName {
        AccountName::new("exim", "%")
    }

    #[test]
    fn max_connections_keeps_one_slot_for_an_administrator() {
        let limits = NodeLimits::new(settings(2));
        let none = ResourceLimits::default();
        let a = limits.accept("127.0.0.1").unwrap();
        let _a = limits.login(&exim(), &none, false, "127.0.0.1", 0).unwrap();
        let b = limits.accept("127.0.0.1").unwrap();
        let _b = limits.login(&exim(), &none, false, "127.0.0.1", 0).unwrap();
        // The third connection is accepted (the extra slot), but only an administrator keeps it.
        let c = limits.accept("127.0.0.1").unwrap();
        assert_eq!(limits.login(&exim(), &none, false, "127.0.0.1", 0).unwrap_err().code(), 1040);
        let root = AccountName::new("root", "%");
        let _c = limits.login(&root, &none, true, "127.0.0.1", 0).unwrap();
        // A fourth is refused before the handshake.
        assert_eq!(limits.accept("127.0.0.1").unwrap_err().code(), 1040);
        assert_eq!(limits.open_connections(), 3, "a refused accept gives its count back");
        drop((a, b, c));
        assert_eq!(limits.open_connections(), 0);
    }

    #[test]
    fn max_user_connections_counts_open_connections_of_the_account() {
        let limits = NodeLimits::new(settings(100));
        let two = ResourceLimits { max_user_connections: 2, ..ResourceLimits::default() };
        let first = limits.login(&exim(), &two, false, "h", 0).unwrap();
        let _second = limits.login(&exim(), &two, false, "h", 0).unwrap();
        let refused = limits.login(&exim(), &two, false, "h", 0).unwrap_err();
        assert_eq!(refused.code(), 1226);
        assert_eq!(refused.message, "User 'exim' has exceeded the 'max_user_connections' resource (current value: 2)");
        drop(first);
        limits.login(&exim(), &two, false, "h", 0).unwrap();
    }

    #[test]
    fn the_global_max_user_connections_applies_without_an_account_limit() {
        let limits = NodeLimits::new(LimitSettings { max_user_connections: 1, ..settings(100) });
        let _one = limits.login(&exim(), &ResourceLimits::default(), false, "h", 0).unwrap();
        assert_eq!(limits.login(&exim(), &ResourceLimits::default(), false, "h", 0).unwrap_err().code(), 1203);
        // The account's own limit wins over the global one.
        let three = ResourceLimits { max_user_connections: 3, ..ResourceLimits::default() };
        limits.login(&exim(), &three, false, "h", 0).unwrap();
    }

    #[test]
    fn hourly_limits_refuse_until_the_hour_is_over_or_flushed() {
        let limits = NodeLimits::new(settings(100));
        let l = ResourceLimits { max_queries_per_hour: 3, max_updates_per_hour: 1, max_connections_per_hour: 1, ..Default::default() };
        let _slot = limits.login(&exim(), &l, false, "h", 0).unwrap();
        assert_eq!(limits.login(&exim(), &l, false, "h", 10).unwrap_err().message, "User 'exim' has exceeded the 'max_connections_per_hour' resource (current value: 1)");
        limits.charge_statement(&exim(), &l, true, 1).unwrap();
        let update = limits.charge_statement(&exim(), &l, true, 2).unwrap_err();
        assert_eq!(update.message, "User 'exim' has exceeded the 'max_updates' resource (current value: 1)");
        // The refused update was still a question (MySQL counts questions first).
        limits.charge_statement(&exim(), &l, false, 3).unwrap();
        let question = limits.charge_statement(&exim(), &l, false, 3).unwrap_err();
        assert_eq!(question.code(), 1226);
        assert_eq!(question.message, "User 'exim' has exceeded the 'max_questions' resource (current value: 3)");
        // An hour after the window started, everything is allowed again.
        limits.charge_statement(&exim(), &l, true, HOUR_MICROS).unwrap();
        limits.charge_statement(&exim(), &l, false, HOUR_MICROS).unwrap();
        limits.charge_statement(&exim(), &l, false, HOUR_MICROS).unwrap();
        limits.charge_statement(&exim(), &l, false, HOUR_MICROS).unwrap_err();
        limits.flush_user_resources();
        limits.charge_statement(&exim(), &l, false, HOUR_MICROS + 1).unwrap();
        // Other accounts have their own counters.
        limits.charge_statement(&AccountName::new("dovecot", "%"), &l, true, 5).unwrap();
    }

    #[test]
    fn connect_errors_block_a_host_until_flush_or_a_login() {
        let limits = NodeLimits::new(settings(100));
        for _ in 0..3 {
            limits.accept("10.0.0.9").unwrap();
            limits.connect_error("10.0.0.9");
        }
        let blocked = limits.accept("10.0.0.9").unwrap_err();
        assert_eq!(blocked.code(), 1129);
        assert_eq!(blocked.message, "Host '10.0.0.9' is blocked because of many connection errors; unblock with 'mysqladmin flush-hosts'");
        limits.accept("10.0.0.8").unwrap();
        for _ in 0..5 {
            limits.connect_error("127.0.0.1");
        }
        limits.accept("127.0.0.1").expect("loopback is never blocked");
        limits.flush_hosts();
        limits.accept("10.0.0.9").unwrap();
        // A successful login clears the count, so errors must come in a row to block.
        limits.connect_error("10.0.0.9");
        limits.connect_error("10.0.0.9");
        let _slot = limits.login(&exim(), &ResourceLimits::default(), false, "10.0.0.9", 0).unwrap();
        assert_eq!(limits.connect_errors("10.0.0.9"), 0);
    }

    #[test]
    fn prepared_statements_are_counted_node_wide_until_dropped() {
        let limits = NodeLimits::new(settings(100));
        let a = limits.prepare().unwrap();
        let _b = limits.prepare().unwrap();
        let refused = limits.prepare().unwrap_err();
        assert_eq!(refused.code(), 1461);
        assert_eq!(limits.open_prepared_statements(), 2);
        drop(a);
        limits.prepare().unwrap();
    }

    #[test]
    fn only_data_and_catalog_changes_are_updates() {
        assert!(changes_data("insert") && changes_data("DROP") && changes_data("Grant"));
        assert!(!changes_data("SELECT") && !changes_data("SHOW") && !changes_data("SET"));
    }
}
