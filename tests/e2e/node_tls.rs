//! Mutual TLS on every link between nodes (`NodeSslDir`), on real clusters whose certificates
//! `cairn certs` made: rows written through an SQL node read back; `cairn mgm` works with its
//! admin certificate; a look at the bytes on a data node's links, through a recording relay
//! on 127.0.0.1 in front of data node 2 (a known row value crosses it in clear without TLS and
//! never with TLS); and nodes that cannot prove themselves (a certificate of another CA, no
//! TLS at all) are refused and logged while the cluster goes on; a certificate of the CA issued
//! for another node id is refused, a node id cannot be claimed twice, and node certificates
//! reload on SIGHUP (a bad reload keeps the old one).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cairn_common::ids::NodeId;
use cairn_e2e::{Cluster, ClusterSpec, cairn_binary};
use cairn_proto::{Identity, Role};
use mysql_async::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A value that must never be readable on an encrypted link.
const CANARY: &str = "canary-node-link-8b2e71@calmail.example";

/// A relay listening on `listen` that forwards to `target` and records every byte both ways.
async fn recording_relay(listen: u16, target: u16) -> Arc<Mutex<Vec<u8>>> {
    // The port was a data node's a moment ago: wait for the kernel to let it go.
    let deadline = Instant::now() + Duration::from_secs(10);
    let listener = loop {
        match TcpListener::bind(("127.0.0.1", listen)).await {
            Ok(listener) => break listener,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("relay cannot listen on {listen}: {e}"),
        }
    };
    let recorded = Arc::new(Mutex::new(Vec::new()));
    let record = recorded.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else { continue };
            let (client_read, client_write) = client.into_split();
            let (server_read, server_write) = server.into_split();
            for (mut from, mut to) in [(client_read, server_write), (server_read, client_write)] {
                let record = record.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf).await {
                        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                        record.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                    let _ = to.shutdown().await;
                });
            }
        }
    });
    recorded
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts a cluster (2 data nodes in one node group), moves data node 2 behind a recording
/// relay, writes the canary row through the SQL node and reads it back; returns what crossed
/// the relay.
async fn bytes_on_a_data_node_link(node_tls: bool) -> Vec<u8> {
    let mut cluster = Cluster::start(ClusterSpec { node_tls, ..ClusterSpec::default() }).await.expect("cluster starts");
    // Data node 2 listens on a port of its own; the relay takes the port every other node
    // dials (the config's), so its Raft traffic and the SQL node's requests cross the relay.
    let configured = cluster.config.data_node(NodeId(2)).expect("data node 2").port;
    let real = free_port();
    cluster.stop(2);
    let recorded = recording_relay(configured, real).await;
    cluster.start_node_with(2, &["--listen", &format!("127.0.0.1:{real}")], &[]).unwrap();
    cluster.wait_ready(Duration::from_secs(60)).await.unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_tails(30)));

    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    for sql in ["CREATE DATABASE calmail", "CREATE TABLE calmail.account (id INT PRIMARY KEY, email VARCHAR(100))"] {
        conn.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // A commit is in the Raft log of both replicas (NoOfReplicas = 2), so once the INSERT is
    // acknowledged the row has crossed the relay: as a log entry to node 2, or as the SQL
    // node's write to node 2 if it leads.
    conn.exec_drop("INSERT INTO calmail.account VALUES (7, ?)", (CANARY,)).await.unwrap();
    let emails: Vec<String> = conn.query("SELECT email FROM calmail.account WHERE id = 7").await.unwrap();
    assert_eq!(emails, [CANARY]);
    drop(conn);
    pool.disconnect().await.unwrap();
    // The relay's copy tasks record after forwarding; give them a moment to catch up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let bytes = recorded.lock().unwrap().clone();
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_node_tls_row_data_crosses_a_data_node_link_in_clear() {
    // The check below it can fail: in clear, the relay sees the row.
    let bytes = bytes_on_a_data_node_link(false).await;
    assert!(contains(&bytes, CANARY.as_bytes()), "{} bytes recorded, none of them the row", bytes.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_node_tls_rows_flow_and_a_data_node_link_carries_no_plaintext() {
    let bytes = bytes_on_a_data_node_link(true).await;
    assert!(bytes.len() > 1000, "the relay saw the data node's traffic ({} bytes)", bytes.len());
    assert!(!contains(&bytes, CANARY.as_bytes()), "the row crossed a TLS link in clear");
    assert!(!contains(&bytes, b"calmail"), "schema names crossed a TLS link in clear");
}

/// The admin credential of the cluster in the refusal test.
const ADMIN_PASSWORD: &str = "admin-pw-5c3a";

/// Waits until `path` holds `needle`.
async fn wait_for_log(path: &std::path::Path, needle: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if std::fs::read_to_string(path).is_ok_and(|log| log.contains(needle)) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_that_cannot_prove_a_certificate_of_the_cluster_ca_are_refused() {
    let spec = ClusterSpec {
        node_tls: true,
        cluster_extra: format!("AdminPassword = \"{ADMIN_PASSWORD}\""),
        ..ClusterSpec::default()
    };
    let mut cluster = Cluster::start(spec).await.expect("cluster starts");
    let mgmd_log = cluster.log_path(49);

    // `cairn mgm` with the admin certificate the config's NodeSslDir holds: the cluster secret
    // (from the config) is enough to look, not to change anything; the admin password is.
    let mgm = |extra: &[&str]| {
        let output = std::process::Command::new(cairn_binary())
            .args(["mgm", "--config"])
            .arg(&cluster.config_path)
            .args(["-c", &cluster.config.mgmd_addresses()[0]])
            .args(extra)
            .env_remove("CAIRN_ADMIN_PASSWORD")
            .env_remove("CAIRN_SECRET")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
        (output.status.success(), text)
    };
    let (ok, text) = mgm(&["-e", "show"]);
    assert!(ok && text.contains("Cluster Configuration"), "{text}");
    let (ok, text) = mgm(&["-e", "START BACKUP"]);
    assert!(!ok && text.contains("Access denied"), "a backup without the admin credential: {text}");
    assert!(wait_for_log(&mgmd_log, "admin_command_refused", Duration::from_secs(5)).await);
    let (ok, text) = mgm(&["--admin-password", "not-the-password", "-e", "show"]);
    assert!(!ok && text.contains("Unable to connect"), "a wrong admin password is refused: {text}");
    let (ok, text) = mgm(&["--admin-password", ADMIN_PASSWORD, "-e", "START BACKUP NOWAIT"]);
    assert!(ok && text.contains("Backup 1 started"), "a backup with the admin credential: {text}");

    // Data node 2 comes back with a certificate of another CA: the management node refuses it
    // in the TLS handshake and logs it.
    let other_ca = cluster.dir.path().join("other-ca");
    let made = std::process::Command::new(cairn_binary())
        .args(["certs", "--config"])
        .arg(&cluster.config_path)
        .arg("--out")
        .arg(&other_ca)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    cluster.stop(2);
    let refusals_before = std::fs::read_to_string(&mgmd_log).unwrap().matches("TLS handshake failed").count();
    cluster.start_node_with(2, &["--ssl-dir", &other_ca.to_string_lossy()], &[]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let log = std::fs::read_to_string(&mgmd_log).unwrap();
        if log.matches("TLS handshake failed").count() > refusals_before {
            assert!(log.contains("handshake_refused"), "the refusal is in the audit trail");
            break;
        }
        assert!(Instant::now() < deadline, "no refusal logged\n{}", cluster.log_tails(20));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let status = cluster.admin("2 STATUS").await.unwrap();
    assert!(!status.contains(": started"), "the foreign node must not join: {status}");

    // A peer without TLS at all is refused by the management node and by data node 1.
    let plain = Identity {
        node_id: 2,
        role: Role::Datad,
        secret: cluster.config.cluster.secret.clone(),
        software_version: "e2e".into(),
        tls: None,
    };
    let data_node_1 = cluster.config.data_node(NodeId(1)).unwrap().address();
    for address in [cluster.config.mgmd_addresses()[0].clone(), data_node_1] {
        assert!(cairn_proto::connect(&address, &plain).await.is_err(), "{address} let a plain peer in");
    }
    // (A peer that sends nothing is dropped at the handshake timeout; the refusal is logged when
    // the TLS layer sees the connection end, which races with that timeout, so the logs are
    // checked only for the certificate of another CA above.)

    // The cluster stays up: data node 1 serves alone, and writes go on through the SQL node.
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE calmail").await.unwrap();
    conn.query_drop("CREATE TABLE calmail.t (id INT PRIMARY KEY, v VARCHAR(20))").await.unwrap();
    conn.query_drop("INSERT INTO calmail.t VALUES (1, 'still up')").await.unwrap();
    let v: Vec<String> = conn.query("SELECT v FROM calmail.t WHERE id = 1").await.unwrap();
    assert_eq!(v, ["still up"]);
    drop(conn);
    pool.disconnect().await.unwrap();
}

/// Connects to `address` with TLS as the admin client of `tls_dir` and returns the certificate
/// the node there presented (it then waits in vain for a hello and drops the connection).
async fn presented_certificate(address: &str, tls_dir: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    let files = cairn_proto::TlsFiles::for_client(tls_dir, "admin");
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls_pki_types::CertificateDer::pem_file_iter(&files.ca).unwrap() {
        roots.add(certificate.unwrap()).unwrap();
    }
    let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&files.cert).unwrap().map(|c| c.unwrap()).collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&files.key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap();
    let stream = TcpStream::connect(address).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connecting = tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, stream);
    let tls = tokio::time::timeout(Duration::from_secs(10), connecting).await.unwrap().unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// The DER of the first certificate in a PEM file.
fn certificate_der(path: &std::path::Path) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// Counts of `needle` in the log of node `id`.
fn log_count(cluster: &Cluster, id: u32, needle: &str) -> usize {
    std::fs::read_to_string(cluster.log_path(id)).unwrap_or_default().matches(needle).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_certificates_name_their_node_and_reload_on_sighup() {
    let mut cluster = Cluster::start(ClusterSpec { node_tls: true, ..ClusterSpec::default() }).await.expect("cluster starts");
    let tls_dir = cluster.tls_dir();
    let mgmd_id = cluster.config.mgmds[0].node_id;
    let mgmd = cluster.config.mgmd_addresses()[0].clone();
    let data_node_1 = cluster.config.data_node(NodeId(1)).unwrap().address();
    let secret = cluster.config.cluster.secret.clone();

    // Data node 1's certificate (valid, of the cluster CA) and the secret, claiming to be data
    // node 2: the management node and data node 1 both refuse it and log it.
    let node_1_certificate = cairn_proto::LinkTls::load(&cairn_proto::TlsFiles::for_node(&tls_dir, 1)).unwrap();
    let impostor = Identity {
        node_id: 2,
        role: Role::Datad,
        secret: secret.clone(),
        software_version: "e2e".into(),
        tls: Some(node_1_certificate.clone()),
    };
    for address in [&mgmd, &data_node_1] {
        let err = cairn_proto::connect(address, &impostor).await.err().expect("an impostor is refused");
        assert!(err.to_string().contains("not issued for Datad node 2"), "{address}: {err}");
    }
    for id in [mgmd_id, 1] {
        let log = cluster.log_path(id);
        assert!(wait_for_log(&log, "not issued for Datad node 2", Duration::from_secs(5)).await, "node {id} did not log it");
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.lines().any(|l| l.contains("handshake_refused") && l.contains("not issued for")), "not audited on {id}");
    }

    // The rightful certificate of data node 1, claiming its own id while node 1 is connected:
    // a node id cannot be claimed twice.
    let twin = Identity { node_id: 1, ..impostor };
    let err = cairn_proto::connect(&mgmd, &twin).await.err().expect("a second node 1 is refused");
    assert!(err.to_string().contains("already connected"), "{err}");

    // The cluster is untouched: both data nodes started, writes go on.
    for id in [1, 2] {
        let status = cluster.admin(&format!("{id} STATUS")).await.unwrap();
        assert!(status.contains(": started"), "{status}");
    }
    let pool = cluster.pool(0, None);
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop("CREATE DATABASE calmail").await.unwrap();
    conn.query_drop("CREATE TABLE calmail.t (id INT PRIMARY KEY, v VARCHAR(20))").await.unwrap();
    conn.query_drop("INSERT INTO calmail.t VALUES (1, 'before')").await.unwrap();

    // New certificates from the same CA (`cairn certs` again, its CA key copied), for data node
    // 1 and the management node; the files replaced, then SIGHUP: new links see them.
    let staging = cluster.dir.path().join("rotated");
    std::fs::create_dir_all(&staging).unwrap();
    for file in ["ca.pem", "ca-key.pem"] {
        std::fs::copy(tls_dir.join(file), staging.join(file)).unwrap();
    }
    let made = std::process::Command::new(cairn_binary())
        .args(["certs", "--config"])
        .arg(&cluster.config_path)
        .arg("--out")
        .arg(&staging)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    for (id, address) in [(1, &data_node_1), (mgmd_id, &mgmd)] {
        let old = certificate_der(&tls_dir.join(format!("node-{id}.pem")));
        assert_eq!(presented_certificate(address, &tls_dir).await, old, "node {id} before the reload");
        let new = certificate_der(&staging.join(format!("node-{id}.pem")));
        assert_ne!(old, new);
        for file in [format!("node-{id}.pem"), format!("node-{id}-key.pem")] {
            std::fs::copy(staging.join(&file), tls_dir.join(&file)).unwrap();
        }
        let reloads = log_count(&cluster, id, "node certificate reloaded");
        cluster.signal(id, libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while log_count(&cluster, id, "node certificate reloaded") == reloads {
            assert!(Instant::now() < deadline, "node {id} did not reload\n{}", cluster.log_tails(20));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(presented_certificate(address, &tls_dir).await, new, "node {id} after the reload");

        // A half-copied certificate: the reload fails, is logged, and the node keeps the new one.
        let path = tls_dir.join(format!("node-{id}.pem"));
        let pem = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, &pem[..pem.len() / 2]).unwrap();
        let failures = log_count(&cluster, id, "node certificate reload failed");
        cluster.signal(id, libc::SIGHUP);
        let deadline = Instant::now() + Duration::from_secs(10);
        while log_count(&cluster, id, "node certificate reload failed") == failures {
            assert!(Instant::now() < deadline, "node {id} did not log the failed reload\n{}", cluster.log_tails(20));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(presented_certificate(address, &tls_dir).await, new, "node {id} after a bad reload");
        std::fs::write(&path, &pem).unwrap();
    }

    // The SQL node reloads its node certificate too (it has no MySQL-port certificate here,
    // so without the reload a SIGHUP would end it).
    let sql_node = cluster.config.sql_nodes[0].node_id;
    let reloads = log_count(&cluster, sql_node, "node certificate reloaded");
    cluster.signal(sql_node, libc::SIGHUP);
    let deadline = Instant::now() + Duration::from_secs(10);
    while log_count(&cluster, sql_node, "node certificate reloaded") == reloads {
        assert!(Instant::now() < deadline, "SQL node {sql_node} did not reload\n{}", cluster.log_tails(20));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Links made before the reloads kept going, and the nodes are alive after the signals.
    conn.query_drop("INSERT INTO calmail.t VALUES (2, 'after')").await.unwrap();
    let v: Vec<String> = conn.query("SELECT v FROM calmail.t ORDER BY id").await.unwrap();
    assert_eq!(v, ["before", "after"]);
    for id in [1, 2] {
        assert!(cluster.is_running(id), "data node {id} survived SIGHUP");
    }
    drop(conn);
    pool.disconnect().await.unwrap();
}
