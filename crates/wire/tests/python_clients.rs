//! PyMySQL and mysql-connector-python (pure Python, and its C extension when it loads), and
//! PyMySQL over TLS with an SSLContext verifying a test CA, against
//! the dummy handler; and PyMySQL's `caching_sha2_password` full authentication without TLS
//! (the RSA key exchange, with the `cryptography` package).
//!
//! How it runs: the first run creates a virtualenv under cargo's per-test temporary directory
//! (`target-*/tmp/python-clients-venv`) and pip-installs `PyMySQL` and
//! `mysql-connector-python` from PyPI; later runs reuse it. If Python, venv or pip is missing
//! or PyPI cannot be reached, the test prints `SKIPPED: <reason>` and passes, so it never
//! fails for want of network. Run it alone with
//! `cargo test -p cairn-wire --test python_clients -- --nocapture`.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestServer;
use tokio::process::Command;

const SCRIPT: &str = r#"
import datetime, decimal, io, sys

port = int(sys.argv[1])
tricky = sys.argv[2]

import pymysql
from pymysql.constants import CLIENT

conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="secret",
                       database="calmail", client_flag=CLIENT.MULTI_STATEMENTS)
cur = conn.cursor()
cur.execute("select 1")
assert cur.fetchall() == ((1,),)
cur.execute("select * from t")
rows = cur.fetchall()
assert [d[1] for d in cur.description] == [8, 253, 246, 12, 252, 8, 5, 10, 11], cur.description
assert rows[0] == (1, "alice", decimal.Decimal("12.50"), datetime.datetime(2024, 2, 29, 13, 14, 15),
                   b"\xff\x00", 2**64 - 1, 0.5, datetime.date(2000, 1, 1),
                   datetime.timedelta(hours=1, minutes=2, seconds=3)), rows[0]
assert rows[1][1] == tricky and rows[1][2] == decimal.Decimal("-0.01") and rows[1][4] == b"", rows[1]
assert rows[1][8] == -datetime.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=500000), rows[1][8]
assert rows[2] == (3,) + (None,) * 8, rows[2]
cur.execute("insert into t values (1), (2), (3)")
assert cur.rowcount == 3 and cur.lastrowid == 42, (cur.rowcount, cur.lastrowid)
try:
    cur.execute("insert dup")
    raise SystemExit("no IntegrityError")
except pymysql.err.IntegrityError as e:
    assert e.args[0] == 1062, e.args
cur.execute("select %s", (b"\xff\xfe'\x00",))
assert cur.fetchall() == ((b"\xff\xfe'\x00",),), "bytes travel as a hex literal"
cur.execute("select 1; select * from t")
assert cur.fetchall() == ((1,),)
assert cur.nextset()
assert len(cur.fetchall()) == 3
assert not cur.nextset()
conn.ping()
assert conn.get_autocommit() is False, "PyMySQL turned autocommit off and saw the status flag"
conn.begin()
cur.execute("select 1")
cur.fetchall()
assert conn.server_status & 1, "IN_TRANS after a SELECT inside a transaction"
conn.commit()
conn.select_db("test")
cur.execute("select database()")
assert cur.fetchone() == ("test",)
try:
    conn.select_db("nope")
    raise SystemExit("no OperationalError")
except pymysql.err.OperationalError as e:
    assert e.args[0] == 1049, e.args
conn.close()
try:
    pymysql.connect(host="127.0.0.1", port=port, user="root", password="wrong")
    raise SystemExit("bad password accepted")
except pymysql.err.OperationalError as e:
    assert e.args[0] == 1045, e.args
print("pymysql ok")

