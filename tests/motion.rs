//! Temporal liveness ([`facegate::face::motion`]) on real frames through the real pipeline
//! (BlazeFace + dlib landmarks, the door's face pick): the recorded clip of a real person must
//! not read flat, a photo moved rigidly in front of the camera (a live frame warped by the
//! homographies of a plane turned, tilted and shifted) should read flat (it does not: ignored
//! known failure), and a photo held still must not read live.
//!
//! Measured and DROPPED (issue 12, deliverable 3): on nuaa_dev and on synthetic rigidly moved
//! photos the statistic does not separate prints from live faces (figures in the report; rerun
//! the ignored test below). The module stays unwired.
//!
//! The measurement on nuaa_dev (research-use data, never in the repo) is an ignored test:
//! `FACEGATE_NUAA_DIR=../shared/datasets/nuaa_dev cargo test --test main motion::nuaa -- --ignored --nocapture`.

use crate::common;

use facegate::face::geometry::Point;
use facegate::face::motion::{
    homography, pair_motion_of, point_residuals, verdict_of, FacePoints, MotionSettings,
    MotionVerdict, PairMotion, VisitMotion, ALL_POINTS,
};
use facegate::face::pick::FacePick;
use facegate::face::FaceEngine;
use facegate::imageio::load_rgb;
use image::RgbImage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The chosen face's eleven points (unrounded landmarks), `None` without a face.
fn face_points(engine: &mut FaceEngine, img: &RgbImage) -> Option<FacePoints> {
    let dets = engine.detect(img).unwrap();
    let det = FacePick::Largest.pick(&dets)?;
    let models = engine.models().clone();
    let lm = models
        .predictor
        .predict(img, &models.box_mapping.apply(det));
    let lm = if std::env::var_os("FACEGATE_MOTION_ROUNDED").is_some() {
        lm.rounded()
    } else {
        lm
    };
    Some(FacePoints::new(det, &lm))
}

/// splitmix64: a small deterministic generator for the synthetic attacks.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self) -> f64 {
        let u = self.uniform(1e-12, 1.0);
        let v = self.uniform(0.0, 1.0);
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// How a flat photo is presented in one synthetic frame: turned (`yaw`, `pitch`, `roll`,
/// radians) about its centre, moved (`dx`, `dy` in pixels, `scale`) in front of a camera of
/// focal length `focal` px at `distance` px.
#[derive(Debug, Clone, Copy)]
struct PlanePose {
    yaw: f64,
    pitch: f64,
    roll: f64,
    dx: f64,
    dy: f64,
    scale: f64,
}

impl PlanePose {
    fn random(rng: &mut Rng, max_turn: f64) -> Self {
        PlanePose {
            yaw: rng.uniform(-max_turn, max_turn),
            pitch: rng.uniform(-max_turn, max_turn),
            roll: rng.uniform(-0.15, 0.15),
            dx: rng.uniform(-40.0, 40.0),
            dy: rng.uniform(-30.0, 30.0),
            scale: rng.uniform(0.85, 1.15),
        }
    }

    /// Where image point `u` of the photo (held flat, facing the camera, filling the frame as
    /// captured) appears when the photo is in this pose.
    fn project(&self, u: Point, w: f64, h: f64) -> Point {
        let focal = 550.0; // a 60-degree webcam at 640 px
        let depth = focal; // the photo fills the frame as it was captured
        let (cx, cy) = (w / 2.0, h / 2.0);
        // Back-project onto the plane z = depth, centred on the optical axis.
        let p = [(u.x - cx) * depth / focal, (u.y - cy) * depth / focal, 0.0];
        let (sy, cyw) = self.yaw.sin_cos();
        let (sp, cp) = self.pitch.sin_cos();
        let (sr, cr) = self.roll.sin_cos();
        // R = Rz(roll) Ry(yaw) Rx(pitch)
        let rx = [p[0], cp * p[1] - sp * p[2], sp * p[1] + cp * p[2]];
        let ry = [cyw * rx[0] + sy * rx[2], rx[1], -sy * rx[0] + cyw * rx[2]];
        let rz = [cr * ry[0] - sr * ry[1], sr * ry[0] + cr * ry[1], ry[2]];
        let z = depth / self.scale + rz[2];
        Point::new(
            cx + self.dx + focal * rz[0] / z,
            cy + self.dy + focal * rz[1] / z,
        )
    }
}

