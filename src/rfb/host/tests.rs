//! The host against Accord's own client side: `UpstreamHandshake` for the
//! handshake, `ServerFramer` for the message boundaries of everything it
//! sends, and a small Raw/ZRLE decoder written here from RFC 6143 (not from
//! the encoder) for the pixels.

use flate2::{Decompress, FlushDecompress};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::rfb::handshake::{ServerInit, UpstreamHandshake, UpstreamProgress};
use crate::rfb::server::tests::{PF8, PF16};
use crate::rfb::{ServerFramer, ServerStep};

// ---------------------------------------------------------------------
// The viewer side.

/// Runs UpstreamHandshake against the host, `chunk` bytes at a time each
/// way, and returns the ServerInit it parsed.
fn handshake_chunked(host: &mut Host, chunk: usize) -> ServerInit {
    let mut viewer = UpstreamHandshake::new(None);
    let mut to_host = viewer.take_output();
    let mut to_viewer = host.take_output().expect("host output");
    for _ in 0..1000 {
        let n = chunk.min(to_viewer.len());
        let piece: Vec<u8> = to_viewer.drain(..n).collect();
        if !piece.is_empty() {
            match viewer.push(&piece).expect("viewer handshake") {
                UpstreamProgress::NeedMore => {}
                UpstreamProgress::Done {
                    server_init,
                    leftover,
                } => {
                    assert!(leftover.is_empty() && to_viewer.is_empty());
                    to_host.extend(viewer.take_output());
                    for piece in to_host.chunks(chunk) {
                        let events = host.push(piece).expect("host handshake");
                        assert!(events.is_empty());
                    }
                    assert!(host.is_running());
                    assert!(host.take_output().expect("host output").is_empty());
                    return server_init;
                }
            }
        }
        to_host.extend(viewer.take_output());
        let n = chunk.min(to_host.len());
        let piece: Vec<u8> = to_host.drain(..n).collect();
        assert!(host.push(&piece).expect("host handshake").is_empty());
        to_viewer.extend(host.take_output().expect("host output"));
    }
    panic!("the handshake did not finish");
}

fn send(host: &mut Host, messages: &[ClientMessage]) -> Vec<HostEvent> {
    let bytes: Vec<u8> = messages.iter().flat_map(ClientMessage::to_bytes).collect();
    host.push(&bytes).expect("push")
}

fn request(incremental: bool, x: u16, y: u16, width: u16, height: u16) -> ClientMessage {
    ClientMessage::FramebufferUpdateRequest {
        incremental,
        x,
        y,
        width,
        height,
    }
}

fn whole(incremental: bool) -> ClientMessage {
    request(incremental, 0, 0, u16::MAX, u16::MAX)
}

/// A rectangle as received, with the ZRLE sub-encodings of its tiles.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Received {
    rect: Rect,
    encoding: i32,
    subencodings: Vec<u8>,
}

/// What a viewer keeps: its framebuffer of pixel values, its zlib stream,
/// and Accord's ServerFramer following the same bytes.
struct Viewer {
    pf: PixelFormat,
    width: u16,
    height: u16,
    fb: Vec<u32>,
    inflate: Decompress,
    framer: ServerFramer,
    cut_texts: Vec<Vec<u8>>,
}

impl Viewer {
    fn new(init: &ServerInit) -> Self {
        Self {
            pf: init.pixel_format,
            width: init.width,
            height: init.height,
            fb: vec![0; usize::from(init.width) * usize::from(init.height)],
            inflate: Decompress::new(true),
            framer: ServerFramer::new(init.pixel_format),
            cut_texts: Vec::new(),
        }
    }

    fn set_pixel_format(&mut self, pf: PixelFormat) {
        self.pf = pf;
        self.framer.set_pixel_format(pf);
    }

    /// Takes bytes from the host: they must frame (whole messages, no
    /// error) and decode. Returns the updates' rectangles.
    fn receive(&mut self, bytes: &[u8]) -> Vec<Vec<Received>> {
        self.framer.set_clipboard_to_viewer(true);
        let mut rest = bytes;
        while !rest.is_empty() {
            match self.framer.step(rest) {
                Ok(ServerStep::Forward(n)) => rest = &rest[n..],
                other => panic!("ServerFramer: {other:?}"),
            }
        }
        assert!(self.framer.at_boundary(), "output ends inside a message");
        let mut r = Bytes(bytes);
        let mut updates = Vec::new();
        while !r.0.is_empty() {
            match r.u8() {
                0 => {
                    r.take(1);
                    let count = r.u16();
                    let rects = (0..count).map(|_| self.rect(&mut r)).collect();
                    updates.push(rects);
                }
                3 => {
                    r.take(3);
                    let len = r.u32() as usize;
                    self.cut_texts.push(r.take(len).to_vec());
                }
                other => panic!("message type {other}"),
            }
        }
        updates
    }

