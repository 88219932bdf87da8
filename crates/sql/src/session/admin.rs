//! Administration statements that clients and dump tools send and that need no storage of
//! their own: KILL, FLUSH, LOCK/UNLOCK TABLES, `ALTER TABLE … DISABLE/ENABLE KEYS`,
//! table maintenance (ANALYZE/OPTIMIZE/CHECK/REPAIR/CHECKSUM TABLE), and the SHOW forms that
//! mysqldump and GUI tools ask for about features Cairn does not have (triggers, events,
//! binary logs) or has implicitly (grants).
//!
//! What each does, and why that is honest for a cluster:
//!
//! - **KILL [CONNECTION | QUERY] id** acts on this SQL node's sessions (processlist.rs).
//! - **FLUSH …** answers OK: an SQL node caches nothing that a flush would write or reload (the
//!   catalog is pushed by the management nodes), except the counters of `crate::limits`:
//!   `FLUSH HOSTS` unblocks client addresses, `FLUSH USER_RESOURCES` restarts hourly limits. `FLUSH TABLES WITH READ LOCK` takes no lock,
//!   as in MySQL Cluster, where it affects only the mysqld it runs on; dump consistency comes
//!   from `--single-transaction` once transactions are in.
//! - **LOCK TABLES / UNLOCK TABLES** check that the tables exist, end an open transaction as
//!   MySQL does, and take no lock: MySQL Cluster's table locks are local to one mysqld too.
//! - **ALTER TABLE t DISABLE/ENABLE KEYS** (mysqldump wraps every table's INSERTs in it) has
//!   nothing to defer: indexes are maintained with every write. As MySQL says for InnoDB: note
//!   1031.
//! - **ANALYZE/OPTIMIZE/CHECK/REPAIR TABLE** answer MySQL's result set per table: there are no
//!   statistics to refresh, memory freed by DELETE already goes back to the data node, and
//!   replicas are checked by their checksums. CHECKSUM TABLE answers NULL (MySQL's "not
//!   available"): its checksum is a CRC of MySQL's own row format, which Cairn does not have.
//! - **SHOW TRIGGERS / EVENTS** are empty (Cairn has neither); **SHOW MASTER STATUS** is empty
//!   and **SHOW BINARY LOGS** is MySQL's 1381 (no binary log: replication is inside the cluster);
//!   (SHOW GRANTS is an account statement: `crate::users`).

use cairn_common::expr::{Warning, WarningLevel};
use cairn_common::types::{ColumnType, IntWidth};
use cairn_common::{Error, Value, bail, err};
use sqlparser::tokenizer::Token;

use crate::backend::Backend;
use crate::lexer::StatementText;
use crate::outcome::Outcome;
use crate::parse::{Cursor, Statement, TableName, from_database, show_filter};
use crate::processlist::KillKind;
use crate::session::Session;
use crate::show::{ShowResult, nullable_text, text};
use crate::types::SqlType;

/// An administration statement, parsed.
#[derive(Clone, Debug)]
pub(crate) enum AdminStatement {
    Kill { kind: KillKind, id: u64 },
    /// FLUSH; only HOSTS and USER_RESOURCES have something to clear (crate::limits).
    Flush { hosts: bool, user_resources: bool },
    LockTables(Vec<TableName>),
    UnlockTables,
    /// `ALTER TABLE t DISABLE KEYS` / `ENABLE KEYS`.
    Keys(TableName),
    /// ANALYZE / OPTIMIZE / CHECK / REPAIR / CHECKSUM TABLE.
    Maintenance { operation: &'static str, tables: Vec<TableName> },
    /// SHOW TRIGGERS / SHOW EVENTS: always empty, so their LIKE or WHERE is parsed and has
    /// nothing to remove.
    ShowTriggers { database: Option<String> },
    ShowEvents { database: Option<String> },
    ShowMasterStatus,
    ShowBinaryLogs,
}

/// Per-session state of these statements.
#[derive(Clone, Debug, Default)]
pub(crate) struct AdminState {
    /// Whether LOCK TABLES is in effect (UNLOCK TABLES then ends the transaction).
    tables_locked: bool,
}

fn significant_words(statement: &StatementText) -> Vec<String> {
    statement
        .significant()
        .iter()
        .take(8)
        .map(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
            other => format!("\u{0}{other}"),
        })
        .collect()
}

/// Whether this module parses the statement (decided on its first words).
pub(crate) fn claims(statement: &StatementText) -> bool {
    let w = significant_words(statement);
    let at = |i: usize| w.get(i).map_or("", String::as_str);
    match at(0) {
        "KILL" | "FLUSH" | "LOCK" | "UNLOCK" | "ANALYZE" | "OPTIMIZE" | "REPAIR" | "CHECKSUM" => true,
        "CHECK" => at(1) == "TABLE" || at(1) == "TABLES",
        // `ALTER TABLE t DISABLE KEYS`, `ALTER TABLE db.t ENABLE KEYS`, and nothing more.
        "ALTER" => {
            let keys_at = |i: usize| (at(i) == "DISABLE" || at(i) == "ENABLE") && at(i + 1) == "KEYS" && w.len() == i + 2;
            at(1) == "TABLE" && (keys_at(3) || keys_at(5))
        }
        "SHOW" => matches!(at(1), "TRIGGERS" | "EVENTS" | "BINARY" | "MASTER"),
        _ => false,
    }
}

