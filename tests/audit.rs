//! The hash-chained audit log: a long chain verifies, reopening continues it, and every kind of
//! tampering is found at the right line, distinct from a write torn by a power loss.

use std::path::{Path, PathBuf};

use facegate::audit::{self, record_hash, AuditLog, Event, Problem, SealStatus, GENESIS_PREV};
use serde_json::{json, Value};

fn write_chain(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        let seq = log
            .append(
                Event::Decision,
                json!({ "person": format!("p{i}"), "distance": 0.25 + i as f64 / 1e4,
                        "decision": "unlock", "reason": "3 of 5 frames" }),
            )
            .unwrap();
        assert_eq!(seq, i);
    }
    path
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut s = lines.join("\n");
    s.push('\n');
    std::fs::write(path, s).unwrap();
}

fn first_bad(path: &Path) -> (u64, Problem) {
    audit::verify(path)
        .unwrap()
        .first_bad
        .expect("tampering detected")
}

#[test]
fn chain_of_1000_records_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 1000);
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 1000);
    let log = AuditLog::open(&path).unwrap();
    assert_eq!(log.head(), (1000, report.head.as_str()));
}

/// A record of an event that happened earlier (a door event waiting for the loop, a record
/// queued while the log could not be written) carries the event's time as `time`, and the
/// write time as `fields.logged` when they are more than a second apart; continuing a chain
/// written before `logged` existed, the whole log verifies, and so does every line's hash of
/// its exact bytes.
#[test]
fn a_late_record_has_the_event_time_and_the_write_time_in_logged() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 2); // records as every earlier version wrote them
    let mut log = AuditLog::open(&path).unwrap();
    let now = jiff::Timestamp::now();
    let long_ago = now - jiff::SignedDuration::from_secs(12);
    let just_now = now - jiff::SignedDuration::from_millis(300);
    log.append_at(Event::Door, json!({"event": "exit_request"}), long_ago)
        .unwrap();
    log.append_at(Event::Door, json!({"event": "unlocked"}), just_now)
        .unwrap();
    log.append(Event::Start, json!({})).unwrap();
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact() && report.records == 5, "{report:?}");
    let r: Vec<Value> = lines(&path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let time = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    // the time of the event, to the microsecond written
    let us = |t: jiff::Timestamp| t.as_microsecond();
    assert_eq!(us(time(&r[2]["time"])), us(long_ago));
    assert_eq!(us(time(&r[3]["time"])), us(just_now));
    // 12 s late: the write time is kept; 0.3 s late (a loop turn) and on time: not
    let logged = time(&r[2]["fields"]["logged"]);
    assert!(
        logged >= now && logged.duration_since(now).as_secs_f64() < 5.0,
        "{}",
        r[2]
    );
    assert!(r[3]["fields"].get("logged").is_none(), "{}", r[3]);
    assert!(r[4]["fields"].get("logged").is_none(), "{}", r[4]);
    // the reopened log continues the chain after them
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(Event::Stop, json!({})).unwrap(), 6);
    assert!(audit::verify(&path).unwrap().is_intact());
}

#[test]
fn records_have_the_documented_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 2);
    let l = lines(&path);
    assert!(l[0].starts_with("{\"seq\":1,\"time\":\""), "{}", l[0]);
    let first: Value = serde_json::from_str(&l[0]).unwrap();
    assert_eq!(first["prev"], GENESIS_PREV);
    assert_eq!(first["event"], "decision");
    assert_eq!(first["fields"]["person"], "p1");
    let time = first["time"].as_str().unwrap();
    assert!(time.ends_with('Z'));
    time.parse::<jiff::Timestamp>().expect("RFC 3339");
    // The hash covers the line's exact bytes before `,"hash":"` (issue 10 finding 3).
    let prefix = &l[0][..l[0].rfind(",\"hash\":\"").unwrap()];
    assert_eq!(
        audit::line_hash(prefix.as_bytes()),
        first["hash"].as_str().unwrap()
    );
    assert!(l[0].ends_with(&format!(
        ",\"hash\":\"{}\"}}",
        first["hash"].as_str().unwrap()
    )));
    let second: Value = serde_json::from_str(&l[1]).unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(l[0].as_bytes()))
    };
    assert_eq!(second["prev"], sha.as_str());
}

