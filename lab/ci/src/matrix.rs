//! `ci/matrix.yaml` -> the cells CI runs.
//!
//! The file has axes (kernel, ops, topology, accel), per-kernel settings
//! (whether the kernel has the ops axis, its suites, its timeout),
//! exclusions, and nightly cells. [`Matrix::parse`] validates it and expands
//! the product into [`Cell`]s, each with an id made of its axis values (so an
//! id names the same cell whatever the order of the file), the suites it runs
//! and the job timeout: the cells of every push and pull request
//! ([`Schedule::Push`]). The `nightly:` entries are cells of their own
//! ([`Schedule::Nightly`], id suffix `.nightly`) that only the workflow's
//! schedule runs: the long suites (stress, fuzz). From there: the GitHub
//! `strategy.matrix` JSON ([`Matrix::github_json_of`]), the distinct kernels to
//! build first ([`Matrix::kernels_json_of`]), and each cell's exact
//! `cargo xtask lab up` arguments ([`Cell::lab_up_args`]).

use crate::error::{Error, Problem, Result};
use crate::locate::UniqueMap;
use crate::locate::{line_of, path, KeyPath};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

/// The matrix, relative to the repository root.
pub const MATRIX_FILE: &str = "ci/matrix.yaml";
/// GitHub refuses a matrix of more jobs than this.
pub const MAX_GITHUB_JOBS: usize = 256;
/// GitHub-hosted jobs end at 6 hours.
pub const MAX_TIMEOUT_MINUTES: u32 = 360;
/// The accelerator a cell runs with (read by lab-vm; `kvm` fails when KVM
/// does not work instead of falling back to TCG).
pub const ACCEL_ENV: &str = "FAMFS_LAB_ACCEL";
/// The fmap ops of a case run; `lab up --ops` sets it (and reads it as its default).
pub const OPS_ENV: &str = "FAMFS_LAB_OPS";

/// The accelerator axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn as_str(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

// ---- the file ----

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixFile {
    axes: AxesFile,
    kernels: UniqueMap<KernelFile>,
    /// Per topology: suites that replace the kernel's on that topology (a multi-host
    /// topology runs the multi-host suite, not the one-guest suites).
    #[serde(default)]
    topologies: UniqueMap<TopologyFile>,
    #[serde(default)]
    exclude: Vec<ExcludeFile>,
    /// Cells of the nightly schedule only.
    #[serde(default)]
    nightly: Vec<NightlyFile>,
}

/// One nightly cell: a value of each axis (ops only for a kernel with the ops axis), its
/// suites and its timeout.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NightlyFile {
    kernel: String,
    #[serde(default)]
    ops: Option<String>,
    topology: String,
    accel: Accel,
    suites: Vec<String>,
    timeout_minutes: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    suites: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AxesFile {
    kernel: Vec<String>,
    ops: Vec<String>,
    topology: Vec<String>,
    accel: Vec<Accel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KernelFile {
    /// Whether the kernel's cells run once per ops value (else once, with no ops).
    #[serde(default = "yes")]
    ops: bool,
    suites: Vec<String>,
    timeout_minutes: u32,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExcludeFile {
    kernel: Option<String>,
    ops: Option<String>,
    topology: Option<String>,
    accel: Option<String>,
}

impl ExcludeFile {
    fn fields(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("kernel", self.kernel.as_deref()),
            ("ops", self.ops.as_deref()),
            ("topology", self.topology.as_deref()),
            ("accel", self.accel.as_deref()),
        ]
    }

    fn matches(&self, c: &Cell) -> bool {
        let eq = |rule: &Option<String>, value: Option<&str>| {
            rule.as_deref().is_none_or(|r| Some(r) == value)
        };
        eq(&self.kernel, Some(&c.label))
            && eq(&self.ops, c.ops.as_deref())
            && eq(&self.topology, Some(&c.topology))
            && eq(&self.accel, Some(c.accel.as_str()))
    }
}

// ---- what the repository has ----

/// Names the matrix and the expected-failure files may refer to. An empty
/// list is not checked.
#[derive(Debug, Clone, Default)]
pub struct Known {
    /// Directories of `kernels/` with a `kernel.yaml`.
    pub kernels: Vec<String>,
    /// Fragment names in `kernels/config/` (without `.config`).
    pub fragments: Vec<String>,
    /// Topology names in `lab/topologies/` (without `.yaml`).
    pub topologies: Vec<String>,
    /// Suite names of the case catalog.
    pub suites: Vec<String>,
    /// Case ids (`SUITE.NAME`) of the case catalog.
    pub cases: Vec<String>,
    /// Values of the matrix's ops axis (for `ci/expected`).
    pub ops: Vec<String>,
}

impl Known {
    /// Kernels, fragments and topologies from a checkout at `root`; the
    /// catalog's suites and cases, and the ops, are the caller's to add.
    pub fn from_repo(root: &Path) -> Result<Known> {
        let names = |dir: &Path, keep: &dyn Fn(&Path) -> Option<String>| -> Result<Vec<String>> {
            let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
                path: dir.to_path_buf(),
                source,
            })?;
            let mut v: Vec<String> = entries.flatten().filter_map(|e| keep(&e.path())).collect();
            v.sort();
            Ok(v)
        };
        let stem_with = |ext: &'static str| {
            move |p: &Path| -> Option<String> {
                (p.extension()? == ext)
                    .then(|| p.file_stem()?.to_str().map(String::from))
                    .flatten()
            }
        };
        Ok(Known {
            kernels: names(&root.join("kernels"), &|p| {
                p.join("kernel.yaml")
                    .is_file()
                    .then(|| p.file_name()?.to_str().map(String::from))
                    .flatten()
            })?,
            fragments: names(&root.join("kernels/config"), &stem_with("config"))?,
            topologies: names(&root.join("lab/topologies"), &stem_with("yaml"))?,
            ..Known::default()
        })
    }
}

