//! `cargo xtask lab shell` and `cargo xtask lab exec`: a guest set up as `lab up` sets it up
//! (`lab_runner::bringup`: regions, dax devices, a case's bytes), with the famfs mount of a
//! generated or given tree (`lab_runner::shell`), or in the state a case begins in; then an
//! interactive console, or one command whose output and status pass through.

use anyhow::{bail, Context, Result};
use clap::Args;
use lab_agent_proto::messages::{ExecRequest, ExitStatus};
use lab_host::stage::Timings;
use lab_runner::bringup::{self, Guest};
use lab_runner::shell as gshell;
use lab_runner::{Console, RunRequest};
use std::path::PathBuf;
use std::time::Duration;
use xshell::Shell;

use crate::build_args::BuildArgs;

/// What `lab exec` exits with when the lab could not run the command (no kernel, no boot, a
/// failed setup): `git bisect run`'s "cannot test this commit".
pub const EXIT_CANNOT_TEST: i32 = 125;
/// The command ran past `--timeout` (as timeout(1) says it).
pub const EXIT_TIMED_OUT: i32 = 124;
/// The command could not be started in the guest (as sh says it).
pub const EXIT_NOT_STARTED: i32 = 127;

/// The guest both verbs set up.
#[derive(Args, Debug)]
pub struct GuestArgs {
    #[command(flatten)]
    pub kernel: BuildArgs,
    /// A topology name (lab/topologies/NAME.yaml) or a path to one (one guest).
    #[arg(long, default_value = "default")]
    pub topology: String,
    /// The fmap ops of the mount (and FAMFS_LAB_OPS for a case).
    #[arg(long, env = "FAMFS_LAB_OPS", value_enum, default_value_t = crate::ops::Ops::Famfs)]
    pub ops: crate::ops::Ops,
    /// Mount this famfs shadow tree (daxdevs.yaml + root/) instead of a generated one;
    /// validated before anything is built.
    #[arg(long, value_name = "DIR")]
    pub shadow: Option<PathBuf>,
    /// The bytes of daxdevs.yaml device INDEX (an image from its offset 0). Needs --shadow.
    #[arg(long = "daxdev-data", value_name = "INDEX=FILE", requires = "shadow")]
    pub daxdev_data: Vec<String>,
    /// Put the guest in the state this case (SUITE.NAME) begins in: its bytes written by the
    /// host, its environment; the case mounts its own server when its body runs.
    #[arg(long, value_name = "SUITE.NAME")]
    pub case: Option<String>,
    /// Extra kernel command line.
    #[arg(long, default_value = "")]
    pub cmdline: String,
    /// Seconds QEMU may take to boot the guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// QEMU's gdb stub on a free port (and `nokaslr` on a KASLR kernel); prints the gdb
    /// command line.
    #[arg(long)]
    pub gdb: bool,
    /// Boot the kernel with this mutant (kernels/<k>/mutants/NAME) on top, as `kernel mutate`
    /// built and cached it; never builds one.
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
}

impl GuestArgs {
    /// The kernel flags, with `--mutant`'s mutant (cache only).
    fn kernel(&self) -> Result<BuildArgs> {
        let mut k = self.kernel.clone();
        if let Some(name) = &self.mutant {
            let all = lab_kernel::mutant::list(&crate::mutate::mutants_dir(&k.kernel))?;
            let m = lab_kernel::mutant::select(&all, std::slice::from_ref(name))?;
            let m = m
                .into_iter()
                .next()
                .with_context(|| format!("--mutant {name}: not found"))?;
            k.mutant = Some(Box::new(m));
            k.cached_only = true;
        }
        Ok(k)
    }
}

#[derive(Args, Debug)]
pub struct ShellArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Say how to open the guest with drgn (on the host, from a memory dump).
    #[arg(long)]
    pub drgn: bool,
    /// Hours the shell may stay open before the guest is powered off.
    #[arg(long, default_value_t = 24)]
    pub hours: u64,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[command(flatten)]
    pub guest: GuestArgs,
    /// Seconds the command may run (its process group is killed then; exit 124).
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// The command and its arguments, after `--` (one argument with spaces runs under sh -c).
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// The pieces of a run request both verbs fill the same way.
struct Request {
    req: RunRequest,
    kernel: lab_kernel::BuiltKernel,
    gdb: Option<crate::gdb::Gdb>,
}

