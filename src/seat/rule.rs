//! Who may be asked (docs/architecture.md, "Who is asked"): the pure rule that picks the
//! helper of the person in front of the screen, or nobody.
//!
//! The facts come from logind ([`super::logind`]) or, without it, from the
//! list of connected helpers alone (`[service] seat = "single"`). Deciding is
//! kept apart from watching so the rule is tested without D-Bus.

use crate::policy::SeatMode;

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
    pub fn can_answer(&self) -> Result<(), NoUser> {
        if self.remote {
            return Err(NoUser::Remote);
        }
        if self.class != "user" {
            return Err(NoUser::NotAUser);
        }
        if !is_graphical(&self.kind) {
            return Err(NoUser::NotGraphical);
        }
        if self.locked {
            return Err(NoUser::Locked);
        }
        Ok(())
    }
}

/// Why nobody can be asked: the request is refused `no_user`, and this text
/// is what the technician and the audit log read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NoUser {
    #[error("no session is active on the seat")]
    NoActiveSession,
    /// Whoever is at the other end of an SSH or remote-desktop login is not
    /// in front of the screen.
    #[error("the active session is remote")]
    Remote,
    #[error("the active session is not a user's (login screen?)")]
    NotAUser,
    #[error("the active session is not graphical")]
    NotGraphical,
    /// logind's `LockedHint`.
    #[error("the screen is locked")]
    Locked,
    #[error("no Accord helper runs in the session in front of the screen")]
    NoHelper,
    /// The one helper's screen saver is active (no `LockedHint` from it).
    #[error("the screen is locked")]
    ScreenSaver,
    /// Asking one of them could ask someone else than the person in front
    /// of the screen.
    #[error("{0} helpers could answer: nobody can tell who is in front of the screen")]
    Several(usize),
}

/// logind's session `Type` of a graphical session.
pub fn is_graphical(kind: &str) -> bool {
    matches!(kind, "x11" | "wayland" | "mir")
}

/// The seat as logind shows it: its active session, if any.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeatView {
    pub active: Option<LoginSession>,
    /// How many graphical user sessions the active session's user has on
    /// this seat, the active one included: a helper run by the user's
    /// manager (no session of its own) can only stand for the active one
    /// when there is no other it could be showing on.
    pub user_graphical: usize,
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
    /// In no session: the uid whose user manager (`user@UID.service`) runs
    /// it, as logind says (`GetUserByPID`). GNOME and Plasma start every
    /// XDG autostart entry as a user unit there, outside the session scope.
    pub manager_of: Option<u32>,
    /// The helper reported its screen saver active (xscreensaver,
    /// light-locker: `org.freedesktop.ScreenSaver.ActiveChanged`).
    pub screensaver: bool,
    /// The helper reported it cannot show a window.
    pub unavailable: bool,
    /// The helper said its session is Wayland (its own environment).
    pub wayland: bool,
    /// The helper found GNOME's Mutter remote-desktop API on its session
    /// bus, and the policy lets Accord's own server use it (`launch` is
    /// `auto` or `mutter`): its Wayland session can be shared.
    pub mutter: bool,
}

/// The seat's active session, if `helper` answers for it (logind mode):
/// - a helper in a session answers for that session only, when it is the
///   active one (a second login or an SSH session of the same user never);
/// - a helper in no session, run by the user manager of the active
///   session's user, answers for the active session when that user has
///   exactly one graphical session on the seat.
pub fn answers_for<'a>(helper: &HelperId, seat: &'a SeatView) -> Option<&'a LoginSession> {
    let active = seat.active.as_ref()?;
    if helper.uid != active.uid {
        return None;
    }
    let admitted = match &helper.session {
        Some(session) => *session == active.id,
        None => helper.manager_of == Some(active.uid) && seat.user_graphical == 1,
    };
    admitted.then_some(active)
}

/// Why a request cannot be shown at all: the person in front of the screen
/// is in a Wayland session Accord cannot share (the X11 servers would share
/// XWayland's empty screen; only GNOME's Mutter gives the screen to Accord's
/// own server). `Some(helper)`: the helper that answers for that session,
/// to tell her (`None` inside: nobody to tell). logind's `Type` decides in
/// logind mode; a helper's own word counts too. A Wayland session is
/// shared only when its one helper says Mutter is there.
pub fn unsupported<'a>(
    mode: SeatMode,
    seat: &SeatView,
    helpers: impl IntoIterator<Item = &'a HelperId> + Clone,
) -> Option<Option<&'a HelperId>> {
    if mode == SeatMode::Logind
        && let Some(active) = &seat.active
        && active.kind == "wayland"
        && active.can_answer().is_ok()
    {
        let mut theirs = helpers
            .clone()
            .into_iter()
            .filter(|h| answers_for(h, seat).is_some());
        match (theirs.next(), theirs.next()) {
            (Some(one), None) if one.mutter => {}
            (Some(one), None) => return Some(Some(one)),
            _ => return Some(None),
        }
    }
    choose(mode, seat, helpers)
        .ok()
        .filter(|h| h.wayland && !h.mutter)
        .map(Some)
}

