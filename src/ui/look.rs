//! How the clinician's windows look: text sizes, colours
//! chosen for a contrast of at least 4.5:1 (WCAG AA), and answer buttons
//! that differ by more than colour.
//!
//! "Refuser" (and "Terminer", its place on the question whether a session
//! goes on) is the visually safe default: filled, bold, framed thick.
//! The two "Autoriser" buttons are plain; the control one, which gives the
//! most, never draws the eye first (DESIGN.md fixes the order of the labels,
//! so the emphasis, not the position, says which is the safe one).

use crate::broker::Answer;
use egui::{Button, Color32, RichText, Stroke};

/// The question at the top of the prompt (≥ 18 pt).
pub const QUESTION_PT: f32 = 22.0;
// WCAG "large text" starts at 18 pt: the question must be at least that.
const _: () = assert!(QUESTION_PT >= 18.0);

/// Everything the clinician must read.
pub const BODY_PT: f32 = 16.0;
/// Notes under a line (who guarantees the identity, who typed the reason).
pub const SMALL_PT: f32 = 14.0;
/// Answer buttons' labels.
pub const BUTTON_PT: f32 = 17.0;

/// Body text on the light theme's panel.
pub const TEXT: Color32 = Color32::from_rgb(0x20, 0x20, 0x20);
/// "See your screen *and use your keyboard and mouse*": the weightier ask.
pub const CONTROL_TEXT: Color32 = Color32::from_rgb(0xa3, 0x1c, 0x1c);
/// Background of the light theme's panels (egui's light `panel_fill`).
pub const PANEL: Color32 = Color32::from_rgb(0xf8, 0xf8, 0xf8);
/// The safe answer's fill, white text on it.
pub const SAFE_FILL: Color32 = Color32::from_rgb(0x0d, 0x47, 0xa1);

/// One answer button, styled by what it gives.
pub fn answer_button(a: Answer, label: &str) -> Button<'_> {
    let text = RichText::new(label).size(BUTTON_PT);
    let size = egui::vec2(0.0, 40.0);
    match a {
        Answer::Refused => Button::new(text.strong().color(Color32::WHITE))
            .fill(SAFE_FILL)
            .stroke(Stroke::new(3.0, Color32::BLACK))
            .min_size(egui::vec2(140.0, 40.0)),
        Answer::ViewOnly | Answer::Control | Answer::Continue => Button::new(text.color(TEXT))
            .fill(Color32::WHITE)
            .stroke(Stroke::new(1.0, Color32::from_gray(0x60)))
            .min_size(size),
    }
}

/// Relative luminance of an sRGB colour (WCAG 2.x).
pub fn luminance(c: Color32) -> f64 {
    let lin = |v: u8| {
        let v = f64::from(v) / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * lin(c.r()) + 0.7152 * lin(c.g()) + 0.0722 * lin(c.b())
}

/// WCAG contrast ratio of two colours (1 to 21).
pub fn contrast(a: Color32, b: Color32) -> f64 {
    let (la, lb) = (luminance(a), luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_colours_reach_wcag_aa() {
        let pairs = [
            ("body", TEXT, PANEL),
            ("control ask", CONTROL_TEXT, PANEL),
            ("Refuser", Color32::WHITE, SAFE_FILL),
            ("Autoriser", TEXT, Color32::WHITE),
            (
                "banner control",
                Color32::WHITE,
                super::super::banner::CONTROL_FILL,
            ),
            (
                "banner view",
                Color32::WHITE,
                super::super::banner::VIEW_FILL,
            ),
            (
                "banner hidden",
                Color32::WHITE,
                super::super::banner::PAUSED_FILL,
            ),
            ("Terminer", Color32::WHITE, super::super::banner::END_FILL),
        ];
        for (what, fg, bg) in pairs {
            let c = contrast(fg, bg);
            assert!(c >= 4.5, "{what}: contrast {c:.2} < 4.5");
        }
        // The egui light theme's own text on its panel, for the labels that
        // keep the default colour.
        let v = egui::Visuals::light();
        let c = contrast(v.text_color(), v.panel_fill);
        assert!(c >= 4.5, "egui light text: {c:.2}");
        assert!((contrast(Color32::BLACK, Color32::WHITE) - 21.0).abs() < 1e-9);
    }
}
