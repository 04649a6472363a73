//! Writes a run's report files into its directory, each atomically.

use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;

use crate::error::{Error, Result};
use crate::model::RunReport;
use crate::{junit, ktap};

/// KTAP file name in a run directory.
pub const RESULTS_KTAP: &str = "results.ktap";
/// JUnit XML file name in a run directory.
pub const JUNIT_XML: &str = "junit.xml";
/// JSON file name in a run directory.
pub const RESULTS_JSON: &str = "results.json";

/// Writes `results.ktap`, `junit.xml` and `results.json` into `dir`
/// (created if missing). Each file is written to a temporary file in `dir`,
/// synced, then renamed over the target, so readers never see partial files.
pub fn write_run_dir(dir: &Path, report: &RunReport) -> Result<()> {
    let files = [
        (RESULTS_KTAP, ktap::write(report)),
        (JUNIT_XML, junit::write(report)?),
        (RESULTS_JSON, report.to_json()? + "\n"),
    ];
    std::fs::create_dir_all(dir).map_err(|source| Error::File {
        path: dir.to_path_buf(),
        source,
    })?;
    for (name, text) in files {
        write_atomic(dir, name, &text)?;
    }
    Ok(())
}

/// Writes `dir/name` through a temporary file in `dir`, synced and renamed into place: a
/// reader never sees half of it.
pub fn write_atomic(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    let fail = |source| Error::File {
        path: path.clone(),
        source,
    };
    let mut tmp = NamedTempFile::with_prefix_in(format!(".{name}."), dir).map_err(fail)?;
    tmp.write_all(text.as_bytes()).map_err(fail)?;
    tmp.as_file().sync_all().map_err(fail)?;
    tmp.persist(&path).map_err(|e| fail(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::report;

    #[test]
    fn writes_three_files_that_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = dir.path().join("runs/run-42");
        let r = report();
        write_run_dir(&run, &r).expect("write");

        let read = |name: &str| std::fs::read_to_string(run.join(name)).expect(name);
        assert_eq!(read(RESULTS_KTAP), ktap::write(&r));
        assert_eq!(read(JUNIT_XML), junit::write(&r).expect("junit"));
        assert_eq!(RunReport::from_json(&read(RESULTS_JSON)).expect("json"), r);

        // Rewriting replaces the files and leaves no temporaries behind.
        let mut r2 = r.clone();
        r2.run_id = "run-43".into();
        write_run_dir(&run, &r2).expect("rewrite");
        assert_eq!(RunReport::from_json(&read(RESULTS_JSON)).expect("json"), r2);
        let mut names: Vec<_> = std::fs::read_dir(&run)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [JUNIT_XML, RESULTS_JSON, RESULTS_KTAP]);
    }

    #[test]
    fn unwritable_dir_reports_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "x").expect("write");
        let err = write_run_dir(&file, &report()).expect_err("must fail");
        assert!(
            matches!(&err, Error::File { path, .. } if path == &file),
            "{err}"
        );
    }
}
