//! `cargo xtask lab up`: the whole chain (kernel -> image -> VM -> suites -> report), and
//! what the other verbs that boot a guest share with it (the topology, the kernel and image
//! prepared, the run id, the report's timestamp).

use anyhow::{Context, Result};
use clap::Args;
use lab_host::stage::Timings;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use xshell::Shell;

use crate::build_args::BuildArgs;

#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub kernel: BuildArgs,
    /// A topology name (lab/topologies/NAME.yaml) or a path to one.
    #[arg(long, default_value = "default")]
    pub topology: String,
    /// Run these suites (default: the default suites).
    #[arg(long = "suite")]
    pub suites: Vec<String>,
    /// Run only these cases (SUITE.NAME).
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Extra kernel command line.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// The fmap ops the cases mount with.
    #[arg(long, env = "FAMFS_LAB_OPS", value_enum, default_value_t = crate::ops::Ops::Famfs)]
    pub ops: crate::ops::Ops,
    /// Seconds QEMU may take to boot the guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// Print the results as KTAP on stdout (the summary then goes to stderr); they are in
    /// RUN/results.ktap either way.
    #[arg(long)]
    pub ktap: bool,
    /// A famfs shadow tree you bring (daxdevs.yaml + root/): validated before anything is
    /// built, mounted in the guest, every file's bytes checked (the `shadow` suite, which is
    /// then the default).
    #[arg(long, value_name = "DIR")]
    pub shadow: Option<std::path::PathBuf>,
    /// The bytes of daxdevs.yaml device INDEX (an image from its offset 0), written where the
    /// tree's files map it; devices without one get the lab's pattern. Needs --shadow.
    #[arg(long = "daxdev-data", value_name = "INDEX=FILE", requires = "shadow")]
    pub daxdev_data: Vec<String>,
    /// Guest time (set by `lab bench fault --clock`): icount runs under TCG only.
    #[arg(skip)]
    pub clock: lab_vm::Clock,
    /// The guest's vCPUs instead of the topology's (set by `lab bench fault`).
    #[arg(skip)]
    pub cpus: Option<u32>,
}

impl UpArgs {
    /// The `lab up` a verb that drives runs makes (bisect, mutate, the benchmark): `kernel` on
    /// `topology` with `ops`, the default suites, no extra command line, no KTAP, no user tree.
    pub(crate) fn driven(
        kernel: BuildArgs,
        topology: &str,
        ops: crate::ops::Ops,
        boot_timeout: u64,
    ) -> UpArgs {
        UpArgs {
            kernel,
            topology: topology.to_string(),
            suites: Vec::new(),
            cases: Vec::new(),
            cmdline: String::new(),
            ops,
            ktap: false,
            boot_timeout,
            shadow: None,
            daxdev_data: Vec::new(),
            clock: lab_vm::Clock::Host,
            cpus: None,
        }
    }

    /// The user's tree of `--shadow`, checked (file and line for every problem).
    fn user_tree(&self) -> Result<Option<lab_runner::user_tree::UserTree>> {
        user_tree(self.shadow.as_deref(), &self.daxdev_data)
    }
}

/// The tree of `--shadow DIR` with its `--daxdev-data`, checked (file and line for every
/// problem) before anything is built.
pub(crate) fn user_tree(
    dir: Option<&std::path::Path>,
    daxdev_data: &[String],
) -> Result<Option<lab_runner::user_tree::UserTree>> {
    let Some(dir) = dir else {
        return Ok(None);
    };
    let mut data = std::collections::BTreeMap::new();
    for arg in daxdev_data {
        let (i, file) = lab_runner::user_tree::parse_data_arg(arg)?;
        if data.insert(i, file).is_some() {
            anyhow::bail!("--daxdev-data: index {i} given twice");
        }
    }
    let tree = lab_runner::user_tree::UserTree {
        dir: dir.to_path_buf(),
        data,
    };
    let checked = tree.check()?;
    lab_host::progress!(
        "famfs-lab: shadow tree {}: {} files, {} directories, valid",
        dir.display(),
        checked.files.len(),
        checked.dirs.len()
    );
    Ok(Some(tree))
}

