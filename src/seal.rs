//! The sealed state: what the door must not forget when someone rolls files back.
//!
//! A hash chain cannot see its last records removed, and a store cannot see that an older copy
//! of itself was put back. Both facts are therefore also kept in one small file, authenticated
//! with the device key ([`crate::enroll::store::DeviceKey`]), that nobody without the key can
//! forge:
//!
//! * the audit log's head: `seq` and SHA-256 of the last record ([`crate::audit::AuditLog::head`]);
//! * the store as last written: bundle version and SHA-256 of the store file's bytes (the
//!   ciphertext; a fresh nonce on every write makes it unique per write);
//! * `max_version`: the highest bundle version ever accepted. Imports must exceed
//!   `max(store version, max_version)`, so deleting the store no longer resets anti-rollback.
//!
//! # Location and format
//!
//! `<store>.seal` beside the gallery store (e.g. `/var/lib/facegate/gallery.store.seal`): the
//! state directory, not the log directory, so deleting `/var/log/facegate` is noticed. The file
//! is two lines: the state as JSON (readable: `head -1 gallery.store.seal`) and
//! `blake2b-256 <hex>`, a keyed BLAKE2b MAC over the exact bytes of the first line (key: the
//! device key, personalisation `facegate-seal-v1`, so the MAC never collides with the store's
//! ChaCha20-Poly1305 use of the same key). It is replaced with
//! [`write_atomic`](crate::fsutil::write_atomic) after every audit append and around every
//! store write (see [`crate::enroll::store::Store::save`]).
//!
//! Without a store there is no device key, and the log runs **unsealed**, with a warning at every
//! start: creating a key beside the log it protects would add little (whoever can truncate the
//! log can read a key next to it), and a second key that a store configured later would not use
//! would make that change look like tampering.
//!
//! # The honest limit
//!
//! The seal detects rolling back *one* of log, store or seal. An attacker who restores the whole
//! state (log + store + seal + key) to an older consistent snapshot, or who reads the device key
//! off the card and forges a seal, is caught only by a copy kept off the device (the audit head
//! exported over MQTT, issue 14) or by a hardware monotonic counter (TPM NV counter, secure
//! element). Keep the device key on a separate medium (`[gallery] key_file`) where possible.

use crate::enroll::store::DeviceKey;
use blake2::digest::{consts::U32, Mac};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

/// The seal's format number (first line, `format`).
pub const FORMAT: u32 = 1;
const PERSONA: &[u8] = b"facegate-seal-v1";
const MAC_PREFIX: &str = "blake2b-256 ";
/// Largest seal file read (a real one is a few hundred bytes).
const MAX_SEAL_BYTES: u64 = 64 * 1024;

type SealMac = blake2::Blake2bMac<U32>;

/// A chain head: `seq` and hex SHA-256 of that record's line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub seq: u64,
    pub hash: String,
}

/// One written store file: its bundle version and the SHA-256 of its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreSeal {
    pub version: u64,
    pub sha256: String,
}

/// What the seal remembers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SealedState {
    pub format: u32,
    /// The audit log's head after the last append (`None`: no log sealed yet).
    pub audit: Option<Head>,
    /// The store as last written (`None`: no store written under this seal).
    pub store: Option<StoreSeal>,
    /// A store write in progress: set before the rename, cleared after it. A power cut in
    /// between leaves a store matching `pending_store`, which is then accepted.
    pub pending_store: Option<StoreSeal>,
    /// The highest bundle version ever accepted (imports must exceed it).
    pub max_version: u64,
    /// Number of times the seal was written (informational).
    pub writes: u64,
}

impl Default for SealedState {
    fn default() -> Self {
        SealedState {
            format: FORMAT,
            audit: None,
            store: None,
            pending_store: None,
            max_version: 0,
            writes: 0,
        }
    }
}

/// A seal that cannot be read, authenticated or written. Names the file and the fix.
#[derive(Debug, thiserror::Error)]
#[error("sealed state {}: {reason}", path.display())]
pub struct SealError {
    pub path: PathBuf,
    pub reason: String,
}

/// What [`crate::audit::scan`] found in the audit log when the seal file was missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFacts {
    /// Records in the log.
    pub records: u64,
    /// The highest `version` of an `enroll_import` record.
    pub max_import_version: u64,
    /// `seq` of the first `audit_sealed` record: the log was sealed before.
    pub sealed_at: Option<u64>,
}

/// The seal file's path for a store: `<store>.seal`.
pub fn path_for_store(store: &Path) -> PathBuf {
    let mut name = store
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "gallery.store".into());
    name.push(".seal");
    store.with_file_name(name)
}

/// Where the seal and its key are for a configuration; `None` without a `[gallery] store`
/// (the log then runs unsealed, see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealPaths {
    pub seal: PathBuf,
    pub key: PathBuf,
    pub store: PathBuf,
}

impl SealPaths {
    pub fn of(cfg: &crate::config::Config) -> Option<SealPaths> {
        let store = cfg.gallery.store.clone()?;
        let key = cfg.gallery.key_path()?;
        Some(SealPaths {
            seal: path_for_store(&store),
            key,
            store,
        })
    }
}

struct Inner {
    state: SealedState,
    /// The file exists (it was read at open or has been written since).
    on_disk: bool,
}

