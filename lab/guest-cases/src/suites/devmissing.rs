//! The device_missing suite: slots naming something that is not a usable dax device, and dax
//! devices that go away (unbind, memory failure) under a mount.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec, Target};
use crate::setup;
use crate::system::mapping::Mapping;
use crate::system::sys::{self, Access, Kmsg};
use crate::system::sysfs::sysfs_write_timeout;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_suite::expect::{
    interleaved_map, simple_map, AreaAlloc, Stripe, MIB, READ_AREA, WRITE_AREA,
};
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::Duration;

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    match name {
        "path_absent" => path_absent(ctx),
        "not_a_dax_device" => not_a_dax_device(ctx),
        "device_dax_mode" => device_dax_mode(ctx),
        "second_device_absent" => second_device_absent(ctx),
        "unbind_while_mapped" => unbind_while_mapped(ctx),
        "memory_failure" => memory_failure(ctx),
        "dirty_unbind" => crate::suites::teardown::dirty_unbind(ctx),
        "poison_read_mapped" => crate::suites::faults::poison_read_mapped(ctx),
        "poison_list" => crate::suites::faults::poison_list(ctx),
        "uncorrectable_error" => crate::suites::faults::uncorrectable_error(ctx),
        "device_removed_mapped" => crate::suites::faults::device_removed_mapped(ctx),
        "holder_handover" => crate::suites::teardown::holder_handover(ctx),
        "umount_dirty" => crate::suites::teardown::umount_dirty(ctx),
        _ => bail!("no device_missing case {name:?}"),
    }
}

fn first_dax(ctx: &Ctx<'_>) -> Result<String> {
    Ok(ctx.dax().first().context("no dax device")?.name.clone())
}

/// Slot 0 is the first dax device (file `ok`), slot 1 is `target` (file `gone`): `gone` must
/// fail to open with `want` (and the kernel log say `log`), `ok` must work.
fn one_bad_slot(
    ctx: &Ctx<'_>,
    c: &mut Checks,
    label: &str,
    target: Target,
    want: i32,
    log: Option<&str>,
) -> Result<()> {
    let mut slots = BTreeMap::new();
    slots.insert(0, Target::Dax(first_dax(ctx)?));
    slots.insert(1, target);
    let mut a = AreaAlloc::new(READ_AREA);
    let ok = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB - 7).context("read area full")?;
    // gone's bytes come after ok's (slot 0's allocation): when slot 1 names the same device
    // (the symlink), declared ranges would refuse two live files on the same bytes.
    let mut gone = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    if let famfs_fmap::Extents::Simple(v) = &mut gone.extents {
        for e in v.iter_mut() {
            e.dev_index = 1;
        }
    }
    let fs = Famfs::start(
        ctx,
        Spec::new(&ctx.ops()?, slots)
            .file("ok", ok)
            .file("gone", gone),
    )?;
    let mut kmsg = Kmsg::open()?;
    if log.is_some() {
        sys::ratelimit_quiet();
    }
    c.errno(
        format!("{label}: open gone"),
        &sys::open(&fs.path("gone"), false),
        want,
    );
    c.check(
        fs.stats()?.daxdev(1)? >= 1,
        format!("{label}: GET_DAXDEV was sent for slot 1"),
    );
    if let Some(log) = log {
        // the reply to GET_DAXDEV (the server's errno); a refused registration logs its own
        // "not registered" line before it
        match kmsg.wait_for("device slot 1 not usable", Duration::from_secs(3)) {
            Some(l) => c.check(
                l.contains(log),
                format!("{label}: kernel log {l:?} contains {log:?}"),
            ),
            None => c.check(
                false,
                format!("{label}: a kernel log line about device slot 1"),
            ),
        };
    }
    match sys::open(&fs.path("ok"), false) {
        Ok(f) => {
            let got = sys::pread(&f, 0, 8192).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                format!("{label}: ok on slot 0 still reads"),
                0,
                &got,
                &fs.expected("ok", 0, 8192)?,
            );
        }
        Err(e) => c.fail(format!("{label}: open ok: {}", sys::errno_name(e))),
    }
    c.errno(
        format!("{label}: open gone again"),
        &sys::open(&fs.path("gone"), false),
        want,
    );
    fs.stop()?;
    Ok(())
}

