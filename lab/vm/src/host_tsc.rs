//! The host's TSC frequency, which is the guest's under TCG with the host clock: QEMU answers
//! a guest's `rdtsc` with the host's counter. A kernel told that frequency
//! (`tsc_early_khz=`, and `lpj=` for the delay loop, [`tcg_clock_cmdline`]) skips two
//! measurements it would otherwise make against emulated timers at every boot: the TSC
//! calibration against the PIT and then the HPET (the quick PIT attempt for the CPU frequency
//! still runs, and fails fast under TCG), and the second CPU's delay-loop calibration (the
//! first CPU derives its loop count from the TSC; a second one measures its own unless
//! preset, since TCG offers no invariant TSC to share the first CPU's). The local APIC timer
//! is still calibrated: nothing on the command line presets it.
//!
//! The frequency is measured on the host (the TSC against `CLOCK_MONOTONIC_RAW`, which the
//! host kernel derives from its own TSC calibration) once per host boot, and kept in the
//! cache beside the KVM probe's verdict. A host without a constant, non-stop TSC gets None:
//! its guests calibrate as before.

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The cache file under the lab's cache root.
pub const CACHE_FILE: &str = "host-tsc.yaml";
/// One measurement's interval; the median of [`SAMPLES`] is kept.
const INTERVAL: Duration = Duration::from_millis(25);
const SAMPLES: usize = 3;
/// Clock reads around each TSC read; the tightest bracket is kept.
const PAIR_TRIES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct CachedTsc {
    boot_id: String,
    tsc_khz: u32,
}

/// The kernel command line that tells a TCG guest with the host clock its TSC frequency:
/// `tsc_early_khz=K lpj=L`, with L the loops per jiffy the kernel itself derives from K
/// (`K * 1000 / HZ`, its `lpj_fine`). Empty without a frequency or the kernel's HZ.
pub fn tcg_clock_cmdline(tsc_khz: Option<u32>, hz: Option<u32>) -> String {
    match (tsc_khz, hz) {
        (Some(khz), Some(hz)) if khz > 0 && hz > 0 => {
            format!(
                "tsc_early_khz={khz} lpj={}",
                u64::from(khz) * 1000 / u64::from(hz)
            )
        }
        _ => String::new(),
    }
}

/// The host TSC frequency in kHz, measured at most once per host boot (kept in
/// `cache_dir/host-tsc.yaml`; not kept when `cache_dir` is None). None when the host's TSC is
/// not constant and non-stop (from /proc/cpuinfo), or not x86_64.
pub fn tsc_khz_cached(cache_dir: Option<&Path>) -> Option<u32> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    if !tsc_is_invariant(&cpuinfo) {
        return None;
    }
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string());
    let file = cache_dir.map(|d| d.join(CACHE_FILE));
    if let (Some(boot_id), Some(file)) = (&boot_id, &file) {
        let cached = std::fs::read_to_string(file)
            .ok()
            .and_then(|text| serde_norway::from_str::<CachedTsc>(&text).ok());
        if let Some(c) = cached.filter(|c| &c.boot_id == boot_id && c.tsc_khz > 0) {
            return Some(c.tsc_khz);
        }
    }
    let tsc_khz = measure_khz()?;
    if let (Some(boot_id), Some(file)) = (boot_id, file) {
        if let Ok(text) = serde_norway::to_string(&CachedTsc { boot_id, tsc_khz }) {
            lab_host::cache_file::write(&file, &text);
        }
    }
    Some(tsc_khz)
}

/// Whether the first CPU's flags in `cpuinfo` (/proc/cpuinfo) name a TSC that ticks at one
/// rate in every power state (`constant_tsc` and `nonstop_tsc`).
pub fn tsc_is_invariant(cpuinfo: &str) -> bool {
    let Some(flags) = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>())
    else {
        return false;
    };
    ["tsc", "constant_tsc", "nonstop_tsc"]
        .iter()
        .all(|f| flags.contains(f))
}

/// The TSC rate in kHz from `ticks` counted over `nanos` of CLOCK_MONOTONIC_RAW, rounded.
pub fn khz_from(ticks: u64, nanos: u64) -> Option<u32> {
    if nanos == 0 {
        return None;
    }
    let khz = (u128::from(ticks) * 1_000_000 + u128::from(nanos) / 2) / u128::from(nanos);
    u32::try_from(khz).ok().filter(|&k| k > 0)
}

