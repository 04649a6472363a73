//! Synchronous host-side client for the guest agent.
//!
//! One background thread reads responses and hands each to the caller
//! waiting on its id, so calls from several threads run concurrently (a slow
//! `exec` never blocks a `hello`). When the connection drops (QEMU exited),
//! every waiter gets [`AgentError::Disconnected`] at once.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::codec::{encode_line, CodecError, LineReader};
use crate::host_call::{HostCall, HostReply};
use crate::messages::{
    b64_decode, b64_encode, ExecRequest, ExecResult, HelloInfo, Request, RequestBody, Response,
    ResponseBody, MAX_FILE_LEN, UNSOLICITED_ID,
};

/// How often waits re-check the cancel flag / liveness callback.
const POLL_SLICE: Duration = Duration::from_millis(50);
/// Retry interval of [`AgentClient::connect`].
const CONNECT_RETRY: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// No answer within the caller's timeout.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout { what: String, after: Duration },
    /// The connection is gone (EOF/error on the socket, or the liveness
    /// callback reported the peer dead).
    #[error("agent connection lost")]
    Disconnected,
    /// The cancel flag was raised while waiting for `what`.
    #[error("cancelled while waiting for {what}")]
    Cancelled { what: String },
    /// Unexpected/undecodable message, or a request that cannot be sent.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The agent answered with an `Error` response.
    #[error("agent error: {0}")]
    Remote(String),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Optional hooks that let the host abort waits early (e.g. QEMU exited).
#[derive(Clone, Default)]
pub struct ClientOptions {
    /// When set to `true`, pending and future waits return
    /// [`AgentError::Cancelled`].
    pub cancel: Option<Arc<AtomicBool>>,
    /// Polled while waiting; returning `false` makes waits return
    /// [`AgentError::Disconnected`].
    pub alive: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("cancel", &self.cancel)
            .field("alive", &self.alive.as_ref().map(|_| "Fn"))
            .finish()
    }
}

impl ClientOptions {
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    pub fn with_alive(mut self, alive: impl Fn() -> bool + Send + Sync + 'static) -> Self {
        self.alive = Some(Arc::new(alive));
        self
    }

    fn check(&self, what: &str) -> Result<(), AgentError> {
        if let Some(flag) = &self.cancel {
            if flag.load(Ordering::SeqCst) {
                return Err(AgentError::Cancelled {
                    what: what.to_string(),
                });
            }
        }
        if let Some(alive) = &self.alive {
            if !alive() {
                return Err(AgentError::Disconnected);
            }
        }
        Ok(())
    }

    fn has_hooks(&self) -> bool {
        self.cancel.is_some() || self.alive.is_some()
    }
}

#[derive(Default)]
struct State {
    connected: bool,
    pending: HashMap<u64, mpsc::Sender<ResponseBody>>,
    /// `agent_version` from the unsolicited `Ready`.
    ready: Option<String>,
    /// Responses whose id nobody waited for (stale or late).
    stray: u64,
    /// Last undecodable line / unsolicited error.
    last_error: Option<String>,
    /// Host calls from the guest's cases not taken yet ([`AgentClient::next_host_call`]).
    host_calls: std::collections::VecDeque<(u64, HostCall)>,
}

struct Shared {
    state: Mutex<State>,
    cond: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave State inconsistent in
        // a harmful way; keep going.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Host-side connection to the guest agent.
pub struct AgentClient {
    writer: Mutex<Box<dyn Write + Send>>,
    shared: Arc<Shared>,
    next_id: AtomicU64,
    opts: ClientOptions,
    /// Shut down on drop so the reader thread ends.
    shutdown: Option<UnixStream>,
}

impl fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentClient")
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

impl AgentClient {
    /// Connect to the host end of the agent port (QEMU's chardev socket),
    /// retrying until the socket exists and accepts or `deadline` passes.
    pub fn connect(path: impl AsRef<Path>, deadline: Instant) -> Result<Self, AgentError> {
        Self::connect_with(path, deadline, ClientOptions::default())
    }

