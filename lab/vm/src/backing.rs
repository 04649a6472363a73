//! CXL backing files: created sparse in the run directory, and read or written by the host to
//! prepare or check data the guest sees through the device.

use crate::error::{Error, Result};
use crate::topology::{Topology, Type3Device};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Creates (sparse) or extends each device's backing file to the device size. Existing contents
/// are kept, so the host can prepare data before boot; a file larger than its device is an error.
pub fn create_backing_files(topology: &Topology, run_dir: &Path) -> Result<Vec<PathBuf>> {
    topology
        .devices
        .iter()
        .map(|d| BackingFile::create(topology, d, run_dir).map(|b| b.path))
        .collect()
}

/// One device's backing file, opened read-write.
#[derive(Debug)]
pub struct BackingFile {
    device: String,
    path: PathBuf,
    size: u64,
    file: File,
}

impl BackingFile {
    /// Opens the backing file of `device`, creating or extending it to the device size.
    pub fn create(
        topology: &Topology,
        device: &Type3Device,
        run_dir: &Path,
    ) -> Result<BackingFile> {
        let path = topology.backing_path(device, run_dir);
        let size = device.size.0;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Error::io(format!("create directory {}", parent.display()), e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(format!("open backing file {}", path.display()), e))?;
        let actual = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?
            .len();
        if actual > size {
            return Err(Error::BackingTooLarge {
                path,
                actual,
                expected: size,
            });
        }
        if actual < size {
            file.set_len(size)
                .map_err(|e| Error::io(format!("extend {} to {size} bytes", path.display()), e))?;
        }
        Ok(BackingFile {
            device: device.id.clone(),
            path,
            size,
            file,
        })
    }

    /// Opens the existing backing file of device `device_id` (no creation).
    pub fn open(topology: &Topology, device_id: &str, run_dir: &Path) -> Result<BackingFile> {
        let device = topology
            .device(device_id)
            .ok_or_else(|| Error::UnknownDevice(device_id.to_string()))?;
        let path = topology.backing_path(device, run_dir);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("open backing file {}", path.display()), e))?;
        Ok(BackingFile {
            device: device.id.clone(),
            path,
            size: device.size.0,
            file,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<()> {
        let len = len as u64;
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(Error::BackingOutOfRange {
                device: self.device.clone(),
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Reads `len` bytes at device physical offset `offset` (holes read as zeros).
    pub fn read_at(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        self.check_range(offset, len)?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset).map_err(|e| {
            Error::io(
                format!("read {len} bytes at {offset} of {}", self.path.display()),
                e,
            )
        })?;
        Ok(buf)
    }

    /// Writes `data` at device physical offset `offset` and flushes it to the file.
    pub fn write_at(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len())?;
        self.file
            .write_all_at(data, offset)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                Error::io(
                    format!(
                        "write {} bytes at {offset} of {}",
                        data.len(),
                        self.path.display()
                    ),
                    e,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn sparse_create_keep_and_rw() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Topology::load_named("two-devices").expect("topology");
        let paths = create_backing_files(&t, dir.path()).expect("create");
        assert_eq!(
            paths,
            [dir.path().join("mem0.raw"), dir.path().join("mem1.raw")]
        );
        let meta = std::fs::metadata(&paths[0]).expect("stat");
        assert_eq!(meta.len(), 1 << 30);
        assert!(meta.blocks() * 512 < 1 << 20, "backing file must be sparse");

        let b = BackingFile::open(&t, "mem1", dir.path()).expect("open");
        b.write_at(4096, b"famfs").expect("write");
        // Re-creating keeps the contents.
        create_backing_files(&t, dir.path()).expect("re-create");
        assert_eq!(b.read_at(4096, 5).expect("read"), b"famfs");
        assert_eq!(b.read_at(0, 4).expect("read"), [0; 4]);
        assert!(matches!(
            b.read_at((1 << 30) - 2, 4),
            Err(Error::BackingOutOfRange { .. })
        ));
        assert!(matches!(
            b.write_at(u64::MAX, b"x"),
            Err(Error::BackingOutOfRange { .. })
        ));
        assert!(matches!(
            BackingFile::open(&t, "mem7", dir.path()),
            Err(Error::UnknownDevice(_))
        ));
    }

    #[test]
    fn larger_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Topology::load_named("default").expect("topology");
        let f = File::create(dir.path().join("mem0.raw")).expect("create");
        f.set_len(2 << 30).expect("set_len");
        let err = create_backing_files(&t, dir.path()).unwrap_err();
        assert!(matches!(err, Error::BackingTooLarge { .. }), "{err}");
    }
}
