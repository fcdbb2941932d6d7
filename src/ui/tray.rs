//! The tray icon (O7: the clinician can always see whether someone is
//! connected, and has a third way to end it).
//!
//! Three icons (idle, asking, in session) from `assets/icons`, a tooltip, and
//! a menu: status line, "Terminer la session" and "Masquer mon écran" /
//! "Reprendre" (enabled only in session, worded as the banner's button),
//! "Historique", "Quitter" (ends any session first). On Linux it is a
//! StatusNotifierItem over D-Bus (`ksni`, no GTK). Nothing depends on it: the
//! prompt and the banner work without a tray host, so a missing host or bus
//! is said once in the log and the agent carries on.
//!
//! The tray lives on its own thread (its menu items are not `Send`) and
//! sleeps on the core's state watch: no polling.

use super::banner::SessionActions;
use super::strings::{Strings, fill};
use crate::broker::{Activity, AgentState, Listening};
use std::sync::Arc;
use tokio::sync::{Notify, watch};
use tray_icon::menu::{Menu, MenuEvent, MenuItem, PredefinedMenuItem};
use tray_icon::{Icon, TrayIcon, TrayIconBuilder};

const IDLE_PNG: &[u8] = include_bytes!("../../assets/icons/tray-idle.png");
const ASKING_PNG: &[u8] = include_bytes!("../../assets/icons/tray-asking.png");
const SESSION_PNG: &[u8] = include_bytes!("../../assets/icons/tray-session.png");

/// Which icon and tooltip the state calls for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrayLook {
    Idle,
    Asking,
    InSession,
}

impl TrayLook {
    pub fn of(s: &AgentState) -> TrayLook {
        match s.activity {
            Activity::Idle => TrayLook::Idle,
            Activity::Asking(_) => TrayLook::Asking,
            Activity::InSession(_) => TrayLook::InSession,
        }
    }
}

/// The tooltip and menu status line for a state.
pub fn status_line(s: &AgentState, strings: &Strings) -> String {
    let t = &strings.tray;
    if let Some(why) = &s.blocked {
        return fill(&t.tooltip_blocked, &[("why", why)]);
    }
    match &s.activity {
        Activity::InSession(info) => fill(
            &t.tooltip_session,
            &[
                ("name", info.technician.display_name()),
                (
                    "mode",
                    if info.paused {
                        &strings.banner.mode_paused
                    } else {
                        strings.mode(info.mode)
                    },
                ),
            ],
        ),
        Activity::Asking(_) => t.tooltip_asking.clone(),
        Activity::Idle => match &s.listening {
            Listening::Off(why) => fill(&t.tooltip_not_listening, &[("why", why)]),
            _ => t.tooltip_idle.clone(),
        },
    }
}

/// What the hide/resume item does in a state: `Some(true)` hides her
/// screen, `Some(false)` shows it again, `None` (no session here) nothing.
/// Read from the core's state at the click, like its label, so the item
/// never does the opposite of what it says.
pub fn pause_item(s: &AgentState) -> Option<bool> {
    match &s.activity {
        Activity::InSession(info) => Some(!info.paused),
        _ => None,
    }
}

/// Why an embedded icon could not be decoded (the tray then goes without it).
#[derive(Debug, thiserror::Error)]
pub enum IconError {
    #[error("{0}")]
    Decode(#[from] png::DecodingError),
    #[error("image too large")]
    TooLarge,
    /// Not 8-bit RGBA after expansion: the tray would read it wrong.
    #[error("unexpected PNG format {color:?}")]
    Format {
        color: png::ColorType,
        depth: png::BitDepth,
    },
}

/// Decodes an embedded PNG into the RGBA the tray wants.
pub fn decode_png(bytes: &[u8]) -> Result<(Vec<u8>, u32, u32), IconError> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(bytes));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::ALPHA);
    let mut reader = dec.read_info()?;
    let size = reader.output_buffer_size().ok_or(IconError::TooLarge)?;
    let mut buf = vec![0; size];
    let info = reader.next_frame(&mut buf)?;
    buf.truncate(info.buffer_size());
    if info.color_type != png::ColorType::Rgba || info.bit_depth != png::BitDepth::Eight {
        return Err(IconError::Format {
            color: info.color_type,
            depth: info.bit_depth,
        });
    }
    Ok((buf, info.width, info.height))
}

fn icon(bytes: &[u8]) -> Option<Icon> {
    let (rgba, w, h) = decode_png(bytes).ok()?;
    Icon::from_rgba(rgba, w, h).ok()
}

