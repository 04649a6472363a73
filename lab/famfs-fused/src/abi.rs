//! The kernel FUSE protocol at 7.47 with the DAX fmap extension (kernels/famfs-bpf/README.md):
//! opcodes, flags and the wire structs, as zerocopy types. Native endian, like the kernel's.
//! Every struct's size is pinned by a `const` assert against include/uapi/linux/fuse.h.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const FUSE_KERNEL_VERSION: u32 = 7;
/// 7.46 in Linux 7.3; 7.47 with the famfs-bpf series.
pub const FUSE_KERNEL_MINOR_VERSION: u32 = 47;
pub const FUSE_ROOT_ID: u64 = 1;

/// Opcodes this server knows by name (others get ENOSYS).
pub mod op {
    pub const LOOKUP: u32 = 1;
    pub const FORGET: u32 = 2;
    pub const GETATTR: u32 = 3;
    pub const SETATTR: u32 = 4;
    pub const OPEN: u32 = 14;
    pub const READ: u32 = 15;
    pub const WRITE: u32 = 16;
    pub const STATFS: u32 = 17;
    pub const RELEASE: u32 = 18;
    pub const FLUSH: u32 = 25;
    pub const INIT: u32 = 26;
    pub const OPENDIR: u32 = 27;
    pub const READDIR: u32 = 28;
    pub const RELEASEDIR: u32 = 29;
    pub const ACCESS: u32 = 34;
    pub const INTERRUPT: u32 = 36;
    pub const DESTROY: u32 = 38;
    pub const NOTIFY_REPLY: u32 = 41;
    pub const BATCH_FORGET: u32 = 42;
    pub const READDIRPLUS: u32 = 44;
    pub const GET_FMAP: u32 = 54;
    pub const GET_DAXDEV: u32 = 55;

    /// Name for the stats file; `None` for opcodes without a name here.
    pub fn name(opcode: u32) -> Option<&'static str> {
        Some(match opcode {
            LOOKUP => "LOOKUP",
            FORGET => "FORGET",
            GETATTR => "GETATTR",
            SETATTR => "SETATTR",
            OPEN => "OPEN",
            READ => "READ",
            WRITE => "WRITE",
            STATFS => "STATFS",
            RELEASE => "RELEASE",
            FLUSH => "FLUSH",
            INIT => "INIT",
            OPENDIR => "OPENDIR",
            READDIR => "READDIR",
            RELEASEDIR => "RELEASEDIR",
            ACCESS => "ACCESS",
            INTERRUPT => "INTERRUPT",
            DESTROY => "DESTROY",
            BATCH_FORGET => "BATCH_FORGET",
            NOTIFY_REPLY => "NOTIFY_REPLY",
            READDIRPLUS => "READDIRPLUS",
            GET_FMAP => "GET_FMAP",
            GET_DAXDEV => "GET_DAXDEV",
            // Not handled (ENOSYS), named for the stats file.
            5 => "READLINK",
            8 => "MKNOD",
            9 => "MKDIR",
            10 => "UNLINK",
            11 => "RMDIR",
            12 => "RENAME",
            20 => "FSYNC",
            21 => "SETXATTR",
            22 => "GETXATTR",
            23 => "LISTXATTR",
            24 => "REMOVEXATTR",
            30 => "FSYNCDIR",
            35 => "CREATE",
            39 => "IOCTL",
            43 => "FALLOCATE",
            45 => "RENAME2",
            46 => "LSEEK",
            50 => "SYNCFS",
            52 => "STATX",
            _ => return None,
        })
    }
}

/// INIT flags (`flags` | `flags2` << 32).
pub mod flag {
    pub const ASYNC_READ: u64 = 1 << 0;
    pub const ATOMIC_O_TRUNC: u64 = 1 << 3;
    pub const BIG_WRITES: u64 = 1 << 5;
    pub const DO_READDIRPLUS: u64 = 1 << 13;
    pub const READDIRPLUS_AUTO: u64 = 1 << 14;
    pub const PARALLEL_DIROPS: u64 = 1 << 18;
    pub const MAX_PAGES: u64 = 1 << 22;
    pub const INIT_EXT: u64 = 1 << 30;
    /// The famfs-bpf series' flag (flags2 bit 12). Bit 43 is FUSE_HAS_IO_URING_BUFPOOL in 7.3.
    pub const DAX_FMAP: u64 = 1 << 44;
}

/// SETATTR `valid` bits.
pub mod fattr {
    pub const MODE: u32 = 1 << 0;
    pub const UID: u32 = 1 << 1;
    pub const GID: u32 = 1 << 2;
    pub const SIZE: u32 = 1 << 3;
    pub const ATIME: u32 = 1 << 4;
    pub const MTIME: u32 = 1 << 5;
    pub const ATIME_NOW: u32 = 1 << 7;
    pub const MTIME_NOW: u32 = 1 << 8;
    pub const CTIME: u32 = 1 << 10;
    pub const KILL_SUIDGID: u32 = 1 << 11;
}

pub const FUSE_DAX_FMAP_OPS_NAME_LEN: usize = 16;
pub const FUSE_DAX_FMAP_MAX_BLOB: usize = 65536;
pub const FUSE_DAX_FMAP_MAX_META: u32 = 65536;
pub const FUSE_DAX_FMAP_MAX_DEVS: u32 = 24;
pub const DAXDEV_NAME_LEN: usize = 256;

