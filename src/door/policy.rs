//! The decision policy: when does a stream of per-frame matches open the door?
//!
//! Each processed frame yields an [`Evidence`]. The policy unlocks only when
//!
//! 1. the face passed the quality gates (size, sharpness, pose) and the liveness hook did not
//!    reject it;
//! 2. its nearest enrolled identity is closer than `threshold` (chosen from a target false-accept
//!    rate with `facegate eval`) and at least `min_margin` closer than the runner-up identity;
//! 3. that person's access rules (validity dates, weekly schedule) allow entry now;
//! 4. `k` of the last `n` such frames, all within `window`, agree on the same person;
//! 5. the door is not cooling down after an unlock, and the rate limit (after `free_failures`
//!    denied attempts, a wait that doubles up to `max_backoff`) is not in force.
//!
//! An *attempt* is one presence in front of the camera: it starts with the first frame showing a
//! face and ends when no face has been seen for `absence`. An attempt is denied (once) when `k`
//! of `n` frames fail (unknown, ambiguous, not allowed, spoof); the person may still be let in
//! later in the same attempt (walking closer often turns an unknown into a match). Denied
//! attempts feed the rate limit. Every unlock and denial is returned as a [`Decision`] for the
//! audit log.

use crate::face::quality::Quality;
use crate::gallery::Match;
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

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
}

impl Default for PolicySettings {
    fn default() -> Self {
        PolicySettings {
            threshold: 0.5,
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
        }
    }
}

/// What the liveness hook said about a face.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// No presentation-attack detection is installed: nothing was checked.
    Unchecked,
    Live,
    Spoof(String),
}

/// What one processed frame showed.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    NoFace,
    Face {
        quality: Quality,
        liveness: Liveness,
        /// Nearest identity, `None` with an empty gallery.
        best: Option<Match>,
        /// The nearest identity's access check, evaluated by the caller at frame time.
        access: Result<(), &'static str>,
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
    Spoof {
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
        reason: String,
    },
    Match {
        id: String,
        distance: f32,
    },
}

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
        reason: String,
        id: Option<String>,
        distance: Option<f32>,
    },
    /// Evidence ignored: cooling down after an unlock or rate-limited after failures.
    Hold { reason: String, remaining_s: f32 },
}

pub struct Policy {
    s: PolicySettings,
    recent: VecDeque<(Instant, FrameVerdict)>,
    cooldown_until: Option<Instant>,
    blocked_until: Option<Instant>,
    failures: u32,
    /// Last frame that showed a face (the current attempt), and whether it was denied.
    last_face: Option<Instant>,
    attempt_denied: bool,
}

impl Policy {
    pub fn new(settings: PolicySettings) -> Self {
        Policy {
            s: settings,
            recent: VecDeque::new(),
            cooldown_until: None,
            blocked_until: None,
            failures: 0,
            last_face: None,
            attempt_denied: false,
        }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.s
    }

    /// Classifies one frame's evidence.
    pub fn verdict(&self, e: &Evidence) -> FrameVerdict {
        let Evidence::Face {
            quality,
            liveness,
            best,
            access,
        } = e
        else {
            return FrameVerdict::NoFace;
        };
        if quality.eye_distance_px < self.s.min_eye_distance_px {
            return FrameVerdict::LowQuality {
                reason: format!(
                    "face too small: eyes {:.0} px apart, need {:.0}",
                    quality.eye_distance_px, self.s.min_eye_distance_px
                ),
            };
        }
        if quality.yaw.abs() > self.s.max_yaw {
            return FrameVerdict::LowQuality {
                reason: format!("face turned (yaw {:.2})", quality.yaw),
            };
        }
        if quality.sharpness < self.s.min_sharpness {
            return FrameVerdict::LowQuality {
                reason: format!("blurred (sharpness {:.1})", quality.sharpness),
            };
        }
        if let Liveness::Spoof(r) = liveness {
            return FrameVerdict::Spoof { reason: r.clone() };
        }
        let Some(m) = best else {
            return FrameVerdict::Unknown {
                nearest: None,
                distance: None,
            };
        };
        if m.distance >= self.s.threshold {
            return FrameVerdict::Unknown {
                nearest: Some(m.id.clone()),
                distance: Some(m.distance),
            };
        }
        if let Some((other, d2)) = &m.runner_up {
            let margin = d2 - m.distance;
            if margin < self.s.min_margin {
                return FrameVerdict::Ambiguous {
                    id: m.id.clone(),
                    distance: m.distance,
                    runner_up: other.clone(),
                    margin,
                };
            }
        }
        if let Err(reason) = access {
            return FrameVerdict::NotAllowed {
                id: m.id.clone(),
                distance: m.distance,
                reason: reason.to_string(),
            };
        }
        FrameVerdict::Match {
            id: m.id.clone(),
            distance: m.distance,
        }
    }

