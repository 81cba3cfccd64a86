//! The face pipeline end to end on real photos with the real models: same person passes,
//! different people fail, no-face and multi-face photos behave as documented.

use crate::common;

use common::{face, models, models_fp32};
use facegate::face::encode::Embedding;
use facegate::face::pick::FacePick;
use facegate::imageio::load_rgb;
use facegate::Error;

fn embed(name: &str) -> Embedding {
    let img = load_rgb(&face(name)).unwrap();
    let mut engine = models().engine().unwrap();
    let faces = engine.faces(&img).unwrap();
    FacePick::Largest
        .pick_face(&faces)
        .unwrap_or_else(|| panic!("no face in {name}"))
        .embedding
}

const PEOPLE: [(&str, &[&str]); 6] = [
    ("obama", &["obama1.jpg", "obama2.jpg", "obama3.jpg"]),
    ("biden", &["biden1.jpg", "biden2.jpg"]),
    (
        "lacamoire",
        &[
            "alex-lacamoire.png",
            "alex-lacamoire2.jpg",
            "alex-lacamoire3.jpg",
        ],
    ),
    ("orl_s1", &["orl_s1_1.pgm", "orl_s1_2.pgm"]),
    ("orl_s2", &["orl_s2_1.pgm", "orl_s2_2.pgm"]),
    ("orl_s3", &["orl_s3_1.pgm", "orl_s3_2.pgm"]),
];

#[test]
fn same_person_passes_and_different_people_fail() {
    let threshold = models().default_threshold();
    let all: Vec<(&str, &str, Embedding)> = PEOPLE
        .iter()
        .flat_map(|(who, files)| files.iter().map(move |f| (*who, *f, embed(f))))
        .collect();
    let mut checked = (0, 0);
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            let d = a.2.distance(&b.2);
            if a.0 == b.0 {
                assert!(
                    d < threshold,
                    "{} vs {}: same person at distance {d}",
                    a.1,
                    b.1
                );
                checked.0 += 1;
            } else {
                assert!(
                    d >= threshold,
                    "{} vs {}: different people at distance {d}",
                    a.1,
                    b.1
                );
                checked.1 += 1;
            }
        }
    }
    assert_eq!(checked, (10, 81));
}

#[test]
fn photo_without_a_face_yields_no_face() {
    let img = load_rgb(&face("no_face.jpg")).unwrap();
    let mut engine = models().engine().unwrap();
    assert!(engine.faces(&img).unwrap().is_empty());
}

#[test]
fn every_face_of_a_group_photo_is_returned() {
    let img = load_rgb(&face("two_people.jpg")).unwrap();
    let mut engine = models().engine().unwrap();
    let faces = engine.faces(&img).unwrap();
    assert_eq!(faces.len(), 2, "{faces:?}");
    // two different people
    assert!(faces[0].embedding.distance(&faces[1].embedding) > models().default_threshold());
    // both boxes inside the image and the eyes inside the box
    for f in &faces {
        let d = &f.detection;
        assert!(d.x >= -5.0 && d.y >= -5.0 && d.x + d.width <= img.width() as f32 + 5.0);
        let eye = f.landmarks.0[1];
        assert!(eye.x as f32 > d.x && (eye.x as f32) < d.x + d.width);
    }
}

#[test]
fn quantized_encoder_stays_close_to_fp32() {
    let img = load_rgb(&face("obama1.jpg")).unwrap();
    let mut q = models().engine().unwrap();
    let mut f = models_fp32().engine().unwrap();
    let dq = q.detect(&img).unwrap()[0];
    let lm = q.landmarks(&img, &dq);
    let eq = q.describe_with_landmarks(&img, dq, lm).unwrap().embedding;
    let ef = f.describe_with_landmarks(&img, dq, lm).unwrap().embedding;
    let d = eq.distance(&ef);
    assert!(d > 0.0 && d < 0.06, "int8 vs fp32 L2 {d}");
}

#[test]
fn engine_is_deterministic_across_workers() {
    let img = load_rgb(&face("biden2.jpg")).unwrap();
    let a = models().engine().unwrap().faces(&img).unwrap();
    let mut e = models().engine().unwrap();
    e.faces(&load_rgb(&face("obama2.jpg")).unwrap()).unwrap();
    let b = e.faces(&img).unwrap();
    assert_eq!(a[0].embedding, b[0].embedding);
}

#[test]
fn unreadable_inputs_give_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    // truncated JPEG
    let bytes = std::fs::read(face("obama1.jpg")).unwrap();
    let truncated = dir.path().join("truncated.jpg");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let e = must_fail(&truncated);
    assert!(matches!(e, Error::CorruptImage { .. }), "{e}");
    assert!(e.to_string().contains("truncated.jpg"));
    // not an image at all
    let text = dir.path().join("notes.jpg");
    std::fs::write(&text, "hello, this is not a photo").unwrap();
    assert!(matches!(
        load_rgb(&text).err(),
        Some(Error::UnsupportedImage { .. })
    ));
    // missing file
    assert!(matches!(
        load_rgb(&dir.path().join("absent.jpg")).err(),
        Some(Error::Io { .. })
    ));
    // decompression bomb: a valid PNG header claiming 30000 x 30000 pixels
    let bomb = dir.path().join("bomb.png");
    std::fs::write(&bomb, png_header(30_000, 30_000)).unwrap();
    let e = must_fail(&bomb);
    assert!(
        matches!(e, Error::ImageTooLarge { .. } | Error::DecodeLimits { .. }),
        "{e}"
    );
}

