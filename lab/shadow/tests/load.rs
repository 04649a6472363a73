//! Loading shadow trees: the good path and every error class, each naming file and line.

mod common;
use common::{one_error, simple, tree, DAXDEVS};
use famfs_fmap::{Extents, FMAP_ALIGN};

const M2: u64 = FMAP_ALIGN;

#[test]
fn a_good_tree_loads_with_dirs_files_and_attrs() {
    let striped = "\
file:
  path: d/s
  size: 5242880
  flags: 0x100
  mode: '0o600'
  uid: 1000
  gid: 100
  nextents: 1
  striped_ext_list:
  - nstrips: 2
    chunk_size: 0x200000
    simple_ext_list:
    - devindex: 0
      offset: 0x400000
      length: 0x400000
    - devindex: 1
      offset: 0
      length: 0x400000
";
    let d = tree(
        DAXDEVS,
        &[("a", &simple("a", 4096, 0, 0, M2)), ("d/s", striped)],
    );
    let t = famfs_shadow::load(d.path()).expect("loads");
    let dirs: Vec<_> = t.dirs.iter().map(|d| d.path.as_str()).collect();
    assert_eq!(dirs, ["", "d"]);
    assert_eq!(t.files.len(), 2);
    let a = &t.files[0];
    assert_eq!(
        (a.path.as_str(), a.attrs.size, a.attrs.mode),
        ("a", 4096, 0o644)
    );
    let s = &t.files[1];
    assert_eq!(
        (s.attrs.mode, s.attrs.uid, s.attrs.gid, s.attrs.shared()),
        (0o600, 1000, 100, true)
    );
    match &s.map.extents {
        // nbytes defaults to nstrips x the shortest strip
        Extents::Interleaved(v) => assert_eq!(v[0].nbytes, 8 * M2 / 2),
        Extents::Simple(_) => panic!("striped file loaded as simple"),
    }
    assert_eq!(t.daxdevs.get(1).and_then(|d| d.size), Some(0x1000_0000));
}

#[test]
fn mode_forms() {
    for (text, want) in [
        ("0644", 0o644),
        ("'644'", 0o644),
        ("0o755", 0o755),
        ("0100640", 0o640),
        ("420", 0o644),
    ] {
        let y = simple("a", 1, 0, 0, M2).replace("mode: 0644", &format!("mode: {text}"));
        let d = tree(DAXDEVS, &[("a", &y)]);
        let t = famfs_shadow::load(d.path()).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(t.files[0].attrs.mode, want, "{text}");
    }
}

