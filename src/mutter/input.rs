//! RFB input → Mutter's `RemoteDesktop.Session` calls (sans-IO).
//!
//! RFB sends the whole button mask and an absolute position with every
//! `PointerEvent`, and a keysym with a down flag with every `KeyEvent`;
//! Mutter wants one call per change. [`Input`] remembers what it last told
//! Mutter, so that it sends only changes, never presses a button or key
//! twice nor releases one it did not press, and can release everything it
//! holds ([`Input::release_all`]) when the session ends or input is held back
//! — a key left down on the workstation would go on typing for the clinician.

use std::collections::BTreeSet;

/// Linux evdev codes (`linux/input-event-codes.h`), which Mutter's
/// `NotifyPointerButton` takes.
pub const BTN_LEFT: i32 = 0x110;
pub const BTN_RIGHT: i32 = 0x111;
pub const BTN_MIDDLE: i32 = 0x112;
pub const BTN_SIDE: i32 = 0x113;

/// The axis argument of `NotifyPointerAxisDiscrete`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Axis {
    Vertical = 0,
    Horizontal = 1,
}

/// One call to make on the RemoteDesktop session, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// `NotifyKeyboardKeysym(keysym, pressed)`.
    Keysym { keysym: u32, pressed: bool },
    /// `NotifyPointerMotionAbsolute(stream, x, y)`: in the stream's pixels;
    /// the session adds the stream path.
    MotionAbsolute { x: f64, y: f64 },
    /// `NotifyPointerButton(evdev button, pressed)`.
    Button { button: i32, pressed: bool },
    /// `NotifyPointerAxisDiscrete(axis, steps)`: negative is up or left.
    AxisDiscrete { axis: Axis, steps: i32 },
}

/// What one bit of the RFB button mask means.
#[derive(Clone, Copy)]
enum Bit {
    Button(i32),
    /// A wheel notch: RFB viewers set the bit and clear it at once.
    Wheel(Axis, i32),
}

/// Bits 0–7 of the RFB mask, as gnome-remote-desktop maps them
/// (grd-session-vnc.c): bit 7 is the "back" button of the extended mouse
/// buttons that TigerVNC and noVNC send.
const BITS: [Bit; 8] = [
    Bit::Button(BTN_LEFT),
    Bit::Button(BTN_MIDDLE),
    Bit::Button(BTN_RIGHT),
    Bit::Wheel(Axis::Vertical, -1),
    Bit::Wheel(Axis::Vertical, 1),
    Bit::Wheel(Axis::Horizontal, -1),
    Bit::Wheel(Axis::Horizontal, 1),
    Bit::Button(BTN_SIDE),
];

/// The technician's keys and buttons as Mutter has been told.
#[derive(Debug, Default, Clone)]
pub struct Input {
    /// The last RFB mask, wheel bits included (a wheel step is sent when its
    /// bit goes from 0 to 1).
    mask: u8,
    /// `None` until the first pointer event: the first one always moves.
    position: Option<(u16, u16)>,
    /// Keysyms pressed and not yet released.
    keys: BTreeSet<u32>,
}

impl Input {
    pub fn new() -> Input {
        Input::default()
    }

    /// An RFB `PointerEvent`: motion first (the press lands where the
    /// technician clicked), then one call per changed bit, low bits first.
    pub fn pointer(&mut self, mask: u8, x: u16, y: u16) -> Vec<Call> {
        let mut calls = Vec::new();
        if self.position != Some((x, y)) {
            self.position = Some((x, y));
            calls.push(Call::MotionAbsolute {
                x: f64::from(x),
                y: f64::from(y),
            });
        }
        let changed = self.mask ^ mask;
        for (i, bit) in BITS.iter().enumerate() {
            if changed & (1 << i) == 0 {
                continue;
            }
            let pressed = mask & (1 << i) != 0;
            match *bit {
                Bit::Button(button) => calls.push(Call::Button { button, pressed }),
                // Mutter refuses 0 steps, and one notch is one step: only the
                // press counts (gnome-remote-desktop also counts the release,
                // which doubles every notch).
                Bit::Wheel(axis, steps) if pressed => {
                    calls.push(Call::AxisDiscrete { axis, steps })
                }
                Bit::Wheel(..) => {}
            }
        }
        self.mask = mask;
        calls
    }

