//! The MySQL port: the packet reader, the command decoders, and the handshake and
//! authentication exchange of `cairn-wire`, driven through its public [`serve`] over an
//! in-memory stream that plays the client's bytes and discards the server's answers.
//!
//! The handler is a small stand-in for the SQL node: it answers every query with one fixed
//! result set, prepares any statement with one parameter per `?`, and answers an execution with
//! the bound parameters as a row, so that parameter decoding and the binary value encoder both
//! see every value the fuzzer can bind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use cairn_wire::{
    AuthRequest, CACHING_SHA2_PLUGIN, Column, ColumnType, ErrorPacket, Handler, NATIVE_PASSWORD_PLUGIN, OkPacket,
    ParamValue, Prepared, Responses, ResultSet, ServerOptions, Value, capability, column_flag, serve,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The user the stand-in handler lets in without a password; every other user is refused after
/// its answer has been checked against a password, so both outcomes of a login are exercised.
const OPEN_USER: &str = "fuzz";
/// The password the refused users' answers are checked against.
const PASSWORD: &[u8] = b"secret";
/// The command payload limit of the fuzzed connections: small, so that the limit itself is
/// reached by inputs of a size libFuzzer makes, and so that nothing large is ever buffered.
const MAX_ALLOWED_PACKET: usize = 64 << 10;
/// The prepared statements a fuzzed connection may hold open, small for the same reason.
const MAX_PREPARED_STATEMENTS: usize = 8;

/// Everything a client sends, from its first byte: the handshake response, the answers to any
/// auth switch, then commands. The first input byte picks how the stream is cut into reads.
pub fn mysql_handshake(data: &[u8]) {
    let Some((&cut, client)) = data.split_first() else {
        return;
    };
    run(client.to_vec(), cut);
}

/// Commands after a valid login: a fixed handshake response for [`OPEN_USER`], then the input.
/// The first input byte picks the capabilities of the login (with or without
/// CLIENT_DEPRECATE_EOF, multi-statements, a default database) and how the stream is cut into
/// reads.
pub fn mysql_packets(data: &[u8]) {
    let Some((&variant, commands)) = data.split_first() else {
        return;
    };
    let mut client = frame(&handshake_response(variant), 1);
    client.extend_from_slice(commands);
    run(client, variant);
}

/// The handshake response of a real client logging in as [`OPEN_USER`] without a password,
/// with capabilities chosen by `variant`'s bits.
pub fn handshake_response(variant: u8) -> Vec<u8> {
    let mut caps = capability::LONG_PASSWORD
        | capability::PROTOCOL_41
        | capability::SECURE_CONNECTION
        | capability::PLUGIN_AUTH
        | capability::PLUGIN_AUTH_LENENC_CLIENT_DATA
        | capability::MULTI_RESULTS
        | capability::PS_MULTI_RESULTS
        | capability::TRANSACTIONS;
    if variant & 1 != 0 {
        caps |= capability::DEPRECATE_EOF;
    }
    if variant & 2 != 0 {
        caps |= capability::MULTI_STATEMENTS;
    }
    if variant & 4 != 0 {
        caps |= capability::CONNECT_WITH_DB;
    }
    let mut out = caps.to_le_bytes().to_vec();
    out.extend_from_slice(&(16u32 << 20).to_le_bytes());
    out.push(255);
    out.extend_from_slice(&[0; 23]);
    out.extend_from_slice(OPEN_USER.as_bytes());
    out.push(0);
    // An empty answer to the scramble: no password.
    out.push(0);
    if caps & capability::CONNECT_WITH_DB != 0 {
        out.extend_from_slice(b"calmail\0");
    }
    out.extend_from_slice(NATIVE_PASSWORD_PLUGIN.as_bytes());
    out.push(0);
    out
}

