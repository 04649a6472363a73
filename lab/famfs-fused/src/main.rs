//! famfs-fused: serve a famfs shadow tree as a FUSE file system with the DAX fmap extension.
//! See README.md for the command line, the stats file and the BPF ops.

use anyhow::{bail, Context};
use clap::Parser;
use famfs_fused::bpf::{self, BpfOptions, EvilFlavour};
use famfs_fused::dispatch::{Config, Server};
use famfs_fused::fs::Fs;
use famfs_fused::ops::OpsKind;
use famfs_fused::session::{self, MountSpec, RunOptions};
use famfs_fused::stats::Stats;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// Shadow tree: DIR/daxdevs.yaml and DIR/root/ (one famfs YAML per file).
    #[arg(long, value_name = "DIR")]
    shadow: PathBuf,
    /// Where to mount (required unless --check, --fmap-dump or --bpf-check).
    #[arg(long, value_name = "DIR")]
    mountpoint: Option<PathBuf>,
    /// The fmap ops: loaded as BPF struct_ops (except famfs_native) and named at INIT.
    #[arg(long, value_enum, default_value = "famfs", value_name = "NAME")]
    ops: OpsKind,
    /// Plain FUSE: do not ask for FUSE_DAX_FMAP and load no BPF (works on any kernel).
    #[arg(long)]
    no_fmap: bool,
    /// Accept size changes (default: EINVAL) and serve a truncated or grown fmap.
    #[arg(long)]
    allow_resize: bool,
    /// Worker threads, each reading its own cloned /dev/fuse fd.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Per-opcode counters as JSON, rewritten atomically after every request.
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Send notifications on command: one command per line written to this FIFO
    /// (inval_inode PATH OFF LEN | store PATH OFF LEN BYTE | retrieve PATH OFF LEN).
    #[arg(long, value_name = "FIFO", requires = "notify_log")]
    notify_fifo: Option<PathBuf>,
    /// Where each notification's result goes (`LINE: ok` or `LINE: errno N`).
    #[arg(long, value_name = "FILE", requires = "notify_fifo")]
    notify_log: Option<PathBuf>,
    /// Written once the mount answers (one line: mountpoint, FUSE version, ops, pid).
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Print this file's decoded fmap and device ranges, then exit.
    #[arg(long, value_name = "PATH")]
    fmap_dump: Option<String>,
    /// Validate the shadow tree, then exit.
    #[arg(long)]
    check: bool,
    /// Load and attach the BPF ops (verifier included), then exit.
    #[arg(long)]
    bpf_check: bool,
    /// Extra mount options, comma-separated.
    #[arg(long, value_name = "OPTS")]
    mount_opts: Option<String>,
    #[arg(long, default_value = "fuse.famfs")]
    fstype: String,
    /// The mount's source: its name in /proc/mounts, the block device for `--fstype fuseblk`.
    #[arg(long, default_value = "famfs", value_name = "SOURCE")]
    source: String,
    /// Entry and attribute cache timeout.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    attr_timeout_ms: u64,
    /// Negative tests: send this meta_size in every GET_FMAP reply.
    #[arg(long, value_name = "BYTES")]
    meta_size: Option<u32>,
    /// Negative tests: append this many zero bytes to every GET_FMAP blob.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    blob_extra: usize,
    /// Negative tests and fuzzing: serve DIR/PATH (read at every GET_FMAP) as the blob of file
    /// PATH when it exists, instead of the shadow tree's map.
    #[arg(long, value_name = "DIR")]
    blob_dir: Option<PathBuf>,
    /// evil_oob: what iomap_begin gets wrong.
    #[arg(long, value_enum, default_value = "past-end")]
    evil: EvilFlavour,
    /// evil_oob past-end: the device size to map at (0: 1 TiB past the right address).
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    evil_dev_size: u64,
    /// evil_oob other-device: the slot to claim.
    #[arg(long, default_value_t = 23)]
    evil_dev_index: u32,
    /// evil_oob other-file: the device address file offset 0 maps to; alias: the device page
    /// every page of the file maps to.
    #[arg(long, default_value_t = 0, value_name = "BYTES")]
    evil_addr: u64,
    /// evil_oob short-length: the length to return; misaligned: the bytes to move addr by.
    #[arg(long, default_value_t = 1, value_name = "BYTES")]
    evil_length: u64,
    /// Negative tests: set FUSE_DAX_FMAP and name the ops in the INIT reply even when the
    /// kernel did not offer it (the kernel must ignore it).
    #[arg(long)]
    claim_fmap: bool,
    /// Negotiate FUSE_ATOMIC_O_TRUNC: open(O_TRUNC) truncates in OPEN, not in a SETATTR.
    #[arg(long)]
    atomic_o_trunc: bool,
    /// reject_all: the errno every parse fails with.
    #[arg(long, default_value_t = libc::EPERM as u32)]
    reject_errno: u32,
    /// Verifier log level for every program (1 or 2; 0 = libbpf's default).
    #[arg(long, default_value_t = 0)]
    bpf_log_level: u32,
    /// Echo libbpf's messages as they come.
    #[arg(long)]
    bpf_verbose: bool,
    /// Load dax_fmap_parse as a non-sleepable program.
    #[arg(long)]
    parse_not_sleepable: bool,
    /// Negative tests: open dax devices read-only to register them (the kernel must refuse).
    #[arg(long)]
    daxdev_read_only: bool,
    /// Negative tests: drop CAP_SYS_RAWIO right after the mount, as a daemon mounted by a
    /// setuid helper would run (registering a device must then fail).
    #[arg(long)]
    drop_rawio_after_mount: bool,
    /// Negative tests: register every slot twice (stats `probes`, `again:N`).
    #[arg(long)]
    register_twice: bool,
    /// Negative tests: after registering a slot, also register its device at this index
    /// (repeatable; stats `probes`, `index:N`).
    #[arg(long, value_name = "N")]
    register_bad_index: Vec<u32>,
    /// Negative tests: answer GET_DAXDEV without registering a device.
    #[arg(long)]
    reply_without_register: bool,
    /// Negative tests: once unmounted, register slot 0 again (stats `probes`,
    /// `after-unmount:0`).
    #[arg(long)]
    register_after_unmount: bool,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("famfs-fused: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let tree = famfs_shadow::load(&cli.shadow).map_err(|e| anyhow::anyhow!("{e}"))?;
    if cli.check {
        println!(
            "{}: {} directories, {} files, {} devices: OK",
            cli.shadow.display(),
            tree.dirs.len(),
            tree.files.len(),
            tree.daxdevs.0.len()
        );
        return Ok(());
    }
    if let Some(p) = &cli.fmap_dump {
        let want = famfs_shadow::normalize(p);
        let f = tree
            .files
            .iter()
            .find(|f| f.path == want)
            .with_context(|| format!("no file {want:?} in the shadow tree"))?;
        print!(
            "{}",
            famfs_fused::dump::render(&f.path, &f.map, &tree.daxdevs, cli.ops.meta_size(&f.map))
        );
        return Ok(());
    }
    if cli.ops == famfs_fused::ops::OpsKind::EvilOob
        && cli.evil == EvilFlavour::StraddleEnd
        && cli.evil_dev_size < 8192
    {
        bail!("--evil straddle-end needs --evil-dev-size (the device's size in bytes)");
    }
    let fmap = !cli.no_fmap;
    let bpf_opts = BpfOptions {
        evil: cli.evil,
        evil_dev_size: cli.evil_dev_size,
        evil_dev_index: cli.evil_dev_index,
        evil_addr: cli.evil_addr,
        evil_length: cli.evil_length,
        reject_errno: cli.reject_errno,
        log_level: cli.bpf_log_level,
        sleepable_parse: !cli.parse_not_sleepable,
        verbose: cli.bpf_verbose,
    };
    // Attached before the mount (INIT names the ops), dropped after the unmount.
    let attached = if fmap || cli.bpf_check {
        bpf::load(cli.ops, &bpf_opts)?
    } else {
        None
    };
    if cli.bpf_check {
        println!(
            "BPF ops {}: {}",
            cli.ops.name(),
            if attached.is_some() {
                "loaded and attached"
            } else {
                "native, nothing to load"
            }
        );
        return Ok(());
    }
    let Some(mountpoint) = cli.mountpoint.clone() else {
        bail!("--mountpoint is required to serve");
    };
    let stats = Stats::new(cli.stats.clone(), cli.ops.name(), fmap);
    stats.seed(
        tree.files.iter().map(|f| f.path.clone()),
        tree.daxdevs.0.keys().copied(),
    );
    let fs = Fs::from_tree(&tree, Duration::from_millis(cli.attr_timeout_ms));
    let cfg = Config {
        ops: cli.ops,
        fmap,
        allow_resize: cli.allow_resize,
        meta_size_override: cli.meta_size,
        blob_extra: cli.blob_extra,
        blob_dir: cli.blob_dir.clone(),
        claim_fmap: cli.claim_fmap,
        atomic_o_trunc: cli.atomic_o_trunc,
        daxdev_open: if cli.daxdev_read_only {
            famfs_fused::register::OpenMode::ReadOnly
        } else {
            famfs_fused::register::OpenMode::ReadWrite
        },
        register_abuse: famfs_fused::register::Abuse {
            twice: cli.register_twice,
            bad_index: cli.register_bad_index.clone(),
            reply_only: cli.reply_without_register,
            after_unmount: cli.register_after_unmount,
        },
        max_write: 128 << 10,
    };
    let server = Arc::new(Server::new(fs, stats, cfg));
    let spec = MountSpec {
        mountpoint,
        fstype: cli.fstype.clone(),
        source: cli.source.clone(),
        extra: cli.mount_opts.clone(),
    };
    let opts = RunOptions {
        threads: cli.threads,
        ready_file: cli.ready_file.clone(),
        notify: cli.notify_fifo.clone().zip(cli.notify_log.clone()),
        drop_rawio: cli.drop_rawio_after_mount,
    };
    let res = session::run(server, &spec, &opts);
    drop(attached);
    res
}
