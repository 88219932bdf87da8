//! Accounts and privileges against the in-process cluster: account statements, GRANT/REVOKE,
//! and the checks every statement goes through for a session logged in as an account. (Logins
//! over the MySQL protocol are tested end to end in tests/e2e/security.rs.)

use std::sync::Arc;

use cairn_common::Value;
use cairn_common::accounts::AccountName;
use cairn_sql::testing::MemoryCluster;
use cairn_sql::{Engine, EngineConfig, Outcome, Session, SessionInfo};

type Cl = MemoryCluster;

/// A session logged in as `'user'@'account_host'` from `client_host`.
fn login(engine: &Arc<Engine<Cl>>, user: &str, account_host: &str, client_host: &str) -> Session<Cl> {
    let info = SessionInfo {
        user: user.into(),
        host: client_host.into(),
        account: Some(AccountName::new(user, account_host)),
        ..SessionInfo::default()
    };
    Session::new(engine.clone(), info)
}

async fn ok(session: &mut Session<Cl>, sql: &str) {
    for outcome in session.execute(sql).await {
        if let Outcome::Error(e) = outcome {
            panic!("{sql}: {} {}", e.code(), e.message);
        }
    }
}

/// The error code and message of a statement that must fail.
async fn fails(session: &mut Session<Cl>, sql: &str) -> (u16, String) {
    match session.execute(sql).await.pop() {
        Some(Outcome::Error(e)) => (e.code(), e.message),
        other => panic!("{sql} should fail, got {other:?}"),
    }
}

async fn rows(session: &mut Session<Cl>, sql: &str) -> Vec<Vec<String>> {
    match session.execute(sql).await.pop() {
        Some(Outcome::Rows { rows, .. }) => rows
            .collect()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.into_iter().map(|v| if v == Value::Null { "NULL".into() } else { v.to_text().into_owned() }).collect())
            .collect(),
        other => panic!("{sql}: {other:?}"),
    }
}

/// A cluster with root@% (every privilege) and a calmail database, as root's session.
async fn setup() -> (Arc<Engine<Cl>>, Session<Cl>) {
    let engine = Engine::new(MemoryCluster::new(2), EngineConfig::default());
    // The internal session is not checked: it creates root as the management node would.
    let mut internal = Session::new(engine.clone(), SessionInfo::default());
    ok(&mut internal, "CREATE USER 'root'@'%'").await;
    ok(&mut internal, "GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION").await;
    let mut root = login(&engine, "root", "%", "127.0.0.1");
    for sql in [
        "CREATE DATABASE calmail",
        "CREATE DATABASE secret",
        "CREATE TABLE calmail.account (id INT PRIMARY KEY, email VARCHAR(100), quota BIGINT)",
        "CREATE TABLE calmail.alias (id INT PRIMARY KEY, target INT)",
        "CREATE TABLE secret.keys (id INT PRIMARY KEY, k VARCHAR(20))",
        "INSERT INTO calmail.account VALUES (1, 'a@x.org', 10), (2, 'b@x.org', 20)",
        "INSERT INTO calmail.alias VALUES (1, 1)",
        "INSERT INTO secret.keys VALUES (1, 'k')",
    ] {
        ok(&mut root, sql).await;
    }
    (engine, root)
}

