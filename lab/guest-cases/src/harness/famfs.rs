//! One famfs-fused server per case (or several, one after another): a shadow tree generated
//! with famfs-shadow from the case's file maps (device ranges inside the dax devices of the
//! device map, see `lab_suite::expect` for the areas), `daxdevs.yaml` naming the slots,
//! the dax devices bound to fsdev_dax, `famfs-fused --shadow DIR --mountpoint MNT --ops OPS
//! --stats FILE --ready-file FILE` as a child, and a wait for ready. Dropping a [`Famfs`]
//! unmounts and reaps the server.
//!
//! The ops come from `FAMFS_LAB_OPS` (default `famfs`), so every case runs with `famfs`,
//! `famfs_maplookup` or `famfs_native`; cases that need `evil_oob` or `reject_all` set them.

use crate::setup;
use crate::system::sys;
use anyhow::{bail, Context, Result};
use famfs_fmap::FileMap;
use famfs_shadow::{DaxDev, DaxDevs, FileAttrs, ShadowDir, ShadowFile, ShadowTree, FLAG_SHARED};
use lab_suite::devices::{DaxDevice, DeviceMap};
use lab_suite::expect::{self, Piece, Slots};
use lab_suite::verify::{self, FillPlan, VerifyFile, VerifyRange};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Where each case's shadow trees, mount points and server logs live.
const CASES_DIR: &str = "/run/famfs-lab/cases";
/// How long a server may take from spawn to ready (BPF load and verify included; TCG).
const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// The ops every case uses unless it picks its own.
pub const OPS_ENV: &str = "FAMFS_LAB_OPS";
pub use lab_suite::KNOWN_OPS;
/// The native ops' module (CONFIG_FUSE_DAX_FMAP_NATIVE_TEST).
pub const NATIVE_MODULE: &str = "fuse_dax_fmap_native";

/// What a case runs in: its id, the device map, and what it wants the host to check.
pub struct Ctx<'a> {
    pub id: String,
    pub map: &'a DeviceMap,
    verify: Vec<VerifyRange>,
}

impl<'a> Ctx<'a> {
    pub fn new(id: &str, map: &'a DeviceMap) -> Ctx<'a> {
        let _ = std::fs::remove_file(verify::verify_path(Path::new(verify::GUEST_RESULTS), id));
        Ctx {
            id: id.to_string(),
            map,
            verify: Vec::new(),
        }
    }

    /// The ops from `FAMFS_LAB_OPS` (default `famfs`).
    pub fn ops(&self) -> Result<String> {
        let ops = std::env::var(OPS_ENV).unwrap_or_else(|_| "famfs".into());
        if !KNOWN_OPS.contains(&ops.as_str()) {
            bail!("{OPS_ENV}={ops:?}: not one of {KNOWN_OPS:?}");
        }
        Ok(ops)
    }

    /// The dax devices the fmap suites use, in name order (every one of the device map).
    pub fn dax(&self) -> Vec<&'a DaxDevice> {
        let mut v: Vec<&DaxDevice> = self.map.dax.iter().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Slots 0.. naming the dax devices in order, at most `n` of them (at least one).
    pub fn slots(&self, n: usize) -> Result<BTreeMap<u32, Target>> {
        let d = self.dax();
        if d.is_empty() {
            bail!("the device map has no dax device");
        }
        for dev in &d {
            if dev.size < expect::FILL_HEAD + expect::FILL_TAIL {
                bail!(
                    "{} is {:#x} bytes, the fmap suites need at least {:#x}",
                    dev.name,
                    dev.size,
                    expect::FILL_HEAD + expect::FILL_TAIL
                );
            }
        }
        Ok(d.iter()
            .take(n.max(1))
            .enumerate()
            .map(|(i, x)| (i as u32, Target::Dax(x.name.clone())))
            .collect())
    }

    /// Asks the host to check that these backing ranges hold their patterns after the case.
    pub fn verify(&mut self, ranges: Vec<VerifyRange>) {
        self.verify.extend(ranges);
    }

    /// Writes `/results/<id>.verify.json` if the case listed ranges.
    pub fn finish(&mut self) -> Result<()> {
        if self.verify.is_empty() {
            return Ok(());
        }
        let f = VerifyFile {
            case: self.id.clone(),
            ranges: verify::coalesce(std::mem::take(&mut self.verify)),
        };
        let path = verify::verify_path(Path::new(verify::GUEST_RESULTS), &self.id);
        std::fs::write(&path, serde_json::to_string(&f)?).with_context(|| {
            format!("writing {} (is the results share mounted?)", path.display())
        })?;
        println!(
            "{} backing ranges for the host to check in {}",
            f.ranges.len(),
            path.display()
        );
        Ok(())
    }
}

/// What a device slot of `daxdevs.yaml` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A dax device of the device map (`dax0.0`): `/dev/dax0.0`, with its size.
    Dax(String),
    /// Any path (missing, not a dax device, ...), without a size.
    Path(String),
}

