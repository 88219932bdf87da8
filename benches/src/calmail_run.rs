//! Loading the CalMail data set ([`crate::calmail`]) into a server, and timing the analytics an
//! operator runs over it, on Cairn and on MariaDB side by side.
//!
//! # Loading
//!
//! [`load`] recreates the `calmail` schema on one connection, then cuts every table into batches
//! of `batch_rows` rows and lets `connections` connections take batches from one shared queue
//! (tables in load order), each batch one multi-row `INSERT` in autocommit. Each answer's
//! affected-row count is checked, and [`verify_counts`] checks every table's `COUNT(*)` after.
//! The same statements go to either server, so the load is the same work on both.
//!
//! # Analytics
//!
//! [`QUERIES`] are the questions an operator asks of the whole data set (subscribers per list,
//! accounts per backend host, lists without subscribers, ...). [`run_analytics`] runs each query
//! `runs` times on every target in turn (target A, target B, A, B, ...: the same minutes, the
//! same machine load), times each run from sending to having read the last row, and compares the
//! answers of every target with the first target's, value by value as text. Every query has a
//! total `ORDER BY` (ties broken by a key), so equal answers are equal row for row. Some answers
//! are also checked against the generator ([`expected_answer`]).
//!
//! # Left out
//!
//! Concurrency during analytics (one query at a time, on one connection per target), and
//! `LOAD DATA LOCAL INFILE` (multi-row INSERTs are what an application's loader sends).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, Row, Value};
use tokio::task::JoinSet;

use crate::calmail::{DATABASE, DataSet, Table};
use crate::run::{RunError, describe_target};

/// One analytics query: a name for reports and its SQL.
#[derive(Debug, Clone, Copy)]
pub struct Query {
    pub name: &'static str,
    pub sql: &'static str,
}

/// The operator's questions, in the order they run.
pub const QUERIES: [Query; 10] = [
    Query {
        name: "subscribers_per_list_top20",
        sql: "SELECT l.id, l.name, COUNT(*) AS subscribers FROM calmail.list l \
              JOIN calmail.subscriber s ON s.list_id = l.id \
              GROUP BY l.id, l.name ORDER BY subscribers DESC, l.id LIMIT 20",
    },
    Query {
        name: "subscriptions_per_list_id_top20",
        sql: "SELECT list_id, COUNT(*) AS subscribers FROM calmail.subscriber \
              GROUP BY list_id ORDER BY subscribers DESC, list_id LIMIT 20",
    },
    Query {
        name: "accounts_per_host",
        sql: "SELECT host, COUNT(*) AS accounts FROM calmail.account GROUP BY host ORDER BY host",
    },
    Query {
        name: "accounts_per_state",
        sql: "SELECT state, COUNT(*) AS accounts FROM calmail.account GROUP BY state ORDER BY state",
    },
    Query {
        name: "domains_with_most_aliases",
        sql: "SELECT d.name, COUNT(*) AS aliases FROM calmail.alias a \
              JOIN calmail.domain d ON d.id = a.domain_id \
              GROUP BY d.name ORDER BY aliases DESC, d.name LIMIT 10",
    },
    Query {
        name: "lists_without_subscribers",
        sql: "SELECT COUNT(*) FROM calmail.list l \
              LEFT JOIN calmail.subscriber s ON s.list_id = l.id WHERE s.list_id IS NULL",
    },
    Query {
        name: "distinct_subscriber_addresses",
        sql: "SELECT COUNT(*), COUNT(DISTINCT address) FROM calmail.subscriber",
    },
    Query {
        name: "forwards_per_host",
        sql: "SELECT a.host, COUNT(*) AS forwards, SUM(f.keep_copy) AS kept FROM calmail.forward f \
              JOIN calmail.account a ON a.id = f.account_id GROUP BY a.host ORDER BY a.host",
    },
    Query {
        name: "quota_per_domain_top10",
        sql: "SELECT d.name, COUNT(*) AS accounts, SUM(a.quota_mb) AS quota_mb \
              FROM calmail.account a JOIN calmail.domain d ON d.id = a.domain_id \
              GROUP BY d.name ORDER BY quota_mb DESC, d.name LIMIT 10",
    },
    Query {
        name: "active_accounts_idle_a_year",
        sql: "SELECT COUNT(*) FROM calmail.account WHERE state = 'active' \
              AND (last_login IS NULL OR last_login < '2009-07-01 00:00:00')",
    },
];

