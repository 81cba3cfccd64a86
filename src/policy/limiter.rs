//! The rate limit for failed attempts, per failing visitor ([`RateLimiter`]), and its state
//! saved across restarts ([`LimiterState`], [`limiter_path`]).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::compare::is_finite;
use super::settings::PolicySettings;
use super::Policy;
use crate::face::encode::Embedding;

/// Most failing visitors the rate limiter remembers at once.
pub const LIMITER_CAPACITY: usize = 64;
/// Version of [`LimiterState`].
const LIMITER_STATE_VERSION: u32 = 1;
/// Largest limiter state file accepted ([`LIMITER_CAPACITY`] entries take about 100 KB).
const MAX_LIMITER_FILE: u64 = 1 << 20;

/// One recently denied visitor.
#[derive(Debug, Clone)]
pub(super) struct Visitor {
    /// Mean embedding of the frames that failed (blended over this visitor's denials).
    mean: Embedding,
    failures: u32,
    blocked_until: Option<Instant>,
    /// When this entry is forgotten: `max_backoff` after the last denial or, when blocked,
    /// after the block ends.
    expires: Instant,
}

/// The rate limit for failed attempts, per failing visitor (issue 10, finding 12).
///
/// # Who is rate-limited, and why
/// A limiter that blocks the *door* lets one stranger lock every employee out: three failed
/// visits and nobody enters for `backoff`..`max_backoff`. Back-off must follow the person who
/// failed. The candidates for "the person":
///
/// - **The face track** (box continuity across frames) identifies a visitor only while they stay
///   in view; stepping out of the picture and back in would reset it, so it cannot carry a
///   back-off across visits. (It is still what ends an attempt: `absence`.)
/// - **The nearest enrolled identity** is the attacker's *target*, not the attacker: someone
///   impersonating Alice would get Alice blocked (a targeted lock-out), and an attacker whose
///   attempts land nearest different employees would spread failures thinly enough to never be
///   blocked.
/// - **The failing visitor's own embedding** (chosen): on a denial the mean embedding of the
///   failing frames is recorded in a small table of recently denied visitors, with a failure
///   count and `blocked_until`. A later face within `threshold` of a blocked entry (the frame
///   itself, or the mean of the visit's last `n` faces, which varies less with pose and light)
///   is the same visitor: its frames are held (no denial, no unlock) until the block ends, in this visit, in
///   the next visit and after a restart (the table is saved, see below). The radius is the
///   encoder's own "same person" distance: a face the limiter holds is one the matcher cannot
///   tell apart from the blocked visitor, and a face the limiter lets through (at least
///   `threshold` from every blocked visitor) is, for the matcher too, somebody else. So an
///   employee whose face is far from the stranger's enters at once, while a returning
///   stranger, also one who now matches an employee (a better disguise of the same face), is
///   held. An employee who steps in front of a blocked stranger without a gap of `absence`
///   shares the visit's mean for at most `n` frames: a delay of a few frames, not a lock-out.
///
/// Back-off: the `free_failures`-th denial of a visitor blocks it for `backoff`, each further one
/// doubles that, up to `max_backoff`. An unlock forgets the unblocked entries near the person who
/// entered (an employee's own bad-light failures do not pile up). One attempt produces at most
/// one denial per failing visitor; a second, different failing face in the same attempt (an
/// attacker swapping photos without leaving the picture) is a new visitor and is denied and
/// counted too.
///
/// # What it does not do
/// It limits attempts *per face*, not the number of faces an attacker can present: each new
/// photo is a new visitor with its own free failures. That search is bounded by the matcher's
/// false-accept rate (the threshold is chosen for it) and every denial is audited. The table
/// holds at most [`LIMITER_CAPACITY`] visitors; when it is full, an unblocked entry (the oldest)
/// is dropped first, a blocked one only when all are blocked (the one whose block ends first),
/// so flushing a blocked face out takes [`LIMITER_CAPACITY`] other faces blocked first, i.e.
/// `LIMITER_CAPACITY * free_failures` audited denials.
///
/// # Biometric data of people who are not enrolled
/// The table is biometric data of strangers, so it is kept only as long as the policy needs it:
/// only a mean embedding per visitor (no image, no per-frame data), at most
/// [`LIMITER_CAPACITY`] of them, each forgotten `max_backoff` after its last denial or the end
/// of its block, whichever is later (so at most `2 * max_backoff` after the last denial). It is
/// persisted (so a restart, e.g. one the attacker provokes by pulling the camera, does not reset
/// the back-off) only through [`Policy::limiter_state`] / [`Policy::restore_limiter`]; the daemon
/// writes it with [`Policy::save_limiter_if_changed`] to [`limiter_path`] beside the audit log,
/// atomically and with mode 0600, and rewrites it whenever an entry expires, so the file never
/// holds an entry the policy has forgotten (except while the daemon is stopped; expired entries
/// are dropped and the file rewritten at the next start).
#[derive(Debug, Clone, Default)]
pub struct RateLimiter {
    pub(super) visitors: Vec<Visitor>,
}

