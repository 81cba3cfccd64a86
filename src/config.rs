//! The daemon's configuration: one TOML file whose sections mirror the pipeline (camera,
//! models, gallery, policy, lock, audit, daemon). Unknown keys are refused (a typo must not
//! silently fall back to a default on a door), and every value is checked once, at load, with
//! an error that names the key and the fix. `config/facegate.toml` documents every key.
//!
//! Serde reads the file as written (`ConfigFile`); [`Config::load`] checks it section by section
//! into typed values ([`CameraSource`], [`LockBackend`], [`LineSpec`],
//! [`DetectorChoice`](crate::face::DetectorChoice)), so nothing downstream parses or unwraps an
//! option again.

use crate::door::line::LineSpec;
use crate::error::{Error, Result};
use crate::face::liveness::LivenessChoice;
use crate::face::{DetectorChoice, ModelOptions};
use crate::models::ModelDir;
use crate::policy::PolicySettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A checked configuration: built only by [`Config::load`] (or [`Config::parse`]).
#[derive(Debug, Clone)]
pub struct Config {
    pub camera: CameraConfig,
    pub models: ModelsConfig,
    pub gallery: GalleryConfig,
    pub policy: PolicyConfig,
    pub lock: LockConfig,
    pub audit: AuditConfig,
    pub daemon: DaemonConfig,
    /// `[mqtt]` (issue 14): `None` when absent or `enabled = false`.
    pub mqtt: Option<crate::mqtt::MqttConfig>,
    pub liveness: LivenessConfig,
}

/// The file as written, before its checks.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    camera: CameraFile,
    #[serde(default)]
    models: ModelsConfig,
    gallery: GalleryConfig,
    #[serde(default)]
    policy: PolicyConfig,
    lock: LockFile,
    audit: AuditConfig,
    #[serde(default)]
    daemon: DaemonConfig,
    #[serde(default)]
    mqtt: crate::mqtt::config::MqttFile,
    #[serde(default)]
    liveness: LivenessConfig,
}

/// `[camera] source`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum CameraKind {
    V4l2,
    Replay,
}

/// `[camera] format`: `"auto"` (MJPEG if the camera offers it, else YUYV) or the name of one
/// [`PixelFormat`](crate::camera::decode::PixelFormat) (`"mjpeg"`, `"yuyv"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub struct FormatChoice(Option<crate::camera::decode::PixelFormat>);

impl FormatChoice {
    /// The format to ask the V4L2 driver for (`None`: auto, MJPEG if offered, else YUYV).
    pub fn requested(self) -> Option<crate::camera::decode::PixelFormat> {
        self.0
    }
}

impl TryFrom<String> for FormatChoice {
    type Error = String;

    fn try_from(name: String) -> std::result::Result<Self, String> {
        if name == "auto" {
            return Ok(FormatChoice(None));
        }
        crate::camera::decode::PixelFormat::from_config_name(&name)
            .map(|f| FormatChoice(Some(f)))
            .ok_or_else(|| {
                format!("unknown format \"{name}\": use \"auto\", \"mjpeg\" or \"yuyv\"")
            })
    }
}

/// `[camera]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CameraFile {
    source: CameraKind,
    #[serde(default = "default_device")]
    device: String,
    #[serde(default = "default_width")]
    width: u32,
    #[serde(default = "default_height")]
    height: u32,
    #[serde(default = "default_fps")]
    fps: u32,
    #[serde(default)]
    format: FormatChoice,
    replay_dir: Option<PathBuf>,
    #[serde(default = "yes")]
    replay_realtime: bool,
    #[serde(default)]
    replay_loop: bool,
    #[serde(default = "default_frame_timeout_ms")]
    frame_timeout_ms: u64,
    #[serde(default = "default_stall_s")]
    stall_timeout_s: f64,
}

/// Where frames come from.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraSource {
    /// A V4L2 camera: device path (`/dev/video0`) or card name.
    V4l2 { device: String },
    /// A directory of frames (JPEG/PNG, played in file-name order).
    Replay {
        dir: PathBuf,
        /// At `fps` in real time (frames are skipped when processing is slower), or every
        /// frame as fast as it is processed (tests).
        realtime: bool,
        /// Start again after the last frame.
        looped: bool,
    },
}

