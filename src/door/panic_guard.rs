//! The panic guard: a panic anywhere in the process drives the relay to its safe state
//! (de-energised) before the panic message is printed, and latches the door in emergency.
//!
//! [`install_panic_guard`] chains a process-wide panic hook in front of the previous one. The
//! hook never blocks: it sets an atomic emergency flag (which the door thread checks before
//! every write and which refuses all later unlocks), wakes the thread, then tries
//! (`try_lock`, for at most ~50 ms) to take the output and de-energise it directly, from the
//! panicking thread, before the default hook prints the message. If the output's lock is held
//! (the door thread is in the middle of a write, or the panic happened *inside* a write), the
//! door thread de-energises it instead: it re-checks the flag while holding the output, and a
//! guard on its stack releases the relay when it exits, even by unwinding. The hook holds only a
//! weak reference, so it does nothing once the controller is gone. With `panic = "abort"` the
//! hook still runs (it runs before the abort) but the unwinding fallback does not.
//!
//! After a panic the controller stays latched in the emergency state ([`Health::emergency`](super::controller::Health::emergency),
//! [`DoorController::emergency`]), with the panicking thread and message in
//! [`Health::panic`](super::controller::Health::panic): the daemon checks it every turn of its loop, audits it and exits
//! non-zero, so that systemd restarts it (issue 10 finding 9).
//!
//! A known, contained panic in third-party code (v4l's stream `Drop` after a camera is
//! unplugged) runs under [`crate::panics::contain_panic`] and does not trip the guard.

use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};
use std::time::Duration;

use super::controller::{DoorController, Shared};

/// Installs a process-wide panic hook that de-energises `controller`'s relay (its safe state)
/// before the previously installed hook (normally the default message) runs.
///
/// Call it once per controller, right after [`DoorController::start`]. The hook holds a weak
/// reference: after the controller is dropped it does nothing. See the
/// [module documentation](self) for how it avoids deadlocks.
pub fn install_panic_guard(controller: &DoorController) {
    let weak = Arc::downgrade(&controller.shared);
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !crate::panics::is_contained() {
            if let Some(shared) = weak.upgrade() {
                emergency_release(&shared, describe_panic(info));
            }
        }
        previous(info);
    }));
}

/// "thread 'name' panicked at file:line: message", for the daemon's log and audit record.
fn describe_panic(info: &std::panic::PanicHookInfo<'_>) -> String {
    let payload = info.payload();
    let msg = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string payload)");
    let thread = std::thread::current();
    let at = info
        .location()
        .map(|l| format!(" at {}:{}", l.file(), l.line()))
        .unwrap_or_default();
    let mut text = format!(
        "thread '{}' panicked{at}: {msg}",
        thread.name().unwrap_or("<unnamed>")
    );
    if text.len() > 1000 {
        let mut cut = 1000;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

fn emergency_release(shared: &Shared, what: String) {
    use std::io::Write;
    // Never block in the hook: keep the first panic's description if the lock is busy.
    if let Ok(mut p) = shared.panic.try_lock() {
        p.get_or_insert(what);
    }
    shared.emergency.store(true, Ordering::SeqCst);
    shared.wake.notify_all();
    for _ in 0..50 {
        let mut out = match shared.output.try_lock() {
            Ok(out) => out,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        let result = out.set_energised(false);
        let mut err = std::io::stderr();
        let _ = match result {
            Ok(()) => writeln!(
                err,
                "facegate: panic: relay de-energised ({})",
                out.describe()
            ),
            Err(e) => writeln!(
                err,
                "facegate: panic: could not de-energise the relay: {e}; the door thread retries"
            ),
        };
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "facegate: panic: the relay is busy; the door thread de-energises it"
    );
}
