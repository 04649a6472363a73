//! `cargo xtask test`'s checks of `lab up`'s guess ([`crate::guess`]): a stale guess never
//! reaches the guest, and the cases run on what the lookup found.

use crate::up::UpArgs;
use anyhow::{bail, Context, Result};
use lab_runner::run::Guess;
use xshell::Shell;

/// The case the check runs.
const CASE: &str = "smoke.memdevs";

/// Both checks; an error says which did not hold. A request that never guesses (a user's
/// tree, a mutant...) is passed over with a note.
pub fn run(sh: &Shell, up: &UpArgs) -> Result<()> {
    if !crate::guess::guesses(&up.kernel) {
        lab_host::progress!(
            "famfs-lab: this request never guesses: the stale-guess checks are passed over"
        );
        return Ok(());
    }
    // The kernel and image as the lookup finds them (cached by the run before).
    let mut t = lab_host::stage::Timings::default();
    let real = crate::up::prepare(sh, &up.kernel, &up.topology, &mut t)?;
    let real = crate::guess::Guessed {
        kernel: real.kernel,
        image: real.image.path,
    };
    stops_before_setup(up, &real)?;
    runs_on_the_lookup(sh, up, &real)
}

/// The runner asked at once with a stale verdict: it stops the guests before their setup (the
/// setup's marker reaches no guest's serial log) and reports nothing.
fn stops_before_setup(up: &UpArgs, real: &crate::guess::Guessed) -> Result<()> {
    let run_id = format!("{}-guess", crate::up::run_id());
    let run_dir = lab_host::paths::runs_dir().join(&run_id);
    let req = crate::up::request_for(up, &real.kernel, &real.image, &run_id, &run_dir)?;
    let hosts = req.topology.hosts.max(1);
    let outcome = lab_runner::run::run_checked(&req, crate::up::rfc3339_now(), || Ok(Guess::Stale));
    let logs: Vec<Option<String>> = (0..hosts)
        .map(|i| {
            let dir = lab_runner::session::guest_dir(&run_dir, hosts, i);
            std::fs::read_to_string(dir.join("serial.log")).ok()
        })
        .collect();
    let _ = std::fs::remove_dir_all(&run_dir);
    if outcome?.is_some() {
        bail!("the runner ran the cases of a run whose guess was stale");
    }
    for (i, log) in logs.iter().enumerate() {
        let Some(log) = log else {
            bail!("guest {i} of the stale run left no serial log: nothing to check");
        };
        if log.contains(lab_runner::markers::SETUP) {
            bail!("the runner set guest {i} up before it asked whether the guess stood");
        }
    }
    Ok(())
}

/// A record naming another image (an empty file, so the lookup cannot confirm it and the guest
/// could not use it): `lab up` must run the case on the image the lookup found.
fn runs_on_the_lookup(sh: &Shell, up: &UpArgs, real: &crate::guess::Guessed) -> Result<()> {
    let planted = lab_host::paths::cache_root()
        .join("last-prepared")
        .join(format!("stale-guess-check-{}.cpio", std::process::id()));
    std::fs::write(&planted, b"").with_context(|| format!("writing {}", planted.display()))?;
    crate::guess::plant(&up.kernel, &real.kernel, &planted).context("no guess for this request")?;
    let mut one = up.clone();
    one.suites.clear();
    one.cases = vec![CASE.into()];
    let report = crate::up::up_report(sh, &one);
    let _ = std::fs::remove_file(&planted);
    let report = report?;
    let booted = report.meta.get("image").map(String::as_str);
    if booted != Some(&*real.image.to_string_lossy()) {
        bail!(
            "lab up ran its cases on a stale guess: booted {booted:?}, the lookup found {}",
            real.image.display()
        );
    }
    if report.failed() {
        bail!("{CASE} failed after the stale guess was replaced");
    }
    Ok(())
}
