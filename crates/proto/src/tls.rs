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
//! # Left out
//!
//! - Binding a certificate to a node id: any certificate of the cluster CA is accepted, and
//!   the node id is proven by the cluster secret inside the TLS stream. Whoever holds one node's
//!   key and the secret can therefore claim another node id (a compromised node is inside the
//!   cluster either way).
//! - Reloading node certificates without a restart (the MySQL port reloads on SIGHUP) and
//!   certificate revocation.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;

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
}

/// Both halves of a node's mutual TLS: the config it accepts links with and the one it opens
/// them with. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LinkTls {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
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

impl LinkTls {
    /// Loads the CA, the node's certificate and its key. A missing or malformed file, or a key
    /// that does not match the certificate, is an error naming the file, so a node with a
    /// broken TLS setup does not start (rather than start without TLS).
    pub fn load(files: &TlsFiles) -> Result<LinkTls, TlsSetupError> {
        let provider: Arc<CryptoProvider> = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for certificate in certificates(&files.ca)? {
            roots.add(certificate).map_err(|e| pem_error(&files.ca, e))?;
        }
        let roots = Arc::new(roots);
        let chain = certificates(&files.cert)?;
        let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?).map_err(|e| pem_error(&files.key, e))?;

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
        Ok(LinkTls { server: Arc::new(server), client: Arc::new(client) })
    }

    /// Runs the accepting side of the TLS handshake (the peer must present a certificate of the
    /// cluster CA).
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
        tokio_rustls::TlsAcceptor::from(self.server.clone()).accept(stream).await
    }

    /// Runs the connecting side of the TLS handshake; the server's certificate must be of the
    /// cluster CA and name the host of `address` (`host:port`, `[v6]:port` or an IP address).
    pub(crate) async fn connect(
        &self,
        address: &str,
        stream: TcpStream,
    ) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let name = server_name(address)?;
        tokio_rustls::TlsConnector::from(self.client.clone()).connect(name, stream).await
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