/// Parses a statement [`claims`] said is ours.
pub(crate) fn parse(statement: &StatementText) -> Result<Statement, Error> {
    let mut c = Cursor::new(statement);
    let first = c.ident_any()?.to_ascii_uppercase();
    let parsed = match first.as_str() {
        "KILL" => {
            let kind = if c.eat("QUERY") {
                KillKind::Query
            } else {
                c.eat("CONNECTION");
                KillKind::Connection
            };
            AdminStatement::Kill { kind, id: c.number()? }
        }
        "FLUSH" => {
            // Every FLUSH form is accepted; only the connection-error and per-hour counters of
            // crate::limits are held by an SQL node and cleared.
            let (mut hosts, mut user_resources) = (false, false);
            while let Some(token) = c.next() {
                if let Token::Word(w) = &token.token {
                    hosts |= w.value.eq_ignore_ascii_case("HOSTS");
                    user_resources |= w.value.eq_ignore_ascii_case("USER_RESOURCES");
                }
            }
            AdminStatement::Flush { hosts, user_resources }
        }
        "LOCK" => {
            if !(c.eat("TABLES") || c.eat("TABLE")) {
                return Err(c.error());
            }
            let mut tables = Vec::new();
            loop {
                tables.push(c.table_name()?);
                // An alias, then READ [LOCAL] | [LOW_PRIORITY] WRITE.
                if c.eat("AS") || !(c.peek_is("READ") || c.peek_is("WRITE") || c.peek_is("LOW_PRIORITY")) {
                    c.ident()?;
                }
                if c.eat("READ") {
                    c.eat("LOCAL");
                } else {
                    c.eat("LOW_PRIORITY");
                    c.expect("WRITE")?;
                }
                if !c.eat_token(&Token::Comma) {
                    break;
                }
            }
            AdminStatement::LockTables(tables)
        }
        "UNLOCK" => {
            if !(c.eat("TABLES") || c.eat("TABLE")) {
                return Err(c.error());
            }
            AdminStatement::UnlockTables
        }
        "ALTER" => {
            c.expect("TABLE")?;
            let table = c.table_name()?;
            if !(c.eat("DISABLE") || c.eat("ENABLE")) {
                return Err(c.error());
            }
            c.expect("KEYS")?;
            AdminStatement::Keys(table)
        }
        "ANALYZE" | "OPTIMIZE" | "REPAIR" | "CHECK" | "CHECKSUM" => {
            if first != "CHECK" && first != "CHECKSUM" && !c.eat("NO_WRITE_TO_BINLOG") {
                c.eat("LOCAL");
            }
            if !(c.eat("TABLE") || c.eat("TABLES")) {
                return Err(c.error());
            }
            let mut tables = vec![c.table_name()?];
            while c.eat_token(&Token::Comma) {
                tables.push(c.table_name()?);
            }
            // Options (QUICK, EXTENDED, FOR UPGRADE, ...) change nothing here.
            while c.next().is_some() {}
            let operation = match first.as_str() {
                "ANALYZE" => "analyze",
                "OPTIMIZE" => "optimize",
                "REPAIR" => "repair",
                "CHECK" => "check",
                _ => "checksum",
            };
            AdminStatement::Maintenance { operation, tables }
        }
        "SHOW" => {
            if c.eat("TRIGGERS") {
                let database = from_database(&mut c)?;
                show_filter(&mut c)?;
                AdminStatement::ShowTriggers { database }
            } else if c.eat("EVENTS") {
                let database = from_database(&mut c)?;
                show_filter(&mut c)?;
                AdminStatement::ShowEvents { database }
            } else if c.eat("MASTER") {
                c.expect("STATUS")?;
                AdminStatement::ShowMasterStatus
            } else {
                c.expect("BINARY")?;
                if c.eat("LOG") {
                    c.expect("STATUS")?;
                    AdminStatement::ShowMasterStatus
                } else {
                    c.expect("LOGS")?;
                    AdminStatement::ShowBinaryLogs
                }
            }
        }
        _ => return Err(c.error()),
    };
    c.expect_end()?;
    Ok(Statement::Admin(parsed))
}

fn maintenance_result() -> ShowResult {
    ShowResult::new(vec![("Table", text(64)), ("Op", text(10)), ("Msg_type", text(10)), ("Msg_text", text(255))])
}

