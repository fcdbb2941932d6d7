//! Windows in a short-lived child process, so that the resident helper stays light.
//!
//! An OpenGL window maps the GL driver into the process for good (Mesa's
//! llvmpipe and LLVM: ~90 MB resident once one prompt has been shown, and
//! it stays after the window closes). The UI process (`accord agent`,
//! `accord ui`) therefore never opens a window itself: when there is
//! something to show it starts `accord ui-window` (this same binary) and
//! feeds it over a pipe ([`super::proto`]); when nothing has been shown
//! for [`LINGER`] the child is told to quit and its memory goes with it.
//! The UI process keeps the tray, the notifications, the kill shortcut and
//! the hub, and stays small all day.
//!
//! The linger keeps one child from the prompt to the banner of the session
//! it starts (the session starts a few hundred milliseconds after "Autoriser")
//! and across a refusal followed by a new request.
//!
//! Fail closed: a window process that cannot open its window, or
//! that dies while it shows something, makes the hub dead (every prompt
//! refused, the session ended `ui_lost`). One that dies while idle is simply
//! not there any more; the next need starts a new one.
//!
//! One child is started ahead of need and waits for its first line,
//! connected to the display but without window or GL (see [`run`]): a
//! prompt does not wait for a process to start nor for the X connection.

use super::proto::{FromWindow, MAX_LINE, ProtoError, ToWindow, encode, parse};
use super::run::LAST_PROMPT_LATENCY_US;
use crate::broker::SessionInfo;
use crate::seat::proto::{WireAsk, WireSession};
use crate::ui::banner::SessionActions;
use crate::ui::hub::Hub;
use crate::ui::strings::Lang;
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How long an idle window process is kept for the next window.
pub const LINGER: Duration = Duration::from_secs(3);
/// How long a window process may take to quit before it is killed.
const QUIT_GRACE: Duration = Duration::from_secs(2);

