//! Answering requests: one function per opcode over the [`Fs`], with the stats kept on the way.

use crate::abi::{self, flag, op, InitIn, InitOut};
use crate::fs::{Fs, Node};
use crate::ops::OpsKind;
use crate::register::Registered;
use crate::reply;
use crate::request::{self, Op, Request};
use crate::stats::{InitInfo, Stats};
use famfs_fmap::encode;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use zerocopy::IntoBytes;

#[derive(Debug, Clone)]
pub struct Config {
    pub ops: OpsKind,
    /// Ask for FUSE_DAX_FMAP at INIT (off: `--no-fmap`, a plain FUSE mount).
    pub fmap: bool,
    pub allow_resize: bool,
    /// Negative tests: send this meta_size instead of the ops' own.
    pub meta_size_override: Option<u32>,
    /// Negative tests: append this many zero bytes to every GET_FMAP blob.
    pub blob_extra: usize,
    /// Negative tests and fuzzing: GET_FMAP of file P serves the bytes of `DIR/P`, read at
    /// every request, when that file exists (see [`Server::blob_override`]).
    pub blob_dir: Option<PathBuf>,
    /// Negative tests: claim FUSE_DAX_FMAP at INIT even when the kernel did not offer it.
    pub claim_fmap: bool,
    /// Ask for FUSE_ATOMIC_O_TRUNC: open(O_TRUNC) arrives as OPEN with O_TRUNC, truncated
    /// here (as a size change: refused unless `allow_resize`), instead of as SETATTR.
    pub atomic_o_trunc: bool,
    /// How dax devices are opened for registration (negative tests: read-only).
    pub daxdev_open: crate::register::OpenMode,
    /// Negative tests: misuses of the registration ioctl.
    pub register_abuse: crate::register::Abuse,
    pub max_write: u32,
}

/// What INIT settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    pub minor: u32,
    pub fmap: bool,
}

#[derive(Debug)]
pub struct Server {
    pub fs: Fs,
    pub stats: Stats,
    pub cfg: Config,
    pub negotiated: OnceLock<Result<Negotiated, String>>,
    pub destroyed: AtomicBool,
    /// Set once mounted: registers dax devices on GET_DAXDEV. Unset (unit tests, no kernel):
    /// GET_DAXDEV is answered with the path, as for a kernel without the ioctl.
    pub registrar: OnceLock<crate::register::Registrar>,
    /// Holds GET_FMAP replies while the notify FIFO says so (`hold_fmap`).
    pub fmap_gate: crate::gate::FmapGate,
}

/// Outcome of one message.
type Answer = (Option<Vec<u8>>, Option<i32>);

impl Server {
    pub fn new(fs: Fs, stats: Stats, cfg: Config) -> Server {
        Server {
            fs,
            stats,
            cfg,
            negotiated: OnceLock::new(),
            destroyed: AtomicBool::new(false),
            registrar: OnceLock::new(),
            fmap_gate: Default::default(),
        }
    }

    /// Handle one raw message; the reply to write, if any. Never panics on input.
    pub fn handle(&self, msg: &[u8]) -> Option<Vec<u8>> {
        match request::parse(msg) {
            Ok(req) => {
                let opcode = req.header.opcode;
                let (reply, errno) = self.dispatch(&req);
                self.stats.request(opcode, errno);
                reply
            }
            Err(bad) => {
                eprintln!("famfs-fused: malformed request: {}", bad.error);
                self.stats.malformed();
                // Answer what can be answered, so the caller is not left waiting.
                let h = bad.header?;
                let no_reply = [
                    op::FORGET,
                    op::BATCH_FORGET,
                    op::INTERRUPT,
                    op::NOTIFY_REPLY,
                ];
                (!no_reply.contains(&h.opcode)).then(|| reply::error(h.unique, libc::EIO))
            }
        }
    }

