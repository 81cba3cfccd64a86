//! `facegate eval`: verification accuracy on a pairs protocol.
//!
//! Reads LFW's `pairs.txt` (folds of same / different lines) with an image root, or a TSV of
//! `image_a  image_b  same`. Every distinct image is embedded once (in parallel, one engine
//! per worker) from the face `--pick` chooses (the one nearest the centre for LFW, whose
//! protocol centres its subject; the largest, as the door, for a TSV); a photo where no face is
//! found is searched again padded and turned ([`crate::face::photo`]); images where still no
//! face is found are counted and listed, never dropped silently.

use crate::error::{Error, Result};
use crate::face::encode::Embedding;
use crate::face::pick::FacePick;
use crate::face::FaceModels;
use crate::imageio::load_rgb;
use crate::metrics::{self, KFold, RocPoint};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone, PartialEq)]
pub struct Pair {
    pub a: PathBuf,
    pub b: PathBuf,
    pub same: bool,
    pub fold: usize,
}

/// A verification protocol: pairs, their folds, and (when known) each image's identity.
#[derive(Debug, Clone, Default)]
pub struct Protocol {
    pub pairs: Vec<Pair>,
    pub folds: usize,
    pub identities: HashMap<PathBuf, String>,
}

fn parse_err(path: &Path, line: usize, reason: impl Into<String>) -> Error {
    Error::Parse {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// LFW `pairs.txt`: a header `folds n` then per fold `n` same lines (`name i j`) and `n`
/// different lines (`name1 i name2 j`); images are `root/name/name_000i.jpg`. A header with a
/// single number (`pairsDevTrain.txt`) is one fold of n same and n different pairs.
pub fn read_lfw_pairs(path: &Path, root: &Path) -> Result<Protocol> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (hl, header) = lines
        .next()
        .ok_or_else(|| parse_err(path, 1, "empty file"))?;
    let nums: Vec<usize> = header
        .split_whitespace()
        .map(|t| t.parse())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| parse_err(path, hl + 1, "header must be `folds pairs_per_set`"))?;
    let (folds, per) = match nums[..] {
        [f, n] => (f, n),
        [n] => (1, n),
        _ => {
            return Err(parse_err(
                path,
                hl + 1,
                "header must be `folds pairs_per_set`",
            ))
        }
    };
    let img = |name: &str, idx: &str, line: usize| -> Result<PathBuf> {
        let i: u32 = idx
            .parse()
            .map_err(|_| parse_err(path, line, format!("bad image number {idx:?}")))?;
        Ok(root.join(name).join(format!("{name}_{i:04}.jpg")))
    };
    let mut p = Protocol {
        folds,
        ..Default::default()
    };
    for fold in 0..folds {
        for k in 0..2 * per {
            let (ln, line) = lines.next().ok_or_else(|| {
                parse_err(
                    path,
                    0,
                    format!(
                        "file ends in fold {} (expected {} lines per fold)",
                        fold + 1,
                        2 * per
                    ),
                )
            })?;
            let t: Vec<&str> = line.split_whitespace().collect();
            let pair = match (k < per, t.len()) {
                (true, 3) => Pair {
                    a: img(t[0], t[1], ln + 1)?,
                    b: img(t[0], t[2], ln + 1)?,
                    same: true,
                    fold,
                },
                (false, 4) => Pair {
                    a: img(t[0], t[1], ln + 1)?,
                    b: img(t[2], t[3], ln + 1)?,
                    same: false,
                    fold,
                },
                _ => {
                    return Err(parse_err(
                        path,
                        ln + 1,
                        "expected `name i j` (same) or `name1 i name2 j` (different)",
                    ))
                }
            };
            p.identities.insert(pair.a.clone(), t[0].to_string());
            p.identities
                .insert(pair.b.clone(), t[if pair.same { 0 } else { 2 }].to_string());
            p.pairs.push(pair);
        }
    }
    Ok(p)
}

