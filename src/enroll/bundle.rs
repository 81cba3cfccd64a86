//! The bundle manifest (`manifest.toml`), reading files confined to the bundle, and the admin
//! side of signing (`facegate bundle sign`).

use super::sign::SecretKey;
use super::stick::{BundleDir, StickError};
use super::{EnrollError, Problem, ProblemKind};
use crate::gallery::{Access, Window};
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// Kept at this path for callers outside the crate (tests); the one definition is
/// [`crate::fsutil::sha256_hex`].
pub use crate::fsutil::sha256_hex;

/// The manifest schema this build reads.
pub const SCHEMA: u32 = 1;
pub const MANIFEST: &str = "manifest.toml";
pub const SIGNATURE: &str = "manifest.sig";
/// Largest manifest accepted (a 1000-person bundle is ~300 KiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
pub const MAX_SIG_BYTES: u64 = 4096;
/// Largest photo file accepted, before decoding (a 12-megapixel phone JPEG is 3-6 MB). With
/// [`MAX_PHOTO_PIXELS`] it bounds the door's memory during an import (issue 10).
pub const MAX_PHOTO_BYTES: u64 = 16 << 20;
/// Largest decoded enrollment photo, in pixels (8.5 megapixels: 3264x2448 and 3840x2160 fit),
/// checked from the image header before decoding. A larger JPEG (phone photos are 12-48 MP) is
/// decoded at 1/2, 1/4 or 1/8 scale within this budget ([`crate::imageio::decode_rgb_within`]);
/// a larger PNG/GIF/PNM is refused. A face needs far fewer pixels; the budget keeps the import's
/// peak memory (file + decoded image + models) under 150 MB.
pub const MAX_PHOTO_PIXELS: u64 = 8_500_000;

/// `manifest.toml` of an enrollment bundle: who to enrol and remove (not the model manifest,
/// [`crate::models`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    pub schema: u32,
    /// Monotonic: the door accepts only a version greater than the one it holds.
    pub version: u64,
    /// The door's `[gallery] site` or `device_id` this bundle is for.
    pub site: String,
    pub created: jiff::Timestamp,
    /// Ids whose templates are deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, rename = "person")]
    pub people: Vec<PersonEntry>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonEntry {
    pub id: String,
    pub name: String,
    pub photos: Vec<PhotoEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<jiff::Timestamp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub schedule: Vec<Window>,
}

