//! One *attempt* (a presence in front of the camera) and its K-of-N window: which recent frames
//! count, whether `k` of them agree on one person, whether `k` of them fail, and which failing
//! visitors were already denied in it.
//!
//! An attempt starts with the first frame showing a face and ends when no face has been seen
//! for `absence`. The window holds the attempt's last `n` countable frames (a face that passed
//! the quality gates), none older than `window`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::compare::mean_embedding;
use super::verdict::FrameVerdict;
use crate::face::encode::Embedding;

/// Distinct failing visitors remembered within one attempt (for one denial per visitor).
const VISITORS_PER_ATTEMPT: usize = 8;

/// `k` of the window's frames agree on one person.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Agreement {
    pub(super) id: String,
    /// How many frames of the window match `id`.
    pub(super) frames: usize,
    /// The nearest of their distances.
    pub(super) distance: f32,
    /// The mean embedding of those frames: the face of the person who entered.
    pub(super) face: Option<Embedding>,
}

/// The current attempt. See the [module documentation](self).
#[derive(Debug, Default)]
pub(super) struct Attempt {
    /// Last frame that showed a face.
    last_face: Option<Instant>,
    /// The attempt's recent countable frames, with the face's embedding.
    recent: VecDeque<(Instant, FrameVerdict, Option<Embedding>)>,
    /// Embeddings of the attempt's last `n` countable faces (their mean is the visitor's
    /// face, steadier than one frame's).
    faces: VecDeque<Embedding>,
    /// Failing visitors already denied in this attempt (mean embeddings), and whether a
    /// denial without any usable embedding was made.
    denied: VecDeque<Embedding>,
    denied_anonymous: bool,
}

impl Attempt {
    /// Notes whether this frame showed a face; a frame without one, more than `absence` after
    /// the last face, ends the attempt (the person left).
    pub(super) fn track(&mut self, now: Instant, face: bool, absence: Duration) {
        if face {
            self.last_face = Some(now);
        } else if self
            .last_face
            .is_some_and(|t| now.duration_since(t) > absence)
        {
            *self = Attempt::default();
        }
    }

    /// Remembers a countable face's embedding (the last `n` are kept).
    pub(super) fn remember_face(&mut self, e: Embedding, n: usize) {
        if self.faces.len() >= n.max(1) {
            self.faces.pop_front();
        }
        self.faces.push_back(e);
    }

    /// The mean of the attempt's recent faces: the visitor, steadier than one frame.
    pub(super) fn visitor(&self) -> Option<Embedding> {
        mean_embedding(self.faces.iter())
    }

    /// Adds a countable frame to the window (the last `n`, none older than `window`).
    pub(super) fn count(
        &mut self,
        now: Instant,
        v: FrameVerdict,
        embedding: Option<Embedding>,
        n: usize,
        window: Duration,
    ) {
        self.recent.push_back((now, v, embedding));
        while self.recent.len() > n {
            self.recent.pop_front();
        }
        self.expire(now, window);
    }

    /// Drops the window's frames older than `window`.
    pub(super) fn expire(&mut self, now: Instant, window: Duration) {
        while self
            .recent
            .front()
            .is_some_and(|(t, _, _)| now.duration_since(*t) > window)
        {
            self.recent.pop_front();
        }
    }

    /// Empties the window (after an unlock or a denial: the next decision needs fresh frames).
    pub(super) fn clear_window(&mut self) {
        self.recent.clear();
    }

    /// The person most frames of the window match, if at least `k` do (the first such person
    /// on a tie).
    pub(super) fn agreement(&self, k: usize) -> Option<Agreement> {
        let mut best: Option<(&str, usize, f32)> = None;
        for (_, v, _) in &self.recent {
            if let FrameVerdict::Match { id, .. } = v {
                let (count, dmin) =
                    self.recent
                        .iter()
                        .fold((0, f32::INFINITY), |(c, d), (_, w, _)| match w {
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
        let (id, frames, distance) = best.filter(|b| b.1 >= k)?;
        let face = mean_embedding(self.recent.iter().filter_map(|(_, w, e)| {
            matches!(w, FrameVerdict::Match { id: i2, .. } if i2 == id)
                .then_some(e.as_ref())
                .flatten()
        }));
        Some(Agreement {
            id: id.to_string(),
            frames,
            distance,
            face,
        })
    }

    /// How many frames of the window failed (anything but a match).
    pub(super) fn failing(&self) -> usize {
        self.failing_frames().count()
    }

    /// The mean embedding of the window's failing frames (the failing visitor), and the verdict
    /// that names the denial's reason: the window's most live-looking presentation-attack
    /// frame if there is one (an attack on an enrolled person is the most serious finding, and
    /// the audit keeps its best score), else the last frame's.
    pub(super) fn failing_visitor(&self) -> (Option<Embedding>, Option<FrameVerdict>) {
        let spoof_score = |v: &FrameVerdict| match v {
            FrameVerdict::Spoof { score, .. } => Some(score.unwrap_or(f32::NEG_INFINITY)),
            _ => None,
        };
        let attack = self
            .failing_frames()
            .filter_map(|(_, v, _)| spoof_score(v).map(|s| (s, v)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, v)| v.clone());
        let last = attack.or_else(|| self.recent.back().map(|(_, v, _)| v.clone()));
        let visitor = mean_embedding(self.failing_frames().filter_map(|(_, _, e)| e.as_ref()));
        (visitor, last)
    }

    fn failing_frames(
        &self,
    ) -> impl Iterator<Item = &(Instant, FrameVerdict, Option<Embedding>)> + '_ {
        self.recent
            .iter()
            .filter(|(_, v, _)| !matches!(v, FrameVerdict::Match { .. }))
    }

    /// Records the denial of a failing visitor (`None`: frames without a usable embedding);
    /// `false` when that visitor (within `radius`) was already denied in this attempt: one
    /// denial per visitor and attempt.
    pub(super) fn first_denial(&mut self, visitor: Option<&Embedding>, radius: f32) -> bool {
        match visitor {
            Some(m) => {
                if self.denied.iter().any(|d| d.distance(m) < radius) {
                    return false;
                }
                if self.denied.len() >= VISITORS_PER_ATTEMPT {
                    self.denied.pop_front();
                }
                self.denied.push_back(*m);
                true
            }
            None => !std::mem::replace(&mut self.denied_anonymous, true),
        }
    }
}
