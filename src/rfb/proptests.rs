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

// ---- server→client framer ----

use super::server::tests::{
    BELL, PF8, PF16, PF32, PF32_DEPTH32, cut_text, extended_cut_text, rect, run, update,
};

/// A tiny deterministic generator: proptest picks the seed, this builds a
/// structurally valid message from it (nested strategies for Hextile tiles
/// and Tight sub-formats would be far slower to generate).
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn bytes(&mut self, n: u64) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn compact_len(len: u64) -> Vec<u8> {
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

/// Tight data after its control/filter/palette: raw below 12 bytes, else a
/// compact length and that many (pretend-compressed) bytes.
fn tight_data(g: &mut Gen, raw_len: u64, out: &mut Vec<u8>) {
    if raw_len < 12 {
        out.extend(g.bytes(raw_len));
    } else {
        let len = g.below(300);
        out.extend(compact_len(len));
        out.extend(g.bytes(len));
    }
}

/// One rectangle of a random frameable encoding, valid for `pf`.
fn gen_rect(g: &mut Gen, pf: &PixelFormat) -> Vec<u8> {
    let bpp = u64::from(pf.bits_per_pixel / 8);
    let tpixel = if pf.bits_per_pixel == 32 && pf.depth == 24 {
        3
    } else {
        bpp
    };
    let (w, h) = (g.below(41) as u16, g.below(41) as u16);
    let (wu, hu) = (u64::from(w), u64::from(h));
    let pixels = wu * hu;
    let mask = wu.div_ceil(8) * hu;
    let mut v;
    match g.below(12) {
        0 => {
            v = rect(w, h, 0);
            v.extend(g.bytes(pixels * bpp));
        }
        1 => {
            v = rect(w, h, 1);
            v.extend(g.bytes(4));
        }
        2 => {
            v = rect(w, h, 2);
            let n = g.below(pixels + 1).min(20);
            v.extend((n as u32).to_be_bytes());
            v.extend(g.bytes(bpp + n * (bpp + 8)));
        }
        3 => {
            v = rect(w, h, 5);
            for ty in (0..hu).step_by(16) {
                for tx in (0..wu).step_by(16) {
                    let (tw, th) = ((wu - tx).min(16), (hu - ty).min(16));
                    let sub = g.below(32) as u8;
                    v.push(sub);
                    if sub & 1 != 0 {
                        v.extend(g.bytes(tw * th * bpp));
                        continue;
                    }
                    if sub & 2 != 0 {
                        v.extend(g.bytes(bpp));
                    }
                    if sub & 4 != 0 {
                        v.extend(g.bytes(bpp));
                    }
                    if sub & 8 != 0 {
                        let n = g.below(6);
                        v.push(n as u8);
                        let each = if sub & 16 != 0 { bpp + 2 } else { 2 };
                        v.extend(g.bytes(n * each));
                    }
                }
            }
        }
        4 => {
            v = rect(w, h, 7);
            match g.below(4) {
                0 => {
                    v.push(0x80 | g.below(16) as u8);
                    v.extend(g.bytes(tpixel));
                }
                1 => {
                    v.push(0x90);
                    let len = g.below(200);
                    v.extend(compact_len(len));
                    v.extend(g.bytes(len));
                }
                2 => {
                    let filter = g.below(3) as u8;
                    v.extend([0x40 | (g.below(4) as u8) << 4, filter]);
                    let raw = match filter {
                        1 => {
                            let colours = 1 + g.below(256);
                            v.push((colours - 1) as u8);
                            v.extend(g.bytes(colours * tpixel));
                            if colours == 2 { mask } else { pixels }
                        }
                        _ => pixels * tpixel,
                    };
                    tight_data(g, raw, &mut v);
                }
                _ => {
                    v.push((g.below(4) as u8) << 4); // implicit copy filter
                    tight_data(g, pixels * tpixel, &mut v);
                }
            }
        }
        5 => {
            v = rect(w, h, if g.below(2) == 0 { 16 } else { 17 });
            let len = g.below(400);
            v.extend((len as u32).to_be_bytes());
            v.extend(g.bytes(len));
        }
        6 => {
            v = rect(w, h, -239);
            v.extend(g.bytes(pixels * bpp + mask));
        }
        7 => {
            v = rect(w, h, -240);
            if pixels > 0 {
                v.extend(g.bytes(6 + 2 * mask));
            }
        }
        8 => {
            let enc = [-223, -258, -257][g.below(3) as usize];
            v = rect(w, h, enc);
        }
        9 => {
            v = rect(0, 0, -307);
            let len = g.below(50);
            v.extend((len as u32).to_be_bytes());
            v.extend(g.bytes(len));
        }
        _ => {
            v = rect(w, h, -308);
            let n = g.below(4);
            v.extend([n as u8, 0, 0, 0]);
            v.extend(g.bytes(n * 16));
        }
    }
    v
}

/// A valid server stream: (bytes, the non-cut-text bytes, the cut-text bytes).
fn gen_server_stream(seed: u64, messages: usize, pf: &PixelFormat) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut g = Gen(seed);
    let (mut all, mut kept, mut cut) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..messages {
        let (m, is_cut) = match g.below(8) {
            0 => (BELL.to_vec(), false),
            1 => {
                let n = g.below(4) as u16;
                let mut m = vec![1, 0, 0, 0];
                m.extend(n.to_be_bytes());
                m.extend(g.bytes(u64::from(n) * 6));
                (m, false)
            }
            2 => {
                // The marker is what the leak check looks for.
                let mut text = b"CLINICIAN-CLIPBOARD ".to_vec();
                let len = g.below(40);
                text.extend(g.bytes(len));
                (cut_text(&text), true)
            }
            3 => {
                let mut payload = b"CLINICIAN-CLIPBOARD".to_vec();
                let len = g.below(20);
                payload.extend(g.bytes(len));
                (extended_cut_text(g.next() as u32, &payload), true)
            }
            4 => {
                // LastRect form: count 0xFFFF, ends with a LastRect.
                let mut m = update(0xFFFF);
                for _ in 0..g.below(4) {
                    m.extend(gen_rect(&mut g, pf));
                }
                m.extend(rect(0, 0, -224));
                (m, false)
            }
            _ => {
                let n = g.below(5);
                let mut m = update(n as u16);
                for _ in 0..n {
                    m.extend(gen_rect(&mut g, pf));
                }
                (m, false)
            }
        };
        all.extend_from_slice(&m);
        if is_cut {
            cut.extend(m)
        } else {
            kept.extend(m)
        }
    }
    (all, kept, cut)
}

