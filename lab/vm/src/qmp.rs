//! A QMP client (qapi crate, tokio) over QEMU's Unix socket; every call has a timeout.

use crate::error::{Error, Result};
use qapi::futures::{QapiStream, QmpStreamTokio};
use qapi::qmp::{self, QmpCommand, StatusInfo};
use qapi::ExecuteError;
use std::io::ErrorKind;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::UnixStream;

type Stream =
    QapiStream<QmpStreamTokio<ReadHalf<UnixStream>>, QmpStreamTokio<WriteHalf<UnixStream>>>;

/// Default time allowed for one QMP command.
pub const DEFAULT_QMP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct QmpClient {
    stream: Stream,
    timeout: Duration,
}

impl std::fmt::Debug for QmpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QmpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl QmpClient {
    /// Connects and negotiates capabilities, retrying until `deadline` elapses while the socket
    /// does not exist yet or QEMU has not greeted. Gives up at once when `qemu_exited()` says the
    /// QEMU process is gone (its error then comes from the caller, who has the exit status).
    pub async fn connect(
        socket: &Path,
        deadline: Duration,
        mut qemu_exited: impl FnMut() -> bool,
    ) -> Result<QmpClient> {
        let start = Instant::now();
        let mut last_error = String::from("socket not created yet");
        loop {
            if qemu_exited() {
                return Err(Error::Qmp {
                    op: "connect".into(),
                    message: format!("QEMU exited before QMP answered on {}", socket.display()),
                });
            }
            let left = deadline.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(Error::Timeout {
                    what: format!(
                        "QMP greeting on {} (last error: {last_error})",
                        socket.display()
                    ),
                    timeout: deadline,
                });
            }
            let attempt = async {
                let negotiation = QmpStreamTokio::open_uds(socket).await?;
                negotiation.negotiate().await
            };
            match tokio::time::timeout(left.min(Duration::from_secs(5)), attempt).await {
                Ok(Ok(stream)) => {
                    return Ok(QmpClient {
                        stream,
                        timeout: DEFAULT_QMP_TIMEOUT,
                    })
                }
                Ok(Err(e)) => last_error = e.to_string(),
                Err(_) => last_error = "no greeting within 5 s".into(),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Changes the timeout applied by [`QmpClient::execute`].
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Runs any QMP command from `qapi::qmp` with the client's timeout.
    pub async fn execute<C: QmpCommand>(&mut self, command: C) -> Result<C::Ok> {
        let timeout = self.timeout;
        self.execute_with_timeout(command, timeout).await
    }

    /// After a timeout the command may still complete inside QEMU and its late reply confuses
    /// the stream: treat the client as broken and end the VM.
    pub async fn execute_with_timeout<C: QmpCommand>(
        &mut self,
        command: C,
        timeout: Duration,
    ) -> Result<C::Ok> {
        match tokio::time::timeout(timeout, self.stream.execute(command)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Qmp {
                op: C::NAME.to_string(),
                message: e.to_string(),
            }),
            Err(_) => Err(Error::Timeout {
                what: format!("QMP {}", C::NAME),
                timeout,
            }),
        }
    }

    pub async fn query_status(&mut self) -> Result<StatusInfo> {
        self.execute(qmp::query_status {}).await
    }

    /// Presses the ACPI power button; the guest decides what to do with it.
    pub async fn system_powerdown(&mut self) -> Result<()> {
        self.execute(qmp::system_powerdown {}).await.map(drop)
    }

    /// Resumes vCPUs (after `-S` or `stop`).
    pub async fn cont(&mut self) -> Result<()> {
        self.execute(qmp::cont {}).await.map(drop)
    }

    /// Asks QEMU to exit. QEMU may close the socket before the reply arrives: that counts as done.
    pub async fn quit(&mut self) -> Result<()> {
        let timeout = self.timeout;
        match tokio::time::timeout(timeout, self.stream.execute(qmp::quit {})).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(ExecuteError::Io(e))) if is_disconnect(e.kind()) => Ok(()),
            Ok(Err(e)) => Err(Error::Qmp {
                op: "quit".into(),
                message: e.to_string(),
            }),
            Err(_) => Err(Error::Timeout {
                what: "QMP quit".into(),
                timeout,
            }),
        }
    }
}

fn is_disconnect(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UnexpectedEof | ErrorKind::BrokenPipe | ErrorKind::ConnectionReset
    )
}
