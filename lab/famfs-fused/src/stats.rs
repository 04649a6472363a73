//! Per-opcode counters, written as JSON to `--stats FILE`: rewritten atomically (temp file +
//! rename) after every request, before its reply is sent, so when a system call on the mount
//! returns, the file already counts the requests it caused. SIGUSR1 rewrites it too.
//!
//! ```json
//! {
//!   "version": 1, "pid": 1234, "ops": "famfs", "fmap": true,
//!   "init": {"major": 7, "minor": 47, "flags": 0, "flags2": 0, "fmap": true, "ops": "famfs"},
//!   "requests": 42, "malformed": 0,
//!   "opcodes": {"LOOKUP": 3, "GET_FMAP": 1, "OPCODE_99": 1},
//!   "errors": {"LOOKUP": 1},
//!   "get_fmap": {"by_nodeid": {"5": 1}, "by_path": {"dir/file": 1}},
//!   "get_daxdev": {"by_index": {"0": 1}},
//!   "register": {"0": 0},
//!   "release_replied": 0
//! }
//! ```
//! `errors` counts error replies per opcode; `by_path` paths are relative to the mount point.
//! Every named opcode (in `opcodes` and `errors`), every file of the tree (`by_path`) and every
//! slot of `daxdevs.yaml` (`by_index`) is there from the start, at 0 ([`Stats::seed`]): a
//! reader can tell a count of 0 from a key that is wrong (a typo, a path the tree does not
//! have), which must not read as 0. `register` is the result of the last
//! FUSE_DEV_IOC_DAX_REGISTER per slot (0, or the errno of the open or the ioctl), present only
//! for slots the server tried to register. `probes` holds the results of negative tests'
//! misuses of the ioctl (famfs-fused `--register-*`), e.g. `{"again:0": 17}`.

use crate::abi::op;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct InitInfo {
    pub major: u32,
    pub minor: u32,
    pub flags: u32,
    pub flags2: u32,
    pub fmap: bool,
    pub ops: String,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ByNodeid {
    pub by_nodeid: BTreeMap<u64, u64>,
    pub by_path: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ByIndex {
    pub by_index: BTreeMap<u32, u64>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Snapshot {
    pub version: u32,
    pub pid: u32,
    pub ops: String,
    pub fmap: bool,
    pub init: Option<InitInfo>,
    pub requests: u64,
    pub malformed: u64,
    pub opcodes: BTreeMap<String, u64>,
    pub errors: BTreeMap<String, u64>,
    pub get_fmap: ByNodeid,
    pub get_daxdev: ByIndex,
    pub register: BTreeMap<u32, i32>,
    /// Negative tests: results of misused registrations (`again:0`, `index:24`, ...).
    pub probes: BTreeMap<String, i32>,
    /// RELEASE replies written to /dev/fuse, counted after the write (the opcode counts come
    /// before the reply): once it reaches the OPEN count, the kernel has run every
    /// release's end and dropped the inode references the releases held.
    pub release_replied: u64,
}

#[derive(Debug)]
pub struct Stats {
    path: Option<PathBuf>,
    data: Mutex<Snapshot>,
}

fn key(opcode: u32) -> String {
    op::name(opcode)
        .map(str::to_string)
        .unwrap_or_else(|| format!("OPCODE_{opcode}"))
}

impl Stats {
    pub fn new(path: Option<PathBuf>, ops: &str, fmap: bool) -> Stats {
        let s = Snapshot {
            version: 1,
            pid: std::process::id(),
            ops: ops.to_string(),
            fmap,
            ..Default::default()
        };
        Stats {
            path,
            data: Mutex::new(s),
        }
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut d = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut d);
        self.write_locked(&d);
    }

    /// One request handled; `errno` when it was answered with an error.
    pub fn request(&self, opcode: u32, errno: Option<i32>) {
        self.update(|d| {
            d.requests += 1;
            *d.opcodes.entry(key(opcode)).or_default() += 1;
            if errno.is_some() {
                *d.errors.entry(key(opcode)).or_default() += 1;
            }
        });
    }

    pub fn release_replied(&self) {
        self.update(|d| d.release_replied += 1);
    }

    /// Counters at 0 for every named opcode, every file path of the tree and every slot.
    pub fn seed(
        &self,
        paths: impl IntoIterator<Item = String>,
        slots: impl IntoIterator<Item = u32>,
    ) {
        self.update(|d| {
            for name in (0..=u8::MAX as u32).filter_map(op::name) {
                d.opcodes.entry(name.to_string()).or_default();
                d.errors.entry(name.to_string()).or_default();
            }
            for p in paths {
                d.get_fmap.by_path.entry(p).or_default();
            }
            for i in slots {
                d.get_daxdev.by_index.entry(i).or_default();
            }
        });
    }

    pub fn malformed(&self) {
        self.update(|d| d.malformed += 1);
    }

    pub fn get_fmap(&self, nodeid: u64, path: &str) {
        self.update(|d| {
            *d.get_fmap.by_nodeid.entry(nodeid).or_default() += 1;
            *d.get_fmap.by_path.entry(path.to_string()).or_default() += 1;
        });
    }

    pub fn get_daxdev(&self, index: u32) {
        self.update(|d| *d.get_daxdev.by_index.entry(index).or_default() += 1);
    }

    /// The result of registering slot `index` (0 or an errno).
    pub fn registered(&self, index: u32, errno: i32) {
        self.update(|d| {
            d.register.insert(index, errno);
        });
    }

    /// The result of a misused registration (negative tests), under `probes`.
    pub fn probe(&self, what: String, errno: i32) {
        self.update(|d| {
            d.probes.insert(what, errno);
        });
    }

    pub fn init(&self, info: InitInfo) {
        self.update(|d| d.init = Some(info));
    }

    pub fn snapshot(&self) -> Snapshot {
        self.data
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Rewrite the file now (SIGUSR1).
    pub fn flush(&self) {
        let d = self.data.lock().unwrap_or_else(PoisonError::into_inner);
        self.write_locked(&d);
    }

    fn write_locked(&self, d: &Snapshot) {
        let Some(path) = &self.path else { return };
        let mut tmp = path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let text = serde_json::to_string_pretty(d).unwrap_or_default();
        let res = std::fs::write(&tmp, text + "\n").and_then(|_| std::fs::rename(&tmp, path));
        if let Err(e) = res {
            eprintln!("famfs-fused: writing stats {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeded_keys_are_zero_and_counting_goes_on_from_there() {
        let s = Stats::new(None, "famfs", true);
        s.seed(["d/a".to_string(), "b".to_string()], [0, 3]);
        let d = s.snapshot();
        assert_eq!(d.opcodes.get("GET_FMAP"), Some(&0));
        assert_eq!(d.errors.get("OPEN"), Some(&0));
        assert_eq!(d.get_fmap.by_path.get("d/a"), Some(&0));
        assert_eq!(d.get_daxdev.by_index.get(&3), Some(&0));
        assert_eq!(d.get_daxdev.by_index.get(&1), None);
        s.get_fmap(5, "b");
        s.request(op::GET_FMAP, Some(libc::EIO));
        let d = s.snapshot();
        assert_eq!(d.get_fmap.by_path.get("b"), Some(&1));
        assert_eq!(d.opcodes.get("GET_FMAP"), Some(&1));
        assert_eq!(d.errors.get("GET_FMAP"), Some(&1));
    }
}
