use super::*;

const SERIAL: &str = "\
[    0.000000] Linux version 7.3.4+
famfs-lab-agent: ignoring argument \"x\"
[    1.000000] famfs-lab-agent: PID 1
[    1.250000] famfs-lab-agent: ready
[    1.260000] famfs-lab: setup
[    1.300000] famfs-lab: setup: memdevs
[    1.400000] famfs-lab: setup: regions
[    1.450000] famfs-lab: setup: dax
[    1.500000] famfs-lab: begin smoke.memdevs #0
[    1.600000] famfs-lab: end smoke.memdevs #0
[    1.650000] famfs-lab: poweroff
";

fn facts(serial: &str) -> RunFacts<'_> {
    RunFacts {
        wall_ms: 3000.0,
        qemu_start_ms: 200.0,
        agent_ready_ms: 1750.0,
        serial,
    }
}

fn close(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6)
}

#[test]
fn reads_kernel_lines_and_skips_others() {
    assert_eq!(
        kernel_line("[    1.698056] Run /init as init process"),
        Some((1.698056, "Run /init as init process"))
    );
    assert_eq!(kernel_line("famfs-lab-agent: ready"), None);
    assert_eq!(kernel_line("[ x ] y"), None);
}

#[test]
fn stages_add_up_to_the_wall_time() {
    let s = stages(&facts(SERIAL)).unwrap();
    // QEMU started at 200 ms; ready at 1950 ms host = 1250 ms guest: guest 0 at host 700.
    assert!(
        close(
            &s,
            &[200.0, 500.0, 1000.0, 250.0, 50.0, 100.0, 50.0, 150.0, 700.0]
        ),
        "{s:?}"
    );
    assert!((s.iter().sum::<f64>() - 3000.0).abs() < 1e-6);
}

#[test]
fn a_missing_mark_is_named() {
    let serial = SERIAL.replace("famfs-lab: setup: dax", "something else");
    let err = stages(&facts(&serial)).unwrap_err();
    assert!(err.contains("famfs-lab: setup: dax"), "{err}");
}

#[test]
fn marks_are_taken_in_order() {
    // A case end before the setup's dax mark (another case's) does not count.
    let serial = format!("[    0.900000] famfs-lab: end other #9\n{SERIAL}");
    let s = stages(&facts(&serial)).unwrap();
    assert!((s[7] - 150.0).abs() < 1e-6, "{s:?}");
}

fn rep(rep: usize, lab: f64, peer: Option<(f64, bool)>, passed: bool) -> BootRep {
    BootRep {
        rep,
        order: vec!["lab".into()],
        lab: LabSample {
            run_id: format!("r{rep}"),
            wall_ms: lab,
            passed,
            stages_ms: vec![lab / 9.0; 9],
            stages_missing: None,
            cargo_ms: None,
        },
        peer: peer.map(|(wall_ms, ok)| PeerSample { wall_ms, ok }),
    }
}

#[test]
fn ratios_pair_repetitions_and_skip_failures() {
    let reps = vec![
        rep(0, 2000.0, Some((4000.0, true)), true),
        rep(1, 3000.0, Some((4000.0, true)), true),
        rep(2, 1000.0, Some((4000.0, false)), true),
        rep(3, 1000.0, Some((4000.0, true)), false),
    ];
    let s = summarize(&reps);
    let r = s.ratio.unwrap();
    assert_eq!((r.min, r.max), (0.5, 0.75));
    assert!((r.median - 0.625).abs() < 1e-9);
    // The failed peer boot is not a peer time; every lab run is a lab time.
    assert_eq!(s.peer_ms.unwrap().median, 4000.0);
    assert_eq!(s.lab_ms.unwrap().min, 1000.0);
    assert_eq!(s.stages.len(), STAGES.len());
    // No cargo time measured: no ratio with it.
    assert_eq!((s.cargo_ms, s.ratio_with_cargo), (None, None));
}

#[test]
fn the_ratio_with_cargo_adds_cargos_start_to_ours() {
    let mut reps = vec![
        rep(0, 1800.0, Some((3600.0, true)), true),
        rep(1, 1600.0, Some((3200.0, true)), true),
    ];
    reps[0].lab.cargo_ms = Some(180.0);
    reps[1].lab.cargo_ms = Some(160.0);
    let s = summarize(&reps);
    let r = s.ratio_with_cargo.unwrap();
    assert!(
        (r.min - 0.55).abs() < 1e-9 && (r.max - 0.55).abs() < 1e-9,
        "{r:?}"
    );
    assert_eq!(s.ratio.unwrap().median, 0.5);
    assert_eq!(s.cargo_ms.unwrap().median, 170.0);
    let b = BootBench {
        facts: facts_for_table(),
        summary: s,
        reps,
    };
    let t = render(&b, Some("vng"));
    assert!(t.contains("cargo's own start (s)"), "{t}");
    let line = t
        .lines()
        .find(|l| l.starts_with("ratio (cargo + lab) / vng"))
        .unwrap_or_else(|| panic!("no ratio with cargo:\n{t}"));
    assert!(line.contains("0.55"), "{line}");
}

fn facts_for_table() -> BootFacts {
    BootFacts {
        lab_command: "xtask lab up --case smoke.memdevs".into(),
        peer_command: Some("vng -r bzImage --disable-kvm -- true".into()),
        peer_version: Some("1.42".into()),
        accel: "tcg".into(),
        kernel_key: "k".into(),
        kernel_image: "bzImage".into(),
        host_cpus: 2,
        load_before: vec![0.5, 0.4, 0.3],
        load_after: vec![1.0, 0.5, 0.3],
        held_build_lock: true,
    }
}

#[test]
fn the_table_names_the_peer_and_every_stage() {
    let reps = vec![rep(0, 1800.0, Some((3600.0, true)), true)];
    let b = BootBench {
        facts: facts_for_table(),
        summary: summarize(&reps),
        reps,
    };
    let t = render(&b, Some("vng"));
    assert!(t.contains("ratio lab / vng"), "{t}");
    assert!(t.contains("0.50"), "{t}");
    for s in STAGES {
        assert!(t.contains(s), "{s} missing:\n{t}");
    }
    let json = serde_json::to_string(&b).unwrap();
    let back: BootBench = serde_json::from_str(&json).unwrap();
    assert_eq!(back, b, "{json}");
    let alone = render(&b, None);
    assert!(
        !alone.contains("ratio lab") && !alone.contains("order"),
        "{alone}"
    );
    // Nothing measured, no row.
    assert!(!t.contains("cargo's own start"), "{t}");
}

#[test]
fn loadavg_has_three_numbers() {
    assert_eq!(
        parse_loadavg("0.52 0.58 0.59 1/123 4567\n"),
        vec![0.52, 0.58, 0.59]
    );
}
