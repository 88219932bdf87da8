//! The interface between the protocol and the SQL node: one [`Handler`] per connection.

use std::future::Future;
use std::net::SocketAddr;

use crate::auth::SCRAMBLE_LEN;
use crate::tls::TlsInfo;
use crate::response::{Column, ErrorPacket, Prepared, Responses};
use crate::value::ParamValue;

/// A login attempt, from the handshake or from COM_CHANGE_USER.
#[derive(Debug, Clone, Copy)]
pub struct AuthRequest<'a> {
    pub user: &'a str,
    /// The plugin that computed `auth_response`: the one [`Handler::auth_plugin`] named (a
    /// client that answered with another plugin has been switched to it first).
    pub auth_plugin: &'a str,
    /// The client's answer to the scramble; empty for an empty password.
    pub auth_response: &'a [u8],
    /// The connection's scramble, for [`crate::verify_native_password`].
    pub scramble: &'a [u8; SCRAMBLE_LEN],
    /// The schema to start in; `None` when the client named none or an empty one.
    pub database: Option<&'a str>,
    pub client_addr: Option<SocketAddr>,
    /// The capabilities in effect (the client's, limited to the server's); bits from
    /// [`crate::capability`].
    pub capabilities: u32,
    /// The collation id the client asked for, any value (45, 224, 255, 33, ...). The handler
    /// falls back to its default for ids it does not know.
    pub collation: u16,
    /// `_client_name`, `program_name` and the like, in the order sent.
    pub connect_attrs: &'a [(String, String)],
    /// The connection's TLS, if it switched to TLS before this login (REQUIRE SSL/X509,
    /// `Ssl_cipher`, `Ssl_version`).
    pub tls: Option<&'a TlsInfo>,
    /// `auth_response` is the password itself, from `caching_sha2_password`'s full
    /// authentication, not an answer to the scramble. It crossed the network either inside TLS
    /// (`tls` is set) or RSA-encrypted with the node's key and bound to this connection's
    /// scramble ([`crate::rsa_key`]); the crate never passes a password that came in clear over
    /// a plain connection.
    pub cleartext: bool,
    /// A refusal with 1045 will not be final: the plugin is `caching_sha2_password` and the
    /// connection is encrypted or the node has an RSA key, so the client will be asked for its
    /// password and the handler called again with `cleartext`. A handler may log this refusal
    /// as a failed fast path rather than a failed login.
    pub full_auth_follows: bool,
}

