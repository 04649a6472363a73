//! lab-report: turns famfs-lab results into text (KTAP, JUnit XML, JSON, a
//! human summary) and finds kernel splats in logs. No I/O beyond
//! [`write_run_dir`].

pub mod error;
pub mod junit;
pub mod ktap;
pub mod model;
pub mod run_dir;
pub mod splat;
pub mod summary;

#[cfg(test)]
mod fixture;

pub use error::{Error, Result};
pub use model::{
    CaseReport, Counts, Outcome, RunReport, SuiteReport, EXIT_CASES_FAILED, EXIT_LAB_ERROR,
};
pub use run_dir::write_run_dir;
pub use splat::{Splat, SplatKind};
