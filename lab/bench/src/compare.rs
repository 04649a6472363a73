//! `--compare OLD.json`: the change of every cell between two bench.json files (p50 fault cost
//! and the ratio to famfs_native), so a series change can be judged. Cells are matched by
//! (resolver, workload); cells on one side only are listed as such. Only like runs compare
//! ([`check_alike`]: accelerator, clock, CPUs); the kernel may differ (that is what a
//! comparison of a series change is about) and is printed.

use crate::model::{BenchReport, Cell};
use crate::table::ordered;
use anyhow::{bail, Result};
use lab_suite::benchdata::Workload;
use std::fmt::Write;

/// What differs between the runs of `old` and `new` that makes their numbers incomparable:
/// (what, old value, new value). A field one file does not record is not compared (see
/// [`unrecorded`]).
pub fn unlike(old: &BenchReport, new: &BenchReport) -> Vec<(&'static str, String, String)> {
    let (o, n) = (&old.run, &new.run);
    let mut out = Vec::new();
    let mut cmp = |what, a: &str, b: &str| {
        if !a.is_empty() && !b.is_empty() && a != b {
            out.push((what, a.to_string(), b.to_string()));
        }
    };
    cmp("accel", &o.accel, &n.accel);
    cmp("clock", &o.clock_label(), &n.clock_label());
    cmp("guest CPU", &o.guest_cpu, &n.guest_cpu);
    // under icount the host CPU does not enter the numbers
    if !(o.clock == "icount" && n.clock == "icount") {
        cmp("host CPU", &o.cpu, &n.cpu);
    }
    if o.guest != n.guest {
        out.push(("guest setup", o.guest.clone(), n.guest.clone()));
    }
    // what the workloads fault and open (the repetitions and resolvers may differ)
    let shape = |r: &BenchReport| {
        r.config.as_ref().map(|c| {
            format!(
                "{} PTE pages, {} PMD pages, {} files",
                c.pte_pages, c.pmd_pages, c.open_files
            )
        })
    };
    if let (Some(a), Some(b)) = (shape(old), shape(new)) {
        if a != b {
            out.push(("workloads", a, b));
        }
    }
    out
}

/// The run fields one of the files does not record (an older bench.json).
pub fn unrecorded(old: &BenchReport, new: &BenchReport) -> Vec<String> {
    let mut out = Vec::new();
    for (side, r) in [("old", old), ("new", new)] {
        for (what, v) in [
            ("host CPU", &r.run.cpu),
            ("guest CPU", &r.run.guest_cpu),
            ("accel", &r.run.accel),
        ] {
            if v.is_empty() {
                out.push(format!("the {side} run does not record its {what}"));
            }
        }
    }
    out
}

/// Refuses (unless `allow`) to compare runs that differ in accelerator, clock or CPU.
pub fn check_alike(old: &BenchReport, new: &BenchReport, allow: bool) -> Result<()> {
    let diff = unlike(old, new);
    if diff.is_empty() || allow {
        return Ok(());
    }
    let what: Vec<String> = diff
        .iter()
        .map(|(w, a, b)| format!("{w}: {a:?} (old) vs {b:?} (new)"))
        .collect();
    bail!(
        "refusing to compare unlike runs ({}); their numbers do not compare. Rerun under the same settings, or pass --allow-unlike to print the comparison anyway",
        what.join("; ")
    )
}

/// One cell of the comparison.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub resolver: String,
    pub workload: Workload,
    pub old_p50: Option<f64>,
    pub new_p50: Option<f64>,
    /// (new - old) / old, in percent.
    pub p50_change_pct: Option<f64>,
    pub old_ratio: Option<f64>,
    pub new_ratio: Option<f64>,
    /// new ratio - old ratio (to famfs_native).
    pub ratio_change: Option<f64>,
    /// Present in only one of the files: "old only" / "new only".
    pub only: Option<&'static str>,
}

