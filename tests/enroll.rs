//! Enrollment by signed bundle: a valid bundle imports with the recognition pipeline's
//! embeddings; every hostile input is refused with an error naming the thing, and leaves the
//! store byte-identical; a power cut between writing and renaming leaves the old store.

use crate::common;

use facegate::enroll::bundle::{sha256_hex, sign_bundle};
use facegate::enroll::import::{import_bundle, verify_bundle, ImportPolicy};
use facegate::enroll::store::{Store, StoreData};
use facegate::enroll::{EnrollError, ProblemKind, SecretKey};
use facegate::face::encode::{Embedding, EMBEDDING_DIM};
use facegate::gallery::{Access, Person};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;

/// The face engine is shared; tests that run photos through it take turns.
static ENGINE: Mutex<Option<facegate::face::FaceEngine>> = Mutex::new(None);

fn with_engine<T>(f: impl FnOnce(&mut facegate::face::FaceEngine) -> T) -> T {
    let mut g = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    if g.is_none() {
        *g = Some(common::models().engine().expect("engine"));
    }
    f(g.as_mut().expect("engine"))
}

struct Env {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bundle: PathBuf,
    store: Store,
    key: SecretKey,
    policy: ImportPolicy,
}

const SITE: &str = "hq-front";

/// A bundle folder on a "stick", and a store already holding version 1 with one person.
fn env() -> Env {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().to_path_buf();
    let bundle = root.join("stick/facegate");
    std::fs::create_dir_all(&bundle).expect("mkdir");
    let key = SecretKey::generate().expect("keygen");
    let store = Store::open(
        &root.join("door/gallery.store"),
        &root.join("door/device.key"),
    )
    .expect("store");
    let encoder = common::models().encoder.sha256.clone();
    let mut data = StoreData::empty(&encoder);
    data.bundle_version = 1;
    data.people.push(Person {
        id: "old".into(),
        name: "Old Timer".into(),
        embeddings: vec![Embedding([0.1; EMBEDDING_DIM])],
        access: Access::default(),
    });
    store.save(&data).expect("save");
    let policy = ImportPolicy {
        admin_keys: vec![key.public()],
        sites: vec![SITE.into()],
        min_eye_distance_px: 20.0,
    };
    Env {
        _tmp: tmp,
        root,
        bundle,
        store,
        key,
        policy,
    }
}

impl Env {
    /// Copies a fixture photo into the bundle; returns (relative path, sha256).
    fn photo(&self, rel: &str, fixture: &str) -> (String, String) {
        let dst = self.bundle.join(rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::copy(common::face(fixture), &dst).expect("copy");
        let sha = sha256_hex(&std::fs::read(&dst).expect("read"));
        (rel.to_string(), sha)
    }

    fn bytes_photo(&self, rel: &str, bytes: &[u8]) -> (String, String) {
        let dst = self.bundle.join(rel);
        std::fs::create_dir_all(dst.parent().expect("parent")).expect("mkdir");
        std::fs::write(&dst, bytes).expect("write");
        (rel.to_string(), sha256_hex(bytes))
    }

    /// Writes the manifest text and a signature over it by `key`.
    fn sign_text(&self, text: &str, key: &SecretKey) {
        std::fs::write(self.bundle.join("manifest.toml"), text).expect("write manifest");
        std::fs::write(
            self.bundle.join("manifest.sig"),
            key.sign(text.as_bytes(), "manifest.toml"),
        )
        .expect("write sig");
    }

    fn signed(&self, text: &str) {
        self.sign_text(text, &self.key)
    }

    fn store_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.store.path).expect("store")
    }

    fn import(&self) -> Result<facegate::enroll::ImportOutcome, EnrollError> {
        with_engine(|e| import_bundle(&self.bundle, &self.policy, &self.store, e, &mut |_, _| {}))
    }

    /// Imports, expects a refusal whose message names every `needle`, and checks the store did
    /// not change by a single byte.
    fn refused(&self, needles: &[&str]) -> EnrollError {
        let before = self.store_bytes();
        let err = self.import().expect_err("hostile bundle must be refused");
        let msg = err.to_string();
        eprintln!("refused ({}): {msg}", err.kind());
        for n in needles {
            assert!(msg.contains(n), "error {msg:?} does not name {n:?}");
        }
        assert_eq!(self.store_bytes(), before, "store changed after: {msg}");
        let data = self
            .store
            .load(&common::models().encoder.sha256)
            .expect("loadable");
        assert_eq!(data.bundle_version, 1);
        assert_eq!(data.people.len(), 1);
        err
    }
}

fn manifest(version: u64, site: &str, people: &[(&str, Vec<(String, String)>)]) -> String {
    let mut s = format!(
        "schema = 1\nversion = {version}\nsite = \"{site}\"\ncreated = \"2026-11-30T08:00:00Z\"\n"
    );
    for (id, photos) in people {
        s += &format!("\n[[person]]\nid = \"{id}\"\nname = \"{id} name\"\nphotos = [");
        for (p, h) in photos {
            s += &format!("{{ path = \"{p}\", sha256 = \"{h}\" }}, ");
        }
        s += "]\n";
    }
    s
}

fn one(env: &Env, rel: &str, fixture: &str) -> String {
    let p = env.photo(rel, fixture);
    manifest(2, SITE, &[("alice", vec![p])])
}

