//! Pure construction of the QEMU argv from a topology and run settings.

use crate::accel::{accel_args, Accel};
use crate::topology::Topology;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// virtio-serial port name the guest agent opens (`/dev/virtio-ports/<name>`).
pub const AGENT_PORT_NAME: &str = "org.famfs.lab.agent";
/// 9p mount tag of the results share.
pub const RESULTS_MOUNT_TAG: &str = "results";
/// Kernel arguments the lab's exit detection relies on: `panic=-1` reboots at once on a panic and
/// `-no-reboot` turns that reboot into a QEMU exit. Append the lab's own arguments to it.
///
/// Two keep the boot short under TCG, where every byte through the emulated UART and every
/// byte of memory zeroed at boot costs: `loglevel=6` keeps the boot's info lines off the
/// console (warnings, errors, splats and the lab's own notice-level markers still go to it; the
/// agent sets info level again once it runs, `lab_agent_proto::CONSOLE_LOGLEVEL_AFTER_BOOT`);
/// `log_buf_len=1M` is the ring buffer the guest's /dev/kmsg
/// readers see (16M, with its metadata 72 MiB zeroed at boot, took 0.2 s).
pub const BASE_KERNEL_CMDLINE: &str = "console=ttyS0 loglevel=6 panic=-1 \
hardlockup_all_cpu_backtrace=1 softlockup_all_cpu_backtrace=1 log_buf_len=1M printk.devkmsg=on";

/// Where the guest's serial console goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SerialOutput {
    /// Written to a file (the lab tails it).
    File(PathBuf),
    /// The terminal, with the QEMU monitor multiplexed (Ctrl-A c; Ctrl-A x quits).
    Stdio,
    /// The terminal as with [`SerialOutput::Stdio`], and everything the guest prints also
    /// written to this file (QEMU's `logfile=`): `lab shell`'s console, tailed like a run's.
    /// Ctrl-C goes to the guest (`signal=off`), not to QEMU.
    Terminal(PathBuf),
}

/// Direct kernel boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelBoot {
    pub kernel: PathBuf,
    pub initramfs: PathBuf,
    pub cmdline: String,
}

/// Everything besides the topology and boot payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuOptions {
    pub serial: SerialOutput,
    pub qmp_socket: PathBuf,
    pub agent_socket: PathBuf,
    /// Host directory shared read-write with the guest over 9p (tag [`RESULTS_MOUNT_TAG`]).
    pub results_dir: Option<PathBuf>,
    /// `-S`: create the machine but do not start the vCPUs until QMP `cont`.
    pub start_paused: bool,
    /// QEMU's gdb stub on `127.0.0.1:PORT` (`-gdb tcp:...`).
    pub gdb_port: Option<u16>,
}

impl QemuOptions {
    /// The usual layout: `RUN/serial.log`, `RUN/qmp.sock`, `RUN/agent.sock`, no results share.
    pub fn in_run_dir(run_dir: &Path) -> QemuOptions {
        QemuOptions {
            serial: SerialOutput::File(run_dir.join("serial.log")),
            qmp_socket: run_dir.join("qmp.sock"),
            agent_socket: run_dir.join("agent.sock"),
            results_dir: None,
            start_paused: false,
            gdb_port: None,
        }
    }
}

/// `prefix` followed by a path with QEMU's option escaping (`,` doubled).
fn opt_path(prefix: &str, path: &Path) -> OsString {
    let mut bytes = prefix.as_bytes().to_vec();
    for &b in path.as_os_str().as_bytes() {
        bytes.push(b);
        if b == b',' {
            bytes.push(b',');
        }
    }
    OsString::from_vec(bytes)
}

struct Argv(Vec<OsString>);

impl Argv {
    fn push(&mut self, items: &[&str]) {
        self.0.extend(items.iter().map(OsString::from));
    }
    fn opt(&mut self, flag: &str, value: impl Into<OsString>) {
        self.0.push(flag.into());
        self.0.push(value.into());
    }
}

/// The serial number (QEMU `sn=`) of the topology's `index`-th device: the
/// guest reads it from `/sys/bus/cxl/devices/memN/serial` to tell which
/// kernel memdev is which topology device (probe order is not file order).
pub fn device_serial(index: usize) -> u64 {
    0x00fa_5000 + index as u64
}

