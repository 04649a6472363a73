//! Message types exchanged between host and guest agent.
//!
//! Every line on the wire is either a [`Request`] (host -> guest) or a
//! [`Response`] (guest -> host). Bodies are internally tagged enums:
//! `{"id":7,"body":{"type":"exec","argv":["true"],...}}`.

use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::host_call::{HostCall, HostReply};

/// Name of the virtio-serial port (`-device virtserialport,name=...`).
pub const AGENT_PORT_NAME: &str = "org.famfs.lab.agent";

/// Maximum length of one protocol line in bytes (excluding the `\n`).
pub const MAX_LINE_LEN: usize = 16 * 1024 * 1024;

/// Cap on each of the captured stdout/stderr streams of an `Exec`.
pub const MAX_OUTPUT_LEN: usize = 1024 * 1024;

/// Largest file the agent transfers with `ReadFile` / `WriteFile`
/// (base64 of this plus framing stays well below [`MAX_LINE_LEN`]).
pub const MAX_FILE_LEN: u64 = 8 * 1024 * 1024;

/// Request id used for unsolicited messages (`Ready`) and for errors about
/// lines whose id could not be determined.
pub const UNSOLICITED_ID: u64 = 0;

/// Host -> guest message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Correlates the response; the host must not use 0.
    pub id: u64,
    pub body: RequestBody,
}

/// What the host asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RequestBody {
    /// Liveness / sync. Answered with [`ResponseBody::Hello`] echoing `nonce`.
    Hello { nonce: String },
    /// Run a command. Answered with [`ResponseBody::Exec`].
    Exec(ExecRequest),
    /// Write one line to `/dev/kmsg` (test-case marker in the console log).
    /// Answered with [`ResponseBody::Ok`].
    Kmsg { text: String },
    /// Create/truncate `path` with the given content. Answered with `Ok`.
    WriteFile {
        path: String,
        data_b64: String,
        /// Permission bits to apply after writing (e.g. `0o755`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
    },
    /// Read `path` (at most `max_len` bytes, else an `Error`). Answered with
    /// [`ResponseBody::File`].
    ReadFile { path: String, max_len: u64 },
    /// Answer `Ok`, sync, power the VM off.
    Poweroff,
    /// The host's answer to the guest's [`ResponseBody::HostCall`] number `call`; the agent
    /// hands it to the case waiting for it. Answered with `Ok` (or `Error` when no case waits
    /// for that call any more).
    HostReply { call: u64, reply: HostReply },
}

/// A command to run in the guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecRequest {
    /// Program and arguments; `argv[0]` is looked up in `PATH`.
    pub argv: Vec<String>,
    /// Variables added to (overriding) the agent's environment.
    #[serde(default)]
    pub env: Vec<(String, String)>,
    /// Working directory (default: the agent's, `/` in the guest).
    #[serde(default)]
    pub cwd: Option<String>,
    /// Data fed to stdin (stdin is `/dev/null` when `None`).
    #[serde(default)]
    pub stdin: Option<String>,
    /// Kill the command's process group after this long; 0 = no limit.
    pub timeout_ms: u64,
}

impl ExecRequest {
    /// Default command timeout used by [`ExecRequest::new`].
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

    pub fn new<I, S>(argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ExecRequest {
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: None,
            stdin: None,
            timeout_ms: duration_ms(Self::DEFAULT_TIMEOUT),
        }
    }

    /// `sh -c SCRIPT`.
    pub fn sh(script: impl Into<String>) -> Self {
        Self::new(["sh".to_string(), "-c".to_string(), script.into()])
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = duration_ms(timeout);
        self
    }

    pub fn env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn cwd(mut self, cwd: impl Into<String>) -> Self {
        self.cwd = Some(cwd.into());
        self
    }

    pub fn stdin(mut self, data: impl Into<String>) -> Self {
        self.stdin = Some(data.into());
        self
    }
}

/// How a command ended. Serialized as `{"kind":"exited","value":3}`,
/// `{"kind":"timed_out"}`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ExitStatus {
    /// Normal exit with this code.
    Exited(i32),
    /// Killed by this signal number.
    Signaled(i32),
    /// Exceeded `timeout_ms`; its process group was SIGKILLed.
    TimedOut,
    /// Could not be started (message includes the OS error).
    SpawnFailed(String),
}

impl ExitStatus {
    /// `Exited(0)`.
    pub fn success(&self) -> bool {
        matches!(self, ExitStatus::Exited(0))
    }
}

/// Result of an `Exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResult {
    pub status: ExitStatus,
    /// Lossy UTF-8, at most [`MAX_OUTPUT_LEN`] bytes of raw output.
    pub stdout: String,
    pub stderr: String,
    /// Wall time from spawn to exit (or to the kill on timeout).
    pub duration_ms: u64,
    /// stdout or stderr was cut at [`MAX_OUTPUT_LEN`].
    pub truncated: bool,
}

impl ExecResult {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// Answer to `Hello`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloInfo {
    pub nonce: String,
    pub agent_version: String,
    /// `uname -r` of the guest kernel.
    pub kernel_release: String,
    /// Guest uptime from `/proc/uptime` (0 if unavailable).
    pub uptime_ms: u64,
}

/// Guest -> host message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    /// Id of the request answered; [`UNSOLICITED_ID`] for `Ready` and for
    /// errors about lines without a usable id.
    pub id: u64,
    pub body: ResponseBody,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseBody {
    /// Unsolicited, sent once the port is open.
    Ready {
        agent_version: String,
    },
    Hello(HelloInfo),
    Exec(ExecResult),
    /// Success without data (`Kmsg`, `WriteFile`, `Poweroff`).
    Ok,
    File {
        data_b64: String,
    },
    /// The request was malformed or failed.
    Error {
        message: String,
    },
    /// Unsolicited (id [`UNSOLICITED_ID`]): a case asks the host for `call`; the host answers
    /// with [`RequestBody::HostReply`] carrying the same `call` number.
    HostCall {
        call: u64,
        request: HostCall,
    },
}

