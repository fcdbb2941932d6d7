//! The consent gateway end to end, in-process: a real agent on 127.0.0.1:0
//! with a scripted prompter, the real `accord connect` code, a demo PKI and a
//! tiny RFB server standing in for the local VNC server.

mod common;

use accord::broker::Answer;
use accord::connect::ConnectError;
use accord::protocol::{Mode, RefusalCode};
use common::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn refused(r: Result<std::net::SocketAddr, ConnectError>) -> RefusalCode {
    match &r {
        // With or without a retry time (rate_limited says when).
        Err(e) => e
            .refusal()
            .unwrap_or_else(|| panic!("expected a refusal, got {e:?}")),
        Ok(_) => panic!("expected a refusal, got {r:?}"),
    }
}

#[tokio::test]
async fn accepted_control_relays_both_ways() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;

    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let local = local.unwrap();
    let (mut viewer, server_init) = rfb_viewer(local).await.unwrap();
    assert!(server_init.ends_with(STUB_NAME));
    let mut bell = [0u8; 1];
    viewer.read_exact(&mut bell).await.unwrap();
    assert_eq!(bell, [2], "server → technician bytes arrive");
    // KeyEvent 'a' down: reaches the server in control mode.
    let key = [4u8, 1, 0, 0, 0, 0, 0, 0x61];
    viewer.write_all(&key).await.unwrap();
    for _ in 0..200 {
        if stub.received().ends_with(&key) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stub.received().ends_with(&key), "{:?}", stub.received());

    let asked = agent.prompter.asked.lock().unwrap()[0].clone();
    assert_eq!(asked.technician.subject, "CN=Jeanne Martin,O=Helpdesk CHU");
    assert_eq!(asked.ticket, "INC-4711");
    assert_eq!(asked.reason, "Imprimante");
    assert_eq!(asked.asked, Mode::Control);
    assert!(asked.control_offered);

    drop(viewer);
    task.await.unwrap().unwrap();
    let ended = agent.wait_event("session_ended", "why", "technician").await;
    assert!(ended["bytes_to_server"].as_u64().unwrap() >= key.len() as u64);
    let d = agent.wait_event("decision", "decision", "accepted").await;
    assert_eq!(d["mode"], "control");
    assert_eq!(d["by"], "user");
    assert_eq!(
        d["technician"]["subject"],
        "CN=Jeanne Martin,O=Helpdesk CHU"
    );
    assert_eq!(
        agent.events(),
        [
            "agent_started",
            "decision",
            "session_started",
            "session_ended"
        ]
    );
    agent.stop().await;
    assert_eq!(agent.events().last().unwrap(), "agent_stopped");
}

#[tokio::test]
async fn accepted_view_and_policy_without_control() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.consent.allow_control = false;
    // The prompter says "control" anyway: never more than was offered.
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let local = local.unwrap();
    assert!(!agent.prompter.asked.lock().unwrap()[0].control_offered);
    let (viewer, _) = rfb_viewer(local).await.unwrap();
    let d = agent.wait_event("decision", "decision", "accepted").await;
    assert_eq!(d["mode"], "view");
    assert_eq!(d["asked"], "control");
    drop(viewer);
    task.await.unwrap().unwrap();
    agent.stop().await;
}

#[tokio::test]
async fn refused_by_the_user() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter =
        ScriptedPrompter::new([Step::Answer(Answer::Refused, Duration::from_millis(50))]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::User);
    assert_eq!(
        *stub.connections.lock().unwrap(),
        0,
        "no upstream before consent"
    );
    let d = agent.wait_event("decision", "decision", "refused").await;
    assert_eq!(d["why"], "user");
    agent.stop().await;
}

#[tokio::test]
async fn no_answer_is_a_refusal() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.consent.timeout = Duration::from_millis(300);
    let mut agent = RunningAgent::start(policy, ScriptedPrompter::new([Step::Never])).await;
    let t = Instant::now();
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::Timeout);
    assert!(t.elapsed() < Duration::from_secs(5));
    let d = agent.wait_event("decision", "by", "timeout").await;
    assert_eq!(d["why"], "timeout");
    // The agent is free again afterwards.
    agent
        .prompter
        .script
        .lock()
        .unwrap()
        .push_back(Step::Answer(Answer::Refused, Duration::ZERO));
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::User);
    agent.stop().await;
}

