//! Recipe parsing and the errors that name what is wrong and what to install.

mod common;

use lab_image::{plan, ImageError, ImageInputs, Recipe};

#[test]
fn guest_yaml_parses_and_names_packages() {
    let recipe = Recipe::load(&common::guest_yaml()).unwrap_or_else(|e| panic!("{e}"));
    let pkg = |guest: &str| recipe.file_for_guest(guest).map(|f| f.package.as_str());
    assert_eq!(pkg("/bin/busybox"), Some("busybox-static"));
    assert_eq!(pkg("/usr/bin/ndctl"), Some("ndctl"));
    assert_eq!(pkg("/usr/bin/cxl"), Some("ndctl"));
    assert_eq!(pkg("/usr/bin/daxctl"), Some("daxctl"));
    assert_eq!(pkg("/usr/bin/kmod"), Some("kmod"));
    assert_eq!(pkg("/usr/sbin/bpftool"), Some("bpftool"));
    for link in ["modprobe", "insmod", "lsmod", "rmmod", "depmod"] {
        let path = format!("/sbin/{link}");
        let s = recipe.symlinks.iter().find(|s| s.path == path);
        assert_eq!(
            s.map(|s| s.target.as_str()),
            Some("/usr/bin/kmod"),
            "{path}"
        );
    }
    let dirs: Vec<&str> = recipe.directories.iter().map(|d| d.path.as_str()).collect();
    for d in [
        "/proc",
        "/sys",
        "/dev",
        "/tmp",
        "/run",
        "/results",
        "/mnt",
        "/sys/fs/bpf",
    ] {
        assert!(dirs.contains(&d), "{d} missing from directories");
    }
    let tmp = recipe.directories.iter().find(|d| d.path == "/tmp");
    assert_eq!(tmp.map(|d| d.mode), Some(0o1777));
}

fn parse_err(yaml: &str) -> String {
    match Recipe::from_yaml(yaml, "test.yaml") {
        Ok(r) => panic!("expected an error, parsed {r:?}"),
        Err(e @ ImageError::Recipe { .. }) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e:?}"),
    }
}

#[test]
fn unknown_key_error_names_key_and_line() {
    let msg = parse_err("files:\n  - host: /bin/true\n    package: coreutils\n    gust: /x\n");
    assert!(msg.contains("gust") && msg.contains("line 4"), "{msg}");
    assert!(msg.starts_with("recipe test.yaml:"), "{msg}");
    let msg = parse_err("files: []\nbusybox_applets: true\n");
    assert!(
        msg.contains("busybox_applets") && msg.contains("line 2"),
        "{msg}"
    );
}

#[test]
fn mode_must_be_quoted_octal() {
    let msg = parse_err("directories:\n  - { path: /tmp, mode: 1777 }\n");
    assert!(
        msg.contains("quoted octal") && msg.contains("line 2"),
        "{msg}"
    );
    let msg = parse_err("directories:\n  - { path: /tmp, mode: \"99\" }\n");
    assert!(msg.contains("invalid mode"), "{msg}");
    let ok = Recipe::from_yaml("directories:\n  - { path: /tmp, mode: \"1777\" }\n", "t");
    assert_eq!(ok.map(|r| r.directories[0].mode).ok(), Some(0o1777));
}

#[test]
fn missing_package_field_and_bad_paths_are_errors() {
    let msg = parse_err("files:\n  - host: /bin/true\n");
    assert!(msg.contains("package") && msg.contains("line 2"), "{msg}");
    let msg = parse_err("files:\n  - { host: bin/true, package: coreutils }\n");
    assert!(
        msg.contains("files[0].host") && msg.contains("not absolute"),
        "{msg}"
    );
    let msg = parse_err("symlinks:\n  - { path: /a/../b, target: x }\n");
    assert!(msg.contains("symlinks[0].path"), "{msg}");
    let msg = parse_err("directories:\n  - { path: /a }\n  - { path: /a/ }\n");
    assert!(msg.contains("appears twice"), "{msg}");
    let msg = parse_err("busybox:\n  binary: /bin/busybox\n");
    assert!(msg.contains("busybox.binary"), "{msg}");
}

fn inputs(yaml: &str, init_host: &str) -> ImageInputs {
    ImageInputs {
        recipe: Recipe::from_yaml(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}")),
        extra_files: vec![(init_host.into(), "/sbin/agent".into(), 0o755)],
        kernel_modules_dir: None,
        init: "/sbin/agent".into(),
    }
}

#[test]
fn missing_required_file_names_file_and_package() {
    let busybox = common::need("/bin/busybox", "busybox-static");
    let yaml = "files:\n  - { host: /nonexistent/famfs-tool, guest: /bin/famfs-tool, package: famfs-tools }\n";
    let err = plan(&inputs(yaml, &busybox.to_string_lossy())).expect_err("must fail");
    assert!(matches!(err, ImageError::MissingHostFile { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/famfs-tool"), "{msg}");
    assert!(msg.contains("apt-get install famfs-tools"), "{msg}");
}

#[test]
fn optional_missing_file_is_skipped_with_a_note() {
    let busybox = common::need("/bin/busybox", "busybox-static");
    let yaml = "files:\n  - { host: /nonexistent/famfs-dbg, package: famfs-dbg, optional: true }\n";
    let p = plan(&inputs(yaml, &busybox.to_string_lossy())).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.notes().len(), 1, "{:?}", p.notes());
    assert!(
        p.notes()[0].contains("/nonexistent/famfs-dbg"),
        "{:?}",
        p.notes()
    );
    assert!(
        p.notes()[0].contains("apt-get install famfs-dbg"),
        "{:?}",
        p.notes()
    );
    assert!(!p.manifest().contains("famfs-dbg"));
    assert!(p.manifest().contains("/sbin/agent\tfile\t0755"));
}

#[test]
fn init_must_be_an_executable_in_the_image() {
    let busybox = common::need("/bin/busybox", "busybox-static");
    let mut i = inputs("{}", &busybox.to_string_lossy());
    i.init = "/sbin/nope".into();
    let msg = plan(&i).expect_err("must fail").to_string();
    assert!(
        msg.contains("/sbin/nope") && msg.contains("not in the image"),
        "{msg}"
    );
    i.extra_files[0].2 = 0o644;
    i.init = "/sbin/agent".into();
    let msg = plan(&i).expect_err("must fail").to_string();
    assert!(msg.contains("not an executable"), "{msg}");
}
