//! The bridge between the MySQL protocol (`cairn-wire`) and the SQL engine (`cairn-sql`): one
//! [`SqlHandler`] per client connection. It authenticates against the accounts in the cluster
//! catalog, turns statements into session calls, and converts values and metadata both ways.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cairn_common::accounts::{Account, AuthPlugin, Authorization, Privilege, TlsRequirement};
use cairn_sql::limits::{AccountSlot, ConnectionSlot};
use cairn_common::decimal::Decimal;
use cairn_common::temporal::{Date, DateTime, Time};
use cairn_common::types::{ColumnType as SqlType, type_code};
use cairn_common::{Error, Value};
use cairn_sql::{ColumnMeta, Engine, KillKind, Outcome, RowSource, RowStream, Session, SessionInfo};
use cairn_wire::{
    AuthRequest, Column, ColumnType, ErrorPacket, KillHandle, OkPacket, ParamValue, Prepared, Response, Responses, ResultSet,
    RowBatch, capability,
};

use crate::caching_sha2::FastAuthCache;
use crate::cluster::ClusterClient;

/// Counters the node reports (COM_STATISTICS, SHOW STATUS).
#[derive(Default)]
pub struct NodeCounters {
    pub questions: AtomicU64,
    pub connections_open: AtomicU64,
}

pub struct SqlHandler {
    engine: Arc<Engine<ClusterClient>>,
    session: Option<Session<ClusterClient>>,
    connection_id: u64,
    client_addr: Option<SocketAddr>,
    counters: Arc<NodeCounters>,
    started: std::time::Instant,
    /// How KILL on any session of this node reaches this connection.
    kill: KillHandle,
    /// This connection counted against max_connections (given back when the handler drops).
    _connection_slot: ConnectionSlot,
    /// The logged-in account's connection slot (MAX_USER_CONNECTIONS), replaced by
    /// COM_CHANGE_USER.
    account_slot: Option<AccountSlot>,
    /// The client got as far as an answer to the password challenge. A connection that ends
    /// before that counts as a connection error of its host (max_connect_errors), as in MySQL;
    /// a wrong password does not.
    reached_authentication: bool,
    /// The node's fast-authentication cache (`crate::caching_sha2`); disabled by default.
    fast_auth_cache: Arc<FastAuthCache>,
}

pub fn error_packet(e: &Error) -> ErrorPacket {
    ErrorPacket::new(e.code(), e.sqlstate(), e.message.clone())
}

impl SqlHandler {
    /// A handler for one connection; `kill` is the handle the connection watches (the same one
    /// goes into its `ServerOptions`).
    pub fn new(
        engine: Arc<Engine<ClusterClient>>,
        connection_id: u64,
        client_addr: Option<SocketAddr>,
        counters: Arc<NodeCounters>,
        kill: KillHandle,
        connection_slot: ConnectionSlot,
    ) -> SqlHandler {
        counters.connections_open.fetch_add(1, Ordering::Relaxed);
        SqlHandler {
            engine,
            session: None,
            connection_id,
            client_addr,
            counters,
            started: std::time::Instant::now(),
            kill,
            _connection_slot: connection_slot,
            account_slot: None,
            reached_authentication: false,
            fast_auth_cache: Arc::new(FastAuthCache::new(false)),
        }
    }

    /// Shares the node's fast-authentication cache with this connection.
    pub fn with_fast_auth_cache(mut self, cache: Arc<FastAuthCache>) -> SqlHandler {
        self.fast_auth_cache = cache;
        self
    }

    fn client_host(&self) -> String {
        self.client_addr.map(|a| a.ip().to_string()).unwrap_or_else(|| "localhost".into())
    }

