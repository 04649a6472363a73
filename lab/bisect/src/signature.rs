//! "The same kind of failure": a bisection for a case that fails at `--bad` must not take a
//! step where the case fails for another reason (an unrelated bug, a setup that does not work
//! yet) for the regression it is after. A failure's [`Signature`] is its outcome, the
//! failed checks of its reason (`N of M checks failed: a; b; c`) and the splats seen while
//! it ran, each normalized so that what changes from run to run (addresses, CPU numbers,
//! pids, source line numbers, the count of checks) does not count, while what tells one
//! failure from another (errnos, messages, function names) does.

use lab_report::{CaseReport, Outcome};
use serde::{Deserialize, Serialize};

/// What a failing case's failure is made of, normalized.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// fail, timeout, error or xpass.
    pub outcome: String,
    /// The failed checks of the reason (or the whole reason), normalized.
    pub items: Vec<String>,
    /// `kind: first line` of each splat, normalized.
    pub splats: Vec<String>,
}

impl Signature {
    /// The signature of `case`'s failure; None when it did not fail.
    pub fn of(case: &CaseReport) -> Option<Signature> {
        if !case.outcome.is_failure() {
            return None;
        }
        Some(Signature {
            outcome: case.outcome.as_str().to_string(),
            items: reason_items(case.reason.as_deref().unwrap_or("")),
            splats: case
                .splats
                .iter()
                .map(|s| {
                    let first = s.excerpt.first().map(String::as_str).unwrap_or("");
                    format!("{}: {}", s.kind.as_str(), normalize(first))
                })
                .collect(),
        })
    }

    /// Whether `other` is the same kind of failure as this one (this one being the failure
    /// at `--bad`): a splat of the same kind at the same place, or the same outcome with at
    /// least one failed check in common (or the same reason when it lists no checks).
    pub fn same_kind(&self, other: &Signature) -> bool {
        if self.splats.iter().any(|s| other.splats.contains(s)) {
            return true;
        }
        if self.outcome != other.outcome {
            return false;
        }
        if self.items.is_empty() && other.items.is_empty() {
            return true;
        }
        self.items.iter().any(|i| other.items.contains(i))
    }

    /// One line for people: the first item or splat.
    pub fn headline(&self) -> String {
        let what = self
            .items
            .first()
            .or_else(|| self.splats.first())
            .cloned()
            .unwrap_or_default();
        format!("{}: {what}", self.outcome)
    }
}

/// The failed checks of a reason: `N of M checks failed: a; b; and K more (see the output)`
/// gives `[a, b]` (the `and K more` left out); any other reason is one item. Each normalized.
pub fn reason_items(reason: &str) -> Vec<String> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Vec::new();
    }
    let body = match reason.split_once(" checks failed: ") {
        Some((count, rest)) if is_count(count) => rest,
        _ => return vec![normalize(reason)],
    };
    body.split("; ")
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .filter(|i| !(i.starts_with("and ") && i.ends_with(" more (see the output)")))
        .map(normalize)
        .collect()
}

/// `N of M`.
fn is_count(s: &str) -> bool {
    let Some((n, m)) = s.split_once(" of ") else {
        return false;
    };
    let digits = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_digit());
    digits(n) && digits(m)
}

