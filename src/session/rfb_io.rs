//! Drives the sans-IO [`crate::rfb`] state machines over the session's
//! sockets: the handshake with the local VNC server (before the technician
//! hears "accepted"), the handshake with the technician's viewer, and the
//! filtered technician → server direction.
//!
//! The server → technician direction is relayed unparsed: those bytes go to
//! the technician's viewer, which parses them; nothing in them can act on the
//! workstation, and parsing framebuffer updates would cost most of the relay's
//! time for no security gain.

use super::DirResult;
use crate::broker::EndReason;
use crate::protocol::Mode;
use crate::rfb::{
    Action, ClientFramer, Filter, FilterCtx, HandshakeError, READ_CHUNK, TechnicianHandshake,
    TechnicianProgress, UpstreamHandshake, UpstreamProgress,
};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

/// Time allowed for the local VNC server's handshake.
pub const UPSTREAM_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server leg could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot reach the VNC server: {0}")]
    Connect(std::io::Error),
    #[error("VNC server handshake: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("VNC server handshake: {0}")]
    Io(std::io::Error),
    #[error("VNC server handshake timed out")]
    Timeout,
    #[error("cannot read [upstream].password_file {path}: {source}")]
    Password {
        path: String,
        source: std::io::Error,
    },
}

/// Runs Accord's client handshake with the local server: security None or
/// VNC auth (the technician never sees the password), shared flag forced.
/// Returns ServerInit's raw bytes and anything the server sent after it.
pub async fn upstream_handshake<S>(
    s: &mut S,
    password: Option<Vec<u8>>,
) -> Result<(Vec<u8>, Vec<u8>), SetupError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut hs = UpstreamHandshake::new(password);
    let mut buf = vec![0u8; 4096];
    let work = async {
        loop {
            let n = s.read(&mut buf).await.map_err(SetupError::Io)?;
            if n == 0 {
                return Err(SetupError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            let progress = hs.push(&buf[..n]);
            let out = hs.take_output();
            if !out.is_empty() {
                s.write_all(&out).await.map_err(SetupError::Io)?;
            }
            match progress? {
                UpstreamProgress::NeedMore => {}
                UpstreamProgress::Done {
                    server_init,
                    leftover,
                } => return Ok((server_init.raw, leftover)),
            }
        }
    };
    tokio::time::timeout(UPSTREAM_HANDSHAKE_TIMEOUT, work)
        .await
        .map_err(|_| SetupError::Timeout)?
}

/// Reads the VNC password: the file's first line, as bytes.
pub fn read_password(path: &std::path::Path) -> Result<Vec<u8>, SetupError> {
    let raw = std::fs::read(path).map_err(|source| SetupError::Password {
        path: path.display().to_string(),
        source,
    })?;
    let line = raw.split(|&b| b == b'\n').next().unwrap_or_default();
    Ok(line.strip_suffix(b"\r").unwrap_or(line).to_vec())
}

/// Accord's server handshake with the technician's viewer (security None:
/// mutual TLS already authenticated them). Returns what the viewer sent past
/// ClientInit, for the framer.
pub async fn technician_handshake<S>(s: &mut S, server_init: &[u8]) -> Result<Vec<u8>, DirResult>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let fail = |e: String| (EndReason::Protocol, Some(format!("viewer handshake: {e}")));
    let mut hs = TechnicianHandshake::new();
    let mut progress = hs
        .provide_server_init(server_init)
        .map_err(|e| fail(e.to_string()))?;
    let mut buf = vec![0u8; 4096];
    loop {
        let out = hs.take_output();
        if !out.is_empty() {
            s.write_all(&out)
                .await
                .map_err(|e| (EndReason::Technician, Some(e.to_string())))?;
        }
        match progress {
            TechnicianProgress::Done { leftover } => return Ok(leftover),
            TechnicianProgress::NeedMore | TechnicianProgress::NeedServerInit => {}
        }
        let n = s
            .read(&mut buf)
            .await
            .map_err(|e| (EndReason::Technician, Some(e.to_string())))?;
        if n == 0 {
            return Err((
                EndReason::Technician,
                Some("viewer left during the handshake".into()),
            ));
        }
        progress = match hs.push(&buf[..n]) {
            Ok(p) => p,
            Err(e) => {
                // A 3.8 viewer gets the failure reason this way.
                let out = hs.take_output();
                let _ = s.write_all(&out).await;
                return Err(fail(e.to_string()));
            }
        };
    }
}

