//! Door inputs: a door contact (reed switch) or a request-to-exit button, behind the
//! [`DoorInput`] trait, on a GPIO character-device line ([`GpiocdevInput`]) or simulated
//! ([`SimulatedInput`], set from a test or the demo through its [`SimulatedInputHandle`]).
//!
//! An input reports its *raw* level; the door thread polls it and debounces it
//! ([`debounce`](super::debounce)).
//!
//! [`GpiocdevInput`] requests a line as an input (optionally with the kernel's pull-up /
//! pull-down bias and active-low) with the consumer label `facegate`; the line is found as for
//! the lock output ([`LineSpec`], see [`output::gpiocdev`](super::output::gpiocdev) for the
//! mechanism and troubleshooting).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gpiocdev::line::{Bias, Value};
use gpiocdev::Request;

use super::output::gpiocdev::{polarity, request_error, resolve, LineSpec, CONSUMER};
use super::output::LockError;

/// One digital door input: a door contact (reed switch) or a request-to-exit button.
///
/// Implementations return the *raw* level, already corrected for active-low wiring; the
/// [`DoorController`](super::controller::DoorController) polls it and debounces it in software,
/// so a backend needs no debouncing of its own (it may add hardware debouncing on top).
pub trait DoorInput: Send {
    /// `true` when the input is active (door open, button pressed).
    fn is_active(&mut self) -> Result<bool, LockError>;

    /// A human-readable name for logs ("GPIO27 on /dev/gpiochip0, active-low").
    fn describe(&self) -> String;
}

/// Pull resistor for an input line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Pull {
    /// No bias (the circuit has its own resistor).
    #[default]
    None,
    /// The kernel's pull-up (a switch to ground, read active-low).
    Up,
    /// The kernel's pull-down (a switch to 3.3 V).
    Down,
}

/// A door contact or request-to-exit button on a GPIO character-device line.
#[derive(Debug)]
pub struct GpiocdevInput {
    req: Request,
    chip: PathBuf,
    offset: u32,
    active_low: bool,
}

impl GpiocdevInput {
    /// Requests the line as an input, consumer `facegate`.
    pub fn new(spec: &LineSpec, active_low: bool, pull: Pull) -> Result<Self, LockError> {
        let (chip, offset) = resolve(spec)?;
        let mut builder = Request::builder();
        builder
            .on_chip(&chip)
            .with_consumer(CONSUMER)
            .with_line(offset)
            .as_input()
            .with_bias(match pull {
                Pull::None => None,
                Pull::Up => Some(Bias::PullUp),
                Pull::Down => Some(Bias::PullDown),
            });
        if active_low {
            builder.as_active_low();
        }
        let req = builder.request().map_err(|e| LockError {
            device: format!("GPIO line {offset} on {}", chip.display()),
            reason: request_error(e, &chip, offset),
        })?;
        Ok(Self {
            req,
            chip,
            offset,
            active_low,
        })
    }
}

impl DoorInput for GpiocdevInput {
    fn is_active(&mut self) -> Result<bool, LockError> {
        self.req
            .lone_value()
            .map(|v| v == Value::Active)
            .map_err(|e| LockError {
                device: self.describe(),
                reason: format!("reading the line failed: {e}; check `dmesg`"),
            })
    }

    fn describe(&self) -> String {
        format!(
            "GPIO input line {} on {}, {}",
            self.offset,
            self.chip.display(),
            polarity(self.active_low)
        )
    }
}

/// Sets the level of a [`SimulatedInput`] from a test or the demo.
#[derive(Debug, Clone, Default)]
pub struct SimulatedInputHandle {
    active: Arc<AtomicBool>,
}

impl SimulatedInputHandle {
    /// Sets the raw level: `true` = active (button pressed, door open).
    pub fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
    }

    /// Presses a button for `hold`, then releases it (blocks the caller for `hold`).
    pub fn press(&self, hold: Duration) {
        self.set_active(true);
        std::thread::sleep(hold);
        self.set_active(false);
    }
}

/// A door input (contact or request-to-exit) whose level is set through a
/// [`SimulatedInputHandle`].
#[derive(Debug)]
pub struct SimulatedInput {
    name: String,
    handle: SimulatedInputHandle,
}

impl SimulatedInput {
    /// A simulated input and the handle that drives it.
    pub fn new(name: impl Into<String>) -> (Self, SimulatedInputHandle) {
        let handle = SimulatedInputHandle::default();
        (
            Self {
                name: name.into(),
                handle: handle.clone(),
            },
            handle,
        )
    }
}

impl DoorInput for SimulatedInput {
    fn is_active(&mut self) -> Result<bool, LockError> {
        Ok(self.handle.active.load(Ordering::SeqCst))
    }

    fn describe(&self) -> String {
        format!("simulated input \"{}\"", self.name)
    }
}
