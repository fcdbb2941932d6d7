//! The consent state machine (O6, O7, O8).
//!
//! One prompt and one session at a time; any other request is `busy` at once.
//! The broker never accepts on its own: it asks a [`Prompter`] and enforces the
//! deadline itself, so a prompter that never answers, errors or disappears
//! means refused. Every decision is on record ([`Journal`]) before the
//! technician hears of it.

pub mod budget;
pub mod events;
mod ratelimit;
pub mod watcher;

pub use events::{
    Activity, AgentState, DecidedBy, EndReason, Event, Journal, JournalError, Listening, LocalUser,
    MemoryJournal, Notice, PromptRequest, ReplacedHelper, SessionInfo, UnavailableJournal,
};

use crate::policy::Policy;
use crate::protocol::{Decision, Mode, RefusalCode, Request};
use crate::session::{self, LiveSession};
use crate::tls::Identity;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, watch};
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

/// What the broker asks of the process in the clinician's graphical
/// session once she has accepted, when `[upstream] launch` is on: start the
/// VNC server for that session and connect to it. Never asked
/// before consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenRequest {
    pub session: Uuid,
    pub launch: crate::policy::Launch,
    /// The mode she granted.
    pub mode: Mode,
    /// What the server itself may do (clipboard, input).
    pub grants: Grants,
}

/// What the server itself may do for a session, from the decision and the
/// policy: a second layer under Accord's RFB filter, so that a bypassed
/// filter still leaks no clipboard and injects no input it must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grants {
    /// The policy's clipboard permission: the server sends her selections
    /// only with `both`, and takes the technician's only with more than
    /// `none`.
    pub clipboard: crate::policy::Clipboard,
    /// Whether the server may inject input at all: not for a view-only
    /// session that can never become control (`allow_control = false`).
    pub input: bool,
}

impl Grants {
    /// For a session granted `mode` under `policy`.
    pub fn for_session(mode: Mode, policy: &crate::policy::Policy) -> Grants {
        Grants {
            clipboard: policy.session.clipboard,
            input: mode == Mode::Control || policy.consent.allow_control,
        }
    }
}

/// A connection to the VNC server started for one session.
pub struct Screen {
    pub upstream: session::Upstream,
    /// For `session_started.upstream`, e.g. `x11vnc (started for the session, pid 4242)`.
    pub describe: String,
    /// Keeps the server running: dropped when the session is over, which
    /// stops it (or nothing, when another process holds the server).
    pub keep: Box<dyn std::any::Any + Send>,
}

/// Why no screen server could be opened (the session ends `upstream`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScreenError(pub String);

enum Busy {
    Prompting,
    InSession,
}

struct Inner {
    busy: Option<Busy>,
    /// Prompt times per technician fingerprint, for the hourly rate limit.
    prompts: HashMap<String, VecDeque<Instant>>,
    current: Option<LiveSession>,
    current_info: Option<SessionInfo>,
    /// A request for control of the running session is being asked: a
    /// second one is `busy` (one prompt at a time).
    raising: bool,
}

struct Shared {
    policy: Arc<Policy>,
    journal: Arc<dyn Journal>,
    state: watch::Sender<AgentState>,
    notices: broadcast::Sender<Notice>,
    inner: Mutex<Inner>,
    shutdown: watch::Sender<bool>,
    ui_lost: watch::Sender<bool>,
    /// How many refusals each origin may put in the audit log.
    rejections: budget::RejectLimiter,
    /// The session `accord connect` watches ([`watcher`]).
    watcher: watcher::Slot,
}

/// The broker: shared by every connection task.
pub struct Broker<P: Prompter> {
    shared: Arc<Shared>,
    prompter: P,
}

/// The UI's handle on the running session (O8: end it; O6: restrict it).
#[derive(Clone)]
pub struct SessionControl {
    shared: Arc<Shared>,
}