fn path_absent(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    one_bad_slot(
        ctx,
        &mut c,
        "missing path",
        Target::Path("/dev/dax-famfs-lab-absent".into()),
        libc::ENODEV,
        Some("not usable: -2"),
    )?;
    Ok(c.outcome())
}

fn not_a_dax_device(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let dir = Path::new("/run/famfs-lab/not-dax");
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let plain = dir.join("plain");
    std::fs::write(&plain, b"not a device")?;
    // A node of the real dax device, but on /run (tmpfs, mounted nodev).
    let first = first_dax(ctx)?;
    let rdev = std::fs::metadata(format!("/dev/{first}"))?.rdev();
    let node = dir.join("dax-node");
    let cpath = std::ffi::CString::new(node.as_os_str().as_encoded_bytes())?;
    // SAFETY: a valid path; mknod of a char device as root.
    if unsafe { libc::mknod(cpath.as_ptr(), libc::S_IFCHR | 0o600, rdev) } != 0 {
        bail!(
            "mknod {}: {}",
            node.display(),
            std::io::Error::last_os_error()
        );
    }
    let link = dir.join("dax-link");
    std::os::unix::fs::symlink(format!("/dev/{first}"), &link)?;
    one_bad_slot(
        ctx,
        &mut c,
        "/dev/null",
        Target::Path("/dev/null".into()),
        libc::ENODEV,
        Some("not usable: -19"),
    )?;
    one_bad_slot(
        ctx,
        &mut c,
        "a regular file",
        Target::Path(plain.display().to_string()),
        libc::ENODEV,
        Some("not usable: -19"),
    )?;
    one_bad_slot(
        ctx,
        &mut c,
        "a directory",
        Target::Path("/run".into()),
        libc::ENODEV,
        // the server cannot open a directory for writing: its EISDIR is the reply
        Some("not usable: -21"),
    )?;
    one_bad_slot(
        ctx,
        &mut c,
        "a dax node on a nodev mount",
        Target::Path(node.display().to_string()),
        libc::ENODEV,
        Some("not usable: -13"),
    )?;
    one_bad_slot(
        ctx,
        &mut c,
        "a symlink to the dax device (works)",
        Target::Path(link.display().to_string()),
        0,
        None,
    )?;
    let _ = std::fs::remove_dir_all(dir);
    Ok(c.outcome())
}

fn device_dax_mode(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let first = first_dax(ctx)?;
    setup::bind_devdax(&first)?;
    let mut a = AreaAlloc::new(READ_AREA);
    let f = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("f", f);
    spec.bind_fsdev = false;
    let r = (|| -> Result<()> {
        let fs = Famfs::start(ctx, spec)?;
        let mut kmsg = Kmsg::open()?;
        sys::ratelimit_quiet();
        c.errno(
            format!("{first} bound to device_dax: open f"),
            &sys::open(&fs.path("f"), false),
            libc::ENODEV,
        );
        match kmsg.wait_for("device slot 0 not registered", Duration::from_secs(3)) {
            Some(l) => c.check(
                l.contains("-95"),
                format!("kernel log {l:?} says EOPNOTSUPP (-95)"),
            ),
            None => c.check(false, "a kernel log line about device slot 0"),
        };
        c.eq(
            "stat f still works",
            sys::size_of(&fs.path("f")),
            Ok(2 * MIB),
        );
        fs.stop()
    })();
    setup::bind_fsdev(&first)?;
    r?;
    Ok(c.outcome())
}