    fn dispatch(&self, req: &Request<'_>) -> Answer {
        let u = req.header.unique;
        let id = req.header.nodeid;
        let res: Result<Vec<u8>, i32> = match &req.op {
            Op::Init(i) => return self.init(u, i),
            Op::Forget(f) => {
                self.fs.forget(id, f.nlookup);
                return (None, None);
            }
            Op::BatchForget(v) => {
                v.iter().for_each(|f| self.fs.forget(f.nodeid, f.nlookup));
                return (None, None);
            }
            Op::Interrupt(_) | Op::NotifyReply => return (None, None),
            Op::Destroy => {
                self.destroyed.store(true, Ordering::SeqCst);
                Ok(reply::ok(u, &[]))
            }
            Op::Lookup { name } => self
                .fs
                .lookup(id, name)
                .map(|n| reply::of(u, &self.fs.entry(n))),
            Op::Getattr(_) => self.node(id).map(|n| reply::of(u, &self.attr_out(n))),
            Op::Setattr(s) => self.node(id).and_then(|n| {
                self.fs.setattr(n, s, self.cfg.allow_resize)?;
                Ok(reply::of(u, &self.attr_out(n)))
            }),
            Op::Open(o) => self.node(id).and_then(|n| {
                self.fs.fmap(n)?;
                if self.cfg.atomic_o_trunc && o.flags & libc::O_TRUNC as u32 != 0 {
                    self.fs.truncate(n, self.cfg.allow_resize)?;
                }
                Ok(reply::of(u, &abi::OpenOut::default()))
            }),
            Op::Opendir(_) => self.node(id).and_then(|n| {
                self.fs.entries(n)?;
                Ok(reply::of(u, &abi::OpenOut::default()))
            }),
            Op::Release(_) | Op::Releasedir(_) | Op::Flush(_) | Op::Access(_) => {
                self.node(id).map(|_| reply::ok(u, &[]))
            }
            Op::Readdir(r) => self.node(id).and_then(|n| self.readdir(u, n, r, false)),
            Op::Readdirplus(r) => self.node(id).and_then(|n| self.readdir(u, n, r, true)),
            Op::Statfs => Ok(reply::of(u, &self.fs.statfs())),
            Op::GetFmap => self.node(id).and_then(|n| self.get_fmap(u, n)),
            Op::GetDaxdev(d) => self.get_daxdev(u, d.index),
            Op::Unknown => Err(libc::ENOSYS),
        };
        match res {
            Ok(r) => (Some(r), None),
            Err(e) => (Some(reply::error(u, e)), Some(e)),
        }
    }

    fn node(&self, id: u64) -> Result<&Node, i32> {
        self.fs.node(id).ok_or(libc::ENOENT)
    }

    fn attr_out(&self, n: &Node) -> abi::AttrOut {
        let t = self.fs.attr_timeout;
        let mut attr = self.fs.attr(n);
        if let Some(size) = self.size_override(n) {
            attr.size = size;
            attr.blocks = size.div_ceil(512);
        }
        abi::AttrOut {
            attr_valid: t.as_secs(),
            attr_valid_nsec: t.subsec_nanos(),
            dummy: 0,
            attr,
        }
    }

    /// `--blob-dir`: the size in DIR/PATH.size (decimal), when it exists, is what GETATTR
    /// reports for file PATH: a server that changes a file's size without a new fmap, a
    /// SETATTR or an invalidation. An unreadable or malformed file is ignored, and said once.
    fn size_override(&self, n: &Node) -> Option<u64> {
        let dir = self.cfg.blob_dir.as_ref()?;
        let path = dir.join(format!("{}.size", n.path));
        let text = std::fs::read_to_string(&path).ok()?;
        match text.trim().parse() {
            Ok(size) => Some(size),
            Err(e) => {
                eprintln!("famfs-fused: {}: not a size ({e}): ignored", path.display());
                None
            }
        }
    }

