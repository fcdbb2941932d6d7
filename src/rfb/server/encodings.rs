//! The rectangle encodings the server→client framer can delimit, and the
//! length arithmetic of each one's header.
//!
//! Every function here reads one bounded header from the front of the input
//! and says how many opaque bytes (pixel or compressed data) follow it. The
//! data itself is never looked at: the framer only needs to know where the
//! next header starts. Lengths are computed in `u64` from `u16` sizes, so no
//! arithmetic here can overflow.

use super::ServerFrameError;
use crate::rfb::messages::PixelFormat;
use crate::rfb::wire::{Reader, Short};

pub const RAW: i32 = 0;
pub const COPY_RECT: i32 = 1;
pub const RRE: i32 = 2;
pub const HEXTILE: i32 = 5;
pub const TIGHT: i32 = 7;
pub const ZRLE: i32 = 16;
pub const ZYWRLE: i32 = 17;
pub const CURSOR: i32 = -239;
pub const X_CURSOR: i32 = -240;
pub const DESKTOP_SIZE: i32 = -223;
pub const LAST_RECT: i32 = -224;
pub const DESKTOP_NAME: i32 = -307;
pub const EXTENDED_DESKTOP_SIZE: i32 = -308;
/// QEMU extended key events: the server acknowledges with an empty pseudo-rectangle.
pub const QEMU_EXTENDED_KEY: i32 = -258;
/// QEMU pointer motion change: empty pseudo-rectangle.
pub const QEMU_POINTER_MOTION: i32 = -257;
/// Extended Clipboard: changes only the ServerCutText length's sign, framed here.
pub const EXTENDED_CLIPBOARD: i32 = 0xC0A1_E5CE_u32 as i32;

/// Encodings that may appear in a rectangle header, in a stable order
/// (the index used by [`super::ServerCounts`]).
pub const RECT_ENCODINGS: [i32; 15] = [
    RAW,
    COPY_RECT,
    RRE,
    HEXTILE,
    TIGHT,
    ZRLE,
    ZYWRLE,
    CURSOR,
    X_CURSOR,
    DESKTOP_SIZE,
    LAST_RECT,
    DESKTOP_NAME,
    EXTENDED_DESKTOP_SIZE,
    QEMU_EXTENDED_KEY,
    QEMU_POINTER_MOTION,
];

/// Every encoding and pseudo-encoding Accord lets the viewer announce: the
/// ones the framer delimits, Extended Clipboard (framed as ServerCutText),
/// and Tight's quality (−32..−23) and compression-level (−256..−247)
/// pseudo-encodings, which carry no rectangle at all. The server never sends
/// what the viewer did not announce, so with the viewer's list cut to this
/// one every message the server sends can be framed.
pub const FRAMEABLE_ENCODINGS: [i32; 36] = [
    RAW,
    COPY_RECT,
    RRE,
    HEXTILE,
    TIGHT,
    ZRLE,
    ZYWRLE,
    CURSOR,
    X_CURSOR,
    DESKTOP_SIZE,
    LAST_RECT,
    DESKTOP_NAME,
    EXTENDED_DESKTOP_SIZE,
    QEMU_EXTENDED_KEY,
    QEMU_POINTER_MOTION,
    EXTENDED_CLIPBOARD,
    -32,
    -31,
    -30,
    -29,
    -28,
    -27,
    -26,
    -25,
    -24,
    -23,
    -256,
    -255,
    -254,
    -253,
    -252,
    -251,
    -250,
    -249,
    -248,
    -247,
];

/// Longest zlib/JPEG payload accepted for one rectangle, whatever its size:
/// a 8K screen in raw 32 bpp is 133 MB; compressed data is never larger
/// than twice that. Stops a 2³²−1 length from making the framer pass 4 GB.
pub const MAX_COMPRESSED_RECT: u64 = 256 * 1024 * 1024;

/// Compressed bytes allowed per pixel of a rectangle, on top of
/// [`COMPRESSED_SLACK`]: ZRLE's worst case is a one-pixel run per pixel
/// (4-byte CPIXEL + 1-byte run) plus zlib's stored-block overhead (< 1 %),
/// so 8 leaves room for any honest encoder.
const COMPRESSED_BYTES_PER_PIXEL: u64 = 8;

/// Fixed allowance for zlib headers and ZRLE tile/palette overhead.
const COMPRESSED_SLACK: u64 = 64 * 1024;

/// A rectangle header (12 bytes) as it appears in a FramebufferUpdate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RectHeader {
    pub width: u16,
    pub height: u16,
    pub encoding: i32,
}

impl RectHeader {
    pub fn read(r: &mut Reader<'_>) -> Result<Self, Short> {
        r.skip(4)?; // x, y: where it goes does not change its length
        Ok(Self {
            width: r.u16()?,
            height: r.u16()?,
            encoding: r.i32()?,
        })
    }

    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// Bytes of a 1-bit-per-pixel mask with rows padded to a byte.
    pub fn mask_len(&self) -> u64 {
        u64::from(self.width).div_ceil(8) * u64::from(self.height)
    }
}