    /// Checks the password and builds a session; the same for the handshake and COM_CHANGE_USER.
    /// Every attempt leaves an audit line (tracing target `audit`) with user, host and node.
    async fn login(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        let host = self.client_host();
        self.reached_authentication = true;
        let node = self.engine.config().node_id;
        let using_password = !cairn_wire::is_empty_answer(request.auth_response);
        let denied = || {
            ErrorPacket::new(
                1045,
                "28000",
                format!(
                    "Access denied for user '{}'@'{}' (using password: {})",
                    request.user,
                    host,
                    if using_password { "YES" } else { "NO" }
                ),
            )
        };
        let refuse = |reason: &str, error: ErrorPacket| {
            tracing::info!(target: "audit", event = "login_failed", node, user = request.user, host = %host, connection = self.connection_id, reason, "login refused");
            error
        };
        let catalog = cairn_sql::Backend::catalog(self.engine.backend().as_ref());
        let Some(account) = catalog.accounts.find_login(request.user, &host) else {
            return Err(refuse("no matching account", denied()));
        };
        // With the fast-authentication cache on, an account not proved on this node since it
        // started (or since its password changed) fails the fast path whatever it answered, so
        // that the client is asked for full authentication, as MySQL does.
        let fast_path_admitted = request.cleartext
            || account.credential.plugin != AuthPlugin::CachingSha2Password
            || account.credential.verifier.as_deref().is_none_or(|v| self.fast_auth_cache.admits_fast_path(&account.name, v));
        if !fast_path_admitted || !credential_accepts(account, request) {
            if request.full_auth_follows {
                // Not a failed login yet: the client is asked for its password inside TLS and
                // the outcome of that attempt is what the audit trail records.
                tracing::debug!(node, user = request.user, host = %host, connection = self.connection_id, "fast authentication failed; full authentication follows");
                return Err(denied());
            }
            return Err(refuse("wrong password", denied()));
        }
        if account.locked {
            let message = format!("Access denied for user '{}'@'{}'. Account is locked.", request.user, host);
            return Err(refuse("account locked", ErrorPacket::new(3118, "HY000", message)));
        }
        // REQUIRE SSL / X509: refused the way MySQL refuses them, with 1045.
        match (&account.tls, request.tls) {
            (TlsRequirement::None, _) => {}
            (_, None) => return Err(refuse("account requires TLS", denied())),
            (TlsRequirement::Ssl, Some(_)) => {}
            (TlsRequirement::X509, Some(tls)) if tls.peer_verified => {}
            (TlsRequirement::X509, Some(_)) => return Err(refuse("account requires a client certificate", denied())),
            // REQUIRE SUBJECT/ISSUER/CIPHER: a verified certificate whose names equal the
            // account's exactly, and the negotiated cipher, as MySQL compares them.
            (TlsRequirement::Specified { .. } | TlsRequirement::SpecifiedWithCipher { .. }, Some(tls)) => {
                let (subject, issuer, cipher) = account.tls.specified().unwrap_or_default();
                if cipher.is_some_and(|c| c != tls.cipher) {
                    return Err(refuse("account requires another TLS cipher", denied()));
                }
                if subject.is_some() || issuer.is_some() {
                    let names = tls.peer_names.as_ref().filter(|_| tls.peer_verified);
                    let Some(names) = names else {
                        return Err(refuse("account requires a client certificate", denied()));
                    };
                    if subject.is_some_and(|s| s != names.subject) {
                        return Err(refuse("client certificate subject does not match", denied()));
                    }
                    if issuer.is_some_and(|i| i != names.issuer) {
                        return Err(refuse("client certificate issuer does not match", denied()));
                    }
                }
            }
        }
        // max_connections' extra slot, MAX_USER_CONNECTIONS and MAX_CONNECTIONS_PER_HOUR are
        // checked once the client has proved who it is, as MySQL checks them.
        let administrator = {
            let roles = catalog.accounts.default_roles.get(&account.name).map(|d| d.iter().cloned().collect::<Vec<_>>()).unwrap_or_default();
            Authorization::new(&catalog.accounts, &account.name, &roles).global().has(Privilege::Super)
        };
        // COM_CHANGE_USER gives the previous account's slot back first.
        self.account_slot = None;
        let now = self.engine.config().clock.now_micros();
        let account_slot = match self.engine.limits().login(&account.name, &account.limits, administrator, &host, now) {
            Ok(slot) => slot,
            Err(e) => return Err(refuse("resource limit", error_packet(&e))),
        };
        let info = SessionInfo {
            user: request.user.to_string(),
            host: host.clone(),
            connection_id: self.connection_id,
            database: None,
            found_rows: request.capabilities & capability::FOUND_ROWS != 0,
            multi_statements: request.capabilities & capability::MULTI_STATEMENTS != 0,
            collation_id: request.collation,
            account: Some(account.name.clone()),
            ssl_version: request.tls.map(|t| t.version.clone()).unwrap_or_default(),
            ssl_cipher: request.tls.map(|t| t.cipher.clone()).unwrap_or_default(),
        };
        let account_name = account.name.to_string();
        let mut session = Session::new(self.engine.clone(), info);
        session.set_local_files(request.capabilities & capability::LOCAL_FILES != 0);
        let kill = self.kill.clone();
        session.set_kill_switch(move |kind| match kind {
            KillKind::Query => kill.kill_query(),
            KillKind::Connection => kill.kill_connection(),
        });
        // KILL drops the running statement only where the session says that is safe (a read
        // outside a transaction); elsewhere it waits for the statement to end.
        let shield = self.kill.clone();
        shield.set_shielded(true);
        session.set_interrupt_hook(move |interruptible| shield.set_shielded(!interruptible));
        if let Some(db) = request.database
            && let Err(e) = session.use_database(db).await
        {
            return Err(refuse("database refused", error_packet(&e)));
        }
        if request.cleartext
            && account.credential.plugin == AuthPlugin::CachingSha2Password
            && let Some(verifier) = &account.credential.verifier
        {
            self.fast_auth_cache.remember(&account.name, verifier);
        }
        tracing::info!(target: "audit", event = "login", node, user = request.user, host = %host, account = %account_name, connection = self.connection_id, full_authentication = request.cleartext, "login");
        self.session = Some(session);
        self.account_slot = Some(account_slot);
        Ok(())
    }

