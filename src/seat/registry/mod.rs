//! The registry of connected session helpers (`accord ui`, one per
//! graphical session) as the service sees them; the [`Prompter`] the
//! service's broker asks through them ([`prompter`]); their history
//! requests ([`history`]); the watch that ends a session whose consent no
//! longer holds ([`monitor`]).
//!
//! A prompt goes to the one helper [`seat::choose`] picks, nobody else.
//! Everything fails closed: no helper, an ambiguous choice, a locked screen
//! ⇒ `no_user`; the asked helper disconnecting or the person in front of the
//! screen changing while it shows ⇒ `no_user`; the helper of a running
//! session disconnecting ⇒ `ui_lost`; the seat switching to another session
//! ⇒ `user_switched`; the screen locking ⇒ `screen_locked`.

use super::proto::{ToHelper, WireNotice, WireState};
use super::rule::{self, HelperId, SeatView};
use crate::broker::{
    Activity, Answer, Event, Journal, LocalUser, Notice, PromptError, ReplacedHelper,
    SessionControl,
};
use crate::policy::SeatMode;
use std::collections::{HashMap, HashSet};
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use uuid::Uuid;

mod history;
mod monitor;
mod prompter;
pub use prompter::HelperPrompter;

/// How long a helper has to start the session's VNC server and hand over
/// its connection (the launcher itself gives up after 5 s).
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Prompts whose asked user is remembered for a time-out's record.
const ASKED_USERS: usize = 16;

/// At most one `history` answer this often per helper: asking faster only
/// coalesces into the next answer, so a helper cannot make the service
/// read the log in a loop.
pub const HISTORY_INTERVAL: Duration = Duration::from_secs(1);

/// Messages queued for one helper before it counts as not reading.
pub const QUEUE: usize = 64;

/// At most this many helpers per uid, and in all: a local user cannot use
/// up the service's descriptors.
pub const MAX_PER_UID: usize = 8;
pub const MAX_HELPERS: usize = 128;

struct Conn {
    id: HelperId,
    name: String,
    tx: mpsc::Sender<ToHelper>,
    /// Every prompt this helper was ever asked: a late answer to one of
    /// them is a race with the deadline, an answer to any other is a lie.
    asked: HashSet<Uuid>,
    /// Every session it was asked to start a server for (same rule).
    opens: HashSet<Uuid>,
    history: HistoryAsks,
}

/// One helper's `history` requests.
#[derive(Default)]
struct HistoryAsks {
    /// A task is answering (reading, or waiting out [`HISTORY_INTERVAL`]).
    running: bool,
    /// Asked again since that task's last answer.
    again: bool,
    /// The last answer and the log's length it was read at: the log only
    /// grows, so the same length means the same answer, without a read.
    last: Option<(u64, Arc<Vec<crate::audit::history::Entry>>)>,
}

/// The server connection a helper handed over, or why it could not.
type Opened = Result<(OwnedFd, String), OpenError>;

/// Why a session has no server connection from its helper; the text goes
/// to the broker, which ends the session and records it.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    /// `opened` came without a descriptor: also a breach (the helper is cut off).
    #[error("opened session {0} without its connection")]
    NoConnection(Uuid),
    /// The helper's own words (`open_failed`), cut to 600 characters.
    #[error("{0}")]
    Failed(String),
    #[error("refused the connection handed over: {0}")]
    Refused(#[source] super::fdpass::ServerSocketError),
}

struct Opening {
    conn: u64,
    uid: u32,
    reply: oneshot::Sender<Opened>,
}

struct Owner {
    conn: u64,
    /// The seat's active session when it answered: the consent holds only
    /// while that session stays active.
    session: Option<String>,
}

struct Asking {
    conn: u64,
    reply: oneshot::Sender<Answer>,
}

