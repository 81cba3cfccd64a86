//! V4L2 camera (USB UVC webcams, the Pi camera through its V4L2 driver) via the `v4l` crate.
//!
//! # Mechanism
//! - [`V4l2Source::open`] takes a device path (`/dev/video0`) or a card name as listed in
//!   `/sys/class/video4linux/*/name` (`"HD Pro Webcam C920"`; exact, then case-insensitive
//!   substring match, capture nodes only), checks the node can capture and stream, and negotiates
//!   the format: MJPEG if offered (small USB frames, decoded by `image`'s JPEG decoder), else YUYV
//!   (converted by [`yuyv_to_rgb`], an integer BT.601 limited-range loop). The size and frame
//!   rate are requests: the driver may pick the nearest it supports, which is logged and shown by
//!   [`FrameSource::describe`].
//! - Capture uses a memory-mapped stream of a few buffers (default 4). [`FrameSource::next_frame`]
//!   `poll(2)`s the device with the caller's timeout, so a dead camera never hangs the loop. When
//!   several buffers are ready (the consumer was slow), the older ones are handed straight back to
//!   the driver and only the newest is decoded: frames are dropped, never queued, and the latency
//!   stays at most one frame.
//! - Many UVC cameras send MJPEG frames without a Huffman table (DHT), relying on the standard
//!   tables of JPEG Annex K; [`insert_default_dht`] adds them before decoding when absent.
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
//! - A corrupt MJPEG frame (USB glitch) is logged at `debug` and skipped.
//! - The `v4l` crate panics in `Drop` if stopping the stream fails with anything but `ENODEV`; the
//!   source catches that panic when it is dropped (the panic message is still printed once).

use super::{CameraError, Frame, FrameSource};
use image::RgbImage;
use std::borrow::Cow;
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
}

impl Default for V4l2Config {
    fn default() -> Self {
        V4l2Config {
            device: "/dev/video0".into(),
            width: 640,
            height: 480,
            fps: 10,
            buffers: 4,
        }
    }
}