impl<B: Backend> Session<B> {
    pub(crate) async fn run_admin(&mut self, statement: &AdminStatement) -> Result<Outcome, Error> {
        let catalog = self.engine.backend.catalog();
        match statement {
            AdminStatement::Kill { kind, id } => {
                let may_kill_others = self.security.has_global(&catalog, cairn_common::accounts::Privilege::Super);
                self.engine.processes.kill(*id, *kind, &self.info.user, may_kill_others)?;
                Ok(Outcome::ok())
            }
            AdminStatement::Flush { hosts, user_resources } => {
                if *hosts {
                    self.engine.limits.flush_hosts();
                }
                if *user_resources {
                    self.engine.limits.flush_user_resources();
                }
                Ok(Outcome::ok())
            }
            AdminStatement::LockTables(tables) => {
                for t in tables {
                    self.resolve(&catalog, t)?;
                }
                self.end_transaction(true).await?;
                self.admin.tables_locked = true;
                Ok(Outcome::ok())
            }
            AdminStatement::UnlockTables => {
                if std::mem::take(&mut self.admin.tables_locked) {
                    self.end_transaction(true).await?;
                    }
                Ok(Outcome::ok())
            }
            AdminStatement::Keys(table) => {
                let t = self.resolve(&catalog, table)?;
                self.lock_warnings().push(Warning {
                    level: WarningLevel::Note,
                    code: 1031,
                    message: format!("Table storage engine for '{}' doesn't have this option", t.name),
                });
                Ok(self.ok_with_warnings(0))
            }
            AdminStatement::Maintenance { operation, tables } => {
                let mut result = maintenance_result();
                if *operation == "checksum" {
                    result = ShowResult::new(vec![
                        ("Table", text(64)),
                        ("Checksum", SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned: false, display: None }, true)),
                    ]);
                }
                for name in tables {
                    let db = self.env_database(&name.database)?;
                    let label = Value::text(format!("{db}.{}", name.name));
                    let exists = catalog.table_by_name(&db, &name.name).is_some();
                    let row = match (*operation, exists) {
                        ("checksum", true) => {
                            // MySQL's checksum is a CRC of its own row format, which no value
                            // computed here could match; NULL is its "not available" answer.
                            vec![label, Value::Null]
                        }
                        ("checksum", false) => {
                            self.lock_warnings().push(Warning {
                                level: WarningLevel::Error,
                                code: 1146,
                                message: format!("Table '{db}.{}' doesn't exist", name.name),
                            });
                            vec![label, Value::Null]
                        }
                        (op, true) => {
                            let text = match op {
                                "optimize" => "Table does not support optimize, doing recreate + analyze instead",
                                _ => "OK",
                            };
                            let kind = if op == "optimize" { "note" } else { "status" };
                            if op == "optimize" {
                                result.rows.push(vec![label.clone(), Value::text(op), Value::text(kind), Value::text(text)]);
                                vec![label, Value::text(op), Value::text("status"), Value::text("OK")]
                            } else {
                                vec![label, Value::text(op), Value::text(kind), Value::text(text)]
                            }
                        }
                        (op, false) => {
                            result.rows.push(vec![
                                label.clone(),
                                Value::text(op),
                                Value::text("Error"),
                                Value::text(format!("Table '{db}.{}' doesn't exist", name.name)),
                            ]);
                            vec![label, Value::text(op), Value::text("status"), Value::text("Operation failed")]
                        }
                    };
                    result.rows.push(row);
                }
                Ok(self.rows_outcome(result))
            }
            AdminStatement::ShowTriggers { database } => {
                let db = self.env_database(database)?;
                if catalog.database(&db).is_none() && !crate::information_schema::is_name(&db) {
                    bail!(UnknownDatabase, "Unknown database '{db}'");
                }
                Ok(self.rows_outcome(triggers_result()))
            }
            AdminStatement::ShowEvents { database } => {
                let db = self.env_database(database)?;
                if catalog.database(&db).is_none() && !crate::information_schema::is_name(&db) {
                    bail!(UnknownDatabase, "Unknown database '{db}'");
                }
                let result = ShowResult::new(
                    ["Db", "Name", "Definer", "Time zone", "Type", "Execute at", "Interval value", "Interval field", "Starts", "Ends", "Status", "Originator", "character_set_client", "collation_connection", "Database Collation"]
                        .into_iter()
                        .map(|n| (n, nullable_text(64)))
                        .collect(),
                );
                Ok(self.rows_outcome(result))
            }
            AdminStatement::ShowMasterStatus => {
                let result = ShowResult::new(vec![
                    ("File", text(512)),
                    ("Position", SqlType::of(ColumnType::Int { width: IntWidth::Big, unsigned: true, display: None }, false)),
                    ("Binlog_Do_DB", text(255)),
                    ("Binlog_Ignore_DB", text(255)),
                    ("Executed_Gtid_Set", text(1024)),
                ]);
                Ok(self.rows_outcome(result))
            }
            AdminStatement::ShowBinaryLogs => Err(err!(NoBinaryLogging, "You are not using binary logging")),
        }
    }
}

fn triggers_result() -> ShowResult {
    ShowResult::new(vec![
        ("Trigger", text(64)),
        ("Event", text(6)),
        ("Table", text(64)),
        ("Statement", text(4096)),
        ("Timing", text(6)),
        ("Created", nullable_text(26)),
        ("sql_mode", text(512)),
        ("Definer", text(288)),
        ("character_set_client", text(32)),
        ("collation_connection", text(64)),
        ("Database Collation", text(64)),
    ])
}
