//! Finding the face in a photo (enrollment, `verify`, `identify`, `eval`), where a face the
//! camera path would never meet must not be lost to framing:
//!
//! - a face that fills the picture (a badge or passport crop) leaves BlazeFace no context: the
//!   photo is padded with its mean colour on every side and searched again; a face found there
//!   counts with a detector score of at least [`PADDED_MIN_SCORE`];
//! - a small face in a large photo (a full-length portrait: the face is 5-8% of the picture,
//!   too small for the short-range detector's 128-pixel input) is searched for in overlapping
//!   square tiles half the photo's shorter side, where it is twice as large; a face found there
//!   counts with a score of at least [`TILED_MIN_SCORE`];
//! - a photo stored sideways without an EXIF orientation (EXIF is honoured when decoding,
//!   [`crate::imageio`]) where still nothing is found: searched again turned a quarter turn
//!   each way, and a face found there counts only with a detector score of at least
//!   [`TURNED_MIN_SCORE`] (turned looks of faceless photos otherwise find faces in clutter).
//!   BlazeFace finds most sideways faces as they are (with a lower score and upright-looking
//!   keypoints), so those are not turned: comparing the scores of the four turns was measured
//!   and rejected (it turned upright photos wrongly).
//!
//! - when all of that found nothing: the full-range detector (BlazeFace's model for faces up to
//!   ~5 m, with a finer anchor grid) on the photo as given (a face counts with a score of at
//!   least [`FULL_RANGE_MIN_SCORE`]), then on the tiles (at least [`TILED_MIN_SCORE`]). It is
//!   loaded the first time a photo needs it.
//!
//! Each retry runs only when the previous looks found nothing, so a photo with a face costs
//! what it did. Camera frames never come here: the door calls [`FaceEngine::detect`] once per
//! frame, and a frame without a face (most frames at a door) costs one detector pass.
//! Faces found on a re-framed copy are described (landmarks, chip, embedding) on that copy and
//! their boxes and landmarks are mapped back to the photo's own pixels.

use super::detect::Detection;
use super::geometry::Point;
use super::landmarks::Landmarks;
use super::pick::FacePick;
use super::{Face, FaceEngine};
use crate::error::Result;
use image::{Rgb, RgbImage};
use std::borrow::Cow;

/// Padding on each side when a photo is searched again, as a share of its longer side: the
/// face then spans about half the padded picture (measured on tight crops made from the dev
/// sets: 0.25-0.5 of mean colour find every face that 0.85x-box crops hide, black or replicated
/// borders miss some).
pub const PAD_FRACTION: f32 = 0.35;

/// The detector score a face found only in the padded photo needs. Measured on 951 crops at
/// 0.7x the face box (168x192; 363 without a face found as they are) and 259 faceless tiles of
/// the whitehouse photos and the hamilton clip: at 0.5 (the detector's own minimum) no crop is
/// lost and 39 tiles gain a false face; at 0.6, 3 crops are lost and 13 tiles gain one; at
/// 0.7, 19 and 2.
pub const PADDED_MIN_SCORE: f32 = 0.6;

/// The detector score a face found only in a tile needs (a tile is a small picture of clutter
/// more often than the photo is). The faces the tiles find in CelebA's full-length portraits
/// score 0.89-0.97; 3 of those 17 photos have a face only below 0.8 (a far figure in a
/// landscape among them).
pub const TILED_MIN_SCORE: f32 = 0.8;

/// The detector score a face found only in a turned photo needs.
pub const TURNED_MIN_SCORE: f32 = 0.75;

/// The detector score a face found only by the last look, the full-range detector on the photo
/// as given, needs: the tiles' floor, for the same reason (a photo where every other look found
/// nothing is more often clutter). CelebA's last two photos without a face (a figure sitting
/// in a landscape, face 41 px wide in 1200x853; a singer with closed eyes behind a microphone)
/// score 0.91 and 0.83 there.
pub const FULL_RANGE_MIN_SCORE: f32 = 0.8;

/// How the picture the faces were found in relates to the photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reframe {
    /// The photo as given.
    AsIs,
    /// Padded by this many pixels on every side.
    Padded(u32),
    /// Searched tile by tile; the boxes are in the photo's own pixels.
    Tiled,
    /// Searched by the full-range detector, as given (`tiled: false`) or tile by tile; the
    /// boxes are in the photo's own pixels.
    FullRange { tiled: bool },
    /// Turned clockwise by this many quarter turns (1, 2 or 3).
    Turned(u8),
}

impl Reframe {
    /// The padding for a photo that may be nothing but face.
    fn padding(img: &RgbImage) -> Reframe {
        Reframe::Padded(
            ((PAD_FRACTION * img.width().max(img.height()) as f32).round() as u32).max(1),
        )
    }

