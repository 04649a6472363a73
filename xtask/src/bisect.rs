//! `cargo xtask lab bisect`: from a failing case to the first bad commit or patch.
//!
//! The range is either a git range of the user's tree (`--source-dir TREE --good REF --bad
//! REF`: each commit built as it is) or the prefixes of the kernel's patch series
//! (`--series`: position k has the first k patches). Every step is built through the lab's
//! kernel build (`lab_kernel::build::BisectStep`: one work tree for the whole bisection,
//! `work/<label>+bisect`, seeded from the kernel's built tree, incremental from step to step,
//! each step cached under its own key) and run through `lab up` with only the named cases.
//! The user's tree is never written to: a git range is bisected in a clone of ours that
//! borrows its objects (`git clone --shared`), checked out in our work tree.
//!
//! The pure part (search, verdicts, "same kind of failure", the report) is `lab_bisect`.

use anyhow::{bail, Context, Result};
use clap::{ArgGroup, Args};
use lab_bisect::report::{BisectReport, Evidence, Outcome, Run, Step};
use lab_bisect::search::{Next, Search};
use lab_bisect::verdict::{self, Attempt, RunVerdict, Verdict, Wanted};
use lab_kernel::build::{BisectStep, DoesNotBuild};
use lab_kernel::series::Patch;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xshell::{cmd, Shell};

use crate::build_args::BuildArgs;

#[derive(Args, Debug)]
#[command(group(ArgGroup::new("range").required(true).args(["source_dir", "series"])))]
pub struct BisectArgs {
    /// The case to bisect (SUITE.NAME; repeatable). Its failure at --bad (its reason, or its
    /// splat) is what a step must show to be bad.
    #[arg(long = "case", required = true, value_name = "SUITE.NAME")]
    pub cases: Vec<String>,
    /// A directory of kernels/: its fragments (and, with --series, its series and source).
    #[arg(long, default_value = "famfs-bpf")]
    pub kernel: String,
    /// Bisect a git range of this kernel tree (never modified), with --good and --bad.
    #[arg(long, value_name = "TREE", requires_all = ["good", "bad"])]
    pub source_dir: Option<PathBuf>,
    /// Bisect the prefixes of the kernel's patch series (kernels/<kernel>/patches/series).
    #[arg(long)]
    pub series: bool,
    /// The good end: a commit of TREE; with --series a number of patches or a patch's name
    /// (or its number, e.g. 0011): the prefix through it. With --series the default is 0,
    /// the source without the series.
    #[arg(long, value_name = "REF")]
    pub good: Option<String>,
    /// The bad end: a commit of TREE; with --series as --good (default: the whole series).
    #[arg(long, value_name = "REF")]
    pub bad: Option<String>,
    /// A topology name (lab/topologies/NAME.yaml) or a path to one.
    #[arg(long, default_value = "default")]
    pub topology: String,
    /// The fmap ops the cases mount with (as `lab up --ops`).
    #[arg(long, value_enum, env = "FAMFS_LAB_OPS", default_value = "famfs")]
    pub ops: crate::ops::Ops,
    /// An extra config fragment (a name in kernels/config, or a path).
    #[arg(long = "fragment")]
    pub fragments: Vec<String>,
    /// Run a bad step again up to N more times (and a passing --bad): runs that disagree make
    /// the step flaky, which the search treats as a skip.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub retries: usize,
    /// Seconds QEMU may take to boot the guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// make -j (default: cores + 1).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Only check host tools; never install.
    #[arg(long)]
    pub no_install: bool,
    /// For testing the bisection itself: insert this patch file into the series after its
    /// patch N (0 = first), for this run only; kernels/<kernel>/patches is not changed.
    #[arg(long, value_name = "N=FILE", requires = "series")]
    pub insert_patch: Option<String>,
}

/// One position of the range.
struct Position {
    label: String,
    subject: String,
    step: BisectStep,
}

/// The range to bisect: positions 0 (good) to the last (bad).
struct Range {
    mode: &'static str,
    describe: String,
    positions: Vec<Position>,
}