#[tokio::test]
async fn a_failing_prompter_refuses() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut agent =
        RunningAgent::start(pki.policy(stub.addr), ScriptedPrompter::new([Step::Fail])).await;
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::Policy);
    agent.stop().await;
}

#[tokio::test]
async fn busy_while_prompting_and_while_in_session() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter =
        ScriptedPrompter::new([Step::Answer(Answer::ViewOnly, Duration::from_millis(700))]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let cfg = pki.connect_config(agent.addr, Mode::View);
    let first = tokio::spawn(connect_tunnel(cfg.clone()));
    // Wait until the prompt is up.
    while agent.prompter.asked() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let t = Instant::now();
    let (r, _) = connect_tunnel(cfg.clone()).await;
    assert_eq!(refused(r), RefusalCode::Busy);
    assert!(
        t.elapsed() < Duration::from_millis(600),
        "busy is answered at once"
    );
    let (local, task) = first.await.unwrap();
    let (viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    // In session now.
    let (r, _) = connect_tunnel(cfg).await;
    assert_eq!(refused(r), RefusalCode::Busy);
    assert_eq!(
        agent.prompter.asked(),
        1,
        "busy requests never reach the prompt"
    );
    drop(viewer);
    task.await.unwrap().unwrap();
    agent.stop().await;
}

#[tokio::test]
async fn rate_limited_per_technician() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.consent.max_prompts_per_technician_per_hour = 2;
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::Refused, Duration::ZERO),
        Step::Answer(Answer::Refused, Duration::ZERO),
        Step::Answer(Answer::Refused, Duration::ZERO),
    ]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let cfg = pki.connect_config(agent.addr, Mode::View);
    for _ in 0..2 {
        let (r, _) = connect_tunnel(cfg.clone()).await;
        assert_eq!(refused(r), RefusalCode::User);
    }
    let (r, _) = connect_tunnel(cfg.clone()).await;
    // The refusal says when: an hour after the first of the two prompts.
    match &r {
        Err(ConnectError::RefusedUntil {
            why: RefusalCode::RateLimited,
            retry_at,
        }) => {
            let left = retry_at
                .duration_since(std::time::SystemTime::now())
                .unwrap();
            assert!(
                left > Duration::from_secs(3500) && left <= Duration::from_secs(3601),
                "{left:?}"
            );
        }
        other => panic!("expected rate_limited with a retry time, got {other:?}"),
    }
    assert_eq!(refused(r), RefusalCode::RateLimited);
    assert_eq!(agent.prompter.asked(), 2);
    // Another technician is not affected.
    let (cert, key) = pki.technician("other", "Paul Durand", 30);
    let mut other = cfg.clone();
    other.cert = cert;
    other.key = key;
    let (r, _) = connect_tunnel(other).await;
    assert_eq!(refused(r), RefusalCode::User);
    agent
        .wait_event("request_rejected", "why", "rate_limited")
        .await;
    agent.stop().await;
}

#[tokio::test]
async fn kill_switch_closes_the_technician_at_once() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let mut bell = [0u8; 1];
    viewer.read_exact(&mut bell).await.unwrap();
    let t = Instant::now();
    agent.ctl.end();
    let rest = read_to_end(&mut viewer).await;
    let took = t.elapsed();
    assert!(rest.is_empty());
    assert!(took < Duration::from_secs(2), "closed after {took:?}");
    task.await.unwrap().unwrap();
    let e = agent.wait_event("session_ended", "why", "user").await;
    assert!(e["duration_ms"].as_u64().is_some());
    // The upstream leg is closed too.
    tokio::time::timeout(Duration::from_secs(2), stub.closed.notified())
        .await
        .ok();
    agent.stop().await;
}

