//! A technician's connection as the broker sees it: the task that owns
//! the stream writes what the driver says, tells the driver when the
//! technician goes, and runs the relay once the session starts. It decides
//! nothing.

use super::consent::{Closed, ConnId, Input};
use super::driver::ToDriver;
use crate::session::{self, Handles, Limits, Prepared};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Longest a line to the technician may take to leave: a technician who
/// does not read loses the connection, never holds up the agent.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the driver tells a connection's task.
pub(super) enum ToConn {
    Write(Vec<u8>),
    /// Run the session's relay on this connection.
    Relay {
        session: Uuid,
        prepared: Prepared,
        handles: Handles,
        limits: Limits,
    },
    /// Nothing more: close, and return this.
    Close(Closed),
}

/// Registers connection `conn` with `input` and serves it until the driver
/// closes it.
pub(super) async fn serve<S>(
    stream: S,
    conn: ConnId,
    input: Input,
    to_driver: &mpsc::UnboundedSender<ToDriver>,
) -> Closed
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let gone = || {
        let _ = to_driver.send(ToDriver::Input(Input::Gone { conn }));
    };
    let shutting_down = Closed::Request(super::Outcome::Refused(
        crate::protocol::RefusalCode::AgentShuttingDown,
    ));
    if to_driver
        .send(ToDriver::Open {
            conn,
            to_conn: tx,
            input,
        })
        .is_err()
    {
        return shutting_down;
    }
    let mut stream = Some(stream);
    // Until the relay starts, nothing may come from the technician: bytes
    // or a close mean they gave up.
    let mut listening = true;
    loop {
        let msg = match stream.as_mut() {
            Some(s) if listening => tokio::select! {
                m = rx.recv() => m,
                _ = super::wait_readable_or_closed(s) => {
                    listening = false;
                    gone();
                    continue;
                }
            },
            _ => rx.recv().await,
        };
        let Some(msg) = msg else {
            // The driver is gone: the broker with it.
            return shutting_down;
        };
        match msg {
            ToConn::Write(line) => {
                let Some(s) = stream.as_mut() else { continue };
                let write = async {
                    s.write_all(&line).await?;
                    s.flush().await
                };
                if !matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
                    && listening
                {
                    listening = false;
                    gone();
                }
            }
            ToConn::Relay {
                session,
                prepared,
                handles,
                limits,
            } => {
                let Some(s) = stream.take() else {
                    continue;
                };
                let result = session::run(s, prepared, handles, limits).await;
                let _ = to_driver.send(ToDriver::RelayDone { session, result });
            }
            ToConn::Close(closed) => {
                if let Some(s) = stream.as_mut() {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, s.shutdown()).await;
                }
                return closed;
            }
        }
    }
}
