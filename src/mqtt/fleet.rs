//! Fleet enrollment: the stick's signed bundle, carried over the broker.
//!
//! The admin publishes (retained) the same bundle folder a stick would carry on
//! `<prefix>/<site>/bundle` (`facegate bundle publish DIR`): a JSON document holding the
//! manifest, its signature and the photos the manifest names, each as base64 ([`pack`]).
//! A door with `[mqtt] fleet_enroll = true` unpacks it into a private spool folder
//! (`<spool_dir>/<payload sha256>/facegate`, written beside it and renamed into place, so it
//! is never seen half-written) which the USB watcher polls like a mount point. From there the
//! import is exactly a stick's: bounded no-follow reads, signature by a pinned admin key, site,
//! anti-rollback version, photo hashes and faces ([`crate::enroll`]). Nothing is trusted
//! because it came over the network; the unpacking only adds its own limits (payload size,
//! file count, plain relative paths). The result is audited and published per door on
//! `<prefix>/<site>/<door>/enroll`; the spool folder is removed after it.
//!
//! A retained bundle arrives again at every reconnect and restart: the sha256 of the last
//! payload handled is kept in `<spool_dir>.last`, so it is imported once.

use super::client::Inbound;
use crate::enroll::bundle::{BundleManifest, MANIFEST, SIGNATURE};
use crate::error::{Error, Result};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::{Component, Path, PathBuf};

