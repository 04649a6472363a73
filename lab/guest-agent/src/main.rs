//! famfs-lab guest agent.
//!
//! PID 1 of the test VM (the initramfs `/init` points here). Sets up the
//! system, then serves host requests (see `lab-agent-proto`) over the
//! virtio-serial port `org.famfs.lab.agent`. As PID 1 it never exits: fatal
//! errors are logged and the VM is powered off.

mod exec;
mod host_call;
mod init;
mod port;
mod reaper;
mod server;
mod shell;

use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use lab_agent_proto::AGENT_PORT_NAME;

use crate::port::{Port, RetryOnEof};
use crate::server::Context;

pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Written to kmsg once the agent is serving.
pub const READY_MARKER: &str = "famfs-lab-agent: ready";
const DEFAULT_PORT_TIMEOUT: Duration = Duration::from_secs(30);

const USAGE: &str = "\
usage: famfs-lab-agent [--no-init] [--port PATH | --listen PATH] [--kmsg PATH]
                       [--port-timeout-ms N] [--verbose]
  --no-init            skip PID-1 system setup (mounts, hostname, ...)
  --port PATH          serve on PATH: a virtio-serial char device, or an
                       existing Unix socket to connect to
                       (default: find port org.famfs.lab.agent in sysfs)
  --listen PATH        listen on a Unix socket at PATH and serve each
                       connection in turn (tests; emulates QEMU's chardev)
  --kmsg PATH          where Kmsg requests and the ready marker are written
                       (default /dev/kmsg; the marker only as PID 1 or if set)
  --port-timeout-ms N  how long to wait for the port to appear (default 30000)
  --host-calls PATH    listen for the cases' host calls on PATH (default, as PID 1:
                       /run/famfs-lab/host-call.sock)
  --verbose            log every request to stderr";

/// Log a line to stderr (the console when running as PID 1).
pub fn log(msg: &str) {
    eprintln!("famfs-lab-agent: {msg}");
}

#[derive(Debug, Default)]
struct Args {
    no_init: bool,
    port: Option<PathBuf>,
    listen: Option<PathBuf>,
    kmsg: Option<PathBuf>,
    port_timeout: Option<Duration>,
    host_calls: Option<PathBuf>,
    verbose: bool,
    help: bool,
}

/// Unknown arguments are errors when `strict`, else logged and ignored (the
/// kernel passes unrecognised boot parameters to init).
fn parse_args(mut it: impl Iterator<Item = String>, strict: bool) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--no-init" => args.no_init = true,
            "--verbose" | "-v" => args.verbose = true,
            "--help" | "-h" => args.help = true,
            "--port" => args.port = Some(value("--port")?.into()),
            "--listen" => args.listen = Some(value("--listen")?.into()),
            "--kmsg" => args.kmsg = Some(value("--kmsg")?.into()),
            "--host-calls" => args.host_calls = Some(value("--host-calls")?.into()),
            "--port-timeout-ms" => {
                let v = value("--port-timeout-ms")?;
                let ms: u64 = v
                    .parse()
                    .map_err(|_| format!("--port-timeout-ms: bad number {v:?}"))?;
                args.port_timeout = Some(Duration::from_millis(ms));
            }
            other if strict => return Err(format!("unknown argument {other:?}")),
            other => log(&format!("ignoring argument {other:?}")),
        }
    }
    if args.port.is_some() && args.listen.is_some() {
        return Err("--port and --listen are exclusive".into());
    }
    Ok(args)
}

fn main() {
    let pid1 = std::process::id() == 1;
    let args = match parse_args(std::env::args().skip(1), !pid1) {
        Ok(args) => args,
        Err(msg) if !pid1 => {
            eprintln!("famfs-lab-agent: {msg}\n{USAGE}");
            std::process::exit(2);
        }
        Err(msg) => {
            log(&format!("bad arguments ({msg}); using defaults"));
            Args::default()
        }
    };
    if args.help && !pid1 {
        println!("{USAGE}");
        return;
    }
    let outcome = std::panic::catch_unwind(|| run(&args, pid1));
    let message = match outcome {
        Ok(Ok(())) if !pid1 => std::process::exit(0),
        Ok(Ok(())) => "serving ended".to_string(),
        Ok(Err(e)) => format!("{e:#}"),
        Err(_) => "panicked".to_string(),
    };
    if pid1 {
        fatal(&message);
    }
    log(&format!("error: {message}"));
    std::process::exit(1);
}

