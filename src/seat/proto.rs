//! The helper protocol: `accord service` ↔ `accord ui` over `ui.sock`
//! (docs/architecture.md, "Helper protocol"). Sans-IO: lines in, messages
//! out, and back.
//!
//! One JSON object per line, at most [`MAX_LINE`] bytes with the `\n`,
//! `{"v":1,"<kind>":{…}}`: the version and exactly one message, unknown
//! fields refused. A helper that breaks this is disconnected: the service
//! never guesses what a helper meant.

use crate::broker::{
    Activity, AgentState, EndReason, Listening, Notice, PromptRequest, ReplacedHelper, SessionInfo,
};
use crate::policy::Clipboard;
use crate::protocol::Mode;
use crate::tls::Identity;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::time::{Duration, Instant, UNIX_EPOCH};
use uuid::Uuid;

pub const VERSION: u64 = 1;
/// Longest line either side accepts, `\n` included.
pub const MAX_LINE: usize = 16 * 1024;

/// Why a line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("not JSON: {0}")]
    Json(String),
    #[error("unsupported helper protocol version {0}")]
    Version(String),
    #[error("a line carries the version and exactly one message")]
    Shape,
    #[error("bad message: {0}")]
    Message(String),
}

/// What the service tells a helper.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ToHelper {
    /// First line, answering `hello`.
    Welcome { version: String },
    /// Ask the person in front of the screen.
    Ask(WireAsk),
    /// The prompt is over without this helper (deadline, technician gone,
    /// seat changed): close it.
    Withdraw { id: Uuid },
    /// What the tray and the banner show. `session` only for the helper
    /// whose user consented to it.
    State(WireState),
    /// A session of this helper's user started or ended, or a prompt asked
    /// here timed out: for notifications and history.
    Notice(WireNotice),
    /// This helper's user accepted `session` and `[upstream] launch` is on:
    /// start the VNC server for this graphical session, connect to it, and
    /// answer `opened` with the connection attached (`SCM_RIGHTS`), or
    /// `open_failed`. The server stops as soon as a `state` no longer shows
    /// `session` as this helper's, or the link to the service ends.
    Open(WireOpen),
    /// The answer to this helper's `history`: its user's own decisions from
    /// the audit log, most recent first.
    History(WireHistory),
}