#[test]
fn valid_bundle_imports_with_recognition_embeddings() {
    let env = env();
    let o1 = env.photo("obama/1.jpg", "obama1.jpg");
    let b1 = env.photo("biden/1.jpg", "biden1.jpg");
    let a1 = env.photo("alex/1.png", "alex-lacamoire.png");
    let mut text = manifest(
        2,
        SITE,
        &[("obama", vec![o1]), ("biden", vec![b1]), ("alex", vec![a1])],
    );
    text += "not_after = \"2030-01-01T00:00:00Z\"\n";
    text = text.replace("created", "remove = [\"old\"]\ncreated");
    env.signed(&text);
    let out = env.import().expect("valid bundle imports");
    assert_eq!(out.version, 2);
    assert_eq!(out.enrolled, ["obama", "biden", "alex"]);
    assert_eq!(out.removed, ["old"]);
    let data = env
        .store
        .load(&common::models().encoder.sha256)
        .expect("load");
    assert_eq!(data.bundle_version, 2);
    assert_eq!(data.people.len(), 3);
    assert!(data.people.iter().all(|p| p.embeddings.len() == 1));
    assert!(data.people[2].access.not_after.is_some());
    let gallery = data.gallery();
    // A different photo of Obama matches the imported Obama.
    let probe = facegate::imageio::load_rgb(&common::face("obama2.jpg")).expect("photo");
    let face = with_engine(|e| e.faces(&probe)).expect("faces");
    let m = gallery.best_match(&face[0].embedding).expect("match");
    assert_eq!(m.id, "obama");
    assert!(m.distance < common::models().default_threshold(), "{m:?}");
    // Photos are not kept: the store directory holds only the store, its seal and the key.
    let mut names: Vec<_> = std::fs::read_dir(env.store.path.parent().expect("dir"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["device.key", "gallery.store", "gallery.store.seal"],
        "{names:?}"
    );
    // The same bundle again is a rollback.
    let err = env.import().expect_err("replay");
    assert!(matches!(err, EnrollError::Rollback { .. }), "{err}");
    // staff remove: the template is gone from the rewritten store.
    let before = env.store_bytes();
    env.store.remove("biden").expect("remove");
    assert_ne!(env.store_bytes(), before);
    let data = env.store.load_any().expect("load").expect("exists");
    assert!(data.people.iter().all(|p| p.id != "biden"));
    assert!(matches!(
        env.store.remove("biden"),
        Err(EnrollError::NotEnrolled { .. })
    ));
}

#[test]
fn sign_bundle_fills_hashes_and_admin_check_passes() {
    let env = env();
    env.photo("o/1.jpg", "obama1.jpg");
    std::fs::write(
        env.bundle.join("manifest.toml"),
        "schema = 1\nversion = 5\nsite = \"hq-front\"\ncreated = \"2026-11-30T08:00:00Z\"\n\n[[person]]\nid = \"obama\"\nname = \"Barack\"\nphotos = [{ path = \"o/1.jpg\" }]\n",
    )
    .expect("write");
    let m = sign_bundle(&env.bundle, &env.key).expect("sign");
    assert_eq!(m.people[0].photos[0].sha256.len(), 64);
    let v = with_engine(|e| verify_bundle(&env.bundle, &env.policy, 1, Some(e), &mut |_, _| {}))
        .expect("check");
    assert_eq!(v.people[0].embeddings.len(), 1);
}

// ---- hostile inputs: each refused, naming the thing, the store byte-identical ----

#[test]
fn hostile_missing_signature() {
    let env = env();
    env.signed(&one(&env, "a.jpg", "obama1.jpg"));
    std::fs::remove_file(env.bundle.join("manifest.sig")).expect("rm");
    env.refused(&["manifest.sig is missing", "facegate bundle sign"]);
}

#[test]
fn hostile_wrong_signature_manifest_edited_after_signing() {
    let env = env();
    let text = one(&env, "a.jpg", "obama1.jpg");
    env.signed(&text);
    std::fs::write(
        env.bundle.join("manifest.toml"),
        text.replace("version = 2", "version = 3"),
    )
    .expect("write");
    env.refused(&["does not match key", &env.key.public().id_hex(), "re-sign"]);
}

#[test]
fn hostile_garbage_signature_file() {
    let env = env();
    env.signed(&one(&env, "a.jpg", "obama1.jpg"));
    std::fs::write(env.bundle.join("manifest.sig"), "not a signature\n").expect("write");
    env.refused(&["manifest.sig", "not a minisign signature"]);
}

#[test]
fn hostile_key_not_pinned() {
    let env = env();
    let other = SecretKey::generate().expect("keygen");
    env.sign_text(&one(&env, "a.jpg", "obama1.jpg"), &other);
    env.refused(&[
        &other.public().id_hex(),
        "not pinned",
        &env.key.public().id_hex(),
    ]);
}

#[test]
fn hostile_no_pinned_keys_at_all() {
    let mut env = env();
    env.signed(&one(&env, "a.jpg", "obama1.jpg"));
    env.policy.admin_keys.clear();
    env.refused(&["not pinned", "pinned: none"]);
}

#[test]
fn hostile_rollback_equal_version() {
    let env = env();
    let p = env.photo("a.jpg", "obama1.jpg");
    env.signed(&manifest(1, SITE, &[("alice", vec![p])]));
    env.refused(&["version 1", "enrolled version 1", "rollback"]);
}

#[test]
fn hostile_rollback_older_version() {
    let env = env();
    let p = env.photo("a.jpg", "obama1.jpg");
    env.signed(&manifest(0, SITE, &[("alice", vec![p])]));
    env.refused(&["version 0", "rollback"]);
}

#[test]
fn hostile_wrong_site() {
    let env = env();
    let p = env.photo("a.jpg", "obama1.jpg");
    env.signed(&manifest(2, "branch-office", &[("alice", vec![p])]));
    env.refused(&["branch-office", SITE]);
}

#[test]
fn hostile_photo_hash_mismatch() {
    let env = env();
    env.signed(&one(&env, "alice/a.jpg", "obama1.jpg"));
    std::fs::copy(common::face("biden1.jpg"), env.bundle.join("alice/a.jpg")).expect("swap");
    env.refused(&["alice", "alice/a.jpg", "sha256 mismatch"]);
}

#[test]
fn hostile_path_traversal() {
    let env = env();
    std::fs::copy(
        common::face("obama1.jpg"),
        env.root.join("stick/outside.jpg"),
    )
    .expect("copy");
    let sha = sha256_hex(&std::fs::read(env.root.join("stick/outside.jpg")).expect("read"));
    env.signed(&manifest(
        2,
        SITE,
        &[("alice", vec![("../outside.jpg".into(), sha)])],
    ));
    env.refused(&["../outside.jpg", "leaves the bundle"]);
}

#[test]
fn hostile_absolute_path() {
    let env = env();
    let abs = common::face("obama1.jpg");
    let sha = sha256_hex(&std::fs::read(&abs).expect("read"));
    env.signed(&manifest(
        2,
        SITE,
        &[("alice", vec![(abs.display().to_string(), sha)])],
    ));
    env.refused(&["obama1.jpg", "absolute path"]);
}

#[cfg(unix)]
#[test]
fn hostile_symlink_leaving_the_bundle() {
    let env = env();
    let target = common::face("obama1.jpg");
    let sha = sha256_hex(&std::fs::read(&target).expect("read"));
    std::os::unix::fs::symlink(&target, env.bundle.join("link.jpg")).expect("symlink");
    env.signed(&manifest(
        2,
        SITE,
        &[("alice", vec![("link.jpg".into(), sha)])],
    ));
    env.refused(&["link.jpg", "outside the bundle"]);
}

#[test]
fn hostile_missing_photo() {
    let env = env();
    let (rel, sha) = env.photo("a.jpg", "obama1.jpg");
    env.signed(&manifest(
        2,
        SITE,
        &[("alice", vec![(rel, sha.clone()), ("gone.jpg".into(), sha)])],
    ));
    env.refused(&["alice", "gone.jpg", "missing"]);
}

#[test]
fn hostile_photo_without_face() {
    let env = env();
    env.signed(&one(&env, "alice/nf.jpg", "no_face.jpg"));
    env.refused(&["alice", "alice/nf.jpg", "no face"]);
}

#[test]
fn hostile_photo_with_two_faces() {
    let env = env();
    env.signed(&one(&env, "alice/two.jpg", "two_people.jpg"));
    env.refused(&["alice", "alice/two.jpg", "2 faces"]);
}

#[test]
fn hostile_corrupt_jpeg() {
    let env = env();
    let mut bytes = std::fs::read(common::face("obama1.jpg")).expect("read");
    let n = bytes.len();
    for b in &mut bytes[200..n - 200] {
        *b = 0x5a;
    }
    let p = env.bytes_photo("alice/c.jpg", &bytes);
    env.signed(&manifest(2, SITE, &[("alice", vec![p])]));
    env.refused(&["alice", "alice/c.jpg"]);
}

#[test]
fn hostile_truncated_jpeg() {
    let env = env();
    let bytes = std::fs::read(common::face("obama1.jpg")).expect("read");
    let p = env.bytes_photo("alice/t.jpg", &bytes[..bytes.len() / 2]);
    env.signed(&manifest(2, SITE, &[("alice", vec![p])]));
    env.refused(&["alice", "alice/t.jpg", "truncated"]);
}

#[test]
fn hostile_truncated_png() {
    let env = env();
    let bytes = std::fs::read(common::face("alex-lacamoire.png")).expect("read");
    let p = env.bytes_photo("alice/t.png", &bytes[..bytes.len() / 2]);
    env.signed(&manifest(2, SITE, &[("alice", vec![p])]));
    env.refused(&["alice", "alice/t.png", "corrupt or truncated"]);
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&common::crc32(&body).to_be_bytes());
}

#[test]
fn hostile_decompression_bomb() {
    // A 100 000 x 100 000 PNG header in a few dozen bytes: 30 GB if decoded.
    let env = env();
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut png, b"IHDR", &ihdr);
    chunk(
        &mut png,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut png, b"IEND", &[]);
    let p = env.bytes_photo("alice/bomb.png", &png);
    env.signed(&manifest(2, SITE, &[("alice", vec![p])]));
    let err = env.refused(&["alice", "alice/bomb.png"]);
    assert!(
        matches!(&err, EnrollError::Rejected(p) if p[0].kind == ProblemKind::TooLarge),
        "{err}"
    );
    assert!(
        err.to_string().contains("100000") || err.to_string().contains("limit"),
        "{err}"
    );
}

#[test]
fn hostile_malformed_toml() {
    let env = env();
    env.signed("schema = 1\nversion = = 2\n[[person]\n");
    env.refused(&["manifest.toml", "not a valid manifest"]);
}

#[test]
fn hostile_truncated_toml() {
    let env = env();
    let text = one(&env, "a.jpg", "obama1.jpg");
    env.signed(&text[..text.len() - 30]);
    env.refused(&["manifest.toml", "not a valid manifest"]);
}

#[test]
fn hostile_unknown_manifest_key() {
    let env = env();
    let text = one(&env, "a.jpg", "obama1.jpg").replace("site", "admin = true\nsite");
    env.signed(&text);
    env.refused(&["manifest.toml", "admin"]);
}

#[test]
fn hostile_duplicate_ids() {
    let env = env();
    let a = env.photo("a.jpg", "obama1.jpg");
    let b = env.photo("b.jpg", "biden1.jpg");
    env.signed(&manifest(
        2,
        SITE,
        &[("alice", vec![a]), ("alice", vec![b])],
    ));
    env.refused(&["duplicate person id", "alice"]);
}

#[test]
fn hostile_id_enrolled_and_removed() {
    let env = env();
    let text = one(&env, "a.jpg", "obama1.jpg").replace("created", "remove = [\"alice\"]\ncreated");
    env.signed(&text);
    env.refused(&["duplicate person id", "alice"]);
}

