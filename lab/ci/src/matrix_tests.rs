use super::*;
use std::collections::BTreeMap;

/// The shape of ci/matrix.yaml, with known line numbers.
const BASE: &str = "\
axes:
  kernel: [stock, famfs-bpf, famfs-bpf+debug]
  ops: [famfs, famfs_maplookup, famfs_native]
  topology: [default, two-devices]
  accel: [kvm, tcg]
kernels:
  stock:
    ops: false
    suites: [smoke]
    timeout_minutes: 40
  famfs-bpf:
    suites: [smoke]
    timeout_minutes: 60
  famfs-bpf+debug:
    suites: [smoke, selftest]
    timeout_minutes: 90
exclude:
  - { kernel: famfs-bpf+debug, accel: kvm }
";

fn with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "fixture has no {from:?}");
    BASE.replacen(from, to, 1)
}

fn known() -> Known {
    Known {
        kernels: vec!["famfs-bpf".into(), "stock".into()],
        fragments: vec!["base".into(), "debug".into()],
        topologies: vec!["default".into(), "two-devices".into()],
        suites: vec!["selftest".into(), "smoke".into()],
        cases: vec![],
        ops: vec![],
    }
}

fn parse(text: &str) -> Result<Matrix> {
    Matrix::parse(text, "ci/matrix.yaml", &known())
}

fn ids(m: &Matrix) -> Vec<&str> {
    m.cells().iter().map(|c| c.id.as_str()).collect()
}

