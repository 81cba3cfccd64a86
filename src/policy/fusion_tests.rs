//! The fused rule (issue 13 item 6) on synthetic frames against a real gallery: it unlocks a
//! visit whose frames each miss the threshold but agree, and keeps every guarantee of the
//! policy: only live frames are fused, NaN never unlocks, the margin to the runner-up holds,
//! access rules hold, one denial per visitor and attempt, the rate limit keyed on the face.

use super::*;
use crate::face::encode::EMBEDDING_DIM;
use crate::face::quality::Quality;
use crate::gallery::{Access, Gallery, Person};
use std::time::Duration;

fn fusion() -> PolicySettings {
    PolicySettings {
        rule: VisitRule::Fusion,
        ..PolicySettings::default()
    }
}

fn unit(k: usize) -> [f32; EMBEDDING_DIM] {
    let mut e = [0.0; EMBEDDING_DIM];
    e[k] = 1.0;
    e
}

fn person(id: &str, e: [f32; EMBEDDING_DIM]) -> Person {
    Person {
        id: id.into(),
        name: id.into(),
        embeddings: vec![Embedding(e)],
        access: Access::default(),
    }
}

/// Alice on axis 0, Bob on axis 1.
fn gallery() -> Gallery {
    Gallery::from_people(vec![person("alice", unit(0)), person("bob", unit(1))])
}

/// A frame of alice moved 0.5 along its own axis `10 + i`: each frame is 0.5 from her
/// template (outside the per-frame threshold 0.47), their mean of 3 is 0.29.
fn alice_frame(g: &Gallery, i: usize, liveness: Liveness) -> Evidence {
    alice_at(g, i, 0.5, liveness)
}

/// A frame of alice `offset` from her template along axis `10 + i`.
fn alice_at(g: &Gallery, i: usize, offset: f32, liveness: Liveness) -> Evidence {
    let mut e = unit(0);
    e[10 + i] = offset;
    frame(g, Embedding(e), liveness)
}

fn frame(g: &Gallery, e: Embedding, liveness: Liveness) -> Evidence {
    Evidence::Face {
        quality: Quality {
            eye_distance_px: 60.0,
            sharpness: 100.0,
            yaw: 0.0,
        },
        liveness,
        best: g.best_match(&e),
        access: Ok(()),
        embedding: Some(e),
    }
}

fn run_in(p: &mut Policy, g: &Gallery, t0: Instant, frames: &[(u64, Evidence)]) -> Vec<Decision> {
    frames
        .iter()
        .map(|(ms, e)| p.observe_in(t0 + Duration::from_millis(*ms), e, g).0)
        .filter(|d| *d != Decision::Wait)
        .collect()
}

#[test]
fn fusion_unlocks_agreeing_frames_that_k_of_n_denies() {
    let g = gallery();
    let t0 = Instant::now();
    let frames: Vec<_> = (0..3)
        .map(|i| (i as u64 * 100, alice_frame(&g, i, Liveness::Off)))
        .collect();
    let out = run_in(&mut Policy::new(fusion()), &g, t0, &frames);
    match &out[..] {
        [Decision::Unlock {
            id,
            distance,
            frames: 3,
        }] => {
            assert_eq!(id, "alice");
            assert!((distance - 0.5 / 3f32.sqrt()).abs() < 1e-4, "{distance}");
        }
        other => panic!("{other:?}"),
    }
    // K of N on the same frames: each is 0.5 away, an unknown face
    let out = run_in(&mut Policy::new(PolicySettings::default()), &g, t0, &frames);
    assert!(
        matches!(
            &out[..],
            [Decision::Deny {
                reason: DenyReason::UnknownFace,
                ..
            }]
        ),
        "{out:?}"
    );
    // observe() without a gallery decides by K of N whatever the rule
    let mut p = Policy::new(fusion());
    let out: Vec<_> = frames
        .iter()
        .map(|(ms, e)| p.observe(t0 + Duration::from_millis(*ms), e).0)
        .filter(|d| *d != Decision::Wait)
        .collect();
    assert!(matches!(&out[..], [Decision::Deny { .. }]), "{out:?}");
}