pub fn changes(old: &BenchReport, new: &BenchReport) -> Vec<Change> {
    let find = |r: &BenchReport, c: &Cell| {
        r.cells
            .iter()
            .find(|x| x.resolver == c.resolver && x.workload == c.workload)
            .cloned()
    };
    let p50 = |c: &Option<Cell>| c.as_ref().and_then(|c| c.stats.as_ref()).map(|s| s.p50);
    let ratio = |c: &Option<Cell>| c.as_ref().and_then(|c| c.ratio_native);
    let mut out = Vec::new();
    for c in ordered(new) {
        let o = find(old, c);
        let n = Some(c.clone());
        let (op, np) = (p50(&o), p50(&n));
        let (or, nr) = (ratio(&o), ratio(&n));
        out.push(Change {
            resolver: c.resolver.clone(),
            workload: c.workload.clone(),
            old_p50: op,
            new_p50: np,
            p50_change_pct: match (op, np) {
                (Some(a), Some(b)) if a.abs() > f64::EPSILON => Some((b - a) / a.abs() * 100.0),
                _ => None,
            },
            old_ratio: or,
            new_ratio: nr,
            ratio_change: or.zip(nr).map(|(a, b)| b - a),
            only: o.is_none().then_some("new only"),
        });
    }
    for c in ordered(old) {
        if find(new, c).is_none() {
            out.push(Change {
                resolver: c.resolver.clone(),
                workload: c.workload.clone(),
                old_p50: c.stats.as_ref().map(|s| s.p50),
                new_p50: None,
                p50_change_pct: None,
                old_ratio: c.ratio_native,
                new_ratio: None,
                ratio_change: None,
                only: Some("old only"),
            });
        }
    }
    out
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

pub fn render(old: &BenchReport, new: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "compare: old run {} (accel {}, clock {}, kernel {}) -> new run {} (accel {}, clock {}, kernel {})",
        old.run.run_id,
        old.run.accel,
        old.run.clock_label(),
        old.run.kernel_hash,
        new.run.run_id,
        new.run.accel,
        new.run.clock_label(),
        new.run.kernel_hash
    );
    if old.run.kernel_hash != new.run.kernel_hash {
        let _ = writeln!(
            s,
            "kernels differ: {} {} -> {} {} (the change under comparison)",
            old.run.kernel, old.run.kernel_hash, new.run.kernel, new.run.kernel_hash
        );
    }
    for (what, a, b) in unlike(old, new) {
        let _ = writeln!(
            s,
            "warning: {what} differs ({a} -> {b}): the numbers do not compare"
        );
    }
    for n in unrecorded(old, new) {
        let _ = writeln!(s, "note: {n}");
    }
    let unit = new.run.unit();
    let _ = writeln!(
        s,
        "{:<24} {:<16} {:>10} {:>10} {:>8} {:>9} {:>9} {:>8}",
        "workload",
        "resolver",
        format!("old {unit}"),
        format!("new {unit}"),
        "change",
        "old x nat",
        "new x nat",
        "change"
    );
    for c in changes(old, new) {
        let _ = writeln!(
            s,
            "{:<24} {:<16} {:>10} {:>10} {:>8} {:>9} {:>9} {:>8}{}",
            c.workload.to_string(),
            c.resolver,
            opt(c.old_p50, |x| format!("{x:.0}")),
            opt(c.new_p50, |x| format!("{x:.0}")),
            opt(c.p50_change_pct, |x| format!("{x:+.1}%")),
            opt(c.old_ratio, |x| format!("{x:.2}x")),
            opt(c.new_ratio, |x| format!("{x:.2}x")),
            opt(c.ratio_change, |x| format!("{x:+.2}")),
            c.only.map(|o| format!("  ({o})")).unwrap_or_default()
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunInfo;
    use lab_suite::benchdata::{Access, CellSamples, Order, Rep, Samples, Size, BASELINE};

    fn report(cells: &[(&str, &Workload, u64)]) -> BenchReport {
        let s = Samples {
            cells: cells
                .iter()
                .map(|(r, w, v)| CellSamples {
                    resolver: r.to_string(),
                    workload: (*w).clone(),
                    faults: 1,
                    reps: vec![Rep {
                        round: 1,
                        position: None,
                        first_ns: vec![*v],
                        second_ns: vec![0],
                    }],
                    sizes: None,
                    bpf: None,
                    notes: vec![],
                    error: None,
                })
                .collect(),
            ..Samples::default()
        };
        BenchReport::from_samples(RunInfo::default(), &s)
    }

    #[test]
    fn change_per_cell_by_hand() {
        let w = Workload::new(Size::Pmd, Order::Rand, Access::Write, "il");
        let w2 = Workload::new(Size::Pte, Order::Seq, Access::Read, "simple");
        let old = report(&[(BASELINE, &w, 100), ("famfs", &w, 120), ("famfs", &w2, 5)]);
        let new = report(&[
            (BASELINE, &w, 100),
            ("famfs", &w, 150),
            ("famfs_slow", &w, 400),
        ]);
        let ch = changes(&old, &new);
        let famfs = ch
            .iter()
            .find(|c| c.resolver == "famfs" && c.workload == w)
            .unwrap();
        // 120 -> 150: +25 %; ratio 1.2 -> 1.5: +0.3
        assert_eq!(famfs.p50_change_pct, Some(25.0));
        assert_eq!((famfs.old_ratio, famfs.new_ratio), (Some(1.2), Some(1.5)));
        assert!((famfs.ratio_change.unwrap() - 0.3).abs() < 1e-12);
        assert_eq!(famfs.only, None);
        let slow = ch.iter().find(|c| c.resolver == "famfs_slow").unwrap();
        assert_eq!((slow.only, slow.new_ratio), (Some("new only"), Some(4.0)));
        let gone = ch.iter().find(|c| c.workload == w2).unwrap();
        assert_eq!((gone.only, gone.old_p50), (Some("old only"), Some(5.0)));
        let text = render(&old, &new);
        assert!(text.contains("+25.0%") && text.contains("+0.30"), "{text}");
    }

    fn run(accel: &str, clock: &str, cpu: &str, kernel: &str) -> BenchReport {
        let mut r = report(&[]);
        r.run = RunInfo {
            accel: accel.into(),
            clock: clock.into(),
            icount_shift: (clock == "icount").then_some(0),
            cpu: cpu.into(),
            guest_cpu: "max".into(),
            kernel_hash: kernel.into(),
            ..RunInfo::default()
        };
        r
    }

    #[test]
    fn runs_of_other_workloads_are_unlike_but_other_repetitions_are_not() {
        let with = |pmd_pages: u32, reps: u32| {
            let mut r = run("tcg", "icount", "EPYC", "k1");
            r.config = Some(lab_suite::benchdata::FaultConfig {
                pmd_pages,
                reps,
                ..Default::default()
            });
            r
        };
        check_alike(&with(20, 7), &with(20, 3), false).unwrap();
        let e = check_alike(&with(16, 7), &with(20, 7), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("workloads"), "{e}");
        assert!(
            e.contains("16 PMD pages") && e.contains("20 PMD pages"),
            "{e}"
        );
    }

    #[test]
    fn unlike_runs_are_refused_with_what_differs() {
        let a = run("tcg", "host", "EPYC", "k1");
        // another kernel is what a comparison is for
        check_alike(&a, &run("tcg", "host", "EPYC", "k2"), false).unwrap();
        let e = check_alike(&a, &run("kvm", "host", "EPYC", "k1"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("accel: \"tcg\" (old) vs \"kvm\" (new)"), "{e}");
        assert!(e.contains("--allow-unlike"), "{e}");
        let e = check_alike(&a, &run("tcg", "icount", "EPYC", "k1"), false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("clock: \"host\" (old) vs \"icount shift=0\" (new)"),
            "{e}"
        );
        let e = check_alike(&a, &run("tcg", "host", "Xeon", "k1"), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("host CPU"), "{e}");
        // icount counts guest instructions: the host CPU does not matter
        check_alike(
            &run("tcg", "icount", "EPYC", "k1"),
            &run("tcg", "icount", "Xeon", "k1"),
            false,
        )
        .unwrap();
        check_alike(&a, &run("kvm", "host", "EPYC", "k1"), true).unwrap();
        let text = render(&a, &run("kvm", "host", "EPYC", "k2"));
        assert!(
            text.contains("warning: accel differs (tcg -> kvm)"),
            "{text}"
        );
        assert!(text.contains("kernels differ"), "{text}");
    }

    #[test]
    fn an_old_file_without_the_new_fields_still_compares_with_a_note() {
        let old: BenchReport = serde_json::from_str(
            r#"{"version":1,"run":{"run_id":"1","accel":"tcg","kernel":"famfs-bpf","kernel_hash":"k0",
                "topology":"default","started_at":"x"},"config":null,"bpf_stats":true,
                "tracepoints":true,"notes":[],"cells":[],"summary":[]}"#,
        )
        .unwrap();
        assert_eq!(old.run.clock, "host");
        let new = run("tcg", "host", "EPYC", "k1");
        check_alike(&old, &new, false).unwrap();
        let text = render(&old, &new);
        assert!(
            text.contains("note: the old run does not record its host CPU"),
            "{text}"
        );
    }
}
