//! The decision policy: when does a stream of per-frame matches open the door? Pure logic, no
//! hardware and no clock of its own (the caller passes `now`), so every rule is tested on
//! synthetic frames.
//!
//! Each processed frame yields an [`Evidence`]. The policy unlocks only when
//!
//! 1. the face passed the quality gates (size, sharpness, pose) and the liveness hook did not
//!    reject it;
//! 2. its nearest enrolled identity is closer than `threshold` (chosen from a target false-accept
//!    rate with `facegate eval`) and at least `min_margin` closer than the runner-up identity;
//! 3. that person's access rules (validity dates, weekly schedule) allow entry now;
//! 4. `k` of the last `n` such frames, all within `window`, agree on the same person (or, with
//!    `rule = "fusion"`, the quality-weighted mean of at least `k` live frames of the window
//!    matches one person within `fusion_threshold`, with the same margin and access checks);
//! 5. the door is not cooling down after an unlock, and *this visitor* is not rate-limited
//!    (after `free_failures` denied attempts, a wait that doubles up to `max_backoff`; see
//!    [`RateLimiter`] for who "this visitor" is and why).
//!
//! Every comparison is written so that a NaN fails it: a NaN quality measure fails its gate, and
//! a non-finite embedding or distance is an [`FrameVerdict::Invalid`] frame, which counts as a
//! failure and is denied with its reason (issue 10, finding 13).
//!
//! An *attempt* is one presence in front of the camera: it starts with the first frame showing a
//! face and ends when no face has been seen for `absence`. An attempt is denied (once per failing
//! visitor) when `k` of `n` frames fail (unknown, ambiguous, not allowed, spoof, invalid); the
//! person may still be let in later in the same attempt (walking closer often turns an unknown
//! into a match). Denied attempts feed the rate limit. Every unlock and denial is returned as a
//! [`Decision`] for the audit log.
//!
//! # Layout
//!
//! * [`settings`]: [`PolicySettings`] (`[policy]`) and the quality gates.
//! * [`verdict`]: one frame's [`Evidence`] and its [`FrameVerdict`] ([`verdict::classify`]).
//! * [`visit`]: the attempt and its K-of-N window.
//! * [`limiter`]: the per-visitor [`RateLimiter`] and its saved state.
//! * [`decision`]: [`Decision`] and [`DenyReason`].
//! * [`compare`]: comparisons that fail on NaN, and the mean of embeddings.
//! * here: [`Policy::observe`], which puts them together, one named step at a time.

pub mod compare;
pub mod decision;
pub mod fusion;
#[cfg(test)]
mod fusion_tests;
pub mod limiter;
pub mod settings;
pub mod verdict;
pub mod visit;

#[cfg(test)]
mod tests;

pub use decision::{Decision, DenyReason};
pub use limiter::{limiter_path, DeniedVisitor, LimiterState, RateLimiter, LIMITER_CAPACITY};
pub use settings::{PolicySettings, VisitRule, DEFAULT_FUSION_THRESHOLD, DEFAULT_THRESHOLD};
pub use verdict::{Evidence, FrameVerdict, Liveness};

use std::time::Instant;

use crate::face::encode::Embedding;
use crate::gallery::{AccessDenied, Gallery, Match};
use compare::is_finite;

/// Matches a fused embedding: its nearest person and that person's access now.
pub type Matcher<'a> = &'a dyn Fn(&Embedding) -> (Option<Match>, Result<(), AccessDenied>);

/// The door's matcher over `gallery`, with access checked at the local time of the call.
pub fn gallery_matcher(
    gallery: &Gallery,
) -> impl Fn(&Embedding) -> (Option<Match>, Result<(), AccessDenied>) + '_ {
    move |e| {
        let best = gallery.best_match(e);
        let now = jiff::ZonedDateTime::now();
        let access = best
            .as_ref()
            .and_then(|m| gallery.get(&m.id))
            .map_or(Ok(()), |p| p.access.check(&now));
        (best, access)
    }
}
use visit::Attempt;

