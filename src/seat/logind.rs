//! logind's view of a seat (docs/architecture.md, "Who is asked"): the session in front of
//! the screen and its lock, for [`super::rule::choose`].
//!
//! Every fact is read with method calls to the bus name
//! `org.freedesktop.login1`, which only root may own on the system bus.
//! Signals only say when to read again: a forged `PropertiesChanged` costs a
//! read, never a wrong answer.

use std::collections::HashMap;
use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use zbus::export::futures_core::Stream;
use zbus::message::Type as MessageType;
use zbus::zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};
use zbus::{Connection, MatchRule, Message, MessageStream};

use super::rule::{LoginSession, SeatView, is_graphical};

const SERVICE: &str = "org.freedesktop.login1";
const MANAGER_PATH: &str = "/org/freedesktop/login1";
const MANAGER: &str = "org.freedesktop.login1.Manager";
const SEAT: &str = "org.freedesktop.login1.Seat";
const SESSION: &str = "org.freedesktop.login1.Session";
const USER: &str = "org.freedesktop.login1.User";
const PROPERTIES: &str = "org.freedesktop.DBus.Properties";

/// A call logind does not answer in this time counts as logind gone (fail
/// closed) instead of stalling the watch.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Safety net for a missed signal.
const POLL: Duration = Duration::from_secs(5);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
/// How long reads may fail before the seat counts as nobody's: a hiccup of
/// logind or the bus must not end a consented session `user_switched`.
pub const FAIL_GRACE: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Error names that mean "nobody answers", as opposed to logind refusing.
const GONE: &[&str] = &[
    "org.freedesktop.DBus.Error.ServiceUnknown",
    "org.freedesktop.DBus.Error.NameHasNoOwner",
    "org.freedesktop.DBus.Error.NoReply",
    "org.freedesktop.DBus.Error.Timeout",
    "org.freedesktop.DBus.Error.TimedOut",
    "org.freedesktop.DBus.Error.Disconnected",
    "org.freedesktop.DBus.Error.NoServer",
];

#[derive(Debug, thiserror::Error)]
pub enum LogindError {
    #[error("cannot connect to the system bus: {0}")]
    Bus(String),
    #[error("the system bus connection was lost")]
    Lost,
    #[error("logind unreachable on the system bus: {0}")]
    Unreachable(String),
    #[error("logind refused {call}: {detail}")]
    Refused { call: String, detail: String },
    #[error("logind answered {call} with something unexpected: {detail}")]
    BadReply { call: String, detail: String },
}

/// A connection to the system bus, to ask logind.
pub struct Logind {
    conn: Connection,
    /// Where `conn` leads (`None`: the system bus), to reconnect a watch
    /// after the bus restarts.
    address: Option<String>,
}

impl Logind {
    /// Connects to the system bus (`DBUS_SYSTEM_BUS_ADDRESS` if set). Calls
    /// time out after 5 s: a hung logind counts as gone, never as an answer.
    pub async fn connect() -> Result<Logind, LogindError> {
        Ok(Logind {
            conn: open(None).await?,
            address: None,
        })
    }

    /// Connects to the bus at `address` (a D-Bus address such as
    /// `unix:path=/run/dbus/system_bus_socket`): tests run a private bus
    /// each, which one process-wide environment variable cannot select.
    pub async fn connect_to(address: &str) -> Result<Logind, LogindError> {
        Ok(Logind {
            conn: open(Some(address)).await?,
            address: Some(address.to_owned()),
        })
    }

    /// logind's session id of a process (`GetSessionByPID`, then the
    /// session's `Id`). `Ok(None)` when the pid belongs to no session.
    pub async fn session_of_pid(&self, pid: u32) -> Result<Option<String>, LogindError> {
        match self
            .object_of_pid("GetSessionByPID", "NoSessionForPID", pid)
            .await?
        {
            Some(path) => Ok(Some(property(&self.conn, &path, SESSION, "Id").await?)),
            None => Ok(None),
        }
    }

    /// The uid whose logind user a process belongs to (`GetUserByPID`,
    /// then the user's `UID`): a process of `user@UID.service` (a user
    /// unit, as GNOME and Plasma start autostart entries) belongs to no
    /// session but to its user. `Ok(None)` when logind knows no user for it.
    pub async fn user_of_pid(&self, pid: u32) -> Result<Option<u32>, LogindError> {
        match self
            .object_of_pid("GetUserByPID", "NoUserForPID", pid)
            .await?
        {
            Some(path) => Ok(Some(property(&self.conn, &path, USER, "UID").await?)),
            None => Ok(None),
        }
    }

