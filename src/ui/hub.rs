//! The meeting point of the core (async, on the runtime's threads) and the
//! windows (on the main thread), and the [`Prompter`] the broker asks.
//!
//! Fail closed (O6, O7, O8): the hub knows whether the UI is alive. Once it is
//! marked dead (no display, window failure, panic on the UI thread), every
//! pending and future `ask` is an error, which the broker turns into a
//! refusal, and [`Prompter::closed`] resolves, which ends any session with
//! `ui_lost`. A prompt whose `ask` future the broker drops (deadline,
//! shutdown, technician gone) is withdrawn from the hub by a drop guard, so
//! the window disappears instead of offering an answer nobody waits for.

use crate::broker::{
    Answer, PromptError, PromptRequest, Prompter, Screen, ScreenError, ScreenRequest, SessionInfo,
};
use std::future::Future;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::{oneshot, watch};
use uuid::Uuid;

/// A prompt waiting for the clinician.
pub struct Pending {
    pub req: PromptRequest,
    /// When the hub received it (first-frame latency is measured from here).
    pub posted: Instant,
    reply: Option<oneshot::Sender<Answer>>,
}

/// What the windows need to show, and the wake-ups.
#[derive(Default)]
pub struct HubState {
    pub prompts: Vec<Pending>,
    pub session: Option<SessionInfo>,
    /// Set by the tray's "Historique".
    pub history_requested: bool,
    /// The core has stopped: close every window and return.
    pub quit: bool,
    /// Set once the UI is gone for good.
    pub dead: Option<String>,
    /// The running window's context, to wake it (`request_repaint`).
    pub ctx: Option<egui::Context>,
    /// The clinician's recent decisions as lines, most recent first
    /// ("Historique", [`super::history`]).
    pub history: Vec<String>,
    /// Bumped by every [`Hub::wake`]: lets a watcher of the state (the
    /// window host) tell a change from a spurious wake-up.
    pub generation: u64,
}

/// The window whose root viewport is what must be seen ([`HubState::showing`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Root {
    /// The prompt with this id, alone (no session runs).
    Prompt(Uuid),
    /// The banners of the session with this id.
    Banner(Uuid),
    /// The history.
    History,
}

/// What the windows must show for a state: one root window and, over the
/// banners, the question asked during the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Showing {
    pub root: Option<Root>,
    /// The prompt shown over the banners (a request for control),
    /// in a window of its own; the banners stay (O7).
    pub over_banner: Option<Uuid>,
}

impl HubState {
    /// What must be on screen. While a session runs its banners are the
    /// root and stay; a prompt asked then (a request for control) is shown
    /// over them, not instead of them and not after them: the banner
    /// window lasts as long as the session, so a prompt that waited for it
    /// to close would never be seen. Without a session the
    /// first prompt asked is the root; the history comes last.
    pub fn showing(&self) -> Showing {
        let first = self.prompts.first().map(|p| p.req.id);
        match &self.session {
            Some(s) => Showing {
                root: Some(Root::Banner(s.id)),
                over_banner: first,
            },
            None => Showing {
                root: first
                    .map(Root::Prompt)
                    .or(self.history_requested.then_some(Root::History)),
                over_banner: None,
            },
        }
    }

    /// Something must be on screen: a prompt, the banners or the history.
    pub fn needs_window(&self) -> bool {
        self.showing().root.is_some()
    }

    /// The windows must close for good.
    pub fn over(&self) -> bool {
        self.quit || self.dead.is_some()
    }
}

