//! Request and decision frames between `accord connect` and the agent (sans-IO).
//!
//! Everything the technician types reaches the clinician's screen, so the
//! parser is strict: one JSON line of at most [`MAX_LINE`] bytes, known fields
//! only, bounded lengths, and no control characters or bidi overrides (which
//! could make "Imprimante" display as something else). Anything else is
//! `bad_request`, decided before any prompt is shown.
//!
//! Two additions to DESIGN.md's frames (fields and lines added, none changing
//! meaning; parsers accept lines without them):
//!
//! - A `rate_limited` refusal says when to retry: `{"v":1,"decision":
//!   "refused","why":"rate_limited","retry_after_s":N}`, N whole seconds
//!   (rounded up) until the oldest prompt of the technician's hour leaves the
//!   window. `accord connect` prints the local time ("retry after 14:32").
//! - **Watching a session**. After `accepted` the session's
//!   TLS stream carries raw RFB (wire step 3), so nothing can be said on it.
//!   The running `accord connect` therefore opens a second connection right
//!   after acceptance and sends, under the same rules as a request (one line,
//!   at most [`MAX_LINE`] bytes, within [`REQUEST_TIMEOUT`]),
//!   `{"v":1,"watch":"<session uuid>"}`. It is admitted only from the
//!   certificate of that running session (otherwise refused `bad_request`,
//!   as a request for control of a foreign session), one watcher per session
//!   (a second is refused `busy`); a refusal is the usual decision line. Once
//!   admitted the agent sends one line per event, then closes after `ended`:
//!   `{"v":1,"mode":"view"}` at once (the current mode: also the sign that
//!   the watch is admitted), `{"v":1,"mode":"view"|"control","by":"user"}`
//!   when the mode changes, and `{"v":1,"ended":{"why":"<reason>"}}` (the
//!   audit log's `session_ended.why`) when the session ends. Consent in
//!   time adds `{"v":1,"paused":true|false}` when the clinician hides her
//!   screen or shows it again, `{"v":1,"confirming":{"grace_s":N}}` when
//!   the consent period ends and she is asked whether to go on (the
//!   technician's input is held; the session ends after N s without an
//!   answer), and `{"v":1,"confirmed":true}` when she goes on. A reader
//!   skips a line it does not know (a newer agent may say more). The watch
//!   grants nothing and shows nothing to the clinician; `accord connect`
//!   works without it (an older agent refuses it `bad_request`), it only
//!   cannot say then what ended the session.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;
use uuid::Uuid;

/// Largest request line, `\n` included (DESIGN.md, wire protocol step 1).
pub const MAX_LINE: usize = 4096;
/// Time the technician has to send the request line after TLS is up.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest ticket, in characters.
pub const MAX_TICKET: usize = 64;
/// Longest reason, in characters.
pub const MAX_REASON: usize = 280;
/// The only protocol version this build speaks.
pub const VERSION: u32 = 1;

/// What the technician asks for, and what the clinician grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Keyboard and mouse reach the workstation.
    Control,
    /// The technician only sees the screen.
    View,
}

impl Mode {
    /// The wire and audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Control => "control",
            Mode::View => "view",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated request: the only type the broker accepts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub ticket: String,
    pub reason: String,
    pub mode: Mode,
    /// `Some(id)`: asks to raise running session `id` from view-only to
    /// control (DESIGN.md, wire step 1); `mode` is then always `Control`.
    pub session: Option<Uuid>,
}

/// Why a request was refused; the wire spelling is fixed by DESIGN.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    User,
    Timeout,
    Busy,
    RateLimited,
    Policy,
    BadRequest,
    UpstreamUnreachable,
    AgentShuttingDown,
    /// Nobody at the workstation can answer (no active graphical session,
    /// locked, or ambiguous). Sent by the service once it asks the seat's
    /// active user only; `accord connect` knows it already (exit 8).
    NoUser,
    /// The person in front of the screen is in a session Accord cannot
    /// share (Wayland without a screen server Accord can start there):
    /// never stream XWayland's empty screen instead. Exit 8 too: nobody
    /// can be asked here until the session changes.
    UnsupportedSession,
}

