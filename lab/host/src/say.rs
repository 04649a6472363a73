//! What the lab says, and where. stdout is for data only (tables, JSON, KTAP, paths): what a
//! verb prints there with `println!` is its result. Everything else goes to stderr, at one
//! process-wide level set from `cargo xtask -q`/`-v`:
//!
//! - quiet: errors only (and the data on stdout); a command's own output is kept and shown
//!   only if it fails;
//! - normal: progress lines ([`progress!`](crate::progress)), stage times, the output of the
//!   commands the lab runs (apt-get, git, make), all on stderr;
//! - verbose: also every command line before it runs, and `info` tracing.
//!
//! Colour: only tracing's, and only when stderr is a terminal (see [`color`]).

use anyhow::{bail, Context, Result};
use std::io::IsTerminal;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    Quiet = 0,
    Normal = 1,
    Verbose = 2,
}

static LEVEL: AtomicU8 = AtomicU8::new(Verbosity::Normal as u8);

/// Sets the process-wide level (once, from the command line).
pub fn set(v: Verbosity) {
    LEVEL.store(v as u8, Ordering::Relaxed);
}

/// The process-wide level.
pub fn level() -> Verbosity {
    match LEVEL.load(Ordering::Relaxed) {
        0 => Verbosity::Quiet,
        1 => Verbosity::Normal,
        _ => Verbosity::Verbose,
    }
}

/// The level of `-q` and a count of `-v`.
pub fn from_flags(quiet: bool, verbose: u8) -> Verbosity {
    match (quiet, verbose) {
        (true, _) => Verbosity::Quiet,
        (false, 0) => Verbosity::Normal,
        (false, _) => Verbosity::Verbose,
    }
}

/// The tracing filter for `v` when `FAMFS_LAB_LOG` does not set one.
pub fn tracing_filter(v: Verbosity) -> &'static str {
    match v {
        Verbosity::Quiet => "error",
        Verbosity::Normal => "warn",
        Verbosity::Verbose => "info",
    }
}

/// Whether progress lines are printed.
pub fn progress_enabled() -> bool {
    level() >= Verbosity::Normal
}

/// Whether ANSI colour may be written to stderr: a terminal, and no `NO_COLOR`.
pub fn color() -> bool {
    color_for(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
    )
}

fn color_for(terminal: bool, no_color: bool) -> bool {
    terminal && !no_color
}

/// A progress line on stderr (`eprintln!` arguments), unless quiet.
#[macro_export]
macro_rules! progress {
    ($($arg:tt)*) => {
        if $crate::say::progress_enabled() {
            eprintln!($($arg)*);
        }
    };
}

/// A block of progress text (a timing table) on stderr, unless quiet.
pub fn progress_block(text: &str) {
    if progress_enabled() {
        eprint!("{text}");
    }
}

/// Runs a command whose output is chatter, not data (apt-get, git, make, cargo): its stdout
/// goes to stderr, so the lab's stdout stays data. Verbose: the command line first. Quiet: its
/// output is kept and, only if it fails, its last lines are in the error.
pub fn run(cmd: xshell::Cmd<'_>) -> Result<()> {
    let shown = cmd.to_string();
    let mut command: Command = cmd.into();
    run_command(&mut command, &shown)
}

/// [`run`] for a `std::process::Command`; `shown` is how errors and `-v` name it.
pub fn run_command(command: &mut Command, shown: &str) -> Result<()> {
    if level() >= Verbosity::Verbose {
        eprintln!("$ {shown}");
    }
    if level() == Verbosity::Quiet {
        let out = command
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("starting {shown}"))?;
        if !out.status.success() {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            bail!(
                "{shown} failed ({})\n{}",
                out.status,
                crate::run::tail(text.trim_end(), 40)
            );
        }
        return Ok(());
    }
    let status = command
        .stdout(std::io::stderr())
        .status()
        .with_context(|| format!("starting {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_map_to_levels_and_filters() {
        assert_eq!(from_flags(false, 0), Verbosity::Normal);
        assert_eq!(from_flags(true, 0), Verbosity::Quiet);
        assert_eq!(from_flags(false, 2), Verbosity::Verbose);
        assert_eq!(tracing_filter(Verbosity::Quiet), "error");
        assert_eq!(tracing_filter(Verbosity::Normal), "warn");
        assert_eq!(tracing_filter(Verbosity::Verbose), "info");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(color_for(true, false));
        assert!(!color_for(false, false));
        assert!(!color_for(true, true));
    }

    /// Run as a child of itself (so its real stdout and stderr can be looked at): a command
    /// run through `run` writes to the child's stderr, never its stdout.
    #[test]
    fn a_commands_output_goes_to_stderr_not_stdout() {
        const CHILD: &str = "FAMFS_LAB_SAY_TEST_CHILD";
        let sh = xshell::Shell::new().unwrap();
        if std::env::var_os(CHILD).is_some() {
            run(xshell::cmd!(sh, "echo chatter-from-the-command")).unwrap();
            return;
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "say::tests::a_commands_output_goes_to_stderr_not_stdout",
            ])
            .args(["--nocapture", "--test-threads=1"])
            .env(CHILD, "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(!stdout.contains("chatter-from-the-command"), "{stdout}");
        assert!(stderr.contains("chatter-from-the-command"), "{stderr}");
    }

    // The only test that changes the process-wide level (nextest runs each test in its own
    // process; under plain `cargo test` the others do not depend on it).
    #[test]
    fn failures_say_why_and_quiet_keeps_the_output_for_the_error() {
        let sh = xshell::Shell::new().unwrap();
        let err = run(xshell::cmd!(sh, "sh -c 'exit 3'")).unwrap_err();
        assert!(format!("{err:#}").contains("exit status: 3"), "{err:#}");
        set(Verbosity::Quiet);
        assert!(!progress_enabled());
        let err = run(xshell::cmd!(
            sh,
            "sh -c 'echo line1; echo reason >&2; exit 4'"
        ))
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("exit status: 4"), "{msg}");
        assert!(msg.contains("line1") && msg.contains("reason"), "{msg}");
        run(xshell::cmd!(sh, "true")).unwrap();
        set(Verbosity::Normal);
        assert!(progress_enabled());
    }
}
