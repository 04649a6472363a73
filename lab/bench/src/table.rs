//! The table on stdout: one group per (fault size, order, access), the floor first, then each
//! resolver on each file; the ratios last, then the BPF/native summary per fault size.

use crate::model::{BenchReport, Cell};
use lab_suite::benchdata::{Size, FLOOR};
use std::fmt::Write;

/// ns with a thousands-friendly width, or `-`.
fn ns(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}")).unwrap_or_else(|| "-".into())
}

fn times(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}x")).unwrap_or_else(|| "-".into())
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.0}%")).unwrap_or_else(|| "-".into())
}

/// The header lines: run, accelerator, sizes, what could not be measured.
pub fn header(r: &BenchReport) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "fault-path benchmark: run {}, kernel {} ({}), topology {}, accel {}",
        r.run.run_id, r.run.kernel, r.run.kernel_hash, r.run.topology, r.run.accel
    );
    if let Some(c) = &r.config {
        let _ = writeln!(
            s,
            "reps {} (+1 untimed probe), {} PTE pages, {} PMD pages, {} files per open workload",
            c.reps, c.pte_pages, c.pmd_pages, c.open_files
        );
    }
    if r.run.accel != "kvm" {
        let _ = writeln!(
            s,
            "accel {}: absolute ns are inflated by emulation; compare the ratios",
            r.run.accel
        );
    }
    let _ = writeln!(
        s,
        "fault cost = first touch - second touch of the same page (ns, p50/p90/p99 over all faults of all reps); spread = (max - min) / median of the reps' medians"
    );
    let _ = writeln!(
        s,
        "x native, x floor: median over the rounds (each runs every resolver once) of the cell's median / the other's median in that round"
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
            "bpf stats (kernel.bpf_stats_enabled, probe rep)"
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
        _ => 3,
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
    let _ = writeln!(
        s,
        "{:<24} {:<16} {:>6} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8}  fault size",
        "workload",
        "resolver",
        "faults",
        "p50 ns",
        "p90 ns",
        "p99 ns",
        "spread",
        "x native",
        "x floor",
        "bpf ns"
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
        let _ = writeln!(
            s,
            "{:<24} {:<16} {:>6} {:>8} {:>8} {:>8} {:>6} {:>8} {:>8} {:>8}  {}",
            w.to_string(),
            c.resolver,
            faults,
            ns(st.map(|x| x.p50)),
            ns(st.map(|x| x.p90)),
            ns(st.map(|x| x.p99)),
            pct(st.and_then(|x| x.spread_pct)),
            if c.resolver == FLOOR {
                String::new()
            } else {
                times(c.ratio_native)
            },
            if c.resolver == FLOOR {
                String::new()
            } else {
                times(c.ratio_floor)
            },
            ns(c.bpf_ns_per_call),
            c.fault_size
                .as_deref()
                .or(c.notes.first().map(String::as_str))
                .unwrap_or("")
        );
    }
    s.push('\n');
    s.push_str(&summary(r));
    s
}

/// `ratio to famfs_native (geomean of p50 ratios)` per resolver and fault size.
pub fn summary(r: &BenchReport) -> String {
    let mut s = String::from(
        "fault cost relative to famfs_native and to the floor (raw device_dax): geometric mean of the cells' ratios per fault size\n",
    );
    let _ = writeln!(
        s,
        "{:<16} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
        "resolver",
        "PTE/native",
        "PMD/native",
        "open/native",
        "PTE/floor",
        "PMD/floor",
        "open/floor"
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
        let _ = writeln!(
            s,
            "{:<16} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12}",
            res,
            times(get(Size::Pte, true)),
            times(get(Size::Pmd, true)),
            times(get(Size::Open, true)),
            times(get(Size::Pte, false)),
            times(get(Size::Pmd, false)),
            times(get(Size::Open, false)),
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
