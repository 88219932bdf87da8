//! # cairn-e2e: end-to-end tests against real processes
//!
//! [`Cluster`] starts a whole cluster the way an operator would: a config file with free
//! loopback ports, then `cairn mgmd`, `cairn datad` and `cairn sqld` as separate OS processes,
//! each logging to its own file. Tests talk to it through real clients (mysql_async here;
//! Python, Perl, Node and the mysql CLI in `tests/clients/`) and through the admin protocol.
//! Faults are real too: `kill -9`, SIGSTOP/SIGCONT.
//!
//! Every cluster lives in its own temporary directory and is killed when dropped, so several
//! test runs share a machine. When a test panics, the tail of every node's log is printed.
//!
//! The `cairn` binary must be built first (`cargo build --bin cairn`, which the README's test
//! command does); set `CAIRN_BIN` to use another one.

pub mod raw;
pub mod sqltest;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use cairn_control::ClusterConfig;
use cairn_proto::pb::{AdminCommand, frame::Body};
use cairn_proto::{Identity, Role, RpcClient};

/// The shape of a test cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    pub data_nodes: u32,
    pub replicas: u32,
    pub sql_nodes: u32,
    pub mgmds: u32,
    /// HeartbeatIntervalDbDb: tests fail over much faster than NDB's 5 s default.
    pub heartbeat_ms: u64,
    pub data_memory: String,
    /// More `[cluster]` parameters, one `Name = value` per line (DiskSync, checkpoints, ...).
    pub cluster_extra: String,
    /// Spare API slots (no SQL node runs in them) for tools such as `cairn restore`.
    pub spare_api_slots: u32,
    /// ArbitrationTimeout: NDB's 7500 ms would make failover tests slow.
    pub arbitration_ms: u64,
    /// TLS on the SQL nodes' MySQL ports: `cairn certs` makes a CA and node certificates in
    /// `<dir>/tls` ([`Cluster::tls_dir`]), and every started SQL node gets SslCert/SslKey/SslCa
    /// plus these extra `[[mysqld]]` lines (e.g. `RequireSecureTransport = true`).
    pub tls: Option<String>,
    /// More parameters of every running SQL node's `[[mysqld]]` section, one `Name = value`
    /// per line (MaxConnections, MaxConnectErrors, ...).
    pub sql_node_extra: String,
    /// Mutual TLS on every link between nodes (`NodeSslDir` = [`Cluster::tls_dir`]); the
    /// harness's own links (catalog, admin commands) use TLS too, with node and `admin` client
    /// certificates from `cairn certs`.
    pub node_tls: bool,
}

impl Default for ClusterSpec {
    fn default() -> ClusterSpec {
        ClusterSpec {
            data_nodes: 2,
            replicas: 2,
            sql_nodes: 1,
            mgmds: 1,
            heartbeat_ms: 100,
            data_memory: "128M".into(),
            cluster_extra: String::new(),
            spare_api_slots: 0,
            arbitration_ms: 1000,
            tls: None,
            sql_node_extra: String::new(),
            node_tls: false,
        }
    }
}

/// The first spare API slot's node id (see [`ClusterSpec::spare_api_slots`]).
pub const FIRST_SPARE_API_SLOT: u32 = 150;

pub fn cairn_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CAIRN_BIN") {
        return PathBuf::from(path);
    }
    // Test executables live in target/<profile>/deps; the binary is in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target profile directory");
    profile_dir.join("cairn")
}

/// A port nothing listens on now, never the same twice in this process: the kernel may hand the
/// same ephemeral port to two binds in a row once the first listener is closed, and a cluster's
/// config must not name one port for two nodes.
fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind a free port").local_addr().expect("local addr").port();
        if handed_out.insert(port) {
            return port;
        }
    }
}

/// The API slot the harness registers as to read the catalog and inspect replicas.
pub const DIAGNOSTIC_NODE: u32 = 199;

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config: ClusterConfig,
    pub config_path: PathBuf,
    children: BTreeMap<u32, Child>,
    /// The harness's own registration (as the spare API slot), made once and kept.
    management: tokio::sync::OnceCell<std::sync::Arc<cairn_mgmd::client::ManagementClient>>,
}

