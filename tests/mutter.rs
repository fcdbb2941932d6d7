//! Accord's Mutter client (`accord::mutter::session`) against a fake Mutter
//! on a private bus (tests/common/mutter.rs): what it asks Mutter for in each
//! mode, the input it sends, and what ends it.
#![cfg(feature = "mutter")]

mod common;

use std::time::Duration;

use accord::mutter::input::{Axis, BTN_LEFT, Call, Input};
use accord::mutter::session::{CursorMode, End, MutterError, MutterSession, Options};
use accord::protocol::Mode;
use common::bus::Bus;
use common::mutter::{FIRST_NODE, FakeMutter, Seen};
use zbus::Connection;

async fn client(bus: &Bus) -> Connection {
    zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .expect("client on the bus")
}

async fn setup() -> Option<(Bus, FakeMutter, Connection)> {
    let bus = Bus::start()?;
    let mutter = FakeMutter::start(&bus).await;
    let conn = client(&bus).await;
    Some((bus, mutter, conn))
}

async fn ends(session: &MutterSession) -> End {
    tokio::time::timeout(Duration::from_secs(5), session.closed())
        .await
        .expect("closed() resolves")
}

fn some_input() -> Vec<Call> {
    let mut input = Input::new();
    let mut calls = input.pointer(1, 10, 20);
    calls.extend(input.key(true, 0x61));
    calls
}

#[tokio::test]
async fn view_only_opens_no_remote_desktop_session_and_sends_no_input() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let session = MutterSession::open(&conn, Mode::View, Options::default())
        .await
        .expect("view-only session");
    assert_eq!(session.mode(), Mode::View);
    assert_eq!(session.stream().node_id, FIRST_NODE);

    let err = session.apply(&some_input()).await.unwrap_err();
    assert!(matches!(err, MutterError::ViewOnly), "{err}");

    let seen = mutter.seen();
    assert!(
        !seen.iter().any(Seen::is_remote_desktop),
        "a view-only session reached the RemoteDesktop API: {seen:?}"
    );
    let Seen::RecordMonitor { session: cast, .. } = &seen[1] else {
        panic!("{seen:?}");
    };
    assert_eq!(
        seen,
        [
            Seen::ScCreateSession {
                remote_desktop_session_id: None
            },
            Seen::RecordMonitor {
                session: cast.clone(),
                connector: String::new(),
                cursor_mode: Some(1),
            },
            Seen::ScStart(cast.clone()),
        ]
    );
    assert_eq!(mutter.open_sessions(), (0, 1));
}

#[tokio::test]
async fn control_ties_the_screen_cast_to_a_started_remote_desktop_session() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let options = Options {
        connector: "Virtual-1".into(),
        cursor: CursorMode::Metadata,
    };
    let session = MutterSession::open(&conn, Mode::Control, options)
        .await
        .expect("control session");
    assert_eq!(session.mode(), Mode::Control);
    assert_eq!(session.stream().node_id, FIRST_NODE);

    let seen = mutter.seen();
    let [
        Seen::RdCreateSession,
        Seen::ScCreateSession {
            remote_desktop_session_id: Some(id),
        },
        Seen::RecordMonitor {
            session: cast,
            connector,
            cursor_mode,
        },
        Seen::RdStart(remote),
    ] = seen.as_slice()
    else {
        panic!("unexpected calls: {seen:?}");
    };
    assert_eq!(mutter.session_id(remote).as_ref(), Some(id));
    assert!(cast.starts_with("/org/gnome/Mutter/ScreenCast/Session/"));
    assert_eq!(connector, "Virtual-1");
    assert_eq!(*cursor_mode, Some(2));
    assert!(
        session
            .stream()
            .path
            .as_str()
            .starts_with("/org/gnome/Mutter/ScreenCast/Stream/")
    );
    assert_eq!(mutter.open_sessions(), (1, 1));
}

