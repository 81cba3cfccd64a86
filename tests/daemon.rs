//! The door daemon end to end, through the same loop `facegate run` runs, with the real models,
//! a real recording (tests/fixtures/clip/hamilton) and the simulated lock.

mod common;

use common::{face, fixture};
use facegate::camera::replay::{FailingSource, Pacing, ReplaySource};
use facegate::camera::{CameraError, Frame, FrameSource};
use facegate::config::Config;
use facegate::daemon::Daemon;
use facegate::door::sim::{SimulatedOutput, TransitionLog};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PULSE_MS: u64 = 250;

/// A configuration enrolling `who` (id, photo), written into `dir`.
fn config(dir: &Path, who: &[(&str, &str)], extra: &str) -> Config {
    let mut people = String::new();
    for (id, photo) in who {
        people += &format!(
            "[[gallery.person]]\nid = \"{id}\"\nphotos = [\"{}\"]\n",
            face(photo).display()
        );
    }
    let text = format!(
        r#"
[camera]
source = "replay"
replay_dir = "{clip}"
replay_realtime = false

[models]
detector = "short_range"

[gallery]
{people}

[lock]
backend = "simulated"
safe_state = "locked"
unlock_ms = {PULSE_MS}

[audit]
path = "audit.jsonl"

[daemon]
watchdog = false
{extra}
"#,
        clip = fixture("clip/hamilton").display()
    );
    let path = dir.join("facegate.toml");
    std::fs::write(&path, text).unwrap();
    Config::load(&path).unwrap()
}

fn clip() -> Box<dyn FrameSource> {
    Box::new(ReplaySource::open(fixture("clip/hamilton"), Pacing::EveryFrame, false).unwrap())
}

/// After the recording ends, the camera stays up but shows nothing (the loop keeps running
/// until the test stops it, so a pulse is never cut short by the end of the replay).
struct ThenIdle(Box<dyn FrameSource>);

impl FrameSource for ThenIdle {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, CameraError> {
        match self.0.next_frame(timeout) {
            Err(CameraError::Finished) => {
                std::thread::sleep(timeout.min(Duration::from_millis(50)));
                Ok(None)
            }
            other => other,
        }
    }
    fn describe(&self) -> String {
        format!("{} then idle", self.0.describe())
    }
}

/// Runs the daemon until `done` says so (checked every 50 ms) or 60 s pass.
fn run_until(
    daemon: &mut Daemon,
    done: impl Fn() -> bool + Send + 'static,
) -> facegate::daemon::RunSummary {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let watcher = std::thread::spawn(move || {
        let t0 = Instant::now();
        while !done() && t0.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
        s.store(true, Ordering::Relaxed);
    });
    let summary = daemon.run(&stop).unwrap();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    summary
}

/// A daemon on the recording (then an idle camera), with a recorded simulated relay.
fn clip_daemon(cfg: Config) -> (Daemon, TransitionLog) {
    let log = TransitionLog::new();
    let out = SimulatedOutput::with_log("test relay", log.clone());
    let daemon = Daemon::new(
        cfg,
        Box::new(out),
        Box::new(|| Ok(Box::new(ThenIdle(clip())) as Box<dyn FrameSource>)),
    )
    .unwrap();
    (daemon, log)
}

#[test]
fn an_enrolled_person_gets_exactly_one_pulse_of_the_configured_length() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("lmm", "lin-manuel-miranda.png")], "");
    let (mut daemon, log) = clip_daemon(cfg);
    let l = log.clone();
    // stop once a pulse has ended and 500 ms more have passed without a second one
    let summary = run_until(&mut daemon, move || {
        let p = l.energised_periods();
        !p.is_empty()
            && l.energised() == Some(false)
            && p[0].0.elapsed() > Duration::from_millis(PULSE_MS + 500)
    });
    assert_eq!(summary.unlocks.len(), 1, "{summary:?}");
    let u = &summary.unlocks[0];
    assert_eq!(u.person, "lmm");
    assert!(u.distance < 0.47);
    // Miranda faces the camera from frame 14; the first 3 matching frames complete the evidence
    assert!(
        (20..=34).contains(&u.frame_seq),
        "unlock at frame {}",
        u.frame_seq
    );
    let periods = log.energised_periods();
    assert_eq!(periods.len(), 1, "{periods:?}");
    let ms = periods[0].1.as_millis() as u64;
    assert!(
        (PULSE_MS - 20..=PULSE_MS + 150).contains(&ms),
        "pulse {ms} ms"
    );
    // locked at start and at the end
    let t = log.transitions();
    assert!(!t[0].energised && !t.last().unwrap().energised);
    // the audit log holds the unlock decision and verifies
    let audit = dir.path().join("audit.jsonl");
    let report = facegate::audit::verify(&audit).unwrap();
    assert!(report.is_intact(), "{report:?}");
    let text = std::fs::read_to_string(&audit).unwrap();
    assert!(text.contains("\"decision\":\"unlock\"") && text.contains("\"person\":\"lmm\""));
}