#[derive(Debug, Clone)]
pub struct FileSpec {
    pub path: String,
    pub map: FileMap,
    /// famfs "shared" flag: may overlap other shared files' device bytes.
    pub shared: bool,
}

impl FileSpec {
    pub fn new(path: &str, map: FileMap) -> FileSpec {
        FileSpec {
            path: path.into(),
            map,
            shared: false,
        }
    }
}

/// One server: its tree, its options.
#[derive(Debug, Clone)]
pub struct Spec {
    pub slots: BTreeMap<u32, Target>,
    pub files: Vec<FileSpec>,
    /// Extra (empty) directories.
    pub dirs: Vec<String>,
    pub ops: String,
    pub allow_resize: bool,
    /// Serve blobs from `blobs/` (famfs-fused `--blob-dir`); see [`Famfs::write_blob`].
    pub blob_dir: bool,
    /// More famfs-fused arguments (`--meta-size N`, `--evil F`, ...).
    pub args: Vec<String>,
    /// Bind the slots' dax devices to fsdev_dax first (off: the case chose the binding).
    pub bind_fsdev: bool,
    /// Drop CAP_SYS_RAWIO from the server (bounding set, so also after exec).
    pub drop_rawio: bool,
    /// With ops `famfs_native`, load the native module first.
    pub load_native: bool,
    /// Serve this existing tree (a user's, `lab up --shadow`) instead of writing one from
    /// `files`; `files` and `slots` must describe it.
    pub existing: Option<PathBuf>,
    /// Mount here, with the server's files in `<mountpoint>.server/`, instead of under the
    /// cases' directory (whose stale mounts every case sweeps away): `lab shell`'s mount.
    pub mountpoint: Option<PathBuf>,
}

impl Spec {
    pub fn new(ops: &str, slots: BTreeMap<u32, Target>) -> Spec {
        Spec {
            slots,
            files: Vec::new(),
            dirs: Vec::new(),
            ops: ops.into(),
            allow_resize: false,
            blob_dir: false,
            args: Vec::new(),
            bind_fsdev: true,
            drop_rawio: false,
            load_native: true,
            existing: None,
            mountpoint: None,
        }
    }

    pub fn file(mut self, path: &str, map: FileMap) -> Spec {
        self.files.push(FileSpec::new(path, map));
        self
    }

    pub fn arg(mut self, a: impl Into<String>) -> Spec {
        self.args.push(a.into());
        self
    }
}

/// The server's `--stats` file.
#[derive(Debug, Clone)]
pub struct Stats(pub serde_json::Value);

impl Stats {
    /// The counter at `pointer`. famfs-fused lists every file, slot and named opcode from the
    /// start (at 0), so a missing key is an error (a wrong path or slot, a changed format),
    /// never a count of 0 that would let an `== 0` check pass vacuously.
    fn num(&self, pointer: &str) -> Result<u64> {
        match self.0.pointer(pointer) {
            Some(v) => v
                .as_u64()
                .with_context(|| format!("server stats: {pointer} is {v}, not a count")),
            None => bail!(
                "server stats: no key {pointer} (the server lists every file, slot and named opcode from the start: the path, slot or opcode is wrong)"
            ),
        }
    }

