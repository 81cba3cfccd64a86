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
