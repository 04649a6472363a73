//! The workspace's layers, read from the manifests (`cargo metadata --no-deps`): which crates run
//! on the host, which in the guest, which both share, and who may depend on whom. ARCHITECTURE.md
//! states the same invariants; this test fails naming the arrow that breaks one.

use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

/// The guest binaries: nothing may depend on them.
const GUEST_BINARIES: &[&str] = &["famfs-lab-cases", "famfs-lab-agent"];
/// Crates that run in the guest (binaries and the server they start).
const GUEST: &[&str] = &["famfs-lab-cases", "famfs-lab-agent", "famfs-fused"];
/// Crates both sides use: plain data and pure functions, no host or guest machinery.
const SHARED: &[&str] = &[
    "lab-suite",
    "lab-agent-proto",
    "lab-yaml-locate",
    "famfs-fmap",
    "famfs-shadow",
];

/// Workspace crate -> the workspace crates it depends on (any kind: normal, dev, build).
fn workspace_deps() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata's JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: Vec<String> = packages
        .iter()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d["name"].as_str())
                .filter(|d| names.iter().any(|n| n == d))
                .map(String::from)
                .collect();
            (p["name"].as_str().unwrap_or_default().to_string(), deps)
        })
        .collect()
}

#[test]
fn nothing_depends_on_a_guest_binary() {
    for (krate, deps) in workspace_deps() {
        if let Some(d) = deps.iter().find(|d| GUEST_BINARIES.contains(&d.as_str())) {
            panic!(
                "{krate} depends on the guest binary {d}: move what it needs into lab-suite \
                 (lab/suite), which both sides share"
            );
        }
    }
}

#[test]
fn guest_and_shared_crates_never_depend_on_host_crates() {
    let all = workspace_deps();
    for (krate, deps) in all
        .iter()
        .filter(|(k, _)| GUEST.contains(&k.as_str()) || SHARED.contains(&k.as_str()))
    {
        for d in deps {
            let ok = SHARED.contains(&d.as_str())
                || (GUEST.contains(&krate.as_str())
                    && GUEST.contains(&d.as_str())
                    && !GUEST_BINARIES.contains(&d.as_str()));
            assert!(
                ok,
                "{krate} (runs in the guest or is shared) depends on {d}, which is neither shared \
                 nor a guest library: guest crates never depend on host crates"
            );
        }
    }
}

#[test]
fn the_layers_name_every_crate_they_judge() {
    let all = workspace_deps();
    for k in GUEST.iter().chain(SHARED) {
        assert!(
            all.contains_key(*k),
            "{k} is not a workspace crate: update layering_tests.rs"
        );
    }
}
