//! Relay throughput: a synthetic VNC server streams
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
//! Then real framebuffer streams: Raw, Tight and ZRLE
//! recorded at bench start from x11vnc on a private Xvfb ([`record`]; rows
//! skipped, with a note, when Xvfb or x11vnc is missing), and the synthetic
//! Raw stream, each replayed in a loop by a server that answers the viewer's
//! SetPixelFormat and SetEncodings honestly, through the raw TLS relay ×2
//! and through Accord (control), interleaved in the same run: Accord
//! rewrites the viewer's SetEncodings and frames every server message, and
//! should keep ≥ 0.9× the raw TLS copy. Then the server framer alone on each
//! stream (goal on Raw: ≥ 1 GB/s). Nothing recorded is kept.
//!
//! Then the client framer + filter alone, on a realistic client stream, in
//! both modes, and what that costs as a share of the relay time.
//!
//! Run: `cargo bench --bench relay`. Environment: `ACCORD_BENCH_MIB`
//! (default 512) and `ACCORD_BENCH_RUNS` (default 3; the median is shown).
//! Under `cargo test --benches` (no `--bench` argument) every row runs once
//! on 16 MiB, as a smoke test that no path hangs (each run has a deadline).

use accord::broker::{Answer, Broker, MemoryJournal, PromptError, PromptRequest, Prompter};
use accord::connect::{self, ConnectConfig};
use accord::listener::Listener;
use accord::policy::{Policy, UpstreamAddr};
use accord::protocol::Mode;
use accord::rfb::server::RECT_ENCODINGS;
use accord::rfb::{
    Action, ClientFramer, ClientMessage, Filter, FilterCtx, PixelFormat, READ_CHUNK, ServerCounts,
    ServerFramer, ServerInit, ServerStep,
};
use accord::tls::demo::Ca;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "relay/record.rs"]
mod record;

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

/// A server→viewer stream the fake server replays in a loop: the Raw
/// synthetic one above, or one recorded from x11vnc ([`record`]).
struct Stream {
    name: String,
    server_init: Vec<u8>,
    /// What the viewer sends before its first request: SetPixelFormat and
    /// SetEncodings, or nothing (Raw in ServerInit's format).
    announce: Option<(PixelFormat, Vec<i32>)>,
    /// One loop: whole messages, as the server sent them after ServerInit.
    body: Vec<u8>,
    /// What the server framer sees in one loop.
    counts: ServerCounts,
    /// Seconds the recording took (0 for the synthetic stream).
    recorded_s: f64,
}

impl Stream {
    /// The synthetic Raw updates, the viewer announcing nothing (the rows
    /// of the first table, as before).
    fn synthetic() -> Stream {
        let body = fbu_message();
        let si = server_init();
        let counts = server_counts(&si, None, &body);
        Stream {
            name: format!("Raw synthetic ({RECT}×{RECT} rects)"),
            server_init: si,
            announce: None,
            body,
            counts,
            recorded_s: 0.0,
        }
    }

    /// The same updates, the viewer announcing Raw and the pseudo-encodings
    /// the recording viewer announces, like the recorded streams.
    fn synthetic_announced() -> Stream {
        let mut encodings = vec![0];
        encodings.extend(record::PSEUDO);
        Stream {
            announce: Some((PixelFormat::RGB888, encodings)),
            ..Stream::synthetic()
        }
    }

    fn recorded(name: &str, r: record::Recording) -> Stream {
        Stream {
            name: name.into(),
            server_init: r.server_init,
            announce: Some((r.pixel_format, r.encodings)),
            body: r.body,
            counts: r.counts,
            recorded_s: r.seconds,
        }
    }

    fn init(&self) -> ServerInit {
        ServerInit::parse(&self.server_init).expect("a well-formed ServerInit")
    }

    /// The format every update of the stream is encoded in.
    fn pixel_format(&self) -> PixelFormat {
        match &self.announce {
            Some((pf, _)) => *pf,
            None => self.init().pixel_format,
        }
    }

