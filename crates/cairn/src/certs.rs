//! `cairn certs`: a cluster CA and one certificate per node of a config (docs/security.md).
//!
//! Writes into `--out`:
//!
//! - `ca.pem`, `ca-key.pem`: the cluster CA. An existing `ca-key.pem` is kept and signs the new
//!   certificates, so running the command again after adding a node leaves every certificate
//!   already deployed valid.
//! - `node-<id>.pem`, `node-<id>-key.pem` for every management, data and SQL node: names are the
//!   node's HostName, `localhost` and `127.0.0.1`, plus the node's identity
//!   `<role>-<id>.node.cairn.invalid` (`cairn_proto::node_certificate_name`), which the other
//!   nodes check against the node id it claims; the common name is `cairn <role> <id>` for
//!   people. Usable both as a server and as a client certificate, for the MySQL port and for
//!   mutual TLS between nodes.
//! - `client-<name>.pem`, `client-<name>-key.pem` for each `--client NAME`: a certificate for
//!   an account with `REQUIRE X509`.
//!
//! Private keys are written with mode 0600. Certificates use rcgen's defaults for validity
//! (no expiry in practice): rotate by replacing the files and sending SIGHUP to the node
//! (every role reloads its node certificate; an SQL node also its MySQL port's).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cairn_control::config::ClusterConfig;
use cairn_proto::{Role, node_certificate_name};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
};

#[derive(clap::Args, Debug, Clone)]
pub struct CertsArgs {
    /// The cluster config whose nodes get certificates.
    #[arg(long)]
    pub config: PathBuf,
    /// The directory the CA, certificates and keys are written to (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Also issue a client certificate with this common name (repeatable).
    #[arg(long = "client")]
    pub clients: Vec<String>,
}

pub fn node_certificate(out: &Path, node_id: u32) -> (PathBuf, PathBuf) {
    (out.join(format!("node-{node_id}.pem")), out.join(format!("node-{node_id}-key.pem")))
}

pub fn ca_certificate(out: &Path) -> PathBuf {
    out.join("ca.pem")
}

fn write_file(path: &Path, contents: &str, private: bool) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if private {
        options.mode(0o600);
    }
    let mut file = options.open(path).with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes()).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The CA: the key in `ca-key.pem` if there is one, else a new key; `ca.pem` is written only
/// when it is missing.
fn cluster_ca(out: &Path, cluster_name: &str) -> anyhow::Result<CertifiedIssuer<'static, KeyPair>> {
    let key_path = out.join("ca-key.pem");
    let (key, new_key) = match std::fs::read_to_string(&key_path) {
        Ok(pem) => (KeyPair::from_pem(&pem).with_context(|| format!("{} is not a private key", key_path.display()))?, false),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (KeyPair::generate()?, true),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", key_path.display())),
    };
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name.push(DnType::CommonName, format!("Cairn cluster CA ({cluster_name})"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    // The same name and key make a certificate that verifies exactly what the one already
    // deployed verifies, so an existing ca.pem stays as it is.
    let ca = CertifiedIssuer::self_signed(params, key)?;
    if new_key {
        write_file(&key_path, &ca.key().serialize_pem(), true)?;
    }
    if new_key || !ca_certificate(out).exists() {
        write_file(&ca_certificate(out), &ca.pem(), false)?;
    }
    Ok(ca)
}

fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: Vec<String>,
    cert_path: &Path,
    key_path: &Path,
) -> anyhow::Result<()> {
    let mut params = CertificateParams::new(names)?;
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, &**ca)?;
    write_file(key_path, &key.serialize_pem(), true)?;
    write_file(cert_path, &certificate.pem(), false)?;
    Ok(())
}

/// Creates the CA (or reuses its key) and a certificate per node and per client; returns the
/// files written.
pub fn generate(config: &ClusterConfig, out: &Path, clients: &[String]) -> anyhow::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let ca = cluster_ca(out, &config.cluster.name)?;
    let mut written = vec![ca_certificate(out), out.join("ca-key.pem")];
    let mut nodes: Vec<(u32, Role, Option<String>)> = Vec::new();
    nodes.extend(config.mgmds.iter().map(|m| (m.node_id, Role::Mgmd, Some(m.host_name.clone()))));
    nodes.extend(config.data_nodes.iter().map(|d| (d.id.0, Role::Datad, Some(d.host.clone()))));
    nodes.extend(config.sql_nodes.iter().map(|s| (s.node_id, Role::Sqld, s.host_name.clone())));
    for (node_id, role, host) in nodes {
        let mut names: Vec<String> = host.into_iter().filter(|h| !h.is_empty() && h != "0.0.0.0").collect();
        for local in ["localhost", "127.0.0.1"] {
            if !names.iter().any(|n| n == local) {
                names.push(local.to_string());
            }
        }
        let identity = node_certificate_name(node_id, role)
            .with_context(|| format!("node {node_id}: {role:?} has no certificate name"))?;
        let common_name = identity.split('.').next().unwrap_or(&identity).replace('-', " ");
        names.push(identity);
        let (cert, key) = node_certificate(out, node_id);
        issue(&ca, &format!("cairn {common_name}"), names, &cert, &key)?;
        written.extend([cert, key]);
    }
    for name in clients {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            anyhow::bail!("client name {name:?}: use letters, digits, '-', '_' and '.'");
        }
        let cert = out.join(format!("client-{name}.pem"));
        let key = out.join(format!("client-{name}-key.pem"));
        issue(&ca, name, Vec::new(), &cert, &key)?;
        written.extend([cert, key]);
    }
    Ok(written)
}

pub fn run(args: CertsArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config).with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = ClusterConfig::parse(&text).with_context(|| format!("{} is not a valid config", args.config.display()))?;
    let written = generate(&config, &args.out, &args.clients)?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    let out = std::fs::canonicalize(&args.out).unwrap_or(args.out.clone());
    println!("\nTo offer TLS on an SQL node's MySQL port, add to its [[mysqld]] section:");
    if let Some(sql) = config.sql_nodes.first() {
        let (cert, key) = node_certificate(&out, sql.node_id);
        println!("  SslCert = \"{}\"\n  SslKey = \"{}\"\n  SslCa = \"{}\"", cert.display(), key.display(), ca_certificate(&out).display());
    }
    println!("Clients verify the server with the CA: mysql --ssl-ca={}", ca_certificate(&out).display());
    Ok(())
}
