//! `lab shell` and `lab exec` on a [`Guest`]: the famfs mount a run's setup leads to (a
//! generated or the user's shadow tree, its bytes written by the host, famfs-fused with the
//! chosen ops), the environment of a case, the banner, and the console shell. The text is
//! built by pure functions (tested); the rest runs it through the agent.

use crate::bringup::Guest;
use crate::user_tree::UserTree;
use anyhow::{bail, Context, Result};
use famfs_shadow::{DaxDev, DaxDevs, GenerateParams, Layout, ShadowTree};
use lab_agent_proto::messages::ExecRequest;
use lab_suite::devices::DeviceMap;
use lab_suite::user_tree::TREE_DIR;
use lab_suite::verify::GUEST_RESULTS;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// Where the shell's famfs mount is in the guest.
pub const MOUNTPOINT: &str = "/mnt/famfs";
/// The guest's files of the shell: the banner and the environment a new shell sources.
pub const BANNER_FILE: &str = "/run/famfs-lab/banner";
pub const ENV_FILE: &str = "/run/famfs-lab/shell.env";
/// The generated tree's directory in the run directory.
pub const GENERATED_DIR: &str = "shadow-generated";
/// The prompt.
pub const PS1: &str = "famfs-lab# ";

/// The command that runs `case_id`'s body in the guest.
pub fn case_command(case_id: &str) -> String {
    format!("famfs-lab-cases run {case_id}")
}

/// The environment of a case or of the mount: `FAMFS_LAB_OPS` and the host's other
/// `FAMFS_LAB_*` knobs, as `lab up` passes them to every case.
pub fn case_env(ops: &str) -> Vec<(String, String)> {
    let mut env = vec![("FAMFS_LAB_OPS".to_string(), ops.to_string())];
    env.extend(crate::case::case_env());
    env
}

/// A shadow tree over every dax device of `map` (slot i = the i-th by name): a few files of
/// different sizes and extents in two directories, for the plain `lab shell`.
pub fn generated_tree(map: &DeviceMap) -> Result<ShadowTree> {
    let mut dax: Vec<_> = map.dax.iter().collect();
    dax.sort_by(|a, b| a.name.cmp(&b.name));
    if dax.is_empty() {
        bail!("the guest has no dax device, so there is nothing to mount (the topology has no region)");
    }
    let devices = DaxDevs(
        dax.iter()
            .enumerate()
            .map(|(i, d)| {
                (
                    i as u32,
                    DaxDev {
                        path: format!("/dev/{}", d.name),
                        size: Some(d.size),
                    },
                )
            })
            .collect(),
    );
    let p = GenerateParams {
        files: 6,
        layout: Layout::Simple { extents: 2 },
        sizes: vec![2 << 20, 8 << 20, (3 << 20) + 1234],
        devices,
        dirs: 2,
        ..GenerateParams::default()
    };
    famfs_shadow::generate(&p).map_err(|e| anyhow::anyhow!("generating a shadow tree: {e}"))
}

/// What the mount serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounted {
    /// The tree on the host (the user's, or the generated one in the run directory).
    pub host_tree: PathBuf,
    pub generated: bool,
    pub files: usize,
    pub ops: String,
    /// The first file (relative to the mount), to read.
    pub first_file: Option<String>,
}

/// Mounts the user's tree (`--shadow`, its bytes already written) or a generated one (written
/// now) at [`MOUNTPOINT`] with `ops`.
pub fn mount(g: &Guest, ops: &str) -> Result<Mounted> {
    let results = g.results();
    let (host_tree, tree, generated) = match (&g.req.user_tree, &g.user_tree) {
        (Some(u), Some(tree)) => (u.dir.clone(), tree.clone(), false),
        _ => {
            let tree = generated_tree(&g.map)?;
            let dir = g.req.run_dir.join(GENERATED_DIR);
            let _ = std::fs::remove_dir_all(&dir);
            famfs_shadow::write(&tree, &dir).map_err(|e| anyhow::anyhow!("{e}"))?;
            let u = UserTree {
                dir: dir.clone(),
                data: Default::default(),
            };
            u.stage(&results)?;
            let note = u.prepare(&tree, &g.map, &g.backings, &results)?;
            lab_host::progress!("famfs-lab: generated {note}");
            (dir, tree, true)
        }
    };
    let shadow = format!("{GUEST_RESULTS}/{TREE_DIR}");
    let mut req = ExecRequest::new(["famfs-lab-cases", "mount", shadow.as_str(), MOUNTPOINT]);
    for (k, v) in case_env(ops) {
        req = req.env(k, v);
    }
    let r = g.exec(req, Duration::from_secs(120))?;
    if !r.success() {
        bail!(
            "mounting {shadow} at {MOUNTPOINT} in the guest: {:?}\n{}{}",
            r.status,
            r.stdout,
            r.stderr
        );
    }
    lab_host::progress!("famfs-lab: {}", r.stdout.trim());
    Ok(Mounted {
        host_tree,
        generated,
        files: tree.files.len(),
        ops: ops.to_string(),
        first_file: tree.files.first().map(|f| f.path.clone()),
    })
}

