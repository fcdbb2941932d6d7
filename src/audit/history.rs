//! The clinician's history ("Historique" in the tray), read back from the
//! audit log: her own decisions on requests to see or control her screen,
//! most recent first, each with what became of the session it opened.
//!
//! It comes from the log, not from memory, so that it survives restarts of
//! the service and of her session, and so that it shows what was recorded
//! (T11) rather than what a window remembers. It is a reading aid, not the
//! check: `accord log verify` is. A line that is not JSON is skipped, never
//! an error, and nothing here ever panics on what the file holds.
//!
//! Whose entries: only decisions the clinician made (`by: "user"`) or was
//! asked and let run out (`by: "timeout"`, whose `local_user` is who was
//! asked); with a uid, only those whose `local_user.uid` is hers. Refusals
//! by policy (nobody to ask, rate limit...) were never put to her and are
//! not hers to see.
//!
//! Bounded: [`read`] reads only the last [`TAIL_BYTES`] of the file (a
//! months-old log of hundreds of MB answers in milliseconds), and every
//! [`Entry`] encodes to at most [`MAX_ENTRY_BYTES`], so that 30 of them fit
//! one helper protocol line (`seat::proto::MAX_LINE`).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::AuditError;
use super::chain::format_ts;
use super::show::{CompleteLines, common_name, parse_ts, subject_attribute, text};
use crate::protocol::Mode;

/// How much of the end of the log [`read`] reads. About 2 500 requests with
/// their sessions: far more than a history shows, and still read and parsed
/// in a few milliseconds however old and large the log is.
pub const TAIL_BYTES: u64 = 4 << 20;

/// The most one [`Entry`] takes once encoded as JSON. 30 entries, their
/// commas and the `{"v":1,"history":{"items":[…]}}\n` around them stay
/// under the helper protocol's 16 KiB line.
pub const MAX_ENTRY_BYTES: usize = 540;

/// Longest text field (technician, organization, ticket, reason), in
/// characters, before [`MAX_ENTRY_BYTES`] shortens the longest ones further.
pub const MAX_TEXT_CHARS: usize = 120;

/// Longest end reason code (`max_duration` is 12): a log may hold a reason
/// this build does not know, but not an essay.
const MAX_CODE_CHARS: usize = 32;

/// An end reason code as the log writes them (lowercase words joined by
/// `_`): anything else becomes `_`, so that a code is a short ASCII word
/// whatever the file holds.
fn code(s: &str) -> String {
    s.chars()
        .take(MAX_CODE_CHARS)
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One decision of the clinician, as the history shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// When she decided (or the prompt ran out): the decision record's
    /// `ts`, RFC 3339 UTC with milliseconds. Entries are ordered by the
    /// log's order, not by this clock, which may have been set back.
    pub at: String,
    /// The request's id, which is also its session's: several entries share
    /// it when the technician asked for control during a view-only session
    /// ([`Entry::raise`]), and the tray can tell the running session's.
    pub session: Uuid,
    /// The certificate's CN (the whole subject if it has none): who the
    /// technician is, as proven. Never a name they typed.
    pub technician: String,
    /// The certificate's O, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Typed by the technician: shown as such, never as identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// A request for control of a session she had already let the
    /// technician view (absent = `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub raise: bool,
    pub outcome: Outcome,
}

