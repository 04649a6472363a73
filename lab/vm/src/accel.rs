//! placeholder
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel { Kvm, Tcg }
