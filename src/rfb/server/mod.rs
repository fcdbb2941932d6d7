//! The server→client framer: classifies the local VNC server's byte stream
//! into messages to forward and messages to drop, without copying it.
//!
//! Why parse this direction at all: the server sends the clinician's
//! clipboard (and, with many servers, any text she merely selects) as
//! ServerCutText. A view-only technician, or one whose session does not
//! share the clipboard, must not receive it whatever the server is
//! configured to do, and a cut text can only be found by following every
//! message boundary before it, pixel data included.
//!
//! The framer never holds pixel data: it reads one bounded header (at most
//! [`MAX_SERVER_HEADER`] bytes), learns how many opaque bytes follow it and
//! lets them through as they arrive. A message whose length it cannot know
//! (an unknown type or encoding) is an error that ends the session, since
//! guessing would let a cut text slip through disguised as pixels. Accord
//! cuts the viewer's SetEncodings down to [`FRAMEABLE_ENCODINGS`], so an
//! honest server never sends anything else.

pub(crate) mod encodings;
#[cfg(test)]
pub(crate) mod tests;

pub use encodings::{FRAMEABLE_ENCODINGS, MAX_COMPRESSED_RECT, RECT_ENCODINGS};

use encodings::{HeaderError, bytes_per_pixel};

use super::messages::PixelFormat;
use super::wire::Reader;
use super::{MAX_NAME_LEN, READ_CHUNK};

/// Largest ServerCutText payload (either form) the framer lets pass or
/// drops. Text and small images only; a larger one ends the session rather
/// than making Accord pass gigabytes because a length field said so.
pub const MAX_SERVER_CUT_TEXT: u64 = 16 * 1024 * 1024;

/// Largest header the framer ever waits for before it can classify bytes:
/// a Tight rectangle with a 256-colour palette of 4-byte pixels (12-byte
/// rectangle header, control, filter, palette size, palette, 3-byte compact
/// length). Everything else it needs is shorter. Since this is far below
/// [`READ_CHUNK`], a caller that keeps unclassified bytes and reads up to a
/// chunk more never fills its buffer while [`ServerStep::NeedMore`].
pub const MAX_SERVER_HEADER: usize = 12 + 3 + 256 * 4 + 3;

const _: () = assert!(MAX_SERVER_HEADER * 16 < READ_CHUNK);

/// What to do with a prefix of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerStep {
    /// The first `n` bytes of the input belong to messages to forward: write them as they are.
    Forward(usize),
    /// The first `n` bytes belong to a message to drop (a ServerCutText the session may not pass).
    Drop(usize),
    /// Nothing can be classified until more bytes arrive (a header is incomplete); the caller
    /// keeps the unconsumed bytes and reads more. Never returned while the input holds a whole header.
    NeedMore,
}

/// Why the server's stream can no longer be followed. Ends the session
/// (`protocol`): from here on a cut text could hide inside "pixels".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerFrameError {
    #[error("unknown server message type {0}: its length cannot be known")]
    UnknownType(u8),
    #[error("rectangle encoding {0} was not negotiated by Accord: its length cannot be known")]
    UnknownEncoding(i32),
    #[error("{what} declares {len} bytes, more than the limit of {max}")]
    TooLong {
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("malformed {0}")]
    Malformed(&'static str),
    #[error("a pixel format of {0} bits per pixel cannot be framed (RFB allows 8, 16, 32)")]
    PixelFormat(u8),
}

/// What the framer has seen, for tests, benchmarks and the audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerCounts {
    pub updates: u64,
    /// Rectangles per encoding, indexed like [`RECT_ENCODINGS`].
    pub rects: [u64; RECT_ENCODINGS.len()],
    pub colour_maps: u64,
    pub bells: u64,
    pub cut_texts_forwarded: u64,
    pub cut_texts_dropped: u64,
    pub bytes_dropped: u64,
}

impl ServerCounts {
    /// Rectangles seen with `encoding` (0 for one the framer does not know).
    pub fn rects_of(&self, encoding: i32) -> u64 {
        RECT_ENCODINGS
            .iter()
            .position(|&e| e == encoding)
            .and_then(|i| self.rects.get(i))
            .copied()
            .unwrap_or(0)
    }
}

/// Where the framer is between two headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At a message boundary.
    Idle,
    /// Inside a FramebufferUpdate, before a rectangle header; `left` ≥ 1.
    Rects { left: u16 },
    /// Inside a Hextile rectangle, before the tile at (`tx`, `ty`) pixels;
    /// `left` rectangles follow this one.
    Hextile {
        left: u16,
        width: u16,
        height: u16,
        tx: u16,
        ty: u16,
    },
}

/// After a rectangle: the next one, or the end of the update.
fn after_rect(left: u16) -> State {
    if left == 0 {
        State::Idle
    } else {
        State::Rects { left }
    }
}

