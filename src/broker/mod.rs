//! The consent state machine (O6, O7, O8).
//!
//! One prompt and one session at a time; any other request is `busy` at once.
//! The broker never accepts on its own: it asks a [`Prompter`] and enforces the
//! deadline itself, so a prompter that never answers, errors or disappears
//! means refused. Every decision is on record ([`Journal`]) before the
//! technician hears of it.
//!
//! The rules are [`consent::Consent`], a sans-IO core. One task, the
//! [`driver`], owns it and carries out what it decides; connection tasks
//! ([`conn`]) and [`SessionControl`] only send it inputs. The path of a
//! request: the listener's task calls [`Broker::handle`], which registers
//! the connection with the driver and then writes what the driver tells
//! it; the driver asks the prompter, opens the screen, and hands the
//! connection's task the relay to run.

pub mod budget;
mod conn;
pub mod consent;
mod driver;
mod ratelimit;
pub mod state;
pub mod watcher;

pub use crate::audit::record::{
    DecidedBy, EndReason, Event, Journal, JournalError, LocalUser, LogUnusable, MemoryJournal,
    UnavailableJournal,
};
pub use crate::screen::{Grants, Screen, ScreenError, ScreenRequest, StoppedByHer};
pub use state::{
    Activity, AgentState, Listening, Notice, PromptRequest, ReplacedHelper, SessionInfo,
};

use crate::policy::Policy;
use crate::protocol::{RefusalCode, Request};
use crate::tls::Identity;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{broadcast, mpsc, watch};
use uuid::Uuid;

/// The clinician's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Control,
    ViewOnly,
    Refused,
    /// "Continuer", to the question of the consent period's end (only
    /// that question offers it; anywhere else it grants nothing).
    Continue,
}

/// Why the prompter could not ask.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    /// No display, window failed, UI thread gone: refused `policy`.
    #[error("the user interface cannot ask: {0}")]
    Unavailable(String),
    /// Nobody in front of the screen can answer (no helper in the active
    /// session, screen locked, several candidates): refused `no_user`.
    #[error("nobody can answer: {0}")]
    NoUser(String),
    /// The person in front of the screen is in a session Accord cannot
    /// share (Wayland): refused `unsupported_session`, and she is told.
    #[error("the session in front of the screen cannot be shared: {0}")]
    UnsupportedSession(String),
}

/// Who asks the clinician. The UI implements it; tests script it.
pub trait Prompter: Send + Sync + 'static {
    /// Shows the request and resolves with the clinician's answer. The broker
    /// drops the future at the deadline, on shutdown, or when the technician
    /// goes away: the prompt must then disappear.
    fn ask(&self, req: PromptRequest) -> impl Future<Output = Result<Answer, PromptError>> + Send;

    /// Resolves when the UI is gone for good (thread died, window cannot
    /// open). The broker then ends the session (`ui_lost`) and refuses every
    /// request (`policy`): nobody could follow or stop a session (O7, O8).
    fn closed(&self) -> impl Future<Output = ()> + Send {
        std::future::pending()
    }

    /// Who answered prompt `id`, once `ask` has
    /// returned an answer: recorded in `decision` and `session_started`.
    fn consenter(&self, _id: Uuid) -> Option<LocalUser> {
        None
    }

    /// Who was asked prompt `id` when nobody answered it in time: recorded
    /// in that `decision` (`by: timeout`), so that the person asked can find
    /// her own unanswered requests.
    fn asked(&self, _id: Uuid) -> Option<LocalUser> {
        None
    }

    /// Starts the VNC server for granted session `req.session` in the
    /// consenting user's graphical session and connects to it. The server
    /// must stop when [`Screen::keep`] drops, or when the session is no
    /// longer running.
    fn open_screen(
        &self,
        req: ScreenRequest,
    ) -> impl Future<Output = Result<Screen, ScreenError>> + Send {
        let _ = req;
        async {
            Err(ScreenError(
                "this user interface cannot start a VNC server ([upstream] launch)".into(),
            ))
        }
    }
}

