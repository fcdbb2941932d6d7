//! The local control socket behind `accord end` and `accord status` (O8: a
//! second way to stop a session, from a shell).
//!
//! Two shapes, one protocol ([`Access`]):
//! - `accord agent` (one user): the socket is 0600 in the user's own runtime
//!   directory, never in a shared one, and only that uid is served.
//! - `accord service`: `/run/accord/control.sock`, 0666 so that any local
//!   user can ask `status`; `end` is obeyed for root and for the user of the
//!   session in front of the screen only (SO_PEERCRED, never what the
//!   client says).
//!
//! The client checks who owns the socket before talking to it: a socket
//! planted by another user is never believed.

use crate::broker::{Activity, AgentState, Listening, SessionControl};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

/// What can go wrong talking to the agent.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no agent is running for this user ({path}: {source})")]
    NotRunning {
        path: String,
        source: std::io::Error,
    },
    #[error("control socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the agent's answer is not understood: {0}")]
    Answer(String),
    #[error("{path} belongs to uid {owner}, not to root, you or the Accord service: not used")]
    Untrusted { path: String, owner: u32 },
}

/// Who may do what on the control socket.
#[derive(Clone)]
pub enum Access {
    /// `accord agent`: the agent's own uid only, for everything.
    SameUser,
    /// `accord service`: `status` for anyone; `end` for root and the uids
    /// the predicate admits (the active session's user).
    Service {
        may_end: std::sync::Arc<dyn Fn(u32) -> bool + Send + Sync>,
    },
}

/// The audit trail's health for `status` ([`crate::engine`] builds it).
pub type Health = std::sync::Arc<dyn Fn() -> Value + Send + Sync>;

/// Records the collector may lag behind before `status` says degraded.
pub const FORWARD_BEHIND_MAX: u64 = 100;
/// How long the collector may take nothing while records wait.
pub const FORWARD_STALL_MAX_S: u64 = 300;

/// How `accord status` exits: 0 healthy, 1 degraded (running but not
/// listening, refusing every request, log untrustworthy, collector more
/// than [`FORWARD_BEHIND_MAX`] records behind or taking nothing for
/// [`FORWARD_STALL_MAX_S`]), 2 not running (decided by the caller).
pub fn status_exit(v: &Value) -> u8 {
    let listening = v["agent"]["listening"].as_bool() == Some(true);
    let blocked = !v["blocked"].is_null();
    let log = !v["audit"]["log_problem"].is_null();
    let behind = v["audit"]["forward_behind"].as_u64().unwrap_or(0) > FORWARD_BEHIND_MAX
        || v["audit"]["forward_stalled_s"].as_u64().unwrap_or(0) > FORWARD_STALL_MAX_S;
    if listening && !blocked && !log && !behind {
        0
    } else {
        1
    }
}

/// The JSON `accord status` prints (and the tray could show).
pub fn status_json(s: &AgentState) -> Value {
    let listening = match &s.listening {
        Listening::On(a) => json!({"listening": true, "address": a.to_string()}),
        Listening::Off(why) => json!({"listening": false, "why": why}),
        Listening::Starting => json!({"listening": false, "why": "starting"}),
    };
    let activity = match &s.activity {
        Activity::Idle => json!({"state": "idle"}),
        Activity::Asking(p) => json!({
            "state": "asking",
            "technician": p.technician.subject,
            "ticket": p.ticket,
            "asked": p.asked.as_str(),
        }),
        Activity::InSession(i) => json!({
            "state": "session",
            "session": i.id.to_string(),
            "technician": i.technician.subject,
            "fingerprint": i.technician.fingerprint,
            "ticket": i.ticket,
            "mode": i.mode.as_str(),
            "elapsed_s": i.started_at.elapsed().as_secs(),
        }),
    };
    json!({"agent": listening, "activity": activity, "blocked": s.blocked})
}

/// [`status_json`] for a local account that is neither root nor the user
/// in front of the screen: whether the service listens and is healthy, and
/// whether a session runs, never with whom, for which ticket, or its id.
pub fn status_json_for_others(s: &AgentState) -> Value {
    let mut v = status_json(s);
    let state = v["activity"]["state"].clone();
    v["activity"] = json!({"state": state, "withheld": true});
    v
}

