//! Door controller behaviour on the simulated relay: pulses, clamping, extension, shutdown,
//! the panic guard, write retries and the door inputs.

use crate::common;
use std::time::{Duration, Instant};

use facegate::door::controller::{
    ControllerError, DoorConfig, DoorController, DoorEventKind, DoorInputs, SafeState,
    HARD_MAX_PULSE,
};
use facegate::door::input::SimulatedInput;
use facegate::door::output::sim::{SimulatedOutput, TransitionLog};
use facegate::door::panic_guard::install_panic_guard;

const MS: Duration = Duration::from_millis(1);
/// Scheduling slack allowed on this shared 2-core machine.
const SLACK: Duration = Duration::from_millis(80);
/// The deadline runs from the request; the relay is energised a moment later (the door thread
/// wakes up and writes), so a pulse may measure a little shorter than requested, never longer.
const EARLY: Duration = Duration::from_millis(20);

fn config(safe_state: SafeState, pulse_ms: u32, max_ms: u32) -> DoorConfig {
    DoorConfig {
        safe_state,
        pulse: pulse_ms * MS,
        max_pulse: max_ms * MS,
        debounce: 20 * MS,
    }
}

fn start(cfg: DoorConfig) -> (DoorController, TransitionLog) {
    let out = SimulatedOutput::new("test door");
    let log = out.log();
    let door = DoorController::start(Box::new(out), cfg).expect("start");
    (door, log)
}

/// Lengths of the periods in which the door was *unlocked* (energised for fail-secure,
/// de-energised for fail-safe), once the door is locked again.
fn unlocked_periods(log: &TransitionLog, safe: SafeState) -> Vec<Duration> {
    let unlocked_level = safe.energised_for(true);
    let t = log.transitions();
    let mut out = Vec::new();
    for w in t.windows(2) {
        if w[0].energised == unlocked_level && w[1].energised != unlocked_level {
            out.push(w[1].at.duration_since(w[0].at));
        }
    }
    out
}

fn assert_len_near(actual: Duration, expected: Duration) {
    assert!(
        actual + EARLY >= expected && actual <= expected + SLACK,
        "pulse of {actual:?}, expected {expected:?} (- {EARLY:?} / + {SLACK:?})"
    );
}

#[test]
fn start_asserts_locked_fail_secure() {
    let (_door, log) = start(config(SafeState::Locked, 200, 1000));
    let t = log.transitions();
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(!t[0].energised, "fail-secure locked = de-energised");
}

#[test]
fn start_asserts_locked_fail_safe() {
    let (_door, log) = start(config(SafeState::Unlocked, 200, 1000));
    let t = log.transitions();
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(t[0].energised, "fail-safe locked = energised");
}

#[test]
fn one_unlock_gives_exactly_one_pulse_of_the_right_length() {
    for safe in [SafeState::Locked, SafeState::Unlocked] {
        let (door, log) = start(config(safe, 200, 1000));
        let grant = door.unlock_for(200 * MS).unwrap();
        assert!(!grant.extended && !grant.clamped);
        // The caller "stalls" (sleeps); the door thread relocks on its own.
        std::thread::sleep(400 * MS);
        let periods = unlocked_periods(&log, safe);
        assert_eq!(periods.len(), 1, "{safe:?}: {:?}", log.transitions());
        assert_len_near(periods[0], 200 * MS);
        assert_eq!(log.len(), 3, "lock, unlock, lock: {:?}", log.transitions());
        assert_eq!(log.energised(), Some(safe.energised_for(false)));
        assert!(door.health().is_ok());
        assert_eq!(door.health().unlocks, 1);
    }
}

#[test]
fn unlock_uses_the_configured_pulse() {
    let (door, log) = start(config(SafeState::Locked, 150, 1000));
    door.unlock().unwrap();
    std::thread::sleep(350 * MS);
    let periods = unlocked_periods(&log, SafeState::Locked);
    assert_eq!(periods.len(), 1);
    assert_len_near(periods[0], 150 * MS);
}

#[test]
fn unlock_is_clamped_to_the_configured_max() {
    let (door, log) = start(config(SafeState::Locked, 100, 250));
    let grant = door.unlock_for(Duration::from_secs(20)).unwrap();
    assert!(grant.clamped);
    std::thread::sleep(450 * MS);
    let periods = unlocked_periods(&log, SafeState::Locked);
    assert_eq!(periods.len(), 1);
    assert_len_near(periods[0], 250 * MS);
}

#[test]
fn config_max_beyond_the_hard_cap_is_refused() {
    let mut cfg = config(SafeState::Locked, 1000, 1000);
    cfg.max_pulse = HARD_MAX_PULSE + Duration::from_secs(1);
    let err = DoorController::start(Box::new(SimulatedOutput::new("x")), cfg).unwrap_err();
    assert!(matches!(err, ControllerError::Config(_)));
    assert!(err.to_string().contains("max_pulse"), "{err}");

    let cfg = config(SafeState::Locked, 2000, 1000);
    let err = cfg.validate().unwrap_err();
    assert!(err.to_string().contains("pulse"), "{err}");
}

