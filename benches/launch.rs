//! From "Autoriser…" to the technician's first framebuffer update, with the
//! VNC server Accord starts for the session (goal ≤ 1 s), for
//! x11vnc and TigerVNC's x0vncserver on a 1920×1080 Xvfb.
//!
//! The clinician's click is the moment the prompter answers. Then, as in
//! `accord agent`: the server is started on a private socket and connected
//! (`launch`), Accord's handshake with it, `accepted` to the real `accord
//! connect` tunnel, the viewer's handshake through it, a full
//! FramebufferUpdateRequest (Raw), and the whole first update read.
//! Printed: the start of the server alone, click → first update byte,
//! click → whole first update; median and max of the rounds.
//!
//! Run: `cargo bench --bench launch` (`ACCORD_BENCH_RUNS`, default 5).
//! Under `cargo test --benches` one round per server, as a smoke test.

#[path = "../tests/common/mod.rs"]
mod common;

use accord::broker::{
    Answer, PromptError, PromptRequest, Prompter, Screen, ScreenError, ScreenRequest,
};
use accord::launch::{self, Options, Server};
use accord::protocol::Mode;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Answers "control" at once and notes when (the click); starts `server`.
#[derive(Clone)]
struct Clicks {
    server: Server,
    opts: Options,
    clicked: Arc<Mutex<Option<Instant>>>,
    launch_time: Arc<Mutex<Option<Duration>>>,
}

impl Prompter for Clicks {
    async fn ask(&self, _req: PromptRequest) -> Result<Answer, PromptError> {
        *self.clicked.lock().unwrap() = Some(Instant::now());
        Ok(Answer::Control)
    }

    async fn open_screen(&self, _req: ScreenRequest) -> Result<Screen, ScreenError> {
        let t = Instant::now();
        let s = launch::screen(self.server, &self.opts).await;
        *self.launch_time.lock().unwrap() = Some(t.elapsed());
        s
    }
}

/// Xvfb on a display it picks itself (`-displayfd`), killed on drop.
struct Xvfb(std::process::Child, String);

impl Xvfb {
    fn start() -> Option<Xvfb> {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1920x1080x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut out = child.stdout.take()?;
        let mut n = Vec::new();
        let mut b = [0u8; 1];
        while out.read(&mut b).ok()? == 1 && b[0] != b'\n' {
            n.push(b[0]);
        }
        let display = format!(":{}", String::from_utf8(n).ok()?.trim());
        // Something on screen that is not one flat colour.
        let _ = Command::new("xsetroot")
            .args(["-display", &display, "-grey"])
            .status();
        Some(Xvfb(child, display))
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child: SIGTERM so Xvfb removes its lock.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// One session: (server start, click → first byte, click → whole update).
async fn one_round(server: Server, display: &str) -> (Duration, Duration, Duration) {
    let rt = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(rt.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let pki = common::Pki::new();
    let mut policy = pki.policy("127.0.0.1:9".parse().unwrap());
    policy.upstream.launch = server.launch();
    let prompter = Clicks {
        server,
        opts: Options {
            display: display.into(),
            mode: accord::protocol::Mode::Control,
            clipboard: accord::policy::Clipboard::None,
            input: true,
            runtime_dir: rt.path().to_path_buf(),
        },
        clicked: Arc::default(),
        launch_time: Arc::default(),
    };
    let agent = common::spawn_agent(policy, prompter.clone()).await;
    let (local, task) = common::connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    let (mut v, si) = common::rfb_viewer(local).await.unwrap();
    let (w, h) = (
        u16::from_be_bytes([si[0], si[1]]),
        u16::from_be_bytes([si[2], si[3]]),
    );
    let bpp = usize::from(si[4] / 8);
    // SetEncodings [Raw], then one full update request.
    v.write_all(&[2, 0, 0, 1, 0, 0, 0, 0]).await.unwrap();
    let mut fbur = vec![3u8, 0, 0, 0, 0, 0];
    fbur.extend_from_slice(&w.to_be_bytes());
    fbur.extend_from_slice(&h.to_be_bytes());
    v.write_all(&fbur).await.unwrap();
    let mut head = [0u8; 4];
    v.read_exact(&mut head[..1]).await.unwrap();
    let first_byte = Instant::now();
    assert_eq!(head[0], 0, "{server}: a FramebufferUpdate first");
    v.read_exact(&mut head[1..]).await.unwrap();
    let rects = u16::from_be_bytes([head[2], head[3]]);
    let mut pixels = vec![0u8; 0];
    for _ in 0..rects {
        let mut r = [0u8; 12];
        v.read_exact(&mut r).await.unwrap();
        let rw = usize::from(u16::from_be_bytes([r[4], r[5]]));
        let rh = usize::from(u16::from_be_bytes([r[6], r[7]]));
        let enc = i32::from_be_bytes([r[8], r[9], r[10], r[11]]);
        assert_eq!(enc, 0, "{server}: Raw only");
        pixels.resize(rw * rh * bpp, 0);
        v.read_exact(&mut pixels).await.unwrap();
    }
    let whole = Instant::now();
    let clicked = prompter.clicked.lock().unwrap().expect("asked");
    let launch_time = prompter.launch_time.lock().unwrap().expect("launched");
    agent.ctl.end();
    drop(v);
    task.abort();
    let _ = agent.stop.send(());
    let _ = agent.task.await;
    (launch_time, first_byte - clicked, whole - clicked)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn stats(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let runs: usize = if benching {
        std::env::var("ACCORD_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5)
    } else {
        1
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    println!("accept → first framebuffer update, server started for the session (1920×1080, Raw)");
    println!(
        "{:<12} {:>5} {:>18} {:>22} {:>24}",
        "server", "runs", "start ms med/max", "→ first byte med/max", "→ whole update med/max"
    );
    for server in [Server::X11vnc, Server::X0vncserver] {
        if launch::pick(server.launch()).is_err() {
            println!("{:<12} skipped: not installed", server.name());
            continue;
        }
        let Some(x) = Xvfb::start() else {
            println!("{:<12} skipped: no Xvfb", server.name());
            continue;
        };
        let mut start = Vec::new();
        let mut first = Vec::new();
        let mut whole = Vec::new();
        for _ in 0..runs {
            let (s, f, w) = rt.block_on(one_round(server, &x.1));
            start.push(ms(s));
            first.push(ms(f));
            whole.push(ms(w));
        }
        let (s, f, w) = (stats(start), stats(first), stats(whole));
        println!(
            "{:<12} {:>5} {:>8.0} / {:<7.0} {:>10.0} / {:<9.0} {:>11.0} / {:<10.0}",
            server.name(),
            runs,
            s.0,
            s.1,
            f.0,
            f.1,
            w.0,
            w.1
        );
    }
}
