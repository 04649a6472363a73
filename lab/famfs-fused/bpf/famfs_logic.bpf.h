/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The famfs fmap logic shared by the BPF variants and the host test harness: parse a V10 blob
 * into the famfs_meta.h layout, and resolve a file offset from that meta. Same rules and errnos
 * as famfs-fmap's decode()/resolve() in Rust (the harness test checks it): extent count outside
 * 1..32 is -ERANGE, everything else wrong is -EINVAL.
 *
 * The includer defines, before including this file, how memory is reached:
 *   struct parse_env, struct resolve_env
 *   const void *fmap_blob(struct parse_env *, __u32 off, const __u32 size)   NULL if out of range
 *   void *fmap_meta(struct parse_env *, __u32 off, const __u32 size)         NULL if out of range
 *   __u32 fmap_blob_size(struct parse_env *)
 *   int fmap_set_dev(struct parse_env *, __u32 index)
 *   int fmap_set_size(struct parse_env *, __u64 size)
 *   int fmap_declare_range(struct parse_env *, __u32 slot, __u64 dev_offset, __u64 len,
 *                          __u64 file_offset, __u64 chunk, __u64 stride)
 *   const void *fmap_rmeta(struct resolve_env *, __u32 off, const __u32 size)
 * all static __always_inline, so sizes reach the kfuncs as constants.
 *
 * Loops: parse uses open-coded iterators (bpf_for), which the verifier checks to convergence
 * instead of walking every iteration: 32 extents x 32 strips as plain bounded loops cost ~242k
 * verified instructions (and >1M when offsets are precise), bpf_for ~2.3k. Resolve, on the
 * fault path, keeps a plain bounded loop (no iterator kfunc calls; ~2k to verify).
 * tests/bpf_harness.rs measures both.
 */
#ifndef FAMFS_LOGIC_BPF_H
#define FAMFS_LOGIC_BPF_H

#include "famfs_meta.h"

struct famfs_mapping {
	__u64 dev_offset;
	__u64 length;
	__u32 dev_index;
};

static __always_inline __u64 famfs_sat_add(__u64 a, __u64 b)
{
	return a + b < a ? ~0ULL : a + b;
}

/* Chunks strip s must hold: chunk k of the extent goes to strip k % ns. (Compared as
 * `chunks > len / c`, which is `chunks * c > len` without the overflow.) */
static __always_inline __u64 famfs_strip_chunks(__u64 nbytes, __u64 c, __u32 ns, __u32 s)
{
	__u64 chunks;

	if (!c || !ns)
		return 0;
	chunks = nbytes / c + (nbytes % c ? 1 : 0);
	if (s >= chunks)
		return 0;
	return (chunks - s + ns - 1) / ns;
}

static __always_inline int famfs_check_range(__u32 dev, __u64 off, __u64 len)
{
	if (dev >= FUSE_DAX_FMAP_MAX_DEVS)
		return -EINVAL;
	if (off % FAMFS_ALIGN || !len || len % FAMFS_ALIGN)
		return -EINVAL;
	if (off + len < off)
		return -EINVAL;
	return 0;
}

/* Declare the device bytes of one extent or strip, unless they all lie at or past EOF (never
 * resolved): the kernel refuses files whose ranges overlap, and maps nothing outside them. */
static __always_inline int famfs_declare(struct parse_env *env, __u32 dev, __u64 off, __u64 len,
					 __u64 file_offset, __u64 file_size, __u64 c, __u64 stride)
{
	if (!len || file_offset >= file_size)
		return 0;
	return fmap_declare_range(env, dev, off, len, file_offset, c, stride);
}

/* One strip of interleaved extent `ext`: check it, declare its device and its chunks (chunk k
 * of the extent is run k / ns of strip k % ns, at file offset base + k * c), store it. */
static __always_inline int famfs_parse_strip(struct parse_env *env, __u32 *cur, __u32 n, __u32 j,
					     __u64 nbytes, __u64 c, __u32 ns, __u32 s,
					     __u64 base, __u64 file_size)
{
	__u64 need;

	const struct famfs_fmap_simple_ext *st;
	struct famfs_meta_strip *ms;
	int err;

	st = fmap_blob(env, *cur, sizeof(*st));
	if (!st)
		return -EINVAL;
	*cur += sizeof(*st);
	err = famfs_check_range(st->devindex, st->offset, st->len);
	if (err)
		return err;
	need = famfs_strip_chunks(nbytes, c, ns, s);
	if (need > st->len / c)
		return -EINVAL;
	ms = fmap_meta(env, FAMFS_META_STRIP_OFF(n, j), sizeof(*ms));
	if (!ms)
		return -EINVAL;
	ms->dev_offset = st->offset;
	ms->dev_index = st->devindex;
	err = fmap_set_dev(env, st->devindex);
	if (err)
		return err;
	return famfs_declare(env, st->devindex, st->offset, need * c,
			     famfs_sat_add(base, (__u64)s * c), file_size, c, (__u64)ns * c);
}

