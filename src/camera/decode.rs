//! Pure frame decoding for cameras, one function per [`PixelFormat`]: MJPEG (with the standard
//! Huffman tables inserted when a UVC camera omits them, [`crate::imageio::insert_default_dht`])
//! and packed YUYV 4:2:2, with no device needed (tests and fuzzing call these directly).
//!
//! A camera is untrusted input (a hostile USB device chooses every byte it sends), so the frame
//! size is the one negotiated with the driver, never the one a frame claims: a JPEG's frame
//! header (SOF) is read with a small marker scan *before* anything is decoded or allocated, and a
//! frame whose size differs from the negotiated one is refused as a [`FrameError`] (the caller
//! drops it and counts it). YUYV size arithmetic is checked (`checked_mul`, also on 32-bit
//! `usize`), and a buffer shorter or longer than the negotiated frame is refused (issue 10,
//! finding 10).

use image::RgbImage;
use std::io;

use crate::imageio::insert_default_dht;

/// Largest frame side accepted from a camera (as `[camera]` width / height allow).
pub const MAX_FRAME_SIDE: u32 = 4096;

/// Why a camera frame was refused. None of these is fatal: the frame is dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame is not the size negotiated with the driver.
    #[error("frame is {got_width}x{got_height}, the negotiated size is {width}x{height}")]
    SizeMismatch {
        got_width: u32,
        got_height: u32,
        width: u32,
        height: u32,
    },
    /// The negotiated size itself is unusable (zero, odd YUYV width, larger than
    /// [`MAX_FRAME_SIDE`], or too large for this machine's address space).
    #[error("frame size {width}x{height}: {why}")]
    BadSize {
        width: u32,
        height: u32,
        why: &'static str,
    },
    /// A YUYV buffer shorter than the frame.
    #[error("YUYV frame truncated: {len} bytes, {width}x{height} needs at least {need}")]
    Truncated {
        len: usize,
        need: usize,
        width: u32,
        height: u32,
    },
    /// A YUYV buffer longer than the frame (stride x height).
    #[error("YUYV frame oversized: {len} bytes, {width}x{height} takes at most {max}")]
    Oversized {
        len: usize,
        max: usize,
        width: u32,
        height: u32,
    },
    /// Not a JPEG, no usable frame header, or corrupt data.
    #[error("MJPEG: {0}")]
    Corrupt(String),
}

/// A pixel format a camera sends and facegate decodes. `[camera] format` names one, or "auto"
/// ([`crate::config::FormatChoice`]); the V4L2 source negotiates it
/// ([`choose_format`](super::v4l2::choose_format)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// Motion JPEG: one JPEG per frame (small USB frames), decoded by [`decode_mjpeg`].
    Mjpeg,
    /// Packed YUYV 4:2:2, converted by [`yuyv_to_rgb`].
    Yuyv,
}

impl PixelFormat {
    /// Every format, in the order "auto" prefers them.
    pub const ALL: [PixelFormat; 2] = [PixelFormat::Mjpeg, PixelFormat::Yuyv];

    /// The V4L2 four-character code of this format.
    pub fn fourcc(self) -> &'static [u8; 4] {
        match self {
            PixelFormat::Mjpeg => b"MJPG",
            PixelFormat::Yuyv => b"YUYV",
        }
    }

    /// The name `[camera] format` uses for it.
    pub fn config_name(self) -> &'static str {
        match self {
            PixelFormat::Mjpeg => "mjpeg",
            PixelFormat::Yuyv => "yuyv",
        }
    }

    /// The format `[camera] format` names (`None`: not a format name).
    pub fn from_config_name(name: &str) -> Option<PixelFormat> {
        Self::ALL.into_iter().find(|f| f.config_name() == name)
    }

    /// Decodes one frame of the negotiated `width` x `height`; `stride` (bytes per line) is
    /// used by YUYV only.
    pub fn decode(
        self,
        data: &[u8],
        width: u32,
        height: u32,
        stride: u32,
    ) -> Result<RgbImage, FrameError> {
        match self {
            PixelFormat::Mjpeg => decode_mjpeg(data, width, height),
            PixelFormat::Yuyv => yuyv_to_rgb(data, width, height, stride),
        }
    }
}

