//! The append-only, hash-chained audit log (JSON lines).
//!
//! # Format
//!
//! One JSON object per line, keys in this order:
//!
//! ```text
//! {"seq":1,"time":"2025-01-31T08:00:00.123456Z","event":"start","fields":{...},"prev":"000…0","hash":"9f…"}
//! ```
//!
//! * `seq`: 1, 2, 3, … without gaps.
//! * `time`: when the event happened, RFC 3339 in UTC (microseconds), from [`jiff`]; see
//!   [below](#time-the-event-time-and-logged).
//! * `event`: what happened ([`events`]: `decision`, `unlock`, `camera_lost`, …).
//! * `fields`: free fields for the event (`person`, `distance`, `decision`, `reason`, …), a JSON
//!   object. Never a photo: string values longer than [`MAX_STRING_FIELD`] bytes are refused.
//! * `prev`: hex SHA-256 of the previous line's bytes (without its newline); the first record
//!   has [`GENESIS_PREV`] (64 zeros).
//! * `hash`: hex SHA-256 of the line's own bytes up to `prev`'s closing quote, i.e. everything
//!   before `,"hash":"`; see [`render_line`] and [`line_hash`].
//!
//! # `time`: the event time, and `logged`
//!
//! `time` is when the event happened, read from the wall clock at that moment, not when the
//! line was written. The two differ for records that wait: door events are observed by the
//! door thread and written by the daemon's loop (one loop turn later, or, for an exit-button
//! press during the model load at start, seconds later), and records queued while the log
//! could not be written are written after `audit_recovered`. A record written more than
//! [`LOGGED_AFTER`] (1 s) away from its `time` also carries the write time in
//! `fields.logged`. So `time` need not grow with `seq`: `seq` is the order of writing (what
//! the chain proves), `time` the order of events. Before, `time` was the write time, and an
//! exit request at 20:12:44 during a slow start was recorded at 20:12:55.80, with `unlocked`
//! and `relocked` 4 ms apart for a 1 s pulse. Nothing about the chain changes: `time` is part
//! of the hashed bytes like any value, `logged` is an ordinary field, and logs written before
//! verify as they did.
//!
//! # The canonical form (issue 10 finding 3)
//!
//! The hash covers **the exact bytes written**, never a re-serialisation of parsed values. The
//! first version hashed `prev` + the canonical JSON of the *parsed* record ([`record_hash`]);
//! that re-serialises numbers, and a float written as its shortest decimal does not always
//! parse back to the same `f64` (serde_json without `float_roundtrip`: 12 % of `f32`
//! distances), so untouched records were reported as edited and a daemon whose last record
//! held such a value refused to start. Hashing bytes cannot drift: no parser, formatter,
//! library upgrade or platform takes part in checking a record, only SHA-256 over what is on
//! disk. The rejected alternatives: `float_roundtrip` alone (still depends on the formatter
//! and parser being exact inverses forever; serde_json has changed its float formatter
//! before), or a fixed number format (every writer and reader would have to agree on it,
//! including `null` for NaN).
//!
//! Logs written by the first version stay verifiable: a record whose `hash` is not the hash of
//! its bytes is checked with [`record_hash`], and serde_json is built with `float_roundtrip`
//! so that re-serialising its numbers is exact. Both forms are keyless, so accepting either
//! gives a forger nothing.
//!
//! Non-finite numbers cannot be written: `serde_json` turns NaN and ±infinity into `null`
//! when the fields are built (`json!({"distance": f32::NAN})` is `{"distance":null}`), so a
//! NaN distance is recorded as `null`, valid JSON that hashes like any other value. Negative
//! zero is kept (`-0.0`), subnormal and huge values are written as their shortest round-trip
//! decimal.
//!
//! # Mechanism and durability
//!
//! [`AuditLog::open`] reads only the tail of the file: it checks the last record's own hash and
//! continues the chain from it (a missing file starts a new chain). Each
//! [`append`](AuditLog::append) writes the whole line with a single `write` on an `O_APPEND`
//! descriptor and then calls `sync_data`, so when `append` returns the record is on stable
//! storage: the daemon appends the decision *before* it opens the door. If a write fails, the
//! file is truncated back to the last complete record.
//!
//! A power cut in the middle of a write can leave a *torn* final line (no newline, not valid
//! JSON). [`verify`] reports that as [`Problem::TornTail`], distinct from tampering; `open`
//! recovers from it by cutting the fragment off and appending a `torn_tail_recovered` record
//! that carries the fragment, so the evidence stays inside the chain.
//!
//! # What the chain does and does not prove
//!
//! [`verify`] detects an edited line (its `hash` no longer matches), deleted lines (`seq` gap),
//! reordered lines, inserted or duplicated lines (`seq` goes back) and a line whose `prev` does
//! not match the line before it (a line edited *with* a recomputed hash is reported at the
//! following line). A hash chain has no secret: someone able to rewrite the file can rewrite
//! the tail from the tampered point onwards, or drop the last records. Anchor the chain outside
//! the box: export [`AuditLog::head`] (seq and hash) periodically (e.g. over MQTT or to a
//! remote syslog) and compare.
//!
//! # The sealed head (issue 10 finding 4)
//!
//! On the door the head is also kept in the sealed state ([`crate::seal`]), authenticated with
//! the device key and written atomically after every append ([`AuditLog::open_for_config`]).
//! The seal is written *after* the record is durable, so after a power cut the log may be one
//! record ahead of the seal, never behind it: a log that ends before the sealed head, whose
//! record at the sealed `seq` is another one, or that is missing while the seal remembers a
//! head, was truncated, replaced or deleted ([`SealStatus`]). Records after the sealed head
//! are reported as not yet sealed, not as tampering.
//!
//! `facegate audit verify LOG --config FILE` reports such a log as tampering, naming both
//! heads. The daemon notices it at start, appends an `audit_tamper` record carrying both heads
//! (evidence inside the chain), seals the new head and **keeps running**: refusing to start
//! would let anyone with the SD card lock staff out, and the truncation has already happened;
//! what matters is that it is recorded and cannot be hidden again (removing the `audit_tamper`
//! record is itself a truncation). A deleted seal while the log says it was sealed
//! (an `audit_sealed` record) is recorded the same way (`seal_missing`).
//!
//! Without a `[gallery] store` there is no device key: the log then runs unsealed, with a
//! warning at every start (see [`crate::seal`] for why no key is created for it).
//!
//! # Ownership
//!
//! One writer per file: an `AuditLog` assumes no other process appends to the same file (two
//! writers would both continue from the same tail and fork the chain). The daemon is the only
//! writer; `facegate audit verify` only reads. Concurrent appenders are not supported.
//!
//! # Troubleshooting
//!
//! * "permission denied": the service user must own the log directory; the shipped unit allows
//!   writes to `/var/log/facegate` only (`ReadWritePaths=`).
//! * "the last record ... is damaged" at start: run `facegate audit verify FILE` to see where the
//!   chain breaks, keep the file as evidence, move it aside and start a new chain. With a seal,
//!   the new chain begins with an `audit_tamper` record (`missing`) naming the old head, which
//!   links it to the file you kept.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::sha256_hex;
use crate::seal::{Head, LogFacts, Seal};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record of a chain: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// `seq` of a record never reaches this (2^53, the largest integer every JSON reader holds
/// exactly); a log whose last record claims more was forged and is refused at open.
pub const MAX_SEQ: u64 = 1 << 53;

