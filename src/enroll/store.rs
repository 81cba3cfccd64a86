//! The encrypted gallery store.
//!
//! File layout: `b"FGSTORE1"` (8 bytes, also the AEAD associated data) `|| nonce (12 random
//! bytes, new on every write) || ChaCha20-Poly1305(JSON of StoreData)`. The key is the
//! device key file: 32 random bytes, created 0600 when neither a store nor a seal exists yet.
//! A missing key beside an existing store or seal is an error ([`EnrollError::MissingKey`]),
//! never a new key: a new key would make the store unreadable and reset anti-rollback.
//! Writes go through [`crate::fsutil::write_atomic`] (temp file, fsync, rename, fsync
//! directory): after a power cut the store is the old one or the new one. A store that fails
//! to decrypt (wrong key, altered bytes) or was made with another encoder (sha256 tag) is
//! refused, never replaced silently.
//!
//! # Anti-rollback outside the store
//!
//! Every store has a seal ([`crate::seal`], `<store>.seal`) holding the SHA-256 and version of
//! the store as last written and the highest version ever imported. Every load compares the
//! file with it ([`EnrollError::RolledBack`]): an older copy put back, a store from elsewhere,
//! or a deleted store are refused at daemon start and by `staff list|remove`; an import may
//! rebuild a deleted store, but only from a bundle newer than the sealed version
//! ([`Store::load_for_import`]). [`Store::save`] writes the seal twice: `pending_store` before
//! the rename and `store` after it, so a power cut in between is not mistaken for a rollback.
//!
//! A store found without a seal is adopted (the first start after upgrading from a version
//! without seals) unless its plaintext says it was written under a seal (`sealed: true`): then
//! the seal was deleted, which is refused.

use super::EnrollError;
use crate::gallery::{Gallery, Person};
use crate::seal::{Seal, SealedState, StoreSeal};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MAGIC: &[u8; 8] = b"FGSTORE1";
const FORMAT: u32 = 1;

/// What the store holds (plaintext inside the AEAD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreData {
    pub format: u32,
    /// sha256 of the encoder model whose embeddings these are.
    pub encoder_sha256: String,
    /// Version of the last bundle imported (0: none).
    pub bundle_version: u64,
    /// Key id of the admin key that signed it.
    #[serde(default)]
    pub signed_by: String,
    pub updated: jiff::Timestamp,
    pub people: Vec<Person>,
    /// Written under a seal ([`crate::seal`]); `false` in stores from before seals existed. A
    /// sealed store found without its seal means the seal was deleted.
    #[serde(default)]
    pub sealed: bool,
}

impl StoreData {
    pub fn empty(encoder_sha256: &str) -> StoreData {
        StoreData {
            format: FORMAT,
            encoder_sha256: encoder_sha256.to_string(),
            bundle_version: 0,
            signed_by: String::new(),
            updated: jiff::Timestamp::now(),
            people: Vec::new(),
            sealed: false,
        }
    }

    pub fn gallery(&self) -> Gallery {
        Gallery::from_people(self.people.clone())
    }
}

/// The 32-byte device key.
pub struct DeviceKey {
    key: [u8; 32],
    pub path: PathBuf,
}

