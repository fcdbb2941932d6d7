//! Accord's own RFB server (`rfb::host`) against arbitrary viewer bytes
//! and arbitrary frames.
//!
//! The first byte chooses the frame size (bits 0–2 width, 3–5 height, in
//! steps of 13 pixels, so tiles are cut at odd places), whether a valid
//! 3.8 handshake is sent first (bit 6; otherwise the handshake itself is
//! fuzzed) and whether frames come between the viewer's chunks (bit 7).
//! The second byte is the read size. The rest is the viewer's stream;
//! frames are made of the same bytes. Asserted: no panic; everything the
//! host writes after ServerInit is whole RFB messages to Accord's own
//! `ServerFramer` (so the relay in front of it can follow the stream),
//! in the pixel format the host says it uses; once the host reports an
//! error that ends the session, every later call reports it too.
#![no_main]

use accord::rfb::{Frame, FrameFormat, Host, PixelFormat, ServerFramer, ServerStep};
use libfuzzer_sys::fuzz_target;

const NAME: &[u8] = b"fuzz";

fuzz_target!(|data: &[u8]| {
    let [first, second, rest @ ..] = data else {
        return;
    };
    let width = 1 + u16::from(first & 7) * 13;
    let height = 1 + u16::from(first >> 3 & 7) * 13;
    let frames = first & 0x80 != 0;
    let chunk = usize::from(*second).max(1);
    let Ok(mut host) = Host::new(width, height, NAME) else {
        panic!("a valid size is refused");
    };

    let mut stream = Vec::new();
    if first & 0x40 != 0 {
        stream.extend_from_slice(b"RFB 003.008\n");
        stream.push(1); // security None
        stream.push(1); // ClientInit, shared
    }
    stream.extend_from_slice(rest);

    // What the host wrote before and through ServerInit: the handshake.
    let mut greeting = Vec::new();
    let mut framer: Option<(ServerFramer, PixelFormat)> = None;
    let mut ended = None;
    for (i, piece) in stream.chunks(chunk).enumerate() {
        if frames {
            let format = [
                FrameFormat::Bgrx,
                FrameFormat::Xrgb,
                FrameFormat::Rgbx,
                FrameFormat::Xbgr,
            ][i % 4];
            let (w, h) = if i % 5 == 4 { (height, width) } else { (width, height) };
            let stride = usize::from(w) * 4;
            let need = stride * usize::from(h);
            let bytes: Vec<u8> = piece.iter().copied().cycle().take(need).collect();
            let frame = Frame { width: w, height: h, stride, format, data: &bytes };
            match host.set_frame(&frame) {
                Ok(()) => assert!(ended.is_none(), "a frame taken after the end"),
                Err(e) if e.ends_session() => {
                    if let Some(prev) = &ended {
                        assert_eq!(prev, &e);
                    }
                    ended = Some(e);
                }
                Err(_) => {}
            }
        }
        match host.push(piece) {
            Ok(_) => assert!(ended.is_none(), "bytes taken after the end"),
            Err(e) => {
                assert!(e.ends_session());
                if let Some(prev) = &ended {
                    assert_eq!(prev, &e);
                }
                ended = Some(e);
            }
        }
        let out = match host.take_output() {
            Ok(out) => out,
            Err(e) => {
                assert!(e.ends_session());
                break;
            }
        };
        let mut out = out.as_slice();
        if framer.is_none() {
            greeting.extend_from_slice(out);
            out = &[];
            if host.is_running() {
                // ServerInit ends the handshake with the name's length and
                // the name; what follows it in the same write is updates.
                let mut tail = (NAME.len() as u32).to_be_bytes().to_vec();
                tail.extend_from_slice(NAME);
                let Some(at) = greeting.windows(tail.len()).position(|w| w == tail) else {
                    panic!("running without ServerInit written");
                };
                out = &greeting[at + tail.len()..];
                // Updates made in this write are already in the format
                // the viewer asked for.
                let pf = host.pixel_format();
                framer = Some((ServerFramer::new(pf), pf));
            }
        }
        if let Some((f, pf)) = framer.as_mut() {
            if host.pixel_format() != *pf {
                // The host switches formats only between updates.
                assert!(f.at_boundary(), "format switched inside a message");
                *pf = host.pixel_format();
                f.set_pixel_format(*pf);
            }
            f.set_clipboard_to_viewer(true);
            let mut rest = out;
            while !rest.is_empty() {
                match f.step(rest) {
                    Ok(ServerStep::Forward(n)) => rest = &rest[n..],
                    other => panic!("host output framed as {other:?}"),
                }
            }
            assert!(f.at_boundary(), "host output ends inside a message");
        }
    }
});
