//! `facegate liveness IMG...` (the live score of every face) and `facegate eval-pad --live DIR
//! --attack DIR...` (APCER and BPCER per attack folder, BPCER at APCER 5% and 1%, a DET curve);
//! the measurement itself is `src/pad.rs`.

use super::{EXIT_ERROR, EXIT_NO};
use crate::error::Result;
use crate::face::liveness::{Liveness, LivenessChoice, LivenessModels};
use crate::face::{FaceModels, ModelOptions};
use crate::imageio::load_rgb;
use crate::models::ModelDir;
use crate::pad;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `facegate liveness`.
#[derive(clap::Args, Debug, Clone)]
pub struct LivenessArgs {
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub pad: PadArgs,
    /// Also time the scoring: N runs per face with the models on one thread, then on two
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub runs: usize,
    /// Print JSON lines instead of text
    #[arg(long)]
    pub json: bool,
}

/// `facegate eval-pad`.
#[derive(clap::Args, Debug, Clone)]
pub struct EvalPadArgs {
    /// Folder of bona fide (live) images, searched recursively
    #[arg(long, value_name = "DIR")]
    pub live: PathBuf,
    /// Folder of attack images (prints, screens), searched recursively; repeatable
    #[arg(long, required = true, value_name = "DIR")]
    pub attack: Vec<PathBuf>,
    #[command(flatten)]
    pub pad: PadArgs,
    /// Draw the DET curve (APCER against BPCER) into this PNG
    #[arg(long, value_name = "PNG")]
    pub plot: Option<PathBuf>,
    /// Write every image's scores as TSV (image, folder, subject, score, per model)
    #[arg(long, value_name = "TSV")]
    pub scores: Option<PathBuf>,
    /// Worker threads [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

/// Options shared by both commands. (`--pad-models`, because `--models` is the global models
/// directory.)
#[derive(clap::Args, Debug, Clone)]
pub struct PadArgs {
    /// Liveness models: v2 (the door's default), both (the ensemble) or v1se
    #[arg(long, default_value = "v2", value_name = "v2|both|v1se")]
    pub pad_models: LivenessChoice,
    /// Live when the score is at least this [default: the manifest's threshold for these models]
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Run the two models of the ensemble on two threads per face
    #[arg(long)]
    pub two_threads: bool,
}

fn load_liveness(opts: &ModelOptions, pad: &PadArgs) -> Result<Arc<LivenessModels>> {
    LivenessModels::load(&ModelDir::open(&opts.models_dir)?, pad.pad_models)
}

impl PadArgs {
    fn model_threads(&self) -> usize {
        if self.two_threads {
            2
        } else {
            1
        }
    }
}

/// `facegate liveness IMG...`: one line per face; exit 0 when every image has faces and all
/// are live, 1 when a face is an attack or an image has no face, 2 on errors.
pub fn liveness_command(opts: &ModelOptions, args: &LivenessArgs) -> Result<u8> {
    let faces = FaceModels::load(opts)?;
    let pad = load_liveness(opts, &args.pad)?;
    let threshold = args.pad.threshold.unwrap_or(pad.threshold);
    let mut engine = faces.engine()?;
    let mut live = pad::worker(&pad, args.pad.model_threads())?;
    let mut code = 0;
    for path in &args.images {
        let img = match load_rgb(path) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("error: {e}");
                code = EXIT_ERROR;
                continue;
            }
        };
        let dets = engine.detect(&img)?;
        if dets.is_empty() {
            println!("{}: no face", path.display());
            code = code.max(EXIT_NO);
        }
        for (i, d) in dets.iter().enumerate() {
            let s = live.score(&img, d)?;
            let verdict = if s.score >= threshold {
                "live"
            } else {
                code = code.max(EXIT_NO);
                "ATTACK"
            };
            if args.json {
                let line = serde_json::json!({"image": path, "face": i + 1, "box": [d.x, d.y, d.width, d.height],
                    "threshold": threshold, "live": s.score >= threshold, "score": s});
                println!("{line}");
            } else {
                let per: Vec<String> = s
                    .per_model
                    .iter()
                    .map(|m| format!("{} {:.4}", m.model, m.live))
                    .collect();
                println!(
                    "{}: face {} at ({:.0}, {:.0}) {:.0}x{:.0}: score {:.4} ({}) -> {verdict} (threshold {threshold})",
                    path.display(), i + 1, d.x, d.y, d.width, d.height, s.score, per.join(", ")
                );
            }
            if args.runs > 0 {
                println!("  {}", time_face(&mut live, &img, d, args.runs)?);
            }
        }
    }
    Ok(code)
}

