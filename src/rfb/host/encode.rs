//! The host's rectangle encoders, Raw and ZRLE, writing pixels in the
//! viewer's pixel format.
//!
//! ZRLE (RFC 6143 §7.7.6) is what makes a screen usable over a helpdesk
//! link: each rectangle is cut into 64×64 tiles, each tile is sent as the
//! cheapest of raw, solid, packed palette, plain RLE and palette RLE, and
//! everything goes through one zlib stream that lives as long as the
//! session (the viewer keeps one inflater for the whole connection, so the
//! stream must never restart, whatever encoding or pixel format comes in
//! between). Each rectangle ends with a zlib sync flush, so the viewer can
//! decode it as soon as it has it.
//!
//! Work memory is bounded by one row of tiles: the host only ever asks for
//! rectangles at most [`TILE`] rows high.

use flate2::{Compress, Compression, FlushCompress};

use super::tiles::{Rect, TILE};
use crate::rfb::messages::PixelFormat;

/// zlib level of the ZRLE stream. Level 1 compresses desktop content
/// almost as well as the default 6 (runs and palettes have already taken
/// the redundancy out) at a fraction of the time; see
/// `cargo bench --bench host`.
pub const ZLIB_LEVEL: u32 = 1;

/// How CPIXELs (ZRLE's compressed pixels) are written: the whole pixel, or
/// only its three low or three high bytes (32 bpp true colour of depth
/// ≤ 24 whose colour bits fit in them, as RFC 6143 §7.7.6 says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compact {
    Whole,
    Low3,
    High3,
}

/// Pixel writer for one viewer pixel format: `0x00RRGGBB` in, the
/// format's bytes out. Each channel goes through a 256-entry table already
/// scaled to the channel's maximum and shifted into place.
#[derive(Debug, Clone)]
pub struct PixelOut {
    red: [u32; 256],
    green: [u32; 256],
    blue: [u32; 256],
    bytes: usize,
    big_endian: bool,
    compact: Compact,
}

impl PixelOut {
    /// The writer for `pf`, or why the host cannot send it: colour-map
    /// formats (the host would have to send and keep a colour map for
    /// old 8-bit viewers, which no current viewer needs), sizes RFB does
    /// not have, and channels that do not fit in the pixel.
    pub fn new(pf: &PixelFormat) -> Result<Self, &'static str> {
        if !pf.true_colour {
            return Err("colour-map pixel formats are not supported");
        }
        let bytes = match pf.bits_per_pixel {
            8 => 1,
            16 => 2,
            32 => 4,
            _ => return Err("bits per pixel must be 8, 16 or 32"),
        };
        let fits = |max: u16, shift: u8| {
            let bits = 16 - max.leading_zeros();
            max == 0 || bits + u32::from(shift) <= u32::from(pf.bits_per_pixel)
        };
        if !(fits(pf.red_max, pf.red_shift)
            && fits(pf.green_max, pf.green_shift)
            && fits(pf.blue_max, pf.blue_shift))
        {
            return Err("a colour channel does not fit in the pixel");
        }
        let table = |max: u16, shift: u8| {
            let mut t = [0u32; 256];
            for (c, v) in (0u32..).zip(t.iter_mut()) {
                let scaled = (c * u32::from(max) + 127) / 255;
                *v = scaled.checked_shl(u32::from(shift)).unwrap_or(0);
            }
            t
        };
        let mask = colour_bits(pf);
        let compact = if bytes == 4 && pf.depth <= 24 {
            if mask & 0xff00_0000 == 0 {
                Compact::Low3
            } else if mask & 0xff == 0 {
                Compact::High3
            } else {
                Compact::Whole
            }
        } else {
            Compact::Whole
        };
        Ok(Self {
            red: table(pf.red_max, pf.red_shift),
            green: table(pf.green_max, pf.green_shift),
            blue: table(pf.blue_max, pf.blue_shift),
            bytes,
            big_endian: pf.big_endian,
            compact,
        })
    }

    /// The pixel value of a `0x00RRGGBB` word.
    pub fn value(&self, rgb: u32) -> u32 {
        let [_, r, g, b] = rgb.to_be_bytes();
        self.red[usize::from(r)] | self.green[usize::from(g)] | self.blue[usize::from(b)]
    }

    /// Bytes of one pixel on the wire.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The pixel's bytes in wire order.
    fn wire(&self, v: u32) -> [u8; 4] {
        if self.big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }

    /// One row of `0x00RRGGBB` words as pixels.
    fn put_row(&self, row: &[u32], out: &mut Vec<u8>) {
        match (self.bytes, self.big_endian) {
            (1, _) => out.extend(row.iter().map(|&c| self.value(c) as u8)),
            (2, false) => {
                for &c in row {
                    out.extend_from_slice(&(self.value(c) as u16).to_le_bytes());
                }
            }
            (2, true) => {
                for &c in row {
                    out.extend_from_slice(&(self.value(c) as u16).to_be_bytes());
                }
            }
            (_, false) => {
                for &c in row {
                    out.extend_from_slice(&self.value(c).to_le_bytes());
                }
            }
            (_, true) => {
                for &c in row {
                    out.extend_from_slice(&self.value(c).to_be_bytes());
                }
            }
        }
    }

    /// Bytes of one CPIXEL.
    fn cpixel_len(&self) -> usize {
        if self.compact == Compact::Whole {
            self.bytes
        } else {
            3
        }
    }

    /// One pixel value as a CPIXEL.
    fn put_cpixel(&self, v: u32, out: &mut Vec<u8>) {
        let wire = self.wire(v);
        let bytes = match (self.compact, self.big_endian) {
            (Compact::Whole, true) => wire.get(4 - self.bytes..),
            (Compact::Whole, false) => wire.get(..self.bytes),
            // The low bytes come first in little-endian, last in big.
            (Compact::Low3, false) | (Compact::High3, true) => wire.get(..3),
            (Compact::Low3, true) | (Compact::High3, false) => wire.get(1..),
        };
        out.extend_from_slice(bytes.unwrap_or_default());
    }
}