/// Why the window processes failed while something was to be shown (or
/// none could be started): the caller marks the UI dead (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[cfg(not(target_os = "linux"))]
    #[error("cannot find the accord binary: {0}")]
    NoBinary(#[source] std::io::Error),
    #[error("cannot start the window process: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("the window process has no pipes")]
    NoPipes,
    /// The thread that reads the window process's answers.
    #[error("{0}")]
    Thread(#[source] std::io::Error),
    /// It does not speak this version's protocol, or lies.
    #[error("the window process sent a bad line: {0}")]
    BadLine(#[source] ProtoError),
    #[error("the window process stopped ({0})")]
    Stopped(ExitStatus),
    /// It stopped, and why could not be read.
    #[error("the window process stopped ({0})")]
    Unwaited(#[source] std::io::Error),
}

/// How to start window processes.
#[derive(Clone)]
pub struct HostConfig {
    /// The `accord` binary (`None`: this process's own executable).
    pub program: Option<PathBuf>,
    pub lang: Lang,
    /// The kill shortcut as the banner prints it.
    pub shortcut: String,
    pub actions: Arc<dyn SessionActions>,
}

/// Runs window processes as the hub needs them, until the core quits.
/// `Err` when a window process fails while it had something to show (the
/// caller marks the UI dead).
///
/// One window process is kept started ahead of need (the spare): it has
/// its display connection, event loop and GL driver ready and waits for its
/// first line, so the next prompt does not pay for exec, start-up, the X
/// connection and the driver's loading (together most of a first window's
/// time, over 100 ms beside a build). It costs ~55 MB RSS, of which ~15 MB
/// private: the rest is the binary's and the driver's code, shared pages.
/// It has no window (a window's GL buffers are what weigh). A spare found
/// dead is replaced, not mourned: nothing was shown.
pub fn run(hub: &Arc<Hub>, cfg: &HostConfig) -> Result<(), HostError> {
    let mut spare = start_spare(hub, cfg);
    loop {
        {
            let g = hub.wait_until(|s| s.over() || s.needs_window());
            if g.over() {
                return Ok(());
            }
        }
        let mut child = match spare.take().filter(|c| c.waiting()) {
            Some(c) => c,
            None => WindowProcess::start(hub, cfg)?,
        };
        let served = child.serve(hub);
        child.finish();
        served?;
        spare = start_spare(hub, cfg);
    }
}

fn start_spare(hub: &Arc<Hub>, cfg: &HostConfig) -> Option<WindowProcess> {
    WindowProcess::start(hub, cfg)
        .map_err(|e| tracing::warn!("no spare window process: {e}"))
        .ok()
}

/// What the reader of the child's stdout saw.
#[derive(Default)]
struct Seen {
    gone: bool,
    history_closed: bool,
    /// Why the child's output was refused, if it was.
    bad: Option<ProtoError>,
}

struct WindowProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    seen: Arc<Mutex<Seen>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

fn program(cfg: &HostConfig) -> Result<PathBuf, HostError> {
    if let Some(p) = &cfg.program {
        return Ok(p.clone());
    }
    // The running binary even if a package upgrade replaced the file: the
    // window process must speak this version's protocol.
    #[cfg(target_os = "linux")]
    return Ok(PathBuf::from("/proc/self/exe"));
    #[cfg(not(target_os = "linux"))]
    std::env::current_exe().map_err(HostError::NoBinary)
}

impl WindowProcess {
    fn start(hub: &Arc<Hub>, cfg: &HostConfig) -> Result<WindowProcess, HostError> {
        let lang = match cfg.lang {
            Lang::Fr => "fr",
            Lang::En => "en",
        };
        let mut child = Command::new(program(cfg)?)
            .args(["ui-window", "--lang", lang, "--shortcut", &cfg.shortcut])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(HostError::Spawn)?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostError::NoPipes);
        };
        tracing::debug!("window process {} started", child.id());
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = {
            let (hub, seen, actions) = (hub.clone(), seen.clone(), cfg.actions.clone());
            std::thread::Builder::new()
                .name("accord-window-out".into())
                .spawn(move || read_child(&hub, &seen, actions.as_ref(), stdout))
                .map_err(HostError::Thread)?
        };
        Ok(WindowProcess {
            child,
            stdin: Some(stdin),
            seen,
            reader: Some(reader),
        })
    }

    /// Still running and silent: fit to be given a window.
    fn waiting(&self) -> bool {
        let gone = self.seen.lock().map_or(true, |s| s.gone || s.bad.is_some());
        // A child that exited closes its stdout: the reader sees `gone`.
        !gone
    }

    fn send(&mut self, m: &ToWindow) -> bool {
        let Some(w) = self.stdin.as_mut() else {
            return false;
        };
        let ok = w.write_all(&encode(m)).and_then(|()| w.flush()).is_ok();
        if !ok {
            self.stdin = None;
        }
        ok
    }

    /// Keeps the child in step with the hub until it is no longer needed
    /// (`Ok`) or fails while needed (`Err`).
    fn serve(&mut self, hub: &Arc<Hub>) -> Result<(), HostError> {
        let mut sent: HashSet<Uuid> = HashSet::new();
        let mut session_sent: Option<Option<SessionInfo>> = None;
        let mut history_open = false;
        let mut idle_since: Option<Instant> = None;
        let mut seen_generation = None;
        loop {
            let (asks, withdrawn, session, history, quit) = {
                let seen = self.seen.clone();
                let g = hub.wait_until_for(Duration::from_millis(500), |s| {
                    Some(s.generation) != seen_generation
                        || s.quit
                        || s.dead.is_some()
                        || seen.lock().is_ok_and(|v| v.gone || v.history_closed)
                });
                let mut g = g;
                seen_generation = Some(g.generation);
                let now = Instant::now();
                let asks: Vec<WireAsk> = g
                    .prompts
                    .iter()
                    .filter(|p| !sent.contains(&p.req.id))
                    .map(|p| WireAsk::from_request(&p.req, now))
                    .collect();
                let withdrawn: Vec<Uuid> = sent
                    .iter()
                    .filter(|id| !g.prompts.iter().any(|p| p.req.id == **id))
                    .copied()
                    .collect();
                let session =
                    (session_sent.as_ref() != Some(&g.session)).then(|| g.session.clone());
                let history = std::mem::take(&mut g.history_requested).then(|| g.history.clone());
                (asks, withdrawn, session, history, g.over())
            };
            let (gone, closed, bad) = {
                let mut s = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                (s.gone, std::mem::take(&mut s.history_closed), s.bad.take())
            };
            if let Some(bad) = bad {
                return Err(HostError::BadLine(bad));
            }
            if quit {
                return Ok(());
            }
            if closed {
                history_open = false;
            }
            for a in asks {
                sent.insert(a.id);
                self.send(&ToWindow::Ask(a));
            }
            for id in withdrawn {
                sent.remove(&id);
                self.send(&ToWindow::Withdraw { id });
            }
            if let Some(s) = session {
                let wire = s.as_ref().map(WireSession::from_info);
                self.send(&ToWindow::Session { session: wire });
                session_sent = Some(s);
            }
            if let Some(lines) = history {
                history_open = true;
                self.send(&ToWindow::History { lines });
            }
            let needed = !sent.is_empty()
                || session_sent.as_ref().is_some_and(Option::is_some)
                || history_open;
            if gone || self.stdin.is_none() {
                let status = self.child.wait();
                if needed {
                    return Err(status.map_or_else(HostError::Unwaited, HostError::Stopped));
                }
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::info!("idle window process stopped ({status})");
                return Ok(());
            }
            if needed {
                idle_since = None;
            } else if idle_since.get_or_insert_with(Instant::now).elapsed() >= LINGER {
                return Ok(());
            }
        }
    }

    /// Tells the child to quit, waits a little, kills it if it lingers.
    fn finish(&mut self) {
        self.send(&ToWindow::Quit {});
        self.stdin = None;
        let deadline = Instant::now() + QUIT_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    tracing::debug!("window process {} ended ({status})", self.child.id());
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    tracing::warn!("window process {} did not quit: killed", self.child.id());
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

impl Drop for WindowProcess {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.finish();
        }
    }
}

/// Applies the child's lines: answers to the hub, banner buttons to the
/// session. Ends at end of output or at the first bad line.
fn read_child(hub: &Hub, seen: &Mutex<Seen>, actions: &dyn SessionActions, out: impl Read) {
    let mut out = BufReader::new(out).take(0);
    let mut line = Vec::new();
    loop {
        line.clear();
        out.set_limit(u64::try_from(MAX_LINE).unwrap_or(u64::MAX));
        let n = out.read_until(b'\n', &mut line);
        let msg = match n {
            Ok(0) | Err(_) => break,
            Ok(_) => parse::<FromWindow>(&line),
        };
        match msg {
            Ok(FromWindow::Shown { id, us }) => {
                // Timed here, on this process's clock: the child's own
                // count (`us`) starts when it read the request, after its
                // start-up, and would hide the cost of a cold start.
                let here = {
                    let g = hub.lock();
                    g.prompts
                        .iter()
                        .find(|p| p.req.id == id)
                        .and_then(|p| p.req.deadline.checked_sub(p.req.timeout))
                        .map(|t| u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX))
                };
                if let Some(here) = here {
                    LAST_PROMPT_LATENCY_US.store(here, Ordering::Relaxed);
                    tracing::info!(
                        "prompt {id} painted {:.1} ms after the request reached the broker \
                         (window process: {:.1} ms after it read the request)",
                        here as f64 / 1000.0,
                        us as f64 / 1000.0
                    );
                }
            }
            Ok(FromWindow::Answer { id, answer }) => {
                hub.answer(id, answer.into());
            }
            Ok(FromWindow::End {}) => actions.end(),
            Ok(FromWindow::ViewOnly {}) => actions.set_view_only(),
            Ok(FromWindow::Pause { on }) => actions.pause(on),
            Ok(FromWindow::HistoryClosed {}) => {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .history_closed = true;
            }
            Err(e) => {
                seen.lock().unwrap_or_else(|p| p.into_inner()).bad = Some(e);
                break;
            }
        }
        hub.wake();
    }
    seen.lock().unwrap_or_else(|p| p.into_inner()).gone = true;
    hub.wake();
}
