//! TLS on the MySQL port, byte by byte: the greeting offers CLIENT_SSL only with a config, an
//! SSLRequest followed at once by the TLS ClientHello (in one write) switches the socket to
//! TLS, the handshake response inside TLS continues the sequence ids, the handler sees the
//! protocol, cipher and client certificate, `caching_sha2_password`'s full authentication
//! carries the password inside TLS, a client certificate from another CA is refused, and
//! `require_secure_transport` refuses plain logins with 3159.
//!
//! Certificates are made per test run with rcgen (a CA, a server certificate for 127.0.0.1 and
//! localhost, client certificates from that CA and from another one).

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cairn_wire::{
    AuthRequest, CACHING_SHA2_PLUGIN, ErrorPacket, ServerOptions, TlsInfo, caching_sha2_response, caching_sha2_verifier,
    capability, serve,
};
use common::{frame, parse_greeting};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PASSWORD: &[u8] = b"s3cret";

/// What a login told the handler.
#[derive(Debug, Clone)]
struct Seen {
    tls: Option<TlsInfo>,
    cleartext: bool,
    accepted: bool,
}

/// A handler with one `caching_sha2_password` account, `carol`, that records each attempt.
struct Recorder {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl common::Login for Recorder {
    fn login(&mut self, request: &AuthRequest<'_>) -> Result<(), ErrorPacket> {
        let verifier = caching_sha2_verifier(PASSWORD);
        let accepted = request.user == "carol"
            && if request.cleartext {
                caching_sha2_verifier(request.auth_response) == verifier
            } else {
                cairn_wire::verify_caching_sha2(request.scramble, request.auth_response, &verifier)
            };
        self.seen.lock().unwrap().push(Seen { tls: request.tls.cloned(), cleartext: request.cleartext, accepted });
        if accepted { Ok(()) } else { Err(ErrorPacket::new(1045, "28000", "Access denied")) }
    }
}

/// A CA and certificates issued by it, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_der: CertificateDer<'static>,
    client: (CertificateDer<'static>, PrivateKeyDer<'static>),
}

fn issue_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn issue(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> (rcgen::Certificate, KeyPair) {
    let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    let key = KeyPair::generate().unwrap();
    (params.signed_by(&key, &**ca).unwrap(), key)
}

fn der_pair(cert: &rcgen::Certificate, key: &KeyPair) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    (cert.der().clone(), PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())))
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = issue_ca("test CA");
        let (server, server_key) = issue(&ca, &["localhost", "127.0.0.1"]);
        let (client, client_key) = issue(&ca, &["client"]);
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.path().join("server-key.pem"), server_key.serialize_pem()).unwrap();
        Pki { ca_der: ca.der().clone(), client: der_pair(&client, &client_key), dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_string_lossy().into_owned()
    }

    fn server_config(&self) -> Arc<rustls::ServerConfig> {
        cairn_wire::tls::server_config(&self.path("server.pem"), &self.path("server-key.pem"), Some(&self.path("ca.pem"))).unwrap()
    }

    fn client_config(&self, certificate: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone()).unwrap();
        let builder = rustls::ClientConfig::builder_with_provider(cairn_wire::tls::crypto_provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match certificate {
            Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
            None => builder.with_no_client_auth(),
        })
    }
}

/// Serves connections until the test ends; returns the address and what the handler saw.
async fn start(options: ServerOptions) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let shared = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let handler = common::LoginOnly(Recorder { seen: shared.clone() });
            let options = options.clone();
            tokio::spawn(async move {
                let _ = serve(stream, handler, options).await;
            });
        }
    });
    (addr, seen)
}

async fn try_read_packet<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).await?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).await?;
    Ok((header[3], payload))
}

async fn read_packet<S: AsyncRead + Unpin>(stream: &mut S) -> (u8, Vec<u8>) {
    try_read_packet(stream).await.unwrap()
}

const CAPS: u32 = capability::PROTOCOL_41
    | capability::SECURE_CONNECTION
    | capability::PLUGIN_AUTH
    | capability::DEPRECATE_EOF
    | capability::TRANSACTIONS;

