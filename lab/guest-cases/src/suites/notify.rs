//! Server notifications on fmap inodes (famfs-fused `--notify-fifo`): what the kernel does
//! with FUSE_NOTIFY_INVAL_INODE, FUSE_NOTIFY_STORE and FUSE_NOTIFY_RETRIEVE when the file's
//! data lives on a dax device and not in the page cache.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::system::mapping::Mapping;
use crate::system::sys;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, READ_AREA};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;
/// How long a notification's result may take to reach the log.
const RESULT_WAIT: Duration = Duration::from_secs(10);

/// The FIFO and log of one server, in a directory of their own.
struct Channel {
    dir: PathBuf,
    fifo: PathBuf,
    log: PathBuf,
}

impl Channel {
    fn new(id: &str) -> Result<Channel> {
        let dir = std::env::temp_dir().join(format!("notify-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes())
            .context("FIFO path with a NUL")?;
        // SAFETY: a valid C string; mkfifo only reads it.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            bail!(
                "mkfifo {}: {}",
                fifo.display(),
                std::io::Error::last_os_error()
            );
        }
        let log = dir.join("log");
        Ok(Channel { dir, fifo, log })
    }

    fn args(&self, spec: Spec) -> Spec {
        spec.arg("--notify-fifo")
            .arg(self.fifo.display().to_string())
            .arg("--notify-log")
            .arg(self.log.display().to_string())
    }