#[cfg(target_arch = "x86_64")]
fn measure_khz() -> Option<u32> {
    fn raw_ns() -> Option<u64> {
        let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC_RAW).ok()?;
        Some(u64::try_from(t.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(t.tv_nsec()).ok()?)
    }
    /// One (TSC, ns) pair: the TSC read between two clock reads, from the tightest of a few
    /// tries (a preemption between the reads would skew the pair by its length).
    fn pair() -> Option<(u64, u64)> {
        let mut best: Option<(u64, u64, u64)> = None;
        for _ in 0..PAIR_TRIES {
            let before = raw_ns()?;
            // SAFETY: rdtsc has no memory effects; every x86_64 CPU has it.
            let tsc = unsafe { core::arch::x86_64::_rdtsc() };
            let after = raw_ns()?;
            let width = after.checked_sub(before)?;
            if best.is_none_or(|(w, _, _)| width < w) {
                best = Some((width, tsc, before + width / 2));
            }
        }
        best.map(|(_, tsc, ns)| (tsc, ns))
    }
    let mut samples = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let (c0, t0) = pair()?;
        std::thread::sleep(INTERVAL);
        let (c1, t1) = pair()?;
        samples.push(khz_from(c1.checked_sub(c0)?, t1.checked_sub(t0)?)?);
    }
    samples.sort_unstable();
    samples.get(SAMPLES / 2).copied()
}

#[cfg(not(target_arch = "x86_64"))]
fn measure_khz() -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cmdline_carries_the_kernels_own_loops_per_jiffy() {
        // The guest's own line for this host: "tsc: Detected 2596.144 MHz processor" and, with
        // HZ=250, "Calibrating delay loop (skipped), value calculated using timer
        // frequency.. 5192.28 BogoMIPS (lpj=10384576)".
        assert_eq!(
            tcg_clock_cmdline(Some(2_596_144), Some(250)),
            "tsc_early_khz=2596144 lpj=10384576"
        );
        assert_eq!(
            tcg_clock_cmdline(Some(3_000_000), Some(1000)),
            "tsc_early_khz=3000000 lpj=3000000"
        );
    }

    #[test]
    fn no_frequency_or_no_hz_means_the_guest_calibrates() {
        assert_eq!(tcg_clock_cmdline(None, Some(250)), "");
        assert_eq!(tcg_clock_cmdline(Some(2_596_144), None), "");
        assert_eq!(tcg_clock_cmdline(Some(0), Some(250)), "");
        assert_eq!(tcg_clock_cmdline(Some(2_596_144), Some(0)), "");
    }

    #[test]
    fn only_a_constant_nonstop_tsc_counts() {
        let line = |flags: &str| format!("processor\t: 0\nflags\t\t: fpu {flags} sse\n");
        assert!(tsc_is_invariant(&line("tsc constant_tsc nonstop_tsc")));
        assert!(!tsc_is_invariant(&line("tsc constant_tsc")));
        assert!(!tsc_is_invariant(&line("tsc nonstop_tsc")));
        assert!(!tsc_is_invariant(&line("constant_tsc nonstop_tsc")));
        assert!(!tsc_is_invariant("processor\t: 0\n"));
    }

    #[test]
    fn khz_is_ticks_per_millisecond_rounded() {
        assert_eq!(khz_from(51_922_880, 20_000_000), Some(2_596_144));
        assert_eq!(khz_from(2_596_144_499, 1_000_000_000), Some(2_596_144));
        assert_eq!(khz_from(2_596_144_500, 1_000_000_000), Some(2_596_145));
        assert_eq!(khz_from(1, 0), None);
        assert_eq!(khz_from(0, 1_000), None);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn this_hosts_tsc_measures_a_plausible_rate() {
        let Some(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo").ok() else {
            return;
        };
        if !tsc_is_invariant(&cpuinfo) {
            return;
        }
        let khz = measure_khz().expect("an invariant TSC is measured");
        eprintln!("host TSC measured: {khz} kHz");
        // Any x86_64 TSC of this century ticks between 500 MHz and 10 GHz.
        assert!((500_000..10_000_000).contains(&khz), "{khz} kHz");
    }

    #[test]
    fn a_measurement_of_this_boot_is_reused_and_one_of_another_boot_is_not() {
        let Some(cpuinfo) = std::fs::read_to_string("/proc/cpuinfo").ok() else {
            return;
        };
        let Ok(boot_id) = std::fs::read_to_string("/proc/sys/kernel/random/boot_id") else {
            return;
        };
        if !tsc_is_invariant(&cpuinfo) || measure_khz().is_none() {
            return;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(CACHE_FILE);
        let entry = |boot_id: &str| {
            serde_norway::to_string(&CachedTsc {
                boot_id: boot_id.into(),
                tsc_khz: 1234,
            })
            .expect("yaml")
        };
        std::fs::write(&file, entry(boot_id.trim())).expect("write");
        assert_eq!(tsc_khz_cached(Some(dir.path())), Some(1234));
        std::fs::write(&file, entry("another-boot")).expect("write");
        let measured = tsc_khz_cached(Some(dir.path())).expect("measured");
        assert_ne!(measured, 1234);
        let kept: CachedTsc =
            serde_norway::from_str(&std::fs::read_to_string(&file).expect("read")).expect("yaml");
        assert_eq!(
            kept,
            CachedTsc {
                boot_id: boot_id.trim().into(),
                tsc_khz: measured
            }
        );
    }
}
