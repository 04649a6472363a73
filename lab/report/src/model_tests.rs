use super::*;

#[test]
fn failure_outcomes() {
    let failing: Vec<_> = Outcome::ALL
        .into_iter()
        .filter(|o| o.is_failure())
        .collect();
    assert_eq!(
        failing,
        [
            Outcome::Fail,
            Outcome::Timeout,
            Outcome::Error,
            Outcome::Xpass
        ]
    );
}

#[test]
fn outcome_serde_is_lowercase() {
    for o in Outcome::ALL {
        let json = serde_json::to_string(&o).expect("serialise");
        assert_eq!(json, format!("\"{}\"", o.as_str()));
        let back: Outcome = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, o);
    }
    assert!(serde_json::from_str::<Outcome>("\"Pass\"").is_err());
}

fn run(outcomes: &[&[Outcome]]) -> RunReport {
    RunReport {
        run_id: "r".into(),
        kernel: "k".into(),
        kernel_hash: "h".into(),
        topology: "t".into(),
        accel: "tcg".into(),
        started_at: "2025-01-01T00:00:00Z".into(),
        duration_ms: 1,
        suites: outcomes
            .iter()
            .enumerate()
            .map(|(i, os)| SuiteReport {
                name: format!("s{i}"),
                cases: os
                    .iter()
                    .enumerate()
                    .map(|(j, &o)| CaseReport::new(format!("c{j}"), o, 10))
                    .collect(),
            })
            .collect(),
        meta: BTreeMap::new(),
    }
}

#[test]
fn counts_per_suite_and_total() {
    use Outcome::*;
    let r = run(&[
        &[Pass, Pass, Xfail, Skip],
        &[Fail, Timeout, Error, Xpass, Pass],
    ]);
    let s0 = r.suites[0].counts();
    assert_eq!((s0.pass, s0.xfail, s0.skip), (2, 1, 1));
    assert_eq!((s0.passed(), s0.failed(), s0.skipped()), (3, 0, 1));
    assert!(!r.suites[0].failed());
    assert!(r.suites[1].failed());
    let t = r.counts();
    assert_eq!(
        t,
        Counts {
            pass: 3,
            fail: 1,
            skip: 1,
            timeout: 1,
            error: 1,
            xfail: 1,
            xpass: 1
        }
    );
    assert_eq!(
        (t.passed(), t.failed(), t.skipped(), t.total()),
        (4, 4, 1, 9)
    );
    assert_eq!(r.suites[1].duration_ms(), 50);
}

#[test]
fn run_failed_only_on_failure_outcomes() {
    use Outcome::*;
    assert!(!run(&[&[Pass, Skip, Xfail], &[]]).failed());
    for bad in [Fail, Timeout, Error, Xpass] {
        assert!(run(&[&[Pass], &[Skip, bad]]).failed(), "{bad}");
    }
}

#[test]
fn json_round_trip_and_defaults() {
    let mut r = run(&[&[Outcome::Fail]]);
    r.suites[0].cases[0].reason = Some("boom".into());
    r.meta.insert("qemu".into(), "9.1".into());
    let back = RunReport::from_json(&r.to_json().expect("json")).expect("parse");
    assert_eq!(back, r);

    let minimal = r#"{"run_id":"x","kernel":"k","kernel_hash":"h","topology":"t",
        "accel":"kvm","started_at":"s","duration_ms":0,
        "suites":[{"name":"s","cases":[{"name":"c","outcome":"skip","duration_ms":3}]}]}"#;
    let m = RunReport::from_json(minimal).expect("minimal parses");
    assert_eq!(m.suites[0].cases[0], CaseReport::new("c", Outcome::Skip, 3));
    assert!(RunReport::from_json("{}").is_err());
}

#[test]
fn exit_codes_tell_failed_cases_from_a_lab_that_could_not_run() {
    assert_eq!(
        run(&[&[Outcome::Pass, Outcome::Xfail, Outcome::Skip]]).exit_code(),
        0
    );
    assert_eq!(run(&[&[Outcome::Pass, Outcome::Fail]]).exit_code(), 1);
    assert_eq!(run(&[&[Outcome::Timeout]]).exit_code(), 1);
    let mut dead = run(&[&[Outcome::Error, Outcome::Error]]);
    RunReport::set_lab_error(&mut dead.meta, "the guest never became ready");
    assert_eq!(dead.exit_code(), 2);
    // The first cause is kept.
    RunReport::set_lab_error(&mut dead.meta, "later");
    assert_eq!(dead.lab_error(), Some("the guest never became ready"));
}
