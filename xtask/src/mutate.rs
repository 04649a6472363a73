//! `cargo xtask kernel mutate`: mutation testing of a kernel's patch series.
//!
//! Each mutant of `kernels/<k>/mutants/` (see `lab_kernel::mutant`) is applied
//! on top of the series in the kernel's mutant work tree (`work/<k>+mutate`,
//! incremental builds), built under its own cache key, and run through the
//! suites as `lab up` runs them. A mutant is *killed* when a case fails that
//! passed on the unmutated series (the baseline run), *survived* when none
//! does; or it *does not apply*, *fails to build*, or the lab could not judge
//! it (*lab error*). Score = killed / (killed + survived). The table goes to
//! stdout, `target/lab/mutate/<id>/mutate.json` is rewritten after every
//! mutant, so an interrupted run keeps what it measured.

use anyhow::{bail, Context, Result};
use clap::Args;
use lab_kernel::mutant::{Mutant, MutantError};
use lab_report::RunReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use xshell::Shell;

use crate::build_args::BuildArgs;

#[derive(Args, Debug)]
pub struct MutateArgs {
    #[command(flatten)]
    pub kernel: BuildArgs,
    /// Only this mutant (repeatable; run in the order given). Default: all of them.
    #[arg(long = "mutant", value_name = "NAME")]
    pub mutants: Vec<String>,
    /// List the mutants (name, what each removes) and stop.
    #[arg(long)]
    pub list: bool,
    /// Run these suites on each mutant (default: the default suites).
    #[arg(long = "suite")]
    pub suites: Vec<String>,
    /// A topology name (lab/topologies/NAME.yaml) or a path to one.
    #[arg(long, default_value = "default")]
    pub topology: String,
    /// The fmap ops the cases mount with (as `lab up --ops`).
    #[arg(long, value_enum, env = "FAMFS_LAB_OPS", default_value = "famfs")]
    pub ops: crate::ops::Ops,
    /// Seconds QEMU may take to boot the guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
    /// Do not run the unmutated series first: then every failing case counts as a kill, even
    /// one that fails without the mutant too.
    #[arg(long)]
    pub no_baseline: bool,
    /// Take the baseline from this earlier `lab up` run of the unmutated series (its
    /// results.json, e.g. the `baseline.run_dir` of an earlier mutate.json) instead of running it.
    #[arg(long, value_name = "RUN_DIR", conflicts_with = "no_baseline")]
    pub baseline: Option<PathBuf>,
    /// Do not run the killing cases a second time on the mutant: then a case that failed once
    /// by chance (a flaky case) counts as a kill.
    #[arg(long)]
    pub no_confirm: bool,
    /// Take the killed and survived mutants (and the baseline) of this earlier mutate.json
    /// instead of running them again (repeatable; a later file wins). For an interrupted run.
    #[arg(long, value_name = "MUTATE_JSON")]
    pub resume: Vec<PathBuf>,
    /// Run each mutant's `Expect:` cases first, alone; when one of them kills it (confirmed
    /// like any kill), skip the run of the whole suites. About twice as fast; "killed by" then
    /// names only expected cases. Only expected cases that the baseline run ran are used, so a
    /// case that fails on the series anyway is never taken for a kill.
    #[arg(long)]
    pub expected_first: bool,
    /// Keep each mutant's kernel in the cache after it is judged (by default it is deleted:
    /// ~160 MB each, and a mutant rebuilds in a minute from its work tree).
    #[arg(long)]
    pub keep_kernels: bool,
    /// Only every N-th mutant from the K-th (`K/N`, K from 1): CI splits a campaign into N
    /// jobs this way and merges their mutate.json files with `--resume`.
    #[arg(long, value_name = "K/N", value_parser = parse_shard)]
    pub shard: Option<Shard>,
    /// Run nothing: one table and score from the `--resume` files (every verdict, a later
    /// file wins); a mutant none of them judged is an error. For CI's shards.
    #[arg(long, requires = "resume")]
    pub merge: bool,
}

/// One of N equal parts of the mutant list (`--shard K/N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=n
    pub k: usize,
    pub n: usize,
}

impl Shard {
    /// The mutants of this part: the K-th, the K+N-th, ... of `all`, in order.
    pub fn pick<T: Clone>(self, all: &[T]) -> Vec<T> {
        all.iter()
            .skip(self.k - 1)
            .step_by(self.n)
            .cloned()
            .collect()
    }
}

fn parse_shard(s: &str) -> std::result::Result<Shard, String> {
    let bad = || format!("--shard {s:?}: expected K/N with 1 <= K <= N, e.g. 2/4");
    let (k, n) = s.split_once('/').ok_or_else(bad)?;
    let (k, n): (usize, usize) = (
        k.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if k == 0 || k > n {
        return Err(bad());
    }
    Ok(Shard { k, n })
}

/// What became of one mutant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// A case that passes on the series failed.
    Killed,
    /// Every case that passes on the series passed.
    Survived,
    BuildFailed,
    DoesNotApply,
    /// The lab could not judge it (boot, image, host trouble).
    LabError,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Killed => "killed",
            Verdict::Survived => "survived",
            Verdict::BuildFailed => "build-failed",
            Verdict::DoesNotApply => "does-not-apply",
            Verdict::LabError => "lab-error",
        }
    }
}