    fn rect(&mut self, r: &mut Bytes<'_>) -> Received {
        let rect = Rect {
            x: r.u16(),
            y: r.u16(),
            width: r.u16(),
            height: r.u16(),
        };
        let encoding = r.u32() as i32;
        let mut subencodings = Vec::new();
        match encoding {
            0 => {
                let bpp = usize::from(self.pf.bits_per_pixel / 8);
                for y in 0..rect.height {
                    for x in 0..rect.width {
                        let v = pixel(&self.pf, r.take(bpp));
                        self.put(rect.x + x, rect.y + y, v);
                    }
                }
            }
            16 => {
                let len = r.u32() as usize;
                let data = self.inflate_all(r.take(len));
                let mut t = Bytes(&data);
                for ty in (0..rect.height).step_by(64) {
                    for tx in (0..rect.width).step_by(64) {
                        let w = 64.min(rect.width - tx);
                        let h = 64.min(rect.height - ty);
                        let tile = self.zrle_tile(&mut t, usize::from(w), usize::from(h));
                        subencodings.push(tile.0);
                        for (i, v) in tile.1.into_iter().enumerate() {
                            let (x, y) = (i % usize::from(w), i / usize::from(w));
                            self.put(rect.x + tx + x as u16, rect.y + ty + y as u16, v);
                        }
                    }
                }
                assert!(t.0.is_empty(), "ZRLE data left over");
            }
            -223 => {
                self.width = rect.width;
                self.height = rect.height;
                self.fb = vec![0; usize::from(rect.width) * usize::from(rect.height)];
            }
            other => panic!("encoding {other}"),
        }
        Received {
            rect,
            encoding,
            subencodings,
        }
    }

    fn put(&mut self, x: u16, y: u16, v: u32) {
        assert!(
            x < self.width && y < self.height,
            "pixel outside the screen"
        );
        self.fb[usize::from(y) * usize::from(self.width) + usize::from(x)] = v;
    }

    fn inflate_all(&mut self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() * 4 + 1024);
        let mut input = data;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.capacity() + 4096);
            }
            let before = self.inflate.total_in();
            self.inflate
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
                .expect("inflate");
            input = &input[(self.inflate.total_in() - before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                return out;
            }
        }
    }

    /// One ZRLE tile: its sub-encoding and its pixel values.
    fn zrle_tile(&self, t: &mut Bytes<'_>, w: usize, h: usize) -> (u8, Vec<u32>) {
        let sub = t.u8();
        let n = w * h;
        let palette = |t: &mut Bytes<'_>, size: usize| -> Vec<u32> {
            (0..size).map(|_| self.cpixel(t)).collect()
        };
        let run = |t: &mut Bytes<'_>| -> usize {
            let mut len = 1;
            loop {
                let b = t.u8();
                len += usize::from(b);
                if b != 255 {
                    return len;
                }
            }
        };
        let pixels = match sub {
            0 => (0..n).map(|_| self.cpixel(t)).collect(),
            1 => vec![self.cpixel(t); n],
            2..=16 => {
                let pal = palette(t, usize::from(sub));
                let bits = match sub {
                    2 => 1,
                    3 | 4 => 2,
                    _ => 4,
                };
                let mut px = Vec::with_capacity(n);
                for _ in 0..h {
                    let row = t.take((w * bits).div_ceil(8));
                    for x in 0..w {
                        let byte = row[x * bits / 8];
                        let shift = 8 - bits - (x * bits % 8);
                        let index = usize::from(byte >> shift) & ((1 << bits) - 1);
                        px.push(pal[index]);
                    }
                }
                px
            }
            128 => {
                let mut px = Vec::with_capacity(n);
                while px.len() < n {
                    let v = self.cpixel(t);
                    let len = run(t);
                    px.extend(std::iter::repeat_n(v, len));
                }
                px
            }
            130..=255 => {
                let pal = palette(t, usize::from(sub - 128));
                let mut px = Vec::with_capacity(n);
                while px.len() < n {
                    let index = t.u8();
                    let len = if index & 0x80 != 0 { run(t) } else { 1 };
                    px.extend(std::iter::repeat_n(pal[usize::from(index & 0x7f)], len));
                }
                px
            }
            other => panic!("ZRLE sub-encoding {other}"),
        };
        assert_eq!(pixels.len(), n, "ZRLE runs overflow their tile");
        (sub, pixels)
    }

    /// RFC 6143 §7.7.6: a CPIXEL is 3 bytes for 32 bpp true colour of
    /// depth ≤ 24 whose colour bits fit in the low (checked first) or
    /// high 3 bytes.
    fn cpixel(&self, t: &mut Bytes<'_>) -> u32 {
        let pf = &self.pf;
        // "All of the bits making up the intensities": each channel's
        // whole width below its maximum.
        let width = |max: u16, shift: u8| ((1u64 << (16 - max.leading_zeros())) - 1) << shift;
        let mask = width(pf.red_max, pf.red_shift)
            | width(pf.green_max, pf.green_shift)
            | width(pf.blue_max, pf.blue_shift);
        if pf.true_colour && pf.bits_per_pixel == 32 && pf.depth <= 24 {
            let low = mask & 0xff00_0000 == 0;
            let high = !low && mask & 0xff == 0;
            if low || high {
                let b = t.take(3);
                let (b0, b1, b2) = (u32::from(b[0]), u32::from(b[1]), u32::from(b[2]));
                let v = if pf.big_endian {
                    (b0 << 16) | (b1 << 8) | b2
                } else {
                    (b2 << 16) | (b1 << 8) | b0
                };
                return if low { v } else { v << 8 };
            }
        }
        pixel(pf, t.take(usize::from(pf.bits_per_pixel / 8)))
    }
}