    /// GET_FMAP requests for `path` (relative to the mount).
    pub fn fmap(&self, path: &str) -> Result<u64> {
        self.num(&format!(
            "/get_fmap/by_path/{}",
            path.replace('~', "~0").replace('/', "~1")
        ))
    }

    /// All GET_FMAP requests.
    pub fn fmap_total(&self) -> Result<u64> {
        self.opcode("GET_FMAP")
    }

    /// GET_DAXDEV requests for `slot`.
    pub fn daxdev(&self, slot: u32) -> Result<u64> {
        self.num(&format!("/get_daxdev/by_index/{slot}"))
    }

    pub fn daxdev_total(&self) -> Result<u64> {
        self.opcode("GET_DAXDEV")
    }

    pub fn opcode(&self, name: &str) -> Result<u64> {
        self.num(&format!("/opcodes/{name}"))
    }

    /// Error replies for opcode `name`.
    pub fn errors(&self, name: &str) -> Result<u64> {
        self.num(&format!("/errors/{name}"))
    }
}

/// The server exited before it was ready.
#[derive(Debug)]
pub struct StartFailure {
    pub status: Option<ExitStatus>,
    /// Its stderr and stdout.
    pub log: String,
}

static SEQ: AtomicUsize = AtomicUsize::new(0);
static SWEPT: OnceLock<()> = OnceLock::new();

/// A running famfs-fused with its mount.
pub struct Famfs {
    pub spec: Spec,
    pub mnt: PathBuf,
    pub stats_path: PathBuf,
    pub log_path: PathBuf,
    pub blobs: PathBuf,
    /// Slot -> dax device, for the expected bytes.
    pub slots: Slots,
    child: Option<Child>,
    maps: BTreeMap<String, FileMap>,
}

