//! Shared helpers for the integration tests: the real models, loaded once per test binary,
//! and paths to the committed fixture photos (see tests/fixtures/ATTRIBUTION.md).

#![allow(dead_code)]

use facegate::face::{FaceModels, ModelOptions};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn face(name: &str) -> PathBuf {
    fixture("faces").join(name)
}

pub fn options(encoder: &str) -> ModelOptions {
    ModelOptions {
        encoder: encoder.into(),
        ..ModelOptions::default()
    }
}

/// The default (quantized encoder, short-range detector) models.
pub fn models() -> Arc<FaceModels> {
    static M: OnceLock<Arc<FaceModels>> = OnceLock::new();
    M.get_or_init(|| FaceModels::load(&options("quantized")).expect("models load"))
        .clone()
}

/// The fp32 encoder, for quantization checks.
pub fn models_fp32() -> Arc<FaceModels> {
    static M: OnceLock<Arc<FaceModels>> = OnceLock::new();
    M.get_or_init(|| FaceModels::load(&options("fp32")).expect("models load"))
        .clone()
}

/// CRC-32 (IEEE), for building PNG chunks in tests (decompression-bomb headers).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in data {
        c ^= u32::from(b);
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}
