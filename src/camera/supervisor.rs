//! Keeps a camera running: opens it, reads frames with a bounded wait, notices when it is lost
//! (error or stall), and reopens it with exponential backoff.
//!
//! # Mechanism
//! The [`Supervisor`] owns an `open` closure (so it can build a fresh source after a failure:
//! a V4L2 device after replug, a replay, a test double). The daemon calls
//! [`Supervisor::poll`] in its loop; each call returns within its `timeout` (plus at most one
//! frame decode, or one `open` call, which are milliseconds) with one [`CameraEvent`]:
//!
//! - `Frame`: a frame arrived.
//! - `Idle`: nothing in time (the camera is slow, or down and the next reopen is not due yet).
//! - `Lost(reason)`: the source failed (error from the device, failed open, or no frame for
//!   [`SupervisorConfig::stall_timeout`]). Reported once per outage, logged at `warn` as
//!   `camera_lost ...`; the door must stay locked and the systemd watchdog unpetted.
//! - `Restored`: a reopen succeeded after a loss (logged at `info` as `camera_restored ...`).
//! - `Finished`: a finite source (replay) ended; every later call returns it too.
//!
//! Reopen attempts are spaced by a backoff that starts at [`SupervisorConfig::initial_backoff`]
//! and doubles up to [`SupervisorConfig::max_backoff`] (0.5 s .. 30 s by default). It is reset to
//! the initial value only once a frame arrives, so a camera that opens but fails at once is not
//! hammered. Reopen waits happen inside `poll` calls, sliced to their timeouts: `poll` never
//! sleeps past its own deadline waiting for a reopen.
//!
//! # Failure modes
//! - An `open` that itself blocks (a kernel driver stuck in `open(2)`) blocks `poll`; V4L2 opens
//!   are non-blocking in practice.
//! - [`CameraError::Config`] from the source or from `open` is treated as a loss too (logged with
//!   its fix) and retried at the backoff pace: a permission fixed by an installer (`video` group,
//!   udev rule) then recovers without a restart.

use super::{CameraError, Frame, FrameSource};
use std::time::{Duration, Instant};

/// Builds a fresh source; called at start and after every loss.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn FrameSource>, CameraError> + Send>;

/// Reopen pacing and stall detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Wait before the first reopen after a loss.
    pub initial_backoff: Duration,
    /// Longest wait between reopens.
    pub max_backoff: Duration,
    /// No frame for this long counts as a lost camera.
    pub stall_timeout: Duration,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        SupervisorConfig {
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(5),
        }
    }
}

/// What one [`Supervisor::poll`] saw.
#[derive(Debug)]
pub enum CameraEvent {
    Frame(Frame),
    Idle,
    Lost(String),
    Restored,
    Finished,
}

/// Opens, watches and reopens a frame source. See the module documentation.
pub struct Supervisor {
    open: Opener,
    config: SupervisorConfig,
    source: Option<Box<dyn FrameSource>>,
    /// Last frame, or last successful open (stall clock origin).
    last_progress: Instant,
    /// When the next open may be tried (None: at once).
    next_attempt: Option<Instant>,
    backoff: Duration,
    /// Set while an outage is ongoing (Lost reported, Restored not yet).
    down_since: Option<Instant>,
    attempts: u32,
    finished: bool,
    losses: u64,
    last_name: String,
}

impl Supervisor {
    /// Nothing is opened until the first [`Supervisor::poll`].
    pub fn new(open: Opener, config: SupervisorConfig) -> Self {
        let initial = config.initial_backoff.max(Duration::from_millis(1));
        Supervisor {
            open,
            config: SupervisorConfig {
                initial_backoff: initial,
                max_backoff: config.max_backoff.max(initial),
                stall_timeout: config.stall_timeout,
            },
            source: None,
            last_progress: Instant::now(),
            next_attempt: None,
            backoff: initial,
            down_since: None,
            attempts: 0,
            finished: false,
            losses: 0,
            last_name: "camera".into(),
        }
    }

    /// True while a source is open and no loss is pending.
    pub fn is_up(&self) -> bool {
        self.source.is_some()
    }

    /// Number of losses so far (errors and stalls).
    pub fn losses(&self) -> u64 {
        self.losses
    }

