//! The kernel side of the connection: open /dev/fuse, mount, clone one fd per worker
//! (FUSE_DEV_IOC_CLONE), run one read loop per worker thread so no request waits for another,
//! and stop on SIGINT/SIGTERM/SIGHUP (SIGUSR1 rewrites the stats file).

use crate::dispatch::Server;
use anyhow::{bail, Context};
use nix::mount::{MntFlags, MsFlags};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct MountSpec {
    pub mountpoint: PathBuf,
    /// `fuse.famfs`.
    pub fstype: String,
    /// The mount's source, shown in /proc/mounts.
    pub source: String,
    /// Appended to the mount data (comma-separated), e.g. `max_read=131072`.
    pub extra: Option<String>,
}

impl MountSpec {
    /// The mount(2) data string for `fd`.
    pub fn data(&self, fd: i32) -> String {
        let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
        let mut d = format!(
            "fd={fd},rootmode=40000,user_id={uid},group_id={gid},default_permissions,allow_other"
        );
        if let Some(x) = self.extra.as_deref().filter(|x| !x.is_empty()) {
            d.push(',');
            d.push_str(x);
        }
        d
    }
}

pub fn open_dev() -> anyhow::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .context("opening /dev/fuse")
}

pub fn mount(dev: &File, spec: &MountSpec) -> anyhow::Result<()> {
    let data = spec.data(dev.as_raw_fd());
    nix::mount::mount(
        Some(spec.source.as_str()),
        &spec.mountpoint,
        Some(spec.fstype.as_str()),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some(data.as_str()),
    )
    .with_context(|| {
        format!(
            "mount -t {} -o {data} {}",
            spec.fstype,
            spec.mountpoint.display()
        )
    })
}

nix::ioctl_read!(fuse_dev_ioc_clone, 229, 0, u32);

/// A new /dev/fuse fd attached to the same connection as `dev`.
pub fn clone_dev(dev: &File) -> anyhow::Result<File> {
    let new = open_dev()?;
    let mut src = u32::try_from(dev.as_raw_fd()).context("fd is negative")?;
    // SAFETY: FUSE_DEV_IOC_CLONE reads one u32 (the fd to clone) from the pointer, which is valid
    // for the call; `new` is an open /dev/fuse fd.
    unsafe { fuse_dev_ioc_clone(new.as_raw_fd(), &mut src) }.context("FUSE_DEV_IOC_CLONE")?;
    Ok(new)
}

