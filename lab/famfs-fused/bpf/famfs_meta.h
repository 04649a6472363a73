/* SPDX-License-Identifier: GPL-2.0-only OR MIT */
/*
 * The per-file meta the `famfs` BPF ops build in dax_fmap_parse and read in iomap_begin: the
 * famfs fmap with the extents pre-decoded for the fault path (each extent knows its file offset,
 * so iomap_begin needs no running sums). Plain C with __u* types: usable from BPF, from the
 * kernel (the native module may adopt it) and mirrored in Rust (famfs-fused src/meta.rs, which
 * computes the meta_size it sends in GET_FMAP and checks these sizes).
 *
 * Layout: header | ext[nextents] | strip[nstrips_total]
 *   meta_size = 32 + 40 * nextents + 16 * nstrips_total   (at most 17696)
 */
#ifndef FAMFS_META_H
#define FAMFS_META_H

#define FAMFS_META_MAGIC 0x464d4554 /* "FMET" */
#define FAMFS_MAX_EXTENTS 32
#define FAMFS_MAX_STRIPS 32
#define FAMFS_ALIGN (2ULL << 20)

#define FAMFS_EXT_SIMPLE 0
#define FAMFS_EXT_INTERLEAVED 1

struct famfs_meta_hdr {
	__u32 magic;
	__u16 ext_type;      /* FAMFS_EXT_* */
	__u16 nextents;
	__u32 nstrips_total; /* strips over all interleaved extents */
	__u32 reserved;
	__u64 file_size;
	__u64 mapped_size;   /* file bytes the extents hold */
};

struct famfs_meta_ext {
	__u64 file_offset;   /* where this extent starts in the file */
	__u64 length;        /* simple: len; interleaved: nbytes */
	__u64 dev_offset;    /* simple only */
	__u64 chunk_size;    /* interleaved only */
	__u32 dev_index;     /* simple only */
	__u16 nstrips;       /* interleaved only */
	__u16 first_strip;   /* interleaved only: index of strip 0 in the strip table */
};

struct famfs_meta_strip {
	__u64 dev_offset;
	__u32 dev_index;
	__u32 reserved;
};

#define FAMFS_META_HDR_SIZE 32
#define FAMFS_META_EXT_SIZE 40
#define FAMFS_META_STRIP_SIZE 16
#define FAMFS_META_MAX_SIZE \
	(FAMFS_META_HDR_SIZE + FAMFS_MAX_EXTENTS * FAMFS_META_EXT_SIZE + \
	 FAMFS_MAX_EXTENTS * FAMFS_MAX_STRIPS * FAMFS_META_STRIP_SIZE)

_Static_assert(sizeof(struct famfs_meta_hdr) == FAMFS_META_HDR_SIZE, "famfs_meta_hdr size");
_Static_assert(sizeof(struct famfs_meta_ext) == FAMFS_META_EXT_SIZE, "famfs_meta_ext size");
_Static_assert(sizeof(struct famfs_meta_strip) == FAMFS_META_STRIP_SIZE, "famfs_meta_strip size");

#define FAMFS_META_EXT_OFF(i) (FAMFS_META_HDR_SIZE + (i) * FAMFS_META_EXT_SIZE)
#define FAMFS_META_STRIP_OFF(nextents, j) \
	(FAMFS_META_HDR_SIZE + (nextents) * FAMFS_META_EXT_SIZE + (j) * FAMFS_META_STRIP_SIZE)

/* The famfs fmap blob (famfs V10 GET_FMAP reply), as famfs-fmap's wire.rs. */
struct famfs_fmap_header {
	__u8 file_type;
	__u8 reserved0;
	__u16 fmap_version;
	__u32 ext_type;
	__u32 nextents;
	__u32 reserved1;
	__u64 file_size;
	__u64 reserved2;
};

struct famfs_fmap_simple_ext {
	__u32 devindex;
	__u32 reserved;
	__u64 offset;
	__u64 len;
};

struct famfs_fmap_interleaved_ext {
	__u32 nstrips;
	__u32 chunk_size;
	__u64 nbytes;
	__u64 reserved;
};

_Static_assert(sizeof(struct famfs_fmap_header) == 32, "famfs_fmap_header size");
_Static_assert(sizeof(struct famfs_fmap_simple_ext) == 24, "famfs_fmap_simple_ext size");
_Static_assert(sizeof(struct famfs_fmap_interleaved_ext) == 24, "famfs_fmap_interleaved_ext size");

#endif /* FAMFS_META_H */