/// The payload's `format`.
pub const FORMAT: &str = "facegate-bundle/1";
/// Most files in one payload (manifest, signature, photos).
pub const MAX_FILES: usize = 10_000;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Packed {
    format: String,
    files: Vec<PackedFile>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PackedFile {
    path: String,
    data: String,
}

/// Packs the bundle folder `dir` (manifest, signature and every photo the manifest names).
pub fn pack(dir: &Path) -> Result<Vec<u8>> {
    let read = |rel: &str| -> Result<Vec<u8>> {
        let p = dir.join(rel);
        std::fs::read(&p).map_err(|e| Error::io(&p, e))
    };
    let manifest = read(MANIFEST)?;
    let sig = read(SIGNATURE).map_err(|e| {
        Error::Invalid(format!(
            "{e}; sign the bundle first: `facegate bundle sign {} --key KEY`",
            dir.display()
        ))
    })?;
    let m = BundleManifest::parse(&manifest, &dir.join(MANIFEST)).map_err(crate::Error::from)?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut files = vec![
        PackedFile {
            path: MANIFEST.into(),
            data: b64.encode(&manifest),
        },
        PackedFile {
            path: SIGNATURE.into(),
            data: b64.encode(&sig),
        },
    ];
    let mut seen = std::collections::HashSet::new();
    for photo in m.people.iter().flat_map(|p| &p.photos) {
        if seen.insert(photo.path.clone()) {
            files.push(PackedFile {
                path: photo.path.clone(),
                data: b64.encode(read(&photo.path)?),
            });
        }
    }
    Ok(serde_json::to_vec(&Packed {
        format: FORMAT.into(),
        files,
    })
    .expect("serialisable"))
}

/// A path inside the bundle: relative, `/`-separated plain names (no `..`, no `.`-names, no
/// empty or absolute parts), at most 8 levels.
fn safe_rel(path: &str) -> std::result::Result<PathBuf, String> {
    let p = Path::new(path);
    // the written parts themselves (Path::components would quietly drop `//` and `/./`)
    let ok = !path.is_empty()
        && path.len() <= 512
        && !path.contains(['\\', '\0'])
        && path.split('/').count() <= 8
        && path
            .split('/')
            .all(|s| !s.is_empty() && !s.starts_with('.'))
        && p.components().all(|c| matches!(c, Component::Normal(_)));
    if ok {
        Ok(p.to_path_buf())
    } else {
        Err(format!(
            "file path {path:?} is not a plain relative path inside the bundle"
        ))
    }
}

/// Unpacks a payload into `dest` (created, mode 0700; must not exist).
pub fn unpack(payload: &[u8], dest: &Path) -> std::result::Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let packed: Packed = serde_json::from_slice(payload).map_err(|e| {
        format!("not a {FORMAT} document ({e}); publish with `facegate bundle publish`")
    })?;
    if packed.format != FORMAT {
        return Err(format!(
            "format {:?} is not {FORMAT:?}; publish with this version's `facegate bundle publish`",
            packed.format
        ));
    }
    if packed.files.len() > MAX_FILES {
        return Err(format!(
            "{} files (at most {MAX_FILES})",
            packed.files.len()
        ));
    }
    if !packed.files.iter().any(|f| f.path == MANIFEST) {
        return Err(format!("no {MANIFEST} in the payload"));
    }
    let mut dirs = std::fs::DirBuilder::new();
    dirs.recursive(true).mode(0o700);
    dirs.create(dest)
        .map_err(|e| format!("cannot create {}: {e}", dest.display()))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    for f in &packed.files {
        let rel = safe_rel(&f.path)?;
        let bytes = b64
            .decode(&f.data)
            .map_err(|e| format!("file {:?}: not base64 ({e})", f.path))?;
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            dirs.create(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&target)
            .map_err(|e| format!("file {:?}: {e} (listed twice?)", f.path))?;
        file.write_all(&bytes)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}

/// The door's receiving end (runs in the MQTT connection thread).
pub struct Fleet {
    spool: PathBuf,
    max_bytes: usize,
}

impl Fleet {
    pub fn new(spool: PathBuf, max_bytes: usize) -> Fleet {
        Fleet { spool, max_bytes }
    }

    /// `<spool>.last`: the sha256 of the last payload whose import finished.
    pub fn last_file(spool: &Path) -> PathBuf {
        let mut s = spool.as_os_str().to_owned();
        s.push(".last");
        PathBuf::from(s)
    }

    /// Handles one payload of the bundle topic: unpacked into the spool for the watcher, or
    /// skipped (empty, the one already handled, or one being imported), or refused.
    pub fn receive(&mut self, payload: &[u8]) -> Option<Inbound> {
        if payload.is_empty() {
            return None; // the retained bundle was cleared
        }
        let sha = crate::fsutil::sha256_hex(payload);
        let last = std::fs::read_to_string(Self::last_file(&self.spool)).unwrap_or_default();
        let final_dir = self.spool.join(&sha);
        if last.trim() == sha || final_dir.exists() {
            log::debug!(
                "mqtt: bundle {} already handled or being imported",
                &sha[..12]
            );
            return None;
        }
        let spool = self.spool.clone();
        let refused = |error: String| {
            log::warn!("mqtt: bundle payload {} refused: {error}", &sha[..12]);
            // reported once, not again at every reconnect
            let _ = std::fs::create_dir_all(spool.parent().unwrap_or(Path::new(".")));
            let _ = crate::fsutil::write_atomic(&Fleet::last_file(&spool), sha.as_bytes(), 0o600);
            Some(Inbound::BundleRefused {
                payload_sha256: sha.clone(),
                error,
            })
        };
        if payload.len() > self.max_bytes {
            return refused(format!(
                "{} bytes is over [mqtt] max_bundle_mb ({} bytes)",
                payload.len(),
                self.max_bytes
            ));
        }
        let mut partial = self.spool.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial).join(&sha);
        let _ = std::fs::remove_dir_all(&partial);
        if let Err(e) = unpack(payload, &partial.join("facegate")) {
            let _ = std::fs::remove_dir_all(&partial);
            return refused(e);
        }
        let moved = std::fs::create_dir_all(&self.spool)
            .and_then(|_| std::fs::rename(&partial, &final_dir));
        if let Err(e) = moved {
            let _ = std::fs::remove_dir_all(&partial);
            return refused(format!(
                "cannot move the bundle into {}: {e}",
                self.spool.display()
            ));
        }
        log::info!(
            "mqtt: bundle {} received ({} bytes); the enrollment watcher imports it",
            &sha[..12],
            payload.len()
        );
        None
    }
}

/// After the import of a spooled bundle (`bundle`: the folder the watcher read): remembers its
/// payload as handled and removes the spool folder. Returns the payload's sha256, or `None`
/// when `bundle` is not in the spool (a USB stick).
pub fn finished(spool: &Path, bundle: &Path) -> Option<String> {
    let rel = bundle.strip_prefix(spool).ok()?;
    let sha = rel.components().next()?.as_os_str().to_str()?.to_string();
    if let Err(e) = crate::fsutil::write_atomic(&Fleet::last_file(spool), sha.as_bytes(), 0o600) {
        log::error!("mqtt: cannot record the handled bundle: {e}");
    }
    let _ = std::fs::remove_dir_all(spool.join(&sha));
    Some(sha)
}

