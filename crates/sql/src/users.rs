//! Account statements: CREATE/ALTER/DROP/RENAME USER, CREATE/DROP ROLE, SET PASSWORD, GRANT,
//! REVOKE, SET ROLE, SET DEFAULT ROLE, SHOW GRANTS and SHOW CREATE USER.
//!
//! sqlparser does not parse MySQL's account grammar (CLIENTS.md and DEPENDENCIES.md §2), so
//! this module recognises these statements by their first words ([`parse`]) and parses them on
//! tokens. [`plan`] then decides, from the session's authorization, whether the statement is
//! allowed and what it does: account ops for the management nodes to apply
//! (`CatalogOp::Accounts`), a result set, or a change of the session's active roles. Passwords
//! are hashed here, on the SQL node, before anything leaves it: the catalog and its Raft log
//! never hold one in clear.
//!
//! Who may do what (MySQL's rules, with dynamic privileges folded into the static ones):
//! CREATE/DROP/RENAME/ALTER USER of others need the global CREATE USER privilege (roles: CREATE
//! ROLE / DROP ROLE or CREATE USER); anyone may change their own password; GRANT and REVOKE of
//! privileges need GRANT OPTION at the level named and every privilege granted; GRANT and
//! REVOKE of roles need SUPER or the role's ADMIN OPTION; SHOW GRANTS for another account needs
//! CREATE USER.
//!
//! Left out: password expiry and history options (accepted and ignored where MySQL accepts
//! them: PASSWORD EXPIRE …, FAILED_LOGIN_ATTEMPTS …), `IDENTIFIED WITH` plugins other than
//! mysql_native_password and caching_sha2_password, partial revokes, proxies.

use std::collections::BTreeMap;

use cairn_common::accounts::{
    self, Account, AccountChanges, AccountName, AccountOp, AuthPlugin, Authorization, Credential, GrantTarget, PrivSet, Privilege,
    ResourceLimits, RoutineKind, TlsRequirement, level,
};
use cairn_common::catalog::Catalog;
use cairn_common::error::{Error, ErrorKind};
use cairn_common::{Value, bail};
use sqlparser::tokenizer::{Token, TokenWithSpan};

use crate::lexer::{StatementText, syntax_error_at};
use crate::privileges::SessionSecurity;
use crate::show::{ShowResult, text};

/// A parsed account statement.
#[derive(Clone, Debug)]
pub(crate) enum AccountStatement {
    CreateUser { users: Vec<UserSpec>, if_not_exists: bool, options: UserOptions },
    CreateRole { roles: Vec<AccountName>, if_not_exists: bool },
    AlterUser { users: Vec<UserSpec>, if_exists: bool, options: UserOptions },
    DropUser { names: Vec<AccountName>, if_exists: bool, roles: bool },
    RenameUser { pairs: Vec<(AccountName, AccountName)> },
    /// `SET PASSWORD [FOR user] = 'pw'`; `None`: the current account.
    SetPassword { user: Option<AccountName>, password: String },
    Grant { privileges: Vec<PrivilegeSpec>, target: GrantTarget, grantees: Vec<AccountName>, grant_option: bool },
    Revoke { privileges: Vec<PrivilegeSpec>, target: GrantTarget, grantees: Vec<AccountName>, grant_option: bool },
    RevokeAll { grantees: Vec<AccountName> },
    GrantRoles { roles: Vec<AccountName>, grantees: Vec<AccountName>, admin: bool },
    RevokeRoles { roles: Vec<AccountName>, grantees: Vec<AccountName> },
    SetRole(RoleChoice),
    SetDefaultRole { roles: RoleChoice, grantees: Vec<AccountName> },
    /// `SHOW GRANTS [FOR user [USING role, …]]`; `None`: the current account.
    ShowGrants { user: Option<AccountName>, using: Vec<AccountName> },
    ShowCreateUser(Option<AccountName>),
}

/// One account of CREATE/ALTER USER with its authentication clause.
#[derive(Clone, Debug)]
pub(crate) struct UserSpec {
    /// `None`: `USER()` in ALTER USER (the current account).
    pub name: Option<AccountName>,
    pub auth: Option<AuthSpec>,
}

#[derive(Clone)]
pub(crate) enum AuthSpec {
    /// `IDENTIFIED [WITH plugin] BY 'password'`.
    Password { plugin: Option<AuthPlugin>, password: String },
    /// `IDENTIFIED WITH plugin AS 'hash'`.
    Hash { plugin: AuthPlugin, hash: String },
    /// `IDENTIFIED WITH plugin` alone: no password.
    Plugin(AuthPlugin),
}

impl std::fmt::Debug for AuthSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a password, even in a debug log.
        match self {
            AuthSpec::Password { plugin, .. } => write!(f, "Password {{ plugin: {plugin:?} }}"),
            AuthSpec::Hash { plugin, .. } => write!(f, "Hash {{ plugin: {plugin:?} }}"),
            AuthSpec::Plugin(p) => write!(f, "Plugin({p:?})"),
        }
    }
}

/// The options after the account list of CREATE/ALTER USER.
#[derive(Clone, Debug, Default)]
pub(crate) struct UserOptions {
    pub tls: Option<TlsRequirement>,
    pub max_queries_per_hour: Option<u64>,
    pub max_updates_per_hour: Option<u64>,
    pub max_connections_per_hour: Option<u64>,
    pub max_user_connections: Option<u64>,
    pub locked: Option<bool>,
}