#[test]
fn reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 3);
    {
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.head().0, 3);
        assert_eq!(log.append(Event::Stop, json!({})).unwrap(), 4);
    }
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(Event::Start, Value::Null).unwrap(), 5);
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 5);
}

#[test]
fn edited_line_is_found_at_that_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 1000);
    let mut l = lines(&path);
    l[499] = l[499].replace("\"p500\"", "\"p999\"");
    write_lines(&path, &l);
    assert_eq!(first_bad(&path), (500, Problem::Edited));
}

#[test]
fn edited_line_with_a_recomputed_hash_is_found_at_the_next_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 100);
    let mut l = lines(&path);
    let mut rec: serde_json::Map<String, Value> = serde_json::from_str(&l[49]).unwrap();
    rec["fields"]["decision"] = json!("refuse");
    let h = record_hash(&rec);
    rec.insert("hash".into(), json!(h));
    l[49] = serde_json::to_string(&rec).unwrap();
    write_lines(&path, &l);
    assert_eq!(first_bad(&path), (51, Problem::BrokenLink));
}

#[test]
fn deleted_line_is_found_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 1000);
    let mut l = lines(&path);
    l.remove(699);
    write_lines(&path, &l);
    let (line, problem) = first_bad(&path);
    assert_eq!(line, 700);
    assert_eq!(
        problem,
        Problem::Deleted {
            missing_from: 700,
            missing_to: 700
        }
    );
    assert!(problem.is_tampering());
    assert_eq!(audit::verify(&path).unwrap().records, 699);
}

#[test]
fn reordered_lines_are_found() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 1000);
    let mut l = lines(&path);
    l.swap(299, 300);
    write_lines(&path, &l);
    assert_eq!(
        first_bad(&path),
        (
            300,
            Problem::Reordered {
                expected: 300,
                found: 301
            }
        )
    );
}

#[test]
fn inserted_copy_is_found_at_the_inserted_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 1000);
    let mut l = lines(&path);
    let copy = l[9].clone();
    l.insert(400, copy);
    write_lines(&path, &l);
    assert_eq!(
        first_bad(&path),
        (
            401,
            Problem::Inserted {
                expected: 401,
                found: 10
            }
        )
    );
}

#[test]
fn forged_insertion_is_found_at_the_line_after_it() {
    // A forger who computes a valid record for seq 401 (right prev, right hash) passes line
    // 401; the genuine record 401 that follows gives it away.
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 1000);
    let mut l = lines(&path);
    let mut rec: serde_json::Map<String, Value> = serde_json::from_str(&l[400]).unwrap();
    rec["fields"]["person"] = json!("mallory");
    let prev = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(l[399].as_bytes()))
    };
    rec.insert("prev".into(), json!(prev));
    let h = record_hash(&rec);
    rec.insert("hash".into(), json!(h));
    l.insert(400, serde_json::to_string(&rec).unwrap());
    write_lines(&path, &l);
    assert_eq!(
        first_bad(&path),
        (
            402,
            Problem::Inserted {
                expected: 402,
                found: 401
            }
        )
    );
}

