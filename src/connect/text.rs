//! What `accord connect` tells the technician, in French or English: every
//! outcome as what happened and what to do next, and the progress line.
//!
//! The technician is on the phone with a clinician or with IT; each sentence
//! says whom to call or when to retry. The language follows the locale
//! (`LC_ALL`, `LC_MESSAGES`, `LANG`: French for `fr*`, English otherwise).

use super::{OursRefused, Progress, TlsFailure};
use crate::protocol::{Mode, RefusalCode};
use std::io::Write;
use std::time::Duration;

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
    }
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

/// The end of a session that had started.
pub fn session_ended(lang: Lang) -> &'static str {
    match lang {
        Lang::En => "session ended",
        Lang::Fr => "session terminée",
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
