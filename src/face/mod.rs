//! The face pipeline, one stage per file, each a type that carries only what the next needs:
//!
//! frame (RGB) -> [`detect`] `Detection` -> [`landmarks`] `Landmarks` -> [`align`] face chip
//! -> [`encode`] `Embedding` -> distance.
//!
//! [`FaceModels`] loads and optimises every model once and is shared (`Arc`) between workers;
//! each worker owns a [`FaceEngine`] holding its tract states and scratch buffers, so the frame
//! loop neither reloads models nor allocates once warmed up.

pub mod align;
pub use align::ChipJitter;
pub mod detect;
pub mod encode;
pub mod geometry;
pub mod landmarks;
pub mod liveness;
pub mod motion;
pub mod photo;
pub mod pick;
pub mod quality;
pub mod runtime;

use crate::error::Result;
use crate::models::ModelDir;
use align::{Aligner, ChipPlacement};
use detect::{BoxMapping, Detection, Detector, DetectorModel};
use encode::{Embedding, Encoder, EncoderModel};
use image::RgbImage;
use landmarks::{LandmarkRect, Landmarks, ShapePredictor};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Which BlazeFace detector finds the faces: one type and one default for the command line
/// (`--detector`) and the configuration (`[models] detector`).
///
/// The default is [`ShortRange`](Self::ShortRange), what a door needs: its camera sees faces
/// within ~2 m, and a face far enough away to need the full-range model is too small for the
/// door's quality gate anyway (`min_eye_distance_px`). `auto` would run the full-range model
/// (~3x the cost) on every frame without a face, which at a door is most frames, and
/// `bundle check --faces` must find faces with the detector the door's import uses.
/// `auto` and `full_range` are for photos with small faces (`facegate eval` on in-the-wild sets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorChoice {
    /// Short-range first, full-range only when short-range finds nothing.
    Auto,
    /// Faces within ~2 m, fast (the manifest's `short_range`).
    #[default]
    ShortRange,
    /// Faces up to ~5 m, ~3x slower (the manifest's `full_range`).
    FullRange,
}

impl DetectorChoice {
    /// The spelling in the configuration, on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            DetectorChoice::Auto => "auto",
            DetectorChoice::ShortRange => "short_range",
            DetectorChoice::FullRange => "full_range",
        }
    }
}

impl std::fmt::Display for DetectorChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for DetectorChoice {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        [Self::Auto, Self::ShortRange, Self::FullRange]
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown detector {s:?}: use short_range, full_range or auto"))
    }
}

/// Which models to load and how to use them.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub models_dir: PathBuf,
    pub detector: DetectorChoice,
    /// `quantized` (default), `fp32`, or any other encoder the manifest lists.
    pub encoder: String,
    /// Average the embeddings of the chip and its mirror image (doubles encoder time) for
    /// every face: the door's frames too. Off by default (the per-frame cost).
    pub flip_average: bool,
    /// The same averaging for enrollment photos only ([`FaceModels::enrolment_engine`]): on by
    /// default, it costs nothing per frame and raises TAR at FAR 1e-3 on every dev set.
    pub flip_enrolment: bool,
    /// Average every face's embedding over [`CHIP_JITTER`] (five times the encoder time): for
    /// comparisons like dlib's jittered LFW figure (`eval --jitter`), never the door's default.
    pub jitter_average: bool,
    /// The same averaging for enrollment photos only: on by default (no per-frame cost).
    pub jitter_enrolment: bool,
    /// Re-detect each face that is small in the frame on a square crop around it (2.2x its
    /// box), where BlazeFace sees it large: a tighter box for the landmark model.
    pub refine_small: bool,
    /// Run the landmark model a second time on the rectangle dlib's detector would draw around
    /// the first landmarks (when the manifest has the `refit_*` coefficients).
    pub landmark_refit: bool,
    /// In that second pass, average the landmarks found on the rectangle and on four copies of
    /// it shifted by 5% of its side ([`landmarks::LANDMARK_JITTER`]). Off by default: the
    /// landmarks land closer to dlib's, but CelebA's TAR at FAR 1e-3 fell 0.8 points.
    pub landmark_jitter: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            models_dir: ModelDir::default_path(),
            detector: DetectorChoice::default(),
            encoder: "quantized".into(),
            flip_average: false,
            flip_enrolment: true,
            jitter_average: false,
            jitter_enrolment: true,
            refine_small: true,
            landmark_refit: true,
            landmark_jitter: false,
        }
    }
}