#[derive(Default)]
struct Registry {
    next: u64,
    conns: HashMap<u64, Conn>,
    asking: HashMap<Uuid, Asking>,
    /// Who answered each prompt, until the broker takes it.
    answered: HashMap<Uuid, LocalUser>,
    /// The helper whose user consented to each session (session id = prompt
    /// id), and the logind session it answered for.
    owners: HashMap<Uuid, Owner>,
    /// The helper last asked, for a "prompt timed out" notice.
    last_asked: Option<u64>,
    /// Who was asked the last prompts, for a time-out's record (bounded:
    /// only the broker's next `asked` reads one).
    asked_users: std::collections::VecDeque<(Uuid, LocalUser)>,
    /// Sessions waiting for their helper to start the VNC server.
    opening: HashMap<Uuid, Opening>,
    /// Where control was granted (uid, logind session), most recent last,
    /// bounded: a helper of that uid connecting there later is recorded.
    controlled: std::collections::VecDeque<(u32, Option<String>)>,
    /// Helpers that connected at one of those places, told on the next
    /// prompt there (bounded like `controlled`).
    replaced: std::collections::VecDeque<((u32, Option<String>), ReplacedHelper)>,
}

/// Places where control was granted that are remembered.
const CONTROLLED: usize = 16;

/// What a helper did wrong (it is disconnected and the service records it).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

/// The service's side of every helper connection.
pub struct Helpers {
    mode: SeatMode,
    /// `[upstream] launch` lets Accord's own server share GNOME Wayland
    /// sessions (`auto` or `mutter`).
    mutter_allowed: bool,
    /// `seat = "single"`: the uids of `[service] users`, the only ones
    /// whose helpers are let in.
    single_users: Vec<u32>,
    end_on_lock: bool,
    seat: watch::Receiver<SeatView>,
    reg: Mutex<Registry>,
    /// Bumped whenever a helper comes, goes or changes.
    changed: watch::Sender<u64>,
    journal: Arc<dyn Journal>,
    control: OnceLock<SessionControl>,
    /// `helper_rejected` records per local user per minute.
    rejections: crate::broker::budget::RejectLimiter,
    /// The audit log the helpers' histories are read from.
    audit_log: PathBuf,
}

impl Helpers {
    /// `audit_log`: the file `journal` writes, read back for `history`.
    /// `users`: `[service] users` (single mode: login names, or uids in
    /// decimal), resolved to uids now; a name that resolves to nobody
    /// admits nobody (warned).
    pub fn new(
        mode: SeatMode,
        launch: crate::policy::Launch,
        users: &[String],
        end_on_lock: bool,
        seat: watch::Receiver<SeatView>,
        journal: Arc<dyn Journal>,
        audit_log: PathBuf,
    ) -> Arc<Helpers> {
        let single_users = users
            .iter()
            .filter_map(|u| {
                let uid = u.parse::<u32>().ok().or_else(|| crate::platform::uid_of(u));
                if uid.is_none() {
                    tracing::warn!("[service] users: no account named {u:?}");
                }
                uid
            })
            .collect();
        Arc::new(Helpers {
            mode,
            mutter_allowed: matches!(
                launch,
                crate::policy::Launch::Auto | crate::policy::Launch::Mutter
            ),
            single_users,
            end_on_lock,
            seat,
            reg: Mutex::new(Registry::default()),
            changed: watch::Sender::new(0),
            journal,
            control: OnceLock::new(),
            rejections: Default::default(),
            audit_log,
        })
    }

    fn reg(&self) -> MutexGuard<'_, Registry> {
        self.reg.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Gives the helpers the broker's handle (kill switch, view-only, state).
    pub fn set_control(&self, ctl: SessionControl) {
        let _ = self.control.set(ctl);
    }

