//! The encrypted gallery store.
//!
//! File layout: `b"FGSTORE1"` (8 bytes, also the AEAD associated data) `|| nonce (12 random
//! bytes, new on every write) || ChaCha20-Poly1305(JSON of StoreData)`. The key is the
//! device key file: 32 random bytes, created 0600 on first use. Writes go through
//! [`crate::fsutil::write_atomic`] (temp file, fsync, rename, fsync directory): after a power
//! cut the store is the old one or the new one. A store that fails to decrypt (wrong key,
//! altered bytes) or was made with another encoder (sha256 tag) is refused, never replaced
//! silently.

use super::EnrollError;
use crate::gallery::{Gallery, Person};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// Reads the key file, creating it (32 random bytes, mode 0600) if it does not exist.
    pub fn load_or_create(path: &Path) -> Result<DeviceKey, EnrollError> {
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
}

/// The store file and its key.
pub struct Store {
    pub path: PathBuf,
    key: DeviceKey,
}

impl Store {
    pub fn open(path: &Path, key_file: &Path) -> Result<Store, EnrollError> {
        Ok(Store {
            path: path.to_path_buf(),
            key: DeviceKey::load_or_create(key_file)?,
        })
    }

    fn err(&self, reason: impl Into<String>) -> EnrollError {
        EnrollError::Store {
            path: self.path.clone(),
            reason: reason.into(),
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

    /// Decrypts store bytes (no encoder check).
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

    /// Loads the store without checking the encoder (`staff list`); `None` if it does not exist.
    pub fn load_any(&self) -> Result<Option<StoreData>, EnrollError> {
        match std::fs::read(&self.path) {
            Ok(b) => self.unseal(&b).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EnrollError::io(&self.path, e)),
        }
    }

    /// Loads the store for use with `encoder_sha256`; an empty store if there is no file yet.
    pub fn load(&self, encoder_sha256: &str) -> Result<StoreData, EnrollError> {
        match self.load_any()? {
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

    /// Seals and atomically replaces the store.
    pub fn save(&self, data: &StoreData) -> Result<(), EnrollError> {
        let bytes = self.seal(data)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EnrollError::io(dir, e))?;
        }
        crate::fsutil::write_atomic(&self.path, &bytes, 0o600)?;
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