/// What a query must answer on any server, when the generator can say so without a server.
pub fn expected_answer(data: &DataSet, query: &Query) -> Option<Vec<Vec<String>>> {
    match query.name {
        "lists_without_subscribers" => {
            let empty = (0..data.lists).filter(|list| data.list_subscribers(*list) == 0).count();
            Some(vec![vec![empty.to_string()]])
        }
        "subscriptions_per_list_id_top20" => {
            let mut counts: Vec<(u64, u64)> = (0..data.lists)
                .map(|list| (data.list_subscribers(list), list + 1))
                .filter(|(count, _)| *count > 0)
                .collect();
            counts.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            Some(
                counts
                    .into_iter()
                    .take(20)
                    .map(|(count, id)| vec![id.to_string(), count.to_string()])
                    .collect(),
            )
        }
        _ => None,
    }
}

// ---- Loading ------------------------------------------------------------------------------------

/// How long each table took to load, and the whole load.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub target: String,
    pub rows: u64,
    pub elapsed: Duration,
    /// Per table: name, rows, time from its first batch starting to its last batch finishing.
    pub tables: Vec<(&'static str, u64, Duration)>,
}

/// One batch of the load queue.
#[derive(Debug, Clone)]
struct Batch {
    table: Table,
    rows: std::ops::Range<u64>,
}

/// Recreates the `calmail` schema on `opts`' server and loads `data` into it over `connections`
/// connections, `batch_rows` rows per INSERT.
pub async fn load(
    opts: &Opts,
    data: Arc<DataSet>,
    connections: usize,
    batch_rows: u64,
) -> Result<LoadReport, RunError> {
    if connections == 0 || batch_rows == 0 {
        return Err(RunError::Config(
            "--connections and --batch-rows must be positive".into(),
        ));
    }
    let started = Instant::now();
    let mut conn = connect(opts).await?;
    for statement in crate::calmail::schema_statements() {
        run_setup(&mut conn, statement).await?;
    }
    drop(conn);

    let mut batches = Vec::new();
    for table in Table::ALL {
        let rows = data.rows(table);
        let mut start = 0;
        while start < rows {
            let end = (start + batch_rows).min(rows);
            batches.push(Batch {
                table,
                rows: start..end,
            });
            start = end;
        }
    }
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let opts = opts.clone();
        let data = Arc::clone(&data);
        let batches = Arc::clone(&batches);
        let next = Arc::clone(&next);
        tasks.spawn(async move {
            let mut conn = connect(&opts).await?;
            // Per table: (first start, last end) seen by this connection, relative to `started`.
            let mut spans: Vec<(Table, Instant, Instant)> = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(batch) = batches.get(index) else {
                    break;
                };
                let begun = Instant::now();
                let statement = data.insert_statement(batch.table, batch.rows.clone());
                run_setup(&mut conn, &statement).await?;
                let inserted = batch.rows.end - batch.rows.start;
                if conn.affected_rows() != inserted {
                    return Err(RunError::SetupCheck(format!(
                        "an INSERT of {inserted} rows into {} reported {} affected rows",
                        batch.table.name(),
                        conn.affected_rows()
                    )));
                }
                let finished = Instant::now();
                match spans.iter_mut().find(|(table, _, _)| *table == batch.table) {
                    Some(span) => span.2 = finished,
                    None => spans.push((batch.table, begun, finished)),
                }
            }
            let _ = conn.disconnect().await;
            Ok::<_, RunError>(spans)
        });
    }
    let mut spans: Vec<(Table, Instant, Instant)> = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        for (table, begun, finished) in joined?? {
            match spans.iter_mut().find(|(seen, _, _)| *seen == table) {
                Some(span) => {
                    span.1 = span.1.min(begun);
                    span.2 = span.2.max(finished);
                }
                None => spans.push((table, begun, finished)),
            }
        }
    }
    let tables = Table::ALL
        .iter()
        .map(|table| {
            let took = spans
                .iter()
                .find(|(seen, _, _)| seen == table)
                .map(|(_, begun, finished)| finished.duration_since(*begun))
                .unwrap_or_default();
            (table.name(), data.rows(*table), took)
        })
        .collect();
    Ok(LoadReport {
        target: describe_target(opts),
        rows: data.total_rows(),
        elapsed: started.elapsed(),
        tables,
    })
}

