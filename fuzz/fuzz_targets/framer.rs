//! Framer + filter against arbitrary viewer bytes.
//!
//! The first byte chooses the mode (bit 0: view-only, bit 1: hold_input,
//! bit 7: flip view-only every few messages, releasing held input as the
//! session does) and the chunk size (bits 2–6). Asserted: nothing that
//! view-only forbids is ever forwarded while view-only is on, no input
//! while input is on hold, and the forwarded stream re-parses to exactly
//! the forwarded messages (Accord and the server agree on boundaries).
#![no_main]

use accord::rfb::{
    Action, ClientFramer, ClientMessage, Clipboard, Filter, FilterCtx, INPUT_EXTENSION_ENCODINGS,
    MessageKind,
};
use libfuzzer_sys::fuzz_target;

fn forbidden_in_view_only(m: &ClientMessage) -> bool {
    match m {
        ClientMessage::SetEncodings(list) => list
            .iter()
            .any(|e| INPUT_EXTENSION_ENCODINGS.contains(e) || *e == -316),
        other => matches!(
            other.kind(),
            MessageKind::KeyEvent
                | MessageKind::PointerEvent
                | MessageKind::ClientCutText
                | MessageKind::ExtendedClipboard
                | MessageKind::SetDesktopSize
                | MessageKind::QemuKeyEvent
                | MessageKind::QemuAudio
                | MessageKind::Xvp
                | MessageKind::Gii
        ),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let mut ctx = FilterCtx {
        view_only: first & 1 != 0,
        hold_input: first & 2 != 0,
        // The most permissive clipboard: view-only and hold must still stop
        // every cut text.
        clipboard: Clipboard::Both,
    };
    let toggle = first & 0x80 != 0;
    let chunk = usize::from((first >> 2) & 0x1f) + 1;

    let mut framer = ClientFramer::new();
    let mut filter = Filter::new();
    let mut forwarded = Vec::new();
    let mut count = 0usize;
    'outer: for piece in stream.chunks(chunk) {
        if framer.push(piece).is_err() {
            break;
        }
        loop {
            let msg = match framer.next_message() {
                Ok(Some(msg)) => msg,
                Ok(None) => break,
                Err(_) => break 'outer,
            };
            count += 1;
            if toggle && count.is_multiple_of(3) {
                if !ctx.view_only {
                    forwarded.extend(filter.release_all());
                } else if let Some(m) = filter.restore_encodings() {
                    forwarded.push(m);
                }
                ctx.view_only = !ctx.view_only;
            }
            match filter.apply(msg, ctx) {
                Action::Forward(m) => {
                    if ctx.view_only {
                        assert!(!forbidden_in_view_only(&m), "view-only forwarded {m:?}");
                    }
                    if ctx.hold_input && !matches!(m, ClientMessage::SetEncodings(_)) {
                        assert!(!forbidden_in_view_only(&m), "held input forwarded {m:?}");
                    }
                    forwarded.push(m);
                }
                Action::Drop => {}
                Action::End(_) => break 'outer,
            }
        }
    }

    let mut bytes = Vec::new();
    for m in &forwarded {
        m.write_to(&mut bytes);
    }
    let mut again = ClientFramer::new();
    let mut seen = Vec::new();
    for piece in bytes.chunks(accord::rfb::READ_CHUNK) {
        assert!(again.push(piece).is_ok());
        while let Ok(Some(m)) = again.next_message() {
            seen.push(m);
        }
    }
    assert_eq!(seen, forwarded);
});
