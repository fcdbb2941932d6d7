//! Server→client framer against arbitrary server bytes.
//!
//! The first byte chooses the pixel format (bits 0–1: 8, 16, 32 bpp depth
//! 24, 32 bpp depth 32), whether the clipboard may reach the viewer (bit 2)
//! and the read size (bits 3–7). The input is fed as a relay does (a buffer
//! keeping what is not classified yet). Asserted: every step classifies
//! bytes it was given; `NeedMore` only while less than one header is
//! buffered; and the forwarded bytes, framed again, hold the same messages
//! minus the refused cut texts: no cut text the session refused reaches
//! the viewer, and nothing else is lost or invented.
#![no_main]

use accord::rfb::{MAX_SERVER_HEADER, PixelFormat, ServerFramer, ServerStep};
use libfuzzer_sys::fuzz_target;

fn pixel_format(choice: u8) -> PixelFormat {
    let (bits_per_pixel, depth, max) = match choice & 3 {
        0 => (8, 8, 7),
        1 => (16, 16, 31),
        2 => (32, 24, 255),
        _ => (32, 32, 255),
    };
    PixelFormat {
        bits_per_pixel,
        depth,
        big_endian: false,
        true_colour: true,
        red_max: max,
        green_max: max,
        blue_max: max,
        red_shift: 0,
        green_shift: 8,
        blue_shift: 16,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let pf = pixel_format(first);
    let clipboard = first & 4 != 0;
    let chunk = usize::from(first >> 3) * 37 + 1;

    let mut framer = ServerFramer::new(pf);
    framer.set_clipboard_to_viewer(clipboard);
    let mut buf = Vec::new();
    let mut forwarded = Vec::new();
    let mut dropped = 0usize;
    'read: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        while !buf.is_empty() {
            match framer.step(&buf) {
                Ok(ServerStep::Forward(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    forwarded.extend(buf.drain(..n));
                }
                Ok(ServerStep::Drop(n)) => {
                    assert!(n > 0 && n <= buf.len());
                    assert!(!clipboard, "dropped with the clipboard allowed");
                    dropped += n;
                    buf.drain(..n);
                }
                Ok(ServerStep::NeedMore) => {
                    assert!(buf.len() < MAX_SERVER_HEADER, "NeedMore with {}", buf.len());
                    break;
                }
                Err(_) => break 'read,
            }
        }
    }

    let mut again = ServerFramer::new(pf);
    again.set_clipboard_to_viewer(true);
    let mut rest = forwarded.as_slice();
    while !rest.is_empty() {
        match again.step(rest) {
            Ok(ServerStep::Forward(n)) => rest = &rest[n..],
            Ok(ServerStep::NeedMore) => break,
            other => panic!("forwarded bytes re-framed as {other:?}"),
        }
    }
    let (a, b) = (framer.counts(), again.counts());
    assert_eq!(a.updates, b.updates);
    assert_eq!(a.rects, b.rects);
    assert_eq!((a.bells, a.colour_maps), (b.bells, b.colour_maps));
    assert_eq!(a.cut_texts_forwarded, b.cut_texts_forwarded);
    if !clipboard {
        assert_eq!(b.cut_texts_forwarded, 0);
    }
    assert_eq!(a.bytes_dropped as usize, dropped);
});
