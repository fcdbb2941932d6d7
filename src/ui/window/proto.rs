//! The line protocol between a UI process (`accord agent`, `accord ui`) and
//! the short-lived window process it starts (`accord ui-window`, see
//! [`super::host`]). Sans-IO; same framing as the helper protocol
//! (`{"v":1,"<kind>":{…}}`, one message per line, unknown fields refused),
//! and the same wire forms for prompts and sessions.
//!
//! Both ends are the same binary run by the same user, so this is not a
//! trust boundary; it is still parsed strictly, because a line that does
//! not parse means the two ends disagree and the window process must stop
//! (the parent then fails closed).

use crate::seat::proto::{WireAnswer, WireAsk, WireSession};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use crate::seat::proto::{MAX_LINE, ProtoError, encode, parse};

/// What the UI process tells its window process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ToWindow {
    /// A prompt to show (the first one asked is shown; the others wait).
    Ask(WireAsk),
    /// The prompt is over without an answer from here: close it.
    Withdraw { id: Uuid },
    /// The session whose banner to show, or none.
    Session { session: Option<WireSession> },
    /// Open (or bring back) the history with these lines, newest first.
    History { lines: Vec<String> },
    /// Nothing left to show: close every window and exit.
    Quit {},
}

/// What the window process tells the UI process.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum FromWindow {
    /// The first frame of prompt `id` was painted, `us` microseconds after
    /// the request reached the broker.
    Shown { id: Uuid, us: u64 },
    /// The clinician's answer (a closed prompt window is `refused`).
    Answer { id: Uuid, answer: WireAnswer },
    /// "Terminer" on a banner.
    End {},
    /// "Passer en affichage seul" on a banner.
    ViewOnly {},
    /// "Masquer mon écran" (`on`) or "Reprendre" on a banner.
    Pause { on: bool },
    /// The clinician closed the history.
    HistoryClosed {},
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_unknown_kinds_are_refused() {
        let id = Uuid::new_v4();
        for m in [
            FromWindow::Shown { id, us: 12 },
            FromWindow::Answer {
                id,
                answer: WireAnswer::View,
            },
            FromWindow::End {},
            FromWindow::ViewOnly {},
            FromWindow::Pause { on: true },
            FromWindow::Pause { on: false },
            FromWindow::HistoryClosed {},
        ] {
            let line = encode(&m);
            assert_eq!(parse::<FromWindow>(&line), Ok(m));
        }
        for m in [
            ToWindow::Withdraw { id },
            ToWindow::Session { session: None },
            ToWindow::History {
                lines: vec!["14 h 02 — refusé".into()],
            },
            ToWindow::Quit {},
        ] {
            let line = encode(&m);
            assert_eq!(parse::<ToWindow>(&line), Ok(m));
        }
        assert!(parse::<FromWindow>(br#"{"v":1,"answer":{"id":"x","answer":"control"}}"#).is_err());
        assert!(parse::<FromWindow>(br#"{"v":1,"grant":{}}"#).is_err());
        // A pause says which way, and nothing else.
        assert!(parse::<FromWindow>(br#"{"v":1,"pause":{}}"#).is_err());
        assert!(parse::<FromWindow>(br#"{"v":1,"pause":{"on":"yes"}}"#).is_err());
        assert!(parse::<FromWindow>(br#"{"v":1,"pause":{"on":true,"for_s":60}}"#).is_err());
        assert!(parse::<ToWindow>(br#"{"v":1,"quit":{"now":true}}"#).is_err());
        assert!(parse::<ToWindow>(br#"{"v":2,"quit":{}}"#).is_err());
    }
}
