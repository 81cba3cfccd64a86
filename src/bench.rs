//! `facegate bench`: per-stage timings of the door pipeline on real images, measured the way
//! the daemon runs it (one worker thread, models loaded once, buffers reused).
//!
//! Each input photo is first turned into a camera-like frame (fitted into e.g. 640x480 and
//! JPEG-encoded in memory), so "decode" is the cost of an MJPEG camera frame. Each frame then
//! goes through [`crate::frame::evidence`], the daemon's own per-frame function (largest face,
//! quality gates before encoding, match, access rules, liveness on matched faces), so the
//! figures are the door's.

use crate::error::{Error, Result};
use crate::face::encode::{Embedding, EMBEDDING_DIM};
use crate::face::liveness::{LivenessChoice, LivenessModels};
use crate::face::{FaceEngine, FaceModels, ModelOptions};
use crate::frame::{FrameTimes, LivenessCheck, NoLiveness, PadCheck, DOOR_PICK};
use crate::gallery::{Gallery, Person};
use crate::imageio::{decode_rgb, load_rgb};
use crate::policy::{Evidence, PolicySettings};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub images: Vec<PathBuf>,
    pub runs: usize,
    pub frame: (u32, u32),
    pub gallery_size: usize,
    /// The quality gates the door applies (`[policy]`); faces that fail them are not encoded.
    pub policy: PolicySettings,
    /// Presentation-attack detection on matched faces, as the door runs it by default
    /// (`[liveness]`: MiniFASNet v2 at the manifest's threshold); `false` times the pipeline
    /// without it.
    pub liveness: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct StageStats {
    pub stage: &'static str,
    pub median_ms: f64,
    pub p95_ms: f64,
    pub mean_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub encoder: String,
    pub detector: String,
    pub frames: usize,
    pub frames_without_face: usize,
    /// Frames whose face failed the quality gates (timed up to the gates, not encoded).
    pub frames_low_quality: usize,
    pub runs: usize,
    pub frame_size: (u32, u32),
    pub gallery_embeddings: usize,
    pub model_load_ms: f64,
    pub stages: Vec<StageStats>,
    /// One enrollment photo, whole (detection to template), as a bundle import embeds it: once
    /// per bench image, not per frame.
    pub enrolment_photo: StageStats,
    /// How the enrollment template is made: encoder runs per photo (mirror image and chip
    /// jitter).
    pub enrolment_encodes: usize,
    pub peak_rss_mb: Option<f64>,
    pub threads: Option<usize>,
}

const STAGES: [&str; 8] = [
    "decode",
    "detect",
    "landmarks",
    "align",
    "encode",
    "match",
    "liveness",
    "total",
];

/// Fits `img` into a black `w` x `h` frame (aspect kept) and JPEG-encodes it.
pub fn to_camera_frame(img: &image::RgbImage, (w, h): (u32, u32)) -> Result<Vec<u8>> {
    let scale = (w as f32 / img.width() as f32).min(h as f32 / img.height() as f32);
    let (nw, nh) = (
        ((img.width() as f32 * scale).round() as u32).clamp(1, w),
        ((img.height() as f32 * scale).round() as u32).clamp(1, h),
    );
    let resized = image::imageops::resize(img, nw, nh, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::new(w, h);
    image::imageops::replace(
        &mut frame,
        &resized,
        i64::from((w - nw) / 2),
        i64::from((h - nh) / 2),
    );
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&frame)
        .map_err(|e| Error::Invalid(format!("JPEG encoding: {e}")))?;
    Ok(out)
}

/// A gallery of `n` embeddings near real ones (deterministic), for timing 1:N matching.
fn synthetic_gallery(seeds: &[Embedding], n: usize) -> Gallery {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5
    };
    let people = (0..n)
        .map(|i| {
            let base = seeds[i % seeds.len()].0;
            let mut e = [0.0f32; EMBEDDING_DIM];
            for (k, v) in e.iter_mut().enumerate() {
                *v = base[k] + 0.05 * rnd();
            }
            Person {
                id: format!("p{i}"),
                name: String::new(),
                embeddings: vec![Embedding(e)],
                access: Default::default(),
            }
        })
        .collect();
    Gallery::from_people(people)
}

fn stats(stage: &'static str, mut v: Vec<Duration>) -> StageStats {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let n = v.len().max(1);
    StageStats {
        stage,
        median_ms: v.get(n / 2).map_or(0.0, |d| ms(*d)),
        p95_ms: v
            .get(((n as f64 * 0.95).ceil() as usize).min(n) - 1)
            .map_or(0.0, |d| ms(*d)),
        mean_ms: v.iter().map(|d| ms(*d)).sum::<f64>() / n as f64,
    }
}

/// Stage times of one frame, in [`STAGES`] order.
pub type StageTimes = [Duration; STAGES.len()];

/// One camera frame (JPEG) through the daemon's per-frame path: decode, then
/// [`crate::frame::evidence`] with the given liveness check (run on matched faces only).
/// Returns the policy's input for the frame and the time of each stage.
pub fn time_frame(
    engine: &mut FaceEngine,
    gallery: &Gallery,
    policy: &PolicySettings,
    liveness: &mut dyn LivenessCheck,
    jpeg: &[u8],
) -> Result<(Evidence, StageTimes)> {
    let mut t = [Duration::ZERO; STAGES.len()];
    let s = Instant::now();
    let img = decode_rgb(jpeg, Path::new("frame"))?;
    t[0] = s.elapsed();
    let mut ft = FrameTimes::default();
    let evidence = crate::frame::evidence(engine, gallery, policy, liveness, &img, &mut ft)?;
    t[1] = ft.detect;
    t[2] = ft.landmarks;
    t[3] = ft.align;
    t[4] = ft.encode;
    t[5] = ft.matching;
    t[6] = ft.liveness;
    t[7] = t[..7].iter().sum();
    Ok((evidence, t))
}

