//! CXL faults injected through QMP (ARCHITECTURE.md, "Fault injection"): poison, uncorrectable
//! and correctable RAS errors, general media events, and hot removal of a type-3 device.
//!
//! Each command is looked up in the running QEMU's `query-commands` first: a QEMU without it
//! (older than the version that added it, or built without CXL) gives
//! [`Injected::Unsupported`] naming the command and the version, never a guess.

use crate::error::{Error, Result};
use crate::qmp::QmpClient;
use qapi::qmp;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A fault on a type-3 device, named by its QEMU device id (the topology's device id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `cxl-inject-poison`: adds `[dpa, dpa + length)` to the device's poison list.
    Poison {
        device: String,
        dpa: u64,
        length: u64,
    },
    /// `cxl-inject-uncorrectable-errors`: sets the RAS capability's uncorrectable status bits
    /// (one record per QAPI `CxlUncorErrorType` name) and signals an uncorrectable internal
    /// error through PCIe AER.
    Uncorrectable { device: String, errors: Vec<String> },
    /// `cxl-inject-correctable-error` of one QAPI `CxlCorErrorType` name.
    Correctable { device: String, kind: String },
    /// `cxl-inject-general-media-event`: a failure-log record, an uncorrectable media ECC error
    /// on a host read at `dpa`.
    GeneralMedia { device: String, dpa: u64 },
    /// `device_del`, then wait up to `timeout` for the device to leave QOM (the guest ejects it).
    DeviceDel { device: String, timeout: Duration },
}

impl Fault {
    /// The QMP command that injects it.
    pub fn command(&self) -> &'static str {
        match self {
            Fault::Poison { .. } => "cxl-inject-poison",
            Fault::Uncorrectable { .. } => "cxl-inject-uncorrectable-errors",
            Fault::Correctable { .. } => "cxl-inject-correctable-error",
            Fault::GeneralMedia { .. } => "cxl-inject-general-media-event",
            Fault::DeviceDel { .. } => "device_del",
        }
    }

    fn device(&self) -> &str {
        match self {
            Fault::Poison { device, .. }
            | Fault::Uncorrectable { device, .. }
            | Fault::Correctable { device, .. }
            | Fault::GeneralMedia { device, .. }
            | Fault::DeviceDel { device, .. } => device,
        }
    }
}

/// What came of an injection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Injected {
    /// QEMU took it; the note says what was sent.
    Done(String),
    /// The running QEMU has no such command.
    Unsupported { command: String, qemu: String },
}

/// The QMP path of a device given by id on the command line.
pub fn device_path(id: &str) -> String {
    format!("/machine/peripheral/{id}")
}

/// The running QEMU's version (`10.0.2`) and command names.
pub async fn qemu_commands(qmp: &mut QmpClient) -> Result<(String, BTreeSet<String>)> {
    let v = qmp.execute(qmp::query_version {}).await?;
    let version = format!("{}.{}.{}", v.qemu.major, v.qemu.minor, v.qemu.micro);
    let names = qmp
        .execute(qmp::query_commands {})
        .await?
        .into_iter()
        .map(|c| c.name)
        .collect();
    Ok((version, names))
}

fn bad_name<T>(what: &str, name: &str) -> Result<T> {
    Err(Error::Qmp {
        op: what.into(),
        message: format!("{name:?} is not a QAPI {what} name"),
    })
}

/// Injects `fault` after checking the running QEMU has its command.
pub async fn inject(qmp: &mut QmpClient, fault: &Fault) -> Result<Injected> {
    let (qemu, names) = qemu_commands(qmp).await?;
    let command = fault.command();
    if !names.contains(command) {
        return Ok(Injected::Unsupported {
            command: command.into(),
            qemu,
        });
    }
    let path = device_path(fault.device());
    let note = match fault {
        Fault::Poison { dpa, length, .. } => {
            qmp.execute(qmp::cxl_inject_poison {
                path: path.clone(),
                start: *dpa,
                length: *length,
            })
            .await?;
            format!("{command} path={path} start={dpa:#x} length={length:#x}")
        }
        Fault::Uncorrectable { errors, .. } => {
            let mut records = Vec::new();
            for e in errors {
                let Ok(type_) = e.parse::<qmp::CxlUncorErrorType>() else {
                    return bad_name("CxlUncorErrorType", e);
                };
                records.push(qmp::CXLUncorErrorRecord {
                    type_,
                    header: vec![0; 32],
                });
            }
            qmp.execute(qmp::cxl_inject_uncorrectable_errors {
                path: path.clone(),
                errors: records,
            })
            .await?;
            format!("{command} path={path} errors={errors:?}")
        }
        Fault::Correctable { kind, .. } => {
            let Ok(type_) = kind.parse::<qmp::CxlCorErrorType>() else {
                return bad_name("CxlCorErrorType", kind);
            };
            qmp.execute(qmp::cxl_inject_correctable_error {
                path: path.clone(),
                type_,
            })
            .await?;
            format!("{command} path={path} type={kind}")
        }
        Fault::GeneralMedia { dpa, .. } => {
            // CXL 3.1 table 8-57: descriptor bit 1 uncorrectable event; type 0 media ECC
            // error; transaction type 1 host read. Flags bit 0 (permanent) left clear.
            qmp.execute(qmp::cxl_inject_general_media_event {
                path: path.clone(),
                log: qmp::CxlEventLog::failure,
                flags: 0,
                dpa: *dpa,
                descriptor: 1 << 1,
                type_: 0,
                transaction_type: 1,
                channel: None,
                rank: None,
                device: None,
                component_id: None,
            })
            .await?;
            format!("{command} path={path} log=failure dpa={dpa:#x} descriptor=0x2 type=0 transaction-type=1")
        }
        Fault::DeviceDel { device, timeout } => {
            qmp.execute(qmp::device_del { id: device.clone() }).await?;
            let start = Instant::now();
            loop {
                let peripherals = qmp
                    .execute(qmp::qom_list {
                        path: "/machine/peripheral".into(),
                    })
                    .await?;
                if !peripherals.iter().any(|p| &p.name == device) {
                    break;
                }
                if start.elapsed() >= *timeout {
                    return Err(Error::Timeout {
                        what: format!(
                            "{device} to leave /machine/peripheral after device_del (the guest did not eject it)"
                        ),
                        timeout: *timeout,
                    });
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            format!(
                "device_del id={device}: gone from /machine/peripheral after {:.1} s",
                start.elapsed().as_secs_f64()
            )
        }
    };
    Ok(Injected::Done(format!("{note} (QEMU {qemu})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_names_its_qmp_command_and_device() {
        let f = Fault::Poison {
            device: "mem0".into(),
            dpa: 0,
            length: 64,
        };
        assert_eq!(f.command(), "cxl-inject-poison");
        assert_eq!(device_path(f.device()), "/machine/peripheral/mem0");
        let d = Fault::DeviceDel {
            device: "mem1".into(),
            timeout: Duration::from_secs(1),
        };
        assert_eq!((d.command(), d.device()), ("device_del", "mem1"));
    }

    #[test]
    fn qapi_error_type_names_parse() {
        assert!("mem-data-ecc".parse::<qmp::CxlUncorErrorType>().is_ok());
        assert!("mem-data-ecc".parse::<qmp::CxlCorErrorType>().is_ok());
        assert!("no-such-error".parse::<qmp::CxlUncorErrorType>().is_err());
    }
}
