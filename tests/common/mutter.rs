//! A fake GNOME Mutter served with zbus on the private bus of `bus.rs`:
//! `org.gnome.Mutter.RemoteDesktop` and `org.gnome.Mutter.ScreenCast` with
//! the rules of Mutter 43 that Accord's client depends on (a RemoteDesktop
//! session must be started before input and `Stop`; a screen cast tied to
//! one cannot be started or stopped on its own; absolute motion names a
//! stream of the tied screen cast; only the creating connection may use a
//! session; the clipboard calls need a started session with the clipboard
//! enabled, and transfers go through real pipes). It records every call it
//! receives, refused ones included.
#![cfg(feature = "mutter")]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use zbus::message::Header;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{OwnedFd, OwnedObjectPath, OwnedValue, Value};
use zbus::{Connection, ObjectServer, fdo, interface};

use super::bus::Bus;

pub const RD_PATH: &str = "/org/gnome/Mutter/RemoteDesktop";
pub const SC_PATH: &str = "/org/gnome/Mutter/ScreenCast";
/// The first PipeWire node the fake announces; then 43, 44…
pub const FIRST_NODE: u32 = 42;

/// A call the fake received.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    RdCreateSession,
    RdStart(String),
    RdStop(String),
    ScCreateSession {
        remote_desktop_session_id: Option<String>,
    },
    RecordMonitor {
        session: String,
        connector: String,
        cursor_mode: Option<u32>,
    },
    ScStart(String),
    ScStop(String),
    Keysym {
        keysym: u32,
        pressed: bool,
    },
    Motion {
        stream: String,
        x: f64,
        y: f64,
    },
    Button {
        button: i32,
        pressed: bool,
    },
    Axis {
        axis: u32,
        steps: i32,
    },
    EnableClipboard,
    DisableClipboard,
    SetSelection {
        mime_types: Vec<String>,
    },
    SelectionRead(String),
    SelectionWrite(u32),
    SelectionWriteDone {
        serial: u32,
        success: bool,
    },
}

impl Seen {
    pub fn is_remote_desktop(&self) -> bool {
        matches!(
            self,
            Seen::RdCreateSession
                | Seen::RdStart(_)
                | Seen::RdStop(_)
                | Seen::Keysym { .. }
                | Seen::Motion { .. }
                | Seen::Button { .. }
                | Seen::Axis { .. }
                | Seen::EnableClipboard
                | Seen::DisableClipboard
                | Seen::SetSelection { .. }
                | Seen::SelectionRead(_)
                | Seen::SelectionWrite(_)
                | Seen::SelectionWriteDone { .. }
        )
    }

    pub fn is_clipboard(&self) -> bool {
        matches!(
            self,
            Seen::EnableClipboard
                | Seen::DisableClipboard
                | Seen::SetSelection { .. }
                | Seen::SelectionRead(_)
                | Seen::SelectionWrite(_)
                | Seen::SelectionWriteDone { .. }
        )
    }
}

struct Remote {
    id: String,
    owner: Option<String>,
    started: bool,
    closed: bool,
    /// Path of the tied screen cast.
    cast: Option<String>,
    clipboard: bool,
}

struct Cast {
    owner: Option<String>,
    /// Path of the RemoteDesktop session it is tied to.
    remote: Option<String>,
    /// (path, PipeWire node).
    streams: Vec<(String, u32)>,
    closed: bool,
}

#[derive(Default)]
struct State {
    seen: Vec<Seen>,
    next: u32,
    remotes: HashMap<String, Remote>,
    casts: HashMap<String, Cast>,
    /// What the desktop's selection holds (`SelectionRead` gives it).
    desktop: Vec<u8>,
    /// What was written through `SelectionWrite`'s fd, by serial, once its
    /// writer closed it.
    written: HashMap<u32, Vec<u8>>,
}

type Shared = Arc<Mutex<State>>;

fn lock(state: &Shared) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn sender(header: &Header<'_>) -> Option<String> {
    header.sender().map(|s| s.to_string())
}