// ---- cells ----

/// When CI runs a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Schedule {
    /// Every push to main and every pull request (the expanded axes).
    Push,
    /// The workflow's nightly `schedule:` only (the `nightly:` entries).
    Nightly,
}

/// The id suffix of a nightly cell.
pub const NIGHTLY_SUFFIX: &str = ".nightly";

/// One job of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    /// `LABEL[.OPS].TOPOLOGY.ACCEL`, e.g. `famfs-bpf.famfs.default.tcg`.
    pub id: String,
    /// The kernel axis value: a kernel label as `kernel build` names it,
    /// e.g. `famfs-bpf+debug`.
    pub label: String,
    /// The directory of `kernels/`.
    pub kernel: String,
    /// Extra fragments (`--fragment`), from the label.
    pub fragments: Vec<String>,
    /// None for kernels without the ops axis.
    pub ops: Option<String>,
    pub topology: String,
    pub accel: Accel,
    pub suites: Vec<String>,
    pub timeout_minutes: u32,
    pub schedule: Schedule,
}

impl Cell {
    /// The arguments after `cargo xtask` that run this cell: what CI runs
    /// and what `cargo xtask ci run --entry ID` parses into `lab up`'s flags.
    /// The accelerator and the ops go in the environment ([`Cell::env`]).
    pub fn lab_up_args(&self) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "lab".into(),
            "up".into(),
            "--kernel".into(),
            self.kernel.clone(),
        ];
        for f in &self.fragments {
            v.extend(["--fragment".into(), f.clone()]);
        }
        v.extend(["--topology".into(), self.topology.clone()]);
        if let Some(ops) = &self.ops {
            v.extend(["--ops".into(), ops.clone()]);
        }
        for s in &self.suites {
            v.extend(["--suite".into(), s.clone()]);
        }
        v
    }

    /// The environment the cell runs with: the accelerator (the ops are an argument).
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![(ACCEL_ENV, self.accel.as_str().to_string())]
    }

    /// The cell as one shell command line, for people.
    pub fn shell_command(&self) -> String {
        let env = self
            .env()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", shell_quote(&v)));
        let args = self.lab_up_args().into_iter().map(|a| shell_quote(&a));
        env.chain(["cargo".to_string(), "xtask".to_string()])
            .chain(args)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_+=./:@,".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The kernel directory and extra fragments of a label: `famfs-bpf+debug`
/// is kernel `famfs-bpf` with `--fragment debug` (the label `kernel build`
/// gives that kernel).
pub fn split_label(label: &str) -> (&str, Vec<&str>) {
    let mut parts = label.split('+');
    let kernel = parts.next().unwrap_or_default();
    (kernel, parts.collect())
}

/// A validated, expanded matrix.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// Where it was read from, for messages.
    pub file: String,
    cells: Vec<Cell>,
    nightly: Vec<Cell>,
    ops: Vec<String>,
}

