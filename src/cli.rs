//! The command line. `main` only calls [`main`] here; every command is a thin layer over the
//! library so that it can be tested without a shell.

use crate::assemble::{embed_one, gallery_from_dir};
use crate::bench::{self, BenchOptions};
use crate::error::{Error, Result};
use crate::eval::{self, EvalOptions, Protocol};
use crate::face::{FaceModels, ModelOptions};
use crate::imageio::load_rgb;
use crate::models::ModelDir;
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

pub use crate::error::{EXIT_ERROR, EXIT_NO};

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
    /// Detector: auto (short-range, then full-range if no face), short_range (faces within
    /// ~2 m, fast) or full_range (up to ~5 m)
    #[arg(long, global = true, default_value = "auto")]
    pub detector: String,
    /// Average the embeddings of each face and its mirror image (twice the encoder time)
    #[arg(long, global = true)]
    pub flip: bool,
    /// Do not re-detect small faces on a crop around them (faster, less accurate on small faces)
    #[arg(long, global = true)]
    pub no_refine: bool,
}

impl ModelArgs {
    pub fn options(&self) -> ModelOptions {
        ModelOptions {
            models_dir: self.models.clone().unwrap_or_else(ModelDir::default_path),
            detector: self.detector.clone(),
            encoder: self.encoder.clone(),
            flip_average: self.flip,
            refine_small: !self.no_refine,
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
    Liveness(crate::pad::LivenessArgs),
    /// Presentation-attack detection error rates (APCER, BPCER, DET curve) on live and attack folders
    EvalPad(crate::pad::EvalPadArgs),
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
    Bench {
        /// Photos to turn into camera frames [default: tests/fixtures/faces/*]
        images: Vec<PathBuf>,
        /// Passes over the frames
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Camera frame size WIDTHxHEIGHT
        #[arg(long, default_value = "640x480", value_parser = parse_size)]
        frame: (u32, u32),
        /// Embeddings in the gallery for the 1:N match stage
        #[arg(long, default_value_t = 10_000)]
        gallery_size: usize,
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum BundleCommand {
    /// Make an admin signing key pair: DIR/facegate.key (0600) and DIR/facegate.pub
    Keygen {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Fill the photo hashes in DIR/manifest.toml and write DIR/manifest.sig
    Sign {
        dir: PathBuf,
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
    /// Run every check the door runs on the bundle in DIR; exit 0 ok, 1 rejected, 2 error
    Check {
        dir: PathBuf,
        /// Admin public key (a .pub file or the base64 line); repeatable
        #[arg(long, required = true, value_name = "KEY")]
        pubkey: Vec<String>,
        /// The door's site name (checked against the manifest's site)
        #[arg(long)]
        site: Option<String>,
        /// The bundle version the door holds (the bundle must be newer)
        #[arg(long, default_value_t = 0)]
        current_version: u64,
        /// Also run face detection on every photo (exactly one usable face each)
        #[arg(long)]
        faces: bool,
        /// Print enrollment time per photo (implies --faces)
        #[arg(long)]
        timing: bool,
        /// Smallest eye distance in pixels for an enrollment photo
        #[arg(long, default_value_t = crate::enroll::import::MIN_EYE_DISTANCE_PX)]
        min_eye_px: f32,
    },
}

#[derive(Subcommand, Debug)]
pub enum StaffCommand {
    /// List the people in the encrypted store
    List {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Delete a person's templates: rewrites the store without them (audited)
    Remove {
        id: String,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum EnrollCommand {
    /// Import a signed bundle once into the configured store (stop the daemon first)
    Import {
        dir: PathBuf,
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum LockCommand {
    /// Pulse the configured relay once, as an unlock would, and relock (stop the daemon first;
    /// audited)
    Test {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Drive the configured relay to its safe (de-energised) level and nothing else: no models,
    /// no store, no camera. The unit runs it after every exit of the daemon (ExecStopPost=);
    /// audited when the audit log can be written
    Safe {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Check the hash chain of an audit log, and with --config (or --seal and --key) its head
    /// against the sealed state, which shows removed final records and a deleted log;
    /// exit 0 intact, 1 altered, 2 error
    Verify {
        log: PathBuf,
        /// The door's configuration: its [gallery] store's seal and device key
        #[arg(long, value_name = "FILE", conflicts_with_all = ["seal", "key"])]
        config: Option<PathBuf>,
        /// The seal file (`<store>.seal`), e.g. on a copy of the SD card
        #[arg(long, value_name = "FILE", requires = "key")]
        seal: Option<PathBuf>,
        /// The device key that authenticates the seal
        #[arg(long, value_name = "FILE", requires = "seal")]
        key: Option<PathBuf>,
    },
}

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// LFW-format pairs.txt (images at ROOT/name/name_NNNN.jpg)
    #[arg(long, conflicts_with = "pairs", required_unless_present = "pairs")]
    pub lfw_pairs: Option<PathBuf>,
    /// TSV of `image_a <TAB> image_b <TAB> same(1/0)`, paths relative to --root
    #[arg(long)]
    pub pairs: Option<PathBuf>,
    /// Image root [default: the pairs file's directory; for a TSV also ROOT/images if present]
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// TSV `image <TAB> identity`, enabling --all-impostors for a TSV protocol
    #[arg(long)]
    pub identities: Option<PathBuf>,
    /// Use every cross-identity pair of images as impostors (for FAR down to 1e-4 and below)
    #[arg(long)]
    pub all_impostors: bool,
    /// Encoders to evaluate side by side (comma-separated) [default: --encoder]
    #[arg(long, value_delimiter = ',')]
    pub encoders: Vec<String>,
    /// Write the ROC curve(s) to this PNG
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Worker threads [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

fn parse_size(s: &str) -> std::result::Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("{s:?} is not WIDTHxHEIGHT"))?;
    let p = |v: &str| {
        v.parse::<u32>()
            .map_err(|_| format!("{s:?} is not WIDTHxHEIGHT"))
    };
    Ok((p(w)?, p(h)?))
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
        Command::Verify { a, b, threshold } => verify(&opts, &a, &b, threshold),
        Command::Embed { images } => embed(&opts, &images),
        Command::Identify {
            image,
            gallery,
            threshold,
        } => identify(&opts, &image, &gallery, threshold),
        Command::Eval(args) => run_eval(&opts, args),
        Command::Liveness(args) => crate::pad::liveness_command(&opts, &args),
        Command::EvalPad(args) => crate::pad::eval_pad_command(&opts, &args),
        Command::Run { config } => run_daemon(&config),
        Command::Audit(AuditCommand::Verify {
            log,
            config,
            seal,
            key,
        }) => audit_verify(&log, config.as_deref(), seal.zip(key)),
        Command::Bundle(BundleCommand::Keygen { out }) => crate::enroll::commands::keygen(&out),
        Command::Bundle(BundleCommand::Sign { dir, key }) => {
            crate::enroll::commands::sign(&dir, &key)
        }
        Command::Bundle(BundleCommand::Check {
            dir,
            pubkey,
            site,
            current_version,
            faces,
            timing,
            min_eye_px,
        }) => crate::enroll::commands::check(
            &dir,
            &opts,
            &crate::enroll::commands::CheckOptions {
                pubkeys: &pubkey,
                site,
                current_version,
                faces: faces || timing,
                timing,
                min_eye_distance_px: min_eye_px,
            },
        ),
        Command::Staff(StaffCommand::List { config }) => {
            crate::enroll::commands::staff_list(&config)
        }
        Command::Staff(StaffCommand::Remove { id, config }) => {
            let _lock = writer_lock(&config, "staff remove")?;
            crate::enroll::commands::staff_remove(&config, &id)
        }
        Command::Enroll(EnrollCommand::Import { dir, config }) => {
            let _lock = writer_lock(&config, "enroll import")?;
            crate::enroll::commands::import(&config, &dir)
        }
        Command::Lock(LockCommand::Test { config }) => {
            let _lock = writer_lock(&config, "lock test")?;
            lock_test(&config)
        }
        Command::Lock(LockCommand::Safe { config }) => lock_safe(&config),
        Command::Bench {
            images,
            runs,
            frame,
            gallery_size,
            json,
        } => {
            let images = if images.is_empty() {
                default_bench_images()?
            } else {
                images
            };
            let report = bench::run(
                &opts,
                &BenchOptions {
                    images,
                    runs,
                    frame,
                    gallery_size,
                    policy: Default::default(),
                },
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).expect("serialisable")
                );
            } else {
                print!("{report}");
            }
            Ok(0)
        }
    }
}

/// The single-writer lock on the state directories of `config` (issue 10 finding 11): the
/// CLI commands that write the audit log or the store refuse while the daemon (or another
/// such command) runs, naming it and the fix.
pub fn writer_lock(config: &Path, role: &str) -> Result<crate::statelock::StateLock> {
    let cfg = crate::config::Config::load(config)?;
    crate::statelock::StateLock::acquire(&cfg, role)
}

/// `facegate lock safe`: the relay to its safe level, nothing else (the unit's ExecStopPost=).
pub fn lock_safe(config: &Path) -> Result<u8> {
    let cfg = crate::config::Config::load(config)?;
    let r = crate::door::wiring_check::drive_safe(&cfg)?;
    println!(
        "lock safe: {} de-energised ({})",
        r.output,
        crate::door::wiring_check::describe_safe_state(&cfg)
    );
    match &r.audit {
        Ok(seq) => println!("audited: record {seq} in {}", cfg.audit.path.display()),
        Err(e) => eprintln!("warning: lock safe: {e}"),
    }
    Ok(0)
}

/// `facegate run`: the door daemon.
pub fn run_daemon(config: &Path) -> Result<u8> {
    let cfg = crate::config::Config::load(config)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone())
            .map_err(|e| Error::Invalid(format!("cannot install the signal handler: {e}")))?;
    }
    let mut daemon = crate::daemon::Daemon::from_config(cfg)?;
    let summary = daemon.run(&stop)?;
    log::info!(
        "stopped after {} frames: {} unlocks, {} denials, {} camera losses",
        summary.frames,
        summary.unlocks.len(),
        summary.denials,
        summary.camera_losses
    );
    Ok(0)
}

/// `facegate lock test`: the installer's wiring check.
pub fn lock_test(config: &Path) -> Result<u8> {
    use crate::door::wiring_check;
    let cfg = crate::config::Config::load(config)?;
    println!("lock test: {}", wiring_check::describe_safe_state(&cfg));
    println!(
        "sending one unlock pulse of {} ms; watch the relay and the door",
        cfg.lock.unlock_ms
    );
    let r = wiring_check::pulse_once(&cfg)?;
    println!("output: {}", r.output);
    println!("events: {}", r.events.join(", "));
    if r.interrupted {
        println!(
            "interrupted: relocked after {} ms; the relay is at the safe state",
            r.unlocked_for.as_millis()
        );
        return Ok(EXIT_NO);
    }
    println!(
        "OK: unlocked for {} ms (configured {} ms), relocked, and the relay is now de-energised \
         (the door's safe state). If the door did not open exactly once, active_low or safe_state \
         in [lock] does not match the wiring.",
        r.unlocked_for.as_millis(),
        r.pulse.as_millis()
    );
    Ok(0)
}

/// `facegate audit verify LOG [--config FILE | --seal FILE --key FILE]`.
pub fn audit_verify(
    log: &Path,
    config: Option<&Path>,
    seal: Option<(PathBuf, PathBuf)>,
) -> Result<u8> {
    let seal = match (config, seal) {
        (Some(c), _) => {
            let cfg = crate::config::Config::load(c)?;
            match crate::seal::SealPaths::of(&cfg) {
                Some(p) => Some((p.seal, p.key)),
                None => {
                    println!(
                        "{}: {} has no [gallery] store, so the log is not sealed",
                        log.display(),
                        c.display()
                    );
                    None
                }
            }
        }
        (None, s) => s,
    };
    let (text, tampered) =
        crate::audit::check_log(log, seal.as_ref().map(|(s, k)| (s.as_path(), k.as_path())))
            .map_err(|e| Error::Invalid(e.to_string()))?;
    print!("{text}");
    Ok(if tampered { EXIT_NO } else { 0 })
}

fn default_bench_images() -> Result<Vec<PathBuf>> {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/faces"));
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .is_some_and(|x| matches!(x.to_str(), Some("jpg" | "jpeg" | "png")))
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The largest face of one photo, or a "no face" error naming the file.
pub fn verify(opts: &ModelOptions, a: &Path, b: &Path, threshold: Option<f32>) -> Result<u8> {
    let models = FaceModels::load(opts)?;
    let mut engine = models.engine()?;
    let fa = embed_one(&mut engine, a)?;
    let fb = embed_one(&mut engine, b)?;
    let t = threshold.unwrap_or_else(|| models.default_threshold());
    let d = fa.embedding.distance(&fb.embedding);
    let same = d < t;
    println!(
        "distance {d:.4} (threshold {t:.3}): {}",
        if same {
            "same person"
        } else {
            "different people"
        }
    );
    Ok(if same { 0 } else { EXIT_NO })
}

pub fn embed(opts: &ModelOptions, images: &[PathBuf]) -> Result<u8> {
    let models = FaceModels::load(opts)?;
    let mut engine = models.engine()?;
    let mut failed = false;
    for p in images {
        let result = load_rgb(p).and_then(|img| engine.faces(&img));
        let line = match result {
            Ok(faces) => serde_json::json!({
                "image": p,
                "encoder": models.encoder.name,
                "encoder_sha256": models.encoder.sha256,
                "faces": faces,
            }),
            Err(e) => {
                failed = true;
                eprintln!("error: {e}");
                serde_json::json!({ "image": p, "error": e.to_string() })
            }
        };
        println!("{line}");
    }
    Ok(if failed { EXIT_ERROR } else { 0 })
}

pub fn identify(
    opts: &ModelOptions,
    image: &Path,
    gallery: &Path,
    threshold: Option<f32>,
) -> Result<u8> {
    let models = FaceModels::load(opts)?;
    // The gallery photos pass the enrollment rule with the door's default minimum eye distance.
    let min_eye = crate::door::policy::PolicySettings::default().min_eye_distance_px;
    let g = gallery_from_dir(&models, gallery, min_eye)?;
    let mut engine = models.engine()?;
    let face = embed_one(&mut engine, image)?;
    let t = threshold.unwrap_or_else(|| models.default_threshold());
    let m = g.best_match(&face.embedding).expect("gallery is not empty");
    let runner = m
        .runner_up
        .as_ref()
        .map(|(id, d)| format!(", runner-up {id} at {d:.4}"))
        .unwrap_or_default();
    if m.distance < t {
        println!(
            "{} (distance {:.4}, threshold {t:.3}{runner})",
            m.id, m.distance
        );
        Ok(0)
    } else {
        println!(
            "no match: nearest is {} at {:.4}, threshold {t:.3}{runner}",
            m.id, m.distance
        );
        Ok(EXIT_NO)
    }
}

fn run_eval(opts: &ModelOptions, args: EvalArgs) -> Result<u8> {
    let pairs_file = args
        .lfw_pairs
        .as_ref()
        .or(args.pairs.as_ref())
        .expect("clap requires one");
    let parent = pairs_file.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut protocol: Protocol = if let Some(p) = &args.lfw_pairs {
        eval::read_lfw_pairs(p, &args.root.clone().unwrap_or(parent))?
    } else {
        let root = args.root.clone().unwrap_or_else(|| {
            let images = parent.join("images");
            if images.is_dir() {
                images
            } else {
                parent.clone()
            }
        });
        let mut p = eval::read_tsv_pairs(pairs_file, &root)?;
        if let Some(ids) = &args.identities {
            p.identities = eval::read_identities(ids, &root)?;
        }
        p
    };
    if protocol.folds < 2 {
        protocol.folds = 10;
        for (i, p) in protocol.pairs.iter_mut().enumerate() {
            p.fold = i % 10;
        }
    }
    let encoders = if args.encoders.is_empty() {
        vec![opts.encoder.clone()]
    } else {
        args.encoders.clone()
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let eval_opts = EvalOptions {
        threads,
        all_impostors: args.all_impostors,
        fars: vec![1e-2, 1e-3, 1e-4],
    };
    let mut reports = Vec::new();
    for enc in encoders {
        let models = FaceModels::load(&ModelOptions {
            encoder: enc,
            ..opts.clone()
        })?;
        let r = eval::evaluate(&models, &protocol, &eval_opts)?;
        if !args.json {
            print!("{r}");
        }
        reports.push(r);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("serialisable")
        );
    }
    if let Some(plot) = &args.plot {
        let curves: Vec<(String, Vec<_>)> = reports
            .iter()
            .map(|r| {
                (
                    format!(
                        "{} (AUC {:.4}, EER {:.2}%)",
                        r.encoder,
                        r.auc,
                        r.eer * 100.0
                    ),
                    r.roc.clone(),
                )
            })
            .collect();
        let title = format!(
            "ROC: {} ({} pairs)",
            pairs_file.file_name().unwrap_or_default().to_string_lossy(),
            protocol.pairs.len()
        );
        crate::plot::roc_png(plot, &title, &curves)?;
        eprintln!("ROC curve written to {}", plot.display());
    }
    Ok(0)
}
