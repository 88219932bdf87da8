//! Accounts, roles and grants: the part of the cluster catalog that says who may connect from
//! where, with which credential, and what each account may do.
//!
//! # Concept
//!
//! MySQL's privilege system, kept in the cluster catalog instead of per-server `mysql.*` tables,
//! so that every SQL node enforces the same accounts. An account is a `'user'@'host'` pair whose
//! host is a pattern (`%` and `_` wildcards, an IPv4 address with a netmask or a CIDR suffix,
//! `localhost`). A login is matched against every account of that user name (and the anonymous
//! user `''`), most specific host first, as MySQL sorts its `mysql.user` table
//! ([`Accounts::find_login`]). Privileges are granted at five levels: global (`*.*`), database
//! (`db.*`, where `_` and `%` in the name are wildcards unless escaped), table, column and
//! routine. Roles are accounts that cannot log in; granting a role to an account lets the
//! account activate it (`SET ROLE`, or by default), and an active role adds its privileges.
//!
//! # Guarantees
//!
//! - Passwords are never stored: an account keeps the verifier of its authentication plugin
//!   ([`Credential`]).
//! - Applying an [`AccountOp`] is deterministic and atomic: every management node applies the
//!   same ops in the same order to the same state; an op that fails for one of the accounts it
//!   names changes nothing (MySQL's CREATE USER and DROP USER are atomic in 8.0 too).
//! - Who may run an op is decided by the SQL node that proposes it (it knows the session's
//!   privileges); applying checks only that the op makes sense against the current state.
//!
//! # Where Cairn differs from MySQL
//!
//! - `caching_sha2_password` accounts keep SHA256(SHA256(password)), the fast-authentication
//!   verifier that MySQL keeps only in each server's memory, instead of a salted,
//!   5000-round digest. That lets every SQL node authenticate every login on the fast path
//!   without first seeing the password in clear, at the price that the catalog copy is as
//!   sensitive as the `mysql_native_password` one: whoever reads a verifier can log in as the
//!   account (docs/security.md says who can read the catalog).
//! - Host names are not resolved (MySQL's `skip_name_resolve`): a host pattern that is a name
//!   other than `localhost` matches only a client whose address is written the same way.
//! - Partial revokes, dynamic privileges other than those listed in [`Privilege`], and
//!   proxies are left out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::{bail, err};

// ----- Privileges -----

macro_rules! privileges {
    ($( $(#[$doc:meta])* $name:ident = ($bit:expr, $text:expr, $levels:expr) ),* $(,)?) => {
        /// One privilege. The bit positions are part of the catalog's serialized form: append,
        /// never renumber.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Privilege { $( $(#[$doc])* $name ),* }

        impl Privilege {
            pub const ALL: &'static [Privilege] = &[ $( Privilege::$name ),* ];

            pub fn bit(self) -> u64 { match self { $( Privilege::$name => 1u64 << $bit ),* } }

            /// The name as GRANT and SHOW GRANTS write it.
            pub fn name(self) -> &'static str { match self { $( Privilege::$name => $text ),* } }

            /// The levels at which the privilege can be granted ([`level`] bits).
            pub fn levels(self) -> u8 { match self { $( Privilege::$name => $levels ),* } }
        }
    };
}

/// Grant levels, as bits of [`Privilege::levels`].
pub mod level {
    pub const GLOBAL: u8 = 1;
    pub const DATABASE: u8 = 2;
    pub const TABLE: u8 = 4;
    pub const COLUMN: u8 = 8;
    pub const ROUTINE: u8 = 16;
}

const G: u8 = level::GLOBAL;
const GD: u8 = level::GLOBAL | level::DATABASE;
const GDT: u8 = level::GLOBAL | level::DATABASE | level::TABLE;
const GDTC: u8 = level::GLOBAL | level::DATABASE | level::TABLE | level::COLUMN;
const GDR: u8 = level::GLOBAL | level::DATABASE | level::ROUTINE;
const GDTR: u8 = level::GLOBAL | level::DATABASE | level::TABLE | level::ROUTINE;

privileges! {
    Select = (0, "SELECT", GDTC),
    Insert = (1, "INSERT", GDTC),
    Update = (2, "UPDATE", GDTC),
    Delete = (3, "DELETE", GDT),
    Create = (4, "CREATE", GDT),
    Drop = (5, "DROP", GDT),
    Reload = (6, "RELOAD", G),
    Shutdown = (7, "SHUTDOWN", G),
    /// SHOW PROCESSLIST of other users' sessions; cluster status tables.
    Process = (8, "PROCESS", G),
    File = (9, "FILE", G),
    References = (10, "REFERENCES", GDTC),
    Index = (11, "INDEX", GDT),
    Alter = (12, "ALTER", GDT),
    ShowDatabases = (13, "SHOW DATABASES", G),
    /// The administrative catch-all (KILL of others' sessions, SET GLOBAL, …).
    Super = (14, "SUPER", G),
    CreateTemporaryTables = (15, "CREATE TEMPORARY TABLES", GD),
    LockTables = (16, "LOCK TABLES", GD),
    Execute = (17, "EXECUTE", GDR),
    ReplicationSlave = (18, "REPLICATION SLAVE", G),
    ReplicationClient = (19, "REPLICATION CLIENT", G),
    CreateView = (20, "CREATE VIEW", GDT),
    ShowView = (21, "SHOW VIEW", GDT),
    CreateRoutine = (22, "CREATE ROUTINE", GD),
    AlterRoutine = (23, "ALTER ROUTINE", GDR),
    CreateUser = (24, "CREATE USER", G),
    Event = (25, "EVENT", GD),
    Trigger = (26, "TRIGGER", GDT),
    CreateTablespace = (27, "CREATE TABLESPACE", G),
    CreateRole = (28, "CREATE ROLE", G),
    DropRole = (29, "DROP ROLE", G),
    /// WITH GRANT OPTION: may grant the privileges held at the same level.
    GrantOption = (30, "GRANT OPTION", GDTR),
}

/// A set of privileges.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PrivSet(pub u64);

impl PrivSet {
    pub const EMPTY: PrivSet = PrivSet(0);

    pub fn of(privileges: &[Privilege]) -> PrivSet {
        PrivSet(privileges.iter().fold(0, |acc, p| acc | p.bit()))
    }

    /// ALL [PRIVILEGES] at a level: every privilege of that level except GRANT OPTION.
    pub fn all_at(level_bit: u8) -> PrivSet {
        PrivSet(
            Privilege::ALL
                .iter()
                .filter(|p| **p != Privilege::GrantOption && p.levels() & level_bit != 0)
                .fold(0, |acc, p| acc | p.bit()),
        )
    }

    pub fn has(self, p: Privilege) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub fn union(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 | other.0)
    }

    pub fn minus(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & !other.0)
    }

    pub fn intersect(self, other: PrivSet) -> PrivSet {
        PrivSet(self.0 & other.0)
    }

    pub fn contains_all(self, other: PrivSet) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn iter(self) -> impl Iterator<Item = Privilege> {
        Privilege::ALL.iter().copied().filter(move |p| self.has(*p))
    }

    /// The privileges that do not exist at a level, for the 1144/1221 checks.
    pub fn invalid_at(self, level_bit: u8) -> PrivSet {
        PrivSet(self.0 & !Privilege::ALL.iter().filter(|p| p.levels() & level_bit != 0).fold(0, |a, p| a | p.bit()))
    }
}

impl fmt::Debug for PrivSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|p| p.name())).finish()
    }
}