/// What she decided, and what became of it.
///
/// Accepted requests are split by what the log says happened next, because
/// "I allowed it" and "someone was on my screen for 20 minutes" are not the
/// same thing to her: the session started ([`Outcome::Accepted`]), it is
/// being set up right now ([`Outcome::Starting`]), it never started
/// ([`Outcome::Failed`]), or the service stopped before recording how it
/// went ([`Outcome::Interrupted`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Outcome {
    /// She allowed `mode` and the session started (`session_started`).
    /// `ended`: how it ended; absent while it runs. For a raise, `mode` is
    /// control and `ended` is the end of the session she raised.
    Accepted {
        mode: Mode,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ended: Option<Ended>,
    },
    /// She allowed `mode` moments ago and nothing has been recorded since:
    /// Accord is connecting to the screen-sharing server (a few seconds).
    Starting { mode: Mode },
    /// She allowed `mode` but no session followed: it ended before it
    /// started. `why` is the `session_ended` code: `upstream` (the
    /// screen-sharing server could not be reached or started), or how it
    /// was ended while connecting (`user`, `ui_lost`, `agent_stopped`...).
    Failed { mode: Mode, why: String },
    /// She allowed `mode`, and the service stopped (crash, power cut)
    /// before recording how the session went: a later `agent_started`, or a
    /// later request, says it is over. `accord log show` has the rest.
    Interrupted { mode: Mode },
    /// She refused.
    Refused,
    /// She was asked and did not answer in time: refused by the deadline.
    TimedOut,
}

/// How a session ended (`session_ended`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ended {
    /// The log's code (`user`, `technician`, `idle`, `max_duration`,
    /// `screen_locked`, `user_switched`, `upstream`, `protocol`,
    /// `agent_stopped`, `ui_lost`); kept as text so that a reason added
    /// later still shows.
    pub why: String,
    /// RFC 3339 UTC with milliseconds.
    pub at: String,
    /// From her decision to the end, whole seconds.
    pub seconds: u64,
}

/// What the log says about one session id.
#[derive(Default)]
struct Facts {
    /// Position of the first decision or `session_started` with this id: a
    /// decision after it is a request for control of the running session.
    first: Option<usize>,
    started: bool,
    /// Position of its `session_ended`.
    ended: Option<usize>,
}

fn event(r: &Value) -> Option<&str> {
    r.get("event").and_then(Value::as_str)
}

/// The clinician's history from `records` (in log order): decisions of
/// local user `uid` (any user's when `None`), most recent first, at most
/// `max`. Records that are not what the log writes are skipped.
pub fn entries<'a>(
    records: impl Iterator<Item = &'a Value>,
    uid: Option<u32>,
    max: usize,
) -> Vec<Entry> {
    let records: Vec<&Value> = records.collect();
    let mut facts: HashMap<&str, Facts> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        let Some(session) = r.get("session").and_then(Value::as_str) else {
            continue;
        };
        let f = facts.entry(session).or_default();
        match event(r) {
            Some("decision") => {
                f.first.get_or_insert(i);
            }
            Some("session_started") => {
                f.first.get_or_insert(i);
                f.started = true;
            }
            Some("session_ended") => {
                f.ended.get_or_insert(i);
            }
            _ => {}
        }
    }

    // Newest first. Going backwards, what comes later is known: a restart,
    // or a new request (which the broker admits only once the session
    // before is over), means a session with no end recorded is not running
    // any more. A request for control is no such sign: it names a session
    // that runs.
    let mut out = Vec::new();
    let mut restarted_later = false;
    let mut later_requests: HashSet<&str> = HashSet::new();
    for (i, r) in records.iter().enumerate().rev() {
        if out.len() >= max {
            break;
        }
        match event(r) {
            Some("agent_started") => restarted_later = true,
            Some("decision") => {
                let Some(session) = r.get("session").and_then(Value::as_str) else {
                    continue;
                };
                let Some(f) = facts.get(session) else {
                    continue;
                };
                let over = restarted_later
                    || later_requests.len() > 1
                    || later_requests.iter().any(|s| *s != session);
                let raise = f.first.is_some_and(|first| first < i);
                if !raise {
                    later_requests.insert(session);
                }
                if let Some(e) = entry(r, i, uid, over, raise, f, &records) {
                    out.push(e);
                }
            }
            _ => {}
        }
    }
    out
}

