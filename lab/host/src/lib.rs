//! Host side plumbing shared by every lab stage: where the caches live,
//! which host tools the lab needs (and installing them on Debian), and
//! running long commands with a log file and a progress bar.

pub mod apt;
pub mod cache_file;
pub mod lock;
pub mod paths;
pub mod prereqs;
pub mod prune;
pub mod run;
pub mod say;
pub mod stage;
