//! `--ops`: the fmap ops the cases mount with, a closed choice (the variants famfs-fused knows,
//! [`lab_suite::KNOWN_OPS`]), so a typo fails at parse time with the valid names.

use clap::ValueEnum;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Ops {
    /// BPF: the design under test (meta behind one pointer).
    #[value(name = "famfs")]
    Famfs,
    /// BPF: the fmaps in a hash map keyed by node id.
    #[value(name = "famfs_maplookup")]
    FamfsMaplookup,
    /// The kernel's C module (CONFIG_FUSE_DAX_FMAP_NATIVE_TEST), no BPF.
    #[value(name = "famfs_native")]
    FamfsNative,
    /// BPF: famfs plus a busy loop in iomap_begin (the benchmark's known slowdown).
    #[value(name = "famfs_slow")]
    FamfsSlow,
    /// BPF, benchmark only: famfs's logic on a global table (no resolve kfunc).
    #[value(name = "famfs_direct")]
    FamfsDirect,
    /// BPF, benchmark only: one resolve kfunc call, no resolve logic (one-extent files).
    #[value(name = "famfs_kfunc")]
    FamfsKfunc,
    /// BPF, benchmark only: no kfunc, no resolve logic (one-extent files).
    #[value(name = "famfs_trivial")]
    FamfsTrivial,
    /// BPF, negative: iomap_begin answers what the kernel must refuse.
    #[value(name = "evil_oob")]
    EvilOob,
    /// BPF, negative: every parse fails.
    #[value(name = "reject_all")]
    RejectAll,
}

impl Ops {
    /// The name famfs-fused and the guest's cases know it by.
    pub fn name(self) -> &'static str {
        match self {
            Ops::Famfs => "famfs",
            Ops::FamfsMaplookup => "famfs_maplookup",
            Ops::FamfsNative => "famfs_native",
            Ops::FamfsSlow => "famfs_slow",
            Ops::FamfsDirect => "famfs_direct",
            Ops::FamfsKfunc => "famfs_kfunc",
            Ops::FamfsTrivial => "famfs_trivial",
            Ops::EvilOob => "evil_oob",
            Ops::RejectAll => "reject_all",
        }
    }
}

impl fmt::Display for Ops {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_choice_is_exactly_what_the_guest_accepts() {
        let ours: Vec<&str> = Ops::value_variants().iter().map(|o| o.name()).collect();
        assert_eq!(ours, lab_suite::KNOWN_OPS);
        for o in Ops::value_variants() {
            let pv = o.to_possible_value().expect("every variant is a choice");
            assert_eq!(pv.get_name(), o.name());
        }
    }

    #[test]
    fn a_wrong_name_is_refused_with_the_valid_ones() {
        #[derive(clap::Parser)]
        struct Cli {
            #[arg(long, value_enum)]
            ops: Ops,
        }
        use clap::Parser;
        let err = Cli::try_parse_from(["x", "--ops", "famfs-native"])
            .err()
            .expect("not a valid name")
            .to_string();
        assert!(err.contains("famfs-native"), "{err}");
        for o in lab_suite::KNOWN_OPS {
            assert!(err.contains(o), "{o} missing from: {err}");
        }
        let ok = Cli::try_parse_from(["x", "--ops", "famfs_slow"]).expect("valid");
        assert_eq!(ok.ops, Ops::FamfsSlow);
    }
}
