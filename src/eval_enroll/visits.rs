//! Simulated visits: does one fused embedding decide a visit better than K of N frames?
//!
//! Per draw, the people of a set are shuffled: half are enrolled (from `enroll` photos each,
//! nearest-template rule), the other half are strangers. A genuine visit is `frames` photos of
//! an enrolled person (not the enrolled ones) in random order; an impostor visit is `frames`
//! photos of a stranger, against the whole gallery. Both rules see the frames one at a time,
//! as the door does, and decide as soon as they can:
//!
//! * K of N: a frame matches its nearest person when it is within the threshold and at least
//!   `min_margin` nearer than the runner-up; the visit is accepted for `p` when `k` frames
//!   match `p`. Its score (lowest threshold that accepts it) is, over people, the smallest
//!   `k`-th distance of the frames whose nearest person is `p` with the margin.
//! * Fusion: after each frame from the `k`-th on, the quality-weighted mean of the frames so
//!   far is matched (same margin); the score is the smallest such distance.
//!
//! A genuine visit accepted for someone else counts as not accepted. TAR at a fixed FAR per
//! visit puts both rules at matched operating points (each at its own threshold for the FAR).

use super::dataset::{Embedded, Shot};
use super::enroll::score;
use super::{pct, MeanSd, Rng};
use crate::face::encode::Embedding;
use crate::metrics;
use crate::policy::fusion::{quality_weight, weighted_mean};
use serde::Serialize;

/// How a visit is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VisitRule {
    KOfN,
    /// Quality-weighted mean of the frames.
    Fusion,
    /// Plain mean (to see what the quality weight adds).
    FusionUnweighted,
}

impl VisitRule {
    pub const ALL: [VisitRule; 3] = [
        VisitRule::KOfN,
        VisitRule::Fusion,
        VisitRule::FusionUnweighted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            VisitRule::KOfN => "k_of_n",
            VisitRule::Fusion => "fusion",
            VisitRule::FusionUnweighted => "fusion_unweighted",
        }
    }
}

#[derive(Debug, Clone)]
pub struct VisitOptions {
    /// Photos each enrolled person is enrolled from.
    pub enroll: usize,
    /// Frames per visit (N).
    pub frames: usize,
    /// Agreeing frames K of N needs; fusion decides from the `k`-th frame on.
    pub k: usize,
    pub min_margin: f32,
    /// Visits per person and draw.
    pub visits: usize,
    pub draws: usize,
    pub fars: Vec<f64>,
    pub seed: u64,
}

/// Per rule, the visit scores of every draw (`f32::INFINITY`: never accepted).
#[derive(Debug, Clone, Serialize)]
pub struct RuleScores {
    pub rule: VisitRule,
    #[serde(skip)]
    pub genuine: Vec<Vec<f32>>,
    #[serde(skip)]
    pub impostor: Vec<Vec<f32>>,
    pub tar_at_far: Vec<(f64, Option<MeanSd>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct VisitReport {
    pub set: String,
    pub images: usize,
    pub missed: usize,
    pub enrolled: usize,
    pub strangers: usize,
    pub genuine_visits: usize,
    pub impostor_visits: usize,
    pub rules: Vec<RuleScores>,
}

/// A gallery of templates (nearest-template rule) for the simulation.
struct SimGallery(Vec<Vec<Embedding>>);

impl SimGallery {
    /// Nearest person, its distance and the runner-up's.
    fn best(&self, e: &Embedding) -> (usize, f32, f32) {
        let (mut b, mut bd, mut sd) = (0, f32::INFINITY, f32::INFINITY);
        for (i, t) in self.0.iter().enumerate() {
            let d = score(e, t);
            if d < bd {
                sd = bd;
                (b, bd) = (i, d);
            } else if d < sd {
                sd = d;
            }
        }
        (b, bd, sd)
    }
}

/// The visit's score under `rule` and the person it is accepted for.
fn visit_score(g: &SimGallery, frames: &[Shot], rule: VisitRule, o: &VisitOptions) -> (f32, usize) {
    let mut best = (f32::INFINITY, usize::MAX);
    match rule {
        VisitRule::KOfN => {
            let mut per: Vec<Vec<f32>> = vec![vec![]; g.0.len()];
            for f in frames {
                let (p, d, r) = g.best(&f.embedding);
                if r - d >= o.min_margin {
                    per[p].push(d);
                }
            }
            for (p, mut ds) in per.into_iter().enumerate() {
                if ds.len() >= o.k.max(1) {
                    ds.sort_by(f32::total_cmp);
                    let s = ds[o.k.max(1) - 1];
                    if s < best.0 {
                        best = (s, p);
                    }
                }
            }
        }
        VisitRule::Fusion | VisitRule::FusionUnweighted => {
            for j in o.k.max(1)..=frames.len() {
                let w = |s: &Shot| {
                    if rule == VisitRule::Fusion {
                        quality_weight(&s.quality)
                    } else {
                        1.0
                    }
                };
                let Some(m) = weighted_mean(frames[..j].iter().map(|s| (&s.embedding, w(s))))
                else {
                    continue;
                };
                let (p, d, r) = g.best(&m);
                if r - d >= o.min_margin && d < best.0 {
                    best = (d, p);
                }
            }
        }
    }
    best
}

/// `frames` distinct random shots of `shots` (all of them if fewer), in random order.
fn sample(rng: &mut Rng, shots: &[Shot], frames: usize) -> Vec<Shot> {
    let mut idx: Vec<usize> = (0..shots.len()).collect();
    rng.shuffle(&mut idx);
    idx.into_iter().take(frames).map(|i| shots[i]).collect()
}

/// One draw: half the usable people enrolled (their first `enroll` shots after a shuffle), the
/// rest of their shots left to visit; the other half are strangers.
struct Draw<'a> {
    gallery: SimGallery,
    visitors: Vec<Vec<Shot>>,
    strangers: Vec<&'a Vec<Shot>>,
}

fn draw<'a>(rng: &mut Rng, usable: &[&'a Vec<Shot>], opts: &VisitOptions) -> Option<Draw<'a>> {
    let mut order: Vec<usize> = (0..usable.len()).collect();
    rng.shuffle(&mut order);
    let half = order.len() / 2;
    let mut gallery = Vec::new();
    let mut visitors: Vec<Vec<Shot>> = Vec::new();
    for &p in &order[..half] {
        let mut s = usable[p].clone();
        rng.shuffle(&mut s);
        if s.len() < opts.enroll + opts.frames {
            continue;
        }
        gallery.push(s[..opts.enroll].iter().map(|x| x.embedding).collect());
        visitors.push(s[opts.enroll..].to_vec());
    }
    let strangers = order[half..].iter().map(|&p| usable[p]).collect();
    (gallery.len() >= 2).then_some(Draw {
        gallery: SimGallery(gallery),
        visitors,
        strangers,
    })
}