/// TSV `image_a  image_b  same` (same: 1/0 or true/false); a header line is
/// skipped. Pairs are spread over 10 folds by position.
pub fn read_tsv_pairs(path: &Path, root: &Path) -> Result<Protocol> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut p = Protocol {
        folds: 10,
        ..Default::default()
    };
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let t: Vec<&str> = line.split('\t').map(str::trim).collect();
        if t.len() != 3 {
            return Err(parse_err(
                path,
                i + 1,
                "expected 3 tab-separated fields: image_a image_b same",
            ));
        }
        let same = match t[2].to_ascii_lowercase().as_str() {
            "1" | "true" => true,
            "0" | "false" => false,
            _ if i == 0 => continue, // header
            other => {
                return Err(parse_err(
                    path,
                    i + 1,
                    format!("bad label {other:?}: use 1 or 0"),
                ))
            }
        };
        let fold = p.pairs.len() % 10;
        p.pairs.push(Pair {
            a: root.join(t[0]),
            b: root.join(t[1]),
            same,
            fold,
        });
    }
    if p.pairs.is_empty() {
        return Err(parse_err(path, 0, "no pairs"));
    }
    Ok(p)
}

/// TSV `image  identity` (header skipped), for impostor pairs over all images.
pub fn read_identities(path: &Path, root: &Path) -> Result<HashMap<PathBuf, String>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let mut out = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let t: Vec<&str> = line.split('\t').map(str::trim).collect();
        if t.len() < 2 || (i == 0 && t[1].eq_ignore_ascii_case("identity")) {
            continue;
        }
        out.insert(root.join(t[0]), t[1].to_string());
    }
    Ok(out)
}

/// What embedding one image gave.
#[derive(Debug, Clone)]
pub enum Outcome {
    Face(Box<Embedding>),
    NoFace,
    Unreadable(String),
}

/// Embeds the face `pick` chooses in every image with `threads` workers, with a progress bar,
/// as the door embeds a probe ([`FaceModels::engine`]).
pub fn embed_images(
    models: &Arc<FaceModels>,
    images: &[PathBuf],
    threads: usize,
    pick: FacePick,
    label: &str,
) -> Result<Vec<Outcome>> {
    embed_images_as(models, images, threads, pick, label, false)
}

/// [`embed_images`], or as enrollment embeds a photo ([`FaceModels::enrolment_engine`]: with
/// `flip_enrolment` and `jitter_enrolment`, averaged over the mirror image and shifted chips)
/// when `enrolment`.
pub fn embed_images_as(
    models: &Arc<FaceModels>,
    images: &[PathBuf],
    threads: usize,
    pick: FacePick,
    label: &str,
    enrolment: bool,
) -> Result<Vec<Outcome>> {
    crate::parallel::map_with_progress(
        images,
        threads,
        label,
        || {
            if enrolment {
                models.enrolment_engine()
            } else {
                models.engine()
            }
        },
        |engine, path| match load_rgb(path) {
            Err(e) => Outcome::Unreadable(e.to_string()),
            Ok(img) => match engine.photo_face(&img, pick) {
                Ok(face) => face.map_or(Outcome::NoFace, |f| Outcome::Face(Box::new(f.embedding))),
                Err(e) => Outcome::Unreadable(e.to_string()),
            },
        },
    )
}

#[derive(Debug, Clone, Serialize)]
pub struct FarPoint {
    pub far: f64,
    /// `None` when there are fewer than 1/far impostor pairs to measure it.
    pub tar: Option<f64>,
    pub threshold: Option<f32>,
}

/// Everything `eval` reports for one encoder.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub encoder: String,
    /// Which face of a photo with several was used (`largest` or `centre`).
    pub pick: String,
    /// `symmetric` (both sides of a pair embedded as probes) or `as_deployed` (side A as an
    /// enrollment photo, side B as the door's probe).
    pub scoring: &'static str,
    /// How each side was embedded ([`FaceModels::embedding_recipe`]).
    pub embedding: String,
    pub pairs: usize,
    pub same_pairs: usize,
    pub different_pairs: usize,
    pub images: usize,
    pub images_without_face: Vec<PathBuf>,
    pub images_unreadable: Vec<(PathBuf, String)>,
    /// Pairs that could not be scored because an image had no face or could not be read.
    pub pairs_missed: usize,
    pub kfold: KFold,
    /// Accuracy if every missed pair is counted as an error.
    pub accuracy_with_misses: f64,
    pub auc: f64,
    pub eer: f64,
    pub eer_threshold: f32,
    /// Impostor scores used for the FAR figures (protocol pairs, or all cross-identity pairs).
    pub impostor_scores: usize,
    pub tar_at_far: Vec<FarPoint>,
    /// Accuracy at the model's default threshold.
    pub default_threshold: f32,
    pub accuracy_at_default: f64,
    #[serde(skip)]
    pub roc: Vec<RocPoint>,
}

