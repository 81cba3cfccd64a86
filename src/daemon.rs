//! The door daemon: camera -> faces -> decision -> lock, with audit, signals and watchdog.
//!
//! One thread runs the loop below; the lock has its own thread ([`DoorController`]) so that
//! relocking never waits for a frame. Each turn waits at most `frame_timeout_ms` for a frame,
//! so signals and the watchdog are served even when the camera is dead.
//!
//! ```text
//!   Supervisor::poll ──Frame──> frame::evidence: detect ─> largest face ─> landmarks ─> align
//!        │ Lost/Restored          ─> quality ─(gates pass)─> encode ─> gallery.best_match
//!        v                        ─> access rules, liveness hook
//!   audit + lock_now                                   │ Evidence
//!                                                      v
//!                                   Policy::observe (gates, K of N, rate limit) ─> Decision
//!                                                      │ Unlock / Deny
//!                                                      v
//!                                       audit (durable) ─> DoorController::unlock
//! ```
//!
//! # Start order (issue 10 finding 2)
//!
//! [`Daemon::with_inputs`] first starts the [`DoorController`], which drives the relay to the
//! locked level (de-energised for a fail-secure strike), and installs the panic guard; only then
//! does it take the state lock ([`StateLock`]), open the audit log, load the models, decrypt
//! the store and start the watcher. Whatever fails after the first step, the relay has been
//! driven; the unit's `ExecStopPost=facegate lock safe` drives it again after any exit,
//! including SIGKILL and OOM kills, which run no code of ours.
//!
//! # When the audit log cannot be written (issue 10 finding 5)
//!
//! An unlock happens only after its decision record is durable. If the append fails (a full
//! disk, an I/O error), the daemon
//!
//! * refuses the unlock (no unaudited face unlock, ever), and queues a `decision` record with
//!   `reason: "audit_unavailable"`;
//! * raises an alarm: an `ALARM` line in the log at the first failure, `STATUS=` to systemd,
//!   [`Daemon::audit_fault`], and [`RunSummary::refused_unaudited`];
//! * keeps every record it could not write in memory (up to [`MAX_PENDING`], oldest dropped
//!   and counted) and retries at every later record, reopening the log if a failed write left
//!   it unusable; the first record that gets through is `audit_recovered` (the error, how
//!   many records were queued and lost), followed by the queued records, each with the time
//!   of its event as `time`, the moment its write failed in `queued_at`, and the write time in
//!   `logged` (see [`crate::audit`]);
//! * keeps running and keeps the exit button working: egress is life safety and must not
//!   depend on a disk; the button's records are queued like the rest. The watchdog is still
//!   petted: a restart cannot free a disk, and the door is locked and safe meanwhile.
//!
//! # Door events during start-up
//!
//! The door controller runs from the first step of the start, so the exit button works
//! during the model load (seconds on a slow board), but the audit log is written by the loop
//! only. What the door thread observed meanwhile (`exit_request`, `unlocked`, `relocked`,
//! `contact_at_start`, …) is written just **before** the `start` record, each with the time
//! it happened ([`DoorEvent::wall`](crate::door::controller::DoorEvent::wall); `logged` when
//! written more than a second later). Before `start`, because then `seq` follows the time of
//! the events (the records `open` writes, such as `audit_sealed`, already come before
//! `start`), and `start` keeps its meaning: the daemon is ready to recognise faces, with the
//! gallery, encoder and threshold it names; its `began` field is when the start began (the
//! door controller took the relay), so events between `began` and `start` are this start's.
//!
//! # Panics elsewhere (issue 10 finding 9)
//!
//! A panic in any thread trips the door controller's panic guard (relay de-energised, unlocks
//! refused). The loop checks [`DoorController::emergency`] every turn (at most
//! `frame_timeout_ms` apart), audits `emergency` with the panic's thread and message, stops
//! petting the watchdog and returns an error, so `facegate run` exits non-zero and systemd
//! restarts it.

use crate::assemble;
use crate::audit::{AuditError, AuditLog, Event};
use crate::camera::supervisor::{CameraEvent, Opener, Supervisor, SupervisorConfig};
use crate::config::Config;
use crate::door::controller::{DoorController, DoorInputs};
use crate::door::output::LockOutput;
use crate::door::panic_guard::install_panic_guard;
use crate::error::{Error, Result};
use crate::face::{FaceEngine, FaceModels};
use crate::frame::FrameTimes;
use crate::gallery::Gallery;
use crate::policy::{Decision, DenyReason, Evidence, Policy, PolicySettings};
use crate::statelock::StateLock;
use image::RgbImage;
use jiff::Timestamp;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use crate::frame::{LivenessCheck, NoLiveness};

