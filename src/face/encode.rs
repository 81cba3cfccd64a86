//! The siamese encoder: one network (dlib's ResNet face descriptor, trained with a pairwise
//! metric loss) maps an aligned 150x150 chip to a 128-D embedding whose Euclidean distance
//! means dissimilarity. Verification of a pair and enrollment both use this one network, so
//! adding a person is storing embeddings, never training.

use super::runtime::{load_plan, output_slice, Plan, Runner};
use crate::error::{Error, Result};
use crate::models::{EncoderSpec, ModelDir};
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Embedding length of the shipped encoder.
pub const EMBEDDING_DIM: usize = 128;

/// A face embedding (not normalised: the encoder's metric is plain L2).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Embedding(#[serde(with = "serde_arrays")] pub [f32; EMBEDDING_DIM]);

impl Embedding {
    pub fn distance(&self, o: &Embedding) -> f32 {
        squared_distance(&self.0, &o.0).sqrt()
    }

    /// The element-wise mean (the sum in order, then divided by the count); `None` for none.
    pub fn mean<'a>(all: impl IntoIterator<Item = &'a Embedding>) -> Option<Embedding> {
        let mut sum = [0.0f32; EMBEDDING_DIM];
        let mut n = 0u32;
        for e in all {
            for (s, v) in sum.iter_mut().zip(e.0) {
                *s += v;
            }
            n += 1;
        }
        (n > 0).then(|| Embedding(sum.map(|s| s / n as f32)))
    }
}

#[inline]
pub fn squared_distance(a: &[f32; EMBEDDING_DIM], b: &[f32; EMBEDDING_DIM]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without -ffast-math.
    let mut acc = [0.0f32; 8];
    for (ca, cb) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for k in 0..8 {
            let d = ca[k] - cb[k];
            acc[k] += d * d;
        }
    }
    acc.iter().sum()
}

mod serde_arrays {
    use super::EMBEDDING_DIM;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[f32; EMBEDDING_DIM], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; EMBEDDING_DIM], D::Error> {
        let v: Vec<f32> = Vec::deserialize(d)?;
        let n = v.len();
        v.try_into().map_err(|_| {
            serde::de::Error::custom(format!(
                "embedding has {n} values, expected {EMBEDDING_DIM}"
            ))
        })
    }
}

/// The loaded encoder: shared, immutable.
pub struct EncoderModel {
    plan: Plan,
    pub spec: EncoderSpec,
    /// sha256 of the model file: galleries are tagged with it.
    pub sha256: String,
    pub name: String,
}

impl EncoderModel {
    pub fn load(dir: &ModelDir, name: &str) -> Result<Arc<Self>> {
        let spec = dir.encoder(name)?.clone();
        let path = dir.path_of(&spec.file);
        let s = spec.chip_size as usize;
        if spec.input_shape != [1, 3, s, s] || spec.embedding_size != EMBEDDING_DIM {
            return Err(Error::Model {
                path,
                reason: format!(
                    "encoder input {:?} / embedding {} do not match this build ([1, 3, {s}, {s}] / {EMBEDDING_DIM})",
                    spec.input_shape, spec.embedding_size
                ),
            });
        }
        let bytes = dir.read_verified(&spec.file, &spec.sha256)?;
        let plan = load_plan(
            &bytes,
            &path,
            &spec.input_name,
            &spec.input_shape,
            &[&spec.output_name],
        )?;
        Ok(Arc::new(EncoderModel {
            plan,
            sha256: spec.sha256.to_ascii_lowercase(),
            spec,
            name: name.to_string(),
        }))
    }
}

/// An encoder for one worker thread.
pub struct Encoder {
    model: Arc<EncoderModel>,
    runner: Runner,
}

impl Encoder {
    pub fn new(model: Arc<EncoderModel>) -> Result<Self> {
        let runner = Runner::new(&model.plan, &model.spec.input_shape, "face encoding")?;
        Ok(Encoder { model, runner })
    }

    pub fn model(&self) -> &Arc<EncoderModel> {
        &self.model
    }

    /// Embeds one chip; with `mirrored`, the chip is flipped left-right first.
    pub fn encode(&mut self, chip: &RgbImage, mirrored: bool) -> Result<Embedding> {
        let spec = &self.model.spec;
        let s = spec.chip_size as usize;
        if chip.width() as usize != s || chip.height() as usize != s {
            return Err(Error::Invalid(format!(
                "face chip is {}x{}, the encoder needs {s}x{s}",
                chip.width(),
                chip.height()
            )));
        }
        let (mean, std) = (spec.mean, spec.std);
        let raw = chip.as_raw();
        let outputs = self.runner.run(|buf| {
            let plane = s * s;
            for y in 0..s {
                for x in 0..s {
                    let sx = if mirrored { s - 1 - x } else { x };
                    let p = (y * s + sx) * 3;
                    for c in 0..3 {
                        buf[c * plane + y * s + x] = (f32::from(raw[p + c]) - mean[c]) / std[c];
                    }
                }
            }
        })?;
        let out = output_slice(&outputs[0], "face encoding")?;
        let arr: [f32; EMBEDDING_DIM] = out.try_into().map_err(|_| Error::Inference {
            stage: "face encoding",
            reason: format!(
                "encoder gave {} values, expected {EMBEDDING_DIM}",
                out.len()
            ),
        })?;
        Ok(Embedding(arr))
    }
}
