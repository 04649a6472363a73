//! Running one `Exec` request.
//!
//! The command gets its own session (`setsid`, so its process group id is
//! its pid); on timeout the whole group is SIGKILLed. stdout and stderr are
//! captured separately by drain threads, each keeping at most
//! [`MAX_OUTPUT_LEN`] bytes but reading until EOF so the child never blocks
//! on a full pipe. When the command exits while background descendants still
//! hold its pipes, output is collected for a short grace period only and the
//! descendants are left running (so an exec can start a daemon).

use std::io::{self, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lab_agent_proto::{duration_ms, ExecRequest, ExecResult, ExitStatus, MAX_OUTPUT_LEN};
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;

use crate::reaper::{ChildExit, Reaper};

/// How long to keep collecting output after the command exited.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long to wait for the killed group after a timeout.
const KILL_GRACE: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Capture {
    data: Vec<u8>,
    truncated: bool,
}

pub fn run(reaper: &Reaper, req: &ExecRequest) -> ExecResult {
    let start = Instant::now();
    let Some(program) = req.argv.first() else {
        return spawn_failed("empty argv".into(), start);
    };
    let mut cmd = Command::new(program);
    cmd.args(&req.argv[1..])
        .envs(req.env.iter().map(|(k, v)| (k, v)))
        .stdin(if req.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(cwd) = &req.cwd {
        cmd.current_dir(cwd);
    }
    // SAFETY: setsid is async-signal-safe and touches no Rust state.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }

    let (mut child, waiter) = match reaper.spawn(&mut cmd) {
        Ok(spawned) => spawned,
        Err(e) => return spawn_failed(format!("{program}: {e}"), start),
    };
    let start = Instant::now();
    let pid = waiter.pid();

    if let (Some(mut stdin), Some(data)) = (child.stdin.take(), req.stdin.clone()) {
        let _ = std::thread::Builder::new()
            .name("exec-stdin".into())
            .spawn(move || {
                // EPIPE if the command does not read it all: fine.
                let _ = stdin.write_all(data.as_bytes());
            });
    }
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = drain(child.stdout.take(), done_tx.clone());
    let stderr = drain(child.stderr.take(), done_tx);
    drop(child); // never waited on: the reaper owns that

    let exit = if req.timeout_ms == 0 {
        waiter.wait()
    } else {
        waiter.wait_timeout(Duration::from_millis(req.timeout_ms))
    };
    let (status, grace) = match exit {
        Some(exit) => (exit_status(exit), EXIT_GRACE),
        None => {
            kill_group(pid);
            let _ = waiter.wait_timeout(KILL_GRACE);
            (ExitStatus::TimedOut, Duration::from_secs(1))
        }
    };
    let duration = start.elapsed();
    wait_drained(&done_rx, 2, grace);

    let (stdout, out_trunc) = take(&stdout);
    let (stderr, err_trunc) = take(&stderr);
    ExecResult {
        status,
        stdout,
        stderr,
        duration_ms: duration_ms(duration),
        truncated: out_trunc || err_trunc,
    }
}

fn spawn_failed(message: String, start: Instant) -> ExecResult {
    ExecResult {
        status: ExitStatus::SpawnFailed(message),
        stdout: String::new(),
        stderr: String::new(),
        duration_ms: duration_ms(start.elapsed()),
        truncated: false,
    }
}

fn exit_status(exit: ChildExit) -> ExitStatus {
    match exit {
        ChildExit::Exited(code) => ExitStatus::Exited(code),
        ChildExit::Signaled(sig) => ExitStatus::Signaled(sig),
    }
}

/// SIGKILL the command's process group (== its pid, thanks to setsid), and
/// the pid itself in case setsid did not happen.
fn kill_group(pid: i32) {
    let pid = Pid::from_raw(pid);
    let _ = killpg(pid, Signal::SIGKILL);
    let _ = kill(pid, Signal::SIGKILL);
}

/// Read `src` to EOF in a thread, keeping the first MAX_OUTPUT_LEN bytes.
/// Sends on `done` at EOF.
fn drain<R: Read + Send + 'static>(src: Option<R>, done: mpsc::Sender<()>) -> Arc<Mutex<Capture>> {
    let capture = Arc::new(Mutex::new(Capture::default()));
    let Some(mut src) = src else {
        let _ = done.send(());
        return capture;
    };
    let shared = Arc::clone(&capture);
    let spawned = std::thread::Builder::new()
        .name("exec-drain".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match src.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut cap = shared.lock().unwrap_or_else(|e| e.into_inner());
                        let room = MAX_OUTPUT_LEN.saturating_sub(cap.data.len());
                        if n > room {
                            cap.truncated = true;
                        }
                        cap.data.extend_from_slice(&buf[..n.min(room)]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            let _ = done.send(());
        });
    if spawned.is_err() {
        crate::log("exec: cannot start output thread; output lost");
    }
    capture
}

fn wait_drained(done: &Receiver<()>, count: usize, grace: Duration) {
    let deadline = Instant::now() + grace;
    for _ in 0..count {
        let left = deadline.saturating_duration_since(Instant::now());
        if done.recv_timeout(left).is_err() {
            return;
        }
    }
}

fn take(capture: &Mutex<Capture>) -> (String, bool) {
    let cap = capture.lock().unwrap_or_else(|e| e.into_inner());
    (
        String::from_utf8_lossy(&cap.data).into_owned(),
        cap.truncated,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reaper::reaper;

    fn sh(script: &str, timeout_ms: u64) -> ExecResult {
        run(
            reaper(),
            &ExecRequest::sh(script).timeout(Duration::from_millis(timeout_ms)),
        )
    }

    #[test]
    fn captures_both_streams_and_code() {
        let r = sh("echo out; echo err >&2; exit 3", 10_000);
        assert_eq!(r.status, ExitStatus::Exited(3));
        assert_eq!(r.stdout, "out\n");
        assert_eq!(r.stderr, "err\n");
        assert!(!r.truncated);
    }

    #[test]
    fn env_cwd_stdin() {
        let req = ExecRequest::sh("echo $FOO; pwd; cat")
            .env("FOO", "bar")
            .cwd("/")
            .stdin("from stdin");
        let r = run(reaper(), &req);
        assert_eq!(r.status, ExitStatus::Exited(0));
        assert_eq!(r.stdout, "bar\n/\nfrom stdin");
    }

    #[test]
    fn output_is_capped() {
        let r = sh("head -c 3000000 /dev/zero; echo e >&2", 30_000);
        assert_eq!(r.status, ExitStatus::Exited(0));
        assert_eq!(r.stdout.len(), MAX_OUTPUT_LEN);
        assert_eq!(r.stderr, "e\n");
        assert!(r.truncated);
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let t0 = Instant::now();
        let r = sh("sleep 30 & echo $!; sleep 30", 300);
        assert_eq!(r.status, ExitStatus::TimedOut);
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
        let bg: i32 = r.stdout.trim().parse().unwrap();
        // The background sleep was in the same group: killed too. (It is
        // reparented to init/subreaper, so give that a moment to reap.)
        let t1 = Instant::now();
        while kill(Pid::from_raw(bg), None).is_ok() && t1.elapsed() < Duration::from_secs(5) {
            let stat = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
            if stat.contains(") Z ") {
                break; // dead, waiting for its (new) parent to reap it
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let stat = std::fs::read_to_string(format!("/proc/{bg}/stat")).unwrap_or_default();
        assert!(stat.is_empty() || stat.contains(") Z "), "{stat}");
    }

    #[test]
    fn spawn_failures() {
        let r = run(reaper(), &ExecRequest::new(["/nonexistent/prog"]));
        assert!(
            matches!(r.status, ExitStatus::SpawnFailed(ref m) if m.contains("/nonexistent/prog")),
            "{:?}",
            r.status
        );
        let r = run(reaper(), &ExecRequest::new(Vec::<String>::new()));
        assert!(matches!(r.status, ExitStatus::SpawnFailed(_)));
        let r = run(
            reaper(),
            &ExecRequest::new(["true"]).cwd("/nonexistent-dir"),
        );
        assert!(matches!(r.status, ExitStatus::SpawnFailed(_)));
        let r = run(reaper(), &ExecRequest::new(["nul\0byte"]));
        assert!(matches!(r.status, ExitStatus::SpawnFailed(_)));
    }

    #[test]
    fn background_holder_of_stdout_does_not_block() {
        let t0 = Instant::now();
        let r = sh("echo hi; (sleep 5; echo late) & exit 0", 10_000);
        assert_eq!(r.status, ExitStatus::Exited(0));
        assert_eq!(r.stdout, "hi\n");
        assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    }
}
