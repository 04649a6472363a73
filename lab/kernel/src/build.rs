//! `kernel build`: spec -> source -> series -> config -> make -> cache.

use crate::cache::{self, Entry, KeyInputs, Meta};
use crate::config::Merged;
use crate::mutant::{self, MutantError};
use crate::series;
use crate::source;
use crate::spec::{self, KernelSpec, Source};
use anyhow::{bail, Context, Result};
use lab_host::stage::Timings;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use xshell::{cmd, Shell};

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildRequest {
    /// The `kernels/` directory of the repository.
    pub kernels_dir: PathBuf,
    pub kernel: String,
    /// Build this tree instead of the kernel's own source.
    pub source_dir: Option<PathBuf>,
    /// Extra fragments (names in kernels/config or paths).
    pub extra_fragments: Vec<String>,
    pub cache_root: PathBuf,
    pub jobs: usize,
    /// Fetch the Debian source again even if one is unpacked.
    pub refresh_source: bool,
    /// Build the series with this mutant on top, in its own work tree
    /// (`work/<label>+mutate`) and under its own cache key.
    pub mutant: Option<crate::mutant::Mutant>,
    /// A step of a bisection: another series (and source) in the bisection's own work tree.
    pub step: Option<BisectStep>,
    /// Take the kernel from the cache or fail: never build (`lab exec --mutant`).
    pub cached_only: bool,
}

/// What one step of a bisection (`lab bisect`) builds instead of the kernel's source and
/// series, in its own work tree (`work/<label><work_suffix>`, seeded from `work/<label>`
/// when that one is built and this one is new), configured leniently (a requested option
/// that does not exist yet at this step is listed, not an error) and cached under its own
/// key (the key covers the patches and the commit, so the full series is the kernel's
/// own cache entry).
#[derive(Debug, Clone)]
pub struct BisectStep {
    /// The patches applied on top of the source: a prefix of the series, or none (a commit
    /// of a git range carries its changes itself).
    pub patches: Vec<series::Patch>,
    /// This commit of this repository (the lab's clone of the user's tree) instead of the
    /// kernel's own source.
    pub git: Option<crate::spec::GitSource>,
    /// Appended to the label for the work tree's name, e.g. `+bisect`.
    pub work_suffix: String,
}

/// A step of a bisection whose kernel does not compile (the compiler said `error:`):
/// the step is skipped. Any other failure to build is the lab's.
#[derive(Debug, thiserror::Error)]
#[error("{label} does not build: {detail}")]
pub struct DoesNotBuild {
    pub label: String,
    pub detail: String,
}

/// A kernel in the cache.
#[derive(Debug, Clone)]
pub struct BuiltKernel {
    pub entry: Entry,
    pub meta: Meta,
    pub cache_hit: bool,
}

/// What a build settles before it touches a build tree: the spec with the
/// request's fragments and source, its label, the series, the merged
/// config, the resolved source, and the cache key over all of them.
struct Planned {
    spec: KernelSpec,
    label: String,
    /// The work tree a new work tree is seeded from (a mutant's or a bisection's).
    seed_from: Option<String>,
    patches: Vec<series::Patch>,
    merged: Merged,
    resolved: source::Resolved,
    inputs: KeyInputs,
    key: String,
}

/// The cache key [`build`] uses for `req` (the same computation): resolves
/// the source (fetching Debian's source on first use, as a build does) and
/// reads the toolchain's versions, but builds nothing. Fails for a source
/// that is never cached (a user tree that is not a git checkout).
pub fn cache_key(sh: &Shell, req: &BuildRequest) -> Result<String> {
    let planned = plan(sh, req, &mut Timings::default())?;
    if planned.resolved.id.is_none() {
        bail!(
            "{}: never cached, so it has no cache key",
            planned.resolved.version
        );
    }
    Ok(planned.key)
}

