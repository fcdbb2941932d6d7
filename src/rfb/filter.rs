//! The per-session policy: which parsed client messages reach the server.
//!
//! View-only must hold against a hostile viewer, so it is enforced on every
//! path input could take: the input messages themselves are dropped, the
//! extensions that carry input another way (gii) or act on the machine
//! (xvp) end the session, and SetEncodings is stripped of the
//! pseudo-encodings that would negotiate input extensions at all.
//!
//! SetEncodings is cut down to an allow-list in every mode,
//! [`FRAMEABLE_ENCODINGS`]: the server must never send something the
//! server→client framer cannot delimit, and an unknown pseudo-encoding may
//! switch on a message format nobody here has read.
//!
//! The clipboard is a permission of its own ([`Clipboard`]): ClientCutText
//! reaches the workstation only when the session allows it, and Extended
//! Clipboard (whose requests would flow back from the server) is only
//! negotiated when the clipboard is shared both ways.
//!
//! In control mode everything else known is forwarded, but held keys and buttons
//! are tracked so that switching back to view-only can release them: a key
//! left down on the clinician's desktop is input the technician no longer
//! has the right to give.

use std::collections::{BTreeMap, BTreeSet};

use super::messages::{ClientMessage, MessageKind};
use super::server::FRAMEABLE_ENCODINGS;
use super::verdict::EndWhy;

/// Pseudo-encodings removed from SetEncodings in view-only mode, so the
/// server never enables an input path: QEMU pointer motion change (−257),
/// QEMU extended key event (−258), gii (−305), xvp (−309),
/// ExtendedMouseButtons (−316) and Extended Clipboard (0xC0A1E5CE).
pub const INPUT_EXTENSION_ENCODINGS: [i32; 6] =
    [-258, -257, -305, -309, -316, 0xC0A1_E5CE_u32 as i32];

/// The Extended Clipboard pseudo-encoding: kept only when the clipboard is
/// shared both ways.
pub const EXTENDED_CLIPBOARD_ENCODING: i32 = 0xC0A1_E5CE_u32 as i32;

/// Pseudo-encodings that must never reach the server, whatever the mode
/// (outside [`FRAMEABLE_ENCODINGS`], so the allow-list removes them; kept
/// here, and tested, so nobody adds them to it). ExtendedMouseButtons
/// (−316) changes the framing of client messages in a way the framer does
/// not follow:
/// ExtendedMouseButtons makes a PointerEvent with bit 7 set one byte longer.
/// If the server enabled it, Accord and the server would disagree on message
/// boundaries, and a viewer could then smuggle input inside a forwarded
/// ClientFence payload once view-only is on.
///
/// gii (−305) carries keys and buttons the filter does not track, so they
/// could not be released when a session ends.
pub const FRAMING_CHANGING_ENCODINGS: [i32; 2] = [-316, -305];

/// What the session's clipboard permission lets through (policy
/// `[session] clipboard`). View-only overrides it: no clipboard either way.
/// The clinician's clipboard holds patient data, so nothing of it leaves
/// unless IT says so (`both`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clipboard {
    /// Neither direction.
    None,
    /// The technician may paste into the workstation (in control); nothing
    /// of the clinician's clipboard leaves it.
    #[default]
    ToWorkstation,
    /// Both directions (in control).
    Both,
}

impl Clipboard {
    /// Every choice, in the order the policy's messages list them.
    pub const ALL: [Clipboard; 3] = [Clipboard::None, Clipboard::ToWorkstation, Clipboard::Both];

