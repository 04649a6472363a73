//! `famfs-lab-cases`: the guest side of the lab's suites.
//!
//! ```text
//! famfs-lab-cases setup PLAN_JSON     create regions; write the device map
//! famfs-lab-cases run SUITE.CASE      run one case (exit 0 pass, 1 fail, 77 skip)
//! famfs-lab-cases mount SHADOW MNT    serve a shadow tree at MNT and leave it mounted
//! famfs-lab-cases list                print the catalog
//! ```

mod harness;
mod setup;
mod shell_mount;
mod suites;
mod system;

use harness::famfs;
use suites::{
    bench, bpf_load, devmissing, fault, fuzz, open, security, selftest, shared, smoke, stress,
    truncate, user_tree_check,
};

use anyhow::{bail, Context, Result};
use lab_suite::devices::DeviceMap;
use lab_suite::plan::SetupPlan;
use lab_suite::{catalog, DEVICES_JSON, EXIT_FAIL, EXIT_SKIP};
use std::path::Path;

/// What a case ended with (errors are failures too).
pub enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

const PLAN_JSON: &str = "/run/famfs-lab/plan.json";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match dispatch(&args) {
        Ok(Outcome::Pass) => 0,
        Ok(Outcome::Skip(why)) => {
            println!("SKIP: {why}");
            EXIT_SKIP
        }
        Ok(Outcome::Fail(why)) => {
            println!("FAIL: {why}");
            EXIT_FAIL
        }
        Err(e) => {
            println!("FAIL: {e:#}");
            EXIT_FAIL
        }
    };
    std::process::exit(code);
}

fn dispatch(args: &[String]) -> Result<Outcome> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["setup", plan] => {
            let plan: SetupPlan = serde_json::from_str(plan).context("parsing the setup plan")?;
            let map = setup::run(&plan)?;
            std::fs::create_dir_all("/run/famfs-lab")?;
            std::fs::write(PLAN_JSON, serde_json::to_string_pretty(&plan)?)?;
            let text = serde_json::to_string_pretty(&map)?;
            std::fs::write(DEVICES_JSON, &text)?;
            println!("{text}");
            Ok(Outcome::Pass)
        }
        ["run", id] => {
            let case = catalog::find(id)
                .with_context(|| format!("no case {id:?}; `famfs-lab-cases list` shows them"))?;
            match case.suite {
                "selftest" => selftest::run(case.name),
                "bpf_selftests" => bpf_load::run(case.name),
                "smoke" => {
                    let (plan, map) = load()?;
                    smoke::run(case.name, &plan, &map)
                }
                "open" => fmap_case(id, |ctx| open::run(case.name, ctx)),
                "fault" => fmap_case(id, |ctx| fault::run(case.name, ctx)),
                "truncate" => fmap_case(id, |ctx| truncate::run(case.name, ctx)),
                "security" => fmap_case(id, |ctx| security::run(case.name, ctx)),
                "device_missing" => fmap_case(id, |ctx| devmissing::run(case.name, ctx)),
                "stress" => fmap_case(id, |ctx| stress::run(case.name, ctx)),
                "fuzz" => fmap_case(id, |ctx| fuzz::run(case.name, ctx)),
                "bench" => fmap_case(id, |ctx| bench::run(case.name, ctx)),
                "shadow" => fmap_case(id, |ctx| user_tree_check::run(case.name, ctx)),
                "shared" => fmap_case(id, |ctx| shared::run(case.name, ctx)),
                other => bail!("suite {other} has no guest implementation"),
            }
        }
        ["mount", shadow, mnt] => {
            let (_, map) = load()?;
            let ctx = famfs::Ctx::new("shell", &map);
            shell_mount::run(shadow, mnt, &ctx)
        }
        ["list"] => {
            for c in catalog::CASES {
                println!("{:40} {:>4}s  {}", c.id(), c.timeout_s, c.about);
            }
            Ok(Outcome::Pass)
        }
        _ => bail!(
            "usage: famfs-lab-cases setup PLAN_JSON | run SUITE.CASE | mount SHADOW MNT | list"
        ),
    }
}

/// Runs an fmap case with its context; the verify file is written whatever the outcome.
fn fmap_case(id: &str, f: impl FnOnce(&mut famfs::Ctx<'_>) -> Result<Outcome>) -> Result<Outcome> {
    let (_, map) = load()?;
    let mut ctx = famfs::Ctx::new(id, &map);
    let out = f(&mut ctx);
    ctx.finish()?;
    out
}

fn load() -> Result<(SetupPlan, DeviceMap)> {
    let read = |p: &str| {
        std::fs::read_to_string(Path::new(p))
            .with_context(|| format!("reading {p} (did setup run?)"))
    };
    let plan = serde_json::from_str(&read(PLAN_JSON)?).context("parsing the plan")?;
    let map = serde_json::from_str(&read(DEVICES_JSON)?).context("parsing the device map")?;
    Ok((plan, map))
}
