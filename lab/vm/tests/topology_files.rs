//! Topology parsing and validation: the checked-in files load, and errors name the key and line.

use lab_vm::size::{GIB, MIB};
use lab_vm::topology::Topology;
use lab_vm::Error;

#[test]
fn default_topology_loads() {
    let t = Topology::load_named("default").expect("default.yaml must load");
    assert_eq!(t.name, "default");
    assert_eq!(t.memory.0, GIB);
    assert_eq!(t.devices.len(), 1);
    assert_eq!(t.devices[0].size.0, GIB);
    assert_eq!(t.regions.len(), 1);
    assert_eq!(t.regions[0].root_decoder(), "decoder0.0");
}

#[test]
fn two_devices_topology_loads() {
    let t = Topology::load_named("two-devices").expect("two-devices.yaml must load");
    assert_eq!(t.host_bridges[0].root_ports.len(), 2);
    assert_eq!(t.windows.len(), 2);
    let r2 = &t.regions[2];
    assert_eq!(r2.devices, ["mem0", "mem1"]);
    assert_eq!(r2.size.map(|s| s.0), Some(GIB));
    assert_eq!(r2.granularity.map(|s| s.0), Some(4096));
    assert_eq!(r2.root_decoder(), "decoder0.1");
    assert_eq!(t.regions[0].size.map(|s| s.0), Some(512 * MIB));
}

