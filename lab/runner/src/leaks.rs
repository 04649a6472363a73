//! Memory leaks over a run, on kernels built with CONFIG_DEBUG_KMEMLEAK (the debug fragment).
//!
//! After the guest's setup the runner scans and clears kmemleak's list, so what boot and setup
//! left behind is not ours to report; after the last case it scans twice, [`MIN_AGE`] apart
//! (kmemleak reports an object only once it has been unreferenced that long), and every
//! `unreferenced object` it lists fails the pseudo-case `lab.kmemleak` (suite
//! [`crate::whole_log::SUITE`]) with its backtrace.

use lab_agent_proto::{AgentClient, ExecRequest};
use lab_report::{CaseReport, Outcome};
use std::time::Duration;

/// kmemleak's control and report file (debugfs).
pub const KMEMLEAK: &str = "/sys/kernel/debug/kmemleak";
/// The age below which kmemleak does not report an object (its `jiffies_min_age`, 5 s).
pub const MIN_AGE: Duration = Duration::from_secs(6);
/// The pseudo-case's name in suite `lab`.
pub const CASE: &str = "kmemleak";
/// Exit status of the guest command when the kernel has no kmemleak.
const ABSENT: i32 = 3;

/// One leak kmemleak reported: its header and backtrace lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leak {
    pub lines: Vec<String>,
}

/// The leaks of a kmemleak report: each block starts with `unreferenced object`.
pub fn parse(text: &str) -> Vec<Leak> {
    let mut leaks: Vec<Leak> = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("unreferenced object") {
            leaks.push(Leak {
                lines: vec![line.trim_end().to_string()],
            });
        } else if let Some(last) = leaks.last_mut() {
            if !line.trim().is_empty() {
                last.lines.push(line.trim_end().to_string());
            }
        }
    }
    leaks
}

/// The pseudo-case for the leaks found (none: a pass).
pub fn case_of(leaks: &[Leak], reproduce: &str) -> CaseReport {
    if leaks.is_empty() {
        let mut c = CaseReport::new(CASE, Outcome::Pass, 0);
        c.reason = Some("kmemleak: no unreferenced object after the cases".into());
        return c;
    }
    let mut c = CaseReport::new(CASE, Outcome::Fail, 0);
    let first = leaks[0].lines.first().cloned().unwrap_or_default();
    c.reason = Some(format!(
        "kmemleak: {} unreferenced object(s) after the cases, the first: {first}",
        leaks.len()
    ));
    c.diagnostics = leaks.iter().flat_map(|l| l.lines.clone()).collect();
    c.reproduce = Some(reproduce.to_string());
    c
}

fn sh(agent: &AgentClient, script: &str, timeout: Duration) -> anyhow::Result<(i32, String)> {
    let r = agent.exec(
        ExecRequest::new(["sh", "-c", script]).timeout(timeout),
        timeout + Duration::from_secs(10),
    )?;
    let code = match r.status {
        lab_agent_proto::ExitStatus::Exited(c) => c,
        _ => -1,
    };
    Ok((code, format!("{:?}: {}{}", r.status, r.stdout, r.stderr)))
}

/// After setup: forget what boot and setup leaked. False when the kernel has no kmemleak.
pub fn clear(agent: &AgentClient) -> bool {
    let script = format!(
        "test -w {KMEMLEAK} || exit {ABSENT}; echo scan > {KMEMLEAK} && echo clear > {KMEMLEAK}"
    );
    match sh(agent, &script, Duration::from_secs(120)) {
        Ok((0, _)) => true,
        Ok((ABSENT, _)) => false,
        Ok((code, out)) => {
            eprintln!("famfs-lab: kmemleak clear failed ({code}): {out}");
            false
        }
        Err(e) => {
            eprintln!("famfs-lab: kmemleak clear: {e:#}");
            false
        }
    }
}

/// After the cases: the pseudo-case `lab.kmemleak` (an ERROR when the scan itself fails).
pub fn check(agent: &AgentClient, reproduce: &str) -> CaseReport {
    let wait = MIN_AGE.as_secs();
    let script = format!(
        "echo scan > {KMEMLEAK} && sleep {wait} && echo scan > {KMEMLEAK} && cat {KMEMLEAK}"
    );
    match sh(agent, &script, Duration::from_secs(300)) {
        Ok((0, out)) => case_of(&parse(&out), reproduce),
        Ok((ABSENT, _)) => scan_error("kmemleak went away during the run".into()),
        Ok((code, out)) => scan_error(format!("the kmemleak scan exited {code}: {out}")),
        Err(e) => scan_error(format!("the kmemleak scan: {e:#}")),
    }
}

fn scan_error(why: String) -> CaseReport {
    let mut c = CaseReport::new(CASE, Outcome::Error, 0);
    c.reason = Some(why);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPORT: &str = "\
unreferenced object 0xffff888004a1c000 (size 256):
  comm \"famfs-lab-cases\", pid 757, jiffies 4294893296
  hex dump (first 32 bytes):
    00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  ................
  backtrace (crc 3a1f1c5e):
    __kmalloc_noprof+0x1b0/0x3c0
    fuse_dax_fmap_open+0x9d/0x2a0
unreferenced object 0xffff888004a1d000 (size 64):
  comm \"kworker/0:1\", pid 12, jiffies 4294893300
  backtrace (crc 11):
    kmemdup_noprof+0x20/0x50
";

    #[test]
    fn each_unreferenced_object_is_a_leak_with_its_backtrace() {
        let leaks = parse(REPORT);
        assert_eq!(leaks.len(), 2);
        assert!(leaks[0].lines[0].contains("(size 256)"));
        assert!(leaks[0]
            .lines
            .iter()
            .any(|l| l.contains("fuse_dax_fmap_open")));
        assert_eq!(parse("").len(), 0);
        assert_eq!(parse("kmemleak: 0 new suspected memory leaks\n").len(), 0);
    }

    #[test]
    fn a_leak_fails_the_pseudo_case_and_none_passes() {
        let c = case_of(&parse(REPORT), "cargo xtask lab up --fragment debug");
        assert_eq!(c.outcome, Outcome::Fail);
        let why = c.reason.unwrap_or_default();
        assert!(why.contains("2 unreferenced object(s)"), "{why}");
        assert!(c
            .diagnostics
            .iter()
            .any(|l| l.contains("fuse_dax_fmap_open")));
        assert_eq!(case_of(&[], "x").outcome, Outcome::Pass);
    }
}
