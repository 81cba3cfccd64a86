//! The door controller: bounded unlock pulses on a [`LockOutput`], the safe state on shutdown
//! and on panic, and the optional door-contact and request-to-exit inputs.
//!
//! # Mechanism
//!
//! [`DoorController::start`] asserts the *locked* state on the output (synchronously: if that
//! first write fails, start fails) and spawns one thread, `facegate-door`, that owns the
//! schedule. Callers only post requests ([`unlock_for`](DoorController::unlock_for),
//! [`lock_now`](DoorController::lock_now), [`shutdown`](DoorController::shutdown)); the thread
//! computes the wanted relay level, writes it, and sleeps until the next deadline. So the door
//! relocks on time even if the caller's loop stalls (a slow frame, a hung camera): nothing but
//! this thread has to run for the pulse to end.
//!
//! # States: idle, shutdown, panic
//!
//! The relay is *energised* or not; the door is *locked* or not; [`SafeState`] maps one to the
//! other and must match the wiring:
//!
//! | [`SafeState`] | hardware | idle (locked) | unlocked | shutdown / panic (de-energised) |
//! |---|---|---|---|---|
//! | `Locked` (fail-secure) | electric strike | de-energised | energised | **locked** |
//! | `Unlocked` (fail-safe) | maglock | energised | de-energised | **unlocked** |
//!
//! * **Idle** is always *locked*, and is asserted at start.
//! * **Unlock** is a pulse: at most [`HARD_MAX_PULSE`] (compile-time) and at most
//!   [`DoorConfig::max_pulse`]. A second unlock while the door is open extends the pulse to the
//!   later deadline, but never past `max_pulse` after the *first* opening: a stream of unlocks
//!   (a person standing in front of the camera) cannot hold the door open.
//! * **Shutdown** (SIGTERM/SIGINT handled by the daemon calling
//!   [`shutdown`](DoorController::shutdown), or dropping the controller) and **panic** drive the
//!   relay *de-energised*: the configured safe state. For a fail-secure strike that is locked.
//!   For a fail-safe maglock that is *unlocked*, deliberately: the process is about to stop
//!   driving the output, a stopped daemon must behave like a power cut (the state the door's
//!   fire and life-safety design was approved for), and a maglock the software no longer
//!   controls must not stay energised with nobody able to release it. `Restart=always` brings
//!   the daemon back, which locks it again.
//!
//! # The panic path
//!
//! A panic anywhere in the process de-energises the relay before the panic message is printed,
//! and latches the controller in the emergency state ([`Health::emergency`],
//! [`DoorController::emergency`]): see [`panic_guard`](super::panic_guard).
//!
//! # Ownership
//!
//! The controller owns the output (`Box<dyn LockOutput>`); the output is shared only with the
//! door thread and the panic hook, behind a mutex held for the duration of one write. The door
//! inputs ([`DoorInputs`]) are moved into the door thread, which polls them every
//! [`INPUT_POLL`] and debounces them ([`DoorConfig::debounce`],
//! [`debounce`](super::debounce)). The door thread itself is in [`worker`](super::worker).
//!
//! # Failures
//!
//! A failed write is logged, counted in [`Health`], reported as a [`DoorEvent`], and retried
//! with backoff (50 ms doubling to 2 s) until it succeeds or the wanted level changes.
//!
//! # Troubleshooting
//!
//! * "max_pulse ... exceeds the hard cap": lower the configured maximum to at most
//!   [`HARD_MAX_PULSE`]; a longer hold-open is a different feature (a schedule on the access
//!   controller), not a longer pulse.
//! * The door relocks early: a second unlock cannot extend past `max_pulse` after the first.
//! * `health().in_sync == false`: the output cannot be written; see the backend's
//!   troubleshooting ([`rppal`](super::output::rppal), [`gpiocdev`](super::output::gpiocdev)).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::input::DoorInput;
use super::output::{LockError, LockOutput};
use super::worker::Worker;

/// Compile-time cap on any unlock pulse, whatever the configuration says.
pub const HARD_MAX_PULSE: Duration = Duration::from_secs(30);

/// How often the door thread polls the door inputs (when any are configured).
pub const INPUT_POLL: Duration = Duration::from_millis(10);

const EVENT_QUEUE: usize = 256;

