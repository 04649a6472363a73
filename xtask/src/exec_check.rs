//! `cargo xtask test`'s end-to-end check of `lab exec` (and of the set-up guest `lab shell`
//! opens): one command in a guest of the default topology must see every dax device of the
//! setup and the famfs mount, its copy of a mounted file must hold the bytes the host wrote
//! (the host's CRCs), and its stdout, stderr and exit status must come back apart. Then a
//! case's body run by hand in the state the case begins in (`--case`) must pass as it does in
//! `lab up`.

use crate::build_args::BuildArgs;
use crate::shell::{exec_to, ExecArgs, GuestArgs};
use anyhow::{bail, Context, Result};
use lab_suite::devices::DeviceMap;
use lab_suite::user_tree::{Expectation, EXPECT_FILE};
use std::path::Path;
use xshell::Shell;

/// The status the command exits with: passed through, it tells the status apart from 0 and 1.
pub const STATUS: i32 = 7;
/// What the command writes on its stderr.
const STDERR_WORD: &str = "exec-check-stderr";
/// Before the kernel's modprobe path (PID 1 turns module requests off, an empty path, for its
/// bpffs mount only: they must be on again; `none` on a kernel without modules).
const MODPROBE_WORD: &str = "modprobe=";
/// The file of the generated tree it copies, and where the copy goes (`RUN/results/...`).
const FILE: &str = "d0/f0";
const COPY: &str = "exec-check.copy";

/// The guest's command.
pub fn script() -> String {
    format!(
        "ls /dev/dax*; grep ' /mnt/famfs fuse' /proc/mounts; \
         echo {MODPROBE_WORD}$(cat /proc/sys/kernel/modprobe 2>/dev/null || echo none); \
         cp /mnt/famfs/{FILE} /results/{COPY} && echo copied; \
         echo {STDERR_WORD} >&2; exit {STATUS}"
    )
}

/// The case whose body runs by hand (it needs the host's fill and the fmap kernel).
pub const CASE: &str = "fault.read_pte";

fn exec_args(kernel: &BuildArgs, case: Option<&str>, command: Vec<String>) -> ExecArgs {
    ExecArgs {
        guest: GuestArgs {
            kernel: kernel.clone(),
            topology: "default".into(),
            ops: crate::ops::Ops::Famfs,
            shadow: None,
            daxdev_data: Vec::new(),
            case: case.map(String::from),
            cmdline: String::new(),
            boot_timeout: 120,
            gdb: false,
            mutant: None,
        },
        timeout: 300,
        command,
    }
}

/// Runs both checks; an error says what did not hold.
pub fn run(sh: &Shell, kernel: &BuildArgs) -> Result<()> {
    set_up_guest(sh, kernel)?;
    case_by_hand(sh, kernel)
}

/// `lab exec --case CASE -- famfs-lab-cases run CASE` exits 0, as `lab up --case CASE` passes.
fn case_by_hand(sh: &Shell, kernel: &BuildArgs) -> Result<()> {
    let command = lab_runner::shell::case_command(CASE)
        .split_whitespace()
        .map(String::from)
        .collect();
    let args = exec_args(kernel, Some(CASE), command);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let done = exec_to(sh, &args, &mut out, &mut err)?;
    if done.code != 0 {
        bail!(
            "lab exec --case {CASE} ({}): the case's body exited {} by hand:\n{}{}",
            done.run_dir.display(),
            done.code,
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        );
    }
    lab_host::progress!("famfs-lab: lab exec --case {CASE}: the case's body passes by hand");
    Ok(())
}

