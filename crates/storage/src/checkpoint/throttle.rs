//! Disk write throttling for checkpoints (NDB's MinDiskWriteSpeed / MaxDiskWriteSpeed).
//!
//! A checkpoint that wrote as fast as the disk allows would take the disk (and the page cache)
//! away from the Raft log's fsyncs, which every commit waits for. So checkpoint writes are paced:
//! the writer asks the [`Throttle`] when it may write its next slice and the data node sleeps (or
//! serves requests) until then. The throttle is sans-IO: the caller passes the time, as a
//! [`Duration`] since any fixed origin it likes (a simulator passes virtual time).
//!
//! The pacing is a token bucket written as GCRA (the "theoretical arrival time" form): each
//! write of `n` bytes pushes the time at which the bucket would be empty `n / rate` further, and
//! the next write may start once that time is less than one burst ahead of now. Over any long
//! run the average rate is exactly the configured one; a burst of up to `burst_bytes` may go at
//! once after an idle spell.
//!
//! NDB adapts the speed between MinDiskWriteSpeed (node busy) and MaxDiskWriteSpeed (node idle);
//! [`DiskWriteSpeed::rate_for_load`] gives that rate for a load the data node measures, and
//! [`Throttle::set_rate`] applies it between slices.

use std::time::Duration;

/// NDB's MinDiskWriteSpeed default: 10 MiB/s.
pub const DEFAULT_MIN_DISK_WRITE_SPEED: u64 = 10 << 20;
/// NDB's MaxDiskWriteSpeed default: 20 MiB/s.
pub const DEFAULT_MAX_DISK_WRITE_SPEED: u64 = 20 << 20;

/// The range of checkpoint write speeds, in bytes per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiskWriteSpeed {
    pub min_bytes_per_second: u64,
    pub max_bytes_per_second: u64,
}

impl Default for DiskWriteSpeed {
    fn default() -> DiskWriteSpeed {
        DiskWriteSpeed {
            min_bytes_per_second: DEFAULT_MIN_DISK_WRITE_SPEED,
            max_bytes_per_second: DEFAULT_MAX_DISK_WRITE_SPEED,
        }
    }
}

impl DiskWriteSpeed {
    /// The speed for a node whose load is `load` (0.0 idle .. 1.0 saturated): MaxDiskWriteSpeed
    /// when idle, falling linearly to MinDiskWriteSpeed when saturated, as NDB adapts it.
    pub fn rate_for_load(&self, load: f64) -> u64 {
        let load = if load.is_nan() { 1.0 } else { load.clamp(0.0, 1.0) };
        let (min, max) = (self.min_bytes_per_second.min(self.max_bytes_per_second), self.max_bytes_per_second);
        max - ((max - min) as f64 * load).round() as u64
    }
}

/// Paces writes at a number of bytes per second (see the module doc).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Throttle {
    /// 0: no limit.
    bytes_per_second: u64,
    burst_bytes: u64,
    /// When the bucket would be empty if nothing more were written (the GCRA's theoretical
    /// arrival time).
    empty_at: Duration,
}

fn bytes_to_duration(bytes: u64, bytes_per_second: u64) -> Duration {
    if bytes_per_second == 0 {
        return Duration::ZERO;
    }
    let nanos = (bytes as u128 * 1_000_000_000u128).div_ceil(bytes_per_second as u128);
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

impl Throttle {
    /// A throttle at `bytes_per_second` (0: unlimited) allowing bursts of `burst_bytes`.
    pub fn new(bytes_per_second: u64, burst_bytes: u64) -> Throttle {
        Throttle { bytes_per_second, burst_bytes, empty_at: Duration::ZERO }
    }

    /// No limit at all (restarts, tests, measurements).
    pub fn unlimited() -> Throttle {
        Throttle::new(0, 0)
    }

    pub fn rate(&self) -> u64 {
        self.bytes_per_second
    }

    /// Changes the rate for the writes to come; what was written is paid at the old rate.
    pub fn set_rate(&mut self, bytes_per_second: u64) {
        self.bytes_per_second = bytes_per_second;
    }

    /// The earliest time the next write may start.
    pub fn ready_at(&self) -> Duration {
        if self.bytes_per_second == 0 {
            return Duration::ZERO;
        }
        self.empty_at.saturating_sub(bytes_to_duration(self.burst_bytes, self.bytes_per_second))
    }

    pub fn is_ready(&self, now: Duration) -> bool {
        now >= self.ready_at()
    }

    /// Records that `bytes` were written at `now`; returns when the next write may start.
    pub fn consume(&mut self, now: Duration, bytes: u64) -> Duration {
        if self.bytes_per_second == 0 {
            return now;
        }
        self.empty_at = self.empty_at.max(now) + bytes_to_duration(bytes, self.bytes_per_second);
        self.ready_at()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_steady_writer_gets_exactly_the_rate_after_one_burst() {
        let mut throttle = Throttle::new(10 * MIB, MIB);
        let mut now = Duration::ZERO;
        let mut starts = Vec::new();
        for _ in 0..100 {
            now = now.max(throttle.ready_at());
            starts.push(now);
            throttle.consume(now, MIB);
        }
        // The first two slices go at once (one is the burst); then one every 100 ms.
        assert_eq!(starts[0], Duration::ZERO);
        assert_eq!(starts[1], Duration::ZERO);
        for (k, start) in starts.iter().enumerate().skip(1) {
            assert_eq!(*start, Duration::from_millis(100 * (k as u64 - 1)), "slice {k}");
        }
        // 100 MiB at 10 MiB/s: the bucket is empty at exactly 10 s.
        assert_eq!(throttle.ready_at() + Duration::from_millis(100), Duration::from_secs(10));
    }

    #[test]
    fn idle_time_earns_at_most_one_burst() {
        let mut throttle = Throttle::new(MIB, 256 << 10);
        throttle.consume(Duration::ZERO, MIB);
        assert_eq!(throttle.ready_at(), Duration::from_millis(750));
        // A minute later only one burst is available, not a minute's worth.
        let later = Duration::from_secs(60);
        assert!(throttle.is_ready(later));
        let next = throttle.consume(later, 512 << 10);
        assert_eq!(next, later + Duration::from_millis(250));
        assert!(!throttle.is_ready(later + Duration::from_millis(249)));
    }

    #[test]
    fn rates_follow_the_load_between_min_and_max() {
        let speed = DiskWriteSpeed::default();
        assert_eq!(speed.rate_for_load(0.0), 20 * MIB);
        assert_eq!(speed.rate_for_load(1.0), 10 * MIB);
        assert_eq!(speed.rate_for_load(0.5), 15 * MIB);
        assert_eq!(speed.rate_for_load(7.0), 10 * MIB);
        assert_eq!(speed.rate_for_load(f64::NAN), 10 * MIB);
        let mut unlimited = Throttle::unlimited();
        assert_eq!(unlimited.consume(Duration::from_secs(3), u64::MAX), Duration::from_secs(3));
        let mut throttle = Throttle::new(MIB, 0);
        throttle.consume(Duration::ZERO, MIB);
        throttle.set_rate(2 * MIB);
        assert_eq!(throttle.consume(Duration::from_secs(1), MIB), Duration::from_millis(1500));
    }
}
