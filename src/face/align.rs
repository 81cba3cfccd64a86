//! Face alignment: the 150x150 "face chip" the encoder was trained on, reproducing dlib's
//! `get_face_chip_details` + `extract_image_chip` (similarity fit of the five landmarks to a
//! mean-face template, bilinear sampling, and dlib's 2:1 image pyramid when the face is much
//! larger than the chip so that downsampling never degenerates into nearest-neighbour).
//! Matching dlib here matters: the encoder's 0.6 threshold was learned on exactly these chips.

use super::geometry::{rotate_about, Point, Rect, Similarity};
use super::landmarks::Landmarks;
use image::RgbImage;

/// dlib's 5-point mean-face template, in units of the unpadded chip.
const TEMPLATE: [(f64, f64); 5] = [
    (0.8595674595992, 0.2134981538014),
    (0.6460604764104, 0.2289674387677),
    (0.1205750620789, 0.2137274526848),
    (0.3340850613712, 0.2290642403242),
    (0.4901123135679, 0.6277975316475),
];

/// Where a chip lies in the image: a rotated square (dlib's `chip_details`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipPlacement {
    pub rect: Rect,
    pub angle: f64,
    pub size: u32,
}

impl ChipPlacement {
    /// Fits the template to `landmarks` (dlib `get_face_chip_details`).
    pub fn fit(landmarks: &Landmarks, size: u32, padding: f64) -> Self {
        let s = f64::from(size);
        let from: Vec<Point> = TEMPLATE
            .iter()
            .map(|&(x, y)| {
                Point::new(
                    (padding + x) / (2.0 * padding + 1.0) * s,
                    (padding + y) / (2.0 * padding + 1.0) * s,
                )
            })
            .collect();
        let tform = Similarity::estimate(&from, &landmarks.0);
        let c = tform.apply(Point::new(s / 2.0, s / 2.0));
        let scale = tform.scale();
        ChipPlacement {
            rect: Rect::centered(c.x, c.y, s * scale, s * scale),
            angle: tform.angle(),
            size,
        }
    }

    /// The same chip perturbed by `j`: moved along the chip's own axes, its side scaled and
    /// turned about its centre.
    pub fn jittered(&self, j: &ChipJitter) -> Self {
        let c = self.rect.center();
        let side = self.rect.width();
        let (sin, cos) = self.angle.sin_cos();
        let (ox, oy) = (j.dx * side, j.dy * side);
        ChipPlacement {
            rect: Rect::centered(
                c.x + ox * cos - oy * sin,
                c.y + ox * sin + oy * cos,
                side * j.scale,
                self.rect.height() * j.scale,
            ),
            angle: self.angle + j.turn_degrees.to_radians(),
            size: self.size,
        }
    }

    fn area(&self) -> f64 {
        f64::from(self.size) * f64::from(self.size)
    }
}

/// A small change of where a chip is cut: the chip's centre moved by `dx`, `dy` times its side
/// (along the chip's axes: x towards the face's left eye as seen, y down), its side times
/// `scale`, and a turn of `turn_degrees` about the centre.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipJitter {
    pub dx: f64,
    pub dy: f64,
    pub scale: f64,
    pub turn_degrees: f64,
}

impl ChipJitter {
    pub const NONE: ChipJitter = ChipJitter::shift(0.0, 0.0);

    pub const fn shift(dx: f64, dy: f64) -> Self {
        ChipJitter {
            dx,
            dy,
            scale: 1.0,
            turn_degrees: 0.0,
        }
    }

    pub const fn zoom(scale: f64) -> Self {
        ChipJitter {
            scale,
            ..Self::NONE
        }
    }

    pub const fn turn(degrees: f64) -> Self {
        ChipJitter {
            turn_degrees: degrees,
            ..Self::NONE
        }
    }
}

/// dlib `pyramid_down<2>` maps a point of a level to the next one down like this.
fn rect_down(r: &Rect) -> Rect {
    Rect::new(
        r.left / 2.0 - 1.25,
        r.top / 2.0 - 0.75,
        r.right / 2.0 - 1.25,
        r.bottom / 2.0 - 0.75,
    )
}

