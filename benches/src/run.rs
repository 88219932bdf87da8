//! The closed-loop runner: set up the data, open N connections, let each connection send one
//! operation after another for warm-up plus the measured window, and merge what they saw.
//!
//! Each connection runs in its own task with its own generator, histogram and error list; nothing
//! is shared on the hot path except the read-only run context. Operations that *start* inside the
//! measured window are counted; throughput is that count divided by the window's length.
//!
//! Errors never stop a run. A server error (an error packet) leaves the connection usable; any
//! other failure (I/O, protocol, a timed-out operation) drops the connection and the task
//! reconnects, counting each failed attempt as an error, until the run ends.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mysql_async::prelude::{Protocol as ResultProtocol, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Params, QueryResult, Statement, Value};
use tokio::task::JoinSet;

use crate::histogram::LatencyHistogram;
use crate::report::{ErrorSamples, RunReport};
use crate::schema;
use crate::workload::{
    Operation, OperationGenerator, Outcome, Protocol, StatementTemplate, Workload,
};

/// The most connections one run opens; far beyond what two cores can drive, and a guard against
/// a typo exhausting file descriptors or the server's connection limit.
pub const MAX_CONNECTIONS: usize = 4096;

/// Everything a run needs to know.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// `mysql://user:password@host:port/database`.
    pub url: String,
    pub workload: Workload,
    pub protocol: Protocol,
    /// Concurrent connections, each a closed loop.
    pub connections: usize,
    /// Length of the measured window.
    pub duration: Duration,
    /// Time the loops run before measuring starts, to warm caches and connections.
    pub warmup: Duration,
    /// Size of the data set.
    pub rows: u64,
    /// Recreate the schema and load the data before the run.
    pub setup: bool,
    /// Rows per multi-row INSERT while loading.
    pub batch_rows: u64,
    /// Fixes the sequence of keys the connections choose.
    pub seed: u64,
    /// Replaces the workload's statement (same placeholders, same order); reported as such.
    pub query_override: Option<String>,
    /// An operation that takes longer counts as an error and its connection is replaced.
    pub operation_timeout: Duration,
    /// Statements each measured connection runs once when it opens (e.g. `SET cairn_plan_cache = 0`
    /// to measure a session setting's effect).
    pub session_sql: Vec<String>,
}

impl RunConfig {
    /// A configuration with the command line's defaults for everything but the target and the
    /// workload.
    pub fn new(url: impl Into<String>, workload: Workload) -> Self {
        Self {
            url: url.into(),
            workload,
            protocol: Protocol::Binary,
            connections: 32,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            rows: 100_000,
            setup: true,
            batch_rows: 1000,
            seed: 1,
            query_override: None,
            operation_timeout: Duration::from_secs(10),
            session_sql: Vec::new(),
        }
    }
}

