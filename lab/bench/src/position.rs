//! Order effects: does a cell's ratio depend on where its unit ran in the round? Every timed
//! round rotates the units (the floor and the resolvers), so each cell's per-round ratios come
//! from several positions; a cell is flagged when the medians of its ratios at different
//! positions are further apart than [`FLAG_PCT`] and than twice the scatter within a position.
//! Without two rounds at one position at least (reps = the number of units), a difference
//! above [`FLAG_PCT`] is undecided: noise and order cannot be told apart.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The least difference between positions (in % of the median ratio) that is flagged.
pub const FLAG_PCT: f64 = 3.0;

/// A cell's ratios by position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PositionEffect {
    /// (position, median ratio of the rounds the cell's unit ran at that position).
    pub by_position: Vec<(u32, f64)>,
    /// (max - min) of those medians / the median of all ratios, in percent.
    pub range_pct: f64,
    /// The median (max - min) / median within one position, in percent, where a position has
    /// two rounds or more.
    pub within_pct: Option<f64>,
    pub flagged: bool,
    /// The positions differ by more than [`FLAG_PCT`], but no position has two rounds to
    /// compare that with.
    #[serde(default)]
    pub undecided: bool,
}

/// The effect over `(position, ratio)` pairs (one per timed round); None with fewer than two
/// positions.
pub fn effect(ratios: &[(u32, f64)]) -> Option<PositionEffect> {
    let mut groups: BTreeMap<u32, Vec<f64>> = BTreeMap::new();
    for &(p, r) in ratios {
        groups.entry(p).or_default().push(r);
    }
    if groups.len() < 2 {
        return None;
    }
    let all: Vec<f64> = ratios.iter().map(|x| x.1).collect();
    let mid = crate::stats::median(&all)?;
    if mid.abs() <= f64::EPSILON {
        return None;
    }
    let by_position: Vec<(u32, f64)> = groups
        .iter()
        .filter_map(|(p, v)| Some((*p, crate::stats::median(v)?)))
        .collect();
    let max = by_position.iter().map(|x| x.1).fold(f64::MIN, f64::max);
    let min = by_position.iter().map(|x| x.1).fold(f64::MAX, f64::min);
    let range_pct = (max - min) / mid.abs() * 100.0;
    let within: Vec<f64> = groups
        .values()
        .filter(|v| v.len() >= 2)
        .filter_map(|v| crate::stats::spread_pct(v))
        .collect();
    let within_pct = crate::stats::median(&within);
    let (flagged, undecided) = match within_pct {
        Some(w) => (range_pct > FLAG_PCT.max(2.0 * w), false),
        None => (false, range_pct > FLAG_PCT),
    };
    Some(PositionEffect {
        by_position,
        range_pct,
        within_pct,
        flagged,
        undecided,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_that_follows_the_position_is_flagged() {
        // first in the round: 0.7; later: 1.1 (the first unit pays for something)
        let e = effect(&[(0, 0.7), (1, 1.1), (2, 1.1), (3, 1.1), (0, 0.7)]).unwrap();
        assert!(e.flagged, "{e:?}");
        assert_eq!(e.by_position, vec![(0, 0.7), (1, 1.1), (2, 1.1), (3, 1.1)]);
        // (1.1 - 0.7) / 1.1
        assert!((e.range_pct - 0.4 / 1.1 * 100.0).abs() < 1e-9);
        assert_eq!(e.within_pct, Some(0.0));
    }

    #[test]
    fn the_same_ratio_everywhere_is_not() {
        let e = effect(&[(0, 1.20), (1, 1.21), (2, 1.20), (3, 1.19)]).unwrap();
        assert!(!e.flagged, "{e:?}");
        assert!(e.range_pct < FLAG_PCT);
    }

    #[test]
    fn scatter_within_a_position_raises_the_bar() {
        // positions differ by 9 %, but one position alone scatters by 18 %
        let e = effect(&[(0, 1.0), (0, 1.2), (1, 1.2), (1, 1.22)]).unwrap();
        assert!(e.range_pct > FLAG_PCT);
        assert!(!e.flagged, "{e:?}");
    }

    #[test]
    fn one_round_per_position_cannot_decide() {
        let e = effect(&[(0, 0.7), (1, 1.1), (2, 1.1)]).unwrap();
        assert!(!e.flagged && e.undecided, "{e:?}");
        assert_eq!(e.within_pct, None);
        // equal everywhere: nothing to decide
        let e = effect(&[(0, 1.1), (1, 1.1), (2, 1.1)]).unwrap();
        assert!(!e.flagged && !e.undecided, "{e:?}");
    }

    #[test]
    fn one_position_says_nothing() {
        assert!(effect(&[(2, 1.0), (2, 1.5)]).is_none());
        assert!(effect(&[]).is_none());
    }
}
