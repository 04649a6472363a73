//! `cargo xtask lab bench boot [--peer vng] [--reps N]`: the whole one-case `lab up` (boot, CXL
//! enumeration, region, dax device, the case, the report) timed from spawn to exit of this
//! binary's `lab up` (cargo's part left out), and with `--peer` the peer's boot of the same
//! kernel, the two in alternating order. The measuring holds the kernel-build lock, so no
//! kernel build of the lab runs meanwhile. Prints the table (each repetition, the ratio with
//! its spread, where our time goes) and writes `target/lab/bench/boot.json` (or
//! `boot-<peer>.json`).

use anyhow::{bail, Context, Result};
use clap::Args;
use lab_bench::boot::{self, BootBench, BootFacts, BootRep, LabSample, PeerSample, RunFacts};
use lab_host::stage::Timings;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use xshell::Shell;

use crate::bench_peer::{Peer, Vng};
use crate::up::UpArgs;

/// The case a boot benchmark runs when none is named.
const DEFAULT_CASE: &str = "smoke.memdevs";

#[derive(Args, Debug)]
pub struct BootArgs {
    #[command(flatten)]
    pub lab: UpArgs,
    /// Repetitions (each: ours, and the peer's when there is one).
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// Also boot the same kernel with this peer, alternating which goes first; prints the
    /// ratio ours / peer (virtme-ng is installed from PyPI into the cache when missing).
    #[arg(long, value_enum)]
    pub peer: Option<Peer>,
}

/// The `lab up` arguments that reproduce `a` (what the bench times is that command).
pub(crate) fn up_argv(a: &UpArgs) -> Result<Vec<String>> {
    if a.shadow.is_some() || a.ktap {
        bail!("lab bench boot times the plain `lab up`: --shadow and --ktap do not apply");
    }
    let k = &a.kernel;
    let mut v = vec![
        "lab".to_string(),
        "up".into(),
        "--kernel".into(),
        k.kernel.clone(),
    ];
    if let Some(dir) = &k.source_dir {
        v.extend(["--source-dir".into(), dir.display().to_string()]);
    }
    for f in &k.fragments {
        v.extend(["--fragment".into(), f.clone()]);
    }
    if k.no_install {
        v.push("--no-install".into());
    }
    v.extend(["--topology".into(), a.topology.clone()]);
    for s in &a.suites {
        v.extend(["--suite".into(), s.clone()]);
    }
    for c in &a.cases {
        v.extend(["--case".into(), c.clone()]);
    }
    if !a.cmdline.is_empty() {
        v.extend(["--cmdline".into(), a.cmdline.clone()]);
    }
    v.extend(["--ops".into(), a.ops.name().to_string()]);
    v.extend(["--boot-timeout".into(), a.boot_timeout.to_string()]);
    Ok(v)
}

/// Which goes first in repetition `rep`: ours in even ones, the peer in odd ones.
pub(crate) fn order(rep: usize, peer: Option<Peer>) -> Vec<String> {
    match peer {
        None => vec!["lab".into()],
        Some(p) if rep % 2 == 1 => vec![p.name().into(), "lab".into()],
        Some(p) => vec!["lab".into(), p.name().into()],
    }
}