/// The genuine and impostor visit scores of one draw, per rule (in `rules` order). A genuine
/// visit that names the wrong person scores infinity (never accepted).
fn score_draw(
    rng: &mut Rng,
    d: &Draw,
    rules: &[RuleScores],
    opts: &VisitOptions,
) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut genuine = vec![vec![]; rules.len()];
    let mut impostor = vec![vec![]; rules.len()];
    for (pi, shots) in d.visitors.iter().enumerate() {
        for _ in 0..opts.visits {
            let v = sample(rng, shots, opts.frames);
            for (r, rs) in rules.iter().enumerate() {
                let (s, p) = visit_score(&d.gallery, &v, rs.rule, opts);
                genuine[r].push(if p == pi { s } else { f32::INFINITY });
            }
        }
    }
    for shots in &d.strangers {
        for _ in 0..opts.visits {
            let v = sample(rng, shots, opts.frames);
            for (r, rs) in rules.iter().enumerate() {
                impostor[r].push(visit_score(&d.gallery, &v, rs.rule, opts).0);
            }
        }
    }
    (genuine, impostor)
}

/// TAR at each of `fars`, mean and sd over the draws.
fn tar_at_fars(rs: &RuleScores, fars: &[f64]) -> Vec<(f64, Option<MeanSd>)> {
    fars.iter()
        .map(|&far| {
            let v: Vec<f64> = rs
                .genuine
                .iter()
                .zip(&rs.impostor)
                .filter_map(|(g, i)| metrics::tar_at_far(g, i, far).map(|x| x.0))
                .collect();
            (far, MeanSd::of(&v))
        })
        .collect()
}

/// Simulates `opts.draws` draws of visits on one set.
pub fn evaluate(set: &Embedded, opts: &VisitOptions) -> VisitReport {
    let usable: Vec<&Vec<Shot>> = set
        .people
        .iter()
        .map(|p| &p.1)
        .filter(|s| s.len() >= opts.frames)
        .collect();
    let mut rng = Rng::new(opts.seed);
    let mut rules: Vec<RuleScores> = VisitRule::ALL
        .iter()
        .map(|&rule| RuleScores {
            rule,
            genuine: vec![],
            impostor: vec![],
            tar_at_far: vec![],
        })
        .collect();
    let (mut enrolled_n, mut strangers_n, mut gv, mut iv) = (0, 0, 0, 0);
    for _ in 0..opts.draws {
        let Some(d) = draw(&mut rng, &usable, opts) else {
            continue;
        };
        (enrolled_n, strangers_n) = (d.gallery.0.len(), d.strangers.len());
        let (mut genuine, mut impostor) = score_draw(&mut rng, &d, &rules, opts);
        (gv, iv) = (genuine[0].len(), impostor[0].len());
        for (r, rs) in rules.iter_mut().enumerate() {
            rs.genuine.push(std::mem::take(&mut genuine[r]));
            rs.impostor.push(std::mem::take(&mut impostor[r]));
        }
    }
    for rs in &mut rules {
        rs.tar_at_far = tar_at_fars(rs, &opts.fars);
    }
    VisitReport {
        set: set.name.clone(),
        images: set.images,
        missed: set.missed.len(),
        enrolled: enrolled_n,
        strangers: strangers_n,
        genuine_visits: gv,
        impostor_visits: iv,
        rules,
    }
}

