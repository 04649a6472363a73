//! Builds the guest image from a recipe and prints where it is and how long it took.
//!
//! cargo run -p lab-image --release --example build-image -- \
//!     [--recipe images/guest.yaml] [--cache DIR] [--modules lib/modules/<release>] \
//!     [--extra HOST:GUEST:MODE]... --init GUEST_PATH

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use lab_image::{build, default_cache_root, ImageInputs, Recipe};

fn main() -> anyhow::Result<()> {
    let mut recipe = PathBuf::from("images/guest.yaml");
    let (mut cache, mut modules, mut init, mut extra) = (None, None, None, Vec::new());
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--recipe" => recipe = value()?.into(),
            "--cache" => cache = Some(PathBuf::from(value()?)),
            "--modules" => modules = Some(PathBuf::from(value()?)),
            "--init" => init = Some(value()?),
            "--extra" => {
                let v = value()?;
                let mut it = v.splitn(3, ':');
                let (Some(h), Some(g), Some(m)) = (it.next(), it.next(), it.next()) else {
                    bail!("--extra wants HOST:GUEST:MODE, got {v}");
                };
                extra.push((h.into(), g.into(), u32::from_str_radix(m, 8)?));
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let t = Instant::now();
    let inputs = ImageInputs {
        recipe: Recipe::load(&recipe)?,
        extra_files: extra,
        kernel_modules_dir: modules,
        init: init.context("--init GUEST_PATH is required")?,
    };
    let cache = match cache {
        Some(c) => c,
        None => default_cache_root()?,
    };
    let img = build(&inputs, &cache)?;
    for note in &img.notes {
        println!("note: {note}");
    }
    println!(
        "{} hit={} entries={} size={} time={:.2?}\nmanifest {}",
        img.path.display(),
        img.cache_hit,
        img.files,
        img.size,
        t.elapsed(),
        img.manifest.display()
    );
    Ok(())
}