impl Cluster {
    /// Starts a cluster and waits until every data node is started and every SQL node accepts
    /// connections.
    pub async fn start(spec: ClusterSpec) -> anyhow::Result<Cluster> {
        let binary = cairn_binary();
        if !binary.exists() {
            bail!("{} does not exist: run `cargo build --bin cairn` first (the README's test command does)", binary.display());
        }
        let dir = tempfile::Builder::new().prefix("cairn-e2e-").tempdir()?;
        let tls_dir = dir.path().join("tls");
        let node_tls = if spec.node_tls { format!("NodeSslDir = \"{}\"", tls_dir.display()) } else { String::new() };
        let mut text = format!(
            "[cluster]\nName = \"e2e\"\nSecret = \"e2e-secret-{}\"\nNoOfReplicas = {}\nDataMemory = \"{}\"\n\
             HeartbeatIntervalDbDb = {hb}\nHeartbeatIntervalDbApi = {hb}\nArbitrationTimeout = {arb}\nAllowPasswordlessRoot = true\n{}\n{node_tls}\n\n",
            std::process::id(),
            spec.replicas,
            spec.data_memory,
            spec.cluster_extra,
            hb = spec.heartbeat_ms,
            arb = spec.arbitration_ms,
        );
        for k in 0..spec.mgmds {
            text.push_str(&format!("[[ndb_mgmd]]\nNodeId = {}\nPortNumber = {}\n\n", 49 + k * 10, free_port()));
        }
        for id in 1..=spec.data_nodes {
            text.push_str(&format!("[[ndbd]]\nNodeId = {id}\nServerPort = {}\n\n", free_port()));
        }
        for k in 0..spec.sql_nodes {
            text.push_str(&format!("[[mysqld]]\nNodeId = {}\nHostName = \"127.0.0.1\"\nPort = {}\n", 100 + k, free_port()));
            if let Some(extra) = &spec.tls {
                let file = |name: String| tls_dir.join(name).display().to_string();
                text.push_str(&format!(
                    "SslCert = \"{}\"\nSslKey = \"{}\"\nSslCa = \"{}\"\n{extra}\n",
                    file(format!("node-{}.pem", 100 + k)),
                    file(format!("node-{}-key.pem", 100 + k)),
                    file("ca.pem".into()),
                ));
            }
            text.push_str(&spec.sql_node_extra);
            text.push_str("\n\n");
        }
        for k in 0..spec.spare_api_slots {
            text.push_str(&format!("[[mysqld]]\nNodeId = {}\nHostName = \"127.0.0.1\"\nPort = {}\n\n", FIRST_SPARE_API_SLOT + k, free_port()));
        }
        // A spare API slot the harness itself uses to inspect data nodes; never started as a process.
        text.push_str(&format!("[[mysqld]]\nNodeId = {DIAGNOSTIC_NODE}\nHostName = \"127.0.0.1\"\nPort = {}\n\n", free_port()));
        let config = ClusterConfig::parse(&text)?;
        let config_path = dir.path().join("cluster.toml");
        std::fs::write(&config_path, &text)?;
        if spec.tls.is_some() || spec.node_tls {
            let status = std::process::Command::new(&binary)
                .args(["certs", "--config"])
                .arg(&config_path)
                .arg("--out")
                .arg(&tls_dir)
                .args(["--client", "x509-client", "--client", "admin"])
                .stdout(std::process::Stdio::null())
                .status()?;
            if !status.success() {
                bail!("cairn certs failed: {status}");
            }
        }
        let mut cluster =
            Cluster { dir, config, config_path, children: BTreeMap::new(), management: tokio::sync::OnceCell::new() };
        let ids: Vec<u32> = cluster
            .config
            .mgmds
            .iter()
            .map(|m| m.node_id)
            .chain(cluster.config.data_nodes.iter().map(|d| d.id.0))
            .chain(
                cluster
                    .config
                    .sql_nodes
                    .iter()
                    .map(|s| s.node_id)
                    .filter(|id| *id != DIAGNOSTIC_NODE && !(FIRST_SPARE_API_SLOT..DIAGNOSTIC_NODE).contains(id)),
            )
            .collect();
        for id in ids {
            cluster.start_node(id)?;
        }
        cluster.wait_ready(Duration::from_secs(60)).await?;
        Ok(cluster)
    }