    /// Feeds one frame; returns the decision and the frame's verdict.
    pub fn observe(&mut self, now: Instant, evidence: &Evidence) -> (Decision, FrameVerdict) {
        let v = self.verdict(evidence);
        (self.decide(now, v.clone()), v)
    }

    fn decide(&mut self, now: Instant, v: FrameVerdict) -> Decision {
        if v == FrameVerdict::NoFace {
            if self
                .last_face
                .is_some_and(|t| now.duration_since(t) > self.s.absence)
            {
                // the person left: the attempt is over
                self.last_face = None;
                self.attempt_denied = false;
                self.recent.clear();
            }
        } else {
            self.last_face = Some(now);
        }
        for (until, what) in [
            (self.cooldown_until, "cooldown after unlock"),
            (self.blocked_until, "too many failed attempts"),
        ] {
            if let Some(t) = until {
                if now < t {
                    if v == FrameVerdict::NoFace {
                        return Decision::Wait;
                    }
                    return Decision::Hold {
                        reason: what.into(),
                        remaining_s: (t - now).as_secs_f32(),
                    };
                }
            }
        }
        self.cooldown_until = None;
        self.blocked_until = None;
        if matches!(v, FrameVerdict::NoFace | FrameVerdict::LowQuality { .. }) {
            // Not evidence either way; old evidence ages out of the window.
            self.expire(now);
            return Decision::Wait;
        }
        self.recent.push_back((now, v));
        while self.recent.len() > self.s.n {
            self.recent.pop_front();
        }
        self.expire(now);
        // K of the last N agree on one person?
        let mut best: Option<(&str, usize, f32)> = None;
        for (_, v) in &self.recent {
            if let FrameVerdict::Match { id, .. } = v {
                let (count, dmin) =
                    self.recent
                        .iter()
                        .fold((0, f32::INFINITY), |(c, d), (_, w)| match w {
                            FrameVerdict::Match { id: i2, distance } if i2 == id => {
                                (c + 1, d.min(*distance))
                            }
                            _ => (c, d),
                        });
                if best.is_none_or(|b| count > b.1) {
                    best = Some((id.as_str(), count, dmin));
                }
            }
        }
        if let Some((id, count, distance)) = best {
            if count >= self.s.k {
                let d = Decision::Unlock {
                    id: id.to_string(),
                    distance,
                    frames: count,
                };
                self.recent.clear();
                self.failures = 0;
                self.attempt_denied = false;
                self.cooldown_until = Some(now + self.s.cooldown);
                return d;
            }
        }
        let failing = self
            .recent
            .iter()
            .filter(|(_, v)| !matches!(v, FrameVerdict::Match { .. }))
            .count();
        if failing >= self.s.k {
            let last = self.recent.back().map(|(_, v)| v.clone());
            self.recent.clear();
            if self.attempt_denied {
                // one denial per attempt; keep watching for a match
                return Decision::Wait;
            }
            self.attempt_denied = true;
            self.failures += 1;
            if self.failures >= self.s.free_failures {
                let extra = self.failures - self.s.free_failures;
                let wait = self
                    .s
                    .backoff
                    .saturating_mul(1u32 << extra.min(16))
                    .min(self.s.max_backoff);
                self.blocked_until = Some(now + wait);
            }
            let (reason, id, distance) = match last {
                Some(FrameVerdict::Unknown { nearest, distance }) => {
                    ("unknown face".to_string(), nearest, distance)
                }
                Some(FrameVerdict::Ambiguous {
                    id,
                    distance,
                    runner_up,
                    margin,
                }) => (
                    format!("ambiguous: {runner_up} only {margin:.3} further"),
                    Some(id),
                    Some(distance),
                ),
                Some(FrameVerdict::NotAllowed {
                    id,
                    distance,
                    reason,
                }) => (reason, Some(id), Some(distance)),
                Some(FrameVerdict::Spoof { reason }) => {
                    (format!("presentation attack: {reason}"), None, None)
                }
                _ => ("no consistent match".to_string(), None, None),
            };
            return Decision::Deny {
                reason,
                id,
                distance,
            };
        }
        Decision::Wait
    }

