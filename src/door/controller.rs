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
//! [`install_panic_guard`] chains a process-wide panic hook in front of the previous one. The
//! hook never blocks: it sets an atomic emergency flag (which the door thread checks before
//! every write and which refuses all later unlocks), wakes the thread, then tries
//! (`try_lock`, for at most ~50 ms) to take the output and de-energise it directly, from the
//! panicking thread, before the default hook prints the message. If the output's lock is held
//! (the door thread is in the middle of a write, or the panic happened *inside* a write), the
//! door thread de-energises it instead: it re-checks the flag while holding the output, and a
//! guard on its stack releases the relay when it exits, even by unwinding. The hook holds only a
//! weak reference, so it does nothing once the controller is gone. With `panic = "abort"` the
//! hook still runs (it runs before the abort) but the unwinding fallback does not.
//!
//! After a panic the controller stays latched in the emergency state ([`Health::emergency`],
//! [`DoorController::emergency`]), with the panicking thread and message in
//! [`Health::panic`]: the daemon checks it every turn of its loop, audits it and exits
//! non-zero, so that systemd restarts it (issue 10 finding 9).
//!
//! # Ownership
//!
//! The controller owns the output (`Box<dyn LockOutput>`); the output is shared only with the
//! door thread and the panic hook, behind a mutex held for the duration of one write. The door
//! inputs ([`DoorInputs`]) are moved into the door thread, which polls them every
//! [`INPUT_POLL`] and debounces them ([`DoorConfig::debounce`]).
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
//!   troubleshooting ([`rppal_out`](super::rppal_out), [`gpiocdev_out`](super::gpiocdev_out)).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, TryLockError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::lock::{DoorInput, LockError, LockOutput};

/// Compile-time cap on any unlock pulse, whatever the configuration says.
pub const HARD_MAX_PULSE: Duration = Duration::from_secs(30);

/// How often the door thread polls the door inputs (when any are configured).
pub const INPUT_POLL: Duration = Duration::from_millis(10);

const IDLE_WAKE: Duration = Duration::from_millis(200);
const RETRY_MIN: Duration = Duration::from_millis(50);
const RETRY_MAX: Duration = Duration::from_secs(2);
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
    /// When it happened.
    pub at: Instant,
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

#[derive(Debug, Default)]
struct Schedule {
    opened_at: Option<Instant>,
    deadline: Option<Instant>,
    stop: bool,
    generation: u64,
}

struct Shared {
    output: Mutex<Box<dyn LockOutput>>,
    schedule: Mutex<Schedule>,
    wake: Condvar,
    emergency: AtomicBool,
    panic: Mutex<Option<String>>,
    health: Mutex<Health>,
    events: Mutex<VecDeque<DoorEvent>>,
    config: DoorConfig,
}

// Every mutex here guards plain data that is valid at all times, so a poisoned lock (a panic
// elsewhere) is recovered rather than propagated: the door must keep working through it.
fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn event(&self, kind: DoorEventKind) {
        let mut q = relock(&self.events);
        if q.len() == EVENT_QUEUE {
            q.pop_front();
        }
        q.push_back(DoorEvent {
            at: Instant::now(),
            kind,
        });
    }

    fn post(&self, f: impl FnOnce(&mut Schedule)) -> Result<(), ControllerError> {
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

    fn unlock_for(&self, requested: Duration) -> Result<UnlockGrant, ControllerError> {
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
    fn write(&self, energised: bool) -> Result<(), LockError> {
        let mut out = relock(&self.output);
        let energised = energised && !self.emergency.load(Ordering::SeqCst);
        out.set_energised(energised)
    }

    fn release(&self) -> Result<(), LockError> {
        let mut out = relock(&self.output);
        out.set_energised(false)
    }
}

/// The door controller: see the [module documentation](self).
pub struct DoorController {
    shared: Arc<Shared>,
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

/// Installs a process-wide panic hook that de-energises `controller`'s relay (its safe state)
/// before the previously installed hook (normally the default message) runs.
///
/// Call it once per controller, right after [`DoorController::start`]. The hook holds a weak
/// reference: after the controller is dropped it does nothing. See the
/// [module documentation](self#the-panic-path) for how it avoids deadlocks.
pub fn install_panic_guard(controller: &DoorController) {
    let weak = Arc::downgrade(&controller.shared);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !CONTAINED_PANIC.with(|c| c.get()) {
            if let Some(shared) = weak.upgrade() {
                emergency_release(&shared, describe_panic(info));
            }
        }
        previous(info);
    }));
}

