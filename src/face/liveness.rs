//! Passive presentation-attack detection (liveness): Minivision's MiniFASNetV2 and MiniFASNetV1SE
//! (Apache-2.0) through tract. Each model sees its own crop of the frame around the detector's
//! box (2.7x and 4x the box, upstream's `CropImage`), resized to 80x80 like OpenCV's
//! `INTER_LINEAR`, BGR, 0..255, NCHW; the live score is the live-class softmax probability,
//! averaged over the models used. Models load once ([`LivenessModels`], shared); a worker
//! ([`Liveness`]) owns the tract states and the crop buffers, and can run the two models on
//! two threads.

use super::detect::Detection;
use super::runtime::{load_plan, output_slice, Plan, Runner};
use crate::error::{Error, Result};
use crate::models::{LivenessSpec, ModelDir, LIVENESS_INPUT_SHAPE, LIVENESS_OUTPUT_SHAPE};
use image::RgbImage;
use serde::Serialize;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Side of the square crop the models take.
pub const CROP_SIDE: u32 = LIVENESS_INPUT_SHAPE[3] as u32;

const STAGE: &str = "liveness";

/// Which models score a face: v2 alone (the door's default: on nuaa_dev it separates prints
/// from live faces as well as the pair does, and it rejects the tablet replay the pair lets
/// through, at half the cost; MODEL_CARD "Liveness"), both (upstream's ensemble), or v1se alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LivenessChoice {
    #[default]
    V2,
    Both,
    V1se,
}

impl LivenessChoice {
    /// The manifest names (`[liveness.<name>]`) of the models used.
    pub fn model_names(self) -> &'static [&'static str] {
        match self {
            LivenessChoice::Both => &["v2", "v1se"],
            LivenessChoice::V2 => &["v2"],
            LivenessChoice::V1se => &["v1se"],
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LivenessChoice::Both => "both",
            LivenessChoice::V2 => "v2",
            LivenessChoice::V1se => "v1se",
        }
    }
}

impl fmt::Display for LivenessChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LivenessChoice {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "both" => Ok(LivenessChoice::Both),
            "v2" => Ok(LivenessChoice::V2),
            "v1se" => Ok(LivenessChoice::V1se),
            _ => Err(Error::Invalid(format!(
                "unknown liveness models {s:?}: use both, v2 or v1se"
            ))),
        }
    }
}

/// One liveness model, loaded, checked (sha256, input [1, 3, 80, 80], output [1, 3]) and
/// optimised once.
pub struct LivenessModel {
    plan: Plan,
    pub spec: LivenessSpec,
    /// The manifest name (`v2`, `v1se`).
    pub name: String,
}

impl LivenessModel {
    pub fn load(dir: &ModelDir, name: &str) -> Result<Arc<Self>> {
        let spec = dir.liveness(name)?.clone();
        let path = dir.path_of(&spec.file);
        let bytes = dir.read_verified(&spec.file, &spec.sha256)?;
        let plan = load_plan(
            &bytes,
            &path,
            &spec.input_name,
            &spec.input_shape,
            &[&spec.output_name],
        )?;
        let out = plan
            .model()
            .output_fact(0)
            .ok()
            .and_then(|f| f.shape.as_concrete().map(<[usize]>::to_vec));
        if out.as_deref() != Some(&LIVENESS_OUTPUT_SHAPE[..]) {
            return Err(Error::Model {
                path,
                reason: format!(
                    "output {:?} is {}, not {LIVENESS_OUTPUT_SHAPE:?} class logits: not a \
                     MiniFASNet liveness model; restore {} from the release's models directory",
                    spec.output_name,
                    out.map_or("of unknown shape".into(), |s| format!("{s:?}")),
                    spec.file
                ),
            });
        }
        Ok(Arc::new(LivenessModel {
            plan,
            spec,
            name: name.to_string(),
        }))
    }
}

/// The liveness models of one choice, with the manifest's default threshold; shared between
/// workers.
pub struct LivenessModels {
    pub models: Vec<Arc<LivenessModel>>,
    pub choice: LivenessChoice,
    /// The manifest's threshold on the live score for this choice of models.
    pub threshold: f32,
    pub load_time: Duration,
}

