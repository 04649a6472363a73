//! Calls from a case in the guest to the host, mid-run: "inject poison at DPA X of mem0, then
//! tell me".
//!
//! A case connects to the agent's Unix socket [`HOST_CALL_SOCKET`] and writes one
//! [`HostCall`] line; the agent forwards it to the host as an unsolicited
//! [`crate::ResponseBody::HostCall`] with a call number, the host does it (QMP, its backing
//! files) and answers with [`crate::RequestBody::HostReply`], which the agent writes back to
//! the case as one [`HostReply`] line. Devices are named by their topology id (QEMU's device
//! id, `mem0`); addresses are device physical addresses (DPA: for a volatile type-3 device,
//! the offset in its backing file).

use serde::{Deserialize, Serialize};

/// Where the agent listens for a case's host calls.
pub const HOST_CALL_SOCKET: &str = "/run/famfs-lab/host-call.sock";

/// What a case asks the host to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum HostCall {
    /// Which of these QMP commands the running QEMU has (`query-commands`), and its version.
    QmpCommands { names: Vec<String> },
    /// `cxl-inject-poison`: `length` bytes (a multiple of 64) at `dpa` of `device`.
    InjectPoison {
        device: String,
        dpa: u64,
        length: u64,
    },
    /// `cxl-inject-uncorrectable-errors` with one record per QAPI `CxlUncorErrorType` name
    /// (`mem-data-ecc`, ...), the first being the first error.
    InjectUncorrectable { device: String, errors: Vec<String> },
    /// `cxl-inject-correctable-error` of QAPI `CxlCorErrorType` name `kind`.
    InjectCorrectable { device: String, kind: String },
    /// `cxl-inject-general-media-event` in the failure log: an uncorrectable media error at
    /// `dpa` (descriptor: uncorrectable event; type: media ECC error; transaction: host read).
    InjectGeneralMedia { device: String, dpa: u64 },
    /// `device_del` of a type-3 device; waits up to `timeout_ms` for `DEVICE_DELETED` (the
    /// guest has to release it: PCIe native hot-unplug).
    DeviceDel { device: String, timeout_ms: u64 },
    /// `len` bytes of `device`'s backing file at `offset` (at most 1 MiB), read by the host.
    ReadBacking {
        device: String,
        offset: u64,
        len: u64,
    },
}

impl HostCall {
    /// The QMP command this call runs, if any.
    pub fn qmp_command(&self) -> Option<&'static str> {
        match self {
            HostCall::QmpCommands { .. } | HostCall::ReadBacking { .. } => None,
            HostCall::InjectPoison { .. } => Some("cxl-inject-poison"),
            HostCall::InjectUncorrectable { .. } => Some("cxl-inject-uncorrectable-errors"),
            HostCall::InjectCorrectable { .. } => Some("cxl-inject-correctable-error"),
            HostCall::InjectGeneralMedia { .. } => Some("cxl-inject-general-media-event"),
            HostCall::DeviceDel { .. } => Some("device_del"),
        }
    }
}

/// The host's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum HostReply {
    /// Done; `note` says what the host did (the QMP command and arguments, QEMU's version),
    /// `names` the commands found (for `QmpCommands`), `data_b64` bytes (for `ReadBacking`).
    Done {
        note: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        names: Vec<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        data_b64: Option<String>,
    },
    /// The running QEMU has no such command (its schema was asked, not assumed).
    Unsupported { command: String, qemu: String },
    /// The command failed; `message` has QEMU's error text.
    Failed { message: String },
}

/// The longest [`HostCall::ReadBacking`] the host serves.
pub const MAX_BACKING_READ: u64 = 1024 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged_and_round_trips() {
        let c = HostCall::InjectPoison {
            device: "mem0".into(),
            dpa: 4096,
            length: 64,
        };
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"op":"inject_poison","device":"mem0","dpa":4096,"length":64}"#
        );
        assert_eq!(serde_json::from_str::<HostCall>(&s).unwrap(), c);
        assert_eq!(c.qmp_command(), Some("cxl-inject-poison"));
        let r = HostReply::Unsupported {
            command: "cxl-inject-poison".into(),
            qemu: "7.2.0".into(),
        };
        let s = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<HostReply>(&s).unwrap(), r);
        let d: HostReply = serde_json::from_str(r#"{"result":"done","note":"n"}"#).unwrap();
        assert_eq!(
            d,
            HostReply::Done {
                note: "n".into(),
                names: vec![],
                data_b64: None
            }
        );
    }
}
