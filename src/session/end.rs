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
    /// The seat's active session changed (fast user switching): the person
    /// who consented is no longer in front of the screen.
    UserSwitched,
    /// The local VNC server closed, failed, or refused the handshake.
    Upstream,
    AgentStopped,
    /// The UI died: nobody can follow or stop the session any more (O7, O8).
    UiLost,
    /// The technician's RFB stream could not be parsed safely (fail closed).
    Protocol,
    /// The consent period ended and she did not answer "continue?" in
    /// time (or could not be asked).
    NotConfirmed,
}

impl EndReason {
    /// Every reason, for parsing and exhaustive tests.
    pub const ALL: [EndReason; 11] = [
        EndReason::User,
        EndReason::Technician,
        EndReason::Idle,
        EndReason::MaxDuration,
        EndReason::ScreenLocked,
        EndReason::UserSwitched,
        EndReason::Upstream,
        EndReason::AgentStopped,
        EndReason::UiLost,
        EndReason::Protocol,
        EndReason::NotConfirmed,
    ];

    /// The reason named `s` (as written in the log).
    pub fn parse(s: &str) -> Option<EndReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::User => "user",
            EndReason::Technician => "technician",
            EndReason::Idle => "idle",
            EndReason::MaxDuration => "max_duration",
            EndReason::ScreenLocked => "screen_locked",
            EndReason::UserSwitched => "user_switched",
            EndReason::Upstream => "upstream",
            EndReason::AgentStopped => "agent_stopped",
            EndReason::UiLost => "ui_lost",
            EndReason::Protocol => "protocol",
            EndReason::NotConfirmed => "not_confirmed",
        }
    }
}
