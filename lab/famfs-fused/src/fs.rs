//! The served file system: a fixed tree of directories and files built from a shadow tree.
//! Node ids are indexes (root = 1) and never change; attributes and maps can change (SETATTR).
//! Errors are positive errno values.

use crate::abi::{fattr, Attr, EntryOut, Kstatfs, SetattrIn, DT_DIR, DT_REG};
use famfs_fmap::FileMap;
use famfs_shadow::{resize, Allocator, DaxDevs, ShadowTree};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    pub size: u64,
    /// Type and permission bits.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub atime: (u64, u32),
    pub mtime: (u64, u32),
    pub ctime: (u64, u32),
}

#[derive(Debug)]
pub enum Kind {
    Dir {
        parent: u64,
        children: BTreeMap<Vec<u8>, u64>,
    },
    File {
        map: RwLock<FileMap>,
    },
}

#[derive(Debug)]
pub struct Node {
    pub nodeid: u64,
    /// Path from the root, `/`-separated ("" for the root).
    pub path: String,
    pub kind: Kind,
    attrs: Mutex<Attrs>,
    /// Kernel references (LOOKUP, READDIRPLUS) minus FORGETs; informational.
    pub nlookup: AtomicU64,
}

/// One directory entry as READDIR lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub nodeid: u64,
    pub typ: u32,
}

#[derive(Debug)]
pub struct Fs {
    nodes: Vec<Node>,
    pub daxdevs: DaxDevs,
    alloc: Mutex<Allocator>,
    pub attr_timeout: Duration,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_nanos())
}

impl Fs {
    pub fn from_tree(tree: &ShadowTree, attr_timeout: Duration) -> Fs {
        let t = now();
        let attrs = |size, mode, uid, gid| Attrs {
            size,
            mode,
            uid,
            gid,
            atime: t,
            mtime: t,
            ctime: t,
        };
        let mut b = Builder::default();
        let mut dirs: Vec<_> = tree.dirs.iter().filter(|d| !d.path.is_empty()).collect();
        dirs.sort_by_key(|d| (d.path.matches('/').count(), d.path.clone()));
        let root = tree.dirs.iter().find(|d| d.path.is_empty());
        let (mode, uid, gid) = root
            .map(|r| (r.mode, r.uid, r.gid))
            .unwrap_or((0o755, 0, 0));
        b.add(
            "",
            Kind::Dir {
                parent: 1,
                children: BTreeMap::new(),
            },
            attrs(0, S_IFDIR | mode, uid, gid),
        );
        for d in dirs {
            let parent = b.parent_of(&d.path);
            let kind = Kind::Dir {
                parent,
                children: BTreeMap::new(),
            };
            b.add(&d.path, kind, attrs(0, S_IFDIR | d.mode, d.uid, d.gid));
        }
        let mut alloc = Allocator::new(tree.daxdevs.clone(), 0);
        for f in &tree.files {
            alloc.reserve(&f.map);
            let a = &f.attrs;
            let kind = Kind::File {
                map: RwLock::new(f.map.clone()),
            };
            b.add(&f.path, kind, attrs(a.size, S_IFREG | a.mode, a.uid, a.gid));
        }
        Fs {
            nodes: b.nodes,
            daxdevs: tree.daxdevs.clone(),
            alloc: Mutex::new(alloc),
            attr_timeout,
        }
    }

    pub fn node(&self, nodeid: u64) -> Option<&Node> {
        nodeid
            .checked_sub(1)
            .and_then(|i| self.nodes.get(usize::try_from(i).ok()?))
    }

    /// The node of a tree path (`d/f`, no leading slash; `` for the root).
    pub fn nodeid_of(&self, path: &str) -> Option<u64> {
        self.nodes.iter().find(|n| n.path == path).map(|n| n.nodeid)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<&Node, i32> {
        let p = self.node(parent).ok_or(libc::ENOENT)?;
        let Kind::Dir {
            children,
            parent: pp,
        } = &p.kind
        else {
            return Err(libc::ENOTDIR);
        };
        let id = match name {
            b"." => parent,
            b".." => *pp,
            _ => *children.get(name).ok_or(libc::ENOENT)?,
        };
        self.node(id).ok_or(libc::ENOENT)
    }

    pub fn attrs(&self, n: &Node) -> Attrs {
        *lock(&n.attrs)
    }

    pub fn attr(&self, n: &Node) -> Attr {
        let a = self.attrs(n);
        let nlink = match &n.kind {
            Kind::Dir { children, .. } => {
                2 + children
                    .values()
                    .filter(|c| matches!(self.node(**c).map(|c| &c.kind), Some(Kind::Dir { .. })))
                    .count() as u32
            }
            Kind::File { .. } => 1,
        };
        Attr {
            ino: n.nodeid,
            size: a.size,
            blocks: a.size.div_ceil(512),
            atime: a.atime.0,
            mtime: a.mtime.0,
            ctime: a.ctime.0,
            atimensec: a.atime.1,
            mtimensec: a.mtime.1,
            ctimensec: a.ctime.1,
            mode: a.mode,
            nlink,
            uid: a.uid,
            gid: a.gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The entry for a LOOKUP/READDIRPLUS reply; counts a kernel reference.
    pub fn entry(&self, n: &Node) -> EntryOut {
        n.nlookup.fetch_add(1, Ordering::Relaxed);
        let t = self.attr_timeout;
        EntryOut {
            nodeid: n.nodeid,
            generation: 0,
            entry_valid: t.as_secs(),
            attr_valid: t.as_secs(),
            entry_valid_nsec: t.subsec_nanos(),
            attr_valid_nsec: t.subsec_nanos(),
            attr: self.attr(n),
        }
    }

    pub fn forget(&self, nodeid: u64, n: u64) {
        if let Some(node) = self.node(nodeid) {
            let _ = node
                .nlookup
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(n))
                });
        }
    }

