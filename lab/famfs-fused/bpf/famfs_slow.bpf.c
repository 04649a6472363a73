// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs_slow` ops: exactly `famfs`, plus a busy loop of `slow_iters` iterations (rodata) in
 * iomap_begin before it resolves. Not for use: the fault-path benchmark (`cargo xtask lab bench
 * fault --slow`) runs it to show that a real slowdown of the BPF resolve moves its ratio to the
 * native ops, i.e. that the benchmark can see a difference.
 */
#include "famfs_kernel_meta.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Iterations of the extra loop per iomap_begin. */
const volatile __u32 slow_iters = 512;
/* Where the loop's result goes, so that the compiler keeps the loop. */
__u64 slow_sink;

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(famfs_slow_parse_blob, struct fuse_dax_fmap_parse_ctx *pctx)
{
	struct parse_env env = { .ctx = pctx };

	return famfs_parse(&env);
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(famfs_slow_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	struct resolve_env env = { .ctx = rctx };
	__u64 acc = io->offset;
	int i;

	bpf_for(i, 0, slow_iters)
		acc = acc * 6364136223846793005ULL + (__u64)i;
	slow_sink = acc;
	return famfs_resolve_io(&env, io);
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_slow_ops = {
	.dax_fmap_parse = (void *)famfs_slow_parse_blob,
	.iomap_begin = (void *)famfs_slow_iomap_begin,
	.name = "famfs_slow",
};
