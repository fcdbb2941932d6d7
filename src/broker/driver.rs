//! The broker's one task: it owns the consent core ([`Consent`]), feeds it
//! what happens, and carries out its effects in order: the audit log, the
//! prompter, the screen, the relay's switches, the UI's state, the lines to
//! technicians. Prompts and screen openings run as tasks of their own, so
//! that the core is never blocked on them; their results come back here as
//! messages.

use super::conn::ToConn;
use super::consent::{ConnId, Consent, Effect, Input, Reply, Rules, WatchNews};
use super::{Answer, PromptError, Prompter, Shared};
use crate::protocol::{self, RefusalCode};
use crate::session::{self, Handles, LiveSession, Prepared, SessionResult};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use uuid::Uuid;

/// What reaches the driver.
pub(super) enum ToDriver {
    /// A new connection, with where to write to it and its first input.
    Open {
        conn: ConnId,
        to_conn: mpsc::UnboundedSender<ToConn>,
        input: Input,
    },
    Input(Input),
    /// A prompt task's end.
    Answer {
        prompt: Uuid,
        result: Result<Answer, PromptError>,
    },
    /// A relay's end, from the connection task that ran it.
    RelayDone {
        session: Uuid,
        result: SessionResult,
    },
}

/// A screen opened for a session, past Accord's RFB handshake.
pub(super) struct Opened {
    prepared: Prepared,
    /// Keeps a server started for the session running.
    keep: Option<Box<dyn std::any::Any + Send>>,
    describe: String,
    stopped_by_her: Option<super::StoppedByHer>,
}

/// The session's world outside the core.
#[derive(Default)]
struct Screen {
    session: Option<Uuid>,
    /// The relay's switches, from acceptance on (the kill switch works
    /// while the screen opens).
    live: Option<LiveSession>,
    handles: Option<Handles>,
    /// The opening itself, polled by the driver before anything else: a
    /// failure that also ends the session (a helper cut off for a bad
    /// hand-over) says why the session never started.
    opening: Option<Opening>,
    opened: Option<Opened>,
    /// Dropped when the relay is over: stops the server.
    keep: Option<Box<dyn std::any::Any + Send>>,
}

type Opening =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Opened, OpenError>> + Send>>;

/// Why a session's screen could not be opened; its text is the record's
/// `detail` (`session_ended`, `upstream`).
#[derive(Debug, thiserror::Error)]
pub(super) enum OpenError {
    /// `[upstream] vnc` did not answer Accord's handshake.
    #[error("{vnc}: {source}")]
    Configured {
        vnc: String,
        source: session::rfb_io::SetupError,
    },
    /// The server could not be started for the session.
    #[error(transparent)]
    Start(#[from] super::ScreenError),
    /// The server started for the session did not answer the handshake.
    #[error("{describe}: {source}")]
    Started {
        describe: String,
        source: session::rfb_io::SetupError,
    },
}

/// What woke the driver.
enum Wake {
    Opened(Result<Opened, OpenError>),
    Msg(Option<ToDriver>),
    StoppedByHer(Uuid, bool),
    Timer,
}

struct Driver<P: Prompter> {
    shared: Arc<Shared>,
    prompter: Arc<P>,
    core: Consent,
    /// For the tasks the driver starts; weak so that the driver ends once
    /// the broker and its handles are gone.
    me: mpsc::WeakUnboundedSender<ToDriver>,
    conns: HashMap<ConnId, mpsc::UnboundedSender<ToConn>>,
    asks: HashMap<Uuid, AbortHandle>,
    screen: Screen,
    /// Whether the exit of the server started for a session was her stop
    /// ([`super::Screen::stopped_by_her`]); watched while the session
    /// exists.
    stopped_by_her: Option<(Uuid, super::StoppedByHer)>,
}

/// Starts the driver; returns where to send it inputs.
pub(super) fn spawn<P: Prompter>(
    shared: Arc<Shared>,
    prompter: Arc<P>,
) -> mpsc::UnboundedSender<ToDriver> {
    let (tx, rx) = mpsc::unbounded_channel();
    let driver = Driver {
        core: Consent::new(Rules::from_policy(&shared.policy)),
        shared,
        prompter,
        me: tx.downgrade(),
        conns: HashMap::new(),
        asks: HashMap::new(),
        screen: Screen::default(),
        stopped_by_her: None,
    };
    tokio::spawn(driver.run(rx));
    tx
}

impl<P: Prompter> Driver<P> {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ToDriver>) {
        loop {
            let deadline = self.core.poll_timeout().map(tokio::time::Instant::from_std);
            let timer = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let mut opening = self.screen.opening.take();
            let mut stopped = self.stopped_by_her.take();
            let wake = {
                let stopped_by_her = async {
                    match stopped.as_mut() {
                        Some((s, f)) => (*s, f.as_mut().await),
                        None => std::future::pending().await,
                    }
                };
                let opened = async {
                    match opening.as_mut() {
                        Some(f) => f.as_mut().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    biased;
                    r = opened => Wake::Opened(r),
                    (s, hers) = stopped_by_her => Wake::StoppedByHer(s, hers),
                    m = rx.recv() => Wake::Msg(m),
                    () = timer => Wake::Timer,
                }
            };
            // A future that resolved is never polled again.
            if !matches!(wake, Wake::StoppedByHer(..)) {
                self.stopped_by_her = stopped;
            }
            match wake {
                Wake::Opened(result) => self.opened(result),
                Wake::StoppedByHer(session, by_her) => {
                    self.screen.opening = opening;
                    if by_her {
                        tracing::info!("sharing stopped from the desktop's own control");
                    }
                    self.core
                        .handle(Instant::now(), Input::ServerExited { session, by_her });
                }
                Wake::Msg(None) => break,
                Wake::Msg(Some(m)) => {
                    self.screen.opening = opening;
                    self.on(m);
                }
                Wake::Timer => {
                    self.screen.opening = opening;
                    let prompter = &self.prompter;
                    self.core
                        .handle_timeout(Instant::now(), |id| prompter.asked(id));
                }
            }
            self.carry_out();
            // Past its end, a session's server says nothing more.
            if self
                .stopped_by_her
                .as_ref()
                .is_some_and(|(s, _)| self.core.session() != Some(*s))
            {
                self.stopped_by_her = None;
            }
        }
        // Everyone who could send is gone: stop what still runs.
        for (_, a) in self.asks.drain() {
            a.abort();
        }
    }