fn run(args: &Args, pid1: bool) -> anyhow::Result<()> {
    let do_init = pid1 && !args.no_init;
    if do_init {
        init::setup();
    } else if !pid1 {
        if !args.no_init {
            log("not PID 1: skipping system setup");
        }
        // Inherit orphaned descendants like PID 1 does, so the reaper's
        // orphan handling is exercised outside the VM too.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            log(&format!("PR_SET_CHILD_SUBREAPER: {e}"));
        }
    }
    // Start reaping right away (as PID 1 orphans may arrive any time).
    reaper::reaper();
    if do_init && shell::wanted(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default()) {
        shell::start();
    }

    let ctx = Context {
        kmsg_path: args
            .kmsg
            .clone()
            .unwrap_or_else(|| PathBuf::from("/dev/kmsg")),
        pid1,
        verbose: args.verbose,
    };
    let announce = || {
        if do_init || args.kmsg.is_some() {
            if let Err(e) = server::write_kmsg(&ctx.kmsg_path, READY_MARKER) {
                log(&format!("ready marker: {e}"));
            }
        }
    };
    let port_timeout = args.port_timeout.unwrap_or(DEFAULT_PORT_TIMEOUT);
    let host_calls = args
        .host_calls
        .clone()
        .or_else(|| do_init.then(|| PathBuf::from(lab_agent_proto::HOST_CALL_SOCKET)));
    if let Some(path) = host_calls {
        if let Err(e) = host_call::listen(&path) {
            log(&format!("host calls on {}: {e}", path.display()));
        }
    }

    if let Some(path) = &args.listen {
        let _ = std::fs::remove_file(path);
        let listener =
            UnixListener::bind(path).with_context(|| format!("listening on {}", path.display()))?;
        announce();
        for conn in listener.incoming() {
            match conn.and_then(|s| Ok((s.try_clone()?, s))) {
                Ok((reader, writer)) => server::serve(reader, writer, &ctx),
                Err(e) => log(&format!("accept: {e}")),
            }
        }
        bail!("listener on {} closed", path.display());
    }

    let path = match &args.port {
        Some(path) => path.clone(),
        None => port::wait_for_named_port(AGENT_PORT_NAME, port_timeout)?,
    };
    match port::open_port(&path, port_timeout)
        .with_context(|| format!("opening agent port {}", path.display()))?
    {
        Port::Device(file) => {
            let writer = file.try_clone().context("dup of port fd")?;
            announce();
            server::serve(RetryOnEof::new(file), writer, &ctx);
            bail!("agent port {} stopped working", path.display());
        }
        Port::Socket(stream) => {
            let writer = stream.try_clone().context("dup of socket fd")?;
            announce();
            server::serve(stream, writer, &ctx);
            Ok(())
        }
    }
}

/// Power the VM off (PID 1) or just exit (anything else: never reboot a
/// machine we are merely a process on).
pub fn poweroff(pid1: bool) -> ! {
    nix::unistd::sync();
    if !pid1 {
        log("poweroff requested: exiting (not PID 1)");
        std::process::exit(0);
    }
    match nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF) {
        Ok(never) => match never {},
        Err(e) => log(&format!("reboot(RB_POWER_OFF): {e}")),
    }
    sleep_forever()
}

/// PID 1 must not exit (the kernel would panic): report and power off.
fn fatal(message: &str) -> ! {
    log(&format!("fatal: {message}"));
    let _ = server::write_kmsg(
        std::path::Path::new("/dev/kmsg"),
        &format!("<2>famfs-lab-agent: fatal: {message}"),
    );
    std::thread::sleep(Duration::from_millis(500));
    poweroff(true)
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str], strict: bool) -> Result<Args, String> {
        parse_args(args.iter().map(|s| s.to_string()), strict)
    }

    #[test]
    fn args() {
        let a = parse(
            &[
                "--no-init",
                "--port",
                "/dev/vport1p1",
                "--kmsg",
                "/tmp/k",
                "--port-timeout-ms",
                "5",
            ],
            true,
        )
        .unwrap();
        assert!(a.no_init);
        assert_eq!(a.port.unwrap(), PathBuf::from("/dev/vport1p1"));
        assert_eq!(a.kmsg.unwrap(), PathBuf::from("/tmp/k"));
        assert_eq!(a.port_timeout, Some(Duration::from_millis(5)));
        assert!(parse(&["--bogus"], true).is_err());
        assert!(parse(&["--bogus"], false).is_ok());
        assert!(parse(&["--port"], true).is_err());
        assert!(parse(&["--port", "a", "--listen", "b"], true).is_err());
        assert!(parse(&["--port-timeout-ms", "x"], true).is_err());
    }
}