/// Parses a privilege name as GRANT writes it (`SELECT`, `CREATE ROUTINE`, `ALL PRIVILEGES` is
/// handled by the caller). Words are compared case-insensitively, spaces normalized.
pub fn privilege_by_name(words: &str) -> Option<Privilege> {
    let normalized: String = words.split_whitespace().collect::<Vec<_>>().join(" ").to_ascii_uppercase();
    // MySQL accepts these older spellings.
    let normalized = match normalized.as_str() {
        "REPLICATION REPLICA" => "REPLICATION SLAVE".to_string(),
        _ => normalized,
    };
    Privilege::ALL.iter().copied().find(|p| p.name() == normalized)
}

// ----- Account names and host patterns -----

/// `'user'@'host'`. Hosts compare case-insensitively and are kept lower-cased; user names are
/// case-sensitive, as in MySQL.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountName {
    pub user: String,
    pub host: String,
}

impl AccountName {
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> AccountName {
        AccountName { user: user.into(), host: host.into().to_ascii_lowercase() }
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}'@'{}'", self.user.replace('\'', "''"), self.host.replace('\'', "''"))
    }
}

/// The longest user name MySQL 8 accepts.
pub const MAX_USER_NAME_CHARS: usize = 32;
/// The longest host name or pattern.
pub const MAX_HOST_CHARS: usize = 255;

/// Checks the lengths MySQL checks (error 1470 there; here 1396 with the reason, which tells
/// the user as much).
pub fn check_account_name(name: &AccountName, operation: &str) -> Result<()> {
    if name.user.chars().count() > MAX_USER_NAME_CHARS {
        bail!(CannotUser, "Operation {operation} failed for {name}: user names are at most {MAX_USER_NAME_CHARS} characters");
    }
    if name.host.chars().count() > MAX_HOST_CHARS {
        bail!(CannotUser, "Operation {operation} failed for {name}: host names are at most {MAX_HOST_CHARS} characters");
    }
    Ok(())
}

/// How specific a host pattern is: lower sorts first (more specific). MySQL's order: literal
/// hosts and addresses (with or without a netmask), then patterns with wildcards, those with a
/// longer literal prefix first, then `%`, then the empty host.
fn host_rank(host: &str) -> (u8, usize) {
    if host.is_empty() {
        return (4, 0);
    }
    if host == "%" {
        return (3, 0);
    }
    match host.find(['%', '_']) {
        // A literal prefix that is longer is more specific.
        Some(prefix) => (2, usize::MAX - prefix),
        None => (if host.contains('/') { 1 } else { 0 }, 0),
    }
}

/// Whether an account's host pattern admits a client connecting from `client`, an IP address in
/// text form (`127.0.0.1`, `::1`) or `localhost` for a local socket.
pub fn host_matches(pattern: &str, client: &str) -> bool {
    if pattern.is_empty() || pattern == "%" {
        return true;
    }
    let client_ip: Option<IpAddr> = client.parse().ok();
    let loopback = client.eq_ignore_ascii_case("localhost") || client_ip.is_some_and(|ip| ip.is_loopback());
    if pattern.eq_ignore_ascii_case("localhost") {
        return loopback;
    }
    if let Some((address, mask)) = pattern.split_once('/') {
        return netmask_matches(address, mask, client_ip);
    }
    if let (Ok(a), Some(b)) = (pattern.parse::<IpAddr>(), client_ip) {
        return a == b;
    }
    crate::expr::like(&client.to_ascii_lowercase(), pattern, '\\', true)
}

/// `10.0.0.0/255.255.255.0` (MySQL's form) or `10.0.0.0/24` (CIDR, MySQL 8.0.23+), IPv4 only as
/// in MySQL. A malformed pattern matches nothing.
fn netmask_matches(address: &str, mask: &str, client: Option<IpAddr>) -> bool {
    let (Ok(address), Some(IpAddr::V4(client))) = (address.parse::<std::net::Ipv4Addr>(), client) else {
        return false;
    };
    let mask: u32 = if let Ok(bits) = mask.parse::<u8>() {
        if bits > 32 {
            return false;
        }
        if bits == 0 { 0 } else { u32::MAX << (32 - u32::from(bits)) }
    } else if let Ok(m) = mask.parse::<std::net::Ipv4Addr>() {
        u32::from(m)
    } else {
        return false;
    };
    u32::from(client) & mask == u32::from(address)
}

// ----- Accounts -----

/// Authentication plugins an account may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuthPlugin {
    NativePassword,
    CachingSha2Password,
}

impl AuthPlugin {
    pub fn name(self) -> &'static str {
        match self {
            AuthPlugin::NativePassword => "mysql_native_password",
            AuthPlugin::CachingSha2Password => "caching_sha2_password",
        }
    }

    pub fn by_name(name: &str) -> Option<AuthPlugin> {
        match name.to_ascii_lowercase().as_str() {
            "mysql_native_password" => Some(AuthPlugin::NativePassword),
            "caching_sha2_password" => Some(AuthPlugin::CachingSha2Password),
            _ => None,
        }
    }
}

/// What an account proves its identity with: the plugin and its verifier, never the password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub plugin: AuthPlugin,
    /// `None`: no password (the client must send an empty answer). Otherwise SHA1(SHA1(pw))
    /// (20 bytes) for mysql_native_password, SHA256(SHA256(pw)) (32 bytes) for
    /// caching_sha2_password.
    pub verifier: Option<Vec<u8>>,
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print a verifier: it is as good as the password.
        f.debug_struct("Credential").field("plugin", &self.plugin).field("has_password", &self.verifier.is_some()).finish()
    }
}

impl Credential {
    pub fn none(plugin: AuthPlugin) -> Credential {
        Credential { plugin, verifier: None }
    }

    /// The credential for a password given in clear (`IDENTIFIED BY 'pw'`): an empty password
    /// is no password, as in MySQL.
    pub fn from_password(plugin: AuthPlugin, password: &str) -> Credential {
        if password.is_empty() {
            return Credential::none(plugin);
        }
        let verifier = match plugin {
            AuthPlugin::NativePassword => native_verifier(password.as_bytes()).to_vec(),
            AuthPlugin::CachingSha2Password => sha2_verifier(password.as_bytes()).to_vec(),
        };
        Credential { plugin, verifier: Some(verifier) }
    }

    /// Checks the verifier's length for its plugin (an `IDENTIFIED WITH … AS 'hash'` from a user).
    pub fn validate(&self) -> Result<()> {
        let want = match self.plugin {
            AuthPlugin::NativePassword => 20,
            AuthPlugin::CachingSha2Password => 32,
        };
        match &self.verifier {
            Some(v) if v.len() != want => {
                bail!(WrongArguments, "The password hash has the wrong format for {}", self.plugin.name())
            }
            _ => Ok(()),
        }
    }

    /// The `authentication_string` as SHOW CREATE USER and mysql.user show it: `*` and 40 hex
    /// digits for native passwords (MySQL's form), `$cairn$` and hex for the SHA-256 verifier.
    pub fn authentication_string(&self) -> String {
        let Some(v) = &self.verifier else {
            return String::new();
        };
        let hex: String = v.iter().map(|b| format!("{b:02X}")).collect();
        match self.plugin {
            AuthPlugin::NativePassword => format!("*{hex}"),
            AuthPlugin::CachingSha2Password => format!("$cairn$sha256sha256${hex}"),
        }
    }

