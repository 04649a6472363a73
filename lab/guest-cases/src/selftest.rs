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
        "warn" => {
            let path = "/sys/kernel/debug/provoke-crash/DIRECT";
            std::fs::write(path, "WARNING")?;
            println!("provoked a WARNING through {path}");
            Ok(Outcome::Pass)
        }
        _ => bail!("no selftest case {name:?}"),
    }
}

/// Sleeps until killed.
pub fn hang() -> Result<Outcome> {
    println!("hanging on purpose");
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}