    /// The object logind's `method` (`Get…ByPID`) names for `pid`;
    /// `Ok(None)` when it answers with the error `none` (no such object).
    async fn object_of_pid(
        &self,
        method: &str,
        none: &str,
        pid: u32,
    ) -> Result<Option<OwnedObjectPath>, LogindError> {
        // For pid 0 logind answers about the caller itself; SO_PEERCRED
        // gives 0 for a peer in another pid namespace.
        if pid == 0 {
            return Ok(None);
        }
        let manager = ObjectPath::from_static_str_unchecked(MANAGER_PATH);
        match self
            .conn
            .call_method(Some(SERVICE), &manager, Some(MANAGER), method, &(pid,))
            .await
        {
            Ok(reply) => Ok(Some(body(&reply, method)?)),
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str().strip_prefix("org.freedesktop.login1.") == Some(none) =>
            {
                Ok(None)
            }
            Err(e) => Err(call_error(method, e)),
        }
    }

    /// Watches a seat (`"seat0"`): its active session and that session's
    /// lock. Changes arrive within milliseconds of logind's
    /// `PropertiesChanged`; a read every 5 s catches a missed signal. While
    /// logind is gone or failing the value is [`SeatView::default`] (nobody
    /// active: fail closed) and the watch retries with backoff. It stops
    /// when every receiver is dropped. Runs as a task of the current tokio
    /// runtime.
    ///
    /// Errs when the seat cannot be read now (logind absent, no such seat),
    /// so that a wrong setup is reported at start rather than as a silent
    /// "nobody is active".
    pub async fn watch_seat(&self, seat: &str) -> Result<watch::Receiver<SeatView>, LogindError> {
        // Subscribed before the first read: no change falls in between.
        let signals = Signals::subscribe(&self.conn).await?;
        let first = read_seat(&self.conn, seat).await?;
        let (tx, rx) = watch::channel(first);
        let watch = SeatWatch {
            conn: self.conn.clone(),
            address: self.address.clone(),
            seat: seat.to_owned(),
            tx,
            last_error: None,
            failing_since: None,
        };
        tokio::spawn(watch.run(signals));
        Ok(rx)
    }
}

async fn open(address: Option<&str>) -> Result<Connection, LogindError> {
    let builder = match address {
        None => zbus::connection::Builder::system(),
        Some(a) => zbus::connection::Builder::address(a),
    }
    .map_err(bus_error)?;
    builder
        .method_timeout(CALL_TIMEOUT)
        .build()
        .await
        .map_err(bus_error)
}

fn bus_error(error: zbus::Error) -> LogindError {
    LogindError::Bus(error.to_string())
}

fn call_error(call: &str, error: zbus::Error) -> LogindError {
    match &error {
        zbus::Error::MethodError(name, _, _) if !GONE.contains(&name.as_str()) => {
            LogindError::Refused {
                call: call.to_owned(),
                detail: error.to_string(),
            }
        }
        _ => LogindError::Unreachable(error.to_string()),
    }
}

fn body<T>(reply: &Message, call: &str) -> Result<T, LogindError>
where
    T: serde::de::DeserializeOwned + zbus::zvariant::Type,
{
    reply
        .body()
        .deserialize()
        .map_err(|e| LogindError::BadReply {
            call: call.to_owned(),
            detail: e.to_string(),
        })
}

fn convert<T>(value: OwnedValue, call: &str) -> Result<T, LogindError>
where
    T: TryFrom<OwnedValue>,
    T::Error: std::fmt::Display,
{
    T::try_from(value).map_err(|e| LogindError::BadReply {
        call: call.to_owned(),
        detail: e.to_string(),
    })
}

async fn call<B>(
    conn: &Connection,
    path: &ObjectPath<'_>,
    interface: &str,
    method: &str,
    args: &B,
) -> Result<Message, LogindError>
where
    B: serde::Serialize + zbus::zvariant::DynamicType,
{
    conn.call_method(Some(SERVICE), path, Some(interface), method, args)
        .await
        .map_err(|e| call_error(method, e))
}

async fn property<T>(
    conn: &Connection,
    path: &ObjectPath<'_>,
    interface: &str,
    name: &str,
) -> Result<T, LogindError>
where
    T: TryFrom<OwnedValue>,
    T::Error: std::fmt::Display,
{
    let what = format!("{name} of {path}");
    let reply = call(conn, path, PROPERTIES, "Get", &(interface, name)).await?;
    convert(body::<OwnedValue>(&reply, &what)?, &what)
}

