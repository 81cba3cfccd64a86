//! The crate's error type. Every variant names the thing that went wrong and, where there is
//! one, the fix, because the people reading these messages are installers standing at a door.
//! (The process exit codes belong to the command line, beside `main`.)

use std::path::PathBuf;

/// Result alias used across the library.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a supported image (JPEG, PNG, GIF, PNM): {reason}")]
    UnsupportedImage { path: PathBuf, reason: String },

    #[error("{path}: image is corrupt or truncated: {reason}")]
    CorruptImage { path: PathBuf, reason: String },

    /// The decoder refused to allocate within the limits (a decompression bomb or a huge file).
    #[error(
        "{path}: image is corrupt or truncated: exceeds decoding limits ({reason}); scale it down"
    )]
    DecodeLimits { path: PathBuf, reason: String },

    #[error(
        "{path}: image is {width}x{height}, larger than the limit of {limit} pixels a side; \
         scale it down before use"
    )]
    ImageTooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u32,
    },

    #[error("{path}: no face found; use a photo where the face is frontal, lit and at least ~80 px wide")]
    NoFace { path: PathBuf },

    #[error("model manifest {path}: {reason}")]
    Manifest { path: PathBuf, reason: String },

    #[error(
        "model file {path} has sha256 {actual} but the manifest expects {expected}: \
         the file is corrupt or from another build; restore it from the release or rebuild \
         with tools/models/build.sh"
    )]
    ModelChecksum {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    #[error("model {path}: {reason}")]
    Model { path: PathBuf, reason: String },

    #[error("inference failed in {stage}: {reason}")]
    Inference { stage: &'static str, reason: String },

    #[error("{path}:{line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },

    #[error("{0}")]
    Invalid(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
