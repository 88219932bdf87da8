//! TLS on the MySQL port: the upgrade after an SSLRequest, and what the handler learns of it.
//!
//! # Concept
//!
//! MySQL does not start TLS on connect. The server's plaintext greeting advertises
//! CLIENT_SSL; a client that wants TLS answers with an SSLRequest (the first 32 bytes of a
//! handshake response, with CLIENT_SSL set), then starts a TLS handshake on the same socket,
//! and sends its real handshake response (sequence id 2) inside the encrypted stream. Everything
//! after the SSLRequest, the credentials included, is encrypted.
//!
//! [`Transport`] is the connection's byte stream before and after that switch. A client may send
//! its TLS ClientHello right behind the SSLRequest without waiting, so the bytes the packet
//! reader already holds are handed to the TLS layer first ([`Rewind`]).
//!
//! # Guarantees
//!
//! - Only rustls with the ring provider: no OpenSSL, no C build of aws-lc (DEPENDENCIES.md §6).
//!   TLS 1.2 and 1.3 with rustls's safe defaults; no renegotiation, no compression.
//! - With a CA configured, a client certificate is optional but verified when presented: a
//!   client certificate that does not chain to the CA fails the TLS handshake. Only a verified
//!   certificate counts for `REQUIRE X509` ([`TlsInfo::peer_verified`]); its subject and issuer
//!   ([`TlsInfo::peer_names`], read by `crate::x509_name`) are what `REQUIRE SUBJECT/ISSUER`
//!   compare.
//! - [`server_config`] loads PEM files into a ready [`rustls::ServerConfig`]; a missing or
//!   malformed file, or a key that does not match its certificate, is an error that names it.
//!
//! # Left out
//!
//! - Certificate revocation lists, session tickets shared between SQL nodes.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What the handler learns about an encrypted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    /// The protocol version as MySQL's `Ssl_version` shows it: `TLSv1.3`, `TLSv1.2`.
    pub version: String,
    /// The cipher suite as MySQL's `Ssl_cipher` shows it (OpenSSL's names, e.g.
    /// `TLS_AES_256_GCM_SHA384`, `ECDHE-RSA-AES128-GCM-SHA256`).
    pub cipher: String,
    /// The client presented a certificate that chains to the server's CA (REQUIRE X509).
    pub peer_verified: bool,
    /// The verified client certificate's subject and issuer, as MySQL prints them (REQUIRE
    /// SUBJECT/ISSUER); `None` without a certificate or if its names could not be read.
    pub peer_names: Option<crate::x509_name::CertificateNames>,
}

/// Why TLS could not be configured.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error("cannot read {path}: {error}")]
    Read { path: String, error: io::Error },
    #[error("{path}: {what}")]
    Pem { path: String, what: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The crypto provider every TLS config of Cairn uses: ring, explicitly, so that no other
/// provider a dependency might enable is picked by accident.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads the certificate chain in a PEM file (the leaf first).
pub fn load_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bytes = std::fs::read(path).map_err(|error| TlsConfigError::Read { path: path.to_string(), error })?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::Pem { path: path.to_string(), what: e.to_string() })?;
    if certificates.is_empty() {
        return Err(TlsConfigError::Pem { path: path.to_string(), what: "no CERTIFICATE block".into() });
    }
    Ok(certificates)
}

/// Reads the private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_private_key(path: &str) -> Result<PrivateKeyDer<'static>, TlsConfigError> {
    let bytes = std::fs::read(path).map_err(|error| TlsConfigError::Read { path: path.to_string(), error })?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| TlsConfigError::Pem { path: path.to_string(), what: e.to_string() })
}

/// Reads a CA bundle into a root store.
pub fn load_roots(path: &str) -> Result<rustls::RootCertStore, TlsConfigError> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in load_certificates(path)? {
        roots.add(certificate).map_err(|e| TlsConfigError::Pem { path: path.to_string(), what: e.to_string() })?;
    }
    Ok(roots)
}

/// A server config from PEM files: the certificate chain, its key and, optionally, the CA that
/// client certificates are verified against (clients without a certificate are still let in;
/// `REQUIRE X509` is the account's business).
pub fn server_config(cert_path: &str, key_path: &str, ca_path: Option<&str>) -> Result<Arc<ServerConfig>, TlsConfigError> {
    let provider = crypto_provider();
    let certificates = load_certificates(cert_path)?;
    let key = load_private_key(key_path)?;
    let builder = ServerConfig::builder_with_provider(provider.clone()).with_safe_default_protocol_versions()?;
    let builder = match ca_path {
        Some(ca) => {
            let roots = Arc::new(load_roots(ca)?);
            let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider)
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsConfigError::Verifier(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    // with_single_cert checks that the key matches the certificate.
    Ok(Arc::new(builder.with_single_cert(certificates, key)?))
}

/// MySQL (OpenSSL) names for the suites rustls negotiates with ring.
fn openssl_cipher_name(suite: rustls::CipherSuite) -> String {
    use rustls::CipherSuite as S;
    let name = match suite {
        S::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        S::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        S::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        other => return other.as_str().map_or_else(|| format!("{other:?}"), str::to_string),
    };
    name.to_string()
}

pub(crate) fn describe(connection: &rustls::ServerConnection) -> TlsInfo {
    let version = match connection.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    };
    let cipher = connection.negotiated_cipher_suite().map(|s| openssl_cipher_name(s.suite())).unwrap_or_default();
    // rustls completes the handshake only if a presented certificate verified, so any peer
    // certificate here is a verified one.
    let peer_verified = connection.peer_certificates().is_some_and(|c| !c.is_empty());
    let peer_names = connection.peer_certificates().and_then(|c| c.first()).and_then(|c| crate::x509_name::certificate_names(c));
    TlsInfo { version, cipher, peer_verified, peer_names }
}

/// A stream that first yields bytes already read from it.
#[derive(Debug)]
pub struct Rewind<S> {
    prefix: Vec<u8>,
    consumed: usize,
    inner: S,
}

impl<S> Rewind<S> {
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Rewind { prefix, consumed: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.consumed < this.prefix.len() {
            let rest = &this.prefix[this.consumed..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.consumed += n;
            if this.consumed == this.prefix.len() {
                this.prefix = Vec::new();
                this.consumed = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The connection's stream: plain until an SSLRequest, then TLS over the same socket.
pub(crate) enum Transport<S> {
    Plain(S),
    Tls(Box<tokio_rustls::server::TlsStream<Rewind<S>>>),
    /// Only while the TLS handshake owns the socket; a failed handshake leaves it here and the
    /// connection ends without touching the stream again.
    Upgrading,
}

fn upgrading() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the stream is being switched to TLS")
}

impl<S: AsyncRead + AsyncWrite + Unpin> Transport<S> {
    /// Runs the server side of a TLS handshake on the plain stream, `already_read` being the
    /// bytes the packet reader held past the SSLRequest.
    pub(crate) async fn upgrade(&mut self, config: Arc<ServerConfig>, already_read: Vec<u8>) -> io::Result<TlsInfo> {
        let Transport::Plain(plain) = std::mem::replace(self, Transport::Upgrading) else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "TLS requested twice"));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let stream = acceptor.accept(Rewind::new(already_read, plain)).await?;
        let info = describe(stream.get_ref().1);
        *self = Transport::Tls(Box::new(stream));
        Ok(info)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for Transport<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for Transport<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Upgrading => Poll::Ready(Err(upgrading())),
        }
    }
}