    /// The policy's spelling (`[session] clipboard`).
    pub fn as_str(self) -> &'static str {
        match self {
            Clipboard::None => "none",
            Clipboard::ToWorkstation => "to_workstation",
            Clipboard::Both => "both",
        }
    }

    /// The permission spelled `s`, if it is one.
    pub fn parse(s: &str) -> Option<Clipboard> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// Whether the viewer's ClientCutText may reach the server.
    pub fn allows_to_workstation(self, view_only: bool) -> bool {
        !view_only && matches!(self, Clipboard::ToWorkstation | Clipboard::Both)
    }

    /// Whether the server's ServerCutText may reach the viewer.
    pub fn allows_to_viewer(self, view_only: bool) -> bool {
        !view_only && self == Clipboard::Both
    }
}

/// Keys a human can plausibly hold at once, with margin. Bounds the tracking
/// memory; a key-down beyond it is dropped (it could not be released later).
pub const MAX_HELD_KEYS: usize = 64;

/// The mode in force for one message, read by the session from its mode
/// channel just before applying.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterCtx {
    /// Only the screen is shared: no input of any kind reaches the server.
    pub view_only: bool,
    /// A prompt granting more rights is on the clinician's screen; input is
    /// held back whatever the mode, so a viewer cannot click "accept" itself.
    pub hold_input: bool,
    /// The session's clipboard permission.
    pub clipboard: Clipboard,
}

/// What to do with one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Serialise this (possibly rewritten) message to the server.
    Forward(ClientMessage),
    /// Discard it silently; the session goes on.
    Drop,
    /// End the session (the viewer tried something view-only forbids
    /// outright).
    End(EndWhy),
}

/// Per-kind counts of dropped messages, for the audit record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropCounts {
    counts: [u64; MessageKind::ALL.len()],
    stripped_encodings: u64,
}

impl DropCounts {
    pub fn get(&self, kind: MessageKind) -> u64 {
        self.counts.get(kind.index()).copied().unwrap_or(0)
    }

    /// Pseudo-encodings removed from SetEncodings messages so far.
    pub fn stripped_encodings(&self) -> u64 {
        self.stripped_encodings
    }

    /// Non-zero counts, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = (MessageKind, u64)> + '_ {
        MessageKind::ALL
            .into_iter()
            .map(|k| (k, self.get(k)))
            .filter(|&(_, n)| n > 0)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn bump(&mut self, kind: MessageKind) {
        if let Some(c) = self.counts.get_mut(kind.index()) {
            *c = c.saturating_add(1);
        }
    }
}

/// The filter's state for one session.
#[derive(Debug, Default)]
pub struct Filter {
    held_keys: BTreeSet<u32>,
    /// QEMU keys held, by identity (see [`qemu_key_id`]) → keysym sent with
    /// the press, so the release carries the same pair.
    held_qemu_keys: BTreeMap<(u32, u32), u32>,
    buttons: u8,
    pointer: (u16, u16),
    /// The last SetEncodings as the viewer sent it, cut to the allow-list,
    /// to restore what view-only stripped.
    last_encodings: Option<Vec<i32>>,
    /// The clipboard permission of the last message applied (fixed for a
    /// session), for [`Self::restore_encodings`].
    clipboard: Clipboard,
    /// Whether the last SetEncodings forwarded lacked input extensions.
    encodings_stripped: bool,
    dropped: DropCounts,
}