/// Frames `payload` as one packet with sequence id `seq` (payloads here are below 16 MiB).
pub fn frame(payload: &[u8], seq: u8) -> Vec<u8> {
    let len = payload.len().min(0xFF_FFFF) as u32;
    let mut out = len.to_le_bytes()[..3].to_vec();
    out.push(seq);
    out.extend_from_slice(&payload[..len as usize]);
    out
}

fn run(client: Vec<u8>, cut: u8) {
    // Reads of 1 to 256 bytes, or everything at once: packets split across reads and several
    // packets in one read both occur.
    let chunk = if cut >= 0xF0 { usize::MAX } else { usize::from(cut) + 1 };
    let stream = Script { input: client, at: 0, chunk };
    let options = ServerOptions {
        connection_id: 7,
        client_addr: Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 40000)),
        max_allowed_packet: MAX_ALLOWED_PACKET,
        max_prepared_statements: MAX_PREPARED_STATEMENTS,
        handshake_timeout: None,
        ..ServerOptions::default()
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(runtime) => runtime,
        Err(e) => panic!("the fuzz target cannot build a tokio runtime: {e}"),
    };
    // Errors are the server refusing bad input, which is what it should do; only a panic or a
    // hang is a finding.
    let _ = runtime.block_on(serve(stream, StandIn::default(), options));
}