/// Options of one evaluation.
#[derive(Debug, Clone)]
pub struct EvalOptions {
    pub threads: usize,
    /// Which face of a photo with several is the protocol's subject.
    pub pick: FacePick,
    pub all_impostors: bool,
    pub fars: Vec<f64>,
    /// Score each pair as the door would: side A embedded as an enrollment photo, side B as
    /// the door's probe (for all impostors, the first image of each pair in path order is
    /// enrolled). Off: both sides as probes, the symmetric protocol.
    pub as_deployed: bool,
}

/// Scores a protocol with one set of models: embeds every distinct image once, scores the
/// pairs whose two images have a face, and computes the accuracy figures from those scores.
pub fn evaluate(
    models: &Arc<FaceModels>,
    protocol: &Protocol,
    opts: &EvalOptions,
) -> Result<Report> {
    let images = distinct_images(protocol);
    let outcomes = embed_images(
        models,
        &images,
        opts.threads,
        opts.pick,
        &format!("embedding ({})", models.encoder.name),
    )?;
    let enrolled_outcomes = if opts.as_deployed {
        embed_images_as(
            models,
            &images,
            opts.threads,
            opts.pick,
            &format!("enrolling ({})", models.encoder.name),
            true,
        )?
    } else {
        Vec::new()
    };
    let embedded = Embedded::new(&images, &outcomes);
    let enrolled = if opts.as_deployed {
        Embedded::new(&images, &enrolled_outcomes)
    } else {
        Embedded::new(&images, &outcomes)
    };
    let (samples, missed) = score_pairs(protocol, &enrolled, &embedded)?;
    let genuine: Vec<f32> = samples.iter().filter(|s| s.1).map(|s| s.0).collect();
    let impostor = if opts.all_impostors {
        all_impostor_scores(protocol, &images, &enrolled, &embedded)?
    } else {
        samples.iter().filter(|s| !s.1).map(|s| s.0).collect()
    };
    let figures = Figures::of(&samples, &genuine, &impostor, protocol.folds, &opts.fars);
    let default_threshold = models.default_threshold();
    Ok(Report {
        encoder: models.encoder.name.clone(),
        pick: opts.pick.name().to_string(),
        scoring: if opts.as_deployed {
            "as_deployed"
        } else {
            "symmetric"
        },
        embedding: if opts.as_deployed {
            format!(
                "side A as enrolled: {}; side B as the door's probe: {}",
                models.embedding_recipe(true),
                models.embedding_recipe(false)
            )
        } else {
            format!("both sides: {}", models.embedding_recipe(false))
        },
        pairs: protocol.pairs.len(),
        same_pairs: protocol.pairs.iter().filter(|p| p.same).count(),
        different_pairs: protocol.pairs.iter().filter(|p| !p.same).count(),
        images: images.len(),
        images_without_face: images
            .iter()
            .zip(&outcomes)
            .filter(|(_, o)| matches!(o, Outcome::NoFace))
            .map(|(p, _)| p.clone())
            .collect(),
        images_unreadable: images
            .iter()
            .zip(&outcomes)
            .filter_map(|(p, o)| match o {
                Outcome::Unreadable(e) => Some((p.clone(), e.clone())),
                _ => None,
            })
            .collect(),
        pairs_missed: missed,
        accuracy_with_misses: figures.kfold.mean * samples.len() as f64
            / protocol.pairs.len() as f64,
        kfold: figures.kfold,
        auc: metrics::auc(&figures.roc),
        eer: figures.eer,
        eer_threshold: figures.eer_threshold,
        impostor_scores: impostor.len(),
        tar_at_far: figures.tar_at_far,
        default_threshold,
        accuracy_at_default: accuracy_at(&samples, default_threshold),
        roc: figures.roc,
    })
}

