//! Who may be asked (issue 9, "Who is asked"): the pure rule that picks the
//! helper of the person in front of the screen, or nobody.
//!
//! The facts come from logind ([`super::logind`]) or, without it, from the
//! list of connected helpers alone (`[service] seat = "single"`). Deciding is
//! kept apart from watching so the rule is tested without D-Bus.

/// One logind session, as far as Accord cares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginSession {
    /// logind's session id (`"2"`, `"c1"`).
    pub id: String,
    pub uid: u32,
    /// The login name (`Name` property).
    pub name: String,
    /// `Remote`: an ssh or remote-desktop login, never asked.
    pub remote: bool,
    /// `Type`: `x11`, `wayland`, `tty`, `mir`, `unspecified`.
    pub kind: String,
    /// `Class`: `user`, `greeter`, `lock-screen`, `background`.
    pub class: String,
    /// `LockedHint`.
    pub locked: bool,
}

impl LoginSession {
    /// A graphical session of a real user, local, not locked.
    pub fn can_answer(&self) -> Result<(), &'static str> {
        if self.remote {
            return Err("the active session is remote");
        }
        if self.class != "user" {
            return Err("the active session is not a user's (login screen?)");
        }
        if !matches!(self.kind.as_str(), "x11" | "wayland" | "mir") {
            return Err("the active session is not graphical");
        }
        if self.locked {
            return Err("the screen is locked");
        }
        Ok(())
    }
}

/// The seat as logind shows it: its active session, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeatView {
    pub active: Option<LoginSession>,
}

/// A connected helper, identified by the kernel (SO_PEERCRED), never by
/// what it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HelperId {
    /// The service's own number for this connection.
    pub conn: u64,
    pub uid: u32,
    pub pid: u32,
    /// Its logind session (`GetSessionByPID`), when logind is there.
    pub session: Option<String>,
    /// The helper reported its screen saver active (xscreensaver,
    /// light-locker: `org.freedesktop.ScreenSaver.ActiveChanged`).
    pub screensaver: bool,
    /// The helper reported it cannot show a window.
    pub unavailable: bool,
}

/// How the service finds the person in front of the screen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeatMode {
    /// logind's `seat0`: its active session's helper.
    #[default]
    Logind,
    /// No logind (containers, CI): the one connected helper.
    Single,
}

impl SeatMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SeatMode::Logind => "logind",
            SeatMode::Single => "single",
        }
    }
}

/// Picks the helper to ask, or says why nobody can answer (`no_user`).
pub fn choose<'a>(
    mode: SeatMode,
    seat: &SeatView,
    helpers: impl IntoIterator<Item = &'a HelperId>,
) -> Result<&'a HelperId, String> {
    let helpers: Vec<&HelperId> = helpers.into_iter().collect();
    let candidates: Vec<&HelperId> = match mode {
        SeatMode::Single => helpers.iter().copied().filter(|h| !h.unavailable).collect(),
        SeatMode::Logind => {
            let Some(active) = &seat.active else {
                return Err("no session is active on the seat".into());
            };
            active.can_answer().map_err(str::to_string)?;
            helpers
                .iter()
                .copied()
                .filter(|h| {
                    h.uid == active.uid
                        && h.session.as_deref() == Some(active.id.as_str())
                        && !h.unavailable
                })
                .collect()
        }
    };
    match candidates.as_slice() {
        [] => Err("no Accord helper runs in the session in front of the screen".into()),
        [one] if one.screensaver => Err("the screen is locked".into()),
        [one] => Ok(one),
        _ => Err(format!(
            "{} helpers could answer: nobody can tell who is in front of the screen",
            candidates.len()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str, uid: u32) -> LoginSession {
        LoginSession {
            id: id.into(),
            uid,
            name: format!("user{uid}"),
            remote: false,
            kind: "x11".into(),
            class: "user".into(),
            locked: false,
        }
    }

    fn helper(conn: u64, uid: u32, session: &str) -> HelperId {
        HelperId {
            conn,
            uid,
            pid: 100 + conn as u32,
            session: Some(session.into()),
            screensaver: false,
            unavailable: false,
        }
    }

    #[test]
    fn only_the_active_sessions_helper_is_asked() {
        let seat = SeatView {
            active: Some(session("3", 1001)),
        };
        let hs = [helper(1, 1000, "2"), helper(2, 1001, "3")];
        assert_eq!(choose(SeatMode::Logind, &seat, &hs).map(|h| h.conn), Ok(2));
    }

    #[test]
    fn same_uid_other_session_is_not_asked() {
        let seat = SeatView {
            active: Some(session("3", 1001)),
        };
        let hs = [helper(1, 1001, "4")];
        assert!(choose(SeatMode::Logind, &seat, &hs).is_err());
    }

    #[test]
    fn locked_remote_greeter_tty_and_nobody_refuse() {
        let hs = [helper(1, 1001, "3")];
        for edit in [
            (|s: &mut LoginSession| s.locked = true) as fn(&mut LoginSession),
            |s| s.remote = true,
            |s| s.class = "greeter".into(),
            |s| s.kind = "tty".into(),
        ] {
            let mut s = session("3", 1001);
            edit(&mut s);
            let seat = SeatView { active: Some(s) };
            assert!(choose(SeatMode::Logind, &seat, &hs).is_err());
        }
        assert!(choose(SeatMode::Logind, &SeatView::default(), &hs).is_err());
    }

    #[test]
    fn two_candidates_are_ambiguous() {
        let seat = SeatView {
            active: Some(session("3", 1001)),
        };
        let hs = [helper(1, 1001, "3"), helper(2, 1001, "3")];
        assert!(choose(SeatMode::Logind, &seat, &hs).is_err());
        let single = [helper(1, 1000, "x"), helper(2, 1001, "y")];
        assert!(choose(SeatMode::Single, &SeatView::default(), &single).is_err());
        assert_eq!(
            choose(SeatMode::Single, &SeatView::default(), &single[..1]).map(|h| h.conn),
            Ok(1)
        );
        assert!(choose(SeatMode::Single, &SeatView::default(), &[]).is_err());
    }

    #[test]
    fn screensaver_or_unavailable_helper_cannot_answer() {
        let seat = SeatView {
            active: Some(session("3", 1001)),
        };
        let mut h = helper(1, 1001, "3");
        h.screensaver = true;
        assert!(choose(SeatMode::Logind, &seat, std::slice::from_ref(&h)).is_err());
        h.screensaver = false;
        h.unavailable = true;
        assert!(choose(SeatMode::Logind, &seat, std::slice::from_ref(&h)).is_err());
    }
}
