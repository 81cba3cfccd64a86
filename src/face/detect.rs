//! Face detection with MediaPipe BlazeFace (short- or full-range) through tract: letterbox the
//! frame into the model's square input, decode the SSD anchors, then MediaPipe's weighted
//! non-maximum suppression. Boxes and the six keypoints come back in frame pixels.

use super::geometry::{Point, Rect};
use super::runtime::{load_plan, output_slice, Plan, Runner};
use crate::error::{Error, Result};
use crate::models::{DetectorSpec, ModelDir};
use image::RgbImage;
use serde::Serialize;
use std::sync::Arc;

/// One detected face: box in frame pixels (`x`, `y` top-left), score, and BlazeFace's six
/// keypoints (image-left eye, image-right eye, nose tip, mouth, image-left and image-right ear tragion).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Detection {
    pub x: f32,
    pub y: f32,
    pub width: f32,
    pub height: f32,
    pub score: f32,
    pub keypoints: [[f32; 2]; 6],
}

impl Detection {
    /// The same detection moved by (`dx`, `dy`) pixels: from a crop's coordinates to those of
    /// the image the crop was cut from at (`dx`, `dy`).
    pub fn translated(mut self, dx: f32, dy: f32) -> Detection {
        self.x += dx;
        self.y += dy;
        for k in self.keypoints.iter_mut() {
            k[0] += dx;
            k[1] += dy;
        }
        self
    }

    pub fn center(&self) -> Point {
        Point::new(
            f64::from(self.x + self.width / 2.0),
            f64::from(self.y + self.height / 2.0),
        )
    }

    fn iou(&self, o: &Detection) -> f32 {
        let x1 = self.x.max(o.x);
        let y1 = self.y.max(o.y);
        let x2 = (self.x + self.width).min(o.x + o.width);
        let y2 = (self.y + self.height).min(o.y + o.height);
        let inter = (x2 - x1).max(0.0) * (y2 - y1).max(0.0);
        let union = self.width * self.height + o.width * o.height - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }
}

/// How a BlazeFace box maps onto the dlib-detector-style box the landmark model was trained on
/// (fitted by tools/models on real faces; see models/MODEL_CARD.md).
#[derive(Debug, Clone, Copy)]
pub struct BoxMapping {
    pub scale: f64,
    pub offset_x: f64,
    pub offset_y: f64,
}

impl BoxMapping {
    /// The dlib-style rectangle for a detection, in the convention the mapping was fitted in
    /// (pixel `i` covers `[i, i+1)`; a rectangle's sides are inclusive whole pixels).
    pub fn apply(&self, d: &Detection) -> Rect {
        let c = d.center();
        let (w, h) = (f64::from(d.width), f64::from(d.height));
        let cx = c.x + self.offset_x * w;
        let cy = c.y + self.offset_y * h;
        let side = (self.scale * w).round().max(1.0);
        let left = (cx - side / 2.0).round();
        let top = (cy - side / 2.0).round();
        Rect::new(left, top, left + side - 1.0, top + side - 1.0)
    }
}

/// The loaded detector: shared, immutable.
pub struct DetectorModel {
    plan: Plan,
    spec: DetectorSpec,
    anchors: Vec<[f32; 2]>,
    size: usize,
}

impl DetectorModel {
    pub fn load(dir: &ModelDir, name: &str) -> Result<Arc<Self>> {
        let spec = dir.detector(name)?.clone();
        let path = dir.path_of(&spec.file);
        let bad = |reason: String| Error::Model {
            path: path.clone(),
            reason,
        };
        let shape = &spec.input_shape;
        if shape.len() != 4 || shape[0] != 1 || shape[1] != 3 || shape[2] != shape[3] {
            return Err(bad(format!(
                "detector input shape {shape:?} is not [1, 3, S, S]"
            )));
        }
        let size = shape[2];
        let anchors = ssd_anchors(size, &spec.anchor_strides, spec.anchors_per_cell);
        if anchors.len() != spec.num_anchors {
            return Err(bad(format!(
                "anchor layout gives {} anchors, manifest says {}",
                anchors.len(),
                spec.num_anchors
            )));
        }
        let bytes = dir.read_verified(&spec.file, &spec.sha256)?;
        let plan = load_plan(
            &bytes,
            &path,
            &spec.input_name,
            shape,
            &[&spec.regressors_output, &spec.scores_output],
        )?;
        Ok(Arc::new(DetectorModel {
            plan,
            spec,
            anchors,
            size,
        }))
    }

    pub fn input_size(&self) -> usize {
        self.size
    }
}

