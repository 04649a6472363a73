//! The decoder model: every rule refuses what it must (with its line and tag), the issue's
//! topology is refused until its single-root-port bridge gets HDM decoders, and random
//! topologies are either accepted or refused by a named rule.

use lab_vm::rules::{rule_of, RULES};
use lab_vm::topology::Topology;
use lab_vm::topology_gen::random_topology;
use lab_vm::Error;

/// (line, key, message) of each problem, or an empty list when the topology is accepted.
fn problems(src: &str) -> Vec<(Option<usize>, String, String)> {
    match Topology::from_yaml(src, "t.yaml") {
        Ok(_) => Vec::new(),
        Err(Error::TopologyInvalid { problems, .. }) => problems
            .into_iter()
            .map(|p| (p.line, p.key, p.message))
            .collect(),
        Err(e) => panic!("expected validation, got {e}"),
    }
}

fn rules(src: &str) -> Vec<&'static str> {
    problems(src)
        .iter()
        .map(|(_, _, m)| rule_of(m).unwrap_or_else(|| panic!("no rule in {m:?}")))
        .collect()
}

/// Three devices on two host bridges; cxl.2 has a single root port whose device serves two
/// regions, one of them interleaved across both bridges (the topology of issue 19).
const ISSUE: &str = "\
name: issue-19
memory: 1G
cpus: 1
host_bridges:
  - id: cxl.1
    bus_nr: 12
    root_ports:
      - { id: rp0, port: 0, slot: 2 }
      - { id: rp1, port: 1, slot: 3 }
  - id: cxl.2
    bus_nr: 20
    root_ports:
      - { id: rp2, port: 0, slot: 4 }
devices:
  - { id: mem0, root_port: rp0, size: 512M }
  - { id: mem1, root_port: rp1, size: 512M }
  - { id: mem2, root_port: rp2, size: 512M }
windows:
  - { targets: [cxl.2], size: 1G, interleave_granularity: 4K }
  - { targets: [cxl.1, cxl.2], size: 2G, interleave_granularity: 4K }
regions:
  - { name: r1, devices: [mem2], size: 256M }
  - { name: r2, devices: [mem0, mem2], size: 512M, window: 1 }
";

#[test]
fn a_single_root_port_bridge_serving_two_regions_is_refused_with_the_fix() {
    let p = problems(ISSUE);
    assert_eq!(p.len(), 1, "{p:?}");
    let (line, key, msg) = &p[0];
    assert_eq!(*line, Some(23), "{p:?}");
    assert_eq!(key, "regions[1].devices[1]");
    assert!(
        msg.contains("host bridge cxl.2 has one root port")
            && msg.contains("hdm_for_passthrough: true")
            && msg.contains("r1, r2"),
        "{msg}"
    );
    assert_eq!(rule_of(msg), Some("passthrough-decoder"));
}

#[test]
fn hdm_for_passthrough_makes_it_buildable_and_reaches_qemu() {
    let src = ISSUE.replace("id: cxl.2\n", "id: cxl.2\n    hdm_for_passthrough: true\n");
    let t = Topology::from_yaml(&src, "t.yaml").expect("accepted with HDM decoders on cxl.2");
    assert!(t.host_bridges[1].hdm_for_passthrough);
    let args = lab_vm::qemu_args::qemu_args(
        &t,
        None,
        std::path::Path::new("/r"),
        lab_vm::Accel::Tcg,
        &lab_vm::QemuOptions::in_run_dir(std::path::Path::new("/r")),
    );
    let args: Vec<String> = args.iter().map(|a| a.to_string_lossy().into()).collect();
    assert!(
        args.contains(&"pxb-cxl,bus_nr=20,bus=pcie.0,id=cxl.2,hdm_for_passthrough=on".into()),
        "{args:?}"
    );
    assert!(
        args.contains(&"pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1".into()),
        "{args:?}"
    );
}

