//! The command-line side of enrollment: `facegate bundle keygen|sign|check` (the admin's
//! laptop), `facegate staff list|remove` and `facegate enroll import` (the door, daemon
//! stopped). The import policy and the store come from the configuration through
//! [`crate::assemble`], as the USB watcher gets them.

use super::{audit_append, writer_lock, EXIT_NO};
use crate::audit::Event;
use crate::config::Config;
use crate::enroll::bundle::{self, MANIFEST};
use crate::enroll::import::{
    import_bundle, report_text, verify_bundle, write_report, ImportPolicy,
};
use crate::enroll::sign::{self as signing, AdminKey, SecretKey};
use crate::enroll::store::Store;
use crate::enroll::EnrollError;
use crate::error::{Error, Result};
use crate::face::{FaceModels, ModelOptions};
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};

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
    /// Publish the signed bundle in DIR (retained) to every door of a site over MQTT
    /// (`<prefix>/<site>/bundle`); each door imports it exactly as from a stick
    Publish(PublishArgs),
}

/// `facegate bundle publish`: the broker, the site and the admin's broker account.
#[derive(clap::Args, Debug)]
pub struct PublishArgs {
    dir: PathBuf,
    /// Broker host name or address
    #[arg(long)]
    broker: String,
    /// Broker port [default: 1883, or 8883 with --ca-file]
    #[arg(long)]
    port: Option<u16>,
    /// The site (the doors' [mqtt] site) whose doors receive the bundle
    #[arg(long)]
    site: String,
    #[arg(long, default_value = "facegate")]
    topic_prefix: String,
    /// Broker user (with --password-file)
    #[arg(long, requires = "password_file")]
    username: Option<String>,
    /// File holding the broker password
    #[arg(long, value_name = "FILE", requires = "username")]
    password_file: Option<PathBuf>,
    /// CA certificate (PEM) of the broker: connect with TLS
    #[arg(long, value_name = "FILE")]
    ca_file: Option<PathBuf>,
    /// Longest wait for the broker's acknowledgement, in seconds
    #[arg(long, default_value_t = 30)]
    timeout_s: u64,
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

/// Runs `facegate bundle keygen|sign|check`.
pub(super) fn bundle(cmd: BundleCommand, models: &ModelOptions) -> Result<u8> {
    match cmd {
        BundleCommand::Keygen { out } => keygen(&out),
        BundleCommand::Sign { dir, key } => sign(&dir, &key),
        BundleCommand::Publish(a) => publish(&a),
        BundleCommand::Check {
            dir,
            pubkey,
            site,
            current_version,
            faces,
            timing,
            min_eye_px,
        } => check(
            &dir,
            models,
            &CheckOptions {
                pubkeys: &pubkey,
                site,
                current_version,
                faces: faces || timing,
                timing,
                min_eye_distance_px: min_eye_px,
            },
        ),
    }
}

/// `facegate bundle publish`: packs the signed bundle and publishes it retained for the site.
/// The doors check it (signature, site, version, photos); this side checks nothing it could
/// get wrong for them, but refuses an unsigned folder.
fn publish(a: &PublishArgs) -> Result<u8> {
    let cfg = crate::mqtt::MqttConfig::admin(
        &a.broker,
        a.port,
        a.ca_file.clone(),
        a.username.clone().zip(a.password_file.clone()),
        &a.topic_prefix,
        &a.site,
    )?;
    let payload = crate::mqtt::fleet::pack(&a.dir)?;
    let len = payload.len();
    crate::mqtt::fleet::publish(&cfg, payload, std::time::Duration::from_secs(a.timeout_s))?;
    println!(
        "published {} ({len} bytes) retained on {}; each door reports on {}/{}/<door>/enroll",
        a.dir.display(),
        cfg.bundle_topic(),
        a.topic_prefix,
        a.site
    );
    Ok(0)
}

/// Runs `facegate staff list|remove`.
pub(super) fn staff(cmd: StaffCommand) -> Result<u8> {
    match cmd {
        StaffCommand::List { config } => staff_list(&config),
        StaffCommand::Remove { id, config } => {
            let _lock = writer_lock(&config, "staff remove")?;
            staff_remove(&config, &id)
        }
    }
}

/// Runs `facegate enroll import`.
pub(super) fn enroll(cmd: EnrollCommand) -> Result<u8> {
    match cmd {
        EnrollCommand::Import { dir, config } => {
            let _lock = writer_lock(&config, "enroll import")?;
            import(&config, &dir)
        }
    }
}

/// `facegate bundle keygen --out DIR`: writes `facegate.key` (0600) and `facegate.pub`.
fn keygen(out: &Path) -> Result<u8> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let (skp, pkp) = (out.join("facegate.key"), out.join("facegate.pub"));
    if skp.exists() {
        return Err(Error::Invalid(format!(
            "{} already exists; refusing to overwrite a signing key (move it aside first)",
            skp.display()
        )));
    }
    let sk = SecretKey::generate()?;
    let pk = sk.public();
    crate::fsutil::write_atomic(&skp, sk.to_file_text().as_bytes(), 0o600)?;
    let pub_text = format!(
        "untrusted comment: facegate public key {}\n{}\n",
        pk.id_hex(),
        pk.base64
    );
    crate::fsutil::write_atomic(&pkp, pub_text.as_bytes(), 0o644)?;
    println!(
        "secret key: {} (0600; keep it off the door)\npublic key: {} (key id {})\n\n\
         Pin it in the door's config:\n  [gallery]\n  admin_keys = [\"{}\"]",
        skp.display(),
        pkp.display(),
        pk.id_hex(),
        pk.base64
    );
    Ok(0)
}

