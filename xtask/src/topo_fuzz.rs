//! `cargo xtask lab topo-fuzz`: the topology property. Topology `i` of a run is
//! `lab_vm::topology_gen::random_topology(SEED + i)`; the host checks accept it or refuse it.
//! A refused one must name a rule in every problem; an accepted one boots (one guest each,
//! the kernel and image built once) and must set up and pass the smoke suite, whose
//! `smoke.region_bytes` checks every region's bytes from both sides. The seeds of failures are
//! printed with the command that reruns each.

use anyhow::{Context, Result};
use lab_host::stage::Timings;
use lab_vm::rules::rule_of;
use lab_vm::topology_gen::random_topology;
use lab_vm::Topology;
use std::time::{Duration, Instant};
use xshell::Shell;

use crate::topo_fuzz_model::{Entry, RefusalInGuest, TopoFuzzArgs, Verdict};

/// The host's verdict on `t`: accepted, or refused by the rules its problems name.
pub fn judge_on_host(t: &Topology) -> Verdict {
    let problems = t.validate();
    if problems.is_empty() {
        return Verdict::Accepted;
    }
    let mut rules: Vec<String> = Vec::new();
    for (key, message) in &problems {
        match rule_of(message) {
            Some(r) if !rules.iter().any(|x| x == r) => rules.push(r.to_string()),
            Some(_) => {}
            None => return Verdict::RefusedWithoutRule(format!("{key}: {message}")),
        }
    }
    Verdict::Refused(rules)
}

/// Runs the fuzzer; returns the exit status (0 the property held, 1 it failed somewhere).
pub fn run(sh: &Shell, args: &TopoFuzzArgs) -> Result<i32> {
    let dir = lab_host::paths::runs_dir()
        .join("topo-fuzz")
        .join(crate::up::run_id());
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut entries = Vec::new();
    for i in 0..args.count {
        let seed = args.seed.wrapping_add(i);
        let t = random_topology(seed);
        let yaml = dir.join(format!("{}.yaml", t.name));
        let text = serde_norway::to_string(&t).context("writing a topology as YAML")?;
        std::fs::write(&yaml, text).with_context(|| format!("writing {}", yaml.display()))?;
        let verdict = judge_on_host(&t);
        entries.push((
            t,
            Entry {
                seed,
                yaml,
                verdict,
                run_dir: None,
                refusal: None,
            },
        ));
    }
    let accepted = entries
        .iter()
        .filter(|(_, e)| e.verdict == Verdict::Accepted)
        .count();
    lab_host::progress!(
        "famfs-lab: topo-fuzz: {} topologies (seeds {}..{}), {accepted} accepted; YAML in {}",
        args.count,
        args.seed,
        args.seed.wrapping_add(args.count),
        dir.display()
    );
    let to_boot = entries
        .iter()
        .filter(|(_, e)| {
            e.verdict == Verdict::Accepted || (args.boot_refused && e.refused_by_model_only())
        })
        .count();
    if !args.host_only && to_boot > 0 {
        boot_all(sh, args, &mut entries, to_boot)?;
    }
    let entries: Vec<Entry> = entries.into_iter().map(|(_, e)| e).collect();
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::topo_fuzz_report::summary_json(args, &entries))?
        );
    } else {
        print!("{}", crate::topo_fuzz_report::summary_text(args, &entries));
    }
    Ok(i32::from(entries.iter().any(Entry::is_failure)))
}

/// The smoke cases that must pass (not the one that times out on purpose).
fn smoke_cases() -> Vec<String> {
    lab_suite::catalog::CASES
        .iter()
        .filter(|c| c.suite == "smoke" && c.expect == lab_suite::catalog::Expect::Pass)
        .map(|c| c.id())
        .collect()
}

