//! Asking for control mid-session: the technician of a
//! running view-only session asks, on a connection of its own, for control;
//! the clinician is asked with the technician's input held, and only her
//! "Allow control" switches the session.

mod common;

use accord::broker::{Activity, Answer};
use accord::connect::{self, ConnectError};
use accord::policy::Policy;
use accord::protocol::{Mode, RefusalCode};
use common::*;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const KEY_A: [u8; 8] = [4, 1, 0, 0, 0, 0, 0, 0x61];
const KEY_H: [u8; 8] = [4, 1, 0, 0, 0, 0, 0, 0x68];
const BUTTON1_AT_10_20: [u8; 6] = [5, 1, 0, 10, 0, 20];

/// A running view-only session: the agent, the stub server, the viewer
/// (past the handshake and the stub's Bell) and the session id.
struct ViewSession {
    pki: Pki,
    stub: RfbStub,
    agent: RunningAgent,
    viewer: TcpStream,
    session: Uuid,
    tunnel: tokio::task::JoinHandle<Result<(), ConnectError>>,
}

async fn view_session(then: Vec<Step>, tune: impl FnOnce(&mut Policy)) -> ViewSession {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    tune(&mut policy);
    let mut steps = vec![Step::Answer(Answer::ViewOnly, Duration::ZERO)];
    steps.extend(then);
    let agent = RunningAgent::start(policy, ScriptedPrompter::new(steps)).await;
    let (local, tunnel) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let (mut viewer, _) = rfb_viewer(local.unwrap()).await.unwrap();
    let mut bell = [0u8; 1];
    viewer.read_exact(&mut bell).await.unwrap();
    let started = agent.wait_event("session_started", "mode", "view").await;
    let session = started["session"].as_str().unwrap().parse().unwrap();
    ViewSession {
        pki,
        stub,
        agent,
        viewer,
        session,
        tunnel,
    }
}

impl ViewSession {
    async fn raise_as(
        &self,
        cert: PathBuf,
        key: PathBuf,
        session: Uuid,
    ) -> Result<(), ConnectError> {
        let mut cfg = self.pki.connect_config(self.agent.addr, Mode::Control);
        cfg.cert = cert;
        cfg.key = key;
        connect::request_control(&cfg, session, &mut |_| {}).await
    }

    async fn raise(&self) -> Result<(), ConnectError> {
        self.raise_as(
            self.pki.tech_cert.clone(),
            self.pki.tech_key.clone(),
            self.session,
        )
        .await
    }

    fn received_contains(&self, msg: &[u8]) -> bool {
        self.stub.received().windows(msg.len()).any(|w| w == msg)
    }

    fn mode(&self) -> Option<Mode> {
        match &self.agent.ctl.state().borrow().activity {
            Activity::InSession(i) => Some(i.mode),
            _ => None,
        }
    }