/// The entry for decision `r` at position `i`, if it is one of `uid`'s.
fn entry(
    r: &Value,
    i: usize,
    uid: Option<u32>,
    over: bool,
    raise: bool,
    f: &Facts,
    records: &[&Value],
) -> Option<Entry> {
    let by = r.get("by").and_then(Value::as_str)?;
    if !matches!(by, "user" | "timeout") {
        return None;
    }
    if let Some(uid) = uid {
        let asked = r.get("local_user")?.get("uid")?.as_u64()?;
        if asked != u64::from(uid) {
            return None;
        }
    }
    let session = Uuid::parse_str(r.get("session").and_then(Value::as_str)?).ok()?;
    let decided = parse_ts(r.get("ts").and_then(Value::as_str)?)?;
    let mode = |key| match r.get(key).and_then(Value::as_str) {
        Some("control") => Some(Mode::Control),
        Some("view") => Some(Mode::View),
        _ => None,
    };
    let outcome = match (by, r.get("decision").and_then(Value::as_str)?) {
        ("timeout", _) => Outcome::TimedOut,
        ("user", "refused") => Outcome::Refused,
        ("user", "accepted") => {
            let mode = mode("mode")?;
            // An end recorded before this decision belongs to another
            // request with the same id (a forged or mangled log).
            let ended = f
                .ended
                .filter(|&j| j > i)
                .and_then(|j| ended(records.get(j)?, decided));
            match (f.started || raise, ended) {
                (true, ended @ Some(_)) => Outcome::Accepted { mode, ended },
                (true, None) if over => Outcome::Interrupted { mode },
                (true, None) => Outcome::Accepted { mode, ended: None },
                (false, Some(e)) => Outcome::Failed { mode, why: e.why },
                (false, None) if over => Outcome::Interrupted { mode },
                (false, None) => Outcome::Starting { mode },
            }
        }
        _ => return None,
    };
    let subject = r
        .get("technician")
        .and_then(|t| text(t, "subject"))
        .unwrap_or_default();
    let mut e = Entry {
        at: format_ts(decided),
        session,
        technician: bounded(&common_name(&subject), MAX_TEXT_CHARS),
        organization: subject_attribute(&subject, "O").map(|o| bounded(&o, MAX_TEXT_CHARS)),
        ticket: text(r, "ticket").map(|t| bounded(&t, MAX_TEXT_CHARS)),
        reason: text(r, "reason").map(|t| bounded(&t, MAX_TEXT_CHARS)),
        raise,
        outcome,
    };
    e.fit();
    Some(e)
}

/// The end of a session decided at `decided`, from its `session_ended`.
fn ended(r: &Value, decided: time::OffsetDateTime) -> Option<Ended> {
    let at = parse_ts(r.get("ts").and_then(Value::as_str)?)?;
    // `duration_ms` counts from the acceptance, like the banner's clock;
    // the timestamps are the fallback for a record without it.
    let seconds = match r.get("duration_ms").and_then(Value::as_u64) {
        Some(ms) => ms / 1000,
        None => u64::try_from((at - decided).whole_seconds()).unwrap_or(0),
    };
    Some(Ended {
        why: code(&text(r, "why").unwrap_or_default()),
        at: format_ts(at),
        seconds,
    })
}

/// `s` without control or bidi characters (they could reorder or hide what
/// the window shows), at most `max` characters, `…` when cut.
fn bounded(s: &str, max: usize) -> String {
    let mut out: String = s
        .chars()
        .take(max)
        .map(|c| {
            if crate::protocol::forbidden_char(c) {
                '\u{FFFD}'
            } else {
                c
            }
        })
        .collect();
    if s.chars().nth(max).is_some() {
        out.pop();
        out.push('…');
    }
    out
}

/// Bytes `s` takes inside a JSON string (without the quotes). Control
/// characters cannot occur here ([`bounded`] replaced them).
fn json_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

impl Entry {
    /// The encoded length of this entry.
    pub fn encoded_len(&self) -> usize {
        serde_json::to_vec(self).map_or(usize::MAX, |v| v.len())
    }

