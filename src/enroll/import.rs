//! Verifying a bundle (shared by the door and `facegate bundle check`) and applying it to the
//! store, all or nothing.

use super::bundle::{
    self, Manifest, MANIFEST, MAX_MANIFEST_BYTES, MAX_PHOTO_BYTES, MAX_SIG_BYTES, SIGNATURE,
};
use super::sign::{self, AdminKey};
use super::store::{Store, StoreData};
use super::{EnrollError, Problem};
use crate::face::FaceEngine;
use crate::gallery::Person;
use std::path::Path;
use std::time::{Duration, Instant};

/// What the door accepts.
#[derive(Debug, Clone)]
pub struct ImportPolicy {
    /// Pinned admin keys; empty refuses every bundle.
    pub admin_keys: Vec<AdminKey>,
    /// Names this door answers to (`site`, `device_id`); empty skips the check (admin side only).
    pub sites: Vec<String>,
    /// Smallest distance between the eye centres in an enrollment photo.
    pub min_eye_distance_px: f32,
}

/// Default minimum eye distance for enrollment photos (the door's recognition gate is 32 px).
pub const MIN_EYE_DISTANCE_PX: f32 = 32.0;

/// A bundle that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: Manifest,
    pub key_id: String,
    pub manifest_sha256: String,
    /// With embeddings when an engine was given.
    pub people: Vec<Person>,
    /// Decode + detect + embed time per photo.
    pub photo_times: Vec<Duration>,
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct ImportOutcome {
    pub version: u64,
    pub key_id: String,
    pub enrolled: Vec<String>,
    pub removed: Vec<String>,
    pub photos: usize,
    pub elapsed: Duration,
    pub data: StoreData,
}

