//! One connection, from greeting to close: [`serve`].

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::auth::{CACHING_SHA2_PLUGIN, NATIVE_PASSWORD_PLUGIN, SCRAMBLE_LEN, is_empty_answer, new_scramble};
use crate::codec::{Reader, put_lenenc_bytes, put_lenenc_int};
use crate::constants::{capability, command, error_code, status};
use crate::handler::{AuthRequest, Handler};
use crate::kill::KillHandle;
use crate::handshake::{
    ClientHello, HelloError, Login, SERVER_CAPABILITIES, auth_switch_request, greeting,
    parse_change_user, parse_handshake_response,
};
use crate::packet::{DiscardProgress, FrameError, Packet, PacketReader, PacketWriter};
use crate::response::{Column, ErrorPacket, OkPacket, Response, Responses, ResultSet, Row, Rows};
use crate::statement::{Statements, unknown_statement};
use crate::tls::{TlsInfo, Transport};
use crate::value::{write_binary_value, write_text_value};

/// Settings for one connection.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The version in the greeting. It steers clients (CLIENTS.md §2.1): an `8.0.x` version
    /// makes mysql-connector use collation 255 and SQLAlchemy take its MySQL 8 paths.
    pub server_version: String,
    /// The id in the greeting; `CONNECTION_ID()` and the target of `KILL`.
    pub connection_id: u32,
    /// The peer, passed to the handler for host-based account matching.
    pub client_addr: Option<SocketAddr>,
    /// The largest command payload accepted, and the bound on buffered long data. Clamped to
    /// 1 KiB ..= 1 GiB, MySQL's range.
    pub max_allowed_packet: usize,
    /// Open prepared statements allowed per connection; MySQL's `max_prepared_stmt_count`
    /// default (16382), applied per connection because statements live per connection here.
    pub max_prepared_statements: usize,
    /// The collation id announced in the greeting (255, utf8mb4_0900_ai_ci, as MySQL 8 does).
    pub collation: u8,
    /// Time allowed from accept to the end of authentication (MySQL's `connect_timeout`).
    pub handshake_timeout: Option<Duration>,
    /// How KILL reaches this connection: whoever holds a clone may interrupt its command or
    /// close it.
    pub kill: KillHandle,
    /// With a config, the greeting offers CLIENT_SSL and an SSLRequest switches the connection
    /// to TLS (`crate::tls`). The SQL node passes its current config to each new connection,
    /// so a reloaded certificate applies to the connections accepted after the reload.
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// MySQL's `require_secure_transport`: a login over a plain connection is refused with
    /// ERR 3159 before its credentials are looked at.
    pub require_secure_transport: bool,
    /// The key pair for `caching_sha2_password`'s full authentication over a plain connection
    /// (`crate::rsa_key`). Without it, full authentication is offered only inside TLS and a
    /// failed fast path on a plain connection is final.
    pub rsa_key: Option<crate::rsa_key::RsaKeySource>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            server_version: "8.0.36-cairn-0.1.0".to_string(),
            connection_id: 1,
            client_addr: None,
            max_allowed_packet: 64 << 20,
            max_prepared_statements: 16382,
            collation: 255,
            handshake_timeout: Some(Duration::from_secs(10)),
            kill: KillHandle::new(),
            tls: None,
            require_secure_transport: false,
            rsa_key: None,
        }
    }
}

/// Why a connection ended other than by COM_QUIT or a clean disconnect.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The client broke the protocol (bad handshake, packets out of order); it was sent an
    /// ERR packet when one could be framed, and the connection was closed.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A command exceeded `max_allowed_packet`; the client was sent ERR 1153.
    #[error("packet of {size} bytes exceeds max_allowed_packet ({limit} bytes)")]
    PacketTooLarge { size: usize, limit: usize },
    /// The handler refused a login or COM_CHANGE_USER; the client was sent its error.
    #[error("authentication failed for user {user:?}: {error}")]
    AuthenticationFailed { user: String, error: ErrorPacket },
    #[error("handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
}

/// caching_sha2_password: a client without the server's public key asks for it with this byte.
const REQUEST_PUBLIC_KEY: u8 = 0x02;

/// The most of an oversized payload read and thrown away before ERR 1153 is sent; a client's
/// own `max_allowed_packet` is at most 1 GiB, the common ones (64 MiB to 256 MiB) fit.
const OVERSIZE_SKIP_MAX_BYTES: usize = 300 << 20;
/// The same bound before login, where no legitimate packet is larger than a few KiB.
const HANDSHAKE_OVERSIZE_SKIP_MAX_BYTES: usize = 1 << 20;
/// How long skipping an oversized payload may take.
const OVERSIZE_SKIP_TIME: Duration = Duration::from_secs(5);

/// Flush buffered output once it reaches this size, even in the middle of a result.
const FLUSH_THRESHOLD: usize = 128 * 1024;
/// After an error that closes the connection, keep reading (and discarding) for at most this
/// long so that the client receives the ERR packet instead of a reset.
const LINGER: Duration = Duration::from_secs(2);

