//! Why a session ended: produced by the session, recorded by the broker's
//! journal and shown by the UI. It lives here, below the broker, so that
//! dependencies point one way (broker → session).

/// Why a session ended (audit `why`, and what the clinician is told).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The clinician pressed "Terminer", the shortcut, the tray, or `accord end`.
    User,
    /// The technician closed their connection.
    Technician,
    /// No key, pointer or clipboard message from the technician for
    /// `idle_timeout_s` (T10), whatever the screen does.
    Idle,
    MaxDuration,
    ScreenLocked,
    /// The local VNC server closed, failed, or refused the handshake.
    Upstream,
    AgentStopped,
    /// The UI died: nobody can follow or stop the session any more (O7, O8).
    UiLost,
    /// The technician's RFB stream could not be parsed safely (fail closed).
    Protocol,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::User => "user",
            EndReason::Technician => "technician",
            EndReason::Idle => "idle",
            EndReason::MaxDuration => "max_duration",
            EndReason::ScreenLocked => "screen_locked",
            EndReason::Upstream => "upstream",
            EndReason::AgentStopped => "agent_stopped",
            EndReason::UiLost => "ui_lost",
            EndReason::Protocol => "protocol",
        }
    }
}
