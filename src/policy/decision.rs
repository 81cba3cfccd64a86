//! What the policy tells the door ([`Decision`]) and why it denied a face ([`DenyReason`]).

use serde::Serialize;

use super::verdict::FrameVerdict;
use crate::gallery::AccessDenied;

/// What the door should do now.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// Nothing to do (no face, or still gathering evidence).
    Wait,
    Unlock {
        id: String,
        distance: f32,
        frames: usize,
    },
    Deny {
        reason: DenyReason,
        id: Option<String>,
        distance: Option<f32>,
    },
    /// Evidence ignored: cooling down after an unlock, or this visitor is rate-limited.
    Hold { reason: String, remaining_s: f32 },
}

/// Why the door denied a face (issue 11 item 4). `Display` gives the text written as
/// `reason` in the `decision` audit record (unchanged from when this was a string);
/// [`DenyReason::code`] gives a stable snake_case name, written as `reason_code`.
#[derive(Debug, Clone, PartialEq)]
pub enum DenyReason {
    /// The nearest enrolled person is not within the threshold.
    UnknownFace,
    /// Within the threshold, but another person is almost as near.
    Ambiguous { runner_up: String, margin: f32 },
    /// A match, but the person's access rules refuse entry now.
    NotAllowed(AccessDenied),
    /// An enrolled person matched, but the face was not live (a print, a screen): the best
    /// live score of the visit's attack frames, and the check's reason.
    PresentationAttack { score: Option<f32>, reason: String },
    /// Non-finite embeddings or distances (an encoder or arithmetic fault).
    InvalidMatchData(String),
    /// Failing frames without one consistent kind of failure.
    NoConsistentMatch,
}

impl DenyReason {
    /// The stable snake_case name of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            DenyReason::UnknownFace => "unknown_face",
            DenyReason::Ambiguous { .. } => "ambiguous",
            DenyReason::NotAllowed(a) => a.code(),
            DenyReason::PresentationAttack { .. } => "presentation_attack",
            DenyReason::InvalidMatchData(_) => "invalid_match_data",
            DenyReason::NoConsistentMatch => "no_consistent_match",
        }
    }
}

impl std::fmt::Display for DenyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DenyReason::UnknownFace => f.write_str("unknown face"),
            DenyReason::Ambiguous { runner_up, margin } => {
                write!(f, "ambiguous: {runner_up} only {margin:.3} further")
            }
            DenyReason::NotAllowed(a) => write!(f, "{a}"),
            DenyReason::PresentationAttack { reason, .. } => {
                write!(f, "presentation attack: {reason}")
            }
            DenyReason::InvalidMatchData(r) => write!(f, "invalid match data: {r}"),
            DenyReason::NoConsistentMatch => f.write_str("no consistent match"),
        }
    }
}

/// Serialized as its text, as the `String` it replaces was.
impl Serialize for DenyReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl Decision {
    /// The denial of a visit whose failing frames are named by `last` (see
    /// `Attempt::failing_visitor`): the reason, and the
    /// nearest identity with its distance when the verdict names one.
    pub(super) fn deny_after(last: Option<FrameVerdict>) -> Decision {
        let (reason, id, distance) = match last {
            Some(FrameVerdict::Unknown { nearest, distance }) => {
                (DenyReason::UnknownFace, nearest, distance)
            }
            Some(FrameVerdict::Ambiguous {
                id,
                distance,
                runner_up,
                margin,
            }) => (
                DenyReason::Ambiguous { runner_up, margin },
                Some(id),
                Some(distance),
            ),
            Some(FrameVerdict::NotAllowed {
                id,
                distance,
                reason,
            }) => (DenyReason::NotAllowed(reason), Some(id), Some(distance)),
            Some(FrameVerdict::Spoof {
                id,
                distance,
                score,
                reason,
            }) => (
                DenyReason::PresentationAttack { score, reason },
                Some(id),
                Some(distance),
            ),
            Some(FrameVerdict::Invalid { reason }) => {
                (DenyReason::InvalidMatchData(reason), None, None)
            }
            _ => (DenyReason::NoConsistentMatch, None, None),
        };
        Decision::Deny {
            reason,
            id,
            distance,
        }
    }
}