fn second_device_absent(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let n = ctx.dax().len();
    let absent = (n..n + 16)
        .map(|i| format!("dax{i}.0"))
        .find(|d| ctx.map.dax(d).is_none() && !Path::new("/dev").join(d).exists())
        .context("no free dax name")?;
    let mut slots = BTreeMap::new();
    slots.insert(0, Target::Dax(first_dax(ctx)?));
    slots.insert(1, Target::Path(format!("/dev/{absent}")));
    let mut a = AreaAlloc::new(READ_AREA);
    let il = interleaved_map(
        &mut a,
        &[Stripe {
            chunk: 2 * MIB,
            nbytes: 4 * MIB,
            slots: &[0, 1],
        }],
        4 * MIB,
    )
    .context("read area full")?;
    let s = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let fs = Famfs::start(
        ctx,
        Spec::new(&ctx.ops()?, slots).file("il", il).file("s", s),
    )?;
    c.errno(
        format!(
            "interleaved over {} and the never created /dev/{absent}: open",
            first_dax(ctx)?
        ),
        &sys::open(&fs.path("il"), false),
        libc::ENODEV,
    );
    match sys::open(&fs.path("s"), false) {
        Ok(f) => {
            let got = sys::pread(&f, 0, 8192).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                "a file on the first device still reads",
                0,
                &got,
                &fs.expected("s", 0, 8192)?,
            );
        }
        Err(e) => c.fail(format!("open s: {}", sys::errno_name(e))),
    }
    c.eq("GET_DAXDEV for slot 0", fs.stats()?.daxdev(0)?, 1);
    c.check(
        fs.stats()?.daxdev(1)? >= 1,
        "GET_DAXDEV was sent for slot 1",
    );
    fs.stop()?;
    Ok(c.outcome())
}

fn unbind_while_mapped(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let first = first_dax(ctx)?;
    let mut a = AreaAlloc::new(READ_AREA);
    let fa =
        simple_map(&mut a, &[(0, 2 * MIB), (0, 2 * MIB)], 4 * MIB).context("read area full")?;
    let fb = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?)
        .file("a", fa)
        .file("b", fb);
    let fs = Famfs::start(ctx, spec.clone())?;
    let f = sys::open(&fs.path("a"), true).map_err(|e| anyhow::anyhow!("open a: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (4 * MIB) as usize, false).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let b0 = fs.expected("a", 0, 1)?[0];
    c.access(
        "a: fault before the unbind",
        sys::probe_read(m.ptr())?,
        Access::Ok(b0),
    );
    c.touch("a: before the unbind: 0", m.ptr(), b0);
    c.touch(
        "a: before the unbind: 2 MiB",
        m.ptr().wrapping_add((2 * MIB) as usize),
        fs.expected("a", 2 * MIB, 1)?[0],
    );
    let mut kmsg = Kmsg::open()?;
    println!("unbinding {first} from fsdev_dax with a file mapped");
    match sysfs_write_timeout("/sys/bus/dax/drivers/fsdev_dax/unbind", &first, Duration::from_secs(30)) {
        Ok(r) => r?,
        Err(()) => {
            return Ok(Outcome::Fail(format!(
                "unbinding {first} did not return within 30 s with the file mapped (its pages stay pinned: the holder's pre-remove notification did not unmap them)"
            )))
        }
    }
    match kmsg.wait_for("device slot 0 failed", Duration::from_secs(5)) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail("no \"device slot 0 failed\" in the kernel log after the unbind"),
    }
    for (o, what) in [(0, "0"), (2 * MIB, "2 MiB")] {
        let p = m.ptr().wrapping_add(o as usize);
        c.mapped(
            format!("a: {what} after the unbind: unmapped by it"),
            p,
            false,
        );
        c.access(
            format!("a: load at {what} (mapped before the unbind)"),
            sys::probe_read_here(p)?,
            Access::Signal(libc::SIGBUS),
        );
    }
    c.access(
        "a: load at 3 MiB (never mapped)",
        sys::probe_read_here(m.ptr().wrapping_add((3 * MIB) as usize))?,
        Access::Signal(libc::SIGBUS),
    );
    c.errno("a: pread", &sys::pread(&f, 0, 10), libc::EIO);
    c.errno("a: pwrite", &sys::pwrite_once(&f, 0, &[b0]), libc::EIO);
    c.errno(
        "b: open (never opened before)",
        &sys::open(&fs.path("b"), false),
        libc::ENODEV,
    );
    c.errno(
        "a: open again",
        &sys::open(&fs.path("a"), false),
        libc::ENODEV,
    );
    drop(m);
    drop(f);
    match fs.stop() {
        Ok(()) => c.pass("unmount and server exit are clean"),
        Err(e) => c.fail(format!("unmount: {e:#}")),
    }
    match setup::bind_fsdev(&first) {
        Ok(()) => c.pass(format!("{first} binds to fsdev_dax again")),
        Err(e) => {
            c.fail(format!("rebinding {first}: {e:#}"));
            return Ok(c.outcome());
        }
    }
    let fs = Famfs::start(ctx, spec)?;
    match sys::open(&fs.path("a"), false) {
        Ok(f) => {
            let got = sys::pread(&f, 0, 8192).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
            c.bytes(
                "a new mount reads the rebound device",
                0,
                &got,
                &fs.expected("a", 0, 8192)?,
            );
        }
        Err(e) => c.fail(format!(
            "open a on the rebound device: {}",
            sys::errno_name(e)
        )),
    }
    fs.stop()?;
    Ok(c.outcome())
}

