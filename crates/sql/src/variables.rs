//! System variables: one registry with every variable's default, kind and scope, and the
//! per-session values set over it.
//!
//! Clients read many variables at connect time (`@@version_comment`, `@@tx_isolation`,
//! `@@sql_mode`, `@@max_allowed_packet`, Connector/J's long list) and set a few (`autocommit`,
//! `NAMES`, `sql_mode`, `character_set_*`). Every variable a client may read has its MySQL 8
//! default here, NDB's where they differ (isolation is READ-COMMITTED, the default engine
//! ndbcluster). Variables that exist only to be read (`version`, `lower_case_table_names`)
//! are read-only. An unknown name is ER_UNKNOWN_SYSTEM_VARIABLE (1193).
//!
//! `SET GLOBAL` is refused: a SQL node's global values would differ from its peers', and
//! cluster-wide settings belong to the management nodes' config.

use std::collections::BTreeMap;

use cairn_common::error::{Error, ErrorKind};
use cairn_common::{Value, bail};

/// MySQL 8's default sql_mode.
pub(crate) const DEFAULT_SQL_MODE: &str =
    "ONLY_FULL_GROUP_BY,STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION";

/// Every sql_mode word MySQL 8 accepts.
const SQL_MODES: &[&str] = &[
    "REAL_AS_FLOAT",
    "PIPES_AS_CONCAT",
    "ANSI_QUOTES",
    "IGNORE_SPACE",
    "NOT_USED",
    "ONLY_FULL_GROUP_BY",
    "NO_UNSIGNED_SUBTRACTION",
    "NO_DIR_IN_CREATE",
    "ANSI",
    "NO_AUTO_VALUE_ON_ZERO",
    "NO_BACKSLASH_ESCAPES",
    "STRICT_TRANS_TABLES",
    "STRICT_ALL_TABLES",
    "NO_ZERO_IN_DATE",
    "NO_ZERO_DATE",
    "ALLOW_INVALID_DATES",
    "ERROR_FOR_DIVISION_BY_ZERO",
    "TRADITIONAL",
    "HIGH_NOT_PRECEDENCE",
    "NO_ENGINE_SUBSTITUTION",
    "PAD_CHAR_TO_FULL_LENGTH",
    "TIME_TRUNCATE_FRACTIONAL",
    // Accepted by MySQL 5.7 and by MariaDB; kept so that old clients' SETs succeed.
    "NO_AUTO_CREATE_USER",
    "NO_FIELD_OPTIONS",
    "NO_KEY_OPTIONS",
    "NO_TABLE_OPTIONS",
    "MYSQL323",
    "MYSQL40",
    "DB2",
    "MAXDB",
    "MSSQL",
    "ORACLE",
    "POSTGRESQL",
];

const ISOLATION_LEVELS: &[&str] = &["READ-UNCOMMITTED", "READ-COMMITTED", "REPEATABLE-READ", "SERIALIZABLE"];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum VarKind {
    /// ON/OFF, read as 1/0.
    Bool,
    /// An unsigned integer in a range.
    Int { min: u64, max: u64 },
    Str,
    /// One of a closed set of words.
    Enum(&'static [&'static str]),
    /// sql_mode: a comma-separated set of words.
    SqlMode,
    /// A character set name (or NULL for character_set_results).
    Charset,
    Collation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Has a session value (and a global default).
    Both,
    /// Global only: readable, not settable from a session.
    Global,
    /// Session only (`@@warning_count`, `@@timestamp`).
    Session,
}

