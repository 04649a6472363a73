//! A bisection's result: `target/lab/bisect/<id>/bisect.json` (rewritten after every step,
//! so an interrupted bisection keeps what it learnt) and the text printed at the end.

use crate::verdict::{RunVerdict, Verdict};
use serde::{Deserialize, Serialize};

/// One run of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Run {
    #[serde(flatten)]
    pub verdict: RunVerdict,
    /// The run's directory (none when the kernel did not build).
    #[serde(default)]
    pub run_dir: Option<String>,
    pub seconds: u64,
}

/// One tested position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The position in the range (0 = `--good`).
    pub position: usize,
    /// A commit (abbreviated) or the last patch of the prefix (`base` for none).
    pub label: String,
    /// The commit's or patch's subject.
    pub subject: String,
    pub verdict: Verdict,
    /// The first run's why, or why the runs disagree.
    pub why: String,
    pub runs: Vec<Run>,
    /// The kernel's cache key, when it built.
    #[serde(default)]
    pub kernel_key: Option<String>,
    /// Building the kernel (its stages; about 0 when it was cached).
    pub build_seconds: u64,
    /// Waiting for another process's kernel build (the machine's build lock).
    #[serde(default)]
    pub wait_seconds: u64,
    /// The whole step: waiting, building and every run.
    pub seconds: u64,
}

/// The failing case at a commit: its reason and its window of the serial log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub position: usize,
    pub label: String,
    pub verdict: Verdict,
    /// The case's outcome and reason there.
    pub reason: String,
    pub serial_excerpt: Vec<String>,
    #[serde(default)]
    pub run_dir: Option<String>,
}

/// How the bisection ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Outcome {
    /// The first bad commit or patch.
    FirstBad {
        position: usize,
        label: String,
        subject: String,
        /// The culprit's failure and the same case at its parent.
        culprit: Box<Evidence>,
        parent: Box<Evidence>,
    },
    /// Skipped (or flaky) steps next to the culprit: it is one of these.
    Ambiguous { candidates: Vec<String> },
    /// The case is flaky at `--bad`: there is nothing to bisect.
    FlakyAtBad { why: String },
    /// The case does not fail at `--bad`.
    NotBadAtBad { why: String },
    /// Not finished (the bisection was stopped, or is still running).
    Unfinished { why: String },
}

/// `target/lab/bisect/<id>/bisect.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BisectReport {
    pub id: String,
    /// `series` or `git`.
    pub mode: String,
    pub kernel: String,
    pub cases: Vec<String>,
    pub topology: String,
    pub ops: String,
    pub fragments: Vec<String>,
    pub retries: usize,
    /// What the range is: the tree (git) or the series' patches.
    pub range: String,
    /// The labels of the positions, 0 (`--good`) to the last (`--bad`).
    pub positions: Vec<String>,
    /// The failures looked for (the named cases at `--bad`): `id: outcome: first check`.
    #[serde(default)]
    pub looking_for: Vec<String>,
    pub steps: Vec<Step>,
    pub outcome: Outcome,
    /// The command that runs this bisection again.
    pub reproduce: String,
    pub seconds: u64,
}