    /// Parses what [`Credential::authentication_string`] writes (for `IDENTIFIED WITH plugin AS
    /// 'string'`).
    pub fn from_authentication_string(plugin: AuthPlugin, text: &str) -> Result<Credential> {
        if text.is_empty() {
            return Ok(Credential::none(plugin));
        }
        let hex = match plugin {
            AuthPlugin::NativePassword => text.strip_prefix('*'),
            AuthPlugin::CachingSha2Password => text.strip_prefix("$cairn$sha256sha256$"),
        };
        let bytes = hex.and_then(decode_hex);
        let credential = Credential { plugin, verifier: bytes };
        if credential.verifier.is_none() {
            bail!(WrongArguments, "The password hash doesn't have the expected format for {}", plugin.name());
        }
        credential.validate()?;
        Ok(credential)
    }
}

/// SHA1(SHA1(password)): what mysql_native_password verifies against.
pub fn native_verifier(password: &[u8]) -> [u8; 20] {
    use sha1::Digest;
    let once = sha1::Sha1::digest(password);
    sha1::Sha1::digest(once).into()
}

/// SHA256(SHA256(password)): what caching_sha2_password's fast path verifies against.
pub fn sha2_verifier(password: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let once = sha2::Sha256::digest(password);
    sha2::Sha256::digest(once).into()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// `REQUIRE …` of CREATE/ALTER USER.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TlsRequirement {
    #[default]
    None,
    /// REQUIRE SSL: the connection must be encrypted.
    Ssl,
    /// REQUIRE X509: encrypted, and the client presented a certificate the server verified.
    X509,
    /// REQUIRE SUBJECT/ISSUER: a verified certificate with these exact names (OpenSSL's
    /// one-line form, `/C=US/O=UC Berkeley/CN=exim`, as MySQL compares them).
    Specified { subject: Option<String>, issuer: Option<String> },
    /// REQUIRE CIPHER, alone or with SUBJECT/ISSUER: also this exact negotiated cipher (MySQL's
    /// name for it). A variant of its own, after `Specified`, so that catalogs written before it
    /// still decode (the catalog's encoding numbers the variants).
    SpecifiedWithCipher { subject: Option<String>, issuer: Option<String>, cipher: String },
}

impl TlsRequirement {
    /// The REQUIRE SUBJECT/ISSUER/CIPHER parts, if this is such a requirement.
    pub fn specified(&self) -> Option<(Option<&str>, Option<&str>, Option<&str>)> {
        match self {
            TlsRequirement::Specified { subject, issuer } => Some((subject.as_deref(), issuer.as_deref(), None)),
            TlsRequirement::SpecifiedWithCipher { subject, issuer, cipher } => {
                Some((subject.as_deref(), issuer.as_deref(), Some(cipher.as_str())))
            }
            _ => None,
        }
    }
}

/// `WITH MAX_… n` resource limits; 0 means no limit, as in MySQL.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLimits {
    pub max_queries_per_hour: u64,
    pub max_updates_per_hour: u64,
    pub max_connections_per_hour: u64,
    pub max_user_connections: u64,
}

/// An account or a role.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub name: AccountName,
    pub credential: Credential,
    pub tls: TlsRequirement,
    pub limits: ResourceLimits,
    /// ACCOUNT LOCK: logins are refused (roles are created locked).
    pub locked: bool,
    /// Created by CREATE ROLE.
    pub is_role: bool,
}

impl Account {
    pub fn new(name: AccountName, credential: Credential) -> Account {
        Account { name, credential, tls: TlsRequirement::None, limits: ResourceLimits::default(), locked: false, is_role: false }
    }
}

/// A routine, for routine-level grants: `FUNCTION db.f` or `PROCEDURE db.p` (the catalog's own
/// kind of routine).
pub use crate::routine::RoutineKind;

/// What a GRANT or REVOKE names after ON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantTarget {
    /// `*.*`
    Global,
    /// `db.*`; the name may hold `_`/`%` wildcards (escaped with `\` to be literal).
    Database(String),
    /// `db.table` (columns, if any, are in the op).
    Table { database: String, table: String },
    /// `FUNCTION db.f`, `PROCEDURE db.p`; routine names compare case-insensitively.
    Routine { database: String, kind: RoutineKind, name: String },
}

impl GrantTarget {
    fn level_bit(&self) -> u8 {
        match self {
            GrantTarget::Global => level::GLOBAL,
            GrantTarget::Database(_) => level::DATABASE,
            GrantTarget::Table { .. } => level::TABLE,
            GrantTarget::Routine { .. } => level::ROUTINE,
        }
    }
}

/// Every privilege granted to one account or role.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grants {
    pub global: PrivSet,
    pub databases: BTreeMap<String, PrivSet>,
    pub tables: BTreeMap<(String, String), PrivSet>,
    /// (database, table) → column → privileges (SELECT, INSERT, UPDATE, REFERENCES).
    pub columns: BTreeMap<(String, String), BTreeMap<String, PrivSet>>,
    /// (database, kind, lower-cased name) → privileges.
    pub routines: BTreeMap<(String, RoutineKind, String), PrivSet>,
}

impl Grants {
    fn is_empty(&self) -> bool {
        self.global.is_empty() && self.databases.is_empty() && self.tables.is_empty() && self.columns.is_empty() && self.routines.is_empty()
    }

    fn merge(&mut self, other: &Grants) {
        self.global = self.global.union(other.global);
        for (k, v) in &other.databases {
            let e = self.databases.entry(k.clone()).or_default();
            *e = e.union(*v);
        }
        for (k, v) in &other.tables {
            let e = self.tables.entry(k.clone()).or_default();
            *e = e.union(*v);
        }
        for (k, cols) in &other.columns {
            let e = self.columns.entry(k.clone()).or_default();
            for (c, v) in cols {
                let ce = e.entry(c.clone()).or_default();
                *ce = ce.union(*v);
            }
        }
        for (k, v) in &other.routines {
            let e = self.routines.entry(k.clone()).or_default();
            *e = e.union(*v);
        }
    }
}

/// A role granted to an account (or to another role).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RoleGrant {
    pub role: AccountName,
    /// WITH ADMIN OPTION: may grant the role on.
    pub admin: bool,
}

/// The account part of the catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Accounts {
    pub accounts: BTreeMap<AccountName, Account>,
    pub grants: BTreeMap<AccountName, Grants>,
    /// Roles granted to each account or role.
    pub roles: BTreeMap<AccountName, BTreeSet<RoleGrant>>,
    /// The roles activated at login (SET DEFAULT ROLE).
    pub default_roles: BTreeMap<AccountName, BTreeSet<AccountName>>,
}