impl Filter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides the fate of one message under the mode in `ctx`.
    pub fn apply(&mut self, msg: ClientMessage, ctx: FilterCtx) -> Action {
        let kind = msg.kind();
        self.clipboard = ctx.clipboard;
        if ctx.view_only {
            match kind {
                MessageKind::Xvp | MessageKind::Gii => {
                    self.dropped.bump(kind);
                    return Action::End(EndWhy::ForbiddenInViewOnly(kind));
                }
                _ if kind.is_input() => return self.drop(kind),
                _ => {}
            }
        } else if ctx.hold_input && (kind.is_input() || kind == MessageKind::Xvp) {
            return self.drop(kind);
        }
        if matches!(
            kind,
            MessageKind::ClientCutText | MessageKind::ExtendedClipboard
        ) && !ctx.clipboard.allows_to_workstation(ctx.view_only)
        {
            return self.drop(kind);
        }
        match msg {
            ClientMessage::SetEncodings(list) => self.set_encodings(list, ctx),
            ClientMessage::KeyEvent { down, key } => {
                if down {
                    if !self.held_keys.contains(&key) && self.held_count() >= MAX_HELD_KEYS {
                        return self.drop(kind);
                    }
                    self.held_keys.insert(key);
                } else {
                    self.held_keys.remove(&key);
                }
                Action::Forward(msg)
            }
            ClientMessage::QemuKeyEvent {
                down,
                keysym,
                keycode,
            } => {
                let id = qemu_key_id(keycode, keysym);
                if down {
                    if !self.held_qemu_keys.contains_key(&id) && self.held_count() >= MAX_HELD_KEYS
                    {
                        return self.drop(kind);
                    }
                    self.held_qemu_keys.insert(id, keysym);
                } else {
                    self.held_qemu_keys.remove(&id);
                }
                Action::Forward(msg)
            }
            ClientMessage::PointerEvent { buttons, x, y } => {
                self.buttons = buttons;
                self.pointer = (x, y);
                Action::Forward(msg)
            }
            other => Action::Forward(other),
        }
    }

    /// The messages that release every key and button forwarded as held,
    /// to send when control is withdrawn (or input is put on hold mid-press).
    /// Clears the tracked state.
    pub fn release_all(&mut self) -> Vec<ClientMessage> {
        let mut out: Vec<ClientMessage> = std::mem::take(&mut self.held_keys)
            .into_iter()
            .map(|key| ClientMessage::KeyEvent { down: false, key })
            .collect();
        out.extend(std::mem::take(&mut self.held_qemu_keys).into_iter().map(
            |((keycode, _), keysym)| ClientMessage::QemuKeyEvent {
                down: false,
                keysym,
                keycode,
            },
        ));
        if self.buttons != 0 {
            self.buttons = 0;
            out.push(ClientMessage::PointerEvent {
                buttons: 0,
                x: self.pointer.0,
                y: self.pointer.1,
            });
        }
        out
    }

    /// When view-only is lifted: the viewer's full SetEncodings, if the
    /// last one forwarded was stripped, so the server can offer the input
    /// extensions again. `None` if nothing needs restoring.
    pub fn restore_encodings(&mut self) -> Option<ClientMessage> {
        if !self.encodings_stripped {
            return None;
        }
        self.encodings_stripped = false;
        let clipboard = self.clipboard;
        self.last_encodings
            .as_deref()
            .map(|list| ClientMessage::SetEncodings(sendable(list, false, clipboard)))
    }

    /// Counts of what was dropped so far.
    pub fn dropped(&self) -> &DropCounts {
        &self.dropped
    }

    /// Whether any key or button is currently tracked as held.
    pub fn holds_input(&self) -> bool {
        self.held_count() > 0 || self.buttons != 0
    }

    fn held_count(&self) -> usize {
        self.held_keys.len() + self.held_qemu_keys.len()
    }

    fn drop(&mut self, kind: MessageKind) -> Action {
        self.dropped.bump(kind);
        Action::Drop
    }

    fn set_encodings(&mut self, list: Vec<i32>, ctx: FilterCtx) -> Action {
        let before = list.len();
        let allowed: Vec<i32> = list
            .into_iter()
            .filter(|e| FRAMEABLE_ENCODINGS.contains(e))
            .collect();
        let sent = sendable(&allowed, ctx.view_only, ctx.clipboard);
        let in_control = sendable(&allowed, false, ctx.clipboard);
        self.encodings_stripped = ctx.view_only && sent != in_control;
        self.last_encodings = Some(allowed);
        let removed = before - sent.len();
        self.dropped.stripped_encodings = self
            .dropped
            .stripped_encodings
            .saturating_add(u64::try_from(removed).unwrap_or(u64::MAX));
        Action::Forward(ClientMessage::SetEncodings(sent))
    }
}

