//! Hand-built server messages for each encoding and its edge cases, and the
//! recorded streams of `tests/data/rfb/` from real x11vnc and Xtigervnc.
//!
//! Most tests end a stream with a Bell and a ServerCutText: if the framer
//! had misjudged any length before them, it would not count the Bell, and
//! the cut text's bytes would not be exactly what it drops.

use super::*;
use crate::rfb::READ_CHUNK;

pub(crate) const PF32: PixelFormat = PixelFormat::RGB888;

pub(crate) const PF16: PixelFormat = PixelFormat {
    bits_per_pixel: 16,
    depth: 16,
    big_endian: false,
    true_colour: true,
    red_max: 31,
    green_max: 63,
    blue_max: 31,
    red_shift: 11,
    green_shift: 5,
    blue_shift: 0,
};

pub(crate) const PF8: PixelFormat = PixelFormat {
    bits_per_pixel: 8,
    depth: 8,
    big_endian: false,
    true_colour: true,
    red_max: 7,
    green_max: 7,
    blue_max: 3,
    red_shift: 0,
    green_shift: 3,
    blue_shift: 6,
};

/// 32 bpp but depth 32: Tight sends whole 4-byte pixels.
pub(crate) const PF32_DEPTH32: PixelFormat = PixelFormat { depth: 32, ..PF32 };

pub(crate) fn update(count: u16) -> Vec<u8> {
    let mut v = vec![0, 0];
    v.extend_from_slice(&count.to_be_bytes());
    v
}

pub(crate) fn rect(w: u16, h: u16, encoding: i32) -> Vec<u8> {
    let mut v = vec![0, 1, 0, 2];
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&encoding.to_be_bytes());
    v
}

pub(crate) fn cut_text(text: &[u8]) -> Vec<u8> {
    let mut v = vec![3, 0, 0, 0];
    v.extend_from_slice(&(text.len() as u32).to_be_bytes());
    v.extend_from_slice(text);
    v
}

