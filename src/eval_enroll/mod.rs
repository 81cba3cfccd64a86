//! `facegate eval-enroll` and `facegate eval-visits` (issue 13 items 5 and 6): how many photos
//! to enroll a person from and how to score a probe against them, and how to decide a visit
//! from its frames (per-frame K of N, or one fused embedding), measured on dev sets with several
//! photos per person.
//!
//! Every image is embedded once through the door's own path ([`dataset::embed`]); every draw
//! then re-uses the embeddings. Draws are seeded, so a figure is reproduced by its command.
//!
//! * [`dataset`]: reading a set (identities TSV, a folder per person, or `<person>.<x>` files)
//!   and embedding it.
//! * [`enroll`]: enrollment from 1, 3, 5 photos under each template rule: TAR at fixed FAR and
//!   rank-1 identification, mean ± sd over random draws of the enrolled photos.
//! * [`visits`]: simulated visits (N photos of one person in random order) under K of N and
//!   fusion, TAR at fixed FAR per visit, and the fused threshold chosen leave-one-set-out.

pub mod dataset;
pub mod enroll;
pub mod visits;

use serde::Serialize;

/// A seeded random generator (splitmix64): reproducible draws without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fisher-Yates.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            v.swap(i, self.below(i + 1));
        }
    }
}

/// Mean and standard deviation over draws (`n` draws where the figure was measurable).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MeanSd {
    pub mean: f64,
    pub sd: f64,
    pub n: usize,
}

impl MeanSd {
    /// `None` when no value was measurable.
    pub fn of(values: &[f64]) -> Option<MeanSd> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        Some(MeanSd {
            mean,
            sd,
            n: values.len(),
        })
    }
}

impl std::fmt::Display for MeanSd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:6.2}% ± {:4.2}", self.mean * 100.0, self.sd * 100.0)
    }
}

/// A percentage figure or "n/a" (too few impostors to measure it).
pub(crate) fn pct(m: Option<MeanSd>) -> String {
    m.map_or_else(|| format!("{:>14}", "n/a"), |m| m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_seeded_and_shuffle_is_a_permutation() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut v: Vec<usize> = (0..50).collect();
        a.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>());
        v.sort();
        assert_eq!(v, (0..50).collect::<Vec<_>>());
        let m = MeanSd::of(&[0.5, 0.7]).unwrap();
        assert!((m.mean - 0.6).abs() < 1e-12 && (m.sd - 0.1).abs() < 1e-12);
        assert!(MeanSd::of(&[]).is_none());
    }
}
