//! Drives the sans-IO [`crate::rfb`] state machines over the session's
//! sockets: the handshake with the local VNC server (before the technician
//! hears "accepted"), the handshake with the technician's viewer, and the
//! filtered technician → server direction.
//!
//! The server → technician direction is relayed unparsed for now (a server
//! framer will cut it into messages); every write to the technician is
//! flushed before the relay waits for the server again, or the tail of an
//! update would stay inside rustls and the viewer would freeze mid-frame.

use super::DirResult;
use super::EndReason;
use super::format_hold::{FormatHold, ServerProgress};
use super::outbox::Outbox;
use crate::protocol::Mode;
use crate::rfb::{
    Action, ClientFramer, ClientMessage, Clipboard as RfbClipboard, Filter, FilterCtx,
    HandshakeError, MessageKind, PixelFormat, READ_CHUNK, ServerFramer, ServerStep,
    TechnicianHandshake, TechnicianProgress, UpstreamHandshake, UpstreamProgress,
};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{oneshot, watch};

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

/// How long releasing held keys and buttons may delay the end of a
/// session: a server that does not read must not hold the kill switch.
pub const RELEASE_WAIT: Duration = Duration::from_millis(200);

/// How long, once the releases are written and Accord's end is closed, the
/// server has to close its own end (which says it has read them).
pub const CLOSE_WAIT: Duration = Duration::from_millis(300);