/// The (line, key, message) of each problem of an invalid file.
fn problems(text: &str) -> Vec<(Option<usize>, String, String)> {
    match parse(text) {
        Err(Error::Invalid { file, problems }) => {
            assert_eq!(file, "ci/matrix.yaml");
            problems
                .into_iter()
                .map(|p| (p.line, p.key, p.message))
                .collect()
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
}

/// The one problem of an invalid file: its line, key and message.
fn problem(text: &str) -> (usize, String, String) {
    let mut ps = problems(text);
    assert_eq!(ps.len(), 1, "{ps:?}");
    let (line, key, msg) = ps.remove(0);
    (line.expect("a line"), key, msg)
}

/// A parse error's line and message.
fn parse_error(text: &str) -> (usize, String) {
    let e = parse(text).expect_err("a parse error");
    let shown = e.to_string();
    match e {
        Error::Parse {
            line: Some(line),
            message,
            ..
        } => {
            assert!(
                shown.starts_with(&format!("ci/matrix.yaml:{line}:")),
                "{shown}"
            );
            (line, message)
        }
        other => panic!("expected Parse with a line, got {other:?}"),
    }
}

// ---- expansion ----

#[test]
fn expands_to_the_product_minus_exclusions() {
    let m = parse(BASE).unwrap();
    // stock: 2 topologies x 2 accels, no ops; famfs-bpf: 3 ops x 2 x 2;
    // famfs-bpf+debug: 3 ops x 2 topologies, tcg only.
    assert_eq!(m.cells().len(), 4 + 12 + 6);
    let count = |label: &str| m.cells().iter().filter(|c| c.label == label).count();
    assert_eq!(
        (count("stock"), count("famfs-bpf"), count("famfs-bpf+debug")),
        (4, 12, 6)
    );
    assert!(m
        .cells()
        .iter()
        .filter(|c| c.label == "famfs-bpf+debug")
        .all(|c| c.accel == Accel::Tcg));
    assert!(m
        .cells()
        .iter()
        .filter(|c| c.label == "stock")
        .all(|c| c.ops.is_none()));
    assert!(m
        .cells()
        .iter()
        .filter(|c| c.label != "stock")
        .all(|c| c.ops.is_some()));
}

#[test]
fn ids_are_unique_and_made_of_the_axis_values() {
    let m = parse(BASE).unwrap();
    let all = ids(&m);
    let unique: BTreeSet<&str> = all.iter().copied().collect();
    assert_eq!(unique.len(), all.len());
    assert_eq!(all[0], "stock.default.kvm");
    assert!(all.contains(&"famfs-bpf.famfs.default.tcg"));
    assert!(all.contains(&"famfs-bpf+debug.famfs_native.two-devices.tcg"));
    assert!(!all
        .iter()
        .any(|id| id.starts_with("famfs-bpf+debug.") && id.ends_with(".kvm")));
    for c in m.cells() {
        let expect = match &c.ops {
            Some(o) => format!("{}.{o}.{}.{}", c.label, c.topology, c.accel),
            None => format!("{}.{}.{}", c.label, c.topology, c.accel),
        };
        assert_eq!(c.id, expect);
    }
}

#[test]
fn ids_do_not_depend_on_the_order_of_the_file() {
    let shuffled = "\
exclude:
  - accel: kvm
    kernel: famfs-bpf+debug
kernels:
  famfs-bpf+debug: { timeout_minutes: 90, suites: [smoke, selftest] }
  famfs-bpf: { suites: [smoke], timeout_minutes: 60 }
  stock: { suites: [smoke], ops: false, timeout_minutes: 40 }
axes:
  accel: [tcg, kvm]
  topology: [two-devices, default]
  ops: [famfs_native, famfs, famfs_maplookup]
  kernel: [famfs-bpf+debug, stock, famfs-bpf]
";
    let a = parse(BASE).unwrap();
    let b = parse(shuffled).unwrap();
    let by_id = |m: &Matrix| {
        m.cells()
            .iter()
            .map(|c| (c.id.clone(), c.clone()))
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(by_id(&a), by_id(&b));
    // ... and the order of cells follows the axes as written.
    assert_eq!(ids(&b)[0], "famfs-bpf+debug.famfs_native.two-devices.tcg");
}

#[test]
fn cells_carry_their_kernel_settings() {
    let m = parse(BASE).unwrap();
    let c = m.cell("famfs-bpf+debug.famfs.default.tcg").unwrap();
    assert_eq!(
        (c.kernel.as_str(), c.fragments.clone()),
        ("famfs-bpf", vec!["debug".to_string()])
    );
    assert_eq!(c.suites, ["smoke", "selftest"]);
    assert_eq!(c.timeout_minutes, 90);
    let s = m.cell("stock.two-devices.kvm").unwrap();
    assert_eq!(
        (s.kernel.as_str(), s.fragments.len(), s.timeout_minutes),
        ("stock", 0, 40)
    );
    assert_eq!(m.ops(), ["famfs", "famfs_maplookup", "famfs_native"]);
}

#[test]
fn exclusions_match_on_every_key_they_name() {
    let text = with(
        "  - { kernel: famfs-bpf+debug, accel: kvm }\n",
        "  - { kernel: famfs-bpf+debug, accel: kvm }\n  - { ops: famfs_native, topology: two-devices }\n  - { kernel: stock, accel: kvm }\n",
    );
    let m = parse(&text).unwrap();
    let all = ids(&m);
    assert!(!all
        .iter()
        .any(|id| id.contains(".famfs_native.two-devices.")));
    assert!(all.contains(&"famfs-bpf.famfs_native.default.kvm"));
    assert!(!all.contains(&"stock.default.kvm") && all.contains(&"stock.default.tcg"));
    // 22 - 3 (famfs_native on two-devices: famfs-bpf x2, debug x1) - 2 (stock kvm)
    assert_eq!(all.len(), 22 - 3 - 2);
}

#[test]
fn unknown_cell_lists_the_valid_ids() {
    let m = parse(BASE).unwrap();
    let e = m.cell("BAD").unwrap_err();
    let shown = e.to_string();
    assert!(
        shown.starts_with("ci/matrix.yaml has no cell \"BAD\"; the cells are:\n"),
        "{shown}"
    );
    for id in ids(&m) {
        assert!(
            shown.contains(&format!("\n  {id}")),
            "{id} missing from {shown}"
        );
    }
}

// ---- what CI gets ----

#[test]
fn github_json_has_one_object_per_cell_with_string_fields() {
    let m = parse(BASE).unwrap();
    let json = m.github_json();
    assert!(!json.contains('\n'), "GITHUB_OUTPUT takes one line");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.keys().collect::<Vec<_>>(), ["include"]);
    let include = v["include"].as_array().unwrap();
    assert_eq!(include.len(), m.cells().len());
    assert!(
        json.starts_with(
            r#"{"include":[{"id":"stock.default.kvm","kernel":"stock","fragment":"","#
        ),
        "{json}"
    );
    for item in include {
        let keys: BTreeSet<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            BTreeSet::from([
                "id", "kernel", "fragment", "ops", "topology", "accel", "suites", "timeout"
            ])
        );
        assert!(item["timeout"].is_u64());
        for k in [
            "id", "kernel", "fragment", "ops", "topology", "accel", "suites",
        ] {
            assert!(item[k].is_string(), "{k} of {item}");
        }
    }
    let debug = include
        .iter()
        .find(|i| i["id"] == "famfs-bpf+debug.famfs_maplookup.default.tcg")
        .unwrap();
    assert_eq!(
        debug,
        &serde_json::json!({
            "id": "famfs-bpf+debug.famfs_maplookup.default.tcg", "kernel": "famfs-bpf", "fragment": "debug",
            "ops": "famfs_maplookup", "topology": "default", "accel": "tcg", "suites": "smoke selftest", "timeout": 90
        })
    );
    let stock = include
        .iter()
        .find(|i| i["id"] == "stock.default.kvm")
        .unwrap();
    assert_eq!(
        (stock["ops"].as_str(), stock["fragment"].as_str()),
        (Some(""), Some(""))
    );
}

#[test]
fn kernels_json_lists_each_kernel_once() {
    let m = parse(BASE).unwrap();
    let v: serde_json::Value = serde_json::from_str(&m.kernels_json()).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"include": [
            {"label": "stock", "kernel": "stock", "fragment": ""},
            {"label": "famfs-bpf", "kernel": "famfs-bpf", "fragment": ""},
            {"label": "famfs-bpf+debug", "kernel": "famfs-bpf", "fragment": "debug"},
        ]})
    );
}