/// Longest string value accepted in `fields`, in bytes (keeps photos and blobs out of the log).
pub const MAX_STRING_FIELD: usize = 4096;

/// A record written further than this from the time of its event (its `time`) also carries
/// the write time, as `fields.logged` ([`AuditLog::append_at`]). Door events normally wait at
/// most one loop turn (a frame: up to a few hundred ms on a slow board) and get none; those
/// that happened during the model load at start, or were queued while the log could not be
/// written, do.
pub const LOGGED_AFTER: jiff::SignedDuration = jiff::SignedDuration::from_secs(1);

/// Event names used by facegate.
/// Every event name this crate writes into the log: the `event` field of a record. Records
/// are only written through [`AuditLog::append`], which takes this enum, so the list is
/// complete by construction (issue 11 item 5). The names are stable: existing logs, the
/// seal recovery ([`scan`]) and log readers depend on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// The daemon started (people, encoder hash, threshold, liveness).
    Start,
    /// The daemon stopped (frames, unlocks).
    Stop,
    /// A policy decision about a face (unlock or deny, with the reason).
    Decision,
    /// The camera stopped delivering frames.
    CameraLost,
    /// The camera delivers frames again.
    CameraRestored,
    /// A door controller event (`event`: a [`crate::door::controller::DoorEventKind`] name in
    /// snake_case, e.g. `unlocked`, `exit_request`, `forced_open`).
    Door,
    /// Driving the lock output failed after an audited unlock decision.
    LockError,
    /// The panic guard tripped: the door was released and the daemon exits.
    Emergency,
    /// The log is writable again after a fault; the queued records follow.
    AuditRecovered,
    /// `facegate lock test`: one pulse of the lock output.
    LockTest,
    /// `facegate lock safe`: the output driven to its safe state.
    LockSafe,
    /// A signed bundle was imported (`version` is the bundle version).
    EnrollImport,
    /// A bundle was refused; the store is unchanged.
    EnrollRejected,
    /// `facegate staff remove`: a person was removed from the store.
    EnrollRemove,
    /// `facegate staff remove` failed for another reason than an unknown id.
    EnrollRemoveFailed,
    /// A torn final line (power loss during a write) was cut off at open; the fragment is kept.
    TornTailRecovered,
    /// The log was sealed for the first time (its head is kept in the sealed state from now on).
    AuditSealed,
    /// At open the log did not match its sealed head (truncated, replaced, missing) or the seal
    /// was missing; carries both heads.
    AuditTamper,
    /// A command received over MQTT (`command`: `unlock` or `relock`; `result`; the door's
    /// `client_id` and broker `username`; issue 14).
    RemoteCommand,
}

impl Event {
    /// Every event, for tests and documentation.
    pub const ALL: [Event; 19] = [
        Event::Start,
        Event::Stop,
        Event::Decision,
        Event::CameraLost,
        Event::CameraRestored,
        Event::Door,
        Event::LockError,
        Event::Emergency,
        Event::AuditRecovered,
        Event::LockTest,
        Event::LockSafe,
        Event::EnrollImport,
        Event::EnrollRejected,
        Event::EnrollRemove,
        Event::EnrollRemoveFailed,
        Event::TornTailRecovered,
        Event::AuditSealed,
        Event::AuditTamper,
        Event::RemoteCommand,
    ];

    /// The name written in the record's `event` field.
    pub const fn as_str(self) -> &'static str {
        match self {
            Event::Start => "start",
            Event::Stop => "stop",
            Event::Decision => "decision",
            Event::CameraLost => "camera_lost",
            Event::CameraRestored => "camera_restored",
            Event::Door => "door",
            Event::LockError => "lock_error",
            Event::Emergency => "emergency",
            Event::AuditRecovered => "audit_recovered",
            Event::LockTest => "lock_test",
            Event::LockSafe => "lock_safe",
            Event::EnrollImport => "enroll_import",
            Event::EnrollRejected => "enroll_rejected",
            Event::EnrollRemove => "enroll_remove",
            Event::EnrollRemoveFailed => "enroll_remove_failed",
            Event::TornTailRecovered => "torn_tail_recovered",
            Event::AuditSealed => "audit_sealed",
            Event::AuditTamper => "audit_tamper",
            Event::RemoteCommand => "remote_command",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Errors from the audit log, naming the file, the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file operation failed.
    #[error("audit log {}: {action} failed: {source}; {}", path.display(), io_fix(source))]
    Io {
        /// The log file.
        path: PathBuf,
        /// What was being done ("open", "append", …).
        action: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The last record is not a valid record, so the chain cannot be continued.
    #[error(
        "audit log {}: the last record (line {line}) is damaged: {reason}; run \
         `facegate audit verify {}` to see where the chain breaks, keep the file as evidence, \
         move it aside and restart to begin a new chain",
        path.display(), path.display()
    )]
    CorruptTail {
        /// The log file.
        path: PathBuf,
        /// 1-based line number of the last record.
        line: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A field cannot be logged.
    #[error("audit record: {0}")]
    Field(String),
    /// The sealed state could not be read, authenticated or written.
    #[error("{0}")]
    Seal(String),
    /// An earlier write failed and could not be rolled back.
    #[error(
        "audit log {}: an earlier write failed and the file could not be truncated back to the \
         last complete record; restart the daemon (open recovers the torn line)",
        path.display()
    )]
    Broken {
        /// The log file.
        path: PathBuf,
    },
}

