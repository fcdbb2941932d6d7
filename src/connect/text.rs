//! What `accord connect` tells the technician, in French or English: every
//! outcome as what happened and what to do next, and the progress line.
//!
//! The technician is on the phone with a clinician or with IT; each sentence
//! says whom to call or when to retry. The language follows the locale
//! (`LC_ALL`, `LC_MESSAGES`, `LANG`: French for `fr*`, English otherwise).

use super::{Ending, OursRefused, Progress, TlsFailure};
use crate::protocol::{Mode, RefusalCode};
use crate::session::EndReason;
use std::io::Write;
use std::time::{Duration, SystemTime};

/// Language of the technician's messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    /// From the locale, the first of `LC_ALL`, `LC_MESSAGES`, `LANG` that is set.
    pub fn from_env() -> Lang {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    fn from_vars(get: impl Fn(&str) -> Option<String>) -> Lang {
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .into_iter()
            .filter_map(get)
            .find(|v| !v.is_empty())
            .unwrap_or_default();
        if locale.starts_with("fr") {
            Lang::Fr
        } else {
            Lang::En
        }
    }
}

/// A refusal: what happened, then what to do.
pub fn refusal(lang: Lang, code: RefusalCode) -> &'static str {
    use RefusalCode as R;
    match (lang, code) {
        (Lang::En, R::User) => {
            "the user refused. Call them to agree on what you need, then ask again."
        }
        (Lang::Fr, R::User) => {
            "l'utilisateur a refusé. Appelez-le pour convenir de votre intervention, puis refaites la demande."
        }
        (Lang::En, R::Timeout) => {
            "no answer before the deadline: the user may be away from the screen. Call them, then ask again."
        }
        (Lang::Fr, R::Timeout) => {
            "pas de réponse dans le délai\u{a0}: l'utilisateur n'est peut-être pas devant l'écran. Appelez-le, puis refaites la demande."
        }
        (Lang::En, R::Busy) => {
            "the workstation is already asking another request or in a session. Try again in a few minutes."
        }
        (Lang::Fr, R::Busy) => {
            "le poste traite déjà une autre demande ou une autre session. Réessayez dans quelques minutes."
        }
        (Lang::En, R::RateLimited) => {
            "too many requests from you to this workstation in the last hour. Wait before asking again (at most an hour), or call the user."
        }
        (Lang::Fr, R::RateLimited) => {
            "trop de demandes de votre part vers ce poste dans l'heure. Attendez avant de redemander (une heure au plus), ou appelez l'utilisateur."
        }
        (Lang::En, R::Policy) => {
            "the workstation's policy refuses it: your certificate may not be on its list, control may not be allowed, or it cannot record consent (audit log). Ask the hospital's IT."
        }
        (Lang::Fr, R::Policy) => {
            "la politique du poste refuse la demande\u{a0}: votre certificat n'est peut-être pas sur sa liste, ou le poste ne peut pas enregistrer le consentement (journal d'audit). Contactez le service informatique de l'établissement."
        }
        (Lang::En, R::BadRequest) => {
            "the workstation did not understand the request (or you sent data before its answer). Check --ticket and --reason, then retry."
        }
        (Lang::Fr, R::BadRequest) => {
            "le poste n'a pas compris la demande (ou des données ont été envoyées avant sa réponse). Vérifiez --ticket et --reason, puis réessayez."
        }
        (Lang::En, R::UpstreamUnreachable) => {
            "the user accepted, but the workstation's screen-sharing server could not be reached. Ask IT to check the VNC server on that workstation."
        }
        (Lang::Fr, R::UpstreamUnreachable) => {
            "l'utilisateur a accepté, mais le serveur de partage d'écran du poste est injoignable. Demandez au service informatique de vérifier le serveur VNC de ce poste."
        }
        (Lang::En, R::AgentShuttingDown) => {
            "Accord is stopping on the workstation. Try again in a minute."
        }
        (Lang::Fr, R::AgentShuttingDown) => {
            "Accord s'arrête sur le poste. Réessayez dans une minute."
        }
        (Lang::En, R::NoUser) => {
            "nobody at that workstation can answer (no one logged in, screen locked, or several sessions). Call the user."
        }
        (Lang::Fr, R::NoUser) => {
            "personne ne peut répondre sur ce poste (aucune session ouverte, écran verrouillé ou plusieurs sessions). Appelez l'utilisateur."
        }
        (Lang::En, R::UnsupportedSession) => {
            "the workstation's session is Wayland, which Accord cannot share yet. Ask the user to log out and log in again with an X11 session (\"GNOME on Xorg\", \"Plasma (X11)\" on the login screen)."
        }
        (Lang::Fr, R::UnsupportedSession) => {
            "la session du poste est une session Wayland, qu'Accord ne sait pas encore partager. Demandez à l'utilisateur de se reconnecter avec une session X11 (« GNOME sur Xorg », « Plasma (X11) » sur l'écran de connexion)."
        }
    }
}

