//! The screen of one accepted session: what the broker asks of whoever
//! can open it (the process in her graphical session), and what comes
//! back. Its own module so that the openers (`launch`, the service's
//! helpers) and the broker share these types without importing each other.

use crate::protocol::Mode;
use crate::session;
use uuid::Uuid;

/// What the broker asks of the process in the clinician's graphical
/// session once she has accepted, when `[upstream] launch` is on: start the
/// VNC server for that session and connect to it. Never asked
/// before consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScreenRequest {
    pub session: Uuid,
    pub launch: crate::policy::Launch,
    /// The mode she granted.
    pub mode: Mode,
    /// What the server itself may do (clipboard, input).
    pub grants: Grants,
}

/// What the server itself may do for a session, from the decision and the
/// policy: a second layer under Accord's RFB filter, so that a bypassed
/// filter still leaks no clipboard and injects no input it must not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grants {
    /// The policy's clipboard permission: the server sends her selections
    /// only with `both`, and takes the technician's only with more than
    /// `none`.
    pub clipboard: crate::policy::Clipboard,
    /// Whether the server may inject input at all: not for a view-only
    /// session that can never become control (`allow_control = false`).
    pub input: bool,
}

impl Grants {
    /// For a session granted `mode` under `policy`.
    pub fn for_session(mode: Mode, policy: &crate::policy::Policy) -> Grants {
        Grants {
            clipboard: policy.session.clipboard,
            input: mode == Mode::Control || policy.consent.allow_control,
        }
    }
}

/// A connection to the VNC server started for one session.
pub struct Screen {
    pub upstream: session::Upstream,
    /// For `session_started.upstream`, e.g. `x11vnc (started for the session, pid 4242)`.
    pub describe: String,
    /// Keeps the server running: dropped when the session is over, which
    /// stops it (or nothing, when another process holds the server).
    pub keep: Box<dyn std::any::Any + Send>,
    /// Resolves `true` once the server exited because she stopped the
    /// sharing from the desktop's own control (GNOME's indicator): the
    /// session then ends `user`. `None`: the server tells no such thing
    /// (or the one who started it tells it, as the service's helper does).
    pub stopped_by_her: Option<StoppedByHer>,
}

/// See [`Screen::stopped_by_her`].
pub type StoppedByHer = std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send>>;

/// Why no screen server could be opened (the session ends `upstream`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ScreenError(pub String);
