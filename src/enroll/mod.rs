//! Enrollment by USB stick: signed bundles, applied completely or not at all, into an
//! encrypted gallery store.
//!
//! # The bundle (on the stick)
//!
//! ```text
//! <stick>/facegate/manifest.toml     what to enrol and remove (see bundle::BundleManifest)
//! <stick>/facegate/manifest.sig      minisign signature over manifest.toml's exact bytes
//! <stick>/facegate/<any>/<photo>     photos, named by relative paths in the manifest
//! <stick>/facegate/facegate-report.txt   written by the door after an import or a rejection
//!                                       (if write_report and the stick is writable; never over
//!                                       an existing file or link: then facegate-report-<UTC>.txt)
//! ```
//!
//! ```toml
//! schema = 1
//! version = 7                      # strictly greater than the version the door holds
//! site = "hq-front"                # the door's [gallery] site or device_id
//! created = "2026-11-30T08:00:00Z"
//! remove = ["bob"]                 # ids whose templates are deleted
//!
//! [[person]]
//! id = "alice"
//! name = "Alice Martin"
//! photos = [{ path = "alice/front.jpg", sha256 = "9f…" }, { path = "alice/left.jpg", sha256 = "…" }]
//! not_after = "2027-06-30T00:00:00Z"                                   # optional, as gallery::Access
//! schedule = [{ days = ["mon","tue","wed","thu","fri"], from = "07:00", to = "19:00" }]
//! ```
//!
//! The signature covers the manifest bytes, and the manifest lists the SHA-256 of every photo,
//! so the signature covers the photos. `facegate bundle sign DIR --key KEY` fills the hashes and
//! writes `manifest.sig`; `facegate bundle check DIR --pubkey KEY --models` runs every check
//! the door runs (including face detection) before anyone walks to the door. Keys and the
//! signature use minisign's formats ([`sign`]), so `minisign -Vm manifest.toml -P KEY` also works.
//!
//! # What the door checks, in order (any failure rejects the whole bundle)
//!
//! 0. Every byte comes off the stick through [`stick::BundleDir`]: the bundle folder is opened
//!    with `O_NOFOLLOW` (it must not be a link), paths inside it are walked folder by folder
//!    with `openat(O_NOFOLLOW)` (no symlinked folder is followed), a file is looked at through
//!    an `O_PATH` descriptor before it is opened (links, FIFOs, sockets, devices and folders
//!    are refused without being opened; a file over its limit without being read), opened
//!    `O_NOFOLLOW | O_NONBLOCK`, `fstat`ed again, and read for at most limit + 1 bytes within
//!    [`stick::READ_DEADLINE`]. This holds for the watcher's poll too (it reads the manifest
//!    and signature to recognise a bundle it has seen): a FIFO, a link to `/dev/zero` or a
//!    1 GB file is reported once per start as a rejection (audited) and the daemon keeps
//!    running. The udev rule also mounts the stick `nosymfollow`.
//! 1. `manifest.toml` (at most 4 MiB) and `manifest.sig` (4 KiB) are regular files in the
//!    bundle folder.
//! 2. The signature is valid for a key pinned in `[gallery] admin_keys` (no default key).
//!    Nothing else in the bundle is parsed or decoded before this passes.
//! 3. The manifest parses (strict schema, unknown keys refused), `schema` is known, `site`
//!    names this door, `version` is greater than the store's, ids are unique and well formed.
//! 4. Then one photo at a time: its path is relative, without `..`, through no link; the file
//!    is a regular file of at most 16 MiB whose SHA-256 (computed while reading) matches the
//!    signed manifest; only then is its header read (at most 8.5 megapixels,
//!    [`bundle::MAX_PHOTO_PIXELS`]) and it is decoded (corrupt/truncated files and
//!    decompression bombs refused by [`crate::imageio`]), its bytes dropped, and the image must contain
//!    exactly one face with eyes at least `min_eye_distance_px` apart. At most one photo is
//!    in memory, so the bundle's size does not matter (300 photos of 8 MB import in the same
//!    memory as one). Embeddings come from the same [`crate::face::FaceEngine`] pipeline as
//!    recognition. All photo problems are reported together (person, file, reason).
//! 5. Only then is the new gallery sealed and written atomically ([`store`]). Photos are never
//!    copied off the stick.
//!
//! # Threat model
//!
//! * Anyone can plug in a stick: without a pinned admin key they cannot add, change or remove
//!   anyone (signature), replay an older signed bundle (monotonic version kept inside the
//!   encrypted store *and* in the sealed state, [`crate::seal`]), or replay a bundle made for
//!   another door (`site`).
//! * Someone with the SD card but without the device key cannot roll enrollment back: restoring
//!   an older store copy, deleting the store or deleting the seal is refused at daemon start
//!   and at import (the seal keeps the store's SHA-256 and the highest imported version;
//!   without the seal, the highest version is recovered from the audit log's `enroll_import`
//!   records), and deleting the key makes the door refuse to start instead of creating a new
//!   one. **Limit:** whoever restores the *whole* state directory (log + store + seal + key) to
//!   an older consistent snapshot, or reads the key off the card and forges a seal, is caught
//!   only by a copy kept off the device (the audit head exported over MQTT, issue 14) or by a
//!   hardware monotonic counter (TPM NV counter). Keep the key on a separate medium
//!   (`[gallery] key_file`) where you can.
//! * A hostile stick may carry crafted files: paths are confined to the bundle (no link is
//!   followed), only regular files are read, sizes and read time are capped, decoding is
//!   limited, and the stick is only read. The optional report is the only write: created
//!   `O_CREAT | O_EXCL | O_NOFOLLOW` inside the bundle folder, never through an existing name.
//! * Someone who copies the store file off the door gets ciphertext; the device key sits next to
//!   it (0600, service user) so an attacker with root on the door gets both: encryption at rest
//!   protects a removed SD card only if the key file lives elsewhere (TPM, separate medium).
//! * An admin key compromise is total for enrollment: rotate by changing `admin_keys`.
//! * Not covered: presentation attacks at the camera (see the daemon's liveness hook), and a
//!   stick that changes its content between the checks and the reads (every byte used is
//!   hashed after it is read, so a swap is detected, not exploited).
//!
//! # Operation
//!
//! * The door's watcher remembers the bundles it has seen (sha256 of manifest + signature) and
//!   the sticks it refused only in memory: after a restart a stick still plugged in is tried
//!   again and refused as a rollback, or refused again for what it holds (audited once per
//!   start). Since every read is bounded, a hostile stick cannot crash the daemon at a restart.
//! * One writer per store: `facegate staff remove` and `facegate enroll import` write the store
//!   directly; run them with the daemon stopped (the daemon keeps its gallery in memory and
//!   its watcher would not see the change until the next start).
//! * The anti-rollback version lives in the encrypted store and in the seal
//!   (`<store>.seal`): a bundle must be newer than both. If the store was deleted, the daemon
//!   refuses to start ("ROLLBACK: the store is missing ...") until it is restored from backup
//!   or rebuilt by `facegate enroll import DIR` with a full bundle newer than the sealed
//!   version; an older copy put back is refused the same way (move it aside, then import).
//! * `device.key` is created only on a fresh install (no store, no seal). If it is missing
//!   beside an existing store, restore it from backup: a new key would make the store
//!   unreadable and reset anti-rollback. Back up key, store and seal together.
//!
//! # Deletion
//!
//! `facegate staff remove ID` and `remove = [...]` rewrite the store without the templates and
//! atomically replace the old ciphertext (fresh nonce). On a filesystem the old blocks are freed,
//! not wiped; on flash (SD cards, eMMC) wear-levelling may keep old pages until they are
//! erased. Those pages hold only ciphertext under the device key, so deleting or rotating the
//! key file (and the store must then be re-imported) is what makes
//! old copies unreadable: crypto-erasure. To do that on purpose, stop the daemon and move the
//! key, the store and its seal aside together (the door then starts as a fresh install; the
//! highest imported version is recovered from the audit log).

