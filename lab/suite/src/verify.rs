//! Files the guest and the host exchange through the results share (`/results` in the guest,
//! `RUN/results/` on the host):
//! - `RUN/results/fill.json` ([`FillPlan`]): written by the host before boot, the backing
//!   ranges it filled with the fill pattern (seed = memdev id, position = backing offset);
//! - `RUN/results/<case-id>.verify.json` ([`VerifyFile`]): written by a case, backing ranges
//!   and the pattern each must hold; the host checks every one after the case passed.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The results share as the guest sees it.
pub const GUEST_RESULTS: &str = "/results";
/// Name of the host's fill plan in the results share.
pub const FILL_PLAN: &str = "fill.json";

/// Backing bytes `[offset, offset + len)` of `memdev` must hold pattern `seed`
/// (`pattern::byte(seed, backing offset)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyRange {
    pub memdev: String,
    pub offset: u64,
    pub len: u64,
    pub seed: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyFile {
    /// The case that wrote it (`suite.name`).
    pub case: String,
    pub ranges: Vec<VerifyRange>,
}

/// `<case-id>.verify.json` under `results`.
pub fn verify_path(results: &Path, case_id: &str) -> PathBuf {
    results.join(format!("{case_id}.verify.json"))
}

/// Parses a verify file, naming what is wrong.
pub fn parse(text: &str) -> Result<VerifyFile, String> {
    let f: VerifyFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    for (i, r) in f.ranges.iter().enumerate() {
        if r.len == 0 || r.memdev.is_empty() || r.seed.is_empty() {
            return Err(format!("range {i}: empty memdev, seed or length: {r:?}"));
        }
        if r.offset.checked_add(r.len).is_none() {
            return Err(format!("range {i}: offset + len overflows"));
        }
    }
    Ok(f)
}

/// Merges ranges that continue each other (same memdev and seed), keeping the order.
pub fn coalesce(ranges: Vec<VerifyRange>) -> Vec<VerifyRange> {
    let mut out: Vec<VerifyRange> = Vec::with_capacity(ranges.len());
    for r in ranges {
        match out.last_mut() {
            Some(l) if l.memdev == r.memdev && l.seed == r.seed && l.offset + l.len == r.offset => {
                l.len += r.len
            }
            _ => out.push(r),
        }
    }
    out
}

/// One backing range the host filled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillRange {
    pub memdev: String,
    pub offset: u64,
    pub len: u64,
}

/// What the host filled before boot (seed = memdev id).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FillPlan {
    pub ranges: Vec<FillRange>,
}

impl FillPlan {
    /// Whether backing bytes `[offset, offset + len)` of `memdev` were filled.
    pub fn covers(&self, memdev: &str, offset: u64, len: u64) -> bool {
        let end = offset + len;
        let mut pos = offset;
        // Ranges may touch or overlap; walk until no range extends `pos`.
        loop {
            if pos >= end {
                return true;
            }
            let next = self
                .ranges
                .iter()
                .filter(|r| r.memdev == memdev && r.offset <= pos && pos < r.offset + r.len)
                .map(|r| r.offset + r.len)
                .max();
            match next {
                Some(n) => pos = n,
                None => return false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(memdev: &str, offset: u64, len: u64, seed: &str) -> VerifyRange {
        VerifyRange {
            memdev: memdev.into(),
            offset,
            len,
            seed: seed.into(),
        }
    }

    #[test]
    fn round_trips_and_rejects_nonsense() {
        let f = VerifyFile {
            case: "fault.x".into(),
            ranges: vec![r("mem0", 4096, 100, "s")],
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(parse(&text).unwrap(), f);
        assert!(parse("{").is_err());
        let bad = r#"{"case":"c","ranges":[{"memdev":"mem0","offset":0,"len":0,"seed":"s"}]}"#;
        assert!(parse(bad).unwrap_err().contains("range 0"));
        let wrap = format!(
            r#"{{"case":"c","ranges":[{{"memdev":"m","offset":{},"len":2,"seed":"s"}}]}}"#,
            u64::MAX
        );
        assert!(parse(&wrap).unwrap_err().contains("overflows"));
        assert_eq!(
            verify_path(Path::new("/results"), "fault.x"),
            Path::new("/results/fault.x.verify.json")
        );
    }

    #[test]
    fn coalesce_merges_only_continuations() {
        let got = coalesce(vec![
            r("a", 0, 10, "s"),
            r("a", 10, 10, "s"),
            r("b", 20, 10, "s"),
            r("b", 30, 10, "t"),
            r("b", 41, 1, "t"),
        ]);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], r("a", 0, 20, "s"));
    }

    #[test]
    fn fill_plan_coverage_spans_touching_ranges() {
        let p = FillPlan {
            ranges: vec![
                FillRange {
                    memdev: "mem0".into(),
                    offset: 0,
                    len: 100,
                },
                FillRange {
                    memdev: "mem0".into(),
                    offset: 100,
                    len: 50,
                },
            ],
        };
        assert!(p.covers("mem0", 90, 60));
        assert!(!p.covers("mem0", 90, 61));
        assert!(!p.covers("mem1", 0, 1));
    }
}
