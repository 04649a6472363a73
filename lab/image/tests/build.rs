//! End-to-end: the real images/guest.yaml plus an extra binary and a fake modules tree.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lab_image::{build, BuiltImage, ImageInputs, Recipe};

const RELEASE: &str = "6.99.0-famfs-test";

fn host_tools() {
    common::need("/bin/busybox", "busybox-static");
    common::need("/usr/bin/ndctl", "ndctl");
    common::need("/usr/bin/cxl", "ndctl");
    common::need("/usr/bin/daxctl", "daxctl");
    common::need("/bin/kmod", "kmod");
    common::need("/usr/sbin/bpftool", "bpftool");
}

/// A `lib/modules/<release>` tree as `make modules_install` leaves it.
fn fake_modules(root: &Path) -> PathBuf {
    let dir = root.join("lib/modules").join(RELEASE);
    std::fs::create_dir_all(dir.join("kernel/fs/famfs")).expect("mkdir");
    std::fs::write(dir.join("kernel/fs/famfs/famfs.ko"), b"\x7fELF not really").expect("w");
    std::fs::write(dir.join("modules.dep"), "kernel/fs/famfs/famfs.ko:\n").expect("w");
    std::os::unix::fs::symlink("/nonexistent/linux", dir.join("build")).expect("symlink");
    dir
}

fn inputs(modules: &Path) -> ImageInputs {
    let recipe = Recipe::load(&common::guest_yaml()).unwrap_or_else(|e| panic!("{e}"));
    ImageInputs {
        recipe,
        // Stand-in for our guest agent: any dynamically linked executable will do.
        extra_files: vec![(
            common::need("/usr/bin/daxctl", "daxctl"),
            "/usr/libexec/famfs-lab/guest-agent".into(),
            0o755,
        )],
        kernel_modules_dir: Some(modules.to_owned()),
        init: "/usr/libexec/famfs-lab/guest-agent".into(),
    }
}

fn timed_build(i: &ImageInputs, cache: &Path) -> BuiltImage {
    let t = Instant::now();
    let img = build(i, cache).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "build: hit={} {} entries {} bytes in {:.2?} -> {}",
        img.cache_hit,
        img.files,
        img.size,
        t.elapsed(),
        img.path.display()
    );
    img
}

#[test]
fn deterministic_cached_and_agrees_with_gnu_cpio() {
    host_tools();
    let work = tempfile::tempdir().expect("tempdir");
    let modules = fake_modules(work.path());
    let i = inputs(&modules);
    let (cache_a, cache_b) = (work.path().join("a"), work.path().join("b"));

    let a = timed_build(&i, &cache_a);
    assert!(!a.cache_hit);
    assert_eq!(
        a.path,
        cache_a.join("images").join(&a.hash).join("initramfs.cpio")
    );
    assert_eq!(
        std::fs::metadata(&a.path).map(|m| m.len()).ok(),
        Some(a.size)
    );
    let ino = std::fs::metadata(&a.path).expect("stat").ino();

    // Same inputs: same hash, nothing rewritten.
    let again = timed_build(&i, &cache_a);
    assert!(again.cache_hit);
    assert_eq!(
        (&again.hash, &again.path, again.size),
        (&a.hash, &a.path, a.size)
    );
    assert_eq!(std::fs::metadata(&a.path).expect("stat").ino(), ino);
    let leftovers: Vec<_> = std::fs::read_dir(cache_a.join("images"))
        .expect("ls")
        .collect();
    assert_eq!(leftovers.len(), 1, "only the image dir, no temp dirs");

    // Independent build: byte-identical archive.
    let b = timed_build(&i, &cache_b);
    assert!(!b.cache_hit);
    assert_eq!(a.hash, b.hash);
    let bytes = std::fs::read(&a.path).expect("read");
    assert!(
        bytes == std::fs::read(&b.path).expect("read"),
        "archives differ"
    );

    // GNU cpio lists exactly the manifest's entries, in the same order.
    let manifest = std::fs::read_to_string(&a.manifest).expect("manifest");
    let rows: Vec<Vec<&str>> = manifest
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), a.files);
    let from_manifest: Vec<&str> = rows.iter().map(|r| &r[0][1..]).collect();
    assert_eq!(common::cpio_list(&a.path), from_manifest);

    for want in [
        "/init\tsymlink\t0777\t34\tinit\t-> /usr/libexec/famfs-lab/guest-agent",
        "/bin/busybox\tfile\t0755\t",
        "/bin/sh\tsymlink\t0777\t12\tbusybox applet\t-> /bin/busybox",
        "/sbin/modprobe\tsymlink\t0777\t13\trecipe\t-> /usr/bin/kmod",
        "/usr/bin/kmod\tfile\t0755\t",
        "/tmp\tdir\t1777\t0\trecipe",
        "/dev/console\tchar\t0600\t0\trecipe\t5:1",
        "/lib/x86_64-linux-gnu/libc.so.6\tfile\t",
        "/lib64/ld-linux-x86-64.so.2\tsymlink\t",
        &format!("/lib/modules/{RELEASE}/kernel/fs/famfs/famfs.ko\tfile\t0644\t15\t"),
    ] {
        assert!(manifest.contains(want), "manifest lacks {want:?}");
    }
    assert!(!manifest.contains(&format!("/lib/modules/{RELEASE}/build\t")));
    assert!(!manifest.contains("/linuxrc\t"));

    extract_and_run(&a, &rows);
}