/// The error of an image that must not load (an image would print megabytes if shown).
fn must_fail(path: &std::path::Path) -> Error {
    match load_rgb(path) {
        Err(e) => e,
        Ok(img) => panic!(
            "{} decoded to {}x{}",
            path.display(),
            img.width(),
            img.height()
        ),
    }
}

/// The signature and IHDR chunk of an 8-bit RGB PNG of the given size, with no pixel data.
fn png_header(w: u32, h: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = common::crc32(&ihdr);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend_from_slice(&13u32.to_be_bytes());
    out.extend_from_slice(&ihdr);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// The enrollment engine's template is the mean, over the chip cut as each of
/// `CHIP_JITTER`, of that chip's and its mirror image's embeddings; the door's engine embeds
/// the one chip as cut.
#[test]
fn enrolment_engine_averages_jittered_and_mirrored_chips_and_the_door_engine_does_not() {
    use facegate::face::{ChipJitter, CHIP_JITTER};
    let img = load_rgb(&face("obama1.jpg")).unwrap();
    let m = models();
    let (mut door, mut enrol) = (m.engine().unwrap(), m.enrolment_engine().unwrap());
    assert!(
        !door.flips() && enrol.flips() && !door.jitters() && enrol.jitters(),
        "defaults: flip and jitter for enrollment only"
    );
    let det = door.detect(&img).unwrap()[0];
    let lm = door.landmarks(&img, &det);
    let plain = door
        .describe_with_landmarks(&img, det, lm)
        .unwrap()
        .embedding;
    let template = enrol
        .describe_with_landmarks(&img, det, lm)
        .unwrap()
        .embedding;
    let dim = facegate::face::encode::EMBEDDING_DIM;
    let mut mean = vec![0.0f32; dim];
    let mut averaged = Vec::new();
    for j in &CHIP_JITTER {
        enrol.align_jittered(&img, &lm, j);
        let e = enrol.encode_chip().unwrap();
        for (s, v) in mean.iter_mut().zip(e.0) {
            *s += v / CHIP_JITTER.len() as f32;
        }
        averaged.push(e);
    }
    let mean = Embedding(mean.try_into().unwrap());
    assert!(
        template.distance(&mean) < 1e-5,
        "template = mean of the jittered chips"
    );
    // every jittered chip is a real, small change of the face
    assert_eq!(CHIP_JITTER[0], ChipJitter::NONE);
    for (j, e) in CHIP_JITTER.iter().zip(&averaged).skip(1) {
        let d = e.distance(&averaged[0]);
        assert!(d > 0.005 && d < 0.3, "{j:?}: {d}");
    }
    // the unjittered chip: its mirror image's embedding, recovered from the average
    let avg = &averaged[0];
    let mut mirrored = vec![0.0f32; dim];
    for (k, v) in mirrored.iter_mut().enumerate() {
        *v = 2.0 * avg.0[k] - plain.0[k];
    }
    let d_avg = plain.distance(avg);
    let d_mirror = plain.distance(&Embedding(mirrored.try_into().unwrap()));
    // the same face mirrored is near (same person) but not identical: a real second embedding
    assert!(
        d_avg > 0.005 && d_mirror < 0.4,
        "plain-avg {d_avg}, plain-mirror {d_mirror}"
    );
    assert!((d_mirror - 2.0 * d_avg).abs() < 1e-4);
}

/// Jittered enrollment templates on the fixture people (every photo enrolled, every other photo
/// of the same person as the door's probe; other people's photos as impostors): the same person
/// comes nearer, and other people do not come nearer than the nearest of them already was.
#[test]
fn jittered_enrolment_brings_the_same_person_nearer_on_the_fixture_photos() {
    use facegate::face::{FaceModels, ModelOptions};
    let plain_models = FaceModels::load(&ModelOptions {
        jitter_enrolment: false,
        ..common::options("quantized")
    })
    .unwrap();
    let (jittered, plain, door) = (
        &mut models().enrolment_engine().unwrap(),
        &mut plain_models.enrolment_engine().unwrap(),
        &mut models().engine().unwrap(),
    );
    let photo = |engine: &mut facegate::face::FaceEngine, name: &str| {
        let img = load_rgb(&face(name)).unwrap();
        let f = engine.photo_face(&img, FacePick::Largest).unwrap();
        f.unwrap_or_else(|| panic!("no face in {name}")).embedding
    };
    let mut all = Vec::new();
    for (person, names) in PEOPLE {
        for name in names.iter() {
            all.push((
                person,
                photo(jittered, name),
                photo(plain, name),
                photo(door, name),
            ));
        }
    }
    let (mut genuine, mut impostor) = ((0.0f32, 0.0f32, 0), (f32::MAX, f32::MAX));
    for (i, (pa, jit, pla, _)) in all.iter().enumerate() {
        for (k, (pb, _, _, probe)) in all.iter().enumerate() {
            let (dj, dp) = (jit.distance(probe), pla.distance(probe));
            if i == k {
                continue;
            } else if pa == pb {
                genuine = (genuine.0 + dj, genuine.1 + dp, genuine.2 + 1);
            } else {
                impostor = (impostor.0.min(dj), impostor.1.min(dp));
            }
        }
    }
    let n = genuine.2 as f32;
    eprintln!(
        "same person, mean: jittered {:.4}, plain {:.4} ({} pairs); nearest other person: jittered {:.4}, plain {:.4}",
        genuine.0 / n, genuine.1 / n, genuine.2, impostor.0, impostor.1
    );
    assert!(genuine.0 < genuine.1, "the same person comes nearer");
    assert!(
        impostor.0 >= impostor.1 - 0.01,
        "no other person comes nearer"
    );
}