impl RefusalCode {
    /// The wire and audit spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalCode::User => "user",
            RefusalCode::Timeout => "timeout",
            RefusalCode::Busy => "busy",
            RefusalCode::RateLimited => "rate_limited",
            RefusalCode::Policy => "policy",
            RefusalCode::BadRequest => "bad_request",
            RefusalCode::UpstreamUnreachable => "upstream_unreachable",
            RefusalCode::AgentShuttingDown => "agent_shutting_down",
            RefusalCode::NoUser => "no_user",
            RefusalCode::UnsupportedSession => "unsupported_session",
        }
    }
}

impl fmt::Display for RefusalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The agent's answer, sent once the decision is on record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Accepted { mode: Mode, session: Uuid },
    Refused { why: RefusalCode },
}

/// A line from the agent before or at the decision (DESIGN.md, wire steps 1b
/// and 2). `Pending` is sent once the clinician is being asked, so that the
/// technician's countdown is the workstation's real deadline.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentLine {
    Pending {
        deadline: Duration,
        asked: Mode,
    },
    /// The decision, and for a refusal the agent's retry hint if it gave one.
    Decision {
        decision: Decision,
        retry_after: Option<Duration>,
    },
}

/// Why a request line was rejected. All of them are `bad_request` on the wire;
/// the detail goes to the audit log.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RequestError {
    #[error("request line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("request line is not valid JSON for this protocol: {0}")]
    Json(String),
    #[error("unsupported protocol version {0}")]
    Version(u32),
    #[error("{field} is longer than {max} characters")]
    FieldTooLong { field: &'static str, max: usize },
    #[error("{field} is empty")]
    Empty { field: &'static str },
    #[error("{field} contains a forbidden character U+{code:04X}")]
    ForbiddenChar { field: &'static str, code: u32 },
    #[error("connection closed before a complete request line")]
    Incomplete,
    /// A session id can only ask for more rights: raising to view is meaningless.
    #[error("a request naming a session must ask for control")]
    RaiseNotControl,
}

/// A line a technician may open a connection with: a request (wire step
/// 1), or the watch of a running session (module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientLine {
    Request(Request),
    Watch(Uuid),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWatch {
    v: u32,
    watch: Uuid,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRequest {
    v: u32,
    ticket: String,
    reason: String,
    mode: Mode,
    #[serde(default)]
    session: Option<Uuid>,
}

#[derive(Serialize)]
struct WireRequest<'a> {
    v: u32,
    ticket: &'a str,
    reason: &'a str,
    mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none")]
    session: Option<Uuid>,
}

/// A complete line (without `\n`) and the bytes received after it.
pub type LineAndRest = (Vec<u8>, Vec<u8>);

/// Accumulates bytes until a full line (sans-IO): the socket code feeds it and
/// enforces the 10 s deadline; this owns the size limit.
#[derive(Default, Debug)]
pub struct LineReader {
    buf: Vec<u8>,
}

impl LineReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds received bytes. Returns the line (without `\n`) and the bytes that
    /// followed it, once a `\n` arrives; `Ok(None)` while more is needed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Option<LineAndRest>, RequestError> {
        let room = MAX_LINE.saturating_sub(self.buf.len());
        if let Some(pos) = bytes.iter().position(|&b| b == b'\n') {
            if pos + 1 > room {
                return Err(RequestError::TooLong);
            }
            let mut line = std::mem::take(&mut self.buf);
            line.extend_from_slice(&bytes[..pos]);
            return Ok(Some((line, bytes[pos + 1..].to_vec())));
        }
        // No newline yet: a full-size buffer without one can never become valid.
        if bytes.len() >= room {
            return Err(RequestError::TooLong);
        }
        self.buf.extend_from_slice(bytes);
        Ok(None)
    }
}

/// Characters that must never reach the prompt: controls (they can move the
/// cursor or fake line breaks) and bidi controls (they can reorder what is
/// displayed, e.g. U+202E turns "gpj.exe" around).
pub fn forbidden_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
        || matches!(c, '\u{200E}' | '\u{200F}' | '\u{061C}')
}

fn check_text(field: &'static str, value: &str, max: usize) -> Result<(), RequestError> {
    if value.trim().is_empty() {
        return Err(RequestError::Empty { field });
    }
    if value.chars().count() > max {
        return Err(RequestError::FieldTooLong { field, max });
    }
    if let Some(c) = value.chars().find(|&c| forbidden_char(c)) {
        return Err(RequestError::ForbiddenChar {
            field,
            code: c as u32,
        });
    }
    Ok(())
}

