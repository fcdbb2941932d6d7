//! One Accord session's share of Mutter: the screen cast that feeds the
//! screen server's frames and, in control only, the RemoteDesktop session
//! that injects the technician's input.
//!
//! View only is enforced at the source: a view-only [`MutterSession`] opens
//! a plain screen cast and no RemoteDesktop session at all, so the
//! compositor has no input device to give, whatever the RFB side lets
//! through. Mutter ties a screen cast to a RemoteDesktop session only when
//! the screen cast is created (`remote-desktop-session-id`); it cannot be
//! attached later. So [`MutterSession::grant_control`] opens a new
//! RemoteDesktop + screen cast pair, and only once its stream is up stops the
//! view-only screen cast: the caller must switch to the new PipeWire node.
//!
//! Mutter closes every session of a D-Bus connection when that connection
//! closes: the connection given to [`MutterSession::open`] must live as long
//! as the screen server (the session keeps a clone of it).

use std::collections::HashMap;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use zbus::Connection;
use zbus::export::futures_core::Stream as SignalStream;
use zbus::proxy::CacheProperties;
use zbus::zvariant::{OwnedObjectPath, Value};

use super::input::Call;
use super::proxy::remote_desktop::{RemoteDesktopProxy, RemoteDesktopSessionProxy};
use super::proxy::screen_cast::{ScreenCastProxy, ScreenCastSessionProxy, ScreenCastStreamProxy};
use crate::protocol::Mode;

/// A Mutter that does not answer in this time counts as gone: the screen
/// server ends rather than stalls with the technician's input in flight.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// From `Start` to `PipeWireStreamAdded`: Mutter creates the PipeWire node
/// at once; a wait this long means no screen to share.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum MutterError {
    #[error("Mutter did not answer {call} within {timeout:?}")]
    Timeout {
        call: &'static str,
        timeout: Duration,
    },
    /// Includes "no such name" when Mutter is not on the bus (not a GNOME
    /// Wayland session).
    #[error("Mutter's {call} failed: {source}")]
    Call {
        call: &'static str,
        #[source]
        source: zbus::Error,
    },
    #[error("Mutter announced no PipeWire stream within {0:?} of Start")]
    NoStream(Duration),
    #[error("Mutter closed the session while it was being opened ({0:?})")]
    ClosedEarly(End),
    #[error("input refused: the Mutter session is view only")]
    ViewOnly,
}

/// Whether GNOME's Mutter offers its remote-desktop API on this process's
/// session bus (both `org.gnome.Mutter.RemoteDesktop` and `.ScreenCast`
/// have an owner). `false` when there is no session bus, or no answer
/// within [`CALL_TIMEOUT`].
pub async fn available() -> bool {
    let check = async {
        let conn = Connection::session().await.ok()?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
        for name in [
            "org.gnome.Mutter.RemoteDesktop",
            "org.gnome.Mutter.ScreenCast",
        ] {
            let name = zbus::names::BusName::try_from(name).ok()?;
            if !dbus.name_has_owner(name).await.ok()? {
                return Some(false);
            }
        }
        Some(true)
    };
    matches!(
        tokio::time::timeout(CALL_TIMEOUT, check).await,
        Ok(Some(true))
    )
}

/// Why a [`MutterSession`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// Mutter sent `Closed` for the screen cast or the RemoteDesktop
    /// session (the clinician stopped the sharing from GNOME's menu, or a
    /// monitor change ended the stream).
    Closed,
    /// The Mutter names left the bus (gnome-shell exited or crashed).
    MutterGone,
    /// The bus connection closed.
    Disconnected,
    /// [`MutterSession::stop`], or the session was dropped.
    Stopped,
}

/// What to record.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Monitor connector (`"DP-1"`); empty: the primary monitor.
    pub connector: String,
    pub cursor: CursorMode,
}

/// `RecordMonitor`'s `cursor-mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CursorMode {
    Hidden = 0,
    /// Drawn into the frames: any VNC viewer shows it, no cursor encoding
    /// needed.
    #[default]
    Embedded = 1,
    /// Sent as PipeWire metadata, for a server with a cursor encoding.
    Metadata = 2,
}

/// The PipeWire stream to read the screen from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    /// The PipeWire node (`PipeWireStreamAdded`).
    pub node_id: u32,
    /// Mutter's stream object: absolute pointer motion is relative to it.
    pub path: OwnedObjectPath,
}

/// A screen cast, with a RemoteDesktop session in control mode.
pub struct MutterSession {
    conn: Connection,
    options: Options,
    pair: Pair,
    ended: watch::Sender<Option<End>>,
    stopped: bool,
}