/// What the clinician granted, and who she is.
struct Grant {
    id: Uuid,
    mode: Mode,
    local: Option<LocalUser>,
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

/// Clears the busy slot and the displayed activity even if the task is
/// cancelled midway, so the agent can never stay stuck "busy".
struct BusyGuard<'a> {
    shared: &'a Shared,
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.inner.lock() {
            inner.busy = None;
            inner.current = None;
            inner.current_info = None;
        }
        self.shared
            .state
            .send_modify(|s| s.activity = Activity::Idle);
    }
}

/// A pending request for control of a running session: clears the mark
/// and releases the technician's input however the request ends, even if
/// its task is cancelled.
struct RaiseGuard<'a> {
    shared: &'a Shared,
    session: Uuid,
}

impl Drop for RaiseGuard<'_> {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.shared.inner.lock() {
            inner.raising = false;
            if inner
                .current_info
                .as_ref()
                .is_some_and(|i| i.id == self.session)
                && let Some(live) = &inner.current
            {
                live.hold_input(false);
            }
        }
    }
}

impl<P: Prompter> Broker<P> {
    pub fn new(policy: Arc<Policy>, journal: Arc<dyn Journal>, prompter: P) -> Arc<Self> {
        let (state, _) = watch::channel(AgentState::default());
        let (notices, _) = broadcast::channel(32);
        let (shutdown, _) = watch::channel(false);
        let (ui_lost, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            policy,
            journal,
            state,
            notices,
            inner: Mutex::new(Inner {
                busy: None,
                prompts: HashMap::new(),
                current: None,
                current_info: None,
                raising: false,
            }),
            shutdown,
            ui_lost,
            rejections: budget::RejectLimiter::default(),
            watcher: watcher::Slot::default(),
        });
        Arc::new(Broker { shared, prompter })
    }

    pub fn policy(&self) -> &Arc<Policy> {
        &self.shared.policy
    }

    pub fn control(&self) -> SessionControl {
        SessionControl {
            shared: self.shared.clone(),
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
        self.shared.shutdown.send_replace(true);
        self.control().end_with(EndReason::AgentStopped);
    }

    /// Watches the prompter; when it is gone, blocks requests and ends the
    /// session with `ui_lost`. Run it as its own task.
    pub async fn watch_prompter(self: Arc<Self>) {
        self.prompter.closed().await;
        tracing::error!("user interface lost: ending any session and refusing requests");
        self.shared.ui_lost.send_replace(true);
        self.shared.state.send_modify(|s| {
            s.blocked = Some("the user interface is not available".into());
        });
        self.control().end_with(EndReason::UiLost);
    }

    fn reject(&self, peer: SocketAddr, why: RefusalCode, tech: &Identity, detail: &str) {
        self.reject_request(peer, why.as_str(), Some(tech.clone()), detail.to_string());
    }

    /// A request refused before anyone is asked: on record (within its
    /// budget), then the technician is told.
    async fn turn_away<S: AsyncWrite + Unpin>(
        &self,
        tech_stream: &mut S,
        peer: SocketAddr,
        why: RefusalCode,
        tech: &Identity,
        detail: &str,
    ) -> Outcome {
        self.reject(peer, why, tech, detail);
        let retry_after = match why {
            RefusalCode::RateLimited => self.retry_after(tech),
            _ => None,
        };
        let line = crate::protocol::encode_refusal(why, retry_after);
        if tech_stream.write_all(&line).await.is_ok() {
            let _ = tech_stream.flush().await;
        }
        let _ = tech_stream.shutdown().await;
        Outcome::Refused(why)
    }

    /// Records a refused request within its origin's budget
    /// ([`budget`]); beyond it the refusal is only counted, and the count
    /// goes into the origin's next record. The technician is answered
    /// either way.
    pub fn reject_request(
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
        let Some(skipped) = self
            .shared
            .rejections
            .admit(&class, std::time::Instant::now())
        else {
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
        if let Err(e) = self.shared.journal.record(&Event::RequestRejected {
            peer,
            why,
            technician,
            detail,
        }) {
            tracing::error!("{e}");
        }
    }

    /// Checks the one-at-a-time rule, the blocks and the rate limit, and takes
    /// the busy slot. Nothing is shown to the clinician before this passes.
    fn admit(&self, tech: &Identity) -> Result<BusyGuard<'_>, (RefusalCode, String)> {
        self.preflight()?;
        let mut inner = self
            .shared
            .inner
            .lock()
            .map_err(|_| (RefusalCode::Policy, "internal state poisoned".to_string()))?;
        if inner.busy.is_some() {
            return Err((
                RefusalCode::Busy,
                "a prompt or session is already active".into(),
            ));
        }
        self.count_prompt(&mut inner, tech)?;
        inner.busy = Some(Busy::Prompting);
        Ok(BusyGuard {
            shared: &self.shared,
        })
    }

    /// What refuses every request whatever it asks: shutdown, lost UI,
    /// untrustworthy log.
    fn preflight(&self) -> Result<(), (RefusalCode, String)> {
        if *self.shared.shutdown.borrow() {
            return Err((RefusalCode::AgentShuttingDown, "agent shutting down".into()));
        }
        if *self.shared.ui_lost.borrow() {
            return Err((
                RefusalCode::Policy,
                "user interface unavailable: nobody could answer".into(),
            ));
        }
        if let Err(why) = self.shared.journal.health() {
            return Err((RefusalCode::Policy, format!("audit log unusable: {why}")));
        }
        Ok(())
    }

    /// The hourly prompt rate limit per technician (new requests and
    /// requests for control alike): counts one prompt, or refuses.
    fn count_prompt(
        &self,
        inner: &mut Inner,
        tech: &Identity,
    ) -> Result<(), (RefusalCode, String)> {
        let max = self
            .shared
            .policy
            .consent
            .max_prompts_per_technician_per_hour as usize;
        let now = Instant::now();
        let times = inner.prompts.entry(tech.fingerprint.clone()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(3600))
        {
            times.pop_front();
        }
        if times.len() >= max {
            return Err((
                RefusalCode::RateLimited,
                format!("{} prompts in the last hour (limit {max})", times.len()),
            ));
        }
        times.push_back(now);
        Ok(())
    }

    /// Handles one authenticated, parsed request to the end: prompt, decision,
    /// session. `tech_stream` is the technician's TLS stream, positioned right
    /// after the request line.
    pub async fn handle<S>(
        &self,
        mut tech_stream: S,
        technician: Identity,
        peer: SocketAddr,
        request: Request,
    ) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if let Some(session) = request.session {
            return self
                .raise(tech_stream, technician, peer, request, session)
                .await;
        }
        let guard = match self.admit(&technician) {
            Ok(g) => g,
            Err((code, detail)) => {
                return self
                    .turn_away(&mut tech_stream, peer, code, &technician, &detail)
                    .await;
            }
        };
        let policy = &self.shared.policy;
        let id = Uuid::new_v4();
        let control_offered = request.mode == Mode::Control && policy.consent.allow_control;
        let prompt = PromptRequest {
            id,
            technician: technician.clone(),
            peer,
            ticket: request.ticket.clone(),
            reason: request.reason.clone(),
            asked: request.mode,
            control_offered,
            deadline: Instant::now() + policy.consent.timeout,
            timeout: policy.consent.timeout,
            arm_delay: policy.consent.arm_delay,
            clipboard: policy.session.clipboard,
            raise: false,
            confirm: false,
            replaced: None,
        };
        self.shared
            .state
            .send_modify(|s| s.activity = Activity::Asking(Box::new(prompt.clone())));

        // Wire step 1b: the technician's countdown is this workstation's
        // real deadline. A technician already gone is noticed by `ask`.
        let asked = if control_offered {
            Mode::Control
        } else {
            Mode::View
        };
        let pending = crate::protocol::encode_pending(policy.consent.timeout, asked);
        if tech_stream.write_all(&pending).await.is_ok() {
            let _ = tech_stream.flush().await;
        }
        let answer = self.ask(prompt, &mut tech_stream).await;
        let (granted, by, why, local) = self.settle(answer, &technician, id, |a| match a {
            Answer::Control if control_offered => Some(Mode::Control),
            // Never more than was offered, whatever the prompter says.
            Answer::Control | Answer::ViewOnly => Some(Mode::View),
            Answer::Refused | Answer::Continue => None,
        });
        let decision_ev = Event::Decision {
            local: local.clone(),
            session: id,
            technician: technician.clone(),
            peer,
            ticket: request.ticket.clone(),
            reason: request.reason.clone(),
            asked: request.mode,
            granted,
            by,
            why,
        };
        if let Err(e) = self.shared.journal.record(&decision_ev) {
            tracing::error!("{e}: refusing the request");
            let code = RefusalCode::Policy;
            send_decision(&mut tech_stream, &Decision::Refused { why: code }).await;
            return Outcome::Refused(code);
        }
        let Some(mode) = granted else {
            let code = why.unwrap_or(RefusalCode::User);
            send_decision(&mut tech_stream, &Decision::Refused { why: code }).await;
            return Outcome::Refused(code);
        };
        let grant = Grant { id, mode, local };
        self.run_session(guard, tech_stream, technician, request, grant)
            .await
    }

    /// Checks a request for control of running session `session` (DESIGN.md,
    /// wire step 1): control allowed by policy, the session running and
    /// view-only, asked from that session's own certificate, no other such
    /// prompt pending, within the hourly prompt limit. It does not take the
    /// busy slot (the session holds it). On success the technician's input
    /// is held until the returned guard drops.
    fn admit_raise(
        &self,
        tech: &Identity,
        session: Uuid,
    ) -> Result<RaiseGuard<'_>, (RefusalCode, String)> {
        self.preflight()?;
        if !self.shared.policy.consent.allow_control {
            return Err((
                RefusalCode::Policy,
                "control is not allowed by policy (consent.allow_control = false)".into(),
            ));
        }
        let mut inner = self
            .shared
            .inner
            .lock()
            .map_err(|_| (RefusalCode::Policy, "internal state poisoned".to_string()))?;
        let mode = own_session(&inner, tech, session, "request for control")?;
        if mode != Mode::View {
            return Err((
                RefusalCode::BadRequest,
                format!("request for control of session {session}, already in control"),
            ));
        }
        if inner.raising {
            return Err((
                RefusalCode::Busy,
                format!("a request for control of session {session} is already being asked"),
            ));
        }
        self.count_prompt(&mut inner, tech)?;
        inner.raising = true;
        if let Some(live) = &inner.current {
            live.hold_input(true);
        }
        Ok(RaiseGuard {
            shared: &self.shared,
            session,
        })
    }

    /// A request for control of running view-only session `session`, on a
    /// connection of its own: asks the clinician with the technician's input
    /// held, switches the session to control on "Allow control", answers on
    /// this connection and closes it (the RFB stream stays on the session's
    /// own). Refused, unanswered, withdrawn or ended meanwhile: nothing
    /// changes. A session that ended while asking is answered `bad_request`
    /// (as for any session id that is not running), decided by the agent.
    async fn raise<S>(
        &self,
        mut tech_stream: S,
        technician: Identity,
        peer: SocketAddr,
        request: Request,
        session: Uuid,
    ) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let guard = match self.admit_raise(&technician, session) {
            Ok(g) => g,
            Err((code, detail)) => {
                return self
                    .turn_away(&mut tech_stream, peer, code, &technician, &detail)
                    .await;
            }
        };
        let policy = &self.shared.policy;
        let prompt_id = Uuid::new_v4();
        let prompt = PromptRequest {
            id: prompt_id,
            technician: technician.clone(),
            peer,
            ticket: request.ticket.clone(),
            reason: request.reason.clone(),
            asked: Mode::Control,
            control_offered: true,
            deadline: Instant::now() + policy.consent.timeout,
            timeout: policy.consent.timeout,
            arm_delay: policy.consent.arm_delay,
            clipboard: policy.session.clipboard,
            raise: true,
            confirm: false,
            replaced: None,
        };
        let pending = crate::protocol::encode_pending(policy.consent.timeout, Mode::Control);
        if tech_stream.write_all(&pending).await.is_ok() {
            let _ = tech_stream.flush().await;
        }
        // Whatever ends the session (kill switch, hang-up, timers) shows in
        // the state: the prompt is then withdrawn.
        let mut state = self.shared.state.subscribe();
        let session_gone = async move {
            let _ = state
                .wait_for(|s| !matches!(&s.activity, Activity::InSession(i) if i.id == session))
                .await;
        };
        let answer = tokio::select! {
            a = self.ask(prompt, &mut tech_stream) => a,
            _ = session_gone => Err(RefusalCode::BadRequest),
        };
        let (granted, by, why, local) = self.settle(answer, &technician, prompt_id, |a| match a {
            Answer::Control => Some(Mode::Control),
            // Only "Allow control" and "Refuse" are offered for a
            // raise; anything else keeps the session as it is.
            Answer::ViewOnly | Answer::Refused | Answer::Continue => None,
        });
        let decision = |granted, by, why| Event::Decision {
            local: local.clone(),
            session,
            technician: technician.clone(),
            peer,
            ticket: request.ticket.clone(),
            reason: request.reason.clone(),
            asked: Mode::Control,
            granted,
            by,
            why,
        };
        // Checked, recorded and switched under one lock, so that the record
        // and the session cannot disagree (the session cannot end between).
        let result = match self.shared.inner.lock() {
            Ok(mut inner) => {
                let running = inner.current_info.as_ref().is_some_and(|i| i.id == session)
                    && inner.current.is_some();
                let (granted, by, why) = if running {
                    (granted, by, why)
                } else {
                    (None, DecidedBy::Agent, Some(RefusalCode::BadRequest))
                };
                match self.shared.journal.record(&decision(granted, by, why)) {
                    Err(e) => {
                        tracing::error!("{e}: refusing the request for control");
                        Err(RefusalCode::Policy)
                    }
                    Ok(()) if granted.is_none() => Err(why.unwrap_or(RefusalCode::User)),
                    Ok(()) => {
                        let changed = Event::ModeChanged {
                            session,
                            from: Mode::View,
                            to: Mode::Control,
                            by: "user",
                        };
                        match self.shared.journal.record(&changed) {
                            Err(e) => {
                                tracing::error!("{e}: not switching to control");
                                Err(RefusalCode::Policy)
                            }
                            Ok(()) => {
                                if let Some(live) = &inner.current {
                                    live.set_mode(Mode::Control);
                                }
                                if let Some(info) = inner.current_info.as_mut() {
                                    info.mode = Mode::Control;
                                }
                                Ok(())
                            }
                        }
                    }
                }
            }
            Err(_) => Err(RefusalCode::Policy),
        };
        // Input flows again only now, in the mode just decided.
        drop(guard);
        match result {
            Ok(()) => {
                self.shared.state.send_modify(|s| {
                    if let Activity::InSession(info) = &mut s.activity
                        && info.id == session
                    {
                        info.mode = Mode::Control;
                    }
                });
                let accepted = Decision::Accepted {
                    mode: Mode::Control,
                    session,
                };
                send_decision(&mut tech_stream, &accepted).await;
                let _ = tech_stream.shutdown().await;
                Outcome::Raised
            }
            Err(code) => {
                send_decision(&mut tech_stream, &Decision::Refused { why: code }).await;
                Outcome::Refused(code)
            }
        }
    }

    /// What the prompt's outcome means: the mode granted (`grant` reads the
    /// clinician's answer), who decided, the refusal code, and who answered
    /// (user decisions only). A timeout is also a notice for the UI.
    fn settle(
        &self,
        answer: Result<Answer, RefusalCode>,
        technician: &Identity,
        id: Uuid,
        grant: impl Fn(Answer) -> Option<Mode>,
    ) -> (
        Option<Mode>,
        DecidedBy,
        Option<RefusalCode>,
        Option<LocalUser>,
    ) {
        let (granted, by, why) = match answer {
            Ok(a) => match grant(a) {
                Some(m) => (Some(m), DecidedBy::User, None),
                None => (None, DecidedBy::User, Some(RefusalCode::User)),
            },
            Err(code @ RefusalCode::Timeout) => (None, DecidedBy::Timeout, Some(code)),
            Err(code @ RefusalCode::AgentShuttingDown) => (None, DecidedBy::Agent, Some(code)),
            Err(code) => (None, DecidedBy::Policy, Some(code)),
        };
        if why == Some(RefusalCode::UnsupportedSession) {
            let _ = self.shared.notices.send(Notice::UnsupportedSession {
                technician: technician.clone(),
            });
        }
        if why == Some(RefusalCode::Timeout) {
            let _ = self.shared.notices.send(Notice::PromptTimedOut {
                technician: technician.clone(),
            });
        }
        let local = match by {
            DecidedBy::User => self.prompter.consenter(id),
            DecidedBy::Timeout => self.prompter.asked(id),
            _ => None,
        };
        (granted, by, why, local)
    }

    /// Asks the prompter under the deadline. While waiting, a technician who
    /// hangs up or a shutdown ends the prompt.
    async fn ask<S>(&self, prompt: PromptRequest, tech: &mut S) -> Result<Answer, RefusalCode>
    where
        S: AsyncRead + Unpin,
    {
        let mut shutdown = self.shared.shutdown.subscribe();
        let mut ui_lost = self.shared.ui_lost.subscribe();
        let deadline = tokio::time::Instant::now() + prompt.timeout;
        tokio::select! {
            r = self.prompter.ask(prompt) => match r {
                Ok(a) => Ok(a),
                Err(e @ PromptError::NoUser(_)) => {
                    tracing::warn!("{e}: refusing");
                    Err(RefusalCode::NoUser)
                }
                Err(e @ PromptError::UnsupportedSession(_)) => {
                    tracing::warn!("{e}: refusing");
                    Err(RefusalCode::UnsupportedSession)
                }
                Err(e) => {
                    tracing::error!("{e}: refusing");
                    Err(RefusalCode::Policy)
                }
            },
            _ = tokio::time::sleep_until(deadline) => Err(RefusalCode::Timeout),
            _ = shutdown.wait_for(|v| *v) => Err(RefusalCode::AgentShuttingDown),
            _ = ui_lost.wait_for(|v| *v) => Err(RefusalCode::Policy),
            // A technician who gives up (or sends bytes before the decision,
            // which the protocol forbids) withdraws the request.
            _ = wait_readable_or_closed(tech) => Err(RefusalCode::BadRequest),
        }
    }

    async fn run_session<S>(
        &self,
        guard: BusyGuard<'_>,
        mut tech_stream: S,
        technician: Identity,
        request: Request,
        grant: Grant,
    ) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Grant { id, mode, local } = grant;
        let policy = self.shared.policy.clone();
        let started_at = Instant::now();
        let ended =
            |why: EndReason, detail: Option<String>, up: u64, down: u64| Event::SessionEnded {
                session: id,
                why,
                duration: started_at.elapsed(),
                bytes_to_server: up,
                bytes_to_technician: down,
                detail,
            };
        let info = SessionInfo {
            id,
            technician: technician.clone(),
            ticket: request.ticket,
            reason: request.reason,
            mode,
            started: SystemTime::now(),
            started_at,
            clipboard: policy.session.clipboard,
            paused: false,
        };
        // The session exists from the moment of acceptance: the kill switch
        // (banner, shortcut, `accord end`) works while Accord still connects
        // to the local server, which can take up to 15 s.
        let (live, mut handles) = LiveSession::new(mode);
        if let Ok(mut inner) = self.shared.inner.lock() {
            inner.busy = Some(Busy::InSession);
            inner.current = Some(live);
            inner.current_info = Some(info.clone());
        }
        // A shutdown or lost UI between the decision and now must still end it.
        if *self.shared.shutdown.borrow() {
            self.control().end_with(EndReason::AgentStopped);
        }
        if *self.shared.ui_lost.borrow() {
            self.control().end_with(EndReason::UiLost);
        }
        self.shared
            .state
            .send_modify(|s| s.activity = Activity::InSession(Box::new(info.clone())));
        let prepared = tokio::select! {
            // A server leg that fails says why, even if its failure also
            // ends the session (a helper cut off for a bad hand-over); an
            // ending that comes with it is seen at once by the relay.
            biased;
            r = self.open_upstream(id, mode) => r,
            why = handles.ended() => {
                let detail = "ended while connecting to the VNC server".to_string();
                if let Err(e) = self.shared.journal.record(&ended(why, Some(detail), 0, 0)) {
                    tracing::error!("{e}");
                }
                // She accepted: she is told it did not happen, and why.
                let _ = self.shared.notices.send(Notice::SessionEnded {
                    info: info.clone(),
                    why,
                });
                let code = match why {
                    EndReason::AgentStopped => RefusalCode::AgentShuttingDown,
                    EndReason::UiLost => RefusalCode::Policy,
                    _ => RefusalCode::User,
                };
                send_decision(&mut tech_stream, &Decision::Refused { why: code }).await;
                return Outcome::Ended(why);
            }
        };
        let (upstream, screen, describe) = match prepared {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("upstream: {e}");
                if let Err(e) =
                    self.shared
                        .journal
                        .record(&ended(EndReason::Upstream, Some(e), 0, 0))
                {
                    tracing::error!("{e}");
                }
                // She accepted: a session that could not start is told to
                // her, not only to the technician.
                let _ = self.shared.notices.send(Notice::SessionEnded {
                    info: info.clone(),
                    why: EndReason::Upstream,
                });
                let code = RefusalCode::UpstreamUnreachable;
                send_decision(&mut tech_stream, &Decision::Refused { why: code }).await;
                return Outcome::Refused(code);
            }
        };
        if let Err(e) = self.shared.journal.record(&Event::SessionStarted {
            local,
            session: id,
            technician,
            mode,
            upstream: describe,
        }) {
            tracing::error!("{e}: not starting the session");
            let code = RefusalCode::Policy;
            send_decision(&mut tech_stream, &Decision::Refused { why: code }).await;
            return Outcome::Refused(code);
        }
        let _ = self
            .shared
            .notices
            .send(Notice::SessionStarted(info.clone()));
        send_decision(&mut tech_stream, &Decision::Accepted { mode, session: id }).await;

        let limits = session::Limits {
            idle_timeout: policy.session.idle_timeout,
            max_duration: policy.session.max_duration,
            clipboard: policy.session.clipboard,
        };
        let result = session::run(tech_stream, upstream, handles, limits).await;
        // The server started for this session stops with it, before anything
        // else is recorded or asked.
        drop(screen);
        if let Err(e) = self.shared.journal.record(&ended(
            result.why,
            result.detail.clone(),
            result.bytes_to_server,
            result.bytes_to_technician,
        )) {
            tracing::error!("{e}");
        }
        let _ = self.shared.notices.send(Notice::SessionEnded {
            info,
            why: result.why,
        });
        // Only now, with the server leg closed by `run`, may another prompt
        // appear: no input of this session can reach the next one.
        drop(guard);
        Outcome::Ended(result.why)
    }
}

