//! USB watch: a background thread polls the configured mount-point patterns (e.g.
//! `/media/*/facegate`, `/run/media/*/*/facegate`; `*` matches one path component) every
//! `poll_s`, and imports each bundle it has not seen (identified by the sha256 of its manifest
//! and signature) exactly once. The thread owns its own [`FaceEngine`]; the frame loop only
//! calls [`WatchHandle::poll`], which never blocks, and swaps in the gallery it returns.

use super::import::{import_bundle, report_text, write_report, ImportPolicy};
use super::stick::BundleDir;
use super::store::Store;
use super::{EnrollError, ProblemKind};
use crate::audit::Event;
use crate::face::{FaceEngine, FaceModels};
use crate::gallery::{Gallery, Person};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Expands `*` components of each pattern against the filesystem; returns existing directories.
pub fn expand(patterns: &[String]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for pat in patterns {
        let mut current = vec![PathBuf::from(if pat.starts_with('/') { "/" } else { "." })];
        for comp in pat.split('/').filter(|c| !c.is_empty()) {
            let mut next = Vec::new();
            for base in &current {
                if comp == "*" {
                    if let Ok(rd) = std::fs::read_dir(base) {
                        let mut v: Vec<PathBuf> =
                            rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
                        v.sort();
                        next.extend(v);
                    }
                } else {
                    next.push(base.join(comp));
                }
            }
            current = next;
        }
        out.extend(current.into_iter().filter(|p| p.is_dir()));
    }
    out
}

/// What the watcher reports to the frame loop.
#[derive(Debug)]
pub enum WatchEvent {
    /// A bundle was imported and the store written: swap the gallery.
    Imported { gallery: Gallery, audit: Value },
    /// A bundle was refused; the store is unchanged.
    Rejected { audit: Value },
}

impl WatchEvent {
    /// The audit event name and fields.
    pub fn audit(&self) -> (Event, &Value) {
        match self {
            WatchEvent::Imported { audit, .. } => (Event::EnrollImport, audit),
            WatchEvent::Rejected { audit } => (Event::EnrollRejected, audit),
        }
    }
}

/// Settings of the watcher.
pub struct WatchConfig {
    pub patterns: Vec<String>,
    pub poll: Duration,
    pub write_report: bool,
    pub policy: ImportPolicy,
    /// People enrolled from the config file; the store's people are laid over them.
    pub base: Vec<Person>,
}

/// The gallery the door uses: config people, then store people (same id: the store wins).
pub fn merged(base: &[Person], store: &[Person]) -> Gallery {
    Gallery::from_people(base.iter().chain(store).cloned().collect())
}

/// The frame loop's end of the watcher.
pub struct WatchHandle {
    rx: Receiver<WatchEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl WatchHandle {
    /// Events since the last call; never blocks.
    pub fn poll(&self) -> Vec<WatchEvent> {
        self.rx.try_iter().collect()
    }
}

/// How long dropping a [`WatchHandle`] waits for the watcher thread (which checks its stop
/// flag between bundles and every 100 ms while idle) before leaving it behind.
pub const STOP_WAIT: Duration = Duration::from_secs(5);

impl Drop for WatchHandle {
    /// Stops the watcher; never hangs: if the thread does not finish within [`STOP_WAIT`]
    /// (an import of a large bundle in progress, or a read the kernel keeps waiting on), it is
    /// detached and logged, and ends with the process. Store writes are atomic, so a process
    /// exit in the middle of an import leaves the old store.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let t0 = Instant::now();
            while !t.is_finished() && t0.elapsed() < STOP_WAIT {
                std::thread::sleep(Duration::from_millis(20));
            }
            if t.is_finished() {
                let _ = t.join();
            } else {
                log::error!(
                    "the enrollment watcher did not stop within {} s (busy importing, or blocked on the stick); leaving it behind",
                    STOP_WAIT.as_secs()
                );
            }
        }
    }
}

/// What the watcher finds in one bundle folder.
enum Found {
    /// No `manifest.toml`: not a bundle (yet).
    Nothing,
    /// A bundle, identified by the sha256 of its manifest and signature.
    Bundle(String),
    /// The folder, manifest or signature cannot be read safely (link, FIFO, device, too
    /// large, ...): refused without importing; `key` identifies the refusal.
    Refused { key: String, error: EnrollError },
}

/// Remembered bundles and refusals per run, at most this many (then forgotten and re-learnt:
/// a bundle already imported is then refused as a rollback, audited once more).
const MAX_SEEN: usize = 4096;

/// The bundle's identity, read with the same bounded, no-follow reads as the import: a FIFO
/// cannot block the poll, a link to `/dev/zero` or a huge file cannot exhaust memory.
fn bundle_identity(dir: &Path) -> Found {
    use super::bundle::{MANIFEST, MAX_MANIFEST_BYTES, MAX_SIG_BYTES, SIGNATURE};
    let refused = |error: EnrollError| Found::Refused {
        key: format!("{}\0{}\0{error}", dir.display(), error.kind()),
        error,
    };
    let folder = match BundleDir::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind == ProblemKind::Missing => return Found::Nothing,
        Err(e) => {
            return refused(EnrollError::Manifest {
                path: dir.to_path_buf(),
                reason: e.reason,
            })
        }
    };
    let m = match folder.read(Path::new(MANIFEST), MAX_MANIFEST_BYTES) {
        Ok(f) => f.bytes,
        Err(e) if e.kind == ProblemKind::Missing => return Found::Nothing,
        Err(e) => {
            return refused(EnrollError::Manifest {
                path: dir.join(MANIFEST),
                reason: e.reason,
            })
        }
    };
    let s = match folder.read(Path::new(SIGNATURE), MAX_SIG_BYTES) {
        Ok(f) => f.bytes,
        // unsigned: the import refuses it with the fix
        Err(e) if e.kind == ProblemKind::Missing => Vec::new(),
        Err(e) => {
            return refused(EnrollError::Signature(format!(
                "{}; then re-sign the bundle with `facegate bundle sign DIR --key KEY`",
                e.reason
            )))
        }
    };
    let mut h = Sha256::new();
    h.update(&m);
    h.update(&s);
    Found::Bundle(hex::encode(h.finalize()))
}

