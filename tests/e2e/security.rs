//! Accounts over the MySQL protocol against real processes: logins with both password plugins,
//! MySQL's 1045 on failure, host patterns, COM_CHANGE_USER, grants reaching every SQL node, and
//! the audit lines. (The privilege rules themselves are tested in-process in
//! crates/sql/tests/privileges.rs.)

use std::time::{Duration, Instant};

use cairn_e2e::{Cluster, ClusterSpec};
use mysql_async::prelude::*;
use mysql_async::{ChangeUserOpts, Conn, Error, OptsBuilder};

fn opts(cluster: &Cluster, k: usize, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(cluster.mysql_port(k))
        .user(Some(user))
        .pass(Some(password))
        .prefer_socket(false)
}

/// The server error of a failed connection or statement: (code, SQLSTATE, message).
fn server_error(result: Result<impl std::fmt::Debug, Error>) -> (u16, String, String) {
    match result {
        Err(Error::Server(e)) => (e.code, e.state, e.message),
        other => panic!("expected a server error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_grants_and_audit_over_the_mysql_protocol() {
    let spec = ClusterSpec { sql_nodes: 2, ..ClusterSpec::default() };
    let cluster = Cluster::start(spec).await.expect("cluster starts");
    let mut root = Conn::new(opts(&cluster, 0, "root", "")).await.expect("passwordless root from the test config");
    for sql in [
        "CREATE DATABASE calmail",
        "CREATE DATABASE secret",
        "CREATE TABLE calmail.account (id INT PRIMARY KEY, email VARCHAR(100))",
        "INSERT INTO calmail.account VALUES (1, 'a@x.org'), (2, 'b@x.org')",
        "CREATE USER 'exim'@'127.0.0.%' IDENTIFIED BY 'exim-pw'",
        "GRANT SELECT ON calmail.* TO 'exim'@'127.0.0.%'",
        "CREATE USER 'dovecot'@'%' IDENTIFIED WITH caching_sha2_password BY 'dove-pw'",
        "GRANT SELECT ON calmail.account TO 'dovecot'@'%'",
        "CREATE USER 'far'@'10.%' IDENTIFIED BY 'far-pw'",
    ] {
        root.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    // The account limited to SELECT ON calmail.* reads, cannot write, sees only calmail, on
    // either SQL node (the catalog is the cluster's).
    for k in 0..2 {
        let mut exim = Conn::new(opts(&cluster, k, "exim", "exim-pw")).await.expect("exim logs in");
        let emails: Vec<String> = exim.query("SELECT email FROM calmail.account ORDER BY id").await.unwrap();
        assert_eq!(emails, ["a@x.org", "b@x.org"]);
        let (code, state, _) = server_error(exim.query_drop("INSERT INTO calmail.account VALUES (3, 'c@x.org')").await);
        assert_eq!((code, state.as_str()), (1142, "42000"));
        let dbs: Vec<String> = exim.query("SHOW DATABASES").await.unwrap();
        assert!(dbs.contains(&"calmail".to_string()) && !dbs.contains(&"secret".to_string()), "{dbs:?}");
        exim.disconnect().await.unwrap();
    }

    // A wrong password, an unknown user and a host the account does not admit: 1045/28000
    // with MySQL's message.
    let (code, state, message) = server_error(Conn::new(opts(&cluster, 0, "exim", "wrong")).await);
    assert_eq!((code, state.as_str()), (1045, "28000"));
    assert_eq!(message, "Access denied for user 'exim'@'127.0.0.1' (using password: YES)");
    assert_eq!(server_error(Conn::new(opts(&cluster, 1, "nobody", "")).await).0, 1045);
    assert_eq!(server_error(Conn::new(opts(&cluster, 0, "far", "far-pw")).await).0, 1045);

    // caching_sha2_password: the server switches the client to the account's plugin and
    // checks the fast-path answer.
    let mut dovecot = Conn::new(opts(&cluster, 1, "dovecot", "dove-pw")).await.expect("caching_sha2 login");
    let n: Option<u64> = dovecot.query_first("SELECT COUNT(*) FROM calmail.account").await.unwrap();
    assert_eq!(n, Some(2));
    assert_eq!(server_error(Conn::new(opts(&cluster, 1, "dovecot", "dove-pW")).await).0, 1045);

    // COM_CHANGE_USER checks the password: the right one switches accounts, a wrong one fails.
    dovecot
        .change_user(ChangeUserOpts::default().with_user(Some("exim".into())).with_pass(Some("exim-pw".into())))
        .await
        .expect("change to exim");
    let current: Option<String> = dovecot.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert!(current.is_some_and(|u| u.starts_with("exim@")));
    let failed = dovecot
        .change_user(ChangeUserOpts::default().with_user(Some("exim".into())).with_pass(Some("nope".into())))
        .await;
    assert!(failed.is_err(), "a wrong password in COM_CHANGE_USER is refused");

    // A REVOKE on one SQL node takes effect on the other within a second.
    let mut exim1 = Conn::new(opts(&cluster, 1, "exim", "exim-pw")).await.unwrap();
    exim1.query_drop("SELECT email FROM calmail.account WHERE id = 1").await.unwrap();
    root.query_drop("REVOKE SELECT ON calmail.* FROM 'exim'@'127.0.0.%'").await.unwrap();
    let revoked = Instant::now();
    loop {
        match exim1.query_drop("SELECT email FROM calmail.account WHERE id = 1").await {
            Err(Error::Server(e)) if e.code == 1142 => break,
            Ok(()) if revoked.elapsed() < Duration::from_secs(1) => tokio::time::sleep(Duration::from_millis(20)).await,
            other => panic!("the revoke did not reach SQL node 1 within a second: {other:?}"),
        }
    }

    // Each login, failed login and catalog change leaves an audit line with user, host and node.
    let log = std::fs::read_to_string(cluster.log_path(100)).unwrap_or_default();
    let audit: Vec<&str> = log.lines().filter(|l| l.contains("audit")).collect();
    assert!(audit.iter().any(|l| l.contains("login_failed") && l.contains("exim") && l.contains("node=100")), "{audit:#?}");
    assert!(audit.iter().any(|l| l.contains("event=\"login\"") && l.contains("user=\"root\"")), "{audit:#?}");
    assert!(audit.iter().any(|l| l.contains("ACCOUNTS revoke SELECT")), "{audit:#?}");
}

/// caching_sha2_password's full authentication on a plain connection: the SQL node's RSA key
/// (generated at start) is shown in SHOW STATUS, clients fetch it and send the password
/// encrypted with it. With `CachingSha2PasswordFastAuthCache` the node keeps MySQL's
/// fast-authentication cache, so the first login of each account (and the first after a
/// password change) must take this path: a broken exchange fails the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_sha2_full_authentication_without_tls_uses_the_nodes_rsa_key() {
    let spec = ClusterSpec { sql_node_extra: "CachingSha2PasswordFastAuthCache = true".into(), ..ClusterSpec::default() };
    let cluster = Cluster::start(spec).await.expect("cluster starts");
    let mut root = Conn::new(opts(&cluster, 0, "root", "")).await.expect("passwordless root");
    for sql in [
        "CREATE USER 'postmaster'@'%' IDENTIFIED WITH caching_sha2_password BY 'pm-pw'",
        "CREATE USER 'cli'@'%' IDENTIFIED WITH caching_sha2_password BY 'cli-pw'",
    ] {
        root.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    // The key is generated in the background at start; it shows once it exists.
    let deadline = Instant::now() + Duration::from_secs(60);
    let key = loop {
        let row: Option<(String, String)> =
            root.query_first("SHOW STATUS LIKE 'Caching_sha2_password_rsa_public_key'").await.unwrap();
        let (_, key) = row.expect("the status variable exists");
        if !key.is_empty() || Instant::now() > deadline {
            break key;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(key.starts_with("-----BEGIN PUBLIC KEY-----\n") && key.trim_end().ends_with("-----END PUBLIC KEY-----"), "{key}");

    // mysql_async (its own RSA-OAEP code): a wrong password through the full path is 1045; the
    // right one logs in though the account is not in the cache yet.
    let (code, state, _) = server_error(Conn::new(opts(&cluster, 0, "postmaster", "wrong")).await);
    assert_eq!((code, state.as_str()), (1045, "28000"));
    let mut postmaster = Conn::new(opts(&cluster, 0, "postmaster", "pm-pw")).await.expect("login through the RSA exchange");
    let user: Option<String> = postmaster.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert_eq!(user.as_deref(), Some("postmaster@%"));
    postmaster.disconnect().await.unwrap();
    // A changed password is not in the cache: the next login takes the full path again.
    root.query_drop("SET PASSWORD FOR 'postmaster'@'%' = 'pm-pw-2'").await.unwrap();
    Conn::new(opts(&cluster, 0, "postmaster", "pm-pw-2")).await.expect("new password through RSA").disconnect().await.unwrap();
    Conn::new(opts(&cluster, 0, "postmaster", "pm-pw-2")).await.expect("then the fast path").disconnect().await.unwrap();

    // The mariadb CLI (libmariadb asks for the key by itself) without TLS.
    let port = cluster.mysql_port(0).to_string();
    let cli = |password: &str| {
        std::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", &port, "-u", "cli", "--skip-ssl", "--batch", "--skip-column-names", "-e", "SELECT CURRENT_USER()"])
            .arg(format!("-p{password}"))
            .output()
    };
    match cli("wrong") {
        Ok(wrong) => {
            let stderr = String::from_utf8_lossy(&wrong.stderr);
            assert!(!wrong.status.success() && stderr.contains("ERROR 1045 (28000)"), "{stderr}");
            let right = cli("cli-pw").expect("the CLI runs");
            let (stdout, stderr) = (String::from_utf8_lossy(&right.stdout), String::from_utf8_lossy(&right.stderr));
            assert!(right.status.success() && stdout.trim() == "cli@%", "mariadb CLI: {stdout} {stderr}");
        }
        Err(e) => println!("SKIPPED the mariadb CLI check: {e}"),
    }

    // The audit trail tells full authentications from fast ones.
    let log = std::fs::read_to_string(cluster.log_path(100)).unwrap_or_default();
    let logins: Vec<&str> = log.lines().filter(|l| l.contains("audit") && l.contains("event=\"login\"")).collect();
    let full = |user: &str| logins.iter().filter(|l| l.contains(&format!("user=\"{user}\"")) && l.contains("full_authentication=true")).count();
    assert_eq!(full("postmaster"), 2, "{logins:#?}");
    if which_mariadb() {
        assert_eq!(full("cli"), 1, "{logins:#?}");
    }
}

fn which_mariadb() -> bool {
    std::process::Command::new("mariadb").arg("--version").output().is_ok_and(|o| o.status.success())
}