/// Every bit a colour value of `pf` can set: the whole width of each
/// channel's maximum, not the maximum's own bits (a maximum of 32 still
/// gives values 0–31 in the five bits below its own).
fn colour_bits(pf: &PixelFormat) -> u64 {
    let channel = |max: u16, shift: u8| {
        let width = 16 - max.leading_zeros();
        ((1u64 << width) - 1) << shift
    };
    channel(pf.red_max, pf.red_shift)
        | channel(pf.green_max, pf.green_shift)
        | channel(pf.blue_max, pf.blue_shift)
}

/// The rectangle `r` of `fb` (`stride` words per row) in Raw encoding.
pub fn raw(px: &PixelOut, fb: &[u32], stride: usize, r: Rect, out: &mut Vec<u8>) {
    let (x, w) = (usize::from(r.x), usize::from(r.width));
    out.reserve(w * usize::from(r.height) * px.bytes());
    for y in usize::from(r.y)..usize::from(r.y) + usize::from(r.height) {
        if let Some(row) = fb.get(y * stride + x..y * stride + x + w) {
            px.put_row(row, out);
        }
    }
}

/// The zlib stream could not be written (never seen in practice: it works
/// in memory, but flate2 reports it as possible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZlibFailed;

/// Up to 127 colours of a tile, with a small open-addressing index so that
/// looking a colour up costs the same in a 127-colour tile as in a 2-colour
/// one.
#[derive(Debug)]
struct Palette {
    colours: Vec<u32>,
    /// Index + 1 of the colour hashed here; 0 for a free slot.
    slots: [u8; 256],
}

/// Largest palette of ZRLE's palette RLE (sub-encodings 130..=255).
const MAX_PALETTE: usize = 127;

impl Palette {
    fn new() -> Self {
        Self {
            colours: Vec::with_capacity(MAX_PALETTE),
            slots: [0; 256],
        }
    }

    fn clear(&mut self) {
        self.colours.clear();
        self.slots = [0; 256];
    }

    fn len(&self) -> usize {
        self.colours.len()
    }

