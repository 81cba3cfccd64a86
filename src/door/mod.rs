//! The door hardware and its controller. The decision who may enter is not here: it is the
//! pure [`crate::policy`]; this module only carries it out, safely.
//!
//! * [`controller`]: the [`DoorController`](controller::DoorController) handle: bounded unlock
//!   pulses, the safe state on shutdown, health and events; [`worker`] is its door thread.
//! * [`output`]: the relay output ([`LockOutput`](output::LockOutput)) and its backends
//!   ([`output::rppal`], [`output::gpiocdev`], [`output::sim`]).
//! * [`input`]: door contact and request-to-exit inputs ([`DoorInput`](input::DoorInput)),
//!   debounced by [`debounce`].
//! * [`panic_guard`]: releases the relay to its safe state on any panic in the process.
//! * [`line`]: the GPIO line spec (`GPIO17`, `/dev/gpiochip4:GPIO17`, `/dev/gpiochip0:17`).

pub mod controller;
pub mod debounce;
pub mod input;
pub mod line;
pub mod output;
pub mod panic_guard;
pub mod worker;