#[test]
fn truncated_last_line_is_a_torn_write_not_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 20);
    let bytes = std::fs::read(&path).unwrap();
    // Cut the last record in half (as a power loss during its write would).
    let last_start = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|&b| b == b'\n')
        .unwrap()
        + 1;
    let cut = last_start + (bytes.len() - last_start) / 2;
    std::fs::write(&path, &bytes[..cut]).unwrap();

    let report = audit::verify(&path).unwrap();
    assert_eq!(report.records, 19);
    let (line, problem) = report.first_bad.clone().unwrap();
    assert_eq!((line, problem.clone()), (20, Problem::TornTail));
    assert!(!problem.is_tampering());

    // The same truncation in the middle of the file is tampering (a malformed line).
    let mut l = lines(&path);
    l.truncate(19);
    l.insert(5, "{\"seq\":6,\"ti".to_string());
    let mid = dir.path().join("mid.jsonl");
    write_lines(&mid, &l);
    let (line, problem) = first_bad(&mid);
    assert_eq!(line, 6);
    assert!(matches!(problem, Problem::Malformed(_)) && problem.is_tampering());

    // Reopening recovers: the fragment is cut off and recorded inside the chain.
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.head().0, 20, "seq 20 is the recovery record");
    log.append(Event::Start, json!({})).unwrap();
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 21);
    let l = lines(&path);
    let rec: Value = serde_json::from_str(&l[19]).unwrap();
    assert_eq!(rec["event"], "torn_tail_recovered");
    assert!(rec["fields"]["fragment"]
        .as_str()
        .unwrap()
        .starts_with("{\"seq\":20"));
}

#[test]
fn record_torn_just_before_its_newline_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 5);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append(Event::Start, json!({})).unwrap(), 6);
    assert!(audit::verify(&path).unwrap().is_intact());
}

#[test]
fn open_refuses_a_damaged_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_chain(dir.path(), 5);
    let mut l = lines(&path);
    l[4] = l[4].replace("\"p5\"", "\"px\"");
    write_lines(&path, &l);
    let err = AuditLog::open(&path).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("line 5") && msg.contains("audit verify"),
        "{msg}"
    );
}

#[test]
fn photos_and_non_object_fields_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = AuditLog::open(dir.path().join("a.jsonl")).unwrap();
    let blob = "A".repeat(audit::MAX_STRING_FIELD + 1);
    let err = log
        .append(Event::Decision, json!({ "photo": blob }))
        .unwrap_err();
    assert!(err.to_string().contains("fields.photo"), "{err}");
    assert!(log.append(Event::Decision, json!([1, 2])).is_err());
    // an empty or overlong event name is unrepresentable: `append` takes `audit::Event`
    // (issue 11 item 5); every name is a 1-64-byte snake_case word, and names are unique
    let names: std::collections::HashSet<_> = Event::ALL.iter().map(|e| e.as_str()).collect();
    assert_eq!(names.len(), Event::ALL.len());
    for n in names {
        assert!(
            (1..=64).contains(&n.len()) && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{n}"
        );
    }
    // Nothing was written by the refused appends.
    assert_eq!(log.append(Event::Start, json!({})).unwrap(), 1);
}

#[test]
fn missing_directory_error_names_the_fix() {
    let err = AuditLog::open("/nonexistent-facegate-dir/audit.jsonl").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/nonexistent-facegate-dir") && msg.contains("create"),
        "{msg}"
    );
}

// ---- issue 10 finding 3: floats never break the chain ----

const SEED: [u8; 32] = *b"facegate issue 10 f3 audit seed!";

/// f32 values as the policy produces them and as a hostile or broken pipeline could: every
/// bit pattern (NaN, ±inf, subnormals, huge values, ±0), realistic distances, and the edge
/// values named explicitly.
fn f32_values() -> impl proptest::strategy::Strategy<Value = f32> {
    use proptest::prelude::*;
    prop_oneof![
        4 => any::<u32>().prop_map(f32::from_bits),
        4 => 0.0f32..2.0,
        1 => proptest::num::f32::ANY,
        1 => prop_oneof![
            Just(-0.0f32), Just(0.0f32), Just(f32::MIN_POSITIVE), Just(f32::MIN_POSITIVE / 3.0),
            Just(f32::from_bits(1)), Just(f32::MAX), Just(f32::MIN), Just(f32::EPSILON),
            Just(f32::NAN), Just(f32::INFINITY), Just(f32::NEG_INFINITY),
            Just(0.983_655_45f32),
        ],
    ]
}

