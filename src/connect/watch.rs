//! The running `accord connect`'s second connection:
//! after `accepted` the session's own stream carries raw RFB, so what ended
//! the session and mode changes come on a watch of it (wire:
//! [`crate::protocol`], "Watching a session"). It is a convenience: when it
//! cannot open or breaks, the tunnel still works and the end is only
//! "session ended".

use super::{ConnectConfig, ConnectError, Progress};
use crate::protocol::{self, MAX_LINE, Mode, WatchLine};
use crate::session::EndReason;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::UnboundedSender;
use tokio_rustls::client::TlsStream;
use uuid::Uuid;

/// Longest wait for the watch to be admitted: it runs right after
/// acceptance, before the tunnel serves, so it may not hold it up long.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(3);

/// What ended the session, as far as the workstation said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ending {
    /// The workstation's reason (the audit log's `session_ended.why`).
    Told(EndReason),
    /// A reason this build does not know (a newer agent); a short
    /// lowercase word, safe to print.
    Unknown(String),
    /// No watch (an older agent, or it failed): the tunnel just closed.
    Untold,
}

impl Ending {
    /// The reason named on the wire.
    pub fn from_wire(why: &str) -> Ending {
        match EndReason::parse(why) {
            Some(r) => Ending::Told(r),
            None => Ending::Unknown(why.to_string()),
        }
    }

    /// DESIGN.md's exit codes: 0 for a session that ended normally (the
    /// user, the technician, the rules: idle, maximum duration, lock, user
    /// switch). An end that is a failure gets the code of the refusal the
    /// same cause gives before a session (as the agent answers when it
    /// happens while connecting): the workstation's VNC server, Accord
    /// stopping, or a stream that could not be checked are 7 (retry
    /// later, or with another viewer); Accord's window lost is 6 (policy:
    /// nobody can consent there).
    pub fn exit_code(&self) -> i32 {
        match self {
            Ending::Told(r) => match r {
                EndReason::User
                | EndReason::Technician
                | EndReason::Idle
                | EndReason::MaxDuration
                | EndReason::ScreenLocked
                | EndReason::UserSwitched
                | EndReason::NotConfirmed => 0,
                EndReason::Upstream | EndReason::AgentStopped | EndReason::Protocol => 7,
                EndReason::UiLost => 6,
            },
            Ending::Unknown(_) | Ending::Untold => 0,
        }
    }
}

/// One thing the watch reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEvent {
    Mode {
        mode: Mode,
        by_user: bool,
    },
    /// She hid her screen (`true`) or showed it again.
    Paused(bool),
    /// She is asked whether to go on; the session ends after `grace`.
    Confirming {
        grace: std::time::Duration,
    },
    Confirmed,
    Ended(Ending),
}

/// An admitted watch of one session.
pub struct Watch {
    stream: TlsStream<TcpStream>,
    buf: Vec<u8>,
    mode: Mode,
}

impl Watch {
    /// Opens the second connection, asks to watch `session` and waits for
    /// the agent's first line (the current mode: admitted). A refusal is
    /// `ConnectError::Refused`; anything else that goes wrong, `Network`.
    pub async fn open(cfg: &ConnectConfig, session: Uuid) -> Result<Watch, ConnectError> {
        let open = async {
            let mut stream = super::open_tls(cfg).await?;
            let net = |e: std::io::Error| ConnectError::Network(format!("watch: {e}"));
            stream
                .write_all(&protocol::encode_watch(session))
                .await
                .map_err(net)?;
            stream.flush().await.map_err(net)?;
            let mut w = Watch {
                stream,
                buf: Vec::new(),
                mode: Mode::View,
            };
            match w.read_line().await? {
                Some(WatchLine::Mode { mode, .. }) => {
                    w.mode = mode;
                    Ok(w)
                }
                Some(WatchLine::Refused { why }) => Err(ConnectError::Refused(why)),
                Some(
                    WatchLine::Ended { .. }
                    | WatchLine::Paused { .. }
                    | WatchLine::Confirming { .. }
                    | WatchLine::Confirmed
                    | WatchLine::Unknown,
                )
                | None => Err(ConnectError::Network(
                    "watch: closed before it was admitted".into(),
                )),
            }
        };
        tokio::time::timeout(OPEN_TIMEOUT, open)
            .await
            .map_err(|_| ConnectError::Network("watch: no answer in time".into()))?
    }

