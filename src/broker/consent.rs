//! The consent rules as a sans-IO core (O6, O7, O8, T10).
//!
//! Where consent stands is one value, [`Stage`]: nobody asked, a request
//! being asked, the screen being opened, a session running (with at most
//! one question inside it: a request for control or the consent period's
//! "continue?"). The core is driven like quinn-proto's connection: the
//! broker task feeds it [`Input`]s with the time ([`Consent::handle`],
//! [`Consent::handle_timeout`]) and carries out the [`Effect`]s it
//! queues ([`Consent::poll`]); it sleeps until [`Consent::poll_timeout`].
//! No socket, task, lock or clock in here, so every rule is a unit test.
//!
//! Order is part of the rules. Effects that protect her (hold the
//! technician's input, hide her screen, end the relay, withdraw a prompt)
//! come first; a record comes before anything the technician is told that
//! depends on it. When a record fails the driver says so at once
//! ([`Consent::record_failed`]), before polling further: the core drops what
//! was queued after it and takes the failure path (consent without a
//! trace is not allowed).

use super::{
    Activity, DecidedBy, EndReason, Event, LocalUser, LogUnusable, Notice, PromptRequest,
    SessionInfo,
};
use super::{Answer, Grants, ScreenRequest};
use crate::policy::{Clipboard, Launch, Policy};
use crate::protocol::{Decision, Mode, RefusalCode, Request};
use crate::tls::Identity;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

use super::ratelimit::WINDOW as RATE_WINDOW;

/// One technician connection, numbered by the driver.
pub type ConnId = u64;

/// What the policy says about consent, as the core needs it.
#[derive(Clone, Debug)]
pub struct Rules {
    pub allow_control: bool,
    pub max_prompts_per_hour: usize,
    pub prompt_timeout: Duration,
    pub arm_delay: Duration,
    pub clipboard: Clipboard,
    pub launch: Launch,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    /// The consent period; `None` when she is never asked again.
    pub confirm_every: Option<Duration>,
    /// How long the "continue?" question waits before the session ends.
    pub confirm_grace: Duration,
    /// How long a relay's `upstream` end waits for the reason behind it
    /// ([`UPSTREAM_GRACE`]).
    pub upstream_grace: Duration,
}

/// How long a relay that ended `upstream` is held back before the session
/// is recorded over: her stop in GNOME's indicator closes the server's
/// socket at the moment it tells Accord so, and the socket may win the
/// race. A server that died for another reason is recorded that much later.
pub const UPSTREAM_GRACE: Duration = Duration::from_millis(300);

impl Rules {
    pub fn from_policy(p: &Policy) -> Rules {
        Rules {
            allow_control: p.consent.allow_control,
            max_prompts_per_hour: p.consent.max_prompts_per_technician_per_hour as usize,
            prompt_timeout: p.consent.timeout,
            arm_delay: p.consent.arm_delay,
            clipboard: p.session.clipboard,
            launch: p.upstream.launch,
            idle_timeout: p.session.idle_timeout,
            max_duration: p.session.max_duration,
            confirm_every: p.session.confirm_every,
            confirm_grace: p.session.confirm_grace,
            upstream_grace: UPSTREAM_GRACE,
        }
    }

    fn grants(&self, mode: Mode) -> Grants {
        Grants {
            clipboard: self.clipboard,
            input: mode == Mode::Control || self.allow_control,
        }
    }
}

/// What happens to the core.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// An authenticated, parsed request: a new session, or control of a
    /// running one when `request.session` is set. `log` is the audit
    /// log's health, read by the driver (a log that cannot be trusted
    /// refuses every request).
    Request {
        conn: ConnId,
        technician: Identity,
        peer: SocketAddr,
        request: Request,
        log: Result<(), LogUnusable>,
    },
    /// A watch of running session `session` from `accord connect`.
    Watch {
        conn: ConnId,
        technician: Identity,
        peer: SocketAddr,
        session: Uuid,
    },
    /// The prompter's answer to prompt `prompt` (a failure to ask as the
    /// refusal it means), who gave it, and when (the session's start).
    Answered {
        prompt: Uuid,
        answer: Result<Answer, RefusalCode>,
        local: Option<LocalUser>,
        wall: SystemTime,
    },
    /// The technician of `conn` hung up, sent bytes where none may come,
    /// or stopped reading a watch.
    Gone {
        conn: ConnId,
    },
    /// The screen server of `session` answered Accord's handshake.
    ScreenOpened {
        session: Uuid,
        upstream: String,
    },
    ScreenFailed {
        session: Uuid,
        detail: String,
    },
    /// The relay of `session` is over, its server leg closed and the
    /// server started for it stopped.
    RelayEnded {
        session: Uuid,
        why: EndReason,
        detail: Option<String>,
        bytes_to_server: u64,
        bytes_to_technician: u64,
    },
    /// The kill switch, a screen lock, a user switch...
    End(EndReason),
    /// The server started for `session` exited; `by_her` when it says she
    /// stopped the sharing with the desktop's own control.
    ServerExited {
        session: Uuid,
        by_her: bool,
    },
    /// She restricted the session to viewing (O6).
    ViewOnly,
    /// "Masquer mon écran" (`true`) / "Reprendre" (`false`).
    Pause(bool),
    Shutdown,
    /// The UI is gone for good: nobody could follow or stop a session.
    UiLost,
}

/// What to do when an [`Effect::Record`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnFail {
    /// Nothing waits on it: the failure is only logged.
    Nothing,
    /// The decision on the new request of `conn`: refused `policy`,
    /// nothing opens.
    RefuseRequest { conn: ConnId },
    /// `session_started` of `session`: the session does not start.
    AbortOpening { session: Uuid },
    /// The request for control on `conn`: refused `policy`, the session
    /// stays (or goes back to) view only.
    RefuseRaise { conn: ConnId },
    /// Her "continue": the session ends `not_confirmed`.
    EndSession,
}

/// A line for the technician.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// Wire step 1b: this workstation's real deadline.
    Pending {
        timeout: Duration,
        asked: Mode,
    },
    Decision(Decision),
    /// Turned away before anyone was asked.
    Refusal {
        why: RefusalCode,
        retry_after: Option<Duration>,
    },
    Watch(WatchNews),
}

