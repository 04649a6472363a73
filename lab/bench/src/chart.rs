//! The SVG charts, horizontal bars of the ratio of a p50 fault cost to famfs_native's on the
//! same workload, with 1.0 marked (ratios: under TCG's wall clock only they mean something):
//! [`write_summary_svg`] one bar per (resolver, fault size), the geometric mean over its
//! cells (README's chart); [`write_svg`] one bar per (workload, resolver) (the floor's bar:
//! floor / native).

use crate::model::BenchReport;
use crate::table::ordered;
use anyhow::{anyhow, Result};
use lab_suite::benchdata::{Size, BASELINE, FLOOR};
use plotters::prelude::*;
use std::path::Path;

/// One bar: label, resolver, ratio to famfs_native (the floor's: 1 / native's ratio to the
/// floor, averaged over the files of that workload).
fn bars(r: &BenchReport) -> Vec<(String, String, f64)> {
    let floor_vs_native = |w: &lab_suite::benchdata::Workload| {
        let v: Vec<f64> = r
            .cells
            .iter()
            .filter(|c| c.resolver == BASELINE && c.workload.floor() == *w)
            .filter_map(|c| c.ratio_floor)
            .filter(|x| *x > 0.0)
            .map(|x| 1.0 / x)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    ordered(r)
        .into_iter()
        .filter(|c| c.resolver != BASELINE)
        .filter_map(|c| {
            let ratio = if c.resolver == FLOOR {
                floor_vs_native(&c.workload)?
            } else {
                c.ratio_native?
            };
            Some((
                format!("{} {}", c.workload, c.resolver),
                c.resolver.clone(),
                ratio,
            ))
        })
        .collect()
}

const COLORS: [RGBColor; 6] = [
    RGBColor(120, 120, 120),
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
];

/// What a chart's bars are: ratios to famfs_native (a line at 1.0) or, under icount, the
/// instructions a fault costs over famfs_native's (a line at 0).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Axis {
    Ratio,
    Added,
}

impl Axis {
    fn of(r: &BenchReport) -> Axis {
        if r.run.unit() == "insn" {
            Axis::Added
        } else {
            Axis::Ratio
        }
    }
    fn reference(self) -> f64 {
        match self {
            Axis::Ratio => 1.0,
            Axis::Added => 0.0,
        }
    }
    fn desc(self) -> &'static str {
        match self {
            Axis::Ratio => "ratio to famfs_native (1.0 = native)",
            Axis::Added => "guest instructions per fault over famfs_native (median over workloads)",
        }
    }
}

/// The summary's bars: (`PTE fault resolver`, resolver, value) per fault size; the value is
/// the geomean ratio to native, or under icount the median instructions added to native's.
fn summary_bars(r: &BenchReport) -> Vec<(String, String, f64)> {
    let axis = Axis::of(r);
    let mut v = Vec::new();
    for size in [Size::Pte, Size::Pmd] {
        for s in r.summary.iter().filter(|s| s.size == size) {
            let value = match axis {
                Axis::Ratio => s.ratio_native,
                Axis::Added => s.added_native,
            };
            if let Some(x) = value.filter(|_| s.resolver != BASELINE) {
                let name = if size == Size::Pte { "PTE" } else { "PMD" };
                v.push((
                    format!("{name} fault {}", s.resolver),
                    s.resolver.clone(),
                    x,
                ));
            }
        }
    }
    v
}

/// What a chart's caption says about the run.
fn run_label(r: &BenchReport) -> String {
    format!(
        "run {}, accel {}, clock {}",
        r.run.run_id,
        r.run.accel,
        r.run.clock_label()
    )
}

/// Writes the per-cell chart to `path`; an error if there is nothing to draw.
pub fn write_svg(r: &BenchReport, path: &Path) -> Result<()> {
    let title = format!(
        "fault cost relative to famfs_native, paired by round ({})",
        run_label(r)
    );
    draw(r, &bars(r), Axis::Ratio, &title, path)
}

