//! Every handled opcode through the real parser and dispatcher: request bytes in, reply bytes
//! out, decoded and checked. Short, oversized and inconsistent messages get a clear error
//! (EIO reply, or none for opcodes without replies) and never a panic.

mod common;
use common::*;
use famfs_fmap::decode;
use famfs_fused::abi::{self, fattr, flag, op, InitIn, InitOut};
use famfs_fused::meta;
use famfs_fused::ops::OpsKind;
use famfs_fused::request::{parse, Op, RequestError};
use zerocopy::{FromBytes, IntoBytes};

fn init_in(minor: u32, flags2: u32) -> InitIn {
    InitIn {
        major: 7,
        minor,
        max_readahead: 1 << 17,
        flags: (flag::INIT_EXT | flag::ASYNC_READ | flag::DO_READDIRPLUS | flag::MAX_PAGES) as u32,
        flags2,
        unused: [0; 11],
    }
}

const FMAP2: u32 = (flag::DAX_FMAP >> 32) as u32;

#[test]
fn init_negotiates_fmap_and_names_the_ops() {
    let s = server_with(config(OpsKind::FamfsMaplookup));
    let out: InitOut = read(&ok(&s, &msg(op::INIT, 0, 1, init_in(47, FMAP2).as_bytes())));
    assert_eq!((out.major, out.minor), (7, 47));
    assert_eq!(out.flags2 & FMAP2, FMAP2, "FUSE_DAX_FMAP granted");
    assert_ne!(u64::from(out.flags) & flag::INIT_EXT, 0);
    assert_eq!(&out.dax_fmap_ops[..16], b"famfs_maplookup\0");
    assert_eq!(out.max_write, 128 << 10);
    let st = s.stats.snapshot();
    assert_eq!(st.init.expect("init recorded").ops, "famfs_maplookup");
    assert!(matches!(s.negotiated.get(), Some(Ok(n)) if n.fmap && n.minor == 47));
}

#[test]
fn init_without_the_fmap_offer_is_refused_unless_no_fmap() {
    let s = server();
    assert_eq!(
        err(&s, &msg(op::INIT, 0, 1, init_in(46, 0).as_bytes())),
        libc::EPROTO
    );
    assert!(matches!(s.negotiated.get(), Some(Err(why)) if why.contains("FUSE_DAX_FMAP")));

    let mut cfg = config(OpsKind::Famfs);
    cfg.fmap = false;
    let s = server_with(cfg);
    let out: InitOut = read(&ok(&s, &msg(op::INIT, 0, 1, init_in(46, FMAP2).as_bytes())));
    assert_eq!(out.minor, 46, "the kernel's minor when it is older");
    assert_eq!(out.flags2 & FMAP2, 0, "no fmap asked for");
    assert_eq!(out.dax_fmap_ops, [0; 16]);
}

#[test]
fn init_claims_fmap_unoffered_only_when_told() {
    let mut cfg = config(OpsKind::Famfs);
    cfg.claim_fmap = true;
    let s = server_with(cfg);
    let out: InitOut = read(&ok(&s, &msg(op::INIT, 0, 1, init_in(47, 0).as_bytes())));
    assert_eq!(out.flags2 & FMAP2, FMAP2, "claimed though not offered");
    assert_ne!(u64::from(out.flags) & flag::INIT_EXT, 0);
    assert_eq!(&out.dax_fmap_ops[..6], b"famfs\0");
}

#[test]
fn init_takes_a_short_7_0_argument_and_refuses_wrong_major() {
    let s = server_with(famfs_fused::dispatch::Config {
        fmap: false,
        ..config(OpsKind::Famfs)
    });
    let full = init_in(45, 0);
    let out: InitOut = read(&ok(&s, &msg(op::INIT, 0, 1, &full.as_bytes()[..16])));
    assert_eq!(out.minor, 45);
    let mut i = init_in(47, FMAP2);
    i.major = 8;
    assert_eq!(
        err(&server(), &msg(op::INIT, 0, 2, i.as_bytes())),
        libc::EPROTO
    );
}

fn name(n: &str) -> Vec<u8> {
    let mut v = n.as_bytes().to_vec();
    v.push(0);
    v
}

