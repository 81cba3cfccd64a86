//! `facegate lock test`: the installer's wiring check. Opens the lock output the configuration
//! names, exactly as the daemon does (relay driven to the safe state first), sends one normal
//! unlock pulse through the [`DoorController`], waits for the relock and reports what the
//! controller saw. The installer watches the relay and the door while it runs.
//!
//! The daemon must be stopped first: a GPIO line has one owner at a time. SIGINT/SIGTERM during
//! the pulse relock the door before the command exits. The test is written to the audit log
//! (`lock_test`), like every other movement of the door.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::config::{Config, SafeStateConfig};
use crate::door::controller::{DoorController, DoorEventKind, DoorState};
use crate::error::{Error, Result};

/// What one test pulse did.
#[derive(Debug, Clone)]
pub struct PulseReport {
    /// The output's description (backend, pin or line, active level).
    pub output: String,
    /// The configured pulse.
    pub pulse: Duration,
    /// From the unlock command to the relock the controller observed.
    pub unlocked_for: Duration,
    /// The controller's events, in order ("unlocked", "relocked", faults).
    pub events: Vec<String>,
    /// A signal cut the pulse short (the door was relocked at once).
    pub interrupted: bool,
}

/// The door's wiring in words, for the installer.
pub fn describe_safe_state(cfg: &Config) -> &'static str {
    match cfg.lock.safe_state {
        SafeStateConfig::Locked => {
            "safe state \"locked\" (fail-secure): relay energised = door unlocked"
        }
        SafeStateConfig::Unlocked => {
            "safe state \"unlocked\" (fail-safe): relay energised = door locked, \
             de-energised = released"
        }
    }
}

/// Pulses the configured lock once and relocks it. Errors name the output and the fix; the
/// outcome (success or failure after the output opened) is audited.
pub fn pulse_once(cfg: &Config) -> Result<PulseReport> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::Invalid(format!("cannot install the signal handler: {e}")))?;
    }
    let output = crate::daemon::lock_output(cfg)?;
    let door_cfg = crate::daemon::door_config(cfg);
    let mut door = DoorController::start(output, door_cfg.clone())
        .map_err(|e| Error::Invalid(format!("[lock] {e}")))?;
    let description = door.health().output;
    let result = pulse(&door, door_cfg.pulse, &stop);
    // Whatever happened, end with the relay at the safe state and the output released.
    let shutdown = door.shutdown();
    let events: Vec<String> = door
        .drain_events()
        .iter()
        .map(|e| event_name(&e.kind))
        .collect();
    let fields = match &result {
        Ok((t, interrupted)) => json!({
            "output": description, "ok": shutdown.is_ok(), "pulse_ms": door_cfg.pulse.as_millis() as u64,
            "unlocked_ms": t.as_millis() as u64, "interrupted": interrupted, "events": events,
        }),
        Err(e) => {
            json!({ "output": description, "ok": false, "error": e.to_string(), "events": events })
        }
    };
    let mut log = crate::audit::AuditLog::open(&cfg.audit.path)
        .map_err(|e| Error::Invalid(format!("[audit] {e}")))?;
    log.append("lock_test", fields)
        .map_err(|e| Error::Invalid(format!("[audit] {e}")))?;
    let (unlocked_for, interrupted) = result?;
    shutdown
        .map_err(|e| Error::Invalid(format!("[lock] relocking at the end of the test: {e}")))?;
    Ok(PulseReport {
        output: description,
        pulse: door_cfg.pulse,
        unlocked_for,
        events,
        interrupted,
    })
}

fn pulse(door: &DoorController, pulse: Duration, stop: &AtomicBool) -> Result<(Duration, bool)> {
    let health = healthy(door, "does not follow the commanded level before the test")?;
    let t0 = Instant::now();
    let pulses_before = health.unlocks;
    door.unlock()
        .map_err(|e| Error::Invalid(format!("[lock] {e}")))?;
    let limit = pulse + Duration::from_secs(2);
    loop {
        if stop.load(Ordering::SeqCst) {
            door.lock_now()
                .map_err(|e| Error::Invalid(format!("[lock] {e}")))?;
            return Ok((t0.elapsed(), true));
        }
        // The door thread applies the command asynchronously: done once it has started this
        // pulse and is back to locked.
        let h = door.health();
        if h.unlocks > pulses_before && h.state == DoorState::Locked {
            break;
        }
        if t0.elapsed() > limit {
            return Err(Error::Invalid(format!(
                "[lock] the door thread did not relock {:?} after the unlock command \
                 (pulse {pulse:?}); this is a bug: report it with the log",
                t0.elapsed()
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = t0.elapsed();
    healthy(
        door,
        "failed during the pulse (check the wiring and the permissions named here)",
    )?;
    Ok((t, false))
}

/// The controller's health, or an error naming the output, `what` went wrong and the last fault.
fn healthy(door: &DoorController, what: &str) -> Result<crate::door::controller::Health> {
    let h = door.health();
    if h.is_ok() {
        return Ok(h);
    }
    Err(Error::Invalid(format!(
        "[lock] {} {what}: {}",
        h.output,
        h.last_error.as_deref().unwrap_or("unknown fault")
    )))
}

fn event_name(kind: &DoorEventKind) -> String {
    match kind {
        DoorEventKind::Unlocked => "unlocked".into(),
        DoorEventKind::Relocked => "relocked".into(),
        DoorEventKind::ExitRequest => "exit_request".into(),
        DoorEventKind::DoorOpened => "door_opened".into(),
        DoorEventKind::DoorClosed => "door_closed".into(),
        DoorEventKind::ForcedOpen => "forced_open".into(),
        DoorEventKind::OutputFault(e) => format!("output_fault: {e}"),
        DoorEventKind::OutputRecovered => "output_recovered".into(),
        DoorEventKind::InputFault(e) => format!("input_fault: {e}"),
    }
}