#[tokio::test]
async fn select_only_account_reads_and_cannot_write_or_see_other_databases() {
    let (engine, mut root) = setup().await;
    ok(&mut root, "CREATE USER 'exim'@'127.0.0.%' IDENTIFIED BY 'pw'").await;
    ok(&mut root, "GRANT SELECT ON calmail.* TO 'exim'@'127.0.0.%'").await;
    let mut exim = login(&engine, "exim", "127.0.0.%", "127.0.0.1");

    assert_eq!(rows(&mut exim, "SELECT email FROM calmail.account WHERE id = 2").await, [["b@x.org"]]);
    assert_eq!(rows(&mut exim, "SELECT COUNT(*) FROM calmail.account JOIN calmail.alias ON alias.target = account.id").await, [["1"]]);
    let (code, message) = fails(&mut exim, "INSERT INTO calmail.account VALUES (3, 'c@x.org', 0)").await;
    assert_eq!(code, 1142);
    assert_eq!(message, "INSERT command denied to user 'exim'@'127.0.0.1' for table 'account'");
    assert_eq!(fails(&mut exim, "UPDATE calmail.account SET quota = 0 WHERE id = 1").await.0, 1142);
    assert_eq!(fails(&mut exim, "DELETE FROM calmail.account").await.0, 1142);
    assert_eq!(fails(&mut exim, "SELECT * FROM secret.keys").await.0, 1142);
    // A subquery over a table without the privilege is refused like a direct read.
    assert_eq!(fails(&mut exim, "SELECT id FROM calmail.account WHERE id IN (SELECT id FROM secret.keys)").await.0, 1142);
    assert_eq!(fails(&mut exim, "EXPLAIN SELECT * FROM secret.keys").await.0, 1142);
    assert_eq!(fails(&mut exim, "CREATE TABLE calmail.t (id INT PRIMARY KEY)").await.0, 1142);
    assert_eq!(fails(&mut exim, "DROP TABLE calmail.alias").await.0, 1142);
    assert_eq!(fails(&mut exim, "CREATE INDEX ix ON calmail.account (quota)").await.0, 1142);
    assert_eq!(fails(&mut exim, "ALTER TABLE calmail.account ADD INDEX (quota)").await.0, 1142);
    assert_eq!(fails(&mut exim, "CREATE DATABASE other").await.0, 1044);
    assert_eq!(fails(&mut exim, "USE secret").await.0, 1044);
    let dbs: Vec<String> = rows(&mut exim, "SHOW DATABASES").await.into_iter().map(|r| r[0].clone()).collect();
    assert!(dbs.contains(&"calmail".to_string()) && !dbs.contains(&"secret".to_string()), "{dbs:?}");
    assert_eq!(fails(&mut exim, "SHOW TABLES FROM secret").await.0, 1044);
    // Prepared statements are checked on every execution, so a REVOKE reaches them too.
    let prepared = exim.prepare("SELECT email FROM calmail.account WHERE id = ?").await.unwrap();
    assert!(!exim.execute_prepared(prepared.id, vec![Value::Int(1)]).await.is_error());
    ok(&mut root, "REVOKE SELECT ON calmail.* FROM 'exim'@'127.0.0.%'").await;
    assert!(exim.execute_prepared(prepared.id, vec![Value::Int(1)]).await.is_error());
    assert_eq!(fails(&mut exim, "SELECT email FROM calmail.account WHERE id = 2").await.0, 1142);
    // Account statements need CREATE USER; GRANT needs GRANT OPTION.
    assert_eq!(fails(&mut exim, "CREATE USER 'x'@'%'").await.0, 1227);
    assert_eq!(fails(&mut exim, "GRANT SELECT ON calmail.* TO 'exim'@'127.0.0.%'").await.0, 1044);
    assert_eq!(fails(&mut exim, "SHOW GRANTS FOR 'root'@'%'").await.0, 1227);
}

#[tokio::test]
async fn table_and_column_grants() {
    let (engine, mut root) = setup().await;
    ok(&mut root, "CREATE USER 'web'@'%'").await;
    ok(&mut root, "GRANT SELECT, UPDATE (quota) ON calmail.account TO 'web'@'%'").await;
    let mut web = login(&engine, "web", "%", "10.1.2.3");
    assert_eq!(rows(&mut web, "SELECT quota FROM calmail.account WHERE id = 1").await, [["10"]]);
    ok(&mut web, "UPDATE calmail.account SET quota = 11 WHERE id = 1").await;
    let (code, message) = fails(&mut web, "UPDATE calmail.account SET email = 'z' WHERE id = 1").await;
    assert_eq!((code, message.as_str()), (1143, "UPDATE command denied to user 'web'@'10.1.2.3' for column 'email' in table 'account'"));
    assert_eq!(fails(&mut web, "SELECT * FROM calmail.alias").await.0, 1142);
    let tables: Vec<String> = rows(&mut web, "SHOW TABLES FROM calmail").await.into_iter().map(|r| r[0].clone()).collect();
    assert_eq!(tables, ["account"]);
    assert_eq!(
        rows(&mut root, "SHOW GRANTS FOR 'web'@'%'").await,
        [
            vec!["GRANT USAGE ON *.* TO `web`@`%`".to_string()],
            vec!["GRANT SELECT, UPDATE (`quota`) ON `calmail`.`account` TO `web`@`%`".to_string()],
        ]
    );
    // Revoking what was never granted is MySQL's 1147.
    assert_eq!(fails(&mut root, "REVOKE SELECT ON calmail.alias FROM 'web'@'%'").await.0, 1147);
}