#[test]
fn a_cell_becomes_the_exact_lab_up_command() {
    let m = parse(BASE).unwrap();
    let c = m.cell("famfs-bpf+debug.famfs.two-devices.tcg").unwrap();
    assert_eq!(
        c.lab_up_args(),
        [
            "lab",
            "up",
            "--kernel",
            "famfs-bpf",
            "--fragment",
            "debug",
            "--topology",
            "two-devices",
            "--ops",
            "famfs",
            "--suite",
            "smoke",
            "--suite",
            "selftest"
        ]
    );
    assert_eq!(c.env(), [(ACCEL_ENV, "tcg".to_string())]);
    assert_eq!(
        c.shell_command(),
        "FAMFS_LAB_ACCEL=tcg cargo xtask lab up --kernel famfs-bpf --fragment debug \
         --topology two-devices --ops famfs --suite smoke --suite selftest"
    );
    let s = m.cell("stock.default.kvm").unwrap();
    assert_eq!(
        s.lab_up_args(),
        [
            "lab",
            "up",
            "--kernel",
            "stock",
            "--topology",
            "default",
            "--suite",
            "smoke"
        ]
    );
    assert_eq!(s.env(), [(ACCEL_ENV, "kvm".to_string())]);
}

#[test]
fn labels_split_into_kernel_and_fragments() {
    assert_eq!(split_label("stock"), ("stock", vec![]));
    assert_eq!(
        split_label("famfs-bpf+debug+kcsan"),
        ("famfs-bpf", vec!["debug", "kcsan"])
    );
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

// ---- errors, each with its line ----

#[test]
fn yaml_syntax_error_has_its_line() {
    let (line, msg) = parse_error(&with(
        "  topology: [default, two-devices]\n",
        "  topology: [default, two-devices\n",
    ));
    assert!((4..=5).contains(&line), "{line}: {msg}");
    let (line, _) = parse_error(&with(
        "    suites: [smoke]\n    timeout_minutes: 60",
        "    suites: [smoke]\n\ttimeout_minutes: 60",
    ));
    assert_eq!(line, 13);
}

#[test]
fn unknown_key_has_its_line() {
    let (line, msg) = parse_error(&with(
        "    timeout_minutes: 60\n",
        "    timeout_minutes: 60\n    timout: 5\n",
    ));
    assert_eq!(line, 14);
    assert!(msg.contains("unknown field `timout`"), "{msg}");
    let (line, msg) = parse_error(&with(
        "  accel: [kvm, tcg]\n",
        "  accel: [kvm, tcg]\n  arch: [x86]\n",
    ));
    assert_eq!(line, 6);
    assert!(msg.contains("unknown field `arch`"), "{msg}");
}

#[test]
fn missing_key_has_the_line_of_its_mapping() {
    let (line, msg) = parse_error(&with("    timeout_minutes: 60\n", ""));
    assert_eq!(line, 12);
    assert!(msg.contains("missing field `timeout_minutes`"), "{msg}");
}

#[test]
fn wrong_type_has_its_line() {
    let (line, msg) = parse_error(&with("timeout_minutes: 90", "timeout_minutes: soon"));
    assert_eq!(line, 16);
    assert!(msg.contains("invalid type"), "{msg}");
    let (line, msg) = parse_error(&with("    ops: false\n", "    ops: [famfs]\n"));
    assert_eq!(line, 8);
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn unknown_accelerator_has_its_line() {
    let (line, msg) = parse_error(&with("  accel: [kvm, tcg]", "  accel: [kvm, hvf]"));
    assert_eq!(line, 5);
    assert!(msg.contains("unknown variant `hvf`"), "{msg}");
}

#[test]
fn duplicate_kernel_entry_has_the_second_line() {
    let (line, msg) = parse_error(&with(
        "  famfs-bpf+debug:\n",
        "  stock:\n    suites: [smoke]\n    timeout_minutes: 1\n  famfs-bpf+debug:\n",
    ));
    assert_eq!(line, 15);
    assert!(msg.contains("duplicate key \"stock\""), "{msg}");
}

#[test]
fn empty_or_repeated_axis_values_are_problems() {
    // (With no ops, the debug kernel has no cells and its exclusion matches nothing.)
    let ps = problems(&with(
        "  ops: [famfs, famfs_maplookup, famfs_native]",
        "  ops: []",
    ));
    assert_eq!((ps[0].0, ps[0].1.as_str()), (Some(3), "axes.ops"));
    assert!(ps[0].2.contains("empty"), "{}", ps[0].2);
    let (line, key, msg) = problem(&with(
        "  topology: [default, two-devices]",
        "  topology:\n    - default\n    - default",
    ));
    assert_eq!((line, key.as_str()), (6, "axes.topology[1]"));
    assert!(msg.contains("listed twice"), "{msg}");
}

#[test]
fn names_with_separators_are_problems() {
    let (line, key, msg) = problem(&with(
        "  ops: [famfs, famfs_maplookup, famfs_native]",
        "  ops: [famfs, famfs.v2, famfs_native]",
    ));
    assert_eq!((line, key.as_str()), (3, "axes.ops[1]"));
    assert!(msg.contains("\"famfs.v2\""), "{msg}");
    let (_, key, msg) = problem(&with(
        "  topology: [default, two-devices]",
        "  topology: [default, lab/topologies/x.yaml]",
    ));
    assert_eq!(key, "axes.topology[1]");
    assert!(msg.contains("not a path"), "{msg}");
}

#[test]
fn unknown_kernels_fragments_and_topologies_are_problems() {
    let text = with(
        "  kernel: [stock, famfs-bpf, famfs-bpf+debug]",
        "  kernel: [stock, famfs-bfp, famfs-bpf+dbg]",
    )
    .replace("  famfs-bpf:\n", "  famfs-bfp:\n")
    .replace("  famfs-bpf+debug:\n", "  famfs-bpf+dbg:\n")
    .replace("famfs-bpf+debug, accel", "famfs-bpf+dbg, accel");
    let ps = problems(&text);
    assert_eq!(ps.len(), 2, "{ps:?}");
    assert_eq!((ps[0].0, ps[0].1.as_str()), (Some(2), "axes.kernel[1]"));
    assert!(
        ps[0].2.contains("no kernel \"famfs-bfp\" in kernels/"),
        "{}",
        ps[0].2
    );
    assert_eq!(ps[1].1, "axes.kernel[2]");
    assert!(ps[1].2.contains("no fragment \"dbg\""), "{}", ps[1].2);
    let (line, key, msg) = problem(&with(
        "  topology: [default, two-devices]",
        "  topology: [default, three-devices]",
    ));
    assert_eq!((line, key.as_str()), (4, "axes.topology[1]"));
    assert!(msg.contains("no topology \"three-devices\""), "{msg}");
    // With nothing known, names are not checked.
    assert!(Matrix::parse(&text, "m", &Known::default()).is_ok());
}

#[test]
fn kernels_entries_must_match_the_kernel_axis() {
    let (line, key, msg) = problem(
        &with(
            "  kernel: [stock, famfs-bpf, famfs-bpf+debug]",
            "  kernel: [stock, famfs-bpf]",
        )
        .replace(
            "  - { kernel: famfs-bpf+debug, accel: kvm }\n",
            "  - { kernel: stock, accel: kvm }\n",
        ),
    );
    // A mapping's line is that of its value: the entry's first key.
    assert_eq!((line, key.as_str()), (15, "kernels.famfs-bpf+debug"));
    assert!(msg.contains("not a value of axes.kernel"), "{msg}");
    let ps = problems(&with(
        "  stock:\n    ops: false\n    suites: [smoke]\n    timeout_minutes: 40\n",
        "",
    ));
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!((ps[0].0, ps[0].1.as_str()), (Some(2), "axes.kernel[0]"));
    assert!(
        ps[0].2.contains("\"stock\" has no entry under `kernels:`"),
        "{}",
        ps[0].2
    );
}

#[test]
fn suites_and_timeouts_are_checked() {
    let (line, key, msg) = problem(&with(
        "    suites: [smoke]\n    timeout_minutes: 40",
        "    suites: []\n    timeout_minutes: 40",
    ));
    assert_eq!((line, key.as_str()), (9, "kernels.stock.suites"));
    assert!(msg.contains("at least one suite"), "{msg}");
    let (line, key, msg) = problem(&with(
        "    suites: [smoke, selftest]",
        "    suites: [smoke, famfs]",
    ));
    assert_eq!(
        (line, key.as_str()),
        (15, "kernels.famfs-bpf+debug.suites[1]")
    );
    assert!(msg.contains("no suite \"famfs\""), "{msg}");
    let (_, key, msg) = problem(&with(
        "    suites: [smoke, selftest]",
        "    suites: [smoke, smoke]",
    ));
    assert_eq!(key, "kernels.famfs-bpf+debug.suites[1]");
    assert!(msg.contains("listed twice"), "{msg}");
    let (line, key, msg) = problem(&with("timeout_minutes: 60", "timeout_minutes: 0"));
    assert_eq!(
        (line, key.as_str()),
        (13, "kernels.famfs-bpf.timeout_minutes")
    );
    assert!(msg.contains("between 1 and 360"), "{msg}");
    let (line, _, _) = problem(&with("timeout_minutes: 90", "timeout_minutes: 361"));
    assert_eq!(line, 16);
}

#[test]
fn bad_exclusions_are_problems() {
    let (line, key, msg) = problem(&with("accel: kvm }", "accel: kvmm }"));
    assert_eq!((line, key.as_str()), (18, "exclude[0].accel"));
    assert!(
        msg.contains("\"kvmm\" is not a value of axes.accel (kvm, tcg)"),
        "{msg}"
    );
    let (line, key, msg) = problem(&format!("{BASE}  - {{}}\n"));
    assert_eq!((line, key.as_str()), (19, "exclude[1]"));
    assert!(msg.contains("empty"), "{msg}");
    // stock has no ops axis: a rule naming ops for it can match nothing.
    let (line, key, msg) = problem(&format!("{BASE}  - kernel: stock\n    ops: famfs\n"));
    assert_eq!((line, key.as_str()), (19, "exclude[1]"));
    assert!(msg.contains("excludes no cell"), "{msg}");
    let (line, key, msg) = problem(&with(
        "  - { kernel: famfs-bpf+debug, accel: kvm }",
        "  - { topology: default }\n  - { topology: two-devices }",
    ));
    assert_eq!((line, key.as_str()), (18, "exclude"));
    assert!(msg.contains("no cell"), "{msg}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = with("  ops: [famfs, famfs_maplookup, famfs_native]", "  ops: []")
        .replace("timeout_minutes: 60", "timeout_minutes: 0")
        .replace("accel: kvm }", "accel: arm }");
    let e = parse(&text).unwrap_err();
    assert_eq!(e.lines(), [3, 13, 18]);
    let shown = e.to_string();
    assert_eq!(shown.lines().count(), 3, "{shown}");
    assert!(
        shown.lines().all(|l| l.starts_with("ci/matrix.yaml:")),
        "{shown}"
    );
}

#[test]
fn unreadable_file_names_its_path() {
    let e = Matrix::load(Path::new("/nonexistent/matrix.yaml"), &Known::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("cannot read /nonexistent/matrix.yaml: "),
        "{e}"
    );
}

// ---- the repository's own matrix ----

fn repo_root() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn repo_known() -> Known {
    let mut k = Known::from_repo(&repo_root()).unwrap();
    k.suites = lab_suite::catalog::SUITES
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    k
}

#[test]
fn the_repository_matrix_is_valid_and_has_the_planned_cells() {
    let known = repo_known();
    assert!(
        known.kernels.contains(&"stock".to_string())
            && known.kernels.contains(&"famfs-bpf".to_string())
    );
    assert!(known.fragments.contains(&"debug".to_string()));
    assert!(known.topologies.contains(&"two-devices".to_string()));
    let m = Matrix::load(&repo_root().join(MATRIX_FILE), &known).unwrap_or_else(|e| panic!("{e}"));
    let all = ids(&m);
    // stock: one cell per one-guest topology x accel; famfs-bpf: every ops x topology
    // x accel; the debug kernel on TCG and one-guest topologies only.
    assert_eq!(all.len(), 4 + 18 + 6, "{all:#?}");
    for id in [
        "stock.default.kvm",
        "stock.two-devices.tcg",
        "famfs-bpf.famfs.default.tcg",
        "famfs-bpf+debug.famfs_native.two-devices.tcg",
    ] {
        assert!(all.contains(&id), "{id} missing: {all:#?}");
    }
    assert!(m
        .cells()
        .iter()
        .filter(|c| c.label == "stock")
        .all(|c| c.suites == ["smoke"] && c.ops.is_none()));
    assert!(m
        .cells()
        .iter()
        .filter(|c| c.fragments == ["debug"])
        .all(|c| c.accel == Accel::Tcg));
    // Two guests run the multi-host suite, one guest the kernel's suites.
    for c in m.cells() {
        if c.topology == "shared-2" {
            assert_eq!(c.suites, ["shared"], "{}", c.id);
        } else {
            assert!(!c.suites.contains(&"shared".to_string()), "{}", c.id);
        }
    }
    // stress and fuzz run on the nightly schedule, on the debug kernel under TCG, and in no
    // push or pull-request cell.
    for c in m.cells() {
        assert_eq!(c.schedule, Schedule::Push, "{}", c.id);
        for long in ["stress", "fuzz"] {
            assert!(
                !c.suites.contains(&long.to_string()),
                "{} runs {long}",
                c.id
            );
        }
    }
    let nightly = m.cells_of(Schedule::Nightly);
    assert_eq!(nightly.len(), 1, "{nightly:#?}");
    let n = &nightly[0];
    assert_eq!(n.id, "famfs-bpf+debug.famfs.default.tcg.nightly");
    assert_eq!(
        (n.label.as_str(), n.accel, n.schedule),
        ("famfs-bpf+debug", Accel::Tcg, Schedule::Nightly)
    );
    assert_eq!(n.suites, ["stress", "fuzz"]);
    assert!(n.timeout_minutes <= MAX_TIMEOUT_MINUTES);
    assert!(!m.github_json().contains("nightly"));
}

// ---- nightly cells ----

const NIGHTLY: &str = "\
nightly:
  - kernel: famfs-bpf+debug
    ops: famfs
    topology: default
    accel: tcg
    suites: [selftest]
    timeout_minutes: 180
";

#[test]
fn nightly_cells_are_apart_from_the_push_cells() {
    let m = parse(&format!("{BASE}{NIGHTLY}")).unwrap_or_else(|e| panic!("{e}"));
    let push = parse(BASE).unwrap();
    assert_eq!(ids(&m), ids(&push), "a nightly entry adds no push cell");
    let id = "famfs-bpf+debug.famfs.default.tcg.nightly";
    let nightly: Vec<&str> = m
        .cells_of(Schedule::Nightly)
        .iter()
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(nightly, [id]);
    assert_eq!(m.all_cells().count(), m.cells().len() + 1);
    let c = m.cell(id).unwrap();
    assert_eq!(c.schedule, Schedule::Nightly);
    assert_eq!(c.timeout_minutes, 180);
    assert_eq!(
        c.shell_command(),
        "FAMFS_LAB_ACCEL=tcg cargo xtask lab up --kernel famfs-bpf --fragment debug \
         --topology default --ops famfs --suite selftest"
    );
    // The push matrix has no nightly cell; the nightly matrix has only it.
    assert!(!m.github_json().contains(id));
    assert_eq!(m.github_json_of(Schedule::Push), m.github_json());
    let v: serde_json::Value = serde_json::from_str(&m.github_json_of(Schedule::Nightly)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"include": [{
            "id": id, "kernel": "famfs-bpf", "fragment": "debug", "ops": "famfs",
            "topology": "default", "accel": "tcg", "suites": "selftest", "timeout": 180
        }]})
    );
    let v: serde_json::Value = serde_json::from_str(&m.kernels_json_of(Schedule::Nightly)).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"include": [
            {"label": "famfs-bpf+debug", "kernel": "famfs-bpf", "fragment": "debug"},
        ]})
    );
    // The unknown-cell message lists the nightly ids too.
    assert!(m.cell("BAD").unwrap_err().to_string().contains(id));
    // The exclusions do not apply to nightly cells: the debug kernel under KVM is excluded
    // from the push cells, but a nightly entry may name it.
    let kvm = format!("{BASE}{}", NIGHTLY.replace("accel: tcg", "accel: kvm"));
    let m = parse(&kvm).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        m.cells_of(Schedule::Nightly)[0].id,
        "famfs-bpf+debug.famfs.default.kvm.nightly"
    );
}

