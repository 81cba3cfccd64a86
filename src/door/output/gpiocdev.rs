//! Lock output on any Linux board through the GPIO character device ([`gpiocdev`],
//! `/dev/gpiochip*`), and the line lookup ([`LineSpec`]) the door inputs share
//! ([`GpiocdevInput`](crate::door::input::GpiocdevInput)).
//!
//! # Mechanism
//!
//! The kernel's GPIO character device (uAPI v2, Linux 5.10+) hands out *line requests*: this
//! module opens the chip, requests one line as an output whose **initial value is the
//! de-energised level** (the kernel applies it atomically with the direction change, so the
//! relay never clicks at start-up), with the consumer label `facegate` (visible in `gpioinfo`),
//! and active-low when configured: the kernel then inverts the logical value, so "energised"
//! always means `Value::Active`.
//!
//! A line is found either
//!
//! * **by name** ([`LineSpec::Name`], e.g. `"GPIO17"`): the device tree's line name, searched on
//!   every chip. Prefer this on Raspberry Pis: the header lines are `gpiochip0` on a Pi 4 but
//!   `gpiochip4` (kernel < 6.6.45) or `gpiochip0` (later) on a Pi 5; or
//! * **by chip and offset** ([`LineSpec::ChipOffset`], e.g. `/dev/gpiochip0` line 17), for boards
//!   whose lines have no names (check with `gpioinfo`).
//!
//! [`LineSpec`] ([`line`](super::line)) reads `"GPIO17"`, `"/dev/gpiochip0:GPIO17"` (a name on
//! one chip) or `"/dev/gpiochip0:17"`.
//!
//! # Ownership and the safe level
//!
//! [`GpiocdevOutput`] owns the line request; nothing else (in this or another process) can
//! request the line while it lives. On drop it writes the de-energised level and then releases
//! the request. What the line does *after* the release is up to the GPIO driver: most keep the
//! last value driven, some revert to input. And nothing at all runs after `SIGKILL` or a power
//! cut, so **the wiring must make "relay de-energised" the door's safe state** (see
//! [`output`](super)).
//!
//! # Troubleshooting
//!
//! * "permission denied on /dev/gpiochipN": add the service user to the `gpio` group and install
//!   `deploy/99-facegate-gpio.rules` (which gives that group access to `/dev/gpiochip*`).
//! * "no /dev/gpiochip* devices": the kernel has no GPIO character device support, or the service
//!   cannot see `/dev` (systemd `PrivateDevices=yes` hides it; the shipped unit does not set it).
//! * "no line named ...": list the names with `gpioinfo` (package `gpiod`); names are
//!   case-sensitive.
//! * "Device or resource busy": another process (or another door in this config) holds the line;
//!   `gpioinfo` shows the consumer.

use std::path::{Path, PathBuf};

use gpiocdev::line::Value;
use gpiocdev::Request;

use super::{LockError, LockOutput};

/// Consumer label shown by `gpioinfo` for every line this program requests.
pub const CONSUMER: &str = "facegate";

pub use crate::door::line::LineSpec;

/// Resolves a [`LineSpec`] to a chip path and offset, with errors that say what to do.
pub(crate) fn resolve(spec: &LineSpec) -> Result<(PathBuf, u32), LockError> {
    let fail = |reason: String| LockError {
        device: format!("GPIO {spec}"),
        reason,
    };
    match spec {
        LineSpec::ChipOffset { chip, offset } => {
            check_chip_access(chip).map_err(fail)?;
            Ok((chip.clone(), *offset))
        }
        LineSpec::ChipName { chip, name } => {
            check_chip_access(chip).map_err(fail)?;
            let on_chip = gpiocdev::Chip::from_path(chip).ok();
            match on_chip.and_then(|c| c.find_line_info(name)) {
                Some(info) => Ok((chip.clone(), info.offset)),
                None => Err(fail(format!(
                    "no line named \"{name}\" on {}; list its line names with `gpioinfo` \
                     (names are case-sensitive)",
                    chip.display()
                ))),
            }
        }
        LineSpec::Name(name) => {
            if let Some(found) = gpiocdev::find_named_line(name) {
                return Ok((found.chip, found.info.offset));
            }
            // Not found: find out why (no chips, no permission, or a wrong name).
            let chips = list_chips();
            if chips.is_empty() {
                return Err(fail(
                    "no /dev/gpiochip* devices: this kernel has no GPIO character devices, \
                     or the service cannot see /dev (do not set PrivateDevices=yes); \
                     use `backend = \"simulated\"` on a machine without GPIO"
                        .into(),
                ));
            }
            for chip in &chips {
                check_chip_access(chip).map_err(fail)?;
            }
            Err(fail(format!(
                "no line named \"{name}\" on {}; list the line names with `gpioinfo` \
                 (names are case-sensitive) or give a chip and offset (\"/dev/gpiochip0:17\")",
                chips
                    .iter()
                    .map(|c| c.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }
}

fn list_chips() -> Vec<PathBuf> {
    let mut chips: Vec<PathBuf> = std::fs::read_dir("/dev")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("gpiochip"))
                })
                .collect()
        })
        .unwrap_or_default();
    chips.sort();
    chips
}