    /// The screen of the session being opened answered, or failed.
    fn opened(&mut self, result: Result<Opened, OpenError>) {
        let Some(session) = self.screen.session else {
            return;
        };
        let now = Instant::now();
        match result {
            Ok(opened) => {
                let upstream = opened.describe.clone();
                self.screen.opened = Some(opened);
                self.core
                    .handle(now, Input::ScreenOpened { session, upstream });
            }
            Err(e) => {
                let detail = e.to_string();
                tracing::warn!("upstream: {detail}");
                self.screen = Screen::default();
                self.core
                    .handle(now, Input::ScreenFailed { session, detail });
            }
        }
    }

    fn on(&mut self, msg: ToDriver) {
        let now = Instant::now();
        match msg {
            ToDriver::Open {
                conn,
                to_conn,
                input,
            } => {
                self.conns.insert(conn, to_conn);
                self.core.handle(now, input);
            }
            ToDriver::Input(input) => self.core.handle(now, input),
            ToDriver::Answer { prompt, result } => {
                if self.asks.remove(&prompt).is_none() {
                    return; // withdrawn meanwhile
                }
                let local = if result.is_ok() {
                    self.prompter.consenter(prompt)
                } else {
                    None
                };
                let answer = result.map_err(|e| match e {
                    PromptError::NoUser(_) => {
                        tracing::warn!("{e}: refusing");
                        RefusalCode::NoUser
                    }
                    PromptError::UnsupportedSession(_) => {
                        tracing::warn!("{e}: refusing");
                        RefusalCode::UnsupportedSession
                    }
                    PromptError::Unavailable(_) => {
                        tracing::error!("{e}: refusing");
                        RefusalCode::Policy
                    }
                });
                self.core.handle(
                    now,
                    Input::Answered {
                        prompt,
                        answer,
                        local,
                        wall: SystemTime::now(),
                    },
                );
            }
            ToDriver::RelayDone { session, result } => {
                if self.screen.session == Some(session) {
                    // The server started for this session stops with it,
                    // before anything else is recorded or asked.
                    self.screen = Screen::default();
                }
                self.core.handle(
                    now,
                    Input::RelayEnded {
                        session,
                        why: result.why,
                        detail: result.detail,
                        bytes_to_server: result.bytes_to_server,
                        bytes_to_technician: result.bytes_to_technician,
                    },
                );
            }
        }
    }

    /// Carries out every effect the core queued, in order.
    fn carry_out(&mut self) {
        while let Some(effect) = self.core.poll() {
            self.effect(effect);
        }
    }