/// One mutant's line of the result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutantResult {
    pub name: String,
    pub description: String,
    pub file: String,
    pub verdict: Verdict,
    /// Cases that failed on the mutant and pass on the series.
    #[serde(default)]
    pub killed_by: Vec<String>,
    /// Cases that failed on the mutant but fail on the series too, or that the baseline
    /// did not run (no evidence either way).
    #[serde(default)]
    pub also_failing_without: Vec<String>,
    /// Cases that failed on the mutant once but passed when run again on it (flaky: no
    /// evidence either).
    #[serde(default)]
    pub flaky: Vec<String>,
    /// The cases the mutant's file expects to kill it.
    #[serde(default)]
    pub expect: Vec<String>,
    /// The mutant file's `Equivalent:` reason: a survivor with one is not counted.
    #[serde(default)]
    pub equivalent: Option<String>,
    /// The error, for build-failed, does-not-apply and lab-error.
    #[serde(default)]
    pub detail: Option<String>,
    #[serde(default)]
    pub run_dir: Option<String>,
    #[serde(default)]
    pub kernel_key: Option<String>,
    pub seconds: u64,
}

/// The run of the unmutated series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub run_dir: String,
    pub kernel_key: String,
    pub cases: usize,
    /// Cases failing without any mutant: never counted as kills.
    pub failing: Vec<String>,
    /// Every case the baseline ran, so that a resumed campaign needs no run directory (the
    /// lab prunes old ones); earlier files lack it, and their run directory is read instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ran: Option<Vec<String>>,
}

/// killed / (killed + survived), survivors declared equivalent left out; None before any
/// mutant was judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub killed: usize,
    /// Survivors not declared equivalent.
    pub survived: usize,
    /// Survivors declared equivalent (`Equivalent:` in the mutant's file): not judged.
    #[serde(default)]
    pub equivalent: usize,
    pub build_failed: usize,
    pub does_not_apply: usize,
    pub lab_error: usize,
    pub score: Option<f64>,
}

impl Score {
    pub fn of(results: &[MutantResult]) -> Score {
        let n = |v: Verdict| results.iter().filter(|r| r.verdict == v).count();
        let equivalent = results
            .iter()
            .filter(|r| r.verdict == Verdict::Survived && r.equivalent.is_some())
            .count();
        let killed = n(Verdict::Killed);
        let survived = n(Verdict::Survived) - equivalent;
        Score {
            killed,
            survived,
            equivalent,
            build_failed: n(Verdict::BuildFailed),
            does_not_apply: n(Verdict::DoesNotApply),
            lab_error: n(Verdict::LabError),
            score: (killed + survived > 0).then(|| killed as f64 / (killed + survived) as f64),
        }
    }

    /// `score 0.85 (17 killed / 20 judged; 1 build-failed)`.
    pub fn line(&self) -> String {
        let value = self
            .score
            .map(|s| format!("{s:.2}"))
            .unwrap_or_else(|| "n/a".into());
        let mut out = format!(
            "score {value} ({} killed / {} judged",
            self.killed,
            self.killed + self.survived
        );
        for (n, what) in [
            (self.equivalent, "equivalent, not judged"),
            (self.build_failed, "build-failed"),
            (self.does_not_apply, "does-not-apply"),
            (self.lab_error, "lab-error"),
        ] {
            if n > 0 {
                out.push_str(&format!("; {n} {what}"));
            }
        }
        out.push(')');
        out
    }
}

/// `target/lab/mutate/<id>/mutate.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MutateReport {
    pub id: String,
    pub kernel: String,
    pub topology: String,
    pub ops: String,
    /// Empty: the default suites.
    pub suites: Vec<String>,
    pub baseline: Option<Baseline>,
    /// Mutants asked for, in run order (also those not run yet).
    pub planned: Vec<String>,
    pub mutants: Vec<MutantResult>,
    pub score: Score,
}

/// The ids (`SUITE.NAME`) of the cases of `report` that `keep` keeps.
fn case_ids<'a>(
    report: &'a RunReport,
    keep: impl Fn(&lab_report::CaseReport) -> bool + Copy + 'a,
) -> impl Iterator<Item = String> + 'a {
    report.suites.iter().flat_map(move |s| {
        s.cases
            .iter()
            .filter(move |c| keep(c))
            .map(move |c| format!("{}.{}", s.name, c.name))
    })
}

/// The ids (`SUITE.NAME`) of the cases of `report` that failed.
pub fn failing_cases(report: &RunReport) -> Vec<String> {
    case_ids(report, |c| c.outcome.is_failure()).collect()
}

/// What the run of the unmutated series says about each case.
#[derive(Debug, Clone, Default)]
pub struct BaselineCases {
    /// Cases it ran; `None` when not known (`--no-baseline`, or a resumed baseline whose run
    /// directory is gone): then every case not failing counts as passed.
    pub ran: Option<BTreeSet<String>>,
    /// Cases failing without a mutant.
    pub failing: BTreeSet<String>,
}

impl BaselineCases {
    /// Whether `case` passed on the series: only such a case's failure is evidence.
    pub fn passed(&self, case: &str) -> bool {
        !self.failing.contains(case) && self.ran.as_ref().is_none_or(|r| r.contains(case))
    }
}

/// Judges a mutant's run against the baseline: only a case that passed on the series kills
/// (verdict, killed by, failing but no evidence: failing on the series too, or not run there).
pub fn judge_report(
    report: &RunReport,
    baseline: &BaselineCases,
) -> (Verdict, Vec<String>, Vec<String>) {
    let (killed_by, also): (Vec<String>, Vec<String>) = failing_cases(report)
        .into_iter()
        .partition(|c| baseline.passed(c));
    let verdict = if killed_by.is_empty() {
        Verdict::Survived
    } else {
        Verdict::Killed
    };
    (verdict, killed_by, also)
}