fn expect(files: &[(&str, &str)], want: &[&str]) {
    let d = tree(DAXDEVS, files);
    let msg = one_error(d.path());
    for w in want {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

#[test]
fn unknown_key_names_file_and_line() {
    let y = simple("a", 1, 0, 0, M2).replace("  uid: 0\n", "  uid: 0\n  colour: red\n");
    expect(&[("a", &y)], &["root/a:7:", "unknown field `colour`"]);
}

#[test]
fn missing_length_names_file_and_line() {
    let y = simple("a", 1, 0, 0, M2).replace("    length: 0x200000\n", "");
    expect(&[("a", &y)], &["root/a:10:", "missing field `length`"]);
}

#[test]
fn too_many_extents_names_the_33rd_item() {
    let mut y = String::from("file:\n  path: a\n  size: 1\n  flags: 0\n  mode: 0644\n  uid: 0\n  gid: 0\n  nextents: 33\n  simple_ext_list:\n");
    for i in 0..33u64 {
        y.push_str(&format!(
            "  - devindex: 0\n    offset: {:#x}\n    length: 0x200000\n",
            i * M2
        ));
    }
    // item 32 starts at line 10 + 32 * 3
    expect(&[("a", &y)], &["root/a:106:", "33 extents"]);
}

#[test]
fn nextents_mismatch() {
    let y = simple("a", 1, 0, 0, M2).replace("nextents: 1", "nextents: 2");
    expect(
        &[("a", &y)],
        &["root/a:8:", "nextents is 2 but the list has 1"],
    );
}

#[test]
fn misaligned_offset_and_length() {
    expect(
        &[("a", &simple("a", 1, 0, 4096, M2))],
        &["root/a:11:", "offset 0x1000 is not a multiple of 2 MiB"],
    );
    expect(
        &[("a", &simple("a", 1, 0, 0, 4096))],
        &["root/a:12:", "length 0x1000"],
    );
}

#[test]
fn devindex_not_in_table_and_out_of_range() {
    expect(
        &[("a", &simple("a", 1, 5, 0, M2))],
        &["root/a:10:", "devindex 5 is not in daxdevs.yaml"],
    );
    expect(
        &[("a", &simple("a", 1, 24, 0, M2))],
        &["root/a:10:", "devindex 24 is not in 0..24"],
    );
}

#[test]
fn extents_must_cover_size() {
    expect(
        &[("a", &simple("a", M2 + 1, 0, 0, M2))],
        &["root/a:3:", "less than file_size"],
    );
}

#[test]
fn device_size_is_enforced() {
    expect(
        &[("a", &simple("a", 1, 1, 0x1000_0000, M2))],
        &["root/a:11:", "ends past /dev/dax1.0"],
    );
}

#[test]
fn both_or_neither_list() {
    let y = simple("a", 1, 0, 0, M2).replace(
        "  simple_ext_list:\n  - devindex: 0\n    offset: 0x0\n    length: 0x200000\n",
        "",
    );
    expect(&[("a", &y)], &["root/a:2:", "neither"]);
    let y = format!("{}  striped_ext_list: []\n", simple("a", 1, 0, 0, M2));
    expect(&[("a", &y)], &["root/a:13:", "both"]);
}

#[test]
fn path_must_match_the_place_in_the_tree() {
    expect(
        &[("d/a", &simple("a", 1, 0, 0, M2))],
        &["root/d/a:2:", "does not match"],
    );
}

#[test]
fn bad_mode() {
    let y = simple("a", 1, 0, 0, M2).replace("mode: 0644", "mode: 040755");
    expect(&[("a", &y)], &["root/a:5:", "file type bits"]);
    let y = simple("a", 1, 0, 0, M2).replace("mode: 0644", "mode: rw-r--r--");
    expect(&[("a", &y)], &["root/a:5:", "not an octal number"]);
}

#[test]
fn syntax_error_names_the_line() {
    let y = simple("a", 1, 0, 0, M2).replace("  uid: 0\n", "  uid: [0\n");
    expect(&[("a", &y)], &["root/a:"]);
}

const STRIPED_BAD: &str = "\
file:
  path: s
  size: 1
  flags: 0
  mode: 0644
  uid: 0
  gid: 0
  nextents: 1
  striped_ext_list:
  - nstrips: 2
    chunk_size: 0x200000
    nbytes: 0x600000
    simple_ext_list:
    - devindex: 0
      offset: 0
      length: 0x200000
    - devindex: 1
      offset: 0
      length: 0x200000
";

#[test]
fn striped_errors_point_into_the_strip_list() {
    // 3 chunks over 2 strips: strip 0 needs 2 chunks, has 1.
    expect(
        &[("s", STRIPED_BAD)],
        &["root/s:16:", "strip 0", "need 0x400000"],
    );
    let y = STRIPED_BAD.replace("nstrips: 2", "nstrips: 3");
    expect(
        &[("s", &y)],
        &["root/s:10:", "nstrips is 3 but simple_ext_list has 2"],
    );
    let y = STRIPED_BAD.replace("chunk_size: 0x200000", "chunk_size: 0x1000");
    expect(&[("s", &y)], &["root/s:11:", "chunk_size 0x1000"]);
}

#[test]
fn overlapping_files_name_both_files_and_lines() {
    let d = tree(
        DAXDEVS,
        &[
            ("a", &simple("a", 1, 0, 0, 2 * M2)),
            ("b", &simple("b", 1, 0, M2, M2)),
        ],
    );
    let msg = one_error(d.path());
    assert!(
        msg.contains("root/b:11: overlaps")
            && msg.contains("root/a:11 on device 0 at 0x200000..0x400000"),
        "{msg}"
    );
}

#[test]
fn shared_files_may_overlap_but_not_with_unshared_ones() {
    let shared = |p: &str| simple(p, 1, 0, 0, M2).replace("flags: 0", "flags: 0x100");
    let d = tree(DAXDEVS, &[("a", &shared("a")), ("b", &shared("b"))]);
    assert!(famfs_shadow::load(d.path()).is_ok());
    let d = tree(
        DAXDEVS,
        &[
            ("a", &shared("a")),
            ("b", &shared("b")),
            ("c", &simple("c", 1, 0, 0, M2)),
        ],
    );
    let e = famfs_shadow::load(d.path()).expect_err("c overlaps");
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn every_bad_file_is_reported() {
    let d = tree(
        DAXDEVS,
        &[("a", &simple("a", 1, 0, 4096, M2)), ("b", "file: [")],
    );
    let e = famfs_shadow::load(d.path()).expect_err("two bad files");
    assert_eq!(e.0.len(), 2, "{e}");
}

#[test]
fn daxdevs_errors() {
    let d = tree("0: /dev/dax0.0\n30: /dev/dax9.0\n", &[]);
    assert!(one_error(d.path()).contains("daxdevs.yaml:2: device 30"));
    let d = tree("0: {path: /dev/dax0.0, colour: red}\n", &[]);
    assert!(one_error(d.path()).contains("daxdevs.yaml"));
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(d.path().join("root")).expect("mkdir");
    assert!(one_error(d.path()).contains("daxdevs.yaml: No such file"));
}

#[test]
fn a_device_index_given_twice_is_refused_not_merged() {
    // The second entry would silently replace the first: a file on device 0 would be served
    // from /dev/dax1.0. The tree is refused at the second key's line.
    let d = tree(
        "0: /dev/dax0.0\n1: /dev/dax1.0\n0: /dev/dax1.0\n",
        &[("a", &simple("a", 4096, 0, 0, M2))],
    );
    let e = one_error(d.path());
    assert!(
        e.contains("daxdevs.yaml:3: device index 0 is given twice (first at line 1)"),
        "{e}"
    );
}
