//! `accord service`: the core as a system service (issue 9). It holds the
//! key, the audit log and the network; the helpers (`accord ui`, one per
//! graphical session) only show and answer, over `ui.sock`.
//!
//! - [`seat`]: who may be asked (pure).
//! - [`logind`]: the seat's active session and its lock, from logind.
//! - [`screensaver`]: the session bus's screen saver, seen by the helper.

#[cfg(feature = "logind")]
pub mod logind;
#[cfg(feature = "logind")]
pub mod screensaver;
pub mod seat;
