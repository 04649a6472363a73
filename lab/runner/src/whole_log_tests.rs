use super::*;
use crate::markers::{marker, POWEROFF, SETUP};

const WARN: &str = "WARNING: CPU: 0 PID: 1 at mm/memory.c:42 f+0x1/0x2";
const ONE: Guest<'static> = Guest {
    prefix: "",
    log_name: "serial.log",
};

/// A log of a run of two cases; `at` puts a WARNING into one place: "boot", "setup", "in1"
/// (inside the first case), "between", "after" (after the last case, before the power
/// off), "poweroff", or "" for none.
fn log(at: &str) -> String {
    let mut lines = vec!["[    0.000000] Linux version 7.3.0".to_string()];
    let warn = |lines: &mut Vec<String>, here: &str| {
        if at == here {
            lines.push(format!("[    1.000000] {WARN}"));
            lines.push("[    1.000001] Modules linked in:".to_string());
            lines.push("[    1.000002] ---[ end trace 0000000000000000 ]---".to_string());
        }
    };
    warn(&mut lines, "boot");
    lines.push("[    2.000000] famfs-lab-agent: ready".into());
    lines.push(format!("[    2.100000] {SETUP}"));
    warn(&mut lines, "setup");
    lines.push(format!(
        "[    3.000000] {}",
        marker("begin", "smoke.memdevs", 0)
    ));
    warn(&mut lines, "in1");
    lines.push(format!(
        "[    3.500000] {}",
        marker("end", "smoke.memdevs", 0)
    ));
    warn(&mut lines, "between");
    lines.push(format!(
        "[    4.000000] {}",
        marker("begin", "smoke.regions", 1)
    ));
    lines.push(format!(
        "[    4.500000] {}",
        marker("end", "smoke.regions", 1)
    ));
    warn(&mut lines, "after");
    lines.push(format!("[    5.000000] {POWEROFF}"));
    warn(&mut lines, "poweroff");
    lines.push("[    5.100000] reboot: Power down".into());
    lines.join("\n") + "\n"
}

fn names(log: &str) -> Vec<String> {
    pseudo_cases(log, ONE, "cargo xtask lab up")
        .into_iter()
        .map(|c| c.name)
        .collect()
}

fn passing_run() -> RunReport {
    RunReport {
        kernel: "famfs-bpf".into(),
        suites: vec![SuiteReport {
            name: "smoke".into(),
            cases: vec![
                CaseReport::new("memdevs", Outcome::Pass, 1),
                CaseReport::new("regions", Outcome::Pass, 1),
            ],
        }],
        ..RunReport::default()
    }
}

#[test]
fn a_splat_at_boot_fails_a_run_whose_cases_all_passed() {
    let mut report = passing_run();
    assert!(!report.failed());
    add(
        &mut report,
        pseudo_cases(&log("boot"), ONE, "cargo xtask lab up"),
    );
    assert!(report.failed(), "a boot WARNING must fail the run");
    let lab = report.suites.last().expect("the lab suite");
    assert_eq!(lab.name, "lab");
    let boot = &lab.cases[0];
    assert_eq!((boot.name.as_str(), boot.outcome), ("boot", Outcome::Fail));
    let reason = boot.reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("warning") && reason.contains("serial.log line 2"),
        "{reason}"
    );
    // The splat's text is in the diagnostics (so in KTAP, JUnit and JSON), and the splat too.
    assert!(
        boot.diagnostics.iter().any(|l| l.contains(WARN)),
        "{:?}",
        boot.diagnostics
    );
    assert_eq!(boot.splats.len(), 1);
    assert_eq!(boot.reproduce.as_deref(), Some("cargo xtask lab up"));
    let ktap = lab_report::ktap::write(&report);
    assert!(ktap.contains("not ok 1 boot"), "{ktap}");
    assert!(ktap.contains(WARN), "{ktap}");
}

#[test]
fn each_phase_outside_the_cases_has_its_pseudo_case() {
    assert_eq!(names(&log("boot")), ["boot"]);
    assert_eq!(names(&log("setup")), ["setup"]);
    assert_eq!(names(&log("between")), ["between.smoke.memdevs"]);
    assert_eq!(names(&log("after")), ["between.smoke.regions"]);
    assert_eq!(names(&log("poweroff")), ["poweroff"]);
}

