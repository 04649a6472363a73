/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The kernel side of the FUSE DAX fmap ABI as BPF programs see it, declared here from
 * kernels/famfs-bpf/README.md ("BPF-visible kernel types" and "kfuncs").
 *
 * Why not a vmlinux.h generated from the built kernel: that would make every `cargo build` of
 * famfs-fused wait for (and depend on) a kernel build. These declarations carry
 * __attribute__((preserve_access_index)), so every field access is a CO-RE relocation that
 * libbpf resolves against the running kernel's BTF at load time: if the kernel lays the structs
 * out differently, loading still works; if a field is missing, loading fails naming it.
 * The kfuncs are `extern ... __ksym`: libbpf resolves them against kernel BTF too, and a missing
 * kfunc fails the load with its name.
 */
#ifndef FMAP_ABI_BPF_H
#define FMAP_ABI_BPF_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef signed char __s8;
typedef short __s16;
typedef int __s32;
typedef long long __s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u64 __be64;
typedef __u32 __wsum;

/* From include/uapi/linux/bpf.h, for the helpers' prototypes. */
struct bpf_dynptr {
	__u64 __opaque[2];
} __attribute__((aligned(8)));

/* Open-coded numeric iterator state (bpf_for()), from include/uapi/linux/bpf.h. */
struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

/* From include/uapi/linux/bpf.h (no system uapi headers under -target bpf). */
#define BPF_MAP_TYPE_HASH 1
#define BPF_ANY 0

#define EPERM 1
#define EIO 5
#define E2BIG 7
#define ENOMEM 12
#define EINVAL 22
#define ERANGE 34

#define FUSE_DAX_FMAP_OPS_NAME_LEN 16
#define FUSE_DAX_FMAP_MAX_DEVS 24
#define FUSE_IOMAP_TYPE_MAPPED 2

struct fuse_iomap_io {
	__u64 offset;    /* in: requested file offset; must stay unchanged */
	__u64 length;    /* in: requested length; out: mapped length (> 0, <= in) */
	__u64 addr;      /* out: byte offset in the dax device */
	__u16 type;      /* out: FUSE_IOMAP_TYPE_MAPPED */
	__u16 flags;     /* reserved, 0 */
	__u32 dev_index; /* out: slot 0..23 */
} __attribute__((preserve_access_index));

struct fuse_dax_fmap_parse_ctx {
	__u64 nodeid;
	__u32 blob_size;
	__u32 meta_size;
} __attribute__((preserve_access_index));

struct fuse_dax_fmap_resolve_ctx {
	__u64 nodeid;
	__u64 file_size;
	__u32 meta_size;
	__u32 reserved;
} __attribute__((preserve_access_index));

/* Device bytes a file may map (series v2 "declared ranges"): [dev_offset, dev_offset + length)
 * of `slot`, at file offset file_offset on; with chunk != 0 cut in runs of `chunk` bytes that
 * are `stride` bytes apart in the file. All page aligned; flags 0. */
struct fuse_dax_fmap_range {
	__u64 dev_offset;
	__u64 length;
	__u64 file_offset;
	__u64 chunk;
	__u64 stride;
	__u32 slot;
	__u32 flags;
} __attribute__((preserve_access_index));

#define FUSE_DAX_FMAP_MAX_RANGES 1024

/* libbpf matches the members of a struct_ops map to the kernel type by name; `owner` is set by
 * the kernel and left out here. */
struct fuse_dax_fmap_ops {
	int (*dax_fmap_parse)(struct fuse_dax_fmap_parse_ctx *ctx);
	int (*iomap_begin)(struct fuse_dax_fmap_resolve_ctx *ctx, struct fuse_iomap_io *io);
	char name[FUSE_DAX_FMAP_OPS_NAME_LEN];
};

/* Parse kfuncs: only from dax_fmap_parse (sleepable). Pointers are NULL when offset + size is
 * outside the blob / meta buffer; the size must be a constant (the verifier bounds the memory). */
extern const __u8 *bpf_fuse_dax_parse_get_blob(struct fuse_dax_fmap_parse_ctx *ctx, __u32 offset,
					       const __u32 rdonly_buf_size) __ksym;
extern __u8 *bpf_fuse_dax_parse_get_meta(struct fuse_dax_fmap_parse_ctx *ctx, __u32 offset,
					 const __u32 rdwr_buf_size) __ksym;
extern int bpf_fuse_dax_parse_set_dev(struct fuse_dax_fmap_parse_ctx *ctx, __u32 index) __ksym;
extern int bpf_fuse_dax_parse_set_size(struct fuse_dax_fmap_parse_ctx *ctx, __u64 size) __ksym;
/* Declares the range's slot too. The open fails (EINVAL within the file, EBUSY against another
 * live file) if ranges overlap on a device; iomap_begin results must lie in one range, at the
 * file offset it gives them. */
extern int bpf_fuse_dax_parse_declare_range(struct fuse_dax_fmap_parse_ctx *ctx,
					    const struct fuse_dax_fmap_range *range) __ksym;

/* Resolve kfunc: only from iomap_begin (not sleepable). */
extern const __u8 *bpf_fuse_dax_resolve_get_meta(struct fuse_dax_fmap_resolve_ctx *ctx, __u32 offset,
						 const __u32 rdonly_buf_size) __ksym;

#endif /* FMAP_ABI_BPF_H */
