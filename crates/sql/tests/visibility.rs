//! What an account may see of the catalog: information_schema and SHOW PROCESSLIST are filtered
//! by its privileges as MySQL filters them (an account limited to SELECT ON calmail.* sees
//! nothing of another database anywhere; without PROCESS only its own threads).

use std::sync::Arc;

use cairn_common::Value;
use cairn_common::accounts::AccountName;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, ManualClock, Outcome, Session, SessionInfo};

async fn rows(session: &mut Session<MemoryCluster>, sql: &str) -> Vec<Vec<String>> {
    let mut outcomes = session.execute(sql).await;
    let Some(Outcome::Rows { rows, .. }) = outcomes.pop() else { panic!("{sql}: no rows") };
    let rows = rows.collect().await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.into_iter().map(|r| r.iter().map(|v: &Value| v.to_text().into_owned()).collect()).collect()
}

fn column(rows: &[Vec<String>]) -> Vec<String> {
    rows.iter().map(|r| r[0].clone()).collect()
}

#[test]
fn an_account_limited_to_one_database_sees_only_it() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let config = EngineConfig { clock: Arc::new(ManualClock::new(1_700_000_000_000_000)), ..EngineConfig::default() };
    let engine = Engine::new(MemoryCluster::new(2), config);
    rt.block_on(async {
        let mut root = Session::new(engine.clone(), SessionInfo::default());
        for sql in [
            "CREATE DATABASE calmail",
            "CREATE DATABASE secret",
            "CREATE TABLE calmail.account (id INT PRIMARY KEY, email VARCHAR(100))",
            "CREATE TABLE secret.keys (id INT PRIMARY KEY, k VARCHAR(100))",
            "CREATE USER 'exim'@'127.0.0.%'",
            "GRANT SELECT ON calmail.* TO 'exim'@'127.0.0.%'",
        ] {
            let outcome = root.execute(sql).await.pop().expect("an outcome");
            assert!(!outcome.is_error(), "{sql}: {outcome:?}");
        }
        let info = SessionInfo {
            user: "exim".into(),
            host: "127.0.0.5".into(),
            connection_id: 7,
            account: Some(AccountName::new("exim", "127.0.0.%")),
            ..SessionInfo::default()
        };
        let mut exim = Session::new(engine.clone(), info);
        let databases = column(&rows(&mut exim, "SHOW DATABASES").await);
        assert!(databases.contains(&"calmail".into()) && !databases.contains(&"secret".into()), "{databases:?}");
        let schemata = column(&rows(&mut exim, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA").await);
        assert!(schemata.contains(&"calmail".into()) && !schemata.contains(&"secret".into()), "{schemata:?}");
        let tables = rows(&mut exim, "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA <> 'information_schema'").await;
        assert_eq!(tables, [vec!["calmail".to_string(), "account".to_string()]]);
        let columns = column(&rows(&mut exim, "SELECT DISTINCT TABLE_SCHEMA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA <> 'information_schema'").await);
        assert_eq!(columns, ["calmail"]);
        // Root sees both.
        let all = column(&rows(&mut root, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA").await);
        assert!(all.contains(&"secret".into()), "{all:?}");

        // Without PROCESS, only the account's own threads.
        let own = rows(&mut exim, "SHOW PROCESSLIST").await;
        assert!(!own.is_empty() && own.iter().all(|r| r[1] == "exim"), "{own:?}");
        let own = column(&rows(&mut exim, "SELECT USER FROM information_schema.PROCESSLIST").await);
        assert!(!own.is_empty() && own.iter().all(|u| u == "exim"), "{own:?}");
        let every = rows(&mut root, "SHOW PROCESSLIST").await;
        assert!(every.len() >= 2, "{every:?}");
    });
}
