//! # cairn: one binary for every role of a Cairn cluster
//!
//! - `cairn mgmd`: a management node (NDB's ndb_mgmd).
//! - `cairn datad`: a data node (NDB's ndbd).
//! - `cairn sqld`: an SQL node speaking the MySQL protocol (NDB's mysqld as API node).
//! - `cairn mgm`: the management client (NDB's ndb_mgm).
//! - `cairn up`: a whole local cluster in one command.
//! - `cairn restore`: rebuild a cluster from a backup (NDB's ndb_restore).
//! - `cairn certs`: a cluster CA and a TLS certificate per node of a config (docs/security.md).
//!
//! Each role is a thin shell over its crate; `main` parses arguments, sets up logging and a
//! tokio runtime, and hands over.

mod certs;
mod mgm;
mod restore;
mod up;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(name = "cairn", version, about = "Cairn: a clustered in-memory MySQL-compatible database")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// How a node proves the cluster secret.
#[derive(clap::Args, Debug, Clone)]
struct SecretArgs {
    /// The cluster secret.
    #[arg(long, env = "CAIRN_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// A file holding the secret, or the cluster config (its [cluster] Secret is used).
    #[arg(long)]
    secret_file: Option<PathBuf>,
}

impl SecretArgs {
    fn resolve(&self) -> anyhow::Result<String> {
        if let Some(secret) = &self.secret {
            return Ok(secret.clone());
        }
        let Some(path) = &self.secret_file else {
            anyhow::bail!("give the cluster secret with --secret, CAIRN_SECRET or --secret-file");
        };
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
        if let Ok(config) = cairn_control::ClusterConfig::parse(&text) {
            return Ok(config.cluster.secret);
        }
        let secret = text.trim().to_string();
        anyhow::ensure!(!secret.is_empty(), "{} is empty", path.display());
        Ok(secret)
    }
}

/// Where a node finds its certificates for mutual TLS with the other nodes.
#[derive(clap::Args, Debug, Clone)]
struct NodeTlsArgs {
    /// A directory with `ca.pem`, `node-<id>.pem` and `node-<id>-key.pem` (as `cairn certs`
    /// writes them): every link to other nodes is mutual TLS. Default: the `NodeSslDir` of the
    /// cluster config when `--secret-file` names one; without either, links are plain TCP.
    #[arg(long, env = "CAIRN_SSL_DIR")]
    ssl_dir: Option<PathBuf>,
}

impl NodeTlsArgs {
    /// The directory in force: the flag, else the config's NodeSslDir.
    fn directory(&self, secret: &SecretArgs) -> Option<PathBuf> {
        if let Some(dir) = &self.ssl_dir {
            return Some(dir.clone());
        }
        let text = std::fs::read_to_string(secret.secret_file.as_ref()?).ok()?;
        cairn_control::ClusterConfig::parse(&text).ok()?.cluster.node_ssl_dir.map(PathBuf::from)
    }
}

/// Loads node `node_id`'s certificate, key and the cluster CA from `dir`; a node told to use
/// TLS does not start without them, nor with a certificate issued for another node or role.
fn node_tls(dir: Option<&PathBuf>, node_id: u32, role: cairn_proto::Role) -> anyhow::Result<Option<cairn_proto::LinkTls>> {
    let Some(dir) = dir else { return Ok(None) };
    let tls = cairn_proto::LinkTls::load_node(&cairn_proto::TlsFiles::for_node(dir, node_id), node_id, role)
        .with_context(|| format!("node-to-node TLS of node {node_id}"))?;
    Ok(Some(tls))
}

