//! Notifications the server sends on its own, for the cases that check what the kernel does
//! with them on fmap inodes (`--notify-fifo FIFO --notify-log FILE`).
//!
//! Each line written to the FIFO is one command on a path of the tree:
//!
//! ```text
//! inval_inode PATH OFF LEN     FUSE_NOTIFY_INVAL_INODE (LEN 0: to the end; OFF -1: attributes only)
//! store PATH OFF LEN BYTE      FUSE_NOTIFY_STORE of LEN bytes of value BYTE (0-255) at OFF
//! retrieve PATH OFF LEN        FUSE_NOTIFY_RETRIEVE of LEN bytes at OFF (the kernel answers
//!                              with a NOTIFY_REPLY request, counted in the stats)
//! hold_fmap                    hold every GET_FMAP reply (counted on arrival) until ...
//! release_fmap                 ... this, or crate::gate::MAX_HOLD
//! ```
//!
//! The result of each command's write(2) to /dev/fuse is appended to the log as
//! `LINE: ok`, `LINE: errno N` or `LINE: bad command: WHY`.

use crate::dispatch::Server;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// `fuse_notify_code` values.
pub mod code {
    pub const INVAL_INODE: i32 = 2;
    pub const STORE: i32 = 4;
    pub const RETRIEVE: i32 = 5;
}

/// The most a store may carry (the kernel's limit is the connection's max_write).
pub const MAX_STORE: u32 = 1 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notify {
    InvalInode {
        path: String,
        off: i64,
        len: i64,
    },
    Store {
        path: String,
        off: u64,
        len: u32,
        byte: u8,
    },
    Retrieve {
        path: String,
        off: u64,
        len: u32,
    },
}

fn num<T: std::str::FromStr>(what: &str, s: Option<&str>) -> Result<T, String> {
    let s = s.ok_or_else(|| format!("missing {what}"))?;
    s.parse()
        .map_err(|_| format!("{what} {s:?} is not a number"))
}

impl Notify {
    pub fn parse(line: &str) -> Result<Notify, String> {
        let mut w = line.split_whitespace();
        let verb = w.next().ok_or("empty line")?;
        let path = w
            .next()
            .ok_or("missing PATH")?
            .trim_start_matches('/')
            .to_string();
        let n = match verb {
            "inval_inode" => Notify::InvalInode {
                path,
                off: num("OFF", w.next())?,
                len: num("LEN", w.next())?,
            },
            "store" => {
                let (off, len, byte) = (
                    num("OFF", w.next())?,
                    num::<u32>("LEN", w.next())?,
                    num("BYTE", w.next())?,
                );
                if len > MAX_STORE {
                    return Err(format!("LEN {len} is over {MAX_STORE}"));
                }
                Notify::Store {
                    path,
                    off,
                    len,
                    byte,
                }
            }
            "retrieve" => Notify::Retrieve {
                path,
                off: num("OFF", w.next())?,
                len: num("LEN", w.next())?,
            },
            other => {
                return Err(format!(
                    "unknown command {other:?} (inval_inode, store, retrieve, hold_fmap, \
                     release_fmap)"
                ))
            }
        };
        match w.next() {
            Some(extra) => Err(format!("unexpected {extra:?} at the end")),
            None => Ok(n),
        }
    }

    pub fn path(&self) -> &str {
        match self {
            Notify::InvalInode { path, .. }
            | Notify::Store { path, .. }
            | Notify::Retrieve { path, .. } => path,
        }
    }

    /// The message for /dev/fuse: `fuse_out_header` (unique 0, error = the notify code),
    /// then the code's struct (and a store's data).
    pub fn encode(&self, nodeid: u64, notify_unique: u64) -> Vec<u8> {
        let mut body = Vec::new();
        let code = match self {
            Notify::InvalInode { off, len, .. } => {
                body.extend(nodeid.to_le_bytes());
                body.extend(off.to_le_bytes());
                body.extend(len.to_le_bytes());
                code::INVAL_INODE
            }
            Notify::Store { off, len, byte, .. } => {
                body.extend(nodeid.to_le_bytes());
                body.extend(off.to_le_bytes());
                body.extend(len.to_le_bytes());
                body.extend(0u32.to_le_bytes());
                body.extend(std::iter::repeat_n(*byte, *len as usize));
                code::STORE
            }
            Notify::Retrieve { off, len, .. } => {
                body.extend(notify_unique.to_le_bytes());
                body.extend(nodeid.to_le_bytes());
                body.extend(off.to_le_bytes());
                body.extend(len.to_le_bytes());
                body.extend(0u32.to_le_bytes());
                code::RETRIEVE
            }
        };
        let total = (16 + body.len()) as u32;
        let mut msg = Vec::with_capacity(total as usize);
        msg.extend(total.to_le_bytes());
        msg.extend(code.to_le_bytes());
        msg.extend(0u64.to_le_bytes());
        msg.extend(body);
        msg
    }
}

