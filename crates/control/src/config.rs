//! The cluster config: one TOML file, NDB's parameter names, every value checked at start.
//!
//! ```toml
//! [cluster]
//! Name = "calmail"
//! Secret = "a long random string"   # every node proves it knows this
//! NoOfReplicas = 2
//! DataMemory = "512M"
//!
//! [[ndb_mgmd]]
//! NodeId = 49
//! HostName = "127.0.0.1"
//! PortNumber = 1186
//!
//! [[ndbd]]
//! NodeId = 1
//! HostName = "127.0.0.1"
//! ServerPort = 11860
//! DataDir = "/var/lib/cairn/1"
//!
//! [[mysqld]]
//! NodeId = 50
//! Port = 3306
//! ```
//!
//! Data nodes form node groups of `NoOfReplicas` nodes, in the order they are listed (as NDB
//! does with node ids), unless every data node names its `NodeGroup`.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use cairn_common::ids::{NodeGroupId, NodeId};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError(message.into()))
}

/// How a data node makes its Raft log durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DiskSync {
    /// fsync before a commit is acknowledged (one fsync per batch of commits).
    Commit,
    /// fsync every TimeBetweenGlobalCheckpoints, as NDB's global checkpoints do: a crash of
    /// every replica of a node group can lose up to that much acknowledged work.
    Interval,
}

/// A size such as `"512M"`, `"2G"`, `"65536"` or `65536`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Bytes(pub u64);

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Number(n) => Ok(Bytes(n)),
            Raw::Text(t) => parse_size(&t).map(Bytes).ok_or_else(|| {
                serde::de::Error::custom(format!("'{t}' is not a size (use e.g. 512M, 2G or a number of bytes)"))
            }),
        }
    }
}

pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let (digits, unit) = match t.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => (&t[..at], t[at..].trim()),
        None => (t, ""),
    };
    let n: u64 = digits.parse().ok()?;
    let factor: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return None,
    };
    n.checked_mul(factor)
}

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n >= 1 << 30 && n % (1 << 30) == 0 {
            write!(f, "{}G", n >> 30)
        } else if n >= 1 << 20 && n % (1 << 20) == 0 {
            write!(f, "{}M", n >> 20)
        } else {
            write!(f, "{n}")
        }
    }
}

fn default_name() -> String {
    "cairn".into()
}
fn default_replicas() -> u32 {
    2
}
fn default_data_memory() -> Bytes {
    Bytes(512 << 20)
}
fn default_disk_sync() -> DiskSync {
    DiskSync::Commit
}
fn default_gcp_ms() -> u64 {
    2000
}
fn default_hb_db_ms() -> u64 {
    5000
}
fn default_min_disk_write_speed() -> Bytes {
    Bytes(10 << 20)
}
fn default_max_disk_write_speed() -> Bytes {
    Bytes(20 << 20)
}
fn default_lcp_log2_words() -> u32 {
    20
}
fn default_max_lcp_interval_ms() -> u64 {
    300_000
}
fn default_fragment_log_file_size() -> Bytes {
    Bytes(16 << 20)
}

fn default_hb_api_ms() -> u64 {
    1500
}
fn default_arbitration_ms() -> u64 {
    7500
}
fn default_deadlock_ms() -> u64 {
    1200
}
/// cairn-storage's TxnLimits default (this crate does not depend on it).
fn default_max_dml_operations() -> u64 {
    100_000
}
fn default_max_transaction_bytes() -> Bytes {
    Bytes(64 << 20)
}
fn default_host() -> String {
    "127.0.0.1".into()
}
fn default_mgm_port() -> u16 {
    1186
}
fn default_mysql_port() -> u16 {
    3306
}
fn default_max_connections() -> u32 {
    1024
}
fn default_max_connect_errors() -> u64 {
    100
}
fn default_max_prepared_stmt_count() -> u64 {
    16_382
}
/// cairn-sql's DEFAULT_PARSER_MAX_MEM_SIZE (this crate does not depend on it).
fn default_parser_max_mem_size() -> Bytes {
    Bytes(1 << 30)
}
/// cairn-sql's DEFAULT_MAX_STATEMENT_MEMORY.
fn default_max_statement_memory() -> Bytes {
    Bytes(1 << 30)
}

