//! `--compare OLD.json`: the change of every cell between two bench.json files (p50 fault cost
//! and the ratio to famfs_native), so a series change can be judged. Cells are matched by
//! (resolver, workload); cells on one side only are listed as such.

use crate::model::{BenchReport, Cell};
use crate::table::ordered;
use lab_suite::benchdata::Workload;
use std::fmt::Write;

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
        "compare: old run {} (accel {}, kernel {}) -> new run {} (accel {}, kernel {})",
        old.run.run_id,
        old.run.accel,
        old.run.kernel_hash,
        new.run.run_id,
        new.run.accel,
        new.run.kernel_hash
    );
    if old.run.accel != new.run.accel {
        let _ = writeln!(
            s,
            "warning: different accelerators: only the ratios are comparable"
        );
    }
    let _ = writeln!(
        s,
        "{:<24} {:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}",
        "workload", "resolver", "old p50", "new p50", "change", "old x nat", "new x nat", "change"
    );
    for c in changes(old, new) {
        let _ = writeln!(
            s,
            "{:<24} {:<16} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}{}",
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
}