/// The `(width, height)` of a JPEG's frame header (SOF), found by scanning the marker segments
/// up to the start of scan. Allocates nothing; refuses a stream with no SOF or with more than
/// one before the scan (a hostile frame could otherwise show one size here and another to the
/// decoder).
pub fn jpeg_dimensions(jpeg: &[u8]) -> Result<(u32, u32), FrameError> {
    let corrupt = |why: &str| FrameError::Corrupt(why.to_string());
    if jpeg.len() < 4 || jpeg[0] != 0xff || jpeg[1] != 0xd8 {
        return Err(corrupt("no start-of-image marker"));
    }
    let mut size = None;
    let mut i = 2;
    while i + 4 <= jpeg.len() {
        if jpeg[i] != 0xff {
            return Err(corrupt("bytes between marker segments"));
        }
        let marker = jpeg[i + 1];
        match marker {
            0xff => i += 1, // fill byte
            0x01 | 0xd0..=0xd7 => i += 2,
            0xd8 | 0xd9 => return Err(corrupt("image ends before its scan")),
            0xda => return size.ok_or_else(|| corrupt("no frame header (SOF) before the scan")),
            _ => {
                let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
                if len < 2 || i + 2 + len > jpeg.len() {
                    return Err(corrupt("a marker segment runs past the end of the frame"));
                }
                // SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC)
                if matches!(marker, 0xc0..=0xcf) && !matches!(marker, 0xc4 | 0xc8 | 0xcc) {
                    if len < 8 {
                        return Err(corrupt("frame header (SOF) too short"));
                    }
                    if size.is_some() {
                        return Err(corrupt("more than one frame header (SOF)"));
                    }
                    let height = u32::from(u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]));
                    let width = u32::from(u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]));
                    size = Some((width, height));
                }
                i += 2 + len;
            }
        }
    }
    Err(corrupt("no start of scan"))
}

