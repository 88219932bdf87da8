//! Stored functions and procedures as the cluster catalog keeps them.
//!
//! NDB keeps stored programs per MySQL server (in each mysqld's own `mysql.proc`), so a routine
//! created through one SQL node is missing on the others until someone creates it there too.
//! Cairn keeps them in the cluster catalog, replicated by the management nodes and pushed to
//! every node: a routine created through any SQL node runs on every SQL node at once, and
//! survives a full cluster restart with the rest of the catalog.
//!
//! A [`RoutineDef`] holds what `mysql.proc` holds: the header in structured form (parameters,
//! return type, characteristics, definer, SQL SECURITY), the parameter list and body verbatim
//! (`SHOW CREATE FUNCTION` prints them as written, and every SQL node parses them again, once
//! per version), the `sql_mode` in effect when it was created (the routine runs with it), and
//! the creation and modification times. Parsing and executing the body is the SQL node's
//! business (`cairn-sql`); the catalog only checks names and applies changes deterministically.
//!
//! Names: routine names are case-insensitive (as in MySQL), database names case-sensitive
//! (`lower_case_table_names = 0`). Functions and procedures have separate name spaces.
//!
//! Privileges (CREATE ROUTINE, ALTER ROUTINE, EXECUTE) are not checked yet: users and grants
//! come with a later change. The definer and SQL SECURITY are recorded and shown so that the
//! checks can use them when they arrive.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::types::ColumnType;

/// Longest routine name MySQL accepts (NAME_CHAR_LEN).
pub const MAX_ROUTINE_NAME_CHARS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum RoutineKind {
    Function,
    Procedure,
}

impl RoutineKind {
    /// `FUNCTION` or `PROCEDURE`, as MySQL's messages and SHOW output spell it.
    pub fn keyword(self) -> &'static str {
        match self {
            RoutineKind::Function => "FUNCTION",
            RoutineKind::Procedure => "PROCEDURE",
        }
    }
}

/// How a procedure parameter passes values (functions have IN parameters only).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ParamMode {
    In,
    Out,
    InOut,
}

impl ParamMode {
    pub fn keyword(self) -> &'static str {
        match self {
            ParamMode::In => "IN",
            ParamMode::Out => "OUT",
            ParamMode::InOut => "INOUT",
        }
    }
}

/// A declared type of a parameter, a return value or a local variable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutineType {
    pub ty: ColumnType,
    /// An explicit `CHARSET` or `COLLATE` of a string type, as written; None uses the default.
    pub collation: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutineParam {
    pub mode: ParamMode,
    pub name: String,
    pub ty: RoutineType,
}

/// `SQL SECURITY DEFINER | INVOKER`: whose privileges the body runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SqlSecurity {
    Definer,
    Invoker,
}

impl SqlSecurity {
    pub fn keyword(self) -> &'static str {
        match self {
            SqlSecurity::Definer => "DEFINER",
            SqlSecurity::Invoker => "INVOKER",
        }
    }
}

/// What the body says it does with data (informative in MySQL, and here).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataAccess {
    ContainsSql,
    NoSql,
    ReadsSqlData,
    ModifiesSqlData,
}

impl DataAccess {
    /// The characteristic as written in CREATE and shown by information_schema.ROUTINES.
    pub fn keyword(self) -> &'static str {
        match self {
            DataAccess::ContainsSql => "CONTAINS SQL",
            DataAccess::NoSql => "NO SQL",
            DataAccess::ReadsSqlData => "READS SQL DATA",
            DataAccess::ModifiesSqlData => "MODIFIES SQL DATA",
        }
    }
}

/// One stored function or procedure.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutineDef {
    pub database: String,
    /// As written in CREATE (lookups ignore case).
    pub name: String,
    pub kind: RoutineKind,
    /// The catalog version that created or last altered the routine: SQL nodes cache the parsed
    /// body under it, so a change anywhere invalidates every node's copy.
    pub version: u64,
    pub params: Vec<RoutineParam>,
    /// A function's return type; None for procedures.
    pub returns: Option<RoutineType>,
    /// The parameter list as written between the parentheses.
    pub param_list: String,
    /// The body as written (from its first token to its last).
    pub body: String,
    pub definer_user: String,
    pub definer_host: String,
    pub security: SqlSecurity,
    pub deterministic: bool,
    pub data_access: DataAccess,
    pub comment: String,
    /// The sql_mode in effect at CREATE: the body runs with it, whatever the caller's.
    pub sql_mode: String,
    pub character_set_client: String,
    pub collation_connection: String,
    pub database_collation: String,
    /// Microseconds since the epoch (UTC), from the creating SQL node's clock.
    pub created_micros: i64,
    pub modified_micros: i64,
}

