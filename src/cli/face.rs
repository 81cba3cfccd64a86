//! `facegate verify`, `embed` and `identify`: photos through the door's face pipeline, with
//! the door's face rule ([`crate::face::pick`]) and enrollment rule for a photo gallery.

use super::{EXIT_ERROR, EXIT_NO};
use crate::assemble::{embed_one, gallery_from_dir};
use crate::error::Result;
use crate::face::{FaceModels, ModelOptions};
use crate::imageio::load_rgb;
use std::path::{Path, PathBuf};

/// `facegate verify A B`: the distance between the largest faces of two photos.
pub(super) fn verify(
    opts: &ModelOptions,
    a: &Path,
    b: &Path,
    threshold: Option<f32>,
) -> Result<u8> {
    let models = FaceModels::load(opts)?;
    let mut engine = models.engine()?;
    let fa = embed_one(&mut engine, a)?;
    let fb = embed_one(&mut engine, b)?;
    let t = threshold.unwrap_or_else(|| models.default_threshold());
    let d = fa.embedding.distance(&fb.embedding);
    let same = d < t;
    println!(
        "distance {d:.4} (threshold {t:.3}): {}",
        if same {
            "same person"
        } else {
            "different people"
        }
    );
    Ok(if same { 0 } else { EXIT_NO })
}

/// `facegate embed IMAGE...`: every face of each image as one JSON line.
pub(super) fn embed(opts: &ModelOptions, images: &[PathBuf]) -> Result<u8> {
    let models = FaceModels::load(opts)?;
    let mut engine = models.engine()?;
    let mut failed = false;
    for p in images {
        let result = load_rgb(p).and_then(|img| engine.faces(&img));
        let line = match result {
            Ok(faces) => serde_json::json!({
                "image": p,
                "encoder": models.encoder.name,
                "encoder_sha256": models.encoder.sha256,
                "faces": faces,
            }),
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
                serde_json::json!({ "image": p, "error": e.to_string() })
            }
        };
        println!("{line}");
    }
    Ok(if failed { EXIT_ERROR } else { 0 })
}

/// `facegate identify IMAGE --gallery DIR`: the nearest enrolled person, if near enough.
pub(super) fn identify(
    opts: &ModelOptions,
    image: &Path,
    gallery: &Path,
    threshold: Option<f32>,
) -> Result<u8> {
    let models = FaceModels::load(opts)?;
    // The gallery photos pass the enrollment rule with the door's default minimum eye distance.
    let min_eye = crate::policy::PolicySettings::default().min_eye_distance_px;
    let g = gallery_from_dir(&models, gallery, min_eye)?;
    let mut engine = models.engine()?;
    let face = embed_one(&mut engine, image)?;
    let t = threshold.unwrap_or_else(|| models.default_threshold());
    let m = g.best_match(&face.embedding).expect("gallery is not empty");
    let runner = m
        .runner_up
        .as_ref()
        .map(|(id, d)| format!(", runner-up {id} at {d:.4}"))
        .unwrap_or_default();
    if m.distance < t {
        println!(
            "{} (distance {:.4}, threshold {t:.3}{runner})",
            m.id, m.distance
        );
        Ok(0)
    } else {
        println!(
            "no match: nearest is {} at {:.4}, threshold {t:.3}{runner}",
            m.id, m.distance
        );
        Ok(EXIT_NO)
    }
}
