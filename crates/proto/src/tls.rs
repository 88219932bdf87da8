//! Mutual TLS on links between nodes, with the cluster CA.
//!
//! # Concept
//!
//! A node with a [`LinkTls`] in its [`crate::Identity`] wraps every link it opens or accepts in
//! TLS before the cluster-secret handshake runs, so the handshake, and every frame after it,
//! travels encrypted. Both ends present a certificate and both verify the other's against the
//! cluster CA (`ca.pem` of `cairn certs`): the accepting side with rustls's
//! `WebPkiClientVerifier` (a client certificate is mandatory), the connecting side as any TLS
//! client does, checking that the server's certificate names the host it dialled (the node's
//! `HostName`, which `cairn certs` puts in every node certificate).
//!
//! # Guarantees
//!
//! - A peer without a certificate, or with one from another CA, fails the TLS handshake and
//!   never reaches the secret handshake, let alone a frame decoder.
//! - One TLS handshake per link; requests then only pay for symmetric encryption (no extra
//!   round trip per request). Links live as long as the nodes keep them.
//! - Only rustls with the ring provider (DEPENDENCIES.md §6), TLS 1.2 and 1.3.
//! - A node with TLS speaks only TLS: its listener does not fall back to plaintext, so a
//!   mixed cluster fails loudly instead of quietly carrying some links in clear.
//!
//! # Node identity in the certificate
//!
//! `cairn certs` writes into each node certificate, besides its host names, the DNS name
//! [`node_certificate_name`]: `<role>-<id>.node.cairn.invalid` (`datad-3.node.cairn.invalid`
//! for data node 3; roles `mgmd`, `datad`, `sqld`). The `.invalid` top-level domain is reserved
//! (RFC 6761) and never resolves, so the name cannot collide with a real host. The accepting
//! side of every link checks, after the secret handshake, that the node id and role the peer
//! claimed are the ones its certificate names ([`check_peer_certificate`], with rustls's own
//! name matching, so no certificate parser of ours is involved); a mismatch is refused and
//! audit-logged. A node loaded with [`LinkTls::load_node`] also refuses to start (or to reload)
//! with a certificate that does not name it. Admin clients (`cairn mgm`, role Admin) may present
//! any certificate of the CA: what they may do is decided by the admin credential.
//!
//! # Reloading
//!
//! [`LinkTls::reload`] reads the files again and swaps the configs in one step; every clone of
//! the `LinkTls` (each [`crate::Identity`] holding it) sees the new certificate for the links it
//! opens or accepts afterwards, and links already up keep their TLS session. A reload that fails
//! (a file missing or half-copied, a key that does not match, a certificate for another node)
//! changes nothing. [`LinkTls::reload_on_sighup`] does it on every SIGHUP, as the MySQL port
//! does (`crates/sqld/src/tls.rs`).
//!
//! # Left out
//!
//! - Certificate revocation: a stolen node key and the secret make that node until the CA is
//!   replaced.
//! - The connecting side checks the host name of the node it dialled, not its node id.
//! - Sharing the PEM loading with `cairn_wire::tls` (neither crate depends on the other).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

use crate::pb::Role;

/// The three files a node needs for mutual TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA every peer's certificate must chain to.
    pub ca: PathBuf,
    /// This node's certificate chain (PEM, leaf first).
    pub cert: PathBuf,
    /// This node's private key (PEM).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The files `cairn certs --out DIR` writes for node `node_id`.
    pub fn for_node(dir: &Path, node_id: u32) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("node-{node_id}.pem")),
            key: dir.join(format!("node-{node_id}-key.pem")),
        }
    }

    /// The files `cairn certs --client NAME --out DIR` writes for a client (an admin client).
    pub fn for_client(dir: &Path, name: &str) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("client-{name}.pem")),
            key: dir.join(format!("client-{name}-key.pem")),
        }
    }
}

