//! Which face counts: the one face-selection rule (door, `bench`, `verify`, `identify`, `eval`)
//! and the one enrollment rule (bundle import, `[gallery] photos_dir`, `[[gallery.person]]`,
//! `identify`'s gallery directory).

use super::detect::Detection;
use super::Face;
use std::fmt;

/// How one face is chosen from the faces found in a frame or photo. A small enum so that other
/// picks (e.g. the face nearest the centre, for evaluation) can be added beside the door's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FacePick {
    /// The largest box: the person nearest the camera (the door's rule).
    #[default]
    Largest,
}

impl FacePick {
    /// The chosen detection, `None` when there is none. Ties keep the last one found.
    pub fn pick(self, detections: &[Detection]) -> Option<&Detection> {
        match self {
            FacePick::Largest => detections
                .iter()
                .max_by(|a, b| (a.width * a.height).total_cmp(&(b.width * b.height))),
        }
    }

    /// The chosen face (same rule as [`pick`](Self::pick), on described faces).
    pub fn pick_face(self, faces: &[Face]) -> Option<&Face> {
        match self {
            FacePick::Largest => faces.iter().max_by(|a, b| {
                (a.detection.width * a.detection.height)
                    .total_cmp(&(b.detection.width * b.detection.height))
            }),
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

impl EnrolReject {
    /// Short machine-readable kind (`no_face`, `faces`, `quality`), as import reports it.
    pub fn kind(&self) -> &'static str {
        match self {
            EnrolReject::NoFace => "no_face",
            EnrolReject::SeveralFaces(_) => "faces",
            EnrolReject::TooSmall { .. } => "quality",
        }
    }
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
    /// scores (the old `bench` took the first detection, `eval` preferred the best score).
    #[test]
    fn largest_box_wins_whatever_the_order_and_score() {
        let dets = [
            det(0.0, 40.0, 0.99),
            det(100.0, 90.0, 0.6),
            det(200.0, 60.0, 0.9),
        ];
        assert_eq!(FacePick::Largest.pick(&dets).unwrap().x, 100.0);
        assert!(FacePick::Largest.pick(&[]).is_none());
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
        assert_eq!(small.kind(), "quality");
        assert!(small.to_string().contains("min_eye_distance_px"), "{small}");
        assert_eq!(
            enrolment_face(vec![face(40.0)], 32.0)
                .unwrap()
                .eye_distance(),
            40.0
        );
    }
}
