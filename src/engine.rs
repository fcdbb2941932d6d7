//! The engine every mode runs: listener, broker, relay, audit journal,
//! forwarder, control socket, signals. It knows nothing of who asks the
//! clinician: `accord agent`'s windows and `accord service`'s helpers both
//! reach it through the [`Prompter`] they implement and the
//! [`SessionControl`] they hold ([`crate::modes`] wires each).

use crate::broker::{Broker, Journal, Prompter, SessionControl};
use crate::listener::Listener;
use crate::policy::Policy;
use std::sync::Arc;

/// Errors that stop a mode from starting at all.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
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
    let agent = Listener::bind(broker).await;
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
    // The last records (agent_stopped) reach the collector before the
    // forwarder stops, if it takes them within FORWARD_DRAIN.
    if policy_for_forward.audit.forward.is_some() {
        forwarded(&policy_for_forward, &*journal_for_forward).await;
    }
    let _ = stop_forward.send(());
    let _ = forwarder.await;
    #[cfg(unix)]
    {
        control.abort();
        let _ = control.await;
    }
}

/// How long a stopping agent waits for the collector to take its last
/// records; they stay in the log for the next start to send otherwise.
const FORWARD_DRAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// Resolves once the forwarder's cursor has reached the journal's last
/// record, or after [`FORWARD_DRAIN`].
async fn forwarded(policy: &Policy, journal: &dyn Journal) {
    let Some(last) = journal.last_seq() else {
        return;
    };
    let cursor = Arc::new(cursor_path(policy));
    let start = tokio::time::Instant::now();
    while start.elapsed() < FORWARD_DRAIN {
        // A file read: off the runtime's workers, which still drive the
        // forwarder's last batch.
        let c = cursor.clone();
        let sent = tokio::task::spawn_blocking(move || crate::audit::forward::Cursor::load(&c).seq)
            .await
            .unwrap_or(0);
        if sent >= last {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Where the forwarder keeps how far the collector has taken the log.
fn cursor_path(policy: &Policy) -> std::path::PathBuf {
    let mut cursor = policy.audit_path().into_os_string();
    cursor.push(".cursor");
    cursor.into()
}

/// What `accord status` says of the audit trail: a log that cannot be
/// trusted, and how many records the collector has not taken yet.
fn audit_health(policy: &Policy, journal: Arc<dyn Journal>) -> crate::control::Health {
    let forwarding = policy.audit.forward.is_some();
    let cursor = cursor_path(policy);
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
                (Some(behind), stalled)
            }
            _ => (None, None),
        };
        crate::control::AuditHealth {
            forward_behind: behind,
            forward_stalled_s: stalled,
            last_seq: last,
            log_problem: journal.health().err().map(|e| e.to_string()),
        }
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
            let why = crate::broker::LogUnusable::Unavailable {
                path,
                why: e.to_string(),
            };
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
    let cursor = cursor_path(policy);
    let on_reset = move |reason: String| {
        if let Err(e) = journal.record(&crate::broker::Event::ForwardCursorReset { reason }) {
            tracing::error!("{e}");
        }
    };
    crate::audit::forward::run(cfg, log, cursor, wake, on_reset, shutdown).await;
}