/// Reads and discards until the server closes its end (or fails). The
/// caller bounds it ([`CLOSE_WAIT`]).
pub async fn drain_until_closed<R: AsyncRead + Unpin>(r: &mut R) {
    let mut buf = vec![0u8; READ_CHUNK];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

/// What the server → technician relay needs to follow and filter the stream.
pub struct ServerCtl {
    /// ServerInit's pixel format, in force until the viewer changes it.
    pub pixel_format: PixelFormat,
    /// The viewer's SetPixelFormat, published by the other direction when
    /// it forwards one (applies from the next FramebufferUpdate).
    pub viewer_format: watch::Receiver<Option<PixelFormat>>,
    /// Where this direction says how far it is, for a held SetPixelFormat.
    pub progress: watch::Sender<ServerProgress>,
    pub mode: watch::Receiver<Mode>,
    pub clipboard: RfbClipboard,
    /// Her screen is hidden: from the next message boundary on, nothing
    /// the server sends is passed on.
    pub hide: watch::Receiver<bool>,
}

/// Server → technician: every byte is classified by the sans-IO
/// [`ServerFramer`] and forwarded as a slice of the read buffer (no copy),
/// except the clinician's clipboard when the session may not pass it
/// (view-only, or `clipboard` other than `both`), whatever the server sends.
/// Everything written is flushed before the relay waits to read again, so
/// nothing the server sent stays buffered in TLS (the tail of a frame on a
/// still screen). A message the framer cannot follow ends the session
/// (`protocol`): past it, a cut text could pass as pixels. `leftover` is what
/// the server sent after ServerInit, before the viewer came.
pub async fn server_to_technician<R, W>(
    mut r: R,
    mut w: W,
    ctl: ServerCtl,
    leftover: Vec<u8>,
    mut on_bytes: impl FnMut(usize),
) -> DirResult
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ServerCtl {
        pixel_format,
        mut viewer_format,
        progress,
        mut mode,
        clipboard,
        mut hide,
    } = ctl;
    // What she asked, and what applies: a message already begun is
    // finished (a cut message would break the viewer), the next one obeys.
    let mut want_hidden = *hide.borrow_and_update();
    let mut hidden = want_hidden;
    let mut classified = 0u64;
    let mut framer = ServerFramer::new(pixel_format);
    framer.set_clipboard_to_viewer(
        clipboard.allows_to_viewer(*mode.borrow_and_update() == Mode::View),
    );
    let mut end = leftover.len();
    let mut buf = leftover;
    buf.resize(end.max(READ_CHUNK), 0);
    let mut start = 0usize;
    loop {
        // Permission and format changes apply from the next message.
        if mode.has_changed().unwrap_or(false) {
            let view_only = *mode.borrow_and_update() == Mode::View;
            framer.set_clipboard_to_viewer(clipboard.allows_to_viewer(view_only));
        }
        if viewer_format.has_changed().unwrap_or(false)
            && let Some(pf) = *viewer_format.borrow_and_update()
        {
            framer.set_pixel_format(pf);
        }
        if hide.has_changed().unwrap_or(false) {
            want_hidden = *hide.borrow_and_update();
        }
        if framer.at_boundary() {
            hidden = want_hidden;
        }
        framer.set_stop_at_boundary(hidden != want_hidden);
        let pending = buf.get(start..end).unwrap_or_default();
        let step = if pending.is_empty() {
            Ok(ServerStep::NeedMore)
        } else {
            framer.step(pending)
        };
        match step {
            Ok(ServerStep::Forward(n) | ServerStep::Drop(n)) if hidden => {
                start += n;
                classified += n as u64;
            }
            Ok(ServerStep::Forward(n)) => {
                let slice = pending.get(..n).unwrap_or_default();
                if let Err(e) = w.write_all(slice).await {
                    return (EndReason::Technician, Some(e.to_string()));
                }
                start += n;
                on_bytes(n);
                classified += n as u64;
            }
            Ok(ServerStep::Drop(n)) => {
                start += n;
                classified += n as u64;
            }
            Ok(ServerStep::NeedMore) => {
                // Once per read, not per message: the relay's hot path
                // pays a watch update only when it is about to wait.
                publish(&progress, classified, &framer);
                if let Err(e) = w.flush().await {
                    return (EndReason::Technician, Some(e.to_string()));
                }
                // Keep the incomplete header at the front, read after it.
                buf.copy_within(start..end, 0);
                end -= start;
                start = 0;
                let Some(room) = buf.get_mut(end..).filter(|r| !r.is_empty()) else {
                    // Cannot happen: headers are bounded far below READ_CHUNK.
                    return (
                        EndReason::Protocol,
                        Some("server message header larger than the read buffer".into()),
                    );
                };
                end += match r.read(room).await {
                    Ok(0) => return (EndReason::Upstream, Some("the VNC server closed".into())),
                    Ok(n) => n,
                    Err(e) => return (EndReason::Upstream, Some(e.to_string())),
                };
            }
            Err(e) => {
                let _ = w.flush().await;
                return (EndReason::Protocol, Some(format!("server stream: {e}")));
            }
        }
    }
}

/// Tells the other direction how far the server's stream is, each time
/// this direction has classified all it read (only when something
/// changed: a held SetPixelFormat waits for silence).
fn publish(progress: &watch::Sender<ServerProgress>, bytes: u64, framer: &ServerFramer) {
    let now = ServerProgress {
        bytes,
        at_boundary: framer.at_boundary(),
        updates: framer.counts().updates,
    };
    progress.send_if_modified(|p| std::mem::replace(p, now) != now);
}

/// What the technician → server relay reports as it goes.
pub trait ClientEvents {
    /// Bytes read from the technician.
    fn read(&mut self, n: usize);
    /// The technician typed, pointed or pasted (T10), even if the message
    /// was dropped: a viewer sends pointer motion whenever the technician
    /// moves over it, view-only or not.
    fn active(&mut self);
}

/// The session's channels as the technician → server relay sees them.
pub struct ClientCtl {
    pub mode: watch::Receiver<Mode>,
    pub hold: watch::Receiver<bool>,
    /// Fires (or is dropped) when the session ends for any other reason.
    pub stop: oneshot::Receiver<()>,
    pub clipboard: RfbClipboard,
    /// Where a forwarded SetPixelFormat is published for the server framer.
    pub viewer_format: watch::Sender<Option<PixelFormat>>,
    /// How far the server's stream is ([`FormatHold`]).
    pub progress: watch::Receiver<ServerProgress>,
    /// Her screen is hidden. When she shows it again the viewer's
    /// requests answered meanwhile went nowhere, so Accord asks the server
    /// for a whole frame of `screen` (width, height) on its behalf.
    pub hide: watch::Receiver<bool>,
    pub screen: (u16, u16),
}