fn failed(msg: &str) -> fdo::Error {
    fdo::Error::Failed(msg.to_owned())
}

fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p.to_owned()).expect("valid object path")
}

async fn emit_closed_remote(conn: &Connection, p: &str) {
    let emitter = SignalEmitter::new(conn, p.to_owned()).expect("path");
    RdSession::closed(&emitter).await.expect("Closed sent");
}

async fn emit_closed_cast(conn: &Connection, p: &str) {
    let emitter = SignalEmitter::new(conn, p.to_owned()).expect("path");
    ScSession::closed(&emitter).await.expect("Closed sent");
}

/// Starts the streams of a screen cast: `PipeWireStreamAdded` on each.
async fn start_streams(conn: &Connection, streams: Vec<(String, u32)>) {
    for (p, node) in streams {
        let emitter = SignalEmitter::new(conn, p).expect("path");
        ScStream::pipewire_stream_added(&emitter, node)
            .await
            .expect("PipeWireStreamAdded sent");
    }
}

/// Closes a RemoteDesktop session and its screen cast, as Mutter's
/// `meta_remote_desktop_session_close` does: `Closed` on both.
async fn close_remote(conn: &Connection, state: &Shared, p: &str) {
    let cast = {
        let mut s = lock(state);
        let Some(r) = s.remotes.get_mut(p) else {
            return;
        };
        r.closed = true;
        r.started = false;
        let cast = r.cast.clone();
        if let Some(c) = cast.as_ref().and_then(|c| s.casts.get_mut(c)) {
            c.closed = true;
        }
        cast
    };
    if let Some(c) = cast {
        emit_closed_cast(conn, &c).await;
    }
    emit_closed_remote(conn, p).await;
}

async fn close_cast(conn: &Connection, state: &Shared, p: &str) {
    let remote = {
        let mut s = lock(state);
        let Some(c) = s.casts.get_mut(p) else {
            return;
        };
        c.closed = true;
        c.remote.clone()
    };
    match remote {
        Some(r) => close_remote(conn, state, &r).await,
        None => emit_closed_cast(conn, p).await,
    }
}

struct RdManager(Shared);

#[interface(name = "org.gnome.Mutter.RemoteDesktop")]
impl RdManager {
    async fn create_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
    ) -> fdo::Result<OwnedObjectPath> {
        let p = {
            let mut s = lock(&self.0);
            s.seen.push(Seen::RdCreateSession);
            s.next += 1;
            let n = s.next;
            let p = format!("{RD_PATH}/Session/u{n}");
            s.remotes.insert(
                p.clone(),
                Remote {
                    id: format!("rd-session-{n}"),
                    owner: sender(&header),
                    started: false,
                    closed: false,
                    cast: None,
                    clipboard: false,
                },
            );
            p
        };
        server
            .at(p.as_str(), RdSession(self.0.clone(), p.clone()))
            .await?;
        Ok(path(&p))
    }
}

struct RdSession(Shared, String);

impl RdSession {
    /// A clipboard call: as input, and the clipboard enabled.
    fn can_clip(&self, header: &Header<'_>, seen: Seen) -> fdo::Result<()> {
        self.can_notify(header, seen)?;
        let enabled = lock(&self.0)
            .remotes
            .get(&self.1)
            .is_some_and(|r| r.clipboard);
        if enabled {
            Ok(())
        } else {
            Err(failed("Clipboard not enabled"))
        }
    }

    /// Mutter's `meta_remote_desktop_session_check_can_notify`.
    fn can_notify(&self, header: &Header<'_>, seen: Seen) -> fdo::Result<()> {
        let mut s = lock(&self.0);
        s.seen.push(seen);
        let r = s
            .remotes
            .get(&self.1)
            .filter(|r| !r.closed)
            .ok_or_else(|| fdo::Error::UnknownObject(self.1.clone()))?;
        if !r.started {
            return Err(failed("Session not started"));
        }
        if r.owner != sender(header) {
            return Err(fdo::Error::AccessDenied("Permission denied".into()));
        }
        Ok(())
    }
}