    /// Where a TLS cluster's CA (`ca.pem`), node and client certificates are.
    pub fn tls_dir(&self) -> PathBuf {
        self.dir.path().join("tls")
    }

    fn mgm_list(&self) -> String {
        self.config.mgmd_addresses().join(",")
    }

    /// Starts (or restarts) one node's process.
    pub fn start_node(&mut self, id: u32) -> anyhow::Result<()> {
        self.start_node_with(id, &[], &[])
    }

    /// The data directory of node `id`.
    pub fn data_dir(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// Starts one node's process with extra environment (fault injection: `CAIRN_FAILPOINT`).
    pub fn start_node_with_env(&mut self, id: u32, env: &[(&str, &str)]) -> anyhow::Result<()> {
        self.start_node_with(id, &[], env)
    }

    /// Starts one node's process with extra arguments (`--initial`, `--nostart` for a data node)
    /// and environment.
    pub fn start_node_with(&mut self, id: u32, extra: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
        let node_dir = self.dir.path().join(format!("node-{id}"));
        std::fs::create_dir_all(&node_dir)?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path(id))?;
        let config = self.config_path.to_string_lossy().into_owned();
        let node = id.to_string();
        let data_dir = node_dir.to_string_lossy().into_owned();
        let mgm = self.mgm_list();
        let args: Vec<&str> = if self.config.mgmd(cairn_common_id(id)).is_some() {
            vec!["mgmd", "--node-id", &node, "--config", &config, "--data-dir", &data_dir]
        } else if self.config.data_node(cairn_common_id(id)).is_some() {
            vec!["datad", "--node-id", &node, "--mgm", &mgm, "--secret-file", &config, "--data-dir", &data_dir]
        } else {
            vec!["sqld", "--node-id", &node, "--mgm", &mgm, "--secret-file", &config]
        };
        let mut args = args;
        args.extend_from_slice(extra);
        let child = Command::new(cairn_binary())
            .args(&args)
            // Its own process group: kill -9 takes a data node's angel and worker together.
            .process_group(0)
            .envs(env.iter().copied())
            .env("RUST_LOG", std::env::var("CAIRN_TEST_LOG").unwrap_or_else(|_| "info,raft=warn".into()))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start node {id}"))?;
        self.children.insert(id, child);
        Ok(())
    }

    pub fn log_path(&self, id: u32) -> PathBuf {
        self.dir.path().join(format!("node-{id}.log"))
    }

