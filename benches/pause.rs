//! Hiding her screen under a full-speed update stream (issue "consent in
//! time", figure 1): the time from the click on « Masquer mon écran » to the
//! last framebuffer byte that reaches the technician's viewer, against the
//! kill switch's time to the viewer's last byte in the same run (the
//! baseline: the fastest Accord can cut a session), and the time from
//! « Reprendre » to the first byte of the whole frame asked for the viewer.
//!
//! A synthetic server streams Raw 1280×800 frames as fast as the relay
//! takes them; the relay is Accord's own (`session::run`: framer, filter,
//! switches); the viewer reads as fast as it can over loopback TCP.
//! Goal: pause → last byte ≤ 100 ms.
//!
//! Run: `cargo bench --bench pause` (`ACCORD_BENCH_RUNS`, default 10).
//! Under `cargo test --benches` every row runs twice, as a smoke test.

use accord::policy::Clipboard;
use accord::protocol::Mode;
use accord::session::{self, EndReason, Limits, LiveSession, Upstream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UnixStream};

const W: u16 = 1280;
const H: u16 = 800;

fn server_init() -> Vec<u8> {
    let mut si = Vec::new();
    si.extend_from_slice(&W.to_be_bytes());
    si.extend_from_slice(&H.to_be_bytes());
    // 32 bpp, depth 24, little-endian, true colour, 8-8-8 at 16/8/0.
    si.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    si.extend_from_slice(&5u32.to_be_bytes());
    si.extend_from_slice(b"bench");
    si
}

fn frame(seed: u8) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 0, 0, 0];
    f.extend_from_slice(&W.to_be_bytes());
    f.extend_from_slice(&H.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]);
    f.extend((0..usize::from(W) * usize::from(H) * 4).map(|i| (i as u8).wrapping_add(seed)));
    f
}

/// An RFB 3.8 server, security None, that streams whole frames forever and
/// reads (and ignores) whatever it is sent.
async fn server(mut s: UnixStream) {
    let mut buf = [0u8; 64];
    if s.write_all(b"RFB 003.008\n").await.is_err() || s.read_exact(&mut buf[..12]).await.is_err() {
        return;
    }
    let _ = s.write_all(&[1, 1]).await;
    let _ = s.read_exact(&mut buf[..1]).await;
    let _ = s.write_all(&[0, 0, 0, 0]).await;
    let _ = s.read_exact(&mut buf[..1]).await;
    let _ = s.write_all(&server_init()).await;
    let (mut r, mut w) = s.into_split();
    tokio::spawn(async move {
        let mut sink = vec![0u8; 1 << 16];
        while matches!(r.read(&mut sink).await, Ok(n) if n > 0) {}
    });
    let frames = [frame(0), frame(77)];
    for i in 0usize.. {
        if w.write_all(&frames[i % 2]).await.is_err() {
            return;
        }
    }
}

/// The technician's side: the viewer's handshake, then reads everything,
/// noting when each byte came.
async fn viewer(
    mut s: TcpStream,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    closed: Arc<Mutex<Option<Instant>>>,
) {
    let mut head = [0u8; 24];
    let ok = async {
        s.read_exact(&mut head[..12]).await?;
        s.write_all(b"RFB 003.008\n").await?;
        s.read_exact(&mut head[..2]).await?;
        s.write_all(&[1]).await?;
        s.read_exact(&mut head[..4]).await?;
        s.write_all(&[1]).await?;
        s.read_exact(&mut head[..24]).await?;
        let len = u32::from_be_bytes([head[20], head[21], head[22], head[23]]) as usize;
        let mut name = vec![0u8; len];
        s.read_exact(&mut name).await?;
        // Raw only, and one request: the server streams regardless.
        s.write_all(&[2, 0, 0, 1, 0, 0, 0, 0]).await?;
        s.write_all(&[3, 0, 0, 0, 0, 0, 5, 0, 3, 32]).await?;
        std::io::Result::Ok(())
    };
    if ok.await.is_err() {
        return;
    }
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf).await {
            Ok(n) if n > 0 => arrivals.lock().unwrap().push(Instant::now()),
            _ => {
                *closed.lock().unwrap() = Some(Instant::now());
                return;
            }
        }
    }
}

