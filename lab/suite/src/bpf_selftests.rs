//! The `bpf_selftests` suite, the part guest and host share: the kernel tree's BPF selftests
//! of the series (`tools/testing/selftests/bpf/progs/fuse_dax_fmap*.c`, compiled by the host
//! into the kernel's cache entry) are loaded in the guest, one program at a time, with the
//! expectations of their test_loader annotations (`progs/bpf_misc.h`): `__success`,
//! `__failure`, `__msg`, `__not_msg`, `__log_level`, `__auxiliary`, `__description`,
//! `__arch_*`. Each annotation is a BTF decl tag `comment:<N>:<tag>` on the program's
//! function. A program with no expectation is expected to load, as in test_loader.
//!
//! The host stages the objects and a [`Manifest`] in the results share; the guest prints one
//! [`LINE`] per program ([`ProgResult::line`]), which the host turns into one case each,
//! `bpf_selftests.<program>`.

use serde::{Deserialize, Serialize};

/// The suite's name.
pub const SUITE: &str = "bpf_selftests";
/// The staged objects' directory in the results share (and in the kernel's cache entry).
pub const STAGED: &str = "bpf-selftests";
/// The manifest in [`STAGED`].
pub const MANIFEST: &str = "manifest.json";
/// The result line prefix; then a tab, the program, a tab, PASS/FAIL/SKIP, a tab, the reason.
pub const LINE: &str = "BPF_SELFTEST";
/// A verifier log line of a program: prefix, tab, program, tab, the line.
pub const LOG_LINE: &str = "BPF_SELFTEST_LOG";
/// Verifier log lines kept per failed program (its end: where the verifier stopped).
pub const LOG_TAIL: usize = 30;

/// What the host staged: objects to load and sources that did not compile.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Object files in [`STAGED`] (`NAME.bpf.o`).
    pub objects: Vec<String>,
    /// Sources clang refused (or the header setup, as `setup`).
    pub errors: Vec<CompileError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompileError {
    /// The source's stem (`fuse_dax_fmap_fail__x`), the name of its case.
    pub name: String,
    pub message: String,
}

/// Whether a program must load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    Success,
    Failure,
}

/// What one program's annotations ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub prog: String,
    pub expect: Expect,
    /// `__msg` (true) and `__not_msg` (false), in annotation order.
    pub msgs: Vec<(bool, String)>,
    pub auxiliary: bool,
    pub description: Option<String>,
    pub log_level: Option<u32>,
    /// Why the program is not run here (an annotation this loader does not honour, or another
    /// architecture).
    pub skip: Option<String>,
}

/// Tags of test_loader that this loader does not honour: the program is SKIP, saying which.
const UNSUPPORTED: &[&str] = &[
    "test_expect_failure_unpriv",
    "test_expect_success_unpriv",
    "test_expect_msg_unpriv",
    "test_expect_not_msg_unpriv",
    "test_expect_xlated",
    "test_expect_xlated_unpriv",
    "test_jited",
    "test_jited_unpriv",
    "test_retval",
    "test_retval_unpriv",
    "test_auxiliary_unpriv",
    "test_prog_flags",
    "test_btf_path",
    "test_btf_func_path",
    "test_caps_unpriv",
    "load_mode",
    "test_expect_stderr",
    "test_expect_stderr_unpriv",
    "test_expect_stdout",
    "test_expect_stdout_unpriv",
    "test_linear_size",
];

/// Splits a decl tag into its order and test_loader tag: `comment:<N>:<tag>` (bpf_misc.h since
/// tags carry a counter) or `comment:<tag>` (older, ordered by `fallback`). `None`: not a test
/// tag (`arg:ctx`, `bpf_kfunc`, ...).
fn split_tag(tag: &str, fallback: u64) -> Option<(u64, &str)> {
    let rest = tag.strip_prefix("comment:")?;
    if let Some((n, t)) = rest.split_once(':') {
        if let Ok(n) = n.parse::<u64>() {
            return Some((n, t));
        }
    }
    Some((fallback, rest))
}

