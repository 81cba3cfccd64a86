//! Quality gates: is this face good enough to count as evidence at the door?
//!
//! * size: distance between the eye centres in frame pixels (the encoder's accuracy falls off
//!   quickly below ~32 px, i.e. a face further than ~2 m from a 640x480 camera);
//! * sharpness: variance of the Laplacian of the aligned chip's grey levels (motion blur and
//!   defocus flatten it);
//! * pose: how far the nose base sits from the midline of the eyes, as a fraction of the eye
//!   distance (0 = frontal; ~0.3 = clearly turned), a cheap yaw proxy from the 5 landmarks.

use super::landmarks::Landmarks;
use image::RgbImage;
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quality {
    pub eye_distance_px: f32,
    pub sharpness: f32,
    pub yaw: f32,
}

impl Quality {
    pub fn measure(landmarks: &Landmarks, chip: &RgbImage) -> Quality {
        let p = &landmarks.0;
        let right = ((p[0].x + p[1].x) / 2.0, (p[0].y + p[1].y) / 2.0);
        let left = ((p[2].x + p[3].x) / 2.0, (p[2].y + p[3].y) / 2.0);
        let (dx, dy) = (right.0 - left.0, right.1 - left.1);
        let eye = (dx * dx + dy * dy).sqrt();
        // signed distance of the nose base from the perpendicular bisector of the eyes
        let mid = ((right.0 + left.0) / 2.0, (right.1 + left.1) / 2.0);
        let yaw = if eye > 0.0 {
            ((p[4].x - mid.0) * dx + (p[4].y - mid.1) * dy) / (eye * eye)
        } else {
            0.0
        };
        Quality {
            eye_distance_px: eye as f32,
            sharpness: laplacian_variance(chip),
            yaw: yaw as f32,
        }
    }
}

/// Variance of the 4-neighbour Laplacian of the grey image (inner pixels).
pub fn laplacian_variance(img: &RgbImage) -> f32 {
    let (w, h) = (img.width() as usize, img.height() as usize);
    if w < 3 || h < 3 {
        return 0.0;
    }
    let raw = img.as_raw();
    let g = |x: usize, y: usize| {
        let i = (y * w + x) * 3;
        (u32::from(raw[i]) + u32::from(raw[i + 1]) + u32::from(raw[i + 2])) as f32 / 3.0
    };
    let (mut sum, mut sum2, mut n) = (0.0f64, 0.0f64, 0usize);
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let l = g(x - 1, y) + g(x + 1, y) + g(x, y - 1) + g(x, y + 1) - 4.0 * g(x, y);
            sum += f64::from(l);
            sum2 += f64::from(l) * f64::from(l);
            n += 1;
        }
    }
    let mean = sum / n as f64;
    (sum2 / n as f64 - mean * mean) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::face::geometry::Point;

    #[test]
    fn frontal_face_has_no_yaw_and_flat_image_no_sharpness() {
        let lm = Landmarks([
            Point::new(80.0, 50.0),
            Point::new(65.0, 50.0),
            Point::new(20.0, 50.0),
            Point::new(35.0, 50.0),
            Point::new(50.0, 80.0),
        ]);
        let flat = RgbImage::from_pixel(20, 20, image::Rgb([90, 90, 90]));
        let q = Quality::measure(&lm, &flat);
        assert_eq!(q.eye_distance_px, 45.0);
        assert_eq!(q.yaw, 0.0);
        assert_eq!(q.sharpness, 0.0);
        let turned = Landmarks([lm.0[0], lm.0[1], lm.0[2], lm.0[3], Point::new(68.0, 80.0)]);
        assert!((Quality::measure(&turned, &flat).yaw - 0.4).abs() < 1e-6);
        let mut checker = RgbImage::new(20, 20);
        for (x, y, p) in checker.enumerate_pixels_mut() {
            *p = if (x + y) % 2 == 0 {
                image::Rgb([255; 3])
            } else {
                image::Rgb([0; 3])
            };
        }
        assert!(laplacian_variance(&checker) > 1000.0);
    }
}