/// One dax device as the guest sees it, with its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaxState {
    pub name: String,
    pub driver: String,
}

/// Each dax device's driver (`fsdev_dax`, `device_dax`, none), read in the guest.
pub fn dax_drivers(g: &Guest) -> Result<Vec<DaxState>> {
    let script = "for d in /sys/bus/dax/devices/*; do [ -e \"$d\" ] || continue; \
                  drv=$(readlink \"$d/driver\" 2>/dev/null); \
                  echo \"${d##*/} ${drv##*/}\"; done";
    let r = g.exec(ExecRequest::sh(script), Duration::from_secs(30))?;
    Ok(parse_drivers(&r.stdout))
}

/// `dax0.0 fsdev_dax` lines.
pub fn parse_drivers(text: &str) -> Vec<DaxState> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next()?.to_string();
            let driver = w.next().unwrap_or("none").to_string();
            Some(DaxState { name, driver })
        })
        .collect()
}

/// Everything the banner shows.
#[derive(Debug, Clone, Default)]
pub struct BannerInfo {
    pub kernel: String,
    pub topology: String,
    pub accel: String,
    pub map: DeviceMap,
    pub drivers: Vec<DaxState>,
    pub mounted: Option<Mounted>,
    /// `--case`: its id, and why it would SKIP here if it would.
    pub case: Option<(String, Option<String>)>,
    pub env: Vec<(String, String)>,
    pub run_dir: PathBuf,
    /// Lines about the debugger (`--gdb`, `--drgn`).
    pub debug: Vec<String>,
}

/// `1.5 GiB`, `256 MiB`, `4 KiB`, `100 B`.
pub fn human_size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, size) in UNITS {
        if n >= size {
            let whole = n / size;
            let tenth = (n % size) * 10 / size;
            return if tenth == 0 {
                format!("{whole} {unit}")
            } else {
                format!("{whole}.{tenth} {unit}")
            };
        }
    }
    format!("{n} B")
}