#[tokio::test]
async fn idle_and_max_duration_end_sessions() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.session.idle_timeout = Duration::from_millis(400);
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::ViewOnly, Duration::ZERO),
        Step::Answer(Answer::ViewOnly, Duration::ZERO),
    ]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let rest = read_to_end(&mut viewer).await;
    assert_eq!(rest, [2], "only the bell, then closed");
    task.await.unwrap().unwrap();
    agent.wait_event("session_ended", "why", "idle").await;
    agent.stop().await;

    let mut policy = pki.policy(stub.addr);
    policy.session.max_duration = Duration::from_millis(500);
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::ViewOnly, Duration::ZERO)]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    // Keep it busy: activity does not extend the hard limit.
    let busy = tokio::spawn(async move {
        let fbur = [3u8, 1, 0, 0, 0, 0, 0, 64, 0, 48];
        let mut i = 0;
        while viewer.write_all(&fbur).await.is_ok() && i < 200 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            i += 1;
        }
    });
    task.await.unwrap().unwrap();
    agent
        .wait_event("session_ended", "why", "max_duration")
        .await;
    busy.abort();
    agent.stop().await;
}

#[tokio::test]
async fn upstream_unreachable() {
    let pki = Pki::new();
    // A port with nothing listening.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::ViewOnly, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(free), prompter).await;
    let mut notices = agent.ctl.notices();
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::UpstreamUnreachable);
    let e = agent.wait_event("session_ended", "why", "upstream").await;
    assert!(e["detail"].as_str().is_some());
    // The clinician, who accepted, is told it could not start.
    let n = tokio::time::timeout(Duration::from_secs(5), notices.recv())
        .await
        .expect("a notice")
        .unwrap();
    assert!(
        matches!(
            n,
            accord::broker::Notice::SessionEnded {
                why: accord::broker::EndReason::Upstream,
                ..
            }
        ),
        "{n:?}"
    );
    agent.stop().await;
}

#[tokio::test]
async fn shutdown_refuses_the_prompt_and_ends_the_session() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut agent =
        RunningAgent::start(pki.policy(stub.addr), ScriptedPrompter::new([Step::Never])).await;
    let pending = tokio::spawn(connect_tunnel(pki.connect_config(agent.addr, Mode::View)));
    while agent.prompter.asked() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    agent.stop().await;
    let (r, _) = pending.await.unwrap();
    let code = refused(r);
    assert_eq!(code, RefusalCode::AgentShuttingDown);
    assert_eq!(ConnectError::Refused(code).exit_code(), 7);
    let recs = agent.records();
    assert!(
        recs.iter()
            .any(|r| r["event"] == "decision" && r["why"] == "agent_shutting_down")
    );

    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    agent.stop().await;
    let _ = read_to_end(&mut viewer).await;
    task.await.unwrap().unwrap();
    let names = agent.events();
    assert_eq!(names[names.len() - 2], "session_ended");
    assert!(
        agent
            .records()
            .iter()
            .any(|r| r["event"] == "session_ended" && r["why"] == "agent_stopped")
    );
    assert_eq!(names.last().unwrap(), "agent_stopped");
}

#[tokio::test]
async fn lost_ui_ends_the_session_and_refuses_requests() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    agent.prompter.gone.notify_waiters();
    let _ = read_to_end(&mut viewer).await;
    task.await.unwrap().unwrap();
    agent.wait_event("session_ended", "why", "ui_lost").await;
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::Policy);
    agent.stop().await;
}

#[tokio::test]
async fn no_trace_means_no_consent() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    agent
        .journal
        .fail
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    assert_eq!(refused(r), RefusalCode::Policy);
    assert_eq!(*stub.connections.lock().unwrap(), 0);
    agent.stop().await;
}

#[tokio::test]
async fn allow_list_filters_technicians() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.technicians.allow = vec![accord::policy::AllowEntry::Subject(
        "CN=Paul Durand,O=Helpdesk CHU".into(),
    )];
    let mut agent = RunningAgent::start(policy, ScriptedPrompter::new([])).await;
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::Policy);
    assert_eq!(agent.prompter.asked(), 0);
    agent.wait_event("request_rejected", "why", "policy").await;
    agent.stop().await;
}