/// Why TLS for links could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: io::Error },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("peer certificate verifier: {0}")]
    Verifier(String),
    #[error("{path} is not a certificate of {role:?} node {node_id} ({reason}); issue one with `cairn certs`")]
    NotForNode { path: String, node_id: u32, role: Role, reason: String },
}

/// The DNS name a node certificate carries for node `node_id` in `role`:
/// `<role>-<id>.node.cairn.invalid`. None for roles that are not nodes (admin clients).
pub fn node_certificate_name(node_id: u32, role: Role) -> Option<String> {
    let role = match role {
        Role::Mgmd => "mgmd",
        Role::Datad => "datad",
        Role::Sqld => "sqld",
        Role::Admin | Role::Unspecified => return None,
    };
    Some(format!("{role}-{node_id}.node.cairn.invalid"))
}

/// Checks that `certificate` (a peer's leaf, already verified against the cluster CA) names
/// node `node_id` in `role`; the error says why not, for the refusal and the audit trail.
pub fn check_peer_certificate(certificate: &CertificateDer<'_>, node_id: u32, role: Role) -> Result<(), String> {
    let name = node_certificate_name(node_id, role).ok_or_else(|| format!("{role:?} is not a node role"))?;
    let server_name = ServerName::try_from(name.as_str()).map_err(|e| format!("{name}: {e}"))?;
    let parsed = ParsedCertificate::try_from(certificate).map_err(|e| format!("unreadable certificate: {e}"))?;
    rustls::client::verify_server_name(&parsed, &server_name)
        .map_err(|_| format!("its certificate is not issued for {role:?} node {node_id} (no name {name})"))
}

/// Both halves of a node's mutual TLS: the config it accepts links with and the one it opens
/// them with, and the files they came from. Cheap to clone; clones share one current
/// certificate, so a [`LinkTls::reload`] through any of them reaches all.
#[derive(Clone)]
pub struct LinkTls {
    shared: Arc<Shared>,
}

struct Shared {
    files: TlsFiles,
    /// The node this certificate must name (None: an admin client, any certificate of the CA).
    node: Option<(u32, Role)>,
    current: RwLock<Arc<Configs>>,
}

/// One loaded generation of the files.
struct Configs {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// This node's own certificate (the leaf), for logs and tests.
    certificate: CertificateDer<'static>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkTls").field("files", &self.shared.files).field("node", &self.shared.node).finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsSetupError> {
    std::fs::read(path).map_err(|error| TlsSetupError::Read { path: path.display().to_string(), error })
}

fn pem_error(path: &Path, what: impl ToString) -> TlsSetupError {
    TlsSetupError::Pem { path: path.display().to_string(), what: what.to_string() }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let certificates = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certificates.is_empty() {
        return Err(pem_error(path, "no CERTIFICATE block"));
    }
    Ok(certificates)
}

/// Reads the files and builds both configs; with `node`, the certificate must name that node.
fn build(files: &TlsFiles, node: Option<(u32, Role)>) -> Result<Configs, TlsSetupError> {
    let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for certificate in certificates(&files.ca)? {
        roots.add(certificate).map_err(|e| pem_error(&files.ca, e))?;
    }
    let roots = Arc::new(roots);
    let chain = certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| pem_error(&files.key, e))?;
    // `certificates` never returns an empty chain.
    let certificate = chain[0].clone();
    if let Some((node_id, role)) = node {
        check_peer_certificate(&certificate, node_id, role).map_err(|reason| TlsSetupError::NotForNode {
            path: files.cert.display().to_string(),
            node_id,
            role,
            reason,
        })?;
    }

    let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
    // with_single_cert and with_client_auth_cert check that the key matches the certificate.
    let server = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.clone(), key.clone_key())?;
    let client = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    Ok(Configs { server: Arc::new(server), client: Arc::new(client), certificate })
}