/// What a watch tells `accord connect`.
#[derive(Clone, Debug, PartialEq)]
pub enum WatchNews {
    /// The mode: at admission (`by` absent), then at each change.
    Mode {
        mode: Mode,
        by: Option<&'static str>,
    },
    /// She hid her screen (`true`) or showed it again.
    Paused(bool),
    /// The consent period ended: she is asked whether to go on, and the
    /// session ends if she does not answer within `grace`.
    Confirming {
        grace: Duration,
    },
    /// She chose to go on.
    Confirmed,
    Ended(EndReason),
}

/// How a connection's business ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Closed {
    Request(super::Outcome),
    Watch(super::watcher::WatchOutcome),
}

/// What the driver must do, in this order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Write to the audit log; on failure call [`Consent::record_failed`]
    /// with `on_fail` before polling again.
    Record {
        event: Event,
        on_fail: OnFail,
    },
    /// A refused request, on record within its origin's budget.
    Reject {
        peer: SocketAddr,
        why: RefusalCode,
        technician: Identity,
        detail: String,
    },
    Tell {
        conn: ConnId,
        reply: Reply,
    },
    /// Nothing more will be said on `conn`; its task returns this.
    Close {
        conn: ConnId,
        closed: Closed,
    },
    Ask(Box<PromptRequest>),
    /// The prompt must disappear, unanswered.
    Withdraw {
        prompt: Uuid,
    },
    /// Start the screen server of an accepted session and connect to it.
    OpenScreen(ScreenRequest),
    /// The session ended while its screen was being opened: stop that and
    /// drop whatever it opened.
    CancelOpen {
        session: Uuid,
    },
    /// Relay between `conn` and the opened screen.
    Relay {
        conn: ConnId,
        session: Uuid,
        limits: crate::session::Limits,
    },
    SetMode(Mode),
    /// Hold (drop, and release on the server) the technician's input.
    Hold(bool),
    /// Pass nothing of her screen to the technician.
    Hide(bool),
    /// End the relay; it reports [`Input::RelayEnded`] once closed.
    EndRelay(EndReason),
    Show(Activity),
    Block(String),
    Notify(Notice),
}

/// Where consent stands.
#[derive(Debug)]
enum Stage {
    Idle,
    Asking(Box<Asked>),
    /// Accepted: the session exists (the kill switch works) while its
    /// screen is opened.
    Opening(Box<Live>),
    Running(Box<Live>),
}

/// Who sent a request: its connection and the technician's identity.
struct From {
    conn: ConnId,
    technician: Identity,
    peer: SocketAddr,
}

/// A prompt on screen and what its answer will decide.
#[derive(Clone, Debug)]
struct Asked {
    conn: ConnId,
    prompt: PromptRequest,
    /// The decision's session: the prompt's own id for a new request,
    /// the running session's for a request for control.
    session: Uuid,
}

/// The one question a running session may have.
#[derive(Debug)]
enum Question {
    Raise(Box<Asked>),
    Confirm { prompt: Uuid, deadline: Instant },
}

#[derive(Debug)]
struct Live {
    conn: ConnId,
    info: SessionInfo,
    /// Who accepted it (the records of its period's questions too).
    local: Option<LocalUser>,
    question: Option<Question>,
    /// When she is next asked to confirm.
    confirm_due: Option<Instant>,
    /// Why the core asked the relay to end, once it has: the ending's
    /// reason, whatever the relay saw meanwhile (her stop in GNOME closes
    /// the server's socket too, and may reach the relay first).
    ending: Option<EndReason>,
    /// The relay's end, held back until `until` when all it says is that
    /// the server closed ([`UPSTREAM_GRACE`]).
    relay_over: Option<RelayOver>,
    /// The server exited and it was not her stop: an `upstream` end of the
    /// relay is then the whole story, recorded at once.
    server_exited: bool,
}

/// A relay's end as [`Input::RelayEnded`] tells it.
#[derive(Debug)]
struct RelayEnd {
    why: EndReason,
    detail: Option<String>,
    bytes_to_server: u64,
    bytes_to_technician: u64,
}

/// A relay's end waiting for its reason.
#[derive(Debug)]
struct RelayOver {
    until: Instant,
    end: RelayEnd,
}

impl Live {
    fn holds_input(&self) -> bool {
        self.info.paused || self.question.is_some()
    }
}

/// The outcome of a prompt, settled: what is granted, who decided, why not.
struct Settled {
    granted: Option<Mode>,
    by: DecidedBy,
    why: Option<RefusalCode>,
}

/// The consent rules. See the module documentation.
pub struct Consent {
    rules: Rules,
    stage: Stage,
    /// Prompt times per technician fingerprint, for the hourly limit.
    prompts: HashMap<String, VecDeque<Instant>>,
    shutting_down: bool,
    ui_lost: bool,
    /// The watch of the running session, if any (one at a time).
    watcher: Option<(ConnId, Uuid)>,
    /// What was last told the relay about input.
    held: bool,
    effects: VecDeque<Effect>,
}

