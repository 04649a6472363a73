//! `cargo xtask`: the lab's command line. Each verb is a module with a
//! struct of its flags and a `run`.

mod bench;
mod bench_boot;
mod bench_fault;
mod bench_peer;
mod bisect;
mod build_args;
mod ci;
mod ci_data;
mod deps;
mod exec_check;
mod gdb;
mod guess;
mod guess_check;
mod host;
mod image;
mod kernel;
mod lab;
mod mutate;
mod ops;
mod shadow;
mod shell;
mod test;
mod topo_fuzz;
mod topo_fuzz_model;
mod topo_fuzz_report;
mod up;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// famfs-lab: a QEMU test lab and kernel CI for famfs over FUSE with BPF
/// fmap ops.
#[derive(Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    /// Say nothing on stderr but errors: stdout still has the verb's data (tables, JSON,
    /// KTAP, paths); the output of the commands the lab runs is shown only if one fails.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Say more on stderr: every command the lab runs, and `info` logs (FAMFS_LAB_LOG, a
    /// tracing filter, overrides the log level).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Host prerequisites: check them, install what is missing.
    #[command(subcommand)]
    Host(host::Host),
    /// Kernels: fetch, patch, configure, build, cache.
    #[command(subcommand)]
    Kernel(kernel::Kernel),
    /// The lab: boot a guest and run the suites.
    #[command(subcommand)]
    Lab(lab::Lab),
    /// The tests: unit tests (nextest), then `lab up` (what CI runs).
    Test(test::TestArgs),
    /// Dependency checks: cargo deny (licenses, bans and duplicates, sources; deny.toml) and
    /// cargo machete (unused dependencies); installs both from crates.io when missing.
    Deps(deps::DepsArgs),
    /// CI: the matrix of ci/matrix.yaml, and any cell run as CI runs it.
    #[command(subcommand)]
    Ci(ci::Ci),
    /// famfs shadow trees: generate one (N files, simple or interleaved, no overlap), check one.
    #[command(subcommand)]
    Shadow(shadow::Shadow),
    /// Guest image: build it (and the kernel it carries modules of).
    #[command(subcommand)]
    Image(ImageVerb),
}

#[derive(Subcommand)]
enum ImageVerb {
    /// Builds the guest binaries and the initramfs; prints its path.
    Build(image::ImageArgs),
}

/// The cargo that runs us (`$CARGO`, set by `cargo xtask`), for nested builds: the same
/// toolchain, not whichever `cargo` is first on PATH.
pub(crate) fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

fn main() {
    lab_host::stage::mark_process_start();
    let cli = Cli::parse();
    let level = lab_host::say::from_flags(cli.quiet, cli.verbose);
    lab_host::say::set(level);
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FAMFS_LAB_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(lab_host::say::tracing_filter(level))
            }),
        )
        .with_ansi(lab_host::say::color())
        .with_writer(std::io::stderr)
        .init();
    let result: Result<()> = (|| {
        let sh = xshell::Shell::new()?;
        sh.change_dir(lab_host::paths::repo_root());
        match cli.verb {
            Verb::Host(v) => v.run(&sh),
            Verb::Kernel(v) => v.run(&sh),
            Verb::Image(ImageVerb::Build(v)) => v.run(&sh),
            Verb::Lab(v) => v.run(&sh),
            Verb::Test(v) => v.run(&sh),
            Verb::Deps(v) => v.run(&sh),
            Verb::Ci(v) => v.run(&sh),
            Verb::Shadow(v) => v.run(),
        }
    })();
    if let Err(err) = result {
        eprintln!("error: {err:#}");
        // Whatever stops a verb before its cases ran: the lab could not run.
        std::process::exit(lab_report::EXIT_LAB_ERROR);
    }
}

#[cfg(test)]
mod layering_tests;
