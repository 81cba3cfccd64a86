//! facegate's integration tests: one test binary (one link of tract and the models code, built
//! once per target), a module per subsystem. Each module keeps its file at `tests/<name>.rs`
//! (Cargo.toml: `autotests = false`, so a new file here is a module to declare below, not a
//! binary of its own).
//!
//! Run one subsystem with a test-name filter: `cargo test --test main enroll::`,
//! `FACEGATE_FUZZ_CASES=100000 cargo test --test main fuzz:: -- --nocapture`.
//! Process-wide state is shared by every module: the global allocator (`heap`), panic hooks
//! (the door's panic guard, the fuzz runner's hook) and resource limits; a test that panics on
//! purpose or changes a limit runs in a child process (`common::run_child`).

mod common;
mod heap;

mod arm_agreement;
mod audit;
mod camera;
mod camera_check;
mod cli;
mod daemon;
mod door;
mod enroll;
mod framing;
mod fuzz;
mod liveness;
mod models_check;
mod motion;
mod mqtt;
mod pipeline;
mod reference;
mod visits;