/// Value of a `Key:  N kB`-style line of /proc/self/status.
pub fn proc_status(key: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Times the enrollment engine on each photo as given (detection, landmarks and the template
/// over its mirrored and jittered chips).
fn time_enrolment(models: &Arc<FaceModels>, images: &[PathBuf]) -> Result<(StageStats, usize)> {
    let mut engine = models.enrolment_engine()?;
    let mut times = Vec::new();
    for p in images {
        let img = load_rgb(p)?;
        let t = Instant::now();
        if engine.photo_face(&img, DOOR_PICK)?.is_some() {
            times.push(t.elapsed());
        }
    }
    Ok((stats("enrol", times), models.encoder_runs(true)))
}

pub fn run(model_opts: &ModelOptions, opts: &BenchOptions) -> Result<BenchReport> {
    if opts.images.is_empty() {
        return Err(Error::Invalid("bench needs at least one image".into()));
    }
    let t0 = Instant::now();
    let models = FaceModels::load(model_opts)?;
    let mut engine = models.engine()?;
    let mut liveness: Box<dyn LivenessCheck> = if opts.liveness {
        let pad = LivenessModels::load(&models.dir, LivenessChoice::default())?;
        let threshold = pad.threshold;
        Box::new(PadCheck::new(pad.worker()?, threshold))
    } else {
        Box::new(NoLiveness)
    };
    let model_load = t0.elapsed();
    let mut frames = Vec::new();
    for p in &opts.images {
        frames.push(to_camera_frame(&load_rgb(p)?, opts.frame)?);
    }
    // Real embeddings seed the synthetic gallery.
    let mut seeds = Vec::new();
    for f in &frames {
        let img = decode_rgb(f, Path::new("frame"))?;
        if let Some(face) = DOOR_PICK.pick_face(&engine.faces(&img)?) {
            seeds.push(face.embedding);
        }
    }
    if seeds.is_empty() {
        return Err(Error::Invalid("no face found in any bench image".into()));
    }
    let gallery = synthetic_gallery(&seeds, opts.gallery_size.max(1));
    let (enrolment_photo, enrolment_encodes) = time_enrolment(&models, &opts.images)?;
    let mut times: Vec<Vec<Duration>> = vec![Vec::new(); STAGES.len()];
    let (mut without_face, mut low_quality) = (0, 0);
    for run in 0..opts.runs.max(1) {
        for f in &frames {
            let (evidence, t) =
                time_frame(&mut engine, &gallery, &opts.policy, liveness.as_mut(), f)?;
            match evidence {
                Evidence::NoFace => {
                    if run == 0 {
                        without_face += 1;
                    }
                    continue;
                }
                Evidence::Face {
                    embedding: None, ..
                } if run == 0 => low_quality += 1,
                _ => {}
            }
            for (k, d) in t.iter().enumerate() {
                times[k].push(*d);
            }
        }
    }
    Ok(BenchReport {
        encoder: models.encoder.name.clone(),
        detector: model_opts.detector.to_string(),
        frames: frames.len(),
        frames_without_face: without_face,
        frames_low_quality: low_quality,
        runs: opts.runs,
        frame_size: opts.frame,
        gallery_embeddings: gallery.num_embeddings(),
        model_load_ms: model_load.as_secs_f64() * 1e3,
        stages: STAGES.iter().zip(times).map(|(s, v)| stats(s, v)).collect(),
        enrolment_photo,
        enrolment_encodes,
        peak_rss_mb: proc_status("VmHWM:").map(|kb| kb as f64 / 1024.0),
        threads: proc_status("Threads:").map(|n| n as usize),
    })
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "encoder {}, detector {}, {} frames of {}x{} x {} runs, 1:N over {} embeddings",
            self.encoder,
            self.detector,
            self.frames,
            self.frame_size.0,
            self.frame_size.1,
            self.runs,
            self.gallery_embeddings
        )?;
        if self.frames_without_face > 0 {
            writeln!(
                f,
                "{} frames had no face and were not timed",
                self.frames_without_face
            )?;
        }
        if self.frames_low_quality > 0 {
            writeln!(
                f,
                "{} frames failed the quality gates (timed up to the gates, not encoded, as at the door)",
                self.frames_low_quality
            )?;
        }
        writeln!(
            f,
            "models loaded and optimised in {:.0} ms",
            self.model_load_ms
        )?;
        writeln!(
            f,
            "{:<10} {:>10} {:>10} {:>10}",
            "stage", "median ms", "p95 ms", "mean ms"
        )?;
        for s in &self.stages {
            writeln!(
                f,
                "{:<10} {:>10.3} {:>10.3} {:>10.3}",
                s.stage, s.median_ms, s.p95_ms, s.mean_ms
            )?;
        }
        let e = &self.enrolment_photo;
        writeln!(
            f,
            "enrollment photo ({} encoder runs): median {:.1} ms, p95 {:.1} ms per photo",
            self.enrolment_encodes, e.median_ms, e.p95_ms
        )?;
        if let Some(r) = self.peak_rss_mb {
            writeln!(f, "peak RSS {r:.1} MB")?;
        }
        if let Some(t) = self.threads {
            writeln!(f, "threads {t} (inference runs on one)")?;
        }
        Ok(())
    }
}