    /// The session's mode as last told.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The next change or the end; `None` when the watch is over without
    /// saying more (closed, broken, or a line this build cannot read).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            match self.read_line().await {
                Ok(Some(WatchLine::Mode { mode, by })) => {
                    if mode != self.mode {
                        self.mode = mode;
                        return Some(WatchEvent::Mode {
                            mode,
                            by_user: by.as_deref() == Some("user"),
                        });
                    }
                }
                Ok(Some(WatchLine::Ended { why })) => {
                    return Some(WatchEvent::Ended(Ending::from_wire(&why)));
                }
                Ok(Some(WatchLine::Paused { paused })) => return Some(WatchEvent::Paused(paused)),
                Ok(Some(WatchLine::Confirming { grace })) => {
                    return Some(WatchEvent::Confirming { grace });
                }
                Ok(Some(WatchLine::Confirmed)) => return Some(WatchEvent::Confirmed),
                Ok(Some(WatchLine::Unknown)) => {}
                Ok(Some(WatchLine::Refused { .. }) | None) => return None,
                Err(e) => {
                    tracing::debug!("{e}");
                    return None;
                }
            }
        }
    }

    /// One line from the agent; `None` at the end of the stream.
    async fn read_line(&mut self) -> Result<Option<WatchLine>, ConnectError> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=pos).collect();
                let line = line.get(..pos).unwrap_or_default();
                return protocol::parse_watch_line(line)
                    .map(Some)
                    .map_err(|e| ConnectError::Network(format!("watch: {e}")));
            }
            if self.buf.len() >= MAX_LINE {
                return Err(ConnectError::Network("watch: line too long".into()));
            }
            let mut chunk = [0u8; 512];
            let n = self
                .stream
                .read(&mut chunk)
                .await
                .map_err(|e| ConnectError::Network(format!("watch: {e}")))?;
            if n == 0 {
                return Ok(None);
            }
            self.buf
                .extend_from_slice(chunk.get(..n).unwrap_or_default());
        }
    }
}

/// Follows the watch, if there is one: mode changes go to `progress` as
/// they happen; returns how the session ended.
pub async fn follow(watch: Option<Watch>, progress: UnboundedSender<Progress>) -> Ending {
    let Some(mut w) = watch else {
        return Ending::Untold;
    };
    while let Some(ev) = w.next().await {
        match ev {
            WatchEvent::Mode { mode, by_user } => {
                let _ = progress.send(Progress::ModeChanged { mode, by_user });
            }
            WatchEvent::Paused(paused) => {
                let _ = progress.send(Progress::Paused(paused));
            }
            WatchEvent::Confirming { grace } => {
                let _ = progress.send(Progress::Confirming { grace });
            }
            WatchEvent::Confirmed => {
                let _ = progress.send(Progress::Confirmed);
            }
            WatchEvent::Ended(e) => return e,
        }
    }
    Ending::Untold
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_from_the_wire_and_their_exit_codes() {
        for r in EndReason::ALL {
            assert_eq!(Ending::from_wire(r.as_str()), Ending::Told(r));
        }
        assert_eq!(
            Ending::from_wire("meteor"),
            Ending::Unknown("meteor".into())
        );
        let code = |r| Ending::Told(r).exit_code();
        assert_eq!(code(EndReason::User), 0);
        assert_eq!(code(EndReason::Idle), 0);
        assert_eq!(code(EndReason::MaxDuration), 0);
        assert_eq!(code(EndReason::ScreenLocked), 0);
        assert_eq!(code(EndReason::Technician), 0);
        assert_eq!(code(EndReason::AgentStopped), 7);
        assert_eq!(code(EndReason::Upstream), 7);
        assert_eq!(code(EndReason::UiLost), 6);
        assert_eq!(Ending::Untold.exit_code(), 0);
        assert_eq!(Ending::Unknown("x".into()).exit_code(), 0);
    }
}
