//! `facegate camera check`: the installer's view of the door camera (issue 13 item 7). Grabs
//! live frames from the configured camera, runs each through the door's per-frame path with the
//! configured gallery, gates and liveness check ([`crate::diagnose`]), writes an annotated PNG
//! per frame and prints why each face would be rejected. It never drives the lock and never
//! writes the audit log.
//!
//! A V4L2 camera streams to one process at a time, so on a V4L2 source the check takes the
//! state lock the daemon holds (refusing, with the fix, while the daemon runs) and keeps it until
//! it ends, so the daemon cannot start in the middle. A replay source needs no such exclusion.
//! (No lock file yet means the daemon never ran: nothing to exclude, and none is created.)

use super::EXIT_NO;
use crate::assemble;
use crate::camera::{CameraError, FrameSource};
use crate::config::{CameraSource, Config};
use crate::diagnose::{annotate, check_frame};
use crate::error::{Error, Result};
use crate::face::FaceModels;
use crate::gallery::Gallery;
use crate::statelock::{LockFailure, StateLock, LOCK_FILE};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum CameraCommand {
    /// The installer's view: annotated PNGs of live frames (boxes, landmarks, face size, quality
    /// gates, nearest person, liveness, the door's verdict) and why each face would be rejected;
    /// exit 0 when some frame has a face that passes the gates, 1 when none does, 2 on error.
    /// Never drives the lock or writes the audit log; stop the daemon first on a V4L2 camera
    Check(CheckArgs),
}

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// The door's configuration: its camera, and its [models], gallery, [policy] and
    /// [liveness] exactly as the door uses them (the global model options do not apply)
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Frames to check
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub frames: u32,
    /// Check every K-th frame (skipping K-1 between checks: spread the check over a walk-up)
    #[arg(long, default_value_t = 1, value_name = "K", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub every: u32,
    /// Directory for the annotated pictures (frame-NNNN.png)
    #[arg(long, value_name = "DIR", default_value = "camera-check")]
    pub out: PathBuf,
}

/// Runs `facegate camera ...`.
pub(super) fn run(cmd: CameraCommand) -> Result<u8> {
    match cmd {
        CameraCommand::Check(args) => check(&args),
    }
}

/// Longest wait for a frame before the check gives up.
const NO_FRAME_LIMIT: Duration = Duration::from_secs(10);