/// `SELECT`, `UPDATE (a, b)`, `ALL PRIVILEGES`.
#[derive(Clone, Debug)]
pub(crate) struct PrivilegeSpec {
    /// `None`: ALL [PRIVILEGES].
    pub privilege: Option<Privilege>,
    pub columns: Vec<String>,
}

/// SET ROLE / SET DEFAULT ROLE choices.
#[derive(Clone, Debug)]
pub(crate) enum RoleChoice {
    Default,
    None,
    All { except: Vec<AccountName> },
    List(Vec<AccountName>),
}

/// What running an account statement does.
pub(crate) enum AccountPlan {
    /// Propose these ops (atomically) to the management nodes.
    Propose(Vec<AccountOp>),
    Rows(ShowResult),
    /// Replace the session's active roles.
    SetRoles(Vec<AccountName>),
}

// ----- Parsing -----

struct Tokens<'a> {
    statement: &'a StatementText,
    tokens: Vec<&'a TokenWithSpan>,
    pos: usize,
}

impl<'a> Tokens<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.tokens.get(self.pos).map(|t| &t.token)
    }

    fn error(&self) -> Error {
        syntax_error_at(self.statement, self.tokens.get(self.pos).copied())
    }

    fn word_at(&self, pos: usize) -> Option<String> {
        match self.tokens.get(pos).map(|t| &t.token) {
            Some(Token::Word(w)) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        }
    }

    fn peek_is(&self, word: &str) -> bool {
        self.word_at(self.pos).is_some_and(|w| w == word)
    }

    fn eat(&mut self, word: &str) -> bool {
        if self.peek_is(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_all(&mut self, words: &[&str]) -> bool {
        let matches = words.iter().enumerate().all(|(i, w)| self.word_at(self.pos + i).is_some_and(|x| x == *w));
        if matches {
            self.pos += words.len();
        }
        matches
    }

    fn expect(&mut self, word: &str) -> Result<(), Error> {
        if self.eat(word) { Ok(()) } else { Err(self.error()) }
    }

    fn eat_token(&mut self, token: &Token) -> bool {
        if self.peek() == Some(token) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.tokens.len() || (self.pos + 1 == self.tokens.len() && self.peek() == Some(&Token::SemiColon))
    }

    fn expect_end(&self) -> Result<(), Error> {
        if self.at_end() { Ok(()) } else { Err(self.error()) }
    }

    fn string(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error()),
        }
    }

    fn number(&mut self) -> Result<u64, Error> {
        match self.peek() {
            Some(Token::Number(n, _)) => {
                let v = n.parse().map_err(|_| self.error())?;
                self.pos += 1;
                Ok(v)
            }
            _ => Err(self.error()),
        }
    }

    /// A name: an identifier (quoted or not) or a string.
    fn name(&mut self) -> Result<String, Error> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let v = w.value.clone();
                self.pos += 1;
                Ok(v)
            }
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => {
                let s = s.clone();
                self.pos += 1;
                Ok(s)
            }
            _ => Err(self.error()),
        }
    }

    /// `'user'@'host'`, `user@host`, `` `user`@`host` ``, `user` (host `%`), `CURRENT_USER[()]`
    /// (returned as `None`).
    fn account(&mut self) -> Result<Option<AccountName>, Error> {
        if self.peek_is("CURRENT_USER") {
            self.pos += 1;
            if self.eat_token(&Token::LParen) && !self.eat_token(&Token::RParen) {
                return Err(self.error());
            }
            return Ok(None);
        }
        let user_token = self.pos;
        let user = self.name()?;
        // An unquoted `user@host` is one word in the MySQL tokenizer.
        if let Some(Token::Word(w)) = self.tokens.get(user_token).map(|t| &t.token)
            && w.quote_style.is_none()
            && let Some((u, h)) = user.split_once('@')
        {
            let host = if h.is_empty() { self.name()? } else { h.to_string() };
            return Ok(Some(AccountName::new(u, host)));
        }
        let host = match self.peek() {
            Some(Token::AtSign) => {
                self.pos += 1;
                self.name()?
            }
            Some(Token::Word(w)) if w.value.starts_with('@') && w.quote_style.is_none() => {
                let rest = w.value[1..].to_string();
                self.pos += 1;
                if rest.is_empty() { self.name()? } else { rest }
            }
            _ => "%".to_string(),
        };
        Ok(Some(AccountName::new(user, host)))
    }

    fn named_account(&mut self) -> Result<AccountName, Error> {
        let at = self.pos;
        self.account()?.ok_or_else(|| syntax_error_at(self.statement, self.tokens.get(at).copied()))
    }

    fn account_list(&mut self) -> Result<Vec<AccountName>, Error> {
        let mut list = vec![self.named_account()?];
        while self.eat_token(&Token::Comma) {
            list.push(self.named_account()?);
        }
        Ok(list)
    }

    fn if_not_exists(&mut self) -> bool {
        self.eat_all(&["IF", "NOT", "EXISTS"])
    }

    fn if_exists(&mut self) -> bool {
        self.eat_all(&["IF", "EXISTS"])
    }
}