/// Runs one client connection to completion: greeting, authentication, then commands until
/// COM_QUIT, a disconnect or a fatal error. Returns `Ok(())` for COM_QUIT and for a client
/// that disconnects between commands (or before logging in).
///
/// The future is `Send` when the handler's are, so it can be spawned per connection. Nothing is
/// shared between connections; a panic in the handler unwinds only this task.
pub async fn serve<S, H>(stream: S, handler: H, options: ServerOptions) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    let mut conn = Connection::new(stream, handler, options);
    let handshake = match conn.options.handshake_timeout {
        Some(limit) => match tokio::time::timeout(limit, conn.handshake()).await {
            Ok(result) => result,
            Err(_) => Err(Error::HandshakeTimeout(limit)),
        },
        None => conn.handshake().await,
    };
    let result = match handshake {
        Ok(true) => {
            // Only an authenticated client may send packets up to max_allowed_packet.
            conn.reader.set_max_payload(conn.options.max_allowed_packet);
            conn.authenticated = true;
            conn.run().await
        }
        Ok(false) => Ok(()),
        Err(e) => Err(e),
    };
    if let Err(error) = &result {
        tracing::debug!(connection_id = conn.options.connection_id, %error, "connection ended");
        if !matches!(error, Error::Io(_) | Error::HandshakeTimeout(_)) {
            conn.linger().await;
        }
    }
    result
}

/// Largest packet accepted before the client has authenticated: a handshake response with the
/// most connection attributes MySQL keeps (64 KiB) and every other field fits easily.
const HANDSHAKE_MAX_PAYLOAD: usize = 256 * 1024;

/// What the command loop does after a command.
enum Flow {
    Continue,
    Quit,
}

struct Connection<S, H> {
    stream: Transport<S>,
    /// Set once the connection switched to TLS.
    tls: Option<TlsInfo>,
    reader: PacketReader,
    writer: PacketWriter,
    handler: H,
    options: ServerOptions,
    scramble: [u8; SCRAMBLE_LEN],
    /// The client's capabilities limited to the server's.
    capabilities: u32,
    multi_statements: bool,
    statements: Statements,
    /// Set once the login succeeded; a larger oversized payload is skipped after it.
    authenticated: bool,
}

impl<S, H> Connection<S, H>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    H: Handler,
{
    fn new(stream: S, handler: H, mut options: ServerOptions) -> Self {
        options.max_allowed_packet = options.max_allowed_packet.clamp(1024, 1 << 30);
        Connection {
            stream: Transport::Plain(stream),
            tls: None,
            // Before authentication a client may send only handshake-sized packets, so that
            // unauthenticated connections cannot make the server buffer max_allowed_packet each.
            reader: PacketReader::new(options.max_allowed_packet.min(HANDSHAKE_MAX_PAYLOAD)),
            writer: PacketWriter::default(),
            handler,
            scramble: new_scramble(),
            capabilities: 0,
            multi_statements: false,
            authenticated: false,
            statements: Statements::new(
                options.max_prepared_statements,
                options.max_allowed_packet,
            ),
            options,
        }
    }

    // ----- Framing and I/O -----

    /// Sends what is queued and reads the client's answer to it (during login, and each packet
    /// of a LOCAL INFILE transfer), which must carry the next sequence id (`what` names the
    /// answer in the error otherwise).
    async fn client_answer(&mut self, what: &str) -> Result<Packet, Error> {
        self.flush().await?;
        let expected = self.writer.seq();
        let Some(packet) = self.read_packet().await? else {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        };
        self.writer.set_seq(packet.last_seq.wrapping_add(1));
        if packet.first_seq != expected {
            self.write_error(&out_of_order());
            self.flush().await?;
            return Err(Error::Protocol(format!(
                "{what} out of order: sequence id {} where {expected} was expected",
                packet.first_seq
            )));
        }
        Ok(packet)
    }

