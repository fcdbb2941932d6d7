//! The RFB (VNC) protocol core: both handshakes, a framer for each
//! direction and the per-session filter, as sans-IO state machines (bytes
//! in, messages, verdicts and bytes out; no sockets, no clock, no async).
//!
//! The rule this module enforces: **view-only that a viewer can bypass is
//! worthless, and so is a clipboard permission the server can ignore.** The
//! technician's viewer is treated as hostile. So Accord terminates the
//! handshake on both legs (the viewer never negotiates with the local
//! server), parses every client→server message with its exact length, and
//! forwards only what it re-serialised from parsed fields, never the raw
//! input bytes. Anything whose length cannot be known (an unknown message
//! type, an unknown sub-type) ends the session: once the filter and the
//! server disagree about where a message ends, the bytes of an innocent
//! forwarded message could be read by the server as a KeyEvent.
//!
//! Both directions are framed. Server→client, the clinician's clipboard
//! (and with many servers any text she selects) travels as ServerCutText
//! among megabytes of pixels; only a framer that follows every message
//! boundary can find it, so [`ServerFramer`] delimits every message the
//! server may send and drops the cut texts the session's [`Clipboard`]
//! permission refuses, whatever the server is configured to do. It
//! classifies slices of the read buffer without copying pixel data. To keep
//! the server from sending anything it cannot delimit, the viewer's
//! SetEncodings is cut down to an allow-list, [`FRAMEABLE_ENCODINGS`].
//!
//! For the same reason, pseudo-encodings that would change the framing of
//! client messages in a way this parser does not follow (ExtendedMouseButtons,
//! −316, makes some PointerEvents 7 bytes long) are never let through.
//!
//! Memory is bounded whatever the peer sends: every length field is checked
//! against a cap before anything is allocated or waited for.
//!
//! Submodules: [`wire`] (bounds-checked reading), [`kind`] and [`verdict`]
//! (names and end reasons shared by the client-side layers), [`messages`]
//! (the client→server messages and their serialisation), [`framer`] (client
//! bytes → messages), [`filter`] (per-session policy), [`server`] (the
//! server→client framer), [`handshake`] (both legs' handshakes), [`auth`]
//! (VNC authentication's DES response) and [`host`] (Accord as the RFB
//! server itself, for its own Wayland screen server: handshake, update
//! requests, change detection, Raw and ZRLE encoders).

pub mod auth;
pub mod filter;
pub mod framer;
pub mod handshake;
pub mod host;
pub mod kind;
pub mod messages;
pub mod server;
pub mod verdict;
mod wire;

#[cfg(test)]
mod proptests;

pub use filter::{Action, Clipboard, DropCounts, Filter, FilterCtx, INPUT_EXTENSION_ENCODINGS};
pub use framer::ClientFramer;
pub use handshake::{
    HandshakeError, ServerInit, TechnicianHandshake, TechnicianProgress, UpstreamHandshake,
    UpstreamProgress, Version,
};
pub use host::{Frame, FrameFormat, Host, HostError, HostEvent};
pub use messages::{ClientMessage, MessageKind, PixelFormat, QemuAudio, Screen};
pub use server::{
    FRAMEABLE_ENCODINGS, MAX_SERVER_HEADER, ServerCounts, ServerFrameError, ServerFramer,
    ServerStep,
};
pub use verdict::{EndWhy, Verdict};

/// Largest ClientCutText (or extended-clipboard payload) accepted. Clipboard
/// is the one client message a viewer can make large; a quarter of a MiB is
/// plenty for text and keeps a hostile viewer from making Accord buffer more.
pub const MAX_CUT_TEXT: usize = 256 * 1024;

/// Largest SetEncodings list accepted. Real viewers send a few dozen; a
/// longer list is only a way to make Accord buffer and copy more.
pub const MAX_ENCODINGS: usize = 1024;

/// Largest ClientFence payload, as the Fence extension specifies.
pub const MAX_FENCE_PAYLOAD: usize = 64;

/// Largest single client message the framer will ever wait for, in bytes
/// (ClientCutText header + [`MAX_CUT_TEXT`]; every other message is smaller).
pub const MAX_MESSAGE_LEN: usize = 8 + MAX_CUT_TEXT;

/// The read size the session should use when feeding [`ClientFramer`]: the
/// framer's buffer is capped at [`MAX_MESSAGE_LEN`] + `READ_CHUNK`.
pub const READ_CHUNK: usize = 64 * 1024;

/// Longest failure-reason string accepted from the server during the
/// handshake (it came from the network, so it is bounded like anything else).
pub const MAX_REASON_LEN: usize = 64 * 1024;

/// Longest desktop name accepted in ServerInit.
pub const MAX_NAME_LEN: usize = 64 * 1024;
