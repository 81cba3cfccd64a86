//! From a [`Config`] to the parts that run the door: the one place that reads the
//! configuration's `[lock]`, `[camera]` and `[gallery]` sections and builds what they name.
//!
//! ```text
//!   Config ─┬─> door_config, lock_output, door_inputs ──> DoorController  (daemon, lock test, lock safe)
//!           ├─> camera_opener ─────────────────────────> Supervisor      (daemon)
//!           ├─> enrol_from_config (photos_dir, people) ─> Gallery         (daemon; identify uses gallery_from_dir)
//!           ├─> import_policy ─────────────────────────> ImportPolicy    (enroll import, USB watcher)
//!           └─> store_and_watcher ─────────────────────> store gallery + WatchHandle (daemon)
//! ```
//!
//! Everything that needs a part asks here, so no command reaches into another command's module
//! for it: the daemon, `facegate lock test|safe`, the enrollment commands (both in the command
//! line's `cli/`, which nothing but `main.rs` imports) and the USB watcher get the same lock,
//! camera, gallery and policy from the same configuration, checked once when it was loaded
//! ([`Config::load`]: typed lock backend, GPIO lines and camera source, nothing unwrapped here).

use crate::camera::replay::{Pacing, ReplaySource};
use crate::camera::supervisor::Opener;
use crate::camera::v4l2::{V4l2Config, V4l2Source};
use crate::camera::{CameraError, FrameSource};
use crate::config::{CameraConfig, CameraSource, Config, LockBackend, SafeStateConfig};
use crate::door::controller::{DoorConfig, DoorInputs, SafeState};
use crate::door::line::LineSpec;
use crate::door::output::LockOutput;
use crate::enroll::import::ImportPolicy;
use crate::enroll::sign::AdminKey;
use crate::enroll::store::Store;
use crate::enroll::watch::{self, WatchConfig, WatchHandle};
use crate::enroll::EnrollError;
use crate::error::{Error, Result};
use crate::face::liveness::LivenessModels;
use crate::face::pick::{enrolment_face, FacePick};
use crate::face::{Face, FaceEngine, FaceModels};
use crate::frame::{LivenessCheck, NoLiveness, PadCheck};
use crate::gallery::{Gallery, Person};
use crate::imageio::load_rgb;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// The presentation-attack check `[liveness]` asks for, its models loaded (and verified) once:
/// MiniFASNet by default, or nothing when it is turned off.
pub fn liveness_check(cfg: &Config, models: &FaceModels) -> Result<Box<dyn LivenessCheck>> {
    let l = &cfg.liveness;
    if !l.enabled {
        return Ok(Box::new(NoLiveness));
    }
    let pad = LivenessModels::load(&models.dir, l.models)?;
    let threshold = l.threshold.unwrap_or(pad.threshold);
    let mut worker = pad.worker()?;
    worker.set_threads(l.threads);
    Ok(Box::new(PadCheck::new(worker, threshold)))
}

/// The lock output the configuration asks for.
pub fn lock_output(cfg: &Config) -> Result<Box<dyn LockOutput>> {
    let l = &cfg.lock;
    let err = |e: crate::door::output::LockError| Error::Invalid(format!("[lock] {e}"));
    Ok(match &l.backend {
        LockBackend::Simulated { state_file: None } => Box::new(
            crate::door::output::sim::SimulatedOutput::new("simulated relay"),
        ),
        LockBackend::Simulated {
            state_file: Some(path),
        } => Box::new(crate::door::output::sim::SimulatedOutput::with_state_file(
            "simulated relay",
            path,
        )),
        LockBackend::Rppal { pin } => {
            Box::new(crate::door::output::rppal::RppalOutput::new(*pin, l.active_low).map_err(err)?)
        }
        LockBackend::Gpiocdev { line } => Box::new(
            crate::door::output::gpiocdev::GpiocdevOutput::new(line, l.active_low).map_err(err)?,
        ),
    })
}

