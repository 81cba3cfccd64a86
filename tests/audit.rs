//! The hash-chained audit log: a long chain verifies, reopening continues it, and every kind of
//! tampering is found at the right line, distinct from a write torn by a power loss.

use std::path::{Path, PathBuf};

use facegate::audit::{self, record_hash, AuditLog, Problem, GENESIS_PREV};
use serde_json::{json, Value};

fn write_chain(dir: &Path, n: u64) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        let seq = log
            .append(
                "decision",
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
    assert_eq!(
        record_hash(first.as_object().unwrap()),
        first["hash"].as_str().unwrap()
    );
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
        assert_eq!(log.append("stop", json!({})).unwrap(), 4);
    }
    let mut log = AuditLog::open(&path).unwrap();
    assert_eq!(log.append("start", Value::Null).unwrap(), 5);
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
    log.append("start", json!({})).unwrap();
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
    assert_eq!(log.append("start", json!({})).unwrap(), 6);
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
        .append("decision", json!({ "photo": blob }))
        .unwrap_err();
    assert!(err.to_string().contains("fields.photo"), "{err}");
    assert!(log.append("decision", json!([1, 2])).is_err());
    assert!(log.append("", json!({})).is_err());
    // Nothing was written by the refused appends.
    assert_eq!(log.append("start", json!({})).unwrap(), 1);
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
