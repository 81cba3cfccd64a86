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

/// A `Command` for the `facegate` binary under test.
///
/// Cross-built tests run under qemu-user (`.cargo/config.toml`'s runner). A kernel without
/// binfmt_misc cannot start the ARM binary they spawn (ENOEXEC); it is then started through the
/// same qemu runner, named by `FACEGATE_TEST_RUNNER` (words separated by spaces) or, by
/// default, the one `.cargo/config.toml` uses for this architecture.
pub fn facegate_command() -> std::process::Command {
    static RUNNER: OnceLock<Vec<String>> = OnceLock::new();
    let bin = env!("CARGO_BIN_EXE_facegate");
    let runner = RUNNER.get_or_init(|| {
        let direct = std::process::Command::new(bin)
            .arg("--help")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
        // ENOEXEC; under qemu-user the failed exec of posix_spawn shows as exit status 127.
        let cannot_exec = match &direct {
            Err(e) => e.raw_os_error() == Some(8),
            Ok(status) => status.code() == Some(127),
        };
        match direct {
            _ if cannot_exec => {
                if let Ok(words) = std::env::var("FACEGATE_TEST_RUNNER") {
                    return words.split_whitespace().map(String::from).collect();
                }
                let words: &[&str] = match std::env::consts::ARCH {
                    "aarch64" => &["qemu-aarch64-static", "-L", "/usr/aarch64-linux-gnu", "-cpu", "cortex-a72"],
                    "arm" => &["qemu-arm-static", "-L", "/usr/arm-linux-gnueabihf", "-cpu", "cortex-a15"],
                    other => panic!("cannot start {bin} ({direct:?}) and no qemu runner is known for {other}: set FACEGATE_TEST_RUNNER"),
                };
                words.iter().map(|w| w.to_string()).collect()
            }
            _ => Vec::new(),
        }
    });
    match runner.split_first() {
        None => std::process::Command::new(bin),
        Some((program, args)) => {
            let mut c = std::process::Command::new(program);
            c.args(args).arg(bin);
            c
        }
    }
}