/// A refusal that says when to retry (`rate_limited` with `retry_after_s`):
/// what happened, then the local time after which a request may succeed.
pub fn refusal_until(lang: Lang, code: RefusalCode, retry_at: SystemTime) -> String {
    let at = clock(lang, retry_at);
    match (lang, code, at) {
        (Lang::En, RefusalCode::RateLimited, Some(at)) => format!(
            "too many requests from you to this workstation in the last hour. Retry after {at}, or call the user."
        ),
        (Lang::Fr, RefusalCode::RateLimited, Some(at)) => format!(
            "trop de demandes de votre part vers ce poste dans l'heure. Réessayez après {at}, ou appelez l'utilisateur."
        ),
        (Lang::En, _, Some(at)) => format!("{} Retry after {at}.", refusal(lang, code)),
        (Lang::Fr, _, Some(at)) => format!("{} Réessayez après {at}.", refusal(lang, code)),
        (_, _, None) => refusal(lang, code).to_string(),
    }
}

/// The local wall-clock time of `t`, rounded up to the minute (retrying
/// "after 14:32" must work at 14:32): `14:32` in English, `14 h 32` in
/// French. `None` when the local time cannot be known.
pub fn clock(lang: Lang, t: SystemTime) -> Option<String> {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    let up = SystemTime::UNIX_EPOCH + Duration::from_secs(secs.div_ceil(60).checked_mul(60)?);
    let (h, m, _) = crate::platform::local_time(up)?;
    Some(match lang {
        Lang::En => format!("{h:02}:{m:02}"),
        Lang::Fr => format!("{h:02}\u{a0}h\u{a0}{m:02}"),
    })
}