/// The door contact and exit button the configuration names (GPIO character-device lines).
pub fn door_inputs(cfg: &Config) -> Result<DoorInputs> {
    use crate::door::input::{GpiocdevInput, Pull};
    let l = &cfg.lock;
    let pull = if l.inputs_active_low {
        Pull::Up
    } else {
        Pull::Down
    };
    let open = |line: &Option<LineSpec>| -> Result<Option<Box<dyn crate::door::input::DoorInput>>> {
        match line {
            None => Ok(None),
            Some(spec) => {
                let input = GpiocdevInput::new(spec, l.inputs_active_low, pull)
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

/// What `[camera]` asks the V4L2 source for: device, size, rate and pixel format.
pub fn v4l2_config(c: &CameraConfig, device: &str) -> V4l2Config {
    V4l2Config {
        device: device.to_string(),
        width: c.width,
        height: c.height,
        fps: c.fps,
        format: c.format.requested(),
        ..V4l2Config::default()
    }
}

/// The camera opener the configuration asks for.
pub fn camera_opener(cfg: &Config) -> Opener {
    let c = cfg.camera.clone();
    Box::new(
        move || -> std::result::Result<Box<dyn FrameSource>, CameraError> {
            match &c.source {
                CameraSource::Replay {
                    dir,
                    realtime,
                    looped,
                } => {
                    let pacing = if *realtime {
                        Pacing::RealTime {
                            fps: f64::from(c.fps),
                        }
                    } else {
                        Pacing::EveryFrame
                    };
                    Ok(Box::new(ReplaySource::open(dir, pacing, *looped)?))
                }
                CameraSource::V4l2 { device } => {
                    Ok(Box::new(V4l2Source::open(&v4l2_config(&c, device))?))
                }
            }
        },
    )
}

/// Embeds the face of one photo the door would use ([`FacePick::Largest`]), for `verify` and
/// `identify`'s probe.
pub(crate) fn embed_one(engine: &mut FaceEngine, path: &Path) -> Result<Face> {
    let img = load_rgb(path)?;
    let faces = engine.faces(&img)?;
    FacePick::Largest
        .pick_face(&faces)
        .cloned()
        .ok_or_else(|| Error::NoFace {
            path: path.to_path_buf(),
        })
}

/// Embeds an enrollment photo of `who` under the one enrollment rule ([`enrolment_face`]:
/// exactly one face, eyes at least `min_eye_distance_px` apart, as bundle import requires).
pub(crate) fn enrol_one(
    engine: &mut FaceEngine,
    path: &Path,
    who: &str,
    min_eye_distance_px: f32,
) -> Result<Face> {
    let img = load_rgb(path)?;
    enrolment_face(engine.faces(&img)?, min_eye_distance_px).map_err(|why| {
        Error::Invalid(format!(
            "{}: cannot enrol {who} from this photo: {why}",
            path.display()
        ))
    })
}

/// Builds a gallery from a directory of photos (see `identify --help`): one person per photo
/// (named by the file stem) or per subdirectory (named by the directory, all its photos).
/// Every photo must pass the enrollment rule ([`enrol_one`]) with `min_eye_distance_px` (the
/// configuration's `[policy] min_eye_distance_px`, the door's own gate).
pub fn gallery_from_dir(
    models: &Arc<FaceModels>,
    dir: &Path,
    min_eye_distance_px: f32,
) -> Result<Gallery> {
    let mut engine = models.enrolment_engine()?;
    let mut people = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let (id, photos) = if p.is_dir() {
            let mut photos: Vec<PathBuf> = std::fs::read_dir(&p)
                .map_err(|e| Error::io(&p, e))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.is_file())
                .collect();
            photos.sort();
            (p.file_name().unwrap().to_string_lossy().to_string(), photos)
        } else {
            (
                p.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string(),
                vec![p.clone()],
            )
        };
        let mut embeddings = Vec::new();
        for photo in &photos {
            embeddings.push(enrol_one(&mut engine, photo, &id, min_eye_distance_px)?.embedding);
        }
        if !embeddings.is_empty() {
            people.push(Person {
                name: id.clone(),
                id,
                embeddings,
                access: Default::default(),
            });
        }
    }
    if people.is_empty() {
        return Err(Error::Invalid(format!(
            "gallery {} holds no photos",
            dir.display()
        )));
    }
    Ok(Gallery::from_people(people))
}

/// Enrols the configured people (one-shot: their photos' embeddings are the gallery):
/// `[gallery] photos_dir` (see [`gallery_from_dir`]), then each `[[gallery.people]]`.
pub fn enrol_from_config(cfg: &Config, models: &Arc<FaceModels>) -> Result<Gallery> {
    let mut gallery = match &cfg.gallery.photos_dir {
        Some(dir) => gallery_from_dir(models, dir, cfg.policy.min_eye_distance_px)?,
        None => Gallery::new(),
    };
    let mut engine = models.enrolment_engine()?;
    for p in &cfg.gallery.people {
        let mut embeddings = Vec::new();
        for photo in &p.photos {
            let face = enrol_one(&mut engine, photo, &p.id, cfg.policy.min_eye_distance_px)?;
            embeddings.push(face.embedding);
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

/// The import policy a configuration pins (admin keys, sites, minimum eye distance), for
/// `facegate enroll import` and the USB watcher.
pub fn import_policy(cfg: &Config) -> Result<ImportPolicy> {
    Ok(ImportPolicy {
        admin_keys: cfg
            .gallery
            .admin_keys
            .iter()
            .map(|k| AdminKey::parse(k))
            .collect::<std::result::Result<Vec<_>, _>>()?,
        sites: cfg.gallery.sites(),
        min_eye_distance_px: cfg.policy.min_eye_distance_px,
    })
}

/// The daemon's start: lays the encrypted store (if `[gallery] store` is set) over the people
/// enrolled from the config, and starts the USB watcher (if `[gallery] watch` is set).
/// A store that cannot be read or was made with another encoder stops the start.
pub fn store_and_watcher(
    cfg: &Config,
    models: &Arc<FaceModels>,
    base: Gallery,
) -> std::result::Result<(Gallery, Option<WatchHandle>), EnrollError> {
    let g = &cfg.gallery;
    let (Some(store_path), Some(key_path)) = (&g.store, g.key_path()) else {
        return Ok((base, None));
    };
    let store = Store::open_with_log(store_path, &key_path, Some(&cfg.audit.path))?;
    let data = store.load(&models.encoder.sha256)?;
    log::info!(
        "gallery store {}: bundle version {}, {} people",
        store_path.display(),
        data.bundle_version,
        data.people.len()
    );
    let gallery = watch::merged(base.people(), &data.people);
    let mut patterns = g.watch.clone();
    // Fleet enrollment (issue 14): bundles from the broker are unpacked into the spool and
    // imported by this same watcher, exactly as from a stick.
    if let Some(m) = cfg.mqtt.as_ref().filter(|m| m.fleet_enroll) {
        patterns.push(format!("{}/*/facegate", m.spool_dir.display()));
    }
    if patterns.is_empty() {
        return Ok((gallery, None));
    }
    let handle = watch::spawn(
        models.clone(),
        store,
        WatchConfig {
            patterns: patterns.clone(),
            poll: Duration::from_secs_f64(g.poll_s),
            write_report: g.write_report,
            policy: import_policy(cfg).map_err(|e| EnrollError::Key(e.to_string()))?,
            base: base.people().to_vec(),
        },
    )?;
    log::info!(
        "watching {:?} for signed enrollment bundles every {} s",
        patterns,
        g.poll_s
    );
    Ok((gallery, Some(handle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::decode::PixelFormat;

    /// The V4L2 settings of a configuration whose `[camera]` ends with `format`.
    fn v4l2(format: &str) -> V4l2Config {
        let text = format!(
            "[camera]\nsource = \"v4l2\"\ndevice = \"/dev/video2\"\nwidth = 320\nheight = 240\n\
             fps = 15\n{format}\n[gallery]\nphotos_dir = \"staff\"\n[lock]\n\
             backend = \"simulated\"\nsafe_state = \"locked\"\n[audit]\npath = \"audit.jsonl\"\n"
        );
        let c = Config::parse(&text, Path::new("facegate.toml"))
            .unwrap()
            .camera;
        let CameraSource::V4l2 { device } = &c.source else {
            panic!("not a V4L2 source: {:?}", c.source)
        };
        v4l2_config(&c, device)
    }

    /// Issue 11 item 6: `[camera] format` reaches the V4L2 source (old code: documented but
    /// dropped, every camera negotiated MJPEG-if-offered); no key or "auto" keeps that default.
    #[test]
    fn camera_format_reaches_the_v4l2_source() {
        assert_eq!(v4l2("").format, None);
        assert_eq!(v4l2("format = \"auto\"").format, None);
        assert_eq!(v4l2("format = \"mjpeg\"").format, Some(PixelFormat::Mjpeg));
        let c = v4l2("format = \"yuyv\"");
        assert_eq!(c.format, Some(PixelFormat::Yuyv));
        assert_eq!(
            (c.device.as_str(), c.width, c.height, c.fps),
            ("/dev/video2", 320, 240, 15)
        );
    }
}
