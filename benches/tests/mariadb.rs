//! Runs every workload briefly against a private MariaDB, in both protocols, and checks that each
//! made progress without a single error (every answer is verified, so zero errors also means the
//! data set, the statements and the expectations agree).
//!
//! Needs MariaDB (scripts/mariadb/start.sh installs it from Debian's packages as root), so it runs
//! only with `MARIADB_TESTS=1`; otherwise it says why and passes without doing anything.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use cairn_bench::run::RunConfig;
use cairn_bench::{Protocol, Workload};

/// A MariaDB instance from start.sh, stopped (and its directory removed) when dropped, also when
/// an assertion fails.
struct MariaDb {
    port: u16,
    datadir: String,
}

fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("scripts")
        .join("mariadb")
}

impl MariaDb {
    fn start() -> Self {
        let output = Command::new(scripts_dir().join("start.sh"))
            .output()
            .expect("start.sh should run");
        assert!(
            output.status.success(),
            "start.sh failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let line = stdout.lines().last().unwrap_or_default();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|pair| pair.strip_prefix(name))
                .unwrap_or_else(|| panic!("start.sh printed no {name} in '{line}'"))
                .to_owned()
        };
        let port = field("PORT=").parse().expect("PORT= should be a number");
        Self {
            port,
            datadir: field("DATADIR="),
        }
    }

    fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}/", self.port)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        let status = Command::new(scripts_dir().join("stop.sh"))
            .arg(&self.datadir)
            .status();
        if !matches!(status, Ok(status) if status.success()) {
            eprintln!("stop.sh failed for {}: {status:?}", self.datadir);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_cleanly_against_mariadb() {
    if std::env::var("MARIADB_TESTS").as_deref() != Ok("1") {
        eprintln!("skipped: set MARIADB_TESTS=1 to run the workloads against a private MariaDB");
        return;
    }
    let server = MariaDb::start();
    for protocol in [Protocol::Binary, Protocol::Text] {
        for workload in Workload::ALL {
            let mut config = RunConfig::new(server.url(), workload);
            config.protocol = protocol;
            config.connections = 4;
            config.duration = Duration::from_secs(1);
            config.warmup = Duration::from_millis(200);
            config.rows = 2_000;
            let report = cairn_bench::run(&config)
                .await
                .unwrap_or_else(|error| panic!("{workload} ({protocol}) could not run: {error}"));
            eprint!("{report}");
            assert!(report.ops > 0, "{workload} ({protocol}) made no progress");
            assert_eq!(
                report.errors + report.warmup_errors,
                0,
                "{workload} ({protocol}) had errors: {:?}",
                report.error_samples
            );
            assert!(report.latency_us.p50 > 0.0 && report.latency_us.p50 <= report.latency_us.max);
        }
    }

    // The checks must be able to fail: a data set smaller than the generator assumes has to
    // produce wrong-result errors, not a clean run.
    let mut config = RunConfig::new(server.url(), Workload::PointSelect);
    config.connections = 2;
    config.duration = Duration::from_millis(500);
    config.warmup = Duration::ZERO;
    config.rows = 4_000;
    config.setup = false;
    let report = cairn_bench::run(&config)
        .await
        .expect("the run itself should work");
    assert!(
        report.errors > 0,
        "rows beyond the 2000 loaded must be reported missing"
    );
    assert!(
        report
            .error_samples
            .samples()
            .iter()
            .any(|sample| sample.message.contains("expected 1 row(s), got 0")),
        "{:?}",
        report.error_samples
    );
}
