//! What the broker tells the UI (O7): the prompt it asks, the state the
//! banner and tray show, the notices they pop.

use super::EndReason;
use crate::protocol::Mode;
use crate::tls::Identity;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};
use uuid::Uuid;

/// The request as the clinician is asked about it.
#[derive(Clone, Debug, PartialEq)]
pub struct PromptRequest {
    pub id: Uuid,
    pub technician: Identity,
    pub peer: SocketAddr,
    /// Typed by the technician: shown as such, never as identity.
    pub ticket: String,
    pub reason: String,
    pub asked: Mode,
    /// Whether "Allow control" may be offered (asked control and policy allows).
    pub control_offered: bool,
    /// When the broker refuses on its own.
    pub deadline: Instant,
    pub timeout: Duration,
    /// Buttons stay inactive this long after the prompt shows.
    pub arm_delay: Duration,
    /// What the session's clipboard permission will be in control
    /// (view-only never shares it), so the clinician knows before deciding.
    pub clipboard: crate::policy::Clipboard,
    /// The technician of session `id`, already watching in view-only, asks
    /// for control of it: the prompt words it so and offers only "Allow
    /// control" and "Refuse". `false` for a new request.
    pub raise: bool,
    /// The question of the consent period's end about the running session
    /// ("L'assistance à distance avec X continue ?"; `id` is the question's own): the prompt offers
    /// "Continuer" ([`Answer::Continue`](crate::broker::Answer::Continue))
    /// and "Terminer" (refused), with the guards of any prompt; its
    /// deadline is the grace, after which the session ends
    /// `not_confirmed`. `false` for a request.
    pub confirm: bool,
    /// Accord's window program started again during or after an earlier
    /// control session in her login session (`helper_replaced`): the
    /// prompt says so first, since a technician in control could have put
    /// a program of their own in its place. Set by the service's prompter
    /// on the next prompt only; `None` from the broker.
    pub replaced: Option<ReplacedHelper>,
}

/// The helper that connected where control had been granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplacedHelper {
    pub pid: u32,
    pub exe: String,
}

/// A running session, as the banner shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionInfo {
    pub id: Uuid,
    pub technician: Identity,
    pub ticket: String,
    pub reason: String,
    pub mode: Mode,
    pub started: SystemTime,
    pub started_at: Instant,
    /// The session's clipboard permission (shared only in control).
    pub clipboard: crate::policy::Clipboard,
    /// She hid her screen ("Masquer mon écran"): nothing of it reaches the
    /// technician and their input is held until she resumes.
    pub paused: bool,
}

/// Whether the agent accepts connections.
#[derive(Clone, Debug, PartialEq)]
pub enum Listening {
    Starting,
    On(SocketAddr),
    /// Not listening, and why (shown in the tray and the log).
    Off(String),
}

/// What the agent is doing now.
#[derive(Clone, Debug, PartialEq)]
pub enum Activity {
    Idle,
    Asking(Box<PromptRequest>),
    InSession(Box<SessionInfo>),
}

/// The whole state the UI and `accord status` show.
#[derive(Clone, Debug, PartialEq)]
pub struct AgentState {
    pub listening: Listening,
    pub activity: Activity,
    /// Set when requests are refused whatever happens (tampered log, UI lost).
    pub blocked: Option<String>,
}

impl Default for AgentState {
    fn default() -> Self {
        AgentState {
            listening: Listening::Starting,
            activity: Activity::Idle,
            blocked: None,
        }
    }
}

/// A decision or session end the UI may want to notify about.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    SessionStarted(SessionInfo),
    SessionEnded {
        info: SessionInfo,
        why: EndReason,
    },
    /// A prompt reached its deadline without an answer.
    PromptTimedOut {
        technician: Identity,
    },
    /// Accord's window program was started again in her login session
    /// during or after a session in control (`pid`, `exe` as it says).
    HelperReplaced {
        pid: u32,
        exe: String,
    },
    /// A request was refused because her session cannot be shared
    /// (Wayland): she is told, since she was never asked.
    UnsupportedSession {
        technician: Identity,
    },
}
