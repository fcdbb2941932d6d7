//! `accord ui`: the service's helper in one graphical session: it shows
//! the service's prompts and banner, and starts the screen server there
//! once she has accepted.

use super::StartError;
use crate::policy::Policy;

#[cfg(all(unix, feature = "ui"))]
pub fn run(policy: Policy) -> Result<(), StartError> {
    crate::ui::run_helper(policy, crate::platform::service_ui_path())
}

/// Without the UI there is nothing to show.
#[cfg(not(all(unix, feature = "ui")))]
pub fn run(_policy: Policy) -> Result<(), StartError> {
    Err(StartError::Other(
        "accord ui needs the `ui` feature on a Unix desktop".into(),
    ))
}