#[tokio::test]
async fn account_statements_and_their_errors() {
    let (engine, mut root) = setup().await;
    ok(&mut root, "CREATE USER 'a'@'localhost' IDENTIFIED BY 'x', 'b'@'10.0.0.0/255.255.255.0'").await;
    let (code, message) = fails(&mut root, "CREATE USER 'a'@'localhost'").await;
    assert_eq!((code, message.as_str()), (1396, "Operation CREATE USER failed for 'a'@'localhost'"));
    ok(&mut root, "CREATE USER IF NOT EXISTS 'a'@'localhost'").await;
    assert_eq!(rows(&mut root, "SHOW WARNINGS").await[0][1], "3163");
    ok(&mut root, "RENAME USER 'b'@'10.0.0.0/255.255.255.0' TO 'c'@'10.0.0.%'").await;
    ok(&mut root, "GRANT SELECT ON calmail.* TO 'c'@'10.0.0.%'").await;
    assert_eq!(rows(&mut root, "SHOW GRANTS FOR 'c'@'10.0.0.%'").await.len(), 2);
    assert_eq!(fails(&mut root, "DROP USER 'b'@'10.0.0.0/255.255.255.0'").await.0, 1396);
    ok(&mut root, "DROP USER 'c'@'10.0.0.%'").await;
    assert_eq!(fails(&mut root, "SHOW GRANTS FOR 'c'@'10.0.0.%'").await.0, 1141);
    assert_eq!(fails(&mut root, "GRANT SELECT ON *.* TO 'nobody'@'%'").await.0, 1410);
    // Passwords are stored only as hashes: SHOW CREATE USER shows the verifier, not 'x'.
    let create = rows(&mut root, "SHOW CREATE USER 'a'@'localhost'").await.remove(0).remove(0);
    assert!(create.contains("mysql_native_password") && !create.contains("'x'"), "{create}");
    // Anyone may change their own password, and only that without CREATE USER.
    ok(&mut root, "GRANT SELECT ON calmail.* TO 'a'@'localhost'").await;
    let mut a = login(&engine, "a", "localhost", "127.0.0.1");
    ok(&mut a, "SET PASSWORD = 'y'").await;
    ok(&mut a, "ALTER USER 'a'@'localhost' IDENTIFIED BY 'z'").await;
    assert_eq!(fails(&mut a, "SET PASSWORD FOR 'root'@'%' = 'y'").await.0, 1227);
    assert_eq!(fails(&mut a, "ALTER USER 'a'@'localhost' ACCOUNT UNLOCK").await.0, 1227);
    assert_eq!(fails(&mut root, "SET PASSWORD FOR 'nobody'@'%' = 'y'").await.0, 1133);
    // A new password keeps the account's plugin unless the statement names one, as in MySQL.
    ok(&mut root, "CREATE USER 's'@'%' IDENTIFIED WITH caching_sha2_password BY 'one'").await;
    ok(&mut root, "ALTER USER 's'@'%' IDENTIFIED BY 'two'").await;
    let create = rows(&mut root, "SHOW CREATE USER 's'@'%'").await.remove(0).remove(0);
    assert!(create.contains("caching_sha2_password"), "{create}");
    ok(&mut root, "ALTER USER 's'@'%' IDENTIFIED WITH mysql_native_password BY 'three'").await;
    let create = rows(&mut root, "SHOW CREATE USER 's'@'%'").await.remove(0).remove(0);
    assert!(create.contains("mysql_native_password"), "{create}");
}

