//! The running `accord connect` says what ended its session and when the
//! mode changes, from its watch of the session: a second
//! connection admitted only from the session's own certificate.
//!
//! These run the real `connect::run` in-process against the in-process
//! agent (scripted prompter, stub VNC server) and print its progress and
//! end through the same `Reporter` `accord connect` prints with.

mod common;

use accord::broker::{Answer, EndReason};
use accord::connect::text::{self, Lang, Reporter};
use accord::connect::watch::Watch;
use accord::connect::{self, ConnectConfig, ConnectError, Ending, Progress};
use accord::policy::Policy;
use accord::protocol::{Mode, RefusalCode};
use common::*;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use uuid::Uuid;

/// A running `connect::run`, its progress, and a viewer on its tunnel.
struct Tunnel {
    events: Arc<Mutex<Vec<Progress>>>,
    task: tokio::task::JoinHandle<Result<Ending, ConnectError>>,
    session: Uuid,
    viewer: Option<TcpStream>,
}

async fn open(cfg: ConnectConfig) -> Tunnel {
    let events = Arc::new(Mutex::new(Vec::new()));
    let ev = events.clone();
    let task = tokio::spawn(async move {
        let mut progress = |p: Progress| ev.lock().unwrap().push(p);
        connect::run(&cfg, None, &mut progress).await
    });
    let mut accepted: Option<(SocketAddr, Uuid)> = None;
    for _ in 0..500 {
        accepted = events.lock().unwrap().iter().find_map(|p| match p {
            Progress::Accepted {
                listen, session, ..
            } => Some((*listen, *session)),
            _ => None,
        });
        if accepted.is_some() || task.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Some((listen, session)) = accepted else {
        panic!("not accepted: {:?}", task.await);
    };
    // A viewer through the tunnel, past the handshake and the stub's Bell:
    // the session relays.
    let (mut viewer, _) = rfb_viewer(listen).await.unwrap();
    let mut bell = [0u8; 1];
    viewer.read_exact(&mut bell).await.unwrap();
    Tunnel {
        events,
        task,
        session,
        viewer: Some(viewer),
    }
}

impl Tunnel {
    fn events(&self) -> Vec<Progress> {
        self.events.lock().unwrap().clone()
    }

    /// Waits for the end; returns how it ended and what `accord connect`
    /// prints, in English and in French.
    async fn end(self) -> (Ending, String, String) {
        let Tunnel {
            events,
            task,
            viewer,
            ..
        } = self;
        let ending = tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("the tunnel ends")
            .unwrap()
            .expect("a session that ran ends Ok");
        drop(viewer);
        let events = events.lock().unwrap().clone();
        let en = printed(Lang::En, &events, &ending);
        let fr = printed(Lang::Fr, &events, &ending);
        (ending, en, fr)
    }
}

/// What `accord connect` prints (not on a terminal): its progress lines,
/// then the end.
fn printed(lang: Lang, events: &[Progress], ending: &Ending) -> String {
    let mut buf = Vec::new();
    {
        let mut r = Reporter::new(&mut buf, lang, false);
        for e in events {
            r.progress(e);
        }
        r.line(&text::session_end(lang, ending));
    }
    String::from_utf8(buf).unwrap()
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap_or_default()
}

async fn agent_with(
    answers: usize,
    tune: impl FnOnce(&mut Policy),
) -> (Pki, RfbStub, RunningAgent) {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    tune(&mut policy);
    let steps = (0..answers).map(|_| Step::Answer(Answer::Control, Duration::ZERO));
    let agent = RunningAgent::start(policy, ScriptedPrompter::new(steps)).await;
    (pki, stub, agent)
}

/// The sentence each reason must print (fragments from the
/// DESIGN reason names), in English and French.
fn expected(r: EndReason) -> (&'static str, &'static str) {
    match r {
        EndReason::User => (
            "session ended by the workstation's user",
            "session terminée par l'utilisateur du poste",
        ),
        EndReason::Technician => ("you closed the viewer", "vous avez fermé la visionneuse"),
        EndReason::Idle => ("inactivity (idle)", "inactivité (idle)"),
        EndReason::MaxDuration => ("maximum duration", "durée maximale"),
        EndReason::ScreenLocked => ("screen was locked", "écran verrouillé"),
        EndReason::UserSwitched => ("user switch", "changement d'utilisateur"),
        EndReason::Upstream => ("screen-sharing server", "serveur de partage d'écran"),
        EndReason::AgentStopped => ("agent stopped", "agent arrêté"),
        EndReason::UiLost => ("Accord's window", "fenêtre d'Accord"),
        EndReason::Protocol => ("cannot check", "ne sait pas vérifier"),
        EndReason::NotConfirmed => ("did not confirm", "n'a pas confirmé"),
    }
}

fn assert_told(r: EndReason, ending: &Ending, en: &str, fr: &str) {
    assert_eq!(ending, &Ending::Told(r), "{en}");
    let (want_en, want_fr) = expected(r);
    assert!(last_line(en).contains(want_en), "{r:?}: {en}");
    assert!(last_line(fr).contains(want_fr), "{r:?}: {fr}");
    assert!(
        last_line(en).starts_with("accord connect: session ended"),
        "{en}"
    );
}

/// Every reason the agent can end a session with reaches the technician
/// (ended through `SessionControl::end_with`, as the seat, lock watcher and
/// shutdown do), one session after another on one agent: each watch frees
/// its place for the next session's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_end_reason_is_told_with_its_sentence() {
    let (pki, _stub, mut agent) = agent_with(EndReason::ALL.len(), |p| {
        p.consent.max_prompts_per_technician_per_hour = 20;
    })
    .await;
    for r in EndReason::ALL {
        let t = open(pki.connect_config(agent.addr, Mode::Control)).await;
        agent.ctl.end_with(r);
        let (ending, en, fr) = t.end().await;
        assert_told(r, &ending, &en, &fr);
        assert_eq!(
            ending.exit_code(),
            match r {
                EndReason::Upstream | EndReason::AgentStopped | EndReason::Protocol => 7,
                EndReason::UiLost => 6,
                _ => 0,
            }
        );
        agent.wait_event("session_ended", "why", r.as_str()).await;
        // The next prompt only once this session is fully over.
        for _ in 0..200 {
            if matches!(
                agent.ctl.state().borrow().activity,
                accord::broker::Activity::Idle
            ) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_is_told() {
    let (pki, _stub, mut agent) = agent_with(1, |p| {
        p.session.idle_timeout = Duration::from_secs(1);
    })
    .await;
    let t = open(pki.connect_config(agent.addr, Mode::Control)).await;
    let (ending, en, fr) = t.end().await;
    assert_told(EndReason::Idle, &ending, &en, &fr);
    assert_eq!(ending.exit_code(), 0);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_duration_is_told() {
    let (pki, _stub, mut agent) = agent_with(1, |p| {
        p.session.max_duration = Duration::from_secs(1);
    })
    .await;
    let t = open(pki.connect_config(agent.addr, Mode::View)).await;
    let (ending, en, fr) = t.end().await;
    assert_told(EndReason::MaxDuration, &ending, &en, &fr);
    assert_eq!(ending.exit_code(), 0);
    agent.stop().await;
}

/// The technician closes the viewer: the agent records it, and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_the_viewer_is_told() {
    let (pki, _stub, mut agent) = agent_with(1, |_| {}).await;
    let mut t = open(pki.connect_config(agent.addr, Mode::Control)).await;
    drop(t.viewer.take());
    let (ending, en, fr) = t.end().await;
    assert_told(EndReason::Technician, &ending, &en, &fr);
    agent.stop().await;
}

/// Accord stopping on the workstation: exit 7 (retry later), as a
/// refusal `agent_shutting_down` would be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_stopping_is_told() {
    let (pki, _stub, mut agent) = agent_with(1, |_| {}).await;
    let t = open(pki.connect_config(agent.addr, Mode::Control)).await;
    agent.stop().await;
    let (ending, en, fr) = t.end().await;
    assert_told(EndReason::AgentStopped, &ending, &en, &fr);
    assert_eq!(ending.exit_code(), 7);
}

/// Mode changes are printed when they happen: the clinician switches to
/// view only, then grants the technician's request for control.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_changes_are_printed_when_they_happen() {
    let (pki, _stub, mut agent) = agent_with(2, |_| {}).await;
    let t = open(pki.connect_config(agent.addr, Mode::Control)).await;
    let changes = |t: &Tunnel| {
        t.events()
            .into_iter()
            .filter(|p| matches!(p, Progress::ModeChanged { .. }))
            .collect::<Vec<_>>()
    };
    assert!(changes(&t).is_empty());

    agent.ctl.set_view_only();
    let want_view = Progress::ModeChanged {
        mode: Mode::View,
        by_user: true,
    };
    for _ in 0..250 {
        if !changes(&t).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        changes(&t),
        std::slice::from_ref(&want_view),
        "printed at once"
    );

    let cfg = pki.connect_config(agent.addr, Mode::Control);
    connect::request_control(&cfg, t.session, &mut |_| {})
        .await
        .expect("control granted");
    let want_control = Progress::ModeChanged {
        mode: Mode::Control,
        by_user: true,
    };
    for _ in 0..250 {
        if changes(&t).len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(changes(&t), [want_view, want_control]);

    agent.ctl.end();
    let (ending, en, fr) = t.end().await;
    assert_told(EndReason::User, &ending, &en, &fr);
    assert!(
        en.contains("accord connect: switched to view only by the workstation's user"),
        "{en}"
    );
    assert!(
        en.contains("accord connect: control granted by the workstation's user"),
        "{en}"
    );
    assert!(
        fr.contains("accord connect: passé en affichage seul par l'utilisateur du poste"),
        "{fr}"
    );
    // The order: accepted, view only, control, end.
    let lines: Vec<&str> = en.lines().collect();
    let at = |needle: &str| lines.iter().position(|l| l.contains(needle)).unwrap();
    assert!(at("accepted (control)") < at("switched to view only"));
    assert!(at("switched to view only") < at("control granted by"));
    assert!(at("control granted by") < at("session ended by"));
    agent.stop().await;
}

/// A watch is admitted only from the running session's own certificate,
/// once; a foreign or unknown one is refused like a foreign request for
/// control, and recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_from_another_certificate_is_refused() {
    let (pki, _stub, mut agent) = agent_with(1, |_| {}).await;
    let t = open(pki.connect_config(agent.addr, Mode::Control)).await;

    let (cert, key) = pki.technician("paul", "Paul Durand", 30);
    let mut other = pki.connect_config(agent.addr, Mode::Control);
    other.cert = cert;
    other.key = key;
    match Watch::open(&other, t.session).await {
        Err(ConnectError::Refused(RefusalCode::BadRequest)) => {}
        Err(e) => panic!("expected bad_request, got {e:?}"),
        Ok(_) => panic!("a watch from another certificate was admitted"),
    }
    agent
        .wait_foreign_rejection("CN=Paul Durand,O=Helpdesk CHU")
        .await;

    // Same certificate, but the session already has its watcher (the
    // running `accord connect`'s): busy.
    let own = pki.connect_config(agent.addr, Mode::Control);
    match Watch::open(&own, t.session).await {
        Err(ConnectError::Refused(RefusalCode::Busy)) => {}
        Err(e) => panic!("expected busy, got {e:?}"),
        Ok(_) => panic!("a second watch was admitted"),
    }
    // A session that is not running.
    match Watch::open(&own, Uuid::new_v4()).await {
        Err(ConnectError::Refused(RefusalCode::BadRequest)) => {}
        Err(e) => panic!("expected bad_request, got {e:?}"),
        Ok(_) => panic!("a watch of an unknown session was admitted"),
    }
    // None of it disturbed the clinician or the session.
    assert_eq!(agent.prompter.asked(), 1);
    assert!(
        !agent
            .events()
            .iter()
            .any(|e| e == "session_ended" || e == "mode_changed")
    );

    agent.ctl.end();
    let (ending, ..) = t.end().await;
    assert_eq!(ending, Ending::Told(EndReason::User));
    agent.stop().await;
}

/// The watch is the session's own: once it is over, a watch of it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ended_session_cannot_be_watched() {
    let (pki, _stub, mut agent) = agent_with(1, |_| {}).await;
    let t = open(pki.connect_config(agent.addr, Mode::Control)).await;
    let session = t.session;
    agent.ctl.end();
    let _ = t.end().await;
    let cfg = pki.connect_config(agent.addr, Mode::Control);
    assert!(matches!(
        Watch::open(&cfg, session).await,
        Err(ConnectError::Refused(RefusalCode::BadRequest))
    ));
    agent.stop().await;
}
