//! lab-runner
