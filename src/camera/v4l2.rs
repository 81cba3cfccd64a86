//! V4L2 camera (USB UVC webcams, the Pi camera through its V4L2 driver) via the `v4l` crate.
//!
//! # Mechanism
//! - [`V4l2Source::open`] takes a device path (`/dev/video0`) or a card name as listed in
//!   `/sys/class/video4linux/*/name` (`"HD Pro Webcam C920"`; exact, then case-insensitive
//!   substring match, capture nodes only), checks the node can capture and stream, and negotiates
//!   the format `[camera] format` asks for ([`V4l2Config::format`], [`choose_format`]); with
//!   `"auto"`, MJPEG if offered (small USB frames, decoded by `image`'s JPEG decoder), else YUYV
//!   (converted by [`yuyv_to_rgb`](super::decode::yuyv_to_rgb), an integer BT.601 limited-range loop). The size and frame
//!   rate are requests: the driver may pick the nearest it supports, which is logged and shown by
//!   [`FrameSource::describe`].
//! - Capture uses a memory-mapped stream of a few buffers (default 4). [`FrameSource::next_frame`]
//!   `poll(2)`s the device with the caller's timeout, so a dead camera never hangs the loop. When
//!   several buffers are ready (the consumer was slow), the older ones are handed straight back to
//!   the driver and only the newest is decoded: frames are dropped, never queued, and the latency
//!   stays at most one frame.
//! - Many UVC cameras send MJPEG frames without a Huffman table (DHT), relying on the standard
//!   tables of JPEG Annex K; [`insert_default_dht`](crate::imageio::insert_default_dht) adds
//!   them before decoding when absent.
//! - The first dequeued frame after stream start is discarded (the `v4l` crate's stream needs one
//!   buffer held by the application; first frames are usually badly exposed anyway).
//!
//! # Failure modes (each error names the device and the fix)
//! - Permission denied: the user is not in the `video` group ([`CameraError::Config`]).
//! - No such device / unplugged / I/O error (`ENOENT`, `ENODEV`, `EIO`, ...): [`CameraError::Lost`];
//!   the [`super::supervisor::Supervisor`] reopens with backoff.
//! - Device busy (another process streams from it): [`CameraError::Lost`] (it may be released).
//! - Neither MJPEG nor YUYV offered, or a metadata-only node: [`CameraError::Config`], listing what
//!   the device offers.
//! - A corrupt frame (USB glitch), or one whose size is not the negotiated one (a JPEG header
//!   claiming 65535x65535, a short or long YUYV buffer), is dropped before any allocation sized
//!   from it, counted ([`V4l2Source::bad_frames`]) and logged at `warn` (the 1st, 2nd, 4th, ...
//!   time). Decoding lives in [`super::decode`]. A driver that chooses a frame larger than
//!   [`MAX_FRAME_SIDE`] a side is refused at open ([`CameraError::Config`]).
//! - The `v4l` crate panics in `Drop` if stopping the stream fails with anything but `ENODEV`; the
//!   source catches that panic when it is dropped (the panic message is still printed once).

use super::decode::{PixelFormat, MAX_FRAME_SIDE};
use super::{CameraError, Frame, FrameSource};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use v4l::buffer::Type;
use v4l::io::mmap::Stream as MmapStream;
use v4l::io::traits::{CaptureStream, Stream as _};
use v4l::video::Capture;
use v4l::{Device, FourCC};

const ENOENT: i32 = 2;
const EINTR: i32 = 4;
const EBUSY: i32 = 16;
const POLLIN: i16 = 0x0001;

/// Longest single poll: the `v4l` crate stores poll timeouts as i32 milliseconds.
const MAX_POLL: Duration = Duration::from_secs(60);

/// What to open and the format to ask for.
#[derive(Debug, Clone)]
pub struct V4l2Config {
    /// `/dev/videoN`, or a card name from `/sys/class/video4linux/*/name`.
    pub device: String,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    /// Driver buffers (2..=8; 4 is a good default).
    pub buffers: u32,
    /// The pixel format to ask for; `None` (auto): MJPEG if offered, else YUYV.
    pub format: Option<PixelFormat>,
}