/// A failed TLS handshake: which side refused which certificate, and whom to call.
pub fn tls_failure(lang: Lang, f: &TlsFailure) -> String {
    match (lang, f) {
        (Lang::En, TlsFailure::OursRefused(why)) => format!(
            "the workstation refused your certificate ({}). Ask the helpdesk PKI for a valid technician certificate.",
            match why {
                OursRefused::Expired => "it has expired",
                OursRefused::UnknownCa => "it was issued by a CA this workstation does not trust",
                OursRefused::Revoked => "it has been revoked",
                OursRefused::Other => "it was not accepted",
            }
        ),
        (Lang::Fr, TlsFailure::OursRefused(why)) => format!(
            "le poste a refusé votre certificat ({}). Demandez un certificat de technicien valide à l'autorité de certification du support.",
            match why {
                OursRefused::Expired => "il a expiré",
                OursRefused::UnknownCa => {
                    "il est émis par une autorité que ce poste ne reconnaît pas"
                }
                OursRefused::Revoked => "il a été révoqué",
                OursRefused::Other => "il n'a pas été accepté",
            }
        ),
        (Lang::En, TlsFailure::AgentCertExpired) => {
            "the workstation's certificate has expired (or is not valid yet): you refused it. Ask IT to renew the workstation's certificate.".into()
        }
        (Lang::Fr, TlsFailure::AgentCertExpired) => {
            "le certificat du poste a expiré (ou n'est pas encore valide)\u{a0}: il a été refusé de votre côté. Demandez au service informatique de le renouveler.".into()
        }
        (Lang::En, TlsFailure::AgentCertUnknownIssuer) => {
            "the workstation's certificate was not issued by the CA given with --ca: you refused it. Check --ca, or ask IT which CA issues workstation certificates.".into()
        }
        (Lang::Fr, TlsFailure::AgentCertUnknownIssuer) => {
            "le certificat du poste n'est pas émis par l'autorité donnée par --ca\u{a0}: il a été refusé de votre côté. Vérifiez --ca, ou demandez au service informatique quelle autorité émet les certificats des postes.".into()
        }
        (Lang::En, TlsFailure::AgentCertWrongName { host }) => format!(
            "the workstation's certificate is not valid for the name {host:?} you typed: you refused it. Check the host name (use the name on the workstation's certificate), or ask IT."
        ),
        (Lang::Fr, TlsFailure::AgentCertWrongName { host }) => format!(
            "le certificat du poste n'est pas valide pour le nom {host:?} saisi\u{a0}: il a été refusé de votre côté. Vérifiez le nom du poste (celui de son certificat), ou demandez au service informatique."
        ),
        (Lang::En, TlsFailure::Other(e)) => format!("TLS handshake failed: {e}"),
        (Lang::Fr, TlsFailure::Other(e)) => format!("échec de la négociation TLS\u{a0}: {e}"),
    }
}

fn mode_words(lang: Lang, m: Mode) -> &'static str {
    match (lang, m) {
        (Lang::En, Mode::Control) => "control",
        (Lang::En, Mode::View) => "view only",
        (Lang::Fr, Mode::Control) => "contrôle",
        (Lang::Fr, Mode::View) => "affichage seul",
    }
}

fn secs(d: Duration) -> u128 {
    d.as_millis().div_ceil(1000)
}

