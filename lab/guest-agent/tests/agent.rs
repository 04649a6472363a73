//! End-to-end tests: run the real agent binary (`--no-init`) on a Unix
//! socket and drive it with the real host client.

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab_agent_proto::{
    AgentClient, AgentError, ClientOptions, ExecRequest, ExitStatus, LineReader, Request,
    RequestBody, Response, ResponseBody,
};

const AGENT: &str = env!("CARGO_BIN_EXE_famfs-lab-agent");
const T: Duration = Duration::from_secs(20);

struct Agent {
    child: Child,
    dir: tempfile::TempDir,
}

impl Agent {
    /// Agent listening on `<dir>/agent.sock` (like QEMU's chardev server).
    fn start() -> Agent {
        let dir = tempfile::tempdir().unwrap();
        let child = Command::new(AGENT)
            .arg("--no-init")
            .arg("--listen")
            .arg(dir.path().join("agent.sock"))
            .arg("--kmsg")
            .arg(dir.path().join("kmsg"))
            .arg("--host-calls")
            .arg(dir.path().join("host-call.sock"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Agent { child, dir }
    }

    fn sock(&self) -> PathBuf {
        self.dir.path().join("agent.sock")
    }

    fn client(&self) -> AgentClient {
        let client = AgentClient::connect(self.sock(), Instant::now() + T).unwrap();
        client.wait_ready(T).unwrap();
        client
    }

    /// Raw connection (after the Ready line) for malformed input.
    fn raw(&self) -> (UnixStream, LineReader<UnixStream>) {
        let deadline = Instant::now() + T;
        let stream = loop {
            match UnixStream::connect(self.sock()) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("connect: {e}"),
            }
        };
        stream.set_read_timeout(Some(T)).unwrap();
        let mut lines = LineReader::new(stream.try_clone().unwrap());
        let ready: Response = lines.read_message().unwrap();
        assert!(matches!(ready.body, ResponseBody::Ready { .. }));
        (stream, lines)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(script: &str, timeout: Duration) -> ExecRequest {
    ExecRequest::sh(script).timeout(timeout)
}

fn proc_exists(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn wait_gone(pid: i32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while proc_exists(pid) {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

fn ppid_of(pid: i32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ..." - comm may contain spaces.
    stat.rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn hello_echoes_nonce_and_reports_system() {
    let agent = Agent::start();
    let client = agent.client();
    let a = client.hello(T).unwrap();
    let b = client.hello(T).unwrap();
    assert_ne!(a.nonce, b.nonce);
    assert_eq!(a.agent_version, env!("CARGO_PKG_VERSION"));
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(a.kernel_release, release.trim());
    assert!(a.uptime_ms > 0);
    assert!(b.uptime_ms >= a.uptime_ms);
}

#[test]
fn exec_captures_streams_and_exit_code() {
    let agent = Agent::start();
    let client = agent.client();
    let r = client
        .exec(sh("echo out; echo err >&2; exit 3", T), T)
        .unwrap();
    assert_eq!(r.status, ExitStatus::Exited(3));
    assert_eq!(r.stdout, "out\n");
    assert_eq!(r.stderr, "err\n");
    assert!(!r.truncated);

    let r = client
        .exec(
            ExecRequest::sh("printf '%s:' \"$X\"; pwd; cat")
                .env("X", "y z")
                .cwd("/")
                .stdin("IN"),
            T,
        )
        .unwrap();
    assert_eq!(r.stdout, "y z:/\nIN");
    assert!(r.success());
}

#[test]
fn exec_timeout_kills_and_reaps() {
    let agent = Agent::start();
    let client = agent.client();
    let t0 = Instant::now();
    let r = client
        .exec(sh("echo $$; exec sleep 30", Duration::from_millis(300)), T)
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(r.status, ExitStatus::TimedOut);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(r.duration_ms >= 300);
    let pid: i32 = r.stdout.trim().parse().unwrap();
    // Killed and reaped by the agent (a zombie would still be in /proc).
    assert!(
        wait_gone(pid, Duration::from_secs(2)),
        "pid {pid} still exists"
    );
}

#[test]
fn exec_timeout_kills_background_children_too() {
    let agent = Agent::start();
    let client = agent.client();
    let r = client
        .exec(
            sh(
                "sleep 30 >/dev/null 2>&1 & echo $!; sleep 30",
                Duration::from_millis(300),
            ),
            T,
        )
        .unwrap();
    assert_eq!(r.status, ExitStatus::TimedOut);
    let bg: i32 = r.stdout.trim().parse().unwrap();
    assert!(wait_gone(bg, Duration::from_secs(3)), "pid {bg} survived");
}

#[test]
fn exec_signaled() {
    let agent = Agent::start();
    let client = agent.client();
    let r = client.exec(sh("kill -9 $$", T), T).unwrap();
    assert_eq!(r.status, ExitStatus::Signaled(9));
    let r = client.exec(sh("kill -TERM $$", T), T).unwrap();
    assert_eq!(r.status, ExitStatus::Signaled(15));
}

#[test]
fn exec_spawn_failed() {
    let agent = Agent::start();
    let client = agent.client();
    let r = client
        .exec(ExecRequest::new(["/no/such/program", "x"]), T)
        .unwrap();
    match r.status {
        ExitStatus::SpawnFailed(msg) => assert!(msg.contains("/no/such/program"), "{msg}"),
        other => panic!("{other:?}"),
    }
    let r = client
        .exec(ExecRequest::new(["true"]).cwd("/no/such/dir"), T)
        .unwrap();
    assert!(matches!(r.status, ExitStatus::SpawnFailed(_)));
    // The agent is fine afterwards.
    assert!(client
        .exec(ExecRequest::new(["true"]), T)
        .unwrap()
        .success());
}

#[test]
fn concurrent_execs_do_not_block_each_other() {
    let agent = Agent::start();
    let client = Arc::new(agent.client());
    let slow_client = Arc::clone(&client);
    let t0 = Instant::now();
    let slow = std::thread::spawn(move || {
        let r = slow_client.exec(sh("sleep 1; echo slow", T), T).unwrap();
        (r, t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(100));
    let fast = client.exec(sh("echo fast", T), T).unwrap();
    let fast_at = t0.elapsed();
    let hello_t = Instant::now();
    client.hello(T).unwrap();
    let hello_took = hello_t.elapsed();
    let (slow, slow_at) = slow.join().unwrap();
    assert_eq!(fast.stdout, "fast\n");
    assert_eq!(slow.stdout, "slow\n");
    assert!(fast_at < slow_at, "fast {fast_at:?} slow {slow_at:?}");
    assert!(slow_at >= Duration::from_secs(1));
    assert!(hello_took < Duration::from_millis(900), "{hello_took:?}");
}

#[test]
fn many_parallel_execs_get_their_own_results() {
    let agent = Agent::start();
    let client = Arc::new(agent.client());
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let c = Arc::clone(&client);
            std::thread::spawn(move || {
                let r = c.exec(sh(&format!("echo {i}; exit {i}"), T), T).unwrap();
                (i, r)
            })
        })
        .collect();
    for h in handles {
        let (i, r) = h.join().unwrap();
        assert_eq!(r.status, ExitStatus::Exited(i));
        assert_eq!(r.stdout, format!("{i}\n"));
    }
}

#[test]
fn orphans_are_reaped() {
    // Not PID 1 here, but the agent is a child subreaper: orphaned
    // grandchildren are reparented to it and must not stay zombies.
    let agent = Agent::start();
    let client = agent.client();
    let r = client
        .exec(sh("sleep 1 >/dev/null 2>&1 & echo $!", T), T)
        .unwrap();
    assert!(r.success());
    let orphan: i32 = r.stdout.trim().parse().unwrap();
    assert_eq!(ppid_of(orphan), Some(agent.pid()), "not reparented");
    assert!(
        wait_gone(orphan, Duration::from_secs(5)),
        "orphan {orphan} not reaped"
    );
}

#[test]
fn malformed_lines_get_errors_and_agent_keeps_going() {
    let agent = Agent::start();
    let (mut out, mut lines) = agent.raw();

    out.write_all(b"{this is not json\n").unwrap();
    let resp: Response = lines.read_message().unwrap();
    assert_eq!(resp.id, 0);
    assert!(matches!(resp.body, ResponseBody::Error { .. }), "{resp:?}");

    // Valid JSON, valid id, unknown body: the error carries the id.
    out.write_all(b"{\"id\":77,\"body\":{\"type\":\"bogus\"}}\n")
        .unwrap();
    let resp: Response = lines.read_message().unwrap();
    assert_eq!(resp.id, 77);
    assert!(matches!(resp.body, ResponseBody::Error { .. }));

    // Invalid UTF-8.
    out.write_all(b"\xff\xfe\n").unwrap();
    let resp: Response = lines.read_message().unwrap();
    assert!(matches!(resp.body, ResponseBody::Error { .. }));

    let hello = Request {
        id: 5,
        body: RequestBody::Hello { nonce: "n".into() },
    };
    lab_agent_proto::write_message(&mut out, &hello).unwrap();
    let resp: Response = lines.read_message().unwrap();
    assert_eq!(resp.id, 5);
    assert!(matches!(resp.body, ResponseBody::Hello(ref h) if h.nonce == "n"));
}

#[test]
fn oversize_line_is_rejected_without_panic() {
    let agent = Agent::start();
    let (mut out, mut lines) = agent.raw();
    let big = vec![b'x'; lab_agent_proto::MAX_LINE_LEN + 1024 * 1024];
    let writer = {
        let mut out = out.try_clone().unwrap();
        std::thread::spawn(move || {
            out.write_all(&big).unwrap();
            out.write_all(b"\n").unwrap();
        })
    };
    let resp: Response = lines.read_message().unwrap();
    assert_eq!(resp.id, 0);
    match resp.body {
        ResponseBody::Error { message } => assert!(message.contains("longer"), "{message}"),
        other => panic!("{other:?}"),
    }
    writer.join().unwrap();
    let hello = Request {
        id: 6,
        body: RequestBody::Hello { nonce: "m".into() },
    };
    lab_agent_proto::write_message(&mut out, &hello).unwrap();
    let resp: Response = lines.read_message().unwrap();
    assert_eq!(resp.id, 6);
}

#[test]
fn killing_the_agent_disconnects_pending_calls() {
    let mut agent = Agent::start();
    let client = Arc::new(agent.client());
    let pidfile = agent.dir.path().join("sleep.pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let c2 = Arc::clone(&client);
    let pending = std::thread::spawn(move || {
        let r = c2.exec(
            sh(&script, Duration::from_secs(60)),
            Duration::from_secs(60),
        );
        (r, Instant::now())
    });
    let deadline = Instant::now() + T;
    let sleeper: i32 = loop {
        if let Some(pid) = std::fs::read_to_string(&pidfile)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            break pid;
        }
        assert!(Instant::now() < deadline, "command never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    let killed_at = Instant::now();
    agent.child.kill().unwrap();
    let (r, returned_at) = pending.join().unwrap();
    assert!(matches!(r, Err(AgentError::Disconnected)), "{r:?}");
    assert!(returned_at - killed_at < Duration::from_secs(2));
    assert!(!client.is_connected());
    assert!(matches!(client.hello(T), Err(AgentError::Disconnected)));
    assert!(agent.wait_exit(T).is_some());
    // Clean up the orphaned sleep.
    // SAFETY: plain kill(2).
    unsafe { libc::kill(sleeper, libc::SIGKILL) };
}

#[test]
fn kmsg_and_ready_marker() {
    let agent = Agent::start();
    let client = agent.client();
    client.kmsg("famfs-lab: BEGIN case-1", T).unwrap();
    client.kmsg("<4>explicit level", T).unwrap();
    let kmsg = std::fs::read_to_string(agent.dir.path().join("kmsg")).unwrap();
    let lines: Vec<&str> = kmsg.lines().collect();
    assert_eq!(
        lines,
        [
            "<5>famfs-lab-agent: ready",
            "<5>famfs-lab: BEGIN case-1",
            "<4>explicit level"
        ]
    );
}

#[test]
fn files_both_ways() {
    let agent = Agent::start();
    let client = agent.client();
    let path = agent.dir.path().join("script.sh");
    let path = path.to_str().unwrap();
    let data = b"#!/bin/sh\necho from-script \"$@\"\n";
    client.write_file(path, data, Some(0o755), T).unwrap();
    let r = client.exec(ExecRequest::new([path, "a"]), T).unwrap();
    assert_eq!(r.stdout, "from-script a\n");
    assert_eq!(client.read_file(path, 1024, T).unwrap(), data);

    let bin: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let bpath = agent.dir.path().join("bin");
    let bpath = bpath.to_str().unwrap();
    client.write_file(bpath, &bin, None, T).unwrap();
    assert_eq!(client.read_file(bpath, 100_000, T).unwrap(), bin);
    assert!(matches!(
        client.read_file(bpath, 99_999, T),
        Err(AgentError::Remote(_))
    ));
    assert!(matches!(
        client.read_file("/no/such/file", 10, T),
        Err(AgentError::Remote(_))
    ));
}

#[test]
fn poweroff_outside_pid1_just_exits() {
    let mut agent = Agent::start();
    let client = agent.client();
    client.poweroff(T).unwrap();
    let status = agent.wait_exit(T).expect("agent did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn reconnect_gets_a_fresh_session() {
    let agent = Agent::start();
    {
        let client = agent.client();
        client.hello(T).unwrap();
    }
    let client = agent.client();
    assert!(client
        .exec(ExecRequest::new(["true"]), T)
        .unwrap()
        .success());
}

#[test]
fn port_mode_connects_to_existing_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("host.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let mut child = Command::new(AGENT)
        .args(["--no-init", "--port"])
        .arg(&sock)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (stream, _) = listener.accept().unwrap();
    let client = AgentClient::from_stream(stream, ClientOptions::default()).unwrap();
    client.wait_ready(T).unwrap();
    let r = client.exec(sh("echo via-port", T), T).unwrap();
    assert_eq!(r.stdout, "via-port\n");
    drop(client); // EOF: the agent's session ends and it exits
    let deadline = Instant::now() + T;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("agent did not exit after EOF");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
}

/// As real PID 1 of a fresh PID namespace (`--no-init`: no mounts): orphans
/// are reaped and `Poweroff` takes the `reboot(RB_POWER_OFF)` path, which in
/// a non-initial PID namespace just ends the namespace. Skipped where
/// `unshare` is not permitted (needs root / CAP_SYS_ADMIN).
#[test]
fn as_pid1_in_a_pid_namespace() {
    let unshare = ["--pid", "--fork", "--mount", "--mount-proc", "--kill-child"];
    let usable = Command::new("unshare")
        .args(unshare)
        .arg("true")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !usable {
        println!(
            "SKIP: as_pid1_in_a_pid_namespace: unshare --pid --mount is refused here (needs CAP_SYS_ADMIN)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("agent.sock");
    let mut ns = Command::new("unshare")
        .args(unshare)
        .arg(AGENT)
        .args(["--no-init", "--listen"])
        .arg(&sock)
        .arg("--kmsg")
        .arg(dir.path().join("kmsg"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let client = AgentClient::connect(&sock, Instant::now() + T).unwrap();
    client.wait_ready(T).unwrap();
    let r = client
        .exec(
            sh(
                "for i in 1 2 3 4 5 6 7 8; do sleep 0.2 >/dev/null 2>&1 & done; cat /proc/1/comm",
                T,
            ),
            T,
        )
        .unwrap();
    assert_eq!(r.stdout, "famfs-lab-agent\n");
    std::thread::sleep(Duration::from_millis(1500));
    let r = client
        .exec(
            sh(
                "for p in /proc/[0-9]*; do cat $p/stat; echo; done 2>/dev/null",
                T,
            ),
            T,
        )
        .unwrap();
    assert!(!r.stdout.contains(") Z "), "zombies left:\n{}", r.stdout);
    assert!(!r.stdout.contains("(sleep)"), "orphans left:\n{}", r.stdout);
    client.poweroff(T).unwrap();
    let deadline = Instant::now() + T;
    while ns.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = ns.kill();
            panic!("namespace did not end after poweroff");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A case's host call goes through the agent to the host client and the host's reply back
/// to the case, by call number; a call while the host does not answer it is not lost.
#[test]
fn host_call_reaches_the_host_and_its_reply_the_case() {
    use lab_agent_proto::{HostCall, HostReply};
    let agent = Agent::start();
    let client = agent.client();
    let call = HostCall::InjectPoison {
        device: "mem0".into(),
        dpa: 0x2000,
        length: 64,
    };
    let path = agent.dir.path().join("host-call.sock");
    let case = {
        let call = call.clone();
        std::thread::spawn(move || {
            let mut s = UnixStream::connect(path).unwrap();
            s.set_read_timeout(Some(T)).unwrap();
            s.write_all(&lab_agent_proto::encode_line(&call).unwrap())
                .unwrap();
            LineReader::new(s).read_message::<HostReply>().unwrap()
        })
    };
    let (n, got) = client.next_host_call(T).expect("a host call");
    assert_eq!(got, call);
    let reply = HostReply::Done {
        note: "injected".into(),
        names: vec![],
        data_b64: None,
    };
    client.reply_host_call(n, reply.clone(), T).unwrap();
    assert_eq!(case.join().unwrap(), reply);
    // A reply to a call nobody waits for is an error, not a hang.
    assert!(client.reply_host_call(n + 100, reply, T).is_err());
}