fn request(sh: &Shell, a: &GuestArgs, terminal: bool, drgn: bool, prefix: &str) -> Result<Request> {
    if let Some(id) = &a.case {
        if lab_suite::catalog::find(id).is_none() {
            bail!("--case {id:?}: no such case; cases are SUITE.NAME (`cargo xtask lab list`)");
        }
    }
    let user_tree = crate::up::user_tree(a.shadow.as_deref(), &a.daxdev_data)?;
    let mut t = Timings::default();
    let crate::up::Prepared {
        topology,
        kernel,
        image,
        accel,
    } = crate::up::prepare(sh, &a.kernel()?, &a.topology, &mut t)?;
    if topology.hosts > 1 {
        bail!(
            "topology {} has hosts: {}; lab shell and lab exec run one guest",
            topology.name,
            topology.hosts
        );
    }
    let run_id = format!("{prefix}-{}", crate::up::run_id());
    let run_dir = lab_host::paths::runs_dir().join(&run_id);
    let config =
        std::fs::read_to_string(kernel.entry.config()).context("reading the kernel's config")?;
    if drgn {
        crate::gdb::drgn_kernel_check(&config)?;
    }
    let gdb = if a.gdb {
        let port = crate::gdb::free_port()?;
        Some(crate::gdb::prepare(sh, &kernel, port)?)
    } else {
        None
    };
    let cmdline = match &gdb {
        Some(_) => format!("{} {}", a.cmdline, crate::gdb::debug_cmdline(&config)),
        None => a.cmdline.clone(),
    };
    let req = RunRequest {
        run_id,
        run_dir,
        kernel: lab_runner::plan::KernelFeatures::from_config(&kernel.meta.label, &config),
        kernel_hash: kernel.meta.key.clone(),
        kernel_image: kernel.entry.boot_image(&config),
        initramfs: image.path.clone(),
        topology,
        suites: Vec::new(),
        cases: a.case.iter().cloned().collect(),
        accel,
        reproduce: String::new(),
        cmdline: cmdline.trim().to_string(),
        ops: a.ops.name().to_string(),
        boot_timeout: Duration::from_secs(a.boot_timeout),
        user_tree,
        console: Console {
            terminal,
            gdb_port: gdb.as_ref().map(|g| g.port),
            vmcoreinfo: drgn,
        },
        clock: Default::default(),
    };
    Ok(Request { req, kernel, gdb })
}

/// Mounts the tree unless the guest is in a case's state (the case mounts its own).
fn mount(g: &Guest, a: &GuestArgs) -> Result<Option<gshell::Mounted>> {
    if g.case.is_some() {
        return Ok(None);
    }
    gshell::mount(g, a.ops.name()).map(Some)
}

/// `lab shell`: the set-up guest, its banner, a console shell; returns when QEMU has exited.
pub fn shell(sh: &Shell, args: &ShellArgs) -> Result<()> {
    let a = &args.guest;
    let drgn = if args.drgn {
        Some(crate::gdb::drgn_check()?)
    } else {
        None
    };
    let Request { req, kernel, gdb } = request(sh, a, true, args.drgn, "shell")?;
    let mut debug = gdb.as_ref().map(|g| g.lines()).unwrap_or_default();
    if let Some(d) = &drgn {
        debug.extend(crate::gdb::drgn_lines(
            d,
            &kernel.entry.vmlinux(),
            &req.run_dir,
        ));
    }
    for l in &debug {
        lab_host::progress!("famfs-lab: {l}");
    }
    lab_host::progress!(
        "famfs-lab: booting; the guest's console follows (also in {}/serial.log); the shell \
         starts once the devices are set up",
        req.run_dir.display()
    );
    let mut g = bringup::bring_up(&req)?;
    let mounted = mount(&g, a)?;
    let env = gshell::case_env(a.ops.name());
    let info = gshell::BannerInfo {
        kernel: format!("{} ({})", kernel.meta.label, kernel.meta.key),
        topology: g.req.topology.name.clone(),
        accel: g.req.accel.accel.as_str().to_string(),
        map: g.map.clone(),
        drivers: gshell::dax_drivers(&g)?,
        mounted,
        case: g.case.map(|c| (c.id(), g.case_skip.clone())),
        env: env.clone(),
        run_dir: g.req.run_dir.clone(),
        debug,
    };
    std::fs::write(g.req.run_dir.join("banner.txt"), gshell::banner(&info))?;
    gshell::start_console(&g, &gshell::banner(&info), &env)?;
    if !g.wait_exit(Duration::from_secs(args.hours * 3600)) {
        lab_host::progress!(
            "famfs-lab: the shell was open {} hours; powering the guest off",
            args.hours
        );
        g.poweroff();
    }
    after(&g);
    Ok(())
}

