//! `accord service`: the engine under its own user; the helpers in the
//! graphical sessions ask the clinician ([`crate::seat`]).

use super::StartError;
use crate::policy::Policy;

/// Runs the service until SIGTERM or Ctrl-C.
#[cfg(unix)]
pub fn run(policy: Policy) -> Result<(), StartError> {
    crate::seat::run::run_service(policy)
}

/// The service is Linux-only for now (docs/windows.md).
#[cfg(not(unix))]
pub fn run(_policy: Policy) -> Result<(), StartError> {
    Err(StartError::Other(
        "accord service is not written for this system yet (docs/windows.md)".into(),
    ))
}