#[test]
fn a_kernel_without_the_ops_axis_has_a_nightly_cell_without_ops() {
    let text = format!(
        "{BASE}nightly:\n  - {{ kernel: stock, topology: two-devices, accel: kvm, suites: [smoke], timeout_minutes: 30 }}\n"
    );
    let m = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    let c = &m.cells_of(Schedule::Nightly)[0];
    assert_eq!(c.id, "stock.two-devices.kvm.nightly");
    assert_eq!(c.ops, None);
}

#[test]
fn bad_nightly_entries_are_problems_with_their_line() {
    // BASE has 18 lines: the entry starts on line 20.
    let bad = |from: &str, to: &str| problems(&format!("{BASE}{}", NIGHTLY.replace(from, to)));
    let one = |from: &str, to: &str| {
        let ps = bad(from, to);
        assert_eq!(ps.len(), 1, "{from} -> {to}: {ps:?}");
        let (l, k, m) = ps.into_iter().next().unwrap();
        (l.expect("a line"), k, m)
    };
    let (l, k, m) = one("    ops: famfs\n", "");
    assert_eq!((l, k.as_str()), (20, "nightly[0]"));
    assert!(m.contains("missing `ops`"), "{m}");
    let (l, k, m) = one("    ops: famfs\n", "    ops: famfs_fast\n");
    assert_eq!((l, k.as_str()), (21, "nightly[0].ops"));
    assert!(m.contains("not a value of axes.ops"), "{m}");
    let (l, k, m) = one("kernel: famfs-bpf+debug", "kernel: famfs-bpf+kcsan");
    assert_eq!((l, k.as_str()), (20, "nightly[0].kernel"));
    assert!(m.contains("not a value of axes.kernel"), "{m}");
    let (l, k, m) = one("topology: default", "topology: shared-9");
    assert_eq!((l, k.as_str()), (22, "nightly[0].topology"));
    assert!(m.contains("not a value of axes.topology"), "{m}");
    let (l, k, m) = one("suites: [selftest]", "suites: [selftest, stress]");
    assert_eq!((l, k.as_str()), (24, "nightly[0].suites[1]"));
    assert!(m.contains("no suite \"stress\""), "{m}");
    let (_, k, m) = one("suites: [selftest]", "suites: []");
    assert_eq!(k, "nightly[0].suites");
    assert!(m.contains("at least one suite"), "{m}");
    let (l, k, m) = one("timeout_minutes: 180", "timeout_minutes: 0");
    assert_eq!((l, k.as_str()), (25, "nightly[0].timeout_minutes"));
    assert!(m.contains("between 1 and 360"), "{m}");
    let (l, k, m) = one("  - kernel: famfs-bpf+debug\n", "  - kernel: stock\n");
    assert_eq!((l, k.as_str()), (21, "nightly[0].ops"));
    assert!(m.contains("no ops axis"), "{m}");
    // Two entries for the same cell.
    let twice = format!("{BASE}{NIGHTLY}{}", NIGHTLY.replace("nightly:\n", ""));
    let (l, k, m) = problem(&twice);
    assert_eq!((l, k.as_str()), (26, "nightly[1]"));
    assert!(m.contains("a cell before it has the id"), "{m}");
    // Shape errors: unknown keys and values, with their line.
    let (l, m) = parse_error(&format!(
        "{BASE}{}",
        NIGHTLY.replace("    accel: tcg\n", "    accel: tcg\n    when: daily\n")
    ));
    assert_eq!(l, 24);
    assert!(m.contains("unknown field `when`"), "{m}");
    let (l, m) = parse_error(&format!(
        "{BASE}{}",
        NIGHTLY.replace("accel: tcg", "accel: hvf")
    ));
    assert_eq!(l, 23);
    assert!(m.contains("unknown variant `hvf`"), "{m}");
}

