//! Stage timing and progress for the lab's pipeline. Every stage prints a
//! start line and its wall time; a run ends with a timing table.

use indicatif::{ProgressBar, ProgressStyle};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Marks now as the command's start (the first thing `main` does), for
/// [`since_process_start`].
pub fn mark_process_start() {
    PROCESS_START.get_or_init(Instant::now);
}

/// The time since [`mark_process_start`], if it was called: where in the command a stage began
/// (`lab bench boot` places QEMU's start with it).
pub fn since_process_start() -> Option<Duration> {
    PROCESS_START.get().map(Instant::elapsed)
}

/// Collects the wall time of each stage of one command.
#[derive(Debug, Default)]
pub struct Timings {
    stages: Vec<(String, Duration)>,
    /// Stages that ran beside others (in another thread): shown, not added to the total.
    beside: Vec<(String, Duration)>,
}

impl Timings {
    /// Runs `f` as stage `name`, printing its start and its time.
    pub fn stage<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        crate::progress!("==> {name}");
        let start = Instant::now();
        let out = f();
        let took = start.elapsed();
        let verdict = if out.is_ok() { "done" } else { "FAILED" };
        crate::progress!("<== {name}: {verdict} in {:.1}s", took.as_secs_f64());
        self.stages.push((name.to_string(), took));
        out
    }

    /// Records a stage timed elsewhere.
    pub fn record(&mut self, name: &str, took: Duration) {
        self.stages.push((name.to_string(), took));
    }

    /// Records a stage that ran beside the others (timed in another thread): the table shows
    /// it, marked, and leaves it out of the total.
    pub fn record_beside(&mut self, name: &str, took: Duration) {
        self.beside.push((name.to_string(), took));
    }

    /// Moves `other`'s stages here as stages that ran beside these.
    pub fn absorb_beside(&mut self, other: Timings) {
        self.beside.extend(other.stages);
        self.beside.extend(other.beside);
    }

    /// The recorded stages (not those beside them).
    pub fn stages(&self) -> &[(String, Duration)] {
        &self.stages
    }

    /// A table of stage times, for the end of a run.
    pub fn table(&self) -> String {
        const MARK: &str = " (beside)";
        let width = self
            .stages
            .iter()
            .map(|(n, _)| n.len())
            .chain(self.beside.iter().map(|(n, _)| n.len() + MARK.len()))
            .max()
            .unwrap_or(5)
            .max(5);
        let mut out = format!("{:width$}  seconds\n", "stage");
        let mut total = Duration::ZERO;
        for (name, took) in &self.stages {
            out.push_str(&format!("{name:width$}  {:7.1}\n", took.as_secs_f64()));
            total += *took;
        }
        for (name, took) in &self.beside {
            let name = format!("{name}{MARK}");
            out.push_str(&format!("{name:width$}  {:7.1}\n", took.as_secs_f64()));
        }
        out.push_str(&format!(
            "{:width$}  {:7.1}\n",
            "total",
            total.as_secs_f64()
        ));
        out
    }
}

/// A progress bar for `len` steps (hidden when stderr is not a terminal, or with `-q`).
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !crate::say::progress_enabled() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{spinner} {msg} [{elapsed_precise}] {wide_bar} {pos}/~{len} (eta {eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_stages_and_total() {
        let mut t = Timings::default();
        t.record("kernel", Duration::from_millis(1500));
        t.record("boot", Duration::from_millis(2500));
        let table = t.table();
        assert!(table.contains("kernel"), "{table}");
        assert!(table.contains("    1.5"), "{table}");
        assert!(table.lines().last().unwrap().contains("4.0"), "{table}");
    }

    #[test]
    fn stages_beside_others_are_shown_but_not_added_up() {
        let mut t = Timings::default();
        t.record("boot", Duration::from_millis(2500));
        let mut lookup = Timings::default();
        lookup.record("kernel", Duration::from_millis(300));
        lookup.record_beside("binaries", Duration::from_millis(200));
        t.absorb_beside(lookup);
        let table = t.table();
        assert!(table.contains("kernel (beside)"), "{table}");
        assert!(table.contains("binaries (beside)"), "{table}");
        assert!(table.lines().last().unwrap().contains("2.5"), "{table}");
        assert_eq!(t.stages().len(), 1);
    }

    #[test]
    fn failed_stage_is_still_timed() {
        let mut t = Timings::default();
        let r: anyhow::Result<()> = t.stage("x", || anyhow::bail!("no"));
        assert!(r.is_err());
        assert_eq!(t.stages().len(), 1);
    }
}
