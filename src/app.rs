//! Wiring of a running agent: audit journal, broker, listener, control
//! socket, signals. The UI (when present) runs on the main thread and talks
//! to this through the `Prompter` it implements and the `SessionControl` it
//! holds.

use crate::agent::Agent;
use crate::broker::{Broker, Journal, Prompter, SessionControl};
use crate::policy::Policy;
use std::sync::Arc;

/// Errors that stop the agent from starting at all.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Where the control socket goes and who may use it (`None`: none).
#[cfg(unix)]
pub type ControlEndpoint = Option<(std::path::PathBuf, crate::control::Access)>;
#[cfg(not(unix))]
pub type ControlEndpoint = Option<(std::path::PathBuf, ())>;

/// `accord agent`'s control socket: this user's, in their runtime directory.
pub fn agent_control() -> ControlEndpoint {
    #[cfg(unix)]
    {
        crate::platform::control_socket_path().map(|p| (p, crate::control::Access::SameUser))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Runs the core of the agent until `shutdown` resolves: listener, control
/// socket, broker. Returns once every session has ended and been recorded.
pub async fn serve<P: Prompter>(
    policy: Arc<Policy>,
    journal: Arc<dyn Journal>,
    prompter: P,
    control: ControlEndpoint,
    on_ready: impl FnOnce(SessionControl),
    shutdown: impl std::future::Future<Output = ()>,
) {
    let policy_for_forward = policy.clone();
    let journal_for_forward = journal.clone();
    let broker = Broker::new(policy, journal, prompter);
    let agent = Agent::bind(broker).await;
    let ctl = agent.control();
    #[cfg(unix)]
    let control = {
        let ctl = ctl.clone();
        let health = audit_health(&policy_for_forward, journal_for_forward.clone());
        tokio::spawn(async move {
            let Some((path, access)) = control else {
                tracing::warn!(
                    "no private runtime directory (XDG_RUNTIME_DIR): no control socket, `accord end` will not reach this agent"
                );
                return;
            };
            if let Err(e) = crate::control::serve(&path, ctl, access, health).await {
                tracing::warn!("local control unavailable: {e}");
            }
        })
    };
    #[cfg(not(unix))]
    let _ = control;
    on_ready(ctl);
    let (stop_forward, forward_stopped) = tokio::sync::oneshot::channel::<()>();
    let forwarder = {
        let policy = policy_for_forward.clone();
        let journal = journal_for_forward.clone();
        tokio::spawn(async move {
            forward(&policy, journal, async {
                let _ = forward_stopped.await;
            })
            .await
        })
    };
    agent.run(shutdown).await;
    // Give the forwarder the agent_stopped record, then stop it.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let _ = stop_forward.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), forwarder).await;
    #[cfg(unix)]
    control.abort();
}

/// What `accord status` says of the audit trail: a log that cannot be
/// trusted, and how many records the collector has not taken yet.
fn audit_health(
    policy: &Policy,
    journal: Arc<dyn Journal>,
) -> Arc<dyn Fn() -> serde_json::Value + Send + Sync> {
    let forwarding = policy.audit.forward.is_some();
    let mut cursor = policy.audit_path().into_os_string();
    cursor.push(".cursor");
    let cursor = std::path::PathBuf::from(cursor);
    Arc::new(move || {
        let last = journal.last_seq();
        let (behind, stalled) = match (forwarding, last) {
            (true, Some(last)) => {
                let sent = crate::audit::forward::Cursor::load(&cursor).seq;
                let behind = last.saturating_sub(sent);
                // How long the collector has taken nothing while records
                // wait: the cursor is rewritten after every batch it takes.
                let stalled = (behind > 0).then(|| {
                    std::fs::metadata(&cursor)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .map_or(u64::MAX, |d| d.as_secs())
                });
                (serde_json::json!(behind), serde_json::json!(stalled))
            }
            _ => (serde_json::Value::Null, serde_json::Value::Null),
        };
        serde_json::json!({
            "log_problem": journal.health().err(),
            "last_seq": last,
            "forward_behind": behind,
            "forward_stalled_s": stalled,
        })
    })
}

/// Opens the audit journal named by the policy. A log that cannot be opened
/// does not stop the agent (the tray must still say what is wrong), but every
/// request is then refused: consent without a trace is not allowed.
pub fn open_journal(policy: &Policy) -> Arc<dyn Journal> {
    let path = policy.audit_path();
    match crate::audit::journal::AuditJournal::open(&path) {
        Ok((j, _report)) => Arc::new(j),
        Err(e) => {
            let why = format!("audit log {} unusable: {e}", path.display());
            tracing::error!("{why}; every request will be refused");
            Arc::new(crate::broker::UnavailableJournal(why))
        }
    }
}

/// Forwards the log to the hospital's collector (T11), if the policy says
/// where, until `shutdown`. Never blocks consent: it reads the log itself.
async fn forward(
    policy: &Policy,
    journal: Arc<dyn Journal>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let (Some(target), Some(ca), Some(wake)) = (
        &policy.audit.forward,
        &policy.audit.forward_ca,
        journal.wake(),
    ) else {
        return shutdown.await;
    };
    let cfg = crate::audit::forward::ForwardConfig {
        host: target.host.clone(),
        port: target.port,
        ca_file: ca.clone(),
        client_cert: policy
            .audit
            .forward_cert
            .clone()
            .zip(policy.audit.forward_key.clone()),
        sd_id: policy.audit.sd_id.clone(),
    };
    let log = policy.audit_path();
    let mut cursor = log.clone().into_os_string();
    cursor.push(".cursor");
    let on_reset = move |reason: String| {
        if let Err(e) = journal.record(&crate::broker::Event::ForwardCursorReset { reason }) {
            tracing::error!("{e}");
        }
    };
    crate::audit::forward::run(cfg, log, cursor.into(), wake, on_reset, shutdown).await;
}

/// `accord agent`: the whole agent, blocking until it stops. The windows run
/// on this (the main) thread, the core on a runtime thread; see
/// [`crate::ui::agent`]. Fails closed: without a display every request is
/// refused and the function returns an error once the agent is stopped.
#[cfg(feature = "ui")]
pub fn run_agent(policy: Policy) -> Result<(), AppError> {
    let journal = open_journal(&policy);
    crate::ui::run_agent(policy, journal)
}

/// Without the UI nobody can consent: the agent does not start.
#[cfg(not(feature = "ui"))]
pub fn run_agent(_policy: Policy) -> Result<(), AppError> {
    Err(AppError::Other(
        "built without the `ui` feature: nobody could consent, so the agent does not run".into(),
    ))
}

/// `accord service`: the core under its own user; helpers ask the user.
#[cfg(unix)]
pub fn run_service(policy: Policy) -> Result<(), AppError> {
    crate::seat::run::run_service(policy)
}

/// The service is Linux-only for now (docs/windows.md).
#[cfg(not(unix))]
pub fn run_service(_policy: Policy) -> Result<(), AppError> {
    Err(AppError::Other(
        "accord service is not written for this system yet (docs/windows.md)".into(),
    ))
}

/// `accord ui`: the session helper of `accord service`.
#[cfg(all(unix, feature = "ui"))]
pub fn run_helper(policy: Policy) -> Result<(), AppError> {
    crate::ui::run_helper(policy, crate::platform::service_ui_path())
}

/// Without the UI there is nothing to show.
#[cfg(not(all(unix, feature = "ui")))]
pub fn run_helper(_policy: Policy) -> Result<(), AppError> {
    Err(AppError::Other(
        "accord ui needs the `ui` feature on a Unix desktop".into(),
    ))
}

/// `accord ui-window`: the window process of `accord agent` / `accord ui`
/// ([`crate::ui::winhost`]). `lang`: `fr` or `en`.
#[cfg(feature = "ui")]
pub fn run_window_process(lang: &str, shortcut: String) -> Result<(), AppError> {
    let lang = match lang {
        "fr" => crate::ui::Lang::Fr,
        "en" => crate::ui::Lang::En,
        other => return Err(AppError::Other(format!("unknown language {other:?}"))),
    };
    crate::ui::winchild::run(lang, shortcut).map_err(AppError::Other)
}

#[cfg(not(feature = "ui"))]
pub fn run_window_process(_lang: &str, _shortcut: String) -> Result<(), AppError> {
    Err(AppError::Other("built without the `ui` feature".into()))
}

/// Where `accord end` and `accord status` go: the service's socket when a
/// service runs on this machine, else this user's own agent.
pub fn control_target() -> Option<std::path::PathBuf> {
    #[cfg(unix)]
    {
        let service = crate::platform::service_control_path();
        if service.exists() {
            return Some(service);
        }
    }
    crate::platform::control_socket_path()
}
