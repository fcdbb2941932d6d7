//! The authorization prompt (O6: explicit authorization, restricted access).
//!
//! Order matters: who asks (from the verified certificate) comes first, then
//! what the technician typed (ticket, reason), labelled as such so that a
//! technician cannot pass a typed name off as an identity; then what is
//! asked, then the countdown. The buttons stay inactive for `arm_delay` after
//! the prompt first paints, so a click or an Enter meant for another window
//! cannot accept. The prompt never takes the keyboard focus, and keys that
//! are not deliberate never reach the buttons ([`super::keygate`]): accepting
//! takes a click, or after a pause Tab to the button then Enter. The
//! buttons sit in a bottom panel that the text above never pushes away: long
//! text wraps and scrolls.
//!
//! The same window asks, during a session, whether it goes on
//! ([`PromptRequest::confirm`]): other words, "Continuer" and "Terminer"
//! only, and every guard above unchanged, so that stray typing can no more
//! keep a session going than start one. "Terminer" is the safe answer and
//! looks like "Refuser" (Escape, closing the window and the countdown's end
//! give it too).
//!
//! Time is egui's input time, not the wall clock, so tests drive it.

use super::keygate::{KeyGate, Verdict, block_keyboard};
use super::look;
use super::strings::{PromptStrings, Strings, fill};
use crate::broker::{Answer, PromptRequest};
use crate::policy::Clipboard;
use crate::protocol::Mode;
use egui::{ProgressBar, RichText, ScrollArea};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Past the deadline the broker refuses on its own and records a timeout;
/// the prompt waits this much longer before it refuses itself (a backstop),
/// so the audit record says `timeout`, not `user`.
pub const EXPIRY_GRACE: Duration = Duration::from_secs(1);

/// One prompt on screen.
pub struct PromptState {
    pub req: PromptRequest,
    pub strings: Arc<Strings>,
    /// egui time of the first frame that showed the prompt.
    shown_at: Option<f64>,
    /// Time left until the deadline when the prompt first showed.
    left_at_show: Duration,
    /// Local wall-clock time of the deadline, computed once.
    deadline_clock: Option<String>,
    /// Set once an answer was given, so it is given only once.
    pub answered: Option<Answer>,
    /// The armed buttons' positions were logged (for the real-window test).
    layout_logged: bool,
    /// Tells deliberate keys from stray typing (created on the first frame).
    keys: Option<KeyGate>,
}

impl PromptState {
    pub fn new(req: PromptRequest, strings: Arc<Strings>) -> PromptState {
        PromptState {
            req,
            strings,
            shown_at: None,
            left_at_show: Duration::ZERO,
            deadline_clock: None,
            answered: None,
            layout_logged: false,
            keys: None,
        }
    }

    /// Seconds since the prompt first painted (0 before).
    fn age(&self, now: f64) -> f64 {
        self.shown_at.map_or(0.0, |t| (now - t).max(0.0))
    }

    /// Whether the buttons accept clicks at egui time `now`.
    pub fn armed(&self, now: f64) -> bool {
        self.shown_at.is_some() && self.age(now) >= self.req.arm_delay.as_secs_f64()
    }

    /// Time left before the deadline at egui time `now`.
    pub fn left(&self, now: f64) -> Duration {
        self.left_at_show
            .saturating_sub(Duration::from_secs_f64(self.age(now)))
    }

    fn expired(&self, now: f64) -> bool {
        self.age(now) >= (self.left_at_show + EXPIRY_GRACE).as_secs_f64()
    }
}

