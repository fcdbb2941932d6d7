//! The seat watchers against a real dbus-daemon: a private bus per test, a
//! fake logind (and a fake screen saver) served on it with zbus.
//!
//! Needs `dbus-daemon` (Debian: `dbus`). Without it the tests are skipped
//! loudly, unless `ACCORD_REQUIRE_PEERS=1` (set by CI), where they fail.
#![cfg(feature = "logind")]

mod common;

use common::logind::{Bus, FakeLogind, session};

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use accord::policy::SeatMode;
use accord::seat::logind::Logind;
use accord::seat::rule::{HelperId, SeatView, choose};
use accord::seat::screensaver;
use tokio::sync::watch;
use zbus::interface;
use zbus::object_server::SignalEmitter;

/// Waits until `rx` satisfies `pred`; returns how long it took.
async fn seen<T>(
    rx: &mut watch::Receiver<T>,
    within: Duration,
    pred: impl Fn(&T) -> bool,
) -> Duration {
    let start = Instant::now();
    tokio::time::timeout(within, rx.wait_for(|v| pred(v)))
        .await
        .unwrap_or_else(|_| panic!("not seen within {within:?}"))
        .expect("the watch is running");
    start.elapsed()
}

fn active_id(v: &SeatView) -> Option<&str> {
    v.active.as_ref().map(|s| s.id.as_str())
}

fn helper(uid: u32, session: &str) -> HelperId {
    HelperId {
        conn: 1,
        uid,
        pid: 4242,
        session: Some(session.into()),
        manager_of: None,
        screensaver: false,
        unavailable: false,
        wayland: false,
        mutter: false,
    }
}

const SECOND: Duration = Duration::from_secs(1);

// ------------------------------------------------------------------ tests

#[tokio::test]
async fn session_of_pid_asks_logind() {
    let Some(bus) = Bus::start() else { return };
    let _logind = FakeLogind::start(
        &bus,
        &[session("2", 1000), session("c7", 1001)],
        &[(4242, "2"), (4343, "c7")],
        Some("2"),
    )
    .await;
    let logind = Logind::connect_to(&bus.address).await.unwrap();
    assert_eq!(
        logind.session_of_pid(4242).await.unwrap().as_deref(),
        Some("2")
    );
    assert_eq!(
        logind.session_of_pid(4343).await.unwrap().as_deref(),
        Some("c7")
    );
    assert_eq!(logind.session_of_pid(999).await.unwrap(), None);
    // pid 0 would be the caller's own session: never asked.
    assert_eq!(logind.session_of_pid(0).await.unwrap(), None);
}

/// GNOME and Plasma start autostart entries as user units: logind places
/// the helper in no session, but in its user. Asked through the real
/// watcher and the rule, with logind's answers for each case.
#[tokio::test]
async fn a_helper_of_the_users_manager_answers_for_her_only_graphical_session() {
    use accord::seat::rule::answers_for;
    let Some(bus) = Bus::start() else { return };
    let mut ssh = session("c9", 1000);
    ssh.remote = true;
    ssh.kind = "tty".into();
    let logind = FakeLogind::start(
        &bus,
        &[session("2", 1000), session("3", 1001), ssh],
        &[(5000, "c9")],
        Some("2"),
    )
    .await;
    logind.add_managed_pid(4242, 1000);
    logind.add_managed_pid(4343, 1001);
    let l = Logind::connect_to(&bus.address).await.unwrap();
    assert_eq!(l.session_of_pid(4242).await.unwrap(), None);
    assert_eq!(l.user_of_pid(4242).await.unwrap(), Some(1000));
    assert_eq!(l.user_of_pid(4343).await.unwrap(), Some(1001));
    assert_eq!(l.user_of_pid(999).await.unwrap(), None);
    assert_eq!(l.user_of_pid(0).await.unwrap(), None);

    let mut rx = l.watch_seat("seat0").await.unwrap();
    // uid 1000 has session 2 on the seat (c9 is a remote tty, not counted).
    assert_eq!(rx.borrow_and_update().user_graphical, 1);
    let managed = |uid: u32, pid: u32, of: Option<u32>| HelperId {
        session: None,
        manager_of: of,
        pid,
        ..helper(uid, "")
    };
    let mine = managed(1000, 4242, l.user_of_pid(4242).await.unwrap());
    let theirs = managed(1001, 4343, l.user_of_pid(4343).await.unwrap());
    assert_eq!(
        answers_for(&mine, &rx.borrow()).map(|s| s.id.clone()),
        Some("2".into())
    );
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&mine]).is_ok());
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&theirs]).is_err());
    // Her SSH session's helper: a session, not the active one.
    let ssh_helper = HelperId {
        session: l.session_of_pid(5000).await.unwrap(),
        ..helper(1000, "")
    };
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&ssh_helper]).is_err());

    // The seat switches to the other user: only their managed helper.
    logind.set_active(Some("3")).await;
    seen(&mut rx, SECOND, |v| active_id(v) == Some("3")).await;
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&mine]).is_err());
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&theirs]).is_ok());
}