/// Publishes `payload` retained on the site's bundle topic (`facegate bundle publish`) and
/// waits for the broker's acknowledgement (at most `timeout`).
pub fn publish(
    cfg: &super::MqttConfig,
    payload: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<()> {
    use rumqttc::{Client, Event, Packet, QoS};
    let topic = cfg.bundle_topic();
    let id = format!("facegate-publish-{}", std::process::id());
    let opts = super::client::options(cfg, &id, 64 << 10, payload.len() + (64 << 10))?;
    let (client, mut connection) = Client::new(opts, 8);
    let len = payload.len();
    client
        .publish(topic.clone(), QoS::AtLeastOnce, true, payload)
        .map_err(|e| Error::Invalid(format!("mqtt: cannot queue the bundle: {e}")))?;
    let broker = format!("{}:{}", cfg.host, cfg.port);
    let t0 = std::time::Instant::now();
    loop {
        let left = timeout.saturating_sub(t0.elapsed());
        if left.is_zero() {
            return Err(Error::Invalid(format!(
                "mqtt: broker {broker} did not acknowledge the bundle within {timeout:?}; check the broker and its message size limit (mosquitto: message_size_limit)"
            )));
        }
        match connection.recv_timeout(left) {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => break,
            Ok(Ok(_)) | Err(rumqttc::RecvTimeoutError::Timeout) => {}
            Ok(Err(e)) => {
                return Err(Error::Invalid(format!(
                    "mqtt: broker {broker}: {e}; check host, port, --username/--password-file (and the ACL: this user must be allowed to write {topic})"
                )))
            }
            Err(rumqttc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Invalid(format!("mqtt: broker {broker}: disconnected")))
            }
        }
    }
    log::info!("published {len} bytes retained on {topic}");
    let _ = client.disconnect();
    let t1 = std::time::Instant::now();
    while t1.elapsed() < std::time::Duration::from_secs(2) {
        match connection.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(Ok(Event::Outgoing(rumqttc::Outgoing::Disconnect))) | Ok(Err(_)) => break,
            Err(rumqttc::RecvTimeoutError::Disconnected) => break,
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(files: &[(&str, &[u8])]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let files: Vec<PackedFile> = files
            .iter()
            .map(|(p, d)| PackedFile {
                path: p.to_string(),
                data: b64.encode(d),
            })
            .collect();
        serde_json::to_vec(&Packed {
            format: FORMAT.into(),
            files,
        })
        .unwrap()
    }

    #[test]
    fn unpack_refuses_paths_leaving_the_bundle_and_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        for (i, bad) in [
            "../x",
            "/etc/passwd",
            "a/../../x",
            ".hidden",
            "a//b/./c",
            "a\\b",
            "",
        ]
        .iter()
        .enumerate()
        {
            let dest = dir.path().join(format!("b{i}"));
            let e = unpack(&payload(&[("manifest.toml", b"m"), (bad, b"x")]), &dest).unwrap_err();
            assert!(e.contains("plain relative path"), "{bad}: {e}");
            assert!(!dir.path().join("x").exists());
        }
        let e = unpack(
            &payload(&[("manifest.toml", b"m"), ("a.jpg", b"1"), ("a.jpg", b"2")]),
            &dir.path().join("dup"),
        )
        .unwrap_err();
        assert!(e.contains("listed twice"), "{e}");
        let e = unpack(&payload(&[("a.jpg", b"1")]), &dir.path().join("nomanifest")).unwrap_err();
        assert!(e.contains("manifest.toml"), "{e}");
        let e = unpack(b"\x00garbage", &dir.path().join("garbage")).unwrap_err();
        assert!(e.contains(FORMAT), "{e}");
        unpack(
            &payload(&[("manifest.toml", b"m"), ("people/a.jpg", b"1")]),
            &dir.path().join("ok"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("ok/people/a.jpg")).unwrap(),
            b"1"
        );
    }

    #[test]
    fn a_payload_is_spooled_once_and_an_oversized_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        let mut f = Fleet::new(spool.clone(), 1 << 20);
        let p = payload(&[("manifest.toml", b"m")]);
        assert_eq!(f.receive(&p), None);
        let sha = crate::fsutil::sha256_hex(&p);
        assert!(spool.join(&sha).join("facegate/manifest.toml").is_file());
        assert_eq!(f.receive(&p), None, "in progress: not spooled again");
        assert_eq!(
            finished(&spool, &spool.join(&sha).join("facegate")),
            Some(sha.clone())
        );
        assert!(!spool.join(&sha).exists());
        assert_eq!(f.receive(&p), None, "handled: not again");
        assert!(!spool.join(&sha).exists());
        assert_eq!(finished(&spool, Path::new("/media/usb/facegate")), None);
        let mut small = Fleet::new(dir.path().join("s2"), 8);
        assert!(matches!(
            small.receive(&p),
            Some(Inbound::BundleRefused { .. })
        ));
    }
}