fn arb_server_pf() -> impl Strategy<Value = PixelFormat> {
    prop::sample::select(vec![PF8, PF16, PF32, PF32_DEPTH32])
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes: no panic, every classification within the input,
    /// and `NeedMore` only while less than one header is buffered (`run`
    /// asserts both on every step).
    #[test]
    fn server_framer_survives_arbitrary_bytes(
        bytes in vec(any::<u8>(), 0..4096),
        cuts in vec(1usize..2000, 1..8),
        pf in arb_server_pf(),
        clipboard in any::<bool>(),
    ) {
        let r = run(pf, clipboard, &bytes, &cuts);
        if r.error.is_none() {
            prop_assert_eq!(r.forwarded.len() + r.dropped.len() + r.leftover, bytes.len());
        }
    }

    /// Valid streams with random bytes overwritten: deep paths on garbage.
    #[test]
    fn server_framer_survives_mutated_streams(
        seed in any::<u64>(),
        pf in arb_server_pf(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cuts in vec(1usize..700, 1..8),
    ) {
        let (mut bytes, _, _) = gen_server_stream(seed, 12, &pf);
        if !bytes.is_empty() {
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = b;
            }
        }
        let r = run(pf, false, &bytes, &cuts);
        if r.error.is_none() {
            prop_assert_eq!(r.forwarded.len() + r.dropped.len() + r.leftover, bytes.len());
        }
    }

    /// However the stream is split, the same bytes are forwarded and
    /// dropped and the same messages counted.
    #[test]
    fn server_framing_is_chunking_invariant(
        seed in any::<u64>(),
        pf in arb_server_pf(),
        cuts_a in vec(1usize..500, 1..8),
        cuts_b in vec(1usize..5000, 1..8),
        clipboard in any::<bool>(),
    ) {
        let (bytes, _, _) = gen_server_stream(seed, 16, &pf);
        let a = run(pf, clipboard, &bytes, &cuts_a);
        let b = run(pf, clipboard, &bytes, &cuts_b);
        prop_assert_eq!(&a.error, &None);
        prop_assert_eq!(a.leftover, 0);
        prop_assert!(a.framer.at_boundary());
        prop_assert_eq!(&a.forwarded, &b.forwarded);
        prop_assert_eq!(&a.dropped, &b.dropped);
        prop_assert_eq!(a.framer.counts(), b.framer.counts());
    }

    /// With the clipboard refused, exactly the cut texts are dropped: no
    /// byte of one is forwarded, and nothing else is lost.
    #[test]
    fn refused_clipboard_never_forwards_a_cut_text_byte(
        seed in any::<u64>(),
        pf in arb_server_pf(),
        cuts in vec(1usize..3000, 1..8),
    ) {
        let (bytes, kept, cut) = gen_server_stream(seed, 20, &pf);
        let refused = run(pf, false, &bytes, &cuts);
        prop_assert_eq!(&refused.error, &None);
        prop_assert!(!contains(&refused.forwarded, b"CLINICIAN-CLIPBOARD"));
        prop_assert_eq!(refused.forwarded, kept);
        prop_assert_eq!(refused.dropped, cut);
        let allowed = run(pf, true, &bytes, &cuts);
        prop_assert_eq!(allowed.forwarded, bytes);
    }
}
