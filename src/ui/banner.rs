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

use super::strings::{Strings, clock_duration, fill};
use crate::broker::{SessionControl, SessionInfo};
use crate::protocol::Mode;
use egui::{Button, Color32, Frame, RichText, Sense};
use std::sync::Arc;
use std::time::Duration;

/// What the banner's buttons do: [`SessionControl`] in the agent, a recorder
/// in tests.
pub trait SessionActions: Send + Sync {
    /// The kill switch (O8).
    fn end(&self);
    /// Control → view-only (O6), recorded by the core as `mode_changed`.
    fn set_view_only(&self);
}

impl SessionActions for SessionControl {
    fn end(&self) {
        SessionControl::end(self);
    }
    fn set_view_only(&self) {
        SessionControl::set_view_only(self);
    }
}

/// What the clinician did on the banner this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BannerAction {
    End,
    ViewOnly,
}

/// Banner colours: control stands out more than view.
pub const CONTROL_FILL: Color32 = Color32::from_rgb(0xb7, 0x1c, 0x1c);
pub const VIEW_FILL: Color32 = Color32::from_rgb(0x15, 0x65, 0xc0);

/// The running session, as the banner shows it.
pub struct BannerState {
    pub info: SessionInfo,
    pub strings: Arc<Strings>,
    pub actions: Arc<dyn SessionActions>,
    /// The global kill shortcut, shown in the tooltip.
    pub shortcut: String,
    /// "Passer en affichage seul" was pressed: hide it at once, before the
    /// core's state says view-only, so it cannot be pressed twice.
    view_only_sent: bool,
    /// "Terminer" was pressed: the banner stays until the core confirms the
    /// end, but the buttons are no longer offered.
    end_sent: bool,
    /// The buttons' positions were logged (for the real-window test).
    layout_logged: bool,
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
            end_sent: false,
            layout_logged: false,
        }
    }

    /// The banner's one line of text.
    pub fn text(&self) -> String {
        let s = &self.strings;
        let id = &self.info.technician;
        let name = id.display_name();
        let mode = s.mode(self.info.mode);
        let time = clock_duration(self.info.started_at.elapsed());
        match &id.organization {
            Some(org) => fill(
                &s.banner.text,
                &[
                    ("name", name),
                    ("org", org.as_str()),
                    ("mode", mode),
                    ("time", time.as_str()),
                ],
            ),
            None => fill(
                &s.banner.text_no_org,
                &[("name", name), ("mode", mode), ("time", time.as_str())],
            ),
        }
    }

    pub fn fill(&self) -> Color32 {
        match self.info.mode {
            Mode::Control => CONTROL_FILL,
            Mode::View => VIEW_FILL,
        }
    }
}

/// Draws the banner; acts on a click at once and reports it.
pub fn banner_ui(ui: &mut egui::Ui, st: &mut BannerState) -> Option<BannerAction> {
    let s = st.strings.clone();
    let b = &s.banner;
    let mut action = None;
    let frame = Frame::new()
        .fill(st.fill())
        .inner_margin(egui::Margin::symmetric(8, 6));
    egui::CentralPanel::default_margins()
        .frame(frame)
        .show(ui, |ui| {
            ui.horizontal_centered(|ui| {
                // A grip drawn as dots: no glyph the fonts might lack.
                let (rect, handle) =
                    ui.allocate_exact_size(egui::vec2(14.0, 24.0), Sense::click_and_drag());
                for i in 0..3 {
                    for j in 0..2 {
                        let c =
                            rect.center() + egui::vec2(j as f32 * 6.0 - 3.0, i as f32 * 6.0 - 6.0);
                        ui.painter().circle_filled(c, 1.6, Color32::WHITE);
                    }
                }
                handle.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &b.drag));
                if handle.drag_started() {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::StartDrag);
                }
                let hint = fill(&b.shortcut_hint, &[("key", &st.shortcut)]);
                ui.add(
                    egui::Label::new(RichText::new(st.text()).color(Color32::WHITE).strong())
                        .truncate(),
                )
                .on_hover_text(hint);
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if st.end_sent {
                        return;
                    }
                    // White button on a coloured bar: dark text, the most
                    // visible thing on the bar.
                    let end =
                        Button::new(RichText::new(b.end.as_str()).strong().color(Color32::BLACK))
                            .fill(Color32::WHITE)
                            .min_size(egui::vec2(0.0, 28.0));
                    let end = ui.add(end);
                    if !st.layout_logged {
                        super::prompt::log_layout(ui, &b.end, end.rect);
                    }
                    if end.clicked() {
                        st.actions.end();
                        st.end_sent = true;
                        action = Some(BannerAction::End);
                    }
                    let to_view =
                        (st.info.mode == Mode::Control && !st.view_only_sent).then(|| {
                            ui.add(
                                Button::new(b.view_only.as_str()).min_size(egui::vec2(0.0, 28.0)),
                            )
                        });
                    if let Some(r) = &to_view
                        && !st.layout_logged
                    {
                        super::prompt::log_layout(ui, &b.view_only, r.rect);
                    }
                    st.layout_logged = true;
                    if to_view.is_some_and(|r| r.clicked()) {
                        st.actions.set_view_only();
                        st.view_only_sent = true;
                        action = Some(BannerAction::ViewOnly);
                    }
                });
            });
        });
    // The elapsed time changes once a second; nothing else needs a frame.
    let ms = st.info.started_at.elapsed().subsec_millis();
    ui.ctx()
        .request_repaint_after(Duration::from_millis(u64::from(1000 - ms)));
    action
}