/// `[camera]`, checked.
#[derive(Debug, Clone)]
pub struct CameraConfig {
    pub source: CameraSource,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub format: FormatChoice,
    /// Longest wait for one frame before the loop checks signals and the watchdog.
    pub frame_timeout_ms: u64,
    /// No frame for this long means the camera is lost: reopen it.
    pub stall_timeout_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub dir: Option<PathBuf>,
    #[serde(default = "default_encoder")]
    pub encoder: String,
    /// The same default as the command line's `--detector` ([`DetectorChoice::default`]).
    #[serde(default)]
    pub detector: DetectorChoice,
    /// Flip averaging for every face, the door's frames too (twice the encoder time).
    #[serde(default)]
    pub flip_average: bool,
    /// Flip averaging for enrollment photos only (no per-frame cost).
    #[serde(default = "yes")]
    pub flip_enrolment: bool,
    /// Average enrollment photos' embeddings over jittered chips ([`crate::face::CHIP_JITTER`];
    /// no per-frame cost).
    #[serde(default = "yes")]
    pub jitter_enrolment: bool,
    /// Re-detect a face that is small in the frame on a crop around it before landmarking.
    #[serde(default = "yes")]
    pub refine_small: bool,
    /// A second landmark pass on the rectangle re-derived from the first landmarks.
    #[serde(default = "yes")]
    pub landmark_refit: bool,
    /// In that pass, average the landmarks over the rectangle and four shifted copies (off by
    /// default: see [`ModelOptions::landmark_jitter`]).
    #[serde(default)]
    pub landmark_jitter: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            encoder: default_encoder(),
            detector: DetectorChoice::default(),
            flip_average: false,
            flip_enrolment: true,
            jitter_enrolment: true,
            refine_small: true,
            landmark_refit: true,
            landmark_jitter: false,
        }
    }
}

/// `[liveness]`: presentation-attack detection (MiniFASNet, `src/face/liveness.rs`) on every
/// face that matched an enrolled person. On by default; turning it off is explicit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivenessConfig {
    /// `false` lets a printed photo or a screen of an enrolled person open the door; the daemon
    /// warns at every start and writes `"liveness": "off"` into every audit record.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `v2` (the default), `both` (v2 and v1se averaged) or `v1se` (not recommended).
    #[serde(default)]
    pub models: LivenessChoice,
    /// Live when the score is at least this [default: the models manifest's threshold for
    /// `models`, chosen on the development set: models/MODEL_CARD.md "Liveness"].
    pub threshold: Option<f32>,
    /// 1, or 2 to run the two models of `both` on two threads (boards have 4 cores).
    #[serde(default = "one_thread")]
    pub threads: usize,
}

impl Default for LivenessConfig {
    fn default() -> Self {
        LivenessConfig {
            enabled: true,
            models: LivenessChoice::default(),
            threshold: None,
            threads: one_thread(),
        }
    }
}

fn one_thread() -> usize {
    1
}