/// One progress message.
pub fn progress(lang: Lang, p: &Progress) -> String {
    match (lang, p) {
        (Lang::En, Progress::Connected { agent }) => {
            format!("connected to {agent}; request sent")
        }
        (Lang::Fr, Progress::Connected { agent }) => {
            format!("connecté à {agent}\u{a0}; demande envoyée")
        }
        (Lang::En, Progress::Pending { left, asked }) => format!(
            "waiting for the user's answer ({} asked)… {} s left",
            mode_words(lang, *asked),
            secs(*left)
        ),
        (Lang::Fr, Progress::Pending { left, asked }) => format!(
            "En attente de la réponse de l'utilisateur ({} demandé)… {}\u{a0}s",
            mode_words(lang, *asked),
            secs(*left)
        ),
        (Lang::En, Progress::Waiting { elapsed }) => {
            format!("waiting for the user's answer… {} s", elapsed.as_secs())
        }
        (Lang::Fr, Progress::Waiting { elapsed }) => format!(
            "En attente de la réponse de l'utilisateur… {}\u{a0}s",
            elapsed.as_secs()
        ),
        (
            Lang::En,
            Progress::Accepted {
                mode,
                session,
                listen,
            },
        ) => format!(
            "accepted ({}) — session {session}; VNC viewer: {listen}",
            mode_words(lang, *mode)
        ),
        (
            Lang::Fr,
            Progress::Accepted {
                mode,
                session,
                listen,
            },
        ) => format!(
            "accepté ({}) — session {session}\u{a0}; visionneuse VNC\u{a0}: {listen}",
            mode_words(lang, *mode)
        ),
        (Lang::En, Progress::ViewerStarted { command }) => format!("viewer started: {command}"),
        (Lang::Fr, Progress::ViewerStarted { command }) => {
            format!("visionneuse lancée\u{a0}: {command}")
        }
        (Lang::En, Progress::ViewerConnected { from }) => {
            format!("viewer connected from {from}; tunnel open")
        }
        (Lang::Fr, Progress::ViewerConnected { from }) => {
            format!("visionneuse connectée depuis {from}\u{a0}; tunnel ouvert")
        }
        (_, Progress::ModeChanged { mode, by_user }) => mode_changed(lang, *mode, *by_user).into(),
        (Lang::En, Progress::Paused(true)) => "the workstation's user hid her screen: your viewer keeps its last picture and your keyboard and mouse are held until she resumes.".into(),
        (Lang::Fr, Progress::Paused(true)) => "l'utilisatrice du poste a masqué son écran\u{a0}: votre visionneuse garde la dernière image, votre clavier et votre souris sont suspendus jusqu'à ce qu'elle reprenne.".into(),
        (Lang::En, Progress::Paused(false)) => "the workstation's user resumed: her screen reaches you again.".into(),
        (Lang::Fr, Progress::Paused(false)) => "l'utilisatrice du poste a repris\u{a0}: son écran vous parvient de nouveau.".into(),
        (Lang::En, Progress::Confirming { grace }) => format!(
            "the workstation's user is asked whether the session goes on: your keyboard and mouse are held; without her answer the session ends in {} s.",
            grace.as_secs()
        ),
        (Lang::Fr, Progress::Confirming { grace }) => format!(
            "l'utilisatrice du poste doit confirmer que la session continue\u{a0}: votre clavier et votre souris sont suspendus\u{a0}; sans réponse, la session se termine dans {}\u{a0}s.",
            grace.as_secs()
        ),
        (Lang::En, Progress::Confirmed) => "the workstation's user chose to go on: your keyboard and mouse reach the workstation again (if the session is in control).".into(),
        (Lang::Fr, Progress::Confirmed) => "l'utilisatrice du poste a choisi de continuer\u{a0}: votre clavier et votre souris agissent de nouveau (si la session est en contrôle).".into(),
    }
}

/// The session's mode changed while it runs.
pub fn mode_changed(lang: Lang, mode: Mode, by_user: bool) -> &'static str {
    match (lang, mode, by_user) {
        (Lang::En, Mode::View, true) => {
            "switched to view only by the workstation's user: your keyboard and mouse no longer reach it."
        }
        (Lang::Fr, Mode::View, true) => {
            "passé en affichage seul par l'utilisateur du poste\u{a0}: votre clavier et votre souris n'agissent plus sur le poste."
        }
        (Lang::En, Mode::Control, true) => {
            "control granted by the workstation's user: your keyboard and mouse now reach the workstation."
        }
        (Lang::Fr, Mode::Control, true) => {
            "passé en contrôle par l'utilisateur du poste\u{a0}: votre clavier et votre souris agissent maintenant sur le poste."
        }
        (Lang::En, Mode::View, false) => "the session is now view only.",
        (Lang::Fr, Mode::View, false) => "la session est maintenant en affichage seul.",
        (Lang::En, Mode::Control, false) => "the session is now in control.",
        (Lang::Fr, Mode::Control, false) => "la session est maintenant en contrôle.",
    }
}

/// `--request-control` succeeded.
pub fn control_granted(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "control granted: your keyboard and mouse now reach the workstation.",
        Lang::Fr => {
            "contrôle accordé\u{a0}: votre clavier et votre souris agissent maintenant sur le poste."
        }
    }
}

