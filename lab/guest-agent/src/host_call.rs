//! A case's calls to the host ([`lab_agent_proto::host_call`]): the agent listens on a Unix
//! socket, forwards each call to the host over the current session as an unsolicited
//! `HostCall` and writes the host's `HostReply` back to the case.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lab_agent_proto::{encode_line, HostCall, HostReply, LineReader, ResponseBody, UNSOLICITED_ID};

use crate::log;
use crate::server::Outgoing;

/// The longest a case waits for the host's answer (a device_del waits for the guest's
/// hot-unplug, which takes pciehp's 5 s and more under TCG).
const CALL_TIMEOUT: Duration = Duration::from_secs(180);

#[derive(Default)]
struct Hub {
    /// Where the current session's messages go (None before the host connected).
    outlet: Option<Sender<Outgoing>>,
    /// Calls waiting for the host's answer.
    pending: HashMap<u64, Sender<HostReply>>,
    next: u64,
}

static HUB: Mutex<Option<Hub>> = Mutex::new(None);

fn hub() -> MutexGuard<'static, Option<Hub>> {
    HUB.lock().unwrap_or_else(|e| e.into_inner())
}

/// The session now serving the host: later calls go there.
pub(crate) fn set_outlet(tx: Sender<Outgoing>) {
    hub().get_or_insert_with(Hub::default).outlet = Some(tx);
}

/// The host answered call `call`: hand it to the case waiting for it.
pub(crate) fn deliver(call: u64, reply: HostReply) -> Result<(), String> {
    let tx = hub()
        .as_mut()
        .and_then(|h| h.pending.remove(&call))
        .ok_or_else(|| format!("no case waits for host call {call}"))?;
    tx.send(reply)
        .map_err(|_| format!("the case of host call {call} stopped waiting"))
}

/// Listens on `path` in a thread of its own; each connection is served in its own thread.
pub fn listen(path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    std::thread::Builder::new()
        .name("host-calls".into())
        .spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(s) => {
                        let spawned = std::thread::Builder::new()
                            .name("host-call".into())
                            .spawn(move || serve(s));
                        if let Err(e) = spawned {
                            log(&format!("cannot start host call thread: {e}"));
                        }
                    }
                    Err(e) => log(&format!("host call accept: {e}")),
                }
            }
        })?;
    Ok(())
}

fn serve(mut stream: UnixStream) {
    let reply = match stream.try_clone().map_err(|e| e.to_string()).and_then(|r| {
        LineReader::new(r)
            .read_message::<HostCall>()
            .map_err(|e| format!("reading the host call: {e}"))
    }) {
        Ok(call) => forward(call),
        Err(message) => HostReply::Failed { message },
    };
    match encode_line(&reply) {
        Ok(line) => {
            let _ = stream.write_all(&line);
        }
        Err(e) => log(&format!("encoding a host reply: {e}")),
    }
}

fn forward(request: HostCall) -> HostReply {
    let (tx, rx) = mpsc::channel();
    let call = {
        let mut guard = hub();
        let h = guard.get_or_insert_with(Hub::default);
        h.next += 1;
        let call = h.next;
        let Some(outlet) = h.outlet.clone() else {
            return HostReply::Failed {
                message: "the host is not connected to the agent".into(),
            };
        };
        h.pending.insert(call, tx);
        let msg = Outgoing::Message(lab_agent_proto::Response {
            id: UNSOLICITED_ID,
            body: ResponseBody::HostCall { call, request },
        });
        if outlet.send(msg).is_err() {
            h.pending.remove(&call);
            return HostReply::Failed {
                message: "the host's session with the agent ended".into(),
            };
        }
        call
    };
    match rx.recv_timeout(CALL_TIMEOUT) {
        Ok(reply) => reply,
        Err(_) => {
            if let Some(h) = hub().as_mut() {
                h.pending.remove(&call);
            }
            HostReply::Failed {
                message: format!("no answer from the host within {CALL_TIMEOUT:?} (call {call})"),
            }
        }
    }
}