    /// `.`, `..`, then the children in name order.
    pub fn entries(&self, n: &Node) -> Result<Vec<DirEntry>, i32> {
        let Kind::Dir { parent, children } = &n.kind else {
            return Err(libc::ENOTDIR);
        };
        let mut v = vec![
            DirEntry {
                name: b".".to_vec(),
                nodeid: n.nodeid,
                typ: DT_DIR,
            },
            DirEntry {
                name: b"..".to_vec(),
                nodeid: *parent,
                typ: DT_DIR,
            },
        ];
        for (name, id) in children {
            let typ = match self.node(*id).map(|c| &c.kind) {
                Some(Kind::Dir { .. }) => DT_DIR,
                _ => DT_REG,
            };
            v.push(DirEntry {
                name: name.clone(),
                nodeid: *id,
                typ,
            });
        }
        Ok(v)
    }

    pub fn fmap(&self, n: &Node) -> Result<FileMap, i32> {
        match &n.kind {
            Kind::File { map } => Ok(map.read().unwrap_or_else(PoisonError::into_inner).clone()),
            Kind::Dir { .. } => Err(libc::EISDIR),
        }
    }

    /// Apply a SETATTR. A size change is refused with EINVAL unless `allow_resize`; then the map
    /// is truncated or grown ([`famfs_shadow::resize`]). Nothing changes if anything is refused.
    /// open(O_TRUNC) under FUSE_ATOMIC_O_TRUNC: the size change SETATTR would make.
    pub fn truncate(&self, n: &Node, allow_resize: bool) -> Result<(), i32> {
        let s = SetattrIn {
            valid: fattr::SIZE,
            size: 0,
            ..Default::default()
        };
        self.setattr(n, &s, allow_resize)
    }

    pub fn setattr(&self, n: &Node, s: &SetattrIn, allow_resize: bool) -> Result<(), i32> {
        let t = now();
        let mut new_map = None;
        if s.valid & fattr::SIZE != 0 {
            let Kind::File { map } = &n.kind else {
                return Err(libc::EISDIR);
            };
            if !allow_resize {
                return Err(libc::EINVAL);
            }
            let cur = map.read().unwrap_or_else(PoisonError::into_inner).clone();
            let resized = resize(&cur, s.size, &mut lock(&self.alloc)).map_err(|_| libc::ENOSPC)?;
            new_map = Some((map, resized));
        }
        let mut a = lock(&n.attrs);
        if let Some((map, m)) = new_map {
            *map.write().unwrap_or_else(PoisonError::into_inner) = m;
            a.size = s.size;
            a.mtime = t;
        }
        if s.valid & fattr::MODE != 0 {
            a.mode = (a.mode & !0o7777) | (s.mode & 0o7777);
        }
        if s.valid & fattr::KILL_SUIDGID != 0 {
            a.mode &= !0o6000;
        }
        if s.valid & fattr::UID != 0 {
            a.uid = s.uid;
        }
        if s.valid & fattr::GID != 0 {
            a.gid = s.gid;
        }
        if s.valid & fattr::ATIME_NOW != 0 {
            a.atime = t;
        } else if s.valid & fattr::ATIME != 0 {
            a.atime = (s.atime, s.atimensec);
        }
        if s.valid & fattr::MTIME_NOW != 0 {
            a.mtime = t;
        } else if s.valid & fattr::MTIME != 0 {
            a.mtime = (s.mtime, s.mtimensec);
        }
        a.ctime = if s.valid & fattr::CTIME != 0 {
            (s.ctime, s.ctimensec)
        } else {
            t
        };
        Ok(())
    }

    pub fn statfs(&self) -> Kstatfs {
        const BS: u64 = 4096;
        let used: u64 = self
            .nodes
            .iter()
            .filter_map(|n| self.fmap(n).ok())
            .map(|m| m.mapped_size())
            .fold(0, u64::saturating_add);
        let known: u64 = self
            .daxdevs
            .0
            .values()
            .filter_map(|d| d.size)
            .fold(0, u64::saturating_add);
        let total = known.max(used);
        Kstatfs {
            blocks: total / BS,
            bfree: (total - used) / BS,
            bavail: (total - used) / BS,
            files: self.nodes.len() as u64,
            ffree: 0,
            bsize: BS as u32,
            namelen: 255,
            frsize: BS as u32,
            ..Default::default()
        }
    }
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`); `` -> None.
fn split(path: &str) -> Option<(&str, &str)> {
    if path.is_empty() {
        return None;
    }
    Some(path.rsplit_once('/').unwrap_or(("", path)))
}

#[derive(Default)]
struct Builder {
    nodes: Vec<Node>,
    by_path: HashMap<String, u64>,
}

impl Builder {
    fn parent_of(&self, path: &str) -> u64 {
        split(path)
            .and_then(|(p, _)| self.by_path.get(p).copied())
            .unwrap_or(1)
    }

    /// Append a node and link it into its parent directory (parents come first).
    fn add(&mut self, path: &str, kind: Kind, a: Attrs) {
        let nodeid = self.nodes.len() as u64 + 1;
        if let Some((_, name)) = split(path) {
            let parent = self.parent_of(path);
            if let Some(Node {
                kind: Kind::Dir { children, .. },
                ..
            }) = self.nodes.get_mut(parent as usize - 1)
            {
                children.insert(name.as_bytes().to_vec(), nodeid);
            }
        }
        self.by_path.insert(path.to_string(), nodeid);
        self.nodes.push(Node {
            nodeid,
            path: path.to_string(),
            kind,
            attrs: Mutex::new(a),
            nlookup: AtomicU64::new(0),
        });
    }
}
