//! The table on stdout: one group per (fault size, order, access), the floor first, then each
//! resolver on each file; the ratios last, then the BPF/native summary per fault size.

use crate::model::{BenchReport, Cell};
use lab_suite::benchdata::{Access, Order, Size, Workload, BASELINE, FLOOR};
use std::fmt::Write;

/// ns with a thousands-friendly width, or `-`.
fn ns(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into())
}

fn times(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| {
        if x < 10.0 {
            format!("{x:.1}%")
        } else {
            format!("{x:.0}%")
        }
    })
    .unwrap_or_else(|| "-".into())
}

fn plus(v: Option<f64>) -> String {
    v.map(|x| format!("{x:+.0}")).unwrap_or_else(|| "-".into())
}

/// The header lines: run, accelerator, sizes, what could not be measured.
pub fn header(r: &BenchReport) -> String {
    let mut s = String::new();
    let unit = r.run.unit();
    let _ = writeln!(
        s,
        "fault-path benchmark: run {}, kernel {} ({}), topology {}, accel {}, clock {}",
        r.run.run_id,
        r.run.kernel,
        r.run.kernel_hash,
        r.run.topology,
        r.run.accel,
        r.run.clock_label()
    );
    if !r.run.cpu.is_empty() || !r.run.qemu.is_empty() {
        let _ = writeln!(
            s,
            "host CPU {}, guest CPU {}{}, {}",
            r.run.cpu,
            r.run.guest_cpu,
            if r.run.guest.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.run.guest)
            },
            r.run.qemu
        );
    }
    if let Some(c) = &r.config {
        let _ = writeln!(
            s,
            "reps {} (after 1 untimed probe and {} untimed warm-up rounds; units rotated one place per round), {} PTE pages, {} PMD pages, {} files per open workload",
            c.reps, c.warmup, c.pte_pages, c.pmd_pages, c.open_files
        );
    }
    if r.run.clock == "icount" {
        let _ = writeln!(
            s,
            "clock icount: every number is guest instructions (QEMU -icount, deterministic); cache misses and memory latency cost nothing here"
        );
    } else if r.run.accel != "kvm" {
        let _ = writeln!(
            s,
            "accel {}: absolute ns are inflated by emulation; compare the ratios",
            r.run.accel
        );
    }
    let _ = writeln!(
        s,
        "fault cost = first touch - second touch of the same page ({unit}, p50/p90/p99 over all faults of all reps); spread = (max - min) / median of the reps' medians"
    );
    let _ = writeln!(
        s,
        "x native, x floor: median over the rounds (each runs every unit once) of the cell's median / the other's median in that round; +native, +floor: the same of the difference ({unit})"
    );
    let _ = writeln!(
        s,
        "pos: ORDER when the ratio (to native; native's to the floor) depends on the unit's position in the round (range of the per-position medians > {}% and > 2x the scatter within a position); ?: the range is > {}% but no position ran twice (more --reps)",
        crate::position::FLAG_PCT,
        crate::position::FLAG_PCT
    );
    let _ = writeln!(
        s,
        "fault sizes: {}; BPF run time: {}",
        if r.tracepoints {
            "fs_dax tracepoints (probe rep)"
        } else {
            "smaps only"
        },
        if r.bpf_stats {
            "bpf stats (kernel.bpf_stats_enabled, probe rep: run_time_ns / run_cnt of the ops' programs)"
        } else {
            "not available"
        }
    );
    for n in &r.notes {
        let _ = writeln!(s, "note: {n}");
    }
    s
}

/// The cells in table order.
pub fn ordered(r: &BenchReport) -> Vec<&Cell> {
    let resolvers = r.resolvers();
    let rank = |c: &Cell| {
        resolvers
            .iter()
            .position(|x| x == &c.resolver)
            .unwrap_or(99)
    };
    let file_rank = |f: &str| match f {
        "dev" => 0,
        "simple" => 1,
        "il" => 2,
        "one" => 3,
        _ => 4,
    };
    let mut v: Vec<&Cell> = r.cells.iter().collect();
    v.sort_by_key(|c| {
        let w = &c.workload;
        (
            w.size,
            if w.size == Size::Open {
                None
            } else {
                Some(w.order)
            },
            w.access,
            file_rank(&w.file),
            w.order,
            rank(c),
        )
    });
    v
}