/// The allow-listed encodings the server may be told about under this mode:
/// no input extension in view-only, no Extended Clipboard unless the
/// clipboard is shared both ways (its server→client messages would be
/// dropped, leaving the viewer waiting for data that never comes).
fn sendable(allowed: &[i32], view_only: bool, clipboard: Clipboard) -> Vec<i32> {
    allowed
        .iter()
        .copied()
        .filter(|e| !(view_only && INPUT_EXTENSION_ENCODINGS.contains(e)))
        .filter(|&e| e != EXTENDED_CLIPBOARD_ENCODING || clipboard.allows_to_viewer(view_only))
        .collect()
}

/// What identifies a QEMU key to the server: the keycode (scancode) when
/// non-zero, else the keysym (servers fall back to it). A release with the
/// same keycode but another keysym still releases the key.
fn qemu_key_id(keycode: u32, keysym: u32) -> (u32, u32) {
    (keycode, if keycode == 0 { keysym } else { 0 })
}

#[cfg(test)]
mod tests {
    use super::super::messages::tests::samples;
    use super::*;

    const VIEW: FilterCtx = FilterCtx {
        view_only: true,
        hold_input: false,
        clipboard: Clipboard::ToWorkstation,
    };
    const CONTROL: FilterCtx = FilterCtx {
        view_only: false,
        hold_input: false,
        clipboard: Clipboard::ToWorkstation,
    };
    const HOLD: FilterCtx = FilterCtx {
        view_only: false,
        hold_input: true,
        clipboard: Clipboard::ToWorkstation,
    };
    const EXT: i32 = EXTENDED_CLIPBOARD_ENCODING;

    fn key(down: bool, key: u32) -> ClientMessage {
        ClientMessage::KeyEvent { down, key }
    }

    #[test]
    fn control_forwards_every_known_message() {
        let mut f = Filter::new();
        for m in samples() {
            let want = match &m {
                ClientMessage::SetEncodings(l) => {
                    ClientMessage::SetEncodings(l.iter().copied().filter(|&e| e != EXT).collect())
                }
                other => other.clone(),
            };
            assert_eq!(f.apply(m, CONTROL), Action::Forward(want));
        }
        assert_eq!(f.dropped().total(), 0);
        // With the clipboard shared both ways, nothing at all is changed.
        let both = FilterCtx {
            clipboard: Clipboard::Both,
            ..CONTROL
        };
        for m in samples() {
            assert_eq!(f.apply(m.clone(), both), Action::Forward(m));
        }
    }

    #[test]
    fn set_encodings_is_cut_to_the_allow_list_in_every_mode() {
        // Zlib, ZlibHex, TRLE, JPEG, H.264, ContinuousUpdates, Fence, xvp,
        // gii, ExtendedMouseButtons, CursorWithAlpha, VMware cursor, and
        // two made-up values: none can be framed, so none may be announced.
        let unframeable = [
            6,
            8,
            15,
            21,
            50,
            -313,
            -312,
            -309,
            -305,
            -316,
            -314,
            0x574D_5664,
            99,
            -1000,
        ];
        let mut list = vec![7, 16];
        list.extend(unframeable);
        list.extend([-239, -224]);
        for ctx in [
            CONTROL,
            VIEW,
            HOLD,
            FilterCtx {
                clipboard: Clipboard::Both,
                ..CONTROL
            },
        ] {
            let mut f = Filter::new();
            assert_eq!(
                f.apply(ClientMessage::SetEncodings(list.clone()), ctx),
                Action::Forward(ClientMessage::SetEncodings(vec![7, 16, -239, -224])),
                "{ctx:?}"
            );
            assert_eq!(f.dropped().stripped_encodings(), unframeable.len() as u64);
            // Nothing to restore: those were never the view-only's doing.
            assert_eq!(f.restore_encodings(), None);
        }
    }