/// Boots every accepted topology (and with `--boot-refused` every one refused by the decoder
/// model alone), one guest each, the kernel and image prepared once.
fn boot_all(
    sh: &Shell,
    args: &TopoFuzzArgs,
    entries: &mut [(Topology, Entry)],
    total: usize,
) -> Result<()> {
    let first = entries
        .first()
        .map(|(t, _)| t.clone())
        .context("no topology")?;
    let mut timings = Timings::default();
    let prepared = crate::up::prepare_for(sh, &args.kernel, first, &mut timings)?;
    let config = std::fs::read_to_string(prepared.kernel.entry.config())
        .context("reading the kernel's config")?;
    let features =
        lab_runner::plan::KernelFeatures::from_config(&prepared.kernel.meta.label, &config);
    let cases = smoke_cases();
    let mut done = 0;
    for (t, e) in entries.iter_mut() {
        let refused = args.boot_refused && e.refused_by_model_only();
        if e.verdict != Verdict::Accepted && !refused {
            continue;
        }
        done += 1;
        let run_id = format!("{}-{}", crate::up::run_id(), t.name);
        let run_dir = lab_host::paths::runs_dir().join(&run_id);
        let req = lab_runner::RunRequest {
            run_id,
            run_dir: run_dir.clone(),
            kernel: features.clone(),
            kernel_hash: prepared.kernel.meta.key.clone(),
            kernel_image: prepared.kernel.entry.boot_image(&config),
            initramfs: prepared.image.path.clone(),
            topology: t.clone(),
            suites: Vec::new(),
            cases: cases.clone(),
            accel: prepared.accel.clone(),
            reproduce: format!(
                "cargo xtask lab up --kernel {} --topology {} --suite smoke",
                args.kernel.kernel,
                e.yaml.display()
            ),
            cmdline: String::new(),
            ops: crate::ops::Ops::Famfs.name().to_string(),
            boot_timeout: Duration::from_secs(args.boot_timeout),
            user_tree: None,
            console: Default::default(),
            clock: Default::default(),
        };
        let what = if refused {
            "refused, booting anyway"
        } else {
            "booting"
        };
        lab_host::progress!(
            "famfs-lab: topo-fuzz: [{done}/{total}] seed {} {what}",
            e.seed
        );
        let started = Instant::now();
        let outcome = match lab_runner::run::run(&req, crate::up::rfc3339_now()) {
            Ok(report) if report.exit_code() == 0 => Ok(()),
            Ok(report) => Err(why_failed(&report)),
            Err(err) => Err(format!("{err:#}")),
        };
        let said = if refused {
            let r = match outcome {
                Ok(()) => RefusalInGuest::SetUpAnyway,
                Err(why) => RefusalInGuest::Confirmed(why),
            };
            let word = match &r {
                RefusalInGuest::SetUpAnyway => "set up anyway: the rule is too strict",
                RefusalInGuest::Confirmed(_) => "the guest failed too: refusal confirmed",
            };
            e.refusal = Some(r);
            word
        } else {
            e.verdict = match outcome {
                Ok(()) => Verdict::Passed,
                Err(why) => Verdict::Failed(why),
            };
            e.verdict.word()
        };
        lab_host::progress!(
            "famfs-lab: topo-fuzz: [{done}/{total}] seed {}: {said} in {:.0} s ({})",
            e.seed,
            started.elapsed().as_secs_f64(),
            run_dir.display()
        );
        e.run_dir = Some(run_dir);
    }
    Ok(())
}

/// The lab error, or the failed cases with their reasons.
fn why_failed(report: &lab_report::RunReport) -> String {
    if let Some(e) = report.lab_error() {
        // "guest setup failed: Exited(1)" then the guest's output, whose FAIL line says why.
        let lines: Vec<&str> = e.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
        return match lines
            .iter()
            .skip(1)
            .find(|l| l.contains("FAIL") || l.contains("rror"))
        {
            Some(why) => format!("{}: {why}", lines[0]),
            None => first_line(e),
        };
    }
    report
        .suites
        .iter()
        .flat_map(|s| s.cases.iter().map(move |c| (s, c)))
        .filter(|(_, c)| c.outcome.is_failure())
        .map(|(s, c)| {
            format!(
                "{}.{}: {}",
                s.name,
                c.name,
                first_line(c.reason.as_deref().unwrap_or("failed"))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topo_fuzz_model::TEST_SAMPLE;

    #[test]
    fn the_host_verdict_names_the_rules_or_accepts() {
        let mut seen_refused = false;
        let mut seen_accepted = false;
        for seed in 0..200 {
            match judge_on_host(&random_topology(seed)) {
                Verdict::Refused(rules) => {
                    seen_refused = true;
                    assert!(!rules.is_empty(), "{seed}");
                }
                Verdict::Accepted => seen_accepted = true,
                other => panic!("seed {seed}: {other:?}"),
            }
        }
        assert!(seen_refused && seen_accepted);
    }

    #[test]
    fn a_refusal_without_a_rule_fails_the_property() {
        let mut t = random_topology(1);
        t.cpus = 0; // refused by a check that names no rule
        match judge_on_host(&t) {
            Verdict::RefusedWithoutRule(why) => assert!(why.contains("cpus"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(Verdict::RefusedWithoutRule(String::new()).is_failure());
        assert!(Verdict::Failed(String::new()).is_failure());
        assert!(!Verdict::Refused(vec!["hpa-order".into()]).is_failure());
    }

    #[test]
    fn the_test_sample_boots_some_and_refuses_some() {
        let (seed, count) = TEST_SAMPLE;
        let verdicts: Vec<Verdict> = (seed..seed + count)
            .map(|s| judge_on_host(&random_topology(s)))
            .collect();
        assert!(verdicts.contains(&Verdict::Accepted), "{verdicts:?}");
        assert!(
            verdicts.iter().any(|v| matches!(v, Verdict::Refused(_))),
            "{verdicts:?}"
        );
    }

    #[test]
    fn smoke_cases_leave_out_the_deliberate_timeout() {
        let cases = smoke_cases();
        assert!(
            cases.contains(&"smoke.region_bytes".to_string()),
            "{cases:?}"
        );
        assert!(
            !cases.iter().any(|c| c == "smoke.hang_times_out"),
            "{cases:?}"
        );
    }
}