/// What every part of the broker shares: the policy, the log, what the
/// UI watches.
struct Shared {
    policy: Arc<Policy>,
    journal: Arc<dyn Journal>,
    state: watch::Sender<AgentState>,
    notices: broadcast::Sender<Notice>,
    /// How many refusals each origin may put in the audit log.
    rejections: budget::RejectLimiter,
    /// Numbers connections for the core.
    next_conn: AtomicU64,
}

impl Shared {
    /// Records a refused request within its origin's budget ([`budget`]);
    /// beyond it the refusal is only counted, and the count goes into the
    /// origin's next record.
    fn reject(
        &self,
        peer: SocketAddr,
        why: &'static str,
        technician: Option<Identity>,
        detail: String,
    ) {
        tracing::info!(%peer, why, "request rejected: {detail}");
        let class = match &technician {
            Some(t) => budget::RejectClass::Technician(t.fingerprint.clone()),
            None => budget::RejectClass::Anonymous(budget::source_of(peer.ip())),
        };
        let Some(skipped) = self.rejections.admit(&class, std::time::Instant::now()) else {
            tracing::debug!("rejection of {peer} not recorded (over its origin's budget)");
            return;
        };
        let detail = if skipped > 0 {
            format!(
                "{detail} ({skipped} earlier rejections of the same origin not recorded: over budget)"
            )
        } else {
            detail
        };
        if let Err(e) = self.journal.record(&Event::RequestRejected {
            peer,
            why,
            technician,
            detail,
        }) {
            tracing::error!("{e}");
        }
    }
}

/// The broker: shared by every connection task.
pub struct Broker<P: Prompter> {
    shared: Arc<Shared>,
    prompter: Arc<P>,
    to_driver: mpsc::UnboundedSender<driver::ToDriver>,
}

/// The UI's handle on the running session (O8: end it; O6: restrict it;
/// hide her screen).
#[derive(Clone)]
pub struct SessionControl {
    shared: Arc<Shared>,
    to_driver: mpsc::UnboundedSender<driver::ToDriver>,
}

/// How a request ended, for the connection task and tests.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Refused(RefusalCode),
    Ended(EndReason),
    /// A request for control of a running session was granted; the session
    /// goes on on its own connection.
    Raised,
}

impl<P: Prompter> Broker<P> {
    /// Starts the broker's task (on the current tokio runtime).
    pub fn new(policy: Arc<Policy>, journal: Arc<dyn Journal>, prompter: P) -> Arc<Self> {
        let (state, _) = watch::channel(AgentState::default());
        let (notices, _) = broadcast::channel(32);
        let shared = Arc::new(Shared {
            policy,
            journal,
            state,
            notices,
            rejections: budget::RejectLimiter::default(),
            next_conn: AtomicU64::new(1),
        });
        let prompter = Arc::new(prompter);
        let to_driver = driver::spawn(shared.clone(), prompter.clone());
        Arc::new(Broker {
            shared,
            prompter,
            to_driver,
        })
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.shared.policy
    }

    pub fn control(&self) -> SessionControl {
        SessionControl {
            shared: self.shared.clone(),
            to_driver: self.to_driver.clone(),
        }
    }

    pub fn prompter(&self) -> &P {
        &self.prompter
    }

    /// Records an event; the caller decides what a failure means.
    pub fn record(&self, ev: &Event) -> Result<(), JournalError> {
        self.shared.journal.record(ev)
    }

    /// Sets whether the agent listens (shown in the tray and `accord status`).
    pub fn set_listening(&self, l: Listening) {
        self.shared.state.send_modify(|s| s.listening = l);
    }

    /// Refuses pending prompts (`agent_shutting_down`) and ends the session
    /// (`agent_stopped`). Idempotent.
    pub fn shutdown(&self) {
        self.control().input(consent::Input::Shutdown);
    }

    /// Watches the prompter; when it is gone, blocks requests and ends the
    /// session with `ui_lost`. Run it as its own task.
    pub async fn watch_prompter(self: Arc<Self>) {
        self.prompter.closed().await;
        tracing::error!("user interface lost: ending any session and refusing requests");
        self.control().ui_lost();
    }

