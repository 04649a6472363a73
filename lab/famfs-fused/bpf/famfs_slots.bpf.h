/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The fault benchmark's breakdown variants (famfs_direct, famfs_trivial) keep each file's
 * famfs meta in a global table of slots (.bss) instead of the kernel's per-inode buffer, so
 * that iomap_begin reaches it with plain loads: no kfunc, no map lookup helper. A file's slot
 * is nodeid % FAMFS_NSLOTS; the slot records the nodeid, and iomap_begin answers -EIO when it
 * holds another file's meta (two live files in one slot). Bench only: fine for a mount of a
 * few dozen files, wrong for a real one. A meta larger than FAMFS_SLOT_META fails the parse.
 */
#ifndef FAMFS_SLOTS_BPF_H
#define FAMFS_SLOTS_BPF_H

#include "kernel_env.bpf.h"
#include "famfs_meta.h"

#define FAMFS_NSLOTS 64
#define FAMFS_SLOT_META 1024

struct famfs_slot {
	__u64 nodeid;
	__u8 meta[FAMFS_SLOT_META];
};

struct famfs_slot famfs_slots[FAMFS_NSLOTS];

static __always_inline struct famfs_slot *famfs_slot_of(__u64 nodeid)
{
	return &famfs_slots[nodeid % FAMFS_NSLOTS];
}

static __always_inline void *slot_meta_at(const void *meta, __u32 off, const __u32 size)
{
	if (!meta || off > FAMFS_SLOT_META - size)
		return NULL;
	return (__u8 *)meta + off;
}

/* Parse writes the slot through a dynptr (as famfs_maplookup writes its map value). */
static __always_inline void *fmap_meta(struct parse_env *env, __u32 off, const __u32 size)
{
	return bpf_dynptr_data(env->meta_dp, off, size);
}

static __always_inline const void *fmap_rmeta(struct resolve_env *env, __u32 off, const __u32 size)
{
	return slot_meta_at(env->mv, off, size);
}

#include "famfs_logic.bpf.h"

/* The parse of both variants: famfs's, into the file's slot. */
static __always_inline int famfs_slots_parse(struct fuse_dax_fmap_parse_ctx *pctx)
{
	struct parse_env env = { .ctx = pctx };
	__u64 nodeid = pctx->nodeid;
	struct famfs_slot *slot = famfs_slot_of(nodeid);
	struct bpf_dynptr dp;
	int err;

	slot->nodeid = 0;
	err = bpf_dynptr_from_mem(slot->meta, sizeof(slot->meta), 0, &dp);
	if (err)
		return err;
	env.meta_dp = &dp;
	err = famfs_parse(&env);
	if (!err)
		slot->nodeid = nodeid;
	return err;
}

/*
 * Whether `slot` holds the meta of the file iomap_begin asks about. Callers test this and
 * return before touching slot->meta: a helper returning "meta or NULL" lets clang merge the
 * NULL test into the nodeid compare, and the verifier then sees a scalar dereferenced.
 */
static __always_inline int famfs_slot_owned(const struct famfs_slot *slot,
					    const struct fuse_dax_fmap_resolve_ctx *rctx)
{
	return slot->nodeid == rctx->nodeid;
}

/*
 * The trivial resolve: files of ONE simple extent only (the bench's `one` files and the open
 * workloads' files). `e` is the file's extent 0; anything else is -EIO, never a wrong mapping.
 */
static __always_inline int famfs_one_extent(const struct famfs_meta_ext *e, struct fuse_iomap_io *io)
{
	__u64 off = io->offset, want = io->length, len;

	if (!e || e->nstrips || e->file_offset || off >= e->length)
		return -EIO;
	len = e->length - off;
	io->addr = e->dev_offset + off;
	io->length = len < want ? len : want;
	io->type = FUSE_IOMAP_TYPE_MAPPED;
	io->dev_index = e->dev_index;
	return 0;
}

#endif /* FAMFS_SLOTS_BPF_H */
