//! The `shared` suite: the guest side of the multi-host cases. Each guest of a multi-host
//! topology maps the same CXL backing file; the host runner starts the roles of a case on
//! their guests (`FAMFS_LAB_ROLE`, `FAMFS_LAB_HOST`, `FAMFS_LAB_HOSTS`), in steps, and hands
//! the `SHARE: key=value` lines a role prints to the later steps as
//! `FAMFS_LAB_SHARE_H<host>_<KEY>`. The guests share nothing but the device bytes.
//!
//! Every role mounts famfs-fused over the same shadow tree ([`tree`]), so a file's bytes are
//! the same device bytes on every guest.
//!
//! Coherence: QEMU's CXL type-3 memory is emulated MMIO (every guest load and store goes to
//! the backing file), so no guest CPU cache ever holds a stale line and a reader sees the
//! writer's bytes without a flush. On hardware where hosts do not snoop each other's caches,
//! the writer must flush (clflush/clflushopt + sfence) after its stores and the reader must
//! invalidate (clflush + mfence) before its loads; the roles do both, as famfs users must,
//! and check the unflushed read only where the model says it cannot be stale.

use crate::harness::check::Checks;
use crate::harness::famfs::{Ctx, Famfs, Spec};
use crate::suites::shared_poison;
use crate::system::mapping::Mapping;
use crate::system::sys;
use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_suite::expect::{simple_map, AreaAlloc, MIB, READ_AREA, WRITE_AREA};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

pub const ROLE_ENV: &str = "FAMFS_LAB_ROLE";
pub const HOST_ENV: &str = "FAMFS_LAB_HOST";
pub const HOSTS_ENV: &str = "FAMFS_LAB_HOSTS";
/// Messages the ring case passes (default [`RING_DEFAULT_N`]).
pub const RING_N_ENV: &str = "FAMFS_LAB_RING_N";
const RING_DEFAULT_N: u64 = 1000;
/// How long `keep_reading` reads (seconds, default 10).
const KEEP_SECS_ENV: &str = "FAMFS_LAB_KEEP_READING_SECS";
/// How long a waiting role may see no progress from its peer before it fails.
const PEER_PATIENCE: Duration = Duration::from_secs(90);

/// The file every guest reads (the host's fill pattern).
const DATA: &str = "data";
const DATA_SIZE: u64 = 4 * MIB;
const RING: &str = "ring";
/// The file `poison` injects a media error under (its own, so no other case reads a
/// poisoned page).
const POISONED: &str = "poisoned";
/// Guests the tree has a write file for (`from-h0`..).
const WRITERS: u32 = 4;

/// This guest's part, from the environment the host runner sets.
struct Part {
    role: String,
    host: u32,
    hosts: u32,
}

impl Part {
    fn from_env() -> Result<Part> {
        let var = |k: &str| {
            std::env::var(k).with_context(|| {
                format!("{k} is not set: shared cases run through the host runner on a multi-host topology (--topology shared-2)")
            })
        };
        let num = |k: &str| -> Result<u32> {
            let v = var(k)?;
            v.parse()
                .with_context(|| format!("{k}={v:?} is not a number"))
        };
        let p = Part {
            role: var(ROLE_ENV)?,
            host: num(HOST_ENV)?,
            hosts: num(HOSTS_ENV)?,
        };
        if p.hosts < 2 || p.host >= p.hosts {
            bail!(
                "{HOST_ENV}={} {HOSTS_ENV}={}: not a multi-host run",
                p.host,
                p.hosts
            );
        }
        Ok(p)
    }

    /// The guest whose writes this one reads: the previous one.
    fn peer(&self) -> u32 {
        (self.host + self.hosts - 1) % self.hosts
    }
}

