//! # cairn-sqld: the SQL node (NDB's mysqld as an API node)
//!
//! Stateless: any number of SQL nodes serve the same cluster, and clients may use any of them.
//! An SQL node registers with a management node (proving the cluster secret), keeps the
//! catalog it pushes, and serves the MySQL protocol (`cairn-wire`) with the SQL engine
//! (`cairn-sql`) executing against the cluster through [`cluster::ClusterClient`]: a key
//! lookup is one request to the leader of one node group; scans fan out to every node group in
//! parallel; writes go to the node group that owns their rows.
//!
//! Accounts come from the catalog, so a user created through one SQL node can log in through
//! every other. Connections are counted against the node's limits (`cairn_sql::limits`) when
//! accepted, before the handshake, and again at login for the account's own limits.
//!
//! With `SslCert`/`SslKey` in its `[[mysqld]]` section the node offers TLS on the MySQL port
//! ([`tls`]; reloaded on SIGHUP), and `RequireSecureTransport` refuses plain logins. Its RSA
//! key pair for `caching_sha2_password`'s full authentication without TLS is read or generated
//! at start ([`caching_sha2`]).
//!
//! Not yet here: the HTTP /metrics endpoint.

pub mod caching_sha2;
pub mod cluster;
pub mod handler;
pub mod tls;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use cairn_common::ids::NodeId;
use cairn_mgmd::client::ManagementClient;
use cairn_proto::pb::NodeStatus;
use cairn_proto::{Identity, Role};
use cairn_sql::{Engine, EngineConfig};
use handler::{NodeCounters, SqlHandler};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

pub const SERVER_VERSION: &str = concat!("8.0.36-cairn-", env!("CARGO_PKG_VERSION"));

#[derive(Clone, Debug)]
pub struct SqldOptions {
    pub node_id: u32,
    pub mgm: Vec<String>,
    pub secret: String,
    /// Mutual TLS on every link to other nodes (the cluster's NodeSslDir); None: plain TCP.
    pub tls: Option<cairn_proto::LinkTls>,
}

/// Refuses a connection before any handshake, as MySQL answers max_connections (1040) and a
/// blocked host (1129): one ERR packet with sequence id 0, then close. Bounded in time, so a
/// client that does not read cannot hold the task.
async fn refuse_before_handshake(mut stream: tokio::net::TcpStream, error: cairn_common::Error) {
    let mut payload = vec![0xff];
    payload.extend_from_slice(&error.code().to_le_bytes());
    payload.push(b'#');
    payload.extend_from_slice(error.sqlstate().as_bytes());
    payload.extend_from_slice(error.message.as_bytes());
    let mut packet = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    packet.push(0);
    packet.extend_from_slice(&payload);
    let write = async {
        let _ = stream.write_all(&packet).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), write).await;
}

/// Fault tests name a point of the commit protocol in `CAIRN_FAILPOINT` (e.g. `after-prepare`)
/// and this SQL node dies there as if killed with -9: no cleanup, no goodbye. With a `:stop`
/// suffix (`after-prepare:stop`) it instead stops itself with SIGSTOP there, as an operator's
/// `kill -STOP` would, so that a test can act while the transaction is held at that point (for
/// example take a backup while it is prepared and undecided) and later resume or kill it.
fn failpoint_from_env() -> Option<cairn_sql::Failpoint> {
    let armed = std::env::var("CAIRN_FAILPOINT").ok().filter(|v| !v.is_empty())?;
    let (wanted, stop) = match armed.strip_suffix(":stop") {
        Some(point) => (point.to_string(), true),
        None => (armed, false),
    };
    tracing::warn!(point = %wanted, stop, "fault injection armed: this SQL node will die or stop at that point");
    Some(std::sync::Arc::new(move |point: &'static str| {
        if point != wanted {
            return;
        }
        if stop {
            eprintln!("CAIRN_FAILPOINT {point}: stopping (SIGSTOP)");
            // SAFETY: raise only sends a signal to this process; SIGSTOP suspends every thread
            // until a SIGCONT (or SIGKILL) arrives, which is exactly the pause the test wants.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
        } else {
            eprintln!("CAIRN_FAILPOINT {point}: aborting");
            std::process::abort();
        }
    }))
}