#[test]
fn only_live_frames_are_fused() {
    let g = gallery();
    let t0 = Instant::now();
    let s = PolicySettings {
        liveness_required: true,
        ..fusion()
    };
    let live = |score| Liveness::Live { score };
    let attack = Liveness::Attack {
        score: Some(0.2),
        reason: "print".into(),
    };
    // two live frames and attacks, unchecked faces and a NaN score: never 3 live frames
    let frames = vec![
        (0, alice_frame(&g, 0, live(0.9))),
        (100, alice_frame(&g, 1, attack.clone())),
        (200, alice_frame(&g, 2, Liveness::NotChecked)),
        (300, alice_frame(&g, 3, live(f32::NAN))),
        (400, alice_frame(&g, 4, Liveness::Off)),
        (500, alice_frame(&g, 5, live(0.8))),
    ];
    let out = run_in(&mut Policy::new(s.clone()), &g, t0, &frames);
    assert!(
        !out.iter().any(|d| matches!(d, Decision::Unlock { .. })),
        "{out:?}"
    );
    // three live frames (each a match, so no denial comes first) among an attack unlock
    let frames = vec![
        (0, alice_at(&g, 0, 0.3, live(0.9))),
        (100, alice_at(&g, 1, 0.3, attack)),
        (200, alice_at(&g, 2, 0.3, live(0.7))),
        (300, alice_at(&g, 3, 0.3, live(0.8))),
    ];
    let out = run_in(&mut Policy::new(s), &g, t0, &frames);
    assert!(
        matches!(&out[..], [Decision::Unlock { frames: 3, .. }]),
        "{out:?}"
    );
}

#[test]
fn nan_never_unlocks_and_the_margin_and_access_hold() {
    let t0 = Instant::now();
    let g = gallery();
    // NaN embeddings are invalid frames, never fused; a NaN fused threshold fails closed
    let nan = frame(&g, Embedding([f32::NAN; EMBEDDING_DIM]), Liveness::Off);
    let frames: Vec<_> = (0..5).map(|i| (i * 100, nan.clone())).collect();
    let out = run_in(&mut Policy::new(fusion()), &g, t0, &frames);
    assert!(
        matches!(
            &out[..],
            [Decision::Deny {
                reason: DenyReason::InvalidMatchData(_),
                ..
            }]
        ),
        "{out:?}"
    );
    let s = PolicySettings {
        fusion_threshold: f32::NAN,
        ..fusion()
    };
    let frames: Vec<_> = (0..3)
        .map(|i| (i as u64 * 100, alice_frame(&g, i, Liveness::Off)))
        .collect();
    let out = run_in(&mut Policy::new(s), &g, t0, &frames);
    assert!(!out.iter().any(|d| matches!(d, Decision::Unlock { .. })));
    // a twin 0.03 from alice: the fused face is within the threshold of both, no margin
    let mut twin = unit(0);
    twin[100] = 0.03;
    let g2 = Gallery::from_people(vec![person("alice", unit(0)), person("twin", twin)]);
    let frames: Vec<_> = (0..3)
        .map(|i| (i as u64 * 100, alice_frame(&g2, i, Liveness::Off)))
        .collect();
    let out = run_in(&mut Policy::new(fusion()), &g2, t0, &frames);
    assert!(
        !out.iter().any(|d| matches!(d, Decision::Unlock { .. })),
        "{out:?}"
    );
    // alice's access has expired: the fused match is not allowed
    let mut expired = person("alice", unit(0));
    expired.access.not_after = Some("2020-01-01T00:00:00Z".parse().unwrap());
    let g3 = Gallery::from_people(vec![expired, person("bob", unit(1))]);
    let out = run_in(&mut Policy::new(fusion()), &g3, t0, &frames);
    assert!(
        !out.iter().any(|d| matches!(d, Decision::Unlock { .. })),
        "{out:?}"
    );
}

#[test]
fn one_denial_per_visitor_and_the_rate_limit_keys_on_the_face() {
    let g = gallery();
    let t0 = Instant::now();
    let s = PolicySettings {
        free_failures: 1,
        ..fusion()
    };
    let mut p = Policy::new(s);
    // a stranger on axis 5: ten frames, one denial
    let stranger = frame(&g, Embedding(unit(5)), Liveness::Off);
    let first: Vec<_> = (0..10).map(|i| (i * 100, stranger.clone())).collect();
    let out = run_in(&mut p, &g, t0, &first);
    assert!(
        matches!(
            &out[0],
            Decision::Deny {
                reason: DenyReason::UnknownFace,
                ..
            }
        ),
        "{out:?}"
    );
    // then held (free_failures = 1), never denied twice
    assert!(
        out[1..].iter().all(|d| matches!(d, Decision::Hold { .. })),
        "{out:?}"
    );
    // the stranger comes back after leaving: held, not judged again
    let again: Vec<_> = (40..43).map(|i| (i * 100, stranger.clone())).collect();
    let out = run_in(&mut p, &g, t0, &again);
    assert!(
        !out.is_empty() && out.iter().all(|d| matches!(d, Decision::Hold { .. })),
        "{out:?}"
    );
    // after the stranger left, alice, another face, is not held by the stranger's block
    let mut alice = vec![(7000, Evidence::NoFace)];
    alice.extend((80..83).map(|i| (i * 100, alice_frame(&g, i as usize - 80, Liveness::Off))));
    let out = run_in(&mut p, &g, t0, &alice);
    assert!(matches!(&out[..], [Decision::Unlock { .. }]), "{out:?}");
}