/// Checks that every table holds exactly the rows the data set has.
pub async fn verify_counts(opts: &Opts, data: &DataSet) -> Result<(), RunError> {
    let mut conn = connect(opts).await?;
    for table in Table::ALL {
        let statement = format!("SELECT COUNT(*) FROM {DATABASE}.{}", table.name());
        let count: Option<u64> = conn
            .query_first(&statement)
            .await
            .map_err(|source| RunError::Setup {
                statement: statement.clone(),
                source,
            })?;
        if count != Some(data.rows(table)) {
            return Err(RunError::SetupCheck(format!(
                "{} holds {count:?} rows, the data set has {}",
                table.name(),
                data.rows(table)
            )));
        }
    }
    Ok(())
}

async fn connect(opts: &Opts) -> Result<Conn, RunError> {
    Conn::new(opts.clone())
        .await
        .map_err(|source| RunError::Connect {
            target: describe_target(opts),
            source,
        })
}

async fn run_setup(conn: &mut Conn, statement: &str) -> Result<(), RunError> {
    conn.query_drop(statement)
        .await
        .map_err(|source| RunError::Setup {
            statement: shorten(statement),
            source,
        })
}

fn shorten(statement: &str) -> String {
    let mut end = statement.len().min(120);
    while !statement.is_char_boundary(end) {
        end -= 1;
    }
    if end < statement.len() {
        format!("{}...", &statement[..end])
    } else {
        statement.to_owned()
    }
}

// ---- Analytics ----------------------------------------------------------------------------------

/// One query's runs on one target.
#[derive(Debug, Clone)]
pub struct QueryTiming {
    pub target: String,
    /// Wall time of each run that succeeded.
    pub runs: Vec<Duration>,
    /// The answer of the first successful run, as text (`NULL` for NULL).
    pub answer: Option<Vec<Vec<String>>>,
    /// The error or timeout of a failed run, if any.
    pub error: Option<String>,
}

impl QueryTiming {
    /// The median of the successful runs.
    pub fn median(&self) -> Option<Duration> {
        let mut runs = self.runs.clone();
        runs.sort();
        runs.get(runs.len() / 2).copied()
    }
}

/// One query's result on every target.
#[derive(Debug, Clone)]
pub struct QueryReport {
    pub query: Query,
    pub timings: Vec<QueryTiming>,
    /// Why the answers are wrong: they differ between targets or from the generator's.
    pub mismatch: Option<String>,
}

/// Runs every query of [`QUERIES`] (or those named in `only`) `runs` times on each target,
/// alternating targets, with `timeout` per run.
pub async fn run_analytics(
    targets: &[Opts],
    data: &DataSet,
    only: &[String],
    runs: usize,
    timeout: Duration,
) -> Result<Vec<QueryReport>, RunError> {
    let mut conns = Vec::with_capacity(targets.len());
    for opts in targets {
        conns.push(Some(connect(opts).await?));
    }
    let mut reports = Vec::new();
    for query in QUERIES.iter().filter(|query| only.is_empty() || only.iter().any(|name| name == query.name)) {
        let mut timings: Vec<QueryTiming> = targets
            .iter()
            .map(|opts| QueryTiming {
                target: describe_target(opts),
                runs: Vec::new(),
                answer: None,
                error: None,
            })
            .collect();
        for _ in 0..runs.max(1) {
            for (index, opts) in targets.iter().enumerate() {
                if timings[index].error.is_some() {
                    continue;
                }
                let conn = match conns[index].take() {
                    Some(conn) => conn,
                    None => connect(opts).await?,
                };
                let started = Instant::now();
                match tokio::time::timeout(timeout, fetch(conn, query.sql)).await {
                    Ok(Ok((conn, rows))) => {
                        timings[index].runs.push(started.elapsed());
                        timings[index].answer.get_or_insert(rows);
                        conns[index] = Some(conn);
                    }
                    Ok(Err(error)) => timings[index].error = Some(error.to_string()),
                    Err(_) => {
                        // The connection went with the abandoned future; the next query opens
                        // a new one. Cairn's sqld notices the closed socket and stops the query.
                        timings[index].error = Some(format!("no answer within {timeout:?}"));
                    }
                }
            }
        }
        let mismatch = compare(data, query, &timings);
        reports.push(QueryReport {
            query: *query,
            timings,
            mismatch,
        });
    }
    for conn in conns.into_iter().flatten() {
        let _ = conn.disconnect().await;
    }
    Ok(reports)
}

