//! What a run reports: throughput, latency percentiles, errors with sample messages, and enough
//! about the configuration to tell two results apart. Printed for people as a few aligned lines,
//! or as one JSON object per run for scripts (`--json`).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

use crate::histogram::LatencyHistogram;
use crate::run::RunConfig;
use crate::workload::StatementTemplate;

/// How many distinct error messages a run keeps.
pub const MAX_ERROR_SAMPLES: usize = 5;

/// The first few distinct error messages of a run, each with how often it occurred. Messages
/// past the limit are counted in the run's error total but not kept.
#[derive(Debug, Default, Clone, Serialize)]
#[serde(transparent)]
pub struct ErrorSamples {
    samples: Vec<ErrorSample>,
}

/// One distinct error message and its count.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ErrorSample {
    pub message: String,
    pub count: u64,
}

impl ErrorSamples {
    /// Counts one occurrence of `message`.
    pub fn add(&mut self, message: &str) {
        self.add_count(message, 1);
    }

    fn add_count(&mut self, message: &str, count: u64) {
        if let Some(sample) = self
            .samples
            .iter_mut()
            .find(|sample| sample.message == message)
        {
            sample.count += count;
        } else if self.samples.len() < MAX_ERROR_SAMPLES {
            self.samples.push(ErrorSample {
                message: message.to_owned(),
                count,
            });
        }
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &ErrorSamples) {
        for sample in &other.samples {
            self.add_count(&sample.message, sample.count);
        }
    }

    /// The kept samples, in the order they were first seen.
    pub fn samples(&self) -> &[ErrorSample] {
        &self.samples
    }
}

/// Latency percentiles of the successful operations, in microseconds.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySummary {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencySummary {
    /// Percentiles of a histogram of nanoseconds, in microseconds rounded to 0.1.
    fn from_nanoseconds(histogram: &LatencyHistogram) -> Self {
        let micros = |nanoseconds: f64| (nanoseconds / 100.0).round() / 10.0;
        Self {
            min: micros(histogram.min() as f64),
            mean: micros(histogram.mean()),
            p50: micros(histogram.percentile(50.0) as f64),
            p90: micros(histogram.percentile(90.0) as f64),
            p99: micros(histogram.percentile(99.0) as f64),
            p999: micros(histogram.percentile(99.9) as f64),
            max: micros(histogram.max() as f64),
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub workload: String,
    pub protocol: String,
    /// `user@host:port` (never the password).
    pub target: String,
    pub connections: usize,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub rows: u64,
    /// How long schema creation and loading took, when the run did them.
    pub setup_seconds: Option<f64>,
    /// Successful operations that started inside the measured window.
    pub ops: u64,
    /// Failed operations (error packets, wrong answers, broken connections, timeouts) inside the
    /// measured window.
    pub errors: u64,
    /// Successful operations per second of the measured window.
    pub qps: f64,
    pub latency_us: LatencySummary,
    pub warmup_ops: u64,
    pub warmup_errors: u64,
    /// Up to [`MAX_ERROR_SAMPLES`] distinct messages, warm-up included.
    pub error_samples: ErrorSamples,
    /// The measured statement.
    pub statement: String,
    /// True when `--query` replaced the workload's own statement.
    pub statement_overridden: bool,
}

impl RunReport {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        config: &RunConfig,
        target: String,
        template: &StatementTemplate,
        setup_time: Option<Duration>,
        histogram: &LatencyHistogram,
        ops: u64,
        errors: u64,
        warmup_ops: u64,
        warmup_errors: u64,
        error_samples: ErrorSamples,
    ) -> Self {
        let seconds = config.duration.as_secs_f64();
        Self {
            workload: config.workload.name().to_owned(),
            protocol: config.protocol.name().to_owned(),
            target,
            connections: config.connections,
            seconds,
            warmup_seconds: config.warmup.as_secs_f64(),
            rows: config.rows,
            setup_seconds: setup_time.map(|time| (time.as_secs_f64() * 100.0).round() / 100.0),
            ops,
            errors,
            qps: ((ops as f64 / seconds) * 10.0).round() / 10.0,
            latency_us: LatencySummary::from_nanoseconds(histogram),
            warmup_ops,
            warmup_errors,
            error_samples,
            statement: template.sql().to_owned(),
            statement_overridden: config.query_override.is_some(),
        }
    }

    /// The report as one line of JSON.
    pub fn to_json(&self) -> String {
        // Serialising plain numbers and strings cannot fail; the fallback keeps this total anyway.
        serde_json::to_string(self).unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "workload {} ({} protocol) against {}: {} connections, {} s measured after {} s warm-up, {} rows",
            self.workload,
            self.protocol,
            self.target,
            self.connections,
            self.seconds,
            self.warmup_seconds,
            self.rows
        )?;
        if self.statement_overridden {
            writeln!(f, "  statement OVERRIDDEN with --query: {}", self.statement)?;
        }
        if let Some(setup) = self.setup_seconds {
            writeln!(f, "  setup        {setup:.2} s")?;
        }
        writeln!(f, "  ops          {}", self.ops)?;
        writeln!(
            f,
            "  errors       {}{}",
            self.errors,
            if self.warmup_errors > 0 {
                format!(" (+{} during warm-up)", self.warmup_errors)
            } else {
                String::new()
            }
        )?;
        writeln!(f, "  qps          {:.1}", self.qps)?;
        let latency = &self.latency_us;
        writeln!(
            f,
            "  latency us   p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})",
            latency.p50, latency.p90, latency.p99, latency.p999, latency.max, latency.mean
        )?;
        for sample in self.error_samples.samples() {
            writeln!(f, "  error x{}: {}", sample.count, sample.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_distinct_counted_and_bounded() {
        let mut samples = ErrorSamples::default();
        samples.add("a");
        samples.add("a");
        for index in 0..10 {
            samples.add(&format!("other {index}"));
        }
        assert_eq!(samples.samples().len(), MAX_ERROR_SAMPLES);
        assert_eq!(
            samples.samples()[0],
            ErrorSample {
                message: "a".into(),
                count: 2
            }
        );

        let mut merged = ErrorSamples::default();
        merged.add("a");
        merged.merge(&samples);
        assert_eq!(merged.samples()[0].count, 3);
    }
}
