//! GNOME Mutter's remote-desktop API on the session bus, as Accord's own
//! screen server uses it on GNOME Wayland sessions (docs/wayland.md): frames
//! from a ScreenCast PipeWire stream, the technician's input through a
//! RemoteDesktop session that exists in control only.
//!
//! - [`input`]: RFB pointer and key events → Mutter's `Notify*` calls
//!   (sans-IO).
//! - [`clipboard`]: cut text between the viewer and the session's
//!   selection, as far as the policy grants (D-Bus part: feature `mutter`,
//!   Linux).
//! - `session`: the D-Bus side, [`session::MutterSession`] (feature
//!   `mutter`).
//! - `frames`: the screen cast's frames from PipeWire (feature `mutter`,
//!   Linux).
//! - `server`: `accord screen-server`, the process that joins them to
//!   Accord's RFB server side (feature `mutter`, Linux).

pub mod clipboard;
#[cfg(all(feature = "mutter", target_os = "linux"))]
pub mod frames;
pub mod input;
#[cfg(feature = "mutter")]
mod proxy;
#[cfg(all(feature = "mutter", target_os = "linux"))]
pub mod server;
#[cfg(feature = "mutter")]
pub mod session;

/// Whether GNOME's Mutter can give this process's Wayland session to
/// Accord's own server: its API on the session bus, and a build with the
/// server in it.
pub async fn available_here() -> bool {
    #[cfg(all(feature = "mutter", target_os = "linux"))]
    {
        session::available().await
    }
    #[cfg(not(all(feature = "mutter", target_os = "linux")))]
    {
        false
    }
}