    fn init(&self, u: u64, i: &InitIn) -> Answer {
        let fail = |why: String, errno: i32| {
            eprintln!("famfs-fused: INIT refused: {why}");
            let _ = self.negotiated.set(Err(why));
            (Some(reply::error(u, errno)), Some(errno))
        };
        if i.major != abi::FUSE_KERNEL_VERSION {
            return fail(
                format!(
                    "kernel speaks FUSE {}.{}, this server 7.x",
                    i.major, i.minor
                ),
                libc::EPROTO,
            );
        }
        let mut offered = u64::from(i.flags);
        if offered & flag::INIT_EXT != 0 {
            offered |= u64::from(i.flags2) << 32;
        }
        let minor = i.minor.min(abi::FUSE_KERNEL_MINOR_VERSION);
        let fmap = self.cfg.fmap;
        if fmap
            && !self.cfg.claim_fmap
            && (offered & flag::DAX_FMAP == 0 || i.minor < abi::FUSE_KERNEL_MINOR_VERSION)
        {
            let why = format!(
                "kernel FUSE 7.{} does not offer FUSE_DAX_FMAP (flags2 {:#x}): not the famfs-bpf kernel, \
                 the mounter lacks CAP_SYS_RAWIO, or a fuseblk mount (use --no-fmap for a plain FUSE mount)",
                i.minor, i.flags2
            );
            return fail(why, libc::EPROTO);
        }
        let want = flag::ASYNC_READ
            | flag::BIG_WRITES
            | flag::DO_READDIRPLUS
            | flag::READDIRPLUS_AUTO
            | flag::PARALLEL_DIROPS
            | flag::MAX_PAGES
            | flag::INIT_EXT
            | if fmap { flag::DAX_FMAP } else { 0 }
            | if self.cfg.atomic_o_trunc {
                flag::ATOMIC_O_TRUNC
            } else {
                0
            };
        let mut flags = want & offered;
        if fmap && self.cfg.claim_fmap {
            // negative tests: claimed whether or not the kernel offered it
            flags |= flag::DAX_FMAP | flag::INIT_EXT;
        }
        let mut out = InitOut {
            major: abi::FUSE_KERNEL_VERSION,
            minor,
            max_readahead: i.max_readahead,
            flags: flags as u32,
            max_background: 16,
            congestion_threshold: 12,
            max_write: self.cfg.max_write,
            time_gran: 1,
            max_pages: (self.cfg.max_write / 4096) as u16,
            flags2: (flags >> 32) as u32,
            ..Default::default()
        };
        if fmap {
            let name = self.cfg.ops.name().as_bytes();
            out.dax_fmap_ops[..name.len()].copy_from_slice(name);
        }
        let info = InitInfo {
            major: i.major,
            minor: i.minor,
            flags: i.flags,
            flags2: i.flags2,
            fmap,
            ops: if fmap {
                self.cfg.ops.name().to_string()
            } else {
                String::new()
            },
        };
        self.stats.init(info);
        let _ = self.negotiated.set(Ok(Negotiated { minor, fmap }));
        // 7.22 and older kernels expect a shorter reply; 7.23+ take the whole struct.
        let len = if i.minor < 23 {
            24
        } else {
            size_of::<InitOut>()
        };
        (Some(reply::ok(u, &[&out.as_bytes()[..len]])), None)
    }

    fn readdir(&self, u: u64, n: &Node, r: &abi::ReadIn, plus: bool) -> Result<Vec<u8>, i32> {
        let entries = self.fs.entries(n)?;
        let mut buf: Vec<u8> = Vec::new();
        let max = r.size as usize;
        let start = usize::try_from(r.offset).unwrap_or(usize::MAX);
        for (i, e) in entries.iter().enumerate().skip(start) {
            let head = size_of::<abi::Dirent>() + if plus { size_of::<abi::EntryOut>() } else { 0 };
            let rec = abi::rec_align(head + e.name.len());
            if buf.len() + rec > max {
                break;
            }
            let start_len = buf.len();
            if plus {
                let entry = if e.name == b"." || e.name == b".." {
                    abi::EntryOut::default()
                } else {
                    self.fs
                        .node(e.nodeid)
                        .map(|c| self.fs.entry(c))
                        .unwrap_or_default()
                };
                buf.extend_from_slice(entry.as_bytes());
            }
            let d = abi::Dirent {
                ino: e.nodeid,
                off: i as u64 + 1,
                namelen: e.name.len() as u32,
                typ: e.typ,
            };
            buf.extend_from_slice(d.as_bytes());
            buf.extend_from_slice(&e.name);
            buf.resize(start_len + rec, 0);
        }
        Ok(reply::ok(u, &[&buf]))
    }

