//! Verification metrics over distance scores: ROC, AUC, EER, TAR at a FAR, the threshold for
//! a target FAR, and k-fold accuracy with the threshold chosen on the training folds.
//!
//! Convention throughout: a pair is accepted as "same person" when its distance is strictly
//! below the threshold (dlib's rule for this encoder).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    pub threshold: f32,
    pub far: f64,
    pub tar: f64,
}

/// One ROC point per distinct score, from the strictest threshold to the loosest.
pub fn roc(genuine: &[f32], impostor: &[f32]) -> Vec<RocPoint> {
    let mut all: Vec<(f32, bool)> = genuine
        .iter()
        .map(|&d| (d, true))
        .chain(impostor.iter().map(|&d| (d, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (ng, ni) = (genuine.len().max(1) as f64, impostor.len().max(1) as f64);
    let mut out = vec![RocPoint {
        threshold: all.first().map_or(0.0, |a| a.0),
        far: 0.0,
        tar: 0.0,
    }];
    let (mut tg, mut ti) = (0usize, 0usize);
    let mut i = 0;
    while i < all.len() {
        let d = all[i].0;
        while i < all.len() && all[i].0 == d {
            if all[i].1 {
                tg += 1;
            } else {
                ti += 1;
            }
            i += 1;
        }
        // accepting everything below the next distinct score accepts all up to d
        let next = all.get(i).map_or(f32::INFINITY, |a| a.0);
        out.push(RocPoint {
            threshold: if next.is_finite() {
                (d + next) / 2.0
            } else {
                d + 1e-3
            },
            far: ti as f64 / ni,
            tar: tg as f64 / ng,
        });
    }
    out
}

/// Area under the ROC curve (trapezoids).
pub fn auc(curve: &[RocPoint]) -> f64 {
    curve
        .windows(2)
        .map(|w| (w[1].far - w[0].far) * (w[1].tar + w[0].tar) / 2.0)
        .sum()
}

/// Equal error rate (where FAR = FRR) and the threshold where it occurs.
pub fn eer(curve: &[RocPoint]) -> (f64, f32) {
    let mut best = (f64::INFINITY, 1.0, 0.0f32);
    for p in curve {
        let frr = 1.0 - p.tar;
        let gap = (p.far - frr).abs();
        if gap < best.0 {
            best = (gap, (p.far + frr) / 2.0, p.threshold);
        }
    }
    (best.1, best.2)
}

/// The loosest threshold whose false-accept rate on `impostor` is at most `far`, or `None` when
/// there are too few impostor scores to measure that rate (fewer than 1/far).
pub fn threshold_for_far(impostor: &[f32], far: f64) -> Option<f32> {
    if impostor.is_empty() || (impostor.len() as f64) * far < 1.0 - 1e-9 {
        return None;
    }
    let mut s = impostor.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let allowed = (far * s.len() as f64 + 1e-9).floor() as usize;
    // Accepting d < s[allowed] accepts at most `allowed` impostors.
    Some(s[allowed.min(s.len() - 1)])
}

/// TAR at a FAR and the threshold used, if measurable.
pub fn tar_at_far(genuine: &[f32], impostor: &[f32], far: f64) -> Option<(f64, f32)> {
    let t = threshold_for_far(impostor, far)?;
    Some((accept_rate(genuine, t), t))
}

pub fn accept_rate(scores: &[f32], threshold: f32) -> f64 {
    if scores.is_empty() {
        return 0.0;
    }
    scores.iter().filter(|&&d| d < threshold).count() as f64 / scores.len() as f64
}

/// The threshold maximising accuracy on `(distance, same)` samples.
pub fn best_threshold(samples: &[(f32, bool)]) -> f32 {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total_diff = s.iter().filter(|x| !x.1).count();
    // threshold below everything: all rejected -> correct = number of different pairs
    let mut correct = total_diff as i64;
    let mut best = (correct, s.first().map_or(0.6, |x| x.0 - 1e-4));
    let mut i = 0;
    while i < s.len() {
        let d = s[i].0;
        while i < s.len() && s[i].0 == d {
            correct += if s[i].1 { 1 } else { -1 };
            i += 1;
        }
        let next = s.get(i).map_or(d + 1e-4, |x| x.0);
        if correct > best.0 {
            best = (correct, (d + next) / 2.0);
        }
    }
    best.1
}

#[derive(Debug, Clone, Serialize)]
pub struct KFold {
    pub mean: f64,
    pub std: f64,
    pub per_fold: Vec<f64>,
    pub thresholds: Vec<f32>,
}

/// Accuracy over folds: for each fold, the threshold is chosen on the other folds and tested
/// on this one. `samples` are `(distance, same, fold)`.
pub fn kfold_accuracy(samples: &[(f32, bool, usize)], folds: usize) -> KFold {
    let mut per_fold = Vec::new();
    let mut thresholds = Vec::new();
    for f in 0..folds {
        let train: Vec<(f32, bool)> = samples
            .iter()
            .filter(|s| s.2 != f)
            .map(|s| (s.0, s.1))
            .collect();
        let test: Vec<&(f32, bool, usize)> = samples.iter().filter(|s| s.2 == f).collect();
        if test.is_empty() || train.is_empty() {
            continue;
        }
        let t = best_threshold(&train);
        let ok = test.iter().filter(|s| (s.0 < t) == s.1).count();
        per_fold.push(ok as f64 / test.len() as f64);
        thresholds.push(t);
    }
    let n = per_fold.len().max(1) as f64;
    let mean = per_fold.iter().sum::<f64>() / n;
    let std = (per_fold.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
    KFold {
        mean,
        std,
        per_fold,
        thresholds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfectly_separated_scores() {
        let g = [0.1, 0.2, 0.3];
        let i = [0.7, 0.8, 0.9, 1.0];
        let c = roc(&g, &i);
        assert!((auc(&c) - 1.0).abs() < 1e-12);
        let (e, t) = eer(&c);
        assert_eq!(e, 0.0);
        assert!(t > 0.3 && t < 0.7);
        assert_eq!(
            best_threshold(&[(0.1, true), (0.3, true), (0.7, false)]),
            0.5
        );
    }

    #[test]
    fn far_threshold_counts_impostors() {
        let imp: Vec<f32> = (0..1000).map(|k| 0.5 + k as f32 / 1000.0).collect();
        // 1e-2 of 1000 = 10 impostors may pass: threshold is the 11th smallest
        let t = threshold_for_far(&imp, 1e-2).unwrap();
        assert_eq!(imp.iter().filter(|&&d| d < t).count(), 10);
        assert!(threshold_for_far(&imp, 1e-4).is_none());
        let (tar, _) = tar_at_far(&[0.1, 0.6], &imp, 1e-3).unwrap();
        assert_eq!(tar, 0.5);
    }

    #[test]
    fn kfold_uses_held_out_threshold() {
        let mut s = Vec::new();
        for k in 0..100 {
            s.push((0.3 + (k % 7) as f32 * 0.01, true, k % 10));
            s.push((0.8 + (k % 5) as f32 * 0.01, false, k % 10));
        }
        let kf = kfold_accuracy(&s, 10);
        assert_eq!(kf.per_fold.len(), 10);
        assert_eq!(kf.mean, 1.0);
    }
}