/// What the door does when the relay is de-energised (the wiring decides; configure to match).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SafeState {
    /// Fail-secure (electric strike): de-energised = locked; unlocking energises.
    #[default]
    Locked,
    /// Fail-safe (maglock): de-energised = unlocked; locking energises.
    Unlocked,
}

impl SafeState {
    /// The relay level that puts the door in the locked (`unlocked = false`) or unlocked state.
    pub fn energised_for(self, unlocked: bool) -> bool {
        match self {
            SafeState::Locked => unlocked,
            SafeState::Unlocked => !unlocked,
        }
    }
}

/// Door timing and wiring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorConfig {
    /// What de-energised means for this door.
    pub safe_state: SafeState,
    /// Length of a normal unlock pulse ([`DoorController::unlock`], the exit button).
    pub pulse: Duration,
    /// Longest the door may stay unlocked from one opening (at most [`HARD_MAX_PULSE`]).
    pub max_pulse: Duration,
    /// How long an input must be stable before a change counts.
    pub debounce: Duration,
}

impl Default for DoorConfig {
    fn default() -> Self {
        Self {
            safe_state: SafeState::Locked,
            pulse: Duration::from_secs(3),
            max_pulse: Duration::from_secs(10),
            debounce: Duration::from_millis(50),
        }
    }
}

impl DoorConfig {
    /// Checks the values, with errors that name the field and the fix.
    pub fn validate(&self) -> Result<(), ControllerError> {
        if self.max_pulse.is_zero() || self.max_pulse > HARD_MAX_PULSE {
            return Err(ControllerError::Config(format!(
                "max_pulse of {:?} is outside 0 < max_pulse <= {:?} (the compile-time cap \
                 HARD_MAX_PULSE); set it to a few seconds, e.g. 10 s",
                self.max_pulse, HARD_MAX_PULSE
            )));
        }
        if self.pulse.is_zero() || self.pulse > self.max_pulse {
            return Err(ControllerError::Config(format!(
                "pulse of {:?} is outside 0 < pulse <= max_pulse ({:?}); \
                 a strike needs 1-5 s, e.g. 3 s",
                self.pulse, self.max_pulse
            )));
        }
        if self.debounce > Duration::from_secs(1) {
            return Err(ControllerError::Config(format!(
                "debounce of {:?} is longer than 1 s; switches settle in 5-50 ms, use e.g. 50 ms",
                self.debounce
            )));
        }
        Ok(())
    }
}

/// Optional door inputs, moved into the door thread.
#[derive(Default)]
pub struct DoorInputs {
    /// Door contact (reed switch): active = door open.
    pub door_contact: Option<Box<dyn DoorInput>>,
    /// Request-to-exit button: a press (debounced rising edge) requests a normal unlock pulse.
    pub exit_button: Option<Box<dyn DoorInput>>,
}

/// Errors from the door controller.
#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    /// A configuration value is out of range; the message names the field and the fix.
    #[error("door config: {0}")]
    Config(String),
    /// The output could not be written at start or at shutdown.
    #[error(transparent)]
    Output(#[from] LockError),
    /// The controller was shut down; requests are refused.
    #[error("the door controller is shut down; start a new one (this is a bug in the caller)")]
    Stopped,
    /// A panic tripped the emergency release; requests are refused.
    #[error(
        "the door is in emergency release after a panic in this process; \
         restart the daemon (systemd does this with Restart=always)"
    )]
    Emergency,
    /// The door thread could not be spawned.
    #[error("cannot start the door thread: {0}; the system is out of threads or memory")]
    Thread(std::io::Error),
}

/// The commanded state of the door.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DoorState {
    /// Locked (idle).
    Locked,
    /// Unlocked until the deadline.
    Unlocked {
        /// When the door relocks.
        until: Instant,
    },
}

/// What an unlock request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnlockGrant {
    /// When the door relocks.
    pub until: Instant,
    /// `true` if the door was already open and this request moved the deadline later.
    pub extended: bool,
    /// `true` if the request was shortened by the maximum pulse.
    pub clamped: bool,
}