/// Every model, loaded, checked and optimised once.
pub struct FaceModels {
    pub dir: ModelDir,
    pub detector: Arc<DetectorModel>,
    /// Tried when `detector` finds no face ([`DetectorChoice::Auto`]).
    pub fallback_detector: Option<Arc<DetectorModel>>,
    /// The full-range detector for a photo's last look ([`photo`]), loaded the first time a
    /// photo needs it (never for camera frames).
    photo_full_range: OnceLock<Option<Arc<DetectorModel>>>,
    pub predictor: Arc<ShapePredictor>,
    pub encoder: Arc<EncoderModel>,
    pub box_mapping: BoxMapping,
    /// The second landmark pass's rectangle rule (`None`: one pass).
    pub landmark_refit: Option<LandmarkRect>,
    pub options: ModelOptions,
    /// Wall time spent loading and optimising.
    pub load_time: Duration,
}

impl FaceModels {
    pub fn load(options: &ModelOptions) -> Result<Arc<Self>> {
        let t0 = Instant::now();
        let dir = ModelDir::open(&options.models_dir)?;
        let (detector, fallback_detector) = match options.detector {
            DetectorChoice::Auto => (
                DetectorModel::load(&dir, DetectorChoice::ShortRange.name())?,
                Some(DetectorModel::load(&dir, DetectorChoice::FullRange.name())?),
            ),
            d => (DetectorModel::load(&dir, d.name())?, None),
        };
        let encoder = EncoderModel::load(&dir, &options.encoder)?;
        let lm = dir.manifest.landmarks.clone();
        let path = dir.path_of(&lm.file);
        let bytes = dir.read_verified(&lm.file, &lm.sha256)?;
        let predictor = ShapePredictor::from_dat(&bytes, &path)?;
        if predictor.num_points() != 5 || lm.num_points != 5 {
            return Err(crate::error::Error::Model {
                path,
                reason: format!(
                    "a {}-point predictor; facegate aligns with the 5-point model",
                    predictor.num_points()
                ),
            });
        }
        Ok(Arc::new(FaceModels {
            box_mapping: BoxMapping {
                scale: lm.box_scale,
                offset_x: lm.box_offset_x,
                offset_y: lm.box_offset_y,
            },
            landmark_refit: lm.refit().filter(|_| options.landmark_refit),
            dir,
            detector,
            fallback_detector,
            photo_full_range: OnceLock::new(),
            predictor: Arc::new(predictor),
            encoder,
            options: options.clone(),
            load_time: t0.elapsed(),
        }))
    }

    /// The full-range detector for photos where every short-range look found nothing; `None`
    /// when the door's detector already is full-range (or falls back to it: `auto`), or when
    /// it cannot be loaded (logged: photos then go without that look).
    fn photo_full_range(&self) -> Option<Arc<DetectorModel>> {
        if self.options.detector != DetectorChoice::ShortRange {
            return None;
        }
        self.photo_full_range
            .get_or_init(|| {
                match DetectorModel::load(&self.dir, DetectorChoice::FullRange.name()) {
                    Ok(m) => Some(m),
                    Err(e) => {
                        log::warn!("photos get no full-range look: {e}");
                        None
                    }
                }
            })
            .clone()
    }

    /// The encoder's same-person distance threshold from the manifest.
    pub fn default_threshold(&self) -> f32 {
        self.encoder.spec.threshold
    }

    /// A new worker with its own inference states, for the door's frames and probe photos
    /// (flip averaging when `flip_average`, chip jitter when `jitter_average`).
    pub fn engine(self: &Arc<Self>) -> Result<FaceEngine> {
        self.engine_with(self.averaging(false))
    }

