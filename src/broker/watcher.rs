//! Watching a running session from the technician's side:
//! `accord connect` learns what ended its session and when the mode
//! changes, which it cannot learn on the session's own connection (raw RFB
//! after `accepted`). Wire: [`crate::protocol`], "Watching a session".
//!
//! A watch grants nothing and shows nothing to the clinician, so it is not
//! a prompt: no busy slot, no rate limit, nothing recorded when admitted.
//! It tells what the technician's own session does, so it is admitted only
//! from the certificate of that running session (the rule of a request for
//! control); a refusal is recorded like any refused request, within the
//! origin's budget. One watcher per session: nobody else can hold a second
//! line open on it. The rules are the consent core's ([`super::consent`]);
//! the connection is served like any other ([`super::conn`]).

use super::EndReason;
use crate::protocol::RefusalCode;

/// How a watch ended, for logs and tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchOutcome {
    Refused(RefusalCode),
    /// The session ended; `None` when its reason could not be found (the
    /// watch then closes without an `ended` line).
    Ended(Option<EndReason>),
    /// The technician closed the watch, sent bytes, or stopped reading.
    Closed,
}
