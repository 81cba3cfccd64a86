//! Which face counts: the one face-selection rule (door, `bench`, `verify`, `identify`, `eval`)
//! and the one enrollment rule (bundle import, `[gallery] photos_dir`, `[[gallery.person]]`,
//! `identify`'s gallery directory).

use super::detect::Detection;
use super::Face;
use std::fmt;

/// A box scoring more than this below the best box of the same frame is not a candidate for
/// [`FacePick`]: BlazeFace's low-scoring boxes (0.5-0.7) next to a confident face are mostly
/// not faces (a bag, a torso, a corner of the background), and being large they would win the
/// largest-box rule. On CelebA 14 of 35 photos with several boxes had such a box larger than
/// the subject's face (scores 0.51-0.68 against 0.85-0.99); this margin rejects 11 of them and
/// changes no photo where the largest box was the subject.
pub const PICK_SCORE_MARGIN: f32 = 0.2;

/// How one face is chosen from the faces found in a frame or photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FacePick {
    /// The largest box (of those scoring within [`PICK_SCORE_MARGIN`] of the best): the
    /// person nearest the camera (the door's rule).
    #[default]
    Largest,
    /// The box whose centre is nearest the image centre, ties broken by size: the subject of
    /// a verification protocol that centres it (LFW's photos are cut around the person named).
    Centre,
}

impl FacePick {
    /// The spelling on the command line (`--pick`) and in reports.
    pub fn name(self) -> &'static str {
        match self {
            FacePick::Largest => "largest",
            FacePick::Centre => "centre",
        }
    }

    /// The index of the chosen box among `boxes`, in a `frame` of (width, height) pixels.
    /// Only boxes scoring within [`PICK_SCORE_MARGIN`] of the best are candidates. Ties keep
    /// the last one found.
    fn choose<'a>(
        self,
        boxes: impl Iterator<Item = &'a Detection> + Clone,
        frame: (u32, u32),
    ) -> Option<usize> {
        let area = |d: &Detection| d.width * d.height;
        let (cx, cy) = (frame.0 as f32 / 2.0, frame.1 as f32 / 2.0);
        let off = |d: &Detection| {
            (d.x + d.width / 2.0 - cx).powi(2) + (d.y + d.height / 2.0 - cy).powi(2)
        };
        let best = boxes.clone().map(|d| d.score).fold(f32::MIN, f32::max);
        let boxes = boxes
            .enumerate()
            .filter(|(_, d)| d.score >= best - PICK_SCORE_MARGIN);
        match self {
            FacePick::Largest => boxes.max_by(|a, b| area(a.1).total_cmp(&area(b.1))),
            // Nearest first, then largest: `max_by` of (-distance, area).
            FacePick::Centre => boxes.max_by(|a, b| {
                off(b.1)
                    .total_cmp(&off(a.1))
                    .then(area(a.1).total_cmp(&area(b.1)))
            }),
        }
        .map(|(i, _)| i)
    }

    /// The chosen detection in a frame of `frame` = (width, height) pixels, `None` when there
    /// is none.
    pub fn pick_in(self, detections: &[Detection], frame: (u32, u32)) -> Option<&Detection> {
        self.choose(detections.iter(), frame)
            .map(|i| &detections[i])
    }

    /// The chosen face (same rule as [`pick_in`](Self::pick_in), on described faces).
    pub fn pick_face_in(self, faces: &[Face], frame: (u32, u32)) -> Option<&Face> {
        self.choose(faces.iter().map(|f| &f.detection), frame)
            .map(|i| &faces[i])
    }

    /// The chosen detection where the frame size is not at hand: exact for
    /// [`Largest`](Self::Largest) (the door's rule); [`Centre`](Self::Centre) then takes the
    /// centre of the boxes' common extent. Prefer [`pick_in`](Self::pick_in).
    pub fn pick(self, detections: &[Detection]) -> Option<&Detection> {
        self.pick_in(detections, extent(detections.iter()))
    }

    /// The chosen face (same rule as [`pick`](Self::pick), on described faces).
    pub fn pick_face(self, faces: &[Face]) -> Option<&Face> {
        self.pick_face_in(faces, extent(faces.iter().map(|f| &f.detection)))
    }
}

