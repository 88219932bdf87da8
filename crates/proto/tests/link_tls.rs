//! Mutual TLS on links, over real loopback TCP, with certificates made here by rcgen the way
//! `cairn certs` makes them: a link between two nodes of one CA works and still checks the
//! cluster secret inside TLS; a peer with another CA's certificate, with no certificate, or
//! without TLS at all is refused, on whichever side it is; a certificate of the CA issued for
//! another node id or role is refused; and a reloaded certificate is what new links present,
//! while a failed reload keeps the old one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use cairn_proto::pb::{AdminCommand, AdminReply, Frame, frame::Body};
use cairn_proto::{Identity, LinkTls, Role, RpcClient, TlsFiles, accept, connect, node_certificate_name};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use rustls_pki_types::CertificateDer;
use tokio::net::TcpListener;

type Ca = CertifiedIssuer<'static, KeyPair>;

/// Issues `dir/node-<node>.pem` and its key, named as `cairn certs` names them (host names and
/// the node identity of `role`); returns the certificate's DER.
fn issue(ca: &Ca, dir: &Path, node: u32, role: Role) -> Vec<u8> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    names.extend(node_certificate_name(node, role));
    let mut params = CertificateParams::new(names).unwrap();
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, &**ca).unwrap();
    let files = TlsFiles::for_node(dir, node);
    std::fs::write(files.cert, certificate.pem()).unwrap();
    std::fs::write(files.key, key.serialize_pem()).unwrap();
    certificate.der().to_vec()
}

/// Writes a CA and certificates for data node 1 and management node 49 into `dir`.
fn make_ca(dir: &Path) -> Ca {
    std::fs::create_dir_all(dir).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    issue(&ca, dir, 1, Role::Datad);
    issue(&ca, dir, 49, Role::Mgmd);
    ca
}

fn identity(node_id: u32, role: Role, secret: &str, tls: Option<LinkTls>) -> Identity {
    Identity { node_id, role, secret: secret.into(), software_version: "test".into(), tls }
}

fn node_tls(dir: &Path, node: u32) -> LinkTls {
    LinkTls::load(&TlsFiles::for_node(dir, node)).unwrap()
}

/// An echo server as node 49 with the given TLS; returns its address.
async fn echo_server(tls: Option<LinkTls>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { return };
            let me = identity(49, Role::Mgmd, "secret", tls.clone());
            tokio::spawn(async move {
                let Ok(mut link) = accept(stream, &me, |_| Ok(())).await else { return };
                while let Some(frame) = link.receiver.recv().await {
                    if let Some(Body::AdminCommand(cmd)) = frame.body {
                        let body = Some(Body::AdminReply(AdminReply { text: cmd.command, ok: true }));
                        if link.sender.send(Frame { request_id: frame.request_id, body }).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test]
async fn nodes_of_one_ca_talk_over_mutual_tls_and_still_prove_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let addr = echo_server(Some(node_tls(dir.path(), 49))).await;

    let link = connect(&addr, &identity(1, Role::Datad, "secret", Some(node_tls(dir.path(), 1)))).await.unwrap();
    assert_eq!(link.peer.node_id, 49);
    let (client, _pushes) = RpcClient::new(link);
    // Many requests on the one link: one TLS handshake, then frames only.
    for i in 0..50 {
        let body = Body::AdminCommand(AdminCommand { command: format!("cmd {i}") });
        match client.call(body, Duration::from_secs(5)).await.unwrap() {
            Body::AdminReply(r) => assert_eq!(r.text, format!("cmd {i}")),
            other => panic!("unexpected {other:?}"),
        }
    }

    // A certificate of the cluster CA does not replace the secret.
    let err = connect(&addr, &identity(1, Role::Datad, "guess", Some(node_tls(dir.path(), 1)))).await.err().unwrap();
    assert!(err.to_string().contains("did not prove the cluster secret"), "{err}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_on_either_side() {
    let dir = tempfile::tempdir().unwrap();
    let (ours, theirs) = (dir.path().join("ours"), dir.path().join("theirs"));
    make_ca(&ours);
    make_ca(&theirs);

    // A stranger connecting to a node of ours: our node's verifier rejects its certificate.
    let addr = echo_server(Some(node_tls(&ours, 49))).await;
    let stranger = identity(1, Role::Datad, "secret", Some(node_tls(&theirs, 1)));
    assert!(matches!(connect(&addr, &stranger).await, Err(cairn_proto::link::LinkError::Tls(_))));

    // Our node connecting to a stranger posing as node 49: ours rejects the server certificate.
    let impostor = echo_server(Some(node_tls(&theirs, 49))).await;
    let ours_client = identity(1, Role::Datad, "secret", Some(node_tls(&ours, 1)));
    let err = connect(&impostor, &ours_client).await.err().expect("must be refused");
    assert!(matches!(err, cairn_proto::link::LinkError::Tls(_)), "{err}");
}

#[tokio::test]
async fn a_peer_without_a_certificate_or_without_tls_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let addr = echo_server(Some(node_tls(dir.path(), 49))).await;

    // TLS that trusts the cluster CA but presents no client certificate.
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.path().join("ca.pem")).unwrap();
    for certificate in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connected = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream).await;
    // With TLS 1.3 the client may finish its side before the server rejects it; the
    // server's alert then ends the stream at the first read.
    if let Ok(mut tls) = connected {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut byte)).await.unwrap();
        assert!(!matches!(read, Ok(n) if n > 0), "a client without a certificate got data: {read:?}");
    }

    // Plain TCP against a TLS node: no challenge ever comes, so the handshake fails.
    assert!(connect(&addr, &identity(1, Role::Datad, "secret", None)).await.is_err());

    // A TLS node against a plain one: the plain node's challenge is no TLS server hello.
    let plain = echo_server(None).await;
    assert!(connect(&plain, &identity(1, Role::Datad, "secret", Some(node_tls(dir.path(), 1)))).await.is_err());
}