#[test]
fn two_bridges_topology_loads_and_is_refused_without_hdm_for_passthrough() {
    let t = Topology::load_named("two-bridges").expect("two-bridges.yaml must load");
    assert!(t.host_bridges[1].hdm_for_passthrough);
    assert_eq!(t.regions[1].devices, ["mem0", "mem2"]);
    let path = lab_vm::topology::topologies_dir().join("two-bridges.yaml");
    let src = std::fs::read_to_string(path).expect("readable");
    let without = src.replace("    hdm_for_passthrough: true\n", "");
    assert_ne!(without, src);
    let err = Topology::from_yaml(&without, "two-bridges.yaml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("[passthrough-decoder]"), "{err}");
}

#[test]
fn shared_2_topology_boots_two_guests_on_one_backing() {
    let t = Topology::load_named("shared-2").expect("shared-2.yaml must load");
    assert_eq!(t.hosts, 2);
    assert_eq!(Topology::load_named("default").expect("default").hosts, 1);
    // Each guest's copy names the same absolute backing file in the run directory.
    let run = std::path::Path::new("/runs/x");
    let per_host = t.for_host(run);
    let d = &per_host.devices[0];
    assert_eq!(d.backing.as_deref(), Some(run.join("mem0.raw").as_path()));
    assert_eq!(
        per_host.backing_path(d, std::path::Path::new("/runs/x/host1")),
        run.join("mem0.raw")
    );
}

#[test]
fn hosts_out_of_range_or_without_devices_are_refused() {
    for (src, want) in [
        (
            "name: t\nmemory: 1G\ncpus: 1\nhosts: 0\n",
            "hosts 0 must be in 1..=4",
        ),
        (
            "name: t\nmemory: 1G\ncpus: 1\nhosts: 5\n",
            "hosts 5 must be in 1..=4",
        ),
        ("name: t\nmemory: 1G\ncpus: 1\nhosts: 2\n", "no devices"),
    ] {
        let err = Topology::from_yaml(src, "inline").unwrap_err().to_string();
        assert!(err.contains(want), "{src:?}: {err}");
        assert!(err.contains("line 4"), "{src:?} names the line: {err}");
    }
}

#[test]
fn unknown_name_is_reported() {
    let err = Topology::load_named("no-such-topology").unwrap_err();
    assert!(matches!(err, Error::TopologyNotFound { .. }), "{err}");
    let err = Topology::load_named("../default").unwrap_err();
    assert!(matches!(err, Error::TopologyNotFound { .. }), "{err}");
}

const BASE: &str = "\
name: t
memory: 1G
cpus: 2
host_bridges:
  - id: cxl.1
    bus_nr: 12
    root_ports:
      - { id: rp0, port: 0, slot: 2 }
      - { id: rp1, port: 1, slot: 3 }
devices:
  - { id: mem0, root_port: rp0, size: 1G }
  - { id: mem1, root_port: rp1, size: 1G }
windows:
  - { targets: [cxl.1], size: 4G }
regions:
  - { name: r0, devices: [mem0] }
";

fn parse_err(src: &str) -> (Option<usize>, String) {
    match Topology::from_yaml(src, "t.yaml") {
        Err(Error::TopologyParse { line, message, .. }) => (line, message),
        other => panic!("expected a parse error, got {other:?}"),
    }
}

/// (line, key, message) of each semantic problem.
fn problems(src: &str) -> Vec<(Option<usize>, String, String)> {
    match Topology::from_yaml(src, "t.yaml") {
        Err(Error::TopologyInvalid { problems, .. }) => problems
            .into_iter()
            .map(|p| (p.line, p.key, p.message))
            .collect(),
        other => panic!("expected validation problems, got {other:?}"),
    }
}

#[test]
fn base_is_valid() {
    let t = Topology::from_yaml(BASE, "t.yaml").expect("valid");
    assert!(t.validate().is_empty());
}

#[test]
fn unknown_key_names_key_and_line() {
    let src = BASE.replace(
        "  - { id: mem1, root_port: rp1, size: 1G }",
        "  - { id: mem1, root_port: rp1, size: 1G, colour: red }",
    );
    let (line, msg) = parse_err(&src);
    assert_eq!(line, Some(12), "{msg}");
    assert!(msg.contains("colour"), "{msg}");
    let src = BASE.replace("cpus: 2", "cpus: 2\nmemroy: 1G");
    let (line, msg) = parse_err(&src);
    assert_eq!(line, Some(4), "{msg}");
    assert!(msg.contains("memroy"), "{msg}");
}

#[test]
fn bad_size_string_names_line() {
    let src = BASE.replace("size: 4G", "size: 4Q");
    let (line, msg) = parse_err(&src);
    assert_eq!(line, Some(14), "{msg}");
    assert!(
        msg.contains("4Q") && msg.contains("windows[0].size"),
        "{msg}"
    );
}

#[test]
fn dangling_root_port_names_line() {
    let src = BASE.replace("root_port: rp1", "root_port: rp9");
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(p[0].0, Some(12));
    assert_eq!(p[0].1, "devices[1].root_port");
    assert!(p[0].2.contains("rp9"), "{p:?}");
}

#[test]
fn duplicate_id_names_line() {
    let src = BASE.replace("id: mem1", "id: mem0");
    let p = problems(&src);
    assert!(
        p.iter()
            .any(|(l, k, m)| *l == Some(12) && k == "devices[1].id" && m.contains("duplicate id")),
        "{p:?}"
    );
    let src = BASE.replace("id: rp1", "id: cxl.1");
    let p = problems(&src);
    assert!(
        p.iter()
            .any(|(l, k, _)| *l == Some(9) && k == "host_bridges[0].root_ports[1].id"),
        "{p:?}"
    );
}

#[test]
fn sizes_must_be_cxl_aligned() {
    let src = BASE.replace("root_port: rp0, size: 1G", "root_port: rp0, size: 300M");
    let p = problems(&src);
    assert!(
        p.iter()
            .any(|(l, k, m)| *l == Some(11) && k == "devices[0].size" && m.contains("256M")),
        "{p:?}"
    );
    let src = BASE.replace(
        "{ name: r0, devices: [mem0] }",
        "{ name: r0, devices: [mem0], size: 100M }",
    );
    let p = problems(&src);
    assert_eq!(
        p,
        [(Some(16), "regions[0].size".to_string(), p[0].2.clone())]
    );
}

#[test]
fn window_checks() {
    let src = BASE.replace("size: 4G }", "size: 1G, interleave_granularity: 3K }");
    let p = problems(&src);
    let keys: Vec<_> = p.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert!(keys.contains(&(Some(14), "windows[0].size")), "{p:?}");
    assert!(
        keys.contains(&(Some(14), "windows[0].interleave_granularity")),
        "{p:?}"
    );
    let src = BASE.replace("targets: [cxl.1]", "targets: [cxl.1, cxl.2]");
    let p = problems(&src);
    assert!(
        p.iter()
            .any(|(l, k, m)| *l == Some(14) && k == "windows[0].targets[1]" && m.contains("cxl.2")),
        "{p:?}"
    );
}

#[test]
fn region_checks() {
    let over = BASE.replace("{ name: r0, devices: [mem0] }", "{ name: r0, devices: [mem0, mem9], window: 0 }\n  - { name: r0, devices: [mem1], window: 3 }");
    let p = problems(&over);
    let keys: Vec<_> = p.iter().map(|(l, k, _)| (*l, k.as_str())).collect();
    assert!(keys.contains(&(Some(16), "regions[0].devices[1]")), "{p:?}");
    assert!(keys.contains(&(Some(17), "regions[1].name")), "{p:?}");
    assert!(keys.contains(&(Some(17), "regions[1].window")), "{p:?}");

    let full = BASE.replace(
        "{ name: r0, devices: [mem0] }",
        "{ name: r0, devices: [mem0] }\n  - { name: r1, devices: [mem0, mem1], size: 512M }",
    );
    let p = problems(&full);
    assert!(
        p.iter()
            .any(|(l, k, m)| *l == Some(17) && k == "regions[1].size" && m.contains("free")),
        "{p:?}"
    );

    let bad_g = BASE.replace(
        "devices: [mem0] }",
        "devices: [mem0, mem1], granularity: 100 }",
    );
    let p = problems(&bad_g);
    assert!(
        p.iter().any(|(_, k, _)| k == "regions[0].granularity"),
        "{p:?}"
    );
}

#[test]
fn interleave_across_bridges_needs_devices_under_each_target() {
    let src = "\
name: t
memory: 1G
cpus: 2
host_bridges:
  - { id: hb0, bus_nr: 12, root_ports: [ { id: rp0, port: 0, slot: 2 } ] }
  - { id: hb1, bus_nr: 20, root_ports: [ { id: rp1, port: 0, slot: 3 } ] }
devices:
  - { id: mem0, root_port: rp0, size: 1G }
  - { id: mem1, root_port: rp1, size: 1G }
windows:
  - { targets: [hb0, hb1], size: 4G, interleave_granularity: 8K }
regions:
  - { name: ok, devices: [mem0, mem1], size: 1G }
  - { name: lopsided, devices: [mem0] }
";
    let p = problems(src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!((p[0].0, p[0].1.as_str()), (Some(14), "regions[1].devices"));
}

#[test]
fn overlapping_buses_are_refused() {
    // cxl.1 takes buses 12..=14 (itself and two root ports): 14 is taken.
    let src = BASE.replace(
        "devices:\n",
        "  - { id: cxl.2, bus_nr: 14, root_ports: [ { id: rp2, port: 0, slot: 4 } ] }\ndevices:\n",
    );
    let p = problems(&src);
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (p[0].0, p[0].1.as_str()),
        (Some(10), "host_bridges[1].bus_nr")
    );
}
