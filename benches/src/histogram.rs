//! A log-linear latency histogram in the style of HdrHistogram.
//!
//! Values (nanoseconds here) are counted in buckets whose width grows with the value: every power
//! of two is split into [`SUB_BUCKETS_PER_HALF`] equal sub-buckets, so the width of a bucket is
//! never more than 1/128 of the values it holds (under 0.8 % relative error) while the whole
//! `u64` range fits in a few thousand counters. Values below 256 get a bucket each.
//!
//! Each load-generator connection owns one histogram and records into it without locks; the
//! histograms are merged once at the end of a run. Percentiles are reported as the upper bound
//! of the bucket that holds them (the conservative choice, as HdrHistogram's "highest equivalent
//! value"), capped at the exact maximum seen. The exact minimum, maximum and sum are kept too.

/// log2 of the number of sub-buckets in the first (linear) range: values below 2^8 = 256 are
/// counted exactly.
const LINEAR_BITS: u32 = 8;
/// Sub-buckets per power of two above the linear range.
const SUB_BUCKETS_PER_HALF: usize = 1 << (LINEAR_BITS - 1);
/// Number of counters needed to cover every `u64`.
const BUCKET_COUNT: usize = (64 - LINEAR_BITS as usize + 2) * SUB_BUCKETS_PER_HALF;

/// A histogram of `u64` values (latencies in nanoseconds, by convention of this crate).
#[derive(Clone)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencyHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencyHistogram")
            .field("total", &self.total)
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

/// The bucket index of `value`.
fn bucket_index(value: u64) -> usize {
    if value < (1 << LINEAR_BITS) {
        return value as usize;
    }
    // `group` is how many low bits are dropped: 1 for [256, 512), 2 for [512, 1024), and so on.
    // The kept top bits lie in [SUB_BUCKETS_PER_HALF, 2 * SUB_BUCKETS_PER_HALF), so the indices of
    // consecutive groups follow each other without gaps or overlaps.
    let highest_bit = 63 - value.leading_zeros();
    let group = highest_bit - LINEAR_BITS + 1;
    let sub_bucket = (value >> group) as usize;
    group as usize * SUB_BUCKETS_PER_HALF + sub_bucket
}

/// The largest value that falls into bucket `index`.
fn bucket_upper_bound(index: usize) -> u64 {
    if index < (1 << LINEAR_BITS) {
        return index as u64;
    }
    let group = (index / SUB_BUCKETS_PER_HALF - 1) as u32;
    let sub_bucket = (index - group as usize * SUB_BUCKETS_PER_HALF) as u64;
    let low = sub_bucket << group;
    low.saturating_add((1u64 << group) - 1)
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self {
            counts: vec![0; BUCKET_COUNT],
            total: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    /// Counts one value.
    pub fn record(&mut self, value: u64) {
        self.counts[bucket_index(value)] += 1;
        self.total += 1;
        self.sum += u128::from(value);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
    }

    /// Adds every value counted by `other` to `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    /// How many values were recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded, or 0 when empty.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The smallest value recorded, or 0 when empty.
    pub fn min(&self) -> u64 {
        if self.total == 0 { 0 } else { self.min }
    }

    /// The arithmetic mean, or 0 when empty.
    pub fn mean(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum as f64 / self.total as f64
        }
    }

    /// The value below or at which `percentile` per cent of the recorded values lie (within the
    /// bucket resolution, rounded up), or 0 when empty. `percentile` is clamped to [0, 100].
    pub fn percentile(&self, percentile: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let fraction = percentile.clamp(0.0, 100.0) / 100.0;
        // The rank of the wanted value among the sorted values, 1-based; at least the first.
        let rank = ((fraction * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return bucket_upper_bound(index).min(self.max).max(self.min);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_are_contiguous_and_monotonic() {
        // Walking values across several group boundaries must visit every index in order.
        let mut previous = bucket_index(0);
        assert_eq!(previous, 0);
        for value in 1..200_000u64 {
            let index = bucket_index(value);
            assert!(
                index == previous || index == previous + 1,
                "gap at value {value}"
            );
            previous = index;
        }
        assert!(bucket_index(u64::MAX) < BUCKET_COUNT);
    }

    #[test]
    fn upper_bound_is_the_last_value_of_each_bucket() {
        for value in [
            0u64,
            1,
            255,
            256,
            257,
            511,
            512,
            1000,
            123_456,
            1 << 40,
            u64::MAX - 1,
        ] {
            let index = bucket_index(value);
            let upper = bucket_upper_bound(index);
            assert!(upper >= value, "bound {upper} below value {value}");
            assert_eq!(
                bucket_index(upper),
                index,
                "bound of {value} lies in another bucket"
            );
            if upper < u64::MAX {
                assert_eq!(
                    bucket_index(upper + 1),
                    index + 1,
                    "bucket of {value} ends early"
                );
            }
        }
    }

    #[test]
    fn relative_error_stays_under_one_percent() {
        for value in (256..10_000_000u64).step_by(997) {
            let upper = bucket_upper_bound(bucket_index(value));
            assert!(
                (upper - value) as f64 / value as f64 <= 1.0 / 128.0,
                "value {value}"
            );
        }
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let mut histogram = LatencyHistogram::new();
        for value in 1..=10_000u64 {
            histogram.record(value * 100);
        }
        assert_eq!(histogram.count(), 10_000);
        assert_eq!(histogram.min(), 100);
        assert_eq!(histogram.max(), 1_000_000);
        for (percentile, exact) in [(50.0, 500_000u64), (90.0, 900_000), (99.0, 990_000)] {
            let reported = histogram.percentile(percentile);
            assert!(reported >= exact, "p{percentile}: {reported} < {exact}");
            assert!(
                reported as f64 <= exact as f64 * 1.008,
                "p{percentile}: {reported} too high"
            );
        }
        assert_eq!(histogram.percentile(100.0), 1_000_000);
        assert!((histogram.mean() - 500_050.0).abs() < 1e-6);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut left = LatencyHistogram::new();
        let mut right = LatencyHistogram::new();
        let mut both = LatencyHistogram::new();
        for value in 0..5_000u64 {
            let scrambled = value.wrapping_mul(2_654_435_761) % 3_000_000;
            if value % 3 == 0 {
                left.record(scrambled)
            } else {
                right.record(scrambled)
            }
            both.record(scrambled);
        }
        left.merge(&right);
        assert_eq!(left.count(), both.count());
        assert_eq!(left.min(), both.min());
        assert_eq!(left.max(), both.max());
        for percentile in [1.0, 50.0, 90.0, 99.0, 99.9] {
            assert_eq!(left.percentile(percentile), both.percentile(percentile));
        }
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        let histogram = LatencyHistogram::new();
        assert_eq!(histogram.percentile(50.0), 0);
        assert_eq!(histogram.min(), 0);
        assert_eq!(histogram.max(), 0);
        assert_eq!(histogram.mean(), 0.0);
    }
}
