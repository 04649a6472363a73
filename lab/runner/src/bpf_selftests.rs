//! The host's part of the `bpf_selftests` suite: before boot, the kernel's compiled BPF
//! selftests (its cache entry's `bpf-selftests/`, see `lab_kernel::bpf_selftests`) go into the
//! results share with a [`Manifest`]; after the case, its per-program result lines become one
//! case report each, `bpf_selftests.<program>`.

use anyhow::{Context, Result};
use lab_report::{CaseReport, Outcome};
use lab_suite::bpf_selftests::{self as st, CompileError, Manifest, Verdict};
use std::path::Path;

/// How the suite's one guest case is asked for.
const WHOLE: &str = "--case bpf_selftests.programs";

/// Copies the objects of `compiled` into `results/bpf-selftests/` and writes the manifest:
/// every `NAME.bpf.o` to load, every `NAME.err` (and `setup.err`) as a compile error.
pub fn stage(compiled: &Path, results: &Path) -> Result<Manifest> {
    let out = results.join(st::STAGED);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut manifest = Manifest::default();
    let mut entries: Vec<_> = std::fs::read_dir(compiled)
        .with_context(|| format!("listing {}", compiled.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("listing {}", compiled.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".bpf.o") {
            std::fs::copy(&path, out.join(&name))
                .with_context(|| format!("copying {}", path.display()))?;
            manifest.objects.push(name);
        } else if let Some(stem) = name.strip_suffix(".err") {
            let message = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            // `setup.err`: the headers could not be made; reported as `bpf_selftests.setup`.
            manifest.errors.push(CompileError {
                name: stem.into(),
                message,
            });
        }
    }
    std::fs::write(
        out.join(st::MANIFEST),
        serde_json::to_string_pretty(&manifest)?,
    )?;
    Ok(manifest)
}

/// The per-program reports of the suite's case `r`. A case that did not end with its programs'
/// verdicts (a splat, a timeout, a skip, an error before any program ran) stays as it is.
pub fn expand(r: CaseReport) -> Vec<CaseReport> {
    let results = st::parse_results(&r.diagnostics.join("\n"));
    let whole = matches!(r.outcome, Outcome::Pass | Outcome::Fail) && r.splats.is_empty();
    if !whole || results.is_empty() {
        return vec![r];
    }
    let each = r.duration_ms / results.len() as u64;
    results
        .into_iter()
        .map(|p| {
            let (outcome, reason) = match p.verdict {
                Verdict::Pass => (Outcome::Pass, None),
                Verdict::Fail(why) => (Outcome::Fail, Some(why)),
                Verdict::Skip(why) => (Outcome::Skip, Some(why)),
            };
            let mut c = CaseReport::new(p.name, outcome, each);
            c.reason = reason;
            c.diagnostics = p.log;
            if outcome.is_failure() {
                let own = format!("--case {}.{}", st::SUITE, c.name);
                c.reproduce = r.reproduce.as_ref().map(|s| s.replace(WHOLE, &own));
            }
            c
        })
        .collect()
}

/// The reports of the programs `--case bpf_selftests.<program>` asked for, when the run was
/// asked for programs by name (all of them run; the others are left out of the report).
pub fn only_asked(reports: Vec<CaseReport>, cases: &[String]) -> Vec<CaseReport> {
    let prefix = format!("{}.", st::SUITE);
    let named: Vec<&str> = cases
        .iter()
        .filter_map(|c| c.strip_prefix(prefix.as_str()))
        .collect();
    if named.is_empty() || named.contains(&"programs") {
        return reports;
    }
    let kept: Vec<CaseReport> = reports
        .iter()
        .filter(|r| named.contains(&r.name.as_str()))
        .cloned()
        .collect();
    // A name no program has: the whole picture, so the mistake shows.
    if kept.is_empty() {
        reports
    } else {
        kept
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::bpf_selftests::ProgResult;

    #[test]
    fn stages_objects_and_compile_errors() {
        let compiled = tempfile::tempdir().unwrap();
        let results = tempfile::tempdir().unwrap();
        std::fs::write(compiled.path().join("b.bpf.o"), b"obj b").unwrap();
        std::fs::write(compiled.path().join("a.bpf.o"), b"obj a").unwrap();
        std::fs::write(compiled.path().join("c.err"), "c.c:1:1: error: x\n").unwrap();
        let m = stage(compiled.path(), results.path()).unwrap();
        assert_eq!(m.objects, ["a.bpf.o", "b.bpf.o"]);
        assert_eq!(m.errors.len(), 1);
        assert_eq!(m.errors[0].name, "c");
        let staged = results.path().join(st::STAGED);
        assert_eq!(std::fs::read(staged.join("a.bpf.o")).unwrap(), b"obj a");
        let back: Manifest =
            serde_json::from_str(&std::fs::read_to_string(staged.join(st::MANIFEST)).unwrap())
                .unwrap();
        assert_eq!(back, m);
    }

    fn report(outcome: Outcome, results: &[ProgResult]) -> CaseReport {
        let mut r = CaseReport::new("programs", outcome, 900);
        r.diagnostics = ["loading".to_string()]
            .into_iter()
            .chain(results.iter().flat_map(ProgResult::lines))
            .chain(["FAIL: 1 of 3 programs failed: b".to_string()])
            .collect();
        r.reproduce = Some("cargo xtask lab up --case bpf_selftests.programs".into());
        r
    }

    #[test]
    fn one_report_per_program_naming_the_failure() {
        let results = [
            ProgResult {
                name: "a".into(),
                verdict: Verdict::Pass,
                log: vec![],
            },
            ProgResult {
                name: "b".into(),
                verdict: Verdict::Fail("the verifier accepted it".into()),
                log: vec!["processed 3 insns".into()],
            },
            ProgResult {
                name: "c".into(),
                verdict: Verdict::Skip("__retval".into()),
                log: vec![],
            },
        ];
        let out = expand(report(Outcome::Fail, &results));
        let got: Vec<_> = out.iter().map(|c| (c.name.as_str(), c.outcome)).collect();
        assert_eq!(
            got,
            [
                ("a", Outcome::Pass),
                ("b", Outcome::Fail),
                ("c", Outcome::Skip)
            ]
        );
        assert_eq!(out[1].reason.as_deref(), Some("the verifier accepted it"));
        assert_eq!(out[1].diagnostics, ["processed 3 insns"]);
        assert_eq!(
            out[1].reproduce.as_deref(),
            Some("cargo xtask lab up --case bpf_selftests.b")
        );
        assert!(out[0].reproduce.is_none());
        let asked = ["bpf_selftests.b".to_string(), "smoke.memdevs".to_string()];
        let only = only_asked(out.clone(), &asked);
        assert_eq!(only.len(), 1);
        assert_eq!(only[0].name, "b");
        assert_eq!(only_asked(out.clone(), &[]).len(), 3);
        let whole = ["bpf_selftests.programs".to_string()];
        assert_eq!(only_asked(out.clone(), &whole).len(), 3);
        let typo = ["bpf_selftests.zz".to_string()];
        assert_eq!(only_asked(out.clone(), &typo).len(), 3);
        assert_eq!(out[0].duration_ms, 300);
    }

    #[test]
    fn a_case_without_program_verdicts_stays_whole() {
        let r = report(Outcome::Timeout, &[]);
        assert_eq!(expand(r.clone()), vec![r]);
        let r = report(Outcome::Fail, &[]);
        assert_eq!(expand(r.clone()), vec![r]);
        let mut r = report(
            Outcome::Fail,
            &[ProgResult {
                name: "a".into(),
                verdict: Verdict::Pass,
                log: vec![],
            }],
        );
        r.splats = vec![
            lab_report::splat::scan("WARNING: CPU: 0 PID: 1 at x.c:1 f+0x0/0x1\n")
                .into_iter()
                .next()
                .unwrap(),
        ];
        assert_eq!(expand(r.clone()).len(), 1);
    }
}
