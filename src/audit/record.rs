//! The audit log's records (T11, T12, E3): what happened, as the broker
//! and the sessions report it, and the [`Journal`] every record goes
//! through before anyone is told (consent without a trace is not allowed).

use crate::protocol::{Mode, RefusalCode};
pub use crate::session::EndReason;
use crate::tls::Identity;
use serde_json::{Map, Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use uuid::Uuid;

/// Who made a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecidedBy {
    User,
    Timeout,
    Policy,
    Agent,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::User => "user",
            DecidedBy::Timeout => "timeout",
            DecidedBy::Policy => "policy",
            DecidedBy::Agent => "agent",
        }
    }
}

/// The local user who answered a prompt: on a shared workstation
/// the record says which of its users consented, from the kernel's and
/// logind's word, never from what a helper claims.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalUser {
    pub name: String,
    pub uid: u32,
    /// logind's session id, when known.
    pub session: Option<String>,
}

/// One audit event (DESIGN.md, "Audit record").
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    AgentStarted {
        version: String,
        listen: Option<SocketAddr>,
        /// Why the agent does not listen (missing certificates...), if so.
        not_listening: Option<String>,
        policy: Option<String>,
    },
    AgentStopped,
    RequestRejected {
        peer: SocketAddr,
        /// `tls`, `bad_request`, `busy`, `rate_limited`, `policy`, `agent_shutting_down`.
        why: &'static str,
        technician: Option<Identity>,
        detail: String,
    },
    Decision {
        session: Uuid,
        technician: Identity,
        peer: SocketAddr,
        ticket: String,
        reason: String,
        asked: Mode,
        /// `Some(mode)` = accepted in that mode.
        granted: Option<Mode>,
        by: DecidedBy,
        why: Option<RefusalCode>,
        /// Who answered (user decisions only).
        local: Option<LocalUser>,
    },
    SessionStarted {
        session: Uuid,
        technician: Identity,
        mode: Mode,
        upstream: String,
        local: Option<LocalUser>,
    },
    ModeChanged {
        session: Uuid,
        from: Mode,
        to: Mode,
        by: &'static str,
    },
    /// She hid her screen ("Masquer mon écran"): nothing of it reached
    /// the technician, and their input was held, until `resumed`.
    Paused {
        session: Uuid,
        by: &'static str,
    },
    Resumed {
        session: Uuid,
        by: &'static str,
    },
    /// The consent period's question ("continue?") was settled: she went
    /// on (`continued`), ended it, or did not answer in time (`by:
    /// timeout`, then `session_ended` `not_confirmed`).
    Confirmation {
        session: Uuid,
        continued: bool,
        by: DecidedBy,
        /// Who answered, or who was asked and did not answer.
        local: Option<LocalUser>,
    },
    SessionEnded {
        session: Uuid,
        why: EndReason,
        duration: Duration,
        bytes_to_server: u64,
        bytes_to_technician: u64,
        detail: Option<String>,
    },
    /// A session helper broke the helper protocol (garbage, an answer to a
    /// prompt it was not asked): it was disconnected.
    HelperRejected {
        uid: u32,
        pid: u32,
        detail: String,
    },
    /// A helper of a user who granted control connected in the login
    /// session where that control ran: a technician in control acts as
    /// her and could have replaced `accord ui` by a program that answers
    /// "control" by itself. Accord cannot prevent it on X11; it says so.
    HelperReplaced {
        uid: u32,
        pid: u32,
        /// The executable as the new helper names it (its own word).
        exe: String,
        session: Option<String>,
    },
    /// The forwarder's cursor did not match the log (log archived and
    /// restarted, cursor forged or from another log): forwarding restarted
    /// from the log's first record.
    ForwardCursorReset {
        reason: String,
    },
}

fn identity_json(id: &Identity) -> Value {
    json!({"subject": id.subject, "fingerprint": id.fingerprint})
}