/// So many steps in a row on which the lab itself failed end the bisection.
const STOP_AFTER_LAB_ERRORS: usize = 3;
/// Lines of the serial log kept at the culprit and its parent.
const EXCERPT_LINES: usize = 30;

pub fn run(sh: &Shell, args: &BisectArgs) -> Result<i32> {
    check_cases(&args.cases)?;
    crate::host::preflight(sh, crate::host::LAB_STAGES, args.no_install)?;
    let range = match &args.source_dir {
        Some(tree) => git_range(sh, args, tree)?,
        None => series_range(args)?,
    };
    let last = range.positions.len() - 1;
    let started = Instant::now();
    let id = crate::up::run_id();
    let out_dir = lab_host::paths::repo_root()
        .join("target/lab/bisect")
        .join(&id);
    let mut report = BisectReport {
        id: id.clone(),
        mode: range.mode.into(),
        kernel: args.kernel.clone(),
        cases: args.cases.clone(),
        topology: args.topology.clone(),
        ops: args.ops.name().into(),
        fragments: args.fragments.clone(),
        retries: args.retries,
        range: range.describe.clone(),
        positions: range.positions.iter().map(|p| p.label.clone()).collect(),
        looking_for: Vec::new(),
        steps: Vec::new(),
        outcome: Outcome::Unfinished {
            why: "running".into(),
        },
        reproduce: reproduce(args),
        seconds: 0,
    };
    lab_host::progress!(
        "famfs-lab: bisect {id}: {} over {} ({} positions, about {} steps); results in {}",
        args.cases.join(", "),
        range.describe,
        last + 1,
        Search::new(last).steps_left() + 1,
        out_dir.display()
    );
    write(&report, &out_dir)?;

    // The bad end first: it says what failure to look for.
    let mut wanted = Wanted::new();
    let bad = step(sh, args, &range, last, &mut Judge::AtBad(&mut wanted));
    report.looking_for = wanted
        .iter()
        .map(|(id, s)| format!("{id}: {}", s.headline()))
        .collect();
    let bad_verdict = bad.verdict;
    let bad_why = bad.why.clone();
    report.steps.push(bad);
    let mut search = Search::new(last);
    report.outcome = match bad_verdict {
        Verdict::Bad => bisect(
            sh,
            args,
            &range,
            &wanted,
            &mut search,
            &mut report,
            &out_dir,
        )?,
        Verdict::Flaky => Outcome::FlakyAtBad { why: bad_why },
        Verdict::Good => Outcome::NotBadAtBad { why: bad_why },
        Verdict::Skip => Outcome::Unfinished {
            why: format!("the case cannot be run at --bad: {bad_why}"),
        },
    };
    report.seconds = started.elapsed().as_secs();
    let path = write(&report, &out_dir)?;
    let text = report.text();
    std::fs::write(out_dir.join("bisect.txt"), &text)
        .with_context(|| format!("writing {}", out_dir.join("bisect.txt").display()))?;
    print!("{text}");
    lab_host::progress!("famfs-lab: bisect: {}", path.display());
    if let (Verdict::Skip, Outcome::Unfinished { why }) = (bad_verdict, &report.outcome) {
        // The lab could not run the case where it must fail: not a verdict on the kernel.
        bail!("{why}");
    }
    Ok(report.exit_code())
}

