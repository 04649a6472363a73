//! Statistics of one cell: fault cost = first touch - second touch, page by page, pooled over
//! the repetitions; percentiles by nearest rank; the spread of the repetitions' medians; ratios
//! and their geometric mean.

use lab_suite::benchdata::Rep;
use serde::{Deserialize, Serialize};

/// The p-th percentile (0 < p <= 100) of `sorted` by nearest rank: the value at rank
/// ceil(p/100 * n) (1-based). None for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() || !(p > 0.0 && p <= 100.0) {
        return None;
    }
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted.get(rank.clamp(1, n) - 1).copied()
}

/// The median (the mean of the two middle values for an even count).
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// (max - min) / median of `values`, in percent: how far the repetitions disagree.
pub fn spread_pct(values: &[f64]) -> Option<f64> {
    let m = median(values)?;
    let max = values.iter().copied().fold(f64::MIN, f64::max);
    let min = values.iter().copied().fold(f64::MAX, f64::min);
    (m.abs() > f64::EPSILON).then(|| (max - min) / m.abs() * 100.0)
}

/// `a / b`, when both are positive.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if a > 0.0 && b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// The geometric mean of positive values (None if there are none).
pub fn geomean(values: &[f64]) -> Option<f64> {
    let v: Vec<f64> = values.iter().copied().filter(|x| *x > 0.0).collect();
    if v.is_empty() {
        return None;
    }
    Some((v.iter().map(|x| x.ln()).sum::<f64>() / v.len() as f64).exp())
}

/// The fault cost of every touch of a repetition: first - second, pairwise (negative when the
/// noise is larger than the fault). Unpaired touches are dropped.
pub fn fault_costs(rep: &Rep) -> Vec<f64> {
    rep.first_ns
        .iter()
        .zip(&rep.second_ns)
        .map(|(&a, &b)| a as f64 - b as f64)
        .collect()
}

/// The ratio of cell `a` to cell `b` paired by round: per round, a's median fault cost over b's
/// (both ran in that round, close in time, so slow phases of the emulator hit both); returns
/// the median of those ratios and the ratios. None without a round both measured.
pub fn paired_ratio(a: &[Rep], b: &[Rep]) -> Option<(f64, Vec<f64>)> {
    let per_round: Vec<f64> = a
        .iter()
        .filter_map(|ra| {
            let rb = b.iter().find(|rb| rb.round == ra.round)?;
            ratio(median(&fault_costs(ra)), median(&fault_costs(rb)))
        })
        .collect();
    Some((median(&per_round)?, per_round))
}

/// Per round both cells ran in: (round, a's position in it, a's median / b's median).
pub fn round_ratios(a: &[Rep], b: &[Rep]) -> Vec<(u32, Option<u32>, f64)> {
    a.iter()
        .filter_map(|ra| {
            let rb = b.iter().find(|rb| rb.round == ra.round)?;
            let r = ratio(median(&fault_costs(ra)), median(&fault_costs(rb)))?;
            Some((ra.round, ra.position, r))
        })
        .collect()
}

/// The median over the rounds both cells ran in of (a's median - b's median): what a adds to
/// b, paired by round. None without such a round.
pub fn paired_difference(a: &[Rep], b: &[Rep]) -> Option<f64> {
    let d: Vec<f64> = a
        .iter()
        .filter_map(|ra| {
            let rb = b.iter().find(|rb| rb.round == ra.round)?;
            Some(median(&fault_costs(ra))? - median(&fault_costs(rb))?)
        })
        .collect();
    median(&d)
}

/// What the table shows of one cell (ns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellStats {
    /// Fault samples pooled over the repetitions.
    pub samples: usize,
    pub reps: usize,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub mean: f64,
    /// Each repetition's median fault cost.
    pub rep_p50: Vec<f64>,
    /// [`spread_pct`] of `rep_p50`.
    pub spread_pct: Option<f64>,
    /// The touches themselves: the first (fault + access) and second (access) touch medians.
    pub first_p50: f64,
    pub second_p50: f64,
}