#[test]
fn hdm_for_passthrough_on_a_bridge_with_two_root_ports_is_refused() {
    let src = ISSUE.replace("id: cxl.1\n", "id: cxl.1\n    hdm_for_passthrough: true\n");
    let p = problems(&src);
    assert!(
        p.iter().any(|(line, key, m)| *line == Some(6)
            && key == "host_bridges[0].hdm_for_passthrough"
            && rule_of(m) == Some("passthrough-key")),
        "{p:?}"
    );
}

/// One bridge with four root ports and four 1G devices, one window of 16G.
const WIDE: &str = "\
name: wide
memory: 1G
cpus: 1
host_bridges:
  - id: cxl.1
    bus_nr: 12
    root_ports:
      - { id: rp0, port: 0, slot: 2 }
      - { id: rp1, port: 1, slot: 3 }
      - { id: rp2, port: 2, slot: 4 }
      - { id: rp3, port: 3, slot: 5 }
  - id: cxl.2
    bus_nr: 20
    root_ports:
      - { id: rp4, port: 0, slot: 6 }
      - { id: rp5, port: 1, slot: 7 }
devices:
  - { id: mem0, root_port: rp0, size: 1G }
  - { id: mem1, root_port: rp1, size: 1G }
  - { id: mem2, root_port: rp2, size: 1G }
  - { id: mem3, root_port: rp3, size: 1G }
  - { id: mem4, root_port: rp4, size: 1G }
  - { id: mem5, root_port: rp5, size: 1G }
windows:
  - { targets: [cxl.1], size: 16G, interleave_granularity: 4K }
  - { targets: [cxl.1, cxl.2], size: 16G, interleave_granularity: 4K }
regions:
";

#[test]
fn a_wide_topology_with_good_regions_is_accepted() {
    let src = format!(
        "{WIDE}  - {{ name: a, devices: [mem0, mem1, mem2, mem3], size: 1G, granularity: 8K }}\n\
         \x20 - {{ name: b, devices: [mem0, mem4, mem1, mem5], size: 2G, window: 1 }}\n"
    );
    assert_eq!(problems(&src), Vec::new());
}

#[test]
fn devices_out_of_interleave_order_are_refused_with_the_order_that_works() {
    let src = format!("{WIDE}  - {{ name: b, devices: [mem0, mem1, mem4, mem5], window: 1 }}\n");
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].1, "regions[0].devices[1]");
    assert!(p[0].2.contains("[mem0, mem4, mem1, mem5]"), "{p:?}");
    assert_eq!(rule_of(&p[0].2), Some("interleave-order"));
}

#[test]
fn granularity_rules() {
    // Over two bridges the region takes the window's granularity.
    let src =
        format!("{WIDE}  - {{ name: b, devices: [mem0, mem4], granularity: 1K, window: 1 }}\n");
    assert_eq!(rules(&src), ["window-granularity"]);
    // The bridges decode at 16K x 2.
    let src = format!("{WIDE}  - {{ name: b, devices: [mem0, mem4], window: 1 }}\n").replace(
        "size: 16G, interleave_granularity: 4K }\nregions",
        "size: 16G, interleave_granularity: 16K }\nregions",
    );
    assert_eq!(rules(&src), ["bridge-granularity"]);
    // 4 ways x 16K is past address bit 14.
    let src =
        format!("{WIDE}  - {{ name: a, devices: [mem0, mem1, mem2, mem3], granularity: 16K }}\n");
    assert_eq!(rules(&src), ["interleave-bits"]);
    // 2 ways x 16K is not.
    let src = format!("{WIDE}  - {{ name: a, devices: [mem0, mem1], granularity: 16K }}\n");
    assert_eq!(rules(&src), Vec::<&str>::new());
}

#[test]
fn three_devices_under_one_bridge_is_not_a_power_of_two() {
    let src = format!("{WIDE}  - {{ name: a, devices: [mem0, mem1, mem2] }}\n");
    assert_eq!(rules(&src), ["region-ways"]);
}