/// Recognises an account statement; `Ok(None)` for any other statement.
pub(crate) fn parse(statement: &StatementText) -> Result<Option<AccountStatement>, Error> {
    // The hot path (SELECT, INSERT, …) leaves after one look at the first word.
    let first_word = statement.tokens.iter().find(|t| !matches!(t.token, Token::Whitespace(_)));
    let candidate = matches!(first_word.map(|t| &t.token), Some(Token::Word(w)) if w.quote_style.is_none()
        && ["CREATE", "ALTER", "DROP", "RENAME", "SET", "GRANT", "REVOKE", "SHOW"].iter().any(|k| w.value.eq_ignore_ascii_case(k)));
    if !candidate {
        return Ok(None);
    }
    let tokens: Vec<&TokenWithSpan> = statement.significant();
    let mut t = Tokens { statement, tokens, pos: 0 };
    let first = t.word_at(0).unwrap_or_default();
    let second = t.word_at(1).unwrap_or_default();
    let parsed = match (first.as_str(), second.as_str()) {
        ("CREATE", "USER") => {
            t.pos = 2;
            let if_not_exists = t.if_not_exists();
            let users = user_specs(&mut t)?;
            let options = user_options(&mut t)?;
            AccountStatement::CreateUser { users, if_not_exists, options }
        }
        ("CREATE", "ROLE") => {
            t.pos = 2;
            let if_not_exists = t.if_not_exists();
            AccountStatement::CreateRole { roles: t.account_list()?, if_not_exists }
        }
        ("ALTER", "USER") => {
            t.pos = 2;
            let if_exists = t.if_exists();
            let users = if t.peek_is("USER") && t.tokens.get(t.pos + 1).is_some_and(|x| x.token == Token::LParen) {
                t.pos += 1;
                t.eat_token(&Token::LParen);
                if !t.eat_token(&Token::RParen) {
                    return Err(t.error());
                }
                vec![UserSpec { name: None, auth: auth_spec(&mut t)? }]
            } else {
                user_specs(&mut t)?
            };
            let options = user_options(&mut t)?;
            AccountStatement::AlterUser { users, if_exists, options }
        }
        ("DROP", "USER") | ("DROP", "ROLE") => {
            t.pos = 2;
            let if_exists = t.if_exists();
            AccountStatement::DropUser { names: t.account_list()?, if_exists, roles: second == "ROLE" }
        }
        ("RENAME", "USER") => {
            t.pos = 2;
            let mut pairs = Vec::new();
            loop {
                let from = t.named_account()?;
                t.expect("TO")?;
                pairs.push((from, t.named_account()?));
                if !t.eat_token(&Token::Comma) {
                    break;
                }
            }
            AccountStatement::RenameUser { pairs }
        }
        ("SET", "PASSWORD") => {
            t.pos = 2;
            let user = if t.eat("FOR") { t.account()? } else { None };
            if !t.eat_token(&Token::Eq) {
                return Err(t.error());
            }
            // The old `= PASSWORD('pw')` form is still accepted by MariaDB and older scripts.
            let password = if t.eat("PASSWORD") {
                if !t.eat_token(&Token::LParen) {
                    return Err(t.error());
                }
                let p = t.string()?;
                if !t.eat_token(&Token::RParen) {
                    return Err(t.error());
                }
                p
            } else {
                t.string()?
            };
            AccountStatement::SetPassword { user, password }
        }
        ("SET", "ROLE") => {
            t.pos = 2;
            AccountStatement::SetRole(role_choice(&mut t)?)
        }
        ("SET", "DEFAULT") if t.word_at(2).as_deref() == Some("ROLE") => {
            t.pos = 3;
            let roles = role_choice(&mut t)?;
            t.expect("TO")?;
            AccountStatement::SetDefaultRole { roles, grantees: t.account_list()? }
        }
        ("GRANT", _) => {
            t.pos = 1;
            grant_or_revoke(&mut t, true)?
        }
        ("REVOKE", _) => {
            t.pos = 1;
            t.if_exists();
            grant_or_revoke(&mut t, false)?
        }
        ("SHOW", "GRANTS") => {
            t.pos = 2;
            let (user, using) = if t.eat("FOR") {
                let user = t.account()?;
                let using = if t.eat("USING") { t.account_list()? } else { Vec::new() };
                (user, using)
            } else {
                (None, Vec::new())
            };
            AccountStatement::ShowGrants { user, using }
        }
        ("SHOW", "CREATE") if t.word_at(2).as_deref() == Some("USER") => {
            t.pos = 3;
            AccountStatement::ShowCreateUser(t.account()?)
        }
        _ => return Ok(None),
    };
    t.expect_end()?;
    Ok(Some(parsed))
}

fn user_specs(t: &mut Tokens<'_>) -> Result<Vec<UserSpec>, Error> {
    let mut users = Vec::new();
    loop {
        let name = Some(t.named_account()?);
        users.push(UserSpec { name, auth: auth_spec(t)? });
        if !t.eat_token(&Token::Comma) {
            return Ok(users);
        }
    }
}

fn plugin(t: &mut Tokens<'_>) -> Result<AuthPlugin, Error> {
    let at = t.pos;
    let name = t.name()?;
    AuthPlugin::by_name(&name).ok_or_else(|| {
        let _ = at;
        Error::new(ErrorKind::NotSupported, format!("This version of Cairn doesn't yet support the authentication plugin '{name}'"))
    })
}

fn auth_spec(t: &mut Tokens<'_>) -> Result<Option<AuthSpec>, Error> {
    if !t.eat("IDENTIFIED") {
        return Ok(None);
    }
    if t.eat("BY") {
        t.eat("PASSWORD"); // MariaDB's `IDENTIFIED BY PASSWORD 'hash'` is a hash, below.
        let password = t.string()?;
        return Ok(Some(AuthSpec::Password { plugin: None, password }));
    }
    t.expect("WITH")?;
    let plugin = plugin(t)?;
    if t.eat("BY") {
        let password = t.string()?;
        return Ok(Some(AuthSpec::Password { plugin: Some(plugin), password }));
    }
    if t.eat("AS") {
        let hash = t.string()?;
        return Ok(Some(AuthSpec::Hash { plugin, hash }));
    }
    Ok(Some(AuthSpec::Plugin(plugin)))
}

