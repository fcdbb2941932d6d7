//! The "Historique" window: recent decisions and session ends since the
//! agent started (T11: the clinician can check what was allowed). The audit
//! log remains the record; this is a reading aid.

use super::hub::Hub;
use super::strings::Strings;
use egui::ScrollArea;

/// Draws the history; `true` when the clinician closes it.
pub fn history_ui(ui: &mut egui::Ui, hub: &Hub, strings: &Strings) -> bool {
    let h = &strings.history;
    let lines: Vec<String> = hub.lock().history.iter().rev().cloned().collect();
    let mut close = false;
    egui::Panel::bottom("accord_history_close").show(ui, |ui| {
        ui.add_space(6.0);
        if ui.button(h.close.as_str()).clicked() {
            close = true;
        }
        ui.add_space(6.0);
    });
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.heading(h.heading.as_str());
        ui.separator();
        ScrollArea::vertical().show(ui, |ui| {
            if lines.is_empty() {
                ui.label(h.empty.as_str());
            }
            for l in &lines {
                ui.label(l.as_str());
            }
        });
    });
    close
}
