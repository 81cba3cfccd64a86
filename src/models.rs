//! The model manifest (`models/models.toml`) and verified loading of model files.
//!
//! Every model file is checked against the sha256 in the manifest before tract sees it, and
//! its declared input shape is checked against what the code expects, so a swapped, truncated or
//! foreign model is refused at start with a message naming the file, never run.

use crate::error::{Error, Result};
use crate::fsutil::sha256_hex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Environment variable that overrides where models are looked up.
pub const MODELS_ENV: &str = "FACEGATE_MODELS";

#[derive(Debug, Clone, Deserialize)]
pub struct Manifest {
    pub schema: u32,
    pub encoder: BTreeMap<String, EncoderSpec>,
    pub detector: BTreeMap<String, DetectorSpec>,
    pub landmarks: LandmarkSpec,
    /// Presentation-attack detection models (absent in manifests older than issue 12).
    #[serde(default)]
    pub liveness: Option<LivenessManifest>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct EncoderSpec {
    pub file: String,
    pub sha256: String,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub output_name: String,
    pub embedding_size: usize,
    pub chip_size: u32,
    pub chip_padding: f64,
    pub threshold: f32,
    #[serde(default)]
    pub quantization: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct DetectorSpec {
    pub file: String,
    pub sha256: String,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub regressors_output: String,
    pub scores_output: String,
    pub num_anchors: usize,
    pub anchor_strides: Vec<u32>,
    pub anchors_per_cell: usize,
    pub min_score: f32,
    pub nms_iou: f32,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LandmarkSpec {
    pub file: String,
    pub sha256: String,
    pub num_points: usize,
    #[serde(default = "one")]
    pub box_scale: f64,
    #[serde(default)]
    pub box_offset_x: f64,
    #[serde(default)]
    pub box_offset_y: f64,
    /// Second landmark pass from the rectangle dlib would draw around the first pass's points
    /// ([`crate::face::landmarks::LandmarkRect`]); absent in older manifests: one pass.
    pub refit_side_eyes: Option<f64>,
    pub refit_side_nose: Option<f64>,
    pub refit_offset_x: Option<f64>,
    pub refit_offset_y: Option<f64>,
}

impl LandmarkSpec {
    /// The second-pass rectangle rule, when the manifest has all four coefficients.
    pub fn refit(&self) -> Option<crate::face::landmarks::LandmarkRect> {
        Some(crate::face::landmarks::LandmarkRect {
            side_eyes: self.refit_side_eyes?,
            side_nose: self.refit_side_nose?,
            offset_x: self.refit_offset_x?,
            offset_y: self.refit_offset_y?,
        })
    }
}

/// The `[liveness]` section: the default threshold on the live score and the named models
/// (`[liveness.v2]`, `[liveness.v1se]`).
#[derive(Debug, Clone, Deserialize)]
pub struct LivenessManifest {
    /// The models the door uses by default: `v2`, `both` or `v1se`.
    pub default: String,
    /// Threshold on v2's live probability (live when at least this).
    pub threshold: f32,
    /// Threshold on the mean live probability of v2 and v1se.
    pub threshold_both: f32,
    /// Threshold on v1se's live probability (v1se alone is not recommended).
    pub threshold_v1se: f32,
    #[serde(flatten)]
    pub models: BTreeMap<String, LivenessSpec>,
}

/// One liveness model (MiniFASNet): a crop `crop_scale` times the detector box, resized to the
/// input, in `channel_order`, `(x - mean) / std` on 0..255, softmax over the logits.
#[derive(Debug, Clone, Deserialize)]
pub struct LivenessSpec {
    pub file: String,
    pub sha256: String,
    pub input_name: String,
    pub input_shape: Vec<usize>,
    pub channel_order: String,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub output_name: String,
    pub live_class: usize,
    pub crop_scale: f64,
}

/// The liveness models' input shape this build feeds (NCHW).
pub const LIVENESS_INPUT_SHAPE: [usize; 4] = [1, 3, 80, 80];
/// The liveness models' output shape this build reads: logits of 3 classes.
pub const LIVENESS_OUTPUT_SHAPE: [usize; 2] = [1, 3];

fn one() -> f64 {
    1.0
}

/// A directory holding `models.toml` and the files it names.
#[derive(Debug, Clone)]
pub struct ModelDir {
    root: PathBuf,
    pub manifest: Manifest,
}

impl ModelDir {
    /// Where models are looked for when no directory is given: `$FACEGATE_MODELS`, then
    /// `./models`, then `/usr/share/facegate/models`, then the source tree's `models/`.
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(MODELS_ENV) {
            return PathBuf::from(p);
        }
        let candidates = [
            PathBuf::from("models"),
            PathBuf::from("/usr/share/facegate/models"),
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/models")),
        ];
        candidates
            .iter()
            .find(|p| p.join("models.toml").is_file())
            .cloned()
            .unwrap_or_else(|| candidates[2].clone())
    }

    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_path_buf();
        let path = root.join("models.toml");
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Manifest {
            path: path.clone(),
            reason: format!(
                "{e}; point --models (or {MODELS_ENV}) at the directory holding models.toml"
            ),
        })?;
        let manifest: Manifest = toml::from_str(&text).map_err(|e| Error::Manifest {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        if manifest.schema != 1 {
            return Err(Error::Manifest {
                path,
                reason: format!(
                    "schema {} is not supported by this facegate (expects 1)",
                    manifest.schema
                ),
            });
        }
        Ok(ModelDir { root, manifest })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn encoder(&self, name: &str) -> Result<&EncoderSpec> {
        self.manifest
            .encoder
            .get(name)
            .ok_or_else(|| Error::Manifest {
                path: self.root.join("models.toml"),
                reason: format!(
                    "no encoder named {name:?}; available: {}",
                    self.manifest
                        .encoder
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    pub fn detector(&self, name: &str) -> Result<&DetectorSpec> {
        self.manifest
            .detector
            .get(name)
            .ok_or_else(|| Error::Manifest {
                path: self.root.join("models.toml"),
                reason: format!(
                    "no detector named {name:?}; available: {}",
                    self.manifest
                        .detector
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The `[liveness]` section, or an error saying the models directory predates liveness.
    pub fn liveness_manifest(&self) -> Result<&LivenessManifest> {
        self.manifest
            .liveness
            .as_ref()
            .ok_or_else(|| Error::Manifest {
                path: self.root.join("models.toml"),
                reason: "no [liveness] section: these models predate presentation-attack \
                         detection; install the models directory of this release"
                    .into(),
            })
    }

    /// The liveness model `name` (`v2`, `v1se`), its declared interface checked against what
    /// this build feeds and reads ([`LIVENESS_INPUT_SHAPE`], BGR or RGB, a live class among 3).
    pub fn liveness(&self, name: &str) -> Result<&LivenessSpec> {
        let section = self.liveness_manifest()?;
        let spec = section.models.get(name).ok_or_else(|| Error::Manifest {
            path: self.root.join("models.toml"),
            reason: format!(
                "no liveness model named {name:?}; available: {}",
                section
                    .models
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })?;
        let bad = |what: String| Error::Model {
            path: self.root.join(&spec.file),
            reason: format!(
                "{what} in [liveness.{name}] of models.toml; this build expects input \
                 {LIVENESS_INPUT_SHAPE:?}, channel_order \"bgr\" or \"rgb\", live_class 0..3 and \
                 crop_scale >= 1: restore the release's models directory"
            ),
        };
        if spec.input_shape != LIVENESS_INPUT_SHAPE {
            return Err(bad(format!("input_shape {:?}", spec.input_shape)));
        }
        if !matches!(spec.channel_order.as_str(), "bgr" | "rgb") {
            return Err(bad(format!("channel_order {:?}", spec.channel_order)));
        }
        if spec.live_class >= LIVENESS_OUTPUT_SHAPE[1] {
            return Err(bad(format!("live_class {}", spec.live_class)));
        }
        if !(spec.crop_scale >= 1.0 && spec.crop_scale.is_finite()) {
            return Err(bad(format!("crop_scale {}", spec.crop_scale)));
        }
        if spec.std.iter().any(|s| !s.is_normal()) {
            return Err(bad(format!("std {:?}", spec.std)));
        }
        Ok(spec)
    }

    /// Reads a model file and checks its sha256 against the manifest.
    pub fn read_verified(&self, file: &str, sha256: &str) -> Result<Vec<u8>> {
        let path = self.root.join(file);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(sha256) {
            return Err(Error::ModelChecksum {
                path,
                expected: sha256.to_string(),
                actual,
            });
        }
        Ok(bytes)
    }

    pub fn path_of(&self, file: &str) -> PathBuf {
        self.root.join(file)
    }
}