fn user_options(t: &mut Tokens<'_>) -> Result<UserOptions, Error> {
    let mut o = UserOptions::default();
    loop {
        if t.eat("REQUIRE") {
            o.tls = Some(if t.eat("NONE") {
                TlsRequirement::None
            } else if t.eat("SSL") {
                TlsRequirement::Ssl
            } else if t.eat("X509") {
                TlsRequirement::X509
            } else {
                let (mut subject, mut issuer, mut cipher) = (None, None, None);
                loop {
                    if t.eat("SUBJECT") {
                        subject = Some(t.string()?);
                    } else if t.eat("ISSUER") {
                        issuer = Some(t.string()?);
                    } else if t.eat("CIPHER") {
                        cipher = Some(t.string()?);
                    } else {
                        break;
                    }
                    t.eat("AND");
                }
                match cipher {
                    Some(cipher) => TlsRequirement::SpecifiedWithCipher { subject, issuer, cipher },
                    None if subject.is_none() && issuer.is_none() => return Err(t.error()),
                    None => TlsRequirement::Specified { subject, issuer },
                }
            });
        } else if t.eat("WITH") {
            let mut any = false;
            loop {
                let slot = if t.eat("MAX_QUERIES_PER_HOUR") {
                    &mut o.max_queries_per_hour
                } else if t.eat("MAX_UPDATES_PER_HOUR") {
                    &mut o.max_updates_per_hour
                } else if t.eat("MAX_CONNECTIONS_PER_HOUR") {
                    &mut o.max_connections_per_hour
                } else if t.eat("MAX_USER_CONNECTIONS") {
                    &mut o.max_user_connections
                } else {
                    break;
                };
                *slot = Some(t.number()?);
                any = true;
            }
            if !any {
                return Err(t.error());
            }
        } else if t.eat("ACCOUNT") {
            o.locked = Some(if t.eat("LOCK") {
                true
            } else {
                t.expect("UNLOCK")?;
                false
            });
        } else if t.eat("PASSWORD") {
            // PASSWORD EXPIRE [DEFAULT | NEVER | INTERVAL n DAY], PASSWORD HISTORY …, PASSWORD
            // REUSE INTERVAL …, PASSWORD REQUIRE CURRENT …: accepted, not enforced.
            while !t.at_end() && !t.peek_is("ACCOUNT") && !t.peek_is("REQUIRE") && !t.peek_is("WITH") {
                t.pos += 1;
            }
        } else if t.eat("FAILED_LOGIN_ATTEMPTS") || t.eat("PASSWORD_LOCK_TIME") {
            t.pos += 1;
        } else if t.eat("COMMENT") || t.eat("ATTRIBUTE") {
            t.string()?;
        } else {
            return Ok(o);
        }
    }
}

fn role_choice(t: &mut Tokens<'_>) -> Result<RoleChoice, Error> {
    if t.eat("DEFAULT") {
        return Ok(RoleChoice::Default);
    }
    if t.eat("NONE") {
        return Ok(RoleChoice::None);
    }
    if t.eat("ALL") {
        let except = if t.eat("EXCEPT") { t.account_list()? } else { Vec::new() };
        return Ok(RoleChoice::All { except });
    }
    Ok(RoleChoice::List(t.account_list()?))
}

/// After GRANT / REVOKE: privileges ON target TO/FROM accounts, or roles TO/FROM accounts.
fn grant_or_revoke(t: &mut Tokens<'_>, grant: bool) -> Result<AccountStatement, Error> {
    let has_on = t.tokens[t.pos..].iter().any(|x| matches!(&x.token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("ON")));
    if !has_on {
        // REVOKE ALL [PRIVILEGES], GRANT OPTION FROM …
        if !grant && t.peek_is("ALL") {
            t.pos += 1;
            t.eat("PRIVILEGES");
            if !t.eat_token(&Token::Comma) {
                return Err(t.error());
            }
            t.expect("GRANT")?;
            t.expect("OPTION")?;
            t.expect("FROM")?;
            return Ok(AccountStatement::RevokeAll { grantees: t.account_list()? });
        }
        let roles = t.account_list()?;
        if grant {
            t.expect("TO")?;
            let grantees = t.account_list()?;
            let admin = t.eat_all(&["WITH", "ADMIN", "OPTION"]);
            return Ok(AccountStatement::GrantRoles { roles, grantees, admin });
        }
        t.expect("FROM")?;
        return Ok(AccountStatement::RevokeRoles { roles, grantees: t.account_list()? });
    }
    let mut privileges = Vec::new();
    loop {
        let mut words = Vec::new();
        while let Some(w) = t.word_at(t.pos) {
            if w == "ON" {
                break;
            }
            words.push(w);
            t.pos += 1;
        }
        if words.is_empty() {
            return Err(t.error());
        }
        let joined = words.join(" ");
        let privilege = if joined == "ALL" || joined == "ALL PRIVILEGES" {
            None
        } else if joined == "USAGE" {
            Some(None)
        } else {
            match accounts::privilege_by_name(&joined) {
                Some(p) => Some(Some(p)),
                None => {
                    return Err(Error::new(
                        ErrorKind::SyntaxError,
                        format!("Illegal privilege level or unknown privilege '{joined}'"),
                    ));
                }
            }
        };
        let mut columns = Vec::new();
        if t.eat_token(&Token::LParen) {
            loop {
                columns.push(t.name()?);
                if !t.eat_token(&Token::Comma) {
                    break;
                }
            }
            if !t.eat_token(&Token::RParen) {
                return Err(t.error());
            }
        }
        match privilege {
            // USAGE grants nothing; it is kept out of the list.
            Some(None) => {}
            Some(Some(p)) => privileges.push(PrivilegeSpec { privilege: Some(p), columns }),
            None => privileges.push(PrivilegeSpec { privilege: None, columns }),
        }
        if !t.eat_token(&Token::Comma) {
            break;
        }
    }
    t.expect("ON")?;
    let target = grant_target(t)?;
    let grant_option_word = if grant { "TO" } else { "FROM" };
    t.expect(grant_option_word)?;
    let grantees = t.account_list()?;
    let grant_option = grant && t.eat_all(&["WITH", "GRANT", "OPTION"]);
    // REVOKE GRANT OPTION ON … is `GRANT OPTION` in the list.
    if grant {
        Ok(AccountStatement::Grant { privileges, target, grantees, grant_option })
    } else {
        Ok(AccountStatement::Revoke { privileges, target, grantees, grant_option: false })
    }
}