/// MQTT events, commands and fleet enrollment (issue 14; the code lives in src/mqtt/).
#[path = "mqtt/hook.rs"]
mod mqtt_hook;

/// One unlock, for the run summary.
#[derive(Debug, Clone)]
pub struct UnlockRecord {
    pub person: String,
    pub distance: f32,
    /// Sequence number of the frame that completed the evidence.
    pub frame_seq: u64,
    /// Processing time of that frame, from its capture to the unlock command.
    pub latency: Duration,
}

/// What a run did (returned when it stops).
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub frames: u64,
    pub unlocks: Vec<UnlockRecord>,
    pub denials: u64,
    pub camera_losses: u64,
    /// Processing time per frame (detect to decision), for figures.
    pub processing: Vec<Duration>,
    /// Face unlocks refused because their decision record could not be made durable.
    pub refused_unaudited: u64,
}

/// Most audit records kept in memory while the log cannot be written.
pub const MAX_PENDING: usize = 1024;

pub struct Daemon {
    cfg: Config,
    models: std::sync::Arc<FaceModels>,
    engine: FaceEngine,
    gallery: Gallery,
    policy: Policy,
    door: DoorController,
    audit: AuditLog,
    camera: Supervisor,
    liveness: Box<dyn LivenessCheck>,
    /// USB enrollment watcher (`[gallery] watch`); imports run in its thread.
    enroll: Option<crate::enroll::watch::WatchHandle>,
    /// Where the per-visitor rate limit is kept across restarts (beside the audit log).
    limiter_path: std::path::PathBuf,
    /// The last audit error while records cannot be written (the alarm), else `None`.
    audit_fault: Option<String>,
    /// Records not written yet (with `queued_at`) and the time of their events, oldest first.
    pending: VecDeque<(Event, serde_json::Value, Timestamp)>,
    /// Records dropped from a full `pending` queue since the fault began.
    lost: u64,
    /// Face unlocks refused for want of a durable record (copied into the summary).
    refused_unaudited: u64,
    /// When the start began (the door controller took the relay): `began` of `start`.
    began: Timestamp,
    /// `[mqtt]`: the broker client and what it publishes (`None`: off).
    mqtt: Option<mqtt_hook::MqttHook>,
    /// One writer for the audit log and the store while the daemon runs (dropped last).
    _state_lock: StateLock,
}

impl Daemon {
    /// Builds the daemon from its parts (tests inject a simulated lock and a failing camera).
    pub fn new(cfg: Config, lock: Box<dyn LockOutput>, camera: Opener) -> Result<Daemon> {
        Daemon::with_inputs(cfg, lock, DoorInputs::default(), camera)
    }

    /// Like [`new`](Self::new), with a door contact and/or exit button.
    ///
    /// The relay is driven to the locked level before anything else (see the
    /// [module documentation](self#start-order-issue-10-finding-2)).
    pub fn with_inputs(
        cfg: Config,
        lock: Box<dyn LockOutput>,
        inputs: DoorInputs,
        camera: Opener,
    ) -> Result<Daemon> {
        let began = Timestamp::now();
        let door = DoorController::start_with_inputs(lock, assemble::door_config(&cfg), inputs)
            .map_err(|e| Error::Invalid(format!("[lock] {e}")))?;
        install_panic_guard(&door);
        let state_lock = StateLock::acquire(&cfg, "run")?;
        let audit =
            AuditLog::open_for_config(&cfg).map_err(|e| Error::Invalid(format!("[audit] {e}")))?;
        let models = FaceModels::load(&cfg.model_options())?;
        let gallery = assemble::enrol_from_config(&cfg, &models)?;
        let (gallery, enroll) = assemble::store_and_watcher(&cfg, &models, gallery)?;
        let engine = models.engine()?;
        let mqtt = cfg
            .mqtt
            .as_ref()
            .map(mqtt_hook::MqttHook::start)
            .transpose()?;
        let liveness = assemble::liveness_check(&cfg, &models)?;
        let camera = Supervisor::new(
            camera,
            SupervisorConfig {
                stall_timeout: Duration::from_secs_f64(cfg.camera.stall_timeout_s),
                ..SupervisorConfig::default()
            },
        );
        let mut policy = Policy::new(cfg.policy_settings());
        // The per-visitor rate limit survives restarts (issue 10, finding 12).
        let limiter = crate::policy::limiter_path(&cfg.audit.path);
        if let Err(e) = policy.load_limiter(&limiter) {
            log::error!("rate limiter: {e}");
        }
        Ok(Daemon {
            cfg,
            models,
            engine,
            gallery,
            policy,
            door,
            audit,
            camera,
            liveness,
            enroll,
            limiter_path: limiter,
            audit_fault: None,
            pending: VecDeque::new(),
            lost: 0,
            refused_unaudited: 0,
            began,
            mqtt,
            _state_lock: state_lock,
        })
    }

