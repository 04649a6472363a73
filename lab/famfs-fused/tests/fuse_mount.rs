//! famfs-fused against this host's real kernel FUSE, without the fmap extension (`--no-fmap`):
//! mount a generated shadow tree, look at it with `ls -lnR` and std::fs, change attributes,
//! unmount by signal and from outside. Needs /dev/fuse and the right to mount (root, or
//! CAP_SYS_ADMIN in a container that permits mount): where a probe mount shows that is missing,
//! each test prints `SKIP: <test>: <why>` and passes; anywhere else a failure is a failure.

use famfs_fmap::FMAP_ALIGN;
use famfs_shadow::{generate, write, DaxDev, DaxDevs, GenerateParams, Layout, ShadowTree};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const M2: u64 = FMAP_ALIGN;

/// Whether this test cannot mount FUSE here (then it has printed why).
fn cannot_mount() -> bool {
    famfs_fused::probe::skip(famfs_fused::probe::fuse_unavailable())
}

/// A small tree with varied names, sizes, modes and owners, in two directories.
fn tree() -> ShadowTree {
    let devices = DaxDevs(
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
                    size: None,
                },
            ),
        ]
        .into_iter()
        .collect(),
    );
    let p = GenerateParams {
        files: 7,
        layout: Layout::Interleaved {
            nstrips: 2,
            chunk_size: M2 as u32,
        },
        sizes: vec![0, 1, 4096, 3 * M2 + 17, 8 * M2],
        devices,
        dirs: 2,
        ..Default::default()
    };
    let mut t = generate(&p).expect("generate");
    for (i, f) in t.files.iter_mut().enumerate() {
        f.attrs.mode = [0o644, 0o600, 0o755, 0o640, 0o444, 0o4755, 0o700][i];
        f.attrs.uid = 1000 + i as u32;
        f.attrs.gid = 100 + i as u32;
    }
    t.dirs[1].mode = 0o750;
    t
}

struct Mounted {
    child: Option<Child>,
    mnt: PathBuf,
    stats: PathBuf,
    _dir: tempfile::TempDir,
}

impl Mounted {
    fn start(t: &ShadowTree, extra: &[&str]) -> Mounted {
        let dir = tempfile::tempdir().expect("tempdir");
        let shadow = dir.path().join("shadow");
        write(t, &shadow).expect("write shadow tree");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).expect("mkdir mnt");
        let stats = dir.path().join("stats.json");
        let ready = dir.path().join("ready");
        let child = Command::new(env!("CARGO_BIN_EXE_famfs-fused"))
            .arg("--shadow")
            .arg(&shadow)
            .arg("--mountpoint")
            .arg(&mnt)
            .arg("--stats")
            .arg(&stats)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn famfs-fused");
        let mut m = Mounted {
            child: Some(child),
            mnt,
            stats,
            _dir: dir,
        };
        let t0 = Instant::now();
        while !ready.exists() {
            if let Some(st) = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                let out = m
                    .child
                    .take()
                    .expect("child")
                    .wait_with_output()
                    .expect("output");
                panic!(
                    "famfs-fused exited ({st}) before the mount was ready:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "mount not ready after 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn stats(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.stats).expect("stats file"))
            .expect("stats JSON")
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("kill");
    }