impl Default for V4l2Config {
    fn default() -> Self {
        V4l2Config {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            fps: 10,
            buffers: 4,
            format: None,
        }
    }
}

/// The V4L2 four-character code of a pixel format.
pub fn fourcc(format: PixelFormat) -> FourCC {
    FourCC::new(format.fourcc())
}

/// The format to negotiate from what the device offers: the requested one if offered; with no
/// request (auto), MJPEG if offered, else YUYV. `None`: nothing usable (or the requested format
/// is not offered).
pub fn choose_format(requested: Option<PixelFormat>, offered: &[FourCC]) -> Option<PixelFormat> {
    let has = |f: PixelFormat| offered.contains(&fourcc(f));
    match requested {
        Some(f) => has(f).then_some(f),
        None => PixelFormat::ALL.into_iter().find(|&f| has(f)),
    }
}

/// A streaming V4L2 capture device. See the module documentation.
pub struct V4l2Source {
    path: PathBuf,
    card: String,
    // Declared before `device`: dropped first (it also holds the fd through an Arc).
    stream: Option<MmapStream<'static>>,
    handle: std::sync::Arc<v4l::device::Handle>,
    _device: Device,
    format: PixelFormat,
    width: u32,
    height: u32,
    stride: u32,
    fps: f64,
    /// True once the first buffer has been dequeued (see module docs).
    primed: bool,
    seq: u64,
    dropped: u64,
    /// Frames refused by the decoder (wrong size, truncated, corrupt): dropped, not fatal.
    bad_frames: u64,
}

/// Capture devices as `(path, card name)`, from `/sys/class/video4linux`.
pub fn list_devices() -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/sys/class/video4linux") {
        for e in entries.flatten() {
            let node = e.file_name().to_string_lossy().into_owned();
            let name = std::fs::read_to_string(e.path().join("name"))
                .map(|s| s.trim().to_string())
                .unwrap_or_default();
            out.push((PathBuf::from("/dev").join(node), name));
        }
    }
    out.sort();
    out
}

