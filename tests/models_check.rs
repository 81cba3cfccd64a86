//! The daemon refuses a model whose checksum or shape does not match the manifest.

use facegate::face::{FaceModels, ModelOptions};
use facegate::models::ModelDir;
use facegate::Error;
use std::path::Path;

/// A copy of the models directory (files linked, manifest copied) that a test may edit.
pub fn scratch_models() -> tempfile::TempDir {
    let src = ModelDir::default_path();
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let to = dir.path().join(p.file_name().unwrap());
            if p.file_name().unwrap() == "models.toml" {
                std::fs::copy(&p, &to).unwrap();
            } else {
                std::os::unix::fs::symlink(std::fs::canonicalize(&p).unwrap(), &to).unwrap();
            }
        }
    }
    dir
}

/// Edits one value of the manifest (parsed as TOML, so the file's layout does not matter).
pub fn edit_manifest(dir: &Path, section: &str, name: &str, key: &str, value: toml::Value) {
    let p = dir.join("models.toml");
    let mut doc: toml::Table = std::fs::read_to_string(&p).unwrap().parse().unwrap();
    let entry = doc[section].as_table_mut().unwrap()[name]
        .as_table_mut()
        .unwrap();
    assert!(entry.contains_key(key), "no {key} in [{section}.{name}]");
    entry.insert(key.to_string(), value);
    std::fs::write(&p, toml::to_string(&doc).unwrap()).unwrap();
}

fn load(dir: &Path, encoder: &str) -> Result<(), Error> {
    FaceModels::load(&ModelOptions {
        models_dir: dir.to_path_buf(),
        encoder: encoder.into(),
        ..ModelOptions::default()
    })
    .map(|_| ())
}

#[test]
fn a_model_with_the_wrong_checksum_is_refused() {
    let dir = scratch_models();
    edit_manifest(
        dir.path(),
        "encoder",
        "fp32",
        "sha256",
        "0".repeat(64).into(),
    );
    let e = load(dir.path(), "fp32").unwrap_err();
    assert!(matches!(e, Error::ModelChecksum { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("dlib_face_resnet_v1.onnx") && msg.contains("tools/models/build.sh"),
        "{msg}"
    );
}

#[test]
fn a_model_swapped_for_another_file_is_refused() {
    let dir = scratch_models();
    // point the encoder entry at the detector file, keeping the encoder's checksum
    edit_manifest(
        dir.path(),
        "encoder",
        "fp32",
        "file",
        "face_detection_short_range.onnx".into(),
    );
    assert!(matches!(
        load(dir.path(), "fp32").unwrap_err(),
        Error::ModelChecksum { .. }
    ));
}

#[test]
fn a_shape_mismatch_is_refused() {
    let dir = scratch_models();
    edit_manifest(dir.path(), "encoder", "fp32", "chip_size", 112.into());
    let e = load(dir.path(), "fp32").unwrap_err();
    assert!(matches!(e, Error::Model { .. }), "{e}");
}

#[test]
fn unknown_encoder_and_missing_manifest_are_clear() {
    let dir = scratch_models();
    let e = load(dir.path(), "fp16").unwrap_err().to_string();
    assert!(e.contains("fp16") && e.contains("quantized"), "{e}");
    let empty = tempfile::tempdir().unwrap();
    let e = load(empty.path(), "fp32").unwrap_err().to_string();
    assert!(e.contains("models.toml"), "{e}");
}