/// A pixel value from its bytes.
fn pixel(pf: &PixelFormat, bytes: &[u8]) -> u32 {
    let mut v = 0u32;
    if pf.big_endian {
        for &b in bytes {
            v = (v << 8) | u32::from(b);
        }
    } else {
        for &b in bytes.iter().rev() {
            v = (v << 8) | u32::from(b);
        }
    }
    v
}

/// What a `0x00RRGGBB` colour must arrive as: each channel scaled to its
/// maximum, rounded, shifted into place.
fn expected_value(pf: &PixelFormat, rgb: u32) -> u32 {
    let channel = |c: u32, max: u16, shift: u8| -> u32 {
        let v = (c * u32::from(max) + 127) / 255;
        if shift >= 32 { 0 } else { v << shift }
    };
    channel((rgb >> 16) & 255, pf.red_max, pf.red_shift)
        | channel((rgb >> 8) & 255, pf.green_max, pf.green_shift)
        | channel(rgb & 255, pf.blue_max, pf.blue_shift)
}

struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(self.0.len() >= n, "message cut short");
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        head
    }
    fn u8(&mut self) -> u8 {
        self.take(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
}

// ---------------------------------------------------------------------
// Frames.

/// A screen of `0x00RRGGBB` words.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Picture {
    width: u16,
    height: u16,
    rgb: Vec<u32>,
}

/// splitmix64: a deterministic source of test pixels.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

impl Picture {
    /// Desktop-like content: 16×16 blocks, each solid, two-coloured text,
    /// a few colours, a gradient or noise, so that every ZRLE
    /// sub-encoding gets used.
    fn desktop(width: u16, height: u16, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let colours: Vec<u32> = (0..40).map(|_| rng.next() as u32 & 0xff_ffff).collect();
        let (w, h) = (usize::from(width), usize::from(height));
        let mut rgb = vec![0; w * h];
        for by in (0..h).step_by(16) {
            for bx in (0..w).step_by(16) {
                let style = rng.below(6);
                let a = colours[rng.below(40) as usize];
                let b = colours[rng.below(40) as usize];
                for y in by..(by + 16).min(h) {
                    for x in bx..(bx + 16).min(w) {
                        rgb[y * w + x] = match style {
                            0 => a,
                            1 => [a, b][rng.below(2) as usize],
                            2 => colours[rng.below(7) as usize],
                            3 => ((x as u32 * 16) << 16) | (((y as u32 * 8) & 255) << 8) | 0x40,
                            4 => rng.next() as u32 & 0xff_ffff,
                            _ => {
                                if (x / 3 + y) % 5 == 0 {
                                    b
                                } else {
                                    a
                                }
                            }
                        };
                    }
                }
            }
        }
        Self { width, height, rgb }
    }

