//! Privilege checks: what the session's account (and its active roles) may do, decided before
//! each statement runs.
//!
//! # Concept
//!
//! The grants live in the cluster catalog (`cairn_common::accounts`); a session resolves them
//! once per catalog version into an [`Authorization`] (its account's grants merged with those of
//! its active roles) and checks every statement against it:
//!
//! - planned statements (SELECT, INSERT, UPDATE, DELETE) by their plan, on every execution,
//!   including plans from the plan cache and prepared statements, so a REVOKE takes effect on the
//!   next statement of every session once the SQL node has the new catalog;
//! - catalog changes by the op they propose ([`check_catalog_op`]), which every DDL path goes
//!   through;
//! - other statements by kind ([`check_statement`]);
//! - SHOW and information_schema by filtering: a session sees only the databases and tables it
//!   has some privilege on ([`SessionSecurity::sees_database`], [`SessionSecurity::sees_table`]).
//!
//! A session without an account (`SessionInfo::account == None`) is an internal one (tests, the
//! node's own maintenance) and is not checked.
//!
//! # Where Cairn is stricter than MySQL, for now
//!
//! - Column-level SELECT grants are stored, shown and honoured by INSERT and UPDATE column
//!   lists, but a SELECT needs SELECT on the whole table: the planner does not yet report
//!   which columns a query reads.
//! - An UPDATE or DELETE that reads rows (has a WHERE, ORDER BY or LIMIT) needs SELECT on the
//!   whole table, where MySQL needs it only on the columns read.
//!
//! # Hooks for other statement families
//!
//! [`check_statement`] matches the statement enum exhaustively and [`check_catalog_op`] the
//! catalog ops: a new statement or op does not compile until it declares what it needs. Stored
//! routines check EXECUTE with [`SessionSecurity::check_routine`]; a routine with SQL SECURITY
//! DEFINER runs its body under its definer's authorization ([`SessionSecurity::for_definer`]).

use std::sync::{Arc, Mutex};

use cairn_common::accounts::{AccountName, Authorization, PrivSet, Privilege, RoutineKind};
use cairn_common::catalog::{Catalog, CatalogOp, TableDef};
use cairn_common::error::{Error, ErrorKind};
use cairn_common::ids::TableId;

use crate::dml::WriteAccess;
use crate::parse::{Show, Statement, TableName};
use crate::session::Planned;

/// Databases every session may see and read (their content is filtered per session).
pub(crate) fn is_system_database(name: &str) -> bool {
    name.eq_ignore_ascii_case("information_schema") || name.eq_ignore_ascii_case("performance_schema")
}

/// Locks a cache of this module: every update replaces the whole value, so a panic elsewhere
/// cannot leave one half-written.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A session's identity for privilege checks.
#[derive(Debug, Default)]
pub(crate) struct SessionSecurity {
    /// The account the login matched (`CURRENT_USER()`); `None` for an unchecked internal session.
    account: Option<AccountName>,
    /// The user name and client host the client connected as (`USER()`), for messages.
    login_user: String,
    login_host: String,
    /// The active roles (SET ROLE; the account's default roles at login).
    roles: Vec<AccountName>,
    /// The authorization built from the catalog of this version.
    cache: Mutex<Option<(u64, Arc<Authorization>)>>,
    /// The authorization of the definer of the last SQL SECURITY DEFINER routine this context
    /// called, with its catalog version: a routine called once per statement (Exim's
    /// greylisting function) would otherwise resolve its definer's grants on every call.
    definer: Mutex<Option<(AccountName, u64, Arc<Authorization>)>>,
}

impl SessionSecurity {
    pub fn new(account: Option<AccountName>, login_user: &str, login_host: &str, roles: Vec<AccountName>) -> SessionSecurity {
        SessionSecurity {
            account,
            login_user: login_user.to_string(),
            login_host: login_host.to_string(),
            roles,
            cache: Mutex::new(None),
            definer: Mutex::new(None),
        }
    }