/// What the host says once the guest is gone: the case's host checks, splats, the logs.
fn after(g: &Guest) {
    if let Some(case) = g.case {
        let verify = lab_suite::verify::verify_path(&g.results(), &case.id());
        if verify.exists() {
            match g.host_checks() {
                Ok(notes) => {
                    for n in notes {
                        lab_host::progress!("famfs-lab: {}: {n}", case.id());
                    }
                }
                Err(e) => eprintln!("famfs-lab: {}: host check FAILED: {e:#}", case.id()),
            }
        }
    }
    for s in g.splats() {
        eprintln!(
            "famfs-lab: kernel {} in the serial log (line {}): {}",
            s.kind,
            s.line,
            s.excerpt.first().map(String::as_str).unwrap_or("")
        );
    }
    lab_host::progress!(
        "famfs-lab: the guest is off; serial log {}",
        g.serial_log().display()
    );
}

/// `lab exec`: exits with the command's status (125 when the lab could not run it).
pub fn exec(sh: &Shell, args: &ExecArgs) -> Result<()> {
    let code = match exec_to(sh, args, &mut std::io::stdout(), &mut std::io::stderr()) {
        Ok(done) => done.code,
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!("famfs-lab: the lab could not run the command (exit {EXIT_CANNOT_TEST})");
            EXIT_CANNOT_TEST
        }
    };
    std::process::exit(code)
}

/// The argv the guest runs: the words given, or `sh -c` for one word with spaces.
pub fn guest_argv(command: &[String]) -> Vec<String> {
    match command {
        [one] if one.contains(char::is_whitespace) => {
            vec!["sh".into(), "-c".into(), one.clone()]
        }
        _ => command.to_vec(),
    }
}

/// The exit status `lab exec` passes on for the guest's.
pub fn exit_code(status: &ExitStatus) -> i32 {
    match status {
        ExitStatus::Exited(c) => *c,
        ExitStatus::Signaled(s) => 128 + s,
        ExitStatus::TimedOut => EXIT_TIMED_OUT,
        ExitStatus::SpawnFailed(_) => EXIT_NOT_STARTED,
    }
}

/// How a `lab exec` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecDone {
    /// What `lab exec` exits with.
    pub code: i32,
    pub run_dir: PathBuf,
}

/// `lab exec` with the command's stdout and stderr written to `out` and `err`.
pub fn exec_to(
    sh: &Shell,
    args: &ExecArgs,
    out: &mut dyn std::io::Write,
    err: &mut dyn std::io::Write,
) -> Result<ExecDone> {
    let a = &args.guest;
    let Request { req, gdb, .. } = request(sh, a, false, false, "exec")?;
    if let Some(g) = &gdb {
        for l in g.lines() {
            lab_host::progress!("famfs-lab: {l}");
        }
    }
    let mut g = bringup::bring_up(&req)?;
    let result = run_command(&mut g, a, args, out, err);
    g.poweroff();
    let mut code = result?;
    let splats = g.splats();
    for s in &splats {
        eprintln!(
            "famfs-lab: kernel {} in the serial log (line {}): {}",
            s.kind,
            s.line,
            s.excerpt.first().map(String::as_str).unwrap_or("")
        );
    }
    if code == 0 && !splats.is_empty() {
        eprintln!("famfs-lab: the command passed but the kernel splatted: exit 1");
        code = 1;
    }
    lab_host::progress!("famfs-lab: serial log {}", g.serial_log().display());
    Ok(ExecDone {
        code,
        run_dir: g.req.run_dir.clone(),
    })
}