/// What a non-finite f32 becomes in a record: `null` (serde_json's rule, documented in
/// src/audit.rs); a finite one reads back as exactly the same number.
fn assert_reads_back(written: f32, read: &Value) {
    if written.is_finite() {
        let r = read
            .as_f64()
            .unwrap_or_else(|| panic!("{written:e} read back as {read}"));
        assert_eq!(
            r.to_bits(),
            f64::from(written).to_bits(),
            "{written:e} read back as {r:e}"
        );
    } else {
        assert!(
            read.is_null(),
            "non-finite {written} must be written as null, got {read}"
        );
    }
}

/// Issue 10 finding 3: 100,000 records with random f32 distances and scores go through the
/// exact path of `AuditLog::append` (render_line) and of `verify`/`open` (parse_line): every
/// one verifies, its numbers read back exactly, and the first-version hash (`record_hash`,
/// still accepted for old logs) is stable too. The real file path (fsync per record) is
/// covered with a few thousand records by the next test, so CI stays fast.
#[test]
fn f32_fields_never_break_a_record_100000_cases() {
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use std::sync::atomic::{AtomicU64, Ordering};
    let config = Config {
        cases: 100_000,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &SEED));
    let strategy = (f32_values(), f32_values(), 1u64..u64::MAX / 2);
    let checked = AtomicU64::new(0);
    runner
        .run(&strategy, |(distance, score, seq)| {
            let fields = json!({"decision": "deny", "reason": "no_match", "nearest": "p1",
                                "distance": distance, "score": score, "frame": seq});
            let line = audit::render_line(
                seq,
                "2026-01-31T08:00:00.123456Z",
                "decision",
                &fields,
                GENESIS_PREV,
            );
            let info = audit::parse_line(line.as_bytes()).expect("a record");
            assert!(
                info.own_hash_ok,
                "untouched record reported as edited: {line}"
            );
            assert_eq!(info.seq, seq);
            let parsed: Value = serde_json::from_str(&line).expect("json");
            assert_reads_back(distance, &parsed["fields"]["distance"]);
            assert_reads_back(score, &parsed["fields"]["score"]);
            // First-version logs: re-serialising parsed values gives the same hash.
            let mut original = parsed.as_object().unwrap().clone();
            original.insert("fields".into(), fields);
            assert_eq!(
                record_hash(&original),
                record_hash(parsed.as_object().unwrap())
            );
            checked.fetch_add(1, Ordering::Relaxed);
            Ok(())
        })
        .expect("every record verifies");
    assert_eq!(checked.into_inner(), 100_000);
}

/// Issue 10 finding 3, through the real file: 3,000 `decision` records with random f32
/// distances and scores are appended (fsync each), the log is reopened as the daemon does
/// every 500 records, and `verify` passes on all of them. Fails on the old code (about one
/// value in eight was reported as edited).
#[test]
fn f32_decisions_through_the_file_verify_and_reopen() {
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &SEED),
    );
    let values = f32_values();
    let mut draw = || values.new_tree(&mut runner).expect("value").current();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 1..=3000u64 {
        let (d, s) = (draw(), draw());
        log.append(
            Event::Decision,
            json!({"decision": "unlock", "person": "p", "distance": d, "score": s, "frame": i}),
        )
        .unwrap();
        if i % 500 == 0 {
            drop(log);
            log = AuditLog::open(&path)
                .unwrap_or_else(|e| panic!("reopen after record {i} (distance {d:e}): {e}"));
        }
    }
    drop(log);
    let report = audit::verify(&path).unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.records, 3000);
}

/// Issue 10 finding 3: a daemon whose last record holds a value that the old code could not
/// read back exactly (e.g. distance 0.9836554527282715, from the issue) restarts: `open`
/// accepts the tail and `verify` the chain. Failed on the old code with `CorruptTail`.
#[test]
fn reopen_succeeds_when_the_last_record_holds_a_drifting_float() {
    for value in DRIFTING {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        log.append(Event::Start, json!({})).unwrap();
        log.append(
            Event::Decision,
            json!({"decision": "unlock", "person": "alice", "distance": value, "frames": 3}),
        )
        .unwrap();
        drop(log);
        let mut log = AuditLog::open(&path)
            .unwrap_or_else(|e| panic!("restart after distance {value:e}: {e}"));
        assert_eq!(log.append(Event::Start, json!({})).unwrap(), 3);
        assert!(audit::verify(&path).unwrap().is_intact(), "{value:e}");
    }
}