/// Why a run could not take place at all (failures during the run are counted, not raised).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("invalid URL: {0}")]
    Url(#[from] mysql_async::UrlError),
    #[error("could not connect to {target}: {source}")]
    Connect {
        target: String,
        source: mysql_async::Error,
    },
    #[error("setup failed on `{statement}`: {source}")]
    Setup {
        statement: String,
        source: mysql_async::Error,
    },
    #[error("setup failed: {0}")]
    SetupCheck(String),
    #[error("could not prepare `{statement}`: {source}")]
    Prepare {
        statement: String,
        source: mysql_async::Error,
    },
    #[error("a connection task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// Connection options from a URL, always over TCP.
///
/// mysql_async by default switches a connection to 127.0.0.1 over to the server's Unix socket
/// when it finds one; MariaDB has one and Cairn may not, so that would compare different
/// transports. TCP is forced for every target.
pub fn connection_options(url: &str) -> Result<Opts, RunError> {
    let opts = Opts::from_url(url)?;
    Ok(OptsBuilder::from_opts(opts).prefer_socket(false).into())
}

/// `user@host:port` of a target, for reports and messages (never the password).
pub fn describe_target(opts: &Opts) -> String {
    format!(
        "{}@{}:{}",
        opts.user().unwrap_or(""),
        opts.ip_or_hostname(),
        opts.tcp_port()
    )
}

/// Recreates the workload's schema and loads its data; returns how long it took.
pub async fn setup(
    opts: &Opts,
    workload: Workload,
    rows: u64,
    batch_rows: u64,
) -> Result<Duration, RunError> {
    let started = Instant::now();
    let mut conn = Conn::new(opts.clone())
        .await
        .map_err(|source| RunError::Connect {
            target: describe_target(opts),
            source,
        })?;
    for statement in workload.schema_statements() {
        conn.query_drop(statement)
            .await
            .map_err(|source| RunError::Setup {
                statement: abbreviate(statement),
                source,
            })?;
    }
    for (statement, inserted) in workload.load_statements(rows, batch_rows) {
        conn.query_drop(&statement)
            .await
            .map_err(|source| RunError::Setup {
                statement: abbreviate(&statement),
                source,
            })?;
        if conn.affected_rows() != inserted {
            return Err(RunError::SetupCheck(format!(
                "`{}` inserted {} rows instead of {inserted}",
                abbreviate(&statement),
                conn.affected_rows()
            )));
        }
    }
    // Closing politely matters little, but a failure here says the server is unwell.
    conn.disconnect().await.map_err(|source| RunError::Setup {
        statement: "disconnect".into(),
        source,
    })?;
    Ok(started.elapsed())
}

/// The first line of a statement, shortened, for messages.
fn abbreviate(statement: &str) -> String {
    let first_line = statement.lines().next().unwrap_or_default();
    if first_line.len() > 120 {
        let mut end = 120;
        while !first_line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &first_line[..end])
    } else {
        first_line.to_owned()
    }
}

/// Read-only state shared by every connection task.
#[derive(Debug)]
struct RunContext {
    opts: Opts,
    workload: Workload,
    protocol: Protocol,
    template: StatementTemplate,
    rows: u64,
    connections: u64,
    first_insert_key: u64,
    run_nonce: u64,
    seed: u64,
    measure_start: Instant,
    end: Instant,
    operation_timeout: Duration,
}

/// What one connection task saw.
#[derive(Debug, Default)]
struct ConnectionStats {
    histogram: LatencyHistogram,
    operations: u64,
    errors: u64,
    warmup_operations: u64,
    warmup_errors: u64,
    error_samples: ErrorSamples,
}

/// Runs one benchmark as configured and reports what it measured.
pub async fn run(config: &RunConfig) -> Result<RunReport, RunError> {
    if config.connections == 0 || config.connections > MAX_CONNECTIONS {
        return Err(RunError::Config(format!(
            "--connections must be between 1 and {MAX_CONNECTIONS}"
        )));
    }
    if config.duration.is_zero() {
        return Err(RunError::Config("--seconds must be positive".into()));
    }
    if config.rows == 0 && config.workload != Workload::Insert {
        return Err(RunError::Config("--rows must be at least 1".into()));
    }
    let template = StatementTemplate::parse(
        config
            .query_override
            .as_deref()
            .unwrap_or(config.workload.statement()),
    );
    if template.placeholder_count() != config.workload.parameter_count() {
        return Err(RunError::Config(format!(
            "the {} workload binds {} parameter(s) but the statement has {} placeholder(s): {}",
            config.workload,
            config.workload.parameter_count(),
            template.placeholder_count(),
            template.sql()
        )));
    }
    let opts = connection_options(&config.url)?;
    let target = describe_target(&opts);

    let setup_time = if config.setup {
        Some(setup(&opts, config.workload, config.rows, config.batch_rows).await?)
    } else {
        None
    };

    let first_insert_key = if config.workload == Workload::Insert {
        next_insert_key(&opts).await?
    } else {
        1
    };

    // Open (and prepare on) every connection before the clock starts, so connection set-up is
    // neither in the warm-up nor in the measurement.
    let opts: Opts = OptsBuilder::from_opts(opts).init(config.session_sql.clone()).into();
    let mut opening = JoinSet::new();
    for index in 0..config.connections {
        let opts = opts.clone();
        let template = template.clone();
        let protocol = config.protocol;
        opening.spawn(async move { (index, open_connection(&opts, protocol, &template).await) });
    }
    let mut opened = Vec::with_capacity(config.connections);
    while let Some(joined) = opening.join_next().await {
        let (index, result) = joined?;
        opened.push((index, result?));
    }

    let now = Instant::now();
    let context = Arc::new(RunContext {
        opts,
        workload: config.workload,
        protocol: config.protocol,
        template: template.clone(),
        rows: config.rows,
        connections: config.connections as u64,
        first_insert_key,
        run_nonce: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos() as u64)
            .unwrap_or(0),
        seed: config.seed,
        measure_start: now + config.warmup,
        end: now + config.warmup + config.duration,
        operation_timeout: config.operation_timeout,
    });

    let mut tasks = JoinSet::new();
    for (index, (conn, statement)) in opened {
        let context = Arc::clone(&context);
        tasks.spawn(connection_loop(context, index as u64, conn, statement));
    }
    let mut total = ConnectionStats::default();
    while let Some(joined) = tasks.join_next().await {
        let stats = joined?;
        total.histogram.merge(&stats.histogram);
        total.operations += stats.operations;
        total.errors += stats.errors;
        total.warmup_operations += stats.warmup_operations;
        total.warmup_errors += stats.warmup_errors;
        total.error_samples.merge(&stats.error_samples);
    }

    Ok(RunReport::new(
        config,
        target,
        &template,
        setup_time,
        &total.histogram,
        total.operations,
        total.errors,
        total.warmup_operations,
        total.warmup_errors,
        total.error_samples,
    ))
}

