//! The fault-path benchmark's host side (`cargo xtask lab bench fault`): the guest case
//! `bench.fault` writes raw per-touch timings ([`lab_suite::benchdata`]); this crate turns
//! them into statistics per cell ([`stats`]), order effects ([`position`]), `bench.json`
//! ([`model`]), the table on stdout ([`table`]), an SVG chart ([`chart`]) and the change
//! between two runs ([`compare`]).

pub mod boot;
pub mod chart;
pub mod compare;
pub mod model;
pub mod position;
pub mod stats;
pub mod table;
