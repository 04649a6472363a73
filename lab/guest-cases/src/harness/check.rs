//! Assertions that keep going: a case runs every check, prints each result, and fails with
//! all the failures (the first few in the reason line, every one on stdout).

use crate::harness::famfs::Famfs;
use crate::system::sys::{self, errno_name, Access};
use crate::Outcome;
use std::fmt::{Debug, Display};

#[derive(Debug, Default)]
pub struct Checks {
    fails: Vec<String>,
    passed: usize,
    notes: Vec<String>,
}

impl Checks {
    /// Opens `rel` of `fs` read-only and checks its first `len` bytes against the model; the
    /// file when it opened.
    pub fn open_and_check(
        &mut self,
        fs: &Famfs,
        rel: &str,
        len: u64,
    ) -> anyhow::Result<Option<std::fs::File>> {
        let r = sys::open(&fs.path(rel), false);
        if !self.errno(format!("open {rel}"), &r, 0) {
            return Ok(None);
        }
        let f = r.map_err(|e| anyhow::anyhow!("errno {e}"))?;
        let got = sys::pread(&f, 0, len as usize)
            .map_err(|e| anyhow::anyhow!("pread {rel}: errno {e}"))?;
        self.bytes(
            format!("{rel}: first {len} bytes"),
            0,
            &got,
            &fs.expected(rel, 0, len)?,
        );
        Ok(Some(f))
    }

    pub fn new() -> Checks {
        Checks::default()
    }

    pub fn pass(&mut self, what: impl Display) {
        self.passed += 1;
        println!("ok: {what}");
    }

    pub fn fail(&mut self, what: impl Display) {
        println!("FAILED: {what}");
        self.fails.push(what.to_string());
    }

    /// Something worth saying that is neither a pass nor a failure.
    pub fn note(&mut self, what: impl Display) {
        println!("note: {what}");
        self.notes.push(what.to_string());
    }

    pub fn check(&mut self, cond: bool, what: impl Display) -> bool {
        if cond {
            self.pass(what);
        } else {
            self.fail(what);
        }
        cond
    }

    pub fn eq<T: PartialEq + Debug>(&mut self, what: impl Display, got: T, want: T) -> bool {
        if got == want {
            self.pass(format!("{what}: {got:?}"));
            true
        } else {
            self.fail(format!("{what}: got {got:?}, expected {want:?}"));
            false
        }
    }

    /// `got` must equal `want`; `base` is the file offset of their first byte.
    pub fn bytes(&mut self, what: impl Display, base: u64, got: &[u8], want: &[u8]) -> bool {
        if got.len() != want.len() {
            self.fail(format!(
                "{what}: {} bytes, expected {}",
                got.len(),
                want.len()
            ));
            return false;
        }
        match got.iter().zip(want).position(|(a, b)| a != b) {
            None => {
                self.pass(format!(
                    "{what}: {} bytes from {base:#x} as expected",
                    got.len()
                ));
                true
            }
            Some(i) => {
                let diffs = got.iter().zip(want).filter(|(a, b)| a != b).count();
                self.fail(format!(
                    "{what}: byte {:#x} is {:#04x}, expected {:#04x} ({diffs} of {} bytes differ)",
                    base + i as u64,
                    got[i],
                    want[i],
                    got.len()
                ));
                false
            }
        }
    }

    /// An errno-level result: `want` 0 means it must succeed.
    pub fn errno<T>(&mut self, what: impl Display, got: &Result<T, i32>, want: i32) -> bool {
        let g = match got {
            Ok(_) => 0,
            Err(e) => *e,
        };
        if g == want {
            self.pass(format!("{what}: {}", errno_name(g)));
            true
        } else {
            self.fail(format!(
                "{what}: got {}, expected {}",
                errno_name(g),
                errno_name(want)
            ));
            false
        }
    }

    /// A memory access must have ended as `want`.
    pub fn access(&mut self, what: impl Display, got: Access, want: Access) -> bool {
        if got == want {
            self.pass(format!("{what}: {got}"));
            true
        } else {
            self.fail(format!("{what}: {got}, expected {want}"));
            false
        }
    }

    /// Maps the page of `addr` with a load in this process ([`crate::system::sys::touch`]: the page
    /// is proven present afterwards) and checks the byte it read.
    pub fn touch(&mut self, what: impl Display, addr: *const u8, want: u8) -> bool {
        match crate::system::sys::touch(addr) {
            Ok(b) if b == want => {
                self.pass(format!("{what}: touched, page mapped ({b:#04x})"));
                true
            }
            Ok(b) => {
                self.fail(format!("{what}: touched {b:#04x}, expected {want:#04x}"));
                false
            }
            Err(e) => {
                self.fail(format!("{what}: {e:#}"));
                false
            }
        }
    }

    /// The page of `addr` must (`want` true) or must not be mapped in this process now.
    pub fn mapped(&mut self, what: impl Display, addr: *const u8, want: bool) -> bool {
        match crate::system::sys::page_present(addr) {
            Ok(p) => self.check(
                p == want,
                format!(
                    "{what}: page {} (pagemap), expected {}",
                    if p { "mapped" } else { "not mapped" },
                    if want { "mapped" } else { "not mapped" }
                ),
            ),
            Err(e) => {
                self.fail(format!("{what}: {e:#}"));
                false
            }
        }
    }

    pub fn outcome(self) -> Outcome {
        if self.fails.is_empty() {
            println!("{} checks passed", self.passed);
            Outcome::Pass
        } else {
            let n = self.fails.len();
            let mut why: Vec<String> = self.fails.iter().take(3).cloned().collect();
            if n > 3 {
                why.push(format!("and {} more (see the output)", n - 3));
            }
            Outcome::Fail(format!(
                "{n} of {} checks failed: {}",
                n + self.passed,
                why.join("; ")
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_collected_with_the_first_in_the_reason() {
        let mut c = Checks::new();
        c.eq("a", 1, 1);
        c.bytes("b", 0x100, &[1, 2, 3], &[1, 9, 3]);
        c.errno("c", &Err::<(), i32>(libc::EIO), libc::ENODEV);
        c.access(
            "d",
            Access::Signal(libc::SIGBUS),
            Access::Signal(libc::SIGBUS),
        );
        match c.outcome() {
            Outcome::Fail(why) => {
                assert!(why.starts_with("2 of 4 checks failed"), "{why}");
                assert!(why.contains("byte 0x101"), "{why}");
                assert!(
                    why.contains("EIO (5)") && why.contains("ENODEV (19)"),
                    "{why}"
                );
            }
            _ => panic!("must fail"),
        }
        assert!(matches!(Checks::new().outcome(), Outcome::Pass));
    }
}
