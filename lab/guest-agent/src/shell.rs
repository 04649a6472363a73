//! `lab shell`: with `famfs_lab.shell=1` on the kernel command line, PID 1
//! also starts an interactive shell on the serial console, beside the
//! agent, for local reproduction by hand.

use std::process::{Command, Stdio};

/// The kernel command line flag that asks for the console shell.
pub const SHELL_FLAG: &str = "famfs_lab.shell=1";

/// Whether `cmdline` (the text of /proc/cmdline) asks for the shell.
pub fn wanted(cmdline: &str) -> bool {
    cmdline.split_whitespace().any(|w| w == SHELL_FLAG)
}

/// Starts `sh` as a session leader with the console as its controlling
/// terminal (busybox `setsid -c`). The reaper collects it when it exits.
pub fn start() {
    let console = || {
        std::fs::File::options()
            .read(true)
            .write(true)
            .open("/dev/console")
    };
    let (Ok(i), Ok(o), Ok(e)) = (console(), console(), console()) else {
        crate::log("console shell: cannot open /dev/console");
        return;
    };
    let mut cmd = Command::new("/bin/busybox");
    cmd.args(["setsid", "-c", "/bin/sh", "-l"])
        .env("PS1", "famfs-lab# ")
        .stdin(Stdio::from(i))
        .stdout(Stdio::from(o))
        .stderr(Stdio::from(e));
    match crate::reaper::reaper().spawn(&mut cmd) {
        Ok(_) => crate::log("console shell started (exit it and run `poweroff -f` to stop the VM)"),
        Err(err) => crate::log(&format!("console shell: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_must_be_a_whole_word() {
        assert!(wanted("console=ttyS0 famfs_lab.shell=1 panic=-1"));
        assert!(!wanted("console=ttyS0 famfs_lab.shell=10"));
        assert!(!wanted(""));
    }
}
