//! Service/helper figures, against the in-process agent in the
//! same run:
//! - request → the prompt reaches the one who shows it: the in-process
//!   prompter (`accord agent`) vs a helper process boundary (`accord
//!   service` → `ui.sock` → helper);
//! - "Terminer" → the technician's socket closed: `SessionControl::end` in
//!   process vs the helper's `end` line;
//! - RSS of a real `accord service` process, idle and after the rounds.
//!
//! The helper here is this process speaking the helper protocol on
//! `ui.sock` (no display needed); the helper's own first frame is measured
//! by `cargo bench --bench ui` and logged by `tests/ui_window.sh` ("prompt
//! … painted N ms after the request reached the broker"). Run with
//! `cargo bench --bench service`; `ACCORD_BENCH_ROUNDS` (default 30).

#[path = "../tests/common/mod.rs"]
#[allow(unused_imports)]
mod common;

use accord::broker::{Answer, PromptError, PromptRequest, Prompter};
use accord::policy::SeatMode;
use accord::protocol::Mode;
use accord::seat::proto::{self, FromHelper, ToHelper, WireAnswer};
use common::{Pki, RfbStub};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

fn rounds() -> usize {
    std::env::var("ACCORD_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
}

fn summary(name: &str, ms: &mut [f64]) {
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    let max = ms[ms.len() - 1];
    println!(
        "{name:<58} median {median:7.2} ms   max {max:7.2} ms   (n = {})",
        ms.len()
    );
}

/// In-process prompter that answers control at once and notes when asked.
#[derive(Clone)]
struct Stamp(Arc<Mutex<Option<Instant>>>);

impl Prompter for Stamp {
    async fn ask(&self, _req: PromptRequest) -> Result<Answer, PromptError> {
        *self.0.lock().unwrap() = Some(Instant::now());
        Ok(Answer::Control)
    }
}

/// Asks, waits for acceptance; returns when the prompt was seen (via
/// `asked`), then ends the session with `end` and times the technician's EOF.
async fn one_round(
    pki: &Pki,
    agent: SocketAddr,
    asked: impl Fn() -> Option<Instant>,
    end: impl Fn(),
) -> (f64, f64) {
    let t0 = Instant::now();
    let (local, task) = common::connect_tunnel(pki.connect_config(agent, Mode::Control)).await;
    let local = local.expect("accepted");
    let seen = asked().expect("the prompter was asked");
    let to_prompt = seen.duration_since(t0).as_secs_f64() * 1e3;
    // The viewer's side of the tunnel: the RFB version line, then the kill
    // switch, timed to the viewer's EOF.
    let mut tls = tokio::net::TcpStream::connect(local).await.expect("tunnel");
    let mut buf = [0u8; 12];
    tls.read_exact(&mut buf).await.expect("RFB version");
    let t1 = Instant::now();
    end();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut rest)).await;
    let ended = t1.elapsed().as_secs_f64() * 1e3;
    task.abort();
    (to_prompt, ended)
}

/// The policy of both runs: the hourly prompt limit out of the way.
fn bench_policy(pki: &Pki, stub: &RfbStub) -> accord::policy::Policy {
    let mut p = pki.policy(stub.addr);
    p.consent.max_prompts_per_technician_per_hour = 10_000;
    p
}

async fn in_process(pki: &Pki, stub: &RfbStub) -> (Vec<f64>, Vec<f64>) {
    let stamp = Stamp(Arc::new(Mutex::new(None)));
    // A broker whose prompter stamps the time it is asked.
    let broker = accord::broker::Broker::new(
        Arc::new(bench_policy(pki, stub)),
        Arc::new(accord::broker::MemoryJournal::default()),
        stamp.clone(),
    );
    let listener = accord::listener::Listener::bind(broker).await;
    let addr = listener.local_addr().expect("listening");
    let ctl = listener.control();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(listener.run(async move {
        let _ = rx.await;
    }));
    let (mut prompt, mut end) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        let s = stamp.0.clone();
        let c = ctl.clone();
        let (p, e) = one_round(pki, addr, move || s.lock().unwrap().take(), move || c.end()).await;
        prompt.push(p);
        end.push(e);
        wait_idle(&ctl).await;
    }
    let _ = stop.send(());
    let _ = task.await;
    (prompt, end)
}

async fn wait_idle(ctl: &accord::broker::SessionControl) {
    let mut st = ctl.state();
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        st.wait_for(|s| matches!(s.activity, accord::broker::Activity::Idle)),
    )
    .await;
}

