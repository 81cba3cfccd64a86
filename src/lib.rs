//! facegate: face-unlock for an office door.
//!
//! A frame reads from camera to lock through modules named for their job: [`face`] finds,
//! aligns and embeds faces; [`gallery`] holds enrolled embeddings and matches against them;
//! [`eval`] measures verification accuracy; [`bench`] measures speed; [`assemble`] builds the
//! lock, camera, gallery and import policy from a configuration; [`cli`] is the command line
//! (only `main.rs` calls it).
//! See README.md for the whole picture.

pub mod assemble;
pub mod audit;
pub mod bench;
pub mod camera;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod diagnose;
pub mod door;
pub mod enroll;
pub mod error;
pub mod eval;
pub mod eval_enroll;
pub mod face;
pub mod frame;
pub mod fsutil;
pub mod gallery;
pub mod imageio;
pub mod metrics;
pub mod models;
pub mod mqtt;
pub mod pad;
pub mod panics;
pub mod parallel;
pub mod plot;
pub mod policy;
pub mod seal;
pub mod statelock;

pub use error::{Error, Result};
