//! The door's per-frame path, one function shared by the daemon and `facegate bench` (so the
//! benchmark times exactly what the door runs):
//!
//! ```text
//!   detect -> pick (largest face) -> landmarks -> align -> quality -> [gates pass] encode -> match
//!            -> access -> [matched within the threshold] liveness -> Evidence
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

/// The presentation-attack-detection hook, run on every face that matched an enrolled person
/// within the threshold (strangers never pay for it).
pub trait LivenessCheck: Send {
    fn check(&mut self, frame: &RgbImage, face_box: &Detection) -> Liveness;
    /// What is checked, as written in the start and decision audit records (`"off"` when
    /// nothing is).
    fn name(&self) -> &str;
    /// Whether faces are checked at all.
    fn enabled(&self) -> bool {
        true
    }
}

/// Presentation-attack detection turned off (`[liveness] enabled = false`): nothing is checked,
/// and a printed photo or a phone screen of an enrolled person is NOT rejected. The daemon says
/// so at every start and in every audit record (`"liveness": "off"`).
pub struct NoLiveness;

impl LivenessCheck for NoLiveness {
    fn check(&mut self, _: &RgbImage, _: &Detection) -> Liveness {
        Liveness::Off
    }
    fn name(&self) -> &str {
        "off"
    }
    fn enabled(&self) -> bool {
        false
    }
}

/// MiniFASNet presentation-attack detection ([`crate::face::liveness`]): live when the score is
/// at least `threshold`. A NaN score or a model error is an attack (fail-secure).
pub struct PadCheck {
    live: crate::face::liveness::Liveness,
    threshold: f32,
    name: String,
}

impl PadCheck {
    pub fn new(live: crate::face::liveness::Liveness, threshold: f32) -> Self {
        let name = format!(
            "minifasnet {} (threshold {threshold:.2})",
            live.models().choice
        );
        PadCheck {
            live,
            threshold,
            name,
        }
    }
}

impl LivenessCheck for PadCheck {
    fn check(&mut self, frame: &RgbImage, face_box: &Detection) -> Liveness {
        match self.live.score(frame, face_box) {
            Ok(s) if s.score >= self.threshold => Liveness::Live { score: s.score },
            Ok(s) => Liveness::Attack {
                score: s.score.is_finite().then_some(s.score),
                reason: format!(
                    "live score {:.3} below {:.2} ({})",
                    s.score,
                    self.threshold,
                    self.live.models().choice
                ),
            },
            Err(e) => Liveness::Attack {
                score: None,
                reason: format!("the liveness check failed: {e}"),
            },
        }
    }
    fn name(&self) -> &str {
        &self.name
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
    /// Gallery match and access rules.
    pub matching: Duration,
    /// Presentation-attack detection (zero on frames without a matched face).
    pub liveness: Duration,
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
    // Only a face that matched someone pays for presentation-attack detection.
    let matched = best
        .as_ref()
        .is_some_and(|m| m.distance < settings.threshold);
    let liveness = if matched {
        let t = Instant::now();
        let l = liveness.check(img, det);
        times.liveness = t.elapsed();
        l
    } else {
        Liveness::NotChecked
    };
    Ok(Evidence::Face {
        quality,
        liveness,
        best,
        access,
        embedding,
    })
}