    /// A helper that just registered, where its user granted control
    /// before (in the same logind session, or anywhere in single mode): a
    /// technician in control acts as her and may have replaced `accord ui`
    /// by a program that answers "control" by itself. Recorded
    /// (`helper_replaced`) and told to her at once through that helper;
    /// Accord cannot prevent it on X11.
    pub fn check_replaced(&self, conn: u64, exe: Option<String>) {
        let (uid, pid, session) = {
            let r = self.reg();
            let Some(c) = r.conns.get(&conn) else {
                return;
            };
            let session = self.session_of(&c.id);
            if !r.controlled.contains(&(c.id.uid, session.clone())) {
                return;
            }
            (c.id.uid, c.id.pid, session)
        };
        let exe: String = exe
            .unwrap_or_else(|| "(not said)".into())
            .chars()
            .take(200)
            .collect();
        tracing::warn!(
            uid,
            pid,
            exe,
            "a helper started again where control was granted"
        );
        if let Err(e) = self.journal.record(&Event::HelperReplaced {
            uid,
            pid,
            exe: exe.clone(),
            session: session.clone(),
        }) {
            tracing::error!("{e}");
        }
        {
            let mut r = self.reg();
            let place = (uid, session);
            r.replaced.retain(|(p, _)| *p != place);
            if r.replaced.len() >= CONTROLLED {
                r.replaced.pop_front();
            }
            r.replaced.push_back((
                place,
                ReplacedHelper {
                    pid,
                    exe: exe.clone(),
                },
            ));
        }
        self.send(
            conn,
            ToHelper::Notice(WireNotice::from_notice(&Notice::HelperReplaced {
                pid,
                exe,
            })),
        );
    }

    /// Whether a helper of `uid` may connect at all: in single mode, only
    /// the policy's users (nothing else tells who is at the screen).
    pub fn admits(&self, uid: u32) -> bool {
        self.mode != SeatMode::Single || self.single_users.contains(&uid)
    }

    /// Whether a helper of `uid` would be under the limits now.
    pub fn has_room(&self, uid: u32) -> bool {
        let r = self.reg();
        let of_uid = r.conns.values().filter(|c| c.id.uid == uid).count();
        r.conns.len() < MAX_HELPERS && of_uid < MAX_PER_UID
    }

    /// Registers a connected helper; `None` when it is over the limits.
    pub fn register(
        &self,
        uid: u32,
        pid: u32,
        place: super::listener::Place,
        wayland: bool,
        mutter: bool,
        tx: mpsc::Sender<ToHelper>,
    ) -> Option<u64> {
        let conn = {
            let mut r = self.reg();
            let of_uid = r.conns.values().filter(|c| c.id.uid == uid).count();
            if r.conns.len() >= MAX_HELPERS || of_uid >= MAX_PER_UID {
                return None;
            }
            r.next += 1;
            let conn = r.next;
            let name = crate::platform::name_of_uid(uid).unwrap_or_else(|| format!("uid {uid}"));
            r.conns.insert(
                conn,
                Conn {
                    id: HelperId {
                        conn,
                        uid,
                        pid,
                        session: place.session,
                        manager_of: place.manager_of,
                        screensaver: false,
                        unavailable: false,
                        wayland,
                        mutter: mutter && self.mutter_allowed,
                    },
                    name,
                    tx,
                    asked: HashSet::new(),
                    opens: HashSet::new(),
                    history: HistoryAsks::default(),
                },
            );
            conn
        };
        tracing::info!(conn, uid, pid, "session helper connected");
        self.bump();
        Some(conn)
    }

    /// The helper is gone: its prompt is refused (its reply sender drops)
    /// and its session ends `ui_lost` (the monitor sees no owner).
    pub fn unregister(&self, conn: u64) {
        {
            let mut r = self.reg();
            r.conns.remove(&conn);
            r.asking.retain(|_, a| a.conn != conn);
            r.owners.retain(|_, o| o.conn != conn);
            r.opening.retain(|_, o| o.conn != conn);
        }
        tracing::info!(conn, "session helper disconnected");
        self.bump();
    }