async fn fetch(mut conn: Conn, sql: &str) -> Result<(Conn, Vec<Vec<String>>), mysql_async::Error> {
    let rows: Vec<Row> = conn.query(sql).await?;
    let text = rows
        .into_iter()
        .map(|row| {
            (0..row.len())
                .map(|column| value_text(row.as_ref(column).cloned().unwrap_or(Value::NULL)))
                .collect()
        })
        .collect();
    Ok((conn, text))
}

/// A value as the text protocol shows it (`NULL` for NULL).
fn value_text(value: Value) -> String {
    match value {
        Value::NULL => "NULL".to_owned(),
        Value::Bytes(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Value::Int(number) => number.to_string(),
        Value::UInt(number) => number.to_string(),
        Value::Float(number) => number.to_string(),
        Value::Double(number) => number.to_string(),
        other => other.as_sql(true),
    }
}

/// Why the answers of `timings` are wrong, if they are.
fn compare(data: &DataSet, query: &Query, timings: &[QueryTiming]) -> Option<String> {
    let mut problems = Vec::new();
    if let Some(expected) = expected_answer(data, query) {
        for timing in timings {
            if let Some(answer) = &timing.answer {
                if *answer != expected {
                    problems.push(format!(
                        "{} answered {} but the data set says {}",
                        timing.target,
                        summarize(answer),
                        summarize(&expected)
                    ));
                }
            }
        }
    }
    let answered: Vec<&QueryTiming> = timings.iter().filter(|timing| timing.answer.is_some()).collect();
    if let Some((first, rest)) = answered.split_first() {
        for other in rest {
            if other.answer != first.answer {
                problems.push(format!(
                    "{} answered {} but {} answered {}",
                    other.target,
                    summarize(other.answer.as_deref().unwrap_or_default()),
                    first.target,
                    summarize(first.answer.as_deref().unwrap_or_default())
                ));
            }
        }
    }
    if problems.is_empty() { None } else { Some(problems.join("; ")) }
}

/// The first rows of an answer, for messages.
fn summarize(rows: &[Vec<String>]) -> String {
    let shown: Vec<String> = rows.iter().take(3).map(|row| format!("({})", row.join(", "))).collect();
    let more = if rows.len() > 3 { format!(" and {} more", rows.len() - 3) } else { String::new() };
    format!("{} row(s) [{}{more}]", rows.len(), shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_answers_are_reported() {
        let data = DataSet::new(0.001);
        let query = QUERIES[2];
        let timing = |target: &str, value: &str| QueryTiming {
            target: target.to_owned(),
            runs: vec![Duration::from_millis(1)],
            answer: Some(vec![vec!["cyrus01".to_owned(), value.to_owned()]]),
            error: None,
        };
        assert_eq!(compare(&data, &query, &[timing("a", "5"), timing("b", "5")]), None);
        let problem = compare(&data, &query, &[timing("a", "5"), timing("b", "6")]);
        assert!(problem.is_some_and(|text| text.contains("b answered 1 row(s) [(cyrus01, 6)]")));
    }

    #[test]
    fn generator_answers_are_checked() {
        let data = DataSet::new(0.01);
        let query = QUERIES.iter().find(|query| query.name == "lists_without_subscribers").copied();
        let Some(query) = query else { panic!("the query is listed") };
        let expected = expected_answer(&data, &query);
        assert!(expected.is_some());
        let wrong = QueryTiming {
            target: "a".to_owned(),
            runs: Vec::new(),
            answer: Some(vec![vec!["-1".to_owned()]]),
            error: None,
        };
        assert!(compare(&data, &query, &[wrong]).is_some());
    }
}