/// Something the door thread observed, for the audit log and the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DoorEventKind {
    /// The relay was driven to the unlocked level.
    Unlocked,
    /// The relay was driven back to the locked level.
    Relocked,
    /// The request-to-exit button was pressed (an unlock pulse was requested).
    ExitRequest,
    /// The door contact opened.
    DoorOpened,
    /// The door contact closed.
    DoorClosed,
    /// The door contact opened while the door was locked.
    ForcedOpen,
    /// A write to the output failed (the message names the device and the fix).
    OutputFault(String),
    /// The output accepted a write again after failures.
    OutputRecovered,
    /// An input could not be read.
    InputFault(String),
    /// The door contact's first debounced reading after start: whether the door was open.
    ContactAtStart {
        /// `true` = the door was open when the controller started.
        open: bool,
    },
}

impl DoorEventKind {
    /// The stable snake_case name, written as `event` in `door` audit records and in the
    /// `events` list of `lock_test` (issue 11 item 5: one naming for door events).
    pub fn name(&self) -> &'static str {
        match self {
            DoorEventKind::Unlocked => "unlocked",
            DoorEventKind::Relocked => "relocked",
            DoorEventKind::ExitRequest => "exit_request",
            DoorEventKind::DoorOpened => "door_opened",
            DoorEventKind::DoorClosed => "door_closed",
            DoorEventKind::ForcedOpen => "forced_open",
            DoorEventKind::OutputFault(_) => "output_fault",
            DoorEventKind::OutputRecovered => "output_recovered",
            DoorEventKind::InputFault(_) => "input_fault",
            DoorEventKind::ContactAtStart { .. } => "contact_at_start",
        }
    }

    /// The fields of its `door` audit record: `event` ([`Self::name`]) and the details
    /// (`error` for a fault, `door_open` for the contact at start).
    pub fn audit_fields(&self) -> serde_json::Value {
        match self {
            DoorEventKind::OutputFault(e) | DoorEventKind::InputFault(e) => {
                serde_json::json!({ "event": self.name(), "error": e })
            }
            DoorEventKind::ContactAtStart { open } => {
                serde_json::json!({ "event": self.name(), "door_open": open })
            }
            _ => serde_json::json!({ "event": self.name() }),
        }
    }
}

/// A [`DoorEventKind`] with the time it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorEvent {
    /// When it happened (monotonic clock, for measuring pulses).
    pub at: Instant,
    /// When it happened (wall clock, read at the same moment as `at`): the `time` of its audit
    /// record, however long it waits in the queue before the daemon writes it (a model load at
    /// start takes seconds; a frame, up to a few hundred ms).
    pub wall: jiff::Timestamp,
    /// What happened.
    pub kind: DoorEventKind,
}

/// A snapshot of the controller's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The output's description.
    pub output: String,
    /// The commanded state.
    pub state: DoorState,
    /// The level last written successfully (`None` if never).
    pub energised: Option<bool>,
    /// `true` when the last successful write matches the commanded level.
    pub in_sync: bool,
    /// Failed writes since the last success.
    pub consecutive_failures: u32,
    /// Failed writes since start.
    pub total_failures: u64,
    /// The last write error.
    pub last_error: Option<String>,
    /// The panic guard tripped: the relay is held de-energised and unlocks are refused.
    pub emergency: bool,
    /// The panic that tripped it: thread name, message and location (if it was recorded).
    pub panic: Option<String>,
    /// The controller is shut down.
    pub stopped: bool,
    /// The debounced door contact (`None` without a contact input).
    pub door_open: Option<bool>,
    /// Unlock pulses started since start.
    pub unlocks: u64,
}

impl Health {
    /// Healthy: the output follows the commanded state and no emergency is latched.
    pub fn is_ok(&self) -> bool {
        self.in_sync && !self.emergency && !self.stopped
    }
}

/// The unlock schedule the callers post and the door thread follows.
#[derive(Debug, Default)]
pub(super) struct Schedule {
    pub(super) opened_at: Option<Instant>,
    pub(super) deadline: Option<Instant>,
    pub(super) stop: bool,
    /// Bumped by every request, so the door thread never sleeps through one.
    pub(super) generation: u64,
}