/// One command in the plain set-up guest.
fn set_up_guest(sh: &Shell, kernel: &BuildArgs) -> Result<()> {
    let args = exec_args(kernel, None, vec![script()]);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let done = exec_to(sh, &args, &mut out, &mut err)?;
    let map: DeviceMap = read_json(&done.run_dir.join("devices.json"))?;
    let expect: Expectation = read_json(&done.run_dir.join("results").join(EXPECT_FILE))?;
    let copy = std::fs::read(done.run_dir.join("results").join(COPY)).unwrap_or_default();
    let problems = judge(
        done.code,
        &String::from_utf8_lossy(&out),
        &String::from_utf8_lossy(&err),
        &map,
        &expect,
        &copy,
    );
    if !problems.is_empty() {
        bail!(
            "lab exec ({}): {}",
            done.run_dir.display(),
            problems.join("; ")
        );
    }
    lab_host::progress!(
        "famfs-lab: lab exec: status {STATUS}, stdout and stderr apart, {} dax device(s), the mount, {FILE}'s {} bytes as the host wrote them",
        map.dax.len(),
        copy.len()
    );
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Everything wrong with what the command gave back (empty: the check passed).
pub fn judge(
    code: i32,
    stdout: &str,
    stderr: &str,
    map: &DeviceMap,
    expect: &Expectation,
    copy: &[u8],
) -> Vec<String> {
    let mut p = Vec::new();
    if code != STATUS {
        p.push(format!("exit status {code}, the command exited {STATUS}"));
    }
    if map.dax.is_empty() {
        p.push("the setup made no dax device".into());
    }
    for d in &map.dax {
        if !stdout
            .lines()
            .any(|l| l.trim() == format!("/dev/{}", d.name))
        {
            p.push(format!("`ls /dev/dax*` did not list /dev/{}", d.name));
        }
    }
    if !stdout.contains(" /mnt/famfs fuse") {
        p.push("no famfs mount at /mnt/famfs".into());
    }
    match stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(MODPROBE_WORD))
    {
        None => p.push("the command did not say the kernel's modprobe path".into()),
        Some("") => p.push(
            "the kernel's module requests are off after the boot (an empty modprobe path)".into(),
        ),
        Some(_) => {}
    }
    if stdout.contains(STDERR_WORD) {
        p.push("the command's stderr came back on stdout".into());
    }
    if !stderr.contains(STDERR_WORD) {
        p.push("the command's stderr did not come back".into());
    }
    match expect.files.iter().find(|f| f.path == FILE) {
        None => p.push(format!("the host's list has no {FILE}")),
        Some(f) => {
            if copy.len() as u64 != f.size {
                p.push(format!(
                    "the guest's copy of {FILE} has {} bytes, the tree says {}",
                    copy.len(),
                    f.size
                ));
            } else {
                let block = expect.block.max(1) as usize;
                let got: Vec<u32> = copy.chunks(block).map(crc32fast::hash).collect();
                if let Some(i) = (0..f.crc32.len()).find(|&i| got.get(i) != f.crc32.get(i)) {
                    p.push(format!(
                        "{FILE} block {i} read in the guest is not what the host wrote"
                    ));
                }
            }
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use lab_suite::user_tree::FileExpect;

    fn map() -> DeviceMap {
        DeviceMap::one_device(1 << 30, 0, 256, "mem0", 0)
    }

    fn expect(bytes: &[u8]) -> Expectation {
        Expectation {
            block: 4,
            files: vec![FileExpect {
                path: FILE.into(),
                size: bytes.len() as u64,
                crc32: bytes.chunks(4).map(crc32fast::hash).collect(),
            }],
        }
    }

    const OUT: &str =
        "/dev/dax0.0\nfamfs /mnt/famfs fuse.famfs rw 0 0\nmodprobe=/sbin/modprobe\ncopied\n";

    #[test]
    fn a_good_exec_passes() {
        let bytes = b"0123456789";
        let p = judge(STATUS, OUT, STDERR_WORD, &map(), &expect(bytes), bytes);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn each_broken_part_is_named() {
        let bytes = b"0123456789";
        let e = expect(bytes);
        let m = map();
        let all = |code, out: &str, err: &str, copy: &[u8]| {
            judge(code, out, err, &m, &e, copy).join("; ")
        };
        assert!(all(0, OUT, STDERR_WORD, bytes).contains("exit status 0"));
        assert!(all(STATUS, "copied\n", STDERR_WORD, bytes).contains("did not list /dev/dax0.0"));
        assert!(all(STATUS, "/dev/dax0.0\n", STDERR_WORD, bytes).contains("no famfs mount"));
        assert!(all(STATUS, &format!("{OUT}{STDERR_WORD}\n"), "", bytes)
            .contains("stderr came back on stdout"));
        assert!(all(STATUS, OUT, STDERR_WORD, b"0123X56789").contains("block 1"));
        assert!(all(STATUS, OUT, STDERR_WORD, b"").contains("has 0 bytes"));
        let off = OUT.replace("modprobe=/sbin/modprobe", "modprobe=");
        assert!(all(STATUS, &off, STDERR_WORD, bytes).contains("module requests are off"));
        let unsaid = OUT.replace("modprobe=/sbin/modprobe\n", "");
        assert!(all(STATUS, &unsaid, STDERR_WORD, bytes).contains("did not say"));
        let no_modules = OUT.replace("modprobe=/sbin/modprobe", "modprobe=none");
        assert!(all(STATUS, &no_modules, STDERR_WORD, bytes).is_empty());
        assert!(!judge(STATUS, OUT, STDERR_WORD, &DeviceMap::default(), &e, bytes).is_empty());
    }

    #[test]
    fn the_script_does_what_the_judge_checks() {
        let s = script();
        assert!(s.contains("ls /dev/dax*"), "{s}");
        assert!(s.contains(&format!("/results/{COPY}")), "{s}");
        assert!(
            s.contains("echo modprobe=$(cat /proc/sys/kernel/modprobe"),
            "{s}"
        );
        assert!(
            s.contains(&format!("{STDERR_WORD} >&2; exit {STATUS}")),
            "{s}"
        );
    }
}
