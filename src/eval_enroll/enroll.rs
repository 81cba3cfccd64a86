//! Enrollment from several photos: which rule scores a probe against a person's photos best?
//!
//! Per draw, each person with more than `max(photos)` usable images has them shuffled; the
//! images after the first `max(photos)` are the probes (the same probes for every photo count
//! and rule, so the rows compare like with like) and the first `m` are enrolled. Genuine
//! scores: each probe against its own person; impostor scores: each probe against every other
//! enrolled person (1:1 verification, TAR at fixed FAR); rank-1: the nearest person is the
//! probe's own.

use super::dataset::{Embedded, Shot};
use super::{pct, MeanSd, Rng};
use crate::face::encode::Embedding;
use crate::metrics;
use crate::policy::fusion::{quality_weight, weighted_mean};
use serde::Serialize;

/// How a person's enrolled photos make the templates a probe is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreRule {
    /// Every photo is a template; the distance is to the nearest one (the gallery's rule
    /// before issue 13).
    Nearest,
    /// One template: the mean embedding.
    Mean,
    /// One template: the mean of the unit-length embeddings, at unit length; the probe is
    /// scaled to unit length too.
    MeanUnit,
    /// One template: the mean weighted by each photo's quality
    /// ([`quality_weight`](crate::policy::fusion::quality_weight)).
    QualityMean,
}

impl ScoreRule {
    pub const ALL: [ScoreRule; 4] = [
        ScoreRule::Nearest,
        ScoreRule::Mean,
        ScoreRule::MeanUnit,
        ScoreRule::QualityMean,
    ];

    pub fn name(self) -> &'static str {
        match self {
            ScoreRule::Nearest => "nearest",
            ScoreRule::Mean => "mean",
            ScoreRule::MeanUnit => "mean_unit",
            ScoreRule::QualityMean => "quality_mean",
        }
    }

    /// The templates of one person enrolled from `shots` (at least one).
    pub fn templates(self, shots: &[Shot]) -> Vec<Embedding> {
        match self {
            ScoreRule::Nearest => shots.iter().map(|s| s.embedding).collect(),
            ScoreRule::Mean => weighted_mean(shots.iter().map(|s| (&s.embedding, 1.0)))
                .into_iter()
                .collect(),
            ScoreRule::MeanUnit => {
                let units: Vec<Embedding> = shots.iter().map(|s| unit(&s.embedding)).collect();
                weighted_mean(units.iter().map(|e| (e, 1.0)))
                    .map(|m| unit(&m))
                    .into_iter()
                    .collect()
            }
            ScoreRule::QualityMean => weighted_mean(
                shots
                    .iter()
                    .map(|s| (&s.embedding, quality_weight(&s.quality))),
            )
            .into_iter()
            .collect(),
        }
    }

    /// The probe as this rule compares it.
    pub fn probe(self, e: &Embedding) -> Embedding {
        match self {
            ScoreRule::MeanUnit => unit(e),
            _ => *e,
        }
    }
}

/// `e` scaled to unit length (unchanged if its length is 0).
pub fn unit(e: &Embedding) -> Embedding {
    let n = e.0.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        Embedding(e.0.map(|x| x / n))
    } else {
        *e
    }
}

/// Distance from `probe` to the nearest of `templates`.
pub fn score(probe: &Embedding, templates: &[Embedding]) -> f32 {
    templates
        .iter()
        .map(|t| probe.distance(t))
        .fold(f32::INFINITY, f32::min)
}

#[derive(Debug, Clone)]
pub struct EnrollOptions {
    /// Photo counts to enroll from, e.g. 1, 3, 5.
    pub photos: Vec<usize>,
    pub draws: usize,
    pub fars: Vec<f64>,
    pub seed: u64,
}