    /// A line from helper `conn`, already parsed, with the descriptor that
    /// came with it (only for `opened`).
    pub fn on_message(
        self: &Arc<Self>,
        conn: u64,
        msg: super::proto::FromHelper,
        fd: Option<OwnedFd>,
    ) -> Result<(), Violation> {
        use super::proto::FromHelper as F;
        match msg {
            F::Opened { session, server } => match fd {
                Some(fd) => self.on_opened(conn, session, Ok((fd, server))),
                None => {
                    // The session fails on this, before the cut-off helper
                    // ends it `ui_lost`.
                    let why = OpenError::NoConnection(session);
                    let breach = Violation(why.to_string());
                    self.on_opened(conn, session, Err(why))?;
                    Err(breach)
                }
            },
            F::OpenFailed { session, why } => {
                // The helper's words, bounded before they reach the record.
                let why = OpenError::Failed(why.chars().take(600).collect());
                self.on_opened(conn, session, Err(why))
            }
            F::Hello { .. } => Err(Violation("hello sent twice".into())),
            F::Answer { id, answer } => self.on_answer(conn, id, answer.into()),
            F::End {} => {
                if let Some(ctl) = self.owned_session_control(conn) {
                    ctl.end();
                }
                Ok(())
            }
            F::ViewOnly {} => {
                if let Some(ctl) = self.owned_session_control(conn) {
                    ctl.set_view_only();
                }
                Ok(())
            }
            F::Pause { on } => {
                // Hiding or showing her screen is hers alone, like ending it.
                if let Some(ctl) = self.owned_session_control(conn) {
                    ctl.pause(on);
                }
                Ok(())
            }
            F::Screensaver { active } => {
                if let Some(c) = self.reg().conns.get_mut(&conn) {
                    c.id.screensaver = active;
                }
                self.bump();
                Ok(())
            }
            F::Unavailable { why } => {
                tracing::warn!(conn, "session helper cannot show windows: {why}");
                if let Some(c) = self.reg().conns.get_mut(&conn) {
                    c.id.unavailable = true;
                }
                self.bump();
                Ok(())
            }
            F::History {} => {
                self.on_history(conn);
                Ok(())
            }
        }
    }

    fn on_answer(&self, conn: u64, id: Uuid, answer: Answer) -> Result<(), Violation> {
        let mut r = self.reg();
        let Some(c) = r.conns.get(&conn) else {
            return Ok(());
        };
        if !c.asked.contains(&id) {
            return Err(Violation(format!(
                "answered prompt {id}, which it was not asked"
            )));
        }
        let who = self.local_user(c);
        match r.asking.remove(&id) {
            Some(a) if a.conn == conn => {
                let session = who.session.clone();
                if answer == Answer::Control {
                    let place = (who.uid, session.clone());
                    if !r.controlled.contains(&place) {
                        if r.controlled.len() >= CONTROLLED {
                            r.controlled.pop_front();
                        }
                        r.controlled.push_back(place);
                    }
                }
                r.answered.insert(id, who);
                // Only an answer that starts or widens a session makes an
                // owner: "Continuer" is asked under a prompt id of its own
                // and keeps the owner the session already has.
                if matches!(answer, Answer::Control | Answer::ViewOnly) {
                    r.owners.insert(id, Owner { conn, session });
                }
                let _ = a.reply.send(answer);
            }
            Some(a) => {
                // Asked here once, now asked elsewhere: cannot happen (one
                // prompt, one helper); keep the real one waiting.
                r.asking.insert(id, a);
            }
            // Withdrawn meanwhile (deadline, seat change): a race, not a lie.
            None => {}
        }
        Ok(())
    }

    /// A helper's answer to `open`. The connection must be a Unix stream
    /// socket whose other end runs as the helper's user.
    fn on_opened(&self, conn: u64, session: Uuid, result: Opened) -> Result<(), Violation> {
        let mut r = self.reg();
        let Some(c) = r.conns.get(&conn) else {
            return Ok(());
        };
        if !c.opens.contains(&session) {
            return Err(Violation(format!(
                "answered open for session {session}, which it was not asked"
            )));
        }
        let Some(o) = r.opening.remove(&session) else {
            // The session ended meanwhile (kill switch, deadline): a race.
            return Ok(());
        };
        let result = match result {
            Ok((fd, server)) => match super::fdpass::check_server_socket(&fd, o.uid) {
                Ok(()) => Ok((fd, server.chars().take(64).collect())),
                Err(why) => {
                    let breach = Violation(format!(
                        "handed over a connection for session {session} that is not its server's: {why}"
                    ));
                    let _ = o.reply.send(Err(OpenError::Refused(why)));
                    return Err(breach);
                }
            },
            Err(e) => Err(e),
        };
        let _ = o.reply.send(result);
        Ok(())
    }

