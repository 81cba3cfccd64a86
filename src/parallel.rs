//! One worker pool for the evaluation commands (`eval`, `eval-pad`, `eval-enroll`,
//! `eval-visits`): every item processed once by `threads` workers, each with state of its own
//! (a face engine holds per-thread tract states and buffers), with a progress bar; results in
//! input order.

use crate::error::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// `work(&mut state, item)` for every item, on `threads` workers whose state comes from
/// `init` (called once per worker). The first error of an `init` is returned; `work` reports
/// per-item failures in its own result type.
pub fn map_with_progress<I, S, T>(
    items: &[I],
    threads: usize,
    label: &str,
    init: impl Fn() -> Result<S> + Sync,
    work: impl Fn(&mut S, &I) -> T + Sync,
) -> Result<Vec<T>>
where
    I: Sync,
    T: Send,
{
    let bar = ProgressBar::new(items.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} images, {per_sec}, eta {eta}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(label.to_string());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<T>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let first_error: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut state = match init() {
                    Ok(state) => state,
                    Err(e) => {
                        first_error.lock().unwrap().get_or_insert(e);
                        return;
                    }
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= items.len() {
                        break;
                    }
                    let r = work(&mut state, &items[i]);
                    results.lock().unwrap()[i] = Some(r);
                    bar.inc(1);
                }
            });
        }
    });
    bar.finish_and_clear();
    if let Some(e) = first_error.into_inner().unwrap() {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every item processed"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_once_in_order_and_init_errors_surface() {
        let items: Vec<u32> = (0..100).collect();
        let out = map_with_progress(
            &items,
            3,
            "t",
            || Ok(0u32),
            |n, x| {
                *n += 1;
                x * 2
            },
        )
        .unwrap();
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        let e = map_with_progress(
            &items,
            2,
            "t",
            || Err::<(), _>(Error::Invalid("no engine".into())),
            |_, x| *x,
        )
        .unwrap_err();
        assert!(e.to_string().contains("no engine"), "{e}");
    }
}
