//! Minimal deterministic writer for the "newc" (SVR4, no CRC) cpio format, the format the
//! Linux kernel unpacks as an initramfs (see `Documentation/driver-api/early-userspace/
//! buffer-format.rst`).
//!
//! Every header gets mtime 0, uid/gid 0, device 0 and an inode number assigned in write
//! order (starting at 1), so equal input gives byte-identical output.  Entries must come in
//! strictly increasing path order with every directory before its contents; the writer
//! checks that rather than sorting, so the caller stays in charge of the order.

use std::io::{self, Write};

pub const S_IFDIR: u32 = 0o040_000;
pub const S_IFREG: u32 = 0o100_000;
pub const S_IFLNK: u32 = 0o120_000;
pub const S_IFCHR: u32 = 0o020_000;
pub const S_IFBLK: u32 = 0o060_000;

const MAGIC: &[u8; 6] = b"070701";
const TRAILER: &str = "TRAILER!!!";
const HEADER_LEN: usize = 110;

/// What an archive entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind<'a> {
    Dir,
    File(&'a [u8]),
    Symlink(&'a str),
    CharDev { major: u32, minor: u32 },
    BlockDev { major: u32, minor: u32 },
}

/// One archive entry. `path` is relative (`bin/sh`, no leading `/`); `perm` holds the
/// permission bits (`0o7777` mask), the file type comes from `kind`.
#[derive(Debug, Clone, Copy)]
pub struct Entry<'a> {
    pub path: &'a str,
    pub perm: u32,
    pub kind: Kind<'a>,
}

/// Streaming newc writer. Call [`Writer::append`] for each entry, then [`Writer::finish`].
pub struct Writer<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    last_path: Option<String>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        Writer {
            out,
            written: 0,
            next_ino: 1,
            last_path: None,
        }
    }

    pub fn append(&mut self, e: &Entry<'_>) -> io::Result<()> {
        check_path(e.path)?;
        if let Some(last) = &self.last_path {
            if !path_less(last, e.path) {
                return Err(invalid(format!(
                    "cpio entries out of order: {:?} after {last:?}",
                    e.path
                )));
            }
        }
        let (ftype, data, nlink, rdev): (u32, &[u8], u32, (u32, u32)) = match e.kind {
            Kind::Dir => (S_IFDIR, &[], 2, (0, 0)),
            Kind::File(d) => (S_IFREG, d, 1, (0, 0)),
            Kind::Symlink(t) => (S_IFLNK, t.as_bytes(), 1, (0, 0)),
            Kind::CharDev { major, minor } => (S_IFCHR, &[], 1, (major, minor)),
            Kind::BlockDev { major, minor } => (S_IFBLK, &[], 1, (major, minor)),
        };
        let size = u32::try_from(data.len())
            .map_err(|_| invalid(format!("{}: file larger than 4 GiB", e.path)))?;
        let ino = self.next_ino;
        self.next_ino += 1;
        self.header(e.path, ino, ftype | (e.perm & 0o7777), nlink, size, rdev)?;
        self.out.write_all(data)?;
        self.written += data.len() as u64;
        self.pad()?;
        self.last_path = Some(e.path.to_owned());
        Ok(())
    }

    /// Writes the trailer and returns the inner writer and the archive size in bytes.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        self.header(TRAILER, 0, 0, 1, 0, (0, 0))?;
        self.out.flush()?;
        Ok((self.out, self.written))
    }

    fn header(
        &mut self,
        name: &str,
        ino: u32,
        mode: u32,
        nlink: u32,
        size: u32,
        (rmaj, rmin): (u32, u32),
    ) -> io::Result<()> {
        let namesize = u32::try_from(name.len() + 1).map_err(|_| invalid("name too long"))?;
        // ino mode uid gid nlink mtime filesize devmajor devminor rdevmajor rdevminor namesize check
        let fields = [
            ino, mode, 0, 0, nlink, 0, size, 0, 0, rmaj, rmin, namesize, 0,
        ];
        let mut h = Vec::with_capacity(HEADER_LEN + name.len() + 4);
        h.extend_from_slice(MAGIC);
        for f in fields {
            h.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        h.extend_from_slice(name.as_bytes());
        h.push(0);
        self.out.write_all(&h)?;
        self.written += h.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - (self.written % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..n])?;
        self.written += n as u64;
        Ok(())
    }
}

/// Component-wise path order: a directory sorts right before its contents.
pub fn path_less(a: &str, b: &str) -> bool {
    a.split('/').lt(b.split('/'))
}

fn check_path(p: &str) -> io::Result<()> {
    let bad = p.is_empty()
        || p == TRAILER
        || p.contains('\0')
        || p.split('/').any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        return Err(invalid(format!("bad cpio entry path {p:?}")));
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(entries: &[Entry<'_>]) -> io::Result<Vec<u8>> {
        let mut w = Writer::new(Vec::new());
        for e in entries {
            w.append(e)?;
        }
        let (out, n) = w.finish()?;
        assert_eq!(out.len() as u64, n);
        Ok(out)
    }

    #[test]
    fn header_layout_and_padding() -> io::Result<()> {
        let out = write(&[Entry {
            path: "a",
            perm: 0o644,
            kind: Kind::File(b"xyz"),
        }])?;
        assert_eq!(&out[..6], b"070701");
        assert_eq!(&out[6..14], b"00000001"); // ino
        assert_eq!(&out[14..22], b"000081a4"); // S_IFREG | 0644
        assert_eq!(&out[54..62], b"00000003"); // filesize
        assert_eq!(&out[94..102], b"00000002"); // namesize "a\0"
        assert_eq!(&out[110..112], b"a\0");
        // 112 -> pad to 112 (aligned), data 3 bytes, pad 1
        assert_eq!(&out[112..116], b"xyz\0");
        assert_eq!(out.len() % 4, 0);
        Ok(())
    }

    #[test]
    fn rejects_bad_order_and_paths() {
        let d = |p| Entry {
            path: p,
            perm: 0o755,
            kind: Kind::Dir,
        };
        assert!(write(&[d("b"), d("a")]).is_err());
        assert!(write(&[d("a/b"), d("a")]).is_err());
        assert!(write(&[d("a"), d("a")]).is_err());
        assert!(write(&[d("/abs")]).is_err());
        assert!(write(&[d("a/../b")]).is_err());
        assert!(write(&[d("a"), d("a/b"), d("a-c")]).is_ok());
    }

    #[test]
    fn component_order_puts_parents_first() {
        assert!(path_less("a", "a/b"));
        assert!(path_less("a/b", "a-c")); // byte order would say otherwise
        assert!(!path_less("a/b", "a"));
    }
}