struct Tray {
    icon: TrayIcon,
    status: MenuItem,
    end: MenuItem,
    pause: MenuItem,
    icons: [Option<Icon>; 3],
    look: Option<TrayLook>,
}

/// Fetches the clinician's history and opens its window when it arrives
/// (from the log, or from the service).
pub type HistoryFetch = Arc<dyn Fn() + Send + Sync>;

/// Starts the tray thread. Menu actions: end the session, hide or show her
/// screen, open the history, quit (`quit` is notified after the session is ended).
pub fn spawn(
    rt: tokio::runtime::Handle,
    state: watch::Receiver<AgentState>,
    control: Arc<dyn SessionActions>,
    history: HistoryFetch,
    strings: Arc<Strings>,
    quit: Arc<Notify>,
) {
    let spawned = std::thread::Builder::new()
        .name("accord-tray".into())
        .spawn(move || run(rt, state, control, history, strings, quit));
    if let Err(e) = spawned {
        tracing::warn!("no tray icon (cannot start its thread: {e}); prompt and banner still work");
    }
}

fn run(
    rt: tokio::runtime::Handle,
    mut state: watch::Receiver<AgentState>,
    control: Arc<dyn SessionActions>,
    history_fetch: HistoryFetch,
    strings: Arc<Strings>,
    quit: Arc<Notify>,
) {
    let t = &strings.tray;
    let status = MenuItem::new(t.tooltip_idle.as_str(), false, None);
    let end = MenuItem::new(t.end_session.as_str(), false, None);
    let pause = MenuItem::new(strings.banner.pause.as_str(), false, None);
    let history = MenuItem::new(t.history.as_str(), true, None);
    let quit_item = MenuItem::new(t.quit.as_str(), true, None);
    let menu = Menu::new();
    let appended = menu.append_items(&[
        &status,
        &PredefinedMenuItem::separator(),
        &end,
        &pause,
        &history,
        &PredefinedMenuItem::separator(),
        &quit_item,
    ]);
    if let Err(e) = appended {
        tracing::warn!("tray menu: {e}");
    }
    let (end_id, pause_id, history_id, quit_id) = (
        end.id().clone(),
        pause.id().clone(),
        history.id().clone(),
        quit_item.id().clone(),
    );
    let at_click = state.clone();
    MenuEvent::set_event_handler(Some(move |ev: MenuEvent| {
        if ev.id == end_id {
            control.end();
        } else if ev.id == pause_id {
            let on = pause_item(&at_click.borrow());
            if let Some(on) = on {
                control.pause(on);
            }
        } else if ev.id == history_id {
            history_fetch();
        } else if ev.id == quit_id {
            // "Quitter" ends any session first, then stops the agent.
            control.end();
            quit.notify_one();
        }
    }));
    let icons = [icon(IDLE_PNG), icon(ASKING_PNG), icon(SESSION_PNG)];
    let mut builder = TrayIconBuilder::new()
        .with_id("accord")
        .with_title("Accord")
        .with_tooltip(t.tooltip_idle.as_str())
        .with_menu(Box::new(menu));
    if let Some(i) = icons[0].clone() {
        builder = builder.with_icon(i);
    }
    let icon = match builder.build() {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!("no tray icon ({e}); prompt and banner still work");
            return;
        }
    };
    let mut tray = Tray {
        icon,
        status,
        end,
        pause,
        icons,
        look: None,
    };
    loop {
        let current = state.borrow_and_update().clone();
        tray.show(&current, &strings);
        if rt.block_on(state.changed()).is_err() {
            break;
        }
    }
}

impl Tray {
    fn show(&mut self, s: &AgentState, strings: &Strings) {
        let look = TrayLook::of(s);
        let line = status_line(s, strings);
        self.status.set_text(&line);
        self.end.set_enabled(look == TrayLook::InSession);
        let pause = pause_item(s);
        self.pause.set_enabled(pause.is_some());
        let b = &strings.banner;
        self.pause.set_text(if pause == Some(false) {
            &b.resume
        } else {
            &b.pause
        });
        if let Err(e) = self.icon.set_tooltip(Some(&line)) {
            tracing::debug!("tray tooltip: {e}");
        }
        if self.look != Some(look) {
            self.look = Some(look);
            let i = match look {
                TrayLook::Idle => 0,
                TrayLook::Asking => 1,
                TrayLook::InSession => 2,
            };
            if let Err(e) = self.icon.set_icon(self.icons[i].clone()) {
                tracing::debug!("tray icon: {e}");
            }
        }
    }
}