/// The machine: q35 with CXL, without the parts no case uses.
pub const MACHINE: &str = "q35,cxl=on,sata=off,smbus=off,i8042=off,vmport=off,smm=off";

/// The full QEMU argv (without the binary). `boot: None` boots nothing (firmware only).
pub fn qemu_args(
    topology: &Topology,
    boot: Option<&KernelBoot>,
    run_dir: &Path,
    accel: Accel,
    options: &QemuOptions,
) -> Vec<OsString> {
    let mut a = Argv(Vec::new());
    a.push(&[
        "-no-user-config",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
    ]);
    // Without the q35 parts no case uses (SATA, SMBus, the PS/2 controller, the VMware port,
    // SMM) the firmware has less to set up: about 35 ms less between QEMU's start and the
    // kernel's under TCG.
    a.opt("-machine", MACHINE);
    a.push(&accel_args(accel));
    a.opt("-m", topology.memory.to_qemu());
    a.opt("-smp", topology.cpus.to_string());
    if options.start_paused {
        a.push(&["-S"]);
    }
    if let Some(boot) = boot {
        a.opt("-kernel", &boot.kernel);
        a.opt("-initrd", &boot.initramfs);
        a.opt("-append", &boot.cmdline);
    }
    // A guest panic with the pvpanic driver makes QEMU exit with status 1.
    a.push(&["-device", "pvpanic", "-action", "panic=exit-failure"]);
    match &options.serial {
        SerialOutput::File(path) => {
            a.opt("-chardev", opt_path("file,id=serial0,path=", path));
            a.opt("-serial", "chardev:serial0");
        }
        SerialOutput::Stdio => a.opt("-serial", "mon:stdio"),
        SerialOutput::Terminal(log) => {
            let mut dev = OsString::from("stdio,id=serial0,mux=on,signal=off,");
            dev.push(opt_path("logfile=", log));
            dev.push(",logappend=off");
            a.opt("-chardev", dev);
            a.opt("-serial", "chardev:serial0");
            a.opt("-mon", "chardev=serial0,mode=readline");
        }
    }
    if let Some(port) = options.gdb_port {
        a.opt("-gdb", format!("tcp:127.0.0.1:{port}"));
    }
    a.opt("-chardev", socket_chardev("qmp", &options.qmp_socket));
    a.opt("-mon", "chardev=qmp,mode=control");
    a.opt("-device", "virtio-serial-pci,id=vser0");
    a.opt("-chardev", socket_chardev("agent", &options.agent_socket));
    a.opt(
        "-device",
        format!("virtserialport,bus=vser0.0,chardev=agent,name={AGENT_PORT_NAME}"),
    );
    if let Some(dir) = &options.results_dir {
        let mut fsdev = opt_path("local,id=results,path=", dir);
        fsdev.push(",security_model=none");
        a.opt("-fsdev", fsdev);
        a.opt(
            "-device",
            format!("virtio-9p-pci,fsdev=results,mount_tag={RESULTS_MOUNT_TAG}"),
        );
    }
    // Guest entropy without waiting for the jitter source.
    a.opt("-object", "rng-random,id=rng0,filename=/dev/urandom");
    a.opt("-device", "virtio-rng-pci,rng=rng0");
    cxl_args(&mut a, topology, run_dir);
    a.0
}

fn socket_chardev(id: &str, path: &Path) -> OsString {
    let mut s = opt_path(&format!("socket,id={id},path="), path);
    s.push(",server=on,wait=off");
    s
}