/// The photo `src` seen in `pose`, with Gaussian camera noise of `noise` grey levels.
fn present(src: &RgbImage, pose: &PlanePose, noise: f64, rng: &mut Rng) -> RgbImage {
    let (w, h) = (f64::from(src.width()), f64::from(src.height()));
    let corners = [
        Point::new(0.0, 0.0),
        Point::new(w, 0.0),
        Point::new(w, h),
        Point::new(0.0, h),
    ];
    let seen = corners.map(|c| pose.project(c, w, h));
    // Output pixel -> photo pixel, fitted in normalised coordinates.
    let (s, off) = (w.max(h), Point::new(w / 2.0, h / 2.0));
    let norm = |p: Point| Point::new((p.x - off.x) / s, (p.y - off.y) / s);
    let hm = homography(&seen.map(norm), &corners.map(norm)).expect("a pose homography");
    let mut out = RgbImage::new(src.width(), src.height());
    for (x, y, px) in out.enumerate_pixels_mut() {
        let q = norm(Point::new(f64::from(x) + 0.5, f64::from(y) + 0.5));
        let wgt = hm[6] * q.x + hm[7] * q.y + 1.0;
        let u = (hm[0] * q.x + hm[1] * q.y + hm[2]) / wgt * s + off.x - 0.5;
        let v = (hm[3] * q.x + hm[4] * q.y + hm[5]) / wgt * s + off.y - 0.5;
        let n = noise * rng.gauss();
        px.0 = bilinear(src, u, v).map(|c| (c + n).round().clamp(0.0, 255.0) as u8);
    }
    out
}

/// Bilinear sample (grey-ish background outside the photo).
fn bilinear(img: &RgbImage, u: f64, v: f64) -> [f64; 3] {
    let (w, h) = (img.width() as i64, img.height() as i64);
    let (x0, y0) = (u.floor() as i64, v.floor() as i64);
    let (fx, fy) = (u - x0 as f64, v - y0 as f64);
    let mut acc = [0.0; 3];
    for (dx, dy, wt) in [
        (0, 0, (1.0 - fx) * (1.0 - fy)),
        (1, 0, fx * (1.0 - fy)),
        (0, 1, (1.0 - fx) * fy),
        (1, 1, fx * fy),
    ] {
        let (x, y) = (x0 + dx, y0 + dy);
        let c = if x >= 0 && y >= 0 && x < w && y < h {
            img.get_pixel(x as u32, y as u32).0.map(f64::from)
        } else {
            [110.0, 110.0, 110.0]
        };
        for k in 0..3 {
            acc[k] += wt * c[k];
        }
    }
    acc
}

/// Visits of `n` frames of the photo: moved rigidly (`max_turn` > 0) or held still (0).
fn synthetic_visits(
    engine: &mut FaceEngine,
    photo: &RgbImage,
    visits: usize,
    n: usize,
    max_turn: f64,
    rng: &mut Rng,
) -> Vec<Vec<FacePoints>> {
    let mut out = Vec::new();
    for _ in 0..visits {
        let mut frames = Vec::new();
        for _ in 0..n {
            let pose = if max_turn > 0.0 {
                PlanePose::random(rng, max_turn)
            } else {
                PlanePose {
                    yaw: 0.0,
                    pitch: 0.0,
                    roll: 0.0,
                    dx: 0.0,
                    dy: 0.0,
                    scale: 1.0,
                }
            };
            let img = present(photo, &pose, 2.0, rng);
            if let Some(p) = face_points(engine, &img) {
                frames.push(p);
            }
        }
        out.push(frames);
    }
    out
}

fn visit_verdict(frames: &[FacePoints], settings: MotionSettings) -> MotionVerdict {
    let mut v = VisitMotion::new(settings);
    for f in frames {
        v.push(f);
    }
    v.verdict()
}

