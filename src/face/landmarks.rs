//! Five-point facial landmarks: a Rust port of dlib's `shape_predictor` (an ensemble of
//! regression trees, Kazemi & Sullivan 2014) that reads dlib's own
//! `shape_predictor_5_face_landmarks.dat` (CC0) directly, so the shipped file is the upstream
//! file byte for byte and there is no converted copy to audit.
//!
//! The five points, in dlib's order: 0 outer and 1 inner corner of the eye on the image's right,
//! 2 outer and 3 inner corner of the eye on the image's left, 4 the base of the nose.

use super::geometry::{Point, Rect, Similarity};
use crate::error::{Error, Result};
use crate::imageio::intensity;
use image::RgbImage;
use std::path::Path;

/// The five landmarks of one face in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Landmarks(pub [Point; 5]);

impl Landmarks {
    /// Distance between the two eye centres, the usual measure of face size at a door.
    pub fn eye_distance(&self) -> f64 {
        let p = &self.0;
        let right = Point::new((p[0].x + p[1].x) / 2.0, (p[0].y + p[1].y) / 2.0);
        let left = Point::new((p[2].x + p[3].x) / 2.0, (p[2].y + p[3].y) / 2.0);
        right.distance(left)
    }

    /// Rounded to whole pixels, as dlib's `full_object_detection` stores them.
    pub fn rounded(&self) -> Landmarks {
        Landmarks(
            self.0
                .map(|p| Point::new((p.x + 0.5).floor(), (p.y + 0.5).floor())),
        )
    }
}

/// How dlib's detector rectangle sits on the five landmarks the predictor finds in it, fitted on
/// dlib's own (HOG rectangle, landmarks) pairs by tools/models (models.toml `[landmarks] refit_*`).
///
/// The predictor was trained on dlib's HOG boxes, and what it returns depends on the box it is
/// given. BlazeFace's box differs from dlib's in ways its size and centre do not explain (pose,
/// crop), so a first pass from the mapped BlazeFace box is followed by a second pass from the
/// rectangle dlib's detector would most likely have drawn around the first pass's landmarks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LandmarkRect {
    /// Rectangle side per pixel of eye distance (eye centre to eye centre).
    pub side_eyes: f64,
    /// Rectangle side per pixel from the eyes' midpoint to the base of the nose.
    pub side_nose: f64,
    /// Rectangle centre = centre of the five points + `offset * side`.
    pub offset_x: f64,
    pub offset_y: f64,
}

impl LandmarkRect {
    /// The dlib-style rectangle (whole pixels, inclusive sides) for these landmarks.
    pub fn apply(&self, l: &Landmarks) -> Rect {
        let p = &l.0;
        let n = p.len() as f64;
        let cx = p.iter().map(|q| q.x).sum::<f64>() / n;
        let cy = p.iter().map(|q| q.y).sum::<f64>() / n;
        let eyes = Point::new(
            (p[0].x + p[1].x + p[2].x + p[3].x) / 4.0,
            (p[0].y + p[1].y + p[2].y + p[3].y) / 4.0,
        );
        let raw = self.side_eyes * l.eye_distance() + self.side_nose * eyes.distance(p[4]);
        let (cx, cy) = (cx + self.offset_x * raw, cy + self.offset_y * raw);
        let side = raw.round().max(1.0);
        let left = (cx - side / 2.0).round();
        let top = (cy - side / 2.0).round();
        Rect::new(left, top, left + side - 1.0, top + side - 1.0)
    }
}

struct Split {
    idx1: u32,
    idx2: u32,
    thresh: f32,
}

struct Tree {
    splits: Vec<Split>,
    /// `leaves * (2 * num_points)` shape deltas, row major.
    leaves: Vec<f32>,
}

struct Cascade {
    trees: Vec<Tree>,
    anchor: Vec<u32>,
    deltas: Vec<[f32; 2]>,
}