#[interface(name = "org.gnome.Mutter.RemoteDesktop.Session")]
impl RdSession {
    #[zbus(property)]
    fn session_id(&self) -> String {
        lock(&self.0)
            .remotes
            .get(&self.1)
            .map(|r| r.id.clone())
            .unwrap_or_default()
    }

    async fn start(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        let streams = {
            let mut s = lock(&self.0);
            s.seen.push(Seen::RdStart(self.1.clone()));
            let State { remotes, casts, .. } = &mut *s;
            let r = remotes
                .get_mut(&self.1)
                .filter(|r| !r.closed)
                .ok_or_else(|| fdo::Error::UnknownObject(self.1.clone()))?;
            if r.started {
                return Err(failed("Already started"));
            }
            if r.owner != sender(&header) {
                return Err(fdo::Error::AccessDenied("Permission denied".into()));
            }
            r.started = true;
            r.cast
                .as_ref()
                .and_then(|c| casts.get(c))
                .map(|c| c.streams.clone())
                .unwrap_or_default()
        };
        start_streams(conn, streams).await;
        Ok(())
    }

    async fn stop(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        {
            let mut s = lock(&self.0);
            s.seen.push(Seen::RdStop(self.1.clone()));
            let r = s
                .remotes
                .get(&self.1)
                .filter(|r| !r.closed)
                .ok_or_else(|| fdo::Error::UnknownObject(self.1.clone()))?;
            if !r.started {
                return Err(failed("Session not started"));
            }
            if r.owner != sender(&header) {
                return Err(fdo::Error::AccessDenied("Permission denied".into()));
            }
        }
        close_remote(conn, &self.0, &self.1).await;
        Ok(())
    }

    #[zbus(signal)]
    async fn closed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    fn notify_keyboard_keysym(
        &self,
        #[zbus(header)] header: Header<'_>,
        keysym: u32,
        state: bool,
    ) -> fdo::Result<()> {
        self.can_notify(
            &header,
            Seen::Keysym {
                keysym,
                pressed: state,
            },
        )
    }

    fn notify_pointer_button(
        &self,
        #[zbus(header)] header: Header<'_>,
        button: i32,
        state: bool,
    ) -> fdo::Result<()> {
        self.can_notify(
            &header,
            Seen::Button {
                button,
                pressed: state,
            },
        )
    }

    fn notify_pointer_axis_discrete(
        &self,
        #[zbus(header)] header: Header<'_>,
        axis: u32,
        steps: i32,
    ) -> fdo::Result<()> {
        self.can_notify(&header, Seen::Axis { axis, steps })?;
        if axis > 1 {
            return Err(failed("Invalid axis value"));
        }
        if steps == 0 {
            return Err(failed("Invalid axis steps value"));
        }
        Ok(())
    }

    fn notify_pointer_motion_absolute(
        &self,
        #[zbus(header)] header: Header<'_>,
        stream: String,
        x: f64,
        y: f64,
    ) -> fdo::Result<()> {
        self.can_notify(
            &header,
            Seen::Motion {
                stream: stream.clone(),
                x,
                y,
            },
        )?;
        let s = lock(&self.0);
        let known = s
            .remotes
            .get(&self.1)
            .and_then(|r| r.cast.as_ref())
            .and_then(|c| s.casts.get(c))
            .is_some_and(|c| c.streams.iter().any(|(p, _)| *p == stream));
        if known {
            Ok(())
        } else {
            Err(failed("Unknown stream"))
        }
    }

    fn enable_clipboard(
        &self,
        #[zbus(header)] header: Header<'_>,
        _options: HashMap<String, OwnedValue>,
    ) -> fdo::Result<()> {
        self.can_notify(&header, Seen::EnableClipboard)?;
        let mut s = lock(&self.0);
        let r = s
            .remotes
            .get_mut(&self.1)
            .ok_or_else(|| fdo::Error::UnknownObject(self.1.clone()))?;
        if r.clipboard {
            return Err(failed("Already enabled"));
        }
        r.clipboard = true;
        Ok(())
    }

