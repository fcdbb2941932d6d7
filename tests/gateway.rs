//! The consent gateway end to end, in-process: a real agent on 127.0.0.1:0
//! with a scripted prompter, the real `accord connect` code, a demo PKI and a
//! tiny RFB server standing in for the local VNC server.

mod common;

use accord::broker::Answer;
use accord::connect::ConnectError;
use accord::protocol::{Mode, RefusalCode};
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn refused(r: Result<std::net::SocketAddr, ConnectError>) -> RefusalCode {
    match r {
        Err(ConnectError::Refused(c)) => c,
        other => panic!("expected a refusal, got {other:?}"),
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
    let (r, _) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(refused(r), RefusalCode::UpstreamUnreachable);
    let e = agent.wait_event("session_ended", "why", "upstream").await;
    assert!(e["detail"].as_str().is_some());
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
    use accord::agent::Agent;
    use accord::broker::Broker;
    use std::sync::Arc;
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let policy = pki.policy(stub.addr);
    let log_path = policy.audit_path();
    let journal = accord::app::open_journal(&policy);
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::ViewOnly, Duration::ZERO),
        Step::Answer(Answer::Refused, Duration::ZERO),
    ]);
    let broker = Broker::new(Arc::new(policy), journal, prompter);
    let agent = Agent::bind(broker).await;
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
    use accord::agent::Agent;
    use accord::broker::Broker;
    use std::sync::Arc;
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let policy = pki.policy(stub.addr);
    let log_path = policy.audit_path();
    {
        let journal = accord::app::open_journal(&policy);
        for _ in 0..3 {
            journal
                .record(&accord::broker::Event::AgentStopped)
                .unwrap();
        }
    }
    let original = std::fs::read_to_string(&log_path).unwrap();
    let forged = original.replacen("agent_stopped", "agent_stoppex", 1);
    std::fs::write(&log_path, &forged).unwrap();

    let journal = accord::app::open_journal(&policy);
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::ZERO)]);
    let broker = Broker::new(Arc::new(policy), journal, prompter.clone());
    let agent = Agent::bind(broker).await;
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
