//! One frame's evidence ([`Evidence`], from the per-frame path) and its verdict
//! ([`FrameVerdict`], as the K-of-N rule counts it): [`classify`] applies, in order, the quality
//! gates, the liveness hook, the threshold and margin, and the person's access rules. Every
//! comparison fails on NaN.

use serde::Serialize;

use super::compare::{ge, is_finite, lt};
use super::settings::PolicySettings;
use crate::face::encode::Embedding;
use crate::face::quality::Quality;
use crate::gallery::{AccessDenied, Match};

/// What presentation-attack detection said about a face.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "liveness", rename_all = "snake_case")]
pub enum Liveness {
    /// Not run on this face: it matched nobody within the threshold (strangers never pay for
    /// the check) or it failed the quality gates.
    NotChecked,
    /// Presentation-attack detection is turned off (`[liveness] enabled = false`).
    Off,
    /// Live: the score is at least the threshold.
    Live { score: f32 },
    /// Not live (a print, a screen), or the check could not run: never counts toward K of N.
    Attack { score: Option<f32>, reason: String },
}

/// What one processed frame showed.
// One per frame, moved and dropped at once: the embedding stays inline.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    NoFace,
    Face {
        quality: Quality,
        liveness: Liveness,
        /// Nearest identity, `None` with an empty gallery.
        best: Option<Match>,
        /// The nearest identity's access check, evaluated by the caller at frame time.
        access: Result<(), AccessDenied>,
        /// The face's embedding; `None` when it was not encoded (it failed the quality gates).
        /// The rate limiter keys on it (see [`RateLimiter`]); a face that passes the quality
        /// gates without one is treated as unusable.
        embedding: Option<Embedding>,
    },
}

/// The verdict on one frame, as counted by the K-of-N rule.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum FrameVerdict {
    NoFace,
    LowQuality {
        reason: String,
    },
    /// The nearest enrolled person matched, but the face is not live (a presentation attack).
    Spoof {
        id: String,
        distance: f32,
        score: Option<f32>,
        reason: String,
    },
    /// A non-finite embedding or distance (an encoder or arithmetic fault): never a match,
    /// counted as a failure.
    Invalid {
        reason: String,
    },
    Unknown {
        nearest: Option<String>,
        distance: Option<f32>,
    },
    Ambiguous {
        id: String,
        distance: f32,
        runner_up: String,
        margin: f32,
    },
    NotAllowed {
        id: String,
        distance: f32,
        reason: AccessDenied,
    },
    Match {
        id: String,
        distance: f32,
    },
}

/// Classifies one frame's evidence (see the [module documentation](self)).
pub fn classify(s: &PolicySettings, e: &Evidence) -> FrameVerdict {
    let Evidence::Face {
        quality,
        liveness,
        best,
        access,
        embedding,
    } = e
    else {
        return FrameVerdict::NoFace;
    };
    if let Err(v) = usable(s, quality, embedding.as_ref()) {
        return v;
    }
    let m = match within_threshold(s, best.as_ref()) {
        Ok(m) => m,
        Err(v) => return v,
    };
    // A spoof is a failing frame: it never counts toward K of N, and a visit of such frames is
    // denied once per visitor as a presentation attack and counted by the rate limiter.
    if let Err(v) = live(s, liveness, m) {
        return v;
    }
    if let Err(reason) = access {
        return FrameVerdict::NotAllowed {
            id: m.id.clone(),
            distance: m.distance,
            reason: *reason,
        };
    }
    FrameVerdict::Match {
        id: m.id.clone(),
        distance: m.distance,
    }
}

/// A matched face is live: its liveness check passed, or detection is turned off. A matched
/// face that was not checked while detection is on fails (fail-secure: the per-frame path
/// checks every matched face, so this only trips on a wiring fault).
fn live(s: &PolicySettings, liveness: &Liveness, m: &Match) -> Result<(), FrameVerdict> {
    let spoof = |score: Option<f32>, reason: String| FrameVerdict::Spoof {
        id: m.id.clone(),
        distance: m.distance,
        score,
        reason,
    };
    match liveness {
        Liveness::Live { score } if score.is_finite() => Ok(()),
        Liveness::Off if !s.liveness_required => Ok(()),
        Liveness::Attack { score, reason } => Err(spoof(*score, reason.clone())),
        other => Err(spoof(
            None,
            format!("liveness {other:?} on a matched face while detection is required"),
        )),
    }
}

/// The face passes the quality gates and has a finite embedding.
fn usable(
    s: &PolicySettings,
    quality: &Quality,
    embedding: Option<&Embedding>,
) -> Result<(), FrameVerdict> {
    s.quality_gate(quality)
        .map_err(|reason| FrameVerdict::LowQuality { reason })?;
    let Some(embedding) = embedding else {
        return Err(FrameVerdict::LowQuality {
            reason: "face not encoded".into(),
        });
    };
    if !is_finite(embedding) {
        return Err(FrameVerdict::Invalid {
            reason: "the face embedding has non-finite values (encoder fault)".into(),
        });
    }
    Ok(())
}

/// The nearest identity, if it is within the threshold and clearly nearer than the runner-up.
fn within_threshold<'a>(
    s: &PolicySettings,
    best: Option<&'a Match>,
) -> Result<&'a Match, FrameVerdict> {
    let Some(m) = best else {
        return Err(FrameVerdict::Unknown {
            nearest: None,
            distance: None,
        });
    };
    if !m.distance.is_finite() {
        return Err(FrameVerdict::Invalid {
            reason: format!("non-finite distance {} to {}", m.distance, m.id),
        });
    }
    if let Some((other, d2)) = &m.runner_up {
        if !d2.is_finite() {
            return Err(FrameVerdict::Invalid {
                reason: format!("non-finite distance {d2} to runner-up {other}"),
            });
        }
    }
    if !lt(m.distance, s.threshold) {
        return Err(FrameVerdict::Unknown {
            nearest: Some(m.id.clone()),
            distance: Some(m.distance),
        });
    }
    if let Some((other, d2)) = &m.runner_up {
        let margin = d2 - m.distance;
        if !ge(margin, s.min_margin) {
            return Err(FrameVerdict::Ambiguous {
                id: m.id.clone(),
                distance: m.distance,
                runner_up: other.clone(),
                margin,
            });
        }
    }
    Ok(m)
}