// ---- issue 10 finding 4: the sealed head ----

use facegate::enroll::store::DeviceKey;
use facegate::seal::{Head, Seal};

struct Sealed {
    _dir: tempfile::TempDir,
    log: PathBuf,
    seal: PathBuf,
    key: PathBuf,
}

impl Sealed {
    /// A door's log with `n` records and its seal (as the daemon writes them).
    fn new(n: u64) -> Sealed {
        let dir = tempfile::tempdir().unwrap();
        let s = Sealed {
            log: dir.path().join("log/audit.jsonl"),
            seal: dir.path().join("lib/gallery.store.seal"),
            key: dir.path().join("lib/device.key"),
            _dir: dir,
        };
        std::fs::create_dir_all(s.log.parent().unwrap()).unwrap();
        let mut log = s.open();
        for i in 1..=n {
            log.append(
                Event::Decision,
                json!({"person": format!("p{i}"), "distance": 0.5}),
            )
            .unwrap();
        }
        s
    }

    /// Opens the log as the daemon does at start (a fresh process: nothing cached).
    fn open(&self) -> AuditLog {
        let key = DeviceKey::load_or_create(&self.key, &[]).unwrap();
        let seal = Seal::open(&self.seal, &key, Some(&self.log)).unwrap();
        AuditLog::open_sealed(&self.log, seal).unwrap()
    }

    fn sealed_head(&self) -> Head {
        let key = DeviceKey::load(&self.key).unwrap();
        Seal::read(&self.seal, &key)
            .unwrap()
            .unwrap()
            .audit
            .unwrap()
    }

    fn check(&self) -> (String, bool) {
        audit::check_log(&self.log, Some((&self.seal, &self.key))).unwrap()
    }
}

/// Issue 10 finding 4: removing the last records is invisible to the chain alone, but
/// `facegate audit verify` with the seal reports it as tampering, naming both heads and the
/// fix, and exits 1.
#[test]
fn truncated_log_is_detected_by_verify() {
    let s = Sealed::new(50);
    let sealed = s.sealed_head();
    assert_eq!(sealed.seq, 51, "audit_sealed + 50 records");
    let mut l = lines(&s.log);
    l.truncate(40);
    write_lines(&s.log, &l);
    let cut_head = audit::verify(&s.log).unwrap();
    assert!(cut_head.is_intact(), "the chain alone cannot see it");

    let (text, tampered) = s.check();
    assert!(tampered, "{text}");
    for needle in [
        "TAMPERED",
        "seq 40",
        "seq 51",
        &cut_head.head,
        &sealed.hash,
        "41..=51",
        "evidence",
    ] {
        assert!(text.contains(needle), "{needle:?} not in {text}");
    }
    let (_, status) = audit::verify_sealed(&s.log, Some(&sealed)).unwrap();
    assert!(matches!(status, SealStatus::Truncated { ref found, .. } if found.seq == 40));
    let code = facegate::cli::audit_verify(&s.log, None, Some((s.seal.clone(), s.key.clone())));
    assert_eq!(code.unwrap(), facegate::cli::EXIT_NO);
}