#[tokio::test]
async fn input_reaches_mutter_with_the_stream_and_evdev_codes() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let session = MutterSession::open(&conn, Mode::Control, Options::default())
        .await
        .unwrap();
    let stream = session.stream().path.to_string();
    let mut input = Input::new();
    let mut calls = input.pointer(0b001, 100, 50);
    calls.extend(input.pointer(0b001 | 1 << 4, 100, 50));
    calls.extend(input.key(true, 0xffe3));
    session.apply(&calls).await.expect("input accepted");
    session
        .apply(&input.release_all())
        .await
        .expect("releases accepted");

    let input_seen: Vec<Seen> = mutter
        .seen()
        .into_iter()
        .filter(|s| {
            matches!(
                s,
                Seen::Keysym { .. } | Seen::Motion { .. } | Seen::Button { .. } | Seen::Axis { .. }
            )
        })
        .collect();
    assert_eq!(
        input_seen,
        [
            Seen::Motion {
                stream,
                x: 100.0,
                y: 50.0
            },
            Seen::Button {
                button: BTN_LEFT,
                pressed: true
            },
            Seen::Axis {
                axis: Axis::Vertical as u32,
                steps: 1
            },
            Seen::Keysym {
                keysym: 0xffe3,
                pressed: true
            },
            Seen::Button {
                button: BTN_LEFT,
                pressed: false
            },
            Seen::Keysym {
                keysym: 0xffe3,
                pressed: false
            },
        ]
    );
}

#[tokio::test]
async fn mutter_closing_either_kind_of_session_ends_it() {
    for mode in [Mode::View, Mode::Control] {
        let Some((_bus, mutter, conn)) = setup().await else {
            return;
        };
        let session = MutterSession::open(&conn, mode, Options::default())
            .await
            .unwrap();
        let closed = session.closed();
        mutter.close_all().await;
        let end = tokio::time::timeout(Duration::from_secs(5), closed)
            .await
            .expect("closed() resolves");
        assert_eq!(end, End::Closed, "{mode:?}");
        assert_eq!(ends(&session).await, End::Closed);
    }
}

#[tokio::test]
async fn mutter_leaving_the_bus_ends_it() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let session = MutterSession::open(&conn, Mode::View, Options::default())
        .await
        .unwrap();
    mutter.vanish().await;
    assert_eq!(ends(&session).await, End::MutterGone);
}

#[tokio::test]
async fn closed_waits_while_the_session_runs() {
    let Some((_bus, _mutter, conn)) = setup().await else {
        return;
    };
    let session = MutterSession::open(&conn, Mode::Control, Options::default())
        .await
        .unwrap();
    let waited = tokio::time::timeout(Duration::from_millis(300), session.closed()).await;
    assert!(waited.is_err(), "closed() resolved on its own: {waited:?}");
}

#[tokio::test]
async fn stop_stops_the_session_of_each_mode() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let view = MutterSession::open(&conn, Mode::View, Options::default())
        .await
        .unwrap();
    let closed = view.closed();
    view.stop().await.expect("view-only stop");
    assert!(matches!(mutter.seen().last(), Some(Seen::ScStop(_))));
    assert_eq!(closed.await, End::Stopped);

    let control = MutterSession::open(&conn, Mode::Control, Options::default())
        .await
        .unwrap();
    control.stop().await.expect("control stop");
    assert!(matches!(mutter.seen().last(), Some(Seen::RdStop(_))));
    assert_eq!(mutter.open_sessions(), (0, 0));
}