/// `local_user` and `local_session`: added fields, absent when unknown.
fn local_json(m: &mut Map<String, Value>, local: &Option<LocalUser>) {
    if let Some(l) = local {
        m.insert("local_user".into(), json!({"name": l.name, "uid": l.uid}));
        if let Some(s) = &l.session {
            m.insert("local_session".into(), json!(s));
        }
    }
}

impl Event {
    /// The event name, as written in the log.
    pub fn name(&self) -> &'static str {
        match self {
            Event::AgentStarted { .. } => "agent_started",
            Event::AgentStopped => "agent_stopped",
            Event::ForwardCursorReset { .. } => "forward_cursor_reset",
            Event::HelperRejected { .. } => "helper_rejected",
            Event::HelperReplaced { .. } => "helper_replaced",
            Event::RequestRejected { .. } => "request_rejected",
            Event::Decision { .. } => "decision",
            Event::SessionStarted { .. } => "session_started",
            Event::ModeChanged { .. } => "mode_changed",
            Event::Paused { .. } => "paused",
            Event::Resumed { .. } => "resumed",
            Event::Confirmation { .. } => "confirmation",
            Event::SessionEnded { .. } => "session_ended",
        }
    }

    /// The record's fields in DESIGN.md order (the log adds `seq`, `ts`,
    /// `prev`, `hash`).
    pub fn to_fields(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("event".into(), self.name().into());
        match self {
            Event::AgentStarted {
                version,
                listen,
                not_listening,
                policy,
            } => {
                m.insert("version".into(), version.clone().into());
                m.insert(
                    "listen".into(),
                    listen
                        .map(|a| a.to_string())
                        .map_or(Value::Null, Value::from),
                );
                if let Some(n) = not_listening {
                    m.insert("not_listening".into(), n.clone().into());
                }
                m.insert(
                    "policy".into(),
                    policy.clone().map_or(Value::Null, Value::from),
                );
            }
            Event::AgentStopped => {}
            Event::ForwardCursorReset { reason } => {
                m.insert("reason".into(), json!(reason));
            }
            Event::HelperRejected { uid, pid, detail } => {
                m.insert("uid".into(), json!(uid));
                m.insert("pid".into(), json!(pid));
                m.insert("detail".into(), json!(detail));
            }
            Event::HelperReplaced {
                uid,
                pid,
                exe,
                session,
            } => {
                m.insert("uid".into(), json!(uid));
                m.insert("pid".into(), json!(pid));
                m.insert("exe".into(), json!(exe));
                if let Some(s) = session {
                    m.insert("local_session".into(), json!(s));
                }
            }
            Event::RequestRejected {
                peer,
                why,
                technician,
                detail,
            } => {
                if let Some(t) = technician {
                    m.insert("technician".into(), identity_json(t));
                }
                m.insert("peer".into(), peer.to_string().into());
                m.insert("why".into(), (*why).into());
                m.insert("detail".into(), detail.clone().into());
            }
            Event::Decision {
                session,
                technician,
                peer,
                ticket,
                reason,
                asked,
                granted,
                by,
                why,
                local,
            } => {
                local_json(&mut m, local);
                m.insert("session".into(), session.to_string().into());
                m.insert("technician".into(), identity_json(technician));
                m.insert("peer".into(), peer.to_string().into());
                m.insert("ticket".into(), ticket.clone().into());
                m.insert("reason".into(), reason.clone().into());
                m.insert("asked".into(), asked.as_str().into());
                m.insert(
                    "decision".into(),
                    if granted.is_some() {
                        "accepted"
                    } else {
                        "refused"
                    }
                    .into(),
                );
                if let Some(g) = granted {
                    m.insert("mode".into(), g.as_str().into());
                }
                m.insert("by".into(), by.as_str().into());
                if let Some(w) = why {
                    m.insert("why".into(), w.as_str().into());
                }
            }
            Event::SessionStarted {
                session,
                technician,
                mode,
                upstream,
                local,
            } => {
                local_json(&mut m, local);
                m.insert("session".into(), session.to_string().into());
                m.insert("technician".into(), identity_json(technician));
                m.insert("mode".into(), mode.as_str().into());
                m.insert("upstream".into(), upstream.clone().into());
            }
            Event::ModeChanged {
                session,
                from,
                to,
                by,
            } => {
                m.insert("session".into(), session.to_string().into());
                m.insert("from".into(), from.as_str().into());
                m.insert("mode".into(), to.as_str().into());
                m.insert("by".into(), (*by).into());
            }
            Event::Paused { session, by } | Event::Resumed { session, by } => {
                m.insert("session".into(), session.to_string().into());
                m.insert("by".into(), (*by).into());
            }
            Event::Confirmation {
                session,
                continued,
                by,
                local,
            } => {
                local_json(&mut m, local);
                m.insert("session".into(), session.to_string().into());
                m.insert(
                    "decision".into(),
                    if *continued { "continued" } else { "ended" }.into(),
                );
                m.insert("by".into(), by.as_str().into());
            }
            Event::SessionEnded {
                session,
                why,
                duration,
                bytes_to_server,
                bytes_to_technician,
                detail,
            } => {
                m.insert("session".into(), session.to_string().into());
                m.insert("why".into(), why.as_str().into());
                m.insert(
                    "duration_ms".into(),
                    u64::try_from(duration.as_millis())
                        .unwrap_or(u64::MAX)
                        .into(),
                );
                m.insert("bytes_to_server".into(), (*bytes_to_server).into());
                m.insert("bytes_to_technician".into(), (*bytes_to_technician).into());
                if let Some(d) = detail {
                    m.insert("detail".into(), d.clone().into());
                }
            }
        }
        m
    }
}

