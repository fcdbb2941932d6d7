//! The session banner (O7: the clinician sees that someone is there and
//! follows what they do; O8: one action stops it).
//!
//! From the first relayed byte to the end of the session, an undecorated,
//! always-on-top bar at the top centre of the screen says who is connected,
//! in which mode, for how long. Control is red (it must stand out), view-only
//! is blue. "Terminer" ends the session at once, with no confirmation: a
//! confirmation is a second action and O8 asks for one. The buttons call
//! the [`SessionActions`] directly, in the frame of the click, instead of
//! queueing a message: the kill switch must not wait for anything.
//!
//! "Masquer mon écran" hides her screen from the technician without ending
//! the session, and "Reprendre" shows it again. The banner says hidden only
//! when the core says so ([`SessionInfo::paused`]), never on the click
//! alone: she must not believe her screen hidden while it is not.

use super::strings::{Strings, fill};
use crate::broker::{SessionControl, SessionInfo};
use crate::policy::Clipboard;
use crate::protocol::Mode;
use egui::{Button, Color32, Frame, RichText, Sense};
use std::sync::Arc;

/// What the banner's buttons do: [`SessionControl`] in the agent, a recorder
/// in tests.
pub trait SessionActions: Send + Sync {
    /// The kill switch (O8).
    fn end(&self);
    /// Control → view-only (O6), recorded by the core as `mode_changed`.
    fn set_view_only(&self);
    /// Hides her screen from the technician (`true`) or shows it again
    /// (`false`); the session goes on either way.
    fn pause(&self, on: bool);
}

impl SessionActions for SessionControl {
    fn end(&self) {
        SessionControl::end(self);
    }
    fn set_view_only(&self) {
        SessionControl::set_view_only(self);
    }
    fn pause(&self, on: bool) {
        SessionControl::pause(self, on);
    }
}

/// What the clinician did on the banner this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BannerAction {
    End,
    ViewOnly,
    /// "Masquer mon écran" (`true`) or "Reprendre" (`false`).
    Pause(bool),
}

/// Banner colours: control stands out more than view.
pub const CONTROL_FILL: Color32 = Color32::from_rgb(0xb7, 0x1c, 0x1c);
pub const VIEW_FILL: Color32 = Color32::from_rgb(0x15, 0x65, 0xc0);
/// Her screen is hidden: neither mode's colour, so the change shows at a
/// glance.
pub const PAUSED_FILL: Color32 = Color32::from_rgb(0x37, 0x47, 0x4f);
/// "Terminer": near black, white text, white frame, on either bar.
pub const END_FILL: Color32 = Color32::from_rgb(0x11, 0x11, 0x11);
/// The banner's text and the kill switch's label.
pub const TEXT_PT: f32 = 16.0;
pub const END_PT: f32 = 20.0;
/// The shortcut and clipboard lines, two of them in the bar's height.
pub const SMALL_PT: f32 = 13.0;
/// The bar's height and the widest it gets (narrower on a narrow monitor).
pub const HEIGHT: f32 = 60.0;
pub const MAX_WIDTH: f32 = 1240.0;
/// After "Masquer mon écran" or "Reprendre", the button waits until the
/// core shows the change and this long has passed (seconds): the second
/// click of a double click must not undo the first.
pub const PAUSE_SETTLE_S: f64 = 1.0;
/// A change the core did not show within this long (seconds) may be asked
/// again.
pub const PAUSE_RETRY_S: f64 = 3.0;

/// The running session, as the banner shows it.
pub struct BannerState {
    pub info: SessionInfo,
    pub strings: Arc<Strings>,
    pub actions: Arc<dyn SessionActions>,
    /// The global kill shortcuts, as printed on the banner.
    pub shortcut: String,
    /// "Passer en affichage seul" was pressed: hide it at once, before the
    /// core's state says view-only, so it cannot be pressed twice.
    view_only_sent: bool,
    /// What "Masquer mon écran" or "Reprendre" asked, and when (egui
    /// time): the button waits for the core ([`PAUSE_SETTLE_S`]).
    pause_sent: Option<(bool, f64)>,
    /// "Terminer" was pressed: the banner stays until the core confirms the
    /// end, but the buttons are no longer offered.
    end_sent: bool,
    /// The buttons' positions were logged (for the real-window test).
    layout_logged: bool,
    /// The pause button's position was logged for this state (its label
    /// changes with it).
    pause_logged: Option<bool>,
}