impl RateLimiter {
    /// The latest end of a block on a visitor within `radius` of `e`, if one is in force.
    pub(super) fn blocked(&self, e: &Embedding, radius: f32, now: Instant) -> Option<Instant> {
        self.visitors
            .iter()
            .filter(|v| v.blocked_until.is_some_and(|t| now < t))
            .filter(|v| v.mean.distance(e) < radius)
            .filter_map(|v| v.blocked_until)
            .max()
    }

    /// Drops expired entries; returns whether any were dropped.
    pub(super) fn expire(&mut self, now: Instant) -> bool {
        let before = self.visitors.len();
        self.visitors.retain(|v| now < v.expires);
        self.visitors.len() != before
    }

    /// Counts one denial of the visitor whose failing frames averaged to `mean`.
    pub(super) fn record_failure(&mut self, mean: Embedding, now: Instant, s: &PolicySettings) {
        let nearest = self
            .visitors
            .iter_mut()
            .map(|v| (v.mean.distance(&mean), v))
            .filter(|(d, _)| *d < s.threshold)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| v);
        let v = match nearest {
            Some(v) => {
                // Follow the visitor's drift (light, pose) between visits.
                for (m, x) in v.mean.0.iter_mut().zip(mean.0) {
                    *m = (*m + x) / 2.0;
                }
                v.failures = v.failures.saturating_add(1);
                v
            }
            None => {
                if self.visitors.len() >= LIMITER_CAPACITY {
                    self.evict(now);
                }
                self.visitors.push(Visitor {
                    mean,
                    failures: 1,
                    blocked_until: None,
                    expires: now,
                });
                self.visitors.last_mut().expect("just pushed")
            }
        };
        let mut wait = Duration::ZERO;
        if v.failures >= s.free_failures {
            let extra = v.failures - s.free_failures;
            wait = s
                .backoff
                .saturating_mul(1u32 << extra.min(16))
                .min(s.max_backoff);
            v.blocked_until = Some(now + wait);
        }
        // Remembered for max_backoff after the block ends: a visitor coming back right after
        // a block keeps its count (the wait keeps doubling instead of restarting).
        v.expires = now + wait + s.max_backoff;
    }

    /// Makes room for one entry (see the type's documentation for the order).
    fn evict(&mut self, now: Instant) {
        let unblocked = self
            .visitors
            .iter()
            .enumerate()
            .filter(|(_, v)| v.blocked_until.is_none_or(|t| t <= now))
            .min_by_key(|(_, v)| v.expires)
            .map(|(i, _)| i);
        let victim = unblocked.or_else(|| {
            self.visitors
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.blocked_until)
                .map(|(i, _)| i)
        });
        if let Some(i) = victim {
            self.visitors.swap_remove(i);
        }
    }

    /// Forgets the unblocked entries within `radius` of someone who just entered.
    pub(super) fn forget_near(&mut self, e: &Embedding, radius: f32, now: Instant) -> bool {
        let before = self.visitors.len();
        self.visitors
            .retain(|v| v.blocked_until.is_some_and(|t| now < t) || v.mean.distance(e) >= radius);
        self.visitors.len() != before
    }
}

/// The rate limiter's state as saved across restarts: times are relative to `saved_at`, so a
/// restart (a new monotonic clock) resumes the remaining waits. See [`RateLimiter`] for what it
/// holds and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimiterState {
    pub version: u32,
    /// Wall-clock time of the snapshot, milliseconds since the Unix epoch.
    pub saved_at_unix_ms: u64,
    pub visitors: Vec<DeniedVisitor>,
}

/// One recently denied visitor in a [`LimiterState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeniedVisitor {
    /// Mean embedding of the visitor's failing frames.
    pub mean: Embedding,
    pub failures: u32,
    /// Remaining block at `saved_at` (0: not blocked).
    pub blocked_ms: u64,
    /// Remaining time until the entry is forgotten, at `saved_at`.
    pub expires_ms: u64,
}

/// Where the daemon keeps the rate limiter's state: beside the audit log.
pub fn limiter_path(audit_path: &Path) -> PathBuf {
    audit_path.with_file_name("ratelimit.json")
}

fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Saving and restoring the rate limiter (see [`RateLimiter`] for what it holds and why).
impl Policy {
    /// The rate limiter's state, to save across restarts (see [`RateLimiter`]).
    pub fn limiter_state(&self) -> LimiterState {
        self.limiter_state_at(Instant::now(), SystemTime::now())
    }