/// A change to the accounts, as the management nodes replicate it (inside
/// `CatalogOp::Accounts`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum AccountOp {
    /// CREATE USER / CREATE ROLE of one or more accounts.
    Create { accounts: Vec<Account>, if_not_exists: bool },
    /// ALTER USER: each field that is `Some` replaces the account's.
    Alter { name: AccountName, changes: AccountChanges, if_exists: bool },
    /// DROP USER / DROP ROLE: the accounts, their grants, and every grant of them as roles.
    Drop { names: Vec<AccountName>, if_exists: bool, roles: bool },
    /// RENAME USER a TO b, …: grants move with the account.
    Rename { pairs: Vec<(AccountName, AccountName)> },
    /// GRANT privileges ON target TO grantees [WITH GRANT OPTION].
    Grant { target: GrantTarget, privileges: PrivSet, columns: BTreeMap<String, PrivSet>, grantees: Vec<AccountName> },
    /// REVOKE privileges ON target FROM grantees.
    Revoke { target: GrantTarget, privileges: PrivSet, columns: BTreeMap<String, PrivSet>, grantees: Vec<AccountName> },
    /// REVOKE ALL PRIVILEGES, GRANT OPTION FROM grantees.
    RevokeAll { grantees: Vec<AccountName> },
    /// GRANT role, … TO account, … [WITH ADMIN OPTION].
    GrantRoles { roles: Vec<AccountName>, grantees: Vec<AccountName>, admin: bool },
    /// REVOKE role, … FROM account, ….
    RevokeRoles { roles: Vec<AccountName>, grantees: Vec<AccountName> },
    /// SET DEFAULT ROLE … TO …; an empty list is NONE.
    SetDefaultRoles { grantees: Vec<AccountName>, roles: Vec<AccountName> },
    /// `cairn restore`: the accounts of a backup that the cluster does not have, each with its
    /// grants, granted roles and default roles. Accounts the cluster already has are left as
    /// they are (a note says so), as restored tables that exist are.
    Restore(Accounts),
}

/// The fields ALTER USER (and SET PASSWORD) may change.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct AccountChanges {
    pub credential: Option<Credential>,
    pub tls: Option<TlsRequirement>,
    /// Each limit given replaces the account's (`None` fields of the inner options keep it).
    pub max_queries_per_hour: Option<u64>,
    pub max_updates_per_hour: Option<u64>,
    pub max_connections_per_hour: Option<u64>,
    pub max_user_connections: Option<u64>,
    pub locked: Option<bool>,
}

/// What applying an op did, for the client's reply.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountOutcome {
    /// Notes to show as warnings (3162, 3163, …) for IF [NOT] EXISTS.
    pub notes: Vec<(ErrorKind, String)>,
}

fn cannot(operation: &str, failed: &[&AccountName]) -> Error {
    let names: Vec<String> = failed.iter().map(|n| n.to_string()).collect();
    err!(CannotUser, "Operation {operation} failed for {}", names.join(","))
}

/// Escapes in a database grant name: `\_` and `\%` are literal.
pub fn database_pattern_matches(pattern: &str, database: &str) -> bool {
    if !pattern.contains(['%', '_']) {
        return pattern == database;
    }
    crate::expr::like(database, pattern, '\\', true)
}