    /// `--blob-dir`: the blob stored for `n` and the meta size to send with it. The meta size
    /// is `--meta-size` if given, else the ops' size for the blob's map when it decodes, else
    /// the largest any famfs blob needs (so that only the blob's own defect fails the parse).
    pub fn blob_override(&self, n: &Node) -> Option<(Vec<u8>, u32)> {
        let dir = self.cfg.blob_dir.as_ref()?;
        let blob = std::fs::read(dir.join(&n.path)).ok()?;
        let meta_size = match famfs_fmap::decode(&blob) {
            Ok(map) => self.cfg.ops.meta_size(&map),
            Err(_) => self.cfg.ops.max_meta_size(),
        };
        Some((blob, meta_size))
    }

    fn get_fmap(&self, u: u64, n: &Node) -> Result<Vec<u8>, i32> {
        let map = self.fs.fmap(n).map_err(|_| libc::EINVAL)?;
        self.stats.get_fmap(n.nodeid, &n.path);
        if !self.fmap_gate.pass(crate::gate::MAX_HOLD) {
            eprintln!(
                "famfs-fused: GET_FMAP of {} held for {:?} without release_fmap: answered",
                n.path,
                crate::gate::MAX_HOLD
            );
        }
        let (mut blob, ops_meta) = self
            .blob_override(n)
            .unwrap_or_else(|| (encode(&map), self.cfg.ops.meta_size(&map)));
        blob.resize(blob.len() + self.cfg.blob_extra, 0);
        let meta_size = self.cfg.meta_size_override.unwrap_or(ops_meta);
        let head = abi::GetFmapOut {
            meta_size,
            flags: 0,
            reserved: 0,
        };
        Ok(reply::ok(u, &[head.as_bytes(), &blob]))
    }

    fn get_daxdev(&self, u: u64, index: u32) -> Result<Vec<u8>, i32> {
        self.stats.get_daxdev(index);
        let dev = self.fs.daxdevs.get(index).ok_or(libc::ENODEV)?;
        if let Some(r) = self.registrar.get() {
            let abuse = &self.cfg.register_abuse;
            if abuse.reply_only {
                self.stats.probe(format!("reply-only:{index}"), 0);
                return Ok(reply::ok(u, &[]));
            }
            let res = match r.register(index, &dev.path) {
                // filled already (by this server, racing with itself): what the kernel needs
                Err(libc::EEXIST) => Ok(Registered::Yes),
                res => res,
            };
            self.stats.registered(index, res.err().unwrap_or(0));
            if res? == Registered::Yes {
                if abuse.twice {
                    let again = Registered::errno(r.register(index, &dev.path));
                    self.stats.probe(format!("again:{index}"), again);
                }
                for &bad in &abuse.bad_index {
                    let res = Registered::errno(r.register(bad, &dev.path));
                    self.stats.probe(format!("index:{bad}"), res);
                }
                return Ok(reply::ok(u, &[]));
            }
        }
        // No registrar, or a kernel without the ioctl: the path, as the v1 series wants it.
        let mut out = abi::GetDaxdevOut {
            name: [0; abi::DAXDEV_NAME_LEN],
        };
        let p = dev.path.as_bytes();
        if p.len() >= out.name.len() {
            return Err(libc::ENAMETOOLONG);
        }
        out.name[..p.len()].copy_from_slice(p);
        Ok(reply::of(u, &out))
    }
}