    #[test]
    fn always_stripped_encodings_are_not_frameable() {
        for e in FRAMING_CHANGING_ENCODINGS {
            assert!(!FRAMEABLE_ENCODINGS.contains(&e), "{e}");
        }
        // Tight's quality and compression levels stay, all twenty.
        for e in (-32..=-23).chain(-256..=-247) {
            assert!(FRAMEABLE_ENCODINGS.contains(&e), "{e}");
        }
    }

    #[test]
    fn clipboard_permission_truth_table() {
        use Clipboard::*;
        for (c, to_ws, to_viewer) in [
            (None, false, false),
            (ToWorkstation, true, false),
            (Both, true, true),
        ] {
            assert_eq!(c.allows_to_workstation(false), to_ws, "{c:?}");
            assert_eq!(c.allows_to_viewer(false), to_viewer, "{c:?}");
            assert!(!c.allows_to_workstation(true), "{c:?} view-only");
            assert!(!c.allows_to_viewer(true), "{c:?} view-only");
        }
        assert_eq!(Clipboard::default(), ToWorkstation);
    }

    #[test]
    fn clipboard_deserialises_from_policy_strings() {
        #[derive(serde::Deserialize)]
        struct S {
            clipboard: Clipboard,
        }
        for (text, want) in [
            ("none", Clipboard::None),
            ("to_workstation", Clipboard::ToWorkstation),
            ("both", Clipboard::Both),
        ] {
            let s: S = toml::from_str(&format!("clipboard = \"{text}\"")).unwrap();
            assert_eq!(s.clipboard, want);
        }
        assert!(toml::from_str::<S>("clipboard = \"to_viewer\"").is_err());
        assert!(toml::from_str::<S>("clipboard = \"Both\"").is_err());
    }

    #[test]
    fn client_cut_text_obeys_the_clipboard_permission() {
        let texts = [
            ClientMessage::ClientCutText(b"paste".to_vec()),
            ClientMessage::ExtendedClipboard {
                flags: 0x1000_0001,
                data: vec![1, 2, 3],
            },
        ];
        for (clipboard, view_only, forwarded) in [
            (Clipboard::None, false, false),
            (Clipboard::ToWorkstation, false, true),
            (Clipboard::Both, false, true),
            (Clipboard::None, true, false),
            (Clipboard::ToWorkstation, true, false),
            (Clipboard::Both, true, false),
        ] {
            let ctx = FilterCtx {
                view_only,
                hold_input: false,
                clipboard,
            };
            let mut f = Filter::new();
            for m in texts.clone() {
                let want = if forwarded {
                    Action::Forward(m.clone())
                } else {
                    Action::Drop
                };
                assert_eq!(f.apply(m, ctx), want, "{ctx:?}");
            }
            let dropped = u64::from(!forwarded);
            assert_eq!(f.dropped().get(MessageKind::ClientCutText), dropped);
            assert_eq!(f.dropped().get(MessageKind::ExtendedClipboard), dropped);
        }
    }

    #[test]
    fn extended_clipboard_is_announced_only_when_shared_both_ways() {
        for (clipboard, view_only, kept) in [
            (Clipboard::None, false, false),
            (Clipboard::ToWorkstation, false, false),
            (Clipboard::Both, false, true),
            (Clipboard::Both, true, false),
        ] {
            let ctx = FilterCtx {
                view_only,
                hold_input: false,
                clipboard,
            };
            let mut f = Filter::new();
            let want = if kept { vec![7, EXT] } else { vec![7] };
            assert_eq!(
                f.apply(ClientMessage::SetEncodings(vec![7, EXT]), ctx),
                Action::Forward(ClientMessage::SetEncodings(want)),
                "{ctx:?}"
            );
            // Lifting view-only gives it back only if the clipboard allows.
            if view_only {
                assert_eq!(
                    f.restore_encodings(),
                    Some(ClientMessage::SetEncodings(vec![7, EXT]))
                );
            }
        }
    }