struct Rig {
    live: LiveSession,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    closed: Arc<Mutex<Option<Instant>>>,
    relay: tokio::task::JoinHandle<session::SessionResult>,
}

async fn rig() -> Rig {
    let (srv, up) = UnixStream::pair().unwrap();
    tokio::spawn(server(srv));
    let prepared = session::prepare_connected(Upstream::from_unix(up).unwrap(), None)
        .await
        .expect("handshake");
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let arrivals: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let closed: Arc<Mutex<Option<Instant>>> = Arc::default();
    tokio::spawn(viewer(
        TcpStream::connect(addr).await.unwrap(),
        arrivals.clone(),
        closed.clone(),
    ));
    let (tech, _) = l.accept().await.unwrap();
    let (live, handles) = LiveSession::new(Mode::View);
    let limits = Limits {
        idle_timeout: Duration::from_secs(600),
        max_duration: Duration::from_secs(600),
        clipboard: Clipboard::None,
    };
    let relay = tokio::spawn(session::run(tech, prepared, handles, limits));
    Rig {
        live,
        arrivals,
        closed,
        relay,
    }
}

impl Rig {
    fn last_after(&self, t: Instant) -> Option<Duration> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|a| **a > t)
            .map(|a| a.duration_since(t))
    }

    fn first_after(&self, t: Instant) -> Option<Duration> {
        self.arrivals
            .lock()
            .unwrap()
            .iter()
            .find(|a| **a > t)
            .map(|a| a.duration_since(t))
    }

    /// Waits until nothing has arrived for 300 ms (at most 5 s).
    async fn quiet(&self) {
        let start = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let last = self.arrivals.lock().unwrap().last().copied();
            if last.is_none_or(|l| l.elapsed() > Duration::from_millis(300))
                || start.elapsed() > Duration::from_secs(5)
            {
                return;
            }
        }
    }
}

fn stats(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let median = v[v.len() / 2];
    let max = v[v.len() - 1];
    format!(
        "median {median:7.1} ms   max {max:7.1} ms   ({} runs)",
        v.len()
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let runs: usize = if smoke {
        2
    } else {
        std::env::var("ACCORD_BENCH_RUNS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10)
    };
    let (mut pause, mut resume, mut kill) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let r = rig().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(r.arrivals.lock().unwrap().len() > 10, "frames flow");
        let t = Instant::now();
        r.live.hide(true);
        r.quiet().await;
        pause.push(r.last_after(t).unwrap_or_default().as_secs_f64() * 1000.0);
        let t = Instant::now();
        r.live.hide(false);
        tokio::time::sleep(Duration::from_millis(500)).await;
        resume.push(
            r.first_after(t)
                .expect("frames flow again after resume")
                .as_secs_f64()
                * 1000.0,
        );
        // The baseline: the kill switch, same stream.
        let t = Instant::now();
        r.live.end(EndReason::User);
        let _ = tokio::time::timeout(Duration::from_secs(10), r.relay).await;
        let closed = r.closed.lock().unwrap().unwrap_or_else(Instant::now);
        kill.push(closed.saturating_duration_since(t).as_secs_f64() * 1000.0);
    }
    println!("hiding her screen under a full-speed stream of Raw {W}×{H} frames (4 MB each)");
    println!(
        "  kill switch → viewer's last byte (baseline)   {}",
        stats(kill)
    );
    println!(
        "  « Masquer » → viewer's last byte (goal ≤ 100)  {}",
        stats(pause)
    );
    println!(
        "  « Reprendre » → viewer's first byte again       {}",
        stats(resume)
    );
}