#[tokio::test]
async fn a_certificate_of_the_ca_issued_for_another_node_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    make_ca(dir.path());
    let addr = echo_server(Some(node_tls(dir.path(), 49))).await;
    let node_1 = node_tls(dir.path(), 1);

    // Node 1's certificate and the secret, claiming node 2: refused after the secret handshake.
    let err = connect(&addr, &identity(2, Role::Datad, "secret", Some(node_1.clone()))).await.err().expect("refused");
    assert!(err.to_string().contains("not issued for Datad node 2"), "{err}");
    // The right node id in another role is refused too.
    let err = connect(&addr, &identity(1, Role::Sqld, "secret", Some(node_1.clone()))).await.err().expect("refused");
    assert!(err.to_string().contains("not issued for Sqld node 1"), "{err}");
    // What the certificate names is admitted; an admin client may present any certificate of
    // the CA (the admin credential decides what it may do).
    assert!(connect(&addr, &identity(1, Role::Datad, "secret", Some(node_1.clone()))).await.is_ok());
    assert!(connect(&addr, &identity(7, Role::Admin, "secret", Some(node_1))).await.is_ok());

    // A node does not even start with a certificate that does not name it.
    let err = LinkTls::load_node(&TlsFiles::for_node(dir.path(), 1), 2, Role::Datad).unwrap_err();
    assert!(matches!(err, cairn_proto::TlsSetupError::NotForNode { node_id: 2, .. }), "{err}");
    assert!(LinkTls::load_node(&TlsFiles::for_node(dir.path(), 1), 1, Role::Datad).is_ok());
}

/// Connects to `addr` with TLS as node 1 (its certificate from `dir`) and returns the
/// certificate the server presented.
async fn presented_certificate(addr: &str, dir: &Path) -> Vec<u8> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    for certificate in rustls_pki_types::pem::PemObject::pem_slice_iter(&ca) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let files = TlsFiles::for_node(dir, 1);
    let chain: Vec<CertificateDer<'static>> =
        rustls_pki_types::pem::PemObject::pem_file_iter(&files.cert).unwrap().map(|c| c.unwrap()).collect();
    let key = rustls_pki_types::pem::PemObject::from_pem_file(&files.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

#[tokio::test]
async fn a_reloaded_certificate_is_presented_on_new_links_and_a_bad_reload_keeps_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let ca = make_ca(dir.path());
    let server_tls = LinkTls::load_node(&TlsFiles::for_node(dir.path(), 49), 49, Role::Mgmd).unwrap();
    let addr = echo_server(Some(server_tls.clone())).await;
    let first = server_tls.certificate().to_vec();
    assert_eq!(presented_certificate(&addr, dir.path()).await, first);

    // A link opened before the reload goes on after it.
    let link = connect(&addr, &identity(1, Role::Datad, "secret", Some(node_tls(dir.path(), 1)))).await.unwrap();
    let (client, _pushes) = RpcClient::new(link);

    // New files, then a reload: new links present the new certificate.
    let second = issue(&ca, dir.path(), 49, Role::Mgmd);
    assert_ne!(first, second);
    server_tls.reload().unwrap();
    assert_eq!(server_tls.certificate().to_vec(), second);
    assert_eq!(presented_certificate(&addr, dir.path()).await, second);
    let body = Body::AdminCommand(AdminCommand { command: "still here".into() });
    assert!(matches!(client.call(body, Duration::from_secs(5)).await, Ok(Body::AdminReply(_))));

    // A half-copied certificate: the reload fails and the node keeps presenting the second one.
    let files = TlsFiles::for_node(dir.path(), 49);
    let pem = std::fs::read_to_string(&files.cert).unwrap();
    std::fs::write(&files.cert, &pem[..pem.len() / 2]).unwrap();
    assert!(server_tls.reload().is_err());
    assert_eq!(presented_certificate(&addr, dir.path()).await, second);
    // A key that does not match the certificate, and a certificate for another node: likewise.
    std::fs::write(&files.cert, &pem).unwrap();
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let right_key = std::fs::read(&files.key).unwrap();
    std::fs::write(&files.key, other_key).unwrap();
    assert!(server_tls.reload().is_err());
    std::fs::write(&files.key, right_key).unwrap();
    issue(&ca, dir.path(), 50, Role::Mgmd);
    std::fs::copy(dir.path().join("node-50.pem"), &files.cert).unwrap();
    std::fs::copy(dir.path().join("node-50-key.pem"), &files.key).unwrap();
    let err = server_tls.reload().unwrap_err();
    assert!(matches!(err, cairn_proto::TlsSetupError::NotForNode { node_id: 49, .. }), "{err}");
    assert_eq!(presented_certificate(&addr, dir.path()).await, second);
}