    /// Wait for the server to exit; its status and stderr.
    fn wait(&mut self) -> (std::process::ExitStatus, String) {
        let mut c = self.child.take().expect("running");
        let t0 = Instant::now();
        while c.try_wait().expect("try_wait").is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "famfs-fused did not exit"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let out = c.wait_with_output().expect("output");
        (
            out.status,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t0 = Instant::now();
            while c.try_wait().ok().flatten().is_none() && t0.elapsed() < Duration::from_secs(5) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = nix::mount::umount2(&self.mnt, nix::mount::MntFlags::MNT_DETACH);
    }
}

fn is_mounted(p: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    mounts
        .lines()
        .any(|l| l.split_whitespace().nth(1) == Some(p.to_str().unwrap_or("")))
}

fn perms(mode: u32, dir: bool) -> String {
    let mut s = String::from(if dir { "d" } else { "-" });
    for (i, c) in "rwxrwxrwx".chars().enumerate() {
        s.push(if mode & (0o400 >> i) != 0 { c } else { '-' });
    }
    if mode & 0o4000 != 0 {
        s.replace_range(3..4, if mode & 0o100 != 0 { "s" } else { "S" });
    }
    s
}

#[test]
fn ls_shows_the_shadow_trees_names_sizes_modes_and_owners() {
    if cannot_mount() {
        return;
    }
    let t = tree();
    let m = Mounted::start(&t, &["--no-fmap"]);
    let out = Command::new("ls")
        .arg("-lnR")
        .arg(&m.mnt)
        .output()
        .expect("ls");
    assert!(
        out.status.success(),
        "ls -lnR failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // "-rw-r--r-- 1 1000 100 4096 <date> f2" under "<mnt>/d0:"
    for f in &t.files {
        let (dir, name) = f.path.rsplit_once('/').expect("files are in d0/d1");
        let section = text
            .split(&format!("{}:\n", m.mnt.join(dir).display()))
            .nth(1)
            .expect("dir section")
            .split("\n\n")
            .next()
            .unwrap_or("");
        let line = section
            .lines()
            .find(|l| l.ends_with(&format!(" {name}")))
            .unwrap_or_else(|| panic!("{} not listed in:\n{text}", f.path));
        let cols: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(cols[0], perms(f.attrs.mode, false), "{line}");
        assert_eq!(
            (cols[2], cols[3], cols[4]),
            (
                f.attrs.uid.to_string().as_str(),
                f.attrs.gid.to_string().as_str(),
                f.attrs.size.to_string().as_str()
            ),
            "{line}"
        );
    }
    let top = text.split("\n\n").next().unwrap_or("");
    assert!(
        top.lines()
            .any(|l| l.starts_with("drwxr-x---") && l.ends_with(" d0")),
        "{text}"
    );
    assert!(
        top.lines()
            .any(|l| l.starts_with("drwxr-xr-x") && l.ends_with(" d1")),
        "{text}"
    );
    // stat agrees, inode numbers are node ids
    for f in &t.files {
        let md = std::fs::metadata(m.mnt.join(&f.path)).expect("stat");
        assert_eq!(
            (md.len(), md.mode() & 0o7777, md.uid(), md.gid()),
            (f.attrs.size, f.attrs.mode, f.attrs.uid, f.attrs.gid)
        );
        assert!(md.ino() > 1);
    }
    let st = m.stats();
    assert_eq!(st["fmap"], false);
    assert_eq!(st["init"]["fmap"], false);
    assert!(st["init"]["minor"].as_u64().expect("minor") >= 31);
    assert!(
        st["opcodes"]["READDIRPLUS"].as_u64().unwrap_or(0)
            + st["opcodes"]["READDIR"].as_u64().unwrap_or(0)
            > 0,
        "{st}"
    );
    assert_eq!(st["malformed"], 0);
}

#[test]
fn attributes_change_in_memory_and_size_changes_are_refused() {
    if cannot_mount() {
        return;
    }
    let t = tree();
    let m = Mounted::start(&t, &["--no-fmap", "--attr-timeout-ms", "0"]);
    let f = m.mnt.join(&t.files[3].path);
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    std::os::unix::fs::chown(&f, Some(4242), Some(4343)).expect("chown");
    let times = std::fs::FileTimes::new()
        .set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_000_000));
    std::fs::File::options()
        .write(true)
        .open(&f)
        .expect("open")
        .set_times(times)
        .expect("utimes");
    let md = std::fs::metadata(&f).expect("stat");
    assert_eq!(
        (md.mode() & 0o7777, md.uid(), md.gid(), md.mtime()),
        (0o600, 4242, 4343, 1_000_000)
    );
    let e = std::fs::File::options()
        .write(true)
        .open(&f)
        .expect("open")
        .set_len(1)
        .expect_err("resize refused");
    assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    assert_eq!(
        std::fs::metadata(&f).expect("stat").len(),
        t.files[3].attrs.size
    );
    let st = m.stats();
    assert!(st["errors"]["SETATTR"].as_u64().unwrap_or(0) >= 1, "{st}");
}

#[test]
fn allow_resize_accepts_size_changes() {
    if cannot_mount() {
        return;
    }
    let t = tree();
    let m = Mounted::start(
        &t,
        &["--no-fmap", "--allow-resize", "--attr-timeout-ms", "0"],
    );
    let f = m.mnt.join(&t.files[4].path);
    let file = std::fs::File::options().write(true).open(&f).expect("open");
    for size in [1000, 20 * M2, 0] {
        file.set_len(size).expect("resize");
        assert_eq!(std::fs::metadata(&f).expect("stat").len(), size);
    }
}

#[test]
fn sigterm_unmounts_and_exits_cleanly() {
    if cannot_mount() {
        return;
    }
    let mut m = Mounted::start(&tree(), &["--no-fmap", "--threads", "3"]);
    assert!(is_mounted(&m.mnt));
    m.signal(nix::sys::signal::Signal::SIGUSR1);
    m.signal(nix::sys::signal::Signal::SIGTERM);
    let (st, err) = m.wait();
    assert!(st.success(), "exit {st}: {err}");
    assert!(!is_mounted(&m.mnt), "still mounted after SIGTERM");
}

#[test]
fn external_umount_stops_the_server() {
    if cannot_mount() {
        return;
    }
    let mut m = Mounted::start(&tree(), &["--no-fmap"]);
    nix::mount::umount2(&m.mnt, nix::mount::MntFlags::empty()).expect("umount");
    let (st, err) = m.wait();
    assert!(st.success(), "exit {st}: {err}");
}

/// On a kernel without the famfs-bpf series (this host), asking for the fmap extension fails
/// at INIT with a message saying why, and leaves nothing mounted.
#[test]
fn fmap_mode_on_a_kernel_without_the_extension_fails_loudly() {
    if cannot_mount() {
        return;
    }
    let btf = std::fs::read("/sys/kernel/btf/vmlinux").unwrap_or_default();
    if btf.windows(17).any(|w| w == b"fuse_dax_fmap_ops") {
        // The famfs-bpf kernel: this case is the guest suites' business.
        println!("kernel has fuse_dax_fmap_ops: nothing to check here");
        return;
    }
    let t = tree();
    let dir = tempfile::tempdir().expect("tempdir");
    write(&t, &dir.path().join("shadow")).expect("write");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).expect("mkdir");
    let out = Command::new(env!("CARGO_BIN_EXE_famfs-fused"))
        .args(["--ops", "famfs_native", "--shadow"])
        .arg(dir.path().join("shadow"))
        .arg("--mountpoint")
        .arg(&mnt)
        .output()
        .expect("run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("does not offer FUSE_DAX_FMAP"), "{err}");
    assert!(!is_mounted(&mnt));
}
