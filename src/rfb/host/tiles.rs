//! The framebuffer as the host keeps it: the latest frame the compositor
//! gave and what the viewer was last sent, compared in 64×64 tiles.
//!
//! Two copies and nothing else, whatever the frame rate: a new frame
//! overwrites the latest one (a frame the viewer never asked for is simply
//! never sent), and what a FramebufferUpdate carries is decided only when
//! the viewer asks, by comparing the two copies tile by tile. Pixels are
//! kept as `0x00RRGGBB` words, whatever the compositor's byte order, so the
//! comparison and the encoders see one layout.

/// Side of a change-detection tile. Also ZRLE's tile size, so the
/// rectangles built from tiles cut into ZRLE tiles without remainders.
pub const TILE: u16 = 64;

/// Largest framebuffer side accepted (8K UHD is 7680×4320): two copies of
/// an 8192×8192 screen are 512 MiB, the most a frame from the compositor
/// may make the host hold.
pub const MAX_DIMENSION: u16 = 8192;

/// A rectangle of the framebuffer; empty when either side is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub width: u16,
    pub height: u16,
}

impl Rect {
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    fn right(&self) -> u32 {
        u32::from(self.x) + u32::from(self.width)
    }

    fn bottom(&self) -> u32 {
        u32::from(self.y) + u32::from(self.height)
    }

    /// The smallest rectangle holding both (an empty one adds nothing).
    pub fn union(self, other: Rect) -> Rect {
        if self.is_empty() {
            return other;
        }
        if other.is_empty() {
            return self;
        }
        let x = self.x.min(other.x);
        let y = self.y.min(other.y);
        // Both right edges are ≤ 2 × 65535, and the result is cut back to
        // u16 by clip_to before use; saturate rather than wrap.
        let width =
            u16::try_from(self.right().max(other.right()) - u32::from(x)).unwrap_or(u16::MAX);
        let height =
            u16::try_from(self.bottom().max(other.bottom()) - u32::from(y)).unwrap_or(u16::MAX);
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    pub fn intersects(&self, other: &Rect) -> bool {
        !self.is_empty()
            && !other.is_empty()
            && u32::from(self.x) < other.right()
            && u32::from(other.x) < self.right()
            && u32::from(self.y) < other.bottom()
            && u32::from(other.y) < self.bottom()
    }

    /// The part inside a `width`×`height` framebuffer.
    pub fn clip_to(self, width: u16, height: u16) -> Rect {
        if self.x >= width || self.y >= height {
            return Rect::default();
        }
        Rect {
            x: self.x,
            y: self.y,
            width: self.width.min(width - self.x),
            height: self.height.min(height - self.y),
        }
    }

    pub fn contains(&self, other: &Rect) -> bool {
        other.is_empty()
            || (self.x <= other.x
                && self.y <= other.y
                && self.right() >= other.right()
                && self.bottom() >= other.bottom())
    }
}

/// The byte order of a 32-bit frame from the compositor, named as PipeWire
/// names its `spa_video_format`s: the order of the bytes in memory. `x` is
/// ignored padding (an alpha channel, if the format has one, is ignored the
/// same way: the screen is opaque).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameFormat {
    /// B, G, R, x (`SPA_VIDEO_FORMAT_BGRx`, also BGRA): Mutter's usual.
    Bgrx,
    /// x, R, G, B (`SPA_VIDEO_FORMAT_xRGB`, also ARGB).
    Xrgb,
    /// R, G, B, x (`SPA_VIDEO_FORMAT_RGBx`, also RGBA).
    Rgbx,
    /// x, B, G, R (`SPA_VIDEO_FORMAT_xBGR`, also ABGR).
    Xbgr,
}

impl FrameFormat {
    /// The `0x00RRGGBB` word of one 4-byte pixel.
    fn word(self, px: [u8; 4]) -> u32 {
        let [r, g, b] = match self {
            FrameFormat::Bgrx => [px[2], px[1], px[0]],
            FrameFormat::Xrgb => [px[1], px[2], px[3]],
            FrameFormat::Rgbx => [px[0], px[1], px[2]],
            FrameFormat::Xbgr => [px[3], px[2], px[1]],
        };
        u32::from_be_bytes([0, r, g, b])
    }
}

/// One frame as the compositor hands it over: `height` rows of `stride`
/// bytes, each starting with `width` 4-byte pixels (the last row may stop
/// right after its pixels).
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub width: u16,
    pub height: u16,
    pub stride: usize,
    pub format: FrameFormat,
    pub data: &'a [u8],
}

impl Frame<'_> {
    /// Why this frame cannot be read, if it cannot.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.width == 0 || self.height == 0 {
            return Err("the frame is empty");
        }
        if self.width > MAX_DIMENSION || self.height > MAX_DIMENSION {
            return Err("the frame is larger than 8192 pixels on a side");
        }
        let row = usize::from(self.width) * 4;
        if self.stride < row {
            return Err("the frame's stride is shorter than a row of pixels");
        }
        let need = (usize::from(self.height) - 1)
            .checked_mul(self.stride)
            .and_then(|n| n.checked_add(row));
        match need {
            Some(need) if need <= self.data.len() => Ok(()),
            _ => Err("the frame's buffer is shorter than its size and stride"),
        }
    }
}

