//! The server side of the MySQL client/server protocol, for Cairn's SQL nodes.
//!
//! # Concept
//!
//! A MySQL connection is a conversation of packets. The server greets the client with a random
//! scramble; the client answers with its user, its password scrambled with it, an optional
//! database and its capabilities; the server says OK or ERR. Then the client sends one command
//! per packet (COM_QUERY, COM_STMT_EXECUTE, COM_PING, ...) and the server answers each with OK,
//! ERR, or a result set (column definitions, rows, a terminator). This crate speaks that
//! conversation and nothing else: it knows packets, not SQL. The SQL node plugs in through the
//! [`Handler`] trait (one handler per connection, GreptimeDB-style) and [`serve`] runs one
//! connection to completion over any `AsyncRead + AsyncWrite` stream.
//!
//! `shared/CLIENTS.md` §2 is the specification: what the mysql/mariadb CLI, PyMySQL,
//! mysqlclient, mysql-connector-python, SQLAlchemy, Node mysql2, JDBC, PHP, Go and Perl send and
//! expect.
//!
//! # Guarantees
//!
//! - **No panic on input.** Every byte from the socket is decoded through checked readers;
//!   malformed commands get an ERR packet (1835, 1047, 1243, ...) and the connection goes on;
//!   broken framing (sequence ids out of order, a packet over `max_allowed_packet`) gets an ERR
//!   packet and closes the connection.
//! - **Bounded memory per connection.** A command larger than `max_allowed_packet` is refused
//!   from its header (ERR 1153) before its body is buffered (the rest of it is read and
//!   dropped as it arrives, bounded in bytes and time, so that the client, still writing, gets
//!   the ERR with the sequence id it expects); long data is bounded by the same
//!   limit across the connection's statements; prepared statements by
//!   `max_prepared_statements`. Result rows may be streamed ([`RowSource`]) so a scan is never
//!   materialised, and output is flushed whenever 128 KiB pile up.
//! - **Pipelining.** Several commands in one read, and commands split across reads, are both
//!   handled; answers to pipelined commands are written with one system call. Packets of 16 MiB
//!   and more are split and reassembled in both directions, including payloads of exactly
//!   0xFFFFFF bytes, which need an empty trailing packet.
//! - **Both EOF framings.** With CLIENT_DEPRECATE_EOF, result sets, prepare replies, field lists
//!   and COM_SET_OPTION end with an OK packet (header 0xFE); without it, with EOF packets.
//! - **Status flags everywhere.** [`Handler::status_flags`] goes into every OK and EOF packet,
//!   result-set terminators included, with MORE_RESULTS_EXISTS on all but the last response of
//!   a command.
//! - **TLS when configured** ([`tls`]): with [`ServerOptions::tls`] the greeting offers
//!   CLIENT_SSL and an SSLRequest switches the socket to TLS (rustls) before the credentials
//!   are sent; the handler sees the result in [`AuthRequest::tls`].
//!   [`ServerOptions::require_secure_transport`] refuses plain logins with ERR 3159.
//! - **Types follow metadata.** Values are written in the layout of their column's declared
//!   type in both protocols; a value that does not fit its column ends the result with an error
//!   instead of bytes the client would misread.
//!
//! # Invariants
//!
//! - Sequence ids: each command starts at 0; the reply continues from the id after the
//!   command's last packet (a chain advances it); any other id closes the connection.
//! - The crate keeps, per prepared statement, only the parameter count, the last bound
//!   parameter types and pending long data; the handler owns ids and plans. Every id the
//!   handler returned from `prepare` is eventually passed to `close_statement` (COM_STMT_CLOSE,
//!   COM_RESET_CONNECTION, COM_CHANGE_USER), unless the connection ends first.
//! - Only one command is in flight per connection; the handler is called sequentially.
//!
//! # What is used from `mysql_common`
//!
//! Nothing at run time; it is a dev-dependency that serves as an independent oracle in the
//! unit tests (its client-side HandshakeResponse serializer feeds our parser, its binary value
//! decoder reads our rows, its `scramble_native` checks ours). Its server-side pieces were
//! awkward here: its binary value decoder panics (`unimplemented!`) on parameter types it does
//! not know, which a hostile client can send; its value serializer writes every integer as 8
//! bytes where the server must follow the column type; its handshake parser rejects responses
//! whose optional tail is missing or malformed, which real clients send; and its typed
//! constants would tie the SQL node's code to its version. The codec here is small (lenenc
//! integers and strings, fixed-width integers) and tested at every boundary.
//!
//! # Left out (for now)
//!
//! - `sha256_password` and PKCS#1 v1.5 RSA padding. The server asks the handler which plugin an
//!   account uses ([`Handler::auth_plugin`]), switches the client to it when it answered with
//!   the other one (AuthSwitchRequest, both ways), and verifies `caching_sha2_password` on the
//!   fast path; a failed fast path is followed by full authentication ([`AuthRequest::cleartext`]):
//!   the password in clear inside TLS, or, on a plain connection, RSA-OAEP-encrypted with the
//!   node's key ([`rsa_key`], [`ServerOptions::rsa_key`]). Without TLS and without a key a
//!   failed fast path is final.
//! - Compression, LOAD DATA LOCAL INFILE, CLIENT_SESSION_TRACK, query attributes, cursors
//!   (COM_STMT_FETCH is refused with 1421; the cursor flag of COM_STMT_EXECUTE is ignored and
//!   rows are sent inline, which clients accept because CURSOR_EXISTS is never set), MariaDB's
//!   bulk execution, the deprecated commands (COM_PROCESS_KILL, COM_SHUTDOWN, COM_DEBUG, ...:
//!   1047).
//! - Per-statement status snapshots: every response of one multi-statement COM_QUERY carries
//!   the status read after the handler returned.
//! - Capability checks on multiple results: a handler that pushes several responses to a client
//!   without CLIENT_MULTI_RESULTS (or, for COM_STMT_EXECUTE, PS_MULTI_RESULTS) gets them sent
//!   anyway; every client in CLIENTS.md sets both.
//!
//! # Tests
//!
//! Unit tests sit beside the codec (lenenc boundaries, framing and chains, the value codec in
//! both protocols, parameter decoding, handshake parsing, random-input loops). Integration tests
//! in `tests/` run a toy handler (`tests/common`) on a free port: `mysql_async_client` (a real
//! Rust client), `raw_protocol` (byte-level checks, both EOF framings, pipelining, 16 MiB
//! boundaries, limits), `io_batching` (one write per pipelined batch, bounded writes),
//! `robustness` (thousands of random and truncated packets over TCP; `WIRE_FUZZ_SEED`,
//! `WIRE_FUZZ_CASES`), `concurrency` (64 connections for 3 s), `tls` (the upgrade byte by byte, full
//! authentication, client certificates, require_secure_transport), `rsa_auth` (full
//! authentication without TLS through the RSA key exchange, byte by byte and with mysql_async), `python_clients` (PyMySQL
//! and mysql-connector-python, pure and C extension, and PyMySQL over TLS verifying a test CA,
//! from a venv under the target dir; skipped with a printed reason when pip cannot install) and `cli_client` (the mariadb CLI, skipped
//! when absent).

mod auth;
mod codec;
mod constants;
mod handler;
mod handshake;
mod kill;
mod packet;
mod response;
pub mod rsa_key;
mod server;
mod statement;
pub mod tls;
pub mod x509_name;
mod value;

pub use auth::{
    CACHING_SHA2_PLUGIN, NATIVE_PASSWORD_PLUGIN, SCRAMBLE_LEN, caching_sha2_response,
    caching_sha2_verifier, is_empty_answer, native_password_hash, native_password_response,
    verify_caching_sha2, verify_native_password,
};
pub use constants::{ColumnType, capability, charset, column_flag, command, status};
pub use handler::{AuthRequest, Handler};
pub use kill::{Kill, KillHandle};
pub use response::{
    Column, ErrorPacket, OkPacket, Prepared, Response, Responses, ResultSet, Row, RowBatch,
    RowSource, Rows,
};
pub use server::{Error, ServerOptions, serve};
pub use rsa_key::{RsaKeyError, RsaKeyPair, RsaKeySource, rsa_encrypted_password};
pub use tls::TlsInfo;
pub use value::{ParamValue, Value};
