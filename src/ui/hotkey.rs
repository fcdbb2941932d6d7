//! The global kill shortcut (O8): a second way to end the session with one
//! action, reachable even while the technician holds the pointer. Default
//! `Ctrl+Alt+Pause`, set by `[ui].kill_shortcut`.
//!
//! A shortcut that cannot be parsed or grabbed (another program holds it, no
//! X display) is said in the log; the banner's "Terminer" and the tray still
//! end the session.

use crate::broker::SessionControl;
use global_hotkey::hotkey::HotKey;
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};
use std::str::FromStr;

/// Keeps the shortcut registered while alive.
pub struct KillShortcut {
    _manager: GlobalHotKeyManager,
}

/// Parses a shortcut the way the policy writes it (`Ctrl+Alt+Pause`).
pub fn parse(shortcut: &str) -> Result<HotKey, String> {
    HotKey::from_str(shortcut).map_err(|e| format!("kill shortcut {shortcut:?}: {e}"))
}

/// Registers the shortcut; pressing it ends the session.
pub fn register(shortcut: &str, control: SessionControl) -> Result<KillShortcut, String> {
    let hotkey = parse(shortcut)?;
    let manager = GlobalHotKeyManager::new().map_err(|e| format!("global shortcuts: {e}"))?;
    manager
        .register(hotkey)
        .map_err(|e| format!("kill shortcut {shortcut:?}: {e}"))?;
    let id = hotkey.id();
    GlobalHotKeyEvent::set_event_handler(Some(move |ev: GlobalHotKeyEvent| {
        if ev.id == id && ev.state == HotKeyState::Pressed {
            tracing::info!("kill shortcut pressed: ending the session");
            control.end();
        }
    }));
    Ok(KillShortcut { _manager: manager })
}