    /// Paints random pixels in `tiles` (tile coordinates) with colours
    /// that differ from what is there; returns the tiles really touched.
    fn change_tiles(&mut self, tiles: &[(u16, u16)], seed: u64) -> Vec<(u16, u16)> {
        let mut rng = Rng(seed);
        let mut touched = Vec::new();
        for &(tx, ty) in tiles {
            let (x0, y0) = (u32::from(tx) * 64, u32::from(ty) * 64);
            if x0 >= u32::from(self.width) || y0 >= u32::from(self.height) {
                continue;
            }
            let w = (u32::from(self.width) - x0).min(64);
            let h = (u32::from(self.height) - y0).min(64);
            for _ in 0..=rng.below(20) {
                let x = x0 + rng.below(u64::from(w)) as u32;
                let y = y0 + rng.below(u64::from(h)) as u32;
                let i = (y * u32::from(self.width) + x) as usize;
                self.rgb[i] ^= 1 + (rng.next() as u32 & 0xff_fffe);
            }
            if !touched.contains(&(tx, ty)) {
                touched.push((tx, ty));
            }
        }
        touched
    }

    /// The bytes PipeWire would hand over, `pad` spare bytes per row.
    fn bytes(&self, format: FrameFormat, pad: usize) -> Vec<u8> {
        let stride = usize::from(self.width) * 4 + pad;
        let mut data = vec![0xEE; stride * usize::from(self.height)];
        for (row, line) in self
            .rgb
            .chunks(usize::from(self.width))
            .zip(data.chunks_mut(stride))
        {
            for (&c, px) in row.iter().zip(line.chunks_mut(4)) {
                let [_, r, g, b] = c.to_be_bytes();
                px.copy_from_slice(&match format {
                    FrameFormat::Bgrx => [b, g, r, 0xAA],
                    FrameFormat::Xrgb => [0xAA, r, g, b],
                    FrameFormat::Rgbx => [r, g, b, 0xAA],
                    FrameFormat::Xbgr => [0xAA, b, g, r],
                });
            }
        }
        data
    }

    fn give(&self, host: &mut Host, format: FrameFormat, pad: usize) {
        let data = self.bytes(format, pad);
        host.set_frame(&Frame {
            width: self.width,
            height: self.height,
            stride: usize::from(self.width) * 4 + pad,
            format,
            data: &data,
        })
        .expect("frame");
    }

    /// The viewer's framebuffer this picture must give.
    fn expected(&self, pf: &PixelFormat) -> Vec<u32> {
        self.rgb.iter().map(|&c| expected_value(pf, c)).collect()
    }
}

/// A host and a viewer past the handshake, with the viewer's pixel format
/// and encodings sent.
fn session(
    width: u16,
    height: u16,
    pf: PixelFormat,
    encodings: &[i32],
    chunk: usize,
) -> (Host, Viewer) {
    let mut host = Host::new(width, height, b"Accord test").expect("host");
    let init = handshake_chunked(&mut host, chunk);
    let mut viewer = Viewer::new(&init);
    send(
        &mut host,
        &[
            ClientMessage::SetPixelFormat(pf),
            ClientMessage::SetEncodings(encodings.to_vec()),
        ],
    );
    viewer.set_pixel_format(pf);
    (host, viewer)
}

fn exchange(
    host: &mut Host,
    viewer: &mut Viewer,
    messages: &[ClientMessage],
) -> Vec<Vec<Received>> {
    assert!(send(host, messages).is_empty());
    let out = host.take_output().expect("output");
    viewer.receive(&out)
}

// ---------------------------------------------------------------------
// Unit tests.

#[test]
fn handshake_with_accords_own_client_agrees_on_server_init() {
    for chunk in [1, 2, 3, 7, 4096] {
        let mut host = Host::new(1280, 800, b"clinic-42").expect("host");
        let init = handshake_chunked(&mut host, chunk);
        assert_eq!((init.width, init.height), (1280, 800), "chunk {chunk}");
        assert_eq!(init.pixel_format, PixelFormat::RGB888);
        assert_eq!(init.name, b"clinic-42");
        assert_eq!(init.raw, server_init(1280, 800, b"clinic-42"));
    }
}

#[test]
fn server_init_gives_the_latest_frame_size() {
    let mut host = Host::new(640, 480, b"").expect("host");
    Picture::desktop(300, 200, 1).give(&mut host, FrameFormat::Bgrx, 0);
    let init = handshake_chunked(&mut host, 5);
    assert_eq!((init.width, init.height), (300, 200));
}

#[test]
fn messages_sent_with_client_init_are_not_lost() {
    let mut host = Host::new(64, 64, b"").expect("host");
    let _ = host.take_output();
    let mut bytes = b"RFB 003.008\n\x01\x01".to_vec();
    bytes.extend(
        ClientMessage::KeyEvent {
            down: true,
            key: 0x61,
        }
        .to_bytes(),
    );
    bytes.extend(whole(false).to_bytes());
    let events = host.push(&bytes).expect("push");
    assert_eq!(
        events,
        [HostEvent::Key {
            down: true,
            keysym: 0x61
        }]
    );
    let out = host.take_output().expect("output");
    // Security result, ServerInit, then the first update.
    assert!(out.len() > 4 + 24 + 4 + 12 + 64 * 64 * 4);
}