/// The recorded clip's frontal run (frames 014-034, Lin-Manuel Miranda singing: a real person)
/// never reads flat over any visit window, and reads live in most.
#[test]
fn recorded_live_clip_is_not_flat() {
    let mut engine = common::models().engine().unwrap();
    let dir = common::fixture("clip/hamilton");
    let frames: Vec<FacePoints> = (14..=34)
        .map(|i| {
            let img = load_rgb(&dir.join(format!("{i:03}.jpg"))).unwrap();
            face_points(&mut engine, &img).unwrap_or_else(|| panic!("no face in {i:03}.jpg"))
        })
        .collect();
    let s = MotionSettings::default();
    let mut live = 0;
    let windows: Vec<_> = frames.windows(s.frames).collect();
    for (i, w) in windows.iter().enumerate() {
        let v = visit_verdict(w, s);
        println!("window {:03}-{:03}: {v:?}", 14 + i, 14 + i + s.frames - 1);
        assert!(
            !matches!(v, MotionVerdict::Flat { .. }),
            "a real person read flat: {v:?}"
        );
        live += usize::from(matches!(v, MotionVerdict::Live { .. }));
    }
    assert!(
        2 * live > windows.len(),
        "only {live} of {} windows read live",
        windows.len()
    );
}

/// The hardest print attack from what we have: a live frame printed and moved rigidly (turned
/// up to 15 degrees, tilted, shifted, scaled) should read flat. It does NOT: BlazeFace's and
/// dlib's points are not carried by the image geometry (their errors change with the pose), so
/// a perfectly planar photo misses the best homography by ~0.03 IOD, as much as a live head
/// does. This is why the check was measured and dropped (see the nuaa test's figures); kept,
/// ignored, as the executable evidence.
#[test]
#[ignore = "known failure: the temporal check cannot tell a rigidly moved photo from a head"]
fn photo_moved_rigidly_reads_flat() {
    let mut engine = common::models().engine().unwrap();
    let photo = load_rgb(&common::fixture("spoof/image_T1.jpg")).unwrap();
    let s = MotionSettings::default();
    let mut rng = Rng(12);
    for frames in synthetic_visits(&mut engine, &photo, 2, s.frames, 0.26, &mut rng) {
        assert_eq!(
            frames.len(),
            s.frames,
            "the face was lost in a warped frame"
        );
        let v = visit_verdict(&frames, s);
        assert!(
            matches!(v, MotionVerdict::Flat { .. }),
            "moved photo: {v:?}"
        );
    }
}

/// The same photo held still (camera noise of 2 grey levels only) never reads live: its points
/// move by less than `min_motion`.
#[test]
fn photo_held_still_is_not_live() {
    let mut engine = common::models().engine().unwrap();
    let photo = load_rgb(&common::fixture("spoof/image_T1.jpg")).unwrap();
    let s = MotionSettings::default();
    let mut rng = Rng(13);
    for frames in synthetic_visits(&mut engine, &photo, 2, s.frames, 0.0, &mut rng) {
        assert_eq!(frames.len(), s.frames, "the face was lost in a still frame");
        let v = visit_verdict(&frames, s);
        assert!(
            matches!(v, MotionVerdict::NotEnoughMotion { .. }),
            "still photo: {v:?}"
        );
    }
}

// ---------------------------------------------------------------- nuaa_dev measurement ----

/// One sequence of frames: (class, subject, key, frames ordered by picNo).
struct Sequence {
    live: bool,
    subject: String,
    key: String,
    frames: Vec<FacePoints>,
}