impl DeviceKey {
    /// Reads the key file. It is created (32 random bytes, mode 0600) only if it does not exist
    /// and none of `dependents` (`(what, path)`: the store, the seal) exists: a new key next to
    /// an existing store would make the store unreadable and reset anti-rollback.
    pub fn load_or_create(
        path: &Path,
        dependents: &[(&'static str, &Path)],
    ) -> Result<DeviceKey, EnrollError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| EnrollError::Store {
                    path: path.to_path_buf(),
                    reason: format!(
                        "device key file is {} bytes, expected 32; restore it from backup (without it the store cannot be read)",
                        bytes.len()
                    ),
                })?;
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(m) = std::fs::metadata(path) {
                        if m.permissions().mode() & 0o077 != 0 {
                            log::warn!(
                                "device key {} is readable by group/others: chmod 600 it",
                                path.display()
                            );
                        }
                    }
                }
                Ok(DeviceKey {
                    key,
                    path: path.to_path_buf(),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                for (what, dependent) in dependents {
                    if std::fs::symlink_metadata(dependent).is_ok() {
                        return Err(EnrollError::MissingKey {
                            key: path.to_path_buf(),
                            dependent: dependent.to_path_buf(),
                            what,
                        });
                    }
                }
                let key = super::sign::random::<32>()?;
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| EnrollError::io(dir, e))?;
                }
                crate::fsutil::write_atomic(path, &key, 0o600)?;
                log::info!("created device key {}", path.display());
                Ok(DeviceKey {
                    key,
                    path: path.to_path_buf(),
                })
            }
            Err(e) => Err(EnrollError::io(path, e)),
        }
    }

    /// Reads an existing key; never creates one (`facegate audit verify`).
    pub fn load(path: &Path) -> Result<DeviceKey, EnrollError> {
        if std::fs::symlink_metadata(path).is_err() {
            return Err(EnrollError::Key(format!(
                "device key {} is missing: restore it from backup (it authenticates the seal)",
                path.display()
            )));
        }
        DeviceKey::load_or_create(path, &[])
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

/// The store file, its key and its seal.
pub struct Store {
    pub path: PathBuf,
    key: DeviceKey,
    seal: Arc<Seal>,
}

impl Store {
    /// Opens the store at `path` with the device key `key_file` and the seal `<path>.seal`.
    /// Nothing is read or written until a load or save, except a new key on a fresh install.
    pub fn open(path: &Path, key_file: &Path) -> Result<Store, EnrollError> {
        Store::open_with_log(path, key_file, None)
    }

    /// Like [`open`](Self::open); if the seal is missing, the audit log is scanned for the
    /// highest imported version (`enroll_import` records) so that deleting the seal does not
    /// reset anti-rollback. The daemon and the CLI open the store this way.
    pub fn open_with_log(
        path: &Path,
        key_file: &Path,
        audit_log: Option<&Path>,
    ) -> Result<Store, EnrollError> {
        let seal_path = crate::seal::path_for_store(path);
        let key =
            DeviceKey::load_or_create(key_file, &[("store", path), ("sealed state", &seal_path)])?;
        let seal = Seal::open(&seal_path, &key, audit_log)?;
        Ok(Store {
            path: path.to_path_buf(),
            key,
            seal,
        })
    }

    /// The seal shared with the audit log.
    pub fn sealed(&self) -> &Arc<Seal> {
        &self.seal
    }

    fn err(&self, reason: impl Into<String>) -> EnrollError {
        EnrollError::Store {
            path: self.path.clone(),
            reason: reason.into(),
        }
    }

    fn rolled_back(&self, reason: String) -> EnrollError {
        EnrollError::RolledBack {
            path: self.path.clone(),
            reason,
        }
    }

    /// Encrypts `data` with a fresh nonce.
    pub fn seal(&self, data: &StoreData) -> Result<Vec<u8>, EnrollError> {
        let plain =
            serde_json::to_vec(data).map_err(|e| self.err(format!("cannot serialise: {e}")))?;
        let nonce = super::sign::random::<12>()?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key.key));
        let ct = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: MAGIC,
                },
            )
            .map_err(|_| self.err("encryption failed"))?;
        let mut out = Vec::with_capacity(8 + 12 + ct.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    /// Decrypts store bytes (no encoder check, no seal check).
    pub fn unseal(&self, bytes: &[u8]) -> Result<StoreData, EnrollError> {
        if bytes.len() < 8 + 12 + 16 || &bytes[..8] != MAGIC {
            return Err(self.err("not a facegate gallery store (bad header or truncated); restore it from backup or move it aside and re-import a bundle"));
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(&self.key.key));
        let plain = cipher
            .decrypt(
                Nonce::from_slice(&bytes[8..20]),
                Payload {
                    msg: &bytes[20..],
                    aad: MAGIC,
                },
            )
            .map_err(|_| {
                self.err(format!(
                    "cannot decrypt with device key {}: the store was altered or the key is not the one it was written with",
                    self.key.path.display()
                ))
            })?;
        let data: StoreData = serde_json::from_slice(&plain)
            .map_err(|e| self.err(format!("decrypted but unreadable ({e})")))?;
        if data.format != FORMAT {
            return Err(self.err(format!(
                "store format {} is not {FORMAT}; use the facegate version that wrote it",
                data.format
            )));
        }
        Ok(data)
    }

    fn read_bytes(&self) -> Result<Option<Vec<u8>>, EnrollError> {
        match std::fs::read(&self.path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EnrollError::io(&self.path, e)),
        }
    }

    /// The first load after the seal was found missing: adopt the store, unless it says it
    /// was written under a seal (then the seal was deleted).
    fn adopt(&self, bytes: Option<&[u8]>) -> Result<(), EnrollError> {
        let seal = self.seal.path().display().to_string();
        let max = self.seal.state().max_version;
        let Some(bytes) = bytes else {
            // Nothing to adopt; write the seal (with the version recovered from the audit log)
            // so that a lost key is noticed from now on.
            if self
                .path
                .parent()
                .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir())
            {
                self.seal.update(|_| {})?;
            }
            return Ok(());
        };
        let data = self.unseal(bytes)?;
        if data.sealed {
            return Err(self.rolled_back(format!(
                "it was written under the seal {seal}, which is missing (deleted, or the store was \
                 copied here from elsewhere): restore {seal} from backup together with this store; \
                 without a backup, move the store aside and import a full bundle with version > {}",
                max.max(data.bundle_version)
            )));
        }
        let entry = StoreSeal {
            version: data.bundle_version,
            sha256: crate::fsutil::sha256_hex(bytes),
        };
        self.seal.update(|s| {
            s.max_version = s.max_version.max(entry.version);
            s.store = Some(entry);
        })?;
        log::warn!(
            "gallery store {}: no seal yet (written by an older facegate); sealed it at version {} in {seal}",
            self.path.display(),
            data.bundle_version
        );
        Ok(())
    }

    /// Reads the store and checks it against the seal. `allow_missing`: a deleted store is
    /// reported as `None` (an import may rebuild it) instead of an error.
    fn load_checked(&self, allow_missing: bool) -> Result<Option<StoreData>, EnrollError> {
        let bytes = self.read_bytes()?;
        if !self.seal.on_disk() {
            self.adopt(bytes.as_deref())?;
        }
        let st: SealedState = self.seal.state();
        let seal = self.seal.path().display();
        let Some(bytes) = bytes else {
            return match &st.store {
                None => Ok(None),
                Some(s) if allow_missing => {
                    log::warn!(
                        "gallery store {} is missing although the seal {seal} remembers version {} \
                         (sha256 {}): only a bundle newer than version {} can rebuild it",
                        self.path.display(),
                        s.version,
                        s.sha256,
                        st.max_version.max(s.version)
                    );
                    Ok(None)
                }
                Some(s) => Err(self.rolled_back(format!(
                    "the store is missing, but the seal {seal} says version {} (sha256 {}) was \
                     written last: it was deleted; restore it from backup, or import a full bundle \
                     with version > {} (`facegate enroll import DIR --config FILE`, the daemon \
                     stopped)",
                    s.version,
                    s.sha256,
                    st.max_version.max(s.version)
                ))),
            };
        };
        let sha = crate::fsutil::sha256_hex(&bytes);
        if st.store.as_ref().is_some_and(|s| s.sha256 == sha) {
            return self.unseal(&bytes).map(Some);
        }
        if let Some(p) = st.pending_store.clone().filter(|p| p.sha256 == sha) {
            // A power cut after the rename, before the seal was finished: the new store counts.
            let data = self.unseal(&bytes)?;
            self.seal.update(|s| {
                s.max_version = s.max_version.max(p.version);
                s.store = Some(p);
                s.pending_store = None;
            })?;
            log::info!(
                "gallery store {}: finished sealing version {} (interrupted write)",
                self.path.display(),
                data.bundle_version
            );
            return Ok(Some(data));
        }
        let found = match self.unseal(&bytes) {
            Ok(d) => format!("version {}", d.bundle_version),
            Err(_) => "unreadable".to_string(),
        };
        Err(self.rolled_back(match &st.store {
            Some(s) => format!(
                "this is not the store written last ({found}, sha256 {sha}; the seal {seal} says \
                 version {}, sha256 {}): an older copy was restored or the file was replaced; \
                 restore the current store from backup, or move it aside and import a full bundle \
                 with version > {}",
                s.version,
                s.sha256,
                st.max_version.max(s.version)
            ),
            None => format!(
                "the seal {seal} records no store, yet one is here ({found}, sha256 {sha}): it was \
                 copied here; move it aside, or restore the seal it was written with"
            ),
        }))
    }

    /// Loads the store without checking the encoder (`staff list`); `None` if it does not
    /// exist and the seal remembers none. A store that is not the one sealed is refused.
    pub fn load_any(&self) -> Result<Option<StoreData>, EnrollError> {
        self.load_checked(false)
    }

    /// Loads the store for use with `encoder_sha256`; an empty store if there is no file yet.
    pub fn load(&self, encoder_sha256: &str) -> Result<StoreData, EnrollError> {
        let data = self.load_any()?;
        self.for_encoder(data, encoder_sha256)
    }

    fn for_encoder(
        &self,
        data: Option<StoreData>,
        encoder_sha256: &str,
    ) -> Result<StoreData, EnrollError> {
        match data {
            None => Ok(StoreData::empty(encoder_sha256)),
            Some(d) if !d.encoder_sha256.eq_ignore_ascii_case(encoder_sha256) => {
                Err(EnrollError::EncoderMismatch {
                    path: self.path.clone(),
                    store: d.encoder_sha256.clone(),
                    models: encoder_sha256.to_string(),
                    version: d.bundle_version,
                })
            }
            Some(d) => Ok(d),
        }
    }

    /// Loads the store as the base of an import: a deleted store counts as empty, and
    /// `bundle_version` is `max(store version, sealed max_version)`, the version a new bundle
    /// must exceed.
    pub fn load_for_import(&self, encoder_sha256: &str) -> Result<StoreData, EnrollError> {
        let data = self.load_checked(true)?;
        let mut data = self.for_encoder(data, encoder_sha256)?;
        data.bundle_version = data.bundle_version.max(self.seal.state().max_version);
        Ok(data)
    }

    /// Seals (encrypts) and atomically replaces the store, recording it in the seal before
    /// (`pending_store`) and after the rename (`store`, `max_version`).
    pub fn save(&self, data: &StoreData) -> Result<(), EnrollError> {
        let mut data = data.clone();
        data.sealed = true;
        let bytes = self.seal(&data)?;
        let entry = StoreSeal {
            version: data.bundle_version,
            sha256: crate::fsutil::sha256_hex(&bytes),
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EnrollError::io(dir, e))?;
        }
        self.seal
            .update(|s| s.pending_store = Some(entry.clone()))?;
        crate::fsutil::write_atomic(&self.path, &bytes, 0o600)?;
        self.seal.update(|s| {
            s.max_version = s.max_version.max(entry.version);
            s.store = Some(entry);
            s.pending_store = None;
        })?;
        Ok(())
    }

    /// `staff remove`: rewrites the store without `id`.
    pub fn remove(&self, id: &str) -> Result<StoreData, EnrollError> {
        let mut data = self.load_any()?.ok_or_else(|| EnrollError::NotEnrolled {
            id: id.to_string(),
            path: self.path.clone(),
        })?;
        let before = data.people.len();
        data.people.retain(|p| p.id != id);
        if data.people.len() == before {
            return Err(EnrollError::NotEnrolled {
                id: id.to_string(),
                path: self.path.clone(),
            });
        }
        data.updated = jiff::Timestamp::now();
        self.save(&data)?;
        Ok(data)
    }
}