    /// An RFB `KeyEvent`. A repeated press (viewers send auto-repeat as
    /// presses) is dropped, since the compositor repeats held keys itself; so
    /// is a release of a key Mutter was not told was down (pressed while
    /// input was held back).
    pub fn key(&mut self, down: bool, keysym: u32) -> Option<Call> {
        let changed = if down {
            self.keys.insert(keysym)
        } else {
            self.keys.remove(&keysym)
        };
        changed.then_some(Call::Keysym {
            keysym,
            pressed: down,
        })
    }

    /// Releases every held button and key, buttons first. The position is
    /// kept: the pointer stays where it is.
    pub fn release_all(&mut self) -> Vec<Call> {
        let mut calls = Vec::new();
        for (i, bit) in BITS.iter().enumerate() {
            if let Bit::Button(button) = *bit
                && self.mask & (1 << i) != 0
            {
                calls.push(Call::Button {
                    button,
                    pressed: false,
                });
            }
        }
        self.mask = 0;
        calls.extend(
            std::mem::take(&mut self.keys)
                .into_iter()
                .map(|keysym| Call::Keysym {
                    keysym,
                    pressed: false,
                }),
        );
        calls
    }

    /// Whether any button or key is down as far as Mutter knows.
    pub fn holds_any(&self) -> bool {
        !self.keys.is_empty()
            || BITS
                .iter()
                .enumerate()
                .any(|(i, bit)| matches!(bit, Bit::Button(_)) && self.mask & (1 << i) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn button(button: i32, pressed: bool) -> Call {
        Call::Button { button, pressed }
    }

    #[test]
    fn first_event_moves_then_only_changes_move() {
        let mut input = Input::new();
        assert_eq!(
            input.pointer(0, 0, 0),
            [Call::MotionAbsolute { x: 0.0, y: 0.0 }]
        );
        assert_eq!(input.pointer(0, 0, 0), []);
        assert_eq!(
            input.pointer(0, 640, 480),
            [Call::MotionAbsolute { x: 640.0, y: 480.0 }]
        );
    }

    #[test]
    fn buttons_map_to_evdev_codes_after_the_motion() {
        let mut input = Input::new();
        input.pointer(0, 10, 10);
        assert_eq!(
            input.pointer(0b101, 12, 10),
            [
                Call::MotionAbsolute { x: 12.0, y: 10.0 },
                button(BTN_LEFT, true),
                button(BTN_RIGHT, true),
            ]
        );
        assert_eq!(
            input.pointer(0b010, 12, 10),
            [
                button(BTN_LEFT, false),
                button(BTN_MIDDLE, true),
                button(BTN_RIGHT, false),
            ]
        );
        assert_eq!(input.pointer(0b1000_0010, 12, 10), [button(BTN_SIDE, true)]);
    }

    #[test]
    fn a_wheel_notch_is_one_step_on_press() {
        let mut input = Input::new();
        input.pointer(0, 1, 1);
        let notch = |input: &mut Input, bit: u8| {
            let mut calls = input.pointer(1 << bit, 1, 1);
            calls.extend(input.pointer(0, 1, 1));
            calls
        };
        let step = |axis, steps| Call::AxisDiscrete { axis, steps };
        assert_eq!(notch(&mut input, 3), [step(Axis::Vertical, -1)]);
        assert_eq!(notch(&mut input, 4), [step(Axis::Vertical, 1)]);
        assert_eq!(notch(&mut input, 5), [step(Axis::Horizontal, -1)]);
        assert_eq!(notch(&mut input, 6), [step(Axis::Horizontal, 1)]);
        // Held wheel bits (a viewer that never clears them) step once.
        assert_eq!(input.pointer(1 << 4, 1, 1), [step(Axis::Vertical, 1)]);
        assert_eq!(input.pointer(1 << 4, 1, 1), []);
        assert!(!input.holds_any(), "a wheel bit is not a held button");
    }

    #[test]
    fn keys_press_once_and_release_only_what_was_pressed() {
        let mut input = Input::new();
        let a = 0x61;
        assert_eq!(
            input.key(true, a),
            Some(Call::Keysym {
                keysym: a,
                pressed: true
            })
        );
        assert_eq!(input.key(true, a), None, "auto-repeat");
        assert_eq!(
            input.key(false, a),
            Some(Call::Keysym {
                keysym: a,
                pressed: false
            })
        );
        assert_eq!(input.key(false, a), None);
        assert_eq!(input.key(false, 0xffe1), None, "never pressed");
    }

    #[test]
    fn release_all_releases_buttons_then_keys_and_keeps_the_position() {
        let mut input = Input::new();
        input.pointer(0b1000_1001, 5, 6);
        input.key(true, 0xffe3); // Control_L
        input.key(true, 0x63);
        assert!(input.holds_any());
        assert_eq!(
            input.release_all(),
            [
                button(BTN_LEFT, false),
                button(BTN_SIDE, false),
                Call::Keysym {
                    keysym: 0x63,
                    pressed: false
                },
                Call::Keysym {
                    keysym: 0xffe3,
                    pressed: false
                },
            ]
        );
        assert!(!input.holds_any());
        assert_eq!(input.release_all(), []);
        assert_eq!(input.pointer(0, 5, 6), [], "same place, nothing held");
        assert_eq!(input.pointer(1, 5, 6), [button(BTN_LEFT, true)]);
    }

    #[derive(Debug, Clone)]
    enum Event {
        Pointer(u8, u16, u16),
        Key(bool, u32),
        ReleaseAll,
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            4 => (any::<u8>(), 0u16..4, 0u16..4).prop_map(|(m, x, y)| Event::Pointer(m, x, y)),
            4 => (any::<bool>(), 0u32..6).prop_map(|(d, k)| Event::Key(d, k)),
            1 => Just(Event::ReleaseAll),
        ]
    }

    /// What Mutter holds after the calls; fails on a double press or a
    /// release of something not held.
    #[derive(Default)]
    struct Compositor {
        buttons: BTreeSet<i32>,
        keys: BTreeSet<u32>,
    }

    impl Compositor {
        fn take(&mut self, calls: &[Call]) -> Result<(), TestCaseError> {
            for call in calls {
                match *call {
                    Call::Button { button, pressed } => {
                        let changed = if pressed {
                            self.buttons.insert(button)
                        } else {
                            self.buttons.remove(&button)
                        };
                        prop_assert!(changed, "{call:?} changes nothing");
                    }
                    Call::Keysym { keysym, pressed } => {
                        let changed = if pressed {
                            self.keys.insert(keysym)
                        } else {
                            self.keys.remove(&keysym)
                        };
                        prop_assert!(changed, "{call:?} changes nothing");
                    }
                    Call::AxisDiscrete { steps, .. } => prop_assert!(steps != 0),
                    Call::MotionAbsolute { .. } => {}
                }
            }
            Ok(())
        }
    }

    proptest! {
        #[test]
        fn after_any_sequence_release_all_leaves_nothing_held(
            events in proptest::collection::vec(event(), 0..64)
        ) {
            let mut input = Input::new();
            let mut mutter = Compositor::default();
            for e in events {
                let calls = match e {
                    Event::Pointer(m, x, y) => input.pointer(m, x, y),
                    Event::Key(d, k) => input.key(d, k).into_iter().collect(),
                    Event::ReleaseAll => input.release_all(),
                };
                mutter.take(&calls)?;
                prop_assert_eq!(
                    input.holds_any(),
                    !mutter.buttons.is_empty() || !mutter.keys.is_empty()
                );
            }
            let calls = input.release_all();
            mutter.take(&calls)?;
            prop_assert!(!input.holds_any());
            prop_assert!(mutter.buttons.is_empty(), "held: {:?}", mutter.buttons);
            prop_assert!(mutter.keys.is_empty(), "held: {:?}", mutter.keys);
        }
    }
}