/// Runs every check on the bundle in `dir`. With `engine`, every photo goes through the face
/// pipeline (`progress(done, total)` after each); without, faces are not checked.
pub fn verify_bundle(
    dir: &Path,
    policy: &ImportPolicy,
    current_version: u64,
    mut engine: Option<&mut FaceEngine>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Verified, EnrollError> {
    let root = bundle::root_of(dir)?;
    let mpath = root.join(MANIFEST);
    let manifest_bytes = bundle::read_confined(&root, Path::new(MANIFEST), MAX_MANIFEST_BYTES)
        .map_err(|(_, reason)| EnrollError::Manifest {
            path: mpath.clone(),
            reason,
        })?;
    let sig_bytes = bundle::read_confined(&root, Path::new(SIGNATURE), MAX_SIG_BYTES).map_err(
        |(kind, reason)| {
            EnrollError::Signature(if kind == "missing" {
                format!("{SIGNATURE} is missing: the bundle is unsigned; sign it with `facegate bundle sign DIR --key KEY`")
            } else {
                format!("{reason}; re-sign the bundle with `facegate bundle sign DIR --key KEY`")
            })
        },
    )?;
    let sig_text = String::from_utf8(sig_bytes).map_err(|_| {
        EnrollError::Signature(format!("{SIGNATURE} is not text; re-sign the bundle"))
    })?;
    let key = sign::verify(&manifest_bytes, &sig_text, &policy.admin_keys)?;
    // Signed: from here on the content is the administrator's.
    let manifest = Manifest::parse(&manifest_bytes, &mpath)?;
    if !policy.sites.is_empty() && !policy.sites.iter().any(|s| s == &manifest.site) {
        return Err(EnrollError::WrongSite {
            bundle: manifest.site.clone(),
            device: policy.sites.clone(),
        });
    }
    if manifest.version <= current_version {
        return Err(EnrollError::Rollback {
            version: manifest.version,
            current: current_version,
        });
    }
    manifest.check_ids(&mpath)?;

    // Paths and hashes of every photo before decoding any.
    let mut problems = Vec::new();
    let mut photos: Vec<(usize, String, Vec<u8>)> = Vec::new();
    for (pi, p) in manifest.people.iter().enumerate() {
        for ph in &p.photos {
            let mut problem = |kind, reason| {
                problems.push(Problem {
                    person: p.id.clone(),
                    file: ph.path.clone(),
                    kind,
                    reason,
                })
            };
            let rel = match bundle::check_relative(&ph.path) {
                Ok(r) => r,
                Err(reason) => {
                    problem("path", reason);
                    continue;
                }
            };
            match bundle::read_confined(&root, &rel, MAX_PHOTO_BYTES) {
                Ok(bytes) => {
                    let h = bundle::sha256_hex(&bytes);
                    if ph.sha256.is_empty() {
                        problem(
                            "hash",
                            "the manifest has no sha256 for this photo; run `facegate bundle sign`"
                                .into(),
                        );
                    } else if !h.eq_ignore_ascii_case(&ph.sha256) {
                        problem("hash", format!("sha256 mismatch: the file is {h}, the signed manifest says {}; the photo was changed after signing: re-sign the bundle", ph.sha256));
                    } else {
                        photos.push((pi, ph.path.clone(), bytes));
                    }
                }
                Err((kind, reason)) => problem(kind, reason),
            }
        }
    }
    if !problems.is_empty() {
        return Err(EnrollError::Rejected(problems));
    }

    let mut people: Vec<Person> = manifest
        .people
        .iter()
        .map(|p| Person {
            id: p.id.clone(),
            name: if p.name.is_empty() {
                p.id.clone()
            } else {
                p.name.clone()
            },
            embeddings: Vec::new(),
            access: p.access(),
        })
        .collect();
    let mut photo_times = Vec::new();
    let total = photos.len();
    for (done, (pi, file, bytes)) in photos.into_iter().enumerate() {
        let person = &manifest.people[pi].id;
        let mut problem = |kind, reason| {
            problems.push(Problem {
                person: person.clone(),
                file: file.clone(),
                kind,
                reason,
            })
        };
        let t0 = Instant::now();
        let img = match crate::imageio::decode_rgb(&bytes, Path::new(&file)) {
            Ok(i) => i,
            Err(e) => {
                let kind = if matches!(e, crate::Error::ImageTooLarge { .. })
                    || matches!(&e, crate::Error::CorruptImage { reason, .. } if reason.contains("limits"))
                {
                    "too_large"
                } else {
                    "image"
                };
                problem(kind, e.to_string());
                progress(done + 1, total);
                continue;
            }
        };
        if let Some(engine) = engine.as_deref_mut() {
            let faces = engine.faces(&img)?;
            match faces.len() {
                0 => problem(
                    "no_face",
                    "no face found; use a frontal, well-lit photo of the person alone".into(),
                ),
                1 => {
                    let eye = faces[0].eye_distance() as f32;
                    if eye < policy.min_eye_distance_px {
                        problem("quality", format!(
                            "face too small: {eye:.0} px between the eyes, need {:.0}; use a closer or larger photo",
                            policy.min_eye_distance_px
                        ));
                    } else {
                        people[pi].embeddings.push(faces[0].embedding);
                    }
                }
                n => problem(
                    "faces",
                    format!("{n} faces in the photo; use a photo of {person} alone"),
                ),
            }
        }
        photo_times.push(t0.elapsed());
        progress(done + 1, total);
    }
    if !problems.is_empty() {
        return Err(EnrollError::Rejected(problems));
    }
    Ok(Verified {
        key_id: key.id_hex(),
        manifest_sha256: bundle::sha256_hex(&manifest_bytes),
        manifest,
        people,
        photo_times,
    })
}

/// Verifies the bundle against the store's version and, if everything passes, writes the new
/// store (the old one stays untouched on any error).
pub fn import_bundle(
    dir: &Path,
    policy: &ImportPolicy,
    store: &Store,
    engine: &mut FaceEngine,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<ImportOutcome, EnrollError> {
    let t0 = Instant::now();
    let encoder = engine.models().encoder.sha256.clone();
    // max(store version, sealed version); a deleted store counts as empty (issue 10 finding 8)
    let mut data = store.load_for_import(&encoder)?;
    let v = verify_bundle(dir, policy, data.bundle_version, Some(engine), progress)?;
    let removed: Vec<String> = v
        .manifest
        .remove
        .iter()
        .filter(|id| data.people.iter().any(|p| &p.id == *id))
        .cloned()
        .collect();
    data.people.retain(|p| !v.manifest.remove.contains(&p.id));
    let enrolled: Vec<String> = v.people.iter().map(|p| p.id.clone()).collect();
    for p in v.people {
        data.people.retain(|q| q.id != p.id);
        data.people.push(p);
    }
    data.bundle_version = v.manifest.version;
    data.signed_by = v.key_id.clone();
    data.updated = jiff::Timestamp::now();
    data.encoder_sha256 = encoder;
    store.save(&data)?;
    Ok(ImportOutcome {
        version: v.manifest.version,
        key_id: v.key_id,
        enrolled,
        removed,
        photos: v.photo_times.len(),
        elapsed: t0.elapsed(),
        data,
    })
}

/// The text of `facegate-report.txt`.
pub fn report_text(dir: &Path, result: &Result<ImportOutcome, EnrollError>) -> String {
    let now = jiff::Timestamp::now();
    match result {
        Ok(o) => format!(
            "facegate {now}: bundle {} version {} imported: {} enrolled, {} removed, {} photos\n",
            dir.display(),
            o.version,
            o.enrolled.len(),
            o.removed.len(),
            o.photos
        ),
        Err(e) => format!(
            "facegate {now}: bundle {} REJECTED, nothing was changed:\n{e}\n",
            dir.display()
        ),
    }
}

/// Writes `facegate-report.txt` next to the bundle folder (the stick's root), if possible.
pub fn write_report(dir: &Path, text: &str) {
    let target = dir.parent().unwrap_or(dir).join("facegate-report.txt");
    match std::fs::write(&target, text) {
        Ok(()) => log::info!("report written to {}", target.display()),
        Err(e) => log::info!("no report on the stick ({}: {e})", target.display()),
    }
}