impl Accounts {
    pub fn get(&self, name: &AccountName) -> Option<&Account> {
        self.accounts.get(name)
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The account a login of `user` from `client_host` resolves to: every account whose user is
    /// `user` or anonymous (`''`) and whose host pattern admits the client, the most specific
    /// host first, then a named user before the anonymous one (MySQL's `mysql.user` sort).
    /// Roles never match a login.
    pub fn find_login(&self, user: &str, client_host: &str) -> Option<&Account> {
        self.accounts
            .values()
            .filter(|a| !a.is_role && (a.name.user == user || a.name.user.is_empty()) && host_matches(&a.name.host, client_host))
            .min_by(|a, b| {
                (host_rank(&a.name.host), a.name.user.is_empty(), &a.name.host)
                    .cmp(&(host_rank(&b.name.host), b.name.user.is_empty(), &b.name.host))
            })
    }

    /// The roles granted to an account, directly.
    pub fn granted_roles(&self, name: &AccountName) -> impl Iterator<Item = &RoleGrant> {
        self.roles.get(name).into_iter().flatten()
    }

    /// The privileges in effect for `account` with `active` roles (and, transitively, the roles
    /// granted to those roles).
    pub fn effective(&self, account: &AccountName, active: &[AccountName]) -> Grants {
        let mut grants = self.grants.get(account).cloned().unwrap_or_default();
        let mut seen: BTreeSet<&AccountName> = BTreeSet::new();
        let mut stack: Vec<&AccountName> = active.iter().collect();
        while let Some(role) = stack.pop() {
            if !seen.insert(role) {
                continue;
            }
            if let Some(g) = self.grants.get(role) {
                grants.merge(g);
            }
            stack.extend(self.granted_roles(role).map(|r| &r.role));
        }
        grants
    }

    /// Applies one op; on error nothing changed.
    pub fn apply(&mut self, op: AccountOp) -> Result<AccountOutcome> {
        let mut outcome = AccountOutcome::default();
        match op {
            AccountOp::Create { accounts, if_not_exists } => {
                let operation = if accounts.first().is_some_and(|a| a.is_role) { "CREATE ROLE" } else { "CREATE USER" };
                let mut failed = Vec::new();
                let mut seen = BTreeSet::new();
                for a in &accounts {
                    check_account_name(&a.name, operation)?;
                    a.credential.validate()?;
                    if (self.accounts.contains_key(&a.name) || !seen.insert(&a.name)) && !if_not_exists {
                        failed.push(&a.name);
                    }
                }
                if !failed.is_empty() {
                    return Err(cannot(operation, &failed));
                }
                for a in accounts {
                    if self.accounts.contains_key(&a.name) {
                        outcome.notes.push((ErrorKind::UserAlreadyExists, format!("Authorization ID {} already exists.", a.name)));
                        continue;
                    }
                    self.accounts.insert(a.name.clone(), a);
                }
            }
            AccountOp::Alter { name, changes, if_exists } => {
                let Some(account) = self.accounts.get_mut(&name) else {
                    if if_exists {
                        outcome.notes.push((ErrorKind::UserDoesNotExist, format!("Authorization ID {name} does not exist.")));
                        return Ok(outcome);
                    }
                    return Err(cannot("ALTER USER", &[&name]));
                };
                if let Some(c) = &changes.credential {
                    c.validate()?;
                }
                if let Some(c) = changes.credential {
                    account.credential = c;
                }
                if let Some(t) = changes.tls {
                    account.tls = t;
                }
                let l = &mut account.limits;
                l.max_queries_per_hour = changes.max_queries_per_hour.unwrap_or(l.max_queries_per_hour);
                l.max_updates_per_hour = changes.max_updates_per_hour.unwrap_or(l.max_updates_per_hour);
                l.max_connections_per_hour = changes.max_connections_per_hour.unwrap_or(l.max_connections_per_hour);
                l.max_user_connections = changes.max_user_connections.unwrap_or(l.max_user_connections);
                if let Some(locked) = changes.locked {
                    account.locked = locked;
                }
            }
            AccountOp::Drop { names, if_exists, roles } => {
                let operation = if roles { "DROP ROLE" } else { "DROP USER" };
                let missing: Vec<&AccountName> = names.iter().filter(|n| !self.accounts.contains_key(n)).collect();
                if !missing.is_empty() && !if_exists {
                    return Err(cannot(operation, &missing));
                }
                for n in &names {
                    if self.accounts.remove(n).is_none() {
                        outcome.notes.push((ErrorKind::UserDoesNotExist, format!("Authorization ID {n} does not exist.")));
                        continue;
                    }
                    self.grants.remove(n);
                    self.roles.remove(n);
                    self.default_roles.remove(n);
                    for granted in self.roles.values_mut() {
                        granted.retain(|g| &g.role != n);
                    }
                    for defaults in self.default_roles.values_mut() {
                        defaults.remove(n);
                    }
                }
                self.roles.retain(|_, v| !v.is_empty());
                self.default_roles.retain(|_, v| !v.is_empty());
            }
            AccountOp::Rename { pairs } => {
                // Check the whole list against the state it would meet, in order.
                let mut names: BTreeSet<AccountName> = self.accounts.keys().cloned().collect();
                for (from, to) in &pairs {
                    check_account_name(to, "RENAME USER")?;
                    if !names.remove(from) || !names.insert(to.clone()) {
                        return Err(cannot("RENAME USER", &[from]));
                    }
                }
                for (from, to) in pairs {
                    let rename = |n: &mut AccountName| {
                        if *n == from {
                            *n = to.clone();
                        }
                    };
                    if let Some(mut a) = self.accounts.remove(&from) {
                        a.name = to.clone();
                        self.accounts.insert(to.clone(), a);
                    }
                    if let Some(g) = self.grants.remove(&from) {
                        self.grants.insert(to.clone(), g);
                    }
                    if let Some(r) = self.roles.remove(&from) {
                        self.roles.insert(to.clone(), r);
                    }
                    if let Some(d) = self.default_roles.remove(&from) {
                        self.default_roles.insert(to.clone(), d);
                    }
                    for granted in self.roles.values_mut() {
                        *granted = std::mem::take(granted)
                            .into_iter()
                            .map(|mut g| {
                                rename(&mut g.role);
                                g
                            })
                            .collect();
                    }
                    for defaults in self.default_roles.values_mut() {
                        *defaults = std::mem::take(defaults)
                            .into_iter()
                            .map(|mut n| {
                                rename(&mut n);
                                n
                            })
                            .collect();
                    }
                }
            }
            AccountOp::Grant { target, privileges, columns, grantees } => {
                check_level(&target, privileges, &columns)?;
                if let Some(missing) = grantees.iter().find(|g| !self.accounts.contains_key(g)) {
                    let _ = missing;
                    bail!(CantCreateUserWithGrant, "You are not allowed to create a user with GRANT");
                }
                for g in grantees {
                    let grants = self.grants.entry(g).or_default();
                    add_grant(grants, &target, privileges, &columns);
                }
            }
            AccountOp::Revoke { target, privileges, columns, grantees } => {
                check_level(&target, privileges, &columns)?;
                for g in &grantees {
                    if !self.accounts.contains_key(g) {
                        return Err(err!(NoSuchGrant, "There is no such grant defined for user '{}' on host '{}'", g.user, g.host));
                    }
                    let held = self.grants.get(g).cloned().unwrap_or_default();
                    if !has_grant_entry(&held, &target, &columns) {
                        return Err(match &target {
                            GrantTarget::Table { table, .. } => err!(
                                NoSuchTableGrant,
                                "There is no such grant defined for user '{}' on host '{}' on table '{table}'",
                                g.user,
                                g.host
                            ),
                            _ => err!(NoSuchGrant, "There is no such grant defined for user '{}' on host '{}'", g.user, g.host),
                        });
                    }
                }
                for g in &grantees {
                    if let Some(grants) = self.grants.get_mut(g) {
                        remove_grant(grants, &target, privileges, &columns);
                        if grants.is_empty() {
                            self.grants.remove(g);
                        }
                    }
                }
            }
            AccountOp::RevokeAll { grantees } => {
                if let Some(g) = grantees.iter().find(|g| !self.accounts.contains_key(g)) {
                    return Err(cannot("REVOKE", &[g]));
                }
                for g in &grantees {
                    self.grants.remove(g);
                }
            }
            AccountOp::GrantRoles { roles, grantees, admin } => {
                for r in &roles {
                    if !self.accounts.contains_key(r) {
                        bail!(UnknownAuthorizationId, "Unknown authorization ID `{}`@`{}`", r.user, r.host);
                    }
                }
                for g in &grantees {
                    if !self.accounts.contains_key(g) {
                        bail!(UnknownAuthorizationId, "Unknown authorization ID `{}`@`{}`", g.user, g.host);
                    }
                }
                // A role granted to itself, directly or through others, would make a cycle that
                // MySQL refuses (3633); refuse it here for the same reason.
                for g in &grantees {
                    for r in &roles {
                        if r == g || self.role_reaches(r, g) {
                            bail!(WrongUsage, "Cannot grant role {r} to {g}: the grant would create a cycle");
                        }
                    }
                }
                for g in grantees {
                    let set = self.roles.entry(g).or_default();
                    for r in &roles {
                        let keep_admin = set.iter().any(|e| &e.role == r && e.admin);
                        set.retain(|e| &e.role != r);
                        set.insert(RoleGrant { role: r.clone(), admin: admin || keep_admin });
                    }
                }
            }
            AccountOp::RevokeRoles { roles, grantees } => {
                for g in &grantees {
                    for r in &roles {
                        if !self.granted_roles(g).any(|e| &e.role == r) {
                            bail!(RoleNotGranted, "`{}`@`{}` is not granted to `{}`@`{}`", r.user, r.host, g.user, g.host);
                        }
                    }
                }
                for g in &grantees {
                    if let Some(set) = self.roles.get_mut(g) {
                        set.retain(|e| !roles.contains(&e.role));
                    }
                    if let Some(defaults) = self.default_roles.get_mut(g) {
                        defaults.retain(|d| !roles.contains(d));
                    }
                }
                self.roles.retain(|_, v| !v.is_empty());
                self.default_roles.retain(|_, v| !v.is_empty());
            }
            AccountOp::Restore(backup) => {
                let Accounts { accounts, mut grants, mut roles, mut default_roles } = backup;
                for (name, account) in accounts {
                    if self.accounts.contains_key(&name) {
                        outcome.notes.push((ErrorKind::UserAlreadyExists, format!("Authorization ID {name} already exists.")));
                        continue;
                    }
                    if let Some(g) = grants.remove(&name) {
                        self.grants.insert(name.clone(), g);
                    }
                    if let Some(r) = roles.remove(&name) {
                        self.roles.insert(name.clone(), r);
                    }
                    if let Some(d) = default_roles.remove(&name) {
                        self.default_roles.insert(name.clone(), d);
                    }
                    self.accounts.insert(name, account);
                }
            }
            AccountOp::SetDefaultRoles { grantees, roles } => {
                for g in &grantees {
                    if !self.accounts.contains_key(g) {
                        bail!(UnknownAuthorizationId, "Unknown authorization ID `{}`@`{}`", g.user, g.host);
                    }
                    for r in &roles {
                        if !self.granted_roles(g).any(|e| &e.role == r) {
                            bail!(RoleNotGranted, "`{}`@`{}` is not granted to `{}`@`{}`", r.user, r.host, g.user, g.host);
                        }
                    }
                }
                for g in grantees {
                    if roles.is_empty() {
                        self.default_roles.remove(&g);
                    } else {
                        self.default_roles.insert(g, roles.iter().cloned().collect());
                    }
                }
            }
        }
        Ok(outcome)
    }

    /// Whether `from` (a role) grants `to`, directly or through other roles.
    fn role_reaches(&self, from: &AccountName, to: &AccountName) -> bool {
        let mut stack = vec![from];
        let mut seen = BTreeSet::new();
        while let Some(n) = stack.pop() {
            if !seen.insert(n) {
                continue;
            }
            for g in self.granted_roles(n) {
                if &g.role == to {
                    return true;
                }
                stack.push(&g.role);
            }
        }
        false
    }
}

/// Refuses privileges that do not exist at the target's level (MySQL's 1144 and 1221).
fn check_level(target: &GrantTarget, privileges: PrivSet, columns: &BTreeMap<String, PrivSet>) -> Result<()> {
    if !columns.is_empty() {
        if !matches!(target, GrantTarget::Table { .. }) {
            bail!(IllegalGrantForLevel, "Illegal GRANT/REVOKE command; please consult the manual to see which privileges can be used");
        }
        if columns.values().any(|p| !p.invalid_at(level::COLUMN).is_empty()) {
            bail!(IllegalGrantForLevel, "Illegal GRANT/REVOKE command; please consult the manual to see which privileges can be used");
        }
    }
    if privileges.invalid_at(target.level_bit()).is_empty() {
        return Ok(());
    }
    match target {
        GrantTarget::Database(_) => bail!(WrongUsage, "Incorrect usage of DB GRANT and GLOBAL PRIVILEGES"),
        _ => bail!(IllegalGrantForLevel, "Illegal GRANT/REVOKE command; please consult the manual to see which privileges can be used"),
    }
}

fn add_grant(grants: &mut Grants, target: &GrantTarget, privileges: PrivSet, columns: &BTreeMap<String, PrivSet>) {
    let add = |slot: &mut PrivSet| *slot = slot.union(privileges);
    match target {
        GrantTarget::Global => add(&mut grants.global),
        GrantTarget::Database(db) => add(grants.databases.entry(db.clone()).or_default()),
        GrantTarget::Table { database, table } => {
            let key = (database.clone(), table.clone());
            if !privileges.is_empty() {
                add(grants.tables.entry(key.clone()).or_default());
            }
            if !columns.is_empty() {
                let cols = grants.columns.entry(key).or_default();
                for (c, p) in columns {
                    let e = cols.entry(c.to_ascii_lowercase()).or_default();
                    *e = e.union(*p);
                }
            }
        }
        GrantTarget::Routine { database, kind, name } => {
            add(grants.routines.entry((database.clone(), *kind, name.to_ascii_lowercase())).or_default())
        }
    }
}

fn has_grant_entry(grants: &Grants, target: &GrantTarget, columns: &BTreeMap<String, PrivSet>) -> bool {
    match target {
        GrantTarget::Global => true,
        GrantTarget::Database(db) => grants.databases.contains_key(db),
        GrantTarget::Table { database, table } => {
            let key = (database.clone(), table.clone());
            if columns.is_empty() {
                grants.tables.contains_key(&key)
            } else {
                grants.columns.get(&key).is_some_and(|cols| columns.keys().all(|c| cols.contains_key(&c.to_ascii_lowercase())))
            }
        }
        GrantTarget::Routine { database, kind, name } => grants.routines.contains_key(&(database.clone(), *kind, name.to_ascii_lowercase())),
    }
}

fn remove_grant(grants: &mut Grants, target: &GrantTarget, privileges: PrivSet, columns: &BTreeMap<String, PrivSet>) {
    match target {
        GrantTarget::Global => grants.global = grants.global.minus(privileges),
        GrantTarget::Database(db) => {
            if let Some(p) = grants.databases.get_mut(db) {
                *p = p.minus(privileges);
                if p.is_empty() {
                    grants.databases.remove(db);
                }
            }
        }
        GrantTarget::Table { database, table } => {
            let key = (database.clone(), table.clone());
            if let Some(p) = grants.tables.get_mut(&key) {
                *p = p.minus(privileges);
                if p.is_empty() {
                    grants.tables.remove(&key);
                }
            }
            // REVOKE SELECT ON t also removes column-level SELECT, as in MySQL.
            if let Some(cols) = grants.columns.get_mut(&key) {
                for (c, p) in cols.iter_mut() {
                    let remove = columns.get(c).copied().unwrap_or_default().union(privileges);
                    *p = p.minus(remove);
                }
                cols.retain(|_, p| !p.is_empty());
                if cols.is_empty() {
                    grants.columns.remove(&key);
                }
            }
        }
        GrantTarget::Routine { database, kind, name } => {
            let key = (database.clone(), *kind, name.to_ascii_lowercase());
            if let Some(p) = grants.routines.get_mut(&key) {
                *p = p.minus(privileges);
                if p.is_empty() {
                    grants.routines.remove(&key);
                }
            }
        }
    }
}

// ----- Checking privileges -----

/// The privileges in effect for one session: its account's grants and its active roles',
/// merged, with lookups by object. Built once per catalog version by the SQL node.
#[derive(Clone, Debug, Default)]
pub struct Authorization {
    grants: Grants,
}

impl Authorization {
    pub fn new(accounts: &Accounts, account: &AccountName, active_roles: &[AccountName]) -> Authorization {
        Authorization { grants: accounts.effective(account, active_roles) }
    }