/// A frame just large enough to hold every box from the origin (for [`FacePick::pick`]).
fn extent<'a>(boxes: impl Iterator<Item = &'a Detection>) -> (u32, u32) {
    boxes.fold((0, 0), |(w, h), d| {
        (
            w.max((d.x + d.width).max(0.0).ceil() as u32),
            h.max((d.y + d.height).max(0.0).ceil() as u32),
        )
    })
}

impl fmt::Display for FacePick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FacePick {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "largest" => Ok(FacePick::Largest),
            "centre" | "center" => Ok(FacePick::Centre),
            _ => Err(format!("unknown face pick {s:?}: use largest or centre")),
        }
    }
}

/// Why a photo cannot enrol a person.
#[derive(Debug, Clone, PartialEq)]
pub enum EnrolReject {
    NoFace,
    /// Several faces: which one is the person's is not guessed.
    SeveralFaces(usize),
    /// Eyes closer than the door's `min_eye_distance_px`: the door would never accept such a
    /// face, and the embedding of a small face is unreliable.
    TooSmall {
        eye_distance_px: f32,
        need: f32,
    },
}

impl fmt::Display for EnrolReject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnrolReject::NoFace => {
                write!(
                    f,
                    "no face found; use a frontal, well-lit photo of the person alone"
                )
            }
            EnrolReject::SeveralFaces(n) => {
                write!(f, "{n} faces in the photo; use a photo of the person alone")
            }
            EnrolReject::TooSmall {
                eye_distance_px,
                need,
            } => write!(
                f,
                "face too small: {eye_distance_px:.0} px between the eyes, need {need:.0} \
                 ([policy] min_eye_distance_px); use a closer or larger photo"
            ),
        }
    }
}