/// The statistics of a cell's repetitions; None without samples.
pub fn summarize(reps: &[Rep]) -> Option<CellStats> {
    let mut all: Vec<f64> = reps.iter().flat_map(fault_costs).collect();
    if all.is_empty() {
        return None;
    }
    all.sort_by(f64::total_cmp);
    let rep_p50: Vec<f64> = reps
        .iter()
        .filter_map(|r| median(&fault_costs(r)))
        .collect();
    let touches = |f: fn(&Rep) -> &Vec<u64>| {
        let v: Vec<f64> = reps.iter().flat_map(f).map(|&x| x as f64).collect();
        median(&v).unwrap_or(0.0)
    };
    Some(CellStats {
        samples: all.len(),
        reps: rep_p50.len(),
        p50: percentile(&all, 50.0)?,
        p90: percentile(&all, 90.0)?,
        p99: percentile(&all, 99.0)?,
        mean: all.iter().sum::<f64>() / all.len() as f64,
        spread_pct: spread_pct(&rep_p50),
        rep_p50,
        first_p50: touches(|r| &r.first_ns),
        second_p50: touches(|r| &r.second_ns),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        // ranks: ceil(0.5*10)=5, ceil(0.9*10)=9, ceil(0.99*10)=10
        assert_eq!(percentile(&v, 50.0), Some(5.0));
        assert_eq!(percentile(&v, 90.0), Some(9.0));
        assert_eq!(percentile(&v, 99.0), Some(10.0));
        assert_eq!(percentile(&v, 100.0), Some(10.0));
        let w: Vec<f64> = (1..=200).map(f64::from).collect();
        // ceil(0.99*200)=198
        assert_eq!(percentile(&w, 99.0), Some(198.0));
        assert_eq!(percentile(&[7.0], 1.0), Some(7.0));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&v, 0.0), None);
    }

    #[test]
    fn median_spread_ratio_geomean() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        // (120 - 90) / 100 = 30 %
        assert!(close(spread_pct(&[100.0, 90.0, 120.0, 100.0, 110.0]), 30.0));
        assert_eq!(spread_pct(&[0.0, 0.0]), None);
        assert!(close(ratio(Some(150.0), Some(100.0)), 1.5));
        assert_eq!(ratio(Some(150.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
        // sqrt(2 * 8) = 4
        assert!(close(geomean(&[2.0, 8.0]), 4.0));
        assert!(close(geomean(&[2.0, 8.0, -1.0]), 4.0));
        assert_eq!(geomean(&[]), None);
    }

    #[test]
    fn cell_statistics_by_hand() {
        // rep 1 costs: 100-10=90, 200-10=190, 300-20=280 -> median 190
        // rep 2 costs: 110-10=100, 210-10=200, 290-20=270 -> median 200
        let reps = vec![
            Rep {
                round: 1,
                position: None,
                first_ns: vec![100, 200, 300],
                second_ns: vec![10, 10, 20],
            },
            Rep {
                round: 2,
                position: None,
                first_ns: vec![110, 210, 290],
                second_ns: vec![10, 10, 20],
            },
        ];
        let s = summarize(&reps).unwrap();
        // pooled sorted: 90 100 190 200 270 280
        assert_eq!(s.samples, 6);
        assert_eq!(s.reps, 2);
        assert_eq!(s.p50, 190.0); // rank 3
        assert_eq!(s.p90, 280.0); // rank ceil(5.4) = 6
        assert_eq!(s.p99, 280.0);
        assert!((s.mean - 1130.0 / 6.0).abs() < 1e-9);
        assert_eq!(s.rep_p50, vec![190.0, 200.0]);
        // (200 - 190) / 195 = 5.128...%
        assert!(close(s.spread_pct, 10.0 / 195.0 * 100.0));
        // first touches 100 110 200 210 290 300 -> 205; second 10 10 10 10 20 20 -> 10
        assert_eq!((s.first_p50, s.second_p50), (205.0, 10.0));
        assert!(summarize(&[]).is_none());
        assert!(summarize(&[Rep::default()]).is_none());
    }

    #[test]
    fn ratios_paired_by_round() {
        let rep = |round, v: u64| Rep {
            round,
            position: None,
            first_ns: vec![v, v, v],
            second_ns: vec![0, 0, 0],
        };
        // round 1: 300/100 = 3; round 2: 600/300 = 2; round 3: 250/100 = 2.5; round 4: a only
        let a = vec![rep(1, 300), rep(2, 600), rep(3, 250), rep(4, 999)];
        let b = vec![rep(3, 100), rep(1, 100), rep(2, 300)];
        let (m, per) = paired_ratio(&a, &b).unwrap();
        assert_eq!(per, vec![3.0, 2.0, 2.5]);
        assert_eq!(m, 2.5);
        assert!(paired_ratio(&a, &[]).is_none());
    }

    #[test]
    fn round_ratios_and_differences_carry_the_position() {
        let rep = |round, position, v: u64| Rep {
            round,
            position: Some(position),
            first_ns: vec![v, v, v],
            second_ns: vec![0, 0, 0],
        };
        let a = vec![rep(1, 0, 300), rep(2, 1, 600), rep(3, 2, 250)];
        let b = vec![rep(1, 1, 100), rep(2, 2, 300), rep(3, 0, 100)];
        assert_eq!(
            round_ratios(&a, &b),
            vec![(1, Some(0), 3.0), (2, Some(1), 2.0), (3, Some(2), 2.5)]
        );
        // 200, 300, 150 -> 200
        assert_eq!(paired_difference(&a, &b), Some(200.0));
        assert_eq!(paired_difference(&a, &[]), None);
    }

    #[test]
    fn negative_costs_are_kept() {
        let r = Rep {
            round: 1,
            position: None,
            first_ns: vec![5, 50],
            second_ns: vec![10, 10, 99],
        };
        assert_eq!(fault_costs(&r), vec![-5.0, 40.0]);
    }
}