    #[test]
    fn view_only_drops_input_and_ends_on_xvp_and_gii() {
        let mut f = Filter::new();
        for m in samples() {
            let kind = m.kind();
            let action = f.apply(m.clone(), VIEW);
            match kind {
                MessageKind::KeyEvent
                | MessageKind::PointerEvent
                | MessageKind::ClientCutText
                | MessageKind::ExtendedClipboard
                | MessageKind::SetDesktopSize
                | MessageKind::QemuKeyEvent
                | MessageKind::QemuAudio => assert_eq!(action, Action::Drop, "{kind}"),
                MessageKind::Xvp | MessageKind::Gii => {
                    assert_eq!(action, Action::End(EndWhy::ForbiddenInViewOnly(kind)))
                }
                MessageKind::SetEncodings => {
                    let Action::Forward(ClientMessage::SetEncodings(list)) = action else {
                        panic!("SetEncodings not forwarded: {action:?}");
                    };
                    assert!(list.iter().all(|e| !INPUT_EXTENSION_ENCODINGS.contains(e)));
                }
                _ => assert_eq!(action, Action::Forward(m), "{kind}"),
            }
        }
        assert_eq!(f.dropped().get(MessageKind::KeyEvent), 1);
        assert_eq!(f.dropped().get(MessageKind::ClientCutText), 2);
        assert_eq!(f.dropped().get(MessageKind::Gii), 2);
        assert!(f.dropped().iter().all(|(_, n)| n > 0));
    }

    #[test]
    fn view_only_strips_input_pseudo_encodings_and_keeps_order() {
        let mut f = Filter::new();
        let mut list = vec![16, 7, -223];
        list.extend(INPUT_EXTENSION_ENCODINGS);
        list.extend([-308, 0, -312]);
        let action = f.apply(ClientMessage::SetEncodings(list.clone()), VIEW);
        assert_eq!(
            action,
            Action::Forward(ClientMessage::SetEncodings(vec![16, 7, -223, -308, 0]))
        );
        // The six input extensions and Fence (not frameable).
        assert_eq!(f.dropped().stripped_encodings(), 7);
        // Lifting view-only restores the QEMU ones; gii, xvp and
        // ExtendedMouseButtons are never allowed, Extended Clipboard not
        // with this clipboard permission.
        assert_eq!(
            f.restore_encodings(),
            Some(ClientMessage::SetEncodings(vec![
                16, 7, -223, -258, -257, -308, 0
            ]))
        );
        assert_eq!(f.restore_encodings(), None);
    }

    #[test]
    fn restore_is_none_when_nothing_was_stripped() {
        let mut f = Filter::new();
        assert_eq!(f.restore_encodings(), None);
        let _ = f.apply(ClientMessage::SetEncodings(vec![0, 1]), VIEW);
        assert_eq!(f.restore_encodings(), None);
        let _ = f.apply(ClientMessage::SetEncodings(vec![0, -258]), CONTROL);
        assert_eq!(f.restore_encodings(), None);
    }

    #[test]
    fn hold_input_drops_input_in_both_modes() {
        for ctx in [
            HOLD,
            FilterCtx {
                view_only: true,
                hold_input: true,
                clipboard: Clipboard::Both,
            },
        ] {
            let mut f = Filter::new();
            for m in samples() {
                let kind = m.kind();
                let action = f.apply(m, ctx);
                if kind.is_input() && !(ctx.view_only && kind == MessageKind::Gii) {
                    assert_eq!(action, Action::Drop, "{kind} {ctx:?}");
                }
            }
            assert!(!f.holds_input());
        }
        let mut f = Filter::new();
        let xvp = ClientMessage::Xvp {
            version: 1,
            code: 2,
        };
        assert_eq!(f.apply(xvp, HOLD), Action::Drop);
    }