impl BisectReport {
    /// The text for people: what was looked for, the steps, the result.
    pub fn text(&self) -> String {
        let mut out = format!(
            "bisect {} ({}): {} over {}\n",
            self.id,
            self.mode,
            self.cases.join(", "),
            self.range
        );
        for l in &self.looking_for {
            out.push_str(&format!("looking for: {l}\n"));
        }
        out.push_str("\nSTEP  POS  VERDICT  RUNS  BUILD  RUN  SECS  AT\n");
        for (i, s) in self.steps.iter().enumerate() {
            let run: u64 = s.runs.iter().map(|r| r.seconds).sum();
            out.push_str(&format!(
                "{:>4}  {:>3}  {:7}  {:>4}  {:>5}  {:>3}  {:>4}  {} {}\n",
                i + 1,
                s.position,
                s.verdict.as_str(),
                s.runs.len(),
                s.build_seconds,
                run,
                s.seconds,
                s.label,
                s.subject
            ));
            out.push_str(&format!("{:18}{}\n", "", one_line(&s.why, 110)));
        }
        out.push('\n');
        match &self.outcome {
            Outcome::FirstBad {
                label,
                subject,
                culprit,
                parent,
                ..
            } => {
                out.push_str(&format!("first bad: {label} {subject}\n"));
                for e in [culprit, parent] {
                    let role = if e.position == culprit.position {
                        "at the culprit"
                    } else {
                        "at its parent"
                    };
                    out.push_str(&format!(
                        "{role} ({}, {}): {}\n",
                        e.label,
                        e.verdict.as_str(),
                        one_line(&e.reason, 200)
                    ));
                    for l in &e.serial_excerpt {
                        out.push_str(&format!("  | {l}\n"));
                    }
                }
            }
            Outcome::Ambiguous { candidates } => out.push_str(&format!(
                "no single culprit: skipped or flaky steps leave {} candidates: {}\n",
                candidates.len(),
                candidates.join(", ")
            )),
            Outcome::FlakyAtBad { why } => out.push_str(&format!(
                "flaky: the case is flaky at --bad, not bisected: {why}\n"
            )),
            Outcome::NotBadAtBad { why } => out.push_str(&format!(
                "not bad: the case does not fail at --bad: {why}\n"
            )),
            Outcome::Unfinished { why } => out.push_str(&format!("unfinished: {why}\n")),
        }
        let flaky: Vec<&str> = self
            .steps
            .iter()
            .filter(|s| s.verdict == Verdict::Flaky)
            .map(|s| s.label.as_str())
            .collect();
        if !flaky.is_empty() {
            out.push_str(&format!("flaky steps: {}\n", flaky.join(", ")));
        }
        let builds: u64 = self.steps.iter().map(|s| s.build_seconds).sum();
        let waits: u64 = self.steps.iter().map(|s| s.wait_seconds).sum();
        let running: u64 = self
            .steps
            .iter()
            .flat_map(|s| s.runs.iter())
            .map(|r| r.seconds)
            .sum();
        let runs: usize = self.steps.iter().map(|s| s.runs.len()).sum();
        out.push_str(&format!(
            "{} steps, {runs} runs, {} s: {builds} s building, {running} s running",
            self.steps.len(),
            self.seconds,
        ));
        if waits > 0 {
            out.push_str(&format!(", {waits} s waiting for other kernel builds"));
        }
        out.push_str(&format!("\nreproduce: {}\n", self.reproduce));
        out
    }

    /// Exit status: 0 a culprit was found, 1 the bisection ended without one (ambiguous,
    /// flaky, not bad at --bad, unfinished).
    pub fn exit_code(&self) -> i32 {
        match self.outcome {
            Outcome::FirstBad { .. } => 0,
            _ => 1,
        }
    }
}

