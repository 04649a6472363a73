//! The guest's clock: the host's (wall clock; the usual run) or QEMU's instruction counter
//! (`-icount`), under which virtual time advances by 2^shift ns per executed guest instruction
//! and jumps over idle time (`sleep=off`): a guest's time measurement then counts instructions,
//! the same on every run of the same code path, whatever the load of the host.

use crate::accel::Accel;
use serde::{Deserialize, Serialize};

/// How guest time relates to host time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Clock {
    /// Guest time follows the host's clock (QEMU's default).
    #[default]
    Host,
    /// `-icount shift=SHIFT,sleep=off,align=off`: one guest instruction is 2^shift ns of guest
    /// time; TCG only, and single-threaded (QEMU turns MTTCG off under icount).
    Icount { shift: u8 },
}

/// The largest shift QEMU accepts (`-icount shift=N`, N <= 10).
pub const MAX_ICOUNT_SHIFT: u8 = 10;

/// How much longer host-side waits may take under icount: the guest executes one instruction
/// at a time on one host thread, counting each, so a run is a few times slower.
pub const ICOUNT_TIMEOUT_SCALE: u32 = 6;

impl Clock {
    /// The clock `-icount` sets with `shift`, checked against QEMU's range.
    pub fn icount(shift: u8) -> Result<Clock, String> {
        if shift > MAX_ICOUNT_SHIFT {
            return Err(format!(
                "icount shift {shift} is out of QEMU's range 0..={MAX_ICOUNT_SHIFT}"
            ));
        }
        Ok(Clock::Icount { shift })
    }

    /// The QEMU arguments for this clock under `accel` (none for the host clock); icount needs
    /// TCG.
    pub fn qemu_args(self, accel: Accel) -> Result<Vec<String>, String> {
        match self {
            Clock::Host => Ok(Vec::new()),
            Clock::Icount { shift } => {
                if accel != Accel::Tcg {
                    return Err(format!(
                        "-icount needs TCG, the accelerator is {}",
                        accel.as_str()
                    ));
                }
                Ok(vec![
                    "-icount".into(),
                    format!("shift={shift},sleep=off,align=off"),
                ])
            }
        }
    }

    /// The factor for host-side timeouts (boot, setup, cases, power off).
    pub fn timeout_scale(self) -> u32 {
        match self {
            Clock::Host => 1,
            Clock::Icount { .. } => ICOUNT_TIMEOUT_SCALE,
        }
    }

    /// Guest instructions per guest ns (2^-shift), None for the host clock.
    pub fn instructions_per_ns(self) -> Option<f64> {
        match self {
            Clock::Host => None,
            Clock::Icount { shift } => Some(1.0 / f64::from(1u32 << shift)),
        }
    }

    /// `host` or `icount` (the name `--clock` takes and bench.json records).
    pub fn name(self) -> &'static str {
        match self {
            Clock::Host => "host",
            Clock::Icount { .. } => "icount",
        }
    }
}

impl std::fmt::Display for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clock::Host => f.write_str("host"),
            Clock::Icount { shift } => write!(f, "icount shift={shift}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn icount_arguments_need_tcg() {
        let c = Clock::icount(0).expect("in range");
        assert_eq!(
            c.qemu_args(Accel::Tcg).expect("tcg"),
            vec!["-icount", "shift=0,sleep=off,align=off"]
        );
        assert_eq!(
            Clock::icount(3).unwrap().qemu_args(Accel::Tcg).unwrap()[1],
            "shift=3,sleep=off,align=off"
        );
        let e = c.qemu_args(Accel::Kvm).unwrap_err();
        assert!(e.contains("needs TCG") && e.contains("kvm"), "{e}");
        assert!(Clock::Host.qemu_args(Accel::Kvm).unwrap().is_empty());
        assert!(Clock::icount(11).unwrap_err().contains("0..=10"));
    }

    #[test]
    fn scales_and_units() {
        assert_eq!(Clock::Host.timeout_scale(), 1);
        assert_eq!(
            Clock::Icount { shift: 0 }.timeout_scale(),
            ICOUNT_TIMEOUT_SCALE
        );
        assert_eq!(Clock::Icount { shift: 0 }.instructions_per_ns(), Some(1.0));
        assert_eq!(Clock::Icount { shift: 2 }.instructions_per_ns(), Some(0.25));
        assert_eq!(Clock::Host.instructions_per_ns(), None);
        assert_eq!(Clock::Icount { shift: 1 }.to_string(), "icount shift=1");
        let j = serde_json::to_string(&Clock::Icount { shift: 1 }).unwrap();
        assert_eq!(j, r#"{"mode":"icount","shift":1}"#);
        assert_eq!(
            serde_json::from_str::<Clock>(&j).unwrap(),
            Clock::Icount { shift: 1 }
        );
    }
}
