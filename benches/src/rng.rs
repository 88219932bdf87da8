//! A small seeded pseudo-random generator (SplitMix64) for choosing keys.
//!
//! Each connection owns one, seeded from the run's seed and the connection's index, so that a
//! run's access pattern is the same every time (and the same against MariaDB and Cairn) and no
//! generator state is shared between tasks. Statistical quality far beyond what uniform key
//! choice needs; not for anything cryptographic.

/// SplitMix64: a 64-bit state advanced by a constant, then mixed.
#[derive(Debug, Clone)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose sequence is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 pseudo-random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.state)
    }

    /// A value in `0..bound`, nearly uniform (the bias of the multiply-shift reduction is below
    /// bound / 2^64, far under anything a benchmark can see). `bound` must be positive.
    pub fn below(&mut self, bound: u64) -> u64 {
        debug_assert!(bound > 0, "below(0) has no valid answer");
        ((u128::from(self.next_u64()) * u128::from(bound)) >> 64) as u64
    }
}

/// The SplitMix64 finaliser: a bijection on `u64` that scatters nearby inputs. Also used to
/// derive stable per-row data from a row number.
pub fn mix(mut value: u64) -> u64 {
    value = (value ^ (value >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    value ^ (value >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_sequence() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SplitMix64::new(7).next_u64(), SplitMix64::new(8).next_u64());
    }

    #[test]
    fn below_covers_the_range_evenly() {
        let mut rng = SplitMix64::new(1);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            let value = rng.below(10);
            assert!(value < 10);
            counts[value as usize] += 1;
        }
        for count in counts {
            assert!((9_000..11_000).contains(&count), "uneven counts {counts:?}");
        }
    }
}
