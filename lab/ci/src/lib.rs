//! The lab's CI, as data and pure functions:
//!
//! - [`matrix`] expands `ci/matrix.yaml` (axes, per-kernel settings,
//!   exclusions) to [`Cell`]s with stable ids, renders the GitHub
//!   `strategy.matrix` JSON (push and pull-request cells, or the nightly
//!   ones), and gives each cell's exact `cargo xtask lab up` arguments;
//! - [`expected`] reads the known failures and skips per kernel
//!   (`ci/expected/<kernel>.yaml`) and judges a run against them: XFAIL only
//!   for the expected message, XPASS for stale entries, FAIL for a SKIP the
//!   kernel has no excuse for;
//! - [`action`] checks the structure of the composite action `ci/action.yml`;
//! - [`summary`] renders a run's `results.json` as the Markdown job summary;
//! - [`skips`] finds the unit tests that printed `SKIP:` (a missing capability) in nextest's
//!   JUnit report.
//!
//! Bad input names the file, the line and the key; see [`Error`].

pub mod action;
pub mod error;
pub mod expected;
pub use lab_yaml_locate as locate;
pub mod matrix;
pub mod skips;
pub mod summary;

pub use error::{Error, Problem, Result};
pub use expected::{ExpectedFailure, ExpectedFailures};
pub use matrix::{Accel, Cell, Known, Matrix, Schedule};
