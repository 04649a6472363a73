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
    let maintainers = std::fs::read_to_string(tree.join("MAINTAINERS")).unwrap_or_default();
    // checkpatch's SPDX check runs scripts/spdxcheck.py with `env python3`: the system one,
    // which has the python3-ply and python3-git the host setup installs (not a pyenv shim's).
    let path_env = format!(
        "/usr/bin:{}",
        std::env::var("PATH").unwrap_or_else(|_| "/bin".into())
    );
    patches
        .iter()
        .map(|p| {
            let path = &p.path;
            let out = cmd!(sh, "perl {script} --strict --no-signoff --quiet {path}")
                .env("PATH", &path_env)
                .quiet()
                .ignore_status()
                .output()
                .with_context(|| format!("running checkpatch on {}", p.name))?;
            let mut text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            let mut clean = out.status.success() && text.trim().is_empty();
            if !clean {
                if let Some(answer) = maintainers_answer(&text, &p.bytes, &maintainers) {
                    clean = true;
                    text = answer;
                }
            }
            Ok(CheckResult {
                patch: p.name.clone(),
                clean,
                output: text,
            })
        })
        .collect()
}

/// checkpatch warns "added, moved or deleted file(s), does MAINTAINERS need updating?" for
/// every patch that adds a file and leaves MAINTAINERS alone. When that is its only finding
/// and every added file is under an `F:` directory of MAINTAINERS already, the answer is no:
/// returns that answer (the section of each file). Anything else stays a finding.
fn maintainers_answer(output: &str, patch: &[u8], maintainers: &str) -> Option<String> {
    let findings = output
        .lines()
        .filter(|l| l.starts_with("WARNING:") || l.starts_with("ERROR:") || l.starts_with("CHECK:"))
        .collect::<Vec<_>>();
    if findings.len() != 1 || !findings[0].contains("does MAINTAINERS need updating?") {
        return None;
    }
    let patch = String::from_utf8_lossy(patch);
    let mut added = Vec::new();
    let mut current = None;
    for l in patch.lines() {
        if let Some(rest) = l.strip_prefix("diff --git a/") {
            current = rest.split_once(" b/").map(|(_, b)| b.to_string());
        } else if l.starts_with("new file mode") {
            added.push(current.clone()?);
        }
    }
    if added.is_empty() {
        return None;
    }
    let mut answer = Vec::new();
    for file in &added {
        let (section, dir) = covering_section(maintainers, file)?;
        answer.push(format!("{file} is under F: {dir} ({section})"));
    }
    Some(format!(
        "FILE_PATH_CHANGES answered, MAINTAINERS needs no update: {}",
        answer.join("; ")
    ))
}

/// The MAINTAINERS section with an `F:` directory holding `file`, and that pattern: `dir/`
/// (anything below dir) or `dir/*` (files directly in dir, as MAINTAINERS reads it). Of
/// several, the most specific (longest) pattern: `Documentation/filesystems/fuse/*` (FUSE)
/// rather than `Documentation/` (DOCUMENTATION).
fn covering_section(maintainers: &str, file: &str) -> Option<(String, String)> {
    let mut section = String::new();
    let mut best: Option<(String, String)> = None;
    for l in maintainers.lines() {
        if let Some(pat) = l.strip_prefix("F:") {
            let pat = pat.trim();
            let covers = if let Some(dir) = pat.strip_suffix('*').filter(|d| d.ends_with('/')) {
                file.strip_prefix(dir)
                    .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
            } else {
                pat.ends_with('/') && file.starts_with(pat)
            };
            if covers && best.as_ref().is_none_or(|(_, b)| pat.len() > b.len()) {
                best = Some((section.clone(), pat.to_string()));
            }
        } else if !l.is_empty()
            && !l.starts_with(char::is_whitespace)
            && l.chars().nth(1) != Some(':')
        {
            section = l.trim().to_string();
        }
    }
    best
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

    const MAINTAINERS: &str = "FUSE: FILESYSTEM IN USERSPACE\nM:\tSomeone <s@example.org>\nS:\tMaintained\nF:\tfs/fuse/\nF:\tinclude/uapi/linux/fuse.h\n\nOTHER\nF:\tdrivers/dax/\n";
    const WARN: &str = "WARNING: added, moved or deleted file(s), does MAINTAINERS need updating?\n#80: \nnew file mode 100644\n\ntotal: 0 errors, 1 warnings, 0 checks, 448 lines checked\n";

    fn adding(files: &[&str]) -> Vec<u8> {
        files
            .iter()
            .map(|f| {
                format!("diff --git a/{f} b/{f}\nnew file mode 100644\n--- /dev/null\n+++ b/{f}\n")
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn a_new_file_under_a_maintained_directory_answers_the_maintainers_warning() {
        let got = maintainers_answer(WARN, &adding(&["fs/fuse/new.c"]), MAINTAINERS).unwrap();
        assert!(
            got.contains("fs/fuse/new.c is under F: fs/fuse/ (FUSE: FILESYSTEM IN USERSPACE)"),
            "{got}"
        );
    }

    #[test]
    fn a_dir_star_pattern_covers_files_directly_in_the_dir() {
        let m = "DOCUMENTATION\nF:\tDocumentation/\n\nFUSE FILESYSTEM [CORE]\nF:\tDocumentation/filesystems/fuse/*\nF:\tfs/fuse/\n";
        let got = maintainers_answer(
            WARN,
            &adding(&["Documentation/filesystems/fuse/fuse-dax-fmap.rst"]),
            m,
        )
        .unwrap();
        assert!(
            got.contains("is under F: Documentation/filesystems/fuse/* (FUSE FILESYSTEM [CORE])"),
            "{got}"
        );
        // A file in a subdirectory, or in a directory with the same prefix: only Documentation/.
        for f in [
            "Documentation/filesystems/fuse/uapi/new.rst",
            "Documentation/filesystems/fuse2/new.rst",
        ] {
            let got = maintainers_answer(WARN, &adding(&[f]), m).unwrap();
            assert!(
                got.contains("under F: Documentation/ (DOCUMENTATION)"),
                "{got}"
            );
        }
    }

    #[test]
    fn an_uncovered_file_or_another_finding_stays_a_finding() {
        assert!(maintainers_answer(
            WARN,
            &adding(&["fs/fuse/a.c", "include/linux/x.h"]),
            MAINTAINERS
        )
        .is_none());
        let two = format!("{WARN}CHECK: Alignment should match open parenthesis\n");
        assert!(maintainers_answer(&two, &adding(&["fs/fuse/a.c"]), MAINTAINERS).is_none());
        assert!(maintainers_answer(
            "ERROR: trailing whitespace\n",
            &adding(&["fs/fuse/a.c"]),
            MAINTAINERS
        )
        .is_none());
        // A file pattern, not a directory, does not cover a new file beside it.
        assert!(
            maintainers_answer(WARN, &adding(&["include/uapi/linux/fuse2.h"]), MAINTAINERS)
                .is_none()
        );
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