/// Most entries in one `history` answer: what the tray's window shows, and
/// what fits one line ([`crate::audit::history::MAX_ENTRY_BYTES`] each).
pub const MAX_HISTORY: usize = 30;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireHistory {
    /// At most [`MAX_HISTORY`], most recent first; only decisions of the
    /// user the kernel says this helper runs as (`SO_PEERCRED`).
    pub items: Vec<crate::audit::history::Entry>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireOpen {
    pub session: Uuid,
    /// `auto`, `x11vnc` or `x0vncserver` (policy spelling).
    pub launch: String,
    /// The mode she granted (`control`, `view`): the helper starts a server
    /// only for a session it answered, in the mode it answered.
    pub mode: String,
    /// The policy's clipboard permission (`none`, `to_workstation`,
    /// `both`): what the server itself may share.
    pub clipboard: String,
    /// Whether the server may inject input at all.
    pub input: bool,
}

impl WireOpen {
    pub fn from_request(req: &crate::broker::ScreenRequest) -> WireOpen {
        WireOpen {
            session: req.session,
            launch: req.launch.as_str().into(),
            mode: req.mode.as_str().into(),
            clipboard: req.grants.clipboard.as_str().into(),
            input: req.grants.input,
        }
    }

    pub fn mode(&self) -> Result<crate::protocol::Mode, ProtoError> {
        use crate::protocol::Mode;
        [Mode::Control, Mode::View]
            .into_iter()
            .find(|m| m.as_str() == self.mode)
            .ok_or_else(|| ProtoError::Message(format!("unknown mode {:?}", self.mode)))
    }

    pub fn grants(&self) -> Result<crate::broker::Grants, ProtoError> {
        let clipboard = crate::policy::Clipboard::parse(&self.clipboard).ok_or_else(|| {
            ProtoError::Message(format!("unknown clipboard permission {:?}", self.clipboard))
        })?;
        Ok(crate::broker::Grants {
            clipboard,
            input: self.input,
        })
    }

    pub fn launch(&self) -> Result<crate::policy::Launch, ProtoError> {
        use crate::policy::Launch;
        match Launch::parse(&self.launch) {
            Some(Launch::None) | None => Err(ProtoError::Message(format!(
                "cannot launch {:?}",
                self.launch
            ))),
            Some(l) => Ok(l),
        }
    }
}

/// What a helper tells the service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FromHelper {
    /// First line. `display`: the kind of graphical session the helper
    /// runs in by its own environment (`x11`, `wayland`); absent from
    /// helpers that do not say.
    Hello {
        version: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        display: Option<String>,
        /// Its own executable (`/proc/self/exe`), for the record when it
        /// replaces a helper of a session in control: its own word, the
        /// service cannot read other users' /proc.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exe: Option<String>,
        /// GNOME's Mutter remote-desktop API is on its session bus: its
        /// Wayland session can be shared by Accord's own server.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        mutter: bool,
    },
    /// The answer to a prompt this helper was asked.
    Answer { id: Uuid, answer: WireAnswer },
    /// The kill switch (banner, tray, shortcut).
    End {},
    /// "Passer en affichage seul".
    ViewOnly {},
    /// "Masquer mon écran" (`on`) or "Reprendre": obeyed, like `end` and
    /// `view_only`, only from the helper whose user consented to the
    /// running session.
    Pause { on: bool },
    /// The session bus's screen saver became active or inactive.
    Screensaver { active: bool },
    /// This helper cannot show a window (no display): never ask it.
    Unavailable { why: String },
    /// The server for `session` runs; the line carries the connection to it
    /// (`SCM_RIGHTS`). `server`: what was started, for the log.
    Opened { session: Uuid, server: String },
    /// The server for `session` could not be started: why, in a few lines
    /// (its exit status and last stderr lines, bounded).
    OpenFailed { session: Uuid, why: String },
    /// "Historique": asks for this user's decisions from the audit log. The
    /// service answers `history` (at most one answer a second per helper:
    /// asking faster only coalesces).
    History {},
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireAnswer {
    Control,
    View,
    Refused,
    Continue,
}

impl From<crate::broker::Answer> for WireAnswer {
    fn from(a: crate::broker::Answer) -> Self {
        match a {
            crate::broker::Answer::Control => WireAnswer::Control,
            crate::broker::Answer::ViewOnly => WireAnswer::View,
            crate::broker::Answer::Refused => WireAnswer::Refused,
            crate::broker::Answer::Continue => WireAnswer::Continue,
        }
    }
}

impl From<WireAnswer> for crate::broker::Answer {
    fn from(a: WireAnswer) -> Self {
        match a {
            WireAnswer::Control => crate::broker::Answer::Control,
            WireAnswer::View => crate::broker::Answer::ViewOnly,
            WireAnswer::Refused => crate::broker::Answer::Refused,
            WireAnswer::Continue => crate::broker::Answer::Continue,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireTechnician {
    pub subject: String,
    pub fingerprint: String,
    /// The certificate's CN and O, as the service read them from the
    /// verified certificate (the prompt's name line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireAsk {
    pub id: Uuid,
    pub technician: WireTechnician,
    pub peer: SocketAddr,
    pub ticket: String,
    pub reason: String,
    pub asked: String,
    pub control_offered: bool,
    /// The whole time to answer, and what is left of it when sent.
    pub timeout_ms: u64,
    pub remaining_ms: u64,
    pub arm_delay_ms: u64,
    pub clipboard: String,
    /// A request for control of the running view-only session
    /// ([`PromptRequest::raise`]). Defaults to `false` so that lines from a
    /// service that predates it still parse.
    #[serde(default)]
    pub raise: bool,
    /// The consent period's question ([`PromptRequest::confirm`]).
    #[serde(default)]
    pub confirm: bool,
    /// [`PromptRequest::replaced`]; absent when there is nothing to say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaced: Option<WireReplaced>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireReplaced {
    pub pid: u32,
    pub exe: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireSession {
    pub id: Uuid,
    pub technician: WireTechnician,
    pub ticket: String,
    pub reason: String,
    pub mode: String,
    pub started_unix_ms: u64,
    pub elapsed_ms: u64,
    pub clipboard: String,
    /// [`SessionInfo::paused`].
    #[serde(default)]
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireState {
    /// The address the service listens on, or why it does not.
    pub listening: Option<String>,
    pub not_listening: Option<String>,
    pub blocked: Option<String>,
    pub session: Option<WireSession>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum WireNotice {
    SessionStarted { session: WireSession },
    SessionEnded { session: WireSession, why: String },
    PromptTimedOut { technician: WireTechnician },
    UnsupportedSession { technician: WireTechnician },
    HelperReplaced { pid: u32, exe: String },
}

/// Parses one line (without or with its `\n`).
pub fn parse<T: for<'de> Deserialize<'de>>(line: &[u8]) -> Result<T, ProtoError> {
    if line.len() > MAX_LINE {
        return Err(ProtoError::TooLong);
    }
    let v: Value = serde_json::from_slice(line).map_err(|e| ProtoError::Json(e.to_string()))?;
    let Value::Object(mut obj) = v else {
        return Err(ProtoError::Shape);
    };
    match obj.remove("v") {
        Some(Value::Number(n)) if n.as_u64() == Some(VERSION) => {}
        Some(other) => return Err(ProtoError::Version(other.to_string())),
        None => return Err(ProtoError::Shape),
    }
    if obj.len() != 1 {
        return Err(ProtoError::Shape);
    }
    serde_json::from_value(Value::Object(obj)).map_err(|e| ProtoError::Message(e.to_string()))
}

/// Encodes one message as a line, `\n` included.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    let mut obj = Map::new();
    obj.insert("v".into(), VERSION.into());
    if let Ok(Value::Object(m)) = serde_json::to_value(msg) {
        obj.extend(m);
    }
    let mut line = serde_json::to_vec(&Value::Object(obj)).unwrap_or_default();
    line.push(b'\n');
    line
}

// ------------------------------------------------------------ conversions

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn technician(t: &Identity) -> WireTechnician {
    WireTechnician {
        subject: t.subject.clone(),
        fingerprint: t.fingerprint.clone(),
        common_name: t.common_name.clone(),
        organization: t.organization.clone(),
    }
}

fn identity(t: &WireTechnician) -> Identity {
    Identity {
        subject: t.subject.clone(),
        fingerprint: t.fingerprint.clone(),
        common_name: t.common_name.clone(),
        organization: t.organization.clone(),
    }
}

fn mode(s: &str) -> Result<Mode, ProtoError> {
    match s {
        "control" => Ok(Mode::Control),
        "view" => Ok(Mode::View),
        other => Err(ProtoError::Message(format!("unknown mode {other:?}"))),
    }
}

fn clipboard(s: &str) -> Result<Clipboard, ProtoError> {
    Clipboard::parse(s).ok_or_else(|| ProtoError::Message(format!("unknown clipboard {s:?}")))
}

impl WireAsk {
    pub fn from_request(r: &PromptRequest, now: Instant) -> WireAsk {
        WireAsk {
            id: r.id,
            technician: technician(&r.technician),
            peer: r.peer,
            ticket: r.ticket.clone(),
            reason: r.reason.clone(),
            asked: r.asked.as_str().into(),
            control_offered: r.control_offered,
            timeout_ms: ms(r.timeout),
            remaining_ms: ms(r.deadline.saturating_duration_since(now)),
            arm_delay_ms: ms(r.arm_delay),
            clipboard: r.clipboard.as_str().into(),
            raise: r.raise,
            confirm: r.confirm,
            replaced: r.replaced.as_ref().map(|h| WireReplaced {
                pid: h.pid,
                exe: h.exe.clone(),
            }),
        }
    }

    /// The request as the helper's prompt shows it; the deadline counts
    /// from when the line arrived.
    pub fn to_request(&self, now: Instant) -> Result<PromptRequest, ProtoError> {
        Ok(PromptRequest {
            id: self.id,
            technician: identity(&self.technician),
            peer: self.peer,
            ticket: self.ticket.clone(),
            reason: self.reason.clone(),
            asked: mode(&self.asked)?,
            control_offered: self.control_offered,
            deadline: now + Duration::from_millis(self.remaining_ms.min(self.timeout_ms)),
            timeout: Duration::from_millis(self.timeout_ms),
            arm_delay: Duration::from_millis(self.arm_delay_ms),
            clipboard: clipboard(&self.clipboard)?,
            raise: self.raise,
            confirm: self.confirm,
            replaced: self.replaced.as_ref().map(|h| ReplacedHelper {
                pid: h.pid,
                // Shown in her prompt: bounded like every other field.
                exe: h.exe.chars().take(200).collect(),
            }),
        })
    }
}

impl WireSession {
    pub fn from_info(i: &SessionInfo) -> WireSession {
        WireSession {
            id: i.id,
            technician: technician(&i.technician),
            ticket: i.ticket.clone(),
            reason: i.reason.clone(),
            mode: i.mode.as_str().into(),
            started_unix_ms: i
                .started
                .duration_since(UNIX_EPOCH)
                .map(ms)
                .unwrap_or_default(),
            elapsed_ms: ms(i.started_at.elapsed()),
            clipboard: i.clipboard.as_str().into(),
            paused: i.paused,
        }
    }

    pub fn to_info(&self, now: Instant) -> Result<SessionInfo, ProtoError> {
        Ok(SessionInfo {
            id: self.id,
            technician: identity(&self.technician),
            ticket: self.ticket.clone(),
            reason: self.reason.clone(),
            mode: mode(&self.mode)?,
            started: UNIX_EPOCH + Duration::from_millis(self.started_unix_ms),
            started_at: now
                .checked_sub(Duration::from_millis(self.elapsed_ms))
                .unwrap_or(now),
            clipboard: clipboard(&self.clipboard)?,
            paused: self.paused,
        })
    }
}

impl WireState {
    /// The state one helper sees: the session only if `show_session`.
    pub fn from_state(s: &AgentState, show_session: bool) -> WireState {
        let (listening, not_listening) = match &s.listening {
            Listening::On(a) => (Some(a.to_string()), None),
            Listening::Off(why) => (None, Some(why.clone())),
            Listening::Starting => (None, Some("starting".into())),
        };
        let session = match &s.activity {
            Activity::InSession(i) if show_session => Some(WireSession::from_info(i)),
            _ => None,
        };
        WireState {
            listening,
            not_listening,
            blocked: s.blocked.clone(),
            session,
        }
    }

    pub fn to_state(&self, now: Instant) -> Result<AgentState, ProtoError> {
        let listening = match (&self.listening, &self.not_listening) {
            (Some(a), _) => Listening::On(
                a.parse()
                    .map_err(|_| ProtoError::Message(format!("bad address {a:?}")))?,
            ),
            (None, Some(why)) if why == "starting" => Listening::Starting,
            (None, Some(why)) => Listening::Off(why.clone()),
            (None, None) => Listening::Starting,
        };
        let activity = match &self.session {
            Some(s) => Activity::InSession(Box::new(s.to_info(now)?)),
            None => Activity::Idle,
        };
        Ok(AgentState {
            listening,
            activity,
            blocked: self.blocked.clone(),
        })
    }
}

impl WireNotice {
    pub fn from_notice(n: &Notice) -> WireNotice {
        match n {
            Notice::SessionStarted(i) => WireNotice::SessionStarted {
                session: WireSession::from_info(i),
            },
            Notice::SessionEnded { info, why } => WireNotice::SessionEnded {
                session: WireSession::from_info(info),
                why: why.as_str().into(),
            },
            Notice::PromptTimedOut { technician: t } => WireNotice::PromptTimedOut {
                technician: technician(t),
            },
            Notice::UnsupportedSession { technician: t } => WireNotice::UnsupportedSession {
                technician: technician(t),
            },
            Notice::HelperReplaced { pid, exe } => WireNotice::HelperReplaced {
                pid: *pid,
                exe: exe.clone(),
            },
        }
    }

    pub fn to_notice(&self, now: Instant) -> Result<Notice, ProtoError> {
        Ok(match self {
            WireNotice::SessionStarted { session } => Notice::SessionStarted(session.to_info(now)?),
            WireNotice::SessionEnded { session, why } => Notice::SessionEnded {
                info: session.to_info(now)?,
                why: EndReason::parse(why)
                    .ok_or_else(|| ProtoError::Message(format!("unknown end reason {why:?}")))?,
            },
            WireNotice::PromptTimedOut { technician: t } => Notice::PromptTimedOut {
                technician: identity(t),
            },
            WireNotice::UnsupportedSession { technician: t } => Notice::UnsupportedSession {
                technician: identity(t),
            },
            WireNotice::HelperReplaced { pid, exe } => Notice::HelperReplaced {
                pid: *pid,
                exe: exe.chars().take(200).collect(),
            },
        })
    }

    /// The session a notice is about, if any (to route it to its helper).
    pub fn session(&self) -> Option<Uuid> {
        match self {
            WireNotice::SessionStarted { session } | WireNotice::SessionEnded { session, .. } => {
                Some(session.id)
            }
            WireNotice::PromptTimedOut { .. }
            | WireNotice::UnsupportedSession { .. }
            | WireNotice::HelperReplaced { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    fn sample_info() -> SessionInfo {
        SessionInfo {
            id: Uuid::new_v4(),
            technician: Identity {
                subject: "CN=Jeanne Martin,O=Helpdesk CHU".into(),
                fingerprint: format!("sha256:{}", "ab".repeat(32)),
                common_name: Some("Jeanne Martin".into()),
                organization: Some("Helpdesk CHU".into()),
            },
            ticket: "INC-1".into(),
            reason: "Imprimante".into(),
            mode: Mode::Control,
            started: SystemTime::now(),
            started_at: Instant::now(),
            clipboard: Clipboard::ToWorkstation,
            paused: false,
        }
    }

    #[test]
    fn every_message_round_trips() {
        let info = sample_info();
        let now = Instant::now();
        let req = PromptRequest {
            id: Uuid::new_v4(),
            technician: info.technician.clone(),
            peer: "127.0.0.1:4000".parse().unwrap(),
            ticket: "INC-2".into(),
            reason: "Réseau".into(),
            asked: Mode::Control,
            control_offered: true,
            deadline: now + Duration::from_secs(30),
            timeout: Duration::from_secs(60),
            arm_delay: Duration::from_millis(1000),
            clipboard: Clipboard::Both,
            raise: true,
            confirm: false,
            replaced: Some(ReplacedHelper {
                pid: 4242,
                exe: "/usr/bin/accord".into(),
            }),
        };
        let to: Vec<ToHelper> = vec![
            ToHelper::Welcome {
                version: "0.1.0".into(),
            },
            ToHelper::Ask(WireAsk::from_request(&req, now)),
            ToHelper::Withdraw { id: req.id },
            ToHelper::State(WireState::from_state(
                &AgentState {
                    listening: Listening::On("127.0.0.1:5988".parse().unwrap()),
                    activity: Activity::InSession(Box::new(info.clone())),
                    blocked: None,
                },
                true,
            )),
            ToHelper::Notice(WireNotice::from_notice(&Notice::SessionEnded {
                info: info.clone(),
                why: EndReason::UserSwitched,
            })),
            ToHelper::Open(WireOpen {
                session: req.id,
                launch: "auto".into(),
                mode: "view".into(),
                clipboard: "to_workstation".into(),
                input: false,
            }),
            ToHelper::History(WireHistory { items: vec![] }),
            ToHelper::History(WireHistory {
                items: worst_history(),
            }),
        ];
        for m in to {
            let line = encode(&m);
            assert!(line.ends_with(b"\n") && line.len() <= MAX_LINE);
            assert_eq!(parse::<ToHelper>(&line), Ok(m));
        }
        let from = vec![
            FromHelper::Hello {
                version: "0.1.0".into(),
                display: Some("wayland".into()),
                exe: Some("/usr/bin/accord".into()),
                mutter: true,
            },
            FromHelper::Hello {
                version: "0.1.0".into(),
                display: None,
                exe: None,
                mutter: false,
            },
            FromHelper::Answer {
                id: req.id,
                answer: WireAnswer::View,
            },
            FromHelper::End {},
            FromHelper::ViewOnly {},
            FromHelper::Pause { on: true },
            FromHelper::Screensaver { active: true },
            FromHelper::Unavailable { why: "x".into() },
            FromHelper::Opened {
                session: req.id,
                server: "x11vnc".into(),
            },
            FromHelper::OpenFailed {
                session: req.id,
                why: "x11vnc exited at start (status 1)".into(),
            },
            FromHelper::History {},
        ];
        for m in from {
            assert_eq!(parse::<FromHelper>(&encode(&m)), Ok(m));
        }
        // A helper is never told to start nothing, or something unknown.
        for (l, ok) in [
            ("auto", true),
            ("x0vncserver", true),
            ("none", false),
            ("sh", false),
        ] {
            let o = WireOpen {
                session: req.id,
                launch: l.into(),
                mode: "control".into(),
                clipboard: "both".into(),
                input: true,
            };
            assert_eq!(o.launch().is_ok(), ok, "{l}");
        }
        // Mode and clipboard travel in their own spelling, or fail.
        let mut o = WireOpen {
            session: req.id,
            launch: "auto".into(),
            mode: "view".into(),
            clipboard: "to_workstation".into(),
            input: false,
        };
        assert_eq!(o.mode().ok(), Some(crate::protocol::Mode::View));
        let g = o.grants().unwrap();
        assert_eq!(g.clipboard, crate::policy::Clipboard::ToWorkstation);
        assert!(!g.input);
        o.mode = "admin".into();
        assert!(o.mode().is_err());
        o.clipboard = "all".into();
        assert!(o.grants().is_err());
        let back = WireAsk::from_request(&req, now).to_request(now).unwrap();
        assert_eq!(back.deadline, now + Duration::from_secs(30));
        assert_eq!(back.control_offered, req.control_offered);
        assert_eq!(back.clipboard, req.clipboard);
        assert_eq!(back.technician.display_name(), "Jeanne Martin");
        assert!(back.raise);
        // A line without `raise` (an older service) is a new request.
        let ask = encode(&ToHelper::Ask(WireAsk::from_request(&req, now)));
        let mut old: serde_json::Value = serde_json::from_slice(&ask).unwrap();
        old["ask"].as_object_mut().unwrap().remove("raise");
        let mut line = serde_json::to_vec(&old).unwrap();
        line.push(b'\n');
        match parse::<ToHelper>(&line) {
            Ok(ToHelper::Ask(a)) => assert!(!a.raise),
            other => panic!("{other:?}"),
        }
    }

    /// [`MAX_HISTORY`] entries as long as the history lets them be: every
    /// text field at its longest, escaped as much as JSON can, and the
    /// longest outcome (accepted, ended, `u64::MAX` seconds).
    fn worst_history() -> Vec<crate::audit::history::Entry> {
        use crate::audit::history::{Ended, Outcome, entries};
        let nasty = "\"\\\u{1F600}\u{0}\u{202E}".repeat(100);
        let mut records: Vec<Value> = (0..MAX_HISTORY)
            .flat_map(|_| {
                let s = Uuid::new_v4();
                [
                    serde_json::json!({"event":"decision","session":s,"by":"user","decision":"accepted",
                        "mode":"control","ts":"2026-11-27T10:15:02.113Z",
                        "technician":{"subject":format!("CN={nasty},O={nasty}")},
                        "ticket":nasty,"reason":nasty,"local_user":{"uid":1000}}),
                    serde_json::json!({"event":"session_started","session":s}),
                    serde_json::json!({"event":"session_ended","session":s,"why":"\u{1F600}".repeat(99),
                        "ts":"2026-11-27T10:15:02.113Z","duration_ms":u64::MAX}),
                ]
            })
            .collect();
        // The newest, a request for control during its session: the one
        // field the others do not have.
        let mut raise = records[records.len() - 3].clone();
        raise["decision"] = "accepted".into();
        let at = records.len() - 1;
        records.insert(at, raise);
        let items = entries(records.iter(), Some(1000), MAX_HISTORY);
        assert_eq!(items.len(), MAX_HISTORY);
        assert!(items[0].raise);
        for e in &items {
            assert!(matches!(
                e.outcome,
                Outcome::Accepted {
                    ended: Some(Ended { .. }),
                    ..
                }
            ));
            assert!(e.organization.is_some() && e.ticket.is_some() && e.reason.is_some());
        }
        items
    }

    /// Any [`MAX_HISTORY`] entries fit one line: each is at most
    /// `MAX_ENTRY_BYTES` (enforced where entries are made), and so is the
    /// envelope's arithmetic; the worst entries we can make are checked too.
    #[test]
    fn a_full_history_always_fits_one_line() {
        use crate::audit::history::MAX_ENTRY_BYTES;
        let empty = encode(&ToHelper::History(WireHistory { items: vec![] })).len();
        // Each entry, and a comma between two.
        assert!(
            empty + MAX_HISTORY * (MAX_ENTRY_BYTES + 1) <= MAX_LINE,
            "{empty} + {MAX_HISTORY} × {MAX_ENTRY_BYTES}"
        );
        let items = worst_history();
        let sizes: Vec<usize> = items.iter().map(|e| e.encoded_len()).collect();
        assert!(sizes.iter().all(|&n| n <= MAX_ENTRY_BYTES), "{sizes:?}");
        let line = encode(&ToHelper::History(WireHistory { items }));
        eprintln!(
            "worst history line: {} of {MAX_LINE} bytes (entries {:?}..={:?})",
            line.len(),
            sizes.iter().min(),
            sizes.iter().max()
        );
        assert!(line.len() <= MAX_LINE, "{}", line.len());
        assert!(
            matches!(parse::<ToHelper>(&line), Ok(ToHelper::History(h)) if h.items.len() == MAX_HISTORY)
        );
        // An item with a field the helper does not know is refused whole.
        let mut v: Value = serde_json::from_slice(&line).unwrap();
        v["history"]["items"][3]["uid"] = 1000.into();
        let line = serde_json::to_vec(&v).unwrap();
        assert!(matches!(
            parse::<ToHelper>(&line),
            Err(ProtoError::Message(_))
        ));
    }

    /// "Masquer mon écran" and "Reprendre" on the wire, and what the
    /// banner and the prompt of the consent period's question need.
    #[test]
    fn pause_round_trips_and_says_which_way() {
        for on in [true, false] {
            let m = FromHelper::Pause { on };
            assert_eq!(parse::<FromHelper>(&encode(&m)), Ok(m.clone()));
            let wire = format!(r#"{{"v":1,"pause":{{"on":{on}}}}}"#);
            assert_eq!(parse::<FromHelper>(wire.as_bytes()), Ok(m));
        }
        for bad in [
            r#"{"v":1,"pause":{}}"#,
            r#"{"v":1,"pause":{"on":1}}"#,
            r#"{"v":1,"pause":{"on":"true"}}"#,
            r#"{"v":1,"pause":{"on":true,"session":"x"}}"#,
            r#"{"v":1,"pause":true}"#,
        ] {
            assert!(parse::<FromHelper>(bad.as_bytes()).is_err(), "{bad}");
        }
        // The banner learns she hid her screen from the session itself.
        let now = Instant::now();
        let mut info = sample_info();
        info.paused = true;
        let back = WireSession::from_info(&info).to_info(now).unwrap();
        assert!(back.paused);
        // A session from a service that predates pausing is not paused.
        let mut v = serde_json::to_value(WireSession::from_info(&info)).unwrap();
        v.as_object_mut().unwrap().remove("paused");
        let old: WireSession = serde_json::from_value(v).unwrap();
        assert!(!old.paused);
        // "Continuer" answers travel as such, never as a grant.
        let line = encode(&FromHelper::Answer {
            id: info.id,
            answer: WireAnswer::Continue,
        });
        assert!(
            std::str::from_utf8(&line)
                .unwrap()
                .contains(r#""answer":"continue""#)
        );
        assert_eq!(
            crate::broker::Answer::from(WireAnswer::Continue),
            crate::broker::Answer::Continue
        );
    }

    #[test]
    fn hostile_lines_are_refused() {
        let id = Uuid::new_v4();
        for bad in [
            "".to_string(),
            "[]".into(),
            "{}".into(),
            r#"{"end":{}}"#.into(),
            r#"{"v":2,"end":{}}"#.into(),
            r#"{"v":"1","end":{}}"#.into(),
            r#"{"v":1}"#.into(),
            r#"{"v":1,"end":{},"view_only":{}}"#.into(),
            r#"{"v":1,"end":{"now":true}}"#.into(),
            r#"{"v":1,"reboot":{}}"#.into(),
            r#"{"v":1,"history":{"uid":0}}"#.into(),
            r#"{"v":1,"history":{"items":[]}}"#.into(),
            r#"{"v":1,"history":1}"#.into(),
            format!(r#"{{"v":1,"answer":{{"id":"{id}","answer":"all"}}}}"#),
            format!(r#"{{"v":1,"answer":{{"id":"{id}","answer":"control","as":"root"}}}}"#),
            r#"{"v":1,"answer":{"id":"not-a-uuid","answer":"control"}}"#.into(),
            format!(
                r#"{{"v":1,"unavailable":{{"why":"{}"}}}}"#,
                "x".repeat(MAX_LINE)
            ),
        ] {
            assert!(parse::<FromHelper>(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