/// A refused `--request-control`: as [`refusal`], except where a request
/// for control means something else (no such session of yours; another
/// request for control already asked).
pub fn raise_refusal(lang: Lang, code: RefusalCode) -> &'static str {
    match (lang, code) {
        (Lang::En, RefusalCode::BadRequest) => {
            "the workstation has no view-only session of yours with that id (it ended, is already in control, or was opened with another certificate). Check --session, or ask for a new session."
        }
        (Lang::Fr, RefusalCode::BadRequest) => {
            "le poste n'a pas de session en affichage seul ouverte par vous avec cet identifiant (terminée, déjà en contrôle, ou ouverte avec un autre certificat). Vérifiez --session, ou refaites une demande de session."
        }
        (Lang::En, RefusalCode::Busy) => {
            "a request for control of this session is already being asked. Wait for its answer."
        }
        (Lang::Fr, RefusalCode::Busy) => {
            "une demande de contrôle de cette session est déjà en cours. Attendez sa réponse."
        }
        _ => refusal(lang, code),
    }
}

/// The end of a session that had started, when nobody said why.
pub fn session_ended(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "session ended",
        Lang::Fr => "session terminée",
    }
}

/// The end of a session, with what ended it when the workstation said
/// (its watch, [`super::watch`]), and what to do next when there is
/// something to do. Every sentence starts as [`session_ended`] does.
pub fn session_end(lang: Lang, ending: &Ending) -> String {
    match ending {
        Ending::Told(r) => end_reason(lang, *r).to_string(),
        Ending::Unknown(why) => format!("{} ({why})", session_ended(lang)),
        Ending::Untold => session_ended(lang).to_string(),
    }
}

/// Why a session ended, as the technician is told.
pub fn end_reason(lang: Lang, why: EndReason) -> &'static str {
    use EndReason as E;
    match (lang, why) {
        (Lang::En, E::User) => "session ended by the workstation's user.",
        (Lang::Fr, E::User) => "session terminée par l'utilisateur du poste.",
        (Lang::En, E::Technician) => "session ended: you closed the viewer or the tunnel.",
        (Lang::Fr, E::Technician) => {
            "session terminée\u{a0}: vous avez fermé la visionneuse ou le tunnel."
        }
        (Lang::En, E::Idle) => {
            "session ended for inactivity (idle): no key or pointer from you within the workstation's limit. Ask again if you still need it."
        }
        (Lang::Fr, E::Idle) => {
            "session terminée pour inactivité (idle)\u{a0}: aucune action de votre part dans le délai du poste. Refaites une demande si besoin."
        }
        (Lang::En, E::MaxDuration) => {
            "session ended: maximum duration reached. Ask again if you still need it."
        }
        (Lang::Fr, E::MaxDuration) => {
            "session terminée\u{a0}: durée maximale atteinte. Refaites une demande si besoin."
        }
        (Lang::En, E::NotConfirmed) => {
            "session ended: the workstation's user did not confirm that it goes on (not_confirmed). Ask again if you still need it."
        }
        (Lang::Fr, E::NotConfirmed) => {
            "session terminée\u{a0}: l'utilisatrice du poste n'a pas confirmé sa poursuite (not_confirmed). Refaites une demande si besoin."
        }
        (Lang::En, E::ScreenLocked) => "session ended: the workstation's screen was locked.",
        (Lang::Fr, E::ScreenLocked) => "session terminée\u{a0}: écran verrouillé sur le poste.",
        (Lang::En, E::UserSwitched) => {
            "session ended: another user took over the workstation (user switch)."
        }
        (Lang::Fr, E::UserSwitched) => {
            "session terminée\u{a0}: un autre utilisateur a pris la main sur le poste (changement d'utilisateur)."
        }
        (Lang::En, E::Upstream) => {
            "session ended: the workstation's screen-sharing server stopped or failed. Ask IT to check the VNC server on that workstation."
        }
        (Lang::Fr, E::Upstream) => {
            "session terminée\u{a0}: le serveur de partage d'écran du poste s'est arrêté ou a échoué. Demandez au service informatique de vérifier le serveur VNC de ce poste."
        }
        (Lang::En, E::AgentStopped) => {
            "session ended: Accord stopped on the workstation (agent stopped). Try again in a minute."
        }
        (Lang::Fr, E::AgentStopped) => {
            "session terminée\u{a0}: Accord s'est arrêté sur le poste (agent arrêté). Réessayez dans une minute."
        }
        (Lang::En, E::UiLost) => {
            "session ended: Accord's window on the workstation closed, so nobody there could follow or stop the session. Call the user or IT."
        }
        (Lang::Fr, E::UiLost) => {
            "session terminée\u{a0}: la fenêtre d'Accord s'est fermée sur le poste, personne ne pouvait plus suivre ni arrêter la session. Appelez l'utilisateur ou le service informatique."
        }
        (Lang::En, E::Protocol) => {
            "session ended: your viewer sent a message Accord cannot check, so it closed the session. Try another VNC viewer."
        }
        (Lang::Fr, E::Protocol) => {
            "session terminée\u{a0}: votre visionneuse a envoyé un message qu'Accord ne sait pas vérifier, la session a donc été fermée. Essayez une autre visionneuse VNC."
        }
    }
}

