//! `cargo xtask image build`: the guest binaries and the initramfs.

use anyhow::{Context, Result};
use clap::Args;
use lab_host::prereqs::Stage;
use lab_host::stage::Timings;
use std::path::PathBuf;
use xshell::{cmd, Shell};

use crate::build_args::BuildArgs;

/// Our binaries that go into the guest, with their guest paths.
const GUEST_BINARIES: &[(&str, &str)] = &[
    ("famfs-lab-agent", "/usr/bin/famfs-lab-agent"),
    ("famfs-lab-cases", "/usr/bin/famfs-lab-cases"),
    ("famfs-fused", "/usr/bin/famfs-fused"),
];
/// The guest's PID 1.
const INIT: &str = "/usr/bin/famfs-lab-agent";

#[derive(Args, Debug)]
pub struct ImageArgs {
    #[command(flatten)]
    pub kernel: BuildArgs,
}

impl ImageArgs {
    pub fn run(self, sh: &Shell) -> Result<()> {
        let mut t = Timings::default();
        crate::host::preflight(sh, crate::host::IMAGE_STAGES, self.kernel.no_install)?;
        let kernel = self.kernel.build(sh, &mut t)?;
        let image = build(sh, &kernel, self.kernel.no_install, &mut t)?;
        println!("{}", image.path.display());
        lab_host::say::progress_block(&t.table());
        Ok(())
    }
}

/// Builds the guest binaries (profile `guest`) and the image for `kernel`.
pub fn build(
    sh: &Shell,
    kernel: &lab_kernel::BuiltKernel,
    no_install: bool,
    t: &mut Timings,
) -> Result<lab_image::BuiltImage> {
    let binaries = t.stage("image: guest binaries", || guest_binaries(sh, no_install))?;
    t.stage("image: initramfs", || initramfs(kernel, &binaries))
}

/// The guest binaries, built (profile `guest`): their target directory. Needs no kernel, so
/// `lab up` builds them while it looks for the kernel.
pub fn guest_binaries(sh: &Shell, no_install: bool) -> Result<GuestBinaries> {
    crate::host::preflight(sh, &[Stage::GuestBinaries, Stage::Initramfs], no_install)?;
    let packages: Vec<String> = GUEST_BINARIES
        .iter()
        .flat_map(|(p, _)| ["-p".to_string(), p.to_string()])
        .collect();
    let cargo = crate::cargo();
    // Where they land is cargo's to say (`cargo metadata`, 30 ms): asked beside the build.
    let target_dir = std::thread::scope(|scope| {
        let dir = sh.current_dir();
        let target_dir = scope.spawn(move || {
            let sh = Shell::new()?;
            sh.change_dir(dir);
            cargo_target_dir(&sh)
        });
        lab_host::say::run(cmd!(
            sh,
            "{cargo} build --quiet --profile guest {packages...}"
        ))
        .context("building the guest binaries")?;
        target_dir
            .join()
            .map_err(|_| anyhow::anyhow!("asking cargo for its target directory panicked"))?
    })?;
    Ok(GuestBinaries {
        dir: target_dir.join("guest"),
    })
}

/// Where the guest binaries were built.
pub struct GuestBinaries {
    dir: PathBuf,
}

/// The initramfs of `kernel` with the guest binaries (built or found in the cache).
pub fn initramfs(
    kernel: &lab_kernel::BuiltKernel,
    binaries: &GuestBinaries,
) -> Result<lab_image::BuiltImage> {
    let root = lab_host::paths::repo_root();
    let recipe = lab_image::Recipe::load(&root.join("images/guest.yaml"))?;
    let extra_files = GUEST_BINARIES
        .iter()
        .map(|(bin, guest)| (binaries.dir.join(bin), guest.to_string(), 0o755))
        .collect();
    let modules = kernel
        .entry
        .modules_root()
        .join("lib/modules")
        .join(&kernel.meta.release);
    let inputs = lab_image::ImageInputs {
        recipe,
        extra_files,
        kernel_modules_dir: modules.is_dir().then_some(modules),
        init: INIT.to_string(),
    };
    let image = lab_image::build(&inputs, &lab_host::paths::cache_root())?;
    for note in &image.notes {
        lab_host::progress!("famfs-lab: image: {note}");
    }
    lab_host::progress!(
        "famfs-lab: image {} ({} MiB, {} entries{})",
        image.hash,
        image.size >> 20,
        image.files,
        if image.cache_hit { ", cached" } else { "" }
    );
    Ok(image)
}

/// Cargo's target directory (respects CARGO_TARGET_DIR).
fn cargo_target_dir(sh: &Shell) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let cargo = crate::cargo();
    let meta = cmd!(sh, "{cargo} metadata --format-version 1 --no-deps")
        .quiet()
        .read()?;
    let v: serde_json::Value = serde_json::from_str(&meta).context("parsing cargo metadata")?;
    v.get("target_directory")
        .and_then(|d| d.as_str())
        .map(PathBuf::from)
        .context("cargo metadata has no target_directory")
}