#[tokio::test]
async fn grant_option_and_roles() {
    let (engine, mut root) = setup().await;
    ok(&mut root, "CREATE USER 'admin'@'%', 'clerk'@'%'").await;
    ok(&mut root, "GRANT SELECT, INSERT ON calmail.* TO 'admin'@'%' WITH GRANT OPTION").await;
    let mut admin = login(&engine, "admin", "%", "127.0.0.1");
    ok(&mut admin, "GRANT SELECT ON calmail.* TO 'clerk'@'%'").await;
    // A grantor can pass on only what it holds.
    assert_eq!(fails(&mut admin, "GRANT DELETE ON calmail.* TO 'clerk'@'%'").await.0, 1044);
    let mut clerk = login(&engine, "clerk", "%", "127.0.0.1");
    assert_eq!(rows(&mut clerk, "SELECT COUNT(*) FROM calmail.account").await, [["2"]]);

    ok(&mut root, "CREATE ROLE 'writer'").await;
    ok(&mut root, "GRANT INSERT ON calmail.* TO 'writer'").await;
    ok(&mut root, "GRANT 'writer' TO 'clerk'@'%'").await;
    let mut clerk = login(&engine, "clerk", "%", "127.0.0.1");
    assert_eq!(fails(&mut clerk, "INSERT INTO calmail.alias VALUES (9, 1)").await.0, 1142);
    ok(&mut clerk, "SET ROLE 'writer'").await;
    ok(&mut clerk, "INSERT INTO calmail.alias VALUES (9, 1)").await;
    ok(&mut clerk, "SET ROLE NONE").await;
    assert_eq!(fails(&mut clerk, "INSERT INTO calmail.alias VALUES (10, 1)").await.0, 1142);
}

#[tokio::test]
async fn routine_privileges_and_sql_security() {
    let (engine, mut root) = setup().await;
    // A definer-rights function reads a table its callers may not read; an invoker-rights one
    // reads with the caller's own privileges.
    ok(&mut root, "CREATE FUNCTION calmail.key_count() RETURNS INT READS SQL DATA SQL SECURITY DEFINER RETURN (SELECT COUNT(*) FROM secret.keys)").await;
    ok(&mut root, "CREATE FUNCTION calmail.key_count_invoker() RETURNS INT READS SQL DATA SQL SECURITY INVOKER RETURN (SELECT COUNT(*) FROM secret.keys)").await;
    ok(&mut root, "CREATE PROCEDURE calmail.touch() MODIFIES SQL DATA UPDATE calmail.account SET quota = quota + 1 WHERE id = 1").await;
    ok(&mut root, "CREATE USER 'exim'@'%' IDENTIFIED BY 'pw'").await;
    ok(&mut root, "GRANT SELECT ON calmail.* TO 'exim'@'%'").await;
    let mut exim = login(&engine, "exim", "%", "10.0.0.1");
    // USER() is who connected from where; CURRENT_USER() the account that matched.
    assert_eq!(rows(&mut exim, "SELECT USER(), CURRENT_USER()").await, vec![vec!["exim@10.0.0.1".to_string(), "exim@%".to_string()]]);

    // No EXECUTE yet: 1370 for a function call and for CALL.
    let (code, message) = fails(&mut exim, "SELECT calmail.key_count()").await;
    assert_eq!(code, 1370, "{message}");
    assert!(message.contains("execute command denied to user 'exim'@'10.0.0.1' for routine 'calmail.key_count'"), "{message}");
    assert_eq!(fails(&mut exim, "CALL calmail.touch()").await.0, 1370);

    // EXECUTE on one routine: that one runs, with its definer's rights.
    ok(&mut root, "GRANT EXECUTE ON FUNCTION calmail.key_count TO 'exim'@'%'").await;
    assert_eq!(rows(&mut exim, "SELECT calmail.key_count()").await, vec![vec!["1".to_string()]]);
    assert_eq!(fails(&mut exim, "SELECT COUNT(*) FROM secret.keys").await.0, 1142, "the caller itself still may not read it");
    assert_eq!(fails(&mut exim, "SELECT calmail.key_count_invoker()").await.0, 1370);

    // EXECUTE on the database: the invoker-rights function runs with the caller's rights and
    // is refused the table; the procedure's UPDATE runs as its definer.
    ok(&mut root, "GRANT EXECUTE ON calmail.* TO 'exim'@'%'").await;
    assert_eq!(fails(&mut exim, "SELECT calmail.key_count_invoker()").await.0, 1142);
    ok(&mut exim, "CALL calmail.touch()").await;
    assert_eq!(rows(&mut root, "SELECT quota FROM calmail.account WHERE id = 1").await, vec![vec!["11".to_string()]]);

    // Creating, altering and dropping routines take CREATE ROUTINE and ALTER ROUTINE.
    assert_eq!(fails(&mut exim, "CREATE FUNCTION calmail.f() RETURNS INT RETURN 1").await.0, 1044);
    assert_eq!(fails(&mut exim, "DROP FUNCTION calmail.key_count").await.0, 1370);
    ok(&mut root, "GRANT CREATE ROUTINE, ALTER ROUTINE ON calmail.* TO 'exim'@'%'").await;
    ok(&mut exim, "CREATE FUNCTION calmail.f() RETURNS INT RETURN 1").await;
    ok(&mut exim, "DROP FUNCTION calmail.f").await;

    // A REVOKE reaches the next call.
    ok(&mut root, "REVOKE EXECUTE ON calmail.* FROM 'exim'@'%'").await;
    ok(&mut root, "REVOKE EXECUTE ON FUNCTION calmail.key_count FROM 'exim'@'%'").await;
    assert_eq!(fails(&mut exim, "SELECT calmail.key_count()").await.0, 1370);
}

