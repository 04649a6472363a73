//! Loading and attaching the BPF fmap ops (bpf/*.bpf.c; skeletons built by build.rs).
//!
//! open -> set rodata and program flags -> load (the verifier runs here) ->
//! `attach_struct_ops()`: the returned link registers the ops under their `.name` and is kept in
//! [`Attached`] for the whole mount. libbpf's messages, including a verifier rejection's full
//! log, are captured through its print callback and returned inside [`BpfError`].

use crate::ops::OpsKind;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, PrintLevel};
use std::any::Any;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

#[allow(clippy::all, clippy::pedantic, missing_docs, unsafe_op_in_unsafe_fn)]
pub mod skel {
    pub mod famfs {
        include!(concat!(env!("OUT_DIR"), "/famfs.skel.rs"));
    }
    pub mod famfs_maplookup {
        include!(concat!(env!("OUT_DIR"), "/famfs_maplookup.skel.rs"));
    }
    pub mod famfs_slow {
        include!(concat!(env!("OUT_DIR"), "/famfs_slow.skel.rs"));
    }
    pub mod famfs_direct {
        include!(concat!(env!("OUT_DIR"), "/famfs_direct.skel.rs"));
    }
    pub mod famfs_kfunc {
        include!(concat!(env!("OUT_DIR"), "/famfs_kfunc.skel.rs"));
    }
    pub mod famfs_trivial {
        include!(concat!(env!("OUT_DIR"), "/famfs_trivial.skel.rs"));
    }
    pub mod evil_oob {
        include!(concat!(env!("OUT_DIR"), "/evil_oob.skel.rs"));
    }
    pub mod reject_all {
        include!(concat!(env!("OUT_DIR"), "/reject_all.skel.rs"));
    }
    pub mod test_harness {
        include!(concat!(env!("OUT_DIR"), "/test_harness.skel.rs"));
    }
}

/// What `evil_oob`'s iomap_begin gets wrong (its `evil_flavour` rodata).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum EvilFlavour {
    /// addr at the device's end (`--evil-dev-size`), or 1 TiB past the right address.
    #[default]
    PastEnd,
    /// dev_index of a slot the file never declared (`--evil-dev-index`).
    OtherDevice,
    /// addr + length wraps around 2^64.
    Overflow,
    /// length longer than requested.
    LongLength,
    /// length 0.
    ZeroLength,
    /// type not MAPPED.
    BadType,
    /// starts inside the device (`--evil-dev-size`) and ends one page past its end.
    StraddleEnd,
    /// dev_index `--evil-dev-index`, addr `--evil-addr` + offset: another file's range.
    OtherFile,
    /// the right mapping cut to `--evil-length` bytes (below a page on a PTE fault).
    ShortLength,
    /// the right mapping moved by `--evil-length` bytes (addr not aligned like the offset).
    Misaligned,
    /// every page of the file at the one device page `--evil-addr`.
    Alias,
    /// the right mapping with the requested length, not cut at the end of the chunk (into the
    /// device bytes of the strip's next run).
    ChunkOverrun,
    /// the parse sets the slots and the size like famfs but declares no range.
    NoRanges,
    /// the parse first asks the kfuncs for views past the blob / meta buffer and for slots
    /// 24 and 31; one that is handed out fails the parse (EBADE blob, EBADR meta, EXFULL slot).
    KfuncBounds,
    /// the parse declares slots and ranges like famfs but never sets the file size.
    NoSize,
}

impl EvilFlavour {
    pub fn code(self) -> u32 {
        self as u32
    }
}

#[derive(Debug, Clone)]
pub struct BpfOptions {
    pub evil: EvilFlavour,
    pub evil_dev_size: u64,
    pub evil_dev_index: u32,
    pub evil_addr: u64,
    pub evil_length: u64,
    pub reject_errno: u32,
    /// Verifier log level for every program (0: libbpf's default, a log only on failure).
    pub log_level: u32,
    /// Load dax_fmap_parse as sleepable (`struct_ops.s/`, the default) or not.
    pub sleepable_parse: bool,
    /// Echo libbpf's messages to stderr as they come.
    pub verbose: bool,
}

