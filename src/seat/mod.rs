//! Who is in front of the screen, and the link to each `accord ui` helper
//! (DESIGN.md's `seat`): what lets `accord service` run the core under its
//! own user while the helpers, one per graphical session, only show and
//! answer over `ui.sock`.
//!
//! - [`rule`]: who may be asked (pure).
//! - [`proto`]: the helper protocol (sans-IO).
//! - [`registry`]: the connected helpers as the service sees them, the
//!   broker's `Prompter` across processes, their history requests, and
//!   the consent monitor.
//! - [`listener`]: `ui.sock`, peers identified by the kernel.
//! - [`fdpass`]: lines with a descriptor attached (the VNC server's
//!   connection, from helper to service).
//! - `logind`, `seatwatch`: the seat's active session and its lock.
//! - `screensaver`: the session bus's screen saver, seen by the helper.
//! - [`run`]: `accord service`'s wiring.

#[cfg(unix)]
pub mod fdpass;
#[cfg(unix)]
pub mod listener;
#[cfg(feature = "logind")]
pub mod logind;
pub mod proto;
#[cfg(unix)]
pub mod registry;
pub mod rule;
#[cfg(unix)]
pub mod run;
#[cfg(feature = "logind")]
pub mod screensaver;
#[cfg(all(unix, feature = "logind"))]
pub mod seatwatch;