impl LivenessModels {
    pub fn load(dir: &ModelDir, choice: LivenessChoice) -> Result<Arc<Self>> {
        let t0 = Instant::now();
        let manifest = dir.liveness_manifest()?;
        let threshold = match choice {
            LivenessChoice::V2 => manifest.threshold,
            LivenessChoice::Both => manifest.threshold_both,
            LivenessChoice::V1se => manifest.threshold_v1se,
        };
        let models = choice
            .model_names()
            .iter()
            .map(|n| LivenessModel::load(dir, n))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(LivenessModels {
            models,
            choice,
            threshold,
            load_time: t0.elapsed(),
        }))
    }

    /// A worker with its own tract states and buffers, running the models one after the other.
    pub fn worker(self: &Arc<Self>) -> Result<Liveness> {
        let stages = self
            .models
            .iter()
            .map(|m| Stage::new(m.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Liveness {
            models: self.clone(),
            stages,
            threads: 1,
        })
    }
}

/// One model's verdict on one face.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelScore {
    pub model: String,
    pub logits: [f32; 3],
    /// Softmax probability of the live class.
    pub live: f32,
    /// The crop taken from the frame: `[x1, y1, x2, y2]`, inclusive pixels.
    pub crop_box: [u32; 4],
    /// Time of crop + inference, and of the crop (cut, resize) alone.
    #[serde(skip)]
    pub time: Duration,
    #[serde(skip)]
    pub crop_time: Duration,
}

/// The live score of one face: the mean live probability of the models used, and each model's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LivenessScore {
    pub score: f32,
    pub per_model: Vec<ModelScore>,
}

/// A worker: scores faces with the loaded models, reusing its tract states and buffers.
pub struct Liveness {
    models: Arc<LivenessModels>,
    stages: Vec<Stage>,
    threads: usize,
}

impl Liveness {
    /// Loads the chosen models (once) and makes one worker; see [`LivenessModels`] to share
    /// the models between several workers.
    pub fn load(dir: &ModelDir, choice: LivenessChoice) -> Result<Liveness> {
        LivenessModels::load(dir, choice)?.worker()
    }

    pub fn models(&self) -> &Arc<LivenessModels> {
        &self.models
    }

    /// The manifest's default threshold: live when the score is at least this.
    pub fn threshold(&self) -> f32 {
        self.models.threshold
    }

    /// Run the two models of the ensemble on two threads (`2`) or one after the other (`1`).
    pub fn set_threads(&mut self, threads: usize) {
        self.threads = threads.clamp(1, 2);
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// The live score of the face in `face_box` of `frame`.
    pub fn score(&mut self, frame: &RgbImage, face_box: &Detection) -> Result<LivenessScore> {
        let b = [
            f64::from(face_box.x),
            f64::from(face_box.y),
            f64::from(face_box.width),
            f64::from(face_box.height),
        ];
        let per_model = match self.stages.as_mut_slice() {
            [a, b2] if self.threads > 1 => std::thread::scope(|s| {
                let other = s.spawn(|| b2.score(frame, b));
                let first = a.score(frame, b);
                let second = other.join().unwrap_or_else(|_| {
                    Err(Error::Inference {
                        stage: STAGE,
                        reason: "the second liveness thread panicked".into(),
                    })
                });
                Ok::<_, Error>(vec![first?, second?])
            })?,
            stages => stages
                .iter_mut()
                .map(|s| s.score(frame, b))
                .collect::<Result<Vec<_>>>()?,
        };
        let score = per_model.iter().map(|m| m.live).sum::<f32>() / per_model.len() as f32;
        Ok(LivenessScore { score, per_model })
    }

    /// One model's logits on an 80x80 RGB crop (already cut and resized), e.g. a reference crop.
    pub fn logits_of_crop(&mut self, model: &str, crop: &RgbImage) -> Result<[f32; 3]> {
        let stage = self
            .stages
            .iter_mut()
            .find(|s| s.model.name == model)
            .ok_or_else(|| Error::Invalid(format!("liveness model {model:?} is not loaded")))?;
        stage.infer(crop)
    }

    /// The 80x80 RGB crop that model `model` last scored.
    pub fn last_crop(&self, model: &str) -> Option<&RgbImage> {
        self.stages
            .iter()
            .find(|s| s.model.name == model)
            .map(|s| &s.crop)
    }
}

/// One model with its tract state and buffers.
struct Stage {
    model: Arc<LivenessModel>,
    runner: Runner,
    crop: RgbImage,
    scratch: ResizeScratch,
}

impl Stage {
    fn new(model: Arc<LivenessModel>) -> Result<Self> {
        let runner = Runner::new(&model.plan, &model.spec.input_shape, STAGE)?;
        Ok(Stage {
            model,
            runner,
            crop: RgbImage::new(CROP_SIDE, CROP_SIDE),
            scratch: ResizeScratch::default(),
        })
    }

