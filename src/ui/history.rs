//! The "Historique" window: the clinician's own recent decisions, read from
//! the audit log (T11: she can check what she allowed, refused or let run
//! out, and what became of it), most recent first. The log stays the
//! record; this is a reading aid, written for her, not for an auditor.
//!
//! The lines are made here, in the UI process, from
//! [`crate::audit::history::Entry`] values (its own log in `accord agent`,
//! the service's answer in `accord ui`); the window process only draws them.

use super::hub::Hub;
use super::look;
use super::strings::{Strings, fill};
use crate::audit::history::{Entry, Outcome};
use crate::platform::LocalTime;
use crate::protocol::Mode;
use crate::session::EndReason;
use egui::{RichText, ScrollArea};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most entries asked for and shown.
pub const MAX_ENTRIES: usize = crate::seat::proto::MAX_HISTORY;

/// The lines for `entries` (most recent first), as the clinician reads
/// them at `now`: time only for today, the date before it otherwise.
pub fn lines(entries: &[Entry], s: &Strings, now: SystemTime) -> Vec<String> {
    let today = crate::platform::local(now).map(|l| (l.year, l.month, l.day));
    entries.iter().map(|e| line(e, s, today)).collect()
}

fn line(e: &Entry, s: &Strings, today: Option<(i64, u32, u32)>) -> String {
    let h = &s.history;
    let who = match &e.organization {
        Some(o) => format!("{} ({o})", e.technician),
        None => e.technician.clone(),
    };
    fill(
        &h.line,
        &[
            ("when", &when(&e.at, s, today)),
            ("who", &who),
            ("what", &what(e, s)),
        ],
    )
}

/// "14 h 02" today, "le 1/12 à 14 h 02" another day; the log's own text
/// if it cannot be read as a time (never nothing).
fn when(at: &str, s: &Strings, today: Option<(i64, u32, u32)>) -> String {
    let Some(t) = system_time(at) else {
        return at.to_string();
    };
    let (Some(l), Some(clock)) = (crate::platform::local(t), s.hm(t)) else {
        return at.to_string();
    };
    let LocalTime {
        year, month, day, ..
    } = l;
    if today == Some((year, month, day)) {
        fill(&s.history.today, &[("clock", &clock)])
    } else {
        fill(
            &s.history.other_day,
            &[
                ("clock", &clock),
                ("day", &day.to_string()),
                ("month", &format!("{month:02}")),
                ("year", &year.to_string()),
            ],
        )
    }
}