/// Reusable buffers for chip extraction (pyramid levels), so that aligning a face in the
/// frame loop allocates nothing once warmed up.
#[derive(Default)]
pub struct Aligner {
    levels: Vec<Plane>,
    row_tmp: Vec<u16>,
}

#[derive(Default, Clone)]
struct Plane {
    width: usize,
    height: usize,
    data: Vec<u8>,
}

impl Plane {
    fn view(&self) -> View<'_> {
        View {
            data: &self.data,
            stride: self.width * 3,
            x0: 0,
            y0: 0,
            width: self.width,
            height: self.height,
        }
    }
}

/// A read-only RGB view: a window of an image or a pyramid level.
#[derive(Clone, Copy)]
struct View<'a> {
    data: &'a [u8],
    stride: usize,
    x0: usize,
    y0: usize,
    width: usize,
    height: usize,
}

impl View<'_> {
    #[inline]
    fn px(&self, x: usize, y: usize) -> &[u8] {
        let i = (self.y0 + y) * self.stride + (self.x0 + x) * 3;
        &self.data[i..i + 3]
    }
}

impl Aligner {
    /// Extracts the chip for `placement` from `img` into `out` (resized to size x size), as
    /// dlib does: the pyramid is built over the bounding box of the rotated chip only, the
    /// level is picked, and the chip is sampled bilinearly from it.
    pub fn extract(&mut self, img: &RgbImage, placement: &ChipPlacement, out: &mut RgbImage) {
        let size = placement.size;
        if out.width() != size || out.height() != size {
            *out = RgbImage::new(size, size);
        }
        let (depth, grow) = pyramid_depth(placement);
        let bbox = source_box(img, placement, grow);
        if bbox.is_empty() {
            out.fill(0);
            return;
        }
        let base = View {
            data: img.as_raw(),
            stride: img.width() as usize * 3,
            x0: bbox.left as usize,
            y0: bbox.top as usize,
            width: bbox.width() as usize,
            height: bbox.height() as usize,
        };
        self.build_pyramid(base, depth);
        let (level, r) = chip_level(placement, &bbox);
        let src = if level < 0 || depth == 0 {
            base
        } else {
            self.levels[(level as usize).min(depth - 1)].view()
        };
        sample_chip(&src, &r, placement.angle, size, out);
    }

    /// Builds `depth` 2:1 pyramid levels below `base` into the reused buffers.
    fn build_pyramid(&mut self, base: View<'_>, depth: usize) {
        if self.levels.len() < depth {
            self.levels.resize(depth, Plane::default());
        }
        for level in 0..depth {
            let (done, rest) = self.levels.split_at_mut(level);
            let src = if level == 0 {
                base
            } else {
                done[level - 1].view()
            };
            pyramid_down(&src, &mut rest[0], &mut self.row_tmp);
        }
    }
}

/// How many pyramid levels dlib builds for `placement` (halving until the chip's rectangle is
/// no larger than the chip), and the margin it keeps around the chip for the pyramid filter.
fn pyramid_depth(placement: &ChipPlacement) -> (usize, f64) {
    let chip_area = placement.area();
    let mut depth = 0usize;
    let mut grow = 2.0;
    let mut r = rect_down(&placement.rect);
    while r.area() > chip_area {
        r = rect_down(&r);
        depth += 1;
        grow = grow * 2.0 + 2.0;
    }
    (depth, grow)
}

