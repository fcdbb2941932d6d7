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

impl HubState {
    /// Something must be on screen: a prompt, the banners or the history.
    pub fn needs_window(&self) -> bool {
        !self.prompts.is_empty() || self.session.is_some() || self.history_requested
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
            if crate::platform::wayland_session() {
                return Err(PromptError::UnsupportedSession(
                    "this session is Wayland (XDG_SESSION_TYPE or WAYLAND_DISPLAY)".into(),
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
