//! mmap of a device or file, unmapped on drop.

use anyhow::{bail, Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;

/// A shared mapping of `len` bytes at `offset` of a file.
pub struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    pub fn shared(file: &File, offset: u64, len: usize, write: bool) -> std::io::Result<Self> {
        Self::new(file, offset, len, write, libc::MAP_SHARED)
    }

    /// A private (copy-on-write) mapping.
    pub fn private(file: &File, offset: u64, len: usize, write: bool) -> std::io::Result<Self> {
        Self::new(file, offset, len, write, libc::MAP_PRIVATE)
    }

    fn new(file: &File, offset: u64, len: usize, write: bool, flags: i32) -> std::io::Result<Self> {
        let prot = if write {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        let off = libc::off_t::try_from(offset)
            .map_err(|_| std::io::Error::from_raw_os_error(libc::EOVERFLOW))?;
        // SAFETY: a fresh mapping chosen by the kernel; checked for failure.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                flags,
                file.as_raw_fd(),
                off,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: ptr.cast(),
            len,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the mapping is live for self's lifetime and len bytes long.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above; mapped writable by the caller's choice.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    /// The first mapped byte (for probes that may fault).
    pub fn ptr(&self) -> *mut u8 {
        self.ptr
    }

    /// madvise(2) over the whole mapping.
    pub fn advise(&self, advice: i32) -> std::io::Result<()> {
        // SAFETY: the range is exactly this live mapping.
        let r = unsafe { libc::madvise(self.ptr.cast(), self.len, advice) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// msync(2) over the whole mapping.
    pub fn sync(&self, flags: i32) -> std::io::Result<()> {
        // SAFETY: the range is exactly this live mapping.
        let r = unsafe { libc::msync(self.ptr.cast(), self.len, flags) };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Copies `len` bytes from `off` (each touched page faults in).
    pub fn read_at(&self, off: usize, len: usize) -> Vec<u8> {
        self.bytes()[off..off + len].to_vec()
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what mmap returned.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// Opens a dax char device for reading and writing.
pub fn open_dax(name: &str) -> Result<File> {
    let path = format!("/dev/{name}");
    File::options()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {path}"))
}

/// The 2 MiB-aligned window that holds `[offset, offset+len)`.
pub fn aligned_window(offset: u64, len: u64) -> Result<(u64, usize)> {
    const ALIGN: u64 = 2 << 20;
    let start = offset / ALIGN * ALIGN;
    let end = (offset + len).div_ceil(ALIGN) * ALIGN;
    if len == 0 {
        bail!("empty range");
    }
    Ok((start, usize::try_from(end - start)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_aligned_and_covers_the_range() {
        assert_eq!(
            aligned_window(4 << 20, 64 << 10).unwrap(),
            (4 << 20, 2 << 20)
        );
        assert_eq!(aligned_window((2 << 20) - 1, 2).unwrap(), (0, 4 << 20));
        assert!(aligned_window(0, 0).is_err());
    }

    #[test]
    fn maps_a_file_and_writes_through() {
        let f = tempfile::tempfile().unwrap();
        f.set_len(8192).unwrap();
        let mut m = Mapping::shared(&f, 4096, 4096, true).unwrap();
        m.bytes_mut()[0] = 0xab;
        drop(m);
        let mut buf = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut buf, 4096).unwrap();
        assert_eq!(buf[0], 0xab);
    }
}