/// The client's side of the connection: reads return the script in chunks, then end of file;
/// writes are accepted and dropped.
struct Script {
    input: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl AsyncRead for Script {
    fn poll_read(mut self: Pin<&mut Self>, _: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let n = (self.input.len() - self.at).min(self.chunk).min(buf.remaining());
        let at = self.at;
        buf.put_slice(&self.input[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Script {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The stand-in SQL node (see the module documentation).
#[derive(Default)]
struct StandIn {
    /// Open statements: id and parameter count.
    statements: Vec<(u32, u16)>,
    next_statement: u32,
    in_transaction: bool,
}

impl StandIn {
    fn check_login(&self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        let denied = || {
            ErrorPacket::new(1045, "28000", format!("Access denied for user '{}'@'localhost' (using password: YES)", request.user))
        };
        if request.user == OPEN_USER {
            return Ok(());
        }
        // Check the answer the way the SQL node does, so that a hostile answer reaches the
        // verifiers; the scramble is random, so the answer is wrong in practice.
        let right = if request.auth_plugin == CACHING_SHA2_PLUGIN {
            let verifier = cairn_wire::caching_sha2_verifier(PASSWORD);
            cairn_wire::verify_caching_sha2(request.scramble, request.auth_response, &verifier)
        } else {
            let hash = cairn_wire::native_password_hash(PASSWORD);
            cairn_wire::verify_native_password(request.scramble, request.auth_response, &hash)
        };
        if right { Ok(()) } else { Err(denied()) }
    }
}

fn echo_column(param: &ParamValue) -> Column {
    match param.value {
        Value::Int(_) => Column::new("?", ColumnType::LONGLONG),
        Value::UInt(_) => Column::new("?", ColumnType::LONGLONG).flags(column_flag::UNSIGNED | column_flag::NUM),
        Value::Float(_) => Column::new("?", ColumnType::FLOAT),
        Value::Double(_) => Column::new("?", ColumnType::DOUBLE),
        Value::Bytes(_) => Column::new("?", ColumnType::VAR_STRING),
        Value::Date { .. } => Column::new("?", ColumnType::DATE),
        Value::DateTime { .. } => Column::new("?", ColumnType::DATETIME).decimals(6),
        Value::Time { .. } => Column::new("?", ColumnType::TIME).decimals(6),
        Value::Null => Column::new("?", ColumnType::NULL),
    }
}

fn fixed_result() -> ResultSet {
    ResultSet::new(
        vec![Column::new("id", ColumnType::LONG), Column::new("host", ColumnType::VAR_STRING)],
        vec![vec![Value::Int(1), Value::Bytes(b"mx1.example.org".to_vec())], vec![Value::Int(2), Value::Null]],
    )
}

impl Handler for StandIn {
    fn auth_plugin(&mut self, user: &str, _: Option<SocketAddr>) -> &'static str {
        // Accounts whose name starts with "sha" use the other plugin, so that the fuzzer can
        // drive auth switches in both directions.
        if user.starts_with("sha") { CACHING_SHA2_PLUGIN } else { NATIVE_PASSWORD_PLUGIN }
    }

    async fn authenticate(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.check_login(request)
    }

    async fn query(&mut self, sql: &[u8], out: &mut Responses) {
        // Statements are split on ';' only when multi-statements are on, as the SQL node does.
        let statements: Vec<&[u8]> =
            if out.multi_statements() { sql.split(|&b| b == b';').collect() } else { vec![sql] };
        for statement in statements {
            let text = String::from_utf8_lossy(statement);
            let text = text.trim().to_ascii_lowercase();
            if text.starts_with("select") || text.starts_with("show") {
                out.push(fixed_result());
            } else if text.starts_with("begin") {
                self.in_transaction = true;
                out.push(OkPacket::default());
            } else if text.starts_with("commit") || text.starts_with("rollback") {
                self.in_transaction = false;
                out.push(OkPacket::default());
            } else if text.starts_with("fail") {
                out.push(ErrorPacket::new(1064, "42000", "You have an error in your SQL syntax"));
                return;
            } else {
                out.push(OkPacket { affected_rows: 1, ..OkPacket::default() });
            }
        }
    }

    async fn prepare(&mut self, sql: &[u8]) -> Result<Prepared, ErrorPacket> {
        let params = sql.iter().filter(|&&b| b == b'?').count();
        let Ok(params) = u16::try_from(params) else {
            return Err(ErrorPacket::new(1390, "HY000", "Prepared statement contains too many placeholders"));
        };
        self.next_statement = self.next_statement.wrapping_add(1).max(1);
        let id = self.next_statement;
        self.statements.push((id, params));
        let columns = if sql.first().is_some_and(|b| b.eq_ignore_ascii_case(&b's')) {
            vec![Column::new("id", ColumnType::LONG)]
        } else {
            Vec::new()
        };
        Ok(Prepared::new(id, params, columns))
    }

    async fn execute(&mut self, statement_id: u32, params: &[ParamValue], out: &mut Responses) {
        if !self.statements.iter().any(|&(id, _)| id == statement_id) {
            out.push(ErrorPacket::new(1243, "HY000", "Unknown prepared statement handler"));
            return;
        }
        let columns: Vec<Column> = params.iter().map(echo_column).collect();
        let row = params.iter().map(|p| p.value.clone()).collect();
        out.push(ResultSet::new(columns, vec![row]));
    }

    fn close_statement(&mut self, statement_id: u32) {
        self.statements.retain(|&(id, _)| id != statement_id);
    }

    async fn init_db(&mut self, database: &str) -> Result<(), ErrorPacket> {
        if database == "calmail" {
            Ok(())
        } else {
            Err(ErrorPacket::new(1049, "42000", format!("Unknown database '{database}'")))
        }
    }

    async fn field_list(&mut self, table: &str, _wildcard: &str) -> Result<Vec<Column>, ErrorPacket> {
        if table == "account" {
            Ok(vec![Column::new("id", ColumnType::LONG)])
        } else {
            Err(ErrorPacket::new(1146, "42S02", format!("Table 'calmail.{table}' doesn't exist")))
        }
    }

    async fn reset_connection(&mut self) {
        self.in_transaction = false;
    }

    async fn change_user(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        self.check_login(request)?;
        self.in_transaction = false;
        Ok(())
    }

    fn status_flags(&self) -> u16 {
        if self.in_transaction { cairn_wire::status::IN_TRANS } else { cairn_wire::status::AUTOCOMMIT }
    }

    fn statistics(&mut self) -> String {
        "Uptime: 1  Threads: 1  Questions: 1".into()
    }
}
