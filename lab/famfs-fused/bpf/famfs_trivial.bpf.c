// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs_trivial` ops (fault benchmark only): the least an iomap_begin can do and still map
 * right. The meta is in the global table of famfs_slots.bpf.h (plain loads, no kfunc), and only
 * files of one simple extent are mapped (offset + the extent's device offset); any other file's
 * faults get -EIO. What it costs over the native ops is the struct_ops call itself.
 */
#include "famfs_slots.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(trivial_parse, struct fuse_dax_fmap_parse_ctx *pctx)
{
	return famfs_slots_parse(pctx);
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(trivial_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	struct famfs_slot *slot = famfs_slot_of(rctx->nodeid);

	if (!famfs_slot_owned(slot, rctx))
		return -EIO;
	return famfs_one_extent(slot_meta_at(slot->meta, FAMFS_META_EXT_OFF(0),
					     sizeof(struct famfs_meta_ext)), io);
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_trivial_ops = {
	.dax_fmap_parse = (void *)trivial_parse,
	.iomap_begin = (void *)trivial_iomap_begin,
	.name = "famfs_trivial",
};
