//! Serving one connection: read request lines, answer by id.
//!
//! One writer thread owns the output side; every request except `Hello` and
//! `Poweroff` is handled in its own thread, so a slow command never delays
//! other answers. Bad input yields an `Error` response and never ends the
//! session.

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use lab_agent_proto::{
    b64_decode, b64_encode, encode_line, CodecError, HelloInfo, LineReader, Request, RequestBody,
    Response, ResponseBody, MAX_FILE_LEN, UNSOLICITED_ID,
};

use crate::{exec, log, reaper::reaper, AGENT_VERSION};

/// Longest text written per `/dev/kmsg` record (the kernel limit is 1024).
const KMSG_MAX: usize = 960;

/// Per-process settings shared by all connections.
#[derive(Debug, Clone)]
pub struct Context {
    /// Where `Kmsg` requests write (normally `/dev/kmsg`).
    pub kmsg_path: PathBuf,
    /// Running as PID 1: `Poweroff` powers the machine off. Otherwise the
    /// agent process just exits.
    pub pid1: bool,
    /// Log each request to stderr (the console).
    pub verbose: bool,
}

pub(crate) enum Outgoing {
    Message(Response),
    /// Acknowledged once everything queued before it has been written.
    Flush(Sender<()>),
}

#[derive(Clone)]
struct Replier {
    tx: Sender<Outgoing>,
}

impl Replier {
    fn send(&self, id: u64, body: ResponseBody) {
        // Fails only if the writer is gone (connection lost): nothing to do.
        let _ = self.tx.send(Outgoing::Message(Response { id, body }));
    }

    fn error(&self, id: u64, message: impl Into<String>) {
        self.send(
            id,
            ResponseBody::Error {
                message: message.into(),
            },
        );
    }

    /// Wait until all previously queued responses were written.
    fn flush(&self, timeout: Duration) {
        let (ack_tx, ack_rx) = mpsc::channel();
        if self.tx.send(Outgoing::Flush(ack_tx)).is_ok() {
            let _ = ack_rx.recv_timeout(timeout);
        }
    }
}

/// Serve requests from `reader` until it reports EOF or a fatal error. Sends
/// the unsolicited `Ready` first.
pub fn serve<R, W>(reader: R, writer: W, ctx: &Context)
where
    R: Read,
    W: Write + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    crate::host_call::set_outlet(tx.clone());
    let replier = Replier { tx };
    if let Err(e) = std::thread::Builder::new()
        .name("writer".into())
        .spawn(move || writer_loop(writer, &rx))
    {
        log(&format!("cannot start writer thread: {e}"));
        return;
    }
    replier.send(
        UNSOLICITED_ID,
        ResponseBody::Ready {
            agent_version: AGENT_VERSION.into(),
        },
    );

    let mut lines = LineReader::new(reader);
    loop {
        let line = match lines.read_line() {
            Ok(line) => line,
            Err(CodecError::Eof) => return,
            Err(e @ CodecError::LineTooLong { .. }) => {
                replier.error(UNSOLICITED_ID, format!("bad request: {e}"));
                continue;
            }
            Err(e) if e.is_recoverable() => continue,
            Err(e) => {
                log(&format!("reading requests: {e}"));
                return;
            }
        };
        match parse_request(&line) {
            Ok(req) => handle(req, &replier, ctx),
            Err((id, message)) => replier.error(id, message),
        }
    }
}

fn writer_loop<W: Write>(mut writer: W, rx: &Receiver<Outgoing>) {
    for out in rx {
        match out {
            Outgoing::Message(resp) => {
                let line = encode_line(&resp).or_else(|e| {
                    encode_line(&Response {
                        id: resp.id,
                        body: ResponseBody::Error {
                            message: format!("cannot encode {} response: {e}", resp.body.kind()),
                        },
                    })
                });
                let Ok(line) = line else { continue };
                if let Err(e) = writer.write_all(&line).and_then(|()| writer.flush()) {
                    log(&format!("writing response: {e}"));
                    return;
                }
            }
            Outgoing::Flush(ack) => {
                let _ = ack.send(());
            }
        }
    }
}

/// A request, or the id to report the error under (0 if unknown).
fn parse_request(line: &[u8]) -> Result<Request, (u64, String)> {
    serde_json::from_slice::<Request>(line).map_err(|e| {
        let id = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("id").and_then(serde_json::Value::as_u64))
            .unwrap_or(UNSOLICITED_ID);
        (id, format!("bad request: {e}"))
    })
}

fn handle(req: Request, replier: &Replier, ctx: &Context) {
    let Request { id, body } = req;
    if ctx.verbose {
        log(&format!("request {id}: {}", describe(&body)));
    }
    match body {
        RequestBody::Hello { nonce } => replier.send(id, ResponseBody::Hello(hello(nonce))),
        RequestBody::Poweroff => {
            replier.send(id, ResponseBody::Ok);
            replier.flush(Duration::from_secs(2));
            crate::poweroff(ctx.pid1);
        }
        body => {
            let r = replier.clone();
            let ctx = ctx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("req-{id}"))
                .spawn(move || {
                    let resp = handle_slow(body, &ctx);
                    r.send(id, resp);
                });
            if let Err(e) = spawned {
                replier.error(id, format!("cannot start request thread: {e}"));
            }
        }
    }
}

