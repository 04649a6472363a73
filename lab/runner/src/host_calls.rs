//! The host's side of a case's host calls ([`lab_agent_proto::host_call`]): while the case
//! runs, each call is served with QMP ([`lab_vm::fault_inject`]) or the backing files, and
//! answered through the agent.

use crate::guest::Booted;
use crate::host_bytes::{self, Backings};
use lab_agent_proto::{b64_encode, AgentClient, HostCall, HostReply};
use lab_vm::fault_inject::{self, Fault, Injected};
use std::os::unix::fs::FileExt;
use std::time::Duration;

/// How long one poll for a host call waits before looking at the case again: a case that has
/// ended is seen within this (at 100 ms every case took most of 100 ms longer than its command).
const POLL: Duration = Duration::from_millis(5);
/// Time allowed for a QMP injection (a device_del has its own, from the call).
const QMP_TIMEOUT: Duration = Duration::from_secs(20);

/// Runs `case` (the agent exec of a case) in a thread and serves its host calls until it
/// ends; returns its result. Every call is logged in `log` (the case's diagnostics).
pub(crate) fn serve_during<T: Send>(
    s: &mut Booted,
    agent: &AgentClient,
    backings: &Backings,
    rt: &tokio::runtime::Runtime,
    log: &mut Vec<String>,
    case: impl FnOnce() -> T + Send,
) -> T {
    std::thread::scope(|scope| {
        let running = scope.spawn(case);
        while !running.is_finished() {
            let Some((n, call)) = agent.next_host_call(POLL) else {
                continue;
            };
            let reply = answer(s, backings, rt, &call);
            let said = describe(&call, &reply);
            log.push(format!("host call {n}: {call:?}: {said}"));
            lab_host::progress!("famfs-lab: host call {n}: {said}");
            if let Err(e) = agent.reply_host_call(n, reply, Duration::from_secs(10)) {
                log.push(format!("host call {n}: answering it: {e}"));
            }
        }
        match running.join() {
            Ok(r) => r,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

fn describe(call: &HostCall, reply: &HostReply) -> String {
    let what = call.qmp_command().unwrap_or(match call {
        HostCall::QmpCommands { .. } => "query-commands",
        _ => "read backing file",
    });
    match reply {
        HostReply::Done { note, .. } => format!("{what}: {note}"),
        HostReply::Unsupported { command, qemu } => {
            format!("{what}: QEMU {qemu} has no {command}")
        }
        HostReply::Failed { message } => format!("{what} failed: {message}"),
    }
}

/// The fault a call asks for, if it is one.
pub(crate) fn fault_of(call: &HostCall) -> Option<Fault> {
    Some(match call.clone() {
        HostCall::InjectPoison {
            device,
            dpa,
            length,
        } => Fault::Poison {
            device,
            dpa,
            length,
        },
        HostCall::InjectUncorrectable { device, errors } => Fault::Uncorrectable { device, errors },
        HostCall::InjectCorrectable { device, kind } => Fault::Correctable { device, kind },
        HostCall::InjectGeneralMedia { device, dpa } => Fault::GeneralMedia { device, dpa },
        HostCall::DeviceDel { device, timeout_ms } => Fault::DeviceDel {
            device,
            timeout: Duration::from_millis(timeout_ms),
        },
        HostCall::QmpCommands { .. } | HostCall::ReadBacking { .. } => return None,
    })
}

fn answer(
    s: &mut Booted,
    backings: &Backings,
    rt: &tokio::runtime::Runtime,
    call: &HostCall,
) -> HostReply {
    let failed = |message: String| HostReply::Failed { message };
    match call {
        HostCall::ReadBacking {
            device,
            offset,
            len,
        } => read_backing(backings, device, *offset, *len).map_or_else(
            |e| failed(format!("{e:#}")),
            |data| HostReply::Done {
                note: format!("{len} bytes of {device}'s backing file at {offset:#x}"),
                names: vec![],
                data_b64: Some(b64_encode(&data)),
            },
        ),
        HostCall::QmpCommands { names } => {
            let r = rt.block_on(async {
                let qmp = s.vm.qmp()?;
                fault_inject::qemu_commands(qmp).await
            });
            match r {
                Ok((qemu, have)) => HostReply::Done {
                    note: format!("QEMU {qemu}"),
                    names: names
                        .iter()
                        .filter(|n| have.contains(*n))
                        .cloned()
                        .collect(),
                    data_b64: None,
                },
                Err(e) => failed(e.to_string()),
            }
        }
        call => {
            let Some(fault) = fault_of(call) else {
                return failed(format!("internal error: {call:?} is not a fault"));
            };
            let timeout = match &fault {
                Fault::DeviceDel { timeout, .. } => *timeout + QMP_TIMEOUT,
                _ => QMP_TIMEOUT,
            };
            let r = rt.block_on(async {
                let qmp = s.vm.qmp()?;
                tokio::time::timeout(timeout, fault_inject::inject(qmp, &fault))
                    .await
                    .map_err(|_| lab_vm::Error::Timeout {
                        what: format!("QMP {}", fault.command()),
                        timeout,
                    })?
            });
            match r {
                Ok(Injected::Done(note)) => HostReply::Done {
                    note,
                    names: vec![],
                    data_b64: None,
                },
                Ok(Injected::Unsupported { command, qemu }) => {
                    HostReply::Unsupported { command, qemu }
                }
                Err(e) => failed(e.to_string()),
            }
        }
    }
}

fn read_backing(
    backings: &Backings,
    device: &str,
    offset: u64,
    len: u64,
) -> anyhow::Result<Vec<u8>> {
    anyhow::ensure!(
        len <= lab_agent_proto::host_call::MAX_BACKING_READ,
        "{len} bytes asked, at most {} served",
        lab_agent_proto::host_call::MAX_BACKING_READ
    );
    let f = host_bytes::open(backings, device, false)?;
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset)
        .map_err(|e| anyhow::anyhow!("reading {len} bytes of {device} at {offset:#x}: {e}"))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_become_faults_and_backing_reads_are_bounded() {
        let f = fault_of(&HostCall::DeviceDel {
            device: "mem1".into(),
            timeout_ms: 1500,
        });
        assert_eq!(
            f,
            Some(Fault::DeviceDel {
                device: "mem1".into(),
                timeout: Duration::from_millis(1500)
            })
        );
        assert_eq!(fault_of(&HostCall::QmpCommands { names: vec![] }), None);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("mem0.raw");
        std::fs::write(&p, (0..=255u8).collect::<Vec<_>>()).unwrap();
        let b: Backings = [("mem0".to_string(), p)].into_iter().collect();
        assert_eq!(read_backing(&b, "mem0", 10, 3).unwrap(), vec![10, 11, 12]);
        assert!(read_backing(&b, "mem0", 250, 10).is_err());
        assert!(read_backing(&b, "mem9", 0, 1).is_err());
        assert!(read_backing(&b, "mem0", 0, 2 << 20).is_err());
    }
}