#[test]
fn a_stranger_gets_no_pulse() {
    let dir = tempfile::tempdir().unwrap();
    // only the pianist is enrolled: Miranda's frames are a stranger's
    let cfg = config(dir.path(), &[("lacamoire", "alex-lacamoire.png")], "");
    let log = TransitionLog::new();
    let out = SimulatedOutput::with_log("test relay", log.clone());
    let mut daemon = Daemon::new(cfg, Box::new(out), Box::new(|| Ok(clip()))).unwrap();
    let summary = daemon.run(&AtomicBool::new(false)).unwrap();
    assert_eq!(summary.frames, 46);
    assert!(summary.unlocks.is_empty(), "{summary:?}");
    assert!(
        summary.denials >= 1,
        "the stranger's attempt is denied and audited"
    );
    assert!(log.energised_periods().is_empty());
    assert!(log.transitions().iter().all(|t| !t.energised));
}

/// Issue 10, finding 12: the rate limit follows the failing visitor across a restart. A
/// stranger's denial blocks *that face* (free_failures = 1), the state is saved beside the
/// audit log, and a restarted daemon holds the same stranger's frames (no new attempt is
/// judged) instead of starting from zero.
#[test]
fn a_blocked_stranger_stays_blocked_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "[policy]\nfree_failures = 1\nbackoff_s = 300.0\n";
    let run = || {
        let cfg = config(dir.path(), &[("lacamoire", "alex-lacamoire.png")], extra);
        let mut daemon = Daemon::new(
            cfg,
            Box::new(SimulatedOutput::new("test relay")),
            Box::new(|| Ok(clip())),
        )
        .unwrap();
        daemon.run(&AtomicBool::new(false)).unwrap()
    };
    let first = run();
    // two strangers in the recording: each denied once, then held
    assert_eq!(first.denials, 2, "{first:?}");
    let state = std::fs::read_to_string(dir.path().join("ratelimit.json")).unwrap();
    let state: facegate::door::policy::LimiterState = serde_json::from_str(&state).unwrap();
    assert_eq!(state.visitors.len(), 2);
    assert!(state.visitors.iter().all(|v| v.blocked_ms > 250_000));
    let second = run();
    assert!(second.unlocks.is_empty());
    assert_eq!(second.denials, 0, "the restart reset the block: {second:?}");
}

#[test]
fn a_camera_lost_mid_stream_keeps_the_door_locked_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &[("lmm", "lin-manuel-miranda.png")], "");
    let log = TransitionLog::new();
    let out = SimulatedOutput::with_log("test relay", log.clone());
    let opens = Arc::new(AtomicU32::new(0));
    let o = opens.clone();
    // first open: the camera dies after 16 frames (before Miranda faces it); then it works
    let opener = Box::new(move || -> Result<Box<dyn FrameSource>, CameraError> {
        if o.fetch_add(1, Ordering::SeqCst) == 0 {
            Ok(Box::new(FailingSource::lost_after(clip(), 16)))
        } else {
            Ok(Box::new(ThenIdle(clip())))
        }
    });
    let mut daemon = Daemon::new(cfg, Box::new(out), opener).unwrap();
    let l = log.clone();
    let summary = run_until(&mut daemon, move || {
        l.energised_periods().len() == 1 && l.energised() == Some(false)
    });
    assert_eq!(summary.camera_losses, 1);
    assert!(opens.load(Ordering::SeqCst) >= 2, "the camera was reopened");
    assert_eq!(
        summary.unlocks.len(),
        1,
        "works again after recovery: {summary:?}"
    );
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    let lost = text.find("camera_lost").expect("camera_lost audited");
    let restored = text
        .find("camera_restored")
        .expect("camera_restored audited");
    let unlock = text.find("\"decision\":\"unlock\"").unwrap();
    assert!(lost < restored && restored < unlock);
}

#[test]
fn stopping_during_an_unlock_leaves_the_door_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &[("lmm", "lin-manuel-miranda.png")], "");
    cfg.lock.unlock_ms = 5000; // a long pulse, interrupted by the stop
    let (mut daemon, log) = clip_daemon(cfg);
    let l = log.clone();
    // SIGTERM's handler sets this same flag: stop as soon as the door is open
    let summary = run_until(&mut daemon, move || l.energised() == Some(true));
    assert_eq!(summary.unlocks.len(), 1);
    let t = log.transitions();
    let last = t.last().unwrap();
    assert!(
        !last.energised,
        "relay released (fail-secure: locked) at shutdown"
    );
    let open_for = last.at.duration_since(t[t.len() - 2].at);
    assert!(
        open_for < Duration::from_millis(2000),
        "relocked {open_for:?} after opening, not after the 5 s pulse"
    );
}

