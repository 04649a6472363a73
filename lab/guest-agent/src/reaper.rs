//! The single place where this process waits for children.
//!
//! As PID 1 (and as a child subreaper in `--no-init` mode) we inherit
//! orphans, so one thread must collect every exit with a wildcard wait and
//! route it to whoever is interested in that pid. Nothing else in the agent
//! may call `wait`: `std::process::Child::wait` would race with this thread.
//!
//! Races handled:
//! * A child may exit before its waiter registers. [`Reaper::spawn`] spawns
//!   and registers under the state lock, and the reaper thread only reaps
//!   while holding that lock, so the status always finds its waiter. For pids
//!   registered after the fact ([`Reaper::register`]) statuses nobody claimed
//!   yet are kept (bounded) in an "unclaimed" map.
//! * `std::process::Command::spawn` reaps the child itself when `exec` fails
//!   (and panics if that `waitpid` fails with ECHILD). The reaper therefore
//!   first *peeks* with `waitid(P_ALL, WEXITED|WNOWAIT)`, then takes the lock
//!   (which a spawn in progress holds) and only then reaps that pid with
//!   `waitpid(pid, WNOHANG)`: std's own cleanup always wins.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::process::{Child, Command};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// Unclaimed statuses kept for late registration (mostly orphans as PID 1).
const MAX_UNCLAIMED: usize = 1024;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    Exited(i32),
    Signaled(i32),
}

#[derive(Default)]
struct State {
    waiters: HashMap<i32, Sender<ChildExit>>,
    unclaimed: HashMap<i32, ChildExit>,
    unclaimed_order: VecDeque<i32>,
    /// Bumped on every spawn, so an idle reaper (no children) wakes up.
    spawn_gen: u64,
    /// Exits nobody had registered for when they were reaped.
    unclaimed_total: u64,
}

pub struct Reaper {
    state: Mutex<State>,
    cond: Condvar,
}

/// Receives the exit status of one child.
#[derive(Debug)]
pub struct ExitWaiter {
    pid: i32,
    rx: Receiver<ChildExit>,
}

impl ExitWaiter {
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Block until the child has been reaped.
    pub fn wait(&self) -> Option<ChildExit> {
        self.rx.recv().ok()
    }

    /// `None` if the child has not exited within `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<ChildExit> {
        self.rx.recv_timeout(timeout).ok()
    }
}

/// The process-wide reaper; its thread starts on first use.
pub fn reaper() -> &'static Reaper {
    static REAPER: OnceLock<&'static Reaper> = OnceLock::new();
    REAPER.get_or_init(|| {
        let reaper: &'static Reaper = Box::leak(Box::new(Reaper {
            state: Mutex::new(State::default()),
            cond: Condvar::new(),
        }));
        let spawned = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || reaper.run());
        if let Err(e) = spawned {
            // Without the thread children become zombies, but spawning and
            // waiting still cannot deadlock the caller forever on their own.
            crate::log(&format!("cannot start reaper thread: {e}"));
        }
        reaper
    })
}

impl Reaper {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Spawn `cmd` and register for its exit. Never call `wait` on the
    /// returned `Child`; use the [`ExitWaiter`].
    pub fn spawn(&self, cmd: &mut Command) -> io::Result<(Child, ExitWaiter)> {
        let mut state = self.lock();
        // Holding the lock: the reaper thread cannot reap this child (or
        // steal std's internal wait after a failed exec) until we return.
        let child = cmd.spawn()?;
        let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
        // Any unclaimed status under this pid belongs to an older process.
        state.unclaimed.remove(&pid);
        let (tx, rx) = mpsc::channel();
        state.waiters.insert(pid, tx);
        state.spawn_gen += 1;
        self.cond.notify_all();
        Ok((child, ExitWaiter { pid, rx }))
    }

