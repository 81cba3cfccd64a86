//! Verifying a bundle (shared by the door and `facegate bundle check`) and applying it to the
//! store, all or nothing.

use super::bundle::{
    self, BundleManifest, MANIFEST, MAX_PHOTO_BYTES, MAX_PHOTO_PIXELS, MAX_SIG_BYTES, SIGNATURE,
};
use super::sign::{self, AdminKey};
use super::stick::BundleDir;
use super::store::{Store, StoreData};
use super::{EnrollError, Problem, ProblemKind};
use crate::face::encode::Embedding;
use crate::face::pick::enrolment_face;
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
    pub manifest: BundleManifest,
    pub key_id: String,
    pub manifest_sha256: String,
    /// With embeddings when an engine was given.
    pub people: Vec<Person>,
    /// Read + hash + decode + detect + embed time per photo.
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

impl ImportOutcome {
    /// The fields of the `enroll_import` audit record, built here only (the USB watcher and
    /// `facegate enroll import` both write it; the seal recovery reads its `version`):
    /// `bundle`, `version`, `key`, `enrolled`, `removed`, `photos`, `people` (in the store
    /// after the import), plus `manifest_sha256` when known (the watcher) and `via` when the
    /// import was not the watcher's (`"enroll import"`).
    pub fn audit_record(
        &self,
        dir: &Path,
        manifest_sha256: Option<&str>,
        via: Option<&str>,
    ) -> serde_json::Value {
        let mut r = serde_json::json!({"bundle": dir, "version": self.version, "key": self.key_id, "enrolled": self.enrolled, "removed": self.removed, "photos": self.photos, "people": self.data.people.len()});
        if let Some(id) = manifest_sha256 {
            r["manifest_sha256"] = id.into();
        }
        if let Some(via) = via {
            r["via"] = via.into();
        }
        r
    }
}

/// Runs every check on the bundle in `dir`, in the order of the [module docs](super): the
/// manifest and signature are read off the stick, the signature is checked against the pinned
/// keys, and only then is the manifest parsed and checked, and every photo read, decoded and
/// (with `engine`) passed through the face pipeline (`progress(done, total)` after each).
/// Without `engine`, faces are not checked.
pub fn verify_bundle(
    dir: &Path,
    policy: &ImportPolicy,
    current_version: u64,
    engine: Option<&mut FaceEngine>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Verified, EnrollError> {
    let (folder, manifest_bytes) = bundle::open_with_manifest(dir)?;
    let key = check_signature(&folder, &manifest_bytes, &policy.admin_keys)?;
    // Signed: from here on the content is the administrator's.
    let manifest = check_manifest(
        &manifest_bytes,
        &dir.join(MANIFEST),
        policy,
        current_version,
    )?;
    let (people, photo_times) = check_photos(&folder, &manifest, policy, engine, progress)?;
    Ok(Verified {
        key_id: key.id_hex(),
        manifest_sha256: crate::fsutil::sha256_hex(&manifest_bytes),
        manifest,
        people,
        photo_times,
    })
}

/// Reads `manifest.sig` (bounded) and checks it over the manifest's exact bytes against the
/// pinned keys; returns the key that signed. Nothing in the bundle is parsed before this.
fn check_signature<'k>(
    folder: &BundleDir,
    manifest_bytes: &[u8],
    admin_keys: &'k [AdminKey],
) -> Result<&'k AdminKey, EnrollError> {
    let sig_bytes = folder
        .read(Path::new(SIGNATURE), MAX_SIG_BYTES)
        .map_err(|e| {
            EnrollError::Signature(match e.kind {
                ProblemKind::Missing => format!("{SIGNATURE} is missing: the bundle is unsigned; sign it with `facegate bundle sign DIR --key KEY`"),
                _ => format!("{}; then re-sign the bundle with `facegate bundle sign DIR --key KEY`", e.reason),
            })
        })?
        .bytes;
    let sig_text = String::from_utf8(sig_bytes).map_err(|_| {
        EnrollError::Signature(format!("{SIGNATURE} is not text; re-sign the bundle"))
    })?;
    sign::verify(manifest_bytes, &sig_text, admin_keys)
}