/// A loaded shape predictor. Immutable and shareable between threads.
pub struct ShapePredictor {
    initial: Vec<f32>,
    cascades: Vec<Cascade>,
}

impl ShapePredictor {
    /// Parses dlib's binary serialisation of `shape_predictor` (format version 1): the
    /// version, the initial shape, the forests of regression trees (one per cascade), the
    /// anchor points and pixel offsets of each cascade; then checks that nothing is left over
    /// and that every index is within its table.
    pub fn from_dat(bytes: &[u8], origin: &Path) -> Result<Self> {
        let err = |reason: String| Error::Model {
            path: origin.to_path_buf(),
            reason: format!("not a dlib shape predictor: {reason}"),
        };
        let mut r = DlibReader { buf: bytes, pos: 0 };
        let version = r.int().map_err(err)?;
        if version != 1 {
            return Err(err(format!("unsupported version {version}")));
        }
        let initial = r.float_matrix().map_err(err)?;
        let forests = read_forests(&mut r, initial.len()).map_err(err)?;
        let anchors = read_anchors(&mut r).map_err(err)?;
        let deltas = read_deltas(&mut r).map_err(err)?;
        if r.pos != bytes.len() {
            return Err(err(format!("{} trailing bytes", bytes.len() - r.pos)));
        }
        let cascades = build_cascades(forests, anchors, deltas, initial.len() / 2).map_err(err)?;
        Ok(ShapePredictor { initial, cascades })
    }

    pub fn num_points(&self) -> usize {
        self.initial.len() / 2
    }

    /// Predicts the landmarks of the face in `rect` (a dlib-detector-style box).
    pub fn predict(&self, img: &RgbImage, rect: &Rect) -> Landmarks {
        let n = self.num_points();
        debug_assert_eq!(n, 5);
        let (sx, sy) = (rect.right - rect.left, rect.bottom - rect.top);
        let (w, h) = (img.width() as i64, img.height() as i64);
        let mut shape = self.initial.clone();
        let reference: Vec<Point> = pts(&self.initial);
        let mut features: Vec<f32> = Vec::new();
        for cascade in &self.cascades {
            let tform = Similarity::estimate(&reference, &pts(&shape));
            // dlib computes this matrix in double and casts it to float
            let (m00, m10) = (tform.a_re as f32, tform.a_im as f32);
            features.clear();
            for (&a, d) in cascade.anchor.iter().zip(&cascade.deltas) {
                let a = a as usize;
                let px = m00 * d[0] - m10 * d[1] + shape[2 * a];
                let py = m10 * d[0] + m00 * d[1] + shape[2 * a + 1];
                let ix = (f64::from(px) * sx + rect.left + 0.5).floor() as i64;
                let iy = (f64::from(py) * sy + rect.top + 0.5).floor() as i64;
                let v = if ix >= 0 && iy >= 0 && ix < w && iy < h {
                    f32::from(intensity(img.get_pixel(ix as u32, iy as u32)))
                } else {
                    0.0
                };
                features.push(v);
            }
            for tree in &cascade.trees {
                let ns = tree.splits.len();
                let mut i = 0;
                while i < ns {
                    let s = &tree.splits[i];
                    i = if features[s.idx1 as usize] - features[s.idx2 as usize] > s.thresh {
                        2 * i + 1
                    } else {
                        2 * i + 2
                    };
                }
                let leaf = &tree.leaves[(i - ns) * shape.len()..(i - ns + 1) * shape.len()];
                for (s, l) in shape.iter_mut().zip(leaf) {
                    *s += *l;
                }
            }
        }
        let mut out = [Point::default(); 5];
        for (k, o) in out.iter_mut().enumerate() {
            *o = Point::new(
                f64::from(shape[2 * k]) * sx + rect.left,
                f64::from(shape[2 * k + 1]) * sy + rect.top,
            );
        }
        Landmarks(out)
    }
}

