//! Relay throughput (issue 3, Performance): a synthetic VNC server streams
//! a large framebuffer (512 MiB of Raw FramebufferUpdates) to a synthetic
//! viewer that sends a steady stream of client messages (pointer, key
//! down/up, incremental FramebufferUpdateRequest: 4 000 messages/s, a busy
//! viewer) the other way, all in one process over 127.0.0.1 sockets:
//!
//! | row | path |
//! | --- | --- |
//! | TCP direct | viewer ⇄ server, no relay (the ceiling) |
//! | TCP relay ×2 | viewer ⇄ relay ⇄ relay ⇄ server, plain copies |
//! | TLS relay ×2 | the same hops with mutual TLS 1.3 between the relays, Accord's own rustls configs: the raw TLS copy baseline |
//! | Accord control / view-only | viewer ⇄ the real `accord connect` tunnel ⇄ TLS ⇄ the real agent (broker, session, rfb framer and filter) ⇄ server |
//!
//! The TLS baseline has exactly Accord's topology and copy code shape (the
//! near relay is `copy_bidirectional` like `accord connect`; the far one
//! splits both streams and copies with 64 KiB buffers like the session), so
//! the Accord / TLS ratio is the price of the session itself.
//!
//! Then the framer + filter alone, on a realistic client stream, in both
//! modes, and what that costs as a share of the relay time.
//!
//! Run: `cargo bench --bench relay`. Environment: `ACCORD_BENCH_MIB`
//! (default 512) and `ACCORD_BENCH_RUNS` (default 3; the median is shown).
//! Under `cargo test --benches` (no `--bench` argument) every row runs once
//! on 16 MiB, as a smoke test that no path hangs.

use accord::agent::Agent;
use accord::broker::{Answer, Broker, MemoryJournal, PromptError, PromptRequest, Prompter};
use accord::connect::{self, ConnectConfig};
use accord::policy::{Policy, UpstreamAddr};
use accord::protocol::Mode;
use accord::rfb::{Action, ClientFramer, Filter, FilterCtx, READ_CHUNK};
use accord::tls::demo::Ca;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One FramebufferUpdate: a 256×256 Raw rectangle at 32 bpp (256 KiB).
const RECT: u16 = 256;
/// Client messages per tick of the viewer's steady stream (every 1 ms).
const BATCH: [u8; 32] = [
    5, 0, 1, 44, 0, 200, // PointerEvent (300, 200), no button
    4, 1, 0, 0, 0, 0, 0, 0x61, // KeyEvent 'a' down
    4, 0, 0, 0, 0, 0, 0, 0x61, // KeyEvent 'a' up
    3, 1, 0, 0, 0, 0, 5, 0, 3, 0x20, // FBUR incremental, 1280×800
];
/// What the viewer's messages become server-side in view-only: the FBUR only.
const BATCH_VIEW_BYTES: u64 = 10;

fn fbu_message() -> Vec<u8> {
    let mut m = vec![0u8, 0, 0, 1];
    m.extend_from_slice(&[0, 0, 0, 0]);
    m.extend_from_slice(&RECT.to_be_bytes());
    m.extend_from_slice(&RECT.to_be_bytes());
    m.extend_from_slice(&0i32.to_be_bytes());
    let px = RECT as usize * RECT as usize * 4;
    let mut x: u32 = 0x1234_5678;
    m.extend((0..px).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    m
}

fn server_init() -> Vec<u8> {
    let mut si = Vec::new();
    si.extend_from_slice(&1280u16.to_be_bytes());
    si.extend_from_slice(&800u16.to_be_bytes());
    si.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    si.extend_from_slice(&5u32.to_be_bytes());
    si.extend_from_slice(b"bench");
    si
}

// ---------------------------------------------------------------------------
// Synthetic peers.
// ---------------------------------------------------------------------------

/// An RFB 3.8 server (security None) that, once the viewer's first message
/// arrives, writes `count` FramebufferUpdates, draining and counting what
/// the viewer sends.
async fn vnc_server(count: usize, received: Arc<AtomicU64>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(b"RFB 003.008\n").await.unwrap();
        let mut v = [0u8; 12];
        s.read_exact(&mut v).await.unwrap();
        s.write_all(&[1, 1]).await.unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        s.write_all(&0u32.to_be_bytes()).await.unwrap();
        s.read_exact(&mut b).await.unwrap(); // ClientInit
        s.write_all(&server_init()).await.unwrap();
        let (mut r, mut w) = s.into_split();
        // A real server waits for the first FramebufferUpdateRequest.
        let mut buf = vec![0u8; 64 * 1024];
        let n = r.read(&mut buf).await.unwrap();
        received.fetch_add(n as u64, Ordering::Relaxed);
        let drain = tokio::spawn(async move {
            loop {
                match r.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        received.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }
        });
        let msg = fbu_message();
        for _ in 0..count {
            if w.write_all(&msg).await.is_err() {
                break;
            }
        }
        let _ = drain.await;
    });
    addr
}