/// Where a variable's default comes from.
#[derive(Clone, Copy, Debug)]
pub(crate) enum DefaultValue {
    Int(u64),
    Str(&'static str),
    /// From the engine configuration (version strings, node id).
    Config,
    /// Computed from the session when read (`warning_count`, `timestamp`).
    Computed,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct VarDef {
    pub name: &'static str,
    pub kind: VarKind,
    pub scope: Scope,
    pub read_only: bool,
    pub default: DefaultValue,
}

const fn var(name: &'static str, kind: VarKind, scope: Scope, read_only: bool, default: DefaultValue) -> VarDef {
    VarDef { name, kind, scope, read_only, default }
}

const U32: VarKind = VarKind::Int { min: 0, max: u32::MAX as u64 };
const U64: VarKind = VarKind::Int { min: 0, max: u64::MAX };

use DefaultValue as D;
use Scope::{Both, Global, Session};
use VarKind::{Bool, Charset, Collation, Str};

/// The registry, sorted by name (binary search).
pub(crate) static VARIABLES: &[VarDef] = &[
    var("auto_increment_increment", VarKind::Int { min: 1, max: 65535 }, Both, false, D::Int(1)),
    var("auto_increment_offset", VarKind::Int { min: 1, max: 65535 }, Both, false, D::Int(1)),
    var("autocommit", Bool, Both, false, D::Int(1)),
    var("basedir", Str, Global, true, D::Str("/")),
    var("big_tables", Bool, Both, false, D::Int(0)),
    // Cairn's own: whether text statements use the plan cache (cache.rs); OFF plans every
    // statement afresh (for measuring what the cache saves).
    var("cairn_plan_cache", Bool, Both, false, D::Int(1)),
    var("character_set_client", Charset, Both, false, D::Str("utf8mb4")),
    var("character_set_connection", Charset, Both, false, D::Str("utf8mb4")),
    var("character_set_database", Charset, Both, false, D::Str("utf8mb4")),
    var("character_set_filesystem", Charset, Both, false, D::Str("binary")),
    var("character_set_results", Charset, Both, false, D::Str("utf8mb4")),
    var("character_set_server", Charset, Both, false, D::Str("utf8mb4")),
    var("character_set_system", Charset, Global, true, D::Str("utf8mb3")),
    var("collation_connection", Collation, Both, false, D::Str("utf8mb4_0900_ai_ci")),
    var("collation_database", Collation, Both, false, D::Str("utf8mb4_0900_ai_ci")),
    var("collation_server", Collation, Both, false, D::Str("utf8mb4_0900_ai_ci")),
    var("connect_timeout", U32, Global, false, D::Int(10)),
    // How many rounds a recursive CTE may run before 3636 (MySQL's default and range).
    var("cte_max_recursion_depth", VarKind::Int { min: 0, max: u32::MAX as u64 }, Both, false, D::Int(1000)),
    var("datadir", Str, Global, true, D::Str("/")),
    var("default_storage_engine", Str, Both, false, D::Str("ndbcluster")),
    var("default_week_format", VarKind::Int { min: 0, max: 7 }, Both, false, D::Int(0)),
    var("div_precision_increment", VarKind::Int { min: 4, max: 4 }, Both, false, D::Int(4)),
    var("error_count", U64, Session, true, D::Computed),
    var("explicit_defaults_for_timestamp", Bool, Both, false, D::Int(1)),
    var("foreign_key_checks", Bool, Both, false, D::Int(1)),
    var("group_concat_max_len", VarKind::Int { min: 4, max: u32::MAX as u64 }, Both, false, D::Int(1024)),
    var("have_openssl", Str, Global, true, D::Config),
    var("have_ssl", Str, Global, true, D::Config),
    var("hostname", Str, Global, true, D::Str("localhost")),
    var("identity", U64, Session, false, D::Computed),
    var("init_connect", Str, Global, false, D::Str("")),
    var("innodb_lock_wait_timeout", VarKind::Int { min: 1, max: 1_073_741_824 }, Both, false, D::Int(50)),
    var("interactive_timeout", VarKind::Int { min: 1, max: 31_536_000 }, Both, false, D::Int(28800)),
    var("last_insert_id", U64, Session, false, D::Computed),
    var("license", Str, Global, true, D::Str("Apache-2.0")),
    var("lock_wait_timeout", VarKind::Int { min: 1, max: 31_536_000 }, Both, false, D::Int(31_536_000)),
    var("lower_case_table_names", VarKind::Int { min: 0, max: 2 }, Global, true, D::Int(0)),
    var("max_allowed_packet", VarKind::Int { min: 1024, max: 1_073_741_824 }, Both, false, D::Int(67_108_864)),
    var("max_connections", VarKind::Int { min: 1, max: 100_000 }, Global, false, D::Int(151)),
    var("max_error_count", VarKind::Int { min: 0, max: 65535 }, Both, false, D::Int(1024)),
    var("max_execution_time", U32, Both, false, D::Int(0)),
    var("max_prepared_stmt_count", VarKind::Int { min: 0, max: 4_194_304 }, Global, false, D::Int(16382)),
    var("max_sp_recursion_depth", VarKind::Int { min: 0, max: 255 }, Both, false, D::Int(0)),
    var("max_user_connections", U32, Both, false, D::Int(0)),
    var("ndb_autoincrement_prefetch_sz", VarKind::Int { min: 1, max: 65536 }, Both, false, D::Config),
    var("net_buffer_length", VarKind::Int { min: 1024, max: 1_048_576 }, Both, false, D::Int(16384)),
    var("net_read_timeout", VarKind::Int { min: 1, max: 31_536_000 }, Both, false, D::Int(30)),
    var("net_write_timeout", VarKind::Int { min: 1, max: 31_536_000 }, Both, false, D::Int(60)),
    var("performance_schema", Bool, Global, true, D::Int(0)),
    var("port", VarKind::Int { min: 0, max: 65535 }, Global, true, D::Int(3306)),
    var("profiling", Bool, Both, false, D::Int(0)),
    var("protocol_version", U32, Global, true, D::Int(10)),
    // MySQL 8 removed the query cache; old Connector/J versions still ask for these two.
    var("query_cache_size", U64, Global, true, D::Int(0)),
    var("query_cache_type", VarKind::Enum(&["OFF", "ON", "DEMAND"]), Both, false, D::Str("OFF")),
    var("server_id", U32, Global, true, D::Config),
    var("session_track_gtids", VarKind::Enum(&["OFF", "OWN_GTID", "ALL_GTIDS"]), Both, false, D::Str("OFF")),
    var("session_track_schema", Bool, Both, false, D::Int(1)),
    var("session_track_state_change", Bool, Both, false, D::Int(0)),
    var("session_track_system_variables", Str, Both, false, D::Str("time_zone,autocommit,character_set_client,character_set_results,character_set_connection")),
    var("session_track_transaction_info", VarKind::Enum(&["OFF", "STATE", "CHARACTERISTICS"]), Both, false, D::Str("OFF")),
    var("skip_name_resolve", Bool, Global, true, D::Int(1)),
    var("sql_auto_is_null", Bool, Both, false, D::Int(0)),
    var("sql_big_selects", Bool, Both, false, D::Int(1)),
    var("sql_log_bin", Bool, Session, false, D::Int(1)),
    var("sql_mode", VarKind::SqlMode, Both, false, D::Str(DEFAULT_SQL_MODE)),
    var("sql_notes", Bool, Both, false, D::Int(1)),
    var("sql_quote_show_create", Bool, Both, false, D::Int(1)),
    var("sql_safe_updates", Bool, Both, false, D::Int(0)),
    var("sql_select_limit", U64, Both, false, D::Int(u64::MAX)),
    var("sql_warnings", Bool, Both, false, D::Int(0)),
    var("storage_engine", Str, Both, false, D::Str("ndbcluster")),
    var("system_time_zone", Str, Global, true, D::Str("UTC")),
    var("time_zone", Str, Both, false, D::Str("SYSTEM")),
    var("timestamp", U64, Session, false, D::Computed),
    var("transaction_isolation", VarKind::Enum(ISOLATION_LEVELS), Both, false, D::Str("READ-COMMITTED")),
    var("transaction_read_only", Bool, Both, false, D::Int(0)),
    var("tx_isolation", VarKind::Enum(ISOLATION_LEVELS), Both, false, D::Str("READ-COMMITTED")),
    var("tx_read_only", Bool, Both, false, D::Int(0)),
    var("unique_checks", Bool, Both, false, D::Int(1)),
    var("version", Str, Global, true, D::Config),
    var("version_comment", Str, Global, true, D::Config),
    var("version_compile_machine", Str, Global, true, D::Str(std::env::consts::ARCH)),
    var("version_compile_os", Str, Global, true, D::Str("Linux")),
    var("wait_timeout", VarKind::Int { min: 1, max: 31_536_000 }, Both, false, D::Int(28800)),
    var("warning_count", U64, Session, true, D::Computed),
];

/// Looks a variable up by name (any case).
pub(crate) fn lookup(name: &str) -> Option<&'static VarDef> {
    // Compared byte by byte in lower case rather than through a lowercased copy: the engine
    // looks variables up several times per statement (autocommit, sql_mode, time_zone), and
    // the registry's names are all lower-case ASCII.
    let lower = name.bytes().map(|b| b.to_ascii_lowercase());
    VARIABLES.binary_search_by(|v| v.name.bytes().cmp(lower.clone())).ok().map(|i| &VARIABLES[i])
}

pub(crate) fn unknown(name: &str) -> Error {
    Error::new(ErrorKind::UnknownSystemVariable, format!("Unknown system variable '{name}'"))
}

/// Variables that always move together: setting one sets the other.
pub(crate) fn alias_of(name: &str) -> Option<&'static str> {
    match name {
        "tx_isolation" => Some("transaction_isolation"),
        "transaction_isolation" => Some("tx_isolation"),
        "tx_read_only" => Some("transaction_read_only"),
        "transaction_read_only" => Some("tx_read_only"),
        "storage_engine" => Some("default_storage_engine"),
        "default_storage_engine" => Some("storage_engine"),
        _ => None,
    }
}