/// Splits the cases that killed a mutant by whether they failed again when run
/// a second time on it: (confirmed, flaky).
pub fn confirm(killed_by: &[String], rerun_failing: &[String]) -> (Vec<String>, Vec<String>) {
    killed_by
        .iter()
        .cloned()
        .partition(|c| rerun_failing.contains(c))
}

/// Judges a failure to get a mutant kernel: the series' own errors say
/// whether the mutant did not apply or did not build; anything else is the lab's.
pub fn judge_build_error(err: &anyhow::Error) -> (Verdict, String) {
    let verdict = err
        .chain()
        .find_map(|e| e.downcast_ref::<MutantError>())
        .map(|e| match e {
            MutantError::DoesNotApply { .. } => Verdict::DoesNotApply,
            MutantError::BuildFailed { .. } => Verdict::BuildFailed,
        })
        .unwrap_or(Verdict::LabError);
    (verdict, format!("{err:#}"))
}

/// At most `n` items, then `+K more`.
fn shorten(items: &[String], n: usize) -> String {
    let mut out = items.iter().take(n).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > n {
        out.push_str(&format!(", +{} more", items.len() - n));
    }
    out
}

/// The line of an error worth a table cell (the compiler's error if there is
/// one, else the first line), cut to `max` characters.
fn first_line(text: &str, max: usize) -> String {
    let line = text
        .lines()
        .find(|l| l.contains(": error:"))
        .or_else(|| text.lines().next())
        .unwrap_or("")
        .trim();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

/// The human table: one line per mutant, then the score.
pub fn table(results: &[MutantResult]) -> String {
    let width = results
        .iter()
        .map(|r| r.name.len())
        .max()
        .unwrap_or(0)
        .max("MUTANT".len());
    let mut out = format!(
        "{:width$}  {:14}  {:>5}  DETAIL\n",
        "MUTANT", "VERDICT", "SECS"
    );
    for r in results {
        let detail = match r.verdict {
            Verdict::Killed if r.equivalent.is_some() => format!(
                "by {} (declared equivalent: it is not)",
                shorten(&r.killed_by, 4)
            ),
            Verdict::Killed => format!("by {}", shorten(&r.killed_by, 4)),
            Verdict::Survived if r.equivalent.is_some() => format!(
                "equivalent: {}",
                first_line(r.equivalent.as_deref().unwrap_or(""), 90)
            ),
            Verdict::Survived if !r.flaky.is_empty() => {
                format!("only flaky failures: {}", shorten(&r.flaky, 3))
            }
            Verdict::Survived if r.expect.is_empty() => "no case failed".to_string(),
            Verdict::Survived => format!("no case failed (expected: {})", shorten(&r.expect, 3)),
            _ => first_line(r.detail.as_deref().unwrap_or(""), 100),
        };
        out.push_str(&format!(
            "{:width$}  {:14}  {:>5}  {detail}\n",
            r.name,
            r.verdict.as_str(),
            r.seconds
        ));
    }
    out.push_str(&Score::of(results).line());
    out.push('\n');
    out
}

impl MutateReport {
    /// Writes `dir/mutate.json` (aside, then renamed: a reader never sees half of it).
    pub fn write(&self, dir: &Path) -> Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = serde_json::to_string_pretty(self)? + "\n";
        lab_report::run_dir::write_atomic(dir, "mutate.json", &text)?;
        Ok(dir.join("mutate.json"))
    }
}

/// So many lab errors in a row end the run: the lab is broken, not the mutants.
const STOP_AFTER_LAB_ERRORS: usize = 3;

pub(crate) fn mutants_dir(kernel: &str) -> PathBuf {
    lab_host::paths::repo_root()
        .join("kernels")
        .join(kernel)
        .join(lab_kernel::mutant::MUTANTS_DIR)
}

fn id() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

fn up_args(args: &MutateArgs, kernel: BuildArgs) -> crate::up::UpArgs {
    crate::up::UpArgs {
        suites: args.suites.clone(),
        ..crate::up::UpArgs::driven(kernel, &args.topology, args.ops, args.boot_timeout)
    }
}

fn run_dir_of(report: &RunReport) -> String {
    lab_host::paths::runs_dir()
        .join(&report.run_id)
        .display()
        .to_string()
}

/// Every result of the files (any verdict; a later file wins), in `planned` order; the
/// planned mutants that no file has are the error.
pub fn merged(
    reports: &[MutateReport],
    planned: &[String],
) -> std::result::Result<Vec<MutantResult>, Vec<String>> {
    let mut by_name = std::collections::BTreeMap::new();
    for r in reports {
        for m in &r.mutants {
            by_name.insert(m.name.clone(), m.clone());
        }
    }
    let missing: Vec<String> = planned
        .iter()
        .filter(|n| !by_name.contains_key(*n))
        .cloned()
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    Ok(planned.iter().filter_map(|n| by_name.remove(n)).collect())
}

/// What earlier runs settled: the baseline and the judged mutants by name
/// (killed and survived only: anything else is worth another try).
pub fn resumed(
    reports: &[MutateReport],
) -> (
    Option<Baseline>,
    std::collections::BTreeMap<String, MutantResult>,
) {
    let mut baseline = None;
    let mut judged = std::collections::BTreeMap::new();
    for r in reports {
        if r.baseline.is_some() {
            baseline = r.baseline.clone();
        }
        for m in &r.mutants {
            if matches!(m.verdict, Verdict::Killed | Verdict::Survived) {
                judged.insert(m.name.clone(), m.clone());
            }
        }
    }
    (baseline, judged)
}