/// Technician → server: parse every message, apply the mode, forward only
/// what was re-serialised from parsed fields, through the paced
/// [`Outbox`]. Whatever ends it, every key and button the technician holds
/// is released before the upstream write half closes (within
/// [`RELEASE_WAIT`]).
pub async fn client_to_server<R, W>(
    mut r: R,
    mut w: W,
    ctl: ClientCtl,
    leftover: Vec<u8>,
    mut events: impl ClientEvents,
) -> DirResult
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let ClientCtl {
        mut mode,
        mut hold,
        mut stop,
        clipboard,
        viewer_format,
        mut progress,
        mut hide,
        screen,
    } = ctl;
    let mut hidden = *hide.borrow_and_update();
    let mut st = State {
        framer: ClientFramer::new(),
        filter: Filter::new(),
        view_only: *mode.borrow_and_update() == Mode::View,
        hold: *hold.borrow_and_update(),
        clipboard,
        viewer_format,
        format_hold: FormatHold::new(),
        outbox: Outbox::new(now()),
    };
    let mut buf = vec![0u8; READ_CHUNK];
    if let Err(v) = st.framer.push(&leftover) {
        st.finish(&mut w).await;
        return (EndReason::Protocol, Some(v.to_string()));
    }
    // Whether every parsed message has been taken from the framer (it
    // must be drained before the next push).
    let mut drained = leftover.is_empty();
    let end = loop {
        if !drained {
            match st.pump(&mut mode, &mut hold, &mut events) {
                Ok(d) => drained = d,
                Err(e) => break e,
            }
        }
        st.outbox.fill(now());
        if st.format_hold.is_holding() {
            let flushed = st.outbox.unsent().is_empty();
            if let Some(pf) = st
                .format_hold
                .poll(now(), flushed, *progress.borrow_and_update())
            {
                st.forward_format(pf);
                drained = false;
                continue;
            }
        }
        let holding = st.format_hold.is_holding();
        let hold_wake = st
            .format_hold
            .deadline()
            .map(tokio::time::Instant::from_std);
        let wake = st.outbox.next_send_at().map(tokio::time::Instant::from_std);
        let unsent = st.outbox.unsent();
        let writing = !unsent.is_empty();
        tokio::select! {
            biased;
            _ = &mut stop => break (EndReason::User, None),
            Ok(()) = mode.changed() => st.sync(&mut mode, &mut hold),
            Ok(()) = hold.changed() => st.sync(&mut mode, &mut hold),
            Ok(()) = hide.changed() => {
                let now_hidden = *hide.borrow_and_update();
                if hidden && !now_hidden {
                    st.outbox.push(&ClientMessage::FramebufferUpdateRequest {
                        incremental: false,
                        x: 0,
                        y: 0,
                        width: screen.0,
                        height: screen.1,
                    });
                }
                hidden = now_hidden;
            }
            Ok(()) = progress.changed(), if holding => st.format_hold.on_activity(now()),
            _ = sleep_until_opt(hold_wake), if holding && !writing => {}
            res = w.write(unsent), if writing => match res {
                Ok(0) => break (EndReason::Upstream, Some("the VNC server closed".into())),
                Ok(n) => {
                    st.format_hold.on_activity(now());
                    st.outbox.advance(n);
                    if st.outbox.unsent().is_empty()
                        && let Err(e) = w.flush().await
                    {
                        break (EndReason::Upstream, Some(e.to_string()));
                    }
                }
                Err(e) => break (EndReason::Upstream, Some(e.to_string())),
            },
            read = r.read(&mut buf), if drained => match read {
                Ok(0) => break (EndReason::Technician, None),
                Ok(n) => {
                    events.read(n);
                    if let Err(v) = st.framer.push(buf.get(..n).unwrap_or_default()) {
                        break (EndReason::Protocol, Some(v.to_string()));
                    }
                    drained = false;
                }
                Err(e) => break (EndReason::Technician, Some(e.to_string())),
            },
            _ = sleep_until_opt(wake), if wake.is_some() && !writing => {}
        }
    };
    drop(r);
    st.finish(&mut w).await;
    end
}