/// Two graphical sessions of the same user on the seat: a helper in
/// neither cannot tell which screen it shows on, so it is not asked.
#[tokio::test]
async fn a_managed_helper_of_a_user_with_two_graphical_sessions_is_not_asked() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(
        &bus,
        &[session("2", 1000), session("4", 1000)],
        &[(4444, "2")],
        Some("2"),
    )
    .await;
    logind.add_managed_pid(4242, 1000);
    let l = Logind::connect_to(&bus.address).await.unwrap();
    let rx = l.watch_seat("seat0").await.unwrap();
    assert_eq!(rx.borrow().user_graphical, 2);
    let managed = HelperId {
        session: None,
        manager_of: l.user_of_pid(4242).await.unwrap(),
        ..helper(1000, "")
    };
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&managed]).is_err());
    // The helper in the active session itself is.
    let in_session = HelperId {
        session: l.session_of_pid(4444).await.unwrap(),
        ..helper(1000, "")
    };
    assert!(choose(SeatMode::Logind, &rx.borrow(), [&in_session]).is_ok());
}

#[tokio::test]
async fn watch_seat_follows_the_active_session() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(
        &bus,
        &[session("2", 1000), session("3", 1001)],
        &[],
        Some("2"),
    )
    .await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let mut rx = watcher.watch_seat("seat0").await.unwrap();
    assert_eq!(
        *rx.borrow_and_update(),
        SeatView {
            active: Some(session("2", 1000)),
            user_graphical: 1,
        }
    );
    assert_eq!(
        choose(SeatMode::Logind, &rx.borrow(), &[helper(1000, "2")]).map(|h| h.uid),
        Ok(1000)
    );

    logind.set_active(Some("3")).await;
    let took = seen(&mut rx, SECOND, |v| active_id(v) == Some("3")).await;
    eprintln!("ActiveSession 2 -> 3 seen in {took:?}");
    assert_eq!(rx.borrow().active.as_ref().map(|s| s.uid), Some(1001));

    logind.set_active(None).await;
    let took = seen(&mut rx, SECOND, |v| v.active.is_none()).await;
    eprintln!("ActiveSession 3 -> none seen in {took:?}");

    assert!(watcher.watch_seat("seat1").await.is_err(), "no such seat");
}

#[tokio::test]
async fn watch_seat_sees_the_lock() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let mut rx = watcher.watch_seat("seat0").await.unwrap();
    assert!(!rx.borrow_and_update().active.as_ref().unwrap().locked);

    logind.set_locked("2", true).await;
    let took = seen(&mut rx, SECOND, |v| {
        v.active.as_ref().is_some_and(|s| s.locked)
    })
    .await;
    eprintln!("LockedHint=true seen in {took:?}");
    assert_eq!(
        choose(SeatMode::Logind, &rx.borrow(), &[helper(1000, "2")])
            .map(|h| h.uid)
            .map_err(|e| e.to_string()),
        Err("the screen is locked".into())
    );

    logind.set_locked("2", false).await;
    let took = seen(&mut rx, SECOND, |v| {
        v.active.as_ref().is_some_and(|s| !s.locked)
    })
    .await;
    eprintln!("LockedHint=false seen in {took:?}");
}

#[tokio::test]
async fn a_remote_session_is_never_asked() {
    let Some(bus) = Bus::start() else { return };
    let mut ssh = session("5", 1000);
    ssh.remote = true;
    ssh.kind = "x11".into();
    let _logind = FakeLogind::start(&bus, &[ssh], &[(4242, "5")], Some("5")).await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let rx = watcher.watch_seat("seat0").await.unwrap();
    let view = rx.borrow().clone();
    assert!(view.active.as_ref().is_some_and(|s| s.remote));
    assert_eq!(
        choose(SeatMode::Logind, &view, &[helper(1000, "5")])
            .map(|h| h.uid)
            .map_err(|e| e.to_string()),
        Err("the active session is remote".into())
    );
}

#[tokio::test]
async fn logind_gone_means_nobody_then_back() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let mut rx = watcher.watch_seat("seat0").await.unwrap();
    assert_eq!(active_id(&rx.borrow_and_update()), Some("2"));

    logind.stop().await;
    let took = seen(&mut rx, Duration::from_secs(3), |v| {
        *v == SeatView::default()
    })
    .await;
    eprintln!("logind gone seen in {took:?}");

    let _logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let took = seen(&mut rx, Duration::from_secs(6), |v| {
        active_id(v) == Some("2")
    })
    .await;
    eprintln!("logind back seen in {took:?}");
}

