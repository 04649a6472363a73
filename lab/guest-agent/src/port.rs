//! Finding and opening the transport.
//!
//! In the guest the virtio-serial port is a char device `/dev/vportNpM`; its
//! name is in `/sys/class/virtio-ports/vportNpM/name`. For tests the agent
//! can instead connect to an existing Unix socket (`--port SOCKET`) or listen
//! on one (`--listen PATH`, emulating QEMU's `server=on` chardev).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub const VIRTIO_PORTS_DIR: &str = "/sys/class/virtio-ports";

/// Device name (e.g. `vport1p1`) of the virtio-serial port called `name`.
pub fn find_port(class_dir: &Path, name: &str) -> Option<String> {
    let entries = std::fs::read_dir(class_dir).ok()?;
    let mut found: Vec<String> = entries
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(e.path().join("name"))
                .is_ok_and(|n| n.trim_matches(|c: char| c.is_whitespace() || c == '\0') == name)
        })
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// Wait until the named port shows up in sysfs and its node in /dev.
pub fn wait_for_named_port(name: &str, timeout: Duration) -> io::Result<PathBuf> {
    let start = Instant::now();
    loop {
        if let Some(dev) = find_port(Path::new(VIRTIO_PORTS_DIR), name) {
            let node = Path::new("/dev").join(dev);
            if node.exists() {
                return Ok(node);
            }
        }
        if start.elapsed() >= timeout {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "virtio-serial port {name:?} not found under {VIRTIO_PORTS_DIR} after {timeout:?}"
                ),
            ));
        }
        std::thread::sleep(PORT_POLL);
    }
}

/// How often the agent looks for its port while the kernel names it (every boot waits here).
const PORT_POLL: Duration = Duration::from_millis(5);

/// Wait for `path` to exist (a device node may appear late).
pub fn wait_for_path(path: &Path, timeout: Duration) -> io::Result<std::fs::Metadata> {
    let start = Instant::now();
    loop {
        match std::fs::metadata(path) {
            Ok(meta) => return Ok(meta),
            Err(e) if e.kind() == io::ErrorKind::NotFound && start.elapsed() < timeout => {
                std::thread::sleep(PORT_POLL);
            }
            Err(e) => return Err(e),
        }
    }
}

/// An opened `--port`.
pub enum Port {
    /// Character device (virtio-serial). Reads return 0 while no host is
    /// connected, so EOF is not the end: use [`RetryOnEof`].
    Device(File),
    /// Connected Unix socket; EOF ends the session.
    Socket(UnixStream),
}

pub fn open_port(path: &Path, timeout: Duration) -> io::Result<Port> {
    let meta = wait_for_path(path, timeout)?;
    if meta.file_type().is_socket() {
        return Ok(Port::Socket(UnixStream::connect(path)?));
    }
    // virtio_console allows a single opener: open once, dup for writing.
    let file = OpenOptions::new().read(true).write(true).open(path)?;
    Ok(Port::Device(file))
}

/// Read adapter for a virtio-serial port: `read` returns 0 whenever the
/// host side is not connected, so poll until data arrives.
pub struct RetryOnEof<R> {
    inner: R,
    interval: Duration,
}

impl<R> RetryOnEof<R> {
    pub fn new(inner: R) -> Self {
        RetryOnEof {
            inner,
            interval: Duration::from_millis(50),
        }
    }
}

impl<R: Read> Read for RetryOnEof<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            match self.inner.read(buf) {
                Ok(0) => std::thread::sleep(self.interval),
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_port_by_name() {
        let dir = tempfile::tempdir().unwrap();
        for (dev, name) in [
            ("vport0p1", "org.qemu.guest_agent.0\n"),
            ("vport1p1", "org.famfs.lab.agent\n"),
            ("vport1p2", ""),
        ] {
            let d = dir.path().join(dev);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("name"), name).unwrap();
        }
        std::fs::create_dir(dir.path().join("vport2p0")).unwrap(); // no name file
        assert_eq!(
            find_port(dir.path(), "org.famfs.lab.agent").as_deref(),
            Some("vport1p1")
        );
        assert_eq!(find_port(dir.path(), "nope"), None);
        assert_eq!(find_port(&dir.path().join("missing"), "x"), None);
    }

    #[test]
    fn retry_on_eof_waits_for_data() {
        struct Flaky(Vec<io::Result<Vec<u8>>>);
        impl Read for Flaky {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                match self.0.pop() {
                    None => Ok(0),
                    Some(Ok(d)) => {
                        buf[..d.len()].copy_from_slice(&d);
                        Ok(d.len())
                    }
                    Some(Err(e)) => Err(e),
                }
            }
        }
        let mut r = RetryOnEof::new(Flaky(vec![Ok(b"ab".to_vec()), Ok(vec![]), Ok(vec![])]));
        r.interval = Duration::from_millis(1);
        let mut buf = [0u8; 8];
        assert_eq!(r.read(&mut buf).unwrap(), 2);
        assert_eq!(&buf[..2], b"ab");
    }

    #[test]
    fn open_port_connects_to_socket_and_opens_files() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(matches!(
            open_port(&sock, Duration::ZERO).unwrap(),
            Port::Socket(_)
        ));
        drop(listener);
        let file = dir.path().join("f");
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            open_port(&file, Duration::ZERO).unwrap(),
            Port::Device(_)
        ));
        assert!(open_port(&dir.path().join("missing"), Duration::from_millis(50)).is_err());
    }
}