/// The part of `img` the chip is sampled from: the bounding box of the rotated chip, grown by
/// `grow`, clipped to the image and rounded (empty when the chip lies outside the image).
fn source_box(img: &RgbImage, placement: &ChipPlacement, grow: f64) -> Rect {
    let c = placement.rect.center();
    let pr = &placement.rect;
    let mut rot = Rect::EMPTY;
    for p in [
        Point::new(pr.left, pr.top),
        Point::new(pr.right, pr.top),
        Point::new(pr.left, pr.bottom),
        Point::new(pr.right, pr.bottom),
    ] {
        rot = rot.union_point(rotate_about(c, p, placement.angle));
    }
    let whole = Rect::new(
        0.0,
        0.0,
        f64::from(img.width()) - 1.0,
        f64::from(img.height()) - 1.0,
    );
    rot.grow(grow).intersect(&whole).round()
}

/// The pyramid level to sample from, picked exactly as dlib does (-1: the image itself), and
/// the chip's rectangle in that level's coordinates (relative to `bbox`).
fn chip_level(placement: &ChipPlacement, bbox: &Rect) -> (isize, Rect) {
    let chip_area = placement.area();
    let mut level: isize = -1;
    let mut r = placement.rect.translate(-bbox.left, -bbox.top);
    while rect_down(&r).area() > chip_area {
        level += 1;
        r = rect_down(&r);
    }
    (level, r)
}

/// Samples the `size` x `size` chip whose rectangle `r` is rotated by `angle` from `src` into
/// `out`.
fn sample_chip(src: &View<'_>, r: &Rect, angle: f64, size: u32, out: &mut RgbImage) {
    let rc = r.center();
    let tl = rotate_about(rc, Point::new(r.left, r.top), angle);
    let tr = rotate_about(rc, Point::new(r.right, r.top), angle);
    let bl = rotate_about(rc, Point::new(r.left, r.bottom), angle);
    let n = f64::from(size - 1).max(1.0);
    let (ux, uy) = ((tr.x - tl.x) / n, (tr.y - tl.y) / n);
    let (vx, vy) = ((bl.x - tl.x) / n, (bl.y - tl.y) / n);
    let out_raw: &mut [u8] = out;
    for row in 0..size as usize {
        for col in 0..size as usize {
            let x = tl.x + col as f64 * ux + row as f64 * vx;
            let y = tl.y + col as f64 * uy + row as f64 * vy;
            let o = (row * size as usize + col) * 3;
            sample_bilinear(src, x, y, &mut out_raw[o..o + 3]);
        }
    }
}

/// dlib `interpolate_bilinear` on RGB: black outside, values truncated to bytes.
#[inline]
fn sample_bilinear(v: &View<'_>, x: f64, y: f64, out: &mut [u8]) {
    let left = x.floor();
    let top = y.floor();
    if !(left >= 0.0 && top >= 0.0 && left + 1.0 < v.width as f64 && top + 1.0 < v.height as f64) {
        out.fill(0);
        return;
    }
    let (l, t) = (left as usize, top as usize);
    let (fx, fy) = (x - left, y - top);
    let (a, b, c, d) = (
        v.px(l, t),
        v.px(l + 1, t),
        v.px(l, t + 1),
        v.px(l + 1, t + 1),
    );
    for k in 0..3 {
        let val = (1.0 - fy) * ((1.0 - fx) * f64::from(a[k]) + fx * f64::from(b[k]))
            + fy * ((1.0 - fx) * f64::from(c[k]) + fx * f64::from(d[k]));
        out[k] = val.clamp(0.0, 255.0) as u8;
    }
}

