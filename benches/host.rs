//! What Accord's own RFB server (`rfb::host`) costs per frame: a 1280×800
//! desktop-like frame sent whole in Raw and in ZRLE (bytes and ms), then an
//! incremental update where 5 % of the 64×64 tiles changed, against a
//! baseline in the same run: copying the frame once (what merely touching
//! its bytes costs).
//! Run with `cargo bench --bench host` (a few seconds).

use std::hint::black_box;
use std::time::Instant;

use accord::rfb::{ClientMessage, Frame, FrameFormat, Host};

const W: u16 = 1280;
const H: u16 = 800;

/// splitmix64, so every run measures the same picture.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// A desktop as a clinician's screen looks: a flat background, three
/// windows of text (grey-level glyphs on white, title bars), and one
/// photo-like area (gradient plus noise), as BGRx bytes.
fn desktop(rng: &mut Rng) -> Vec<u8> {
    let (w, h) = (usize::from(W), usize::from(H));
    let mut rgb = vec![0x2E_3440u32; w * h];
    let greys = [0x00_0000, 0x40_4040, 0x80_8080, 0xC0_C0C0];
    for (x0, y0, ww, wh) in [
        (40, 40, 700, 500),
        (500, 120, 600, 420),
        (200, 420, 760, 340),
    ] {
        for y in y0..(y0 + wh).min(h) {
            for x in x0..(x0 + ww).min(w) {
                let body = y - y0 >= 28;
                let text = body && (y - y0 - 28) % 20 < 12 && (x - x0) % 7 < 6 && x - x0 > 10;
                rgb[y * w + x] = if !body {
                    0xE0_E0E0
                } else if text && rng.next().is_multiple_of(3) {
                    greys[(rng.next() % 4) as usize]
                } else {
                    0xFF_FFFF
                };
            }
        }
    }
    for y in 80..280 {
        for x in 880..1180 {
            let noise = (rng.next() % 16) as u32;
            rgb[y * w + x] = (((x as u32 - 880) * 255 / 300) << 16)
                | ((y as u32 - 80 + noise) << 8)
                | (0x60 + noise);
        }
    }
    rgb.iter()
        .flat_map(|&c| {
            let [_, r, g, b] = c.to_be_bytes();
            [b, g, r, 0]
        })
        .collect()
}

/// Changes one pixel in `percent` % of the tiles, spread over the screen.
fn touch_tiles(frame: &mut [u8], percent: usize, rng: &mut Rng) -> usize {
    let (tw, th) = (usize::from(W).div_ceil(64), usize::from(H).div_ceil(64));
    let tiles = tw * th * percent / 100;
    for i in 0..tiles {
        let t = i * (tw * th) / tiles;
        let (x, y) = ((t % tw) * 64 + 10, (t / tw) * 64 + 10);
        let at = (y * usize::from(W) + x) * 4;
        frame[at] ^= 1 + (rng.next() % 250) as u8;
    }
    tiles
}

fn frame(data: &[u8]) -> Frame<'_> {
    Frame {
        width: W,
        height: H,
        stride: usize::from(W) * 4,
        format: FrameFormat::Bgrx,
        data,
    }
}

/// A host past the handshake, with the viewer's encodings sent.
fn host(encodings: &[i32]) -> Host {
    let mut host = Host::new(W, H, b"bench").expect("host");
    let _ = host.take_output();
    let mut hello = b"RFB 003.008\n\x01\x01".to_vec();
    hello.extend(ClientMessage::SetEncodings(encodings.to_vec()).to_bytes());
    host.push(&hello).expect("handshake");
    let _ = host.take_output();
    host
}

fn request(incremental: bool) -> Vec<u8> {
    ClientMessage::FramebufferUpdateRequest {
        incremental,
        x: 0,
        y: 0,
        width: W,
        height: H,
    }
    .to_bytes()
}

/// Best of `runs` in ms, with the bytes of the last run's update.
fn best_ms(runs: usize, mut f: impl FnMut() -> usize) -> (f64, usize) {
    let mut best = f64::MAX;
    let mut bytes = 0;
    for _ in 0..runs {
        let t = Instant::now();
        bytes = black_box(f());
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
    }
    (best, bytes)
}

fn main() {
    let runs = 15;
    let mut rng = Rng(42);
    let a = desktop(&mut rng);
    let mut b = a.clone();
    let tiles = touch_tiles(&mut b, 5, &mut rng);
    let raw_mb = f64::from(W) * f64::from(H) * 4.0 / 1e6;

    println!("rfb::host, {W}x{H} desktop-like frame, 32 bpp viewer, best of {runs}");
    println!(
        "{:<36} {:>12} {:>9} {:>9}",
        "update", "bytes", "ms", "MB/s in"
    );
    let row = |name: &str, (ms, bytes): (f64, usize)| {
        println!(
            "{name:<36} {bytes:>12} {ms:>9.2} {:>9.0}",
            raw_mb / ms * 1e3
        );
    };
    row(
        "baseline: copy the frame once",
        best_ms(runs, || black_box(a.to_vec()).len()),
    );
    let mut h = host(&[0]);
    row(
        "set_frame alone (BGRx -> words)",
        best_ms(runs, || {
            h.set_frame(&frame(&a)).expect("frame");
            0
        }),
    );
    for (name, encodings) in [("Raw", [0]), ("ZRLE", [16])] {
        let mut h = host(&encodings);
        h.set_frame(&frame(&a)).expect("frame");
        row(
            &format!("full {name}"),
            best_ms(runs, || {
                h.push(&request(false)).expect("request");
                h.take_output().expect("update").len()
            }),
        );
    }
    for (name, encodings) in [("Raw", [0]), ("ZRLE", [16])] {
        let mut h = host(&encodings);
        h.set_frame(&frame(&a)).expect("frame");
        h.push(&request(false)).expect("request");
        let _ = h.take_output();
        let mut flip = false;
        row(
            &format!("incremental {name}, {tiles} tiles (5 %)"),
            best_ms(runs, || {
                flip = !flip;
                h.set_frame(&frame(if flip { &b } else { &a }))
                    .expect("frame");
                h.push(&request(true)).expect("request");
                h.take_output().expect("update").len()
            }),
        );
    }
    let mut h = host(&[16]);
    h.set_frame(&frame(&a)).expect("frame");
    h.push(&request(false)).expect("request");
    let _ = h.take_output();
    row(
        "incremental, nothing changed",
        best_ms(runs, || {
            h.set_frame(&frame(&a)).expect("frame");
            h.push(&request(true)).expect("request");
            h.take_output().expect("update").len()
        }),
    );
}