    /// Encodings (pseudo ones included) an honest server may send only if
    /// the viewer announced them: all those in the stream but Raw.
    fn needs(&self) -> Vec<i32> {
        RECT_ENCODINGS
            .into_iter()
            .filter(|&e| e != 0 && self.counts.rects_of(e) > 0)
            .collect()
    }

    /// The viewer's first messages: the format and encodings it wants, then
    /// a request for the whole screen.
    fn viewer_hello(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some((pf, encodings)) = &self.announce {
            ClientMessage::SetPixelFormat(*pf).write_to(&mut out);
            ClientMessage::SetEncodings(encodings.clone()).write_to(&mut out);
        }
        let si = self.init();
        ClientMessage::FramebufferUpdateRequest {
            incremental: false,
            x: 0,
            y: 0,
            width: si.width,
            height: si.height,
        }
        .write_to(&mut out);
        out
    }

    /// Rectangles per encoding in one loop, e.g. "Tight 812, Cursor 1".
    fn rects(&self) -> String {
        let names = [
            "Raw",
            "CopyRect",
            "RRE",
            "Hextile",
            "Tight",
            "ZRLE",
            "ZYWRLE",
            "Cursor",
            "XCursor",
            "DesktopSize",
            "LastRect",
            "DesktopName",
            "ExtDesktopSize",
            "QEMU key",
            "QEMU pointer",
        ];
        let parts: Vec<String> = names
            .iter()
            .zip(self.counts.rects)
            .filter(|(_, n)| *n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        parts.join(", ")
    }
}

/// What the server framer sees in `body` (which must end at a message
/// boundary), starting from ServerInit's format and the viewer's.
fn server_counts(server_init: &[u8], viewer_pf: Option<PixelFormat>, body: &[u8]) -> ServerCounts {
    let si = ServerInit::parse(server_init).expect("a well-formed ServerInit");
    let mut f = ServerFramer::new(si.pixel_format);
    if let Some(pf) = viewer_pf {
        f.set_pixel_format(pf);
    }
    let mut pos = 0;
    while pos < body.len() {
        match f.step(&body[pos..]).expect("a stream the framer follows") {
            ServerStep::Forward(n) | ServerStep::Drop(n) => pos += n,
            ServerStep::NeedMore => break,
        }
    }
    assert!(f.at_boundary(), "the stream ends at a message boundary");
    f.counts().clone()
}

// ---------------------------------------------------------------------------
// Synthetic peers.
// ---------------------------------------------------------------------------

/// An RFB 3.8 server (security None) that sends `stream`'s ServerInit,
/// reads the viewer's messages up to its first FramebufferUpdateRequest,
/// then writes `stream`'s body `loops` times, draining and counting what
/// the viewer sends. Honest like a real server: if the viewer did not set
/// the pixel format the stream is encoded in, or did not announce every
/// encoding the stream uses (after Accord rewrote its SetEncodings), it
/// closes instead of sending what the viewer cannot expect.
async fn vnc_server(stream: Arc<Stream>, loops: usize, received: Arc<AtomicU64>) -> SocketAddr {
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
        s.write_all(&stream.server_init).await.unwrap();
        let (mut r, mut w) = s.into_split();
        // A real server waits for the first FramebufferUpdateRequest, and
        // encodes in the format and encodings asked for before it.
        let mut pf = stream.init().pixel_format;
        let mut announced = Vec::new();
        let mut framer = ClientFramer::new();
        let mut buf = vec![0u8; 64 * 1024];
        'first: loop {
            let n = match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            received.fetch_add(n as u64, Ordering::Relaxed);
            framer.push(&buf[..n]).expect("the viewer's messages");
            while let Some(m) = framer.next_message().expect("the viewer's messages") {
                match m {
                    ClientMessage::SetPixelFormat(p) => pf = p,
                    ClientMessage::SetEncodings(list) => announced = list,
                    ClientMessage::FramebufferUpdateRequest { .. } => break 'first,
                    _ => {}
                }
            }
        }
        let missing: Vec<i32> = stream
            .needs()
            .into_iter()
            .filter(|e| !announced.contains(e))
            .collect();
        if pf != stream.pixel_format() || !missing.is_empty() {
            eprintln!(
                "replay server ({}): the viewer announced {announced:?} (missing {missing:?}) and format {pf:?}; an honest server cannot send this stream",
                stream.name
            );
            return;
        }
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
        for _ in 0..loops {
            if w.write_all(&stream.body).await.is_err() {
                break;
            }
        }
        let _ = drain.await;
    });
    addr
}

