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

use accord::seat::logind::Logind;
use accord::seat::rule::{HelperId, SeatMode, SeatView, choose};
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
        screensaver: false,
        unavailable: false,
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
            active: Some(session("2", 1000))
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
        choose(SeatMode::Logind, &rx.borrow(), &[helper(1000, "2")]).map(|h| h.uid),
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
        choose(SeatMode::Logind, &view, &[helper(1000, "5")]).map(|h| h.uid),
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