/// Checks and normalizes a value for a variable: booleans become 0/1, enums their canonical
/// word, sql_mode its expanded canonical list. Errors are MySQL's 1231 / 1232.
pub(crate) fn normalize(def: &VarDef, value: Value) -> Result<Value, Error> {
    let wrong_value = |v: &Value| {
        Error::new(
            ErrorKind::WrongValueForVariable,
            format!("Variable '{}' can't be set to the value of '{}'", def.name, if v.is_null() { "NULL".into() } else { v.to_text().into_owned() }),
        )
    };
    let wrong_type = || Error::new(ErrorKind::WrongTypeForVariable, format!("Incorrect argument type to variable '{}'", def.name));
    match def.kind {
        VarKind::Bool => match &value {
            Value::Int(0) | Value::UInt(0) => Ok(Value::Int(0)),
            Value::Int(1) | Value::UInt(1) => Ok(Value::Int(1)),
            Value::Text(s) => match s.to_ascii_uppercase().as_str() {
                "ON" | "TRUE" | "1" => Ok(Value::Int(1)),
                "OFF" | "FALSE" | "0" => Ok(Value::Int(0)),
                _ => Err(wrong_value(&value)),
            },
            Value::Decimal(_) | Value::Double(_) => Err(wrong_type()),
            _ => Err(wrong_value(&value)),
        },
        VarKind::Int { min, max } => {
            let n = match &value {
                Value::Int(i) => {
                    if *i < 0 {
                        min
                    } else {
                        *i as u64
                    }
                }
                Value::UInt(u) => *u,
                Value::Text(_) | Value::Bytes(_) => return Err(wrong_type()),
                Value::Null => return Err(wrong_value(&value)),
                _ => return Err(wrong_type()),
            };
            // MySQL clamps out-of-range numbers to the bounds (with a warning we do not keep).
            Ok(Value::UInt(n.clamp(min, max)))
        }
        VarKind::Str => match value {
            Value::Null => Err(wrong_value(&value)),
            other => Ok(Value::Text(other.to_text().into_owned())),
        },
        VarKind::Enum(words) => {
            let chosen = match &value {
                Value::Int(i) => usize::try_from(*i).ok().and_then(|i| words.get(i)),
                Value::UInt(u) => usize::try_from(*u).ok().and_then(|i| words.get(i)),
                Value::Text(s) => words.iter().find(|w| w.eq_ignore_ascii_case(s) || w.replace('-', " ").eq_ignore_ascii_case(s)),
                _ => None,
            };
            chosen.map(|w| Value::text(*w)).ok_or_else(|| wrong_value(&value))
        }
        VarKind::SqlMode => {
            let text = match &value {
                Value::Text(s) => s.clone(),
                Value::Null => return Err(wrong_value(&value)),
                Value::Int(_) | Value::UInt(_) => return Err(wrong_value(&value)),
                other => other.to_text().into_owned(),
            };
            normalize_sql_mode(&text).ok_or_else(|| wrong_value(&value)).map(Value::Text)
        }
        VarKind::Charset => match &value {
            Value::Null if def.name == "character_set_results" => Ok(Value::Null),
            Value::Text(s) => crate::types::normalize_charset(s)
                .map(Value::text)
                .ok_or_else(|| Error::new(ErrorKind::UnknownCharacterSet, format!("Unknown character set: '{s}'"))),
            _ => Err(wrong_value(&value)),
        },
        VarKind::Collation => match &value {
            Value::Text(s) => crate::types::normalize_collation(s)
                .map(Value::text)
                .ok_or_else(|| Error::new(ErrorKind::UnknownCollation, format!("Unknown collation: '{s}'"))),
            Value::Int(i) => crate::types::collation_name(*i as u16)
                .map(Value::text)
                .ok_or_else(|| Error::new(ErrorKind::UnknownCollation, format!("Unknown collation: '{i}'"))),
            _ => Err(wrong_value(&value)),
        },
    }
}