#[test]
fn wrong_security_type_is_refused_with_a_reason() {
    let mut host = Host::new(64, 64, b"").expect("host");
    let _ = host.take_output();
    let got = host.push(b"RFB 003.008\n\x02");
    assert_eq!(
        got,
        Err(HostError::Handshake(HandshakeError::ViewerSecurityRefused(
            2
        )))
    );
    let out = host.take_output().expect("the refusal");
    assert!(out.ends_with(b"Accord offers security type None only"));
    assert_eq!(host.push(b"\x01"), got.map(|_| vec![]));
    assert!(!host.is_running());
}

#[test]
fn no_update_without_an_outstanding_request() {
    let (mut host, mut viewer) = session(100, 70, PixelFormat::RGB888, &[16], 4096);
    let one = Picture::desktop(100, 70, 2);
    one.give(&mut host, FrameFormat::Bgrx, 0);
    assert!(host.take_output().expect("output").is_empty());
    let updates = exchange(&mut host, &mut viewer, &[whole(false)]);
    assert_eq!(updates.len(), 1);
    assert_eq!(viewer.fb, one.expected(&viewer.pf));
    assert!(!host.request_outstanding());
    // New frames but no request: nothing.
    let mut two = one.clone();
    two.change_tiles(&[(0, 0)], 3);
    two.give(&mut host, FrameFormat::Bgrx, 0);
    assert!(host.take_output().expect("output").is_empty());
    // An incremental request: only the changed tile.
    let updates = exchange(&mut host, &mut viewer, &[whole(true)]);
    let rects: Vec<Rect> = updates[0].iter().map(|r| r.rect).collect();
    assert_eq!(
        rects,
        [Rect {
            x: 0,
            y: 0,
            width: 64,
            height: 64
        }]
    );
    assert_eq!(viewer.fb, two.expected(&viewer.pf));
}

#[test]
fn an_incremental_request_waits_for_a_change() {
    let (mut host, mut viewer) = session(80, 80, PixelFormat::RGB888, &[0], 4096);
    let mut picture = Picture::desktop(80, 80, 4);
    picture.give(&mut host, FrameFormat::Xrgb, 8);
    exchange(&mut host, &mut viewer, &[whole(false)]);
    // Nothing changed: the request stays outstanding, nothing is sent,
    // even with the same frame given again.
    assert!(exchange(&mut host, &mut viewer, &[whole(true)]).is_empty());
    picture.give(&mut host, FrameFormat::Xrgb, 8);
    assert!(host.take_output().expect("output").is_empty());
    assert!(host.request_outstanding());
    picture.change_tiles(&[(1, 1)], 5);
    picture.give(&mut host, FrameFormat::Xrgb, 8);
    let updates = viewer.receive(&host.take_output().expect("output"));
    assert_eq!(updates.len(), 1);
    assert_eq!(
        updates[0][0].rect,
        Rect {
            x: 64,
            y: 64,
            width: 16,
            height: 16
        }
    );
    assert_eq!(viewer.fb, picture.expected(&viewer.pf));
}

#[test]
fn frames_faster_than_requests_keep_only_the_latest() {
    let (mut host, mut viewer) = session(130, 90, PixelFormat::RGB888, &[16], 4096);
    let mut last = Picture::desktop(130, 90, 0);
    for seed in 1..20 {
        last = Picture::desktop(130, 90, seed);
        last.give(&mut host, FrameFormat::Rgbx, 0);
    }
    assert!(host.take_output().expect("output").is_empty());
    exchange(&mut host, &mut viewer, &[whole(false)]);
    assert_eq!(viewer.fb, last.expected(&viewer.pf));
}

#[test]
fn requests_outside_the_area_wait_for_their_turn() {
    let (mut host, mut viewer) = session(256, 128, PixelFormat::RGB888, &[16], 4096);
    let mut picture = Picture::desktop(256, 128, 6);
    picture.give(&mut host, FrameFormat::Bgrx, 0);
    exchange(&mut host, &mut viewer, &[whole(false)]);
    picture.change_tiles(&[(0, 0), (3, 1)], 7);
    picture.give(&mut host, FrameFormat::Bgrx, 0);
    let updates = exchange(&mut host, &mut viewer, &[request(true, 0, 0, 10, 10)]);
    assert_eq!(updates[0].len(), 1);
    assert_eq!(updates[0][0].rect.x, 0);
    let updates = exchange(&mut host, &mut viewer, &[whole(true)]);
    assert_eq!(
        updates[0][0].rect,
        Rect {
            x: 192,
            y: 64,
            width: 64,
            height: 64
        }
    );
    assert_eq!(viewer.fb, picture.expected(&viewer.pf));
}

