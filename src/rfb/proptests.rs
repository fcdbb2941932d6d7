//! Property tests of the module's two promises: in view-only (or with input
//! on hold) no byte sequence, however split, gets input forwarded; and what
//! Accord forwards is exactly what the server will parse.

use proptest::collection::vec;
use proptest::prelude::*;

use super::filter::{EXTENDED_CLIPBOARD_ENCODING, FRAMING_CHANGING_ENCODINGS};
use super::*;

fn arb_pixel_format() -> impl Strategy<Value = PixelFormat> {
    (
        any::<[u8; 2]>(),
        any::<[bool; 2]>(),
        any::<[u16; 3]>(),
        any::<[u8; 3]>(),
    )
        .prop_map(
            |([bpp, depth], [be, tc], [r, g, b], [rs, gs, bs])| PixelFormat {
                bits_per_pixel: bpp,
                depth,
                big_endian: be,
                true_colour: tc,
                red_max: r,
                green_max: g,
                blue_max: b,
                red_shift: rs,
                green_shift: gs,
                blue_shift: bs,
            },
        )
}

fn arb_encoding() -> impl Strategy<Value = i32> {
    prop_oneof![
        any::<i32>(),
        prop::sample::select(INPUT_EXTENSION_ENCODINGS.to_vec()),
        prop::sample::select(vec![0, 1, 2, 5, 7, 16, -223, -239, -307, -308, -312, -313]),
    ]
}

fn arb_screen() -> impl Strategy<Value = Screen> {
    (any::<u32>(), any::<[u16; 4]>(), any::<u32>()).prop_map(
        |(id, [x, y, width, height], flags)| Screen {
            id,
            x,
            y,
            width,
            height,
            flags,
        },
    )
}

fn arb_rect() -> impl Strategy<Value = (bool, [u16; 4])> {
    (any::<bool>(), any::<[u16; 4]>())
}

pub(crate) fn arb_message() -> impl Strategy<Value = ClientMessage> {
    prop_oneof![
        arb_pixel_format().prop_map(ClientMessage::SetPixelFormat),
        vec(arb_encoding(), 0..40).prop_map(ClientMessage::SetEncodings),
        arb_rect().prop_map(|(incremental, [x, y, width, height])| {
            ClientMessage::FramebufferUpdateRequest {
                incremental,
                x,
                y,
                width,
                height,
            }
        }),
        (any::<bool>(), any::<u32>()).prop_map(|(down, key)| ClientMessage::KeyEvent { down, key }),
        (any::<u8>(), any::<u16>(), any::<u16>())
            .prop_map(|(buttons, x, y)| ClientMessage::PointerEvent { buttons, x, y }),
        vec(any::<u8>(), 0..300).prop_map(ClientMessage::ClientCutText),
        (any::<u32>(), vec(any::<u8>(), 0..300))
            .prop_map(|(flags, data)| ClientMessage::ExtendedClipboard { flags, data }),
        arb_rect().prop_map(|(enable, [x, y, width, height])| {
            ClientMessage::EnableContinuousUpdates {
                enable,
                x,
                y,
                width,
                height,
            }
        }),
        (any::<u32>(), vec(any::<u8>(), 0..=MAX_FENCE_PAYLOAD))
            .prop_map(|(flags, payload)| ClientMessage::ClientFence { flags, payload }),
        (any::<u8>(), any::<u8>()).prop_map(|(version, code)| ClientMessage::Xvp { version, code }),
        (any::<u16>(), any::<u16>(), vec(arb_screen(), 0..8)).prop_map(
            |(width, height, screens)| ClientMessage::SetDesktopSize {
                width,
                height,
                screens
            }
        ),
        (any::<bool>(), 0u8..128, vec(any::<u8>(), 0..300)).prop_map(
            |(big_endian, sub_type, payload)| ClientMessage::Gii {
                big_endian,
                sub_type,
                payload
            }
        ),
        (any::<bool>(), any::<u32>(), any::<u32>()).prop_map(|(down, keysym, keycode)| {
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            }
        }),
        prop_oneof![
            Just(QemuAudio::Enable),
            Just(QemuAudio::Disable),
            (any::<u8>(), any::<u8>(), any::<u32>()).prop_map(
                |(sample_format, channels, frequency)| QemuAudio::SetFormat {
                    sample_format,
                    channels,
                    frequency
                }
            ),
        ]
        .prop_map(ClientMessage::QemuAudio),
    ]
}