fn cxl_args(a: &mut Argv, t: &Topology, run_dir: &Path) {
    for d in &t.devices {
        let mut obj = OsString::from(format!("memory-backend-file,id=vmem-{},share=on,", d.id));
        obj.push(opt_path("mem-path=", &t.backing_path(d, run_dir)));
        obj.push(format!(",size={}", d.size.to_qemu()));
        a.opt("-object", obj);
    }
    for hb in &t.host_bridges {
        let passthrough = if hb.hdm_for_passthrough {
            ",hdm_for_passthrough=on"
        } else {
            ""
        };
        a.opt(
            "-device",
            format!(
                "pxb-cxl,bus_nr={},bus=pcie.0,id={}{passthrough}",
                hb.bus_nr, hb.id
            ),
        );
        for rp in &hb.root_ports {
            a.opt(
                "-device",
                format!(
                    "cxl-rp,port={},bus={},id={},chassis=0,slot={}",
                    rp.port, hb.id, rp.id, rp.slot
                ),
            );
        }
    }
    for (i, d) in t.devices.iter().enumerate() {
        a.opt(
            "-device",
            format!(
                "cxl-type3,bus={},volatile-memdev=vmem-{},id={},sn={:#x}",
                d.root_port,
                d.id,
                d.id,
                device_serial(i)
            ),
        );
    }
    // All windows go in one -machine option: QEMU refuses `cxl-fmw.*` split over several.
    let mut parts = Vec::new();
    for (n, w) in t.windows.iter().enumerate() {
        for (k, target) in w.targets.iter().enumerate() {
            parts.push(format!("cxl-fmw.{n}.targets.{k}={target}"));
        }
        parts.push(format!("cxl-fmw.{n}.size={}", w.size.to_qemu()));
        if let Some(g) = w.interleave_granularity {
            parts.push(format!(
                "cxl-fmw.{n}.interleave-granularity={}",
                g.to_qemu()
            ));
        }
    }
    if !parts.is_empty() {
        a.opt("-machine", parts.join(","));
    }
}

/// Shell-quotes one word (single quotes unless it is plainly safe). Non-UTF-8 bytes are shown lossily.
pub fn shell_quote(word: &OsStr) -> String {
    let s = word.to_string_lossy();
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c));
    if safe {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A pasteable shell command: each option with its value on its own continued line.
pub fn render_command_line(program: &OsStr, args: &[OsString]) -> String {
    let mut out = shell_quote(program);
    for arg in args {
        let starts_option = arg.as_bytes().first() == Some(&b'-');
        out.push_str(if starts_option { " \\\n    " } else { " " });
        out.push_str(&shell_quote(arg));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        Topology::from_yaml("name: t\nmemory: 512M\ncpus: 1\n", "inline").expect("valid")
    }

    fn joined(args: &[OsString]) -> String {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn kvm_stdio_paused_variant() {
        let mut o = QemuOptions::in_run_dir(Path::new("/r"));
        o.serial = SerialOutput::Stdio;
        o.start_paused = true;
        let s = joined(&qemu_args(
            &topology(),
            None,
            Path::new("/r"),
            Accel::Kvm,
            &o,
        ));
        assert!(s.contains("-accel kvm -cpu host -m 512M -smp 1 -S "), "{s}");
        assert!(s.contains("-serial mon:stdio"), "{s}");
        assert!(!s.contains("-kernel") && !s.contains("cxl-"), "{s}");
    }

    #[test]
    fn terminal_console_is_logged_and_gdb_listens_on_loopback() {
        let mut o = QemuOptions::in_run_dir(Path::new("/r"));
        o.serial = SerialOutput::Terminal(PathBuf::from("/r/serial.log"));
        o.gdb_port = Some(41234);
        let s = joined(&qemu_args(
            &topology(),
            None,
            Path::new("/r"),
            Accel::Tcg,
            &o,
        ));
        assert!(
            s.contains(
                "-chardev stdio,id=serial0,mux=on,signal=off,logfile=/r/serial.log,logappend=off \
                 -serial chardev:serial0 -mon chardev=serial0,mode=readline"
            ),
            "{s}"
        );
        assert!(s.contains("-gdb tcp:127.0.0.1:41234"), "{s}");
        let plain = joined(&qemu_args(
            &topology(),
            None,
            Path::new("/r"),
            Accel::Tcg,
            &QemuOptions::in_run_dir(Path::new("/r")),
        ));
        assert!(
            !plain.contains("-gdb") && !plain.contains("stdio"),
            "{plain}"
        );
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let o = QemuOptions::in_run_dir(Path::new("/r,x"));
        let s = joined(&qemu_args(
            &topology(),
            None,
            Path::new("/r,x"),
            Accel::Tcg,
            &o,
        ));
        assert!(s.contains("path=/r,,x/qmp.sock,server=on"), "{s}");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote(OsStr::new("-m")), "-m");
        assert_eq!(shell_quote(OsStr::new("a b")), "'a b'");
        assert_eq!(shell_quote(OsStr::new("it's")), r"'it'\''s'");
        assert_eq!(shell_quote(OsStr::new("")), "''");
        let r = render_command_line(OsStr::new("qemu"), &["-m".into(), "1G".into(), "-S".into()]);
        assert_eq!(r, "qemu \\\n    -m 1G \\\n    -S\n");
    }
}