/// Resolves a device path or a card name to a device path.
pub fn resolve_device(spec: &str) -> Result<PathBuf, CameraError> {
    if spec.starts_with('/') {
        return Ok(PathBuf::from(spec));
    }
    let devices = list_devices();
    let exact: Vec<_> = devices.iter().filter(|(_, n)| n == spec).collect();
    let pick = if exact.is_empty() {
        let lower = spec.to_lowercase();
        devices
            .iter()
            .filter(|(_, n)| n.to_lowercase().contains(&lower))
            .collect()
    } else {
        exact
    };
    // A UVC camera has several nodes with the same name (capture + metadata): the first
    // that can capture wins.
    for (path, _) in &pick {
        if let Ok(dev) = Device::with_path(path) {
            if let Ok(caps) = dev.query_caps() {
                if caps
                    .capabilities
                    .contains(v4l::capability::Flags::VIDEO_CAPTURE)
                {
                    return Ok(path.clone());
                }
            }
        }
    }
    let known = if devices.is_empty() {
        "no video devices at all (is the camera plugged in? `ls /dev/video*`)".to_string()
    } else {
        devices
            .iter()
            .map(|(p, n)| format!("{} \"{n}\"", p.display()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(CameraError::Lost(format!(
        "no capture device named \"{spec}\"; present: {known}"
    )))
}

fn open_error(path: &Path, e: &io::Error) -> CameraError {
    let p = path.display();
    match (e.kind(), e.raw_os_error()) {
        (io::ErrorKind::PermissionDenied, _) => CameraError::Config(format!(
            "{p}: permission denied; add the user to the `video` group \
             (sudo usermod -aG video $USER, then log in again) or fix the udev rule"
        )),
        (_, Some(ENOENT)) | (io::ErrorKind::NotFound, _) => CameraError::Lost(format!(
            "{p}: no such device; is the camera plugged in? (`ls /dev/video*`, \
             `v4l2-ctl --list-devices`)"
        )),
        (_, Some(EBUSY)) => CameraError::Lost(format!(
            "{p}: device busy; another program is using the camera (`fuser {p}`)"
        )),
        _ => CameraError::Lost(format!("{p}: {e}; check `dmesg` for USB or driver errors")),
    }
}

fn lost(path: &Path, what: &str, e: &io::Error) -> CameraError {
    CameraError::Lost(format!(
        "{}: {what} failed: {e}; the camera was unplugged or its driver reset (check `dmesg`)",
        path.display()
    ))
}

fn fourcc_str(f: &FourCC) -> String {
    f.str()
        .map(str::to_string)
        .unwrap_or_else(|_| format!("{:?}", f.repr))
}

impl V4l2Source {
    /// Opens and starts streaming. See the module documentation for what is negotiated.
    pub fn open(config: &V4l2Config) -> Result<Self, CameraError> {
        let path = resolve_device(&config.device)?;
        let device = Device::with_path(&path).map_err(|e| open_error(&path, &e))?;
        let caps = check_capture_node(&device, &path)?;
        let format = negotiate_format(&device, &path, &caps.card, config.format)?;
        let got = set_frame_size(&device, &path, format, config)?;
        let fps = set_frame_rate(&device, &path, config.fps);
        let stream = start_stream(&device, &path, config.buffers.clamp(2, 8))?;
        let handle = stream.handle();
        let src = V4l2Source {
            path,
            card: caps.card,
            stream: Some(stream),
            handle,
            _device: device,
            format,
            width: got.width,
            height: got.height,
            stride: got.stride,
            fps,
            primed: false,
            seq: 0,
            dropped: 0,
            bad_frames: 0,
        };
        log::info!("camera opened: {}", src.describe());
        Ok(src)
    }

    pub fn format(&self) -> PixelFormat {
        self.format
    }

    /// Frames handed back to the driver undecoded because a newer one was ready.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Frames dropped because they did not decode to the negotiated size (see
    /// [`super::decode`]): a glitching or hostile camera.
    pub fn bad_frames(&self) -> u64 {
        self.bad_frames
    }

    /// `poll(2)` for a readable buffer: Ok(true) ready (or error pending: DQBUF reports it).
    fn wait_ready(&self, timeout: Duration) -> Result<bool, CameraError> {
        let ms = timeout.min(MAX_POLL).as_millis() as i32;
        loop {
            match self.handle.poll(POLLIN, ms) {
                Ok(n) => return Ok(n > 0),
                Err(e) if e.raw_os_error() == Some(EINTR) => continue,
                Err(e) => return Err(lost(&self.path, "poll", &e)),
            }
        }
    }
}

/// Checks that the node captures video and streams (a UVC camera's second node carries only
/// metadata).
fn check_capture_node(
    device: &Device,
    path: &Path,
) -> Result<v4l::capability::Capabilities, CameraError> {
    use v4l::capability::Flags;
    let p = path.display();
    let caps = device
        .query_caps()
        .map_err(|e| lost(path, "VIDIOC_QUERYCAP", &e))?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return Err(CameraError::Config(format!(
            "{p} (\"{}\") is not a video capture node (a UVC camera's second node carries \
             metadata); use the other /dev/video node of this camera",
            caps.card
        )));
    }
    if !caps.capabilities.contains(Flags::STREAMING) {
        return Err(CameraError::Config(format!(
            "{p} (\"{}\", driver {}) does not support streaming I/O",
            caps.card, caps.driver
        )));
    }
    Ok(caps)
}

/// The pixel format to use: the requested one, or with none (auto) MJPEG, else YUYV, among
/// those the device offers ([`choose_format`]).
fn negotiate_format(
    device: &Device,
    path: &Path,
    card: &str,
    requested: Option<PixelFormat>,
) -> Result<PixelFormat, CameraError> {
    let offered = device
        .enum_formats()
        .map_err(|e| lost(path, "VIDIOC_ENUM_FMT", &e))?;
    let offered_fourccs: Vec<FourCC> = offered.iter().map(|f| f.fourcc).collect();
    if let Some(format) = choose_format(requested, &offered_fourccs) {
        return Ok(format);
    }
    let list = offered
        .iter()
        .map(|f| format!("{} ({})", fourcc_str(&f.fourcc), f.description))
        .collect::<Vec<_>>()
        .join(", ");
    let need = match requested {
        None => "facegate needs MJPG or YUYV: use another camera or node".to_string(),
        Some(f) => format!(
            "[camera] format = \"{}\" is not among them: set format = \"auto\" \
             (or the format the camera offers), or use another camera or node",
            f.config_name()
        ),
    };
    Err(CameraError::Config(format!(
        "{} (\"{card}\") offers {list}; {need}",
        path.display()
    )))
}

/// Sets the format and asks for the configured size; the driver may choose another size,
/// which is logged, and one outside 1..[`MAX_FRAME_SIDE`] a side is refused.
fn set_frame_size(
    device: &Device,
    path: &Path,
    format: PixelFormat,
    config: &V4l2Config,
) -> Result<v4l::Format, CameraError> {
    let p = path.display();
    let code = fourcc(format);
    let want = v4l::Format::new(config.width, config.height, code);
    let got = device
        .set_format(&want)
        .map_err(|e| lost(path, "VIDIOC_S_FMT", &e))?;
    if got.fourcc != code {
        return Err(CameraError::Config(format!(
            "{p}: asked for {} but the driver set {}",
            fourcc_str(&code),
            fourcc_str(&got.fourcc)
        )));
    }
    if got.width == 0
        || got.height == 0
        || got.width > MAX_FRAME_SIDE
        || got.height > MAX_FRAME_SIDE
    {
        return Err(CameraError::Config(format!(
            "{p}: the driver chose a {}x{} frame, outside facegate's 1..{MAX_FRAME_SIDE} a \
             side; set [camera] width/height to a size the camera offers \
             (`v4l2-ctl -d {p} --list-formats-ext`)",
            got.width, got.height
        )));
    }
    if (got.width, got.height) != (config.width, config.height) {
        log::info!(
            "{p}: asked for {}x{}, the driver chose {}x{}",
            config.width,
            config.height,
            got.width,
            got.height
        );
    }
    Ok(got)
}

/// Asks for `fps`; returns the rate the driver set (the requested one if it does not say).
fn set_frame_rate(device: &Device, path: &Path, fps: u32) -> f64 {
    match device.set_params(&v4l::video::capture::Parameters::with_fps(fps.max(1))) {
        Ok(params) if params.interval.numerator > 0 => {
            f64::from(params.interval.denominator) / f64::from(params.interval.numerator)
        }
        Ok(_) => f64::from(fps),
        Err(e) => {
            log::info!(
                "{}: cannot set the frame rate ({e}); using the driver's",
                path.display()
            );
            f64::from(fps)
        }
    }
}

/// Maps `buffers` driver buffers, queues them all and starts streaming.
fn start_stream(
    device: &Device,
    path: &Path,
    buffers: u32,
) -> Result<MmapStream<'static>, CameraError> {
    let mut stream = MmapStream::with_buffers(device, Type::VideoCapture, buffers)
        .map_err(|e| lost(path, "VIDIOC_REQBUFS/mmap", &e))?;
    // `next()` polls internally with this timeout; it is only called when poll already
    // reported a ready buffer, so zero never waits.
    stream.set_timeout(Duration::ZERO);
    // Queue every buffer and start (this is what the crate's `next()` does on first use).
    for i in 0..buffers as usize {
        if let Err(e) = CaptureStream::queue(&mut stream, i) {
            // Fewer buffers may have been granted: stop at the first refusal after one.
            if i == 0 {
                return Err(lost(path, "VIDIOC_QBUF", &e));
            }
            break;
        }
    }
    stream
        .start()
        .map_err(|e| lost(path, "VIDIOC_STREAMON", &e))?;
    Ok(stream)
}

impl FrameSource for V4l2Source {
    fn next_frame(&mut self, timeout: Duration) -> Result<Option<Frame>, CameraError> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            if !self.wait_ready(remaining)? {
                return Ok(None);
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(CameraError::Lost(format!(
                    "{}: stream closed",
                    self.path.display()
                )));
            };
            if !self.primed {
                CaptureStream::dequeue(stream).map_err(|e| lost(&self.path, "VIDIOC_DQBUF", &e))?;
                self.primed = true;
                continue;
            }
            // Take the newest ready buffer; older ones go straight back to the driver.
            let mut skipped = 0u64;
            let result = loop {
                let (data, meta) = match CaptureStream::next(stream) {
                    Ok(x) => x,
                    Err(e) => return Err(lost(&self.path, "VIDIOC_DQBUF", &e)),
                };
                let more = matches!(self.handle.poll(POLLIN, 0), Ok(n) if n > 0);
                if more && skipped < 8 {
                    skipped += 1;
                    continue;
                }
                let used = (meta.bytesused as usize).min(data.len());
                let captured = Instant::now();
                let seq = u64::from(meta.sequence);
                let decoded =
                    self.format
                        .decode(&data[..used], self.width, self.height, self.stride);
                break (decoded, seq, captured);
            };
            self.dropped += skipped;
            let (decoded, seq, captured) = result;
            match decoded {
                Ok(image) => {
                    self.seq = seq;
                    return Ok(Some(Frame {
                        image,
                        seq,
                        captured,
                    }));
                }
                Err(why) => {
                    self.bad_frames += 1;
                    // a hostile or broken camera can send only bad frames: log a few, count all
                    if self.bad_frames.is_power_of_two() {
                        log::warn!(
                            "{}: dropped a bad frame ({} so far): {why}",
                            self.path.display(),
                            self.bad_frames
                        );
                    }
                    if Instant::now() >= deadline {
                        return Ok(None);
                    }
                }
            }
        }
    }

    fn describe(&self) -> String {
        format!(
            "{} \"{}\" {}x{} {} @ {:.1} fps",
            self.path.display(),
            self.card,
            self.width,
            self.height,
            String::from_utf8_lossy(self.format.fourcc()),
            self.fps
        )
    }
}