fn now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

struct State {
    framer: ClientFramer,
    filter: Filter,
    view_only: bool,
    hold: bool,
    clipboard: RfbClipboard,
    viewer_format: watch::Sender<Option<PixelFormat>>,
    format_hold: FormatHold,
    outbox: Outbox,
}

impl State {
    /// Takes parsed messages from the framer into the outbox while it has
    /// room. Returns whether the framer is drained.
    fn pump(
        &mut self,
        mode: &mut watch::Receiver<Mode>,
        hold: &mut watch::Receiver<bool>,
        events: &mut impl ClientEvents,
    ) -> Result<bool, DirResult> {
        let mut active = false;
        let result = loop {
            // A held SetPixelFormat keeps everything after it waiting.
            if self.outbox.is_full() || self.format_hold.is_holding() {
                break Ok(false);
            }
            let msg = match self.framer.next_message() {
                Ok(Some(m)) => m,
                Ok(None) => break Ok(true),
                Err(v) => break Err((EndReason::Protocol, Some(v.to_string()))),
            };
            // The mode is read for every message: a switch to view-only
            // takes effect between two messages of the same read.
            if mode.has_changed().unwrap_or(false) || hold.has_changed().unwrap_or(false) {
                self.sync(mode, hold);
            }
            let kind = msg.kind();
            active |= matches!(
                kind,
                MessageKind::KeyEvent
                    | MessageKind::PointerEvent
                    | MessageKind::ClientCutText
                    | MessageKind::ExtendedClipboard
                    | MessageKind::QemuKeyEvent
            );
            let ctx = FilterCtx {
                view_only: self.view_only,
                hold_input: self.hold,
                clipboard: self.clipboard,
            };
            match self.filter.apply(msg, ctx) {
                Action::Forward(ClientMessage::SetPixelFormat(pf)) => {
                    if let Some(pf) = self.format_hold.on_set_pixel_format(pf, now()) {
                        self.forward_format(pf);
                    }
                }
                Action::Forward(m) => {
                    if let ClientMessage::FramebufferUpdateRequest { .. } = &m {
                        self.format_hold.on_request();
                    }
                    self.outbox.push(&m)
                }
                Action::Drop => {}
                Action::End(why) => break Err((EndReason::Protocol, Some(why.to_string()))),
            }
        };
        if active {
            events.active();
        }
        result
    }

    /// Reads the current mode and hold flag. On control → view-only (or
    /// hold switched on), the input still waiting in Accord is dropped and
    /// every held key and button is released, ahead of anything the
    /// technician sends next. On view-only → control (the clinician granted
    /// a request for control), the viewer's input extensions stripped from
    /// its SetEncodings are offered to the server again.
    fn sync(&mut self, mode: &mut watch::Receiver<Mode>, hold: &mut watch::Receiver<bool>) {
        let view_only = *mode.borrow_and_update() == Mode::View;
        let held = *hold.borrow_and_update();
        let losing_input = (view_only && !self.view_only) || (held && !self.hold);
        let gaining_control = !view_only && self.view_only;
        self.view_only = view_only;
        self.hold = held;
        if losing_input {
            self.outbox.drop_input();
            self.release();
        }
        if gaining_control && let Some(m) = self.filter.restore_encodings() {
            self.outbox.push(&m);
        }
    }

