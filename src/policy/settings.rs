//! The policy's settings (`[policy]` in the configuration) and the quality gates they define.

use std::time::Duration;

use super::compare::ge;
use crate::face::quality::Quality;

/// Policy settings (see `config/facegate.toml` for the documented defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySettings {
    pub threshold: f32,
    pub min_margin: f32,
    pub k: usize,
    pub n: usize,
    pub window: Duration,
    pub min_eye_distance_px: f32,
    pub min_sharpness: f32,
    pub max_yaw: f32,
    pub cooldown: Duration,
    /// No face for this long ends an attempt.
    pub absence: Duration,
    pub free_failures: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Presentation-attack detection is on (`[liveness] enabled`): a matched face counts only
    /// when its check said live. Off, a matched face counts without one (and the daemon says so
    /// at every start and in every audit record).
    pub liveness_required: bool,
}

/// The default same-person distance threshold (`[policy] threshold`; see the README's
/// "Choosing the threshold"): the one definition, used by the config and [`PolicySettings`].
pub const DEFAULT_THRESHOLD: f32 = 0.47;

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            threshold: DEFAULT_THRESHOLD,
            min_margin: 0.05,
            k: 3,
            n: 5,
            window: Duration::from_secs(3),
            min_eye_distance_px: 32.0,
            min_sharpness: 15.0,
            max_yaw: 0.25,
            cooldown: Duration::from_secs(5),
            absence: Duration::from_secs(2),
            free_failures: 3,
            backoff: Duration::from_secs(30),
            max_backoff: Duration::from_secs(600),
            liveness_required: false,
        }
    }
}

impl PolicySettings {
    /// The quality gates (size, pose, sharpness), defined once: the policy's verdict applies
    /// them, and the per-frame path ([`crate::frame::evidence`]) encodes only faces that pass.
    /// Every comparison fails on NaN.
    pub fn quality_gate(&self, quality: &Quality) -> Result<(), String> {
        if !ge(quality.eye_distance_px, self.min_eye_distance_px) {
            return Err(format!(
                "face too small: eyes {:.0} px apart, need {:.0}",
                quality.eye_distance_px, self.min_eye_distance_px
            ));
        }
        if !ge(self.max_yaw, quality.yaw.abs()) {
            return Err(format!("face turned (yaw {:.2})", quality.yaw));
        }
        if !ge(quality.sharpness, self.min_sharpness) {
            return Err(format!("blurred (sharpness {:.1})", quality.sharpness));
        }
        Ok(())
    }
}