/// Decodes one MJPEG frame of the negotiated `width` x `height` (inserting the standard Huffman
/// tables if the camera omitted them). A frame whose header claims another size is refused
/// before anything is allocated for it.
pub fn decode_mjpeg(data: &[u8], width: u32, height: u32) -> Result<RgbImage, FrameError> {
    use image::ImageDecoder;
    check_size(width, height)?;
    let (w, h) = jpeg_dimensions(data)?;
    if (w, h) != (width, height) {
        return Err(FrameError::SizeMismatch {
            got_width: w,
            got_height: h,
            width,
            height,
        });
    }
    let jpeg = insert_default_dht(data);
    let mut decoder = image::codecs::jpeg::JpegDecoder::new(io::Cursor::new(jpeg.as_ref()))
        .map_err(|e| FrameError::Corrupt(format!("header: {e}")))?;
    // The decoder parses the headers itself: hold it to the same size.
    let (w, h) = decoder.dimensions();
    if (w, h) != (width, height) {
        return Err(FrameError::SizeMismatch {
            got_width: w,
            got_height: h,
            width,
            height,
        });
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(u64::from(width) * u64::from(height) * 4 + (1 << 20));
    decoder
        .set_limits(limits)
        .map_err(|e| FrameError::Corrupt(format!("limits: {e}")))?;
    if decoder.color_type() != image::ColorType::Rgb8 {
        let img = image::DynamicImage::from_decoder(decoder)
            .map_err(|e| FrameError::Corrupt(e.to_string()))?;
        return Ok(img.into_rgb8());
    }
    let len = usize::try_from(decoder.total_bytes()).map_err(|_| FrameError::BadSize {
        width,
        height,
        why: "too large for this machine",
    })?;
    let mut buf = vec![0u8; len];
    decoder
        .read_image(&mut buf)
        .map_err(|e| FrameError::Corrupt(format!("data: {e}")))?;
    RgbImage::from_raw(w, h, buf).ok_or_else(|| FrameError::Corrupt("buffer size mismatch".into()))
}

fn check_size(width: u32, height: u32) -> Result<(), FrameError> {
    let bad = |why| Err(FrameError::BadSize { width, height, why });
    if width == 0 || height == 0 {
        return bad("a side is zero");
    }
    if width > MAX_FRAME_SIDE || height > MAX_FRAME_SIDE {
        return bad("larger than 4096 a side");
    }
    Ok(())
}

/// Converts packed YUYV 4:2:2 (BT.601, limited range: Y 16..235, UV 16..240) to RGB.
/// `stride` is the bytes per line (`bytesperline`, at least `width * 2`; 0 means `width * 2`).
/// `data` must hold the frame: at least `stride * (height - 1) + width * 2` bytes and at most
/// `stride * height`; every size is computed with checked arithmetic.
pub fn yuyv_to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    stride: u32,
) -> Result<RgbImage, FrameError> {
    let bad = |why| FrameError::BadSize { width, height, why };
    check_size(width, height)?;
    if width % 2 != 0 {
        return Err(bad("YUYV width must be even"));
    }
    let overflow = || bad("too large for this machine");
    let w = usize::try_from(width).map_err(|_| overflow())?;
    let h = usize::try_from(height).map_err(|_| overflow())?;
    let row = w.checked_mul(2).ok_or_else(overflow)?;
    let stride = if stride == 0 {
        row
    } else {
        usize::try_from(stride).map_err(|_| overflow())?
    };
    if stride < row {
        return Err(bad("YUYV stride is less than 2 x width"));
    }
    let need = stride
        .checked_mul(h - 1)
        .and_then(|n| n.checked_add(row))
        .ok_or_else(overflow)?;
    let max = stride.checked_mul(h).ok_or_else(overflow)?;
    if data.len() < need {
        return Err(FrameError::Truncated {
            len: data.len(),
            need,
            width,
            height,
        });
    }
    if data.len() > max {
        return Err(FrameError::Oversized {
            len: data.len(),
            max,
            width,
            height,
        });
    }
    let out_len = w
        .checked_mul(h)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(overflow)?;
    let mut out = vec![0u8; out_len];
    #[inline(always)]
    fn clamp(v: i32) -> u8 {
        v.clamp(0, 255) as u8
    }
    for (row_idx, dst) in out.chunks_exact_mut(w * 3).enumerate() {
        let start = row_idx * stride; // < need <= data.len(): no overflow
        let src = &data[start..start + row];
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
    RgbImage::from_raw(width, height, out).ok_or_else(overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;
    use std::path::Path;

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

    /// Issue 11 item 7: one pixel-format type; `[camera] format` names map to it and back.
    #[test]
    fn pixel_format_names_and_fourccs() {
        for f in PixelFormat::ALL {
            assert_eq!(PixelFormat::from_config_name(f.config_name()), Some(f));
        }
        assert_eq!(PixelFormat::from_config_name("auto"), None);
        assert_eq!(
            PixelFormat::from_config_name("MJPEG"),
            None,
            "names are lowercase"
        );
        assert_eq!(PixelFormat::Mjpeg.fourcc(), b"MJPG");
        assert_eq!(PixelFormat::Yuyv.fourcc(), b"YUYV");
        assert_eq!(
            PixelFormat::ALL[0],
            PixelFormat::Mjpeg,
            "auto prefers MJPEG"
        );
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
        let (w, h) = img.dimensions();
        let original = decode_mjpeg(&jpeg, w, h).unwrap();
        let restored = decode_mjpeg(&stripped, w, h).unwrap();
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