#[test]
fn lookup_finds_entries_and_counts_references() {
    let s = server();
    let e: abi::EntryOut = read(&ok(&s, &msg(op::LOOKUP, 1, 2, &name("a"))));
    assert_eq!(
        (
            e.nodeid,
            e.attr.ino,
            e.attr.size,
            e.attr.mode,
            e.attr.uid,
            e.attr.gid
        ),
        (3, 3, 5000, 0o100640, 1000, 100)
    );
    assert_eq!(e.entry_valid, 1);
    let d: abi::EntryOut = read(&ok(&s, &msg(op::LOOKUP, 1, 3, &name("d"))));
    assert_eq!((d.nodeid, d.attr.mode, d.attr.nlink), (2, 0o040755, 2));
    let f: abi::EntryOut = read(&ok(&s, &msg(op::LOOKUP, 2, 4, &name("s"))));
    assert_eq!(f.nodeid, 4);
    assert_eq!(err(&s, &msg(op::LOOKUP, 1, 5, &name("nope"))), libc::ENOENT);
    assert_eq!(err(&s, &msg(op::LOOKUP, 3, 6, &name("x"))), libc::ENOTDIR);
    assert_eq!(err(&s, &msg(op::LOOKUP, 99, 7, &name("x"))), libc::ENOENT);
    let n = s.fs.node(3).expect("node 3");
    assert_eq!(n.nlookup.load(std::sync::atomic::Ordering::Relaxed), 1);
    // FORGET and BATCH_FORGET: no reply, references dropped
    assert!(s
        .handle(&msg(
            op::FORGET,
            3,
            8,
            abi::ForgetIn { nlookup: 1 }.as_bytes()
        ))
        .is_none());
    assert_eq!(n.nlookup.load(std::sync::atomic::Ordering::Relaxed), 0);
    ok(&s, &msg(op::LOOKUP, 1, 9, &name("a")));
    let mut b = abi::BatchForgetIn { count: 2, dummy: 0 }
        .as_bytes()
        .to_vec();
    b.extend_from_slice(
        abi::ForgetOne {
            nodeid: 3,
            nlookup: 1,
        }
        .as_bytes(),
    );
    b.extend_from_slice(
        abi::ForgetOne {
            nodeid: 77,
            nlookup: 1,
        }
        .as_bytes(),
    );
    assert!(s.handle(&msg(op::BATCH_FORGET, 0, 10, &b)).is_none());
    assert_eq!(n.nlookup.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[test]
fn lookup_names_must_be_nul_terminated_and_non_empty() {
    assert_eq!(
        parse(&msg(op::LOOKUP, 1, 1, b"a")).unwrap_err().error,
        RequestError::NameNotTerminated
    );
    assert_eq!(
        parse(&msg(op::LOOKUP, 1, 1, b"\0")).unwrap_err().error,
        RequestError::BadName
    );
    assert_eq!(
        parse(&msg(op::LOOKUP, 1, 1, b"a\0b\0")).unwrap_err().error,
        RequestError::BadName
    );
    assert_eq!(
        parse(&msg(op::LOOKUP, 1, 1, b"")).unwrap_err().error,
        RequestError::NameNotTerminated
    );
    assert_eq!(err(&server(), &msg(op::LOOKUP, 1, 1, b"a")), libc::EIO);
}

#[test]
fn getattr_reports_shadow_attributes() {
    let s = server();
    let a: abi::AttrOut = read(&ok(
        &s,
        &msg(op::GETATTR, 4, 1, abi::GetattrIn::default().as_bytes()),
    ));
    assert_eq!(
        (a.attr.ino, a.attr.size, a.attr.mode, a.attr.blocks),
        (4, 5 * M2 / 2, 0o100600, 5 * M2 / 2 / 512)
    );
    let r: abi::AttrOut = read(&ok(
        &s,
        &msg(op::GETATTR, 1, 2, abi::GetattrIn::default().as_bytes()),
    ));
    assert_eq!((r.attr.mode, r.attr.nlink), (0o040755, 3));
    assert_eq!(
        err(
            &s,
            &msg(op::GETATTR, 0, 3, abi::GetattrIn::default().as_bytes())
        ),
        libc::ENOENT
    );
}

fn setattr(valid: u32) -> abi::SetattrIn {
    abi::SetattrIn {
        valid,
        ..Default::default()
    }
}

#[test]
fn setattr_refuses_size_changes_and_keeps_everything_else_unchanged() {
    let s = server();
    let mut sa = setattr(fattr::SIZE | fattr::MODE);
    sa.size = 1;
    sa.mode = 0o100777;
    assert_eq!(
        err(&s, &msg(op::SETATTR, 3, 1, sa.as_bytes())),
        libc::EINVAL
    );
    let a: abi::AttrOut = read(&ok(
        &s,
        &msg(op::GETATTR, 3, 2, abi::GetattrIn::default().as_bytes()),
    ));
    assert_eq!((a.attr.size, a.attr.mode), (5000, 0o100640));
}

#[test]
fn setattr_chmod_chown_utimes_are_kept_in_memory() {
    let s = server();
    let mut sa = setattr(fattr::MODE | fattr::UID | fattr::GID | fattr::ATIME | fattr::MTIME);
    sa.mode = 0o100604;
    sa.uid = 7;
    sa.gid = 8;
    sa.atime = 1000;
    sa.mtime = 2000;
    sa.mtimensec = 5;
    let a: abi::AttrOut = read(&ok(&s, &msg(op::SETATTR, 3, 1, sa.as_bytes())));
    assert_eq!(
        (
            a.attr.mode,
            a.attr.uid,
            a.attr.gid,
            a.attr.atime,
            a.attr.mtime,
            a.attr.mtimensec
        ),
        (0o100604, 7, 8, 1000, 2000, 5)
    );
    let b: abi::AttrOut = read(&ok(
        &s,
        &msg(op::GETATTR, 3, 2, abi::GetattrIn::default().as_bytes()),
    ));
    assert_eq!(a.attr, b.attr);
}

#[test]
fn allow_resize_serves_a_map_for_the_new_size() {
    let mut cfg = config(OpsKind::Famfs);
    cfg.allow_resize = true;
    let s = server_with(cfg);
    for (unique, size) in [(1u64, 1000u64), (2, 9 * M2), (3, 0)] {
        let mut sa = setattr(fattr::SIZE);
        sa.size = size;
        let a: abi::AttrOut = read(&ok(&s, &msg(op::SETATTR, 4, unique, sa.as_bytes())));
        assert_eq!(a.attr.size, size);
        let p = ok(&s, &msg(op::GET_FMAP, 4, 100 + unique, &[]));
        let map = decode(&p[16..]).expect("valid blob");
        assert_eq!(map.file_size, size);
        assert!(map.mapped_size() >= size);
    }
    let mut sa = setattr(fattr::SIZE);
    sa.size = 1;
    assert_eq!(
        err(&s, &msg(op::SETATTR, 2, 9, sa.as_bytes())),
        libc::EISDIR
    );
}

#[test]
fn open_release_flush_access() {
    let s = server();
    let o: abi::OpenOut = read(&ok(
        &s,
        &msg(op::OPEN, 3, 1, abi::OpenIn::default().as_bytes()),
    ));
    assert_eq!(o, abi::OpenOut::default());
    assert_eq!(
        err(&s, &msg(op::OPEN, 2, 2, abi::OpenIn::default().as_bytes())),
        libc::EISDIR
    );
    assert!(ok(
        &s,
        &msg(op::FLUSH, 3, 3, abi::FlushIn::default().as_bytes())
    )
    .is_empty());
    assert!(ok(
        &s,
        &msg(op::RELEASE, 3, 4, abi::ReleaseIn::default().as_bytes())
    )
    .is_empty());
    assert!(ok(
        &s,
        &msg(op::ACCESS, 3, 5, abi::AccessIn::default().as_bytes())
    )
    .is_empty());
    ok(
        &s,
        &msg(op::OPENDIR, 1, 6, abi::OpenIn::default().as_bytes()),
    );
    assert_eq!(
        err(
            &s,
            &msg(op::OPENDIR, 3, 7, abi::OpenIn::default().as_bytes())
        ),
        libc::ENOTDIR
    );
    assert!(ok(
        &s,
        &msg(op::RELEASEDIR, 1, 8, abi::ReleaseIn::default().as_bytes())
    )
    .is_empty());
}

/// (name, ino, off, type, nodeid of the entry_out if plus)
fn dirents(p: &[u8], plus: bool) -> Vec<(String, u64, u64, u32, u64)> {
    let mut out = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        let mut nodeid = 0;
        if plus {
            let (e, r) = abi::EntryOut::read_from_prefix(rest).expect("entry_out");
            nodeid = e.nodeid;
            rest = r;
        }
        let (d, r) = abi::Dirent::read_from_prefix(rest).expect("dirent");
        let name = String::from_utf8(r[..d.namelen as usize].to_vec()).expect("utf8");
        let used = abi::rec_align(24 + d.namelen as usize);
        out.push((name, d.ino, d.off, d.typ, nodeid));
        rest = &r[used - 24..];
    }
    out
}

fn read_in(offset: u64, size: u32) -> abi::ReadIn {
    abi::ReadIn {
        offset,
        size,
        ..Default::default()
    }
}

#[test]
fn readdir_lists_dot_dotdot_and_children_with_offsets() {
    let s = server();
    let all = dirents(
        &ok(&s, &msg(op::READDIR, 1, 1, read_in(0, 4096).as_bytes())),
        false,
    );
    let names: Vec<_> = all.iter().map(|e| (e.0.as_str(), e.1, e.2, e.3)).collect();
    assert_eq!(
        names,
        [
            (".", 1, 1, abi::DT_DIR),
            ("..", 1, 2, abi::DT_DIR),
            ("a", 3, 3, abi::DT_REG),
            ("d", 2, 4, abi::DT_DIR)
        ]
    );
    // continue from an offset; a small buffer holds fewer entries
    let tail = dirents(
        &ok(&s, &msg(op::READDIR, 1, 2, read_in(2, 4096).as_bytes())),
        false,
    );
    assert_eq!(
        tail.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
        ["a", "d"]
    );
    let one = dirents(
        &ok(&s, &msg(op::READDIR, 1, 3, read_in(0, 40).as_bytes())),
        false,
    );
    assert_eq!(one.len(), 1);
    assert!(ok(&s, &msg(op::READDIR, 1, 4, read_in(99, 4096).as_bytes())).is_empty());
    assert_eq!(
        err(&s, &msg(op::READDIR, 3, 5, read_in(0, 4096).as_bytes())),
        libc::ENOTDIR
    );
}

#[test]
fn readdirplus_carries_entries_except_for_dot_and_dotdot() {
    let s = server();
    let all = dirents(
        &ok(&s, &msg(op::READDIRPLUS, 2, 1, read_in(0, 4096).as_bytes())),
        true,
    );
    let got: Vec<_> = all.iter().map(|e| (e.0.as_str(), e.4)).collect();
    assert_eq!(got, [(".", 0), ("..", 0), ("s", 4)]);
    let n = s.fs.node(4).expect("node 4");
    assert_eq!(n.nlookup.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[test]
fn statfs_and_destroy() {
    let s = server();
    let st: abi::Kstatfs = read(&ok(&s, &msg(op::STATFS, 1, 1, &[])));
    assert_eq!((st.bsize, st.namelen, st.files), (4096, 255, 4));
    assert_eq!(st.blocks, (1u64 << 30) / 4096);
    assert!(ok(&s, &msg(op::DESTROY, 0, 2, &[])).is_empty());
    assert!(s.destroyed.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn interrupt_gets_no_reply() {
    assert!(server()
        .handle(&msg(
            op::INTERRUPT,
            0,
            1,
            abi::InterruptIn { unique: 5 }.as_bytes()
        ))
        .is_none());
}

#[test]
fn get_fmap_serves_the_blob_with_the_ops_meta_size_and_counts_per_nodeid() {
    for (ops, want_meta) in [
        (OpsKind::Famfs, 32 + 40 + 2 * 16),
        (OpsKind::FamfsNative, 32 + 40 + 2 * 16),
        (OpsKind::FamfsMaplookup, 8),
        (OpsKind::RejectAll, 8),
    ] {
        let s = server_with(config(ops));
        let p = ok(&s, &msg(op::GET_FMAP, 4, 1, &[]));
        let (head, blob) = abi::GetFmapOut::read_from_prefix(&p).expect("head");
        assert_eq!(
            (head.meta_size, head.flags, head.reserved),
            (want_meta, 0, 0),
            "{ops:?}"
        );
        let map = decode(blob).expect("valid blob");
        assert_eq!(map, common::tree().files[1].map);
        if ops == OpsKind::Famfs {
            assert_eq!(meta::meta_size(&map), head.meta_size);
        }
        ok(&s, &msg(op::GET_FMAP, 4, 2, &[]));
        ok(&s, &msg(op::GET_FMAP, 3, 3, &[]));
        let st = s.stats.snapshot();
        assert_eq!(st.get_fmap.by_nodeid.get(&4), Some(&2));
        assert_eq!(st.get_fmap.by_nodeid.get(&3), Some(&1));
        assert_eq!(st.get_fmap.by_path.get("d/s"), Some(&2));
        assert_eq!(st.opcodes.get("GET_FMAP"), Some(&3));
    }
    let s = server();
    assert_eq!(err(&s, &msg(op::GET_FMAP, 2, 1, &[])), libc::EINVAL);
    assert_eq!(err(&s, &msg(op::GET_FMAP, 50, 2, &[])), libc::ENOENT);
}

#[test]
fn get_fmap_fault_injection() {
    let mut cfg = config(OpsKind::Famfs);
    cfg.meta_size_override = Some(70000);
    cfg.blob_extra = 65536;
    let s = server_with(cfg);
    let p = ok(&s, &msg(op::GET_FMAP, 3, 1, &[]));
    let (head, blob) = abi::GetFmapOut::read_from_prefix(&p).expect("head");
    assert_eq!(head.meta_size, 70000);
    assert!(blob.len() > abi::FUSE_DAX_FMAP_MAX_BLOB);
    assert!(matches!(
        decode(blob),
        Err(famfs_fmap::FmapError::Trailing { extra: 65536 })
    ));
}

#[test]
fn blob_dir_serves_stored_blobs_read_at_every_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("d")).expect("mkdir");
    let mut cfg = config(OpsKind::Famfs);
    cfg.blob_dir = Some(dir.path().to_path_buf());
    let s = server_with(cfg);
    // No stored blob: the shadow map, as without --blob-dir.
    let p = ok(&s, &msg(op::GET_FMAP, 3, 1, &[]));
    let (_, blob) = abi::GetFmapOut::read_from_prefix(&p).expect("head");
    assert_eq!(decode(blob).expect("valid"), common::tree().files[0].map);
    // A malformed blob is served as is, with the largest meta any famfs blob needs.
    std::fs::write(dir.path().join("a"), [1u8, 2, 3]).expect("write");
    let p = ok(&s, &msg(op::GET_FMAP, 3, 2, &[]));
    let (head, blob) = abi::GetFmapOut::read_from_prefix(&p).expect("head");
    assert_eq!(
        (blob, head.meta_size),
        (&[1u8, 2, 3][..], meta::MAX_SIZE as u32)
    );
    // A valid one gets its own meta size; the file is read again at every request.
    let other = famfs_fmap::encode(&common::tree().files[1].map);
    std::fs::write(dir.path().join("a"), &other).expect("write");
    let p = ok(&s, &msg(op::GET_FMAP, 3, 3, &[]));
    let (head, blob) = abi::GetFmapOut::read_from_prefix(&p).expect("head");
    assert_eq!(blob, &other[..]);
    assert_eq!(
        head.meta_size,
        meta::meta_size(&common::tree().files[1].map)
    );
    assert_eq!(s.stats.snapshot().get_fmap.by_nodeid.get(&3), Some(&3));
    // Ops that keep no meta in the buffer get the minimum for malformed blobs too.
    let mut cfg = config(OpsKind::FamfsMaplookup);
    cfg.blob_dir = Some(dir.path().to_path_buf());
    std::fs::write(dir.path().join("d/s"), [0u8; 7]).expect("write");
    let p = ok(&server_with(cfg), &msg(op::GET_FMAP, 4, 1, &[]));
    let (head, _) = abi::GetFmapOut::read_from_prefix(&p).expect("head");
    assert_eq!(head.meta_size, famfs_fused::ops::MIN_META);
}

#[test]
fn get_daxdev_answers_the_table_and_counts_per_index() {
    let s = server();
    let p = ok(
        &s,
        &msg(
            op::GET_DAXDEV,
            0,
            1,
            abi::GetDaxdevIn {
                index: 1,
                reserved: 0,
            }
            .as_bytes(),
        ),
    );
    let out: abi::GetDaxdevOut = read(&p);
    assert_eq!(&out.name[..12], b"/dev/dax1.0\0");
    assert!(out.name[12..].iter().all(|b| *b == 0));
    assert_eq!(
        err(
            &s,
            &msg(
                op::GET_DAXDEV,
                0,
                2,
                abi::GetDaxdevIn {
                    index: 5,
                    reserved: 0
                }
                .as_bytes()
            )
        ),
        libc::ENODEV
    );
    let st = s.stats.snapshot();
    assert_eq!(st.get_daxdev.by_index.get(&1), Some(&1));
    assert_eq!(st.get_daxdev.by_index.get(&5), Some(&1));
    assert_eq!(st.errors.get("GET_DAXDEV"), Some(&1));
}

#[test]
fn get_daxdev_with_a_registrar_opens_the_device_and_reports_its_errno() {
    let s = server();
    let dev = tempfile::tempfile().expect("tempfile");
    s.registrar
        .set(famfs_fused::register::Registrar::new(
            dev,
            famfs_fused::register::OpenMode::ReadWrite,
        ))
        .expect("registrar set once");
    // /dev/dax0.0 does not exist here: the open's errno is the reply, not a path.
    let e = err(
        &s,
        &msg(
            op::GET_DAXDEV,
            0,
            1,
            abi::GetDaxdevIn {
                index: 0,
                reserved: 0,
            }
            .as_bytes(),
        ),
    );
    assert_eq!(e, libc::ENOENT);
    let st = s.stats.snapshot();
    assert_eq!(st.register.get(&0), Some(&libc::ENOENT));
    assert_eq!(st.get_daxdev.by_index.get(&0), Some(&1));
}

#[test]
fn other_opcodes_are_enosys() {
    let s = server();
    for opcode in [op::READ, op::WRITE, 5, 9, 35, 52, 53, 56, 4096, u32::MAX] {
        assert_eq!(
            err(&s, &msg(opcode, 1, 1, &[0; 16])),
            libc::ENOSYS,
            "opcode {opcode}"
        );
    }
    assert_eq!(s.stats.snapshot().opcodes.get("OPCODE_56"), Some(&1));
}

/// (opcode, argument size) for every fixed-size argument.
const FIXED: &[(u32, usize)] = &[
    (op::FORGET, 8),
    (op::GETATTR, 16),
    (op::SETATTR, 88),
    (op::OPEN, 8),
    (op::OPENDIR, 8),
    (op::RELEASE, 24),
    (op::RELEASEDIR, 24),
    (op::FLUSH, 24),
    (op::READDIR, 40),
    (op::READDIRPLUS, 40),
    (op::ACCESS, 8),
    (op::INTERRUPT, 8),
    (op::GET_DAXDEV, 8),
    (op::STATFS, 0),
    (op::DESTROY, 0),
    (op::GET_FMAP, 0),
];

#[test]
fn short_and_oversized_arguments_are_clear_errors() {
    let s = server();
    for &(opcode, size) in FIXED {
        let no_reply = matches!(opcode, op::FORGET | op::INTERRUPT);
        let mut sizes = vec![size + 1, size + 8];
        if size > 0 {
            sizes.extend([0, size - 1]);
        }
        for n in sizes {
            let m = msg(opcode, 1, 7, &vec![0u8; n]);
            let e = parse(&m).expect_err("bad size").error;
            let text = e.to_string();
            assert!(text.contains(&format!("{n} bytes")), "{text}");
            assert!(
                matches!(
                    e,
                    RequestError::ShortArg { .. } | RequestError::OversizedArg { .. }
                ),
                "{e:?}"
            );
            match s.handle(&m) {
                None => assert!(no_reply, "opcode {opcode} got no reply"),
                Some(r) => {
                    assert!(!no_reply, "opcode {opcode} must not be answered");
                    assert_eq!(split(&r, 7).0.error, -libc::EIO);
                }
            }
        }
        // the right size parses
        let m = msg(opcode, 1, 7, &vec![0u8; size]);
        assert!(parse(&m).is_ok(), "opcode {opcode} size {size}");
    }
    // INIT: 16..=64
    assert!(matches!(
        parse(&msg(op::INIT, 0, 1, &[0; 15])).unwrap_err().error,
        RequestError::ShortArg { want: 16, .. }
    ));
    assert!(matches!(
        parse(&msg(op::INIT, 0, 1, &[0; 65])).unwrap_err().error,
        RequestError::OversizedArg { want: 64, .. }
    ));
    // BATCH_FORGET: count must match
    let mut b = abi::BatchForgetIn { count: 3, dummy: 0 }
        .as_bytes()
        .to_vec();
    b.extend_from_slice(&[0; 16]);
    assert!(matches!(
        parse(&msg(op::BATCH_FORGET, 0, 1, &b)).unwrap_err().error,
        RequestError::BatchCount { count: 3, .. }
    ));
    assert!(s.handle(&msg(op::BATCH_FORGET, 0, 1, &b)).is_none());
    assert_eq!(
        s.stats.snapshot().malformed,
        (FIXED.len() * 4 - 3 * 2 + 1) as u64 // 4 bad sizes per opcode (2 without arguments) + BATCH_FORGET
    );
}

#[test]
fn bad_headers_are_not_answered() {
    let s = server();
    for m in [vec![], vec![0u8; 39]] {
        assert!(matches!(
            parse(&m).unwrap_err().error,
            RequestError::ShortHeader { .. }
        ));
        assert!(s.handle(&m).is_none());
    }
    let mut m = msg(op::GETATTR, 1, 1, &[0; 16]);
    m.push(0);
    assert!(matches!(
        parse(&m).unwrap_err().error,
        RequestError::LengthMismatch {
            declared: 56,
            got: 57
        }
    ));
    assert!(s.handle(&m).is_none());
    m.truncate(50);
    assert!(matches!(
        parse(&m).unwrap_err().error,
        RequestError::LengthMismatch { .. }
    ));
    // extensions longer than the body: answered (the header is fine) with EIO
    let mut m = msg(op::GETATTR, 1, 9, &[0; 16]);
    m[36] = 3; // total_extlen = 3 (24 bytes)
    assert!(matches!(
        parse(&m).unwrap_err().error,
        RequestError::BadExtensions { ext: 24, body: 16 }
    ));
    assert_eq!(
        split(&s.handle(&m).expect("answered"), 9).0.error,
        -libc::EIO
    );
    // extensions inside the body are skipped
    let mut m = msg(op::GETATTR, 1, 9, &[0; 24]);
    m[36] = 1;
    assert!(matches!(parse(&m).expect("parses").op, Op::Getattr(_)));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn valid_messages() -> Vec<Vec<u8>> {
        let mut v = vec![
            msg(op::INIT, 0, 1, init_in(47, FMAP2).as_bytes()),
            msg(op::LOOKUP, 1, 2, b"a\0"),
            msg(op::GET_FMAP, 4, 3, &[]),
            msg(op::READDIRPLUS, 1, 4, read_in(0, 4096).as_bytes()),
            msg(
                op::SETATTR,
                3,
                5,
                setattr(fattr::SIZE | fattr::MODE).as_bytes(),
            ),
            msg(
                op::GET_DAXDEV,
                0,
                6,
                abi::GetDaxdevIn {
                    index: 0,
                    reserved: 0,
                }
                .as_bytes(),
            ),
        ];
        let mut b = abi::BatchForgetIn { count: 1, dummy: 0 }
            .as_bytes()
            .to_vec();
        b.extend_from_slice(
            abi::ForgetOne {
                nodeid: 3,
                nlookup: 1,
            }
            .as_bytes(),
        );
        v.push(msg(op::BATCH_FORGET, 0, 7, &b));
        v
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let s = server();
            if let Some(r) = s.handle(&bytes) {
                prop_assert_eq!(r.len(), u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize);
            }
        }

        #[test]
        fn mutated_messages_never_panic(pick in 0usize..7, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6), cut in any::<Option<usize>>()) {
            let s = server();
            let mut m = valid_messages()[pick].clone();
            for (i, b) in flips {
                let n = m.len();
                m[i % n] = b;
            }
            if let Some(c) = cut {
                let n = m.len();
                m.truncate(c % (n + 1));
            }
            if let Some(r) = s.handle(&m) {
                prop_assert!(r.len() >= 16);
                prop_assert_eq!(r.len(), u32::from_ne_bytes([r[0], r[1], r[2], r[3]]) as usize);
            }
        }
    }
}
