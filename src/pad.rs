//! Presentation-attack detection, measured the ISO/IEC 30107-3 way: scores of image folders,
//! APCER and BPCER per attack folder, BPCER at APCER 5% and 1%, a DET curve. The commands
//! (`facegate liveness`, `facegate eval-pad`) are in `src/cli/pad.rs`.
//!
//! A face is live when its score is at least the threshold. APCER = share of attack
//! presentations accepted as live; BPCER = share of bona fide (live) presentations rejected.
//! Every image of a folder (recursively) is one presentation, scored on its largest face (the
//! door's pick); images without a face or unreadable are listed, not scored.

use crate::error::{Error, Result};
use crate::face::liveness::{Liveness, LivenessChoice, LivenessModels};
use crate::face::FaceModels;
use crate::frame::DOOR_PICK;
use crate::imageio::load_rgb;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A liveness worker running its models on `threads` threads per face (1 or 2).
pub fn worker(models: &Arc<LivenessModels>, threads: usize) -> Result<Liveness> {
    let mut w = models.worker()?;
    w.set_threads(threads);
    Ok(w)
}

/// The live score of one image's largest face.
#[derive(Debug, Clone, Serialize)]
pub struct ImageScore {
    pub image: PathBuf,
    /// `None`: no face, or the image could not be read (`error`).
    pub score: Option<f32>,
    pub per_model: Vec<(String, f32)>,
    pub error: Option<String>,
}

/// Every image (recursively) under `dir` that facegate can read, sorted.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let p = e.map_err(|e| Error::io(&d, e))?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().and_then(|x| x.to_str()).is_some_and(|x| {
                matches!(
                    x.to_ascii_lowercase().as_str(),
                    "jpg" | "jpeg" | "png" | "pgm" | "ppm" | "gif"
                )
            }) {
                out.push(p);
            }
        }
    }
    out.sort();
    if out.is_empty() {
        return Err(Error::Invalid(format!(
            "{}: no images (JPEG, PNG, PNM, GIF) in this folder or below",
            dir.display()
        )));
    }
    Ok(out)
}

/// Scores the largest face of every image with `threads` workers, with a progress bar.
pub fn score_images(
    faces: &Arc<FaceModels>,
    pad: &Arc<LivenessModels>,
    model_threads: usize,
    images: &[PathBuf],
    threads: usize,
    label: &str,
) -> Result<Vec<ImageScore>> {
    crate::parallel::map_with_progress(
        images,
        threads,
        label,
        || Ok((faces.engine()?, worker(pad, model_threads)?)),
        |(engine, live), path| score_one(engine, live, path),
    )
}

fn score_one(engine: &mut crate::face::FaceEngine, live: &mut Liveness, path: &Path) -> ImageScore {
    let mut r = ImageScore {
        image: path.to_path_buf(),
        score: None,
        per_model: Vec::new(),
        error: None,
    };
    let scored = load_rgb(path).and_then(|img| {
        let dets = engine.detect(&img)?;
        DOOR_PICK
            .pick(&dets)
            .map(|d| live.score(&img, d))
            .transpose()
    });
    match scored {
        Ok(Some(s)) => {
            r.score = Some(s.score);
            r.per_model = s.per_model.into_iter().map(|m| (m.model, m.live)).collect();
        }
        Ok(None) => {}
        Err(e) => r.error = Some(e.to_string()),
    }
    r
}

/// BPCER at a target APCER, with the threshold that reaches it.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct OperatingPoint {
    pub apcer_target: f64,
    /// The lowest threshold whose APCER is at most the target.
    pub threshold: f32,
    pub apcer: f64,
    pub bpcer: f64,
}

/// APCER at `t`: the share of attack scores accepted (at least `t`); `sorted` ascending.
pub fn apcer(sorted_attacks: &[f32], t: f32) -> f64 {
    let rejected = sorted_attacks.partition_point(|&s| s < t);
    (sorted_attacks.len() - rejected) as f64 / sorted_attacks.len().max(1) as f64
}

/// BPCER at `t`: the share of live scores rejected (below `t`); `sorted` ascending.
pub fn bpcer(sorted_live: &[f32], t: f32) -> f64 {
    sorted_live.partition_point(|&s| s < t) as f64 / sorted_live.len().max(1) as f64
}

/// The smallest f32 above `v` (scores are in 0..1).
fn just_above(v: f32) -> f32 {
    if v < 0.0 {
        0.0
    } else {
        f32::from_bits(v.to_bits() + 1)
    }
}