pub fn render(r: &BenchReport) -> String {
    let mut s = header(r);
    let unit = r.run.unit();
    let _ = writeln!(
        s,
        "{:<24} {:<16} {:>6} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5}  fault size",
        "workload",
        "resolver",
        "faults",
        format!("p50 {unit}"),
        format!("p90 {unit}"),
        format!("p99 {unit}"),
        "spread",
        "x native",
        "x floor",
        "+native",
        "+floor",
        format!("bpf {unit}"),
        "pos"
    );
    let mut last_group = None;
    for c in ordered(r) {
        let w = &c.workload;
        let group = (w.size, w.access, (w.size != Size::Open).then_some(w.order));
        if last_group.is_some() && last_group != Some(group) {
            s.push('\n');
        }
        last_group = Some(group);
        let faults = c.stats.as_ref().map(|x| x.samples).unwrap_or(0);
        if let (None, Some(e)) = (&c.stats, &c.error) {
            let first = e.lines().next().unwrap_or("");
            let short: String = first.chars().take(90).collect();
            let _ = writeln!(
                s,
                "{:<24} {:<16} {:>6} FAILED: {short}",
                w.to_string(),
                c.resolver,
                0
            );
            continue;
        }
        let st = c.stats.as_ref();
        let floor = c.resolver == FLOOR;
        let blank = |v: String| if floor { String::new() } else { v };
        let _ = writeln!(
            s,
            "{:<24} {:<16} {:>6} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8} {:>8} {:>5}  {}",
            w.to_string(),
            c.resolver,
            faults,
            ns(st.map(|x| x.p50)),
            ns(st.map(|x| x.p90)),
            ns(st.map(|x| x.p99)),
            pct(st.and_then(|x| x.spread_pct)),
            blank(times(c.ratio_native)),
            blank(times(c.ratio_floor)),
            blank(plus(c.added_native)),
            blank(plus(c.added_floor)),
            ns(c.bpf_ns_per_call),
            match &c.position {
                Some(p) if p.flagged => "ORDER",
                Some(p) if p.undecided => "?",
                _ => "",
            },
            c.fault_size
                .as_deref()
                .or(c.notes.first().map(String::as_str))
                .unwrap_or("")
        );
    }
    s.push('\n');
    s.push_str(&summary(r));
    let b = breakdown(r);
    if !b.is_empty() {
        s.push('\n');
        s.push_str(&b);
    }
    s
}

/// One step of the breakdown: what `upper` adds over `lower` on the one-extent file.
pub struct Step {
    pub what: &'static str,
    pub upper: &'static str,
    pub lower: &'static str,
}

/// Where the BPF cost lives: each step isolates one part (the variants differ in only it).
pub const STEPS: &[Step] = &[
    Step {
        what: "struct_ops call + trivial mapping, over native C",
        upper: "famfs_trivial",
        lower: BASELINE,
    },
    Step {
        what: "one resolve kfunc call (get_meta)",
        upper: "famfs_kfunc",
        lower: "famfs_trivial",
    },
    Step {
        what: "famfs resolve logic (meta by plain loads)",
        upper: "famfs_direct",
        lower: "famfs_trivial",
    },
    Step {
        what: "famfs: meta through the kfunc instead of loads",
        upper: "famfs",
        lower: "famfs_direct",
    },
    Step {
        what: "famfs_maplookup: hash map lookup instead of loads",
        upper: "famfs_maplookup",
        lower: "famfs_direct",
    },
    Step {
        what: "famfs over native C, total",
        upper: "famfs",
        lower: BASELINE,
    },
];

/// The p50 of `resolver` on `w`.
fn p50(r: &BenchReport, resolver: &str, w: &Workload) -> Option<f64> {
    r.cells
        .iter()
        .find(|c| c.resolver == resolver && &c.workload == w)
        .and_then(|c| c.stats.as_ref())
        .map(|s| s.p50)
}