/// Issue 10 finding 4: a deleted log is reported while its seal remembers a head; a log
/// replaced by another valid chain is reported too.
#[test]
fn deleted_or_replaced_log_is_detected_by_verify() {
    let s = Sealed::new(10);
    let sealed = s.sealed_head();
    let original = std::fs::read(&s.log).unwrap();
    std::fs::remove_file(&s.log).unwrap();
    let (text, tampered) = s.check();
    assert!(
        tampered && text.contains("missing") && text.contains(&sealed.hash),
        "{text}"
    );

    // Another chain of the same length, written without the key: valid chain, wrong head.
    let other = tempfile::tempdir().unwrap();
    let forged = write_chain(other.path(), 11);
    std::fs::copy(&forged, &s.log).unwrap();
    let (text, tampered) = s.check();
    assert!(tampered && text.contains("replaced"), "{text}");

    std::fs::write(&s.log, &original).unwrap();
    let (text, tampered) = s.check();
    assert!(
        !tampered && text.contains("matches the sealed head"),
        "{text}"
    );
}

/// Issue 10 finding 4: at start the daemon notices a truncated log, records an
/// `audit_tamper` record carrying both heads, and continues the chain (it does not refuse to
/// run); the record cannot be removed without another detected truncation.
#[test]
fn daemon_start_records_truncation_and_continues() {
    let s = Sealed::new(30);
    let sealed = s.sealed_head();
    let mut l = lines(&s.log);
    l.truncate(20);
    write_lines(&s.log, &l);
    let mut log = s.open();
    assert_eq!(log.tamper_at_open(), Some("truncated"));
    assert_eq!(log.head().0, 21, "the tamper record continues the chain");
    log.append(Event::Start, json!({})).unwrap();
    drop(log);
    let l = lines(&s.log);
    let rec: Value = serde_json::from_str(&l[20]).unwrap();
    assert_eq!(rec["event"], "audit_tamper");
    assert_eq!(rec["fields"]["problem"], "truncated");
    assert_eq!(rec["fields"]["sealed_seq"], sealed.seq);
    assert_eq!(rec["fields"]["sealed_hash"], sealed.hash.as_str());
    assert_eq!(rec["fields"]["found_seq"], 20);
    let (text, tampered) = s.check();
    assert!(!tampered, "resealed: {text}");
    assert!(text.contains("1 audit_tamper record"), "{text}");

    // Removing the tamper record again is a new truncation.
    let mut l = lines(&s.log);
    l.truncate(20);
    write_lines(&s.log, &l);
    assert!(s.check().1);
}

/// Issue 10 finding 4: a power cut between an append and its seal leaves the log one record
/// ahead of the seal: not tampering; the next start seals it.
#[test]
fn record_written_before_a_power_cut_hit_the_seal_is_not_tampering() {
    let s = Sealed::new(5);
    AuditLog::open(&s.log)
        .unwrap()
        .append(Event::Decision, json!({}))
        .unwrap();
    let (text, tampered) = s.check();
    assert!(
        !tampered && text.contains("1 record(s) after it are not sealed yet"),
        "{text}"
    );
    let log = s.open();
    assert_eq!(log.tamper_at_open(), None);
    drop(log);
    assert_eq!(s.sealed_head().seq, 7);
}

/// Issue 10 finding 4: the seal cannot be edited without the device key, and deleting it is
/// recorded at the next start (the log says it was sealed).
#[test]
fn seal_cannot_be_forged_or_silently_deleted() {
    let s = Sealed::new(8);
    let text = std::fs::read_to_string(&s.seal).unwrap();
    let forged = text.replacen("\"seq\":9", "\"seq\":3", 1);
    assert_ne!(forged, text);
    std::fs::write(&s.seal, forged).unwrap();
    let key = DeviceKey::load(&s.key).unwrap();
    let err = Seal::read(&s.seal, &key).unwrap_err().to_string();
    assert!(err.contains("MAC") && err.contains("restore"), "{err}");

    std::fs::remove_file(&s.seal).unwrap();
    let log = s.open();
    assert_eq!(log.tamper_at_open(), Some("seal_missing"));
}

/// Issue 10 finding 3: f32 distances that serde_json 1.0.154 without `float_roundtrip` reads
/// back as another f64 (0.9836554527282715 -> ...716), so the old code reported records holding
/// them as edited (about 10 % of uniform values in 0..1).
const DRIFTING: [f32; 4] = [0.983_655_45, 0.422_185_1, 0.229_267_78, 0.987_280_2];