    /// Published before the bytes leave, so the server framer knows the
    /// format before the server answers in it.
    fn forward_format(&mut self, pf: PixelFormat) {
        self.viewer_format.send_replace(Some(pf));
        self.outbox.push(&ClientMessage::SetPixelFormat(pf));
    }

    fn release(&mut self) {
        for m in self.filter.release_all() {
            self.outbox.push_now(&m);
        }
    }

    /// The session is over: drop the backlog, finish the message being
    /// written, release what is held, close the upstream write half; all
    /// within [`RELEASE_WAIT`].
    async fn finish<W: AsyncWrite + Unpin>(&mut self, w: &mut W) {
        self.outbox.abandon();
        self.release();
        let outbox = &mut self.outbox;
        let work = async {
            while !outbox.unsent().is_empty() {
                match w.write(outbox.unsent()).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => outbox.advance(n),
                }
            }
            let _ = w.flush().await;
            let _ = w.shutdown().await;
        };
        if tokio::time::timeout(RELEASE_WAIT, work).await.is_err() {
            tracing::warn!("the VNC server did not take the key and button releases in time");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::time::Instant;

    /// A server leg that never takes a byte.
    struct Stuck;

    impl AsyncWrite for Stuck {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            Poll::Pending
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Pending
        }
    }

    struct NoEvents;
    impl ClientEvents for NoEvents {
        fn read(&mut self, _: usize) {}
        fn active(&mut self) {}
    }

    struct Channels {
        _mode: watch::Sender<Mode>,
        _hold: watch::Sender<bool>,
        _hide: watch::Sender<bool>,
        stop: oneshot::Sender<()>,
    }

    fn ctl(mode: Mode) -> (ClientCtl, Channels) {
        let (mode_tx, mode) = watch::channel(mode);
        let (hold_tx, hold) = watch::channel(false);
        let (hide_tx, hide) = watch::channel(false);
        let (stop_tx, stop) = oneshot::channel();
        (
            ClientCtl {
                mode,
                hold,
                hide,
                screen: (640, 480),
                stop,
                clipboard: RfbClipboard::ToWorkstation,
                viewer_format: watch::channel(None).0,
                progress: watch::channel(ServerProgress::default()).1,
            },
            Channels {
                _mode: mode_tx,
                _hold: hold_tx,
                _hide: hide_tx,
                stop: stop_tx,
            },
        )
    }

    const CTRL_DOWN: [u8; 8] = [4, 1, 0, 0, 0, 0, 0xff, 0xe3];
    const CTRL_UP: [u8; 8] = [4, 0, 0, 0, 0, 0, 0xff, 0xe3];

