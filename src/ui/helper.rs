//! `accord ui`: the session helper. It shows and answers, nothing more: the
//! prompt, the banner, the tray, the notifications and the kill shortcut of
//! `accord agent`, fed by `accord service` over `ui.sock` (the helper
//! protocol, [`crate::seat::proto`]) instead of an in-process core.
//!
//! It holds no key, writes no log and opens no port, so a technician in
//! control of this session gains nothing by attacking it: killing it ends
//! the session (`ui_lost`), and the service asks only the helper of the
//! session in front of the screen. When the service is unreachable the tray
//! says so and the helper reconnects with backoff.

use super::agent::{display_missing, run_windows, watch_session};
use super::banner::SessionActions;
use super::hub::{Hub, UiPrompter};
use super::strings::Strings;
use super::{notify, tray};
use crate::broker::{AgentState, Answer, Listening, Notice, Prompter};
use crate::engine::StartError;
use crate::launch;
use crate::policy::Launch;
use crate::policy::Policy;
use crate::seat::fdpass;
use crate::seat::proto::{self, FromHelper, MAX_LINE, ToHelper};
use std::collections::HashMap;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::{Notify, broadcast, mpsc, watch};
use uuid::Uuid;

/// Shown while the service cannot be reached.
const UNREACHABLE: &str = "the Accord service is unreachable";

/// A line to the service, and the descriptor it carries (`opened`).
type Out = (FromHelper, Option<OwnedFd>);

/// How long after her answer an `open` for that session is obeyed.
pub const OPEN_WITHIN: Duration = Duration::from_secs(15);

/// Whether to start a server for an `open`: only for a session this helper
/// answered itself (a session's id is its prompt's), within
/// [`OPEN_WITHIN`], in the mode she chose, on a link to a service whose
/// peer is root, the service's user or her own. Whoever else gets hold of
/// the link (the `accord` user's rights, a planted socket) cannot make her
/// helper start a full-input server she never agreed to.
pub fn may_open(
    answered: Option<(Instant, Answer)>,
    now: Instant,
    mode: crate::protocol::Mode,
    peer_trusted: bool,
) -> Result<(), &'static str> {
    use crate::protocol::Mode;
    if !peer_trusted {
        return Err("the service's socket is not held by root or the service's user");
    }
    let Some((at, answer)) = answered else {
        return Err("this helper did not answer that session");
    };
    if now.saturating_duration_since(at) > OPEN_WITHIN {
        return Err("the answer for that session is too old");
    }
    match (answer, mode) {
        (Answer::Control, _) | (Answer::ViewOnly, Mode::View) => Ok(()),
        (Answer::ViewOnly, Mode::Control) => Err("she allowed viewing only"),
        (Answer::Refused, _) => Err("she refused that session"),
        (Answer::Continue, _) => Err("her answer was to keep a session going, not to start one"),
    }
}

/// Whether the service's end of the link runs as root, the service's user
/// or this helper's own user (a service started by hand, in tests).
fn trusted_peer(stream: &UnixStream) -> bool {
    // SAFETY: getuid has no preconditions.
    let me = unsafe { libc::getuid() };
    let service = crate::platform::uid_of(crate::platform::SERVICE_USER);
    stream
        .peer_cred()
        .is_ok_and(|c| c.uid() == 0 || c.uid() == me || Some(c.uid()) == service)
}

/// The banner's and tray's buttons: messages to the service, if connected.
#[derive(Default)]
struct HelperActions {
    out: Mutex<Option<mpsc::Sender<Out>>>,
}

impl HelperActions {
    fn send(&self, m: FromHelper) {
        // Disconnected: the service already ended the session (ui_lost).
        let _ = self.try_send(m);
    }

    /// `false` (and said in the log) when the service cannot get it.
    fn try_send(&self, m: FromHelper) -> bool {
        let tx = self.out.lock().ok().and_then(|g| g.clone());
        match tx {
            Some(tx) => {
                let sent = tx.try_send((m, None)).is_ok();
                if !sent {
                    tracing::warn!("the service does not read: the request is lost");
                }
                sent
            }
            None => {
                tracing::warn!("the service is unreachable");
                false
            }
        }
    }
}

impl SessionActions for HelperActions {
    fn end(&self) {
        self.send(FromHelper::End {});
    }
    fn set_view_only(&self) {
        self.send(FromHelper::ViewOnly {});
    }
    fn pause(&self, on: bool) {
        self.send(FromHelper::Pause { on });
    }
}