#[test]
fn splats_inside_a_case_window_are_the_cases_own() {
    // run_case reports these; the whole-log scan must not report them twice.
    assert!(names(&log("in1")).is_empty());
    assert!(names(&log("")).is_empty());
    let mut report = passing_run();
    add(&mut report, pseudo_cases(&log(""), ONE, "x"));
    assert_eq!(report.suites.len(), 1, "no lab suite without a splat");
    assert!(!report.failed());
}

#[test]
fn a_window_without_its_end_marker_runs_to_the_next_marker() {
    // A panic in a case: no end marker; everything after its begin is the case's.
    let log = format!(
        "[ 1.0] {SETUP}\n[ 2.0] {}\n[ 2.1] Kernel panic - not syncing: sysrq\n",
        marker("begin", "selftest.panic", 3)
    );
    assert!(names(&log).is_empty());
    // A lost end marker: the next case's begin ends the window, its end starts the gap.
    let log = format!(
        "[ 1.0] {}\n[ 2.0] {}\n[ 2.1] {}\n[ 2.2] {WARN}\n",
        marker("begin", "smoke.memdevs", 0),
        marker("begin", "smoke.regions", 1),
        marker("end", "smoke.regions", 1)
    );
    assert_eq!(names(&log), ["between.smoke.regions"]);
    // An end marker of another case does not close the window.
    let log = format!(
        "[ 1.0] {}\n[ 2.0] {}\n[ 2.2] {WARN}\n",
        marker("begin", "smoke.memdevs", 0),
        marker("end", "smoke.memdevs", 9)
    );
    assert!(names(&log).is_empty());
}

#[test]
fn a_guest_that_never_reached_setup_has_only_boot() {
    let log = format!("[ 0.5] {WARN}\n[ 0.6] BUG: kernel NULL pointer dereference, address: 0\n");
    let cases = pseudo_cases(&log, ONE, "x");
    assert_eq!(cases.len(), 1, "{cases:?}");
    assert_eq!(cases[0].name, "boot");
    assert_eq!(cases[0].splats.len(), 2, "both splats, one pseudo-case");
}

#[test]
fn the_serial_file_is_read_whole_and_an_unreadable_one_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("serial.log");
    std::fs::write(&path, log("setup")).expect("write");
    let got = judge_serial(&SerialLog::new(&path), ONE, "x");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].name.as_str(), got[0].outcome),
        ("setup", Outcome::Fail)
    );
    // A directory where the log should be: reading it fails, and the run with it.
    let got = judge_serial(&SerialLog::new(dir.path()), ONE, "x");
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].name.as_str(), got[0].outcome),
        ("serial_log", Outcome::Error)
    );
}

#[test]
fn a_one_guest_run_gets_the_pseudo_cases_of_its_serial_log() {
    // What run::run does once the guest is down.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("serial.log");
    std::fs::write(&path, log("boot")).expect("write");
    let mut report = passing_run();
    add_from(&mut report, &SerialLog::new(&path), "cargo xtask lab up");
    assert!(report.failed(), "a boot WARNING must fail the run");
    let lab = &report.suites[1];
    assert_eq!(
        (lab.name.as_str(), lab.cases[0].name.as_str()),
        ("lab", "boot")
    );
    std::fs::write(&path, log("in1")).expect("write");
    let mut report = passing_run();
    add_from(&mut report, &SerialLog::new(&path), "x");
    assert!(!report.failed());
}

#[test]
fn a_multi_host_guest_names_its_log() {
    let guest = Guest {
        prefix: "",
        log_name: "host1/serial.log",
    };
    let c = &pseudo_cases(&log("poweroff"), guest, "x")[0];
    let reason = c.reason.as_deref().unwrap_or_default();
    assert!(reason.contains("host1/serial.log line"), "{reason}");
    assert!(
        c.diagnostics[0].contains("host1/serial.log line"),
        "{:?}",
        c.diagnostics
    );
}