def connector_session(use_pure):
    import mysql.connector
    cn = mysql.connector.connect(host="127.0.0.1", port=port, user="root", password="secret",
                                 database="calmail", use_pure=use_pure)
    assert cn.is_connected()
    cur = cn.cursor(prepared=True)
    cur.execute("select * from t where id = ?", (1,))
    row = cur.fetchone()
    assert row[0] == 1 and row[1] == "alice" and row[3] == datetime.datetime(2024, 2, 29, 13, 14, 15), row
    assert bytes(row[4]) == b"\xff\x00", row[4]
    cur.fetchall()
    for _ in range(3):
        # COM_STMT_RESET before each re-execute, as the connector does.
        cur.execute("select * from t where id = ?", (2,))
        assert cur.fetchall()[0][1] == tricky
    values = (-2**63, 2**63 - 1, "😀 'q' \"d\" \\", None, 1.5, decimal.Decimal("-12.34"),
              datetime.datetime(2024, 2, 29, 23, 59, 58, 123456), "")
    if use_pure:
        values += (2**64 - 1,)
    cur.execute("select " + ", ".join("?" * len(values)), values)
    got = cur.fetchone()
    assert got[:5] == values[:5], got
    assert str(got[5]) in ("-12.34",) or got[5] == b"-12.34", got[5]
    assert got[6] == values[6], got[6]
    assert got[7] == "", got[7]
    if use_pure:
        assert got[8] == 2**64 - 1, got[8]
    # A 100 KB parameter; the pure connector sends a file-like one with COM_STMT_SEND_LONG_DATA
    # (what crashed opensrv 0.7.0), the C extension takes only plain bytes.
    blob = b"L" * 100_000
    cur.execute("select ?", (io.BytesIO(blob) if use_pure else blob,))
    got = cur.fetchone()[0]
    assert bytes(got) == blob if not isinstance(got, str) else got.encode() == blob, len(got)
    for sql, params, errno, state in [("fail ?", (1,), 1062, "23000"), ("select * from missing", (), 1146, "42S02")]:
        try:
            cur.execute(sql, params)
            raise SystemExit("no error from " + sql)
        except mysql.connector.Error as e:
            assert (e.errno, e.sqlstate) == (errno, state), (e.errno, e.sqlstate)
    plain = cn.cursor()
    plain.execute("select 1")
    assert plain.fetchall() == [(1,)]
    cn.ping()
    cn.cmd_reset_connection()
    cn.cmd_change_user(username="bob", password="bobpw", database="test")
    plain = cn.cursor()
    plain.execute("select current_user()")
    assert plain.fetchall()[0][0] == "bob@%"
    try:
        cn.cmd_change_user(username="bob", password="wrong")
        raise SystemExit("bad change_user accepted")
    except mysql.connector.Error as e:
        assert e.errno == 1045, e.errno
    print("mysql-connector (%s) ok" % ("pure" if use_pure else "C extension"))

connector_session(True)
try:
    import _mysql_connector  # noqa: F401  (must load before mysql.connector, CLIENTS.md §1.1)
    have_cext = True
except ImportError as e:
    print("mysql-connector C extension unavailable:", e)
    have_cext = False
if have_cext:
    connector_session(False)
"#;

/// PyMySQL over TLS with an `ssl.SSLContext` that verifies the server against the test CA; a
/// context that does not trust that CA must refuse the server.
const TLS_SCRIPT: &str = r#"
import ssl, sys
import pymysql

port, ca = int(sys.argv[1]), sys.argv[2]
context = ssl.create_default_context(cafile=ca)
conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="secret", ssl=context)
cur = conn.cursor()
cur.execute("select 1")
assert cur.fetchall() == ((1,),)
assert conn._sock.version() in ("TLSv1.2", "TLSv1.3"), conn._sock.version()
conn.close()
untrusting = ssl.create_default_context()
try:
    pymysql.connect(host="127.0.0.1", port=port, user="root", password="secret", ssl=untrusting)
    raise SystemExit("a server certificate from an unknown CA was accepted")
except pymysql.err.OperationalError:
    pass
print("pymysql tls ok")
"#;

/// A CA and a server certificate for 127.0.0.1 in `dir`: (ca.pem, server.pem, server-key.pem).
fn test_certificates(dir: &Path) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    // Distinct subject names: with rcgen's default name on both, OpenSSL would take the server's
    // certificate for a self-signed one (its issuer equal to its subject) and refuse it.
    let named = |sans: Vec<String>, name: &str| {
        let mut params = CertificateParams::new(sans).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params
    };
    let mut params = named(Vec::new(), "Cairn test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let server = named(vec!["127.0.0.1".to_string(), "localhost".to_string()], "127.0.0.1").signed_by(&key, &*ca).unwrap();
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    std::fs::write(path("ca.pem"), ca.pem()).unwrap();
    std::fs::write(path("server.pem"), server.pem()).unwrap();
    std::fs::write(path("server-key.pem"), key.serialize_pem()).unwrap();
    (path("ca.pem"), path("server.pem"), path("server-key.pem"))
}

async fn run(
    program: &Path,
    args: &[&str],
    limit: Duration,
) -> Result<std::process::Output, String> {
    run_with_env(program, args, limit, None).await
}

async fn run_with_env(
    program: &Path,
    args: &[&str],
    limit: Duration,
    library_path: Option<&Path>,
) -> Result<std::process::Output, String> {
    let mut command = Command::new(program);
    command.args(args).kill_on_drop(true);
    if let Some(dir) = library_path {
        command.env("LD_LIBRARY_PATH", dir);
    }
    let child = command.output();
    match tokio::time::timeout(limit, child).await {
        Err(_) => Err(format!("{} timed out", program.display())),
        Ok(Err(e)) => Err(format!("{} could not run: {e}", program.display())),
        Ok(Ok(output)) => Ok(output),
    }
}

/// A venv with both drivers, or the reason there is none.
async fn venv() -> Result<PathBuf, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-clients-venv");
    let python = dir.join("bin/python");
    let probe = ["-c", "import pymysql, mysql.connector, cryptography"];
    if let Ok(out) = run(&python, &probe, Duration::from_secs(60)).await
        && out.status.success()
    {
        return Ok(python);
    }
    let dir_text = dir.to_string_lossy().into_owned();
    let created = run(
        Path::new("python3"),
        &["-m", "venv", &dir_text],
        Duration::from_secs(120),
    )
    .await?;
    if !created.status.success() {
        return Err(format!(
            "python3 -m venv failed: {}",
            String::from_utf8_lossy(&created.stderr)
        ));
    }
    let pip = dir.join("bin/pip");
    let args = [
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "PyMySQL",
        "mysql-connector-python",
        // PyMySQL's RSA key exchange for caching_sha2_password without TLS needs it.
        "cryptography",
    ];
    let installed = run(&pip, &args, Duration::from_secs(300)).await?;
    if !installed.status.success() {
        return Err(format!(
            "pip install failed: {}",
            String::from_utf8_lossy(&installed.stderr)
        ));
    }
    Ok(python)
}