fn default_true() -> bool {
    true
}

impl ClusterSection {
    /// Raft log bytes applied since the previous local checkpoint started that start the next
    /// one: TimeBetweenLocalCheckpoints in NDB's unit (2^n words of 4 bytes).
    pub fn local_checkpoint_log_bytes(&self) -> u64 {
        4u64 << self.time_between_local_checkpoints.min(31)
    }
}

/// Cluster-wide parameters (NDB's `[ndbd default]` and friends).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    #[serde(rename = "Name", default = "default_name")]
    pub name: String,
    /// The shared secret every node proves in its handshake.
    #[serde(rename = "Secret")]
    pub secret: String,
    #[serde(rename = "NoOfReplicas", default = "default_replicas")]
    pub no_of_replicas: u32,
    #[serde(rename = "DataMemory", default = "default_data_memory")]
    pub data_memory: Bytes,
    #[serde(rename = "DiskSync", default = "default_disk_sync")]
    pub disk_sync: DiskSync,
    #[serde(rename = "TimeBetweenGlobalCheckpoints", default = "default_gcp_ms")]
    pub time_between_global_checkpoints_ms: u64,
    /// Local checkpoints are written no slower than this when the node is busy (NDB's
    /// MinDiskWriteSpeed, bytes per second).
    #[serde(rename = "MinDiskWriteSpeed", default = "default_min_disk_write_speed")]
    pub min_disk_write_speed: Bytes,
    /// ... and no faster than this when it is idle (NDB's MaxDiskWriteSpeed).
    #[serde(rename = "MaxDiskWriteSpeed", default = "default_max_disk_write_speed")]
    pub max_disk_write_speed: Bytes,
    /// NDB's TimeBetweenLocalCheckpoints, in NDB's unit: a local checkpoint starts once
    /// 4 × 2^n bytes of Raft log were applied since the previous one started (20: 4 MiB).
    #[serde(rename = "TimeBetweenLocalCheckpoints", default = "default_lcp_log2_words")]
    pub time_between_local_checkpoints: u32,
    /// Cairn's time trigger: a local checkpoint also starts this many milliseconds after the
    /// previous one if anything was applied since (0: only the log-size trigger).
    #[serde(rename = "MaxTimeBetweenLocalCheckpoints", default = "default_max_lcp_interval_ms")]
    pub max_time_between_local_checkpoints_ms: u64,
    /// Size of one Raft log segment file (NDB's redo log file size); whole segments are deleted
    /// once a checkpoint makes them unnecessary.
    #[serde(rename = "FragmentLogFileSize", default = "default_fragment_log_file_size")]
    pub fragment_log_file_size: Bytes,
    #[serde(rename = "HeartbeatIntervalDbDb", default = "default_hb_db_ms")]
    pub heartbeat_interval_db_db_ms: u64,
    #[serde(rename = "HeartbeatIntervalDbApi", default = "default_hb_api_ms")]
    pub heartbeat_interval_db_api_ms: u64,
    #[serde(rename = "ArbitrationTimeout", default = "default_arbitration_ms")]
    pub arbitration_timeout_ms: u64,
    #[serde(rename = "TransactionDeadlockDetectionTimeout", default = "default_deadlock_ms")]
    pub transaction_deadlock_detection_timeout_ms: u64,
    /// Rows one transaction may change or lock in one node group before commit (NDB's
    /// MaxDMLOperationsPerTransaction, counted per node group as Cairn's leaders keep the
    /// locks); past it the statement fails with 1206 and the transaction is rolled back.
    #[serde(rename = "MaxDMLOperationsPerTransaction", default = "default_max_dml_operations")]
    pub max_dml_operations_per_transaction: u64,
    /// Bytes of row images one transaction may change in one node group before commit; past
    /// it, 1197 and the transaction is rolled back (it is held in the leader's memory until
    /// commit and then becomes one Raft entry).
    #[serde(rename = "MaxTransactionBytes", default = "default_max_transaction_bytes")]
    pub max_transaction_bytes: Bytes,
    /// Password of 'root'@'%' created when the cluster starts for the first time.
    #[serde(rename = "RootPassword", default)]
    pub root_password: Option<String>,
    /// Allows a root account without a password (what `cairn up` uses on loopback).
    #[serde(rename = "AllowPasswordlessRoot", default)]
    pub allow_passwordless_root: bool,
    /// Mutual TLS on every link between nodes (docs/security.md): the directory, on every
    /// node's host, with the cluster CA (`ca.pem`) and each node's `node-<id>.pem` and
    /// `node-<id>-key.pem`, as `cairn certs --out` writes them. None: links are plain TCP.
    #[serde(rename = "NodeSslDir", default)]
    pub node_ssl_dir: Option<String>,
    /// The admin credential (docs/security.md): with it, `cairn mgm` commands that change the
    /// cluster (STOP, RESTART, START, SHUTDOWN, START/ABORT BACKUP, ...) are refused unless the
    /// client proved this password instead of the cluster secret.
    #[serde(rename = "AdminPassword", default)]
    pub admin_password: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MgmdSection {
    #[serde(rename = "NodeId")]
    pub node_id: u32,
    #[serde(rename = "HostName", default = "default_host")]
    pub host_name: String,
    #[serde(rename = "PortNumber", default = "default_mgm_port")]
    pub port: u16,
    #[serde(rename = "DataDir", default)]
    pub data_dir: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatadSection {
    #[serde(rename = "NodeId")]
    pub node_id: u32,
    #[serde(rename = "HostName", default = "default_host")]
    pub host_name: String,
    #[serde(rename = "ServerPort")]
    pub port: u16,
    #[serde(rename = "DataDir", default)]
    pub data_dir: Option<String>,
    #[serde(rename = "NodeGroup", default)]
    pub node_group: Option<u32>,
    #[serde(rename = "DataMemory", default)]
    pub data_memory: Option<Bytes>,
    /// Where backups go (`<BackupDataDir>/BACKUP/BACKUP-<id>/`); default: the DataDir.
    #[serde(rename = "BackupDataDir", default)]
    pub backup_data_dir: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqldSection {
    #[serde(rename = "NodeId")]
    pub node_id: u32,
    /// None: "accepting connect from any host", as NDB says for an API slot without HostName.
    #[serde(rename = "HostName", default)]
    pub host_name: Option<String>,
    #[serde(rename = "Port", default = "default_mysql_port")]
    pub port: u16,
    #[serde(rename = "MaxConnections", default = "default_max_connections")]
    pub max_connections: u32,
    /// TLS on the MySQL port (docs/security.md): the certificate chain and key, PEM files on
    /// the SQL node's host. Both or neither; with them the port offers TLS to clients.
    #[serde(rename = "SslCert", default)]
    pub ssl_cert: Option<String>,
    #[serde(rename = "SslKey", default)]
    pub ssl_key: Option<String>,
    /// The CA that client certificates are verified against (needed for REQUIRE X509).
    #[serde(rename = "SslCa", default)]
    pub ssl_ca: Option<String>,
    /// MySQL's require_secure_transport: refuse every login over a plain connection.
    #[serde(rename = "RequireSecureTransport", default)]
    pub require_secure_transport: bool,
    /// Handshakes from one client address that may fail in a row before the address is
    /// refused (1129) until FLUSH HOSTS; 0 never blocks. MySQL's max_connect_errors.
    #[serde(rename = "MaxConnectErrors", default = "default_max_connect_errors")]
    pub max_connect_errors: u64,
    /// Connections at once per account that has no MAX_USER_CONNECTIONS of its own; 0: none.
    #[serde(rename = "MaxUserConnections", default)]
    pub max_user_connections: u64,
    /// Prepared statements open at once on this SQL node (MySQL's max_prepared_stmt_count).
    #[serde(rename = "MaxPreparedStmtCount", default = "default_max_prepared_stmt_count")]
    pub max_prepared_stmt_count: u64,
    /// Memory one statement's text may take to tokenize and parse (MySQL's
    /// parser_max_mem_size): huge IN and VALUES lists beyond it are refused with 3170.
    #[serde(rename = "ParserMaxMemSize", default = "default_parser_max_mem_size")]
    pub parser_max_mem_size: Bytes,
    /// Memory one operator of a statement that must see all its rows (sort, GROUP BY,
    /// DISTINCT, hash join build side, subquery result) may hold on this SQL node; beyond it
    /// the statement fails with 3170.
    #[serde(rename = "MaxStatementMemory", default = "default_max_statement_memory")]
    pub max_statement_memory: Bytes,
    /// The RSA key pair for caching_sha2_password's full authentication without TLS (MySQL's
    /// caching_sha2_password_private_key_path / _public_key_path): PEM files on the SQL node's
    /// host. The public key file is optional (derived from the private key when absent).
    #[serde(rename = "CachingSha2PasswordPrivateKeyPath", default)]
    pub caching_sha2_private_key_path: Option<String>,
    #[serde(rename = "CachingSha2PasswordPublicKeyPath", default)]
    pub caching_sha2_public_key_path: Option<String>,
    /// Without key files, generate a 2048-bit key pair at start (MySQL's
    /// caching_sha2_password_auto_generate_rsa_keys); false: full authentication needs TLS.
    #[serde(rename = "CachingSha2PasswordAutoGenerateRsaKeys", default = "default_true")]
    pub caching_sha2_auto_generate_rsa_keys: bool,
    /// MySQL's fast-authentication cache: the fast path succeeds only for accounts that
    /// completed a full authentication (TLS or RSA) on this SQL node since it started, with
    /// the password they have now. False (the default): the fast path works from the catalog's
    /// verifier for every account (docs/security.md).
    #[serde(rename = "CachingSha2PasswordFastAuthCache", default)]
    pub caching_sha2_fast_auth_cache: bool,
}

/// The config file as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub cluster: ClusterSection,
    #[serde(alias = "mgmd", default)]
    pub ndb_mgmd: Vec<MgmdSection>,
    #[serde(alias = "datad", default)]
    pub ndbd: Vec<DatadSection>,
    #[serde(alias = "sqld", alias = "api", default)]
    pub mysqld: Vec<SqldSection>,
}

/// A data node with its node group resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct DataNode {
    pub id: NodeId,
    pub host: String,
    pub port: u16,
    pub data_dir: Option<String>,
    pub node_group: NodeGroupId,
    pub data_memory: u64,
    pub backup_data_dir: Option<String>,
}