#[tokio::test]
async fn dropping_stops_the_session() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let control = MutterSession::open(&conn, Mode::Control, Options::default())
        .await
        .unwrap();
    let closed = control.closed();
    drop(control);
    mutter.wait_for(|s| matches!(s, Seen::RdStop(_))).await;
    assert_eq!(closed.await, End::Stopped);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while mutter.open_sessions() != (0, 0) {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn granting_control_opens_a_new_pair_and_stops_the_view_only_cast() {
    let Some((_bus, mutter, conn)) = setup().await else {
        return;
    };
    let mut session = MutterSession::open(&conn, Mode::View, Options::default())
        .await
        .unwrap();
    let closed = session.closed();
    let view_stream = session.stream().clone();
    let view_cast = match &mutter.seen()[..] {
        [_, Seen::RecordMonitor { session, .. }, ..] => session.clone(),
        seen => panic!("{seen:?}"),
    };

    let stream = session.grant_control().await.expect("control").clone();
    assert_ne!(stream, view_stream, "the caller must switch streams");
    assert_eq!(stream.node_id, FIRST_NODE + 1);
    assert_eq!(session.mode(), Mode::Control);

    let seen = mutter.seen();
    assert!(
        matches!(
            &seen[3..],
            [
                Seen::RdCreateSession,
                Seen::ScCreateSession {
                    remote_desktop_session_id: Some(_)
                },
                Seen::RecordMonitor { .. },
                Seen::RdStart(_),
                Seen::ScStop(stopped),
            ] if *stopped == view_cast
        ),
        "{seen:?}"
    );
    assert_eq!(mutter.open_sessions(), (1, 1));

    // The view-only cast's Closed (sent on its Stop) did not end anything.
    let early = tokio::time::timeout(Duration::from_millis(200), session.closed()).await;
    assert!(early.is_err(), "ended by the replaced cast: {early:?}");
    session.apply(&some_input()).await.expect("input accepted");
    assert!(
        mutter
            .seen()
            .iter()
            .any(|s| matches!(s, Seen::Motion { stream: p, .. } if p == stream.path.as_str()))
    );

    // Granting again changes nothing.
    session.grant_control().await.unwrap();
    assert_eq!(mutter.open_sessions(), (1, 1));

    mutter.close_all().await;
    assert_eq!(closed.await, End::Closed);
}

#[tokio::test]
async fn mutter_absent_is_an_error_not_a_hang() {
    let Some(bus) = Bus::start() else { return };
    let conn = client(&bus).await;
    let err = MutterSession::open(&conn, Mode::View, Options::default())
        .await
        .err()
        .expect("no Mutter on the bus");
    assert!(matches!(err, MutterError::Call { .. }), "{err}");
}

mod clipboard {
    //! `accord::mutter::clipboard` against the fake: what each grant lets
    //! through, in which direction, and that a view-only session has none.

    use super::*;
    use accord::mutter::clipboard::Clipboard;
    use accord::policy::Clipboard as Grant;
    use accord::rfb::MAX_CUT_TEXT;

    const UTF8: &str = "text/plain;charset=utf-8";

    async fn control(grant: Grant) -> Option<(Bus, FakeMutter, MutterSession, Clipboard)> {
        let (bus, mutter, conn) = setup().await?;
        let session = MutterSession::open(&conn, Mode::Control, Options::default())
            .await
            .expect("control session");
        let mut clip = Clipboard::new(grant);
        clip.enable(&session).await.expect("clipboard enabled");
        Some((bus, mutter, session, clip))
    }

    fn clipboard_calls(mutter: &FakeMutter) -> Vec<Seen> {
        mutter
            .seen()
            .into_iter()
            .filter(Seen::is_clipboard)
            .collect()
    }

    /// Nothing reaches the viewer within a while.
    async fn nothing_for_the_viewer(clip: &mut Clipboard) {
        let got = tokio::time::timeout(Duration::from_millis(400), clip.from_desktop()).await;
        assert!(got.is_err(), "sent to the viewer: {got:?}");
    }

    async fn for_the_viewer(clip: &mut Clipboard) -> Vec<u8> {
        tokio::time::timeout(Duration::from_secs(5), clip.from_desktop())
            .await
            .expect("the desktop's selection reaches the viewer")
    }

    #[tokio::test]
    async fn grant_none_enables_nothing_and_offers_nothing() {
        let Some((_bus, mutter, _session, mut clip)) = control(Grant::None).await else {
            return;
        };
        assert!(!clip.is_enabled());
        clip.from_viewer(b"h\xe9llo")
            .await
            .expect("dropped quietly");
        mutter.desktop_copies(&[UTF8], b"secret").await;
        nothing_for_the_viewer(&mut clip).await;
        assert_eq!(clipboard_calls(&mutter), []);
    }

    #[tokio::test]
    async fn to_workstation_offers_the_technicians_text_and_reads_nothing() {
        let Some((_bus, mutter, _session, mut clip)) = control(Grant::ToWorkstation).await else {
            return;
        };
        assert!(clip.is_enabled());
        clip.from_viewer(b"h\xe9llo").await.expect("offered");
        mutter.desktop_pastes(UTF8, 7).await;
        mutter
            .wait_for(|s| matches!(s, Seen::SelectionWriteDone { serial: 7, .. }))
            .await;
        assert_eq!(mutter.written(7).await, "héllo".as_bytes());

        mutter
            .desktop_copies(&[UTF8, "text/plain"], b"patient")
            .await;
        nothing_for_the_viewer(&mut clip).await;
        assert_eq!(
            clipboard_calls(&mutter),
            [
                Seen::EnableClipboard,
                Seen::SetSelection {
                    mime_types: vec![UTF8.into(), "text/plain".into()]
                },
                Seen::SelectionWrite(7),
                Seen::SelectionWriteDone {
                    serial: 7,
                    success: true
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_paste_of_nothing_offered_is_refused() {
        let Some((_bus, mutter, _session, _clip)) = control(Grant::ToWorkstation).await else {
            return;
        };
        mutter.desktop_pastes(UTF8, 3).await;
        let done = mutter
            .wait_for(|s| matches!(s, Seen::SelectionWriteDone { .. }))
            .await;
        assert_eq!(
            done,
            Seen::SelectionWriteDone {
                serial: 3,
                success: false
            }
        );
    }

    #[tokio::test]
    async fn both_sends_the_desktops_text_as_latin1() {
        let Some((_bus, mutter, _session, mut clip)) = control(Grant::Both).await else {
            return;
        };
        // The session's own selection (Mutter announces it) is not read.
        clip.from_viewer(b"mine").await.expect("offered");
        nothing_for_the_viewer(&mut clip).await;
        assert!(
            !mutter
                .seen()
                .iter()
                .any(|s| matches!(s, Seen::SelectionRead(_)))
        );

        mutter
            .desktop_copies(&["text/plain", UTF8], "€ and é".as_bytes())
            .await;
        assert_eq!(for_the_viewer(&mut clip).await, b"? and \xe9");
        assert!(mutter.seen().contains(&Seen::SelectionRead(UTF8.into())));

        // Not text: not read.
        mutter.desktop_copies(&["image/png"], b"\x89PNG").await;
        nothing_for_the_viewer(&mut clip).await;
        let reads = mutter
            .seen()
            .iter()
            .filter(|s| matches!(s, Seen::SelectionRead(_)))
            .count();
        assert_eq!(reads, 1);
    }

    #[tokio::test]
    async fn view_only_has_no_clipboard_until_control() {
        let Some((_bus, mutter, conn)) = setup().await else {
            return;
        };
        let mut session = MutterSession::open(&conn, Mode::View, Options::default())
            .await
            .unwrap();
        let mut clip = Clipboard::new(Grant::Both);
        clip.enable(&session).await.expect("nothing to enable");
        assert!(!clip.is_enabled());
        clip.from_viewer(b"typed blind").await.expect("dropped");
        nothing_for_the_viewer(&mut clip).await;
        let seen = mutter.seen();
        assert!(
            !seen.iter().any(Seen::is_remote_desktop),
            "a view-only session reached the RemoteDesktop API: {seen:?}"
        );

        // Control granted: the clipboard comes with the RemoteDesktop side.
        session.grant_control().await.expect("control");
        clip.enable(&session).await.expect("enabled");
        assert!(clip.is_enabled());
        assert_eq!(clipboard_calls(&mutter), [Seen::EnableClipboard]);
    }

    #[tokio::test]
    async fn an_oversized_desktop_selection_is_dropped_and_the_next_one_goes() {
        let Some((_bus, mutter, session, mut clip)) = control(Grant::Both).await else {
            return;
        };
        mutter
            .desktop_copies(&[UTF8], &vec![b'a'; MAX_CUT_TEXT + 1])
            .await;
        mutter
            .wait_for(|s| matches!(s, Seen::SelectionRead(_)))
            .await;
        nothing_for_the_viewer(&mut clip).await;

        let at_the_limit = vec![b'b'; MAX_CUT_TEXT];
        mutter.desktop_copies(&[UTF8], &at_the_limit).await;
        assert_eq!(for_the_viewer(&mut clip).await, at_the_limit);
        let waited = tokio::time::timeout(Duration::from_millis(100), session.closed()).await;
        assert!(waited.is_err(), "the session ended: {waited:?}");
    }
}
