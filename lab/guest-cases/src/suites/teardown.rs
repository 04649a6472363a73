//! The device's lifetime against the mount's. The device goes away under dirty shared
//! mappings (`dirty_unbind`): fsdev_dax unbound while a file's pages were written through mmap
//! and not yet synced; the kernel must delete every DAX entry of the file (dirty ones too)
//! before the device's memmap goes, so that the msync, munmap, close and unmount that follow
//! touch no freed struct page (KASAN on the debug kernel) and finish in bounded time. The
//! mount goes away first (`umount_dirty`, `holder_handover`): the devices stay until the last
//! fmap inode is evicted (dirty DAX entries included), and then serve the next mount.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::system::mapping::Mapping;
use crate::system::sys::{self, Kmsg};
use crate::system::sysfs::sysfs_write_timeout;
use crate::{setup, Outcome};
use anyhow::{Context, Result};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, WRITE_AREA};
use std::os::unix::fs::MetadataExt;
use std::sync::mpsc;
use std::time::Duration;

const PAGE: usize = 4096;
/// How long each step after the unbind may take before the case calls it stuck.
const STEP: Duration = Duration::from_secs(30);

/// Runs `f` on a thread; None when it has not returned within `within` (then it is left
/// behind: the case reports the hang rather than waiting in D state with it).
fn bounded<T: Send + 'static>(
    within: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(within).ok()
}

/// Writes `byte(i)` at offset `pages[i]` of `m` (volatile stores: each a real write fault that
/// leaves a dirty DAX entry) and checks that every written page is mapped.
fn dirty_pages(
    c: &mut Checks,
    m: &Mapping,
    pages: &[usize],
    byte: impl Fn(usize) -> u8,
    when: &str,
) -> Result<()> {
    for (i, &o) in pages.iter().enumerate() {
        // SAFETY: inside the live, writable mapping (the callers' offsets are in its range).
        unsafe { std::ptr::write_volatile(m.ptr().add(o), byte(i)) };
    }
    let mapped = pages
        .iter()
        .map(|&o| sys::page_present(m.ptr().wrapping_add(o)))
        .collect::<Result<Vec<bool>>>()?;
    c.check(
        mapped.iter().all(|&r| r),
        format!(
            "the {} written pages are mapped {when} ({mapped:?})",
            pages.len()
        ),
    );
    Ok(())
}