/// A session keeps the definer's resolved privileges from one call of a definer-rights routine
/// to the next (privileges.rs, `for_definer`), for one catalog version only: a REVOKE from the
/// definer, or a GRANT back, reaches the very next call.
#[tokio::test]
async fn definer_rights_follow_grant_changes_between_calls() {
    let (engine, mut root) = setup().await;
    ok(&mut root, "CREATE USER 'keeper'@'%'").await;
    ok(&mut root, "GRANT SELECT ON secret.* TO 'keeper'@'%'").await;
    ok(&mut root, "CREATE DEFINER = 'keeper'@'%' FUNCTION calmail.kept_count() RETURNS INT READS SQL DATA SQL SECURITY DEFINER RETURN (SELECT COUNT(*) FROM secret.keys)").await;
    ok(&mut root, "CREATE USER 'exim'@'%'").await;
    ok(&mut root, "GRANT EXECUTE ON calmail.* TO 'exim'@'%'").await;
    let mut exim = login(&engine, "exim", "%", "10.0.0.1");
    for _ in 0..2 {
        assert_eq!(rows(&mut exim, "SELECT calmail.kept_count()").await, [["1"]]);
    }
    ok(&mut root, "REVOKE SELECT ON secret.* FROM 'keeper'@'%'").await;
    assert_eq!(fails(&mut exim, "SELECT calmail.kept_count()").await.0, 1142);
    ok(&mut root, "GRANT SELECT ON secret.* TO 'keeper'@'%'").await;
    assert_eq!(rows(&mut exim, "SELECT calmail.kept_count()").await, [["1"]]);
}