/// Extracts the image, checks every entry against its source, then runs the tools inside a
/// chroot: proves the library closure is complete without booting anything.
fn extract_and_run(img: &BuiltImage, rows: &[Vec<&str>]) {
    assert!(
        common::is_root(),
        "extracting device nodes and chroot need root"
    );
    let root = tempfile::tempdir().expect("tempdir");
    common::cpio_extract(&img.path, root.path());
    for r in rows {
        let (path, kind, mode, src) = (&r[0][1..], r[1], r[2], r[4]);
        let p = root.path().join(path);
        let meta = std::fs::symlink_metadata(&p).unwrap_or_else(|e| panic!("{path}: {e}"));
        match kind {
            "file" => {
                let got = std::fs::read(&p).expect("read");
                assert!(
                    got == std::fs::read(src).expect("read source"),
                    "{path} != {src}"
                );
                assert_eq!(format!("{:04o}", meta.permissions().mode() & 0o7777), mode);
            }
            "symlink" => {
                let target = std::fs::read_link(&p).expect("readlink");
                assert_eq!(
                    Some(target.to_string_lossy().as_ref()),
                    r[5].strip_prefix("-> ")
                );
            }
            "dir" => assert!(meta.is_dir(), "{path}"),
            _ => {}
        }
    }
    let chroot = common::need("/usr/sbin/chroot", "coreutils");
    for cmd in [
        &["/bin/sh", "-c", "echo shell-ok"][..],
        &["/usr/bin/ndctl", "--version"],
        &["/usr/bin/daxctl", "--version"],
        &["/usr/bin/cxl", "--version"],
        &["/usr/sbin/bpftool", "version"],
        &["/sbin/modprobe", "--version"],
        &["/sbin/depmod", "--version"],
        &["/usr/libexec/famfs-lab/guest-agent", "--version"],
    ] {
        let out = common::run(
            Command::new(&chroot)
                .arg(root.path())
                .args(cmd)
                .env_clear()
                .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        );
        eprintln!(
            "chroot {cmd:?}: {}",
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
}

#[test]
fn incomplete_image_dir_is_replaced_and_no_temp_dirs_remain() {
    let busybox = common::need("/bin/busybox", "busybox-static");
    let work = tempfile::tempdir().expect("tempdir");
    let i = ImageInputs {
        recipe: Recipe::from_yaml("{}", "empty").unwrap_or_else(|e| panic!("{e}")),
        extra_files: vec![(busybox, "/bin/busybox".into(), 0o755)],
        kernel_modules_dir: None,
        init: "/bin/busybox".into(),
    };
    let hash = lab_image::plan(&i)
        .unwrap_or_else(|e| panic!("{e}"))
        .hash()
        .to_owned();
    // What a foreign/partial writer might leave: the hash dir without an archive.
    let dir = work.path().join("images").join(&hash);
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(dir.join("junk"), b"partial").expect("write");
    let img = timed_build(&i, work.path());
    assert!(!img.cache_hit);
    assert_eq!(img.hash, hash);
    assert!(!dir.join("junk").exists());
    assert_eq!(img.files, 3, "bin, bin/busybox, init");
    let names: Vec<String> = std::fs::read_dir(work.path().join("images"))
        .expect("ls")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, [hash]);
    let mode = std::fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
}
