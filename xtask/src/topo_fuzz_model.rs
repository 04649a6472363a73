//! What `lab topo-fuzz` is asked ([`TopoFuzzArgs`]) and what became of each topology
//! ([`Entry`], [`Verdict`]): the fuzzer ([`crate::topo_fuzz`]) makes them, the summary
//! ([`crate::topo_fuzz_report`]) reads them.

use clap::Args;
use std::path::PathBuf;

use crate::build_args::BuildArgs;

#[derive(Args, Debug)]
pub struct TopoFuzzArgs {
    #[command(flatten)]
    pub kernel: BuildArgs,
    /// Topologies to draw.
    #[arg(long, default_value_t = 30)]
    pub count: u64,
    /// Seed of the first topology; topology i has seed SEED + i, so `--count 1 --seed S`
    /// reruns the one of seed S.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Only the host's checks: no guest boots.
    #[arg(long)]
    pub host_only: bool,
    /// Boot the topologies the decoder model refuses too (those refused by its rules alone):
    /// the guest must fail to set each up, or the rule is too strict (a failure).
    #[arg(long, conflicts_with = "host_only")]
    pub boot_refused: bool,
    /// The summary as JSON on stdout: `{"seed", "count", "accepted", "refused", "failed",
    /// "by_rule": {rule: n}, "topologies": [{seed, verdict, rules, run_dir, why}]}`.
    #[arg(long)]
    pub json: bool,
    /// Seconds QEMU may take to boot each guest to its agent.
    #[arg(long, default_value_t = 120)]
    pub boot_timeout: u64,
}

/// Seeds `cargo xtask test` runs after `lab up`: three accepted, one refused.
pub const TEST_SAMPLE: (u64, u64) = (1, 4);

impl TopoFuzzArgs {
    /// The fixed sample of `cargo xtask test` on `kernel`.
    pub fn sample(kernel: &BuildArgs) -> TopoFuzzArgs {
        TopoFuzzArgs {
            kernel: kernel.clone(),
            count: TEST_SAMPLE.1,
            seed: TEST_SAMPLE.0,
            host_only: false,
            boot_refused: false,
            json: false,
            boot_timeout: 120,
        }
    }
}

/// What became of one topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Refused on the host; the rules its problems name, in order, without repeats.
    Refused(Vec<String>),
    /// Refused by a problem that names no rule: a failure of the property.
    RefusedWithoutRule(String),
    /// Accepted; not booted (`--host-only`).
    Accepted,
    /// Accepted, booted, set up and passed smoke.
    Passed,
    /// Accepted but the guest could not set it up, or a smoke case failed.
    Failed(String),
}

impl Verdict {
    pub(crate) fn is_failure(&self) -> bool {
        matches!(self, Verdict::Failed(_) | Verdict::RefusedWithoutRule(_))
    }

    pub(crate) fn word(&self) -> &'static str {
        match self {
            Verdict::Refused(_) => "refused",
            Verdict::RefusedWithoutRule(_) => "refused-without-rule",
            Verdict::Accepted => "accepted",
            Verdict::Passed => "passed",
            Verdict::Failed(_) => "failed",
        }
    }
}

/// What the guest made of a topology the host refused (`--boot-refused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefusalInGuest {
    /// The guest could not set it up either: why.
    Confirmed(String),
    /// The guest set it up and passed smoke: the rule is too strict.
    SetUpAnyway,
}

/// One topology of the run and its verdict.
pub(crate) struct Entry {
    pub(crate) seed: u64,
    pub(crate) yaml: PathBuf,
    pub(crate) verdict: Verdict,
    pub(crate) run_dir: Option<PathBuf>,
    pub(crate) refusal: Option<RefusalInGuest>,
}

impl Entry {
    pub(crate) fn is_failure(&self) -> bool {
        self.verdict.is_failure() || self.refusal == Some(RefusalInGuest::SetUpAnyway)
    }

    /// Refused by decoder-model rules alone: QEMU boots it, the guest's setup must fail.
    pub(crate) fn refused_by_model_only(&self) -> bool {
        match &self.verdict {
            Verdict::Refused(rules) => rules
                .iter()
                .all(|r| lab_vm::rules::MODEL_RULES.contains(&r.as_str())),
            _ => false,
        }
    }
}
