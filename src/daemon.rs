//! The door daemon: camera -> faces -> decision -> lock, with audit, signals and watchdog.
//!
//! One thread runs the loop below; the lock has its own thread ([`DoorController`]) so that
//! relocking never waits for a frame. Each turn waits at most `frame_timeout_ms` for a frame,
//! so signals and the watchdog are served even when the camera is dead.
//!
//! ```text
//!   Supervisor::poll ──Frame──> detect ─> landmarks ─> align ─> quality gates
//!        │ Lost/Restored                          │ pass
//!        v                                        v
//!   audit + lock_now                     encode ─> gallery.best_match ─> access rules
//!                                                        │
//!                                   liveness hook ─> Policy::observe ─> Decision
//!                                                        │ Unlock / Deny
//!                                                        v
//!                                         audit (durable) ─> DoorController::unlock
//! ```

use crate::audit::AuditLog;
use crate::camera::replay::{Pacing, ReplaySource};
use crate::camera::supervisor::{CameraEvent, Opener, Supervisor, SupervisorConfig};
use crate::camera::v4l2::{V4l2Config, V4l2Source};
use crate::camera::{CameraError, FrameSource};
use crate::config::{CameraKind, Config, LockBackend, SafeStateConfig};
use crate::door::controller::{
    install_panic_guard, DoorConfig, DoorController, DoorInputs, SafeState,
};
use crate::door::lock::LockOutput;
use crate::door::policy::{Decision, Evidence, Liveness, Policy, PolicySettings};
use crate::error::{Error, Result};
use crate::face::quality::Quality;
use crate::face::{FaceEngine, FaceModels};
use crate::gallery::{Gallery, Person};
use image::RgbImage;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The presentation-attack-detection hook the policy consults for every face.
pub trait LivenessCheck: Send {
    fn check(&mut self, frame: &RgbImage, face_box: &crate::face::detect::Detection) -> Liveness;
    fn name(&self) -> &str;
}

/// The default: no presentation-attack detection. It says so, at start and in every audited
/// decision (`liveness: "unchecked"`): a printed photo or a phone screen of an enrolled person
/// is NOT rejected by this build.
pub struct NoLiveness;

impl LivenessCheck for NoLiveness {
    fn check(&mut self, _: &RgbImage, _: &crate::face::detect::Detection) -> Liveness {
        Liveness::Unchecked
    }
    fn name(&self) -> &str {
        "none"
    }
}

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
}

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
}

/// The door controller's settings from `[lock]`.
pub fn door_config(cfg: &Config) -> DoorConfig {
    DoorConfig {
        safe_state: match cfg.lock.safe_state {
            SafeStateConfig::Locked => SafeState::Locked,
            SafeStateConfig::Unlocked => SafeState::Unlocked,
        },
        pulse: Duration::from_millis(cfg.lock.unlock_ms),
        max_pulse: Duration::from_millis(cfg.lock.max_unlock_ms),
        ..DoorConfig::default()
    }
}

/// The lock output the configuration asks for.
pub fn lock_output(cfg: &Config) -> Result<Box<dyn LockOutput>> {
    let l = &cfg.lock;
    let err = |e: crate::door::lock::LockError| Error::Invalid(format!("[lock] {e}"));
    Ok(match l.backend {
        LockBackend::Simulated => {
            Box::new(crate::door::sim::SimulatedOutput::new("simulated relay"))
        }
        LockBackend::Rppal => Box::new(
            crate::door::rppal_out::RppalOutput::new(l.pin.expect("validated"), l.active_low)
                .map_err(err)?,
        ),
        LockBackend::Gpiocdev => {
            let line = l.line.as_deref().expect("validated");
            let spec = match (&l.chip, line.parse::<u32>()) {
                (Some(chip), Ok(offset)) => crate::door::gpiocdev_out::LineSpec::ChipOffset {
                    chip: chip.clone(),
                    offset,
                },
                _ => crate::door::gpiocdev_out::LineSpec::Name(line.to_string()),
            };
            Box::new(
                crate::door::gpiocdev_out::GpiocdevOutput::new(&spec, l.active_low).map_err(err)?,
            )
        }
    })
}

/// The door contact and exit button the configuration names (GPIO character-device lines).
pub fn door_inputs(cfg: &Config) -> Result<DoorInputs> {
    use crate::door::gpiocdev_out::{GpiocdevInput, LineSpec, Pull};
    let l = &cfg.lock;
    let pull = if l.inputs_active_low {
        Pull::Up
    } else {
        Pull::Down
    };
    let open = |line: &Option<String>| -> Result<Option<Box<dyn crate::door::lock::DoorInput>>> {
        match line {
            None => Ok(None),
            Some(name) => {
                let spec: LineSpec = name
                    .parse()
                    .map_err(|e| Error::Invalid(format!("[lock] input line {name:?}: {e}")))?;
                let input = GpiocdevInput::new(&spec, l.inputs_active_low, pull)
                    .map_err(|e| Error::Invalid(format!("[lock] {e}")))?;
                Ok(Some(Box::new(input)))
            }
        }
    };
    Ok(DoorInputs {
        door_contact: open(&l.door_contact)?,
        exit_button: open(&l.exit_button)?,
    })
}

