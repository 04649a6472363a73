//! Upstream hygiene of a patch series: checkpatch on every patch, and
//! every prefix of the series builds ("each patch builds on its own").

use crate::series::{self, Patch};
use crate::spec::KernelSpec;
use crate::{source, BuildRequest};
use anyhow::{bail, Context, Result};
use std::path::Path;
use xshell::{cmd, Shell};

/// What checkpatch said about one patch.
#[derive(Debug)]
pub struct CheckResult {
    pub patch: String,
    pub clean: bool,
    pub output: String,
}

/// Runs `scripts/checkpatch.pl --strict` from `tree` on every patch.
pub fn checkpatch(sh: &Shell, tree: &Path, patches: &[Patch]) -> Result<Vec<CheckResult>> {
    let script = tree.join("scripts/checkpatch.pl");
    if !script.is_file() {
        bail!(
            "{} not found: build the kernel once so its source is unpacked",
            script.display()
        );
    }
    let _cd = sh.push_dir(tree);
    patches
        .iter()
        .map(|p| {
            let path = &p.path;
            let out = cmd!(sh, "perl {script} --strict --no-signoff --quiet {path}")
                .quiet()
                .ignore_status()
                .output()
                .with_context(|| format!("running checkpatch on {}", p.name))?;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(CheckResult {
                patch: p.name.clone(),
                clean: out.status.success() && text.trim().is_empty(),
                output: text,
            })
        })
        .collect()
}

/// The source tree checkpatch runs from: the kernel's own source.
pub fn source_tree(
    sh: &Shell,
    req: &BuildRequest,
) -> Result<(KernelSpec, Vec<Patch>, std::path::PathBuf)> {
    let spec = KernelSpec::load(&req.kernels_dir, &req.kernel)?;
    let patches = series::read(&spec.patches_dir())?;
    let resolved = source::resolve(sh, &spec.source, &req.cache_root, false)?;
    let tree = match &resolved.kind {
        source::Kind::Repo { repo, .. } => repo.clone(),
        source::Kind::Tree(path) => path.clone(),
    };
    Ok((spec, patches, tree))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_checkpatch_is_a_clear_error() {
        let sh = Shell::new().unwrap();
        let d = tempfile::tempdir().unwrap();
        let msg = checkpatch(&sh, d.path(), &[]).unwrap_err().to_string();
        assert!(msg.contains("checkpatch.pl"), "{msg}");
    }

    #[test]
    fn checkpatch_runs_each_patch_and_reports_dirt() {
        let sh = Shell::new().unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("scripts")).unwrap();
        // A stand-in checkpatch: complains about patches containing "bad".
        std::fs::write(
            d.path().join("scripts/checkpatch.pl"),
            "my $f = $ARGV[-1]; open(my $h, '<', $f) or die; my $t = do { local $/; <$h> };\n\
             if ($t =~ /bad/) { print \"ERROR: bad thing\\n\"; exit 1 } exit 0;\n",
        )
        .unwrap();
        let mk = |name: &str, body: &str| {
            let path = d.path().join(name);
            std::fs::write(&path, body).unwrap();
            Patch {
                name: name.into(),
                path,
                bytes: body.as_bytes().to_vec(),
            }
        };
        let got = checkpatch(
            &sh,
            d.path(),
            &[mk("1.patch", "good"), mk("2.patch", "bad")],
        )
        .unwrap();
        assert!(got[0].clean, "{:?}", got[0]);
        assert!(
            !got[1].clean && got[1].output.contains("ERROR"),
            "{:?}",
            got[1]
        );
    }
}