/// The search proper, once `--bad` is known bad: steps until a culprit (or none) is left.
fn bisect(
    sh: &Shell,
    args: &BisectArgs,
    range: &Range,
    wanted: &Wanted,
    search: &mut Search,
    report: &mut BisectReport,
    out_dir: &Path,
) -> Result<Outcome> {
    write(report, out_dir)?;
    let mut lab_errors = 0;
    loop {
        match search.next() {
            Next::Test(p) => {
                lab_host::progress!(
                    "famfs-lab: bisect: testing {} ({} of {}; about {} steps left)",
                    range.positions[p].label,
                    p,
                    search.last(),
                    search.steps_left()
                );
                let s = step(sh, args, range, p, &mut Judge::Step(wanted));
                lab_host::progress!(
                    "famfs-lab: bisect: {} is {}: {}",
                    s.label,
                    s.verdict.as_str(),
                    lab_bisect::report::one_line(&s.why, 160)
                );
                lab_errors = if s.why.contains("the lab could not run") {
                    lab_errors + 1
                } else {
                    0
                };
                search.record(p, s.verdict);
                report.steps.push(s);
                write(report, out_dir)?;
                if lab_errors >= STOP_AFTER_LAB_ERRORS {
                    return Ok(Outcome::Unfinished {
                        why: format!(
                            "{lab_errors} steps in a row the lab could not run: the lab, not \
                             the kernel, is broken"
                        ),
                    });
                }
            }
            Next::Found {
                first_bad,
                last_good,
            } => {
                if find(report, last_good).is_none() {
                    // The good end was taken on trust: run it, for its evidence.
                    lab_host::progress!(
                        "famfs-lab: bisect: running the culprit's parent {} for its log",
                        range.positions[last_good].label
                    );
                    let s = step(sh, args, range, last_good, &mut Judge::Step(wanted));
                    report.steps.push(s);
                    write(report, out_dir)?;
                }
                let pos = &range.positions[first_bad];
                return Ok(Outcome::FirstBad {
                    position: first_bad,
                    label: pos.label.clone(),
                    subject: pos.subject.clone(),
                    culprit: Box::new(evidence(report, first_bad, &args.cases)),
                    parent: Box::new(evidence(report, last_good, &args.cases)),
                });
            }
            Next::Ambiguous { candidates, .. } => {
                return Ok(Outcome::Ambiguous {
                    candidates: candidates
                        .iter()
                        .map(|&p| {
                            let pos = &range.positions[p];
                            let v = search.verdict(p).map(|v| v.as_str()).unwrap_or("untested");
                            format!("{} {} ({v})", pos.label, pos.subject)
                        })
                        .collect(),
                });
            }
        }
    }
}

/// How a step's runs are judged: at `--bad` (which sets the failures looked for) or
/// against them.
enum Judge<'a> {
    AtBad(&'a mut Wanted),
    Step(&'a Wanted),
}

/// Builds position `p` and runs the cases on it, again while its verdict wants confirming.
/// Every failure is a verdict, never an error.
fn step(sh: &Shell, args: &BisectArgs, range: &Range, p: usize, judge: &mut Judge<'_>) -> Step {
    let pos = &range.positions[p];
    let started = Instant::now();
    let kernel = BuildArgs {
        kernel: args.kernel.clone(),
        source_dir: None,
        fragments: args.fragments.clone(),
        no_install: args.no_install,
        refresh_source: false,
        jobs: args.jobs,
        mutant: None,
        step: Some(Box::new(pos.step.clone())),
        cached_only: false,
    };
    let mut s = Step {
        position: p,
        label: pos.label.clone(),
        subject: pos.subject.clone(),
        verdict: Verdict::Skip,
        why: String::new(),
        runs: Vec::new(),
        kernel_key: None,
        build_seconds: 0,
        wait_seconds: 0,
        seconds: 0,
    };
    let mut t = lab_host::stage::Timings::default();
    let built = kernel.build(sh, &mut t);
    // the build's own stages: the time spent waiting for another build's lock is not the step's
    let staged: u64 = t.stages().iter().map(|(_, d)| d.as_secs()).sum();
    s.build_seconds = staged;
    s.wait_seconds = started.elapsed().as_secs().saturating_sub(staged);
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            let attempt = match e.chain().find_map(|c| c.downcast_ref::<DoesNotBuild>()) {
                Some(d) => Attempt::DoesNotBuild(lab_kernel::build::first_error(&d.detail)),
                None => Attempt::LabError(format!("{e:#}")),
            };
            let v = apply_judge(judge, &attempt, &args.cases);
            s.why = v.why.clone();
            s.runs.push(Run {
                verdict: v,
                run_dir: None,
                seconds: 0,
            });
            s.verdict = verdict::settle(&runs_of(&s));
            s.seconds = started.elapsed().as_secs();
            return s;
        }
    };
    s.kernel_key = Some(built.meta.key.clone());
    let up = crate::up::UpArgs {
        cases: args.cases.clone(),
        ..crate::up::UpArgs::driven(kernel, &args.topology, args.ops, args.boot_timeout)
    };
    loop {
        let run_started = Instant::now();
        let result = crate::up::up_report(sh, &up);
        let (v, run_dir) = match &result {
            Ok(report) => (
                apply_judge(judge, &Attempt::Ran(report), &args.cases),
                Some(run_dir_of(&report.run_id)),
            ),
            Err(e) => (
                apply_judge(judge, &Attempt::LabError(format!("{e:#}")), &args.cases),
                None,
            ),
        };
        s.runs.push(Run {
            verdict: v,
            run_dir,
            seconds: run_started.elapsed().as_secs(),
        });
        let runs = runs_of(&s);
        let again = match judge {
            Judge::AtBad(_) => verdict::wants_rerun_at_bad(&runs, args.retries),
            Judge::Step(_) => verdict::wants_rerun(&runs, args.retries),
        };
        if !again {
            break;
        }
        lab_host::progress!(
            "famfs-lab: bisect: {} was {}: running it again ({} of {})",
            s.label,
            runs[runs.len() - 1].verdict.as_str(),
            runs.len() + 1,
            args.retries + 1
        );
    }
    let runs = runs_of(&s);
    s.verdict = verdict::settle(&runs);
    s.why = match s.verdict {
        Verdict::Flaky => {
            let bad = runs.iter().filter(|r| r.verdict == Verdict::Bad).count();
            let other = runs
                .iter()
                .find(|r| r.verdict != Verdict::Bad)
                .map(|r| format!("{}: {}", r.verdict.as_str(), r.why))
                .unwrap_or_default();
            format!(
                "runs disagree: {bad} of {} bad; another was {other}",
                runs.len()
            )
        }
        _ => runs.first().map(|r| r.why.clone()).unwrap_or_default(),
    };
    s.seconds = started.elapsed().as_secs();
    s
}

