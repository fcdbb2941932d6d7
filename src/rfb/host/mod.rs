//! Accord as the RFB server: the protocol core of its own screen server for
//! GNOME on Wayland, where frames come from Mutter's ScreenCast (PipeWire)
//! and input goes back through Mutter's RemoteDesktop. Sans-IO like the
//! rest of `rfb`: the caller pushes the viewer's bytes and hands over
//! frames; the [`Host`] gives back input events and the bytes to write.
//!
//! The viewer here is Accord's own relay (`UpstreamHandshake` on the other
//! end of a private socket pair), but the host does not rely on that: it
//! parses the client's stream with the same [`ClientFramer`] that guards
//! the technician's leg, so a message it cannot delimit ends the session.
//!
//! The rule it keeps is RFB's flow control, which is also what bounds its
//! memory: a FramebufferUpdate goes out only in answer to an outstanding
//! FramebufferUpdateRequest, and it carries the screen as it is when it is
//! made, not a queue of past frames. Frames arriving faster than the viewer
//! asks overwrite each other ([`tiles`]); the host holds two copies of the
//! screen, one update, and nothing that grows with time.
//!
//! Submodules: [`tiles`] (the two copies and 64×64 change detection) and
//! [`encode`] (Raw and ZRLE in the viewer's pixel format).

pub mod encode;
#[cfg(test)]
mod tests;
pub mod tiles;

pub use tiles::{Frame, FrameFormat, MAX_DIMENSION, Rect, TILE};

use encode::{PixelOut, Zrle};
use tiles::Screen;

use super::framer::ClientFramer;
use super::handshake::{HandshakeError, TechnicianHandshake, TechnicianProgress};
use super::messages::{ClientMessage, PixelFormat};
use super::server::encodings::{DESKTOP_SIZE, RAW, ZRLE};
use super::verdict::{EndWhy, Verdict};
use super::{MAX_CUT_TEXT, MAX_NAME_LEN, READ_CHUNK};

/// The pixel format of ServerInit: 32-bit true colour, depth 24, the
/// layout of the host's own pixel words. Viewers that want another one say
/// so with SetPixelFormat.
pub const SERVER_PIXEL_FORMAT: PixelFormat = PixelFormat::RGB888;

/// What the viewer did, for the caller to inject into the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostEvent {
    /// A key pressed or released, as an X keysym.
    Key { down: bool, keysym: u32 },
    /// The pointer's position (inside the framebuffer: clamped to it) and
    /// its buttons (bit 0 left, 1 middle, 2 right, 3–6 the wheel).
    Pointer { buttons: u8, x: u16, y: u16 },
    /// The viewer's clipboard, Latin-1 text.
    CutText(Vec<u8>),
}

