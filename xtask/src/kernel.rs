//! `cargo xtask kernel ...`: build and list kernels.

use anyhow::Result;
use clap::Subcommand;
use lab_host::stage::Timings;
use xshell::Shell;

use crate::build_args::BuildArgs;

#[derive(Subcommand)]
pub enum Kernel {
    /// Builds a kernel (or finds it in the cache) and prints its directory.
    Build(BuildArgs),
    /// Lists the kernels defined in kernels/: name, description, config fragments.
    List {
        /// As JSON: `[{name, description, fragments: [path, ...], targets: [...]}]`.
        #[arg(long)]
        json: bool,
    },
    /// Runs scripts/checkpatch.pl --strict on every patch of the series.
    Checkpatch(BuildArgs),
    /// Builds every prefix of the series: each patch must build alone.
    BisectBuild(BuildArgs),
    /// Mutation testing: builds each mutant of kernels/<k>/mutants/ and runs the suites on it.
    Mutate(crate::mutate::MutateArgs),
}

impl Kernel {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Kernel::Build(args) => {
                let mut t = Timings::default();
                let built = args.build(sh, &mut t)?;
                println!("{}", built.entry.dir.display());
                if !t.stages().is_empty() {
                    lab_host::say::progress_block(&t.table());
                }
                Ok(())
            }
            Kernel::Checkpatch(args) => {
                let req = args.request();
                let (_, patches, tree) = lab_kernel::verify::source_tree(sh, &req)?;
                let results = lab_kernel::verify::checkpatch(sh, &tree, &patches)?;
                let dirty: Vec<_> = results.iter().filter(|r| !r.clean).collect();
                for r in &results {
                    println!("{} {}", if r.clean { "clean" } else { "DIRTY" }, r.patch);
                    // A dirty patch's findings; a clean one's answered warning, if any.
                    if !r.output.trim().is_empty() {
                        println!("  {}", r.output.trim_end());
                    }
                }
                println!(
                    "{} patches, {} clean, {} with findings",
                    results.len(),
                    results.len() - dirty.len(),
                    dirty.len()
                );
                if !dirty.is_empty() {
                    anyhow::bail!("checkpatch --strict is not clean");
                }
                Ok(())
            }
            Kernel::BisectBuild(args) => {
                let mut t = Timings::default();
                crate::host::preflight(sh, crate::host::KERNEL_STAGES, args.no_install)?;
                let failed = lab_kernel::build::bisect_build(sh, &args.request(), &mut t)?;
                lab_host::say::progress_block(&t.table());
                for (patch, err) in &failed {
                    println!("FAILS TO BUILD: {patch}\n{err}");
                }
                if !failed.is_empty() {
                    anyhow::bail!("{} patch(es) do not build on their own", failed.len());
                }
                println!("every prefix of the series builds");
                Ok(())
            }
            Kernel::Mutate(args) => crate::mutate::run(sh, &args),
            Kernel::List { json } => {
                let root = lab_host::paths::repo_root();
                let kernels = list(&root)?;
                if json {
                    println!("{}", serde_json::Value::Array(kernels));
                } else {
                    print!("{}", list_text(&kernels));
                }
                Ok(())
            }
        }
    }
}

/// The kernels of `root/kernels/`, each `{name, description, fragments, targets}` (fragment
/// paths relative to `root`).
fn list(root: &std::path::Path) -> Result<Vec<serde_json::Value>> {
    let dir = root.join("kernels");
    let mut out = Vec::new();
    for name in lab_kernel::spec::list(&dir)? {
        let spec = lab_kernel::KernelSpec::load(&dir, &name)?;
        let fragments: Vec<String> = spec
            .fragments
            .iter()
            .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
            .collect();
        out.push(serde_json::json!({
            "name": name,
            "description": spec.description,
            "fragments": fragments,
            "targets": spec.targets,
        }));
    }
    Ok(out)
}

/// `kernel list`'s table: the name and description, then the fragments, one line each.
fn list_text(kernels: &[serde_json::Value]) -> String {
    let mut s = String::new();
    for k in kernels {
        let name = k["name"].as_str().unwrap_or_default();
        let description = k["description"].as_str().unwrap_or_default();
        s.push_str(&format!("{name:12} {description}\n"));
        let fragments: Vec<&str> = k["fragments"]
            .as_array()
            .map(|a| a.iter().filter_map(|f| f.as_str()).collect())
            .unwrap_or_default();
        s.push_str(&format!("{:12} fragments: {}\n", "", fragments.join(" ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_has_every_kernel_with_description_and_fragments() {
        let root = lab_host::paths::repo_root();
        let kernels = list(&root).unwrap_or_else(|e| panic!("{e:#}"));
        let names: Vec<&str> = kernels.iter().filter_map(|k| k["name"].as_str()).collect();
        assert!(
            names.contains(&"famfs-bpf") && names.contains(&"stock"),
            "{names:?}"
        );
        for k in &kernels {
            assert!(
                !k["description"].as_str().unwrap_or_default().is_empty(),
                "{k}"
            );
            let fragments = k["fragments"].as_array().expect("fragments");
            assert!(!fragments.is_empty(), "{k}");
            for f in fragments {
                let f = f.as_str().expect("a path");
                assert!(f.ends_with(".config") && root.join(f).is_file(), "{f}");
            }
        }
        let text = list_text(&kernels);
        assert!(
            text.contains("famfs-bpf") && text.contains("fragments: kernels/"),
            "{text}"
        );
    }
}