/// The first key of `bench.t_insert` no earlier run has used.
async fn next_insert_key(opts: &Opts) -> Result<u64, RunError> {
    let mut conn = Conn::new(opts.clone())
        .await
        .map_err(|source| RunError::Connect {
            target: describe_target(opts),
            source,
        })?;
    let result = conn
        .query_iter(schema::INSERT_NEXT_KEY_SQL)
        .await
        .map_err(|source| RunError::Setup {
            statement: schema::INSERT_NEXT_KEY_SQL.into(),
            source,
        })?;
    let outcome = collect_outcome(result)
        .await
        .map_err(|source| RunError::Setup {
            statement: schema::INSERT_NEXT_KEY_SQL.into(),
            source,
        })?;
    let key = outcome.first_value.and_then(|value| match value {
        Value::Int(number) => u64::try_from(number).ok(),
        Value::UInt(number) => Some(number),
        Value::Bytes(bytes) => std::str::from_utf8(&bytes).ok()?.parse().ok(),
        _ => None,
    });
    let _ = conn.disconnect().await;
    key.ok_or_else(|| {
        RunError::SetupCheck(format!(
            "`{}` returned no usable key",
            schema::INSERT_NEXT_KEY_SQL
        ))
    })
}

/// Opens one connection and, for the binary protocol, prepares the statement on it.
async fn open_connection(
    opts: &Opts,
    protocol: Protocol,
    template: &StatementTemplate,
) -> Result<(Conn, Option<Statement>), RunError> {
    let mut conn = Conn::new(opts.clone())
        .await
        .map_err(|source| RunError::Connect {
            target: describe_target(opts),
            source,
        })?;
    let statement = match protocol {
        Protocol::Text => None,
        Protocol::Binary => {
            Some(
                conn.prep(template.sql())
                    .await
                    .map_err(|source| RunError::Prepare {
                        statement: template.sql().to_owned(),
                        source,
                    })?,
            )
        }
    };
    Ok((conn, statement))
}

