//! The loader's plumbing on whatever kernel runs the tests: on the famfs-bpf kernel every BPF
//! variant loads and attaches; on any other kernel loading fails for the one right reason (no
//! `fuse_dax_fmap_ops` in the kernel's BTF) with libbpf's messages carried in the error.
//! Where bpf(2) or the kernel's BTF is missing (an unprivileged container), it prints `SKIP:`
//! and why, and passes.

use famfs_fused::bpf::{load, BpfOptions};
use famfs_fused::ops::OpsKind;

fn kernel_has_the_ops() -> bool {
    let btf =
        std::fs::read("/sys/kernel/btf/vmlinux").expect("this test needs /sys/kernel/btf/vmlinux");
    btf.windows(17).any(|w| w == b"fuse_dax_fmap_ops")
}

#[test]
fn every_bpf_variant_loads_or_fails_for_the_missing_ops_type() {
    use famfs_fused::probe;
    if probe::skip(probe::bpf_unavailable().or_else(probe::kernel_btf_unavailable)) {
        return;
    }
    let has = kernel_has_the_ops();
    for kind in [
        OpsKind::Famfs,
        OpsKind::FamfsMaplookup,
        OpsKind::EvilOob,
        OpsKind::RejectAll,
    ] {
        match load(kind, &BpfOptions::default()) {
            Ok(a) => {
                assert!(
                    has,
                    "{kind:?} loaded on a kernel without fuse_dax_fmap_ops?"
                );
                assert_eq!(a.expect("BPF variant").ops, kind.name());
            }
            Err(e) => {
                assert!(!has, "{kind:?} failed on the famfs-bpf kernel:\n{e}");
                let text = e.to_string();
                // libbpf stops at the first missing piece: one of our kfuncs or the ops type.
                let why = text.contains("'bpf_fuse_dax_") && text.contains("not found in kernel")
                    || text.contains("fuse_dax_fmap_ops is not found in kernel BTF");
                assert!(why, "{kind:?}: unexpected failure:\n{text}");
                assert!(text.contains("--- libbpf messages ---"), "{text}");
            }
        }
    }
    assert!(load(OpsKind::FamfsNative, &BpfOptions::default())
        .expect("native loads nothing")
        .is_none());
}
