//! The face pipeline, one stage per file, each a type that carries only what the next needs:
//!
//! frame (RGB) -> [`detect`] `Detection` -> [`landmarks`] `Landmarks` -> [`align`] face chip
//! -> [`encode`] `Embedding` -> distance.
//!
//! [`FaceModels`] loads and optimises every model once and is shared (`Arc`) between workers;
//! each worker owns a [`FaceEngine`] holding its tract states and scratch buffers, so the frame
//! loop neither reloads models nor allocates once warmed up.

pub mod align;
pub mod detect;
pub mod encode;
pub mod geometry;
pub mod landmarks;
pub mod quality;
pub mod runtime;

use crate::error::Result;
use crate::models::ModelDir;
use align::{Aligner, ChipPlacement};
use detect::{BoxMapping, Detection, Detector, DetectorModel};
use encode::{Embedding, Encoder, EncoderModel, EMBEDDING_DIM};
use image::RgbImage;
use landmarks::{Landmarks, ShapePredictor};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which models to load and how to use them.
#[derive(Debug, Clone)]
pub struct ModelOptions {
    pub models_dir: PathBuf,
    /// `short_range` (faces within ~2 m, fast), `full_range` (up to ~5 m, ~3x slower), or
    /// `auto`: short-range first, full-range only when short-range finds nothing (photos
    /// with small faces).
    pub detector: String,
    /// `quantized` (default), `fp32`, or any other encoder the manifest lists.
    pub encoder: String,
    /// Average the embeddings of the chip and its mirror image (doubles encoder time).
    pub flip_average: bool,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            models_dir: ModelDir::default_path(),
            detector: "auto".into(),
            encoder: "quantized".into(),
            flip_average: false,
        }
    }
}

/// Every model, loaded, checked and optimised once.
pub struct FaceModels {
    pub dir: ModelDir,
    pub detector: Arc<DetectorModel>,
    /// Tried when `detector` finds no face (`auto`).
    pub fallback_detector: Option<Arc<DetectorModel>>,
    pub predictor: Arc<ShapePredictor>,
    pub encoder: Arc<EncoderModel>,
    pub box_mapping: BoxMapping,
    pub options: ModelOptions,
    /// Wall time spent loading and optimising.
    pub load_time: Duration,
}

impl FaceModels {
    pub fn load(options: &ModelOptions) -> Result<Arc<Self>> {
        let t0 = Instant::now();
        let dir = ModelDir::open(&options.models_dir)?;
        let (detector, fallback_detector) = if options.detector == "auto" {
            (
                DetectorModel::load(&dir, "short_range")?,
                Some(DetectorModel::load(&dir, "full_range")?),
            )
        } else {
            (DetectorModel::load(&dir, &options.detector)?, None)
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
            dir,
            detector,
            fallback_detector,
            predictor: Arc::new(predictor),
            encoder,
            options: options.clone(),
            load_time: t0.elapsed(),
        }))
    }

    /// The encoder's same-person distance threshold from the manifest.
    pub fn default_threshold(&self) -> f32 {
        self.encoder.spec.threshold
    }

    /// A new worker with its own inference states.
    pub fn engine(self: &Arc<Self>) -> Result<FaceEngine> {
        Ok(FaceEngine {
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
        })
    }
}

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
    detector: Detector,
    fallback: Option<Detector>,
    encoder: Encoder,
    aligner: Aligner,
    chip: RgbImage,
}

impl FaceEngine {
    pub fn models(&self) -> &Arc<FaceModels> {
        &self.models
    }

    pub fn detect(&mut self, img: &RgbImage) -> Result<Vec<Detection>> {
        let found = self.detector.detect(img)?;
        match &mut self.fallback {
            Some(fallback) if found.is_empty() => fallback.detect(img),
            _ => Ok(found),
        }
    }

    /// Landmarks for a detection, rounded to pixels as dlib's pipeline does.
    pub fn landmarks(&self, img: &RgbImage, det: &Detection) -> Landmarks {
        let rect = self.models.box_mapping.apply(det);
        self.models.predictor.predict(img, &rect).rounded()
    }

    /// Cuts the aligned chip for `landmarks` into the engine's chip buffer and returns it.
    pub fn align(&mut self, img: &RgbImage, landmarks: &Landmarks) -> &RgbImage {
        let spec = &self.models.encoder.spec;
        let placement = ChipPlacement::fit(landmarks, spec.chip_size, spec.chip_padding);
        self.aligner.extract(img, &placement, &mut self.chip);
        &self.chip
    }

    /// Embeds the chip last made by [`align`](Self::align).
    pub fn encode_chip(&mut self) -> Result<Embedding> {
        let e = self.encoder.encode(&self.chip, false)?;
        if !self.models.options.flip_average {
            return Ok(e);
        }
        let m = self.encoder.encode(&self.chip, true)?;
        let mut avg = [0.0f32; EMBEDDING_DIM];
        for (k, a) in avg.iter_mut().enumerate() {
            *a = (e.0[k] + m.0[k]) / 2.0;
        }
        Ok(Embedding(avg))
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
        self.align(img, &landmarks);
        let embedding = self.encode_chip()?;
        Ok(Face {
            detection,
            landmarks,
            embedding,
        })
    }

    /// Every face in the image, best detection first.
    pub fn faces(&mut self, img: &RgbImage) -> Result<Vec<Face>> {
        let dets = self.detect(img)?;
        dets.iter().map(|d| self.describe(img, d)).collect()
    }
}
