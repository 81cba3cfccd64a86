//! The daemon's configuration: one TOML file whose sections mirror the pipeline (camera,
//! models, gallery, policy, lock, audit, daemon). Unknown keys are refused (a typo must not
//! silently fall back to a default on a door), and every value is checked at start with an
//! error that names the key and the fix. `config/facegate.toml` documents every key.

use crate::error::{Error, Result};
use crate::face::ModelOptions;
use crate::models::ModelDir;
use crate::policy::PolicySettings;
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub camera: CameraConfig,
    #[serde(default)]
    pub models: ModelsConfig,
    pub gallery: GalleryConfig,
    #[serde(default)]
    pub policy: PolicyConfig,
    pub lock: LockConfig,
    pub audit: AuditConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraKind {
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub source: CameraKind,
    /// V4L2 device path (`/dev/video0`) or card name.
    #[serde(default = "default_device")]
    pub device: String,
    #[serde(default = "default_width")]
    pub width: u32,
    #[serde(default = "default_height")]
    pub height: u32,
    #[serde(default = "default_fps")]
    pub fps: u32,
    #[serde(default)]
    pub format: FormatChoice,
    /// Replay: directory of frames (JPEG/PNG, played in file-name order).
    pub replay_dir: Option<PathBuf>,
    /// Replay at `fps` in real time (frames are skipped when processing is slower), or every
    /// frame as fast as it is processed (tests).
    #[serde(default = "yes")]
    pub replay_realtime: bool,
    #[serde(default)]
    pub replay_loop: bool,
    /// Longest wait for one frame before the loop checks signals and the watchdog.
    #[serde(default = "default_frame_timeout_ms")]
    pub frame_timeout_ms: u64,
    /// No frame for this long means the camera is lost: reopen it.
    #[serde(default = "default_stall_s")]
    pub stall_timeout_s: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsConfig {
    pub dir: Option<PathBuf>,
    #[serde(default = "default_encoder")]
    pub encoder: String,
    #[serde(default = "default_detector")]
    pub detector: String,
    #[serde(default)]
    pub flip_average: bool,
    /// Re-detect a face that is small in the frame on a crop around it before landmarking.
    #[serde(default = "yes")]
    pub refine_small: bool,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        ModelsConfig {
            dir: None,
            encoder: default_encoder(),
            detector: default_detector(),
            flip_average: false,
            refine_small: true,
        }
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LockBackend {
    Simulated,
    Rppal,
    Gpiocdev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SafeStateConfig {
    /// Fail-secure: a de-energised relay keeps the door locked (strikes, most offices).
    Locked,
    /// Fail-safe: a de-energised relay releases the door (maglocks on escape routes).
    Unlocked,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockConfig {
    pub backend: LockBackend,
    /// rppal: BCM GPIO number of the relay input.
    pub pin: Option<u8>,
    /// gpiocdev: line name (`GPIO17`) or offset on `chip`.
    pub line: Option<String>,
    /// gpiocdev: chip path, when `line` is an offset.
    pub chip: Option<PathBuf>,
    #[serde(default)]
    pub active_low: bool,
    pub safe_state: SafeStateConfig,
    #[serde(default = "default_unlock_ms")]
    pub unlock_ms: u64,
    #[serde(default = "default_max_unlock_ms")]
    pub max_unlock_ms: u64,
    /// Request-to-exit button (GPIO character-device line name, e.g. "GPIO27"): a press gives a
    /// normal unlock pulse.
    pub exit_button: Option<String>,
    /// Door contact (reed switch) line: reports door opened / closed / forced open.
    pub door_contact: Option<String>,
    /// Inputs are switches to ground with the kernel's pull-up (active low); false for
    /// switches to 3.3 V with a pull-down.
    #[serde(default = "yes")]
    pub inputs_active_low: bool,
    /// simulated: a file where every level change of the simulated relay is written
    /// ("energised" / "de-energised"), like a GPIO pin that keeps its level after the process
    /// dies (tests of `facegate lock safe` across processes).
    pub sim_state_file: Option<PathBuf>,
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
fn default_detector() -> String {
    "short_range".into()
}
fn default_threshold() -> f32 {
    crate::policy::DEFAULT_THRESHOLD
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
        let mut cfg: Config = toml::from_str(&text).map_err(|e| {
            Error::Invalid(format!("{}: {}", path.display(), e.to_string().trim_end()))
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let rebase = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = cfg.camera.replay_dir.as_mut() {
            rebase(p)
        }
        if let Some(p) = cfg.models.dir.as_mut() {
            rebase(p)
        }
        if let Some(p) = cfg.gallery.photos_dir.as_mut() {
            rebase(p)
        }
        for person in &mut cfg.gallery.people {
            person.photos.iter_mut().for_each(rebase);
        }
        if let Some(p) = cfg.gallery.store.as_mut() {
            rebase(p)
        }
        if let Some(p) = cfg.gallery.key_file.as_mut() {
            rebase(p)
        }
        if let Some(p) = cfg.lock.sim_state_file.as_mut() {
            rebase(p)
        }
        rebase(&mut cfg.audit.path);
        cfg.validate(path)?;
        Ok(cfg)
    }

    fn validate(&self, path: &Path) -> Result<()> {
        let c = &self.camera;
        if c.source == CameraKind::Replay && c.replay_dir.is_none() {
            return Err(invalid(
                path,
                "camera",
                "source = \"replay\" needs replay_dir = \"DIR\" (a directory of frames)",
            ));
        }
        if !(1..=120).contains(&c.fps) {
            return Err(invalid(
                path,
                "camera",
                format!("fps = {} is out of range 1..=120", c.fps),
            ));
        }
        if c.width < 64 || c.height < 64 || c.width > 4096 || c.height > 4096 {
            return Err(invalid(
                path,
                "camera",
                format!(
                    "{}x{} is not a usable frame size (64..4096 a side)",
                    c.width, c.height
                ),
            ));
        }
        if !(10..=10_000).contains(&c.frame_timeout_ms) {
            return Err(invalid(
                path,
                "camera",
                "frame_timeout_ms must be 10..=10000",
            ));
        }
        if !(c.stall_timeout_s > 0.0 && c.stall_timeout_s <= 600.0) {
            return Err(invalid(
                path,
                "camera",
                "stall_timeout_s must be in (0, 600]",
            ));
        }
        self.validate_policy(path)?;
        let l = &self.lock;
        match l.backend {
            LockBackend::Rppal if l.pin.is_none() => {
                return Err(invalid(path, "lock", "backend = \"rppal\" needs pin = BCM_NUMBER (e.g. 17)"))
            }
            LockBackend::Gpiocdev if l.line.is_none() => {
                return Err(invalid(path, "lock", "backend = \"gpiocdev\" needs line = \"GPIO17\" (a line name) or an offset with chip = \"/dev/gpiochip0\""))
            }
            _ => {}
        }
        if l.sim_state_file.is_some() && l.backend != LockBackend::Simulated {
            return Err(invalid(
                path,
                "lock",
                "sim_state_file is for backend = \"simulated\" only; remove it",
            ));
        }
        if l.unlock_ms == 0 || l.unlock_ms > l.max_unlock_ms {
            return Err(invalid(
                path,
                "lock",
                format!(
                    "unlock_ms = {} must be > 0 and <= max_unlock_ms = {}",
                    l.unlock_ms, l.max_unlock_ms
                ),
            ));
        }
        if l.max_unlock_ms > HARD_MAX_UNLOCK_MS {
            return Err(invalid(
                path,
                "lock",
                format!(
                    "max_unlock_ms = {} exceeds the hard limit of {HARD_MAX_UNLOCK_MS} ms",
                    l.max_unlock_ms
                ),
            ));
        }
        if self.gallery.photos_dir.is_none()
            && self.gallery.people.is_empty()
            && self.gallery.store.is_none()
        {
            return Err(invalid(
                path,
                "gallery",
                "nobody is enrolled: set photos_dir = \"DIR\" (one subdirectory of photos per \
                 person), add [[gallery.person]] entries, or set store = \"FILE\" with admin_keys \
                 for signed USB bundles",
            ));
        }
        self.validate_enroll(path)?;
        for p in &self.gallery.people {
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
    fn validate_policy(&self, path: &Path) -> Result<()> {
        let p = &self.policy;
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
        let floats: [(&str, f64, f64, f64, &str); 9] = [
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

    fn validate_enroll(&self, path: &Path) -> Result<()> {
        let g = &self.gallery;
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

    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            models_dir: self
                .models
                .dir
                .clone()
                .unwrap_or_else(ModelDir::default_path),
            detector: self.models.detector.clone(),
            encoder: self.models.encoder.clone(),
            flip_average: self.models.flip_average,
            refine_small: self.models.refine_small,
        }
    }

    pub fn policy_settings(&self) -> PolicySettings {
        let p = &self.policy;
        let s = Duration::from_secs_f64;
        PolicySettings {
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
        }
    }
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
        let cfg: Config = toml::from_str(&format!("{GOOD}[policy]\n{policy}\n")).unwrap();
        cfg.validate(Path::new("facegate.toml"))
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
}