#[test]
fn desktop_size_tells_the_viewer_then_sends_everything() {
    let (mut host, mut viewer) = session(100, 100, PixelFormat::RGB888, &[16, -223], 4096);
    Picture::desktop(100, 100, 8).give(&mut host, FrameFormat::Bgrx, 0);
    exchange(&mut host, &mut viewer, &[whole(false)]);
    let bigger = Picture::desktop(150, 70, 9);
    bigger.give(&mut host, FrameFormat::Bgrx, 0);
    assert_eq!(host.size(), (150, 70));
    let updates = exchange(&mut host, &mut viewer, &[whole(true)]);
    assert_eq!(updates[0].len(), 1);
    assert_eq!(updates[0][0].encoding, -223);
    assert_eq!((viewer.width, viewer.height), (150, 70));
    // Even an incremental request gets the whole new screen.
    exchange(&mut host, &mut viewer, &[whole(true)]);
    assert_eq!(viewer.fb, bigger.expected(&viewer.pf));
}

#[test]
fn without_desktop_size_frames_are_cropped_and_padded() {
    let (mut host, mut viewer) = session(100, 100, PixelFormat::RGB888, &[0], 4096);
    let other = Picture::desktop(150, 70, 10);
    other.give(&mut host, FrameFormat::Bgrx, 0);
    assert_eq!(host.size(), (100, 100));
    exchange(&mut host, &mut viewer, &[whole(false)]);
    for y in 0..100usize {
        for x in 0..100usize {
            let want = if y < 70 {
                expected_value(&viewer.pf, other.rgb[y * 150 + x])
            } else {
                0
            };
            assert_eq!(viewer.fb[y * 100 + x], want, "({x}, {y})");
        }
    }
}

#[test]
fn input_is_surfaced_in_order_and_pointer_clamped() {
    let (mut host, _) = session(100, 50, PixelFormat::RGB888, &[0], 4096);
    let events = send(
        &mut host,
        &[
            ClientMessage::KeyEvent {
                down: true,
                key: 0xff0d,
            },
            ClientMessage::PointerEvent {
                buttons: 1,
                x: 500,
                y: 20,
            },
            ClientMessage::ClientCutText(b"bonjour".to_vec()),
            ClientMessage::ClientFence {
                flags: 0,
                payload: vec![],
            },
            ClientMessage::KeyEvent {
                down: false,
                key: 0xff0d,
            },
        ],
    );
    assert_eq!(
        events,
        [
            HostEvent::Key {
                down: true,
                keysym: 0xff0d
            },
            HostEvent::Pointer {
                buttons: 1,
                x: 99,
                y: 20
            },
            HostEvent::CutText(b"bonjour".to_vec()),
            HostEvent::Key {
                down: false,
                keysym: 0xff0d
            },
        ]
    );
}

#[test]
fn clipboard_text_goes_to_the_viewer() {
    let (mut host, mut viewer) = session(10, 10, PixelFormat::RGB888, &[0], 4096);
    host.send_cut_text(b"old").expect("text");
    host.send_cut_text(b"new").expect("text");
    viewer.receive(&host.take_output().expect("output"));
    assert_eq!(viewer.cut_texts, [b"new".to_vec()]);
    assert!(matches!(
        host.send_cut_text(&vec![b'a'; MAX_CUT_TEXT + 1]),
        Err(HostError::CutTextTooLong { .. })
    ));
    assert!(host.is_running());
}

#[test]
fn colour_maps_and_impossible_formats_end_the_session() {
    let bad = [
        PixelFormat {
            true_colour: false,
            ..PF8
        },
        PixelFormat {
            bits_per_pixel: 24,
            ..PixelFormat::RGB888
        },
        PixelFormat {
            red_shift: 12,
            ..PF16
        },
        PixelFormat {
            red_max: 511,
            red_shift: 24,
            ..PixelFormat::RGB888
        },
    ];
    for pf in bad {
        let (mut host, _) = session(10, 10, PixelFormat::RGB888, &[0], 4096);
        let got = host.push(&ClientMessage::SetPixelFormat(pf).to_bytes());
        assert!(matches!(got, Err(HostError::PixelFormat(_))), "{pf:?}");
        assert_eq!(host.push(&whole(false).to_bytes()), got);
        assert!(!host.is_running());
    }
}