/// Follows the server's messages; see the module documentation.
#[derive(Debug, Clone)]
pub struct ServerFramer {
    pf: PixelFormat,
    /// A SetPixelFormat forwarded to the server, in force from the next update.
    next_pf: Option<PixelFormat>,
    clipboard_to_viewer: bool,
    state: State,
    /// Opaque bytes that follow the last header, still to classify.
    skip: u64,
    /// Whether those bytes are dropped (a refused cut text) or forwarded.
    skip_drop: bool,
    /// An error sticks: the stream position is lost.
    failed: Option<ServerFrameError>,
    counts: ServerCounts,
    /// Stop each step at the next message boundary (a switch waits there).
    stop_at_boundary: bool,
}

impl ServerFramer {
    /// `pf`: the pixel format of ServerInit. The clipboard starts refused.
    pub fn new(pf: PixelFormat) -> Self {
        Self {
            pf,
            next_pf: None,
            clipboard_to_viewer: false,
            state: State::Idle,
            skip: 0,
            skip_drop: false,
            failed: None,
            counts: ServerCounts::default(),
            stop_at_boundary: false,
        }
    }

    /// While set, a step never goes past the end of the message it is in:
    /// the relay has a switch to make between two messages (hide her
    /// screen, show it again), and a stream that never pauses must still
    /// reach one.
    pub fn set_stop_at_boundary(&mut self, stop: bool) {
        self.stop_at_boundary = stop;
    }

    /// A SetPixelFormat the viewer sent was forwarded: applies from the next FramebufferUpdate
    /// (RFB forbids a client to change it with an update outstanding).
    pub fn set_pixel_format(&mut self, pf: PixelFormat) {
        self.next_pf = Some(pf);
    }

    /// Whether ServerCutText (both the legacy form and the extended-clipboard form) may reach the
    /// technician. Decided per message at its first byte; changeable at any time (view-only switch).
    /// A cut text already being forwarded is finished (cutting it would
    /// desynchronise the viewer); the next one obeys the new setting.
    pub fn set_clipboard_to_viewer(&mut self, allowed: bool) {
        self.clipboard_to_viewer = allowed;
    }

    /// True between messages (used by tests and by the relay to end cleanly).
    pub fn at_boundary(&self) -> bool {
        self.skip == 0 && self.state == State::Idle
    }

    /// What has been seen so far.
    pub fn counts(&self) -> &ServerCounts {
        &self.counts
    }