    /// The security context of a routine with SQL SECURITY DEFINER: the definer's grants and
    /// none of the caller's roles. A definer that no longer exists gets no privileges.
    ///
    /// The authorization resolved for the same definer by the previous call (handed back by
    /// [`Self::end_definer`]) comes along; it is used only while the catalog version is the one
    /// it was built from, exactly like the session's own.
    pub fn for_definer(&self, definer: AccountName) -> SessionSecurity {
        let known = lock(&self.definer).as_ref().filter(|(account, _, _)| *account == definer).map(|(_, version, auth)| (*version, auth.clone()));
        let context = SessionSecurity::new(Some(definer), &self.login_user, &self.login_host, Vec::new());
        *lock(&context.cache) = known;
        context
    }

    /// Takes back a context [`Self::for_definer`] made when its routine returns, keeping the
    /// authorization it resolved for the next call of a routine with the same definer.
    pub fn end_definer(&self, context: SessionSecurity) {
        let resolved = context.cache.into_inner().unwrap_or_else(|e| e.into_inner());
        if let (Some(account), Some((version, auth))) = (context.account, resolved) {
            *lock(&self.definer) = Some((account, version, auth));
        }
    }

    pub fn account(&self) -> Option<&AccountName> {
        self.account.as_ref()
    }

    pub fn roles(&self) -> &[AccountName] {
        &self.roles
    }

    pub fn set_roles(&mut self, roles: Vec<AccountName>) {
        self.roles = roles;
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    /// The session's authorization against `catalog`; `None` for an unchecked session.
    pub fn authorization(&self, catalog: &Catalog) -> Option<Arc<Authorization>> {
        let account = self.account.as_ref()?;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((version, auth)) = cache.as_ref()
            && *version == catalog.version
        {
            return Some(auth.clone());
        }
        // Roles dropped or revoked since they were activated no longer count.
        let granted: Vec<AccountName> =
            self.roles.iter().filter(|r| catalog.accounts.granted_roles(account).any(|g| &g.role == *r)).cloned().collect();
        let auth = Arc::new(Authorization::new(&catalog.accounts, account, &granted));
        *cache = Some((catalog.version, auth.clone()));
        Some(auth)
    }

    fn user_at_host(&self) -> String {
        format!("'{}'@'{}'", self.login_user, self.login_host)
    }

    /// 1142: `SELECT command denied to user 'u'@'h' for table 't'`.
    pub fn table_denied(&self, command: &str, table: &str) -> Error {
        Error::new(ErrorKind::TableAccessDenied, format!("{command} command denied to user {} for table '{table}'", self.user_at_host()))
    }

    /// 1143: `UPDATE command denied to user 'u'@'h' for column 'c' in table 't'`.
    pub fn column_denied(&self, command: &str, column: &str, table: &str) -> Error {
        Error::new(
            ErrorKind::ColumnAccessDenied,
            format!("{command} command denied to user {} for column '{column}' in table '{table}'", self.user_at_host()),
        )
    }

    /// 1044: `Access denied for user 'u'@'h' to database 'd'`.
    pub fn database_denied(&self, database: &str) -> Error {
        Error::new(ErrorKind::DatabaseAccessDenied, format!("Access denied for user {} to database '{database}'", self.user_at_host()))
    }

    /// 1227: `Access denied; you need (at least one of) the X privilege(s) for this operation`.
    pub fn specific_denied(privilege: &str) -> Error {
        Error::new(
            ErrorKind::SpecificAccessDenied,
            format!("Access denied; you need (at least one of) the {privilege} privilege(s) for this operation"),
        )
    }

    /// Requires a privilege on a table (or, for `column_ok`, a column-level grant suffices).
    fn need_table(&self, auth: &Authorization, p: Privilege, database: &str, table: &str) -> Result<(), Error> {
        // A global grant covers every table: answered without building the table's key.
        if auth.global().has(p) || auth.on_table(database, table).has(p) {
            Ok(())
        } else {
            Err(self.table_denied(p.name(), table))
        }
    }

    /// Requires a privilege on each of `columns` (names) of a table: table-level or per column.
    fn need_columns<'c>(&self, auth: &Authorization, p: Privilege, def: &TableDef, columns: impl Iterator<Item = &'c str>) -> Result<(), Error> {
        if auth.global().has(p) || auth.on_table(&def.database, &def.name).has(p) {
            return Ok(());
        }
        if !auth.on_some_column(&def.database, &def.name, p) {
            return Err(self.table_denied(p.name(), &def.name));
        }
        for c in columns {
            if !auth.on_column(&def.database, &def.name, c).has(p) {
                return Err(self.column_denied(p.name(), c, &def.name));
            }
        }
        Ok(())
    }

