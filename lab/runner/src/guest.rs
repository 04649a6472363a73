//! One guest's steps, each on its own: boot (QEMU with the run's kernel and image; callers go
//! through [`crate::kvm_guard`]), attach (the agent ready), setup (the regions and dax devices of
//! the plan), power off. [`crate::session`] takes one or N guests through them.

use crate::markers;
use crate::plan;
use crate::request::RunRequest;
use anyhow::{Context, Result};
use lab_agent_proto::client::AgentClient;
use lab_agent_proto::messages::ExecRequest;
use lab_suite::devices::DeviceMap;
use lab_vm::qemu_args::{KernelBoot, BASE_KERNEL_CMDLINE};
use lab_vm::topology::Topology;
use lab_vm::{AccelChoice, Vm, VmSpec};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the guest may take to power off before QEMU is stopped.
pub(crate) const POWEROFF: Duration = Duration::from_secs(15);
/// Lines of serial log shown when the guest dies or hangs.
pub(crate) const LAST_LINES: usize = 40;

/// One guest's QEMU and its serial log.
pub(crate) struct Booted {
    pub(crate) vm: Vm,
    pub(crate) serial: lab_vm::serial_log::SerialLog,
    /// When QEMU was started: the agent's readiness is timed from here.
    pub(crate) launched: Instant,
}

impl Booted {
    pub(crate) fn tail(&self) -> String {
        self.serial.last_lines(LAST_LINES)
    }
}

/// The runtime QEMU and QMP run on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?)
}

/// Boots one guest of `topology` under `accel` with its sockets, serial log and results in
/// `dir` (callers go through [`crate::kvm_guard::boot_guarded`]).
pub(crate) async fn boot_at(
    req: &RunRequest,
    accel: &AccelChoice,
    topology: Topology,
    dir: &Path,
) -> Result<Booted> {
    // One UART (the console; the 8250 driver probes four by default) and no loop devices made
    // ahead (security.fuseblk_no_fmap asks /dev/loop-control for one): less to set up at boot.
    // Under TCG the vCPUs' TSCs are QEMU's one host-derived clock: no TSC sync test when the
    // second CPU comes up and no clocksource watchdog; QEMU's IO-APIC timer works, so no 16 ms
    // check that it ticks. (The second CPU's 10 ms INIT wait stays, `cpu_init_udelay=0` would
    // skip it: the one QEMU 10.0.2 abort seen, an MTTCG assertion in iotlb_to_section right
    // after the second CPU came up, once in about 40 boots under load, came with it skipped.
    // 15 more boots so were fine, so it may be chance; 10 ms is not worth the doubt.)
    let cmdline = format!(
        "{BASE_KERNEL_CMDLINE} kasan_multi_shot 8250.nr_uarts=1 max_loop=0 {} {}",
        tcg_cmdline(
            accel.accel,
            req.clock,
            guest_tsc_khz(accel.accel, req.clock),
            req.kernel.hz
        ),
        req.cmdline
    );
    let cmdline = cmdline.split_whitespace().collect::<Vec<_>>().join(" ");
    let boot = KernelBoot {
        kernel: req.kernel_image.clone(),
        initramfs: req.initramfs.clone(),
        cmdline,
    };
    let mut spec = VmSpec::new(topology, Some(boot), dir, accel.accel);
    let clock_args = req
        .clock
        .qemu_args(accel.accel)
        .map_err(|e| anyhow::anyhow!("clock {}: {e}", req.clock))?;
    spec.extra_args
        .extend(clock_args.into_iter().map(Into::into));
    spec.options.results_dir = Some(dir.join("results"));
    if req.console.terminal {
        spec.options.serial = lab_vm::SerialOutput::Terminal(dir.join("serial.log"));
    }
    spec.options.gdb_port = req.console.gdb_port;
    if req.console.vmcoreinfo {
        spec.extra_args
            .extend(["-device".into(), "vmcoreinfo".into()]);
    }
    let launched = Instant::now();
    let vm = Vm::launch(spec).await.context("starting QEMU")?;
    let serial = vm
        .serial_log()
        .cloned()
        .context("the serial console must go to a file")?;
    Ok(Booted {
        vm,
        serial,
        launched,
    })
}