/// The text the console shows before the first prompt.
pub fn banner(b: &BannerInfo) -> String {
    let mut s = String::new();
    let rule = "=".repeat(72);
    let _ = writeln!(s, "{rule}");
    let _ = writeln!(
        s,
        "famfs-lab shell: kernel {}, topology {}, {}",
        b.kernel, b.topology, b.accel
    );
    let _ = writeln!(s, "CXL memory devices:");
    let mut memdevs: Vec<_> = b.map.memdevs.iter().collect();
    memdevs.sort_by(|a, c| a.name.cmp(&c.name));
    for m in memdevs {
        let _ = writeln!(
            s,
            "  {:8} {:>10}  topology device {} (backing file {})",
            m.name,
            human_size(m.ram_size),
            m.id,
            m.backing
        );
    }
    let _ = writeln!(s, "dax devices (set up as `lab up` sets them up):");
    let mut dax: Vec<_> = b.map.dax.iter().collect();
    dax.sort_by(|a, c| a.name.cmp(&c.name));
    for d in dax {
        let driver = b
            .drivers
            .iter()
            .find(|x| x.name == d.name)
            .map_or("?", |x| x.driver.as_str());
        let members: Vec<&str> = d.targets.iter().map(|t| t.memdev.as_str()).collect();
        let _ = writeln!(
            s,
            "  /dev/{:8} {:>10}  {} ({}), {}-way x {} over {}; driver {}",
            d.name,
            human_size(d.size),
            d.region,
            d.kernel_region,
            d.ways,
            d.granularity,
            members.join(", "),
            driver
        );
    }
    if b.map.dax.is_empty() {
        let _ = writeln!(s, "  none (the topology has no region)");
    }
    match &b.mounted {
        Some(m) => {
            let what = if m.generated {
                "a generated tree"
            } else {
                "your tree"
            };
            let _ = writeln!(
                s,
                "mount: {MOUNTPOINT}: famfs-fused --ops {} serving {what} ({} files; host {}, \
                 guest {GUEST_RESULTS}/{TREE_DIR})",
                m.ops,
                m.files,
                m.host_tree.display()
            );
            let _ = writeln!(
                s,
                "  server log, stats: {MOUNTPOINT}.server/; the host wrote each file's bytes"
            );
            let _ = writeln!(
                s,
                "  it holds the ops: `umount {MOUNTPOINT}` before running a case (its own server)"
            );
            if let Some(f) = &m.first_file {
                let _ = writeln!(
                    s,
                    "  try: ls -lR {MOUNTPOINT}; hexdump -C {MOUNTPOINT}/{f} | head"
                );
            }
        }
        None => {
            let _ = writeln!(s, "mount: none (the case mounts its own famfs-fused)");
        }
    }
    if let Some((id, skip)) = &b.case {
        let _ = writeln!(
            s,
            "case {id}: the guest is as the case begins (its bytes written by the host)"
        );
        if let Some(why) = skip {
            let _ = writeln!(s, "  NOTE: `lab up` would SKIP it here: {why}");
        }
        let _ = writeln!(
            s,
            "  run its body:  {}   (exit 0 PASS, 1 FAIL, 77 SKIP)",
            case_command(id)
        );
    }
    if !b.env.is_empty() {
        let _ = writeln!(s, "environment (exported; {ENV_FILE}):");
        for (k, v) in &b.env {
            let _ = writeln!(s, "  {k}={v}");
        }
    }
    let _ = writeln!(
        s,
        "results: {GUEST_RESULTS} in the guest is {}/results; serial log {}/serial.log",
        b.run_dir.display(),
        b.run_dir.display()
    );
    for l in &b.debug {
        let _ = writeln!(s, "{l}");
    }
    let _ = writeln!(
        s,
        "leave: Ctrl-D or `poweroff -f` powers the guest off; Ctrl-A x quits QEMU"
    );
    let _ = writeln!(s, "{rule}");
    s
}

/// Single-quotes `v` for sh.
pub fn sh_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', r"'\''"))
}

/// The file a shell sources: `export K='V'` lines, the prompt included.
pub fn env_file(env: &[(String, String)]) -> String {
    let mut s = format!("export PS1={}\n", sh_quote(PS1));
    for (k, v) in env {
        let _ = writeln!(s, "export {k}={}", sh_quote(v));
    }
    s
}

/// The script (run by the agent, returning at once) that shows the banner and starts a login
/// shell on the serial console with the environment sourced; when that shell ends the guest
/// powers off, so QEMU exits.
pub fn console_script() -> String {
    format!(
        "tty=/dev/ttyS0; [ -c $tty ] || tty=/dev/console\n\
         cat {BANNER_FILE} >$tty\n\
         setsid -c sh -c '. {ENV_FILE}; cd /; sh -l; echo \"famfs-lab: the shell ended; powering off\"; poweroff -f' \
         <$tty >$tty 2>&1 &\n"
    )
}