    /// Whether the session may see a database (SHOW DATABASES, information_schema, USE).
    pub fn sees_database(&self, catalog: &Catalog, database: &str) -> bool {
        is_system_database(database) || self.authorization(catalog).is_none_or(|a| a.sees_database(database))
    }

    /// Whether the session may see a table (SHOW TABLES, information_schema).
    pub fn sees_table(&self, catalog: &Catalog, database: &str, table: &str) -> bool {
        is_system_database(database) || self.authorization(catalog).is_none_or(|a| a.sees_table(database, table))
    }

    // Called by stored routines and admin statements as they land (issue 7's hooks).
    #[allow(dead_code)]
    /// A global privilege (PROCESS, SUPER, CREATE USER, …).
    pub fn has_global(&self, catalog: &Catalog, p: Privilege) -> bool {
        self.authorization(catalog).is_none_or(|a| a.global().has(p))
    }

    /// EXECUTE on a routine (the caller's check before a CALL or a stored function call).
    pub fn check_routine(&self, catalog: &Catalog, database: &str, kind: RoutineKind, name: &str) -> Result<(), Error> {
        let Some(auth) = self.authorization(catalog) else {
            return Ok(());
        };
        self.need_routine(&auth, Privilege::Execute, database, kind, name)
    }

    /// Checks a planned statement, on every execution.
    pub fn check_plan(&self, catalog: &Catalog, planned: &Planned, tables: &[(TableId, u64)]) -> Result<(), Error> {
        let Some(auth) = self.authorization(catalog) else {
            return Ok(());
        };
        let target = match planned {
            Planned::Query(_) => None,
            // A multiple-table UPDATE or DELETE (`multi_dml`): its write privilege on each
            // target, and SELECT on every table it joins, the targets included (it reads them
            // to find the rows).
            Planned::Update(crate::dml::UpdatePlan { multi: Some(m), .. }) | Planned::Delete(crate::dml::DeletePlan { multi: Some(m), .. }) => {
                for t in &m.targets {
                    if matches!(planned, Planned::Update(_)) {
                        let names = t.assigned().filter_map(|i| t.table.columns.get(i as usize)).map(|c| c.name.as_str());
                        self.need_columns(&auth, Privilege::Update, &t.table, names)?;
                    } else {
                        self.need_table(&auth, Privilege::Delete, &t.table.database, &t.table.name)?;
                    }
                }
                None
            }
            Planned::Insert(p) => {
                let names = p.columns.iter().filter_map(|&i| p.table.columns.get(i)).map(|c| c.name.as_str());
                self.need_columns(&auth, Privilege::Insert, &p.table, names)?;
                match &p.on_duplicate {
                    cairn_common::ops::OnDuplicate::Update(_) => self.need_table(&auth, Privilege::Update, &p.table.database, &p.table.name)?,
                    cairn_common::ops::OnDuplicate::Replace => self.need_table(&auth, Privilege::Delete, &p.table.database, &p.table.name)?,
                    _ => {}
                }
                Some(p.table.id)
            }
            Planned::Update(p) => {
                let names = p.assignments.iter().filter_map(|(i, _)| p.table.columns.get(*i as usize)).map(|c| c.name.as_str());
                self.need_columns(&auth, Privilege::Update, &p.table, names)?;
                if reads_rows(&p.access) {
                    self.need_table(&auth, Privilege::Select, &p.table.database, &p.table.name)?;
                }
                Some(p.table.id)
            }
            Planned::Delete(p) => {
                self.need_table(&auth, Privilege::Delete, &p.table.database, &p.table.name)?;
                if reads_rows(&p.access) {
                    self.need_table(&auth, Privilege::Select, &p.table.database, &p.table.name)?;
                }
                Some(p.table.id)
            }
        };
        // Every other table the statement touches is read.
        self.need_reads(&auth, catalog, tables, target)
    }