    /// Delay that will follow the next failed reopen.
    pub fn current_backoff(&self) -> Duration {
        self.backoff
    }

    /// The open source's description, or the last one seen.
    pub fn describe(&self) -> String {
        self.source
            .as_ref()
            .map(|s| s.describe())
            .unwrap_or_else(|| self.last_name.clone())
    }

    /// Drops the source and schedules a reopen; returns the event to report.
    fn lose(&mut self, reason: String) -> CameraEvent {
        if let Some(src) = self.source.take() {
            self.last_name = src.describe();
        }
        let now = Instant::now();
        let wait = self.backoff;
        self.next_attempt = Some(now + wait);
        self.backoff = (self.backoff * 2).min(self.config.max_backoff);
        if self.down_since.is_none() {
            self.down_since = Some(now);
            self.losses += 1;
            log::warn!(
                "camera_lost source=\"{}\" reason=\"{reason}\" retry_in_ms={}",
                self.last_name,
                wait.as_millis()
            );
            CameraEvent::Lost(reason)
        } else {
            log::debug!(
                "camera reopen failed ({reason}); next attempt in {} ms",
                wait.as_millis()
            );
            CameraEvent::Idle
        }
    }

    /// Waits at most `timeout` for the next event (see [`CameraEvent`]).
    pub fn poll(&mut self, timeout: Duration) -> CameraEvent {
        if self.finished {
            return CameraEvent::Finished;
        }
        let deadline = Instant::now() + timeout;
        while self.source.is_none() {
            if let Some(event) = self.try_open(deadline) {
                return event;
            }
        }
        self.read_frame(deadline)
    }

    /// One (re)open attempt, once its backoff has passed (never waiting past `deadline`).
    /// `Some(event)` to report; `None` when the source is open (read it) or when the attempt
    /// failed quietly with time left (try again).
    fn try_open(&mut self, deadline: Instant) -> Option<CameraEvent> {
        let now = Instant::now();
        if let Some(at) = self.next_attempt {
            if at > now {
                if at > deadline {
                    std::thread::sleep(deadline.saturating_duration_since(now));
                    return Some(CameraEvent::Idle);
                }
                std::thread::sleep(at - now);
            }
        }
        self.attempts += 1;
        match (self.open)() {
            Ok(src) => self.opened(src),
            Err(CameraError::Finished) => {
                self.finished = true;
                Some(CameraEvent::Finished)
            }
            Err(e) => {
                let event = self.lose(e.to_string());
                let report = matches!(event, CameraEvent::Lost(_)) || Instant::now() >= deadline;
                report.then_some(event)
            }
        }
    }

    /// Takes a freshly opened source; `Restored` if it ends an outage.
    fn opened(&mut self, src: Box<dyn FrameSource>) -> Option<CameraEvent> {
        self.next_attempt = None;
        self.last_progress = Instant::now();
        self.last_name = src.describe();
        self.source = Some(src);
        let attempts = std::mem::take(&mut self.attempts);
        match self.down_since.take() {
            Some(since) => {
                log::info!(
                    "camera_restored source=\"{}\" down_ms={} attempts={attempts}",
                    self.last_name,
                    since.elapsed().as_millis(),
                );
                Some(CameraEvent::Restored)
            }
            None => {
                log::info!("camera open: {}", self.last_name);
                None
            }
        }
    }

    /// Reads the open source until `deadline`: a frame, nothing (or a stall), or a loss.
    fn read_frame(&mut self, deadline: Instant) -> CameraEvent {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Some(src) = self.source.as_mut() else {
            return CameraEvent::Idle;
        };
        match src.next_frame(remaining) {
            Ok(Some(frame)) => {
                self.last_progress = Instant::now();
                self.backoff = self.config.initial_backoff;
                CameraEvent::Frame(frame)
            }
            Ok(None) => {
                let quiet = self.last_progress.elapsed();
                if quiet >= self.config.stall_timeout {
                    return self.lose(format!(
                        "no frame for {:.1} s (stalled); check the cable and `dmesg`",
                        quiet.as_secs_f64()
                    ));
                }
                CameraEvent::Idle
            }
            Err(CameraError::Finished) => {
                self.finished = true;
                self.source = None;
                CameraEvent::Finished
            }
            Err(e) => self.lose(e.to_string()),
        }
    }
}