/// Writes the banner and the environment into the guest and starts the console shell.
pub fn start_console(g: &Guest, banner: &str, env: &[(String, String)]) -> Result<()> {
    let t = Duration::from_secs(10);
    g.agent
        .write_file(BANNER_FILE, banner.as_bytes(), None, t)
        .with_context(|| format!("writing {BANNER_FILE} in the guest"))?;
    g.agent
        .write_file(ENV_FILE, env_file(env).as_bytes(), None, t)
        .with_context(|| format!("writing {ENV_FILE} in the guest"))?;
    let r = g.exec(ExecRequest::sh(console_script()), Duration::from_secs(30))?;
    if !r.success() {
        bail!(
            "starting the console shell: {:?}\n{}{}",
            r.status,
            r.stdout,
            r.stderr
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::devices::{DaxDevice, Memdev, Target};

    fn map() -> DeviceMap {
        DeviceMap {
            memdevs: vec![Memdev {
                name: "mem0".into(),
                id: "cxl-mem0".into(),
                serial: 0xfa5000,
                ram_size: 512 << 20,
                backing: "/r/cxl-mem0.raw".into(),
            }],
            dax: vec![DaxDevice {
                name: "dax0.0".into(),
                region: "r0".into(),
                kernel_region: "region0".into(),
                size: 256 << 20,
                hpa: 1 << 40,
                region_hpa: 1 << 40,
                ways: 1,
                granularity: 256,
                targets: vec![Target {
                    memdev: "cxl-mem0".into(),
                    dpa: 0,
                }],
            }],
        }
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(4096), "4 KiB");
        assert_eq!(human_size(100), "100 B");
    }

    #[test]
    fn env_file_exports_quoted_values_and_the_prompt() {
        let env = vec![
            ("FAMFS_LAB_OPS".to_string(), "famfs".to_string()),
            ("FAMFS_LAB_X".to_string(), "it's a b".to_string()),
        ];
        let f = env_file(&env);
        assert_eq!(
            f,
            "export PS1='famfs-lab# '\nexport FAMFS_LAB_OPS='famfs'\nexport FAMFS_LAB_X='it'\\''s a b'\n"
        );
    }

    #[test]
    fn case_env_starts_with_the_ops() {
        let env = case_env("famfs_native");
        assert_eq!(env[0], ("FAMFS_LAB_OPS".into(), "famfs_native".into()));
        assert_eq!(
            env.iter().filter(|(k, _)| k == "FAMFS_LAB_OPS").count(),
            1,
            "{env:?}"
        );
    }

    #[test]
    fn banner_lists_devices_mount_case_and_where_results_go() {
        let b = BannerInfo {
            kernel: "famfs-bpf (abc)".into(),
            topology: "default".into(),
            accel: "tcg".into(),
            map: map(),
            drivers: parse_drivers("dax0.0 fsdev_dax\n"),
            mounted: Some(Mounted {
                host_tree: "/r/shadow-generated".into(),
                generated: true,
                files: 6,
                ops: "famfs".into(),
                first_file: Some("d0/f0".into()),
            }),
            case: Some(("fault.read_pte".into(), None)),
            env: case_env("famfs"),
            run_dir: "/r".into(),
            debug: vec!["gdb: gdb -ex 'target remote :1234'".into()],
        };
        let text = banner(&b);
        for want in [
            "kernel famfs-bpf (abc), topology default, tcg",
            "mem0",
            "512 MiB",
            "/dev/dax0.0",
            "256 MiB",
            "driver fsdev_dax",
            "mount: /mnt/famfs: famfs-fused --ops famfs serving a generated tree (6 files",
            "hexdump -C /mnt/famfs/d0/f0 | head",
            "`umount /mnt/famfs` before running a case",
            "run its body:  famfs-lab-cases run fault.read_pte",
            "FAMFS_LAB_OPS=famfs",
            "/results in the guest is /r/results; serial log /r/serial.log",
            "gdb: gdb -ex",
            "Ctrl-D or `poweroff -f`",
        ] {
            assert!(text.contains(want), "no {want:?} in\n{text}");
        }
        let skip = BannerInfo {
            case: Some(("fault.read_pte".into(), Some("no fmap kernel".into()))),
            mounted: None,
            ..b
        };
        let text = banner(&skip);
        assert!(
            text.contains("would SKIP it here: no fmap kernel"),
            "{text}"
        );
        assert!(text.contains("mount: none"), "{text}");
    }

    #[test]
    fn drivers_parse_with_and_without_one() {
        assert_eq!(
            parse_drivers("dax0.0 fsdev_dax\ndax1.0\n"),
            vec![
                DaxState {
                    name: "dax0.0".into(),
                    driver: "fsdev_dax".into()
                },
                DaxState {
                    name: "dax1.0".into(),
                    driver: "none".into()
                }
            ]
        );
    }

    #[test]
    fn generated_tree_covers_every_dax_device_and_is_valid() {
        let mut m = map();
        let mut second = m.dax[0].clone();
        second.name = "dax1.0".into();
        m.dax.push(second);
        let t = generated_tree(&m).unwrap();
        assert_eq!(t.daxdevs.0.len(), 2);
        assert_eq!(
            t.daxdevs.get(1).map(|d| d.path.as_str()),
            Some("/dev/dax1.0")
        );
        assert_eq!(t.files.len(), 6);
        let d = tempfile::tempdir().unwrap();
        famfs_shadow::write(&t, d.path()).unwrap();
        famfs_shadow::load(d.path()).unwrap();
        assert!(generated_tree(&DeviceMap::default()).is_err());
    }

    #[test]
    fn console_script_sources_the_env_and_powers_off_after_the_shell() {
        let s = console_script();
        assert!(s.contains(&format!("cat {BANNER_FILE}")), "{s}");
        assert!(s.contains(&format!(". {ENV_FILE}; cd /; sh -l;")), "{s}");
        assert!(s.contains("poweroff -f' <$tty >$tty 2>&1 &"), "{s}");
    }
}
