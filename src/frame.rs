//! The door's per-frame path, one function shared by the daemon and `facegate bench` (so the
//! benchmark times exactly what the door runs):
//!
//! ```text
//!   detect -> pick (largest face) -> landmarks -> align -> quality -> [gates pass] encode -> match
//!                                                                           -> access -> Evidence
//! ```
//!
//! The quality gates are the policy's ([`PolicySettings::quality_gate`], defined once); here
//! they only decide whether the face is worth encoding. The policy classifies the resulting
//! [`Evidence`].

use crate::error::Result;
use crate::face::detect::Detection;
use crate::face::pick::FacePick;
use crate::face::quality::Quality;
use crate::face::FaceEngine;
use crate::gallery::Gallery;
use crate::policy::{Evidence, Liveness, PolicySettings};
use image::RgbImage;
use std::time::{Duration, Instant};

/// The presentation-attack-detection hook the policy consults for every face.
pub trait LivenessCheck: Send {
    fn check(&mut self, frame: &RgbImage, face_box: &Detection) -> Liveness;
    fn name(&self) -> &str;
}

/// The default: no presentation-attack detection. It says so, at start and in every audited
/// decision (`liveness: "none"`): a printed photo or a phone screen of an enrolled person
/// is NOT rejected by this build.
pub struct NoLiveness;

impl LivenessCheck for NoLiveness {
    fn check(&mut self, _: &RgbImage, _: &Detection) -> Liveness {
        Liveness::Unchecked
    }
    fn name(&self) -> &str {
        "none"
    }
}

/// Time spent in each stage of one frame (zero for stages the frame did not reach).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct FrameTimes {
    pub detect: Duration,
    pub landmarks: Duration,
    /// Chip extraction and the quality measure.
    pub align: Duration,
    pub encode: Duration,
    /// Gallery match, access rules and the liveness hook.
    pub matching: Duration,
}

/// The face the door uses in a frame.
pub const DOOR_PICK: FacePick = FacePick::Largest;

/// One frame through the door's pipeline: the policy's input for this frame.
pub fn evidence(
    engine: &mut FaceEngine,
    gallery: &Gallery,
    settings: &PolicySettings,
    liveness: &mut dyn LivenessCheck,
    img: &RgbImage,
    times: &mut FrameTimes,
) -> Result<Evidence> {
    *times = FrameTimes::default();
    let t = Instant::now();
    let detections = engine.detect(img)?;
    times.detect = t.elapsed();
    let Some(det) = DOOR_PICK.pick(&detections) else {
        return Ok(Evidence::NoFace);
    };
    let t = Instant::now();
    let lm = engine.landmarks(img, det);
    times.landmarks = t.elapsed();
    let t = Instant::now();
    let chip = engine.align(img, &lm);
    let quality = Quality::measure(&lm, chip);
    times.align = t.elapsed();
    let (best, access, embedding) = if settings.quality_gate(&quality).is_ok() {
        let t = Instant::now();
        let e = engine.encode_chip()?;
        times.encode = t.elapsed();
        let t = Instant::now();
        let best = gallery.best_match(&e);
        let now = jiff::ZonedDateTime::now();
        let access = best
            .as_ref()
            .and_then(|m| gallery.get(&m.id))
            .map_or(Ok(()), |p| p.access.check(&now));
        times.matching = t.elapsed();
        (best, access, Some(e))
    } else {
        (None, Ok(()), None)
    };
    let t = Instant::now();
    let liveness = liveness.check(img, det);
    times.matching += t.elapsed();
    Ok(Evidence::Face {
        quality,
        liveness,
        best,
        access,
        embedding,
    })
}