    fn score(&mut self, frame: &RgbImage, face: [f64; 4]) -> Result<ModelScore> {
        let t = Instant::now();
        let cb = crop_box(
            frame.width(),
            frame.height(),
            face,
            self.model.spec.crop_scale,
        )?;
        resize_linear(frame, cb, &mut self.crop, &mut self.scratch);
        let crop_time = t.elapsed();
        let crop = std::mem::take(&mut self.crop);
        let logits = self.infer(&crop);
        self.crop = crop;
        let logits = logits?;
        Ok(ModelScore {
            model: self.model.name.clone(),
            live: softmax(&logits)[self.model.spec.live_class],
            logits,
            crop_box: cb,
            time: t.elapsed(),
            crop_time,
        })
    }

    fn infer(&mut self, crop: &RgbImage) -> Result<[f32; 3]> {
        let side = CROP_SIDE as usize;
        if crop.dimensions() != (CROP_SIDE, CROP_SIDE) {
            return Err(Error::Invalid(format!(
                "liveness crop is {}x{}, the models need {side}x{side}",
                crop.width(),
                crop.height()
            )));
        }
        let spec = &self.model.spec;
        let (mean, std) = (spec.mean, spec.std);
        // Input plane c takes image channel order[c]: BGR reverses RGB.
        let order = if spec.channel_order == "bgr" {
            [2, 1, 0]
        } else {
            [0, 1, 2]
        };
        let raw = crop.as_raw();
        let outputs = self.runner.run(|buf| {
            let plane = side * side;
            for (i, px) in raw.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    buf[c * plane + i] = (f32::from(px[order[c]]) - mean[c]) / std[c];
                }
            }
        })?;
        let out = output_slice(&outputs[0], STAGE)?;
        out.try_into().map_err(|_| Error::Inference {
            stage: STAGE,
            reason: format!("model gave {} values, expected 3 logits", out.len()),
        })
    }
}

/// Softmax of three logits.
pub fn softmax(logits: &[f32; 3]) -> [f32; 3] {
    let m = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e = logits.map(|l| (l - m).exp());
    let sum: f32 = e.iter().sum();
    e.map(|v| v / sum)
}

/// The crop upstream (`CropImage._get_new_box`) takes around a face box `[x, y, w, h]` in a
/// `width` x `height` frame: the box scaled about its centre by
/// `min(scale, (height-1)/h, (width-1)/w)`, shifted back inside `[0, width-1] x [0, height-1]`,
/// corners truncated to whole pixels. Returns `[x1, y1, x2, y2]`, inclusive.
pub fn crop_box(width: u32, height: u32, face: [f64; 4], scale: f64) -> Result<[u32; 4]> {
    let [x, y, w, h] = face;
    if width == 0 || height == 0 || !face.iter().all(|v| v.is_finite()) || w <= 0.0 || h <= 0.0 {
        return Err(Error::Invalid(format!(
            "liveness: face box {face:?} in a {width}x{height} frame is empty"
        )));
    }
    let (sw, sh) = (f64::from(width), f64::from(height));
    let scale = scale.min((sw - 1.0) / w).min((sh - 1.0) / h);
    let (nw, nh) = (w * scale, h * scale);
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let (mut x1, mut y1) = (cx - nw / 2.0, cy - nh / 2.0);
    let (mut x2, mut y2) = (cx + nw / 2.0, cy + nh / 2.0);
    if x1 < 0.0 {
        x2 -= x1;
        x1 = 0.0;
    }
    if y1 < 0.0 {
        y2 -= y1;
        y1 = 0.0;
    }
    if x2 > sw - 1.0 {
        x1 -= x2 - sw + 1.0;
        x2 = sw - 1.0;
    }
    if y2 > sh - 1.0 {
        y1 -= y2 - sh + 1.0;
        y2 = sh - 1.0;
    }
    // Python's int(): truncation toward zero; kept inside the frame against rounding.
    let px = |v: f64, max: u32| (v.trunc().max(0.0) as u32).min(max - 1);
    let (x1, x2) = (px(x1, width), px(x2, width));
    let (y1, y2) = (px(y1, height), px(y2, height));
    Ok([x1, y1, x2.max(x1), y2.max(y1)])
}