impl DataNode {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The validated config every node works from.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// The file's text, handed to nodes as-is so they validate it the same way.
    pub text: String,
    pub cluster: ClusterSection,
    pub mgmds: Vec<MgmdSection>,
    pub data_nodes: Vec<DataNode>,
    pub sql_nodes: Vec<SqldSection>,
}

pub const MAX_NODE_ID: u32 = 255;
pub const MAX_REPLICAS: u32 = 4;

impl ClusterConfig {
    pub fn parse(text: &str) -> Result<ClusterConfig, ConfigError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError(e.to_string().trim_end().to_string()))?;
        ClusterConfig::validate(file, text.to_string())
    }

    fn validate(file: ConfigFile, text: String) -> Result<ClusterConfig, ConfigError> {
        let c = &file.cluster;
        if c.secret.trim().len() < 8 {
            return fail("[cluster] Secret must be at least 8 characters (every node proves it knows it)");
        }
        if !(1..=MAX_REPLICAS).contains(&c.no_of_replicas) {
            return fail(format!("[cluster] NoOfReplicas = {} must be between 1 and {MAX_REPLICAS}", c.no_of_replicas));
        }
        if c.data_memory.0 < 16 << 20 {
            return fail(format!("[cluster] DataMemory = {} is below the minimum of 16M", c.data_memory));
        }
        for (name, value, min) in [
            ("TimeBetweenGlobalCheckpoints", c.time_between_global_checkpoints_ms, 10),
            ("HeartbeatIntervalDbDb", c.heartbeat_interval_db_db_ms, 10),
            ("HeartbeatIntervalDbApi", c.heartbeat_interval_db_api_ms, 10),
            ("ArbitrationTimeout", c.arbitration_timeout_ms, 10),
            ("TransactionDeadlockDetectionTimeout", c.transaction_deadlock_detection_timeout_ms, 50),
        ] {
            if value < min {
                return fail(format!("[cluster] {name} = {value} ms is below the minimum of {min} ms"));
            }
        }
        if c.max_dml_operations_per_transaction == 0 {
            return fail("[cluster] MaxDMLOperationsPerTransaction must be at least 1");
        }
        if c.max_transaction_bytes.0 < 1 << 20 {
            return fail(format!("[cluster] MaxTransactionBytes = {} is below the minimum of 1M (one row may take 1M)", c.max_transaction_bytes));
        }
        if c.min_disk_write_speed.0 < 1 << 20 {
            return fail(format!("[cluster] MinDiskWriteSpeed = {} is below the minimum of 1M (bytes per second)", c.min_disk_write_speed));
        }
        if c.max_disk_write_speed.0 < c.min_disk_write_speed.0 {
            return fail(format!(
                "[cluster] MaxDiskWriteSpeed = {} is below MinDiskWriteSpeed = {}",
                c.max_disk_write_speed, c.min_disk_write_speed
            ));
        }
        if c.time_between_local_checkpoints > 31 {
            return fail(format!(
                "[cluster] TimeBetweenLocalCheckpoints = {} must be between 0 and 31 (a checkpoint starts after 4 x 2^n bytes of log)",
                c.time_between_local_checkpoints
            ));
        }
        if c.max_time_between_local_checkpoints_ms != 0 && c.max_time_between_local_checkpoints_ms < 100 {
            return fail(format!(
                "[cluster] MaxTimeBetweenLocalCheckpoints = {} ms is below the minimum of 100 ms (0 turns the time trigger off)",
                c.max_time_between_local_checkpoints_ms
            ));
        }
        if !(1 << 20..=1 << 30).contains(&c.fragment_log_file_size.0) {
            return fail(format!("[cluster] FragmentLogFileSize = {} must be between 1M and 1G", c.fragment_log_file_size));
        }
        if c.root_password.is_none() && !c.allow_passwordless_root {
            return fail(
                "[cluster] set RootPassword = \"...\" (or AllowPasswordlessRoot = true for a private test cluster): \
                 a cluster must not start with an account nobody chose",
            );
        }
        if c.node_ssl_dir.as_deref().is_some_and(|d| d.trim().is_empty()) {
            return fail("[cluster] NodeSslDir is empty (leave it out for plain links)");
        }
        if let Some(admin) = &c.admin_password {
            if admin.trim().len() < 8 {
                return fail("[cluster] AdminPassword must be at least 8 characters");
            }
            if *admin == c.secret {
                return fail("[cluster] AdminPassword must differ from Secret (every node knows the Secret)");
            }
        }
        if file.ndb_mgmd.is_empty() {
            return fail("at least one [[ndb_mgmd]] section is needed");
        }
        if file.ndbd.is_empty() {
            return fail("at least one [[ndbd]] (data node) section is needed");
        }
        let mut ids = HashSet::new();
        let mut endpoints = HashSet::new();
        let mut check_node = |section: &str, id: u32| -> Result<(), ConfigError> {
            if id == 0 || id > MAX_NODE_ID {
                return fail(format!("[[{section}]] NodeId = {id} must be between 1 and {MAX_NODE_ID}"));
            }
            if !ids.insert(id) {
                return fail(format!("[[{section}]] NodeId = {id} is used by another node"));
            }
            Ok(())
        };
        for m in &file.ndb_mgmd {
            check_node("ndb_mgmd", m.node_id)?;
        }
        for d in &file.ndbd {
            check_node("ndbd", d.node_id)?;
        }
        for s in &file.mysqld {
            check_node("mysqld", s.node_id)?;
        }
        let mut check_port = |section: &str, id: u32, host: &str, port: u16| -> Result<(), ConfigError> {
            if port == 0 {
                return fail(format!("[[{section}]] NodeId = {id}: port 0 is not a port"));
            }
            if !endpoints.insert((host.to_string(), port)) {
                return fail(format!("[[{section}]] NodeId = {id}: {host}:{port} is used by another node"));
            }
            Ok(())
        };
        for m in &file.ndb_mgmd {
            check_port("ndb_mgmd", m.node_id, &m.host_name, m.port)?;
        }
        for d in &file.ndbd {
            check_port("ndbd", d.node_id, &d.host_name, d.port)?;
        }
        for s in &file.mysqld {
            if s.ssl_cert.is_some() != s.ssl_key.is_some() {
                return fail(format!("mysqld {}: SslCert and SslKey go together", s.node_id));
            }
            if s.caching_sha2_public_key_path.is_some() && s.caching_sha2_private_key_path.is_none() {
                return fail(format!(
                    "mysqld {}: CachingSha2PasswordPublicKeyPath needs CachingSha2PasswordPrivateKeyPath",
                    s.node_id
                ));
            }
            if s.ssl_cert.is_none() && (s.ssl_ca.is_some() || s.require_secure_transport) {
                return fail(format!(
                    "mysqld {}: SslCa and RequireSecureTransport need SslCert and SslKey",
                    s.node_id
                ));
            }
        }
        for s in &file.mysqld {
            check_port("mysqld", s.node_id, s.host_name.as_deref().unwrap_or("*"), s.port)?;
        }
        let replicas = c.no_of_replicas as usize;
        if file.ndbd.len() % replicas != 0 {
            return fail(format!(
                "{} data nodes cannot form node groups of NoOfReplicas = {} (the count must be a multiple)",
                file.ndbd.len(),
                replicas
            ));
        }
        let explicit = file.ndbd.iter().filter(|d| d.node_group.is_some()).count();
        if explicit != 0 && explicit != file.ndbd.len() {
            return fail("either every [[ndbd]] names its NodeGroup or none does");
        }
        let mut data_nodes = Vec::with_capacity(file.ndbd.len());
        let mut group_sizes: BTreeMap<u32, usize> = BTreeMap::new();
        for (i, d) in file.ndbd.iter().enumerate() {
            let group = d.node_group.unwrap_or((i / replicas) as u32);
            *group_sizes.entry(group).or_default() += 1;
            data_nodes.push(DataNode {
                id: NodeId(d.node_id),
                host: d.host_name.clone(),
                port: d.port,
                data_dir: d.data_dir.clone(),
                node_group: NodeGroupId(group),
                data_memory: d.data_memory.unwrap_or(c.data_memory).0,
                backup_data_dir: d.backup_data_dir.clone(),
            });
        }
        for (group, size) in &group_sizes {
            if *size != replicas {
                return fail(format!("node group {group} has {size} data nodes; NoOfReplicas = {replicas} needs exactly that many"));
            }
        }
        Ok(ClusterConfig { text, cluster: file.cluster, mgmds: file.ndb_mgmd, data_nodes, sql_nodes: file.mysqld })
    }

    pub fn node_groups(&self) -> Vec<NodeGroupId> {
        let mut groups: Vec<NodeGroupId> = self.data_nodes.iter().map(|d| d.node_group).collect();
        groups.sort();
        groups.dedup();
        groups
    }

    pub fn data_node(&self, id: NodeId) -> Option<&DataNode> {
        self.data_nodes.iter().find(|d| d.id == id)
    }

    pub fn members_of(&self, group: NodeGroupId) -> Vec<&DataNode> {
        self.data_nodes.iter().filter(|d| d.node_group == group).collect()
    }

    pub fn mgmd(&self, id: NodeId) -> Option<&MgmdSection> {
        self.mgmds.iter().find(|m| m.node_id == id.0)
    }

    pub fn sql_node(&self, id: NodeId) -> Option<&SqldSection> {
        self.sql_nodes.iter().find(|s| s.node_id == id.0)
    }

    pub fn mgmd_addresses(&self) -> Vec<String> {
        self.mgmds.iter().map(|m| format!("{}:{}", m.host_name, m.port)).collect()
    }

    /// What kind of node an id is, if configured.
    pub fn role_of(&self, id: NodeId) -> Option<NodeKind> {
        if self.mgmd(id).is_some() {
            Some(NodeKind::Mgmd)
        } else if self.data_node(id).is_some() {
            Some(NodeKind::Datad)
        } else if self.sql_node(id).is_some() {
            Some(NodeKind::Sqld)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Mgmd,
    Datad,
    Sqld,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        [cluster]
        Secret = "0123456789abcdef"
        NoOfReplicas = 2
        DataMemory = "256M"
        AllowPasswordlessRoot = true

        [[ndb_mgmd]]
        NodeId = 49
        PortNumber = 1186

        [[ndbd]]
        NodeId = 1
        ServerPort = 11861
        [[ndbd]]
        NodeId = 2
        ServerPort = 11862
        [[ndbd]]
        NodeId = 3
        ServerPort = 11863
        [[ndbd]]
        NodeId = 4
        ServerPort = 11864

        [[mysqld]]
        NodeId = 50
    "#;

    #[test]
    fn tls_keys_of_an_sql_node_go_together() {
        let with = |lines: &str| ClusterConfig::parse(&format!("{GOOD}\n{lines}\n"));
        let c = with("SslCert = \"/t/n.pem\"\nSslKey = \"/t/k.pem\"\nSslCa = \"/t/ca.pem\"\nRequireSecureTransport = true").unwrap();
        let sql = c.sql_node(NodeId(50)).unwrap();
        assert_eq!((sql.ssl_cert.as_deref(), sql.ssl_ca.as_deref()), (Some("/t/n.pem"), Some("/t/ca.pem")));
        assert!(sql.require_secure_transport);
        assert!(with("SslCert = \"/t/n.pem\"").unwrap_err().0.contains("go together"));
        assert!(with("RequireSecureTransport = true").unwrap_err().0.contains("need SslCert"));
        assert!(!ClusterConfig::parse(GOOD).unwrap().sql_node(NodeId(50)).unwrap().require_secure_transport);
        let c = with("CachingSha2PasswordPrivateKeyPath = \"/k/private_key.pem\"\nCachingSha2PasswordFastAuthCache = true").unwrap();
        let sql = c.sql_node(NodeId(50)).unwrap();
        assert_eq!(sql.caching_sha2_private_key_path.as_deref(), Some("/k/private_key.pem"));
        assert!(sql.caching_sha2_auto_generate_rsa_keys && sql.caching_sha2_fast_auth_cache);
        let defaults = ClusterConfig::parse(GOOD).unwrap();
        let sql = defaults.sql_node(NodeId(50)).unwrap();
        assert!(sql.caching_sha2_auto_generate_rsa_keys && !sql.caching_sha2_fast_auth_cache);
        assert!(with("CachingSha2PasswordPublicKeyPath = \"/k/public_key.pem\"").unwrap_err().0.contains("needs CachingSha2PasswordPrivateKeyPath"));
    }

    #[test]
    fn parses_and_forms_node_groups_in_order() {
        let c = ClusterConfig::parse(GOOD).unwrap();
        assert_eq!(c.cluster.data_memory, Bytes(256 << 20));
        assert_eq!(c.cluster.heartbeat_interval_db_db_ms, 5000, "NDB's default");
        assert_eq!(c.node_groups(), vec![NodeGroupId(0), NodeGroupId(1)]);
        assert_eq!(c.members_of(NodeGroupId(1)).iter().map(|d| d.id.0).collect::<Vec<_>>(), vec![3, 4]);
        assert_eq!(c.role_of(NodeId(50)), Some(NodeKind::Sqld));
        assert_eq!(c.sql_nodes[0].port, 3306);
    }

    fn error_of(text: &str) -> String {
        ClusterConfig::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn clear_messages_for_bad_configs() {
        let e = error_of(&GOOD.replace("NoOfReplicas = 2", "NoOfReplicas = 3"));
        assert!(e.contains("4 data nodes cannot form node groups of NoOfReplicas = 3"), "{e}");
        let e = error_of(&GOOD.replace("NodeId = 2", "NodeId = 1"));
        assert!(e.contains("NodeId = 1 is used by another node"), "{e}");
        let e = error_of(&GOOD.replace("ServerPort = 11862", "ServerPort = 11861"));
        assert!(e.contains("127.0.0.1:11861 is used by another node"), "{e}");
        let e = error_of(&GOOD.replace("\"256M\"", "\"lots\""));
        assert!(e.contains("'lots' is not a size"), "{e}");
        let e = error_of(&GOOD.replace("AllowPasswordlessRoot = true", ""));
        assert!(e.contains("RootPassword"), "{e}");
        let e = error_of(&GOOD.replace("NoOfReplicas = 2", "NoOfReplicas = 2\nNoOfReplica = 2"));
        assert!(e.contains("unknown field"), "{e}");
        let e = error_of("this is not toml [");
        assert!(e.starts_with("config: "), "{e}");
    }

    #[test]
    fn durability_parameters_have_ndb_defaults_and_are_checked() {
        let c = ClusterConfig::parse(GOOD).unwrap();
        assert_eq!(c.cluster.disk_sync, DiskSync::Commit);
        assert_eq!(c.cluster.time_between_global_checkpoints_ms, 2000);
        assert_eq!(c.cluster.min_disk_write_speed, Bytes(10 << 20));
        assert_eq!(c.cluster.max_disk_write_speed, Bytes(20 << 20));
        assert_eq!(c.cluster.local_checkpoint_log_bytes(), 4 << 20, "TimeBetweenLocalCheckpoints = 20 is 4 MiB");
        assert_eq!(c.cluster.fragment_log_file_size, Bytes(16 << 20));
        let with = |line: &str| GOOD.replace("NoOfReplicas = 2", &format!("NoOfReplicas = 2\n{line}"));
        let c = ClusterConfig::parse(&with("DiskSync = \"Interval\"")).unwrap();
        assert_eq!(c.cluster.disk_sync, DiskSync::Interval);
        let e = error_of(&with("MinDiskWriteSpeed = \"30M\""));
        assert!(e.contains("MaxDiskWriteSpeed = 20M is below MinDiskWriteSpeed = 30M"), "{e}");
        let e = error_of(&with("MinDiskWriteSpeed = 1000"));
        assert!(e.contains("below the minimum of 1M"), "{e}");
        let e = error_of(&with("TimeBetweenLocalCheckpoints = 32"));
        assert!(e.contains("between 0 and 31"), "{e}");
        let e = error_of(&with("MaxTimeBetweenLocalCheckpoints = 5"));
        assert!(e.contains("below the minimum of 100 ms"), "{e}");
        let e = error_of(&with("FragmentLogFileSize = \"100K\""));
        assert!(e.contains("between 1M and 1G"), "{e}");
        let e = error_of(&with("DiskSync = \"Sometimes\""));
        assert!(e.contains("Sometimes"), "{e}");
    }

    #[test]
    fn statement_and_transaction_limits_have_defaults_and_are_checked() {
        let c = ClusterConfig::parse(GOOD).unwrap();
        assert_eq!((c.cluster.max_dml_operations_per_transaction, c.cluster.max_transaction_bytes), (100_000, Bytes(64 << 20)));
        let sql = c.sql_node(NodeId(50)).unwrap();
        assert_eq!((sql.parser_max_mem_size, sql.max_statement_memory), (Bytes(1 << 30), Bytes(1 << 30)));
        let with = |line: &str| GOOD.replace("NoOfReplicas = 2", &format!("NoOfReplicas = 2\n{line}"));
        let c = ClusterConfig::parse(&with("MaxDMLOperationsPerTransaction = 50\nMaxTransactionBytes = \"8M\"")).unwrap();
        assert_eq!((c.cluster.max_dml_operations_per_transaction, c.cluster.max_transaction_bytes), (50, Bytes(8 << 20)));
        assert!(error_of(&with("MaxDMLOperationsPerTransaction = 0")).contains("at least 1"));
        assert!(error_of(&with("MaxTransactionBytes = \"64K\"")).contains("below the minimum of 1M"));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("1024"), Some(1024));
        assert_eq!(parse_size("1.5G"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }
}