    /// SELECT on every table an expression reads (a stored routine's `RETURN (SELECT …)`,
    /// `SET v = (SELECT …)`, `IF EXISTS (SELECT …)`), on every evaluation.
    pub fn check_reads(&self, catalog: &Catalog, tables: &[(TableId, u64)]) -> Result<(), Error> {
        let Some(auth) = self.authorization(catalog) else {
            return Ok(());
        };
        self.need_reads(&auth, catalog, tables, None)
    }

    fn need_reads(&self, auth: &Authorization, catalog: &Catalog, tables: &[(TableId, u64)], written: Option<TableId>) -> Result<(), Error> {
        for (id, _) in tables {
            if Some(*id) == written {
                continue;
            }
            // Only tables users name: the hidden tables of unique indexes are maintained for the
            // statement's own table and need no grant of their own.
            if let Some(def) = catalog.tables.get(id) {
                self.need_table(auth, Privilege::Select, &def.database, &def.name)?;
            }
        }
        Ok(())
    }

    /// Checks a catalog change before it is proposed.
    pub fn check_catalog_op(&self, catalog: &Catalog, op: &CatalogOp) -> Result<(), Error> {
        let Some(auth) = self.authorization(catalog) else {
            return Ok(());
        };
        let need_db = |p: Privilege, db: &str| {
            if auth.on_database(db).has(p) { Ok(()) } else { Err(self.database_denied(db)) }
        };
        match op {
            CatalogOp::CreateDatabase { name, .. } => need_db(Privilege::Create, name),
            CatalogOp::DropDatabase { name, .. } => need_db(Privilege::Drop, name),
            CatalogOp::CreateTable { table, .. } => self.need_table(&auth, Privilege::Create, &table.database, &table.name),
            CatalogOp::DropTable { database, name, .. } => self.need_table(&auth, Privilege::Drop, database, name),
            // Schema changes are checked by statement ([`Self::check_statement`]): CREATE INDEX
            // needs INDEX where ALTER TABLE needs ALTER, and an index turning Ready is the
            // node's own follow-up of a change already allowed.
            CatalogOp::AlterTable { .. } => Ok(()),
            // Account statements are checked by `crate::users` with the statement at hand (it
            // needs to know the grantor's own privileges at the level named).
            CatalogOp::Accounts(_) => Ok(()),
            CatalogOp::CreateRoutine { routine, or_replace, .. } => {
                need_db(Privilege::CreateRoutine, &routine.database)?;
                // OR REPLACE may drop an existing routine: that also takes ALTER ROUTINE on it.
                if *or_replace && catalog.routine(&routine.database, routine.kind, &routine.name).is_some() {
                    self.need_routine(&auth, Privilege::AlterRoutine, &routine.database, routine.kind, &routine.name)?;
                }
                Ok(())
            }
            CatalogOp::AlterRoutine { database, kind, name, .. } | CatalogOp::DropRoutine { database, kind, name, .. } => {
                self.need_routine(&auth, Privilege::AlterRoutine, database, *kind, name)
            }
            // A barrier changes nothing.
            CatalogOp::Barrier => Ok(()),
        }
    }