/// Bytes per pixel of a framebuffer update, refusing what RFB does not allow
/// (a `bits_per_pixel` of 0 or 24 would make every length wrong).
pub fn bytes_per_pixel(pf: &PixelFormat) -> Result<u64, ServerFrameError> {
    match pf.bits_per_pixel {
        8 | 16 | 32 => Ok(u64::from(pf.bits_per_pixel / 8)),
        other => Err(ServerFrameError::PixelFormat(other)),
    }
}

/// Tight's TPIXEL: 3 bytes for 32 bpp, depth 24 true colour with 8 bits per
/// channel; otherwise a whole pixel.
pub fn tight_pixel_len(pf: &PixelFormat) -> Result<u64, ServerFrameError> {
    let bpp = bytes_per_pixel(pf)?;
    let packed = pf.bits_per_pixel == 32
        && pf.depth == 24
        && pf.true_colour
        && pf.red_max == 255
        && pf.green_max == 255
        && pf.blue_max == 255;
    Ok(if packed { 3 } else { bpp })
}

/// Checks a declared compressed length against the rectangle's allowance.
pub fn check_compressed(
    what: &'static str,
    rect: &RectHeader,
    len: u64,
) -> Result<u64, ServerFrameError> {
    let max = rect
        .pixels()
        .saturating_mul(COMPRESSED_BYTES_PER_PIXEL)
        .saturating_add(COMPRESSED_SLACK)
        .min(MAX_COMPRESSED_RECT);
    if len > max {
        return Err(ServerFrameError::TooLong { what, len, max });
    }
    Ok(len)
}

/// Tight's compact length: 1 to 3 bytes, 7 + 7 + 8 bits, little-endian.
fn compact_len(r: &mut Reader<'_>) -> Result<u64, Short> {
    let b0 = r.u8()?;
    let mut len = u64::from(b0 & 0x7f);
    if b0 & 0x80 != 0 {
        let b1 = r.u8()?;
        len |= u64::from(b1 & 0x7f) << 7;
        if b1 & 0x80 != 0 {
            len |= u64::from(r.u8()?) << 14;
        }
    }
    Ok(len)
}

/// Why a header could not give a body length.
pub enum HeaderError {
    Short,
    Bad(ServerFrameError),
}

impl From<Short> for HeaderError {
    fn from(_: Short) -> Self {
        HeaderError::Short
    }
}

impl From<ServerFrameError> for HeaderError {
    fn from(e: ServerFrameError) -> Self {
        HeaderError::Bad(e)
    }
}

/// Tight rectangle after its 12-byte header: reads the control byte, the
/// filter, the palette and the compact length, and returns the length of
/// the data that follows them. Smallest data (< 12 bytes) is sent as is,
/// without a length.
pub fn tight(r: &mut Reader<'_>, rect: &RectHeader, pf: &PixelFormat) -> Result<u64, HeaderError> {
    let tpixel = tight_pixel_len(pf)?;
    let control = r.u8()?;
    match control >> 4 {
        0x8 => {
            r.skip(usize::try_from(tpixel).unwrap_or(usize::MAX))?;
            return Ok(0);
        }
        0x9 => {
            let len = compact_len(r)?;
            return Ok(check_compressed("Tight JPEG data", rect, len)?);
        }
        0xA..=0xF => return Err(ServerFrameError::Malformed("Tight compression control").into()),
        _ => {}
    }
    let filter = if control & 0x40 != 0 { r.u8()? } else { 0 };
    let raw_len = match filter {
        0 | 2 => rect.pixels() * tpixel,
        1 => {
            let colours = u64::from(r.u8()?) + 1;
            r.skip(usize::try_from(colours * tpixel).unwrap_or(usize::MAX))?;
            if colours == 2 {
                rect.mask_len()
            } else {
                rect.pixels()
            }
        }
        _ => return Err(ServerFrameError::Malformed("Tight filter id").into()),
    };
    if raw_len < 12 {
        return Ok(raw_len);
    }
    let len = compact_len(r)?;
    Ok(check_compressed("Tight zlib data", rect, len)?)
}

/// One Hextile tile of `w`×`h` pixels: reads its sub-encoding byte and the
/// colours and count that follow, returns the bytes after them.
pub fn hextile_tile(r: &mut Reader<'_>, w: u64, h: u64, bpp: u64) -> Result<u64, Short> {
    let sub = r.u8()?;
    if sub & 1 != 0 {
        return Ok(w * h * bpp); // raw tile; the other bits mean nothing
    }
    let bpp_usize = usize::try_from(bpp).unwrap_or(usize::MAX);
    if sub & 2 != 0 {
        r.skip(bpp_usize)?;
    }
    if sub & 4 != 0 {
        r.skip(bpp_usize)?;
    }
    if sub & 8 == 0 {
        return Ok(0);
    }
    let n = u64::from(r.u8()?);
    Ok(if sub & 16 != 0 { n * (bpp + 2) } else { n * 2 })
}
