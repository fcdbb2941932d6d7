//! `accord ui-window`: the window process. It draws the prompt, the banners
//! and the history for the UI process that started it ([`super::host`]),
//! fed over stdin, answering over stdout ([`super::proto`]), and exits
//! when told there is nothing left to show or when stdin closes (its parent
//! is gone: nobody could receive an answer).
//!
//! The windows are one code for both processes ([`super::run`]):
//! the keyboard gate, the arming delay and the banner keeper do not know
//! which process they run in.

use super::proto::{FromWindow, MAX_LINE, ProtoError, ToWindow, encode, parse};
use super::run::{self, WindowError, WindowEvents, WindowsConfig};
use crate::seat::proto::WireAnswer;
use crate::ui::banner::SessionActions;
use crate::ui::hub::Hub;
use crate::ui::strings::{Lang, Strings, StringsError};
use std::io::{BufRead, Write};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::oneshot;

/// The parent's end: one line per message, flushed at once (a buffered
/// answer would be an answer never given).
#[derive(Clone)]
struct Parent(Arc<Mutex<std::io::Stdout>>);

impl Parent {
    fn send(&self, m: &FromWindow) {
        let line = encode(m);
        let mut out = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if out.write_all(&line).and_then(|()| out.flush()).is_err() {
            // The parent is gone; stdin closes too and the windows quit.
            tracing::debug!("window process: the parent stopped reading");
        }
    }
}

impl SessionActions for Parent {
    fn end(&self) {
        self.send(&FromWindow::End {});
    }
    fn set_view_only(&self) {
        self.send(&FromWindow::ViewOnly {});
    }
    fn pause(&self, on: bool) {
        self.send(&FromWindow::Pause { on });
    }
}

impl WindowEvents for Parent {
    fn prompt_shown(&self, id: uuid::Uuid, us: u64) {
        self.send(&FromWindow::Shown { id, us });
    }
    fn history_closed(&self) {
        self.send(&FromWindow::HistoryClosed {});
    }
}

/// Why the window process stops in error: its parent fails closed.
#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("{0}")]
    Strings(#[from] StringsError),
    /// A thread (the parent's reader, a prompt's answer) could not start.
    #[error("{0}")]
    Thread(#[source] std::io::Error),
    #[error("the window thread panicked")]
    Panicked,
    #[error("{0}")]
    Window(#[from] WindowError),
    #[error("a line longer than {MAX_LINE} bytes or cut short")]
    LineTooLong,
    #[error("{0}")]
    Stdin(#[source] std::io::Error),
    /// A line the parent should never send: the versions differ, or it lies.
    #[error("{0}")]
    BadLine(#[from] ProtoError),
}

/// Runs the window process until its parent says quit or goes away.
/// `Err` when no window could be opened (the parent fails closed).
pub fn run(lang: Lang, shortcut: String) -> Result<(), ChildError> {
    let strings = Arc::new(Strings::load(lang)?);
    let hub = Hub::new();
    let parent = Parent(Arc::new(Mutex::new(std::io::stdout())));
    {
        let (hub, parent) = (hub.clone(), parent.clone());
        std::thread::Builder::new()
            .name("accord-window-in".into())
            .spawn(move || {
                let why = read_parent(&hub, &parent, std::io::stdin().lock());
                if let Err(e) = why {
                    tracing::error!("window process: {e}");
                }
                hub.quit();
            })
            .map_err(ChildError::Thread)?;
    }
    let cfg = WindowsConfig {
        strings,
        actions: Arc::new(parent.clone()),
        shortcut,
        events: Some(Arc::new(parent)),
    };
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run::run(&hub, &cfg))) {
        Ok(r) => r.map_err(ChildError::from),
        Err(_) => Err(ChildError::Panicked),
    }
}

/// Applies the parent's lines to the hub until `quit` or end of input.
fn read_parent(hub: &Arc<Hub>, parent: &Parent, input: impl BufRead) -> Result<(), ChildError> {
    let mut input = input.take(0);
    let mut line = Vec::new();
    loop {
        line.clear();
        input.set_limit(u64::try_from(MAX_LINE).unwrap_or(u64::MAX));
        match input.read_until(b'\n', &mut line) {
            Ok(0) => return Ok(()),
            Ok(_) if !line.ends_with(b"\n") => return Err(ChildError::LineTooLong),
            Ok(_) => {}
            Err(e) => return Err(ChildError::Stdin(e)),
        }
        let msg = parse::<ToWindow>(&line)?;
        let now = Instant::now();
        match msg {
            ToWindow::Ask(a) => {
                let req = a.to_request(now)?;
                let id = req.id;
                let (tx, rx) = oneshot::channel();
                if hub.post(req, tx).is_err() {
                    return Ok(());
                }
                let parent = parent.clone();
                // One short thread per prompt, waiting for its answer; a
                // withdrawn prompt drops the sender and the thread ends.
                std::thread::Builder::new()
                    .name("accord-window-answer".into())
                    .spawn(move || {
                        if let Ok(answer) = rx.blocking_recv() {
                            parent.send(&FromWindow::Answer {
                                id,
                                answer: WireAnswer::from(answer),
                            });
                        }
                    })
                    .map_err(ChildError::Thread)?;
            }
            ToWindow::Withdraw { id } => hub.withdraw(id),
            ToWindow::Session { session } => {
                let info = session.map(|s| s.to_info(now)).transpose()?;
                hub.set_session(info);
            }
            ToWindow::History { lines } => {
                hub.show_history(lines);
            }
            ToWindow::Quit {} => return Ok(()),
        }
    }
}