/// Extended-clipboard form: negative length, flags word first.
pub(crate) fn extended_cut_text(flags: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![3, 0, 0, 0];
    v.extend_from_slice(&(-((payload.len() + 4) as i32)).to_be_bytes());
    v.extend_from_slice(&flags.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub(crate) const BELL: [u8; 1] = [2];

pub(crate) fn colour_map(n: u16) -> Vec<u8> {
    let mut v = vec![1, 0, 0, 5];
    v.extend_from_slice(&n.to_be_bytes());
    v.extend(std::iter::repeat_n(0xAB, usize::from(n) * 6));
    v
}

fn compact(len: usize) -> Vec<u8> {
    let mut v = vec![(len & 0x7f) as u8];
    if len > 0x7f {
        v[0] |= 0x80;
        v.push(((len >> 7) & 0x7f) as u8);
        if len > 0x3fff {
            v[1] |= 0x80;
            v.push((len >> 14) as u8);
        }
    }
    v
}

/// What a relay would do with the stream: forwarded bytes, dropped bytes,
/// the framer (for its counts), and the first error if any.
pub(crate) struct Run {
    pub forwarded: Vec<u8>,
    pub dropped: Vec<u8>,
    pub framer: ServerFramer,
    pub error: Option<ServerFrameError>,
    pub leftover: usize,
}

/// Feeds `stream` as a relay does: reads `chunks` (cycled) bytes at a time
/// into a buffer that keeps what was not classified yet.
pub(crate) fn run(pf: PixelFormat, clipboard: bool, stream: &[u8], chunks: &[usize]) -> Run {
    let mut framer = ServerFramer::new(pf);
    framer.set_clipboard_to_viewer(clipboard);
    let mut out = Run {
        forwarded: Vec::new(),
        dropped: Vec::new(),
        framer: framer.clone(),
        error: None,
        leftover: 0,
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().copied().cycle();
    'read: while !rest.is_empty() {
        let n = sizes.next().unwrap_or(1).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        buf.extend_from_slice(piece);
        loop {
            match framer.step(&buf) {
                Ok(ServerStep::Forward(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    out.forwarded.extend(buf.drain(..n));
                }
                Ok(ServerStep::Drop(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    out.dropped.extend(buf.drain(..n));
                }
                Ok(ServerStep::NeedMore) => {
                    assert!(
                        buf.len() < MAX_SERVER_HEADER,
                        "NeedMore with {} bytes buffered",
                        buf.len()
                    );
                    break;
                }
                Err(e) => {
                    out.error = Some(e);
                    break 'read;
                }
            }
            if buf.is_empty() {
                break;
            }
        }
    }
    out.leftover = buf.len();
    out.framer = framer;
    out
}

/// The stream must frame to its end at a boundary; returns the run.
fn whole(pf: PixelFormat, clipboard: bool, stream: &[u8]) -> Run {
    for chunks in [&[1usize][..], &[2, 3, 7], &[4096]] {
        let r = run(pf, clipboard, stream, chunks);
        assert_eq!(r.error, None, "chunks {chunks:?}");
        assert_eq!(r.leftover, 0, "chunks {chunks:?}");
        assert!(r.framer.at_boundary(), "chunks {chunks:?}");
        assert_eq!(r.forwarded.len() + r.dropped.len(), stream.len());
    }
    run(pf, clipboard, stream, &[5])
}

/// `body` (one or more rectangles, `count` of them) framed inside an
/// update followed by a Bell and a refused cut text: everything up to the
/// cut text is forwarded, exactly the cut text is dropped.
fn check_update(pf: PixelFormat, count: u16, body: &[u8]) -> ServerCounts {
    let secret = cut_text(b"patient secret");
    let mut stream = update(count);
    stream.extend_from_slice(body);
    stream.extend_from_slice(&BELL);
    let clean = stream.len();
    stream.extend_from_slice(&secret);
    let r = whole(pf, false, &stream);
    assert_eq!(r.forwarded, stream[..clean]);
    assert_eq!(r.dropped, secret);
    let c = r.framer.counts().clone();
    assert_eq!((c.updates, c.bells, c.cut_texts_dropped), (1, 1, 1));
    c
}

fn expect_error(pf: PixelFormat, stream: &[u8]) -> ServerFrameError {
    let r = run(pf, true, stream, &[1]);
    match r.error {
        Some(e) => e,
        None => panic!("no error; forwarded {}", r.forwarded.len()),
    }
}

#[test]
fn simple_messages_and_empty_update() {
    let mut stream = update(0);
    stream.extend_from_slice(&BELL);
    stream.extend(colour_map(3));
    stream.extend(colour_map(0));
    stream.extend_from_slice(&BELL);
    let r = whole(PF32, false, &stream);
    assert_eq!(r.forwarded, stream);
    let c = r.framer.counts();
    assert_eq!((c.updates, c.bells, c.colour_maps), (1, 2, 2));
}

#[test]
fn cut_texts_are_dropped_or_forwarded_whole() {
    let legacy = cut_text(b"Patient: DUPONT Marie");
    let empty = cut_text(b"");
    let extended = extended_cut_text(0x1000_0001, b"\x00\x00\x00\x05hello");
    let mut stream = BELL.to_vec();
    for m in [&legacy, &empty, &extended] {
        stream.extend_from_slice(m);
        stream.extend_from_slice(&BELL);
    }
    let refused = whole(PF32, false, &stream);
    assert_eq!(refused.forwarded, [2, 2, 2, 2]);
    assert_eq!(refused.dropped, [legacy, empty, extended].concat());
    assert_eq!(refused.framer.counts().cut_texts_dropped, 3);
    assert_eq!(
        refused.framer.counts().bytes_dropped,
        refused.dropped.len() as u64
    );

    let allowed = whole(PF32, true, &stream);
    assert_eq!(allowed.forwarded, stream);
    assert!(allowed.dropped.is_empty());
    assert_eq!(allowed.framer.counts().cut_texts_forwarded, 3);
}

#[test]
fn a_refused_cut_text_is_never_merged_into_a_forward() {
    // Everything in one read: the forwarded prefix and the dropped text
    // must come out as separate steps.
    let mut stream = BELL.to_vec();
    stream.extend(cut_text(b"secret"));
    stream.extend_from_slice(&BELL);
    let mut f = ServerFramer::new(PF32);
    assert_eq!(f.step(&stream), Ok(ServerStep::Forward(1)));
    assert_eq!(f.step(&stream[1..]), Ok(ServerStep::Drop(14)));
    assert_eq!(f.step(&stream[15..]), Ok(ServerStep::Forward(1)));
    assert!(f.at_boundary());
}

#[test]
fn clipboard_switch_applies_from_the_next_cut_text() {
    let first = cut_text(b"0123456789");
    let second = cut_text(b"abc");
    let mut f = ServerFramer::new(PF32);
    f.set_clipboard_to_viewer(true);
    assert_eq!(f.step(&first[..10]), Ok(ServerStep::Forward(10)));
    // View-only now: the text already started is finished as it began,
    // so the viewer is not left inside a message...
    f.set_clipboard_to_viewer(false);
    assert_eq!(f.step(&first[10..]), Ok(ServerStep::Forward(8)));
    assert!(f.at_boundary());
    // ...and the next one is dropped from its first byte.
    assert_eq!(f.step(&second[..1]), Ok(ServerStep::NeedMore));
    assert_eq!(f.step(&second), Ok(ServerStep::Drop(11)));
}

#[test]
fn over_long_cut_text_ends_before_its_body_arrives() {
    let mut header = vec![3, 0, 0, 0];
    header.extend_from_slice(&u32::MAX.to_be_bytes()); // −1: extended form
    let mut header2 = vec![3, 0, 0, 0];
    header2.extend_from_slice(&(MAX_SERVER_CUT_TEXT as u32 + 1).to_be_bytes());
    let mut header3 = vec![3, 0, 0, 0];
    header3.extend_from_slice(&i32::MIN.to_be_bytes());
    for (h, len) in [(header2, MAX_SERVER_CUT_TEXT + 1), (header3, 1 << 31)] {
        assert_eq!(
            expect_error(PF32, &h),
            ServerFrameError::TooLong {
                what: "ServerCutText",
                len,
                max: MAX_SERVER_CUT_TEXT
            }
        );
    }
    // −1 is a 1-byte extended payload: framed (and dropped) as such.
    header.push(9);
    let r = whole(PF32, false, &header);
    assert_eq!(r.dropped.len(), 9);
}

#[test]
fn unknown_types_and_encodings_end_and_stick() {
    for t in 4..=255u8 {
        assert_eq!(expect_error(PF32, &[t]), ServerFrameError::UnknownType(t));
    }
    for enc in [
        3, 4, 6, 8, 15, 21, 50, -1, -23, -247, -312, -313, -305, -316,
    ] {
        let mut s = update(1);
        s.extend(rect(1, 1, enc));
        assert_eq!(
            expect_error(PF32, &s),
            ServerFrameError::UnknownEncoding(enc)
        );
    }
    // The bytes before the bad message are still classified; the error
    // comes on the next call and on every call after.
    let mut f = ServerFramer::new(PF32);
    assert_eq!(f.step(&[2, 2, 77]), Ok(ServerStep::Forward(2)));
    let e = Err(ServerFrameError::UnknownType(77));
    assert_eq!(f.step(&[77]), e);
    assert_eq!(f.step(&[2]), e);
}

#[test]
fn raw_at_every_depth_and_zero_size_rects() {
    for (pf, bpp) in [(PF8, 1), (PF16, 2), (PF32, 4)] {
        let mut body = rect(3, 5, 0);
        body.extend(vec![0x5A; 3 * 5 * bpp]);
        for (w, h) in [(0, 5), (7, 0), (0, 0)] {
            body.extend(rect(w, h, 0));
        }
        let c = check_update(pf, 4, &body);
        assert_eq!(c.rects_of(0), 4);
    }
    let bad = PixelFormat {
        bits_per_pixel: 24,
        ..PF32
    };
    let mut s = update(1);
    s.extend(rect(1, 1, 0));
    assert_eq!(expect_error(bad, &s), ServerFrameError::PixelFormat(24));
}

#[test]
fn copy_rect_rre_and_pseudo_rects() {
    let mut body = rect(10, 10, 1);
    body.extend([0, 1, 0, 2]);
    // RRE, 16 bpp: 2 subrects, each a colour + 4×u16.
    body.extend(rect(4, 4, 2));
    body.extend(2u32.to_be_bytes());
    body.extend([0xAA; 2]);
    body.extend([0x11; 2 * (2 + 8)]);
    body.extend(rect(0, 0, 2));
    body.extend(0u32.to_be_bytes());
    body.extend([0xAA; 2]);
    // Cursor 9×2 at 16 bpp: pixels + mask rows of 2 bytes.
    body.extend(rect(9, 2, -239));
    body.extend(vec![0x33; 9 * 2 * 2 + 2 * 2]);
    // XCursor 9×2: two colours + two masks; empty XCursor has no data.
    body.extend(rect(9, 2, -240));
    body.extend(vec![0x44; 6 + 2 * 2 * 2]);
    body.extend(rect(0, 0, -240));
    body.extend(rect(800, 600, -223));
    body.extend(rect(0, 0, -258));
    body.extend(rect(0, 0, -257));
    // DesktopName.
    body.extend(rect(0, 0, -307));
    body.extend(5u32.to_be_bytes());
    body.extend(b"ward3");
    // ExtendedDesktopSize with 2 screens.
    body.extend(rect(1024, 768, -308));
    body.extend([2, 0, 0, 0]);
    body.extend(vec![0x55; 2 * 16]);
    let c = check_update(PF16, 11, &body);
    for (enc, n) in [
        (1, 1),
        (2, 2),
        (-239, 1),
        (-240, 2),
        (-223, 1),
        (-258, 1),
        (-257, 1),
        (-307, 1),
        (-308, 1),
    ] {
        assert_eq!(c.rects_of(enc), n, "encoding {enc}");
    }
}

#[test]
fn rre_and_desktop_name_lengths_are_capped() {
    let mut s = update(1);
    s.extend(rect(2, 2, 2));
    s.extend(5u32.to_be_bytes());
    assert!(matches!(
        expect_error(PF32, &s),
        ServerFrameError::TooLong { len: 5, max: 4, .. }
    ));
    let mut s = update(1);
    s.extend(rect(0, 0, -307));
    s.extend(u32::MAX.to_be_bytes());
    assert!(matches!(
        expect_error(PF32, &s),
        ServerFrameError::TooLong {
            what: "DesktopName",
            ..
        }
    ));
}

#[test]
fn last_rect_ends_the_update_whatever_its_count() {
    let mut body = rect(1, 1, 0);
    body.extend([9; 4]);
    body.extend(rect(0, 0, -224));
    let c = check_update(PF32, 0xFFFF, &body);
    assert_eq!(c.rects_of(-224), 1);
    // Also with a count that was not 0xFFFF.
    check_update(PF32, 7, &rect(0, 0, -224));
}

#[test]
fn zrle_length_is_streamed_and_capped() {
    let mut body = rect(64, 64, 16);
    body.extend(300u32.to_be_bytes());
    body.extend(vec![0x78; 300]);
    body.extend(rect(1, 1, 17)); // ZYWRLE: same framing
    body.extend(0u32.to_be_bytes());
    let c = check_update(PF32, 2, &body);
    assert_eq!((c.rects_of(16), c.rects_of(17)), (1, 1));

    // 2³²−1 must not make the framer pass 4 GB: an error, at once.
    let mut s = update(1);
    s.extend(rect(1920, 1080, 16));
    s.extend(u32::MAX.to_be_bytes());
    assert_eq!(
        expect_error(PF32, &s),
        ServerFrameError::TooLong {
            what: "ZRLE data",
            len: u64::from(u32::MAX),
            max: 1920 * 1080 * 8 + 64 * 1024
        }
    );
    // Whatever the size, never more than MAX_COMPRESSED_RECT.
    let mut s = update(1);
    s.extend(rect(65535, 65535, 16));
    s.extend(u32::MAX.to_be_bytes());
    assert!(matches!(
        expect_error(PF32, &s),
        ServerFrameError::TooLong {
            max: MAX_COMPRESSED_RECT,
            ..
        }
    ));
    // A tiny rectangle with a huge length is refused too.
    let mut s = update(1);
    s.extend(rect(1, 1, 16));
    s.extend((1u32 << 20).to_be_bytes());
    assert!(matches!(
        expect_error(PF32, &s),
        ServerFrameError::TooLong { .. }
    ));
}

#[test]
fn hextile_tiles_at_the_right_and_bottom_edges() {
    // 20×18 at 16 bpp: tiles 16×16, 4×16, 16×2, 4×2.
    let bpp = 2;
    let mut body = rect(20, 18, 5);
    // Tile 1: background + foreground + 3 plain subrects.
    body.extend([2 | 4 | 8]);
    body.extend([0xB0; 2]);
    body.extend([0xF0; 2]);
    body.push(3);
    body.extend([0x12; 3 * 2]);
    // Tile 2 (right edge, 4×16): raw; the other bits are ignored.
    body.extend([1 | 2 | 8 | 16]);
    body.extend(vec![0x77; 4 * 16 * bpp]);
    // Tile 3 (bottom edge, 16×2): coloured subrects.
    body.extend([8 | 16]);
    body.push(2);
    body.extend(vec![0x34; 2 * (bpp + 2)]);
    // Tile 4 (corner, 4×2): nothing specified (same background).
    body.push(0);
    // A zero-size Hextile rect has no tiles at all.
    body.extend(rect(0, 9, 5));
    // One exact 16×16 tile, raw.
    body.extend(rect(16, 16, 5));
    body.push(1);
    body.extend(vec![0x66; 16 * 16 * bpp]);
    let c = check_update(PF16, 3, &body);
    assert_eq!(c.rects_of(5), 3);
}

#[test]
fn hextile_raw_corner_tile_size_matters() {
    // If the corner tile were counted as 16×16, the Bell would be eaten.
    let mut body = rect(17, 17, 5);
    for (w, h) in [(16, 16), (1, 16), (16, 1), (1, 1)] {
        body.push(1);
        body.extend(vec![0x42; w * h * 4]);
    }
    check_update(PF32, 1, &body);
}

fn tight_rect(w: u16, h: u16, tail: &[u8]) -> Vec<u8> {
    let mut v = rect(w, h, 7);
    v.extend_from_slice(tail);
    v
}

#[test]
fn tight_fill_and_jpeg_with_compact_lengths() {
    let mut body = Vec::new();
    // Fill: TPIXEL is 3 bytes for 32 bpp depth 24 true colour.
    body.extend(tight_rect(100, 100, &[0x80, 1, 2, 3]));
    // JPEG with compact lengths of 1, 2 and 3 bytes.
    for len in [0x7f, 0x80, 0x3fff, 0x4000, 70_000] {
        let mut t = vec![0x90];
        t.extend(compact(len));
        t.extend(vec![0xEE; len]);
        body.extend(tight_rect(200, 200, &t));
    }
    let c = check_update(PF32, 6, &body);
    assert_eq!(c.rects_of(7), 6);
    // Fill with whole pixels when depth is 32.
    check_update(PF32_DEPTH32, 1, &tight_rect(1, 1, &[0x80, 1, 2, 3, 4]));
    check_update(PF16, 1, &tight_rect(1, 1, &[0x80, 1, 2]));
}

#[test]
fn tight_basic_data_below_12_bytes_has_no_length() {
    // Copy filter (implicit), TPIXEL 3: 1×3 = 9 bytes, sent raw.
    let mut body = tight_rect(1, 3, &[0x00]);
    body.extend([0xC0; 9]);
    // 2×2 = 12 bytes: compressed, with a compact length.
    body.extend(tight_rect(2, 2, &[0x10, 5, 1, 2, 3, 4, 5]));
    // Explicit copy filter, 16 bpp: 11 bytes would be odd; 5×1 = 10 raw.
    check_update(PF32, 2, &body);
    let mut body = tight_rect(5, 1, &[0x40, 0]);
    body.extend([0xC1; 10]);
    body.extend(tight_rect(6, 1, &[0x40, 0, 3, 9, 9, 9]));
    check_update(PF16, 2, &body);
}

#[test]
fn tight_palette_of_two_and_more_colours() {
    let mut body = Vec::new();
    // 2 colours: 1 bit per pixel, rows padded. 88×1 → 11 bytes, raw.
    body.extend(tight_rect(
        88,
        1,
        &[0x40, 1, 1, 0xA, 0xA, 0xA, 0xB, 0xB, 0xB],
    ));
    body.extend([0x0F; 11]);
    // 89×1 → 12 bytes: compact length.
    body.extend(tight_rect(
        89,
        1,
        &[0x40, 1, 1, 0xA, 0xA, 0xA, 0xB, 0xB, 0xB, 2, 7, 7],
    ));
    // 3 colours: 1 byte per pixel. 11×1 raw, 12×1 compressed.
    let pal3 = [0x40, 1, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3];
    let mut t = pal3.to_vec();
    t.extend([1; 11]);
    body.extend(tight_rect(11, 1, &t));
    let mut t = pal3.to_vec();
    t.extend([1, 0xAB]);
    body.extend(tight_rect(12, 1, &t));
    // A mask row padded to a byte: 9×2 at 2 colours = 4 bytes, raw.
    let mut t = vec![0x40, 1, 1, 0, 0, 0, 1, 1, 1];
    t.extend([0xFF; 4]);
    body.extend(tight_rect(9, 2, &t));
    let c = check_update(PF32, 5, &body);
    assert_eq!(c.rects_of(7), 5);
}

#[test]
fn tight_gradient_and_bad_controls() {
    // Gradient: as many bytes as the copy filter.
    let mut body = tight_rect(2, 1, &[0x40, 2]);
    body.extend([0x99; 6]);
    body.extend(tight_rect(10, 10, &[0x40, 2, 3, 1, 2, 3]));
    check_update(PF32, 2, &body);

    for (tail, what) in [
        (&[0xA0][..], "Tight compression control"),
        (&[0xF0][..], "Tight compression control"),
        (&[0x40, 3][..], "Tight filter id"),
    ] {
        let mut s = update(1);
        s.extend(tight_rect(4, 4, tail));
        assert_eq!(expect_error(PF32, &s), ServerFrameError::Malformed(what));
    }
}

#[test]
fn largest_header_is_bounded_and_fits_a_read() {
    // Tight, 256-colour palette of 4-byte pixels, 3-byte compact length.
    let mut header = tight_rect(1000, 1000, &[0x40, 1, 255]);
    header.extend(vec![0x10; 256 * 4]);
    header.extend(compact(0x4000));
    assert_eq!(header.len(), MAX_SERVER_HEADER);
    let mut f = ServerFramer::new(PF32_DEPTH32);
    assert_eq!(f.step(&update(1)), Ok(ServerStep::Forward(4)));
    for n in 0..header.len() {
        assert_eq!(f.step(&header[..n]), Ok(ServerStep::NeedMore), "{n}");
    }
    assert_eq!(f.step(&header), Ok(ServerStep::Forward(MAX_SERVER_HEADER)));
    const { assert!(MAX_SERVER_HEADER < READ_CHUNK / 16) };
}

#[test]
fn large_raw_update_streams_without_waiting() {
    // A 1920×1080 raw frame: each read is classified as it arrives.
    let pixels = vec![0x3Cu8; 1920 * 1080 * 4];
    let mut f = ServerFramer::new(PF32);
    let mut head = update(1);
    head.extend(rect(1920, 1080, 0));
    assert_eq!(f.step(&head), Ok(ServerStep::Forward(16)));
    let mut steps = 0;
    for chunk in pixels.chunks(READ_CHUNK) {
        assert_eq!(f.step(chunk), Ok(ServerStep::Forward(chunk.len())));
        steps += 1;
        assert_eq!(f.at_boundary(), steps == pixels.len().div_ceil(READ_CHUNK));
    }
}

#[test]
fn pixel_format_changes_from_the_next_update() {
    // Update 1 at 32 bpp; SetPixelFormat(8 bpp) forwarded mid-update;
    // update 2 at 8 bpp.
    let mut first = update(2);
    first.extend(rect(2, 2, 0));
    first.extend([1; 16]);
    let mut second_rect = rect(2, 2, 0);
    second_rect.extend([1; 16]);
    let mut second = update(1);
    second.extend(rect(2, 2, 0));
    second.extend([2; 4]);
    second.extend(BELL);

    let mut f = ServerFramer::new(PF32);
    assert_eq!(f.step(&first), Ok(ServerStep::Forward(first.len())));
    f.set_pixel_format(PF8);
    assert_eq!(
        f.step(&second_rect),
        Ok(ServerStep::Forward(second_rect.len()))
    );
    assert!(f.at_boundary());
    assert_eq!(f.step(&second), Ok(ServerStep::Forward(second.len())));
    assert!(f.at_boundary());
    assert_eq!(f.counts().bells, 1);
}

// ---- recorded streams ----

fn recording(name: &str) -> (PixelFormat, Vec<u8>) {
    let path = format!("{}/tests/data/rfb/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (pf, stream) = bytes.split_at(16);
    let pf = PixelFormat::read(&mut Reader::new(pf)).expect("16-byte pixel format");
    (pf, stream.to_vec())
}

pub(crate) const RECORDINGS: [&str; 6] = [
    "x11vnc-tight.bin",
    "x11vnc-zrle.bin",
    "x11vnc-hextile-16bpp.bin",
    "x11vnc-raw-8bpp.bin",
    "xvnc-tight.bin",
    "xvnc-zrle.bin",
];

/// Chunk sizes from a small deterministic generator (no test is flaky).
fn random_chunks(seed: u64, n: usize) -> Vec<usize> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let r = (x >> 33) as usize;
            // Mostly small reads, sometimes a full one.
            if r.is_multiple_of(5) {
                READ_CHUNK
            } else {
                1 + r % 3000
            }
        })
        .collect()
}

#[test]
fn recordings_frame_to_the_end_whatever_the_chunking() {
    for name in RECORDINGS {
        let (pf, stream) = recording(name);
        let mut reference: Option<(Vec<u8>, Vec<u8>, ServerCounts)> = None;
        for seed in 0..6 {
            let chunks = random_chunks(seed, 64);
            let r = run(pf, false, &stream, &chunks);
            assert_eq!(r.error, None, "{name} seed {seed}");
            assert_eq!(r.leftover, 0, "{name} seed {seed}");
            assert!(r.framer.at_boundary(), "{name} seed {seed}");
            let got = (r.forwarded, r.dropped, r.framer.counts().clone());
            match &reference {
                None => reference = Some(got),
                Some(want) => assert!(*want == got, "{name}: seed {seed} differs"),
            }
        }
        let Some((forwarded, dropped, counts)) = reference else {
            continue;
        };
        assert!(counts.updates > 3, "{name}: {counts:?}");
        assert_eq!(forwarded.len() + dropped.len(), stream.len());
        // With the clipboard allowed everything passes, byte for byte.
        let open = run(pf, true, &stream, &[READ_CHUNK]);
        assert_eq!(open.forwarded, stream, "{name}");
        eprintln!("{name}: {} bytes, {counts:?}", stream.len());
    }
}

#[test]
fn recordings_use_the_encodings_they_were_made_for() {
    for (name, encoding) in [
        ("x11vnc-tight.bin", 7),
        ("x11vnc-zrle.bin", 16),
        ("x11vnc-hextile-16bpp.bin", 5),
        ("x11vnc-raw-8bpp.bin", 0),
        ("xvnc-tight.bin", 7),
        ("xvnc-zrle.bin", 16),
    ] {
        let (pf, stream) = recording(name);
        let r = run(pf, false, &stream, &[READ_CHUNK]);
        let c = r.framer.counts();
        assert!(c.rects_of(encoding) > 10, "{name}: {c:?}");
        if name.starts_with("x11vnc") {
            assert!(c.rects_of(-239) > 0, "{name}: no cursor: {c:?}");
        }
    }
}

#[test]
fn xvnc_clipboard_never_reaches_a_refused_viewer() {
    for name in ["xvnc-tight.bin", "xvnc-zrle.bin"] {
        let (pf, stream) = recording(name);
        let r = run(pf, false, &stream, &random_chunks(99, 64));
        let c = r.framer.counts();
        assert!(c.cut_texts_dropped >= 3, "{name}: {c:?}");
        let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        for secret in [&b"DUPONT"[..], b"selected text", b"presse-papiers"] {
            assert!(find(&stream, secret), "{name} lacks {secret:?}");
            assert!(!find(&r.forwarded, secret), "{name}: {secret:?} forwarded");
            assert!(find(&r.dropped, secret), "{name}: {secret:?} not dropped");
        }
        // What was dropped is exactly a sequence of ServerCutText messages.
        let mut rest = r.dropped.as_slice();
        while !rest.is_empty() {
            assert_eq!(rest.first(), Some(&3));
            let len = u32::from_be_bytes(rest[4..8].try_into().unwrap()) as usize;
            rest = &rest[8 + len..];
        }
    }
}

/// A relay with a switch to make (her screen hidden) asks each step to
/// stop at the end of the message it is in: two raw updates and a bell
/// back to back, in one buffer, come out one message per step.
#[test]
fn a_step_stops_at_each_message_end_when_asked() {
    let mut one = update(2);
    for _ in 0..2 {
        one.extend(rect(3, 2, 0));
        one.extend(vec![7u8; 3 * 2 * 4]);
    }
    let mut stream = one.clone();
    stream.extend(&one);
    stream.push(2); // Bell
    let mut f = ServerFramer::new(PF32);
    f.set_stop_at_boundary(true);
    let mut cuts = Vec::new();
    let mut pos = 0;
    while pos < stream.len() {
        match f.step(&stream[pos..]).unwrap() {
            ServerStep::Forward(n) | ServerStep::Drop(n) => {
                pos += n;
                assert!(f.at_boundary(), "stopped mid-message at {pos}");
                cuts.push(pos);
            }
            ServerStep::NeedMore => panic!("all there"),
        }
    }
    assert_eq!(cuts, [one.len(), 2 * one.len(), 2 * one.len() + 1]);
    // Without the switch, one step takes everything.
    let mut f = ServerFramer::new(PF32);
    assert_eq!(f.step(&stream).unwrap(), ServerStep::Forward(stream.len()));
}