fn check(args: &CheckArgs) -> Result<u8> {
    let mut cfg = Config::load(&args.config)?;
    let _lock = camera_lock(&cfg)?;
    // A replay is checked frame by frame (no real-time skipping, no looping): the check is
    // about what the frames show, not how fast they come.
    if let CameraSource::Replay {
        realtime, looped, ..
    } = &mut cfg.camera.source
    {
        *realtime = false;
        *looped = false;
    }
    let device = match &cfg.camera.source {
        CameraSource::V4l2 { device } => Some(device.clone()),
        CameraSource::Replay { .. } => None,
    };
    let mut source =
        (assemble::camera_opener(&cfg))().map_err(|e| open_error(&e, device.as_deref()))?;
    // The models load after the camera opened, so a camera problem shows at once.
    let models = FaceModels::load(&cfg.model_options())?;
    let gallery = door_gallery(&cfg, &models)?;
    let mut liveness = assemble::liveness_check(&cfg, &models)?;
    let settings = cfg.policy_settings();
    let mut engine = models.engine()?;
    std::fs::create_dir_all(&args.out).map_err(|e| Error::io(&args.out, e))?;
    println!(
        "camera {}; gates: eyes >= {:.0} px, |yaw| <= {:.2}, sharpness >= {:.0}; threshold {:.2}; \
         {} enrolled; liveness {}",
        source.describe(),
        settings.min_eye_distance_px,
        settings.max_yaw,
        settings.min_sharpness,
        settings.threshold,
        gallery.len(),
        liveness.name()
    );
    let timeout = Duration::from_millis(cfg.camera.frame_timeout_ms);
    let (mut checked, mut passing) = (0u32, 0u32);
    let (mut door_time, mut check_time) = (Duration::ZERO, Duration::ZERO);
    while checked < args.frames {
        let Some(frame) = next_checked(source.as_mut(), args.every, timeout)? else {
            println!("the replay ended after {checked} checked frames");
            break;
        };
        let t = Instant::now();
        let fc = check_frame(
            &mut engine,
            &gallery,
            &settings,
            liveness.as_mut(),
            &frame.image,
            frame.seq,
        )?;
        let png = args.out.join(format!("frame-{:04}.png", frame.seq));
        crate::fsutil::write_png(&png, &annotate(&frame.image, &fc, &settings)?)?;
        check_time += t.elapsed();
        door_time += fc.door_time;
        checked += 1;
        println!("{}", fc.summary(&settings));
        for why in fc.reasons(&settings) {
            println!("  {why}");
        }
        passing += u32::from(fc.any_face_passes(&settings));
    }
    if checked == 0 {
        return Err(Error::Invalid(format!(
            "{}: no frame to check",
            source.describe()
        )));
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3 / f64::from(checked);
    println!(
        "{passing} of {checked} frames had a face that passes the gates; door path {:.0} ms, \
         whole check {:.0} ms per frame; pictures in {}",
        ms(door_time),
        ms(check_time),
        args.out.display()
    );
    Ok(if passing > 0 { 0 } else { EXIT_NO })
}

/// The next frame to check: `every` frames on (the ones between are read and dropped).
/// `None` at the end of a replay; an error when the camera gives nothing for
/// [`NO_FRAME_LIMIT`].
fn next_checked(
    source: &mut dyn FrameSource,
    every: u32,
    timeout: Duration,
) -> Result<Option<crate::camera::Frame>> {
    let mut got = None;
    for _ in 0..every {
        let t0 = Instant::now();
        loop {
            match source.next_frame(timeout) {
                Ok(Some(f)) => {
                    got = Some(f);
                    break;
                }
                Ok(None) if t0.elapsed() < NO_FRAME_LIMIT => continue,
                Ok(None) => {
                    return Err(Error::Invalid(format!(
                        "{}: no frame in {} s; check the cable and `dmesg`, and that nothing \
                         else streams from the camera",
                        source.describe(),
                        NO_FRAME_LIMIT.as_secs()
                    )))
                }
                Err(CameraError::Finished) => return Ok(None),
                Err(e) => return Err(Error::Invalid(format!("{}: {e}", source.describe()))),
            }
        }
    }
    Ok(got)
}

/// On a V4L2 camera, the state lock the daemon holds while it runs: refused, naming the daemon
/// and the fix, while it runs. A lock that cannot be taken for another reason (the installer
/// is not the service user) does not stop the check, which writes nothing the lock guards.
fn camera_lock(cfg: &Config) -> Result<Option<StateLock>> {
    let CameraSource::V4l2 { device } = &cfg.camera.source else {
        return Ok(None);
    };
    // No lock file yet: the daemon never ran here (and a lock file made now, perhaps by root,
    // could keep the service user's daemon out later).
    let lock_files = StateLock::dirs(cfg).into_iter().map(|d| d.join(LOCK_FILE));
    if !lock_files.into_iter().any(|f| f.exists()) {
        return Ok(None);
    }
    match StateLock::try_acquire(cfg, "camera check") {
        Ok(lock) => Ok(Some(lock)),
        Err(LockFailure::Held(m)) => Err(Error::Invalid(format!(
            "camera check needs the camera {device} to itself (a V4L2 camera streams to one \
             process), and {m}"
        ))),
        Err(LockFailure::Other(m)) => {
            log::debug!("camera check runs without the state lock: {m}");
            Ok(None)
        }
    }
}

/// A camera that would not open; a busy V4L2 device names the daemon and how to stop it.
fn open_error(e: &CameraError, v4l2_device: Option<&str>) -> Error {
    let busy = e.to_string().contains("device busy");
    match v4l2_device {
        Some(device) if busy => Error::Invalid(format!(
            "{e}. A V4L2 camera streams to one process: if it is the facegate daemon, stop it \
             with `systemctl stop facegate`, run the check, then `systemctl start facegate` \
             ({device})"
        )),
        _ => Error::Invalid(format!("cannot open the camera: {e}")),
    }
}

/// The gallery the door matches against: the people of the configuration and, when the staff
/// store exists and can be read, its people (as the daemon lays them over; no watcher).
fn door_gallery(cfg: &Config, models: &std::sync::Arc<FaceModels>) -> Result<Gallery> {
    let base = assemble::enrol_from_config(cfg, models)?;
    let g = &cfg.gallery;
    let exists = |p: Option<&Path>| p.is_some_and(Path::exists);
    if !exists(g.store.as_deref()) || !exists(g.key_path().as_deref()) {
        return Ok(base);
    }
    let mut read_only = cfg.clone();
    read_only.gallery.watch.clear();
    match assemble::store_and_watcher(&read_only, models, base.clone()) {
        Ok((gallery, _)) => Ok(gallery),
        Err(e) => {
            log::warn!(
                "the staff store could not be read ({e}): only the people in the configuration \
                 are matched; run as the service user (sudo -u facegate) to include it"
            );
            Ok(base)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_v4l2_camera_names_the_daemon_and_how_to_stop_it() {
        let busy = CameraError::Lost(
            "/dev/video0: device busy; another program is using the camera (`fuser /dev/video0`)"
                .into(),
        );
        let m = open_error(&busy, Some("/dev/video0")).to_string();
        assert!(m.contains("systemctl stop facegate"), "{m}");
        assert!(m.contains("fuser /dev/video0"), "{m}");
        let gone = CameraError::Lost("/dev/video0: no such device".into());
        let m = open_error(&gone, Some("/dev/video0")).to_string();
        assert!(!m.contains("systemctl"), "{m}");
        assert!(m.contains("no such device"), "{m}");
    }
}
