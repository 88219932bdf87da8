//! `cairn up` as a new user runs it: separate processes per node, MySQL on the announced ports,
//! a clean stop on SIGTERM, and a clear refusal when a port is taken.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cairn_e2e::cairn_binary;
use mysql_async::prelude::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap().local_addr().unwrap().port()
}

/// Two free ports in a row (SQL node k listens on mysql-port + k - 1).
fn free_port_pair() -> u16 {
    loop {
        let p = free_port();
        if p < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", p + 1)).is_ok() {
            return p;
        }
    }
}

/// Processes whose command line mentions `needle` (read from /proc, no ps needed).
fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if text.contains(needle) {
                found.push(text);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cairn_up_with_two_node_groups_and_two_sql_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("cluster");
    let mysql_port = free_port_pair();
    let mgm_port = free_port();
    let mut child = Command::new(cairn_binary())
        .args(["up", "--data-dir", data_dir.to_str().unwrap(), "--mysql-port", &mysql_port.to_string()])
        .args(["--mgm-port", &mgm_port.to_string(), "--data-nodes", "4", "--replicas", "2", "--sql-nodes", "2"])
        .args(["--data-memory", "64M", "--heartbeat-ms", "200"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut banner = Vec::new();
    while !banner.iter().any(|l: &String| l.starts_with("Press Ctrl-C")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => banner.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("cairn up did not come up; printed so far: {banner:?}");
            }
        }
    }
    let banner = banner.join("\n");
    assert!(banner.contains("4 data nodes (2 node groups, NoOfReplicas=2), 2 SQL nodes"), "{banner}");
    assert!(banner.contains(&format!("mysql -h 127.0.0.1 -P {mysql_port} -u root")), "{banner}");

    // One process per node, each saying which node it is.
    let procs = processes_with(data_dir.to_str().unwrap());
    for role in ["mgmd --node-id 49", "datad --node-id 1", "datad --node-id 4", "sqld --node-id 50", "sqld --node-id 51"] {
        assert!(procs.iter().any(|p| p.contains(role)), "no process for {role}: {procs:?}");
    }

    for port in [mysql_port, mysql_port + 1] {
        let opts = mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(port).user(Some("root")).prefer_socket(false);
        let mut conn = mysql_async::Conn::new(opts).await.unwrap();
        let one: Option<u32> = conn.query_first("SELECT 1").await.unwrap();
        assert_eq!(one, Some(1));
        conn.disconnect().await.unwrap();
    }
    let show = Command::new(cairn_binary())
        .args(["mgm", "-c", &format!("127.0.0.1:{mgm_port}"), "--config"])
        .arg(data_dir.join("cluster.toml"))
        .args(["-e", "show"])
        .output()
        .unwrap();
    let show = String::from_utf8_lossy(&show.stdout);
    assert!(show.contains("[ndbd(NDB)]\t4 node(s)") && show.contains("Nodegroup: 1"), "{show}");

    // SIGTERM stops everything.
    // SAFETY: kill(2) on our own child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "cairn up exited with {status}");
    let left = processes_with(data_dir.to_str().unwrap());
    assert!(left.is_empty(), "processes left behind: {left:?}");
}

#[test]
fn cairn_up_refuses_a_taken_port() {
    let taken = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(cairn_binary())
        .args(["up", "--data-dir", dir.path().to_str().unwrap(), "--mysql-port", &port.to_string()])
        .args(["--mgm-port", &free_port().to_string()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("port {port}")) && stderr.contains("taken"), "{stderr}");
}
