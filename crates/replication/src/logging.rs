//! A bridge from raft-rs's `slog` logging to `tracing`.
//!
//! raft-rs logs through `slog`. Cairn logs through `tracing`, so a small drain forwards every
//! raft-rs record as a `tracing` event with target `raft`, at the matching level (critical and
//! error become ERROR, warning WARN, info INFO, debug DEBUG, trace TRACE). The record's
//! key-value pairs (raft-rs attaches the node id, term and the like) are rendered into one
//! `raft` field as `key=value` pairs; nothing is formatted unless the level is enabled.

use std::fmt::{self, Write as _};

use slog::{Drain, KV, Key, Level, OwnedKVList, Record, Serializer};

/// Forwards slog records to `tracing`. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingDrain;

/// A `slog::Logger` that forwards to `tracing`, tagged with the group and node ids so that
/// messages from several Raft groups in one process can be told apart.
pub fn raft_logger(group_id: u64, node_id: u64) -> slog::Logger {
    slog::Logger::root(
        TracingDrain,
        slog::o!("group" => group_id, "node" => node_id),
    )
}

fn enabled(level: Level) -> bool {
    match level {
        Level::Critical | Level::Error => tracing::enabled!(target: "raft", tracing::Level::ERROR),
        Level::Warning => tracing::enabled!(target: "raft", tracing::Level::WARN),
        Level::Info => tracing::enabled!(target: "raft", tracing::Level::INFO),
        Level::Debug => tracing::enabled!(target: "raft", tracing::Level::DEBUG),
        Level::Trace => tracing::enabled!(target: "raft", tracing::Level::TRACE),
    }
}

/// Collects key-value pairs as `key=value` text.
struct KeyValues(String);

impl Serializer for KeyValues {
    fn emit_arguments(&mut self, key: Key, value: &fmt::Arguments<'_>) -> slog::Result {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        // Writing into a String cannot fail.
        let _ = write!(self.0, "{key}={value}");
        Ok(())
    }
}

impl Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record<'_>, values: &OwnedKVList) -> Result<(), slog::Never> {
        let level = record.level();
        if !enabled(level) {
            return Ok(());
        }
        let mut fields = KeyValues(String::new());
        // Serializing into a String does not fail; a failing KV implementation would only
        // lose context, not the message.
        let _ = record.kv().serialize(record, &mut fields);
        let _ = values.serialize(record, &mut fields);
        let message = record.msg();
        let fields = fields.0;
        match level {
            Level::Critical | Level::Error => {
                tracing::error!(target: "raft", raft = %fields, "{message}")
            }
            Level::Warning => tracing::warn!(target: "raft", raft = %fields, "{message}"),
            Level::Info => tracing::info!(target: "raft", raft = %fields, "{message}"),
            Level::Debug => tracing::debug!(target: "raft", raft = %fields, "{message}"),
            Level::Trace => tracing::trace!(target: "raft", raft = %fields, "{message}"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps everything the fmt subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn records_arrive_at_the_right_level_with_their_fields() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::INFO)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let logger = raft_logger(7, 3);
            slog::warn!(logger, "became follower at term {}", 5; "lead" => 2);
            slog::debug!(logger, "this is below the level");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        assert!(text.contains("WARN"), "{text}");
        assert!(text.contains("became follower at term 5"), "{text}");
        assert!(text.contains("lead=2"), "{text}");
        assert!(text.contains("group=7"), "{text}");
        assert!(!text.contains("below the level"), "{text}");
    }
}