    /// A server that streams frames back to back, in reads that never end
    /// on a message boundary: hiding her screen still takes effect after
    /// the message under way, and showing it again too.
    #[tokio::test]
    async fn hiding_applies_between_two_messages_of_a_stream_that_never_pauses() {
        const W: u16 = 16;
        const H: u16 = 16;
        let mut frame = vec![0, 0, 0, 1, 0, 0, 0, 0];
        frame.extend_from_slice(&W.to_be_bytes());
        frame.extend_from_slice(&H.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend(vec![9u8; usize::from(W) * usize::from(H) * 4]);
        let (mut server, relay_in) = tokio::io::duplex(1 << 16);
        let (relay_out, mut viewer) = tokio::io::duplex(1 << 16);
        let stream = frame.clone();
        tokio::spawn(async move {
            // 1000-byte writes: seldom aligned with the 1036-byte frames.
            let all: Vec<u8> = stream
                .iter()
                .copied()
                .cycle()
                .take(stream.len() * 1000)
                .collect();
            loop {
                for chunk in all.chunks(1000) {
                    if server.write_all(chunk).await.is_err() {
                        return;
                    }
                }
            }
        });
        let (hide_tx, hide) = watch::channel(false);
        let ctl = ServerCtl {
            pixel_format: PixelFormat::RGB888,
            viewer_format: watch::channel(None).1,
            progress: watch::channel(ServerProgress::default()).0,
            mode: watch::channel(Mode::View).1,
            clipboard: RfbClipboard::None,
            hide,
        };
        tokio::spawn(server_to_technician(
            relay_in,
            relay_out,
            ctl,
            Vec::new(),
            |_| {},
        ));
        let mut got = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while total < 20 * frame.len() {
            total += viewer.read(&mut got).await.unwrap();
        }
        hide_tx.send_replace(true);
        // What was under way comes, then nothing, whole frames only.
        let mut after = 0usize;
        while let Ok(Ok(n @ 1..)) =
            tokio::time::timeout(Duration::from_millis(300), viewer.read(&mut got)).await
        {
            after += n;
            assert!(after < 200 * frame.len(), "still flowing while hidden");
        }
        assert_eq!((total + after) % frame.len(), 0, "cut mid-frame");
        hide_tx.send_replace(false);
        let n = tokio::time::timeout(Duration::from_secs(5), viewer.read(&mut got))
            .await
            .expect("frames flow again")
            .unwrap();
        assert!(n > 0);
        // Resumed on a boundary: the next bytes start a FramebufferUpdate.
        assert_eq!(got[0], 0);
    }

    #[tokio::test]
    async fn a_server_that_takes_nothing_delays_the_end_by_the_release_bound_only() {
        let (mut viewer, tech) = tokio::io::duplex(4096);
        let (ctl, ch) = ctl(Mode::Control);
        let task = tokio::spawn(client_to_server(tech, Stuck, ctl, Vec::new(), NoEvents));
        viewer.write_all(&CTRL_DOWN).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        let t = Instant::now();
        ch.stop.send(()).unwrap();
        let (why, _) = task.await.unwrap();
        let took = t.elapsed();
        assert_eq!(why, EndReason::User);
        assert!(
            took >= RELEASE_WAIT - Duration::from_millis(5) && took < Duration::from_secs(1),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn the_end_releases_what_is_held_and_closes_the_server_leg() {
        let (mut viewer, tech) = tokio::io::duplex(4096);
        let (server_w, mut server_r) = tokio::io::duplex(4096);
        let (ctl, ch) = ctl(Mode::Control);
        let task = tokio::spawn(client_to_server(tech, server_w, ctl, Vec::new(), NoEvents));
        viewer.write_all(&CTRL_DOWN).await.unwrap();
        viewer.write_all(&[5, 1, 0, 10, 0, 20]).await.unwrap();
        let mut got = vec![0u8; 14];
        server_r.read_exact(&mut got).await.unwrap();
        ch.stop.send(()).unwrap();
        task.await.unwrap();
        let mut rest = Vec::new();
        server_r.read_to_end(&mut rest).await.unwrap();
        let mut want = CTRL_UP.to_vec();
        want.extend_from_slice(&[5, 0, 0, 10, 0, 20]);
        assert_eq!(rest, want, "Ctrl up, button released, then EOF");
    }

    #[tokio::test]
    async fn clipboard_none_drops_cut_text_in_control() {
        let (mut viewer, tech) = tokio::io::duplex(4096);
        let (server_w, mut server_r) = tokio::io::duplex(4096);
        let (mut c, ch) = ctl(Mode::Control);
        c.clipboard = RfbClipboard::None;
        let task = tokio::spawn(client_to_server(tech, server_w, c, Vec::new(), NoEvents));
        viewer
            .write_all(&[6, 0, 0, 0, 0, 0, 0, 3, b'a', b'b', b'c'])
            .await
            .unwrap();
        viewer.write_all(&CTRL_DOWN).await.unwrap();
        let mut got = vec![0u8; 8];
        server_r.read_exact(&mut got).await.unwrap();
        assert_eq!(got, CTRL_DOWN, "the cut text never reached the server");
        drop(ch);
        task.await.unwrap();
    }
}