fn nuaa_sequences(root: &Path) -> Vec<Sequence> {
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "motion_nuaa_points{}.tsv",
        if std::env::var_os("FACEGATE_MOTION_ROUNDED").is_some() {
            "_rounded"
        } else {
            ""
        }
    ));
    let mut cached: BTreeMap<String, Option<FacePoints>> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(&cache) {
        for line in text.lines() {
            let mut it = line.split('\t');
            let name = it.next().unwrap().to_string();
            let v: Vec<f64> = it.map(|x| x.parse().unwrap()).collect();
            let p = (v.len() == 23).then(|| FacePoints {
                points: std::array::from_fn(|k| Point::new(v[2 * k], v[2 * k + 1])),
                eye_distance: v[22],
            });
            cached.insert(name, p);
        }
    }
    let mut engine = common::models().engine().unwrap();
    let mut groups: BTreeMap<(bool, String, String), Vec<(u32, FacePoints)>> = BTreeMap::new();
    let mut fresh = String::new();
    for (class, live) in [("live", true), ("print", false)] {
        let mut files: Vec<PathBuf> = Vec::new();
        for subj in std::fs::read_dir(root.join(class)).unwrap() {
            for f in std::fs::read_dir(subj.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
        files.sort();
        for path in files {
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            let parts: Vec<&str> = stem.split('_').collect();
            if parts.len() != 5 {
                continue;
            }
            let name = format!("{class}/{stem}");
            let p = match cached.get(&name) {
                Some(p) => *p,
                None => {
                    let p = face_points(&mut engine, &load_rgb(&path).unwrap());
                    fresh.push_str(&name);
                    if let Some(p) = &p {
                        for q in &p.points {
                            fresh.push_str(&format!("\t{}\t{}", q.x, q.y));
                        }
                        fresh.push_str(&format!("\t{}", p.eye_distance));
                    }
                    fresh.push('\n');
                    p
                }
            };
            let Some(p) = p else { continue };
            let key = parts[..4].join("_");
            groups
                .entry((live, parts[0].to_string(), key))
                .or_default()
                .push((parts[4].parse().unwrap(), p));
        }
    }
    if !fresh.is_empty() {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&cache)
            .unwrap();
        f.write_all(fresh.as_bytes()).unwrap();
    }
    groups
        .into_iter()
        .map(|((live, subject, key), mut v)| {
            v.sort_by_key(|(n, _)| *n);
            Sequence {
                live,
                subject,
                key,
                frames: v.into_iter().map(|(_, p)| p).collect(),
            }
        })
        .collect()
}

/// One simulated visit: `n` consecutive frames of a sequence.
struct Visit {
    live: bool,
    subject: String,
    key: String,
    frames: Vec<FacePoints>,
    pairs: Vec<PairMotion>,
}

impl Visit {
    fn new(live: bool, subject: &str, key: &str, frames: &[FacePoints], idx: &[usize]) -> Self {
        let mut pairs = Vec::new();
        for i in 0..frames.len() {
            for j in i + 1..frames.len() {
                pairs.push(pair_motion_of(&frames[i], &frames[j], idx));
            }
        }
        Visit {
            live,
            subject: subject.into(),
            key: key.into(),
            frames: frames.to_vec(),
            pairs,
        }
    }
}

fn visits_of(seqs: &[Sequence], n: usize) -> Vec<Visit> {
    let mut out = Vec::new();
    for s in seqs {
        for w in s.frames.windows(n) {
            out.push(Visit::new(s.live, &s.subject, &s.key, w, &ALL_POINTS));
        }
    }
    out
}

fn quantiles(mut v: Vec<f64>) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.sort_by(f64::total_cmp);
    let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
    format!(
        "n={:4} p5 {:.4} p25 {:.4} p50 {:.4} p75 {:.4} p95 {:.4}",
        v.len(),
        q(0.05),
        q(0.25),
        q(0.5),
        q(0.75),
        q(0.95)
    )
}

/// Area under the ROC curve: P(live score > attack score), ties counted half.
fn auc(live: &[f64], attack: &[f64]) -> f64 {
    let mut s = 0.0;
    for &l in live {
        for &a in attack {
            s += if l > a {
                1.0
            } else if l == a {
                0.5
            } else {
                0.0
            };
        }
    }
    s / (live.len() * attack.len()) as f64
}

/// The threshold passing `rate` of the live scores (score >= threshold passes).
fn threshold_at(live: &[f64], rate: f64) -> f64 {
    let mut v = live.to_vec();
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64) * (1.0 - rate)).floor() as usize]
}