fn read_mutate_json(path: &Path) -> Result<MutateReport> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// The report of an earlier run (`RUN_DIR/results.json`).
fn read_run(dir: &Path) -> Result<RunReport> {
    let path = dir.join("results.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    RunReport::from_json(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(sh: &Shell, args: &MutateArgs) -> Result<()> {
    let dir = mutants_dir(&args.kernel.kernel);
    let all = lab_kernel::mutant::list(&dir)?;
    let mut mutants = lab_kernel::mutant::select(&all, &args.mutants)?;
    if let Some(shard) = args.shard {
        mutants = shard.pick(&mutants);
    }
    if args.list {
        let width = all.iter().map(|m| m.name.len()).max().unwrap_or(0);
        for m in &all {
            println!("{:width$}  {}", m.name, m.description);
        }
        println!("{} mutants in {}", all.len(), dir.display());
        return Ok(());
    }
    if mutants.is_empty() {
        bail!("no mutants in {} (*.patch)", dir.display());
    }
    if args.kernel.source_dir.is_some() {
        bail!("kernel mutate builds the kernel's own source: --source-dir is not for it");
    }
    let id = id();
    let out_dir = lab_host::paths::repo_root()
        .join("target")
        .join("lab")
        .join("mutate")
        .join(&id);
    let mut report = MutateReport {
        id: id.clone(),
        kernel: args.kernel.kernel.clone(),
        topology: args.topology.clone(),
        ops: args.ops.name().to_string(),
        suites: args.suites.clone(),
        baseline: None,
        planned: mutants.iter().map(|m| m.name.clone()).collect(),
        mutants: Vec::new(),
        score: Score::of(&[]),
    };
    eprintln!(
        "famfs-lab: mutate {id}: {} mutant(s); results in {}",
        mutants.len(),
        out_dir.display()
    );
    let earlier = args
        .resume
        .iter()
        .map(|p| read_mutate_json(p))
        .collect::<Result<Vec<_>>>()?;
    if args.merge {
        report.baseline = earlier.iter().rev().find_map(|r| r.baseline.clone());
        report.mutants = merged(&earlier, &report.planned).map_err(|missing| {
            anyhow::anyhow!(
                "--merge: no --resume file has {} ({}): a shard did not finish; run them with --resume of the files",
                if missing.len() == 1 { "this mutant" } else { "these mutants" },
                missing.join(", ")
            )
        })?;
        report.score = Score::of(&report.mutants);
        print!("{}", table(&report.mutants));
        let path = report.write(&out_dir)?;
        eprintln!("famfs-lab: mutate: merged into {}", path.display());
        return Ok(());
    }
    let (resumed_baseline, mut judged) = resumed(&earlier);
    let mut baseline = BaselineCases::default();
    if let (Some(b), None, false) = (&resumed_baseline, &args.baseline, args.no_baseline) {
        eprintln!("famfs-lab: mutate: the baseline of {}", b.run_dir);
        baseline = baseline_cases_of(b)?;
        report.baseline = resumed_baseline.clone();
    } else if !args.no_baseline {
        eprintln!("famfs-lab: mutate: the baseline (the series without a mutant)");
        let mut plain = args.kernel.clone();
        plain.mutant = None;
        let base = match &args.baseline {
            Some(dir) => read_run(dir)?,
            None => crate::up::up_report(sh, &up_args(args, plain))
                .context("the baseline run of the unmutated series (without it no mutant can be judged; --no-baseline skips it)")?,
        };
        let failing = failing_cases(&base);
        let ran = all_cases(&base);
        baseline.ran = Some(ran.clone());
        if !failing.is_empty() {
            eprintln!(
                "famfs-lab: mutate: failing without a mutant too (not counted as kills): {}",
                failing.join(", ")
            );
        }
        baseline.failing = failing.iter().cloned().collect();
        report.baseline = Some(Baseline {
            run_dir: match &args.baseline {
                Some(dir) => dir.display().to_string(),
                None => run_dir_of(&base),
            },
            kernel_key: base.kernel_hash.clone(),
            cases: base.counts().total(),
            failing,
            ran: Some(ran.into_iter().collect()),
        });
        report.write(&out_dir)?;
    }
    for (i, m) in mutants.iter().enumerate() {
        eprintln!(
            "famfs-lab: mutate: [{}/{}] {}: {}",
            i + 1,
            mutants.len(),
            m.name,
            m.description
        );
        let result = match judged.remove(&m.name) {
            Some(mut r) => {
                eprintln!("famfs-lab: mutate: {} judged by an earlier run", m.name);
                // the verdict is the earlier run's; what the file says about it is today's
                r.expect = m.expect.clone();
                r.equivalent = m.equivalent.clone();
                r
            }
            None => {
                let r = one(sh, args, m, &baseline);
                if !args.keep_kernels {
                    drop_kernel(r.kernel_key.as_deref());
                }
                r
            }
        };
        eprintln!(
            "famfs-lab: mutate: {} {}{}",
            result.name,
            result.verdict.as_str(),
            if result.killed_by.is_empty() {
                String::new()
            } else {
                format!(" by {}", result.killed_by.join(", "))
            }
        );
        report.mutants.push(result);
        report.score = Score::of(&report.mutants);
        report.write(&out_dir)?;
        let lab_errors = report
            .mutants
            .iter()
            .rev()
            .take_while(|r| r.verdict == Verdict::LabError)
            .count();
        if lab_errors >= STOP_AFTER_LAB_ERRORS {
            eprintln!(
                "famfs-lab: mutate: {lab_errors} lab errors in a row: stopping (the lab, not the mutants, is broken; see {})",
                out_dir.display()
            );
            break;
        }
    }
    print!("{}", table(&report.mutants));
    let path = report.write(&out_dir)?;
    eprintln!("famfs-lab: mutate: {}", path.display());
    Ok(())
}

/// Builds and runs one mutant; every failure is a verdict, never an error.
/// Every case of a run report, as `suite.case`.
fn all_cases(report: &RunReport) -> BTreeSet<String> {
    case_ids(report, |_| true).collect()
}

/// What a resumed campaign knows of its baseline: the failing cases, and the cases it ran (from
/// the file, or else from its run directory). Neither known is an error: any failure of a case
/// the baseline never ran (a case added since) would count as a kill.
pub fn baseline_cases_of(b: &Baseline) -> Result<BaselineCases> {
    let ran = match &b.ran {
        Some(ran) => ran.iter().cloned().collect(),
        None => ran_cases(&b.run_dir).with_context(|| {
            format!(
                "the resumed baseline lists no cases and its run directory {} is gone: run the \
                 baseline again (without --resume), or name a run of the unmodified series with \
                 --baseline",
                b.run_dir
            )
        })?,
    };
    Ok(BaselineCases {
        failing: b.failing.iter().cloned().collect(),
        ran: Some(ran),
    })
}

/// The cases a baseline run dir holds.
fn ran_cases(run_dir: &str) -> Result<BTreeSet<String>> {
    Ok(all_cases(&read_run(Path::new(run_dir))?))
}

/// The expected cases worth running alone: those the baseline is known to have run and passed.
pub fn expected_first_cases(expect: &[String], baseline: &BaselineCases) -> Vec<String> {
    if baseline.ran.is_none() {
        return Vec::new();
    }
    expect
        .iter()
        .filter(|c| baseline.passed(c))
        .cloned()
        .collect()
}

fn one(sh: &Shell, args: &MutateArgs, m: &Mutant, baseline: &BaselineCases) -> MutantResult {
    let started = Instant::now();
    let mut result = MutantResult {
        name: m.name.clone(),
        description: m.description.clone(),
        file: m
            .path
            .strip_prefix(lab_host::paths::repo_root())
            .unwrap_or(&m.path)
            .display()
            .to_string(),
        verdict: Verdict::LabError,
        killed_by: Vec::new(),
        also_failing_without: Vec::new(),
        flaky: Vec::new(),
        expect: m.expect.clone(),
        equivalent: m.equivalent.clone(),
        detail: None,
        run_dir: None,
        kernel_key: None,
        seconds: 0,
    };
    let mut kernel = args.kernel.clone();
    kernel.mutant = Some(Box::new(m.clone()));
    let mut t = lab_host::stage::Timings::default();
    match kernel.build(sh, &mut t) {
        Err(e) => {
            let (verdict, detail) = judge_build_error(&e);
            result.verdict = verdict;
            result.detail = Some(detail);
        }
        Ok(built) => {
            result.kernel_key = Some(built.meta.key.clone());
            let quick = if args.expected_first {
                expected_first_cases(&m.expect, baseline)
            } else {
                Vec::new()
            };
            if !quick.is_empty()
                && killed_by_expected(sh, args, m, &kernel, quick, baseline, &mut result)
            {
                result.seconds = started.elapsed().as_secs();
                return result;
            }
            match crate::up::up_report(sh, &up_args(args, kernel)) {
                Err(e) => result.detail = Some(format!("{e:#}")),
                Ok(report) => {
                    let (verdict, killed_by, also) = judge_report(&report, baseline);
                    result.verdict = verdict;
                    result.killed_by = killed_by;
                    result.also_failing_without = also;
                    result.run_dir = Some(run_dir_of(&report));
                    if verdict == Verdict::Killed && !args.no_confirm {
                        confirm_kill(sh, args, m, &mut result);
                    }
                }
            }
        }
    }
    result.seconds = started.elapsed().as_secs();
    result
}

/// Runs only `cases` (expected to kill `m`) on it: true when that settles the verdict (a
/// confirmed kill), false to go on with the whole suites.
fn killed_by_expected(
    sh: &Shell,
    args: &MutateArgs,
    m: &Mutant,
    kernel: &BuildArgs,
    cases: Vec<String>,
    baseline: &BaselineCases,
    result: &mut MutantResult,
) -> bool {
    eprintln!(
        "famfs-lab: mutate: {}: its expected cases first: {}",
        m.name,
        cases.join(", ")
    );
    let mut up = up_args(args, kernel.clone());
    up.cases = cases;
    let report = match crate::up::up_report(sh, &up) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "famfs-lab: mutate: {}: the expected cases did not run ({e:#}): the whole suites",
                m.name
            );
            return false;
        }
    };
    let (verdict, killed_by, also) = judge_report(&report, baseline);
    if verdict != Verdict::Killed {
        return false;
    }
    result.verdict = verdict;
    result.killed_by = killed_by;
    result.also_failing_without = also;
    result.run_dir = Some(run_dir_of(&report));
    if !args.no_confirm {
        confirm_kill(sh, args, m, result);
    }
    if result.verdict == Verdict::Killed {
        return true;
    }
    // Not confirmed: judge it on the whole suites after all.
    result.verdict = Verdict::LabError;
    result.killed_by.clear();
    result.also_failing_without.clear();
    result.run_dir = None;
    false
}

