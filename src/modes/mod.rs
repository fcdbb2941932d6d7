//! One file per way of running Accord on a workstation, each wiring the
//! [`crate::engine`] to who asks the clinician, with its stubs for the
//! systems and builds it is not written for:
//!
//! - [`agent`]: `accord agent`, the engine and the windows in one
//!   process of the clinician's session;
//! - [`service`]: `accord service`, the engine under its own user, asking
//!   through the helper in each graphical session;
//! - [`helper`]: `accord ui`, that helper;
//! - [`window`]: `accord ui-window`, the window process of the two above.
//!
//! Each `run` blocks until the mode stops.

pub mod agent;
pub mod helper;
pub mod service;
pub mod window;

pub use crate::engine::StartError;