fn io_fix(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "the service user needs write access to the log directory \
             (owned by the facegate user and listed in ReadWritePaths= of the unit)"
        }
        std::io::ErrorKind::NotFound => "create the log directory (e.g. /var/log/facegate)",
        _ => "check the disk (space, read-only remount after errors: `dmesg`)",
    }
}

/// Canonical JSON: object keys sorted, no whitespace; used for hashing.
pub fn canonical_json(v: &Value) -> String {
    let mut s = String::new();
    write_canonical(v, &mut s);
    s
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// The first version's `hash` of a record: hex SHA-256 of `prev` followed by the canonical
/// JSON of the record with its `hash` key removed. Still accepted when verifying (logs
/// written before issue 10); new records use [`line_hash`].
pub fn record_hash(record: &Map<String, Value>) -> String {
    let mut without = record.clone();
    without.remove("hash");
    let prev = without.get("prev").and_then(Value::as_str).unwrap_or("");
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical_json(&Value::Object(without.clone())).as_bytes());
    hex::encode(h.finalize())
}

/// The `hash` of a record line: hex SHA-256 of the bytes before `,"hash":"` (see
/// [`render_line`]).
pub fn line_hash(prefix: &[u8]) -> String {
    sha256_hex(prefix)
}

/// One record line exactly as [`AuditLog::append`] writes it (without the newline): keys in
/// the documented order, values as [`canonical_json`], and `hash` = [`line_hash`] of the bytes
/// before it.
pub fn render_line(seq: u64, time: &str, event: &str, fields: &Value, prev: &str) -> String {
    let mut line = format!(
        "{{\"seq\":{seq},\"time\":{},\"event\":{},\"fields\":{},\"prev\":{}",
        Value::from(time),
        Value::from(event),
        canonical_json(fields),
        Value::from(prev)
    );
    let hash = line_hash(line.as_bytes());
    line.push_str(",\"hash\":\"");
    line.push_str(&hash);
    line.push_str("\"}");
    line
}

/// `true` if `line` ends with `,"hash":"<hash>"}` and `hash` is the hash of what precedes it.
fn bytes_hash_ok(line: &[u8], hash: &str) -> bool {
    let suffix = format!(",\"hash\":\"{hash}\"}}");
    hash.len() == 64
        && line.ends_with(suffix.as_bytes())
        && line_hash(&line[..line.len() - suffix.len()]) == hash
}

/// What a record line says about itself ([`parse_line`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineInfo {
    pub seq: u64,
    pub event: String,
    pub prev: String,
    pub hash: String,
    /// `hash` matches the line (its bytes, or for a first-version record [`record_hash`]).
    pub own_hash_ok: bool,
}

/// Parses one record line (without its newline) and checks its own hash; `Err` if it is not
/// a record. This is the check [`verify`] and [`AuditLog::open`] apply to every line.
pub fn parse_line(line: &[u8]) -> Result<LineInfo, String> {
    let v: Value = serde_json::from_slice(line).map_err(|e| format!("not JSON ({e})"))?;
    let Value::Object(m) = v else {
        return Err("not a JSON object".into());
    };
    let seq = m
        .get("seq")
        .and_then(Value::as_u64)
        .ok_or("no numeric `seq`")?;
    for key in ["time", "event", "prev", "hash"] {
        if !m.get(key).is_some_and(Value::is_string) {
            return Err(format!("no string `{key}`"));
        }
    }
    if !m.get("fields").is_some_and(Value::is_object) {
        return Err("no object `fields`".into());
    }
    let text = |k: &str| m[k].as_str().unwrap_or_default().to_string();
    let (event, prev, hash) = (text("event"), text("prev"), text("hash"));
    let own_hash_ok = bytes_hash_ok(line, &hash) || record_hash(&m) == hash;
    Ok(LineInfo {
        seq,
        event,
        prev,
        hash,
        own_hash_ok,
    })
}

use parse_line as parse_record;

fn check_fields(v: &Value, path: &str) -> Result<(), AuditError> {
    match v {
        Value::String(s) if s.len() > MAX_STRING_FIELD => Err(AuditError::Field(format!(
            "field `{path}` is {} bytes, over the {MAX_STRING_FIELD}-byte limit; the audit log \
             holds identifiers and measurements, never images or other blobs",
            s.len()
        ))),
        Value::Object(m) => m
            .iter()
            .try_for_each(|(k, x)| check_fields(x, &format!("{path}.{k}"))),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .try_for_each(|(i, x)| check_fields(x, &format!("{path}[{i}]"))),
        _ => Ok(()),
    }
}

/// An open audit log, positioned to append the next record of the chain.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    file: File,
    next_seq: u64,
    prev: String,
    len: u64,
    broken: bool,
    /// The sealed state the head is written to after every append (`None`: unsealed).
    seal: Option<Arc<Seal>>,
    /// What [`open_sealed`](Self::open_sealed) found wrong, if anything (`truncated`, …).
    tamper_at_open: Option<&'static str>,
}

/// What [`AuditLog::open`] read before appending anything.
struct Opened {
    log: AuditLog,
    /// A torn fragment that was cut off (to be recorded).
    torn: Option<Vec<u8>>,
    /// Hash of the line with the requested number, if the log has it.
    line_hash_at: Option<String>,
}

/// What [`AuditLog::open_sealed`] found when it compared the log with its seal.
enum SealFinding {
    /// The log's head is the sealed one (or follows it and was just sealed).
    Matches,
    /// The log was never sealed: its first `audit_sealed` record, with these fields, is due.
    FirstSeal(Value),
    /// Tampering: an `audit_tamper` record with these fields; `kind` is its `problem`.
    Tampered { kind: &'static str, fields: Value },
}

/// The log's last line after [`AuditLog::settle_tail`].
#[derive(Default)]
struct SettledTail {
    /// The last whole line and its 1-based number.
    last: Option<(u64, Vec<u8>)>,
    /// A torn fragment that was cut off (to be recorded).
    torn: Option<Vec<u8>>,
}

/// Maps an I/O error on the log at `path` to [`AuditError::Io`], saying what was being done.
fn io_err<'p>(
    path: &'p Path,
    action: &'static str,
) -> impl FnOnce(std::io::Error) -> AuditError + 'p {
    move |source| AuditError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// Opens the log for reading and appending, creating it (and making its directory entry