impl BannerState {
    pub fn new(
        info: SessionInfo,
        strings: Arc<Strings>,
        actions: Arc<dyn SessionActions>,
        shortcut: String,
    ) -> BannerState {
        BannerState {
            info,
            strings,
            actions,
            shortcut,
            view_only_sent: false,
            pause_sent: None,
            end_sent: false,
            layout_logged: false,
            pause_logged: None,
        }
    }

    /// The banner's one line of text: the mode first (what is happening),
    /// then who, then since when. Cut at the end if the bar is too narrow,
    /// so the mode is never lost.
    pub fn text(&self) -> String {
        let s = &self.strings;
        let b = &s.banner;
        let id = &self.info.technician;
        let name = id.display_name();
        if self.info.paused {
            // What is happening now is that nothing is seen.
            return fill(&b.text_paused, &[("name", name)]);
        }
        let who = match &id.organization {
            Some(org) => fill(&b.who, &[("name", name), ("org", org.as_str())]),
            None => fill(&b.who_no_org, &[("name", name)]),
        };
        let since = s.hm(self.info.started).unwrap_or_default();
        let template = match self.info.mode {
            Mode::Control => &b.text_control,
            Mode::View => &b.text_view,
        };
        fill(template, &[("who", &who), ("since", &since)])
    }

    pub fn fill(&self) -> Color32 {
        if self.info.paused {
            return PAUSED_FILL;
        }
        match self.info.mode {
            Mode::Control => CONTROL_FILL,
            Mode::View => VIEW_FILL,
        }
    }
}

/// "Masquer mon écran" or, while hidden, "Reprendre": calls
/// [`SessionActions::pause`] on a click and returns what it asked.
fn pause_button(ui: &mut egui::Ui, st: &mut BannerState) -> Option<bool> {
    let now = ui.input(|i| i.time);
    let paused = st.info.paused;
    if let Some((asked, at)) = st.pause_sent {
        let age = now - at;
        if (paused == asked && age >= PAUSE_SETTLE_S) || age >= PAUSE_RETRY_S {
            st.pause_sent = None;
        } else {
            let wait = if paused == asked {
                PAUSE_SETTLE_S - age
            } else {
                PAUSE_RETRY_S - age
            };
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_secs_f64(wait.max(0.01)));
        }
    }
    let b = &st.strings.banner;
    let label = if paused { &b.resume } else { &b.pause };
    let r = ui.add_enabled(
        st.pause_sent.is_none(),
        Button::new(RichText::new(label.as_str()).size(14.0)).min_size(egui::vec2(0.0, 32.0)),
    );
    if st.pause_logged != Some(paused) {
        super::prompt::log_layout(ui, label, r.rect);
        st.pause_logged = Some(paused);
    }
    if !r.clicked() {
        return None;
    }
    let on = !paused;
    st.actions.pause(on);
    st.pause_sent = Some((on, now));
    Some(on)
}

