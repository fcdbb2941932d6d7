//! What keeps the helpers and the running session in step: the session
//! ends when its consent no longer holds, and every helper hears the
//! broker's state.

use super::Helpers;
use crate::broker::{Activity, EndReason};
use crate::policy::SeatMode;
use crate::seat::proto::{ToHelper, WireNotice};
use crate::seat::rule;
use std::sync::Arc;

impl Helpers {
    /// Ends the running session when its consent no longer holds: its
    /// helper left, the seat switched user, the screen locked. Run it as a
    /// task for the life of the service.
    pub async fn monitor(self: Arc<Self>) {
        let Some(ctl) = self.control.get().cloned() else {
            return;
        };
        let mut state = ctl.state();
        let mut seat = self.seat.clone();
        let mut changed = self.changed.subscribe();
        loop {
            if let Some(why) = self.broken_consent(&state.borrow_and_update().activity) {
                tracing::warn!("ending the session: {}", why.as_str());
                ctl.end_with(why);
            }
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                r = seat.changed() => if r.is_err() { return },
                r = changed.changed() => if r.is_err() { return },
            }
        }
    }

    pub(super) fn broken_consent(&self, activity: &Activity) -> Option<EndReason> {
        let Activity::InSession(info) = activity else {
            return None;
        };
        let r = self.reg();
        let Some((consent, owner)) = r
            .owners
            .get(&info.id)
            .and_then(|o| Some((o, r.conns.get(&o.conn)?)))
        else {
            return Some(EndReason::UiLost);
        };
        if self.mode == SeatMode::Logind {
            // Still the session she consented in, and her helper still
            // answers for it (a managed helper's user may have opened a
            // second graphical session meanwhile).
            let seat = self.seat.borrow();
            match rule::answers_for(&owner.id, &seat) {
                Some(s) if Some(&s.id) == consent.session.as_ref() => {
                    if s.locked && self.end_on_lock {
                        return Some(EndReason::ScreenLocked);
                    }
                }
                _ => return Some(EndReason::UserSwitched),
            }
        }
        (owner.id.screensaver && self.end_on_lock).then_some(EndReason::ScreenLocked)
    }

    /// Sends every helper its state when the broker's state changes.
    pub async fn broadcast_state(self: Arc<Self>) {
        let Some(ctl) = self.control.get().cloned() else {
            return;
        };
        let mut state = ctl.state();
        let mut changed = self.changed.subscribe();
        let mut notices = ctl.notices();
        loop {
            tokio::select! {
                r = state.changed() => if r.is_err() { return },
                r = changed.changed() => if r.is_err() { return },
                n = notices.recv() => {
                    if let Ok(n) = n
                        && let Some(conn) = self.notice_target(&n)
                    {
                        self.send(conn, ToHelper::Notice(WireNotice::from_notice(&n)));
                    }
                    continue;
                }
            }
            state.borrow_and_update();
            let conns: Vec<u64> = self.reg().conns.keys().copied().collect();
            for conn in conns {
                if let Some(m) = self.state_for(conn) {
                    self.send(conn, m);
                }
            }
        }
    }
}