fn pass_rate(scores: &[f64], t: f64) -> f64 {
    scores.iter().filter(|&&s| s >= t).count() as f64 / scores.len().max(1) as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// The continuous visit scores the verdict rule thresholds.
fn scores(v: &Visit, field: fn(&PairMotion) -> f64, min_motion: f64) -> Option<f64> {
    let r: Vec<f64> = v
        .pairs
        .iter()
        .filter(|p| p.motion >= min_motion)
        .map(field)
        .collect();
    (!r.is_empty()).then(|| median(r))
}

fn report_separability(
    live: &[&Visit],
    attack: &[&Visit],
    name: &str,
    score: &dyn Fn(&Visit) -> Option<f64>,
) {
    let split = |vs: &[&Visit]| {
        let s: Vec<f64> = vs.iter().filter_map(|v| score(v)).collect();
        let none = vs.len() - s.len();
        (s, none)
    };
    let ((l, ln), (a, an)) = (split(live), split(attack));
    println!("    {name}");
    println!("      live   {}  (no evidence: {ln})", quantiles(l.clone()));
    println!("      attack {}  (no evidence: {an})", quantiles(a.clone()));
    if l.is_empty() || a.is_empty() {
        return;
    }
    let mut line = format!("      AUC {:.3}", auc(&l, &a));
    for rate in [0.98, 0.99] {
        let t = threshold_at(&l, rate);
        line += &format!(
            "; live pass {:.0}%: t {:.4}, attack pass {:.1}%",
            rate * 100.0,
            t,
            100.0 * pass_rate(&a, t)
        );
    }
    println!("{line}");
}

/// Leave one subject out: the threshold passing 98% of the other subjects' live visits (with
/// evidence), applied to the held-out subject's visits; a visit without evidence passes.
fn loso(visits: &[Visit], score: &dyn Fn(&Visit) -> Option<f64>) {
    let subjects: std::collections::BTreeSet<&str> =
        visits.iter().map(|v| v.subject.as_str()).collect();
    let (mut lp, mut ln, mut ap, mut an) = (0, 0, 0, 0);
    let mut line = String::from("      LOSO thresholds:");
    for held in &subjects {
        let train: Vec<f64> = visits
            .iter()
            .filter(|v| v.live && v.subject != *held)
            .filter_map(score)
            .collect();
        if train.is_empty() {
            continue;
        }
        let t = threshold_at(&train, 0.98);
        line += &format!(" {held}:{t:.4}");
        for v in visits.iter().filter(|v| v.subject == *held) {
            let pass = usize::from(score(v).is_none_or(|s| s >= t));
            if v.live {
                (lp, ln) = (lp + pass, ln + 1);
            } else {
                (ap, an) = (ap + pass, an + 1);
            }
        }
    }
    println!("{line}");
    println!(
        "      LOSO held-out pass (no evidence passes): live {lp}/{ln} ({:.1}%), print {ap}/{an} ({:.1}%)",
        100.0 * lp as f64 / ln.max(1) as f64,
        100.0 * ap as f64 / an.max(1) as f64
    );
}

fn verdict_table(visits: &[&Visit], s: MotionSettings) {
    let mut table: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for v in visits {
        let k = if v.live {
            "live".to_string()
        } else if v.key.starts_with("synthetic") {
            v.key.clone()
        } else {
            // pos: 00 unspecified, 01-04 rotate/twist, 08 still (readme.original.txt)
            format!("print pos {}", &v.key[8..10])
        };
        let e = table.entry(k).or_default();
        match verdict_of(&v.pairs, &s) {
            MotionVerdict::Live { .. } => e[0] += 1,
            MotionVerdict::Flat { .. } => e[1] += 1,
            MotionVerdict::NotEnoughMotion { .. } => e[2] += 1,
        }
    }
    for (k, [l, f, n]) in table {
        println!("      {k:18} live {l:4}  flat {f:4}  not enough motion {n:4}");
    }
}

/// Synthetic attacks from the first frame of every live sequence: the frame printed and moved
/// rigidly (`visits` visits of `n` frames) and held still.
fn synthetic(root: &Path, seqs: &[Sequence], n: usize, visits: usize) -> Vec<Visit> {
    let mut engine = common::models().engine().unwrap();
    let mut rng = Rng(2026);
    let mut out = Vec::new();
    for s in seqs.iter().filter(|s| s.live) {
        let dir = root.join("live").join(&s.subject);
        let first = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&s.key))
            .min_by_key(|p| {
                let stem = p.file_stem().unwrap().to_string_lossy().to_string();
                stem.rsplit('_').next().unwrap().parse::<u32>().unwrap()
            })
            .unwrap();
        let photo = load_rgb(&first).unwrap();
        for (key, count, turn) in [
            ("synthetic planar", visits, 0.26),
            ("synthetic still", visits / 3, 0.0),
        ] {
            for frames in synthetic_visits(&mut engine, &photo, count, n, turn, &mut rng) {
                if frames.len() >= 2 {
                    out.push(Visit::new(false, &s.subject, key, &frames, &ALL_POINTS));
                }
            }
        }
    }
    out
}

