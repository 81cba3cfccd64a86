//! Fusing a visit's faces: the quality weight of one face and the weighted mean of embeddings.
//!
//! A visit shows the same face many times; one frame varies with pose, blur and light more than
//! their mean does. The weight favours what the encoder is good at: a large, sharp, frontal
//! face. Each factor is in [0.05, 1] (a face that passed the quality gates is never ignored,
//! only counted less), and a NaN measure gives weight 0 (the face is left out).

use super::compare::is_finite;
use crate::face::encode::{Embedding, EMBEDDING_DIM};
use crate::face::quality::Quality;

/// Eye distance (px) from which size no longer adds weight.
const FULL_EYE_PX: f32 = 64.0;
/// Laplacian variance from which sharpness no longer adds weight (4x the default gate).
const FULL_SHARPNESS: f32 = 60.0;
/// Yaw at which the pose factor reaches its floor (twice the default gate).
const ZERO_YAW: f32 = 0.5;
const FLOOR: f32 = 0.05;

/// The weight of one face in a fused embedding: size x sharpness x pose, each in [0.05, 1];
/// 0 when a measure is NaN.
pub fn quality_weight(q: &Quality) -> f32 {
    let f = |x: f32| {
        if x.is_nan() {
            0.0
        } else {
            x.clamp(FLOOR, 1.0)
        }
    };
    f(q.eye_distance_px / FULL_EYE_PX)
        * f(q.sharpness / FULL_SHARPNESS)
        * f(1.0 - q.yaw.abs() / ZERO_YAW)
}

/// The weighted mean of the finite embeddings with a finite positive weight; `None` if there
/// are none (or the mean is not finite).
pub fn weighted_mean<'a>(items: impl Iterator<Item = (&'a Embedding, f32)>) -> Option<Embedding> {
    let mut sum = [0f64; EMBEDDING_DIM];
    let mut total = 0f64;
    for (e, w) in items {
        if !(w.is_finite() && w > 0.0 && is_finite(e)) {
            continue;
        }
        for (s, x) in sum.iter_mut().zip(e.0) {
            *s += f64::from(w) * f64::from(x);
        }
        total += f64::from(w);
    }
    if total <= 0.0 {
        return None;
    }
    let m = Embedding(sum.map(|s| (s / total) as f32));
    is_finite(&m).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(eye: f32, sharp: f32, yaw: f32) -> Quality {
        Quality {
            eye_distance_px: eye,
            sharpness: sharp,
            yaw,
        }
    }

    #[test]
    fn weight_prefers_large_sharp_frontal_faces_and_nan_counts_nothing() {
        assert_eq!(quality_weight(&q(80.0, 100.0, 0.0)), 1.0);
        assert!(quality_weight(&q(32.0, 100.0, 0.0)) < quality_weight(&q(48.0, 100.0, 0.0)));
        assert!(quality_weight(&q(64.0, 15.0, 0.0)) < quality_weight(&q(64.0, 30.0, 0.0)));
        assert!(quality_weight(&q(64.0, 60.0, -0.2)) < quality_weight(&q(64.0, 60.0, 0.1)));
        assert!(quality_weight(&q(1.0, 0.0, 3.0)) > 0.0);
        assert_eq!(quality_weight(&q(f32::NAN, 60.0, 0.0)), 0.0);
        assert_eq!(quality_weight(&q(64.0, 60.0, f32::NAN)), 0.0);
    }

    #[test]
    fn weighted_mean_skips_nan_and_zero_weights() {
        let mut a = [0.0; EMBEDDING_DIM];
        a[0] = 1.0;
        let mut b = [0.0; EMBEDDING_DIM];
        b[1] = 1.0;
        let (a, b) = (Embedding(a), Embedding(b));
        let m = weighted_mean([(&a, 3.0), (&b, 1.0)].into_iter()).unwrap();
        assert!((m.0[0] - 0.75).abs() < 1e-6 && (m.0[1] - 0.25).abs() < 1e-6);
        let nan = Embedding([f32::NAN; EMBEDDING_DIM]);
        let m = weighted_mean([(&a, 1.0), (&nan, 5.0), (&b, 0.0), (&b, f32::NAN)].into_iter());
        assert_eq!(m, Some(a));
        assert_eq!(weighted_mean([(&nan, 1.0)].into_iter()), None);
        assert_eq!(weighted_mean(std::iter::empty()), None);
    }
}
