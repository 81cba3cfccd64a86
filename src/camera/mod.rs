//! Frame sources behind one narrow trait: a V4L2 camera ([`v4l2`]) on the door, replayed
//! image sequences ([`replay`]) for the demo and the tests, and [`supervisor`], which reopens a
//! lost camera with backoff and reports `camera_lost` / `camera_restored`.
//!
//! No source queues frames: when processing is slower than the camera, frames are dropped
//! (V4L2 keeps only its few driver buffers; a real-time replay skips ahead by the clock).

use image::RgbImage;
use std::time::{Duration, Instant};

/// One decoded camera frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub image: RgbImage,
    /// Sequence number from the source (gaps mean dropped frames).
    pub seq: u64,
    /// When the frame was captured (or, for a replay, released).
    pub captured: Instant,
}

/// Why a source could not give a frame.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The device failed or vanished (unplugged, I/O error, driver reset): reopen it.
    #[error("camera lost: {0}")]
    Lost(String),
    /// A finite source (replay) has no more frames.
    #[error("end of replay")]
    Finished,
    /// The source cannot work with this configuration (fix the config, retrying will not help).
    #[error("camera configuration: {0}")]
    Config(String),
}

/// A source of frames.
pub trait FrameSource: Send {
    /// Waits at most `timeout` for the next frame: `Ok(None)` when none came in time (a dead
    /// camera never hangs the caller), `Err` when the source failed.
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, CameraError>;

    /// A human-readable name for logs ("/dev/video0 640x480 MJPG @ 10 fps").
    fn describe(&self) -> String;
}

pub mod decode;
pub mod replay;
pub mod supervisor;
pub mod v4l2;