/// Prints progress on standard error: on a terminal the countdown is one
/// line rewritten in place; elsewhere (logs, scripts) plain lines, the
/// countdown only every ten seconds so a log is not one line a second.
pub struct Reporter<W: Write> {
    out: W,
    lang: Lang,
    tty: bool,
    /// A countdown line is on screen without its newline.
    line_open: bool,
    /// A plain countdown line was printed (the first one always is).
    countdown_shown: bool,
}

/// Plain-line countdown interval when not on a terminal.
const PLAIN_EVERY_S: u128 = 10;

impl<W: Write> Reporter<W> {
    pub fn new(out: W, lang: Lang, tty: bool) -> Self {
        Reporter {
            out,
            lang,
            tty,
            line_open: false,
            countdown_shown: false,
        }
    }

    /// Prints one progress event.
    pub fn progress(&mut self, p: &Progress) {
        let msg = progress(self.lang, p);
        let countdown = match p {
            Progress::Pending { left, .. } => Some(secs(*left)),
            Progress::Waiting { elapsed } => Some(u128::from(elapsed.as_secs())),
            _ => None,
        };
        match (self.tty, countdown) {
            (true, Some(_)) => {
                // \r and "erase line": the countdown updates in place.
                let _ = write!(self.out, "\r\x1b[2Kaccord connect: {msg}");
                self.line_open = true;
            }
            (false, Some(n)) => {
                if !self.countdown_shown || n % PLAIN_EVERY_S == 0 {
                    self.countdown_shown = true;
                    self.line(&msg);
                }
            }
            _ => self.line(&msg),
        }
        let _ = self.out.flush();
    }

    /// Prints a whole line, closing an open countdown line first.
    pub fn line(&mut self, msg: &str) {
        if std::mem::take(&mut self.line_open) {
            let _ = writeln!(self.out);
        }
        let _ = writeln!(self.out, "accord connect: {msg}");
        let _ = self.out.flush();
    }

