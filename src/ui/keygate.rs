//! No answer by stray typing (rule in `docs/ui-keyboard.md`).
//!
//! A clinician typing into another window when a prompt appears must not
//! answer it: in egui a focused button is clicked by Space or Enter, and Tab
//! moves the focus, so a stream of text with Tabs and Returns could walk to a
//! button and press it. The gate looks at every key event before the
//! prompt's widgets see them and removes the keyboard events of any key that
//! is not *deliberate*, and with them the focus move and the focus itself.
//!
//! Keys come in bursts: a key less than [`PAUSE`] after the previous one
//! belongs to the same burst. A burst is deliberate only when it
//! - starts after the buttons armed,
//! - starts at least [`PAUSE`] after the prompt appeared and after the window
//!   last gained the keyboard focus (the keys typed before went to another
//!   window; the gate cannot see them, so it assumes there were some),
//! - holds navigation keys only (Tab, Shift+Tab, arrows, Space, Enter):
//!   one letter, digit or pasted text marks the whole burst as typing.
//!
//! Escape is never filtered: refusing is always safe. The gate is pure (egui
//! time in, verdict out) so the tests drive it with simulated time.

/// The quiet time that separates two bursts of keys, and that must precede
/// a deliberate one.
pub const PAUSE: f64 = 1.0;

/// The keyboard state of one prompt.
#[derive(Debug, Clone)]
pub struct KeyGate {
    /// Latest moment from which keys we could not see may have been typed:
    /// when the prompt appeared or the window gained the keyboard focus.
    unseen_until: f64,
    /// The window had the keyboard focus on the previous frame.
    was_focused: bool,
    burst: Option<Burst>,
}

#[derive(Debug, Clone, Copy)]
struct Burst {
    last: f64,
    deliberate: bool,
}

/// What one frame's keyboard events are allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No key this frame, or only keys of a deliberate burst.
    Pass,
    /// Keys of a typing burst or before arming: drop them and the focus.
    Block,
}

/// Whether a key is one a person uses to reach and press a button.
fn navigation(key: egui::Key, modifiers: egui::Modifiers) -> bool {
    use egui::Key;
    match key {
        Key::Tab => !modifiers.any() || modifiers.shift_only(),
        Key::Enter
        | Key::Space
        | Key::ArrowUp
        | Key::ArrowDown
        | Key::ArrowLeft
        | Key::ArrowRight
        | Key::Escape => !modifiers.any(),
        _ => false,
    }
}

/// Events that come from the keyboard (and so can move the focus or click).
pub fn is_keyboard(e: &egui::Event) -> bool {
    matches!(
        e,
        egui::Event::Key { .. }
            | egui::Event::Text(_)
            | egui::Event::Paste(_)
            | egui::Event::Copy
            | egui::Event::Cut
            | egui::Event::Ime(_)
    )
}

impl KeyGate {
    /// A gate for a prompt that appeared at egui time `shown`.
    pub fn new(shown: f64) -> KeyGate {
        KeyGate {
            unseen_until: shown,
            was_focused: true,
            burst: None,
        }
    }

    /// Judges one frame at egui time `now`: its events, whether the window
    /// has the keyboard focus, and when the buttons arm.
    pub fn judge(
        &mut self,
        now: f64,
        focused: bool,
        armed_at: f64,
        events: &[egui::Event],
    ) -> Verdict {
        let gained = events
            .iter()
            .any(|e| matches!(e, egui::Event::WindowFocused(true)))
            || (focused && !self.was_focused);
        self.was_focused = focused;
        if gained {
            self.unseen_until = self.unseen_until.max(now);
        }
        let mut verdict = Verdict::Pass;
        for e in events {
            let nav = match e {
                egui::Event::Key {
                    key,
                    pressed: true,
                    modifiers,
                    ..
                } => navigation(*key, *modifiers),
                egui::Event::Text(t) => t == " ",
                egui::Event::Paste(_) | egui::Event::Ime(_) => false,
                // Releases and everything else only ride along.
                _ => continue,
            };
            let burst = match self.burst {
                Some(b) if now - b.last < PAUSE => Burst {
                    last: now,
                    deliberate: b.deliberate && nav,
                },
                _ => Burst {
                    last: now,
                    deliberate: nav && now >= armed_at && now - self.unseen_until >= PAUSE,
                },
            };
            self.burst = Some(burst);
            if !burst.deliberate {
                verdict = Verdict::Block;
            }
        }
        verdict
    }