    /// Sends one command; its result (`ok` or `errno N`) from the server's log.
    fn send(&self, command: &str) -> Result<String> {
        let before = read_lines(&self.log).len();
        std::fs::write(&self.fifo, format!("{command}\n"))
            .with_context(|| format!("writing {:?} to {}", command, self.fifo.display()))?;
        let deadline = Instant::now() + RESULT_WAIT;
        loop {
            if let Some(line) = read_lines(&self.log).get(before) {
                let result = line
                    .strip_prefix(&format!("{command}: "))
                    .with_context(|| format!("unexpected notify log line {line:?}"))?;
                if let Some(why) = result.strip_prefix("bad command: ") {
                    bail!("famfs-fused refused {command:?}: {why}");
                }
                return Ok(result.to_string());
            }
            if Instant::now() > deadline {
                bail!(
                    "no result for {command:?} in {} within {RESULT_WAIT:?}",
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_lines(p: &Path) -> Vec<String> {
    std::fs::read_to_string(p)
        .map(|t| t.lines().map(String::from).collect())
        .unwrap_or_default()
}

/// A server with one 2 MiB file `a`, its expected bytes and an open descriptor of it.
fn one_file(ctx: &mut Ctx<'_>, ch: &Channel) -> Result<(Famfs, Vec<u8>, std::fs::File)> {
    let slots = ctx.slots(1)?;
    let mut a = AreaAlloc::new(READ_AREA);
    let map = simple_map(&mut a, &[(0, 2 * MIB)], 2 * MIB).context("area full")?;
    let spec = ch.args(Spec::new(&ctx.ops()?, slots).file("a", map));
    let fs = Famfs::start(ctx, spec)?;
    let want = fs.expected("a", 0, 2 * MIB)?;
    let f = sys::open(&fs.path("a"), false).map_err(|e| anyhow::anyhow!("open a: errno {e}"))?;
    Ok((fs, want, f))
}

/// How long mprotect() may take while a fault waits for the server: far more than it needs
/// when no lock is held, so only a wait for the held GET_FMAP reply runs out.
const MPROTECT_WAIT: Duration = Duration::from_secs(5);

/// A fault that finds the metadata dropped (FUSE_NOTIFY_INVAL_INODE) fetches it again from the
/// server, and must not wait for the server with the VMA or mmap lock held: a stalled server
/// would block every mmap, munmap and mprotect of the process (v2 drops the lock, fetches,
/// and retries the fault). The server holds the GET_FMAP reply while another thread
/// mprotect()s the same mapping to PROT_NONE and back, which takes both locks for writing:
/// it must return while the fault still waits. Then the reply goes out and the fault reads the device's byte.
pub fn refetch_unlocked(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let ch = Channel::new(&ctx.id)?;
    let (fs, want, f) = one_file(ctx, &ch)?;
    let m = Mapping::shared(&f, 0, 2 * MIB as usize, false).context("mmap a")?;
    c.eq("byte 0 through the mapping", sys::touch(m.ptr())?, want[0]);
    let before = fs.stats()?.fmap("a")?;
    c.eq("hold_fmap", ch.send("hold_fmap")?.as_str(), "ok");
    c.eq(
        "FUSE_NOTIFY_INVAL_INODE accepted by the kernel",
        ch.send("inval_inode a 0 0")?.as_str(),
        "ok",
    );
    let addr = m.ptr() as usize;
    let fault = std::thread::spawn(move || sys::touch(addr as *const u8));
    let deadline = Instant::now() + RESULT_WAIT;
    let arrived = loop {
        if fs.stats()?.fmap("a")? > before {
            break true;
        }
        if Instant::now() > deadline || fault.is_finished() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if c.check(
        arrived,
        format!("the fault after the invalidation sent GET_FMAP (held by the server) within {RESULT_WAIT:?}"),
    ) {
        let (tx, rx) = std::sync::mpsc::channel();
        let len = 2 * MIB as usize;
        let protect = std::thread::spawn(move || {
            // An mprotect() to the protection a VMA already has returns before it locks the
            // VMA: to PROT_NONE and back, which both lock it for writing.
            let protect = |prot| {
                // SAFETY: the range is the mapping `m`, alive until both threads are joined.
                unsafe { libc::mprotect(addr as *mut libc::c_void, len, prot) }
            };
            let r = match protect(libc::PROT_NONE) {
                0 => protect(libc::PROT_READ),
                e => e,
            };
            let _ = tx.send(if r == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
            });
        });
        match rx.recv_timeout(MPROTECT_WAIT) {
            Ok(e) => c.eq(
                "mprotect of the mapping while its fault waits for GET_FMAP",
                sys::errno_name(e),
                sys::errno_name(0),
            ),
            Err(_) => c.check(
                false,
                format!(
                    "mprotect of the mapping did not return within {MPROTECT_WAIT:?} while a \
                     fault waited for the server's GET_FMAP: the fault holds the VMA or mmap \
                     lock across the server round trip"
                ),
            ),
        };
        c.eq("release_fmap", ch.send("release_fmap")?.as_str(), "ok");
        let _ = protect.join();
    } else {
        ch.send("release_fmap")?;
    }
    match fault.join() {
        Ok(Ok(b)) => c.eq(
            "the waiting fault's byte, once the reply went out",
            b,
            want[0],
        ),
        Ok(Err(e)) => c.check(false, format!("the waiting fault: {e:#}")),
        Err(_) => c.check(false, "the faulting thread panicked"),
    };
    c.eq(
        "GET_FMAP for a: one re-fetch after the invalidation",
        fs.stats()?.fmap("a")?,
        before + 1,
    );
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

pub fn inval_inode(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let ch = Channel::new(&ctx.id)?;
    let len = 2 * MIB;
    let (fs, want, f) = one_file(ctx, &ch)?;
    let m = Mapping::shared(&f, 0, len as usize, false).context("mmap a")?;
    let probes = [0usize, MIB as usize + 8 * PAGE];
    for &o in &probes {
        c.eq(
            format!("byte {o} through the mapping"),
            sys::touch(m.ptr().wrapping_add(o))?,
            want[o],
        );
        c.check(
            sys::page_present(m.ptr().wrapping_add(o))?,
            format!("page at {o} is mapped after the touch"),
        );
    }
    c.eq(
        "GET_FMAP for a after the first open",
        fs.stats()?.fmap("a")?,
        1,
    );

    let r = ch.send("inval_inode a 0 0")?;
    c.eq(
        "FUSE_NOTIFY_INVAL_INODE accepted by the kernel",
        r.as_str(),
        "ok",
    );
    for &o in &probes {
        c.check(
            !sys::page_present(m.ptr().wrapping_add(o))?,
            format!(
                "page at {o} is unmapped by the invalidation (the mappings built from the dropped fmap go with it)"
            ),
        );
    }
    // The next access fetches the fmap again, and the bytes are still the device's.
    for &o in &probes {
        c.eq(
            format!("byte {o} through the mapping after the invalidation"),
            sys::touch(m.ptr().wrapping_add(o))?,
            want[o],
        );
    }
    let got = sys::pread(&f, 0, 2 * PAGE).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes("pread after the invalidation", 0, &got, &want[..2 * PAGE]);
    c.eq(
        "GET_FMAP for a: one re-fetch after FUSE_NOTIFY_INVAL_INODE dropped the metadata",
        fs.stats()?.fmap("a")?,
        2,
    );
    drop(m);
    drop(f);
    let f2 = sys::open(&fs.path("a"), false).map_err(|e| anyhow::anyhow!("reopen: errno {e}"))?;
    let got = sys::pread(&f2, MIB, PAGE).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes(
        "a new open's bytes",
        MIB,
        &got,
        &want[MIB as usize..MIB as usize + PAGE],
    );
    c.eq(
        "GET_FMAP for a after a new open (cached again)",
        fs.stats()?.fmap("a")?,
        2,
    );
    drop(f2);
    fs.stop()?;
    Ok(c.outcome())
}

/// STORE or RETRIEVE on an fmap inode: refused, and the file's bytes stay the device's.
pub fn refused(ctx: &mut Ctx<'_>, store: bool) -> Result<Outcome> {
    let mut c = Checks::new();
    let ch = Channel::new(&ctx.id)?;
    let (fs, want, f) = one_file(ctx, &ch)?;
    let got = sys::pread(&f, 0, 4 * PAGE).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes("bytes before the notification", 0, &got, &want[..4 * PAGE]);
    // 0x5a is nowhere near the lab's pattern at these offsets by chance: the bytes below show it.
    let (name, command) = if store {
        ("FUSE_NOTIFY_STORE", "store a 0 8192 90")
    } else {
        ("FUSE_NOTIFY_RETRIEVE", "retrieve a 0 8192")
    };
    let r = ch.send(command)?;
    c.check(
        r.starts_with("errno "),
        format!(
            "{name} on an fmap inode is refused (it would put page-cache folios where the DAX entries are): the kernel answered {r}"
        ),
    );
    let m = Mapping::shared(&f, 0, 4 * PAGE, false).context("mmap a")?;
    for page in 0..4 {
        sys::touch(m.ptr().wrapping_add(page * PAGE))?;
    }
    let through_map = m.read_at(0, 4 * PAGE);
    c.bytes(
        format!("bytes through mmap after {name}"),
        0,
        &through_map,
        &want[..4 * PAGE],
    );
    let got = sys::pread(&f, 0, 4 * PAGE).map_err(|e| anyhow::anyhow!("pread: errno {e}"))?;
    c.bytes(
        format!("bytes through pread after {name}"),
        0,
        &got,
        &want[..4 * PAGE],
    );
    if !store {
        let replies = fs.stats()?.opcode("NOTIFY_REPLY")?;
        c.eq(
            "NOTIFY_REPLY requests (no page-cache data to send)",
            replies,
            0,
        );
    }
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}