pub mod bundle;
pub mod import;
pub mod sign;
pub mod stick;
pub mod store;
pub mod watch;

use std::path::{Path, PathBuf};

/// What is wrong with one file of a bundle (a photo, or the manifest, signature or folder
/// read off the stick). Reports and the audit log show it in snake_case ([`as_str`](Self::as_str)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// Not a plain path inside the bundle: absolute, `..`, a link, a FIFO, a device, a folder.
    Path,
    /// Named by the manifest but not on the stick.
    Missing,
    /// No signed SHA-256 for it, or its bytes do not match the signed one.
    Hash,
    /// Not a decodable image (corrupt, truncated, unsupported format).
    Image,
    /// Over a size limit (bytes, pixels or decoding limits).
    TooLarge,
    /// The stick could not be read (failing, too slow, changed while read).
    Io,
    /// The enrollment rule found no face.
    NoFace,
    /// The enrollment rule found several faces.
    Faces,
    /// The face is too small for the door's gate.
    Quality,
}

impl ProblemKind {
    /// The snake_case name reports and the audit log show.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Path => "path",
            ProblemKind::Missing => "missing",
            ProblemKind::Hash => "hash",
            ProblemKind::Image => "image",
            ProblemKind::TooLarge => "too_large",
            ProblemKind::Io => "io",
            ProblemKind::NoFace => "no_face",
            ProblemKind::Faces => "faces",
            ProblemKind::Quality => "quality",
        }
    }
}

impl std::fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&crate::face::pick::EnrolReject> for ProblemKind {
    fn from(why: &crate::face::pick::EnrolReject) -> Self {
        use crate::face::pick::EnrolReject;
        match why {
            EnrolReject::NoFace => ProblemKind::NoFace,
            EnrolReject::SeveralFaces(_) => ProblemKind::Faces,
            EnrolReject::TooSmall { .. } => ProblemKind::Quality,
        }
    }
}

/// One problem with one photo, for the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    pub person: String,
    pub file: String,
    pub kind: ProblemKind,
    pub reason: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "person {:?}, file {:?}: {}",
            self.person, self.file, self.reason
        )
    }
}