/// The seat's active session, read afresh.
async fn read_seat(conn: &Connection, seat: &str) -> Result<SeatView, LogindError> {
    let manager = ObjectPath::from_static_str_unchecked(MANAGER_PATH);
    let reply = call(conn, &manager, MANAGER, "GetSeat", &(seat,)).await?;
    let seat_path: OwnedObjectPath = body(&reply, "GetSeat")?;
    let (id, path): (String, OwnedObjectPath) =
        property(conn, &seat_path, SEAT, "ActiveSession").await?;
    if id.is_empty() || path.as_str() == "/" {
        return Ok(SeatView::default());
    }
    let reply = call(conn, &path, PROPERTIES, "GetAll", &(SESSION,)).await?;
    let mut props: HashMap<String, OwnedValue> = body(&reply, "GetAll")?;
    let mut take = |name: &str| {
        props.remove(name).ok_or_else(|| LogindError::BadReply {
            call: format!("GetAll of {path}"),
            detail: format!("no {name} property"),
        })
    };
    let (uid, _user): (u32, OwnedObjectPath) = convert(take("User")?, "User")?;
    let session = LoginSession {
        id: convert(take("Id")?, "Id")?,
        uid,
        name: convert(take("Name")?, "Name")?,
        remote: convert(take("Remote")?, "Remote")?,
        kind: convert(take("Type")?, "Type")?,
        class: convert(take("Class")?, "Class")?,
        locked: convert(take("LockedHint")?, "LockedHint")?,
    };
    if session.id != id {
        return Err(LogindError::BadReply {
            call: format!("ActiveSession of {seat_path}"),
            detail: format!("session {id} at {path} says its Id is {}", session.id),
        });
    }
    let user_graphical = graphical_sessions_of(conn, &seat_path, &session).await?;
    Ok(SeatView {
        active: Some(session),
        user_graphical,
    })
}

/// How many graphical user sessions `active`'s user has on the seat, the
/// active one included. A session that vanished between the two reads is
/// not counted.
async fn graphical_sessions_of(
    conn: &Connection,
    seat_path: &ObjectPath<'_>,
    active: &LoginSession,
) -> Result<usize, LogindError> {
    let sessions: Vec<(String, OwnedObjectPath)> =
        property(conn, seat_path, SEAT, "Sessions").await?;
    let mut count = 0;
    for (id, path) in sessions {
        if id == active.id {
            count += 1;
            continue;
        }
        let reply = match conn
            .call_method(
                Some(SERVICE),
                &path,
                Some(PROPERTIES),
                "GetAll",
                &(SESSION,),
            )
            .await
        {
            Ok(reply) => reply,
            Err(zbus::Error::MethodError(name, _, _))
                if name.as_str() == "org.freedesktop.DBus.Error.UnknownObject" =>
            {
                continue;
            }
            Err(e) => return Err(call_error("GetAll", e)),
        };
        let mut props: HashMap<String, OwnedValue> = body(&reply, "GetAll")?;
        let mut text = |name: &str| -> Result<String, LogindError> {
            match props.remove(name) {
                Some(v) => convert(v, name),
                None => Ok(String::new()),
            }
        };
        let (kind, class) = (text("Type")?, text("Class")?);
        let uid = match props.remove("User") {
            Some(v) => convert::<(u32, OwnedObjectPath)>(v, "User")?.0,
            None => continue,
        };
        if uid == active.uid && class == "user" && is_graphical(&kind) {
            count += 1;
        }
    }
    Ok(count)
}

/// The signals after which the seat is read again.
struct Signals {
    /// `PropertiesChanged` of any logind object (seats, sessions).
    properties: MessageStream,
    /// logind leaving or arriving on the bus.
    owner: MessageStream,
}