/// Parses and validates one request line (without its `\n`).
pub fn parse_request(line: &[u8]) -> Result<Request, RequestError> {
    if line.len() >= MAX_LINE {
        return Err(RequestError::TooLong);
    }
    let raw: RawRequest =
        serde_json::from_slice(line).map_err(|e| RequestError::Json(e.to_string()))?;
    if raw.v != VERSION {
        return Err(RequestError::Version(raw.v));
    }
    check_text("ticket", &raw.ticket, MAX_TICKET)?;
    check_text("reason", &raw.reason, MAX_REASON)?;
    if raw.session.is_some() && raw.mode != Mode::Control {
        return Err(RequestError::RaiseNotControl);
    }
    Ok(Request {
        ticket: raw.ticket,
        reason: raw.reason,
        mode: raw.mode,
        session: raw.session,
    })
}

/// Parses the first line of a connection (without its `\n`): a watch when
/// it names one, otherwise a request ([`parse_request`], same rules).
pub fn parse_client_line(line: &[u8]) -> Result<ClientLine, RequestError> {
    if line.len() >= MAX_LINE {
        return Err(RequestError::TooLong);
    }
    let value: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| RequestError::Json(e.to_string()))?;
    if value.get("watch").is_none() {
        return parse_request(line).map(ClientLine::Request);
    }
    let raw: RawWatch =
        serde_json::from_value(value).map_err(|e| RequestError::Json(e.to_string()))?;
    if raw.v != VERSION {
        return Err(RequestError::Version(raw.v));
    }
    Ok(ClientLine::Watch(raw.watch))
}

/// The watch line `accord connect` opens its second connection with, `\n`
/// included.
pub fn encode_watch(session: Uuid) -> Vec<u8> {
    encode_line(&RawWatch {
        v: VERSION,
        watch: session,
    })
}

fn encode_line<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = serde_json::to_vec(value).unwrap_or_default();
    out.push(b'\n');
    out
}

/// The request line as `accord connect` sends it, `\n` included.
pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut out = serde_json::to_vec(&WireRequest {
        v: VERSION,
        ticket: &req.ticket,
        reason: &req.reason,
        mode: req.mode,
        session: req.session,
    })
    .unwrap_or_default();
    out.push(b'\n');
    out
}

#[derive(Serialize, Deserialize)]
struct WireDecision {
    v: u32,
    decision: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    session: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    why: Option<RefusalCode>,
    /// Added field (rate limit): seconds until a request may succeed. Read
    /// leniently: a value that is not a whole number of seconds within
    /// [`MAX_RETRY_AFTER`] is ignored, the refusal itself still stands.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    retry_after_s: Option<serde_json::Value>,
}

/// The decision line as the agent sends it, `\n` included.
pub fn encode_decision(d: &Decision) -> Vec<u8> {
    let wire = match d {
        Decision::Accepted { mode, session } => WireDecision {
            v: VERSION,
            decision: "accepted".into(),
            mode: Some(*mode),
            session: Some(*session),
            why: None,
            retry_after_s: None,
        },
        Decision::Refused { why } => WireDecision {
            v: VERSION,
            decision: "refused".into(),
            mode: None,
            session: None,
            why: Some(*why),
            retry_after_s: None,
        },
    };
    encode_line(&wire)
}

/// Longest retry hint a refusal may carry: the rate limit's window is an
/// hour, so anything longer is not a hint this protocol gives.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A refusal line with an optional retry hint (`retry_after_s`, whole
/// seconds rounded up), `\n` included. Without a hint it is exactly
/// [`encode_decision`]'s refusal.
pub fn encode_refusal(why: RefusalCode, retry_after: Option<Duration>) -> Vec<u8> {
    let retry_after_s = retry_after.map(|d| {
        let s = d.min(MAX_RETRY_AFTER).as_millis().div_ceil(1000);
        serde_json::Value::from(u64::try_from(s).unwrap_or(u64::MAX))
    });
    encode_line(&WireDecision {
        v: VERSION,
        decision: "refused".into(),
        mode: None,
        session: None,
        why: Some(why),
        retry_after_s,
    })
}

#[derive(Serialize, Deserialize)]
struct WirePending {
    v: u32,
    pending: PendingBody,
}