/// MediaPipe `SsdAnchorsCalculator` with fixed anchor size: consecutive layers of equal stride
/// share one grid; every layer contributes `per_layer` anchors per cell, centred on the cell.
pub fn ssd_anchors(size: usize, strides: &[u32], per_layer: usize) -> Vec<[f32; 2]> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < strides.len() {
        let stride = strides[i] as usize;
        let mut j = i;
        while j < strides.len() && strides[j] as usize == stride {
            j += 1;
        }
        let per_cell = per_layer * (j - i);
        let grid = size.div_ceil(stride);
        for y in 0..grid {
            for x in 0..grid {
                let c = [
                    (x as f32 + 0.5) / grid as f32,
                    (y as f32 + 0.5) / grid as f32,
                ];
                out.extend(std::iter::repeat_n(c, per_cell));
            }
        }
        i = j;
    }
    out
}

/// A detector for one worker thread.
pub struct Detector {
    model: Arc<DetectorModel>,
    runner: Runner,
    candidates: Vec<Detection>,
    /// Per-column resampling positions, reused between frames.
    columns: Vec<Column>,
}

/// Source columns and weight for one model-input column, and whether it shows the frame.
type Column = (usize, usize, f32, bool);

/// Where the frame sits in the square model input.
#[derive(Debug, Clone, Copy)]
struct Letterbox {
    scale: f32,
    pad_x: f32,
    pad_y: f32,
}

impl Detector {
    pub fn new(model: Arc<DetectorModel>) -> Result<Self> {
        let runner = Runner::new(&model.plan, &model.spec.input_shape, "face detection")?;
        Ok(Detector {
            model,
            runner,
            candidates: Vec::new(),
            columns: Vec::new(),
        })
    }

    pub fn model(&self) -> &Arc<DetectorModel> {
        &self.model
    }