/// `facegate bundle sign DIR --key KEY`.
fn sign(dir: &Path, key: &Path) -> Result<u8> {
    let sk = SecretKey::from_file(key)?;
    let m = bundle::sign_bundle(dir, &sk)?;
    println!(
        "signed {} with key {}: version {}, site {:?}, {} people ({} photos), {} removals",
        dir.join(MANIFEST).display(),
        signing::key_id_hex(&sk.key_id),
        m.version,
        m.site,
        m.people.len(),
        m.num_photos(),
        m.remove.len()
    );
    Ok(0)
}

/// Options of `facegate bundle check`.
struct CheckOptions<'a> {
    pub pubkeys: &'a [String],
    pub site: Option<String>,
    pub current_version: u64,
    pub faces: bool,
    pub timing: bool,
    pub min_eye_distance_px: f32,
}

/// `facegate bundle check DIR --pubkey KEY [--faces]`: everything the door checks.
fn check(dir: &Path, models: &ModelOptions, o: &CheckOptions) -> Result<u8> {
    let admin_keys = o
        .pubkeys
        .iter()
        .map(|k| AdminKey::from_arg(k))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let policy = ImportPolicy {
        admin_keys,
        sites: o.site.iter().cloned().collect(),
        min_eye_distance_px: o.min_eye_distance_px,
    };
    let mut engine = if o.faces {
        Some(FaceModels::load(models)?.enrolment_engine()?)
    } else {
        None
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} photos {elapsed} (eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t0 = std::time::Instant::now();
    let result = verify_bundle(
        dir,
        &policy,
        o.current_version,
        engine.as_mut(),
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    );
    bar.finish_and_clear();
    match result {
        Ok(v) => {
            println!(
                "OK: {} version {} for site {:?}, signed by {}: {} people, {} photos, {} removals{}",
                dir.display(),
                v.manifest.version,
                v.manifest.site,
                v.key_id,
                v.manifest.people.len(),
                v.manifest.num_photos(),
                v.manifest.remove.len(),
                if o.faces {
                    ", one usable face in every photo"
                } else {
                    " (faces not checked: add --faces)"
                }
            );
            if o.timing && !v.photo_times.is_empty() {
                let mut ms: Vec<f64> = v
                    .photo_times
                    .iter()
                    .map(|d| d.as_secs_f64() * 1e3)
                    .collect();
                ms.sort_by(f64::total_cmp);
                println!(
                    "timing: {} photos in {:.2} s; per photo median {:.1} ms, max {:.1} ms",
                    ms.len(),
                    t0.elapsed().as_secs_f64(),
                    ms[ms.len() / 2],
                    ms[ms.len() - 1]
                );
            }
            Ok(0)
        }
        Err(e) => {
            println!("REJECTED: {e}");
            Ok(EXIT_NO)
        }
    }
}

fn store_of(cfg: &Config) -> Result<Store> {
    let (Some(store), Some(key)) = (&cfg.gallery.store, cfg.gallery.key_path()) else {
        return Err(Error::Invalid(
            "[gallery] store is not set in this config: there is no enrolled store".into(),
        ));
    };
    Ok(Store::open_with_log(store, &key, Some(&cfg.audit.path))?)
}

fn audit(cfg: &Config, event: Event, fields: serde_json::Value) -> Result<()> {
    audit_append(cfg, event, fields).map(drop)
}

/// `facegate staff list --config FILE`.
fn staff_list(config: &Path) -> Result<u8> {
    let cfg = Config::load(config)?;
    let store = store_of(&cfg)?;
    let Some(data) = store.load_any()? else {
        println!(
            "{}: no store yet (nobody enrolled by bundle)",
            store.path.display()
        );
        return Ok(0);
    };
    println!(
        "{}: bundle version {}, signed by {}, encoder {}, updated {}",
        store.path.display(),
        data.bundle_version,
        if data.signed_by.is_empty() {
            "-"
        } else {
            &data.signed_by
        },
        &data.encoder_sha256[..data.encoder_sha256.len().min(12)],
        data.updated
    );
    for p in &data.people {
        let a = &p.access;
        println!(
            "  {:<20} {:<30} {} template(s){}{}{}",
            p.id,
            p.name,
            p.embeddings.len(),
            a.not_before
                .map(|t| format!(", from {t}"))
                .unwrap_or_default(),
            a.not_after
                .map(|t| format!(", until {t}"))
                .unwrap_or_default(),
            if a.schedule.is_empty() {
                ""
            } else {
                ", scheduled"
            }
        );
    }
    Ok(0)
}

/// `facegate staff remove ID --config FILE`: rewrites the store without the person.
pub fn staff_remove(config: &Path, id: &str) -> Result<u8> {
    let cfg = Config::load(config)?;
    let store = store_of(&cfg)?;
    match store.remove(id) {
        Ok(data) => {
            audit(
                &cfg,
                Event::EnrollRemove,
                json!({"person": id, "people": data.people.len(), "via": "staff remove"}),
            )?;
            println!(
                "removed {id:?}: {} rewritten ({} people left). Restart the daemon to drop it from memory.",
                store.path.display(),
                data.people.len()
            );
            Ok(0)
        }
        Err(e) => {
            if !matches!(e, EnrollError::NotEnrolled { .. }) {
                let _ = audit(
                    &cfg,
                    Event::EnrollRemoveFailed,
                    json!({"person": id, "error": e.to_string()}),
                );
            }
            Err(e.into())
        }
    }
}

/// `facegate enroll import DIR --config FILE`: a one-off import (the daemon stopped).
fn import(config: &Path, dir: &Path) -> Result<u8> {
    let cfg = Config::load(config)?;
    let store = store_of(&cfg)?;
    let policy = crate::assemble::import_policy(&cfg)?;
    let models = FaceModels::load(&cfg.model_options())?;
    let mut engine = models.enrolment_engine()?;
    let bar = indicatif::ProgressBar::new(0);
    let result = import_bundle(dir, &policy, &store, &mut engine, &mut |d, t| {
        bar.set_length(t as u64);
        bar.set_position(d as u64);
    });
    bar.finish_and_clear();
    if cfg.gallery.write_report {
        write_report(dir, &report_text(dir, &result));
    }
    match result {
        Ok(o) => {
            audit(
                &cfg,
                Event::EnrollImport,
                o.audit_record(dir, None, Some("enroll import")),
            )?;
            println!(
                "imported version {}: {} enrolled, {} removed, {} photos in {:.1} s",
                o.version,
                o.enrolled.len(),
                o.removed.len(),
                o.photos,
                o.elapsed.as_secs_f64()
            );
            Ok(0)
        }
        Err(e) => {
            audit(
                &cfg,
                Event::EnrollRejected,
                json!({"bundle": dir, "kind": e.kind(), "error": e.to_string().chars().take(1000).collect::<String>()}),
            )?;
            println!("REJECTED (store unchanged): {e}");
            Ok(EXIT_NO)
        }
    }
}
