//! A case's calls to the host mid-run (`lab_agent_proto::host_call`): faults injected through
//! QMP, bytes of the backing files. The agent forwards them; the lab's runner answers.

use anyhow::{bail, Context, Result};
use lab_agent_proto::{b64_decode, encode_line, HostCall, HostReply, LineReader, HOST_CALL_SOCKET};
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// Longer than the agent's own wait for the host, so the agent's answer comes first.
const READ_TIMEOUT: Duration = Duration::from_secs(200);

/// Sends `call` to the host and returns its reply.
pub fn call(call: &HostCall) -> Result<HostReply> {
    let mut s = UnixStream::connect(HOST_CALL_SOCKET)
        .with_context(|| format!("connecting to the agent's host calls ({HOST_CALL_SOCKET})"))?;
    s.set_read_timeout(Some(READ_TIMEOUT))?;
    s.write_all(&encode_line(call)?)
        .context("sending the host call")?;
    LineReader::new(s)
        .read_message::<HostReply>()
        .with_context(|| format!("reading the host's reply to {call:?}"))
}

/// Sends `c` and wants it done: the host's note, or an error with QEMU's text (or naming the
/// command the running QEMU lacks).
pub fn done(c: &HostCall) -> Result<String> {
    match call(c)? {
        HostReply::Done { note, .. } => Ok(note),
        HostReply::Unsupported { command, qemu } => {
            bail!("QEMU {qemu} has no QMP command {command} (query-commands)")
        }
        HostReply::Failed { message } => bail!("the host could not do {c:?}: {message}"),
    }
}

/// `len` bytes of topology device `device`'s backing file at `offset`, as the host reads them.
pub fn backing(device: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
    match call(&HostCall::ReadBacking {
        device: device.into(),
        offset,
        len,
    })? {
        HostReply::Done {
            data_b64: Some(d), ..
        } => b64_decode(&d).map_err(anyhow::Error::msg),
        other => bail!("reading {device}'s backing file at {offset:#x}: {other:?}"),
    }
}