/// A hiccup of logind shorter than the grace is not "nobody": a running
/// session must not end `user_switched` because one read failed.
#[tokio::test]
async fn a_short_logind_outage_keeps_the_last_view() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let mut rx = watcher.watch_seat("seat0").await.unwrap();
    assert_eq!(active_id(&rx.borrow_and_update()), Some("2"));
    logind.stop().await;
    let gone = Instant::now();
    // Back before the grace ends.
    tokio::time::sleep(accord::seat::logind::FAIL_GRACE / 2).await;
    let _logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let until = gone + accord::seat::logind::FAIL_GRACE * 2;
    while Instant::now() < until {
        assert_eq!(
            active_id(&rx.borrow()),
            Some("2"),
            "nobody after {:?} of outage",
            gone.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `PropertiesChanged` from anyone but logind is not even delivered: the
/// match names the sender, so a local process cannot make the service read
/// the seat in a loop.
#[tokio::test]
async fn a_forged_properties_changed_is_not_delivered() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let _rx = watcher.watch_seat("seat0").await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = logind.seat_reads.load(Ordering::SeqCst);
    let forger = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    for _ in 0..20 {
        forger
            .emit_signal(
                None::<&str>,
                common::logind::SEAT_PATH,
                "org.freedesktop.DBus.Properties",
                "PropertiesChanged",
                &(
                    "org.freedesktop.login1.Seat",
                    std::collections::HashMap::<&str, zbus::zvariant::Value>::new(),
                    Vec::<&str>::new(),
                ),
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        logind.seat_reads.load(Ordering::SeqCst),
        before,
        "a forged signal made the watch read"
    );
    // logind's own signal still does.
    logind.set_active(Some("2")).await;
    let start = Instant::now();
    while logind.seat_reads.load(Ordering::SeqCst) == before {
        assert!(start.elapsed() < SECOND, "logind's signal is still heard");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_watch_stops_with_its_receivers() {
    let Some(bus) = Bus::start() else { return };
    let logind = FakeLogind::start(&bus, &[session("2", 1000)], &[], Some("2")).await;
    let watcher = Logind::connect_to(&bus.address).await.unwrap();
    let reads = || logind.seat_reads.load(Ordering::SeqCst);
    let rx = watcher.watch_seat("seat0").await.unwrap();
    // While watched, a signal makes the watch read the seat again.
    let before = reads();
    logind.set_active(Some("2")).await;
    let start = Instant::now();
    while reads() == before {
        assert!(start.elapsed() < SECOND, "the watch reads after a signal");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(rx);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = reads();
    logind.set_active(Some("2")).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(reads(), before, "no read once every receiver is gone");
}

// ---------------------------------------------------------- screen saver

struct ScreenSaver {
    active: bool,
}

#[interface(name = "org.freedesktop.ScreenSaver")]
impl ScreenSaver {
    fn get_active(&self) -> bool {
        self.active
    }

    #[zbus(signal)]
    async fn active_changed(emitter: &SignalEmitter<'_>, active: bool) -> zbus::Result<()>;
}

#[tokio::test]
async fn screensaver_active_changed_is_seen() {
    let Some(bus) = Bus::start() else { return };
    let mut rx = screensaver::watch_at(&bus.address).await.unwrap();
    assert!(!*rx.borrow_and_update(), "no screen saver: not active");

    let saver = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .serve_at("/ScreenSaver", ScreenSaver { active: false })
        .unwrap()
        .name("org.freedesktop.ScreenSaver")
        .unwrap()
        .build()
        .await
        .unwrap();
    let iface = saver
        .object_server()
        .interface::<_, ScreenSaver>("/ScreenSaver")
        .await
        .unwrap();
    iface.get_mut().await.active = true;
    ScreenSaver::active_changed(iface.signal_emitter(), true)
        .await
        .unwrap();
    let took = seen(&mut rx, SECOND, |a| *a).await;
    eprintln!("ActiveChanged(true) seen in {took:?}");

    iface.get_mut().await.active = false;
    ScreenSaver::active_changed(iface.signal_emitter(), false)
        .await
        .unwrap();
    let took = seen(&mut rx, SECOND, |a| !*a).await;
    eprintln!("ActiveChanged(false) seen in {took:?}");

    // A screen saver already active when the watch starts.
    iface.get_mut().await.active = true;
    let rx2 = screensaver::watch_at(&bus.address).await.unwrap();
    assert!(*rx2.borrow(), "GetActive read at start");
}