/// `<venv>/lib/python3.X/site-packages/mysql/vendor`, if the connector wheel has one.
fn vendored_openssl(python: &Path) -> Option<PathBuf> {
    let lib = python.parent()?.parent()?.join("lib");
    std::fs::read_dir(lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("site-packages/mysql/vendor"))
        .find(|dir| dir.join("libssl.so.3").exists())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pymysql_and_mysql_connector_sessions() {
    let python = match venv().await {
        Ok(python) => python,
        Err(reason) => {
            println!("SKIPPED: {reason}");
            return;
        }
    };
    let script = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python_clients_session.py");
    std::fs::write(&script, SCRIPT).expect("write the script");
    let server = TestServer::start().await;
    let port = server.port().to_string();
    let script_text = script.to_string_lossy().into_owned();
    // The connector's C extension needs the OpenSSL it vendors, newer than Debian 12's
    // (CLIENTS.md §1.1); pointing the loader at it lets the extension load.
    let vendor = vendored_openssl(&python);
    let args = [script_text.as_str(), port.as_str(), common::TRICKY_NAME];
    let output = run_with_env(&python, &args, Duration::from_secs(120), vendor.as_deref())
        .await
        .expect("run the python session");
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}{stderr}");
    assert!(
        output.status.success(),
        "python session failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("pymysql ok") && stdout.contains("mysql-connector (pure) ok"));
    // Failed logins and change-users end their connections with an error; nothing panics.
    server.finish().await;

    // The same driver over TLS (in this test rather than its own, so that two tests never
    // build the virtualenv at once).
    let certificates = tempfile::tempdir().expect("temporary directory");
    let (ca, cert, key) = test_certificates(certificates.path());
    let tls = cairn_wire::tls::server_config(&cert, &key, None).expect("TLS config");
    let server = TestServer::with_options(cairn_wire::ServerOptions { tls: Some(tls), ..Default::default() }).await;
    let script = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python_clients_tls.py");
    std::fs::write(&script, TLS_SCRIPT).expect("write the script");
    let script_text = script.to_string_lossy().into_owned();
    let port = server.port().to_string();
    let output = run(&python, &[script_text.as_str(), port.as_str(), ca.as_str()], Duration::from_secs(60))
        .await
        .expect("run the python TLS session");
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.contains("pymysql tls ok"), "python TLS session failed:\n{stdout}\n{stderr}");
    server.finish().await;

    // caching_sha2_password's full authentication without TLS: PyMySQL asks for the server's
    // RSA key and sends the password encrypted with it (with the `cryptography` package). The
    // account is not in the server's fast-authentication cache, so the first login must take
    // that path; a wrong password goes through it too and must get 1045.
    let (addr, gate) = common::caching_sha2::start(Some(common::caching_sha2::key_source())).await;
    let script = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python_clients_rsa.py");
    std::fs::write(&script, RSA_SCRIPT).expect("write the script");
    let script_text = script.to_string_lossy().into_owned();
    let port = addr.port().to_string();
    let args = [script_text.as_str(), port.as_str(), common::caching_sha2::USER, common::caching_sha2::PASSWORD];
    let output = run(&python, &args, Duration::from_secs(60)).await.expect("run the python RSA session");
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && stdout.contains("pymysql rsa ok"), "python RSA session failed:\n{stdout}\n{stderr}");
    let full: Vec<bool> = gate.attempts.lock().unwrap().iter().filter(|a| a.cleartext).map(|a| a.accepted).collect();
    assert_eq!(full, [false, true], "a wrong and a right password, each through the RSA exchange");
}

const RSA_SCRIPT: &str = r#"
import sys
import pymysql

# As bytes: PyMySQL encodes a str password as latin-1, the test password is UTF-8 (as the other
# clients send it).
port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode()
try:
    pymysql.connect(host="127.0.0.1", port=port, user=user, password="wrong")
    raise SystemExit("a wrong password was accepted")
except pymysql.err.OperationalError as e:
    assert e.args[0] == 1045, e.args
conn = pymysql.connect(host="127.0.0.1", port=port, user=user, password=password)
assert conn.server_public_key and conn.server_public_key.startswith(b"-----BEGIN PUBLIC KEY-----"), conn.server_public_key
conn.cursor().execute("do 1")
conn.close()
# Now in the cache: the fast path.
pymysql.connect(host="127.0.0.1", port=port, user=user, password=password).close()
print("pymysql rsa ok")
"#;