/// The address the memory_failure child expects its SIGBUS to name.
pub(crate) static POISON_ADDR: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);
/// `si_code` of a SIGBUS for poison the task itself consumed (asm-generic/siginfo.h).
pub(crate) const BUS_MCEERR_AR: i32 = 4;
/// The child's exit codes: SIGBUS BUS_MCEERR_AR at the page, at another address, another
/// SIGBUS code; madvise returning without a signal exits 0 or with its errno.
/// How the child touches the page before it poisons it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Touch {
    Read,
    Write(u8),
}

/// What the child saw: its exit code (see [`on_poison_sigbus`]; an errno when madvise
/// failed) and that in words.
pub(crate) struct Poisoned {
    pub exit: Option<i32>,
    pub said: String,
}

/// MADV_HWPOISON of the page at `ptr` in a child that maps it (the guest's memory-failure
/// path, as if the child had consumed poison there; poisoning a page the caller maps would
/// kill the caller).
pub(crate) fn hwpoison_in_child(ptr: usize, touch: Touch) -> Result<Poisoned> {
    POISON_ADDR.store(ptr, std::sync::atomic::Ordering::Relaxed);
    // SAFETY: single-threaded; the child sets a handler, touches the page, calls madvise and
    // _exits (from the handler, or after madvise returns).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: a plain SA_SIGINFO handler for SIGBUS; the inherited mapping; madvise on one
        // page of it.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_poison_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO;
            libc::sigaction(libc::SIGBUS, &sa, std::ptr::null_mut());
            match touch {
                Touch::Read => {
                    std::ptr::read_volatile(ptr as *const u8);
                }
                Touch::Write(b) => std::ptr::write_volatile(ptr as *mut u8, b),
            }
            let r = libc::madvise(ptr as *mut libc::c_void, 4096, libc::MADV_HWPOISON);
            let code = if r == 0 { 0 } else { *libc::__errno_location() };
            libc::_exit(code);
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let exit = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    let said = match exit {
        Some(EXIT_AR_AT_PAGE) => "SIGBUS BUS_MCEERR_AR at the page".to_string(),
        Some(EXIT_AR_ELSEWHERE) => "SIGBUS BUS_MCEERR_AR at another address".to_string(),
        Some(EXIT_OTHER_SIGBUS) => "a SIGBUS that is not BUS_MCEERR_AR".to_string(),
        Some(0) => "no signal: madvise returned 0".to_string(),
        Some(e) => format!("madvise failed: {}", sys::errno_name(e)),
        None => format!("wait status {status:#x}"),
    };
    Ok(Poisoned { exit, said })
}

pub(crate) const EXIT_AR_AT_PAGE: i32 = 100;
pub(crate) const EXIT_AR_ELSEWHERE: i32 = 101;
pub(crate) const EXIT_OTHER_SIGBUS: i32 = 102;

