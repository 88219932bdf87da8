//! Golden SQL scripts run over the MySQL protocol (`tests/sql/*.test`), in the spirit of
//! sqllogictest.
//!
//! A script is records separated by blank lines; `#` lines are comments. A record starts with
//! a directive line, then the SQL (one or more lines), then for queries `----` and the expected
//! rows:
//!
//! - `statement ok` — must succeed.
//! - `statement error CODE` — must fail with this MySQL error number.
//! - `statement affected N` — must succeed with N affected rows.
//! - `query` / `query rowsort` — rows as the text protocol returns them, one line each, values
//!   joined by ` | `, `NULL` for NULL and `(empty)` for an empty string; `rowsort` compares
//!   them sorted (for results without ORDER BY).
//! - `connection NAME` — run the following records on connection NAME (opened on first use,
//!   with the script's database selected).
//!
//! Each script runs in a fresh database named after the file. With `UPDATE_GOLDEN=1` the
//! expected parts are rewritten from what the server answers (review the diff: expectations
//! must be what MySQL answers).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mysql_async::prelude::*;

/// What a record expects.
#[derive(Clone, Debug, PartialEq)]
pub enum Expect {
    Ok,
    Error(u16),
    Affected(u64),
    Query { sort: bool, rows: Vec<String> },
    Connection(String),
}

#[derive(Clone, Debug)]
pub struct Record {
    pub line: usize,
    pub sql: String,
    pub expect: Expect,
    /// Comment lines before the record, kept when the script is rewritten.
    pub comments: Vec<String>,
}

/// Parses a script.
pub fn parse(text: &str) -> Result<Vec<Record>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut records = Vec::new();
    let mut i = 0;
    let mut comments = Vec::new();
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.is_empty() {
            i += 1;
            continue;
        }
        if line.starts_with('#') {
            comments.push(line.to_string());
            i += 1;
            continue;
        }
        let start = i + 1;
        let words: Vec<&str> = line.split_whitespace().collect();
        i += 1;
        if words[0] == "connection" {
            let name = words.get(1).ok_or(format!("line {start}: connection needs a name"))?.to_string();
            records.push(Record { line: start, sql: String::new(), expect: Expect::Connection(name), comments: std::mem::take(&mut comments) });
            continue;
        }
        let mut sql = Vec::new();
        while i < lines.len() && !lines[i].trim().is_empty() && lines[i].trim() != "----" {
            sql.push(lines[i]);
            i += 1;
        }
        let sql = sql.join("\n");
        let expect = match (words[0], words.get(1).copied()) {
            ("statement", Some("ok")) => Expect::Ok,
            ("statement" | "query", Some("error")) => {
                Expect::Error(words.get(2).and_then(|c| c.parse().ok()).ok_or(format!("line {start}: error needs a code"))?)
            }
            ("statement", Some("affected")) => {
                Expect::Affected(words.get(2).and_then(|c| c.parse().ok()).ok_or(format!("line {start}: affected needs a count"))?)
            }
            ("query", sort) => {
                let sort = sort == Some("rowsort");
                let mut rows = Vec::new();
                if i < lines.len() && lines[i].trim() == "----" {
                    i += 1;
                    while i < lines.len() && !lines[i].trim().is_empty() {
                        rows.push(lines[i].to_string());
                        i += 1;
                    }
                }
                Expect::Query { sort, rows }
            }
            _ => return Err(format!("line {start}: unknown directive '{line}'")),
        };
        records.push(Record { line: start, sql, expect, comments: std::mem::take(&mut comments) });
    }
    Ok(records)
}

fn show(v: &mysql_async::Value) -> String {
    match v {
        mysql_async::Value::NULL => "NULL".into(),
        mysql_async::Value::Bytes(b) if b.is_empty() => "(empty)".into(),
        mysql_async::Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
            _ => format!("0x{}", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        },
        other => other.as_sql(true),
    }
}

