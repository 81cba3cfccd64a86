//! Software debouncing of a door input: a new level counts once it has been read unchanged for
//! the debounce time (a switch bounces for 5-50 ms). The very first reading counts at once, as
//! a change from "unknown", so the door contact's state at start is known without waiting.
//!
//! [`Debouncer`] is the pure rule (levels and times in, changes out); [`Debounced`] applies it
//! to a [`DoorInput`] and reports a failing input once per failure streak.

use std::time::{Duration, Instant};

use super::input::DoorInput;
use super::output::LockError;

/// A change of the debounced level: `old` is `None` for the first reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub old: Option<bool>,
    pub new: bool,
}

/// The debouncing rule over raw readings.
#[derive(Debug, Clone)]
pub struct Debouncer {
    stable: Option<bool>,
    candidate: bool,
    since: Instant,
}

impl Debouncer {
    /// A debouncer with no reading yet.
    pub fn new(now: Instant) -> Self {
        Self {
            stable: None,
            candidate: false,
            since: now,
        }
    }

    /// The debounced level (`None` before the first reading).
    pub fn level(&self) -> Option<bool> {
        self.stable
    }

    /// Feeds one raw reading taken at `now`; returns the change it completes, if any.
    pub fn update(&mut self, raw: bool, now: Instant, debounce: Duration) -> Option<Change> {
        if raw != self.candidate {
            self.candidate = raw;
            self.since = now;
        }
        let settled = now.duration_since(self.since) >= debounce || self.stable.is_none();
        if settled && self.stable != Some(raw) {
            let old = self.stable;
            self.stable = Some(raw);
            return Some(Change { old, new: raw });
        }
        None
    }
}

/// What one poll of a [`Debounced`] input found.
#[derive(Debug)]
pub enum Reading {
    /// No change of the debounced level (or the input is still failing).
    Steady,
    /// The debounced level changed.
    Changed(Change),
    /// The input could not be read: reported once per failure streak.
    Fault(LockError),
}

/// A door input with its debouncer.
pub struct Debounced {
    input: Box<dyn DoorInput>,
    debouncer: Debouncer,
    failing: bool,
}

impl Debounced {
    pub fn new(input: Box<dyn DoorInput>) -> Self {
        Self {
            input,
            debouncer: Debouncer::new(Instant::now()),
            failing: false,
        }
    }

    /// Reads the input once and debounces the reading.
    pub fn poll(&mut self, now: Instant, debounce: Duration) -> Reading {
        match self.input.is_active() {
            Ok(raw) => {
                self.failing = false;
                match self.debouncer.update(raw, now, debounce) {
                    Some(change) => Reading::Changed(change),
                    None => Reading::Steady,
                }
            }
            Err(_) if self.failing => Reading::Steady,
            Err(e) => {
                self.failing = true;
                Reading::Fault(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bouncing switch yields one change, after the level has been stable for the debounce
    /// time; the first reading counts at once.
    #[test]
    fn bounces_are_ignored_and_the_first_reading_counts_at_once() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let d = Duration::from_millis(20);
        let mut b = Debouncer::new(t0);
        assert_eq!(
            b.update(false, ms(0), d),
            Some(Change {
                old: None,
                new: false
            })
        );
        for (t, raw) in [(5, true), (8, false), (11, true), (14, false), (17, true)] {
            assert_eq!(b.update(raw, ms(t), d), None, "bounce at {t} ms");
        }
        assert_eq!(
            b.update(true, ms(30), d),
            None,
            "13 ms stable is not enough"
        );
        assert_eq!(
            b.update(true, ms(37), d),
            Some(Change {
                old: Some(false),
                new: true
            })
        );
        assert_eq!(b.update(true, ms(60), d), None);
        assert_eq!(b.level(), Some(true));
    }
}
