//! Both handshake drivers against arbitrary peer bytes: they must never
//! panic, never buffer without bound, and hand back every byte past the
//! end of the handshake.
//!
//! The first byte picks a valid ProtocolVersion prefix (bits 0–1, so the
//! fuzzer gets past the version check cheaply), whether a VNC password is
//! configured (bit 2), and the chunk size (bits 3–7).
#![no_main]

use accord::rfb::{TechnicianHandshake, TechnicianProgress, UpstreamHandshake, UpstreamProgress};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let prefix: &[u8] = match first & 3 {
        0 => b"",
        1 => b"RFB 003.003\n",
        2 => b"RFB 003.007\n",
        _ => b"RFB 003.008\n",
    };
    let input: Vec<u8> = [prefix, rest].concat();
    let password = (first & 4 != 0).then(|| b"secret".to_vec());
    let chunk = usize::from(first >> 3) + 1;

    let mut up = UpstreamHandshake::new(password);
    let mut up_done = false;
    let mut pushed = 0usize;
    for piece in input.chunks(chunk) {
        pushed += piece.len();
        match up.push(piece) {
            Ok(UpstreamProgress::NeedMore) => {}
            Ok(UpstreamProgress::Done {
                server_init,
                leftover,
            }) => {
                // Every byte is accounted for: consumed or handed back.
                assert!(leftover.len() <= piece.len());
                assert!(server_init.raw.len() + leftover.len() <= pushed);
                up_done = true;
                break;
            }
            Err(_) => break,
        }
        assert!(up.take_output().len() <= 64);
    }
    let _ = up_done;

    let mut tech = TechnicianHandshake::new();
    let _ = tech.take_output();
    if first & 8 != 0 {
        let _ = tech.provide_server_init(rest);
    }
    for piece in input.chunks(chunk) {
        match tech.push(piece) {
            Ok(TechnicianProgress::NeedMore | TechnicianProgress::NeedServerInit) => {}
            Ok(TechnicianProgress::Done { leftover }) => {
                assert!(leftover.len() <= piece.len());
                break;
            }
            Err(_) => break,
        }
        let _ = tech.take_output();
    }
    let _ = tech.provide_server_init(rest);
});