/// The spec of program `prog` from its decl tags, in BTF order. Also gives a spec to a program
/// without tags (expected to load).
pub fn parse_spec(prog: &str, tags: &[String]) -> Spec {
    let mut ordered: Vec<(u64, &str)> = tags
        .iter()
        .enumerate()
        .filter_map(|(i, t)| split_tag(t, i as u64))
        .collect();
    ordered.sort_by_key(|(n, _)| *n);
    let mut spec = Spec {
        prog: prog.to_string(),
        expect: Expect::Success,
        msgs: Vec::new(),
        auxiliary: false,
        description: None,
        log_level: None,
        skip: None,
    };
    let mut arches = Vec::new();
    for (_, tag) in ordered {
        let (key, value) = tag.split_once('=').unwrap_or((tag, ""));
        match key {
            "test_expect_failure" => spec.expect = Expect::Failure,
            "test_expect_success" => spec.expect = Expect::Success,
            "test_expect_msg" => spec.msgs.push((true, value.to_string())),
            "test_expect_not_msg" => spec.msgs.push((false, value.to_string())),
            "test_auxiliary" => spec.auxiliary = true,
            "test_description" => spec.description = Some(value.to_string()),
            "test_log_level" => match value.parse() {
                Ok(l) => spec.log_level = Some(l),
                Err(_) => spec.skip = Some(format!("__log_level({value}) is not a number")),
            },
            "test_arch" => arches.push(value.to_string()),
            k if UNSUPPORTED.contains(&k) => {
                spec.skip.get_or_insert_with(|| {
                    format!("the lab's loader does not honour the annotation {tag:?}")
                });
            }
            _ => {}
        }
    }
    if !arches.is_empty() && !arches.iter().any(|a| a == "X86_64") {
        spec.skip
            .get_or_insert_with(|| format!("only for {} (the lab is x86_64)", arches.join(", ")));
    }
    spec
}

/// The outcome of one program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Fail(String),
    Skip(String),
}

impl Verdict {
    fn word(&self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::Fail(_) => "FAIL",
            Verdict::Skip(_) => "SKIP",
        }
    }
}

/// Judges a load: `loaded` is whether `bpf_object__load` succeeded, `log` what libbpf printed
/// (the verifier log of a failed program is in it). `__msg`s must appear in order, each after
/// the previous one; a `__not_msg` must not appear between its neighbours' matches.
pub fn judge(spec: &Spec, loaded: bool, log: &str) -> Verdict {
    match (spec.expect, loaded) {
        (Expect::Failure, true) => {
            return Verdict::Fail("the verifier accepted it; expected a rejection".into())
        }
        (Expect::Success, false) => {
            return Verdict::Fail(format!(
                "rejected; expected to load: {}",
                last_words(log).unwrap_or("no log")
            ))
        }
        _ => {}
    }
    let mut pos = 0;
    let mut pending: Vec<&str> = Vec::new();
    for (positive, msg) in &spec.msgs {
        if !*positive {
            pending.push(msg);
            continue;
        }
        let Some(at) = log[pos..].find(msg.as_str()) else {
            let what = if pos == 0 {
                "the verifier log lacks".to_string()
            } else {
                "after the previous __msg, the verifier log lacks".to_string()
            };
            return Verdict::Fail(format!(
                "{what} {msg:?} (last line: {})",
                last_words(log).unwrap_or("no log")
            ));
        };
        if let Some(bad) = pending.iter().find(|n| log[pos..pos + at].contains(**n)) {
            return Verdict::Fail(format!("the verifier log has {bad:?} (__not_msg)"));
        }
        pending.clear();
        pos += at + msg.len();
    }
    if let Some(bad) = pending.iter().find(|n| log[pos..].contains(**n)) {
        return Verdict::Fail(format!("the verifier log has {bad:?} (__not_msg)"));
    }
    Verdict::Pass
}

