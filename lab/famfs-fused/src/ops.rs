//! The fmap ops variants the server can name at INIT, and the meta size each needs per file.

use crate::meta;
use famfs_fmap::FileMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpsKind {
    /// BPF: parse into the compact meta; iomap_begin reads it through the resolve kfunc.
    #[value(name = "famfs")]
    Famfs,
    /// BPF: parse into a hash map keyed by nodeid; iomap_begin looks it up.
    #[value(name = "famfs_maplookup")]
    FamfsMaplookup,
    /// BPF, benchmark only: `famfs` plus a busy loop in iomap_begin (a synthetic slowdown).
    #[value(name = "famfs_slow")]
    FamfsSlow,
    /// BPF, benchmark only: famfs's logic, the meta in a global table read with plain loads
    /// (no resolve kfunc).
    #[value(name = "famfs_direct")]
    FamfsDirect,
    /// BPF, benchmark only: one resolve kfunc call, then a one-extent mapping (no resolve
    /// logic); files of one simple extent only.
    #[value(name = "famfs_kfunc")]
    FamfsKfunc,
    /// BPF, benchmark only: a one-extent mapping from a global table (no kfunc, no resolve
    /// logic); files of one simple extent only.
    #[value(name = "famfs_trivial")]
    FamfsTrivial,
    /// No BPF: name the kernel's native ops (CONFIG_FUSE_DAX_FMAP_NATIVE_TEST).
    #[value(name = "famfs_native")]
    FamfsNative,
    /// BPF, negative tests: valid parse, iomap_begin returns what the kernel must refuse.
    #[value(name = "evil_oob")]
    EvilOob,
    /// BPF, negative tests: every parse fails.
    #[value(name = "reject_all")]
    RejectAll,
}

/// meta_size for variants that keep nothing in the kernel's buffer (0 is -EINVAL there).
pub const MIN_META: u32 = 8;

impl OpsKind {
    /// The ops name sent in `fuse_init_out.dax_fmap_ops` (also the struct_ops `.name`).
    pub fn name(self) -> &'static str {
        match self {
            OpsKind::Famfs => "famfs",
            OpsKind::FamfsMaplookup => "famfs_maplookup",
            OpsKind::FamfsSlow => "famfs_slow",
            OpsKind::FamfsDirect => "famfs_direct",
            OpsKind::FamfsKfunc => "famfs_kfunc",
            OpsKind::FamfsTrivial => "famfs_trivial",
            OpsKind::FamfsNative => "famfs_native",
            OpsKind::EvilOob => "evil_oob",
            OpsKind::RejectAll => "reject_all",
        }
    }

    /// What GET_FMAP's `meta_size` says for `map`. `famfs_native` is given the `famfs` layout's
    /// size (bpf/famfs_meta.h; the native module may use that layout).
    pub fn meta_size(self, map: &FileMap) -> u32 {
        match self {
            OpsKind::Famfs
            | OpsKind::FamfsSlow
            | OpsKind::FamfsKfunc
            | OpsKind::EvilOob
            | OpsKind::FamfsNative => meta::meta_size(map),
            OpsKind::FamfsMaplookup
            | OpsKind::FamfsDirect
            | OpsKind::FamfsTrivial
            | OpsKind::RejectAll => MIN_META,
        }
    }

    /// The largest `meta_size` any valid famfs blob needs with these ops (32 extents of 32
    /// strips for the meta layouts; [`MIN_META`] for ops that keep nothing in the buffer).
    pub fn max_meta_size(self) -> u32 {
        match self {
            OpsKind::Famfs
            | OpsKind::FamfsSlow
            | OpsKind::FamfsKfunc
            | OpsKind::EvilOob
            | OpsKind::FamfsNative => meta::MAX_SIZE as u32,
            OpsKind::FamfsMaplookup
            | OpsKind::FamfsDirect
            | OpsKind::FamfsTrivial
            | OpsKind::RejectAll => MIN_META,
        }
    }

    pub fn loads_bpf(self) -> bool {
        self != OpsKind::FamfsNative
    }
}
