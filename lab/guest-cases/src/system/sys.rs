//! Guest-side system helpers for the fmap suites: errno-level file operations, access probes
//! that survive SIGBUS (in a forked child), the kernel log since a point (/dev/kmsg), a private
//! tracefs instance for tracepoints, and small /proc knobs.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The errno of an I/O error (EIO if it carries none).
pub fn errno(e: &std::io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// `EINVAL (22)` and friends, for messages.
pub fn errno_name(e: i32) -> String {
    let name = match e {
        0 => "success",
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EFAULT => "EFAULT",
        libc::ENXIO => "ENXIO",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::ENODEV => "ENODEV",
        libc::EINVAL => "EINVAL",
        libc::ENOSPC => "ENOSPC",
        libc::ERANGE => "ERANGE",
        libc::ENOSYS => "ENOSYS",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ENOTCONN => "ENOTCONN",
        libc::EINTR => "EINTR",
        libc::EISDIR => "EISDIR",
        _ => "errno",
    };
    format!("{name} ({e})")
}

/// Opens `path` read-write (or read-only); the errno on failure.
pub fn open(path: &Path, write: bool) -> std::result::Result<File, i32> {
    File::options()
        .read(true)
        .write(write)
        .open(path)
        .map_err(|e| errno(&e))
}

/// Opens with extra flags (e.g. O_TRUNC); the errno on failure.
pub fn open_flags(path: &Path, write: bool, flags: i32) -> std::result::Result<File, i32> {
    File::options()
        .read(true)
        .write(write)
        .custom_flags(flags)
        .open(path)
        .map_err(|e| errno(&e))
}

/// pread of `len` bytes at `off`: the bytes read (possibly short) or the errno.
pub fn pread(f: &File, off: u64, len: usize) -> std::result::Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(errno(&e)),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// One pread(2) of up to `len` bytes: the bytes it returned, or the errno.
pub fn pread_once(f: &File, off: u64, len: usize) -> std::result::Result<Vec<u8>, i32> {
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, off).map_err(|e| errno(&e))?;
    buf.truncate(n);
    Ok(buf)
}

/// One pwrite(2): the count written or the errno.
pub fn pwrite_once(f: &File, off: u64, data: &[u8]) -> std::result::Result<usize, i32> {
    f.write_at(data, off).map_err(|e| errno(&e))
}

/// pwrite of all of `data` (fails on a short write).
pub fn pwrite_all(f: &File, off: u64, data: &[u8]) -> Result<()> {
    let mut done = 0;
    while done < data.len() {
        let n = f
            .write_at(&data[done..], off + done as u64)
            .with_context(|| format!("pwrite at {:#x}", off + done as u64))?;
        if n == 0 {
            bail!("pwrite at {:#x} wrote nothing", off + done as u64);
        }
        done += n;
    }
    Ok(())
}

/// ftruncate(2): 0 or the errno.
pub fn ftruncate(f: &File, size: u64) -> i32 {
    match f.set_len(size) {
        Ok(()) => 0,
        Err(e) => errno(&e),
    }
}

/// truncate(2) by path: 0 or the errno.
pub fn truncate(path: &Path, size: u64) -> i32 {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return libc::EINVAL;
    };
    // SAFETY: a valid NUL-terminated path.
    let r = unsafe { libc::truncate(c.as_ptr(), size as libc::off_t) };
    if r == 0 {
        0
    } else {
        errno(&std::io::Error::last_os_error())
    }
}

/// stat size, or the errno.
pub fn size_of(path: &Path) -> std::result::Result<u64, i32> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| errno(&e))
}

/// The size from a GETATTR sent now (statx with AT_STATX_FORCE_SYNC: no cached attributes),
/// or the errno.
pub fn size_synced(path: &Path) -> std::result::Result<u64, i32> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: an all-zero statx is a valid value to be filled.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a statx buffer of the right type.
    let r = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c.as_ptr(),
            libc::AT_STATX_FORCE_SYNC,
            libc::STATX_SIZE,
            &mut stx,
        )
    };
    if r == 0 {
        Ok(stx.stx_size)
    } else {
        Err(errno(&std::io::Error::last_os_error()))
    }
}