/// Draws the prompt and returns the clinician's answer, if any this frame.
/// Closing the window is handled by the caller (it means refused).
pub fn prompt_ui(ui: &mut egui::Ui, st: &mut PromptState) -> Option<Answer> {
    let now = ui.input(|i| i.time);
    if st.shown_at.is_none() {
        st.shown_at = Some(now);
        st.left_at_show = st.req.deadline.saturating_duration_since(Instant::now());
        st.deadline_clock = st.strings.hm(SystemTime::now() + st.left_at_show);
    }
    if st.answered.is_some() {
        return None;
    }
    let s = st.strings.clone();
    let p = &s.prompt;
    let armed = st.armed(now);
    let mut answer = None;

    // Before any widget exists: Escape refuses whatever else happens
    // (refusing is always safe), and keys that are not deliberate are
    // removed so that no button sees them (docs/ui-keyboard.md).
    let (escape, focused, events) = ui.input(|i| {
        (
            i.events.iter().any(|e| {
                matches!(
                    e,
                    egui::Event::Key {
                        key: egui::Key::Escape,
                        pressed: true,
                        ..
                    }
                )
            }),
            i.focused,
            i.events.clone(),
        )
    });
    if escape {
        answer = Some(Answer::Refused);
    }
    let shown_at = st.shown_at.unwrap_or(now);
    let armed_at = shown_at + st.req.arm_delay.as_secs_f64();
    let gate = st.keys.get_or_insert_with(|| KeyGate::new(shown_at));
    if gate.judge(now, focused, armed_at, &events) == Verdict::Block {
        block_keyboard(ui.ctx());
    }

    egui::Panel::bottom("accord_prompt_buttons").show(ui, |ui| {
        ui.add_space(6.0);
        if armed {
            // Same height as the bar it replaces: the buttons must not jump
            // under the pointer at the moment they become active.
            let h = ui.spacing().interact_size.y;
            ui.allocate_space(egui::vec2(ui.available_width(), h));
        } else {
            let delay = st.req.arm_delay.as_secs_f64().max(0.001);
            let progress = (st.age(now) / delay).clamp(0.0, 1.0) as f32;
            // Labelled by its text, which says why the buttons wait.
            ui.add(ProgressBar::new(progress).text(p.arming.as_str()));
        }
        let left = st.left(now);
        let secs = left.as_secs_f64().ceil().to_string();
        // What the countdown's end does: a refusal, or the session's end.
        let (deadline, deadline_no_clock, countdown_label) = if st.req.confirm {
            (
                &p.deadline_confirm,
                &p.deadline_confirm_no_clock,
                &p.countdown_label_confirm,
            )
        } else {
            (&p.deadline, &p.deadline_no_clock, &p.countdown_label)
        };
        let countdown = match &st.deadline_clock {
            Some(clock) => fill(deadline, &[("secs", &secs), ("clock", clock)]),
            None => fill(deadline_no_clock, &[("secs", &secs)]),
        };
        ui.label(RichText::new(countdown).size(look::BODY_PT));
        let total = st.req.timeout.as_secs_f64().max(0.001);
        let bar = ui.add(
            ProgressBar::new((left.as_secs_f64() / total).clamp(0.0, 1.0) as f32)
                .desired_height(4.0),
        );
        bar.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::ProgressIndicator, true, countdown_label)
        });
        ui.add_space(6.0);
        // A press that began while the buttons were inactive (meant for
        // another window, or a double click that opened this one) does not
        // become a click when they arm.
        let pressed_after_arming = ui
            .input(|i| i.pointer.press_start_time())
            .is_none_or(|t| t >= armed_at);
        ui.horizontal_wrapped(|ui| {
            for (a, label) in buttons(&st.req, p) {
                let r = ui.add_enabled(armed, look::answer_button(a, label));
                if armed && !st.layout_logged {
                    log_layout(ui, label, r.rect);
                }
                if r.clicked() && pressed_after_arming && answer.is_none() {
                    answer = Some(a);
                }
            }
            if armed {
                st.layout_logged = true;
            }
        });
        ui.add_space(6.0);
    });

    let typing = st.keys.as_ref().is_some_and(|g| g.typing(now));
    let typing_hint = if st.req.confirm {
        &p.typing_confirm
    } else {
        &p.typing
    };
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ScrollArea::vertical()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if typing {
                    // Why the keyboard does nothing, and what works.
                    ui.label(
                        RichText::new(typing_hint.as_str())
                            .size(look::BODY_PT)
                            .strong(),
                    );
                    ui.add_space(4.0);
                }
                details_ui(ui, st);
            });
    });

    if answer.is_none() && st.expired(now) {
        answer = Some(Answer::Refused);
    }
    if answer.is_none() {
        // Animate the arming progress; then only the countdown needs a frame,
        // once a second.
        let wake = if armed {
            Duration::from_millis(1000 - (st.age(now).fract() * 1000.0) as u64 % 1000)
        } else {
            Duration::from_millis(33)
        };
        ui.ctx().request_repaint_after(wake);
    }
    st.answered = answer;
    answer
}

/// The answers offered, in the order of DESIGN.md, the safe one last.
fn buttons<'a>(req: &PromptRequest, p: &'a PromptStrings) -> Vec<(Answer, &'a str)> {
    if req.confirm {
        // Only whether it goes on: nothing here may grant more.
        return vec![
            (Answer::Continue, p.go_on.as_str()),
            (Answer::Refused, p.end.as_str()),
        ];
    }
    let mut buttons = Vec::with_capacity(3);
    if req.control_offered {
        buttons.push((Answer::Control, p.allow_control.as_str()));
    }
    // A request for control comes from a session already in view
    // only: "Allow view only" would grant nothing and could be
    // mistaken for a yes, so it is hidden rather than made to mean
    // "refuse". (The broker treats any other answer as a refusal.)
    if !req.raise {
        buttons.push((Answer::ViewOnly, p.allow_view.as_str()));
    }
    buttons.push((Answer::Refused, p.refuse.as_str()));
    buttons
}

