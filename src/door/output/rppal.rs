//! Lock output on a Raspberry Pi GPIO pin through [`rppal`].
//!
//! # Mechanism
//!
//! rppal drives the BCM2835/2711/2712 GPIO registers through `/dev/gpiomem` (or the RP1 on a
//! Pi 5) and only works on Raspberry Pi boards: it identifies the board from
//! `/proc/device-tree/compatible` and `/proc/cpuinfo`. The pin is addressed by its **BCM
//! number** (GPIO17 is physical pin 11 on the 40-pin header), not by header position.
//!
//! "Energised" is a logical level: with `active_low = false` the relay is energised by driving
//! the pin high; with `active_low = true` (most opto-isolated relay boards) by driving it low.
//!
//! # Ownership and the safe level
//!
//! [`RppalOutput`] owns the [`OutputPin`] exclusively (rppal refuses a second `get` of the same
//! pin with `PinUsed`). It writes the de-energised level *before* switching the pin to output
//! mode at construction (so the relay never clicks during start-up), and again on drop.
//!
//! rppal resets a pin to its previous mode (normally input) when the `OutputPin` is dropped.
//! For a relay driver that is the wrong default: an input pin *floats*, and a floating input on
//! a relay board's transistor or optocoupler may read as "on" (active-low boards usually pull
//! the input to the inactive level, but not all do). This backend therefore calls
//! `set_reset_on_drop(false)`: after the drop, and after the process exits, the pin *stays
//! driven* at the de-energised level written last.
//!
//! No code at all runs after `SIGKILL`, an out-of-memory kill, a kernel panic or a power cut,
//! and at boot the pin is an input until this program starts. **The wiring must make "relay
//! de-energised" the door's safe state**, whatever the software does: a fail-secure strike
//! locks without power, a fail-safe maglock releases without power, and the relay module must
//! be de-energised when its input is floating or pulled to its default (check the board's
//! pull resistor, or add one, e.g. 10 kΩ to 3.3 V for an active-low input).
//!
//! # Troubleshooting
//!
//! * "not a Raspberry Pi": rppal supports only Raspberry Pi boards. Use
//!   `backend = "gpiocdev"` (any Linux board with `/dev/gpiochip*`) or `backend = "simulated"`.
//! * "permission denied": the user needs access to `/dev/gpiomem`: add it to the `gpio` group
//!   (`sudo usermod -aG gpio facegate`, then log in again); see `deploy/99-facegate-gpio.rules`.
//! * "pin in use": another part of this process (or an earlier `RppalOutput` still alive) owns
//!   the pin; on a Pi 5, also check that no other program holds it (`gpioinfo`).

use rppal::gpio::{Gpio, Level, OutputPin};

use super::{LockError, LockOutput};

/// Relay output on a Raspberry Pi BCM GPIO pin.
#[derive(Debug)]
pub struct RppalOutput {
    pin: OutputPin,
    bcm: u8,
    active_low: bool,
}

impl RppalOutput {
    /// Claims BCM pin `bcm` as an output at the de-energised level.
    ///
    /// Fails off a Raspberry Pi (with a [`LockError`] that says so and suggests the
    /// `gpiocdev` or `simulated` backend), when the pin does not exist, is already in use,
    /// or the user lacks permission.
    pub fn new(bcm: u8, active_low: bool) -> Result<Self, LockError> {
        let device = format!("BCM GPIO{bcm} (rppal)");
        let gpio = Gpio::new().map_err(|e| LockError {
            device: device.clone(),
            reason: explain(e, bcm),
        })?;
        let pin = gpio.get(bcm).map_err(|e| LockError {
            device: device.clone(),
            reason: explain(e, bcm),
        })?;
        let idle = level(false, active_low);
        // into_output_low/high write the level first and only then switch the mode, so the pin
        // never drives the energised level, not even for a microsecond.
        let mut pin = match idle {
            Level::Low => pin.into_output_low(),
            Level::High => pin.into_output_high(),
        };
        pin.set_reset_on_drop(false);
        let out = Self {
            pin,
            bcm,
            active_low,
        };
        log::info!("{}: claimed, relay de-energised", out.describe());
        Ok(out)
    }
}

fn level(energised: bool, active_low: bool) -> Level {
    if energised != active_low {
        Level::High
    } else {
        Level::Low
    }
}

fn explain(e: rppal::gpio::Error, bcm: u8) -> String {
    use rppal::gpio::Error;
    match e {
        Error::UnknownModel => "this is not a Raspberry Pi (rppal could not identify the board); \
             set the lock backend to `backend = \"gpiocdev\"` for other Linux boards, \
             or `backend = \"simulated\"` to run without hardware"
            .into(),
        Error::PermissionDenied(path) => format!(
            "permission denied on {path}; add the service user to the `gpio` group \
             (`sudo usermod -aG gpio USER`) or install deploy/99-facegate-gpio.rules"
        ),
        Error::PinUsed(_) => format!(
            "GPIO{bcm} is already in use by this process; configure each door output on its own pin"
        ),
        Error::PinNotAvailable(_) => format!(
            "GPIO{bcm} does not exist on this board; use a BCM number (0-27 on the 40-pin header, \
             e.g. 17 for physical pin 11)"
        ),
        other => format!("{other}; check that /dev/gpiomem exists and is accessible"),
    }
}

impl LockOutput for RppalOutput {
    fn set_energised(&mut self, energised: bool) -> Result<(), LockError> {
        // A memory-mapped register write cannot fail once the pin is claimed.
        self.pin.write(level(energised, self.active_low));
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "BCM GPIO{} (rppal), {}",
            self.bcm,
            if self.active_low {
                "active-low"
            } else {
                "active-high"
            }
        )
    }
}

impl Drop for RppalOutput {
    fn drop(&mut self) {
        self.pin.write(level(false, self.active_low));
        log::info!("{}: released, relay de-energised", self.describe());
    }
}