fn system_time(at: &str) -> Option<SystemTime> {
    let t = crate::audit::show::parse_ts(at)?;
    let secs = u64::try_from(t.unix_timestamp()).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

fn what(e: &Entry, s: &Strings) -> String {
    let h = &s.history;
    let allowed = |mode: Mode| -> &str {
        match mode {
            _ if e.raise => &h.raise,
            Mode::Control => &h.control,
            Mode::View => &h.view,
        }
    };
    match &e.outcome {
        Outcome::Refused => h.refused.clone(),
        Outcome::TimedOut => h.timed_out.clone(),
        Outcome::Starting { mode } => fill(&h.starting, &[("what", allowed(*mode))]),
        Outcome::Failed { mode, .. } => fill(&h.failed, &[("what", allowed(*mode))]),
        Outcome::Interrupted { mode } => fill(&h.interrupted, &[("what", allowed(*mode))]),
        Outcome::Accepted { mode, ended: None } => fill(&h.running, &[("what", allowed(*mode))]),
        Outcome::Accepted {
            mode,
            ended: Some(end),
        } => {
            let why = EndReason::parse(&end.why).map_or(h.ended_other.as_str(), |r| s.why(r));
            let minutes = end.seconds / 60;
            if minutes == 0 {
                fill(&h.brief, &[("what", allowed(*mode)), ("why", why)])
            } else {
                fill(
                    &h.lasted,
                    &[
                        ("what", allowed(*mode)),
                        ("minutes", &minutes.to_string()),
                        ("why", why),
                    ],
                )
            }
        }
    }
}

/// Draws the history; `true` when the clinician closes it.
pub fn history_ui(ui: &mut egui::Ui, hub: &Hub, strings: &Strings) -> bool {
    let h = &strings.history;
    let lines = hub.lock().history.clone();
    let mut close = false;
    egui::Panel::bottom("accord_history_close").show(ui, |ui| {
        ui.add_space(6.0);
        let close_button = egui::Button::new(RichText::new(h.close.as_str()).size(look::BUTTON_PT))
            .min_size(egui::vec2(120.0, 36.0));
        if ui.add(close_button).clicked() {
            close = true;
        }
        ui.add_space(6.0);
    });
    egui::CentralPanel::default_margins().show(ui, |ui| {
        ui.label(
            RichText::new(h.heading.as_str())
                .size(look::QUESTION_PT)
                .color(look::TEXT),
        );
        ui.separator();
        ScrollArea::vertical().show(ui, |ui| {
            if lines.is_empty() {
                ui.label(body(&h.empty));
            }
            for l in &lines {
                ui.label(body(l));
                ui.add_space(6.0);
            }
        });
    });
    close
}

/// The history is read like the prompt: same size, same contrast.
fn body(text: &str) -> RichText {
    RichText::new(text).size(look::BODY_PT).color(look::TEXT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::history::Ended;
    use crate::ui::strings::Lang;

    const NB: char = '\u{a0}';

    fn entry(at: &str, outcome: Outcome) -> Entry {
        Entry {
            at: at.into(),
            session: uuid::Uuid::nil(),
            technician: "Jeanne Martin".into(),
            organization: Some("DSI".into()),
            ticket: Some("INC-1".into()),
            reason: None,
            raise: false,
            outcome,
        }
    }

    fn at(t: SystemTime) -> String {
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let dt = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
        dt.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    }

    #[test]
    fn each_outcome_reads_as_a_sentence_for_her() {
        let fr = Strings::load(Lang::Fr).unwrap();
        let now = SystemTime::now();
        let t = at(now);
        let clock = fr.hm(now).unwrap();
        let ended = |why: &str, seconds| Outcome::Accepted {
            mode: Mode::Control,
            ended: Some(Ended {
                why: why.into(),
                at: t.clone(),
                seconds,
            }),
        };
        let cases = [
            (Outcome::Refused, "vous avez refusé".to_string()),
            (Outcome::TimedOut, "sans réponse, refusée".into()),
            (
                Outcome::Accepted {
                    mode: Mode::View,
                    ended: None,
                },
                "affichage seul accepté, en cours".into(),
            ),
            (
                ended("user", 725),
                format!(
                    "prise en main acceptée pendant 12{NB}min. Vous avez terminé l'assistance à distance."
                ),
            ),
            (
                ended("technician", 20),
                "prise en main acceptée pendant moins d'une minute. Le technicien a terminé l'assistance à distance.".into(),
            ),
            (
                ended("a_reason_from_a_later_version", 20),
                "prise en main acceptée pendant moins d'une minute. L'assistance à distance s'est arrêtée.".into(),
            ),
            (
                Outcome::Failed {
                    mode: Mode::Control,
                    why: "upstream".into(),
                },
                "prise en main acceptée, mais l'assistance n'a pas pu commencer.".into(),
            ),
            (
                Outcome::Starting { mode: Mode::View },
                "affichage seul accepté, en cours de démarrage".into(),
            ),
            (
                Outcome::Interrupted { mode: Mode::View },
                format!(
                    "affichage seul accepté{NB}; Accord s'est arrêté pendant l'assistance."
                ),
            ),
        ];
        for (outcome, what) in cases {
            let got = lines(&[entry(&t, outcome)], &fr, now);
            assert_eq!(
                got,
                vec![format!("{clock} — Jeanne Martin (DSI){NB}: {what}")]
            );
        }
        let mut raise = entry(
            &t,
            Outcome::Accepted {
                mode: Mode::Control,
                ended: None,
            },
        );
        raise.raise = true;
        raise.organization = None;
        assert_eq!(
            lines(&[raise], &fr, now),
            vec![format!(
                "{clock} — Jeanne Martin{NB}: prise en main acceptée pendant l'affichage, en cours"
            )]
        );
    }

    #[test]
    fn other_days_carry_their_date_and_bad_times_stay_visible() {
        let fr = Strings::load(Lang::Fr).unwrap();
        let en = Strings::load(Lang::En).unwrap();
        let now = SystemTime::now();
        let before = now - Duration::from_secs(3 * 86_400);
        let l = crate::platform::local(before).unwrap();
        let e = entry(&at(before), Outcome::Refused);
        let clock = fr.hm(before).unwrap();
        assert_eq!(
            lines(std::slice::from_ref(&e), &fr, now),
            vec![format!(
                "le {}/{:02} à {clock} — Jeanne Martin (DSI){NB}: vous avez refusé",
                l.day, l.month
            )]
        );
        assert_eq!(
            lines(&[e], &en, now),
            vec![format!(
                "{}-{:02}-{} {} — Jeanne Martin (DSI): you refused",
                l.year,
                l.month,
                l.day,
                en.hm(before).unwrap()
            )]
        );
        let odd = entry("yesterday-ish", Outcome::TimedOut);
        assert_eq!(
            lines(&[odd], &fr, now),
            vec![format!(
                "yesterday-ish — Jeanne Martin (DSI){NB}: sans réponse, refusée"
            )]
        );
    }
}