/// What made the load fail, in one line: the verifier's last words (its log's last line but
/// the instruction count) or else libbpf's last complaint.
fn last_words(log: &str) -> Option<&str> {
    const END: &str = "-- END PROG LOAD LOG --";
    let useful = |l: &&str| !l.is_empty() && !l.starts_with("processed ");
    if let Some(end) = log.rfind(END) {
        let begin = log[..end].rfind("-- BEGIN PROG LOAD LOG --").unwrap_or(0);
        let block = &log[begin..end];
        // Newer verifiers explain a rejection after it ("Verification failed: ...", source
        // and instruction context, a suggestion): the rejection itself comes before.
        let block = block
            .find("\nVerification failed:")
            .map_or(block, |cut| &block[..cut]);
        return block.lines().rev().map(str::trim).find(useful);
    }
    log.lines()
        .rev()
        .map(|l| l.trim().trim_start_matches("libbpf: "))
        .filter(|l| !l.starts_with("failed to load object"))
        .find(useful)
}

/// One program's result, as the guest prints it and the host reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgResult {
    pub name: String,
    pub verdict: Verdict,
    /// Verifier log lines worth showing (the end of the log of a failure).
    pub log: Vec<String>,
}

impl ProgResult {
    /// The lines the guest prints.
    pub fn lines(&self) -> Vec<String> {
        let reason = match &self.verdict {
            Verdict::Pass => "",
            Verdict::Fail(r) | Verdict::Skip(r) => r,
        };
        let mut out = vec![format!(
            "{LINE}\t{}\t{}\t{}",
            self.name,
            self.verdict.word(),
            one_line(reason)
        )];
        out.extend(
            self.log
                .iter()
                .map(|l| format!("{LOG_LINE}\t{}\t{}", self.name, one_line(l))),
        );
        out
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\t'], " ")
}

/// The programs' results in `stdout`, in order; lines of other kinds are left alone.
pub fn parse_results(stdout: &str) -> Vec<ProgResult> {
    let mut out: Vec<ProgResult> = Vec::new();
    for line in stdout.lines() {
        let mut f = line.splitn(4, '\t');
        match (f.next(), f.next(), f.next(), f.next()) {
            (Some(LINE), Some(name), Some(word), reason) => {
                let reason = reason.unwrap_or("").to_string();
                let verdict = match word {
                    "PASS" => Verdict::Pass,
                    "SKIP" => Verdict::Skip(reason),
                    _ => Verdict::Fail(reason),
                };
                out.push(ProgResult {
                    name: name.to_string(),
                    verdict,
                    log: Vec::new(),
                });
            }
            (Some(LOG_LINE), Some(name), Some(first), rest) => {
                if let Some(r) = out.iter_mut().rev().find(|r| r.name == name) {
                    let text = match rest {
                        Some(rest) => format!("{first}\t{rest}"),
                        None => first.to_string(),
                    };
                    r.log.push(text);
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn specs_from_tags_in_counter_order() {
        let s = parse_spec(
            "p",
            &tags(&[
                "comment:12:test_expect_msg=second",
                "comment:10:test_expect_failure",
                "comment:11:test_expect_msg=first",
                "arg:ctx",
            ]),
        );
        assert_eq!(s.expect, Expect::Failure);
        assert_eq!(
            s.msgs,
            [(true, "first".to_string()), (true, "second".to_string())]
        );
        assert_eq!(s.skip, None);
        // Untagged: expected to load. Older tags without a counter keep BTF order.
        let s = parse_spec("q", &[]);
        assert_eq!((s.expect, s.msgs.len()), (Expect::Success, 0));
        let s = parse_spec(
            "r",
            &tags(&["comment:test_expect_msg=a=b", "comment:test_expect_msg=c"]),
        );
        assert_eq!(s.msgs, [(true, "a=b".to_string()), (true, "c".to_string())]);
    }

    #[test]
    fn unsupported_annotations_and_other_arches_skip() {
        let s = parse_spec("p", &tags(&["comment:1:test_retval=0"]));
        assert!(s.skip.unwrap().contains("test_retval=0"));
        let s = parse_spec("p", &tags(&["comment:1:test_arch=ARM64"]));
        assert!(s.skip.unwrap().contains("ARM64"));
        let s = parse_spec(
            "p",
            &tags(&["comment:1:test_arch=ARM64", "comment:2:test_arch=X86_64"]),
        );
        assert_eq!(s.skip, None);
        let s = parse_spec(
            "p",
            &tags(&["comment:1:test_auxiliary", "comment:2:test_log_level=2"]),
        );
        assert!(s.auxiliary);
        assert_eq!(s.log_level, Some(2));
    }

    #[test]
    fn judges_loads_and_messages() {
        let fail = parse_spec(
            "p",
            &tags(&[
                "comment:1:test_expect_failure",
                "comment:2:test_expect_msg=R3 is not a const",
            ]),
        );
        let log = "libbpf: prog 'p': -- BEGIN PROG LOAD LOG --\n0: R1=ctx()\n1: call kfunc\n\
                   R3 is not a const\nprocessed 4 insns\n-- END PROG LOAD LOG --\n\
                   libbpf: failed to load object 'o'\n";
        assert_eq!(judge(&fail, false, log), Verdict::Pass);
        assert!(matches!(judge(&fail, true, ""), Verdict::Fail(r) if r.contains("accepted")));
        let other = log.replace("R3", "R2");
        let Verdict::Fail(why) = judge(&fail, false, &other) else {
            panic!("a different message must fail");
        };
        assert!(why.contains("lacks \"R3 is not a const\""), "{why}");
        assert!(why.contains("last line: R2 is not a const"), "{why}");
        let Verdict::Fail(why) = judge(
            &fail,
            false,
            "libbpf: extern 'k' not found\nlibbpf: failed to load object 'o'\n",
        ) else {
            panic!("no verifier log must fail");
        };
        assert!(why.contains("last line: extern 'k' not found"), "{why}");
        let explained = log.replace(
            "processed 4 insns\n",
            "\nVerification failed: bounds: the access is outside\n  Suggestion:\n    \
             Add a check.\nprocessed 4 insns\n",
        );
        let ok = parse_spec("q", &[]);
        let Verdict::Fail(why) = judge(&ok, false, &explained) else {
            panic!("a rejection must fail a __success program");
        };
        assert!(why.ends_with("R3 is not a const"), "{why}");

        let ok = parse_spec("q", &[]);
        assert_eq!(judge(&ok, true, ""), Verdict::Pass);
        assert!(matches!(judge(&ok, false, "x\ninvalid access\n"),
            Verdict::Fail(r) if r.contains("invalid access")));
    }

    #[test]
    fn messages_in_order_and_not_msg_between() {
        let spec = parse_spec(
            "p",
            &tags(&[
                "comment:1:test_expect_failure",
                "comment:2:test_expect_msg=a",
                "comment:3:test_expect_not_msg=x",
                "comment:4:test_expect_msg=b",
            ]),
        );
        assert_eq!(judge(&spec, false, "a y b x"), Verdict::Pass);
        assert!(matches!(judge(&spec, false, "a x b"), Verdict::Fail(r) if r.contains("\"x\"")));
        assert!(matches!(judge(&spec, false, "b a"), Verdict::Fail(r) if r.contains("previous")));
    }

    #[test]
    fn result_lines_round_trip() {
        let results = [
            ProgResult {
                name: "a".into(),
                verdict: Verdict::Pass,
                log: vec![],
            },
            ProgResult {
                name: "b".into(),
                verdict: Verdict::Fail("lacks \"x\"\n(tab\there)".into()),
                log: vec!["0: r1 = 1".into(), "R3 is not a const".into()],
            },
            ProgResult {
                name: "c".into(),
                verdict: Verdict::Skip("why".into()),
                log: vec![],
            },
        ];
        let text: String = ["setup line".to_string()]
            .into_iter()
            .chain(results.iter().flat_map(ProgResult::lines))
            .map(|l| l + "\n")
            .collect();
        let back = parse_results(&text);
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], results[0]);
        assert_eq!(
            back[1].verdict,
            Verdict::Fail("lacks \"x\" (tab here)".into())
        );
        assert_eq!(back[1].log, results[1].log);
        assert_eq!(back[2], results[2]);
    }
}