/// Technician → server: parse every message, apply the mode, forward only
/// what was re-serialised from parsed fields.
pub async fn client_to_server<R, W>(
    mut r: R,
    mut w: W,
    mode: watch::Receiver<Mode>,
    hold: watch::Receiver<bool>,
    leftover: Vec<u8>,
    mut on_bytes: impl FnMut(usize),
) -> DirResult
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let view_only = *mode.borrow() == Mode::View;
    let held = *hold.borrow();
    let mut relay = Relay {
        framer: ClientFramer::new(),
        filter: Filter::new(),
        out: Vec::with_capacity(READ_CHUNK),
        view_only,
        hold: held,
        mode,
        hold_rx: hold,
    };
    if let Err(e) = relay.feed(&leftover, &mut w).await {
        return e;
    }
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            read = r.read(&mut buf) => match read {
                Ok(0) => return (EndReason::Technician, None),
                Ok(n) => {
                    on_bytes(n);
                    if let Err(e) = relay.feed(&buf[..n], &mut w).await {
                        return e;
                    }
                }
                Err(e) => return (EndReason::Technician, Some(e.to_string())),
            },
            // Release held keys and buttons as soon as the mode drops to
            // view-only or input is held, not at the next technician byte.
            Ok(()) = relay.mode.changed() => {
                if let Err(e) = relay.sync_mode(&mut w).await {
                    return e;
                }
            }
            Ok(()) = relay.hold_rx.changed() => {
                if let Err(e) = relay.sync_mode(&mut w).await {
                    return e;
                }
            }
        }
    }
}

struct Relay {
    framer: ClientFramer,
    filter: Filter,
    out: Vec<u8>,
    view_only: bool,
    hold: bool,
    mode: watch::Receiver<Mode>,
    hold_rx: watch::Receiver<bool>,
}

impl Relay {
    /// Reads the current mode and hold flag; on control → view-only (or hold
    /// switched on) first sends a key-up for every held key and a button
    /// release, so nothing stays pressed on the workstation.
    async fn sync_mode<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<(), DirResult> {
        let view_only = *self.mode.borrow_and_update() == Mode::View;
        let hold = *self.hold_rx.borrow_and_update();
        let losing_input = (view_only && !self.view_only) || (hold && !self.hold);
        self.view_only = self.view_only || view_only;
        self.hold = hold;
        if losing_input {
            self.out.clear();
            for m in self.filter.release_all() {
                m.write_to(&mut self.out);
            }
            self.flush(w).await?;
        }
        Ok(())
    }

    async fn feed<W: AsyncWrite + Unpin>(
        &mut self,
        bytes: &[u8],
        w: &mut W,
    ) -> Result<(), DirResult> {
        self.framer
            .push(bytes)
            .map_err(|v| (EndReason::Protocol, Some(v.to_string())))?;
        self.out.clear();
        loop {
            let msg = match self.framer.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(v) => {
                    // Forward what was already accepted, then end.
                    self.flush(w).await?;
                    return Err((EndReason::Protocol, Some(v.to_string())));
                }
            };
            // The mode is read for every message: a switch to view-only
            // takes effect between two messages of the same read.
            if self.mode.has_changed().unwrap_or(false)
                || self.hold_rx.has_changed().unwrap_or(false)
            {
                self.flush(w).await?;
                self.sync_mode(w).await?;
                self.out.clear();
            }
            let ctx = FilterCtx {
                view_only: self.view_only,
                hold_input: self.hold,
                ..FilterCtx::default()
            };
            match self.filter.apply(msg, ctx) {
                Action::Forward(m) => m.write_to(&mut self.out),
                Action::Drop => {}
                Action::End(why) => {
                    self.flush(w).await?;
                    return Err((EndReason::Protocol, Some(why.to_string())));
                }
            }
        }
        self.flush(w).await
    }

    async fn flush<W: AsyncWrite + Unpin>(&mut self, w: &mut W) -> Result<(), DirResult> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = w.write_all(&self.out).await;
        self.out.clear();
        r.map_err(|e| (EndReason::Upstream, Some(e.to_string())))
    }
}