impl MutterSession {
    /// Opens the session and waits for its PipeWire stream.
    ///
    /// Control: `RemoteDesktop.CreateSession`, its `SessionId`,
    /// `ScreenCast.CreateSession({remote-desktop-session-id})`,
    /// `RecordMonitor`, `RemoteDesktop.Session.Start`. View: the same
    /// without any RemoteDesktop call, the screen cast's own `Start`.
    pub async fn open(
        conn: &Connection,
        mode: Mode,
        options: Options,
    ) -> Result<MutterSession, MutterError> {
        let (ended, _) = watch::channel(None);
        let pair = Pair::open(conn, mode, &options, ended.clone()).await?;
        Ok(MutterSession {
            conn: conn.clone(),
            options,
            pair,
            ended,
            stopped: false,
        })
    }

    pub fn mode(&self) -> Mode {
        self.pair.mode
    }

    /// The stream to read frames from; it changes with
    /// [`MutterSession::grant_control`].
    pub fn stream(&self) -> &Stream {
        &self.pair.stream
    }

    /// The RemoteDesktop session, in control only: the clipboard goes
    /// through it.
    pub(crate) fn remote_desktop(&self) -> Option<&RemoteDesktopSessionProxy<'static>> {
        self.pair.remote.as_ref()
    }

    /// From view only to control: opens a RemoteDesktop + screen cast pair,
    /// then stops the view-only screen cast, and returns the new stream,
    /// which the caller must read from now on. In control already: the
    /// current stream. On error the view-only session goes on untouched.
    pub async fn grant_control(&mut self) -> Result<&Stream, MutterError> {
        if self.pair.mode == Mode::Control {
            return Ok(&self.pair.stream);
        }
        let pair = Pair::open(&self.conn, Mode::Control, &self.options, self.ended.clone()).await?;
        let old = std::mem::replace(&mut self.pair, pair);
        if let Err(e) = old.stop().await {
            // Its input side never existed; a lingering view-only cast ends
            // with the connection.
            tracing::warn!("stopping the view-only screen cast: {e}");
        }
        Ok(&self.pair.stream)
    }

    /// Sends the calls in order, each waiting for Mutter's answer, so that
    /// nothing of the technician's input is still queued after an error or
    /// a `release_all`. View only: refused without a D-Bus call.
    pub async fn apply(&self, calls: &[Call]) -> Result<(), MutterError> {
        let Some(remote) = &self.pair.remote else {
            return Err(MutterError::ViewOnly);
        };
        let stream = self.pair.stream.path.as_str();
        for call in calls {
            match *call {
                Call::Keysym { keysym, pressed } => {
                    bounded(
                        "NotifyKeyboardKeysym",
                        remote.notify_keyboard_keysym(keysym, pressed),
                    )
                    .await?
                }
                Call::MotionAbsolute { x, y } => {
                    bounded(
                        "NotifyPointerMotionAbsolute",
                        remote.notify_pointer_motion_absolute(stream, x, y),
                    )
                    .await?
                }
                Call::Button { button, pressed } => {
                    bounded(
                        "NotifyPointerButton",
                        remote.notify_pointer_button(button, pressed),
                    )
                    .await?
                }
                Call::AxisDiscrete { axis, steps } => {
                    bounded(
                        "NotifyPointerAxisDiscrete",
                        remote.notify_pointer_axis_discrete(axis as u32, steps),
                    )
                    .await?
                }
            }
        }
        Ok(())
    }

    /// Resolves when Mutter ends the session (either session's `Closed`,
    /// Mutter leaving the bus, the bus closing) or it is stopped. Owns what
    /// it needs, so that it can be awaited beside calls on `&mut self`.
    pub fn closed(&self) -> impl Future<Output = End> + Send + 'static {
        let mut ended = self.ended.subscribe();
        async move {
            match ended.wait_for(Option::is_some).await {
                Ok(end) => end.unwrap_or(End::Stopped),
                Err(_) => End::Stopped,
            }
        }
    }

    /// Stops the session (`Stop` on the RemoteDesktop session in control,
    /// which closes its screen cast too; on the screen cast in view only).
    pub async fn stop(mut self) -> Result<(), MutterError> {
        self.stopped = true;
        set_end(&self.ended, End::Stopped);
        self.pair.stop().await
    }
}

impl Drop for MutterSession {
    /// Dropped without [`MutterSession::stop`] (the screen server's task
    /// ended on an error): `Stop` is sent from a task of the current tokio
    /// runtime. Without a runtime the session ends with the connection.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        set_end(&self.ended, End::Stopped);
        self.pair.watcher.abort();
        let stop = self.pair.stopper();
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = stop.run().await {
                        tracing::debug!("stopping the dropped Mutter session: {e}");
                    }
                });
            }
            Err(_) => tracing::debug!("Mutter session dropped outside a runtime: not stopped"),
        }
    }
}

