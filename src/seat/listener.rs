//! `ui.sock`: where the session helpers connect. The kernel says who they
//! are (SO_PEERCRED: uid, pid), logind which session they run in; nothing a
//! helper writes can change either.

use super::fdpass::FdLines;
use super::proto::{self, FromHelper, ToHelper};
use super::registry::{Helpers, QUEUE};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// How long a helper has to say hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// Where logind places a process: its session, or else the user whose
/// manager runs it. Both `None`: unknown, or no logind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Place {
    pub session: Option<String>,
    pub manager_of: Option<u32>,
}

/// Finds where logind places a process.
pub trait PlaceOf: Send + Sync + 'static {
    fn place_of(&self, pid: u32) -> impl std::future::Future<Output = Place> + Send;
}

/// Without logind (`seat = "single"`): nowhere.
pub struct NoSessions;

impl PlaceOf for NoSessions {
    async fn place_of(&self, _pid: u32) -> Place {
        Place::default()
    }
}

/// Binds `path` (0666: every local user may run a helper; who they are is
/// checked per connection) and serves helpers until dropped.
pub async fn serve<L: PlaceOf>(
    path: &Path,
    helpers: Arc<Helpers>,
    sessions: Arc<L>,
) -> std::io::Result<()> {
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{}: another service is running", path.display()),
            ));
        }
        std::fs::remove_file(path)?;
    }
    let listener = UnixListener::bind(path)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    }
    tracing::info!("session helpers connect on {}", path.display());
    let gate = crate::gate::Gate::default();
    // Every helper's task is owned here: dropping this future (the
    // service's shutdown) stops them all.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        while conns.try_join_next().is_some() {}
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        // Counted before any task or read: over the limit, closed at once.
        let Ok(uid) = stream.peer_cred().map(|c| c.uid()) else {
            continue;
        };
        let Some(permit) = gate.admit(uid) else {
            tracing::debug!(uid, "too many unidentified connections: closed");
            continue;
        };
        let (helpers, sessions) = (helpers.clone(), sessions.clone());
        conns.spawn(async move { connection(stream, helpers, sessions, permit).await });
    }
}

/// One helper, from hello to hang-up.
/// `pending`: this connection's place among the unidentified ones, given
/// back once it is registered (the registry's own limits then apply).
async fn connection<L: PlaceOf>(
    stream: UnixStream,
    helpers: Arc<Helpers>,
    sessions: Arc<L>,
    pending: crate::gate::Permit,
) {
    let Ok(cred) = stream.peer_cred() else {
        return;
    };
    let uid = cred.uid();
    let Some(pid) = cred.pid().and_then(|p| u32::try_from(p).ok()) else {
        return;
    };
    let (r, mut w) = stream.into_split();
    let mut lines = FdLines::new();
    let mut line = Vec::new();
    // Hello first, within the deadline, before anything is registered.
    let hello = tokio::time::timeout(HELLO_DEADLINE, lines.read_line(r.as_ref(), &mut line)).await;
    let (wayland, mutter, exe) = match hello {
        Ok(Ok(true)) => match proto::parse::<FromHelper>(&line) {
            Ok(FromHelper::Hello {
                display,
                exe,
                mutter,
                ..
            }) => (display.as_deref() == Some("wayland"), mutter, exe),
            Ok(_) => {
                return helpers.record_violation(uid, pid, "first message is not hello");
            }
            Err(e) => return helpers.record_violation(uid, pid, &e.to_string()),
        },
        Ok(Err(e)) => return helpers.record_violation(uid, pid, &e.to_string()),
        _ => return,
    };
    // Descriptors sent before the hello (or with it) are nobody's server.
    while lines.take_fd().is_some() {}
    if !helpers.admits(uid) {
        return helpers.record_violation(
            uid,
            pid,
            "not one of the policy's [service] users (seat = \"single\")",
        );
    }
    // Before asking logind anything: a uid over its limit costs no call.
    if !helpers.has_room(uid) {
        tracing::warn!(uid, pid, "too many session helpers: refused");
        return;
    }
    let place = sessions.place_of(pid).await;
    let (tx, mut rx) = mpsc::channel::<ToHelper>(QUEUE);
    let Some(conn) = helpers.register(uid, pid, place, wayland, mutter, tx.clone()) else {
        tracing::warn!(uid, pid, "too many session helpers: refused");
        return;
    };
    let welcome = ToHelper::Welcome {
        version: env!("CARGO_PKG_VERSION").into(),
    };
    let _ = tx.try_send(welcome);
    if let Some(st) = helpers.state_for(conn) {
        let _ = tx.try_send(st);
    }
    helpers.check_replaced(conn, exe);
    drop(tx);
    drop(pending);
    // The writer ends when the registry drops this helper (it did not
    // read) or the socket fails; the reader then stops too.
    let registered = Registered {
        helpers: &helpers,
        conn,
    };
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
    // A set of one: dropped, however this task ends, it stops the writer.
    let mut writer = tokio::task::JoinSet::new();
    writer.spawn(async move {
        while let Some(m) = rx.recv().await {
            if w.write_all(&proto::encode(&m)).await.is_err() {
                break;
            }
        }
        let _ = done_tx.send(());
    });
    let outcome = loop {
        line.clear();
        tokio::select! {
            r = lines.read_line(r.as_ref(), &mut line) => match r {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e.to_string()),
            },
            _ = &mut done => break Ok(()),
        }
        let msg = match proto::parse::<FromHelper>(&line) {
            Ok(m) => m,
            Err(e) => break Err(e.to_string()),
        };
        // The server connection travels with its `opened` line; any
        // other descriptor is closed at once, never kept for a later line.
        let fd = match &msg {
            FromHelper::Opened { .. } => lines.take_fd(),
            _ => None,
        };
        while lines.take_fd().is_some() {}
        if let Err(v) = helpers.on_message(conn, msg, fd) {
            break Err(v.0);
        }
    };
    drop(registered);
    drop(writer);
    if let Err(why) = outcome {
        helpers.record_violation(uid, pid, &why);
    }
}

/// Unregisters a helper however its connection's task ends (an abort at
/// the service's shutdown too): no prompt is ever sent to a helper gone.
struct Registered<'a> {
    helpers: &'a Helpers,
    conn: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.helpers.unregister(self.conn);
    }
}