/// durable) if it does not exist.
fn open_for_append(path: &Path) -> Result<File, AuditError> {
    let created = !path.exists();
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err(path, "open"))?;
    if created {
        // Make the new directory entry durable too.
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io_err(path, "sync the directory"))?;
        }
    }
    Ok(file)
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, checks the last record and continues its chain.
    /// A torn final line is cut off and recorded (see the [module docs](self)). The head is
    /// not sealed: the daemon and the CLI use [`open_for_config`](Self::open_for_config).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let Opened { mut log, torn, .. } = AuditLog::open_inner(path.as_ref(), None)?;
        if let Some(fragment) = torn {
            log.record_torn(&fragment)?;
        }
        Ok(log)
    }

    /// Opens the log as the configuration says: sealed with the device key when a
    /// `[gallery] store` is configured ([`open_sealed`](Self::open_sealed)), otherwise
    /// unsealed with a warning.
    pub fn open_for_config(cfg: &crate::config::Config) -> Result<Self, AuditError> {
        let path = &cfg.audit.path;
        let Some(p) = crate::seal::SealPaths::of(cfg) else {
            log::warn!(
                "audit log {}: NOT SEALED: no [gallery] store (and so no device key) is \
                 configured, so a truncated or deleted log cannot be detected on the door; \
                 configure a store, or export the head (`facegate audit verify`) off the door",
                path.display()
            );
            return AuditLog::open(path);
        };
        let seal_err = |e: String| AuditError::Seal(format!("audit log {}: {e}", path.display()));
        let key = crate::enroll::store::DeviceKey::load_or_create(
            &p.key,
            &[("store", &p.store), ("sealed state", &p.seal)],
        )
        .map_err(|e| seal_err(e.to_string()))?;
        let seal = Seal::open(&p.seal, &key, Some(path)).map_err(|e| seal_err(e.to_string()))?;
        AuditLog::open_sealed(path, seal)
    }

    /// Opens the log and compares it with the head kept in `seal`; after every append the new
    /// head is sealed. A log shorter than its sealed head, replaced, or missing while the seal
    /// remembers a head is recorded as an `audit_tamper` record carrying both heads, and the
    /// chain continues from the log's actual tail (see the [module docs](self) for why the
    /// daemon keeps running). [`tamper_at_open`](Self::tamper_at_open) tells what was found.
    pub fn open_sealed(path: impl AsRef<Path>, seal: Arc<Seal>) -> Result<Self, AuditError> {
        let sealed = seal.state().audit;
        let Opened {
            mut log,
            torn,
            line_hash_at,
        } = AuditLog::open_inner(path.as_ref(), sealed.as_ref().map(|h| h.seq))?;
        log.seal = Some(seal.clone());
        let finding = log.compare_with_seal(&seal, sealed.as_ref(), line_hash_at)?;
        if let Some(fragment) = torn {
            log.record_torn(&fragment)?;
        }
        log.record_finding(finding)?;
        Ok(log)
    }

    /// Compares the log's head with the head kept in `seal` (`sealed`; `line_hash_at` is the
    /// hash of the log's line at the sealed `seq`). Records written after the last seal (a
    /// power cut between an append and the seal) are sealed here; anything else that differs
    /// is tampering, logged here and recorded by [`record_finding`](Self::record_finding).
    fn compare_with_seal(
        &mut self,
        seal: &Seal,
        sealed: Option<&Head>,
        line_hash_at: Option<String>,
    ) -> Result<SealFinding, AuditError> {
        let found = Head {
            seq: self.next_seq - 1,
            hash: self.prev.clone(),
        };
        let seal_path = seal.path().display().to_string();
        match sealed {
            None => self.never_sealed_or_seal_missing(seal, &seal_path, found),
            Some(h) if *h == found => Ok(SealFinding::Matches),
            Some(h) if h.seq < found.seq && line_hash_at.as_deref() == Some(h.hash.as_str()) => {
                // Written after the last seal (a power cut between the append and the seal).
                log::warn!(
                    "audit log {}: {} record(s) after the sealed head (seq {}) were not sealed \
                     (power cut after an append?); sealing the head at seq {}",
                    self.path.display(),
                    found.seq - h.seq,
                    h.seq,
                    found.seq
                );
                self.seal_head()?;
                Ok(SealFinding::Matches)
            }
            Some(h) => Ok(self.tampered(&seal_path, h, found, line_hash_at)),
        }
    }

    /// The seal holds no audit head: either the log was never sealed (its first
    /// `audit_sealed` record is due) or it was, and the seal was deleted or emptied
    /// (`seal_missing`, found from the log's own `audit_sealed` record).
    fn never_sealed_or_seal_missing(
        &self,
        seal: &Seal,
        seal_path: &str,
        found: Head,
    ) -> Result<SealFinding, AuditError> {
        let facts = scan(&self.path).map_err(io_err(&self.path, "read"))?;
        let Some(since) = facts.sealed_at else {
            return Ok(SealFinding::FirstSeal(serde_json::json!({
                "seal": seal_path, "head_seq": found.seq, "head_hash": found.hash,
                "max_version": seal.state().max_version,
            })));
        };
        log::error!(
            "audit log {}: TAMPERING: the seal {seal_path} is missing but the log was \
             sealed before; recording it",
            self.path.display()
        );
        Ok(SealFinding::Tampered {
            kind: "seal_missing",
            fields: serde_json::json!({
                "problem": "seal_missing", "seal": seal_path, "sealed_since_seq": since,
                "found_seq": found.seq, "found_hash": found.hash,
                "fix": "the seal was deleted or replaced by an empty one: restore it from backup to check the log against it; records may have been removed before this point",
            }),
        })
    }

    /// The log's head `found` is not the sealed head `h` and does not follow it: the log was
    /// deleted, truncated or replaced ([`SealStatus`]).
    fn tampered(
        &self,
        seal_path: &str,
        h: &Head,
        found: Head,
        line_hash_at: Option<String>,
    ) -> SealFinding {
        let status = if found.seq == 0 {
            SealStatus::Missing { sealed: h.clone() }
        } else if found.seq < h.seq {
            SealStatus::Truncated {
                sealed: h.clone(),
                found: found.clone(),
            }
        } else {
            SealStatus::Replaced {
                sealed: h.clone(),
                found: Head {
                    seq: h.seq,
                    hash: line_hash_at.unwrap_or_default(),
                },
            }
        };
        log::error!("audit log {}: TAMPERING: {status}", self.path.display());
        SealFinding::Tampered {
            kind: status.kind(),
            fields: serde_json::json!({
                "problem": status.kind(), "seal": seal_path,
                "sealed_seq": h.seq, "sealed_hash": h.hash,
                "found_seq": found.seq, "found_hash": found.hash,
                "fix": "keep the log and the seal as evidence and compare with an exported head (MQTT, remote syslog); the chain continues from the records that are left",
            }),
        }
    }

    /// Appends what [`compare_with_seal`](Self::compare_with_seal) found: the first
    /// `audit_sealed` record, or an `audit_tamper` record (remembered for
    /// [`tamper_at_open`](Self::tamper_at_open)).
    fn record_finding(&mut self, finding: SealFinding) -> Result<(), AuditError> {
        match finding {
            SealFinding::Matches => {}
            SealFinding::FirstSeal(fields) => {
                self.append(Event::AuditSealed, fields)?;
            }
            SealFinding::Tampered { kind, fields } => {
                self.tamper_at_open = Some(kind);
                self.append(Event::AuditTamper, fields)?;
            }
        }
        Ok(())
    }

    /// What [`open_sealed`](Self::open_sealed) recorded as tampering: `truncated`, `replaced`,
    /// `missing`, `seal_missing`; `None` if the log matched its seal.
    pub fn tamper_at_open(&self) -> Option<&'static str> {
        self.tamper_at_open
    }

    /// Opens (or creates) the log, reads its tail (and the hash of line `want_line`), recovers
    /// a torn last line and continues the chain after the last record.
    fn open_inner(path: &Path, want_line: Option<u64>) -> Result<Opened, AuditError> {
        let mut file = open_for_append(path)?;
        let len = file.metadata().map_err(io_err(path, "stat"))?.len();
        let (tail, line_hash_at) =
            read_tail(&mut file, len, want_line).map_err(io_err(path, "read the tail"))?;
        let mut log = AuditLog {
            path: path.to_path_buf(),
            file,
            next_seq: 1,
            prev: GENESIS_PREV.to_string(),
            len,
            broken: false,
            seal: None,
            tamper_at_open: None,
        };
        let SettledTail { last, torn } = log.settle_tail(tail)?;
        if let Some((line_no, line)) = last {
            log.continue_after(line_no, &line)?;
        }
        Ok(Opened {
            log,
            torn,
            line_hash_at,
        })
    }

    /// Settles an unterminated last line: a whole record torn just before its newline is
    /// terminated; anything else is cut off the file (and returned, to be recorded).
    fn settle_tail(&mut self, tail: Tail) -> Result<SettledTail, AuditError> {
        let (complete, fragment, fragment_start, line_no) = match tail {
            Tail::Empty => return Ok(SettledTail::default()),
            Tail::Terminated { line, line_no } => {
                return Ok(SettledTail {
                    last: Some((line_no, line)),
                    torn: None,
                })
            }
            Tail::Unterminated {
                complete,
                fragment,
                fragment_start,
                line_no,
            } => (complete, fragment, fragment_start, line_no),
        };
        if parse_record(&fragment).is_ok_and(|p| p.own_hash_ok) {
            // Torn just before the newline: the record is whole; terminate it.
            self.write_raw(b"\n")?;
            return Ok(SettledTail {
                last: Some((line_no, fragment)),
                torn: None,
            });
        }
        log::warn!(
            "audit log {}: the last line is incomplete ({} bytes, a write torn by \
             a power loss?); cutting it off and recording it",
            self.path.display(),
            fragment.len()
        );
        self.file
            .set_len(fragment_start)
            .map_err(io_err(&self.path, "truncate"))?;
        self.file.sync_data().map_err(io_err(&self.path, "sync"))?;
        self.len = fragment_start;
        Ok(SettledTail {
            last: complete.map(|l| (line_no - 1, l)),
            torn: Some(fragment),
        })
    }

    /// Continues the chain after the last record `line` (line `line_no`), which must be a
    /// whole record with a believable `seq`.
    fn continue_after(&mut self, line_no: u64, line: &[u8]) -> Result<(), AuditError> {
        let corrupt = |reason: String| AuditError::CorruptTail {
            path: self.path.clone(),
            line: line_no,
            reason,
        };
        let p = parse_record(line).map_err(corrupt)?;
        if !p.own_hash_ok {
            return Err(corrupt(format!(
                "its hash does not match its content (stored {})",
                p.hash
            )));
        }
        // A forged last record may carry any seq: continuing from u64::MAX would overflow.
        if p.seq >= MAX_SEQ {
            return Err(corrupt(format!(
                "its seq {} is beyond any real log (at most {MAX_SEQ})",
                p.seq
            )));
        }
        self.next_seq = p.seq + 1;
        self.prev = sha256_hex(line);
        Ok(())
    }

    fn record_torn(&mut self, fragment: &[u8]) -> Result<(), AuditError> {
        let text = String::from_utf8_lossy(fragment);
        let mut cut = text.len().min(MAX_STRING_FIELD);
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        self.append(
            Event::TornTailRecovered,
            serde_json::json!({ "bytes": fragment.len(), "fragment": &text[..cut] }),
        )?;
        Ok(())
    }

    /// Appends one record and makes it durable (`sync_data`) before returning its `seq`; on a
    /// sealed log the new head is then sealed. If only the seal fails, the record is on disk
    /// and the error says so. Its `time` is now: for an event that happened earlier, use
    /// [`append_at`](Self::append_at).
    ///
    /// `fields` must be a JSON object (or `null` for none).
    pub fn append(&mut self, event: Event, fields: Value) -> Result<u64, AuditError> {
        self.append_at(event, fields, jiff::Timestamp::now())
    }

    /// [`append`](Self::append) for an event that happened at `at` (wall clock, read when it
    /// happened): the record's `time` is `at`, and when it is written more than
    /// [`LOGGED_AFTER`] away from `at` the write time is added as `fields.logged` (see the
    /// [module docs](self#time-the-event-time-and-logged)).
    pub fn append_at(
        &mut self,
        event: Event,
        fields: Value,
        at: jiff::Timestamp,
    ) -> Result<u64, AuditError> {
        if self.broken {
            return Err(AuditError::Broken {
                path: self.path.clone(),
            });
        }
        let event = event.as_str();
        let fields = match fields {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => {
                return Err(AuditError::Field(format!(
                    "fields must be a JSON object such as {{\"person\": \"alice\"}}, not {other}"
                )))
            }
        };
        let mut fields = fields;
        let now = jiff::Timestamp::now();
        if now.duration_since(at).abs() > LOGGED_AFTER {
            fields.insert("logged".into(), Value::from(format!("{now:.6}")));
        }
        let fields = Value::Object(fields);
        check_fields(&fields, "fields")?;
        let time = format!("{at:.6}");

        let mut line = render_line(self.next_seq, &time, event, &fields, &self.prev);
        let line_hash = sha256_hex(line.as_bytes());
        line.push('\n');

        self.write_raw(line.as_bytes())?;
        self.prev = line_hash;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.seal_head()?;
        Ok(seq)
    }

    /// Writes the current head to the seal (no-op when unsealed).
    fn seal_head(&mut self) -> Result<(), AuditError> {
        let Some(seal) = &self.seal else {
            return Ok(());
        };
        let head = Head {
            seq: self.next_seq - 1,
            hash: self.prev.clone(),
        };
        let seq = head.seq;
        seal.update(|s| s.audit = Some(head)).map_err(|e| {
            AuditError::Seal(format!(
                "audit log {}: record {seq} was written, but its head could not be sealed: {e}; \
                 until the seal is written again, removing records after it would go unnoticed",
                self.path.display()
            ))
        })
    }

    fn write_raw(&mut self, bytes: &[u8]) -> Result<(), AuditError> {
        let result = self
            .file
            .write_all(bytes)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(source) => {
                if self.file.set_len(self.len).is_err() {
                    self.broken = true;
                }
                Err(AuditError::Io {
                    path: self.path.clone(),
                    action: "append",
                    source,
                })
            }
        }
    }

    /// `(seq, hex sha256 of the last line)` of the chain head, for anchoring the chain elsewhere.
    /// `(0, GENESIS_PREV)` for an empty log.
    pub fn head(&self) -> (u64, &str) {
        (self.next_seq - 1, &self.prev)
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The seal the head is kept in, if any.
    pub fn seal(&self) -> Option<&Arc<Seal>> {
        self.seal.as_ref()
    }
}

