//! The test crate's global allocator (one per binary): the system allocator, measuring per
//! thread so parallel tests do not disturb each other.
//!
//! * [`largest_of`]: the largest single allocation a closure makes (camera.rs: a hostile frame
//!   is refused without allocating what its header claims);
//! * [`peak_of`]: the peak heap growth of a closure (fuzz.rs: each case's heap bound);
//! * no single allocation may exceed [`MAX_REQUEST`]: it is refused (null), which aborts the
//!   binary with "memory allocation of N bytes failed" instead of letting a hostile header make
//!   the test machine swap or OOM.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The largest single allocation the allocator grants.
pub const MAX_REQUEST: usize = 1 << 30;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

pub struct Meter;

fn requested(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

fn grew(size: usize) {
    let _ = LIVE.try_with(|l| {
        let now = l.get() + size as isize;
        l.set(now);
        let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
    });
}

fn shrank(size: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get() - size as isize));
}

unsafe impl GlobalAlloc for Meter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        requested(layout.size());
        if layout.size() > MAX_REQUEST {
            return std::ptr::null_mut();
        }
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        requested(layout.size());
        if layout.size() > MAX_REQUEST {
            return std::ptr::null_mut();
        }
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        requested(new_size);
        if new_size > MAX_REQUEST {
            return std::ptr::null_mut();
        }
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            shrank(layout.size());
            grew(new_size);
        }
        p
    }
}

#[global_allocator]
static METER: Meter = Meter;

/// Runs `f` and returns its result and the largest single allocation it asked for on this
/// thread.
pub fn largest_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(Cell::get))
}

/// Runs `f` and returns its result and the peak heap growth (bytes) on this thread.
pub fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = f();
    let peak = PEAK.with(Cell::get) - base;
    (r, peak.max(0) as usize)
}
