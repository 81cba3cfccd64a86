//! Replayed image sequences: a directory of JPEG/PNG frames played as a camera.
//!
//! # Mechanism
//! The directory is listed once at [`ReplaySource::open`]; frames are the `.jpg`, `.jpeg` and
//! `.png` files sorted by file name (`000.jpg`, `001.jpg`, ...; see
//! `tools/fixtures/extract_clip.sh`). Each frame is read and decoded when it is delivered, through
//! [`crate::imageio::decode_rgb`], so EXIF orientation and the decompression-bomb limits apply
//! exactly as for enrolment photos. Nothing is preloaded: memory stays at one frame.
//!
//! Two pacings:
//! - [`Pacing::EveryFrame`]: every call returns the next frame at once (deterministic; tests).
//! - [`Pacing::RealTime`]: frame `k` is due at `first call + k / fps`. A call returns the newest
//!   frame that is due, skipping any older ones it missed, exactly like a camera whose driver
//!   buffers are overwritten while the consumer is busy; frames are never queued. If the next
//!   frame is not due yet the call waits for it, but never longer than `timeout` (`Ok(None)`).
//!
//! `Frame::seq` is the absolute frame index (it keeps counting across loops), so a gap in
//! `seq` is a dropped or skipped frame; `Frame::captured` is the instant the frame was due.
//!
//! # Failure modes
//! - A frame that cannot be read or decoded (corrupt, truncated, deleted since `open`) is logged
//!   (`warn`, naming the file and the fix) and skipped; it is never fatal.
//! - A directory in which every frame fails is a configuration error ([`CameraError::Config`]),
//!   as is a missing or empty directory: the message names the directory and how to make frames.
//! - At the end of a non-looping replay every call returns [`CameraError::Finished`].
//!
//! [`FailingSource`] wraps any source to simulate a camera that is unplugged
//! ([`CameraError::Lost`]) or that stops delivering frames (stall) after N frames.

use super::{CameraError, Frame, FrameSource};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How a replay releases its frames.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// Each call returns the next frame immediately (deterministic, for tests).
    EveryFrame,
    /// Frame `k` is due `k / fps` seconds after the first call; late consumers skip frames.
    RealTime { fps: f64 },
}

/// A directory of images played as a camera. See the module documentation.
#[derive(Debug)]
pub struct ReplaySource {
    dir: PathBuf,
    files: Vec<PathBuf>,
    pacing: Pacing,
    looping: bool,
    /// Set on the first `next_frame` call (real-time pacing's clock origin).
    start: Option<Instant>,
    /// Absolute index (across loops) of the next frame that may be delivered.
    next_index: u64,
    delivered: u64,
    dropped: u64,
    corrupt: u64,
}

/// True for the file names a replay plays (JPEG or PNG, any case).
fn is_frame_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .map(|e| {
            let e = e.to_ascii_lowercase();
            e == "jpg" || e == "jpeg" || e == "png"
        })
        .unwrap_or(false)
}

impl ReplaySource {
    /// Lists `dir` (JPEG/PNG files, sorted by name). Fails with [`CameraError::Config`] if the
    /// directory cannot be read or holds no frames, or if `fps` is not a positive number.
    pub fn open(dir: impl AsRef<Path>, pacing: Pacing, looping: bool) -> Result<Self, CameraError> {
        let dir = dir.as_ref().to_path_buf();
        let entries = std::fs::read_dir(&dir).map_err(|e| {
            CameraError::Config(format!(
                "replay directory {}: {e}; point the replay at a directory of JPEG/PNG frames \
                 (tools/fixtures/extract_clip.sh makes one from a video)",
                dir.display()
            ))
        })?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| {
                CameraError::Config(format!("replay directory {}: {e}", dir.display()))
            })?;
            let path = entry.path();
            if path.is_file() && is_frame_file(&path) {
                files.push(path);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if files.is_empty() {
            return Err(CameraError::Config(format!(
                "replay directory {} holds no .jpg/.jpeg/.png frames; extract frames with \
                 tools/fixtures/extract_clip.sh or ffmpeg -i VIDEO -vf fps=5 {}/%03d.jpg",
                dir.display(),
                dir.display()
            )));
        }
        Self::from_files(dir, files, pacing, looping)
    }

    /// A replay of an explicit list of files, played in the given order (`dir` only names the
    /// source in logs).
    pub fn from_files(
        dir: impl AsRef<Path>,
        files: Vec<PathBuf>,
        pacing: Pacing,
        looping: bool,
    ) -> Result<Self, CameraError> {
        let dir = dir.as_ref().to_path_buf();
        if files.is_empty() {
            return Err(CameraError::Config(format!(
                "replay {}: no frames given",
                dir.display()
            )));
        }
        if let Pacing::RealTime { fps } = pacing {
            if !(fps.is_finite() && fps > 0.0 && fps <= 1000.0) {
                return Err(CameraError::Config(format!(
                    "replay {}: fps must be a number in (0, 1000], got {fps}",
                    dir.display()
                )));
            }
        }
        Ok(ReplaySource {
            dir,
            files,
            pacing,
            looping,
            start: None,
            next_index: 0,
            delivered: 0,
            dropped: 0,
            corrupt: 0,
        })
    }

    /// Number of frame files in one pass.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Always false: an empty directory is refused by [`ReplaySource::open`].
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Frames returned so far.
    pub fn delivered(&self) -> u64 {
        self.delivered
    }

    /// Frames skipped because the consumer was late (real-time pacing only).
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Frames skipped because they could not be read or decoded.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// Instant at which absolute frame `k` is due (real-time pacing).
    fn due(&self, start: Instant, fps: f64, k: u64) -> Instant {
        start + Duration::from_secs_f64(k as f64 / fps)
    }