fn plan(sh: &Shell, req: &BuildRequest, t: &mut Timings) -> Result<Planned> {
    let mut spec = KernelSpec::load(&req.kernels_dir, &req.kernel)?;
    let mut label = spec.name.clone();
    for f in &req.extra_fragments {
        let path = spec::resolve_fragment(f, &std::env::current_dir()?, &req.kernels_dir)
            .or_else(|_| spec::resolve_fragment(f, &spec.dir, &req.kernels_dir))?;
        label.push('+');
        label.push_str(&stem(&path));
        spec.fragments.push(path);
    }
    if let Some(dir) = &req.source_dir {
        spec.source = Source::Path(dir.clone());
        label.push_str("@tree");
    }
    let mut seed_from = None;
    if let Some(step) = &req.step {
        if req.mutant.is_some() || req.source_dir.is_some() {
            bail!("a bisection step builds its own source and series: no mutant, no --source-dir");
        }
        if let Some(git) = &step.git {
            spec.source = Source::Git(git.clone());
        }
        seed_from = Some(label.clone());
        label.push_str(&step.work_suffix);
    }
    if req.mutant.is_some() {
        if let Source::Path(dir) = &spec.source {
            bail!(
                "mutants are applied to a work tree of the kernel's own source, never to a \
                 user's tree ({})",
                dir.display()
            );
        }
        seed_from = Some(label.clone());
        label.push_str("+mutate");
    }
    let patches = match &req.step {
        Some(step) => step.patches.clone(),
        None => series::read(&spec.patches_dir())?,
    };
    let merged = Merged::from_files(&spec.fragments)?;
    let resolved = t.stage("kernel: source", || {
        source::resolve(sh, &spec.source, &req.cache_root, req.refresh_source)
    })?;
    let inputs = KeyInputs {
        source_id: resolved.id.clone().unwrap_or_default(),
        base: spec.base.make_target().to_string(),
        fragments: spec
            .fragments
            .iter()
            .map(|f| Ok((stem(f), std::fs::read(f)?)))
            .collect::<Result<_>>()?,
        patches: patches
            .iter()
            .map(|p| (p.name.clone(), p.bytes.clone()))
            .chain(
                req.mutant
                    .iter()
                    .map(|m| (format!("mutant:{}", m.name), m.diff.clone().into_bytes())),
            )
            .collect(),
        targets: spec.targets.clone(),
        toolchain: toolchain(sh)?,
    };
    let key = inputs.key();
    Ok(Planned {
        spec,
        label,
        seed_from,
        patches,
        merged,
        resolved,
        inputs,
        key,
    })
}