thread_local! {
    static CONTAINED_PANIC: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, which may panic, under `catch_unwind` without tripping the panic guard: for known,
/// contained panics in third-party code (v4l's stream Drop after a camera is unplugged). Any
/// other panic still releases the relay to the safe state.
pub fn contain_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    CONTAINED_PANIC.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED_PANIC.with(|c| c.set(false));
    r
}

/// "thread 'name' panicked at file:line: message", for the daemon's log and audit record.
fn describe_panic(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string payload)");
    let thread = std::thread::current();
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let mut text = format!(
        "thread '{}' panicked{at}: {msg}",
        thread.name().unwrap_or("<unnamed>")
    );
    if text.len() > 1000 {
        let mut cut = 1000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

fn emergency_release(shared: &Shared, what: String) {
    use std::io::Write;
    // Never block in the hook: keep the first panic's description if the lock is busy.
    if let Ok(mut p) = shared.panic.try_lock() {
        p.get_or_insert(what);
    }
    shared.emergency.store(true, Ordering::SeqCst);
    shared.wake.notify_all();
    for _ in 0..50 {
        let mut out = match shared.output.try_lock() {
            Ok(out) => out,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let result = out.set_energised(false);
        let mut err = std::io::stderr();
        let _ = match result {
            Ok(()) => writeln!(
                err,
                "facegate: panic: relay de-energised ({})",
                out.describe()
            ),
            Err(e) => writeln!(
                err,
                "facegate: panic: could not de-energise the relay: {e}; the door thread retries"
            ),
        };
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "facegate: panic: the relay is busy; the door thread de-energises it"
    );
}

/// A software debouncer over one input.
struct Debounced {
    input: Box<dyn DoorInput>,
    stable: Option<bool>,
    candidate: bool,
    since: Instant,
    failing: bool,
}

impl Debounced {
    fn new(input: Box<dyn DoorInput>) -> Self {
        Self {
            input,
            stable: None,
            candidate: false,
            since: Instant::now(),
            failing: false,
        }
    }

    /// Returns `Some(new)` when the debounced level changes (the first reading counts as a
    /// change from "unknown" only for the door contact, see the caller).
    fn poll(
        &mut self,
        now: Instant,
        debounce: Duration,
        shared: &Shared,
    ) -> Option<(Option<bool>, bool)> {
        let raw = match self.input.is_active() {
            Ok(v) => {
                self.failing = false;
                v
            }
            Err(e) => {
                if !self.failing {
                    log::error!("door: {e}");
                    shared.event(DoorEventKind::InputFault(e.to_string()));
                    self.failing = true;
                }
                return None;
            }
        };
        if raw != self.candidate {
            self.candidate = raw;
            self.since = now;
        }
        let settled = now.duration_since(self.since) >= debounce || self.stable.is_none();
        if settled && self.stable != Some(raw) {
            let old = self.stable;
            self.stable = Some(raw);
            return Some((old, raw));
        }
        None
    }
}

/// The door thread's state.
struct Worker {
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
    fn new(shared: Arc<Shared>, inputs: DoorInputs, applied: bool) -> Self {
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

    fn run(mut self) {
        let _release = ReleaseOnExit(self.shared.clone());
        loop {
            let now = Instant::now();
            self.poll_inputs(now);

            // Read the schedule and decide the wanted level.
            let (want, deadline, generation) = {
                let mut s = relock(&self.shared.schedule);
                if s.stop {
                    return;
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
                (want, s.deadline, s.generation)
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
            if let Some((Some(false), true)) = exit.poll(now, debounce, &self.shared) {
                log::info!("door: request-to-exit pressed");
                self.shared.event(DoorEventKind::ExitRequest);
                let pulse = self.shared.config.pulse;
                if let Err(e) = self.shared.unlock_for(pulse) {
                    log::warn!("door: request-to-exit ignored: {e}");
                }
            }
        }
        if let Some(contact) = self.contact.as_mut() {
            if let Some((old, open)) = contact.poll(now, debounce, &self.shared) {
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
                }
                if old.is_some() {
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
        }
    }
}