/// The closed loop of one connection.
async fn connection_loop(
    context: Arc<RunContext>,
    index: u64,
    conn: Conn,
    statement: Option<Statement>,
) -> ConnectionStats {
    let mut stats = ConnectionStats::default();
    let mut generator = OperationGenerator::new(
        context.workload,
        context.rows,
        index,
        context.connections,
        context.first_insert_key,
        context.run_nonce,
        context.seed,
    );
    let mut connection = Some((conn, statement));
    loop {
        let started = Instant::now();
        if started >= context.end {
            break;
        }
        let measured = started >= context.measure_start;
        let Some((conn, statement)) = connection.as_mut() else {
            // The previous connection broke: replace it, pausing briefly so a dead server is not
            // hammered with connection attempts.
            match open_connection(&context.opts, context.protocol, &context.template).await {
                Ok(fresh) => connection = Some(fresh),
                Err(error) => {
                    stats.count_error(measured, &format!("reconnect: {error}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
            continue;
        };
        let operation = generator.next_operation();
        let expected = operation.expected;
        let result = tokio::time::timeout(
            context.operation_timeout,
            execute(conn, statement.as_ref(), &context.template, operation),
        )
        .await;
        let elapsed = started.elapsed();
        match result {
            Ok(Ok(outcome)) => match expected.check(&outcome) {
                Ok(()) => {
                    if measured {
                        stats.operations += 1;
                        stats
                            .histogram
                            .record(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
                    } else {
                        stats.warmup_operations += 1;
                    }
                }
                Err(message) => stats.count_error(measured, &message),
            },
            Ok(Err(ExecuteError::Server(error))) => stats.count_error(measured, &error.to_string()),
            Ok(Err(ExecuteError::Client(message))) => stats.count_error(measured, &message),
            Ok(Err(ExecuteError::Connection(error))) => {
                stats.count_error(measured, &error.to_string());
                connection = None;
            }
            Err(_) => {
                stats.count_error(
                    measured,
                    &format!("operation timed out after {:?}", context.operation_timeout),
                );
                connection = None;
            }
        }
    }
    if let Some((conn, _)) = connection {
        // The server may already be gone at the end of a failing run; nothing to report then.
        let _ = conn.disconnect().await;
    }
    stats
}

impl ConnectionStats {
    fn count_error(&mut self, measured: bool, message: &str) {
        if measured {
            self.errors += 1;
        } else {
            self.warmup_errors += 1;
        }
        self.error_samples.add(message);
    }
}

/// How an operation failed.
#[derive(Debug)]
enum ExecuteError {
    /// The server answered with an error packet; the connection is still usable.
    Server(mysql_async::Error),
    /// The connection is broken or out of step and must be replaced.
    Connection(mysql_async::Error),
    /// The operation could not be sent at all (for example, a parameter without a literal form).
    Client(String),
}

impl From<mysql_async::Error> for ExecuteError {
    fn from(error: mysql_async::Error) -> Self {
        if error.is_fatal() {
            ExecuteError::Connection(error)
        } else {
            ExecuteError::Server(error)
        }
    }
}

/// Sends one operation and reads the whole answer.
async fn execute(
    conn: &mut Conn,
    statement: Option<&Statement>,
    template: &StatementTemplate,
    operation: Operation,
) -> Result<Outcome, ExecuteError> {
    match statement {
        Some(statement) => {
            let result = conn
                .exec_iter(statement, Params::Positional(operation.parameters))
                .await?;
            Ok(collect_outcome(result).await?)
        }
        None => {
            let text = template
                .render(&operation.parameters)
                .map_err(ExecuteError::Client)?;
            let result = conn.query_iter(text).await?;
            Ok(collect_outcome(result).await?)
        }
    }
}

/// Reads the whole answer and keeps what [`crate::workload::Expected`] checks: the first result
/// set's row count and first value, and the affected-row count.
async fn collect_outcome<P: ResultProtocol>(
    mut result: QueryResult<'_, '_, P>,
) -> Result<Outcome, mysql_async::Error> {
    // For a statement without a result set the OK packet has been read already, so this is its
    // count; for a SELECT it is 0.
    let affected_rows = result.affected_rows();
    let mut rows = 0u64;
    let mut first_value = None;
    result
        .for_each(|row| {
            if rows == 0 {
                first_value = row.as_ref(0).cloned();
            }
            rows += 1;
        })
        .await?;
    // A CALL or a multi-statement override can produce further result sets; they must be read to
    // keep the connection in step, and the expectations apply to the first one only.
    result.drop_result().await?;
    Ok(Outcome {
        rows,
        affected_rows,
        first_value,
    })
}