/// `[liveness]`: a threshold in (0, 1) and one or two threads.
fn check_liveness(l: &LivenessConfig, path: &Path) -> Result<()> {
    if let Some(t) = l.threshold {
        if !(t > 0.0 && t < 1.0) {
            return Err(invalid(path, "liveness", format!("threshold = {t} is not a live probability strictly between 0 and 1; remove it to use the models' measured default")));
        }
    }
    if !(1..=2).contains(&l.threads) {
        return Err(invalid(
            path,
            "liveness",
            format!(
                "threads = {}: use 1, or 2 with models = \"both\"",
                l.threads
            ),
        ));
    }
    Ok(())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GalleryConfig {
    /// Enrol at start from a directory of photos (one subdirectory per person): the demo and
    /// small installations without a signed-bundle workflow.
    pub photos_dir: Option<PathBuf>,
    /// Or list people here, each with photos and optional access rules.
    #[serde(default, rename = "person")]
    pub people: Vec<PersonConfig>,
    /// Encrypted gallery store written by signed-bundle imports (`facegate::enroll`).
    pub store: Option<PathBuf>,
    /// Device key for the store (32 bytes, created 0600 on first start)
    /// [default: device.key beside the store].
    pub key_file: Option<PathBuf>,
    /// Pinned admin public keys (minisign base64 lines); no default: empty refuses every bundle.
    #[serde(default)]
    pub admin_keys: Vec<String>,
    /// The names this door answers to in a bundle's `site`.
    pub site: Option<String>,
    pub device_id: Option<String>,
    /// Mount-point patterns polled for a `facegate/` bundle (`*` = one path component).
    #[serde(default)]
    pub watch: Vec<String>,
    #[serde(default = "default_poll_s")]
    pub poll_s: f64,
    /// Write `facegate-report.txt` to the stick after an import or rejection (if writable).
    #[serde(default)]
    pub write_report: bool,
}

impl GalleryConfig {
    /// The store's key file (explicit or `device.key` beside the store).
    pub fn key_path(&self) -> Option<PathBuf> {
        let store = self.store.as_ref()?;
        Some(
            self.key_file
                .clone()
                .unwrap_or_else(|| store.parent().unwrap_or(Path::new(".")).join("device.key")),
        )
    }

    /// The names a bundle's `site` may carry for this door.
    pub fn sites(&self) -> Vec<String> {
        self.site.iter().chain(&self.device_id).cloned().collect()
    }
}

fn default_poll_s() -> f64 {
    2.0
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonConfig {
    pub id: String,
    #[serde(default)]
    pub name: String,
    pub photos: Vec<PathBuf>,
    pub not_before: Option<jiff::Timestamp>,
    pub not_after: Option<jiff::Timestamp>,
    #[serde(default)]
    pub schedule: Vec<crate::gallery::Window>,
}

impl PersonConfig {
    pub fn access(&self) -> crate::gallery::Access {
        crate::gallery::Access {
            not_before: self.not_before,
            not_after: self.not_after,
            schedule: self.schedule.clone(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `k_of_n` (default) or `fusion` (issue 13 item 6).
    #[serde(default = "default_rule")]
    pub rule: crate::policy::VisitRule,
    #[serde(default = "default_fusion_threshold")]
    pub fusion_threshold: f32,
    #[serde(default = "default_threshold")]
    pub threshold: f32,
    #[serde(default = "default_margin")]
    pub min_margin: f32,
    #[serde(default = "default_k")]
    pub k: usize,
    #[serde(default = "default_n")]
    pub n: usize,
    #[serde(default = "default_window")]
    pub window_s: f64,
    #[serde(default = "default_eye")]
    pub min_eye_distance_px: f32,
    #[serde(default = "default_sharpness")]
    pub min_sharpness: f32,
    #[serde(default = "default_yaw")]
    pub max_yaw: f32,
    #[serde(default = "default_cooldown")]
    pub cooldown_s: f64,
    #[serde(default = "default_absence")]
    pub absence_s: f64,
    #[serde(default = "default_free_failures")]
    pub free_failures: u32,
    #[serde(default = "default_backoff")]
    pub backoff_s: f64,
    #[serde(default = "default_max_backoff")]
    pub max_backoff_s: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        toml::from_str("").expect("all policy keys have defaults")
    }
}

/// `[lock] backend`, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum BackendKind {
    Simulated,
    Rppal,
    Gpiocdev,
}

/// The relay output, with what its backend needs.
#[derive(Debug, Clone, PartialEq)]
pub enum LockBackend {
    /// No hardware; with a file, every level change of the simulated relay is written there
    /// ("energised" / "de-energised"), like a GPIO pin that keeps its level after the process
    /// dies (tests of `facegate lock safe` across processes).
    Simulated { state_file: Option<PathBuf> },
    /// Raspberry Pi GPIO through rppal: BCM number of the relay input.
    Rppal { pin: u8 },
    /// Any board's GPIO character device.
    Gpiocdev { line: LineSpec },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SafeStateConfig {
    /// Fail-secure: a de-energised relay keeps the door locked (strikes, most offices).
    Locked,
    /// Fail-safe: a de-energised relay releases the door (maglocks on escape routes).
    Unlocked,
}

/// `[lock]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    backend: BackendKind,
    pin: Option<u8>,
    line: Option<String>,
    /// The older spelling of a line's chip (`line = "/dev/gpiochip0:17"` says both).
    chip: Option<PathBuf>,
    #[serde(default)]
    active_low: bool,
    safe_state: SafeStateConfig,
    #[serde(default = "default_unlock_ms")]
    unlock_ms: u64,
    #[serde(default = "default_max_unlock_ms")]
    max_unlock_ms: u64,
    exit_button: Option<String>,
    door_contact: Option<String>,
    #[serde(default = "yes")]
    inputs_active_low: bool,
    sim_state_file: Option<PathBuf>,
}

/// `[lock]`, checked: the relay output and the door inputs.
#[derive(Debug, Clone)]
pub struct LockConfig {
    pub backend: LockBackend,
    pub active_low: bool,
    pub safe_state: SafeStateConfig,
    pub unlock_ms: u64,
    pub max_unlock_ms: u64,
    /// Request-to-exit button: a press gives a normal unlock pulse.
    pub exit_button: Option<LineSpec>,
    /// Door contact (reed switch): reports door opened / closed / forced open.
    pub door_contact: Option<LineSpec>,
    /// Inputs are switches to ground with the kernel's pull-up (active low); false for
    /// switches to 3.3 V with a pull-down.
    pub inputs_active_low: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Tell systemd we are alive (sd_notify WATCHDOG=1) only while frames flow.
    #[serde(default = "yes")]
    pub watchdog: bool,
    /// Stop after this many frames (0 = run until signalled); for demos and tests.
    #[serde(default)]
    pub max_frames: u64,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            watchdog: true,
            max_frames: 0,
        }
    }
}

fn yes() -> bool {
    true
}
fn default_device() -> String {
    "/dev/video0".into()
}
fn default_width() -> u32 {
    640
}
fn default_height() -> u32 {
    480
}
fn default_fps() -> u32 {
    10
}
fn default_frame_timeout_ms() -> u64 {
    500
}
fn default_stall_s() -> f64 {
    5.0
}
fn default_encoder() -> String {
    "quantized".into()
}
fn default_threshold() -> f32 {
    crate::policy::DEFAULT_THRESHOLD
}
fn default_rule() -> crate::policy::VisitRule {
    crate::policy::VisitRule::KOfN
}
fn default_fusion_threshold() -> f32 {
    crate::policy::DEFAULT_FUSION_THRESHOLD
}
fn default_margin() -> f32 {
    0.05
}
fn default_k() -> usize {
    3
}
fn default_n() -> usize {
    5
}
fn default_window() -> f64 {
    3.0
}
fn default_eye() -> f32 {
    32.0
}
fn default_sharpness() -> f32 {
    15.0
}
fn default_yaw() -> f32 {
    0.25
}
fn default_cooldown() -> f64 {
    5.0
}
fn default_absence() -> f64 {
    2.0
}
fn default_free_failures() -> u32 {
    3
}
fn default_backoff() -> f64 {
    30.0
}
fn default_max_backoff() -> f64 {
    600.0
}
fn default_unlock_ms() -> u64 {
    3000
}
fn default_max_unlock_ms() -> u64 {
    10_000
}

/// The site name config/facegate.toml shipped with up to 0.1.0 (and the README's bundle
/// example): refused as a door's `site` or `device_id`, because every door installed from the
/// package carried it.
pub const SHIPPED_SITES: &[&str] = &["hq-front-door"];

/// Absolute cap on an unlock pulse, whatever the configuration says: the door controller's
/// [`crate::door::controller::HARD_MAX_PULSE`] in milliseconds (one definition).
pub const HARD_MAX_UNLOCK_MS: u64 = crate::door::controller::HARD_MAX_PULSE.as_millis() as u64;

fn invalid(path: &Path, key: &str, reason: impl std::fmt::Display) -> Error {
    Error::Invalid(format!("{}: [{key}] {reason}", path.display()))
}

impl Config {
    /// Reads, parses and validates a configuration file. Relative paths in it are taken
    /// relative to the file's directory.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Config::parse(&text, path)
    }

    /// Parses and validates the text of the configuration file at `path` (which names the
    /// file in errors and is the base of relative paths).
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let mut file: ConfigFile = toml::from_str(text).map_err(|e| {
            Error::Invalid(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        file.rebase(path.parent().unwrap_or(Path::new(".")));
        let camera = check_camera(file.camera, path)?;
        check_policy(&file.policy, path)?;
        let lock = check_lock(file.lock, path)?;
        check_gallery(&file.gallery, path)?;
        let mqtt = crate::mqtt::config::check(file.mqtt, &file.gallery, &file.audit.path, path)?;
        check_liveness(&file.liveness, path)?;
        Ok(Config {
            camera,
            models: file.models,
            gallery: file.gallery,
            policy: file.policy,
            lock,
            audit: file.audit,
            daemon: file.daemon,
            mqtt,
            liveness: file.liveness,
        })
    }

    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            models_dir: self
                .models
                .dir
                .clone()
                .unwrap_or_else(ModelDir::default_path),
            detector: self.models.detector,
            encoder: self.models.encoder.clone(),
            flip_average: self.models.flip_average,
            flip_enrolment: self.models.flip_enrolment,
            jitter_average: false,
            jitter_enrolment: self.models.jitter_enrolment,
            refine_small: self.models.refine_small,
            landmark_refit: self.models.landmark_refit,
            landmark_jitter: self.models.landmark_jitter,
        }
    }

    pub fn policy_settings(&self) -> PolicySettings {
        let p = &self.policy;
        let s = Duration::from_secs_f64;
        PolicySettings {
            rule: p.rule,
            fusion_threshold: p.fusion_threshold,
            threshold: p.threshold,
            min_margin: p.min_margin,
            k: p.k,
            n: p.n,
            window: s(p.window_s),
            min_eye_distance_px: p.min_eye_distance_px,
            min_sharpness: p.min_sharpness,
            max_yaw: p.max_yaw,
            cooldown: s(p.cooldown_s),
            absence: s(p.absence_s),
            free_failures: p.free_failures,
            backoff: s(p.backoff_s),
            max_backoff: s(p.max_backoff_s),
            liveness_required: self.liveness.enabled,
        }
    }
}

