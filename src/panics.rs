//! Panics that are expected and contained where they happen, kept apart from the door's panic
//! guard ([`crate::door::panic_guard`]), which releases the relay on any *other* panic.
//!
//! The camera and the door both use this module and neither reaches into the other: the camera
//! wraps a known third-party panic in [`contain_panic`], and the guard's hook asks
//! [`is_contained`] before it trips.

use std::cell::Cell;

thread_local! {
    static CONTAINED_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f`, which may panic, under `catch_unwind` without tripping the panic guard: for known,
/// contained panics in third-party code (v4l's stream Drop after a camera is unplugged). Any
/// other panic still releases the relay to the safe state.
pub fn contain_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    CONTAINED_PANIC.with(|c| c.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CONTAINED_PANIC.with(|c| c.set(false));
    r
}

/// `true` while this thread runs inside [`contain_panic`]: a panic hook then leaves the panic
/// to the `catch_unwind` that contains it.
pub fn is_contained() -> bool {
    CONTAINED_PANIC.with(|c| c.get())
}
