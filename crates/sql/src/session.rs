//! One client connection's session: its variables, current database, warnings, transaction
//! status and prepared statements, and the statement loop
//! (split → pre-parse → parse → plan → execute).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sqlparser::tokenizer::Token;

use cairn_common::catalog::{Catalog, CatalogOp, CatalogOutcome, ColumnDef};
use cairn_common::error::{Error, ErrorKind};
use cairn_common::expr::{Warning, WarningLevel};
use cairn_common::ids::TableId;
use cairn_common::temporal::DateTime;
use cairn_common::{Value, bail, err};

use crate::backend::Backend;
use crate::compile::{Compiler, PlanContext, PlanEnv, Scope, ScopeColumn, Slot, SubqueryKind};
use crate::dml::{self, DeletePlan, InsertPlan, UpdatePlan, WriteMode};
use crate::engine::{Engine, Stats};
use crate::exec::{self, Bound, Exec, Snapshot};
use crate::lexer::{self, StatementText};
use crate::outcome::{ColumnMeta, Outcome, PreparedInfo, Row, RowSource, RowStream};
use crate::parse::{self, SetItem, SetValue, Show, Statement, TableName, VarScope};
use crate::plan::{self, QueryPlan};
use crate::show::{self, ShowResult};
use crate::types::{self, ColumnOrigin, SqlType, column_meta, conform};
use crate::variables::{self, DefaultValue, SessionVariables, VarDef};

/// KILL, FLUSH, LOCK TABLES, savepoints and the other statements dump tools send.
pub(crate) mod admin;
/// LOAD DATA [LOCAL] INFILE.
pub(crate) mod load_data;
/// MAX_QUERIES_PER_HOUR and MAX_UPDATES_PER_HOUR of the session's account.
mod limits;
// Stored routines: CALL, stored function calls, and the statements about routines.
mod routines;

/// Times a statement refused because a table's definition changed is planned again.
const MAX_REPLANS: u32 = 3;

/// MySQL's SERVER_STATUS_IN_TRANS.
pub const STATUS_IN_TRANS: u16 = 1;
/// MySQL's SERVER_STATUS_AUTOCOMMIT.
pub const STATUS_AUTOCOMMIT: u16 = 2;

/// Who is connected and how, as the handshake told the daemon.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub user: String,
    /// The client's host as the server saw it (for USER()).
    pub host: String,
    pub connection_id: u64,
    /// The database named in the handshake, if any (checked by the daemon with
    /// [`Session::use_database`]).
    pub database: Option<String>,
    /// CLIENT_FOUND_ROWS: affected rows count matched rows instead of changed rows.
    pub found_rows: bool,
    /// CLIENT_MULTI_STATEMENTS (COM_SET_OPTION may change it: [`Session::set_multi_statements`]).
    pub multi_statements: bool,
    /// The handshake's collation id (45, 224, 255, 33…); unknown ids fall back to
    /// utf8mb4_0900_ai_ci.
    pub collation_id: u16,
    /// The account the login matched (`CURRENT_USER()`), whose privileges are checked
    /// (`crate::privileges`); `None` for an internal session, which is not checked.
    pub account: Option<cairn_common::accounts::AccountName>,
    /// The connection's TLS protocol and cipher in MySQL's spelling (`TLSv1.3`,
    /// `TLS_AES_256_GCM_SHA384`), empty for a plain connection: SHOW STATUS `Ssl_version` and
    /// `Ssl_cipher`.
    pub ssl_version: String,
    pub ssl_cipher: String,
}

impl Default for SessionInfo {
    fn default() -> SessionInfo {
        SessionInfo {
            user: "root".into(),
            host: "localhost".into(),
            connection_id: 1,
            database: None,
            found_rows: false,
            multi_statements: true,
            collation_id: 255,
            account: None,
            ssl_version: String::new(),
            ssl_cipher: String::new(),
        }
    }
}

/// A planned statement that can be executed again without planning.
#[derive(Clone, Debug)]
pub(crate) enum Planned {
    Query(QueryPlan),
    Insert(InsertPlan),
    Update(UpdatePlan),
    Delete(DeletePlan),
}

/// A plan with what it depends on. Cloned for every execution (prepared statements, the plan
/// cache, routine bodies), so everything in it is shared, not copied.
#[derive(Clone, Debug)]
pub(crate) struct CachedPlan {
    pub planned: Arc<Planned>,
    pub slots: Arc<Vec<Slot>>,
    /// Tables and the definition versions the plan was built from.
    pub tables: Arc<[(TableId, u64)]>,
    /// Stored functions the plan calls, with their catalog versions.
    pub routines: Arc<[(cairn_common::routine::RoutineKey, u64)]>,
    /// The current database when planned (names resolve against it).
    pub database: Option<Arc<str>>,
    /// A query's result metadata for the result collation it was last built for (shared by
    /// the clones a prepared statement makes per execution).
    pub metadata: MetadataCache,
}

/// Result metadata cached with a plan, keyed by the result collation it was built for.
pub(crate) type MetadataCache = Arc<Mutex<Option<(u16, Arc<[ColumnMeta]>)>>>;

struct PreparedStatement {
    /// Shared, not copied, by executions (a parsed statement may be large and deep).
    statement: Arc<Statement>,
    text: Arc<StatementText>,
    param_count: u16,
    cached: Option<CachedPlan>,
    /// Counts the statement against the node's max_prepared_stmt_count while it is open.
    _slot: crate::limits::PreparedSlot,
}

/// One client connection's state.
pub struct Session<B: Backend> {
    engine: Arc<Engine<B>>,
    info: SessionInfo,
    database: Option<String>,
    vars: SessionVariables,
    user_vars: HashMap<String, Value>,
    /// `character_set_results` as a collation id (0: no conversion).
    result_collation: u16,
    /// Warnings (and the error) of the last statement, for SHOW WARNINGS.
    warnings: Arc<Mutex<Vec<Warning>>>,
    /// Counts of the statement before the current one, for @@warning_count / @@error_count.
    previous_counts: (u64, u64),
    last_insert_id: u64,
    found_rows: u64,
    row_count: i64,
    in_transaction: bool,
    /// Writes happened in the open transaction.
    transaction_writes: bool,
    /// The open transaction's coordinator state, created when a statement first needs it.
    txn: Option<crate::txn::SharedTxn>,
    /// `SET autocommit = 1` asked for the open transaction to be committed.
    commit_requested: bool,
    prepared: HashMap<u32, PreparedStatement>,
    next_statement_id: u32,
    statements_run: u64,
    multi_statements: bool,
    /// The statement being executed (SHOW PROCESSLIST).
    current_text: String,
    /// This session in the engine's process list (processlist.rs).
    pub(crate) process: Arc<crate::processlist::Process>,
    /// Savepoints and LOCK TABLES (session/admin.rs).
    admin: admin::AdminState,
    /// A LOAD DATA LOCAL waiting for its file (session/load_data.rs).
    load: load_data::LoadState,
    /// Account, active roles and privileges (`crate::privileges`).
    security: crate::privileges::SessionSecurity,
    /// `user@host` (USER(), CURRENT_USER()) and the server version, shared by snapshots.
    user_at_host: Arc<str>,
    /// The matched account as `user@host` (CURRENT_USER()).
    account_at_host: Arc<str>,
    version: Arc<str>,
    /// The routines running and the result sets their procedures produced.
    routines: routines::RoutineState,
}

impl<B: Backend> std::fmt::Debug for Session<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("connection_id", &self.info.connection_id).field("database", &self.database).finish_non_exhaustive()
    }
}

fn placeholders(text: &StatementText) -> Vec<(u64, u64)> {
    text.tokens
        .iter()
        .filter(|t| matches!(&t.token, Token::Placeholder(p) if p == "?"))
        .map(|t| (t.span.start.line, t.span.start.column))
        .collect()
}

/// Values of a SELECT's columns, for `SET @x = (SELECT …)` style reads and SHOW … WHERE.
fn show_scope(result: &ShowResult) -> Scope {
    Scope {
        columns: result
            .columns
            .iter()
            .map(|(name, ty)| ScopeColumn { table: None, database: None, name: name.clone(), ty: ty.clone(), origin: None, hidden: false })
            .collect(),
    }
}