#[test]
fn sigterm_stops_the_daemon_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let _ = config(dir.path(), &[("lmm", "lin-manuel-miranda.png")], "");
    // loop the recording in real time so the daemon runs until signalled
    let path = dir.path().join("facegate.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "replay_realtime = false",
        "replay_realtime = true\nreplay_loop = true\nfps = 10",
    );
    std::fs::write(&path, text).unwrap();
    let child = common::facegate_command()
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let pid = child.id().to_string();
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let last_relay = err
        .lines()
        .rev()
        .find(|l| l.contains("relay"))
        .unwrap_or_default();
    assert!(
        last_relay.contains("de-energised"),
        "last relay line: {last_relay}\n{err}"
    );
    assert!(err.contains("stopped after"), "{err}");
}

fn load_err(body: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p: PathBuf = dir.path().join("bad.toml");
    std::fs::write(&p, body).unwrap();
    Config::load(&p).unwrap_err().to_string()
}

const GOOD: &str = r#"
[camera]
source = "replay"
replay_dir = "frames"
[gallery]
photos_dir = "staff"
[lock]
backend = "simulated"
safe_state = "locked"
[audit]
path = "audit.jsonl"
"#;

#[test]
fn bad_config_values_give_errors_that_name_the_key_and_the_fix() {
    let cases: [(&str, &str, &[&str]); 8] = [
        (
            "unknown key",
            &GOOD.replace("[lock]", "[lock]\npinn = 17"),
            &["pinn", "unknown field"],
        ),
        (
            "rppal without pin",
            &GOOD.replace("\"simulated\"", "\"rppal\""),
            &["[lock]", "pin = "],
        ),
        (
            "gpiocdev without line",
            &GOOD.replace("\"simulated\"", "\"gpiocdev\""),
            &["[lock]", "line = "],
        ),
        (
            "k > n",
            &format!("{GOOD}[policy]\nk = 6\nn = 5\n"),
            &["[policy]", "k = 6"],
        ),
        (
            "threshold",
            &format!("{GOOD}[policy]\nthreshold = 2.0\n"),
            &["threshold", "facegate eval"],
        ),
        (
            "pulse over the hard cap",
            &GOOD.replace(
                "safe_state = \"locked\"",
                "safe_state = \"locked\"\nmax_unlock_ms = 60000",
            ),
            &["max_unlock_ms", "hard limit"],
        ),
        (
            "no safe state",
            &GOOD.replace("safe_state = \"locked\"", ""),
            &["safe_state"],
        ),
        (
            "nobody enrolled",
            &GOOD.replace("photos_dir = \"staff\"", ""),
            &["[gallery]", "photos_dir"],
        ),
    ];
    for (what, body, needles) in cases {
        let e = load_err(body);
        for n in needles {
            assert!(e.contains(n), "{what}: {e:?} lacks {n:?}");
        }
    }
    // and the documented configs load
    for f in ["config/demo.toml", "config/facegate.toml"] {
        Config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(f)).unwrap();
    }
}

#[test]
fn the_exit_button_opens_the_door_and_is_audited() {
    use facegate::door::controller::DoorInputs;
    use facegate::door::sim::SimulatedInput;
    let dir = tempfile::tempdir().unwrap();
    // nobody in the recording is enrolled: only the button can open the door
    let cfg = config(dir.path(), &[("lacamoire", "alex-lacamoire.png")], "");
    let log = TransitionLog::new();
    let out = SimulatedOutput::with_log("test relay", log.clone());
    let (button, handle) = SimulatedInput::new("exit button");
    let inputs = DoorInputs {
        door_contact: None,
        exit_button: Some(Box::new(button)),
    };
    let opener = Box::new(|| Ok(Box::new(ThenIdle(clip())) as Box<dyn FrameSource>));
    let mut daemon = Daemon::with_inputs(cfg, Box::new(out), inputs, opener).unwrap();
    let presser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        handle.press(Duration::from_millis(150));
    });
    let l = log.clone();
    let summary = run_until(&mut daemon, move || {
        l.energised_periods().len() == 1 && l.energised() == Some(false)
    });
    presser.join().unwrap();
    assert!(summary.unlocks.is_empty(), "no face unlock: {summary:?}");
    assert_eq!(log.energised_periods().len(), 1);
    let text = std::fs::read_to_string(dir.path().join("audit.jsonl")).unwrap();
    assert!(text.contains("ExitRequest"), "{text}");
}
