//! `facegate lock test` (the installer's wiring check) and `facegate lock safe` (the relay to
//! its safe level, the unit's `ExecStopPost=`).
//!
//! `lock test` opens the lock output the configuration names, exactly as the daemon does (both
//! ask [`crate::assemble`]; relay driven to the safe state first), sends one normal unlock
//! pulse through the [`DoorController`], waits for the relock and reports what the controller
//! saw. The installer watches the relay and the door while it runs.
//!
//! The daemon must be stopped first: a GPIO line has one owner at a time, and the audit log one
//! writer (`facegate lock test` refuses while the daemon holds the state lock,
//! [`statelock`](crate::statelock)). SIGINT/SIGTERM during
//! the pulse relock the door before the command exits. The test is written to the audit log
//! (`lock_test`), like every other movement of the door.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use clap::Subcommand;
use serde_json::json;

use super::{audit_append, stop_on_signals, writer_lock, EXIT_NO};
use crate::audit::Event;
use crate::config::{Config, SafeStateConfig};
use crate::door::controller::{DoorController, DoorEventKind, DoorState};
use crate::error::{Error, Result};

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Pulse the configured relay once, as an unlock would, and relock (stop the daemon first;
    /// audited)
    Test {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Drive the configured relay to its safe (de-energised) level and nothing else: no models,
    /// no store, no camera. The unit runs it after every exit of the daemon (ExecStopPost=);
    /// audited when the audit log can be written
    Safe {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// Runs `facegate lock test|safe`.
pub(super) fn run(cmd: LockCommand) -> Result<u8> {
    match cmd {
        LockCommand::Test { config } => {
            let _lock = writer_lock(&config, "lock test")?;
            lock_test(&config)
        }
        LockCommand::Safe { config } => lock_safe(&config),
    }
}

/// `facegate lock test`: the installer's wiring check.
fn lock_test(config: &Path) -> Result<u8> {
    let cfg = Config::load(config)?;
    println!("lock test: {}", describe_safe_state(&cfg));
    println!(
        "sending one unlock pulse of {} ms; watch the relay and the door",
        cfg.lock.unlock_ms
    );
    let r = pulse_once(&cfg)?;
    println!("output: {}", r.output);
    println!("events: {}", r.events.join(", "));
    if r.interrupted {
        println!(
            "interrupted: relocked after {} ms; the relay is at the safe state",
            r.unlocked_for.as_millis()
        );
        return Ok(EXIT_NO);
    }
    println!(
        "OK: unlocked for {} ms (configured {} ms), relocked, and the relay is now de-energised \
         (the door's safe state). If the door did not open exactly once, active_low or safe_state \
         in [lock] does not match the wiring.",
        r.unlocked_for.as_millis(),
        r.pulse.as_millis()
    );
    Ok(0)
}

/// `facegate lock safe`: the relay to its safe level, nothing else (the unit's ExecStopPost=).
fn lock_safe(config: &Path) -> Result<u8> {
    let cfg = Config::load(config)?;
    let r = drive_safe(&cfg)?;
    println!(
        "lock safe: {} de-energised ({})",
        r.output,
        describe_safe_state(&cfg)
    );
    match &r.audit {
        Ok(seq) => println!("audited: record {seq} in {}", cfg.audit.path.display()),
        Err(e) => eprintln!("warning: lock safe: {e}"),
    }
    Ok(0)
}

/// What one test pulse did.
#[derive(Debug, Clone)]
struct PulseReport {
    /// The output's description (backend, pin or line, active level).
    output: String,
    /// The configured pulse.
    pulse: Duration,
    /// From the unlock command to the relock the controller observed.
    unlocked_for: Duration,
    /// The controller's events, in order ("unlocked", "relocked", faults).
    events: Vec<String>,
    /// A signal cut the pulse short (the door was relocked at once).
    interrupted: bool,
}

/// The door's wiring in words, for the installer.
fn describe_safe_state(cfg: &Config) -> &'static str {
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
fn pulse_once(cfg: &Config) -> Result<PulseReport> {
    let stop = stop_on_signals()?;
    let output = crate::assemble::lock_output(cfg)?;
    let door_cfg = crate::assemble::door_config(cfg);
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
    audit_append(cfg, Event::LockTest, fields)?;
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
        DoorEventKind::OutputFault(e) | DoorEventKind::InputFault(e) => {
            format!("{}: {e}", kind.name())
        }
        DoorEventKind::ContactAtStart { open } => {
            format!("{}: {}", kind.name(), if *open { "open" } else { "closed" })
        }
        _ => kind.name().into(),
    }
}

/// What `facegate lock safe` did.
#[derive(Debug, Clone)]
struct SafeReport {
    /// The output's description.
    output: String,
    /// Whether the record went to the audit log, or why not.
    audit: std::result::Result<u64, String>,
}

/// `facegate lock safe`: opens the configured lock output and drives it to the safe
/// (de-energised) level, nothing else: no models, no store, no camera, so it works when the
/// daemon cannot start. The unit runs it after every exit of the daemon (`ExecStopPost=`), so
/// a SIGKILL, an OOM kill or an abort in the middle of a pulse cannot leave a fail-secure
/// strike energised (issue 10 finding 2).
///
/// De-energised is what a stopped daemon leaves, as on a power cut: locked for a fail-secure
/// strike, released for a fail-safe maglock (see [`controller`](crate::door::controller)).
///
/// The relay is driven first; then the action is audited (`lock_safe`, with systemd's
/// `$SERVICE_RESULT`, `$EXIT_CODE` and `$EXIT_STATUS` when set, so a kill of the daemon is on
/// record) if this process gets the state lock. An audit log that cannot be written, or a
/// daemon holding the lock, is reported but does not fail the command: the relay is what
/// matters here. Errors only when the relay could not be written.
fn drive_safe(cfg: &Config) -> Result<SafeReport> {
    let mut output = crate::assemble::lock_output(cfg)?;
    let description = output.describe();
    let mut attempts = 0;
    let mut last = None;
    for delay_ms in [0u64, 50, 100, 200, 400] {
        std::thread::sleep(Duration::from_millis(delay_ms));
        attempts += 1;
        match output.set_energised(false) {
            Ok(()) => {
                last = None;
                break;
            }
            Err(e) => {
                log::error!("lock safe: {e} (attempt {attempts})");
                last = Some(e);
            }
        }
    }
    drop(output);
    if let Some(e) = last {
        return Err(Error::Invalid(format!(
            "[lock] could not drive the safe level after {attempts} attempts: {e}"
        )));
    }
    let audit = audit_safe(cfg, &description, attempts);
    Ok(SafeReport {
        output: description,
        audit,
    })
}

fn audit_safe(cfg: &Config, output: &str, attempts: u32) -> std::result::Result<u64, String> {
    use crate::statelock::{LockFailure, StateLock};
    let _lock = StateLock::try_acquire(cfg, "lock safe").map_err(|f| match f {
        LockFailure::Held(m) => format!("not audited (the writer is running): {m}"),
        LockFailure::Other(m) => format!("not audited: {m}"),
    })?;
    let env = |k: &str| std::env::var(k).ok();
    let fields = json!({
        "output": output, "energised": false, "attempts": attempts,
        "service_result": env("SERVICE_RESULT"), "exit_code": env("EXIT_CODE"),
        "exit_status": env("EXIT_STATUS"),
    });
    let mut log =
        crate::audit::AuditLog::open_for_config(cfg).map_err(|e| format!("not audited: {e}"))?;
    log.append(Event::LockSafe, fields)
        .map_err(|e| format!("not audited: {e}"))
}
