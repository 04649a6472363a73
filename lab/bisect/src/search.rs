//! The search: positions `0..=last` of a range (a git range's commits, or the prefixes of a
//! patch series: position k has the first k patches), position 0 good, position `last` bad.
//! The first bad position is between the last good one below the first bad one and that bad
//! one; each step tests the untested position nearest the middle of that interval (git
//! bisect's choice, the later one on a tie). Skipped and flaky positions are never tested
//! again. While the interval holds a skipped position, the search bisects between the
//! highest one and the bad end first: skips tend to come in runs from the good end (a case
//! that cannot run before the patch that gives it what it needs), and a good step above them
//! makes them irrelevant; only when nothing is left above them does it go below. When
//! every position left in the interval was skipped, the first bad one is one of them or the
//! bad end, and the result says so.

use crate::verdict::Verdict;

/// Where the search stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Test this position next.
    Test(usize),
    /// The first bad position, with the good one before it.
    Found { first_bad: usize, last_good: usize },
    /// Skipped (or flaky) positions left no answer: the first bad position is one of these
    /// (the skipped ones and the first bad one tested, in order); `last_good` before them.
    Ambiguous {
        candidates: Vec<usize>,
        last_good: usize,
    },
}

/// The verdicts of a range's positions.
#[derive(Debug, Clone)]
pub struct Search {
    verdicts: Vec<Option<Verdict>>,
}

impl Search {
    /// A range of `last + 1` positions: 0 is good, `last` bad (`last` >= 1).
    pub fn new(last: usize) -> Search {
        let last = last.max(1);
        let mut verdicts = vec![None; last + 1];
        verdicts[0] = Some(Verdict::Good);
        verdicts[last] = Some(Verdict::Bad);
        Search { verdicts }
    }

    pub fn last(&self) -> usize {
        self.verdicts.len() - 1
    }

    /// Records a step's verdict (the ends keep theirs).
    pub fn record(&mut self, position: usize, verdict: Verdict) {
        if position == 0 || position >= self.last() {
            return;
        }
        self.verdicts[position] = Some(verdict);
    }

    pub fn verdict(&self, position: usize) -> Option<Verdict> {
        self.verdicts.get(position).copied().flatten()
    }

    /// (last good below the first bad, first bad).
    pub fn bounds(&self) -> (usize, usize) {
        let hi = (0..self.verdicts.len())
            .find(|&p| self.verdict(p) == Some(Verdict::Bad))
            .unwrap_or(self.last());
        let lo = (0..hi)
            .rev()
            .find(|&p| self.verdict(p) == Some(Verdict::Good))
            .unwrap_or(0);
        (lo, hi)
    }

    /// What to do next.
    pub fn next(&self) -> Next {
        let (lo, hi) = self.bounds();
        let untested: Vec<usize> = (lo + 1..hi)
            .filter(|&p| self.verdict(p).is_none())
            .collect();
        if untested.is_empty() {
            if hi == lo + 1 {
                return Next::Found {
                    first_bad: hi,
                    last_good: lo,
                };
            }
            return Next::Ambiguous {
                candidates: (lo + 1..=hi).collect(),
                last_good: lo,
            };
        }
        let skipped = (lo + 1..hi).rev().find(|&p| self.verdict(p).is_some());
        if let Some(s) = skipped {
            let above: Vec<usize> = untested.iter().copied().filter(|&p| p > s).collect();
            if let Some(p) = nearest(&above, s + hi) {
                return Next::Test(p);
            }
        }
        match nearest(&untested, lo + hi) {
            Some(p) => Next::Test(p),
            None => Next::Found {
                first_bad: hi,
                last_good: lo,
            },
        }
    }

    /// The most steps left if nothing is skipped: ceil(log2(positions left to decide)).
    pub fn steps_left(&self) -> u32 {
        let (lo, hi) = self.bounds();
        let n = (hi - lo) as u32;
        if n <= 1 {
            0
        } else {
            32 - (n - 1).leading_zeros()
        }
    }
}

