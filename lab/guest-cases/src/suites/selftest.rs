//! Cases that fail on purpose, to prove the lab reports failures, hangs,
//! kernel splats and panics.

use crate::Outcome;
use anyhow::{bail, Result};

pub fn run(name: &str) -> Result<Outcome> {
    match name {
        "hang" => hang(),
        "panic" => {
            std::fs::write("/proc/sys/kernel/sysrq", "1")?;
            std::fs::write("/proc/sysrq-trigger", "c")?;
            bail!("the guest survived a sysrq crash")
        }
        "fail" => Ok(Outcome::Fail("this case fails on purpose".into())),
        "flaky" => flaky(),
        "warn" => {
            let path = "/sys/kernel/debug/provoke-crash/DIRECT";
            std::fs::write(path, "WARNING")?;
            println!("provoked a WARNING through {path}");
            Ok(Outcome::Pass)
        }
        _ => bail!("no selftest case {name:?}"),
    }
}

/// Fails one run in two: even values of `FAMFS_LAB_FLAKY_RUN` (the host's run counter,
/// `FAMFS_LAB_FLAKY_COUNTER`) fail, odd ones pass; without it, a random bit decides.
fn flaky() -> Result<Outcome> {
    let run = match std::env::var("FAMFS_LAB_FLAKY_RUN") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .map_err(|e| anyhow::anyhow!("FAMFS_LAB_FLAKY_RUN={v:?}: {e}"))?,
        Err(_) => {
            let uuid = std::fs::read_to_string("/proc/sys/kernel/random/uuid")?;
            uuid.bytes().next().map(u64::from).unwrap_or(0)
        }
    };
    println!("run {run} of a case that fails one run in two");
    if run % 2 == 0 {
        Ok(Outcome::Fail(
            "this case fails one run in two (an even run)".into(),
        ))
    } else {
        Ok(Outcome::Pass)
    }
}

/// Sleeps until killed.
pub fn hang() -> Result<Outcome> {
    println!("hanging on purpose");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