fn apply_judge(judge: &mut Judge<'_>, attempt: &Attempt<'_>, cases: &[String]) -> RunVerdict {
    match judge {
        Judge::AtBad(wanted) => verdict::judge_at_bad(attempt, cases, wanted),
        Judge::Step(wanted) => verdict::judge(attempt, wanted),
    }
}

fn runs_of(s: &Step) -> Vec<RunVerdict> {
    s.runs.iter().map(|r| r.verdict.clone()).collect()
}

fn run_dir_of(run_id: &str) -> String {
    lab_host::paths::runs_dir()
        .join(run_id)
        .display()
        .to_string()
}

/// The latest step at position `p`.
fn find(report: &BisectReport, p: usize) -> Option<&Step> {
    report.steps.iter().rev().find(|s| s.position == p)
}

/// The named cases' reasons and serial windows at position `p`, from its last run.
fn evidence(report: &BisectReport, p: usize, cases: &[String]) -> Evidence {
    let Some(s) = find(report, p) else {
        return Evidence {
            position: p,
            label: report.positions.get(p).cloned().unwrap_or_default(),
            verdict: Verdict::Skip,
            reason: "not run".into(),
            serial_excerpt: Vec::new(),
            run_dir: None,
        };
    };
    // the run the step's verdict stands on: the last bad one at a bad step
    let run = s
        .runs
        .iter()
        .rev()
        .find(|r| r.verdict.verdict == s.verdict)
        .or(s.runs.last());
    let run_dir = run.and_then(|r| r.run_dir.clone());
    let mut reason = run.map(|r| r.verdict.why.clone()).unwrap_or_default();
    let mut serial_excerpt = Vec::new();
    if let Some(dir) = &run_dir {
        let dir = Path::new(dir);
        if let Ok(run) = read_run(dir) {
            let lines: Vec<String> = cases
                .iter()
                .filter_map(|id| {
                    let c = verdict::case(&run, id)?;
                    Some(format!(
                        "{id}: {}{}",
                        c.outcome,
                        c.reason
                            .as_deref()
                            .map(|r| format!(": {r}"))
                            .unwrap_or_default()
                    ))
                })
                .collect();
            if !lines.is_empty() {
                reason = lines.join("\n");
            }
        }
        let log = ["serial.log", "host0/serial.log"]
            .iter()
            .find_map(|f| std::fs::read_to_string(dir.join(f)).ok())
            .unwrap_or_default();
        for id in cases {
            serial_excerpt.extend(lab_bisect::excerpt::case_window(&log, id, EXCERPT_LINES));
        }
    }
    Evidence {
        position: p,
        label: s.label.clone(),
        verdict: s.verdict,
        reason,
        serial_excerpt,
        run_dir,
    }
}