/// The boxes [`ShapePredictor::predict_jittered`] adds around the second pass's rectangle:
/// its centre moved by 5% of the side left, right, up and down. dlib's HOG boxes, on which
/// the predictor was trained, sit on an 8-pixel cell grid of a 6/5 image pyramid, so where a
/// box lies around a face varies by about that much; averaging over such shifts gives the
/// landmarks expected over dlib's boxes rather than those of one box.
pub const LANDMARK_JITTER: [(f64, f64, f64); 4] = [
    (0.05, 0.0, 1.0),
    (-0.05, 0.0, 1.0),
    (0.0, 0.05, 1.0),
    (0.0, -0.05, 1.0),
];

impl ShapePredictor {
    /// The mean of the landmarks predicted on `rect` and on each box of `jitter` around it
    /// (`(dx, dy, scale)`: the centre moved by `dx`, `dy` times the side, the side times
    /// `scale`), unrounded. Averaging over nearby boxes lowers the regression trees'
    /// sensitivity to exactly where the box lies.
    pub fn predict_jittered(
        &self,
        img: &RgbImage,
        rect: &Rect,
        jitter: &[(f64, f64, f64)],
    ) -> Landmarks {
        let (cx, cy) = (
            (rect.left + rect.right) / 2.0,
            (rect.top + rect.bottom) / 2.0,
        );
        let (w, h) = (rect.right - rect.left, rect.bottom - rect.top);
        let mut sum = [Point::default(); 5];
        let mut n = 0.0;
        for &(dx, dy, scale) in std::iter::once(&(0.0, 0.0, 1.0)).chain(jitter) {
            let (x, y) = (cx + dx * w, cy + dy * h);
            let (hw, hh) = (w * scale / 2.0, h * scale / 2.0);
            let l = self.predict(img, &Rect::new(x - hw, y - hh, x + hw, y + hh));
            for (s, p) in sum.iter_mut().zip(l.0) {
                s.x += p.x;
                s.y += p.y;
            }
            n += 1.0;
        }
        Landmarks(sum.map(|p| Point::new(p.x / n, p.y / n)))
    }
}

fn pts(shape: &[f32]) -> Vec<Point> {
    shape
        .chunks_exact(2)
        .map(|c| Point::new(f64::from(c[0]), f64::from(c[1])))
        .collect()
}

/// Reader for dlib's `serialize()` stream: variable-length integers (a control byte with
/// the byte count and a sign bit, then little-endian bytes) and floats stored as such an
/// integer mantissa and exponent.
/// The regression trees of every cascade; each leaf holds a shape delta of `shape_len`
/// values.
fn read_forests(r: &mut DlibReader<'_>, shape_len: usize) -> Result<Vec<Vec<Tree>>, String> {
    let n_cascades = r.len()?;
    let mut forests = Vec::with_capacity(n_cascades);
    for _ in 0..n_cascades {
        let n_trees = r.len()?;
        let mut trees = Vec::with_capacity(n_trees);
        for _ in 0..n_trees {
            trees.push(read_tree(r, shape_len)?);
        }
        forests.push(trees);
    }
    Ok(forests)
}

/// One tree: its splits, then one more leaf than splits.
fn read_tree(r: &mut DlibReader<'_>, shape_len: usize) -> Result<Tree, String> {
    let n_splits = r.len()?;
    let mut splits = Vec::with_capacity(n_splits);
    for _ in 0..n_splits {
        let idx1 = r.int()? as u32;
        let idx2 = r.int()? as u32;
        let thresh = r.float()?;
        splits.push(Split { idx1, idx2, thresh });
    }
    let n_leaves = r.len()?;
    if n_leaves != n_splits + 1 {
        return Err(format!("{n_leaves} leaves for {n_splits} splits"));
    }
    let mut leaves = Vec::with_capacity(n_leaves * shape_len);
    for _ in 0..n_leaves {
        let leaf = r.float_matrix()?;
        if leaf.len() != shape_len {
            return Err("leaf size differs from shape size".into());
        }
        leaves.extend_from_slice(&leaf);
    }
    Ok(Tree { splits, leaves })
}