/// One human line for `accord status`.
pub fn status_text(v: &Value) -> String {
    let act = &v["activity"];
    let who = act["technician"].as_str().unwrap_or("?");
    let withheld = act["withheld"].as_bool() == Some(true);
    let line = match act["state"].as_str() {
        Some("session") if withheld => {
            "a session is in progress (who and why: for root and the user in front of the screen)"
                .to_string()
        }
        Some("asking") if withheld => "the user is being asked about a request".to_string(),
        Some("session") => format!(
            "session in progress with {who} ({}), ticket {}, {} s",
            act["mode"].as_str().unwrap_or("?"),
            act["ticket"].as_str().unwrap_or("?"),
            act["elapsed_s"].as_u64().unwrap_or(0)
        ),
        Some("asking") => format!("asking the user about a request from {who}"),
        _ => "no session".to_string(),
    };
    let listen = match v["agent"]["listening"].as_bool() {
        Some(true) => format!(
            "listening on {}",
            v["agent"]["address"].as_str().unwrap_or("?")
        ),
        _ => format!(
            "NOT listening: {}",
            v["agent"]["why"].as_str().unwrap_or("?")
        ),
    };
    let mut out = match v["blocked"].as_str() {
        Some(b) => format!("{line}; {listen}; requests refused: {b}"),
        None => format!("{line}; {listen}"),
    };
    if let Some(p) = v["audit"]["log_problem"].as_str() {
        out.push_str(&format!("; AUDIT LOG: {p}"));
    }
    if let Some(n) = v["audit"]["forward_behind"].as_u64().filter(|n| *n > 0) {
        out.push_str(&format!(
            "; {n} audit records not yet taken by the collector"
        ));
    }
    out
}

/// Where `accord end` and `accord status` go: the service's socket when a
/// service runs on this machine, else this user's own agent.
pub fn target() -> Option<std::path::PathBuf> {
    #[cfg(unix)]
    {
        let service = crate::platform::service_control_path();
        if service.exists() {
            return Some(service);
        }
    }
    crate::platform::control_socket_path()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_exit_says_degraded_for_each_reason() {
        let healthy = json!({"agent": {"listening": true}, "blocked": null,
            "audit": {"log_problem": null, "forward_behind": 3, "forward_stalled_s": 2}});
        assert_eq!(status_exit(&healthy), 0);
        for (path, bad) in [
            ("/agent/listening", json!(false)),
            ("/blocked", json!("the user interface is not available")),
            ("/audit/log_problem", json!("the audit log was altered")),
            ("/audit/forward_behind", json!(FORWARD_BEHIND_MAX + 1)),
            ("/audit/forward_stalled_s", json!(FORWARD_STALL_MAX_S + 1)),
        ] {
            let mut v = healthy.clone();
            if let Some(slot) = v.pointer_mut(path) {
                *slot = bad;
            }
            assert_eq!(status_exit(&v), 1, "{path}");
        }
    }
}

#[cfg(unix)]
mod imp {
    use super::*;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{UnixListener, UnixStream};

