//! The kinds of client→server message, named once for the parser, the
//! filter, the verdicts and the audit counters (a leaf module: it depends
//! on nothing else in `rfb`).

/// The kind of a [`ClientMessage`](super::ClientMessage), for policy decisions and audit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MessageKind {
    SetPixelFormat,
    SetEncodings,
    FramebufferUpdateRequest,
    KeyEvent,
    PointerEvent,
    ClientCutText,
    ExtendedClipboard,
    EnableContinuousUpdates,
    ClientFence,
    Xvp,
    SetDesktopSize,
    Gii,
    QemuKeyEvent,
    QemuAudio,
}

impl MessageKind {
    /// Messages that act on the clinician's session as input: held back by
    /// `hold_input`, dropped in view-only, paced and dropped on a decision
    /// by the relay. (gii and xvp are handled apart in view-only: they end
    /// the session.)
    pub fn is_input(self) -> bool {
        matches!(
            self,
            MessageKind::KeyEvent
                | MessageKind::PointerEvent
                | MessageKind::ClientCutText
                | MessageKind::ExtendedClipboard
                | MessageKind::SetDesktopSize
                | MessageKind::QemuKeyEvent
                | MessageKind::QemuAudio
                | MessageKind::Gii
        )
    }

    /// Every kind, in a stable order (the index used by counters).
    pub const ALL: [MessageKind; 14] = [
        MessageKind::SetPixelFormat,
        MessageKind::SetEncodings,
        MessageKind::FramebufferUpdateRequest,
        MessageKind::KeyEvent,
        MessageKind::PointerEvent,
        MessageKind::ClientCutText,
        MessageKind::ExtendedClipboard,
        MessageKind::EnableContinuousUpdates,
        MessageKind::ClientFence,
        MessageKind::Xvp,
        MessageKind::SetDesktopSize,
        MessageKind::Gii,
        MessageKind::QemuKeyEvent,
        MessageKind::QemuAudio,
    ];

    /// Stable name for logs and the audit trail.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::SetPixelFormat => "SetPixelFormat",
            MessageKind::SetEncodings => "SetEncodings",
            MessageKind::FramebufferUpdateRequest => "FramebufferUpdateRequest",
            MessageKind::KeyEvent => "KeyEvent",
            MessageKind::PointerEvent => "PointerEvent",
            MessageKind::ClientCutText => "ClientCutText",
            MessageKind::ExtendedClipboard => "ExtendedClipboard",
            MessageKind::EnableContinuousUpdates => "EnableContinuousUpdates",
            MessageKind::ClientFence => "ClientFence",
            MessageKind::Xvp => "xvp",
            MessageKind::SetDesktopSize => "SetDesktopSize",
            MessageKind::Gii => "gii",
            MessageKind::QemuKeyEvent => "QemuExtendedKeyEvent",
            MessageKind::QemuAudio => "QemuAudio",
        }
    }

    /// RFB message-type byte of this kind.
    pub fn type_byte(self) -> u8 {
        match self {
            MessageKind::SetPixelFormat => 0,
            MessageKind::SetEncodings => 2,
            MessageKind::FramebufferUpdateRequest => 3,
            MessageKind::KeyEvent => 4,
            MessageKind::PointerEvent => 5,
            MessageKind::ClientCutText | MessageKind::ExtendedClipboard => 6,
            MessageKind::EnableContinuousUpdates => 150,
            MessageKind::ClientFence => 248,
            MessageKind::Xvp => 250,
            MessageKind::SetDesktopSize => 251,
            MessageKind::Gii => 253,
            MessageKind::QemuKeyEvent | MessageKind::QemuAudio => 255,
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for MessageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