/// `*.*`, `*` (the current database), `db.*`, `db.table`, `table`, `FUNCTION db.f`,
/// `PROCEDURE db.p`, with an optional `TABLE` keyword. A database named `None` is the current one,
/// filled in by [`plan`].
fn grant_target(t: &mut Tokens<'_>) -> Result<GrantTarget, Error> {
    let routine = if t.eat("FUNCTION") {
        Some(RoutineKind::Function)
    } else if t.eat("PROCEDURE") {
        Some(RoutineKind::Procedure)
    } else {
        t.eat("TABLE");
        None
    };
    let first = if t.eat_token(&Token::Mul) { None } else { Some(t.name()?) };
    let second = if t.eat_token(&Token::Period) { Some(if t.eat_token(&Token::Mul) { None } else { Some(t.name()?) }) } else { None };
    // The current database is written as an empty name and filled in by `plan`.
    Ok(match (routine, first, second) {
        (Some(kind), Some(db), Some(Some(name))) => GrantTarget::Routine { database: db, kind, name },
        (Some(kind), Some(name), None) => GrantTarget::Routine { database: String::new(), kind, name },
        (Some(_), _, _) => return Err(t.error()),
        (None, None, Some(None)) => GrantTarget::Global,
        (None, None, None) => GrantTarget::Database(String::new()),
        (None, Some(db), Some(None)) => GrantTarget::Database(db),
        (None, Some(db), Some(Some(table))) => GrantTarget::Table { database: db, table },
        (None, Some(table), None) => GrantTarget::Table { database: String::new(), table },
        (None, None, Some(Some(_))) => return Err(t.error()),
    })
}

// ----- Planning -----

/// The context an account statement is decided in.
pub(crate) struct AccountContext<'a> {
    pub catalog: &'a Catalog,
    pub security: &'a SessionSecurity,
    pub current_database: Option<&'a str>,
}

impl AccountContext<'_> {
    fn auth(&self) -> Option<std::sync::Arc<Authorization>> {
        self.security.authorization(self.catalog)
    }

    fn require_global(&self, any_of: &[Privilege]) -> Result<(), Error> {
        match self.auth() {
            None => Ok(()),
            Some(a) if any_of.iter().any(|p| a.global().has(*p)) => Ok(()),
            Some(_) => {
                let names: Vec<&str> = any_of.iter().map(|p| p.name()).collect();
                Err(SessionSecurity::specific_denied(&names.join(" or ")))
            }
        }
    }

    fn current_account(&self) -> Result<AccountName, Error> {
        self.security.account().cloned().ok_or_else(|| Error::new(ErrorKind::WrongUsage, "This session has no account"))
    }

    fn is_self(&self, name: &AccountName) -> bool {
        self.security.account() == Some(name)
    }
}

/// The credential an `IDENTIFIED …` clause gives. `IDENTIFIED BY` without `WITH` keeps the
/// plugin the account has (`current`, for ALTER USER), as MySQL does; a new account gets
/// mysql_native_password.
fn credential(spec: &AuthSpec, current: Option<AuthPlugin>) -> Result<Credential, Error> {
    Ok(match spec {
        AuthSpec::Password { plugin, password } => {
            Credential::from_password(plugin.or(current).unwrap_or(AuthPlugin::NativePassword), password)
        }
        AuthSpec::Hash { plugin, hash } => Credential::from_authentication_string(*plugin, hash)?,
        AuthSpec::Plugin(plugin) => Credential::none(*plugin),
    })
}

fn changes_from(options: &UserOptions) -> AccountChanges {
    AccountChanges {
        credential: None,
        tls: options.tls.clone(),
        max_queries_per_hour: options.max_queries_per_hour,
        max_updates_per_hour: options.max_updates_per_hour,
        max_connections_per_hour: options.max_connections_per_hour,
        max_user_connections: options.max_user_connections,
        locked: options.locked,
    }
}

/// Resolves an empty database name (the current database) in a grant target.
fn resolve_target(target: &GrantTarget, current: Option<&str>) -> Result<GrantTarget, Error> {
    let db = |name: &str| -> Result<String, Error> {
        if !name.is_empty() {
            return Ok(name.to_string());
        }
        match current {
            Some(d) => Ok(d.to_string()),
            None => bail!(NoDatabaseSelected, "No database selected"),
        }
    };
    Ok(match target {
        GrantTarget::Global => GrantTarget::Global,
        GrantTarget::Database(d) => GrantTarget::Database(db(d)?),
        GrantTarget::Table { database, table } => GrantTarget::Table { database: db(database)?, table: table.clone() },
        GrantTarget::Routine { database, kind, name } => GrantTarget::Routine { database: db(database)?, kind: *kind, name: name.clone() },
    })
}