/// Time-zone offset in seconds of a `time_zone` value (`SYSTEM` and `UTC` are +00:00).
fn zone_offset(zone: &str) -> Option<i64> {
    let z = zone.trim();
    if z.eq_ignore_ascii_case("SYSTEM") || z.eq_ignore_ascii_case("UTC") || z.eq_ignore_ascii_case("GMT") {
        return Some(0);
    }
    let (sign, rest) = match z.as_bytes().first()? {
        b'+' => (1, &z[1..]),
        b'-' => (-1, &z[1..]),
        _ => return None,
    };
    let (h, m) = rest.split_once(':')?;
    let (h, m): (i64, i64) = (h.parse().ok()?, m.parse().ok()?);
    if h > 14 || m > 59 || (h == 14 && m > 0) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

impl<B: Backend> Session<B> {
    pub fn new(engine: Arc<Engine<B>>, info: SessionInfo) -> Session<B> {
        Stats::bump(&engine.stats.connections);
        Stats::bump(&engine.stats.threads_connected);
        let multi_statements = info.multi_statements;
        let user_at_host: Arc<str> = format!("{}@{}", info.user, info.host).into();
        let account_at_host: Arc<str> = match &info.account {
            Some(account) => format!("{}@{}", account.user, account.host).into(),
            None => user_at_host.clone(),
        };
        let version: Arc<str> = engine.config.server_version.as_str().into();
        let process = Arc::new(crate::processlist::Process::new(info.connection_id, &info.user, &info.host, engine.config.clock.now_micros()));
        process.set_database(info.database.as_deref());
        engine.processes.register(process.clone());
        let security = crate::privileges::SessionSecurity::new(
            info.account.clone(),
            &info.user,
            &info.host,
            info.account.as_ref().map(|a| crate::privileges::default_roles(&engine.backend.catalog(), a)).unwrap_or_default(),
        );
        let mut session = Session {
            security,
            engine,
            database: info.database.clone(),
            info,
            vars: SessionVariables::default(),
            user_vars: HashMap::new(),
            result_collation: 255,
            warnings: Arc::new(Mutex::new(Vec::new())),
            previous_counts: (0, 0),
            last_insert_id: 0,
            found_rows: 0,
            row_count: -1,
            in_transaction: false,
            transaction_writes: false,
            txn: None,
            commit_requested: false,
            prepared: HashMap::new(),
            next_statement_id: 1,
            statements_run: 0,
            multi_statements,
            current_text: String::new(),
            process,
            admin: admin::AdminState::default(),
            load: load_data::LoadState::default(),
            user_at_host,
            account_at_host,
            version,
            routines: routines::RoutineState::default(),
        };
        session.apply_handshake_collation();
        session
    }

    /// The character set variables as the handshake's collation sets them.
    fn apply_handshake_collation(&mut self) {
        let id = if types::collation_name(self.info.collation_id).is_some() { self.info.collation_id } else { 255 };
        let name = types::collation_name(id).unwrap_or("utf8mb4_0900_ai_ci");
        let charset = types::charset_of_collation(id);
        for var in ["character_set_client", "character_set_connection", "character_set_results"] {
            if let Some(def) = variables::lookup(var) {
                self.vars.set(def, Value::text(charset));
            }
        }
        if let Some(def) = variables::lookup("collation_connection") {
            self.vars.set(def, Value::text(name));
        }
        self.result_collation = id;
    }

    pub fn engine(&self) -> &Arc<Engine<B>> {
        &self.engine
    }

    pub fn database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// SERVER_STATUS_IN_TRANS and SERVER_STATUS_AUTOCOMMIT, for every OK and EOF packet.
    pub fn status_flags(&self) -> u16 {
        let mut flags = 0;
        if self.in_transaction {
            flags |= STATUS_IN_TRANS;
        }
        if self.autocommit() {
            flags |= STATUS_AUTOCOMMIT;
        }
        flags
    }

    /// Warnings of the last statement (its EOF/OK warning count).
    pub fn warning_count(&self) -> u16 {
        self.lock_warnings().len().min(u16::MAX as usize) as u16
    }

    /// COM_SET_OPTION: turns multi-statement texts on or off.
    pub fn set_multi_statements(&mut self, on: bool) {
        self.multi_statements = on;
    }

    fn lock_warnings(&self) -> std::sync::MutexGuard<'_, Vec<Warning>> {
        self.warnings.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn autocommit(&self) -> bool {
        matches!(self.read_var_value("autocommit"), Some(Value::Int(1)))
    }

    fn sql_mode(&self) -> String {
        match self.read_var_value("sql_mode") {
            Some(Value::Text(s)) => s,
            _ => variables::DEFAULT_SQL_MODE.to_string(),
        }
    }

    pub(crate) fn has_mode(&self, mode: &str) -> bool {
        self.vars.sql_modes().contains(mode)
    }

    fn write_mode(&self) -> WriteMode {
        let has = |m: &str| self.has_mode(m);
        WriteMode {
            strict: has("STRICT_TRANS_TABLES") || has("STRICT_ALL_TABLES"),
            no_zero_date: has("NO_ZERO_DATE"),
            no_auto_value_on_zero: has("NO_AUTO_VALUE_ON_ZERO"),
        }
    }

    /// A session variable's value (session setting or default), for the engine's own use.
    fn read_var_value(&self, name: &'static str) -> Option<Value> {
        let def = variables::lookup(name)?;
        Some(match self.vars.get(def.name) {
            Some(v) => v.clone(),
            None => self.default_value(def),
        })
    }

    fn default_value(&self, def: &VarDef) -> Value {
        let config = &self.engine.config;
        match def.default {
            DefaultValue::Int(n) if def.kind == variables::VarKind::Bool => Value::Int(n as i64),
            DefaultValue::Int(n) => Value::UInt(n),
            DefaultValue::Str(s) => Value::text(s),
            DefaultValue::Config => match def.name {
                "version" => Value::text(&config.server_version),
                "version_comment" => Value::text(&config.version_comment),
                "server_id" => Value::UInt(config.node_id as u64),
                "have_ssl" | "have_openssl" => Value::text(if config.tls_configured { "YES" } else { "DISABLED" }),
                "ndb_autoincrement_prefetch_sz" => Value::UInt(config.auto_increment_prefetch),
                _ => Value::Null,
            },
            DefaultValue::Computed => match def.name {
                "warning_count" => Value::UInt(self.previous_counts.0),
                "error_count" => Value::UInt(self.previous_counts.1),
                "last_insert_id" | "identity" => Value::UInt(self.last_insert_id),
                "timestamp" => Value::Double(self.engine.config.clock.now_micros() as f64 / 1e6),
                _ => Value::Null,
            },
        }
    }

    /// Reads `@@[scope.]name`.
    fn system_var(&self, scope: VarScope, name: &str) -> Result<Value, Error> {
        let def = variables::lookup(name).ok_or_else(|| variables::unknown(name))?;
        match (scope, def.scope) {
            (VarScope::Session, variables::Scope::Global) => {
                bail!(ReadOnlyVariable, "Variable '{}' is a GLOBAL variable", def.name)
            }
            (VarScope::Global, variables::Scope::Session) => {
                bail!(ReadOnlyVariable, "Variable '{}' is a SESSION variable", def.name)
            }
            (VarScope::Global, _) => Ok(self.default_value(def)),
            _ => Ok(match self.vars.get(def.name) {
                Some(v) => v.clone(),
                None => self.default_value(def),
            }),
        }
    }

    fn snapshot(&self) -> Snapshot {
        let micros = self.engine.config.clock.now_micros();
        // Read in place rather than through read_var_value, which would copy the default
        // ('SYSTEM', which is UTC here) into a new string for every statement.
        let zone = match self.vars.get("time_zone") {
            Some(Value::Text(z)) => zone_offset(z).unwrap_or(0),
            _ => 0,
        };
        let utc_now = DateTime::from_unix_micros(micros).unwrap_or(DateTime::ZERO);
        let now = DateTime::from_unix_micros(micros + zone * 1_000_000).unwrap_or(utc_now);
        Snapshot {
            now,
            utc_now,
            database: self.database.clone(),
            user: self.user_at_host.clone(),
            account: self.account_at_host.clone(),
            connection_id: self.info.connection_id,
            last_insert_id: self.last_insert_id,
            found_rows: self.found_rows,
            row_count: self.row_count,
            rng: self.random_seed(micros),
            version: self.version.clone(),
            authorization: self.security.authorization(&self.engine.backend.catalog()),
        }
    }

    /// RAND()'s seed for a statement starting at `micros`.
    fn random_seed(&self, micros: i64) -> u64 {
        (self.info.connection_id.wrapping_mul(0x9E37_79B9_7F4A_7C15)) ^ (micros as u64) ^ self.statements_run.rotate_left(17)
    }

    /// Brings a snapshot taken earlier in the same statement (a routine's, reused across the
    /// expressions of its body) up to what [`Self::snapshot`] would give now; the clock is
    /// the caller's business (a routine keeps its calling statement's). The authorization is
    /// left as it was: it only filters information_schema, which such expressions do not read.
    pub(crate) fn refresh_snapshot(&self, snapshot: &mut Snapshot) {
        snapshot.last_insert_id = self.last_insert_id;
        snapshot.found_rows = self.found_rows;
        snapshot.row_count = self.row_count;
        snapshot.rng = self.random_seed(self.engine.config.clock.now_micros());
        if snapshot.database != self.database {
            snapshot.database = self.database.clone();
        }
    }

    fn group_concat_max_len(&self) -> usize {
        match self.read_var_value("group_concat_max_len") {
            Some(v) => v.to_u64().unwrap_or(1024) as usize,
            None => 1024,
        }
    }

    /// Runs COM_QUERY: every statement of the text, stopping after the first error.
    pub async fn execute(&mut self, sql: &str) -> Vec<Outcome> {
        self.execute_with_status(sql).await.into_iter().map(|(outcome, _)| outcome).collect()
    }

    /// Runs COM_QUERY; each outcome comes with the status flags (IN_TRANS, AUTOCOMMIT) as its
    /// statement left them, for the packets of a multi-statement's results. A LOAD DATA LOCAL
    /// ends the list with [`Outcome::LocalInfile`]; the statements after it run when its file
    /// has arrived ([`Session::local_infile_end`]).
    pub async fn execute_with_status(&mut self, sql: &str) -> Vec<(Outcome, u16)> {
        let statements = match crate::parser_memory::check(sql, self.engine.config.parser_max_mem_size).and_then(|()| lexer::split(sql)) {
            Ok(s) => s,
            Err(e) => return vec![(self.fail(e), self.status_flags())],
        };
        if statements.is_empty() {
            return vec![(self.fail(Error::new(ErrorKind::EmptyQuery, "Query was empty")), self.status_flags())];
        }
        if statements.len() > 1 && !self.multi_statements {
            // As MySQL: without CLIENT_MULTI_STATEMENTS the second statement is a syntax error.
            return vec![(self.fail(lexer::syntax_error_near(&second_statement_text(sql, &statements), 1)), self.status_flags())];
        }
        self.run_statements(statements).await
    }

    /// Runs statements in order, stopping after the first error or at a LOAD DATA LOCAL (which
    /// keeps the rest for after its file).
    pub(crate) async fn run_statements(&mut self, statements: Vec<StatementText>) -> Vec<(Outcome, u16)> {
        let mut outcomes = Vec::with_capacity(statements.len());
        let mut rest = statements.into_iter();
        while let Some(text) = rest.next() {
            let outcome = self.run_text(&text).await;
            // Result sets of the procedures a CALL ran come before the CALL's own answer.
            let status = self.status_flags();
            outcomes.extend(self.routines.take_results().into_iter().map(|o| (o, status)));
            let failed = outcome.is_error();
            let waits_for_file = matches!(outcome, Outcome::LocalInfile(_));
            outcomes.push((outcome, self.status_flags()));
            if waits_for_file {
                self.defer_statements(rest.collect());
                break;
            }
            if failed {
                break;
            }
        }
        outcomes
    }

    async fn run_text(&mut self, text: &StatementText) -> Outcome {
        let outcome = self.run_text_inner(text).await;
        if outcome.is_error() {
            let aborts = matches!(&outcome, Outcome::Error(e) if crate::txn::aborts_transaction(e));
            if aborts && self.txn.is_some() {
                let _ = self.end_transaction(false).await;
            }
        }
        outcome
    }

    async fn run_text_inner(&mut self, text: &StatementText) -> Outcome {
        Stats::bump(&self.engine.stats.questions);
        if let Err(e) = self.charge_statement(text) {
            return self.fail(e);
        }
        // `SELECT f(literals)` of a stored function (Exim's greylisting) skips parse and plan.
        if let Some(outcome) = self.fast_function_call(text).await {
            return outcome;
        }
        // Repeated statements with inlined values reuse a plan (cache.rs), unless the session
        // turned the cache off (`SET cairn_plan_cache = OFF`).
        let cache_on = !matches!(self.read_var_value("cairn_plan_cache"), Some(Value::Int(0)));
        if let Some(normalized) = crate::cache::normalize(text).filter(|_| cache_on) {
            let key = crate::cache::PlanKey { text: normalized.key.clone(), database: self.database.clone(), modes: self.planning_modes() };
            let catalog = self.engine.backend.catalog();
            let plan = match self.engine.plans.get(&key) {
                Some(p) if self.plan_is_current(&p, &catalog) => {
                    Stats::bump(&self.engine.stats.plan_cache_hits);
                    Some(p)
                }
                stale => {
                    Stats::bump(&self.engine.stats.plan_cache_misses);
                    if stale.is_some() {
                        self.engine.plans.remove(&key);
                    }
                    // A statement that does not plan with parameters takes the ordinary path,
                    // which reports its errors as written.
                    match parse::parse(&normalized.text).ok().map(|s| self.plan_statement(&s, &normalized.text)) {
                        Some(Ok(Some(plan))) => {
                            self.engine.plans.insert(key.clone(), plan.clone());
                            Some(plan)
                        }
                        _ => None,
                    }
                }
            };
            if let Some(plan) = plan {
                self.current_text = text.text.clone();
                self.process.set_info(&self.current_text);
                match self.run_with_plan(plan, &normalized.params).await {
                    Ok(outcome) => return outcome,
                    // A schema change ran meanwhile: plan the text afresh (below), which waits
                    // for the new definition and retries.
                    Err(e) if e.kind == ErrorKind::TableDefinitionChanged => self.engine.plans.remove(&key),
                    Err(e) => return self.fail(e),
                }
            }
        }
        let statement = match parse::parse(text) {
            Ok(s) => s,
            Err(e) => return self.fail(e),
        };
        if !placeholders(text).is_empty() {
            // `?` only means something in a prepared statement.
            let at = text.tokens.iter().find(|t| matches!(&t.token, Token::Placeholder(_)));
            return self.fail(lexer::syntax_error_at(text, at));
        }
        self.current_text = text.text.clone();
        self.process.set_info(&self.current_text);
        match self.run_statement(&statement, text, &[], None).await {
            Ok((outcome, _)) => outcome,
            Err(e) => self.fail(e),
        }
    }

    /// Records an error as the statement's diagnostics and turns it into an outcome.
    fn fail(&mut self, error: Error) -> Outcome {
        let list = Arc::new(Mutex::new(vec![Warning { level: WarningLevel::Error, code: error.code(), message: error.message.clone() }]));
        self.rotate_warnings(list);
        Outcome::Error(error)
    }

    /// Replaces the diagnostics list, remembering the previous counts.
    fn rotate_warnings(&mut self, list: Arc<Mutex<Vec<Warning>>>) {
        let previous = {
            let old = self.lock_warnings();
            let errors = old.iter().filter(|w| w.level == WarningLevel::Error).count() as u64;
            (old.len() as u64, errors)
        };
        self.previous_counts = previous;
        self.warnings = list;
    }

    /// Plans (or reuses a cached plan of) a plannable statement.
    fn plan_statement(&self, statement: &Statement, text: &StatementText) -> Result<Option<CachedPlan>, Error> {
        self.plan_statement_with(statement, text, None)
    }

    /// Plans a statement; `locals` are the variables of the routine it belongs to.
    fn plan_statement_with(
        &self,
        statement: &Statement,
        text: &StatementText,
        locals: Option<Arc<crate::routine::Locals>>,
    ) -> Result<Option<CachedPlan>, Error> {
        let catalog = self.engine.backend.catalog();
        let system_var = |scope: VarScope, name: &str| self.system_var(scope, name);
        let user_var = |name: &str| self.user_vars.get(name).cloned().unwrap_or(Value::Null);
        let env = PlanEnv {
            catalog: &catalog,
            database: self.database.as_deref(),
            system_var: &system_var,
            user_var: &user_var,
            pipes_as_concat: self.has_mode("PIPES_AS_CONCAT"),
            only_full_group_by: self.has_mode("ONLY_FULL_GROUP_BY"),
            source: Some(text),
        };
        let mut ctx = PlanContext::new(env, if locals.is_some() { Vec::new() } else { placeholders(text) });
        ctx.locals = locals;
        let mut planned = match statement {
            Statement::Query(q) => Planned::Query(plan::plan_query(&mut ctx, q)?),
            Statement::Insert(i) => Planned::Insert(dml::plan_insert(&mut ctx, i)?),
            Statement::Update(u) => Planned::Update(dml::plan_update(&mut ctx, u)?),
            Statement::Delete(d) => Planned::Delete(dml::plan_delete(&mut ctx, d)?),
            _ => return Ok(None),
        };
        if let Planned::Insert(InsertPlan { table, .. }) | Planned::Update(UpdatePlan { table, .. }) | Planned::Delete(DeletePlan { table, .. }) = &planned {
            crate::information_schema::check_writable(table, &self.info.user, &self.info.host)?;
        }
        // Every expression is evaluated recursively, here and on data nodes: bound its depth.
        let mut depth = Ok(());
        let mut check = |e: &mut cairn_common::expr::Expr| {
            if depth.is_ok() {
                depth = crate::compile::check_depth(e);
            }
        };
        dml::for_each_planned_expr(&mut planned, &mut check);
        for slot in &mut ctx.slots {
            if let Slot::Subquery { plan, .. } = slot {
                exec::for_each_expr(&mut plan.root, &mut check);
            }
        }
        depth?;
        Ok(Some(CachedPlan {
            planned: Arc::new(planned),
            slots: Arc::new(ctx.slots),
            tables: ctx.tables.into(),
            routines: ctx.routines.into(),
            database: self.database.as_deref().map(Arc::from),
            metadata: Arc::new(Mutex::new(None)),
        }))
    }

    /// Waits (briefly) until this node's catalog no longer matches the plan's table versions.
    async fn wait_for_new_definitions(&self, plan: &CachedPlan) {
        for _ in 0..100 {
            if !self.plan_is_current(plan, &self.engine.backend.catalog()) {
                return;
            }
            self.engine.backend.pause(20).await;
        }
    }

    /// The sql_mode flags a plan depends on, as bits of the plan cache key.
    fn planning_modes(&self) -> u8 {
        u8::from(self.has_mode("ONLY_FULL_GROUP_BY")) | (u8::from(self.has_mode("PIPES_AS_CONCAT")) << 1)
    }

    fn plan_is_current(&self, cached: &CachedPlan, catalog: &Catalog) -> bool {
        cached.database.as_deref() == self.database.as_deref() && self.dependencies_current(&cached.tables, &cached.routines, catalog)
    }

    /// Binds a plan's slots: parameters, variables, and the results of its subqueries.
    async fn bind(&mut self, slots: &[Slot], params: &[Value], exec: &mut Exec<B>) -> Result<(), Error> {
        self.bind_slots(slots, params, exec, false).await.map(|_| ())
    }

    /// Binds slots; with `lazy`, stored function calls are left unbound (their indexes are
    /// returned) for an evaluation that computes them only when it reaches them
    /// (routines::eval_lazily).
    async fn bind_slots(&mut self, slots: &[Slot], params: &[Value], exec: &mut Exec<B>, lazy: bool) -> Result<Vec<u32>, Error> {
        let mut unbound = Vec::new();
        let mut bound = Bound { values: Vec::with_capacity(slots.len()), lists: HashMap::new() };
        for (i, slot) in slots.iter().enumerate() {
            let value = match slot {
                Slot::Param(n) => params.get(*n as usize).cloned().ok_or_else(|| err!(WrongArguments, "Incorrect arguments to mysqld_stmt_execute"))?,
                Slot::SystemVar { scope, name } => self.system_var(*scope, name)?,
                Slot::UserVar(name) => self.user_vars.get(name).cloned().unwrap_or(Value::Null),
                Slot::UtcNow { fsp } => {
                    let now = exec.snapshot.utc_now;
                    Value::DateTime(now.round_to_fsp(*fsp).unwrap_or(now))
                }
                Slot::UnixNow => Value::Int(exec.snapshot.utc_now.to_unix_seconds().unwrap_or(0)),
                // Bound per row by the Apply operator that runs the correlated subquery.
                Slot::Outer { .. } | Slot::Correlated { .. } => Value::Null,
                Slot::Routine(_) if lazy => {
                    unbound.push(i as u32);
                    Value::Null
                }
                Slot::Routine(call) => {
                    // The arguments read earlier slots only (compile::stored_function).
                    exec.bound = Arc::new(bound.clone());
                    let mut args = Vec::with_capacity(call.args.len());
                    for a in &call.args {
                        args.push(exec.eval(a, &[])?);
                    }
                    let now = (exec.snapshot.now, exec.snapshot.utc_now);
                    self.call_function(call, args, now).await?
                }
                Slot::Subquery { kind, plan } => {
                    // Earlier slots (including this subquery's own) are bound already.
                    exec.bound = Arc::new(bound.clone());
                    let rows = exec::collect_query(&plan.root, exec).await?;
                    match kind {
                        SubqueryKind::Scalar => match rows.len() {
                            0 => Value::Null,
                            1 => rows[0].first().cloned().unwrap_or(Value::Null),
                            _ => bail!(SubqueryMultipleRows, "Subquery returns more than 1 row"),
                        },
                        SubqueryKind::Exists => Value::Int(i64::from(!rows.is_empty())),
                        SubqueryKind::InList => {
                            bound.lists.insert(i as u32, rows.into_iter().filter_map(|r| r.into_iter().next()).collect());
                            Value::Null
                        }
                    }
                }
            };
            bound.values.push(value);
        }
        exec.bound = Arc::new(bound);
        Ok(unbound)
    }

    fn new_exec(&mut self, warnings: Arc<Mutex<Vec<Warning>>>) -> Exec<B> {
        // Inside a transaction (explicit, or autocommit off) statements run in it.
        let txn = if self.in_transaction || !self.autocommit() {
            let engine = &self.engine;
            Some(self.txn.get_or_insert_with(|| Arc::new(Mutex::new(crate::txn::Transaction::new(engine.next_txn_id())))).clone())
        } else {
            None
        };
        let id_engine = self.engine.clone();
        let access = crate::txn::Access {
            backend: self.engine.backend.clone(),
            txn,
            lock: None,
            failpoint: self.engine.config.failpoint.clone(),
            next_id: Arc::new(move || id_engine.next_txn_id()),
        };
        Exec {
            access,
            engine: self.engine.clone(),
            bound: Arc::new(Bound::default()),
            snapshot: self.snapshot(),
            warnings,
            group_concat_max_len: self.group_concat_max_len(),
            strict: false,
            interrupt: None,
        }
    }

    /// Statements that read or write tables open a transaction when autocommit is off.
    fn touch_transaction(&mut self, writes: bool) {
        if !self.autocommit() {
            self.in_transaction = true;
        }
        if writes && self.in_transaction {
            self.transaction_writes = true;
        }
    }

    /// The open transaction of this statement, if it runs in one.
    fn current_txn(&self, exec: &Exec<B>) -> Option<crate::txn::SharedTxn> {
        exec.access.txn.clone().filter(|_| self.in_transaction || !self.autocommit())
    }

    /// Ends the open transaction: commits (COMMIT, and implicitly before DDL, BEGIN and
    /// `SET autocommit = 1`) or rolls back. A failed commit leaves no transaction open.
    async fn end_transaction(&mut self, commit: bool) -> Result<(), Error> {
        self.in_transaction = false;
        self.transaction_writes = false;
        self.commit_requested = false;
        let Some(txn) = self.txn.take() else { return Ok(()) };
        if commit {
            crate::txn::commit(self.engine.backend.as_ref(), &txn, self.engine.config.failpoint.as_ref()).await
        } else {
            crate::txn::rollback(self.engine.backend.as_ref(), &txn).await;
            Ok(())
        }
    }

    /// The open transaction's rollback, for a connection that closes with one open (the
    /// caller runs it: a session cannot await in drop).
    pub fn abandon(&mut self) -> Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>> {
        let txn = self.txn.take()?;
        self.in_transaction = false;
        let engine = self.engine.clone();
        Some(Box::pin(async move { crate::txn::rollback(engine.backend.as_ref(), &txn).await }))
    }

    /// Runs one parsed statement. Returns the outcome and, for plannable statements, the plan
    /// used (so that a prepared statement can keep it).
    async fn run_statement(
        &mut self,
        statement: &Statement,
        text: &StatementText,
        params: &[Value],
        cached: Option<CachedPlan>,
    ) -> Result<(Outcome, Option<CachedPlan>), Error> {
        // Not interruptible until run_planned says it is a read outside a transaction.
        self.set_interruptible(false);
        self.statements_run += 1;
        let diagnostic = matches!(statement, Statement::Show(Show::Warnings { .. }));
        let warnings = if diagnostic { self.warnings.clone() } else { Arc::new(Mutex::new(Vec::new())) };
        if !diagnostic {
            self.rotate_warnings(warnings.clone());
        }
        self.security.check_statement(&self.engine.backend.catalog(), statement, self.database.as_deref())?;
        let mut exec = self.new_exec(warnings.clone());
        match statement {
            Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                let mut cached = cached;
                let mut attempt = 0;
                loop {
                    let catalog = self.engine.backend.catalog();
                    let plan = match cached.take() {
                        Some(c) if self.plan_is_current(&c, &catalog) => c,
                        _ => self.plan_statement_synced(statement, text).await?.ok_or_else(|| Error::internal("statement without a plan"))?,
                    };
                    self.bind(&plan.slots, params, &mut exec).await?;
                    match self.run_planned(&plan, &mut exec).await {
                        // Planned with a definition a schema change replaced, and refused
                        // before anything was applied (alter.rs): plan again and retry.
                        Err(e) if e.kind == ErrorKind::TableDefinitionChanged && attempt < MAX_REPLANS => {
                            attempt += 1;
                            self.wait_for_new_definitions(&plan).await;
                            exec = self.new_exec(warnings.clone());
                        }
                        Err(e) => return Err(e),
                        Ok(outcome) => return Ok((outcome, Some(plan))),
                    }
                }
            }
            other => Ok((self.run_other(other, text, &mut exec, params).await?, None)),
        }
    }

    /// A query's result metadata, built once per result collation.
    fn metadata(&self, plan: &CachedPlan, q: &QueryPlan) -> Arc<[ColumnMeta]> {
        let mut cache = plan.metadata.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((collation, columns)) = cache.as_ref()
            && *collation == self.result_collation
        {
            return columns.clone();
        }
        let columns: Arc<[ColumnMeta]> =
            q.columns.iter().map(|c| column_meta(&c.name, &c.ty, c.origin.as_ref(), self.result_collation)).collect::<Vec<_>>().into();
        *cache = Some((self.result_collation, columns.clone()));
        columns
    }

    /// Runs a plannable statement with a plan at hand (from the plan cache).
    async fn run_with_plan(&mut self, plan: CachedPlan, params: &[Value]) -> Result<Outcome, Error> {
        self.set_interruptible(false);
        self.statements_run += 1;
        let warnings = Arc::new(Mutex::new(Vec::new()));
        self.rotate_warnings(warnings.clone());
        let mut exec = self.new_exec(warnings);
        self.bind(&plan.slots, params, &mut exec).await?;
        self.run_planned(&plan, &mut exec).await
    }

    async fn run_planned(&mut self, plan: &CachedPlan, exec: &mut Exec<B>) -> Result<Outcome, Error> {
        self.security.check_plan(&self.engine.backend.catalog(), &plan.planned, &plan.tables)?;
        // Only a read outside a transaction may be dropped half way (KILL QUERY): a write or
        // anything in a transaction could leave a request or a commit half done.
        let interruptible = matches!(plan.planned.as_ref(), Planned::Query(_)) && exec.access.txn.is_none();
        self.set_interruptible(interruptible);
        // The executor's long loops stop at KILL too (processlist.rs), in the same statements.
        exec.interrupt = interruptible.then(|| self.process.interrupt_requested.clone());
        match plan.planned.as_ref() {
            Planned::Query(q) => {
                Stats::bump(&self.engine.stats.com_select);
                if !matches!(q.root, plan::Node::Single) && !is_tableless(&q.root) {
                    self.touch_transaction(false);
                }
                let columns = self.metadata(plan, q);
                let types: Vec<_> = columns.iter().map(|c| c.ty.clone()).collect();
                exec.access.lock = q.lock;
                let stream = exec::run_query(&q.root, exec).await?;
                self.row_count = -1;
                // Key lookups and table-less queries are small: answer them whole, so their
                // warnings and row count are known; scans stream.
                if is_small(&q.root) {
                    let mut stream = stream;
                    let mut rows = Vec::new();
                    while let Some(batch) = stream.next_batch().await {
                        for row in batch? {
                            rows.push(conform_row(row, &types));
                        }
                    }
                    self.found_rows = rows.len() as u64;
                    let warnings = self.warning_count();
                    return Ok(Outcome::Rows { columns, rows: RowSource::Rows(rows), warnings });
                }
                let warnings = self.warning_count();
                Ok(Outcome::Rows { columns, rows: RowSource::Stream(Box::new(ConformStream { input: stream, types })), warnings })
            }
            Planned::Insert(p) => {
                Stats::bump(&self.engine.stats.com_insert);
                self.touch_transaction(true);
                let mode = self.write_mode();
                let result = dml::execute_insert(p, exec, &mode).await?;
                if let Some(id) = result.generated_id {
                    self.last_insert_id = id;
                }
                let o = &result.outcome;
                let affected = o.inserted + o.deleted + if self.info.found_rows { o.matched } else { o.changed } + o.upserted;
                self.row_count = affected as i64;
                let warnings = self.warning_count();
                let multi = matches!(p.source, dml::InsertSource::Select(_)) || matches!(&p.source, dml::InsertSource::Values(rows) if rows.len() > 1);
                let info = if multi {
                    let duplicates = match p.on_duplicate {
                        cairn_common::ops::OnDuplicate::Ignore => o.ignored,
                        cairn_common::ops::OnDuplicate::Replace => o.deleted,
                        cairn_common::ops::OnDuplicate::Update(_) => o.matched,
                        cairn_common::ops::OnDuplicate::Error => 0,
                    };
                    format!("Records: {}  Duplicates: {duplicates}  Warnings: {warnings}", result.rows)
                } else {
                    String::new()
                };
                Ok(Outcome::Ok { affected_rows: affected, last_insert_id: result.insert_id, info, warnings })
            }
            Planned::Update(p) => {
                Stats::bump(&self.engine.stats.com_update);
                self.touch_transaction(true);
                let result = dml::execute_update(p, exec).await?;
                let o = &result.outcome;
                let affected = if self.info.found_rows { o.matched } else { o.changed };
                self.row_count = affected as i64;
                let warnings = self.warning_count();
                let info = format!("Rows matched: {}  Changed: {}  Warnings: {warnings}", o.matched, o.changed);
                Ok(Outcome::Ok { affected_rows: affected, last_insert_id: 0, info, warnings })
            }
            Planned::Delete(p) => {
                Stats::bump(&self.engine.stats.com_delete);
                self.touch_transaction(true);
                let result = dml::execute_delete(p, exec).await?;
                self.row_count = result.outcome.deleted as i64;
                let warnings = self.warning_count();
                Ok(Outcome::Ok { affected_rows: result.outcome.deleted, last_insert_id: 0, info: String::new(), warnings })
            }
        }
    }

    fn ok_with_warnings(&mut self, affected_rows: u64) -> Outcome {
        let warnings = self.warning_count();
        Outcome::Ok { affected_rows, last_insert_id: 0, info: String::new(), warnings }
    }

    fn note(&self, kind: ErrorKind, message: String) {
        let mut w = self.lock_warnings();
        w.push(Warning { level: WarningLevel::Note, code: kind.code(), message });
    }

    async fn ddl(&mut self, op: CatalogOp) -> Result<CatalogOutcome, Error> {
        self.security.check_catalog_op(&self.engine.backend.catalog(), &op)?;
        self.end_transaction(true).await?;
        let description = crate::privileges::describe_catalog_op(&op);
        let outcome = self.engine.backend.ddl(op).await;
        crate::privileges::audit_change(&self.info, self.engine.config.node_id, &description, outcome.as_ref().err());
        let outcome = outcome?;
        if let CatalogOutcome::Unchanged { note: Some((kind, message)) } = &outcome {
            self.note(*kind, message.clone());
        }
        Ok(outcome)
    }

    fn env_database(&self, name: &Option<String>) -> Result<String, Error> {
        match name.clone().or_else(|| self.database.clone()) {
            Some(db) => Ok(db),
            None => bail!(NoDatabaseSelected, "No database selected"),
        }
    }

    fn resolve(&self, catalog: &Catalog, name: &TableName) -> Result<cairn_common::catalog::TableDef, Error> {
        let db = self.env_database(&name.database)?;
        if crate::information_schema::is_name(&db) {
            return crate::information_schema::resolve(&name.name).map(|t| t.as_ref().clone());
        }
        catalog.table_by_name(&db, &name.name).cloned().ok_or_else(|| err!(NoSuchTable, "Table '{db}.{}' doesn't exist", name.name))
    }

    async fn run_other(&mut self, statement: &Statement, text: &StatementText, exec: &mut Exec<B>, params: &[Value]) -> Result<Outcome, Error> {
        match statement {
            Statement::CreateDatabase { name, if_not_exists, charset, collation } => {
                check_name(name, "database")?;
                let (cs, coll) = crate::ddl::database_charset(charset.as_deref(), collation.as_deref(), ("utf8mb4", "utf8mb4_0900_ai_ci"))?;
                let outcome = self.ddl(CatalogOp::CreateDatabase { name: name.clone(), charset: cs, collation: coll, if_not_exists: *if_not_exists }).await?;
                let affected = u64::from(matches!(outcome, CatalogOutcome::DatabaseCreated));
                Ok(self.ok_with_warnings(affected))
            }
            Statement::DropDatabase { name, if_exists } => {
                let outcome = self.ddl(CatalogOp::DropDatabase { name: name.clone(), if_exists: *if_exists }).await?;
                let affected = match &outcome {
                    CatalogOutcome::DatabaseDropped { tables } => {
                        for t in tables {
                            self.engine.forget_auto_increment(*t);
                        }
                        tables.len() as u64
                    }
                    _ => 0,
                };
                if self.database.as_deref() == Some(name.as_str()) && matches!(outcome, CatalogOutcome::DatabaseDropped { .. }) {
                    self.database = None;
                    self.process.set_database(None);
                }
                Ok(self.ok_with_warnings(affected))
            }
            Statement::CreateTable { table, partitioning } => {
                let (def, if_not_exists) = {
                    let catalog = self.engine.backend.catalog();
                    let system_var = |scope: VarScope, name: &str| self.system_var(scope, name);
                    let user_var = |name: &str| self.user_vars.get(name).cloned().unwrap_or(Value::Null);
                    let env = PlanEnv {
                        catalog: &catalog,
                        database: self.database.as_deref(),
                        system_var: &system_var,
                        user_var: &user_var,
                        pipes_as_concat: false,
                        only_full_group_by: false,
                        source: None,
                    };
                    let mut ctx = PlanContext::new(env, Vec::new());
                    let defaults =
                        |db: &str| catalog.database(db).map(|d| crate::ddl::DatabaseDefaults { charset: d.charset.clone(), collation: d.collation.clone() });
                    crate::ddl::table_def(&mut ctx, table, partitioning.as_ref(), &defaults)?
                };
                self.ddl(CatalogOp::CreateTable { table: def, if_not_exists }).await?;
                Ok(self.ok_with_warnings(0))
            }
            Statement::DropTable { tables, if_exists } => {
                // As MySQL 8: without IF EXISTS, one missing table fails the statement and
                // drops nothing; with it, each missing table is a note.
                let catalog = self.engine.backend.catalog();
                let mut names = Vec::with_capacity(tables.len());
                let mut missing = Vec::new();
                for t in tables {
                    let db = self.env_database(&t.database)?;
                    if catalog.table_by_name(&db, &t.name).is_none() {
                        missing.push(format!("{db}.{}", t.name));
                    }
                    names.push((db, t.name.clone()));
                }
                if !missing.is_empty() && !if_exists {
                    bail!(UnknownTableDrop, "Unknown table '{}'", missing.join(","));
                }
                for (database, name) in names {
                    if let CatalogOutcome::TableDropped { id } = self.ddl(CatalogOp::DropTable { database, name, if_exists: true }).await? {
                        self.engine.forget_auto_increment(id);
                    }
                }
                Ok(self.ok_with_warnings(0))
            }
            Statement::Truncate(name) => {
                let catalog = self.engine.backend.catalog();
                let table = self.resolve(&catalog, name)?;
                self.end_transaction(true).await?;
                exec.access.txn = None;
                dml::truncate(exec, &table).await?;
                Ok(self.ok_with_warnings(0))
            }
            Statement::Use(db) => {
                self.use_database(db).await?;
                Ok(Outcome::ok())
            }
            Statement::Set(items) => {
                for item in items {
                    self.run_set(item, text, params, exec).await?;
                }
                if self.commit_requested {
                    self.end_transaction(true).await?;
                }
                Ok(self.ok_with_warnings(0))
            }
            Statement::Show(show) => self.run_show(show, text, params).await,
            Statement::Begin => {
                self.end_transaction(true).await?;
                self.in_transaction = true;
                Ok(Outcome::ok())
            }
            Statement::Commit => {
                self.end_transaction(true).await?;
                Ok(Outcome::ok())
            }
            Statement::Rollback => {
                self.end_transaction(false).await?;
                Ok(self.ok_with_warnings(0))
            }
            Statement::CreateIndex(_) | Statement::DropIndex { .. } | Statement::AlterTable(_) | Statement::RenameTable(_) => {
                // Online schema changes (alter.rs); DDL commits an open transaction first.
                self.end_transaction(true).await?;
                let catalog = self.engine.backend.catalog();
                for plan in crate::alter::plan_statement(&catalog, statement, self.database.as_deref())? {
                    let change = format!("ALTER TABLE {}.{}", plan.database, plan.name);
                    let result = crate::alter::run(exec, plan).await;
                    crate::privileges::audit_change(&self.info, self.engine.config.node_id, &change, result.as_ref().err());
                    result?;
                }
                Ok(self.ok_with_warnings(0))
            }
            Statement::Admin(a) => self.run_admin(a).await,
            Statement::LoadData(l) => self.start_load_data(l).await,
            Statement::Routine(r) => self.run_routine_statement(r, text, exec, params).await,
            Statement::Do(exprs) => {
                for e in exprs {
                    self.eval_set_value(e, text, params, exec, false).await?;
                }
                Ok(self.ok_with_warnings(0))
            }
            Statement::Explain(inner) => {
                // Planned, not run: subqueries stay unevaluated, parameters print as `?`.
                let plan = self.plan_statement(inner, text)?.ok_or_else(|| Error::internal("EXPLAIN of a statement without a plan"))?;
                self.security.check_plan(&self.engine.backend.catalog(), &plan.planned, &plan.tables)?;
                let result = crate::explain::explain(&plan.planned, &plan.slots, exec).await?;
                Ok(self.rows_outcome(result))
            }
            Statement::Savepoint(name) => {
                // A savepoint outside a transaction is accepted and forgotten, as in MySQL.
                if let Some(txn) = self.current_txn(exec) {
                    let mut t = txn.lock().unwrap_or_else(|e| e.into_inner());
                    let mark = t.mark();
                    t.savepoints.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
                    t.savepoints.push((name.clone(), mark));
                }
                Ok(Outcome::ok())
            }
            Statement::RollbackToSavepoint(name) => {
                let missing = || err!(RoutineDoesNotExist, "SAVEPOINT {name} does not exist");
                let txn = self.current_txn(exec).ok_or_else(missing)?;
                let mark = {
                    let mut t = txn.lock().unwrap_or_else(|e| e.into_inner());
                    let at = t.savepoints.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)).ok_or_else(missing)?;
                    let mark = t.savepoints[at].1;
                    t.savepoints.truncate(at + 1);
                    mark
                };
                crate::txn::rollback_to(self.engine.backend.as_ref(), &txn, mark).await?;
                Ok(Outcome::ok())
            }
            Statement::ReleaseSavepoint(name) => {
                let missing = || err!(RoutineDoesNotExist, "SAVEPOINT {name} does not exist");
                let txn = self.current_txn(exec).ok_or_else(missing)?;
                let mut t = txn.lock().unwrap_or_else(|e| e.into_inner());
                let at = t.savepoints.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)).ok_or_else(missing)?;
                t.savepoints.truncate(at);
                Ok(Outcome::ok())
            }
            Statement::Unsupported(what) => Err(Error::not_supported(what)),
            Statement::Account(account) => self.run_account(account).await,
            Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => {
                Err(Error::internal("a plannable statement reached run_other"))
            }
        }
    }

    /// Evaluates an expression of a SET (no tables in scope).
    async fn eval_set_value(&mut self, e: &sqlparser::ast::Expr, text: &StatementText, params: &[Value], exec: &mut Exec<B>, system: bool) -> Result<Value, Error> {
        // `SET autocommit = ON`, `SET sql_mode = TRADITIONAL`: a bare word is its name.
        if system
            && let sqlparser::ast::Expr::Identifier(i) = e
                && !i.value.starts_with('@') {
                    return Ok(Value::text(&i.value));
                }
        // Bound like a statement's slots: variables, subqueries and stored function calls.
        self.eval_standalone(e, text, params, exec).await
    }

    async fn run_set(&mut self, item: &SetItem, text: &StatementText, params: &[Value], exec: &mut Exec<B>) -> Result<(), Error> {
        match item {
            SetItem::Names { charset, collation } => {
                let (cs, coll) = match charset {
                    None => ("utf8mb4".to_string(), "utf8mb4_0900_ai_ci".to_string()),
                    Some(c) => {
                        let cs = types::normalize_charset(c).ok_or_else(|| err!(UnknownCharacterSet, "Unknown character set: '{c}'"))?;
                        let coll = match collation {
                            Some(k) => {
                                let k2 = types::normalize_collation(k).ok_or_else(|| err!(UnknownCollation, "Unknown collation: '{k}'"))?;
                                if !types::collation_matches_charset(k2, cs) {
                                    bail!(UnknownCollation, "COLLATION '{k}' is not valid for CHARACTER SET '{c}'");
                                }
                                k2
                            }
                            None => types::default_collation(cs).unwrap_or("utf8mb4_0900_ai_ci"),
                        };
                        (cs.to_string(), coll.to_string())
                    }
                };
                for var in ["character_set_client", "character_set_connection", "character_set_results"] {
                    if let Some(def) = variables::lookup(var) {
                        self.vars.set(def, Value::text(&cs));
                    }
                }
                if let Some(def) = variables::lookup("collation_connection") {
                    self.vars.set(def, Value::text(&coll));
                }
                self.result_collation = types::collation_id(&coll).unwrap_or(255);
            }
            SetItem::CharacterSet { charset } => {
                let cs = match charset {
                    None => "utf8mb4",
                    Some(c) => types::normalize_charset(c).ok_or_else(|| err!(UnknownCharacterSet, "Unknown character set: '{c}'"))?,
                };
                for var in ["character_set_client", "character_set_results"] {
                    if let Some(def) = variables::lookup(var) {
                        self.vars.set(def, Value::text(cs));
                    }
                }
                self.result_collation = types::default_collation(cs).and_then(types::collation_id).unwrap_or(255);
            }
            SetItem::Transaction { scope, isolation, read_only } => {
                if *scope == VarScope::Global {
                    return Err(Error::not_supported("SET GLOBAL TRANSACTION"));
                }
                // Without SESSION the characteristics apply to the next transaction only;
                // Cairn has one isolation level (READ COMMITTED, as NDB), so both just record.
                if *scope == VarScope::Session {
                    if let Some(level) = isolation {
                        let def = variables::lookup("transaction_isolation").ok_or_else(|| variables::unknown("transaction_isolation"))?;
                        let v = variables::normalize(def, Value::text(level))?;
                        self.vars.set(def, v);
                    }
                    if let Some(ro) = read_only {
                        let def = variables::lookup("transaction_read_only").ok_or_else(|| variables::unknown("transaction_read_only"))?;
                        self.vars.set(def, Value::Int(i64::from(*ro)));
                    }
                }
            }
            SetItem::Variable { scope: VarScope::User, name, value } => {
                let v = match value {
                    SetValue::Default => Value::Null,
                    SetValue::Expr(e) => self.eval_set_value(e, text, params, exec, false).await?,
                };
                self.user_vars.insert(name.to_ascii_lowercase(), v);
            }
            SetItem::Variable { scope, name, value } => {
                let def = variables::lookup(name).ok_or_else(|| variables::unknown(name))?;
                variables::check_settable(def, *scope == VarScope::Global)?;
                let v = match value {
                    SetValue::Default => None,
                    SetValue::Expr(e) => Some(self.eval_set_value(e, text, params, exec, true).await?),
                };
                match v {
                    None => self.vars.reset(def),
                    Some(v) => {
                        let v = variables::normalize(def, v)?;
                        self.check_variable_value(def, &v)?;
                        self.vars.set(def, v);
                    }
                }
                self.after_set(def);
            }
        }
        Ok(())
    }

    /// Checks values only some variables constrain further.
    fn check_variable_value(&self, def: &VarDef, v: &Value) -> Result<(), Error> {
        match def.name {
            "time_zone"
                if zone_offset(&v.to_text()).is_none() => {
                    bail!(WrongValueForVariable, "Unknown or incorrect time zone: '{}'", v.to_text());
                }
            "auto_increment_increment" | "auto_increment_offset"
                if v.to_u64() != Some(1) => {
                    return Err(Error::not_supported(format!("{} other than 1", def.name)));
                }
            _ => {}
        }
        Ok(())
    }

    fn after_set(&mut self, def: &VarDef) {
        match def.name {
            "autocommit"
                if self.autocommit() => {
                    // SET autocommit = 1 commits an open transaction (after the SET).
                    self.commit_requested = true;
                }
            "character_set_results" => {
                self.result_collation = match self.read_var_value("character_set_results") {
                    Some(Value::Text(cs)) => types::default_collation(&cs).and_then(types::collation_id).unwrap_or(255),
                    _ => 0,
                };
            }
            "collation_connection" => {
                if let Some(Value::Text(coll)) = self.read_var_value("collation_connection") {
                    let cs = types::charset_of_collation(types::collation_id(&coll).unwrap_or(255));
                    if let Some(d) = variables::lookup("character_set_connection") {
                        self.vars.set(d, Value::text(cs));
                    }
                }
            }
            _ => {}
        }
    }

    async fn run_show(&mut self, show: &Show, text: &StatementText, params: &[Value]) -> Result<Outcome, Error> {
        let outcome = self.run_show_unfiltered(show, text, params).await?;
        Ok(self.filter_show(show, outcome))
    }

    /// Keeps the rows of SHOW DATABASES / TABLES the session may see (`crate::privileges`).
    fn filter_show(&self, show: &Show, outcome: Outcome) -> Outcome {
        let Outcome::Rows { columns, rows: RowSource::Rows(mut rows), warnings } = outcome else {
            return outcome;
        };
        let database = match show {
            Show::Tables { database, .. } | Show::TableStatus { database, .. } => database.clone().or_else(|| self.database.clone()),
            _ => None,
        };
        self.security.filter_show(&self.engine.backend.catalog(), show, database.as_deref(), &mut rows);
        Outcome::Rows { columns, rows: RowSource::Rows(rows), warnings }
    }

    async fn run_show_unfiltered(&mut self, show: &Show, text: &StatementText, params: &[Value]) -> Result<Outcome, Error> {
        let catalog = self.engine.backend.catalog();
        let (mut result, filter) = match show {
            Show::Databases(f) => (show::databases(&catalog), f.clone()),
            Show::Tables { full, database, filter } => {
                let db = self.env_database(database)?;
                if catalog.database(&db).is_none() && !crate::information_schema::is_name(&db) {
                    bail!(UnknownDatabase, "Unknown database '{db}'");
                }
                (show::tables(&catalog, &db, *full), filter.clone())
            }
            Show::TableStatus { database, filter } => {
                let db = self.env_database(database)?;
                if catalog.database(&db).is_none() && !crate::information_schema::is_name(&db) {
                    bail!(UnknownDatabase, "Unknown database '{db}'");
                }
                (show::table_status(&catalog, &db, &|_| None), filter.clone())
            }
            Show::Columns { full, table, filter } => {
                let t = self.resolve(&catalog, table)?;
                (show::columns(&t, *full), filter.clone())
            }
            Show::Index { table, filter } => {
                let t = self.resolve(&catalog, table)?;
                (show::index(&t), filter.clone())
            }
            Show::Variables { global, filter } => {
                let values = variables::VARIABLES
                    .iter()
                    .filter(|d| !(*global && d.scope == variables::Scope::Session))
                    .map(|d| {
                        let v = if *global { self.default_value(d) } else { self.system_var(VarScope::Default, d.name).unwrap_or(Value::Null) };
                        let v = match (d.kind, v) {
                            (variables::VarKind::Bool, Value::Int(n)) => Value::text(if n == 1 { "ON" } else { "OFF" }),
                            (_, v) => v,
                        };
                        (d.name.to_string(), v)
                    })
                    .collect();
                (show::variables(values), filter.clone())
            }
            Show::Status(filter) => {
                let s = &self.engine.stats;
                let get = |c: &std::sync::atomic::AtomicU64| Value::UInt(c.load(std::sync::atomic::Ordering::Relaxed));
                let uptime = (self.engine.config.clock.now_micros() - self.engine.started_micros).max(0) / 1_000_000;
                let values = vec![
                    (
                        "Caching_sha2_password_rsa_public_key".to_string(),
                        Value::text(self.engine.config.caching_sha2_public_key.get().cloned().unwrap_or_default()),
                    ),
                    ("Cairn_index_scans".to_string(), get(&s.index_scans)),
                    ("Cairn_key_lookups".to_string(), get(&s.key_lookups)),
                    ("Cairn_plan_cache_hits".to_string(), get(&s.plan_cache_hits)),
                    ("Cairn_plan_cache_misses".to_string(), get(&s.plan_cache_misses)),
                    ("Cairn_pushed_aggregates".to_string(), get(&s.pushed_aggregates)),
                    ("Cairn_routine_parses".to_string(), Value::UInt(self.engine.routines.parses())),
                    ("Cairn_scans".to_string(), get(&s.scans)),
                    ("Com_delete".to_string(), get(&s.com_delete)),
                    ("Com_insert".to_string(), get(&s.com_insert)),
                    ("Com_select".to_string(), get(&s.com_select)),
                    ("Com_stmt_execute".to_string(), get(&s.com_stmt_execute)),
                    ("Com_stmt_prepare".to_string(), get(&s.com_stmt_prepare)),
                    ("Com_update".to_string(), get(&s.com_update)),
                    ("Connections".to_string(), get(&s.connections)),
                    ("Questions".to_string(), get(&s.questions)),
                    ("Ssl_cipher".to_string(), Value::text(self.info.ssl_cipher.clone())),
                    ("Ssl_version".to_string(), Value::text(self.info.ssl_version.clone())),
                    ("Threads_connected".to_string(), get(&s.threads_connected)),
                    ("Uptime".to_string(), Value::UInt(uptime as u64)),
                ];
                (show::variables(values), filter.clone())
            }
            Show::Warnings { errors_only, count_only, offset, limit } => {
                let list: Vec<Warning> = self.lock_warnings().iter().filter(|w| !*errors_only || w.level == WarningLevel::Error).cloned().collect();
                if *count_only {
                    let name = if *errors_only { "@@session.error_count" } else { "@@session.warning_count" };
                    let mut r = ShowResult::new(vec![(name, SqlType::bigint(true, false).with_length(21))]);
                    r.rows.push(vec![Value::UInt(list.len() as u64)]);
                    return Ok(self.rows_outcome(r));
                }
                let mut r = show::warnings_header();
                r.rows = list
                    .into_iter()
                    .skip(*offset as usize)
                    .take(limit.map_or(usize::MAX, |l| l as usize))
                    .map(|w| vec![Value::text(w.level.to_string()), Value::UInt(w.code as u64), Value::Text(w.message)])
                    .collect();
                return Ok(self.rows_outcome(r));
            }
            Show::CreateTable(name) => {
                let t = self.resolve(&catalog, name)?;
                let next = self.engine.peek_auto_increment(t.id);
                (show::create_table(&t, next), Default::default())
            }
            Show::CreateDatabase { name, if_not_exists } => (show::create_database(&catalog, name, *if_not_exists)?, Default::default()),
            Show::Engines => (show::engines(), Default::default()),
            Show::Collation(f) => (show::collations(), f.clone()),
            Show::CharacterSet(f) => (show::charsets(), f.clone()),
            Show::CreateRoutine { kind, name } => (self.show_create_routine(*kind, name)?, Default::default()),
            Show::RoutineStatus { kind, filter } => {
                // LIKE matches the Name column here (crate::routine::show).
                let result = crate::routine::show::show_status(&catalog, *kind, filter.like.as_deref());
                (result, crate::parse::ShowFilter { like: None, filter: filter.filter.clone() })
            }
            Show::Processlist { full } => (show::processlist(self.process_rows(), *full), Default::default()),
        };
        if let Some(pattern) = &filter.like {
            result.like(pattern);
        }
        if let Some(w) = &filter.filter {
            let scope = show_scope(&result);
            let system_var = |scope: VarScope, name: &str| self.system_var(scope, name);
            let user_var = |name: &str| self.user_vars.get(name).cloned().unwrap_or(Value::Null);
            let env = PlanEnv {
                catalog: &catalog,
                database: self.database.as_deref(),
                system_var: &system_var,
                user_var: &user_var,
                pipes_as_concat: false,
                only_full_group_by: false,
                source: None,
            };
            let mut ctx = PlanContext::new(env, placeholders(text));
            let mut c = Compiler::new(&mut ctx, &scope, "where clause");
            let (predicate, _) = c.compile(w)?;
            crate::compile::check_depth(&predicate)?;
            let mut values = Vec::new();
            for slot in &ctx.slots {
                values.push(match slot {
                    Slot::Param(n) => params.get(*n as usize).cloned().unwrap_or(Value::Null),
                    Slot::SystemVar { scope, name } => self.system_var(*scope, name)?,
                    Slot::UserVar(name) => self.user_vars.get(name).cloned().unwrap_or(Value::Null),
                    Slot::UtcNow { .. } | Slot::UnixNow | Slot::Subquery { .. } | Slot::Outer { .. } | Slot::Correlated { .. } | Slot::Routine(_) => {
                        return Err(Error::not_supported("this expression in SHOW ... WHERE"));
                    }
                });
            }
            let mut exec = self.new_exec(self.warnings.clone());
            exec.bound = Arc::new(Bound { values, lists: HashMap::new() });
            let mut kept = Vec::new();
            for row in std::mem::take(&mut result.rows) {
                if exec.matches(&predicate, &row)? {
                    kept.push(row);
                }
            }
            result.rows = kept;
        }
        Ok(self.rows_outcome(result))
    }

    fn rows_outcome(&mut self, result: ShowResult) -> Outcome {
        let columns: Vec<ColumnMeta> = result.metadata(self.result_collation);
        let types: Vec<_> = columns.iter().map(|c| c.ty.clone()).collect();
        let rows: Vec<Row> = result.rows.into_iter().map(|r| conform_row(r, &types)).collect();
        self.found_rows = rows.len() as u64;
        let warnings = self.warning_count();
        Outcome::Rows { columns: columns.into(), rows: RowSource::Rows(rows), warnings }
    }

    /// COM_STMT_PREPARE.
    pub async fn prepare(&mut self, sql: &str) -> Result<PreparedInfo, Error> {
        Stats::bump(&self.engine.stats.com_stmt_prepare);
        crate::parser_memory::check(sql, self.engine.config.parser_max_mem_size)?;
        let mut statements = lexer::split(sql)?;
        if statements.is_empty() {
            bail!(EmptyQuery, "Query was empty");
        }
        if statements.len() > 1 {
            return Err(lexer::syntax_error_near(&second_statement_text(sql, &statements), 1));
        }
        if self.prepared.len() >= self.engine.config.max_prepared_statements {
            bail!(
                TooManyPreparedStatements,
                "Can't create more than max_prepared_stmt_count statements (current value: {})",
                self.engine.config.max_prepared_statements
            );
        }
        let slot = self.engine.limits.prepare()?;
        let text = statements.remove(0);
        let statement = parse::parse(&text)?;
        if matches!(statement, Statement::LoadData(_)) {
            bail!(UnsupportedPreparedStatement, "This command is not supported in the prepared statement protocol yet");
        }
        let param_count = placeholders(&text).len();
        let param_count = u16::try_from(param_count).map_err(|_| err!(TooManyRows, "Prepared statement contains too many placeholders"))?;
        // Plannable statements are planned now: errors (1146, 1054…) come at prepare time, as
        // in MySQL, and the plan is kept for every execution.
        let cached = self.plan_statement_synced(&statement, &text).await?;
        let columns = match cached.as_ref().map(|c| c.planned.as_ref()) {
            Some(Planned::Query(q)) => q.columns.iter().map(|c| column_meta(&c.name, &c.ty, c.origin.as_ref(), self.result_collation)).collect(),
            _ => Vec::new(),
        };
        let id = self.next_statement_id;
        self.next_statement_id = self.next_statement_id.checked_add(1).unwrap_or(1);
        self.prepared.insert(id, PreparedStatement { statement: Arc::new(statement), text: Arc::new(text), param_count, cached, _slot: slot });
        Ok(PreparedInfo { id, param_count, columns })
    }

    /// COM_STMT_EXECUTE with the bound parameters.
    pub async fn execute_prepared(&mut self, id: u32, params: Vec<Value>) -> Outcome {
        let outcome = self.execute_prepared_inner(id, params).await;
        if outcome.is_error() {
            let aborts = matches!(&outcome, Outcome::Error(e) if crate::txn::aborts_transaction(e));
            if aborts && self.txn.is_some() {
                let _ = self.end_transaction(false).await;
            }
        }
        outcome
    }

    async fn execute_prepared_inner(&mut self, id: u32, params: Vec<Value>) -> Outcome {
        Stats::bump(&self.engine.stats.com_stmt_execute);
        Stats::bump(&self.engine.stats.questions);
        let Some(prepared) = self.prepared.get(&id) else {
            return self.fail(err!(UnknownStatement, "Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"));
        };
        if params.len() != prepared.param_count as usize {
            return self.fail(err!(WrongArguments, "Incorrect arguments to mysqld_stmt_execute"));
        }
        let statement = Arc::clone(&prepared.statement);
        let text = Arc::clone(&prepared.text);
        let cached = prepared.cached.clone();
        if let Err(e) = self.charge_statement(&text) {
            return self.fail(e);
        }
        self.current_text = text.text.clone();
        self.process.set_info(&self.current_text);
        match self.run_statement(&statement, &text, &params, cached).await {
            Ok((outcome, plan)) => {
                if let (Some(plan), Some(p)) = (plan, self.prepared.get_mut(&id)) {
                    p.cached = Some(plan);
                }
                outcome
            }
            Err(e) => self.fail(e),
        }
    }

    /// COM_STMT_CLOSE.
    pub fn close_prepared(&mut self, id: u32) {
        self.prepared.remove(&id);
    }

    /// COM_RESET_CONNECTION: session and user variables back to their defaults, prepared
    /// statements closed, transaction ended, warnings cleared. The current database stays,
    /// as in MySQL.
    pub async fn reset(&mut self) {
        let _ = self.end_transaction(false).await;
        self.vars.clear();
        self.user_vars.clear();
        self.routines.clear();
        self.prepared.clear();
        self.last_insert_id = 0;
        self.found_rows = 0;
        self.row_count = -1;
        self.warnings = Arc::new(Mutex::new(Vec::new()));
        self.previous_counts = (0, 0);
        self.admin = admin::AdminState::default();
        self.load.reset();
        self.multi_statements = self.info.multi_statements;
        self.apply_handshake_collation();
    }

    /// COM_INIT_DB (and USE): 1049 for an unknown database.
    pub async fn use_database(&mut self, db: &str) -> Result<(), Error> {
        let catalog = self.engine.backend.catalog();
        if crate::information_schema::is_name(db) {
            self.database = Some(crate::information_schema::NAME.to_string());
            self.process.set_database(self.database.as_deref());
            return Ok(());
        }
        if !self.security.sees_database(&catalog, db) {
            return Err(self.security.database_denied(db));
        }
        if catalog.database(db).is_none() {
            bail!(UnknownDatabase, "Unknown database '{db}'");
        }
        self.database = Some(db.to_string());
        self.process.set_database(Some(db));
        if let (Some(def), Some(d)) = (variables::lookup("character_set_database"), catalog.database(db)) {
            self.vars.set(def, Value::text(&d.charset));
            if let Some(coll) = variables::lookup("collation_database") {
                self.vars.set(coll, Value::text(&d.collation));
            }
        }
        Ok(())
    }

    /// CREATE USER, GRANT, SET ROLE, SHOW GRANTS and the other account statements
    /// (`crate::users`).
    async fn run_account(&mut self, statement: &crate::users::AccountStatement) -> Result<Outcome, Error> {
        let catalog = self.engine.backend.catalog();
        let cx = crate::users::AccountContext { catalog: &catalog, security: &self.security, current_database: self.database.as_deref() };
        match crate::users::plan(statement, &cx)? {
            crate::users::AccountPlan::Propose(ops) => {
                // IF [NOT] EXISTS notes (3162, 3163) become warnings, as in MySQL.
                if let CatalogOutcome::Accounts(outcome) = self.ddl(CatalogOp::Accounts(ops)).await? {
                    for (kind, message) in outcome.notes {
                        self.note(kind, message);
                    }
                }
                Ok(self.ok_with_warnings(0))
            }
            crate::users::AccountPlan::Rows(result) => Ok(self.rows_outcome(result)),
            crate::users::AccountPlan::SetRoles(roles) => {
                self.security.set_roles(roles);
                Ok(Outcome::ok())
            }
        }
    }

    /// COM_FIELD_LIST: the columns of a table in the current database.
    pub async fn field_list(&mut self, table: &str) -> Result<Vec<ColumnMeta>, Error> {
        let catalog = self.engine.backend.catalog();
        let t = self.resolve(&catalog, &TableName { database: None, name: table.to_string() })?;
        if !self.security.sees_table(&catalog, &t.database, &t.name) {
            return Err(self.security.table_denied("SELECT", &t.name));
        }
        Ok(t
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| !c.hidden)
            .map(|(i, c): (usize, &ColumnDef)| column_meta(&c.name, &SqlType::from_column(c), Some(&ColumnOrigin::of(&t, &t.name, i)), self.result_collation))
            .collect())
    }
}

