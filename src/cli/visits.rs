//! `facegate eval-enroll` and `facegate eval-visits` (issue 13 items 5 and 6): thin layers over
//! [`crate::eval_enroll`].

use crate::error::Result;
use crate::eval_enroll::{dataset, enroll, visits};
use crate::face::{FaceModels, ModelOptions};
use clap::Args;
use std::path::PathBuf;

/// The sets and how to embed them, shared by both commands.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// Dev sets: an identities TSV (`image<TAB>identity`, images under `images/` beside it),
    /// a directory of one folder per person, or a directory of `<person>.<anything>` files
    pub sets: Vec<PathBuf>,
    /// Random draws (mean ± sd over them)
    #[arg(long, default_value_t = 10)]
    pub draws: usize,
    /// Seed of the draws
    #[arg(long, default_value_t = 13)]
    pub seed: u64,
    /// Worker threads for embedding [default: all cores]
    #[arg(long)]
    pub threads: Option<usize>,
    /// Print JSON instead of tables
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct EvalEnrollArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Photo counts to enroll each person from
    #[arg(long, value_delimiter = ',', default_values_t = [1, 3, 5])]
    pub photos: Vec<usize>,
}

#[derive(Args, Debug)]
pub struct EvalVisitsArgs {
    #[command(flatten)]
    pub set: SetArgs,
    /// Photos each enrolled person is enrolled from
    #[arg(long, default_value_t = 1)]
    pub enroll: usize,
    /// Frames per visit (N of K of N)
    #[arg(long, default_value_t = 5)]
    pub frames: usize,
    /// Agreeing frames needed (K of K of N); fusion decides from the K-th frame on
    #[arg(long, default_value_t = 3)]
    pub k: usize,
    /// Margin to the runner-up person, for both rules
    #[arg(long, default_value_t = 0.05)]
    pub min_margin: f32,
    /// Visits per person and draw
    #[arg(long, default_value_t = 50)]
    pub visits: usize,
    /// Target FAR of the leave-one-set-out threshold choice
    #[arg(long, default_value_t = 1e-3)]
    pub choose_far: f64,
    /// Also report every rule at these visit thresholds (e.g. the door's per-frame 0.47 and a
    /// fused threshold)
    #[arg(long, value_delimiter = ',', default_values_t = [0.40, 0.43, 0.47])]
    pub at: Vec<f32>,
    /// Instead of dev sets: replay the configuration's recorded clip (e.g. config/demo.toml)
    /// under both rules, with its gallery, policy and liveness, and print the decisions
    #[arg(long, value_name = "FILE")]
    pub clip_config: Option<PathBuf>,
}

const FARS: [f64; 3] = [1e-2, 1e-3, 1e-4];

fn embed_all(opts: &ModelOptions, a: &SetArgs) -> Result<Vec<dataset::Embedded>> {
    if a.sets.is_empty() {
        return Err(crate::Error::Invalid(
            "no dev set given: name an identities TSV or a directory of photos per person".into(),
        ));
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let models = FaceModels::load(opts)?;
    eprintln!(
        "detector {}, encoder {}, flip {}",
        opts.detector, opts.encoder, opts.flip_average
    );
    a.sets
        .iter()
        .map(|p| dataset::embed(&models, &dataset::Dataset::load(p)?, threads))
        .collect()
}

/// `facegate eval-enroll`.
pub(super) fn eval_enroll(opts: &ModelOptions, args: EvalEnrollArgs) -> Result<u8> {
    let sets = embed_all(opts, &args.set)?;
    let eo = enroll::EnrollOptions {
        photos: args.photos.clone(),
        draws: args.set.draws,
        fars: FARS.to_vec(),
        seed: args.set.seed,
    };
    let reports: Vec<_> = sets.iter().map(|s| enroll::evaluate(s, &eo)).collect();
    if args.set.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).expect("serialisable")
        );
    } else {
        for r in &reports {
            print!("{r}");
        }
    }
    Ok(0)
}

/// `facegate eval-visits`.
pub(super) fn eval_visits(opts: &ModelOptions, args: EvalVisitsArgs) -> Result<u8> {
    if let Some(cfg) = &args.clip_config {
        return clip(cfg);
    }
    let sets = embed_all(opts, &args.set)?;
    let vo = visits::VisitOptions {
        enroll: args.enroll,
        frames: args.frames,
        k: args.k,
        min_margin: args.min_margin,
        visits: args.visits,
        draws: args.set.draws,
        fars: FARS.to_vec(),
        seed: args.set.seed,
    };
    let reports: Vec<_> = sets.iter().map(|s| visits::evaluate(s, &vo)).collect();
    let held = visits::leave_one_set_out(&reports, args.choose_far);
    let pooled = visits::pooled_threshold(&reports, args.choose_far);
    if args.set.json {
        let v = serde_json::json!({ "sets": reports, "leave_one_set_out": held, "pooled": pooled });
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("serialisable")
        );
        return Ok(0);
    }
    for r in &reports {
        print!("{r}");
    }
    println!(
        "leave-one-set-out: threshold for FAR {:.0e} on the other sets, applied to the held-out set",
        args.choose_far
    );
    for h in &held {
        println!(
            "  {:<18} {:<16} threshold {:.3}: FAR {:.4}, TAR {:.2}%",
            h.rule.name(),
            h.set,
            h.threshold,
            h.far,
            h.tar * 100.0
        );
    }
    for &t in &args.at {
        println!("  at threshold {t:.3}:");
        for rule in visits::VisitRule::ALL {
            for r in &reports {
                let (tar, far) = visits::at_threshold(r, rule, t);
                println!(
                    "    {:<18} {:<16} TAR {:.2}%, FAR {:.5}",
                    rule.name(),
                    r.set,
                    tar * 100.0,
                    far
                );
            }
        }
    }
    for (rule, t) in &pooled {
        let Some(t) = t else { continue };
        println!("  {:<18} all sets pooled: threshold {t:.3}", rule.name());
        for r in &reports {
            let (tar, far) = visits::at_threshold(r, *rule, *t);
            println!("    {:<16} TAR {:.2}%, FAR {:.4}", r.set, tar * 100.0, far);
        }
    }
    Ok(0)
}

/// `facegate eval-visits --clip-config FILE`: the configuration's replay clip under K of N and
/// under fusion (its own models, gallery, policy and liveness).
fn clip(path: &std::path::Path) -> Result<u8> {
    use crate::config::{CameraSource, Config};
    use crate::policy::VisitRule;
    let cfg = Config::load(path)?;
    let CameraSource::Replay { dir, .. } = &cfg.camera.source else {
        return Err(crate::Error::Invalid(format!(
            "{}: [camera] source must be \"replay\" for --clip-config",
            path.display()
        )));
    };
    let models = FaceModels::load(&cfg.model_options())?;
    let gallery = crate::assemble::enrol_from_config(&cfg, &models)?;
    let mut engine = models.engine()?;
    for rule in [VisitRule::KOfN, VisitRule::Fusion] {
        let settings = crate::policy::PolicySettings {
            rule,
            ..cfg.policy_settings()
        };
        let mut live = crate::assemble::liveness_check(&cfg, &models)?;
        let out = visits::replay_clip(
            &mut engine,
            &gallery,
            &settings,
            live.as_mut(),
            dir,
            cfg.camera.fps,
        )?;
        println!("{rule:?} on {} (liveness {}):", dir.display(), live.name());
        for d in &out {
            println!(
                "  frame {:3}: {}",
                d.frame,
                serde_json::to_string(&d.decision).expect("serialisable")
            );
        }
    }
    Ok(0)
}