/// One held-out set of a leave-one-set-out threshold choice.
#[derive(Debug, Clone, Serialize)]
pub struct HeldOut {
    pub rule: VisitRule,
    pub set: String,
    /// Chosen on the other sets' impostor visits for the target FAR.
    pub threshold: f32,
    /// On the held-out set (all draws pooled).
    pub far: f64,
    pub tar: f64,
}

/// For each rule and set: the threshold that gives `far` on the other sets' impostor visits
/// (pooled), and the FAR and TAR it gives on the held-out set.
pub fn leave_one_set_out(reports: &[VisitReport], far: f64) -> Vec<HeldOut> {
    let pooled = |r: &VisitReport, k: usize, genuine: bool| -> Vec<f32> {
        let rs = &r.rules[k];
        let v = if genuine { &rs.genuine } else { &rs.impostor };
        v.iter().flatten().copied().collect()
    };
    let mut out = Vec::new();
    for (k, rule) in VisitRule::ALL.iter().enumerate() {
        for (h, held) in reports.iter().enumerate() {
            let train: Vec<f32> = reports
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != h)
                .flat_map(|(_, r)| pooled(r, k, false))
                .collect();
            let Some(t) = metrics::threshold_for_far(&train, far) else {
                continue;
            };
            out.push(HeldOut {
                rule: *rule,
                set: held.set.clone(),
                threshold: t,
                far: metrics::accept_rate(&pooled(held, k, false), t),
                tar: metrics::accept_rate(&pooled(held, k, true), t),
            });
        }
    }
    out
}

/// The threshold for `far` on every set's impostor visits pooled, per rule.
pub fn pooled_threshold(reports: &[VisitReport], far: f64) -> Vec<(VisitRule, Option<f32>)> {
    VisitRule::ALL
        .iter()
        .enumerate()
        .map(|(k, &rule)| {
            let all: Vec<f32> = reports
                .iter()
                .flat_map(|r| r.rules[k].impostor.iter().flatten().copied())
                .collect();
            (rule, metrics::threshold_for_far(&all, far))
        })
        .collect()
}

/// Per rule: TAR and FAR of each set's visits at a fixed threshold.
pub fn at_threshold(r: &VisitReport, rule: VisitRule, t: f32) -> (f64, f64) {
    let rs = r
        .rules
        .iter()
        .find(|x| x.rule == rule)
        .expect("every rule scored");
    let g: Vec<f32> = rs.genuine.iter().flatten().copied().collect();
    let i: Vec<f32> = rs.impostor.iter().flatten().copied().collect();
    (metrics::accept_rate(&g, t), metrics::accept_rate(&i, t))
}

impl std::fmt::Display for VisitReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: {} images ({} without a face); per draw {} enrolled, {} strangers, {} genuine and {} impostor visits",
            self.set, self.images, self.missed, self.enrolled, self.strangers, self.genuine_visits, self.impostor_visits
        )?;
        write!(f, "  {:<18}", "rule")?;
        if let Some(r) = self.rules.first() {
            for (far, _) in &r.tar_at_far {
                write!(f, " {:>14}", format!("TAR@FAR {far:.0e}"))?;
            }
        }
        writeln!(f)?;
        for r in &self.rules {
            write!(f, "  {:<18}", r.rule.name())?;
            for (_, t) in &r.tar_at_far {
                write!(f, " {}", pct(*t))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// One decision on a recorded clip: the frame it came at and what it was.
#[derive(Debug, Clone, Serialize)]
pub struct ClipDecision {
    pub frame: usize,
    pub decision: crate::policy::Decision,
}

/// Replays the frames of `dir` (file-name order, `fps` apart) through the door's per-frame
/// path and a fresh policy with `settings`, as the daemon does (liveness included); returns
/// every decision that is not a wait.
pub fn replay_clip(
    engine: &mut crate::face::FaceEngine,
    gallery: &crate::gallery::Gallery,
    settings: &crate::policy::PolicySettings,
    liveness: &mut dyn crate::frame::LivenessCheck,
    dir: &std::path::Path,
    fps: u32,
) -> crate::Result<Vec<ClipDecision>> {
    let mut frames: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| crate::Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| matches!(x.to_str(), Some("jpg" | "jpeg" | "png")))
        })
        .collect();
    frames.sort();
    let mut policy = crate::policy::Policy::new(settings.clone());
    let t0 = std::time::Instant::now();
    let step = std::time::Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
    let mut times = crate::frame::FrameTimes::default();
    let mut out = Vec::new();
    for (i, p) in frames.iter().enumerate() {
        let img = crate::imageio::load_rgb(p)?;
        let ev = crate::frame::evidence(engine, gallery, settings, liveness, &img, &mut times)?;
        let (d, _) = policy.observe_in(t0 + step * i as u32, &ev, gallery);
        if d != crate::policy::Decision::Wait {
            out.push(ClipDecision {
                frame: i,
                decision: d,
            });
        }
    }
    Ok(out)
}