    /// The re-framed picture (borrowed when as given).
    pub fn apply<'a>(self, img: &'a RgbImage) -> Cow<'a, RgbImage> {
        match self {
            Reframe::AsIs | Reframe::Tiled | Reframe::FullRange { .. } => Cow::Borrowed(img),
            Reframe::Padded(p) => Cow::Owned(pad_with_mean(img, p)),
            Reframe::Turned(1) => Cow::Owned(image::imageops::rotate90(img)),
            Reframe::Turned(2) => Cow::Owned(image::imageops::rotate180(img)),
            Reframe::Turned(_) => Cow::Owned(image::imageops::rotate270(img)),
        }
    }

    /// A point of the re-framed picture in the coordinates of the photo (`w` x `h` pixels),
    /// pixel edges as the unit: a box corner maps to a box corner.
    pub fn to_photo(self, x: f64, y: f64, w: u32, h: u32) -> (f64, f64) {
        let (w, h) = (f64::from(w), f64::from(h));
        match self {
            Reframe::AsIs | Reframe::Tiled | Reframe::FullRange { .. } => (x, y),
            Reframe::Padded(p) => (x - f64::from(p), y - f64::from(p)),
            // rotate90: photo (px, py) -> (h - py, px), so px = y, py = h - x
            Reframe::Turned(1) => (y, h - x),
            Reframe::Turned(2) => (w - x, h - y),
            // rotate270: photo (px, py) -> (py, w - px)
            Reframe::Turned(_) => (w - y, x),
        }
    }

    /// A detection of the re-framed picture in the photo's coordinates.
    fn detection_to_photo(self, d: &Detection, w: u32, h: u32) -> Detection {
        let f = |x: f32, y: f32| {
            let (a, b) = self.to_photo(f64::from(x), f64::from(y), w, h);
            (a as f32, b as f32)
        };
        let (x0, y0) = f(d.x, d.y);
        let (x1, y1) = f(d.x + d.width, d.y + d.height);
        Detection {
            x: x0.min(x1),
            y: y0.min(y1),
            width: (x1 - x0).abs(),
            height: (y1 - y0).abs(),
            score: d.score,
            keypoints: d.keypoints.map(|[x, y]| {
                let (a, b) = f(x, y);
                [a, b]
            }),
        }
    }

    /// A described face of the re-framed picture in the photo's coordinates (the embedding is
    /// the one of the upright face).
    fn face_to_photo(self, face: Face, w: u32, h: u32) -> Face {
        if matches!(
            self,
            Reframe::AsIs | Reframe::Tiled | Reframe::FullRange { .. }
        ) {
            return face;
        }
        Face {
            detection: self.detection_to_photo(&face.detection, w, h),
            landmarks: Landmarks(face.landmarks.0.map(|p| {
                let (x, y) = self.to_photo(p.x, p.y, w, h);
                Point::new(x, y)
            })),
            embedding: face.embedding,
        }
    }
}

/// `img` centred in a picture `pad` pixels larger on every side, filled with its mean colour.
fn pad_with_mean(img: &RgbImage, pad: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut sum = [0u64; 3];
    for p in img.pixels() {
        for (s, v) in sum.iter_mut().zip(p.0) {
            *s += u64::from(v);
        }
    }
    let n = (u64::from(w) * u64::from(h)).max(1);
    let mean = Rgb(sum.map(|s| (s / n) as u8));
    let mut out = RgbImage::from_pixel(w + 2 * pad, h + 2 * pad, mean);
    image::imageops::replace(&mut out, img, i64::from(pad), i64::from(pad));
    out
}

