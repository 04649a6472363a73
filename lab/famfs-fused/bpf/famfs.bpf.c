// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs` ops: dax_fmap_parse turns the famfs V10 blob into the compact meta of famfs_meta.h in
 * the kernel's per-inode buffer; iomap_begin reads that meta ONLY through
 * bpf_fuse_dax_resolve_get_meta() (one pointer dereference in the kernel, no map lookup).
 */
#include "kernel_env.bpf.h"

static __always_inline void *fmap_meta(struct parse_env *env, __u32 off, const __u32 size)
{
	return bpf_fuse_dax_parse_get_meta(env->ctx, off, size);
}

static __always_inline const void *fmap_rmeta(struct resolve_env *env, __u32 off, const __u32 size)
{
	return bpf_fuse_dax_resolve_get_meta(env->ctx, off, size);
}

#include "famfs_logic.bpf.h"

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
	struct famfs_mapping m = {};
	int err = famfs_resolve(&env, io->offset, &m);

	if (err)
		return err;
	fmap_fill_io(io, &m);
	return 0;
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_ops = {
	.dax_fmap_parse = (void *)famfs_parse_blob,
	.iomap_begin = (void *)famfs_iomap_begin,
	.name = "famfs",
};