/// The inode number of an open file.
pub fn ino(f: &File) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    Ok(f.metadata()?.ino())
}

/// What touching one byte of memory did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// The byte read (or, for a write, the byte written).
    Ok(u8),
    /// The access killed the (probe) process with this signal.
    Signal(i32),
}

impl std::fmt::Display for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Access::Ok(b) => write!(f, "ok ({b:#04x})"),
            Access::Signal(libc::SIGBUS) => f.write_str("SIGBUS"),
            Access::Signal(libc::SIGSEGV) => f.write_str("SIGSEGV"),
            Access::Signal(s) => write!(f, "signal {s}"),
        }
    }
}

/// Reads `*addr` in a forked child, so that SIGBUS kills only the child.
/// Call only while the process has one thread.
pub fn probe_read(addr: *const u8) -> Result<Access> {
    probe(addr.cast_mut(), None)
}

/// Writes `val` to `*addr` in a forked child (a shared mapping sees the write).
/// Call only while the process has one thread.
pub fn probe_write(addr: *mut u8, val: u8) -> Result<Access> {
    probe(addr, Some(val))
}

fn probe(addr: *mut u8, val: Option<u8>) -> Result<Access> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: the child only touches memory, writes to the pipe and _exits (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: see above; addr is the caller's mapping, inherited by the child.
        unsafe {
            let b = match val {
                Some(v) => {
                    std::ptr::write_volatile(addr, v);
                    v
                }
                None => std::ptr::read_volatile(addr),
            };
            libc::write(fds[1], (&b as *const u8).cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let w = unsafe { libc::waitpid(pid, &mut status, 0) };
    let mut b = [0u8; 1];
    // SAFETY: reading one byte from our pipe into b.
    let n = unsafe { libc::read(fds[0], b.as_mut_ptr().cast(), 1) };
    // SAFETY: closing our read end.
    unsafe { libc::close(fds[0]) };
    if w != pid {
        bail!("waitpid: {}", std::io::Error::last_os_error());
    }
    if libc::WIFSIGNALED(status) {
        return Ok(Access::Signal(libc::WTERMSIG(status)));
    }
    if n != 1 {
        bail!("the probe child exited ({status:#x}) without a result");
    }
    Ok(Access::Ok(b[0]))
}

/// Reads `*addr` in this process (not in a child: a child inherits no PTEs of a shared file
/// mapping, so its access is always a first fault). SIGBUS/SIGSEGV of that one load is caught
/// and returned; the process goes on.
pub fn probe_read_here(addr: *const u8) -> Result<Access> {
    here::probe(addr.cast_mut(), None)
}

/// Writes `val` to `*addr` in this process, catching SIGBUS/SIGSEGV as [`probe_read_here`].
pub fn probe_write_here(addr: *mut u8, val: u8) -> Result<Access> {
    here::probe(addr, Some(val))
}

/// Whether the page holding `addr` is mapped in this process right now
/// (`/proc/self/pagemap`, bit 63 "present").
pub fn page_present(addr: *const u8) -> Result<bool> {
    let f = File::open("/proc/self/pagemap").context("opening /proc/self/pagemap")?;
    let mut e = [0u8; 8];
    let off = (addr as u64 / 4096) * 8;
    f.read_exact_at(&mut e, off)
        .with_context(|| format!("reading /proc/self/pagemap at {off:#x} (page of {addr:p})"))?;
    Ok(u64::from_le_bytes(e) >> 63 == 1)
}

/// Loads `*addr` in this process and proves its page is mapped afterwards: a page mapped
/// "before an event" really is, and a later access of it is not a first fault.
/// The byte, or why the page is not mapped.
pub fn touch(addr: *const u8) -> Result<u8> {
    let b = match probe_read_here(addr)? {
        Access::Ok(b) => b,
        a => bail!("touching {addr:p} to map its page: {a}"),
    };
    if !page_present(addr)? {
        bail!("touching {addr:p} read {b:#04x} but left its page unmapped (pagemap: not present)");
    }
    Ok(b)
}

#[cfg(target_arch = "x86_64")]
mod here {
    //! One load or store whose fault is survived: the instruction is preceded by a `lea` of
    //! its landing address into rcx; the handler, for the armed address only, moves rip there
    //! and puts the signal number in rdx (0 when nothing faulted). Any other fault restores
    //! the default action and returns, so it faults again and kills the process as usual.
    use super::Access;
    use anyhow::{bail, Result};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    static ARMED: AtomicBool = AtomicBool::new(false);
    static AT: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn on_fault(sig: libc::c_int, info: *mut libc::siginfo_t, uc: *mut libc::c_void) {
        // SAFETY: the kernel passes a valid siginfo and ucontext to an SA_SIGINFO handler.
        unsafe {
            let armed = ARMED.load(Ordering::SeqCst);
            let at = (*info).si_addr() as usize;
            let g = &mut (*uc.cast::<libc::ucontext_t>()).uc_mcontext.gregs;
            if armed && at == AT.load(Ordering::SeqCst) && g[libc::REG_RCX as usize] != 0 {
                g[libc::REG_RIP as usize] = g[libc::REG_RCX as usize];
                g[libc::REG_RDX as usize] = i64::from(sig);
                return;
            }
            libc::signal(sig, libc::SIG_DFL);
        }
    }

    fn sigaction(sig: i32, new: &libc::sigaction) -> Result<libc::sigaction> {
        // SAFETY: zeroed is a valid sigaction to be filled by the kernel.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: valid pointers to sigaction structs.
        if unsafe { libc::sigaction(sig, new, &mut old) } != 0 {
            bail!("sigaction({sig}): {}", std::io::Error::last_os_error());
        }
        Ok(old)
    }

    pub(super) fn probe(addr: *mut u8, val: Option<u8>) -> Result<Access> {
        // SAFETY: an all-zero sigaction is valid; the fields that matter are set below.
        let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
        sa.sa_sigaction = on_fault as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        let old_bus = sigaction(libc::SIGBUS, &sa)?;
        let old_segv = match sigaction(libc::SIGSEGV, &sa) {
            Ok(o) => o,
            Err(e) => {
                let _ = sigaction(libc::SIGBUS, &old_bus);
                return Err(e);
            }
        };
        AT.store(addr as usize, Ordering::SeqCst);
        ARMED.store(true, Ordering::SeqCst);
        let sig: u64;
        let got: u8;
        // SAFETY: one access to `addr`; a fault there resumes at label 3 with rdx = the signal.
        unsafe {
            match val {
                None => {
                    let v: u32;
                    std::arch::asm!(
                        "lea rcx, [rip + 3f]",
                        "movzx {v:e}, byte ptr [{a}]",
                        "3:",
                        a = in(reg) addr,
                        v = out(reg) v,
                        inout("rdx") 0u64 => sig,
                        out("rcx") _,
                        options(nostack, preserves_flags),
                    );
                    got = v as u8;
                }
                Some(b) => {
                    std::arch::asm!(
                        "lea rcx, [rip + 3f]",
                        "mov byte ptr [{a}], {b}",
                        "3:",
                        a = in(reg) addr,
                        b = in(reg_byte) b,
                        inout("rdx") 0u64 => sig,
                        out("rcx") _,
                        options(nostack, preserves_flags),
                    );
                    got = b;
                }
            }
        }
        ARMED.store(false, Ordering::SeqCst);
        let r1 = sigaction(libc::SIGSEGV, &old_segv);
        let r2 = sigaction(libc::SIGBUS, &old_bus);
        r1?;
        r2?;
        Ok(if sig == 0 {
            Access::Ok(got)
        } else {
            Access::Signal(sig as i32)
        })
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod here {
    use super::Access;
    use anyhow::{bail, Result};

    pub(super) fn probe(_addr: *mut u8, _val: Option<u8>) -> Result<Access> {
        bail!("in-process access probes are implemented for x86_64 only")
    }
}

/// How an open(2) in a child process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildOpen {
    /// open returned: 0 on success, else its errno.
    Returned(i32),
    /// open had not returned by the deadline; the child was killed (`reaped`: and is gone).
    TimedOut { reaped: bool },
}

/// open(2) of `path` read-only in a forked child, waited for at most `timeout`: an open
/// that never returns (restarted forever, stuck on the server) is reported, not waited for.
/// Call only while the process has one thread.
pub fn open_in_child(path: &Path, timeout: Duration) -> Result<ChildOpen> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .with_context(|| format!("{} has a NUL byte", path.display()))?;
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error()).context("pipe");
    }
    // SAFETY: the child only calls open, write and _exit (async-signal-safe).
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).context("fork");
    }
    if pid == 0 {
        // SAFETY: see above.
        unsafe {
            let fd = libc::open(c.as_ptr(), libc::O_RDONLY);
            let e: i32 = if fd >= 0 {
                0
            } else {
                *libc::__errno_location()
            };
            libc::write(fds[1], (&e as *const i32).cast(), 4);
            libc::_exit(0);
        }
    }
    // SAFETY: our copy of the write end.
    unsafe { libc::close(fds[1]) };
    let mut pfd = libc::pollfd {
        fd: fds[0],
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, ms) };
    let mut e = [0u8; 4];
    let n = if ready > 0 {
        // SAFETY: reading 4 bytes into e.
        unsafe { libc::read(fds[0], e.as_mut_ptr().cast(), 4) }
    } else {
        0
    };
    // SAFETY: our read end.
    unsafe { libc::close(fds[0]) };
    if n == 4 {
        let mut st = 0;
        // SAFETY: our child, which has written its result and exits.
        unsafe { libc::waitpid(pid, &mut st, 0) };
        return Ok(ChildOpen::Returned(i32::from_ne_bytes(e)));
    }
    // SAFETY: killing our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut st = 0;
        // SAFETY: polling our child.
        let w = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        if w == pid {
            return Ok(ChildOpen::TimedOut { reaped: true });
        }
        if w < 0 || Instant::now() > deadline {
            return Ok(ChildOpen::TimedOut { reaped: false });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The kernel log from the moment [`Kmsg::open`] was called.
pub struct Kmsg {
    f: File,
    seen: Vec<String>,
}

impl Kmsg {
    pub fn open() -> Result<Kmsg> {
        let f = File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open("/dev/kmsg")
            .context("opening /dev/kmsg")?;
        // SAFETY: seeking our own descriptor.
        unsafe { libc::lseek(f.as_raw_fd(), 0, libc::SEEK_END) };
        Ok(Kmsg {
            f,
            seen: Vec::new(),
        })
    }

    /// Collects the records logged since the last call; every message so far.
    pub fn lines(&mut self) -> &[String] {
        let mut buf = vec![0u8; 8192];
        loop {
            match (&self.f).read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let rec = String::from_utf8_lossy(&buf[..n]);
                    let first = rec.lines().next().unwrap_or("");
                    if let Some((_, msg)) = first.split_once(';') {
                        self.seen.push(msg.to_string());
                    }
                }
                // EPIPE: records were overwritten; go on with the next
                Err(e) if e.raw_os_error() == Some(libc::EPIPE) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        &self.seen
    }

    /// The first message containing `pat`, if any has been logged.
    pub fn find(&mut self, pat: &str) -> Option<String> {
        self.lines().iter().find(|l| l.contains(pat)).cloned()
    }

    /// Waits up to `timeout` for a message containing `pat`.
    pub fn wait_for(&mut self, pat: &str, timeout: Duration) -> Option<String> {
        let start = Instant::now();
        loop {
            if let Some(l) = self.find(pat) {
                return Some(l);
            }
            if start.elapsed() > timeout {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const TRACING: &str = "/sys/kernel/tracing";
static TRACE_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A tracefs instance of our own with some events enabled; removed on drop.
pub struct Trace {
    dir: PathBuf,
    events: Vec<String>,
}

impl Trace {
    /// Enables `events` ("system/event") in a new instance; None if any is not in this kernel.
    pub fn new(events: &[&str]) -> Result<Option<Trace>> {
        if events
            .iter()
            .any(|e| !Path::new(TRACING).join("events").join(e).is_dir())
        {
            return Ok(None);
        }
        let n = TRACE_SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = Path::new(TRACING)
            .join("instances")
            .join(format!("famfs-lab-{}-{n}", std::process::id()));
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let t = Trace {
            dir,
            events: events.iter().map(|s| s.to_string()).collect(),
        };
        for e in &t.events {
            let p = t.dir.join("events").join(e).join("enable");
            std::fs::write(&p, "1").with_context(|| format!("writing 1 to {}", p.display()))?;
        }
        Ok(Some(t))
    }

    /// The events recorded so far (comment lines dropped).
    pub fn lines(&self) -> Result<Vec<String>> {
        let p = self.dir.join("trace");
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        Ok(text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
            .map(String::from)
            .collect())
    }

    /// Empties the buffer.
    pub fn clear(&self) -> Result<()> {
        std::fs::write(self.dir.join("trace"), "").context("clearing the trace buffer")
    }
}

impl Drop for Trace {
    fn drop(&mut self) {
        for e in &self.events {
            let _ = std::fs::write(self.dir.join("events").join(e).join("enable"), "0");
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// DAX faults of inode `ino` in trace lines of the `fs_dax` events.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DaxFaults {
    /// PTE faults that mapped (NOPAGE).
    pub pte: usize,
    /// PMD faults that mapped a 2 MiB page (NOPAGE).
    pub pmd: usize,
    /// PMD faults that fell back to PTEs.
    pub pmd_fallback: usize,
    /// Faults that ended in SIGBUS or another error.
    pub failed: usize,
    /// Faults with the WRITE flag.
    pub writes: usize,
}

pub const DAX_FAULT_EVENTS: &[&str] = &["fs_dax/dax_pte_fault_done", "fs_dax/dax_pmd_fault_done"];

pub fn dax_faults(lines: &[String], ino: u64) -> DaxFaults {
    let tag = format!(" ino {ino:#x} ");
    let mut c = DaxFaults::default();
    for l in lines.iter().filter(|l| l.contains(&tag)) {
        let result = l.split_whitespace().last().unwrap_or("");
        let ok = result.split('|').any(|f| f == "NOPAGE");
        let fallback = result.split('|').any(|f| f == "FALLBACK");
        if l.contains(" WRITE") {
            c.writes += 1;
        }
        if l.contains("dax_pmd_fault_done:") {
            if ok {
                c.pmd += 1;
            } else if fallback {
                c.pmd_fallback += 1;
            } else {
                c.failed += 1;
            }
        } else if l.contains("dax_pte_fault_done:") {
            if ok {
                c.pte += 1;
            } else {
                c.failed += 1;
            }
        }
    }
    c
}

/// The kernel's `pr_warn_ratelimited()` lines (the fmap code's "not usable", "ops ...: <why>",
/// "does not match i_size") allow 10 lines per 5 s per call site: before an event whose line a
/// case checks, wait until any earlier burst (an earlier case's included) is over.
pub fn ratelimit_quiet() {
    std::thread::sleep(Duration::from_millis(5500));
}

/// Drops unused dentries and inodes (an fmap file's inode then goes, meta and all).
pub fn drop_caches() -> Result<()> {
    std::fs::write("/proc/sys/vm/drop_caches", "2").context("writing /proc/sys/vm/drop_caches")
}

/// A field of /proc/meminfo in KiB.
pub fn meminfo_kib(field: &str) -> Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k == field).then(|| v.split_whitespace().next()?.parse().ok())?
        })
        .with_context(|| format!("no {field} in /proc/meminfo"))
}

/// Whether a kernel module is loaded (or built in with parameters).
pub fn module_loaded(name: &str) -> bool {
    Path::new("/sys/module").join(name).exists()
}

/// Runs a command, returning (success, stdout+stderr).
pub fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    match std::process::Command::new(cmd).args(args).output() {
        Ok(o) => (
            o.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        ),
        Err(e) => (false, format!("{cmd}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dax_fault_lines_are_classified_by_inode_and_result() {
        let lines: Vec<String> = [
            "  x-1 [000] ..... 1.0: dax_pmd_fault_done: dev 0:40 ino 0x5 shared ALLOW_RETRY|KILLABLE address 0x7f0000200000 vm_start 0x7f0000000000 vm_end 0x7f0000600000 pgoff 0x200 max_pgoff 0x5ff NOPAGE",
            "  x-1 [000] ..... 1.1: dax_pmd_fault_done: dev 0:40 ino 0x5 shared WRITE|ALLOW_RETRY address 0x7f0000400000 vm_start 0x7f0000000000 vm_end 0x7f0000600000 pgoff 0x400 max_pgoff 0x5ff FALLBACK",
            "  x-1 [000] ..... 1.2: dax_pte_fault_done: dev 0:40 ino 0x5 shared WRITE|ALLOW_RETRY address 0x7f0000400000 pgoff 0x400 NOPAGE",
            "  x-1 [000] ..... 1.3: dax_pte_fault_done: dev 0:40 ino 0x5 shared ALLOW_RETRY address 0x7f0000401000 pgoff 0x401 SIGBUS",
            "  x-1 [000] ..... 1.4: dax_pte_fault_done: dev 0:40 ino 0x55 shared ALLOW_RETRY address 0x7f0000401000 pgoff 0x401 NOPAGE",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            dax_faults(&lines, 5),
            DaxFaults {
                pte: 1,
                pmd: 1,
                pmd_fallback: 1,
                failed: 1,
                writes: 2
            }
        );
    }

    #[test]
    fn probe_reads_and_survives_sigsegv() {
        let v = [42u8];
        assert_eq!(probe_read(v.as_ptr()).unwrap(), Access::Ok(42));
        assert_eq!(
            probe_read(std::ptr::null()).unwrap(),
            Access::Signal(libc::SIGSEGV)
        );
    }

    #[test]
    fn probes_here_survive_faults_and_see_the_pagemap() {
        let mut v = vec![7u8; 8192];
        assert_eq!(probe_read_here(v.as_ptr()).unwrap(), Access::Ok(7));
        assert_eq!(probe_write_here(v.as_mut_ptr(), 9).unwrap(), Access::Ok(9));
        assert_eq!(v[0], 9);
        assert_eq!(
            probe_read_here(std::ptr::null()).unwrap(),
            Access::Signal(libc::SIGSEGV)
        );
        // a fresh anonymous page is not present until touched; a file page past EOF is SIGBUS
        let f = tempfile::tempfile().unwrap();
        f.set_len(4096).unwrap();
        let m = crate::system::mapping::Mapping::shared(&f, 0, 8192, true).unwrap();
        assert!(!page_present(m.ptr()).unwrap());
        assert_eq!(touch(m.ptr()).unwrap(), 0);
        assert!(page_present(m.ptr()).unwrap());
        assert_eq!(
            probe_read_here(m.ptr().wrapping_add(4096)).unwrap(),
            Access::Signal(libc::SIGBUS)
        );
        assert_eq!(
            probe_write_here(m.ptr().wrapping_add(5000), 1).unwrap(),
            Access::Signal(libc::SIGBUS)
        );
        assert!(touch(m.ptr().wrapping_add(4096)).is_err());
        // the process still dies of a fault nobody armed for: checked in a child
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let _ = probe_read_here(v.as_ptr());
            unsafe { std::ptr::read_volatile(std::ptr::null::<u8>()) };
            unsafe { libc::_exit(0) };
        }
        let mut st = 0;
        assert_eq!(unsafe { libc::waitpid(pid, &mut st, 0) }, pid);
        assert!(libc::WIFSIGNALED(st) && libc::WTERMSIG(st) == libc::SIGSEGV);
    }

    #[test]
    fn open_in_child_reports_the_errno_or_the_timeout() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("f");
        std::fs::write(&f, b"x").unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(open_in_child(&f, t).unwrap(), ChildOpen::Returned(0));
        assert_eq!(
            open_in_child(&d.path().join("nope"), t).unwrap(),
            ChildOpen::Returned(libc::ENOENT)
        );
        // a FIFO without a writer: open blocks until killed
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(
            open_in_child(&fifo, Duration::from_millis(200)).unwrap(),
            ChildOpen::TimedOut { reaped: true }
        );
    }

    #[test]
    fn pread_is_short_at_eof_and_errno_names() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(10).unwrap();
        assert_eq!(pread(&f, 5, 100).unwrap().len(), 5);
        assert_eq!(errno_name(libc::ENODEV), "ENODEV (19)");
    }
}