/// Read requests from `dev` and answer them until the connection goes away.
fn worker(server: &Server, dev: File, bufsize: usize) {
    let mut buf = vec![0u8; bufsize];
    let mut dev = dev;
    loop {
        let n = match dev.read(&mut buf) {
            Ok(n) => n,
            Err(e) => match e.raw_os_error() {
                // interrupted, or the request was aborted before we read it
                Some(libc::EINTR) | Some(libc::EAGAIN) | Some(libc::ENOENT) => continue,
                // unmounted / connection aborted
                Some(libc::ENODEV) => return,
                _ => {
                    eprintln!("famfs-fused: reading /dev/fuse: {e}");
                    return;
                }
            },
        };
        let Some(msg) = buf.get(..n) else { continue };
        // fuse_in_header: len, then opcode.
        let release = msg.get(4..8) == Some(&crate::abi::op::RELEASE.to_le_bytes()[..]);
        if let Some(reply) = server.handle(msg) {
            match dev.write(&reply) {
                Ok(_) if release => server.stats.release_replied(),
                Ok(_) => {}
                // ENOENT: the request was interrupted meanwhile; nothing to do (a release's
                // end is over all the same).
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                    if release {
                        server.stats.release_replied();
                    }
                }
                Err(e) => eprintln!("famfs-fused: writing reply: {e}"),
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub threads: usize,
    /// Touched (with one line of facts) once the mount answers.
    pub ready_file: Option<PathBuf>,
    /// `--notify-fifo` and `--notify-log`: notifications sent on command (see `notify`).
    pub notify: Option<(PathBuf, PathBuf)>,
    /// Negative tests: serve without CAP_SYS_RAWIO, dropped right after the mount.
    pub drop_rawio: bool,
}

/// Mount, serve until a stop signal or an external unmount, unmount. Errors if the kernel
/// refused INIT.
pub fn run(server: Arc<Server>, spec: &MountSpec, opts: &RunOptions) -> anyhow::Result<()> {
    let mut mask = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGUSR1,
    ] {
        mask.add(s);
    }
    // Blocked here, so every worker thread inherits it: only the signalfd sees them.
    mask.thread_block().context("blocking signals")?;
    let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("signalfd")?;

    let dev = open_dev()?;
    mount(&dev, spec)?;
    let mounted = Mounted(spec.mountpoint.clone());
    if opts.drop_rawio {
        crate::register::drop_rawio()?;
    }
    let registrar = crate::register::Registrar::new(
        dev.try_clone().context("duplicating the /dev/fuse fd")?,
        server.cfg.daxdev_open,
    );
    if server.registrar.set(registrar).is_err() {
        anyhow::bail!("the server was run twice");
    }
    let bufsize = server.cfg.max_write as usize + (64 << 10);
    let alive = Arc::new(AtomicUsize::new(0));
    let mut devs = Vec::with_capacity(opts.threads.max(1));
    for _ in 1..opts.threads.max(1) {
        devs.push(clone_dev(&dev)?);
    }
    if let Some((fifo, log)) = &opts.notify {
        crate::notify::spawn(server.clone(), fifo.clone(), log.clone(), clone_dev(&dev)?)?;
    }
    devs.push(dev);
    let mut handles = Vec::new();
    for (i, d) in devs.into_iter().enumerate() {
        let (server, alive) = (server.clone(), alive.clone());
        alive.fetch_add(1, Ordering::SeqCst);
        let h = std::thread::Builder::new()
            .name(format!("fuse-{i}"))
            .spawn(move || {
                worker(&server, d, bufsize);
                alive.fetch_sub(1, Ordering::SeqCst);
            })?;
        handles.push(h);
    }

    let ready = probe(&server, spec, opts);
    if let Err(e) = &ready {
        eprintln!("famfs-fused: {e:#}");
    }
    let mut stopping = ready.is_err();
    let mut deadline: Option<Instant> = None;
    while alive.load(Ordering::SeqCst) > 0 {
        if stopping && deadline.is_none() {
            mounted.unmount();
            deadline = Some(Instant::now() + Duration::from_secs(3));
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            eprintln!("famfs-fused: workers still busy after unmount (files held open?); aborting the connection");
            if let Ok(dev) = &ready {
                abort_connection(*dev);
            }
            break;
        }
        let mut fds = [nix::poll::PollFd::new(
            sfd.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, 200u16);
        while let Ok(Some(si)) = sfd.read_signal() {
            match Signal::try_from(si.ssi_signo as i32) {
                Ok(Signal::SIGUSR1) => server.stats.flush(),
                Ok(_) => stopping = true,
                Err(_) => {}
            }
        }
    }
    drop(mounted);
    if server.cfg.register_abuse.after_unmount {
        register_after_unmount(&server);
    }
    for h in handles {
        if h.is_finished() {
            let _ = h.join();
        }
    }
    ready.map(|_| ())
}

/// Negative tests: register slot 0 again once unmounted. Until the kernel has evicted the
/// last inode the slot is still filled (EEXIST); then the devices are released and a new
/// registration must be refused (ENOTCONN). The last answer goes to the stats.
fn register_after_unmount(server: &Server) {
    let (Some(r), Some(dev)) = (server.registrar.get(), server.fs.daxdevs.get(0)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let result = loop {
        let res = crate::register::Registered::errno(r.register(0, &dev.path));
        if res != libc::EEXIST || Instant::now() > deadline {
            break res;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    server.stats.probe("after-unmount:0".into(), result);
}

/// Wait for INIT, then stat the root through the mount: a kernel that rejected our INIT reply
/// (say, ops not registered) answers ECONNREFUSED here. Returns the mount's device number.
fn probe(server: &Server, spec: &MountSpec, opts: &RunOptions) -> anyhow::Result<u64> {
    let t0 = Instant::now();
    let neg = loop {
        if let Some(n) = server.negotiated.get() {
            break n.clone();
        }
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("no INIT from the kernel within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let neg = neg.map_err(|why| anyhow::anyhow!("INIT refused: {why}"))?;
    let md = std::fs::metadata(&spec.mountpoint).with_context(|| {
        format!(
            "the kernel refused our INIT reply (fmap ops {:?}: registered? see dmesg)",
            server.cfg.ops.name()
        )
    })?;
    let what = if neg.fmap {
        format!("fmap ops {}", server.cfg.ops.name())
    } else {
        "no fmap".to_string()
    };
    let line = format!(
        "mounted {} FUSE 7.{} {what} pid {}",
        spec.mountpoint.display(),
        neg.minor,
        std::process::id()
    );
    eprintln!("famfs-fused: {line}");
    if let Some(p) = &opts.ready_file {
        std::fs::write(p, line + "\n").with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(md.dev())
}

/// Abort the connection through fusectl (`/sys/fs/fuse/connections/<dev>/abort`).
fn abort_connection(dev: u64) {
    let minor = nix::sys::stat::minor(dev);
    let p = format!("/sys/fs/fuse/connections/{minor}/abort");
    if let Err(e) = std::fs::write(&p, "1") {
        eprintln!("famfs-fused: {p}: {e}");
    }
}

/// Unmounts (lazily) when dropped, once.
struct Mounted(PathBuf);

impl Mounted {
    fn unmount(&self) {
        match nix::mount::umount2(&self.0, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => eprintln!("famfs-fused: umount {}: {e}", self.0.display()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        self.unmount();
    }
}