/// The first line of `text`, cut to `max` characters.
pub fn one_line(text: &str, max: usize) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    if line.chars().count() > max {
        let cut: String = line.chars().take(max.saturating_sub(3)).collect();
        format!("{cut}...")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(position: usize, label: &str, verdict: Verdict, why: &str) -> Step {
        Step {
            position,
            label: label.into(),
            subject: format!("subject of {label}"),
            verdict,
            why: why.into(),
            runs: vec![Run {
                verdict: RunVerdict {
                    verdict,
                    why: why.into(),
                },
                run_dir: Some(format!("target/lab/runs/{position}")),
                seconds: 100,
            }],
            kernel_key: Some("k".into()),
            build_seconds: 60,
            wait_seconds: 5,
            seconds: 165,
        }
    }

    fn evidence(position: usize, label: &str, verdict: Verdict, reason: &str) -> Box<Evidence> {
        Box::new(Evidence {
            position,
            label: label.into(),
            verdict,
            reason: reason.into(),
            serial_excerpt: vec![format!("kernel line at {label}")],
            run_dir: None,
        })
    }

    fn report(outcome: Outcome) -> BisectReport {
        BisectReport {
            id: "1-2".into(),
            mode: "series".into(),
            kernel: "famfs-bpf".into(),
            cases: vec!["open.parse_errno_clamped".into()],
            topology: "default".into(),
            ops: "famfs".into(),
            fragments: vec![],
            retries: 1,
            range: "kernels/famfs-bpf/patches/series (14 patches)".into(),
            positions: vec!["base".into(), "0001-a.patch".into(), "0002-b.patch".into()],
            looking_for: vec!["open.parse_errno_clamped: fail: errno 512".into()],
            steps: vec![
                step(2, "0002-b.patch", Verdict::Bad, "errno 512"),
                step(1, "0001-a.patch", Verdict::Good, "passed"),
            ],
            outcome,
            reproduce:
                "cargo xtask lab bisect --kernel famfs-bpf --series --case open.parse_errno_clamped"
                    .into(),
            seconds: 320,
        }
    }

    #[test]
    fn text_names_the_culprit_with_both_excerpts_the_steps_and_the_reproduce_line() {
        let r = report(Outcome::FirstBad {
            position: 2,
            label: "0002-b.patch".into(),
            subject: "fuse: b".into(),
            culprit: evidence(2, "0002-b.patch", Verdict::Bad, "fail: errno 512"),
            parent: evidence(1, "0001-a.patch", Verdict::Good, "pass"),
        });
        let t = r.text();
        assert!(t.contains("first bad: 0002-b.patch fuse: b"), "{t}");
        assert!(
            t.contains("at the culprit (0002-b.patch, bad): fail: errno 512"),
            "{t}"
        );
        assert!(
            t.contains("at its parent (0001-a.patch, good): pass"),
            "{t}"
        );
        assert!(t.contains("  | kernel line at 0001-a.patch"), "{t}");
        assert!(
            t.contains("2 steps, 2 runs, 320 s: 120 s building, 200 s running, 10 s waiting"),
            "{t}"
        );
        assert!(t.contains("reproduce: cargo xtask lab bisect"), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        let header = lines.iter().position(|l| l.starts_with("STEP")).unwrap();
        assert!(lines[header + 1].contains("bad") && lines[header + 1].contains("0002-b.patch"));
        assert_eq!(r.exit_code(), 0);
    }

    #[test]
    fn no_culprit_is_said_and_exits_1() {
        let r = report(Outcome::FlakyAtBad {
            why: "1 of 2 runs failed".into(),
        });
        assert!(r.text().contains("flaky: the case is flaky at --bad"));
        assert_eq!(r.exit_code(), 1);
        let mut r = report(Outcome::Ambiguous {
            candidates: vec!["0001-a.patch".into(), "0002-b.patch".into()],
        });
        r.steps[1].verdict = Verdict::Flaky;
        let t = r.text();
        assert!(
            t.contains("leave 2 candidates: 0001-a.patch, 0002-b.patch"),
            "{t}"
        );
        assert!(t.contains("flaky steps: 0001-a.patch"), "{t}");
        assert_eq!(r.exit_code(), 1);
    }

    #[test]
    fn json_round_trips_with_lowercase_verdicts_and_a_tagged_outcome() {
        let r = report(Outcome::FirstBad {
            position: 2,
            label: "0002-b.patch".into(),
            subject: "fuse: b".into(),
            culprit: evidence(2, "0002-b.patch", Verdict::Bad, "x"),
            parent: evidence(1, "0001-a.patch", Verdict::Good, "y"),
        });
        let text = serde_json::to_string_pretty(&r).unwrap();
        assert!(text.contains("\"kind\": \"first-bad\""), "{text}");
        assert!(text.contains("\"verdict\": \"bad\""), "{text}");
        let back: BisectReport = serde_json::from_str(&text).unwrap();
        assert_eq!(back, r);
    }
}