    fn session(&mut self) -> Result<&mut Session<ClusterClient>, ErrorPacket> {
        self.session.as_mut().ok_or_else(|| ErrorPacket::new(1105, "HY000", "not authenticated"))
    }
}

/// Whether the client's answer proves the account's credential. The answer was computed with
/// the plugin `auth_plugin` named for this account; if the account changed plugin in between,
/// the answer cannot match and the login is refused.
fn credential_accepts(account: &Account, request: &AuthRequest<'_>) -> bool {
    let Some(verifier) = &account.credential.verifier else {
        return cairn_wire::is_empty_answer(request.auth_response);
    };
    if request.cleartext {
        // caching_sha2_password's full authentication: the password itself, which came inside
        // TLS or RSA-encrypted (cairn_wire never passes one that crossed a plain connection in
        // clear). It proves the account's credential if it hashes to the stored verifier.
        let computed: Vec<u8> = match account.credential.plugin {
            AuthPlugin::NativePassword => cairn_wire::native_password_hash(request.auth_response).to_vec(),
            AuthPlugin::CachingSha2Password => cairn_wire::caching_sha2_verifier(request.auth_response).to_vec(),
        };
        return !request.auth_response.is_empty() && constant_time_eq(&computed, verifier);
    }
    match account.credential.plugin {
        AuthPlugin::NativePassword if request.auth_plugin == cairn_wire::NATIVE_PASSWORD_PLUGIN => {
            <&[u8; 20]>::try_from(verifier.as_slice())
                .is_ok_and(|v| cairn_wire::verify_native_password(request.scramble, request.auth_response, v))
        }
        AuthPlugin::CachingSha2Password if request.auth_plugin == cairn_wire::CACHING_SHA2_PLUGIN => {
            <&[u8; 32]>::try_from(verifier.as_slice())
                .is_ok_and(|v| cairn_wire::verify_caching_sha2(request.scramble, request.auth_response, v))
        }
        _ => false,
    }
}

/// Compares two secrets without leaking through timing where they first differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Drop for SqlHandler {
    fn drop(&mut self) {
        self.counters.connections_open.fetch_sub(1, Ordering::Relaxed);
        if !self.reached_authentication {
            self.engine.limits().connect_error(&self.client_host());
        }
        // A client that disconnects inside a transaction rolls it back, as in MySQL.
        if let Some(rollback) = self.session.as_mut().and_then(|s| s.abandon()) {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(rollback);
            }
        }
    }
}

fn wire_type(meta: &ColumnMeta) -> ColumnType {
    ColumnType(meta.type_code())
}