fn rejected_event(dir: &Path, id: Option<&str>, e: &EnrollError) -> WatchEvent {
    log::warn!("enrollment bundle {} rejected: {e}", dir.display());
    let problems = match e {
        EnrollError::Rejected(p) => serde_json::to_value(p).unwrap_or_default(),
        _ => Value::Null,
    };
    WatchEvent::Rejected {
        audit: json!({"bundle": dir, "manifest_sha256": id, "kind": e.kind(), "error": e.to_string().chars().take(1000).collect::<String>(), "problems": problems}),
    }
}

/// Starts the watcher thread.
pub fn spawn(
    models: Arc<FaceModels>,
    store: Store,
    cfg: WatchConfig,
) -> Result<WatchHandle, EnrollError> {
    let (tx, rx) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = Watcher {
        engine: models.enrolment_engine()?,
        store,
        cfg,
        tx,
        stop: stop.clone(),
        seen: HashSet::new(),
    };
    let thread = std::thread::Builder::new()
        .name("enroll-watch".into())
        .spawn(move || watcher.run())
        .map_err(|e| {
            EnrollError::Key(format!("cannot start the enrollment watcher thread: {e}"))
        })?;
    Ok(WatchHandle {
        rx,
        stop,
        thread: Some(thread),
    })
}

/// The frame loop dropped its [`WatchHandle`]: the watcher thread ends.
struct HandleGone;

/// The watcher thread's state.
struct Watcher {
    engine: FaceEngine,
    store: Store,
    cfg: WatchConfig,
    tx: Sender<WatchEvent>,
    stop: Arc<AtomicBool>,
    /// Bundles (sha256 of manifest + signature) and refusals already reported in this run.
    seen: HashSet<String>,
}

impl Watcher {
    /// Every `poll`: each bundle folder the patterns match, at most once per content; until
    /// stopped or the frame loop is gone.
    fn run(mut self) {
        while !self.stop.load(Ordering::Relaxed) {
            for dir in expand(&self.cfg.patterns) {
                if self.visit(&dir).is_err() {
                    return;
                }
            }
            self.sleep_until_next_poll();
        }
    }

    /// Looks at one bundle folder: a refusal or a bundle not reported yet is reported once.
    fn visit(&mut self, dir: &Path) -> Result<(), HandleGone> {
        if self.seen.len() > MAX_SEEN {
            log::warn!(
                "enrollment watcher: over {MAX_SEEN} bundles seen in this run; forgetting them"
            );
            self.seen.clear();
        }
        match bundle_identity(dir) {
            Found::Nothing => Ok(()),
            // Reported once per run and content, like a bundle.
            Found::Refused { key, error } => {
                if !self.seen.insert(key) {
                    return Ok(());
                }
                let ev = rejected_event(dir, None, &error);
                if self.cfg.write_report {
                    write_report(dir, &report_text(dir, &Err(error)));
                }
                self.send(ev)
            }
            Found::Bundle(id) => {
                if !self.seen.insert(id.clone()) {
                    return Ok(());
                }
                let ev = self.import(dir, &id);
                self.send(ev)
            }
        }
    }

    /// Imports the bundle `id` in `dir`, writes the report if configured, and says what happened.
    fn import(&mut self, dir: &Path, id: &str) -> WatchEvent {
        log::info!("enrollment bundle found at {}", dir.display());
        let mut progress = |done: usize, total: usize| {
            if done % 10 == 0 || done == total {
                log::info!("enrollment: {done}/{total} photos");
            }
        };
        let result = import_bundle(
            dir,
            &self.cfg.policy,
            &self.store,
            &mut self.engine,
            &mut progress,
        );
        if self.cfg.write_report {
            write_report(dir, &report_text(dir, &result));
        }
        match result {
            Ok(o) => {
                log::info!(
                    "enrollment: bundle version {} imported ({} enrolled, {} removed, {} photos in {:.1} s)",
                    o.version, o.enrolled.len(), o.removed.len(), o.photos, o.elapsed.as_secs_f64()
                );
                WatchEvent::Imported {
                    gallery: merged(&self.cfg.base, &o.data.people),
                    audit: o.audit_record(dir, Some(id), None),
                }
            }
            Err(e) => rejected_event(dir, Some(id), &e),
        }
    }

    fn send(&self, ev: WatchEvent) -> Result<(), HandleGone> {
        self.tx.send(ev).map_err(|_| HandleGone)
    }

    /// Sleeps `poll` in short steps so that stop is honoured quickly.
    fn sleep_until_next_poll(&self) {
        let poll = self.cfg.poll;
        let mut slept = Duration::ZERO;
        while slept < poll && !self.stop.load(Ordering::Relaxed) {
            let step = Duration::from_millis(100).min(poll - slept);
            std::thread::sleep(step);
            slept += step;
        }
    }
}