    /// `privilege` (EXECUTE or ALTER ROUTINE) on one routine, at routine, database or global level.
    fn need_routine(&self, auth: &Authorization, privilege: Privilege, database: &str, kind: RoutineKind, name: &str) -> Result<(), Error> {
        if auth.global().has(privilege) || auth.on_routine(database, kind, name).has(privilege) {
            return Ok(());
        }
        let command = if privilege == Privilege::Execute { "execute" } else { "alter routine" };
        Err(Error::new(
            ErrorKind::RoutineAccessDenied,
            format!("{command} command denied to user {} for routine '{database}.{name}'", self.user_at_host()),
        ))
    }

    /// Checks a statement that is not planned (planned ones go through [`Self::check_plan`],
    /// catalog changes through [`Self::check_catalog_op`]).
    pub fn check_statement(&self, catalog: &Catalog, statement: &Statement, current_database: Option<&str>) -> Result<(), Error> {
        let Some(auth) = self.authorization(catalog) else {
            return Ok(());
        };
        let resolve = |t: &TableName| (t.database.clone().or_else(|| current_database.map(str::to_string)).unwrap_or_default(), t.name.clone());
        match statement {
            Statement::Query(_) | Statement::Insert(_) | Statement::Update(_) | Statement::Delete(_) => Ok(()),
            Statement::CreateTable { .. } | Statement::CreateDatabase { .. } | Statement::DropDatabase { .. } | Statement::DropTable { .. } => Ok(()),
            Statement::Truncate(t) => {
                let (db, name) = resolve(t);
                self.need_table(&auth, Privilege::Drop, &db, &name)
            }
            Statement::CreateIndex(ix) => {
                let (db, name) = resolve(&crate::plan::object_table_name(&ix.table_name)?);
                self.need_table(&auth, Privilege::Index, &db, &name)
            }
            Statement::DropIndex { table, .. } => {
                let (db, name) = resolve(table);
                self.need_table(&auth, Privilege::Index, &db, &name)
            }
            Statement::AlterTable(at) => {
                // MySQL's rule: ALTER TABLE needs ALTER, CREATE and INSERT on the table.
                let (db, name) = resolve(&crate::plan::object_table_name(&at.name)?);
                for p in [Privilege::Alter, Privilege::Create, Privilege::Insert] {
                    self.need_table(&auth, p, &db, &name)?;
                }
                Ok(())
            }
            Statement::RenameTable(pairs) => {
                // MySQL's rule: ALTER and DROP on the old name, CREATE and INSERT on the new.
                for (from, to) in pairs {
                    let (db, name) = resolve(from);
                    self.need_table(&auth, Privilege::Alter, &db, &name)?;
                    self.need_table(&auth, Privilege::Drop, &db, &name)?;
                    let (db, name) = resolve(to);
                    self.need_table(&auth, Privilege::Create, &db, &name)?;
                    self.need_table(&auth, Privilege::Insert, &db, &name)?;
                }
                Ok(())
            }
            // EXPLAIN is checked on its plan, as the statement itself would be; DO evaluates
            // expressions that read no table.
            Statement::Explain(_) | Statement::Do(_) => Ok(()),
            Statement::Use(db) => {
                if self.sees_database(catalog, db) {
                    Ok(())
                } else {
                    Err(self.database_denied(db))
                }
            }
            Statement::Show(show) => match show {
                Show::Columns { table, .. } | Show::Index { table, .. } | Show::CreateTable(table) => {
                    let (db, name) = resolve(table);
                    if self.sees_table(catalog, &db, &name) { Ok(()) } else { Err(self.table_denied("SELECT", &name)) }
                }
                // SHOW CREATE FUNCTION/PROCEDURE and SHOW … STATUS answer from the catalog's
                // definitions, which MySQL shows to any user with a privilege on the routine;
                // the routine statements module checks them with the routine at hand.
                Show::CreateRoutine { .. } | Show::RoutineStatus { .. } => Ok(()),
                Show::CreateDatabase { name, .. } => {
                    if self.sees_database(catalog, name) { Ok(()) } else { Err(self.database_denied(name)) }
                }
                Show::Tables { database, .. } | Show::TableStatus { database, .. } => {
                    let db = database.clone().or_else(|| current_database.map(str::to_string)).unwrap_or_default();
                    if db.is_empty() || self.sees_database(catalog, &db) { Ok(()) } else { Err(self.database_denied(&db)) }
                }
                // Filtered per row ([`Self::filter_show`]) or about the session itself.
                Show::Databases(_)
                | Show::Variables { .. }
                | Show::Status(_)
                | Show::Warnings { .. }
                | Show::Engines
                | Show::Collation(_)
                | Show::CharacterSet(_)
                | Show::Processlist { .. } => Ok(()),
            },
            Statement::Account(_) => Ok(()),
            // CREATE/ALTER/DROP FUNCTION/PROCEDURE are checked as catalog changes
            // ([`Self::check_catalog_op`]), CALL and function calls by [`Self::check_routine`].
            Statement::Routine(_) => Ok(()),
            // LOAD DATA LOCAL inserts (and with REPLACE deletes) rows of one table.
            Statement::LoadData(load) => {
                let (db, name) = resolve(load.table());
                self.need_table(&auth, Privilege::Insert, &db, &name)?;
                if load.replaces() {
                    self.need_table(&auth, Privilege::Delete, &db, &name)?;
                }
                Ok(())
            }
            Statement::Admin(admin) => {
                use crate::session::admin::AdminStatement as A;
                match admin {
                    // Killing another user's connection is checked where the connection is
                    // found (1095 without SUPER).
                    A::Kill { .. } | A::UnlockTables | A::ShowTriggers { .. } | A::ShowEvents { .. } => Ok(()),
                    A::Flush { .. } => {
                        if auth.global().has(Privilege::Reload) { Ok(()) } else { Err(Self::specific_denied("RELOAD")) }
                    }
                    A::ShowMasterStatus | A::ShowBinaryLogs => {
                        if auth.global().has(Privilege::Super) { Ok(()) } else { Err(Self::specific_denied("SUPER, REPLICATION CLIENT")) }
                    }
                    // MySQL: LOCK TABLES on the database and SELECT on each table.
                    A::LockTables(tables) => {
                        for t in tables {
                            let (db, name) = resolve(t);
                            if !auth.on_database(&db).has(Privilege::LockTables) {
                                return Err(self.database_denied(&db));
                            }
                            self.need_table(&auth, Privilege::Select, &db, &name)?;
                        }
                        Ok(())
                    }
                    A::Keys(t) => {
                        let (db, name) = resolve(t);
                        self.need_table(&auth, Privilege::Alter, &db, &name)
                    }
                    // ANALYZE/OPTIMIZE/REPAIR need SELECT and INSERT, CHECK and CHECKSUM SELECT.
                    A::Maintenance { operation, tables } => {
                        for t in tables {
                            let (db, name) = resolve(t);
                            self.need_table(&auth, Privilege::Select, &db, &name)?;
                            if !matches!(*operation, "check" | "checksum") {
                                self.need_table(&auth, Privilege::Insert, &db, &name)?;
                            }
                        }
                        Ok(())
                    }
                }
            }
            Statement::Set(_)
            | Statement::Begin
            | Statement::Commit
            | Statement::Rollback
            | Statement::Savepoint(_)
            | Statement::RollbackToSavepoint(_)
            | Statement::ReleaseSavepoint(_)
            | Statement::Unsupported(_) => Ok(()),
        }
    }

