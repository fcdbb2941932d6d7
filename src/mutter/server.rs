//! `accord screen-server`: Accord's own VNC server for a GNOME Wayland
//! session, started by the helper after consent exactly where it starts
//! x11vnc on X11 (`launch::Server::Mutter`): a private socket, one
//! connection, the process group killed at every ending.
//!
//! It joins three parts: the screen cast's frames ([`super::frames`]) go
//! into Accord's sans-IO RFB server ([`crate::rfb::host::Host`]); the
//! viewer's input goes out as Mutter calls ([`super::input`]) on the
//! RemoteDesktop session ([`super::session`]).
//!
//! View only is enforced at the source: a view-only session runs a screen
//! cast alone. If the session may become control (`--input`), the
//! RemoteDesktop side is opened at the first input event that reaches this
//! server: Accord's relay drops every input event of a view-only session, so
//! the first one to arrive is the first after she granted control.
//! Without `--input` nothing ever opens it.
//!
//! Clipboard ([`super::clipboard`]): only what `--clipboard` grants (the
//! policy's `[session] clipboard`), and only through the RemoteDesktop
//! session, enabled as soon as it exists: a view-only session has no
//! clipboard, and cut text that arrives before control is dropped (it never
//! opens the RemoteDesktop side). Its failures are logged; the session goes
//! on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{UnixListener, UnixStream};

use super::clipboard::Clipboard;
use super::frames::{Capture, FramesError, Latest, Taken};
use super::input::{Call, Input};
use super::session::{End, MutterError, MutterSession, Options};
use crate::protocol::Mode;
use crate::rfb::READ_CHUNK;
use crate::rfb::host::{Host, HostError, HostEvent};

pub use crate::launch::EXIT_STOPPED_IN_GNOME;
/// The launcher gives a server 5 s to speak; the first frame must come
/// before that.
const FIRST_FRAME: Duration = Duration::from_secs(4);
/// How long a failed Mutter call waits for Mutter's `Closed`, which may
/// follow it.
const CLOSED_AFTER_ERROR: Duration = Duration::from_millis(500);
/// The name viewers show for this screen.
const NAME: &[u8] = b"GNOME (Accord)";

