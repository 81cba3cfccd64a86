//! A simulated lock output for the demo, the tests and any machine without GPIO (the matching
//! door input is [`SimulatedInput`](crate::door::input::SimulatedInput)).
//!
//! # Mechanism
//!
//! [`SimulatedOutput`] drives no hardware: every *transition* of the relay (a change of the
//! energised level, plus the very first write, which turns "unknown" into a known level) is
//! appended to a [`TransitionLog`] with the [`Instant`] it happened and logged at `info` level
//! (target `facegate::door::output::sim`). Writing the level the relay already has is not a transition
//! and is not recorded, just as a real relay does not click twice.
//!
//! # Ownership
//!
//! The output itself is owned by whoever drives it (normally the
//! [`DoorController`](crate::door::controller::DoorController)'s thread). The [`TransitionLog`] is a
//! cheap, cloneable handle (`Arc<Mutex<Vec<Transition>>>`): keep a clone before handing the
//! output over, and read it from tests or the demo at any time.
//!
//! The log can also inject write failures ([`TransitionLog::fail_next_writes`]) so the
//! controller's retry and health reporting can be exercised without hardware.
//!
//! With a *state file* ([`SimulatedOutput::with_state_file`], `[lock] sim_state_file`), every
//! transition is also written to a file (`energised` or `de-energised`, atomically), which
//! outlives the process like a real GPIO pin keeps its level after SIGKILL: the tests of
//! `facegate lock safe` (the unit's `ExecStopPost=`) read it from another process
//! ([`read_state_file`]).
//!
//! # Troubleshooting
//!
//! * No "relay energised" lines in the output: the log level is below `info`; run with
//!   `RUST_LOG=info` (or `RUST_LOG=facegate::door=info`).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{LockError, LockOutput};

/// One recorded change of the relay level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When the level was applied.
    pub at: Instant,
    /// The level applied: `true` = relay energised.
    pub energised: bool,
}

#[derive(Debug, Default)]
struct LogInner {
    transitions: Mutex<Vec<Transition>>,
    fail_next: AtomicU32,
}

/// Shared, cloneable record of a [`SimulatedOutput`]'s transitions.
#[derive(Debug, Clone, Default)]
pub struct TransitionLog {
    inner: Arc<LogInner>,
}

impl TransitionLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    // A panic elsewhere must not make the log unreadable: the data is a plain Vec, always valid.
    fn lock(&self) -> MutexGuard<'_, Vec<Transition>> {
        self.inner
            .transitions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A copy of every transition so far, oldest first.
    pub fn transitions(&self) -> Vec<Transition> {
        self.lock().clone()
    }

    /// Number of transitions recorded.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// `true` if nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// The current level (`None` before the first write).
    pub fn energised(&self) -> Option<bool> {
        self.lock().last().map(|t| t.energised)
    }

    /// The energised periods so far as `(start, length)`; an open period (still energised)
    /// is reported with its length up to now.
    pub fn energised_periods(&self) -> Vec<(Instant, Duration)> {
        let transitions = self.transitions();
        let mut periods = Vec::new();
        let mut start: Option<Instant> = None;
        for t in &transitions {
            match (t.energised, start) {
                (true, None) => start = Some(t.at),
                (false, Some(s)) => {
                    periods.push((s, t.at.duration_since(s)));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            periods.push((s, s.elapsed()));
        }
        periods
    }

    /// Blocks until the level equals `energised` or `timeout` passes; returns whether it did.
    pub fn wait_for(&self, energised: bool, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.energised() == Some(energised) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Makes the next `n` writes fail with a [`LockError`] (fault injection for tests).
    pub fn fail_next_writes(&self, n: u32) {
        self.inner.fail_next.store(n, Ordering::SeqCst);
    }

    fn take_failure(&self) -> bool {
        self.inner
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// A relay output that records transitions instead of driving hardware.
#[derive(Debug)]
pub struct SimulatedOutput {
    name: String,
    log: TransitionLog,
    level: Option<bool>,
    state_file: Option<PathBuf>,
}

/// The text a state file holds for a level.
fn state_text(energised: bool) -> &'static str {
    if energised {
        "energised\n"
    } else {
        "de-energised\n"
    }
}

/// The level a simulated relay's state file records (`None`: no file, or not a level).
pub fn read_state_file(path: &Path) -> Option<bool> {
    match std::fs::read_to_string(path).ok()?.trim() {
        "energised" => Some(true),
        "de-energised" => Some(false),
        _ => None,
    }
}

impl SimulatedOutput {
    /// A simulated relay called `name` (used in logs), with a fresh [`TransitionLog`].
    pub fn new(name: impl Into<String>) -> Self {
        Self::with_log(name, TransitionLog::new())
    }

    /// A simulated relay recording into an existing log.
    pub fn with_log(name: impl Into<String>, log: TransitionLog) -> Self {
        Self {
            name: name.into(),
            log,
            level: None,
            state_file: None,
        }
    }

    /// A simulated relay whose level is also written to `path` at every transition (a pin
    /// that keeps its level after the process dies). The first write always writes the file.
    pub fn with_state_file(name: impl Into<String>, path: impl Into<PathBuf>) -> Self {
        let mut out = Self::new(name);
        out.state_file = Some(path.into());
        out
    }

    /// A handle on the transition log (clone it before moving the output into a controller).
    pub fn log(&self) -> TransitionLog {
        self.log.clone()
    }
}

impl LockOutput for SimulatedOutput {
    fn set_energised(&mut self, energised: bool) -> Result<(), LockError> {
        if self.log.take_failure() {
            return Err(LockError {
                device: self.describe(),
                reason: "injected write failure (TransitionLog::fail_next_writes); \
                         nothing to fix, this is a test"
                    .into(),
            });
        }
        if self.level == Some(energised) {
            return Ok(());
        }
        if let Some(path) = &self.state_file {
            crate::fsutil::write_atomic(path, state_text(energised).as_bytes(), 0o644).map_err(
                |e| LockError {
                    device: self.describe(),
                    reason: format!(
                        "cannot record the level in the state file: {e}; \
                         make its directory writable or change [lock] sim_state_file"
                    ),
                },
            )?;
        }
        let at = Instant::now();
        self.log.lock().push(Transition { at, energised });
        self.level = Some(energised);
        log::info!(
            "{}: relay {}",
            self.name,
            if energised {
                "energised"
            } else {
                "de-energised"
            }
        );
        Ok(())
    }

    fn describe(&self) -> String {
        match &self.state_file {
            None => format!("simulated relay \"{}\"", self.name),
            Some(p) => format!(
                "simulated relay \"{}\" (state in {})",
                self.name,
                p.display()
            ),
        }
    }
}