/// The table-level and column-level privilege sets a GRANT/REVOKE names.
fn privilege_sets(specs: &[PrivilegeSpec], target: &GrantTarget, grant_option: bool) -> Result<(PrivSet, BTreeMap<String, PrivSet>), Error> {
    let level_bit = match target {
        GrantTarget::Global => level::GLOBAL,
        GrantTarget::Database(_) => level::DATABASE,
        GrantTarget::Table { .. } => level::TABLE,
        GrantTarget::Routine { .. } => level::ROUTINE,
    };
    let mut set = PrivSet::EMPTY;
    let mut columns: BTreeMap<String, PrivSet> = BTreeMap::new();
    for s in specs {
        let p = match s.privilege {
            None => PrivSet::all_at(level_bit),
            Some(p) => PrivSet::of(&[p]),
        };
        if s.columns.is_empty() {
            set = set.union(p);
        } else {
            if s.privilege.is_none() {
                bail!(IllegalGrantForLevel, "Illegal GRANT/REVOKE command; please consult the manual to see which privileges can be used");
            }
            for c in &s.columns {
                let e = columns.entry(c.to_ascii_lowercase()).or_default();
                *e = e.union(p);
            }
        }
    }
    if grant_option {
        set = set.union(PrivSet::of(&[Privilege::GrantOption]));
    }
    Ok((set, columns))
}

/// What the grantor holds at a target's level (for GRANT/REVOKE checks).
fn held_at(auth: &Authorization, target: &GrantTarget) -> PrivSet {
    match target {
        GrantTarget::Global => auth.global(),
        GrantTarget::Database(d) => auth.on_database(d),
        GrantTarget::Table { database, table } => auth.on_table(database, table),
        GrantTarget::Routine { database, kind, name } => auth.on_routine(database, *kind, name),
    }
}