pub fn dirty_unbind(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let dax = ctx.dax().first().context("no dax device")?.name.clone();
    // The next-to-last 2 MiB of the write area: memory_failure has the last.
    let mut w = AreaAlloc::new((WRITE_AREA.end - 4 * MIB)..(WRITE_AREA.end - 2 * MIB));
    let d = simple_map(&mut w, &[(0, 2 * MIB)], 2 * MIB).context("write area full")?;
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("d", d);
    let fs = Famfs::start(ctx, spec.clone())?;
    let f = sys::open(&fs.path("d"), true).map_err(|e| anyhow::anyhow!("open d: errno {e}"))?;
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, true).context("mmap d")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    // Dirty 16 pages through the mapping with bytes the device does not hold.
    let pages: Vec<usize> = (0..16).map(|i| i * 7 * PAGE).collect();
    dirty_pages(&mut c, &m, &pages, |i| 0xd0 ^ i as u8, "before the unbind")?;
    let mut kmsg = Kmsg::open()?;
    println!("unbinding {dax} from fsdev_dax under 16 dirty pages of d");
    match sysfs_write_timeout("/sys/bus/dax/drivers/fsdev_dax/unbind", &dax, STEP) {
        Ok(r) => r?,
        Err(()) => {
            return Ok(Outcome::Fail(format!(
                "unbinding {dax} did not return within {STEP:?} with dirty pages mapped"
            )))
        }
    }
    match kmsg.wait_for("device slot 0 failed", Duration::from_secs(5)) {
        Some(l) => c.pass(format!("kernel log: {l}")),
        None => c.fail("no \"device slot 0 failed\" in the kernel log after the unbind"),
    }
    let still: Vec<usize> = pages
        .iter()
        .copied()
        .filter(|&o| sys::page_present(m.ptr().wrapping_add(o)).unwrap_or(true))
        .collect();
    c.check(
        still.is_empty(),
        format!("no page of d stays mapped once its device is gone (still mapped at {still:?})"),
    );
    // msync walks the file's dirty DAX entries: they must be gone (an error is fine, a use of
    // the freed memmap is not; KASAN or a splat fails the case through the runner).
    let (ptr, len) = (m.ptr() as usize, 2 * MIB as usize);
    match bounded(STEP, move || {
        // SAFETY: the range is the live mapping (it outlives this wait: the case ends on a
        // hang instead of unmapping under the thread).
        let r = unsafe { libc::msync(ptr as *mut libc::c_void, len, libc::MS_SYNC) };
        (r, std::io::Error::last_os_error())
    }) {
        Some((0, _)) => c.pass("msync after the unbind returned 0"),
        Some((_, e)) => c.pass(format!("msync after the unbind failed: {e}")),
        None => {
            c.fail(format!(
                "msync after the unbind did not return within {STEP:?}"
            ));
            std::mem::forget(m);
            return Ok(c.outcome());
        }
    }
    let fsync = {
        let f2 = f.try_clone()?;
        bounded(STEP, move || f2.sync_all().map_err(|e| e.raw_os_error()))
    };
    match fsync {
        Some(r) => c.pass(format!("fsync after the unbind: {r:?}")),
        None => c.fail(format!(
            "fsync after the unbind did not return within {STEP:?}"
        )),
    }
    drop(m);
    drop(f);
    match bounded(STEP * 2, move || fs.stop().map_err(|e| format!("{e:#}"))) {
        Some(Ok(())) => c.pass("unmount and server exit are clean"),
        Some(Err(e)) => c.fail(format!("unmount: {e}")),
        None => c.fail(format!("unmount did not finish within {:?}", STEP * 2)),
    }
    match setup::bind_fsdev(&dax) {
        Ok(()) => c.pass(format!("{dax} binds to fsdev_dax again")),
        Err(e) => c.fail(format!("rebinding {dax}: {e:#}")),
    }
    // A new mount on the rebound device works.
    let fs = Famfs::start(ctx, spec)?;
    let f = sys::open(&fs.path("d"), false).map_err(|e| anyhow::anyhow!("reopen d: errno {e}"))?;
    c.check(
        sys::pread(&f, 0, PAGE).is_ok(),
        "d reads on the rebound device",
    );
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