#[derive(Serialize, Deserialize)]
struct PendingBody {
    deadline_s: u64,
    asked: Mode,
}

/// The "pending" line (wire step 1b), `\n` included: the clinician is being
/// asked and has `deadline` (whole seconds, rounded up) to answer.
pub fn encode_pending(deadline: Duration, asked: Mode) -> Vec<u8> {
    let deadline_s = deadline.as_millis().div_ceil(1000);
    let mut out = serde_json::to_vec(&WirePending {
        v: VERSION,
        pending: PendingBody {
            deadline_s: u64::try_from(deadline_s).unwrap_or(u64::MAX),
            asked,
        },
    })
    .unwrap_or_default();
    out.push(b'\n');
    out
}

/// Why `accord connect` could not understand the agent's answer.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error("the agent's answer is not valid JSON: {0}")]
    Json(String),
    #[error("the agent's answer is incomplete or unknown: {0}")]
    Shape(String),
}

/// Parses the agent's decision line. Unknown extra fields are ignored so that
/// a newer agent may add some (DESIGN.md: a field may be added).
pub fn parse_decision(line: &[u8]) -> Result<Decision, DecisionError> {
    parse_decision_hint(line).map(|(d, _)| d)
}

/// [`parse_decision`], with a refusal's retry hint (`retry_after_s`) when
/// it is there and sensible.
fn parse_decision_hint(line: &[u8]) -> Result<(Decision, Option<Duration>), DecisionError> {
    let w: WireDecision =
        serde_json::from_slice(line).map_err(|e| DecisionError::Json(e.to_string()))?;
    match (w.decision.as_str(), w.mode, w.session, w.why) {
        ("accepted", Some(mode), Some(session), _) => {
            Ok((Decision::Accepted { mode, session }, None))
        }
        ("refused", _, _, Some(why)) => {
            let retry_after = w
                .retry_after_s
                .as_ref()
                .and_then(serde_json::Value::as_u64)
                .map(Duration::from_secs)
                .filter(|d| *d <= MAX_RETRY_AFTER);
            Ok((Decision::Refused { why }, retry_after))
        }
        (other, ..) => Err(DecisionError::Shape(other.to_string())),
    }
}

/// Longest deadline a pending line may announce: the policy allows at most
/// 600 s; anything beyond is a broken or hostile agent, not a countdown.
pub const MAX_PENDING_DEADLINE: Duration = Duration::from_secs(3600);

/// Parses one line from the agent: a pending notice or the decision.
pub fn parse_agent_line(line: &[u8]) -> Result<AgentLine, DecisionError> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| DecisionError::Json(e.to_string()))?;
    if v.get("pending").is_some() {
        let p: WirePending =
            serde_json::from_value(v).map_err(|e| DecisionError::Shape(e.to_string()))?;
        let deadline = Duration::from_secs(p.pending.deadline_s);
        if deadline > MAX_PENDING_DEADLINE {
            return Err(DecisionError::Shape(format!(
                "pending deadline of {} s",
                p.pending.deadline_s
            )));
        }
        return Ok(AgentLine::Pending {
            deadline,
            asked: p.pending.asked,
        });
    }
    parse_decision_hint(line).map(|(decision, retry_after)| AgentLine::Decision {
        decision,
        retry_after,
    })
}

