#![allow(dead_code)]
//! Building servers, requests and reading replies for the protocol tests.

use famfs_fmap::{Extents, FileMap, FileType, InterleavedExtent, SimpleExtent, FMAP_ALIGN};
use famfs_fused::abi::{InHeader, OutHeader};
use famfs_fused::dispatch::{Config, Server};
use famfs_fused::fs::Fs;
use famfs_fused::ops::OpsKind;
use famfs_fused::stats::Stats;
use famfs_shadow::{DaxDev, DaxDevs, FileAttrs, ShadowDir, ShadowFile, ShadowTree};
use std::time::Duration;
use zerocopy::{FromBytes, IntoBytes};

pub const M2: u64 = FMAP_ALIGN;

/// root (1) / d (2) / a (3: simple, 5000 bytes) , d/s (4: interleaved, 5 MiB)
pub fn tree() -> ShadowTree {
    let devs = DaxDevs(
        [
            (
                0,
                DaxDev {
                    path: "/dev/dax0.0".into(),
                    size: None,
                },
            ),
            (
                1,
                DaxDev {
                    path: "/dev/dax1.0".into(),
                    size: Some(1 << 30),
                },
            ),
        ]
        .into_iter()
        .collect(),
    );
    let dir = |p: &str| ShadowDir {
        path: p.into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    let a = ShadowFile {
        path: "a".into(),
        attrs: FileAttrs {
            size: 5000,
            flags: 0,
            mode: 0o640,
            uid: 1000,
            gid: 100,
        },
        map: FileMap {
            file_type: FileType::Regular,
            file_size: 5000,
            extents: Extents::Simple(vec![SimpleExtent {
                dev_index: 0,
                offset: M2,
                len: M2,
            }]),
        },
    };
    let s = ShadowFile {
        path: "d/s".into(),
        attrs: FileAttrs {
            size: 5 * M2 / 2,
            flags: 0,
            mode: 0o600,
            uid: 0,
            gid: 0,
        },
        map: FileMap {
            file_type: FileType::Regular,
            file_size: 5 * M2 / 2,
            extents: Extents::Interleaved(vec![InterleavedExtent {
                chunk_size: M2 as u32,
                nbytes: 4 * M2,
                strips: vec![
                    SimpleExtent {
                        dev_index: 0,
                        offset: 4 * M2,
                        len: 2 * M2,
                    },
                    SimpleExtent {
                        dev_index: 1,
                        offset: 0,
                        len: 2 * M2,
                    },
                ],
            }]),
        },
    };
    ShadowTree {
        daxdevs: devs,
        dirs: vec![dir(""), dir("d")],
        files: vec![a, s],
    }
}

pub fn config(ops: OpsKind) -> Config {
    Config {
        ops,
        fmap: true,
        allow_resize: false,
        meta_size_override: None,
        blob_extra: 0,
        blob_dir: None,
        claim_fmap: false,
        atomic_o_trunc: false,
        daxdev_open: Default::default(),
        register_abuse: Default::default(),
        max_write: 128 << 10,
    }
}

pub fn server_with(cfg: Config) -> Server {
    let fs = Fs::from_tree(&tree(), Duration::from_secs(1));
    let ops = cfg.ops.name();
    let fmap = cfg.fmap;
    Server::new(fs, Stats::new(None, ops, fmap), cfg)
}

pub fn server() -> Server {
    server_with(config(OpsKind::Famfs))
}

/// A request message: header + argument bytes.
pub fn msg(opcode: u32, nodeid: u64, unique: u64, arg: &[u8]) -> Vec<u8> {
    let h = InHeader {
        len: (40 + arg.len()) as u32,
        opcode,
        unique,
        nodeid,
        uid: 0,
        gid: 0,
        pid: 1,
        total_extlen: 0,
        padding: 0,
    };
    let mut v = h.as_bytes().to_vec();
    v.extend_from_slice(arg);
    v
}

/// Split a reply into its header and payload, checking the header's length and unique.
pub fn split(reply: &[u8], unique: u64) -> (OutHeader, &[u8]) {
    let (h, rest) = OutHeader::read_from_prefix(reply).expect("reply has a header");
    assert_eq!(h.len as usize, reply.len(), "out header len");
    assert_eq!(h.unique, unique, "out header unique");
    (h, rest)
}

/// Send and expect a successful reply; the payload.
pub fn ok(s: &Server, m: &[u8]) -> Vec<u8> {
    let unique = InHeader::read_from_prefix(m)
        .map(|(h, _)| h.unique)
        .unwrap_or(0);
    let r = s.handle(m).expect("a reply");
    let (h, p) = split(&r, unique);
    assert_eq!(h.error, 0, "error reply {}", h.error);
    p.to_vec()
}

/// Send and expect an error reply; the positive errno.
pub fn err(s: &Server, m: &[u8]) -> i32 {
    let unique = InHeader::read_from_prefix(m)
        .map(|(h, _)| h.unique)
        .unwrap_or(0);
    let r = s.handle(m).expect("a reply");
    let (h, p) = split(&r, unique);
    assert!(p.is_empty(), "error replies carry no payload");
    -h.error
}

pub fn read<T: FromBytes>(p: &[u8]) -> T {
    T::read_from_bytes(p)
        .unwrap_or_else(|_| panic!("payload is {} bytes, want {}", p.len(), size_of::<T>()))
}
