//! `bpf_selftests.programs`: loads every program of the BPF selftest objects the host staged
//! in the results share, the way the selftests' test_loader does (the program under test and
//! the `__auxiliary` ones autoloaded, everything else not; a struct_ops map loads the programs
//! it references), and judges each load by its annotations
//! ([`lab_suite::bpf_selftests`]). Prints one result line per program for the host.

use crate::Outcome;
use anyhow::{bail, Context, Result};
use lab_suite::bpf_selftests::{self as st, Manifest, ProgResult, Spec, Verdict};
use lab_suite::verify::GUEST_RESULTS;
use libbpf_rs::btf::types::{DeclTag, Func};
use libbpf_rs::btf::TypeId;
use libbpf_rs::{Btf, ObjectBuilder, PrintLevel, ReferencesType};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

/// What libbpf printed since the last [`take_log`]: the verifier log of a failed load.
static LOG: Mutex<String> = Mutex::new(String::new());

fn capture(_level: PrintLevel, msg: String) {
    if let Ok(mut log) = LOG.lock() {
        log.push_str(&msg);
    }
}

fn take_log() -> String {
    LOG.lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default()
}

pub fn run(name: &str) -> Result<Outcome> {
    match name {
        "programs" => programs(&Path::new(GUEST_RESULTS).join(st::STAGED)),
        _ => bail!("no bpf_selftests case {name:?}"),
    }
}

fn programs(dir: &Path) -> Result<Outcome> {
    let path = dir.join(st::MANIFEST);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading {} (the host stages it)", path.display()))?;
    let manifest: Manifest =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let mut results: Vec<ProgResult> = manifest
        .errors
        .iter()
        .map(|e| ProgResult {
            name: e.name.clone(),
            verdict: Verdict::Fail(format!(
                "does not compile: {}",
                e.message
                    .lines()
                    .find(|l| l.contains("error"))
                    .unwrap_or("")
            )),
            log: e
                .message
                .lines()
                .take(st::LOG_TAIL)
                .map(String::from)
                .collect(),
        })
        .collect();
    let previous = libbpf_rs::set_print(Some((PrintLevel::Info, capture)));
    for obj in &manifest.objects {
        let stem = obj.strip_suffix(".bpf.o").unwrap_or(obj);
        let file = dir.join(obj);
        let loaded = std::fs::read(&file)
            .with_context(|| format!("reading {}", file.display()))
            .and_then(|bytes| object(stem, &bytes));
        match loaded {
            Ok(r) => results.extend(r),
            Err(e) => results.push(ProgResult {
                name: stem.to_string(),
                verdict: Verdict::Fail(format!("{e:#}")),
                log: take_log().lines().map(String::from).collect(),
            }),
        }
    }
    libbpf_rs::set_print(previous);
    for r in &results {
        for l in r.lines() {
            println!("{l}");
        }
    }
    let failed: Vec<&str> = results
        .iter()
        .filter(|r| matches!(r.verdict, Verdict::Fail(_)))
        .map(|r| r.name.as_str())
        .collect();
    let ran = results
        .iter()
        .filter(|r| !matches!(r.verdict, Verdict::Skip(_)))
        .count();
    Ok(if !failed.is_empty() {
        Outcome::Fail(format!(
            "{} of {} programs failed: {}",
            failed.len(),
            results.len(),
            failed.join(", ")
        ))
    } else if ran == 0 {
        Outcome::Skip(format!(
            "none of the {} programs could run here",
            results.len()
        ))
    } else {
        println!("{ran} programs as annotated");
        Outcome::Pass
    })
}

/// The results of every program of one object.
fn object(stem: &str, bytes: &[u8]) -> Result<Vec<ProgResult>> {
    let specs = specs(stem, bytes)?;
    let aux: Vec<String> = specs
        .iter()
        .filter(|s| s.auxiliary)
        .map(|s| s.prog.clone())
        .collect();
    let mut out = Vec::new();
    for spec in specs.iter().filter(|s| !s.auxiliary) {
        let verdict = match &spec.skip {
            Some(why) => Verdict::Skip(why.clone()),
            None => {
                let (loaded, log) = load_one(bytes, spec, &aux)?;
                let verdict = st::judge(spec, loaded, &log);
                let log = match verdict {
                    Verdict::Fail(_) => tail(&log),
                    _ => Vec::new(),
                };
                out.push(ProgResult {
                    name: spec.prog.clone(),
                    verdict,
                    log,
                });
                continue;
            }
        };
        out.push(ProgResult {
            name: spec.prog.clone(),
            verdict,
            log: Vec::new(),
        });
    }
    Ok(out)
}

/// The specs of the object's programs, in the object's order.
fn specs(stem: &str, bytes: &[u8]) -> Result<Vec<Spec>> {
    let btf = Btf::from_raw(stem, bytes)
        .with_context(|| format!("reading the BTF of {stem}"))?
        .with_context(|| format!("{stem} has no BTF (compiled without -g?)"))?;
    let mut tags: BTreeMap<TypeId, Vec<String>> = BTreeMap::new();
    for id in 1..btf.len() {
        let Some(tag) = btf.type_by_id::<DeclTag<'_>>(TypeId::from(id as u32)) else {
            continue;
        };
        if tag.component_index().is_some() {
            continue;
        }
        let text = tag
            .name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tags.entry(tag.referenced_type_id()).or_default().push(text);
    }
    let open = ObjectBuilder::default()
        .open_memory(bytes)
        .with_context(|| format!("opening {stem}: {}", take_log().trim()))?;
    let specs = open
        .progs()
        .map(|p| {
            let name = p.name().to_string_lossy().into_owned();
            let found = btf
                .type_by_name::<Func<'_>>(&name)
                .and_then(|f| tags.get(&f.type_id()).cloned())
                .unwrap_or_default();
            st::parse_spec(&name, &found)
        })
        .collect();
    Ok(specs)
}

/// Loads `spec`'s program (and the auxiliary ones) from a fresh open of the object; returns
/// whether the load succeeded and what libbpf printed. The object is closed again at once.
fn load_one(bytes: &[u8], spec: &Spec, aux: &[String]) -> Result<(bool, String)> {
    let _ = take_log();
    // libbpf prints a successful load's log (`__log_level`) at debug level, a failed one's
    // as a warning; its debug chatter would bury the verifier's last words otherwise.
    let level = match spec.log_level {
        Some(_) => PrintLevel::Debug,
        None => PrintLevel::Info,
    };
    libbpf_rs::set_print(Some((level, capture)));
    let mut open = ObjectBuilder::default()
        .open_memory(bytes)
        .with_context(|| format!("opening the object of {}", spec.prog))?;
    for mut p in open.progs_mut() {
        let name = p.name().to_string_lossy().into_owned();
        p.set_autoload(name == spec.prog || aux.contains(&name));
        if name == spec.prog {
            if let Some(level) = spec.log_level {
                p.set_log_level(level);
            }
        }
    }
    let loaded = open.load().is_ok();
    Ok((loaded, take_log()))
}

/// The last [`st::LOG_TAIL`] lines of the verifier log (or of what libbpf said).
fn tail(log: &str) -> Vec<String> {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let from = lines.len().saturating_sub(st::LOG_TAIL);
    lines[from..].iter().map(|l| l.to_string()).collect()
}