    /// A worker for enrollment photos: flip averaging when `flip_enrolment` or `flip_average`,
    /// chip jitter when `jitter_enrolment` or `jitter_average`.
    pub fn enrolment_engine(self: &Arc<Self>) -> Result<FaceEngine> {
        self.engine_with(self.averaging(true))
    }

    /// (mirror, chip jitter): what [`engine`](Self::engine) (`enrolment`:
    /// [`enrolment_engine`](Self::enrolment_engine)) averages each embedding over.
    fn averaging(&self, enrolment: bool) -> (bool, bool) {
        let o = &self.options;
        (
            o.flip_average || (enrolment && o.flip_enrolment),
            o.jitter_average || (enrolment && o.jitter_enrolment),
        )
    }

    /// Encoder runs per face for [`engine`](Self::engine) (`enrolment`:
    /// [`enrolment_engine`](Self::enrolment_engine)).
    pub fn encoder_runs(&self, enrolment: bool) -> usize {
        let (flip, jitter) = self.averaging(enrolment);
        let chips = if jitter { CHIP_JITTER.len() } else { 1 };
        chips * if flip { 2 } else { 1 }
    }

    /// How a face is embedded by [`engine`](Self::engine) (`enrolment`: by
    /// [`enrolment_engine`](Self::enrolment_engine)), e.g. "5 chips x mirror (10 encoder runs)".
    pub fn embedding_recipe(&self, enrolment: bool) -> String {
        let (flip, jitter) = self.averaging(enrolment);
        let runs = self.encoder_runs(enrolment);
        match (jitter, flip) {
            (false, false) => "1 chip".into(),
            (false, true) => "1 chip x mirror (2 encoder runs)".into(),
            (true, false) => format!("{} shifted chips ({runs} encoder runs)", CHIP_JITTER.len()),
            (true, true) => format!(
                "{} shifted chips x mirror ({runs} encoder runs)",
                CHIP_JITTER.len()
            ),
        }
    }

    fn engine_with(self: &Arc<Self>, (flip, jitter): (bool, bool)) -> Result<FaceEngine> {
        Ok(FaceEngine {
            flip,
            jitter,
            photo_full_range: None,
            detector: Detector::new(self.detector.clone())?,
            fallback: self
                .fallback_detector
                .as_ref()
                .map(|d| Detector::new(d.clone()))
                .transpose()?,
            encoder: Encoder::new(self.encoder.clone())?,
            models: self.clone(),
            aligner: Aligner::default(),
            chip: RgbImage::new(1, 1),
            crop: RgbImage::new(1, 1),
        })
    }
}

/// The perturbations an enrollment photo's chip is averaged over (`jitter_enrolment`): the chip
/// as cut and the chip moved 2% of its side each way. Where a chip is cut depends on five
/// landmarks found from a BlazeFace box, and their error shifts the chip far more than it
/// turns or zooms it (turn and zoom come from the eye-to-eye span, the widest in the face);
/// averaging over shifts makes the template the one expected near the chip rather than of
/// that one cut. 2% is the translation of dlib's own jitter (`jitter_image`, the augmentation
/// its encoder was trained with). Measured against dlib's other axes (3% zoom, 3 degree
/// turns) and other steps (1%, 3%, a 3x3 grid) on CelebA and Yale: README, "Enrollment
/// templates". Fixed rather than random, so that one photo always gives one template. With
/// flip averaging each is also mirrored: 10 encoder runs per photo.
pub const CHIP_JITTER: [ChipJitter; 5] = [
    ChipJitter::NONE,
    ChipJitter::shift(0.02, 0.0),
    ChipJitter::shift(-0.02, 0.0),
    ChipJitter::shift(0.0, 0.02),
    ChipJitter::shift(0.0, -0.02),
];

/// One face found in an image, with everything the decision needs.
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    pub detection: Detection,
    pub landmarks: Landmarks,
    pub embedding: Embedding,
}

impl Face {
    pub fn eye_distance(&self) -> f64 {
        self.landmarks.eye_distance()
    }
}

