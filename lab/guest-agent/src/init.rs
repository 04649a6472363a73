//! PID-1 system setup: pseudo filesystems, stdio, PATH, hostname, and the
//! optional 9p `results` share. Every step is best effort: failures are
//! logged to the console and setup continues.

use std::collections::HashSet;
use std::os::fd::AsRawFd;
use std::path::Path;

use nix::mount::{mount, MsFlags};

use crate::log;

pub const PATH: &str = "/usr/sbin:/usr/bin:/sbin:/bin";
pub const HOSTNAME: &str = "famfs-lab";
pub const RESULTS_TAG: &str = "results";
pub const RESULTS_DIR: &str = "/results";
pub const RESULTS_OPTS: &str = "trans=virtio,version=9p2000.L,msize=512000";
const NINEP_DRIVER_DIR: &str = "/sys/bus/virtio/drivers/9pnet_virtio";

struct MountSpec {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

const fn spec(
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
) -> MountSpec {
    MountSpec {
        source,
        target,
        fstype,
        flags,
        data,
    }
}

fn mounts() -> Vec<MountSpec> {
    let nse = MsFlags::MS_NOSUID
        .union(MsFlags::MS_NODEV)
        .union(MsFlags::MS_NOEXEC);
    let ns = MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV);
    vec![
        // proc first: the "already mounted" check reads /proc/self/mounts.
        spec("proc", "/proc", "proc", nse, None),
        spec("sysfs", "/sys", "sysfs", nse, None),
        spec(
            "devtmpfs",
            "/dev",
            "devtmpfs",
            MsFlags::MS_NOSUID,
            Some("mode=0755"),
        ),
        spec("tmpfs", "/tmp", "tmpfs", ns, Some("mode=1777")),
        spec("tmpfs", "/run", "tmpfs", ns, Some("mode=0755")),
        spec(
            "devpts",
            "/dev/pts",
            "devpts",
            MsFlags::MS_NOSUID.union(MsFlags::MS_NOEXEC),
            Some("gid=5,mode=0620,ptmxmode=0666"),
        ),
        spec("tmpfs", "/dev/shm", "tmpfs", ns, Some("mode=1777")),
        spec("tracefs", "/sys/kernel/tracing", "tracefs", nse, None),
        spec("debugfs", "/sys/kernel/debug", "debugfs", nse, None),
        spec("bpf", "/sys/fs/bpf", "bpf", nse, Some("mode=0700")),
        spec("cgroup2", "/sys/fs/cgroup", "cgroup2", nse, None),
    ]
}

/// Full PID-1 setup. Never fails; problems are logged.
pub fn setup() {
    let mut mounted = mounted_targets();
    for m in mounts() {
        if mounted.contains(m.target) || absent_in_sysfs(m.target) {
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(m.target) {
            log(&format!(
                "mkdir {}: {e} (skipping {} mount)",
                m.target, m.fstype
            ));
            continue;
        }
        let mounting = || mount(Some(m.source), m.target, Some(m.fstype), m.flags, m.data);
        let done = if m.fstype == "bpf" {
            without_module_requests(mounting)
        } else {
            mounting()
        };
        match done {
            Ok(()) => {
                mounted.insert(m.target.to_string());
                if m.target == "/proc" {
                    // Now we can see what the kernel mounted already.
                    mounted.extend(mounted_targets());
                }
            }
            Err(nix::errno::Errno::EBUSY) => {}
            Err(e) => log(&format!("mount {} on {}: {e}", m.fstype, m.target)),
        }
        if m.target == "/dev" {
            mark_start();
            fix_stdio();
            dev_symlinks();
        }
    }
    std::env::set_var("PATH", PATH);
    console_loglevel(lab_agent_proto::CONSOLE_LOGLEVEL_AFTER_BOOT);
    if let Err(e) = nix::unistd::sethostname(HOSTNAME) {
        log(&format!("sethostname: {e}"));
    }
    mount_results();
}

/// `famfs-lab-agent: PID 1` in the kernel log as soon as /dev/kmsg is there: the end of the
/// kernel's own boot as `lab bench boot` cuts it (the kernel's "Run /init" line is info level,
/// off the console during boot; the agent's start and first mounts fall before this line).
fn mark_start() {
    if let Err(e) =
        crate::server::write_kmsg(Path::new("/dev/kmsg"), lab_agent_proto::INIT_STARTED_MARKER)
    {
        log(&format!("start marker: {e}"));
    }
}

/// Where the kernel's module requests go (`request_module()` runs this program).
const MODPROBE_SYSCTL: &str = "/proc/sys/kernel/modprobe";

/// Runs `f` with the kernel's module requests off (an empty modprobe path: they fail at once
/// with ENOENT), then puts the path back. Every bpffs mount asks for the `bpf_preload` module,
/// which our kernels build in or leave out, never as a module: the request can only fail, and
/// the usermode helper that fails it (a fork and an exec of kmod, which loads libcrypto) costs
/// PID 1 30 ms of the boot under TCG.
fn without_module_requests<T>(f: impl FnOnce() -> T) -> T {
    let saved = std::fs::read(MODPROBE_SYSCTL).ok();
    let off = saved.is_some() && std::fs::write(MODPROBE_SYSCTL, "\n").is_ok();
    let out = f();
    if let (true, Some(path)) = (off, saved) {
        if let Err(e) = std::fs::write(MODPROBE_SYSCTL, &path) {
            log(&format!("restoring {MODPROBE_SYSCTL}: {e}"));
        }
    }
    out
}

/// Sets the console log level (the first field of /proc/sys/kernel/printk): the lab boots with
/// `loglevel=6` so that the boot's info lines stay off the slow serial console; from here on
/// the console shows info again.
fn console_loglevel(level: u8) {
    if let Err(e) = std::fs::write("/proc/sys/kernel/printk", level.to_string()) {
        log(&format!("console log level {level}: {e}"));
    }
}

/// A mount point under /sys that the kernel did not create (/sys/fs/cgroup without
/// CONFIG_CGROUPS): sysfs takes no mkdir, so there is nothing to mount it on, and saying so
/// on the console at every boot costs the boot the UART's time.
fn absent_in_sysfs(target: &str) -> bool {
    target.starts_with("/sys/") && !Path::new(target).exists()
}

/// Mount points listed in /proc/self/mounts (empty if unreadable).
fn mounted_targets() -> HashSet<String> {
    std::fs::read_to_string("/proc/self/mounts")
        .map(|text| parse_mount_targets(&text))
        .unwrap_or_default()
}

fn parse_mount_targets(text: &str) -> HashSet<String> {
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|t| t.replace("\\040", " "))
        .collect()
}