/// Runs one command: the message's write(2) result, as the log's text.
fn execute(server: &Server, dev: &mut File, line: &str, unique: &AtomicU64) -> String {
    match line.trim() {
        "hold_fmap" => {
            server.fmap_gate.hold();
            return "ok".to_string();
        }
        "release_fmap" => {
            server.fmap_gate.release();
            return "ok".to_string();
        }
        _ => {}
    }
    let n = match Notify::parse(line) {
        Ok(n) => n,
        Err(why) => return format!("bad command: {why}"),
    };
    let Some(nodeid) = server.fs.nodeid_of(n.path()) else {
        return format!("bad command: no {:?} in the tree", n.path());
    };
    let msg = n.encode(nodeid, unique.fetch_add(1, Ordering::SeqCst));
    // /dev/fuse takes a message whole or not at all.
    match dev.write(&msg) {
        Ok(n) if n == msg.len() => "ok".to_string(),
        Ok(n) => format!("short write: {n} of {} bytes", msg.len()),
        Err(e) => format!("errno {}", e.raw_os_error().unwrap_or(0)),
    }
}

fn append(log: &Path, line: &str) {
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .and_then(|mut f| writeln!(f, "{line}"));
    if let Err(e) = written {
        eprintln!("famfs-fused: {}: {e}", log.display());
    }
}

/// Serves the FIFO on its own thread until the process ends. `dev` is a /dev/fuse fd of the
/// connection (a clone).
pub fn spawn(
    server: Arc<Server>,
    fifo: PathBuf,
    log: PathBuf,
    mut dev: File,
) -> anyhow::Result<()> {
    use anyhow::Context;
    // Read-write: the open never waits for a writer and reads never see EOF between writers.
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .with_context(|| format!("opening the notify FIFO {}", fifo.display()))?;
    std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            let unique = AtomicU64::new(1);
            for line in BufReader::new(f).lines() {
                let Ok(line) = line else { break };
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let result = execute(&server, &mut dev, line, &unique);
                append(&log, &format!("{line}: {result}"));
            }
        })
        .context("starting the notify thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_and_encode_as_the_kernel_reads_them() {
        let inval = Notify::parse("inval_inode /d/f 0 -1").expect("valid");
        assert_eq!(
            inval,
            Notify::InvalInode {
                path: "d/f".into(),
                off: 0,
                len: -1
            }
        );
        let m = inval.encode(7, 0);
        assert_eq!(m.len(), 16 + 24);
        assert_eq!(u32::from_le_bytes(m[0..4].try_into().unwrap()), 40);
        assert_eq!(
            i32::from_le_bytes(m[4..8].try_into().unwrap()),
            code::INVAL_INODE
        );
        assert_eq!(
            u64::from_le_bytes(m[8..16].try_into().unwrap()),
            0,
            "unique 0"
        );
        assert_eq!(u64::from_le_bytes(m[16..24].try_into().unwrap()), 7);
        assert_eq!(i64::from_le_bytes(m[32..40].try_into().unwrap()), -1);

        let store = Notify::parse("store f 4096 8192 90")
            .expect("valid")
            .encode(3, 0);
        assert_eq!(store.len(), 16 + 24 + 8192);
        assert_eq!(
            i32::from_le_bytes(store[4..8].try_into().unwrap()),
            code::STORE
        );
        assert_eq!(u64::from_le_bytes(store[24..32].try_into().unwrap()), 4096);
        assert_eq!(u32::from_le_bytes(store[32..36].try_into().unwrap()), 8192);
        assert!(store[40..].iter().all(|&b| b == 90));

        let r = Notify::parse("retrieve f 0 4096")
            .expect("valid")
            .encode(3, 9);
        assert_eq!(r.len(), 16 + 32);
        assert_eq!(
            i32::from_le_bytes(r[4..8].try_into().unwrap()),
            code::RETRIEVE
        );
        assert_eq!(
            u64::from_le_bytes(r[16..24].try_into().unwrap()),
            9,
            "notify_unique"
        );
        assert_eq!(
            u64::from_le_bytes(r[24..32].try_into().unwrap()),
            3,
            "nodeid"
        );
        assert_eq!(u32::from_le_bytes(r[40..44].try_into().unwrap()), 4096);
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        for (line, want) in [
            ("", "empty"),
            ("poke f 0 1", "unknown command"),
            ("store f 0 4096", "missing BYTE"),
            ("store f 0 4096 256", "BYTE \"256\""),
            ("store f 0 99999999 1", "over"),
            ("retrieve f x 1", "OFF \"x\""),
            ("inval_inode f 0 0 extra", "unexpected"),
        ] {
            let err = Notify::parse(line).expect_err(line);
            assert!(err.contains(want), "{line:?}: {err}");
        }
    }
}