impl RoutineDef {
    /// `` `user`@`host` ``, as SHOW CREATE and SHOW … STATUS print the definer.
    pub fn definer(&self) -> String {
        format!("`{}`@`{}`", self.definer_user.replace('`', "``"), self.definer_host.replace('`', "``"))
    }

    /// The definer as information_schema.ROUTINES and SHOW … STATUS show it (`user@host`).
    pub fn definer_plain(&self) -> String {
        format!("{}@{}", self.definer_user, self.definer_host)
    }

    /// The full CREATE statement, as SHOW CREATE FUNCTION / PROCEDURE prints it (MySQL 8's
    /// layout: header on one line, one characteristic per indented line, then the body as
    /// written). Parsing it again gives the same routine: SQL nodes build their executable form
    /// from this text.
    pub fn create_statement(&self) -> String {
        let mut out = format!(
            "CREATE DEFINER={} {} `{}`({})",
            self.definer(),
            self.kind.keyword(),
            self.name.replace('`', "``"),
            self.param_list
        );
        if let Some(r) = &self.returns {
            out.push_str(" RETURNS ");
            out.push_str(&r.ty.to_string());
            if let Some(c) = &r.collation {
                out.push_str(" COLLATE ");
                out.push_str(c);
            }
        }
        out.push('\n');
        if self.deterministic {
            out.push_str("    DETERMINISTIC\n");
        }
        if self.data_access != DataAccess::ContainsSql {
            out.push_str("    ");
            out.push_str(self.data_access.keyword());
            out.push('\n');
        }
        if self.security == SqlSecurity::Invoker {
            out.push_str("    SQL SECURITY INVOKER\n");
        }
        if !self.comment.is_empty() {
            out.push_str("    COMMENT '");
            out.push_str(&self.comment.replace('\\', "\\\\").replace('\'', "''"));
            out.push_str("'\n");
        }
        out.push_str(&self.body);
        out
    }

    /// Checks what the catalog itself must guarantee: a usable name, parameters named once,
    /// a return type exactly for functions, IN-only parameters for functions.
    pub fn validate(&self) -> Result<()> {
        check_routine_name(&self.name)?;
        for (i, p) in self.params.iter().enumerate() {
            if self.params[..i].iter().any(|q| q.name.eq_ignore_ascii_case(&p.name)) {
                return Err(Error::new(ErrorKind::DuplicateParameter, format!("Duplicate parameter: {}", p.name)));
            }
            if self.kind == RoutineKind::Function && p.mode != ParamMode::In {
                return Err(Error::internal("a function parameter that is not IN"));
            }
        }
        if (self.kind == RoutineKind::Function) != self.returns.is_some() {
            return Err(Error::internal("a function needs a return type and a procedure has none"));
        }
        Ok(())
    }
}

/// MySQL's rules for routine names (1458 otherwise): not empty, at most 64 characters, no
/// trailing space.
pub fn check_routine_name(name: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > MAX_ROUTINE_NAME_CHARS || name.ends_with(' ') {
        return Err(Error::new(ErrorKind::WrongRoutineName, format!("Incorrect routine name '{name}'")));
    }
    Ok(())
}

/// Where a routine sits in the catalog: database, kind, and the name in lower case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoutineKey {
    pub database: String,
    pub kind: RoutineKind,
    pub name: String,
}

impl RoutineKey {
    pub fn new(database: &str, kind: RoutineKind, name: &str) -> RoutineKey {
        RoutineKey { database: database.to_string(), kind, name: name.to_lowercase() }
    }
}

/// Characteristics `ALTER FUNCTION/PROCEDURE` may change; None leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RoutineChanges {
    pub comment: Option<String>,
    pub security: Option<SqlSecurity>,
    pub data_access: Option<DataAccess>,
    /// The altering SQL node's clock, for `Modified` / LAST_ALTERED.
    pub modified_micros: i64,
}

/// MySQL's "FUNCTION db.f does not exist" (1305).
pub fn does_not_exist(kind: RoutineKind, database: &str, name: &str) -> Error {
    Error::new(ErrorKind::RoutineDoesNotExist, format!("{} {database}.{name} does not exist", kind.keyword()))
}

/// MySQL's "FUNCTION f already exists" (1304).
pub fn already_exists(kind: RoutineKind, name: &str) -> Error {
    Error::new(ErrorKind::RoutineExists, format!("{} {name} already exists", kind.keyword()))
}