    pub fn connect_with(
        path: impl AsRef<Path>,
        deadline: Instant,
        opts: ClientOptions,
    ) -> Result<Self, AgentError> {
        let path = path.as_ref();
        let what = format!("agent socket {}", path.display());
        let start = Instant::now();
        loop {
            opts.check(&what)?;
            match UnixStream::connect(path) {
                Ok(stream) => return Ok(Self::from_stream(stream, opts)?),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused
                    ) =>
                {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(AgentError::Timeout {
                            what,
                            after: now - start,
                        });
                    }
                    std::thread::sleep(CONNECT_RETRY.min(deadline - now));
                }
                Err(e) => return Err(AgentError::Io(e)),
            }
        }
    }

    /// Use an already connected stream.
    pub fn from_stream(stream: UnixStream, opts: ClientOptions) -> io::Result<Self> {
        let reader = stream.try_clone()?;
        let shutdown = stream.try_clone()?;
        let mut client = Self::from_parts(reader, stream, opts)?;
        client.shutdown = Some(shutdown);
        Ok(client)
    }

    /// Generic constructor over a read half and a write half. The reader
    /// thread runs until `reader` reports EOF or an error.
    ///
    /// Sends an empty line first: the agent skips blank lines, and it ends
    /// any partial line an earlier (dead) host left in the guest's buffer,
    /// which would otherwise swallow our first request.
    pub fn from_parts<R, W>(reader: R, mut writer: W, opts: ClientOptions) -> io::Result<Self>
    where
        R: Read + Send + 'static,
        W: Write + Send + 'static,
    {
        writer.write_all(b"\n")?;
        writer.flush()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                connected: true,
                ..State::default()
            }),
            cond: Condvar::new(),
        });
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("agent-client-rx".into())
            .spawn(move || reader_loop(reader, &thread_shared))?;
        // Random id base: a stale response from an earlier connection can
        // hardly collide with one of ours.
        let base = (random_u64() & ((1 << 52) - 1)) + 1;
        Ok(AgentClient {
            writer: Mutex::new(Box::new(writer)),
            shared,
            next_id: AtomicU64::new(base),
            opts,
            shutdown: None,
        })
    }

    /// False once the connection has dropped.
    pub fn is_connected(&self) -> bool {
        self.shared.lock().connected
    }

    /// Number of responses that matched no pending request.
    pub fn stray_responses(&self) -> u64 {
        self.shared.lock().stray
    }

    /// Last undecodable line or unsolicited `Error` from the agent.
    pub fn last_protocol_error(&self) -> Option<String> {
        self.shared.lock().last_error.clone()
    }

    /// Wait for the unsolicited `Ready` line; returns the agent version.
    /// `Ready` is sent once per port open, so after reconnecting to a running
    /// agent use [`AgentClient::hello`] instead.
    pub fn wait_ready(&self, timeout: Duration) -> Result<String, AgentError> {
        let what = "agent ready";
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        let mut state = self.shared.lock();
        loop {
            if let Some(version) = &state.ready {
                return Ok(version.clone());
            }
            if !state.connected {
                return Err(AgentError::Disconnected);
            }
            self.opts.check(what)?;
            let now = Instant::now();
            let mut wait = POLL_SLICE;
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return Err(AgentError::Timeout {
                        what: what.into(),
                        after: now - start,
                    });
                }
                wait = wait.min(deadline - now);
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, wait)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Round trip with a fresh random nonce.
    pub fn hello(&self, timeout: Duration) -> Result<HelloInfo, AgentError> {
        let nonce = format!("{:016x}{:016x}", random_u64(), random_u64());
        match self.request(
            RequestBody::Hello {
                nonce: nonce.clone(),
            },
            timeout,
        )? {
            ResponseBody::Hello(info) if info.nonce == nonce => Ok(info),
            ResponseBody::Hello(info) => Err(AgentError::Protocol(format!(
                "hello nonce mismatch: sent {nonce}, got {}",
                info.nonce
            ))),
            other => Err(unexpected("hello", other)),
        }
    }

    /// Run a command. `timeout` bounds the host-side wait and should exceed
    /// `req.timeout_ms` (the guest-side limit) by a margin.
    pub fn exec(&self, req: ExecRequest, timeout: Duration) -> Result<ExecResult, AgentError> {
        match self.request(RequestBody::Exec(req), timeout)? {
            ResponseBody::Exec(result) => Ok(result),
            other => Err(unexpected("exec", other)),
        }
    }

    /// Write one line to the guest's `/dev/kmsg`.
    pub fn kmsg(&self, text: &str, timeout: Duration) -> Result<(), AgentError> {
        self.request_ok(
            RequestBody::Kmsg {
                text: text.to_string(),
            },
            timeout,
        )
    }

    /// Create/truncate `path` in the guest with `data`, then apply `mode`.
    pub fn write_file(
        &self,
        path: &str,
        data: &[u8],
        mode: Option<u32>,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        if data.len() as u64 > MAX_FILE_LEN {
            return Err(AgentError::Protocol(format!(
                "write_file {path}: {} bytes exceeds the {MAX_FILE_LEN} byte limit",
                data.len()
            )));
        }
        self.request_ok(
            RequestBody::WriteFile {
                path: path.to_string(),
                data_b64: b64_encode(data),
                mode,
            },
            timeout,
        )
    }

    /// Read a guest file of at most `max_len` bytes (larger files are an
    /// [`AgentError::Remote`] error).
    pub fn read_file(
        &self,
        path: &str,
        max_len: u64,
        timeout: Duration,
    ) -> Result<Vec<u8>, AgentError> {
        match self.request(
            RequestBody::ReadFile {
                path: path.to_string(),
                max_len,
            },
            timeout,
        )? {
            ResponseBody::File { data_b64 } => b64_decode(&data_b64).map_err(AgentError::Protocol),
            other => Err(unexpected("read_file", other)),
        }
    }

    /// Ask the guest to power off. Losing the connection right after the
    /// request counts as success.
    pub fn poweroff(&self, timeout: Duration) -> Result<(), AgentError> {
        match self.request_ok(RequestBody::Poweroff, timeout) {
            Err(AgentError::Disconnected) => Ok(()),
            other => other,
        }
    }

    /// Send any request and wait for its response body (an `Error` body is
    /// returned as-is, not converted).
    pub fn request(
        &self,
        body: RequestBody,
        timeout: Duration,
    ) -> Result<ResponseBody, AgentError> {
        let what = body.kind();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let line = encode_line(&Request { id, body })
            .map_err(|e| AgentError::Protocol(format!("cannot encode {what} request: {e}")))?;
        let (tx, rx) = mpsc::channel();
        {
            let mut state = self.shared.lock();
            if !state.connected {
                return Err(AgentError::Disconnected);
            }
            state.pending.insert(id, tx);
        }
        let written = {
            let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            w.write_all(&line).and_then(|()| w.flush())
        };
        if let Err(e) = written {
            self.forget(id);
            return Err(match e.kind() {
                io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::NotConnected => AgentError::Disconnected,
                _ => AgentError::Io(e),
            });
        }
        let result = self.wait_response(&rx, what, timeout);
        if result.is_err() {
            self.forget(id);
        }
        result
    }

    /// The next host call a case in the guest made (its call number and request), waiting
    /// up to `timeout`; `None` when none came (or the agent is gone).
    pub fn next_host_call(&self, timeout: Duration) -> Option<(u64, HostCall)> {
        let deadline = Instant::now().checked_add(timeout)?;
        let mut state = self.shared.lock();
        loop {
            if let Some(c) = state.host_calls.pop_front() {
                return Some(c);
            }
            let now = Instant::now();
            if now >= deadline || !state.connected {
                return None;
            }
            state = self
                .shared
                .cond
                .wait_timeout(state, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// Answers host call `call` (see [`AgentClient::next_host_call`]).
    pub fn reply_host_call(
        &self,
        call: u64,
        reply: HostReply,
        timeout: Duration,
    ) -> Result<(), AgentError> {
        self.request_ok(RequestBody::HostReply { call, reply }, timeout)
    }

    fn request_ok(&self, body: RequestBody, timeout: Duration) -> Result<(), AgentError> {
        let what = body.kind();
        match self.request(body, timeout)? {
            ResponseBody::Ok => Ok(()),
            other => Err(unexpected(what, other)),
        }
    }

    fn forget(&self, id: u64) {
        self.shared.lock().pending.remove(&id);
    }

    fn wait_response(
        &self,
        rx: &mpsc::Receiver<ResponseBody>,
        what: &str,
        timeout: Duration,
    ) -> Result<ResponseBody, AgentError> {
        let start = Instant::now();
        let deadline = start.checked_add(timeout);
        loop {
            let now = Instant::now();
            let mut wait = if self.opts.has_hooks() {
                POLL_SLICE
            } else {
                Duration::from_secs(3600)
            };
            if let Some(deadline) = deadline {
                if now >= deadline {
                    return Err(AgentError::Timeout {
                        what: format!("{what} response"),
                        after: now - start,
                    });
                }
                wait = wait.min(deadline - now);
            }
            match rx.recv_timeout(wait) {
                Ok(body) => return Ok(body),
                Err(RecvTimeoutError::Disconnected) => return Err(AgentError::Disconnected),
                Err(RecvTimeoutError::Timeout) => self.opts.check(what)?,
            }
        }
    }
}

impl Drop for AgentClient {
    fn drop(&mut self) {
        if let Some(stream) = &self.shutdown {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

fn unexpected(what: &str, body: ResponseBody) -> AgentError {
    match body {
        ResponseBody::Error { message } => AgentError::Remote(message),
        other => AgentError::Protocol(format!(
            "unexpected {} response to {what} request",
            other.kind()
        )),
    }
}

fn reader_loop<R: Read>(reader: R, shared: &Shared) {
    let mut lines = LineReader::new(reader);
    loop {
        match lines.read_message::<Response>() {
            Ok(resp) => dispatch(shared, resp),
            Err(e) if e.is_recoverable() => shared.lock().last_error = Some(e.to_string()),
            Err(CodecError::Eof) => break,
            Err(e) => {
                shared.lock().last_error = Some(e.to_string());
                break;
            }
        }
    }
    let mut state = shared.lock();
    state.connected = false;
    // Dropping the senders wakes every waiter with Disconnected.
    state.pending.clear();
    shared.cond.notify_all();
}

fn dispatch(shared: &Shared, resp: Response) {
    let mut state = shared.lock();
    if resp.id == UNSOLICITED_ID {
        match resp.body {
            ResponseBody::Ready { agent_version } => {
                state.ready = Some(agent_version);
                shared.cond.notify_all();
            }
            ResponseBody::Error { message } => state.last_error = Some(message),
            ResponseBody::HostCall { call, request } => {
                state.host_calls.push_back((call, request));
                shared.cond.notify_all();
            }
            other => state.last_error = Some(format!("unsolicited {} message", other.kind())),
        }
        return;
    }
    match state.pending.remove(&resp.id) {
        // The waiter may have timed out in the meantime; ignore send errors.
        Some(tx) => {
            let _ = tx.send(resp.body);
        }
        None => state.stray += 1,
    }
}

/// Non-cryptographic randomness from std's randomly keyed hasher.
fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u128(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::write_message;
    use crate::messages::ExitStatus;

    /// A fake agent on the other end of a socket pair.
    fn pair() -> (AgentClient, UnixStream) {
        let (a, b) = UnixStream::pair().unwrap();
        (
            AgentClient::from_stream(a, ClientOptions::default()).unwrap(),
            b,
        )
    }

    #[test]
    fn host_calls_are_queued_and_answered_by_call_number() {
        let (client, peer) = pair();
        let mut out = peer.try_clone().unwrap();
        assert_eq!(client.next_host_call(Duration::from_millis(20)), None);
        let call = HostCall::InjectPoison {
            device: "mem0".into(),
            dpa: 8192,
            length: 64,
        };
        write_message(
            &mut out,
            &Response {
                id: UNSOLICITED_ID,
                body: ResponseBody::HostCall {
                    call: 5,
                    request: call.clone(),
                },
            },
        )
        .unwrap();
        assert_eq!(
            client.next_host_call(Duration::from_secs(5)),
            Some((5, call))
        );
        let fake = std::thread::spawn(move || {
            let mut lines = LineReader::new(peer.try_clone().unwrap());
            let req: Request = lines.read_message().unwrap();
            let RequestBody::HostReply { call, reply } = req.body else {
                panic!("expected host_reply");
            };
            write_message(
                &mut out,
                &Response {
                    id: req.id,
                    body: ResponseBody::Ok,
                },
            )
            .unwrap();
            (call, reply)
        });
        let reply = HostReply::Failed {
            message: "no".into(),
        };
        client
            .reply_host_call(5, reply.clone(), Duration::from_secs(5))
            .unwrap();
        assert_eq!(fake.join().unwrap(), (5, reply));
    }

    #[test]
    fn ready_and_responses_by_id() {
        let (client, peer) = pair();
        let mut out = peer.try_clone().unwrap();
        write_message(
            &mut out,
            &Response {
                id: 0,
                body: ResponseBody::Ready {
                    agent_version: "9.9".into(),
                },
            },
        )
        .unwrap();
        assert_eq!(client.wait_ready(Duration::from_secs(5)).unwrap(), "9.9");

        let fake = std::thread::spawn(move || {
            let mut lines = LineReader::new(peer.try_clone().unwrap());
            let req: Request = lines.read_message().unwrap();
            // Stale response first; must be ignored.
            write_message(
                &mut out,
                &Response {
                    id: req.id.wrapping_add(1000),
                    body: ResponseBody::Ok,
                },
            )
            .unwrap();
            let RequestBody::Exec(exec) = req.body else {
                panic!("expected exec");
            };
            assert_eq!(exec.argv, ["true"]);
            write_message(
                &mut out,
                &Response {
                    id: req.id,
                    body: ResponseBody::Exec(ExecResult {
                        status: ExitStatus::Exited(0),
                        stdout: "o".into(),
                        stderr: String::new(),
                        duration_ms: 1,
                        truncated: false,
                    }),
                },
            )
            .unwrap();
            peer
        });
        let r = client
            .exec(ExecRequest::new(["true"]), Duration::from_secs(5))
            .unwrap();
        assert!(r.success());
        assert_eq!(r.stdout, "o");
        let _peer = fake.join().unwrap();
        assert_eq!(client.stray_responses(), 1);
    }

    #[test]
    fn timeout_then_disconnect() {
        let (client, peer) = pair();
        let t0 = Instant::now();
        let err = client.hello(Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, AgentError::Timeout { .. }), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(2));

        let client = Arc::new(client);
        let c2 = Arc::clone(&client);
        let waiter = std::thread::spawn(move || c2.hello(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(100));
        let t1 = Instant::now();
        drop(peer);
        let err = waiter.join().unwrap().unwrap_err();
        assert!(matches!(err, AgentError::Disconnected), "{err}");
        assert!(t1.elapsed() < Duration::from_secs(2));
        assert!(!client.is_connected());
        assert!(matches!(
            client.hello(Duration::from_secs(1)),
            Err(AgentError::Disconnected)
        ));
        assert!(matches!(
            client.wait_ready(Duration::from_secs(1)),
            Err(AgentError::Disconnected)
        ));
    }

    #[test]
    fn cancel_flag_and_alive_check() {
        let (a, _peer) = UnixStream::pair().unwrap();
        let flag = Arc::new(AtomicBool::new(false));
        let client =
            AgentClient::from_stream(a, ClientOptions::default().with_cancel(flag.clone()))
                .unwrap();
        let f2 = flag.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            f2.store(true, Ordering::SeqCst);
        });
        let err = client.hello(Duration::from_secs(30)).unwrap_err();
        assert!(matches!(err, AgentError::Cancelled { .. }), "{err}");

        let (b, _peer2) = UnixStream::pair().unwrap();
        let client =
            AgentClient::from_stream(b, ClientOptions::default().with_alive(|| false)).unwrap();
        let t0 = Instant::now();
        let err = client.wait_ready(Duration::from_secs(30)).unwrap_err();
        assert!(matches!(err, AgentError::Disconnected), "{err}");
        assert!(t0.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn connect_retries_until_socket_exists_or_deadline() {
        let dir = std::env::temp_dir().join(format!("agent-proto-test-{}", random_u64()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("s.sock");
        let err =
            AgentClient::connect(&path, Instant::now() + Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, AgentError::Timeout { .. }), "{err}");

        let p2 = path.clone();
        let server = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            let listener = std::os::unix::net::UnixListener::bind(&p2).unwrap();
            listener.accept().unwrap().0
        });
        let client = AgentClient::connect(&path, Instant::now() + Duration::from_secs(10)).unwrap();
        let _conn = server.join().unwrap();
        assert!(client.is_connected());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn remote_error_is_mapped() {
        let (client, peer) = pair();
        std::thread::spawn(move || {
            let mut out = peer.try_clone().unwrap();
            let mut lines = LineReader::new(peer);
            let req: Request = lines.read_message().unwrap();
            write_message(
                &mut out,
                &Response {
                    id: req.id,
                    body: ResponseBody::Error {
                        message: "no such file".into(),
                    },
                },
            )
            .unwrap();
            // Keep the connection open until the client is done.
            let _ = lines.read_line();
        });
        let err = client
            .read_file("/nope", 10, Duration::from_secs(5))
            .unwrap_err();
        assert!(
            matches!(err, AgentError::Remote(ref m) if m == "no such file"),
            "{err}"
        );
    }
}
