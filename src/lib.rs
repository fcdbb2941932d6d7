//! Accord: consented, traced remote assistance for hospital workstations.
//!
//! The core (`policy`, `protocol`, `tls`, `broker`, `session`, `agent`,
//! `connect`, `control`) never depends on the UI; the UI reaches it through a
//! [`broker::Prompter`] it implements and a [`broker::SessionControl`] it holds.

pub mod agent;
pub mod app;
pub mod audit;
pub mod broker;
pub mod cli;
pub mod connect;
pub mod control;
pub mod gate;
#[cfg(unix)]
pub mod launch;
pub mod login_screen;
pub mod mutter;
pub mod platform;
pub mod policy;
pub mod preflight;
pub mod protocol;
pub mod rfb;
pub mod seat;
pub mod session;
pub mod tls;
#[cfg(feature = "ui")]
pub mod ui;
