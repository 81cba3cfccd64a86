//! A dev set as (image, identity) and its embeddings, computed once per image through the
//! door's own path (detect, the door's face rule, landmarks, align, quality, encode) and kept
//! in memory for every draw of every rule.

use crate::error::{Error, Result};
use crate::face::encode::Embedding;
use crate::face::quality::Quality;
use crate::face::FaceModels;
use crate::frame::DOOR_PICK;
use crate::imageio::load_rgb;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Images with their person, grouped by person (people in name order).
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    pub people: Vec<(String, Vec<PathBuf>)>,
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

impl Dataset {
    /// Reads a dev set from `path`:
    /// * a TSV `image  identity` (CelebA's `identities.tsv`; images under `images/` beside it,
    ///   else beside the file);
    /// * a directory of one subdirectory per person (ORL `s1/`.., faces94 `Training/0/`..);
    /// * a directory of files named `<person>.<anything>` (Yale `subject01.glasses`).
    ///
    /// Text files (`README`, `*.txt`) are skipped.
    pub fn load(path: &Path) -> Result<Dataset> {
        let named = if path.is_file() {
            path.parent().unwrap_or(path)
        } else {
            path
        };
        let name = named
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut groups: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
        if path.is_file() {
            let parent = path.parent().unwrap_or(Path::new("."));
            let root = if parent.join("images").is_dir() {
                parent.join("images")
            } else {
                parent.to_path_buf()
            };
            for (p, id) in crate::eval::read_identities(path, &root)? {
                groups.entry(id).or_default().push(p);
            }
            for v in groups.values_mut() {
                v.sort();
            }
        } else {
            let entries = sorted_entries(path)?;
            let dirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
            if !dirs.is_empty() {
                for d in dirs {
                    let id = d.file_name().unwrap_or_default().to_string_lossy().into();
                    let imgs: Vec<PathBuf> = sorted_entries(d)?
                        .into_iter()
                        .filter(|p| p.is_file() && !is_text(p))
                        .collect();
                    if !imgs.is_empty() {
                        groups.insert(id, imgs);
                    }
                }
            } else {
                for p in entries.into_iter().filter(|p| p.is_file() && !is_text(p)) {
                    let file = p.file_name().unwrap_or_default().to_string_lossy();
                    let id = file.split('.').next().unwrap_or_default().to_string();
                    groups.entry(id).or_default().push(p);
                }
            }
        }
        if groups.is_empty() {
            return Err(Error::Invalid(format!(
                "{}: no images found; give an identities TSV, a directory of one folder per \
                 person, or a directory of files named <person>.<anything>",
                path.display()
            )));
        }
        Ok(Dataset {
            name: if name == "Training" {
                path.parent()
                    .and_then(|p| p.file_name())
                    .map_or(name, |n| n.to_string_lossy().into_owned())
            } else {
                name
            },
            people: groups.into_iter().collect(),
        })
    }

    pub fn num_images(&self) -> usize {
        self.people.iter().map(|p| p.1.len()).sum()
    }
}

fn is_text(p: &Path) -> bool {
    let f = p
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .to_ascii_lowercase();
    f.starts_with("readme") || f.ends_with(".txt") || f.ends_with(".md") || f.ends_with(".tsv")
}

/// One image's face as the door would see it: embedding and quality.
#[derive(Debug, Clone, Copy)]
pub struct Shot {
    pub embedding: Embedding,
    pub quality: Quality,
}

/// The embedded dev set: per person, the shots of the images where a face was found.
#[derive(Debug, Clone)]
pub struct Embedded {
    pub name: String,
    pub people: Vec<(String, Vec<Shot>)>,
    pub images: usize,
    /// Images without a face (or unreadable), with the reason.
    pub missed: Vec<(PathBuf, String)>,
}

/// The door's per-image path on one photo: the largest face, its quality and embedding.
fn shot(engine: &mut crate::face::FaceEngine, path: &Path) -> std::result::Result<Shot, String> {
    let img = load_rgb(path).map_err(|e| e.to_string())?;
    let dets = engine.detect(&img).map_err(|e| e.to_string())?;
    let det = DOOR_PICK.pick(&dets).ok_or("no face")?;
    let lm = engine.landmarks(&img, det);
    let chip = engine.align(&img, &lm);
    let quality = Quality::measure(&lm, chip);
    let embedding = engine.encode_chip().map_err(|e| e.to_string())?;
    Ok(Shot { embedding, quality })
}

/// Embeds every image of `set` once, with `threads` workers and a progress bar.
pub fn embed(models: &Arc<FaceModels>, set: &Dataset, threads: usize) -> Result<Embedded> {
    let all: Vec<(usize, &PathBuf)> = set
        .people
        .iter()
        .enumerate()
        .flat_map(|(i, (_, ps))| ps.iter().map(move |p| (i, p)))
        .collect();
    let out = crate::parallel::map_with_progress(
        &all,
        threads,
        &format!("embedding {}", set.name),
        || models.engine(),
        |engine, (_, path)| shot(engine, path),
    )?;
    let mut people: Vec<(String, Vec<Shot>)> = set
        .people
        .iter()
        .map(|(n, _)| (n.clone(), vec![]))
        .collect();
    let mut missed = Vec::new();
    for ((i, p), r) in all.iter().zip(out) {
        match r {
            Ok(s) => people[*i].1.push(s),
            Err(e) => missed.push(((*p).clone(), e)),
        }
    }
    Ok(Embedded {
        name: set.name.clone(),
        people,
        images: all.len(),
        missed,
    })
}
