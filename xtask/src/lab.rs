//! `cargo xtask lab ...`: one verb a module: `lab up` in [`crate::up`], `lab shell` and
//! `lab exec` in [`crate::shell`], `lab bench` in [`crate::bench`], `lab topo-fuzz` in
//! [`crate::topo_fuzz`], `lab bisect` in [`crate::bisect`]; `lab list` here.

use anyhow::Result;
use clap::Subcommand;
use xshell::Shell;

use crate::up::{exit_with, up, UpArgs};

#[derive(Subcommand)]
pub enum Lab {
    /// Builds what is needed, boots the guest, runs the suites, reports.
    Up(UpArgs),
    /// The guest set up as a run sets it up (regions, dax devices, famfs mounted with the ops)
    /// or as a case begins (--case), with a banner and a shell on its console; leaving the
    /// shell (Ctrl-D, `poweroff -f`, Ctrl-A x) powers it off.
    Shell(crate::shell::ShellArgs),
    /// The same set-up guest, one command (after `--`): its stdout, stderr and exit status
    /// passed through (125: the lab could not run it), the guest powered off after.
    Exec(crate::shell::ExecArgs),
    /// Lists suites and cases.
    List {
        /// As JSON: `{"suites": [{name, default, about, cases: [{id, timeout_s, about}]}]}`.
        #[arg(long)]
        json: bool,
    },
    /// Benchmarks: boot (QEMU start -> agent -> devices ready -> first case).
    #[command(subcommand)]
    Bench(crate::bench::Bench),
    /// Random topologies: every one the checks accept must set up and pass smoke in the guest,
    /// every one they refuse must name a rule. Prints the seeds of failures.
    TopoFuzz(crate::topo_fuzz_model::TopoFuzzArgs),
    /// From a failing case to the first bad commit (a git range of your tree) or patch (the
    /// prefixes of the series): builds and runs each step, prints the culprit.
    Bisect(crate::bisect::BisectArgs),
}

impl Lab {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Lab::Up(args) => exit_with(up(sh, &args)?),
            Lab::Shell(args) => crate::shell::shell(sh, &args),
            Lab::Exec(args) => crate::shell::exec(sh, &args),
            Lab::Bench(b) => b.run(sh),
            Lab::TopoFuzz(args) => exit_with(crate::topo_fuzz::run(sh, &args)?),
            Lab::Bisect(args) => exit_with(crate::bisect::run(sh, &args)?),
            Lab::List { json: true } => {
                println!("{}", list_json());
                Ok(())
            }
            Lab::List { json: false } => {
                for s in lab_suite::catalog::SUITES {
                    let default = if s.default {
                        ""
                    } else {
                        " (only with --suite)"
                    };
                    println!("{}{default}: {}", s.name, s.about);
                    for c in lab_suite::catalog::CASES
                        .iter()
                        .filter(|c| c.suite == s.name)
                    {
                        println!("  {:36} {:>4}s  {}", c.id(), c.timeout_s, c.about);
                    }
                }
                Ok(())
            }
        }
    }
}

/// The catalog as JSON, for `lab list --json`.
fn list_json() -> serde_json::Value {
    use lab_suite::catalog::{CASES, SUITES};
    let suites: Vec<serde_json::Value> = SUITES
        .iter()
        .map(|s| {
            let cases: Vec<serde_json::Value> = CASES
                .iter()
                .filter(|c| c.suite == s.name)
                .map(|c| serde_json::json!({"id": c.id(), "timeout_s": c.timeout_s, "about": c.about}))
                .collect();
            serde_json::json!({"name": s.name, "default": s.default, "about": s.about, "cases": cases})
        })
        .collect();
    serde_json::json!({ "suites": suites })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_json_has_every_suite_and_case() {
        let v = list_json();
        let suites = v["suites"].as_array().expect("suites");
        assert_eq!(suites.len(), lab_suite::catalog::SUITES.len());
        let ids: Vec<&str> = suites
            .iter()
            .flat_map(|s| s["cases"].as_array().into_iter().flatten())
            .filter_map(|c| c["id"].as_str())
            .collect();
        assert_eq!(ids.len(), lab_suite::catalog::CASES.len());
        assert!(ids.contains(&crate::up::USER_TREE_CASE), "{ids:?}");
        assert!(suites.iter().all(|s| s["default"].is_boolean()));
    }
}