/// Connects, does the viewer's handshake, asks for the screen, then reads
/// `expect` bytes while sending [`BATCH`] every millisecond. Returns the
/// time from ServerInit to the last byte, and the client bytes sent.
async fn viewer(addr: SocketAddr, expect: u64) -> (Duration, u64) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    let mut v = [0u8; 12];
    s.read_exact(&mut v).await.unwrap();
    s.write_all(b"RFB 003.008\n").await.unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).await.unwrap();
    let mut types = vec![0u8; n[0] as usize];
    s.read_exact(&mut types).await.unwrap();
    s.write_all(&[1]).await.unwrap();
    let mut res = [0u8; 4];
    s.read_exact(&mut res).await.unwrap();
    assert_eq!(res, [0; 4]);
    s.write_all(&[1]).await.unwrap();
    let mut head = [0u8; 24];
    s.read_exact(&mut head).await.unwrap();
    let mut name = vec![0u8; u32::from_be_bytes([head[20], head[21], head[22], head[23]]) as usize];
    s.read_exact(&mut name).await.unwrap();
    let t = Instant::now();
    let (mut r, mut w) = s.into_split();
    w.write_all(&[3, 0, 0, 0, 0, 0, 5, 0, 3, 0x20])
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = tokio::spawn(async move {
        let mut sent = 10u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !stop2.load(Ordering::Relaxed) {
            tick.tick().await;
            if w.write_all(&BATCH).await.is_err() {
                break;
            }
            sent += BATCH.len() as u64;
        }
        (sent, w)
    });
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = 0u64;
    while got < expect {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "stream ended after {got} of {expect} bytes");
        got += n as u64;
    }
    let took = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    let (sent, _w) = writer.await.unwrap();
    (took, sent)
}

// ---------------------------------------------------------------------------
// Baseline relays.
// ---------------------------------------------------------------------------

/// Copies until EOF with a 64 KiB buffer, like the session's server →
/// technician direction.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut r: R, mut w: W) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = w.shutdown().await;
}

/// Far hop: accepts one connection (through `wrap`), connects to the
/// server, copies both ways in split halves (the agent's shape).
async fn far_relay<S, F, Fut>(upstream: SocketAddr, wrap: F) -> SocketAddr
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = S> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (s, _) = l.accept().await.unwrap();
        s.set_nodelay(true).unwrap();
        let s = wrap(s).await;
        let up = TcpStream::connect(upstream).await.unwrap();
        up.set_nodelay(true).unwrap();
        let (sr, sw) = tokio::io::split(s);
        let (ur, uw) = tokio::io::split(up);
        let a = tokio::spawn(pump(sr, uw));
        let b = tokio::spawn(pump(ur, sw));
        let _ = tokio::join!(a, b);
    });
    addr
}

/// Near hop: accepts the viewer, connects (through `wrap`) to the far hop,
/// `copy_bidirectional` (the `accord connect` shape).
async fn near_relay<S, F, Fut>(far: SocketAddr, wrap: F) -> SocketAddr
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = S> + Send,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut v, _) = l.accept().await.unwrap();
        v.set_nodelay(true).unwrap();
        let tcp = TcpStream::connect(far).await.unwrap();
        tcp.set_nodelay(true).unwrap();
        let mut s = wrap(tcp).await;
        let _ = tokio::io::copy_bidirectional(&mut v, &mut s).await;
    });
    addr
}