/// Why the audit log cannot be trusted: the broker then refuses every
/// request (consent without a trace is not allowed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogUnusable {
    /// The chain does not verify: a record was edited, removed or forged.
    #[error("the audit log {} was altered: {source}", path.display())]
    Altered {
        path: std::path::PathBuf,
        source: crate::audit::ChainError,
    },
    /// The log could not be opened (permissions, disk). `why` is the
    /// opening's error as text: the broker's inputs are plain values.
    #[error("audit log {} unusable: {why}", path.display())]
    Unavailable {
        path: std::path::PathBuf,
        why: String,
    },
}

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
#[error("audit log: {0}")]
pub struct JournalError(pub String);

/// Where events go. `record` returns only once the event is durable: the
/// broker tells the technician a decision, and a session relays its first
/// byte, only after that (consent without a trace is not allowed).
pub trait Journal: Send + Sync + 'static {
    fn record(&self, event: &Event) -> Result<(), JournalError>;
    /// `Err(why)` when the log cannot be trusted (tampering detected):
    /// the broker then refuses every request.
    fn health(&self) -> Result<(), LogUnusable> {
        Ok(())
    }
    /// Notified after each durable record, for a forwarder reading the log.
    fn wake(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
    /// The `seq` of the last durable record (`accord status`: how far
    /// behind the forwarder is).
    fn last_seq(&self) -> Option<u64> {
        None
    }
}

/// The journal when the audit log cannot be opened (permissions, disk):
/// consent without a trace is not allowed, so every request is refused.
pub struct UnavailableJournal(pub LogUnusable);

impl Journal for UnavailableJournal {
    fn record(&self, _event: &Event) -> Result<(), JournalError> {
        Err(JournalError(self.0.to_string()))
    }
    fn health(&self) -> Result<(), LogUnusable> {
        Err(self.0.clone())
    }
}

/// A journal that keeps events in memory (tests, and `--no-audit` never
/// exists: the agent always opens the real log).
#[derive(Default)]
pub struct MemoryJournal {
    pub events: std::sync::Mutex<Vec<Event>>,
    /// When set, every `record` fails (tests of "no trace ⇒ no consent").
    pub fail: std::sync::atomic::AtomicBool,
}

impl Journal for MemoryJournal {
    fn record(&self, event: &Event) -> Result<(), JournalError> {
        if self.fail.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(JournalError("disk full (simulated)".into()));
        }
        if let Ok(mut v) = self.events.lock() {
            v.push(event.clone());
        }
        Ok(())
    }
}
