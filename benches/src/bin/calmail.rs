//! `cairn-calmail`: loads the CalMail data set (1.5 million rows at scale 1) into a
//! MySQL-protocol server and times the operator's analytics over it, on Cairn and MariaDB side by
//! side. See `benches/README.md` ("CalMail data set") and `docs/performance.md`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cairn_bench::calmail::DataSet;
use cairn_bench::calmail_run::{self, QUERIES};
use cairn_bench::run::connection_options;
use clap::{Parser, Subcommand};

/// The CalMail data set and its analytics, for Cairn and its MariaDB peer.
#[derive(Debug, Parser)]
#[command(name = "cairn-calmail", version)]
struct Args {
    /// Server(s), e.g. mysql://root@127.0.0.1:3306/ (always over TCP). `load` and `verify` act on
    /// each in turn; `analytics` alternates between them and compares their answers.
    #[arg(long, required = true)]
    url: Vec<String>,

    /// Size of the data set: 1.0 is CalMail's (22,220 lists, 1,164,015 subscriptions, 1.5M rows).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Recreate the `calmail` database and load the data set, then check every table's count.
    Load {
        /// Connections loading at once.
        #[arg(long, default_value_t = 4)]
        connections: usize,
        /// Rows per multi-row INSERT.
        #[arg(long, default_value_t = 1000)]
        batch_rows: u64,
    },
    /// Check that every table holds the data set's row count.
    Verify,
    /// Run the analytics queries on every --url, alternating, and compare the answers.
    Analytics {
        /// Runs of each query on each server (the median is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Seconds one run may take before the query counts as failed on that server.
        #[arg(long, default_value_t = 300.0)]
        timeout: f64,
        /// Only these queries (repeatable); default all.
        #[arg(long)]
        query: Vec<String>,
    },
    /// Print the schema, the queries and a sample INSERT, then exit.
    PrintSql,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(args.scale > 0.0 && args.scale <= 100.0) {
        eprintln!("cairn-calmail: --scale must be in (0, 100]");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cairn-calmail: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("cairn-calmail: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<ExitCode, String> {
    let data = Arc::new(DataSet::new(args.scale));
    let mut targets = Vec::new();
    for url in &args.url {
        targets.push(connection_options(url).map_err(|error| error.to_string())?);
    }
    match args.command {
        Command::PrintSql => {
            for statement in cairn_bench::calmail::schema_statements() {
                println!("{statement};");
            }
            for table in cairn_bench::calmail::Table::ALL {
                println!("{};", data.insert_statement(table, 0..2u64.min(data.rows(table))));
            }
            for query in QUERIES {
                println!("-- {}\n{};", query.name, query.sql);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Load { connections, batch_rows } => {
            for opts in &targets {
                let report = calmail_run::load(opts, Arc::clone(&data), connections, batch_rows)
                    .await
                    .map_err(|error| error.to_string())?;
                println!(
                    "loaded {} rows into {} in {:.1} s ({:.0} rows/s; {connections} connections, {batch_rows} rows per INSERT)",
                    report.rows,
                    report.target,
                    report.elapsed.as_secs_f64(),
                    report.rows as f64 / report.elapsed.as_secs_f64().max(1e-9)
                );
                for (table, rows, took) in &report.tables {
                    println!("  {table:<12} {rows:>9} rows  {:>7.1} s", took.as_secs_f64());
                }
                calmail_run::verify_counts(opts, &data).await.map_err(|error| error.to_string())?;
                println!("  every table's COUNT(*) is right");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify => {
            for opts in &targets {
                calmail_run::verify_counts(opts, &data).await.map_err(|error| error.to_string())?;
                println!("{}: every table's COUNT(*) is right", cairn_bench::run::describe_target(opts));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Analytics { runs, timeout, query } => {
            if !(timeout > 0.0 && timeout.is_finite()) {
                return Err("--timeout must be positive".into());
            }
            for name in &query {
                if !QUERIES.iter().any(|known| known.name == name) {
                    let names: Vec<&str> = QUERIES.iter().map(|known| known.name).collect();
                    return Err(format!("no query named {name}; the queries are {}", names.join(", ")));
                }
            }
            let reports = calmail_run::run_analytics(
                &targets,
                &data,
                &query,
                runs,
                Duration::from_secs_f64(timeout),
            )
            .await
            .map_err(|error| error.to_string())?;
            let mut wrong = 0;
            for report in &reports {
                println!("{}", report.query.name);
                for timing in &report.timings {
                    let runs: Vec<String> =
                        timing.runs.iter().map(|run| format!("{:.3}", run.as_secs_f64())).collect();
                    match (&timing.error, timing.median()) {
                        (Some(error), _) => println!("  {:<28} FAILED: {error}", timing.target),
                        (None, Some(median)) => println!(
                            "  {:<28} median {:>8.3} s  runs [{}]  {} row(s)",
                            timing.target,
                            median.as_secs_f64(),
                            runs.join(", "),
                            timing.answer.as_ref().map_or(0, Vec::len)
                        ),
                        (None, None) => println!("  {:<28} no run", timing.target),
                    }
                }
                if let Some(mismatch) = &report.mismatch {
                    wrong += 1;
                    println!("  WRONG: {mismatch}");
                }
            }
            let failed = reports
                .iter()
                .filter(|report| report.timings.iter().any(|timing| timing.error.is_some()))
                .count();
            println!("{} queries, {wrong} with differing or wrong answers, {failed} with failures", reports.len());
            Ok(if wrong == 0 && failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
