//! Every tool a stage runs is covered by the preflight of every verb that runs the stage.
//!
//! The tools are read from the code itself: `cmd!(sh, "TOOL ...")` and `Command::new("TOOL")`
//! in the sources of each stage, plus what a build script runs without naming it (libbpf-cargo
//! runs clang; libbpf-sys builds its vendored libbpf with make, cc and pkg-config).

use super::*;
use lab_host::prereqs::{tools_for, Probe, TOOLS};
use std::path::Path;

/// Present on every Debian system that can run cargo (Essential packages, dpkg, apt).
const BASE: &[&str] = &[
    "sh", "echo", "tar", "dpkg", "dpkg-deb", "apt-get", "cat", "env", "ls", "true", "sleep", "cp",
    "rm", "mv",
];

/// Source files (relative to the repository) whose commands run in each stage.
fn stage_sources(stage: Stage) -> Vec<&'static str> {
    match stage {
        Stage::Kernel => vec!["lab/kernel/src"],
        Stage::GuestBinaries => vec![
            "xtask/src/image.rs",
            "lab/famfs-fused/build.rs",
            "lab/guest-cases/build.rs",
            "lab/guest-agent/build.rs",
        ],
        Stage::Initramfs => vec!["lab/image/src"],
        Stage::Boot => vec!["lab/vm/src", "lab/runner/src"],
        Stage::UnitTests => vec!["lab/vm/tests", "lab/famfs-fused/tests"],
    }
}

/// Tools used without a literal command, by marker text in the source.
const IMPLIED: &[(&str, &[&str])] = &[
    // libbpf-cargo compiles bpf/*.bpf.c with clang; libbpf-sys (its dependency) builds the
    // vendored libbpf with make, a C compiler and pkg-config, against libelf and zlib.
    (
        "SkeletonBuilder",
        &[
            "clang",
            "make",
            "gcc",
            "pkg-config",
            "/usr/include/libelf.h",
            "/usr/include/zlib.h",
        ],
    ),
    (
        "libbpf_rs::",
        &[
            "make",
            "gcc",
            "pkg-config",
            "/usr/include/libelf.h",
            "/usr/include/zlib.h",
        ],
    ),
    ("DEFAULT_QEMU", &["qemu-system-x86_64"]),
];

fn files_under(path: &Path) -> Vec<std::path::PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(path) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// The literal first words of `cmd!(sh, "...")` and `Command::new("...")` in `text`.
fn commands_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for marker in ["cmd!(sh, \"", "Command::new(\""] {
        let mut rest = text;
        while let Some(i) = rest.find(marker) {
            rest = &rest[i + marker.len()..];
            let word: String = rest
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            if !word.is_empty() && !word.starts_with('{') && !word.starts_with("./") {
                found.push(word);
            }
        }
    }
    found
}

/// What `stage` runs, as tool names (binaries) or file probes.
fn tools_of(stage: Stage) -> Vec<(String, String)> {
    let root = lab_host::paths::repo_root();
    let mut used = Vec::new();
    for rel in stage_sources(stage) {
        for file in files_under(&root.join(rel)) {
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            // Test modules run under nextest (the UnitTests stage), not in the stage itself.
            let text = text.split("#[cfg(test)]").next().unwrap_or("");
            let name = file.display().to_string();
            for c in commands_in(text) {
                used.push((name.clone(), c));
            }
            for (marker, tools) in IMPLIED {
                if text.contains(marker) {
                    used.extend(tools.iter().map(|t| (name.clone(), t.to_string())));
                }
            }
        }
    }
    used
}

fn covered(tool: &str, stages: &[Stage]) -> bool {
    if BASE.contains(&tool) || tool == "cargo" {
        return true;
    }
    let needs = prereqs::needs_of(stages);
    let found = tools_for(&needs).any(|t| match t.probe {
        Probe::Binary(b) => b == tool,
        Probe::File(f) => f == tool,
    });
    found
}

#[test]
fn every_tool_a_stage_runs_is_in_its_verbs_preflight() {
    let verbs: &[(&str, &[Stage])] = &[
        ("kernel build", KERNEL_STAGES),
        ("image build", IMAGE_STAGES),
        ("lab up", LAB_STAGES),
        ("test", TEST_STAGES),
    ];
    let mut problems = Vec::new();
    for (verb, stages) in verbs {
        for stage in stages.iter() {
            for (file, tool) in tools_of(*stage) {
                if !covered(&tool, stages) {
                    problems.push(format!(
                        "`{verb}` runs stage {stage:?}, whose {file} uses {tool}, \
                         but its preflight does not check for it"
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_sees_the_tools_that_matter() {
    // If these were not found, the test above could not fail.
    let guest: Vec<String> = tools_of(Stage::GuestBinaries)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert!(guest.iter().any(|t| t == "clang"), "{guest:?}");
    let kernel: Vec<String> = tools_of(Stage::Kernel)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    // make, and the kernel's BPF selftests at install (clang, bpftool, python3).
    for t in ["git", "make", "perl", "clang", "bpftool", "python3"] {
        assert!(kernel.iter().any(|k| k == t), "{t} in {kernel:?}");
    }
    let boot: Vec<String> = tools_of(Stage::Boot).into_iter().map(|(_, t)| t).collect();
    assert!(boot.iter().any(|t| t == "qemu-system-x86_64"), "{boot:?}");
    // The first-run bug: `lab up` built the kernel, then missed a tool of the guest binaries
    // (then clang; the kernel stage needs clang itself now, for its BPF selftests).
    assert!(!covered(
        "pkg-config",
        &[Stage::Kernel, Stage::Initramfs, Stage::Boot]
    ));
    assert!(covered("pkg-config", LAB_STAGES));
}

#[test]
fn every_listed_tool_serves_a_stage() {
    let all = prereqs::needs_of(&Stage::ALL);
    for t in TOOLS {
        assert!(
            t.needs.iter().any(|n| all.contains(n)),
            "{} serves no stage",
            t.name()
        );
    }
}