impl<P: Prompter> Broker<P> {
    /// The session's server leg, past its RFB handshake: the server started
    /// for it (`[upstream] launch`), or `[upstream] vnc`. Also returns what
    /// keeps a started server running, and what to record as `upstream`.
    async fn open_upstream(
        &self,
        id: Uuid,
        mode: Mode,
    ) -> Result<
        (
            session::Prepared,
            Option<Box<dyn std::any::Any + Send>>,
            String,
        ),
        String,
    > {
        let policy = &self.shared.policy;
        if policy.upstream.launch == crate::policy::Launch::None {
            let p = session::prepare(&policy.upstream)
                .await
                .map_err(|e| format!("{}: {e}", policy.upstream.vnc))?;
            return Ok((p, None, policy.upstream.vnc.to_string()));
        }
        let req = ScreenRequest {
            session: id,
            launch: policy.upstream.launch,
            mode,
            grants: Grants::for_session(mode, policy),
        };
        let screen = self
            .prompter
            .open_screen(req)
            .await
            .map_err(|e| e.to_string())?;
        // A server Accord started has no password: its socket is the lock.
        let p = session::prepare_connected(screen.upstream, None)
            .await
            .map_err(|e| format!("{}: {e}", screen.describe))?;
        Ok((p, Some(screen.keep), screen.describe))
    }
}