impl PersonEntry {
    pub fn access(&self) -> Access {
        Access {
            not_before: self.not_before,
            not_after: self.not_after,
            schedule: self.schedule.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhotoEntry {
    /// Relative to the bundle directory, `/`-separated.
    pub path: String,
    /// Hex SHA-256 of the file; `facegate bundle sign` fills it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
}

impl BundleManifest {
    /// Parses manifest bytes (strict: unknown keys, a wrong schema and truncation are errors).
    pub fn parse(bytes: &[u8], path: &Path) -> Result<BundleManifest, EnrollError> {
        let err = |reason: String| EnrollError::Manifest {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::str::from_utf8(bytes).map_err(|_| err("not UTF-8 text".into()))?;
        let m: BundleManifest = toml::from_str(text).map_err(|e| {
            err(format!(
                "not a valid manifest ({}); fix the TOML and re-sign",
                e.to_string().trim_end()
            ))
        })?;
        if m.schema != SCHEMA {
            return Err(err(format!(
                "schema = {} but this build reads schema {SCHEMA}; update facegate or write schema = {SCHEMA}",
                m.schema
            )));
        }
        if m.site.trim().is_empty() {
            return Err(err(
                "site is empty: name the door (its [gallery] site or device_id)".into(),
            ));
        }
        Ok(m)
    }

    /// Ids must be unique across people and removals, and well formed.
    pub fn check_ids(&self, path: &Path) -> Result<(), EnrollError> {
        let mut seen = std::collections::HashSet::new();
        for id in self.people.iter().map(|p| &p.id).chain(&self.remove) {
            let ok = !id.is_empty()
                && id.len() <= 64
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
            if !ok {
                return Err(EnrollError::Manifest {
                    path: path.to_path_buf(),
                    reason: format!(
                        "person id {id:?} must be 1-64 characters of A-Z a-z 0-9 - _ . @"
                    ),
                });
            }
            if !seen.insert(id.as_str()) {
                return Err(EnrollError::DuplicateId(id.clone()));
            }
        }
        for p in &self.people {
            if p.photos.is_empty() {
                return Err(EnrollError::Manifest {
                    path: path.to_path_buf(),
                    reason: format!("person {:?} has no photos", p.id),
                });
            }
        }
        Ok(())
    }

    pub fn num_photos(&self) -> usize {
        self.people.iter().map(|p| p.photos.len()).sum()
    }
}

/// Checks a manifest path: relative, `/`-separated normal components only.
pub fn check_relative(rel: &str) -> Result<PathBuf, String> {
    if rel.is_empty() {
        return Err("empty path".into());
    }
    if rel.starts_with('/') || rel.starts_with('\\') || rel.contains(':') {
        return Err(format!(
            "{rel:?} is an absolute path; use a path relative to the bundle folder"
        ));
    }
    if rel.contains('\\') || rel.contains('\0') {
        return Err(format!(
            "{rel:?} contains a backslash or NUL; use / between folders"
        ));
    }
    let p = PathBuf::from(rel);
    for c in p.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(format!(
                    "{rel:?} leaves the bundle (..); keep photos inside the bundle folder"
                ))
            }
            _ => {
                return Err(format!(
                    "{rel:?} is an absolute path; use a path relative to the bundle folder"
                ))
            }
        }
    }
    Ok(p)
}

/// The canonical bundle root.
pub fn root_of(dir: &Path) -> Result<PathBuf, EnrollError> {
    dir.canonicalize().map_err(|e| EnrollError::io(dir, e))
}

/// `facegate bundle sign`: fills (or checks, with `verify_only`) the photo hashes, rewrites
/// the manifest if hashes were added, and writes `manifest.sig`. Returns the manifest.
///
/// Opens the bundle folder (no link followed) and reads its manifest's bytes, bounded; the
/// manifest is not parsed (nothing is, before the signature is checked).
pub fn open_with_manifest(root: &Path) -> Result<(BundleDir, Vec<u8>), EnrollError> {
    let mpath = root.join(MANIFEST);
    let err = |e: StickError| EnrollError::Manifest {
        path: mpath.clone(),
        reason: e.reason,
    };
    let folder = BundleDir::open(root).map_err(err)?;
    let bytes = folder
        .read(Path::new(MANIFEST), MAX_MANIFEST_BYTES)
        .map_err(err)?
        .bytes;
    Ok((folder, bytes))
}

/// A hash already present that does not match the photo is an error (the photo changed since
/// the manifest was written): delete the `sha256` entry to accept the new photo.
pub fn sign_bundle(dir: &Path, key: &SecretKey) -> Result<BundleManifest, EnrollError> {
    let root = root_of(dir)?;
    let mpath = root.join(MANIFEST);
    let (folder, bytes) = open_with_manifest(&root)?;
    let mut m = BundleManifest::parse(&bytes, &mpath)?;
    m.check_ids(&mpath)?;
    let mut problems = Vec::new();
    let mut changed = false;
    for p in &mut m.people {
        for photo in &mut p.photos {
            let mut problem = |kind, reason| {
                problems.push(Problem {
                    person: p.id.clone(),
                    file: photo.path.clone(),
                    kind,
                    reason,
                })
            };
            let rel = match check_relative(&photo.path) {
                Ok(r) => r,
                Err(reason) => {
                    problem(ProblemKind::Path, reason);
                    continue;
                }
            };
            match folder.read(&rel, MAX_PHOTO_BYTES) {
                Ok(f) => {
                    let h = hex::encode(f.sha256);
                    if photo.sha256.is_empty() {
                        photo.sha256 = h;
                        changed = true;
                    } else if !photo.sha256.eq_ignore_ascii_case(&h) {
                        problem(ProblemKind::Hash, format!("sha256 {h} but the manifest says {}; the photo changed: delete its sha256 to accept the new one", photo.sha256));
                    }
                }
                Err(e) => problem(e.kind, e.reason),
            }
        }
    }
    if !problems.is_empty() {
        return Err(EnrollError::Rejected(problems));
    }
    let bytes = if changed {
        let text = toml::to_string(&m).map_err(|e| EnrollError::Manifest {
            path: mpath.clone(),
            reason: format!("cannot serialise: {e}"),
        })?;
        crate::fsutil::write_atomic(&mpath, text.as_bytes(), 0o644)?;
        text.into_bytes()
    } else {
        bytes
    };
    let sig = key.sign(&bytes, MANIFEST);
    crate::fsutil::write_atomic(&root.join(SIGNATURE), sig.as_bytes(), 0o644)?;
    Ok(m)
}
