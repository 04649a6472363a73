//! Wire protocol between the famfs-lab host and the in-guest agent
//! (`famfs-lab-agent`), plus a synchronous host-side client.
//!
//! Transport: a virtio-serial port named [`AGENT_PORT_NAME`] whose host side
//! is a Unix socket. Framing: one JSON object per `\n`-terminated line, both
//! ways (see [`codec`]). The host sends [`Request`]s, the guest answers with
//! [`Response`]s carrying the same `id`. The guest also sends one unsolicited
//! `Response { id: 0, body: Ready { .. } }` as soon as it has opened the port.

pub mod client;
pub mod codec;
pub mod host_call;
pub mod messages;

pub use client::{AgentClient, AgentError, ClientOptions};
pub use codec::{encode_line, write_message, CodecError, LineReader};
pub use host_call::{HostCall, HostReply, HOST_CALL_SOCKET};
pub use messages::*;

/// The line the agent writes to kmsg as PID 1 as soon as /dev is mounted: where the kernel's
/// boot ends for `lab bench boot`.
pub const INIT_STARTED_MARKER: &str = "famfs-lab-agent: PID 1";

/// The console log level the agent sets as PID 1 once it runs: info and above, the kernel's
/// default. The lab boots with `loglevel=6` (lab-vm's `BASE_KERNEL_CMDLINE`), which keeps the
/// boot's info lines off the slow emulated UART; from the agent on, what the kernel says during
/// setup and the cases is all on the serial log again.
pub const CONSOLE_LOGLEVEL_AFTER_BOOT: u8 = 7;

/// QEMU arguments that expose the agent port, with its host end a Unix
/// socket at `socket_path` that QEMU listens on (connect with
/// [`AgentClient::connect`]). Uses ids `famfs-agent-vser` (virtio-serial
/// bus) and `famfs-agent` (chardev).
pub fn qemu_port_args(socket_path: &str) -> Vec<String> {
    vec![
        "-device".into(),
        "virtio-serial-pci,id=famfs-agent-vser".into(),
        "-chardev".into(),
        format!("socket,id=famfs-agent,path={socket_path},server=on,wait=off"),
        "-device".into(),
        format!("virtserialport,bus=famfs-agent-vser.0,chardev=famfs-agent,name={AGENT_PORT_NAME}"),
    ]
}