fn handle_slow(body: RequestBody, ctx: &Context) -> ResponseBody {
    let result = match body {
        RequestBody::Exec(req) => return ResponseBody::Exec(exec::run(reaper(), &req)),
        RequestBody::Kmsg { text } => write_kmsg(&ctx.kmsg_path, &text).map(|()| ResponseBody::Ok),
        RequestBody::WriteFile {
            path,
            data_b64,
            mode,
        } => write_file(&path, &data_b64, mode).map(|()| ResponseBody::Ok),
        RequestBody::ReadFile { path, max_len } => {
            read_file(&path, max_len).map(|data| ResponseBody::File {
                data_b64: b64_encode(&data),
            })
        }
        RequestBody::HostReply { call, reply } => {
            crate::host_call::deliver(call, reply).map(|()| ResponseBody::Ok)
        }
        RequestBody::Hello { .. } | RequestBody::Poweroff => {
            Err("internal error: request routed wrongly".to_string())
        }
    };
    result.unwrap_or_else(|message| ResponseBody::Error { message })
}

fn describe(body: &RequestBody) -> String {
    match body {
        RequestBody::Exec(req) => format!("exec {:?}", req.argv),
        RequestBody::WriteFile { path, .. } | RequestBody::ReadFile { path, .. } => {
            format!("{} {path}", body.kind())
        }
        other => other.kind().to_string(),
    }
}

pub fn hello(nonce: String) -> HelloInfo {
    let kernel_release = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let uptime_ms = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| parse_uptime_ms(&s))
        .unwrap_or(0);
    HelloInfo {
        nonce,
        agent_version: AGENT_VERSION.into(),
        kernel_release,
        uptime_ms,
    }
}

fn parse_uptime_ms(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then_some((secs * 1000.0) as u64)
}

/// Write `text` to kmsg, one record per line. Lines without an explicit
/// `<N>` level get `<5>` (notice).
pub fn write_kmsg(path: &Path, text: &str) -> Result<(), String> {
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    let lines: Vec<&str> = if text.is_empty() {
        vec![""]
    } else {
        text.lines().collect()
    };
    for line in lines {
        let line = truncate_utf8(line, KMSG_MAX);
        let record = if line.starts_with('<') {
            format!("{line}\n")
        } else {
            format!("<5>{line}\n")
        };
        // One write() per record: /dev/kmsg treats each write as a message.
        file.write_all(record.as_bytes())
            .map_err(|e| format!("write {}: {e}", path.display()))?;
    }
    Ok(())
}

fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn write_file(path: &str, data_b64: &str, mode: Option<u32>) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let data = b64_decode(data_b64)?;
    std::fs::write(path, &data).map_err(|e| format!("write {path}: {e}"))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| format!("chmod {path}: {e}"))?;
    }
    Ok(())
}

fn read_file(path: &str, max_len: u64) -> Result<Vec<u8>, String> {
    let limit = max_len.min(MAX_FILE_LEN);
    let file = std::fs::File::open(path).map_err(|e| format!("open {path}: {e}"))?;
    let mut data = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(|e| format!("read {path}: {e}"))?;
    if data.len() as u64 > limit {
        return Err(format!("{path} is larger than {limit} bytes"));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_request_reports_id_when_possible() {
        assert_eq!(parse_request(b"{oops").unwrap_err().0, 0);
        assert_eq!(
            parse_request(br#"{"id":42,"body":{"type":"bogus"}}"#)
                .unwrap_err()
                .0,
            42
        );
        assert_eq!(parse_request(br#"{"id":-1}"#).unwrap_err().0, 0);
        assert!(parse_request(br#"{"id":1,"body":{"type":"poweroff"}}"#).is_ok());
    }

    #[test]
    fn uptime_parsing() {
        assert_eq!(parse_uptime_ms("123.45 678.90\n"), Some(123_450));
        assert_eq!(parse_uptime_ms(""), None);
        assert_eq!(parse_uptime_ms("x"), None);
        assert_eq!(parse_uptime_ms("-1 2"), None);
    }

    #[test]
    fn kmsg_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("kmsg");
        write_kmsg(&p, "a\nb").unwrap();
        write_kmsg(&p, "<3>err").unwrap();
        write_kmsg(&p, &"é".repeat(1000)).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[..3], ["<5>a", "<5>b", "<3>err"]);
        assert!(lines[3].len() <= KMSG_MAX + 3);
    }

    #[test]
    fn files_roundtrip_and_limits() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let p = p.to_str().unwrap();
        write_file(p, &b64_encode(b"hello"), Some(0o700)).unwrap();
        assert_eq!(read_file(p, 5).unwrap(), b"hello");
        assert!(read_file(p, 4).unwrap_err().contains("larger"));
        assert!(write_file(p, "!!", None).unwrap_err().contains("base64"));
        assert!(read_file("/nonexistent/x", 10).is_err());
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