    /// The broker's handle, if `conn` owns the running session.
    fn owned_session_control(&self, conn: u64) -> Option<SessionControl> {
        let ctl = self.control.get()?;
        let id = match &ctl.state().borrow().activity {
            Activity::InSession(i) => i.id,
            _ => return None,
        };
        self.owns(conn, id).then(|| ctl.clone())
    }

    /// Whether `conn` is the helper whose user consented to session `id`:
    /// the only one whose banner buttons (end, view only, pause) count.
    fn owns(&self, conn: u64, id: Uuid) -> bool {
        self.reg().owners.get(&id).map(|o| o.conn) == Some(conn)
    }

    /// Records a helper's breach, within its user's budget (the broker's
    /// refusal budget, per uid): beyond it the breach is only counted, and
    /// the count goes into that user's next record.
    pub fn record_violation(&self, uid: u32, pid: u32, detail: &str) {
        tracing::warn!(uid, pid, "session helper disconnected: {detail}");
        let class = crate::broker::budget::RejectClass::LocalUser(uid);
        let Some(skipped) = self.rejections.admit(&class, std::time::Instant::now()) else {
            return;
        };
        let mut detail: String = detail.chars().take(200).collect();
        if skipped > 0 {
            detail.push_str(&format!(
                " ({skipped} earlier breaches of this user not recorded: over budget)"
            ));
        }
        if let Err(e) = self
            .journal
            .record(&Event::HelperRejected { uid, pid, detail })
        {
            tracing::error!("{e}");
        }
    }

    /// Who may `accord end`: the user of the session in front of the
    /// screen (root is always allowed by the control socket).
    pub fn may_end(&self, uid: u32) -> bool {
        match self.mode {
            SeatMode::Logind => self
                .seat
                .borrow()
                .active
                .as_ref()
                .is_some_and(|s| s.uid == uid),
            SeatMode::Single => {
                self.admits(uid) && self.reg().conns.values().any(|c| c.id.uid == uid)
            }
        }
    }

    /// `Err` when the person in front of the screen is in a session Accord
    /// cannot share; her helper, if any, is the one the broker's notice
    /// then goes to.
    fn refuse_unsupported(&self) -> Result<(), PromptError> {
        let seat = self.seat.borrow().clone();
        let mut r = self.reg();
        let Some(told) = rule::unsupported(self.mode, &seat, r.conns.values().map(|c| &c.id))
        else {
            return Ok(());
        };
        r.last_asked = told.map(|h| h.conn);
        Err(PromptError::UnsupportedSession(
            "the session in front of the screen is Wayland".into(),
        ))
    }

    fn choose(&self) -> Result<u64, rule::NoUser> {
        let seat = self.seat.borrow().clone();
        let r = self.reg();
        rule::choose(self.mode, &seat, r.conns.values().map(|c| &c.id)).map(|h| h.conn)
    }

    /// Sends to one helper; a helper that does not read is disconnected.
    fn send(&self, conn: u64, msg: ToHelper) {
        let tx = self.reg().conns.get(&conn).map(|c| c.tx.clone());
        if let Some(tx) = tx
            && tx.try_send(msg).is_err()
        {
            tracing::warn!(conn, "session helper does not read: disconnecting it");
            self.unregister(conn);
        }
    }

    /// What helper `conn` should show now.
    pub fn state_for(&self, conn: u64) -> Option<ToHelper> {
        let ctl = self.control.get()?;
        let st = ctl.state().borrow().clone();
        let mine = match &st.activity {
            Activity::InSession(i) => self.reg().owners.get(&i.id).map(|o| o.conn) == Some(conn),
            _ => false,
        };
        Some(ToHelper::State(WireState::from_state(&st, mine)))
    }