/// Decides an account statement.
pub(crate) fn plan(statement: &AccountStatement, cx: &AccountContext<'_>) -> Result<AccountPlan, Error> {
    let accounts = &cx.catalog.accounts;
    Ok(match statement {
        AccountStatement::CreateUser { users, if_not_exists, options } => {
            cx.require_global(&[Privilege::CreateUser])?;
            let mut created = Vec::new();
            for u in users {
                let Some(name) = u.name.clone() else { bail!(SyntaxError, "CREATE USER needs an account name") };
                let credential = match &u.auth {
                    Some(spec) => credential(spec, None)?,
                    None => Credential::none(AuthPlugin::NativePassword),
                };
                let mut account = Account::new(name, credential);
                account.tls = options.tls.clone().unwrap_or_default();
                account.limits = ResourceLimits {
                    max_queries_per_hour: options.max_queries_per_hour.unwrap_or(0),
                    max_updates_per_hour: options.max_updates_per_hour.unwrap_or(0),
                    max_connections_per_hour: options.max_connections_per_hour.unwrap_or(0),
                    max_user_connections: options.max_user_connections.unwrap_or(0),
                };
                account.locked = options.locked.unwrap_or(false);
                created.push(account);
            }
            AccountPlan::Propose(vec![AccountOp::Create { accounts: created, if_not_exists: *if_not_exists }])
        }
        AccountStatement::CreateRole { roles, if_not_exists } => {
            cx.require_global(&[Privilege::CreateRole, Privilege::CreateUser])?;
            let roles = roles
                .iter()
                .map(|r| {
                    let mut a = Account::new(r.clone(), Credential::none(AuthPlugin::NativePassword));
                    a.is_role = true;
                    a.locked = true;
                    a
                })
                .collect();
            AccountPlan::Propose(vec![AccountOp::Create { accounts: roles, if_not_exists: *if_not_exists }])
        }
        AccountStatement::AlterUser { users, if_exists, options } => {
            let mut ops = Vec::new();
            let option_changes = changes_from(options);
            let changes_options = options.tls.is_some()
                || options.locked.is_some()
                || options.max_queries_per_hour.is_some()
                || options.max_updates_per_hour.is_some()
                || options.max_connections_per_hour.is_some()
                || options.max_user_connections.is_some();
            for u in users {
                let name = match &u.name {
                    Some(n) => n.clone(),
                    None => cx.current_account()?,
                };
                // Changing one's own password needs no privilege; anything else needs CREATE USER.
                if !(cx.is_self(&name) && !changes_options) {
                    cx.require_global(&[Privilege::CreateUser])?;
                }
                let mut changes = option_changes.clone();
                if let Some(spec) = &u.auth {
                    let current = accounts.get(&name).map(|a| a.credential.plugin);
                    changes.credential = Some(credential(spec, current)?);
                }
                ops.push(AccountOp::Alter { name, changes, if_exists: *if_exists });
            }
            AccountPlan::Propose(ops)
        }
        AccountStatement::DropUser { names, if_exists, roles } => {
            if *roles {
                cx.require_global(&[Privilege::DropRole, Privilege::CreateUser])?;
            } else {
                cx.require_global(&[Privilege::CreateUser])?;
            }
            AccountPlan::Propose(vec![AccountOp::Drop { names: names.clone(), if_exists: *if_exists, roles: *roles }])
        }
        AccountStatement::RenameUser { pairs } => {
            cx.require_global(&[Privilege::CreateUser])?;
            AccountPlan::Propose(vec![AccountOp::Rename { pairs: pairs.clone() }])
        }
        AccountStatement::SetPassword { user, password } => {
            let name = match user {
                Some(n) => n.clone(),
                None => cx.current_account()?,
            };
            if !cx.is_self(&name) {
                cx.require_global(&[Privilege::CreateUser])?;
            }
            let Some(account) = accounts.get(&name) else {
                bail!(PasswordNoMatch, "Can't find any matching row in the user table");
            };
            let changes = AccountChanges { credential: Some(Credential::from_password(account.credential.plugin, password)), ..Default::default() };
            AccountPlan::Propose(vec![AccountOp::Alter { name, changes, if_exists: false }])
        }
        AccountStatement::Grant { privileges, target, grantees, grant_option } => {
            let target = resolve_target(target, cx.current_database)?;
            let (set, columns) = privilege_sets(privileges, &target, *grant_option)?;
            check_grantor(cx, &target, set, &columns)?;
            AccountPlan::Propose(vec![AccountOp::Grant { target, privileges: set, columns, grantees: grantees.clone() }])
        }
        AccountStatement::Revoke { privileges, target, grantees, grant_option } => {
            let target = resolve_target(target, cx.current_database)?;
            let (set, columns) = privilege_sets(privileges, &target, *grant_option)?;
            check_grantor(cx, &target, set, &columns)?;
            AccountPlan::Propose(vec![AccountOp::Revoke { target, privileges: set, columns, grantees: grantees.clone() }])
        }
        AccountStatement::RevokeAll { grantees } => {
            cx.require_global(&[Privilege::CreateUser])?;
            AccountPlan::Propose(vec![AccountOp::RevokeAll { grantees: grantees.clone() }])
        }
        AccountStatement::GrantRoles { roles, grantees, admin } => {
            check_role_admin(cx, roles)?;
            AccountPlan::Propose(vec![AccountOp::GrantRoles { roles: roles.clone(), grantees: grantees.clone(), admin: *admin }])
        }
        AccountStatement::RevokeRoles { roles, grantees } => {
            check_role_admin(cx, roles)?;
            AccountPlan::Propose(vec![AccountOp::RevokeRoles { roles: roles.clone(), grantees: grantees.clone() }])
        }
        AccountStatement::SetRole(choice) => {
            let me = cx.current_account()?;
            let granted: Vec<AccountName> = accounts.granted_roles(&me).map(|g| g.role.clone()).collect();
            let roles = match choice {
                RoleChoice::None => Vec::new(),
                RoleChoice::Default => accounts.default_roles.get(&me).map(|d| d.iter().cloned().collect()).unwrap_or_default(),
                RoleChoice::All { except } => granted.iter().filter(|r| !except.contains(r)).cloned().collect(),
                RoleChoice::List(list) => {
                    for r in list {
                        if !granted.contains(r) {
                            bail!(RoleNotGranted, "`{}`@`{}` is not granted to `{}`@`{}`", r.user, r.host, me.user, me.host);
                        }
                    }
                    list.clone()
                }
            };
            AccountPlan::SetRoles(roles)
        }
        AccountStatement::SetDefaultRole { roles, grantees } => {
            let only_self = grantees.iter().all(|g| cx.is_self(g));
            if !only_self {
                cx.require_global(&[Privilege::CreateUser])?;
            }
            let mut ops = Vec::new();
            for g in grantees {
                let granted: Vec<AccountName> = accounts.granted_roles(g).map(|r| r.role.clone()).collect();
                let list = match roles {
                    RoleChoice::None | RoleChoice::Default => Vec::new(),
                    RoleChoice::All { except } => granted.iter().filter(|r| !except.contains(r)).cloned().collect(),
                    RoleChoice::List(list) => list.clone(),
                };
                ops.push(AccountOp::SetDefaultRoles { grantees: vec![g.clone()], roles: list });
            }
            AccountPlan::Propose(ops)
        }
        AccountStatement::ShowGrants { user, using } => {
            let name = match user {
                Some(n) => n.clone(),
                None => cx.current_account().unwrap_or_else(|_| AccountName::new("root", "%")),
            };
            if !cx.is_self(&name) {
                cx.require_global(&[Privilege::CreateUser])?;
            }
            if accounts.get(&name).is_none() {
                return Err(Error::new(
                    ErrorKind::NoSuchGrant,
                    format!("There is no such grant defined for user '{}' on host '{}'", name.user, name.host),
                ));
            }
            // SHOW GRANTS without FOR lists the active roles' privileges too, as MySQL does.
            let using: Vec<AccountName> = if user.is_none() { cx.security.roles().to_vec() } else { using.clone() };
            let title = format!("Grants for {}@{}", name.user, name.host);
            let mut r = ShowResult::new(vec![(title.as_str(), text(1024))]);
            r.rows = accounts::show_grants(accounts, &name, &using).into_iter().map(|l| vec![Value::Text(l)]).collect();
            AccountPlan::Rows(r)
        }
        AccountStatement::ShowCreateUser(user) => {
            let name = match user {
                Some(n) => n.clone(),
                None => cx.current_account()?,
            };
            if !cx.is_self(&name) {
                cx.require_global(&[Privilege::CreateUser])?;
            }
            let Some(account) = accounts.get(&name) else {
                return Err(Error::new(ErrorKind::CannotUser, format!("Operation SHOW CREATE USER failed for {name}")));
            };
            let title = format!("CREATE USER for {}@{}", name.user, name.host);
            let mut r = ShowResult::new(vec![(title.as_str(), text(1024))]);
            r.rows.push(vec![Value::Text(show_create_user(account))]);
            AccountPlan::Rows(r)
        }
    })
}