/// Median times of `runs` scorings of one face, one thread then two.
fn time_face(
    live: &mut Liveness,
    img: &image::RgbImage,
    d: &crate::face::detect::Detection,
    runs: usize,
) -> Result<String> {
    let before = live.threads();
    let mut out = Vec::new();
    for threads in [1, 2] {
        live.set_threads(threads);
        let mut wall = Vec::with_capacity(runs);
        let mut per: Vec<Vec<Duration>> = Vec::new();
        let mut crop = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let s = live.score(img, d)?;
            wall.push(t.elapsed());
            per.resize(s.per_model.len(), Vec::new());
            for (k, m) in s.per_model.iter().enumerate() {
                per[k].push(m.time);
                crop.push(m.crop_time);
            }
        }
        let models: Vec<String> = live
            .models()
            .models
            .iter()
            .zip(per.iter_mut())
            .map(|(m, t)| format!("{} {:.2} ms", m.name, median_ms(t)))
            .collect();
        let min_wall = wall
            .iter()
            .min()
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
        out.push(format!(
            "{threads} thread(s): {:.2} ms per face, min {min_wall:.2} ({}, of which crop {:.2} ms; \
             median of {runs})",
            median_ms(&mut wall),
            models.join(", "),
            median_ms(&mut crop)
        ));
        if live.models().models.len() < 2 {
            break;
        }
    }
    live.set_threads(before);
    Ok(out.join("; "))
}

fn median_ms(v: &mut [Duration]) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

/// `facegate eval-pad`.
pub fn eval_pad_command(opts: &ModelOptions, args: &EvalPadArgs) -> Result<u8> {
    let t0 = Instant::now();
    let faces = FaceModels::load(opts)?;
    let pad = load_liveness(opts, &args.pad)?;
    let threshold = args.pad.threshold.unwrap_or(pad.threshold);
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let score = |dir: &Path, label: &str| -> Result<Vec<pad::ImageScore>> {
        pad::score_images(
            &faces,
            &pad,
            args.pad.model_threads(),
            &pad::list_images(dir)?,
            threads,
            label,
        )
    };
    let live = score(&args.live, "live")?;
    let mut attacks = Vec::new();
    for dir in &args.attack {
        let label = format!(
            "attack {}",
            dir.file_name().unwrap_or_default().to_string_lossy()
        );
        attacks.push((dir.clone(), score(dir, &label)?));
    }
    let mut r = pad::report(
        args.pad.pad_models,
        threshold,
        (&args.live, &live),
        &attacks,
    );
    r.seconds = t0.elapsed().as_secs_f64();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&r).expect("serialisable")
        );
    } else {
        print!("{r}");
    }
    if let Some(path) = &args.scores {
        let mut tsv = String::from("image\tfolder\tsubject\tscore");
        for m in pad.models.iter() {
            tsv += &format!("\t{}", m.name);
        }
        tsv.push('\n');
        for (folder, scores) in
            std::iter::once((&args.live, &live)).chain(attacks.iter().map(|(f, s)| (f, s)))
        {
            for s in scores.iter().filter(|s| s.score.is_some()) {
                let subject = s
                    .image
                    .parent()
                    .and_then(|p| p.file_name())
                    .unwrap_or_default();
                tsv += &format!(
                    "{}\t{}\t{}\t{}",
                    s.image.display(),
                    folder.display(),
                    subject.to_string_lossy(),
                    s.score.unwrap_or(f32::NAN)
                );
                for (_, p) in &s.per_model {
                    tsv += &format!("\t{p}");
                }
                tsv.push('\n');
            }
        }
        crate::fsutil::write_atomic(path, tsv.as_bytes(), 0o644)?;
        eprintln!("scores written to {}", path.display());
    }
    if let Some(plot) = &args.plot {
        pad::det_png(plot, &r)?;
        eprintln!("DET curve written to {}", plot.display());
    }
    Ok(0)
}