/// The latest frame and the viewer's copy; see the module documentation.
#[derive(Debug)]
pub struct Screen {
    width: u16,
    height: u16,
    /// The latest frame, `0x00RRGGBB`, `width` words per row.
    current: Vec<u32>,
    /// What the viewer was sent, same layout.
    sent: Vec<u32>,
    /// Whether `current` may differ from `sent` anywhere: cleared once an
    /// update has looked at the whole screen, so that a viewer asking
    /// again and again costs no comparison until a frame arrives.
    dirty: bool,
    /// Whether `sent` is what the viewer shows. Not before its first
    /// update, nor after a resize: the next update is then a whole screen,
    /// whatever was asked.
    viewer_valid: bool,
}

impl Screen {
    /// A black screen. `width` and `height` must be checked by the caller
    /// (1..=[`MAX_DIMENSION`]).
    pub fn new(width: u16, height: u16) -> Self {
        let len = usize::from(width) * usize::from(height);
        Self {
            width,
            height,
            current: vec![0; len],
            sent: vec![0; len],
            dirty: true,
            viewer_valid: false,
        }
    }

    pub fn width(&self) -> u16 {
        self.width
    }

    pub fn height(&self) -> u16 {
        self.height
    }

    pub fn whole(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            width: self.width,
            height: self.height,
        }
    }

    /// The latest frame's pixels, `width()` words per row.
    pub fn pixels(&self) -> &[u32] {
        &self.current
    }

    /// Starts over at a new size, black; the viewer must be sent everything.
    pub fn resize(&mut self, width: u16, height: u16) {
        *self = Screen::new(width, height);
    }

    /// Copies a checked frame in. A frame of another size than the screen
    /// is cropped, and what it does not cover turns black.
    pub fn set_frame(&mut self, frame: &Frame<'_>) {
        let w = usize::from(self.width);
        let copy_w = w.min(usize::from(frame.width));
        let rows = usize::from(self.height.min(frame.height));
        for (y, dst) in self.current.chunks_exact_mut(w).enumerate() {
            let src = (y < rows)
                .then(|| {
                    frame
                        .data
                        .get(y * frame.stride..y * frame.stride + copy_w * 4)
                })
                .flatten()
                .unwrap_or_default();
            let (head, tail) = dst.split_at_mut(src.len() / 4);
            for (d, s) in head.iter_mut().zip(src.chunks_exact(4)) {
                if let Ok(px) = <[u8; 4]>::try_from(s) {
                    *d = frame.format.word(px);
                }
            }
            tail.fill(0);
        }
        self.dirty = true;
    }

    /// Chooses what the next update carries and records it as sent: every
    /// tile that meets `full` (a non-incremental request), and every tile
    /// that meets `area` (an incremental one) and changed. Tiles in a row
    /// that follow one another become one rectangle. Returns the
    /// rectangles, in rows from the top; empty when there is nothing to
    /// send (the request then stays outstanding).
    pub fn take_changes(&mut self, area: Rect, full: Rect, rects: &mut Vec<Rect>) {
        rects.clear();
        let whole = self.whole();
        let full = if self.viewer_valid { full } else { whole };
        if !self.dirty && full.is_empty() {
            return;
        }
        let w = usize::from(self.width);
        for ty in (0..self.height).step_by(usize::from(TILE)) {
            let th = TILE.min(self.height - ty);
            for tx in (0..self.width).step_by(usize::from(TILE)) {
                let tile = Rect {
                    x: tx,
                    y: ty,
                    width: TILE.min(self.width - tx),
                    height: th,
                };
                let take = tile.intersects(&full) || (tile.intersects(&area) && self.differs(tile));
                if !take {
                    continue;
                }
                let (x0, x1) = (usize::from(tile.x), usize::from(tile.x + tile.width));
                for y in usize::from(ty)..usize::from(ty + th) {
                    let row = y * w;
                    if let (Some(dst), Some(src)) = (
                        self.sent.get_mut(row + x0..row + x1),
                        self.current.get(row + x0..row + x1),
                    ) {
                        dst.copy_from_slice(src);
                    }
                }
                match rects.last_mut() {
                    Some(last) if last.y == ty && last.right() == u32::from(tx) => {
                        last.width += tile.width;
                    }
                    _ => rects.push(tile),
                }
            }
        }
        if area.union(full).contains(&whole) {
            self.dirty = false;
        }
        if !rects.is_empty() {
            self.viewer_valid = true;
        }
    }

    fn differs(&self, tile: Rect) -> bool {
        let w = usize::from(self.width);
        let (x0, x1) = (usize::from(tile.x), usize::from(tile.x + tile.width));
        (usize::from(tile.y)..usize::from(tile.y + tile.height)).any(|y| {
            let row = y * w;
            self.current.get(row + x0..row + x1) != self.sent.get(row + x0..row + x1)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u16, y: u16, width: u16, height: u16) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn rect_arithmetic() {
        assert_eq!(
            rect(10, 10, 5, 5).union(rect(0, 0, 1, 1)),
            rect(0, 0, 15, 15)
        );
        assert_eq!(Rect::default().union(rect(3, 4, 5, 6)), rect(3, 4, 5, 6));
        assert_eq!(
            rect(65535, 65535, 65535, 65535).union(rect(0, 0, 1, 1)),
            rect(0, 0, 65535, 65535)
        );
        assert!(rect(0, 0, 64, 64).intersects(&rect(63, 63, 1, 1)));
        assert!(!rect(0, 0, 64, 64).intersects(&rect(64, 0, 1, 1)));
        assert!(!rect(0, 0, 64, 64).intersects(&rect(10, 10, 0, 5)));
        assert_eq!(
            rect(100, 5, 500, 500).clip_to(120, 50),
            rect(100, 5, 20, 45)
        );
        assert!(rect(120, 0, 5, 5).clip_to(120, 50).is_empty());
        assert!(rect(0, 0, 10, 10).contains(&rect(2, 2, 8, 8)));
        assert!(!rect(0, 0, 10, 10).contains(&rect(2, 2, 9, 8)));
    }

    #[test]
    fn frame_formats_give_rgb_words() {
        let px = [0x11, 0x22, 0x33, 0x44];
        assert_eq!(FrameFormat::Bgrx.word(px), 0x0033_2211);
        assert_eq!(FrameFormat::Xrgb.word(px), 0x0022_3344);
        assert_eq!(FrameFormat::Rgbx.word(px), 0x0011_2233);
        assert_eq!(FrameFormat::Xbgr.word(px), 0x0044_3322);
    }

    #[test]
    fn frame_checks() {
        let data = vec![0u8; 100 * 12 + 40];
        let ok = Frame {
            width: 10,
            height: 13,
            stride: 100,
            format: FrameFormat::Bgrx,
            data: &data,
        };
        assert_eq!(ok.check(), Ok(()));
        assert!(Frame { height: 14, ..ok }.check().is_err());
        assert!(Frame { stride: 39, ..ok }.check().is_err());
        assert!(Frame { width: 0, ..ok }.check().is_err());
        assert!(
            Frame {
                width: 8193,
                height: 1,
                stride: 8193 * 4,
                data: &vec![0; 8193 * 4],
                ..ok
            }
            .check()
            .is_err()
        );
        assert!(
            Frame {
                stride: usize::MAX,
                ..ok
            }
            .check()
            .is_err()
        );
    }

    #[test]
    fn frames_are_cropped_and_padded() {
        let mut s = Screen::new(3, 2);
        let data = [1u8, 2, 3, 0, 4, 5, 6, 0, 9, 9];
        s.set_frame(&Frame {
            width: 2,
            height: 1,
            stride: 10,
            format: FrameFormat::Rgbx,
            data: &data,
        });
        assert_eq!(s.pixels(), [0x010203, 0x040506, 0, 0, 0, 0]);
    }

    #[test]
    fn only_changed_tiles_in_the_area_are_taken() {
        let mut s = Screen::new(200, 130);
        let mut rects = Vec::new();
        // First update: everything, whatever was asked.
        s.take_changes(rect(0, 0, 1, 1), Rect::default(), &mut rects);
        assert_eq!(
            rects,
            [
                rect(0, 0, 200, 64),
                rect(0, 64, 200, 64),
                rect(0, 128, 200, 2)
            ]
        );
        s.take_changes(s.whole(), Rect::default(), &mut rects);
        assert!(rects.is_empty());
        // Change pixels in tiles (0,0), (1,0), (3,1) and (2,2).
        let mut data = vec![0u8; 200 * 130 * 4];
        for (x, y) in [(5usize, 5usize), (70, 0), (199, 127), (150, 129)] {
            data[(y * 200 + x) * 4] = 7;
        }
        let frame = Frame {
            width: 200,
            height: 130,
            stride: 800,
            format: FrameFormat::Bgrx,
            data: &data,
        };
        s.set_frame(&frame);
        // An area covering the first row of tiles only: (3,1) and (2,2) wait.
        s.take_changes(rect(0, 0, 200, 10), Rect::default(), &mut rects);
        assert_eq!(rects, [rect(0, 0, 128, 64)]);
        s.take_changes(s.whole(), Rect::default(), &mut rects);
        assert_eq!(rects, [rect(192, 64, 8, 64), rect(128, 128, 64, 2)]);
        s.take_changes(s.whole(), Rect::default(), &mut rects);
        assert!(rects.is_empty());
        // A non-incremental request sends its tiles unchanged or not.
        s.take_changes(Rect::default(), rect(64, 64, 1, 1), &mut rects);
        assert_eq!(rects, [rect(64, 64, 64, 64)]);
    }
}