impl<B: Backend> Drop for Session<B> {
    fn drop(&mut self) {
        self.engine.stats.threads_connected.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.engine.processes.remove(&self.process);
    }
}

/// The text from the `;` that ends the first statement on, as MySQL quotes it in the syntax
/// error of a multi-statement text sent without CLIENT_MULTI_STATEMENTS.
fn second_statement_text(sql: &str, statements: &[StatementText]) -> String {
    let first_end = sql.find(statements[0].text.as_str()).map_or(0, |at| at + statements[0].text.len());
    let second_at = sql[first_end..].find(statements[1].text.as_str()).map_or(sql.len(), |at| first_end + at);
    let semicolon = sql[first_end..second_at].find(';').map_or(second_at, |at| first_end + at);
    sql[semicolon..].to_string()
}

fn check_name(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 64 || name.ends_with(' ') {
        bail!(WrongArguments, "Incorrect {what} name '{name}'");
    }
    Ok(())
}

fn conform_row(row: Row, types: &[Option<cairn_common::types::ColumnType>]) -> Row {
    row.into_iter().zip(types).map(|(v, t)| conform(v, t)).collect()
}

/// Whether a plan reads no table.
fn is_tableless(node: &plan::Node) -> bool {
    use plan::Node::*;
    match node {
        Single => true,
        Get { .. } | Scan { .. } | HashJoin { .. } | LookupJoin { .. } | CountAll { .. } | UniqueGet { .. } | IndexScan { .. } | PushedAggregate { .. } => false,
        Union { inputs, .. } => inputs.iter().all(is_tableless),
        Derived { plan, .. } => is_tableless(&plan.root),
        Apply { input, .. } | Window { input, .. } => is_tableless(input),
        RecursiveCte { seed, recursive, .. } => is_tableless(seed) && recursive.iter().all(is_tableless),
        // The rows of a recursive CTE's last round: tableless when its seed and blocks are.
        WorkingTable { .. } => true,
        Filter { input, .. } | Project { input, .. } | Aggregate { input, .. } | Distinct { input, .. } | Sort { input, .. } | Limit { input, .. } => {
            is_tableless(input)
        }
    }
}