impl FaceEngine {
    /// The faces of a photo ([`detect`](Self::detect)); when none is found, of the photo
    /// padded (faces scoring at least [`PADDED_MIN_SCORE`]); then tile by tile (at least
    /// [`TILED_MIN_SCORE`]); then turned a quarter turn clockwise and anticlockwise (at least
    /// [`TURNED_MIN_SCORE`]); then by the full-range detector (at least
    /// [`FULL_RANGE_MIN_SCORE`]), then by it tile by tile. Returns the picture the detections
    /// are in and how it was made.
    pub fn detect_photo<'a>(
        &mut self,
        img: &'a RgbImage,
    ) -> Result<(Cow<'a, RgbImage>, Reframe, Vec<Detection>)> {
        let found = self.detect(img)?;
        if !found.is_empty() {
            return Ok((Cow::Borrowed(img), Reframe::AsIs, found));
        }
        let padded = Reframe::padding(img);
        let view = padded.apply(img);
        let mut found = self.detect(&view)?;
        found.retain(|d| d.score >= PADDED_MIN_SCORE);
        if !found.is_empty() {
            return Ok((view, padded, found));
        }
        let found = self.detect_tiled(img, false)?;
        if !found.is_empty() {
            return Ok((Cow::Borrowed(img), Reframe::Tiled, found));
        }
        for turn in [Reframe::Turned(1), Reframe::Turned(3)] {
            let view = turn.apply(img);
            let mut found = self.detect(&view)?;
            found.retain(|d| d.score >= TURNED_MIN_SCORE);
            if !found.is_empty() {
                return Ok((view, turn, found));
            }
        }
        let mut found = self.detect_full_range(img)?;
        found.retain(|d| d.score >= FULL_RANGE_MIN_SCORE);
        if !found.is_empty() {
            return Ok((
                Cow::Borrowed(img),
                Reframe::FullRange { tiled: false },
                found,
            ));
        }
        let found = self.detect_tiled(img, true)?;
        Ok((
            Cow::Borrowed(img),
            Reframe::FullRange { tiled: true },
            found,
        ))
    }

    /// Faces scoring at least [`TILED_MIN_SCORE`] in overlapping square tiles (half the
    /// shorter side, half a tile apart), in the photo's coordinates, best first; a face seen by
    /// several tiles is kept once (the best-scoring box whose centre no better box contains).
    /// With `full_range`, the tiles are searched by the full-range detector.
    fn detect_tiled(&mut self, img: &RgbImage, full_range: bool) -> Result<Vec<Detection>> {
        let (w, h) = img.dimensions();
        let side = (w.min(h) / 2).max(w.max(h) / 4).min(w.min(h));
        if side < 32 {
            return Ok(Vec::new());
        }
        let starts = |len: u32| -> Vec<u32> {
            let n = (len - side).div_ceil(side / 2) + 1;
            (0..n)
                .map(|k| {
                    if n == 1 {
                        0
                    } else {
                        (len - side) * k / (n - 1)
                    }
                })
                .collect()
        };
        let mut found = Vec::new();
        for y0 in starts(h) {
            for x0 in starts(w) {
                let tile = image::imageops::crop_imm(img, x0, y0, side, side).to_image();
                let dets = if full_range {
                    self.detect_full_range(&tile)?
                } else {
                    self.detect(&tile)?
                };
                for d in dets {
                    if d.score < TILED_MIN_SCORE {
                        continue;
                    }
                    found.push(d.translated(x0 as f32, y0 as f32));
                }
            }
        }
        found.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut kept: Vec<Detection> = Vec::new();
        for d in found {
            let c = d.center();
            let seen = kept.iter().any(|k| {
                let (x, y) = (c.x as f32, c.y as f32);
                x >= k.x && x <= k.x + k.width && y >= k.y && y <= k.y + k.height
            });
            if !seen {
                kept.push(d);
            }
        }
        Ok(kept)
    }

    /// Every face of a photo, described, in the photo's coordinates (see
    /// [`detect_photo`](Self::detect_photo)).
    pub fn photo_faces(&mut self, img: &RgbImage) -> Result<Vec<Face>> {
        let (view, reframe, dets) = self.detect_photo(img)?;
        let (w, h) = img.dimensions();
        dets.iter()
            .map(|d| Ok(reframe.face_to_photo(self.describe(&view, d)?, w, h)))
            .collect()
    }

    /// The one face `pick` chooses in a photo, described (only that one is encoded), in the
    /// photo's coordinates; `None` when no look finds a face.
    pub fn photo_face(&mut self, img: &RgbImage, pick: FacePick) -> Result<Option<Face>> {
        let (view, reframe, dets) = self.detect_photo(img)?;
        let Some(det) = pick.pick_in(&dets, view.dimensions()) else {
            return Ok(None);
        };
        let face = self.describe(&view, det)?;
        let (w, h) = img.dimensions();
        Ok(Some(reframe.face_to_photo(face, w, h)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every re-framing maps the corners of the re-framed picture onto the photo's corners,
    /// and a pixel's content onto the same content.
    #[test]
    fn reframed_points_map_back_onto_the_photo() {
        let img = RgbImage::from_fn(5, 3, |x, y| Rgb([x as u8, y as u8, 7]));
        for r in [
            Reframe::Padded(2),
            Reframe::Turned(1),
            Reframe::Turned(2),
            Reframe::Turned(3),
        ] {
            let view = r.apply(&img);
            for vy in 0..view.height() {
                for vx in 0..view.width() {
                    // the centre of pixel (vx, vy)
                    let (x, y) = r.to_photo(f64::from(vx) + 0.5, f64::from(vy) + 0.5, 5, 3);
                    let (px, py) = ((x - 0.5).round(), (y - 0.5).round());
                    if (0.0..5.0).contains(&px) && (0.0..3.0).contains(&py) {
                        assert_eq!(
                            view.get_pixel(vx, vy),
                            img.get_pixel(px as u32, py as u32),
                            "{r:?} at {vx},{vy}"
                        );
                    } else {
                        assert!(matches!(r, Reframe::Padded(_)), "{r:?} {vx},{vy}");
                    }
                }
            }
        }
        assert_eq!(Reframe::AsIs.to_photo(1.5, 2.0, 5, 3), (1.5, 2.0));
        assert!(matches!(Reframe::AsIs.apply(&img), Cow::Borrowed(_)));
    }

    #[test]
    fn padding_uses_the_mean_colour_and_keeps_the_photo_centred() {
        let img = RgbImage::from_fn(4, 2, |x, _| Rgb([if x < 2 { 0 } else { 200 }, 50, 9]));
        let out = pad_with_mean(&img, 3);
        assert_eq!(out.dimensions(), (10, 8));
        assert_eq!(out.get_pixel(0, 0), &Rgb([100, 50, 9]));
        assert_eq!(out.get_pixel(3, 3), img.get_pixel(0, 0));
        assert_eq!(out.get_pixel(6, 4), img.get_pixel(3, 1));
    }
}