/// Parses the signed manifest (strict schema) and checks that it is for this door (`site`),
/// newer than what the door holds (`version`, anti-rollback) and that its ids are unique and
/// well formed.
fn check_manifest(
    manifest_bytes: &[u8],
    mpath: &Path,
    policy: &ImportPolicy,
    current_version: u64,
) -> Result<BundleManifest, EnrollError> {
    let manifest = BundleManifest::parse(manifest_bytes, mpath)?;
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
    manifest.check_ids(mpath)?;
    Ok(manifest)
}

/// One problem with one photo before it is attributed to a person: its kind and a message
/// naming the fix.
type PhotoProblem = (ProblemKind, String);

/// Checks every photo of the manifest, one at a time: read (bounded, hashed while reading) ->
/// compare with the signed hash -> decode (only bytes the signature covers) -> drop the file
/// bytes -> detect and embed -> drop the image. At most one photo is in memory; every problem
/// is collected and reported together at the end ([`EnrollError::Rejected`]). Returns the
/// people (with their embeddings when `engine` is given) and the time of each photo read.
fn check_photos(
    folder: &BundleDir,
    manifest: &BundleManifest,
    policy: &ImportPolicy,
    mut engine: Option<&mut FaceEngine>,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Person>, Vec<Duration>), EnrollError> {
    let mut people = people_of(manifest);
    let mut problems = Vec::new();
    let mut photo_times = Vec::new();
    let total = manifest.num_photos();
    let mut done = 0;
    for (person, entry) in people.iter_mut().zip(&manifest.people) {
        for ph in &entry.photos {
            done += 1;
            let t0 = Instant::now();
            let checked = match read_and_decode(folder, &ph.path, &ph.sha256) {
                Err(problem) => Err(problem),
                Ok(img) => {
                    let embedded = match engine.as_deref_mut() {
                        Some(engine) => enrol_embedding(engine, img, policy)?.map(Some),
                        None => Ok(None),
                    };
                    photo_times.push(t0.elapsed());
                    embedded
                }
            };
            match checked {
                Ok(Some(embedding)) => person.embeddings.push(embedding),
                Ok(None) => {}
                Err((kind, reason)) => problems.push(Problem {
                    person: entry.id.clone(),
                    file: ph.path.clone(),
                    kind,
                    reason,
                }),
            }
            progress(done, total);
        }
    }
    if !problems.is_empty() {
        return Err(EnrollError::Rejected(problems));
    }
    Ok((people, photo_times))
}

/// The manifest's people, without embeddings yet (a person without a name is shown by id).
fn people_of(manifest: &BundleManifest) -> Vec<Person> {
    manifest
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
        .collect()
}

/// Runs the face pipeline on one decoded photo (dropped as soon as the faces are found) and
/// applies the one enrollment rule ([`enrolment_face`]). The outer error is a pipeline failure
/// (fatal); the inner one is why this photo cannot enrol its person.
fn enrol_embedding(
    engine: &mut FaceEngine,
    img: image::RgbImage,
    policy: &ImportPolicy,
) -> Result<Result<Embedding, PhotoProblem>, EnrollError> {
    let faces = engine.faces(&img)?;
    drop(img);
    Ok(enrolment_face(faces, policy.min_eye_distance_px)
        .map(|face| face.embedding)
        .map_err(|why| (ProblemKind::from(&why), why.to_string())))
}