impl ConfigFile {
    /// Takes every relative path in the file relative to `base`, the file's directory.
    fn rebase(&mut self, base: &Path) {
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        let g = &mut self.gallery;
        let paths = [
            self.camera.replay_dir.as_mut(),
            self.models.dir.as_mut(),
            g.photos_dir.as_mut(),
            g.store.as_mut(),
            g.key_file.as_mut(),
            self.lock.sim_state_file.as_mut(),
            Some(&mut self.audit.path),
        ];
        paths.into_iter().flatten().for_each(rebase);
        self.mqtt.rebase(base);
        for person in &mut g.people {
            person.photos.iter_mut().for_each(rebase);
        }
    }
}

/// `[camera]`: the source and its frame size, rate and timeouts.
fn check_camera(c: CameraFile, path: &Path) -> Result<CameraConfig> {
    let err = |reason: String| invalid(path, "camera", reason);
    if !(1..=120).contains(&c.fps) {
        return Err(err(format!("fps = {} is out of range 1..=120", c.fps)));
    }
    if c.width < 64 || c.height < 64 || c.width > 4096 || c.height > 4096 {
        return Err(err(format!(
            "{}x{} is not a usable frame size (64..4096 a side)",
            c.width, c.height
        )));
    }
    if !(10..=10_000).contains(&c.frame_timeout_ms) {
        return Err(err("frame_timeout_ms must be 10..=10000".into()));
    }
    if !(c.stall_timeout_s > 0.0 && c.stall_timeout_s <= 600.0) {
        return Err(err("stall_timeout_s must be in (0, 600]".into()));
    }
    let source = match (c.source, c.replay_dir) {
        (CameraKind::V4l2, _) => CameraSource::V4l2 { device: c.device },
        (CameraKind::Replay, Some(dir)) => CameraSource::Replay {
            dir,
            realtime: c.replay_realtime,
            looped: c.replay_loop,
        },
        (CameraKind::Replay, None) => {
            return Err(err(
                "source = \"replay\" needs replay_dir = \"DIR\" (a directory of frames)".into(),
            ))
        }
    };
    Ok(CameraConfig {
        source,
        width: c.width,
        height: c.height,
        fps: c.fps,
        format: c.format,
        frame_timeout_ms: c.frame_timeout_ms,
        stall_timeout_s: c.stall_timeout_s,
    })
}