enum Tail {
    Empty,
    Terminated {
        line: Vec<u8>,
        line_no: u64,
    },
    Unterminated {
        complete: Option<Vec<u8>>,
        fragment: Vec<u8>,
        fragment_start: u64,
        line_no: u64,
    },
}

/// Reads the last line (and, if the file does not end with a newline, the fragment after it),
/// and the hash of complete line number `want_line` if there is one. Line numbers need a count
/// of newlines, which costs one sequential read of the file.
fn read_tail(
    file: &mut File,
    len: u64,
    want_line: Option<u64>,
) -> std::io::Result<(Tail, Option<String>)> {
    if len == 0 {
        return Ok((Tail::Empty, None));
    }
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&mut *file);
    let mut last_complete: Option<Vec<u8>> = None;
    let mut lines = 0u64;
    let mut buf = Vec::new();
    let mut offset = 0u64;
    let mut wanted = None;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            let tail = match last_complete {
                Some(line) => Tail::Terminated {
                    line,
                    line_no: lines,
                },
                None => Tail::Empty,
            };
            return Ok((tail, wanted));
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            lines += 1;
            if want_line == Some(lines) {
                wanted = Some(sha256_hex(&buf));
            }
            last_complete = Some(std::mem::take(&mut buf));
            offset += n as u64;
        } else {
            let tail = Tail::Unterminated {
                complete: last_complete,
                fragment: std::mem::take(&mut buf),
                fragment_start: offset,
                line_no: lines + 1,
            };
            return Ok((tail, wanted));
        }
    }
}

