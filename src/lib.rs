//! Accord: consented, traced remote assistance for hospital workstations.
//!
//! The core (`policy`, `protocol`, `tls`, `broker`, `session`,
//! `listener`, `engine`, `audit`, `connect`, `control`) never depends on
//! the UI nor on the seat; they reach it through a [`broker::Prompter`]
//! they implement and a [`broker::SessionControl`] they hold. [`modes`]
//! wires each way of running; `scripts/module-graph.py` checks that no
//! module depends on itself through others.

pub mod audit;
pub mod broker;
pub mod cli;
pub mod connect;
pub mod control;
pub mod engine;
pub mod gate;
#[cfg(unix)]
pub mod launch;
pub mod listener;
pub mod login_screen;
pub mod modes;
pub mod mutter;
pub mod platform;
pub mod policy;
pub mod preflight;
pub mod protocol;
pub mod rfb;
pub mod screen;
pub mod seat;
pub mod session;
pub mod tls;
#[cfg(feature = "ui")]
pub mod ui;