/// What the controller handle, the door thread ([`worker`](super::worker)) and the panic hook
/// ([`panic_guard`](super::panic_guard)) share.
pub(super) struct Shared {
    pub(super) output: Mutex<Box<dyn LockOutput>>,
    pub(super) schedule: Mutex<Schedule>,
    pub(super) wake: Condvar,
    pub(super) emergency: AtomicBool,
    pub(super) panic: Mutex<Option<String>>,
    pub(super) health: Mutex<Health>,
    events: Mutex<VecDeque<DoorEvent>>,
    pub(super) config: DoorConfig,
}

// Every mutex here guards plain data that is valid at all times, so a poisoned lock (a panic
// elsewhere) is recovered rather than propagated: the door must keep working through it.
pub(super) fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(super) fn event(&self, kind: DoorEventKind) {
        let mut q = relock(&self.events);
        if q.len() == EVENT_QUEUE {
            q.pop_front();
        }
        q.push_back(DoorEvent {
            at: Instant::now(),
            wall: jiff::Timestamp::now(),
            kind,
        });
    }

    pub(super) fn post(&self, f: impl FnOnce(&mut Schedule)) -> Result<(), ControllerError> {
        if self.emergency.load(Ordering::SeqCst) {
            return Err(ControllerError::Emergency);
        }
        let mut s = relock(&self.schedule);
        if s.stop {
            return Err(ControllerError::Stopped);
        }
        f(&mut s);
        s.generation += 1;
        drop(s);
        self.wake.notify_all();
        Ok(())
    }

    pub(super) fn unlock_for(&self, requested: Duration) -> Result<UnlockGrant, ControllerError> {
        let max = self.config.max_pulse.min(HARD_MAX_PULSE);
        let mut grant = None;
        self.post(|s| {
            let now = Instant::now();
            let d = requested.min(max);
            let mut clamped = d < requested;
            let g = match (s.opened_at, s.deadline) {
                (Some(first), Some(old)) if old > now => {
                    let cap = first + max;
                    let wanted = (now + d).max(old);
                    if wanted > cap {
                        clamped = true;
                    }
                    let new = wanted.min(cap);
                    s.deadline = Some(new);
                    UnlockGrant {
                        until: new,
                        extended: new > old,
                        clamped,
                    }
                }
                _ => {
                    s.opened_at = Some(now);
                    s.deadline = Some(now + d);
                    UnlockGrant {
                        until: now + d,
                        extended: false,
                        clamped,
                    }
                }
            };
            grant = Some(g);
        })?;
        match grant {
            Some(g) => {
                log::info!(
                    "door: unlock for {:?}{}{}",
                    g.until.saturating_duration_since(Instant::now()),
                    if g.extended { " (extended)" } else { "" },
                    if g.clamped {
                        " (clamped to the maximum pulse)"
                    } else {
                        ""
                    }
                );
                Ok(g)
            }
            None => Err(ControllerError::Stopped),
        }
    }

    /// Writes `energised` unless the emergency flag forbids it. Holding the output while
    /// re-checking the flag means the panic hook's direct write cannot be overtaken.
    pub(super) fn write(&self, energised: bool) -> Result<(), LockError> {
        let mut out = relock(&self.output);
        let energised = energised && !self.emergency.load(Ordering::SeqCst);
        out.set_energised(energised)
    }

    pub(super) fn release(&self) -> Result<(), LockError> {
        let mut out = relock(&self.output);
        out.set_energised(false)
    }
}

/// The door controller: see the [module documentation](self).
pub struct DoorController {
    pub(super) shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DoorController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DoorController")
            .field("config", &self.shared.config)
            .field("health", &self.health())
            .finish()
    }
}

impl DoorController {
    /// Validates `config`, asserts the locked state on `output` and starts the door thread.
    pub fn start(output: Box<dyn LockOutput>, config: DoorConfig) -> Result<Self, ControllerError> {
        Self::start_with_inputs(output, config, DoorInputs::default())
    }

