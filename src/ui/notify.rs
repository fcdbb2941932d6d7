//! Desktop notifications (O7: the clinician is told when a session starts,
//! when it ends and why, and when a request went unanswered). The tray's
//! "Historique" reads the audit log instead ([`super::history`]).
//!
//! A missing notification daemon is not an error: the banner and the tray
//! already show the state; it is said once in the log.

use super::strings::{Strings, fill};
use crate::broker::Notice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

/// The notification's summary and body for a notice.
pub fn texts(n: &Notice, s: &Strings) -> (String, String) {
    let t = &s.notify;
    match n {
        Notice::SessionStarted(info) => {
            let name = info.technician.display_name();
            let org = info.technician.organization.as_deref().unwrap_or("");
            let mode = s.mode(info.mode);
            (
                t.started_summary.clone(),
                fill(
                    &t.started_body,
                    &[("name", name), ("org", org), ("mode", mode)],
                ),
            )
        }
        Notice::SessionEnded { info, why } => {
            let name = info.technician.display_name();
            let why = s.why(*why);
            (
                t.ended_summary.clone(),
                fill(&t.ended_body, &[("name", name), ("why", why)]),
            )
        }
        Notice::PromptTimedOut { technician } => {
            let name = technician.display_name();
            (
                t.timed_out_summary.clone(),
                fill(&t.timed_out_body, &[("name", name)]),
            )
        }
        Notice::UnsupportedSession { technician } => {
            let name = technician.display_name();
            (
                t.unsupported_summary.clone(),
                fill(&t.unsupported_body, &[("name", name)]),
            )
        }
    }
}

/// Listens to the core's notices until it stops. Run it on the runtime.
pub async fn run(mut rx: broadcast::Receiver<Notice>, strings: Arc<Strings>) {
    let warned = Arc::new(AtomicBool::new(false));
    loop {
        let n = match rx.recv().await {
            Ok(n) => n,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => break,
        };
        let (summary, body) = texts(&n, &strings);
        let warned = warned.clone();
        // D-Bus calls block: keep them off the runtime's workers.
        tokio::task::spawn_blocking(move || {
            let shown = notify_rust::Notification::new()
                .appname("Accord")
                .summary(&summary)
                .body(&body)
                .show();
            if let Err(e) = shown
                && !warned.swap(true, Ordering::Relaxed)
            {
                tracing::info!(
                    "no desktop notifications ({e}); the banner and tray still show the state"
                );
            }
        });
    }
}