/// With the real audit log: the decision is durable before the technician
/// hears it, and the chain verifies after a whole session.
#[tokio::test]
async fn audit_log_holds_the_whole_session() {
    use accord::broker::Broker;
    use accord::listener::Listener;
    use std::sync::Arc;
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let policy = pki.policy(stub.addr);
    let log_path = policy.audit_path();
    let journal = accord::engine::open_journal(&policy);
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::ViewOnly, Duration::ZERO),
        Step::Answer(Answer::Refused, Duration::ZERO),
    ]);
    let broker = Broker::new(Arc::new(policy), journal, prompter);
    let agent = Listener::bind(broker).await;
    let addr = agent.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));

    let (local, tunnel) = connect_tunnel(pki.connect_config(addr, Mode::View)).await;
    // Accepted: the decision is already on disk.
    let on_disk = std::fs::read_to_string(&log_path).unwrap();
    assert!(on_disk.contains("\"decision\":\"accepted\""), "{on_disk}");
    assert!(
        on_disk.contains("\"event\":\"session_started\""),
        "{on_disk}"
    );
    let (viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    drop(viewer);
    tunnel.await.unwrap().unwrap();
    let (r, _) = connect_tunnel(pki.connect_config(addr, Mode::Control)).await;
    assert_eq!(refused(r), RefusalCode::User);
    let _ = stop.send(());
    task.await.unwrap();

    let summary = accord::audit::verify_file(&log_path).unwrap();
    let records = accord::audit::read_records(&log_path).unwrap();
    let events: Vec<&str> = records
        .iter()
        .map(|r| r["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        [
            "agent_started",
            "decision",
            "session_started",
            "session_ended",
            "decision",
            "agent_stopped"
        ]
    );
    assert_eq!(summary.records, 6);
    assert_eq!(
        records[1]["technician"]["subject"],
        "CN=Jeanne Martin,O=Helpdesk CHU"
    );
    assert_eq!(records[3]["why"], "technician");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&log_path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}

/// A log found altered at start: the agent refuses every request (and
/// never rewrites the file).
#[tokio::test]
async fn tampered_log_refuses_requests() {
    use accord::broker::Broker;
    use accord::listener::Listener;
    use std::sync::Arc;
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let policy = pki.policy(stub.addr);
    let log_path = policy.audit_path();
    {
        let journal = accord::engine::open_journal(&policy);
        for _ in 0..3 {
            journal
                .record(&accord::broker::Event::AgentStopped)
                .unwrap();
        }
    }
    let original = std::fs::read_to_string(&log_path).unwrap();
    let forged = original.replacen("agent_stopped", "agent_stoppex", 1);
    std::fs::write(&log_path, &forged).unwrap();

    let journal = accord::engine::open_journal(&policy);
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let broker = Broker::new(Arc::new(policy), journal, prompter.clone());
    let agent = Listener::bind(broker).await;
    let addr = agent.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));
    let (r, _) = connect_tunnel(pki.connect_config(addr, Mode::Control)).await;
    assert_eq!(refused(r), RefusalCode::Policy);
    assert_eq!(prompter.asked(), 0);
    let _ = stop.send(());
    task.await.unwrap();
    let after = std::fs::read_to_string(&log_path).unwrap();
    assert!(after.starts_with(&forged), "never truncated or rewritten");
}

// ---------------------------------------------------------------------------
// Issue 10: release on every ending, idle = technician input, the kill
// switch while connecting, input bounded in flight.
// ---------------------------------------------------------------------------

const CTRL_DOWN: [u8; 8] = [4, 1, 0, 0, 0, 0, 0xff, 0xe3];
const CTRL_UP: [u8; 8] = [4, 0, 0, 0, 0, 0, 0xff, 0xe3];
const BUTTON1_AT_10_20: [u8; 6] = [5, 1, 0, 10, 0, 20];
const NO_BUTTON_AT_10_20: [u8; 6] = [5, 0, 0, 10, 0, 20];

async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    KillSwitch,
    Hangup,
    Idle,
    MaxDuration,
    Protocol,
    ViewOnlyThenKill,
}