#[test]
fn a_later_region_in_an_earlier_window_is_refused() {
    let src = format!(
        "{WIDE}  - {{ name: b, devices: [mem0, mem4], size: 512M, window: 1 }}\n\
         \x20 - {{ name: a, devices: [mem1], size: 256M }}\n"
    );
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].1, "regions[1].window");
    assert!(p[0].2.contains("host bridge cxl.1"), "{p:?}");
    assert_eq!(rule_of(&p[0].2), Some("hpa-order"));
    // The other way round is fine.
    let src = format!(
        "{WIDE}  - {{ name: a, devices: [mem1], size: 256M }}\n\
         \x20 - {{ name: b, devices: [mem0, mem4], size: 512M, window: 1 }}\n"
    );
    assert_eq!(rules(&src), Vec::<&str>::new());
}

#[test]
fn a_fifth_region_on_a_device_or_a_bridge_is_refused() {
    let mut src = WIDE.to_string();
    for i in 0..5 {
        src.push_str(&format!(
            "  - {{ name: r{i}, devices: [mem0], size: 256M }}\n"
        ));
    }
    src = src.replace("size: 1G }\n  - { id: mem1", "size: 2G }\n  - { id: mem1");
    assert_eq!(rules(&src), ["bridge-decoders", "device-decoders"]);
    let mut src = WIDE.to_string();
    for (i, d) in ["mem0", "mem1", "mem2", "mem3", "mem0"].iter().enumerate() {
        src.push_str(&format!(
            "  - {{ name: r{i}, devices: [{d}], size: 256M }}\n"
        ));
    }
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].1, "regions[4].devices[0]");
    assert_eq!(rule_of(&p[0].2), Some("bridge-decoders"));
}

#[test]
fn every_rule_has_a_reason() {
    for (id, why) in RULES {
        assert!(!id.is_empty() && !why.is_empty());
        assert_eq!(rule_of(&format!("x [{id}]")), Some(*id));
    }
    assert_eq!(rule_of("x [no-such-rule]"), None);
    assert_eq!(rule_of("no tag"), None);
}

/// The host half of the topology property: every random topology is accepted, or refused by
/// problems that each name a rule. (The guest half, that every accepted one sets up and passes
/// smoke, is `cargo xtask lab topo-fuzz`.)
#[test]
fn random_topologies_are_accepted_or_refused_by_a_rule() {
    let (mut accepted, mut refused) = (0, 0);
    for seed in 0..2000 {
        let t = random_topology(seed);
        let yaml = serde_norway::to_string(&t).expect("serializes");
        let again = Topology::parse(&yaml, "gen").expect("its YAML parses back");
        assert_eq!(again, t, "seed {seed}");
        let p = t.validate();
        if p.is_empty() {
            accepted += 1;
        } else {
            refused += 1;
            for (key, msg) in &p {
                assert!(
                    rule_of(msg).is_some(),
                    "seed {seed}: {key}: {msg} names no rule"
                );
            }
        }
    }
    assert!(
        accepted > 200 && refused > 200,
        "{accepted} accepted, {refused} refused"
    );
}

#[test]
fn a_three_bridge_window_routes_the_factor_three_apart() {
    let src = "\
name: three
memory: 1G
cpus: 1
host_bridges:
  - { id: hb1, bus_nr: 12, root_ports: [{ id: rp1, port: 0, slot: 2 }] }
  - { id: hb2, bus_nr: 20, root_ports: [{ id: rp2, port: 0, slot: 3 }] }
  - { id: hb3, bus_nr: 28, root_ports: [{ id: rp3, port: 0, slot: 4 }] }
devices:
  - { id: mem1, root_port: rp1, size: 256M }
  - { id: mem2, root_port: rp2, size: 256M }
  - { id: mem3, root_port: rp3, size: 256M }
windows:
  - { targets: [hb1, hb2, hb3], size: 768M, interleave_granularity: 16K }
regions:
  - { name: r, devices: [mem1, mem2, mem3] }
";
    // 3 ways x 16K: the bridges decode at 16K x 1 and the devices route no power-of-two bits.
    assert_eq!(rules(src), Vec::<&str>::new());
}
