//! `accord agent` with its UI: the core on a tokio runtime in a background
//! thread, the windows on the main thread (winit wants the main thread), the
//! tray on its own thread, notifications and the state watcher as tasks.
//!
//! Start-up order follows "fail closed": the hub exists before the core, so
//! a display that is missing is known (and every request refused) before the
//! listener accepts anything.

use super::banner::SessionActions;
use super::hub::{DeadOnDrop, Hub, UiPrompter};
use super::strings::Strings;
use super::window::host::{self, HostConfig};
use super::{history, hotkey, notify, tray};
use crate::broker::{Activity, AgentState, Journal, SessionControl};
use crate::engine::StartError;
use crate::policy::Policy;
use std::sync::Arc;
use tokio::sync::{Notify, watch};

/// "Historique" of `accord agent`: its own log is hers (it runs as her), so
/// every decision in it is listed. Read off the runtime's workers.
fn log_history(
    rt: tokio::runtime::Handle,
    log: std::path::PathBuf,
    hub: Arc<Hub>,
    strings: Arc<Strings>,
) -> tray::HistoryFetch {
    Arc::new(move || {
        let (log, hub, strings) = (log.clone(), hub.clone(), strings.clone());
        rt.spawn_blocking(move || {
            let lines = match crate::audit::history::read(&log, None, history::MAX_ENTRIES) {
                Ok(entries) => history::lines(&entries, &strings, std::time::SystemTime::now()),
                Err(e) => {
                    tracing::warn!("history: {e}");
                    vec![strings.history.unavailable.clone()]
                }
            };
            hub.show_history(lines);
        });
    })
}

/// Why no window can open here, if that is already known without trying.
pub fn display_missing() -> Option<String> {
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        let set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        // X11 wherever there is a display (only there can a window stay
        // on top); Wayland windows otherwise (GNOME 50 has no XWayland).
        if !set("DISPLAY") && !set("WAYLAND_DISPLAY") {
            return Some("no display (DISPLAY and WAYLAND_DISPLAY unset)".into());
        }
    }
    None
}

/// Copies the session the core reports into the hub (the banner's source).
pub async fn watch_session(mut state: watch::Receiver<AgentState>, hub: Arc<Hub>) {
    loop {
        let session = match &state.borrow_and_update().activity {
            Activity::InSession(info) => Some((**info).clone()),
            _ => None,
        };
        hub.set_session(session);
        if state.changed().await.is_err() {
            break;
        }
    }
}

/// Runs the agent until SIGINT/SIGTERM or "Quitter". Returns an error if the
/// UI was lost (the core kept refusing requests until the end).
pub fn run_agent(policy: Policy, journal: Arc<dyn Journal>) -> Result<(), StartError> {
    let strings = Arc::new(
        Strings::for_policy(policy.ui.language).map_err(|e| StartError::Other(e.to_string()))?,
    );
    let shortcut = policy.ui.kill_shortcut.clone();
    let end_on_lock = policy.session.end_on_screen_lock;
    let audit_log = policy.audit_path();
    let policy = Arc::new(policy);
    let hub = Hub::new();
    if let Some(why) = display_missing() {
        hub.mark_dead(why);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("accord-core")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let handle = rt.handle().clone();
    let quit = Arc::new(Notify::new());
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<SessionControl>();

    let core = {
        let (hub, quit, prompter) = (hub.clone(), quit.clone(), UiPrompter::new(hub.clone()));
        std::thread::Builder::new()
            .name("accord-runtime".into())
            .spawn(move || {
                rt.block_on(crate::engine::serve(
                    policy,
                    journal,
                    prompter,
                    crate::engine::agent_control(),
                    move |ctl| {
                        let _ = ready_tx.send(ctl);
                    },
                    async move {
                        tokio::select! {
                            _ = crate::engine::termination_signal() => {}
                            _ = quit.notified() => {}
                        }
                    },
                ));
                // Every session has ended and been recorded: windows close.
                hub.quit();
                rt.shutdown_timeout(std::time::Duration::from_secs(2));
            })
            .map_err(|e| StartError::Other(format!("cannot start the core thread: {e}")))?
    };

    let Ok(control) = ready_rx.recv() else {
        let _ = core.join();
        return Err(StartError::Other(
            "the core stopped before it was ready".into(),
        ));
    };
    handle.spawn(watch_session(control.state(), hub.clone()));
    if end_on_lock {
        handle.spawn(end_on_lock_of_this_session(control.clone()));
    }
    handle.spawn(notify::run(control.notices(), strings.clone()));
    let actions: Arc<dyn SessionActions> = Arc::new(control.clone());
    tray::spawn(
        handle.clone(),
        control.state(),
        actions.clone(),
        log_history(handle.clone(), audit_log, hub.clone(), strings.clone()),
        strings.clone(),
        quit.clone(),
    );
    let lost = run_windows(&hub, &shortcut, strings, actions);
    if let Some(why) = &lost {
        tracing::error!(
            "no user interface ({why}): every request is refused and no session can run; stop the agent with SIGTERM"
        );
    }
    let _ = core.join();
    match lost {
        Some(why) => Err(StartError::Other(format!(
            "the user interface was lost: {why}"
        ))),
        None => Ok(()),
    }
}

/// O7 in `accord agent`: the session ends when this session's screen saver
/// (org.freedesktop.ScreenSaver on the session bus) becomes active.
async fn end_on_lock_of_this_session(control: SessionControl) {
    #[cfg(feature = "logind")]
    match crate::seat::screensaver::watch().await {
        Ok(mut rx) => loop {
            if *rx.borrow_and_update() {
                control.end_with(crate::broker::EndReason::ScreenLocked);
            }
            if rx.changed().await.is_err() {
                return;
            }
        },
        Err(e) => {
            tracing::info!("no screen saver to watch ({e}): a locked screen does not end sessions")
        }
    }
    #[cfg(not(feature = "logind"))]
    {
        let _ = control;
        tracing::info!("built without D-Bus: a locked screen does not end sessions");
    }
}

/// Runs the windows on this (the main) thread until the hub quits, with
/// the kill shortcuts registered. Returns why the UI was lost, if it was.
pub fn run_windows(
    hub: &Arc<Hub>,
    shortcut: &str,
    strings: Arc<Strings>,
    actions: Arc<dyn SessionActions>,
) -> Option<String> {
    if let Some(dead) = hub.lock().dead.clone() {
        return Some(dead);
    }
    let keys = hotkey::shortcuts(shortcut);
    let registered = match hotkey::register(&keys, actions.clone()) {
        Ok((k, failed)) => {
            for e in failed {
                tracing::warn!("{e}");
            }
            Some(k)
        }
        Err(e) => {
            tracing::warn!("{e}; \"Terminer\" on the banner and the tray still end the session");
            None
        }
    };
    // The banner names only shortcuts that work.
    let shown = match &registered {
        Some(_) => hotkey::display(&keys, &strings.banner.end_key, &strings.banner.or),
        None => String::new(),
    };
    let cfg = HostConfig {
        program: None,
        lang: strings.lang,
        shortcut: shown,
        actions,
    };
    let ui_result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        // Marks the UI dead if this thread unwinds (panic) or the window
        // loop fails.
        let mut guard = DeadOnDrop {
            hub: hub.clone(),
            armed: true,
        };
        let r = host::run(hub, &cfg);
        guard.armed = false;
        r
    }));
    match ui_result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => hub.mark_dead(format!("no window can be shown: {e}")),
        Err(_) => hub.mark_dead("the user interface thread panicked"),
    }
    hub.lock().dead.clone()
}