// ---------------------------------------------------------------------------
// The PKI, the agent.
// ---------------------------------------------------------------------------

struct Pki {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    agent: (PathBuf, PathBuf),
    tech: (PathBuf, PathBuf),
    audit: PathBuf,
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("Bench CA").unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, &ca.pem.cert).unwrap();
    let write = |name: &str, pem: accord::tls::demo::Pem| {
        let c = dir.path().join(format!("{name}.pem"));
        let k = dir.path().join(format!("{name}.key"));
        std::fs::write(&c, &pem.cert).unwrap();
        std::fs::write(&k, &pem.key).unwrap();
        (c, k)
    };
    let agent = write("agent", ca.leaf("localhost", "Bench", true, 30).unwrap());
    let tech = write(
        "tech",
        ca.leaf("Jeanne Martin", "Helpdesk CHU", false, 30).unwrap(),
    );
    let audit = dir.path().join("audit.jsonl");
    Pki {
        _dir: dir,
        ca: ca_path,
        agent,
        tech,
        audit,
    }
}

#[derive(Clone)]
struct Says(Answer);

impl Prompter for Says {
    async fn ask(&self, _req: PromptRequest) -> Result<Answer, PromptError> {
        Ok(self.0)
    }
}

/// One Accord session: the real agent and the real `accord connect`
/// tunnel between the synthetic server and viewer.
async fn accord_run(pki: &Pki, mode: Mode, count: usize, per: u64) -> (Duration, u64, u64) {
    let received = Arc::new(AtomicU64::new(0));
    let server = vnc_server(count, received.clone()).await;
    let mut policy = Policy::defaults();
    policy.listen.address = "127.0.0.1:0".parse().unwrap();
    policy.listen.cert = pki.agent.0.clone();
    policy.listen.key = pki.agent.1.clone();
    policy.technicians.ca = pki.ca.clone();
    policy.upstream.launch = accord::policy::Launch::None;
    policy.upstream.vnc = UpstreamAddr::Tcp(server);
    policy.audit.path = Some(pki.audit.clone());
    let answer = if mode == Mode::Control {
        Answer::Control
    } else {
        Answer::ViewOnly
    };
    let broker = Broker::new(
        Arc::new(policy),
        Arc::new(MemoryJournal::default()),
        Says(answer),
    );
    let agent = Agent::bind(broker).await;
    let addr = agent.local_addr().expect("agent listening");
    let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let agent_task = tokio::spawn(agent.run(async move {
        let _ = stop_rx.await;
    }));
    let cfg = ConnectConfig {
        host: "127.0.0.1".into(),
        port: addr.port(),
        cert: pki.tech.0.clone(),
        key: pki.tech.1.clone(),
        ca: pki.ca.clone(),
        ticket: "BENCH-1".into(),
        reason: "throughput".into(),
        mode: Mode::Control,
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let mut progress = |_p: connect::Progress| {};
    let accepted = connect::ask(&cfg, &mut progress).await.expect("accepted");
    assert_eq!(accepted.mode, mode);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let tunnel = tokio::spawn(async move {
        let mut progress = |_p: connect::Progress| {};
        accepted.serve(listener, &mut progress).await
    });
    let (took, sent) = viewer(local, count as u64 * per).await;
    // Give the last client messages a moment to reach the server.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let recv = received.load(Ordering::Relaxed);
    tunnel.abort();
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), agent_task).await;
    (took, sent, recv)
}

enum Path_ {
    Direct,
    Tcp,
    Tls,
    Accord(Mode),
}

