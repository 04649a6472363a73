//! Helpers shared by the integration tests. A missing host tool or file is a test FAILURE
//! naming the Debian package to install, never a silent pass.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `images/guest.yaml` of this workspace.
pub fn guest_yaml() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../images/guest.yaml")
}

/// Panics (fails the test) unless `path` exists, naming the package that ships it.
pub fn need(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "this test needs {path}: install it with `apt-get install {package}`"
    );
    p
}

/// Runs a command, failing the test with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) -> Output {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `cpio -it` listing of an archive (fails the test if cpio is missing).
pub fn cpio_list(archive: &Path) -> Vec<String> {
    need("/usr/bin/cpio", "cpio");
    let file = std::fs::File::open(archive).expect("open archive");
    let out = run(Command::new("cpio").args(["-it", "--quiet"]).stdin(file));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Extracts an archive with `cpio -idm` into `dest` (must exist).
pub fn cpio_extract(archive: &Path, dest: &Path) {
    need("/usr/bin/cpio", "cpio");
    let file = std::fs::File::open(archive).expect("open archive");
    run(Command::new("cpio")
        .args(["-idm", "--quiet", "--no-absolute-filenames"])
        .current_dir(dest)
        .stdin(file));
}

pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}