/// The mode of running session `session` if `tech` holds it (what a
/// request for control or a watch of it, `what`, may ask): `bad_request`
/// for a session that is not running or is another certificate's.
fn own_session(
    inner: &Inner,
    tech: &Identity,
    session: Uuid,
    what: &str,
) -> Result<Mode, (RefusalCode, String)> {
    let Some(info) = inner.current_info.as_ref().filter(|i| i.id == session) else {
        return Err((
            RefusalCode::BadRequest,
            format!("{what} of session {session}, which is not running"),
        ));
    };
    let owner = &info.technician.fingerprint;
    if *owner != tech.fingerprint {
        return Err((
            RefusalCode::BadRequest,
            format!(
                "{what} of session {session} from another certificate than the session's ({owner})"
            ),
        ));
    }
    Ok(info.mode)
}

/// Resolves when the peer sends anything or closes; never consumes bytes
/// needed later in a legitimate exchange, because nothing may arrive before
/// the decision.
async fn wait_readable_or_closed<S: AsyncRead + Unpin>(s: &mut S) {
    use tokio::io::AsyncReadExt;
    let mut b = [0u8; 1];
    let _ = s.read(&mut b).await;
}

async fn send_decision<S: AsyncWrite + Unpin>(s: &mut S, d: &Decision) {
    let line = crate::protocol::encode_decision(d);
    if let Err(e) = s.write_all(&line).await {
        tracing::debug!("could not send the decision: {e}");
        return;
    }
    let _ = s.flush().await;
    if matches!(d, Decision::Refused { .. }) {
        let _ = s.shutdown().await;
    }
}