/// The lowest threshold with APCER at most `target`, and the BPCER there (both sorted ascending).
pub fn bpcer_at_apcer(sorted_live: &[f32], sorted_attacks: &[f32], target: f64) -> OperatingPoint {
    let n = sorted_attacks.len();
    // At most k attacks may pass: the threshold sits just above the (k+1)-th highest attack.
    let k = (target * n as f64 + 1e-9).floor() as usize;
    let threshold = if k >= n {
        0.0
    } else {
        just_above(sorted_attacks[n - 1 - k])
    };
    OperatingPoint {
        apcer_target: target,
        threshold,
        apcer: apcer(sorted_attacks, threshold),
        bpcer: bpcer(sorted_live, threshold),
    }
}

/// (APCER, BPCER) at every distinct threshold, from the loosest to the strictest.
pub fn det_curve(sorted_live: &[f32], sorted_attacks: &[f32]) -> Vec<(f64, f64)> {
    let mut ts: Vec<f32> = sorted_live.iter().chain(sorted_attacks).copied().collect();
    ts.sort_by(f32::total_cmp);
    ts.dedup();
    if let Some(&last) = ts.last() {
        ts.push(just_above(last));
    }
    ts.iter()
        .map(|&t| (apcer(sorted_attacks, t), bpcer(sorted_live, t)))
        .collect()
}

/// One attack folder's figures.
#[derive(Debug, Clone, Serialize)]
pub struct AttackReport {
    pub folder: PathBuf,
    pub scored: usize,
    pub without_face: Vec<PathBuf>,
    pub unreadable: Vec<(PathBuf, String)>,
    pub apcer: f64,
    /// BPCER at APCER 5% and 1%.
    pub at_apcer: Vec<OperatingPoint>,
    #[serde(skip)]
    pub det: Vec<(f64, f64)>,
}

/// Everything `eval-pad` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PadReport {
    pub models: LivenessChoice,
    pub threshold: f32,
    pub live_folder: PathBuf,
    pub live_scored: usize,
    pub live_without_face: Vec<PathBuf>,
    pub live_unreadable: Vec<(PathBuf, String)>,
    pub bpcer: f64,
    pub attacks: Vec<AttackReport>,
    pub seconds: f64,
}

fn sorted_scores(scores: &[ImageScore]) -> Vec<f32> {
    let mut v: Vec<f32> = scores.iter().filter_map(|s| s.score).collect();
    v.sort_by(f32::total_cmp);
    v
}

fn unscored(scores: &[ImageScore]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let no_face = scores
        .iter()
        .filter(|s| s.score.is_none() && s.error.is_none())
        .map(|s| s.image.clone())
        .collect();
    let bad = scores
        .iter()
        .filter_map(|s| s.error.clone().map(|e| (s.image.clone(), e)))
        .collect();
    (no_face, bad)
}

/// The figures of one evaluation from the scores of the live folder and of each attack folder.
pub fn report(
    models: LivenessChoice,
    threshold: f32,
    live: (&Path, &[ImageScore]),
    attacks: &[(PathBuf, Vec<ImageScore>)],
) -> PadReport {
    let live_sorted = sorted_scores(live.1);
    let (live_without_face, live_unreadable) = unscored(live.1);
    let attacks = attacks
        .iter()
        .map(|(folder, scores)| {
            let sorted = sorted_scores(scores);
            let (without_face, unreadable) = unscored(scores);
            AttackReport {
                folder: folder.clone(),
                scored: sorted.len(),
                without_face,
                unreadable,
                apcer: apcer(&sorted, threshold),
                at_apcer: [0.05, 0.01]
                    .iter()
                    .map(|&a| bpcer_at_apcer(&live_sorted, &sorted, a))
                    .collect(),
                det: det_curve(&live_sorted, &sorted),
            }
        })
        .collect();
    PadReport {
        models,
        threshold,
        live_folder: live.0.to_path_buf(),
        live_scored: live_sorted.len(),
        live_without_face,
        live_unreadable,
        bpcer: bpcer(&live_sorted, threshold),
        attacks,
        seconds: 0.0,
    }
}

