//! `cargo xtask kernel ...`: build and list kernels.

use anyhow::Result;
use clap::{Args, Subcommand};
use lab_host::prereqs::Need;
use lab_host::stage::Timings;
use std::path::PathBuf;
use xshell::Shell;

#[derive(Subcommand)]
pub enum Kernel {
    /// Builds a kernel (or finds it in the cache) and prints its directory.
    Build(BuildArgs),
    /// Lists the kernels defined in kernels/.
    List,
    /// Runs scripts/checkpatch.pl --strict on every patch of the series.
    Checkpatch(BuildArgs),
    /// Builds every prefix of the series: each patch must build alone.
    BisectBuild(BuildArgs),
    /// Mutation testing: builds each mutant of kernels/<k>/mutants/ and runs the suites on it.
    Mutate(crate::mutate::MutateArgs),
}

/// Which kernel, shared by every verb that needs one.
#[derive(Args, Clone, Debug)]
pub struct BuildArgs {
    /// A directory of kernels/ with a kernel.yaml.
    #[arg(long, default_value = "famfs-bpf")]
    pub kernel: String,
    /// Build this kernel tree (yours) instead of the kernel's source.
    #[arg(long)]
    pub source_dir: Option<PathBuf>,
    /// An extra config fragment (a name in kernels/config, or a path).
    #[arg(long = "fragment")]
    pub fragments: Vec<String>,
    /// Only check host tools; never install.
    #[arg(long)]
    pub no_install: bool,
    /// Download the Debian source again.
    #[arg(long)]
    pub refresh_source: bool,
    /// make -j (default: cores + 1).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// A mutant on top of the series (`kernel mutate` only).
    #[arg(skip)]
    pub mutant: Option<Box<lab_kernel::mutant::Mutant>>,
}

impl BuildArgs {
    /// Builds the kernel these flags describe.
    pub fn build(&self, sh: &Shell, t: &mut Timings) -> Result<lab_kernel::BuiltKernel> {
        crate::host::ensure(sh, &[Need::Kernel], self.no_install)?;
        lab_kernel::build(sh, &self.request(), t)
    }

    /// The build request these flags describe.
    pub fn request(&self) -> lab_kernel::BuildRequest {
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        lab_kernel::BuildRequest {
            kernels_dir: lab_host::paths::repo_root().join("kernels"),
            kernel: self.kernel.clone(),
            source_dir: self.source_dir.clone(),
            extra_fragments: self.fragments.clone(),
            cache_root: lab_host::paths::cache_root(),
            jobs: self.jobs.unwrap_or(cores + 1),
            refresh_source: self.refresh_source,
            mutant: self.mutant.as_deref().cloned(),
        }
    }
}

impl Kernel {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Kernel::Build(args) => {
                let mut t = Timings::default();
                let built = args.build(sh, &mut t)?;
                println!("{}", built.entry.dir.display());
                if !t.stages().is_empty() {
                    eprint!("{}", t.table());
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
                crate::host::ensure(sh, &[Need::Kernel], args.no_install)?;
                let failed = lab_kernel::build::bisect_build(sh, &args.request(), &mut t)?;
                eprint!("{}", t.table());
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
            Kernel::List => {
                let dir = lab_host::paths::repo_root().join("kernels");
                for name in lab_kernel::spec::list(&dir)? {
                    let spec = lab_kernel::KernelSpec::load(&dir, &name)?;
                    println!("{name:12} {}", spec.description);
                }
                Ok(())
            }
        }
    }
}