/// Pixel format negotiated with the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Mjpeg,
    Yuyv,
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
        let p = path.display().to_string();
        let device = Device::with_path(&path).map_err(|e| open_error(&path, &e))?;
        let caps = device
            .query_caps()
            .map_err(|e| lost(&path, "VIDIOC_QUERYCAP", &e))?;
        use v4l::capability::Flags;
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
        let offered = device
            .enum_formats()
            .map_err(|e| lost(&path, "VIDIOC_ENUM_FMT", &e))?;
        let mjpg = FourCC::new(b"MJPG");
        let yuyv = FourCC::new(b"YUYV");
        let (fourcc, format) = if offered.iter().any(|f| f.fourcc == mjpg) {
            (mjpg, PixelFormat::Mjpeg)
        } else if offered.iter().any(|f| f.fourcc == yuyv) {
            (yuyv, PixelFormat::Yuyv)
        } else {
            let list = offered
                .iter()
                .map(|f| format!("{} ({})", fourcc_str(&f.fourcc), f.description))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(CameraError::Config(format!(
                "{p} (\"{}\") offers {list}; facegate needs MJPG or YUYV: use another camera \
                 or node",
                caps.card
            )));
        };
        let want = v4l::Format::new(config.width, config.height, fourcc);
        let got = device
            .set_format(&want)
            .map_err(|e| lost(&path, "VIDIOC_S_FMT", &e))?;
        if got.fourcc != fourcc {
            return Err(CameraError::Config(format!(
                "{p}: asked for {} but the driver set {}",
                fourcc_str(&fourcc),
                fourcc_str(&got.fourcc)
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
        let mut fps = f64::from(config.fps);
        match device.set_params(&v4l::video::capture::Parameters::with_fps(
            config.fps.max(1),
        )) {
            Ok(params) if params.interval.numerator > 0 => {
                fps = f64::from(params.interval.denominator) / f64::from(params.interval.numerator);
            }
            Ok(_) => {}
            Err(e) => log::info!("{p}: cannot set the frame rate ({e}); using the driver's"),
        }
        let buffers = config.buffers.clamp(2, 8);
        let mut stream = MmapStream::with_buffers(&device, Type::VideoCapture, buffers)
            .map_err(|e| lost(&path, "VIDIOC_REQBUFS/mmap", &e))?;
        // `next()` polls internally with this timeout; it is only called when poll already
        // reported a ready buffer, so zero never waits.
        stream.set_timeout(Duration::ZERO);
        // Queue every buffer and start (this is what the crate's `next()` does on first use).
        for i in 0..buffers as usize {
            if let Err(e) = CaptureStream::queue(&mut stream, i) {
                // Fewer buffers may have been granted: stop at the first refusal after one.
                if i == 0 {
                    return Err(lost(&path, "VIDIOC_QBUF", &e));
                }
                break;
            }
        }
        stream
            .start()
            .map_err(|e| lost(&path, "VIDIOC_STREAMON", &e))?;
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
                let decoded = match self.format {
                    PixelFormat::Mjpeg => decode_mjpeg(&data[..used]),
                    PixelFormat::Yuyv => {
                        yuyv_to_rgb(&data[..used], self.width, self.height, self.stride)
                    }
                };
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
                    log::debug!("{}: skipping a bad frame: {why}", self.path.display());
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
            match self.format {
                PixelFormat::Mjpeg => "MJPG",
                PixelFormat::Yuyv => "YUYV",
            },
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
            if crate::door::controller::contain_panic(move || drop(stream)).is_err() {
                log::warn!("{path}: closing the stream failed (device already gone)");
            }
        }
    }
}

/// Converts packed YUYV 4:2:2 (BT.601, limited range: Y 16..235, UV 16..240) to RGB.
/// `stride` is the bytes per line (`bytesperline`, at least `width * 2`; 0 means `width * 2`).
pub fn yuyv_to_rgb(data: &[u8], width: u32, height: u32, stride: u32) -> Result<RgbImage, String> {
    let w = width as usize;
    let h = height as usize;
    if w == 0 || h == 0 || w % 2 != 0 {
        return Err(format!(
            "YUYV frame {width}x{height}: width must be even and non-zero"
        ));
    }
    let stride = if stride == 0 { w * 2 } else { stride as usize };
    if stride < w * 2 {
        return Err(format!("YUYV stride {stride} is less than 2 x width {w}"));
    }
    let need = stride * (h - 1) + w * 2;
    if data.len() < need {
        return Err(format!(
            "YUYV frame truncated: {} bytes, {width}x{height} needs {need}",
            data.len()
        ));
    }
    let mut out = vec![0u8; w * h * 3];
    #[inline(always)]
    fn clamp(v: i32) -> u8 {
        v.clamp(0, 255) as u8
    }
    for (row, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let src = &data[row * stride..row * stride + w * 2];
        for (s, d) in src.chunks_exact(4).zip(dst.chunks_exact_mut(6)) {
            let d_ = i32::from(s[1]) - 128;
            let e_ = i32::from(s[3]) - 128;
            let r_off = 409 * e_ + 128;
            let g_off = -100 * d_ - 208 * e_ + 128;
            let b_off = 516 * d_ + 128;
            let c0 = 298 * (i32::from(s[0]) - 16);
            let c1 = 298 * (i32::from(s[2]) - 16);
            d[0] = clamp((c0 + r_off) >> 8);
            d[1] = clamp((c0 + g_off) >> 8);
            d[2] = clamp((c0 + b_off) >> 8);
            d[3] = clamp((c1 + r_off) >> 8);
            d[4] = clamp((c1 + g_off) >> 8);
            d[5] = clamp((c1 + b_off) >> 8);
        }
    }
    RgbImage::from_raw(width, height, out).ok_or_else(|| "YUYV buffer size mismatch".to_string())
}

/// Decodes one MJPEG frame (inserting the standard Huffman tables if the camera omitted them).
pub fn decode_mjpeg(data: &[u8]) -> Result<RgbImage, String> {
    use image::ImageDecoder;
    let jpeg = insert_default_dht(data);
    let decoder = image::codecs::jpeg::JpegDecoder::new(io::Cursor::new(jpeg.as_ref()))
        .map_err(|e| format!("MJPEG header: {e}"))?;
    let (w, h) = decoder.dimensions();
    if decoder.color_type() != image::ColorType::Rgb8 {
        let img = image::DynamicImage::from_decoder(decoder).map_err(|e| format!("MJPEG: {e}"))?;
        return Ok(img.into_rgb8());
    }
    let mut buf = vec![0u8; decoder.total_bytes() as usize];
    decoder
        .read_image(&mut buf)
        .map_err(|e| format!("MJPEG data: {e}"))?;
    RgbImage::from_raw(w, h, buf).ok_or_else(|| "MJPEG buffer size mismatch".to_string())
}

/// The standard Huffman tables of JPEG Annex K (K.3-K.6) as one DHT segment: what UVC MJPEG
/// frames without a DHT are encoded with (OpenDML AVI MJPEG convention).
pub fn default_dht_segment() -> Vec<u8> {
    const LUMA_DC_BITS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    const CHROMA_DC_BITS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    const DC_VALS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    const LUMA_AC_BITS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    const LUMA_AC_VALS: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xA1, 0x08, 0x23, 0x42, 0xB1, 0xC1, 0x15, 0x52,
        0xD1, 0xF0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0A, 0x16, 0x17, 0x18, 0x19, 0x1A, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2A, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4, 0xB5, 0xB6,
        0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xD2, 0xD3,
        0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE1, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7, 0xE8,
        0xE9, 0xEA, 0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    const CHROMA_AC_BITS: [u8; 16] = [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    const CHROMA_AC_VALS: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xA1, 0xB1, 0xC1, 0x09, 0x23, 0x33,
        0x52, 0xF0, 0x15, 0x62, 0x72, 0xD1, 0x0A, 0x16, 0x24, 0x34, 0xE1, 0x25, 0xF1, 0x17, 0x18,
        0x19, 0x1A, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3A, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4A, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6A, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9A, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 0xA9, 0xAA, 0xB2, 0xB3, 0xB4,
        0xB5, 0xB6, 0xB7, 0xB8, 0xB9, 0xBA, 0xC2, 0xC3, 0xC4, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA,
        0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7, 0xD8, 0xD9, 0xDA, 0xE2, 0xE3, 0xE4, 0xE5, 0xE6, 0xE7,
        0xE8, 0xE9, 0xEA, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8, 0xF9, 0xFA,
    ];
    let tables: [(u8, &[u8; 16], &[u8]); 4] = [
        (0x00, &LUMA_DC_BITS, &DC_VALS),
        (0x10, &LUMA_AC_BITS, &LUMA_AC_VALS),
        (0x01, &CHROMA_DC_BITS, &DC_VALS),
        (0x11, &CHROMA_AC_BITS, &CHROMA_AC_VALS),
    ];
    let body: usize = tables.iter().map(|(_, b, v)| 1 + b.len() + v.len()).sum();
    let len = (body + 2) as u16;
    let mut seg = vec![0xff, 0xc4, (len >> 8) as u8, len as u8];
    for (class_id, bits, vals) in tables {
        seg.push(class_id);
        seg.extend_from_slice(bits);
        seg.extend_from_slice(vals);
    }
    seg
}

/// Returns `jpeg` with the standard DHT segment inserted before the start of scan when the
/// headers carry no Huffman table; unchanged (borrowed) otherwise, or if it is not a JPEG.
pub fn insert_default_dht(jpeg: &[u8]) -> Cow<'_, [u8]> {
    if jpeg.len() < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8 {
        return Cow::Borrowed(jpeg);
    }
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return Cow::Borrowed(jpeg); // not a marker: malformed, let the decoder report it
        }
        let marker = jpeg[i + 1];
        if marker == 0xff {
            i += 1; // fill byte
            continue;
        }
        match marker {
            0xc4 => return Cow::Borrowed(jpeg), // has a DHT
            0xda => {
                let mut out = Vec::with_capacity(jpeg.len() + 420);
                out.extend_from_slice(&jpeg[..i]);
                out.extend_from_slice(&default_dht_segment());
                out.extend_from_slice(&jpeg[i..]);
                return Cow::Owned(out);
            }
            0x01 | 0xd0..=0xd7 => i += 2, // standalone markers
            _ => {
                let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
                i += 2 + len;
            }
        }
    }
    Cow::Borrowed(jpeg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> RgbImage {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name);
        crate::imageio::load_rgb(&path).expect("fixture decodes")
    }

    /// Reference RGB -> YUYV (BT.601 limited range, float, chroma averaged over the pair).
    fn rgb_to_yuyv(img: &RgbImage) -> Vec<u8> {
        let mut out = Vec::with_capacity(img.len() / 3 * 2);
        for row in img.rows() {
            let px: Vec<_> = row.collect();
            for pair in px.chunks_exact(2) {
                let yuv = |p: &image::Rgb<u8>| {
                    let (r, g, b) = (p[0] as f64, p[1] as f64, p[2] as f64);
                    let y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0;
                    let u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0;
                    let v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0;
                    (y, u, v)
                };
                let (y0, u0, v0) = yuv(pair[0]);
                let (y1, u1, v1) = yuv(pair[1]);
                let q = |x: f64| x.round().clamp(0.0, 255.0) as u8;
                out.extend_from_slice(&[q(y0), q((u0 + u1) / 2.0), q(y1), q((v0 + v1) / 2.0)]);
            }
        }
        out
    }

    #[test]
    fn yuyv_reference_colours() {
        // black, white, and BT.601 limited-range primaries (Y, U, V) -> RGB
        let cases: [([u8; 3], [u8; 3]); 5] = [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([81, 90, 240], [255, 0, 0]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [0, 0, 255]),
        ];
        for ([y, u, v], rgb) in cases {
            let img = yuyv_to_rgb(&[y, u, y, v], 2, 1, 0).unwrap();
            for c in 0..3 {
                let got = img.get_pixel(0, 0)[c];
                assert!(
                    got.abs_diff(rgb[c]) <= 2,
                    "YUV {y},{u},{v}: {:?} vs {rgb:?}",
                    img.get_pixel(0, 0)
                );
            }
        }
    }

    #[test]
    fn yuyv_round_trip_on_a_real_frame_with_padded_stride() {
        let img = fixture("clip/hamilton/020.jpg");
        let (w, h) = img.dimensions();
        let packed = rgb_to_yuyv(&img);
        // A driver may pad lines: 64 extra bytes per line.
        let stride = w as usize * 2 + 64;
        let mut padded = vec![0u8; stride * h as usize];
        for (r, line) in packed.chunks_exact(w as usize * 2).enumerate() {
            padded[r * stride..r * stride + line.len()].copy_from_slice(line);
        }
        let back = yuyv_to_rgb(&padded, w, h, stride as u32).unwrap();
        // Luma survives to rounding; chroma is halved horizontally, so compare per-pixel luma
        // and the mean absolute error per channel.
        let mut sum = 0u64;
        for (a, b) in img.pixels().zip(back.pixels()) {
            for c in 0..3 {
                sum += u64::from(a[c].abs_diff(b[c]));
            }
        }
        let mae = sum as f64 / (img.len() as f64);
        assert!(mae < 3.0, "mean abs error {mae}");
        assert!(yuyv_to_rgb(&padded[..padded.len() - 100], w, h, stride as u32).is_err());
    }

    fn strip_dht(jpeg: &[u8]) -> Vec<u8> {
        let mut out = jpeg[..2].to_vec();
        let mut i = 2;
        loop {
            let marker = jpeg[i + 1];
            if marker == 0xda {
                out.extend_from_slice(&jpeg[i..]);
                return out;
            }
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if marker != 0xc4 {
                out.extend_from_slice(&jpeg[i..i + 2 + len]);
            }
            i += 2 + len;
        }
    }

    #[test]
    fn dht_insertion_restores_a_camera_style_mjpeg_frame() {
        let img = fixture("faces/lin-manuel-miranda.png");
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
            .encode_image(&img)
            .unwrap();
        let stripped = strip_dht(&jpeg);
        assert!(stripped.len() < jpeg.len(), "the encoder wrote a DHT");
        assert!(
            !stripped.windows(2).any(|w| w == [0xff, 0xc4]) || stripped.len() + 100 < jpeg.len()
        );
        // Without tables a plain JPEG decoder fails.
        assert!(image::load_from_memory(&stripped).is_err());
        // A frame that has its tables is left alone.
        assert!(matches!(insert_default_dht(&jpeg), Cow::Borrowed(_)));
        let original = decode_mjpeg(&jpeg).unwrap();
        let restored = decode_mjpeg(&stripped).unwrap();
        assert_eq!(original.dimensions(), restored.dimensions());
        assert!(
            original == restored,
            "decodes identically after DHT insertion"
        );
        // The same frame saved to a file (the README's camera check) reads like any photo.
        let from_file = crate::imageio::decode_rgb(&stripped, std::path::Path::new("frame.jpg"))
            .expect("a camera frame without DHT decodes");
        assert!(from_file == original);
    }
}