async fn one_run(pki: &Pki, path: &Path_, count: usize, per: u64) -> (Duration, u64, u64) {
    if let Path_::Accord(mode) = path {
        return accord_run(pki, *mode, count, per).await;
    }
    let received = Arc::new(AtomicU64::new(0));
    let server = vnc_server(count, received.clone()).await;
    let entry = match path {
        Path_::Direct => server,
        Path_::Tcp => {
            let far = far_relay(server, |s| async move { s }).await;
            near_relay(far, |s| async move { s }).await
        }
        Path_::Tls => {
            let scfg = accord::tls::server_config(&pki.agent.0, &pki.agent.1, &pki.ca).unwrap();
            let ccfg = accord::tls::client_config(&pki.ca, &pki.tech.0, &pki.tech.1).unwrap();
            let far = far_relay(server, move |s| async move {
                tokio_rustls::TlsAcceptor::from(scfg)
                    .accept(s)
                    .await
                    .unwrap()
            })
            .await;
            near_relay(far, move |s| async move {
                tokio_rustls::TlsConnector::from(ccfg)
                    .connect("localhost".try_into().unwrap(), s)
                    .await
                    .unwrap()
            })
            .await
        }
        Path_::Accord(_) => unreachable!(),
    };
    let (took, sent) = viewer(entry, count as u64 * per).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    (took, sent, received.load(Ordering::Relaxed))
}

// ---------------------------------------------------------------------------
// The framer alone.
// ---------------------------------------------------------------------------

/// A realistic viewer stream: mostly pointer motion, some keys, an
/// incremental FBUR after every few events, now and then a SetEncodings.
fn client_stream(messages: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(messages * 8);
    let mut x: u32 = 0x9e37_79b9;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..messages {
        let r = rnd();
        if i % 5000 == 0 {
            out.extend_from_slice(&[2, 0, 0, 6]);
            for e in [16i32, 6, 0, -239, -223, -258] {
                out.extend_from_slice(&e.to_be_bytes());
            }
        } else if i % 6 == 5 {
            out.extend_from_slice(&[3, 1, 0, 0, 0, 0, 5, 0, 3, 0x20]);
        } else if r % 100 < 70 {
            let (px, py) = ((r >> 8) as u16 % 1280, (r >> 20) as u16 % 800);
            out.push(5);
            out.push(if r % 7 == 0 { 1 } else { 0 });
            out.extend_from_slice(&px.to_be_bytes());
            out.extend_from_slice(&py.to_be_bytes());
        } else {
            out.extend_from_slice(&[4, (r >> 3) as u8 & 1, 0, 0]);
            out.extend_from_slice(&(0x61 + (r >> 9) % 26).to_be_bytes());
        }
    }
    out
}