/// A worker: runs the pipeline on frames or photos.
pub struct FaceEngine {
    models: Arc<FaceModels>,
    /// Average each embedding with its mirror image's.
    flip: bool,
    /// Average each embedding over the chip's [`CHIP_JITTER`] perturbations.
    jitter: bool,
    /// The photo path's full-range look, made the first time a photo needs it.
    photo_full_range: Option<Detector>,
    detector: Detector,
    fallback: Option<Detector>,
    encoder: Encoder,
    aligner: Aligner,
    chip: RgbImage,
    crop: RgbImage,
}

impl FaceEngine {
    pub fn models(&self) -> &Arc<FaceModels> {
        &self.models
    }

    /// Whether this engine averages each embedding with its mirror image's.
    pub fn flips(&self) -> bool {
        self.flip
    }

    /// Whether this engine averages each embedding over [`CHIP_JITTER`].
    pub fn jitters(&self) -> bool {
        self.jitter
    }

    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>> {
        let found = self.detector.detect(img)?;
        let mut found = match &mut self.fallback {
            Some(fallback) if found.is_empty() => fallback.detect(img)?,
            _ => found,
        };
        self.refine_all(img, &mut found)?;
        Ok(found)
    }

    /// Re-detects each face smaller than 40% of the image on a crop around it (when
    /// `refine_small`).
    fn refine_all(&mut self, img: &RgbImage, found: &mut [Detection]) -> Result<()> {
        if self.models.options.refine_small {
            let side = img.width().max(img.height()) as f32;
            for d in found {
                if d.width.max(d.height) < 0.4 * side {
                    if let Some(r) = self.refine(img, d)? {
                        *d = r;
                    }
                }
            }
        }
        Ok(())
    }

    /// The full-range detector's faces in `img` (each small one re-detected as
    /// [`detect`](Self::detect) does), for a photo's last look; empty when there is no such
    /// detector ([`FaceModels::photo_full_range`]).
    pub(crate) fn detect_full_range(&mut self, img: &RgbImage) -> Result<Vec<Detection>> {
        if self.photo_full_range.is_none() {
            let Some(model) = self.models.photo_full_range() else {
                return Ok(Vec::new());
            };
            self.photo_full_range = Some(Detector::new(model)?);
        }
        let Some(full) = &mut self.photo_full_range else {
            return Ok(Vec::new());
        };
        let mut found = full.detect(img)?;
        self.refine_all(img, &mut found)?;
        Ok(found)
    }

    /// Runs the primary detector on a square crop 2.2x the box around `d`; returns the
    /// detection nearest the crop's centre, in frame coordinates.
    fn refine(&mut self, img: &RgbImage, d: &Detection) -> Result<Option<Detection>> {
        let c = d.center();
        let side = (2.2 * f64::from(d.width.max(d.height))).round().max(16.0) as u32;
        let x0 = (c.x - f64::from(side) / 2.0).round() as i64;
        let y0 = (c.y - f64::from(side) / 2.0).round() as i64;
        let crop = &mut self.crop;
        if crop.width() != side {
            *crop = RgbImage::new(side, side);
        }
        // Copy the part of the crop that lies inside the frame row by row; the rest is black.
        crop.fill(0);
        let (w, h) = (i64::from(img.width()), i64::from(img.height()));
        let (cx0, cx1) = (x0.max(0), (x0 + i64::from(side)).min(w));
        if cx0 < cx1 {
            let (src, dst) = (img.as_raw(), &mut **crop);
            for y in y0.max(0)..(y0 + i64::from(side)).min(h) {
                let s0 = ((y * w + cx0) * 3) as usize;
                let d0 = (((y - y0) * i64::from(side) + (cx0 - x0)) * 3) as usize;
                let n = ((cx1 - cx0) * 3) as usize;
                dst[d0..d0 + n].copy_from_slice(&src[s0..s0 + n]);
            }
        }
        let half = side as f32 / 2.0;
        let best = self
            .detector
            .detect(&self.crop)?
            .into_iter()
            .min_by(|a, b| {
                let da =
                    (a.x + a.width / 2.0 - half).powi(2) + (a.y + a.height / 2.0 - half).powi(2);
                let db =
                    (b.x + b.width / 2.0 - half).powi(2) + (b.y + b.height / 2.0 - half).powi(2);
                da.total_cmp(&db)
            });
        Ok(best.map(|r| Detection {
            score: d.score,
            ..r.translated(x0 as f32, y0 as f32)
        }))
    }