/// One line the agent sends on a watch connection (module documentation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchLine {
    /// The session's mode: the current one right after admission (`by`
    /// absent), then each change with who made it (`"user"`: the clinician
    /// switched to view only, or granted a request for control).
    Mode { mode: Mode, by: Option<String> },
    /// The session ended; `why` is the audit log's `session_ended.why`
    /// (a newer agent may send a reason this build does not know).
    Ended { why: String },
    /// The watch itself was refused (a decision line).
    Refused { why: RefusalCode },
    /// She hid her screen (`true`) or showed it again.
    Paused { paused: bool },
    /// She is asked whether the session goes on; it ends after `grace`.
    Confirming { grace: Duration },
    /// She chose to go on.
    Confirmed,
    /// A well-formed line this build does not know: skipped.
    Unknown,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WirePaused {
    v: u32,
    paused: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireConfirming {
    v: u32,
    confirming: ConfirmingBody,
}

#[derive(Serialize, Deserialize)]
struct ConfirmingBody {
    grace_s: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireConfirmed {
    v: u32,
    confirmed: bool,
}

/// `{"v":1,"paused":…}`, `\n` included.
pub fn encode_watch_paused(paused: bool) -> Vec<u8> {
    encode_line(&WirePaused { v: VERSION, paused })
}

/// `{"v":1,"confirming":{"grace_s":N}}`, `\n` included.
pub fn encode_watch_confirming(grace: Duration) -> Vec<u8> {
    encode_line(&WireConfirming {
        v: VERSION,
        confirming: ConfirmingBody {
            grace_s: grace.as_secs(),
        },
    })
}

/// `{"v":1,"confirmed":true}`, `\n` included.
pub fn encode_watch_confirmed() -> Vec<u8> {
    encode_line(&WireConfirmed {
        v: VERSION,
        confirmed: true,
    })
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireMode {
    v: u32,
    mode: Mode,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    by: Option<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEnded {
    v: u32,
    ended: EndedBody,
}

#[derive(Serialize, Deserialize)]
struct EndedBody {
    why: String,
}

/// Longest `why` / `by` word on a watch line.
const MAX_WATCH_WORD: usize = 32;

/// Words from the agent that `accord connect` may print: lowercase ASCII
/// and `_` only, so that a hostile agent cannot send terminal escapes.
fn watch_word(field: &str, w: &str) -> Result<(), DecisionError> {
    if w.is_empty()
        || w.len() > MAX_WATCH_WORD
        || !w.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
    {
        return Err(DecisionError::Shape(format!("watch line: bad {field}")));
    }
    Ok(())
}

/// A watch line announcing the mode, `\n` included: `by` absent for the
/// mode at admission, `Some("user")` for a change.
pub fn encode_watch_mode(mode: Mode, by: Option<&str>) -> Vec<u8> {
    encode_line(&WireMode {
        v: VERSION,
        mode,
        by: by.map(str::to_string),
    })
}

/// The watch line announcing the end of the session, `\n` included; `why`
/// is an end reason as written in the audit log.
pub fn encode_watch_ended(why: &str) -> Vec<u8> {
    encode_line(&WireEnded {
        v: VERSION,
        ended: EndedBody {
            why: why.to_string(),
        },
    })
}

/// Parses one line received on a watch connection.
pub fn parse_watch_line(line: &[u8]) -> Result<WatchLine, DecisionError> {
    let v: serde_json::Value =
        serde_json::from_slice(line).map_err(|e| DecisionError::Json(e.to_string()))?;
    if v.get("decision").is_some() {
        return match parse_decision(line)? {
            Decision::Refused { why } => Ok(WatchLine::Refused { why }),
            Decision::Accepted { .. } => Err(DecisionError::Shape(
                "an acceptance on a watch connection".into(),
            )),
        };
    }
    if v.get("ended").is_some() {
        let e: WireEnded =
            serde_json::from_value(v).map_err(|e| DecisionError::Shape(e.to_string()))?;
        watch_word("why", &e.ended.why)?;
        return Ok(WatchLine::Ended { why: e.ended.why });
    }
    if v.get("paused").is_some() {
        let p: WirePaused =
            serde_json::from_value(v).map_err(|e| DecisionError::Shape(e.to_string()))?;
        return Ok(WatchLine::Paused { paused: p.paused });
    }
    if v.get("confirming").is_some() {
        let c: WireConfirming =
            serde_json::from_value(v).map_err(|e| DecisionError::Shape(e.to_string()))?;
        return Ok(WatchLine::Confirming {
            grace: Duration::from_secs(c.confirming.grace_s.min(86_400)),
        });
    }
    if v.get("confirmed").is_some() {
        let _: WireConfirmed =
            serde_json::from_value(v).map_err(|e| DecisionError::Shape(e.to_string()))?;
        return Ok(WatchLine::Confirmed);
    }
    if v.is_object() && v.get("mode").is_none() {
        return Ok(WatchLine::Unknown);
    }
    let m: WireMode = serde_json::from_value(v).map_err(|e| DecisionError::Shape(e.to_string()))?;
    if let Some(by) = &m.by {
        watch_word("by", by)?;
    }
    Ok(WatchLine::Mode {
        mode: m.mode,
        by: m.by,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(s: &str) -> Result<Request, RequestError> {
        parse_request(s.as_bytes())
    }

    #[test]
    fn consent_in_time_watch_lines_round_trip_and_unknown_lines_are_skipped() {
        let strip = |v: Vec<u8>| v[..v.len() - 1].to_vec();
        assert_eq!(
            parse_watch_line(&strip(encode_watch_paused(true))).unwrap(),
            WatchLine::Paused { paused: true }
        );
        assert_eq!(
            parse_watch_line(&strip(encode_watch_confirming(Duration::from_secs(300)))).unwrap(),
            WatchLine::Confirming {
                grace: Duration::from_secs(300)
            }
        );
        assert_eq!(
            parse_watch_line(&strip(encode_watch_confirmed())).unwrap(),
            WatchLine::Confirmed
        );
        assert_eq!(
            parse_watch_line(br#"{"v":1,"weather":"sunny"}"#).unwrap(),
            WatchLine::Unknown
        );
        assert!(parse_watch_line(br#"{"v":1,"paused":"yes"}"#).is_err());
    }

    #[test]
    fn parses_the_design_example() {
        let r =
            line(r#"{"v":1,"ticket":"INC-4711","reason":"Imprimante","mode":"control"}"#).unwrap();
        assert_eq!(r.ticket, "INC-4711");
        assert_eq!(r.reason, "Imprimante");
        assert_eq!(r.mode, Mode::Control);
        let back = encode_request(&r);
        assert_eq!(parse_request(&back[..back.len() - 1]).unwrap(), r);
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(matches!(line("not json"), Err(RequestError::Json(_))));
        assert!(matches!(
            line(r#"{"v":1,"ticket":"a","reason":"b","mode":"admin"}"#),
            Err(RequestError::Json(_))
        ));
        assert!(matches!(
            line(r#"{"v":1,"ticket":"a","reason":"b","mode":"view","extra":1}"#),
            Err(RequestError::Json(_))
        ));
        assert_eq!(
            line(r#"{"v":2,"ticket":"a","reason":"b","mode":"view"}"#),
            Err(RequestError::Version(2))
        );
        assert_eq!(
            line(r#"{"v":1,"ticket":" ","reason":"b","mode":"view"}"#),
            Err(RequestError::Empty { field: "ticket" })
        );
    }

    #[test]
    fn a_session_id_asks_to_raise_to_control() {
        let id = "6f1c7a52-3b7e-4f7e-9d55-0a4b6c8e9f10";
        let r = line(&format!(
            r#"{{"v":1,"ticket":"T","reason":"R","mode":"control","session":"{id}"}}"#
        ))
        .unwrap();
        assert_eq!(r.session, Some(id.parse().unwrap()));
        assert_eq!(r.mode, Mode::Control);
        let back = encode_request(&r);
        assert!(std::str::from_utf8(&back).unwrap().contains(id));
        assert_eq!(parse_request(&back[..back.len() - 1]).unwrap(), r);
        // Without a session the line is DESIGN.md's.
        let plain = Request {
            session: None,
            ..r.clone()
        };
        assert!(
            !String::from_utf8(encode_request(&plain))
                .unwrap()
                .contains("session")
        );

        assert_eq!(
            line(&format!(
                r#"{{"v":1,"ticket":"T","reason":"R","mode":"view","session":"{id}"}}"#
            )),
            Err(RequestError::RaiseNotControl)
        );
        for bad in [
            r#"{"v":1,"ticket":"T","reason":"R","mode":"control","session":"nope"}"#,
            r#"{"v":1,"ticket":"T","reason":"R","mode":"control","session":42}"#,
            r#"{"v":1,"ticket":"T","reason":"R","mode":"control","session":null,"x":1}"#,
        ] {
            assert!(matches!(line(bad), Err(RequestError::Json(_))), "{bad}");
        }
    }

    #[test]
    fn limits_field_lengths_in_characters() {
        let ok = format!(
            r#"{{"v":1,"ticket":"{}","reason":"{}","mode":"view"}}"#,
            "é".repeat(64),
            "é".repeat(280)
        );
        assert!(line(&ok).is_ok());
        let long = format!(
            r#"{{"v":1,"ticket":"{}","reason":"b","mode":"view"}}"#,
            "x".repeat(65)
        );
        assert_eq!(
            line(&long),
            Err(RequestError::FieldTooLong {
                field: "ticket",
                max: 64
            })
        );
    }

    #[test]
    fn refuses_bidi_and_control_characters() {
        for bad in ["\\u202e", "\\u2066", "\\u2069", "\\u0007", "\\n", "\\u200f"] {
            let l = format!(r#"{{"v":1,"ticket":"T","reason":"a{bad}b","mode":"view"}}"#);
            assert!(
                matches!(
                    line(&l),
                    Err(RequestError::ForbiddenChar {
                        field: "reason",
                        ..
                    })
                ),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn line_reader_limits_and_keeps_leftover() {
        let mut r = LineReader::new();
        assert_eq!(r.push(b"abc").unwrap(), None);
        let (l, rest) = r.push(b"def\nRFB").unwrap().unwrap();
        assert_eq!(l, b"abcdef");
        assert_eq!(rest, b"RFB");

        let mut r = LineReader::new();
        assert!(r.push(&[b'a'; 4095]).unwrap().is_none());
        // 4095 bytes + "\n" = 4096: allowed.
        assert!(r.push(b"\n").unwrap().is_some());

        let mut r = LineReader::new();
        assert!(r.push(&[b'a'; 4095]).unwrap().is_none());
        assert_eq!(r.push(b"a"), Err(RequestError::TooLong));
        let mut r = LineReader::new();
        let mut big = vec![b'a'; 4096];
        big.push(b'\n');
        assert_eq!(r.push(&big), Err(RequestError::TooLong));
    }

    #[test]
    fn pending_is_the_design_frame() {
        let l = encode_pending(Duration::from_millis(24_200), Mode::Control);
        assert_eq!(
            std::str::from_utf8(&l).unwrap(),
            "{\"v\":1,\"pending\":{\"deadline_s\":25,\"asked\":\"control\"}}\n"
        );
        assert_eq!(
            parse_agent_line(&l[..l.len() - 1]).unwrap(),
            AgentLine::Pending {
                deadline: Duration::from_secs(25),
                asked: Mode::Control
            }
        );
        let d = encode_decision(&Decision::Refused {
            why: RefusalCode::NoUser,
        });
        assert_eq!(
            parse_agent_line(&d[..d.len() - 1]).unwrap(),
            AgentLine::Decision {
                decision: Decision::Refused {
                    why: RefusalCode::NoUser
                },
                retry_after: None
            }
        );
        for bad in [
            r#"{"v":1,"pending":{"deadline_s":99999,"asked":"view"}}"#,
            r#"{"v":1,"pending":{"deadline_s":-1,"asked":"view"}}"#,
            r#"{"v":1,"pending":{"asked":"view"}}"#,
            r#"{"v":1,"pending":"soon"}"#,
        ] {
            assert!(parse_agent_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions_round_trip() {
        let id = Uuid::new_v4();
        for d in [
            Decision::Accepted {
                mode: Mode::View,
                session: id,
            },
            Decision::Refused {
                why: RefusalCode::RateLimited,
            },
        ] {
            let l = encode_decision(&d);
            assert_eq!(parse_decision(&l[..l.len() - 1]).unwrap(), d);
        }
        let l = encode_decision(&Decision::Refused {
            why: RefusalCode::AgentShuttingDown,
        });
        assert_eq!(
            std::str::from_utf8(&l).unwrap(),
            "{\"v\":1,\"decision\":\"refused\",\"why\":\"agent_shutting_down\"}\n"
        );
    }

    #[test]
    fn rate_limited_may_say_when_to_retry() {
        let l = encode_refusal(
            RefusalCode::RateLimited,
            Some(Duration::from_millis(1_200_300)),
        );
        assert_eq!(
            std::str::from_utf8(&l).unwrap(),
            "{\"v\":1,\"decision\":\"refused\",\"why\":\"rate_limited\",\"retry_after_s\":1201}\n"
        );
        let refused = Decision::Refused {
            why: RefusalCode::RateLimited,
        };
        assert_eq!(
            parse_agent_line(&l[..l.len() - 1]).unwrap(),
            AgentLine::Decision {
                decision: refused.clone(),
                retry_after: Some(Duration::from_secs(1201))
            }
        );
        assert_eq!(parse_decision(&l[..l.len() - 1]).unwrap(), refused);
        // Without the field: the DESIGN.md line.
        let plain = encode_refusal(RefusalCode::RateLimited, None);
        assert_eq!(plain, encode_decision(&refused));
        assert_eq!(
            parse_agent_line(br#"{"v":1,"decision":"refused","why":"rate_limited"}"#).unwrap(),
            AgentLine::Decision {
                decision: refused.clone(),
                retry_after: None
            }
        );
        // A hint that makes no sense is dropped; the refusal stands.
        for odd in [r#""soon""#, "-5", "1.5", "999999", "null"] {
            let line = format!(
                r#"{{"v":1,"decision":"refused","why":"rate_limited","retry_after_s":{odd}}}"#
            );
            assert_eq!(
                parse_agent_line(line.as_bytes()).unwrap(),
                AgentLine::Decision {
                    decision: refused.clone(),
                    retry_after: None
                },
                "{odd}"
            );
        }
    }

    #[test]
    fn watch_request_and_lines() {
        let id = Uuid::new_v4();
        let l = encode_watch(id);
        assert_eq!(
            std::str::from_utf8(&l).unwrap(),
            format!("{{\"v\":1,\"watch\":\"{id}\"}}\n")
        );
        assert_eq!(
            parse_client_line(&l[..l.len() - 1]).unwrap(),
            ClientLine::Watch(id)
        );
        let req = br#"{"v":1,"ticket":"T","reason":"R","mode":"view"}"#;
        assert!(matches!(
            parse_client_line(req),
            Ok(ClientLine::Request(Request {
                mode: Mode::View,
                ..
            }))
        ));
        for bad in [
            format!(r#"{{"v":2,"watch":"{id}"}}"#),
            format!(r#"{{"v":1,"watch":"{id}","mode":"control"}}"#),
            format!(r#"{{"v":1,"watch":"{id}","ticket":"T","reason":"R","mode":"view"}}"#),
            r#"{"v":1,"watch":"nope"}"#.to_string(),
            r#"{"v":1,"watch":null}"#.to_string(),
            r#"{"watch":"6f1c7a52-3b7e-4f7e-9d55-0a4b6c8e9f10"}"#.to_string(),
            "x".repeat(MAX_LINE),
        ] {
            assert!(parse_client_line(bad.as_bytes()).is_err(), "{bad}");
        }
        // parse_request alone never takes a watch line.
        assert!(parse_request(&l[..l.len() - 1]).is_err());

        let strip = |l: Vec<u8>| l[..l.len() - 1].to_vec();
        assert_eq!(
            strip(encode_watch_mode(Mode::View, None)),
            br#"{"v":1,"mode":"view"}"#
        );
        assert_eq!(
            strip(encode_watch_mode(Mode::Control, Some("user"))),
            br#"{"v":1,"mode":"control","by":"user"}"#
        );
        assert_eq!(
            strip(encode_watch_ended("max_duration")),
            br#"{"v":1,"ended":{"why":"max_duration"}}"#
        );
        assert_eq!(
            parse_watch_line(br#"{"v":1,"mode":"view","by":"user"}"#).unwrap(),
            WatchLine::Mode {
                mode: Mode::View,
                by: Some("user".into())
            }
        );
        assert_eq!(
            parse_watch_line(br#"{"v":1,"mode":"control"}"#).unwrap(),
            WatchLine::Mode {
                mode: Mode::Control,
                by: None
            }
        );
        assert_eq!(
            parse_watch_line(br#"{"v":1,"ended":{"why":"idle"}}"#).unwrap(),
            WatchLine::Ended { why: "idle".into() }
        );
        assert_eq!(
            parse_watch_line(br#"{"v":1,"decision":"refused","why":"bad_request"}"#).unwrap(),
            WatchLine::Refused {
                why: RefusalCode::BadRequest
            }
        );
        for bad in [
            r#"{"v":1,"ended":{"why":"\u001b[2J"}}"#,
            r#"{"v":1,"ended":{"why":"USER"}}"#,
            r#"{"v":1,"ended":{"why":""}}"#,
            r#"{"v":1,"ended":"idle"}"#,
            r#"{"v":1,"mode":"admin"}"#,
            r#"{"v":1,"mode":"view","by":"the user\n"}"#,
            r#"{"v":1,"decision":"accepted","mode":"view","session":"6f1c7a52-3b7e-4f7e-9d55-0a4b6c8e9f10"}"#,
            "[]",
            "not json",
        ] {
            assert!(parse_watch_line(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
