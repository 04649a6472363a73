// SPDX-License-Identifier: GPL-2.0-only OR MIT
/*
 * `reject_all` ops, for negative tests: every parse fails with -reject_errno (rodata, EPERM
 * unless famfs-fused `--reject-errno N` says otherwise), so every open of a file fails with it.
 */
#include "fmap_abi.bpf.h"

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 reject_errno = EPERM;

SEC("struct_ops.s/dax_fmap_parse")
int BPF_PROG(reject_parse, struct fuse_dax_fmap_parse_ctx *pctx)
{
	return -(int)reject_errno;
}

SEC("struct_ops/iomap_begin")
int BPF_PROG(reject_iomap_begin, struct fuse_dax_fmap_resolve_ctx *rctx, struct fuse_iomap_io *io)
{
	return -EIO;
}

SEC(".struct_ops.link")
struct fuse_dax_fmap_ops reject_all_ops = {
	.dax_fmap_parse = (void *)reject_parse,
	.iomap_begin = (void *)reject_iomap_begin,
	.name = "reject_all",
};