/// Writes the summary chart (one bar per resolver and fault size) to `path`.
pub fn write_summary_svg(r: &BenchReport, path: &Path) -> Result<()> {
    let unit = if r.run.unit() == "insn" {
        "guest instructions"
    } else {
        "time"
    };
    let title = format!(
        "DAX fault cost ({unit}) relative to famfs_native ({})",
        run_label(r)
    );
    draw(r, &summary_bars(r), Axis::of(r), &title, path)
}

fn draw(
    r: &BenchReport,
    bars: &[(String, String, f64)],
    axis: Axis,
    title: &str,
    path: &Path,
) -> Result<()> {
    if bars.is_empty() {
        return Err(anyhow!("no ratios to draw"));
    }
    let resolvers = r.resolvers();
    let n = bars.len();
    let height = 120 + 16 * n as u32;
    let reference = axis.reference();
    let xmax = bars.iter().map(|b| b.2).fold(1.0f64, f64::max) * 1.1;
    let xmin = bars.iter().map(|b| b.2).fold(0.0f64, f64::min) * 1.1;
    let root = SVGBackend::new(path, (1000, height)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing {}: {e}", path.display());
    root.fill(&WHITE).map_err(e)?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(300)
        .build_cartesian_2d(xmin..xmax, (0..n).into_segmented())
        .map_err(e)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                labels.get(*i).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .x_desc(axis.desc())
        .draw()
        .map_err(e)?;
    for (k, res) in resolvers.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let data: Vec<(usize, f64)> = bars
            .iter()
            .enumerate()
            .filter(|(_, b)| &b.1 == res)
            .map(|(i, b)| (i, b.2))
            .collect();
        if data.is_empty() {
            continue;
        }
        chart
            .draw_series(
                Histogram::horizontal(&chart)
                    .style(color.filled())
                    .margin(2)
                    .data(data),
            )
            .map_err(e)?
            .label(res.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], color.filled()));
    }
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![
                (reference, SegmentValue::Exact(0)),
                (reference, SegmentValue::Last),
            ],
            BLACK.stroke_width(1),
        )))
        .map_err(e)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RunInfo;
    use lab_suite::benchdata::{Access, CellSamples, Order, Rep, Samples, Size, Workload};

    #[test]
    fn writes_an_svg_with_a_bar_per_cell() {
        let w = Workload::new(Size::Pte, Order::Seq, Access::Read, "simple");
        let mk = |r: &str, w: &Workload, v: u64| CellSamples {
            resolver: r.into(),
            workload: w.clone(),
            faults: 1,
            reps: vec![Rep {
                round: 1,
                position: None,
                first_ns: vec![v],
                second_ns: vec![0],
            }],
            sizes: None,
            bpf: None,
            notes: vec![],
            error: None,
        };
        let s = Samples {
            cells: vec![
                mk(BASELINE, &w, 200),
                mk("famfs", &w, 300),
                mk(FLOOR, &w.floor(), 100),
            ],
            ..Samples::default()
        };
        let r = BenchReport::from_samples(RunInfo::default(), &s);
        let b = bars(&r);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0].2, 0.5); // floor / native
        assert_eq!(b[1].2, 1.5);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.svg");
        write_svg(&r, &p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("pte.seq.read.simple famfs"));
        let empty = BenchReport::from_samples(RunInfo::default(), &Samples::default());
        assert!(write_svg(&empty, &p).is_err());
        // the summary: one bar per resolver and fault size, native left out
        assert_eq!(
            summary_bars(&r),
            vec![("PTE fault famfs".to_string(), "famfs".to_string(), 1.5)]
        );
        write_summary_svg(&r, &p).unwrap();
        let svg = std::fs::read_to_string(&p).unwrap();
        assert!(svg.contains("PTE fault famfs"), "{svg}");
        assert!(write_summary_svg(&empty, &p).is_err());
        // under icount the summary shows the instructions added to native's
        let mut icount = r.clone();
        icount.run.clock = "icount".into();
        assert_eq!(summary_bars(&icount)[0].2, 100.0);
    }
}