#[derive(Serialize)]
struct GithubCell<'a> {
    id: &'a str,
    kernel: &'a str,
    fragment: String,
    ops: &'a str,
    topology: &'a str,
    accel: &'a str,
    suites: String,
    timeout: u32,
}

#[derive(Serialize)]
struct GithubKernel<'a> {
    label: &'a str,
    kernel: &'a str,
    fragment: String,
}

#[derive(Serialize)]
struct Include<T> {
    include: Vec<T>,
}

impl Matrix {
    /// Reads and validates `path`.
    pub fn load(path: &Path, known: &Known) -> Result<Matrix> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Matrix::parse(&text, &path.display().to_string(), known)
    }

    /// Parses, validates and expands `text` (named `file` in messages).
    pub fn parse(text: &str, file: &str, known: &Known) -> Result<Matrix> {
        let raw: MatrixFile = serde_norway::from_str(text).map_err(|e| Error::parse(file, &e))?;
        let mut problems: Vec<(KeyPath, String)> = Vec::new();
        check_axes(&raw, known, &mut problems);
        check_kernels(&raw, known, &mut problems);
        check_topologies(&raw, known, &mut problems);
        let all = expand(&raw);
        check_exclusions(&raw, &all, &mut problems);
        let cells: Vec<Cell> = all
            .into_iter()
            .filter(|c| !raw.exclude.iter().any(|r| r.matches(c)))
            .collect();
        let nightly = nightly_cells(&raw, known, &mut problems);
        if problems.is_empty() {
            if cells.is_empty() {
                problems.push((path("exclude"), "the exclusions leave no cell".into()));
            } else if cells.len() > MAX_GITHUB_JOBS {
                problems.push((
                    path("axes"),
                    format!(
                        "{} cells: GitHub runs at most {MAX_GITHUB_JOBS}",
                        cells.len()
                    ),
                ));
            }
            let mut seen = BTreeSet::new();
            for c in &cells {
                if !seen.insert(c.id.as_str()) {
                    problems.push((path("axes"), format!("two cells have the id {:?}", c.id)));
                }
            }
            for (i, c) in nightly.iter().enumerate() {
                if !seen.insert(c.id.as_str()) {
                    problems.push((
                        path("nightly").index(i),
                        format!("a cell before it has the id {:?}", c.id),
                    ));
                }
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid {
                file: file.to_string(),
                problems: problems
                    .into_iter()
                    .map(|(key, message)| Problem {
                        line: line_of(text, &key),
                        key: key.to_string(),
                        message,
                    })
                    .collect(),
            });
        }
        Ok(Matrix {
            file: file.to_string(),
            cells,
            nightly,
            ops: raw.axes.ops,
        })
    }

    /// Every push and pull-request cell, in axis order (kernel, ops, topology, accel).
    pub fn cells(&self) -> &[Cell] {
        &self.cells
    }

    /// The cells of one schedule (nightly: in the order of the file).
    pub fn cells_of(&self, schedule: Schedule) -> &[Cell] {
        match schedule {
            Schedule::Push => &self.cells,
            Schedule::Nightly => &self.nightly,
        }
    }

    /// Every cell: the push cells, then the nightly ones.
    pub fn all_cells(&self) -> impl Iterator<Item = &Cell> {
        self.cells.iter().chain(&self.nightly)
    }

    /// The values of the ops axis.
    pub fn ops(&self) -> &[String] {
        &self.ops
    }

    /// The cell with this id, or an error listing the valid ids.
    pub fn cell(&self, id: &str) -> Result<&Cell> {
        self.all_cells()
            .find(|c| c.id == id)
            .ok_or_else(|| Error::UnknownCell {
                file: self.file.clone(),
                id: id.to_string(),
                valid: self.all_cells().map(|c| c.id.clone()).collect(),
            })
    }

    /// `{"include":[{"id", "kernel", "fragment", "ops", "topology", "accel",
    /// "suites", "timeout"}, ...]}` on one line, for `strategy.matrix`:
    /// `fragment` and `suites` are space-separated, `ops` and `fragment`
    /// empty when the cell has none, `timeout` in minutes.
    pub fn github_json(&self) -> String {
        self.github_json_of(Schedule::Push)
    }

    /// [`Matrix::github_json`] of one schedule's cells.
    pub fn github_json_of(&self, schedule: Schedule) -> String {
        let include = self
            .cells_of(schedule)
            .iter()
            .map(|c| GithubCell {
                id: &c.id,
                kernel: &c.kernel,
                fragment: c.fragments.join(" "),
                ops: c.ops.as_deref().unwrap_or(""),
                topology: &c.topology,
                accel: c.accel.as_str(),
                suites: c.suites.join(" "),
                timeout: c.timeout_minutes,
            })
            .collect();
        serde_json::to_string(&Include { include }).unwrap_or_default()
    }

    /// The distinct kernels of the cells, `{"include":[{"label", "kernel",
    /// "fragment"}]}`, so CI builds each once before the cells run.
    pub fn kernels_json(&self) -> String {
        self.kernels_json_of(Schedule::Push)
    }

    /// [`Matrix::kernels_json`] of one schedule's cells.
    pub fn kernels_json_of(&self, schedule: Schedule) -> String {
        let mut seen = BTreeSet::new();
        let include = self
            .cells_of(schedule)
            .iter()
            .filter(|c| seen.insert(c.label.as_str()))
            .map(|c| GithubKernel {
                label: &c.label,
                kernel: &c.kernel,
                fragment: c.fragments.join(" "),
            })
            .collect();
        serde_json::to_string(&Include { include }).unwrap_or_default()
    }
}