    /// All faces above the model's minimum score, best first.
    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>> {
        let s = self.model.size;
        let (w, h) = (img.width() as f32, img.height() as f32);
        if w < 1.0 || h < 1.0 {
            return Ok(Vec::new());
        }
        let scale = s as f32 / w.max(h);
        let lb = Letterbox {
            scale,
            pad_x: (s as f32 - w * scale) / 2.0,
            pad_y: (s as f32 - h * scale) / 2.0,
        };
        let spec = &self.model.spec;
        let (mean, std) = (spec.mean, spec.std);
        let columns = &mut self.columns;
        let outputs = self
            .runner
            .run(|buf| letterbox_into(img, s, lb, mean, std, columns, buf))?;
        let reg = output_slice(&outputs[0], "face detection")?;
        let scores = output_slice(&outputs[1], "face detection")?;
        let n = self.model.anchors.len();
        if scores.len() != n || reg.len() % n != 0 || reg.len() / n < 16 {
            return Err(Error::Inference {
                stage: "face detection",
                reason: format!(
                    "unexpected output sizes {} and {} for {n} anchors",
                    reg.len(),
                    scores.len()
                ),
            });
        }
        let stride = reg.len() / n;
        let min_logit = logit(spec.min_score);
        self.candidates.clear();
        let sf = s as f32;
        for (i, a) in self.model.anchors.iter().enumerate() {
            if scores[i] < min_logit {
                continue;
            }
            let r = &reg[i * stride..i * stride + 16];
            let cx = r[0] / sf + a[0];
            let cy = r[1] / sf + a[1];
            let bw = r[2] / sf;
            let bh = r[3] / sf;
            // model-input pixels -> frame pixels
            let to_x = |v: f32| (v * sf - lb.pad_x) / lb.scale;
            let to_y = |v: f32| (v * sf - lb.pad_y) / lb.scale;
            let mut keypoints = [[0.0f32; 2]; 6];
            for (k, kp) in keypoints.iter_mut().enumerate() {
                *kp = [
                    to_x(r[4 + 2 * k] / sf + a[0]),
                    to_y(r[5 + 2 * k] / sf + a[1]),
                ];
            }
            self.candidates.push(Detection {
                x: to_x(cx - bw / 2.0),
                y: to_y(cy - bh / 2.0),
                width: bw * sf / lb.scale,
                height: bh * sf / lb.scale,
                score: sigmoid(scores[i].clamp(-100.0, 100.0)),
                keypoints,
            });
        }
        Ok(weighted_nms(&mut self.candidates, spec.nms_iou))
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

/// Resamples the frame into the model's square input, aspect kept, centred, black bars,
/// normalised to the model's range, NCHW. Bilinear, as MediaPipe's image-to-tensor does.
fn letterbox_into(
    img: &RgbImage,
    s: usize,
    lb: Letterbox,
    mean: [f32; 3],
    std: [f32; 3],
    cols: &mut Vec<Column>,
    buf: &mut [f32],
) {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let raw = img.as_raw();
    let plane = s * s;
    let inv = 1.0 / lb.scale;
    let black = [
        (0.0 - mean[0]) / std[0],
        (0.0 - mean[1]) / std[1],
        (0.0 - mean[2]) / std[2],
    ];
    // A model pixel shows the frame when its centre falls inside the scaled frame.
    let axis = |o: usize, pad: f32, len: usize| {
        let centre = o as f32 + 0.5;
        let inside = centre >= pad && centre < pad + len as f32 * lb.scale;
        let src = ((centre - pad) * inv - 0.5).clamp(0.0, (len - 1) as f32);
        let i0 = src.floor() as usize;
        (i0, (i0 + 1).min(len - 1), src - i0 as f32, inside)
    };
    // Per-column source positions are the same for every row: compute them once.
    cols.clear();
    cols.extend((0..s).map(|ox| axis(ox, lb.pad_x, w)));
    for oy in 0..s {
        let (y0, y1, fy, row_inside) = axis(oy, lb.pad_y, h);
        for (ox, &(x0, x1, fx, col_inside)) in cols.iter().enumerate() {
            let o = oy * s + ox;
            if !(row_inside && col_inside) {
                for c in 0..3 {
                    buf[c * plane + o] = black[c];
                }
                continue;
            }
            let p00 = (y0 * w + x0) * 3;
            let p01 = (y0 * w + x1) * 3;
            let p10 = (y1 * w + x0) * 3;
            let p11 = (y1 * w + x1) * 3;
            for c in 0..3 {
                let top = f32::from(raw[p00 + c]) * (1.0 - fx) + f32::from(raw[p01 + c]) * fx;
                let bot = f32::from(raw[p10 + c]) * (1.0 - fx) + f32::from(raw[p11 + c]) * fx;
                let v = top * (1.0 - fy) + bot * fy;
                buf[c * plane + o] = (v - mean[c]) / std[c];
            }
        }
    }
}

/// MediaPipe's weighted NMS: take the best remaining box, average it with every box that
/// overlaps it by more than `iou` (weighted by score), and keep the best score.
fn weighted_nms(cands: &mut Vec<Detection>, iou: f32) -> Vec<Detection> {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut out = Vec::new();
    let mut remaining: Vec<Detection> = std::mem::take(cands);
    while let Some(best) = remaining.first().copied() {
        let mut keep = Vec::with_capacity(remaining.len());
        let (mut wsum, mut acc) = (0.0f32, [0.0f32; 16]);
        for d in &remaining {
            if best.iou(d) > iou {
                let w = d.score;
                wsum += w;
                acc[0] += d.x * w;
                acc[1] += d.y * w;
                acc[2] += d.width * w;
                acc[3] += d.height * w;
                for k in 0..6 {
                    acc[4 + 2 * k] += d.keypoints[k][0] * w;
                    acc[5 + 2 * k] += d.keypoints[k][1] * w;
                }
            } else {
                keep.push(*d);
            }
        }
        let mut merged = best;
        if wsum > 0.0 {
            merged.x = acc[0] / wsum;
            merged.y = acc[1] / wsum;
            merged.width = acc[2] / wsum;
            merged.height = acc[3] / wsum;
            for k in 0..6 {
                merged.keypoints[k] = [acc[4 + 2 * k] / wsum, acc[5 + 2 * k] / wsum];
            }
        }
        out.push(merged);
        // `best` overlaps itself, so it never survives into `keep`.
        remaining = keep;
    }
    *cands = remaining;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchor_layouts_match_mediapipe() {
        assert_eq!(ssd_anchors(128, &[8, 16, 16, 16], 2).len(), 896);
        assert_eq!(ssd_anchors(192, &[4], 1).len(), 2304);
        let a = ssd_anchors(128, &[8, 16, 16, 16], 2);
        assert_eq!(a[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[512], [0.5 / 8.0, 0.5 / 8.0]);
    }

    #[test]
    fn weighted_nms_merges_overlaps_and_keeps_separate_faces() {
        let d = |x: f32, s: f32| Detection {
            x,
            y: 0.0,
            width: 10.0,
            height: 10.0,
            score: s,
            keypoints: [[x, 0.0]; 6],
        };
        let mut c = vec![d(0.0, 0.9), d(1.0, 0.6), d(50.0, 0.7)];
        let out = weighted_nms(&mut c, 0.3);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert!((out[0].x - 0.6 / 1.5).abs() < 1e-6);
        assert_eq!(out[1].x, 50.0);
    }
}
