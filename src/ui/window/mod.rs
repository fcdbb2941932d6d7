//! The window process and its link: every window Accord shows is drawn
//! in `accord ui-window`, a short-lived child of `accord agent` or
//! `accord ui`, so that the GL driver it maps never stays in the resident
//! process.
//!
//! - [`host`]: the parent's side, in `accord agent` / `accord ui`: starts
//!   the window process, keeps it in step with the hub.
//! - [`proto`]: the line protocol between the two (sans-IO).
//! - [`child`]: `accord ui-window` itself, reading that protocol.
//! - [`run`]: the window process's main thread, opening a window only
//!   when there is something to show.

pub mod child;
pub mod host;
pub mod proto;
pub mod run;
