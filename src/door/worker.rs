//! The door thread (`facegate-door`): computes the wanted relay level from the unlock schedule
//! and the emergency flag, writes it (retrying with backoff), sleeps until the next deadline or
//! request, and polls and debounces the door inputs. See [`controller`](super::controller) for
//! the states and the guarantees.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::controller::{
    relock, DoorEventKind, DoorInputs, DoorState, SafeState, Shared, INPUT_POLL,
};
use super::debounce::{Change, Debounced, Reading};

const IDLE_WAKE: Duration = Duration::from_millis(200);
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The door thread's state.
pub(super) struct Worker {
    shared: Arc<Shared>,
    contact: Option<Debounced>,
    exit: Option<Debounced>,
    applied: Option<bool>,
    backoff: Duration,
    retry_at: Option<Instant>,
    unlocked: bool,
    relocked_at: Option<Instant>,
}

/// De-energises the relay however the door thread ends, including by unwinding.
struct ReleaseOnExit(Arc<Shared>);

impl Drop for ReleaseOnExit {
    fn drop(&mut self) {
        let shared = &self.0;
        let mut last = None;
        for attempt in 0..5 {
            match shared.release() {
                Ok(()) => {
                    last = None;
                    break;
                }
                Err(e) => {
                    log::error!("door: shutdown: {e} (attempt {})", attempt + 1);
                    last = Some(e.to_string());
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        let mut h = relock(&shared.health);
        h.stopped = true;
        h.state = DoorState::Locked;
        match last {
            None => {
                h.energised = Some(false);
                h.last_error = None;
                log::info!(
                    "door: stopped, relay de-energised ({})",
                    match shared.config.safe_state {
                        SafeState::Locked => "fail-secure: locked",
                        SafeState::Unlocked => "fail-safe: unlocked",
                    }
                );
            }
            Some(e) => {
                h.last_error = Some(e);
                h.in_sync = false;
            }
        }
    }
}

impl Worker {
    pub(super) fn new(shared: Arc<Shared>, inputs: DoorInputs, applied: bool) -> Self {
        Self {
            shared,
            contact: inputs.door_contact.map(Debounced::new),
            exit: inputs.exit_button.map(Debounced::new),
            applied: Some(applied),
            backoff: RETRY_MIN,
            retry_at: None,
            unlocked: false,
            relocked_at: None,
        }
    }

    pub(super) fn run(mut self) {
        let _release = ReleaseOnExit(self.shared.clone());
        loop {
            let now = Instant::now();
            self.poll_inputs(now);

            let Some((want, deadline, generation)) = self.wanted(now) else {
                return;
            };

            if self.applied != Some(want) && self.retry_at.is_none_or(|r| now >= r) {
                self.apply(want, deadline);
                continue;
            }

            // Sleep until the next thing to do, or until a request arrives.
            let mut timeout = IDLE_WAKE;
            if let Some(d) = deadline {
                timeout = timeout.min(d.saturating_duration_since(now));
            }
            if let (Some(r), true) = (self.retry_at, self.applied != Some(want)) {
                timeout = timeout.min(r.saturating_duration_since(now));
            }
            if self.contact.is_some() || self.exit.is_some() {
                timeout = timeout.min(INPUT_POLL);
            }
            let s = relock(&self.shared.schedule);
            if s.generation == generation && !s.stop && !timeout.is_zero() {
                let _unused = self
                    .shared
                    .wake
                    .wait_timeout(s, timeout)
                    .unwrap_or_else(|p| p.into_inner());
            }
        }
    }

    /// Reads the schedule and decides the wanted relay level: `(level, deadline, generation)`,
    /// or `None` when the controller is stopping.
    fn wanted(&mut self, now: Instant) -> Option<(bool, Option<Instant>, u64)> {
        let mut s = relock(&self.shared.schedule);
        if s.stop {
            return None;
        }
        if let Some(d) = s.deadline {
            if now >= d {
                s.deadline = None;
                s.opened_at = None;
            }
        }
        let emergency = self.shared.emergency.load(Ordering::SeqCst);
        let unlocked = s.deadline.is_some() && !emergency;
        let want = if emergency {
            false
        } else {
            self.shared.config.safe_state.energised_for(unlocked)
        };
        if unlocked != self.unlocked {
            self.unlocked = unlocked;
            if !unlocked {
                self.relocked_at = Some(now);
            }
        }
        Some((want, s.deadline, s.generation))
    }

    fn apply(&mut self, want: bool, deadline: Option<Instant>) {
        let now = Instant::now();
        let result = self.shared.write(want);
        let mut h = relock(&self.shared.health);
        match result {
            Ok(()) => {
                let recovered = h.consecutive_failures > 0;
                self.applied = Some(want);
                self.retry_at = None;
                self.backoff = RETRY_MIN;
                // In emergency the relay is released whatever it means for the door: that is
                // not an unlock pulse (though a fail-safe door is physically unlocked).
                let unlocked = want != self.shared.config.safe_state.energised_for(false)
                    && !self.shared.emergency.load(Ordering::SeqCst);
                h.energised = Some(want);
                h.in_sync = true;
                h.consecutive_failures = 0;
                h.last_error = None;
                h.state = match (unlocked, deadline) {
                    (true, Some(until)) => DoorState::Unlocked { until },
                    _ => DoorState::Locked,
                };
                if unlocked {
                    h.unlocks += 1;
                }
                drop(h);
                if recovered {
                    log::info!("door: output recovered");
                    self.shared.event(DoorEventKind::OutputRecovered);
                }
                if unlocked {
                    log::info!("door: unlocked");
                    self.shared.event(DoorEventKind::Unlocked);
                } else {
                    log::info!("door: locked");
                    self.shared.event(DoorEventKind::Relocked);
                }
            }
            Err(e) => {
                h.in_sync = false;
                h.consecutive_failures += 1;
                h.total_failures += 1;
                h.last_error = Some(e.to_string());
                let n = h.consecutive_failures;
                drop(h);
                log::error!("door: {e} (failure {n}, retrying in {:?})", self.backoff);
                self.shared.event(DoorEventKind::OutputFault(e.to_string()));
                self.retry_at = Some(now + self.backoff);
                self.backoff = (self.backoff * 2).min(RETRY_MAX);
                // The level on the wire is unknown now: rewrite it even if `want` flips back.
                self.applied = None;
            }
        }
    }

    fn poll_inputs(&mut self, now: Instant) {
        let debounce = self.shared.config.debounce;
        if let Some(exit) = self.exit.as_mut() {
            let reading = exit.poll(now, debounce);
            if let Some(Change {
                old: Some(false),
                new: true,
            }) = self.changed(reading)
            {
                log::info!("door: request-to-exit pressed");
                self.shared.event(DoorEventKind::ExitRequest);
                let pulse = self.shared.config.pulse;
                if let Err(e) = self.shared.unlock_for(pulse) {
                    log::warn!("door: request-to-exit ignored: {e}");
                }
            }
        }
        if let Some(contact) = self.contact.as_mut() {
            let reading = contact.poll(now, debounce);
            if let Some(change) = self.changed(reading) {
                self.contact_changed(now, change);
            }
        }
    }

    /// The change a reading reports; a failing input is logged and reported as an event.
    fn changed(&self, reading: Reading) -> Option<Change> {
        match reading {
            Reading::Steady => None,
            Reading::Changed(change) => Some(change),
            Reading::Fault(e) => {
                log::error!("door: {e}");
                self.shared.event(DoorEventKind::InputFault(e.to_string()));
                None
            }
        }
    }

    fn contact_changed(&mut self, now: Instant, Change { old, new: open }: Change) {
        relock(&self.shared.health).door_open = Some(open);
        if old.is_none() {
            // The first reading: audited, so that a door found open (wedged, forced
            // while the daemon was down) is on record (issue 10 finding 13).
            if open {
                log::warn!("door: open at start");
            } else {
                log::info!("door: closed at start");
            }
            self.shared.event(DoorEventKind::ContactAtStart { open });
            return;
        }
        if open {
            // A door opened while locked, beyond a short grace after a relock
            // (a person still walking through), was forced or the strike failed.
            let grace = self
                .relocked_at
                .is_some_and(|t| now.duration_since(t) < Duration::from_secs(2));
            if !self.unlocked && !grace {
                log::warn!("door: opened while locked (forced open?)");
                self.shared.event(DoorEventKind::ForcedOpen);
            } else {
                log::info!("door: opened");
            }
            self.shared.event(DoorEventKind::DoorOpened);
        } else {
            log::info!("door: closed");
            self.shared.event(DoorEventKind::DoorClosed);
        }
    }
}
