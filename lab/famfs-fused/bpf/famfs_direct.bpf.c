// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs_direct` ops (fault benchmark only): famfs's parse and resolve logic, but the meta is in
 * a global table (famfs_slots.bpf.h) that iomap_begin reads with plain loads instead of the
 * resolve kfunc. Against `famfs` it shows what bpf_fuse_dax_resolve_get_meta() costs; against
 * `famfs_trivial` what the resolve logic costs.
 */
#include "famfs_slots.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(direct_parse, struct fuse_dax_fmap_parse_ctx *pctx)
{
	return famfs_slots_parse(pctx);
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(direct_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	struct famfs_slot *slot = famfs_slot_of(rctx->nodeid);
	struct resolve_env env = { .ctx = rctx };

	if (!famfs_slot_owned(slot, rctx))
		return -EIO;
	env.mv = slot->meta;
	return famfs_resolve_io(&env, io);
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_direct_ops = {
	.dax_fmap_parse = (void *)direct_parse,
	.iomap_begin = (void *)direct_iomap_begin,
	.name = "famfs_direct",
};
