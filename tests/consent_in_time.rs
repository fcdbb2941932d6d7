//! Consent in time against a REAL x11vnc on a real Xvfb: "Masquer mon
//! écran" stops every byte of her screen from reaching the technician's
//! viewer and holds their input, "Reprendre" brings both back; the consent
//! period's question holds input until she answers "Continuer", and ends the
//! session `not_confirmed` when nobody answers.
//!
//! A missing program makes a test print `SKIPPED: <binary> not installed`
//! and pass, unless `ACCORD_REQUIRE_PEERS=1` (CI, `make test`).

#![cfg(unix)]

mod common;
use accord::broker::{
    Answer, PromptError, PromptRequest, Prompter, Screen, ScreenError, ScreenRequest,
};
use accord::launch::{self, Options, Server};
use accord::protocol::Mode;
use common::peers::have;
use common::xserver::*;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

/// She accepts control at once; to each "continue?" she answers
/// "Continuer" after the scripted delay, or never (`None`).
#[derive(Clone)]
struct Clinician {
    opts: Options,
    confirms: Arc<Mutex<VecDeque<Option<Duration>>>>,
    asked: mpsc::UnboundedSender<PromptRequest>,
}

impl Prompter for Clinician {
    async fn ask(&self, req: PromptRequest) -> Result<Answer, PromptError> {
        let _ = self.asked.send(req.clone());
        if !req.confirm {
            return Ok(Answer::Control);
        }
        let next = self.confirms.lock().unwrap().pop_front().flatten();
        match next {
            Some(after) => {
                tokio::time::sleep(after).await;
                Ok(Answer::Continue)
            }
            None => std::future::pending().await,
        }
    }

    async fn open_screen(&self, req: ScreenRequest) -> Result<Screen, ScreenError> {
        let mut opts = self.opts.clone();
        opts.clipboard = req.grants.clipboard;
        opts.input = req.grants.input;
        launch::screen(Server::X11vnc, &opts).await
    }
}

struct Rig {
    _x: Xvfb,
    display: String,
    _rt: tempfile::TempDir,
    pki: common::Pki,
    addr: std::net::SocketAddr,
    ctl: accord::broker::SessionControl,
    journal: Arc<accord::broker::MemoryJournal>,
    asked: mpsc::UnboundedReceiver<PromptRequest>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn rig(confirm: Option<(Duration, Duration)>, answers: Vec<Option<Duration>>) -> Rig {
    let x = Xvfb::start();
    let rt = runtime_dir();
    let opts = options(&x, rt.path());
    let pki = common::Pki::new();
    let mut policy = pki.policy("127.0.0.1:9".parse().unwrap());
    policy.upstream.launch = Server::X11vnc.launch();
    policy.consent.arm_delay = Duration::from_millis(300);
    policy.session.confirm_every = confirm.map(|c| c.0);
    if let Some((_, grace)) = confirm {
        policy.session.confirm_grace = grace;
    }
    let (tx, asked) = mpsc::unbounded_channel();
    let prompter = Clinician {
        opts,
        confirms: Arc::new(Mutex::new(answers.into())),
        asked: tx,
    };
    let a = common::spawn_agent(policy, prompter).await;
    Rig {
        display: x.display(),
        _x: x,
        _rt: rt,
        pki,
        addr: a.addr,
        ctl: a.ctl,
        journal: a.journal,
        asked,
        _stop: a.stop,
    }
}

impl Rig {
    fn pointer(&self) -> String {
        pointer(&self.display)
    }