    #[test]
    fn release_all_releases_keys_qemu_keys_and_buttons() {
        let mut f = Filter::new();
        for m in [
            key(true, 0x61),
            key(true, 0xffe1),
            key(false, 0x61),
            key(true, 0x62),
            ClientMessage::QemuKeyEvent {
                down: true,
                keysym: 0x63,
                keycode: 0x2e,
            },
            ClientMessage::QemuKeyEvent {
                down: true,
                keysym: 0x64,
                keycode: 0x20,
            },
            ClientMessage::QemuKeyEvent {
                down: false,
                keysym: 0,
                keycode: 0x20,
            },
            ClientMessage::PointerEvent {
                buttons: 1,
                x: 10,
                y: 20,
            },
            ClientMessage::PointerEvent {
                buttons: 5,
                x: 11,
                y: 21,
            },
        ] {
            assert!(matches!(f.apply(m, CONTROL), Action::Forward(_)));
        }
        assert!(f.holds_input());
        assert_eq!(
            f.release_all(),
            vec![
                key(false, 0x62),
                key(false, 0xffe1),
                ClientMessage::QemuKeyEvent {
                    down: false,
                    keysym: 0x63,
                    keycode: 0x2e,
                },
                ClientMessage::PointerEvent {
                    buttons: 0,
                    x: 11,
                    y: 21,
                },
            ]
        );
        assert!(!f.holds_input());
        assert_eq!(f.release_all(), vec![]);
    }

    #[test]
    fn released_pointer_with_no_buttons_emits_nothing() {
        let mut f = Filter::new();
        let m = ClientMessage::PointerEvent {
            buttons: 0,
            x: 1,
            y: 1,
        };
        let _ = f.apply(m, CONTROL);
        assert_eq!(f.release_all(), vec![]);
    }

    #[test]
    fn held_key_tracking_is_bounded() {
        let mut f = Filter::new();
        for k in 0..MAX_HELD_KEYS as u32 {
            assert!(matches!(f.apply(key(true, k), CONTROL), Action::Forward(_)));
        }
        // Repeating a held key (auto-repeat) is fine; a new one is not.
        assert!(matches!(f.apply(key(true, 0), CONTROL), Action::Forward(_)));
        assert_eq!(f.apply(key(true, 9999), CONTROL), Action::Drop);
        let q = ClientMessage::QemuKeyEvent {
            down: true,
            keysym: 1,
            keycode: 1,
        };
        assert_eq!(f.apply(q, CONTROL), Action::Drop);
        assert_eq!(f.release_all().len(), MAX_HELD_KEYS);
    }

    #[test]
    fn view_only_drops_do_not_change_tracking() {
        let mut f = Filter::new();
        let _ = f.apply(key(true, 1), VIEW);
        let _ = f.apply(key(true, 2), HOLD);
        assert!(!f.holds_input());
    }

    #[test]
    fn view_to_control_offers_the_stripped_encodings_again() {
        let mut f = Filter::new();
        // QEMU key events (-258) and extended desktop size (-308) asked in view-only.
        let asked = vec![0, 7, -258, -308];
        match f.apply(ClientMessage::SetEncodings(asked.clone()), VIEW) {
            Action::Forward(ClientMessage::SetEncodings(sent)) => assert!(!sent.contains(&-258)),
            other => panic!("{other:?}"),
        }
        match f.restore_encodings() {
            Some(ClientMessage::SetEncodings(list)) => {
                assert!(list.contains(&-258), "{list:?}");
                assert!(list.iter().all(|e| FRAMEABLE_ENCODINGS.contains(e)));
            }
            other => panic!("{other:?}"),
        }
        // Once restored, nothing more to restore; in control nothing was stripped.
        assert!(f.restore_encodings().is_none());
        f.apply(ClientMessage::SetEncodings(asked), CONTROL);
        assert!(f.restore_encodings().is_none());
    }
}