impl Signals {
    async fn subscribe(conn: &Connection) -> Result<Signals, LogindError> {
        let rule = |b: zbus::Result<zbus::match_rule::Builder<'static>>| {
            b.map(|b| b.build()).map_err(bus_error)
        };
        let properties = rule(
            MatchRule::builder()
                .msg_type(MessageType::Signal)
                .sender(SERVICE)
                .and_then(|b| b.interface(PROPERTIES))
                .and_then(|b| b.member("PropertiesChanged"))
                .and_then(|b| b.path_namespace(MANAGER_PATH)),
        )?;
        let owner = rule(
            MatchRule::builder()
                .msg_type(MessageType::Signal)
                .sender("org.freedesktop.DBus")
                .and_then(|b| b.interface("org.freedesktop.DBus"))
                .and_then(|b| b.member("NameOwnerChanged"))
                .and_then(|b| b.arg(0, SERVICE)),
        )?;
        Ok(Signals {
            properties: MessageStream::for_match_rule(properties, conn, None)
                .await
                .map_err(bus_error)?,
            owner: MessageStream::for_match_rule(owner, conn, None)
                .await
                .map_err(bus_error)?,
        })
    }

    /// The next signal: `false` when the connection is gone.
    async fn next(&mut self) -> bool {
        poll_fn(|cx| {
            for s in [&mut self.properties, &mut self.owner] {
                match Pin::new(s).poll_next(cx) {
                    Poll::Ready(Some(_)) => return Poll::Ready(true),
                    Poll::Ready(None) => return Poll::Ready(false),
                    Poll::Pending => {}
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Waits for the next signal; never returns without a connection.
async fn next_signal(signals: &mut Option<Signals>) -> bool {
    match signals {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

struct SeatWatch {
    conn: Connection,
    address: Option<String>,
    seat: String,
    tx: watch::Sender<SeatView>,
    /// Logged once per distinct error, not once per retry.
    last_error: Option<String>,
    /// Since when reads fail (the last good view stands for
    /// [`FAIL_GRACE`]).
    failing_since: Option<Instant>,
}

impl SeatWatch {
    async fn run(mut self, signals: Signals) {
        let mut signals = Some(signals);
        let mut backoff = BACKOFF_MIN;
        let mut wait = POLL;
        // A signal came while reading: what was read may be stale.
        let mut dirty = false;
        loop {
            if !dirty {
                let deadline = Instant::now() + wait;
                tokio::select! {
                    _ = self.tx.closed() => return,
                    _ = tokio::time::sleep_until(deadline) => {}
                    alive = next_signal(&mut signals) => if !alive {
                        signals = None;
                        // Reconnected and read at once below.
                        self.fail(LogindError::Lost.to_string(), backoff);
                    },
                }
            }
            dirty = false;
            if signals.is_none() {
                match self.reconnect().await {
                    Ok(s) => signals = Some(s),
                    Err(e) => {
                        wait = self.fail(e.to_string(), backoff);
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            // Signals are drained while reading: zbus stops reading the
            // socket, replies included, while a subscriber's queue is full.
            let result = {
                let read = read_seat(&self.conn, &self.seat);
                tokio::pin!(read);
                loop {
                    tokio::select! {
                        r = &mut read => break r,
                        alive = next_signal(&mut signals) => {
                            if alive {
                                dirty = true;
                            } else {
                                signals = None;
                                break Err(LogindError::Lost);
                            }
                        }
                        _ = self.tx.closed() => return,
                    }
                }
            };
            match result {
                Ok(view) => {
                    if self.last_error.take().is_some() {
                        tracing::info!("logind answers again for {}", self.seat);
                    }
                    self.failing_since = None;
                    backoff = BACKOFF_MIN;
                    wait = POLL;
                    self.tx.send_if_modified(|v| {
                        let changed = *v != view;
                        *v = view;
                        changed
                    });
                }
                Err(e) => {
                    wait = self.fail(e.to_string(), backoff);
                    dirty = false;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Nobody is active once logind could not say who is for
    /// [`FAIL_GRACE`]; until then the last view stands and reads are
    /// retried. Returns how long to wait before the next read: `backoff`,
    /// shortened so that the grace's end is not overslept.
    fn fail(&mut self, error: String, backoff: Duration) -> Duration {
        let now = Instant::now();
        let since = *self.failing_since.get_or_insert(now);
        if self.last_error.as_ref() != Some(&error) {
            tracing::warn!("{}: cannot read the seat: {error}", self.seat);
            self.last_error = Some(error);
        }
        let grace_end = since + FAIL_GRACE;
        if now < grace_end {
            return backoff.min(grace_end - now).max(Duration::from_millis(10));
        }
        self.tx.send_if_modified(|v| {
            let changed = v.active.is_some();
            if changed {
                tracing::warn!("{}: nobody counts as active any more", self.seat);
            }
            *v = SeatView::default();
            changed
        });
        backoff
    }

    async fn reconnect(&mut self) -> Result<Signals, LogindError> {
        let conn = open(self.address.as_deref()).await?;
        let signals = Signals::subscribe(&conn).await?;
        self.conn = conn;
        Ok(signals)
    }
}