    /// Waits until the real pointer is at (x, y); false after 3 s.
    async fn pointer_reaches(&self, x: u16, y: u16) -> bool {
        let want = format!("x:{x} y:{y}");
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if self.pointer() == want {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        false
    }

    fn events(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        common::records(&self.journal)
    }

    async fn wait_event(
        &self,
        name: &str,
        within: Duration,
    ) -> serde_json::Map<String, serde_json::Value> {
        let t = Instant::now();
        while t.elapsed() < within {
            if let Some(r) = self.events().into_iter().find(|r| r["event"] == name) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {name} within {within:?}: {:?}", self.events());
    }
}

fn pointer_event(x: u16, y: u16) -> [u8; 6] {
    let [xh, xl] = x.to_be_bytes();
    let [yh, yl] = y.to_be_bytes();
    [5, 0, xh, xl, yh, yl]
}

/// Whole-screen requests (640×480), non-incremental: every one is
/// answered with a whole frame, a steady update stream.
const WHOLE: [u8; 10] = [3, 0, 0, 0, 0, 0, 2, 128, 1, 224];

/// While paused nothing of her screen reaches the viewer (after the
/// message already under way), input never reaches X; on resume both flow
/// again. Prints how long after the click the last byte came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x11vnc_pause_hides_her_screen_and_holds_input_then_resume() {
    if !have(&["Xvfb", "x11vnc", "xdotool"]) {
        return;
    }
    let r = rig(None, Vec::new()).await;
    let (local, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.expect("accepted");
    let (v, _) = common::rfb_viewer(local).await.unwrap();
    let (mut rd, mut wr) = v.into_split();
    // Every byte the viewer receives, with when it came.
    let arrivals: Arc<Mutex<Vec<(Instant, usize)>>> = Arc::default();
    let a = arrivals.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 {
                break;
            }
            a.lock().unwrap().push((Instant::now(), n));
        }
    });
    // Control works first (on a quiet server: x11vnc answers a whole-frame
    // request before it reads the next message, so input sent amid a
    // stream of them waits seconds in x11vnc, whatever Accord does).
    wr.write_all(&pointer_event(100, 100)).await.unwrap();
    assert!(r.pointer_reaches(100, 100).await, "control works first");
    // Then the viewer asks for whole frames as fast as it reads them.
    let requesting = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (input_tx, mut input_rx) = mpsc::unbounded_channel::<[u8; 6]>();
    let on = requesting.clone();
    tokio::spawn(async move {
        loop {
            while let Ok(p) = input_rx.try_recv() {
                if wr.write_all(&p).await.is_err() {
                    return;
                }
            }
            if on.load(std::sync::atomic::Ordering::SeqCst) && wr.write_all(&WHOLE).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let bytes_since = |t: Instant| -> usize {
        arrivals
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > t)
            .map(|(_, n)| n)
            .sum()
    };
    tokio::time::sleep(Duration::from_millis(800)).await;
    let flowing = bytes_since(Instant::now() - Duration::from_millis(500));
    assert!(
        flowing > 2 * 640 * 480 * 4,
        "frames flow first: {flowing} bytes in 500 ms"
    );

    let paused_at = Instant::now();
    r.ctl.pause(true);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let quiet_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let last = arrivals
        .lock()
        .unwrap()
        .iter()
        .rev()
        .find(|(at, _)| *at > paused_at)
        .map(|(at, _)| at.duration_since(paused_at));
    let after = bytes_since(paused_at);
    println!(
        "pause → last byte at the viewer: {} ms ({after} bytes after the click, frames of {} bytes)",
        last.map_or(0, |d| d.as_millis()),
        640 * 480 * 4
    );
    assert_eq!(
        bytes_since(quiet_from),
        0,
        "her screen reached the viewer while hidden"
    );
    assert!(
        after <= 2 * (640 * 480 * 4 + 64),
        "more than the frames already under way passed: {after} bytes"
    );
    // Input while hidden, on a server with nothing else to do: it would
    // act at once if it got there.
    requesting.store(false, std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    input_tx.send(pointer_event(300, 200)).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(r.pointer(), "x:100 y:100", "input reached X while paused");

    // Resume: Accord asks a whole frame for the viewer, which asks nothing
    // itself now; input acts again.
    let resumed_at = Instant::now();
    r.ctl.pause(false);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        bytes_since(resumed_at) >= 640 * 480 * 4,
        "a whole frame reaches the viewer after resume: {} bytes",
        bytes_since(resumed_at)
    );
    input_tx.send(pointer_event(310, 210)).unwrap();
    assert!(
        r.pointer_reaches(310, 210).await,
        "input flows again after resume"
    );

    let events: Vec<String> = r
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap_or_default().to_string())
        .collect();
    let p = events
        .iter()
        .position(|e| e == "paused")
        .expect("paused on record");
    let q = events
        .iter()
        .position(|e| e == "resumed")
        .expect("resumed on record");
    assert!(p < q);
    r.ctl.end();
    assert_eq!(
        r.wait_event("session_ended", Duration::from_secs(5)).await["why"],
        "user"
    );
}

/// The consent period ends: input is held while she is asked; "Continuer"
/// lets it through again; the next period, unanswered, ends the session
/// `not_confirmed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x11vnc_reconfirmation_holds_input_continue_resumes_and_silence_ends_it() {
    if !have(&["Xvfb", "x11vnc", "xdotool"]) {
        return;
    }
    let period = Duration::from_secs(3);
    let grace = Duration::from_secs(3);
    let mut r = rig(
        Some((period, grace)),
        vec![Some(Duration::from_millis(1500)), None],
    )
    .await;
    let (local, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.expect("accepted");
    let (mut v, _) = common::rfb_viewer(local).await.unwrap();
    let first = r.asked.recv().await.unwrap();
    assert!(!first.confirm);
    v.write_all(&pointer_event(50, 50)).await.unwrap();
    assert!(r.pointer_reaches(50, 50).await, "control works first");

    let q = tokio::time::timeout(period + Duration::from_secs(3), r.asked.recv())
        .await
        .expect("asked to confirm")
        .unwrap();
    assert!(q.confirm && !q.raise);
    assert_eq!(q.timeout, grace);
    // While she is asked, the technician's pointer goes nowhere.
    v.write_all(&pointer_event(150, 150)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        r.pointer(),
        "x:50 y:50",
        "input reached X while she was asked"
    );
    // She answers "Continuer" (after 1.5 s): input flows again.
    let c = r.wait_event("confirmation", Duration::from_secs(5)).await;
    assert_eq!(c["decision"], "continued");
    assert_eq!(c["by"], "user");
    v.write_all(&pointer_event(160, 160)).await.unwrap();
    assert!(
        r.pointer_reaches(160, 160).await,
        "input flows again after Continuer"
    );

    // The next period: nobody answers.
    let q2 = tokio::time::timeout(period + Duration::from_secs(3), r.asked.recv())
        .await
        .expect("asked again")
        .unwrap();
    assert!(q2.confirm);
    let ended = r
        .wait_event("session_ended", grace + Duration::from_secs(5))
        .await;
    assert_eq!(ended["why"], "not_confirmed");
    let timeouts: Vec<_> = r
        .events()
        .into_iter()
        .filter(|e| e["event"] == "confirmation" && e["by"] == "timeout")
        .collect();
    assert_eq!(timeouts.len(), 1);
    assert_eq!(timeouts[0]["decision"], "ended");
}