/// The decision policy: see the [module documentation](self).
pub struct Policy {
    s: PolicySettings,
    /// The current attempt and its K-of-N window.
    attempt: Attempt,
    cooldown_until: Option<Instant>,
    limiter: RateLimiter,
    /// The limiter changed since [`Policy::save_limiter_if_changed`] last wrote it.
    limiter_dirty: bool,
}

impl Policy {
    pub fn new(settings: PolicySettings) -> Self {
        Policy {
            s: settings,
            attempt: Attempt::default(),
            cooldown_until: None,
            limiter: RateLimiter::default(),
            limiter_dirty: false,
        }
    }

    pub fn settings(&self) -> &PolicySettings {
        &self.s
    }

    /// Classifies one frame's evidence ([`verdict::classify`]). Every comparison fails on NaN.
    pub fn verdict(&self, e: &Evidence) -> FrameVerdict {
        verdict::classify(&self.s, e)
    }

    /// Feeds one frame; returns the decision and the frame's verdict. Without a gallery to
    /// match a fused embedding against, visits are decided by K of N whatever the rule: the
    /// door calls [`observe_in`](Self::observe_in).
    pub fn observe(&mut self, now: Instant, evidence: &Evidence) -> (Decision, FrameVerdict) {
        self.observe_with(now, evidence, None)
    }

    /// Feeds one frame seen with `gallery` enrolled: under [`VisitRule::Fusion`] the window's
    /// fused embedding is matched against it.
    pub fn observe_in(
        &mut self,
        now: Instant,
        evidence: &Evidence,
        gallery: &Gallery,
    ) -> (Decision, FrameVerdict) {
        self.observe_with(now, evidence, Some(&gallery_matcher(gallery)))
    }

    /// [`observe`](Self::observe) with the matcher of fused embeddings (`None`: K of N).
    pub fn observe_with(
        &mut self,
        now: Instant,
        evidence: &Evidence,
        matcher: Option<Matcher<'_>>,
    ) -> (Decision, FrameVerdict) {
        let v = self.verdict(evidence);
        let weight = match (evidence, verdict::fusable(&self.s, evidence)) {
            (Evidence::Face { quality, .. }, true) => Some(fusion::quality_weight(quality)),
            _ => None,
        };
        let embedding = match evidence {
            Evidence::Face {
                embedding: Some(e), ..
            } if is_finite(e) => Some(*e),
            _ => None,
        };
        let matcher = matcher.filter(|_| self.s.rule == VisitRule::Fusion);
        (self.decide(now, v.clone(), embedding, weight, matcher), v)
    }

    /// The rule, step by step: track the attempt, respect the cooldown, skip frames that are no
    /// evidence, hold a blocked visitor, count the frame, then unlock on `k` agreeing frames or
    /// deny on `k` failing ones.
    fn decide(
        &mut self,
        now: Instant,
        v: FrameVerdict,
        embedding: Option<Embedding>,
        weight: Option<f32>,
        matcher: Option<Matcher<'_>>,
    ) -> Decision {
        self.attempt
            .track(now, v != FrameVerdict::NoFace, self.s.absence);
        if self.limiter.expire(now) {
            self.limiter_dirty = true;
        }
        if let Some(held) = self.cooling_down(now, &v) {
            return held;
        }
        if matches!(v, FrameVerdict::NoFace | FrameVerdict::LowQuality { .. }) {
            // Not evidence either way; old evidence ages out of the window.
            self.attempt.expire(now, self.s.window);
            return Decision::Wait;
        }
        if let Some(e) = embedding {
            self.attempt.remember_face(e, self.s.n);
        }
        if let Some(held) = self.blocked(now, embedding.as_ref()) {
            return held;
        }
        self.attempt
            .count(now, v, embedding, weight, self.s.n, self.s.window);
        let unlock = match matcher {
            Some(m) => self.unlock_if_fused(now, m),
            None => self.unlock_if_agreed(now),
        };
        if let Some(unlock) = unlock {
            return unlock;
        }
        self.deny_if_failing(now).unwrap_or(Decision::Wait)
    }