/// Framer + filter + re-serialisation over `stream`, fed in READ_CHUNK
/// pieces as the session does. Returns (seconds, messages, bytes out).
fn framer_pass(stream: &[u8], view_only: bool) -> (f64, u64, u64) {
    let mut framer = ClientFramer::new();
    let mut filter = Filter::new();
    let ctx = FilterCtx {
        view_only,
        hold_input: false,
        ..FilterCtx::default()
    };
    let mut out = Vec::with_capacity(READ_CHUNK * 2);
    let (mut msgs, mut bytes_out) = (0u64, 0u64);
    let t = Instant::now();
    for chunk in stream.chunks(READ_CHUNK) {
        framer.push(chunk).unwrap();
        while let Some(m) = framer.next_message().unwrap() {
            msgs += 1;
            match filter.apply(m, ctx) {
                Action::Forward(m) => m.write_to(&mut out),
                Action::Drop => {}
                Action::End(why) => panic!("{why}"),
            }
        }
        bytes_out += out.len() as u64;
        std::hint::black_box(&out);
        out.clear();
    }
    (t.elapsed().as_secs_f64(), msgs, bytes_out)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let mib: u64 = std::env::var("ACCORD_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 16 } else { 512 });
    let runs: usize = std::env::var("ACCORD_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if smoke { 1 } else { 3 })
        .max(1);
    let per = fbu_message().len() as u64;
    let count = ((mib << 20) / per).max(1) as usize;
    let total = count as u64 * per;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = pki();

    println!(
        "relay: {:.0} MiB server→viewer ({count} Raw updates of {RECT}×{RECT}×32bpp), viewer sending {} B every 1 ms; median of {runs} runs; {} CPUs",
        total as f64 / (1 << 20) as f64,
        BATCH.len(),
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    );
    println!();
    println!("| path | MB/s | × TLS relay | client B sent | B at server |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let paths = [
        ("TCP direct (no relay)", Path_::Direct),
        ("TCP relay ×2 (plain copy)", Path_::Tcp),
        ("TLS relay ×2 (raw TLS copy)", Path_::Tls),
        ("Accord, control", Path_::Accord(Mode::Control)),
        ("Accord, view-only", Path_::Accord(Mode::View)),
    ];
    let mut tls_mbs = 0.0;
    let mut accord_secs: Vec<(f64, u64)> = Vec::new();
    for (name, path) in &paths {
        let mut rates = Vec::new();
        let mut last = (0, 0);
        for _ in 0..runs {
            let (took, sent, recv) = rt.block_on(one_run(&pki, path, count, per));
            rates.push(total as f64 / took.as_secs_f64() / 1e6);
            last = (sent, recv);
            if let Path_::Accord(_) = path {
                accord_secs.push((took.as_secs_f64(), sent));
            }
        }
        let mbs = median(rates);
        if let Path_::Tls = path {
            tls_mbs = mbs;
        }
        let ratio = if tls_mbs > 0.0 {
            format!("{:.2}", mbs / tls_mbs)
        } else {
            "–".into()
        };
        let (sent, recv) = last;
        let recv_note = match path {
            Path_::Accord(Mode::View) => {
                let expect = 10 + (sent - 10) / BATCH.len() as u64 * BATCH_VIEW_BYTES;
                format!("{recv} (FBURs only: {expect})")
            }
            _ => recv.to_string(),
        };
        println!("| {name} | {mbs:.0} | {ratio} | {sent} | {recv_note} |");
    }

    // The framer and filter alone.
    let n_msgs = if smoke { 100_000 } else { 2_000_000 };
    let stream = client_stream(n_msgs);
    println!();
    println!(
        "framer + filter + re-serialisation alone, one thread, {n_msgs} messages ({:.1} MB, mix: ~58% pointer, ~25% key, ~17% FBUR, a SetEncodings every 5000):",
        stream.len() as f64 / 1e6
    );
    println!();
    println!("| mode | MB/s | messages/s | ns/message | bytes forwarded |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut ns_per_byte = 0.0f64;
    for (name, view) in [("control", false), ("view-only", true)] {
        framer_pass(&stream, view); // warm-up
        let mut secs = Vec::new();
        let mut last = (0, 0);
        for _ in 0..runs {
            let (s, m, b) = framer_pass(&stream, view);
            secs.push(s);
            last = (m, b);
        }
        let s = median(secs);
        ns_per_byte = ns_per_byte.max(s * 1e9 / stream.len() as f64);
        println!(
            "| {name} | {:.0} | {:.1} M | {:.1} | {} |",
            stream.len() as f64 / s / 1e6,
            last.0 as f64 / s / 1e6,
            s * 1e9 / last.0 as f64,
            last.1
        );
    }
    // Share of the relay time: the framer time for the client bytes that
    // went through during the Accord runs, over those runs' wall time.
    let (wall, client): (f64, u64) = accord_secs
        .iter()
        .fold((0.0, 0), |(w, c), (s, b)| (w + s, c + b));
    let framer_s = client as f64 * ns_per_byte / 1e9;
    println!();
    println!(
        "framer cost during the Accord runs: {client} client bytes × {ns_per_byte:.2} ns/B = {:.3} ms over {:.2} s of relay = {:.4} % of relay time",
        framer_s * 1e3,
        wall,
        100.0 * framer_s / wall
    );
    let flood_share = {
        // Worst case: a viewer sending client messages as fast as the relay
        // moves framebuffer bytes (it never does; input is tiny).
        let relay_ns_per_byte = wall * 1e9 / (accord_secs.len() as f64 * total as f64);
        100.0 * ns_per_byte / (ns_per_byte + relay_ns_per_byte)
    };
    println!(
        "(worst case, a viewer flooding client messages byte for byte as fast as the framebuffer flows: {flood_share:.0} % of the time)"
    );
}