    /// Whether keys pressed at `now` would still belong to a typing burst
    /// (for showing why the keyboard does nothing).
    pub fn typing(&self, now: f64) -> bool {
        self.burst
            .is_some_and(|b| !b.deliberate && now - b.last < PAUSE)
    }
}

/// Applies a [`Verdict::Block`] to the frame being drawn: called before any
/// widget of the frame exists, it removes the keyboard events (so no focused
/// button sees Space or Enter), cancels the focus move egui derived from a
/// Tab, and drops the focus (so the next deliberate burst starts from none).
/// Escape was already acted upon by the caller.
pub fn block_keyboard(ctx: &egui::Context) {
    ctx.input_mut(|i| i.events.retain(|e| !is_keyboard(e)));
    ctx.memory_mut(|m| {
        m.move_focus(egui::FocusDirection::None);
        if let Some(id) = m.focused() {
            m.surrender_focus(id);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use egui::{Event, Key, Modifiers};

    fn key(k: Key) -> Event {
        Event::Key {
            key: k,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: Modifiers::NONE,
        }
    }

    #[test]
    fn keys_before_arming_or_too_soon_after_showing_are_blocked() {
        let mut g = KeyGate::new(10.0);
        assert_eq!(g.judge(10.2, true, 11.0, &[key(Key::Tab)]), Verdict::Block);
        // Still the same burst (0.9 s later), though armed now.
        assert_eq!(
            g.judge(11.1, true, 11.0, &[key(Key::Enter)]),
            Verdict::Block
        );
        // A pause, then a deliberate Tab + Enter.
        assert_eq!(g.judge(12.2, true, 11.0, &[key(Key::Tab)]), Verdict::Pass);
        assert_eq!(g.judge(12.5, true, 11.0, &[key(Key::Enter)]), Verdict::Pass);
        // Armed at 10.1 but the prompt appeared 0.5 s ago.
        let mut g = KeyGate::new(10.0);
        assert_eq!(
            g.judge(10.5, true, 10.1, &[key(Key::Enter)]),
            Verdict::Block
        );
    }

    #[test]
    fn a_letter_taints_the_whole_burst_until_a_pause() {
        let mut g = KeyGate::new(0.0);
        assert_eq!(g.judge(5.0, true, 1.0, &[key(Key::Tab)]), Verdict::Pass);
        assert_eq!(g.judge(5.3, true, 1.0, &[key(Key::A)]), Verdict::Block);
        assert_eq!(g.judge(5.6, true, 1.0, &[key(Key::Enter)]), Verdict::Block);
        assert!(g.typing(5.7));
        assert_eq!(
            g.judge(5.9, true, 1.0, &[Event::Text("x".into())]),
            Verdict::Block
        );
        assert_eq!(g.judge(7.0, true, 1.0, &[key(Key::Enter)]), Verdict::Pass);
        assert!(!g.typing(7.0));
    }

    #[test]
    fn gaining_focus_counts_as_unseen_typing() {
        let mut g = KeyGate::new(0.0);
        assert_eq!(g.judge(4.0, false, 1.0, &[]), Verdict::Pass);
        // Activated by someone else while a stream was being typed.
        assert_eq!(g.judge(6.0, true, 1.0, &[]), Verdict::Pass);
        assert_eq!(g.judge(6.3, true, 1.0, &[key(Key::Tab)]), Verdict::Block);
        let mut g = KeyGate::new(0.0);
        assert_eq!(
            g.judge(
                6.0,
                true,
                1.0,
                &[Event::WindowFocused(true), key(Key::Enter)]
            ),
            Verdict::Block
        );
        assert_eq!(g.judge(7.5, true, 1.0, &[key(Key::Enter)]), Verdict::Pass);
    }

    #[test]
    fn releases_and_pointer_events_do_not_count() {
        let mut g = KeyGate::new(0.0);
        let release = Event::Key {
            key: Key::A,
            physical_key: None,
            pressed: false,
            repeat: false,
            modifiers: Modifiers::NONE,
        };
        assert_eq!(g.judge(0.1, true, 1.0, &[release]), Verdict::Pass);
        assert_eq!(
            g.judge(0.2, true, 1.0, &[Event::PointerMoved(egui::pos2(1.0, 1.0))]),
            Verdict::Pass
        );
        assert_eq!(g.judge(1.5, true, 1.0, &[key(Key::Tab)]), Verdict::Pass);
        let ctrl_tab = Event::Key {
            key: Key::Tab,
            physical_key: None,
            pressed: true,
            repeat: false,
            modifiers: Modifiers::CTRL,
        };
        assert_eq!(g.judge(3.0, true, 1.0, &[ctrl_tab]), Verdict::Block);
    }
}