    /// Global privileges.
    pub fn global(&self) -> PrivSet {
        self.grants.global
    }

    /// Privileges that apply to every object of a database (global ones included).
    pub fn on_database(&self, database: &str) -> PrivSet {
        self.grants
            .databases
            .iter()
            .filter(|(pattern, _)| database_pattern_matches(pattern, database))
            .fold(self.grants.global, |acc, (_, p)| acc.union(*p))
    }

    /// Privileges on a whole table.
    pub fn on_table(&self, database: &str, table: &str) -> PrivSet {
        let table_level = self.grants.tables.get(&(database.to_string(), table.to_string())).copied().unwrap_or_default();
        self.on_database(database).union(table_level)
    }

    /// Privileges on one column (table-level ones included). Column names compare
    /// case-insensitively.
    pub fn on_column(&self, database: &str, table: &str, column: &str) -> PrivSet {
        let column_level = self
            .grants
            .columns
            .get(&(database.to_string(), table.to_string()))
            .and_then(|cols| cols.get(&column.to_ascii_lowercase()))
            .copied()
            .unwrap_or_default();
        self.on_table(database, table).union(column_level)
    }

    /// Whether some column of the table carries `p` (then a statement may use those columns).
    pub fn on_some_column(&self, database: &str, table: &str, p: Privilege) -> bool {
        self.grants
            .columns
            .get(&(database.to_string(), table.to_string()))
            .is_some_and(|cols| cols.values().any(|c| c.has(p)))
    }

    pub fn on_routine(&self, database: &str, kind: RoutineKind, name: &str) -> PrivSet {
        let routine_level =
            self.grants.routines.get(&(database.to_string(), kind, name.to_ascii_lowercase())).copied().unwrap_or_default();
        self.on_database(database).union(routine_level)
    }

    /// Whether the session may see the table at all (SHOW TABLES, information_schema): any
    /// privilege on it or on one of its columns.
    pub fn sees_table(&self, database: &str, table: &str) -> bool {
        !self.on_table(database, table).is_empty()
            || self.grants.columns.get(&(database.to_string(), table.to_string())).is_some_and(|c| !c.is_empty())
    }

    /// Whether the session may see the database (SHOW DATABASES, USE): SHOW DATABASES, or any
    /// privilege at the database level or below.
    pub fn sees_database(&self, database: &str) -> bool {
        if self.grants.global.has(Privilege::ShowDatabases) || !self.on_database(database).is_empty() {
            return true;
        }
        self.grants.tables.iter().any(|((d, _), p)| d == database && !p.is_empty())
            || self.grants.columns.keys().any(|(d, _)| d == database)
            || self.grants.routines.keys().any(|(d, _, _)| d == database)
    }