    /// The slot where `v` is, or the free slot where it would go.
    fn slot(&self, v: u32) -> usize {
        let mut i = (v.wrapping_mul(0x9E37_79B1) >> 24) as usize;
        loop {
            match self.slots.get(i) {
                Some(&0) | None => return i,
                Some(&s) => {
                    if self.colours.get(usize::from(s) - 1) == Some(&v) {
                        return i;
                    }
                }
            }
            i = (i + 1) % 256;
        }
    }

    fn index(&self, v: u32) -> u8 {
        self.slots
            .get(self.slot(v))
            .map_or(0, |&s| s.saturating_sub(1))
    }

    /// Adds `v` if absent; false when it is absent and the palette full.
    fn insert(&mut self, v: u32) -> bool {
        let i = self.slot(v);
        match self.slots.get_mut(i) {
            Some(s) if *s != 0 => true,
            Some(s) if self.colours.len() < MAX_PALETTE => {
                self.colours.push(v);
                *s = self.colours.len() as u8;
                true
            }
            _ => false,
        }
    }
}

/// A ZRLE run length: one more than the sum of its bytes, all of them 255
/// but the last.
fn put_run_length(len: usize, out: &mut Vec<u8>) {
    let mut rest = len - 1;
    while rest >= 255 {
        out.push(255);
        rest -= 255;
    }
    out.push(rest as u8);
}

/// Bytes of a run length.
fn run_length_len(len: usize) -> usize {
    (len - 1) / 255 + 1
}

/// Runs of equal pixels in raster order (ZRLE's runs cross row ends).
fn runs(tile: &[u32]) -> impl Iterator<Item = (u32, usize)> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let rest = tile.get(i..)?;
        let &v = rest.first()?;
        let len = rest.iter().take_while(|&&p| p == v).count();
        i += len;
        Some((v, len))
    })
}

/// ZRLE's per-tile choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TileCoding {
    Raw,
    Solid,
    Packed { bits: usize },
    PlainRle,
    PaletteRle,
}

/// The ZRLE encoder of one session: the zlib stream and work buffers.
pub struct Zrle {
    z: Compress,
    /// The rectangle's tiles before compression.
    raw: Vec<u8>,
    /// One tile's pixel values.
    tile: Vec<u32>,
    palette: Palette,
}

impl std::fmt::Debug for Zrle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Zrle")
            .field("total_in", &self.z.total_in())
            .field("total_out", &self.z.total_out())
            .finish_non_exhaustive()
    }
}

impl Default for Zrle {
    fn default() -> Self {
        Self::new()
    }
}

impl Zrle {
    pub fn new() -> Self {
        Self {
            z: Compress::new(Compression::new(ZLIB_LEVEL), true),
            raw: Vec::new(),
            tile: Vec::with_capacity(usize::from(TILE) * usize::from(TILE)),
            palette: Palette::new(),
        }
    }

    /// The rectangle `r` of `fb` (`stride` words per row) as ZRLE data: its
    /// length, then the compressed tiles.
    pub fn encode(
        &mut self,
        px: &PixelOut,
        fb: &[u32],
        stride: usize,
        r: Rect,
        out: &mut Vec<u8>,
    ) -> Result<(), ZlibFailed> {
        self.raw.clear();
        for ty in (0..r.height).step_by(usize::from(TILE)) {
            let th = usize::from(TILE.min(r.height - ty));
            for tx in (0..r.width).step_by(usize::from(TILE)) {
                let tw = usize::from(TILE.min(r.width - tx));
                let x = usize::from(r.x) + usize::from(tx);
                let y0 = usize::from(r.y) + usize::from(ty);
                self.tile.clear();
                for y in y0..y0 + th {
                    let row = fb
                        .get(y * stride + x..y * stride + x + tw)
                        .unwrap_or_default();
                    self.tile.extend(row.iter().map(|&c| px.value(c)));
                }
                self.encode_tile(px, tw, th);
            }
        }
        let len_at = out.len();
        out.extend_from_slice(&[0; 4]);
        deflate_sync(&mut self.z, &self.raw, out)?;
        let len = u32::try_from(out.len() - len_at - 4).map_err(|_| ZlibFailed)?;
        if let Some(field) = out.get_mut(len_at..len_at + 4) {
            field.copy_from_slice(&len.to_be_bytes());
        }
        Ok(())
    }