impl Drop for V4l2Source {
    fn drop(&mut self) {
        if let Some(stream) = self.stream.take() {
            // v4l 0.14 panics in Stream/Arena Drop when STREAMOFF/REQBUFS fail with anything but
            // ENODEV (e.g. EIO after a USB reset): never let that take the daemon down.
            let path = self.path.display().to_string();
            // contained: must not trip the door's panic guard (emergency release)
            if crate::panics::contain_panic(move || drop(stream)).is_err() {
                log::warn!("{path}: closing the stream failed (device already gone)");
            }
        }
    }
}

#[cfg(test)]
mod format_tests {
    use super::*;

    /// Issue 11 item 6: the configured format is the one negotiated (old code: always MJPEG if
    /// offered, whatever `[camera] format` said); auto keeps MJPEG-then-YUYV.
    #[test]
    fn requested_format_is_chosen_and_auto_prefers_mjpeg() {
        let both = [FourCC::new(b"YUYV"), FourCC::new(b"MJPG")];
        let yuyv_only = [FourCC::new(b"YUYV")];
        assert_eq!(choose_format(None, &both), Some(PixelFormat::Mjpeg));
        assert_eq!(choose_format(None, &yuyv_only), Some(PixelFormat::Yuyv));
        assert_eq!(choose_format(None, &[FourCC::new(b"GREY")]), None);
        assert_eq!(
            choose_format(Some(PixelFormat::Yuyv), &both),
            Some(PixelFormat::Yuyv)
        );
        assert_eq!(
            choose_format(Some(PixelFormat::Mjpeg), &both),
            Some(PixelFormat::Mjpeg)
        );
        assert_eq!(choose_format(Some(PixelFormat::Mjpeg), &yuyv_only), None);
    }
}