    fn effect(&mut self, effect: Effect) {
        match effect {
            Effect::Record { event, on_fail } => {
                if let Err(e) = self.shared.journal.record(&event) {
                    tracing::error!("{e} (recording {})", event.name());
                    self.core.record_failed(Instant::now(), on_fail);
                }
            }
            Effect::Reject {
                peer,
                why,
                technician,
                detail,
            } => self
                .shared
                .reject(peer, why.as_str(), Some(technician), detail),
            Effect::Tell { conn, reply } => {
                if let Some(c) = self.conns.get(&conn) {
                    let _ = c.send(ToConn::Write(encode(&reply)));
                }
            }
            Effect::Close { conn, closed } => {
                if let Some(c) = self.conns.remove(&conn) {
                    let _ = c.send(ToConn::Close(closed));
                }
            }
            Effect::Ask(prompt) => {
                let id = prompt.id;
                let prompter = self.prompter.clone();
                let me = self.me.clone();
                let task = tokio::spawn(async move {
                    let result = prompter.ask(*prompt).await;
                    if let Some(me) = me.upgrade() {
                        let _ = me.send(ToDriver::Answer { prompt: id, result });
                    }
                });
                self.asks.insert(id, task.abort_handle());
            }
            Effect::Withdraw { prompt } => {
                // Dropping the prompter's future makes the prompt disappear.
                if let Some(a) = self.asks.remove(&prompt) {
                    a.abort();
                }
            }
            Effect::OpenScreen(req) => self.open_screen(req),
            Effect::CancelOpen { session } => {
                // Dropping the opening stops it, and what it opened.
                if self.screen.session == Some(session) {
                    self.screen = Screen::default();
                }
            }
            Effect::Relay {
                conn,
                session,
                limits,
            } => {
                let opened = self.screen.opened.take();
                let handles = self.screen.handles.take();
                let sent = match (self.conns.get(&conn), opened, handles) {
                    (Some(c), Some(opened), Some(handles)) => {
                        self.screen.keep = opened.keep;
                        self.stopped_by_her = opened.stopped_by_her.map(|f| (session, f));
                        c.send(ToConn::Relay {
                            session,
                            prepared: opened.prepared,
                            handles,
                            limits,
                        })
                        .is_ok()
                    }
                    _ => false,
                };
                if !sent {
                    // The technician's task is gone: there is no relay to run.
                    self.screen = Screen::default();
                    self.core.handle(
                        Instant::now(),
                        Input::RelayEnded {
                            session,
                            why: session::EndReason::Technician,
                            detail: Some("the technician's connection was gone".into()),
                            bytes_to_server: 0,
                            bytes_to_technician: 0,
                        },
                    );
                }
            }
            Effect::SetMode(mode) => {
                if let Some(l) = &self.screen.live {
                    l.set_mode(mode);
                }
            }
            Effect::Hold(hold) => {
                if let Some(l) = &self.screen.live {
                    l.hold_input(hold);
                }
            }
            Effect::Hide(hide) => {
                if let Some(l) = &self.screen.live {
                    l.hide(hide);
                }
            }
            Effect::EndRelay(why) => {
                if let Some(l) = &self.screen.live {
                    l.end(why);
                }
            }
            Effect::Show(activity) => self.shared.state.send_modify(|s| s.activity = activity),
            Effect::Block(why) => self.shared.state.send_modify(|s| s.blocked = Some(why)),
            Effect::Notify(n) => {
                let _ = self.shared.notices.send(n);
            }
        }
    }

    /// The session's server leg: the server started for it (`[upstream]
    /// launch`), or `[upstream] vnc`, past its RFB handshake.
    fn open_screen(&mut self, req: super::ScreenRequest) {
        let (live, handles) = LiveSession::new(req.mode);
        let session = req.session;
        let policy = self.shared.policy.clone();
        let prompter = self.prompter.clone();
        let opening: Opening = Box::pin(async move { open(&policy, &*prompter, req).await });
        self.screen = Screen {
            session: Some(session),
            live: Some(live),
            handles: Some(handles),
            opening: Some(opening),
            opened: None,
            keep: None,
        };
        self.stopped_by_her = None;
    }
}

async fn open<P: Prompter>(
    policy: &crate::policy::Policy,
    prompter: &P,
    req: super::ScreenRequest,
) -> Result<Opened, OpenError> {
    if policy.upstream.launch == crate::policy::Launch::None {
        let prepared =
            session::prepare(&policy.upstream)
                .await
                .map_err(|source| OpenError::Configured {
                    vnc: policy.upstream.vnc.to_string(),
                    source,
                })?;
        return Ok(Opened {
            prepared,
            keep: None,
            describe: policy.upstream.vnc.to_string(),
            stopped_by_her: None,
        });
    }
    let screen = prompter.open_screen(req).await?;
    // A server Accord started has no password: its socket is the lock.
    let prepared = session::prepare_connected(screen.upstream, None)
        .await
        .map_err(|source| OpenError::Started {
            describe: screen.describe.clone(),
            source,
        })?;
    Ok(Opened {
        prepared,
        keep: Some(screen.keep),
        describe: screen.describe,
        stopped_by_her: screen.stopped_by_her,
    })
}

/// A reply as its line on the wire.
fn encode(reply: &Reply) -> Vec<u8> {
    match reply {
        Reply::Pending { timeout, asked } => protocol::encode_pending(*timeout, *asked),
        Reply::Decision(d) => protocol::encode_decision(d),
        Reply::Refusal { why, retry_after } => protocol::encode_refusal(*why, *retry_after),
        Reply::Watch(news) => match news {
            WatchNews::Mode { mode, by } => protocol::encode_watch_mode(*mode, *by),
            WatchNews::Paused(p) => protocol::encode_watch_paused(*p),
            WatchNews::Confirming { grace } => protocol::encode_watch_confirming(*grace),
            WatchNews::Confirmed => protocol::encode_watch_confirmed(),
            WatchNews::Ended(why) => protocol::encode_watch_ended(why.as_str()),
        },
    }
}