/// What the screen server was asked to do.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The mode she granted.
    pub mode: Mode,
    /// Whether the session may ever inject input (control now, or a view
    /// that may become control).
    pub input: bool,
    /// What the server itself shares of the clipboard.
    pub clipboard: crate::policy::Clipboard,
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the session bus: {0}")]
    Bus(#[source] zbus::Error),
    /// Boxed: the largest error, on every path's `Result`.
    #[error(transparent)]
    Mutter(Box<MutterError>),
    #[error(transparent)]
    Frames(#[from] FramesError),
    #[error(transparent)]
    Host(#[from] HostError),
    #[error("no frame from the screen cast within {0:?}")]
    NoFrame(Duration),
    #[error("nobody connected within {0:?}")]
    NoViewer(Duration),
    #[error("Mutter ended the session ({0:?})")]
    MutterEnded(End),
}

impl From<MutterError> for ServerError {
    fn from(e: MutterError) -> Self {
        ServerError::Mutter(Box::new(e))
    }
}

/// How a session that ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The viewer (Accord's relay) closed the connection: the session ended
    /// on Accord's side.
    ViewerLeft,
    /// The clinician stopped the sharing from GNOME.
    StoppedInGnome,
}

/// Runs the whole server on `socket` (in a private directory made by the
/// launcher): binds, opens the Mutter session, waits for its first frame,
/// accepts one connection and serves it.
pub async fn run(socket: &Path, opts: ServeOptions) -> Result<Outcome, ServerError> {
    let listener = UnixListener::bind(socket).map_err(|source| ServerError::Io {
        what: "binding the socket",
        source,
    })?;
    let conn = zbus::Connection::session()
        .await
        .map_err(ServerError::Bus)?;
    let session = MutterSession::open(&conn, opts.mode, Options::default()).await?;
    let latest = Latest::new();
    let capture = Capture::start(session.stream().node_id, latest.clone())?;
    let Some((width, height)) = next_frame(&latest, 0).await? else {
        return Err(ServerError::NoFrame(FIRST_FRAME));
    };
    tracing::info!(
        node = session.stream().node_id,
        "screen cast of {width}x{height} in {} mode",
        opts.mode.as_str()
    );
    let (stream, _) = tokio::time::timeout(crate::launch::START_TIMEOUT, listener.accept())
        .await
        .map_err(|_| ServerError::NoViewer(crate::launch::START_TIMEOUT))?
        .map_err(|source| ServerError::Io {
            what: "accepting",
            source,
        })?;
    // The socket stays: the launcher checks its mode, then removes its
    // directory when the session ends.
    drop(listener);
    let host = Host::new(width, height, NAME)?;
    let mut clipboard = Clipboard::new(opts.clipboard);
    if let Err(e) = clipboard.enable(&session).await {
        tracing::warn!("no clipboard: {e}");
    }
    let mut server = Server {
        session,
        capture: Some(capture),
        latest,
        host,
        input: Input::new(),
        may_control: opts.input,
        refused_input: false,
        clipboard,
    };
    let result = server.serve(stream).await;
    server.finish().await;
    result
}

/// The size of the first frame newer than `seen`, within [`FIRST_FRAME`].
async fn next_frame(latest: &Latest, seen: u64) -> Result<Option<(u16, u16)>, ServerError> {
    let taken = tokio::time::timeout(FIRST_FRAME, async {
        match latest.wait(seen).await {
            Taken::Frame(g) => Ok(g.frame().map(|f| (f.width, f.height))),
            Taken::Ended(e) => Err(e),
        }
    })
    .await
    .map_err(|_| ServerError::NoFrame(FIRST_FRAME))?;
    Ok(taken?)
}

struct Server {
    session: MutterSession,
    /// `None` only while the stream is being switched.
    capture: Option<Capture>,
    latest: Arc<Latest>,
    host: Host,
    input: Input,
    may_control: bool,
    /// Input was dropped once (logged once).
    refused_input: bool,
    clipboard: Clipboard,
}

impl Server {
    async fn serve(&mut self, stream: UnixStream) -> Result<Outcome, ServerError> {
        let (mut reader, mut writer) = stream.into_split();
        let closed = self.session.closed();
        tokio::pin!(closed);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut seen = 0u64;
        // Its own handle: the frame's lock must not borrow `self`.
        let latest = self.latest.clone();
        loop {
            // The screen as it is now, before answering: a whole-screen
            // request is answered at once, from the latest frame.
            if let Some(g) = latest.newer(seen)? {
                seen = g.seq;
                if let Some(f) = g.frame() {
                    self.set_frame(f)?;
                }
            }
            let out = self.host.take_output()?;
            if !out.is_empty() {
                writer
                    .write_all(&out)
                    .await
                    .map_err(|source| ServerError::Io {
                        what: "writing to the viewer",
                        source,
                    })?;
            }
            let wants_frame = self.host.request_outstanding() || !self.host.is_running();
            tokio::select! {
                r = reader.read(&mut buf) => {
                    let n = r.map_err(|source| ServerError::Io { what: "reading from the viewer", source })?;
                    if n == 0 {
                        return Ok(Outcome::ViewerLeft);
                    }
                    for event in self.host.push(&buf[..n])? {
                        if let Err(e) = self.event(event).await {
                            // A call racing Mutter's close of the session
                            // (her stop in GNOME) fails before `Closed`
                            // arrives: the close is the reason, if it comes.
                            if matches!(e, ServerError::Mutter(_))
                                && let Ok(End::Closed) = tokio::time::timeout(CLOSED_AFTER_ERROR, &mut closed).await
                            {
                                return Ok(Outcome::StoppedInGnome);
                            }
                            return Err(e);
                        }
                    }
                }
                taken = latest.wait(seen), if wants_frame => match taken {
                    Taken::Frame(g) => {
                        seen = g.seq;
                        if let Some(f) = g.frame() {
                            self.set_frame(f)?;
                        }
                    }
                    Taken::Ended(e) => return Err(e.into()),
                },
                text = self.clipboard.from_desktop() => {
                    if let Err(e) = self.host.send_cut_text(&text) {
                        tracing::warn!("clipboard to the viewer: {e}");
                    }
                }
                end = &mut closed => return match end {
                    End::Closed => Ok(Outcome::StoppedInGnome),
                    other => Err(ServerError::MutterEnded(other)),
                },
            }
        }
    }

    /// A refused frame is skipped; the session goes on with the last one.
    fn set_frame(&mut self, f: &super::frames::OwnedFrame) -> Result<(), ServerError> {
        match self.host.set_frame(&f.as_frame()) {
            Err(e) if e.ends_session() => Err(e.into()),
            Err(e) => {
                tracing::warn!("{e}");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// One input event from the viewer.
    async fn event(&mut self, event: HostEvent) -> Result<(), ServerError> {
        // Before anything that could open the RemoteDesktop side: cut
        // text never grants control.
        if let HostEvent::CutText(text) = &event {
            if let Err(e) = self.clipboard.from_viewer(text).await {
                tracing::warn!("clipboard to the desktop: {e}");
            }
            return Ok(());
        }
        if self.session.mode() == Mode::View {
            if !self.may_control {
                if !self.refused_input {
                    self.refused_input = true;
                    tracing::warn!("input in a view-only session: dropped (no RemoteDesktop)");
                }
                return Ok(());
            }
            self.grant_control().await?;
        }
        let calls: Vec<Call> = match event {
            HostEvent::Key { down, keysym } => self.input.key(down, keysym).into_iter().collect(),
            HostEvent::Pointer { buttons, x, y } => self.input.pointer(buttons, x, y),
            HostEvent::CutText(_) => Vec::new(),
        };
        if !calls.is_empty() {
            tracing::debug!(?calls, "input to Mutter");
            self.session.apply(&calls).await?;
        }
        Ok(())
    }

    /// Opens the RemoteDesktop side and reads the new stream. The old
    /// capture stops first: the view-only cast Mutter is about to stop
    /// must not be taken for the end of the screen.
    async fn grant_control(&mut self) -> Result<(), ServerError> {
        tracing::info!("control granted: opening Mutter's RemoteDesktop session");
        self.capture = None;
        let node = match self.session.grant_control().await {
            Ok(stream) => stream.node_id,
            Err(e) => {
                // The view-only cast goes on: read it again.
                self.capture = Some(Capture::start(
                    self.session.stream().node_id,
                    self.latest.clone(),
                )?);
                return Err(e.into());
            }
        };
        let before = self.latest.seq();
        self.capture = Some(Capture::start(node, self.latest.clone())?);
        // Input sent at once was lost on GNOME 43 (the session's virtual
        // devices were not ready): the first frame of the new stream says
        // the session is up, and the technician acts on what is shown.
        next_frame(&self.latest, before).await?;
        tracing::debug!("the RemoteDesktop session's stream is up");
        if let Err(e) = self.clipboard.enable(&self.session).await {
            tracing::warn!("no clipboard: {e}");
        }
        Ok(())
    }

    /// Releases whatever the technician held, then stops the Mutter
    /// session (the compositor's sharing indicator goes).
    async fn finish(mut self) {
        let release = self.input.release_all();
        if !release.is_empty()
            && self.session.mode() == Mode::Control
            && let Err(e) = self.session.apply(&release).await
        {
            tracing::warn!("releasing the technician's keys: {e}");
        }
        self.capture = None;
        if let Err(e) = self.session.stop().await {
            tracing::warn!("stopping the Mutter session: {e}");
        }
    }
}