    /// Landmarks for a detection, rounded to pixels as dlib's pipeline does: the predictor on
    /// the mapped BlazeFace box, then (when configured) again on the rectangle dlib's detector
    /// would draw around those landmarks (averaged over shifted copies of it with
    /// `landmark_jitter`).
    pub fn landmarks(&self, img: &RgbImage, det: &Detection) -> Landmarks {
        let predictor = &self.models.predictor;
        let rect = self.models.box_mapping.apply(det);
        let first = predictor.predict(img, &rect).rounded();
        let Some(refit) = &self.models.landmark_refit else {
            return first;
        };
        let rect = refit.apply(&first);
        if self.models.options.landmark_jitter {
            predictor
                .predict_jittered(img, &rect, &landmarks::LANDMARK_JITTER)
                .rounded()
        } else {
            predictor.predict(img, &rect).rounded()
        }
    }

    /// Cuts the aligned chip for `landmarks` into the engine's chip buffer and returns it.
    pub fn align(&mut self, img: &RgbImage, landmarks: &Landmarks) -> &RgbImage {
        let placement = self.placement(landmarks);
        self.aligner.extract(img, &placement, &mut self.chip);
        &self.chip
    }

    /// Where the encoder's chip lies for `landmarks`.
    fn placement(&self, landmarks: &Landmarks) -> ChipPlacement {
        let spec = &self.models.encoder.spec;
        ChipPlacement::fit(landmarks, spec.chip_size, spec.chip_padding)
    }

    /// The mean embedding over the chip cut as each of [`CHIP_JITTER`] (each mirrored too when
    /// the engine flips).
    fn encode_jittered(&mut self, img: &RgbImage, landmarks: &Landmarks) -> Result<Embedding> {
        let mut each = Vec::with_capacity(CHIP_JITTER.len());
        for j in &CHIP_JITTER {
            self.align_jittered(img, landmarks, j);
            each.push(self.encode_chip()?);
        }
        Ok(Embedding::mean(&each).expect("CHIP_JITTER is not empty"))
    }

    /// [`align`](Self::align) with the chip's placement perturbed by `jitter`.
    pub fn align_jittered(
        &mut self,
        img: &RgbImage,
        landmarks: &Landmarks,
        jitter: &ChipJitter,
    ) -> &RgbImage {
        let placement = self.placement(landmarks).jittered(jitter);
        self.aligner.extract(img, &placement, &mut self.chip);
        &self.chip
    }

    /// Embeds the chip last made by [`align`](Self::align).
    pub fn encode_chip(&mut self) -> Result<Embedding> {
        let e = self.encoder.encode(&self.chip, false)?;
        if !self.flip {
            return Ok(e);
        }
        let m = self.encoder.encode(&self.chip, true)?;
        Ok(Embedding::mean([&e, &m]).expect("two embeddings"))
    }

    /// Landmarks, chip and embedding for one detection.
    pub fn describe(&mut self, img: &RgbImage, det: &Detection) -> Result<Face> {
        let landmarks = self.landmarks(img, det);
        self.describe_with_landmarks(img, *det, landmarks)
    }

    /// Chip and embedding from given landmarks (used to compare with dlib's own landmarks).
    pub fn describe_with_landmarks(
        &mut self,
        img: &RgbImage,
        detection: Detection,
        landmarks: Landmarks,
    ) -> Result<Face> {
        let embedding = if self.jitter {
            self.encode_jittered(img, &landmarks)?
        } else {
            self.align(img, &landmarks);
            self.encode_chip()?
        };
        Ok(Face {
            detection,
            landmarks,
            embedding,
        })
    }

    /// Every face in a photo, best detection first, in the photo's coordinates; when none is
    /// found the photo is searched again padded, then turned ([`photo`]). For photos
    /// (enrollment, `verify`, `eval`); the door's per-frame path calls [`detect`](Self::detect).
    pub fn faces(&mut self, img: &RgbImage) -> Result<Vec<Face>> {
        self.photo_faces(img)
    }
}