    fn disable_clipboard(&self, #[zbus(header)] header: Header<'_>) -> fdo::Result<()> {
        self.can_clip(&header, Seen::DisableClipboard)?;
        if let Some(r) = lock(&self.0).remotes.get_mut(&self.1) {
            r.clipboard = false;
        }
        Ok(())
    }

    /// As Mutter, announces the session's own selection.
    async fn set_selection(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
        options: HashMap<String, OwnedValue>,
    ) -> fdo::Result<()> {
        let mime_types = options
            .get("mime-types")
            .map(|v| Vec::<String>::try_from(v.try_clone().expect("clone")))
            .transpose()
            .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?
            .unwrap_or_default();
        self.can_clip(
            &header,
            Seen::SetSelection {
                mime_types: mime_types.clone(),
            },
        )?;
        emit_owner_changed(conn, &self.1, &mime_types, true).await;
        Ok(())
    }

    /// The desktop's selection, written into a pipe by a thread.
    fn selection_read(
        &self,
        #[zbus(header)] header: Header<'_>,
        mime_type: String,
    ) -> fdo::Result<OwnedFd> {
        self.can_clip(&header, Seen::SelectionRead(mime_type))?;
        let content = lock(&self.0).desktop.clone();
        let (reader, mut writer) = std::io::pipe().map_err(|e| failed(&e.to_string()))?;
        std::thread::spawn(move || {
            use std::io::Write as _;
            // The reader may stop early (a selection too long): EPIPE.
            let _ = writer.write_all(&content);
        });
        Ok(OwnedFd::from(std::os::fd::OwnedFd::from(reader)))
    }

    /// A pipe whose other end a thread reads to its end into `written`.
    fn selection_write(
        &self,
        #[zbus(header)] header: Header<'_>,
        serial: u32,
    ) -> fdo::Result<OwnedFd> {
        self.can_clip(&header, Seen::SelectionWrite(serial))?;
        let (mut reader, writer) = std::io::pipe().map_err(|e| failed(&e.to_string()))?;
        let state = self.0.clone();
        std::thread::spawn(move || {
            use std::io::Read as _;
            let mut got = Vec::new();
            let _ = reader.read_to_end(&mut got);
            lock(&state).written.insert(serial, got);
        });
        Ok(OwnedFd::from(std::os::fd::OwnedFd::from(writer)))
    }

    fn selection_write_done(
        &self,
        #[zbus(header)] header: Header<'_>,
        serial: u32,
        success: bool,
    ) -> fdo::Result<()> {
        self.can_clip(&header, Seen::SelectionWriteDone { serial, success })
    }

    #[zbus(signal)]
    async fn selection_owner_changed(
        emitter: &SignalEmitter<'_>,
        options: HashMap<&str, Value<'_>>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn selection_transfer(
        emitter: &SignalEmitter<'_>,
        mime_type: &str,
        serial: u32,
    ) -> zbus::Result<()>;
}

async fn emit_owner_changed(conn: &Connection, p: &str, mime_types: &[String], own: bool) {
    let emitter = SignalEmitter::new(conn, p.to_owned()).expect("path");
    let options = HashMap::from([
        // As Mutter sends it: the list inside a tuple, `(as)` (SetSelection
        // takes a bare `as`).
        (
            "mime-types",
            Value::from(zbus::zvariant::Structure::from((mime_types.to_vec(),))),
        ),
        ("session-is-owner", Value::from(own)),
    ]);
    RdSession::selection_owner_changed(&emitter, options)
        .await
        .expect("SelectionOwnerChanged sent");
}

struct ScManager(Shared);

