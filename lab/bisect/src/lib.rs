//! Automated bisection (`cargo xtask lab bisect`), the pure part: which step to test next
//! ([`search`]), what one run of a step says ([`verdict`]), whether a failure is the same
//! kind as the one being bisected ([`signature`]), the case's window of the serial log
//! ([`excerpt`]), and the result with its JSON and text ([`report`]). Building and running a
//! step is the caller's (xtask), through the lab's own kernel build and runner.

pub mod excerpt;
pub mod report;
pub mod search;
pub mod signature;
pub mod verdict;