/// One (photo count, rule) row.
#[derive(Debug, Clone, Serialize)]
pub struct EnrollRow {
    pub photos: usize,
    pub rule: ScoreRule,
    /// Per FAR: TAR mean ± sd over the draws where it was measurable.
    pub tar_at_far: Vec<(f64, Option<MeanSd>)>,
    pub rank1: Option<MeanSd>,
    /// Per draw: genuine and impostor scores (the last draw's counts).
    pub genuine: usize,
    pub impostor: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnrollReport {
    pub set: String,
    pub images: usize,
    pub missed: usize,
    /// People with enough usable images (more than the largest photo count).
    pub people: usize,
    pub draws: usize,
    pub rows: Vec<EnrollRow>,
}

/// Runs every photo count and rule over `opts.draws` draws.
pub fn evaluate(set: &Embedded, opts: &EnrollOptions) -> EnrollReport {
    let max_m = opts.photos.iter().copied().max().unwrap_or(1);
    let people: Vec<&Vec<Shot>> = set
        .people
        .iter()
        .map(|p| &p.1)
        .filter(|s| s.len() > max_m)
        .collect();
    let mut rng = Rng::new(opts.seed);
    // per (m, rule): per FAR the TAR of each draw, rank-1 of each draw, score counts
    type Acc = (usize, ScoreRule, Vec<Vec<f64>>, Vec<f64>, usize, usize);
    let mut acc: Vec<Acc> = Vec::new();
    for &m in &opts.photos {
        for rule in ScoreRule::ALL {
            acc.push((m, rule, vec![vec![]; opts.fars.len()], vec![], 0, 0));
        }
    }
    for _ in 0..opts.draws {
        let order: Vec<Vec<usize>> = people
            .iter()
            .map(|s| {
                let mut o: Vec<usize> = (0..s.len()).collect();
                rng.shuffle(&mut o);
                o
            })
            .collect();
        for row in acc.iter_mut() {
            let (m, rule) = (row.0, row.1);
            let (genuine, impostor, rank1) = draw_scores(&people, &order, m, max_m, rule);
            for (k, &far) in opts.fars.iter().enumerate() {
                if let Some((tar, _)) = metrics::tar_at_far(&genuine, &impostor, far) {
                    row.2[k].push(tar);
                }
            }
            row.3.push(rank1);
            row.4 = genuine.len();
            row.5 = impostor.len();
        }
    }
    EnrollReport {
        set: set.name.clone(),
        images: set.images,
        missed: set.missed.len(),
        people: people.len(),
        draws: opts.draws,
        rows: acc
            .into_iter()
            .map(|(photos, rule, tars, r1, g, i)| EnrollRow {
                photos,
                rule,
                tar_at_far: opts
                    .fars
                    .iter()
                    .zip(tars)
                    .map(|(&f, v)| (f, MeanSd::of(&v)))
                    .collect(),
                rank1: MeanSd::of(&r1),
                genuine: g,
                impostor: i,
            })
            .collect(),
    }
}

/// One draw under one rule: genuine scores, impostor scores, rank-1 rate.
fn draw_scores(
    people: &[&Vec<Shot>],
    order: &[Vec<usize>],
    m: usize,
    max_m: usize,
    rule: ScoreRule,
) -> (Vec<f32>, Vec<f32>, f64) {
    let templates: Vec<Vec<Embedding>> = people
        .iter()
        .zip(order)
        .map(|(s, o)| {
            let enrolled: Vec<Shot> = o[..m].iter().map(|&i| s[i]).collect();
            rule.templates(&enrolled)
        })
        .collect();
    let (mut genuine, mut impostor) = (Vec::new(), Vec::new());
    let (mut right, mut probes) = (0usize, 0usize);
    for (pi, (s, o)) in people.iter().zip(order).enumerate() {
        for &i in &o[max_m..] {
            let probe = rule.probe(&s[i].embedding);
            let scores: Vec<f32> = templates.iter().map(|t| score(&probe, t)).collect();
            let nearest = (0..scores.len())
                .min_by(|&a, &b| scores[a].total_cmp(&scores[b]))
                .expect("at least one person");
            right += usize::from(nearest == pi);
            probes += 1;
            for (qi, &d) in scores.iter().enumerate() {
                if qi == pi {
                    genuine.push(d);
                } else {
                    impostor.push(d);
                }
            }
        }
    }
    (genuine, impostor, right as f64 / probes.max(1) as f64)
}

impl std::fmt::Display for EnrollReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} images ({} without a face), {} people with enough photos, {} draws",
            self.set, self.images, self.missed, self.people, self.draws
        )?;
        write!(f, "  {:>6} {:<13}", "photos", "rule")?;
        if let Some(r) = self.rows.first() {
            for (far, _) in &r.tar_at_far {
                write!(f, " {:>14}", format!("TAR@FAR {far:.0e}"))?;
            }
        }
        writeln!(f, " {:>14} {:>9} {:>9}", "rank-1", "genuine", "impostor")?;
        for r in &self.rows {
            write!(f, "  {:>6} {:<13}", r.photos, r.rule.name())?;
            for (_, t) in &r.tar_at_far {
                write!(f, " {}", pct(*t))?;
            }
            writeln!(f, " {} {:>9} {:>9}", pct(r.rank1), r.genuine, r.impostor)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::encode::EMBEDDING_DIM;

    fn shot(v: &[f32]) -> Shot {
        let mut e = [0.0; EMBEDDING_DIM];
        e[..v.len()].copy_from_slice(v);
        Shot {
            embedding: Embedding(e),
            quality: crate::face::quality::Quality {
                eye_distance_px: 64.0,
                sharpness: 60.0,
                yaw: 0.0,
            },
        }
    }

    #[test]
    fn rules_build_their_templates() {
        let s = [shot(&[1.0, 0.0]), shot(&[0.0, 2.0])];
        assert_eq!(ScoreRule::Nearest.templates(&s).len(), 2);
        let m = ScoreRule::Mean.templates(&s);
        assert_eq!(&m[0].0[..2], &[0.5, 1.0]);
        let u = ScoreRule::MeanUnit.templates(&s);
        let h = 0.5f32.sqrt();
        assert!((u[0].0[0] - h).abs() < 1e-6 && (u[0].0[1] - h).abs() < 1e-6);
        assert_eq!(ScoreRule::QualityMean.templates(&s), m);
        assert_eq!(
            score(&s[0].embedding, &ScoreRule::Nearest.templates(&s)),
            0.0
        );
    }
}