    /// Reads and decodes absolute frame `k`; `None` (logged) if it is corrupt or unreadable.
    fn load(&mut self, k: u64) -> Option<image::RgbImage> {
        let path = &self.files[(k % self.files.len() as u64) as usize];
        let decoded = std::fs::read(path)
            .map_err(|e| {
                format!("cannot read it ({e}); check the file still exists and is readable")
            })
            .and_then(|bytes| {
                crate::imageio::decode_rgb(&bytes, path)
                    .map_err(|e| format!("{e}; re-extract or delete the frame"))
            });
        match decoded {
            Ok(img) => Some(img),
            Err(why) => {
                self.corrupt += 1;
                log::warn!("replay: skipping frame {}: {why}", path.display());
                None
            }
        }
    }

    fn end_reached(&self, k: u64) -> bool {
        !self.looping && k >= self.files.len() as u64
    }

    fn frame(&mut self, image: image::RgbImage, k: u64, captured: Instant) -> Frame {
        self.delivered += 1;
        self.next_index = k + 1;
        Frame {
            image,
            seq: k,
            captured,
        }
    }

    fn next_every_frame(&mut self) -> Result<Option<Frame>, CameraError> {
        let mut failures = 0usize;
        loop {
            let k = self.next_index;
            if self.end_reached(k) {
                return Err(CameraError::Finished);
            }
            if let Some(img) = self.load(k) {
                return Ok(Some(self.frame(img, k, Instant::now())));
            }
            self.next_index = k + 1;
            failures += 1;
            if failures >= self.files.len() {
                return Err(self.all_corrupt());
            }
        }
    }

    fn all_corrupt(&self) -> CameraError {
        CameraError::Config(format!(
            "replay {}: none of its {} frames can be decoded; re-extract them \
             (tools/fixtures/extract_clip.sh)",
            self.dir.display(),
            self.files.len()
        ))
    }

    fn next_real_time(
        &mut self,
        fps: f64,
        timeout: Duration,
    ) -> Result<Option<Frame>, CameraError> {
        let now = Instant::now();
        let start = *self.start.get_or_insert(now);
        let deadline = now + timeout;
        let mut failures = 0usize;
        loop {
            let now = Instant::now();
            // Newest frame due now (floor of elapsed * fps), but never behind next_index.
            let elapsed = now.saturating_duration_since(start).as_secs_f64();
            let newest_due = (elapsed * fps).floor() as u64;
            let mut k = self.next_index;
            if newest_due > k {
                // The consumer is late: skip to the newest due frame (no queue).
                let skip = if self.looping {
                    newest_due - k
                } else {
                    newest_due.min(self.files.len() as u64) - k.min(self.files.len() as u64)
                };
                self.dropped += skip;
                k = newest_due;
                self.next_index = k;
            }
            if self.end_reached(k) {
                return Err(CameraError::Finished);
            }
            let due = self.due(start, fps, k);
            if due > now {
                if due > deadline {
                    std::thread::sleep(deadline.saturating_duration_since(now));
                    return Ok(None);
                }
                std::thread::sleep(due - now);
            }
            if let Some(img) = self.load(k) {
                return Ok(Some(self.frame(img, k, due)));
            }
            self.next_index = k + 1;
            failures += 1;
            if failures >= self.files.len() {
                return Err(self.all_corrupt());
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
        }
    }
}

impl FrameSource for ReplaySource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, CameraError> {
        match self.pacing {
            Pacing::EveryFrame => self.next_every_frame(),
            Pacing::RealTime { fps } => self.next_real_time(fps, timeout),
        }
    }

    fn describe(&self) -> String {
        let pacing = match self.pacing {
            Pacing::EveryFrame => "every frame".to_string(),
            Pacing::RealTime { fps } => format!("{fps} fps"),
        };
        format!(
            "replay {} ({} frames, {pacing}{})",
            self.dir.display(),
            self.files.len(),
            if self.looping { ", looping" } else { "" }
        )
    }
}

/// How a [`FailingSource`] fails once its budget of frames is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Every further call returns [`CameraError::Lost`] (an unplugged camera: ENODEV).
    Lost,
    /// Every further call waits its whole timeout and returns `Ok(None)` (a hung camera that
    /// still answers poll with nothing).
    Stall,
}

/// Test wrapper: passes `frames` frames of `inner` through, then fails as `failure` says.
pub struct FailingSource {
    inner: Box<dyn FrameSource>,
    remaining: u64,
    failure: Failure,
}

impl FailingSource {
    pub fn new(inner: Box<dyn FrameSource>, frames: u64, failure: Failure) -> Self {
        FailingSource {
            inner,
            remaining: frames,
            failure,
        }
    }

    /// Shorthand for [`Failure::Lost`] after `frames` frames.
    pub fn lost_after(inner: Box<dyn FrameSource>, frames: u64) -> Self {
        Self::new(inner, frames, Failure::Lost)
    }
}

impl FrameSource for FailingSource {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, CameraError> {
        if self.remaining == 0 {
            return match self.failure {
                Failure::Lost => Err(CameraError::Lost(format!(
                    "{}: simulated unplug (ENODEV)",
                    self.inner.describe()
                ))),
                Failure::Stall => {
                    std::thread::sleep(timeout);
                    Ok(None)
                }
            };
        }
        let frame = self.inner.next_frame(timeout)?;
        if frame.is_some() {
            self.remaining -= 1;
        }
        Ok(frame)
    }

    fn describe(&self) -> String {
        format!(
            "{} (failing: {:?} after {} more frames)",
            self.inner.describe(),
            self.failure,
            self.remaining
        )
    }
}