fn hello_prefix(caps: u32) -> Vec<u8> {
    let mut out = caps.to_le_bytes().to_vec();
    out.extend_from_slice(&(16u32 << 20).to_le_bytes());
    out.push(255);
    out.extend_from_slice(&[0; 23]);
    out
}

fn handshake_response(caps: u32, user: &str, auth: &[u8]) -> Vec<u8> {
    let mut out = hello_prefix(caps);
    out.extend_from_slice(user.as_bytes());
    out.push(0);
    out.push(auth.len() as u8);
    out.extend_from_slice(auth);
    out.extend_from_slice(CACHING_SHA2_PLUGIN.as_bytes());
    out.push(0);
    out
}

/// Connects, asks for TLS and logs in as carol with `password`, asking for full
/// authentication by answering the fast path wrongly when `force_full` is set. Returns the
/// TLS stream after the server's final answer, and that answer.
async fn tls_login(
    addr: SocketAddr,
    client: Arc<rustls::ClientConfig>,
    password: &[u8],
    force_full: bool,
) -> std::io::Result<(tokio_rustls::client::TlsStream<TcpStream>, Vec<Vec<u8>>)> {
    let mut tcp = TcpStream::connect(addr).await?;
    let (_, greeting) = read_packet(&mut tcp).await;
    let greeting = parse_greeting(&greeting);
    assert_ne!(greeting.capabilities & capability::SSL, 0, "CLIENT_SSL offered with a certificate");
    // The SSLRequest, and the TLS ClientHello right behind it: the connector writes the
    // ClientHello as soon as it starts, so the server may read both in one read.
    tcp.write_all(&frame(&hello_prefix(CAPS | capability::SSL), 1)).await?;
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    let answer = if force_full { vec![0u8; 32] } else { caching_sha2_response(&greeting.scramble, password) };
    tls.write_all(&frame(&handshake_response(CAPS | capability::SSL, "carol", &answer), 2)).await?;
    let mut replies = Vec::new();
    loop {
        let (seq, payload) = try_read_packet(&mut tls).await?;
        if payload == [0x01, 0x04] {
            // perform_full_authentication: the password in clear, NUL-terminated, inside TLS.
            let mut clear = password.to_vec();
            clear.push(0);
            tls.write_all(&frame(&clear, seq.wrapping_add(1))).await?;
            replies.push(payload);
            continue;
        }
        let last = payload[0] == 0x00 || payload[0] == 0xFF;
        replies.push(payload);
        if last {
            return Ok((tls, replies));
        }
    }
}

fn tls_options(pki: &Pki) -> ServerOptions {
    ServerOptions { tls: Some(pki.server_config()), ..ServerOptions::default() }
}

#[tokio::test]
async fn login_and_query_inside_tls_with_fast_and_full_authentication() {
    let pki = Pki::new();
    let (addr, seen) = start(tls_options(&pki)).await;
    let client = pki.client_config(None);

    // Fast path: AuthMoreData(fast_auth_success), then OK.
    let (mut tls, replies) = tls_login(addr, client.clone(), PASSWORD, false).await.unwrap();
    assert_eq!(replies, [vec![0x01, 0x03], vec![0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00]]);
    tls.write_all(&frame(b"\x03select 1", 0)).await.unwrap();
    let (_, ok) = read_packet(&mut tls).await;
    assert_eq!(ok[..2], [0x00, 7], "the query's OK came back through TLS");
    {
        let seen = seen.lock().unwrap();
        let info = seen[0].tls.as_ref().expect("the handler saw TLS");
        assert!(info.version == "TLSv1.3" || info.version == "TLSv1.2", "{info:?}");
        assert!(!info.cipher.is_empty());
        assert!(!info.peer_verified);
    }

    // Full authentication: a wrong fast-path answer, then the password in clear inside TLS.
    let (_, replies) = tls_login(addr, client.clone(), PASSWORD, true).await.unwrap();
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert_eq!(replies[0], [0x01, 0x04]);
    assert_eq!(replies[1][0], 0x00, "full authentication succeeded");
    // ... and with a wrong password, 1045 after the full path.
    let (_, replies) = tls_login(addr, client, b"wrong", true).await.unwrap();
    assert_eq!(replies[0], [0x01, 0x04]);
    assert_eq!(replies[1][..3], [0xFF, 0x15, 0x04]);
    let seen = seen.lock().unwrap();
    let cleartext: Vec<(bool, bool)> = seen[1..].iter().map(|s| (s.cleartext, s.accepted)).collect();
    assert_eq!(cleartext, [(false, false), (true, true), (false, false), (true, false)]);
}