    pub fn lang(&self) -> Lang {
        self.lang
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locale_picks_the_language() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Lang::from_vars(env(&[("LANG", "fr_FR.UTF-8")])), Lang::Fr);
        assert_eq!(
            Lang::from_vars(env(&[("LC_ALL", "en_GB.UTF-8"), ("LANG", "fr_FR.UTF-8")])),
            Lang::En
        );
        assert_eq!(Lang::from_vars(env(&[("LANG", "C.UTF-8")])), Lang::En);
        assert_eq!(Lang::from_vars(env(&[])), Lang::En);
    }

    #[test]
    fn every_refusal_says_what_to_do_in_both_languages() {
        use RefusalCode as R;
        for code in [
            R::User,
            R::Timeout,
            R::Busy,
            R::RateLimited,
            R::Policy,
            R::BadRequest,
            R::UpstreamUnreachable,
            R::AgentShuttingDown,
            R::NoUser,
            R::UnsupportedSession,
        ] {
            let (en, fr) = (refusal(Lang::En, code), refusal(Lang::Fr, code));
            assert_ne!(en, fr);
            // A sentence of what happened, then one of what to do.
            assert!(en.matches(". ").count() >= 1, "{en}");
            assert!(fr.matches(". ").count() >= 1, "{fr}");
            // French typography: no plain space before a colon.
            assert!(!fr.contains(" :"), "{fr}");
        }
    }

    #[test]
    fn every_end_reason_has_its_sentence_in_both_languages() {
        let mut seen = std::collections::HashSet::new();
        for r in EndReason::ALL {
            let (en, fr) = (end_reason(Lang::En, r), end_reason(Lang::Fr, r));
            assert!(en.starts_with("session ended"), "{en}");
            assert!(fr.starts_with("session terminée"), "{fr}");
            assert!(!fr.contains(" :"), "{fr}");
            assert!(seen.insert(en) && seen.insert(fr), "{en} / {fr}");
        }
        assert_eq!(session_end(Lang::En, &Ending::Untold), "session ended");
        assert_eq!(
            session_end(Lang::Fr, &Ending::Unknown("meteor".into())),
            "session terminée (meteor)"
        );
        assert!(
            session_end(Lang::Fr, &Ending::Told(EndReason::User))
                .contains("terminée par l'utilisateur du poste")
        );
        assert!(end_reason(Lang::Fr, EndReason::Idle).contains("inactivité (idle)"));
        assert!(end_reason(Lang::Fr, EndReason::MaxDuration).contains("durée maximale"));
        assert!(end_reason(Lang::Fr, EndReason::ScreenLocked).contains("écran verrouillé"));
        assert!(end_reason(Lang::Fr, EndReason::AgentStopped).contains("agent arrêté"));
        assert!(
            mode_changed(Lang::Fr, Mode::View, true)
                .starts_with("passé en affichage seul par l'utilisateur")
        );
    }

    #[test]
    fn retry_time_is_local_and_rounded_up_to_the_minute() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + 61);
        let (h, m, _) = crate::platform::local_time(
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_120),
        )
        .unwrap();
        assert_eq!(clock(Lang::En, t).unwrap(), format!("{h:02}:{m:02}"));
        assert_eq!(
            clock(Lang::Fr, t).unwrap(),
            format!("{h:02}\u{a0}h\u{a0}{m:02}")
        );
        let en = refusal_until(Lang::En, RefusalCode::RateLimited, t);
        assert!(en.contains(&format!("Retry after {h:02}:{m:02}")), "{en}");
        let fr = refusal_until(Lang::Fr, RefusalCode::RateLimited, t);
        assert!(fr.contains("Réessayez après "), "{fr}");
    }

    fn run(tty: bool, events: &[Progress]) -> String {
        let mut buf = Vec::new();
        let mut r = Reporter::new(&mut buf, Lang::En, tty);
        for e in events {
            r.progress(e);
        }
        r.line("done");
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn terminal_countdown_is_one_line_plain_output_is_sparse() {
        let pend = |s| Progress::Pending {
            left: Duration::from_secs(s),
            asked: Mode::View,
        };
        let events = [pend(25), pend(24), pend(23), pend(20), pend(19)];
        let tty = run(true, &events);
        // The countdown line, closed once, then the final line.
        assert_eq!(tty.matches('\n').count(), 2, "{tty:?}");
        assert!(tty.contains(
            "\r\x1b[2Kaccord connect: waiting for the user's answer (view only asked)… 25 s left"
        ));
        let plain = run(false, &events);
        assert!(!plain.contains('\r'));
        let lines: Vec<&str> = plain.lines().collect();
        assert_eq!(lines.len(), 3, "{plain}");
        assert!(lines[0].ends_with("25 s left"), "{plain}");
        assert!(lines[1].ends_with("20 s left"), "{plain}");
    }
}