#[test]
fn unknown_client_messages_end_the_session() {
    let (mut host, _) = session(10, 10, PixelFormat::RGB888, &[0], 4096);
    let got = host.push(&[7]);
    assert!(matches!(
        got,
        Err(HostError::Client(EndWhy::UnknownType(7)))
    ));
    assert!(host.take_output().expect("output").is_empty());
}

#[test]
fn bad_frames_are_refused_and_the_session_goes_on() {
    let (mut host, _) = session(10, 10, PixelFormat::RGB888, &[0], 4096);
    let got = host.set_frame(&Frame {
        width: 10,
        height: 10,
        stride: 40,
        format: FrameFormat::Bgrx,
        data: &[0; 399],
    });
    assert!(matches!(got, Err(HostError::Frame(_))));
    assert!(host.is_running());
    assert!(Host::new(0, 10, b"").is_err());
    assert!(Host::new(10, MAX_DIMENSION + 1, b"").is_err());
}

#[test]
fn zrle_uses_every_sub_encoding() {
    let (mut host, mut viewer) = session(640, 384, PixelFormat::RGB888, &[16], 4096);
    let picture = Picture::desktop(640, 384, 11);
    // Tiles of one style each, besides the mixed desktop.
    let mut picture = picture;
    let fill = |p: &mut Picture, tx: usize, f: &dyn Fn(usize, usize) -> u32| {
        for y in 0..64 {
            for x in 0..64 {
                p.rgb[y * 640 + tx * 64 + x] = f(x, y);
            }
        }
    };
    fill(&mut picture, 0, &|_, _| 0x123456);
    fill(&mut picture, 1, &|x, y| {
        if (x + y) % 2 == 0 { 0 } else { 0xffffff }
    });
    fill(&mut picture, 2, &|x, y| {
        [1, 2, 3, 4, 5, 6, 7][(x * 3 + y * 5) % 7]
    });
    fill(&mut picture, 3, &|x, y| {
        if x < 32 { (y as u32) << 8 } else { 7 }
    });
    fill(&mut picture, 4, &|x, y| (x as u32 * 64 + y as u32) * 977);
    fill(&mut picture, 5, &|x, y| {
        (y as u32 * 1000 + x as u32 / 32) * 13
    });
    picture.give(&mut host, FrameFormat::Bgrx, 0);
    let updates = exchange(&mut host, &mut viewer, &[whole(false)]);
    assert_eq!(viewer.fb, picture.expected(&viewer.pf));
    let subs: Vec<u8> = updates[0]
        .iter()
        .flat_map(|r| r.subencodings.iter().copied())
        .collect();
    assert_eq!(subs.first(), Some(&1), "solid");
    assert_eq!(subs.get(1), Some(&2), "packed, 2 colours");
    assert_eq!(subs.get(2), Some(&7), "packed, 7 colours");
    assert!(subs.get(3).is_some_and(|&s| s > 128), "palette RLE");
    assert_eq!(subs.get(4), Some(&0), "raw");
    assert_eq!(subs.get(5), Some(&128), "plain RLE");
}

