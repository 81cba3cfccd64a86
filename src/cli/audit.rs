//! `facegate audit verify`: the audit log's hash chain, and its head against the sealed state.

use super::EXIT_NO;
use crate::error::{Error, Result};
use clap::Subcommand;
use std::path::{Path, PathBuf};

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

/// Runs `facegate audit verify`.
pub(super) fn run(cmd: AuditCommand) -> Result<u8> {
    match cmd {
        AuditCommand::Verify {
            log,
            config,
            seal,
            key,
        } => audit_verify(&log, config.as_deref(), seal.zip(key)),
    }
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
