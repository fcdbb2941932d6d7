//! `accord service`: the core as a system service (issue 9). It holds the
//! key, the audit log and the network; the helpers (`accord ui`, one per
//! graphical session) only show and answer, over `ui.sock`.
//!
//! - [`proto`]: the helper protocol (sans-IO).
//! - [`seat`]: who may be asked (pure).
//! - [`helpers`]: the connected helpers and the broker's prompter.
//! - [`listener`]: `ui.sock`, peers identified by the kernel.
//! - `logind`, `seatwatch`: the seat's active session and its lock.
//! - `screensaver`: the session bus's screen saver, seen by the helper.
//! - [`run`]: wiring.

#[cfg(unix)]
pub mod helpers;
#[cfg(unix)]
pub mod listener;
#[cfg(feature = "logind")]
pub mod logind;
pub mod proto;
#[cfg(unix)]
pub mod run;
#[cfg(feature = "logind")]
pub mod screensaver;
pub mod seat;
#[cfg(all(unix, feature = "logind"))]
pub mod seatwatch;