/// `[lock]`: the backend with what it needs, the pulse limits and the input lines.
fn check_lock(l: LockFile, path: &Path) -> Result<LockConfig> {
    let err = |reason: String| invalid(path, "lock", reason);
    let backend = lock_backend(&l).map_err(err)?;
    if l.unlock_ms == 0 || l.unlock_ms > l.max_unlock_ms {
        return Err(err(format!(
            "unlock_ms = {} must be > 0 and <= max_unlock_ms = {}",
            l.unlock_ms, l.max_unlock_ms
        )));
    }
    if l.max_unlock_ms > HARD_MAX_UNLOCK_MS {
        return Err(err(format!(
            "max_unlock_ms = {} exceeds the hard limit of {HARD_MAX_UNLOCK_MS} ms",
            l.max_unlock_ms
        )));
    }
    let input = |key: &str, line: &Option<String>| -> Result<Option<LineSpec>> {
        line.as_deref()
            .map(|s| s.parse().map_err(|e| err(format!("{key} = {s:?}: {e}"))))
            .transpose()
    };
    Ok(LockConfig {
        exit_button: input("exit_button", &l.exit_button)?,
        door_contact: input("door_contact", &l.door_contact)?,
        backend,
        active_low: l.active_low,
        safe_state: l.safe_state,
        unlock_ms: l.unlock_ms,
        max_unlock_ms: l.max_unlock_ms,
        inputs_active_low: l.inputs_active_low,
    })
}

/// `[lock] backend` and its keys: `pin` for rppal, `line` (and the older `chip`) for gpiocdev,
/// `sim_state_file` for simulated. A key of another backend is ignored with a warning (configs
/// that switched backends keep loading), except `sim_state_file`, which would fake a relay.
fn lock_backend(l: &LockFile) -> std::result::Result<LockBackend, String> {
    if l.sim_state_file.is_some() && l.backend != BackendKind::Simulated {
        return Err("sim_state_file is for backend = \"simulated\" only; remove it".into());
    }
    let ignored = |key: &str, wanted: &str| {
        log::warn!("[lock] {key} is ignored: it is for backend = \"{wanted}\"; remove it")
    };
    if l.pin.is_some() && l.backend != BackendKind::Rppal {
        ignored("pin", "rppal");
    }
    if l.backend != BackendKind::Gpiocdev {
        for (key, set) in [("line", l.line.is_some()), ("chip", l.chip.is_some())] {
            if set {
                ignored(key, "gpiocdev");
            }
        }
    }
    Ok(match l.backend {
        BackendKind::Simulated => LockBackend::Simulated {
            state_file: l.sim_state_file.clone(),
        },
        BackendKind::Rppal => LockBackend::Rppal {
            pin: l
                .pin
                .ok_or("backend = \"rppal\" needs pin = BCM_NUMBER (e.g. 17)")?,
        },
        BackendKind::Gpiocdev => {
            let line = l.line.as_deref().ok_or(
                "backend = \"gpiocdev\" needs line = \"GPIO17\" (a line name), \
                 \"/dev/gpiochip0:GPIO17\" (a name on one chip) or \"/dev/gpiochip0:17\" \
                 (an offset on a chip)",
            )?;
            let line = match &l.chip {
                Some(chip) => LineSpec::on_chip(chip.clone(), line)?,
                None => line.parse().map_err(|e| format!("line = {line:?}: {e}"))?,
            };
            LockBackend::Gpiocdev { line }
        }
    })
}