fn load_topology(name: &str) -> Result<lab_vm::Topology> {
    let path = std::path::Path::new(name);
    let topo = if name.ends_with(".yaml") || path.is_file() {
        lab_vm::Topology::load(path)
    } else {
        lab_vm::Topology::load_named(name)
    };
    topo.with_context(|| format!("topology {name:?}"))
}

/// A run id that sorts by time and never collides between parallel runs.
pub(crate) fn run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

/// Now, in UTC, as RFC 3339 to the second (`2025-11-26T14:03:09Z`): a report's `started_at`.
pub(crate) fn rfc3339_now() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.to_offset(time::UtcOffset::UTC)
        .format(f)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

/// The case `--shadow` runs when no suite or case is named.
pub(crate) const USER_TREE_CASE: &str = "shadow.user_tree";

/// Runs the chain; returns the run's exit status (0 passed, 1 cases failed, 2 the lab could
/// not run the cases). Errors before the run (bad input, a missing tool, a failed build) are
/// `Err`, which `main` turns into 2.
pub fn up(sh: &Shell, args: &UpArgs) -> Result<i32> {
    Ok(up_report(sh, args)?.exit_code())
}

/// Ends the process with `code` unless it is 0.
pub fn exit_with(code: i32) -> Result<()> {
    if code != 0 {
        std::process::exit(code);
    }
    Ok(())
}

/// What every guest boot needs: the topology, the kernel and image (built or
/// cached) and the accelerator.
pub(crate) struct Prepared {
    pub(crate) topology: lab_vm::Topology,
    pub(crate) kernel: lab_kernel::BuiltKernel,
    pub(crate) image: lab_image::BuiltImage,
    pub(crate) accel: lab_vm::AccelChoice,
}

pub(crate) fn prepare(
    sh: &Shell,
    kernel: &BuildArgs,
    topology: &str,
    t: &mut Timings,
) -> Result<Prepared> {
    // Everything cheap first: input, every tool of every stage, the accelerator.
    let topology = load_topology(topology)?;
    prepare_for(sh, kernel, topology, t)
}

/// [`prepare`] for a topology already loaded (and checked).
pub(crate) fn prepare_for(
    sh: &Shell,
    kernel: &BuildArgs,
    topology: lab_vm::Topology,
    t: &mut Timings,
) -> Result<Prepared> {
    crate::host::preflight(sh, crate::host::LAB_STAGES, kernel.no_install)?;
    let accel = choose_accel()?;
    let (kernel, image) = kernel_and_image(sh, kernel, t)?;
    Ok(Prepared {
        topology,
        kernel,
        image,
        accel,
    })
}

/// The accelerator this host's guests use (the probe's verdict is cached per host boot).
fn choose_accel() -> Result<lab_vm::AccelChoice> {
    let accel = lab_vm::choose_accel(
        std::path::Path::new(lab_vm::accel::DEFAULT_QEMU),
        Some(&lab_host::paths::cache_root()),
    )?;
    lab_host::progress!("famfs-lab: {}", accel.reason);
    Ok(accel)
}

/// The kernel and the image, built or found in the cache.
fn kernel_and_image(
    sh: &Shell,
    kernel: &BuildArgs,
    t: &mut Timings,
) -> Result<(lab_kernel::BuiltKernel, lab_image::BuiltImage)> {
    // The guest binaries need no kernel: cargo builds them while the kernel is looked up (or
    // built), each in its own thread.
    let (built, binaries) = std::thread::scope(|scope| {
        let guest = scope.spawn(|| {
            let started = std::time::Instant::now();
            let sh = Shell::new()?;
            sh.change_dir(lab_host::paths::repo_root());
            let built = crate::image::guest_binaries(&sh, kernel.no_install);
            built.map(|b| (b, started.elapsed()))
        });
        let built = kernel.build(sh, t);
        let binaries = guest
            .join()
            .map_err(|_| anyhow::anyhow!("the guest binaries' build panicked"));
        (built, binaries)
    });
    let (binaries, took) = binaries??;
    t.record_beside("image: guest binaries", took);
    let built = built?;
    let image = t.stage("image: initramfs", || {
        crate::image::initramfs(&built, &binaries)
    })?;
    crate::guess::save(kernel, &built, &image.path);
    Ok((built, image))
}