    /// kill -9: the process (for a data node, its angel and worker) gets no chance to flush or
    /// say goodbye.
    pub fn kill9(&mut self, id: u32) {
        if let Some(mut child) = self.children.remove(&id) {
            // SAFETY: kill(2) on the process group of a child we spawned in its own group.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process of node `id` has exited; takes its exit status then.
    pub fn exited(&mut self, id: u32) -> Option<std::process::ExitStatus> {
        let status = self.children.get_mut(&id).and_then(|c| c.try_wait().ok().flatten());
        if status.is_some() {
            self.children.remove(&id);
        }
        status
    }

    /// Forgets a node's process that exited on its own (after `N STOP`, `SHUTDOWN`).
    pub fn wait_exit(&mut self, id: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.exited(id) {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self, id: u32) {
        if let Some(mut child) = self.children.remove(&id) {
            // SAFETY: kill(2) on a child we spawned; no memory is involved.
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` to node `id`'s process group (a data node's angel and worker together):
    /// SIGSTOP freezes the node as a hung machine would, SIGCONT lets it go on.
    pub fn signal(&self, id: u32, signal: i32) {
        if let Some(child) = self.children.get(&id) {
            // SAFETY: kill(2) on the process group of a child we spawned in its own group.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), signal);
            }
        }
    }

    /// Whether the process of node `id` is stopped by a signal (SIGSTOP: state `T` in
    /// /proc/<pid>/stat), as a `:stop` failpoint leaves it. Linux only, like the rest of the
    /// fault tests.
    pub fn is_stopped(&self, id: u32) -> bool {
        let Some(child) = self.children.get(&id) else { return false };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{}/stat", child.id())) else { return false };
        // The command name in parentheses may hold spaces; the state follows the last ')'.
        stat.rsplit_once(')').is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
    }

    pub fn is_running(&mut self, id: u32) -> bool {
        self.children.get_mut(&id).is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    fn identity(&self, node_id: u32, role: Role) -> Identity {
        // On a cluster with node TLS the harness presents a certificate as every node does:
        // the admin client's for admin commands, the API slot's node certificate otherwise.
        let tls = self.config.cluster.node_ssl_dir.as_ref().map(|dir| {
            let dir = Path::new(dir);
            let files = match role {
                Role::Admin => cairn_proto::TlsFiles::for_client(dir, "admin"),
                _ => cairn_proto::TlsFiles::for_node(dir, node_id),
            };
            cairn_proto::LinkTls::load(&files).expect("the harness's certificates from cairn certs")
        });
        // Admin commands prove the admin credential when the config sets one, as an operator's
        // `cairn mgm --admin-password` does.
        let secret = match (role, &self.config.cluster.admin_password) {
            (Role::Admin, Some(password)) => password.clone(),
            _ => self.config.cluster.secret.clone(),
        };
        Identity { node_id, role, secret, software_version: "e2e".into(), tls }
    }

    /// The catalog as the management node pushes it (the harness registers as the spare API slot).
    pub async fn catalog(&self) -> anyhow::Result<std::sync::Arc<cairn_common::catalog::Catalog>> {
        let client = self
            .management
            .get_or_try_init(|| {
                cairn_mgmd::client::ManagementClient::connect(
                    self.config.mgmd_addresses(),
                    self.identity(DIAGNOSTIC_NODE, Role::Sqld),
                    String::new(),
                    Duration::from_secs(10),
                )
            })
            .await?;
        // The catalog is pushed; give a just-committed change a moment to arrive.
        tokio::time::sleep(Duration::from_millis(200)).await;
        Ok(client.catalog_now())
    }

    /// Commits a catalog change through the management node (as an SQL node would).
    pub async fn ddl(&self, op: cairn_common::catalog::CatalogOp) -> anyhow::Result<()> {
        self.catalog().await?;
        let client = self.management.get().context("registered by catalog()")?;
        client.ddl(op).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }

    /// Every row data node `node` holds of `database.table`, read from its own applied state
    /// (leader or not), decoded and sorted: what that replica would serve.
    pub async fn replica_rows(&self, node: u32, database: &str, table: &str) -> anyhow::Result<Vec<Vec<cairn_common::Value>>> {
        use cairn_common::ops::{ReadOp, ReadResult, TableRef};
        use cairn_proto::data::{DataReply, DataRequestBody, DataResponseBody, decode, encode};
        let catalog = self.catalog().await?;
        let def = catalog.table_by_name(database, table).with_context(|| format!("no table {database}.{table}"))?;
        let address = self.config.data_node(cairn_common_id(node)).context("not a data node")?.address();
        let link = cairn_proto::connect(&address, &self.identity(DIAGNOSTIC_NODE, Role::Sqld)).await?;
        let (client, _) = RpcClient::new(link);
        let layout = def.layout();
        let mut rows = Vec::new();
        let mut resume = None;
        loop {
            let op = ReadOp::Scan {
                table: TableRef { id: def.id, version: def.version },
                partitions: vec![],
                filter: None,
                projection: None,
                limit: None,
                resume,
                max_rows: 10_000,
                max_bytes: 4 << 20,
            };
            let body = Body::DataRequest(cairn_proto::pb::DataRequest { body: encode(&DataRequestBody::LocalRead(op)) });
            let Body::DataResponse(response) = client.call(body, Duration::from_secs(10)).await? else {
                bail!("unexpected answer from data node {node}");
            };
            let answer: DataResponseBody = decode(&response.body)?;
            match answer {
                Ok(DataReply::Read(ReadResult::ScanBatch { rows: batch, resume: next })) => {
                    for row in batch {
                        rows.push(layout.decode(&row)?);
                    }
                    match next {
                        Some(position) => resume = Some(position),
                        None => break,
                    }
                }
                other => bail!("data node {node} answered {other:?}"),
            }
        }
        rows.sort_by(|a, b| format!("{a:?}").cmp(&format!("{b:?}")));
        Ok(rows)
    }

    pub fn mysql_port(&self, k: usize) -> u16 {
        self.config.sql_nodes[k].port
    }

    pub fn mysql_url(&self, k: usize, database: Option<&str>) -> String {
        format!("mysql://root@127.0.0.1:{}/{}", self.mysql_port(k), database.unwrap_or(""))
    }

    /// A connection pool to SQL node `k` (TCP forced: no Unix-socket shortcut).
    pub fn pool(&self, k: usize, database: Option<&str>) -> mysql_async::Pool {
        let opts = mysql_async::Opts::from_url(&self.mysql_url(k, database)).expect("valid url");
        let opts = mysql_async::OptsBuilder::from_opts(opts).prefer_socket(false);
        mysql_async::Pool::new(opts)
    }

    /// Runs an admin command (as `cairn mgm -e` would) against the first management node.
    pub async fn admin(&self, command: &str) -> anyhow::Result<String> {
        let identity = self.identity(0, Role::Admin);
        let mut last = None;
        for address in self.config.mgmd_addresses() {
            match cairn_proto::connect(&address, &identity).await {
                Ok(link) => {
                    let (client, _) = RpcClient::new(link);
                    let reply = client
                        .call(Body::AdminCommand(AdminCommand { command: command.into() }), Duration::from_secs(180))
                        .await?;
                    let Body::AdminReply(reply) = reply else { bail!("unexpected admin answer") };
                    return Ok(reply.text);
                }
                Err(e) => last = Some(e),
            }
        }
        bail!("no management node answered: {last:?}")
    }

    /// The current primary (Raft leader) of each node group, from SHOW's `*` marks.
    pub async fn leaders(&self) -> anyhow::Result<Vec<u32>> {
        let show = self.admin("SHOW").await?;
        Ok(show
            .lines()
            .filter(|l| l.starts_with("id=") && l.contains("Nodegroup") && l.ends_with(", *)"))
            .filter_map(|l| l[3..].split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect())
    }

    /// Waits until every running data node reports `started` and every running SQL node accepts
    /// TCP connections.
    pub async fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let data: Vec<u32> = self.config.data_nodes.iter().map(|d| d.id.0).collect();
            let running_data: Vec<u32> = data.into_iter().filter(|id| self.children.contains_key(id)).collect();
            let status = self.admin("ALL STATUS").await.unwrap_or_default();
            let data_ready = running_data.iter().all(|id| status.contains(&format!("Node {id}: started")));
            let sql_ready = self
                .config
                .sql_nodes
                .iter()
                .filter(|s| self.children.contains_key(&s.node_id))
                .all(|s| std::net::TcpStream::connect(("127.0.0.1", s.port)).is_ok());
            if data_ready && sql_ready {
                return Ok(());
            }
            for (id, child) in self.children.iter_mut() {
                if let Ok(Some(exit)) = child.try_wait() {
                    bail!("node {id} exited during start ({exit}); log:\n{}", tail(&self.dir.path().join(format!("node-{id}.log")), 40));
                }
            }
            if started.elapsed() > timeout {
                bail!("cluster not ready after {timeout:?}; last status:\n{status}\n{}", self.log_tails(20));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        let mut ids: Vec<u32> = self.config.mgmds.iter().map(|m| m.node_id).collect();
        ids.extend(self.config.data_nodes.iter().map(|d| d.id.0));
        ids.extend(self.config.sql_nodes.iter().map(|s| s.node_id));
        for id in ids {
            out.push_str(&format!("---- node {id} ----\n{}\n", tail(&self.log_path(id), lines)));
        }
        out
    }
}

fn cairn_common_id(id: u32) -> cairn_common::ids::NodeId {
    cairn_common::ids::NodeId(id)
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_tails(30));
        }
        for (_, mut child) in std::mem::take(&mut self.children) {
            // SAFETY: kill(2) on the process group of a child we spawned in its own group.
            unsafe {
                libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