/// Draws the banner; acts on a click at once and reports it.
pub fn banner_ui(ui: &mut egui::Ui, st: &mut BannerState) -> Option<BannerAction> {
    let s = st.strings.clone();
    let b = &s.banner;
    let mut action = None;
    let frame = Frame::new()
        .fill(st.fill())
        .inner_margin(egui::Margin::symmetric(8, 4));
    egui::CentralPanel::default_margins()
        .frame(frame)
        .show(ui, |ui| {
            // Right to left first, so the kill switch always has its room and
            // the text gets what is left (and is cut at its end).
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if !st.end_sent {
                    // The kill switch: the biggest, darkest thing on the bar,
                    // framed in white (told apart by shape and size, not only
                    // by colour).
                    let end = Button::new(
                        RichText::new(b.end.as_str())
                            .size(END_PT)
                            .strong()
                            .color(Color32::WHITE),
                    )
                    .fill(END_FILL)
                    .stroke(egui::Stroke::new(2.0, Color32::WHITE))
                    .min_size(egui::vec2(150.0, 44.0));
                    let end = ui.add(end);
                    if !st.layout_logged {
                        super::prompt::log_layout(ui, &b.end, end.rect);
                    }
                    if end.clicked() {
                        st.actions.end();
                        st.end_sent = true;
                        action = Some(BannerAction::End);
                    }
                    // The shortcut (the keyboard way to the same) and the
                    // clipboard, in small type on two lines: the text
                    // (who is there) keeps the room the buttons leave.
                    ui.with_layout(egui::Layout::top_down(egui::Align::Max), |ui| {
                        let lines = if st.shortcut.is_empty() { 1.0 } else { 2.0 };
                        let h = lines * (SMALL_PT + 4.0);
                        ui.add_space(((ui.available_height() - h) / 2.0).max(0.0));
                        ui.spacing_mut().item_spacing.y = 2.0;
                        // None where it could not be registered (Wayland alone).
                        if !st.shortcut.is_empty() {
                            let hint = fill(&b.shortcut_hint, &[("key", &st.shortcut)]);
                            ui.label(RichText::new(hint).size(SMALL_PT).color(Color32::WHITE));
                        }
                        // Whether the clipboard (patient data) is shared.
                        let clipboard = match (st.info.mode, st.info.clipboard) {
                            (Mode::View, _) | (Mode::Control, Clipboard::None) => &b.clipboard_none,
                            (Mode::Control, Clipboard::ToWorkstation) => {
                                &b.clipboard_to_workstation
                            }
                            (Mode::Control, Clipboard::Both) => &b.clipboard_both,
                        };
                        ui.label(
                            RichText::new(clipboard.as_str())
                                .size(SMALL_PT)
                                .color(Color32::WHITE),
                        );
                    });
                    let to_view =
                        (st.info.mode == Mode::Control && !st.view_only_sent).then(|| {
                            ui.add(
                                Button::new(RichText::new(b.view_only.as_str()).size(14.0))
                                    .min_size(egui::vec2(0.0, 32.0)),
                            )
                        });
                    if let Some(r) = &to_view
                        && !st.layout_logged
                    {
                        super::prompt::log_layout(ui, &b.view_only, r.rect);
                    }
                    if to_view.is_some_and(|r| r.clicked()) {
                        st.actions.set_view_only();
                        st.view_only_sent = true;
                        action = Some(BannerAction::ViewOnly);
                    }
                    if let Some(on) = pause_button(ui, st) {
                        action = Some(BannerAction::Pause(on));
                    }
                    st.layout_logged = true;
                }
                ui.with_layout(egui::Layout::left_to_right(egui::Align::Center), |ui| {
                    // A grip drawn as dots: no glyph the fonts might lack.
                    let (rect, handle) =
                        ui.allocate_exact_size(egui::vec2(14.0, 24.0), Sense::click_and_drag());
                    for i in 0..3 {
                        for j in 0..2 {
                            let c = rect.center()
                                + egui::vec2(j as f32 * 6.0 - 3.0, i as f32 * 6.0 - 6.0);
                            ui.painter().circle_filled(c, 1.6, Color32::WHITE);
                        }
                    }
                    handle.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &b.drag)
                    });
                    if handle.drag_started() {
                        ui.ctx().send_viewport_cmd(egui::ViewportCommand::StartDrag);
                    }
                    ui.add(
                        egui::Label::new(
                            RichText::new(st.text())
                                .size(TEXT_PT)
                                .color(Color32::WHITE)
                                .strong(),
                        )
                        .truncate(),
                    );
                });
            });
        });
    action
}
