//! The PGSSI-S conformity report of `accord policy check`: one line per rule
//! Accord serves, with its palier and what this policy does about it. A rule
//! is "ok" only when what runs meets it, not when the policy merely asks.

use super::{Clipboard, Launch, Policy, SeatMode, UpstreamAddr, limits};
use std::fmt::Write as _;

/// One line of the report.
struct Row {
    rule: &'static str,
    palier: &'static str,
    ok: bool,
    text: String,
}

impl Row {
    fn new(rule: &'static str, palier: &'static str, ok: bool, text: impl Into<String>) -> Row {
        Row {
            rule,
            palier,
            ok,
            text: text.into(),
        }
    }
}

impl Policy {
    /// The PGSSI-S conformity report: one line per rule Accord serves, with
    /// its palier and what this policy does about it.
    pub fn conformity_report(&self) -> String {
        let rows = [
            consent(self),
            only_way_in(self),
            screen_lock(self),
            Row::new(
                "O8",
                "1",
                true,
                format!(
                    "one-click \"Terminer\" in the banner, shortcut {}, `accord end`",
                    self.ui.kill_shortcut
                ),
            ),
            Row::new(
                "T5/T7",
                "2/1",
                true,
                "TLS 1.3 only, client certificate required and verified against technicians.ca; no session resumption",
            ),
            revocation(self),
            allow_list(self),
            idle(self),
            reconfirm(self),
            clipboard(self),
            forward(self),
            Row::new(
                "T12",
                "2",
                true,
                format!(
                    "local hash-chained audit log at {}",
                    self.audit_path().display()
                ),
            ),
            Row::new(
                "E3",
                "1",
                true,
                "technician identity = verified certificate subject and SHA-256 fingerprint",
            ),
        ];
        let mut out = String::from("PGSSI-S conformity (rule, palier, status):\n");
        for Row {
            rule,
            palier,
            ok,
            text,
        } in rows
        {
            let _ = writeln!(
                out,
                "  {rule:<6} P{palier:<4} {:<8} {text}",
                if ok { "ok" } else { "warning" }
            );
        }
        out
    }
}

fn consent(p: &Policy) -> Row {
    Row::new(
        "O6",
        "1",
        true,
        format!(
            "explicit consent prompt for every session; {}",
            if p.consent.allow_control {
                "clinician may restrict to view only"
            } else {
                "control forbidden by policy: view only at most"
            }
        ),
    )
}

/// Consent is only as strong as the only way in.
fn only_way_in(p: &Policy) -> Row {
    let (ok, text) = match (&p.upstream.launch, &p.upstream.vnc) {
        (Launch::None, UpstreamAddr::Tcp(a)) => (
            false,
            format!(
                "the VNC server on {a} is not Accord's: every local account can reach it without consent (set upstream.launch = \"auto\")"
            ),
        ),
        (Launch::None, UpstreamAddr::Unix(path)) => (
            true,
            format!(
                "VNC server started by IT on {} (keep it 0600): Accord does not start or stop it",
                path.display()
            ),
        ),
        (l, _) => (
            true,
            format!(
                "VNC server ({}) started only for a consented session, on a private 0600 socket, no TCP port",
                l.as_str()
            ),
        ),
    };
    Row::new("O6", "1", ok, text)
}

/// "Met" only for what runs: logind's lock is watched only by the service
/// with seat = "logind"; the session bus's screen saver by every helper and
/// by `accord agent`.
fn screen_lock(p: &Policy) -> Row {
    let lock = p.session.end_on_screen_lock;
    let logind = cfg!(feature = "logind");
    let how = match (lock, p.service.seat) {
        (false, _) => "NO",
        _ if !logind => "requested, but NOT enforced by this build (no D-Bus watcher)",
        (true, SeatMode::Logind) => {
            "yes, within 1 s: logind's LockedHint (GNOME, KDE) and the session's org.freedesktop.ScreenSaver (xscreensaver, light-locker)"
        }
        (true, SeatMode::Single) => {
            "only for lockers that report org.freedesktop.ScreenSaver on the session bus (seat = \"single\": no logind)"
        }
    };
    Row::new(
        "O7",
        "2",
        lock && p.service.seat == SeatMode::Logind && logind,
        format!("always-on-top banner during sessions; end on screen lock: {how}"),
    )
}

fn revocation(p: &Policy) -> Row {
    Row::new(
        "T7",
        "2",
        p.technicians.crl.is_some(),
        match &p.technicians.crl {
            Some(path) => format!(
                "revoked technician certificates refused (CRL {}, re-read when it changes)",
                path.display()
            ),
            None => "no revocation list: a leaked technician key is accepted until it expires (consider technicians.crl)".into(),
        },
    )
}

fn allow_list(p: &Policy) -> Row {
    let allow = &p.technicians.allow;
    Row::new(
        "T8",
        "1",
        !allow.is_empty(),
        if allow.is_empty() {
            "any certificate of technicians.ca accepted (no allow-list; consider technicians.allow)"
                .into()
        } else {
            format!("allow-list of {} certificate(s)", allow.len())
        },
    )
}

/// The default idle timeout is the bar: a longer one is a warning.
fn idle(p: &Policy) -> Row {
    let idle = p.session.idle_timeout.as_secs();
    let default = u64::from(limits::IDLE_TIMEOUT_S.default);
    Row::new(
        "T10",
        "2",
        idle <= default,
        format!(
            "idle sessions closed after {idle} s{}; hard limit {} s",
            if idle > default {
                format!(" (longer than the {default} s default)")
            } else {
                String::new()
            },
            p.session.max_duration.as_secs()
        ),
    )
}

fn reconfirm(p: &Policy) -> Row {
    Row::new(
        "O7",
        "1",
        p.session.confirm_every.is_some(),
        match p.session.confirm_every {
            Some(every) => format!(
                "consent asked again every {} s (the session ends {} s after an unanswered \"continue?\")",
                every.as_secs(),
                p.session.confirm_grace.as_secs()
            ),
            None => {
                "consent never asked again during a session (session.confirm_every_s = 0)".into()
            }
        },
    )
}

fn clipboard(p: &Policy) -> Row {
    Row::new(
        "O6",
        "1",
        p.session.clipboard != Clipboard::Both,
        match p.session.clipboard {
            Clipboard::None => "clipboard: never shared",
            Clipboard::ToWorkstation => {
                "clipboard: technician may paste in control mode; the workstation's never leaves"
            }
            Clipboard::Both => {
                "clipboard: shared both ways in control mode (the workstation's clipboard may hold patient data)"
            }
        },
    )
}

fn forward(p: &Policy) -> Row {
    Row::new(
        "T11",
        "1",
        p.audit.forward.is_some(),
        match &p.audit.forward {
            Some(f) => format!("audit forwarded to tls://{}:{} (RFC 5425)", f.host, f.port),
            None => "NOT centralised: set audit.forward to the hospital's syslog collector".into(),
        },
    )
}