#[test]
fn unlock_never_exceeds_the_hard_cap() {
    let mut cfg = config(SafeState::Locked, 1000, 1000);
    cfg.max_pulse = HARD_MAX_PULSE;
    let (door, _log) = start(cfg);
    let before = Instant::now();
    let grant = door.unlock_for(Duration::from_secs(3600)).unwrap();
    assert!(grant.clamped);
    assert!(grant.until <= Instant::now() + HARD_MAX_PULSE);
    assert!(grant.until >= before + HARD_MAX_PULSE);
    door.lock_now().unwrap();
}

#[test]
fn second_unlock_extends_to_the_later_deadline() {
    let (door, log) = start(config(SafeState::Locked, 200, 1000));
    let first = door.unlock_for(200 * MS).unwrap();
    std::thread::sleep(100 * MS);
    let second = door.unlock_for(200 * MS).unwrap();
    assert!(second.extended && second.until > first.until);
    // A shorter request does not shorten the pulse.
    let third = door.unlock_for(10 * MS).unwrap();
    assert!(!third.extended);
    assert_eq!(third.until, second.until);
    std::thread::sleep(400 * MS);
    let periods = unlocked_periods(&log, SafeState::Locked);
    assert_eq!(
        periods.len(),
        1,
        "one continuous pulse: {:?}",
        log.transitions()
    );
    assert_len_near(periods[0], 300 * MS);
}

#[test]
fn extension_never_passes_the_max_from_the_first_opening() {
    let (door, log) = start(config(SafeState::Locked, 200, 300));
    door.unlock_for(250 * MS).unwrap();
    std::thread::sleep(150 * MS);
    let g = door.unlock_for(250 * MS).unwrap();
    assert!(g.extended && g.clamped);
    std::thread::sleep(400 * MS);
    let periods = unlocked_periods(&log, SafeState::Locked);
    assert_eq!(periods.len(), 1);
    assert_len_near(periods[0], 300 * MS);
}

#[test]
fn lock_now_ends_the_pulse() {
    let (door, log) = start(config(SafeState::Locked, 200, 5000));
    door.unlock_for(Duration::from_secs(5)).unwrap();
    assert!(log.wait_for(true, Duration::from_secs(1)));
    std::thread::sleep(50 * MS);
    door.lock_now().unwrap();
    assert!(log.wait_for(false, Duration::from_secs(1)));
    let periods = unlocked_periods(&log, SafeState::Locked);
    assert_eq!(periods.len(), 1);
    assert!(periods[0] < Duration::from_secs(1));
}

fn shutdown_during_unlock(safe: SafeState, by_drop: bool) {
    let (mut door, log) = start(config(safe, 200, 5000));
    door.unlock_for(Duration::from_secs(5)).unwrap();
    assert!(log.wait_for(safe.energised_for(true), Duration::from_secs(1)));
    if by_drop {
        drop(door);
    } else {
        door.shutdown().unwrap();
        // Idempotent, and refuses new requests.
        door.shutdown().unwrap();
        assert!(matches!(door.unlock(), Err(ControllerError::Stopped)));
        assert!(door.health().stopped);
    }
    // The safe state is the de-energised relay: locked for fail-secure, released for fail-safe.
    assert_eq!(
        log.energised(),
        Some(false),
        "{safe:?}: {:?}",
        log.transitions()
    );
}

#[test]
fn shutdown_leaves_the_safe_state_fail_secure() {
    shutdown_during_unlock(SafeState::Locked, false);
}

#[test]
fn shutdown_leaves_the_safe_state_fail_safe() {
    shutdown_during_unlock(SafeState::Unlocked, false);
}

#[test]
fn drop_leaves_the_safe_state_fail_secure() {
    shutdown_during_unlock(SafeState::Locked, true);
}

#[test]
fn drop_leaves_the_safe_state_fail_safe() {
    shutdown_during_unlock(SafeState::Unlocked, true);
}

#[test]
fn idle_shutdown_fail_safe_releases_the_maglock() {
    let (mut door, log) = start(config(SafeState::Unlocked, 200, 1000));
    assert_eq!(log.energised(), Some(true));
    door.shutdown().unwrap();
    assert_eq!(log.energised(), Some(false));
    assert_eq!(log.len(), 2);
}

#[test]
fn panic_guard_releases_the_relay_on_a_panic_in_another_thread() {
    const NAME: &str = "panic_guard_releases_the_relay_on_a_panic_in_another_thread";
    if !common::is_child(NAME) {
        // The panic below trips every panic guard of the process, among them those of the
        // daemons other modules' tests run in parallel threads: run it in a process of its own.
        common::child_passes("door", NAME);
        return;
    }
    for safe in [SafeState::Locked, SafeState::Unlocked] {
        let (door, log) = start(config(safe, 200, 10_000));
        install_panic_guard(&door);
        if safe == SafeState::Locked {
            // Open the strike, so the release is visible.
            door.unlock_for(Duration::from_secs(10)).unwrap();
            assert!(log.wait_for(true, Duration::from_secs(1)));
        } else {
            assert_eq!(log.energised(), Some(true), "maglock holding");
        }
        let worker = std::thread::spawn(|| panic!("simulated bug in the frame loop"));
        assert!(worker.join().is_err());
        // The hook writes directly from the panicking thread: no waiting needed.
        assert_eq!(
            log.energised(),
            Some(false),
            "{safe:?}: {:?}",
            log.transitions()
        );
        // Latched: the door thread keeps it released and unlocks are refused.
        assert!(matches!(
            door.unlock_for(100 * MS),
            Err(ControllerError::Emergency)
        ));
        std::thread::sleep(50 * MS);
        assert_eq!(log.energised(), Some(false));
        assert!(door.health().emergency);
        assert!(!door.health().is_ok());
    }
}

