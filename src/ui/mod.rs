//! What the clinician sees (O6, O7, O8): the authorization prompt, the
//! session banner with its kill switch, the tray icon, the notifications and
//! the global kill shortcut, in French or English.
//!
//! The UI reaches the core only through the [`broker::Prompter`] it
//! implements ([`hub::UiPrompter`]) and the [`broker::SessionControl`] it
//! holds; the core never imports this module. Everything fails closed: a UI
//! that cannot show a window, or whose thread dies, refuses every request
//! and ends the running session (`ui_lost`).
//!
//! X11 only on Linux (eframe's `x11` feature): Wayland offers neither
//! always-on-top nor positioning, which the prompt and banner need; under a
//! Wayland session the agent runs through XWayland (`DISPLAY`).
//!
//! [`broker::Prompter`]: crate::broker::Prompter
//! [`broker::SessionControl`]: crate::broker::SessionControl

pub mod agent;
pub mod banner;
#[cfg(unix)]
pub mod helper;
pub mod history;
pub mod hotkey;
pub mod hub;
pub mod keygate;
pub mod look;
pub mod notify;
pub mod prompt;
pub mod stay;
pub mod strings;
pub mod tray;
pub mod window;
pub mod x11;

pub use agent::run_agent;
pub use banner::{BannerAction, BannerState, SessionActions, banner_ui};
#[cfg(unix)]
pub use helper::run_helper;
pub use hub::{DeadOnDrop, Hub, UiPrompter};
pub use prompt::{PromptState, prompt_ui};
pub use strings::{Lang, Strings};