impl Famfs {
    /// Starts the server; an error (with its log) if it exits instead of getting ready.
    pub fn start(ctx: &Ctx<'_>, spec: Spec) -> Result<Famfs> {
        match Self::try_start(ctx, spec)? {
            Ok(f) => Ok(f),
            Err(fail) => bail!(
                "famfs-fused exited before it was ready ({}):\n{}",
                fail.status
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "still running".into()),
                fail.log
            ),
        }
    }

    /// Starts the server; `Ok(Err(..))` if it exits before it is ready (what some cases want).
    pub fn try_start(
        ctx: &Ctx<'_>,
        spec: Spec,
    ) -> Result<std::result::Result<Famfs, StartFailure>> {
        SWEPT.get_or_init(sweep_stale_mounts);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let (dir, mnt) = match &spec.mountpoint {
            Some(m) => (server_dir(m), m.clone()),
            None => {
                let dir = Path::new(CASES_DIR).join(format!("{}.{n}", ctx.id));
                (dir.clone(), dir.join("mnt"))
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (shadow, blobs) = (dir.join("shadow"), dir.join("blobs"));
        std::fs::create_dir_all(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
        std::fs::create_dir_all(&blobs)?;
        let mut slots = Slots::default();
        let mut devs = DaxDevs::default();
        for (&i, t) in &spec.slots {
            let dev = match t {
                Target::Dax(name) => {
                    let d = ctx
                        .map
                        .dax(name)
                        .with_context(|| format!("slot {i}: no {name} in the device map"))?;
                    slots.0.insert(i, d.clone());
                    DaxDev {
                        path: format!("/dev/{name}"),
                        size: Some(d.size),
                    }
                }
                Target::Path(p) => DaxDev {
                    path: p.clone(),
                    size: None,
                },
            };
            devs.0.insert(i, dev);
        }
        let shadow = match &spec.existing {
            Some(dir) => dir.clone(),
            None => {
                let tree = shadow_tree(&spec, devs);
                famfs_shadow::write(&tree, &shadow).map_err(|e| anyhow::anyhow!("{e}"))?;
                shadow
            }
        };
        if spec.bind_fsdev {
            let names: BTreeSet<&String> = spec
                .slots
                .values()
                .filter_map(|t| match t {
                    Target::Dax(n) => Some(n),
                    Target::Path(_) => None,
                })
                .collect();
            for name in names {
                setup::bind_fsdev(name)?;
            }
        }
        if spec.ops == "famfs_native" && spec.load_native && !sys::module_loaded(NATIVE_MODULE) {
            let _ = sys::run("modprobe", &[NATIVE_MODULE]);
        }
        let (stats_path, ready, log_path) = (
            dir.join("stats.json"),
            dir.join("ready"),
            dir.join("server.log"),
        );
        let log = std::fs::File::create(&log_path)?;
        let mut cmd = Command::new("famfs-fused");
        cmd.arg("--shadow")
            .arg(&shadow)
            .arg("--mountpoint")
            .arg(&mnt)
            .arg("--ops")
            .arg(&spec.ops)
            .arg("--stats")
            .arg(&stats_path)
            .arg("--ready-file")
            .arg(&ready);
        if spec.allow_resize {
            cmd.arg("--allow-resize");
        }
        if spec.blob_dir {
            cmd.arg("--blob-dir").arg(&blobs);
        }
        cmd.args(&spec.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        if spec.drop_rawio {
            drop_rawio(&mut cmd);
        }
        let mut child = cmd
            .spawn()
            .context("starting famfs-fused (is it in the image?)")?;
        let started = Instant::now();
        loop {
            if ready.exists() {
                break;
            }
            if let Some(status) = child.try_wait()? {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                return Ok(Err(StartFailure {
                    status: Some(status),
                    log,
                }));
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                bail!("famfs-fused not ready after {READY_TIMEOUT:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let maps = spec
            .files
            .iter()
            .map(|f| (f.path.clone(), f.map.clone()))
            .collect();
        println!(
            "famfs-fused ({}) ready in {:.2}s: {} files, slots {:?}",
            spec.ops,
            started.elapsed().as_secs_f64(),
            spec.files.len(),
            spec.slots
        );
        Ok(Ok(Famfs {
            spec,
            mnt,
            stats_path,
            log_path,
            blobs,
            slots,
            child: Some(child),
            maps,
        }))
    }

    /// The path of `rel` through the mount.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    /// The fmap `rel` was generated with (or set with [`Famfs::set_map`]).
    pub fn map(&self, rel: &str) -> Result<&FileMap> {
        self.maps
            .get(rel)
            .with_context(|| format!("no file {rel} in the tree"))
    }

    /// Records the map the server now serves for `rel` (after a size change).
    pub fn set_map(&mut self, rel: &str, map: FileMap) {
        self.maps.insert(rel.to_string(), map);
    }

    pub fn stats(&self) -> Result<Stats> {
        let text = std::fs::read_to_string(&self.stats_path)
            .with_context(|| format!("reading {}", self.stats_path.display()))?;
        Ok(Stats(
            serde_json::from_str(&text).context("parsing the server's stats")?,
        ))
    }

    /// Waits until the server answered a RELEASE for every OPEN (the kernel sends RELEASE in
    /// the background after the last close, and holds the inode until the reply), then drops
    /// unused dentries and inodes: the files' inodes, and their cached fmaps, are gone after.
    pub fn settle_and_drop_caches(&self) -> Result<()> {
        self.settle_releases()?;
        sys::drop_caches()
    }

    /// Waits until the server answered a RELEASE for every OPEN: no release of a closed file
    /// is still on its way (it would be served in the middle of whatever comes next).
    pub fn settle_releases(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.stats()?;
            // Replies written, not requests counted: the release's end (and its inode
            // reference) is gone once the server's write of the reply returned.
            let replied =
                s.0.get("release_replied")
                    .and_then(serde_json::Value::as_u64)
                    .context("no release_replied in the server's stats")?;
            // An OPEN answered with an error gets no RELEASE.
            let opened = s.opcode("OPEN")?.saturating_sub(s.errors("OPEN")?);
            if replied >= opened {
                break;
            }
            if Instant::now() > deadline {
                bail!(
                    "{} OPEN but {} RELEASE replied after 10 s: a file is still open",
                    s.opcode("OPEN")?,
                    replied
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// The server's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Where file bytes `[off, off + len)` of `rel` live.
    pub fn pieces(&self, rel: &str, off: u64, len: u64) -> Result<Vec<Piece>> {
        Ok(expect::pieces(self.map(rel)?, &self.slots, off, len)?)
    }

    /// The bytes `[off, off + len)` of `rel` must read as the host filled them; an error if the
    /// host's fill does not cover them.
    pub fn expected(&self, rel: &str, off: u64, len: u64) -> Result<Vec<u8>> {
        let plan = fill_plan()?;
        for p in self.pieces(rel, off, len)? {
            if !plan.covers(&p.memdev, p.backing_off, p.len) {
                bail!(
                    "{rel}+{:#x}: its bytes ({}+{:#x}, backing {}+{:#x}) are outside the host's fill ({})",
                    p.file_off,
                    p.dax,
                    p.dax_off,
                    p.memdev,
                    p.backing_off,
                    verify::FILL_PLAN
                );
            }
        }
        Ok(expect::expected_fill(
            self.map(rel)?,
            &self.slots,
            off,
            len,
        )?)
    }

    /// The bytes of `[off, off + len)` of `rel` once pattern `seed` is written there.
    pub fn seeded(&self, rel: &str, off: u64, len: u64, seed: &str) -> Result<Vec<u8>> {
        Ok(expect::expected_seed(
            self.map(rel)?,
            &self.slots,
            off,
            len,
            seed,
        )?)
    }

    /// Backing ranges of `[off, off + len)` of `rel` holding `seed` (None: the fill).
    pub fn ranges(
        &self,
        rel: &str,
        off: u64,
        len: u64,
        seed: Option<&str>,
    ) -> Result<Vec<VerifyRange>> {
        Ok(expect::verify_ranges(
            self.map(rel)?,
            &self.slots,
            off,
            len,
            seed,
        )?)
    }

    /// Stores the blob the server serves for `rel` from now on (`--blob-dir`).
    pub fn write_blob(&self, rel: &str, blob: &[u8]) -> Result<()> {
        let p = self.blobs.join(rel);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, blob).with_context(|| format!("writing {}", p.display()))
    }

    /// Kills the server with SIGKILL (the mount stays, its connection dead) and reaps it.
    pub fn kill_server(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("famfs-fused is not running");
        };
        child.kill().context("killing famfs-fused")?;
        child.wait().context("reaping famfs-fused")?;
        self.child = None;
        Ok(())
    }

    /// Unmounts a mount whose server is gone: `umount` (lazily if a file is still open).
    /// Returns how it went, for the case's log.
    pub fn umount_dead(&self) -> std::result::Result<&'static str, i32> {
        match umount(&self.mnt, 0) {
            Ok(()) => Ok("umount"),
            Err(libc::EBUSY) => umount(&self.mnt, libc::MNT_DETACH).map(|_| "lazy umount (busy)"),
            Err(e) => Err(e),
        }
    }

    /// Leaves the server running and mounted after this process ends (`lab shell`'s mount;
    /// PID 1 reaps it).
    pub fn detach(mut self) {
        self.child = None;
    }

    /// Unmounts and waits for the server; an error if it does not end cleanly.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let mut how = "umount";
        if let Err(e) = umount(&self.mnt, 0) {
            // Busy: a file still open somewhere; the server aborts after its own timeout.
            how = "lazy umount";
            if e != libc::EINVAL {
                let _ = umount(&self.mnt, libc::MNT_DETACH);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let s = child.wait()?;
                let _ = umount(&self.mnt, libc::MNT_DETACH);
                bail!(
                    "famfs-fused did not end within 10 s of the {how} ({s}):\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if !status.success() {
            bail!(
                "famfs-fused ended with {status} after the {how}:\n{}",
                self.log()
            );
        }
        Ok(())
    }
}

impl Drop for Famfs {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            println!("cleanup: {e:#}");
        }
    }
}

const CAP_SYS_RAWIO: libc::c_ulong = 17;

/// Makes `cmd` run without CAP_SYS_RAWIO: dropped from the bounding set before exec, so a
/// root process does not get it back (its other capabilities stay).
pub fn drop_rawio(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_RAWIO, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn umount(path: &Path, flags: i32) -> std::result::Result<(), i32> {
    let c =
        std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(c.as_ptr(), flags) } == 0 {
        Ok(())
    } else {
        Err(sys::errno(&std::io::Error::last_os_error()))
    }
}

/// Where the server of a mount at `mnt` keeps its tree copy, stats and log: `<mnt>.server`.
pub fn server_dir(mnt: &Path) -> PathBuf {
    let mut s = mnt.as_os_str().to_os_string();
    s.push(".server");
    PathBuf::from(s)
}

/// Lazily unmounts famfs mounts a killed case left behind (they hold their dax devices).
fn sweep_stale_mounts() {
    let Ok(text) = std::fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    for l in text.lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() > 2 && f[2].starts_with("fuse") && f[1].starts_with(CASES_DIR) {
            println!("unmounting {} left by an earlier case", f[1]);
            let _ = umount(Path::new(f[1]), libc::MNT_DETACH);
        }
    }
}

/// The host's fill plan (`/results/fill.json`), read once.
pub fn fill_plan() -> Result<&'static FillPlan> {
    static PLAN: OnceLock<std::result::Result<FillPlan, String>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let p = Path::new(verify::GUEST_RESULTS).join(verify::FILL_PLAN);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            format!(
                "{}: {e} (the host fills the backing files for the fmap suites and says so there)",
                p.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", p.display()))
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn shadow_tree(spec: &Spec, daxdevs: DaxDevs) -> ShadowTree {
    let dir = |path: &str| ShadowDir {
        path: path.into(),
        mode: 0o755,
        uid: 0,
        gid: 0,
    };
    let mut dirs: BTreeSet<String> = spec.dirs.iter().cloned().collect();
    for f in &spec.files {
        let mut p = f.path.as_str();
        while let Some((parent, _)) = p.rsplit_once('/') {
            dirs.insert(parent.to_string());
            p = parent;
        }
    }
    let mut all = vec![dir("")];
    let mut sorted: Vec<String> = dirs.into_iter().collect();
    sorted.sort_by_key(|d| (d.matches('/').count(), d.clone()));
    all.extend(sorted.iter().map(|d| dir(d)));
    ShadowTree {
        daxdevs,
        dirs: all,
        files: spec
            .files
            .iter()
            .map(|f| ShadowFile {
                path: f.path.clone(),
                attrs: FileAttrs {
                    size: f.map.file_size,
                    flags: if f.shared { FLAG_SHARED } else { 0 },
                    mode: 0o644,
                    uid: 0,
                    gid: 0,
                },
                map: f.map.clone(),
            })
            .collect(),
    }
}

/// The fmap ops other than `famfs` need: the native module loaded. The reason if it cannot be.
pub fn native_available() -> std::result::Result<(), String> {
    if sys::module_loaded(NATIVE_MODULE) {
        return Ok(());
    }
    let (ok, out) = sys::run("modprobe", &[NATIVE_MODULE]);
    if ok && sys::module_loaded(NATIVE_MODULE) {
        Ok(())
    } else {
        Err(format!(
            "the famfs_native ops are not in this kernel: modprobe {NATIVE_MODULE} failed ({}); CONFIG_FUSE_DAX_FMAP_NATIVE_TEST / patch 10",
            out.trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::expect::{simple_map, AreaAlloc, READ_AREA};

    #[test]
    fn stats_read_counts_by_path_index_and_opcode() {
        let s = Stats(serde_json::json!({
            "opcodes": {"GET_FMAP": 3, "GET_DAXDEV": 1},
            "errors": {"OPEN": 2},
            "get_fmap": {"by_nodeid": {"5": 2}, "by_path": {"d/a": 2, "b": 1, "z": 0}},
            "get_daxdev": {"by_index": {"0": 1, "1": 0}}
        }));
        assert_eq!((s.fmap("d/a").unwrap(), s.fmap("b").unwrap()), (2, 1));
        assert_eq!(s.fmap("z").unwrap(), 0);
        assert_eq!((s.daxdev(0).unwrap(), s.daxdev(1).unwrap()), (1, 0));
        assert_eq!(s.fmap_total().unwrap(), 3);
        assert_eq!(s.errors("OPEN").unwrap(), 2);
        // a missing key is an error naming it, never 0
        let e = s.fmap("c").unwrap_err().to_string();
        assert!(e.contains("/get_fmap/by_path/c"), "{e}");
        assert!(s.daxdev(2).is_err());
        assert!(s.errors("LOOKUP").is_err());
        assert!(s.opcode("OPEN").is_err());
    }

    /// The harness against the host's own FUSE (no fmap): start, stats, stop. Needs root,
    /// /dev/fuse and famfs-fused on PATH: `PATH=$PWD/target/release:$PATH cargo test -p
    /// famfs-lab-cases -- --ignored harness_on_host`.
    #[test]
    #[ignore]
    fn harness_on_host_plain_fuse() {
        let mut a = AreaAlloc::new(READ_AREA);
        let m = simple_map(&mut a, &[(0, 2 << 20)], 5000).unwrap();
        let mut slots = BTreeMap::new();
        slots.insert(0, Target::Path("/dev/null".into()));
        let mut spec = Spec::new("famfs", slots).file("d/f", m);
        spec.args.push("--no-fmap".into());
        spec.bind_fsdev = false;
        let map = DeviceMap::default();
        let ctx = Ctx::new("host.harness", &map);
        let fs = Famfs::start(&ctx, spec).unwrap();
        assert_eq!(std::fs::metadata(fs.path("d/f")).unwrap().len(), 5000);
        let st = fs.stats().unwrap();
        assert!(st.opcode("LOOKUP").unwrap() >= 2, "{:?}", st.0);
        assert_eq!(st.fmap_total().unwrap(), 0);
        fs.stop().unwrap();
        let mut slots = BTreeMap::new();
        slots.insert(0, Target::Path("/dev/null".into()));
        let mut spec = Spec::new("famfs", slots);
        spec.bind_fsdev = false;
        spec.args.push("--bogus".into());
        let fail = Famfs::try_start(&ctx, spec)
            .unwrap()
            .err()
            .expect("must fail");
        assert_eq!(fail.status.and_then(|s| s.code()), Some(2), "{}", fail.log);
    }

    #[test]
    fn shadow_tree_has_every_parent_directory_and_loads() {
        let mut a = AreaAlloc::new(READ_AREA);
        let m = simple_map(&mut a, &[(0, 2 << 20)], 5000).unwrap();
        let mut slots = BTreeMap::new();
        slots.insert(0, Target::Path("/dev/dax0.0".into()));
        let spec = Spec::new("famfs", slots)
            .file("x/y/f", m.clone())
            .file("g", m);
        let mut spec = spec;
        spec.files[1].shared = true;
        spec.files[0].shared = true;
        let devs = DaxDevs(
            [(
                0,
                DaxDev {
                    path: "/dev/dax0.0".into(),
                    size: Some(1 << 30),
                },
            )]
            .into_iter()
            .collect(),
        );
        let t = shadow_tree(&spec, devs);
        let names: Vec<_> = t.dirs.iter().map(|d| d.path.as_str()).collect();
        assert_eq!(names, ["", "x", "x/y"]);
        let d = tempfile::tempdir().unwrap();
        famfs_shadow::write(&t, d.path()).unwrap();
        let back = famfs_shadow::load(d.path()).unwrap();
        assert_eq!(back.files.len(), 2);
    }
}