    /// Removes the rows of SHOW DATABASES / SHOW TABLES / SHOW PROCESSLIST the session may not see. `database` is
    /// the database SHOW TABLES lists.
    pub fn filter_show(&self, catalog: &Catalog, show: &Show, database: Option<&str>, rows: &mut Vec<crate::outcome::Row>) {
        if self.account.is_none() {
            return;
        }
        let first = |r: &crate::outcome::Row| r.first().map(|v| v.to_text().into_owned()).unwrap_or_default();
        match show {
            Show::Databases(_) => rows.retain(|r| self.sees_database(catalog, &first(r))),
            Show::Tables { .. } | Show::TableStatus { .. } => {
                let db = database.unwrap_or_default();
                rows.retain(|r| self.sees_table(catalog, db, &first(r)));
            }
            // Without PROCESS a session sees only its own user's threads, as in MySQL.
            Show::Processlist { .. } if !self.has_global(catalog, Privilege::Process) => {
                rows.retain(|r| r.get(1).is_some_and(|user| user.to_text() == self.login_user));
            }
            _ => {}
        }
    }
}

/// The roles an account activates at login (SET DEFAULT ROLE).
pub(crate) fn default_roles(catalog: &Catalog, account: &AccountName) -> Vec<AccountName> {
    catalog.accounts.default_roles.get(account).map(|d| d.iter().cloned().collect()).unwrap_or_default()
}

