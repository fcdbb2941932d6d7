//! The session's screen saver, watched by the helper: xscreensaver
//! and light-locker can blank or lock the screen without logind's
//! `LockedHint`, so the helper reports what the session bus says.

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use tokio::sync::watch;
use zbus::connection::Builder;
use zbus::export::futures_core::Stream;
use zbus::message::Type as MessageType;
use zbus::{Connection, MatchRule, Message, MessageStream};

const NAME: &str = "org.freedesktop.ScreenSaver";
/// GNOME and light-locker serve the first, xscreensaver and KDE also the
/// second.
const PATHS: [&str; 2] = ["/org/freedesktop/ScreenSaver", "/ScreenSaver"];
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum ScreensaverError {
    #[error("no session bus: {0}")]
    NoSessionBus(zbus::Error),
    #[error("cannot subscribe to the screen saver's signals on the session bus: {0}")]
    Subscribe(zbus::Error),
}

/// The session bus's screen saver (xscreensaver, light-locker, GNOME's
/// `org.freedesktop.ScreenSaver`): `true` while active.
///
/// Connects to the session bus (`DBUS_SESSION_BUS_ADDRESS`), follows
/// `ActiveChanged(bool)` from any path and asks `GetActive` at start and
/// whenever a screen saver takes the name; without one, `false`. When the
/// session bus goes away the value turns `true` (cannot tell: fail closed)
/// and the sender is dropped. The watch stops when every receiver is dropped;
/// it runs as a task of the current tokio runtime.
pub async fn watch() -> Result<watch::Receiver<bool>, ScreensaverError> {
    start(Builder::session().map_err(ScreensaverError::NoSessionBus)?).await
}

/// [`watch`] on the bus at `address`: tests run a private bus each.
pub async fn watch_at(address: &str) -> Result<watch::Receiver<bool>, ScreensaverError> {
    start(Builder::address(address).map_err(ScreensaverError::NoSessionBus)?).await
}

async fn start(builder: Builder<'_>) -> Result<watch::Receiver<bool>, ScreensaverError> {
    let conn = builder
        .method_timeout(CALL_TIMEOUT)
        .build()
        .await
        .map_err(ScreensaverError::NoSessionBus)?;
    let changes = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .interface(NAME)
        .and_then(|b| b.member("ActiveChanged"))
        .map(|b| b.build())
        .map_err(ScreensaverError::Subscribe)?;
    let owner = MatchRule::builder()
        .msg_type(MessageType::Signal)
        .sender("org.freedesktop.DBus")
        .and_then(|b| b.interface("org.freedesktop.DBus"))
        .and_then(|b| b.member("NameOwnerChanged"))
        .and_then(|b| b.arg(0, NAME))
        .map(|b| b.build())
        .map_err(ScreensaverError::Subscribe)?;
    // Subscribed before the first read: no change falls in between.
    let changes = MessageStream::for_match_rule(changes, &conn, None)
        .await
        .map_err(ScreensaverError::Subscribe)?;
    let owner = MessageStream::for_match_rule(owner, &conn, None)
        .await
        .map_err(ScreensaverError::Subscribe)?;
    let (tx, rx) = watch::channel(read_active(&conn).await);
    tokio::spawn(run(conn, changes, owner, tx));
    Ok(rx)
}

async fn next_message(s: &mut MessageStream) -> Option<zbus::Result<Message>> {
    poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
}

fn set(tx: &watch::Sender<bool>, active: bool) {
    tx.send_if_modified(|v| std::mem::replace(v, active) != active);
}

async fn run(
    conn: Connection,
    mut changes: MessageStream,
    mut owner: MessageStream,
    tx: watch::Sender<bool>,
) {
    loop {
        tokio::select! {
            _ = tx.closed() => return,
            m = next_message(&mut changes) => match m {
                Some(Ok(msg)) => match msg.body().deserialize::<bool>() {
                    Ok(active) => set(&tx, active),
                    Err(e) => tracing::debug!("ActiveChanged without a boolean: {e}"),
                },
                Some(Err(e)) => tracing::debug!("screen saver signal: {e}"),
                None => break,
            },
            m = next_message(&mut owner) => match m {
                Some(_) => set(&tx, read_active(&conn).await),
                None => break,
            },
        }
    }
    tracing::warn!("the session bus is gone: the screen counts as locked");
    tx.send_replace(true);
}

/// `GetActive` of the screen saver owning the name, `false` without one.
///
/// A service that owns the name but answers on neither path also gives
/// `false`: logind's `LockedHint` still covers a real lock.
async fn read_active(conn: &Connection) -> bool {
    let owned = conn
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "NameHasOwner",
            &(NAME,),
        )
        .await
        .and_then(|r| r.body().deserialize::<bool>());
    match owned {
        Ok(true) => {}
        Ok(false) => return false,
        Err(e) => {
            tracing::debug!("NameHasOwner({NAME}): {e}");
            return false;
        }
    }
    for path in PATHS {
        match conn
            .call_method(Some(NAME), path, Some(NAME), "GetActive", &())
            .await
            .and_then(|r| r.body().deserialize::<bool>())
        {
            Ok(active) => return active,
            Err(e) => tracing::debug!("{NAME}.GetActive at {path}: {e}"),
        }
    }
    false
}
