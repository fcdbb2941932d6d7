//! Mutter's D-Bus interfaces as Accord calls them (GNOME 43's
//! `org.gnome.Mutter.RemoteDesktop.xml` and `org.gnome.Mutter.ScreenCast.xml`;
//! later versions only add to them). Only the members Accord uses or will
//! use (the clipboard) are declared.

//!
//! One module per bus name: both session interfaces have a `Closed` signal,
//! and the macro names its types after the signal.

pub mod remote_desktop {
    use std::collections::HashMap;

    use zbus::proxy;
    use zbus::zvariant::{OwnedFd, OwnedObjectPath, OwnedValue, Value};

    #[proxy(
        interface = "org.gnome.Mutter.RemoteDesktop",
        default_service = "org.gnome.Mutter.RemoteDesktop",
        default_path = "/org/gnome/Mutter/RemoteDesktop",
        gen_blocking = false
    )]
    pub trait RemoteDesktop {
        fn create_session(&self) -> zbus::Result<OwnedObjectPath>;
    }

    #[proxy(
        interface = "org.gnome.Mutter.RemoteDesktop.Session",
        default_service = "org.gnome.Mutter.RemoteDesktop",
        gen_blocking = false
    )]
    pub trait RemoteDesktopSession {
        /// What `ScreenCast.CreateSession` takes to tie a screen cast to this
        /// session (its `remote-desktop-session-id`).
        #[zbus(property)]
        fn session_id(&self) -> zbus::Result<String>;

        /// Starts the tied screen cast too.
        fn start(&self) -> zbus::Result<()>;

        /// Closes the tied screen cast too. Mutter refuses it before `Start`.
        fn stop(&self) -> zbus::Result<()>;

        #[zbus(signal)]
        fn closed(&self) -> zbus::Result<()>;

        fn notify_keyboard_keysym(&self, keysym: u32, state: bool) -> zbus::Result<()>;

        fn notify_pointer_button(&self, button: i32, state: bool) -> zbus::Result<()>;

        fn notify_pointer_axis_discrete(&self, axis: u32, steps: i32) -> zbus::Result<()>;

        /// `stream` is the path of a stream of the tied screen cast; `x`, `y`
        /// are in that stream's pixels.
        fn notify_pointer_motion_absolute(&self, stream: &str, x: f64, y: f64) -> zbus::Result<()>;

        fn enable_clipboard(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<()>;

        fn disable_clipboard(&self) -> zbus::Result<()>;

        fn set_selection(&self, options: HashMap<&str, Value<'_>>) -> zbus::Result<()>;

        /// The session's clipboard content of `mime_type`, read from the fd.
        fn selection_read(&self, mime_type: &str) -> zbus::Result<OwnedFd>;

        /// Answer to `SelectionTransfer`: where to write the technician's data.
        fn selection_write(&self, serial: u32) -> zbus::Result<OwnedFd>;

        fn selection_write_done(&self, serial: u32, success: bool) -> zbus::Result<()>;

        #[zbus(signal)]
        fn selection_owner_changed(&self, options: HashMap<String, OwnedValue>)
        -> zbus::Result<()>;

        #[zbus(signal)]
        fn selection_transfer(&self, mime_type: String, serial: u32) -> zbus::Result<()>;
    }
}

pub mod screen_cast {
    use std::collections::HashMap;

    use zbus::proxy;
    use zbus::zvariant::{OwnedObjectPath, Value};

    #[proxy(
        interface = "org.gnome.Mutter.ScreenCast",
        default_service = "org.gnome.Mutter.ScreenCast",
        default_path = "/org/gnome/Mutter/ScreenCast",
        gen_blocking = false
    )]
    pub trait ScreenCast {
        /// `remote-desktop-session-id` in `properties` ties the new session to
        /// a RemoteDesktop session, for good: there is no later way to do it.
        fn create_session(
            &self,
            properties: HashMap<&str, Value<'_>>,
        ) -> zbus::Result<OwnedObjectPath>;
    }

    #[proxy(
        interface = "org.gnome.Mutter.ScreenCast.Session",
        default_service = "org.gnome.Mutter.ScreenCast",
        gen_blocking = false
    )]
    pub trait ScreenCastSession {
        /// Refused for a session tied to a RemoteDesktop session (its `Start`
        /// starts both).
        fn start(&self) -> zbus::Result<()>;

        /// Refused for a session tied to a RemoteDesktop session.
        fn stop(&self) -> zbus::Result<()>;

        #[zbus(signal)]
        fn closed(&self) -> zbus::Result<()>;

        /// `connector` `""` is the primary monitor.
        fn record_monitor(
            &self,
            connector: &str,
            properties: HashMap<&str, Value<'_>>,
        ) -> zbus::Result<OwnedObjectPath>;
    }

    #[proxy(
        interface = "org.gnome.Mutter.ScreenCast.Stream",
        default_service = "org.gnome.Mutter.ScreenCast",
        gen_blocking = false
    )]
    pub trait ScreenCastStream {
        /// Emitted once the session has started: the PipeWire node to read.
        #[zbus(signal, name = "PipeWireStreamAdded")]
        fn pipewire_stream_added(&self, node_id: u32) -> zbus::Result<()>;
    }
}