#[test]
fn write_failures_are_retried_and_reported() {
    let (door, log) = start(config(SafeState::Locked, 400, 1000));
    log.fail_next_writes(2);
    door.unlock().unwrap();
    // Two failures (50 ms, then 100 ms of backoff), then success.
    assert!(log.wait_for(true, Duration::from_secs(1)));
    let h = door.health();
    assert_eq!(h.total_failures, 2);
    assert!(h.in_sync && h.last_error.is_none());
    let kinds: Vec<_> = door.drain_events().into_iter().map(|e| e.kind).collect();
    assert!(
        matches!(kinds[0], DoorEventKind::OutputFault(_)),
        "{kinds:?}"
    );
    assert!(kinds.contains(&DoorEventKind::OutputRecovered), "{kinds:?}");
    assert!(kinds.contains(&DoorEventKind::Unlocked), "{kinds:?}");
    assert!(log.wait_for(false, Duration::from_secs(1)));
}

#[test]
fn exit_button_requests_a_normal_pulse_and_ignores_glitches() {
    let (button, press) = SimulatedInput::new("exit");
    let out = SimulatedOutput::new("door");
    let log = out.log();
    let inputs = DoorInputs {
        exit_button: Some(Box::new(button)),
        door_contact: None,
    };
    let door = DoorController::start_with_inputs(
        Box::new(out),
        config(SafeState::Locked, 200, 1000),
        inputs,
    )
    .unwrap();
    std::thread::sleep(50 * MS);
    // A 3 ms glitch, shorter than the 20 ms debounce.
    press.press(3 * MS);
    std::thread::sleep(100 * MS);
    assert_eq!(log.len(), 1, "glitch ignored: {:?}", log.transitions());

    press.press(80 * MS);
    std::thread::sleep(400 * MS);
    let periods = unlocked_periods(&log, SafeState::Locked);
    assert_eq!(periods.len(), 1, "{:?}", log.transitions());
    assert_len_near(periods[0], 200 * MS);
    let kinds: Vec<_> = door.drain_events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&DoorEventKind::ExitRequest), "{kinds:?}");
}

#[test]
fn door_contact_reports_open_and_forced_open() {
    let (contact, door_state) = SimulatedInput::new("contact");
    let out = SimulatedOutput::new("door");
    let inputs = DoorInputs {
        door_contact: Some(Box::new(contact)),
        exit_button: None,
    };
    let door = DoorController::start_with_inputs(
        Box::new(out),
        config(SafeState::Locked, 200, 1000),
        inputs,
    )
    .unwrap();
    std::thread::sleep(50 * MS);
    assert_eq!(door.health().door_open, Some(false));
    // issue 10 finding 13: the state at start is reported (and audited by the daemon)
    let at_start: Vec<_> = door.drain_events().into_iter().map(|e| e.kind).collect();
    assert_eq!(
        at_start,
        [DoorEventKind::ContactAtStart { open: false }],
        "{at_start:?}"
    );
    door_state.set_active(true);
    std::thread::sleep(100 * MS);
    assert_eq!(door.health().door_open, Some(true));
    let kinds: Vec<_> = door.drain_events().into_iter().map(|e| e.kind).collect();
    assert!(kinds.contains(&DoorEventKind::ForcedOpen), "{kinds:?}");
    assert!(kinds.contains(&DoorEventKind::DoorOpened), "{kinds:?}");
}

#[test]
fn a_contained_panic_does_not_trip_the_panic_guard() {
    use facegate::panics::contain_panic;
    let log = TransitionLog::new();
    let out = SimulatedOutput::with_log("contained", log.clone());
    let door = DoorController::start(
        Box::new(out),
        DoorConfig {
            safe_state: SafeState::Unlocked,
            ..DoorConfig::default()
        },
    )
    .unwrap();
    install_panic_guard(&door);
    // like v4l's Drop panicking after an unplug: caught where it happens
    let r = contain_panic(|| panic!("stream drop failed"));
    assert!(r.is_err());
    std::thread::sleep(Duration::from_millis(100));
    // no emergency release: the maglock is still energised (locked), only the start transition
    let t = log.transitions();
    assert_eq!(t.len(), 1, "{t:?}");
    assert!(t[0].energised);
    // and the door is not latched in emergency: it still unlocks
    assert!(door.unlock_for(Duration::from_millis(50)).is_ok());
    assert!(log.wait_for(false, Duration::from_secs(2)));
}