/// Letters, digits, `-` and `_`: `.` separates an id's parts and `+` a
/// label's fragments.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn check_axes(raw: &MatrixFile, known: &Known, problems: &mut Vec<(KeyPath, String)>) {
    let accels: Vec<String> = raw
        .axes
        .accel
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    let axes: [(&str, &[String]); 4] = [
        ("kernel", &raw.axes.kernel),
        ("ops", &raw.axes.ops),
        ("topology", &raw.axes.topology),
        ("accel", &accels),
    ];
    for (axis, values) in axes {
        let at = path("axes").key(axis);
        if values.is_empty() {
            problems.push((at.clone(), "empty: an axis needs at least one value".into()));
        }
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                problems.push((at.index(i), format!("{v:?} is listed twice")));
            }
        }
    }
    for (i, label) in raw.axes.kernel.iter().enumerate() {
        let at = path("axes").key("kernel").index(i);
        let (kernel, fragments) = split_label(label);
        if !is_name(kernel) || fragments.iter().any(|f| !is_name(f)) {
            problems.push((
                at.clone(),
                format!("{label:?}: a kernel label is KERNEL[+FRAGMENT...], each of letters, digits, '-', '_'"),
            ));
            continue;
        }
        if !known.kernels.is_empty() && !known.kernels.iter().any(|k| k == kernel) {
            problems.push((
                at.clone(),
                format!(
                    "no kernel {kernel:?} in kernels/ (known: {})",
                    known.kernels.join(", ")
                ),
            ));
        }
        for f in fragments {
            if !known.fragments.is_empty() && !known.fragments.iter().any(|k| k == f) {
                problems.push((
                    at.clone(),
                    format!(
                        "no fragment {f:?} in kernels/config/ (known: {})",
                        known.fragments.join(", ")
                    ),
                ));
            }
        }
    }
    for (i, v) in raw.axes.ops.iter().enumerate() {
        if !is_name(v) {
            problems.push((
                path("axes").key("ops").index(i),
                format!("{v:?}: letters, digits, '-', '_' only"),
            ));
        }
    }
    for (i, t) in raw.axes.topology.iter().enumerate() {
        let at = path("axes").key("topology").index(i);
        if !is_name(t) {
            problems.push((
                at,
                format!("{t:?}: a topology name (letters, digits, '-', '_'), not a path"),
            ));
        } else if !known.topologies.is_empty() && !known.topologies.contains(t) {
            problems.push((
                at,
                format!(
                    "no topology {t:?} in lab/topologies/ (known: {})",
                    known.topologies.join(", ")
                ),
            ));
        }
    }
}