/// `[gallery]`: somebody is enrolled, people are complete, and bundles are set up fully.
fn check_gallery(g: &GalleryConfig, path: &Path) -> Result<()> {
    if g.photos_dir.is_none() && g.people.is_empty() && g.store.is_none() {
        return Err(invalid(
            path,
            "gallery",
            "nobody is enrolled: set photos_dir = \"DIR\" (one subdirectory of photos per \
             person), add [[gallery.person]] entries, or set store = \"FILE\" with admin_keys \
             for signed USB bundles",
        ));
    }
    check_enroll(g, path)?;
    for p in &g.people {
        if p.id.is_empty() || p.photos.is_empty() {
            return Err(invalid(
                path,
                "gallery.person",
                format!("person {:?} needs an id and at least one photo", p.id),
            ));
        }
    }
    Ok(())
}

/// `[policy]`: every float is checked to be a finite number in its range (a NaN compares
/// false with everything, so `min_margin = nan` would disable the margin test; issue 10,
/// finding 13).
fn check_policy(p: &PolicyConfig, path: &Path) -> Result<()> {
    if !(p.threshold > 0.0 && p.threshold < 1.5) {
        return Err(invalid(path, "policy", format!("threshold = {} is outside (0, 1.5); run `facegate eval` to choose one for a target false-accept rate", p.threshold)));
    }
    if p.threshold > 0.6 {
        log::warn!(
            "[policy] threshold {} is looser than the encoder's 0.6: expect more false accepts",
            p.threshold
        );
    }
    // (key, value, min, max, unit): inclusive ranges
    let floats: [(&str, f64, f64, f64, &str); 10] = [
        (
            "fusion_threshold",
            f64::from(p.fusion_threshold),
            1e-6,
            1.5,
            "",
        ),
        ("min_margin", f64::from(p.min_margin), 0.0, 1.5, ""),
        (
            "min_eye_distance_px",
            f64::from(p.min_eye_distance_px),
            0.0,
            4096.0,
            " px",
        ),
        ("min_sharpness", f64::from(p.min_sharpness), 0.0, 1e6, ""),
        ("max_yaw", f64::from(p.max_yaw), 0.0, 10.0, ""),
        ("window_s", p.window_s, 0.0, 86_400.0, " s"),
        ("cooldown_s", p.cooldown_s, 0.0, 86_400.0, " s"),
        ("absence_s", p.absence_s, 0.0, 86_400.0, " s"),
        ("backoff_s", p.backoff_s, 0.0, 86_400.0, " s"),
        ("max_backoff_s", p.max_backoff_s, 0.0, 86_400.0, " s"),
    ];
    for (key, v, lo, hi, unit) in floats {
        if !(v.is_finite() && (lo..=hi).contains(&v)) {
            return Err(invalid(
                path,
                "policy",
                format!("{key} = {v} must be a number between {lo} and {hi}{unit}"),
            ));
        }
    }
    if p.k == 0 || p.n < p.k || p.n > 100 {
        return Err(invalid(
            path,
            "policy",
            format!("k = {} of n = {}: need 1 <= k <= n <= 100", p.k, p.n),
        ));
    }
    Ok(())
}