    /// Where a notice goes: the session's owner, or the helper last asked.
    pub fn notice_target(&self, n: &Notice) -> Option<u64> {
        let r = self.reg();
        match n {
            Notice::SessionStarted(i) | Notice::SessionEnded { info: i, .. } => {
                r.owners.get(&i.id).map(|o| o.conn)
            }
            Notice::PromptTimedOut { .. } | Notice::UnsupportedSession { .. } => r.last_asked,
            Notice::HelperReplaced { .. } => None,
        }
    }

    /// Who answers through `c`, for the records: in logind mode the session
    /// is the seat's active one it answers for (a helper run by the user's
    /// manager has none of its own).
    fn local_user(&self, c: &Conn) -> LocalUser {
        LocalUser {
            name: c.name.clone(),
            uid: c.id.uid,
            session: self.session_of(&c.id),
        }
    }

    /// The logind session a helper stands for: its own, else (run by its
    /// user's manager) the seat's active one it answers for.
    fn session_of(&self, id: &HelperId) -> Option<String> {
        id.session.clone().or_else(|| match self.mode {
            SeatMode::Logind => rule::answers_for(id, &self.seat.borrow()).map(|s| s.id.clone()),
            SeatMode::Single => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seat::proto::FromHelper;

    fn helpers() -> Arc<Helpers> {
        let (_seat_tx, seat) = watch::channel(SeatView::default());
        Helpers::new(
            SeatMode::Single,
            crate::policy::Launch::None,
            &[],
            false,
            seat,
            Arc::new(crate::broker::MemoryJournal::default()),
            PathBuf::from("/nonexistent/accord-audit.jsonl"),
        )
    }

    fn connect(h: &Helpers, uid: u32) -> (u64, mpsc::Receiver<ToHelper>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let place = super::super::listener::Place::default();
        let conn = h.register(uid, 4000 + uid, place, false, false, tx);
        (conn.expect("under the limits"), rx)
    }

    /// Helper `conn` is asked a prompt and answers `answer`; its id.
    fn asked_and_answered(h: &Helpers, conn: u64, answer: Answer) -> Uuid {
        let id = Uuid::new_v4();
        let (reply, _rx) = oneshot::channel();
        {
            let mut r = h.reg();
            r.conns.get_mut(&conn).expect("connected").asked.insert(id);
            r.asking.insert(id, Asking { conn, reply });
        }
        h.on_answer(conn, id, answer)
            .expect("an answer it was asked");
        id
    }

    /// The pause button goes through the same check as "Terminer" and
    /// "Passer en affichage seul": only the helper whose user consented
    /// owns the session; another's `pause` is dropped (neither obeyed nor
    /// a breach that would cut that helper off).
    #[test]
    fn a_pause_from_a_helper_that_is_not_the_sessions_is_ignored() {
        let h = helpers();
        let (hers, _rx1) = connect(&h, 64101);
        let (other, _rx2) = connect(&h, 64102);
        let session = asked_and_answered(&h, hers, Answer::Control);
        assert!(h.owns(hers, session));
        assert!(!h.owns(other, session));
        for on in [true, false] {
            assert!(h.on_message(other, FromHelper::Pause { on }, None).is_ok());
            assert!(h.on_message(hers, FromHelper::Pause { on }, None).is_ok());
        }
        // Still there, still the owner: nothing was taken as a breach.
        assert!(h.reg().conns.contains_key(&other));
        assert!(h.owns(hers, session));
    }

    /// "Continuer" to the consent period's question makes nobody the
    /// owner of anything (its prompt id is not a session's).
    #[test]
    fn continue_makes_no_owner_and_refused_neither() {
        let h = helpers();
        let (hers, _rx) = connect(&h, 64103);
        let asked = asked_and_answered(&h, hers, Answer::Continue);
        assert!(!h.owns(hers, asked));
        let refused = asked_and_answered(&h, hers, Answer::Refused);
        assert!(!h.owns(hers, refused));
        let view = asked_and_answered(&h, hers, Answer::ViewOnly);
        assert!(h.owns(hers, view));
    }
}