impl Default for BpfOptions {
    fn default() -> Self {
        BpfOptions {
            evil: EvilFlavour::PastEnd,
            evil_dev_size: 0,
            evil_dev_index: 23,
            evil_addr: 0,
            evil_length: 1,
            reject_errno: libc::EPERM as u32,
            log_level: 0,
            sleepable_parse: true,
            verbose: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{stage} the {ops:?} BPF ops: {error}\n--- libbpf messages ---\n{log}--- end of libbpf messages ---")]
pub struct BpfError {
    pub ops: &'static str,
    pub stage: &'static str,
    /// libbpf's error (not a `source`: the message already shows it, with the log).
    pub error: libbpf_rs::Error,
    /// Everything libbpf printed, the verifier log included.
    pub log: String,
}

/// Attached ops: dropping this unregisters them.
pub struct Attached {
    pub ops: &'static str,
    _link: Link,
    _skel: Box<dyn Any>,
}

impl std::fmt::Debug for Attached {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Attached({})", self.ops)
    }
}

static LOG: Mutex<String> = Mutex::new(String::new());
static ECHO: AtomicBool = AtomicBool::new(false);

fn print_cb(_level: PrintLevel, msg: String) {
    if ECHO.load(Ordering::Relaxed) {
        eprint!("libbpf: {msg}");
    }
    LOG.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push_str(&msg);
}

/// Route libbpf's messages (all levels) into the capture buffer; returns what it held.
pub fn capture_libbpf_log(echo: bool) -> String {
    ECHO.store(echo, Ordering::Relaxed);
    libbpf_rs::set_print(Some((PrintLevel::Debug, print_cb)));
    take_log()
}

pub fn take_log() -> String {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(PoisonError::into_inner))
}

fn fail(ops: &'static str, stage: &'static str) -> impl FnOnce(libbpf_rs::Error) -> BpfError {
    move |error| BpfError {
        ops,
        stage,
        error,
        log: take_log(),
    }
}

/// Settings every variant's programs get before load.
fn prepare(obj: &mut libbpf_rs::OpenObject, o: &BpfOptions) {
    for mut p in obj.progs_mut() {
        if o.log_level > 0 {
            p.set_log_level(o.log_level);
        }
        if !o.sleepable_parse && p.section().to_string_lossy().ends_with("dax_fmap_parse") {
            p.set_flags(0);
        }
    }
}

macro_rules! attach {
    ($kind:expr, $o:expr, $builder:ty, $map:ident, |$open:ident| $adjust:block) => {{
        let name = $kind.name();
        let storage = Box::leak(Box::new(MaybeUninit::uninit()));
        let mut $open = <$builder>::default().open(storage).map_err(fail(name, "opening"))?;
        prepare($open.open_object_mut(), $o);
        $adjust
        let mut skel = $open.load().map_err(fail(name, "loading"))?;
        let link = skel.maps.$map.attach_struct_ops().map_err(fail(name, "attaching"))?;
        Attached { ops: name, _link: link, _skel: Box::new(skel) }
    }};
}

/// Load and attach the ops of `kind`; `None` for `famfs_native` (the kernel's own ops).
pub fn load(kind: OpsKind, o: &BpfOptions) -> Result<Option<Attached>, BpfError> {
    capture_libbpf_log(o.verbose);
    let attached = match kind {
        OpsKind::FamfsNative => return Ok(None),
        OpsKind::Famfs => attach!(kind, o, skel::famfs::FamfsSkelBuilder, famfs_ops, |open| {}),
        OpsKind::FamfsMaplookup => attach!(
            kind,
            o,
            skel::famfs_maplookup::FamfsMaplookupSkelBuilder,
            famfs_maplookup_ops,
            |open| {}
        ),
        OpsKind::FamfsSlow => attach!(
            kind,
            o,
            skel::famfs_slow::FamfsSlowSkelBuilder,
            famfs_slow_ops,
            |open| {}
        ),
        OpsKind::FamfsDirect => attach!(
            kind,
            o,
            skel::famfs_direct::FamfsDirectSkelBuilder,
            famfs_direct_ops,
            |open| {}
        ),
        OpsKind::FamfsKfunc => attach!(
            kind,
            o,
            skel::famfs_kfunc::FamfsKfuncSkelBuilder,
            famfs_kfunc_ops,
            |open| {}
        ),
        OpsKind::FamfsTrivial => attach!(
            kind,
            o,
            skel::famfs_trivial::FamfsTrivialSkelBuilder,
            famfs_trivial_ops,
            |open| {}
        ),
        OpsKind::EvilOob => attach!(
            kind,
            o,
            skel::evil_oob::EvilOobSkelBuilder,
            evil_oob_ops,
            |open| {
                if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
                    ro.evil_flavour = o.evil.code();
                    ro.evil_dev_size = o.evil_dev_size;
                    ro.evil_dev_index = o.evil_dev_index;
                    ro.evil_addr = o.evil_addr;
                    ro.evil_length = o.evil_length;
                }
            }
        ),
        OpsKind::RejectAll => attach!(
            kind,
            o,
            skel::reject_all::RejectAllSkelBuilder,
            reject_all_ops,
            |open| {
                if let Some(ro) = open.maps.rodata_data.as_deref_mut() {
                    ro.reject_errno = o.reject_errno;
                }
            }
        ),
    };
    take_log();
    Ok(Some(attached))
}

#[cfg(test)]
mod tests {
    use super::EvilFlavour;
    use clap::ValueEnum;

    /// The header of evil_oob.bpf.c lists `CODE NAME` per flavour: the rodata code each
    /// `--evil NAME` sets must be the one the program switches on.
    #[test]
    fn evil_flavour_codes_match_the_bpf_source() {
        let src = include_str!("../bpf/evil_oob.bpf.c");
        let listed: Vec<(u32, String)> = src
            .lines()
            .take_while(|l| !l.starts_with(" */"))
            .filter_map(|l| {
                let (num, rest) = l.strip_prefix(" *")?.trim_start().split_once(' ')?;
                Some((
                    num.parse().ok()?,
                    rest.split_whitespace().next()?.to_string(),
                ))
            })
            .collect();
        assert_eq!(
            listed.len(),
            EvilFlavour::value_variants().len(),
            "flavours listed in evil_oob.bpf.c: {listed:?}"
        );
        for (code, name) in &listed {
            let f = EvilFlavour::from_str(name, false)
                .unwrap_or_else(|e| panic!("evil_oob.bpf.c lists {name:?}: {e}"));
            assert_eq!(f.code(), *code, "--evil {name}");
        }
    }
}