fn run_command(
    g: &mut Guest,
    a: &GuestArgs,
    args: &ExecArgs,
    stdout: &mut dyn std::io::Write,
    stderr: &mut dyn std::io::Write,
) -> Result<i32> {
    if let Some(m) = mount(g, a)? {
        lab_host::progress!(
            "famfs-lab: {} mounted at {} ({} files, ops {})",
            m.host_tree.display(),
            gshell::MOUNTPOINT,
            m.files,
            m.ops
        );
    }
    if let (Some(id), Some(why)) = (&a.case, &g.case_skip) {
        lab_host::progress!("famfs-lab: note: `lab up` would SKIP {id} here: {why}");
    }
    let argv = guest_argv(&args.command);
    let mut r = ExecRequest::new(argv.iter().map(String::as_str)).cwd("/");
    for (k, v) in gshell::case_env(a.ops.name()) {
        r = r.env(k, v);
    }
    let out = g.exec_serving_host_calls(r, Duration::from_secs(args.timeout))?;
    stdout.write_all(out.stdout.as_bytes())?;
    stdout.flush()?;
    stderr.write_all(out.stderr.as_bytes())?;
    if out.truncated {
        eprintln!(
            "famfs-lab: the output was cut at {} bytes per stream",
            lab_agent_proto::MAX_OUTPUT_LEN
        );
    }
    let mut code = exit_code(&out.status);
    match &out.status {
        ExitStatus::TimedOut => eprintln!(
            "famfs-lab: the command ran past --timeout {}s and was killed",
            args.timeout
        ),
        ExitStatus::SpawnFailed(e) => eprintln!("famfs-lab: the command did not start: {e}"),
        _ => {}
    }
    // The case's own command: the host's checks of its bytes make the verdict `lab up`'s.
    let is_case_body = a
        .case
        .as_ref()
        .is_some_and(|id| argv.join(" ") == gshell::case_command(id));
    if code == 0 && is_case_body {
        match g.host_checks() {
            Ok(notes) => {
                for n in notes {
                    lab_host::progress!("famfs-lab: {n}");
                }
            }
            Err(e) => {
                eprintln!("FAIL: host check: {e:#}");
                code = lab_suite::EXIT_FAIL;
            }
        }
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        lab: crate::lab::Lab,
    }

    fn parse(args: &[&str]) -> Result<crate::lab::Lab, clap::Error> {
        Cli::try_parse_from(std::iter::once("lab").chain(args.iter().copied())).map(|c| c.lab)
    }

    #[test]
    fn exec_takes_the_command_after_the_separator() {
        let Ok(crate::lab::Lab::Exec(e)) = parse(&[
            "exec",
            "--case",
            "fault.read_pte",
            "--",
            "famfs-lab-cases",
            "run",
            "fault.read_pte",
        ]) else {
            panic!("exec must parse");
        };
        assert_eq!(e.guest.case.as_deref(), Some("fault.read_pte"));
        assert_eq!(e.command, ["famfs-lab-cases", "run", "fault.read_pte"]);
        assert_eq!(e.timeout, 600);
        assert!(!e.guest.gdb);
        // without a command: refused
        assert!(parse(&["exec"]).is_err());
        assert!(parse(&["exec", "--"]).is_err());
        // flags after -- belong to the command
        let Ok(crate::lab::Lab::Exec(e)) = parse(&["exec", "--", "ls", "--gdb"]) else {
            panic!("exec must parse");
        };
        assert_eq!(e.command, ["ls", "--gdb"]);
        assert!(!e.guest.gdb);
        let Ok(crate::lab::Lab::Exec(e)) = parse(&["exec", "--mutant", "m", "--", "true"]) else {
            panic!("exec must parse");
        };
        assert_eq!(e.guest.mutant.as_deref(), Some("m"));
    }

    #[test]
    fn shell_takes_topology_kernel_ops_shadow_case_gdb() {
        let Ok(crate::lab::Lab::Shell(s)) = parse(&[
            "shell",
            "--topology",
            "two-devices",
            "--kernel",
            "famfs-bpf",
            "--ops",
            "famfs_native",
            "--shadow",
            "/tmp/t",
            "--gdb",
            "--drgn",
        ]) else {
            panic!("shell must parse");
        };
        assert_eq!(s.guest.topology, "two-devices");
        assert_eq!(s.guest.ops, crate::ops::Ops::FamfsNative);
        assert_eq!(s.guest.shadow, Some(PathBuf::from("/tmp/t")));
        assert!(s.guest.gdb && s.drgn);
        assert!(parse(&["shell", "--ops", "nope"]).is_err());
        assert!(
            parse(&["shell", "--daxdev-data", "0=x"]).is_err(),
            "needs --shadow"
        );
    }

    #[test]
    fn statuses_pass_through() {
        assert_eq!(exit_code(&ExitStatus::Exited(0)), 0);
        assert_eq!(exit_code(&ExitStatus::Exited(3)), 3);
        assert_eq!(exit_code(&ExitStatus::Signaled(9)), 137);
        assert_eq!(exit_code(&ExitStatus::TimedOut), EXIT_TIMED_OUT);
        assert_eq!(
            exit_code(&ExitStatus::SpawnFailed("x".into())),
            EXIT_NOT_STARTED
        );
    }

    #[test]
    fn one_word_with_spaces_runs_under_sh() {
        assert_eq!(guest_argv(&["ls /dev".into()]), ["sh", "-c", "ls /dev"]);
        assert_eq!(guest_argv(&["ls".into(), "/dev".into()]), ["ls", "/dev"]);
        assert_eq!(guest_argv(&["true".into()]), ["true"]);
    }
}