fn details_ui(ui: &mut egui::Ui, st: &PromptState) {
    let s = &st.strings.prompt;
    let req = &st.req;
    let id = &req.technician;
    // Before anything else: this window's own program may not be Accord's.
    if let Some(h) = &req.replaced {
        let text = fill(&s.replaced, &[("pid", &h.pid.to_string()), ("exe", &h.exe)]);
        ui.add(
            egui::Label::new(
                RichText::new(text)
                    .size(look::BODY_PT)
                    .strong()
                    .color(look::CONTROL_TEXT),
            )
            .wrap(),
        );
        ui.add_space(6.0);
    }
    // Who asks: from the verified certificate.
    let name = id.common_name.as_deref().unwrap_or(&id.subject);
    // The question, large: it is what the window is about.
    let question = if req.confirm {
        fill(&s.question_confirm, &[("name", name)])
    } else if req.raise {
        s.question_raise.clone()
    } else {
        s.question.clone()
    };
    let q = ui.add(
        egui::Label::new(
            RichText::new(question.as_str())
                .size(look::QUESTION_PT)
                .strong(),
        )
        .wrap(),
    );
    q.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Heading, true, &question));
    ui.add_space(8.0);

    let who = match &id.organization {
        Some(org) => fill(&s.technician, &[("name", name), ("org", org.as_str())]),
        None => fill(&s.technician_no_org, &[("name", name)]),
    };
    ui.add(egui::Label::new(RichText::new(who).size(look::BODY_PT).strong()).wrap());
    ui.label(RichText::new(s.identity_note.as_str()).size(look::SMALL_PT));
    ui.add_space(6.0);

    // What exactly: asked, or (the session's question) what goes on. That
    // question offers no control, so `control_offered` says nothing of
    // the session: its mode is `asked`.
    let control = if req.confirm {
        req.asked == Mode::Control
    } else {
        req.asked == Mode::Control && req.control_offered
    };
    let (what, colour) = if control {
        (s.asks_control.as_str(), look::CONTROL_TEXT)
    } else {
        (s.asks_view.as_str(), look::TEXT)
    };
    let asks = if req.confirm {
        &s.current_confirm
    } else {
        &s.asks
    };
    ui.add(
        egui::Label::new(
            RichText::new(fill(asks, &[("what", what)]))
                .size(look::BODY_PT)
                .strong()
                .color(colour),
        )
        .wrap(),
    );
    if req.asked == Mode::Control && !req.control_offered && !req.confirm {
        ui.add(
            egui::Label::new(RichText::new(s.control_restricted.as_str()).size(look::BODY_PT))
                .wrap(),
        );
    }
    ui.add_space(6.0);

    // Why: what the technician typed, said as such.
    ui.group(|ui| {
        ui.set_width(ui.available_width());
        ui.add(
            egui::Label::new(
                RichText::new(fill(&s.reason, &[("reason", &req.reason)])).size(look::BODY_PT),
            )
            .wrap(),
        );
        ui.add(
            egui::Label::new(
                RichText::new(fill(&s.ticket, &[("ticket", &req.ticket)])).size(look::BODY_PT),
            )
            .wrap(),
        );
        ui.label(
            RichText::new(s.typed_note.as_str())
                .size(look::SMALL_PT)
                .italics(),
        );
    });
    ui.add_space(6.0);

    // What will happen, the clipboard included (patient data).
    let consequences = if req.confirm {
        &s.consequences_confirm
    } else if req.raise {
        &s.consequences_raise
    } else {
        &s.consequences
    };
    ui.add(egui::Label::new(RichText::new(consequences.as_str()).size(look::BODY_PT)).wrap());
    let shared_in_control = if req.confirm {
        control
    } else {
        req.control_offered
    };
    let clipboard = match (shared_in_control, st.req.clipboard) {
        // View only never shares it.
        (false, _) | (true, Clipboard::None) => &s.clipboard_none,
        (true, Clipboard::ToWorkstation) => &s.clipboard_to_workstation,
        (true, Clipboard::Both) => &s.clipboard_both,
    };
    ui.add(egui::Label::new(RichText::new(clipboard.as_str()).size(look::BODY_PT)).wrap());
    ui.add_space(6.0);

    // For the technician on the phone, not for the decision.
    egui::CollapsingHeader::new(s.details.as_str())
        .id_salt("accord_prompt_details")
        .show(ui, |ui| {
            let code = id.short_fingerprint();
            ui.label(fill(&s.verification_code, &[("code", &code)]));
        });
}

/// Logs where a button is, in window pixels, at debug level: the real-window
/// test (`tests/ui_window.sh`) clicks there with xdotool like a person would.
pub fn log_layout(ui: &egui::Ui, label: &str, rect: egui::Rect) {
    let ppp = ui.ctx().pixels_per_point();
    let c = rect.center();
    tracing::debug!(
        target: "accord::ui::layout",
        "button {label:?} centre {} {}",
        (c.x * ppp).round() as i64,
        (c.y * ppp).round() as i64
    );
}