impl fmt::Display for PadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |v: f64| format!("{:.2}%", v * 100.0);
        writeln!(
            f,
            "liveness models: {}, threshold {} (live when score >= threshold)",
            self.models, self.threshold
        )?;
        writeln!(
            f,
            "bona fide: {} ({} images scored, {} without a face, {} unreadable): BPCER {}",
            self.live_folder.display(),
            self.live_scored,
            self.live_without_face.len(),
            self.live_unreadable.len(),
            pct(self.bpcer)
        )?;
        for a in &self.attacks {
            writeln!(
                f,
                "attack: {} ({} images scored, {} without a face, {} unreadable)",
                a.folder.display(),
                a.scored,
                a.without_face.len(),
                a.unreadable.len()
            )?;
            writeln!(
                f,
                "  at threshold {}: APCER {}, BPCER {}",
                self.threshold,
                pct(a.apcer),
                pct(self.bpcer)
            )?;
            for p in &a.at_apcer {
                writeln!(
                    f,
                    "  BPCER at APCER {}: {} (threshold {:.4}, APCER {})",
                    pct(p.apcer_target),
                    pct(p.bpcer),
                    p.threshold,
                    pct(p.apcer)
                )?;
            }
        }
        for (p, e) in self
            .live_unreadable
            .iter()
            .chain(self.attacks.iter().flat_map(|a| &a.unreadable))
        {
            writeln!(f, "unreadable: {}: {e}", p.display())?;
        }
        for p in self
            .live_without_face
            .iter()
            .chain(self.attacks.iter().flat_map(|a| &a.without_face))
        {
            writeln!(f, "no face: {}", p.display())?;
        }
        writeln!(f, "{:.1} s", self.seconds)
    }
}

/// Draws the DET curves (BPCER against APCER, both on log axes) of a report into a PNG, with
/// the operating point at the report's threshold marked.
pub fn det_png(path: &Path, r: &PadReport) -> Result<()> {
    use plotters::prelude::*;
    crate::plot::ensure_font();
    let (w, h) = (900u32, 700u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let err = |e: &dyn fmt::Display| Error::Invalid(format!("drawing {}: {e}", path.display()));
    let floor = 1e-3f64;
    let clamp = |v: f64| v.max(floor);
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let title = format!(
            "DET: liveness ({}), {} bona fide images",
            r.models, r.live_scored
        );
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(18)
            .x_label_area_size(48)
            .y_label_area_size(64)
            .build_cartesian_2d((floor..1f64).log_scale(), (floor..1f64).log_scale())
            .map_err(|e| err(&e))?;
        chart
            .configure_mesh()
            .x_desc("APCER (attacks accepted as live; 0 drawn at 0.1%)")
            .y_desc("BPCER (live faces rejected; 0 drawn at 0.1%)")
            .x_label_formatter(&|v| format!("{}%", v * 100.0))
            .y_label_formatter(&|v| format!("{}%", v * 100.0))
            .label_style(("sans-serif", 15))
            .draw()
            .map_err(|e| err(&e))?;
        const COLORS: [RGBColor; 5] = [BLUE, RED, GREEN, MAGENTA, BLACK];
        for (i, a) in r.attacks.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let name = a
                .folder
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            chart
                .draw_series(LineSeries::new(
                    a.det.iter().map(|&(x, y)| (clamp(x), clamp(y))),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(&e))?
                .label(format!(
                    "{name}: APCER {:.2}%, BPCER {:.2}% at {}",
                    a.apcer * 100.0,
                    r.bpcer * 100.0,
                    r.threshold
                ))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2))
                });
            chart
                .draw_series(std::iter::once(Circle::new(
                    (clamp(a.apcer), clamp(r.bpcer)),
                    6,
                    color.filled(),
                )))
                .map_err(|e| err(&e))?;
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 15))
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).expect("buffer sized for the image");
    crate::fsutil::write_png(path, &img)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apcer_bpcer_and_the_operating_point() {
        let live = [0.2, 0.6, 0.7, 0.8, 0.9];
        let mut attacks: Vec<f32> = (0..100).map(|i| i as f32 / 200.0).collect();
        attacks.sort_by(f32::total_cmp);
        // Live when score >= t: attacks at 0.45..0.495 (10 of 100) pass at 0.45.
        assert!((apcer(&attacks, 0.45) - 0.10).abs() < 1e-12);
        assert_eq!(bpcer(&live, 0.65), 0.4);
        // APCER <= 5%: at most 5 attacks (0.475..0.495) pass; the threshold sits just above the
        // sixth highest (0.47).
        let p = bpcer_at_apcer(&live, &attacks, 0.05);
        assert!(p.threshold > 0.47 && p.threshold < 0.4751, "{p:?}");
        assert!((p.apcer - 0.05).abs() < 1e-12 && p.bpcer == 0.2, "{p:?}");
        let p = bpcer_at_apcer(&live, &attacks, 0.0);
        assert!(p.apcer == 0.0 && p.threshold > 0.495, "{p:?}");
        let det = det_curve(&live, &attacks);
        assert_eq!(det.first(), Some(&(1.0, 0.0)));
        assert_eq!(det.last(), Some(&(0.0, 1.0)));
        assert!(det.windows(2).all(|w| w[0].0 >= w[1].0 && w[0].1 <= w[1].1));
    }
}