    /// Register interest in a child that was spawned elsewhere. If it was
    /// already reaped, the stored status is delivered immediately.
    // Only for children not spawned via `spawn`; the agent has none today.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn register(&self, pid: i32) -> ExitWaiter {
        let mut state = self.lock();
        let (tx, rx) = mpsc::channel();
        if let Some(exit) = state.unclaimed.remove(&pid) {
            let _ = tx.send(exit);
        } else {
            state.waiters.insert(pid, tx);
            state.spawn_gen += 1;
            self.cond.notify_all();
        }
        ExitWaiter { pid, rx }
    }

    /// Number of reaped children nobody was waiting for at the time
    /// (orphans when running as PID 1 or subreaper).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn unclaimed_total(&self) -> u64 {
        self.lock().unclaimed_total
    }

    fn run(&self) {
        let peek = WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT | WaitPidFlag::__WALL;
        loop {
            let gen = self.lock().spawn_gen;
            match waitid(Id::All, peek) {
                Ok(status) => {
                    if let Some(pid) = status.pid() {
                        self.reap(pid);
                    }
                }
                Err(Errno::EINTR) => {}
                Err(Errno::ECHILD) => {
                    // No children: sleep until the next spawn (or a while,
                    // in case children appear another way).
                    let state = self.lock();
                    if state.spawn_gen == gen {
                        let _ = self.cond.wait_timeout(state, Duration::from_secs(1));
                    }
                }
                Err(e) => {
                    crate::log(&format!("reaper: waitid: {e}"));
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn reap(&self, pid: Pid) {
        let mut state = self.lock();
        let exit = match waitpid(pid, Some(WaitPidFlag::WNOHANG | WaitPidFlag::__WALL)) {
            Ok(WaitStatus::Exited(_, code)) => ChildExit::Exited(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => ChildExit::Signaled(sig as i32),
            // Already reaped (std's cleanup of a failed spawn) or not an exit.
            _ => return,
        };
        let raw = pid.as_raw();
        if let Some(tx) = state.waiters.remove(&raw) {
            let _ = tx.send(exit);
            return;
        }
        state.unclaimed_total += 1;
        if state.unclaimed.insert(raw, exit).is_none() {
            state.unclaimed_order.push_back(raw);
        }
        while state.unclaimed_order.len() > MAX_UNCLAIMED {
            if let Some(old) = state.unclaimed_order.pop_front() {
                state.unclaimed.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::path::Path;
    use std::process::Stdio;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        cmd
    }

    #[test]
    fn exit_codes_and_signals_are_routed() {
        let (_c1, w1) = reaper().spawn(&mut sh("exit 7")).unwrap();
        let (_c2, w2) = reaper().spawn(&mut sh("kill -9 $$")).unwrap();
        assert_eq!(
            w1.wait_timeout(Duration::from_secs(10)),
            Some(ChildExit::Exited(7))
        );
        assert_eq!(
            w2.wait_timeout(Duration::from_secs(10)),
            Some(ChildExit::Signaled(9))
        );
    }

    #[test]
    fn many_concurrent_children() {
        let waiters: Vec<_> = (0..20)
            .map(|i| reaper().spawn(&mut sh(&format!("exit {i}"))).unwrap())
            .collect();
        for (i, (_child, w)) in waiters.iter().enumerate() {
            assert_eq!(
                w.wait_timeout(Duration::from_secs(10)),
                Some(ChildExit::Exited(i as i32))
            );
        }
    }

    #[test]
    // The reaper thread reaps it; waiting on the Child would race with it.
    #[allow(clippy::zombie_processes)]
    fn exit_before_registration_is_kept() {
        // The reaper thread must run (nextest runs each test in a fresh
        // process, where nothing else has started it).
        reaper();
        // Spawned outside the reaper: it may be reaped before we register.
        let child = sh("exit 5").spawn().unwrap();
        let pid = i32::try_from(child.id()).unwrap();
        let t0 = Instant::now();
        while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(10)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        // Gone from /proc means reaped (a zombie still has /proc/PID).
        assert!(!Path::new(&format!("/proc/{pid}")).exists());
        let w = reaper().register(pid);
        assert_eq!(
            w.wait_timeout(Duration::from_millis(10)),
            Some(ChildExit::Exited(5))
        );
        assert!(reaper().unclaimed_total() >= 1);
    }

    #[test]
    fn failed_spawn_does_not_panic_or_leak() {
        // A live child keeps the reaper blocked in its wildcard wait, the
        // situation in which it could steal std's internal waitpid.
        let (_sleeper, sleeper_exit) = reaper().spawn(&mut sh("sleep 3")).unwrap();
        for _ in 0..50 {
            // With a pre_exec hook std uses fork+exec and, when exec fails,
            // reaps the child itself (panicking if someone else did).
            let mut cmd = Command::new("/nonexistent/program");
            // SAFETY: the hook does nothing.
            unsafe { cmd.pre_exec(|| Ok(())) };
            let err = reaper().spawn(&mut cmd).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
            let err = reaper()
                .spawn(Command::new("true").current_dir("/nonexistent-dir"))
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::NotFound);
        }
        // The reaper keeps working afterwards.
        let (_c, w) = reaper().spawn(&mut sh("exit 3")).unwrap();
        assert_eq!(
            w.wait_timeout(Duration::from_secs(10)),
            Some(ChildExit::Exited(3))
        );
        assert_eq!(
            sleeper_exit.wait_timeout(Duration::from_secs(10)),
            Some(ChildExit::Exited(0))
        );
    }
}