/// Why an enrollment operation failed. Every message names the thing and the fix.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Key(String),
    #[error("bundle signature: {0}")]
    Signature(String),
    #[error(
        "bundle is signed by key {key_id}, which is not pinned in [gallery] admin_keys (pinned: {}); \
         sign with a pinned key or add its public key to the config",
        if pinned.is_empty() { "none".to_string() } else { pinned.join(", ") }
    )]
    KeyNotPinned { key_id: String, pinned: Vec<String> },
    #[error("manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error(
        "bundle version {version} is not newer than the enrolled version {current} (rollback refused); \
         set version = {} or more and re-sign",
        current + 1
    )]
    Rollback { version: u64, current: u64 },
    #[error(
        "bundle is for site {bundle:?} but this door is {device:?}; set site = {:?} in the manifest and re-sign",
        device.first().cloned().unwrap_or_default()
    )]
    WrongSite { bundle: String, device: Vec<String> },
    #[error("duplicate person id {0:?} in the manifest (each id once, and not also in remove)")]
    DuplicateId(String),
    #[error("bundle rejected, {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Rejected(Vec<Problem>),
    #[error("gallery store {path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error(
        "gallery store {path} was made with encoder {store} but the loaded encoder is {models}: \
         its templates are not comparable; load the matching model, or move the store aside and import \
         a new bundle (version > {version})"
    )]
    EncoderMismatch {
        path: PathBuf,
        store: String,
        models: String,
        version: u64,
    },
    #[error("{id:?} is not enrolled in {path}; `facegate staff list` shows who is")]
    NotEnrolled { id: String, path: PathBuf },
    #[error(
        "the {what} {} exists but its key {} is missing: restore {} from backup; a new key would \
         make the {what} unreadable and reset anti-rollback",
        dependent.display(), key.display(), key.display()
    )]
    MissingKey {
        key: PathBuf,
        dependent: PathBuf,
        what: &'static str,
    },
    /// The store is not the one the seal remembers (older copy, replaced, deleted) or its seal
    /// was deleted (issue 10 finding 8).
    #[error("gallery store {path}: ROLLBACK: {reason}")]
    RolledBack { path: PathBuf, reason: String },
    #[error(transparent)]
    Seal(#[from] crate::seal::SealError),
    #[error(transparent)]
    Face(#[from] crate::Error),
}

impl EnrollError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        EnrollError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A short kind for the audit log.
    pub fn kind(&self) -> &'static str {
        match self {
            EnrollError::Io { .. } => "io",
            EnrollError::Key(_) => "key",
            EnrollError::Signature(_) => "signature",
            EnrollError::KeyNotPinned { .. } => "key_not_pinned",
            EnrollError::Manifest { .. } => "manifest",
            EnrollError::Rollback { .. } => "rollback",
            EnrollError::WrongSite { .. } => "site",
            EnrollError::DuplicateId(_) => "duplicate_id",
            EnrollError::Rejected(_) => "photos",
            EnrollError::Store { .. } => "store",
            EnrollError::EncoderMismatch { .. } => "encoder",
            EnrollError::NotEnrolled { .. } => "not_enrolled",
            EnrollError::MissingKey { .. } => "missing_key",
            EnrollError::RolledBack { .. } => "store_rollback",
            EnrollError::Seal(_) => "seal",
            EnrollError::Face(_) => "face",
        }
    }
}

impl From<EnrollError> for crate::Error {
    fn from(e: EnrollError) -> Self {
        match e {
            EnrollError::Face(e) => e,
            other => crate::Error::Invalid(other.to_string()),
        }
    }
}

pub use bundle::BundleManifest;
pub use import::{import_bundle, verify_bundle, ImportOutcome, ImportPolicy, Verified};
pub use sign::{AdminKey, SecretKey};
pub use store::{DeviceKey, Store, StoreData};

#[cfg(test)]
mod tests {
    use super::*;

    /// Reports and the audit log (`problems[].kind` of `enroll_rejected`) show each kind by the
    /// name they showed before the kinds were typed; a new kind must be added here.
    #[test]
    fn problem_kinds_keep_their_names_in_reports_and_the_audit_log() {
        use ProblemKind::*;
        let names = [
            (Path, "path"),
            (Missing, "missing"),
            (Hash, "hash"),
            (Image, "image"),
            (TooLarge, "too_large"),
            (Io, "io"),
            (NoFace, "no_face"),
            (Faces, "faces"),
            (Quality, "quality"),
        ];
        for (kind, name) in names {
            // exhaustive: a kind missing from the table above does not compile
            match kind {
                Path | Missing | Hash | Image | TooLarge | Io | NoFace | Faces | Quality => {}
            }
            assert_eq!(kind.as_str(), name);
            assert_eq!(kind.to_string(), name);
            assert_eq!(serde_json::to_value(kind).expect("serialises"), name);
        }
        let p = Problem {
            person: "alice".into(),
            file: "alice/a.png".into(),
            kind: TooLarge,
            reason: "too big".into(),
        };
        assert_eq!(
            serde_json::to_value(&p).expect("serialises")["kind"],
            "too_large"
        );
    }
}