/// A message with what differs between runs of the same failure replaced by `?`:
/// `0x...` numbers, runs of 8 or more hex digits (addresses printed without `0x`),
/// `CPU#N`, `comm/PID`, the line of `file.c:LINE`, `[ seconds]` stamps; white space
/// collapsed. Decimal numbers elsewhere (errnos, counts, sizes) are kept.
pub fn normalize(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev = out.chars().last();
        let word_start = !prev.is_some_and(|p| p.is_ascii_alphanumeric() || p == '_');
        // `[   12.345678]` kernel time stamps.
        if c == '[' {
            if let Some(end) = stamp_end(&chars, i) {
                out.push_str("[?]");
                i = end;
                continue;
            }
        }
        // 0x1f, 0xffffffff81000000
        if word_start
            && c == '0'
            && chars.get(i + 1) == Some(&'x')
            && chars.get(i + 2).is_some_and(|d| d.is_ascii_hexdigit())
        {
            out.push_str("0x?");
            i += 2;
            while i < chars.len() && chars[i].is_ascii_hexdigit() {
                i += 1;
            }
            continue;
        }
        // ffff888003a1c000: a long run of hex digits that is a whole word.
        if word_start && c.is_ascii_hexdigit() {
            let mut j = i;
            while j < chars.len() && chars[j].is_ascii_hexdigit() {
                j += 1;
            }
            let ends_word = !chars
                .get(j)
                .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '_');
            if j - i >= 8 && ends_word {
                out.push('?');
                i = j;
                continue;
            }
        }
        // CPU#3
        if c == '#' && out.ends_with("CPU") {
            out.push_str("#?");
            i = skip_digits(&chars, i + 1);
            continue;
        }
        // famfs-lab-cases/823 (a command and its pid), not 1/2.
        if c == '/'
            && prev.is_some_and(|p| p.is_ascii_alphabetic() || p == '-' || p == '_')
            && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
        {
            let j = skip_digits(&chars, i + 1);
            if !chars.get(j).is_some_and(|d| d.is_ascii_alphanumeric()) {
                out.push_str("/?");
                i = j;
                continue;
            }
        }
        // fs/dax.c:1949 -> fs/dax.c:?
        if c == ':'
            && (out.ends_with(".c") || out.ends_with(".h") || out.ends_with(".rs"))
            && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit())
        {
            out.push_str(":?");
            i = skip_digits(&chars, i + 1);
            continue;
        }
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') {
                out.push(' ');
            }
            i += 1;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out.trim_end().to_string()
}

fn skip_digits(chars: &[char], mut i: usize) -> usize {
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    i
}

/// The index after `[ 12.345678]` starting at `i`, if that is what is there.
fn stamp_end(chars: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while chars.get(j) == Some(&' ') {
        j += 1;
    }
    let start = j;
    while chars
        .get(j)
        .is_some_and(|c| c.is_ascii_digit() || *c == '.')
    {
        j += 1;
    }
    (j > start && chars.get(j) == Some(&']') && chars[start..j].contains(&'.')).then_some(j + 1)
}