impl ResponseBody {
    /// Short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            ResponseBody::Ready { .. } => "ready",
            ResponseBody::Hello(_) => "hello",
            ResponseBody::Exec(_) => "exec",
            ResponseBody::Ok => "ok",
            ResponseBody::File { .. } => "file",
            ResponseBody::Error { .. } => "error",
            ResponseBody::HostCall { .. } => "host_call",
        }
    }
}

impl RequestBody {
    /// Short name of the variant, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            RequestBody::Hello { .. } => "hello",
            RequestBody::Exec(_) => "exec",
            RequestBody::Kmsg { .. } => "kmsg",
            RequestBody::WriteFile { .. } => "write_file",
            RequestBody::ReadFile { .. } => "read_file",
            RequestBody::Poweroff => "poweroff",
            RequestBody::HostReply { .. } => "host_reply",
        }
    }
}

/// Standard base64 (with padding), as used by `data_b64` fields.
pub fn b64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Inverse of [`b64_encode`]; the error is a human-readable message.
pub fn b64_decode(text: &str) -> Result<Vec<u8>, String> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| format!("invalid base64: {e}"))
}

/// Duration in whole milliseconds, saturating.
pub fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_stable() {
        let req = Request {
            id: 7,
            body: RequestBody::Hello { nonce: "n".into() },
        };
        assert_eq!(
            serde_json::to_string(&req).unwrap(),
            r#"{"id":7,"body":{"type":"hello","nonce":"n"}}"#
        );
        let resp = Response {
            id: 0,
            body: ResponseBody::Ready {
                agent_version: "1".into(),
            },
        };
        assert_eq!(
            serde_json::to_string(&resp).unwrap(),
            r#"{"id":0,"body":{"type":"ready","agent_version":"1"}}"#
        );
        let ok = Response {
            id: 3,
            body: ResponseBody::Ok,
        };
        assert_eq!(
            serde_json::to_string(&ok).unwrap(),
            r#"{"id":3,"body":{"type":"ok"}}"#
        );
        assert_eq!(
            serde_json::to_string(&ExitStatus::Exited(3)).unwrap(),
            r#"{"kind":"exited","value":3}"#
        );
        assert_eq!(
            serde_json::to_string(&ExitStatus::TimedOut).unwrap(),
            r#"{"kind":"timed_out"}"#
        );
    }

    #[test]
    fn exec_request_defaults_optional_fields() {
        let req: Request = serde_json::from_str(
            r#"{"id":1,"body":{"type":"exec","argv":["true"],"timeout_ms":5}}"#,
        )
        .unwrap();
        assert_eq!(
            req.body,
            RequestBody::Exec(ExecRequest::new(["true"]).timeout(Duration::from_millis(5)))
        );
    }

    #[test]
    fn roundtrip_all_bodies() {
        let bodies = vec![
            RequestBody::Hello { nonce: "x".into() },
            RequestBody::Exec(
                ExecRequest::sh("echo hi")
                    .env("A", "b")
                    .cwd("/tmp")
                    .stdin("in"),
            ),
            RequestBody::Kmsg { text: "m".into() },
            RequestBody::WriteFile {
                path: "/p".into(),
                data_b64: b64_encode(b"abc"),
                mode: Some(0o755),
            },
            RequestBody::ReadFile {
                path: "/p".into(),
                max_len: 10,
            },
            RequestBody::Poweroff,
            RequestBody::HostReply {
                call: 3,
                reply: HostReply::Failed {
                    message: "m".into(),
                },
            },
        ];
        for body in bodies {
            let req = Request { id: u64::MAX, body };
            let s = serde_json::to_string(&req).unwrap();
            assert_eq!(serde_json::from_str::<Request>(&s).unwrap(), req);
        }
        let resp_bodies = vec![
            ResponseBody::Hello(HelloInfo {
                nonce: "n".into(),
                agent_version: "v".into(),
                kernel_release: "6.x".into(),
                uptime_ms: 5,
            }),
            ResponseBody::Exec(ExecResult {
                status: ExitStatus::SpawnFailed("nope".into()),
                stdout: "o".into(),
                stderr: "e".into(),
                duration_ms: 1,
                truncated: true,
            }),
            ResponseBody::Exec(ExecResult {
                status: ExitStatus::Signaled(9),
                stdout: String::new(),
                stderr: String::new(),
                duration_ms: 0,
                truncated: false,
            }),
            ResponseBody::File {
                data_b64: b64_encode(&[0, 1, 2, 255]),
            },
            ResponseBody::Error {
                message: "bad".into(),
            },
            ResponseBody::HostCall {
                call: 1,
                request: HostCall::DeviceDel {
                    device: "mem1".into(),
                    timeout_ms: 5,
                },
            },
        ];
        for body in resp_bodies {
            let resp = Response { id: 9, body };
            let s = serde_json::to_string(&resp).unwrap();
            assert_eq!(serde_json::from_str::<Response>(&s).unwrap(), resp);
        }
    }

    #[test]
    fn base64_roundtrip_and_error() {
        let data: Vec<u8> = (0..=255).collect();
        assert_eq!(b64_decode(&b64_encode(&data)).unwrap(), data);
        assert!(b64_decode("not base64!").is_err());
    }
}
