// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `famfs_kfunc` ops (fault benchmark only): famfs's parse into the kernel's meta buffer, and an
 * iomap_begin that calls bpf_fuse_dax_resolve_get_meta() once (extent 0) and maps like
 * `famfs_trivial`: files of one simple extent only, -EIO for any other. Against
 * `famfs_trivial` it shows what one call of the resolve kfunc costs.
 */
#include "famfs_kernel_meta.bpf.h"

char LICENSE[] SEC("license") = "GPL";

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(kfunc_parse, struct fuse_dax_fmap_parse_ctx *pctx)
{
	struct parse_env env = { .ctx = pctx };

	return famfs_parse(&env);
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(kfunc_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	const struct famfs_meta_ext *e;
	__u64 off = io->offset, want = io->length, len;

	e = (const void *)bpf_fuse_dax_resolve_get_meta(rctx, FAMFS_META_EXT_OFF(0), sizeof(*e));
	if (!e || e->nstrips || e->file_offset || off >= e->length)
		return -EIO;
	len = e->length - off;
	io->addr = e->dev_offset + off;
	io->length = len < want ? len : want;
	io->type = FUSE_IOMAP_TYPE_MAPPED;
	io->dev_index = e->dev_index;
	return 0;
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops famfs_kfunc_ops = {
	.dax_fmap_parse = (void *)kfunc_parse,
	.iomap_begin = (void *)kfunc_iomap_begin,
	.name = "famfs_kfunc",
};