pub fn run(name: &str, ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let part = Part::from_env()?;
    println!(
        "{}: role {} on guest {} of {}",
        ctx.id, part.role, part.host, part.hosts
    );
    match (name, part.role.as_str()) {
        ("same_tree", "list") => list(ctx),
        ("same_tree", "compare") => compare(ctx),
        ("cross_host_bytes", "write") => write_for_peer(ctx, &part),
        ("cross_host_bytes", "read") => read_from_peer(ctx, &part),
        ("ring", "ring_init") => ring_init(ctx),
        ("ring", "produce") => produce(ctx),
        ("ring", "consume") => consume(ctx),
        ("server_killed", "kill_server") => server_killed(ctx),
        ("poison", "poison_first") => shared_poison::first(ctx, tree(ctx)?, POISONED),
        ("poison", "poison_peer") => shared_poison::peer(
            ctx,
            tree(ctx)?,
            POISONED,
            &shared_value(0, "dpa")?,
            &shared_value(0, "memdev")?,
        ),
        (_, "keep_reading") => keep_reading(ctx),
        ("peer_panic", "panic") => panic_soon(ctx),
        (case, role) => bail!("shared.{case} has no role {role:?}"),
    }
}

/// The tree every guest serves: the fill-pattern files `data` and `poisoned`, one write file per guest
/// (`from-h<N>`, at most four guests) and the ring, at the same device bytes everywhere.
fn tree(ctx: &Ctx<'_>) -> Result<Spec> {
    let slots = ctx.slots(1)?;
    let mut read = AreaAlloc::new(READ_AREA);
    let mut write = AreaAlloc::new(WRITE_AREA);
    let data = simple_map(&mut read, &[(0, DATA_SIZE)], DATA_SIZE).context("read area full")?;
    let poisoned = simple_map(&mut read, &[(0, 2 * MIB)], 2 * MIB).context("read area full")?;
    let mut spec = Spec::new(&ctx.ops()?, slots)
        .file(DATA, data)
        .file(POISONED, poisoned);
    for h in 0..WRITERS {
        let m = simple_map(&mut write, &[(0, 2 * MIB)], 2 * MIB).context("write area full")?;
        spec = spec.file(&from_file(h), m);
    }
    let ring = simple_map(&mut write, &[(0, 2 * MIB)], 2 * MIB).context("write area full")?;
    spec = spec.file(RING, ring);
    spec.dirs.push("empty".into());
    Ok(spec)
}

fn from_file(host: u32) -> String {
    format!("from-h{host}")
}

fn from_seed(host: u32) -> String {
    format!("shared:from-h{host}")
}

// ---- same_tree

/// `path type mode uid gid size` per entry, sorted, plus a digest of every file's bytes
/// (read before any guest wrote: the host's fill).
fn listing(fs: &Famfs) -> Result<(Vec<String>, String)> {
    let mut lines = Vec::new();
    let mut hash = Sha256::new();
    walk(&fs.mnt, &fs.mnt, &mut lines, &mut hash)?;
    lines.sort();
    let digest = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((lines, digest))
}

fn walk(root: &Path, dir: &Path, lines: &mut Vec<String>, hash: &mut Sha256) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<std::io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let md = std::fs::symlink_metadata(&path)?;
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .display()
            .to_string();
        let kind = if md.is_dir() { "d" } else { "f" };
        lines.push(format!(
            "{rel} {kind} {:o} {}:{} {}",
            md.mode(),
            md.uid(),
            md.gid(),
            md.len()
        ));
        if md.is_dir() {
            walk(root, &path, lines, hash)?;
        } else if rel == DATA {
            let f = File::open(&path)?;
            let bytes = sys::pread(&f, 0, md.len() as usize)
                .map_err(|e| anyhow::anyhow!("reading {rel}: {}", sys::errno_name(e)))?;
            hash.update(rel.as_bytes());
            hash.update(&bytes);
        }
    }
    Ok(())
}

fn list(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let (lines, digest) = listing(&fs)?;
    for l in &lines {
        println!("  {l}");
    }
    println!("SHARE: tree={}", lines.join(";"));
    println!("SHARE: data={digest}");
    fs.stop()?;
    Ok(Outcome::Pass)
}