    /// Shortens the longest text fields until the entry encodes to at most
    /// [`MAX_ENTRY_BYTES`]: a long reason keeps most of its room when the
    /// other fields are short, and 30 worst cases still fit one line.
    fn fit(&mut self) {
        loop {
            let len = self.encoded_len();
            if len <= MAX_ENTRY_BYTES {
                return;
            }
            let excess = len - MAX_ENTRY_BYTES;
            let longest = [
                Some(&mut self.technician),
                self.organization.as_mut(),
                self.ticket.as_mut(),
                self.reason.as_mut(),
            ]
            .into_iter()
            .flatten()
            .max_by_key(|s| json_len(s));
            let Some(field) = longest else { return };
            let have = json_len(field);
            let ellipsis = json_len("…");
            if have <= ellipsis {
                // Nothing left to cut (cannot happen: the fixed part of an
                // entry is far below the budget, see the tests).
                return;
            }
            let keep = have.saturating_sub(excess + ellipsis);
            let mut used = 0;
            let cut: String = field
                .chars()
                .take_while(|c| {
                    used += json_len(c.encode_utf8(&mut [0; 4]));
                    used <= keep
                })
                .collect();
            *field = cut + "…";
        }
    }
}

/// The history of `uid` (any user's when `None`) from the log at `path`:
/// at most `max` entries, most recent first, from its last [`TAIL_BYTES`]
/// only. Blocking: call it from `spawn_blocking` in async code.
pub fn read(path: &Path, uid: Option<u32>, max: usize) -> Result<Vec<Entry>, AuditError> {
    let io = |e| AuditError::io(path, e);
    let mut file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    // Start one byte early and drop everything up to the first `\n`: the
    // line cut by the window's start, or only that `\n` when the window
    // starts on a line.
    let start = len.saturating_sub(TAIL_BYTES).saturating_sub(1);
    file.seek(SeekFrom::Start(start)).map_err(io)?;
    // Up to the length seen now: a log growing meanwhile cannot make this
    // read more than the window.
    let mut lines = CompleteLines::new(BufReader::with_capacity(1 << 16, file.take(len - start)));
    if start > 0 {
        lines.next().transpose().map_err(io)?;
    }
    let mut records = Vec::new();
    for line in lines {
        // Not JSON: skipped (`log verify` reports it).
        if let Ok(v) = serde_json::from_slice::<Value>(&line.map_err(io)?) {
            records.push(v);
        }
    }
    Ok(entries(records.iter(), uid, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::record::{DecidedBy, EndReason, Event, LocalUser};
    use crate::audit::{Chain, Log};
    use crate::protocol::RefusalCode;
    use crate::tls::Identity;
    use std::io::Write;
    use std::time::{Duration, Instant};

    fn tech(cn: &str) -> Identity {
        Identity {
            subject: format!("CN={cn},O=Helpdesk CHU"),
            fingerprint: format!("sha256:{}", "ab".repeat(32)),
            common_name: Some(cn.into()),
            organization: Some("Helpdesk CHU".into()),
        }
    }

    fn user(uid: u32) -> Option<LocalUser> {
        Some(LocalUser {
            name: format!("u{uid}"),
            uid,
            session: Some("3".into()),
        })
    }

    /// A decision as the broker records it.
    fn decision(
        session: Uuid,
        ticket: &str,
        granted: Option<Mode>,
        by: DecidedBy,
        local: Option<LocalUser>,
    ) -> Event {
        let why = match (granted, by) {
            (Some(_), _) => None,
            (None, DecidedBy::User) => Some(RefusalCode::User),
            (None, DecidedBy::Timeout) => Some(RefusalCode::Timeout),
            (None, _) => Some(RefusalCode::NoUser),
        };
        Event::Decision {
            session,
            technician: tech("Jeanne Martin"),
            peer: "10.1.2.3:51234".parse().unwrap(),
            ticket: ticket.into(),
            reason: "Imprimante".into(),
            asked: Mode::Control,
            granted,
            by,
            why,
            local,
        }
    }

    fn started(session: Uuid, mode: Mode) -> Event {
        Event::SessionStarted {
            session,
            technician: tech("Jeanne Martin"),
            mode,
            upstream: "127.0.0.1:5900".into(),
            local: user(1000),
        }
    }

    fn ended(session: Uuid, why: EndReason, secs: u64) -> Event {
        Event::SessionEnded {
            session,
            why,
            duration: Duration::from_secs(secs),
            bytes_to_server: 10,
            bytes_to_technician: 20,
            detail: None,
        }
    }

    fn agent_started() -> Event {
        Event::AgentStarted {
            version: "0.1.0".into(),
            listen: None,
            not_listening: None,
            policy: None,
        }
    }

    /// `events` written by the real log, then read back by [`read`].
    fn history(events: &[Event], uid: Option<u32>, max: usize) -> Vec<Entry> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let (mut log, _) = Log::open(&path).unwrap();
        for e in events {
            log.append(e.to_fields()).unwrap();
        }
        drop(log);
        let got = read(&path, uid, max).unwrap();
        // The same records through the sans-IO core.
        let all = crate::audit::read_records(&path).unwrap();
        assert_eq!(entries(all.iter(), uid, max), got);
        got
    }

    fn outcomes(h: &[Entry]) -> Vec<&Outcome> {
        h.iter().map(|e| &e.outcome).collect()
    }

    #[test]
    fn only_her_decisions_with_their_sessions_newest_first() {
        let (a, b, c, d, e) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let events = [
            agent_started(),
            decision(a, "A", Some(Mode::View), DecidedBy::User, user(1000)),
            started(a, Mode::View),
            ended(a, EndReason::User, 307),
            // Another user of the workstation refused.
            decision(b, "B", None, DecidedBy::User, user(1001)),
            // Nobody could be asked: not a decision of anyone's.
            decision(c, "C", None, DecidedBy::Policy, None),
            // She was asked and did not answer.
            decision(d, "D", None, DecidedBy::Timeout, user(1000)),
            decision(e, "E", None, DecidedBy::User, user(1000)),
        ];
        let h = history(&events, Some(1000), 30);
        let tickets: Vec<_> = h.iter().map(|e| e.ticket.as_deref().unwrap()).collect();
        assert_eq!(tickets, ["E", "D", "A"]);
        assert_eq!(
            outcomes(&h)[..2],
            [&Outcome::Refused, &Outcome::TimedOut],
            "{h:#?}"
        );
        match &h[2].outcome {
            Outcome::Accepted {
                mode: Mode::View,
                ended: Some(end),
            } => {
                assert_eq!(end.why, "user");
                assert_eq!(end.seconds, 307);
                assert!(end.at >= h[2].at, "{end:?}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(h[2].session, a);
        assert_eq!(h[2].technician, "Jeanne Martin");
        assert_eq!(h[2].organization.as_deref(), Some("Helpdesk CHU"));
        assert_eq!(h[2].reason.as_deref(), Some("Imprimante"));
        assert!(!h[2].raise);
        assert!(parse_ts(&h[0].at).is_some() && h[0].at.ends_with('Z'));

        let other = history(&events, Some(1001), 30);
        assert_eq!(other.len(), 1);
        assert_eq!(other[0].ticket.as_deref(), Some("B"));
        // Without a uid (`accord agent`, one user): every decision of a
        // person, still none of the policy's.
        let any = history(&events, None, 30);
        let tickets: Vec<_> = any.iter().map(|e| e.ticket.as_deref().unwrap()).collect();
        assert_eq!(tickets, ["E", "D", "B", "A"]);
        // A user who never decided anything.
        assert!(history(&events, Some(1002), 30).is_empty());
    }

    #[test]
    fn accepted_sessions_that_failed_run_or_were_cut_short() {
        let ids: Vec<Uuid> = (0..6).map(|_| Uuid::new_v4()).collect();
        let accept = |i: usize, mode| {
            decision(
                ids[i],
                &i.to_string(),
                Some(mode),
                DecidedBy::User,
                user(1000),
            )
        };
        // 0: the server could not be reached: ended `upstream` at once.
        // 1: started, then the service crashed (no end; agent_started).
        // 2: accepted, then the service crashed before the session started.
        // 3: accepted, ended while connecting (kill switch).
        // 4: running now.
        let events = [
            accept(0, Mode::Control),
            ended(ids[0], EndReason::Upstream, 0),
            accept(1, Mode::View),
            started(ids[1], Mode::View),
            agent_started(),
            accept(2, Mode::Control),
            agent_started(),
            accept(3, Mode::Control),
            ended(ids[3], EndReason::User, 1),
            accept(4, Mode::Control),
            started(ids[4], Mode::Control),
        ];
        let h = history(&events, Some(1000), 30);
        let mode = Mode::Control;
        assert_eq!(
            outcomes(&h),
            [
                &Outcome::Accepted { mode, ended: None },
                &Outcome::Failed {
                    mode,
                    why: "user".into()
                },
                &Outcome::Interrupted { mode },
                &Outcome::Interrupted { mode: Mode::View },
                &Outcome::Failed {
                    mode,
                    why: "upstream".into()
                },
            ],
            "{h:#?}"
        );
        // 5: accepted, nothing since: being set up now.
        let starting = history(&[accept(5, Mode::View)], Some(1000), 30);
        assert_eq!(
            outcomes(&starting),
            [&Outcome::Starting { mode: Mode::View }]
        );
        // A request after an unfinished one means the first is over.
        let two = [
            accept(5, Mode::View),
            decision(ids[0], "x", None, DecidedBy::User, user(1000)),
        ];
        let h = history(&two, Some(1000), 30);
        assert_eq!(h[1].outcome, Outcome::Interrupted { mode: Mode::View });
    }

    #[test]
    fn a_request_for_control_during_the_session_is_its_own_entry() {
        let s = Uuid::new_v4();
        let events = [
            decision(s, "T", Some(Mode::View), DecidedBy::User, user(1000)),
            started(s, Mode::View),
            // Refused, then let run out, then accepted.
            decision(s, "T", None, DecidedBy::User, user(1000)),
            decision(s, "T", None, DecidedBy::Timeout, user(1000)),
            decision(s, "T", Some(Mode::Control), DecidedBy::User, user(1000)),
            Event::ModeChanged {
                session: s,
                from: Mode::View,
                to: Mode::Control,
                by: "user",
            },
            ended(s, EndReason::Technician, 60),
        ];
        let h = history(&events, Some(1000), 30);
        assert_eq!(h.len(), 4, "{h:#?}");
        assert!(h.iter().all(|e| e.session == s));
        assert_eq!(
            h.iter().map(|e| e.raise).collect::<Vec<_>>(),
            [true, true, true, false]
        );
        let end = |o: &Outcome| match o {
            Outcome::Accepted {
                mode,
                ended: Some(e),
            } => (*mode, e.why.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(end(&h[0].outcome), (Mode::Control, "technician".into()));
        assert_eq!(h[1].outcome, Outcome::TimedOut);
        assert_eq!(h[2].outcome, Outcome::Refused);
        assert_eq!(end(&h[3].outcome), (Mode::View, "technician".into()));
    }

    #[test]
    fn at_most_max_entries_the_newest() {
        let events: Vec<Event> = (0..50)
            .map(|i| {
                decision(
                    Uuid::new_v4(),
                    &format!("T{i}"),
                    None,
                    DecidedBy::User,
                    user(1000),
                )
            })
            .collect();
        let h = history(&events, Some(1000), 30);
        assert_eq!(h.len(), 30);
        assert_eq!(h[0].ticket.as_deref(), Some("T49"));
        assert_eq!(h[29].ticket.as_deref(), Some("T20"));
        assert!(history(&events, Some(1000), 0).is_empty());
    }

    /// Garbage in a record, or a record that is not one, never panics and
    /// never shows: the entry is skipped.
    #[test]
    fn malformed_records_are_skipped() {
        let good = Uuid::new_v4().to_string();
        let records = [
            serde_json::json!(null),
            serde_json::json!([1, 2]),
            serde_json::json!({"event": 3}),
            serde_json::json!({"event":"decision"}),
            serde_json::json!({"event":"decision","session":"not-a-uuid","by":"user","decision":"refused","ts":"2026-11-27T10:15:02.113Z"}),
            serde_json::json!({"event":"decision","session":good,"by":"user","decision":"refused","ts":"yesterday"}),
            serde_json::json!({"event":"decision","session":good,"by":"user","decision":"maybe","ts":"2026-11-27T10:15:02.113Z"}),
            serde_json::json!({"event":"decision","session":good,"by":"user","decision":"accepted","mode":"root","ts":"2026-11-27T10:15:02.113Z"}),
            serde_json::json!({"event":"decision","session":good,"by":"user","decision":"refused","ts":"2026-11-27T10:15:02.113Z","local_user":{"uid":"1000"}}),
            serde_json::json!({"event":"session_ended","session":good,"why":{"x":1},"ts":"2026-11-27T10:15:02.113Z","duration_ms":-5}),
        ];
        assert!(entries(records.iter(), Some(1000), 30).is_empty());
        // Without uid the last one is hers (no uid to compare), technician unknown.
        let h = entries(records.iter(), None, 30);
        assert_eq!(h.len(), 1, "{h:#?}");
        assert_eq!(h[0].technician, "");
        assert_eq!(h[0].at, "2026-11-27T10:15:02.113Z");
    }

    /// The longest, most escaped text any field can hold still leaves an
    /// entry within [`MAX_ENTRY_BYTES`]; it round-trips, and shows no
    /// control or bidi character.
    #[test]
    fn hostile_text_is_bounded_and_clean() {
        let s = Uuid::new_v4().to_string();
        for nasty in [
            "\"".repeat(500),
            "\\".repeat(500),
            "\u{1F600}".repeat(500),
            "\u{0}\u{1b}[31m\u{202E}".repeat(200),
            "é".repeat(500),
            "x".repeat(100_000),
        ] {
            let subject = format!("CN={nasty},O={nasty}");
            let records = [
                serde_json::json!({"event":"decision","session":s,"by":"user","decision":"accepted","mode":"control",
                    "ts":"2026-11-27T10:15:02.113456789+02:00","technician":{"subject":subject},
                    "ticket":nasty,"reason":nasty,"local_user":{"uid":1000}}),
                serde_json::json!({"event":"session_started","session":s}),
                serde_json::json!({"event":"session_ended","session":s,"why":nasty,"ts":"2026-11-27T18:15:02.113Z","duration_ms":u64::MAX}),
            ];
            let h = entries(records.iter(), Some(1000), 30);
            assert_eq!(h.len(), 1);
            let e = &h[0];
            assert!(
                e.encoded_len() <= MAX_ENTRY_BYTES,
                "{} {e:?}",
                e.encoded_len()
            );
            let text = serde_json::to_string(e).unwrap();
            assert!(!text.chars().any(crate::protocol::forbidden_char));
            assert!(!text.contains("\\u"), "{text}");
            assert_eq!(serde_json::from_str::<Entry>(&text).unwrap(), *e);
            assert_eq!(e.at, "2026-11-27T08:15:02.113Z");
            for f in [&e.technician, e.reason.as_ref().unwrap()] {
                assert!(f.chars().count() <= MAX_TEXT_CHARS && !f.is_empty(), "{f}");
            }
            match &e.outcome {
                Outcome::Accepted {
                    ended: Some(end), ..
                } => {
                    assert!(end.why.len() <= MAX_CODE_CHARS);
                    assert!(
                        end.why
                            .bytes()
                            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    );
                    assert_eq!(end.seconds, u64::MAX / 1000);
                }
                other => panic!("{other:?}"),
            }
        }
        // Short fields are kept whole.
        let short = "INC-4711";
        assert_eq!(bounded(short, MAX_TEXT_CHARS), short);
        assert_eq!(bounded(&"a".repeat(121), 120).chars().count(), 120);
        assert!(bounded(&"a".repeat(121), 120).ends_with('…'));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = Entry {
            at: "2026-11-27T10:15:02.113Z".into(),
            session: Uuid::new_v4(),
            technician: "Jeanne Martin".into(),
            organization: None,
            ticket: Some("INC-1".into()),
            reason: None,
            raise: false,
            outcome: Outcome::Refused,
        };
        let mut v = serde_json::to_value(&e).unwrap();
        assert_eq!(serde_json::from_value::<Entry>(v.clone()).unwrap(), e);
        assert_eq!(v["outcome"], "refused");
        v["uid"] = 0.into();
        assert!(serde_json::from_value::<Entry>(v).is_err());
        let bad = serde_json::json!({"at":"x","session":e.session,"technician":"t",
            "outcome":{"accepted":{"mode":"control","ended":{"why":"user","at":"x","seconds":1,"by":"me"}}}});
        assert!(serde_json::from_value::<Entry>(bad).is_err());
    }

    /// A torn last line (a write in progress, or cut by a crash) and lines
    /// that are not JSON are skipped; the window's first, partial line too.
    #[test]
    fn torn_and_foreign_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut chain = Chain::new();
        let mut text = String::from("not json at all\n{\"half\":\n");
        let s = Uuid::new_v4();
        for ticket in ["A", "B"] {
            let e = decision(s, ticket, None, DecidedBy::User, user(1000));
            let line = chain
                .append(&e.to_fields(), time::OffsetDateTime::now_utc())
                .unwrap();
            text.push_str(&line.text);
            text.push('\n');
        }
        text.push_str(r#"{"seq":99,"ts":"2026-11-27T10:15:02.113Z","event":"decision""#);
        std::fs::write(&path, &text).unwrap();
        let h = read(&path, Some(1000), 30).unwrap();
        let tickets: Vec<_> = h.iter().map(|e| e.ticket.as_deref().unwrap()).collect();
        assert_eq!(tickets, ["B", "A"]);
        assert!(matches!(
            read(&dir.path().join("missing"), None, 30),
            Err(AuditError::Io { .. })
        ));
    }

    /// A months-old log of 50 MB: only its tail is read, and the newest
    /// entries are found there. How long it took is printed, not asserted
    /// (the machine may be loaded).
    #[test]
    fn a_big_log_is_read_from_its_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut out = std::io::BufWriter::new(File::create(&path).unwrap());
        let mut chain = Chain::new();
        let mut size = 0usize;
        let mut n = 0u64;
        let now = time::OffsetDateTime::now_utc();
        while size < 50 << 20 {
            let s = Uuid::new_v4();
            // Mostly another user's sessions, and some of hers.
            let local = if n.is_multiple_of(10) {
                user(1000)
            } else {
                user(1001)
            };
            let events = [
                decision(
                    s,
                    &format!("T{n}"),
                    Some(Mode::View),
                    DecidedBy::User,
                    local,
                ),
                started(s, Mode::View),
                ended(s, EndReason::Technician, 42),
            ];
            for e in events {
                let line = chain.append(&e.to_fields(), now).unwrap();
                out.write_all(line.text.as_bytes()).unwrap();
                out.write_all(b"\n").unwrap();
                size += line.text.len() + 1;
            }
            n += 1;
        }
        out.flush().unwrap();
        drop(out);
        let t0 = Instant::now();
        let h = read(&path, Some(1000), 30).unwrap();
        let took = t0.elapsed();
        eprintln!(
            "history of a {} MB log ({n} requests): {} entries in {took:?}",
            size >> 20,
            h.len()
        );
        assert_eq!(h.len(), 30);
        let last_hers = (n - 1) / 10 * 10;
        assert_eq!(
            h[0].ticket.as_deref(),
            Some(format!("T{last_hers}").as_str())
        );
        assert_eq!(
            h[29].ticket.as_deref(),
            Some(format!("T{}", last_hers - 290).as_str())
        );
        assert!(h.iter().all(|e| matches!(
            &e.outcome,
            Outcome::Accepted { mode: Mode::View, ended: Some(end) } if end.why == "technician" && end.seconds == 42
        )));
        let any = read(&path, None, usize::MAX).unwrap();
        assert!(
            (any.len() as u64) < n / 4,
            "only the tail is read: {} of {n}",
            any.len()
        );
    }
}
