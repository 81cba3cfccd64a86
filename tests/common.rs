//! Shared helpers for the integration tests: the real models, loaded once per test binary,
//! and paths to the committed fixture photos (see tests/fixtures/ATTRIBUTION.md).

#![allow(dead_code)]

use facegate::face::{DetectorChoice, FaceModels, ModelOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn face(name: &str) -> PathBuf {
    fixture("faces").join(name)
}

/// The models the fixtures' recorded results were made with: `encoder`, and the `auto`
/// detector (short-range, then full-range for the photos with small faces).
pub fn options(encoder: &str) -> ModelOptions {
    ModelOptions {
        encoder: encoder.into(),
        detector: DetectorChoice::Auto,
        ..ModelOptions::default()
    }
}

/// The quantized encoder with the `auto` detector ([`options`]).
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
/// Runs the `facegate` binary with `args` (RUST_LOG=warn): exit code, stdout, stderr.
pub fn facegate(args: &[&str]) -> (i32, String, String) {
    let out = facegate_command()
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

pub fn facegate_command() -> std::process::Command {
    command_for(Path::new(env!("CARGO_BIN_EXE_facegate")))
}

/// A `Command` for an executable built for the target: run directly, or through the qemu runner
/// when this kernel cannot start it (see [`facegate_command`]).
pub fn command_for(program: &Path) -> std::process::Command {
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
        None => std::process::Command::new(program),
        Some((runner, args)) => {
            let mut c = std::process::Command::new(runner);
            c.args(args).arg(program);
            c
        }
    }
}

/// Name of the environment variable that selects a child scenario of the test binary.
pub const CHILD: &str = "FACEGATE_TEST_CHILD";

/// Runs this test binary again with only `module::test` selected and [`CHILD`] = `test`: the
/// child runs its scenario in a process of its own (a panic hook and resource limits are
/// process-wide, and the other tests of this binary, of every module, run in parallel threads).
pub fn run_child(module: &str, test: &str, envs: &[(&str, &Path)]) -> std::process::Child {
    let mut cmd = command_for(&std::env::current_exe().unwrap());
    cmd.args([
        &format!("{module}::{test}"),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, test)
    .env("RUST_LOG", "info")
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

/// Runs `module::test` as a [`run_child`] and asserts that it passed (its output in the message).
pub fn child_passes(module: &str, test: &str) {
    let out = run_child(module, test, &[]).wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "--- child stdout\n{stdout}\n--- child stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this process is the child [`run_child`] started for `test`.
pub fn is_child(test: &str) -> bool {
    std::env::var(CHILD).as_deref() == Ok(test)
}
