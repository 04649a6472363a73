// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs` ops: dax_fmap_parse turns the famfs V10 blob into the compact meta of famfs_meta.h in
 * the kernel's per-inode buffer; iomap_begin reads that meta ONLY through
 * bpf_fuse_dax_resolve_get_meta() (one pointer dereference in the kernel, no map lookup).
 */
#include "famfs_kernel_meta.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(famfs_parse_blob, struct fuse_dax_fmap_parse_ctx *pctx)
{
	struct parse_env env = { .ctx = pctx };

	return famfs_parse(&env);
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(famfs_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	struct resolve_env env = { .ctx = rctx };

	return famfs_resolve_io(&env, io);
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_ops = {
	.dax_fmap_parse = (void *)famfs_parse_blob,
	.iomap_begin = (void *)famfs_iomap_begin,
	.name = "famfs",
};