/// Expands and checks a sql_mode list: combination modes (ANSI, TRADITIONAL) expand to their
/// parts as MySQL does; duplicates are dropped; the order is MySQL's bit order.
pub(crate) fn normalize_sql_mode(text: &str) -> Option<String> {
    let mut set: Vec<&'static str> = Vec::new();
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        let upper = word.to_ascii_uppercase();
        let parts: &[&'static str] = match upper.as_str() {
            "ANSI" => &["REAL_AS_FLOAT", "PIPES_AS_CONCAT", "ANSI_QUOTES", "IGNORE_SPACE", "ONLY_FULL_GROUP_BY", "ANSI"],
            "TRADITIONAL" => &[
                "STRICT_TRANS_TABLES",
                "STRICT_ALL_TABLES",
                "NO_ZERO_IN_DATE",
                "NO_ZERO_DATE",
                "ERROR_FOR_DIVISION_BY_ZERO",
                "TRADITIONAL",
                "NO_ENGINE_SUBSTITUTION",
            ],
            _ => match SQL_MODES.iter().find(|m| **m == upper) {
                Some(m) => std::slice::from_ref(m),
                None => return None,
            },
        };
        for p in parts {
            if !set.contains(p) {
                set.push(p);
            }
        }
    }
    set.sort_by_key(|m| SQL_MODES.iter().position(|x| x == m).unwrap_or(usize::MAX));
    Some(set.join(","))
}

