// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `evil_oob` ops, for negative tests: parses like `famfs`, then iomap_begin returns a mapping
 * the kernel must refuse (-EIO / SIGBUS and a log line, never a mapping). The flavour is rodata,
 * set by famfs-fused `--evil FLAVOUR` before load:
 *   0 past-end      addr at the end of the device (evil_dev_size) or 1 TiB further if unknown
 *   1 other-device  dev_index = evil_dev_index (a slot the file never declared)
 *   2 overflow      addr so that addr + length wraps around 2^64
 *   3 long-length   length longer than requested
 *   4 zero-length   length 0
 *   5 bad-type      type not MAPPED
 *   6 straddle-end  [addr, addr + length) starts inside the device (evil_dev_size) and ends
 *                   one page past its end (a one-page request: just past the end)
 *   7 other-file    dev_index = evil_dev_index, addr = evil_addr + offset: inside a device
 *                   and a file range that another file declared
 *   8 short-length  the right mapping, length min(evil_length, requested): 1..PAGE_SIZE-1
 *                   on a PTE fault, which DAX cannot map
 *   9 misaligned    the right mapping, addr + evil_length: not page aligned like the offset
 *  10 alias         every page of the file at the one device page evil_addr (inside the
 *                   file's own extent): one device page mapped at many file offsets
 *  11 chunk-overrun the right mapping with the requested length, not cut at the end of the
 *                   chunk: on an interleaved file it runs on into the device bytes of the
 *                   strip's next run (another file offset)
 *  12 no-ranges     the parse sets the slots and the size like famfs but declares no range
 *                   (iomap_begin as famfs): the kernel must refuse the open
 *  13 kfunc-bounds  before parsing like famfs, asks the parse kfuncs for what they must
 *                   refuse: a blob view that starts inside the blob and ends past it, one
 *                   at its end, a meta view that ends past the meta buffer, slots 24 and 31.
 *                   A kfunc that hands it out fails the parse with an errno naming it
 *                   (EBADE blob, EBADR meta, EXFULL slot); otherwise famfs as usual
 *  14 no-size       the parse declares the slots and the ranges like famfs but never sets
 *                   the file size: the kernel must refuse the open
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

const volatile __u32 evil_flavour = 0;
const volatile __u64 evil_dev_size = 0;
const volatile __u32 evil_dev_index = 23;
const volatile __u64 evil_addr = 0;
const volatile __u64 evil_length = 1;

#define EVIL_NO_RANGES 12
#define EVIL_KFUNC_BOUNDS 13
#define EVIL_NO_SIZE 14

/* errnos of a kfunc that handed out what it must refuse (kfunc-bounds) */
#define EVIL_EBADE 52
#define EVIL_EBADR 53
#define EVIL_EXFULL 54

/* famfs_logic.bpf.h declares its ranges through this: no-ranges drops them all */
static __always_inline int evil_declare_range(struct parse_env *env, __u32 slot, __u64 dev_offset,
					      __u64 len, __u64 file_offset, __u64 chunk,
					      __u64 stride)
{
	if (evil_flavour == EVIL_NO_RANGES)
		return 0;
	return fmap_declare_range(env, slot, dev_offset, len, file_offset, chunk, stride);
}
#define fmap_declare_range evil_declare_range

/* ... and sets the size through this: no-size never does */
static __always_inline int evil_set_size(struct parse_env *env, __u64 size)
{
	if (evil_flavour == EVIL_NO_SIZE)
		return 0;
	return fmap_set_size(env, size);
}
#define fmap_set_size evil_set_size

#include "famfs_logic.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(evil_parse, struct fuse_dax_fmap_parse_ctx *pctx)
{
	struct parse_env env = { .ctx = pctx };

	if (evil_flavour == EVIL_KFUNC_BOUNDS) {
		__u32 blob_size = pctx->blob_size;
		__u32 meta_size = pctx->meta_size;

		/* 8 bytes from 4 before the end: starts inside, ends past the blob */
		if (blob_size >= 4 && bpf_fuse_dax_parse_get_blob(pctx, blob_size - 4, 8))
			return -EVIL_EBADE;
		if (bpf_fuse_dax_parse_get_blob(pctx, blob_size, 1))
			return -EVIL_EBADE;
		if (meta_size >= 4 && bpf_fuse_dax_parse_get_meta(pctx, meta_size - 4, 8))
			return -EVIL_EBADR;
		if (bpf_fuse_dax_parse_get_meta(pctx, meta_size, 1))
			return -EVIL_EBADR;
		if (bpf_fuse_dax_parse_set_dev(pctx, 24) != -22 ||
		    bpf_fuse_dax_parse_set_dev(pctx, 31) != -22)
			return -EVIL_EXFULL;
	}
	return famfs_parse(&env);
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(evil_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	struct resolve_env env = { .ctx = rctx };
	struct famfs_mapping m = {};
	__u64 want = io->length;
	int err = famfs_resolve(&env, io->offset, &m);

	if (err)
		return err;
	fmap_fill_io(io, &m);
	switch (evil_flavour) {
	case 0:
		io->addr = evil_dev_size ? evil_dev_size : m.dev_offset + (1ULL << 40);
		break;
	case 1:
		io->dev_index = evil_dev_index;
		break;
	case 2:
		/* addr + length wraps for every length, even 1 byte */
		io->addr = ~0ULL;
		break;
	case 3:
		io->length = want + FAMFS_ALIGN;
		break;
	case 4:
		io->length = 0;
		break;
	case 5:
		io->type = 0;
		break;
	case 6: {
		__u64 pages = (io->length + 4095) & ~4095ULL;

		io->addr = evil_dev_size + 4096 - pages + (io->offset & 4095);
		break;
	}
	case 7:
		io->dev_index = evil_dev_index;
		io->addr = evil_addr + io->offset;
		break;
	case 8:
		if (evil_length < io->length)
			io->length = evil_length;
		break;
	case 9:
		io->addr += evil_length;
		break;
	case 10: {
		__u64 in_page = io->offset & 4095;

		io->addr = evil_addr + in_page;
		if (io->length > 4096 - in_page)
			io->length = 4096 - in_page;
		break;
	}
	case 11:
		io->length = want;
		break;
	case EVIL_NO_RANGES:
	case EVIL_KFUNC_BOUNDS:
	case EVIL_NO_SIZE:
		break;
	default:
		io->type = 0;
		break;
	}
	return 0;
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops evil_oob_ops = {
	.dax_fmap_parse = (void *)evil_parse,
	.iomap_begin = (void *)evil_iomap_begin,
	.name = "evil_oob",
};
