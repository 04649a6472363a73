//! Loading and attaching the BPF fmap ops (bpf/*.bpf.c, skeletons built by build.rs).