/// Writes a script back with `records`' expectations.
pub fn render(records: &[Record]) -> String {
    let mut out = String::new();
    for r in records {
        if !out.is_empty() {
            out.push('\n');
        }
        for c in &r.comments {
            let _ = writeln!(out, "{c}");
        }
        match &r.expect {
            Expect::Connection(name) => {
                let _ = writeln!(out, "connection {name}");
                continue;
            }
            Expect::Ok => out.push_str("statement ok\n"),
            Expect::Error(code) => {
                let _ = writeln!(out, "statement error {code}");
            }
            Expect::Affected(n) => {
                let _ = writeln!(out, "statement affected {n}");
            }
            Expect::Query { sort, .. } => out.push_str(if *sort { "query rowsort\n" } else { "query\n" }),
        }
        let _ = writeln!(out, "{}", r.sql);
        if let Expect::Query { rows, .. } = &r.expect {
            out.push_str("----\n");
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
        }
    }
    out
}

/// The outcome of running one script.
pub struct Run {
    /// The script with what the server answered.
    pub actual: Vec<Record>,
    /// Differences, as `line N: …` messages.
    pub failures: Vec<String>,
    /// Statements sent.
    pub statements: usize,
}

/// Runs a script against a server (`pool`), in database `database` (created afresh).
pub async fn run(pool: &mysql_async::Pool, database: &str, records: &[Record]) -> Result<Run, mysql_async::Error> {
    let mut setup = pool.get_conn().await?;
    setup.query_drop(format!("DROP DATABASE IF EXISTS `{database}`")).await?;
    setup.query_drop(format!("CREATE DATABASE `{database}`")).await?;
    drop(setup);
    let mut connections: BTreeMap<String, mysql_async::Conn> = BTreeMap::new();
    let mut current = "default".to_string();
    let mut actual = Vec::with_capacity(records.len());
    let mut failures = Vec::new();
    let mut statements = 0;
    for r in records {
        if let Expect::Connection(name) = &r.expect {
            current = name.clone();
            actual.push(r.clone());
            continue;
        }
        if !connections.contains_key(&current) {
            let mut conn = pool.get_conn().await?;
            conn.query_drop(format!("USE `{database}`")).await?;
            connections.insert(current.clone(), conn);
        }
        let conn = connections.get_mut(&current).expect("opened above");
        statements += 1;
        let result: Result<(Vec<String>, u64), mysql_async::Error> = async {
            let mut result = conn.query_iter(r.sql.as_str()).await?;
            let mut rows = Vec::new();
            let mut affected = 0;
            loop {
                let set: Vec<mysql_async::Row> = result.collect().await?;
                for row in set {
                    let values: Vec<String> = (0..row.len()).map(|i| show(row.as_ref(i).unwrap_or(&mysql_async::Value::NULL))).collect();
                    rows.push(values.join(" | "));
                }
                affected += result.affected_rows();
                if result.is_empty() {
                    break;
                }
            }
            Ok((rows, affected))
        }
        .await;
        let got = match result {
            Ok((rows, affected)) => match &r.expect {
                Expect::Query { sort, .. } => {
                    let mut rows = rows;
                    if *sort {
                        rows.sort();
                    }
                    Expect::Query { sort: *sort, rows }
                }
                Expect::Affected(_) => Expect::Affected(affected),
                _ => Expect::Ok,
            },
            Err(mysql_async::Error::Server(e)) => Expect::Error(e.code),
            Err(e) => return Err(e),
        };
        let expected = match &r.expect {
            Expect::Query { sort: true, rows } => {
                let mut rows = rows.clone();
                rows.sort();
                Expect::Query { sort: true, rows }
            }
            other => other.clone(),
        };
        if got != expected {
            failures.push(format!("line {}: {}\n    expected {:?}\n    got      {:?}", r.line, r.sql, expected, got));
        }
        actual.push(Record { expect: got, ..r.clone() });
    }
    for (_, conn) in connections {
        let _ = conn.disconnect().await;
    }
    Ok(Run { actual, failures, statements })
}