/// The enrollment rule: exactly one face, with eyes at least `min_eye_distance_px` apart (the
/// door's own size gate, so nobody is enrolled from a face the door would refuse to look at).
pub fn enrolment_face(faces: Vec<Face>, min_eye_distance_px: f32) -> Result<Face, EnrolReject> {
    let n = faces.len();
    let Some(face) = faces.into_iter().next() else {
        return Err(EnrolReject::NoFace);
    };
    if n > 1 {
        return Err(EnrolReject::SeveralFaces(n));
    }
    let eye = face.eye_distance() as f32;
    // Written so that a NaN distance fails.
    if eye.is_nan() || eye < min_eye_distance_px {
        return Err(EnrolReject::TooSmall {
            eye_distance_px: eye,
            need: min_eye_distance_px,
        });
    }
    Ok(face)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(x: f32, w: f32, score: f32) -> Detection {
        Detection {
            x,
            y: 0.0,
            width: w,
            height: w,
            score,
            keypoints: [[0.0; 2]; 6],
        }
    }

    /// Issue 11 item 2: the door's rule is the largest box, whatever the detector's order or
    /// scores (the old `bench` took the first detection, `eval` preferred the best score);
    /// issue 13: among the boxes scoring within [`PICK_SCORE_MARGIN`] of the best.
    #[test]
    fn largest_box_wins_whatever_the_order_and_score() {
        let dets = [
            det(0.0, 40.0, 0.99),
            det(100.0, 90.0, 0.8),
            det(200.0, 60.0, 0.9),
        ];
        assert_eq!(FacePick::Largest.pick(&dets).unwrap().x, 100.0);
        let rev = [dets[2], dets[1], dets[0]];
        assert_eq!(FacePick::Largest.pick(&rev).unwrap().x, 100.0);
        assert!(FacePick::Largest.pick(&[]).is_none());
    }

    /// Issue 13: a large box scoring far below a confident one (CelebA: a bag, a torso, a
    /// corner of the background at 0.5-0.7 next to the subject's face at 0.9+) is not picked,
    /// by either rule; alone, it is.
    #[test]
    fn a_box_far_less_confident_than_the_best_is_not_picked() {
        let dets = [det(0.0, 40.0, 0.95), det(100.0, 120.0, 0.56)];
        assert_eq!(FacePick::Largest.pick(&dets).unwrap().x, 0.0);
        // the weak box at the centre of the frame, the confident face at its edge
        let centred = [
            Detection {
                y: 100.0,
                ..det(0.0, 40.0, 0.95)
            },
            Detection {
                y: 100.0,
                ..det(100.0, 50.0, 0.56)
            },
        ];
        assert_eq!(
            FacePick::Centre.pick_in(&centred, (250, 250)).unwrap().x,
            0.0
        );
        // just within the margin: still a candidate, and the larger
        let close = [
            det(0.0, 40.0, 0.95),
            det(100.0, 120.0, 0.95 - PICK_SCORE_MARGIN),
        ];
        assert_eq!(FacePick::Largest.pick(&close).unwrap().x, 100.0);
        assert_eq!(FacePick::Largest.pick(&dets[1..]).unwrap().x, 100.0);
    }

    fn boxed(x: f32, y: f32, w: f32) -> Detection {
        Detection {
            y,
            ..det(x, w, 0.9)
        }
    }

    /// Issue 13 item 1: `centre` takes the face nearest the image centre, not the largest;
    /// equally near faces go to the larger one; `largest` ignores the position.
    #[test]
    fn centre_pick_prefers_the_face_at_the_centre_then_the_larger() {
        // 250x250 like LFW: a large face at the left edge, the subject centred.
        let dets = [boxed(0.0, 60.0, 120.0), boxed(85.0, 85.0, 80.0)];
        assert_eq!(FacePick::Centre.pick_in(&dets, (250, 250)).unwrap().x, 85.0);
        assert_eq!(FacePick::Largest.pick_in(&dets, (250, 250)).unwrap().x, 0.0);
        // Two boxes centred on the same point: the larger wins, whatever the order.
        let same = [boxed(100.0, 100.0, 50.0), boxed(75.0, 75.0, 100.0)];
        assert_eq!(
            FacePick::Centre.pick_in(&same, (250, 250)).unwrap().width,
            100.0
        );
        let rev = [same[1], same[0]];
        assert_eq!(
            FacePick::Centre.pick_in(&rev, (250, 250)).unwrap().width,
            100.0
        );
        assert!(FacePick::Centre.pick_in(&[], (250, 250)).is_none());
        assert_eq!("center".parse::<FacePick>().unwrap(), FacePick::Centre);
        assert!("middle"
            .parse::<FacePick>()
            .unwrap_err()
            .contains("largest or centre"));
    }

    fn face(eye_px: f64) -> Face {
        use crate::face::geometry::Point;
        Face {
            detection: det(0.0, 100.0, 0.9),
            landmarks: crate::face::landmarks::Landmarks([
                Point::new(50.0 + eye_px, 40.0),
                Point::new(50.0 + eye_px, 40.0),
                Point::new(50.0, 40.0),
                Point::new(50.0, 40.0),
                Point::new(55.0, 70.0),
            ]),
            embedding: crate::face::encode::Embedding([0.0; crate::face::encode::EMBEDDING_DIM]),
        }
    }

    /// Issue 11 item 2: one enrollment rule for bundle import and config enrollment (which
    /// used to accept a face of any size): exactly one face, eyes at least the minimum apart.
    #[test]
    fn enrolment_needs_exactly_one_face_large_enough() {
        assert_eq!(
            enrolment_face(vec![], 32.0).unwrap_err(),
            EnrolReject::NoFace
        );
        let two = enrolment_face(vec![face(40.0), face(40.0)], 32.0).unwrap_err();
        assert_eq!(two, EnrolReject::SeveralFaces(2));
        assert!(two.to_string().contains("2 faces"));
        let small = enrolment_face(vec![face(20.0)], 32.0).unwrap_err();
        assert!(matches!(small, EnrolReject::TooSmall { .. }), "{small:?}");
        assert!(small.to_string().contains("min_eye_distance_px"), "{small}");
        assert_eq!(
            enrolment_face(vec![face(40.0)], 32.0)
                .unwrap()
                .eye_distance(),
            40.0
        );
    }
}