/// Dirty DAX entries left for the unmount: a file written through a shared mapping after its
/// fd was closed (so the close's flush had nothing to write), then unmapped, then the mount
/// goes with the entries still dirty. FUSE evicts an inode at its last reference, and the
/// unmount drops its dentries (so the inodes, and their dirty entries) before its sync: the
/// eviction deletes dirty entries, after which the unmount must finish cleanly and in
/// bounded time, the device must serve the next mount, and the bytes must be there. No
/// writeback is owed on the way: dev_dax devices have no write cache (`dax_flush()` is a
/// no-op for them), so the fs_dax writeback events are only counted, in a note.
pub fn umount_dirty(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let trace = sys::Trace::new(&["fs_dax/dax_writeback_one"])?;
    let mut w = AreaAlloc::new(WRITE_AREA);
    let d = simple_map(&mut w, &[(0, 2 * MIB)], 2 * MIB).context("write area full")?;
    let spec = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("w", d);
    let fs = Famfs::start(ctx, spec.clone())?;
    let f = sys::open(&fs.path("w"), true).map_err(|e| anyhow::anyhow!("open w: errno {e}"))?;
    let ino = f.metadata().context("stat w")?.ino();
    let m = Mapping::shared(&f, 0, (2 * MIB) as usize, true).context("mmap w")?;
    m.advise(libc::MADV_NOHUGEPAGE)?;
    drop(f);
    // Eight pages written through the mapping with bytes the device does not hold.
    let pages: Vec<usize> = (0..8).map(|i| i * 9 * PAGE + 3).collect();
    let byte = |i: usize| 0x5a ^ (i as u8).wrapping_mul(29);
    dirty_pages(&mut c, &m, &pages, byte, "in w")?;
    if let Some(t) = &trace {
        t.clear()?;
    }
    drop(m);
    match bounded(STEP, move || fs.stop().map_err(|e| format!("{e:#}"))) {
        Some(Ok(())) => c.pass("unmount (w's entries dirty) and server exit are clean"),
        Some(Err(e)) => c.fail(format!("unmount: {e}")),
        None => {
            c.fail(format!("unmount did not finish within {STEP:?}"));
            return Ok(c.outcome());
        }
    }
    if let Some(t) = trace {
        let tag = format!(" ino {ino:#x} ");
        let n = t.lines()?.iter().filter(|l| l.contains(&tag)).count();
        c.note(format!(
            "{n} dax_writeback_one events for w from the munmap to the end of the unmount"
        ));
    }
    // The device serves the next mount, with the bytes written.
    let fs = Famfs::start(ctx, spec)?;
    let f = sys::open(&fs.path("w"), false).map_err(|e| anyhow::anyhow!("reopen w: errno {e}"))?;
    for (i, &o) in pages.iter().enumerate() {
        let got = sys::pread(&f, o as u64, 1).map_err(|e| anyhow::anyhow!("pread w: errno {e}"))?;
        c.eq(
            format!("the next mount reads w's byte at {o:#x}"),
            got.first().copied(),
            Some(byte(i)),
        );
    }
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

/// One dax device, two mounts in turn: while mount A holds the device, mount B's first open
/// fails (the holder is exclusive) without poisoning B's slot; once A is unmounted (its
/// cached inodes evicted), B's next open resolves the device and reads its bytes; and A
/// mounts again after B.
pub fn holder_handover(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut a = AreaAlloc::new(lab_suite::expect::READ_AREA);
    let fa = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let fb = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let spec_a = Spec::new(&ctx.ops()?, ctx.slots(1)?).file("a", fa);
    // B runs the native ops: a second server cannot attach BPF struct_ops of the name A's
    // server attached (the registry is by name), and the device handover is not about ops.
    let spec_b = Spec::new("famfs_native", ctx.slots(1)?).file("b", fb);
    let mount_a = Famfs::start(ctx, spec_a.clone())?;
    let f =
        sys::open(&mount_a.path("a"), false).map_err(|e| anyhow::anyhow!("open a: errno {e}"))?;
    let got = sys::pread(&f, 0, PAGE).map_err(|e| anyhow::anyhow!("pread a: errno {e}"))?;
    c.bytes(
        "mount A: a's bytes",
        0,
        &got,
        &mount_a.expected("a", 0, PAGE as u64)?,
    );
    drop(f);
    let mount_b = Famfs::start(ctx, spec_b)?;
    let want_b = mount_b.expected("b", 0, PAGE as u64)?;
    match sys::open(&mount_b.path("b"), false) {
        Err(e) => c.pass(format!(
            "mount B's open while A holds the device: {} (the holder is exclusive)",
            sys::errno_name(e)
        )),
        Ok(_) => c.note("mount B's open while A holds the device succeeded (shared holders?)"),
    }
    // A goes; its inode of a is cached until the unmount evicts it.
    match bounded(STEP, move || mount_a.stop().map_err(|e| format!("{e:#}"))) {
        Some(Ok(())) => c.pass("mount A unmounts cleanly with a cached inode"),
        Some(Err(e)) => c.fail(format!("unmounting A: {e}")),
        None => {
            c.fail(format!("unmounting A did not finish within {STEP:?}"));
            return Ok(c.outcome());
        }
    }
    match sys::open(&mount_b.path("b"), false) {
        Ok(f) => {
            let got = sys::pread(&f, 0, PAGE).map_err(|e| anyhow::anyhow!("pread b: errno {e}"))?;
            c.bytes(
                "mount B's open after A unmounted: the device is B's now, b's bytes",
                0,
                &got,
                &want_b,
            );
        }
        Err(e) => c.fail(format!(
            "mount B's open after A unmounted: {} (the device stayed held after A's unmount, or B's failed first GET_DAXDEV poisoned its slot)",
            sys::errno_name(e)
        )),
    }
    mount_b.stop()?;
    let again = Famfs::start(ctx, spec_a)?;
    match sys::open(&again.path("a"), false) {
        Ok(f) => {
            let got = sys::pread(&f, 0, PAGE).map_err(|e| anyhow::anyhow!("pread a: errno {e}"))?;
            c.bytes(
                "A mounted again after B: a's bytes",
                0,
                &got,
                &again.expected("a", 0, PAGE as u64)?,
            );
        }
        Err(e) => c.fail(format!(
            "A mounted again after B: open a: {}",
            sys::errno_name(e)
        )),
    }
    again.stop()?;
    Ok(c.outcome())
}