    /// Binds the socket and serves until dropped. [`Access::SameUser`]:
    /// socket 0600 in a 0700 directory; [`Access::Service`]: socket 0666 in
    /// the service's runtime directory (created by systemd, not here).
    pub async fn serve(
        path: &Path,
        ctl: SessionControl,
        access: Access,
        audit: Health,
    ) -> Result<(), ControlError> {
        let io = |source| ControlError::Io {
            path: path.display().to_string(),
            source,
        };
        if let (Access::SameUser, Some(dir)) = (&access, path.parent()) {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        // A socket left by a crashed agent: only remove it if nobody answers.
        if path.exists() {
            if UnixStream::connect(path).await.is_ok() {
                return Err(io(std::io::Error::new(
                    std::io::ErrorKind::AddrInUse,
                    "another agent is already running for this user",
                )));
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        let listener = UnixListener::bind(path).map_err(io)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = match access {
                Access::SameUser => 0o600,
                Access::Service { .. } => 0o666,
            };
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(io)?;
        }
        // SAFETY: getuid has no preconditions.
        let me = unsafe { libc::getuid() };
        let gate = crate::gate::Gate::default();
        // Every connection's task is owned here: dropping this future (the
        // engine's shutdown) stops them all.
        let mut conns = tokio::task::JoinSet::new();
        loop {
            while conns.try_join_next().is_some() {}
            let Ok((stream, _)) = listener.accept().await else {
                // Out of descriptors: do not spin.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let Ok(uid) = stream.peer_cred().map(|c| c.uid()) else {
                continue;
            };
            // Counted before any task or read; over the limit, closed.
            let Some(permit) = gate.admit(uid) else {
                continue;
            };
            let may_end = match &access {
                Access::SameUser if uid != me => continue,
                Access::SameUser => true,
                Access::Service { may_end } => uid == 0 || may_end(uid),
            };
            let (ctl, audit) = (ctl.clone(), audit.clone());
            conns.spawn(async move {
                let _ = handle(stream, ctl, may_end, audit).await;
                drop(permit);
            });
        }
    }

    async fn handle(
        stream: UnixStream,
        ctl: SessionControl,
        may_end: bool,
        audit: Health,
    ) -> std::io::Result<()> {
        let (r, mut w) = stream.into_split();
        let mut line = String::new();
        let mut r = BufReader::new(r).take_line_limit();
        tokio::time::timeout(Duration::from_secs(5), r.read_line(&mut line))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "slow client"))??;
        let answer = match line.trim() {
            "status" => {
                let mut v = if may_end {
                    status_json(&ctl.state().borrow())
                } else {
                    status_json_for_others(&ctl.state().borrow())
                };
                // Reads the forward cursor: off the async workers.
                let a = tokio::task::spawn_blocking(move || audit())
                    .await
                    .unwrap_or(Value::Null);
                v["audit"] = a;
                v
            }
            "end" if may_end => {
                let was = matches!(ctl.state().borrow().activity, Activity::InSession(_));
                ctl.end();
                json!({"ended": was})
            }
            "end" => {
                json!({"error": "not allowed: only root and the user in front of the screen can end the session"})
            }
            _ => json!({"error": "unknown command"}),
        };
        w.write_all(format!("{answer}\n").as_bytes()).await?;
        w.shutdown().await
    }

    trait TakeLine: Sized {
        fn take_line_limit(self) -> tokio::io::Take<Self>;
    }
    impl<R: tokio::io::AsyncRead> TakeLine for BufReader<R> {
        fn take_line_limit(self) -> tokio::io::Take<Self> {
            tokio::io::AsyncReadExt::take(self, 256)
        }
    }

    /// Sends one command to the running agent and returns its JSON answer.
    /// The socket must belong to root, to this user or to the service's
    /// `accord` user: anything else may have been planted to lie.
    pub async fn call(path: &Path, command: &str) -> Result<Value, ControlError> {
        let shown = path.display().to_string();
        {
            use std::os::unix::fs::MetadataExt;
            let meta =
                std::fs::symlink_metadata(path).map_err(|source| ControlError::NotRunning {
                    path: shown.clone(),
                    source,
                })?;
            let owner = meta.uid();
            // SAFETY: getuid has no preconditions.
            let me = unsafe { libc::getuid() };
            let service = crate::platform::uid_of(crate::platform::SERVICE_USER);
            if owner != 0 && owner != me && Some(owner) != service {
                return Err(ControlError::Untrusted { path: shown, owner });
            }
        }
        let mut s = UnixStream::connect(path)
            .await
            .map_err(|source| ControlError::NotRunning {
                path: shown.clone(),
                source,
            })?;
        let io = |source| ControlError::Io {
            path: shown.clone(),
            source,
        };
        s.write_all(format!("{command}\n").as_bytes())
            .await
            .map_err(io)?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(5),
            BufReader::new(s).read_line(&mut line),
        )
        .await
        .map_err(|_| ControlError::Answer("no answer within 5 s".into()))?
        .map_err(io)?;
        serde_json::from_str(&line).map_err(|e| ControlError::Answer(e.to_string()))
    }
}

#[cfg(unix)]
pub use imp::{call, serve};

/// No control pipe on Windows yet (docs/windows.md): say so instead of not
/// compiling.
#[cfg(not(unix))]
pub async fn call(path: &Path, _command: &str) -> Result<Value, ControlError> {
    Err(ControlError::NotRunning {
        path: path.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            "the control pipe is not written for Windows yet (docs/windows.md)",
        ),
    })
}