/// Ctrl and button 1 pressed through the tunnel in control, then the
/// session ends: the server must get Ctrl up and the button released.
async fn held_input_is_released(how: Ending) {
    let pki = Pki::new();
    let server = FakeServer::start(FakeConfig::new(64, 48, Frames::None)).await;
    let mut policy = pki.policy(server.addr);
    match how {
        Ending::Idle => policy.session.idle_timeout = Duration::from_millis(600),
        Ending::MaxDuration => policy.session.max_duration = Duration::from_millis(800),
        _ => {}
    }
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    viewer.write_all(&CTRL_DOWN).await.unwrap();
    viewer.write_all(&BUTTON1_AT_10_20).await.unwrap();
    wait_until("the press at the server", || {
        server.bytes().ends_with(&BUTTON1_AT_10_20)
    })
    .await;
    let pressed = server.bytes().len();
    let why = match how {
        Ending::KillSwitch => {
            agent.ctl.end();
            "user"
        }
        Ending::ViewOnlyThenKill => {
            agent.ctl.set_view_only();
            wait_until("the release on control → view", || {
                server.bytes().len() >= pressed + 14
            })
            .await;
            agent.ctl.end();
            "user"
        }
        Ending::Hangup => "technician",
        Ending::Idle => "idle",
        Ending::MaxDuration => "max_duration",
        Ending::Protocol => {
            viewer.write_all(&[77]).await.unwrap();
            "protocol"
        }
    };
    if !matches!(how, Ending::Hangup) {
        let _ = read_to_end(&mut viewer).await;
    }
    drop(viewer);
    let _ = task.await;
    agent.wait_event("session_ended", "why", why).await;
    let after = client_messages(&server.bytes()[pressed..]);
    assert!(
        after.contains(&CTRL_UP.to_vec()) && after.contains(&NO_BUTTON_AT_10_20.to_vec()),
        "{how:?}: the server got {after:?} after the press"
    );
    // The upstream leg is closed once the session is over.
    wait_until("the server leg closed", || {
        server.closed.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    agent.stop().await;
}

#[tokio::test]
async fn kill_switch_releases_held_keys_and_buttons() {
    held_input_is_released(Ending::KillSwitch).await;
}

#[tokio::test]
async fn technician_hangup_releases_held_keys_and_buttons() {
    held_input_is_released(Ending::Hangup).await;
}

#[tokio::test]
async fn idle_releases_held_keys_and_buttons() {
    held_input_is_released(Ending::Idle).await;
}

#[tokio::test]
async fn max_duration_releases_held_keys_and_buttons() {
    held_input_is_released(Ending::MaxDuration).await;
}

#[tokio::test]
async fn protocol_error_releases_held_keys_and_buttons() {
    held_input_is_released(Ending::Protocol).await;
}

#[tokio::test]
async fn view_only_switch_releases_then_kill_ends() {
    held_input_is_released(Ending::ViewOnlyThenKill).await;
}

/// A server that stops reading cannot delay the end: the release is tried
/// for a bounded time (see also `rfb_io`'s unit test with a writer that
/// never accepts a byte), then both legs close.
#[tokio::test]
async fn a_stuck_server_does_not_delay_the_kill_switch() {
    let pki = Pki::new();
    let mut cfg = FakeConfig::new(64, 48, Frames::None);
    cfg.stuck = true;
    let server = FakeServer::start(cfg).await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(server.addr), prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let (mut vr, mut vw) = viewer.into_split();
    // Key presses the server never reads (paced, so they mostly wait in
    // Accord, where the end drops them).
    let flood = tokio::spawn(async move {
        let mut k = 0u32;
        loop {
            let mut m = vec![4u8, 1, 0, 0];
            m.extend_from_slice(&(0x61 + k % 26).to_be_bytes());
            k += 1;
            if vw.write_all(&m).await.is_err() {
                return;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t = Instant::now();
    agent.ctl.end();
    let _ = read_to_end(&mut vr).await;
    agent.wait_event("session_ended", "why", "user").await;
    let took = t.elapsed();
    println!(
        "stuck server: session ended {} ms after the kill switch",
        took.as_millis()
    );
    assert!(took < Duration::from_millis(1500), "ended after {took:?}");
    flood.abort();
    let _ = task.await;
    agent.stop().await;
}

/// T10 counts the technician's input, not bytes: a screen that keeps
/// changing does not keep an abandoned session alive.
#[tokio::test]
async fn idle_ends_a_session_whose_screen_keeps_changing() {
    let pki = Pki::new();
    let server = FakeServer::start(FakeConfig::new(
        64,
        48,
        Frames::Push(Duration::from_millis(50)),
    ))
    .await;
    let mut policy = pki.policy(server.addr);
    policy.session.idle_timeout = Duration::from_millis(700);
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::ViewOnly, Duration::ZERO)]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let t = Instant::now();
    let got = read_to_end(&mut viewer).await;
    let took = t.elapsed();
    assert!(
        got.len() > 64 * 48 * 4 * 3,
        "updates kept coming: {} B",
        got.len()
    );
    assert!(took < Duration::from_secs(5), "ended after {took:?}");
    let _ = task.await;
    agent.wait_event("session_ended", "why", "idle").await;
    agent.stop().await;
}

/// Pointer motion over a view-only viewer is the technician's activity,
/// even though it is dropped: the session stays; when it stops, idle ends it.
#[tokio::test]
async fn pointer_motion_in_view_only_keeps_the_session_alive() {
    let pki = Pki::new();
    let server = FakeServer::start(FakeConfig::new(
        64,
        48,
        Frames::Push(Duration::from_millis(50)),
    ))
    .await;
    let mut policy = pki.policy(server.addr);
    policy.session.idle_timeout = Duration::from_millis(600);
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::ViewOnly, Duration::ZERO)]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    let (viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let (mut vr, mut vw) = viewer.into_split();
    let reader = tokio::spawn(async move { read_to_end(&mut vr).await.len() });
    for i in 0..20u16 {
        vw.write_all(&[5, 0, 0, i as u8, 0, 20]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !agent.events().contains(&"session_ended".to_string()),
        "ended while the technician was moving: {:?}",
        agent.records()
    );
    let t = Instant::now();
    agent.wait_event("session_ended", "why", "idle").await;
    println!("idle after the last motion: {} ms", t.elapsed().as_millis());
    assert!(
        client_messages(&server.bytes()).iter().all(|m| m[0] != 5),
        "no pointer event reached the server in view-only"
    );
    let _ = reader.await;
    let _ = task.await;
    agent.stop().await;
}

/// The kill switch works from the moment of acceptance: during the
/// upstream connect and handshake (a server that waits 10 s before its
/// version string), `end` ends it and the UI sees a session to end.
#[tokio::test]
async fn kill_switch_works_while_connecting_to_the_server() {
    use accord::broker::Activity;
    let pki = Pki::new();
    let mut cfg = FakeConfig::new(64, 48, Frames::None);
    cfg.hello_delay = Duration::from_secs(10);
    let server = FakeServer::start(cfg).await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(server.addr), prompter).await;
    let pending = tokio::spawn(connect_tunnel(
        pki.connect_config(agent.addr, Mode::Control),
    ));
    wait_until("the upstream connection", || {
        server.accepted.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    // What `accord end` looks at to answer `ended: true`.
    assert!(matches!(
        agent.ctl.state().borrow().activity,
        Activity::InSession(_)
    ));
    let t = Instant::now();
    agent.ctl.end();
    let (r, _) = pending.await.unwrap();
    assert_eq!(refused(r), RefusalCode::User);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let e = agent.wait_event("session_ended", "why", "user").await;
    assert!(e["detail"].as_str().unwrap().contains("connecting"));
    assert!(!agent.events().contains(&"session_started".to_string()));
    wait_until("the server leg closed", || {
        server.closed.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    agent.stop().await;
}

/// Input cannot outlive a decision: a viewer floods pointer (or key) events at a
/// server that reads slowly; after the switch to view-only nothing more
/// reaches the server beyond what was already in flight (≤ 100 ms, given
/// generous room here for a loaded machine).
async fn flood_a_slow_server_then_switch(keys: bool) {
    let pki = Pki::new();
    let mut cfg = FakeConfig::new(64, 48, Frames::None);
    cfg.read_per_ms = Some(60); // 60 kB/s: ten pointer events per ms
    let server = FakeServer::start(cfg).await;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let mut agent = RunningAgent::start(pki.policy(server.addr), prompter).await;
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let (mut vr, mut vw) = viewer.into_split();
    let reader = tokio::spawn(async move { read_to_end(&mut vr).await.len() });
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut x = 0u16;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            let mut batch = Vec::with_capacity(6 * 256);
            for _ in 0..256 {
                x = x.wrapping_add(1) % 64;
                if keys {
                    // Key transitions are never merged: only pacing bounds them.
                    batch.extend_from_slice(&[4, (x % 2) as u8, 0, 0, 0, 0, 0, 0x61]);
                } else {
                    batch.extend_from_slice(&[5, 0, 0, x as u8, 0, 7]);
                }
            }
            if vw.write_all(&batch).await.is_err() {
                break;
            }
            sent += batch.len() as u64;
        }
        (sent, vw)
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let switch = std::time::Instant::now();
    agent.ctl.set_view_only();
    let (sent, vw) = flood.await.unwrap();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let lag = server
        .last_arrival()
        .map(|t| t.saturating_duration_since(switch))
        .unwrap_or_default();
    let got = server.bytes().len();
    println!(
        "{} flood: {sent} B sent by the viewer, {got} B reached the server, last {} ms after the switch",
        if keys { "key" } else { "pointer" },
        lag.as_millis()
    );
    assert!(got > 0, "input went through in control");
    assert!(
        lag < Duration::from_millis(300),
        "input arrived {lag:?} after the switch"
    );
    drop(vw);
    let _ = reader.await;
    let _ = task.await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pointer_flood_stops_at_the_switch_to_view_only() {
    flood_a_slow_server_then_switch(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_flood_stops_at_the_switch_to_view_only() {
    flood_a_slow_server_then_switch(true).await;
}

/// Answers from a list and notes, at each prompt, how many connections to
/// the VNC server are still open.
#[derive(Clone)]
struct PortWatchingPrompter {
    port: u16,
    open_at_prompt: Arc<Mutex<Vec<usize>>>,
    answers: Arc<Mutex<std::collections::VecDeque<Answer>>>,
}

impl accord::broker::Prompter for PortWatchingPrompter {
    async fn ask(
        &self,
        _req: accord::broker::PromptRequest,
    ) -> Result<Answer, accord::broker::PromptError> {
        self.open_at_prompt
            .lock()
            .unwrap()
            .push(established_to(self.port));
        Ok(self
            .answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Refused))
    }
}

/// The busy guard outlives the server leg: after a session ends, the next
/// prompt appears only once the previous upstream connection is closed,
/// so no input of the old session can reach the X server during it.
#[tokio::test]
async fn no_new_prompt_before_the_old_server_leg_is_closed() {
    use accord::broker::{Broker, MemoryJournal};
    use accord::listener::Listener;
    let pki = Pki::new();
    let server = FakeServer::start(FakeConfig::new(64, 48, Frames::None)).await;
    let prompter = PortWatchingPrompter {
        port: server.addr.port(),
        open_at_prompt: Arc::default(),
        answers: Arc::new(Mutex::new([Answer::Control, Answer::Refused].into())),
    };
    let broker = Broker::new(
        Arc::new(pki.policy(server.addr)),
        Arc::new(MemoryJournal::default()),
        prompter.clone(),
    );
    let agent = Listener::bind(broker).await;
    let addr = agent.local_addr().unwrap();
    let ctl = agent.control();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));
    let (local, tunnel) = connect_tunnel(pki.connect_config(addr, Mode::Control)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    viewer.write_all(&CTRL_DOWN).await.unwrap();
    wait_until("the key", || server.bytes().ends_with(&CTRL_DOWN)).await;
    assert_eq!(established_to(server.addr.port()), 1);
    ctl.end();
    // Ask again at once, and again while busy.
    let second = loop {
        let (r, _) = connect_tunnel(pki.connect_config(addr, Mode::View)).await;
        match r {
            Err(accord::connect::ConnectError::Refused(RefusalCode::Busy)) => {}
            other => break other,
        }
    };
    assert_eq!(refused(second), RefusalCode::User);
    assert_eq!(
        *prompter.open_at_prompt.lock().unwrap(),
        [0, 0],
        "server connections open when each prompt appeared"
    );
    assert!(client_messages(&server.bytes()).contains(&CTRL_UP.to_vec()));
    let _ = read_to_end(&mut viewer).await;
    let _ = tunnel.await;
    let _ = stop.send(());
    task.await.unwrap();
}