impl Consent {
    pub fn new(rules: Rules) -> Consent {
        Consent {
            rules,
            stage: Stage::Idle,
            prompts: HashMap::new(),
            shutting_down: false,
            ui_lost: false,
            watcher: None,
            held: false,
            effects: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    pub fn poll(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When [`Consent::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Asking(a) => Some(a.prompt.deadline),
            Stage::Running(live) if live.relay_over.is_some() => {
                live.relay_over.as_ref().map(|r| r.until)
            }
            Stage::Running(live) if live.ending.is_none() => match &live.question {
                Some(Question::Raise(a)) => Some(a.prompt.deadline),
                Some(Question::Confirm { deadline, .. }) => Some(*deadline),
                None => live.confirm_due,
            },
            _ => None,
        }
    }

    /// Whether a session exists (accepted, not yet over).
    pub fn in_session(&self) -> bool {
        matches!(self.stage, Stage::Opening(_) | Stage::Running(_))
    }

    /// The session that exists, if any.
    pub fn session(&self) -> Option<Uuid> {
        self.live().map(|l| l.info.id)
    }

    /// Whether she hid her screen.
    pub fn paused(&self) -> bool {
        self.live().is_some_and(|l| l.info.paused)
    }

    /// The prompt on screen, if any (there is never more than one).
    pub fn prompt(&self) -> Option<Uuid> {
        match &self.stage {
            Stage::Asking(a) => Some(a.prompt.id),
            Stage::Opening(l) | Stage::Running(l) => match &l.question {
                Some(Question::Raise(a)) => Some(a.prompt.id),
                Some(Question::Confirm { prompt, .. }) => Some(*prompt),
                None => None,
            },
            Stage::Idle => None,
        }
    }

    /// Deadlines reached by `now`: a prompt unanswered, the consent
    /// period over, a relay's end held long enough. `asked` names whom prompt `id` was shown to (the
    /// prompter knows it, the core does not): a timeout's record says who
    /// did not answer.
    pub fn handle_timeout(&mut self, now: Instant, asked: impl FnOnce(Uuid) -> Option<LocalUser>) {
        if let Stage::Asking(a) = &self.stage
            && now >= a.prompt.deadline
        {
            let prompt = a.prompt.id;
            self.push(Effect::Withdraw { prompt });
            let local = asked(prompt);
            self.settle_request(now, Err(RefusalCode::Timeout), local, None);
            return;
        }
        let Stage::Running(live) = &mut self.stage else {
            return;
        };
        if let Some(r) = &live.relay_over {
            if now >= r.until {
                self.finish_relay(now);
            }
            return;
        }
        if live.ending.is_some() {
            return;
        }
        match &live.question {
            Some(Question::Raise(a)) if now >= a.prompt.deadline => {
                let prompt = a.prompt.id;
                self.push(Effect::Withdraw { prompt });
                let local = asked(prompt);
                self.settle_raise(now, Err(RefusalCode::Timeout), local);
            }
            Some(Question::Confirm { prompt, deadline }) if now >= *deadline => {
                let prompt = *prompt;
                self.push(Effect::Withdraw { prompt });
                let local = asked(prompt);
                self.not_confirmed(DecidedBy::Timeout, local);
            }
            Some(_) => {}
            None => self.maybe_confirm(now),
        }
    }

    pub fn handle(&mut self, now: Instant, input: Input) {
        if !matches!(
            input,
            Input::End(_) | Input::ServerExited { .. } | Input::RelayEnded { .. }
        ) {
            // What comes next finds the session over.
            self.finish_relay(now);
        }
        match input {
            Input::Request {
                conn,
                technician,
                peer,
                request,
                log,
            } => {
                let from = From {
                    conn,
                    technician,
                    peer,
                };
                match request.session {
                    Some(session) => self.raise(now, from, request, session, log),
                    None => self.request(now, from, request, log),
                }
            }
            Input::Watch {
                conn,
                technician,
                peer,
                session,
            } => self.watch(now, conn, technician, peer, session),
            Input::Answered {
                prompt,
                answer,
                local,
                wall,
            } => self.answered(now, prompt, answer, local, wall),
            Input::Gone { conn } => self.gone(now, conn),
            Input::ScreenOpened { session, upstream } => self.opened(now, session, upstream),
            Input::ScreenFailed { session, detail } => self.open_failed(now, session, detail),
            Input::RelayEnded {
                session,
                why,
                detail,
                bytes_to_server,
                bytes_to_technician,
            } => self.relay_ended(
                now,
                session,
                RelayEnd {
                    why,
                    detail,
                    bytes_to_server,
                    bytes_to_technician,
                },
            ),
            Input::End(why) => {
                // An ending told while the relay's end is held back is the
                // ending's reason (her stop told by the service's helper).
                self.end(now, why);
                self.finish_relay(now);
            }
            Input::ServerExited { session, by_her } => {
                if let Stage::Opening(l) | Stage::Running(l) = &mut self.stage
                    && l.info.id == session
                {
                    if by_her {
                        self.end(now, EndReason::User);
                    } else {
                        l.server_exited = true;
                    }
                }
                self.finish_relay(now);
            }
            Input::ViewOnly => self.view_only(),
            Input::Pause(on) => self.pause(on),
            Input::Shutdown => {
                self.shutting_down = true;
                self.stop_everything(now, RefusalCode::AgentShuttingDown, EndReason::AgentStopped);
            }
            Input::UiLost => {
                if !self.ui_lost {
                    self.ui_lost = true;
                    self.push(Effect::Block("the user interface is not available".into()));
                }
                self.stop_everything(now, RefusalCode::Policy, EndReason::UiLost);
            }
        }
    }

    /// The record of the last [`Effect::Record`] polled failed: what was
    /// queued after it is dropped, and `on_fail`'s path is taken.
    pub fn record_failed(&mut self, now: Instant, on_fail: OnFail) {
        if on_fail == OnFail::Nothing {
            return;
        }
        // What was queued after the record never happened: the relay's
        // input switch is said again whatever it was.
        self.effects.clear();
        match on_fail {
            OnFail::Nothing => {}
            OnFail::RefuseRequest { conn } => {
                // The stage moved past the prompt already, granted or not.
                if matches!(&self.stage, Stage::Opening(l) if l.conn == conn) {
                    self.stage = Stage::Idle;
                }
                self.refuse(conn, RefusalCode::Policy);
                self.show_stage();
            }
            OnFail::AbortOpening { session } => {
                if let Stage::Opening(live) | Stage::Running(live) = &mut self.stage
                    && live.info.id == session
                {
                    let info = live.info.clone();
                    let conn = live.conn;
                    let question = live.question.take();
                    self.stage = Stage::Idle;
                    self.drop_question(question);
                    self.push(Effect::CancelOpen { session });
                    self.push(Effect::Notify(Notice::SessionEnded {
                        info,
                        why: EndReason::Upstream,
                    }));
                    self.close_watch(None);
                    self.refuse(conn, RefusalCode::Policy);
                    self.show_stage();
                }
            }
            OnFail::RefuseRaise { conn } => {
                if let Stage::Opening(live) | Stage::Running(live) = &mut self.stage {
                    match &live.question {
                        Some(Question::Raise(a)) if a.conn == conn => live.question = None,
                        // Asked in the same step, after the record: never
                        // shown. Asked again below.
                        Some(Question::Confirm { .. }) => {
                            live.question = None;
                            live.confirm_due = Some(now);
                        }
                        _ => {}
                    }
                    // Only this request could have switched it to control:
                    // a raise is asked of a view-only session, one at a time.
                    if live.info.mode == Mode::Control {
                        live.info.mode = Mode::View;
                        self.effects.push_back(Effect::SetMode(Mode::View));
                    }
                }
                self.resync_hold();
                self.show_stage();
                self.refuse(conn, RefusalCode::Policy);
                self.maybe_confirm(now);
            }
            OnFail::EndSession => self.end(now, EndReason::NotConfirmed),
        }
    }

    fn push(&mut self, e: Effect) {
        self.effects.push_back(e);
    }

    fn live(&self) -> Option<&Live> {
        match &self.stage {
            Stage::Opening(l) | Stage::Running(l) => Some(l),
            _ => None,
        }
    }

    fn live_mut(&mut self) -> Option<&mut Live> {
        match &mut self.stage {
            Stage::Opening(l) | Stage::Running(l) => Some(l),
            _ => None,
        }
    }

    /// What the UI shows for the current stage.
    fn show_stage(&mut self) {
        let activity = match &self.stage {
            Stage::Idle => Activity::Idle,
            Stage::Asking(a) => Activity::Asking(Box::new(a.prompt.clone())),
            Stage::Opening(l) | Stage::Running(l) => Activity::InSession(Box::new(l.info.clone())),
        };
        self.push(Effect::Show(activity));
    }

    /// Tells the relay whether input is held, whatever was told before
    /// (after a failed record, the last `Hold` queued may never have run).
    fn resync_hold(&mut self) {
        self.held = self.live().is_some_and(Live::holds_input);
        self.push(Effect::Hold(self.held));
    }

    /// Tells the relay whether input is held, when that changed.
    fn sync_hold(&mut self) {
        let hold = self.live().is_some_and(Live::holds_input);
        if hold != self.held {
            self.held = hold;
            self.push(Effect::Hold(hold));
        }
    }

    fn tell_watch(&mut self, news: WatchNews) {
        let session = self.live().map(|l| l.info.id);
        if let Some((conn, watched)) = self.watcher
            && Some(watched) == session
        {
            self.push(Effect::Tell {
                conn,
                reply: Reply::Watch(news),
            });
        }
    }

    /// Ends the watch, saying why the session ended when known.
    fn close_watch(&mut self, why: Option<EndReason>) {
        if let Some((conn, _)) = self.watcher.take() {
            if let Some(why) = why {
                self.push(Effect::Tell {
                    conn,
                    reply: Reply::Watch(WatchNews::Ended(why)),
                });
            }
            self.push(Effect::Close {
                conn,
                closed: Closed::Watch(super::watcher::WatchOutcome::Ended(why)),
            });
        }
    }

    /// The decision line `refused` and the end of the connection.
    fn refuse(&mut self, conn: ConnId, why: RefusalCode) {
        self.push(Effect::Tell {
            conn,
            reply: Reply::Decision(Decision::Refused { why }),
        });
        self.push(Effect::Close {
            conn,
            closed: Closed::Request(super::Outcome::Refused(why)),
        });
    }

    /// Refused before anyone is asked: on record (within its budget),
    /// then told.
    fn turn_away(
        &mut self,
        now: Instant,
        conn: ConnId,
        peer: SocketAddr,
        technician: Identity,
        (why, detail): (RefusalCode, String),
        watch: bool,
    ) {
        let retry_after = match why {
            RefusalCode::RateLimited => self
                .prompts
                .get(&technician.fingerprint)
                .and_then(|t| super::ratelimit::retry_after(t, now)),
            _ => None,
        };
        self.push(Effect::Reject {
            peer,
            why,
            technician,
            detail,
        });
        self.push(Effect::Tell {
            conn,
            reply: Reply::Refusal { why, retry_after },
        });
        let closed = if watch {
            Closed::Watch(super::watcher::WatchOutcome::Refused(why))
        } else {
            Closed::Request(super::Outcome::Refused(why))
        };
        self.push(Effect::Close { conn, closed });
    }

    /// What refuses every request whatever it asks.
    fn preflight(&self, log: &Result<(), LogUnusable>) -> Result<(), (RefusalCode, String)> {
        if self.shutting_down {
            return Err((RefusalCode::AgentShuttingDown, "agent shutting down".into()));
        }
        if self.ui_lost {
            return Err((
                RefusalCode::Policy,
                "user interface unavailable: nobody could answer".into(),
            ));
        }
        if let Err(why) = log {
            return Err((RefusalCode::Policy, format!("audit log unusable: {why}")));
        }
        Ok(())
    }

    /// The hourly prompt limit per technician (new requests and requests
    /// for control alike): counts one prompt, or refuses.
    fn count_prompt(&mut self, now: Instant, tech: &Identity) -> Result<(), (RefusalCode, String)> {
        let max = self.rules.max_prompts_per_hour;
        let times = self.prompts.entry(tech.fingerprint.clone()).or_default();
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= RATE_WINDOW)
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

    fn new_prompt(
        &self,
        now: Instant,
        technician: Identity,
        peer: SocketAddr,
        request: &Request,
        asked: Mode,
        control_offered: bool,
    ) -> PromptRequest {
        PromptRequest {
            id: Uuid::new_v4(),
            technician,
            peer,
            ticket: request.ticket.clone(),
            reason: request.reason.clone(),
            asked,
            control_offered,
            deadline: now + self.rules.prompt_timeout,
            timeout: self.rules.prompt_timeout,
            arm_delay: self.rules.arm_delay,
            clipboard: self.rules.clipboard,
            raise: false,
            confirm: false,
            replaced: None,
        }
    }

    /// A new request: the one-at-a-time rule, the blocks and the rate
    /// limit; then she is asked. Nothing is shown before this passes.
    fn request(
        &mut self,
        now: Instant,
        from: From,
        request: Request,
        log: Result<(), LogUnusable>,
    ) {
        let From {
            conn,
            technician,
            peer,
        } = from;
        let admitted = self.preflight(&log).and_then(|()| {
            if matches!(self.stage, Stage::Idle) {
                self.count_prompt(now, &technician)
            } else {
                Err((
                    RefusalCode::Busy,
                    "a prompt or session is already active".into(),
                ))
            }
        });
        if let Err((why, detail)) = admitted {
            self.turn_away(now, conn, peer, technician, (why, detail), false);
            return;
        }
        let control_offered = request.mode == Mode::Control && self.rules.allow_control;
        let prompt = self.new_prompt(
            now,
            technician,
            peer,
            &request,
            request.mode,
            control_offered,
        );
        let asked = if control_offered {
            Mode::Control
        } else {
            Mode::View
        };
        self.stage = Stage::Asking(Box::new(Asked {
            conn,
            session: prompt.id,
            prompt: prompt.clone(),
        }));
        self.show_stage();
        self.push(Effect::Tell {
            conn,
            reply: Reply::Pending {
                timeout: self.rules.prompt_timeout,
                asked,
            },
        });
        self.push(Effect::Ask(Box::new(prompt)));
    }

    /// The mode of running session `session` if `tech` holds it (what a
    /// request for control or a watch, `what`, may ask): `bad_request` for
    /// a session that is not running or is another certificate's.
    fn own_session(
        &self,
        tech: &Identity,
        session: Uuid,
        what: &str,
    ) -> Result<Mode, (RefusalCode, String)> {
        // Running only: the session's id is told with `accepted`, once the
        // screen is open; nobody can know it before.
        let running = match &self.stage {
            Stage::Running(l) => Some(&**l),
            _ => None,
        };
        let Some(live) = running.filter(|l| l.info.id == session && l.ending.is_none()) else {
            return Err((
                RefusalCode::BadRequest,
                format!("{what} of session {session}, which is not running"),
            ));
        };
        let owner = &live.info.technician.fingerprint;
        if *owner != tech.fingerprint {
            return Err((
                RefusalCode::BadRequest,
                format!(
                    "{what} of session {session} from another certificate than the session's ({owner})"
                ),
            ));
        }
        Ok(live.info.mode)
    }

    /// A request for control of running view-only session `session`
    /// (DESIGN.md, wire step 1): asked with the technician's input held;
    /// it does not take the session's place.
    fn raise(
        &mut self,
        now: Instant,
        from: From,
        request: Request,
        session: Uuid,
        log: Result<(), LogUnusable>,
    ) {
        let From {
            conn,
            technician,
            peer,
        } = from;
        let admitted = self.preflight(&log).and_then(|()| {
            if !self.rules.allow_control {
                return Err((
                    RefusalCode::Policy,
                    "control is not allowed by policy (consent.allow_control = false)".into(),
                ));
            }
            let mode = self.own_session(&technician, session, "request for control")?;
            if mode != Mode::View {
                return Err((
                    RefusalCode::BadRequest,
                    format!("request for control of session {session}, already in control"),
                ));
            }
            if self.live().is_some_and(|l| l.question.is_some()) {
                return Err((
                    RefusalCode::Busy,
                    format!("a question about session {session} is already being asked"),
                ));
            }
            self.count_prompt(now, &technician)
        });
        if let Err((why, detail)) = admitted {
            self.turn_away(now, conn, peer, technician, (why, detail), false);
            return;
        }
        let mut prompt = self.new_prompt(now, technician, peer, &request, Mode::Control, true);
        prompt.raise = true;
        let timeout = prompt.timeout;
        if let Some(live) = self.live_mut() {
            live.question = Some(Question::Raise(Box::new(Asked {
                conn,
                session,
                prompt: prompt.clone(),
            })));
        }
        self.sync_hold();
        self.push(Effect::Tell {
            conn,
            reply: Reply::Pending {
                timeout,
                asked: Mode::Control,
            },
        });
        self.push(Effect::Ask(Box::new(prompt)));
    }

    fn watch(
        &mut self,
        now: Instant,
        conn: ConnId,
        technician: Identity,
        peer: SocketAddr,
        session: Uuid,
    ) {
        let admitted = self
            .own_session(&technician, session, "watch")
            .and_then(|mode| {
                if self.watcher.is_some() {
                    Err((
                        RefusalCode::Busy,
                        format!("session {session} is already watched"),
                    ))
                } else {
                    Ok(mode)
                }
            });
        let mode = match admitted {
            Ok(m) => m,
            Err((why, detail)) => {
                self.turn_away(now, conn, peer, technician, (why, detail), true);
                return;
            }
        };
        self.watcher = Some((conn, session));
        self.tell_watch(WatchNews::Mode { mode, by: None });
        let (paused, confirming) = match self.live() {
            Some(l) => (
                l.info.paused,
                matches!(l.question, Some(Question::Confirm { .. })),
            ),
            None => (false, false),
        };
        if paused {
            self.tell_watch(WatchNews::Paused(true));
        }
        if confirming {
            let grace = self.rules.confirm_grace;
            self.tell_watch(WatchNews::Confirming { grace });
        }
    }

    fn answered(
        &mut self,
        now: Instant,
        prompt: Uuid,
        answer: Result<Answer, RefusalCode>,
        local: Option<LocalUser>,
        wall: SystemTime,
    ) {
        match &self.stage {
            Stage::Asking(a) if a.prompt.id == prompt => {
                self.settle_request(now, answer, local, Some(wall));
            }
            Stage::Running(live) | Stage::Opening(live) if live.ending.is_none() => {
                match &live.question {
                    Some(Question::Raise(a)) if a.prompt.id == prompt => {
                        self.settle_raise(now, answer, local);
                    }
                    Some(Question::Confirm { prompt: p, .. }) if *p == prompt => {
                        self.settle_confirm(now, answer, local);
                    }
                    // An answer to a prompt already withdrawn: too late.
                    _ => {}
                }
            }
            _ => {}
        }
    }

    /// What a prompt's outcome means (`grant` reads her answer).
    fn settle(
        answer: &Result<Answer, RefusalCode>,
        grant: impl Fn(Answer) -> Option<Mode>,
    ) -> Settled {
        let (granted, by, why) = match answer {
            Ok(a) => match grant(*a) {
                Some(m) => (Some(m), DecidedBy::User, None),
                None => (None, DecidedBy::User, Some(RefusalCode::User)),
            },
            Err(code @ RefusalCode::Timeout) => (None, DecidedBy::Timeout, Some(*code)),
            Err(code @ RefusalCode::AgentShuttingDown) => (None, DecidedBy::Agent, Some(*code)),
            Err(code) => (None, DecidedBy::Policy, Some(*code)),
        };
        Settled { granted, by, why }
    }

    fn decision(asked: &Asked, s: &Settled, local: Option<LocalUser>) -> Event {
        let p = &asked.prompt;
        Event::Decision {
            local,
            session: asked.session,
            technician: p.technician.clone(),
            peer: p.peer,
            ticket: p.ticket.clone(),
            reason: p.reason.clone(),
            asked: p.asked,
            granted: s.granted,
            by: s.by,
            why: s.why,
        }
    }

    /// Notices of a refusal she should hear of although she never decided.
    fn notify_refusal(&mut self, why: Option<RefusalCode>, technician: &Identity) {
        match why {
            Some(RefusalCode::UnsupportedSession) => {
                self.push(Effect::Notify(Notice::UnsupportedSession {
                    technician: technician.clone(),
                }))
            }
            Some(RefusalCode::Timeout) => self.push(Effect::Notify(Notice::PromptTimedOut {
                technician: technician.clone(),
            })),
            _ => {}
        }
    }

    /// The new request's prompt is over: decided, recorded, then told;
    /// an accepted session opens its screen.
    fn settle_request(
        &mut self,
        now: Instant,
        answer: Result<Answer, RefusalCode>,
        local: Option<LocalUser>,
        wall: Option<SystemTime>,
    ) {
        let Stage::Asking(asked) = std::mem::replace(&mut self.stage, Stage::Idle) else {
            return;
        };
        let control_offered = asked.prompt.control_offered;
        let s = Self::settle(&answer, |a| match a {
            Answer::Control if control_offered => Some(Mode::Control),
            // Never more than was offered, whatever the prompter says.
            Answer::Control | Answer::ViewOnly => Some(Mode::View),
            Answer::Refused | Answer::Continue => None,
        });
        let local = if s.by == DecidedBy::User || s.by == DecidedBy::Timeout {
            local
        } else {
            None
        };
        self.notify_refusal(s.why, &asked.prompt.technician);
        let conn = asked.conn;
        self.push(Effect::Record {
            event: Self::decision(&asked, &s, local.clone()),
            on_fail: OnFail::RefuseRequest { conn },
        });
        let Some(mode) = s.granted else {
            self.refuse(conn, s.why.unwrap_or(RefusalCode::User));
            self.show_stage();
            return;
        };
        let p = asked.prompt;
        let info = SessionInfo {
            id: asked.session,
            technician: p.technician,
            ticket: p.ticket,
            reason: p.reason,
            mode,
            started: wall.unwrap_or(SystemTime::UNIX_EPOCH),
            started_at: now,
            clipboard: self.rules.clipboard,
            paused: false,
        };
        let session = info.id;
        self.stage = Stage::Opening(Box::new(Live {
            conn,
            info,
            local,
            question: None,
            confirm_due: None,
            ending: None,
            relay_over: None,
            server_exited: false,
        }));
        self.show_stage();
        // The driver makes the session's switches afresh: nothing held.
        self.held = false;
        self.push(Effect::OpenScreen(ScreenRequest {
            session,
            launch: self.rules.launch,
            mode,
            grants: self.rules.grants(mode),
        }));
    }

    /// The request for control is over. Checked, recorded and switched in
    /// one step, so the record and the session cannot disagree; input
    /// flows again only after, in the mode just decided.
    fn settle_raise(
        &mut self,
        now: Instant,
        answer: Result<Answer, RefusalCode>,
        local: Option<LocalUser>,
    ) {
        let Some(live) = self.live_mut() else { return };
        let Some(Question::Raise(asked)) = live.question.take() else {
            return;
        };
        let s = Self::settle(&answer, |a| match a {
            Answer::Control => Some(Mode::Control),
            // Only "Allow control" and "Refuse" are offered for a raise;
            // anything else keeps the session as it is.
            Answer::ViewOnly | Answer::Refused | Answer::Continue => None,
        });
        let local = if s.by == DecidedBy::User || s.by == DecidedBy::Timeout {
            local
        } else {
            None
        };
        let conn = asked.conn;
        let session = asked.session;
        if s.granted.is_some() {
            live.info.mode = Mode::Control;
        }
        self.notify_refusal(s.why, &asked.prompt.technician);
        self.push(Effect::Record {
            event: Self::decision(&asked, &s, local),
            on_fail: OnFail::RefuseRaise { conn },
        });
        match s.granted {
            Some(_) => {
                self.push(Effect::Record {
                    event: Event::ModeChanged {
                        session,
                        from: Mode::View,
                        to: Mode::Control,
                        by: "user",
                    },
                    on_fail: OnFail::RefuseRaise { conn },
                });
                self.push(Effect::SetMode(Mode::Control));
                // A period that ended meanwhile asks now, input still held.
                self.maybe_confirm(now);
                self.sync_hold();
                self.show_stage();
                self.tell_watch(WatchNews::Mode {
                    mode: Mode::Control,
                    by: Some("user"),
                });
                self.push(Effect::Tell {
                    conn,
                    reply: Reply::Decision(Decision::Accepted {
                        mode: Mode::Control,
                        session,
                    }),
                });
                self.push(Effect::Close {
                    conn,
                    closed: Closed::Request(super::Outcome::Raised),
                });
            }
            None => {
                self.maybe_confirm(now);
                self.sync_hold();
                self.refuse(conn, s.why.unwrap_or(RefusalCode::User));
            }
        }
    }

    /// A request for control whose session ended while it was asked: on
    /// record as refused by the agent (`bad_request`, as for any session
    /// that is not running), and told.
    fn drop_raise(&mut self, asked: Box<Asked>) {
        self.push(Effect::Withdraw {
            prompt: asked.prompt.id,
        });
        let s = Settled {
            granted: None,
            by: DecidedBy::Agent,
            why: Some(RefusalCode::BadRequest),
        };
        let conn = asked.conn;
        self.push(Effect::Record {
            event: Self::decision(&asked, &s, None),
            on_fail: OnFail::Nothing,
        });
        self.refuse(conn, RefusalCode::BadRequest);
    }

    /// The session's question goes with it.
    fn drop_question(&mut self, q: Option<Question>) {
        match q {
            Some(Question::Raise(asked)) => self.drop_raise(asked),
            Some(Question::Confirm { prompt, .. }) => self.push(Effect::Withdraw { prompt }),
            None => {}
        }
    }

    /// Asks "continue?" when the consent period is over and nothing else
    /// is being asked. Her screen stays hers meanwhile: input is held.
    fn maybe_confirm(&mut self, now: Instant) {
        let grace = self.rules.confirm_grace;
        let arm_delay = self.rules.arm_delay;
        let Stage::Running(live) = &mut self.stage else {
            return;
        };
        if live.ending.is_some()
            || live.question.is_some()
            || live.confirm_due.is_none_or(|d| now < d)
        {
            return;
        }
        let id = Uuid::new_v4();
        let deadline = now + grace;
        live.question = Some(Question::Confirm {
            prompt: id,
            deadline,
        });
        live.confirm_due = None;
        let prompt = PromptRequest {
            id,
            technician: live.info.technician.clone(),
            // Shown nowhere for this question; the technician's address
            // is on record with the session's decision.
            peer: SocketAddr::from(([0, 0, 0, 0], 0)),
            ticket: live.info.ticket.clone(),
            reason: live.info.reason.clone(),
            asked: live.info.mode,
            control_offered: false,
            deadline,
            timeout: grace,
            arm_delay,
            clipboard: live.info.clipboard,
            raise: false,
            confirm: true,
            replaced: None,
        };
        self.sync_hold();
        self.tell_watch(WatchNews::Confirming { grace });
        self.push(Effect::Ask(Box::new(prompt)));
    }

    fn confirmation(
        &self,
        continued: bool,
        by: DecidedBy,
        local: Option<LocalUser>,
    ) -> Option<Event> {
        let live = self.live()?;
        Some(Event::Confirmation {
            session: live.info.id,
            continued,
            by,
            local,
        })
    }

    fn settle_confirm(
        &mut self,
        now: Instant,
        answer: Result<Answer, RefusalCode>,
        local: Option<LocalUser>,
    ) {
        match answer {
            Ok(Answer::Continue) => {
                let every = self.rules.confirm_every;
                if let Some(event) = self.confirmation(true, DecidedBy::User, local) {
                    self.push(Effect::Record {
                        event,
                        on_fail: OnFail::EndSession,
                    });
                }
                if let Some(live) = self.live_mut() {
                    live.question = None;
                    live.confirm_due = every.map(|e| now + e);
                }
                self.sync_hold();
                self.tell_watch(WatchNews::Confirmed);
            }
            // "Terminer", Escape: her end. Any other answer to this
            // question grants nothing and ends it too.
            Ok(_) => {
                if let Some(event) = self.confirmation(false, DecidedBy::User, local) {
                    self.push(Effect::Record {
                        event,
                        on_fail: OnFail::Nothing,
                    });
                }
                self.end(now, EndReason::User);
            }
            // Nobody could be asked (no helper, UI failure): nobody
            // confirms.
            Err(_) => self.not_confirmed(DecidedBy::Policy, None),
        }
    }

    fn not_confirmed(&mut self, by: DecidedBy, local: Option<LocalUser>) {
        if let Some(event) = self.confirmation(false, by, local) {
            self.push(Effect::Record {
                event,
                on_fail: OnFail::Nothing,
            });
        }
        self.end_relay(EndReason::NotConfirmed);
    }

    /// Tells a running relay to end; the session is over once it reports.
    fn end_relay(&mut self, why: EndReason) {
        let Stage::Running(live) = &mut self.stage else {
            return;
        };
        if live.ending.is_some() {
            return;
        }
        live.ending = Some(why);
        // Whatever was being asked goes at once.
        match live.question.take() {
            Some(Question::Raise(asked)) => {
                self.push(Effect::EndRelay(why));
                self.drop_raise(asked);
            }
            Some(Question::Confirm { prompt, .. }) => {
                self.push(Effect::EndRelay(why));
                self.push(Effect::Withdraw { prompt });
            }
            None => self.push(Effect::EndRelay(why)),
        }
    }

    fn gone(&mut self, now: Instant, conn: ConnId) {
        if self.watcher.is_some_and(|(c, _)| c == conn) {
            self.watcher = None;
            self.push(Effect::Close {
                conn,
                closed: Closed::Watch(super::watcher::WatchOutcome::Closed),
            });
            return;
        }
        match &self.stage {
            Stage::Asking(a) if a.conn == conn => {
                let prompt = a.prompt.id;
                self.push(Effect::Withdraw { prompt });
                self.settle_request(now, Err(RefusalCode::BadRequest), None, None);
            }
            Stage::Opening(l) if l.conn == conn => self.end(now, EndReason::Technician),
            Stage::Running(l) | Stage::Opening(l) if matches!(&l.question, Some(Question::Raise(a)) if a.conn == conn) =>
            {
                if let Some(Question::Raise(a)) = &l.question {
                    let prompt = a.prompt.id;
                    self.push(Effect::Withdraw { prompt });
                }
                self.settle_raise(now, Err(RefusalCode::BadRequest), None);
            }
            // The session's own connection is the relay's to watch.
            _ => {}
        }
    }

    fn opened(&mut self, now: Instant, session: Uuid, upstream: String) {
        if !matches!(&self.stage, Stage::Opening(l) if l.info.id == session) {
            return;
        }
        let Stage::Opening(mut live) = std::mem::replace(&mut self.stage, Stage::Idle) else {
            return;
        };
        live.confirm_due = self.rules.confirm_every.map(|e| now + e);
        let info = live.info.clone();
        let conn = live.conn;
        self.push(Effect::Record {
            event: Event::SessionStarted {
                local: live.local.clone(),
                session,
                technician: info.technician.clone(),
                mode: info.mode,
                upstream,
            },
            on_fail: OnFail::AbortOpening { session },
        });
        self.stage = Stage::Running(live);
        self.push(Effect::Notify(Notice::SessionStarted(info.clone())));
        self.push(Effect::Tell {
            conn,
            reply: Reply::Decision(Decision::Accepted {
                mode: info.mode,
                session,
            }),
        });
        self.push(Effect::Relay {
            conn,
            session,
            limits: crate::session::Limits {
                idle_timeout: self.rules.idle_timeout,
                max_duration: self.rules.max_duration,
                clipboard: self.rules.clipboard,
            },
        });
    }

    /// A session that never started: on record and told to her (she
    /// accepted), then to the technician.
    fn never_started(&mut self, now: Instant, why: EndReason, detail: String, code: RefusalCode) {
        let Stage::Opening(mut live) = std::mem::replace(&mut self.stage, Stage::Idle) else {
            return;
        };
        self.drop_question(live.question.take());
        self.push(Effect::Record {
            event: Event::SessionEnded {
                session: live.info.id,
                why,
                duration: now.saturating_duration_since(live.info.started_at),
                bytes_to_server: 0,
                bytes_to_technician: 0,
                detail: Some(detail),
            },
            on_fail: OnFail::Nothing,
        });
        self.push(Effect::Notify(Notice::SessionEnded {
            info: live.info.clone(),
            why,
        }));
        self.close_watch(Some(why));
        self.refuse(live.conn, code);
        self.sync_hold();
        self.show_stage();
    }

    fn open_failed(&mut self, now: Instant, session: Uuid, detail: String) {
        if matches!(&self.stage, Stage::Opening(l) if l.info.id == session) {
            self.never_started(
                now,
                EndReason::Upstream,
                detail,
                RefusalCode::UpstreamUnreachable,
            );
        }
    }

    /// The relay is over: recorded at once, or held back a moment when all
    /// it says is that the server closed and no ending was asked for.
    fn relay_ended(&mut self, now: Instant, session: Uuid, end: RelayEnd) {
        let Stage::Running(live) = &mut self.stage else {
            return;
        };
        if live.info.id != session || live.relay_over.is_some() {
            return;
        }
        if end.why == EndReason::Upstream
            && live.ending.is_none()
            && !live.server_exited
            && !self.rules.upstream_grace.is_zero()
        {
            live.relay_over = Some(RelayOver {
                until: now + self.rules.upstream_grace,
                end,
            });
            return;
        }
        self.session_over(now, end);
    }

    /// Records a relay's end held back, if any.
    fn finish_relay(&mut self, now: Instant) {
        let Stage::Running(live) = &mut self.stage else {
            return;
        };
        if let Some(r) = live.relay_over.take() {
            self.session_over(now, r.end);
        }
    }

    /// The running session is over: recorded, told to her, the watch and
    /// the technician's connection closed.
    fn session_over(
        &mut self,
        now: Instant,
        RelayEnd {
            why,
            detail,
            bytes_to_server,
            bytes_to_technician,
        }: RelayEnd,
    ) {
        let Stage::Running(mut live) = std::mem::replace(&mut self.stage, Stage::Idle) else {
            return;
        };
        let session = live.info.id;
        self.drop_question(live.question.take());
        let why = live.ending.unwrap_or(why);
        self.push(Effect::Record {
            event: Event::SessionEnded {
                session,
                why,
                duration: now.saturating_duration_since(live.info.started_at),
                bytes_to_server,
                bytes_to_technician,
                detail,
            },
            on_fail: OnFail::Nothing,
        });
        self.push(Effect::Notify(Notice::SessionEnded {
            info: live.info.clone(),
            why,
        }));
        self.close_watch(Some(why));
        self.push(Effect::Close {
            conn: live.conn,
            closed: Closed::Request(super::Outcome::Ended(why)),
        });
        // Only now, with the server leg closed, may another prompt come:
        // no input of this session can reach the next one.
        self.sync_hold();
        self.show_stage();
    }

    fn end(&mut self, now: Instant, why: EndReason) {
        match &self.stage {
            Stage::Opening(_) => {
                let code = match why {
                    EndReason::AgentStopped => RefusalCode::AgentShuttingDown,
                    EndReason::UiLost => RefusalCode::Policy,
                    _ => RefusalCode::User,
                };
                if let Stage::Opening(l) = &self.stage {
                    let session = l.info.id;
                    self.push(Effect::CancelOpen { session });
                }
                self.never_started(
                    now,
                    why,
                    "ended while connecting to the VNC server".into(),
                    code,
                );
            }
            Stage::Running(_) => self.end_relay(why),
            _ => {}
        }
    }

    fn view_only(&mut self) {
        let Some(live) = self.live_mut() else { return };
        if live.info.mode != Mode::Control || live.ending.is_some() {
            return;
        }
        live.info.mode = Mode::View;
        let session = live.info.id;
        self.push(Effect::SetMode(Mode::View));
        self.push(Effect::Record {
            event: Event::ModeChanged {
                session,
                from: Mode::Control,
                to: Mode::View,
                by: "user",
            },
            on_fail: OnFail::Nothing,
        });
        self.show_stage();
        self.tell_watch(WatchNews::Mode {
            mode: Mode::View,
            by: Some("user"),
        });
    }

    /// Hides her screen or shows it again: the protection first, then the
    /// record, then what the technician is told.
    fn pause(&mut self, on: bool) {
        let Some(live) = self.live_mut() else { return };
        if live.info.paused == on || live.ending.is_some() {
            return;
        }
        live.info.paused = on;
        let session = live.info.id;
        self.push(Effect::Hide(on));
        self.sync_hold();
        let event = if on {
            Event::Paused {
                session,
                by: "user",
            }
        } else {
            Event::Resumed {
                session,
                by: "user",
            }
        };
        self.push(Effect::Record {
            event,
            on_fail: OnFail::Nothing,
        });
        self.show_stage();
        self.tell_watch(WatchNews::Paused(on));
    }

    /// Shutdown or a lost UI: the prompt on screen is refused `code`, a
    /// session ends `why`.
    fn stop_everything(&mut self, now: Instant, code: RefusalCode, why: EndReason) {
        match &self.stage {
            Stage::Asking(a) => {
                let prompt = a.prompt.id;
                self.push(Effect::Withdraw { prompt });
                self.settle_request(now, Err(code), None, None);
            }
            Stage::Opening(_) | Stage::Running(_) => self.end(now, why),
            Stage::Idle => {}
        }
    }
}

#[cfg(test)]
mod tests;