/// Whether a plan's result is small by construction (no scan below it).
fn is_small(node: &plan::Node) -> bool {
    use plan::Node::*;
    match node {
        Single | Get { .. } | CountAll { .. } | UniqueGet { .. } => true,
        Scan { .. } | HashJoin { .. } | IndexScan { .. } => false,
        PushedAggregate { keys, .. } => keys.is_empty(),
        Union { inputs, .. } => inputs.iter().all(is_small),
        Derived { plan, .. } => is_small(&plan.root),
        Aggregate { keys, .. } if keys.is_empty() => true,
        LookupJoin { left, .. } => is_small(left),
        Apply { input, .. } | Window { input, .. } => is_small(input),
        RecursiveCte { .. } | WorkingTable { .. } => false,
        Filter { input, .. } | Project { input, .. } | Aggregate { input, .. } | Distinct { input, .. } | Sort { input, .. } | Limit { input, .. } => {
            is_small(input)
        }
    }
}

/// Converts each value of a streamed result to its column's declared type.
struct ConformStream {
    input: exec::BoxStream,
    types: Vec<Option<cairn_common::types::ColumnType>>,
}

impl RowStream for ConformStream {
    fn next_batch(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Option<Result<Vec<Row>, Error>>> + Send + '_>> {
        Box::pin(async move {
            match self.input.next_batch().await? {
                Ok(batch) => Some(Ok(batch.into_iter().map(|r| conform_row(r, &self.types)).collect())),
                Err(e) => Some(Err(e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>(_: T) {}

    /// The daemon runs sessions on a multi-threaded runtime: every future must be Send.
    #[allow(dead_code)]
    fn session_futures_are_send<B: Backend>(mut session: Session<B>) {
        assert_send(session.execute("SELECT 1"));
        assert_send(session.prepare("SELECT ?"));
        assert_send(session.execute_prepared(1, Vec::new()));
        assert_send(session.use_database("d"));
        assert_send(session.field_list("t"));
    }
}