/// `[gallery]` for signed bundles: pinned keys parse, and a door that takes bundles names itself.
fn check_enroll(g: &GalleryConfig, path: &Path) -> Result<()> {
    for k in &g.admin_keys {
        crate::enroll::AdminKey::parse(k)
            .map_err(|e| invalid(path, "gallery", format!("admin_keys: {e}")))?;
    }
    if !g.admin_keys.is_empty() || !g.watch.is_empty() {
        if g.store.is_none() {
            return Err(invalid(path, "gallery", "admin_keys/watch need store = \"FILE\" (the encrypted gallery, e.g. /var/lib/facegate/gallery.store)"));
        }
        if g.sites().is_empty() {
            return Err(invalid(path, "gallery", "admin_keys/watch need site = \"NAME\" (or device_id): bundles name the door they are for; choose a name unique to this door (e.g. \"hq-floor2-east\") and sign its bundles for that name"));
        }
    }
    // issue 10 finding 13: a name shared by every installed door lets a bundle signed for
    // one door import on all of them (only bundles read it: checked when they are enabled).
    let bundles = !g.admin_keys.is_empty() || !g.watch.is_empty();
    for (key, v) in [("site", &g.site), ("device_id", &g.device_id)] {
        let v = v.as_ref().filter(|_| bundles);
        let Some(v) = v else { continue };
        if v.trim().is_empty() {
            return Err(invalid(
                path,
                "gallery",
                format!("{key} is empty: name this door (unique to it), or remove the key"),
            ));
        }
        if SHIPPED_SITES.contains(&v.trim()) {
            return Err(invalid(
                path,
                "gallery",
                format!(
                    "{key} = {v:?} is the example name shipped with facegate, the same on every \
                     door: a bundle signed for one such door would import on all of them; set \
                     {key} to a name unique to this door (e.g. \"hq-floor2-east\") and sign its \
                     bundles for that name"
                ),
            ));
        }
    }
    if !g.watch.is_empty() && g.admin_keys.is_empty() {
        return Err(invalid(path, "gallery", "watch is set but admin_keys is empty: every bundle would be refused; pin the public key printed by `facegate bundle keygen`"));
    }
    if !(g.poll_s.is_finite() && g.poll_s >= 0.1 && g.poll_s <= 3600.0) {
        return Err(invalid(
            path,
            "gallery",
            format!("poll_s = {} must be between 0.1 and 3600", g.poll_s),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod policy_validation_tests {
    use super::*;

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

    fn check(policy: &str) -> std::result::Result<(), String> {
        Config::parse(
            &format!("{GOOD}[policy]\n{policy}\n"),
            Path::new("facegate.toml"),
        )
        .map(drop)
        .map_err(|e| e.to_string())
    }

    /// Issue 10, finding 13: NaN and infinity are refused for every float key of `[policy]`
    /// (old code: `min_margin = nan` and every quality gate passed validation), with an error
    /// naming the key and its valid range.
    #[test]
    fn every_policy_float_refuses_nan_and_infinity_naming_key_and_range() {
        assert_eq!(check(""), Ok(()));
        let keys = [
            "threshold",
            "min_margin",
            "min_eye_distance_px",
            "min_sharpness",
            "max_yaw",
            "window_s",
            "cooldown_s",
            "absence_s",
            "backoff_s",
            "max_backoff_s",
        ];
        for key in keys {
            for bad in ["nan", "inf", "-inf", "-1.0"] {
                let e = check(&format!("{key} = {bad}")).expect_err(&format!("{key} = {bad}"));
                assert!(
                    e.contains("[policy]") && e.contains(key),
                    "{key} = {bad}: {e}"
                );
                assert!(
                    e.contains("between") || e.contains("outside ("),
                    "{key} = {bad}: no valid range in {e}"
                );
            }
        }
    }

    /// Issue 11 item 6: one threshold default and one pulse cap (old code: the config said
    /// 0.47, `PolicySettings::default` 0.5; the cap was written as 30_000 ms and 30 s).
    #[test]
    fn threshold_default_and_pulse_cap_have_one_definition() {
        let from_config = PolicyConfig::default().threshold;
        assert_eq!(from_config, crate::policy::DEFAULT_THRESHOLD);
        assert_eq!(PolicySettings::default().threshold, from_config);
        assert_eq!(
            std::time::Duration::from_millis(HARD_MAX_UNLOCK_MS),
            crate::door::controller::HARD_MAX_PULSE
        );
    }

    fn with_lock(lock: &str) -> std::result::Result<Config, String> {
        let text = GOOD.replace(
            "backend = \"simulated\"\nsafe_state = \"locked\"",
            &format!("safe_state = \"locked\"\n{lock}"),
        );
        Config::parse(&text, Path::new("/etc/facegate/facegate.toml")).map_err(|e| e.to_string())
    }

    /// Issue 11 item 6: the lock output and the inputs take a GPIO line in one textual form,
    /// parsed once into a [`LineSpec`]; `chip` beside a named `line` is honoured (old code:
    /// silently dropped, so the name was searched on every chip).
    #[test]
    fn lock_lines_parse_once_and_chip_is_honoured_for_a_name() {
        let gpio = |lock: &str| match with_lock(lock).map(|c| c.lock.backend) {
            Ok(LockBackend::Gpiocdev { line }) => Ok(line),
            other => Err(format!("{other:?}")),
        };
        let chip4 = PathBuf::from("/dev/gpiochip4");
        let named_on_4 = LineSpec::ChipName {
            chip: chip4.clone(),
            name: "GPIO17".into(),
        };
        let b = "backend = \"gpiocdev\"\n";
        assert_eq!(
            gpio(&format!("{b}line = \"GPIO17\"\nchip = \"/dev/gpiochip4\"")),
            Ok(named_on_4.clone())
        );
        assert_eq!(
            gpio(&format!("{b}line = \"/dev/gpiochip4:GPIO17\"")),
            Ok(named_on_4)
        );
        assert_eq!(
            gpio(&format!("{b}line = \"17\"\nchip = \"/dev/gpiochip4\"")),
            Ok(LineSpec::ChipOffset {
                chip: chip4,
                offset: 17
            })
        );
        assert_eq!(
            gpio(&format!("{b}line = \"GPIO17\"")),
            Ok(LineSpec::Name("GPIO17".into()))
        );
        let cfg = with_lock(
            "backend = \"rppal\"\npin = 17\nexit_button = \"GPIO27\"\n\
             door_contact = \"/dev/gpiochip0:22\"",
        )
        .unwrap();
        assert_eq!(cfg.lock.backend, LockBackend::Rppal { pin: 17 });
        assert_eq!(cfg.lock.exit_button, Some(LineSpec::Name("GPIO27".into())));
        assert_eq!(
            cfg.lock.door_contact,
            Some(LineSpec::ChipOffset {
                chip: "/dev/gpiochip0".into(),
                offset: 22
            })
        );
    }

    /// A bad line is refused at load with the key, the value and the spelling to use.
    #[test]
    fn bad_line_specs_name_the_key_and_the_fix() {
        let gpiocdev = "backend = \"gpiocdev\"\n";
        let sim = "backend = \"simulated\"\n";
        let cases: [(String, &[&str]); 6] = [
            (
                format!("{gpiocdev}line = \"17\""),
                &["[lock]", "line = \"17\"", "\"/dev/gpiochip0:17\""],
            ),
            (
                format!("{gpiocdev}line = \"/dev/gpiochip0:17\"\nchip = \"/dev/gpiochip1\""),
                &["[lock]", "remove chip"],
            ),
            (
                format!("{gpiocdev}line = \"/dev/gpiochip0\""),
                &["[lock]", "\"/dev/gpiochip0:17\""],
            ),
            (
                gpiocdev.to_string(),
                &["[lock]", "line = \"GPIO17\"", "\"/dev/gpiochip0:17\""],
            ),
            (
                format!("{sim}exit_button = \"27\""),
                &["[lock]", "exit_button = \"27\"", "\"/dev/gpiochip0:27\""],
            ),
            (
                format!("{sim}door_contact = \"\""),
                &["[lock]", "door_contact", "GPIO17"],
            ),
        ];
        for (lock, needles) in cases {
            let e = with_lock(&lock).expect_err(&lock);
            for n in needles {
                assert!(e.contains(n), "{lock}: {e:?} lacks {n:?}");
            }
        }
    }

    /// Issue 11 item 6: the camera source is typed at load (old code: `replay_dir` was
    /// unwrapped with `expect("validated")` when the camera opened).
    #[test]
    fn camera_source_is_typed_at_load() {
        let cfg = with_lock("backend = \"simulated\"").unwrap();
        assert_eq!(
            cfg.camera.source,
            CameraSource::Replay {
                dir: "/etc/facegate/frames".into(),
                realtime: true,
                looped: false
            }
        );
        let text = GOOD.replace("replay_dir = \"frames\"\n", "");
        let e = Config::parse(&text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("[camera]") && e.contains("replay_dir = "), "{e}");
    }

    /// Issue 11 item 4: one detector default for the configuration and the command line
    /// (old code: "short_range" here, "auto" for `--detector`); see also tests/cli.rs.
    #[test]
    fn detector_default_is_one_value_and_unknown_names_are_refused() {
        let cfg = with_lock("backend = \"simulated\"").unwrap();
        assert_eq!(cfg.models.detector, DetectorChoice::ShortRange);
        assert_eq!(cfg.models.detector, DetectorChoice::default());
        assert_eq!(
            cfg.model_options().detector,
            ModelOptions::default().detector
        );
        for name in ["auto", "short_range", "full_range"] {
            let text = format!("{GOOD}[models]\ndetector = \"{name}\"\n");
            let cfg = Config::parse(&text, Path::new("f.toml")).unwrap();
            assert_eq!(cfg.models.detector.name(), name);
            assert_eq!(name.parse(), Ok(cfg.models.detector));
        }
        let text = format!("{GOOD}[models]\ndetector = \"long_range\"\n");
        let e = Config::parse(&text, Path::new("f.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("long_range") && e.contains("short_range"), "{e}");
    }
}