    /// Like [`start`](Self::start), with a door contact and/or request-to-exit button.
    pub fn start_with_inputs(
        mut output: Box<dyn LockOutput>,
        config: DoorConfig,
        inputs: DoorInputs,
    ) -> Result<Self, ControllerError> {
        config.validate()?;
        let locked = config.safe_state.energised_for(false);
        output.set_energised(locked)?;
        let description = output.describe();
        log::info!(
            "door: {description}, {}, pulse {:?} (max {:?}): locked",
            match config.safe_state {
                SafeState::Locked => "fail-secure",
                SafeState::Unlocked => "fail-safe",
            },
            config.pulse,
            config.max_pulse
        );
        let shared = Arc::new(Shared {
            output: Mutex::new(output),
            schedule: Mutex::new(Schedule::default()),
            wake: Condvar::new(),
            emergency: AtomicBool::new(false),
            panic: Mutex::new(None),
            health: Mutex::new(Health {
                output: description,
                state: DoorState::Locked,
                energised: Some(locked),
                in_sync: true,
                consecutive_failures: 0,
                total_failures: 0,
                last_error: None,
                emergency: false,
                panic: None,
                stopped: false,
                door_open: None,
                unlocks: 0,
            }),
            events: Mutex::new(VecDeque::new()),
            config,
        });
        let worker = Worker::new(shared.clone(), inputs, locked);
        let thread = std::thread::Builder::new()
            .name("facegate-door".into())
            .spawn(move || worker.run());
        match thread {
            Ok(t) => Ok(Self {
                shared,
                thread: Some(t),
            }),
            Err(e) => {
                // Leave the relay de-energised, as on any other way out.
                let _ = shared.release();
                Err(ControllerError::Thread(e))
            }
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &DoorConfig {
        &self.shared.config
    }

    /// The effective maximum pulse: `min(HARD_MAX_PULSE, config.max_pulse)`.
    pub fn max_pulse(&self) -> Duration {
        self.shared.config.max_pulse.min(HARD_MAX_PULSE)
    }

    /// Unlocks for the configured pulse.
    pub fn unlock(&self) -> Result<UnlockGrant, ControllerError> {
        self.shared.unlock_for(self.shared.config.pulse)
    }

    /// Unlocks for `duration`, clamped to the maximum pulse. While the door is already open,
    /// extends to the later deadline, but never past the maximum from the first opening.
    pub fn unlock_for(&self, duration: Duration) -> Result<UnlockGrant, ControllerError> {
        self.shared.unlock_for(duration)
    }

    /// Ends any unlock pulse now.
    pub fn lock_now(&self) -> Result<(), ControllerError> {
        self.shared.post(|s| {
            s.opened_at = None;
            s.deadline = None;
        })?;
        log::info!("door: lock now");
        Ok(())
    }

    /// The commanded state.
    pub fn state(&self) -> DoorState {
        relock(&self.shared.health).state
    }

    /// A snapshot of the controller's health.
    pub fn health(&self) -> Health {
        let mut h = relock(&self.shared.health).clone();
        h.emergency = self.shared.emergency.load(Ordering::SeqCst);
        h.panic = relock(&self.shared.panic).clone();
        h
    }

    /// `true` once a panic anywhere in the process tripped the panic guard (latched): the
    /// relay is held de-energised and unlocks are refused. Cheap: one atomic load.
    pub fn emergency(&self) -> bool {
        self.shared.emergency.load(Ordering::SeqCst)
    }

    /// Takes the events observed since the last call (the queue keeps the latest 256).
    pub fn drain_events(&self) -> Vec<DoorEvent> {
        relock(&self.shared.events).drain(..).collect()
    }

    /// Drives the relay to the safe (de-energised) state and stops the door thread. Idempotent;
    /// also done on drop. Returns an error if the final write failed (after retries).
    pub fn shutdown(&mut self) -> Result<(), ControllerError> {
        {
            let mut s = relock(&self.shared.schedule);
            s.stop = true;
            s.generation += 1;
        }
        self.shared.wake.notify_all();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("door: the door thread panicked; releasing the relay from here");
                self.shared.release()?;
            }
        }
        let h = relock(&self.shared.health);
        match (&h.energised, &h.last_error) {
            (Some(false), _) => Ok(()),
            (_, Some(e)) => Err(ControllerError::Output(LockError {
                device: h.output.clone(),
                reason: format!("could not de-energise at shutdown: {e}"),
            })),
            _ => Err(ControllerError::Output(LockError {
                device: h.output.clone(),
                reason: "could not de-energise at shutdown; the wiring's safe state applies".into(),
            })),
        }
    }
}

impl Drop for DoorController {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::error!("door: {e}");
        }
    }
}