fn read_run(dir: &Path) -> Result<lab_report::RunReport> {
    let path = dir.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    lab_report::RunReport::from_json(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Writes `dir/bisect.json` (aside, then renamed).
fn write(report: &BisectReport, dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let text = serde_json::to_string_pretty(report)? + "\n";
    lab_report::run_dir::write_atomic(dir, "bisect.json", &text)?;
    Ok(dir.join("bisect.json"))
}

/// Every named case must be one the lab knows.
fn check_cases(cases: &[String]) -> Result<()> {
    for id in cases {
        if !lab_suite::catalog::CASES.iter().any(|c| c.id() == *id) {
            bail!("--case {id}: no such case (`cargo xtask lab list` lists them)");
        }
    }
    Ok(())
}

/// The command line that runs this bisection again.
pub fn reproduce(args: &BisectArgs) -> String {
    let mut out = String::new();
    for (k, v) in std::env::vars() {
        if k.starts_with("FAMFS_LAB_FLAKY") {
            out.push_str(&format!("{k}={v} "));
        }
    }
    out.push_str(&format!("cargo xtask lab bisect --kernel {}", args.kernel));
    for c in &args.cases {
        out.push_str(&format!(" --case {c}"));
    }
    match &args.source_dir {
        Some(tree) => out.push_str(&format!(" --source-dir {}", tree.display())),
        None => out.push_str(" --series"),
    }
    if let Some(g) = &args.good {
        out.push_str(&format!(" --good {g}"));
    }
    if let Some(b) = &args.bad {
        out.push_str(&format!(" --bad {b}"));
    }
    if let Some(i) = &args.insert_patch {
        out.push_str(&format!(" --insert-patch {i}"));
    }
    out.push_str(&format!(
        " --topology {} --ops {}",
        args.topology,
        args.ops.name()
    ));
    for f in &args.fragments {
        out.push_str(&format!(" --fragment {f}"));
    }
    out.push_str(&format!(" --retries {}", args.retries));
    out
}

// ---- the series' prefixes ----

fn series_range(args: &BisectArgs) -> Result<Range> {
    let kernels = lab_host::paths::repo_root().join("kernels");
    let spec = lab_kernel::KernelSpec::load(&kernels, &args.kernel)?;
    let mut patches = lab_kernel::series::read(&spec.patches_dir())?;
    if patches.is_empty() {
        bail!(
            "kernel {} has no patch series to bisect ({})",
            args.kernel,
            spec.patches_dir().join("series").display()
        );
    }
    let mut describe = format!(
        "the prefixes of kernels/{}/patches/series ({} patches",
        args.kernel,
        patches.len()
    );
    if let Some(arg) = &args.insert_patch {
        let (after, patch) = insert_arg(arg, patches.len())?;
        describe.push_str(&format!(", {} inserted after patch {after}", patch.name));
        patches.insert(after, patch);
    }
    describe.push(')');
    let good = match &args.good {
        Some(g) => prefix_arg(g, &patches).with_context(|| format!("--good {g}"))?,
        None => 0,
    };
    let bad = match &args.bad {
        Some(b) => prefix_arg(b, &patches).with_context(|| format!("--bad {b}"))?,
        None => patches.len(),
    };
    if good >= bad {
        bail!("--good ({good} patches) must come before --bad ({bad} patches)");
    }
    let positions = (good..=bad)
        .map(|k| Position {
            label: if k == 0 {
                "base".into()
            } else {
                patches[k - 1].name.clone()
            },
            subject: if k == 0 {
                "(the source without the series)".into()
            } else {
                patch_subject(&patches[k - 1].bytes)
            },
            step: BisectStep {
                patches: patches[..k].to_vec(),
                git: None,
                work_suffix: "+bisect".into(),
            },
        })
        .collect();
    Ok(Range {
        mode: "series",
        describe,
        positions,
    })
}

/// `N=FILE`: the patch file, to go after the series' patch N.
fn insert_arg(arg: &str, len: usize) -> Result<(usize, Patch)> {
    let (n, file) = arg
        .split_once('=')
        .with_context(|| format!("--insert-patch {arg}: expected N=FILE"))?;
    let after: usize = n
        .parse()
        .with_context(|| format!("--insert-patch {arg}: {n:?} is not a patch number"))?;
    if after > len {
        bail!("--insert-patch {arg}: the series has {len} patches");
    }
    let path = std::fs::canonicalize(file)
        .with_context(|| format!("--insert-patch {arg}: {file} does not exist"))?;
    let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok((after, Patch { name, path, bytes }))
}

/// A prefix of `patches`: a count (`0`..`len`) or a patch's name, or the start of exactly
/// one name (`0011`), meaning the prefix through that patch.
fn prefix_arg(arg: &str, patches: &[Patch]) -> Result<usize> {
    if let Ok(n) = arg.parse::<usize>() {
        // a count, not the number a patch's name starts with (0011)
        if arg.len() < 4 && (arg == "0" || !arg.starts_with('0')) {
            if n > patches.len() {
                bail!("the series has {} patches", patches.len());
            }
            return Ok(n);
        }
    }
    let hits: Vec<usize> = patches
        .iter()
        .enumerate()
        .filter(|(_, p)| p.name == arg || p.name.starts_with(arg))
        .map(|(i, _)| i + 1)
        .collect();
    match hits.as_slice() {
        [k] => Ok(*k),
        [] => bail!("no patch of the series is called {arg:?} (or starts so)"),
        _ => bail!("{arg:?} names {} patches of the series", hits.len()),
    }
}

/// The `Subject:` of a `git format-patch` file, without `[PATCH ...]`.
pub fn patch_subject(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut lines = text.lines();
    let mut subject = String::new();
    while let Some(l) = lines.next() {
        if let Some(s) = l.strip_prefix("Subject:") {
            subject = s.trim().to_string();
            // folded header lines
            for more in lines.by_ref() {
                if more.starts_with([' ', '\t']) {
                    subject.push(' ');
                    subject.push_str(more.trim());
                } else {
                    break;
                }
            }
            break;
        }
        if l.is_empty() {
            break;
        }
    }
    match subject.strip_prefix('[') {
        Some(rest) if subject.starts_with("[PATCH") || subject.starts_with("[RFC") => rest
            .split_once("] ")
            .map(|(_, s)| s.to_string())
            .unwrap_or(subject),
        _ => subject,
    }
}

// ---- a git range ----

fn git_range(sh: &Shell, args: &BisectArgs, tree: &Path) -> Result<Range> {
    if args.insert_patch.is_some() {
        bail!("--insert-patch goes with --series");
    }
    let tree = tree
        .canonicalize()
        .with_context(|| format!("--source-dir {} does not exist", tree.display()))?;
    let (Some(good), Some(bad)) = (&args.good, &args.bad) else {
        bail!("--source-dir needs --good and --bad");
    };
    let commit = |r: &str| -> Result<String> {
        let spec = format!("{r}^{{commit}}");
        cmd!(sh, "git -C {tree} rev-parse --verify -q {spec}")
            .quiet()
            .read()
            .with_context(|| format!("{r:?} is not a commit of {}", tree.display()))
    };
    let (good_c, bad_c) = (commit(good)?, commit(bad)?);
    let range = format!("{good_c}..{bad_c}");
    let listed = cmd!(
        sh,
        "git -C {tree} rev-list --reverse --first-parent --ancestry-path {range}"
    )
    .quiet()
    .read()
    .with_context(|| format!("listing {good}..{bad} in {}", tree.display()))?;
    let commits: Vec<String> = listed.lines().map(|l| l.trim().to_string()).collect();
    if commits.last() != Some(&bad_c) {
        bail!(
            "--bad {bad} does not descend from --good {good} in {} (git rev-list --ancestry-path \
             lists nothing)",
            tree.display()
        );
    }
    let clone = clone_of(sh, &tree)?;
    let key = tree_key(&tree);
    let mut positions = Vec::new();
    for c in std::iter::once(&good_c).chain(commits.iter()) {
        let subject = cmd!(sh, "git -C {tree} log -1 --format=%s {c}")
            .quiet()
            .read()
            .unwrap_or_default();
        positions.push(Position {
            label: c.chars().take(12).collect(),
            subject,
            step: BisectStep {
                patches: Vec::new(),
                git: Some(lab_kernel::spec::GitSource {
                    dir: clone.clone(),
                    reference: c.clone(),
                }),
                work_suffix: format!("+bisect-git-{}", &key[..8]),
            },
        });
    }
    Ok(Range {
        mode: "git",
        describe: format!(
            "{} {}..{} ({} commits)",
            tree.display(),
            good,
            bad,
            commits.len()
        ),
        positions,
    })
}

fn tree_key(tree: &Path) -> String {
    lab_kernel::cache::KeyInputs {
        source_id: tree.display().to_string(),
        ..Default::default()
    }
    .key()
}

/// The lab's clone of the user's tree, `<cache>/bisect/<key>/repo`: `git clone --shared`
/// reads the tree's objects where they are (nothing is copied, nothing written there);
/// commits are checked out from it into the bisection's work tree.
fn clone_of(sh: &Shell, tree: &Path) -> Result<PathBuf> {
    let dir = lab_host::paths::cache_root()
        .join("bisect")
        .join(tree_key(tree));
    let repo = dir.join("repo");
    if repo.join("HEAD").is_file() || repo.join(".git").exists() {
        return Ok(repo);
    }
    let tmp = dir.join("repo.tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    lab_host::say::run(cmd!(
        sh,
        "git -c init.defaultBranch=main clone -q --shared --no-checkout {tree} {tmp}"
    ))
    .with_context(|| format!("cloning {}", tree.display()))?;
    lab_host::say::run(cmd!(sh, "git -C {tmp} config gc.auto 0"))?;
    std::fs::rename(&tmp, &repo)
        .with_context(|| format!("moving {} into place", repo.display()))?;
    Ok(repo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patches(names: &[&str]) -> Vec<Patch> {
        names
            .iter()
            .map(|n| Patch {
                name: n.to_string(),
                path: PathBuf::from(n),
                bytes: Vec::new(),
            })
            .collect()
    }

    #[test]
    fn a_prefix_is_a_count_or_a_patch_name() {
        let p = patches(&["0001-a.patch", "0002-b.patch", "0011-c.patch"]);
        assert_eq!(prefix_arg("0", &p).unwrap(), 0);
        assert_eq!(prefix_arg("2", &p).unwrap(), 2);
        assert_eq!(prefix_arg("0011", &p).unwrap(), 3);
        assert_eq!(prefix_arg("0002-b.patch", &p).unwrap(), 2);
        assert!(prefix_arg("4", &p).is_err());
        assert!(prefix_arg("0009", &p).is_err());
        assert!(format!("{:#}", prefix_arg("00", &p).unwrap_err()).contains("3 patches"));
    }

    #[test]
    fn subjects_lose_their_patch_tag_and_keep_folded_lines() {
        let p = b"From 1 Mon\nFrom: A <a@b>\nSubject: [PATCH v2 03/13] fuse: add the\n connection\n\nbody\nSubject: no\n";
        assert_eq!(patch_subject(p), "fuse: add the connection");
        assert_eq!(patch_subject(b"Subject: plain\n"), "plain");
        assert_eq!(patch_subject(b"no header\n"), "");
    }

    #[test]
    fn insert_patch_takes_a_position_and_an_existing_file() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("0099-x.patch");
        std::fs::write(&f, "Subject: x\n").unwrap();
        let (after, p) = insert_arg(&format!("11={}", f.display()), 13).unwrap();
        assert_eq!((after, p.name.as_str()), (11, "0099-x.patch"));
        assert!(insert_arg(&format!("14={}", f.display()), 13).is_err());
        assert!(insert_arg("x", 13).is_err());
        assert!(insert_arg("1=/nonexistent/p.patch", 13).is_err());
    }
}