pub fn wire_column(meta: &ColumnMeta) -> Column {
    let mut flags = meta.flags;
    if !meta.nullable {
        flags |= cairn_common::types::column_flag::NOT_NULL;
    }
    Column {
        schema: meta.schema.clone(),
        table: meta.table.clone(),
        org_table: meta.org_table.clone(),
        name: meta.name.clone(),
        org_name: meta.org_name.clone(),
        charset: meta.charset,
        column_length: meta.length,
        column_type: wire_type(meta),
        flags,
        decimals: meta.decimals,
    }
}

fn wire_value(value: Value, float_column: bool) -> cairn_wire::Value {
    use cairn_wire::Value as W;
    match value {
        Value::Null => W::Null,
        Value::Int(i) => W::Int(i),
        Value::UInt(u) => W::UInt(u),
        Value::Double(d) if float_column => W::Float(d as f32),
        Value::Double(d) => W::Double(d),
        Value::Decimal(d) => W::Bytes(d.to_string().into_bytes()),
        Value::Text(s) => W::Bytes(s.into_bytes()),
        Value::Bytes(b) => W::Bytes(b),
        Value::Date(d) => W::Date { year: d.year, month: d.month, day: d.day },
        Value::DateTime(dt) => W::DateTime {
            year: dt.date.year,
            month: dt.date.month,
            day: dt.date.day,
            hour: dt.hour,
            minute: dt.minute,
            second: dt.second,
            micros: dt.micros,
        },
        Value::Time(t) => W::Time {
            negative: t.negative,
            days: (t.hours / 24) as u32,
            hours: (t.hours % 24) as u8,
            minutes: t.minute,
            seconds: t.second,
            micros: t.micros,
        },
    }
}

fn float_columns(columns: &[ColumnMeta]) -> Vec<bool> {
    columns.iter().map(|c| matches!(c.ty, Some(SqlType::Float))).collect()
}

fn wire_row(row: Vec<Value>, floats: &[bool]) -> Vec<cairn_wire::Value> {
    row.into_iter().zip(floats).map(|(v, f)| wire_value(v, *f)).collect()
}

/// Streams an SQL result's batches to the wire as they come from the node groups.
struct StreamAdapter {
    inner: Box<dyn RowStream>,
    floats: Vec<bool>,
}

impl cairn_wire::RowSource for StreamAdapter {
    fn next_batch(&mut self) -> Pin<Box<dyn Future<Output = Option<RowBatch>> + Send + '_>> {
        Box::pin(async move {
            let batch = self.inner.next_batch().await?;
            Some(match batch {
                Ok(rows) => Ok(rows.into_iter().map(|r| wire_row(r, &self.floats)).collect()),
                Err(e) => Err(error_packet(&e)),
            })
        })
    }
}

pub fn response(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Ok { affected_rows, last_insert_id, info, warnings } => {
            Response::Ok(OkPacket { affected_rows, last_insert_id, warnings, info, extra_status: 0 })
        }
        Outcome::Error(e) => Response::Error(error_packet(&e)),
        Outcome::LocalInfile(file_name) => Response::LocalInfile(file_name),
        Outcome::Rows { columns, rows, warnings } => {
            let wire_columns: Arc<[Column]> = columns.iter().map(wire_column).collect();
            let floats = float_columns(&columns);
            let mut set = match rows {
                RowSource::Rows(rows) => {
                    ResultSet::new(wire_columns, rows.into_iter().map(|r| wire_row(r, &floats)).collect())
                }
                RowSource::Stream(inner) => ResultSet::streamed(wire_columns, StreamAdapter { inner, floats }),
            };
            set.warnings = warnings;
            Response::ResultSet(set)
        }
    }
}

