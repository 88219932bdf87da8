//! The mariadb/mysql command-line client (libmariadb, classic EOF framing) in batch mode
//! against the dummy handler. Skipped with a printed reason when neither binary is installed
//! (`apt-get install mariadb-client` provides it).

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::TestServer;
use tokio::process::Command;

fn cli() -> Option<PathBuf> {
    ["/usr/bin/mariadb", "/usr/bin/mysql"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

async fn run_cli(binary: &PathBuf, port: u16, args: &[&str]) -> (bool, String, String) {
    let port = port.to_string();
    let mut command = Command::new(binary);
    command
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port,
            "-u",
            "root",
            "-psecret",
            "--default-character-set=utf8mb4",
        ])
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the client finished within 60 s")
        .expect("the client ran");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_batch_session() {
    let Some(binary) = cli() else {
        println!("SKIPPED: no mariadb or mysql client installed");
        return;
    };
    let server = TestServer::start().await;
    let port = server.port();

    let (ok, out, err) = run_cli(
        &binary,
        port,
        &["calmail", "--batch", "-e", "select * from t"],
    )
    .await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "id\tname\tprice\tcreated\tdata\tbig\tratio\tborn\tdur"
    );
    assert!(
        lines[1].starts_with("1\talice\t12.50\t2024-02-29 13:14:15\t"),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with("\t18446744073709551615\t0.5\t2000-01-01\t01:02:03.000000"),
        "{}",
        lines[1]
    );
    assert_eq!(
        lines[3],
        "3\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL\tNULL"
    );

    // The CLI turns `use` into COM_INIT_DB and splits the script itself.
    let (ok, out, err) = run_cli(
        &binary,
        port,
        &["--batch", "-e", "use test; select database(); select 1"],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(out, "DATABASE()\ntest\n1\n1\n");

    // Errors reach the user as `ERROR code (state) at line N: message`, exit status 1.
    let (ok, _, err) = run_cli(&binary, port, &["calmail", "-e", "select 1; insert dup"]).await;
    assert!(!ok);
    assert!(
        err.contains("ERROR 1062 (23000) at line 1: Duplicate entry '1' for key 't.PRIMARY'"),
        "{err}"
    );

    let (ok, _, err) = run_cli(&binary, port, &["nosuchdb", "-e", "select 1"]).await;
    assert!(!ok);
    assert!(
        err.contains("ERROR 1049 (42000): Unknown database 'nosuchdb'"),
        "{err}"
    );

    // A script on stdin, with a multi-statement line and an OK packet with info text.
    let port_text = port.to_string();
    let mut child = Command::new(&binary)
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port_text,
            "-u",
            "root",
            "-psecret",
            "calmail",
            "-vvv",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the client");
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(b"insert into t values (1), (2), (3);\nstream 1000;\n")
            .await
            .unwrap();
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    assert!(out.contains("Query OK, 3 rows affected"), "{out}");
    assert!(
        out.contains("Records: 3  Duplicates: 0  Warnings: 0"),
        "{out}"
    );
    assert!(out.contains("1000 rows in set"), "{out}");
    let results = server.finish().await;
    assert_eq!(
        results.iter().filter(|r| r.is_err()).count(),
        1,
        "only the unknown database: {results:?}"
    );
}

/// `caching_sha2_password` without TLS: libmariadb's caching_sha2_password plugin asks for the
/// server's RSA key on its own and sends the password encrypted with it. The account is not in
/// the server's fast-authentication cache, so the first login must take that path.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_full_authentication_through_the_rsa_key_exchange() {
    let Some(binary) = cli() else {
        println!("SKIPPED: no mariadb or mysql client installed");
        return;
    };
    let (addr, gate) = common::caching_sha2::start(Some(common::caching_sha2::key_source())).await;
    let port = addr.port().to_string();
    let login = |password: &str| {
        let mut command = Command::new(&binary);
        command
            .args(["-h", "127.0.0.1", "-P", &port, "-u", common::caching_sha2::USER, "--skip-ssl", "--batch", "-e", "do 1"])
            .arg(format!("-p{password}"))
            .kill_on_drop(true);
        command
    };
    let wrong = tokio::time::timeout(Duration::from_secs(60), login("wrong").output()).await.expect("in time").expect("ran");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success() && stderr.contains("1045") && stderr.contains("28000"), "{stderr}");
    let right = tokio::time::timeout(Duration::from_secs(60), login(common::caching_sha2::PASSWORD).output()).await.expect("in time").expect("ran");
    let stderr = String::from_utf8_lossy(&right.stderr);
    assert!(right.status.success(), "the CLI logged in through the RSA exchange: {stderr}");
    let full: Vec<bool> = gate.attempts.lock().unwrap().iter().filter(|a| a.cleartext).map(|a| a.accepted).collect();
    assert_eq!(full, [false, true], "a wrong and a right password, each through the RSA exchange");
}
