//! Dax devices handed to the kernel by file descriptor: on GET_DAXDEV for slot N, the server
//! opens the slot's device itself and registers it with `FUSE_DEV_IOC_DAX_REGISTER` on its
//! /dev/fuse file, then replies with no data. The kernel checks the server's own credentials
//! (CAP_SYS_RAWIO) and that the file is open for reading and writing; it looks up no path, so
//! the path in `daxdevs.yaml` means what it means in the server's mount namespace.
//!
//! A kernel without the ioctl (ENOTTY: the v1 series) is answered the old way, with the path
//! in the reply ([`Registered::Legacy`]): the probe is the first registration itself.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;

/// `struct fuse_dax_register` of the series' uapi.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct DaxRegister {
    pub fd: i32,
    pub index: u32,
    pub flags: u64,
}
const _: () = assert!(size_of::<DaxRegister>() == 16);

nix::ioctl_write_ptr!(fuse_dev_ioc_dax_register, 229, 4, DaxRegister);

/// How the server opens a device before registering it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpenMode {
    #[default]
    ReadWrite,
    /// Negative tests: read-only, which the kernel must refuse (EACCES).
    ReadOnly,
}

/// Negative tests: a server that misuses the ioctl, each with the answer the kernel owes it
/// (recorded in the stats under `probes`, see [`Registered::errno`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Abuse {
    /// After registering a slot, register it again (`again:N`; the kernel: EEXIST).
    pub twice: bool,
    /// After registering a slot, also try these indexes with the same device (`index:N`; the
    /// kernel: EINVAL from 24 on).
    pub bad_index: Vec<u32>,
    /// Answer GET_DAXDEV without registering anything (`reply-only:N`; the kernel must fail
    /// the open with ENODEV).
    pub reply_only: bool,
    /// Once unmounted, register slot 0 again (`after-unmount:0`; the kernel: ENOTCONN, the
    /// connection's devices are gone).
    pub after_unmount: bool,
}

/// What a GET_DAXDEV for one slot came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registered {
    /// The kernel took the device (the ioctl returned the slot).
    Yes,
    /// The kernel has no such ioctl: answer with the path (v1 GET_DAXDEV).
    Legacy,
}

/// A /dev/fuse file of the connection, for the ioctl (any clone of it works).
#[derive(Debug)]
pub struct Registrar {
    dev: File,
    mode: OpenMode,
}

impl Registered {
    /// A registration's result as the stats record it: 0, ENOTTY for a kernel without the
    /// ioctl, or the errno.
    pub fn errno(res: Result<Registered, i32>) -> i32 {
        match res {
            Ok(Registered::Yes) => 0,
            Ok(Registered::Legacy) => libc::ENOTTY,
            Err(e) => e,
        }
    }
}

impl Registrar {
    pub fn new(dev: File, mode: OpenMode) -> Registrar {
        Registrar { dev, mode }
    }

    /// Opens `path` and registers it as slot `index`. Errors are errnos, for the reply.
    pub fn register(&self, index: u32, path: &str) -> Result<Registered, i32> {
        let errno = |e: std::io::Error| e.raw_os_error().unwrap_or(libc::EIO);
        let file = OpenOptions::new()
            .read(true)
            .write(self.mode == OpenMode::ReadWrite)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                eprintln!("famfs-fused: slot {index}: opening {path}: {e}");
                errno(e)
            })?;
        let arg = DaxRegister {
            fd: file.as_raw_fd(),
            index,
            flags: 0,
        };
        // SAFETY: the ioctl reads one struct fuse_dax_register from a pointer valid for the
        // call; `self.dev` is an open /dev/fuse file.
        match unsafe { fuse_dev_ioc_dax_register(self.dev.as_raw_fd(), &arg) } {
            Ok(_) => Ok(Registered::Yes),
            Err(nix::errno::Errno::ENOTTY) => Ok(Registered::Legacy),
            Err(e) => {
                eprintln!("famfs-fused: slot {index}: FUSE_DEV_IOC_DAX_REGISTER of {path}: {e}");
                Err(e as i32)
            }
        }
    }
}

/// Drops CAP_SYS_RAWIO from this thread (effective, permitted, inheritable and the bounding
/// set); threads started afterwards inherit that. Negative tests: a daemon that mounted with
/// the capability (as through a setuid mount helper) and serves without it.
pub fn drop_rawio() -> anyhow::Result<()> {
    use anyhow::Context;
    use caps::{CapSet, Capability};
    for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
        caps::drop(None, set, Capability::CAP_SYS_RAWIO)
            .with_context(|| format!("dropping CAP_SYS_RAWIO from the {set:?} set"))?;
    }
    caps::drop(None, CapSet::Bounding, Capability::CAP_SYS_RAWIO)
        .context("dropping CAP_SYS_RAWIO from the bounding set")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_number_is_the_uapi_one() {
        // _IOW(229, 4, struct fuse_dax_register): dir write (1) << 30 | size 16 << 16 | 229 << 8 | 4
        let want: u64 = (1 << 30) | (16 << 16) | (229 << 8) | 4;
        assert_eq!(
            nix::request_code_write!(229, 4, size_of::<DaxRegister>()) as u64,
            want
        );
    }

    #[test]
    fn a_path_that_cannot_be_opened_is_its_errno() {
        let dev = tempfile::tempfile().unwrap();
        let r = Registrar::new(dev, OpenMode::ReadWrite);
        assert_eq!(r.register(0, "/nonexistent/dax0.0"), Err(libc::ENOENT));
    }

    #[test]
    fn a_file_that_is_not_dev_fuse_is_not_a_registration() {
        // A regular file answers the ioctl with ENOTTY, which reads as "no such ioctl".
        let dev = tempfile::tempfile().unwrap();
        let target = tempfile::NamedTempFile::new().unwrap();
        let r = Registrar::new(dev, OpenMode::ReadWrite);
        assert_eq!(
            r.register(3, target.path().to_str().unwrap()),
            Ok(Registered::Legacy)
        );
    }
}