fn compare(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let peer_tree = shared_value(0, "tree")?;
    let peer_data = shared_value(0, "data")?;
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let (lines, digest) = listing(&fs)?;
    let theirs: Vec<&str> = peer_tree.split(';').collect();
    let ours: Vec<&str> = lines.iter().map(String::as_str).collect();
    for l in &ours {
        c.check(theirs.contains(l), format!("guest 0 lists `{l}` too"));
    }
    for l in &theirs {
        if !ours.contains(l) {
            c.fail(format!("guest 0 lists `{l}`, this guest does not"));
        }
    }
    c.eq(
        "digest of data (sha256), guest 0 vs this guest",
        digest.as_str(),
        peer_data.as_str(),
    );
    fs.stop()?;
    Ok(c.outcome())
}

/// A value an earlier step's role printed as `SHARE: key=value` on guest `host`.
fn shared_value(host: u32, key: &str) -> Result<String> {
    let var = format!("FAMFS_LAB_SHARE_H{host}_{}", key.to_uppercase());
    std::env::var(&var).with_context(|| {
        format!("{var} is not set: guest {host}'s earlier step did not share {key}")
    })
}

// ---- cross_host_bytes

/// Whether a guest's unflushed read of another guest's stores may be stale here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coherence {
    /// QEMU's emulated CXL type-3 device: MMIO, never cached by the guest's CPU.
    QemuEmulated,
    /// Real CXL memory: stale lines are possible without an invalidate.
    Hardware,
}

/// QEMU's cxl-type3 is PCI 8086:0d93.
fn coherence() -> Coherence {
    let Ok(entries) = std::fs::read_dir("/sys/bus/pci/devices") else {
        return Coherence::Hardware;
    };
    for e in entries.flatten() {
        let read = |f: &str| std::fs::read_to_string(e.path().join(f)).unwrap_or_default();
        if read("vendor").trim() == "0x8086" && read("device").trim() == "0x0d93" {
            return Coherence::QemuEmulated;
        }
    }
    Coherence::Hardware
}