/// Shared between the prompter (core side) and the UI thread.
pub struct Hub {
    state: Mutex<HubState>,
    cond: Condvar,
    alive: watch::Sender<bool>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            state: Mutex::new(HubState::default()),
            cond: Condvar::new(),
            alive: watch::Sender::new(true),
        }
    }
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    /// Locks the state. A poisoned lock (a panic while holding it) is taken
    /// over: the data is plain and the dead flag must still be settable.
    pub fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wakes the main thread (waiting for work) and the running window.
    pub fn wake(&self) {
        let ctx = {
            let mut g = self.lock();
            g.generation = g.generation.wrapping_add(1);
            g.ctx.clone()
        };
        self.cond.notify_all();
        if let Some(ctx) = ctx {
            ctx.request_repaint();
        }
    }

    /// Blocks the main thread until `ready` says there is something to do.
    /// No timeout: an idle agent does not poll (no repaint loop, no timer).
    pub fn wait_until(&self, mut ready: impl FnMut(&HubState) -> bool) -> MutexGuard<'_, HubState> {
        let g = self.lock();
        self.cond
            .wait_while(g, |s| !ready(s))
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Like [`Hub::wait_until`], but gives up after `timeout`.
    pub fn wait_until_for(
        &self,
        timeout: std::time::Duration,
        mut ready: impl FnMut(&HubState) -> bool,
    ) -> MutexGuard<'_, HubState> {
        let g = self.lock();
        match self.cond.wait_timeout_while(g, timeout, |s| !ready(s)) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        }
    }

    /// Adds a prompt; `reply` gets the answer. An error when the UI is dead.
    pub fn post(
        &self,
        req: PromptRequest,
        reply: oneshot::Sender<Answer>,
    ) -> Result<(), PromptError> {
        {
            let mut g = self.lock();
            if let Some(why) = &g.dead {
                return Err(PromptError::Unavailable(why.clone()));
            }
            g.prompts.push(Pending {
                req,
                posted: Instant::now(),
                reply: Some(reply),
            });
        }
        self.wake();
        Ok(())
    }

    /// Removes prompt `id` unanswered (its `reply` is dropped).
    pub fn withdraw(&self, id: Uuid) {
        let removed = {
            let mut g = self.lock();
            let before = g.prompts.len();
            g.prompts.retain(|p| p.req.id != id);
            before != g.prompts.len()
        };
        if removed {
            self.wake();
        }
    }

    /// The clinician's answer to prompt `id`; `false` if it was withdrawn
    /// meanwhile (the broker no longer waits for it).
    pub fn answer(&self, id: Uuid, answer: Answer) -> bool {
        let sent = {
            let mut g = self.lock();
            let Some(i) = g.prompts.iter().position(|p| p.req.id == id) else {
                return false;
            };
            let mut p = g.prompts.remove(i);
            p.reply.take().is_some_and(|tx| tx.send(answer).is_ok())
        };
        self.wake();
        sent
    }

    /// The UI is gone for good: refuse what is pending, refuse what comes,
    /// and let the broker end the session (`closed()` resolves).
    pub fn mark_dead(&self, why: impl Into<String>) {
        let why = why.into();
        {
            let mut g = self.lock();
            if g.dead.is_none() {
                tracing::error!("user interface unavailable: {why}");
                g.dead = Some(why);
            }
            // Dropping the senders makes every waiting `ask` return an error.
            g.prompts.clear();
            g.ctx = None;
        }
        self.alive.send_replace(false);
        self.cond.notify_all();
    }

    pub fn is_dead(&self) -> bool {
        self.lock().dead.is_some()
    }

    /// The core stopped: windows close, the main thread returns.
    pub fn quit(&self) {
        self.lock().quit = true;
        self.wake();
    }

    /// The banner's source: the session the core reports.
    pub fn set_session(&self, s: Option<SessionInfo>) {
        {
            let mut g = self.lock();
            if g.session == s {
                return;
            }
            g.session = s;
        }
        self.wake();
    }

    /// Opens the history window with these lines (most recent first).
    pub fn show_history(&self, newest_first: Vec<String>) {
        {
            let mut g = self.lock();
            g.history = newest_first;
            g.history_requested = true;
        }
        self.wake();
    }
}

/// Withdraws the prompt when the broker drops the `ask` future.
struct Withdraw {
    hub: Arc<Hub>,
    id: Uuid,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        self.hub.withdraw(self.id);
    }
}

/// The [`Prompter`] the broker holds: posts to the hub, awaits the answer.
#[derive(Clone)]
pub struct UiPrompter {
    hub: Arc<Hub>,
}

impl UiPrompter {
    pub fn new(hub: Arc<Hub>) -> UiPrompter {
        UiPrompter { hub }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }
}

impl Prompter for UiPrompter {
    fn ask(&self, req: PromptRequest) -> impl Future<Output = Result<Answer, PromptError>> + Send {
        let hub = self.hub.clone();
        async move {
            if crate::platform::wayland_session() && !crate::mutter::available_here().await {
                return Err(PromptError::UnsupportedSession(
                    "this session is Wayland (XDG_SESSION_TYPE or WAYLAND_DISPLAY) without GNOME's Mutter remote-desktop API".into(),
                ));
            }
            let (tx, rx) = oneshot::channel();
            let id = req.id;
            hub.post(req, tx)?;
            let _withdraw = Withdraw {
                hub: hub.clone(),
                id,
            };
            rx.await.map_err(|_| {
                PromptError::Unavailable(
                    hub.lock()
                        .dead
                        .clone()
                        .unwrap_or_else(|| "the prompt closed without an answer".into()),
                )
            })
        }
    }

    fn closed(&self) -> impl Future<Output = ()> + Send {
        let mut alive = self.hub.alive.subscribe();
        async move {
            let _ = alive.wait_for(|a| !*a).await;
        }
    }