    /// Builds the daemon with the lock, inputs and camera the configuration names
    /// ([`assemble`]).
    pub fn from_config(cfg: Config) -> Result<Daemon> {
        let lock = assemble::lock_output(&cfg)?;
        let inputs = assemble::door_inputs(&cfg)?;
        let opener = assemble::camera_opener(&cfg);
        Daemon::with_inputs(cfg, lock, inputs, opener)
    }

    pub fn set_liveness(&mut self, check: Box<dyn LivenessCheck>) {
        self.liveness = check;
    }

    pub fn gallery(&self) -> &Gallery {
        &self.gallery
    }

    pub fn door(&self) -> &DoorController {
        &self.door
    }

    /// The audit alarm: `Some(error)` while records cannot be written (face unlocks are
    /// refused meanwhile), `None` when the log is healthy.
    pub fn audit_fault(&self) -> Option<&str> {
        self.audit_fault.as_deref()
    }

    /// Swaps in the gallery of a finished USB import and audits imports and rejections
    /// (never blocks: the import itself runs in the watcher thread).
    fn poll_enroll(&mut self) {
        let events = match &self.enroll {
            Some(w) => w.poll(),
            None => return,
        };
        for ev in events {
            let (name, fields) = ev.audit();
            let fields = fields.clone();
            self.audit(name, fields);
            if let crate::enroll::watch::WatchEvent::Imported { gallery, .. } = ev {
                log::info!("gallery swapped: {} people enrolled", gallery.len());
                self.gallery = gallery;
            }
        }
    }

    /// Appends a record of something that happens now; `true` when it (and every record
    /// queued before it) is durable. On failure the record is queued and the alarm raised
    /// (see the
    /// [module documentation](self#when-the-audit-log-cannot-be-written-issue-10-finding-5)).
    fn audit(&mut self, event: Event, fields: serde_json::Value) -> bool {
        self.audit_at(event, fields, Timestamp::now())
    }

    /// [`audit`](Self::audit) for an event that happened at `at` (the record's `time`).
    fn audit_at(&mut self, event: Event, fields: serde_json::Value, at: Timestamp) -> bool {
        if self.audit_fault.is_some() && !self.flush_pending() {
            self.mqtt_publish(event, &fields, None, at);
            self.queue(event, fields, at);
            return false;
        }
        match self.append_now(event, fields.clone(), at) {
            Ok(seq) => {
                self.mqtt_publish(event, &fields, Some(seq), at);
                true
            }
            Err(e) => {
                self.raise_alarm(&e);
                self.mqtt_publish(event, &fields, None, at);
                self.queue(event, fields, at);
                false
            }
        }
    }

    /// One append (of an event that happened at `at`); a log left unusable by an earlier
    /// failed write is reopened (it continues its chain from the last complete record) and
    /// tried once more.
    fn append_now(
        &mut self,
        event: Event,
        fields: serde_json::Value,
        at: Timestamp,
    ) -> std::result::Result<u64, AuditError> {
        let fields = self.with_liveness_state(fields);
        match self.audit.append_at(event, fields.clone(), at) {
            Err(AuditError::Broken { .. }) => {
                // Reopen with the same seal (the store shares it): one in-memory sealed state.
                self.audit = match self.audit.seal().cloned() {
                    Some(seal) => AuditLog::open_sealed(&self.cfg.audit.path, seal)?,
                    None => AuditLog::open(&self.cfg.audit.path)?,
                };
                self.audit.append_at(event, fields, at)
            }
            other => other,
        }
    }