#[tokio::test]
async fn client_certificates_are_verified_against_the_ca() {
    let pki = Pki::new();
    let (addr, seen) = start(tls_options(&pki)).await;
    let (_, replies) = tls_login(addr, pki.client_config(Some((pki.client.0.clone(), pki.client.1.clone_key()))), PASSWORD, false).await.unwrap();
    assert_eq!(replies.last().unwrap()[0], 0x00);
    assert!(seen.lock().unwrap()[0].tls.as_ref().unwrap().peer_verified, "a certificate from the CA counts for X509");

    // A certificate from another CA fails the TLS handshake: no login is attempted.
    let other = issue_ca("another CA");
    let (cert, key) = issue(&other, &["intruder"]);
    let result = tls_login(addr, pki.client_config(Some(der_pair(&cert, &key))), PASSWORD, false).await;
    let refused = match result {
        Err(_) => true,
        // With TLS 1.3 the client may finish its side before the server's alert arrives; the
        // alert then ends the stream where the login's answer would be.
        Ok((_, replies)) => replies.last().is_none_or(|r| r[0] != 0x00),
    };
    assert!(refused);
    assert_eq!(seen.lock().unwrap().len(), 1, "the handler never saw the foreign certificate's login");
}

#[tokio::test]
async fn plain_connections_without_a_config_and_with_require_secure_transport() {
    // No config: CLIENT_SSL is not offered and an SSLRequest is refused.
    let (addr, _) = start(ServerOptions::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let (_, greeting) = read_packet(&mut tcp).await;
    assert_eq!(parse_greeting(&greeting).capabilities & capability::SSL, 0);
    tcp.write_all(&frame(&hello_prefix(CAPS | capability::SSL), 1)).await.unwrap();
    let (_, err) = read_packet(&mut tcp).await;
    assert_eq!(err[0], 0xFF);

    // require_secure_transport: a plain login gets 3159 before any credential check.
    let pki = Pki::new();
    let (addr, seen) = start(ServerOptions { require_secure_transport: true, ..tls_options(&pki) }).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let (_, greeting) = read_packet(&mut tcp).await;
    let greeting = parse_greeting(&greeting);
    let answer = caching_sha2_response(&greeting.scramble, PASSWORD);
    tcp.write_all(&frame(&handshake_response(CAPS, "carol", &answer), 1)).await.unwrap();
    let (_, err) = read_packet(&mut tcp).await;
    assert_eq!(err[..3], [0xFF, 0x57, 0x0C], "3159: {:?}", String::from_utf8_lossy(&err));
    assert!(seen.lock().unwrap().is_empty());
    // ... while the same login inside TLS goes through.
    let (_, replies) = tokio::time::timeout(Duration::from_secs(10), tls_login(addr, pki.client_config(None), PASSWORD, false))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(replies.last().unwrap()[0], 0x00);
}

#[tokio::test]
async fn bad_files_are_named_in_the_error() {
    let pki = Pki::new();
    let missing = cairn_wire::tls::server_config(&pki.path("nope.pem"), &pki.path("server-key.pem"), None).unwrap_err();
    assert!(missing.to_string().contains("nope.pem"), "{missing}");
    // A key that is not the certificate's.
    std::fs::write(pki.dir.path().join("other-key.pem"), KeyPair::generate().unwrap().serialize_pem()).unwrap();
    assert!(cairn_wire::tls::server_config(&pki.path("server.pem"), &pki.path("other-key.pem"), None).is_err());
    // A certificate file holding no certificate.
    assert!(cairn_wire::tls::server_config(&pki.path("server-key.pem"), &pki.path("server-key.pem"), None).is_err());
}
