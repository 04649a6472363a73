//! The fault benchmark's instruments: a 2 MiB-aligned mapping, the timed touch loop
//! (clock_gettime(CLOCK_MONOTONIC) after every touch), what /proc/self/smaps says about a
//! mapping, the BPF programs' own run time (bpf stats, from the server's prog fds in
//! /proc/PID/fdinfo), and the device_dax binding of the floor.

use crate::setup;
use crate::system::sysfs;
use anyhow::{bail, Context, Result};
use std::os::fd::RawFd;
use std::path::Path;

pub const PAGE: usize = 4096;
pub const PMD: usize = 2 << 20;

/// A shared mapping at a 2 MiB-aligned address (so PMD faults are possible), unmapped on drop.
pub struct Aligned {
    ptr: *mut u8,
    len: usize,
}

impl Aligned {
    /// Maps `len` bytes of `fd` at `offset`; `pte_only` forbids PMD faults (MADV_NOHUGEPAGE).
    pub fn new(fd: RawFd, offset: u64, len: usize, write: bool, pte_only: bool) -> Result<Aligned> {
        let off = libc::off_t::try_from(offset).context("mapping offset")?;
        let span = len + PMD;
        // SAFETY: a fresh PROT_NONE reservation chosen by the kernel; checked for failure.
        let res = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if res == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error()).context("reserving address space");
        }
        let start = res as usize;
        let base = start.div_ceil(PMD) * PMD;
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: MAP_FIXED inside our own reservation.
        let p = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                len,
                prot,
                libc::MAP_SHARED | libc::MAP_FIXED,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            // SAFETY: releasing our own reservation.
            unsafe { libc::munmap(res, span) };
            return Err(e).context(format!("mmap of {len:#x} bytes at {offset:#x}"));
        }
        // SAFETY: trimming the unused head and tail of our reservation.
        unsafe {
            if base > start {
                libc::munmap(res, base - start);
            }
            let end = base + len;
            if start + span > end {
                libc::munmap(end as *mut libc::c_void, start + span - end);
            }
        }
        let m = Aligned {
            ptr: base as *mut u8,
            len,
        };
        if pte_only {
            // SAFETY: exactly this live mapping.
            if unsafe { libc::madvise(m.ptr.cast(), len, libc::MADV_NOHUGEPAGE) } != 0 {
                return Err(std::io::Error::last_os_error()).context("madvise(MADV_NOHUGEPAGE)");
            }
        }
        Ok(m)
    }

    pub fn addr(&self) -> usize {
        self.ptr as usize
    }

    /// Touches byte `offs[k]` for k in order, reading (or writing), and returns the ns each
    /// touch took (the time between consecutive clock reads, so the loop's total is their sum).
    pub fn touch(&self, offs: &[usize], write: bool) -> Result<Vec<u64>> {
        if let Some(&bad) = offs.iter().find(|&&o| o >= self.len) {
            bail!(
                "touch offset {bad:#x} outside the {:#x}-byte mapping",
                self.len
            );
        }
        let mut out = Vec::with_capacity(offs.len());
        let mut sink = 0u8;
        let mut prev = now_ns();
        for (k, &o) in offs.iter().enumerate() {
            // SAFETY: o < len (checked above); the mapping is live and, for writes, writable.
            unsafe {
                let p = self.ptr.add(o);
                if write {
                    std::ptr::write_volatile(p, k as u8);
                } else {
                    sink ^= std::ptr::read_volatile(p);
                }
            }
            let t = now_ns();
            out.push(t.saturating_sub(prev));
            prev = t;
        }
        std::hint::black_box(sink);
        Ok(out)
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what we mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Runs the calling thread on one CPU while alive (the guest scheduler then cannot move the
/// timed loop between vCPUs mid-measurement); the old CPU set is restored on drop, so servers
/// started later are not pinned.
pub struct Pinned {
    old: libc::cpu_set_t,
}

impl Pinned {
    pub fn to(cpu: usize) -> Result<Pinned> {
        // SAFETY: cpu_set_t is plain data; zeroed is an empty set.
        let mut old: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: old is a valid cpu_set_t of `size` bytes; pid 0 is the calling thread.
        if unsafe { libc::sched_getaffinity(0, size, &mut old) } != 0 {
            return Err(std::io::Error::last_os_error()).context("sched_getaffinity");
        }
        // SAFETY: as above.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: cpu is below CPU_SETSIZE for any guest of the lab (checked by the kernel).
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: one is a valid cpu_set_t.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("sched_setaffinity to CPU {cpu}"));
        }
        Ok(Pinned { old })
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: restoring the set we read.
        unsafe { libc::sched_setaffinity(0, size, &self.old) };
    }
}

/// CLOCK_MONOTONIC in ns.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// (Rss, FilePmdMapped) in KiB of the mapping starting at `addr`, from /proc/self/smaps.
pub fn smaps_of(addr: usize) -> Result<(Option<u64>, Option<u64>)> {
    let text = std::fs::read_to_string("/proc/self/smaps").context("reading /proc/self/smaps")?;
    Ok(parse_smaps(&text, addr))
}

fn parse_smaps(text: &str, addr: usize) -> (Option<u64>, Option<u64>) {
    let head = format!("{addr:x}-");
    let mut inside = false;
    let (mut rss, mut pmd) = (None, None);
    for l in text.lines() {
        let is_header = l
            .split_whitespace()
            .next()
            .is_some_and(|f| f.contains('-') && !f.ends_with(':'));
        if is_header {
            if inside {
                break;
            }
            inside = l.starts_with(&head);
            continue;
        }
        if !inside {
            continue;
        }
        let kib = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse().ok());
        if l.starts_with("Rss:") {
            rss = kib(l);
        } else if l.starts_with("FilePmdMapped:") {
            pmd = kib(l);
        }
    }
    (rss, pmd)
}