#[test]
fn all_problems_reported_together_and_report_written() {
    let env = env();
    let a = env.photo("alice/nf.jpg", "no_face.jpg");
    let b = env.photo("bob/two.jpg", "two_people.jpg");
    env.signed(&manifest(2, SITE, &[("alice", vec![a]), ("bob", vec![b])]));
    let err = env.refused(&["alice/nf.jpg", "no face", "bob/two.jpg", "2 faces"]);
    let result = Err(err);
    let text = facegate::enroll::import::report_text(&env.bundle, &result);
    facegate::enroll::import::write_report(&env.bundle, &text);
    let report = std::fs::read_to_string(env.bundle.join("facegate-report.txt")).expect("report");
    assert!(
        report.contains("REJECTED") && report.contains("bob/two.jpg"),
        "{report}"
    );
}

// ---- the store ----

#[test]
fn store_from_another_encoder_is_refused() {
    let env = env();
    let err = env.store.load(&"0".repeat(64)).expect_err("other encoder");
    assert!(matches!(err, EnrollError::EncoderMismatch { .. }));
    assert!(err.to_string().contains("was made with encoder"), "{err}");
}

#[test]
fn store_tampered_or_other_key_is_refused() {
    let env = env();
    let mut bytes = env.store_bytes();
    let n = bytes.len();
    bytes[n - 5] ^= 1;
    let tampered = env.root.join("door/t.store");
    std::fs::write(&tampered, &bytes).expect("write");
    let s = Store::open(&tampered, &env.root.join("door/device.key")).expect("open");
    assert!(s
        .load_any()
        .expect_err("tampered")
        .to_string()
        .contains("cannot decrypt"));
    // A key that is not there is never created beside an existing store (issue 10 finding 8).
    let other = Store::open(&env.store.path, &env.root.join("door/other.key"));
    assert!(matches!(other, Err(EnrollError::MissingKey { .. })));
    // the store is sealed with a fresh nonce on every write
    let a = env
        .store
        .seal(&env.store.load_any().unwrap().unwrap())
        .unwrap();
    let b = env
        .store
        .seal(&env.store.load_any().unwrap().unwrap())
        .unwrap();
    assert_ne!(a, b);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(env.root.join("door/device.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn power_loss_between_write_and_rename_keeps_the_old_store() {
    let env = env();
    let before = env.store_bytes();
    // 1. Power cut after the temp file was (partly) written, before the rename: a stray temp
    //    file beside the store, the store itself untouched.
    let dir = env.store.path.parent().expect("dir");
    let mut next = env.store.load_any().unwrap().unwrap();
    next.bundle_version = 9;
    let sealed = env.store.seal(&next).expect("seal");
    std::fs::write(
        dir.join(".gallery.store.tmp-99999"),
        &sealed[..sealed.len() / 2],
    )
    .expect("tmp");
    assert_eq!(env.store_bytes(), before);
    let data = env
        .store
        .load(&common::models().encoder.sha256)
        .expect("old store loads");
    assert_eq!(data.bundle_version, 1);
    // 2. The write fails before the rename (here: the temp file cannot be created because a
    //    directory sits at its name, which fails even for root): the old store stays.
    let tmp = dir.join(format!(".gallery.store.tmp-{}", std::process::id()));
    std::fs::create_dir(&tmp).expect("mkdir");
    let err = env.store.save(&next).expect_err("the write must fail");
    assert!(err.to_string().contains("gallery.store"), "{err}");
    std::fs::remove_dir(&tmp).expect("rmdir");
    assert_eq!(env.store_bytes(), before);
    assert_eq!(env.store.load_any().unwrap().unwrap().bundle_version, 1);
    // 3. The next write succeeds and replaces the store as a whole.
    env.store.save(&next).expect("save");
    assert_eq!(env.store.load_any().unwrap().unwrap().bundle_version, 9);
}

#[test]
fn watcher_expands_mount_patterns() {
    let env = env();
    let found = facegate::enroll::watch::expand(&[format!("{}/*/facegate", env.root.display())]);
    assert_eq!(found, vec![env.root.join("stick/facegate")]);
}

// ---- timing (cargo test --test main enroll:: -- --ignored --nocapture) ----

#[test]
#[ignore]
fn timing_per_photo_and_100_people_bundle() {
    let env = env();
    let fixtures = [
        "obama1.jpg",
        "obama2.jpg",
        "obama3.jpg",
        "biden1.jpg",
        "biden2.jpg",
        "alex-lacamoire.png",
        "alex-lacamoire2.jpg",
        "alex-lacamoire3.jpg",
        "lin-manuel-miranda.png",
    ];
    let people: usize = std::env::var("ENROLL_PEOPLE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let mut list = Vec::new();
    for i in 0..people {
        let photos: Vec<(String, String)> = (0..3)
            .map(|k| {
                env.photo(
                    &format!("p{i:03}/{k}.img"),
                    fixtures[(i * 3 + k) % fixtures.len()],
                )
            })
            .collect();
        list.push((format!("p{i:03}"), photos));
    }
    let refs: Vec<(&str, Vec<(String, String)>)> = list
        .iter()
        .map(|(id, p)| (id.as_str(), p.clone()))
        .collect();
    env.signed(&manifest(2, SITE, &refs));
    // warm the engine
    with_engine(|e| e.faces(&facegate::imageio::load_rgb(&common::face("obama1.jpg")).unwrap()))
        .unwrap();
    let t0 = Instant::now();
    let v = with_engine(|e| verify_bundle(&env.bundle, &env.policy, 1, Some(e), &mut |_, _| {}))
        .expect("verify");
    let verify = t0.elapsed();
    let mut times: Vec<f64> = v
        .photo_times
        .iter()
        .map(|d| d.as_secs_f64() * 1e3)
        .collect();
    times.sort_by(f64::total_cmp);
    let t1 = Instant::now();
    let out = env.import().expect("import");
    let import = t1.elapsed();
    println!(
        "enrollment timing ({people} people x 3 photos = {} photos, dev profile, deps opt-level 3):\n  \
         per photo (decode+detect+embed): median {:.1} ms, p90 {:.1} ms, max {:.1} ms\n  \
         verify only: {:.2} s; full import incl. store write: {:.2} s ({} photos)",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1],
        verify.as_secs_f64(),
        import.as_secs_f64(),
        out.photos,
    );
}

#[test]
fn watcher_imports_a_new_bundle_once_and_reports_rejections() {
    use facegate::enroll::watch::{spawn, WatchConfig, WatchEvent};
    let env = env();
    env.signed(&one(&env, "a.jpg", "obama1.jpg"));
    let store = Store::open(&env.store.path, &env.root.join("door/device.key")).expect("store");
    let handle = spawn(
        common::models(),
        store,
        WatchConfig {
            patterns: vec![format!("{}/*/facegate", env.root.display())],
            poll: std::time::Duration::from_millis(100),
            write_report: true,
            policy: env.policy.clone(),
            base: Vec::new(),
        },
    )
    .expect("spawn");
    let wait = |n: usize| {
        let t0 = Instant::now();
        let mut evs = Vec::new();
        while evs.len() < n && t0.elapsed() < std::time::Duration::from_secs(60) {
            evs.extend(handle.poll());
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        evs
    };
    let evs = wait(1);
    match &evs[..] {
        [WatchEvent::Imported { gallery, audit }] => {
            assert!(gallery.get("alice").is_some() && gallery.get("old").is_some());
            assert_eq!(audit["version"], 2);
        }
        other => panic!("expected one import, got {other:?}"),
    }
    // The same bundle is not imported again.
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(handle.poll().is_empty());
    let report = std::fs::read_to_string(env.bundle.join("facegate-report.txt")).expect("report");
    assert!(report.contains("imported"), "{report}");
    // A second stick with a bundle signed by an unknown key: rejected, store unchanged.
    let before = env.store_bytes();
    let other_dir = env.root.join("stick2/facegate");
    std::fs::create_dir_all(&other_dir).expect("mkdir");
    let text = manifest(3, SITE, &[]);
    std::fs::write(other_dir.join("manifest.toml"), &text).expect("write");
    let other = SecretKey::generate().expect("keygen");
    std::fs::write(
        other_dir.join("manifest.sig"),
        other.sign(text.as_bytes(), "manifest.toml"),
    )
    .expect("write");
    let evs = wait(1);
    match &evs[..] {
        [WatchEvent::Rejected { audit }] => assert_eq!(audit["kind"], "key_not_pinned"),
        other => panic!("expected one rejection, got {other:?}"),
    }
    assert_eq!(env.store_bytes(), before);
}

#[test]
fn config_keys_for_signed_enrollment() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let key = SecretKey::generate().expect("keygen").public().base64;
    let base = "[camera]\nsource = \"replay\"\nreplay_dir = \"frames\"\n[lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n[audit]\npath = \"audit.jsonl\"\n[gallery]\nstore = \"gallery.store\"\n";
    let load = |extra: &str| {
        let p = tmp.path().join("c.toml");
        std::fs::write(&p, format!("{base}{extra}")).expect("write");
        facegate::config::Config::load(&p)
    };
    let cfg = load(&format!(
        "admin_keys = [\"{key}\"]\nsite = \"hq-front\"\nwatch = [\"/media/*/facegate\"]\npoll_s = 1.5\nwrite_report = true\n"
    ))
    .expect("valid");
    assert_eq!(cfg.gallery.key_path(), Some(tmp.path().join("device.key")));
    assert_eq!(cfg.gallery.sites(), ["hq-front"]);
    let e = load(&format!("admin_keys = [\"{key}\"]\n")).expect_err("no site");
    assert!(e.to_string().contains("site"), "{e}");
    let e = load("admin_keys = [\"nonsense\"]\nsite = \"x\"\n").expect_err("bad key");
    assert!(e.to_string().contains("admin_keys"), "{e}");
    let e = load("site = \"x\"\nwatch = [\"/media/*/facegate\"]\n").expect_err("no keys");
    assert!(e.to_string().contains("admin_keys is empty"), "{e}");
}

/// A camera that shows nothing (the loop keeps turning while the watcher imports).
struct Idle;

impl facegate::camera::FrameSource for Idle {
    fn next_frame(
        &mut self,
        timeout: std::time::Duration,
    ) -> Result<Option<facegate::camera::Frame>, facegate::camera::CameraError> {
        std::thread::sleep(timeout.min(std::time::Duration::from_millis(20)));
        Ok(None)
    }
    fn describe(&self) -> String {
        "idle".into()
    }
}

#[test]
fn daemon_loads_the_store_imports_from_the_stick_and_swaps_the_gallery() {
    let env = env();
    env.signed(&one(&env, "a.jpg", "obama1.jpg"));
    let key = env.key.public().base64;
    let cfg_path = env.root.join("facegate.toml");
    std::fs::write(
        &cfg_path,
        format!(
            "[camera]\nsource = \"replay\"\nreplay_dir = \"frames\"\nstall_timeout_s = 600\n\
             [lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
             [audit]\npath = \"audit.jsonl\"\n[daemon]\nwatchdog = false\n\
             [gallery]\nstore = \"door/gallery.store\"\nkey_file = \"door/device.key\"\n\
             admin_keys = [\"{key}\"]\nsite = \"{SITE}\"\nwatch = [\"{}/*/facegate\"]\npoll_s = 0.2\n",
            env.root.display()
        ),
    )
    .expect("config");
    let cfg = facegate::config::Config::load(&cfg_path).expect("config loads");
    let opener: facegate::camera::supervisor::Opener =
        Box::new(|| Ok(Box::new(Idle) as Box<dyn facegate::camera::FrameSource>));
    let mut daemon = facegate::daemon::Daemon::new(
        cfg,
        Box::new(facegate::door::output::sim::SimulatedOutput::new("relay")),
        opener,
    )
    .expect("daemon starts");
    assert_eq!(daemon.gallery().len(), 1, "the store's person is loaded");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let audit = env.root.join("audit.jsonl");
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let t0 = Instant::now();
            while t0.elapsed() < std::time::Duration::from_secs(60) {
                let log = std::fs::read_to_string(&audit).unwrap_or_default();
                if log.contains("\"enroll_import\"") {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    daemon.run(&stop).expect("run");
    watcher.join().expect("join");
    assert!(daemon.gallery().get("alice").is_some(), "gallery swapped");
    assert!(daemon.gallery().get("old").is_some());
    let report = facegate::audit::verify(env.root.join("audit.jsonl")).expect("verify");
    assert!(report.is_intact());
}

#[test]
fn staff_remove_command_rewrites_the_store_and_audits() {
    let env = env();
    let cfg_path = env.root.join("facegate.toml");
    std::fs::write(
        &cfg_path,
        "[camera]\nsource = \"replay\"\nreplay_dir = \"frames\"\n\
         [lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
         [audit]\npath = \"audit.jsonl\"\n\
         [gallery]\nstore = \"door/gallery.store\"\nkey_file = \"door/device.key\"\n",
    )
    .expect("config");
    let before = env.store_bytes();
    assert!(facegate::cli::staff_remove(&cfg_path, "nobody").is_err());
    assert_eq!(env.store_bytes(), before);
    assert_eq!(
        facegate::cli::staff_remove(&cfg_path, "old").expect("remove"),
        0
    );
    assert_ne!(env.store_bytes(), before, "the old ciphertext is replaced");
    assert!(env.store.load_any().unwrap().unwrap().people.is_empty());
    let log = std::fs::read_to_string(env.root.join("audit.jsonl")).expect("audit");
    assert!(
        log.contains("\"enroll_remove\"") && log.contains("\"old\""),
        "{log}"
    );
}

// issue 10: sealed state and anti-rollback

/// The store, its key and its seal as a fresh process finds them (nothing cached).
fn reopen(root: &std::path::Path) -> Result<Store, EnrollError> {
    Store::open_with_log(
        &root.join("door/gallery.store"),
        &root.join("door/device.key"),
        Some(&root.join("audit.jsonl")),
    )
}

fn encoder() -> String {
    common::models().encoder.sha256.clone()
}

/// Issue 10 finding 8: a missing device key beside an existing store is an error naming both
/// files and the fix; no new key is created.
#[test]
fn missing_key_with_the_store_present_is_refused() {
    let env = env();
    let key = env.root.join("door/device.key");
    std::fs::remove_file(&key).expect("rm key");
    let err = reopen(&env.root).err().expect("refused");
    let msg = err.to_string();
    for needle in [
        &env.store.path.display().to_string(),
        &key.display().to_string(),
        "exists but its key",
        "restore",
        "reset anti-rollback",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    assert!(!key.exists(), "no new key was created");
    // The seal alone also protects the key (the store deleted as well).
    std::fs::remove_file(&env.store.path).expect("rm store");
    let msg = reopen(&env.root).err().expect("refused").to_string();
    assert!(
        msg.contains("sealed state") && msg.contains("exists but its key"),
        "{msg}"
    );
}

/// Issue 10 finding 8: a deleted store is detected at daemon start (load) with the sealed
/// version and the fix; the old code started with an empty store at version 0.
#[test]
fn deleted_store_is_detected() {
    let Env {
        _tmp, root, store, ..
    } = env();
    std::fs::remove_file(&store.path).expect("rm store");
    drop(store);
    let store = reopen(&root).expect("open");
    let err = store.load(&encoder()).expect_err("deleted store refused");
    assert!(matches!(err, EnrollError::RolledBack { .. }), "{err}");
    let msg = err.to_string();
    for needle in [
        "missing",
        "version 1",
        "restore it from backup",
        "version > 1",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg}");
    }
    // An import sees the sealed version even without the store.
    let data = store.load_for_import(&encoder()).expect("import base");
    assert_eq!((data.bundle_version, data.people.len()), (1, 0));
}

/// Issue 10 finding 8: putting an older copy of the store back (here: before a `staff
/// remove`, so the removed person would come back) is detected at daemon start, by `staff
/// list`, and at import; the old code loaded it.
#[test]
fn old_store_copy_restored_is_detected() {
    let Env {
        _tmp,
        root,
        store,
        bundle,
        key,
        policy,
    } = env();
    let old = std::fs::read(&store.path).expect("store");
    store.remove("old").expect("staff remove");
    std::fs::write(&store.path, &old).expect("restore the old copy");
    drop(store);
    let store = reopen(&root).expect("open");
    let err = store.load(&encoder()).expect_err("old copy refused");
    let msg = err.to_string();
    assert!(matches!(err, EnrollError::RolledBack { .. }), "{msg}");
    assert!(
        msg.contains("ROLLBACK") && msg.contains("older copy"),
        "{msg}"
    );
    assert!(store.load_any().is_err(), "staff list refuses it too");
    // Import of a newer bundle on top of it is refused: the old people would come back.
    let text = manifest(5, SITE, &[]);
    std::fs::write(bundle.join("manifest.toml"), &text).expect("write");
    std::fs::write(
        bundle.join("manifest.sig"),
        key.sign(text.as_bytes(), "manifest.toml"),
    )
    .expect("sig");
    let err = with_engine(|e| import_bundle(&bundle, &policy, &store, e, &mut |_, _| {}))
        .expect_err("import on an old copy refused");
    assert!(matches!(err, EnrollError::RolledBack { .. }), "{err}");
    assert_eq!(std::fs::read(&store.path).expect("store"), old);
}

/// Issue 10 finding 8: the daemon refuses to start on a rolled-back store (it would admit
/// people removed since) and names the store; the relay is left to the safe state.
#[test]
fn daemon_refuses_to_start_on_an_old_store_copy() {
    let Env {
        _tmp, root, store, ..
    } = env();
    let old = std::fs::read(&store.path).expect("store");
    store.remove("old").expect("staff remove");
    std::fs::write(&store.path, &old).expect("restore the old copy");
    drop(store);
    let cfg_path = root.join("facegate.toml");
    std::fs::write(
        &cfg_path,
        "[camera]\nsource = \"replay\"\nreplay_dir = \"frames\"\n\
         [lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
         [audit]\npath = \"audit.jsonl\"\n[daemon]\nwatchdog = false\n\
         [gallery]\nstore = \"door/gallery.store\"\nkey_file = \"door/device.key\"\n",
    )
    .expect("config");
    let cfg = facegate::config::Config::load(&cfg_path).expect("config loads");
    let opener: facegate::camera::supervisor::Opener =
        Box::new(|| Ok(Box::new(Idle) as Box<dyn facegate::camera::FrameSource>));
    let err = facegate::daemon::Daemon::new(
        cfg,
        Box::new(facegate::door::output::sim::SimulatedOutput::new("relay")),
        opener,
    )
    .err()
    .expect("refused");
    let msg = err.to_string();
    assert!(
        msg.contains("ROLLBACK") && msg.contains("gallery.store"),
        "{msg}"
    );
}

/// Issue 10 finding 8: after the store was deleted, the old signed bundle (already imported)
/// cannot be replayed: imports must exceed the sealed version. A newer bundle rebuilds the
/// store. The old code imported the replay at version 0.
#[test]
fn old_signed_bundle_replay_refused_after_store_deletion() {
    let env = env();
    env.signed(&one(&env, "a.jpg", "obama1.jpg"));
    assert_eq!(env.import().expect("import v2").version, 2);
    std::fs::remove_file(&env.store.path).expect("rm store");
    let err = env.import().expect_err("replay refused");
    assert!(
        matches!(
            err,
            EnrollError::Rollback {
                version: 2,
                current: 2
            }
        ),
        "{err}"
    );
    assert!(!env.store.path.exists(), "nothing written");
    // The same replay after a restart (nothing cached), and with the seal deleted too: the
    // highest version is recovered from the audit log's enroll_import records.
    let Env {
        _tmp,
        root,
        store,
        bundle,
        policy,
        key,
        ..
    } = env;
    drop(store);
    let mut log = facegate::audit::AuditLog::open(root.join("audit.jsonl")).expect("log");
    log.append(
        facegate::audit::Event::EnrollImport,
        serde_json::json!({"version": 2}),
    )
    .expect("append");
    std::fs::remove_file(root.join("door/gallery.store.seal")).expect("rm seal");
    let store = reopen(&root).expect("open");
    let err = with_engine(|e| import_bundle(&bundle, &policy, &store, e, &mut |_, _| {}))
        .expect_err("replay refused");
    assert!(
        matches!(err, EnrollError::Rollback { current: 2, .. }),
        "{err}"
    );
    // A newer bundle rebuilds the store.
    let text = std::fs::read_to_string(bundle.join("manifest.toml"))
        .expect("manifest")
        .replace("version = 2", "version = 3");
    std::fs::write(bundle.join("manifest.toml"), &text).expect("write");
    std::fs::write(
        bundle.join("manifest.sig"),
        key.sign(text.as_bytes(), "manifest.toml"),
    )
    .expect("sig");
    let out = with_engine(|e| import_bundle(&bundle, &policy, &store, e, &mut |_, _| {}))
        .expect("newer bundle imports");
    assert_eq!(out.version, 3);
    assert_eq!(store.load(&encoder()).expect("load").people.len(), 1);
}

/// Issue 10 finding 8: a power cut after the store's rename but before its seal was
/// finished is not a rollback: the pending entry is accepted and finished.
#[test]
fn power_cut_between_store_rename_and_seal_is_not_a_rollback() {
    let Env {
        _tmp, root, store, ..
    } = env();
    let mut data = store.load_any().expect("load").expect("store");
    data.bundle_version = 4;
    data.sealed = true;
    let bytes = store.seal(&data).expect("encrypt");
    let entry = facegate::seal::StoreSeal {
        version: 4,
        sha256: sha256_hex(&bytes),
    };
    store
        .sealed()
        .update(|s| s.pending_store = Some(entry.clone()))
        .expect("pending");
    std::fs::write(&store.path, &bytes).expect("renamed");
    drop(store);
    let store = reopen(&root).expect("open");
    assert_eq!(store.load(&encoder()).expect("accepted").bundle_version, 4);
    let st = store.sealed().state();
    assert_eq!(
        (st.store, st.pending_store, st.max_version),
        (Some(entry), None, 4)
    );
}

/// Issue 10 finding 8: a store written before seals existed is adopted once; a store
/// written under a seal whose seal is then deleted is refused.
#[test]
fn store_without_seal_is_adopted_only_if_it_predates_seals() {
    let Env {
        _tmp, root, store, ..
    } = env();
    let seal = root.join("door/gallery.store.seal");
    // A first-version store: `sealed` is false, no seal file.
    let mut data = store.load_any().expect("load").expect("store");
    data.sealed = false;
    let v1 = store.seal(&data).expect("encrypt");
    drop(store);
    std::fs::remove_file(&seal).expect("rm seal");
    std::fs::write(root.join("door/gallery.store"), &v1).expect("v1 store");
    let store = reopen(&root).expect("open");
    assert_eq!(store.load(&encoder()).expect("adopted").bundle_version, 1);
    assert!(seal.exists(), "sealed now");
    store.save(&data).expect("save (now sealed)");
    drop(store);
    // Deleting the seal of a sealed store is refused.
    std::fs::remove_file(&seal).expect("rm seal");
    let store = reopen(&root).expect("open");
    let msg = store.load(&encoder()).expect_err("refused").to_string();
    assert!(msg.contains("seal") && msg.contains("missing"), "{msg}");
}

/// Issue 10 finding 4, at the daemon: a start on a truncated audit log records an
/// `audit_tamper` record carrying both heads and the daemon starts (it does not refuse to
/// run, which would let anyone with the SD card lock staff out).
#[test]
fn daemon_start_records_a_truncated_audit_log_and_runs() {
    let env = env();
    let cfg_path = env.root.join("facegate.toml");
    std::fs::write(
        &cfg_path,
        "[camera]\nsource = \"replay\"\nreplay_dir = \"frames\"\n\
         [lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
         [audit]\npath = \"audit.jsonl\"\n[daemon]\nwatchdog = false\n\
         [gallery]\nstore = \"door/gallery.store\"\nkey_file = \"door/device.key\"\n",
    )
    .expect("config");
    let cfg = facegate::config::Config::load(&cfg_path).expect("config loads");
    let start = |cfg: &facegate::config::Config| {
        let opener: facegate::camera::supervisor::Opener =
            Box::new(|| Ok(Box::new(Idle) as Box<dyn facegate::camera::FrameSource>));
        facegate::daemon::Daemon::new(
            cfg.clone(),
            Box::new(facegate::door::output::sim::SimulatedOutput::new("relay")),
            opener,
        )
        .expect("daemon starts")
    };
    drop(start(&cfg));
    let audit = env.root.join("audit.jsonl");
    {
        let mut log = facegate::audit::AuditLog::open_for_config(&cfg).expect("log");
        for i in 0..5 {
            log.append(
                facegate::audit::Event::Decision,
                serde_json::json!({"decision": "unlock", "frame": i}),
            )
            .expect("append");
        }
    }
    let text = std::fs::read_to_string(&audit).expect("log");
    let kept: Vec<&str> = text.lines().take(3).collect();
    std::fs::write(&audit, kept.join("\n") + "\n").expect("truncate");
    drop(env.store);
    drop(start(&cfg));
    let text = std::fs::read_to_string(&audit).expect("log");
    let last: serde_json::Value =
        serde_json::from_str(text.lines().last().expect("a record")).expect("json");
    assert_eq!(last["event"], "audit_tamper", "{text}");
    assert_eq!(last["fields"]["problem"], "truncated");
    assert_eq!(last["fields"]["sealed_seq"], 6);
    assert_eq!(last["fields"]["found_seq"], 3);
    let (out, tampered) = facegate::audit::check_log(
        &audit,
        Some((
            &env.root.join("door/gallery.store.seal"),
            &env.root.join("door/device.key"),
        )),
    )
    .expect("verify");
    assert!(!tampered && out.contains("1 audit_tamper record"), "{out}");
}

// issue 10: hostile sticks
//
// Findings 1, 6 and 7: everything a USB stick can do to the daemon. Every read from a stick is
// bounded in size and time and refuses links, FIFOs, devices and folders before reading
// (src/enroll/stick.rs); photos are verified and decoded one at a time; the report is
// created only inside the bundle folder, never through an existing file or link.

mod hostile_sticks {
    use super::*;
    use image::ImageEncoder;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::time::Duration;

    /// Peak RSS allowed for any stick content (the unit's MemoryMax is 300 MB).
    const RSS_LIMIT_KIB: i64 = 150 * 1024;

    /// Peak RSS allowed for the largest photo the door decodes (8.5 MP from a 16 MiB file):
    /// the file, the decoder's planes and the decoded image (~66 MB) are held together for a
    /// moment on top of the loaded models. Measured 144-150 MB with the debug binary, of which
    /// 26-29 MB are its own file-backed pages (RssFile; a stripped release binary maps far
    /// less); the rise during the decode is the photo, not the binary. 150 MB left no margin
    /// (the suite measured 150 MB twice on 2026-12-01 while the test alone measured 144-148).
    const WORST_PHOTO_RSS_LIMIT_KIB: i64 = 160 * 1024;

    pub fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_bytes()).expect("path");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(
            unsafe { libc::mkfifo(c.as_ptr(), 0o644) },
            0,
            "mkfifo {path:?}"
        );
    }

    /// A 1 GB sparse file: costs no disk, but 1 GB of memory to whoever reads it whole.
    pub fn sparse_gb(path: &Path) {
        let f = std::fs::File::create(path).expect("create");
        f.set_len(1 << 30).expect("set_len");
    }

    /// Runs `f` in its own thread; None if it did not return within `secs` (the thread is
    /// then left behind: on the old code it is blocked forever on a FIFO).
    pub fn within<T: Send + 'static>(
        secs: u64,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(secs)).ok()
    }

    /// The peak RSS (VmHWM, KiB) of the running `facegate` process `pid`, if it has exec'd.
    fn vm_hwm(pid: libc::pid_t) -> Option<i64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let name = status.lines().find_map(|l| l.strip_prefix("Name:"))?.trim();
        if name != "facegate" {
            return None;
        }
        let hwm = status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?;
        hwm.trim().trim_end_matches("kB").trim().parse().ok()
    }

    /// Waits for `child` (at most `timeout`, then kills it) and returns its exit code, its peak
    /// RSS in KiB, and whether it was killed.
    ///
    /// The peak is the child's own VmHWM, sampled every 10 ms until it exits (a high-water
    /// mark, so the peak is kept once reached). Not `getrusage(RUSAGE_CHILDREN)` nor wait4's
    /// ru_maxrss: Linux folds the *parent's* peak RSS into a child's ru_maxrss when the child
    /// execs from a vfork/fork (exec_mmap saves the old mm's high-water mark), so those report
    /// the test process's own peak (about 200 MB with tests running in parallel).
    pub fn wait_rss(child: std::process::Child, timeout: Duration) -> (Option<i32>, i64, bool) {
        let pid = child.id() as libc::pid_t;
        let t0 = Instant::now();
        let mut timed_out = false;
        let mut peak = 0;
        loop {
            if let Some(hwm) = vm_hwm(pid) {
                peak = peak.max(hwm);
            }
            let mut status: libc::c_int = 0;
            // SAFETY: pid is our unreaped child; status points to a live value.
            let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if r == pid {
                let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
                return (code, peak, timed_out);
            }
            assert!(r == 0, "waitpid: {}", std::io::Error::last_os_error());
            if t0.elapsed() > timeout && !timed_out {
                // SAFETY: sending SIGKILL to our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                timed_out = true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A config for the `facegate` binary: the env's store, its pinned key and site, and
    /// optionally a watch pattern (for `facegate run`).
    pub fn config(env: &Env, watch: Option<&str>) -> PathBuf {
        let key = env.key.public().base64;
        let watch = watch
            .map(|w| format!("watch = [\"{w}\"]\npoll_s = 0.2\nwrite_report = true\n"))
            .unwrap_or_default();
        let path = env.root.join("facegate.toml");
        std::fs::write(
            &path,
            format!(
                "[camera]\nsource = \"replay\"\nreplay_dir = \"{clip}\"\nreplay_realtime = true\nreplay_loop = true\nfps = 5\n\
                 [lock]\nbackend = \"simulated\"\nsafe_state = \"locked\"\n\
                 [audit]\npath = \"audit.jsonl\"\n[daemon]\nwatchdog = false\n\
                 [policy]\nmin_eye_distance_px = 20\n\
                 [gallery]\nstore = \"door/gallery.store\"\nkey_file = \"door/device.key\"\n\
                 admin_keys = [\"{key}\"]\nsite = \"{SITE}\"\n{watch}",
                clip = common::fixture("clip/hamilton").display()
            ),
        )
        .expect("config");
        path
    }

    /// A face photo of `w`x`h` pixels: a fixture photo upscaled, with fine noise of +-`noise`
    /// levels so that the JPEG (of `quality`) is as large as a phone photo of that size would be,
    /// still with one detectable face.
    pub fn noisy_photo(w: u32, h: u32, quality: u8, noise: u8) -> Vec<u8> {
        let src = facegate::imageio::load_rgb(&common::face("obama1.jpg")).expect("fixture");
        let mut img = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
        let mut x: u32 = 0x9e37_79b9;
        for p in img.pixels_mut() {
            for c in &mut p.0 {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *c = c
                    .saturating_add((x % (2 * u32::from(noise) + 1)) as u8)
                    .saturating_sub(noise);
            }
        }
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
            .encode_image(&img)
            .expect("encode");
        out
    }

    /// About 8 MB, 2400x3000 (7.2 megapixels).
    pub fn big_photo() -> Vec<u8> {
        noisy_photo(2400, 3000, 97, 12)
    }

    /// [`import_copies`] of `n` [`big_photo`]s.
    pub fn import_big_bundle(n: usize) -> (Option<i32>, i64, Duration, String) {
        let photo = big_photo();
        assert!(
            (7_000_000..10_000_000).contains(&photo.len()),
            "test photo is {} bytes, meant to be about 8 MB",
            photo.len()
        );
        import_copies(photo, n)
    }

    /// Imports a bundle of `n` copies of `photo` through `facegate enroll import` in a child
    /// process; returns (exit code, peak RSS KiB, elapsed, output).
    pub fn import_copies(photo: Vec<u8>, n: usize) -> (Option<i32>, i64, Duration, String) {
        let env = env();
        let sha = sha256_hex(&photo);
        let photos: Vec<(String, String)> = (0..n)
            .map(|i| {
                let rel = format!("big/{i:03}.jpg");
                env.bytes_photo(&rel, &photo);
                (rel, sha.clone())
            })
            .collect();
        drop(photo);
        env.signed(&manifest(2, SITE, &[("alice", photos)]));
        let cfg = config(&env, None);
        let log = env.root.join("import.log");
        let out = std::fs::File::create(&log).expect("log");
        let t0 = Instant::now();
        let child = common::facegate_command()
            .args(["enroll", "import"])
            .arg(&env.bundle)
            .arg("--config")
            .arg(&cfg)
            .current_dir(&env.root)
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn facegate");
        let (code, rss, timed_out) = wait_rss(child, Duration::from_secs(1800));
        let elapsed = t0.elapsed();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(!timed_out, "import did not finish: {text}");
        (code, rss, elapsed, text)
    }

    /// Issue 10 finding 1: photos that are FIFOs, links (to /dev/zero, or a folder link that
    /// stays inside the bundle), folders or 1 GB sparse files are each refused by name, without
    /// blocking and without reading them, all reported together; a manifest that is a FIFO or
    /// 1 GB, a signature linked to /dev/zero and a bundle folder that is a link are refused.
    /// Old code: opening the FIFO blocks forever (the 30 s bound fails), and a photo in a
    /// symlinked folder, or a symlinked bundle folder, resolving inside the bundle was accepted.
    #[test]
    fn stick_files_are_refused_before_reading_without_blocking() {
        use std::os::unix::fs::symlink;
        let env = env();
        let b = &env.bundle;
        let ok = env.photo("ok.jpg", "obama1.jpg");
        let (_, h) = env.photo("real/a.jpg", "obama1.jpg");
        symlink("real", b.join("linked")).expect("symlink");
        mkfifo(&b.join("fifo.jpg"));
        symlink("/dev/zero", b.join("zero.jpg")).expect("symlink");
        std::fs::create_dir(b.join("dir.jpg")).expect("mkdir");
        sparse_gb(&b.join("big.jpg"));
        let want = [
            ("linked/a.jpg", ProblemKind::Path, "symbolic link"),
            ("fifo.jpg", ProblemKind::Path, "FIFO"),
            ("zero.jpg", ProblemKind::Path, "symbolic link"),
            ("dir.jpg", ProblemKind::Path, "a folder, not a regular file"),
            ("big.jpg", ProblemKind::TooLarge, "1073741824 bytes"),
        ];
        let mut photos = vec![ok];
        photos.extend(want.iter().map(|(f, _, _)| (f.to_string(), h.clone())));
        env.signed(&manifest(2, SITE, &[("alice", photos)]));
        let verify = |dir: PathBuf, policy: ImportPolicy| {
            within(30, move || {
                verify_bundle(&dir, &policy, 1, None, &mut |_, _| {}).map(|v| v.manifest.version)
            })
            .expect("a hostile stick must not block the import (FIFO?)")
        };
        let err = verify(env.bundle.clone(), env.policy.clone()).expect_err("refused");
        let EnrollError::Rejected(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems.len(), want.len(), "{err}");
        for ((file, kind, needle), p) in want.iter().zip(problems) {
            assert_eq!((p.file.as_str(), p.kind), (*file, *kind), "{p}");
            assert!(p.reason.contains(needle) && p.reason.contains(file), "{p}");
        }

        // The manifest, the signature and the folder itself.
        let valid = super::env();
        valid.signed(&one(&valid, "a.jpg", "obama1.jpg"));
        assert_eq!(
            verify(valid.bundle.clone(), valid.policy.clone()).expect("valid"),
            2
        );
        let linked = valid.root.join("stick2/facegate");
        std::fs::create_dir_all(linked.parent().expect("parent")).expect("mkdir");
        symlink(&valid.bundle, &linked).expect("symlink");
        type Setup = fn(&Env);
        let cases: [(&str, Setup, &[&str]); 3] = [
            (
                "fifo manifest",
                |e| mkfifo(&e.bundle.join("manifest.toml")),
                &["manifest.toml", "FIFO"],
            ),
            (
                "huge manifest",
                |e| sparse_gb(&e.bundle.join("manifest.toml")),
                &["manifest.toml", "1073741824 bytes", "limit"],
            ),
            (
                "signature linked to /dev/zero",
                |e| {
                    std::fs::write(e.bundle.join("manifest.toml"), manifest(2, SITE, &[]))
                        .expect("write");
                    symlink("/dev/zero", e.bundle.join("manifest.sig")).expect("symlink");
                },
                &["manifest.sig", "symbolic link"],
            ),
        ];
        for (what, setup, needles) in cases {
            let e = super::env();
            setup(&e);
            let msg = verify(e.bundle.clone(), e.policy.clone())
                .expect_err(what)
                .to_string();
            for n in needles {
                assert!(msg.contains(n), "{what}: {msg:?} does not name {n:?}");
            }
        }
        let msg = verify(linked.clone(), valid.policy.clone())
            .expect_err("a bundle folder that is a link is refused")
            .to_string();
        assert!(
            msg.contains("symbolic link") && msg.contains("stick2/facegate"),
            "{msg}"
        );
    }

    fn hostile_sticks(env: &Env) -> String {
        use std::os::unix::fs::symlink;
        let sticks = env.root.join("sticks");
        let mk = |name: &str| {
            let d = sticks.join(name).join("facegate");
            std::fs::create_dir_all(&d).expect("mkdir");
            d
        };
        mkfifo(&mk("a-fifo").join("manifest.toml"));
        sparse_gb(&mk("b-huge").join("manifest.toml"));
        let c = mk("c-zero");
        std::fs::write(c.join("manifest.toml"), manifest(5, SITE, &[])).expect("write");
        symlink("/dev/zero", c.join("manifest.sig")).expect("symlink");
        // a valid bundle, and a link to it as a stick's bundle folder
        env.signed(&one(env, "a.jpg", "obama1.jpg"));
        std::fs::create_dir_all(sticks.join("d-link")).expect("mkdir");
        symlink(&env.bundle, sticks.join("d-link/facegate")).expect("symlink");
        let e = mk("e-valid");
        for f in ["a.jpg", "manifest.toml", "manifest.sig"] {
            std::fs::copy(env.bundle.join(f), e.join(f)).expect("copy");
        }
        format!("{}/*/facegate", sticks.display())
    }

    /// (file named in the error, audit kind) of each hostile stick, in poll order.
    const HOSTILE: [(&str, &str, &str); 4] = [
        ("a-fifo/facegate/manifest.toml", "manifest", "FIFO"),
        (
            "b-huge/facegate/manifest.toml",
            "manifest",
            "1073741824 bytes",
        ),
        ("manifest.sig", "signature", "symbolic link"),
        ("d-link/facegate", "manifest", "symbolic link"),
    ];

    /// Issue 10 finding 1: the watcher polls sticks holding a FIFO manifest, a 1 GB sparse
    /// manifest, a signature linked to /dev/zero and a bundle folder that is a link: each is
    /// reported once as Rejected (audited by the daemon) naming the file, a valid bundle on
    /// another stick is still imported, and dropping the handle returns promptly.
    /// Old code: the watcher blocks forever opening the FIFO, no event ever comes.
    #[test]
    fn watcher_reports_each_hostile_stick_once_and_keeps_importing() {
        use facegate::enroll::watch::{spawn, WatchConfig, WatchEvent, STOP_WAIT};
        let env = env();
        let pattern = hostile_sticks(&env);
        let store = Store::open(&env.store.path, &env.root.join("door/device.key")).expect("store");
        let handle = spawn(
            common::models(),
            store,
            WatchConfig {
                patterns: vec![pattern],
                poll: Duration::from_millis(100),
                write_report: true,
                policy: env.policy.clone(),
                base: Vec::new(),
            },
        )
        .expect("spawn");
        let t0 = Instant::now();
        let mut evs = Vec::new();
        while evs.len() < 5 && t0.elapsed() < Duration::from_secs(60) {
            evs.extend(handle.poll());
            std::thread::sleep(Duration::from_millis(20));
        }
        // more polls: nothing is reported twice
        std::thread::sleep(Duration::from_millis(800));
        evs.extend(handle.poll());
        let summary: Vec<String> = evs
            .iter()
            .map(|e| format!("{} {}", e.audit().0, e.audit().1))
            .collect();
        if evs.len() != 5 {
            // the old watcher is stuck in the FIFO: do not hang in its join
            std::mem::forget(handle);
            panic!("expected 4 rejections and 1 import, got {summary:#?}");
        }
        for ((file, kind, needle), ev) in HOSTILE.iter().zip(&evs) {
            let WatchEvent::Rejected { audit } = ev else {
                panic!("{summary:#?}")
            };
            let error = audit["error"].as_str().unwrap_or_default();
            assert_eq!(audit["kind"], *kind, "{summary:#?}");
            assert!(error.contains(file) && error.contains(needle), "{error}");
        }
        assert!(
            matches!(&evs[4], WatchEvent::Imported { gallery, .. } if gallery.get("alice").is_some()),
            "{summary:#?}"
        );
        // A report for the refused FIFO stick, inside its bundle folder; none through the link.
        let report = env.root.join("sticks/a-fifo/facegate/facegate-report.txt");
        let text = std::fs::read_to_string(&report).expect("report");
        assert!(text.contains("REJECTED") && text.contains("FIFO"), "{text}");
        assert!(!env.bundle.join("facegate-report.txt").exists());
        let t = Instant::now();
        drop(handle);
        assert!(
            t.elapsed() < STOP_WAIT,
            "watcher stop took {:?}",
            t.elapsed()
        );
    }

    /// Issue 10 finding 7: a stick whose report names (the old place, the stick's root, and
    /// the new one, the bundle folder) are links to a door file standing for the audit log:
    /// the file is left unchanged, and the report goes to a fresh regular file in the bundle
    /// folder. Old code: `std::fs::write` through the stick root's link overwrote it.
    #[test]
    fn report_is_never_written_through_a_link_or_outside_the_bundle() {
        use std::os::unix::fs::symlink;
        let env = env();
        let victim = env.root.join("door/audit.jsonl");
        std::fs::write(&victim, "{\"seq\":1}\n").expect("write");
        symlink(&victim, env.root.join("stick/facegate-report.txt")).expect("symlink");
        symlink(&victim, env.bundle.join("facegate-report.txt")).expect("symlink");
        env.signed(&one(&env, "a.jpg", "obama1.jpg"));
        let result = Err(EnrollError::Rollback {
            version: 1,
            current: 1,
        });
        let text = facegate::enroll::import::report_text(&env.bundle, &result);
        let written = facegate::enroll::import::write_report(&env.bundle, &text);
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "{\"seq\":1}\n"
        );
        let written = written.expect("a fresh report name in the bundle folder");
        assert_eq!(written.parent(), Some(env.bundle.as_path()));
        let name = written
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("facegate-report-") && name.ends_with(".txt"),
            "{name}"
        );
        let meta = std::fs::symlink_metadata(&written).expect("meta");
        assert!(meta.file_type().is_file());
        assert!(std::fs::read_to_string(&written)
            .expect("report")
            .contains("REJECTED"));
        // A bundle folder that is a link gets no report at all.
        let linked = env.root.join("stick2");
        symlink(&env.bundle, &linked).expect("symlink");
        assert_eq!(facegate::enroll::import::write_report(&linked, &text), None);
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "{\"seq\":1}\n"
        );
    }

    /// Issue 10 finding 6: a bundle of 16 photos of ~8 MB each (128 MB) imports through
    /// `facegate enroll import` with the child's peak RSS under 150 MB.
    /// Old code: all 16 photos were read and held before the first decode (> 150 MB).
    #[test]
    fn large_bundle_imports_one_photo_at_a_time_under_150_mb() {
        let (code, rss, elapsed, out) = import_big_bundle(16);
        eprintln!(
            "16 photos of ~8 MB: peak RSS {} MB, {:.1} s",
            rss / 1024,
            elapsed.as_secs_f64()
        );
        assert_eq!(code, Some(0), "{out}");
        assert!(
            out.contains("imported version 2") && out.contains("16 photos"),
            "{out}"
        );
        assert!(
            rss < RSS_LIMIT_KIB,
            "peak RSS {} MB over 150 MB: {out}",
            rss / 1024
        );
    }

    /// Issue 10 finding 6, measured once (not in CI; 2.4 GB of photos):
    /// `ENROLL_BIG_PHOTOS=300 cargo test --test main enroll::hostile_sticks::big_bundle_measure -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn big_bundle_measure() {
        let n = std::env::var("ENROLL_BIG_PHOTOS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(300);
        let (code, rss, elapsed, out) = import_big_bundle(n);
        println!(
            "{n} photos of ~8 MB through `facegate enroll import`: exit {code:?}, peak RSS {} MB, {:.1} s\n{out}",
            rss / 1024,
            elapsed.as_secs_f64()
        );
        assert_eq!(code, Some(0), "{out}");
    }

    /// Issue 10 finding 1, end to end: `facegate run` watching the hostile sticks keeps
    /// running, audits each refusal once, still imports the valid bundle, stops on SIGTERM
    /// within seconds, and its peak RSS stays under 150 MB.
    /// Old code: blocks on the FIFO (nothing audited), then hangs joining the watcher on SIGTERM.
    #[test]
    fn daemon_keeps_running_on_hostile_sticks_under_150_mb() {
        let env = env();
        let pattern = hostile_sticks(&env);
        let cfg = config(&env, Some(&pattern));
        let log = env.root.join("daemon.log");
        let out = std::fs::File::create(&log).expect("log");
        let child = common::facegate_command()
            .args(["run", "--config"])
            .arg(&cfg)
            .current_dir(&env.root)
            .env("RUST_LOG", "info")
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn facegate");
        let pid = child.id() as libc::pid_t;
        let audit = env.root.join("audit.jsonl");
        let t0 = Instant::now();
        let mut seen = String::new();
        while t0.elapsed() < Duration::from_secs(120) {
            seen = std::fs::read_to_string(&audit).unwrap_or_default();
            if seen.matches("\"enroll_rejected\"").count() >= 4
                && seen.contains("\"enroll_import\"")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(600)); // more polls: nothing twice
                                                        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let t = Instant::now();
        let (code, rss, timed_out) = wait_rss(child, Duration::from_secs(20));
        let stop = t.elapsed();
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: String = text.lines().rev().take(40).collect::<Vec<_>>().join("\n");
        assert!(
            !timed_out,
            "the daemon did not stop within 20 s of SIGTERM: {tail}"
        );
        assert_eq!(code, Some(0), "{tail}");
        let records = std::fs::read_to_string(&audit).unwrap_or_default();
        assert_eq!(
            records.matches("\"enroll_rejected\"").count(),
            4,
            "{seen}\n{records}"
        );
        assert_eq!(records.matches("\"enroll_import\"").count(), 1, "{records}");
        for (file, _, needle) in HOSTILE {
            assert!(
                records.lines().any(|l| l.contains("enroll_rejected")
                    && l.contains(file)
                    && l.contains(needle)),
                "no audited refusal naming {file}: {records}"
            );
        }
        assert!(facegate::audit::verify(&audit).expect("verify").is_intact());
        eprintln!(
            "daemon on hostile sticks: peak RSS {} MB, stopped {stop:?} after SIGTERM",
            rss / 1024
        );
        assert!(
            rss < RSS_LIMIT_KIB,
            "peak RSS {} MB over 150 MB: {tail}",
            rss / 1024
        );
    }

    /// Issue 10 finding 1: the shipped udev rule mounts enrollment sticks `nosymfollow` (with
    /// `ro,nosuid,nodev,noexec`) and says which kernel it needs. Old rule: no `nosymfollow`.
    #[test]
    fn udev_rule_mounts_sticks_nosymfollow() {
        let rule = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/99-facegate-usb.rules"),
        )
        .expect("rule");
        let run = rule
            .lines()
            .find(|l| !l.starts_with('#') && l.contains("systemd-mount"))
            .expect("mount line");
        assert!(
            run.contains("--options=ro,nosuid,nodev,noexec,nosymfollow "),
            "{run}"
        );
        assert!(rule.contains("Linux >= 5.10"), "{rule}");
    }

    /// Issue 10 findings 1 and 6: the largest photo the door decodes (8.5 megapixels, just
    /// under 16 MiB) imports with peak RSS under 160 MB, and a photo over the pixel limit is
    /// refused from its header, before decoding. Old code: decoded up to 48 megapixels from
    /// 32 MiB files (about 290 MB peak measured for 48 MP), so the 9-megapixel photo passed.
    #[test]
    fn photos_at_the_limits_stay_under_160_mb_and_larger_are_refused_before_decoding() {
        let photo = noisy_photo(3840, 2160, 100, 13);
        assert!(
            (14_000_000..=16 << 20).contains(&photo.len()),
            "worst-case photo is {} bytes, meant to be just under 16 MiB",
            photo.len()
        );
        let (code, rss, _, out) = import_copies(photo, 2);
        eprintln!(
            "2 photos of 3840x2160 at 16 MiB: peak RSS {} MB",
            rss / 1024
        );
        assert_eq!(code, Some(0), "{out}");
        assert!(
            rss < WORST_PHOTO_RSS_LIMIT_KIB,
            "peak RSS {} MB over 160 MB: {out}",
            rss / 1024
        );

        // A non-JPEG over the pixel budget cannot be decoded at a reduced scale: refused from
        // its header, before decoding, with the fix.
        let env = env();
        let src = image::RgbImage::from_pixel(3000, 3000, image::Rgb([128, 128, 128]));
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(src.as_raw(), 3000, 3000, image::ExtendedColorType::Rgb8)
            .expect("png");
        let p = env.bytes_photo("alice/huge.png", &png);
        env.signed(&manifest(2, SITE, &[("alice", vec![p])]));
        let err = verify_bundle(&env.bundle, &env.policy, 1, None, &mut |_, _| {})
            .expect_err("a 9-megapixel PNG is refused");
        let EnrollError::Rejected(problems) = &err else {
            panic!("{err}")
        };
        assert_eq!(problems[0].kind, ProblemKind::TooLarge, "{err}");
        assert!(
            problems[0].reason.contains("3000x3000")
                && problems[0].reason.contains("save it as JPEG"),
            "{err}"
        );
    }

    /// A phone photo (12 MP, 4032x3024 JPEG) is enrolled: decoded at half scale inside the
    /// IDCT, so the full-size image is never held, and the import stays under 150 MB.
    #[test]
    fn phone_photos_over_the_pixel_budget_import_at_reduced_scale_under_150_mb() {
        let photo = noisy_photo(4032, 3024, 92, 6);
        let (code, rss, _, out) = import_copies(photo, 2);
        eprintln!("2 photos of 4032x3024: peak RSS {} MB", rss / 1024);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("1 enrolled"), "{out}");
        assert!(
            rss < RSS_LIMIT_KIB,
            "peak RSS {} MB over 150 MB: {out}",
            rss / 1024
        );
    }
}