/// dlib `pyramid_down<2>` for RGB: separable [1 4 6 4 1] filter, keep every other pixel.
fn pyramid_down(src: &View<'_>, dst: &mut Plane, tmp: &mut Vec<u16>) {
    if src.width <= 8 || src.height <= 8 {
        dst.width = 0;
        dst.height = 0;
        dst.data.clear();
        return;
    }
    let tw = (src.width - 3) / 2;
    let th = src.height;
    tmp.clear();
    tmp.resize(tw * th * 3, 0);
    for r in 0..th {
        for c in 0..tw {
            let oc = 2 * c;
            for k in 0..3 {
                let p = |dx: usize| u16::from(src.px(oc + dx, r)[k]);
                tmp[(r * tw + c) * 3 + k] = p(0) + 4 * p(1) + 6 * p(2) + 4 * p(3) + p(4);
            }
        }
    }
    dst.width = tw;
    dst.height = (src.height - 3) / 2;
    dst.data.clear();
    dst.data.resize(dst.width * dst.height * 3, 0);
    let mut dr = 0;
    let mut r = 2;
    while r + 2 < th && dr < dst.height {
        for c in 0..tw {
            for k in 0..3 {
                let t = |rr: usize| u32::from(tmp[(rr * tw + c) * 3 + k]);
                let v = t(r - 2) + 4 * t(r - 1) + 6 * t(r) + 4 * t(r + 1) + t(r + 2);
                dst.data[(dr * tw + c) * 3 + k] = (v / 256) as u8;
            }
        }
        dr += 1;
        r += 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A jittered chip is cut where the perturbation says, in the chip's own axes: a shift of
    /// a turned chip moves its centre along the turned axes, and the cut pixels follow.
    #[test]
    fn a_jittered_chip_moves_along_the_chips_own_axes() {
        let p = ChipPlacement {
            rect: Rect::centered(100.0, 80.0, 60.0, 60.0),
            angle: std::f64::consts::FRAC_PI_2,
            size: 60,
        };
        assert_eq!(p.jittered(&ChipJitter::NONE), p);
        // turned a quarter: the chip's x axis points down the image
        let s = p.jittered(&ChipJitter::shift(0.1, 0.0));
        let c = s.rect.center();
        assert!(
            (c.x - 100.0).abs() < 1e-9 && (c.y - 86.0).abs() < 1e-9,
            "{c:?}"
        );
        let z = p.jittered(&ChipJitter::zoom(1.5));
        assert!((z.rect.width() - 90.0).abs() < 1e-9);
        assert_eq!(z.rect.center(), p.rect.center());
        let t = p.jittered(&ChipJitter::turn(-90.0));
        assert!(t.angle.abs() < 1e-12);
        // the pixels: a shifted upright chip of a gradient reads the shifted source
        let up = ChipPlacement { angle: 0.0, ..p };
        let img = RgbImage::from_fn(200, 200, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let (mut a, mut b) = (RgbImage::new(1, 1), RgbImage::new(1, 1));
        let mut aligner = Aligner::default();
        aligner.extract(&img, &up, &mut a);
        aligner.extract(&img, &up.jittered(&ChipJitter::shift(0.1, -0.05)), &mut b);
        assert_eq!(b.get_pixel(10, 20)[0], a.get_pixel(16, 20)[0]);
        assert_eq!(b.get_pixel(10, 20)[1], a.get_pixel(10, 17)[1]);
    }

    #[test]
    fn chip_of_template_landmarks_is_an_identity_crop() {
        // Landmarks placed exactly on the padded template of a 150 chip: the placement is the
        // chip itself, no rotation, unit scale.
        let pad = 0.25;
        let lm = Landmarks(TEMPLATE.map(|(x, y)| {
            Point::new(
                (pad + x) / (2.0 * pad + 1.0) * 150.0,
                (pad + y) / (2.0 * pad + 1.0) * 150.0,
            )
        }));
        let p = ChipPlacement::fit(&lm, 150, pad);
        assert!(p.angle.abs() < 1e-12);
        assert!((p.rect.width() - 150.0).abs() < 1e-9);
        let mut img = RgbImage::new(200, 200);
        for (x, y, px) in img.enumerate_pixels_mut() {
            *px = image::Rgb([x as u8, y as u8, 7]);
        }
        let mut out = RgbImage::new(1, 1);
        Aligner::default().extract(&img, &p, &mut out);
        assert_eq!(out.dimensions(), (150, 150));
        // Each chip pixel samples the source pixel under it (to within the rect offset).
        let dx = p.rect.left;
        let dy = p.rect.top;
        let got = out.get_pixel(40, 60);
        assert_eq!(got[0], (40.0 + dx) as u8);
        assert_eq!(got[1], (60.0 + dy) as u8);
    }
}