/// A sql_mode as a set of its words (bit i is `SQL_MODES[i]`): parsed when the variable is
/// set, so that the statements that consult it (every plan, every write) test a bit instead of
/// copying and splitting the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SqlModes(u64);

// Every word needs a bit.
const _: () = assert!(SQL_MODES.len() <= 64);

impl SqlModes {
    /// The words of a stored (normalized) sql_mode; words that are not modes are ignored, as
    /// a test for them by name never matched a known mode either.
    pub fn parse(text: &str) -> SqlModes {
        let mut bits = 0;
        for word in text.split(',') {
            if let Some(i) = SQL_MODES.iter().position(|m| *m == word) {
                bits |= 1u64 << i;
            }
        }
        SqlModes(bits)
    }

    /// Whether the mode word `mode` (upper case, as in `SQL_MODES`) is set.
    pub fn contains(self, mode: &str) -> bool {
        SQL_MODES.iter().position(|m| *m == mode).is_some_and(|i| self.0 & (1u64 << i) != 0)
    }

    /// The sql_mode a session reads: its own value when it holds text, otherwise MySQL's default.
    fn of(value: Option<&Value>) -> SqlModes {
        match value {
            Some(Value::Text(s)) => SqlModes::parse(s),
            _ => SqlModes::parse(DEFAULT_SQL_MODE),
        }
    }
}

/// The session's own values over the registry's defaults.
#[derive(Clone, Debug)]
pub(crate) struct SessionVariables {
    values: BTreeMap<&'static str, Value>,
    /// sql_mode's words, kept in step with its value by `set`, `reset` and `clear`.
    modes: SqlModes,
}

impl Default for SessionVariables {
    fn default() -> SessionVariables {
        SessionVariables { values: BTreeMap::new(), modes: SqlModes::of(None) }
    }
}

impl SessionVariables {
    pub fn get(&self, name: &'static str) -> Option<&Value> {
        self.values.get(name)
    }

    /// The session's sql_mode, parsed.
    pub fn sql_modes(&self) -> SqlModes {
        self.modes
    }

    pub fn set(&mut self, def: &'static VarDef, value: Value) {
        self.values.insert(def.name, value.clone());
        if let Some(other) = alias_of(def.name).and_then(lookup) {
            self.values.insert(other.name, value);
        }
        self.sync_modes(def.name);
    }

    pub fn reset(&mut self, def: &'static VarDef) {
        self.values.remove(def.name);
        if let Some(other) = alias_of(def.name) {
            self.values.remove(other);
        }
        self.sync_modes(def.name);
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.modes = SqlModes::of(None);
    }