fn unreachable_state() -> AgentState {
    AgentState {
        listening: Listening::Off(UNREACHABLE.into()),
        activity: crate::broker::Activity::Idle,
        blocked: Some(UNREACHABLE.into()),
    }
}

/// Runs the helper until "Quitter", SIGTERM or the end of the session.
pub fn run_helper(policy: Policy, socket: PathBuf) -> Result<(), StartError> {
    if let Some(why) = display_missing() {
        // No window can show here: connecting would only make this session
        // a candidate that cannot answer. The service refuses `no_user`.
        return Err(StartError::Other(format!("accord ui: {why}")));
    }
    let strings = Arc::new(
        Strings::for_policy(policy.ui.language).map_err(|e| StartError::Other(e.to_string()))?,
    );
    let hub = Hub::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("accord-ui")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let (state_tx, state_rx) = watch::channel(unreachable_state());
    let (notices, _) = broadcast::channel::<Notice>(32);
    let actions = Arc::new(HelperActions::default());
    let quit = Arc::new(Notify::new());

    rt.spawn(watch_session(state_rx.clone(), hub.clone()));
    rt.spawn(notify::run(notices.subscribe(), strings.clone()));
    {
        let (hub, quit) = (hub.clone(), quit.clone());
        rt.spawn(async move {
            tokio::select! {
                _ = quit.notified() => {}
                _ = crate::engine::termination_signal() => {}
            }
            hub.quit();
        });
    }
    let screensaver = screensaver_watch(&rt);
    rt.spawn(connect_loop(Link {
        socket,
        strings: strings.clone(),
        hub: hub.clone(),
        state: state_tx,
        notices,
        actions: actions.clone(),
        screensaver,
    }));
    tray::spawn(
        rt.handle().clone(),
        state_rx,
        actions.clone(),
        service_history(actions.clone(), hub.clone(), strings.clone()),
        strings.clone(),
        quit,
    );
    let lost = run_windows(&hub, &policy.ui.kill_shortcut, strings, actions);
    rt.shutdown_timeout(Duration::from_secs(1));
    match lost {
        Some(why) => Err(StartError::Other(format!(
            "the user interface was lost: {why}"
        ))),
        None => Ok(()),
    }
}

/// The session bus's screen saver, if there is one to watch.
fn screensaver_watch(rt: &tokio::runtime::Runtime) -> watch::Receiver<bool> {
    #[cfg(feature = "logind")]
    {
        match rt.block_on(crate::seat::screensaver::watch()) {
            Ok(rx) => return rx,
            Err(e) => tracing::info!("no screen saver to watch ({e}); logind's lock still counts"),
        }
    }
    let _ = rt;
    watch::channel(false).1
}

/// "Historique" of `accord ui`: the service reads the log (the helper
/// cannot) and answers with this user's own decisions only; the window
/// opens when the answer arrives ([`ToHelper::History`]).
fn service_history(
    actions: Arc<HelperActions>,
    hub: Arc<Hub>,
    strings: Arc<Strings>,
) -> super::tray::HistoryFetch {
    Arc::new(move || {
        if !actions.try_send(FromHelper::History {}) {
            hub.show_history(vec![strings.history.unavailable.clone()]);
        }
    })
}

struct Link {
    socket: PathBuf,
    strings: Arc<Strings>,
    hub: Arc<Hub>,
    state: watch::Sender<AgentState>,
    notices: broadcast::Sender<Notice>,
    actions: Arc<HelperActions>,
    screensaver: watch::Receiver<bool>,
}