/// One scored pair: (distance, same person, fold).
type Sample = (f32, bool, usize);

/// Every image of the protocol once, sorted.
fn distinct_images(protocol: &Protocol) -> Vec<PathBuf> {
    let mut images: Vec<PathBuf> = protocol
        .pairs
        .iter()
        .flat_map(|p| [p.a.clone(), p.b.clone()])
        .collect();
    images.sort();
    images.dedup();
    images
}

/// The embedding of each image, looked up by path.
struct Embedded<'a> {
    index: HashMap<&'a PathBuf, usize>,
    outcomes: &'a [Outcome],
}

impl<'a> Embedded<'a> {
    fn new(images: &'a [PathBuf], outcomes: &'a [Outcome]) -> Self {
        let index = images.iter().enumerate().map(|(i, p)| (p, i)).collect();
        Embedded { index, outcomes }
    }

    /// `None` when the image had no face or could not be read.
    fn get(&self, p: &PathBuf) -> Option<&'a Embedding> {
        match &self.outcomes[self.index[p]] {
            Outcome::Face(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

/// The distance of every pair whose two images have a face (side A from `enrolled`, side B
/// from `probes`), and the number of pairs missed; an error if no pair could be scored.
fn score_pairs(
    protocol: &Protocol,
    enrolled: &Embedded<'_>,
    probes: &Embedded<'_>,
) -> Result<(Vec<Sample>, usize)> {
    let mut samples = Vec::new();
    let mut missed = 0;
    for p in &protocol.pairs {
        match (enrolled.get(&p.a), probes.get(&p.b)) {
            (Some(a), Some(b)) => samples.push((a.distance(b), p.same, p.fold)),
            _ => missed += 1,
        }
    }
    if samples.is_empty() {
        return Err(Error::Invalid(
            "no pair could be scored: no faces were found".into(),
        ));
    }
    Ok((samples, missed))
}

/// `--all-impostors`: the distance of every pair of embedded images of different identities
/// (needs the protocol's identities); of each pair, the first image in path order comes from
/// `enrolled`, the second from `probes`.
fn all_impostor_scores(
    protocol: &Protocol,
    images: &[PathBuf],
    enrolled: &Embedded<'_>,
    probes: &Embedded<'_>,
) -> Result<Vec<f32>> {
    if protocol.identities.is_empty() {
        return Err(Error::Invalid(
            "--all-impostors needs identities: use LFW pairs.txt or pass --identities FILE".into(),
        ));
    }
    // (identity, as enrolled, as probe); the image has a face in both or in neither
    let known: Vec<(&String, &Embedding, &Embedding)> = images
        .iter()
        .filter_map(|p| {
            Some((
                protocol.identities.get(p)?,
                enrolled.get(p)?,
                probes.get(p)?,
            ))
        })
        .collect();
    let mut impostor = Vec::new();
    for i in 0..known.len() {
        for j in i + 1..known.len() {
            if known[i].0 != known[j].0 {
                impostor.push(known[i].1.distance(known[j].2));
            }
        }
    }
    Ok(impostor)
}

/// The threshold-free figures: k-fold accuracy, ROC, EER and TAR at each FAR.
struct Figures {
    kfold: KFold,
    roc: Vec<RocPoint>,
    eer: f64,
    eer_threshold: f32,
    tar_at_far: Vec<FarPoint>,
}

impl Figures {
    fn of(
        samples: &[Sample],
        genuine: &[f32],
        impostor: &[f32],
        folds: usize,
        fars: &[f64],
    ) -> Self {
        let kfold = metrics::kfold_accuracy(samples, folds.max(2));
        let roc = metrics::roc(genuine, impostor);
        let (eer, eer_threshold) = metrics::eer(&roc);
        let tar_at_far = fars
            .iter()
            .map(|&far| {
                let r = metrics::tar_at_far(genuine, impostor, far);
                FarPoint {
                    far,
                    tar: r.map(|x| x.0),
                    threshold: r.map(|x| x.1),
                }
            })
            .collect();
        Figures {
            kfold,
            roc,
            eer,
            eer_threshold,
            tar_at_far,
        }
    }
}

/// The share of pairs decided right at `threshold` (same person when closer than it).
fn accuracy_at(samples: &[Sample], threshold: f32) -> f64 {
    samples.iter().filter(|s| (s.0 < threshold) == s.1).count() as f64 / samples.len() as f64
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "encoder {}, face pick {}, scoring {} ({}):",
            self.encoder, self.pick, self.scoring, self.embedding
        )?;
        writeln!(
            f,
            "  pairs {} ({} same, {} different) over {} images",
            self.pairs, self.same_pairs, self.different_pairs, self.images
        )?;
        writeln!(
            f,
            "  no face found in {} images, unreadable {}: {} pairs not scored",
            self.images_without_face.len(),
            self.images_unreadable.len(),
            self.pairs_missed
        )?;
        for p in self.images_without_face.iter().take(5) {
            writeln!(f, "    no face: {}", p.display())?;
        }
        for (p, e) in self.images_unreadable.iter().take(5) {
            writeln!(f, "    unreadable: {}: {e}", p.display())?;
        }
        writeln!(
            f,
            "  {}-fold accuracy {:.2}% ± {:.2} (scored pairs); {:.2}% counting unscored pairs as errors",
            self.kfold.per_fold.len(),
            self.kfold.mean * 100.0,
            self.kfold.std * 100.0,
            self.accuracy_with_misses * 100.0
        )?;
        writeln!(
            f,
            "  accuracy at the model's threshold {:.3}: {:.2}%",
            self.default_threshold,
            self.accuracy_at_default * 100.0
        )?;
        writeln!(
            f,
            "  ROC AUC {:.4}, EER {:.2}% at threshold {:.3}",
            self.auc,
            self.eer * 100.0,
            self.eer_threshold
        )?;
        for p in &self.tar_at_far {
            match (p.tar, p.threshold) {
                (Some(t), Some(th)) => writeln!(
                    f,
                    "  TAR at FAR {:.0e}: {:.2}% (threshold {:.3}, {} impostor scores)",
                    p.far,
                    t * 100.0,
                    th,
                    self.impostor_scores
                )?,
                _ => writeln!(
                    f,
                    "  TAR at FAR {:.0e}: not measurable with {} impostor scores (need {}; try --all-impostors)",
                    p.far,
                    self.impostor_scores,
                    (1.0 / p.far).ceil()
                )?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lfw_pairs_format() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pairs.txt");
        std::fs::write(&p, "2\t1\nA\t1\t2\nB\t1\tC\t3\nD 4 5\nE 1 F 2\n").unwrap();
        let proto = read_lfw_pairs(&p, Path::new("/r")).unwrap();
        assert_eq!(proto.folds, 2);
        assert_eq!(proto.pairs.len(), 4);
        assert_eq!(proto.pairs[0].a, Path::new("/r/A/A_0001.jpg"));
        assert!(proto.pairs[0].same && !proto.pairs[1].same);
        assert_eq!(proto.pairs[1].b, Path::new("/r/C/C_0003.jpg"));
        assert_eq!(proto.pairs[3].fold, 1);
        assert_eq!(proto.identities[Path::new("/r/F/F_0002.jpg")], "F");
        std::fs::write(&p, "1 1\nA 1\n").unwrap();
        let e = read_lfw_pairs(&p, Path::new("/r")).unwrap_err().to_string();
        assert!(e.contains(":2:"), "{e}");
    }

    #[test]
    fn reads_tsv_pairs_with_header() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("pairs.tsv");
        std::fs::write(
            &p,
            "image_a\timage_b\tsame\na.jpg\tb.jpg\t1\na.jpg\tc.jpg\t0\n",
        )
        .unwrap();
        let proto = read_tsv_pairs(&p, Path::new("/r")).unwrap();
        assert_eq!(proto.pairs.len(), 2);
        assert_eq!(proto.pairs[1].fold, 1);
        std::fs::write(&p, "x\ty\tz\na.jpg\tb.jpg\tmaybe\n").unwrap();
        assert!(read_tsv_pairs(&p, Path::new("/r")).is_err());
    }
}