/// Coefficient tables of one resize (kept between calls).
#[derive(Default)]
struct ResizeScratch {
    xofs: Vec<usize>,
    alpha: Vec<[i32; 2]>,
    row0: Vec<i32>,
    row1: Vec<i32>,
}

const COEF_BITS: u32 = 11;
const COEF_SCALE: f32 = (1 << COEF_BITS) as f32;

/// OpenCV's source position and fixed-point weights for output index `d` (half-pixel centres).
fn linear_coef(d: usize, scale: f64) -> (i64, [i32; 2]) {
    let f = ((d as f64 + 0.5) * scale - 0.5) as f32;
    let s = f.floor();
    let f = f - s;
    (
        s as i64,
        [
            ((1.0 - f) * COEF_SCALE).round_ties_even() as i32,
            (f * COEF_SCALE).round_ties_even() as i32,
        ],
    )
}

/// Resizes the inclusive rectangle `rect` of `src` into `dst` (its size) exactly as OpenCV's
/// `cv2.resize(..., interpolation=INTER_LINEAR)` does on 8-bit images: half-pixel centres, no
/// antialiasing, 11-bit fixed-point weights, a horizontal then a vertical pass with OpenCV's
/// rounding (so a crop equals upstream's, pixel for pixel).
fn resize_linear(src: &RgbImage, rect: [u32; 4], dst: &mut RgbImage, s: &mut ResizeScratch) {
    let [x1, y1, x2, y2] = rect.map(|v| v as usize);
    let (sw, sh) = (x2 - x1 + 1, y2 - y1 + 1);
    let (dw, dh) = (dst.width() as usize, dst.height() as usize);
    let scale_x = 1.0 / (dw as f64 / sw as f64);
    let scale_y = 1.0 / (dh as f64 / sh as f64);
    s.xofs.clear();
    s.alpha.clear();
    for dx in 0..dw {
        let (mut sx, mut a) = linear_coef(dx, scale_x);
        if sx < 0 {
            sx = 0;
            a = [1 << COEF_BITS, 0];
        }
        if sx >= sw as i64 - 1 {
            sx = sw as i64 - 1;
            a = [1 << COEF_BITS, 0];
        }
        s.xofs.push(sx as usize);
        s.alpha.push(a);
    }
    let stride = src.width() as usize * 3;
    let raw = src.as_raw();
    let hresize = |row: usize, out: &mut Vec<i32>, xofs: &[usize], alpha: &[[i32; 2]]| {
        let base = (y1 + row) * stride + x1 * 3;
        let line = &raw[base..base + sw * 3];
        out.clear();
        for (&sx, &[a0, a1]) in xofs.iter().zip(alpha) {
            for c in 0..3 {
                let p0 = i32::from(line[sx * 3 + c]) * a0;
                let p1 = if a1 != 0 {
                    i32::from(line[(sx + 1) * 3 + c]) * a1
                } else {
                    0
                };
                out.push(p0 + p1);
            }
        }
    };
    let out = dst.as_mut();
    for dy in 0..dh {
        let (sy, [b0, b1]) = linear_coef(dy, scale_y);
        let clip = |v: i64| v.clamp(0, sh as i64 - 1) as usize;
        hresize(clip(sy), &mut s.row0, &s.xofs, &s.alpha);
        hresize(clip(sy + 1), &mut s.row1, &s.xofs, &s.alpha);
        let line = &mut out[dy * dw * 3..(dy + 1) * dw * 3];
        for ((o, &r0), &r1) in line.iter_mut().zip(&s.row0).zip(&s.row1) {
            let v = (((b0 * (r0 >> 4)) >> 16) + ((b1 * (r1 >> 4)) >> 16) + 2) >> 2;
            *o = v.clamp(0, 255) as u8;
        }
    }
}

/// Cuts the crop model-style around `face` (`[x, y, w, h]`) with `scale` and resizes it into
/// `out` (80x80 RGB). Returns the crop box `[x1, y1, x2, y2]`.
pub fn crop_face(
    frame: &RgbImage,
    face: [f64; 4],
    scale: f64,
    out: &mut RgbImage,
) -> Result<[u32; 4]> {
    let cb = crop_box(frame.width(), frame.height(), face, scale)?;
    if out.dimensions() != (CROP_SIDE, CROP_SIDE) {
        *out = RgbImage::new(CROP_SIDE, CROP_SIDE);
    }
    resize_rect(frame, cb, out)?;
    Ok(cb)
}