/// Connects, serves, and reconnects with backoff, for ever.
async fn connect_loop(mut link: Link) {
    let mut backoff = Duration::from_millis(250);
    loop {
        match UnixStream::connect(&link.socket).await {
            Ok(s) => {
                backoff = Duration::from_millis(250);
                if let Err(e) = serve(&mut link, s).await {
                    tracing::warn!("service link: {e}");
                }
            }
            Err(e) => tracing::debug!("{}: {e}", link.socket.display()),
        }
        *link.actions.out.lock().unwrap_or_else(|p| p.into_inner()) = None;
        link.state.send_replace(unreachable_state());
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the service sent a bad line: {0}")]
    Proto(#[from] proto::ProtoError),
    #[error("the service closed the connection")]
    Closed,
}

/// One connection to the service. Prompts still open when it ends are
/// withdrawn (their ask tasks are aborted).
async fn serve(link: &mut Link, stream: UnixStream) -> Result<(), LinkError> {
    let peer_trusted = trusted_peer(&stream);
    if !peer_trusted {
        tracing::warn!(
            "the service's socket is held by an unexpected user: no server will be started through it"
        );
    }
    let (r, w) = stream.into_split();
    let mut r = BufReader::new(r);
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(64);
    let wayland = crate::platform::wayland_session();
    let hello = FromHelper::Hello {
        mutter: wayland && crate::mutter::available_here().await,
        version: env!("CARGO_PKG_VERSION").into(),
        display: Some(if wayland { "wayland" } else { "x11" }.into()),
        exe: std::env::current_exe()
            .ok()
            .map(|p| p.display().to_string()),
    };
    fdpass::send_line(w.as_ref(), &proto::encode(&hello)).await?;
    let writer = tokio::spawn(async move {
        while let Some((m, fd)) = out_rx.recv().await {
            let line = proto::encode(&m);
            let sent = match &fd {
                Some(fd) => fdpass::send_line_with_fd(w.as_ref(), &line, fd.as_fd()).await,
                None => fdpass::send_line(w.as_ref(), &line).await,
            };
            if sent.is_err() {
                break;
            }
        }
    });
    *link.actions.out.lock().unwrap_or_else(|p| p.into_inner()) = Some(out_tx.clone());
    let _ = out_tx.try_send((
        FromHelper::Screensaver {
            active: *link.screensaver.borrow_and_update(),
        },
        None,
    ));
    let prompter = UiPrompter::new(link.hub.clone());
    let mut asks: HashMap<Uuid, tokio::task::AbortHandle> = HashMap::new();
    // Her answers on this link, for `open` (bounded: pruned at each ask).
    let answered: Arc<Mutex<HashMap<Uuid, (Instant, Answer)>>> = Arc::default();
    // The VNC servers started for this user's sessions: stopped (the task
    // aborted, which kills the server) once the service no longer shows
    // the session as ours, and when the link ends.
    let mut screens: HashMap<Uuid, tokio::task::AbortHandle> = HashMap::new();
    let mut line = Vec::new();
    let result = loop {
        // `line` keeps what a cancelled read appended (read_until is
        // cancel-safe that way); it is cleared once a line is handled.
        if line.len() > MAX_LINE {
            break Err(proto::ProtoError::TooLong.into());
        }
        let limit = u64::try_from(MAX_LINE + 1 - line.len().min(MAX_LINE)).unwrap_or(1);
        let mut bounded = (&mut r).take(limit);
        tokio::select! {
            n = bounded.read_until(b'\n', &mut line) => match n {
                Ok(0) => break Err(LinkError::Closed),
                Ok(_) => {}
                Err(e) => break Err(e.into()),
            },
            c = link.screensaver.changed() => {
                if c.is_ok() {
                    let active = *link.screensaver.borrow_and_update();
                    let _ = out_tx.try_send((FromHelper::Screensaver { active }, None));
                }
                continue;
            }
        }
        let parsed = proto::parse::<ToHelper>(&line);
        line.clear();
        let msg = match parsed {
            Ok(m) => m,
            Err(e) => break Err(e.into()),
        };
        let now = Instant::now();
        match msg {
            ToHelper::Welcome { version } => {
                tracing::info!("connected to the Accord service {version}");
            }
            ToHelper::Ask(a) => {
                let req = match a.to_request(now) {
                    Ok(r) => r,
                    Err(e) => break Err(e.into()),
                };
                let (id, prompter, out) = (req.id, prompter.clone(), out_tx.clone());
                asks.retain(|_, h| !h.is_finished());
                answered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .retain(|_, (at, _)| now.saturating_duration_since(*at) <= OPEN_WITHIN);
                let answered = answered.clone();
                let task = tokio::spawn(async move {
                    let m = match prompter.ask(req).await {
                        Ok(answer) => {
                            answered
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(id, (Instant::now(), answer));
                            FromHelper::Answer {
                                id,
                                answer: answer.into(),
                            }
                        }
                        Err(e) => FromHelper::Unavailable { why: e.to_string() },
                    };
                    let _ = out.send((m, None)).await;
                });
                asks.insert(id, task.abort_handle());
            }
            ToHelper::Withdraw { id } => {
                if let Some(h) = asks.remove(&id) {
                    h.abort();
                }
            }
            ToHelper::State(s) => match s.to_state(now) {
                Ok(st) => {
                    let mine = s.session.as_ref().map(|w| w.id);
                    screens.retain(|id, task| {
                        let keep = Some(*id) == mine && !task.is_finished();
                        if !keep {
                            task.abort();
                        }
                        keep
                    });
                    link.state.send_replace(st);
                }
                Err(e) => break Err(e.into()),
            },
            ToHelper::Open(o) => {
                let (launch, mode, grants) = match (o.launch(), o.mode(), o.grants()) {
                    (Ok(l), Ok(m), Ok(g)) => (l, m, g),
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => break Err(e.into()),
                };
                let her = answered
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&o.session)
                    .copied();
                if let Err(why) = may_open(her, now, mode, peer_trusted) {
                    tracing::warn!("open for session {}: refused: {why}", o.session);
                    let failed = FromHelper::OpenFailed {
                        session: o.session,
                        why: format!("the helper refused to start a server: {why}"),
                    };
                    let _ = out_tx.try_send((failed, None));
                    continue;
                }
                let task =
                    tokio::spawn(run_screen(o.session, launch, mode, grants, out_tx.clone()));
                if let Some(old) = screens.insert(o.session, task.abort_handle()) {
                    old.abort();
                }
            }
            ToHelper::Notice(n) => match n.to_notice(now) {
                Ok(n) => {
                    let _ = link.notices.send(n);
                }
                Err(e) => break Err(e.into()),
            },
            ToHelper::History(h) => {
                let lines =
                    super::history::lines(&h.items, &link.strings, std::time::SystemTime::now());
                link.hub.show_history(lines);
            }
        }
    };
    for (_, h) in asks.into_iter().chain(screens) {
        h.abort();
    }
    writer.abort();
    result
}

/// Starts the VNC server for `session` in this graphical session, hands
/// the connection to the service, and keeps the server until this task is
/// aborted (dropping [`launch::Launched`] kills it) or the server exits.
async fn run_screen(
    session: Uuid,
    launch: Launch,
    mode: crate::protocol::Mode,
    grants: crate::broker::Grants,
    out: mpsc::Sender<Out>,
) {
    let mut launched = match launch::for_session(launch, mode, grants).await {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("session {session}: {e}");
            let why = e.to_string();
            let _ = out
                .send((FromHelper::OpenFailed { session, why }, None))
                .await;
            return;
        }
    };
    let fd = launched
        .take_stream()
        .map(|s| s.into_std().map(OwnedFd::from));
    let server = launched.server().name().to_string();
    match fd {
        Some(Ok(fd)) => {
            tracing::info!(
                "session {session}: {} on {}",
                launched.describe(),
                launched.socket_path().display()
            );
            let opened = FromHelper::Opened {
                session,
                server: server.clone(),
            };
            let _ = out.send((opened, Some(fd))).await;
        }
        _ => {
            let why = format!("{server}: the connection could not be handed over");
            let _ = out
                .send((FromHelper::OpenFailed { session, why }, None))
                .await;
            return;
        }
    }
    let status = launched.exited().await;
    tracing::info!("session {session}: {server} exited ({status})");
    if launch::stopped_in_gnome(launched.server(), status) {
        // Her "stop" in GNOME's sharing indicator is her kill switch.
        tracing::info!("session {session}: sharing stopped from GNOME: ending the session");
        let _ = out.send((FromHelper::End {}, None)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Mode;

    #[test]
    fn open_is_obeyed_only_for_her_own_recent_answer_in_its_mode() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            may_open(Some((t0, Answer::Control)), later, Mode::Control, true),
            Ok(())
        );
        assert_eq!(
            may_open(Some((t0, Answer::ViewOnly)), later, Mode::View, true),
            Ok(())
        );
        // She allowed viewing: no full-input server for "control".
        assert!(may_open(Some((t0, Answer::ViewOnly)), later, Mode::Control, true).is_err());
        assert!(may_open(Some((t0, Answer::Refused)), later, Mode::View, true).is_err());
        // "Continuer" keeps a session going; it opens no screen.
        assert!(may_open(Some((t0, Answer::Continue)), later, Mode::View, true).is_err());
        assert!(may_open(Some((t0, Answer::Continue)), later, Mode::Control, true).is_err());
        // Not answered here, or long ago.
        assert!(may_open(None, later, Mode::View, true).is_err());
        let stale = t0 + OPEN_WITHIN + Duration::from_secs(1);
        assert!(may_open(Some((t0, Answer::Control)), stale, Mode::Control, true).is_err());
        // A link to a socket someone else holds.
        assert!(may_open(Some((t0, Answer::Control)), later, Mode::Control, false).is_err());
    }
}