/// A bound parameter as the SQL engine wants it.
fn sql_param(param: &ParamValue) -> Value {
    use cairn_wire::Value as W;
    match &param.value {
        W::Null => Value::Null,
        W::Int(i) => Value::Int(*i),
        W::UInt(u) => Value::UInt(*u),
        W::Float(f) => Value::Double(*f as f64),
        W::Double(d) => Value::Double(*d),
        W::Bytes(b) => match param.column_type.0 {
            type_code::DECIMAL | type_code::NEWDECIMAL => {
                let text = String::from_utf8_lossy(b);
                Decimal::parse(&text).map_or_else(|| Value::Text(text.into_owned()), Value::Decimal)
            }
            type_code::TINY_BLOB | type_code::MEDIUM_BLOB | type_code::LONG_BLOB | type_code::BLOB => {
                match std::str::from_utf8(b) {
                    // Drivers send text as BLOB too; keep it text when it is valid UTF-8 so that it
                    // compares under the column's collation, and bytes otherwise.
                    Ok(s) => Value::Text(s.to_string()),
                    Err(_) => Value::Bytes(b.clone()),
                }
            }
            _ => match std::str::from_utf8(b) {
                Ok(s) => Value::Text(s.to_string()),
                Err(_) => Value::Bytes(b.clone()),
            },
        },
        W::Date { year, month, day } => {
            Date::new(*year, *month, *day).map_or(Value::Null, Value::Date)
        }
        W::DateTime { year, month, day, hour, minute, second, micros } => Date::new(*year, *month, *day)
            .and_then(|d| DateTime::new(d, *hour, *minute, *second, *micros))
            .map_or(Value::Null, Value::DateTime),
        W::Time { negative, days, hours, minutes, seconds, micros } => {
            let total = (((*days as i64 * 24 + *hours as i64) * 60 + *minutes as i64) * 60 + *seconds as i64) * 1_000_000
                + *micros as i64;
            Time::from_micros(if *negative { -total } else { total }).map_or(Value::Null, Value::Time)
        }
    }
}

impl cairn_wire::Handler for SqlHandler {
    async fn authenticate(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.login(request).await
    }

