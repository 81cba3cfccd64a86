//! Numerical agreement across targets: the face pipeline on ARM (aarch64, armv7, musl; run under
//! qemu-user by .cargo/config.toml) must give the embeddings recorded on x86_64 in
//! tests/fixtures/reference/arm_agreement.json. Valid on every target, including x86_64 itself.
//!
//! Each stage is fed x86's recorded input, so a difference is pinned to the stage that makes it:
//!   decoded pixels (sha256) -> detection -> landmarks from x86's detection
//!   -> embedding from x86's landmarks (every encoder) -> whole pipeline (default encoder).
//!
//! Tolerances (README "ARM boards"): per embedding component |d| <= 1e-4 and L2 <= 1e-3 (the
//! decision threshold is 0.6; fp32 vs int8 on x86 is ~0.02). Measured: aarch64 bit-identical to
//! x86; armv7 within 3e-7 for fp32 and the int8 weight-only encoder (it folds to fp32 weights at
//! load), but the full int8 QDQ encoder differs on armv7 by L2 ~0.027 (own limits below).
//!
//! Re-record on x86_64 (only there) after a model or pipeline change:
//!   FACEGATE_RECORD_REFERENCE=1 cargo test --test main arm_agreement:: -- --nocapture

use crate::common;

use common::{fixture, options};
use facegate::face::detect::Detection;
use facegate::face::encode::{Embedding, EMBEDDING_DIM};
use facegate::face::geometry::Point;
use facegate::face::landmarks::Landmarks;
use facegate::face::FaceModels;
use facegate::imageio::load_rgb;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const REFERENCE: &str = "reference/arm_agreement.json";
/// Real photos: JPEG (zune-jpeg has per-architecture SIMD paths), PNG with alpha, greyscale PGM.
const IMAGES: [&str; 4] = [
    "faces/obama1.jpg",
    "faces/biden1.jpg",
    "faces/alex-lacamoire.png",
    "faces/orl_s1_1.pgm",
];
const ENCODERS: [&str; 3] = ["quantized", "fp32", "int8qdq"];

const EMB_MAX_ABS: f32 = 1e-4;
const EMB_L2: f32 = 1e-3;
/// Measured exception: the full int8 QDQ encoder (not the default) on 32-bit ARM requantizes
/// differently from x86/aarch64: max |d| 7.6e-3, L2 0.025-0.028 on these faces (fp32 and the
/// weight-only int8 encoder stay within 3e-7 there). Limits with headroom; far below 0.6.
const QDQ_ARMV7_MAX_ABS: f32 = 2e-2;
const QDQ_ARMV7_L2: f32 = 5e-2;

fn limits(encoder: &str) -> (f32, f32) {
    if encoder == "int8qdq" && cfg!(target_arch = "arm") {
        (QDQ_ARMV7_MAX_ABS, QDQ_ARMV7_L2)
    } else {
        (EMB_MAX_ABS, EMB_L2)
    }
}
const BOX_PX: f32 = 0.01;
const SCORE: f32 = 1e-4;
const LANDMARK_PX: f64 = 0.01;
const PIPELINE_L2: f32 = 1e-2;

