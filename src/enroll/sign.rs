//! Admin keys and detached signatures in the [minisign](https://jedisct1.github.io/minisign/)
//! formats, so that either `facegate bundle keygen/sign` or the stock `minisign` tool can make
//! them and `minisign -V` can check them.
//!
//! * Public key (`facegate.pub`, and each `admin_keys` entry in the config): the base64 line of a
//!   minisign public key, `base64("Ed" || key_id[8] || ed25519_public[32])`. A whole
//!   `minisign.pub` file (comment line + key line) is also accepted.
//! * Secret key (`facegate.key`, mode 0600): a minisign secret key *without* password
//!   (`minisign -G -W` makes the same): `"Ed" || kdf "\0\0" || "B2" || salt[32] || ops[8] ||
//!   mem[8] || key_id[8] || seed[32] || public[32] || blake2b-256 checksum[32]`. Keep it off the
//!   door, on the administrator's machine.
//! * Signature (`manifest.sig`): minisign's pre-hashed ("ED") signature: Ed25519 over
//!   BLAKE2b-512 of the manifest bytes, plus the global signature over the trusted comment.
//!   Verification uses the `minisign-verify` crate; legacy (non-hashed) signatures are refused.
//!
//! Checked against minisign 0.11: `minisign -Vm manifest.toml -x manifest.sig -p facegate.pub`
//! verifies our signatures, `minisign -S -s facegate.key` signs with our key file (same bytes:
//! Ed25519 is deterministic), and a key made by `minisign -G -W` works with `bundle check`.

use super::EnrollError;
use base64::Engine as _;
use blake2::{digest::consts::U32, Blake2b, Blake2b512, Digest};
use ed25519_dalek::{Signer, SigningKey};
use std::path::Path;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A public key an administrator signs with, as pinned in the device configuration.
#[derive(Clone, Debug)]
pub struct AdminKey {
    pub key_id: [u8; 8],
    /// The base64 line, as written in `admin_keys`.
    pub base64: String,
    key: minisign_verify::PublicKey,
}

/// Minisign's display form of a key id (hex of the little-endian u64).
pub fn key_id_hex(id: &[u8; 8]) -> String {
    format!("{:016X}", u64::from_le_bytes(*id))
}

impl AdminKey {
    /// Parses a base64 key line, or a whole `minisign.pub` file's text.
    pub fn parse(text: &str) -> Result<AdminKey, EnrollError> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .unwrap_or("");
        let bad = |why: &str| {
            EnrollError::Key(format!(
            "{line:?} is not a minisign/facegate public key ({why}); copy the line printed by `facegate bundle keygen` (or the second line of minisign.pub)"
        ))
        };
        let bin = B64.decode(line).map_err(|_| bad("not base64"))?;
        if bin.len() != 42 || &bin[..2] != b"Ed" {
            return Err(bad("expected 42 bytes starting with \"Ed\""));
        }
        let key = minisign_verify::PublicKey::from_base64(line).map_err(|e| bad(&e.to_string()))?;
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bin[2..10]);
        Ok(AdminKey {
            key_id,
            base64: line.to_string(),
            key,
        })
    }

    /// Reads a key from a file (a `.pub` file) or, if `arg` is not a file, parses it as a key.
    pub fn from_arg(arg: &str) -> Result<AdminKey, EnrollError> {
        let p = Path::new(arg);
        if p.is_file() {
            let text = std::fs::read_to_string(p).map_err(|e| EnrollError::io(p, e))?;
            AdminKey::parse(&text)
        } else {
            AdminKey::parse(arg)
        }
    }

    pub fn id_hex(&self) -> String {
        key_id_hex(&self.key_id)
    }
}

/// The key id named by a signature file, before verifying it.
pub fn signature_key_id(sig_text: &str) -> Option<[u8; 8]> {
    let line = sig_text.lines().nth(1)?;
    let bin = B64.decode(line.trim()).ok()?;
    if bin.len() != 74 {
        return None;
    }
    let mut id = [0u8; 8];
    id.copy_from_slice(&bin[2..10]);
    Some(id)
}

/// Verifies `sig_text` (a minisign signature file) over `message` against the pinned keys.
/// Returns the key that signed.
pub fn verify<'a>(
    message: &[u8],
    sig_text: &str,
    pinned: &'a [AdminKey],
) -> Result<&'a AdminKey, EnrollError> {
    let sig = minisign_verify::Signature::decode(sig_text).map_err(|e| {
        EnrollError::Signature(format!(
            "manifest.sig is not a minisign signature ({e}); re-sign with `facegate bundle sign DIR --key KEY`"
        ))
    })?;
    let id = signature_key_id(sig_text).ok_or_else(|| {
        EnrollError::Signature("manifest.sig has no key id; re-sign the bundle".into())
    })?;
    let key = pinned
        .iter()
        .find(|k| k.key_id == id)
        .ok_or_else(|| EnrollError::KeyNotPinned {
            key_id: key_id_hex(&id),
            pinned: pinned.iter().map(AdminKey::id_hex).collect(),
        })?;
    key.key.verify(message, &sig, false).map_err(|e| {
        EnrollError::Signature(format!(
            "manifest.sig does not match key {} ({e}): the manifest was changed after signing; re-sign with `facegate bundle sign DIR --key ...`",
            key.id_hex()
        ))
    })?;
    Ok(key)
}