/// The accelerator a run with `clock` uses: icount needs TCG, so an automatic KVM choice
/// becomes TCG; a KVM forced by FAMFS_LAB_ACCEL is refused.
pub(crate) fn accel_for_clock(
    accel: lab_vm::AccelChoice,
    clock: lab_vm::Clock,
) -> Result<lab_vm::AccelChoice> {
    if clock == lab_vm::Clock::Host || accel.accel == lab_vm::Accel::Tcg {
        return Ok(accel);
    }
    if accel.forced {
        anyhow::bail!(
            "clock {clock} needs TCG, but {} forces {}",
            lab_vm::accel::ACCEL_ENV,
            accel.accel.as_str()
        );
    }
    Ok(lab_vm::AccelChoice {
        accel: lab_vm::Accel::Tcg,
        reason: format!("TCG: clock {clock} counts guest instructions (not KVM)"),
        forced: false,
    })
}

/// Runs the chain and returns the report (already printed and written).
pub fn up_report(sh: &Shell, args: &UpArgs) -> Result<lab_report::RunReport> {
    // A bad tree is refused before a kernel build or a boot.
    let user_tree = args.user_tree()?;
    let mut cases = args.cases.clone();
    if user_tree.is_some() && args.suites.is_empty() && cases.is_empty() {
        cases.push(USER_TREE_CASE.into());
    }
    let mut t = Timings::default();
    let run_id = run_id();
    let run_dir = lab_host::paths::runs_dir().join(&run_id);
    let ask = Ask {
        args,
        cases,
        user_tree,
        run_id: &run_id,
        run_dir: &run_dir,
    };
    let (_, expected) = crate::ci_data::load()?;
    let on_guess = match crate::guess::load(&args.kernel) {
        Some(guessed) => run_on_guess(sh, &ask, guessed, &mut t)?,
        None => None,
    };
    let (mut report, req) = match on_guess {
        Some(ran) => ran,
        None => {
            let prepared = prepare(sh, &args.kernel, &args.topology, &mut t)?;
            let req = ask.request(
                &prepared.kernel,
                &prepared.image.path,
                prepared.topology,
                prepared.accel,
            )?;
            let report = t.stage("lab: boot, setup, suites", || {
                lab_runner::run::run(&req, rfc3339_now())
            })?;
            (report, req)
        }
    };
    // ci/expected/<kernel>.yaml: known failures with their message become XFAIL, stale
    // entries XPASS; a SKIP the kernel's .config and the topology do not excuse fails unless
    // listed (lab_ci::expected).
    let excuse = |id: &str| lab_runner::plan::skip_excuse(id, &req.kernel, req.topology.hosts);
    let facts = lab_ci::expected::RunFacts {
        ops: Some(args.ops.name()),
        topology: Some(req.topology.name.as_str()),
        excuse: &excuse,
        reproduce: &req.reproduce,
    };
    if expected.apply(&mut report, &facts) > 0 {
        lab_report::write_run_dir(&run_dir, &report)?;
    }
    let summary = lab_report::summary::render(&report);
    if args.ktap {
        println!("{}", lab_report::ktap::write(&report));
    }
    lab_host::say::progress_block(&t.table());
    lab_host::progress!("famfs-lab: results in {}", run_dir.display());
    // The summary's last line is the plain `N passed, N failed, N skipped`: stdout's data,
    // unless KTAP is.
    if args.ktap {
        eprintln!("{}", summary.trim_end());
    } else {
        println!("{}", summary.trim_end());
    }
    Ok(report)
}

/// What one `lab up` asks for, apart from the kernel and image it boots.
struct Ask<'a> {
    args: &'a UpArgs,
    cases: Vec<String>,
    user_tree: Option<lab_runner::user_tree::UserTree>,
    run_id: &'a str,
    run_dir: &'a std::path::Path,
}