    /// [`limiter_state`](Self::limiter_state) at a given monotonic and wall-clock time.
    pub fn limiter_state_at(&self, now: Instant, wall: SystemTime) -> LimiterState {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        LimiterState {
            version: LIMITER_STATE_VERSION,
            saved_at_unix_ms: unix_ms(wall),
            visitors: self
                .limiter
                .visitors
                .iter()
                .filter(|v| now < v.expires)
                .map(|v| DeniedVisitor {
                    mean: v.mean,
                    failures: v.failures,
                    blocked_ms: v
                        .blocked_until
                        .map_or(0, |t| ms(t.saturating_duration_since(now))),
                    expires_ms: ms(v.expires - now),
                })
                .collect(),
        }
    }

    /// Replaces the rate limiter's state with a saved one; returns how many visitors are
    /// remembered. See [`restore_limiter_at`](Self::restore_limiter_at).
    pub fn restore_limiter(&mut self, state: &LimiterState) -> Result<usize, String> {
        self.restore_limiter_at(state, Instant::now(), SystemTime::now())
    }

    /// Restores a saved state at a given monotonic and wall-clock time. The wall-clock time
    /// since the snapshot is subtracted from every wait; a clock that went backwards counts as
    /// no time passed (waits are kept whole, never shortened). Entries are checked: no more than
    /// [`LIMITER_CAPACITY`], finite embeddings, waits at most `max_backoff`, memory at most
    /// `max_backoff` after the wait.
    pub fn restore_limiter_at(
        &mut self,
        state: &LimiterState,
        now: Instant,
        wall: SystemTime,
    ) -> Result<usize, String> {
        if state.version != LIMITER_STATE_VERSION {
            return Err(format!(
                "rate-limiter state version {} (this build reads {LIMITER_STATE_VERSION})",
                state.version
            ));
        }
        let elapsed = unix_ms(wall).saturating_sub(state.saved_at_unix_ms);
        let cap = self.s.max_backoff;
        let left = |ms: u64| Duration::from_millis(ms.saturating_sub(elapsed));
        let mut visitors: Vec<Visitor> = state
            .visitors
            .iter()
            .filter(|v| is_finite(&v.mean) && v.expires_ms > elapsed)
            .map(|v| {
                let blocked = left(v.blocked_ms).min(cap);
                Visitor {
                    mean: v.mean,
                    failures: v.failures,
                    blocked_until: (!blocked.is_zero()).then(|| now + blocked),
                    expires: now + left(v.expires_ms).min(blocked + cap).max(blocked),
                }
            })
            .collect();
        // keep the longest blocks if a file holds more than fits
        visitors.sort_by_key(|v| std::cmp::Reverse(v.blocked_until));
        visitors.truncate(LIMITER_CAPACITY);
        let n = visitors.len();
        self.limiter_dirty = n != state.visitors.len();
        self.limiter.visitors = visitors;
        Ok(n)
    }

    /// Restores the rate limiter from `path` (see [`limiter_path`]); a missing file is an empty
    /// limiter. Rewrites the file when entries expired while the daemon was stopped.
    pub fn load_limiter(&mut self, path: &Path) -> crate::error::Result<usize> {
        use std::io::Read;
        let bad = |why: String| {
            crate::error::Error::Invalid(format!(
                "{}: {why}; delete the file to start with an empty rate limiter",
                path.display()
            ))
        };
        let f = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(crate::error::Error::io(path, e)),
        };
        let mut text = String::new();
        f.take(MAX_LIMITER_FILE + 1)
            .read_to_string(&mut text)
            .map_err(|e| crate::error::Error::io(path, e))?;
        if text.len() as u64 > MAX_LIMITER_FILE {
            return Err(bad(format!("larger than {MAX_LIMITER_FILE} bytes")));
        }
        let state: LimiterState = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let n = self.restore_limiter(&state).map_err(bad)?;
        self.save_limiter_if_changed(path)?;
        Ok(n)
    }

    /// Writes the rate limiter's state to `path` (atomically, mode 0600) if it changed since
    /// the last write: after a denial, an unlock that cleared entries, or an expiry.
    pub fn save_limiter_if_changed(&mut self, path: &Path) -> crate::error::Result<()> {
        if !self.limiter_dirty {
            return Ok(());
        }
        let json = serde_json::to_vec(&self.limiter_state())
            .map_err(|e| crate::error::Error::Invalid(format!("rate-limiter state: {e}")))?;
        crate::fsutil::write_atomic(path, &json, 0o600)?;
        self.limiter_dirty = false;
        Ok(())
    }
}
