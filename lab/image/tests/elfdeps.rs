//! Shared-library resolution on real host binaries (parsed, never executed).

mod common;

use lab_image::elfdeps::{debian_lib_package, parse, resolve_deps, Resolved};
use lab_image::recipe::DEFAULT_LIBRARY_DIRS;
use lab_image::ImageError;

fn dirs() -> Vec<String> {
    DEFAULT_LIBRARY_DIRS.iter().map(|s| s.to_string()).collect()
}

fn find<'a>(r: &'a [Resolved], guest: &str) -> &'a Resolved {
    r.iter()
        .find(|x| x.guest() == guest)
        .unwrap_or_else(|| panic!("{guest} not resolved; got {:?}", guests(r)))
}

fn guests(r: &[Resolved]) -> Vec<&str> {
    r.iter().map(Resolved::guest).collect()
}

#[test]
fn daxctl_closure_has_libc_interpreter_and_its_own_libs() {
    let daxctl = common::need("/usr/bin/daxctl", "daxctl");
    let info = parse(&std::fs::read(&daxctl).expect("read")).expect("parse");
    assert_eq!(
        info.interpreter.as_deref(),
        Some("/lib64/ld-linux-x86-64.so.2")
    );
    assert!(
        info.needed.iter().any(|n| n == "libc.so.6"),
        "{:?}",
        info.needed
    );

    let r = resolve_deps(&daxctl, &dirs()).unwrap_or_else(|e| panic!("{e}"));
    assert!(matches!(
        find(&r, "/lib/x86_64-linux-gnu/libc.so.6"),
        Resolved::File { .. }
    ));
    // Debian: /lib64/ld-linux-x86-64.so.2 is a symlink into the multiarch dir; both go in.
    match find(&r, "/lib64/ld-linux-x86-64.so.2") {
        Resolved::Symlink { target, .. } => {
            assert_eq!(target, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
            let ld = find(&r, "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
            assert!(matches!(ld, Resolved::File { .. }));
        }
        Resolved::File { .. } => {}
    }
    // libdaxctl.so.1 -> libdaxctl.so.1.x.y: the link and its target.
    match find(&r, "/lib/x86_64-linux-gnu/libdaxctl.so.1") {
        Resolved::Symlink { target, .. } => {
            find(&r, &format!("/lib/x86_64-linux-gnu/{target}"));
        }
        Resolved::File { .. } => {}
    }
    // libndctl needs libkmod etc.: the closure is recursive.
    find(&r, "/lib/x86_64-linux-gnu/libndctl.so.6");
    find(&r, "/lib/x86_64-linux-gnu/libkmod.so.2");
    let mut seen = guests(&r);
    let n = seen.len();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), n, "each guest path once");
}

#[test]
fn static_busybox_has_no_dependencies() {
    let busybox = common::need("/bin/busybox", "busybox-static");
    let r = resolve_deps(&busybox, &dirs()).unwrap_or_else(|e| panic!("{e}"));
    assert!(r.is_empty(), "{:?}", guests(&r));
}

#[test]
fn missing_library_names_binary_library_and_package() {
    let daxctl = common::need("/usr/bin/daxctl", "daxctl");
    let empty = tempfile::tempdir().expect("tempdir");
    let only = vec![empty.path().to_string_lossy().into_owned()];
    let err = resolve_deps(&daxctl, &only).expect_err("nothing to find");
    let ImageError::MissingLibrary {
        binary,
        library,
        searched,
        hint,
    } = &err
    else {
        panic!("wrong error {err:?}")
    };
    assert_eq!(binary, "/usr/bin/daxctl");
    assert_eq!(library, "libdaxctl.so.1");
    assert_eq!(searched, &only);
    let msg = err.to_string();
    assert!(
        msg.contains("/usr/bin/daxctl") && msg.contains("libdaxctl.so.1"),
        "{msg}"
    );
    // dpkg (if present) knows where it really is; else the Debian naming guess. Both name it.
    assert!(hint.contains("libdaxctl1"), "{hint}");
}

#[test]
fn debian_package_name_guess() {
    assert_eq!(debian_lib_package("libc.so.6"), "libc6");
    assert_eq!(debian_lib_package("libjson-c.so.5"), "libjson-c5");
    assert_eq!(debian_lib_package("libfoo2.so.3"), "libfoo2-3");
    assert_eq!(debian_lib_package("libFoo_bar.so"), "libfoo-bar");
}
