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
use serde::{Deserialize, Serialize};
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

/// What `accord status` reports, as `--json` prints it and monitoring
/// reads it. Fields are in alphabetical order, the order the keys have
/// always had; `null`s are kept where they were (pinned by a test).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub activity: ActivityStatus,
    pub agent: ListenStatus,
    /// Not in [`status_of`]'s part: the server adds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<AuditHealth>,
    /// Why every request is refused, if one is.
    pub blocked: Option<String>,
    /// Added by `accord status` itself: whether anything answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub running: Option<bool>,
}

/// Whether the technicians' port is open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ListenStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    pub listening: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// What is happening: who and why only for those who may know.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ActivityStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asked: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elapsed_s: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub state: ActivityState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub technician: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Who, what and why are withheld from this asker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub withheld: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityState {
    #[default]
    Idle,
    Asking,
    Session,
}

/// The audit trail's health: a log that cannot be trusted, and how far
/// behind the collector is (`None` without forwarding).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AuditHealth {
    pub forward_behind: Option<u64>,
    pub forward_stalled_s: Option<u64>,
    pub last_seq: Option<u64>,
    pub log_problem: Option<String>,
}

/// The audit trail's health for `status` ([`crate::engine`] builds it).
pub type Health = std::sync::Arc<dyn Fn() -> AuditHealth + Send + Sync>;

/// Records the collector may lag behind before `status` says degraded.
pub const FORWARD_BEHIND_MAX: u64 = 100;
/// How long the collector may take nothing while records wait.
pub const FORWARD_STALL_MAX_S: u64 = 300;

/// How `accord status` exits: 0 healthy, 1 degraded (running but not
/// listening, refusing every request, log untrustworthy, collector more
/// than [`FORWARD_BEHIND_MAX`] records behind or taking nothing for
/// [`FORWARD_STALL_MAX_S`]), 2 not running (decided by the caller).
pub fn status_exit(s: &Status) -> u8 {
    let audit = s.audit.clone().unwrap_or_default();
    let behind = audit.forward_behind.unwrap_or(0) > FORWARD_BEHIND_MAX
        || audit.forward_stalled_s.unwrap_or(0) > FORWARD_STALL_MAX_S;
    if s.agent.listening && s.blocked.is_none() && audit.log_problem.is_none() && !behind {
        0
    } else {
        1
    }
}

/// The status `accord status` prints (and the tray could show), without
/// the audit part.
pub fn status_of(s: &AgentState) -> Status {
    let agent = match &s.listening {
        Listening::On(a) => ListenStatus {
            address: Some(a.to_string()),
            listening: true,
            why: None,
        },
        Listening::Off(why) => ListenStatus {
            address: None,
            listening: false,
            why: Some(why.clone()),
        },
        Listening::Starting => ListenStatus {
            address: None,
            listening: false,
            why: Some("starting".into()),
        },
    };
    let activity = match &s.activity {
        Activity::Idle => ActivityStatus::default(),
        Activity::Asking(p) => ActivityStatus {
            state: ActivityState::Asking,
            technician: Some(p.technician.subject.clone()),
            ticket: Some(p.ticket.clone()),
            asked: Some(p.asked.as_str().into()),
            ..ActivityStatus::default()
        },
        Activity::InSession(i) => ActivityStatus {
            state: ActivityState::Session,
            session: Some(i.id.to_string()),
            technician: Some(i.technician.subject.clone()),
            fingerprint: Some(i.technician.fingerprint.clone()),
            ticket: Some(i.ticket.clone()),
            mode: Some(i.mode.as_str().into()),
            elapsed_s: Some(i.started_at.elapsed().as_secs()),
            ..ActivityStatus::default()
        },
    };
    Status {
        activity,
        agent,
        audit: None,
        blocked: s.blocked.clone(),
        running: None,
    }
}

/// [`status_of`] for a local account that is neither root nor the user
/// in front of the screen: whether the service listens and is healthy, and
/// whether a session runs, never with whom, for which ticket, or its id.
pub fn status_for_others(s: &AgentState) -> Status {
    let mut v = status_of(s);
    v.activity = ActivityStatus {
        state: v.activity.state,
        withheld: true,
        ..ActivityStatus::default()
    };
    v
}