/// A viewer's byte stream: mostly well-formed messages with arbitrary
/// bytes spliced in, so both deep parsing and garbage are exercised.
fn arb_stream() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            4 => arb_message().prop_map(|m| m.to_bytes()),
            1 => vec(any::<u8>(), 0..24),
        ],
        0..40,
    )
    .prop_map(|pieces| pieces.concat())
}

/// Runs the stream through framer + filter, split by `cuts` (cycled),
/// returning the forwarded messages and whether the session was ended.
fn relay(stream: &[u8], cuts: &[usize], ctx: FilterCtx) -> (Vec<ClientMessage>, bool) {
    let mut framer = ClientFramer::new();
    let mut filter = Filter::new();
    let mut forwarded = Vec::new();
    let mut rest = stream;
    let mut cut = cuts.iter().copied().cycle();
    while !rest.is_empty() {
        let n = cut.next().unwrap_or(1).clamp(1, rest.len());
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        if framer.push(piece).is_err() {
            return (forwarded, true);
        }
        loop {
            match framer.next_message() {
                Ok(Some(msg)) => match filter.apply(msg, ctx) {
                    Action::Forward(m) => forwarded.push(m),
                    Action::Drop => {}
                    Action::End(_) => return (forwarded, true),
                },
                Ok(None) => break,
                Err(Verdict::End(_)) => return (forwarded, true),
            }
        }
    }
    (forwarded, false)
}

