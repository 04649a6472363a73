//! Can this process mount FUSE or use bpf(2) at all? The host tests that mount or load BPF ask
//! first and skip, saying why, where the answer is no (an unprivileged container, a user
//! without root); anywhere the capability is there they run, and a failure is theirs.
//!
//! Each probe does the real thing in its smallest form rather than guessing from uid or
//! capability bits: a FUSE mount with nobody serving it (undone at once), a one-entry BPF map.

use std::os::fd::AsRawFd;
use std::path::PathBuf;

/// Why a FUSE mount is impossible here, or None when one works.
pub fn fuse_unavailable() -> Option<String> {
    let dev = match crate::session::open_dev() {
        Ok(f) => f,
        Err(e) => return Some(format!("{e:#}")),
    };
    let dir = probe_dir();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return Some(format!("creating {}: {e}", dir.display()));
    }
    let data = format!(
        "fd={},rootmode=40000,user_id={},group_id={}",
        dev.as_raw_fd(),
        nix::unistd::getuid(),
        nix::unistd::getgid()
    );
    let mounted = nix::mount::mount(
        Some("famfs-lab-probe"),
        &dir,
        Some("fuse"),
        nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV,
        Some(data.as_str()),
    );
    // Closing the device first aborts the connection: the unmount never waits on a server.
    drop(dev);
    let why = match mounted {
        Ok(()) => {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
            None
        }
        Err(e) => Some(format!(
            "mount -t fuse is refused here ({e}): needs CAP_SYS_ADMIN and a mount-permitting \
             seccomp/AppArmor profile"
        )),
    };
    let _ = std::fs::remove_dir(&dir);
    why
}

/// Why bpf(2) cannot be used here (loading programs needs CAP_BPF or CAP_SYS_ADMIN), or None.
pub fn bpf_unavailable() -> Option<String> {
    // BPF_MAP_CREATE of a BPF_MAP_TYPE_ARRAY with one 4-byte entry; the rest of the attribute
    // union stays zero, as the kernel requires of fields it does not know.
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let mut attr = [0u32; 32];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    // SAFETY: `attr` is a zeroed buffer of the size passed, valid for the whole call; the
    // returned fd, if any, is closed below.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Some(format!("bpf(BPF_MAP_CREATE) is refused here ({e})"));
    }
    // SAFETY: `fd` is the map fd bpf(2) just returned to us and nothing else owns it.
    unsafe { libc::close(fd as libc::c_int) };
    if !has_effective_cap(CAP_BPF) && !has_effective_cap(CAP_SYS_ADMIN) {
        return Some(
            "neither CAP_BPF nor CAP_SYS_ADMIN: maps, but no programs, can be made".to_string(),
        );
    }
    None
}

/// Why this kernel's BTF cannot be read (libbpf needs it to load struct_ops), or None.
pub fn kernel_btf_unavailable() -> Option<String> {
    const VMLINUX: &str = "/sys/kernel/btf/vmlinux";
    std::fs::File::open(VMLINUX)
        .err()
        .map(|e| format!("{VMLINUX}: {e} (a kernel without CONFIG_DEBUG_INFO_BTF)"))
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_BPF: u32 = 39;

fn has_effective_cap(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| cap_in_status(&s, cap))
}

/// Whether the `CapEff:` line of a /proc/PID/status text has bit `cap`.
fn cap_in_status(status: &str, cap: u32) -> bool {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|bits| bits & (1u64 << cap) != 0)
}

/// A directory of our own to try the mount on.
fn probe_dir() -> PathBuf {
    std::env::temp_dir().join(format!("famfs-fused-probe-{}", std::process::id()))
}

/// Prints the line a test that cannot run here leaves in its output (`SKIP: <test>: <why>`,
/// collected into CI's summary) and returns true; false when `why` is None.
pub fn skip(why: Option<String>) -> bool {
    let thread = std::thread::current();
    match skip_line(thread.name(), why) {
        Some(line) => {
            println!("{line}");
            true
        }
        None => false,
    }
}

/// The `SKIP:` line for the test running on thread `test` (libtest names it after the test).
fn skip_line(test: Option<&str>, why: Option<String>) -> Option<String> {
    why.map(|why| format!("SKIP: {}: {why}", test.unwrap_or("<unnamed test>")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_line_names_the_test_and_the_reason_and_needs_one() {
        assert!(!skip(None));
        assert_eq!(skip_line(Some("t"), None), None);
        assert_eq!(
            skip_line(Some("mod::t"), Some("no /dev/fuse".into())).as_deref(),
            Some("SKIP: mod::t: no /dev/fuse")
        );
        assert_eq!(
            skip_line(None, Some("x".into())).as_deref(),
            Some("SKIP: <unnamed test>: x")
        );
    }

    #[test]
    fn the_probes_answer_without_panicking() {
        // Whatever this host allows, each probe answers (and leaves no mount behind).
        let _ = fuse_unavailable();
        let _ = bpf_unavailable();
        let _ = kernel_btf_unavailable();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        assert!(!mounts.contains("famfs-fused-probe-"), "{mounts}");
    }

    #[test]
    fn effective_caps_come_from_the_capeff_line() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapEff:\t0000008000200000\n";
        assert!(cap_in_status(status, CAP_SYS_ADMIN));
        assert!(cap_in_status(status, CAP_BPF));
        assert!(!cap_in_status(status, 0));
        assert!(!cap_in_status("CapEff:\tnothex\n", CAP_SYS_ADMIN));
        assert!(!cap_in_status("", CAP_SYS_ADMIN));
    }
}