fn write_for_peer(ctx: &mut Ctx<'_>, part: &Part) -> Result<Outcome> {
    let mut c = Checks::new();
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let rel = from_file(part.host);
    let seed = from_seed(part.host);
    let size = fs.map(&rel)?.file_size;
    let want = fs.seeded(&rel, 0, size, &seed)?;
    let f = File::options().read(true).write(true).open(fs.path(&rel))?;
    let mut m = Mapping::shared(&f, 0, size as usize, true).context("mmap")?;
    m.bytes_mut().copy_from_slice(&want);
    cache::flush(m.bytes());
    c.eq(
        format!("{rel}: msync(MS_SYNC) after the stores and the flush"),
        m.sync(libc::MS_SYNC).map_err(|e| sys::errno(&e)),
        Ok(()),
    );
    c.bytes(
        format!("{rel}: this guest reads its own stores"),
        0,
        m.bytes(),
        &want,
    );
    ctx.verify(fs.ranges(&rel, 0, size, Some(&seed))?);
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

fn read_from_peer(ctx: &mut Ctx<'_>, part: &Part) -> Result<Outcome> {
    let mut c = Checks::new();
    let peer = part.peer();
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let rel = from_file(peer);
    let size = fs.map(&rel)?.file_size;
    let want = fs.seeded(&rel, 0, size, &from_seed(peer))?;
    let f = File::open(fs.path(&rel))?;
    let m = Mapping::shared(&f, 0, size as usize, false).context("mmap")?;
    let model = coherence();
    let unflushed = m.bytes().to_vec();
    match model {
        Coherence::QemuEmulated => c.bytes(
            format!("{rel}: guest {peer}'s stores, read before any invalidate (QEMU's CXL memory is MMIO: never stale)"),
            0,
            &unflushed,
            &want,
        ),
        Coherence::Hardware => {
            let stale = unflushed.iter().zip(&want).filter(|(a, b)| a != b).count();
            c.note(format!(
                "{rel}: {stale} bytes differed before the invalidate (real CXL memory: stale lines are allowed)"
            ));
            true
        }
    };
    cache::flush(m.bytes());
    c.bytes(
        format!("{rel}: guest {peer}'s stores after clflush + mfence"),
        0,
        m.bytes(),
        &want,
    );
    c.note(format!("coherence model: {model:?}"));
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

// ---- ring

/// A single-producer single-consumer ring in the 2 MiB file `ring`: the producer's count
/// (`head`) and the consumer's (`tail`) on their own cache lines, then `SLOTS` slots of
/// `SLOT` bytes: sequence number (count + 1), payload length, CRC-32 of the payload, payload.
mod ring {
    pub const MAGIC: u64 = 0x474e_4952_5346_4d46; // "FMFSRING"
    pub const MAGIC_OFF: usize = 0;
    pub const HEAD_OFF: usize = 64;
    pub const TAIL_OFF: usize = 128;
    pub const SLOTS_OFF: usize = 4096;
    pub const SLOTS: u64 = 64;
    pub const SLOT: usize = 256;
    /// seq (8) + len (4) + crc (4)
    pub const SLOT_HDR: usize = 16;
    pub const MAX_PAYLOAD: usize = SLOT - SLOT_HDR;

    pub fn slot_off(n: u64) -> usize {
        SLOTS_OFF + (n % SLOTS) as usize * SLOT
    }

    /// Message `n`'s payload: its length varies so that slots are partly filled.
    pub fn payload(n: u64) -> Vec<u8> {
        let len = 16 + (n as usize * 37) % (MAX_PAYLOAD - 16);
        lab_suite::pattern::fill(&format!("ring:{n}"), 0, len)
    }
}

/// The ring file open and mapped read-write, with volatile 64-bit accessors. Dropping it
/// closes the file, so that the server can unmount.
struct RingMap {
    m: Mapping,
    _file: File,
}

impl RingMap {
    fn open(fs: &Famfs) -> Result<RingMap> {
        let f = File::options().read(true).write(true).open(fs.path(RING))?;
        let len = fs.map(RING)?.file_size as usize;
        let m = Mapping::shared(&f, 0, len, true).context("mmap ring")?;
        Ok(RingMap { m, _file: f })
    }

    fn load(&self, off: usize) -> u64 {
        cache::flush(&self.m.bytes()[off..off + 8]);
        // SAFETY: off + 8 is inside the mapping (offsets are the ring's constants) and 8-aligned.
        unsafe { std::ptr::read_volatile(self.m.ptr().add(off).cast::<u64>()) }
    }

    fn store(&mut self, off: usize, v: u64) {
        // SAFETY: as in load.
        unsafe { std::ptr::write_volatile(self.m.ptr().add(off).cast::<u64>(), v) };
        cache::flush(&self.m.bytes()[off..off + 8]);
    }

    fn write_slot(&mut self, n: u64, payload: &[u8]) {
        let off = ring::slot_off(n);
        let crc = crc32fast::hash(payload);
        let b = self.m.bytes_mut();
        b[off + 8..off + 12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        b[off + 12..off + 16].copy_from_slice(&crc.to_le_bytes());
        b[off + ring::SLOT_HDR..off + ring::SLOT_HDR + payload.len()].copy_from_slice(payload);
        self.store(off, n + 1);
        cache::flush(&self.m.bytes()[off..off + ring::SLOT]);
    }

    /// Slot of message `n`: (seq, payload), or why it is malformed.
    fn read_slot(&self, n: u64) -> std::result::Result<(u64, Vec<u8>), String> {
        let off = ring::slot_off(n);
        cache::flush(&self.m.bytes()[off..off + ring::SLOT]);
        let seq = self.load(off);
        let b = self.m.bytes();
        let word = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let (len, crc) = (word(off + 8) as usize, word(off + 12));
        if len > ring::MAX_PAYLOAD {
            return Err(format!("message {n}: length {len} > {}", ring::MAX_PAYLOAD));
        }
        let payload = b[off + ring::SLOT_HDR..off + ring::SLOT_HDR + len].to_vec();
        if crc32fast::hash(&payload) != crc {
            return Err(format!("message {n}: CRC mismatch (seq {seq}, len {len})"));
        }
        Ok((seq, payload))
    }
}

fn ring_messages() -> Result<u64> {
    match std::env::var(RING_N_ENV) {
        Err(_) => Ok(RING_DEFAULT_N),
        Ok(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| *n > 0)
            .with_context(|| format!("{RING_N_ENV}={v:?}: must be a positive number")),
    }
}

fn ring_init(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let mut r = RingMap::open(&fs)?;
    r.store(ring::HEAD_OFF, 0);
    r.store(ring::TAIL_OFF, 0);
    for n in 0..ring::SLOTS {
        r.store(ring::slot_off(n), 0);
    }
    r.store(ring::MAGIC_OFF, ring::MAGIC);
    println!(
        "ring initialised: {} slots of {} bytes",
        ring::SLOTS,
        ring::SLOT
    );
    drop(r);
    fs.stop()?;
    Ok(Outcome::Pass)
}

/// Waits until `ready(value at off)`; fails after [`PEER_PATIENCE`] without it.
fn wait_for(r: &RingMap, off: usize, what: &str, ready: impl Fn(u64) -> bool) -> Result<u64> {
    let started = Instant::now();
    loop {
        let v = r.load(off);
        if ready(v) {
            return Ok(v);
        }
        if started.elapsed() > PEER_PATIENCE {
            bail!("no progress from the peer for {PEER_PATIENCE:?} waiting for {what} (it is {v})");
        }
        std::thread::yield_now();
    }
}

fn produce(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let n = ring_messages()?;
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let mut r = RingMap::open(&fs)?;
    if r.load(ring::MAGIC_OFF) != ring::MAGIC {
        bail!("the ring has no magic: ring_init did not run or its bytes did not reach this guest");
    }
    let started = Instant::now();
    for i in 0..n {
        wait_for(
            &r,
            ring::TAIL_OFF,
            &format!("room for message {i}"),
            |tail| i - tail.min(i) < ring::SLOTS,
        )?;
        r.write_slot(i, &ring::payload(i));
        r.store(ring::HEAD_OFF, i + 1);
    }
    let tail = wait_for(
        &r,
        ring::TAIL_OFF,
        "the consumer to take the last message",
        |t| t == n,
    )?;
    println!(
        "produced {n} messages in {:.2}s; the consumer took {tail}",
        started.elapsed().as_secs_f64()
    );
    drop(r);
    fs.stop()?;
    Ok(Outcome::Pass)
}

fn consume(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let n = ring_messages()?;
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let mut r = RingMap::open(&fs)?;
    let started = Instant::now();
    let mut good = 0u64;
    for i in 0..n {
        wait_for(&r, ring::HEAD_OFF, &format!("message {i}"), |head| head > i)?;
        match r.read_slot(i) {
            Ok((seq, payload)) if seq == i + 1 && payload == ring::payload(i) => good += 1,
            Ok((seq, _)) if seq != i + 1 => {
                c.fail(format!("message {i}: sequence {seq}, expected {}", i + 1));
                break;
            }
            Ok(_) => {
                c.fail(format!(
                    "message {i}: CRC good but the payload is not message {i}'s"
                ));
                break;
            }
            Err(why) => {
                c.fail(why);
                break;
            }
        }
        r.store(ring::TAIL_OFF, i + 1);
    }
    c.eq(
        "messages received in order with good CRC and payload",
        good,
        n,
    );
    println!(
        "consumed {good} messages in {:.2}s",
        started.elapsed().as_secs_f64()
    );
    drop(r);
    fs.stop()?;
    Ok(c.outcome())
}

// ---- server_killed, keep_reading, peer_panic

/// The server dies with a file open and mapped: the mount answers ENOTCONN, the open file's
/// accesses end in an error or the old bytes (never an oops: the runner checks the log), the
/// mount goes away, and a new server mounts and serves the same bytes. Also a one-guest case
/// (`open.server_killed`).
pub fn server_killed(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let mut fs = Famfs::start(ctx, tree(ctx)?)?;
    let want = fs.expected(DATA, 0, 64 << 10)?;
    let f = File::open(fs.path(DATA))?;
    let m = Mapping::shared(&f, 0, DATA_SIZE as usize, false).context("mmap data")?;
    c.bytes(
        "data through the mapping, server alive",
        0,
        &m.bytes()[..want.len()],
        &want,
    );
    fs.kill_server()?;
    println!("famfs-fused killed with data open and mapped");
    // Cached attributes may still answer a stat; listing the root must ask the server.
    c.errno(
        "listing the mount root after the server died",
        &std::fs::read_dir(&fs.mnt).map_err(|e| sys::errno(&e)),
        libc::ENOTCONN,
    );
    c.errno(
        "open of another file after the server died",
        &sys::open(&fs.path(&from_file(0)), false),
        libc::ENOTCONN,
    );
    match sys::pread(&f, 0, 4096) {
        Ok(b) => {
            c.bytes(
                "pread of the open file after the server died: old bytes",
                0,
                &b,
                &want[..4096],
            );
        }
        Err(e) => c.note(format!(
            "pread of the open file after the server died: {}",
            sys::errno_name(e)
        )),
    }
    match sys::probe_read(m.ptr()) {
        Ok(a) => c.note(format!("a load through the old mapping: {a:?}")),
        Err(e) => c.note(format!("a load through the old mapping: {e:#}")),
    }
    drop(m);
    drop(f);
    match fs.umount_dead() {
        Ok(how) => c.pass(format!("the dead mount goes away ({how})")),
        Err(e) => c.fail(format!("umount of the dead mount: {}", sys::errno_name(e))),
    }
    drop(fs);
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let f = File::open(fs.path(DATA))?;
    let m = Mapping::shared(&f, 0, DATA_SIZE as usize, false).context("mmap data")?;
    c.bytes(
        "data through a new mount and mapping",
        0,
        &m.bytes()[..want.len()],
        &want,
    );
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

fn keep_reading(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let mut c = Checks::new();
    let secs: u64 = match std::env::var(KEEP_SECS_ENV) {
        Err(_) => 10,
        Ok(v) => v
            .parse()
            .with_context(|| format!("{KEEP_SECS_ENV}={v:?} is not a number"))?,
    };
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let want = fs.expected(DATA, 0, DATA_SIZE)?;
    let f = File::open(fs.path(DATA))?;
    let m = Mapping::shared(&f, 0, DATA_SIZE as usize, false).context("mmap data")?;
    let chunk = 64usize << 10;
    let (mut passes, mut bad) = (0u64, Vec::new());
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(secs) {
        let off = (passes as usize * chunk) % DATA_SIZE as usize;
        if m.bytes()[off..off + chunk] != want[off..off + chunk] {
            bad.push(off);
        }
        passes += 1;
    }
    c.check(
        passes > 0 && bad.is_empty(),
        format!(
            "{passes} reads of 64 KiB through the mapping in {secs}s while the peer does its part; mismatches at {bad:x?}"
        ),
    );
    drop(m);
    drop(f);
    fs.stop()?;
    Ok(c.outcome())
}

fn panic_soon(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    let fs = Famfs::start(ctx, tree(ctx)?)?;
    let f = File::open(fs.path(DATA))?;
    let _m = Mapping::shared(&f, 0, DATA_SIZE as usize, false).context("mmap data")?;
    // Let the peer get going, then crash with the file mapped.
    std::thread::sleep(Duration::from_secs(2));
    println!("panicking this guest through sysrq with famfs mounted");
    std::fs::write("/proc/sys/kernel/sysrq", "1")?;
    std::fs::write("/proc/sysrq-trigger", "c")?;
    std::mem::forget(fs);
    bail!("the guest survived a sysrq crash")
}

/// Cache-line flushes for memory another host reads or writes.
mod cache {
    const LINE: usize = 64;

    /// clflush every line of `bytes`, then mfence: the writer's stores leave this CPU's
    /// caches, and the reader's next loads miss them.
    pub fn flush(bytes: &[u8]) {
        #[cfg(target_arch = "x86_64")]
        {
            let start = bytes.as_ptr() as usize & !(LINE - 1);
            let end = bytes.as_ptr() as usize + bytes.len();
            let mut p = start;
            while p < end {
                // SAFETY: clflush of an address inside (or the line start of) a live mapping.
                unsafe { core::arch::x86_64::_mm_clflush(p as *const u8) };
                p += LINE;
            }
            // SAFETY: a fence has no memory operands.
            unsafe { core::arch::x86_64::_mm_mfence() };
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (bytes, LINE);
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
        }
    }
}