/// Builds (or finds in the cache) the requested kernel.
pub fn build(sh: &Shell, req: &BuildRequest, t: &mut Timings) -> Result<BuiltKernel> {
    let Planned {
        spec,
        label,
        seed_from,
        patches,
        merged,
        resolved,
        inputs,
        key,
    } = plan(sh, req, t)?;
    if resolved.id.is_some() {
        if let Some(entry) = cache::lookup(&req.cache_root, &key) {
            let meta = entry.meta()?;
            lab_host::progress!(
                "famfs-lab: kernel {label} is cached: {}",
                entry.dir.display()
            );
            return Ok(BuiltKernel {
                entry,
                meta,
                cache_hit: true,
            });
        }
    }
    if req.cached_only {
        bail!(
            "kernel {label} is not in the cache (key {key}) and this verb does not build one; \
             `cargo xtask kernel mutate` (or `kernel build`) builds it"
        );
    }
    let _lock =
        lab_host::lock::exclusive(&req.cache_root.join("kernel-build.lock"), "a kernel build")?;
    let work = req.cache_root.join("work").join(sanitize(&label));
    if let Some(from) = &seed_from {
        seed_tree(req, from, &resolved, &work, t);
    }
    if req.mutant.is_some() {
        // Whatever an interrupted mutant run left in the tree goes first.
        mutant::restore(&work)?;
    }
    let src = t.stage("kernel: patch series", || {
        source::prepare_tree(sh, &resolved, &work, &patches)
    })?;
    // Taken out again when this goes out of scope, built or not.
    let _applied = match &req.mutant {
        Some(m) => Some(t.stage(&format!("kernel: mutant {}", m.name), || {
            mutant::apply(&work, m)
        })?),
        None => None,
    };
    let build_dir = work.join("build");
    std::fs::create_dir_all(&build_dir)?;
    t.stage("kernel: config", || match &req.step {
        // A step of a bisection may predate an option the fragments ask for.
        Some(_) => {
            let absent = configure_prefix(sh, &spec, &merged, &src, &build_dir)?;
            if !absent.is_empty() {
                lab_host::progress!(
                    "famfs-lab: not in this step's Kconfig: {}",
                    absent.join(", ")
                );
            }
            Ok(())
        }
        None => configure(sh, &spec, &merged, &src, &build_dir),
    })?;
    let started = Instant::now();
    t.stage("kernel: make", || {
        make(&spec, &src, &build_dir, &work, req.jobs).map_err(|e| match &req.mutant {
            // Only a compiler's error is the mutant's; make failing otherwise (a
            // broken build tree, a full disk) is the lab's.
            Some(m) if format!("{e:#}").contains(": error:") => MutantError::BuildFailed {
                name: m.name.clone(),
                detail: format!("{e:#}"),
            }
            .into(),
            None if req.step.is_some() && format!("{e:#}").contains(": error:") => DoesNotBuild {
                label: label.clone(),
                detail: format!("{e:#}"),
            }
            .into(),
            _ => e,
        })
    })?;
    let build_seconds = started.elapsed().as_secs();
    t.stage("kernel: install", || {
        let release = cmd!(sh, "make -s -C {src} O={build_dir} kernelrelease").read()?;
        let staging = cache::stage(&req.cache_root, &key)?;
        install(sh, &spec, &src, &build_dir, &staging.dir)?;
        let meta = Meta {
            key: key.clone(),
            kernel: spec.name.clone(),
            label: match &req.mutant {
                Some(m) => format!("{label}:{}", m.name),
                None => label.clone(),
            },
            source_id: inputs.source_id.clone(),
            source_version: resolved.version.clone(),
            release,
            base: inputs.base.clone(),
            fragments: inputs.fragments.iter().map(|(n, _)| n.clone()).collect(),
            patches: patches
                .iter()
                .map(|p| p.name.clone())
                .chain(req.mutant.iter().map(|m| format!("mutant:{}", m.name)))
                .collect(),
            toolchain: inputs.toolchain.clone(),
            build_seconds,
        };
        let entry = staging.commit(&meta)?;
        lab_host::progress!(
            "famfs-lab: kernel {label} ({}) built into {}",
            meta.release,
            entry.dir.display()
        );
        Ok(BuiltKernel {
            entry,
            meta,
            cache_hit: false,
        })
    })
}

/// A mutant's or a bisection's tree that does not exist yet starts as a copy of
/// the work tree `base` when that one has been built (a copy takes a minute, a
/// cold build tens); if it cannot be copied, the build starts cold.
fn seed_tree(
    req: &BuildRequest,
    base: &str,
    resolved: &source::Resolved,
    work: &Path,
    t: &mut Timings,
) {
    let source::Kind::Repo { repo, .. } = &resolved.kind else {
        return;
    };
    let from = req.cache_root.join("work").join(sanitize(base));
    let built = from.join(source::TREE_STATE).is_file()
        && from.join("src").join(".git").exists()
        && from.join("build").join(".config").is_file();
    if work.exists() || !built {
        return;
    }
    let name = format!("kernel: seed {} from {}", work.display(), from.display());
    if let Err(e) = t.stage(&name, || crate::seed::seed(repo, &from, work)) {
        eprintln!(
            "famfs-lab: could not seed {}, building it cold: {e:#}",
            work.display()
        );
    }
}