#[interface(name = "org.gnome.Mutter.ScreenCast")]
impl ScManager {
    async fn create_session(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        properties: HashMap<String, OwnedValue>,
    ) -> fdo::Result<OwnedObjectPath> {
        let id = properties
            .get("remote-desktop-session-id")
            .map(|v| String::try_from(v.clone()))
            .transpose()
            .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        let p = {
            let mut s = lock(&self.0);
            s.seen.push(Seen::ScCreateSession {
                remote_desktop_session_id: id.clone(),
            });
            s.next += 1;
            let p = format!("{SC_PATH}/Session/u{}", s.next);
            let remote = match &id {
                None => None,
                Some(id) => {
                    let (rp, r) = s
                        .remotes
                        .iter_mut()
                        .find(|(_, r)| &r.id == id && !r.closed)
                        .ok_or_else(|| failed("No remote desktop session found"))?;
                    if r.cast.is_some() {
                        return Err(failed(
                            "Remote desktop session already have an associated screen cast session",
                        ));
                    }
                    r.cast = Some(p.clone());
                    Some(rp.clone())
                }
            };
            s.casts.insert(
                p.clone(),
                Cast {
                    owner: sender(&header),
                    remote,
                    streams: Vec::new(),
                    closed: false,
                },
            );
            p
        };
        server
            .at(p.as_str(), ScSession(self.0.clone(), p.clone()))
            .await?;
        Ok(path(&p))
    }
}

struct ScSession(Shared, String);

impl ScSession {
    fn check(&self, header: &Header<'_>, seen: Seen) -> fdo::Result<Option<String>> {
        let mut s = lock(&self.0);
        s.seen.push(seen);
        let c = s
            .casts
            .get(&self.1)
            .filter(|c| !c.closed)
            .ok_or_else(|| fdo::Error::UnknownObject(self.1.clone()))?;
        if c.owner != sender(header) {
            return Err(fdo::Error::AccessDenied("Permission denied".into()));
        }
        Ok(c.remote.clone())
    }
}

#[interface(name = "org.gnome.Mutter.ScreenCast.Session")]
impl ScSession {
    async fn start(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        if self
            .check(&header, Seen::ScStart(self.1.clone()))?
            .is_some()
        {
            return Err(failed("Must be started from remote desktop session"));
        }
        let streams = lock(&self.0)
            .casts
            .get(&self.1)
            .map(|c| c.streams.clone())
            .unwrap_or_default();
        start_streams(conn, streams).await;
        Ok(())
    }

    async fn stop(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(connection)] conn: &Connection,
    ) -> fdo::Result<()> {
        if self.check(&header, Seen::ScStop(self.1.clone()))?.is_some() {
            return Err(failed("Must be stopped from remote desktop session"));
        }
        close_cast(conn, &self.0, &self.1).await;
        Ok(())
    }

    #[zbus(signal)]
    async fn closed(emitter: &SignalEmitter<'_>) -> zbus::Result<()>;

    async fn record_monitor(
        &self,
        #[zbus(header)] header: Header<'_>,
        #[zbus(object_server)] server: &ObjectServer,
        connector: String,
        properties: HashMap<String, OwnedValue>,
    ) -> fdo::Result<OwnedObjectPath> {
        let cursor_mode = properties
            .get("cursor-mode")
            .map(|v| u32::try_from(v.clone()))
            .transpose()
            .map_err(|e| fdo::Error::InvalidArgs(e.to_string()))?;
        self.check(
            &header,
            Seen::RecordMonitor {
                session: self.1.clone(),
                connector: connector.clone(),
                cursor_mode,
            },
        )?;
        if !connector.is_empty() && connector != "Virtual-1" {
            return Err(failed("Unknown monitor"));
        }
        if cursor_mode.is_some_and(|m| m > 2) {
            return Err(failed("Unknown cursor mode"));
        }
        let p = {
            let mut s = lock(&self.0);
            s.next += 1;
            let p = format!("{SC_PATH}/Stream/u{}", s.next);
            let node = FIRST_NODE
                + s.casts
                    .values()
                    .map(|c| c.streams.len() as u32)
                    .sum::<u32>();
            if let Some(c) = s.casts.get_mut(&self.1) {
                c.streams.push((p.clone(), node));
            }
            p
        };
        server.at(p.as_str(), ScStream).await?;
        Ok(path(&p))
    }
}

struct ScStream;

