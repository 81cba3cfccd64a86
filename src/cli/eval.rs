//! `facegate eval` (verification accuracy on a pairs protocol) and `facegate bench` (per-stage
//! timings of the door's per-frame path).

use crate::bench::{self, BenchOptions};
use crate::error::{Error, Result};
use crate::eval::{self, EvalOptions, Protocol, Report};
use crate::face::pick::FacePick;
use crate::face::{FaceModels, ModelOptions};
use clap::Args;
use std::path::{Path, PathBuf};

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
    /// Which face of a photo with several is used: largest (the door's rule) or centre (the
    /// one nearest the image centre, ties by size) [default: centre for --lfw-pairs, whose
    /// protocol centres its subject; largest for --pairs]
    #[arg(long)]
    pub pick: Option<FacePick>,
    /// Score as deployed: each pair's first image embedded as an enrollment photo (averaged
    /// over its mirror image and shifted chips unless --no-flip-enrolment /
    /// --no-jitter-enrolment), the second as the door's probe. Without it both sides are
    /// embedded as probes (the symmetric protocol, comparable with other pipelines)
    #[arg(long)]
    pub as_deployed: bool,
    /// Print JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Photos to turn into camera frames [default: tests/fixtures/faces/*]
    pub images: Vec<PathBuf>,
    /// Passes over the frames
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
    /// Camera frame size WIDTHxHEIGHT
    #[arg(long, default_value = "640x480", value_parser = parse_size)]
    pub frame: (u32, u32),
    /// Embeddings in the gallery for the 1:N match stage
    #[arg(long, default_value_t = 10_000)]
    pub gallery_size: usize,
    /// Time the pipeline without presentation-attack detection (the door runs it on matched
    /// faces by default)
    #[arg(long)]
    pub no_liveness: bool,
    /// Print JSON instead of a table
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

/// `facegate eval`: every encoder asked for on one protocol, as text or JSON, and the ROC plot.
pub(super) fn run_eval(opts: &ModelOptions, args: EvalArgs) -> Result<u8> {
    let (pairs_file, protocol) = read_protocol(&args)?;
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
        pick: args.pick.unwrap_or(if args.lfw_pairs.is_some() {
            FacePick::Centre
        } else {
            FacePick::Largest
        }),
        all_impostors: args.all_impostors,
        fars: vec![1e-2, 1e-3, 1e-4],
        as_deployed: args.as_deployed,
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
        plot_roc(plot, pairs_file, protocol.pairs.len(), &reports)?;
    }
    Ok(0)
}

/// The pairs protocol `args` name (LFW pairs.txt or a TSV, with its image root), in 10 folds
/// when the file has none.
fn read_protocol(args: &EvalArgs) -> Result<(&Path, Protocol)> {
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
    Ok((pairs_file, protocol))
}

/// Writes the ROC curve of every report to `plot`.
fn plot_roc(plot: &Path, pairs_file: &Path, pairs: usize, reports: &[Report]) -> Result<()> {
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
        "ROC: {} ({pairs} pairs)",
        pairs_file.file_name().unwrap_or_default().to_string_lossy(),
    );
    crate::plot::roc_png(plot, &title, &curves)?;
    eprintln!("ROC curve written to {}", plot.display());
    Ok(())
}

/// `facegate bench`: per-stage timings of the door's per-frame path, as a table or JSON.
pub(super) fn bench(opts: &ModelOptions, args: BenchArgs) -> Result<u8> {
    let images = if args.images.is_empty() {
        default_bench_images()?
    } else {
        args.images
    };
    let report = bench::run(
        opts,
        &BenchOptions {
            images,
            runs: args.runs,
            frame: args.frame,
            gallery_size: args.gallery_size,
            policy: Default::default(),
            liveness: !args.no_liveness,
        },
    )?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialisable")
        );
    } else {
        print!("{report}");
    }
    Ok(0)
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