/* Parse the blob into meta; returns 0 or a negative errno. */
static __always_inline int famfs_parse(struct parse_env *env)
{
	const struct famfs_fmap_header *h;
	struct famfs_meta_hdr *mh;
	__u32 cur = sizeof(*h), n, ext_type, i, s, nstrips_total = 0;
	__u64 file_size, covered = 0;
	int err;

	h = fmap_blob(env, 0, sizeof(*h));
	if (!h)
		return -EINVAL;
	if (h->fmap_version != 1 || h->file_type > 2 || h->ext_type > FAMFS_EXT_INTERLEAVED)
		return -EINVAL;
	n = h->nextents;
	if (n < 1 || n > FAMFS_MAX_EXTENTS)
		return -ERANGE;
	ext_type = h->ext_type;
	file_size = h->file_size;

	bpf_for(i, 0, n) {
		struct famfs_meta_ext *me;

		me = fmap_meta(env, FAMFS_META_EXT_OFF(i), sizeof(*me));
		if (!me)
			return -EINVAL;
		me->file_offset = covered;
		if (ext_type == FAMFS_EXT_SIMPLE) {
			const struct famfs_fmap_simple_ext *se = fmap_blob(env, cur, sizeof(*se));

			if (!se)
				return -EINVAL;
			cur += sizeof(*se);
			err = famfs_check_range(se->devindex, se->offset, se->len);
			if (err)
				return err;
			me->length = se->len;
			me->dev_offset = se->offset;
			me->dev_index = se->devindex;
			err = fmap_set_dev(env, se->devindex);
			if (err)
				return err;
			err = famfs_declare(env, se->devindex, se->offset, se->len, covered,
					    file_size, 0, 0);
			if (err)
				return err;
			covered = famfs_sat_add(covered, se->len);
		} else {
			const struct famfs_fmap_interleaved_ext *ie = fmap_blob(env, cur, sizeof(*ie));
			__u64 c, nbytes;
			__u32 ns;

			if (!ie)
				return -EINVAL;
			cur += sizeof(*ie);
			ns = ie->nstrips;
			c = ie->chunk_size;
			nbytes = ie->nbytes;
			if (ns < 1 || ns > FAMFS_MAX_STRIPS)
				return -EINVAL;
			if (!c || c % FAMFS_ALIGN || !nbytes || nbytes % FAMFS_ALIGN)
				return -EINVAL;
			me->length = nbytes;
			me->chunk_size = c;
			me->nstrips = ns;
			me->first_strip = nstrips_total;
			bpf_for(s, 0, ns) {
				err = famfs_parse_strip(env, &cur, n, nstrips_total, nbytes, c, ns, s,
							covered, file_size);
				if (err)
					return err;
				nstrips_total++;
			}
			covered = famfs_sat_add(covered, nbytes);
		}
	}
	if (cur != fmap_blob_size(env))
		return -EINVAL;
	if (covered < file_size)
		return -EINVAL;
	mh = fmap_meta(env, 0, sizeof(*mh));
	if (!mh)
		return -EINVAL;
	mh->magic = FAMFS_META_MAGIC;
	mh->ext_type = ext_type;
	mh->nextents = n;
	mh->nstrips_total = nstrips_total;
	mh->file_size = file_size;
	mh->mapped_size = covered;
	return fmap_set_size(env, file_size);
}

/* Where file offset `off` lives, from the meta. -EINVAL at or past EOF, -EIO for a bad meta. */
static __always_inline int famfs_resolve(struct resolve_env *env, __u64 off, struct famfs_mapping *out)
{
	const struct famfs_meta_hdr *h = fmap_rmeta(env, 0, sizeof(*h));
	__u32 n, i;

	if (!h || h->magic != FAMFS_META_MAGIC)
		return -EIO;
	if (off >= h->file_size)
		return -EINVAL;
	n = h->nextents;
#pragma clang loop unroll(disable)
	for (i = 0; i < FAMFS_MAX_EXTENTS; i++) {
		const struct famfs_meta_ext *e;
		__u64 local;

		if (i >= n)
			break;
		e = fmap_rmeta(env, FAMFS_META_EXT_OFF(i), sizeof(*e));
		if (!e)
			return -EIO;
		if (off < e->file_offset || off - e->file_offset >= e->length)
			continue;
		local = off - e->file_offset;
		if (h->ext_type == FAMFS_EXT_SIMPLE) {
			out->dev_index = e->dev_index;
			out->dev_offset = e->dev_offset + local;
			out->length = e->length - local;
		} else {
			const struct famfs_meta_strip *st;
			__u64 c = e->chunk_size, ns = e->nstrips, chunk, in_chunk, len;

			if (!c || !ns)
				return -EIO;
			chunk = local / c;
			in_chunk = local % c;
			st = fmap_rmeta(env, FAMFS_META_STRIP_OFF(n, e->first_strip + (__u32)(chunk % ns)),
					sizeof(*st));
			if (!st)
				return -EIO;
			out->dev_index = st->dev_index;
			out->dev_offset = st->dev_offset + (chunk / ns) * c + in_chunk;
			len = c - in_chunk;
			if (len > e->length - local)
				len = e->length - local;
			out->length = len;
		}
		return 0;
	}
	return -EIO;
}

#ifdef FMAP_HAVE_IOMAP_IO
/* Fill `io` from a mapping: never more than was asked for. */
static __always_inline void fmap_fill_io(struct fuse_iomap_io *io, const struct famfs_mapping *m)
{
	__u64 want = io->length;

	io->addr = m->dev_offset;
	io->length = m->length < want ? m->length : want;
	io->type = FUSE_IOMAP_TYPE_MAPPED;
	io->dev_index = m->dev_index;
}

/* Resolve io->offset and fill `io` from the mapping; the resolve's errno otherwise. */
static __always_inline int famfs_resolve_io(struct resolve_env *env, struct fuse_iomap_io *io)
{
	struct famfs_mapping m = {};
	int err = famfs_resolve(env, io->offset, &m);

	if (err)
		return err;
	fmap_fill_io(io, &m);
	return 0;
}
#endif

#endif /* FAMFS_LOGIC_BPF_H */
