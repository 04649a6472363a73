//! The suites, one module per suite (`main.rs` dispatches a case to its suite's `run`), and the
//! case groups a suite hands some of its cases to (`ranges`, `registration`, `namespaces`,
//! `notify`, `teardown`, `region_bytes`, `bench_probe`).

pub mod bench;
pub mod bench_probe;
pub mod bpf_load;
pub mod devmissing;
pub mod fault;
pub mod faults;
pub mod fuzz;
pub mod kfunc_bounds;
pub mod namespaces;
pub mod notify;
pub mod open;
pub mod ranges;
pub mod region_bytes;
pub mod registration;
pub mod security;
pub mod selftest;
pub mod shared;
pub mod shared_poison;
pub mod smoke;
pub mod stress;
pub mod teardown;
pub mod truncate;
pub mod user_tree_check;