    /// While cooling down after an unlock, faces are held (and no face is a plain wait).
    fn cooling_down(&mut self, now: Instant, v: &FrameVerdict) -> Option<Decision> {
        let t = self.cooldown_until?;
        if now >= t {
            self.cooldown_until = None;
            return None;
        }
        if *v == FrameVerdict::NoFace {
            return Some(Decision::Wait);
        }
        Some(Decision::Hold {
            reason: "cooldown after unlock".into(),
            remaining_s: (t - now).as_secs_f32(),
        })
    }

    /// The frame, or the mean of the visit's recent faces (one frame varies with pose and light
    /// more than the mean does), near a blocked visitor? Its frames then count neither way
    /// until the block ends.
    fn blocked(&self, now: Instant, embedding: Option<&Embedding>) -> Option<Decision> {
        let r = self.s.threshold;
        let until = embedding
            .and_then(|e| self.limiter.blocked(e, r, now))
            .or_else(|| self.limiter.blocked(&self.attempt.visitor()?, r, now))?;
        Some(Decision::Hold {
            reason: "too many failed attempts".into(),
            remaining_s: (until - now).as_secs_f32(),
        })
    }

    /// `k` of the last `n` frames agree on one person: unlock, forget that person's own earlier
    /// failures, and start the cooldown.
    fn unlock_if_agreed(&mut self, now: Instant) -> Option<Decision> {
        let agreed = self.attempt.agreement(self.s.k)?;
        self.attempt.clear_window();
        if let Some(face) = agreed.face {
            if self.limiter.forget_near(&face, self.s.threshold, now) {
                self.limiter_dirty = true;
            }
        }
        self.cooldown_until = Some(now + self.s.cooldown);
        Some(Decision::Unlock {
            id: agreed.id,
            distance: agreed.distance,
            frames: agreed.frames,
        })
    }

    /// Fusion: at least `k` live frames in the window, and their quality-weighted mean matches
    /// one person within `fusion_threshold`, with the margin to the runner-up and that person's
    /// access: unlock as [`unlock_if_agreed`](Self::unlock_if_agreed) does.
    fn unlock_if_fused(&mut self, now: Instant, matcher: Matcher<'_>) -> Option<Decision> {
        let (fused, frames) = self.attempt.fused(self.s.k)?;
        let (best, access) = matcher(&fused);
        let FrameVerdict::Match { id, distance } =
            verdict::classify_fused(&self.s, best.as_ref(), access)
        else {
            return None;
        };
        self.attempt.clear_window();
        if self.limiter.forget_near(&fused, self.s.threshold, now) {
            self.limiter_dirty = true;
        }
        self.cooldown_until = Some(now + self.s.cooldown);
        Some(Decision::Unlock {
            id,
            distance,
            frames,
        })
    }

    /// `k` of the last `n` frames fail: deny, once per failing visitor and attempt, and count
    /// the denial against that visitor in the rate limiter. Frames without a usable embedding
    /// (invalid) can never unlock, so there is nothing to rate-limit: they are denied once per
    /// attempt for the record.
    fn deny_if_failing(&mut self, now: Instant) -> Option<Decision> {
        if self.attempt.failing() < self.s.k {
            return None;
        }
        let (visitor, last) = self.attempt.failing_visitor();
        self.attempt.clear_window();
        if !self
            .attempt
            .first_denial(visitor.as_ref(), self.s.threshold)
        {
            // one denial per visitor and attempt; keep watching for a match
            return Some(Decision::Wait);
        }
        if let Some(m) = visitor {
            self.limiter.record_failure(m, now, &self.s);
            self.limiter_dirty = true;
        }
        Some(Decision::deny_after(last))
    }
}
