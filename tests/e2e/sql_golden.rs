//! The golden SQL suite (`tests/sql/*.test`) over the MySQL protocol against a real cluster of
//! two node groups (four data nodes, two replicas each): every script in its own database,
//! through mysql_async. `UPDATE_GOLDEN=1` rewrites the scripts' expectations from the answers.
//! Scripts named `*.pending.test` are skipped (they wait for a feature; see their header).

use std::path::Path;

use cairn_e2e::sqltest;
use cairn_e2e::{Cluster, ClusterSpec};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn golden_sql_over_the_mysql_protocol() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql");
    // `GOLDEN_ONLY=14_` runs the scripts whose name holds that text (while working on them).
    let only = std::env::var("GOLDEN_ONLY").ok();
    let mut scripts: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/sql exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "test") && !p.to_string_lossy().ends_with(".pending.test"))
        .filter(|p| only.as_ref().is_none_or(|o| p.to_string_lossy().contains(o.as_str())))
        .collect();
    scripts.sort();
    assert!(!scripts.is_empty());
    let cluster = Cluster::start(ClusterSpec { data_nodes: 4, replicas: 2, ..Default::default() }).await.unwrap();
    let pool = cluster.pool(0, None);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failures = Vec::new();
    let mut statements = 0;
    for path in &scripts {
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(path).unwrap();
        let records = sqltest::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let run = sqltest::run(&pool, &format!("g_{name}"), &records).await.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        statements += run.statements;
        if update {
            std::fs::write(path, sqltest::render(&run.actual)).unwrap();
        }
        for f in run.failures {
            failures.push(format!("{name}.test {f}"));
        }
    }
    pool.disconnect().await.unwrap();
    eprintln!("golden SQL: {} scripts, {statements} statements", scripts.len());
    assert!(failures.is_empty(), "{} differences (UPDATE_GOLDEN=1 rewrites; review the diff):\n{}", failures.len(), failures.join("\n"));
    assert!(only.is_some() || statements >= 500, "the suite should run at least 500 statements, it ran {statements}");
}
