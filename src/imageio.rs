//! Loading photos and frames into RGB: any supported format, EXIF orientation applied,
//! grey expanded to RGB, and hard limits so a decompression bomb is refused before it is
//! decoded. Also the JPEG Huffman-table fix for camera frames ([`insert_default_dht`]), used
//! here and by the camera's MJPEG decoder ([`crate::camera::decode`]).

use crate::error::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::borrow::Cow;
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
    let patched = insert_default_dht(bytes);
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
        E::Limits(l) => Error::DecodeLimits {
            path: origin.to_path_buf(),
            reason: l.to_string(),
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

/// Like [`decode_rgb`], but the decoded image never holds more than `max_pixels` pixels, so
/// the caller's memory is bounded whatever the photo's size (enrollment imports, issue 10
/// finding 6). A JPEG over the budget (a 12-48 MP phone photo) is decoded at 1/2, 1/4 or 1/8
/// scale inside the IDCT: the full-size image is never built, and a face keeps far more pixels
/// than alignment needs (the chip is 150x150). Other formats over the budget are refused before
/// decoding (`ImageTooLarge`). EXIF orientation is applied as in [`decode_rgb`].
pub fn decode_rgb_within(bytes: &[u8], origin: &Path, max_pixels: u64) -> Result<RgbImage> {
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| Error::io(origin, e))?;
    let format = reader.format();
    let Ok(mut decoder) = reader.into_decoder() else {
        // Let the full decoder produce its precise error (unsupported, corrupt, ...).
        return decode_rgb(bytes, origin);
    };
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    if pixels <= max_pixels {
        drop(decoder);
        return decode_rgb(bytes, origin);
    }
    let too_large = || Error::ImageTooLarge {
        path: origin.to_path_buf(),
        width,
        height,
        limit: MAX_SIDE,
    };
    if format != Some(image::ImageFormat::Jpeg)
        || width > MAX_SIDE
        || height > MAX_SIDE
        || pixels > MAX_PIXELS
    {
        return Err(too_large());
    }
    if !jpeg_is_complete(bytes) {
        return Err(Error::CorruptImage {
            path: origin.to_path_buf(),
            reason: "truncated JPEG (no end-of-image marker); copy the file again".into(),
        });
    }
    let orientation = decoder.orientation().ok();
    drop(decoder);
    let img = decode_jpeg_scaled(bytes, width, height, max_pixels).map_err(|reason| {
        Error::CorruptImage {
            path: origin.to_path_buf(),
            reason,
        }
    })?;
    let mut img = DynamicImage::ImageRgb8(img);
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img.into_rgb8())
}

/// The smallest IDCT scale (1/2, 1/4, 1/8) that brings `width` x `height` within `max_pixels`,
/// as the divisor; `None` when even 1/8 is over.
pub fn jpeg_scale_divisor(width: u32, height: u32, max_pixels: u64) -> Option<u32> {
    [1u32, 2, 4, 8]
        .into_iter()
        .find(|&d| u64::from(width.div_ceil(d)) * u64::from(height.div_ceil(d)) <= max_pixels)
}

fn decode_jpeg_scaled(
    bytes: &[u8],
    width: u32,
    height: u32,
    max_pixels: u64,
) -> std::result::Result<RgbImage, String> {
    let d = jpeg_scale_divisor(width, height, max_pixels)
        .ok_or_else(|| format!("{width}x{height} cannot be decoded within {max_pixels} pixels"))?;
    let mut dec = jpeg_decoder::Decoder::new(Cursor::new(bytes));
    dec.read_info().map_err(|e| e.to_string())?;
    // Requests are u16 (the JPEG limit); MAX_SIDE keeps the division in range.
    let req = |v: u32| u16::try_from(v.div_ceil(d)).unwrap_or(u16::MAX);
    let (w, h) = dec
        .scale(req(width), req(height))
        .map_err(|e| e.to_string())?;
    let (w, h) = (u32::from(w), u32::from(h));
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(format!(
            "scaled decode gave {w}x{h}, over {max_pixels} pixels"
        ));
    }
    // The decoder's working buffers stay within a few times the output.
    dec.set_max_decoding_buffer_size((max_pixels as usize).saturating_mul(8));
    let data = dec.decode().map_err(|e| e.to_string())?;
    let info = dec.info().ok_or("no image information after decoding")?;
    let rgb: Vec<u8> = match info.pixel_format {
        jpeg_decoder::PixelFormat::RGB24 => data,
        jpeg_decoder::PixelFormat::L8 => data.iter().flat_map(|&g| [g, g, g]).collect(),
        jpeg_decoder::PixelFormat::L16 => data
            .chunks_exact(2)
            .flat_map(|c| {
                let g = c[0];
                [g, g, g]
            })
            .collect(),
        jpeg_decoder::PixelFormat::CMYK32 => data
            .chunks_exact(4)
            .flat_map(|c| {
                // As image 0.24 converted jpeg-decoder's CMYK: (1 - C)(1 - K).
                let k = 255 - u16::from(c[3]);
                let ch = |v: u8| (((255 - u16::from(v)) * k) / 255) as u8;
                [ch(c[0]), ch(c[1]), ch(c[2])]
            })
            .collect(),
    };
    RgbImage::from_raw(w, h, rgb).ok_or_else(|| format!("decoded {w}x{h} has the wrong length"))
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
mod within_tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85)
            .encode_image(&img)
            .unwrap();
        out
    }

    #[test]
    fn scale_divisor_is_the_smallest_that_fits() {
        assert_eq!(jpeg_scale_divisor(4032, 3024, 8_500_000), Some(2));
        assert_eq!(jpeg_scale_divisor(8000, 6000, 8_500_000), Some(4));
        assert_eq!(jpeg_scale_divisor(3840, 2160, 8_500_000), Some(1));
        assert_eq!(jpeg_scale_divisor(12_000, 12_000, 1000), None);
    }

    #[test]
    fn a_jpeg_over_the_budget_is_decoded_at_reduced_scale_and_others_whole() {
        let p = Path::new("x.jpg");
        let big = decode_rgb_within(&jpeg(2000, 1500), p, 1_000_000).unwrap();
        assert_eq!(big.dimensions(), (1000, 750));
        let small = decode_rgb_within(&jpeg(800, 600), p, 1_000_000).unwrap();
        assert_eq!(small.dimensions(), (800, 600));
        // The same picture, decoded whole and at half scale, agrees at a coarse level.
        let whole = decode_rgb(&jpeg(2000, 1500), p).unwrap();
        let (a, b) = (whole.get_pixel(1200, 900), big.get_pixel(600, 450));
        assert!(
            a.0.iter().zip(b.0).all(|(x, y)| x.abs_diff(y) < 24),
            "{a:?} {b:?}"
        );
    }
}
