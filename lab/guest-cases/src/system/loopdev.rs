//! A loop block device over a file, for cases that need a block device (fuseblk mounts):
//! /dev/loop-control hands out a free device, LOOP_SET_FD attaches the file, drop detaches it.

use anyhow::{Context, Result};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;

/// An attached loop device; detached on drop. No descriptor of it stays open: a kernel
/// without CONFIG_BLK_DEV_WRITE_MOUNTED refuses (EBUSY) to mount a block device someone
/// has open for writing.
pub struct LoopDev {
    pub path: PathBuf,
}

impl LoopDev {
    /// Creates `backing` with `size` bytes (zeros) and attaches it to a free loop device.
    pub fn over_new_file(backing: &Path, size: u64) -> Result<LoopDev> {
        let f = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(backing)
            .with_context(|| format!("creating {}", backing.display()))?;
        f.set_len(size)
            .with_context(|| format!("sizing {}", backing.display()))?;
        let ctl = File::options()
            .read(true)
            .write(true)
            .open("/dev/loop-control")
            .context("opening /dev/loop-control (does the kernel have CONFIG_BLK_DEV_LOOP?)")?;
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(ctl.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("LOOP_CTL_GET_FREE");
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: LOOP_SET_FD takes the backing file's descriptor as its argument; both are
        // open for the call.
        if unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_SET_FD, f.as_raw_fd()) } < 0 {
            return Err(std::io::Error::last_os_error()).with_context(|| {
                format!("LOOP_SET_FD {} on {}", backing.display(), path.display())
            });
        }
        Ok(LoopDev { path })
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let Ok(dev) = File::open(&self.path) else {
            return;
        };
        // SAFETY: LOOP_CLR_FD takes no argument; the device fd is open. A failure (still
        // mounted) leaves the device attached until the mount goes: nothing to free here.
        unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CLR_FD) };
    }
}