    /// Records a refused request within its origin's budget ([`budget`]);
    /// beyond it the refusal is only counted. The technician is answered
    /// either way.
    pub fn reject_request(
        &self,
        peer: SocketAddr,
        why: &'static str,
        technician: Option<Identity>,
        detail: String,
    ) {
        self.shared.reject(peer, why, technician, detail);
    }

    fn next_conn(&self) -> consent::ConnId {
        self.shared.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// Handles one authenticated, parsed request to the end: prompt, decision,
    /// session. `tech_stream` is the technician's TLS stream, positioned right
    /// after the request line.
    pub async fn handle<S>(
        &self,
        tech_stream: S,
        technician: Identity,
        peer: SocketAddr,
        request: Request,
    ) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self.next_conn();
        let input = consent::Input::Request {
            conn,
            technician,
            peer,
            request,
            log: self.shared.journal.health(),
        };
        match conn::serve(tech_stream, conn, input, &self.to_driver).await {
            consent::Closed::Request(o) => o,
            consent::Closed::Watch(_) => Outcome::Refused(RefusalCode::Policy),
        }
    }

    /// Serves one watch connection (`{"v":1,"watch":"<uuid>"}`, already
    /// read by the listener) until the session ends or the technician goes
    /// ([`watcher`]).
    pub async fn watch<S>(
        &self,
        stream: S,
        technician: Identity,
        peer: SocketAddr,
        session: Uuid,
    ) -> watcher::WatchOutcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let conn = self.next_conn();
        let input = consent::Input::Watch {
            conn,
            technician,
            peer,
            session,
        };
        tracing::info!(%peer, %session, "watch of a session asked");
        match conn::serve(stream, conn, input, &self.to_driver).await {
            consent::Closed::Watch(o) => o,
            consent::Closed::Request(_) => watcher::WatchOutcome::Closed,
        }
    }
}

impl SessionControl {
    fn input(&self, input: consent::Input) {
        // The driver outlives every handle; if it is gone, so is the broker.
        let _ = self.to_driver.send(driver::ToDriver::Input(input));
    }

    /// The kill switch (O8): closes both legs at once. No-op without a session.
    pub fn end(&self) {
        self.end_with(EndReason::User);
    }

    /// Ends the session with a given reason (screen lock, shutdown...).
    pub fn end_with(&self, why: EndReason) {
        self.input(consent::Input::End(why));
    }

    /// Restricts a control session to viewing (O6). Recorded as `mode_changed`.
    pub fn set_view_only(&self) {
        self.input(consent::Input::ViewOnly);
    }

    /// Hides her screen from the technician (`on`: nothing of it reaches
    /// them and their input is held) or shows it again ("Masquer mon
    /// écran" / "Reprendre"). Recorded as `paused` / `resumed`. No-op
    /// without a session.
    pub fn pause(&self, on: bool) {
        self.input(consent::Input::Pause(on));
    }

    /// The agent's state, for the tray, banner and `accord status`.
    pub fn state(&self) -> watch::Receiver<AgentState> {
        self.shared.state.subscribe()
    }

    /// Session started/ended and unanswered prompts, for notifications.
    pub fn notices(&self) -> broadcast::Receiver<Notice> {
        self.shared.notices.subscribe()
    }

    /// Marks the UI as gone: ends the session (`ui_lost`) and refuses
    /// requests from now on.
    pub fn ui_lost(&self) {
        // Shown at once: the tray and `accord status` must not say "ready"
        // while the message travels.
        self.shared.state.send_modify(|s| {
            s.blocked = Some("the user interface is not available".into());
        });
        self.input(consent::Input::UiLost);
    }
}

/// Resolves when the peer sends anything or closes; never consumes bytes
/// needed later in a legitimate exchange, because nothing may arrive before
/// the decision.
async fn wait_readable_or_closed<S: AsyncRead + Unpin>(s: &mut S) {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    let _ = s.read(&mut b).await;
}