/// Reads the whole log for what the seal needs when it was missing ([`LogFacts`]): the
/// highest `version` of an `enroll_import` record and the first `audit_sealed` record. A
/// missing log gives empty facts. Only lines that mention those events are parsed.
pub fn scan(path: &Path) -> std::io::Result<LogFacts> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(LogFacts::default()),
        Err(e) => return Err(e),
    };
    let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
    let import = format!("\"{}\"", Event::EnrollImport.as_str());
    let sealed = format!("\"{}\"", Event::AuditSealed);
    let mut facts = LogFacts::default();
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(facts);
        }
        facts.records += 1;
        let wanted = contains(&buf, import.as_bytes())
            || (facts.sealed_at.is_none() && contains(&buf, sealed.as_bytes()));
        if !wanted {
            continue;
        }
        let Ok(Value::Object(m)) = serde_json::from_slice::<Value>(&buf) else {
            continue;
        };
        match m.get("event").and_then(Value::as_str) {
            Some(n) if n == Event::EnrollImport.as_str() => {
                let v = m
                    .get("fields")
                    .and_then(|f| f.get("version"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                facts.max_import_version = facts.max_import_version.max(v);
            }
            Some(n) if n == Event::AuditSealed.as_str() && facts.sealed_at.is_none() => {
                facts.sealed_at = m.get("seq").and_then(Value::as_u64);
            }
            _ => {}
        }
    }
}

/// What is wrong at the first bad line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The final line is incomplete (no newline, not a record): a write torn by a power loss,
    /// not tampering. `AuditLog::open` recovers it.
    TornTail,
    /// The line is not a record (not JSON, or a field is missing).
    Malformed(String),
    /// The record's `hash` does not match its content: the line was edited.
    Edited,
    /// `seq` skips ahead: records `missing_from..=missing_to` were deleted.
    Deleted {
        /// First missing seq.
        missing_from: u64,
        /// Last missing seq.
        missing_to: u64,
    },
    /// This line and the next one are out of order.
    Reordered {
        /// The seq expected here.
        expected: u64,
        /// The seq found here.
        found: u64,
    },
    /// `seq` goes back: a line was inserted, duplicated or moved here.
    Inserted {
        /// The seq expected here.
        expected: u64,
        /// The seq found here.
        found: u64,
    },
    /// `prev` does not match the previous line: the previous line was edited (with a
    /// recomputed hash) or replaced, or this line was inserted with a forged hash.
    BrokenLink,
}

impl Problem {
    /// `false` only for [`Problem::TornTail`] (power loss); everything else means the file was
    /// altered.
    pub fn is_tampering(&self) -> bool {
        !matches!(self, Problem::TornTail)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::TornTail => write!(
                f,
                "the final line is incomplete: a write torn by a power loss (not tampering); \
                 the daemon cuts it off and records it at the next start"
            ),
            Problem::Malformed(r) => write!(f, "not a valid record: {r}"),
            Problem::Edited => write!(f, "the record was edited: its hash does not match"),
            Problem::Deleted {
                missing_from,
                missing_to,
            } => write!(
                f,
                "records {missing_from}..={missing_to} were deleted (seq jumps over them)"
            ),
            Problem::Reordered { expected, found } => write!(
                f,
                "lines reordered: seq {found} where {expected} was expected, and {expected} follows"
            ),
            Problem::Inserted { expected, found } => write!(
                f,
                "a line was inserted, duplicated or moved here: seq {found} where {expected} \
                 was expected"
            ),
            Problem::BrokenLink => write!(
                f,
                "`prev` does not match the previous line: the previous line was altered \
                 (with a recomputed hash) or this line was inserted"
            ),
        }
    }
}