#[test]
fn a_topology_entry_replaces_the_kernels_suites_there() {
    let m = parse(&format!(
        "{BASE}topologies:\n  two-devices:\n    suites: [selftest]\n"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let cell = m.cell("famfs-bpf.famfs.two-devices.tcg").unwrap();
    assert_eq!(cell.suites, ["selftest"]);
    let cell = m.cell("famfs-bpf.famfs.default.tcg").unwrap();
    assert_eq!(cell.suites, ["smoke"]);
    let (line, key, msg) = problem(&format!(
        "{BASE}topologies:\n  nowhere:\n    suites: [smoke]\n"
    ));
    assert_eq!((line, key.as_str()), (21, "topologies.nowhere"), "{msg}");
    assert!(msg.contains("not a value of axes.topology"), "{msg}");
}

#[test]
fn the_workflow_runs_the_nightly_cells_on_its_schedule_only() {
    let path = repo_root().join(".github/workflows/lab.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let wf: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let on = &wf["on"];
    let cron = on["schedule"][0]["cron"].as_str().unwrap_or_default();
    assert_eq!(
        cron.split_whitespace().count(),
        5,
        "a cron schedule: {cron:?}"
    );
    assert!(on.get("push").is_some() && on.get("pull_request").is_some());
    // The matrix job asks for the nightly cells exactly when the run is the schedule's.
    let steps = wf["jobs"]["matrix"]["steps"].as_sequence().unwrap();
    let step = steps
        .iter()
        .find(|s| s["id"].as_str() == Some("matrix"))
        .expect("the matrix step");
    let nightly = step["env"]["NIGHTLY"].as_str().unwrap_or_default();
    assert!(
        nightly.contains("github.event_name == 'schedule'"),
        "{nightly}"
    );
    let run = step["run"].as_str().unwrap_or_default();
    assert!(
        run.contains("which=(--nightly)") && run.contains("ci matrix --kernels \"${which[@]}\""),
        "{run}"
    );
}

#[test]
fn the_workflow_bisects_a_case_by_hand_instead_of_the_matrix() {
    let path = repo_root().join(".github/workflows/lab.yml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    let wf: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    let inputs = &wf["on"]["workflow_dispatch"]["inputs"];
    for input in ["bisect_case", "bisect_good", "bisect_bad"] {
        assert!(
            inputs.get(input).is_some(),
            "workflow_dispatch input {input}"
        );
    }
    let job = &wf["jobs"]["bisect"];
    let cond = job["if"].as_str().unwrap_or_default();
    assert!(
        cond.contains("workflow_dispatch") && cond.contains("inputs.bisect_case != ''"),
        "{cond}"
    );
    let matrix_if = wf["jobs"]["matrix"]["if"].as_str().unwrap_or_default();
    assert!(
        matrix_if.contains("inputs.bisect_case == ''"),
        "{matrix_if}"
    );
    let steps = job["steps"].as_sequence().unwrap();
    let run = steps
        .iter()
        .find(|s| s["name"].as_str() == Some("Bisect"))
        .and_then(|s| s["run"].as_str())
        .unwrap_or_default();
    assert!(
        run.contains("lab bisect --kernel famfs-bpf --series --case \"$CASE\"")
            && run.contains("--good \"$GOOD\"")
            && run.contains("--bad \"$BAD\""),
        "{run}"
    );
}