/// The sessions Mutter opened for one mode.
struct Pair {
    mode: Mode,
    /// Control only.
    remote: Option<RemoteDesktopSessionProxy<'static>>,
    cast: ScreenCastSessionProxy<'static>,
    stream: Stream,
    /// Turns Mutter's `Closed` and its leaving the bus into [`End`].
    watcher: JoinHandle<()>,
}

/// What stops a pair, owned, for [`Drop`].
enum Stopper {
    Remote(RemoteDesktopSessionProxy<'static>),
    Cast(ScreenCastSessionProxy<'static>),
}

impl Stopper {
    async fn run(self) -> Result<(), MutterError> {
        match self {
            Stopper::Remote(p) => bounded("RemoteDesktop.Session.Stop", p.stop()).await,
            Stopper::Cast(p) => bounded("ScreenCast.Session.Stop", p.stop()).await,
        }
    }
}

impl Pair {
    async fn open(
        conn: &Connection,
        mode: Mode,
        options: &Options,
        ended: watch::Sender<Option<End>>,
    ) -> Result<Pair, MutterError> {
        let mut partial = Partial::default();
        match Pair::build(conn, mode, options, ended, &mut partial).await {
            Ok(pair) => Ok(pair),
            Err(e) => {
                partial.abandon().await;
                Err(e)
            }
        }
    }

    async fn build(
        conn: &Connection,
        mode: Mode,
        options: &Options,
        ended: watch::Sender<Option<End>>,
        partial: &mut Partial,
    ) -> Result<Pair, MutterError> {
        let mut events = Events::default();
        let mut properties: HashMap<&str, Value<'_>> = HashMap::new();
        let remote = match mode {
            Mode::View => None,
            Mode::Control => {
                let manager = proxy::<RemoteDesktopProxy>(conn, "RemoteDesktop", None).await?;
                events.watch_owner(manager.inner()).await?;
                let path = bounded("RemoteDesktop.CreateSession", manager.create_session()).await?;
                let session =
                    proxy::<RemoteDesktopSessionProxy>(conn, "RemoteDesktop.Session", Some(path))
                        .await?;
                partial.remote = Some(session.clone());
                events.closed.push(Box::pin(
                    bounded("Closed", session.receive_closed())
                        .await?
                        .map_closed(),
                ));
                let id = bounded("RemoteDesktop.Session.SessionId", session.session_id()).await?;
                properties.insert("remote-desktop-session-id", Value::from(id));
                Some(session)
            }
        };

        let manager = proxy::<ScreenCastProxy>(conn, "ScreenCast", None).await?;
        events.watch_owner(manager.inner()).await?;
        let path = bounded(
            "ScreenCast.CreateSession",
            manager.create_session(properties),
        )
        .await?;
        let cast = proxy::<ScreenCastSessionProxy>(conn, "ScreenCast.Session", Some(path)).await?;
        partial.cast = Some(cast.clone());
        events.closed.push(Box::pin(
            bounded("Closed", cast.receive_closed()).await?.map_closed(),
        ));
        let record = HashMap::from([("cursor-mode", Value::from(options.cursor as u32))]);
        let stream_path = bounded(
            "ScreenCast.Session.RecordMonitor",
            cast.record_monitor(&options.connector, record),
        )
        .await?;
        let stream =
            proxy::<ScreenCastStreamProxy>(conn, "ScreenCast.Stream", Some(stream_path.clone()))
                .await?;
        // Subscribed before Start, which makes Mutter announce the node.
        let mut added = bounded(
            "PipeWireStreamAdded",
            stream.receive_pipewire_stream_added(),
        )
        .await?;
        match &remote {
            Some(session) => {
                bounded("RemoteDesktop.Session.Start", session.start()).await?;
                partial.remote_started = true;
            }
            None => bounded("ScreenCast.Session.Start", cast.start()).await?,
        }
        let node = tokio::time::timeout(STREAM_TIMEOUT, async {
            tokio::select! {
                signal = next(&mut added) => match signal {
                    Some(signal) => signal.args().map(|a| a.node_id).map_err(|source| MutterError::Call {
                        call: "PipeWireStreamAdded",
                        source,
                    }),
                    None => Err(MutterError::ClosedEarly(End::Disconnected)),
                },
                end = events.next() => Err(MutterError::ClosedEarly(end)),
            }
        })
        .await
        .map_err(|_| MutterError::NoStream(STREAM_TIMEOUT))??;

        let watcher = tokio::spawn(async move {
            set_end(&ended, events.next().await);
        });
        Ok(Pair {
            mode,
            remote,
            cast,
            stream: Stream {
                node_id: node,
                path: stream_path,
            },
            watcher,
        })
    }

    fn stopper(&self) -> Stopper {
        match &self.remote {
            Some(remote) => Stopper::Remote(remote.clone()),
            None => Stopper::Cast(self.cast.clone()),
        }
    }

    /// Stops the pair; its `Closed` is not an [`End`] any more.
    async fn stop(&self) -> Result<(), MutterError> {
        self.watcher.abort();
        self.stopper().run().await
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// What an [`Pair::open`] that failed half way leaves behind.
#[derive(Default)]
struct Partial {
    remote: Option<RemoteDesktopSessionProxy<'static>>,
    remote_started: bool,
    cast: Option<ScreenCastSessionProxy<'static>>,
}

impl Partial {
    /// Best effort: Mutter refuses `Stop` on a RemoteDesktop session not
    /// started (which grants nothing yet) and on its tied screen cast; those
    /// end with the connection.
    async fn abandon(self) {
        let result = match (self.remote, self.cast) {
            (Some(remote), _) if self.remote_started => Stopper::Remote(remote).run().await,
            (None, Some(cast)) => Stopper::Cast(cast).run().await,
            _ => Ok(()),
        };
        if let Err(e) = result {
            tracing::debug!("abandoning a half-open Mutter session: {e}");
        }
    }
}

type EndStream = Pin<Box<dyn SignalStream<Item = End> + Send>>;

/// The signals that end a pair.
#[derive(Default)]
struct Events {
    closed: Vec<EndStream>,
}

impl Events {
    /// Mutter leaving the bus ends the session: its sessions die with it
    /// and no `Closed` is sent.
    async fn watch_owner(&mut self, proxy: &zbus::Proxy<'static>) -> Result<(), MutterError> {
        let owner = bounded("NameOwnerChanged", proxy.receive_owner_changed()).await?;
        self.closed.push(Box::pin(Mapped {
            inner: owner,
            map: |_| End::MutterGone,
        }));
        Ok(())
    }

    /// The first end any of them reports; [`End::Disconnected`] when a
    /// stream ends (the connection closed).
    async fn next(&mut self) -> End {
        if self.closed.is_empty() {
            return std::future::pending().await;
        }
        poll_fn(|cx| {
            for s in self.closed.iter_mut() {
                match s.as_mut().poll_next(cx) {
                    std::task::Poll::Ready(Some(end)) => return std::task::Poll::Ready(end),
                    std::task::Poll::Ready(None) => {
                        return std::task::Poll::Ready(End::Disconnected);
                    }
                    std::task::Poll::Pending => {}
                }
            }
            std::task::Poll::Pending
        })
        .await
    }
}

/// A stream with each item replaced by `map(item)`: zbus exports
/// `futures_core` only, not its combinators.
struct Mapped<S, F> {
    inner: S,
    map: F,
}

impl<S, F> SignalStream for Mapped<S, F>
where
    S: SignalStream + Unpin,
    F: Fn(S::Item) -> End + Unpin,
{
    type Item = End;
    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<End>> {
        let this = &mut *self;
        Pin::new(&mut this.inner)
            .poll_next(cx)
            .map(|item| item.map(&this.map))
    }
}

trait MapClosed: Sized {
    fn map_closed(self) -> Mapped<Self, fn(<Self as SignalStream>::Item) -> End>
    where
        Self: SignalStream;
}

impl<S: SignalStream + Unpin> MapClosed for S {
    fn map_closed(self) -> Mapped<Self, fn(S::Item) -> End> {
        Mapped {
            inner: self,
            map: |_| End::Closed,
        }
    }
}

async fn next<S: SignalStream + Unpin>(s: &mut S) -> Option<S::Item> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

/// The first end is the one reported.
fn set_end(ended: &watch::Sender<Option<End>>, end: End) {
    ended.send_if_modified(|e| {
        let first = e.is_none();
        e.get_or_insert(end);
        first
    });
}

/// Every call to Mutter, bounded by [`CALL_TIMEOUT`].
/// A proxy on `conn` (at `path`, else the interface's default one), without
/// a property cache (Mutter's objects are asked, not watched).
async fn proxy<T>(
    conn: &Connection,
    call: &'static str,
    path: Option<OwnedObjectPath>,
) -> Result<T, MutterError>
where
    T: From<zbus::Proxy<'static>> + zbus::proxy::Defaults,
{
    let mut builder = zbus::proxy::Builder::<T>::new(conn).cache_properties(CacheProperties::No);
    if let Some(path) = path {
        builder = builder
            .path(path)
            .map_err(|source| MutterError::Call { call, source })?;
    }
    bounded(call, builder.build()).await
}

pub(super) async fn bounded<T>(
    call: &'static str,
    future: impl Future<Output = zbus::Result<T>>,
) -> Result<T, MutterError> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(source)) => Err(MutterError::Call { call, source }),
        Err(_) => Err(MutterError::Timeout {
            call,
            timeout: CALL_TIMEOUT,
        }),
    }
}
