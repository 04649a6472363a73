//! `cargo xtask lab bench ...`: benchmarks print a table and write JSON;
//! they are never part of the tests.

use anyhow::Result;
use clap::Subcommand;
use xshell::Shell;

#[derive(Subcommand)]
pub enum Bench {
    /// Boot time: the whole `lab up` of one case (smoke.memdevs) and where its time goes
    /// (stage table); with --peer vng, against virtme-ng booting the same kernel, alternating.
    Boot(crate::bench_boot::BootArgs),
    /// The DAX fault path: PTE/PMD/open fault cost per fmap resolver (famfs_native, famfs,
    /// famfs_maplookup) and on the raw device, in one VM run; table, bench.json, SVG chart.
    Fault(crate::bench_fault::FaultArgs),
}

impl Bench {
    pub fn run(self, sh: &Shell) -> Result<()> {
        match self {
            Bench::Boot(args) => crate::bench_boot::run(sh, args),
            Bench::Fault(args) => crate::bench_fault::run(sh, args),
        }
    }
}