/// One human line for `accord status`.
pub fn status_text(s: &Status) -> String {
    let act = &s.activity;
    let who = act.technician.as_deref().unwrap_or("?");
    let line = match act.state {
        ActivityState::Session if act.withheld => {
            "a session is in progress (who and why: for root and the user in front of the screen)"
                .to_string()
        }
        ActivityState::Asking if act.withheld => {
            "the user is being asked about a request".to_string()
        }
        ActivityState::Session => format!(
            "session in progress with {who} ({}), ticket {}, {} s",
            act.mode.as_deref().unwrap_or("?"),
            act.ticket.as_deref().unwrap_or("?"),
            act.elapsed_s.unwrap_or(0)
        ),
        ActivityState::Asking => format!("asking the user about a request from {who}"),
        ActivityState::Idle => "no session".to_string(),
    };
    let listen = if s.agent.listening {
        format!("listening on {}", s.agent.address.as_deref().unwrap_or("?"))
    } else {
        format!("NOT listening: {}", s.agent.why.as_deref().unwrap_or("?"))
    };
    let mut out = match &s.blocked {
        Some(b) => format!("{line}; {listen}; requests refused: {b}"),
        None => format!("{line}; {listen}"),
    };
    let audit = s.audit.clone().unwrap_or_default();
    if let Some(p) = &audit.log_problem {
        out.push_str(&format!("; AUDIT LOG: {p}"));
    }
    if let Some(n) = audit.forward_behind.filter(|n| *n > 0) {
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

    fn identity() -> crate::tls::Identity {
        crate::tls::Identity {
            subject: "CN=Jeanne Martin".into(),
            fingerprint: "sha256:ab".into(),
            common_name: Some("Jeanne Martin".into()),
            organization: None,
        }
    }

    fn asking() -> Activity {
        let timeout = Duration::from_secs(60);
        Activity::Asking(Box::new(crate::broker::PromptRequest {
            id: uuid::Uuid::nil(),
            technician: identity(),
            peer: "10.1.2.3:51234".parse().unwrap(),
            ticket: "INC-1".into(),
            reason: "Imprimante".into(),
            asked: crate::protocol::Mode::Control,
            control_offered: true,
            deadline: std::time::Instant::now() + timeout,
            timeout,
            arm_delay: Duration::from_secs(1),
            clipboard: crate::policy::Clipboard::None,
            raise: false,
            confirm: false,
            replaced: None,
        }))
    }

    fn in_session() -> Activity {
        Activity::InSession(Box::new(crate::broker::SessionInfo {
            id: uuid::Uuid::nil(),
            technician: identity(),
            ticket: "INC-1".into(),
            reason: "Imprimante".into(),
            mode: crate::protocol::Mode::View,
            started: std::time::SystemTime::now(),
            started_at: std::time::Instant::now(),
            clipboard: crate::policy::Clipboard::None,
            paused: false,
        }))
    }

    /// What `accord status --json` prints is read by hospital monitoring:
    /// its keys, nulls and order are pinned.
    #[test]
    fn status_json_is_pinned() {
        let state = |listening, activity, blocked: Option<&str>| AgentState {
            listening,
            activity,
            blocked: blocked.map(str::to_string),
        };
        let on = || Listening::On("127.0.0.1:5988".parse().unwrap());
        let cases = [
            (
                state(on(), Activity::Idle, None),
                r#"{"activity":{"state":"idle"},"agent":{"address":"127.0.0.1:5988","listening":true},"blocked":null}"#,
            ),
            (
                state(
                    Listening::Off("port taken".into()),
                    asking(),
                    Some("no log"),
                ),
                r#"{"activity":{"asked":"control","state":"asking","technician":"CN=Jeanne Martin","ticket":"INC-1"},"agent":{"listening":false,"why":"port taken"},"blocked":"no log"}"#,
            ),
            (
                state(Listening::Starting, in_session(), None),
                r#"{"activity":{"elapsed_s":0,"fingerprint":"sha256:ab","mode":"view","session":"00000000-0000-0000-0000-000000000000","state":"session","technician":"CN=Jeanne Martin","ticket":"INC-1"},"agent":{"listening":false,"why":"starting"},"blocked":null}"#,
            ),
        ];
        let text = |s: &Status| serde_json::to_string(s).unwrap();
        for (s, want) in &cases {
            assert_eq!(text(&status_of(s)), *want);
            // What a client reads back is what was sent.
            let back: Status = serde_json::from_str(want).unwrap();
            assert_eq!(back, status_of(s));
        }
        assert_eq!(
            text(&status_for_others(&cases[2].0)),
            r#"{"activity":{"state":"session","withheld":true},"agent":{"listening":false,"why":"starting"},"blocked":null}"#
        );
    }

    #[test]
    fn status_exit_says_degraded_for_each_reason() {
        let healthy = json!({"activity": {"state": "idle"}, "agent": {"listening": true}, "blocked": null,
            "audit": {"log_problem": null, "forward_behind": 3, "forward_stalled_s": 2, "last_seq": 9}});
        let exit = |v: &Value| status_exit(&serde_json::from_value(v.clone()).unwrap());
        assert_eq!(exit(&healthy), 0);
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
            assert_eq!(exit(&v), 1, "{path}");
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
                let mut s = if may_end {
                    status_of(&ctl.state().borrow())
                } else {
                    status_for_others(&ctl.state().borrow())
                };
                // Reads the forward cursor: off the async workers.
                s.audit = tokio::task::spawn_blocking(move || audit()).await.ok();
                serde_json::to_value(&s).unwrap_or(Value::Null)
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