#[interface(name = "org.gnome.Mutter.ScreenCast.Stream")]
impl ScStream {
    #[zbus(signal, name = "PipeWireStreamAdded")]
    async fn pipewire_stream_added(emitter: &SignalEmitter<'_>, node_id: u32) -> zbus::Result<()>;
}

/// Mutter as far as Accord asks it, owning both names on one connection
/// (as gnome-shell does).
pub struct FakeMutter {
    conn: Connection,
    state: Shared,
}

impl FakeMutter {
    pub async fn start(bus: &Bus) -> FakeMutter {
        let state = Shared::default();
        let conn = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .serve_at(RD_PATH, RdManager(state.clone()))
            .unwrap()
            .serve_at(SC_PATH, ScManager(state.clone()))
            .unwrap()
            .name("org.gnome.Mutter.RemoteDesktop")
            .unwrap()
            .name("org.gnome.Mutter.ScreenCast")
            .unwrap()
            .build()
            .await
            .expect("fake Mutter on the bus");
        FakeMutter { conn, state }
    }

    /// Every call received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.state).seen.clone()
    }

    /// Waits (up to 5 s) until a received call matches.
    pub async fn wait_for(&self, what: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(s) = self.seen().into_iter().find(|s| what(s)) {
                return s;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not seen; seen: {:?}",
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The `SessionId` of the RemoteDesktop session at `path`.
    pub fn session_id(&self, path: &str) -> Option<String> {
        lock(&self.state).remotes.get(path).map(|r| r.id.clone())
    }

    /// Sessions not closed: (RemoteDesktop, ScreenCast).
    pub fn open_sessions(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (
            s.remotes.values().filter(|r| !r.closed).count(),
            s.casts.values().filter(|c| !c.closed).count(),
        )
    }

    /// Mutter closes every open session (the clinician stopped sharing
    /// from GNOME's menu): `Closed` on each.
    pub async fn close_all(&self) {
        let (remotes, casts): (Vec<String>, Vec<String>) = {
            let s = lock(&self.state);
            (
                s.remotes
                    .iter()
                    .filter(|(_, r)| !r.closed)
                    .map(|(p, _)| p.clone())
                    .collect(),
                s.casts
                    .iter()
                    .filter(|(_, c)| !c.closed && c.remote.is_none())
                    .map(|(p, _)| p.clone())
                    .collect(),
            )
        };
        for p in remotes {
            close_remote(&self.conn, &self.state, &p).await;
        }
        for p in casts {
            close_cast(&self.conn, &self.state, &p).await;
        }
    }

    /// RemoteDesktop sessions with the clipboard enabled.
    fn clipboard_sessions(&self) -> Vec<String> {
        lock(&self.state)
            .remotes
            .iter()
            .filter(|(_, r)| !r.closed && r.clipboard)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// A desktop application copies `content` as `mime_types`:
    /// `SelectionOwnerChanged` (not the session's) on every session with the
    /// clipboard enabled.
    pub async fn desktop_copies(&self, mime_types: &[&str], content: &[u8]) {
        lock(&self.state).desktop = content.to_vec();
        let types: Vec<String> = mime_types.iter().map(|m| m.to_string()).collect();
        for p in self.clipboard_sessions() {
            emit_owner_changed(&self.conn, &p, &types, false).await;
        }
    }

    /// A desktop application pastes the session's selection: a
    /// `SelectionTransfer` of `serial` on every session with the clipboard
    /// enabled.
    pub async fn desktop_pastes(&self, mime_type: &str, serial: u32) {
        for p in self.clipboard_sessions() {
            let emitter = SignalEmitter::new(&self.conn, p).expect("path");
            RdSession::selection_transfer(&emitter, mime_type, serial)
                .await
                .expect("SelectionTransfer sent");
        }
    }

    /// What was written for `serial`, once the writer closed its fd (up to
    /// 5 s).
    pub async fn written(&self, serial: u32) -> Vec<u8> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(w) = lock(&self.state).written.get(&serial) {
                return w.clone();
            }
            assert!(tokio::time::Instant::now() < deadline, "nothing written");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// gnome-shell exits: its connection closes, both names are released,
    /// no `Closed` is sent.
    pub async fn vanish(self) {
        self.conn.close().await.unwrap();
    }
}
