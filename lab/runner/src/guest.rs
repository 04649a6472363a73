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
    let tcg = if accel.accel == lab_vm::Accel::Tcg {
        "tsc=reliable no_timer_check "
    } else {
        ""
    };
    let cmdline = format!(
        "{BASE_KERNEL_CMDLINE} kasan_multi_shot 8250.nr_uarts=1 max_loop=0 {tcg}{}",
        req.cmdline
    )
    .trim()
    .to_string();
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
    let vm = Vm::launch(spec).await.context("starting QEMU")?;
    let serial = vm
        .serial_log()
        .cloned()
        .context("the serial console must go to a file")?;
    Ok(Booted { vm, serial })
}

/// Connects to the agent of the guest whose files are in `dir` and waits for it to be ready;
/// returns the time from QEMU start to ready.
pub(crate) fn attach_at(
    s: &mut Booted,
    req: &RunRequest,
    dir: &Path,
    rt: &tokio::runtime::Runtime,
) -> Result<(AgentClient, Duration)> {
    let started = Instant::now();
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
    Ok((agent, started.elapsed()))
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