/// Deletes a judged mutant's kernel from the cache (its key stays in mutate.json); a
/// failure to is only said.
fn drop_kernel(key: Option<&str>) {
    let Some(key) = key else { return };
    let root = lab_host::paths::cache_root();
    let Some(entry) = lab_kernel::cache::lookup(&root, key) else {
        return;
    };
    // Only ever a mutant's entry, whatever the key says.
    if !entry.meta().is_ok_and(|m| m.label.contains("+mutate:")) {
        return;
    }
    let dir = lab_kernel::cache::kernels_dir(&root).join(key);
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        eprintln!(
            "famfs-lab: mutate: could not delete the mutant's kernel {}: {e}",
            dir.display()
        );
    }
}

/// Runs the cases that killed `m` once more on it; those that pass this time
/// are flaky and no evidence. No confirmed case left: the mutant survived.
fn confirm_kill(sh: &Shell, args: &MutateArgs, m: &Mutant, result: &mut MutantResult) {
    eprintln!(
        "famfs-lab: mutate: {}: running {} again to confirm",
        m.name,
        result.killed_by.join(", ")
    );
    let mut kernel = args.kernel.clone();
    kernel.mutant = Some(Box::new(m.clone()));
    let mut up = up_args(args, kernel);
    up.cases = result.killed_by.clone();
    match crate::up::up_report(sh, &up) {
        Ok(rerun) => {
            let (confirmed, flaky) = confirm(&result.killed_by, &failing_cases(&rerun));
            result.killed_by = confirmed;
            result.flaky = flaky;
            if result.killed_by.is_empty() {
                result.verdict = Verdict::Survived;
            }
        }
        Err(e) => {
            result.detail = Some(format!("the confirmation run failed (kills kept): {e:#}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_report::{CaseReport, Outcome, SuiteReport};

    fn report(cases: &[(&str, &str, Outcome)]) -> RunReport {
        let mut suites: Vec<SuiteReport> = Vec::new();
        for (suite, name, outcome) in cases {
            if suites.last().map(|s| s.name.as_str()) != Some(*suite) {
                suites.push(SuiteReport {
                    name: suite.to_string(),
                    cases: Vec::new(),
                });
            }
            if let Some(s) = suites.last_mut() {
                s.cases.push(CaseReport::new(*name, *outcome, 1));
            }
        }
        RunReport {
            run_id: "1-2".into(),
            suites,
            ..RunReport::default()
        }
    }

    fn result(name: &str, verdict: Verdict, killed_by: &[&str]) -> MutantResult {
        MutantResult {
            name: name.into(),
            description: format!("{name} removed"),
            file: format!("kernels/famfs-bpf/mutants/{name}.patch"),
            verdict,
            killed_by: killed_by.iter().map(|s| s.to_string()).collect(),
            also_failing_without: Vec::new(),
            flaky: Vec::new(),
            expect: Vec::new(),
            equivalent: None,
            detail: None,
            run_dir: None,
            kernel_key: None,
            seconds: 7,
        }
    }

    #[test]
    fn a_failure_that_passes_on_the_series_kills() {
        let r = report(&[
            ("open", "a", Outcome::Pass),
            ("open", "b", Outcome::Fail),
            ("fault", "c", Outcome::Timeout),
            ("fault", "d", Outcome::Error),
            ("fault", "e", Outcome::Skip),
            ("fault", "f", Outcome::Xfail),
            ("truncate", "g", Outcome::Xpass),
        ]);
        assert_eq!(
            failing_cases(&r),
            ["open.b", "fault.c", "fault.d", "truncate.g"]
        );
        let baseline = BaselineCases {
            ran: None,
            failing: ["fault.c".to_string()].into(),
        };
        let (v, by, also) = judge_report(&r, &baseline);
        assert_eq!(v, Verdict::Killed);
        assert_eq!(by, ["open.b", "fault.d", "truncate.g"]);
        assert_eq!(also, ["fault.c"]);
    }

    #[test]
    fn failures_the_series_has_anyway_do_not_kill() {
        let r = report(&[("open", "a", Outcome::Pass), ("open", "b", Outcome::Fail)]);
        let baseline = BaselineCases {
            ran: None,
            failing: ["open.b".to_string()].into(),
        };
        let (v, by, also) = judge_report(&r, &baseline);
        assert_eq!(
            (v, by.len(), also),
            (Verdict::Survived, 0, vec!["open.b".into()])
        );
        let clean = report(&[("open", "a", Outcome::Pass), ("open", "x", Outcome::Xfail)]);
        assert_eq!(
            judge_report(&clean, &BaselineCases::default()).0,
            Verdict::Survived
        );
    }

    #[test]
    fn merge_takes_every_verdict_and_names_the_missing() {
        let file = |ms: Vec<MutantResult>| MutateReport {
            id: "1".into(),
            kernel: "famfs-bpf".into(),
            topology: "default".into(),
            ops: "famfs".into(),
            suites: vec![],
            baseline: None,
            planned: vec![],
            mutants: ms,
            score: Score::of(&[]),
        };
        let a = file(vec![
            result("m1", Verdict::Killed, &["open.a"]),
            result("m2", Verdict::LabError, &[]),
        ]);
        let b = file(vec![result("m2", Verdict::Survived, &[])]);
        let planned: Vec<String> = ["m2", "m1"].iter().map(|s| s.to_string()).collect();
        let got = merged(&[a.clone(), b], &planned).expect("both judged");
        let v: Vec<(&str, Verdict)> = got.iter().map(|m| (m.name.as_str(), m.verdict)).collect();
        assert_eq!(v, [("m2", Verdict::Survived), ("m1", Verdict::Killed)]);
        let planned3: Vec<String> = ["m1", "m2", "m3"].iter().map(|s| s.to_string()).collect();
        assert_eq!(merged(&[a], &planned3).err(), Some(vec!["m3".to_string()]));
    }

    #[test]
    fn shards_split_the_list_without_overlap_or_loss() {
        let all: Vec<u32> = (0..10).collect();
        let parts: Vec<Vec<u32>> = (1..=4)
            .map(|k| parse_shard(&format!("{k}/4")).map(|s| s.pick(&all)))
            .collect::<std::result::Result<_, _>>()
            .expect("K/4 parses");
        assert_eq!(parts[0], [0, 4, 8]);
        assert_eq!(parts[3], [3, 7]);
        let mut joined: Vec<u32> = parts.concat();
        joined.sort();
        assert_eq!(joined, all);
        for bad in ["0/4", "5/4", "4", "a/b", "1/0"] {
            assert!(parse_shard(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn a_case_the_baseline_did_not_run_does_not_kill() {
        // A partial baseline (`--baseline` of a one-suite run): a failure of a case it never
        // ran is no evidence against the mutant.
        let r = report(&[
            ("open", "a", Outcome::Fail),
            ("shared", "ring", Outcome::Fail),
        ]);
        let baseline = BaselineCases {
            ran: Some(["open.a".to_string()].into()),
            failing: BTreeSet::new(),
        };
        let (v, by, also) = judge_report(&r, &baseline);
        assert_eq!(v, Verdict::Killed);
        assert_eq!(by, ["open.a"]);
        assert_eq!(also, ["shared.ring"]);
        let only_unrun = report(&[("shared", "ring", Outcome::Fail)]);
        assert_eq!(judge_report(&only_unrun, &baseline).0, Verdict::Survived);
    }

    #[test]
    fn expected_first_takes_only_cases_the_baseline_ran_and_passed() {
        let ran: BTreeSet<String> = ["open.a", "open.b", "fault.c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let failing: BTreeSet<String> = ["open.b".to_string()].into_iter().collect();
        let expect = vec![
            "open.a".to_string(),
            "open.b".to_string(),
            "fuzz.not_in_baseline".to_string(),
            "fault.c".to_string(),
        ];
        let known = BaselineCases {
            ran: Some(ran.clone()),
            failing: failing.clone(),
        };
        assert_eq!(expected_first_cases(&expect, &known), ["open.a", "fault.c"]);
        let unknown = BaselineCases { ran: None, failing };
        assert!(expected_first_cases(&expect, &unknown).is_empty());
    }

    #[test]
    fn a_kill_counts_only_if_the_case_fails_again() {
        let by: Vec<String> = vec!["open.a".into(), "fault.b".into()];
        let (confirmed, flaky) = confirm(&by, &["fault.b".into(), "open.z".into()]);
        assert_eq!(
            (confirmed, flaky),
            (vec!["fault.b".into()], vec!["open.a".into()])
        );
        let mut r = result("m", Verdict::Survived, &[]);
        r.flaky = vec!["open.concurrent_first_open".into()];
        assert!(table(&[r]).contains("only flaky failures: open.concurrent_first_open"));
    }

    #[test]
    fn a_resumed_baseline_knows_its_cases_without_its_run_directory() {
        let gone = Baseline {
            run_dir: "/nonexistent/runs/1-1".into(),
            kernel_key: "k".into(),
            cases: 3,
            failing: vec!["open.b".into()],
            ran: Some(vec!["open.a".into(), "open.b".into(), "fault.c".into()]),
        };
        let cases = baseline_cases_of(&gone).unwrap();
        assert!(cases.passed("open.a") && cases.passed("fault.c"));
        assert!(!cases.passed("open.b") && !cases.passed("truncate.d"));
        // An older file without the list, and its run directory gone: refused, with the way out.
        let older = Baseline { ran: None, ..gone };
        let e = format!("{:#}", baseline_cases_of(&older).unwrap_err());
        assert!(
            e.contains("/nonexistent/runs/1-1") && e.contains("--baseline"),
            "{e}"
        );
    }

    #[test]
    fn resume_takes_judged_mutants_and_the_last_baseline() {
        let base = |dir: &str| Baseline {
            run_dir: dir.into(),
            kernel_key: "k".into(),
            cases: 41,
            failing: vec![],
            ran: None,
        };
        let report = |baseline: Option<Baseline>, mutants: Vec<MutantResult>| MutateReport {
            id: "1".into(),
            kernel: "famfs-bpf".into(),
            topology: "default".into(),
            ops: "famfs".into(),
            suites: vec![],
            baseline,
            planned: vec![],
            score: Score::of(&mutants),
            mutants,
        };
        let first = report(
            Some(base("runs/a")),
            vec![
                result("a", Verdict::Killed, &["open.b"]),
                result("b", Verdict::BuildFailed, &[]),
                result("c", Verdict::Survived, &[]),
            ],
        );
        let second = report(
            Some(base("runs/b")),
            vec![
                result("c", Verdict::Killed, &["fault.x"]),
                result("d", Verdict::LabError, &[]),
            ],
        );
        let (b, judged) = resumed(&[first, second]);
        assert_eq!(b.map(|b| b.run_dir), Some("runs/b".into()));
        assert_eq!(judged.keys().collect::<Vec<_>>(), ["a", "c"]);
        assert_eq!(judged["c"].verdict, Verdict::Killed);
    }

    #[test]
    fn build_errors_are_judged_by_their_kind_through_context() {
        let e = anyhow::Error::from(MutantError::DoesNotApply {
            name: "m".into(),
            detail: "patch failed: fs/fuse/dax_fmap.c:12".into(),
        })
        .context("building famfs-bpf+mutate");
        let (v, detail) = judge_build_error(&e);
        assert_eq!(v, Verdict::DoesNotApply);
        assert!(detail.contains("dax_fmap.c:12"), "{detail}");
        let e = anyhow::Error::from(MutantError::BuildFailed {
            name: "m".into(),
            detail: "error: x".into(),
        });
        assert_eq!(judge_build_error(&e).0, Verdict::BuildFailed);
        let e = anyhow::anyhow!("qemu: no such file").context("lab");
        assert_eq!(judge_build_error(&e).0, Verdict::LabError);
    }

    #[test]
    fn equivalent_survivors_are_left_out_of_the_score_but_not_equivalent_kills() {
        let mut eq = result("eq", Verdict::Survived, &[]);
        eq.equivalent = Some("the type check refuses it first".into());
        let mut wrongly_eq = result("weq", Verdict::Killed, &["open.a"]);
        wrongly_eq.equivalent = Some("thought so".into());
        let rs = [
            result("a", Verdict::Killed, &["open.a"]),
            result("b", Verdict::Survived, &[]),
            eq,
            wrongly_eq,
        ];
        let s = Score::of(&rs);
        assert_eq!((s.killed, s.survived, s.equivalent), (2, 1, 1));
        assert!((s.score.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            s.line(),
            "score 0.67 (2 killed / 3 judged; 1 equivalent, not judged)"
        );
        let t = table(&rs);
        assert!(
            t.contains("equivalent: the type check refuses it first"),
            "{t}"
        );
        assert!(t.contains("(declared equivalent: it is not)"), "{t}");
    }

    #[test]
    fn score_counts_only_judged_mutants() {
        let rs = vec![
            result("a", Verdict::Killed, &["open.b"]),
            result("b", Verdict::Killed, &["fault.c"]),
            result("c", Verdict::Survived, &[]),
            result("d", Verdict::BuildFailed, &[]),
            result("e", Verdict::LabError, &[]),
        ];
        let s = Score::of(&rs);
        assert_eq!(
            (s.killed, s.survived, s.build_failed, s.lab_error),
            (2, 1, 1, 1)
        );
        assert!((s.score.unwrap() - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            s.line(),
            "score 0.67 (2 killed / 3 judged; 1 build-failed; 1 lab-error)"
        );
        assert_eq!(Score::of(&[]).score, None);
        assert_eq!(Score::of(&[]).line(), "score n/a (0 killed / 0 judged)");
    }

    #[test]
    fn table_has_a_line_per_mutant_and_the_score() {
        let mut survived = result("no-bound", Verdict::Survived, &[]);
        survived.expect = vec!["security.evil_past_end".into()];
        let mut broken = result("bad", Verdict::BuildFailed, &[]);
        broken.detail = Some(
            "mutant bad does not build: make failed\nfs/fuse/dax_fmap.c:3: error: x\nmore".into(),
        );
        let many: Vec<&str> = vec!["open.a", "open.b", "open.c", "open.d", "open.e"];
        let t = table(&[result("k", Verdict::Killed, &many), survived, broken]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(
            lines[0].starts_with("MUTANT") && lines[0].contains("VERDICT"),
            "{t}"
        );
        assert!(
            lines[1].contains("killed") && lines[1].contains("open.d, +1 more"),
            "{t}"
        );
        assert!(
            lines[2].contains("survived") && lines[2].contains("expected: security.evil_past_end"),
            "{t}"
        );
        assert!(
            lines[3].contains("build-failed") && lines[3].ends_with("dax_fmap.c:3: error: x"),
            "{t}"
        );
        assert!(!t.contains("\nmore"), "only one line of an error: {t}");
        assert_eq!(lines[4], "score 0.50 (1 killed / 2 judged; 1 build-failed)");
    }

    #[test]
    fn json_round_trips_with_kebab_case_verdicts() {
        let d = tempfile::tempdir().unwrap();
        let rs = vec![
            result("a", Verdict::Killed, &["open.b"]),
            result("b", Verdict::DoesNotApply, &[]),
        ];
        let report = MutateReport {
            id: "1-2".into(),
            kernel: "famfs-bpf".into(),
            topology: "default".into(),
            ops: "famfs".into(),
            suites: vec![],
            baseline: Some(Baseline {
                run_dir: "target/lab/runs/1-1".into(),
                kernel_key: "abc".into(),
                cases: 40,
                failing: vec![],
                ran: None,
            }),
            planned: vec!["a".into(), "b".into(), "c".into()],
            score: Score::of(&rs),
            mutants: rs,
        };
        let path = report.write(d.path()).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"verdict\": \"does-not-apply\""), "{text}");
        assert!(text.contains("\"score\": 1.0"), "{text}");
        let back: MutateReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, report);
        assert!(!d.path().join(".mutate.json.tmp").exists());
    }
}