fn check_kernels(raw: &MatrixFile, known: &Known, problems: &mut Vec<(KeyPath, String)>) {
    for (i, label) in raw.axes.kernel.iter().enumerate() {
        if raw.kernels.get(label).is_none() {
            problems.push((
                path("axes").key("kernel").index(i),
                format!("{label:?} has no entry under `kernels:`"),
            ));
        }
    }
    for (label, k) in &raw.kernels.0 {
        let at = path("kernels").key(label);
        if !raw.axes.kernel.contains(label) {
            problems.push((
                at.clone(),
                format!("{label:?} is not a value of axes.kernel"),
            ));
        }
        check_suites_and_timeout(&at, &k.suites, k.timeout_minutes, known, problems);
    }
}

/// A cell's `suites` (at least one, none twice, each known) and `timeout_minutes` (1 to
/// GitHub's limit), for a kernel's cells and a nightly cell alike.
fn check_suites_and_timeout(
    at: &KeyPath,
    suites: &[String],
    timeout_minutes: u32,
    known: &Known,
    problems: &mut Vec<(KeyPath, String)>,
) {
    if suites.is_empty() {
        problems.push((
            at.key("suites"),
            "empty: a cell runs at least one suite".into(),
        ));
    }
    for (j, s) in suites.iter().enumerate() {
        if suites[..j].contains(s) {
            problems.push((at.key("suites").index(j), format!("{s:?} is listed twice")));
        } else if !known.suites.is_empty() && !known.suites.contains(s) {
            problems.push((
                at.key("suites").index(j),
                format!("no suite {s:?} (known: {})", known.suites.join(", ")),
            ));
        }
    }
    if timeout_minutes == 0 || timeout_minutes > MAX_TIMEOUT_MINUTES {
        problems.push((
            at.key("timeout_minutes"),
            format!(
                "{timeout_minutes} minutes: between 1 and {MAX_TIMEOUT_MINUTES} (GitHub's limit)"
            ),
        ));
    }
}

fn check_topologies(raw: &MatrixFile, known: &Known, problems: &mut Vec<(KeyPath, String)>) {
    for (name, t) in &raw.topologies.0 {
        let at = path("topologies").key(name);
        if !raw.axes.topology.contains(name) {
            problems.push((
                at.clone(),
                format!("{name:?} is not a value of axes.topology"),
            ));
        }
        if t.suites.is_empty() {
            problems.push((
                at.key("suites"),
                "empty: a cell runs at least one suite".into(),
            ));
        }
        for (j, s) in t.suites.iter().enumerate() {
            if !known.suites.is_empty() && !known.suites.contains(s) {
                problems.push((
                    at.key("suites").index(j),
                    format!("no suite {s:?} (known: {})", known.suites.join(", ")),
                ));
            }
        }
    }
}

/// Every cell of the product, before exclusions; kernels without an entry
/// (already a problem) are left out.
fn expand(raw: &MatrixFile) -> Vec<Cell> {
    let mut cells = Vec::new();
    for label in &raw.axes.kernel {
        let Some(k) = raw.kernels.get(label) else {
            continue;
        };
        let (kernel, fragments) = split_label(label);
        let ops: Vec<Option<&String>> = if k.ops {
            raw.axes.ops.iter().map(Some).collect()
        } else {
            vec![None]
        };
        for o in &ops {
            for topology in &raw.axes.topology {
                for accel in &raw.axes.accel {
                    let mut id = label.clone();
                    if let Some(o) = o {
                        id = format!("{id}.{o}");
                    }
                    cells.push(Cell {
                        id: format!("{id}.{topology}.{accel}"),
                        label: label.clone(),
                        kernel: kernel.to_string(),
                        fragments: fragments.iter().map(|f| f.to_string()).collect(),
                        ops: o.cloned(),
                        topology: topology.clone(),
                        accel: *accel,
                        suites: raw
                            .topologies
                            .get(topology)
                            .map_or_else(|| k.suites.clone(), |t| t.suites.clone()),
                        timeout_minutes: k.timeout_minutes,
                        schedule: Schedule::Push,
                    });
                }
            }
        }
    }
    cells
}