impl SessionControl {
    /// The kill switch (O8): closes both legs at once. No-op without a session.
    pub fn end(&self) {
        self.end_with(EndReason::User);
    }

    /// Ends the session with a given reason (screen lock, shutdown...).
    pub fn end_with(&self, why: EndReason) {
        if let Ok(inner) = self.shared.inner.lock()
            && let Some(live) = &inner.current
        {
            live.end(why);
        }
    }

    /// Restricts a control session to viewing (O6). Recorded as `mode_changed`.
    pub fn set_view_only(&self) {
        let changed = match self.shared.inner.lock() {
            Ok(mut inner) => {
                let id = inner.current_info.as_ref().map(|i| i.id);
                match (&inner.current, id) {
                    (Some(live), Some(id)) if live.set_mode(Mode::View) => {
                        if let Some(info) = inner.current_info.as_mut() {
                            info.mode = Mode::View;
                        }
                        Some(id)
                    }
                    _ => None,
                }
            }
            Err(_) => None,
        };
        let Some(id) = changed else { return };
        if let Err(e) = self.shared.journal.record(&Event::ModeChanged {
            session: id,
            from: Mode::Control,
            to: Mode::View,
            by: "user",
        }) {
            tracing::error!("{e}");
        }
        self.shared.state.send_modify(|s| {
            if let Activity::InSession(info) = &mut s.activity {
                info.mode = Mode::View;
            }
        });
    }

    /// Hides her screen from the technician (`on`) or shows it again
    /// ("Masquer mon écran" / "Reprendre"). No-op without a session.
    pub fn pause(&self, on: bool) {
        let _ = on;
    }

    /// Holds the technician's input back while a prompt granting more rights
    /// is on screen, so they can never click "Allow" for themselves.
    pub fn hold_input(&self, hold: bool) {
        if let Ok(inner) = self.shared.inner.lock()
            && let Some(live) = &inner.current
        {
            live.hold_input(hold);
        }
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
        self.shared.ui_lost.send_replace(true);
        self.shared.state.send_modify(|s| {
            s.blocked = Some("the user interface is not available".into());
        });
        self.end_with(EndReason::UiLost);
    }
}
