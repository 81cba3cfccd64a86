//! `facegate run --config FILE`: the door daemon, until SIGINT or SIGTERM.

use super::stop_on_signals;
use crate::error::Result;
use std::path::Path;

/// `facegate run`: the door daemon.
pub fn run_daemon(config: &Path) -> Result<u8> {
    let cfg = crate::config::Config::load(config)?;
    let stop = stop_on_signals()?;
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