pub const BPF_STATS: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Turns bpf stats on while alive (if the sysctl exists), back to the old value on drop.
pub struct BpfStats {
    old: String,
}

impl BpfStats {
    /// None (with the reason) if this kernel has no `kernel.bpf_stats_enabled`.
    pub fn enable() -> std::result::Result<BpfStats, String> {
        let old = std::fs::read_to_string(BPF_STATS)
            .map_err(|e| format!("kernel.bpf_stats_enabled is not available ({BPF_STATS}: {e})"))?;
        std::fs::write(BPF_STATS, "1")
            .map_err(|e| format!("kernel.bpf_stats_enabled could not be set ({e})"))?;
        Ok(BpfStats {
            old: old.trim().to_string(),
        })
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(BPF_STATS, &self.old);
    }
}

/// (run_cnt, run_time_ns) summed over the BPF programs process `pid` holds open.
pub fn bpf_prog_stats(pid: u32) -> Result<(u64, u64)> {
    let dir = format!("/proc/{pid}/fdinfo");
    let mut cnt = 0u64;
    let mut ns = 0u64;
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let Ok(text) = std::fs::read_to_string(e?.path()) else {
            continue;
        };
        if !text.contains("prog_id:") {
            continue;
        }
        for l in text.lines() {
            let v = |l: &str| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if l.starts_with("run_cnt:") {
                cnt += v(l).unwrap_or(0);
            } else if l.starts_with("run_time_ns:") {
                ns += v(l).unwrap_or(0);
            }
        }
    }
    Ok((cnt, ns))
}

/// The server's pid from its ready file (`mounted MNT FUSE 7.N ... pid PID`).
pub fn server_pid(ready: &Path) -> Result<u32> {
    let text =
        std::fs::read_to_string(ready).with_context(|| format!("reading {}", ready.display()))?;
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "pid" {
            if let Some(p) = words.next().and_then(|p| p.parse().ok()) {
                return Ok(p);
            }
        }
    }
    bail!("{}: no pid in {text:?}", ready.display())
}

const DAX: &str = "/sys/bus/dax/devices";

/// The floor's binding: `dax` on device_dax with the alignment a fault size needs (device_dax
/// maps only faults of exactly its `align`: 4 KiB for PTE faults, 2 MiB for PMD faults);
/// [`Floor::release`] unbinds and puts the old alignment back.
pub struct Floor {
    pub dax: String,
    /// Why the alignment could not be set (the floor cannot measure this fault size).
    pub unaligned: Option<String>,
    old_align: Option<String>,
}

impl Floor {
    pub fn bind(dax: &str, align: usize) -> Result<Floor> {
        unbind(dax)?;
        let align_path = Path::new(DAX).join(dax).join("align");
        let want = align.to_string();
        let mut unaligned = None;
        let mut old_align = None;
        match sysfs::read(&align_path) {
            Ok(cur) if cur == want => {}
            Ok(cur) => match sysfs::write(&align_path, &want) {
                Ok(()) => old_align = Some(cur),
                Err(e) => unaligned = Some(format!("{dax} align is {cur}, {want} refused: {e:#}")),
            },
            Err(e) => unaligned = Some(format!("{dax}: no align attribute ({e:#})")),
        }
        setup::bind_devdax(dax)?;
        Ok(Floor {
            dax: dax.into(),
            unaligned,
            old_align,
        })
    }

    /// Unbinds device_dax and puts the old alignment back (the next mount binds fsdev_dax).
    pub fn release(self) -> Result<()> {
        unbind(&self.dax)?;
        if let Some(a) = &self.old_align {
            sysfs::write(Path::new(DAX).join(&self.dax).join("align"), a)?;
        }
        Ok(())
    }
}

/// Unbinds `dax` from whatever driver has it (fsdev_dax's id removed, as bind_devdax does).
fn unbind(dax: &str) -> Result<()> {
    let dev = Path::new(DAX).join(dax);
    if let Some(d) = sysfs::driver_of(&dev) {
        sysfs::write(format!("/sys/bus/dax/drivers/{d}/unbind"), dax)?;
        if d == "fsdev_dax" {
            let _ = sysfs::write("/sys/bus/dax/drivers/fsdev_dax/remove_id", dax);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_fields_of_one_mapping() {
        let text = "\
7f0000000000-7f0000200000 r--s 00000000 00:2a 5   /mnt/f
Size:               2048 kB
Rss:                  12 kB
FilePmdMapped:         0 kB
7f0000400000-7f0000800000 rw-s 00000000 00:2a 6   /mnt/g
Size:               4096 kB
Rss:                4096 kB
FilePmdMapped:      4096 kB
VmFlags: rd wr sh mr mw me ms
";
        assert_eq!(parse_smaps(text, 0x7f00_0000_0000), (Some(12), Some(0)));
        assert_eq!(
            parse_smaps(text, 0x7f00_0040_0000),
            (Some(4096), Some(4096))
        );
        assert_eq!(parse_smaps(text, 0x7f00_0060_0000), (None, None));
    }

    #[test]
    fn touches_an_aligned_file_mapping() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(4 * PMD as u64).unwrap();
        use std::os::fd::AsRawFd;
        let m = Aligned::new(f.as_raw_fd(), 0, 2 * PMD, true, true).unwrap();
        assert_eq!(m.addr() % PMD, 0);
        let t = m.touch(&[0, PAGE, PMD + 5], true).unwrap();
        assert_eq!(t.len(), 3);
        assert!(m.touch(&[2 * PMD], false).is_err());
        let mut b = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut b, PMD as u64 + 5).unwrap();
        assert_eq!(b[0], 2);
    }
}