    /// Sends a key; returns whether it reached the server within `wait`.
    async fn key_reaches_server(&mut self, key: [u8; 8], wait: Duration) -> bool {
        self.viewer.write_all(&key).await.unwrap();
        let until = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < until {
            if self.received_contains(&key) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received_contains(&key)
    }

    async fn finish(mut self) {
        assert!(self.mode().is_some(), "the session is still running");
        drop(self.viewer);
        let _ = self.tunnel.await;
        self.agent.stop().await;
    }
}

fn refused(r: Result<(), ConnectError>) -> RefusalCode {
    match &r {
        // With or without a retry time (rate_limited says when).
        Err(e) => e
            .refusal()
            .unwrap_or_else(|| panic!("expected a refusal, got {e:?}")),
        Ok(_) => panic!("expected a refusal, got {r:?}"),
    }
}

async fn wait_asked(s: &ViewSession, n: usize) {
    for _ in 0..500 {
        if s.agent.prompter.asked() >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the prompter was not asked {n} times");
}

#[tokio::test]
async fn raise_accepted_switches_to_control_and_input_held_meanwhile_never_arrives() {
    let mut s = view_session(
        vec![Step::Answer(Answer::Control, Duration::from_millis(800))],
        |_| {},
    )
    .await;
    assert!(
        !s.key_reaches_server(KEY_A, Duration::from_millis(200))
            .await
    );

    let raise = {
        let mut cfg = s.pki.connect_config(s.agent.addr, Mode::Control);
        cfg.ticket = "INC-4712".into();
        let session = s.session;
        tokio::spawn(async move { connect::request_control(&cfg, session, &mut |_| {}).await })
    };
    wait_asked(&s, 2).await;
    let asked = s.agent.prompter.asked.lock().unwrap()[1].clone();
    assert!(asked.raise && asked.control_offered);
    assert_eq!(asked.asked, Mode::Control);
    assert_eq!(asked.ticket, "INC-4712");
    assert!(!s.agent.prompter.asked.lock().unwrap()[0].raise);

    // While the clinician is being asked: the technician types and clicks
    // (e.g. on "Allow control"). None of it may ever reach the server.
    s.viewer.write_all(&KEY_H).await.unwrap();
    s.viewer.write_all(&BUTTON1_AT_10_20).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.mode(),
        Some(Mode::View),
        "nothing changes before the answer"
    );

    raise.await.unwrap().expect("control granted");
    assert_eq!(s.mode(), Some(Mode::Control));
    let changed = s.agent.wait_event("mode_changed", "mode", "control").await;
    assert_eq!(changed["from"], "view");
    assert_eq!(changed["by"], "user");
    assert_eq!(changed["session"], s.session.to_string());
    let decisions: Vec<_> = s
        .agent
        .records()
        .into_iter()
        .filter(|r| r["event"] == "decision")
        .collect();
    assert_eq!(decisions.len(), 2);
    assert_eq!(decisions[1]["session"], s.session.to_string());
    assert_eq!(decisions[1]["asked"], "control");
    assert_eq!(decisions[1]["decision"], "accepted");
    assert_eq!(decisions[1]["mode"], "control");
    assert_eq!(decisions[1]["by"], "user");
    assert_eq!(decisions[1]["ticket"], "INC-4712");

    // Control input now reaches the server; what was held never does.
    assert!(s.key_reaches_server(KEY_A, Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!s.received_contains(&KEY_H), "{:?}", s.stub.received());
    assert!(
        !s.received_contains(&BUTTON1_AT_10_20),
        "{:?}",
        s.stub.received()
    );
    assert_eq!(
        s.agent.events(),
        [
            "agent_started",
            "decision",
            "session_started",
            "decision",
            "mode_changed"
        ]
    );
    // The session is the same: one upstream connection.
    assert_eq!(*s.stub.connections.lock().unwrap(), 1);
    s.finish().await;
}

/// Refused or unanswered: the session stays view-only and input after the
/// answer is still dropped.
async fn raise_not_granted(step: Step, code: RefusalCode) {
    let mut s = view_session(vec![step], |p| p.consent.timeout = Duration::from_secs(1)).await;
    assert_eq!(refused(s.raise().await), code);
    assert_eq!(s.agent.prompter.asked(), 2);
    assert!(
        !s.key_reaches_server(KEY_A, Duration::from_millis(300))
            .await
    );
    assert_eq!(s.mode(), Some(Mode::View));
    assert!(!s.agent.events().contains(&"mode_changed".to_string()));
    let d = s.agent.wait_event("decision", "decision", "refused").await;
    assert_eq!(d["session"], s.session.to_string());
    assert_eq!(d["asked"], "control");
    assert_eq!(d["why"], code.as_str());
    s.finish().await;
}

#[tokio::test]
async fn raise_refused_stays_view_only() {
    raise_not_granted(
        Step::Answer(Answer::Refused, Duration::from_millis(50)),
        RefusalCode::User,
    )
    .await;
}

#[tokio::test]
async fn raise_answered_view_only_is_a_refusal() {
    raise_not_granted(
        Step::Answer(Answer::ViewOnly, Duration::from_millis(50)),
        RefusalCode::User,
    )
    .await;
}

#[tokio::test]
async fn raise_timed_out_stays_view_only() {
    raise_not_granted(Step::Never, RefusalCode::Timeout).await;
}

#[tokio::test]
async fn raise_from_another_certificate_is_refused_unasked() {
    let s = view_session(vec![], |_| {}).await;
    let (cert, key) = s.pki.technician("paul", "Paul Durand", 30);
    assert_eq!(
        refused(s.raise_as(cert, key, s.session).await),
        RefusalCode::BadRequest
    );
    assert_eq!(s.agent.prompter.asked(), 1, "the clinician is never asked");
    s.agent
        .wait_foreign_rejection("CN=Paul Durand,O=Helpdesk CHU")
        .await;
    assert_eq!(s.mode(), Some(Mode::View));
    s.finish().await;
}

#[tokio::test]
async fn raise_of_an_unknown_session_is_refused_unasked() {
    let s = view_session(vec![], |_| {}).await;
    let other = Uuid::new_v4();
    assert_eq!(
        refused(
            s.raise_as(s.pki.tech_cert.clone(), s.pki.tech_key.clone(), other)
                .await
        ),
        RefusalCode::BadRequest
    );
    assert_eq!(s.agent.prompter.asked(), 1);
    let r = s
        .agent
        .wait_event("request_rejected", "why", "bad_request")
        .await;
    assert!(
        r["detail"].as_str().unwrap().contains("not running"),
        "{r:?}"
    );
    s.finish().await;
}

#[tokio::test]
async fn raise_refused_by_policy_without_control() {
    let s = view_session(vec![], |p| p.consent.allow_control = false).await;
    assert_eq!(refused(s.raise().await), RefusalCode::Policy);
    assert_eq!(s.agent.prompter.asked(), 1);
    s.agent
        .wait_event("request_rejected", "why", "policy")
        .await;
    s.finish().await;
}

#[tokio::test]
async fn raise_counts_towards_the_hourly_prompt_limit() {
    let s = view_session(vec![Step::Answer(Answer::Refused, Duration::ZERO)], |p| {
        p.consent.max_prompts_per_technician_per_hour = 2
    })
    .await;
    assert_eq!(refused(s.raise().await), RefusalCode::User);
    assert_eq!(refused(s.raise().await), RefusalCode::RateLimited);
    assert_eq!(s.agent.prompter.asked(), 2);
    s.finish().await;
}

#[tokio::test]
async fn session_ending_while_asking_withdraws_the_raise() {
    let s = view_session(vec![Step::Never], |_| {}).await;
    let raise = {
        let cfg = s.pki.connect_config(s.agent.addr, Mode::Control);
        let session = s.session;
        tokio::spawn(async move { connect::request_control(&cfg, session, &mut |_| {}).await })
    };
    wait_asked(&s, 2).await;
    s.agent.ctl.end();
    let r = tokio::time::timeout(Duration::from_secs(5), raise)
        .await
        .expect("answered at once")
        .unwrap();
    assert_eq!(refused(r), RefusalCode::BadRequest);
    s.agent.wait_event("session_ended", "why", "user").await;
    assert!(!s.agent.events().contains(&"mode_changed".to_string()));
    let ViewSession {
        viewer,
        tunnel,
        mut agent,
        ..
    } = s;
    drop(viewer);
    let _ = tunnel.await;
    agent.stop().await;
}

#[tokio::test]
async fn a_raise_does_not_take_the_busy_slot_nor_free_it() {
    // While the raise is being asked, a new request is still busy (the
    // session holds the slot), and a second raise is busy too.
    let s = view_session(
        vec![Step::Answer(Answer::Refused, Duration::from_millis(600))],
        |_| {},
    )
    .await;
    let raise = {
        let cfg = s.pki.connect_config(s.agent.addr, Mode::Control);
        let session = s.session;
        tokio::spawn(async move { connect::request_control(&cfg, session, &mut |_| {}).await })
    };
    wait_asked(&s, 2).await;
    assert_eq!(refused(s.raise().await), RefusalCode::Busy);
    let (r, _) = connect_tunnel(s.pki.connect_config(s.agent.addr, Mode::View)).await;
    assert!(matches!(r, Err(ConnectError::Refused(RefusalCode::Busy))));
    assert_eq!(refused(raise.await.unwrap()), RefusalCode::User);
    s.finish().await;
}
