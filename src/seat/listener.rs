//! `ui.sock`: where the session helpers connect. The kernel says who they
//! are (SO_PEERCRED: uid, pid), logind which session they run in; nothing a
//! helper writes can change either.

use super::fdpass::FdLines;
use super::helpers::{Helpers, QUEUE};
use super::proto::{self, FromHelper, ToHelper};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

/// How long a helper has to say hello.
const HELLO_DEADLINE: Duration = Duration::from_secs(5);

/// Finds the logind session of a process (`None`: unknown, or no logind).
pub trait SessionOf: Send + Sync + 'static {
    fn session_of(&self, pid: u32) -> impl std::future::Future<Output = Option<String>> + Send;
}

/// Without logind (`seat = "single"`): no sessions.
pub struct NoSessions;

impl SessionOf for NoSessions {
    async fn session_of(&self, _pid: u32) -> Option<String> {
        None
    }
}

/// Binds `path` (0666: every local user may run a helper; who they are is
/// checked per connection) and serves helpers until dropped.
pub async fn serve<L: SessionOf>(
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
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let (helpers, sessions) = (helpers.clone(), sessions.clone());
        tokio::spawn(async move { connection(stream, helpers, sessions).await });
    }
}

/// One helper, from hello to hang-up.
async fn connection<L: SessionOf>(stream: UnixStream, helpers: Arc<Helpers>, sessions: Arc<L>) {
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
    match hello {
        Ok(Ok(true)) => match proto::parse::<FromHelper>(&line) {
            Ok(FromHelper::Hello { .. }) => {}
            Ok(_) => {
                return helpers.record_violation(uid, pid, "first message is not hello");
            }
            Err(e) => return helpers.record_violation(uid, pid, &e.to_string()),
        },
        Ok(Err(e)) => return helpers.record_violation(uid, pid, &e.to_string()),
        _ => return,
    }
    let session = sessions.session_of(pid).await;
    let (tx, mut rx) = mpsc::channel::<ToHelper>(QUEUE);
    let Some(conn) = helpers.register(uid, pid, session, tx.clone()) else {
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
    drop(tx);
    // The writer ends when the registry drops this helper (it did not
    // read) or the socket fails; the reader then stops too.
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<()>();
    let writer = tokio::spawn(async move {
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
        // The server connection travels with its `opened` line.
        let fd = match &msg {
            FromHelper::Opened { .. } => lines.take_fd(),
            _ => None,
        };
        if let Err(v) = helpers.on_message(conn, msg, fd) {
            break Err(v.0);
        }
    };
    helpers.unregister(conn);
    writer.abort();
    if let Err(why) = outcome {
        helpers.record_violation(uid, pid, &why);
    }
}