pub fn run(sh: &Shell, mut args: BootArgs) -> Result<()> {
    if args.lab.cases.is_empty() && args.lab.suites.is_empty() {
        args.lab.cases = vec![DEFAULT_CASE.into()];
    }
    let argv = up_argv(&args.lab)?;
    // Kernel and image built (or found) here, so the timed runs only find them in the cache.
    let mut t = Timings::default();
    let prepared = crate::up::prepare(sh, &args.lab.kernel, &args.lab.topology, &mut t)?;
    let config = std::fs::read_to_string(prepared.kernel.entry.config())
        .context("reading the kernel's config")?;
    let out_dir = lab_host::paths::repo_root().join("target/lab/bench");
    let logs = out_dir.join("boot-logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let cache = lab_host::paths::cache_root();
    let mut vng = match args.peer {
        Some(Peer::Vng) => {
            let bzimage = prepared.kernel.entry.bzimage();
            let mut v = Vng::install(&cache, &bzimage)?;
            lab_host::progress!("famfs-lab: checking that vng boots {}", bzimage.display());
            v.check(&logs.join("vng-check.log"))?;
            Some(v)
        }
        None => None,
    };
    let exe = std::env::current_exe().context("finding this binary")?;
    let lab_command = format!("{} {}", exe.display(), argv.join(" "));

    let lock = lab_host::lock::exclusive(&cache.join("kernel-build.lock"), "a kernel build")?;
    let load_before = loadavg();
    let mut reps = Vec::new();
    for rep in 0..args.reps.max(1) {
        let order = order(rep, args.peer);
        let mut lab = None;
        let mut peer = None;
        for who in &order {
            if who == "lab" {
                // Only a measurement: when cargo cannot be timed, the row says so ("-").
                let cargo_ms = cargo_start_once()
                    .inspect_err(|e| eprintln!("famfs-lab: not timing cargo's start: {e:#}"))
                    .ok();
                let mut sample = lab_once(&exe, &argv, &logs.join(format!("lab-{rep}.log")))?;
                sample.cargo_ms = cargo_ms;
                lab = Some(sample);
            } else if let Some(v) = vng.as_mut() {
                let r = v.run(&logs.join(format!("vng-{rep}.log")))?;
                peer = Some(PeerSample {
                    wall_ms: ms(r.wall),
                    ok: r.ok,
                });
            }
        }
        let lab = lab.context("the lab's run is in every repetition")?;
        lab_host::progress!(
            "famfs-lab: rep {rep}: lab up {:.2}s{}",
            lab.wall_ms / 1000.0,
            peer.as_ref()
                .map(|p| format!(", vng {:.2}s", p.wall_ms / 1000.0))
                .unwrap_or_default()
        );
        reps.push(BootRep {
            rep,
            order,
            lab,
            peer,
        });
    }
    let load_after = loadavg();
    drop(lock);

    let bench = BootBench {
        facts: BootFacts {
            lab_command,
            peer_command: vng.as_ref().map(Vng::command_line),
            peer_version: vng.as_ref().and_then(Vng::version),
            accel: prepared.accel.accel.as_str().to_string(),
            kernel_key: prepared.kernel.meta.key.clone(),
            kernel_image: prepared
                .kernel
                .entry
                .boot_image(&config)
                .display()
                .to_string(),
            host_cpus: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0),
            load_before,
            load_after,
            held_build_lock: true,
        },
        summary: boot::summarize(&reps),
        reps,
    };
    println!(
        "{}",
        boot::render(&bench, args.peer.map(Peer::name)).trim_end()
    );
    let name = match args.peer {
        Some(p) => format!("boot-{}.json", p.name()),
        None => "boot.json".into(),
    };
    let path = out_dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(&bench)?)
        .with_context(|| format!("writing {}", path.display()))?;
    lab_host::progress!(
        "famfs-lab: wrote {} (load average {:?} before, {:?} after)",
        path.display(),
        bench.facts.load_before,
        bench.facts.load_after
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn loadavg() -> Vec<f64> {
    boot::parse_loadavg(&std::fs::read_to_string("/proc/loadavg").unwrap_or_default())
}

/// What cargo adds in front of `cargo xtask lab up` (its start and the freshness check of
/// xtask and its dependencies): `cargo xtask --version` timed from spawn to exit, which does
/// all of that and runs a binary that prints one line.
fn cargo_start_once() -> Result<f64> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let started = Instant::now();
    let out = Command::new(&cargo)
        .args(["xtask", "--version"])
        .current_dir(lab_host::paths::repo_root())
        .stdin(Stdio::null())
        .output()
        .context("timing cargo's start (`cargo xtask --version`)")?;
    let took = ms(started.elapsed());
    if !out.status.success() {
        bail!(
            "`cargo xtask --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(took)
}

/// How long one timed `lab up` may take before it is stopped.
const LAB_TIMEOUT: Duration = Duration::from_secs(600);

/// One `lab up` of this binary, timed from spawn to exit, with its stages.
fn lab_once(exe: &Path, argv: &[String], log: &Path) -> Result<LabSample> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = file.try_clone()?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(argv)
        .current_dir(lab_host::paths::repo_root())
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .spawn()
        .context("starting lab up")?;
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if started.elapsed() > LAB_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "lab up took longer than {LAB_TIMEOUT:?}; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall_ms = ms(started.elapsed());
    // The run id ends with the process id (up::run_id).
    let run_dir = run_dir_of(&lab_host::paths::runs_dir(), child.id()).with_context(|| {
        format!(
            "the run of pid {} (its output: {})",
            child.id(),
            log.display()
        )
    })?;
    let run_id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (stages_ms, stages_missing) = match stages_of(&run_dir, wall_ms) {
        Ok(s) => (s, None),
        Err(e) => (Vec::new(), Some(format!("{e:#}"))),
    };
    Ok(LabSample {
        run_id,
        wall_ms,
        passed: status.success(),
        stages_ms,
        stages_missing,
        cargo_ms: None,
    })
}

/// The newest run directory `<secs>-<pid>` of process `pid`.
fn run_dir_of(runs: &Path, pid: u32) -> Result<PathBuf> {
    let suffix = format!("-{pid}");
    std::fs::read_dir(runs)
        .with_context(|| format!("listing {}", runs.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let secs: u64 = name.strip_suffix(&suffix)?.parse().ok()?;
            Some((secs, e.path()))
        })
        .max()
        .map(|(_, p)| p)
        .context("no run directory")
}

/// The stages of the run in `run_dir` (its meta and serial log) for a command of `wall_ms`.
fn stages_of(run_dir: &Path, wall_ms: f64) -> Result<Vec<f64>> {
    let results = run_dir.join("results.json");
    let text = std::fs::read_to_string(&results)
        .with_context(|| format!("reading {}", results.display()))?;
    let report: lab_report::RunReport =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", results.display()))?;
    let meta_ms = |k: &str| -> Result<f64> {
        report
            .meta
            .get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .with_context(|| format!("{}: no meta {k}", results.display()))
    };
    let serial = std::fs::read_to_string(run_dir.join("serial.log")).context("the serial log")?;
    boot::stages(&RunFacts {
        wall_ms,
        qemu_start_ms: meta_ms("qemu_start_ms")?,
        agent_ready_ms: meta_ms("boot_ms")?,
        serial: &serial,
    })
    .map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        b: BootArgs,
    }

    #[test]
    fn the_timed_command_carries_the_flags_given() {
        let cli = Cli::parse_from([
            "x",
            "--topology",
            "two-devices",
            "--fragment",
            "debug",
            "--case",
            "smoke.memdevs",
            "--peer",
            "vng",
        ]);
        let v = up_argv(&cli.b.lab).unwrap().join(" ");
        assert!(
            v.starts_with("lab up --kernel famfs-bpf --fragment debug"),
            "{v}"
        );
        assert!(
            v.contains("--topology two-devices --case smoke.memdevs --ops famfs"),
            "{v}"
        );
        assert_eq!(cli.b.peer, Some(Peer::Vng));
        let again = Cli::parse_from(
            std::iter::once("x".to_string())
                .chain(up_argv(&cli.b.lab).unwrap().into_iter().skip(2)),
        );
        assert_eq!(
            up_argv(&again.b.lab).unwrap().join(" "),
            v,
            "the argv parses back to itself"
        );
    }

    #[test]
    fn the_bench_cuts_at_the_agents_own_line() {
        assert_eq!(
            lab_bench::boot::marks::INIT,
            lab_agent_proto::INIT_STARTED_MARKER
        );
    }

    #[test]
    fn the_peer_goes_first_every_other_repetition() {
        assert_eq!(order(0, Some(Peer::Vng)), ["lab", "vng"]);
        assert_eq!(order(1, Some(Peer::Vng)), ["vng", "lab"]);
        assert_eq!(order(2, Some(Peer::Vng)), ["lab", "vng"]);
        assert_eq!(order(1, None), ["lab"]);
    }

    #[test]
    fn finds_the_run_of_a_process() {
        let d = tempfile::tempdir().unwrap();
        for n in ["100-41", "101-4", "99-4", "102-14"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        assert_eq!(run_dir_of(d.path(), 4).unwrap(), d.path().join("101-4"));
        assert!(run_dir_of(d.path(), 5).is_err());
    }
}