    /// The next payload, `None` on a clean end of stream. Framing errors are answered with an
    /// ERR packet and end the connection.
    async fn read_packet(&mut self) -> Result<Option<Packet>, Error> {
        loop {
            match self.reader.next_packet() {
                Ok(Some(packet)) => return Ok(Some(packet)),
                Ok(None) => {}
                Err(FrameError::TooLarge { size, seq }) => {
                    // Clients write the whole packet before they read, and expect the answer
                    // after its last piece: skip the rest (bounded), then answer.
                    let last_seq = self.skip_oversized_payload().await.unwrap_or(seq);
                    self.writer.set_seq(last_seq.wrapping_add(1));
                    self.write_error(&ErrorPacket::new(
                        error_code::ER_NET_PACKET_TOO_LARGE,
                        "08S01",
                        "Got a packet bigger than 'max_allowed_packet' bytes",
                    ));
                    self.flush().await?;
                    return Err(Error::PacketTooLarge {
                        size,
                        limit: self.options.max_allowed_packet,
                    });
                }
                Err(FrameError::OutOfOrder { expected, got }) => {
                    self.writer.set_seq(got.wrapping_add(1));
                    self.write_error(&out_of_order());
                    self.flush().await?;
                    return Err(Error::Protocol(format!(
                        "packet sequence id {got} where {expected} was expected"
                    )));
                }
            }
            let n = self.stream.read_buf(self.reader.read_buffer()).await?;
            if n == 0 {
                if self.reader.is_at_boundary() {
                    return Ok(None);
                }
                return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Reads and throws away the rest of a payload refused as larger than
    /// `max_allowed_packet`, so that the client, which writes the whole payload before it reads,
    /// finishes writing and then finds ERR 1153 with the sequence id it expects, instead of a
    /// reset connection. Nothing is kept: the bytes are dropped as they arrive. Returns the
    /// sequence id of the payload's last packet, or `None` when the skip gave up (more than
    /// [`OVERSIZE_SKIP_MAX_BYTES`] (a 1 MiB before login), longer than [`OVERSIZE_SKIP_TIME`],
    /// a read error, or a broken chain); the connection is closed either way.
    async fn skip_oversized_payload(&mut self) -> Option<u8> {
        let limit = if self.authenticated { OVERSIZE_SKIP_MAX_BYTES } else { HANDSHAKE_OVERSIZE_SKIP_MAX_BYTES };
        let skip = async {
            loop {
                match self.reader.discard_oversized() {
                    Ok(DiscardProgress::Done { last_seq }) => return Some(last_seq),
                    Ok(DiscardProgress::NeedMore { skipped }) if skipped <= limit => {}
                    Ok(DiscardProgress::NeedMore { .. }) | Err(_) => return None,
                }
                match self.stream.read_buf(self.reader.read_buffer()).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(OVERSIZE_SKIP_TIME, skip).await.ok().flatten()
    }

    async fn flush(&mut self) -> Result<(), Error> {
        if self.writer.buffered() > 0 {
            self.stream.write_all(self.writer.bytes()).await?;
            self.writer.clear();
        }
        self.stream.flush().await?;
        Ok(())
    }

    /// Lets the client read the last ERR packet: sends FIN, then drains input for a bounded
    /// time, because closing a socket with unread input makes the kernel send a reset that
    /// can destroy the ERR before the client reads it.
    async fn linger(&mut self) {
        let stream = &mut self.stream;
        let drain = async move {
            let _ = stream.shutdown().await;
            let mut scratch = vec![0u8; 16 * 1024];
            while let Ok(n) = stream.read(&mut scratch).await {
                if n == 0 {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(LINGER, drain).await;
    }

    fn deprecate_eof(&self) -> bool {
        self.capabilities & capability::DEPRECATE_EOF != 0
    }

    fn write_ok(&mut self, ok: &OkPacket, more: u16) {
        let status = self.handler.status_flags() | more;
        self.write_ok_with(ok, status);
    }

    /// An OK packet with the given status (the packet's `extra_status` added).
    fn write_ok_with(&mut self, ok: &OkPacket, status: u16) {
        write_ok_payload(&mut self.writer, 0x00, ok, status | ok.extra_status);
    }

    fn write_error(&mut self, error: &ErrorPacket) {
        let mark = self.writer.begin();
        let out = self.writer.payload();
        out.push(0xFF);
        out.extend_from_slice(&error.code.to_le_bytes());
        out.push(b'#');
        out.extend_from_slice(&error.sqlstate);
        out.extend_from_slice(error.message.as_bytes());
        self.writer.finish(mark);
    }

    /// The classic EOF packet.
    fn write_eof(&mut self, warnings: u16, status: u16) {
        let mark = self.writer.begin();
        let out = self.writer.payload();
        out.push(0xFE);
        out.extend_from_slice(&warnings.to_le_bytes());
        out.extend_from_slice(&status.to_le_bytes());
        self.writer.finish(mark);
    }

    /// The packet that ends rows, a field list or COM_SET_OPTION: an EOF packet, or with
    /// DEPRECATE_EOF an OK packet with the 0xFE header.
    fn write_terminator(&mut self, warnings: u16, status: u16) {
        if self.deprecate_eof() {
            let ok = OkPacket {
                warnings,
                ..OkPacket::default()
            };
            write_ok_payload(&mut self.writer, 0xFE, &ok, status);
        } else {
            self.write_eof(warnings, status);
        }
    }

    fn write_column(&mut self, column: &Column, with_default: bool) {
        let mark = self.writer.begin();
        let out = self.writer.payload();
        put_lenenc_bytes(out, b"def");
        put_lenenc_bytes(out, column.schema.as_bytes());
        put_lenenc_bytes(out, column.table.as_bytes());
        put_lenenc_bytes(out, column.org_table.as_bytes());
        put_lenenc_bytes(out, column.name.as_bytes());
        put_lenenc_bytes(out, column.org_name.as_bytes());
        out.push(0x0C);
        out.extend_from_slice(&column.charset.to_le_bytes());
        out.extend_from_slice(&column.column_length.to_le_bytes());
        out.push(column.column_type.0);
        out.extend_from_slice(&column.flags.to_le_bytes());
        out.push(column.decimals);
        out.extend_from_slice(&[0, 0]);
        if with_default {
            // COM_FIELD_LIST definitions end with the default value; NULL: none known.
            out.push(0xFB);
        }
        self.writer.finish(mark);
    }

    // ----- Connection phase -----

    /// Greets the client and authenticates it. `Ok(false)`: the client left before logging in.
    async fn handshake(&mut self) -> Result<bool, Error> {
        let hello = greeting(
            &self.options.server_version,
            self.server_capabilities(),
            self.options.connection_id,
            &self.scramble,
            self.options.collation,
            status::AUTOCOMMIT,
        );
        self.writer.set_seq(0);
        self.writer.write_packet(&hello);
        self.flush().await?;

        let mut expected_seq = 1;
        let login = loop {
            let Some(packet) = self.read_packet().await? else {
                return Ok(false);
            };
            self.writer.set_seq(packet.last_seq.wrapping_add(1));
            if packet.first_seq != expected_seq {
                self.write_error(&out_of_order());
                self.flush().await?;
                return Err(Error::Protocol(format!(
                    "handshake response with sequence id {}",
                    packet.first_seq
                )));
            }
            match parse_handshake_response(&packet.payload) {
                Ok(ClientHello::Login(login)) => break login,
                Ok(ClientHello::SslRequest { .. }) => {
                    let Some(config) = self.options.tls.clone().filter(|_| self.tls.is_none()) else {
                        let why = if self.tls.is_some() {
                            "a second SSLRequest inside TLS"
                        } else {
                            "client asked for TLS, which is not offered"
                        };
                        return self.refuse_handshake(bad_handshake(), why).await;
                    };
                    // The client's TLS ClientHello may already sit in the reader behind the
                    // SSLRequest: it goes to the TLS layer. Nothing is written in between:
                    // the next bytes the client reads are the server's TLS handshake.
                    let already_read = self.reader.take_unconsumed();
                    let info = self.stream.upgrade(config, already_read).await.map_err(|e| {
                        Error::Protocol(format!("TLS handshake failed: {e}"))
                    })?;
                    tracing::debug!(connection_id = self.options.connection_id, version = %info.version, cipher = %info.cipher, "connection switched to TLS");
                    self.tls = Some(info);
                    // The handshake response follows inside TLS, continuing the sequence.
                    expected_seq = packet.last_seq.wrapping_add(1);
                }
                Err(HelloError::Pre41) => {
                    let error = ErrorPacket::new(
                        error_code::ER_NOT_SUPPORTED_AUTH_MODE,
                        "08004",
                        "Client does not support authentication protocol requested by server; consider upgrading MySQL client",
                    );
                    return self.refuse_handshake(error, "pre-4.1 client").await;
                }
                Err(HelloError::Malformed(m)) => {
                    return self
                        .refuse_handshake(
                            bad_handshake(),
                            &format!("malformed handshake response ({})", m.0),
                        )
                        .await;
                }
            }
        };
        if self.options.require_secure_transport && self.tls.is_none() {
            let error = ErrorPacket::new(
                error_code::ER_SECURE_TRANSPORT_REQUIRED,
                "HY000",
                "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
            );
            return self.refuse_handshake(error, "plain connection while require_secure_transport is on").await;
        }
        self.capabilities = login.capabilities & self.server_capabilities();
        // As MySQL: a client that may send several statements can take several results.
        if self.capabilities & capability::MULTI_STATEMENTS != 0 {
            self.capabilities |= capability::MULTI_RESULTS;
        }
        self.multi_statements = self.capabilities & capability::MULTI_STATEMENTS != 0;
        self.login(login, false).await?;
        self.flush().await?;
        Ok(true)
    }

    /// The capabilities offered: CLIENT_SSL only when a TLS config is present.
    fn server_capabilities(&self) -> u32 {
        if self.options.tls.is_some() {
            SERVER_CAPABILITIES | capability::SSL
        } else {
            SERVER_CAPABILITIES
        }
    }

    async fn refuse_handshake(&mut self, error: ErrorPacket, why: &str) -> Result<bool, Error> {
        self.write_error(&error);
        self.flush().await?;
        Err(Error::Protocol(why.to_string()))
    }

    /// Authenticates a login through the handler, switching the client to
    /// `mysql_native_password` first when it answered with another plugin. Writes the OK or the
    /// ERR packet; an error return means the connection must close.
    async fn login(&mut self, login: Login, change_user: bool) -> Result<(), Error> {
        let user_text = String::from_utf8_lossy(&login.user).into_owned();
        let mut auth_response = login.auth_response;
        let plugin = self.handler.auth_plugin(&user_text, self.options.client_addr);
        // A client without PLUGIN_AUTH answers with mysql_native_password.
        let answered_with = login.auth_plugin.as_deref().unwrap_or(NATIVE_PASSWORD_PLUGIN.as_bytes());
        if answered_with != plugin.as_bytes() {
            if self.capabilities & capability::PLUGIN_AUTH == 0 {
                let error = ErrorPacket::new(
                    error_code::ER_NOT_SUPPORTED_AUTH_MODE,
                    "08004",
                    "Client does not support authentication protocol requested by server; consider upgrading MySQL client",
                );
                return self.fail_login(user_text, error).await;
            }
            self.writer
                .write_packet(&auth_switch_request(plugin, &self.scramble));
            auth_response = self.client_answer("auth switch response").await?.payload;
        }
        let Ok(user) = std::str::from_utf8(&login.user) else {
            let error = access_denied(&user_text, self.options.client_addr);
            return self.fail_login(user_text, error).await;
        };
        let database = match login.database.as_deref().map(std::str::from_utf8) {
            None => None,
            Some(Ok(db)) => Some(db),
            Some(Err(_)) => {
                let error = ErrorPacket::new(
                    error_code::ER_WRONG_DB_NAME,
                    "42000",
                    "Incorrect database name",
                );
                return self.fail_login(user_text, error).await;
            }
        };
        // caching_sha2_password: a failed fast path is followed by full authentication (MySQL's
        // "perform_full_authentication"), where the client sends its password in clear inside
        // TLS, or RSA-encrypted with the node's key on a plain connection. Without TLS and
        // without a key there is no full path, so a failed fast path is final.
        let full_auth_follows = plugin == CACHING_SHA2_PLUGIN
            && (self.tls.is_some() || self.options.rsa_key.is_some())
            && !is_empty_answer(&auth_response);
        let mut outcome = {
            let request = AuthRequest {
                user,
                auth_plugin: plugin,
                auth_response: &auth_response,
                scramble: &self.scramble,
                database,
                client_addr: self.options.client_addr,
                capabilities: self.capabilities,
                collation: login.collation,
                connect_attrs: &login.connect_attrs,
                tls: self.tls.as_ref(),
                cleartext: false,
                full_auth_follows,
            };
            if change_user {
                self.handler.change_user(&request).await
            } else {
                self.handler.authenticate(&request).await
            }
        };
        let mut fast_path = true;
        if full_auth_follows && matches!(&outcome, Err(e) if e.code == error_code::ER_ACCESS_DENIED) {
            fast_path = false;
            self.writer.write_packet(&[0x01, 0x04]);
            let Some(password) = self.full_authentication_password(user).await? else {
                let error = access_denied(&user_text, self.options.client_addr);
                return self.fail_login(user_text, error).await;
            };
            let request = AuthRequest {
                user,
                auth_plugin: plugin,
                auth_response: &password,
                scramble: &self.scramble,
                database,
                client_addr: self.options.client_addr,
                capabilities: self.capabilities,
                collation: login.collation,
                connect_attrs: &login.connect_attrs,
                tls: self.tls.as_ref(),
                cleartext: true,
                full_auth_follows: false,
            };
            outcome = if change_user {
                self.handler.change_user(&request).await
            } else {
                self.handler.authenticate(&request).await
            };
        }
        match outcome {
            Ok(()) => {
                // caching_sha2_password's fast path ends with AuthMoreData(fast_auth_success)
                // before the OK; an empty password is answered with the OK alone, as MySQL does.
                if plugin == CACHING_SHA2_PLUGIN && fast_path && !is_empty_answer(&auth_response) {
                    self.writer.write_packet(&[0x01, 0x03]);
                }
                self.write_ok(&OkPacket::default(), 0);
                Ok(())
            }
            Err(error) => self.fail_login(user_text, error).await,
        }
    }

    /// Reads the password of `caching_sha2_password`'s full authentication, after the server
    /// asked for it: in clear inside TLS; on a plain connection RSA-encrypted with the node's
    /// key (`crate::rsa_key`), which the client may first ask for with the byte 0x02. `None`
    /// when the client's answer is not a password encrypted with this connection's scramble
    /// under the node's key (or the key could not be made): the login fails with 1045, and a
    /// password is never taken in clear outside TLS.
    async fn full_authentication_password(&mut self, user: &str) -> Result<Option<Vec<u8>>, Error> {
        let answer = self.client_answer("full authentication answer").await?.payload;
        if self.tls.is_some() {
            // The password, NUL-terminated (libmysqlclient, PyMySQL) or not.
            let password = answer.strip_suffix(&[0]).unwrap_or(&answer);
            return Ok(Some(password.to_vec()));
        }
        let Some(source) = self.options.rsa_key.clone() else {
            return Ok(None);
        };
        // A node that generates its key at start may still be at it: wait (the handshake
        // timeout bounds the wait).
        let Some(key) = source.wait().await else {
            tracing::warn!(connection_id = self.options.connection_id, user, "no RSA key pair: caching_sha2_password full authentication without TLS is refused");
            return Ok(None);
        };
        let mut ciphertext = answer;
        if ciphertext == [REQUEST_PUBLIC_KEY] {
            let pem = key.public_key_pem().as_bytes();
            let mut more_data = Vec::with_capacity(1 + pem.len());
            more_data.push(0x01);
            more_data.extend_from_slice(pem);
            self.writer.write_packet(&more_data);
            ciphertext = self.client_answer("RSA-encrypted password").await?.payload;
        }
        match key.decrypt_password(&ciphertext, &self.scramble) {
            Ok(password) => Ok(Some(password)),
            Err(error) => {
                tracing::info!(target: "audit", event = "login_failed", connection_id = self.options.connection_id, user, client = ?self.options.client_addr, reason = %error, "login refused: undecryptable password");
                Ok(None)
            }
        }
    }

    async fn fail_login<T>(&mut self, user: String, error: ErrorPacket) -> Result<T, Error> {
        self.write_error(&error);
        self.flush().await?;
        Err(Error::AuthenticationFailed { user, error })
    }

    // ----- Command phase -----

    async fn run(&mut self) -> Result<(), Error> {
        let kill = self.options.kill.clone();
        loop {
            let next = tokio::select! {
                biased;
                () = kill.closed() => None,
                packet = self.read_packet() => Some(packet?),
            };
            let Some(next) = next else {
                // KILL CONNECTION while the client was idle: close, as MySQL does.
                self.flush().await?;
                return Ok(());
            };
            let Some(packet) = next else {
                self.flush().await?;
                return Ok(());
            };
            self.writer.set_seq(packet.last_seq.wrapping_add(1));
            if packet.first_seq != 0 {
                self.write_error(&out_of_order());
                self.flush().await?;
                return Err(Error::Protocol(format!(
                    "command with sequence id {}",
                    packet.first_seq
                )));
            }
            kill.start_command();
            match self.dispatch(&packet.payload).await? {
                Flow::Continue => {}
                Flow::Quit => {
                    self.flush().await?;
                    return Ok(());
                }
            }
            if kill.is_connection_killed() {
                self.flush().await?;
                return Ok(());
            }
            // Answers to pipelined commands share one write: flush only when the next command
            // is not already here, or when enough output has piled up.
            if !self.reader.has_complete_packet() || self.writer.buffered() >= FLUSH_THRESHOLD {
                self.flush().await?;
            }
        }
    }

    async fn dispatch(&mut self, payload: &[u8]) -> Result<Flow, Error> {
        let Some((&code, body)) = payload.split_first() else {
            self.write_error(&unknown_command());
            return Ok(Flow::Continue);
        };
        match code {
            command::QUIT => return Ok(Flow::Quit),
            command::PING => self.write_ok(&OkPacket::default(), 0),
            command::QUERY => {
                let mut out = Responses::new(self.multi_statements, self.capabilities);
                let kill = self.options.kill.clone();
                let interrupted = tokio::select! {
                    biased;
                    kind = kill.interrupted() => Some(kind),
                    () = self.handler.query(body, &mut out) => None,
                };
                if interrupted.is_some() {
                    self.handler.command_interrupted();
                    out = Responses::new(self.multi_statements, self.capabilities);
                    out.push(query_interrupted());
                }
                self.write_all_responses(out, false).await?;
            }
            command::INIT_DB => self.com_init_db(body).await,
            command::FIELD_LIST => self.com_field_list(body).await,
            command::STATISTICS => {
                let text = self.handler.statistics();
                self.writer.write_packet(text.as_bytes());
            }
            command::SET_OPTION => self.com_set_option(body),
            command::CHANGE_USER => self.com_change_user(body).await?,
            command::RESET_CONNECTION => {
                self.close_all_statements();
                self.handler.reset_connection().await;
                self.write_ok(&OkPacket::default(), 0);
            }
            command::STMT_PREPARE => self.com_stmt_prepare(body).await,
            command::STMT_EXECUTE => self.com_stmt_execute(body).await?,
            command::STMT_SEND_LONG_DATA => self.statements.append_long_data(body),
            command::STMT_CLOSE => {
                // No reply, even for an unknown id.
                if let Ok(id) = Reader::new(body).u32("statement id")
                    && self.statements.remove(id)
                {
                    self.handler.close_statement(id);
                }
            }
            command::STMT_RESET => match Reader::new(body).u32("statement id") {
                Ok(id) if self.statements.reset(id) => {
                    self.handler.reset_statement(id);
                    self.write_ok(&OkPacket::default(), 0);
                }
                Ok(id) => self.write_error(&unknown_statement(id, "mysqld_stmt_reset")),
                Err(_) => self.write_error(&malformed_packet()),
            },
            command::STMT_FETCH => match Reader::new(body).u32("statement id") {
                Ok(id) if self.statements.contains(id) => self.write_error(&ErrorPacket::new(
                    error_code::ER_STMT_HAS_NO_OPEN_CURSOR,
                    "HY000",
                    format!("The statement ({id}) has no open cursor."),
                )),
                Ok(id) => self.write_error(&unknown_statement(id, "mysqld_stmt_fetch")),
                Err(_) => self.write_error(&malformed_packet()),
            },
            _ => self.write_error(&unknown_command()),
        }
        Ok(Flow::Continue)
    }

    async fn com_init_db(&mut self, body: &[u8]) {
        let Ok(database) = std::str::from_utf8(body) else {
            self.write_error(&ErrorPacket::new(
                error_code::ER_WRONG_DB_NAME,
                "42000",
                "Incorrect database name",
            ));
            return;
        };
        match self.handler.init_db(database).await {
            Ok(()) => self.write_ok(&OkPacket::default(), 0),
            Err(error) => self.write_error(&error),
        }
    }

    async fn com_field_list(&mut self, body: &[u8]) {
        let mut r = Reader::new(body);
        let table = String::from_utf8_lossy(r.null_terminated_or_rest()).into_owned();
        let wildcard = String::from_utf8_lossy(r.rest()).into_owned();
        match self.handler.field_list(&table, &wildcard).await {
            Ok(columns) => {
                for column in &columns {
                    self.write_column(column, true);
                }
                let status = self.handler.status_flags();
                self.write_terminator(0, status);
            }
            Err(error) => self.write_error(&error),
        }
    }

    fn com_set_option(&mut self, body: &[u8]) {
        match Reader::new(body).u16("option") {
            Ok(0) => self.multi_statements = true,
            Ok(1) => self.multi_statements = false,
            _ => {
                self.write_error(&unknown_command());
                return;
            }
        }
        let status = self.handler.status_flags();
        self.write_terminator(0, status);
    }

    async fn com_change_user(&mut self, body: &[u8]) -> Result<(), Error> {
        let login = match parse_change_user(body, self.capabilities) {
            Ok(login) => login,
            Err(m) => {
                self.write_error(&bad_handshake());
                self.flush().await?;
                return Err(Error::Protocol(format!(
                    "malformed COM_CHANGE_USER ({})",
                    m.0
                )));
            }
        };
        self.close_all_statements();
        self.login(login, true).await
    }

    fn close_all_statements(&mut self) {
        for id in self.statements.clear() {
            self.handler.close_statement(id);
        }
    }

    async fn com_stmt_prepare(&mut self, body: &[u8]) {
        if let Err(error) = self.statements.check_capacity() {
            self.write_error(&error);
            return;
        }
        let prepared = match self.handler.prepare(body).await {
            Ok(prepared) => prepared,
            Err(error) => {
                self.write_error(&error);
                return;
            }
        };
        let (Ok(param_count), Ok(column_count)) = (
            u16::try_from(prepared.params.len()),
            u16::try_from(prepared.columns.len()),
        ) else {
            self.handler.close_statement(prepared.statement_id);
            self.write_error(&ErrorPacket::new(
                error_code::ER_PS_MANY_PARAM,
                "HY000",
                "Prepared statement contains too many placeholders or columns",
            ));
            return;
        };
        self.statements.insert(prepared.statement_id, param_count);
        let mark = self.writer.begin();
        let out = self.writer.payload();
        out.push(0x00);
        out.extend_from_slice(&prepared.statement_id.to_le_bytes());
        out.extend_from_slice(&column_count.to_le_bytes());
        out.extend_from_slice(&param_count.to_le_bytes());
        out.push(0x00);
        out.extend_from_slice(&prepared.warnings.to_le_bytes());
        self.writer.finish(mark);
        let status = self.handler.status_flags();
        for (definitions, count) in [
            (&prepared.params, param_count),
            (&prepared.columns, column_count),
        ] {
            if count == 0 {
                continue;
            }
            for column in definitions {
                self.write_column(column, false);
            }
            if !self.deprecate_eof() {
                self.write_eof(0, status);
            }
        }
    }

    async fn com_stmt_execute(&mut self, body: &[u8]) -> Result<(), Error> {
        let mut r = Reader::new(body);
        let Ok(id) = r.u32("statement id") else {
            self.write_error(&malformed_packet());
            return Ok(());
        };
        match self.statements.decode_execute(id, r.rest()) {
            Ok(params) => {
                let mut out = Responses::new(self.multi_statements, self.capabilities);
                let kill = self.options.kill.clone();
                let interrupted = tokio::select! {
                    biased;
                    kind = kill.interrupted() => Some(kind),
                    () = self.handler.execute(id, &params, &mut out) => None,
                };
                if interrupted.is_some() {
                    self.handler.command_interrupted();
                    out = Responses::new(self.multi_statements, self.capabilities);
                    out.push(query_interrupted());
                }
                self.write_all_responses(out, true).await?;
            }
            Err(error) => self.write_error(&error),
        }
        Ok(())
    }

    // ----- Results -----

    /// Writes a command's responses, and carries out LOAD DATA LOCAL requests among them: each
    /// asks the client for a file, feeds it to the handler, and writes what the handler answers
    /// after it.
    async fn write_all_responses(&mut self, mut out: Responses, binary: bool) -> Result<(), Error> {
        loop {
            let Some(file_name) = self.write_responses(out, binary).await? else {
                return Ok(());
            };
            out = self.local_infile(&file_name).await?;
        }
    }

    /// Writes a command's responses: MORE_RESULTS_EXISTS on all but the last, each with its
    /// statement's status when the handler gave one, nothing after the first error. Returns the
    /// file name of a LocalInfile request that ends the responses.
    async fn write_responses(&mut self, out: Responses, binary: bool) -> Result<Option<String>, Error> {
        let Responses { items: responses, statuses, .. } = out;
        if responses.is_empty() {
            self.write_ok(&OkPacket::default(), 0);
            return Ok(None);
        }
        let count = responses.len();
        // Several results need CLIENT_MULTI_RESULTS (PS_MULTI_RESULTS for a prepared statement);
        // a client without it could not read them. MySQL refuses a CALL that would return them
        // with ER_SP_BADSELECT; so does this crate, for whatever produced them.
        let needed = if binary { capability::PS_MULTI_RESULTS } else { capability::MULTI_RESULTS };
        let results = responses.iter().filter(|r| !matches!(r, Response::LocalInfile(_))).count();
        if results > 1 && self.capabilities & needed == 0 {
            self.write_error(&ErrorPacket::new(
                error_code::ER_SP_BADSELECT,
                "0A000",
                "The statement can't return a result set in the given context (the client did not set CLIENT_MULTI_RESULTS)",
            ));
            return Ok(None);
        }
        for (i, (response, status)) in responses.into_iter().zip(statuses).enumerate() {
            let more = if i + 1 < count {
                status::MORE_RESULTS_EXISTS
            } else {
                0
            };
            let status = status.unwrap_or_else(|| self.handler.status_flags());
            match response {
                Response::Ok(ok) => self.write_ok_with(&ok, status | more),
                Response::Error(error) => {
                    self.write_error(&error);
                    return Ok(None);
                }
                Response::ResultSet(result) => {
                    if !self.write_result_set(result, binary, status | more).await? {
                        return Ok(None);
                    }
                }
                Response::LocalInfile(file_name) => {
                    if i + 1 != count {
                        self.write_error(&internal_error("a LOCAL INFILE request must be the last response".into()));
                        return Ok(None);
                    }
                    return Ok(Some(file_name));
                }
            }
        }
        Ok(None)
    }

    /// LOAD DATA LOCAL INFILE: sends the request for `file_name`, passes every packet the client
    /// answers with to the handler until the empty one that ends the file, then collects the
    /// handler's outcomes.
    async fn local_infile(&mut self, file_name: &str) -> Result<Responses, Error> {
        let mark = self.writer.begin();
        let out = self.writer.payload();
        out.push(0xFB);
        out.extend_from_slice(file_name.as_bytes());
        self.writer.finish(mark);
        loop {
            let packet = self.client_answer("LOCAL INFILE data").await?;
            if packet.payload.is_empty() {
                break;
            }
            self.handler.local_infile_data(&packet.payload).await;
        }
        let mut out = Responses::new(self.multi_statements, self.capabilities);
        self.handler.local_infile_end(&mut out).await;
        Ok(out)
    }

    /// Writes one result set with the given status flags (MORE_RESULTS_EXISTS included);
    /// `false` if it ended with an error (the rest is skipped).
    async fn write_result_set(
        &mut self,
        result: ResultSet,
        binary: bool,
        status: u16,
    ) -> Result<bool, Error> {
        let columns = result.columns;
        if columns.is_empty() {
            // Zero columns cannot be framed as a result set; it is an OK.
            let ok = OkPacket {
                warnings: result.warnings,
                ..OkPacket::default()
            };
            self.write_ok_with(&ok, status);
            return Ok(true);
        }
        let mark = self.writer.begin();
        put_lenenc_int(self.writer.payload(), columns.len() as u64);
        self.writer.finish(mark);
        for column in columns.iter() {
            self.write_column(column, false);
        }
        if !self.deprecate_eof() {
            self.write_eof(0, status);
        }
        match result.rows {
            Rows::Materialized(rows) => {
                for row in &rows {
                    if let Err(error) = self.write_row(&columns, row, binary) {
                        self.write_error(&error);
                        return Ok(false);
                    }
                    if self.writer.buffered() >= FLUSH_THRESHOLD {
                        self.flush().await?;
                    }
                }
            }
            Rows::Stream(mut source) => {
                let kill = self.options.kill.clone();
                loop {
                    // A KILL QUERY stops a streamed result between batches.
                    let batch = tokio::select! {
                        biased;
                        _ = kill.interrupted() => Some(Err(query_interrupted())),
                        batch = source.next_batch() => batch,
                    };
                    let Some(batch) = batch else { break };
                    let rows = match batch {
                        Ok(rows) => rows,
                        Err(error) => {
                            self.write_error(&error);
                            return Ok(false);
                        }
                    };
                    for row in &rows {
                        if let Err(error) = self.write_row(&columns, row, binary) {
                            self.write_error(&error);
                            return Ok(false);
                        }
                        if self.writer.buffered() >= FLUSH_THRESHOLD {
                            self.flush().await?;
                        }
                    }
                }
            }
        }
        self.write_terminator(result.warnings, status);
        Ok(true)
    }

    /// Writes one row packet, or nothing and the reason the row cannot be sent.
    fn write_row(
        &mut self,
        columns: &[Column],
        row: &Row,
        binary: bool,
    ) -> Result<(), ErrorPacket> {
        if row.len() != columns.len() {
            return Err(internal_error(format!(
                "a row has {} values for {} columns",
                row.len(),
                columns.len()
            )));
        }
        let mark = self.writer.begin();
        match encode_row(self.writer.payload(), columns, row, binary) {
            Ok(()) => {
                self.writer.finish(mark);
                Ok(())
            }
            Err(message) => {
                self.writer.abort(mark);
                Err(internal_error(message))
            }
        }
    }
}

/// Appends a row payload in the text or binary protocol.
fn encode_row(
    out: &mut Vec<u8>,
    columns: &[Column],
    row: &Row,
    binary: bool,
) -> Result<(), String> {
    if binary {
        out.push(0x00);
        // The NULL bitmap of a binary row starts at bit 2.
        let bitmap_at = out.len();
        out.resize(bitmap_at + (columns.len() + 2).div_ceil(8), 0);
        for (i, (column, value)) in columns.iter().zip(row).enumerate() {
            if value.is_null() {
                out[bitmap_at + (i + 2) / 8] |= 1 << ((i + 2) % 8);
            } else {
                write_binary_value(out, column, value)?;
            }
        }
    } else {
        for (column, value) in columns.iter().zip(row) {
            write_text_value(out, column, value);
        }
    }
    Ok(())
}

fn write_ok_payload(writer: &mut PacketWriter, header: u8, ok: &OkPacket, status: u16) {
    let mark = writer.begin();
    let out = writer.payload();
    out.push(header);
    put_lenenc_int(out, ok.affected_rows);
    put_lenenc_int(out, ok.last_insert_id);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&ok.warnings.to_le_bytes());
    // The protocol documentation calls the info a string<EOF>, but MySQL and MariaDB both
    // write it length-encoded (`net_store_data` in `net_send_ok`), and libmysqlclient and
    // mysql_async read it that way; nothing is written when it is empty.
    if !ok.info.is_empty() {
        put_lenenc_bytes(out, ok.info.as_bytes());
    }
    writer.finish(mark);
}

fn query_interrupted() -> ErrorPacket {
    ErrorPacket::new(error_code::ER_QUERY_INTERRUPTED, "70100", "Query execution was interrupted")
}

fn out_of_order() -> ErrorPacket {
    ErrorPacket::new(
        error_code::ER_NET_PACKETS_OUT_OF_ORDER,
        "08S01",
        "Got packets out of order",
    )
}

fn bad_handshake() -> ErrorPacket {
    ErrorPacket::new(error_code::ER_HANDSHAKE_ERROR, "08S01", "Bad handshake")
}

fn unknown_command() -> ErrorPacket {
    ErrorPacket::new(error_code::ER_UNKNOWN_COM_ERROR, "08S01", "Unknown command")
}

fn malformed_packet() -> ErrorPacket {
    ErrorPacket::new(
        error_code::ER_MALFORMED_PACKET,
        "HY000",
        "Malformed communication packet.",
    )
}

fn internal_error(message: String) -> ErrorPacket {
    ErrorPacket::new(
        error_code::ER_UNKNOWN_ERROR,
        "HY000",
        format!("Internal error: {message}"),
    )
}

fn access_denied(user: &str, addr: Option<SocketAddr>) -> ErrorPacket {
    let host = addr.map_or_else(|| "localhost".to_string(), |a| a.ip().to_string());
    ErrorPacket::new(
        error_code::ER_ACCESS_DENIED,
        "28000",
        format!("Access denied for user '{user}'@'{host}' (using password: YES)"),
    )
}
