//! Builds the BPF objects in bpf/ with clang `-target bpf` and generates their libbpf-rs
//! skeletons into OUT_DIR. Kernel-free: the kernel types come from bpf/fmap_abi.bpf.h.

use libbpf_cargo::SkeletonBuilder;
use std::path::PathBuf;

/// bpf/NAME.bpf.c -> OUT_DIR/NAME.skel.rs. `test_harness` is only used by the host tests.
const OBJECTS: [&str; 9] = [
    "famfs",
    "famfs_maplookup",
    "famfs_slow",
    "famfs_direct",
    "famfs_kfunc",
    "famfs_trivial",
    "evil_oob",
    "reject_all",
    "test_harness",
];
const HEADERS: [&str; 6] = [
    "fmap_abi.bpf.h",
    "famfs_meta.h",
    "famfs_logic.bpf.h",
    "kernel_env.bpf.h",
    "famfs_slots.bpf.h",
    "famfs_kernel_meta.bpf.h",
];

fn main() {
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bpf = manifest.join("bpf");
    for h in HEADERS {
        println!("cargo:rerun-if-changed={}", bpf.join(h).display());
    }
    for name in OBJECTS {
        let src = bpf.join(format!("{name}.bpf.c"));
        println!("cargo:rerun-if-changed={}", src.display());
        let result = SkeletonBuilder::new()
            .source(&src)
            .obj(out.join(format!("{name}.bpf.o")))
            .clang_args([
                std::ffi::OsString::from("-I"),
                bpf.clone().into_os_string(),
                "-Wall".into(),
            ])
            .build_and_generate(out.join(format!("{name}.skel.rs")));
        if let Err(e) = result {
            panic!("building {}: {e:#}", src.display());
        }
    }
}
