/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/* famfs_logic.bpf.h's accessors for the real ops: the kernel's blob and kfuncs. Each variant
 * adds fmap_meta() and fmap_rmeta() (where its meta lives). */
#ifndef KERNEL_ENV_BPF_H
#define KERNEL_ENV_BPF_H

#include "fmap_abi.bpf.h"

/*
 * `meta_dp` (parse) and `mv` (resolve): where a variant keeps its meta instead of the kernel's
 * buffer (famfs_maplookup: a hash map value).
 */
struct parse_env {
	struct fuse_dax_fmap_parse_ctx *ctx;
	struct bpf_dynptr *meta_dp;
};

struct resolve_env {
	struct fuse_dax_fmap_resolve_ctx *ctx;
	const void *mv;
};

static __always_inline const void *fmap_blob(struct parse_env *env, __u32 off, const __u32 size)
{
	return bpf_fuse_dax_parse_get_blob(env->ctx, off, size);
}

static __always_inline __u32 fmap_blob_size(struct parse_env *env)
{
	return env->ctx->blob_size;
}

static __always_inline int fmap_set_dev(struct parse_env *env, __u32 index)
{
	return bpf_fuse_dax_parse_set_dev(env->ctx, index);
}

static __always_inline int fmap_set_size(struct parse_env *env, __u64 size)
{
	return bpf_fuse_dax_parse_set_size(env->ctx, size);
}

static __always_inline int fmap_declare_range(struct parse_env *env, __u32 slot, __u64 dev_offset,
					      __u64 len, __u64 file_offset, __u64 chunk,
					      __u64 stride)
{
	struct fuse_dax_fmap_range r = {
		.dev_offset = dev_offset,
		.length = len,
		.file_offset = file_offset,
		.chunk = chunk,
		.stride = stride,
		.slot = slot,
	};

	return bpf_fuse_dax_parse_declare_range(env->ctx, &r);
}

/* famfs_logic.bpf.h adds fmap_fill_io() for these ops. */
#define FMAP_HAVE_IOMAP_IO 1

#endif /* KERNEL_ENV_BPF_H */
