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
//! * `time`: RFC 3339 in UTC (microseconds), from [`jiff`].
//! * `event`: what happened ([`events`]: `decision`, `unlock`, `camera_lost`, …).
//! * `fields`: free fields for the event (`person`, `distance`, `decision`, `reason`, …), a JSON
//!   object. Never a photo: string values longer than [`MAX_STRING_FIELD`] bytes are refused.
//! * `prev`: hex SHA-256 of the previous line's bytes (without its newline); the first record
//!   has [`GENESIS_PREV`] (64 zeros).
//! * `hash`: hex SHA-256 of `prev` followed by the canonical JSON of the record without `hash`
//!   ([`canonical_json`]: keys sorted, no whitespace), see [`record_hash`].
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
//! the tail from the tampered point onwards, or drop the last records, undetectably. Anchor the
//! chain outside the box: export [`AuditLog::head`] (seq and hash) periodically (e.g. over MQTT
//! or to a remote syslog) and compare.
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
//!   chain breaks, keep the file as evidence, move it aside and start a new chain.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

/// `prev` of the first record of a chain: 64 zeros.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Longest string value accepted in `fields`, in bytes (keeps photos and blobs out of the log).
pub const MAX_STRING_FIELD: usize = 4096;

/// Event names used by facegate.
pub mod events {
    /// A policy decision about a face (unlock or refuse, with the reason).
    pub const DECISION: &str = "decision";
    /// The door was unlocked.
    pub const UNLOCK: &str = "unlock";
    /// The camera stopped delivering frames.
    pub const CAMERA_LOST: &str = "camera_lost";
    /// The camera delivers frames again.
    pub const CAMERA_RESTORED: &str = "camera_restored";
    /// The daemon started.
    pub const START: &str = "start";
    /// The daemon stopped.
    pub const STOP: &str = "stop";
    /// Enrollment data was imported.
    pub const IMPORT: &str = "import";
    /// A person was removed from the gallery.
    pub const STAFF_REMOVED: &str = "staff_removed";
    /// A torn final line (power loss during a write) was cut off at open; the fragment is kept.
    pub const TORN_TAIL_RECOVERED: &str = "torn_tail_recovered";
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

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The `hash` of a record: hex SHA-256 of `prev` followed by the canonical JSON of the record
/// with its `hash` key removed.
pub fn record_hash(record: &Map<String, Value>) -> String {
    let mut without = record.clone();
    without.remove("hash");
    let prev = without.get("prev").and_then(Value::as_str).unwrap_or("");
    let mut h = Sha256::new();
    h.update(prev.as_bytes());
    h.update(canonical_json(&Value::Object(without.clone())).as_bytes());
    hex::encode(h.finalize())
}

/// The parts of a parsed record that the chain needs.
struct Parsed {
    seq: u64,
    prev: String,
    hash: String,
    own_hash_ok: bool,
}

fn parse_record(line: &[u8]) -> Result<Parsed, String> {
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
    let prev = m["prev"].as_str().unwrap_or_default().to_string();
    let hash = m["hash"].as_str().unwrap_or_default().to_string();
    let own_hash_ok = record_hash(&m) == hash;
    Ok(Parsed {
        seq,
        prev,
        hash,
        own_hash_ok,
    })
}

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
}

