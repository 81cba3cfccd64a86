//! The command line: `main.rs` calls [`main`] here, and nothing else in the crate imports this
//! module (every part a command needs comes from [`crate::assemble`] or the library). One file
//! per command group, each a thin layer over the library so that it can be tested without a
//! shell:
//!
//! | file        | commands                                                         |
//! |-------------|------------------------------------------------------------------|
//! | `face.rs`   | `verify`, `embed`, `identify`                                    |
//! | `eval.rs`   | `eval`, `bench`                                                  |
//! | `run.rs`    | `run` (the door daemon)                                          |
//! | `lock.rs`   | `lock test` (the installer's wiring check), `lock safe`          |
//! | `enroll.rs` | `bundle keygen|sign|check`, `staff list|remove`, `enroll import` |
//! | `audit.rs`  | `audit verify`                                                   |
//! | `camera.rs` | `camera check` (the installer's view of the camera)                |

mod audit;
mod camera;
mod enroll;
mod eval;
mod face;
mod lock;
mod pad;
mod run;
mod visits;

use crate::error::{Error, Result};
use crate::face::{DetectorChoice, ModelOptions};
use crate::models::ModelDir;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

pub use audit::{audit_verify, AuditCommand};
pub use enroll::{staff_remove, BundleCommand, EnrollCommand, StaffCommand};
pub use eval::{BenchArgs, EvalArgs};
pub use lock::LockCommand;
pub use run::run_daemon;

/// Exit code of a clear "no": different people, no match, a rejected bundle, an altered log,
/// an interrupted lock test. Success is 0.
pub const EXIT_NO: u8 = 1;
/// Exit code of an error: unreadable input, no face, a bad configuration.
pub const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "facegate",
    version,
    about = "Face-unlock door: verify, identify, evaluate and benchmark faces",
    long_about = "facegate finds faces (BlazeFace), aligns them (dlib 5-point landmarks) and embeds them \
with a siamese encoder (dlib ResNet, int8) so that the distance between two embeddings says \
whether two photos show the same person.\n\n\
Exit codes: 0 = yes / success, 1 = no (different people, no match), 2 = error.",
    after_help = "Examples:\n  facegate verify alice1.jpg alice2.jpg\n  facegate embed staff/*.jpg > embeddings.jsonl\n  \
facegate identify visitor.jpg --gallery staff/\n  facegate eval --pairs pairs.tsv --root images/ --plot roc.png\n  \
facegate bench tests/fixtures/faces/*.jpg"
)]
pub struct Cli {
    #[command(flatten)]
    pub models: ModelArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Directory holding models.toml and the model files [default: $FACEGATE_MODELS, ./models]
    #[arg(long, global = true, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Encoder from the manifest: quantized (int8, default) or fp32
    #[arg(long, global = true, default_value = "quantized")]
    pub encoder: String,
    /// Detector: short_range (faces within ~2 m, fast; the door's default too), full_range (up
    /// to ~5 m) or auto (short-range, then full-range if no face: photos with small faces)
    #[arg(long, global = true, default_value_t = DetectorChoice::default())]
    pub detector: DetectorChoice,
    /// Average the embeddings of each face and its mirror image (twice the encoder time)
    #[arg(long, global = true)]
    pub flip: bool,
    /// Do not average enrollment photos' embeddings with their mirror images' (on by default)
    #[arg(long, global = true)]
    pub no_flip_enrolment: bool,
    /// Average every face's embedding over the chip and four copies shifted by 2% (five times
    /// the encoder time; enrollment photos do this by default)
    #[arg(long, global = true)]
    pub jitter: bool,
    /// Do not average enrollment photos' embeddings over jittered chips (on by default)
    #[arg(long, global = true)]
    pub no_jitter_enrolment: bool,
    /// Do not re-detect small faces on a crop around them (faster, less accurate on small faces)
    #[arg(long, global = true)]
    pub no_refine: bool,
    /// One landmark pass only (no second pass on the rectangle re-derived from the landmarks)
    #[arg(long, global = true)]
    pub no_landmark_refit: bool,
    /// In the second landmark pass, average the landmarks over the rectangle and four copies
    /// shifted by 5% of its side (closer to dlib's landmarks; not better on CelebA at FAR 1e-3)
    #[arg(long, global = true)]
    pub landmark_jitter: bool,
}