    /// One `w`×`h` tile from `self.tile`, in the cheapest sub-encoding.
    fn encode_tile(&mut self, px: &PixelOut, w: usize, h: usize) {
        let cpx = px.cpixel_len();
        self.palette.clear();
        let mut few = true;
        let (mut count, mut plain_lengths, mut palette_runs) = (0, 0, 0);
        for (v, len) in runs(&self.tile) {
            count += 1;
            plain_lengths += run_length_len(len);
            palette_runs += if len == 1 { 1 } else { 1 + run_length_len(len) };
            few = few && self.palette.insert(v);
        }
        let n = self.palette.len();
        let coding = if few && n == 1 {
            TileCoding::Solid
        } else {
            let mut best = (w * h * cpx, TileCoding::Raw);
            let mut consider = |cost: usize, coding| {
                if cost < best.0 {
                    best = (cost, coding);
                }
            };
            consider(count * cpx + plain_lengths, TileCoding::PlainRle);
            if few {
                if n <= 16 {
                    let bits = match n {
                        2 => 1,
                        3 | 4 => 2,
                        _ => 4,
                    };
                    consider(
                        n * cpx + h * (w * bits).div_ceil(8),
                        TileCoding::Packed { bits },
                    );
                }
                consider(n * cpx + palette_runs, TileCoding::PaletteRle);
            }
            best.1
        };
        self.put_tile(px, coding, w);
    }

    fn put_tile(&mut self, px: &PixelOut, coding: TileCoding, w: usize) {
        let out = &mut self.raw;
        let n = self.palette.len();
        let put_palette = |out: &mut Vec<u8>| {
            for &c in &self.palette.colours {
                px.put_cpixel(c, out);
            }
        };
        match coding {
            TileCoding::Raw => {
                out.push(0);
                for &v in &self.tile {
                    px.put_cpixel(v, out);
                }
            }
            TileCoding::Solid => {
                out.push(1);
                px.put_cpixel(self.tile.first().copied().unwrap_or(0), out);
            }
            TileCoding::Packed { bits } => {
                out.push(n as u8);
                put_palette(out);
                for row in self.tile.chunks(w.max(1)) {
                    let (mut acc, mut filled) = (0u8, 0);
                    for &v in row {
                        acc = (acc << bits) | self.palette.index(v);
                        filled += bits;
                        if filled == 8 {
                            out.push(acc);
                            (acc, filled) = (0, 0);
                        }
                    }
                    if filled > 0 {
                        out.push(acc << (8 - filled));
                    }
                }
            }
            TileCoding::PlainRle => {
                out.push(128);
                for (v, len) in runs(&self.tile) {
                    px.put_cpixel(v, out);
                    put_run_length(len, out);
                }
            }
            TileCoding::PaletteRle => {
                out.push(128 + n as u8);
                put_palette(out);
                for (v, len) in runs(&self.tile) {
                    let index = self.palette.index(v);
                    if len == 1 {
                        out.push(index);
                    } else {
                        out.push(index | 0x80);
                        put_run_length(len, out);
                    }
                }
            }
        }
    }
}

/// Compresses `input` onto `out` and ends with a sync flush, so that
/// everything given so far can be inflated by the viewer now.
fn deflate_sync(z: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), ZlibFailed> {
    // Stored blocks cost 5 bytes per 64 KiB: this is enough in one go even
    // for data that does not compress.
    out.reserve(input.len() + input.len() / 1024 + 64);
    loop {
        if out.len() == out.capacity() {
            out.reserve(4096);
        }
        let (before_in, before_out) = (z.total_in(), out.len());
        z.compress_vec(input, out, FlushCompress::Sync)
            .map_err(|_| ZlibFailed)?;
        let used = usize::try_from(z.total_in() - before_in).map_err(|_| ZlibFailed)?;
        input = input.get(used..).ok_or(ZlibFailed)?;
        if input.is_empty() && out.len() < out.capacity() {
            return Ok(());
        }
        if used == 0 && out.len() == before_out {
            return Err(ZlibFailed);
        }
    }
}