/// Per cascade, the landmark each feature pixel is anchored to.
fn read_anchors(r: &mut DlibReader<'_>) -> Result<Vec<Vec<u32>>, String> {
    let n_anchor = r.len()?;
    let mut anchors = Vec::with_capacity(n_anchor);
    for _ in 0..n_anchor {
        let n = r.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(r.int()? as u32);
        }
        anchors.push(v);
    }
    Ok(anchors)
}

/// Per cascade, each feature pixel's offset from its anchor.
fn read_deltas(r: &mut DlibReader<'_>) -> Result<Vec<Vec<[f32; 2]>>, String> {
    let n_deltas = r.len()?;
    let mut deltas = Vec::with_capacity(n_deltas);
    for _ in 0..n_deltas {
        let n = r.len()?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push([r.float()?, r.float()?]);
        }
        deltas.push(v);
    }
    Ok(deltas)
}

/// Puts the three per-cascade tables together; refuses tables of different lengths and any
/// index out of range (an anchor beyond the shape's points, a split beyond the features), so
/// that prediction never indexes out of bounds.
fn build_cascades(
    forests: Vec<Vec<Tree>>,
    anchors: Vec<Vec<u32>>,
    deltas: Vec<Vec<[f32; 2]>>,
    num_points: usize,
) -> Result<Vec<Cascade>, String> {
    if anchors.len() != forests.len() || deltas.len() != forests.len() {
        return Err("cascade tables disagree in length".into());
    }
    let mut cascades = Vec::with_capacity(forests.len());
    for ((trees, anchor), deltas) in forests.into_iter().zip(anchors).zip(deltas) {
        if anchor.len() != deltas.len()
            || anchor.iter().any(|&a| a as usize >= num_points)
            || trees.iter().any(|t| {
                t.splits
                    .iter()
                    .any(|s| s.idx1 as usize >= anchor.len() || s.idx2 as usize >= anchor.len())
            })
        {
            return Err("feature index out of range".into());
        }
        cascades.push(Cascade {
            trees,
            anchor,
            deltas,
        });
    }
    Ok(cascades)
}

struct DlibReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl DlibReader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self
            .buf
            .get(self.pos)
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        self.pos += 1;
        Ok(b)
    }

    fn int(&mut self) -> Result<i64, String> {
        let control = self.byte()?;
        let size = usize::from(control & 0x0f);
        if size > 8 {
            return Err(format!("bad integer at byte {}", self.pos - 1));
        }
        let mut v: u64 = 0;
        for i in 0..size {
            v |= u64::from(self.byte()?) << (8 * i);
        }
        let v = v as i64;
        Ok(if control & 0x80 != 0 { -v } else { v })
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.int()?;
        if n < 0 || n as usize > self.buf.len() {
            return Err(format!("implausible length {n} at byte {}", self.pos));
        }
        Ok(n as usize)
    }

    fn float(&mut self) -> Result<f32, String> {
        if self.buf.get(self.pos).is_some_and(|b| b & 0x70 != 0) {
            return Err("old text float format is not supported".into());
        }
        let mantissa = self.int()?;
        let exponent = self.int()?;
        if !(-2000..=2000).contains(&exponent) {
            return Err(format!("bad float exponent {exponent}"));
        }
        Ok((mantissa as f64 * 2f64.powi(exponent as i32)) as f32)
    }

    /// A column matrix; dlib writes the dimensions negated to mark its current format.
    fn float_matrix(&mut self) -> Result<Vec<f32>, String> {
        let nr = -self.int()?;
        let nc = -self.int()?;
        if nr < 0 || nc < 0 || (nr * nc) as usize > self.buf.len() {
            return Err(format!("bad matrix size {nr}x{nc}"));
        }
        (0..nr * nc).map(|_| self.float()).collect()
    }
}