impl ModelArgs {
    pub fn options(&self) -> ModelOptions {
        ModelOptions {
            models_dir: self.models.clone().unwrap_or_else(ModelDir::default_path),
            detector: self.detector,
            encoder: self.encoder.clone(),
            flip_average: self.flip,
            flip_enrolment: !self.no_flip_enrolment,
            jitter_average: self.jitter,
            jitter_enrolment: !self.no_jitter_enrolment,
            refine_small: !self.no_refine,
            landmark_refit: !self.no_landmark_refit,
            landmark_jitter: self.landmark_jitter,
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Are two photos the same person? Prints the distance; exit 0 same, 1 different, 2 error
    Verify {
        a: PathBuf,
        b: PathBuf,
        /// Same person when the distance is below this [default: the model's, 0.6]
        #[arg(long)]
        threshold: Option<f32>,
    },
    /// Print the embedding of every face in each image, one JSON object per line
    Embed {
        #[arg(required = true)]
        images: Vec<PathBuf>,
    },
    /// Who is this? Match the largest face of IMAGE against a gallery of photos
    Identify {
        image: PathBuf,
        /// Directory of photos: one subdirectory per person (its name is the id), or files named ID.jpg
        #[arg(long)]
        gallery: PathBuf,
        #[arg(long)]
        threshold: Option<f32>,
    },
    /// Verification accuracy on a pairs protocol (LFW pairs.txt or a TSV)
    Eval(EvalArgs),
    /// Presentation-attack detection: the live score of every face in each image; exit 0 all
    /// live, 1 an attack or no face, 2 error
    Liveness(pad::LivenessArgs),
    /// Presentation-attack detection error rates (APCER, BPCER, DET curve) on live and attack folders
    EvalPad(pad::EvalPadArgs),
    /// Run the door: camera -> faces -> decision -> lock, until SIGINT/SIGTERM
    Run {
        /// Configuration file (see config/facegate.toml; config/demo.toml runs anywhere)
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Audit log tools
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Signed enrollment bundles (admin side): keygen, sign, check
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// The encrypted staff store: list, remove
    #[command(subcommand)]
    Staff(StaffCommand),
    /// Import a signed bundle into the store without the daemon
    #[command(subcommand)]
    Enroll(EnrollCommand),
    /// The door lock: test the relay wiring
    #[command(subcommand)]
    Lock(LockCommand),
    /// Per-stage timings of the door pipeline on real images
    Bench(BenchArgs),
    /// The door camera: check what it sees (installer's view)
    #[command(subcommand)]
    Camera(camera::CameraCommand),
    /// Enrollment from 1, 3, 5 photos per person: template rules compared on dev sets
    EvalEnroll(visits::EvalEnrollArgs),
    /// Simulated visits: per-frame K of N against fused embeddings, on dev sets
    EvalVisits(visits::EvalVisitsArgs),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

/// Runs a parsed command and returns its exit code.
pub fn run(cli: Cli) -> Result<u8> {
    let opts = cli.models.options();
    match cli.command {
        Command::Verify { a, b, threshold } => face::verify(&opts, &a, &b, threshold),
        Command::Embed { images } => face::embed(&opts, &images),
        Command::Identify {
            image,
            gallery,
            threshold,
        } => face::identify(&opts, &image, &gallery, threshold),
        Command::Eval(args) => eval::run_eval(&opts, args),
        Command::Liveness(args) => pad::liveness_command(&opts, &args),
        Command::EvalPad(args) => pad::eval_pad_command(&opts, &args),
        Command::Bench(args) => eval::bench(&opts, args),
        Command::EvalEnroll(args) => visits::eval_enroll(&opts, args),
        Command::EvalVisits(args) => visits::eval_visits(&opts, args),
        Command::Run { config } => run_daemon(&config),
        Command::Audit(cmd) => audit::run(cmd),
        Command::Bundle(cmd) => enroll::bundle(cmd, &opts),
        Command::Staff(cmd) => enroll::staff(cmd),
        Command::Enroll(cmd) => enroll::enroll(cmd),
        Command::Lock(cmd) => lock::run(cmd),
        Command::Camera(cmd) => camera::run(cmd),
    }
}

/// The single-writer lock on the state directories of `config` (issue 10 finding 11): the
/// CLI commands that write the audit log or the store refuse while the daemon (or another
/// such command) runs, naming it and the fix.
pub fn writer_lock(config: &Path, role: &str) -> Result<crate::statelock::StateLock> {
    let cfg = crate::config::Config::load(config)?;
    crate::statelock::StateLock::acquire(&cfg, role)
}

/// A flag that SIGINT and SIGTERM set: the daemon stops, a lock test relocks at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::Invalid(format!("cannot install the signal handler: {e}")))?;
    }
    Ok(stop)
}

/// Appends one record to the configuration's audit log; errors name `[audit]`.
fn audit_append(
    cfg: &crate::config::Config,
    event: crate::audit::Event,
    fields: serde_json::Value,
) -> Result<u64> {
    let mut log = crate::audit::AuditLog::open_for_config(cfg)
        .map_err(|e| Error::Invalid(format!("[audit] {e}")))?;
    log.append(event, fields)
        .map_err(|e| Error::Invalid(format!("[audit] {e}")))
}