impl AuditLog {
    /// Opens (or creates) the log at `path`, checks the last record and continues its chain.
    /// A torn final line is cut off and recorded (see the [module docs](self)).
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref().to_path_buf();
        let io = |action: &'static str| {
            let path = path.clone();
            move |source| AuditError::Io {
                path,
                action,
                source,
            }
        };
        let created = !path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io("open"))?;
        if created {
            // Make the new directory entry durable too.
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(io("sync the directory"))?;
            }
        }
        let len = file.metadata().map_err(io("stat"))?.len();
        let tail = read_tail(&mut file, len).map_err(io("read the tail"))?;

        let mut log = AuditLog {
            path: path.clone(),
            file,
            next_seq: 1,
            prev: GENESIS_PREV.to_string(),
            len,
            broken: false,
        };
        let mut torn: Option<Vec<u8>> = None;
        let last_line: Option<(u64, Vec<u8>)> = match tail {
            Tail::Empty => None,
            Tail::Terminated { line, line_no } => Some((line_no, line)),
            Tail::Unterminated {
                complete,
                fragment,
                fragment_start,
                line_no,
            } => {
                if parse_record(&fragment).is_ok_and(|p| p.own_hash_ok) {
                    // Torn just before the newline: the record is whole; terminate it.
                    log.write_raw(b"\n")?;
                    Some((line_no, fragment))
                } else {
                    log::warn!(
                        "audit log {}: the last line is incomplete ({} bytes, a write torn by \
                         a power loss?); cutting it off and recording it",
                        path.display(),
                        fragment.len()
                    );
                    log.file.set_len(fragment_start).map_err(io("truncate"))?;
                    log.file.sync_data().map_err(io("sync"))?;
                    log.len = fragment_start;
                    torn = Some(fragment);
                    complete.map(|l| (line_no - 1, l))
                }
            }
        };
        if let Some((line_no, line)) = last_line {
            let p = parse_record(&line).map_err(|reason| AuditError::CorruptTail {
                path: path.clone(),
                line: line_no,
                reason,
            })?;
            if !p.own_hash_ok {
                return Err(AuditError::CorruptTail {
                    path: path.clone(),
                    line: line_no,
                    reason: format!("its hash does not match its content (stored {})", p.hash),
                });
            }
            log.next_seq = p.seq + 1;
            log.prev = sha256_hex(&line);
        }
        if let Some(fragment) = torn {
            let text = String::from_utf8_lossy(&fragment);
            let mut cut = text.len().min(MAX_STRING_FIELD);
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            log.append(
                events::TORN_TAIL_RECOVERED,
                serde_json::json!({ "bytes": fragment.len(), "fragment": &text[..cut] }),
            )?;
        }
        Ok(log)
    }

    /// Appends one record and makes it durable (`sync_data`) before returning its `seq`.
    ///
    /// `fields` must be a JSON object (or `null` for none).
    pub fn append(&mut self, event: &str, fields: Value) -> Result<u64, AuditError> {
        if self.broken {
            return Err(AuditError::Broken {
                path: self.path.clone(),
            });
        }
        if event.is_empty() || event.len() > 64 {
            return Err(AuditError::Field(format!(
                "event name \"{event}\" must be 1-64 bytes (e.g. \"decision\")"
            )));
        }
        let fields = match fields {
            Value::Null => Map::new(),
            Value::Object(m) => m,
            other => {
                return Err(AuditError::Field(format!(
                    "fields must be a JSON object such as {{\"person\": \"alice\"}}, not {other}"
                )))
            }
        };
        let fields = Value::Object(fields);
        check_fields(&fields, "fields")?;
        let time = format!("{:.6}", jiff::Timestamp::now());

        let mut record = Map::new();
        record.insert("seq".into(), Value::from(self.next_seq));
        record.insert("time".into(), Value::String(time));
        record.insert("event".into(), Value::String(event.to_string()));
        record.insert("fields".into(), fields);
        record.insert("prev".into(), Value::String(self.prev.clone()));
        let hash = record_hash(&record);
        record.insert("hash".into(), Value::String(hash));

        // Human-friendly key order; the hash does not depend on it.
        let mut line = String::from("{");
        for (i, key) in ["seq", "time", "event", "fields", "prev", "hash"]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                line.push(',');
            }
            line.push_str(&format!("\"{key}\":{}", canonical_json(&record[key])));
        }
        line.push('}');
        let line_hash = sha256_hex(line.as_bytes());
        line.push('\n');

        self.write_raw(line.as_bytes())?;
        self.prev = line_hash;
        let seq = self.next_seq;
        self.next_seq += 1;
        Ok(seq)
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

/// Reads the last line (and, if the file does not end with a newline, the fragment after it).
/// Line numbers need a count of newlines, which costs one sequential read of the file.
fn read_tail(file: &mut File, len: u64) -> std::io::Result<Tail> {
    if len == 0 {
        return Ok(Tail::Empty);
    }
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(&mut *file);
    let mut last_complete: Option<Vec<u8>> = None;
    let mut lines = 0u64;
    let mut buf = Vec::new();
    let mut offset = 0u64;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(match last_complete {
                Some(line) => Tail::Terminated {
                    line,
                    line_no: lines,
                },
                None => Tail::Empty,
            });
        }
        if buf.last() == Some(&b'\n') {
            buf.pop();
            lines += 1;
            last_complete = Some(std::mem::take(&mut buf));
            offset += n as u64;
        } else {
            return Ok(Tail::Unterminated {
                complete: last_complete,
                fragment: std::mem::take(&mut buf),
                fragment_start: offset,
                line_no: lines + 1,
            });
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
    let path = path.as_ref();
    let io = |action: &'static str| {
        move |source| AuditError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let file = File::open(path).map_err(io("open"))?;
    let mut reader = BufReader::new(file);
    let read_line = |reader: &mut BufReader<File>| -> std::io::Result<Option<(Vec<u8>, bool)>> {
        let mut buf = Vec::new();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            return Ok(None);
        }
        let terminated = buf.last() == Some(&b'\n');
        if terminated {
            buf.pop();
        }
        Ok(Some((buf, terminated)))
    };

    let mut report = VerifyReport {
        records: 0,
        first_bad: None,
        head: GENESIS_PREV.to_string(),
    };
    let mut expected = 1u64;
    let mut line_no = 0u64;
    let mut next = read_line(&mut reader).map_err(io("read"))?;
    while let Some((line, terminated)) = next.take() {
        line_no += 1;
        next = read_line(&mut reader).map_err(io("read"))?;
        let is_last = next.is_none();
        let mut fail = |p: Problem| {
            report.first_bad = Some((line_no, p));
        };
        let parsed = match parse_record(&line) {
            Ok(p) => p,
            Err(reason) => {
                fail(if is_last && !terminated {
                    Problem::TornTail
                } else {
                    Problem::Malformed(reason)
                });
                break;
            }
        };
        if !parsed.own_hash_ok {
            fail(Problem::Edited);
            break;
        }
        if parsed.seq > expected {
            let next_seq = next
                .as_ref()
                .and_then(|(l, _)| parse_record(l).ok())
                .map(|p| p.seq);
            fail(if next_seq == Some(expected) {
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
            break;
        }
        if parsed.seq < expected {
            fail(Problem::Inserted {
                expected,
                found: parsed.seq,
            });
            break;
        }
        if parsed.prev != report.head {
            fail(Problem::BrokenLink);
            break;
        }
        report.records += 1;
        report.head = sha256_hex(&line);
        expected += 1;
    }
    Ok(report)
}
