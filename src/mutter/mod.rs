//! GNOME Mutter's remote-desktop API on the session bus, as Accord's own
//! screen server uses it on GNOME Wayland sessions (docs/wayland.md): frames
//! from a ScreenCast PipeWire stream, the technician's input through a
//! RemoteDesktop session that exists in control only.
//!
//! - [`input`]: RFB pointer and key events → Mutter's `Notify*` calls
//!   (sans-IO).
//! - `session`: the D-Bus side, [`session::MutterSession`] (feature
//!   `mutter`).

pub mod input;
#[cfg(feature = "mutter")]
mod proxy;
#[cfg(feature = "mutter")]
pub mod session;
