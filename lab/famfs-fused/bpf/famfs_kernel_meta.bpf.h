/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The famfs logic with its meta in the kernel's per-inode buffer, reached only through the
 * parse and resolve kfuncs: the memory accessors famfs_logic.bpf.h asks of its includer, for
 * the ops that keep the meta where the seed's design puts it (famfs, famfs_kfunc, famfs_slow).
 */
#ifndef FAMFS_KERNEL_META_BPF_H
#define FAMFS_KERNEL_META_BPF_H

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

#endif /* FAMFS_KERNEL_META_BPF_H */