/// The rate of a guest's TSC when the lab knows it: under TCG with the host clock QEMU
/// answers `rdtsc` with the host's counter ([`lab_vm::host_tsc`], measured once per host boot).
fn guest_tsc_khz(accel: lab_vm::Accel, clock: lab_vm::Clock) -> Option<u32> {
    (accel == lab_vm::Accel::Tcg && clock == lab_vm::Clock::Host)
        .then(|| lab_vm::host_tsc::tsc_khz_cached(Some(&lab_host::paths::cache_root())))
        .flatten()
}

/// What a TCG guest's command line says about its clock: its TSCs are QEMU's one host-derived
/// counter (`tsc=reliable no_timer_check`, see [`boot_at`]); with the host clock that counter
/// ticks at the host TSC's rate `tsc_khz`, which the guest is told so that it calibrates
/// neither the TSC nor the delay loop against emulated timers ([`lab_vm::host_tsc`]). Under
/// icount the counter is virtual and the guest measures it itself; under KVM nothing is said.
///
/// With the host clock a TCG guest also goes without its local APIC timers (`noapictimer`):
/// TCG has no TSC-deadline timer, so the kernel would spend 0.1 s of every boot calibrating
/// the APIC timer against the PIT, and nothing on the command line presets it. What changes
/// is where the tick comes from: the HPET on CPU 0, and on the other CPUs an IPI CPU 0 sends
/// them at each tick (the broadcast; one CPU has none), instead of each CPU's own timer. The
/// lab's kernels tick periodically without high-resolution timers either way
/// (CONFIG_HZ_PERIODIC, no HIGH_RES_TIMERS); a kernel with them gets no per-CPU one-shot
/// timer here. Every default case passes with it in the same time (223.8 s against 225.6 s).
/// Under icount the bench counts instructions and keeps the kernel's default timers.
fn tcg_cmdline(
    accel: lab_vm::Accel,
    clock: lab_vm::Clock,
    tsc_khz: Option<u32>,
    hz: Option<u32>,
) -> String {
    match (accel, clock) {
        (lab_vm::Accel::Tcg, lab_vm::Clock::Host) => format!(
            "tsc=reliable no_timer_check {} {}",
            timer_cmdline(accel, clock),
            lab_vm::host_tsc::tcg_clock_cmdline(tsc_khz, hz)
        ),
        (lab_vm::Accel::Tcg, lab_vm::Clock::Icount { .. }) => "tsc=reliable no_timer_check".into(),
        _ => String::new(),
    }
}

/// The words of the guest's command line that change its timers (see [`tcg_cmdline`]):
/// `noapictimer` for TCG with the host clock, nothing otherwise. Benchmarks record them with
/// the guest's setup, so runs with different timers are not compared as alike.
pub fn timer_cmdline(accel: lab_vm::Accel, clock: lab_vm::Clock) -> &'static str {
    match (accel, clock) {
        (lab_vm::Accel::Tcg, lab_vm::Clock::Host) => "noapictimer",
        _ => "",
    }
}

