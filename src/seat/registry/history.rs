//! A helper's `history` request: her own past sessions, from the audit
//! log, at most once a second per helper.

use super::{HISTORY_INTERVAL, Helpers};
use crate::seat::proto::{MAX_HISTORY, ToHelper, WireHistory};
use std::sync::Arc;

impl Helpers {
    /// `history`: answered by a task of this helper's, at once if none runs,
    /// else by its next answer. Asking often is not a breach (a window
    /// refreshing), it only never costs more than one answer a second.
    pub(super) fn on_history(self: &Arc<Self>, conn: u64) {
        {
            let mut r = self.reg();
            let Some(c) = r.conns.get_mut(&conn) else {
                return;
            };
            if c.history.running {
                c.history.again = true;
                return;
            }
            c.history.running = true;
        }
        tokio::spawn(self.clone().answer_history(conn));
    }

    /// Answers helper `conn`'s `history` until it stops asking: its own
    /// uid's entries (`SO_PEERCRED`, never what the helper says), read off
    /// the reactor so that a big log stalls no other helper. A log that
    /// cannot be read is an empty history and a warning here, not the
    /// helper's fault.
    pub(super) async fn answer_history(self: Arc<Self>, conn: u64) {
        loop {
            let Some((uid, last)) = self
                .reg()
                .conns
                .get(&conn)
                .map(|c| (c.id.uid, c.history.last.clone()))
            else {
                return;
            };
            let path = self.audit_log.clone();
            let read = tokio::task::spawn_blocking(move || {
                let len = std::fs::metadata(&path)
                    .map_err(|e| crate::audit::AuditError::io(&path, e))?
                    .len();
                match last {
                    Some((at, items)) if at == len => Ok((len, items)),
                    _ => crate::audit::history::read(&path, Some(uid), MAX_HISTORY)
                        .map(|items| (len, Arc::new(items))),
                }
            })
            .await;
            let items = match read {
                Ok(Ok((len, items))) => {
                    if let Some(c) = self.reg().conns.get_mut(&conn) {
                        c.history.last = Some((len, items.clone()));
                    }
                    items.as_ref().clone()
                }
                Ok(Err(e)) => {
                    tracing::warn!(conn, uid, "history: {e}");
                    Vec::new()
                }
                Err(e) => {
                    tracing::warn!(conn, uid, "history: the reader failed: {e}");
                    Vec::new()
                }
            };
            self.send(conn, ToHelper::History(WireHistory { items }));
            tokio::time::sleep(HISTORY_INTERVAL).await;
            let mut r = self.reg();
            let Some(c) = r.conns.get_mut(&conn) else {
                return;
            };
            if !std::mem::take(&mut c.history.again) {
                c.history.running = false;
                return;
            }
        }
    }
}