/// A helper in this process: answers control, stamps each `ask`, sends
/// `end` on request.
async fn helper(sock: &Path) -> (Arc<Mutex<Option<Instant>>>, mpsc::Sender<FromHelper>) {
    let s = UnixStream::connect(sock).await.expect("ui.sock");
    let (r, mut w) = s.into_split();
    let stamp = Arc::new(Mutex::new(None));
    let (tx, mut rx) = mpsc::channel::<FromHelper>(8);
    w.write_all(&proto::encode(&FromHelper::Hello {
        version: "bench".into(),
        display: None,
        exe: None,
        mutter: false,
    }))
    .await
    .unwrap();
    tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            if w.write_all(&proto::encode(&m)).await.is_err() {
                break;
            }
        }
    });
    let (st, answer) = (stamp.clone(), tx.clone());
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            if let Ok(ToHelper::Ask(a)) = proto::parse::<ToHelper>(l.as_bytes()) {
                *st.lock().unwrap() = Some(Instant::now());
                let _ = answer
                    .send(FromHelper::Answer {
                        id: a.id,
                        answer: WireAnswer::Control,
                    })
                    .await;
            }
        }
    });
    (stamp, tx)
}

async fn through_service(pki: &Pki, stub: &RfbStub) -> (Vec<f64>, Vec<f64>) {
    let run = tempfile::tempdir().unwrap();
    let mut policy = bench_policy(pki, stub);
    policy.service.seat = SeatMode::Single;
    policy.service.users = vec![accord::platform::user_name()];
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let dir = run.path().to_path_buf();
    let task = tokio::spawn(async move {
        accord::seat::run::serve(Arc::new(policy), &dir, None, async move {
            let _ = rx.await;
        })
        .await
    });
    let addr = listening(run.path()).await;
    let (stamp, tx) = helper(&run.path().join("ui.sock")).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (mut prompt, mut end) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        let (s, t) = (stamp.clone(), tx.clone());
        let (p, e) = one_round(
            pki,
            addr,
            move || s.lock().unwrap().take(),
            move || {
                let _ = t.try_send(FromHelper::End {});
            },
        )
        .await;
        prompt.push(p);
        end.push(e);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    let _ = task.await;
    (prompt, end)
}

async fn listening(run: &Path) -> SocketAddr {
    for _ in 0..500 {
        if let Ok(v) = accord::control::call(&run.join("control.sock"), "status").await
            && let Some(a) = v["agent"]["address"].as_str()
        {
            return a.parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the service never listened");
}

/// VmRSS of a real `accord service` process (kB), idle after start.
fn service_rss(pki: &Pki, stub: &RfbStub) -> Option<u64> {
    let run = tempfile::tempdir().ok()?;
    let mut policy = pki.policy(stub.addr);
    policy.service.seat = SeatMode::Single;
    policy.service.users = vec![accord::platform::user_name()];
    // A file the parser accepts (tests use a shorter deadline).
    policy.consent.timeout = Duration::from_secs(60);
    policy.audit.path = Some(run.path().join("audit.jsonl"));
    let policy = policy.to_toml();
    let file = run.path().join("policy.toml");
    std::fs::write(&file, policy).ok()?;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(["service", "--policy"])
        .arg(&file)
        .env("ACCORD_RUN_DIR", run.path())
        .env("ACCORD_LOG", "warn")
        .spawn()
        .ok()?;
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).ok();
    let _ = child.kill();
    let _ = child.wait();
    status?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let pki = Pki::new();
        let stub = RfbStub::start().await;
        let (mut p_in, mut e_in) = in_process(&pki, &stub).await;
        let (mut p_svc, mut e_svc) = through_service(&pki, &stub).await;
        println!("# request = TLS connect + request line; ended = technician's EOF");
        summary(
            "request -> prompter asked (accord agent, in process)",
            &mut p_in,
        );
        summary(
            "request -> helper got `ask` (accord service, ui.sock)",
            &mut p_svc,
        );
        summary("end -> technician closed (SessionControl::end)", &mut e_in);
        summary("end -> technician closed (helper `end` line)", &mut e_svc);
        match service_rss(&pki, &stub) {
            Some(kb) => println!("accord service RSS, idle after start: {} kB", kb),
            None => println!("accord service RSS: not measured"),
        }
    });
}
