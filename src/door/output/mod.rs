//! Lock outputs: the [`LockOutput`] trait and its backends, one file each: [`rppal`]
//! (Raspberry Pi registers), [`gpiocdev`] (any Linux board's GPIO character device) and [`sim`]
//! (no hardware: the demo and the tests).
//!
//! A relay is either energised or not; which of the two opens the door is the wiring's business,
//! described by the configured safe state:
//!
//! * fail-secure (`safe_state = "locked"`): de-energised = locked; unlocking energises.
//! * fail-safe (`safe_state = "unlocked"`): de-energised = unlocked; locking energises.
//!
//! No code of the daemon runs after SIGKILL or a power cut, and a GPIO pin keeps its level when
//! its process dies, so the wiring must make "relay de-energised" the door's safe state. The
//! software asserts that state at start (before anything else), on SIGINT/SIGTERM, on panic
//! ([`panic_guard`](super::panic_guard)), and, from a separate process, after any exit of the
//! daemon: `facegate lock safe`, the unit's `ExecStopPost=`.

pub mod gpiocdev;
pub mod rppal;
pub mod sim;

/// Error from a lock output or a door input, naming the device and the fix.
#[derive(Debug, thiserror::Error)]
#[error("lock output {device}: {reason}")]
pub struct LockError {
    pub device: String,
    pub reason: String,
}

/// One relay output line.
pub trait LockOutput: Send {
    /// Energises (`true`) or releases (`false`) the relay.
    fn set_energised(&mut self, energised: bool) -> Result<(), LockError>;

    /// A human-readable name for logs ("GPIO17 on /dev/gpiochip0, active-high").
    fn describe(&self) -> String;
}
