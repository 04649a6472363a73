// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * Host test harness (not loaded by the server): famfs_logic.bpf.h, the parse and resolve code of
 * the `famfs`, `famfs_maplookup` and `evil_oob` ops, compiled against global buffers instead of
 * the kernel's kfuncs, as BPF_PROG_TYPE_SYSCALL programs. tests/bpf_harness.rs loads it into the
 * host kernel with BPF_PROG_TEST_RUN and compares the results with famfs-fmap's Rust model: the
 * verifier accepts the loops, and the C gives the Rust answers, before any famfs-bpf kernel runs.
 */
#include "fmap_abi.bpf.h"
#include "famfs_meta.h"

#define BLOB_CAP 65536

__u8 blob_buf[BLOB_CAP];
__u32 blob_size;
__u8 meta_buf[FAMFS_META_MAX_SIZE];
__u32 meta_size;

/* parse results */
__u32 dev_bitmap;
__u64 parsed_size;
__u32 nr_ranges;

/* resolve input and results */
__u64 req_offset;
__u64 out_dev_offset;
__u64 out_length;
__u32 out_dev_index;

/* The blob and the meta are reached through dynptrs over the global buffers: like the kernel's
 * kfuncs, bpf_dynptr_data() takes a plain scalar offset and a constant size and returns NULL
 * when out of range, so the verifier sees the same kind of program as in the real ops. */
struct parse_env {
	struct bpf_dynptr *blob;
	struct bpf_dynptr *meta;
};

struct resolve_env {
	struct bpf_dynptr *meta;
};

static __always_inline const void *fmap_blob(struct parse_env *env, __u32 off, const __u32 size)
{
	return bpf_dynptr_data(env->blob, off, size);
}

static __always_inline void *fmap_meta(struct parse_env *env, __u32 off, const __u32 size)
{
	return bpf_dynptr_data(env->meta, off, size);
}

static __always_inline const void *fmap_rmeta(struct resolve_env *env, __u32 off, const __u32 size)
{
	return bpf_dynptr_data(env->meta, off, size);
}

static __always_inline __u32 fmap_blob_size(struct parse_env *env)
{
	return blob_size;
}

static __always_inline int fmap_set_dev(struct parse_env *env, __u32 index)
{
	if (index >= FUSE_DAX_FMAP_MAX_DEVS)
		return -EINVAL;
	dev_bitmap |= 1U << index;
	return 0;
}

static __always_inline int fmap_set_size(struct parse_env *env, __u64 size)
{
	parsed_size = size;
	return 0;
}

static __always_inline int fmap_declare_range(struct parse_env *env, __u32 slot, __u64 dev_offset,
					      __u64 len, __u64 file_offset, __u64 chunk,
					      __u64 stride)
{
	if (slot >= FUSE_DAX_FMAP_MAX_DEVS || !len || (chunk ? stride < chunk : stride != 0))
		return -EINVAL;
	if (nr_ranges >= FUSE_DAX_FMAP_MAX_RANGES)
		return -E2BIG;
	nr_ranges++;
	dev_bitmap |= 1U << slot;
	return 0;
}

#include "famfs_logic.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* Dynptrs over [0, blob_size) and [0, meta_size) of the global buffers. */
static __always_inline int harness_dynptrs(struct bpf_dynptr *blob, struct bpf_dynptr *meta)
{
	__u32 bs = blob_size, ms = meta_size;

	if (bs > BLOB_CAP || ms > FAMFS_META_MAX_SIZE)
		return -E2BIG;
	if (bpf_dynptr_from_mem(blob_buf, bs, 0, blob) || bpf_dynptr_from_mem(meta_buf, ms, 0, meta))
		return -EINVAL;
	return 0;
}

SEC("syscall")
int harness_parse(void *ctx)
{
	struct bpf_dynptr blob, meta;
	struct parse_env env = { .blob = &blob, .meta = &meta };
	int err = harness_dynptrs(&blob, &meta);

	if (err)
		return err;
	nr_ranges = 0;
	return famfs_parse(&env);
}

SEC("syscall")
int harness_resolve(void *ctx)
{
	struct bpf_dynptr blob, meta;
	struct resolve_env env = { .meta = &meta };
	struct famfs_mapping m = {};
	int err = harness_dynptrs(&blob, &meta);

	if (err)
		return err;
	err = famfs_resolve(&env, req_offset, &m);
	if (err)
		return err;
	out_dev_offset = m.dev_offset;
	out_length = m.length;
	out_dev_index = m.dev_index;
	return 0;
}