/// Everything that stops the host, or a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("RFB handshake with the viewer failed: {0}")]
    Handshake(#[from] HandshakeError),
    #[error("the viewer's stream cannot be followed: {0}")]
    Client(EndWhy),
    #[error("the viewer asked for a pixel format the screen server cannot send: {0}")]
    PixelFormat(&'static str),
    #[error("the ZRLE zlib stream could not be written")]
    Zlib,
    /// The frame was refused; the session goes on with the previous one.
    #[error("frame refused: {0}")]
    Frame(&'static str),
    /// The text was refused; the session goes on.
    #[error("clipboard text of {len} bytes is over the {max}-byte limit")]
    CutTextTooLong { len: usize, max: usize },
}

impl HostError {
    /// Whether the session is over (the error is then repeated by every
    /// later call); a refused frame or text is not.
    pub fn ends_session(&self) -> bool {
        !matches!(self, HostError::Frame(_) | HostError::CutTextTooLong { .. })
    }
}

/// The encodings the host can send a rectangle in, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Zrle,
    Raw,
}

impl Encoding {
    /// The number RFB gives it.
    pub fn number(self) -> i32 {
        match self {
            Encoding::Zrle => ZRLE,
            Encoding::Raw => RAW,
        }
    }
}

/// The outstanding FramebufferUpdateRequests, merged: RFB lets a viewer
/// send several, and one update answers them all.
#[derive(Debug, Clone, Copy, Default)]
struct Request {
    /// Where an incremental request asks for changes.
    area: Rect,
    /// Where a non-incremental request asks for everything.
    full: Rect,
}

/// One viewer's RFB session, server side; see the module documentation.
///
/// Drive it with [`Host::push`] (the viewer's bytes, input events back),
/// [`Host::set_frame`] (each new frame) and [`Host::take_output`] (the
/// bytes to write, called after either).
#[derive(Debug)]
pub struct Host {
    /// `Some` until the viewer's ClientInit.
    handshake: Option<TechnicianHandshake>,
    framer: ClientFramer,
    name: Vec<u8>,
    screen: Screen,
    pixel_format: PixelFormat,
    pixels: PixelOut,
    encoding: Encoding,
    /// Created at the first ZRLE rectangle, then kept for the session.
    zrle: Option<Zrle>,
    /// The viewer announced DesktopSize: it can be told of a new size.
    desktop_size: bool,
    /// The screen changed size and the viewer has not been told yet.
    resized: bool,
    request: Option<Request>,
    /// The latest clipboard text for the viewer, not sent yet.
    cut_text: Option<Vec<u8>>,
    out: Vec<u8>,
    rects: Vec<Rect>,
    failed: Option<HostError>,
}

impl Host {
    /// A session for a `width`×`height` screen called `name` (cut at
    /// [`MAX_NAME_LEN`] bytes). The version greeting is queued at once:
    /// the server speaks first.
    pub fn new(width: u16, height: u16, name: &[u8]) -> Result<Self, HostError> {
        check_size(width, height)?;
        let name = name.get(..MAX_NAME_LEN).unwrap_or(name).to_vec();
        let mut handshake = TechnicianHandshake::new();
        Ok(Self {
            out: handshake.take_output(),
            handshake: Some(handshake),
            framer: ClientFramer::new(),
            name,
            screen: Screen::new(width, height),
            pixel_format: SERVER_PIXEL_FORMAT,
            pixels: PixelOut::new(&SERVER_PIXEL_FORMAT).map_err(HostError::PixelFormat)?,
            encoding: Encoding::Raw,
            zrle: None,
            desktop_size: false,
            resized: false,
            request: None,
            cut_text: None,
            rects: Vec::new(),
            failed: None,
        })
    }

    /// Whether the handshake is over (updates and events flow).
    pub fn is_running(&self) -> bool {
        self.handshake.is_none() && self.failed.is_none()
    }

    /// The framebuffer size the viewer knows (or will learn at its next
    /// update).
    pub fn size(&self) -> (u16, u16) {
        (self.screen.width(), self.screen.height())
    }

    /// The pixel format updates are written in: ServerInit's until the
    /// viewer's SetPixelFormat.
    pub fn pixel_format(&self) -> PixelFormat {
        self.pixel_format
    }

    /// The encoding rectangles are written in.
    pub fn encoding(&self) -> Encoding {
        self.encoding
    }

    /// Whether an update request is waiting for something to send.
    pub fn request_outstanding(&self) -> bool {
        self.request.is_some()
    }

    /// Feeds bytes read from the viewer; returns the input it sent, in
    /// order. Any length is accepted (it is framed a read chunk at a time).
    /// An error ends the session and is repeated by every later call.
    pub fn push(&mut self, input: &[u8]) -> Result<Vec<HostEvent>, HostError> {
        self.check_failed()?;
        let mut events = Vec::new();
        let result = self.push_inner(input, &mut events);
        self.fail_on(result)?;
        Ok(events)
    }

    /// Takes a new frame (see [`Frame`]); only the latest one is kept. A
    /// frame of another size resizes the screen if the viewer announced
    /// DesktopSize (or has not sent ClientInit yet: ServerInit then gives
    /// the new size); otherwise it is cropped or padded with black to the
    /// size the viewer knows.
    pub fn set_frame(&mut self, frame: &Frame<'_>) -> Result<(), HostError> {
        self.check_failed()?;
        frame.check().map_err(HostError::Frame)?;
        let (width, height) = (frame.width, frame.height);
        if (width, height) != self.size() && (self.handshake.is_some() || self.desktop_size) {
            self.screen.resize(width, height);
            self.resized = self.handshake.is_none();
        }
        self.screen.set_frame(frame);
        Ok(())
    }

    /// Queues the clinician's clipboard for the viewer (a newer text
    /// replaces one not sent yet). Latin-1, at most [`MAX_CUT_TEXT`] bytes.
    pub fn send_cut_text(&mut self, text: &[u8]) -> Result<(), HostError> {
        self.check_failed()?;
        if text.len() > MAX_CUT_TEXT {
            return Err(HostError::CutTextTooLong {
                len: text.len(),
                max: MAX_CUT_TEXT,
            });
        }
        self.cut_text = Some(text.to_vec());
        Ok(())
    }

    /// The bytes to write to the viewer now: what the handshake says, a
    /// pending clipboard text, and one FramebufferUpdate if a request is
    /// outstanding and there is something to send. After an error, only
    /// what was queued before it (the refusal a 3.8 viewer is owed).
    pub fn take_output(&mut self) -> Result<Vec<u8>, HostError> {
        if self.failed.is_none() && self.handshake.is_none() {
            if let Some(text) = self.cut_text.take() {
                self.out.extend_from_slice(&[3, 0, 0, 0]);
                self.out
                    .extend_from_slice(&(text.len() as u32).to_be_bytes());
                self.out.extend_from_slice(&text);
            }
            let result = self.update();
            self.fail_on(result)?;
        }
        Ok(std::mem::take(&mut self.out))
    }

    fn check_failed(&self) -> Result<(), HostError> {
        match &self.failed {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail_on<T>(&mut self, result: Result<T, HostError>) -> Result<T, HostError> {
        if let Err(e) = &result
            && e.ends_session()
        {
            self.failed = Some(e.clone());
            self.handshake = None;
            self.request = None;
        }
        result
    }

    fn push_inner(&mut self, input: &[u8], events: &mut Vec<HostEvent>) -> Result<(), HostError> {
        let Some(hs) = &mut self.handshake else {
            return self.feed(input, events);
        };
        let mut progress = hs.push(input);
        if progress == Ok(TechnicianProgress::NeedServerInit) {
            // ServerInit is made only now, so that it gives the size of
            // the latest frame.
            let (width, height) = (self.screen.width(), self.screen.height());
            progress = hs.provide_server_init(&server_init(width, height, &self.name));
        }
        self.out.extend(hs.take_output());
        match progress? {
            TechnicianProgress::Done { leftover } => {
                self.handshake = None;
                self.feed(&leftover, events)
            }
            TechnicianProgress::NeedMore | TechnicianProgress::NeedServerInit => Ok(()),
        }
    }

    fn feed(&mut self, input: &[u8], events: &mut Vec<HostEvent>) -> Result<(), HostError> {
        let client = |Verdict::End(why)| HostError::Client(why);
        for piece in input.chunks(READ_CHUNK) {
            self.framer.push(piece).map_err(client)?;
            while let Some(msg) = self.framer.next_message().map_err(client)? {
                self.handle(msg, events)?;
            }
        }
        Ok(())
    }

    fn handle(&mut self, msg: ClientMessage, events: &mut Vec<HostEvent>) -> Result<(), HostError> {
        match msg {
            ClientMessage::SetPixelFormat(pf) => {
                self.pixels = PixelOut::new(&pf).map_err(HostError::PixelFormat)?;
                self.pixel_format = pf;
            }
            ClientMessage::SetEncodings(list) => {
                self.encoding = if list.contains(&ZRLE) {
                    Encoding::Zrle
                } else {
                    Encoding::Raw
                };
                self.desktop_size = list.contains(&DESKTOP_SIZE);
            }
            ClientMessage::FramebufferUpdateRequest {
                incremental,
                x,
                y,
                width,
                height,
            } => {
                let asked = Rect {
                    x,
                    y,
                    width,
                    height,
                }
                .clip_to(self.screen.width(), self.screen.height());
                let mut request = self.request.unwrap_or_default();
                if incremental {
                    request.area = request.area.union(asked);
                } else {
                    request.full = request.full.union(asked);
                }
                self.request = Some(request);
            }
            ClientMessage::KeyEvent { down, key } => {
                events.push(HostEvent::Key { down, keysym: key });
            }
            ClientMessage::PointerEvent { buttons, x, y } => {
                events.push(HostEvent::Pointer {
                    buttons,
                    x: x.min(self.screen.width() - 1),
                    y: y.min(self.screen.height() - 1),
                });
            }
            ClientMessage::ClientCutText(text) => events.push(HostEvent::CutText(text)),
            // The host announces no extension (continuous updates, fences,
            // extended clipboard, desktop resizing by the viewer, QEMU or
            // GII input, XVP): a viewer has no reason to send these, and
            // they ask for nothing the host does.
            ClientMessage::ExtendedClipboard { .. }
            | ClientMessage::EnableContinuousUpdates { .. }
            | ClientMessage::ClientFence { .. }
            | ClientMessage::Xvp { .. }
            | ClientMessage::SetDesktopSize { .. }
            | ClientMessage::Gii { .. }
            | ClientMessage::QemuKeyEvent { .. }
            | ClientMessage::QemuAudio(_) => {}
        }
        Ok(())
    }

    /// Answers the outstanding request, if there is one and something to
    /// send: the new size first if the screen was resized (alone: the
    /// viewer then asks again, in the new geometry), else the tiles asked.
    fn update(&mut self) -> Result<(), HostError> {
        let Some(request) = self.request else {
            return Ok(());
        };
        if self.resized {
            let whole = self.screen.whole();
            update_header(1, &mut self.out);
            rect_header(whole, DESKTOP_SIZE, &mut self.out);
            self.resized = false;
            self.request = None;
            return Ok(());
        }
        self.screen
            .take_changes(request.area, request.full, &mut self.rects);
        if self.rects.is_empty() {
            return Ok(());
        }
        self.request = None;
        let start = self.out.len();
        let written = self.write_rects();
        if written.is_err() {
            self.out.truncate(start);
        }
        written
    }

    fn write_rects(&mut self) -> Result<(), HostError> {
        // At most (8192 / 64)² rectangles: see the assertion below.
        let count = u16::try_from(self.rects.len()).unwrap_or(u16::MAX);
        update_header(count, &mut self.out);
        let stride = usize::from(self.screen.width());
        let fb = self.screen.pixels();
        for &r in &self.rects {
            rect_header(r, self.encoding.number(), &mut self.out);
            match self.encoding {
                Encoding::Raw => encode::raw(&self.pixels, fb, stride, r, &mut self.out),
                Encoding::Zrle => self
                    .zrle
                    .get_or_insert_with(Zrle::new)
                    .encode(&self.pixels, fb, stride, r, &mut self.out)
                    .map_err(|_| HostError::Zlib)?,
            }
        }
        Ok(())
    }
}

// One rectangle per tile at most, so an update's count always fits.
const _: () = assert!((MAX_DIMENSION as u32 / TILE as u32).pow(2) <= u16::MAX as u32);

fn check_size(width: u16, height: u16) -> Result<(), HostError> {
    if width == 0 || height == 0 || width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(HostError::Frame(
            "the screen must be 1 to 8192 pixels on a side",
        ));
    }
    Ok(())
}

/// ServerInit: size, [`SERVER_PIXEL_FORMAT`], name.
fn server_init(width: u16, height: u16, name: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(24 + name.len());
    v.extend_from_slice(&width.to_be_bytes());
    v.extend_from_slice(&height.to_be_bytes());
    SERVER_PIXEL_FORMAT.write_to(&mut v);
    v.extend_from_slice(&(name.len() as u32).to_be_bytes());
    v.extend_from_slice(name);
    v
}

fn update_header(count: u16, out: &mut Vec<u8>) {
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&count.to_be_bytes());
}

fn rect_header(r: Rect, encoding: i32, out: &mut Vec<u8>) {
    for v in [r.x, r.y, r.width, r.height] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(&encoding.to_be_bytes());
}