/// The position of `among` nearest `mid2 / 2` (twice the middle, to stay in integers), the
/// later one on a tie.
fn nearest(among: &[usize], mid2: usize) -> Option<usize> {
    among
        .iter()
        .copied()
        .min_by_key(|&p| ((2 * p).abs_diff(mid2), std::cmp::Reverse(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    /// Runs a whole search against `truth` (the verdict of each position); returns the
    /// result and the positions tested, in order.
    fn bisect(truth: &[Verdict]) -> (Next, Vec<usize>) {
        let mut s = Search::new(truth.len() - 1);
        let mut tested = Vec::new();
        loop {
            match s.next() {
                Next::Test(p) => {
                    assert!(!tested.contains(&p), "tested {p} twice: {tested:?}");
                    tested.push(p);
                    s.record(p, truth[p]);
                }
                done => return (done, tested),
            }
        }
    }

    fn truth(n: usize, first_bad: usize) -> Vec<Verdict> {
        (0..=n)
            .map(|p| if p >= first_bad { Bad } else { Good })
            .collect()
    }

    #[test]
    fn finds_every_first_bad_in_log2_steps() {
        for n in 1..=40 {
            for first_bad in 1..=n {
                let (got, tested) = bisect(&truth(n, first_bad));
                assert_eq!(
                    got,
                    Next::Found {
                        first_bad,
                        last_good: first_bad - 1
                    },
                    "n={n} first_bad={first_bad}"
                );
                let bound = Search::new(n).steps_left() as usize;
                assert!(
                    tested.len() <= bound,
                    "n={n} first_bad={first_bad}: {} steps {tested:?}, at most {bound}",
                    tested.len()
                );
            }
        }
    }

    #[test]
    fn the_middle_first_and_the_later_one_on_a_tie() {
        assert_eq!(Search::new(14).next(), Next::Test(7));
        assert_eq!(Search::new(5).next(), Next::Test(3));
        assert_eq!(Search::new(2).next(), Next::Test(1));
        assert_eq!(
            Search::new(1).next(),
            Next::Found {
                first_bad: 1,
                last_good: 0
            }
        );
        assert_eq!(Search::new(14).steps_left(), 4);
        assert_eq!(Search::new(16).steps_left(), 4);
        assert_eq!(Search::new(17).steps_left(), 5);
    }

    #[test]
    fn a_skipped_step_is_stepped_around_and_the_culprit_still_found() {
        // 3 (the middle) does not build, 4 fixes it, 5 is the culprit
        let t = [Good, Good, Good, Skip, Good, Bad, Bad];
        let (got, tested) = bisect(&t);
        assert_eq!(
            got,
            Next::Found {
                first_bad: 5,
                last_good: 4
            }
        );
        assert_eq!(tested, [3, 5, 4]);
        // a run of skips from the good end (the case cannot run before patch 9) costs one
        // step: the search goes above it
        let mut t = truth(14, 10);
        for v in &mut t[1..=8] {
            *v = Skip;
        }
        let (got, tested) = bisect(&t);
        assert_eq!(
            got,
            Next::Found {
                first_bad: 10,
                last_good: 9
            }
        );
        assert_eq!(tested, [7, 11, 9, 10]);
        // below the skips when the culprit is there
        let t = [Good, Bad, Bad, Skip, Bad, Bad, Bad];
        let (got, _) = bisect(&t);
        assert_eq!(
            got,
            Next::Found {
                first_bad: 1,
                last_good: 0
            }
        );
        // skipped positions that are far from the culprit cost nothing more
        let mut t = truth(14, 12);
        for v in &mut t[1..=4] {
            *v = Skip;
        }
        let (got, tested) = bisect(&t);
        assert_eq!(
            got,
            Next::Found {
                first_bad: 12,
                last_good: 11
            }
        );
        assert!(tested.len() <= 4, "{tested:?}");
    }

    #[test]
    fn a_skip_right_before_the_culprit_leaves_both_as_candidates() {
        // 3 does not build, 4 is the culprit: 3 or 4
        let t = [Good, Good, Good, Skip, Bad, Bad];
        let (got, _) = bisect(&t);
        assert_eq!(
            got,
            Next::Ambiguous {
                candidates: vec![3, 4],
                last_good: 2
            }
        );
        // flaky counts as a skip, never as bad
        let t = [Good, Good, Flaky, Bad];
        let (got, _) = bisect(&t);
        assert_eq!(
            got,
            Next::Ambiguous {
                candidates: vec![2, 3],
                last_good: 1
            }
        );
    }

    #[test]
    fn ends_keep_their_verdicts_and_goods_above_a_bad_are_ignored() {
        let mut s = Search::new(6);
        s.record(0, Bad);
        s.record(6, Good);
        assert_eq!(s.verdict(0), Some(Good));
        assert_eq!(s.verdict(6), Some(Bad));
        s.record(2, Bad);
        s.record(4, Good); // contradicts 2: the first bad wins
        assert_eq!(s.bounds(), (0, 2));
        assert_eq!(s.next(), Next::Test(1));
    }
}
