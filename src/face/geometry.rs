//! Small 2-D geometry shared by the face stages: points, boxes and least-squares similarity
//! transforms (rotation + uniform scale + translation).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl Point {
    pub const fn new(x: f64, y: f64) -> Self {
        Point { x, y }
    }

    pub fn distance(self, o: Point) -> f64 {
        ((self.x - o.x).powi(2) + (self.y - o.y).powi(2)).sqrt()
    }
}

/// An axis-aligned box in image pixels, `left, top` inclusive and `right, bottom` inclusive as
/// dlib's rectangles are (a box from 10 to 19 is 10 pixels wide).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rect {
    pub left: f64,
    pub top: f64,
    pub right: f64,
    pub bottom: f64,
}

impl Rect {
    pub fn new(left: f64, top: f64, right: f64, bottom: f64) -> Self {
        Rect {
            left,
            top,
            right,
            bottom,
        }
    }

    /// A box centred on (`cx`, `cy`) of the given size (dlib `centered_drect` semantics).
    pub fn centered(cx: f64, cy: f64, width: f64, height: f64) -> Self {
        let (w, h) = (width - 1.0, height - 1.0);
        Rect::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    pub fn is_empty(&self) -> bool {
        self.top > self.bottom || self.left > self.right
    }

    pub fn width(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.right - self.left + 1.0
        }
    }

    pub fn height(&self) -> f64 {
        if self.is_empty() {
            0.0
        } else {
            self.bottom - self.top + 1.0
        }
    }

    pub fn area(&self) -> f64 {
        self.width() * self.height()
    }

    pub fn center(&self) -> Point {
        Point::new(
            (self.left + self.right) / 2.0,
            (self.top + self.bottom) / 2.0,
        )
    }

    pub fn intersect(&self, o: &Rect) -> Rect {
        Rect::new(
            self.left.max(o.left),
            self.top.max(o.top),
            self.right.min(o.right),
            self.bottom.min(o.bottom),
        )
    }

    pub fn grow(&self, by: f64) -> Rect {
        Rect::new(
            self.left - by,
            self.top - by,
            self.right + by,
            self.bottom + by,
        )
    }

    /// Rounds each side to the nearest integer (dlib's drectangle -> rectangle conversion).
    pub fn round(&self) -> Rect {
        let r = |v: f64| (v + 0.5).floor();
        Rect::new(r(self.left), r(self.top), r(self.right), r(self.bottom))
    }

    pub fn translate(&self, dx: f64, dy: f64) -> Rect {
        Rect::new(
            self.left + dx,
            self.top + dy,
            self.right + dx,
            self.bottom + dy,
        )
    }

    /// Smallest box holding both (an empty box is neutral).
    pub fn union_point(&self, p: Point) -> Rect {
        if self.is_empty() {
            return Rect::new(p.x, p.y, p.x, p.y);
        }
        Rect::new(
            self.left.min(p.x),
            self.top.min(p.y),
            self.right.max(p.x),
            self.bottom.max(p.y),
        )
    }

    pub const EMPTY: Rect = Rect {
        left: 0.0,
        top: 0.0,
        right: -1.0,
        bottom: -1.0,
    };
}

/// `p -> a * p + b` with `a` a complex number (rotation and scale) and `b` a translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a_re: f64,
    pub a_im: f64,
    pub bx: f64,
    pub by: f64,
}

impl Similarity {
    /// Least-squares similarity mapping `from[i]` onto `to[i]` (Umeyama's estimate, which in
    /// 2-D without reflection is the complex-number regression used here).
    pub fn estimate(from: &[Point], to: &[Point]) -> Similarity {
        debug_assert_eq!(from.len(), to.len());
        let n = from.len() as f64;
        let (mut fx, mut fy, mut tx, mut ty) = (0.0, 0.0, 0.0, 0.0);
        for (f, t) in from.iter().zip(to) {
            fx += f.x;
            fy += f.y;
            tx += t.x;
            ty += t.y;
        }
        let (fx, fy, tx, ty) = (fx / n, fy / n, tx / n, ty / n);
        let (mut num_re, mut num_im, mut den) = (0.0, 0.0, 0.0);
        for (f, t) in from.iter().zip(to) {
            let (zx, zy) = (f.x - fx, f.y - fy);
            let (wx, wy) = (t.x - tx, t.y - ty);
            // w * conj(z)
            num_re += wx * zx + wy * zy;
            num_im += wy * zx - wx * zy;
            den += zx * zx + zy * zy;
        }
        let (a_re, a_im) = if den == 0.0 {
            (1.0, 0.0)
        } else {
            (num_re / den, num_im / den)
        };
        Similarity {
            a_re,
            a_im,
            bx: tx - (a_re * fx - a_im * fy),
            by: ty - (a_im * fx + a_re * fy),
        }
    }

    #[inline]
    pub fn apply(&self, p: Point) -> Point {
        Point::new(
            self.a_re * p.x - self.a_im * p.y + self.bx,
            self.a_im * p.x + self.a_re * p.y + self.by,
        )
    }

    /// The linear part applied to a vector (no translation).
    #[inline]
    pub fn apply_linear(&self, x: f64, y: f64) -> (f64, f64) {
        (self.a_re * x - self.a_im * y, self.a_im * x + self.a_re * y)
    }

    pub fn scale(&self) -> f64 {
        self.a_re.hypot(self.a_im)
    }

    pub fn angle(&self) -> f64 {
        self.a_im.atan2(self.a_re)
    }
}

/// Rotates `p` about `c` by `angle` radians.
pub fn rotate_about(c: Point, p: Point, angle: f64) -> Point {
    let (s, co) = angle.sin_cos();
    let (dx, dy) = (p.x - c.x, p.y - c.y);
    Point::new(co * dx - s * dy + c.x, s * dx + co * dy + c.y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similarity_recovers_a_known_transform() {
        let truth = Similarity {
            a_re: 1.3 * 0.4f64.cos(),
            a_im: 1.3 * 0.4f64.sin(),
            bx: 12.0,
            by: -7.5,
        };
        let from = [
            Point::new(0.0, 0.0),
            Point::new(10.0, 2.0),
            Point::new(3.0, 9.0),
            Point::new(-4.0, 5.0),
        ];
        let to: Vec<Point> = from.iter().map(|p| truth.apply(*p)).collect();
        let est = Similarity::estimate(&from, &to);
        assert!((est.scale() - 1.3).abs() < 1e-12);
        assert!((est.angle() - 0.4).abs() < 1e-12);
        assert!((est.bx - 12.0).abs() < 1e-9 && (est.by + 7.5).abs() < 1e-9);
    }

    #[test]
    fn rect_matches_dlib_conventions() {
        let r = Rect::centered(10.0, 10.0, 5.0, 5.0);
        assert_eq!(r, Rect::new(8.0, 8.0, 12.0, 12.0));
        assert_eq!(r.width(), 5.0);
        assert_eq!(
            Rect::new(0.4, 0.5, 2.49, 3.5).round(),
            Rect::new(0.0, 1.0, 2.0, 4.0)
        );
        assert!(Rect::EMPTY.is_empty());
    }
}
