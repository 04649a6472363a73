//! Which kernel a verb builds or uses (`--kernel`, `--source-dir`, ...): the flags every verb
//! that needs a kernel shares, and the build request they make.

use anyhow::Result;
use clap::Args;
use lab_host::stage::Timings;
use std::path::PathBuf;
use xshell::Shell;

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
    /// A mutant on top of the series (`kernel mutate`, `lab exec --mutant`).
    #[arg(skip)]
    pub mutant: Option<Box<lab_kernel::mutant::Mutant>>,
    /// A step of a bisection (`lab bisect` only).
    #[arg(skip)]
    pub step: Option<Box<lab_kernel::build::BisectStep>>,
    /// Only take the kernel from the cache, never build it (`lab exec --mutant`).
    #[arg(skip)]
    pub cached_only: bool,
}

impl BuildArgs {
    /// Builds the kernel these flags describe.
    pub fn build(&self, sh: &Shell, t: &mut Timings) -> Result<lab_kernel::BuiltKernel> {
        crate::host::preflight(sh, crate::host::KERNEL_STAGES, self.no_install)?;
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
            step: self.step.as_deref().cloned(),
            cached_only: self.cached_only,
        }
    }
}