fn f32s(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

fn det_json(d: &Detection) -> Value {
    json!([d.x, d.y, d.width, d.height, d.score, d.keypoints])
}

fn det_from(v: &Value) -> Detection {
    let a = v.as_array().unwrap();
    let n = |i: usize| a[i].as_f64().unwrap() as f32;
    let mut keypoints = [[0.0f32; 2]; 6];
    for (k, p) in keypoints.iter_mut().zip(a[5].as_array().unwrap()) {
        let p = f32s(p);
        *k = [p[0], p[1]];
    }
    Detection {
        x: n(0),
        y: n(1),
        width: n(2),
        height: n(3),
        score: n(4),
        keypoints,
    }
}

fn lm_json(l: &Landmarks) -> Value {
    json!(l.0.iter().map(|p| [p.x, p.y]).collect::<Vec<_>>())
}

fn lm_from(v: &Value) -> Landmarks {
    let pts: Vec<Point> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Point::new(p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
        .collect();
    Landmarks(pts.try_into().unwrap())
}

fn emb_from(v: &Value) -> Embedding {
    let mut a = [0.0f32; EMBEDDING_DIM];
    a.copy_from_slice(&f32s(v));
    Embedding(a)
}

fn max_abs(a: &Embedding, b: &Embedding) -> f32 {
    a.0.iter()
        .zip(&b.0)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

fn lm_err(a: &Landmarks, b: &Landmarks) -> f64 {
    a.0.iter()
        .zip(&b.0)
        .map(|(p, q)| (p.x - q.x).abs().max((p.y - q.y).abs()))
        .fold(0.0, f64::max)
}

fn box_err(a: &Detection, b: &Detection) -> f32 {
    let mut e = [a.x - b.x, a.y - b.y, a.width - b.width, a.height - b.height]
        .iter()
        .fold(0.0f32, |m, d| m.max(d.abs()));
    for (p, q) in a.keypoints.iter().zip(&b.keypoints) {
        e = e.max((p[0] - q[0]).abs()).max((p[1] - q[1]).abs());
    }
    e
}

fn record() {
    if !cfg!(target_arch = "x86_64") {
        panic!("the agreement reference is recorded on x86_64 only");
    }
    let models: Vec<_> = ENCODERS
        .iter()
        .map(|e| FaceModels::load(&options(e)).expect("models load"))
        .collect();
    let mut engines: Vec<_> = models.iter().map(|m| m.engine().unwrap()).collect();
    let mut images = Vec::new();
    for file in IMAGES {
        let img = load_rgb(&fixture(file)).unwrap();
        let det = engines[0].detect(&img).unwrap()[0];
        let lm = engines[0].landmarks(&img, &det);
        let mut embeddings = serde_json::Map::new();
        for (name, engine) in ENCODERS.iter().zip(engines.iter_mut()) {
            let e = engine.describe_with_landmarks(&img, det, lm).unwrap();
            embeddings.insert(name.to_string(), json!(e.embedding.0.to_vec()));
        }
        images.push(json!({
            "file": file,
            "pixels_sha256": hex::encode(Sha256::digest(img.as_raw())),
            "detection": det_json(&det),
            "landmarks": lm_json(&lm),
            "embeddings": embeddings,
        }));
    }
    let v = json!({
        "about": "x86_64 results of the face pipeline for tests/arm_agreement.rs: first face, detector auto, each encoder from these landmarks; re-record on x86_64 with FACEGATE_RECORD_REFERENCE=1 cargo test --test main arm_agreement::",
        "detection_format": "[x, y, width, height, score, keypoints]",
        "images": images,
    });
    let path = fixture(REFERENCE);
    std::fs::write(&path, serde_json::to_string(&v).unwrap() + "\n").unwrap();
    eprintln!("wrote {}", path.display());
}

#[test]
fn embeddings_agree_with_x86_reference() {
    if std::env::var_os("FACEGATE_RECORD_REFERENCE").is_some() {
        return record();
    }
    let text = std::fs::read_to_string(fixture(REFERENCE)).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    let arch = std::env::consts::ARCH;
    let mut failures = Vec::new();
    let (mut worst_abs, mut worst_l2) = (0.0f32, 0.0f32);
    let mut identical = 0;
    let mut compared = 0;

    let models: Vec<_> = ENCODERS
        .iter()
        .map(|e| FaceModels::load(&options(e)).expect("models load"))
        .collect();
    let mut engines: Vec<_> = models.iter().map(|m| m.engine().unwrap()).collect();

    for r in reference["images"].as_array().unwrap() {
        let file = r["file"].as_str().unwrap();
        let img = load_rgb(&fixture(file)).unwrap();
        // Decoded pixels, when the reference has their hash (written by the record mode).
        let sha = hex::encode(Sha256::digest(img.as_raw()));
        let pixels_same = r["pixels_sha256"].as_str().is_none_or(|want| want == sha);

        // Detection on this target vs x86's.
        let ref_det = det_from(&r["detection"]);
        let dets = engines[0].detect(&img).unwrap();
        let Some(det) = dets.first().copied() else {
            failures.push(format!("{file}: no face detected on {arch}"));
            continue;
        };
        let (be, se) = (box_err(&det, &ref_det), (det.score - ref_det.score).abs());

        // Landmarks from x86's detection.
        let ref_lm = lm_from(&r["landmarks"]);
        let lm = engines[0].landmarks(&img, &ref_det);
        let le = lm_err(&lm, &ref_lm);

        eprintln!(
            "{arch} {file}: pixels {}, detection box/keypoints max |d| {be:.2e} px, score |d| {se:.2e}, landmarks max |d| {le:.2e} px",
            if pixels_same { "same" } else { "DIFFER" }
        );
        if !pixels_same {
            failures.push(format!("{file}: decoded pixels differ from x86"));
        }
        if be > BOX_PX || se > SCORE {
            failures.push(format!(
                "{file}: detection differs (box {be} px, score {se})"
            ));
        }
        if le > LANDMARK_PX {
            failures.push(format!("{file}: landmarks differ by {le} px"));
        }

        // Every encoder from x86's landmarks.
        for (name, engine) in ENCODERS.iter().zip(engines.iter_mut()) {
            let want = emb_from(&r["embeddings"][*name]);
            let got = engine
                .describe_with_landmarks(&img, ref_det, ref_lm)
                .unwrap()
                .embedding;
            let (a, l2) = (max_abs(&got, &want), got.distance(&want));
            compared += 1;
            if got.0 == want.0 {
                identical += 1;
            }
            if limits(name) == (EMB_MAX_ABS, EMB_L2) {
                worst_abs = worst_abs.max(a);
                worst_l2 = worst_l2.max(l2);
            }
            eprintln!("{arch} {file} {name}: embedding max |d| {a:.2e}, L2 {l2:.2e}");
            let (max_abs_limit, l2_limit) = limits(name);
            if a > max_abs_limit || l2 > l2_limit {
                failures.push(format!("{file} {name}: embedding max |d| {a}, L2 {l2}"));
            }
        }

        // Whole pipeline on this target's own detection and landmarks (default encoder), only
        // when an upstream stage moved: otherwise it is the computation above.
        if det != ref_det || lm != ref_lm {
            let own = engines[0].describe(&img, &det).unwrap().embedding;
            let l2 = own.distance(&emb_from(&r["embeddings"][ENCODERS[0]]));
            eprintln!("{arch} {file}: whole pipeline (quantized) L2 {l2:.2e}");
            if l2 > PIPELINE_L2 {
                failures.push(format!("{file}: whole pipeline L2 {l2}"));
            }
        }
    }
    eprintln!(
        "{arch}: {identical}/{compared} embeddings bit-identical to x86; worst component |d| {worst_abs:.2e} (limit {EMB_MAX_ABS:.0e}), worst L2 {worst_l2:.2e} (limit {EMB_L2:.0e}){}",
        if cfg!(target_arch = "arm") { "; int8qdq on its own limits (above)" } else { "" }
    );
    assert!(failures.is_empty(), "{arch}: {failures:#?}");
}
