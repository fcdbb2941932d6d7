//! Throughput of `ServerFramer` alone, the cost the server→client direction
//! adds to the relay: on a raw-encoding stream (target ≥ 1 GB/s) and on the
//! Tight and ZRLE streams recorded from x11vnc and Xtigervnc
//! (`tests/data/rfb/`), each against a baseline that touches every byte of
//! the same reads (a byte sum), in the same process.
//! Run with `cargo bench --bench framer`; `ACCORD_BENCH_MB` sets the stream
//! size (default 256 MB per row).

use std::hint::black_box;
use std::time::Instant;

use accord::rfb::{PixelFormat, READ_CHUNK, ServerFramer, ServerStep};

const PF32: PixelFormat = PixelFormat::RGB888;

/// Frames `data` as the relay would: reads of `READ_CHUNK` bytes, each
/// classified into Forward/Drop steps; the unclassified tail of a read is
/// kept for the next one (here by offset, as the relay's buffer would).
/// Returns the bytes forwarded.
fn frame(pf: PixelFormat, data: &[u8]) -> u64 {
    let mut f = ServerFramer::new(pf);
    let (mut done, mut read_end, mut forwarded) = (0usize, 0usize, 0u64);
    while read_end < data.len() {
        read_end = (read_end + READ_CHUNK).min(data.len());
        while done < read_end {
            match f.step(&data[done..read_end]) {
                Ok(ServerStep::Forward(n)) => {
                    forwarded += n as u64;
                    done += n;
                }
                Ok(ServerStep::Drop(n)) => done += n,
                Ok(ServerStep::NeedMore) => break,
                Err(e) => panic!("recorded stream did not frame: {e}"),
            }
        }
    }
    assert!(f.at_boundary(), "stream did not end at a boundary");
    forwarded
}

/// The same reads, each byte summed: what merely looking at the bytes costs.
fn baseline(data: &[u8]) -> u64 {
    data.chunks(READ_CHUNK)
        .map(|c| c.iter().map(|&b| u64::from(b)).sum::<u64>())
        .fold(0, u64::wrapping_add)
}

/// Best of `runs` in MB/s (the least disturbed by other processes).
fn mb_per_s(bytes: usize, runs: usize, mut f: impl FnMut() -> u64) -> f64 {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            bytes as f64 / 1e6 / t.elapsed().as_secs_f64()
        })
        .fold(0.0, f64::max)
}

/// A raw stream of full 1920×1080 frames, about `mb` MB.
fn raw_stream(mb: usize) -> Vec<u8> {
    let frame_len = 1920 * 1080 * 4;
    let mut data = Vec::with_capacity(mb * 1_000_000 + frame_len);
    while data.len() < mb * 1_000_000 {
        data.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0]);
        data.extend_from_slice(&1920u16.to_be_bytes());
        data.extend_from_slice(&1080u16.to_be_bytes());
        data.extend_from_slice(&0i32.to_be_bytes());
        data.extend(std::iter::repeat_n(0x5A, frame_len));
    }
    data
}

/// A recording repeated to about `mb` MB (each copy ends at a boundary).
fn recorded_stream(name: &str, mb: usize) -> (PixelFormat, Vec<u8>) {
    let path = format!("{}/tests/data/rfb/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (head, one) = bytes.split_at(16);
    let pf = PixelFormat {
        bits_per_pixel: head[0],
        depth: head[1],
        big_endian: head[2] != 0,
        true_colour: head[3] != 0,
        red_max: u16::from_be_bytes([head[4], head[5]]),
        green_max: u16::from_be_bytes([head[6], head[7]]),
        blue_max: u16::from_be_bytes([head[8], head[9]]),
        red_shift: head[10],
        green_shift: head[11],
        blue_shift: head[12],
    };
    let copies = (mb * 1_000_000).div_ceil(one.len());
    (pf, one.repeat(copies))
}

fn main() {
    let mb: usize = std::env::var("ACCORD_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let runs = 5;
    println!("ServerFramer alone, best of {runs}, reads of {READ_CHUNK} bytes");
    println!(
        "{:<28} {:>9} {:>12} {:>14} {:>7}",
        "stream", "MB", "framer MB/s", "baseline MB/s", "ratio"
    );
    let mut rows: Vec<(String, PixelFormat, Vec<u8>)> =
        vec![("raw 1920x1080 32 bpp".into(), PF32, raw_stream(mb))];
    for name in [
        "x11vnc-tight.bin",
        "xvnc-tight.bin",
        "x11vnc-zrle.bin",
        "xvnc-zrle.bin",
        "x11vnc-hextile-16bpp.bin",
    ] {
        let (pf, data) = recorded_stream(name, mb / 4);
        rows.push((name.trim_end_matches(".bin").into(), pf, data));
    }
    for (name, pf, data) in &rows {
        let framer = mb_per_s(data.len(), runs, || frame(*pf, data));
        let base = mb_per_s(data.len(), runs, || baseline(data));
        println!(
            "{name:<28} {:>9.1} {framer:>12.0} {base:>14.0} {:>6.2}x",
            data.len() as f64 / 1e6,
            framer / base
        );
    }
}
