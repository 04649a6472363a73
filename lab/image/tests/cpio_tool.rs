//! The newc writer against GNU cpio (Debian package `cpio`), plus a property test against a
//! small reader.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use lab_image::cpio::{Entry, Kind, Writer};
use proptest::prelude::*;

fn archive(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    for e in entries {
        w.append(e).expect("append");
    }
    w.finish().expect("finish").0
}

fn sample() -> Vec<Entry<'static>> {
    let e = |path, perm, kind| Entry { path, perm, kind };
    vec![
        e("a", 0o755, Kind::Dir),
        e("a/b", 0o700, Kind::Dir),
        e("a/b/empty", 0o644, Kind::File(b"")),
        e("a/b/five", 0o640, Kind::File(b"12345")),
        e("a/b/one", 0o600, Kind::File(b"1")),
        e("a/b/three", 0o644, Kind::File(b"abc")),
        e("a/rel", 0o777, Kind::Symlink("b/three")),
        e("a-c", 0o644, Kind::File(b"after the directory a\n")),
        e("bin", 0o755, Kind::Dir),
        e("bin/sh", 0o777, Kind::Symlink("/bin/x")),
        e("bin/x", 0o755, Kind::File(b"#!/bin/true\n")),
        e("dev", 0o755, Kind::Dir),
        e("dev/null", 0o666, Kind::CharDev { major: 1, minor: 3 }),
        e("tmp", 0o1777, Kind::Dir),
    ]
}

#[test]
fn gnu_cpio_lists_exactly_our_entries() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.cpio");
    let entries = sample();
    std::fs::write(&path, archive(&entries)).expect("write");
    let listed = common::cpio_list(&path);
    let want: Vec<&str> = entries.iter().map(|e| e.path).collect();
    assert_eq!(listed, want);
}

#[test]
fn gnu_cpio_extracts_identical_bytes_links_and_modes() {
    assert!(
        common::is_root(),
        "this test creates a device node with cpio -id and must run as root"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.cpio");
    let out = dir.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let entries = sample();
    std::fs::write(&path, archive(&entries)).expect("write");
    common::cpio_extract(&path, &out);
    for e in &entries {
        let p = out.join(e.path);
        let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|err| panic!("{}: {err}", e.path));
        match e.kind {
            Kind::Dir => assert!(meta.is_dir(), "{}", e.path),
            Kind::File(data) => {
                assert!(meta.is_file(), "{}", e.path);
                assert_eq!(std::fs::read(&p).expect("read"), data, "{}", e.path);
            }
            Kind::Symlink(t) => {
                assert!(meta.file_type().is_symlink(), "{}", e.path);
                assert_eq!(std::fs::read_link(&p).expect("readlink").to_str(), Some(t));
            }
            Kind::CharDev { major, minor } => {
                assert!(meta.file_type().is_char_device(), "{}", e.path);
                let rdev = meta.rdev();
                assert_eq!(
                    ((rdev >> 8) & 0xfff, rdev & 0xff),
                    (major.into(), minor.into())
                );
            }
            Kind::BlockDev { .. } => unreachable!("not in the sample"),
        }
        if !matches!(e.kind, Kind::Symlink(_)) {
            assert_eq!(
                meta.permissions().mode() & 0o7777,
                e.perm,
                "mode of {}",
                e.path
            );
        }
        if meta.is_file() {
            // GNU cpio -m restores file mtimes (it does not for directories it writes into).
            assert_eq!(meta.mtime(), 0, "mtime of {}", e.path);
        }
    }
}

/// Minimal newc reader: (name, mode, data) per entry, trailer excluded.
fn read_newc(mut buf: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
    let hex =
        |b: &[u8]| u32::from_str_radix(std::str::from_utf8(b).expect("utf8"), 16).expect("hex");
    let align = |n: usize| (n + 3) & !3;
    let mut out = Vec::new();
    loop {
        assert_eq!(&buf[..6], b"070701");
        let field = |i: usize| hex(&buf[6 + 8 * i..14 + 8 * i]);
        let (mode, size, namesize) = (field(1), field(6) as usize, field(11) as usize);
        let name = String::from_utf8(buf[110..110 + namesize - 1].to_vec()).expect("name");
        let data_at = align(110 + namesize);
        if name == "TRAILER!!!" {
            assert_eq!(buf.len(), data_at, "nothing after the trailer");
            return out;
        }
        out.push((name, mode, buf[data_at..data_at + size].to_vec()));
        buf = &buf[align(data_at + size)..];
    }
}

proptest! {
    #[test]
    fn roundtrip(files in proptest::collection::btree_map("[a-z]{1,12}", proptest::collection::vec(any::<u8>(), 0..40), 0..12)) {
        let entries: Vec<Entry<'_>> = files
            .iter()
            .map(|(name, data)| Entry { path: name, perm: 0o644, kind: Kind::File(data) })
            .collect();
        let bytes = archive(&entries);
        prop_assert_eq!(bytes.len() % 4, 0);
        let back = read_newc(&bytes);
        prop_assert_eq!(back.len(), files.len());
        for ((name, mode, data), (want_name, want_data)) in back.iter().zip(&files) {
            prop_assert_eq!(name, want_name);
            prop_assert_eq!(*mode, 0o100644);
            prop_assert_eq!(data, want_data);
        }
    }
}
