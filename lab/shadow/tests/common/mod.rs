#![allow(dead_code)]

use std::path::Path;

pub const DAXDEVS: &str = "0: /dev/dax0.0\n1: {path: /dev/dax1.0, size: 0x10000000}\n";

/// A shadow tree in a temp dir: `files` are (path under root/, YAML text).
pub fn tree(daxdevs: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().expect("tempdir");
    std::fs::write(d.path().join("daxdevs.yaml"), daxdevs).expect("write daxdevs");
    std::fs::create_dir(d.path().join("root")).expect("mkdir root");
    for (p, text) in files {
        let host = d.path().join("root").join(p);
        std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
        std::fs::write(host, text).expect("write yaml");
    }
    d
}

/// A one-extent simple file YAML.
pub fn simple(path: &str, size: u64, dev: u32, offset: u64, length: u64) -> String {
    format!(
        "file:\n  path: {path}\n  size: {size}\n  flags: 0\n  mode: 0644\n  uid: 0\n  gid: 0\n  nextents: 1\n  simple_ext_list:\n  - devindex: {dev}\n    offset: {offset:#x}\n    length: {length:#x}\n"
    )
}

/// Load and return the single error message (panics on success or several errors).
pub fn one_error(dir: &Path) -> String {
    match famfs_shadow::load(dir) {
        Ok(_) => panic!("tree loaded"),
        Err(e) => {
            assert_eq!(e.0.len(), 1, "expected one error, got: {e}");
            e.0[0].to_string()
        }
    }
}