/// The camera opener the configuration asks for.
pub fn camera_opener(cfg: &Config) -> Opener {
    let c = cfg.camera.clone();
    Box::new(
        move || -> std::result::Result<Box<dyn FrameSource>, CameraError> {
            match c.source {
                CameraKind::Replay => {
                    let pacing = if c.replay_realtime {
                        Pacing::RealTime {
                            fps: f64::from(c.fps),
                        }
                    } else {
                        Pacing::EveryFrame
                    };
                    let dir = c.replay_dir.as_ref().expect("validated");
                    Ok(Box::new(ReplaySource::open(dir, pacing, c.replay_loop)?))
                }
                CameraKind::V4l2 => Ok(Box::new(V4l2Source::open(&V4l2Config {
                    device: c.device.clone(),
                    width: c.width,
                    height: c.height,
                    fps: c.fps,
                    ..V4l2Config::default()
                })?)),
            }
        },
    )
}

/// Enrols the configured people (one-shot: their photos' embeddings are the gallery).
pub fn enrol_from_config(cfg: &Config, models: &std::sync::Arc<FaceModels>) -> Result<Gallery> {
    let mut gallery = match &cfg.gallery.photos_dir {
        Some(dir) => crate::cli::gallery_from_dir(models, dir)?,
        None => Gallery::new(),
    };
    let mut engine = models.engine()?;
    for p in &cfg.gallery.people {
        let mut embeddings = Vec::new();
        for photo in &p.photos {
            let img = crate::imageio::load_rgb(photo)?;
            let faces = engine.faces(&img)?;
            match faces.len() {
                0 => {
                    return Err(Error::NoFace {
                        path: photo.clone(),
                    })
                }
                1 => embeddings.push(faces[0].embedding),
                n => {
                    return Err(Error::Invalid(format!(
                    "{}: {n} faces in an enrollment photo of {}; use a photo of that person alone",
                    photo.display(),
                    p.id
                )))
                }
            }
        }
        gallery.upsert(Person {
            id: p.id.clone(),
            name: if p.name.is_empty() {
                p.id.clone()
            } else {
                p.name.clone()
            },
            embeddings,
            access: p.access(),
        });
    }
    Ok(gallery)
}

impl Daemon {
    /// Builds the daemon from its parts (tests inject a simulated lock and a failing camera).
    pub fn new(cfg: Config, lock: Box<dyn LockOutput>, camera: Opener) -> Result<Daemon> {
        Daemon::with_inputs(cfg, lock, DoorInputs::default(), camera)
    }

    /// Like [`new`](Self::new), with a door contact and/or exit button.
    pub fn with_inputs(
        cfg: Config,
        lock: Box<dyn LockOutput>,
        inputs: DoorInputs,
        camera: Opener,
    ) -> Result<Daemon> {
        let models = FaceModels::load(&cfg.model_options())?;
        let gallery = enrol_from_config(&cfg, &models)?;
        let (gallery, enroll) = crate::enroll::watch::start_for_daemon(&cfg, &models, gallery)?;
        let engine = models.engine()?;
        let door = DoorController::start_with_inputs(lock, door_config(&cfg), inputs)
            .map_err(|e| Error::Invalid(format!("[lock] {e}")))?;
        install_panic_guard(&door);
        let audit =
            AuditLog::open_for_config(&cfg).map_err(|e| Error::Invalid(format!("[audit] {e}")))?;
        let camera = Supervisor::new(
            camera,
            SupervisorConfig {
                stall_timeout: Duration::from_secs_f64(cfg.camera.stall_timeout_s),
                ..SupervisorConfig::default()
            },
        );
        let policy = Policy::new(cfg.policy_settings());
        Ok(Daemon {
            cfg,
            models,
            engine,
            gallery,
            policy,
            door,
            audit,
            camera,
            liveness: Box::new(NoLiveness),
            enroll,
        })
    }