    fn expire(&mut self, now: Instant) {
        while self
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > self.s.window)
        {
            self.recent.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q() -> Quality {
        Quality {
            eye_distance_px: 60.0,
            sharpness: 100.0,
            yaw: 0.0,
        }
    }

    fn face(id: &str, d: f32, runner: f32) -> Evidence {
        Evidence::Face {
            quality: q(),
            liveness: Liveness::Unchecked,
            best: Some(Match {
                id: id.into(),
                distance: d,
                runner_up: Some(("other".into(), runner)),
            }),
            access: Ok(()),
        }
    }

    fn run(p: &mut Policy, t0: Instant, frames: &[(u64, Evidence)]) -> Vec<Decision> {
        frames
            .iter()
            .map(|(ms, e)| p.observe(t0 + Duration::from_millis(*ms), e).0)
            .filter(|d| *d != Decision::Wait)
            .collect()
    }

    #[test]
    fn k_of_n_consistent_frames_unlock_once_then_cooldown() {
        let mut p = Policy::new(PolicySettings::default());
        let t0 = Instant::now();
        let f = |ms| (ms, face("alice", 0.3, 0.9));
        let out = run(
            &mut p,
            t0,
            &[
                f(0),
                (100, Evidence::NoFace),
                f(200),
                f(300),
                f(400),
                f(500),
            ],
        );
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(matches!(&out[0], Decision::Unlock { id, frames: 3, .. } if id == "alice"));
        assert!(matches!(&out[1], Decision::Hold { .. }));
        // after the cooldown, a fresh K frames are needed again
        let later = run(&mut p, t0, &[f(6000), f(6100), f(6200)]);
        assert!(matches!(&later[..], [Decision::Unlock { .. }]), "{later:?}");
    }

    #[test]
    fn strangers_ambiguity_and_low_quality_never_unlock() {
        let mut p = Policy::new(PolicySettings::default());
        let t0 = Instant::now();
        let stranger: Vec<_> = (0..5).map(|i| (i * 100, face("alice", 0.7, 0.9))).collect();
        let out = run(&mut p, t0, &stranger);
        assert!(
            matches!(&out[..], [Decision::Deny { reason, .. }] if reason == "unknown face"),
            "{out:?}"
        );
        let mut p = Policy::new(PolicySettings::default());
        let close: Vec<_> = (10..15)
            .map(|i| (i * 100, face("alice", 0.3, 0.32)))
            .collect();
        let out = run(&mut p, t0, &close);
        assert!(
            matches!(&out[..], [Decision::Deny { reason, .. }] if reason.starts_with("ambiguous")),
            "{out:?}"
        );
        let mut small = face("alice", 0.2, 0.9);
        if let Evidence::Face { quality, .. } = &mut small {
            quality.eye_distance_px = 20.0;
        }
        let mut p = Policy::new(PolicySettings::default());
        let tiny: Vec<_> = (20..30).map(|i| (i * 100, small.clone())).collect();
        assert!(run(&mut p, t0, &tiny).is_empty());
    }

    #[test]
    fn one_denial_per_visit_and_walking_closer_still_unlocks() {
        let mut p = Policy::new(PolicySettings::default());
        let t0 = Instant::now();
        let mut frames: Vec<_> = (0..8)
            .map(|i| (i * 100, face("alice", 0.55, 0.9)))
            .collect();
        frames.extend((8..11).map(|i| (i * 100, face("alice", 0.3, 0.9))));
        let out = run(&mut p, t0, &frames);
        assert!(
            matches!(&out[..], [Decision::Deny { .. }, Decision::Unlock { .. }]),
            "{out:?}"
        );
        // a second visit after the person left counts as a new attempt
        let mut p = Policy::new(PolicySettings::default());
        let mut frames: Vec<_> = (0..3).map(|i| (i * 100, face("x", 0.8, 0.9))).collect();
        frames.push((400, Evidence::NoFace));
        frames.push((3000, Evidence::NoFace));
        frames.extend((31..34).map(|i| (i * 100, face("x", 0.8, 0.9))));
        let denies = run(&mut p, t0, &frames)
            .iter()
            .filter(|d| matches!(d, Decision::Deny { .. }))
            .count();
        assert_eq!(denies, 2);
    }

    #[test]
    fn evidence_must_fall_inside_the_window() {
        let mut p = Policy::new(PolicySettings::default());
        let t0 = Instant::now();
        let f = |ms| (ms, face("alice", 0.3, 0.9));
        assert!(run(&mut p, t0, &[f(0), f(2000), f(4000), f(6000)]).is_empty());
    }

    #[test]
    fn repeated_failures_are_rate_limited_with_backoff() {
        let s = PolicySettings::default();
        let mut p = Policy::new(s.clone());
        let t0 = Instant::now();
        let mut t = 0;
        let mut denies = 0;
        for _ in 0..3 {
            // each attempt is a separate visit: the face leaves in between
            p.observe(t0 + Duration::from_millis(t), &Evidence::NoFace);
            t += 3000;
            p.observe(t0 + Duration::from_millis(t), &Evidence::NoFace);
            for _ in 0..3 {
                if let (Decision::Deny { .. }, _) =
                    p.observe(t0 + Duration::from_millis(t), &face("x", 0.8, 0.9))
                {
                    denies += 1;
                }
                t += 100;
            }
        }
        assert_eq!(denies, 3);
        // the third failure starts a 30 s block: even a real match is held
        let (d, _) = p.observe(
            t0 + Duration::from_millis(t + 1000),
            &face("alice", 0.3, 0.9),
        );
        assert!(
            matches!(d, Decision::Hold { ref reason, .. } if reason.contains("failed")),
            "{d:?}"
        );
        // once it is over, staff get in
        let after = t0 + Duration::from_millis(t) + s.backoff + Duration::from_secs(1);
        let out: Vec<_> = (0..3)
            .map(|i| {
                p.observe(
                    after + Duration::from_millis(i * 100),
                    &face("alice", 0.3, 0.9),
                )
                .0
            })
            .collect();
        assert!(matches!(out[2], Decision::Unlock { .. }), "{out:?}");
    }

    #[test]
    fn access_rules_and_spoofs_deny() {
        let mut p = Policy::new(PolicySettings::default());
        let t0 = Instant::now();
        let mut e = face("bob", 0.3, 0.9);
        if let Evidence::Face { access, .. } = &mut e {
            *access = Err("expired");
        }
        let out = run(&mut p, t0, &[(0, e.clone()), (100, e.clone()), (200, e)]);
        assert!(
            matches!(&out[..], [Decision::Deny { reason, id: Some(id), .. }] if reason == "expired" && id == "bob"),
            "{out:?}"
        );
        let mut p = Policy::new(PolicySettings::default());
        let mut s = face("bob", 0.3, 0.9);
        if let Evidence::Face { liveness, .. } = &mut s {
            *liveness = Liveness::Spoof("screen glare".into());
        }
        let out = run(
            &mut p,
            t0,
            &[(1000, s.clone()), (1100, s.clone()), (1200, s)],
        );
        assert!(
            matches!(&out[..], [Decision::Deny { reason, .. }] if reason.contains("presentation attack")),
            "{out:?}"
        );
    }
}