    fn sync_modes(&mut self, changed: &str) {
        if changed == "sql_mode" {
            self.modes = SqlModes::of(self.values.get("sql_mode"));
        }
    }
}

/// Checks that a SET may change this variable in this scope.
pub(crate) fn check_settable(def: &VarDef, global: bool) -> Result<(), Error> {
    if def.read_only {
        bail!(ReadOnlyVariable, "Variable '{}' is a read only variable", def.name);
    }
    if global {
        return Err(Error::not_supported(format!("SET GLOBAL {} (set cluster-wide values in the cluster config)", def.name)));
    }
    if def.scope == Scope::Global {
        bail!(GlobalVariable, "Variable '{}' is a GLOBAL variable and should be set with SET GLOBAL", def.name);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_is_sorted_and_unique() {
        for w in VARIABLES.windows(2) {
            assert!(w[0].name < w[1].name, "{} before {}", w[0].name, w[1].name);
        }
        assert!(lookup("AUTOCOMMIT").is_some());
        assert!(lookup("no_such_thing").is_none());
    }

    #[test]
    fn values_normalize_as_mysql_does() {
        let ac = lookup("autocommit").unwrap();
        assert_eq!(normalize(ac, Value::text("off")).unwrap(), Value::Int(0));
        assert_eq!(normalize(ac, Value::Int(1)).unwrap(), Value::Int(1));
        assert_eq!(normalize(ac, Value::Int(2)).unwrap_err().code(), 1231);
        let iso = lookup("transaction_isolation").unwrap();
        assert_eq!(normalize(iso, Value::text("read committed")).unwrap(), Value::text("READ-COMMITTED"));
        let mode = lookup("sql_mode").unwrap();
        let with_strict = normalize(mode, Value::text(format!("{DEFAULT_SQL_MODE},STRICT_TRANS_TABLES"))).unwrap();
        assert_eq!(with_strict, Value::text(DEFAULT_SQL_MODE));
        assert_eq!(normalize(mode, Value::text("")).unwrap(), Value::text(""));
        assert_eq!(normalize(mode, Value::text("NOT_A_MODE")).unwrap_err().code(), 1231);
        let packet = lookup("max_allowed_packet").unwrap();
        assert_eq!(normalize(packet, Value::Int(1)).unwrap(), Value::UInt(1024));
        assert_eq!(normalize(packet, Value::text("x")).unwrap_err().code(), 1232);
    }

    #[test]
    fn parsed_sql_mode_follows_every_change() {
        let mode = lookup("sql_mode").unwrap();
        let mut vars = SessionVariables::default();
        assert!(vars.sql_modes().contains("STRICT_TRANS_TABLES") && vars.sql_modes().contains("ONLY_FULL_GROUP_BY"));
        assert!(!vars.sql_modes().contains("PIPES_AS_CONCAT"));
        vars.set(mode, normalize(mode, Value::text("ansi")).unwrap());
        assert!(vars.sql_modes().contains("PIPES_AS_CONCAT") && vars.sql_modes().contains("ANSI_QUOTES"));
        assert!(!vars.sql_modes().contains("STRICT_TRANS_TABLES"));
        vars.set(mode, Value::text(""));
        assert_eq!(vars.sql_modes(), SqlModes::parse(""));
        vars.reset(mode);
        assert_eq!(vars.sql_modes(), SqlModes::parse(DEFAULT_SQL_MODE));
        vars.set(mode, Value::text("NO_ZERO_DATE"));
        vars.clear();
        assert!(vars.sql_modes().contains("NO_ZERO_IN_DATE"), "clear goes back to the default");
        // Setting another variable leaves it alone.
        vars.set(mode, Value::text("NO_ZERO_DATE"));
        vars.set(lookup("autocommit").unwrap(), Value::Int(0));
        assert_eq!(vars.sql_modes(), SqlModes::parse("NO_ZERO_DATE"));
    }

    #[test]
    fn read_only_and_global_variables_refuse_session_sets() {
        assert_eq!(check_settable(lookup("version").unwrap(), false).unwrap_err().code(), 1238);
        assert_eq!(check_settable(lookup("max_connections").unwrap(), false).unwrap_err().code(), 1229);
        assert_eq!(check_settable(lookup("sql_mode").unwrap(), true).unwrap_err().code(), 1235);
        assert!(check_settable(lookup("sql_mode").unwrap(), false).is_ok());
    }
}