    /// Classifies a prefix of `input` (the bytes after everything already classified).
    /// Streaming: a 8 MB raw update is returned as several Forward(n) as bytes arrive; the
    /// framer keeps only small header state, never copies pixel data.
    ///
    /// Consecutive forwarded messages are merged into one `Forward`. An
    /// error found after some bytes were classified is returned on the next
    /// call, so the caller can still forward what came before it.
    pub fn step(&mut self, input: &[u8]) -> Result<ServerStep, ServerFrameError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let mut pos = 0usize;
        loop {
            let rest = input.get(pos..).unwrap_or_default();
            if rest.is_empty() || (pos > 0 && self.stop_at_boundary && self.at_boundary()) {
                break;
            }
            if self.skip > 0 {
                let n = usize::try_from(self.skip).map_or(rest.len(), |s| s.min(rest.len()));
                if self.skip_drop {
                    if pos > 0 {
                        break;
                    }
                    self.skip -= n as u64;
                    self.counts.bytes_dropped += n as u64;
                    return Ok(ServerStep::Drop(n));
                }
                self.skip -= n as u64;
                pos += n;
                continue;
            }
            match self.header(rest) {
                Ok(Some(n)) => pos += n,
                Ok(None) => break,
                Err(e) => {
                    self.failed = Some(e.clone());
                    if pos > 0 {
                        break;
                    }
                    return Err(e);
                }
            }
        }
        Ok(if pos > 0 {
            ServerStep::Forward(pos)
        } else {
            ServerStep::NeedMore
        })
    }

    /// Reads the header due in the current state from the front of `input`
    /// and moves past it: `Some(bytes of header to forward)` or `None` if it
    /// is incomplete (nothing changed then).
    fn header(&mut self, input: &[u8]) -> Result<Option<usize>, ServerFrameError> {
        let mut r = Reader::new(input);
        let parsed = match self.state {
            State::Idle => self.message(&mut r),
            State::Rects { left } => self.rect(&mut r, left.saturating_sub(1)),
            State::Hextile {
                left,
                width,
                height,
                tx,
                ty,
            } => self.tile(&mut r, left, width, height, tx, ty),
        };
        match parsed {
            Ok(Some(n)) => Ok(Some(n)),
            Ok(None) => Ok(Some(r.consumed())),
            Err(HeaderError::Short) => Ok(None),
            Err(HeaderError::Bad(e)) => Err(e),
        }
    }

    /// Sets the opaque bytes to forward after the header just read.
    fn pass(&mut self, n: u64) {
        self.skip = n;
        self.skip_drop = false;
    }

    /// A message's first header. `Ok(None)`: the header is what was read;
    /// `Ok(Some(n))`: only `n` header bytes are forwarded (a dropped cut text).
    fn message(&mut self, r: &mut Reader<'_>) -> Result<Option<usize>, HeaderError> {
        match r.u8()? {
            0 => {
                r.skip(1)?;
                let count = r.u16()?;
                if let Some(pf) = self.next_pf.take() {
                    self.pf = pf;
                }
                self.counts.updates += 1;
                self.state = after_rect(count);
                self.pass(0);
                Ok(None)
            }
            1 => {
                r.skip(3)?;
                let n = r.u16()?;
                self.counts.colour_maps += 1;
                self.pass(u64::from(n) * 6);
                Ok(None)
            }
            2 => {
                self.counts.bells += 1;
                self.pass(0);
                Ok(None)
            }
            3 => {
                r.skip(3)?;
                let length = r.i32()?;
                let len = u64::from(length.unsigned_abs());
                if len > MAX_SERVER_CUT_TEXT {
                    return Err(ServerFrameError::TooLong {
                        what: "ServerCutText",
                        len,
                        max: MAX_SERVER_CUT_TEXT,
                    }
                    .into());
                }
                if self.clipboard_to_viewer {
                    self.counts.cut_texts_forwarded += 1;
                    self.pass(len);
                    Ok(None)
                } else {
                    // The header is dropped with the text: the viewer
                    // never learns there was one.
                    self.counts.cut_texts_dropped += 1;
                    self.skip = len + r.consumed() as u64;
                    self.skip_drop = true;
                    Ok(Some(0))
                }
            }
            other => Err(ServerFrameError::UnknownType(other).into()),
        }
    }

    /// A rectangle header and its encoding's own header; `left` rectangles follow.
    fn rect(&mut self, r: &mut Reader<'_>, left: u16) -> Result<Option<usize>, HeaderError> {
        use encodings::*;
        let rect = RectHeader::read(r)?;
        let mut next = after_rect(left);
        let body = match rect.encoding {
            RAW => rect.pixels() * bytes_per_pixel(&self.pf)?,
            COPY_RECT => 4,
            RRE => {
                let n = u64::from(r.u32()?);
                // Every subrectangle covers at least one pixel.
                if n > rect.pixels() {
                    return Err(ServerFrameError::TooLong {
                        what: "RRE subrectangle count",
                        len: n,
                        max: rect.pixels(),
                    }
                    .into());
                }
                let bpp = bytes_per_pixel(&self.pf)?;
                bpp + n * (bpp + 8)
            }
            HEXTILE => {
                bytes_per_pixel(&self.pf)?;
                if rect.pixels() > 0 {
                    next = State::Hextile {
                        left,
                        width: rect.width,
                        height: rect.height,
                        tx: 0,
                        ty: 0,
                    };
                }
                0
            }
            TIGHT => tight(r, &rect, &self.pf)?,
            ZRLE | ZYWRLE => check_compressed("ZRLE data", &rect, u64::from(r.u32()?))?,
            CURSOR => rect.pixels() * bytes_per_pixel(&self.pf)? + rect.mask_len(),
            X_CURSOR if rect.pixels() > 0 => 6 + 2 * rect.mask_len(),
            X_CURSOR | DESKTOP_SIZE | QEMU_EXTENDED_KEY | QEMU_POINTER_MOTION => 0,
            LAST_RECT => {
                next = State::Idle;
                0
            }
            DESKTOP_NAME => {
                let len = u64::from(r.u32()?);
                let max = MAX_NAME_LEN as u64;
                if len > max {
                    return Err(ServerFrameError::TooLong {
                        what: "DesktopName",
                        len,
                        max,
                    }
                    .into());
                }
                len
            }
            EXTENDED_DESKTOP_SIZE => {
                let screens = u64::from(r.u8()?);
                r.skip(3)?;
                screens * 16
            }
            other => return Err(ServerFrameError::UnknownEncoding(other).into()),
        };
        if let Some(i) = RECT_ENCODINGS.iter().position(|&e| e == rect.encoding)
            && let Some(c) = self.counts.rects.get_mut(i)
        {
            *c += 1;
        }
        self.state = next;
        self.pass(body);
        Ok(None)
    }

    /// One Hextile tile: tiles go left to right, top to bottom, 16×16 but
    /// cut short at the rectangle's right and bottom edges.
    fn tile(
        &mut self,
        r: &mut Reader<'_>,
        left: u16,
        width: u16,
        height: u16,
        tx: u16,
        ty: u16,
    ) -> Result<Option<usize>, HeaderError> {
        let w = u64::from(width.saturating_sub(tx).min(16));
        let h = u64::from(height.saturating_sub(ty).min(16));
        let body = encodings::hextile_tile(r, w, h, bytes_per_pixel(&self.pf)?)?;
        let (nx, ny) = match tx.checked_add(16).filter(|&x| x < width) {
            Some(x) => (x, ty),
            None => (0, ty.saturating_add(16)),
        };
        // `ty + 16` saturating at 65535 is still ≥ any height, so the
        // last row ends the rectangle.
        self.state = if u32::from(ty) + 16 >= u32::from(height) && nx == 0 {
            after_rect(left)
        } else {
            State::Hextile {
                left,
                width,
                height,
                tx: nx,
                ty: ny,
            }
        };
        self.pass(body);
        Ok(None)
    }
}