/// The result of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Records verified before the first problem (all of them if there is none).
    pub records: u64,
    /// The first bad line (1-based) and what is wrong with it.
    pub first_bad: Option<(u64, Problem)>,
    /// Hex sha256 of the last good line (compare with an exported [`AuditLog::head`]).
    pub head: String,
    /// `seq` of the verified `audit_tamper` records: tampering the daemon noticed at a start.
    pub tamper_records: Vec<u64>,
}

impl VerifyReport {
    /// `true` when every line verified.
    pub fn is_intact(&self) -> bool {
        self.first_bad.is_none()
    }
}

/// Reads the whole log at `path` and checks every link of the chain, stopping at the first
/// problem. Only I/O errors are `Err`; a broken chain is reported in the [`VerifyReport`].
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
    verify_inner(path.as_ref(), None).map(|(r, _)| r)
}

/// [`verify`], plus the hash of verified record number `want` if the log has it.
fn verify_inner(
    path: &Path,
    want: Option<u64>,
) -> Result<(VerifyReport, Option<String>), AuditError> {
    let file = File::open(path).map_err(io_err(path, "open"))?;
    let mut reader = BufReader::new(file);
    let mut report = VerifyReport {
        records: 0,
        first_bad: None,
        head: GENESIS_PREV.to_string(),
        tamper_records: Vec::new(),
    };
    let mut at_want = None;
    let mut line_no = 0u64;
    // One line of lookahead: a torn tail is only the last line, and a reordering is told
    // from a deletion by the line after.
    let mut next = read_line(&mut reader).map_err(io_err(path, "read"))?;
    while let Some((line, terminated)) = next.take() {
        line_no += 1;
        next = read_line(&mut reader).map_err(io_err(path, "read"))?;
        let after = next.as_ref().map(|(l, _)| l.as_slice());
        let parsed = match check_line(&line, terminated, after, &report) {
            Ok(parsed) => parsed,
            Err(problem) => {
                report.first_bad = Some((line_no, problem));
                break;
            }
        };
        report.records += 1;
        report.head = sha256_hex(&line);
        if parsed.event == Event::AuditTamper.as_str() {
            report.tamper_records.push(parsed.seq);
        }
        if want == Some(report.records) {
            at_want = Some(report.head.clone());
        }
    }
    Ok((report, at_want))
}

/// The next line without its newline, and whether it had one; `None` at the end.
fn read_line(reader: &mut impl BufRead) -> std::io::Result<Option<(Vec<u8>, bool)>> {
    let mut buf = Vec::new();
    if reader.read_until(b'\n', &mut buf)? == 0 {
        return Ok(None);
    }
    let terminated = buf.last() == Some(&b'\n');
    if terminated {
        buf.pop();
    }
    Ok(Some((buf, terminated)))
}

/// Checks one line against the chain verified so far (`report`), in order: it is a record
/// (if not, and it is the unterminated last line, a torn tail), its own hash matches, its
/// `seq` is the next one (higher: records deleted, or reordered when the line `after` it has
/// the expected `seq`; lower: inserted), and its `prev` is the hash of the line before.
fn check_line(
    line: &[u8],
    terminated: bool,
    after: Option<&[u8]>,
    report: &VerifyReport,
) -> Result<LineInfo, Problem> {
    let expected = report.records + 1;
    let parsed = parse_record(line).map_err(|reason| {
        if after.is_none() && !terminated {
            Problem::TornTail
        } else {
            Problem::Malformed(reason)
        }
    })?;
    if !parsed.own_hash_ok {
        return Err(Problem::Edited);
    }
    if parsed.seq > expected {
        let next_seq = after.and_then(|l| parse_record(l).ok()).map(|p| p.seq);
        return Err(if next_seq == Some(expected) {
            Problem::Reordered {
                expected,
                found: parsed.seq,
            }
        } else {
            Problem::Deleted {
                missing_from: expected,
                missing_to: parsed.seq - 1,
            }
        });
    }
    if parsed.seq < expected {
        return Err(Problem::Inserted {
            expected,
            found: parsed.seq,
        });
    }
    if parsed.prev != report.head {
        return Err(Problem::BrokenLink);
    }
    Ok(parsed)
}

/// How a log compares with the head kept in its seal ([`verify_sealed`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SealStatus {
    /// The seal holds no audit head (nothing sealed yet, or no seal configured).
    Unsealed,
    /// The sealed head is in the log; `unsealed` records follow it (normally 0; 1 after a power
    /// cut between an append and the seal; more if writing the seal failed or someone appended).
    Matches { sealed: Head, unsealed: u64 },
    /// The log ends before the sealed head: records were cut off the end, or an older copy of
    /// the log was put back.
    Truncated { sealed: Head, found: Head },
    /// The record at the sealed `seq` is not the sealed one: the log was replaced or rewritten.
    Replaced { sealed: Head, found: Head },
    /// The log is missing (or empty) while the seal remembers a head: it was deleted.
    Missing { sealed: Head },
}

impl SealStatus {
    /// `true` for [`Truncated`](Self::Truncated), [`Replaced`](Self::Replaced),
    /// [`Missing`](Self::Missing).
    pub fn is_tampering(&self) -> bool {
        matches!(
            self,
            SealStatus::Truncated { .. } | SealStatus::Replaced { .. } | SealStatus::Missing { .. }
        )
    }

    /// Short name, as in the `problem` field of an `audit_tamper` record.
    pub fn kind(&self) -> &'static str {
        match self {
            SealStatus::Unsealed => "unsealed",
            SealStatus::Matches { .. } => "matches",
            SealStatus::Truncated { .. } => "truncated",
            SealStatus::Replaced { .. } => "replaced",
            SealStatus::Missing { .. } => "missing",
        }
    }
}

const TAMPER_FIX: &str = "keep the log and the seal as evidence, compare with the head exported \
    off the door (MQTT, remote syslog) to see what was removed, and look for who had the SD card; \
    the daemon records this in an `audit_tamper` record at its next start and continues the chain";