impl Ask<'_> {
    /// The runner's request for booting `kernel` with `image`.
    fn request(
        &self,
        kernel: &lab_kernel::BuiltKernel,
        image: &std::path::Path,
        mut topology: lab_vm::Topology,
        accel: lab_vm::AccelChoice,
    ) -> Result<lab_runner::RunRequest> {
        let args = self.args;
        let accel = accel_for_clock(accel, args.clock)?;
        if let Some(n) = args.cpus {
            topology.cpus = n;
        }
        let config = std::fs::read_to_string(kernel.entry.config())
            .context("reading the kernel's config")?;
        let mut reproduce = format!(
            "cargo xtask lab up --kernel {} --topology {} --ops {}",
            args.kernel.kernel, args.topology, args.ops
        );
        if let Some(dir) = &args.kernel.source_dir {
            reproduce.push_str(&format!(" --source-dir {}", dir.display()));
        }
        for f in &args.kernel.fragments {
            reproduce.push_str(&format!(" --fragment {f}"));
        }
        if let Some(dir) = &args.shadow {
            reproduce.push_str(&format!(" --shadow {}", dir.display()));
        }
        for d in &args.daxdev_data {
            reproduce.push_str(&format!(" --daxdev-data {d}"));
        }
        Ok(lab_runner::RunRequest {
            run_id: self.run_id.to_string(),
            run_dir: self.run_dir.to_path_buf(),
            kernel: lab_runner::plan::KernelFeatures::from_config(&kernel.meta.label, &config)
                .with_bpf_selftests(kernel.entry.dir.join(lab_kernel::bpf_selftests::DIR)),
            kernel_hash: kernel.meta.key.clone(),
            kernel_image: kernel.entry.boot_image(&config),
            initramfs: image.to_path_buf(),
            topology,
            suites: args.suites.clone(),
            cases: self.cases.clone(),
            accel,
            reproduce,
            cmdline: args.cmdline.clone(),
            ops: args.ops.name().to_string(),
            boot_timeout: Duration::from_secs(args.boot_timeout),
            user_tree: self.user_tree.clone(),
            console: Default::default(),
            clock: args.clock,
        })
    }
}

/// The runner's request for `args` booting `kernel` with `image` in `run_dir` (run id
/// `run_id`), as `lab up` makes it.
pub(crate) fn request_for(
    args: &UpArgs,
    kernel: &lab_kernel::BuiltKernel,
    image: &std::path::Path,
    run_id: &str,
    run_dir: &std::path::Path,
) -> Result<lab_runner::RunRequest> {
    let ask = Ask {
        args,
        cases: args.cases.clone(),
        user_tree: None,
        run_id,
        run_dir,
    };
    ask.request(
        kernel,
        image,
        load_topology(&args.topology)?,
        choose_accel()?,
    )
}