#[tokio::test]
async fn multiple_table_update_and_delete_need_their_privileges_on_every_table() {
    let (engine, mut root) = setup().await;
    ok(&mut root, "CREATE USER 'admin'@'%'").await;
    ok(&mut root, "GRANT SELECT, UPDATE (quota) ON calmail.account TO 'admin'@'%'").await;
    let mut admin = login(&engine, "admin", "%", "10.1.2.3");
    // Reading calmail.alias to find the rows needs SELECT on it.
    let join_update = "UPDATE calmail.account a JOIN calmail.alias l ON l.target = a.id SET a.quota = 12";
    assert_eq!(fails(&mut admin, join_update).await.0, 1142);
    ok(&mut root, "GRANT SELECT ON calmail.alias TO 'admin'@'%'").await;
    ok(&mut admin, join_update).await;
    assert_eq!(rows(&mut admin, "SELECT quota FROM calmail.account WHERE id = 1").await, [["12"]]);
    // A column without UPDATE, a target without DELETE.
    let (code, message) = fails(&mut admin, "UPDATE calmail.account a JOIN calmail.alias l ON l.target = a.id SET a.email = 'z'").await;
    assert_eq!((code, message.as_str()), (1143, "UPDATE command denied to user 'admin'@'10.1.2.3' for column 'email' in table 'account'"));
    assert_eq!(fails(&mut admin, "DELETE l FROM calmail.alias l JOIN calmail.account a ON a.id = l.target").await.0, 1142);
    ok(&mut root, "GRANT DELETE ON calmail.alias TO 'admin'@'%'").await;
    ok(&mut admin, "DELETE l FROM calmail.alias l JOIN calmail.account a ON a.id = l.target").await;
    assert_eq!(rows(&mut admin, "SELECT COUNT(*) FROM calmail.alias").await, [["0"]]);
}

#[tokio::test]
async fn privilege_views_show_the_sessions_own_grants_unless_it_may_read_all() {
    let (engine, mut root) = setup().await;
    for sql in [
        "CREATE USER 'exim'@'127.0.0.%' IDENTIFIED BY 'pw'",
        "GRANT SELECT, INSERT ON calmail.* TO 'exim'@'127.0.0.%'",
        "GRANT UPDATE ON calmail.account TO 'exim'@'127.0.0.%' WITH GRANT OPTION",
        "GRANT SELECT (target) ON calmail.alias TO 'exim'@'127.0.0.%'",
        "CREATE USER 'web'@'%' IDENTIFIED BY 'pw'",
        "GRANT DELETE ON secret.keys TO 'web'@'%'",
    ] {
        ok(&mut root, sql).await;
    }
    let mut exim = login(&engine, "exim", "127.0.0.%", "127.0.0.9");
    assert_eq!(rows(&mut exim, "SELECT * FROM information_schema.USER_PRIVILEGES").await, [["'exim'@'127.0.0.%'", "def", "USAGE", "NO"]]);
    assert_eq!(
        rows(&mut exim, "SELECT GRANTEE, TABLE_SCHEMA, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.SCHEMA_PRIVILEGES").await,
        [["'exim'@'127.0.0.%'", "calmail", "SELECT", "NO"], ["'exim'@'127.0.0.%'", "calmail", "INSERT", "NO"]]
    );
    assert_eq!(
        rows(&mut exim, "SELECT TABLE_NAME, PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.TABLE_PRIVILEGES").await,
        [["account", "UPDATE", "YES"]]
    );
    assert_eq!(
        rows(&mut exim, "SELECT TABLE_NAME, COLUMN_NAME, PRIVILEGE_TYPE FROM information_schema.COLUMN_PRIVILEGES").await,
        [["alias", "target", "SELECT"]]
    );
    // root may read every account's grants (SELECT on everything): web's table grant is there,
    // although web's grant names a database exim cannot see.
    let all = rows(&mut root, "SELECT GRANTEE, TABLE_SCHEMA, TABLE_NAME, PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES ORDER BY GRANTEE").await;
    assert_eq!(all, [["'exim'@'127.0.0.%'", "calmail", "account", "UPDATE"], ["'web'@'%'", "secret", "keys", "DELETE"]]);
    let root_global = rows(&mut root, "SELECT PRIVILEGE_TYPE, IS_GRANTABLE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = '''root''@''%''' AND PRIVILEGE_TYPE IN ('SELECT', 'SUPER')").await;
    assert_eq!(root_global, [["SELECT", "YES"], ["SUPER", "YES"]]);
    let mut web = login(&engine, "web", "%", "10.0.0.1");
    assert!(rows(&mut web, "SELECT * FROM information_schema.SCHEMA_PRIVILEGES").await.is_empty());
    assert_eq!(rows(&mut web, "SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES").await, [["1"]]);
}