macro_rules! wire {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $f:ident : $t:ty),* $(,)? } = $size:expr) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        const _: () = assert!(size_of::<$name>() == $size);
    };
}

wire!(
    InHeader {
        len: u32,
        opcode: u32,
        unique: u64,
        nodeid: u64,
        uid: u32,
        gid: u32,
        pid: u32,
        /// Length of extensions in 8-byte units, at the end of the message.
        total_extlen: u16,
        padding: u16,
    } = 40
);

wire!(
    OutHeader {
        len: u32,
        error: i32,
        unique: u64
    } = 16
);

wire!(
    InitIn {
        major: u32,
        minor: u32,
        max_readahead: u32,
        flags: u32,
        flags2: u32,
        unused: [u32; 11],
    } = 64
);

wire!(
    /// 7.3's fuse_init_out with `dax_fmap_ops[16]` carved from `unused`: same size.
    InitOut {
        major: u32, minor: u32, max_readahead: u32, flags: u32,
        max_background: u16, congestion_threshold: u16, max_write: u32, time_gran: u32,
        max_pages: u16, map_alignment: u16, flags2: u32, max_stack_depth: u32,
        request_timeout: u16, dax_fmap_ops: [u8; FUSE_DAX_FMAP_OPS_NAME_LEN], unused: [u16; 3],
    } = 64
);

wire!(
    Attr {
        ino: u64,
        size: u64,
        blocks: u64,
        atime: u64,
        mtime: u64,
        ctime: u64,
        atimensec: u32,
        mtimensec: u32,
        ctimensec: u32,
        mode: u32,
        nlink: u32,
        uid: u32,
        gid: u32,
        rdev: u32,
        blksize: u32,
        flags: u32,
    } = 88
);

wire!(
    EntryOut {
        nodeid: u64,
        generation: u64,
        entry_valid: u64,
        attr_valid: u64,
        entry_valid_nsec: u32,
        attr_valid_nsec: u32,
        attr: Attr,
    } = 128
);

wire!(
    AttrOut {
        attr_valid: u64,
        attr_valid_nsec: u32,
        dummy: u32,
        attr: Attr
    } = 104
);
wire!(ForgetIn { nlookup: u64 } = 8);
wire!(
    ForgetOne {
        nodeid: u64,
        nlookup: u64
    } = 16
);
wire!(
    BatchForgetIn {
        count: u32,
        dummy: u32
    } = 8
);
wire!(
    GetattrIn {
        getattr_flags: u32,
        dummy: u32,
        fh: u64
    } = 16
);

wire!(
    SetattrIn {
        valid: u32,
        padding: u32,
        fh: u64,
        size: u64,
        lock_owner: u64,
        atime: u64,
        mtime: u64,
        ctime: u64,
        atimensec: u32,
        mtimensec: u32,
        ctimensec: u32,
        mode: u32,
        unused4: u32,
        uid: u32,
        gid: u32,
        unused5: u32,
    } = 88
);

wire!(
    OpenIn {
        flags: u32,
        open_flags: u32
    } = 8
);
wire!(
    OpenOut {
        fh: u64,
        open_flags: u32,
        backing_id: i32
    } = 16
);
wire!(
    ReleaseIn {
        fh: u64,
        flags: u32,
        release_flags: u32,
        lock_owner: u64
    } = 24
);
wire!(
    FlushIn {
        fh: u64,
        unused: u32,
        padding: u32,
        lock_owner: u64
    } = 24
);

wire!(
    ReadIn {
        fh: u64,
        offset: u64,
        size: u32,
        read_flags: u32,
        lock_owner: u64,
        flags: u32,
        padding: u32,
    } = 40
);

wire!(
    AccessIn {
        mask: u32,
        padding: u32
    } = 8
);
wire!(InterruptIn { unique: u64 } = 8);

wire!(
    Kstatfs {
        blocks: u64,
        bfree: u64,
        bavail: u64,
        files: u64,
        ffree: u64,
        bsize: u32,
        namelen: u32,
        frsize: u32,
        padding: u32,
        spare: [u32; 6],
    } = 80
);

wire!(
    /// The fixed part of a directory entry; the name follows, padded to 8 bytes.
    Dirent { ino: u64, off: u64, namelen: u32, typ: u32 } = 24
);

wire!(
    /// GET_FMAP reply head; the opaque blob follows.
    GetFmapOut { meta_size: u32, flags: u32, reserved: u64 } = 16
);

wire!(
    GetDaxdevIn {
        index: u32,
        reserved: u32
    } = 8
);

/// GET_DAXDEV reply: a NUL-terminated device path.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
pub struct GetDaxdevOut {
    pub name: [u8; DAXDEV_NAME_LEN],
}
const _: () = assert!(size_of::<GetDaxdevOut>() == 256);

/// `d_type` values for directory entries.
pub const DT_DIR: u32 = 4;
pub const DT_REG: u32 = 8;

/// Round up to the 8-byte record alignment of dirents.
pub fn rec_align(n: usize) -> usize {
    (n + 7) & !7
}