/// Connects to the agent of the guest whose files are in `dir` and waits for it to be ready;
/// returns the time from QEMU start to ready.
pub(crate) fn attach_at(
    s: &mut Booted,
    req: &RunRequest,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<(AgentClient, Duration)> {
    let socket = dir.join("agent.sock");
    let boot_timeout = req.wait(req.boot_timeout);
    let agent = AgentClient::connect(&socket, Instant::now() + boot_timeout)
        .context("connecting to the agent socket")?;
    match agent.wait_ready(boot_timeout) {
        Ok(_) => {}
        Err(e) => {
            let exited = rt.block_on(async { s.vm.exit_report() });
            let why = match exited {
                Some(x) => format!(
                    "QEMU exited ({}){}",
                    x.status,
                    x.guest_panic.map(|p| format!(": {p}")).unwrap_or_default()
                ),
                None => format!("{e}"),
            };
            anyhow::bail!(
                "waiting for the agent ({:?} boot timeout): {why}\nlast serial lines:\n{}",
                boot_timeout,
                s.tail()
            );
        }
    }
    agent
        .hello(req.wait(Duration::from_secs(10)))
        .context("agent hello")?;
    Ok((agent, s.launched.elapsed()))
}

/// How long the guest's setup (regions, dax devices) may take on the host clock.
pub(crate) const SETUP_TIMEOUT: Duration = Duration::from_secs(90);

/// Creates the regions and dax devices of `topology` in the guest within `timeout`; writes
/// `dir/devices.json`.
pub(crate) fn setup_at(
    agent: &AgentClient,
    topology: &Topology,
    dir: &Path,
    timeout: Duration,
) -> Result<DeviceMap> {
    crate::whole_log::mark(agent, markers::SETUP);
    let plan = plan::setup_plan(topology, dir);
    let json = serde_json::to_string(&plan)?;
    let r = agent
        .exec(
            ExecRequest::new(["famfs-lab-cases", "setup", json.as_str()]).timeout(timeout),
            timeout + Duration::from_secs(10),
        )
        .context("running famfs-lab-cases setup")?;
    if !r.success() {
        anyhow::bail!("{:?}\n{}{}", r.status, r.stdout, r.stderr);
    }
    let map: DeviceMap = serde_json::from_str(&r.stdout)
        .with_context(|| format!("parsing the device map: {}", r.stdout))?;
    std::fs::write(dir.join("devices.json"), &r.stdout)?;
    Ok(map)
}

/// Powers the guest off: through its agent when it still answers (after the power-off marker),
/// then waits for QEMU (up to `wait`), and stops it if it hangs.
pub(crate) fn power_off(
    s: &mut Booted,
    agent: Option<&AgentClient>,
    wait: Duration,
    rt: &tokio::runtime::Runtime,
) {
    if let Some(a) = agent.filter(|a| a.is_connected()) {
        crate::whole_log::mark(a, markers::POWEROFF);
        let _ = a.poweroff(Duration::from_secs(5));
    }
    rt.block_on(async {
        if s.vm.wait_exit(wait).await.is_err() {
            let _ = s.vm.shutdown(wait).await;
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_vm::{Accel, Clock};

    #[test]
    fn only_tcg_with_the_host_clock_is_told_its_tsc_rate() {
        let khz = Some(2_596_144);
        assert_eq!(tcg_cmdline(Accel::Kvm, Clock::Host, khz, Some(250)), "");
        assert_eq!(
            tcg_cmdline(Accel::Tcg, Clock::Icount { shift: 3 }, khz, Some(250)),
            "tsc=reliable no_timer_check"
        );
        assert_eq!(
            tcg_cmdline(Accel::Tcg, Clock::Host, khz, Some(250)),
            "tsc=reliable no_timer_check noapictimer tsc_early_khz=2596144 lpj=10384576"
        );
        // Without the rate, or the kernel's HZ to derive the loop count from, nothing is said.
        for (khz, hz) in [(None, Some(250)), (khz, None)] {
            let line = tcg_cmdline(Accel::Tcg, Clock::Host, khz, hz);
            assert_eq!(line.trim(), "tsc=reliable no_timer_check noapictimer");
        }
        assert_eq!(timer_cmdline(Accel::Tcg, Clock::Host), "noapictimer");
        assert_eq!(timer_cmdline(Accel::Tcg, Clock::Icount { shift: 3 }), "");
        assert_eq!(timer_cmdline(Accel::Kvm, Clock::Host), "");
        assert_eq!(guest_tsc_khz(Accel::Kvm, Clock::Host), None);
        assert_eq!(guest_tsc_khz(Accel::Tcg, Clock::Icount { shift: 3 }), None);
    }
}