fn stem(p: &Path) -> String {
    p.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The work tree (`src/`, `build/`) a kernel of `label` is built in.
pub fn work_dir(cache_root: &Path, label: &str) -> PathBuf {
    cache_root.join("work").join(sanitize(label))
}

fn sanitize(label: &str) -> String {
    label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "+-_.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The compiler and pahole versions, part of the cache key.
fn toolchain(sh: &Shell) -> Result<String> {
    let gcc = cmd!(sh, "gcc --version")
        .read()
        .context("gcc --version (install build-essential)")?;
    let pahole = cmd!(sh, "pahole --version")
        .read()
        .context("pahole --version (install dwarves)")?;
    Ok(format!(
        "{}; pahole {pahole}",
        gcc.lines().next().unwrap_or("")
    ))
}

/// The base target the build dir's `.config` was made with, for the merged
/// fragment beside it; absent = configure again.
const CONFIG_STAMP: &str = "famfs-lab.config.base";

/// Writes the merged fragment, runs the base target with it (unless the
/// build dir already holds that config), and fails naming every requested
/// option the final config lacks.
fn configure(
    sh: &Shell,
    spec: &KernelSpec,
    merged: &Merged,
    src: &Path,
    build: &Path,
) -> Result<()> {
    for (name, old, new) in &merged.overrides {
        lab_host::progress!(
            "famfs-lab: {name}: {} ({}) overrides {} ({})",
            new.value,
            new.origin.file.display(),
            old.value,
            old.origin.file.display()
        );
    }
    configure_base(sh, spec, merged, src, build)?;
    let final_config = std::fs::read_to_string(build.join(".config"))?;
    let dropped = merged
        .check(&final_config)
        .map_err(|e| anyhow::anyhow!("{}/.config: {e}", build.display()))?;
    if !dropped.is_empty() {
        let _ = std::fs::remove_file(build.join(CONFIG_STAMP));
        let list: Vec<String> = dropped.iter().map(|d| format!("  {d}")).collect();
        bail!(
            "the final .config lacks {} requested option(s) (unmet dependencies?):\n{}\n\
             see {}/.config; `make O={} menuconfig` shows what each depends on",
            dropped.len(),
            list.join("\n"),
            build.display(),
            build.display()
        );
    }
    Ok(())
}

/// Runs the base target with the merged fragment unless the stamp says the
/// build dir's `.config` was made from exactly this fragment and base.
fn configure_base(
    sh: &Shell,
    spec: &KernelSpec,
    merged: &Merged,
    src: &Path,
    build: &Path,
) -> Result<()> {
    let fragment = build.join("famfs-lab.config");
    let stamp = build.join(CONFIG_STAMP);
    let text = merged.render();
    let unchanged = build.join(".config").is_file()
        && std::fs::read_to_string(&fragment).ok().as_deref() == Some(text.as_str())
        && std::fs::read_to_string(&stamp).ok().as_deref() == Some(spec.base.make_target());
    if unchanged {
        return Ok(());
    }
    std::fs::write(&fragment, &text)?;
    let base = spec.base.make_target();
    match spec.base {
        crate::spec::BaseConfig::Allnoconfig => {
            let allconfig = format!("KCONFIG_ALLCONFIG={}", fragment.display());
            lab_host::say::run(cmd!(sh, "make -s -C {src} O={build} {allconfig} {base}"))?;
        }
        crate::spec::BaseConfig::Defconfig => {
            lab_host::say::run(cmd!(sh, "make -s -C {src} O={build} {base}"))?;
            let mut config = std::fs::read_to_string(build.join(".config"))?;
            config.push_str(&text);
            std::fs::write(build.join(".config"), config)?;
            lab_host::say::run(cmd!(sh, "make -s -C {src} O={build} olddefconfig"))?;
        }
    }
    std::fs::write(&stamp, base)?;
    Ok(())
}

/// Runs make with a progress bar over compiled objects.
fn make(spec: &KernelSpec, src: &Path, build: &Path, work: &Path, jobs: usize) -> Result<()> {
    let count_file = work.join("objects");
    let estimate = std::fs::read_to_string(&count_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(3000);
    let bar = lab_host::stage::bar(estimate, "kernel objects");
    let mut cmd = Command::new("make");
    cmd.arg("-C")
        .arg(src)
        .arg(format!("O={}", build.display()))
        .arg(format!("-j{jobs}"));
    if let Some(ccache) = lab_host::prereqs::find_binary("ccache") {
        let root = work.parent().and_then(Path::parent).unwrap_or(work);
        cmd.arg(format!("CC={} gcc", ccache.display()))
            .env("CCACHE_DIR", root.join("ccache"))
            .env("CCACHE_BASEDIR", root)
            .env("CCACHE_NOHASHDIR", "1");
    }
    cmd.args(&spec.targets);
    let log = work.join("build.log");
    let mut built = 0u64;
    let mut last_note = Instant::now();
    let quiet_terminal = bar.is_hidden();
    lab_host::run::run_logged(
        cmd,
        &log,
        |line| {
            if is_object_line(line) {
                built += 1;
                bar.set_position(built);
                if quiet_terminal && last_note.elapsed().as_secs() >= 60 {
                    lab_host::progress!("famfs-lab: kernel make: {built} objects so far");
                    last_note = Instant::now();
                }
            }
        },
        first_error,
    )?;
    bar.finish_and_clear();
    if built > estimate / 2 {
        let _ = std::fs::write(&count_file, format!("{built}\n"));
    }
    Ok(())
}

/// A kbuild progress line: two spaces, an upper-case verb, spaces, a path.
pub fn is_object_line(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("  ") else {
        return false;
    };
    let verb: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    matches!(
        verb.as_str(),
        "CC" | "AS" | "HOSTCC" | "LD" | "AR" | "BTF" | "CC [M]"
    ) || rest.starts_with("CC [M]")
}

/// The first compiler error with context, for the failure message.
pub fn first_error(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    let hit = lines.iter().position(|l| {
        l.contains(": error:") || l.contains(": fatal error:") || l.contains("undefined reference")
    });
    match hit {
        Some(i) => lines[i.saturating_sub(3)..(i + 8).min(lines.len())].join("\n"),
        None => lab_host::run::tail(log, 15),
    }
}

/// Copies the artifacts into a staged cache entry.
fn install(sh: &Shell, spec: &KernelSpec, src: &Path, build: &Path, dest: &Path) -> Result<()> {
    for (from, to) in [
        ("arch/x86/boot/bzImage", "bzImage"),
        ("vmlinux", "vmlinux"),
        ("System.map", "System.map"),
        (".config", "config"),
    ] {
        std::fs::copy(build.join(from), dest.join(to))
            .with_context(|| format!("copying {} into the cache", build.join(from).display()))?;
    }
    if spec.targets.iter().any(|t| t == "modules") {
        let modroot = dest.join("modroot");
        let path = format!("INSTALL_MOD_PATH={}", modroot.display());
        lab_host::say::run(cmd!(
            sh,
            "make -s -C {src} O={build} {path} INSTALL_MOD_STRIP=1 modules_install"
        ))
        .context("make modules_install")?;
    }
    let vmlinux = dest.join("vmlinux");
    strip_for_boot(sh, &vmlinux, &dest.join("vmlinux.boot"));
    match crate::bpf_selftests::compile(sh, src, &vmlinux, dest)? {
        None => {}
        Some((ok, 0)) => lab_host::progress!("famfs-lab: {ok} BPF selftest objects compiled"),
        Some((ok, failed)) => eprintln!(
            "famfs-lab: BPF selftests: {ok} compiled, {failed} did not (see {})",
            dest.join(crate::bpf_selftests::DIR).display()
        ),
    }
    Ok(())
}

/// Writes `to`, the symbol- and debug-free copy of `vmlinux` that QEMU boots (the cache
/// entry's `vmlinux.boot`). Best effort: without it QEMU boots `vmlinux` itself.
fn strip_for_boot(sh: &Shell, vmlinux: &Path, to: &Path) {
    if let Err(e) = cmd!(sh, "objcopy --strip-all {vmlinux} {to}").quiet().run() {
        let _ = std::fs::remove_file(to);
        eprintln!("famfs-lab: no stripped vmlinux to boot ({e}); QEMU boots vmlinux");
    }
}

/// Builds every prefix of the series in turn (each patch must build on
/// its own), reusing the kernel's incremental build tree, and leaves the
/// tree at the full series again. Each prefix is configured from the
/// fragments afresh: options a later patch adds do not exist yet there (they
/// are listed, not errors), and an option a prefix adds is really on, so its
/// code is compiled. Returns the patches that failed.
pub fn bisect_build(
    sh: &Shell,
    req: &BuildRequest,
    t: &mut Timings,
) -> Result<Vec<(String, String)>> {
    let full = build(sh, req, t)?;
    let Planned {
        spec,
        merged,
        resolved,
        patches,
        ..
    } = plan(sh, req, t)?;
    let work = req.cache_root.join("work").join(sanitize(&full.meta.label));
    let build_dir = work.join("build");
    let _lock =
        lab_host::lock::exclusive(&req.cache_root.join("kernel-build.lock"), "a kernel build")?;
    // The whole series, whatever an interrupted bisect left; while the tree is at a prefix it
    // has no state file, so a build started after a crash here applies the series again.
    let src = source::prepare_tree(sh, &resolved, &work, &patches)?;
    let state_file = work.join(source::TREE_STATE);
    let state = std::fs::read(&state_file).ok();
    let _ = std::fs::remove_file(&state_file);
    let head = cmd!(sh, "git -C {src} rev-parse HEAD").read()?;
    let n = patches.len();
    let mut failed = Vec::new();
    for (i, p) in patches.iter().enumerate().take(n.saturating_sub(1)) {
        let rev = format!("{head}~{}", n - 1 - i);
        let commit = cmd!(sh, "git -C {src} rev-parse {rev}").read()?;
        lab_host::say::run(cmd!(sh, "git -C {src} checkout -q {commit}"))?;
        let name = format!("kernel: build with patches 1..{} ({})", i + 1, p.name);
        let step = || -> Result<()> {
            let absent = configure_prefix(sh, &spec, &merged, &src, &build_dir)?;
            if !absent.is_empty() {
                lab_host::progress!(
                    "famfs-lab: not in this prefix's Kconfig yet: {}",
                    absent.join(", ")
                );
            }
            make(&spec, &src, &build_dir, &work, req.jobs)
        };
        if let Err(e) = t.stage(&name, step) {
            failed.push((p.name.clone(), format!("{e:#}")));
        }
    }
    lab_host::say::run(cmd!(sh, "git -C {src} checkout -q {head}"))?;
    if let Some(state) = state {
        std::fs::write(&state_file, state)?;
    }
    t.stage("kernel: rebuild the full series", || {
        // The prefixes rewrote .config: configure again, with the dropped-option check.
        let _ = std::fs::remove_file(build_dir.join(CONFIG_STAMP));
        configure(sh, &spec, &merged, &src, &build_dir)?;
        make(&spec, &src, &build_dir, &work, req.jobs)
    })?;
    Ok(failed)
}

/// Configures a prefix of the series from the fragments, whatever the tree's
/// state; returns the requested options its Kconfig does not offer. Leaves
/// no stamp, so the next [`configure`] runs again.
fn configure_prefix(
    sh: &Shell,
    spec: &KernelSpec,
    merged: &Merged,
    src: &Path,
    build: &Path,
) -> Result<Vec<String>> {
    let _ = std::fs::remove_file(build.join(CONFIG_STAMP));
    configure_base(sh, spec, merged, src, build)?;
    let _ = std::fs::remove_file(build.join(CONFIG_STAMP));
    let final_config = std::fs::read_to_string(build.join(".config"))?;
    Ok(merged
        .check(&final_config)
        .map_err(|e| anyhow::anyhow!("{}/.config: {e}", build.display()))?
        .iter()
        .map(|d| d.to_string())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_lines_are_counted_and_others_not() {
        assert!(is_object_line("  CC      kernel/fork.o"));
        assert!(is_object_line("  CC [M]  fs/fuse/fuse.o"));
        assert!(is_object_line("  LD      vmlinux"));
        assert!(!is_object_line("make[2]: Entering directory"));
        assert!(!is_object_line("  GEN     Makefile"));
        assert!(!is_object_line("CC kernel/fork.o"));
    }

    #[test]
    fn first_error_shows_the_compiler_error_with_context() {
        let log = "  CC a.o\n  CC b.o\nfs/fuse/file.c: In function 'x':\nfs/fuse/file.c:12:3: error: 'y' undeclared\n   12 | y;\nmake[4]: *** Error 1\n";
        let got = first_error(log);
        assert!(got.contains("file.c:12:3: error"), "{got}");
        assert!(got.contains("In function"), "{got}");
    }
}
