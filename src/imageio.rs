//! Loading photos and frames into RGB: any supported format, EXIF orientation applied,
//! grey expanded to RGB, and hard limits so a decompression bomb is refused before it is
//! decoded.

use crate::error::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;
use std::path::Path;

/// Largest accepted side, in pixels. A 12000-pixel side is larger than any camera or phone
/// photo an administrator would enrol with.
pub const MAX_SIDE: u32 = 12_000;
/// Largest accepted image area (48 megapixels).
pub const MAX_PIXELS: u64 = 48_000_000;

/// Reads and decodes an image file into RGB with its EXIF orientation applied.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode_rgb(&bytes, path)
}

/// Decodes in-memory bytes (`origin` only names them in errors).
pub fn decode_rgb(bytes: &[u8], origin: &Path) -> Result<RgbImage> {
    // A raw MJPEG camera frame (e.g. saved with `v4l2-ctl --stream-to`) often has no Huffman
    // table and relies on the standard ones: decode it as the camera path does.
    let patched = crate::camera::v4l2::insert_default_dht(bytes);
    let bytes: &[u8] = &patched;
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(origin, e))?;
    if reader.format().is_none() {
        return Err(Error::UnsupportedImage {
            path: origin.to_path_buf(),
            reason: "unrecognised file signature".into(),
        });
    }
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_is_complete(bytes) {
        return Err(Error::CorruptImage {
            path: origin.to_path_buf(),
            reason: "truncated JPEG (no end-of-image marker); copy the file again".into(),
        });
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(e, origin))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 {
        return Err(Error::CorruptImage {
            path: origin.to_path_buf(),
            reason: format!("its header says {width}x{height}: an image without pixels"),
        });
    }
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(Error::ImageTooLarge {
            path: origin.to_path_buf(),
            width,
            height,
            limit: MAX_SIDE,
        });
    }
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| classify(e, origin))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img.into_rgb8())
}

/// A JPEG decoder fills a truncated file with grey and reports success, which would enrol a
/// half-grey face: require the end-of-image marker at the end of the file (cameras may pad
/// with zeros or 0xFF after it).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let end = bytes
        .iter()
        .rposition(|&b| b != 0x00 && b != 0xff)
        .map_or(0, |i| i + 1);
    let tail = &bytes[end.saturating_sub(64)..(end + 2).min(bytes.len())];
    tail.windows(2).any(|w| w == [0xff, 0xd9])
}

fn classify(e: image::ImageError, origin: &Path) -> Error {
    use image::ImageError as E;
    match e {
        E::Unsupported(u) => Error::UnsupportedImage {
            path: origin.to_path_buf(),
            reason: u.to_string(),
        },
        E::Limits(l) => Error::CorruptImage {
            path: origin.to_path_buf(),
            reason: format!("exceeds decoding limits ({l}); scale it down"),
        },
        E::IoError(io) => Error::CorruptImage {
            path: origin.to_path_buf(),
            reason: format!("truncated ({io})"),
        },
        other => Error::CorruptImage {
            path: origin.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

/// Mean of R, G and B as dlib's `get_pixel_intensity` computes it (integer division).
#[inline]
pub fn intensity(p: &image::Rgb<u8>) -> u8 {
    ((u16::from(p.0[0]) + u16::from(p.0[1]) + u16::from(p.0[2])) / 3) as u8
}