pub(crate) extern "C" fn on_poison_sigbus(
    _sig: libc::c_int,
    info: *mut libc::siginfo_t,
    _: *mut libc::c_void,
) {
    // SAFETY: an SA_SIGINFO handler gets a valid siginfo from the kernel.
    let (code, addr) = unsafe { ((*info).si_code, (*info).si_addr() as usize) };
    let rc = match (
        code,
        addr == POISON_ADDR.load(std::sync::atomic::Ordering::Relaxed),
    ) {
        (BUS_MCEERR_AR, true) => EXIT_AR_AT_PAGE,
        (BUS_MCEERR_AR, false) => EXIT_AR_ELSEWHERE,
        _ => EXIT_OTHER_SIGBUS,
    };
    // SAFETY: _exit is async-signal-safe.
    unsafe { libc::_exit(rc) }
}

/// Poison on one mapped page of a file (MADV_HWPOISON: the memory-failure core, then the
/// holder's notify_failure): the process that consumed it gets SIGBUS with BUS_MCEERR_AR
/// and the page's address; the file's other pages, the other file on the device and the
/// device itself keep working.
fn memory_failure(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    // The last 2 MiB of the write area: no other case's file goes there.
    let mut w = AreaAlloc::new((WRITE_AREA.end - 2 * MIB)..WRITE_AREA.end);
    let h = simple_map(&mut w, &[(0, 2 * MIB)], 2 * MIB).context("write area full")?;
    let mut r = AreaAlloc::new(READ_AREA);
    let o = simple_map(&mut r, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let fs = Famfs::start(
        ctx,
        Spec::new(&ctx.ops()?, ctx.slots(1)?)
            .file("h", h)
            .file("o", o),
    )?;
    let f = sys::open(&fs.path("h"), true).map_err(|e| anyhow::anyhow!("open h: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, true).context("mmap")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    let h_want = fs.expected("h", 8192, 4096)?;
    let o_want = fs.expected("o", 0, 4096)?;
    let mut kmsg = Kmsg::open()?;
    // In a child: poisoning a page the caller maps kills the caller.
    let Poisoned { exit, said: seen } = hwpoison_in_child(m.ptr() as usize, Touch::Write(0x42))?;
    if exit == Some(libc::EINVAL) {
        return Ok(Outcome::Skip(
            "madvise(MADV_HWPOISON) is EINVAL: this kernel has no CONFIG_MEMORY_FAILURE (and so no debugfs hwpoison injection either); memory failure cannot be injected through the holder path".into(),
        ));
    }
    if exit == Some(libc::EPERM) {
        return Ok(Outcome::Skip(
            "madvise(MADV_HWPOISON) is EPERM (needs CAP_SYS_ADMIN)".into(),
        ));
    }
    c.check(
        exit == Some(EXIT_AR_AT_PAGE),
        format!("the process that consumed the poison got SIGBUS BUS_MCEERR_AR with the page's address ({seen})"),
    );
    match kmsg.wait_for("dax_fmap: memory failure at device offset", Duration::from_secs(5)) {
        Some(l) => c.pass(format!("the holder found the page's owner: {l}")),
        None => c.fail("no \"dax_fmap: memory failure at device offset\" in the kernel log: the holder did not look up the poisoned page's owner"),
    }
    let slot_failed = kmsg.find("device slot 0 failed");
    c.check(
        slot_failed.is_none(),
        format!("the slot did not fail for one page: {slot_failed:?}"),
    );
    c.access(
        "h: a fault on another page reads the file's bytes",
        sys::probe_read(m.ptr().wrapping_add(8192))?,
        Access::Ok(h_want[0]),
    );
    match sys::pread(&f, 8192, 4096) {
        Ok(got) => {
            c.bytes("h: pread of another page", 8192, &got, &h_want);
        }
        Err(e) => c.fail(format!("h: pread of another page: {}", sys::errno_name(e))),
    }
    match sys::open(&fs.path("o"), false).and_then(|o| sys::pread(&o, 0, 4096)) {
        Ok(got) => {
            c.bytes("o (same device): open and pread", 0, &got, &o_want);
        }
        Err(e) => c.fail(format!("o (same device): {}", sys::errno_name(e))),
    }
    drop(m);
    drop(f);
    match fs.stop() {
        Ok(()) => c.pass("unmount and server exit are clean"),
        Err(e) => c.fail(format!("unmount: {e:#}")),
    }
    Ok(c.outcome())
}