/// Picks the helper to ask, or says why nobody can answer (`no_user`).
pub fn choose<'a>(
    mode: SeatMode,
    seat: &SeatView,
    helpers: impl IntoIterator<Item = &'a HelperId>,
) -> Result<&'a HelperId, NoUser> {
    let helpers: Vec<&HelperId> = helpers.into_iter().collect();
    let candidates: Vec<&HelperId> = match mode {
        SeatMode::Single => helpers.iter().copied().filter(|h| !h.unavailable).collect(),
        SeatMode::Logind => {
            let Some(active) = &seat.active else {
                return Err(NoUser::NoActiveSession);
            };
            active.can_answer()?;
            helpers
                .iter()
                .copied()
                .filter(|h| answers_for(h, seat).is_some() && !h.unavailable)
                .collect()
        }
    };
    match candidates.as_slice() {
        [] => Err(NoUser::NoHelper),
        [one] if one.screensaver => Err(NoUser::ScreenSaver),
        [one] => Ok(one),
        _ => Err(NoUser::Several(candidates.len())),
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
            manager_of: None,
            screensaver: false,
            unavailable: false,
            wayland: false,
            mutter: false,
        }
    }

    fn seat(active: LoginSession) -> SeatView {
        SeatView {
            active: Some(active),
            user_graphical: 1,
        }
    }

    /// A helper started by the user's systemd manager (GNOME, Plasma).
    fn managed(conn: u64, uid: u32, manager_of: Option<u32>) -> HelperId {
        HelperId {
            session: None,
            manager_of,
            ..helper(conn, uid, "")
        }
    }

    #[test]
    fn only_the_active_sessions_helper_is_asked() {
        let seat = seat(session("3", 1001));
        let hs = [helper(1, 1000, "2"), helper(2, 1001, "3")];
        assert_eq!(choose(SeatMode::Logind, &seat, &hs).map(|h| h.conn), Ok(2));
    }

    #[test]
    fn same_uid_other_session_is_not_asked() {
        let seat = seat(session("3", 1001));
        let hs = [helper(1, 1001, "4")];
        assert!(choose(SeatMode::Logind, &seat, &hs).is_err());
    }

    /// Each refusal says why, in the words the technician and the audit
    /// log read.
    #[test]
    fn locked_remote_greeter_tty_and_nobody_refuse() {
        let hs = [helper(1, 1001, "3")];
        for (edit, why) in [
            (
                (|s: &mut LoginSession| s.locked = true) as fn(&mut LoginSession),
                "the screen is locked",
            ),
            (|s| s.remote = true, "the active session is remote"),
            (
                |s| s.class = "greeter".into(),
                "the active session is not a user's (login screen?)",
            ),
            (
                |s| s.kind = "tty".into(),
                "the active session is not graphical",
            ),
        ] {
            let mut s = session("3", 1001);
            edit(&mut s);
            let seat = seat(s);
            let e = choose(SeatMode::Logind, &seat, &hs).unwrap_err();
            assert_eq!(e.to_string(), why);
        }
        assert_eq!(
            choose(SeatMode::Logind, &SeatView::default(), &hs).map_err(|e| e.to_string()),
            Err("no session is active on the seat".into())
        );
        assert_eq!(
            choose(SeatMode::Single, &SeatView::default(), &[]).map_err(|e| e.to_string()),
            Err("no Accord helper runs in the session in front of the screen".into())
        );
    }

    #[test]
    fn two_candidates_are_ambiguous() {
        let seat = seat(session("3", 1001));
        let hs = [helper(1, 1001, "3"), helper(2, 1001, "3")];
        assert!(choose(SeatMode::Logind, &seat, &hs).is_err());
        let single = [helper(1, 1000, "x"), helper(2, 1001, "y")];
        assert_eq!(
            choose(SeatMode::Single, &SeatView::default(), &single).map_err(|e| e.to_string()),
            Err("2 helpers could answer: nobody can tell who is in front of the screen".into())
        );
        assert_eq!(
            choose(SeatMode::Single, &SeatView::default(), &single[..1]).map(|h| h.conn),
            Ok(1)
        );
        assert!(choose(SeatMode::Single, &SeatView::default(), &[]).is_err());
    }

    #[test]
    fn screensaver_or_unavailable_helper_cannot_answer() {
        let seat = seat(session("3", 1001));
        let mut h = helper(1, 1001, "3");
        h.screensaver = true;
        assert_eq!(
            choose(SeatMode::Logind, &seat, std::slice::from_ref(&h)).map_err(|e| e.to_string()),
            Err("the screen is locked".into())
        );
        h.screensaver = false;
        h.unavailable = true;
        assert!(choose(SeatMode::Logind, &seat, std::slice::from_ref(&h)).is_err());
    }

    #[test]
    fn a_helper_of_the_active_users_manager_is_asked() {
        let seat = seat(session("3", 1001));
        let hs = [managed(1, 1001, Some(1001))];
        assert_eq!(choose(SeatMode::Logind, &seat, &hs).map(|h| h.conn), Ok(1));
        assert_eq!(answers_for(&hs[0], &seat).map(|s| s.id.as_str()), Some("3"));
    }

    #[test]
    fn a_managed_helper_of_another_user_or_unknown_manager_is_not_asked() {
        let seat = seat(session("3", 1001));
        // Another user's manager (its helper could show nothing here).
        assert!(choose(SeatMode::Logind, &seat, &[managed(1, 1000, Some(1000))]).is_err());
        // Same uid by SO_PEERCRED, but logind names another user's slice.
        assert!(choose(SeatMode::Logind, &seat, &[managed(1, 1001, Some(1000))]).is_err());
        // logind places it nowhere at all.
        assert!(choose(SeatMode::Logind, &seat, &[managed(1, 1001, None)]).is_err());
    }

    #[test]
    fn a_managed_helper_is_not_asked_when_its_user_has_two_graphical_sessions() {
        let mut seat = seat(session("3", 1001));
        seat.user_graphical = 2;
        assert!(choose(SeatMode::Logind, &seat, &[managed(1, 1001, Some(1001))]).is_err());
        // A helper in the active session itself still is.
        assert_eq!(
            choose(SeatMode::Logind, &seat, &[helper(2, 1001, "3")]).map(|h| h.conn),
            Ok(2)
        );
    }

    #[test]
    fn a_managed_helper_is_not_asked_for_a_remote_session() {
        let mut s = session("3", 1001);
        s.remote = true;
        assert!(choose(SeatMode::Logind, &seat(s), &[managed(1, 1001, Some(1001))]).is_err());
    }

    #[test]
    fn a_helper_in_another_session_of_the_user_stays_refused() {
        // SSH or a second login: it has a session, not the active one; its
        // user manager serving the active session changes nothing.
        let mut h = helper(1, 1001, "7");
        h.manager_of = Some(1001);
        assert!(choose(SeatMode::Logind, &seat(session("3", 1001)), &[h]).is_err());
    }

    #[test]
    fn a_session_helper_and_a_managed_helper_of_the_same_user_are_ambiguous() {
        let seat = seat(session("3", 1001));
        let hs = [helper(1, 1001, "3"), managed(2, 1001, Some(1001))];
        assert!(choose(SeatMode::Logind, &seat, &hs).is_err());
    }

    #[test]
    fn a_wayland_session_is_unsupported_and_its_helper_is_told() {
        let mut s = session("3", 1001);
        s.kind = "wayland".into();
        let seat = seat(s);
        let hs = [helper(1, 1001, "3"), helper(2, 1000, "9")];
        let told = unsupported(SeatMode::Logind, &seat, &hs);
        assert_eq!(told.map(|h| h.map(|h| h.conn)), Some(Some(1)));
        // No helper there: still unsupported, nobody to tell.
        assert_eq!(
            unsupported(SeatMode::Logind, &seat, &hs[1..]).map(|h| h.is_none()),
            Some(true)
        );
        // A locked Wayland session is nobody (no_user), not unsupported.
        let mut locked = seat.clone();
        locked.active.as_mut().unwrap().locked = true;
        assert!(unsupported(SeatMode::Logind, &locked, &hs).is_none());
    }

    #[test]
    fn a_helper_that_says_wayland_is_unsupported_in_x11_and_single_modes() {
        let mut h = helper(1, 1001, "3");
        h.wayland = true;
        let x11 = seat(session("3", 1001));
        assert!(unsupported(SeatMode::Logind, &x11, [&h]).is_some());
        assert!(unsupported(SeatMode::Single, &SeatView::default(), [&h]).is_some());
        h.wayland = false;
        assert!(unsupported(SeatMode::Logind, &x11, [&h]).is_none());
        assert!(unsupported(SeatMode::Single, &SeatView::default(), [&h]).is_none());
    }

    #[test]
    fn a_gnome_wayland_session_whose_helper_has_mutter_is_shared() {
        let mut s = session("3", 1001);
        s.kind = "wayland".into();
        let wayland = seat(s);
        let mut h = helper(1, 1001, "3");
        h.wayland = true;
        h.mutter = true;
        assert!(unsupported(SeatMode::Logind, &wayland, [&h]).is_none());
        assert!(unsupported(SeatMode::Single, &SeatView::default(), [&h]).is_none());
        // Mutter in another helper's session does not share hers.
        let mut other = helper(2, 1000, "9");
        other.mutter = true;
        h.mutter = false;
        assert!(unsupported(SeatMode::Logind, &wayland, [&h, &other]).is_some());
        // Two helpers answer there: nobody can say which one asks.
        h.mutter = true;
        let mut twin = helper(3, 1001, "3");
        twin.mutter = true;
        assert_eq!(
            unsupported(SeatMode::Logind, &wayland, [&h, &twin]).map(|t| t.is_none()),
            Some(true)
        );
    }
}