/// What a catalog change does, for the audit log: names, never credentials.
pub(crate) fn describe_catalog_op(op: &CatalogOp) -> String {
    match op {
        CatalogOp::CreateDatabase { name, .. } => format!("CREATE DATABASE {name}"),
        CatalogOp::DropDatabase { name, .. } => format!("DROP DATABASE {name}"),
        CatalogOp::CreateTable { table, .. } => format!("CREATE TABLE {}.{}", table.database, table.name),
        CatalogOp::DropTable { database, name, .. } => format!("DROP TABLE {database}.{name}"),
        CatalogOp::AlterTable { database, name, table, .. } => {
            if table.database == *database && table.name == *name {
                format!("ALTER TABLE {database}.{name}")
            } else {
                format!("RENAME TABLE {database}.{name} TO {}.{}", table.database, table.name)
            }
        }
        CatalogOp::Accounts(ops) => format!("ACCOUNTS {}", crate::users::describe_ops(ops)),
        CatalogOp::CreateRoutine { routine, or_replace, .. } => format!(
            "CREATE {}{} {}.{}",
            if *or_replace { "OR REPLACE " } else { "" },
            routine.kind.keyword(),
            routine.database,
            routine.name
        ),
        CatalogOp::AlterRoutine { database, kind, name, .. } => format!("ALTER {} {database}.{name}", kind.keyword()),
        CatalogOp::DropRoutine { database, kind, name, .. } => format!("DROP {} {database}.{name}", kind.keyword()),
        CatalogOp::Barrier => "BARRIER".to_string(),
    }
}

/// The audit line of a DDL or account change (tracing target `audit`), successful or not.
pub(crate) fn audit_change(info: &crate::session::SessionInfo, node_id: u32, change: &str, error: Option<&Error>) {
    let account = info.account.as_ref().map(|a| a.to_string()).unwrap_or_else(|| "(internal)".to_string());
    match error {
        None => tracing::info!(target: "audit", event = "change", node = node_id, user = %info.user, host = %info.host, account = %account, connection = info.connection_id, change, "catalog change"),
        Some(e) => tracing::info!(target: "audit", event = "change_refused", node = node_id, user = %info.user, host = %info.host, account = %account, connection = info.connection_id, change, error = %e.message, code = e.code(), "catalog change refused"),
    }
}

/// Whether an UPDATE or DELETE reads rows to choose them (and so needs SELECT).
fn reads_rows(access: &WriteAccess) -> bool {
    match access {
        WriteAccess::Keys { .. } | WriteAccess::Ordered { .. } => true,
        WriteAccess::Where { filter } => filter.is_some(),
    }
}

/// Privileges of a set, for messages that list them.
pub(crate) fn names(set: PrivSet) -> String {
    set.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}
