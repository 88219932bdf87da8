//! `cairn-loadgen`: runs one workload against a MySQL-protocol server and reports throughput and
//! latency. See `benches/README.md` for the workloads and how to compare Cairn with MariaDB.

use std::process::ExitCode;
use std::time::Duration;

use cairn_bench::run::RunConfig;
use cairn_bench::{Protocol, Workload};
use clap::Parser;

/// Closed-loop MySQL-protocol load generator for Cairn and its MariaDB peer.
#[derive(Debug, Parser)]
// Later occurrences of a flag win, so wrappers such as compare.sh can put defaults first and let
// the user's own flags override them.
#[command(name = "cairn-loadgen", version, args_override_self = true)]
struct Args {
    /// Server to load, e.g. mysql://root@127.0.0.1:3306/ (always reached over TCP).
    #[arg(long)]
    url: String,

    /// point-select, insert, update, exim-join or greylist.
    #[arg(long, value_parser = parse_workload)]
    workload: Workload,

    /// text: COM_QUERY with literals (as Exim sends); binary: prepared statements.
    #[arg(long, default_value = "binary", value_parser = parse_protocol)]
    protocol: Protocol,

    /// Concurrent connections, each a closed loop.
    #[arg(long, default_value_t = 32)]
    connections: usize,

    /// Length of the measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,

    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,

    /// Size of the data set (rows of bench.t, calmail.account or greylist.greylist_triplet).
    #[arg(long, default_value_t = 100_000)]
    rows: u64,

    /// Recreate the schema and load the data before running (the default).
    #[arg(long, overrides_with = "no_setup")]
    setup: bool,

    /// Use the data already there (loaded earlier with the same --rows).
    #[arg(long, overrides_with = "setup")]
    no_setup: bool,

    /// Rows per INSERT statement while loading.
    #[arg(long, default_value_t = 1000)]
    batch_rows: u64,

    /// Seed of the key sequence; the same seed gives the same load.
    #[arg(long, default_value_t = 1)]
    seed: u64,

    /// Replace the measured statement (same ? placeholders in the same order). The report marks
    /// the result as overridden.
    #[arg(long)]
    query: Option<String>,

    /// Seconds after which one operation counts as failed and its connection is replaced.
    #[arg(long, default_value_t = 10.0)]
    op_timeout: f64,

    /// Worker threads of the load generator's runtime (default: one per core).
    #[arg(long)]
    threads: Option<usize>,

    /// A statement every measured connection runs when it opens (repeatable), e.g.
    /// `--session-sql "SET cairn_plan_cache = 0"`.
    #[arg(long = "session-sql")]
    session_sql: Vec<String>,

    /// Print the report as one JSON line instead of text.
    #[arg(long)]
    json: bool,

    /// Print the workload's schema statements and measured statement, then exit.
    #[arg(long)]
    print_sql: bool,
}

fn parse_workload(text: &str) -> Result<Workload, String> {
    text.parse()
}

fn parse_protocol(text: &str) -> Result<Protocol, String> {
    text.parse()
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("--{flag} must be a non-negative number of seconds"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.print_sql {
        for statement in args.workload.schema_statements() {
            println!("{statement};");
        }
        println!(
            "-- data: {} rows in batches of {}, e.g.",
            args.rows, args.batch_rows
        );
        if let Some((statement, _)) = args.workload.load_statements(args.rows.min(2), 2).next() {
            println!("{statement};");
        }
        println!("-- measured:");
        println!(
            "{};",
            args.query.as_deref().unwrap_or(args.workload.statement())
        );
        return ExitCode::SUCCESS;
    }

    let config = match build_config(&args) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("cairn-loadgen: {message}");
            return ExitCode::from(2);
        }
    };

    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(threads) = args.threads {
        runtime.worker_threads(threads.max(1));
    }
    let runtime = match runtime.build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cairn-loadgen: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };

    match runtime.block_on(cairn_bench::run(&config)) {
        Ok(report) => {
            if args.json {
                println!("{}", report.to_json());
            } else {
                print!("{report}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cairn-loadgen: {error}");
            ExitCode::FAILURE
        }
    }
}

fn build_config(args: &Args) -> Result<RunConfig, String> {
    let mut config = RunConfig::new(args.url.clone(), args.workload);
    config.protocol = args.protocol;
    config.connections = args.connections;
    config.duration = seconds(args.seconds, "seconds")?;
    config.warmup = seconds(args.warmup, "warmup")?;
    config.rows = args.rows;
    config.setup = !args.no_setup;
    config.batch_rows = args.batch_rows;
    config.seed = args.seed;
    config.query_override = args.query.clone();
    config.operation_timeout = seconds(args.op_timeout, "op-timeout")?;
    config.session_sql = args.session_sql.clone();
    Ok(config)
}
