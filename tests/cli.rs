//! The command line as a script would use it: exit codes 0 (yes), 1 (no), 2 (error).

mod common;

use common::face;
use std::process::Command;

fn facegate(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_facegate"))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

fn p(name: &str) -> String {
    face(name).to_string_lossy().into()
}

#[test]
fn verify_exit_codes() {
    let (code, out, _) = facegate(&["verify", &p("biden1.jpg"), &p("biden2.jpg")]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("same person"));
    let (code, out, _) = facegate(&["verify", &p("biden1.jpg"), &p("obama2.jpg")]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("different people"));
    let (code, _, err) = facegate(&["verify", &p("biden1.jpg"), &p("no_face.jpg")]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no_face.jpg") && err.contains("no face"),
        "{err}"
    );
    let (code, _, err) = facegate(&["verify", &p("biden1.jpg"), "/nonexistent.jpg"]);
    assert_eq!(code, 2);
    assert!(err.contains("/nonexistent.jpg"), "{err}");
}

#[test]
fn embed_prints_one_json_line_per_image() {
    let (code, out, _) = facegate(&["embed", &p("two_people.jpg"), &p("orl_s1_1.pgm")]);
    assert_eq!(code, 0);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["faces"].as_array().unwrap().len(), 2);
    assert_eq!(
        lines[1]["faces"][0]["embedding"].as_array().unwrap().len(),
        128
    );
}

#[test]
fn identify_against_a_photo_gallery() {
    let g = tempfile::tempdir().unwrap();
    for (who, file) in [
        ("obama", "obama1.jpg"),
        ("biden", "biden1.jpg"),
        ("lacamoire", "alex-lacamoire.png"),
    ] {
        std::fs::create_dir(g.path().join(who)).unwrap();
        std::fs::copy(face(file), g.path().join(who).join(file)).unwrap();
    }
    let gal = g.path().to_string_lossy().to_string();
    let (code, out, _) = facegate(&["identify", &p("obama2.jpg"), "--gallery", &gal]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("obama "), "{out}");
    let (code, out, _) = facegate(&["identify", &p("lin-manuel-miranda.png"), "--gallery", &gal]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("no match"), "{out}");
}

#[test]
fn help_explains_commands() {
    let (code, out, _) = facegate(&["--help"]);
    assert_eq!(code, 0);
    for cmd in ["verify", "embed", "identify", "eval", "bench", "Exit codes"] {
        assert!(out.contains(cmd), "{cmd} missing from --help");
    }
}