pub async fn run(options: SqldOptions) -> anyhow::Result<()> {
    let identity = Identity {
        node_id: options.node_id,
        role: Role::Sqld,
        secret: options.secret.clone(),
        software_version: cairn_mgmd::admin::SOFTWARE_VERSION.to_string(),
        tls: options.tls.clone(),
    };
    // SIGHUP reloads the node certificate for links made after it, as it reloads the MySQL
    // port's (docs/security.md).
    if let Some(tls) = &options.tls {
        tls.reload_on_sighup(format!("SQL node {}", options.node_id)).context("cannot listen for SIGHUP")?;
    }
    let management =
        ManagementClient::connect(options.mgm.clone(), identity.clone(), String::new(), Duration::from_secs(120)).await?;
    let config = management.config.clone();
    let me = config
        .sql_node(NodeId(options.node_id))
        .with_context(|| format!("node id {} is not a [[mysqld]] in the cluster config", options.node_id))?
        .clone();
    // TLS is loaded before the port opens: a node configured for TLS never serves without it.
    let tls = tls::TlsReloader::from_section(&me)?;
    if let Some(reloader) = &tls {
        reloader.clone().reload_on_sighup()?;
    }
    let require_secure_transport = me.require_secure_transport;
    // Key files are read before the port opens (bad files stop the node); a generated key is
    // made in the background while the node starts serving.
    let rsa_public_key = Arc::new(std::sync::OnceLock::new());
    let rsa_key = caching_sha2::rsa_key_source(&me, rsa_public_key.clone())?;
    let fast_auth_cache = Arc::new(caching_sha2::FastAuthCache::new(me.caching_sha2_fast_auth_cache));
    let bind_host = me.host_name.clone().unwrap_or_else(|| "0.0.0.0".into());
    let listener = TcpListener::bind((bind_host.as_str(), me.port))
        .await
        .with_context(|| format!("cannot listen on {bind_host}:{} (is the port taken?)", me.port))?;

    // Logins need the accounts: wait for a catalog that has them.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while management.catalog_now().accounts.is_empty() {
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("the management node has not created any account within 60 s");
        }
        let mut rx = management.catalog.clone();
        let _ = tokio::time::timeout(Duration::from_millis(500), rx.changed()).await;
    }

    let backend = Arc::new(cluster::ClusterClient::new(management.clone(), identity.clone()));
    let engine_config = EngineConfig {
        server_version: SERVER_VERSION.to_string(),
        node_id: options.node_id,
        failpoint: failpoint_from_env(),
        max_prepared_statements: me.max_prepared_stmt_count.min(usize::MAX as u64) as usize,
        parser_max_mem_size: me.parser_max_mem_size.0,
        max_statement_memory: me.max_statement_memory.0,
        tls_configured: tls.is_some(),
        caching_sha2_public_key: rsa_public_key,
        limits: cairn_sql::limits::LimitSettings {
            max_connections: u64::from(me.max_connections),
            max_connect_errors: me.max_connect_errors,
            max_user_connections: me.max_user_connections,
            max_prepared_statements: me.max_prepared_stmt_count,
        },
        ..EngineConfig::default()
    };
    let engine = Engine::new(backend, engine_config);
    let counters = Arc::new(NodeCounters::default());

    let heartbeat_management = management.clone();
    let node_id = options.node_id;
    let every = Duration::from_millis(config.cluster.heartbeat_interval_db_api_ms.clamp(50, 5000));
    tokio::spawn(async move {
        loop {
            let status = NodeStatus { node_id, phase: "started".into(), ..Default::default() };
            heartbeat_management.heartbeat(status).await;
            tokio::time::sleep(every).await;
        }
    });

    tracing::info!(node = options.node_id, port = me.port, tls = tls.is_some(), "SQL node accepting MySQL connections");
    let next_connection = AtomicU32::new(1);
    let server = async {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            // max_connections and blocked hosts are refused before the handshake, without
            // reading anything from the client (crate cairn_sql::limits).
            let slot = match engine.limits().accept(&addr.ip().to_string()) {
                Ok(slot) => slot,
                Err(error) => {
                    tracing::info!(target: "audit", event = "connection_refused", node = node_id, host = %addr.ip(), code = error.code(), "connection refused");
                    tokio::spawn(refuse_before_handshake(stream, error));
                    continue;
                }
            };
            let connection_id = next_connection.fetch_add(1, Ordering::Relaxed);
            let kill = cairn_wire::KillHandle::new();
            let handler = SqlHandler::new(engine.clone(), connection_id as u64, Some(addr), counters.clone(), kill.clone(), slot)
                .with_fast_auth_cache(fast_auth_cache.clone());
            let options = cairn_wire::ServerOptions {
                server_version: SERVER_VERSION.to_string(),
                connection_id,
                client_addr: Some(addr),
                max_prepared_statements: engine.config().max_prepared_statements,
                kill,
                tls: tls.as_ref().map(|t| t.current()),
                require_secure_transport,
                rsa_key: rsa_key.clone(),
                ..Default::default()
            };
            tokio::spawn(async move {
                if let Err(e) = cairn_wire::serve(stream, handler, options).await {
                    tracing::debug!(connection = connection_id, error = %e, "connection ended");
                }
            });
        }
    };
    tokio::select! {
        _ = server => Ok(()),
        _ = cairn_mgmd::shutdown_signal() => {
            tracing::info!("SQL node shutting down");
            Ok(())
        }
    }
}