#[test]
fn zlib_stream_survives_a_switch_of_encoding_and_format() {
    let (mut host, mut viewer) = session(120, 70, PixelFormat::RGB888, &[16], 4096);
    let mut picture = Picture::desktop(120, 70, 12);
    picture.give(&mut host, FrameFormat::Bgrx, 0);
    exchange(&mut host, &mut viewer, &[whole(false)]);
    for (round, (pf, encodings)) in [
        (PF16, vec![0]),
        (PF16, vec![16]),
        (PixelFormat::RGB888, vec![16, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        send(
            &mut host,
            &[
                ClientMessage::SetPixelFormat(pf),
                ClientMessage::SetEncodings(encodings),
            ],
        );
        viewer.set_pixel_format(pf);
        picture.change_tiles(&[(0, 0), (1, 1)], round as u64);
        picture.give(&mut host, FrameFormat::Bgrx, 0);
        exchange(&mut host, &mut viewer, &[whole(false)]);
        assert_eq!(viewer.fb, picture.expected(&pf), "round {round}");
    }
}

// ---------------------------------------------------------------------
// Properties.

/// True-colour formats the host must honour: 8, 16 and 32 bpp, either
/// byte order, any depth, channels of any maximum placed anywhere they fit
/// (overlapping is allowed: the value is what is compared).
fn arb_pixel_format() -> impl Strategy<Value = PixelFormat> {
    prop_oneof![
        Just(PixelFormat::RGB888),
        Just(PF16),
        Just(PF8),
        (
            prop::sample::select(vec![8u8, 16, 32]),
            any::<bool>(),
            1u8..=32,
            any::<[u16; 3]>(),
            any::<[u8; 3]>(),
        )
            .prop_map(|(bpp, big_endian, depth, maxes, shifts)| {
                let channel = |max: u16, shift: u8| {
                    let max = max % 256;
                    let bits = 16 - max.leading_zeros() as u8;
                    (max, shift % (bpp - bits + 1))
                };
                let (red_max, red_shift) = channel(maxes[0], shifts[0]);
                let (green_max, green_shift) = channel(maxes[1], shifts[1]);
                let (blue_max, blue_shift) = channel(maxes[2], shifts[2]);
                PixelFormat {
                    bits_per_pixel: bpp,
                    depth,
                    big_endian,
                    true_colour: true,
                    red_max,
                    green_max,
                    blue_max,
                    red_shift,
                    green_shift,
                    blue_shift,
                }
            }),
    ]
}

fn arb_format() -> impl Strategy<Value = FrameFormat> {
    prop::sample::select(vec![
        FrameFormat::Bgrx,
        FrameFormat::Xrgb,
        FrameFormat::Rgbx,
        FrameFormat::Xbgr,
    ])
}

/// The 64×64 tiles where two pictures differ.
fn changed_tiles(a: &Picture, b: &Picture) -> Vec<(u16, u16)> {
    let mut tiles = Vec::new();
    let w = usize::from(a.width);
    for (i, (x, y)) in a.rgb.iter().zip(&b.rgb).enumerate() {
        let tile = ((i % w / 64) as u16, (i / w / 64) as u16);
        if x != y && !tiles.contains(&tile) {
            tiles.push(tile);
        }
    }
    tiles
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// A whole-screen update, then an incremental one after a change,
    /// both framed by ServerFramer and decoded to exactly the frame; the
    /// incremental one holds the changed tiles and nothing else.
    #[test]
    fn updates_frame_and_decode_to_the_frame(
        width in 1u16..300,
        height in 1u16..200,
        seed in any::<u64>(),
        pf in arb_pixel_format(),
        zrle in any::<bool>(),
        format in arb_format(),
        pad in 0usize..9,
        chunk in 1usize..64,
        tiles in vec((0u16..5, 0u16..4), 0..6),
    ) {
        let encodings: &[i32] = if zrle { &[5, 16, 0, -223] } else { &[0] };
        let (mut host, mut viewer) = session(width, height, pf, encodings, chunk);
        let one = Picture::desktop(width, height, seed);
        one.give(&mut host, format, pad);
        let updates = exchange(&mut host, &mut viewer, &[whole(false)]);
        prop_assert_eq!(updates.len(), 1);
        prop_assert_eq!(&viewer.fb, &one.expected(&pf));
        let want_encoding = if zrle { 16 } else { 0 };
        prop_assert!(updates[0].iter().all(|r| r.encoding == want_encoding));

        let mut two = one.clone();
        two.change_tiles(&tiles, seed ^ 1);
        two.give(&mut host, format, pad);
        let changed = changed_tiles(&one, &two);
        let updates = exchange(&mut host, &mut viewer, &[whole(true)]);
        prop_assert_eq!(&viewer.fb, &two.expected(&pf));
        if changed.is_empty() {
            prop_assert!(updates.is_empty());
            prop_assert!(host.request_outstanding());
        } else {
            prop_assert_eq!(updates.len(), 1);
            let mut sent = Vec::new();
            for r in &updates[0] {
                prop_assert!(r.rect.x % 64 == 0 && r.rect.y % 64 == 0);
                for tx in r.rect.x / 64..(r.rect.x + r.rect.width).div_ceil(64) {
                    sent.push((tx, r.rect.y / 64));
                }
            }
            sent.sort_unstable();
            let mut changed = changed;
            changed.sort_unstable();
            prop_assert_eq!(sent, changed);
        }
    }

    /// Whatever bytes follow a good handshake, the host either ends the
    /// session or keeps producing output that frames; never a panic.
    #[test]
    fn arbitrary_client_bytes_never_break_the_output(
        stream in vec(prop_oneof![
            3 => crate::rfb::proptests::arb_message().prop_map(|m| m.to_bytes()),
            1 => vec(any::<u8>(), 0..12),
        ], 0..20),
        seed in any::<u64>(),
    ) {
        let (mut host, mut viewer) = session(90, 70, PixelFormat::RGB888, &[16], 4096);
        Picture::desktop(90, 70, seed).give(&mut host, FrameFormat::Bgrx, 0);
        for piece in stream {
            if host.push(&piece).is_err() {
                break;
            }
            viewer.set_pixel_format(host.pixel_format());
            if let Ok(out) = host.take_output() {
                // A DesktopSize is never sent: the frame keeps its size.
                viewer.receive(&out);
            }
        }
    }
}