    /// With presentation-attack detection off, every record says so (`"liveness": "off"`).
    fn with_liveness_state(&self, mut fields: serde_json::Value) -> serde_json::Value {
        if !self.liveness.enabled() {
            if let Some(map) = fields.as_object_mut() {
                map.entry("liveness").or_insert_with(|| json!("off"));
            }
        }
        fields
    }

    /// Writes `audit_recovered` and the queued records; `true` when all went through.
    fn flush_pending(&mut self) -> bool {
        let Some(fault) = self.audit_fault.clone() else {
            return true;
        };
        let recovered = json!({"error": fault, "queued": self.pending.len(), "lost": self.lost, "refused_unlocks": self.refused_unaudited});
        if let Err(e) = self.append_now(Event::AuditRecovered, recovered, Timestamp::now()) {
            self.raise_alarm(&e);
            return false;
        }
        log::warn!(
            "audit log {} is writable again; writing {} queued records ({} lost)",
            self.cfg.audit.path.display(),
            self.pending.len(),
            self.lost
        );
        self.audit_fault = None;
        self.lost = 0;
        while let Some((event, fields, at)) = self.pending.pop_front() {
            if let Err(e) = self.append_now(event, fields.clone(), at) {
                self.pending.push_front((event, fields, at));
                self.raise_alarm(&e);
                return false;
            }
        }
        if self.cfg.daemon.watchdog {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Status("running")]);
        }
        true
    }

    /// Keeps a record that could not be written (its event happened at `at`) for
    /// [`flush_pending`](Self::flush_pending), with the moment its write failed in `queued_at`.
    fn queue(&mut self, event: Event, mut fields: serde_json::Value, at: Timestamp) {
        if let serde_json::Value::Object(m) = &mut fields {
            m.insert(
                "queued_at".into(),
                json!(format!("{:.6}", Timestamp::now())),
            );
        }
        if self.pending.len() == MAX_PENDING {
            self.pending.pop_front();
            self.lost += 1;
        }
        self.pending.push_back((event, fields, at));
    }

    fn raise_alarm(&mut self, e: &AuditError) {
        let first = self.audit_fault.is_none();
        self.audit_fault = Some(e.to_string());
        if first {
            log::error!(
                "ALARM: {e}; face unlocks are refused until records can be written again (the \
                 exit button still works; records are kept in memory and retried)"
            );
            if self.cfg.daemon.watchdog {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Status(
                    "ALARM: the audit log cannot be written: face unlocks are refused",
                )]);
            }
        } else {
            log::error!("still failing: {e}");
        }
    }

    /// The panic guard tripped: audit it, release the door, and say why the daemon exits.
    fn emergency_exit(&mut self, summary: &RunSummary) -> Error {
        let what = self
            .door
            .health()
            .panic
            .unwrap_or_else(|| "a panic in this process".into());
        log::error!(
            "door controller in emergency release after {what}; exiting so that systemd restarts the daemon"
        );
        self.audit(
            Event::Emergency,
            json!({"panic": what, "frames": summary.frames, "unlocks": summary.unlocks.len()}),
        );
        if self.cfg.daemon.watchdog {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        }
        if let Err(e) = self.door.shutdown() {
            log::error!("asserting the safe state after the panic: {e}");
        }
        Error::Invalid(format!(
            "the door controller is in emergency release after {what}: the relay is de-energised \
             and the daemon exits so that systemd restarts it (Restart=always); report the panic \
             with the log"
        ))
    }

    /// Runs until `stop` is set, the replay ends, or `daemon.max_frames` frames were seen.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunSummary> {
        let mut summary = RunSummary::default();
        self.announce_start();
        let timeout = Duration::from_millis(self.cfg.camera.frame_timeout_ms);
        let mut watchdog = Watchdog::new(
            self.cfg.daemon.watchdog,
            Duration::from_secs_f64(self.cfg.camera.stall_timeout_s),
        );
        while !stop.load(Ordering::Relaxed) {
            let event = self.camera.poll(timeout);
            if let CameraEvent::Frame(_) = event {
                watchdog.frame_seen();
            }
            if !self.on_camera_event(event, &mut summary)? {
                break;
            }
            if self.door.emergency() {
                return Err(self.emergency_exit(&summary));
            }
            self.poll_enroll();
            self.audit_door_events();
            self.poll_mqtt(summary.frames);
            watchdog.pet();
            if self.cfg.daemon.max_frames > 0 && summary.frames >= self.cfg.daemon.max_frames {
                break;
            }
        }
        self.finish(summary)
    }

    /// Audits what the door thread observed since the last call, each record with the time
    /// its event happened.
    fn audit_door_events(&mut self) {
        for ev in self.door.drain_events() {
            self.audit_at(Event::Door, ev.kind.audit_fields(), ev.wall);
        }
    }

    /// Logs and audits what this run works with (after the door events of the start-up, see
    /// [Door events during start-up](self#door-events-during-start-up)), and tells systemd
    /// it is ready.
    fn announce_start(&mut self) {
        let settings: PolicySettings = self.policy.settings().clone();
        log::info!(
            "facegate: {} people enrolled ({} embeddings), encoder {} ({}), threshold {:.3}, {} of {} frames within {:?}; liveness: {}",
            self.gallery.len(),
            self.gallery.num_embeddings(),
            self.models.encoder.name,
            &self.models.encoder.sha256[..12],
            settings.threshold,
            settings.k,
            settings.n,
            settings.window,
            self.liveness.name()
        );
        if !self.liveness.enabled() {
            log::warn!("presentation-attack detection is OFF ([liveness] enabled = false): a printed photo or a screen of an enrolled person opens the door; every audit record says \"liveness\": \"off\"");
        }
        self.audit_door_events();
        self.audit(
            Event::Start,
            json!({"people": self.gallery.len(), "encoder_sha256": self.models.encoder.sha256, "threshold": settings.threshold, "liveness": self.liveness.name(), "began": format!("{:.6}", self.began)}),
        );
        if self.cfg.daemon.watchdog {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        }
    }

    /// Handles what the camera supervisor reported; `false` when the source has ended.
    fn on_camera_event(&mut self, event: CameraEvent, summary: &mut RunSummary) -> Result<bool> {
        match event {
            CameraEvent::Frame(frame) => {
                summary.frames += 1;
                let t0 = Instant::now();
                self.process(&frame.image, frame.seq, frame.captured, summary)?;
                summary.processing.push(t0.elapsed());
            }
            CameraEvent::Idle => {}
            CameraEvent::Lost(reason) => {
                summary.camera_losses += 1;
                log::warn!("camera_lost: {reason}");
                if let Err(e) = self.door.lock_now() {
                    log::error!("locking after camera loss: {e}");
                }
                self.audit(Event::CameraLost, json!({ "reason": reason }));
            }
            CameraEvent::Restored => {
                log::info!("camera_restored");
                self.audit(Event::CameraRestored, json!({}));
            }
            CameraEvent::Finished => return Ok(false),
        }
        Ok(true)
    }

    /// The end of a run: audits `stop` and drives the relay to its safe state.
    fn finish(&mut self, mut summary: RunSummary) -> Result<RunSummary> {
        if self.cfg.daemon.watchdog {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        }
        if self.door.emergency() {
            return Err(self.emergency_exit(&summary));
        }
        summary.refused_unaudited = self.refused_unaudited;
        // what the door did since the last loop turn, before `stop`
        self.audit_door_events();
        self.audit(
            Event::Stop,
            json!({ "frames": summary.frames, "unlocks": summary.unlocks.len() }),
        );
        if let Err(e) = self.door.shutdown() {
            log::error!("asserting the safe state at shutdown: {e}");
        }
        Ok(summary)
    }

    /// The policy's input for one frame: the shared per-frame path ([`crate::frame::evidence`])
    /// with this daemon's engine, gallery, quality gates and liveness hook.
    pub fn evidence(&mut self, img: &RgbImage) -> Result<Evidence> {
        crate::frame::evidence(
            &mut self.engine,
            &self.gallery,
            self.policy.settings(),
            self.liveness.as_mut(),
            img,
            &mut FrameTimes::default(),
        )
    }

    fn process(
        &mut self,
        img: &RgbImage,
        seq: u64,
        captured: Instant,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let evidence = self.evidence(img)?;
        let (decision, verdict) = self
            .policy
            .observe_in(Instant::now(), &evidence, &self.gallery);
        if let Err(e) = self.policy.save_limiter_if_changed(&self.limiter_path) {
            log::error!("rate limiter: {e}");
        }
        log::debug!("frame {seq}: {verdict:?} -> {decision:?}");
        match decision {
            Decision::Unlock {
                id,
                distance,
                frames,
            } => self.unlock(id, distance, frames, (seq, captured), summary),
            Decision::Deny {
                reason,
                id,
                distance,
            } => self.deny(&reason, id, distance, seq, summary),
            Decision::Hold { .. } | Decision::Wait => {}
        }
        Ok(())
    }

    /// Audits the unlock durably, then opens the door; without a durable record, no unlock.
    /// `(seq, captured)` name the frame that completed the evidence.
    fn unlock(
        &mut self,
        id: String,
        distance: f32,
        frames: usize,
        (seq, captured): (u64, Instant),
        summary: &mut RunSummary,
    ) {
        let durable = self.audit(
            Event::Decision,
            json!({"decision": "unlock", "person": id, "distance": distance, "frames": frames, "frame": seq, "liveness": self.liveness.name()}),
        );
        if !durable {
            // The unlock record is queued (written if the log recovers) as refused.
            if let Some((_, serde_json::Value::Object(f), _)) = self.pending.back_mut() {
                f.insert("decision".into(), json!("deny"));
                f.insert("reason".into(), json!("audit_unavailable"));
                f.insert("reason_code".into(), json!("audit_unavailable"));
            }
            self.refused_unaudited += 1;
            summary.denials += 1;
            log::error!(
                "ALARM: NOT unlocking for {id} (distance {distance:.3}): the decision \
                 record cannot be made durable ({})",
                self.audit_fault.as_deref().unwrap_or("unknown error")
            );
            return;
        }
        match self.door.unlock() {
            Ok(_) => {
                let latency = captured.elapsed();
                log::info!("UNLOCK for {id} (distance {distance:.3}, {frames} frames agreeing, frame {seq}, {:.0} ms after capture)", latency.as_secs_f64() * 1e3);
                summary.unlocks.push(UnlockRecord {
                    person: id,
                    distance,
                    frame_seq: seq,
                    latency,
                });
            }
            Err(e) => {
                log::error!("unlock for {id} failed: {e}");
                self.audit(Event::LockError, json!({ "error": e.to_string() }));
            }
        }
    }

    /// Logs and audits a denial.
    fn deny(
        &mut self,
        reason: &DenyReason,
        id: Option<String>,
        distance: Option<f32>,
        seq: u64,
        summary: &mut RunSummary,
    ) {
        summary.denials += 1;
        log::info!(
            "DENY: {reason} (nearest {}, distance {})",
            id.as_deref().unwrap_or("-"),
            distance.map_or("-".into(), |d| format!("{d:.3}"))
        );
        let mut record = json!({"decision": "deny", "reason": reason.to_string(), "reason_code": reason.code(), "nearest": id, "distance": distance, "frame": seq, "liveness": self.liveness.name()});
        if let DenyReason::PresentationAttack { score, .. } = reason {
            log::warn!("PRESENTATION ATTACK on {}: live score {} (a print or a screen of an enrolled person?)", id.as_deref().unwrap_or("-"), score.map_or("-".into(), |s| format!("{s:.3}")));
            record["liveness_score"] = json!(score);
        }
        self.audit(Event::Decision, record);
    }
}

/// The systemd watchdog, petted only while frames flow: a stuck camera gets the daemon
/// restarted.
struct Watchdog {
    enabled: bool,
    /// No frame for this long: stop petting.
    stall: Duration,
    last_frame: Option<Instant>,
    last_pet: Instant,
}

impl Watchdog {
    fn new(enabled: bool, stall: Duration) -> Self {
        Watchdog {
            enabled,
            stall,
            last_frame: None,
            last_pet: Instant::now() - Duration::from_secs(60),
        }
    }

    fn frame_seen(&mut self) {
        self.last_frame = Some(Instant::now());
    }

    /// Pets the watchdog (at most once a second) if a frame came within the stall time.
    fn pet(&mut self) {
        if self.enabled
            && self.last_frame.is_some_and(|t| t.elapsed() < self.stall)
            && self.last_pet.elapsed() >= Duration::from_secs(1)
        {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
            self.last_pet = Instant::now();
        }
    }
}
