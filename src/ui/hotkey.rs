//! The global kill shortcuts (O8): a second way to end the session with one
//! action, reachable even while the technician holds the pointer.
//! `[ui].kill_shortcut` (default `Ctrl+Alt+Pause`) and, because many laptop
//! keyboards have no Pause key, [`SECOND`] (`Ctrl+Alt+End`) as well. Both are
//! printed on the banner.
//!
//! A shortcut that cannot be parsed or grabbed (another program holds it, no
//! X display) is said in the log; the banner's "Terminer" and the tray still
//! end the session.

use super::banner::SessionActions;
use global_hotkey::hotkey::{HotKey, HotKeyParseError};
use global_hotkey::{GlobalHotKeyEvent, GlobalHotKeyManager, HotKeyState};
use std::str::FromStr;
use std::sync::Arc;

/// The shortcut every keyboard has, registered besides the policy's.
pub const SECOND: &str = "Ctrl+Alt+End";

/// The shortcuts to register: the policy's, then [`SECOND`] unless the
/// policy already names it.
pub fn shortcuts(policy: &str) -> Vec<String> {
    let mut v = vec![policy.to_string()];
    if !policy.eq_ignore_ascii_case(SECOND) {
        v.push(SECOND.to_string());
    }
    v
}

/// The shortcuts as the clinician reads them on her keyboard: `End` is
/// `Fin` on French keyboards.
pub fn display(shortcuts: &[String], end_key: &str, or: &str) -> String {
    shortcuts
        .iter()
        .map(|s| {
            s.split('+')
                .map(|k| {
                    if k.eq_ignore_ascii_case("End") {
                        end_key
                    } else {
                        k
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect::<Vec<_>>()
        .join(or)
}

/// Keeps the shortcuts registered while alive.
pub struct KillShortcut {
    _manager: GlobalHotKeyManager,
}

/// Why a kill shortcut does not work. Said in the log and by `accord
/// policy check`; the banner's "Terminer" and the tray still end the
/// session.
#[derive(Debug, thiserror::Error)]
pub enum ShortcutError {
    #[error("kill shortcut {shortcut:?}: {source}")]
    Parse {
        shortcut: String,
        #[source]
        source: HotKeyParseError,
    },
    /// global-hotkey grabs keys on X11 only.
    #[error("global shortcuts need X11 (DISPLAY unset, Wayland alone)")]
    NoX11,
    #[error("global shortcuts: {0}")]
    Manager(#[source] global_hotkey::Error),
    /// Another program holds it, most often.
    #[error("kill shortcut {shortcut:?}: {source}")]
    Register {
        shortcut: String,
        #[source]
        source: global_hotkey::Error,
    },
    /// Every shortcut failed, each for its own reason.
    #[error("{}", joined(.0))]
    NoneRegistered(Vec<ShortcutError>),
}

fn joined(errors: &[ShortcutError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Parses a shortcut the way the policy writes it (`Ctrl+Alt+Pause`).
pub fn parse(shortcut: &str) -> Result<HotKey, ShortcutError> {
    HotKey::from_str(shortcut).map_err(|source| ShortcutError::Parse {
        shortcut: shortcut.to_string(),
        source,
    })
}

/// Registers the shortcuts; pressing one ends the session. Those that
/// cannot be registered are returned with why; `Err` only if none could.
pub fn register(
    shortcuts: &[String],
    control: Arc<dyn SessionActions>,
) -> Result<(KillShortcut, Vec<ShortcutError>), ShortcutError> {
    // global-hotkey grabs keys on X11; without an X display its thread ends
    // and every registration still reports success.
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty()) {
        return Err(ShortcutError::NoX11);
    }
    let manager = GlobalHotKeyManager::new().map_err(ShortcutError::Manager)?;
    let mut ids = Vec::new();
    let mut failed = Vec::new();
    for s in shortcuts {
        match parse(s).and_then(|h| {
            manager
                .register(h)
                .map(|()| h.id())
                .map_err(|source| ShortcutError::Register {
                    shortcut: s.clone(),
                    source,
                })
        }) {
            Ok(id) => ids.push(id),
            Err(e) => failed.push(e),
        }
    }
    if ids.is_empty() {
        return Err(ShortcutError::NoneRegistered(failed));
    }
    GlobalHotKeyEvent::set_event_handler(Some(move |ev: GlobalHotKeyEvent| {
        if ids.contains(&ev.id) && ev.state == HotKeyState::Pressed {
            tracing::info!("kill shortcut pressed: ending the session");
            control.end();
        }
    }));
    Ok((KillShortcut { _manager: manager }, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_shortcut_for_keyboards_without_pause() {
        let v = shortcuts("Ctrl+Alt+Pause");
        assert_eq!(v, vec!["Ctrl+Alt+Pause", "Ctrl+Alt+End"]);
        assert_eq!(shortcuts("ctrl+alt+end"), vec!["ctrl+alt+end"]);
        for s in &v {
            parse(s).unwrap();
        }
        assert_eq!(display(&v, "Fin", " ou "), "Ctrl+Alt+Pause ou Ctrl+Alt+Fin");
    }

    /// The log and `accord policy check` name the shortcut that failed, and
    /// every one when none works.
    #[test]
    fn a_failed_shortcut_is_named() {
        let e = parse("Ctrl+Alt+Nope").unwrap_err();
        assert!(matches!(e, ShortcutError::Parse { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("kill shortcut \"Ctrl+Alt+Nope\": "),
            "{e}"
        );
        let none = ShortcutError::NoneRegistered(vec![ShortcutError::NoX11, e]);
        assert!(
            none.to_string()
                .starts_with("global shortcuts need X11 (DISPLAY unset, Wayland alone); kill shortcut \"Ctrl+Alt+Nope\": "),
            "{none}"
        );
    }
}