impl std::fmt::Display for SealStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SealStatus::Unsealed => write!(f, "the seal holds no audit head yet"),
            SealStatus::Matches { sealed, unsealed: 0 } => {
                write!(f, "the head matches the sealed head (seq {}, {})", sealed.seq, sealed.hash)
            }
            SealStatus::Matches { sealed, unsealed } => write!(
                f,
                "the sealed head (seq {}, {}) is in the log; the {unsealed} record(s) after it are \
                 not sealed yet (a power cut after an append; the daemon seals them at its next \
                 start)",
                sealed.seq, sealed.hash
            ),
            SealStatus::Truncated { sealed, found } => write!(
                f,
                "TAMPERED: the log ends at seq {} (head {}) but the sealed head is seq {} (head \
                 {}): records {}..={} were removed from the end, or an older copy of the log was \
                 put back; {TAMPER_FIX}",
                found.seq,
                found.hash,
                sealed.seq,
                sealed.hash,
                found.seq + 1,
                sealed.seq
            ),
            SealStatus::Replaced { sealed, found } => write!(
                f,
                "TAMPERED: record {} of the log has hash {} but the sealed head is seq {} with hash \
                 {}: the log was replaced or rewritten; {TAMPER_FIX}",
                found.seq,
                if found.hash.is_empty() { "-" } else { &found.hash },
                sealed.seq,
                sealed.hash
            ),
            SealStatus::Missing { sealed } => write!(
                f,
                "TAMPERED: the log is missing or empty but the seal remembers its head at seq {} \
                 (head {}): it was deleted; {TAMPER_FIX}",
                sealed.seq, sealed.hash
            ),
        }
    }
}

/// Verifies the chain ([`verify`]) and compares the log with `sealed` (the head kept in the
/// seal). A missing log gives `(None, Missing)` when the seal remembers a head.
pub fn verify_sealed(
    path: impl AsRef<Path>,
    sealed: Option<&Head>,
) -> Result<(Option<VerifyReport>, SealStatus), AuditError> {
    let path = path.as_ref();
    let Some(sealed) = sealed else {
        return Ok((Some(verify(path)?), SealStatus::Unsealed));
    };
    if !path.exists() {
        return Ok((
            None,
            SealStatus::Missing {
                sealed: sealed.clone(),
            },
        ));
    }
    let (report, at) = verify_inner(path, Some(sealed.seq))?;
    let found = Head {
        seq: report.records,
        hash: report.head.clone(),
    };
    let status = if found.seq == 0 {
        SealStatus::Missing {
            sealed: sealed.clone(),
        }
    } else if found.seq < sealed.seq {
        SealStatus::Truncated {
            sealed: sealed.clone(),
            found,
        }
    } else if at.as_deref() == Some(sealed.hash.as_str()) {
        SealStatus::Matches {
            sealed: sealed.clone(),
            unsealed: found.seq - sealed.seq,
        }
    } else {
        SealStatus::Replaced {
            sealed: sealed.clone(),
            found: Head {
                seq: sealed.seq,
                hash: at.unwrap_or_default(),
            },
        }
    };
    Ok((Some(report), status))
}

/// `facegate audit verify LOG [--config FILE | --seal FILE --key FILE]`: the text to print and
/// whether the log was altered (exit 1). `seal` is `(seal file, device key)`; `None` checks
/// the chain only and says that a truncated tail cannot be seen that way.
pub fn check_log(log: &Path, seal: Option<(&Path, &Path)>) -> Result<(String, bool), AuditError> {
    let sealed = match seal {
        None => None,
        Some((seal_path, key_path)) => Some((seal_path, read_sealed_head(seal_path, key_path)?)),
    };
    let (report, status) = verify_sealed(log, sealed.as_ref().and_then(|(_, h)| h.as_ref()))?;
    let mut out = String::new();
    let mut tampered = status.is_tampering();
    if let Some(r) = &report {
        out += &describe_chain(log, r, &status);
        tampered |= r.first_bad.as_ref().is_some_and(|(_, p)| p.is_tampering());
        out += &describe_tamper_records(log, r);
    }
    out += &match &sealed {
        None => format!(
            "{}: head not checked against a seal, so removed final records cannot be seen; \
             pass --config FILE (or --seal FILE --key FILE)\n",
            log.display()
        ),
        Some((seal_path, _)) => format!(
            "{} (seal {}): {status}\n",
            log.display(),
            seal_path.display()
        ),
    };
    Ok((out, tampered))
}

/// The audit head kept in the sealed state `seal_path` (authenticated with the device key at
/// `key_path`); a missing seal is an error naming the fix.
fn read_sealed_head(seal_path: &Path, key_path: &Path) -> Result<Option<Head>, AuditError> {
    let key = crate::enroll::store::DeviceKey::load(key_path)
        .map_err(|e| AuditError::Seal(e.to_string()))?;
    match Seal::read(seal_path, &key).map_err(|e| AuditError::Seal(e.to_string()))? {
        Some(state) => Ok(state.audit),
        None => Err(AuditError::Seal(format!(
            "sealed state {}: missing; restore it from backup to check the log \
             against it (the daemon records a missing seal at its next start)",
            seal_path.display()
        ))),
    }
}

/// The line of [`check_log`] about the chain itself: intact, intact but the seal disagrees,
/// or the first bad line.
fn describe_chain(log: &Path, r: &VerifyReport, status: &SealStatus) -> String {
    match &r.first_bad {
        None if status.is_tampering() => format!(
            "{}: the chain of the {} records present is intact (head {}), but the seal \
             disagrees:\n",
            log.display(),
            r.records,
            r.head
        ),
        None => format!(
            "{}: intact, {} records, head {}\n",
            log.display(),
            r.records,
            r.head
        ),
        Some((line, problem)) => format!(
            "{}: line {line}: {problem} ({} records verified before it)\n",
            log.display(),
            r.records
        ),
    }
}

/// The note of [`check_log`] about `audit_tamper` records in the chain (empty if none).
fn describe_tamper_records(log: &Path, r: &VerifyReport) -> String {
    if r.tamper_records.is_empty() {
        return String::new();
    }
    format!(
        "{}: note: {} audit_tamper record(s) (seq {:?}): the daemon found the log \
         tampered with at those starts; see them with `grep audit_tamper {}`\n",
        log.display(),
        r.tamper_records.len(),
        r.tamper_records,
        log.display()
    )
}