fn is_forbidden_in_view_only(m: &ClientMessage) -> bool {
    match m {
        ClientMessage::SetEncodings(list) => list.iter().any(|e| {
            INPUT_EXTENSION_ENCODINGS.contains(e) || FRAMING_CHANGING_ENCODINGS.contains(e)
        }),
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

/// What the server sees: the forwarded messages serialised and parsed
/// again must be the same messages (same boundaries, same fields).
fn server_view(forwarded: &[ClientMessage]) -> Vec<ClientMessage> {
    let mut bytes = Vec::new();
    for m in forwarded {
        m.write_to(&mut bytes);
    }
    let mut framer = ClientFramer::new();
    let mut seen = Vec::new();
    for piece in bytes.chunks(READ_CHUNK) {
        if framer.push(piece).is_err() {
            break;
        }
        while let Ok(Some(m)) = framer.next_message() {
            seen.push(m);
        }
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn view_only_never_forwards_input(
        stream in arb_stream(),
        cuts in vec(1usize..64, 1..16),
        hold_input in any::<bool>(),
    ) {
        let ctx = FilterCtx { view_only: true, hold_input, clipboard: Clipboard::Both };
        let (forwarded, _) = relay(&stream, &cuts, ctx);
        for m in &forwarded {
            prop_assert!(!is_forbidden_in_view_only(m), "forwarded {:?}", m);
        }
        prop_assert_eq!(server_view(&forwarded), forwarded);
    }

    #[test]
    fn random_bytes_never_forward_input(
        stream in vec(any::<u8>(), 0..2048),
        cuts in vec(1usize..300, 1..16),
        hold_input in any::<bool>(),
    ) {
        let ctx = FilterCtx { view_only: true, hold_input, clipboard: Clipboard::Both };
        let (forwarded, _) = relay(&stream, &cuts, ctx);
        for m in &forwarded {
            prop_assert!(!is_forbidden_in_view_only(m), "forwarded {:?}", m);
        }
    }

    #[test]
    fn hold_input_in_control_forwards_no_input(
        stream in arb_stream(),
        cuts in vec(1usize..64, 1..16),
    ) {
        let ctx = FilterCtx { view_only: false, hold_input: true, clipboard: Clipboard::Both };
        let (forwarded, _) = relay(&stream, &cuts, ctx);
        for m in &forwarded {
            let allowed = match m {
                ClientMessage::SetEncodings(l) => {
                    l.iter().all(|e| !FRAMING_CHANGING_ENCODINGS.contains(e))
                }
                other => !is_forbidden_in_view_only(other),
            };
            prop_assert!(allowed, "forwarded {:?}", m);
        }
    }

    #[test]
    fn control_forwards_everything_well_formed_unchanged(
        msgs in vec(arb_message(), 0..30),
        cuts in vec(1usize..64, 1..16),
    ) {
        let stream: Vec<u8> = msgs.iter().flat_map(ClientMessage::to_bytes).collect();
        let ctx = FilterCtx { clipboard: Clipboard::Both, ..FilterCtx::default() };
        let (forwarded, ended) = relay(&stream, &cuts, ctx);
        prop_assert!(!ended);
        let expected: Vec<ClientMessage> = msgs
            .into_iter()
            .map(|m| match m {
                ClientMessage::SetEncodings(l) => ClientMessage::SetEncodings(
                    l.into_iter().filter(|e| FRAMEABLE_ENCODINGS.contains(e)).collect(),
                ),
                other => other,
            })
            .collect();
        prop_assert_eq!(forwarded, expected);
    }

    #[test]
    fn only_frameable_encodings_and_permitted_clipboard_reach_the_server(
        stream in arb_stream(),
        cuts in vec(1usize..64, 1..16),
        view_only in any::<bool>(),
        clipboard in prop::sample::select(vec![Clipboard::None, Clipboard::ToWorkstation, Clipboard::Both]),
    ) {
        let ctx = FilterCtx { view_only, hold_input: false, clipboard };
        let (forwarded, _) = relay(&stream, &cuts, ctx);
        for m in &forwarded {
            match m {
                ClientMessage::SetEncodings(l) => {
                    prop_assert!(l.iter().all(|e| FRAMEABLE_ENCODINGS.contains(e)), "{:?}", l);
                    prop_assert!(l.iter().all(|e| !FRAMING_CHANGING_ENCODINGS.contains(e)));
                    if !clipboard.allows_to_viewer(view_only) {
                        prop_assert!(!l.contains(&EXTENDED_CLIPBOARD_ENCODING), "{:?}", l);
                    }
                }
                ClientMessage::ClientCutText(_) | ClientMessage::ExtendedClipboard { .. } => {
                    prop_assert!(clipboard.allows_to_workstation(view_only), "{:?}", m);
                }
                _ => {}
            }
        }
    }

    #[test]
    fn parse_of_serialise_is_identity(m in arb_message()) {
        let bytes = m.to_bytes();
        let mut framer = ClientFramer::new();
        prop_assert_eq!(framer.push(&bytes), Ok(()));
        prop_assert_eq!(framer.next_message(), Ok(Some(m)));
        prop_assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn serialise_of_parse_is_canonical(stream in vec(any::<u8>(), 0..512)) {
        // Whatever parses re-serialises to bytes that parse to the same
        // message: normalisation is a fixed point.
        let mut framer = ClientFramer::new();
        prop_assert_eq!(framer.push(&stream), Ok(()));
        while let Ok(Some(m)) = framer.next_message() {
            let again = m.to_bytes();
            let mut f2 = ClientFramer::new();
            prop_assert_eq!(f2.push(&again), Ok(()));
            prop_assert_eq!(f2.next_message(), Ok(Some(m)));
        }
    }

    #[test]
    fn handshakes_never_panic(
        bytes in vec(any::<u8>(), 0..256),
        cuts in vec(1usize..32, 1..8),
        password in any::<bool>(),
    ) {
        let mut up = UpstreamHandshake::new(password.then(|| b"secret".to_vec()));
        let mut tech = TechnicianHandshake::new();
        let mut rest = bytes.as_slice();
        let mut cut = cuts.iter().copied().cycle();
        while !rest.is_empty() {
            let n = cut.next().unwrap_or(1).clamp(1, rest.len());
            let (piece, tail) = rest.split_at(n);
            rest = tail;
            let _ = up.push(piece);
            let _ = tech.push(piece);
            let _ = up.take_output();
            let _ = tech.take_output();
        }
        let _ = tech.provide_server_init(&bytes);
    }
}