impl LinkTls {
    /// Loads the CA, a certificate and its key, for an admin client (any certificate of the
    /// CA). A missing or malformed file, or a key that does not match the certificate, is an
    /// error naming the file, so a broken TLS setup stops the program (rather than run without
    /// TLS).
    pub fn load(files: &TlsFiles) -> Result<LinkTls, TlsSetupError> {
        LinkTls::new(files, None)
    }

    /// [`LinkTls::load`] for node `node_id` in `role`: the certificate must also name that node
    /// ([`node_certificate_name`]), now and at every reload, because its peers will check it.
    pub fn load_node(files: &TlsFiles, node_id: u32, role: Role) -> Result<LinkTls, TlsSetupError> {
        LinkTls::new(files, Some((node_id, role)))
    }

    fn new(files: &TlsFiles, node: Option<(u32, Role)>) -> Result<LinkTls, TlsSetupError> {
        let configs = build(files, node)?;
        Ok(LinkTls { shared: Arc::new(Shared { files: files.clone(), node, current: RwLock::new(Arc::new(configs)) }) })
    }

    fn current(&self) -> Arc<Configs> {
        // A poisoned lock only means a panic elsewhere while swapping an Arc; the Arc inside is
        // whole either way.
        self.shared.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The files this TLS setup was loaded from.
    pub fn files(&self) -> &TlsFiles {
        &self.shared.files
    }

    /// This side's certificate (the leaf) as currently loaded: what the next link presents.
    pub fn certificate(&self) -> CertificateDer<'static> {
        self.current().certificate.clone()
    }

    /// Reads the files again; on success links opened or accepted from now on use them, and on
    /// failure nothing changes. Links already up keep their session either way.
    pub fn reload(&self) -> Result<(), TlsSetupError> {
        let configs = build(&self.shared.files, self.shared.node)?;
        *self.shared.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(configs);
        Ok(())
    }

    /// Reloads on every SIGHUP until the process ends, logging each outcome. `what` names the
    /// node in the log (`data node 3`). Must be called inside a tokio runtime.
    pub fn reload_on_sighup(&self, what: String) -> io::Result<()> {
        let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        let tls = self.clone();
        tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                match tls.reload() {
                    Ok(()) => tracing::info!(node = %what, cert = %tls.shared.files.cert.display(), "SIGHUP: node certificate reloaded"),
                    Err(e) => tracing::warn!(node = %what, error = %e, "SIGHUP: node certificate reload failed; keeping the previous one"),
                }
            }
        });
        Ok(())
    }

    /// Runs the accepting side of the TLS handshake (the peer must present a certificate of the
    /// cluster CA).
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        tokio_rustls::TlsAcceptor::from(self.current().server.clone()).accept(stream).await
    }

    /// Runs the connecting side of the TLS handshake; the server's certificate must be of the
    /// cluster CA and name the host of `address` (`host:port`, `[v6]:port` or an IP address).
    pub(crate) async fn connect(
        &self,
        address: &str,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = server_name(address)?;
        tokio_rustls::TlsConnector::from(self.current().client.clone()).connect(name, stream).await
    }
}

/// The name the server's certificate must carry: the host part of the address dialled.
fn server_name(address: &str) -> io::Result<ServerName<'static>> {
    let host = match address.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => address,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host} is not a host name for TLS: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_is_the_host_of_the_address() {
        assert_eq!(server_name("127.0.0.1:1186").unwrap().to_str(), "127.0.0.1");
        assert_eq!(server_name("db1.example.org:11860").unwrap().to_str(), "db1.example.org");
        assert_eq!(server_name("[::1]:1186").unwrap().to_str(), "::1");
        assert_eq!(server_name("localhost").unwrap().to_str(), "localhost");
        assert!(server_name("bad host:1").is_err());
    }

    #[test]
    fn missing_files_are_named() {
        let files = TlsFiles::for_node(Path::new("/nonexistent-cairn-tls"), 3);
        let error = LinkTls::load(&files).unwrap_err().to_string();
        assert!(error.contains("/nonexistent-cairn-tls/ca.pem"), "{error}");
    }
}