/// The breakdown table: per fault size, each step's p50 difference on the `one` file (median
/// over seq/rand x read/write). Empty if the report has no breakdown variants.
pub fn breakdown(r: &BenchReport) -> String {
    let has = |res: &str| r.cells.iter().any(|c| c.resolver == res);
    let steps: Vec<&Step> = STEPS
        .iter()
        .filter(|st| has(st.upper) && has(st.lower))
        .collect();
    if !has("famfs_trivial") || steps.is_empty() {
        return String::new();
    }
    let unit = r.run.unit();
    let mut s = format!(
        "where the BPF cost is: p50 difference per fault on the one-extent file ({unit}; median over seq/rand x read/write)\n"
    );
    let _ = writeln!(
        s,
        "{:<50} {:<32} {:>10} {:>10}",
        "part", "variants", "PTE", "PMD"
    );
    for st in steps {
        let per_size = |size: Size| {
            let d: Vec<f64> = [Order::Seq, Order::Rand]
                .iter()
                .flat_map(|&o| {
                    [Access::Read, Access::Write].map(|a| Workload::new(size, o, a, "one"))
                })
                .filter_map(|w| Some(p50(r, st.upper, &w)? - p50(r, st.lower, &w)?))
                .collect();
            crate::stats::median(&d)
        };
        let _ = writeln!(
            s,
            "{:<50} {:<32} {:>10} {:>10}",
            st.what,
            format!("{} - {}", st.upper, st.lower),
            plus(per_size(Size::Pte)),
            plus(per_size(Size::Pmd)),
        );
    }
    s
}

/// `ratio to famfs_native (geomean of p50 ratios)` per resolver and fault size.
pub fn summary(r: &BenchReport) -> String {
    let mut s = String::from(
        "fault cost relative to famfs_native and to the floor (raw device_dax): geometric mean of the cells' ratios per fault size\n",
    );
    let unit = r.run.unit();
    let _ = writeln!(
        s,
        "{:<16} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "resolver",
        "PTE/native",
        "PMD/native",
        "open/native",
        "PTE/floor",
        "PMD/floor",
        "open/floor",
        format!("PTE +nat {unit}"),
        format!("PMD +nat {unit}")
    );
    let mut resolvers: Vec<&str> = Vec::new();
    for x in &r.summary {
        if !resolvers.contains(&x.resolver.as_str()) {
            resolvers.push(&x.resolver);
        }
    }
    for res in resolvers {
        let get = |size: Size, native: bool| {
            r.summary
                .iter()
                .find(|x| x.resolver == res && x.size == size)
                .and_then(|x| {
                    if native {
                        x.ratio_native
                    } else {
                        x.ratio_floor
                    }
                })
        };
        let added = |size: Size| {
            r.summary
                .iter()
                .find(|x| x.resolver == res && x.size == size)
                .and_then(|x| x.added_native)
        };
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            res,
            times(get(Size::Pte, true)),
            times(get(Size::Pmd, true)),
            times(get(Size::Open, true)),
            times(get(Size::Pte, false)),
            times(get(Size::Pmd, false)),
            times(get(Size::Open, false)),
            plus(added(Size::Pte)),
            plus(added(Size::Pmd)),
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunInfo;
    use lab_suite::benchdata::{Access, CellSamples, Order, Rep, Samples, Workload};

    #[test]
    fn table_shows_ratios_failures_and_the_summary() {
        let w = Workload::new(Size::Pte, Order::Seq, Access::Read, "simple");
        let mk = |r: &str, w: &Workload, v: u64, err: Option<&str>| CellSamples {
            resolver: r.into(),
            workload: w.clone(),
            faults: 2,
            reps: if err.is_some() {
                vec![]
            } else {
                vec![Rep {
                    round: 1,
                    position: None,
                    first_ns: vec![v, v],
                    second_ns: vec![0, 0],
                }]
            },
            sizes: None,
            bpf: None,
            notes: vec![],
            error: err.map(String::from),
        };
        let s = Samples {
            cells: vec![
                mk("famfs", &w, 300, None),
                mk("famfs_native", &w, 200, None),
                mk(FLOOR, &w.floor(), 100, None),
                mk("famfs_maplookup", &w, 0, Some("mount failed\nlog")),
            ],
            ..Samples::default()
        };
        let r = BenchReport::from_samples(
            RunInfo {
                accel: "tcg".into(),
                ..RunInfo::default()
            },
            &s,
        );
        let t = render(&r);
        assert!(t.contains("accel tcg: absolute ns are inflated"), "{t}");
        let famfs = t.lines().find(|l| l.contains(" famfs  ")).unwrap();
        assert!(
            famfs.contains("1.50x") && famfs.contains("3.00x"),
            "{famfs}"
        );
        assert!(t.contains("FAILED: mount failed"), "{t}");
        // floor row comes first in its group
        let floor_at = t.find("device_dax").unwrap();
        assert!(floor_at < t.find("famfs_native").unwrap());
        assert!(t.contains("famfs                   1.50x"), "{t}");
    }
}
