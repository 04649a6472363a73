//! The repository's CI data: `ci/matrix.yaml` and `ci/expected/`, loaded and checked against
//! the repository and the case catalog. `lab up` applies the expectations to a run; the `ci`
//! verbs print and check both.

use anyhow::{Context, Result};
use lab_ci::{ExpectedFailures, Known, Matrix};

/// ci/matrix.yaml and ci/expected/, checked against the repository and the
/// case catalog.
pub(crate) fn load() -> Result<(Matrix, ExpectedFailures)> {
    let root = lab_host::paths::repo_root();
    let mut known = Known::from_repo(&root)?;
    known.suites = lab_suite::catalog::SUITES
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    known.cases = lab_suite::catalog::CASES.iter().map(|c| c.id()).collect();
    let path = root.join(lab_ci::matrix::MATRIX_FILE);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let matrix = Matrix::parse(&text, lab_ci::matrix::MATRIX_FILE, &known)?;
    known.ops = matrix.ops().to_vec();
    let expected = ExpectedFailures::load_dir(&root.join(lab_ci::expected::EXPECTED_DIR), &known)?;
    Ok((matrix, expected))
}