    async fn query(&mut self, sql: &[u8], out: &mut Responses) {
        self.counters.questions.fetch_add(1, Ordering::Relaxed);
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => {
                out.push(Response::Error(e));
                return;
            }
        };
        session.set_multi_statements(out.multi_statements());
        // Binary string literals (escaped parameters) are kept exact; see `decode_query`.
        let text = session.decode_query(sql);
        session.begin_command("Query", Some(&text));
        let outcomes = session.execute_with_status(&text).await;
        session.end_command();
        // Each result carries the status its statement left (IN_TRANS, AUTOCOMMIT).
        for (outcome, status) in outcomes {
            out.push_with_status(response(outcome), status);
        }
    }

    async fn local_infile_data(&mut self, data: &[u8]) {
        if let Some(session) = self.session.as_mut() {
            session.local_infile_data(data).await;
        }
    }

    async fn local_infile_end(&mut self, out: &mut Responses) {
        let session = match self.session() {
            Ok(s) => s,
            Err(e) => {
                out.push(Response::Error(e));
                return;
            }
        };
        session.begin_command("Query", None);
        let outcomes = session.local_infile_end().await;
        session.end_command();
        for (outcome, status) in outcomes {
            out.push_with_status(response(outcome), status);
        }
    }

    async fn prepare(&mut self, sql: &[u8]) -> Result<Prepared, ErrorPacket> {
        let session = self.session()?;
        let text = session.decode_query(sql);
        session.begin_command("Prepare", Some(&text));
        let info = session.prepare(&text).await;
        session.end_command();
        let info = info.map_err(|e| error_packet(&e))?;
        let mut prepared = Prepared::new(info.id, info.param_count, info.columns.iter().map(wire_column).collect());
        prepared.warnings = session.warning_count();
        Ok(prepared)
    }

    async fn execute(&mut self, statement_id: u32, params: &[ParamValue], out: &mut Responses) {
        self.counters.questions.fetch_add(1, Ordering::Relaxed);
        let values: Vec<Value> = params.iter().map(sql_param).collect();
        match self.session() {
            Ok(session) => {
                session.begin_command("Execute", None);
                let outcome = session.execute_prepared(statement_id, values).await;
                session.end_command();
                // A prepared CALL sends the result sets of its procedures before its own OK.
                for result in session.take_call_results() {
                    out.push(response(result));
                }
                out.push(response(outcome));
            }
            Err(e) => out.push(Response::Error(e)),
        }
    }

    fn close_statement(&mut self, statement_id: u32) {
        if let Some(session) = self.session.as_mut() {
            session.close_prepared(statement_id);
        }
    }

    async fn init_db(&mut self, database: &str) -> Result<(), ErrorPacket> {
        self.session()?.use_database(database).await.map_err(|e| error_packet(&e))
    }

    async fn field_list(&mut self, table: &str, _wildcard: &str) -> Result<Vec<Column>, ErrorPacket> {
        let columns = self.session()?.field_list(table).await.map_err(|e| error_packet(&e))?;
        Ok(columns.iter().map(wire_column).collect())
    }

    async fn reset_connection(&mut self) {
        if let Some(session) = self.session.as_mut() {
            session.reset().await;
        }
    }

    fn auth_plugin(&mut self, user: &str, client_addr: Option<SocketAddr>) -> &'static str {
        let host = client_addr.map(|a| a.ip().to_string()).unwrap_or_else(|| "localhost".into());
        let catalog = cairn_sql::Backend::catalog(self.engine.backend().as_ref());
        match catalog.accounts.find_login(user, &host).map(|a| a.credential.plugin) {
            Some(AuthPlugin::CachingSha2Password) => cairn_wire::CACHING_SHA2_PLUGIN,
            _ => cairn_wire::NATIVE_PASSWORD_PLUGIN,
        }
    }

    async fn change_user(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        if let Some(rollback) = self.session.as_mut().and_then(|s| s.abandon()) {
            rollback.await;
        }
        self.session = None;
        self.login(request).await
    }

    fn command_interrupted(&mut self) {
        if let Some(session) = self.session.as_mut() {
            session.end_command();
        }
    }

    fn status_flags(&self) -> u16 {
        self.session.as_ref().map_or(cairn_sql::STATUS_AUTOCOMMIT, |s| s.status_flags())
    }

    fn statistics(&mut self) -> String {
        let uptime = self.started.elapsed().as_secs().max(1);
        let questions = self.counters.questions.load(Ordering::Relaxed);
        format!(
            "Uptime: {uptime}  Threads: {}  Questions: {questions}  Slow queries: 0  Opens: 0  Flush tables: 0  Open tables: 0  Queries per second avg: {:.3}",
            self.counters.connections_open.load(Ordering::Relaxed),
            questions as f64 / uptime as f64
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_common::accounts::{AccountName, Credential};

    fn request<'a>(plugin: &'a str, response: &'a [u8], scramble: &'a [u8; 20]) -> AuthRequest<'a> {
        AuthRequest {
            user: "exim",
            auth_plugin: plugin,
            auth_response: response,
            scramble,
            database: None,
            client_addr: None,
            capabilities: 0,
            collation: 255,
            connect_attrs: &[],
            tls: None,
            cleartext: false,
            full_auth_follows: false,
        }
    }

    #[test]
    fn each_plugin_checks_its_own_answer() {
        let scramble = *b"abcdefghij0123456789";
        let native = Account::new(AccountName::new("exim", "%"), Credential::from_password(AuthPlugin::NativePassword, "pw"));
        let sha2 = Account::new(AccountName::new("exim", "%"), Credential::from_password(AuthPlugin::CachingSha2Password, "pw"));
        let none = Account::new(AccountName::new("exim", "%"), Credential::none(AuthPlugin::CachingSha2Password));
        let native_answer = cairn_wire::native_password_response(&scramble, b"pw");
        let sha2_answer = cairn_wire::caching_sha2_response(&scramble, b"pw");
        let (n, c) = (cairn_wire::NATIVE_PASSWORD_PLUGIN, cairn_wire::CACHING_SHA2_PLUGIN);
        assert!(credential_accepts(&native, &request(n, &native_answer, &scramble)));
        assert!(credential_accepts(&sha2, &request(c, &sha2_answer, &scramble)));
        // An answer from the other plugin, a wrong password, or none at all is refused.
        assert!(!credential_accepts(&native, &request(c, &sha2_answer, &scramble)));
        assert!(!credential_accepts(&sha2, &request(n, &native_answer, &scramble)));
        let wrong = cairn_wire::caching_sha2_response(&scramble, b"pW");
        assert!(!credential_accepts(&sha2, &request(c, &wrong, &scramble)));
        assert!(!credential_accepts(&sha2, &request(c, b"", &scramble)));
        // No password: only an empty answer.
        assert!(credential_accepts(&none, &request(c, &[0], &scramble)));
        assert!(!credential_accepts(&none, &request(c, &sha2_answer, &scramble)));
    }
}