#[test]
#[ignore = "needs FACEGATE_NUAA_DIR (research-use data); prints the figures"]
fn nuaa_separability() {
    let root = PathBuf::from(
        std::env::var("FACEGATE_NUAA_DIR").expect("set FACEGATE_NUAA_DIR to nuaa_dev"),
    );
    let seqs = nuaa_sequences(&root);
    let frames: usize = seqs.iter().map(|s| s.frames.len()).sum();
    println!("{} sequences, {frames} frames with a face", seqs.len());
    let defaults = MotionSettings::default();
    let n_list: Vec<usize> = std::env::var("FACEGATE_MOTION_N")
        .map(|s| s.split(',').map(|x| x.parse().unwrap()).collect())
        .unwrap_or_else(|_| vec![defaults.frames]);
    for n in n_list {
        let base = visits_of(&seqs, n);
        let synth = synthetic(&root, &seqs, n, 6);
        let subsets: [(&str, &[usize]); 3] = [
            ("all 11 points", &ALL_POINTS),
            ("no ears (9 points)", &[0, 1, 2, 3, 4, 5, 6, 7, 8]),
            ("dlib 5 + nose tip + mouth", &[0, 1, 2, 3, 4, 7, 8]),
        ];
        for (sub_name, idx) in subsets {
            let remap = |v: &Visit| Visit::new(v.live, &v.subject, &v.key, &v.frames, idx);
            let visits: Vec<Visit> = base.iter().map(remap).collect();
            let synth: Vec<Visit> = synth.iter().map(remap).collect();
            let live: Vec<&Visit> = visits.iter().filter(|v| v.live).collect();
            let print: Vec<&Visit> = visits.iter().filter(|v| !v.live).collect();
            let planar: Vec<&Visit> = synth.iter().filter(|v| v.key.ends_with("planar")).collect();
            let still: Vec<&Visit> = synth.iter().filter(|v| v.key.ends_with("still")).collect();
            println!(
                "\n== visits of {n} frames, {sub_name}: {} live, {} nuaa print, {} synthetic planar, {} synthetic still",
                live.len(),
                print.len(),
                planar.len(),
                still.len()
            );
            let pairs = |vs: &[&Visit], f: fn(&PairMotion) -> f64| -> Vec<f64> {
                vs.iter().flat_map(|v| v.pairs.iter().map(f)).collect()
            };
            for (name, f) in [
                (
                    "pair motion (similarity residual)",
                    (|p: &PairMotion| p.motion) as fn(&PairMotion) -> f64,
                ),
                ("pair homography residual", |p: &PairMotion| p.homography),
            ] {
                println!("    {name}");
                for (g, vs) in [
                    ("live", &live),
                    ("print", &print),
                    ("planar", &planar),
                    ("still", &still),
                ] {
                    println!("      {g:7} {}", quantiles(pairs(vs, f)));
                }
            }
            let max_motion = |v: &Visit| v.pairs.iter().map(|p| p.motion).reduce(f64::max);
            report_separability(
                &live,
                &still,
                "max pair motion, live vs synthetic still",
                &max_motion,
            );
            for min_motion in [0.0, 0.03, 0.05] {
                let hom = move |v: &Visit| scores(v, |p| p.homography, min_motion);
                let name =
                    format!("median homography residual of pairs with motion >= {min_motion}");
                report_separability(&live, &print, &format!("{name}, live vs nuaa print"), &hom);
                loso(&visits, &hom);
                report_separability(
                    &live,
                    &planar,
                    &format!("{name}, live vs synthetic planar"),
                    &hom,
                );
            }
            let mut all: Vec<&Visit> = visits.iter().collect();
            all.extend(synth.iter());
            println!("    verdicts with {defaults:?}");
            verdict_table(
                &all,
                MotionSettings {
                    frames: n,
                    ..defaults
                },
            );
        }
        // A scale-free alternative: how much more the depth-revealing points (nose tip, ears)
        // miss the best homography than the eye points do, median over informative pairs.
        let parallax = |v: &Visit| -> Option<f64> {
            let mut r = Vec::new();
            for i in 0..v.frames.len() {
                for j in i + 1..v.frames.len() {
                    let m = pair_motion_of(&v.frames[i], &v.frames[j], &ALL_POINTS);
                    if m.motion < defaults.min_motion {
                        continue;
                    }
                    if let Some(e) = point_residuals(&v.frames[i], &v.frames[j]) {
                        let rms = |ix: &[usize]| {
                            (ix.iter().map(|&k| e[k] * e[k]).sum::<f64>() / ix.len() as f64).sqrt()
                        };
                        r.push(rms(&[7, 9, 10]) / rms(&[0, 1, 2, 3, 5, 6]).max(1e-9));
                    }
                }
            }
            (!r.is_empty()).then(|| median(r))
        };
        let live: Vec<&Visit> = base.iter().filter(|v| v.live).collect();
        let print: Vec<&Visit> = base.iter().filter(|v| !v.live).collect();
        let planar: Vec<&Visit> = synth.iter().filter(|v| v.key.ends_with("planar")).collect();
        println!(
            "\n  parallax ratio (nose tip + ears vs eye points), pairs with motion >= {}:",
            defaults.min_motion
        );
        report_separability(&live, &print, "live vs nuaa print", &parallax);
        loso(&base, &parallax);
        report_separability(&live, &planar, "live vs synthetic planar", &parallax);
        // Which points a plane's motion fails to explain, pairs with motion >= min_motion.
        println!(
            "\n  per-point homography residual (IOD, mean over pairs with motion >= {}):",
            defaults.min_motion
        );
        println!("      points: dlib 0-4 (eye corners x4, nose base), blaze 5-10 (eyes x2, nose tip, mouth, ears x2)");
        for (g, pick) in [("live", 0), ("print", 1), ("planar", 2)] {
            let mut acc = [0.0; 11];
            let mut count = 0;
            let group: Vec<&Visit> = match pick {
                0 => base.iter().filter(|v| v.live).collect(),
                1 => base.iter().filter(|v| !v.live).collect(),
                _ => synth.iter().filter(|v| v.key.ends_with("planar")).collect(),
            };
            for v in group {
                for i in 0..v.frames.len() {
                    for j in i + 1..v.frames.len() {
                        let m = pair_motion_of(&v.frames[i], &v.frames[j], &ALL_POINTS);
                        if m.motion < defaults.min_motion {
                            continue;
                        }
                        if let Some(r) = point_residuals(&v.frames[i], &v.frames[j]) {
                            for k in 0..11 {
                                acc[k] += r[k];
                            }
                            count += 1;
                        }
                    }
                }
            }
            let line: Vec<String> = acc
                .iter()
                .map(|a| format!("{:.4}", a / count.max(1) as f64))
                .collect();
            println!("      {g:7} ({count:5} pairs) {}", line.join(" "));
        }
    }
}