/// The outcome that counts as "the case passed" at a step: pass, or a failure the
/// expectations list (xfail).
pub fn passed(outcome: Outcome) -> bool {
    matches!(outcome, Outcome::Pass | Outcome::Xfail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_report::{Splat, SplatKind};

    fn case(outcome: Outcome, reason: &str) -> CaseReport {
        let mut c = CaseReport::new("x", outcome, 1);
        c.reason = (!reason.is_empty()).then(|| reason.to_string());
        c
    }

    fn sig(outcome: Outcome, reason: &str) -> Signature {
        Signature::of(&case(outcome, reason)).expect("a failure")
    }

    #[test]
    fn normalize_drops_what_changes_between_runs_and_keeps_errnos() {
        assert_eq!(
            normalize("WARNING: fs/dax.c:1949 at dax_iomap_pte_fault+0x2fa/0x5c0, CPU#1: famfs-lab-cases/823"),
            "WARNING: fs/dax.c:? at dax_iomap_pte_fault+0x?/0x?, CPU#?: famfs-lab-cases/?"
        );
        assert_eq!(
            normalize("touching 0x7f4d8a78c000 to map its page:   SIGBUS"),
            "touching 0x? to map its page: SIGBUS"
        );
        assert_eq!(
            normalize("BUG: unable to handle page fault for address: ffff888003a1c000"),
            "BUG: unable to handle page fault for address: ?"
        );
        assert_eq!(normalize("[   12.345678] oops"), "[?] oops");
        // what tells failures apart stays
        assert_eq!(
            normalize("open failed with errno 512, expected 5 (1/2 done)"),
            "open failed with errno 512, expected 5 (1/2 done)"
        );
        assert_ne!(normalize("pread: errno 22"), normalize("pread: errno 5"));
        // a short hex-looking word is a word
        assert_eq!(normalize("cafe dead beef"), "cafe dead beef");
    }

    #[test]
    fn checks_are_items_without_their_count_or_the_rest() {
        assert_eq!(
            reason_items("5 of 10 checks failed: parse returns -512: open failed with errno 512; b at 0x10; and 3 more (see the output)"),
            ["parse returns -512: open failed with errno 512", "b at 0x?"]
        );
        assert_eq!(reason_items("pread: errno 22"), ["pread: errno 22"]);
        assert!(reason_items("").is_empty());
        // not a count: one item
        assert_eq!(
            reason_items("all checks failed: x"),
            ["all checks failed: x"]
        );
    }

    #[test]
    fn same_check_failing_is_the_same_kind_whatever_else_fails() {
        let bad = sig(
            Outcome::Fail,
            "1 of 10 checks failed: parse returns -512: open failed with errno 512",
        );
        let more = sig(
            Outcome::Fail,
            "2 of 10 checks failed: x: got 1, expected 2; parse returns -512: open failed with errno 512",
        );
        assert!(bad.same_kind(&more));
        // another errno is another failure
        let other_errno = sig(
            Outcome::Fail,
            "1 of 10 checks failed: parse returns -512: open failed with errno 22",
        );
        assert!(!bad.same_kind(&other_errno));
        // an unrelated failure of the same case is not it
        let unrelated = sig(Outcome::Fail, "mount: errno 19");
        assert!(!bad.same_kind(&unrelated));
        // nor is a timeout
        let timeout = sig(Outcome::Timeout, "");
        assert!(!bad.same_kind(&timeout));
        assert!(timeout.same_kind(&sig(Outcome::Timeout, "")));
        assert!(!timeout.same_kind(&sig(Outcome::Fail, "")));
    }

    #[test]
    fn a_splat_at_the_same_place_is_the_same_kind_across_runs() {
        let splat = |line: &str| Splat {
            kind: SplatKind::Warning,
            line: 7,
            excerpt: vec![line.to_string(), "Call Trace:".into()],
        };
        let mut a = case(Outcome::Fail, "no kernel WARNING/BUG");
        a.splats = vec![splat(
            "WARNING: fs/dax.c:1949 at dax_iomap_pte_fault+0x2fa/0x5c0, CPU#0: famfs-lab-cases/66",
        )];
        let mut b = case(Outcome::Fail, "something else entirely");
        b.splats = vec![splat(
            "WARNING: fs/dax.c:1951 at dax_iomap_pte_fault+0x2fb/0x5c0, CPU#1: famfs-lab-cases/823",
        )];
        let mut c = case(Outcome::Fail, "something else entirely");
        c.splats = vec![splat(
            "WARNING: fs/dax.c:498 at dax_insert_entry+0x38d/0x3a0, CPU#1: famfs-lab-cases/823",
        )];
        let (a, b, c) = (
            Signature::of(&a).unwrap(),
            Signature::of(&b).unwrap(),
            Signature::of(&c).unwrap(),
        );
        assert!(a.same_kind(&b));
        assert!(!a.same_kind(&c));
        assert_eq!(a.headline(), "fail: no kernel WARNING/BUG");
    }

    #[test]
    fn passing_and_skipping_have_no_signature() {
        for o in [Outcome::Pass, Outcome::Skip, Outcome::Xfail] {
            assert!(Signature::of(&case(o, "r")).is_none(), "{o}");
        }
        assert!(passed(Outcome::Pass) && passed(Outcome::Xfail));
        assert!(!passed(Outcome::Skip) && !passed(Outcome::Fail));
    }
}