fn check_chip_access(chip: &Path) -> Result<(), String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(chip)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Err(format!(
            "permission denied on {}: add the service user to the `gpio` group \
             (`sudo usermod -aG gpio USER`) and install deploy/99-facegate-gpio.rules",
            chip.display()
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(format!(
            "{} does not exist; list the chips with `gpiodetect` (on a Pi, prefer a line name \
             such as \"GPIO17\", which works whatever the chip number)",
            chip.display()
        )),
        Err(e) => Err(format!("cannot open {}: {e}", chip.display())),
    }
}

pub(crate) fn request_error(e: gpiocdev::Error, chip: &Path, offset: u32) -> String {
    let text = e.to_string();
    if text.contains("busy") || text.contains("EBUSY") {
        format!(
            "line {offset} on {} is busy: another process or another configured door holds it \
             (`gpioinfo` shows the consumer)",
            chip.display()
        )
    } else {
        format!(
            "requesting line {offset} on {} failed: {text}; check the offset with `gpioinfo`",
            chip.display()
        )
    }
}

pub(crate) fn polarity(active_low: bool) -> &'static str {
    if active_low {
        "active-low"
    } else {
        "active-high"
    }
}

/// Relay output on a GPIO character-device line.
#[derive(Debug)]
pub struct GpiocdevOutput {
    req: Request,
    chip: PathBuf,
    offset: u32,
    active_low: bool,
}

impl GpiocdevOutput {
    /// Requests the line as an output at the de-energised level, consumer `facegate`.
    pub fn new(spec: &LineSpec, active_low: bool) -> Result<Self, LockError> {
        let (chip, offset) = resolve(spec)?;
        let mut builder = Request::builder();
        builder
            .on_chip(&chip)
            .with_consumer(CONSUMER)
            .with_line(offset)
            .as_output(Value::Inactive);
        if active_low {
            builder.as_active_low();
        }
        let req = builder.request().map_err(|e| LockError {
            device: format!("GPIO line {offset} on {}", chip.display()),
            reason: request_error(e, &chip, offset),
        })?;
        let out = Self {
            req,
            chip,
            offset,
            active_low,
        };
        log::info!("{}: requested, relay de-energised", out.describe());
        Ok(out)
    }
}

impl LockOutput for GpiocdevOutput {
    fn set_energised(&mut self, energised: bool) -> Result<(), LockError> {
        let value = if energised {
            Value::Active
        } else {
            Value::Inactive
        };
        self.req.set_lone_value(value).map_err(|e| LockError {
            device: self.describe(),
            reason: format!(
                "writing the line failed: {e}; the chip may have been removed or reset \
                 (check `dmesg`); the controller retries"
            ),
        })
    }

    fn describe(&self) -> String {
        format!(
            "GPIO line {} on {}, {}",
            self.offset,
            self.chip.display(),
            polarity(self.active_low)
        )
    }
}

impl Drop for GpiocdevOutput {
    fn drop(&mut self) {
        match self.req.set_lone_value(Value::Inactive) {
            Ok(()) => log::info!("{}: released, relay de-energised", self.describe()),
            Err(e) => log::error!(
                "{}: could not de-energise the relay on release: {e}; \
                 the wiring's safe state applies",
                self.describe()
            ),
        }
    }
}