fn check_grantor(cx: &AccountContext<'_>, target: &GrantTarget, set: PrivSet, columns: &BTreeMap<String, PrivSet>) -> Result<(), Error> {
    let Some(auth) = cx.auth() else {
        return Ok(());
    };
    let held = held_at(&auth, target);
    let wanted = columns.values().fold(set, |acc, c| acc.union(*c)).union(PrivSet::of(&[Privilege::GrantOption]));
    if held.contains_all(wanted) {
        return Ok(());
    }
    // MySQL names the object in this message (1142 for tables, 1044 for databases).
    Err(match target {
        GrantTarget::Table { table, .. } => cx.security.table_denied("GRANT", table),
        GrantTarget::Database(d) => cx.security.database_denied(d),
        _ => SessionSecurity::specific_denied("GRANT OPTION"),
    })
}

fn check_role_admin(cx: &AccountContext<'_>, roles: &[AccountName]) -> Result<(), Error> {
    let Some(auth) = cx.auth() else {
        return Ok(());
    };
    if auth.global().has(Privilege::Super) || auth.global().has(Privilege::CreateUser) {
        return Ok(());
    }
    let me = cx.current_account()?;
    for r in roles {
        if !cx.catalog.accounts.granted_roles(&me).any(|g| &g.role == r && g.admin) {
            return Err(SessionSecurity::specific_denied("SUPER or ROLE_ADMIN"));
        }
    }
    Ok(())
}

fn show_create_user(a: &Account) -> String {
    let mut s = format!("CREATE USER `{}`@`{}` IDENTIFIED WITH '{}'", a.name.user, a.name.host, a.credential.plugin.name());
    let auth = a.credential.authentication_string();
    if !auth.is_empty() {
        s.push_str(&format!(" AS '{auth}'"));
    }
    s.push_str(match &a.tls {
        TlsRequirement::None => " REQUIRE NONE",
        TlsRequirement::Ssl => " REQUIRE SSL",
        TlsRequirement::X509 => " REQUIRE X509",
        TlsRequirement::Specified { .. } | TlsRequirement::SpecifiedWithCipher { .. } => "",
    });
    if let Some((subject, issuer, cipher)) = a.tls.specified() {
        s.push_str(" REQUIRE");
        for (word, value) in [("SUBJECT", subject), ("ISSUER", issuer), ("CIPHER", cipher)] {
            if let Some(x) = value {
                s.push_str(&format!(" {word} {}", cairn_common::value::quote_string(x)));
            }
        }
    }
    let l = &a.limits;
    if *l != ResourceLimits::default() {
        s.push_str(&format!(
            " WITH MAX_QUERIES_PER_HOUR {} MAX_UPDATES_PER_HOUR {} MAX_CONNECTIONS_PER_HOUR {} MAX_USER_CONNECTIONS {}",
            l.max_queries_per_hour, l.max_updates_per_hour, l.max_connections_per_hour, l.max_user_connections
        ));
    }
    s.push_str(if a.locked { " ACCOUNT LOCK" } else { " ACCOUNT UNLOCK" });
    s
}

/// A description of account ops for the audit log: names and privileges, never credentials.
pub(crate) fn describe_ops(ops: &[AccountOp]) -> String {
    ops.iter()
        .map(|op| match op {
            AccountOp::Create { accounts, .. } => {
                format!("create {}", accounts.iter().map(|a| a.name.to_string()).collect::<Vec<_>>().join(","))
            }
            AccountOp::Alter { name, changes, .. } => {
                format!("alter {name}{}", if changes.credential.is_some() { " (credential changed)" } else { "" })
            }
            AccountOp::Drop { names, .. } => format!("drop {}", names.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")),
            AccountOp::Rename { pairs } => {
                format!("rename {}", pairs.iter().map(|(a, b)| format!("{a} to {b}")).collect::<Vec<_>>().join(","))
            }
            AccountOp::Grant { target, privileges, columns, grantees } => format!(
                "grant {}{} on {target:?} to {}",
                crate::privileges::names(*privileges),
                if columns.is_empty() { String::new() } else { format!(" columns {columns:?}") },
                grantees.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
            ),
            AccountOp::Revoke { target, privileges, columns, grantees } => format!(
                "revoke {}{} on {target:?} from {}",
                crate::privileges::names(*privileges),
                if columns.is_empty() { String::new() } else { format!(" columns {columns:?}") },
                grantees.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
            ),
            AccountOp::Restore(backup) => {
                format!("restore {}", backup.accounts.keys().map(|n| n.to_string()).collect::<Vec<_>>().join(","))
            }
            AccountOp::RevokeAll { grantees } => {
                format!("revoke all from {}", grantees.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","))
            }
            AccountOp::GrantRoles { roles, grantees, admin } => format!(
                "grant roles {} to {}{}",
                roles.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                grantees.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                if *admin { " with admin option" } else { "" }
            ),
            AccountOp::RevokeRoles { roles, grantees } => format!(
                "revoke roles {} from {}",
                roles.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                grantees.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
            ),
            AccountOp::SetDefaultRoles { grantees, roles } => format!(
                "default roles of {} set to {}",
                grantees.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(","),
                roles.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
            ),
        })
        .collect::<Vec<_>>()
        .join("; ")
}