/// Without /dev/console in the initramfs the kernel starts us with no
/// stdio, and Rust's runtime points fds 0-2 at /dev/null. Once devtmpfs is
/// mounted, put the console there so logs reach the serial port.
fn fix_stdio() {
    let on_null = |fd: i32| {
        std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map(|p| p == Path::new("/dev/null"))
            .unwrap_or(false)
    };
    if !(0..3).any(on_null) {
        return;
    }
    let Ok(console) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/console")
    else {
        return;
    };
    for fd in 0..3 {
        if on_null(fd) {
            // SAFETY: dup2 onto a standard fd; both fds are valid.
            unsafe { libc::dup2(console.as_raw_fd(), fd) };
        }
    }
}

fn dev_symlinks() {
    for (link, target) in [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        if std::fs::symlink_metadata(link).is_err() {
            if let Err(e) = std::os::unix::fs::symlink(target, link) {
                log(&format!("symlink {link}: {e}"));
            }
        }
    }
}

/// 9p mount tags offered by virtio devices under `driver_dir`.
pub fn ninep_tags(driver_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(driver_dir) else {
        return Vec::new();
    };
    let mut tags: Vec<String> = entries
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("mount_tag")).ok())
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_string()
        })
        .collect();
    tags.sort();
    tags
}

fn mount_results() {
    if !ninep_tags(Path::new(NINEP_DRIVER_DIR))
        .iter()
        .any(|t| t == RESULTS_TAG)
    {
        return;
    }
    if let Err(e) = std::fs::create_dir_all(RESULTS_DIR) {
        log(&format!("mkdir {RESULTS_DIR}: {e}"));
        return;
    }
    if let Err(e) = mount(
        Some(RESULTS_TAG),
        RESULTS_DIR,
        Some("9p"),
        MsFlags::empty(),
        Some(RESULTS_OPTS),
    ) {
        log(&format!("mount 9p {RESULTS_TAG} on {RESULTS_DIR}: {e}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_mount_points_under_sys_can_be_absent() {
        assert!(absent_in_sysfs("/sys/no/such/dir"));
        assert!(!absent_in_sysfs("/sys"));
        assert!(
            !absent_in_sysfs("/tmp/no/such/dir"),
            "made by mkdir, never skipped"
        );
    }

    #[test]
    fn parses_mount_targets() {
        let t = parse_mount_targets(
            "proc /proc proc rw 0 0\nsysfs /sys sysfs rw 0 0\nx /a\\040b tmpfs rw 0 0\n",
        );
        assert!(t.contains("/proc") && t.contains("/sys") && t.contains("/a b"));
        assert!(!t.contains("/dev"));
    }

    #[test]
    fn finds_9p_tags() {
        let dir = tempfile::tempdir().unwrap();
        for (dev, tag) in [("virtio3", &b"results\0"[..]), ("virtio4", b"other\n")] {
            std::fs::create_dir(dir.path().join(dev)).unwrap();
            std::fs::write(dir.path().join(dev).join("mount_tag"), tag).unwrap();
        }
        std::fs::write(dir.path().join("uevent"), "").unwrap();
        assert_eq!(ninep_tags(dir.path()), ["other", "results"]);
        assert!(ninep_tags(&dir.path().join("none")).is_empty());
    }

    #[test]
    fn mount_table_is_ordered() {
        let m = mounts();
        assert_eq!(m[0].target, "/proc");
        let pos = |t: &str| m.iter().position(|s| s.target == t).unwrap();
        assert!(pos("/dev") < pos("/dev/pts") && pos("/dev") < pos("/dev/shm"));
        assert!(pos("/sys") < pos("/sys/kernel/tracing") && pos("/sys") < pos("/sys/fs/bpf"));
    }
}