/// Reads one photo (bounded, hashed while reading), checks it against the signed hash and
/// decodes it; the file bytes are dropped before returning.
fn read_and_decode(
    folder: &BundleDir,
    path: &str,
    signed_sha256: &str,
) -> Result<image::RgbImage, PhotoProblem> {
    let rel = bundle::check_relative(path).map_err(|reason| (ProblemKind::Path, reason))?;
    if signed_sha256.is_empty() {
        return Err((
            ProblemKind::Hash,
            "the manifest has no sha256 for this photo; run `facegate bundle sign`".into(),
        ));
    }
    let file = folder
        .read(&rel, MAX_PHOTO_BYTES)
        .map_err(|e| (e.kind, e.reason))?;
    let h = hex::encode(file.sha256);
    if !h.eq_ignore_ascii_case(signed_sha256) {
        return Err((ProblemKind::Hash, format!("sha256 mismatch: the file is {h}, the signed manifest says {signed_sha256}; the photo was changed after signing: re-sign the bundle")));
    }
    check_header_size(&file.bytes)?;
    crate::imageio::decode_rgb_within(&file.bytes, Path::new(path), MAX_PHOTO_PIXELS).map_err(|e| {
        let kind = match e {
            crate::Error::ImageTooLarge { .. } | crate::Error::DecodeLimits { .. } => {
                ProblemKind::TooLarge
            }
            _ => ProblemKind::Image,
        };
        (kind, e.to_string())
    })
}

/// The header's size, before decoding: the decoded image is the largest allocation. A JPEG
/// over the budget (a 12-48 MP phone photo) is decoded at a reduced IDCT scale within it;
/// other formats cannot be, and are refused here.
fn check_header_size(bytes: &[u8]) -> Result<(), PhotoProblem> {
    let header = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok();
    let is_jpeg = header.as_ref().and_then(|r| r.format()) == Some(image::ImageFormat::Jpeg);
    if let Some((w, h)) = header.and_then(|r| r.into_dimensions().ok()) {
        let pixels = u64::from(w) * u64::from(h);
        if pixels > MAX_PHOTO_PIXELS && !is_jpeg {
            return Err((
                ProblemKind::TooLarge,
                format!(
                    "{w}x{h} is {:.1} megapixels, over the {:.1}-megapixel limit for enrollment photos \
                     that are not JPEG (it bounds the door's memory); save it as JPEG (any size up to \
                     48 megapixels is decoded at a reduced scale) or scale it down, e.g. to 3264x2448",
                    pixels as f64 / 1e6,
                    MAX_PHOTO_PIXELS as f64 / 1e6
                ),
            ));
        }
    }
    Ok(())
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

/// The report's name in the bundle folder.
pub const REPORT: &str = "facegate-report.txt";

/// Writes the report into the bundle folder itself (never elsewhere on the stick or the door),
/// if the stick is writable: created with `O_CREAT | O_EXCL | O_NOFOLLOW` relative to the
/// bundle folder opened without following links, so an existing file, or a link planted under
/// the report's name, is never written through. If `facegate-report.txt` exists, a fresh
/// `facegate-report-<UTC time>.txt` is tried; if that exists too, no report is written.
/// Returns the file written; every skip is logged with its reason.
pub fn write_report(dir: &Path, text: &str) -> Option<std::path::PathBuf> {
    let folder = match BundleDir::open(dir) {
        Ok(f) => f,
        Err(e) => {
            log::info!("no report on the stick: {e}");
            return None;
        }
    };
    let stamp = jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    for name in [REPORT.to_string(), format!("facegate-report-{stamp}.txt")] {
        match folder.create_new(&name, text.as_bytes()) {
            Ok(path) => {
                log::info!("report written to {}", path.display());
                return Some(path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                log::info!(
                    "{} already exists (file or link): not writing through it",
                    dir.join(&name).display()
                );
            }
            Err(e) => {
                log::info!(
                    "no report on the stick ({}: {e})",
                    dir.join(&name).display()
                );
                return None;
            }
        }
    }
    log::info!(
        "no report on the stick: every report name in {} is taken",
        dir.display()
    );
    None
}