/// `HOST:PORT` (an IPv6 host in brackets) for `--listen`.
fn parse_listen(text: &str) -> Result<(String, u16), String> {
    let (host, port) = text.rsplit_once(':').ok_or_else(|| format!("{text}: expected HOST:PORT"))?;
    let port = port.parse::<u16>().map_err(|_| format!("{text}: {port} is not a port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("{text}: the host is missing"));
    }
    Ok((host.to_string(), port))
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a management node.
    Mgmd {
        #[arg(long)]
        node_id: u32,
        /// The cluster config (TOML).
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Run a data node (an angel process that runs the data node and restarts it on command).
    Datad {
        #[arg(long)]
        node_id: u32,
        /// Management node(s), host:port, comma-separated.
        #[arg(long, default_value = "127.0.0.1:1186", value_delimiter = ',')]
        mgm: Vec<String>,
        #[command(flatten)]
        secret: SecretArgs,
        #[command(flatten)]
        tls: NodeTlsArgs,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Initial node restart: remove this node's checkpoints and Raft log and copy everything
        /// from a live replica (NDB's --initial). Backups stay.
        #[arg(long)]
        initial: bool,
        /// Register with the management node and wait for `N START` (NDB's -n / --nostart).
        #[arg(short = 'n', long = "nostart")]
        nostart: bool,
        /// Listen on this HOST:PORT instead of the config's HostName:ServerPort, which other
        /// nodes still dial (for a port forward or proxy between them and this node).
        #[arg(long, value_parser = parse_listen)]
        listen: Option<(String, u16)>,
        /// Run the data node itself rather than its angel (the angel starts it so).
        #[arg(long, hide = true)]
        worker: bool,
    },
    /// Rebuild a cluster's schema, users and data from a backup (NDB's ndb_restore).
    Restore(restore::RestoreArgs),
    /// Run an SQL node (MySQL protocol).
    Sqld {
        #[arg(long)]
        node_id: u32,
        /// Management node(s), host:port, comma-separated.
        #[arg(long, default_value = "127.0.0.1:1186", value_delimiter = ',')]
        mgm: Vec<String>,
        #[command(flatten)]
        secret: SecretArgs,
        #[command(flatten)]
        tls: NodeTlsArgs,
    },
    /// The management client.
    Mgm(mgm::MgmArgs),
    /// Start a local cluster: 1 management node, data nodes, SQL nodes.
    Up(up::UpArgs),
    /// Create a cluster CA and a TLS certificate per node of a config.
    Certs(certs::CertsArgs),
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,raft=warn"));
    // Colours only on a terminal: node logs are files that tests and operators grep.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the async runtime")
}

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<i32> = (|| {
        let rt = runtime()?;
        match cli.command {
            Command::Mgmd { node_id, config, data_dir } => {
                init_logging();
                rt.block_on(cairn_mgmd::run(cairn_mgmd::MgmdOptions { node_id, config_path: config, data_dir }))?;
                Ok(0)
            }
            Command::Datad { node_id, mgm, secret: secret_args, tls: tls_args, data_dir, initial, nostart, listen, worker } => {
                init_logging();
                let secret = secret_args.resolve()?;
                let ssl_dir = tls_args.directory(&secret_args);
                // Loaded in the angel too, so that a broken TLS setup stops the node at once
                // instead of in a restart loop of the worker.
                let tls = node_tls(ssl_dir.as_ref(), node_id, cairn_proto::Role::Datad)?;
                if worker {
                    let options =
                        cairn_datad::DatadOptions { node_id, mgm, secret, data_dir, initial, no_start: nostart, tls, listen };
                    return rt.block_on(cairn_datad::run(options));
                }
                // The angel: the worker gets the same node, management nodes, data directory
                // and certificate directory, and the secret in its environment (not on its
                // command line).
                drop(rt);
                let mut args = vec!["datad".to_string(), "--node-id".into(), node_id.to_string(), "--mgm".into(), mgm.join(",")];
                if let Some(dir) = &data_dir {
                    args.push("--data-dir".into());
                    args.push(dir.to_string_lossy().into_owned());
                }
                if let Some((host, port)) = &listen {
                    args.push("--listen".into());
                    args.push(format!("[{host}]:{port}"));
                }
                if let Some(dir) = &ssl_dir {
                    args.push("--ssl-dir".into());
                    args.push(dir.to_string_lossy().into_owned());
                }
                let mode = cairn_datad::angel::StartMode { initial, no_start: nostart };
                cairn_datad::angel::supervise(args, vec![("CAIRN_SECRET".into(), secret)], mode)
            }
            Command::Sqld { node_id, mgm, secret: secret_args, tls: tls_args } => {
                init_logging();
                let secret = secret_args.resolve()?;
                let tls = node_tls(tls_args.directory(&secret_args).as_ref(), node_id, cairn_proto::Role::Sqld)?;
                rt.block_on(cairn_sqld::run(cairn_sqld::SqldOptions { node_id, mgm, secret, tls }))?;
                Ok(0)
            }
            Command::Mgm(args) => rt.block_on(mgm::run(args)),
            Command::Restore(args) => {
                init_logging();
                rt.block_on(restore::run(args))
            }
            Command::Up(args) => rt.block_on(up::run(args)),
            Command::Certs(args) => certs::run(args).map(|()| 0),
        }
    })();
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("cairn: {e:#}");
            std::process::exit(1);
        }
    }
}
