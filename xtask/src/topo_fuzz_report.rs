//! The summary of `cargo xtask lab topo-fuzz`: one line per seed, counts per rule, the seeds
//! of failures with the commands that rerun them; as text or JSON.

use crate::topo_fuzz_model::{Entry, RefusalInGuest, TopoFuzzArgs, Verdict};
use std::collections::BTreeMap;
use std::path::Path;

fn by_rule(entries: &[Entry]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in entries {
        if let Verdict::Refused(rules) = &e.verdict {
            for r in rules {
                *m.entry(r.clone()).or_insert(0) += 1;
            }
        }
    }
    m
}

fn rerun(args: &TopoFuzzArgs, e: &Entry) -> String {
    format!(
        "cargo xtask lab topo-fuzz --count 1 --seed {}{}   # or: cargo xtask lab up --topology {} --suite smoke",
        e.seed,
        if args.host_only { " --host-only" } else { "" },
        e.yaml.display()
    )
}

pub(crate) fn summary_text(args: &TopoFuzzArgs, entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        let detail = match &e.verdict {
            Verdict::Refused(rules) => match &e.refusal {
                None => rules.join(", "),
                Some(RefusalInGuest::Confirmed(why)) => {
                    format!("{}; the guest failed too: {why}", rules.join(", "))
                }
                Some(RefusalInGuest::SetUpAnyway) => {
                    format!(
                        "{}; BUT THE GUEST SET IT UP (rule too strict)",
                        rules.join(", ")
                    )
                }
            },
            Verdict::RefusedWithoutRule(why) | Verdict::Failed(why) => why.clone(),
            Verdict::Accepted | Verdict::Passed => String::new(),
        };
        out.push_str(&format!(
            "seed {:<6} {:<22} {detail}\n",
            e.seed,
            e.verdict.word()
        ));
    }
    let count = |f: fn(&Verdict) -> bool| entries.iter().filter(|e| f(&e.verdict)).count();
    let refused = count(|v| matches!(v, Verdict::Refused(_) | Verdict::RefusedWithoutRule(_)));
    let accepted = entries.len() - refused;
    out.push_str(&format!(
        "{} topologies: {accepted} accepted ({} passed smoke, {} failed, {} not booted), {refused} refused\n",
        entries.len(),
        count(|v| *v == Verdict::Passed),
        count(|v| matches!(v, Verdict::Failed(_))),
        count(|v| *v == Verdict::Accepted),
    ));
    let booted_refused = entries.iter().filter(|e| e.refusal.is_some()).count();
    if booted_refused > 0 {
        let confirmed = entries
            .iter()
            .filter(|e| matches!(e.refusal, Some(RefusalInGuest::Confirmed(_))))
            .count();
        out.push_str(&format!(
            "refused and booted anyway: {booted_refused}, the guest failed on {confirmed}\n"
        ));
    }
    let rules = by_rule(entries);
    if !rules.is_empty() {
        let list: Vec<String> = rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
        out.push_str(&format!(
            "refused by rule (a topology may break several): {}\n",
            list.join(", ")
        ));
    }
    let failures: Vec<&Entry> = entries.iter().filter(|e| e.is_failure()).collect();
    if failures.is_empty() && args.host_only {
        out.push_str("every refusal named a rule (host only: nothing booted)\n");
    } else if failures.is_empty() {
        out.push_str(
            "the property held: every accepted topology set up, every refusal named a rule\n",
        );
    } else {
        out.push_str(&format!(
            "FAILED seeds: {}\n",
            failures
                .iter()
                .map(|e| e.seed.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        ));
        for e in failures {
            out.push_str(&format!("  {}\n", rerun(args, e)));
        }
    }
    out
}

pub(crate) fn summary_json(args: &TopoFuzzArgs, entries: &[Entry]) -> serde_json::Value {
    let topologies: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            let (rules, why) = match &e.verdict {
                Verdict::Refused(r) => (r.clone(), None),
                Verdict::RefusedWithoutRule(w) | Verdict::Failed(w) => {
                    (Vec::new(), Some(w.clone()))
                }
                _ => (Vec::new(), None),
            };
            let in_guest = match &e.refusal {
                None => None,
                Some(RefusalInGuest::Confirmed(why)) => Some(format!("failed: {why}")),
                Some(RefusalInGuest::SetUpAnyway) => Some("set up".to_string()),
            };
            serde_json::json!({
                "seed": e.seed,
                "verdict": e.verdict.word(),
                "refused_in_guest": in_guest,
                "rules": rules,
                "why": why,
                "yaml": e.yaml,
                "run_dir": e.run_dir.as_deref().map(Path::to_path_buf),
            })
        })
        .collect();
    let failed: Vec<u64> = entries
        .iter()
        .filter(|e| e.is_failure())
        .map(|e| e.seed)
        .collect();
    let refused = entries
        .iter()
        .filter(|e| {
            matches!(
                e.verdict,
                Verdict::Refused(_) | Verdict::RefusedWithoutRule(_)
            )
        })
        .count();
    serde_json::json!({
        "seed": args.seed,
        "count": args.count,
        "accepted": entries.len() - refused,
        "refused": refused,
        "failed": failed,
        "by_rule": by_rule(entries),
        "topologies": topologies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn the_summary_counts_rules_and_lists_failed_seeds() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            a: TopoFuzzArgs,
        }
        let args = <Cli as clap::Parser>::parse_from(["x", "--count", "3", "--seed", "10"]).a;
        assert_eq!(
            (args.count, args.seed, args.kernel.kernel.as_str()),
            (3, 10, "famfs-bpf")
        );
        let e = |seed, verdict| Entry {
            seed,
            yaml: PathBuf::from(format!("/t/fuzz-{seed}.yaml")),
            verdict,
            run_dir: None,
            refusal: None,
        };
        let entries = [
            e(10, Verdict::Passed),
            e(
                11,
                Verdict::Refused(vec!["hpa-order".into(), "interleave-order".into()]),
            ),
            e(12, Verdict::Failed("lab error".into())),
        ];
        let mut too_strict = e(13, Verdict::Refused(vec!["hpa-order".into()]));
        too_strict.refusal = Some(RefusalInGuest::SetUpAnyway);
        assert!(too_strict.is_failure() && too_strict.refused_by_model_only());
        assert!(!e(14, Verdict::Refused(vec!["window-size".into()])).refused_by_model_only());
        let text = summary_text(&args, &entries);
        assert!(
            text.contains(
                "3 topologies: 2 accepted (1 passed smoke, 1 failed, 0 not booted), 1 refused"
            ),
            "{text}"
        );
        assert!(text.contains("hpa-order 1, interleave-order 1"), "{text}");
        assert!(text.contains("FAILED seeds: 12"), "{text}");
        assert!(text.contains("--count 1 --seed 12"), "{text}");
        let json = summary_json(&args, &entries);
        assert_eq!(json["failed"], serde_json::json!([12]));
        assert_eq!(json["by_rule"]["hpa-order"], 1);
    }
}