/// Connects, does the viewer's handshake, sends `hello` (its format,
/// encodings and first request), then reads `expect` bytes while sending
/// [`BATCH`] every millisecond. Returns the time from ServerInit to the
/// last byte, and the client bytes sent.
async fn viewer(addr: SocketAddr, hello: &[u8], expect: u64) -> (Duration, u64) {
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
    w.write_all(hello).await.unwrap();
    let hello_len = hello.len() as u64;
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    let writer = tokio::spawn(async move {
        let mut sent = hello_len;
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
/// technician direction, flushing whenever the reader has nothing ready
/// (as `tokio::io::copy` does): without it the tail of the stream can stay
/// inside rustls while the server waits, and the baseline itself stalls.
async fn pump<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(mut r: R, mut w: W) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut unflushed = false;
    loop {
        match read_or_flush(&mut r, &mut w, &mut buf, &mut unflushed).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if w.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                unflushed = true;
            }
        }
    }
    let _ = w.shutdown().await;
}

/// Reads into `buf`; while the read waits, flushes `w` if `unflushed`.
async fn read_or_flush<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(
    r: &mut R,
    w: &mut W,
    buf: &mut [u8],
    unflushed: &mut bool,
) -> std::io::Result<usize> {
    use std::pin::Pin;
    use std::task::Poll;
    std::future::poll_fn(|cx| {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Ready(res) => Poll::Ready(res.map(|()| rb.filled().len())),
            Poll::Pending => {
                if *unflushed {
                    match Pin::new(&mut *w).poll_flush(cx) {
                        Poll::Ready(Ok(())) => *unflushed = false,
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Pending => {}
                    }
                }
                Poll::Pending
            }
        }
    })
    .await
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
async fn accord_run(
    pki: &Pki,
    mode: Mode,
    stream: &Arc<Stream>,
    loops: usize,
) -> (Duration, u64, u64) {
    let received = Arc::new(AtomicU64::new(0));
    let server = vnc_server(stream.clone(), loops, received.clone()).await;
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
    let agent = Listener::bind(broker).await;
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
    let expect = loops as u64 * stream.body.len() as u64;
    let (took, sent) = viewer(local, &stream.viewer_hello(), expect).await;
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

async fn one_run(
    pki: &Pki,
    path: &Path_,
    stream: &Arc<Stream>,
    loops: usize,
) -> (Duration, u64, u64) {
    if let Path_::Accord(mode) = path {
        return accord_run(pki, *mode, stream, loops).await;
    }
    let received = Arc::new(AtomicU64::new(0));
    let server = vnc_server(stream.clone(), loops, received.clone()).await;
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
    let expect = loops as u64 * stream.body.len() as u64;
    let (took, sent) = viewer(entry, &stream.viewer_hello(), expect).await;
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

// ---------------------------------------------------------------------------
// Recorded streams.
// ---------------------------------------------------------------------------

/// Records Raw, Tight and ZRLE from x11vnc (see [`record`]); none, with a
/// note, when Xvfb or x11vnc is missing or the recording fails.
fn record_streams(smoke: bool) -> Vec<Stream> {
    let missing = record::missing_peers();
    if !missing.is_empty() {
        println!(
            "recorded streams: {} not installed: the x11vnc Raw, Tight and ZRLE rows are skipped (scripts/deps.sh test installs them)",
            missing.join(", ")
        );
        println!();
        return Vec::new();
    }
    let (seconds, max_updates) = if smoke { (1.5, 40) } else { (4.0, 400) };
    let desktop = match record::Desktop::start() {
        Ok(d) => d,
        Err(e) => {
            println!("recorded streams: {e}: the x11vnc rows are skipped");
            println!();
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (name, encoding) in [
        ("Raw (x11vnc)", 0),
        ("Tight (x11vnc)", 7),
        ("ZRLE (x11vnc)", 16),
    ] {
        match desktop.record(encoding, seconds, max_updates) {
            Ok(r) => out.push(Stream::recorded(name, r)),
            Err(e) => println!("recording {name}: {e}: its rows are skipped"),
        }
    }
    out
}

/// One run of `path` under a deadline: a stalled relay fails the bench
/// (and `cargo test --benches`) instead of hanging it.
fn timed_run(
    rt: &tokio::runtime::Runtime,
    pki: &Pki,
    name: &str,
    path: &Path_,
    stream: &Arc<Stream>,
    loops: usize,
) -> (Duration, u64, u64) {
    let bytes = loops as u64 * stream.body.len() as u64;
    // 60 s plus 10 MB/s: far beyond any healthy run.
    let limit = Duration::from_secs(60 + bytes / 10_000_000);
    rt.block_on(async {
        match tokio::time::timeout(limit, one_run(pki, path, stream, loops)).await {
            Ok(r) => r,
            Err(_) => panic!(
                "{name}, {}: no end after {limit:?}: the relay stalled",
                stream.name
            ),
        }
    })
}

/// Every stream through the raw TLS relay and through Accord (control),
/// the two interleaved run by run so that both see the same machine.
fn recorded_rows(
    rt: &tokio::runtime::Runtime,
    pki: &Pki,
    streams: &[Arc<Stream>],
    mib: u64,
    runs: usize,
) {
    let si = streams.last().map(|s| s.init());
    println!(
        "server→viewer streams: the synthetic one with the viewer announcing Raw, and those recorded from x11vnc on Xvfb{} (gradient wallpaper, openbox, two xterms printing text, an ImageMagick animation of photo-like images; the viewer asks for 32 bpp, one encoding plus TigerVNC's pseudo-encodings {:?}, the whole screen then one incremental update at a time). Each is replayed in a loop to about {mib} MiB by a server that answers the viewer's SetPixelFormat and SetEncodings honestly.",
        si.map(|si| format!(" {}×{}", si.width, si.height))
            .unwrap_or_default(),
        record::PSEUDO,
    );
    println!();
    println!("| stream | recorded | one loop | updates | B / update | rectangles in one loop |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    for s in streams {
        let recorded = if s.recorded_s > 0.0 {
            format!("{:.1} s", s.recorded_s)
        } else {
            "–".into()
        };
        println!(
            "| {} | {recorded} | {:.2} MB | {} | {:.0} | {} |",
            s.name,
            s.body.len() as f64 / 1e6,
            s.counts.updates,
            s.body.len() as f64 / s.counts.updates.max(1) as f64,
            s.rects()
        );
    }
    println!();
    println!(
        "| stream | MB | TLS relay ×2 MB/s | Accord control MB/s | Accord / TLS | per-run ratios | ≥ 0.9× |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | :---: |");
    for s in streams {
        let loops = ((mib << 20) / s.body.len() as u64).max(1) as usize;
        let bytes = loops as u64 * s.body.len() as u64;
        let (mut tls, mut accord, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let rate = |name: &str, path: Path_| {
                let (took, _, _) = timed_run(rt, pki, name, &path, s, loops);
                bytes as f64 / took.as_secs_f64() / 1e6
            };
            let t = rate("TLS relay ×2", Path_::Tls);
            let a = rate("Accord, control", Path_::Accord(Mode::Control));
            tls.push(t);
            accord.push(a);
            ratios.push(a / t);
        }
        let spread = format!(
            "{:.2}–{:.2}",
            ratios.iter().copied().fold(f64::INFINITY, f64::min),
            ratios.iter().copied().fold(0.0, f64::max)
        );
        // The median of the ratios of runs side by side: the machine's
        // drift between runs cancels out.
        let ratio = median(ratios);
        println!(
            "| {} | {:.0} | {:.0} | {:.0} | {ratio:.2} | {spread} | {} |",
            s.name,
            bytes as f64 / 1e6,
            median(tls),
            median(accord),
            if ratio >= 0.9 { "yes" } else { "no" }
        );
    }
    println!();
}

/// The server framer over `stream`, in READ_CHUNK reads as the session
/// does (an incomplete header stays in front of the next read), without
/// the sockets. Returns the seconds taken and what it saw.
fn server_framer_pass(si: &ServerInit, pf: PixelFormat, stream: &[u8]) -> (f64, ServerCounts) {
    let mut framer = ServerFramer::new(si.pixel_format);
    framer.set_pixel_format(pf);
    let (mut start, mut end) = (0usize, 0usize);
    let t = Instant::now();
    loop {
        let step = if start == end {
            ServerStep::NeedMore
        } else {
            framer
                .step(&stream[start..end])
                .expect("a stream the framer follows")
        };
        match step {
            ServerStep::Forward(n) => {
                std::hint::black_box(&stream[start..start + n]);
                start += n;
            }
            ServerStep::Drop(n) => start += n,
            ServerStep::NeedMore => {
                if end == stream.len() {
                    break;
                }
                end = (start + READ_CHUNK).min(stream.len());
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    assert!(start == stream.len() && framer.at_boundary());
    (secs, framer.counts().clone())
}

/// The server framer alone on each stream, looped to the bench volume
/// (at most 256 MiB in memory).
fn server_framer_rows(streams: &[Arc<Stream>], mib: u64, runs: usize, smoke: bool) {
    let cap = mib.min(256) << 20;
    println!(
        "server framer alone (ServerFramer::step over {} KiB reads, as the session feeds it), one thread, each stream looped to about {} MiB:",
        READ_CHUNK / 1024,
        cap >> 20
    );
    println!();
    println!("| stream | GB/s | updates/s | rectangles/s | ns / rectangle |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for s in streams {
        let loops = (cap / s.body.len() as u64).max(1) as usize;
        let data = s.body.repeat(loops);
        let si = s.init();
        let pf = s.pixel_format();
        if !smoke {
            server_framer_pass(&si, pf, &data); // warm-up
        }
        let mut secs = Vec::new();
        let mut counts = ServerCounts::default();
        for _ in 0..runs {
            let (t, c) = server_framer_pass(&si, pf, &data);
            secs.push(t);
            counts = c;
        }
        let t = median(secs);
        let rects: u64 = counts.rects.iter().sum();
        println!(
            "| {} | {:.1} | {:.0} | {:.1} M | {:.1} |",
            s.name,
            data.len() as f64 / t / 1e9,
            counts.updates as f64 / t,
            rects as f64 / t / 1e6,
            t * 1e9 / rects.max(1) as f64
        );
    }
    println!();
    println!(
        "(the framer reads headers only and never touches pixel or compressed data, so its GB/s is set by the bytes per rectangle: large Raw rectangles cost one header per read)"
    );
    println!();
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
    let synthetic = Arc::new(Stream::synthetic());
    let per = synthetic.body.len() as u64;
    let count = ((mib << 20) / per).max(1) as usize;
    let total = count as u64 * per;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let pki = pki();
    // Recorded first: x11vnc and its X server are gone before anything is timed.
    let recorded = record_streams(smoke);

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
            let (took, sent, recv) = timed_run(&rt, &pki, name, path, &synthetic, count);
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
    println!();

    // Recorded streams: the raw TLS baseline and Accord, same run.
    let mut streams = vec![Arc::new(Stream::synthetic_announced())];
    streams.extend(recorded.into_iter().map(Arc::new));
    recorded_rows(&rt, &pki, &streams, mib, runs);
    server_framer_rows(&streams, mib, runs, smoke);

    // The framer and filter alone.
    let n_msgs = if smoke { 100_000 } else { 2_000_000 };
    let stream = client_stream(n_msgs);
    println!();
    println!(
        "client framer + filter + re-serialisation alone, one thread, {n_msgs} messages ({:.1} MB, mix: ~58% pointer, ~25% key, ~17% FBUR, a SetEncodings every 5000):",
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