/// A secret signing key (read from a minisign unencrypted secret key file).
pub struct SecretKey {
    pub key_id: [u8; 8],
    signing: SigningKey,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], EnrollError> {
    let mut b = [0u8; N];
    getrandom::fill(&mut b)
        .map_err(|e| EnrollError::Key(format!("no randomness from the OS: {e}")))?;
    Ok(b)
}

pub(crate) fn random<const N: usize>() -> Result<[u8; N], EnrollError> {
    random_bytes::<N>()
}

fn checksum(key_id: &[u8; 8], sk: &[u8; 64]) -> [u8; 32] {
    let mut h = Blake2b::<U32>::new();
    h.update(b"Ed");
    h.update(key_id);
    h.update(sk);
    h.finalize().into()
}

impl SecretKey {
    pub fn generate() -> Result<SecretKey, EnrollError> {
        let seed = random_bytes::<32>()?;
        Ok(SecretKey {
            key_id: random_bytes::<8>()?,
            signing: SigningKey::from_bytes(&seed),
        })
    }

    fn sk64(&self) -> [u8; 64] {
        self.signing.to_keypair_bytes()
    }

    /// The public half, as the base64 line to pin in `admin_keys`.
    pub fn public(&self) -> AdminKey {
        let mut bin = Vec::with_capacity(42);
        bin.extend_from_slice(b"Ed");
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(self.signing.verifying_key().as_bytes());
        AdminKey::parse(&B64.encode(bin)).expect("a key we just built parses")
    }

    /// The secret key file's text (minisign format, no password).
    pub fn to_file_text(&self) -> String {
        let sk = self.sk64();
        let mut bin = Vec::with_capacity(158);
        bin.extend_from_slice(b"Ed");
        bin.extend_from_slice(&[0, 0]);
        bin.extend_from_slice(b"B2");
        bin.extend_from_slice(&[0u8; 32]);
        bin.extend_from_slice(&0u64.to_le_bytes());
        bin.extend_from_slice(&0u64.to_le_bytes());
        bin.extend_from_slice(&self.key_id);
        bin.extend_from_slice(&sk);
        bin.extend_from_slice(&checksum(&self.key_id, &sk));
        format!(
            "untrusted comment: facegate secret key {} (no password; keep it off the door)\n{}\n",
            key_id_hex(&self.key_id),
            B64.encode(bin)
        )
    }

    pub fn from_file(path: &Path) -> Result<SecretKey, EnrollError> {
        let text = std::fs::read_to_string(path).map_err(|e| EnrollError::io(path, e))?;
        let bad = |why: &str| {
            EnrollError::Key(format!(
                "{}: not a usable secret key ({why}); make one with `facegate bundle keygen --out DIR` (or `minisign -G -W`)",
                path.display()
            ))
        };
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| bad("empty"))?;
        let bin = B64.decode(line).map_err(|_| bad("not base64"))?;
        if bin.len() != 158 || &bin[..2] != b"Ed" {
            return Err(bad("wrong length or algorithm"));
        }
        if bin[2..4] != [0, 0] {
            return Err(bad(
                "password-protected minisign keys are not supported; use an unencrypted key (minisign -G -W)",
            ));
        }
        let mut key_id = [0u8; 8];
        key_id.copy_from_slice(&bin[54..62]);
        let mut sk = [0u8; 64];
        sk.copy_from_slice(&bin[62..126]);
        if checksum(&key_id, &sk)[..] != bin[126..158] {
            return Err(bad("checksum mismatch: the file is damaged"));
        }
        let signing =
            SigningKey::from_keypair_bytes(&sk).map_err(|_| bad("inconsistent key pair"))?;
        Ok(SecretKey { key_id, signing })
    }

    /// A minisign pre-hashed signature file over `message`.
    pub fn sign(&self, message: &[u8], file_name: &str) -> String {
        let hash = Blake2b512::digest(message);
        let sig = self.signing.sign(&hash).to_bytes();
        let mut bin1 = Vec::with_capacity(74);
        bin1.extend_from_slice(b"ED");
        bin1.extend_from_slice(&self.key_id);
        bin1.extend_from_slice(&sig);
        let ts = jiff::Timestamp::now().as_second();
        let trusted = format!("timestamp:{ts}\tfile:{file_name}\thashed");
        let mut global = sig.to_vec();
        global.extend_from_slice(trusted.as_bytes());
        let gsig = self.signing.sign(&global).to_bytes();
        format!(
            "untrusted comment: signature from facegate secret key {}\n{}\ntrusted comment: {trusted}\n{}\n",
            key_id_hex(&self.key_id),
            B64.encode(bin1),
            B64.encode(gsig)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_roundtrip_and_key_file() {
        let sk = SecretKey::generate().unwrap();
        let pk = sk.public();
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, sk.to_file_text()).unwrap();
        let sk2 = SecretKey::from_file(&p).unwrap();
        let sig = sk2.sign(b"hello", "manifest.toml");
        assert_eq!(
            verify(b"hello", &sig, std::slice::from_ref(&pk))
                .unwrap()
                .key_id,
            pk.key_id
        );
        assert!(matches!(
            verify(b"hellp", &sig, &[pk]),
            Err(EnrollError::Signature(_))
        ));
        let other = SecretKey::generate().unwrap().public();
        assert!(matches!(
            verify(b"hello", &sig, &[other]),
            Err(EnrollError::KeyNotPinned { .. })
        ));
    }
}