/// Boots the guessed kernel and image at once while the real lookup runs beside the boot
/// ([`crate::guess`]); a stale guess boots again with what the lookup found.
fn run_on_guess(
    sh: &Shell,
    ask: &Ask,
    guessed: crate::guess::Guessed,
    t: &mut Timings,
) -> Result<Option<(lab_report::RunReport, lab_runner::RunRequest)>> {
    let args = ask.args;
    let topology = load_topology(&args.topology)?;
    let accel = choose_accel()?;
    // A guessed kernel entry that went away since it was read: no guess.
    if !guessed.kernel.entry.config().is_file() {
        return Ok(None);
    }
    let req = ask.request(
        &guessed.kernel,
        &guessed.image,
        topology.clone(),
        accel.clone(),
    )?;
    type Found = ((lab_kernel::BuiltKernel, lab_image::BuiltImage), Timings);
    let dir = sh.current_dir();
    let (attempt, lookup) = std::thread::scope(|scope| {
        let lookup = scope.spawn(|| {
            crate::guess::yield_to_the_boot();
            let mut own = Timings::default();
            let sh = Shell::new()?;
            sh.change_dir(dir);
            crate::host::preflight(&sh, crate::host::LAB_STAGES, args.kernel.no_install)?;
            let found = kernel_and_image(&sh, &args.kernel, &mut own)?;
            anyhow::Ok((found, own))
        });
        let lookup = std::cell::RefCell::new(Some(lookup));
        let joined: std::cell::RefCell<Option<Result<Found>>> = std::cell::RefCell::new(None);
        let join = || {
            if let Some(handle) = lookup.borrow_mut().take() {
                let found = handle.join().unwrap_or_else(|panic| {
                    let what = panic
                        .downcast_ref::<String>()
                        .map(String::as_str)
                        .or_else(|| panic.downcast_ref::<&str>().copied())
                        .unwrap_or("no message");
                    Err(anyhow::anyhow!(
                        "looking up the kernel and image panicked: {what}"
                    ))
                });
                *joined.borrow_mut() = Some(found);
            }
        };
        let verdict = |found: &Found| {
            let ((kernel, image), _) = found;
            crate::guess::verdict(&guessed, kernel, &image.path)
        };
        let attempt = t.stage("lab: boot, setup, suites", || {
            lab_runner::run::run_checked(&req, rfc3339_now(), || {
                join();
                match joined.borrow().as_ref() {
                    Some(Ok(found)) => Ok(verdict(found)),
                    Some(Err(e)) => Err(anyhow::anyhow!("{e:#}")),
                    None => Err(anyhow::anyhow!(
                        "the kernel and image lookup gave no answer"
                    )),
                }
            })
        });
        // A run that failed before it asked still needs the lookup's answer.
        join();
        (attempt, joined.into_inner())
    });
    let lookup = lookup.unwrap_or_else(|| Err(anyhow::anyhow!("the lookup gave no answer")));
    let verdict = lookup
        .as_ref()
        .ok()
        .map(|((kernel, image), _)| crate::guess::verdict(&guessed, kernel, &image.path));
    let ran = match &attempt {
        Ok(Some(_)) => Some(true),
        Ok(None) => Some(false),
        Err(_) => None,
    };
    match crate::guess::next(ran, verdict) {
        crate::guess::Next::LookupFailed => Err(lookup
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("the kernel and image lookup failed"))),
        crate::guess::Next::Keep => {
            if let Ok((_, own)) = lookup {
                t.absorb_beside(own);
            }
            Ok(Some((
                attempt?.ok_or_else(|| anyhow::anyhow!("a run stopped as stale was kept"))?,
                req,
            )))
        }
        crate::guess::Next::Again => {
            let (found, own) = lookup?;
            t.absorb_beside(own);
            again(ask, found, topology, accel, t).map(Some)
        }
    }
}

/// The run again, after a stale guess, with the kernel and image the lookup found.
fn again(
    ask: &Ask,
    (kernel, image): (lab_kernel::BuiltKernel, lab_image::BuiltImage),
    topology: lab_vm::Topology,
    accel: lab_vm::AccelChoice,
    t: &mut Timings,
) -> Result<(lab_report::RunReport, lab_runner::RunRequest)> {
    lab_host::progress!(
        "famfs-lab: the kernel or image changed since the last run: booting again with {} and {}",
        kernel.meta.key,
        image.hash
    );
    let _ = std::fs::remove_dir_all(ask.run_dir);
    let req = ask.request(&kernel, &image.path, topology, accel)?;
    let report = t.stage("lab: boot, setup, suites (again)", || {
        lab_runner::run::run(&req, rfc3339_now())
    })?;
    Ok((report, req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_to_the_second_in_utc() {
        let t = time::macros::datetime!(2000-02-29 23:59:58.75 UTC);
        assert_eq!(rfc3339(t), "2000-02-29T23:59:58Z");
        let t = time::macros::datetime!(2025-11-27 01:00:00 +02:00);
        assert_eq!(rfc3339(t), "2025-11-26T23:00:00Z");
        assert_eq!(rfc3339_now().len(), "2025-11-26T23:00:00Z".len());
    }
}