/// An open seal. One instance per file and process ([`Seal::open`] hands out the same `Arc`
/// while one is alive), so the audit log and the store update it without overwriting each
/// other's fields.
pub struct Seal {
    path: PathBuf,
    key: [u8; 32],
    /// The file did not exist when it was first opened by this process.
    missing_at_open: bool,
    facts: Option<LogFacts>,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Seal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seal")
            .field("path", &self.path)
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

static OPEN: Mutex<Vec<(PathBuf, Weak<Seal>)>> = Mutex::new(Vec::new());

fn mac(key: &[u8; 32], body: &[u8]) -> SealMac {
    let mut m = <SealMac>::new_with_salt_and_personal(key, b"", PERSONA)
        .expect("32-byte key and 16-byte persona are within BLAKE2b's limits");
    m.update(body);
    m
}

impl Seal {
    /// Opens the seal at `path` (or starts an empty one if the file does not exist yet; it is
    /// written at the first [`update`](Self::update)). When the file is missing and `audit_log`
    /// is given, the log is scanned: the highest imported version found there becomes
    /// `max_version`, so deleting the seal does not reset anti-rollback either.
    pub fn open(
        path: &Path,
        key: &DeviceKey,
        audit_log: Option<&Path>,
    ) -> Result<Arc<Seal>, SealError> {
        let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let mut open = OPEN.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(s) = open
            .iter()
            .find(|(p, _)| *p == abs)
            .and_then(|(_, w)| w.upgrade())
        {
            if s.key != *key.bytes() {
                return Err(SealError {
                    path: path.to_path_buf(),
                    reason: format!(
                        "already open with another key than {}; one seal belongs to one device key",
                        key.path.display()
                    ),
                });
            }
            return Ok(s);
        }
        let read = Seal::read(path, key)?;
        let missing_at_open = read.is_none();
        let mut facts = None;
        let mut state = read.clone().unwrap_or_default();
        if missing_at_open {
            if let Some(log) = audit_log {
                let f = crate::audit::scan(log).map_err(|e| SealError {
                    path: path.to_path_buf(),
                    reason: format!(
                        "the seal is missing and the audit log {} cannot be read to recover the \
                         highest imported version: {e}",
                        log.display()
                    ),
                })?;
                state.max_version = f.max_import_version;
                facts = Some(f);
            }
        }
        let seal = Arc::new(Seal {
            path: path.to_path_buf(),
            key: *key.bytes(),
            missing_at_open,
            facts,
            inner: Mutex::new(Inner {
                state,
                on_disk: !missing_at_open,
            }),
        });
        open.push((abs, Arc::downgrade(&seal)));
        Ok(seal)
    }

    /// Reads and authenticates the seal without keeping it open (`facegate audit verify`).
    /// `Ok(None)` if the file does not exist.
    pub fn read(path: &Path, key: &DeviceKey) -> Result<Option<SealedState>, SealError> {
        let err = |reason: String| SealError {
            path: path.to_path_buf(),
            reason,
        };
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err(format!("cannot read it: {e}"))),
        };
        if !meta.file_type().is_file() || meta.len() > MAX_SEAL_BYTES {
            return Err(err(format!(
                "not a regular file of at most {MAX_SEAL_BYTES} bytes; it was replaced: restore \
                 it from backup (see the README's security section)"
            )));
        }
        let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        let text = String::from_utf8(bytes).map_err(|_| err("not text".into()))?;
        let (body, rest) = text.split_once('\n').unwrap_or((&text, ""));
        let tag = rest
            .trim_end_matches('\n')
            .strip_prefix(MAC_PREFIX)
            .and_then(|h| hex::decode(h).ok())
            .ok_or_else(
                || err("no `blake2b-256` line: the file is damaged or not a seal".into()),
            )?;
        mac(key.bytes(), body.as_bytes())
            .verify_slice(&tag)
            .map_err(|_| {
                err(format!(
                    "its MAC does not match device key {}: the seal was altered, or it belongs to \
                     another key; restore the seal and the key that wrote it from backup",
                    key.path.display()
                ))
            })?;
        let state: SealedState = serde_json::from_str(body)
            .map_err(|e| err(format!("authenticated but unreadable ({e})")))?;
        if state.format != FORMAT {
            return Err(err(format!(
                "format {} is not {FORMAT}; use the facegate version that wrote it",
                state.format
            )));
        }
        Ok(Some(state))
    }

    /// The seal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A copy of the current state.
    pub fn state(&self) -> SealedState {
        self.lock().state.clone()
    }

    /// The file did not exist when this process first opened it.
    pub fn missing_at_open(&self) -> bool {
        self.missing_at_open
    }

    /// `true` once the file exists (read at open, or written since).
    pub fn on_disk(&self) -> bool {
        self.lock().on_disk
    }

    /// What the audit log held when the seal file was missing (see [`Seal::open`]).
    pub fn log_facts(&self) -> Option<&LogFacts> {
        self.facts.as_ref()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Changes the state and writes the seal atomically; on error the state stays as it was.
    pub fn update(&self, f: impl FnOnce(&mut SealedState)) -> Result<(), SealError> {
        let mut inner = self.lock();
        let mut next = inner.state.clone();
        f(&mut next);
        next.writes += 1;
        let body = serde_json::to_string(&next).map_err(|e| SealError {
            path: self.path.clone(),
            reason: format!("cannot serialise: {e}"),
        })?;
        let tag = hex::encode(mac(&self.key, body.as_bytes()).finalize().into_bytes());
        let text = format!("{body}\n{MAC_PREFIX}{tag}\n");
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| SealError {
                path: self.path.clone(),
                reason: format!("cannot create its directory: {e}"),
            })?;
        }
        crate::fsutil::write_atomic(&self.path, text.as_bytes(), 0o600).map_err(|e| SealError {
            path: self.path.clone(),
            reason: format!(
                "cannot write it: {e}; check the disk (space, read-only remount: `dmesg`) \
                     and that the service user owns its directory"
            ),
        })?;
        inner.state = next;
        inner.on_disk = true;
        Ok(())
    }
}