/// What the SQL node implements. The connection task owns the handler and calls one method at
/// a time; every future it returns must be `Send` so that the connection can run on any worker
/// thread. Implementations may write `async fn` for the methods returning futures.
///
/// Errors the handler returns go to the client as ERR packets and leave the connection usable,
/// except in `authenticate` and `change_user`, where an error closes it, as in MySQL.
pub trait Handler: Send {
    /// The authentication plugin of the account a login of `user` from `client_addr` would
    /// use ([`crate::NATIVE_PASSWORD_PLUGIN`] or [`crate::CACHING_SHA2_PLUGIN`]), asked before
    /// the answer is checked so that the client can be switched to it. Unknown users get the
    /// default, so that the answer reveals nothing about which accounts exist.
    fn auth_plugin(&mut self, user: &str, client_addr: Option<SocketAddr>) -> &'static str {
        let _ = (user, client_addr);
        crate::NATIVE_PASSWORD_PLUGIN
    }

    /// Decides a login. `Ok` sends the OK packet; an error (normally 1045/28000, or
    /// 1049/42000 for an unknown database) is sent and the connection closed.
    fn authenticate(
        &mut self,
        request: &AuthRequest<'_>,
    ) -> impl Future<Output = Result<(), ErrorPacket>> + Send;

    /// Runs COM_QUERY. `sql` is the raw statement text in the connection's character set (it
    /// may hold non-UTF-8 bytes: `_binary'…'` literals, or a latin1 session after
    /// `SET NAMES latin1`), so decoding is the handler's job. The handler splits multi-statement
    /// text itself (when [`Responses::multi_statements`] allows it) and pushes one response per
    /// statement, stopping after an error.
    fn query(&mut self, sql: &[u8], out: &mut Responses) -> impl Future<Output = ()> + Send;

    /// Prepares a statement (COM_STMT_PREPARE). The handler picks a statement id that is unique
    /// among the connection's open statements. Errors are reported and the connection goes on.
    fn prepare(&mut self, sql: &[u8])
    -> impl Future<Output = Result<Prepared, ErrorPacket>> + Send;

    /// Executes a prepared statement with its bound parameters (one per placeholder, long data
    /// merged in). Results are sent in the binary protocol.
    fn execute(
        &mut self,
        statement_id: u32,
        params: &[ParamValue],
        out: &mut Responses,
    ) -> impl Future<Output = ()> + Send;

    /// COM_STMT_CLOSE, and for every open statement before COM_RESET_CONNECTION and a
    /// successful COM_CHANGE_USER. The id is one the handler returned from `prepare`.
    fn close_statement(&mut self, statement_id: u32);

    /// COM_STMT_RESET: the crate has already discarded the statement's long data.
    fn reset_statement(&mut self, statement_id: u32) {
        let _ = statement_id;
    }

    /// COM_INIT_DB (what `USE db` becomes in the CLI). Unknown database: 1049/42000.
    fn init_db(&mut self, database: &str) -> impl Future<Output = Result<(), ErrorPacket>> + Send;

    /// COM_FIELD_LIST (the CLI's auto-rehash): the columns of `table` whose names match the
    /// LIKE pattern `wildcard` (empty means all).
    fn field_list(
        &mut self,
        table: &str,
        wildcard: &str,
    ) -> impl Future<Output = Result<Vec<Column>, ErrorPacket>> + Send;

    /// COM_RESET_CONNECTION: return the session to its state just after login (user variables,
    /// session variables, open transaction rolled back, temporary tables). The crate has
    /// already closed every prepared statement through `close_statement`.
    fn reset_connection(&mut self) -> impl Future<Output = ()> + Send;

    /// COM_CHANGE_USER: authenticate the new user and, on success, reset the session as
    /// `reset_connection` does (statements are already closed). On error the crate sends the
    /// error and closes the connection.
    fn change_user(
        &mut self,
        request: &AuthRequest<'_>,
    ) -> impl Future<Output = Result<(), ErrorPacket>> + Send;

    /// LOAD DATA LOCAL INFILE: one piece of the file the client sends after the handler pushed
    /// [`crate::Response::LocalInfile`], in order (one call per packet, so the file is never
    /// held whole). The handler keeps any error for `local_infile_end`: the client sends the
    /// whole file whatever happens, and hears the outcome only at the end.
    fn local_infile_data(&mut self, data: &[u8]) -> impl Future<Output = ()> + Send {
        let _ = data;
        async {}
    }

    /// The client finished sending the file (an empty packet; at once if it could not read
    /// it). The handler pushes the LOAD DATA statement's outcome, then those of the statements
    /// that followed it in the same COM_QUERY (which may end in another LocalInfile request).
    fn local_infile_end(&mut self, out: &mut Responses) -> impl Future<Output = ()> + Send {
        out.push(ErrorPacket::new(1148, "42000", "The used command is not allowed with this MySQL version"));
        async {}
    }

    /// KILL interrupted the handler's `query` or `execute`: its future was dropped at an await
    /// point and the client was answered with ER_QUERY_INTERRUPTED. The handler restores what
    /// the command left half done (its "running" state).
    fn command_interrupted(&mut self) {}

    /// The session's status bits (`IN_TRANS`, `AUTOCOMMIT`, ... from [`crate::status`]) sent in
    /// every OK and EOF packet, result-set terminators included. Read after each command.
    fn status_flags(&self) -> u16;

    /// The text of COM_STATISTICS, e.g. `Uptime: 10  Threads: 1  Questions: 3 ...`.
    fn statistics(&mut self) -> String;
}