    /// Builds the daemon with the lock and camera the configuration names.
    pub fn from_config(cfg: Config) -> Result<Daemon> {
        let lock = lock_output(&cfg)?;
        let inputs = door_inputs(&cfg)?;
        let opener = camera_opener(&cfg);
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

    fn audit(&mut self, event: &str, fields: serde_json::Value) {
        if let Err(e) = self.audit.append(event, fields) {
            log::error!("audit log {}: {e}", self.cfg.audit.path.display());
        }
    }

    /// Runs until `stop` is set, the replay ends, or `daemon.max_frames` frames were seen.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<RunSummary> {
        let mut summary = RunSummary::default();
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
        if self.liveness.name() == "none" {
            log::warn!("no presentation-attack detection is installed: a photo or screen of an enrolled person is not rejected");
        }
        self.audit(
            "start",
            json!({"people": self.gallery.len(), "encoder_sha256": self.models.encoder.sha256, "threshold": settings.threshold, "liveness": self.liveness.name()}),
        );
        let watchdog = self.cfg.daemon.watchdog;
        if watchdog {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Ready]);
        }
        let timeout = Duration::from_millis(self.cfg.camera.frame_timeout_ms);
        let stall = Duration::from_secs_f64(self.cfg.camera.stall_timeout_s);
        let mut last_frame: Option<Instant> = None;
        let mut last_pet = Instant::now() - Duration::from_secs(60);
        while !stop.load(Ordering::Relaxed) {
            match self.camera.poll(timeout) {
                CameraEvent::Frame(frame) => {
                    summary.frames += 1;
                    last_frame = Some(Instant::now());
                    let t0 = Instant::now();
                    self.process(&frame.image, frame.seq, frame.captured, &mut summary)?;
                    summary.processing.push(t0.elapsed());
                }
                CameraEvent::Idle => {}
                CameraEvent::Lost(reason) => {
                    summary.camera_losses += 1;
                    log::warn!("camera_lost: {reason}");
                    if let Err(e) = self.door.lock_now() {
                        log::error!("locking after camera loss: {e}");
                    }
                    self.audit("camera_lost", json!({ "reason": reason }));
                }
                CameraEvent::Restored => {
                    log::info!("camera_restored");
                    self.audit("camera_restored", json!({}));
                }
                CameraEvent::Finished => break,
            }
            self.poll_enroll();
            for ev in self.door.drain_events() {
                self.audit("door", json!({ "event": format!("{:?}", ev.kind) }));
            }
            // Pet the watchdog only while frames flow: a stuck camera gets us restarted.
            if watchdog
                && last_frame.is_some_and(|t| t.elapsed() < stall)
                && last_pet.elapsed() >= Duration::from_secs(1)
            {
                let _ = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]);
                last_pet = Instant::now();
            }
            if self.cfg.daemon.max_frames > 0 && summary.frames >= self.cfg.daemon.max_frames {
                break;
            }
        }
        if watchdog {
            let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
        }
        self.audit(
            "stop",
            json!({ "frames": summary.frames, "unlocks": summary.unlocks.len() }),
        );
        if let Err(e) = self.door.shutdown() {
            log::error!("asserting the safe state at shutdown: {e}");
        }
        Ok(summary)
    }

    fn process(
        &mut self,
        img: &RgbImage,
        seq: u64,
        captured: Instant,
        summary: &mut RunSummary,
    ) -> Result<()> {
        let detections = self.engine.detect(img)?;
        let largest = detections
            .iter()
            .max_by(|a, b| (a.width * a.height).total_cmp(&(b.width * b.height)));
        let evidence = match largest {
            None => Evidence::NoFace,
            Some(det) => {
                let lm = self.engine.landmarks(img, det);
                let chip = self.engine.align(img, &lm);
                let quality = Quality::measure(&lm, chip);
                let s = self.policy.settings();
                let usable = quality.eye_distance_px >= s.min_eye_distance_px
                    && quality.yaw.abs() <= s.max_yaw
                    && quality.sharpness >= s.min_sharpness;
                let (best, access) = if usable {
                    let e = self.engine.encode_chip()?;
                    let best = self.gallery.best_match(&e);
                    let now = jiff::ZonedDateTime::now();
                    let access = best
                        .as_ref()
                        .and_then(|m| self.gallery.get(&m.id))
                        .map_or(Ok(()), |p| p.access.check(&now));
                    (best, access)
                } else {
                    (None, Ok(()))
                };
                Evidence::Face {
                    quality,
                    liveness: self.liveness.check(img, det),
                    best,
                    access,
                }
            }
        };
        let (decision, verdict) = self.policy.observe(Instant::now(), &evidence);
        log::debug!("frame {seq}: {verdict:?} -> {decision:?}");
        match decision {
            Decision::Unlock {
                id,
                distance,
                frames,
            } => {
                // The record is durable before the door opens.
                self.audit(
                    "decision",
                    json!({"decision": "unlock", "person": id, "distance": distance, "frames": frames, "frame": seq, "liveness": self.liveness.name()}),
                );
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
                        self.audit("lock_error", json!({ "error": e.to_string() }));
                    }
                }
            }
            Decision::Deny {
                reason,
                id,
                distance,
            } => {
                summary.denials += 1;
                log::info!(
                    "DENY: {reason} (nearest {}, distance {})",
                    id.as_deref().unwrap_or("-"),
                    distance.map_or("-".into(), |d| format!("{d:.3}"))
                );
                self.audit(
                    "decision",
                    json!({"decision": "deny", "reason": reason, "nearest": id, "distance": distance, "frame": seq, "liveness": self.liveness.name()}),
                );
            }
            Decision::Hold { .. } | Decision::Wait => {}
        }
        Ok(())
    }
}