/// Resizes the inclusive rectangle `rect` (`[x1, y1, x2, y2]`) of `src` into `out` (its size)
/// as `cv2.resize(src[y1:y2+1, x1:x2+1], out_size, interpolation=cv2.INTER_LINEAR)` does.
pub fn resize_rect(src: &RgbImage, rect: [u32; 4], out: &mut RgbImage) -> Result<()> {
    let [x1, y1, x2, y2] = rect;
    if x1 > x2 || y1 > y2 || x2 >= src.width() || y2 >= src.height() || out.width() == 0 {
        return Err(Error::Invalid(format!(
            "rectangle {rect:?} is not inside the {}x{} image",
            src.width(),
            src.height()
        )));
    }
    resize_linear(src, rect, out, &mut ResizeScratch::default());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_box_scales_about_the_centre_and_shifts_inside() {
        // A 100x100 box centred in a 640x480 frame, scale 2.7: 270x270 about (320, 240).
        assert_eq!(
            crop_box(640, 480, [270.0, 190.0, 100.0, 100.0], 2.7).unwrap(),
            [185, 105, 455, 375]
        );
        // Near the left edge: shifted right, same size.
        assert_eq!(
            crop_box(640, 480, [0.0, 190.0, 100.0, 100.0], 2.7).unwrap(),
            [0, 105, 270, 375]
        );
        // Scale 4 does not fit 479 rows: the scale drops to 479/200, the crop spans every row.
        let [_, y1, _, y2] = crop_box(640, 480, [200.0, 100.0, 200.0, 200.0], 4.0).unwrap();
        assert_eq!((y1, y2), (0, 479));
        assert!(crop_box(640, 480, [0.0, 0.0, 0.0, 10.0], 2.7).is_err());
        assert!(crop_box(640, 480, [f64::NAN, 0.0, 10.0, 10.0], 2.7).is_err());
    }

    /// OpenCV's INTER_LINEAR on exact halving is the mean of each 2x2 block, rounded half up;
    /// on a same-size resize it is the identity.
    #[test]
    fn resize_matches_opencv_on_halving_and_identity() {
        let src = RgbImage::from_fn(160, 160, |x, y| {
            image::Rgb([(x * 7 + y * 3) as u8, (x ^ y) as u8, ((x * y) % 251) as u8])
        });
        let mut dst = RgbImage::new(80, 80);
        resize_linear(
            &src,
            [0, 0, 159, 159],
            &mut dst,
            &mut ResizeScratch::default(),
        );
        for (x, y, p) in dst.enumerate_pixels() {
            for c in 0..3 {
                let sum: u32 = [(0, 0), (1, 0), (0, 1), (1, 1)]
                    .iter()
                    .map(|(dx, dy)| u32::from(src.get_pixel(2 * x + dx, 2 * y + dy)[c]))
                    .sum();
                assert_eq!(
                    u32::from(p[c]),
                    (sum + 2) >> 2,
                    "pixel ({x},{y}) channel {c}"
                );
            }
        }
        let mut same = RgbImage::new(80, 80);
        resize_linear(
            &src,
            [40, 30, 119, 109],
            &mut same,
            &mut ResizeScratch::default(),
        );
        for (x, y, p) in same.enumerate_pixels() {
            assert_eq!(p, src.get_pixel(x + 40, y + 30));
        }
    }

    #[test]
    fn softmax_sums_to_one_and_keeps_order() {
        let p = softmax(&[1.0, 3.0, -2.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0] && p[0] > p[2]);
        assert!(softmax(&[1000.0, 0.0, 0.0])[0] > 0.999);
    }

    #[test]
    fn choice_parses_the_three_names() {
        assert_eq!(
            "both".parse::<LivenessChoice>().unwrap(),
            LivenessChoice::Both
        );
        assert_eq!(
            "V1SE".parse::<LivenessChoice>().unwrap().model_names(),
            ["v1se"]
        );
        let e = "v3".parse::<LivenessChoice>().unwrap_err().to_string();
        assert!(e.contains("both, v2 or v1se"), "{e}");
    }
}
