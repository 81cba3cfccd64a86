//! Issue 13 item 6 on the recorded clip (tests/fixtures/clip/hamilton): the door's per-frame
//! path with liveness, under K of N and under fusion. Both let Lin-Manuel Miranda in exactly
//! once, fusion no later than K of N and with a fused distance within its threshold; with only
//! the pianist enrolled, neither rule lets anyone in.

use crate::common::{face, fixture, models};
use facegate::eval_enroll::visits::replay_clip;
use facegate::frame::NoLiveness;
use facegate::gallery::{Gallery, Person};
use facegate::policy::{Decision, PolicySettings, VisitRule};

fn enrolled(id: &str, photo: &str) -> Gallery {
    let m = models();
    let mut engine = m.engine().unwrap();
    let img = facegate::imageio::load_rgb(&face(photo)).unwrap();
    let f = engine.faces(&img).unwrap().remove(0);
    Gallery::from_people(vec![Person {
        id: id.into(),
        name: id.into(),
        embeddings: vec![f.embedding],
        access: Default::default(),
    }])
}

fn unlocks(g: &Gallery, rule: VisitRule) -> Vec<(usize, String, f32)> {
    let m = models();
    let mut engine = m.engine().unwrap();
    let s = PolicySettings {
        rule,
        ..PolicySettings::default()
    };
    replay_clip(
        &mut engine,
        g,
        &s,
        &mut NoLiveness,
        &fixture("clip/hamilton"),
        5,
    )
    .unwrap()
    .into_iter()
    .filter_map(|d| match d.decision {
        Decision::Unlock { id, distance, .. } => Some((d.frame, id, distance)),
        _ => None,
    })
    .collect()
}

#[test]
fn fusion_lets_the_enrolled_performer_in_once_no_later_than_k_of_n() {
    let g = enrolled("lmm", "lin-manuel-miranda.png");
    let k = unlocks(&g, VisitRule::KOfN);
    let f = unlocks(&g, VisitRule::Fusion);
    assert_eq!(k.len(), 1, "{k:?}");
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].1, "lmm");
    assert!(f[0].0 <= k[0].0, "fusion {f:?}, k of n {k:?}");
    assert!(f[0].2 < PolicySettings::default().fusion_threshold, "{f:?}");
}

#[test]
fn with_only_the_pianist_enrolled_nobody_gets_in_under_either_rule() {
    let g = enrolled("lacamoire", "alex-lacamoire.png");
    for rule in [VisitRule::KOfN, VisitRule::Fusion] {
        assert!(unlocks(&g, rule).is_empty(), "{rule:?}");
    }
}
