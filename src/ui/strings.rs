//! Every text the clinician reads, from one table per language
//! (`assets/i18n/fr.toml`, `assets/i18n/en.toml`), embedded in the binary.
//!
//! The tables are parsed into typed structs with `deny_unknown_fields` and no
//! defaults, so a key missing from one language is a test failure, not an
//! empty button in production. French is the default on French locales
//! because a clinician must understand what they consent to (O6).

use crate::broker::EndReason;
use crate::policy::Language;
use crate::protocol::Mode;
use serde::Deserialize;

const FR: &str = include_str!("../../assets/i18n/fr.toml");
const EN: &str = include_str!("../../assets/i18n/en.toml");

/// The language actually used (after `auto` is resolved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    #[default]
    Fr,
    En,
}

impl Lang {
    /// `[ui].language` wins; `auto` follows the locale (`LC_ALL`, then
    /// `LC_MESSAGES`, then `LANG`, as POSIX orders them): French on `fr*`,
    /// English otherwise.
    pub fn resolve(policy: Language) -> Lang {
        match policy {
            Language::Fr => Lang::Fr,
            Language::En => Lang::En,
            Language::Auto => Lang::from_locale(|k| std::env::var(k).ok()),
        }
    }

    /// The locale rule with the environment passed in (testable).
    pub fn from_locale(get: impl Fn(&str) -> Option<String>) -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .iter()
            .filter_map(|k| get(k))
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if locale.to_ascii_lowercase().starts_with("fr") {
            Lang::Fr
        } else {
            Lang::En
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeStrings {
    /// Hours and minutes of a local time (`{h}`, `{m}`): "14 h 32", "14:32".
    pub hm: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptStrings {
    pub title: String,
    pub question: String,
    /// The question when the technician of the running view-only session
    /// asks for control ([`crate::broker::PromptRequest::raise`]).
    pub question_raise: String,
    /// What control would change, instead of `consequences`, for that question.
    pub consequences_raise: String,
    /// The question of the consent period's end about the running session
    /// ([`crate::broker::PromptRequest::confirm`], `{name}`).
    pub question_confirm: String,
    /// What the technician can do now (`{what}`), for that question.
    pub current_confirm: String,
    /// What no answer does to it: the session ends, it is not refused.
    pub consequences_confirm: String,
    /// Said first when Accord's window program started again after an
    /// earlier control session ([`crate::broker::PromptRequest::replaced`]).
    pub replaced: String,
    pub technician: String,
    pub technician_no_org: String,
    pub identity_note: String,
    pub asks: String,
    pub asks_control: String,
    pub asks_view: String,
    pub control_restricted: String,
    pub reason: String,
    pub ticket: String,
    pub typed_note: String,
    pub consequences: String,
    pub clipboard_none: String,
    pub clipboard_to_workstation: String,
    pub clipboard_both: String,
    pub deadline: String,
    pub deadline_no_clock: String,
    pub countdown_label: String,
    /// The countdown of that question: at its end the session ends.
    pub deadline_confirm: String,
    pub deadline_confirm_no_clock: String,
    pub countdown_label_confirm: String,
    pub details: String,
    pub verification_code: String,
    pub arming: String,
    pub arming_label: String,
    pub typing: String,
    /// `typing` for that question, where Escape ends the session.
    pub typing_confirm: String,
    pub allow_control: String,
    pub allow_view: String,
    pub refuse: String,
    /// That question's two answers.
    pub go_on: String,
    pub end: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BannerStrings {
    pub title: String,
    pub clipboard_none: String,
    pub clipboard_to_workstation: String,
    pub clipboard_both: String,
    pub text_control: String,
    pub text_view: String,
    /// While her screen is hidden (`{name}`, short: the bar is narrow):
    /// said instead of the mode.
    pub text_paused: String,
    pub who: String,
    pub who_no_org: String,
    pub mode_control: String,
    pub mode_view: String,
    /// The tray's word for the session while her screen is hidden.
    pub mode_paused: String,
    pub view_only: String,
    /// "Masquer mon écran" and its way back (banner and tray alike).
    pub pause: String,
    pub resume: String,
    pub end: String,
    pub drag: String,
    pub end_key: String,
    pub or: String,
    pub shortcut_hint: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrayStrings {
    pub tooltip_idle: String,
    pub tooltip_asking: String,
    pub tooltip_session: String,
    pub tooltip_blocked: String,
    pub tooltip_not_listening: String,
    pub end_session: String,
    pub history: String,
    pub quit: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryStrings {
    pub title: String,
    pub heading: String,
    pub empty: String,
    /// The log could not be read (or the service did not answer).
    pub unavailable: String,
    pub close: String,
    /// One decision: `{when}`, `{who}`, `{what}`.
    pub line: String,
    /// `{when}` for today (`{clock}`) and other days (`{day}`, `{month}`,
    /// `{year}`, `{clock}`).
    pub today: String,
    pub other_day: String,
    /// What she allowed.
    pub control: String,
    pub view: String,
    pub raise: String,
    /// What became of it (`{what}` is one of the three above; `{why}` a
    /// sentence of `[why]`; `{minutes}`).
    pub running: String,
    pub lasted: String,
    pub brief: String,
    pub starting: String,
    pub failed: String,
    pub interrupted: String,
    pub refused: String,
    pub timed_out: String,
    /// The end's `why` for a code this version does not know.
    pub ended_other: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyStrings {
    pub started_summary: String,
    pub started_body: String,
    pub ended_summary: String,
    pub ended_body: String,
    pub timed_out_summary: String,
    pub timed_out_body: String,
    /// A request refused because her session is Wayland (`{name}`).
    pub unsupported_summary: String,
    pub unsupported_body: String,
    /// Accord's window program started again after a control (`{pid}`,
    /// `{exe}`).
    pub replaced_summary: String,
    pub replaced_body: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhyStrings {
    pub user: String,
    pub technician: String,
    pub idle: String,
    pub max_duration: String,
    pub screen_locked: String,
    pub user_switched: String,
    pub upstream: String,
    pub agent_stopped: String,
    pub ui_lost: String,
    pub protocol: String,
    pub not_confirmed: String,
}

/// One language's table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Strings {
    /// The table's language (not in the table: set by [`Strings::load`]).
    #[serde(skip)]
    pub lang: Lang,
    pub time: TimeStrings,
    pub prompt: PromptStrings,
    pub banner: BannerStrings,
    pub tray: TrayStrings,
    pub history: HistoryStrings,
    pub notify: NotifyStrings,
    pub why: WhyStrings,
}

/// A table that does not parse (only possible if `assets/i18n` is broken,
/// which the tests catch before a release).
#[derive(Debug, thiserror::Error)]
#[error("string table {lang:?}: {msg}")]
pub struct StringsError {
    pub lang: Lang,
    pub msg: String,
}

impl Strings {
    /// Parses the embedded table of `lang`.
    pub fn load(lang: Lang) -> Result<Strings, StringsError> {
        let src = match lang {
            Lang::Fr => FR,
            Lang::En => EN,
        };
        let mut s: Strings = toml::from_str(src).map_err(|e| StringsError {
            lang,
            msg: e.to_string(),
        })?;
        s.lang = lang;
        Ok(s)
    }

    /// The table for a policy's `[ui].language`; English if French were
    /// broken, and the reverse, so a bad table never leaves the UI mute.
    pub fn for_policy(language: Language) -> Result<Strings, StringsError> {
        let lang = Lang::resolve(language);
        Strings::load(lang).or_else(|e| {
            tracing::error!("{e}");
            Strings::load(match lang {
                Lang::Fr => Lang::En,
                Lang::En => Lang::Fr,
            })
        })
    }

    /// A moment as the clinician reads a time: "14 h 32" / "14:32".
    pub fn hm(&self, t: std::time::SystemTime) -> Option<String> {
        let (h, m, _) = crate::platform::local_time(t)?;
        Some(fill(
            &self.time.hm,
            &[("h", &h.to_string()), ("m", &format!("{m:02}"))],
        ))
    }

    pub fn mode(&self, mode: Mode) -> &str {
        match mode {
            Mode::Control => &self.banner.mode_control,
            Mode::View => &self.banner.mode_view,
        }
    }

    pub fn why(&self, why: EndReason) -> &str {
        let w = &self.why;
        match why {
            EndReason::User => &w.user,
            EndReason::Technician => &w.technician,
            EndReason::Idle => &w.idle,
            EndReason::MaxDuration => &w.max_duration,
            EndReason::ScreenLocked => &w.screen_locked,
            EndReason::UserSwitched => &w.user_switched,
            EndReason::Upstream => &w.upstream,
            EndReason::AgentStopped => &w.agent_stopped,
            EndReason::UiLost => &w.ui_lost,
            EndReason::Protocol => &w.protocol,
            EndReason::NotConfirmed => &w.not_confirmed,
        }
    }
}

/// Replaces `{key}` placeholders. Values are inserted verbatim and never
/// re-scanned, so a technician typing `{name}` in a reason cannot change
/// what another placeholder shows.
pub fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('}') {
            Some(end) => {
                let key = &after[..end];
                match values.iter().find(|(k, _)| *k == key) {
                    Some((_, v)) => out.push_str(v),
                    None => {
                        out.push('{');
                        out.push_str(key);
                        out.push('}');
                    }
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// `mm:ss`, or `h:mm:ss` past an hour (banner elapsed time).
pub fn clock_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_tables_parse_and_fix_the_design_labels() {
        let fr = Strings::load(Lang::Fr).unwrap();
        let en = Strings::load(Lang::En).unwrap();
        assert_eq!(fr.prompt.title, "Accord — demande d'assistance");
        assert_eq!(en.prompt.title, "Accord — assistance request");
        assert_eq!(fr.prompt.allow_control, "Autoriser le contrôle");
        assert_eq!(fr.prompt.allow_view, "Autoriser l'affichage seul");
        assert_eq!(fr.prompt.refuse, "Refuser");
        assert_eq!(en.prompt.allow_control, "Allow control");
        assert_eq!(en.prompt.allow_view, "Allow view only");
        assert_eq!(en.prompt.refuse, "Refuse");
        assert!(
            fr.prompt
                .question_raise
                .ends_with("demande à prendre le contrôle")
        );
        assert!(en.prompt.question_raise.ends_with("asks to take control"));
        assert_eq!(fr.banner.title, "Accord — session en cours");
        assert_eq!(en.banner.title, "Accord — session in progress");
        assert_eq!(fr.banner.view_only, "Passer en affichage seul");
        assert_eq!(fr.banner.end, "Terminer");
        assert_eq!(en.banner.view_only, "Switch to view only");
        assert_eq!(en.banner.end, "End session");
        // Hiding her screen, on the banner and in the tray.
        assert_eq!(fr.banner.pause, "Masquer mon écran");
        assert_eq!(fr.banner.resume, "Reprendre");
        assert_eq!(en.banner.pause, "Hide my screen");
        assert_eq!(en.banner.resume, "Resume");
        // The consent period's question: its two answers, and the session
        // it is about named as everywhere else, "assistance à distance".
        assert_eq!(fr.prompt.go_on, "Continuer");
        assert_eq!(fr.prompt.end, "Terminer");
        assert_eq!(en.prompt.go_on, "Continue");
        assert_eq!(en.prompt.end, "End");
        assert_eq!(
            fill(&fr.prompt.question_confirm, &[("name", "Jeanne Martin")]),
            "L'assistance à distance avec Jeanne Martin continue\u{a0}?"
        );
        assert_eq!(
            fill(&en.prompt.question_confirm, &[("name", "Jeanne Martin")]),
            "Continue the remote assistance with Jeanne Martin?"
        );
    }

    /// Every string of a table, with its key, for the checks below.
    fn all_strings(lang: Lang) -> Vec<(String, String)> {
        let src = if lang == Lang::Fr { FR } else { EN };
        let table: toml::Table = toml::from_str(src).unwrap();
        let mut out = Vec::new();
        for (section, v) in table {
            for (k, v) in v.as_table().unwrap() {
                out.push((format!("{section}.{k}"), v.as_str().unwrap().to_string()));
            }
        }
        out
    }

    #[test]
    fn french_has_a_non_breaking_space_before_high_punctuation() {
        for (k, v) in all_strings(Lang::Fr) {
            let chars: Vec<char> = v.chars().collect();
            for (i, c) in chars.iter().enumerate() {
                if matches!(c, ':' | '?' | '!' | '»') {
                    let before = i.checked_sub(1).map(|j| chars[j]);
                    assert_eq!(before, Some('\u{a0}'), "{k}: {c:?} in {v:?}");
                }
            }
        }
    }

    #[test]
    fn one_term_and_no_technical_words_for_the_clinician() {
        for (k, v) in all_strings(Lang::Fr) {
            let l = v.to_lowercase();
            for word in [
                "téléassistance",
                "certificat",
                "empreinte",
                "politique",
                "serveur",
                "flux",
                "interface",
            ] {
                assert!(!l.contains(word), "{k}: {word:?} in {v:?}");
            }
            // "session" only where DESIGN.md fixes it (window title).
            if k != "banner.title" {
                assert!(!l.contains("session"), "{k}: {v:?}");
            }
        }
        for (k, v) in all_strings(Lang::En) {
            let l = v.to_lowercase();
            for word in ["certificate", "fingerprint", "policy", "server", "stream"] {
                assert!(!l.contains(word), "{k}: {word:?} in {v:?}");
            }
        }
    }

    #[test]
    fn every_end_reason_is_a_sentence_in_both_languages() {
        for lang in [Lang::Fr, Lang::En] {
            let s = Strings::load(lang).unwrap();
            for why in EndReason::ALL {
                let t = s.why(why);
                assert!(t.chars().next().is_some_and(char::is_uppercase), "{t}");
                assert!(t.ends_with('.'), "{t}");
                assert!(t.split_whitespace().count() >= 4, "{t}");
            }
        }
        let fr = Strings::load(Lang::Fr).unwrap();
        let en = Strings::load(Lang::En).unwrap();
        assert_eq!(
            fr.why(EndReason::Technician),
            "Le technicien a terminé l'assistance à distance."
        );
        assert_eq!(
            en.why(EndReason::Technician),
            "The technician ended the remote assistance."
        );
    }

    #[test]
    fn clock_times_read_as_people_write_them() {
        let fr = Strings::load(Lang::Fr).unwrap();
        let en = Strings::load(Lang::En).unwrap();
        assert_eq!(
            fill(&fr.time.hm, &[("h", "14"), ("m", "02")]),
            "14\u{a0}h\u{a0}02"
        );
        assert_eq!(fill(&en.time.hm, &[("h", "14"), ("m", "02")]), "14:02");
        let now = std::time::SystemTime::now();
        let t = fr.hm(now).unwrap();
        assert!(t.contains("\u{a0}h\u{a0}"), "{t}");
    }

    #[test]
    fn locale_picks_french_on_fr_only() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Lang::from_locale(env(&[("LANG", "fr_FR.UTF-8")])), Lang::Fr);
        assert_eq!(Lang::from_locale(env(&[("LANG", "en_US.UTF-8")])), Lang::En);
        assert_eq!(Lang::from_locale(env(&[])), Lang::En);
        assert_eq!(
            Lang::from_locale(env(&[("LC_ALL", "en_GB"), ("LANG", "fr_FR")])),
            Lang::En
        );
        assert_eq!(
            Lang::from_locale(env(&[
                ("LC_ALL", ""),
                ("LC_MESSAGES", "fr_CA"),
                ("LANG", "C")
            ])),
            Lang::Fr
        );
        assert_eq!(Lang::resolve(Language::En), Lang::En);
        assert_eq!(Lang::resolve(Language::Fr), Lang::Fr);
    }

    #[test]
    fn fill_does_not_rescan_values() {
        assert_eq!(
            fill("{name} ({org})", &[("name", "{org}"), ("org", "CHU")]),
            "{org} (CHU)"
        );
        assert_eq!(fill("a {x} b {", &[]), "a {x} b {");
        assert_eq!(clock_duration(std::time::Duration::from_secs(192)), "03:12");
        assert_eq!(
            clock_duration(std::time::Duration::from_secs(3723)),
            "1:02:03"
        );
    }
}