/// The `nightly:` cells, checked: each value one of its axis, ops exactly when the kernel
/// has the ops axis, suites known, a timeout GitHub allows.
fn nightly_cells(
    raw: &MatrixFile,
    known: &Known,
    problems: &mut Vec<(KeyPath, String)>,
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for (i, n) in raw.nightly.iter().enumerate() {
        let at = path("nightly").index(i);
        let before = problems.len();
        let kernel = raw.kernels.get(&n.kernel);
        if !raw.axes.kernel.contains(&n.kernel) {
            problems.push((
                at.key("kernel"),
                format!(
                    "{:?} is not a value of axes.kernel ({})",
                    n.kernel,
                    raw.axes.kernel.join(", ")
                ),
            ));
        }
        match (kernel.map(|k| k.ops), &n.ops) {
            (Some(true), None) => problems.push((
                at.clone(),
                format!(
                    "missing `ops`: kernel {:?} has the ops axis ({})",
                    n.kernel,
                    raw.axes.ops.join(", ")
                ),
            )),
            (Some(false), Some(_)) => problems.push((
                at.key("ops"),
                format!("kernel {:?} has no ops axis (`ops: false`)", n.kernel),
            )),
            (_, Some(o)) if !raw.axes.ops.contains(o) => problems.push((
                at.key("ops"),
                format!(
                    "{o:?} is not a value of axes.ops ({})",
                    raw.axes.ops.join(", ")
                ),
            )),
            _ => {}
        }
        if !raw.axes.topology.contains(&n.topology) {
            problems.push((
                at.key("topology"),
                format!(
                    "{:?} is not a value of axes.topology ({})",
                    n.topology,
                    raw.axes.topology.join(", ")
                ),
            ));
        }
        if !raw.axes.accel.contains(&n.accel) {
            problems.push((
                at.key("accel"),
                format!("{} is not a value of axes.accel", n.accel),
            ));
        }
        check_suites_and_timeout(&at, &n.suites, n.timeout_minutes, known, problems);
        if problems.len() > before {
            continue;
        }
        let (kernel, fragments) = split_label(&n.kernel);
        let mut id = n.kernel.clone();
        if let Some(o) = &n.ops {
            id = format!("{id}.{o}");
        }
        cells.push(Cell {
            id: format!("{id}.{}.{}{NIGHTLY_SUFFIX}", n.topology, n.accel),
            label: n.kernel.clone(),
            kernel: kernel.to_string(),
            fragments: fragments.iter().map(|f| f.to_string()).collect(),
            ops: n.ops.clone(),
            topology: n.topology.clone(),
            accel: n.accel,
            suites: n.suites.clone(),
            timeout_minutes: n.timeout_minutes,
            schedule: Schedule::Nightly,
        });
    }
    cells
}

fn check_exclusions(raw: &MatrixFile, all: &[Cell], problems: &mut Vec<(KeyPath, String)>) {
    let accels: Vec<String> = raw
        .axes
        .accel
        .iter()
        .map(|a| a.as_str().to_string())
        .collect();
    for (i, rule) in raw.exclude.iter().enumerate() {
        let at = path("exclude").index(i);
        let fields = rule.fields();
        if fields.iter().all(|(_, v)| v.is_none()) {
            problems.push((
                at,
                "empty: name at least one of kernel, ops, topology, accel".into(),
            ));
            continue;
        }
        let mut bad = false;
        for (axis, value) in fields {
            let Some(value) = value else { continue };
            let values: &[String] = match axis {
                "kernel" => &raw.axes.kernel,
                "ops" => &raw.axes.ops,
                "topology" => &raw.axes.topology,
                _ => &accels,
            };
            if !values.iter().any(|v| v == value) {
                problems.push((
                    at.key(axis),
                    format!(
                        "{value:?} is not a value of axes.{axis} ({})",
                        values.join(", ")
                    ),
                ));
                bad = true;
            }
        }
        if !bad && !all.iter().any(|c| rule.matches(c)) {
            problems.push((
                at,
                "excludes no cell (does it name ops for a kernel without the ops axis?)".into(),
            ));
        }
    }
}

#[cfg(test)]
#[path = "matrix_tests.rs"]
mod tests;
