//! `accord agent`: the engine with the windows, in the clinician's own
//! graphical session.

use super::StartError;
use crate::policy::Policy;

/// The whole agent, blocking until it stops. The windows run on this (the
/// main) thread, the engine on a runtime thread; see [`crate::ui::agent`].
/// Fails closed: without a display every request is refused and this
/// returns an error once the agent is stopped.
#[cfg(feature = "ui")]
pub fn run(policy: Policy) -> Result<(), StartError> {
    let journal = crate::engine::open_journal(&policy);
    crate::ui::run_agent(policy, journal)
}

/// Without the UI nobody can consent: the agent does not start.
#[cfg(not(feature = "ui"))]
pub fn run(_policy: Policy) -> Result<(), StartError> {
    Err(StartError::Other(
        "built without the `ui` feature: nobody could consent, so the agent does not run".into(),
    ))
}
