// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs_maplookup` ops: the same parse, but the meta goes into a BPF hash map keyed by nodeid
 * (Joanne Koong's prototype shape); iomap_begin looks it up. For the benchmark against `famfs`:
 * the lookup is the cost the seed argues against. The kernel meta buffer is unused.
 */
#include "kernel_env.bpf.h"
#include "famfs_meta.h"

#ifndef BPF_F_NO_PREALLOC
#define BPF_F_NO_PREALLOC (1U << 0)	/* uapi/linux/bpf.h */
#endif
#ifndef BPF_NOEXIST
#define BPF_NOEXIST 1			/* uapi/linux/bpf.h */
#endif

struct famfs_meta_buf {
	__u8 bytes[FAMFS_META_MAX_SIZE];
};

/*
 * Not preallocated: 65536 preallocated values of ~17 KiB are ~1.1 GiB, which fails the map
 * creation with ENOMEM on the lab's 1 GiB guests. Only the sleepable parse adds entries.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct famfs_meta_buf);
} famfs_metas SEC(".maps");

/*
 * Where a parse builds its meta before publishing it: the kernel may parse one file several
 * times at once (concurrent first opens each fetch the fmap; one meta is kept), and a parse
 * that zeroed and filled the live famfs_metas entry in place made a fault of another opener
 * read a zeroed or half-written meta (EIO). Each parse gets its own staging key, then
 * replaces the live entry in one update: a lookup sees the old meta or the new one.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct famfs_meta_buf);
} famfs_staging SEC(".maps");

/* The next staging key. */
static __u64 staging_seq;

/* A zeroed value to create entries from. */
static struct famfs_meta_buf zero_meta;

static __always_inline void *meta_at(void *mv, __u32 off, const __u32 size)
{
	if (!mv || off > FAMFS_META_MAX_SIZE - size)
		return NULL;
	return ((struct famfs_meta_buf *)mv)->bytes + off;
}

/*
 * Parse writes the map value through a dynptr: bpf_dynptr_data() checks the offset at run time
 * like the kernel's kfuncs do. Pointer arithmetic on the map value instead makes every offset
 * precise for the verifier, so the extent and strip loops never converge and parse fails to
 * load with E2BIG (program too complex).
 */
static __always_inline void *fmap_meta(struct parse_env *env, __u32 off, const __u32 size)
{
	return bpf_dynptr_data(env->meta_dp, off, size);
}

static __always_inline const void *fmap_rmeta(struct resolve_env *env, __u32 off, const __u32 size)
{
	return meta_at((void *)env->mv, off, size);
}

#include "famfs_logic.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(maplookup_parse, struct fuse_dax_fmap_parse_ctx *pctx)
{
	struct parse_env env = { .ctx = pctx };
	__u64 nodeid = pctx->nodeid;
	__u64 key = __sync_fetch_and_add(&staging_seq, 1);
	struct bpf_dynptr dp;
	void *mv;
	int err;

	err = bpf_map_update_elem(&famfs_staging, &key, &zero_meta, BPF_NOEXIST);
	if (err)
		return err;
	mv = bpf_map_lookup_elem(&famfs_staging, &key);
	if (!mv) {
		err = -ENOMEM;
		goto out;
	}
	err = bpf_dynptr_from_mem(mv, sizeof(struct famfs_meta_buf), 0, &dp);
	if (err)
		goto out;
	env.meta_dp = &dp;
	err = famfs_parse(&env);
	if (!err)
		err = bpf_map_update_elem(&famfs_metas, &nodeid, mv, BPF_ANY);
out:
	bpf_map_delete_elem(&famfs_staging, &key);
	return err;
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(maplookup_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	__u64 nodeid = rctx->nodeid;
	struct resolve_env env = { .ctx = rctx };

	env.mv = bpf_map_lookup_elem(&famfs_metas, &nodeid);
	if (!env.mv)
		return -EIO;
	return famfs_resolve_io(&env, io);
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_maplookup_ops = {
	.dax_fmap_parse = (void *)maplookup_parse,
	.iomap_begin = (void *)maplookup_iomap_begin,
	.name = "famfs_maplookup",
};