    pub fn grants(&self) -> &Grants {
        &self.grants
    }
}

// ----- SHOW GRANTS -----

fn quote_ident(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

fn privilege_list(set: PrivSet, level_bit: u8) -> String {
    let without_grant = set.minus(PrivSet::of(&[Privilege::GrantOption]));
    if without_grant == PrivSet::all_at(level_bit) {
        return "ALL PRIVILEGES".to_string();
    }
    if without_grant.is_empty() {
        return "USAGE".to_string();
    }
    without_grant.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
}

/// The lines of `SHOW GRANTS FOR account` in MySQL's form: the global line (always, `USAGE`
/// when nothing), then database, table (with column lists), routine grants, then roles.
pub fn show_grants(accounts: &Accounts, name: &AccountName, using_roles: &[AccountName]) -> Vec<String> {
    let grants = if using_roles.is_empty() { accounts.grants.get(name).cloned().unwrap_or_default() } else { accounts.effective(name, using_roles) };
    let to = format!("{}@{}", quote_ident(&name.user), quote_ident(&name.host));
    let with = |set: PrivSet| if set.has(Privilege::GrantOption) { " WITH GRANT OPTION" } else { "" };
    let mut lines = vec![format!("GRANT {} ON *.* TO {to}{}", privilege_list(grants.global, level::GLOBAL), with(grants.global))];
    for (db, set) in &grants.databases {
        lines.push(format!("GRANT {} ON {}.* TO {to}{}", privilege_list(*set, level::DATABASE), quote_ident(db), with(*set)));
    }
    let mut table_keys: BTreeSet<&(String, String)> = grants.tables.keys().collect();
    table_keys.extend(grants.columns.keys());
    for key in table_keys {
        let set = grants.tables.get(key).copied().unwrap_or_default();
        let mut parts = Vec::new();
        let table_privs = set.minus(PrivSet::of(&[Privilege::GrantOption]));
        if table_privs == PrivSet::all_at(level::TABLE) {
            parts.push("ALL PRIVILEGES".to_string());
        } else {
            for p in Privilege::ALL {
                if *p == Privilege::GrantOption {
                    continue;
                }
                let cols: Vec<&String> = grants
                    .columns
                    .get(key)
                    .map(|cols| cols.iter().filter(|(_, cp)| cp.has(*p)).map(|(c, _)| c).collect())
                    .unwrap_or_default();
                if set.has(*p) {
                    parts.push(p.name().to_string());
                } else if !cols.is_empty() {
                    let list: Vec<String> = cols.iter().map(|c| quote_ident(c)).collect();
                    parts.push(format!("{} ({})", p.name(), list.join(", ")));
                }
            }
        }
        if parts.is_empty() {
            parts.push("USAGE".to_string());
        }
        lines.push(format!("GRANT {} ON {}.{} TO {to}{}", parts.join(", "), quote_ident(&key.0), quote_ident(&key.1), with(set)));
    }
    for ((db, kind, routine), set) in &grants.routines {
        lines.push(format!(
            "GRANT {} ON {} {}.{} TO {to}{}",
            privilege_list(*set, level::ROUTINE),
            kind.keyword(),
            quote_ident(db),
            quote_ident(routine),
            with(*set)
        ));
    }
    let roles: Vec<&RoleGrant> = accounts.granted_roles(name).collect();
    let plain: Vec<String> = roles.iter().filter(|r| !r.admin).map(|r| format!("{}@{}", quote_ident(&r.role.user), quote_ident(&r.role.host))).collect();
    let admin: Vec<String> = roles.iter().filter(|r| r.admin).map(|r| format!("{}@{}", quote_ident(&r.role.user), quote_ident(&r.role.host))).collect();
    if !plain.is_empty() {
        lines.push(format!("GRANT {} TO {to}", plain.join(",")));
    }
    if !admin.is_empty() {
        lines.push(format!("GRANT {} TO {to} WITH ADMIN OPTION", admin.join(",")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(u: &str, h: &str) -> AccountName {
        AccountName::new(u, h)
    }

    fn create(accounts: &mut Accounts, u: &str, h: &str) {
        let a = Account::new(name(u, h), Credential::none(AuthPlugin::NativePassword));
        accounts.apply(AccountOp::Create { accounts: vec![a], if_not_exists: false }).unwrap();
    }

    #[test]
    fn host_patterns() {
        assert!(host_matches("10.%", "10.1.2.3"));
        assert!(!host_matches("10.%", "110.1.2.3"));
        assert!(host_matches("10.0.0._", "10.0.0.7"));
        assert!(!host_matches("10.0.0._", "10.0.0.17"));
        assert!(host_matches("localhost", "127.0.0.1"));
        assert!(host_matches("localhost", "::1"));
        assert!(!host_matches("localhost", "10.0.0.1"));
        assert!(host_matches("10.1.0.0/255.255.0.0", "10.1.200.3"));
        assert!(!host_matches("10.1.0.0/255.255.0.0", "10.2.0.3"));
        assert!(host_matches("10.1.0.0/16", "10.1.200.3"));
        assert!(!host_matches("10.1.0.0/16", "10.2.0.3"));
        assert!(!host_matches("10.1.0.0/40", "10.1.0.3"), "a malformed mask matches nothing");
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
        assert!(!host_matches("127.0.0.1", "127.0.0.2"));
        assert!(host_matches("%", "anything"));
    }

    #[test]
    fn most_specific_host_wins_and_anonymous_sorts_after_named() {
        let mut a = Accounts::default();
        for h in ["%", "10.%", "10.0.0.5", "localhost", "10.0.%"] {
            create(&mut a, "exim", h);
        }
        let host_of = |a: &Accounts, client: &str| a.find_login("exim", client).map(|x| x.name.host.clone());
        assert_eq!(host_of(&a, "10.0.0.5").as_deref(), Some("10.0.0.5"));
        assert_eq!(host_of(&a, "10.0.0.6").as_deref(), Some("10.0.%"), "longer literal prefix first");
        assert_eq!(host_of(&a, "10.9.0.6").as_deref(), Some("10.%"));
        assert_eq!(host_of(&a, "192.168.1.1").as_deref(), Some("%"));
        assert_eq!(host_of(&a, "127.0.0.1").as_deref(), Some("localhost"));
        assert!(a.find_login("root", "127.0.0.1").is_none());
        // MySQL's well-known trap: ''@'localhost' beats 'exim'@'%' for a local client.
        let mut b = Accounts::default();
        create(&mut b, "exim", "%");
        create(&mut b, "", "localhost");
        assert_eq!(b.find_login("exim", "127.0.0.1").unwrap().name.user, "");
        assert_eq!(b.find_login("exim", "10.0.0.1").unwrap().name.user, "exim");
    }

    #[test]
    fn create_is_atomic_and_if_not_exists_notes() {
        let mut a = Accounts::default();
        create(&mut a, "u", "%");
        let two = vec![
            Account::new(name("v", "%"), Credential::none(AuthPlugin::NativePassword)),
            Account::new(name("u", "%"), Credential::none(AuthPlugin::NativePassword)),
        ];
        let e = a.apply(AccountOp::Create { accounts: two.clone(), if_not_exists: false }).unwrap_err();
        assert_eq!(e.code(), 1396);
        assert_eq!(e.message, "Operation CREATE USER failed for 'u'@'%'");
        assert!(a.get(&name("v", "%")).is_none(), "nothing created");
        let out = a.apply(AccountOp::Create { accounts: two, if_not_exists: true }).unwrap();
        assert_eq!(out.notes.len(), 1);
        assert_eq!(out.notes[0].0.code(), 3163);
        assert!(a.get(&name("v", "%")).is_some());
    }

    #[test]
    fn grant_levels_and_checks() {
        let mut a = Accounts::default();
        create(&mut a, "exim", "10.%");
        let exim = name("exim", "10.%");
        let select = PrivSet::of(&[Privilege::Select]);
        let grant = |target: GrantTarget, privileges: PrivSet| AccountOp::Grant {
            target,
            privileges,
            columns: BTreeMap::new(),
            grantees: vec![name("exim", "10.%")],
        };
        a.apply(grant(GrantTarget::Database("calmail".into()), select)).unwrap();
        let auth = Authorization::new(&a, &exim, &[]);
        assert!(auth.on_table("calmail", "account").has(Privilege::Select));
        assert!(!auth.on_table("calmail", "account").has(Privilege::Insert));
        assert!(auth.on_table("other", "t").is_empty());
        assert!(auth.sees_database("calmail"));
        assert!(!auth.sees_database("other"));
        // Level checks: CREATE USER is global only; EXECUTE is not a table privilege.
        let e = a.apply(grant(GrantTarget::Database("d".into()), PrivSet::of(&[Privilege::CreateUser]))).unwrap_err();
        assert_eq!(e.code(), 1221);
        let e = a
            .apply(grant(GrantTarget::Table { database: "d".into(), table: "t".into() }, PrivSet::of(&[Privilege::Execute])))
            .unwrap_err();
        assert_eq!(e.code(), 1144);
        // GRANT to an unknown account.
        let e = a
            .apply(AccountOp::Grant { target: GrantTarget::Global, privileges: select, columns: BTreeMap::new(), grantees: vec![name("nobody", "%")] })
            .unwrap_err();
        assert_eq!(e.code(), 1410);
        // Column grants.
        let mut cols = BTreeMap::new();
        cols.insert("Host".to_string(), PrivSet::of(&[Privilege::Update]));
        a.apply(AccountOp::Grant {
            target: GrantTarget::Table { database: "calmail".into(), table: "account".into() },
            privileges: PrivSet::EMPTY,
            columns: cols,
            grantees: vec![exim.clone()],
        })
        .unwrap();
        let auth = Authorization::new(&a, &exim, &[]);
        assert!(auth.on_column("calmail", "account", "host").has(Privilege::Update));
        assert!(!auth.on_column("calmail", "account", "name").has(Privilege::Update));
        assert!(auth.on_some_column("calmail", "account", Privilege::Update));
        // Revoke.
        a.apply(AccountOp::Revoke { target: GrantTarget::Database("calmail".into()), privileges: select, columns: BTreeMap::new(), grantees: vec![exim.clone()] })
            .unwrap();
        let auth = Authorization::new(&a, &exim, &[]);
        assert!(!auth.on_table("calmail", "account").has(Privilege::Select));
        let e = a
            .apply(AccountOp::Revoke { target: GrantTarget::Database("nope".into()), privileges: select, columns: BTreeMap::new(), grantees: vec![exim] })
            .unwrap_err();
        assert_eq!(e.code(), 1141);
    }

    #[test]
    fn database_wildcards() {
        assert!(database_pattern_matches("calmail\\_%", "calmail_x"));
        assert!(!database_pattern_matches("calmail\\_%", "calmailx"));
        assert!(database_pattern_matches("calmail_%", "calmailx"), "an unescaped _ is a wildcard");
        assert!(database_pattern_matches("calmail", "calmail"));
        assert!(!database_pattern_matches("calmail", "Calmail"), "database names are case-sensitive");
    }

    #[test]
    fn roles_add_privileges_when_active() {
        let mut a = Accounts::default();
        create(&mut a, "alice", "%");
        let mut role = Account::new(name("reader", "%"), Credential::none(AuthPlugin::NativePassword));
        role.is_role = true;
        role.locked = true;
        a.apply(AccountOp::Create { accounts: vec![role], if_not_exists: false }).unwrap();
        a.apply(AccountOp::Grant {
            target: GrantTarget::Database("calmail".into()),
            privileges: PrivSet::of(&[Privilege::Select]),
            columns: BTreeMap::new(),
            grantees: vec![name("reader", "%")],
        })
        .unwrap();
        a.apply(AccountOp::GrantRoles { roles: vec![name("reader", "%")], grantees: vec![name("alice", "%")], admin: false }).unwrap();
        let alice = name("alice", "%");
        assert!(Authorization::new(&a, &alice, &[]).on_database("calmail").is_empty(), "inactive role");
        assert!(Authorization::new(&a, &alice, &[name("reader", "%")]).on_database("calmail").has(Privilege::Select));
        assert!(a.find_login("reader", "1.2.3.4").is_none(), "roles do not log in");
        let e = a.apply(AccountOp::GrantRoles { roles: vec![name("alice", "%")], grantees: vec![name("reader", "%")], admin: false }).unwrap_err();
        assert!(e.message.contains("cycle"), "{}", e.message);
        let lines = show_grants(&a, &alice, &[]);
        assert_eq!(lines, vec!["GRANT USAGE ON *.* TO `alice`@`%`".to_string(), "GRANT `reader`@`%` TO `alice`@`%`".to_string()]);
        // Dropping the role removes it from alice.
        a.apply(AccountOp::Drop { names: vec![name("reader", "%")], if_exists: false, roles: true }).unwrap();
        assert_eq!(a.granted_roles(&alice).count(), 0);
    }

    #[test]
    fn rename_moves_grants() {
        let mut a = Accounts::default();
        create(&mut a, "u", "%");
        a.apply(AccountOp::Grant { target: GrantTarget::Global, privileges: PrivSet::of(&[Privilege::Process]), columns: BTreeMap::new(), grantees: vec![name("u", "%")] })
            .unwrap();
        a.apply(AccountOp::Rename { pairs: vec![(name("u", "%"), name("w", "10.%"))] }).unwrap();
        assert!(a.get(&name("u", "%")).is_none());
        assert!(a.grants.get(&name("w", "10.%")).unwrap().global.has(Privilege::Process));
        let e = a.apply(AccountOp::Rename { pairs: vec![(name("u", "%"), name("x", "%"))] }).unwrap_err();
        assert_eq!(e.code(), 1396);
    }

    #[test]
    fn show_grants_reads_like_mysql() {
        let mut a = Accounts::default();
        create(&mut a, "exim", "127.0.0.%");
        let exim = name("exim", "127.0.0.%");
        a.apply(AccountOp::Grant {
            target: GrantTarget::Database("calmail".into()),
            privileges: PrivSet::of(&[Privilege::Select, Privilege::Insert]),
            columns: BTreeMap::new(),
            grantees: vec![exim.clone()],
        })
        .unwrap();
        a.apply(AccountOp::Grant {
            target: GrantTarget::Global,
            privileges: PrivSet::all_at(level::GLOBAL).union(PrivSet::of(&[Privilege::GrantOption])),
            columns: BTreeMap::new(),
            grantees: vec![exim.clone()],
        })
        .unwrap();
        let lines = show_grants(&a, &exim, &[]);
        assert_eq!(lines[0], "GRANT ALL PRIVILEGES ON *.* TO `exim`@`127.0.0.%` WITH GRANT OPTION");
        assert_eq!(lines[1], "GRANT SELECT, INSERT ON `calmail`.* TO `exim`@`127.0.0.%`");
    }

    #[test]
    fn credentials_round_trip_and_hide() {
        let c = Credential { plugin: AuthPlugin::NativePassword, verifier: Some(vec![0xAB; 20]) };
        let text = c.authentication_string();
        assert!(text.starts_with("*ABAB"));
        assert_eq!(Credential::from_authentication_string(AuthPlugin::NativePassword, &text).unwrap(), c);
        assert!(Credential::from_authentication_string(AuthPlugin::NativePassword, "*12").is_err());
        assert!(!format!("{c:?}").contains("171"), "Debug never prints the verifier");
    }
}
