//! Watching a running session from the technician's side:
//! `accord connect` learns what ended its session and when the mode
//! changes, which it cannot learn on the session's own connection (raw RFB
//! after `accepted`). Wire: [`crate::protocol`], "Watching a session".
//!
//! A watch grants nothing and shows nothing to the clinician, so it is not
//! a prompt: no busy slot, no rate limit, nothing recorded when admitted.
//! It tells what the technician's own session does, so it is admitted only
//! from the certificate of that running session (the rule of a request for
//! control); a refusal is recorded like any refused request, within the
//! origin's budget. One watcher per session: nobody else can hold a second
//! line open on it.

use super::{Activity, Broker, EndReason, Notice, Prompter, Shared};
use crate::protocol::{self, Mode, RefusalCode};
use crate::tls::Identity;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

/// Longest a watch line may take to leave: a technician who does not read
/// loses the watch, never holds up the agent.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The session being watched, if any (one at a time, as sessions are).
#[derive(Default)]
pub(super) struct Slot(Mutex<Option<Uuid>>);

/// Frees the slot however the watch ends.
struct SlotGuard<'a> {
    slot: &'a Slot,
    session: Uuid,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.slot.0.lock()
            && *s == Some(self.session)
        {
            *s = None;
        }
    }
}

/// An admitted watch: what it follows, from the moment of admission.
struct Admitted<'a> {
    _slot: SlotGuard<'a>,
    mode: Mode,
    state: watch::Receiver<super::AgentState>,
    notices: broadcast::Receiver<Notice>,
}

/// How a watch ended, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    Refused(RefusalCode),
    /// The session ended; `None` when its reason could not be found (the
    /// watch then closes without an `ended` line).
    Ended(Option<EndReason>),
    /// The technician closed the watch, sent bytes, or stopped reading.
    Closed,
}

impl<P: Prompter> Broker<P> {
    /// Serves one watch connection (`{"v":1,"watch":"<uuid>"}`, already
    /// read by the listener) until the session ends or the technician goes.
    pub async fn watch<S>(
        &self,
        mut stream: S,
        technician: Identity,
        peer: SocketAddr,
        session: Uuid,
    ) -> WatchOutcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Admitted {
            _slot,
            mode,
            mut state,
            mut notices,
        } = match admit_watch(&self.shared, &technician, session) {
            Ok(a) => a,
            Err((code, detail)) => {
                self.turn_away(&mut stream, peer, code, &technician, &detail)
                    .await;
                return WatchOutcome::Refused(code);
            }
        };
        tracing::info!(%peer, %session, "session watched by its technician");
        // The current mode at once: the technician knows the watch is on,
        // and sees a change made before it was.
        if !send(&mut stream, &protocol::encode_watch_mode(mode, None)).await {
            return WatchOutcome::Closed;
        }
        let mut last = mode;
        loop {
            // Copied out: the state's lock is not held across an await.
            let now = match &state.borrow_and_update().activity {
                Activity::InSession(i) if i.id == session => Some(i.mode),
                _ => None,
            };
            match now {
                Some(m) if m != last => {
                    last = m;
                    // Both changes are the clinician's: "switch to view
                    // only", or "Allow control" for a request for control.
                    let line = protocol::encode_watch_mode(m, Some("user"));
                    if !send(&mut stream, &line).await {
                        return WatchOutcome::Closed;
                    }
                }
                Some(_) => {}
                None => {
                    let why = end_reason(&mut notices, session);
                    if let Some(why) = why {
                        let line = protocol::encode_watch_ended(why.as_str());
                        send(&mut stream, &line).await;
                    }
                    let _ = stream.shutdown().await;
                    return WatchOutcome::Ended(why);
                }
            }
            tokio::select! {
                changed = state.changed() => {
                    if changed.is_err() {
                        return WatchOutcome::Closed;
                    }
                }
                // Nothing may come from the technician on a watch: bytes
                // or a close end it.
                _ = super::wait_readable_or_closed(&mut stream) => {
                    return WatchOutcome::Closed;
                }
            }
        }
    }
}

/// Checks the watch of `session` by `tech` and takes the slot. Subscribes
/// before checking, so that no change after admission is missed.
fn admit_watch<'a>(
    shared: &'a Shared,
    tech: &Identity,
    session: Uuid,
) -> Result<Admitted<'a>, (RefusalCode, String)> {
    let notices = shared.notices.subscribe();
    let state = shared.state.subscribe();
    let inner = shared
        .inner
        .lock()
        .map_err(|_| (RefusalCode::Policy, "internal state poisoned".to_string()))?;
    let mode = super::own_session(&inner, tech, session, "watch")?;
    let mut slot = shared
        .watcher
        .0
        .lock()
        .map_err(|_| (RefusalCode::Policy, "internal state poisoned".to_string()))?;
    if slot.is_some() {
        return Err((
            RefusalCode::Busy,
            format!("session {session} is already watched"),
        ));
    }
    *slot = Some(session);
    drop(slot);
    drop(inner);
    // The mode as the state shows it (the state follows `inner` by a
    // moment): the watch compares later states with this one, so a change
    // caught halfway is not announced twice.
    let mode = match &state.borrow().activity {
        Activity::InSession(i) if i.id == session => i.mode,
        _ => mode,
    };
    Ok(Admitted {
        _slot: SlotGuard {
            slot: &shared.watcher,
            session,
        },
        mode,
        state,
        notices,
    })
}

/// Why `session` ended, from the notices: the broker sends `SessionEnded`
/// before it leaves the session state, so it is already there once the
/// state says the session is gone. `None` if it was missed (lagged).
fn end_reason(notices: &mut broadcast::Receiver<Notice>, session: Uuid) -> Option<EndReason> {
    loop {
        match notices.try_recv() {
            Ok(Notice::SessionEnded { info, why }) if info.id == session => return Some(why),
            Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
            Err(_) => return None,
        }
    }
}

/// Writes one line within [`WRITE_TIMEOUT`]; false when the technician is
/// gone or not reading.
async fn send<S: AsyncWrite + Unpin>(s: &mut S, line: &[u8]) -> bool {
    let write = async {
        s.write_all(line).await?;
        s.flush().await
    };
    matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
}