    /// `accord agent` runs in the clinician's session: it starts the server
    /// itself.
    #[cfg(unix)]
    async fn open_screen(&self, req: ScreenRequest) -> Result<Screen, ScreenError> {
        crate::launch::screen_here(&req).await
    }
}

/// Marks the hub dead when dropped, unless disarmed: held by the UI thread
/// so that a panic (which drops it while unwinding) fails closed.
pub struct DeadOnDrop {
    pub hub: Arc<Hub>,
    pub armed: bool,
}

impl Drop for DeadOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let why = if std::thread::panicking() {
                "the user interface thread panicked"
            } else {
                "the user interface stopped"
            };
            self.hub.mark_dead(why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Mode;
    use std::time::{Duration, SystemTime};

    fn identity() -> crate::tls::Identity {
        crate::tls::Identity {
            subject: "CN=Jeanne Martin".into(),
            fingerprint: format!("sha256:{}", "ab".repeat(32)),
            common_name: Some("Jeanne Martin".into()),
            organization: None,
        }
    }

    fn request(raise: bool) -> PromptRequest {
        let timeout = Duration::from_secs(60);
        PromptRequest {
            id: Uuid::new_v4(),
            technician: identity(),
            peer: "10.1.2.3:51234".parse().unwrap(),
            ticket: "INC-1".into(),
            reason: "Imprimante".into(),
            asked: Mode::Control,
            control_offered: true,
            deadline: Instant::now() + timeout,
            timeout,
            arm_delay: Duration::from_secs(1),
            clipboard: crate::policy::Clipboard::None,
            raise,
            confirm: false,
            replaced: None,
        }
    }

    fn session() -> SessionInfo {
        SessionInfo {
            id: Uuid::new_v4(),
            technician: identity(),
            ticket: "INC-1".into(),
            reason: "Imprimante".into(),
            mode: Mode::View,
            started: SystemTime::now(),
            started_at: Instant::now(),
            clipboard: crate::policy::Clipboard::None,
            paused: false,
        }
    }

    fn post(hub: &Hub, req: PromptRequest) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        hub.post(req, tx).unwrap();
        rx
    }

    #[test]
    fn nothing_to_show_when_idle_and_the_history_last() {
        let hub = Hub::new();
        assert_eq!(hub.lock().showing(), Showing::default());
        assert!(!hub.lock().needs_window());
        hub.show_history(vec![]);
        assert_eq!(hub.lock().showing().root, Some(Root::History));
        let req = request(false);
        let id = req.id;
        let _rx = post(&hub, req);
        let s = hub.lock().showing();
        assert_eq!(
            s.root,
            Some(Root::Prompt(id)),
            "a prompt wins over the history"
        );
        assert_eq!(s.over_banner, None);
    }

    /// A request for control asked while the session's banner is
    /// on screen must be shown, over the banner, which stays.
    #[test]
    fn a_request_for_control_during_a_session_shows_over_the_banner() {
        let hub = Hub::new();
        let info = session();
        let sid = info.id;
        hub.set_session(Some(info));
        assert_eq!(
            hub.lock().showing(),
            Showing {
                root: Some(Root::Banner(sid)),
                over_banner: None
            }
        );
        let req = request(true);
        let id = req.id;
        let _rx = post(&hub, req);
        let s = hub.lock().showing();
        assert_eq!(s.root, Some(Root::Banner(sid)), "the banner stays (O7)");
        assert_eq!(s.over_banner, Some(id), "the question is shown at once");
        assert!(hub.lock().needs_window());
        // Answered: the banner alone again.
        assert!(hub.answer(id, Answer::Control));
        assert_eq!(hub.lock().showing().over_banner, None);
        assert_eq!(hub.lock().showing().root, Some(Root::Banner(sid)));
        // Withdrawn (deadline): gone too.
        let req = request(true);
        let id = req.id;
        let _rx = post(&hub, req);
        assert_eq!(hub.lock().showing().over_banner, Some(id));
        hub.withdraw(id);
        assert_eq!(hub.lock().showing().over_banner, None);
    }

    #[test]
    fn the_first_prompt_asked_is_the_one_shown() {
        let hub = Hub::new();
        let (a, b) = (request(false), request(false));
        let (ida, idb) = (a.id, b.id);
        let _ra = post(&hub, a);
        let _rb = post(&hub, b);
        assert_eq!(hub.lock().showing().root, Some(Root::Prompt(ida)));
        hub.withdraw(ida);
        assert_eq!(hub.lock().showing().root, Some(Root::Prompt(idb)));
    }
}
