//! Shared test fixtures: a demo PKI, a scripted prompter, a tiny RFB server
//! standing in for the local VNC server, an RFB viewer, and an in-process
//! agent on 127.0.0.1:0.
#![allow(dead_code)]

#[cfg(any(feature = "logind", feature = "mutter"))]
pub mod bus;
#[cfg(feature = "logind")]
pub mod logind;
#[cfg(feature = "mutter")]
pub mod mutter;
pub mod peers;
#[cfg(unix)]
pub mod xserver;

use accord::broker::{
    Answer, Broker, MemoryJournal, PromptError, PromptRequest, Prompter, SessionControl,
};
use accord::connect::{self, ConnectConfig, ConnectError};
use accord::listener::Listener;
use accord::policy::{Policy, UpstreamAddr};
use accord::protocol::Mode;
use accord::tls::demo::{Ca, Pem};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub ca_path: PathBuf,
    pub agent_cert: PathBuf,
    pub agent_key: PathBuf,
    pub tech_cert: PathBuf,
    pub tech_key: PathBuf,
}

pub fn write_pem(dir: &Path, name: &str, pem: &Pem) -> (PathBuf, PathBuf) {
    let c = dir.join(format!("{name}.pem"));
    let k = dir.join(format!("{name}.key"));
    std::fs::write(&c, &pem.cert).unwrap();
    std::fs::write(&k, &pem.key).unwrap();
    (c, k)
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("Test CA").unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, &ca.pem.cert).unwrap();
        let (agent_cert, agent_key) = write_pem(
            dir.path(),
            "agent",
            &ca.leaf("localhost", "Test", true, 30).unwrap(),
        );
        let (tech_cert, tech_key) = write_pem(
            dir.path(),
            "tech",
            &ca.leaf("Jeanne Martin", "Helpdesk CHU", false, 30).unwrap(),
        );
        Pki {
            dir,
            ca,
            ca_path,
            agent_cert,
            agent_key,
            tech_cert,
            tech_key,
        }
    }

    /// Another technician certificate from the same CA.
    pub fn technician(&self, name: &str, cn: &str, valid_days: i64) -> (PathBuf, PathBuf) {
        write_pem(
            self.dir.path(),
            name,
            &self.ca.leaf(cn, "Helpdesk CHU", false, valid_days).unwrap(),
        )
    }

    pub fn policy(&self, upstream: SocketAddr) -> Policy {
        let mut p = Policy::defaults();
        p.listen.address = "127.0.0.1:0".parse().unwrap();
        p.listen.cert = self.agent_cert.clone();
        p.listen.key = self.agent_key.clone();
        p.technicians.ca = self.ca_path.clone();
        p.upstream.launch = accord::policy::Launch::None;
        p.upstream.vnc = UpstreamAddr::Tcp(upstream);
        p.consent.timeout = Duration::from_secs(5);
        p.audit.path = Some(self.dir.path().join("audit.jsonl"));
        p
    }

    pub fn connect_config(&self, agent: SocketAddr, mode: Mode) -> ConnectConfig {
        ConnectConfig {
            host: "127.0.0.1".into(),
            port: agent.port(),
            cert: self.tech_cert.clone(),
            key: self.tech_key.clone(),
            ca: self.ca_path.clone(),
            ticket: "INC-4711".into(),
            reason: "Imprimante".into(),
            mode,
            listen: "127.0.0.1:0".parse().unwrap(),
        }
    }
}

/// What the scripted prompter does for one request.
#[derive(Clone, Debug)]
pub enum Step {
    Answer(Answer, Duration),
    Never,
    Fail,
}

#[derive(Clone, Default)]
pub struct ScriptedPrompter {
    pub script: Arc<Mutex<VecDeque<Step>>>,
    pub asked: Arc<Mutex<Vec<PromptRequest>>>,
    /// Set to simulate the UI disappearing.
    pub gone: Arc<tokio::sync::Notify>,
}

impl ScriptedPrompter {
    pub fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        let p = ScriptedPrompter::default();
        p.script.lock().unwrap().extend(steps);
        p
    }
    /// Answers at once, in order; then never.
    pub fn answers(answers: impl IntoIterator<Item = Answer>) -> Self {
        Self::new(answers.into_iter().map(|a| Step::Answer(a, Duration::ZERO)))
    }
    pub fn asked(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

impl Prompter for ScriptedPrompter {
    async fn ask(&self, req: PromptRequest) -> Result<Answer, PromptError> {
        self.asked.lock().unwrap().push(req);
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Step::Never);
        match step {
            Step::Answer(a, d) => {
                tokio::time::sleep(d).await;
                Ok(a)
            }
            Step::Never => std::future::pending().await,
            Step::Fail => Err(PromptError::Unavailable("window cannot open".into())),
        }
    }

    async fn closed(&self) {
        self.gone.notified().await
    }
}

/// An in-process agent asking `prompter`; generic so that a test can bring
/// its own prompter (one that answers when the test says).
pub struct RunningAgent<P = ScriptedPrompter> {
    pub addr: SocketAddr,
    pub ctl: SessionControl,
    pub journal: Arc<MemoryJournal>,
    pub prompter: P,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Every record of a memory journal, as the audit log writes them.
pub fn records(j: &MemoryJournal) -> Vec<serde_json::Map<String, serde_json::Value>> {
    j.events
        .lock()
        .unwrap()
        .iter()
        .map(|e| e.to_fields())
        .collect()
}

/// An in-process agent on 127.0.0.1:0 asking `prompter`, in a memory
/// journal; it runs until `stop` is sent or dropped.
pub struct Spawned {
    pub addr: SocketAddr,
    pub ctl: SessionControl,
    pub journal: Arc<MemoryJournal>,
    pub stop: oneshot::Sender<()>,
    pub task: tokio::task::JoinHandle<()>,
}

pub async fn spawn_agent<P: Prompter>(policy: Policy, prompter: P) -> Spawned {
    let journal = Arc::new(MemoryJournal::default());
    let broker = Broker::new(Arc::new(policy), journal.clone(), prompter);
    let agent = Listener::bind(broker).await;
    let addr = agent.local_addr().expect("agent listening");
    let ctl = agent.control();
    let (stop, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async move {
        let _ = rx.await;
    }));
    Spawned {
        addr,
        ctl,
        journal,
        stop,
        task,
    }
}

impl<P: Prompter + Clone> RunningAgent<P> {
    pub async fn start(policy: Policy, prompter: P) -> RunningAgent<P> {
        let Spawned {
            addr,
            ctl,
            journal,
            stop,
            task,
        } = spawn_agent(policy, prompter.clone()).await;
        RunningAgent {
            addr,
            ctl,
            journal,
            prompter,
            stop: Some(stop),
            task: Some(task),
        }
    }
}

impl<P> RunningAgent<P> {
    pub async fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("agent stops within 10 s")
                .unwrap();
        }
    }

    pub fn events(&self) -> Vec<String> {
        self.journal
            .events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.name().to_string())
            .collect()
    }

    pub fn records(&self) -> Vec<serde_json::Map<String, serde_json::Value>> {
        records(&self.journal)
    }

    /// The record of a request about a running session (raise, watch) made
    /// from another certificate than the session's: refused `bad_request`.
    pub async fn wait_foreign_rejection(&self, subject: &str) {
        let r = self
            .wait_event("request_rejected", "why", "bad_request")
            .await;
        let detail = r["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("another certificate"), "{r:?}");
        assert_eq!(r["technician"]["subject"], subject);
    }

    /// Waits until an event with this name (and field values) is recorded.
    pub async fn wait_event(
        &self,
        name: &str,
        field: &str,
        value: &str,
    ) -> serde_json::Map<String, serde_json::Value> {
        for _ in 0..500 {
            if let Some(r) = self.records().into_iter().find(|r| {
                r["event"] == name
                    && (field.is_empty() || r.get(field).and_then(|v| v.as_str()) == Some(value))
            }) {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no {name} with {field}={value} in {:?}", self.records());
    }
}

/// A minimal RFB 3.8 server with security None standing in for x11vnc:
/// it sends a Bell after init and keeps what the client sends after init.
pub struct RfbStub {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<u8>>>,
    pub connections: Arc<Mutex<u32>>,
    pub closed: Arc<tokio::sync::Notify>,
}

pub const STUB_NAME: &[u8] = b"stub-desktop";

pub fn server_init() -> Vec<u8> {
    let mut si = Vec::new();
    si.extend_from_slice(&64u16.to_be_bytes());
    si.extend_from_slice(&48u16.to_be_bytes());
    // 32 bpp, depth 24, little endian, true colour, max 255, shifts 16/8/0.
    si.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    si.extend_from_slice(&(STUB_NAME.len() as u32).to_be_bytes());
    si.extend_from_slice(STUB_NAME);
    si
}

impl RfbStub {
    pub async fn start() -> RfbStub {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let closed = Arc::new(tokio::sync::Notify::new());
        let (r, c, cl) = (received.clone(), connections.clone(), closed.clone());
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                *c.lock().unwrap() += 1;
                let r = r.clone();
                let cl = cl.clone();
                tokio::spawn(async move {
                    let _ = serve_stub(&mut s, &r).await;
                    cl.notify_waiters();
                });
            }
        });
        RfbStub {
            addr,
            received,
            connections,
            closed,
        }
    }

    pub fn received(&self) -> Vec<u8> {
        self.received.lock().unwrap().clone()
    }
}

/// Serves one connection as [`RfbStub`] does, on any stream (a launched
/// server's socket in tests of the screen Accord starts).
pub async fn serve_stub<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    received: &Mutex<Vec<u8>>,
) -> std::io::Result<()> {
    s.write_all(b"RFB 003.008\n").await?;
    let mut v = [0u8; 12];
    s.read_exact(&mut v).await?;
    s.write_all(&[1, 1]).await?;
    let mut choice = [0u8; 1];
    s.read_exact(&mut choice).await?;
    s.write_all(&0u32.to_be_bytes()).await?;
    let mut shared = [0u8; 1];
    s.read_exact(&mut shared).await?;
    received.lock().unwrap().push(0xEE); // marker: ClientInit seen
    received.lock().unwrap().push(shared[0]);
    s.write_all(&server_init()).await?;
    s.write_all(&[2]).await?; // Bell
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        received.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

/// A minimal RFB 3.8 viewer: handshake with security None, then returns the
/// stream and the ServerInit it got.
pub async fn rfb_viewer(addr: SocketAddr) -> std::io::Result<(TcpStream, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    let mut v = [0u8; 12];
    s.read_exact(&mut v).await?;
    assert_eq!(&v[..4], b"RFB ");
    s.write_all(b"RFB 003.008\n").await?;
    let mut n = [0u8; 1];
    s.read_exact(&mut n).await?;
    let mut types = vec![0u8; n[0] as usize];
    s.read_exact(&mut types).await?;
    assert!(types.contains(&1), "security None offered: {types:?}");
    s.write_all(&[1]).await?;
    let mut result = [0u8; 4];
    s.read_exact(&mut result).await?;
    assert_eq!(result, [0, 0, 0, 0]);
    s.write_all(&[0]).await?; // ClientInit, shared = 0 (Accord forces 1)
    let mut head = [0u8; 24];
    s.read_exact(&mut head).await?;
    let len = u32::from_be_bytes([head[20], head[21], head[22], head[23]]) as usize;
    let mut name = vec![0u8; len];
    s.read_exact(&mut name).await?;
    let mut si = head.to_vec();
    si.extend_from_slice(&name);
    Ok((s, si))
}

/// Runs the real `accord connect` code: asks, then serves one viewer on
/// 127.0.0.1:0. Returns the local tunnel address once accepted, and the task.
pub async fn connect_tunnel(
    cfg: ConnectConfig,
) -> (
    Result<SocketAddr, ConnectError>,
    tokio::task::JoinHandle<Result<(), ConnectError>>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let local = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel();
    let task = tokio::spawn(async move {
        let mut progress = |_p: connect::Progress| {};
        match connect::ask(&cfg, &mut progress).await {
            Ok(acc) => {
                let _ = tx.send(Ok(local));
                acc.serve(listener, &mut progress).await
            }
            Err(e) => {
                let code = e.exit_code();
                let _ = tx.send(Err(e));
                Err(ConnectError::Usage(format!("exit {code}")))
            }
        }
    });
    let r = rx.await.unwrap();
    (r, task)
}

/// Opens a raw mutual-TLS connection to the agent (for hostile requests).
pub async fn raw_tls(
    addr: SocketAddr,
    ca: &Path,
    cert: &Path,
    key: &Path,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cfg = accord::tls::client_config(ca, cert, key).unwrap();
    let tcp = TcpStream::connect(addr).await.unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect("127.0.0.1".try_into().unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until EOF or error (bounded by 15 s), returning what came.
pub async fn read_to_end<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Vec<u8> {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut out)).await;
    out
}

/// Established TCP connections whose local port is `port` (the server's
/// side of each client connection), from /proc/net/tcp. When Accord closes
/// its side, the kernel moves the server's side out of ESTABLISHED at once.
pub fn established_to(port: u16) -> usize {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    text.lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3
                && f[3] == "01"
                && f[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    == Some(port)
        })
        .count()
}

/// How a [`FakeServer`] sends framebuffer updates.
#[derive(Clone, Copy, Debug)]
pub enum Frames {
    /// One whole frame per FramebufferUpdateRequest, like a real server:
    /// the viewer waits for the frame, the server for the next request.
    Pull,
    /// A frame every interval, whatever the viewer asks (a clock on screen).
    Push(Duration),
    /// No updates at all.
    None,
}

/// What a [`FakeServer`] does, for the relay tests.
#[derive(Clone, Copy, Debug)]
pub struct FakeConfig {
    pub width: u16,
    pub height: u16,
    pub frames: Frames,
    /// Bytes the server reads per millisecond (a slow server); `None` =
    /// as fast as they come.
    pub read_per_ms: Option<usize>,
    /// Never reads after ClientInit (a stuck server).
    pub stuck: bool,
    /// Waits this long before its version string.
    pub hello_delay: Duration,
}

impl FakeConfig {
    pub fn new(width: u16, height: u16, frames: Frames) -> Self {
        FakeConfig {
            width,
            height,
            frames,
            read_per_ms: None,
            stuck: false,
            hello_delay: Duration::ZERO,
        }
    }
}

/// What a [`FakeServer`] read from the client, with arrival times.
pub type Received = Arc<Mutex<Vec<(std::time::Instant, Vec<u8>)>>>;

/// An RFB 3.8 server (security None) on 127.0.0.1:0 that serves Raw
/// 32 bpp FramebufferUpdates and records, with arrival times, every byte the
/// client sends after ClientInit.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub received: Received,
    pub accepted: Arc<std::sync::atomic::AtomicU32>,
    pub frames_sent: Arc<std::sync::atomic::AtomicU64>,
    /// Connections closed by the peer so far.
    pub closed: Arc<std::sync::atomic::AtomicU32>,
}

/// One Raw FramebufferUpdate covering the whole `w`×`h` screen.
pub fn raw_frame(w: u16, h: u16, seed: u8) -> Vec<u8> {
    let mut m = vec![0u8, 0, 0, 1, 0, 0, 0, 0];
    m.extend_from_slice(&w.to_be_bytes());
    m.extend_from_slice(&h.to_be_bytes());
    m.extend_from_slice(&0i32.to_be_bytes());
    let px = w as usize * h as usize * 4;
    m.extend((0..px).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    m
}

/// Lengths of the client messages the fake server needs to follow.
fn client_msg_len(b: &[u8]) -> Option<usize> {
    match *b.first()? {
        0 => Some(20),
        2 => {
            let n = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]) as usize;
            Some(4 + 4 * n)
        }
        3 => Some(10),
        4 => Some(8),
        5 => Some(6),
        6 => {
            let n = u32::from_be_bytes([*b.get(4)?, *b.get(5)?, *b.get(6)?, *b.get(7)?]);
            Some(8 + n as usize)
        }
        t => panic!("fake server: unexpected client message type {t}"),
    }
}

/// Splits the client's bytes into messages (for assertions).
pub fn client_messages(mut b: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(len) = client_msg_len(b) {
        if b.len() < len {
            break;
        }
        out.push(b[..len].to_vec());
        b = &b[len..];
    }
    out
}

impl FakeServer {
    pub async fn start(cfg: FakeConfig) -> FakeServer {
        use std::sync::atomic::Ordering;
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = FakeServer {
            addr,
            received: Arc::default(),
            accepted: Arc::default(),
            frames_sent: Arc::default(),
            closed: Arc::default(),
        };
        let (received, accepted, frames_sent, closed) = (
            srv.received.clone(),
            srv.accepted.clone(),
            srv.frames_sent.clone(),
            srv.closed.clone(),
        );
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                let (received, frames_sent, closed) =
                    (received.clone(), frames_sent.clone(), closed.clone());
                tokio::spawn(async move {
                    let _ = serve_fake(s, cfg, received, frames_sent).await;
                    closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        srv
    }

    /// Every byte received after ClientInit.
    pub fn bytes(&self) -> Vec<u8> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, b)| b.clone())
            .collect()
    }

    /// Arrival time of the last byte received.
    pub fn last_arrival(&self) -> Option<std::time::Instant> {
        self.received.lock().unwrap().last().map(|(t, _)| *t)
    }
}

async fn serve_fake(
    s: TcpStream,
    cfg: FakeConfig,
    received: Received,
    frames_sent: Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    use std::sync::atomic::Ordering;
    s.set_nodelay(true)?;
    let (mut r, mut w) = s.into_split();
    if !cfg.hello_delay.is_zero() {
        // Accord says nothing before the version string: a read returns
        // only when it closes.
        let mut b = [0u8; 1];
        tokio::select! {
            _ = tokio::time::sleep(cfg.hello_delay) => {}
            _ = r.read(&mut b) => return Ok(()),
        }
    }
    w.write_all(b"RFB 003.008\n").await?;
    let mut v = [0u8; 12];
    r.read_exact(&mut v).await?;
    w.write_all(&[1, 1]).await?;
    let mut b = [0u8; 1];
    r.read_exact(&mut b).await?;
    w.write_all(&0u32.to_be_bytes()).await?;
    r.read_exact(&mut b).await?; // ClientInit
    let mut si = Vec::new();
    si.extend_from_slice(&cfg.width.to_be_bytes());
    si.extend_from_slice(&cfg.height.to_be_bytes());
    si.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    si.extend_from_slice(&4u32.to_be_bytes());
    si.extend_from_slice(b"fake");
    w.write_all(&si).await?;
    let frames: Vec<Vec<u8>> = (0..2)
        .map(|i| raw_frame(cfg.width, cfg.height, i))
        .collect();
    let (req_tx, mut req_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let writer = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            match cfg.frames {
                Frames::Pull => {
                    if req_rx.recv().await.is_none() {
                        return;
                    }
                }
                Frames::Push(every) => tokio::time::sleep(every).await,
                // Keeps the write half open: dropping it would close the
                // server's side of the connection.
                Frames::None => std::future::pending::<()>().await,
            }
            if w.write_all(&frames[(n % 2) as usize]).await.is_err() {
                return;
            }
            n += 1;
            frames_sent.store(n, Ordering::Relaxed);
        }
    });
    if cfg.stuck {
        std::future::pending::<()>().await;
    }
    let mut pending = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let result = loop {
        let want = cfg.read_per_ms.unwrap_or(buf.len()).min(buf.len());
        let n = match r.read(&mut buf[..want]).await {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) => break Err(e),
        };
        received
            .lock()
            .unwrap()
            .push((std::time::Instant::now(), buf[..n].to_vec()));
        pending.extend_from_slice(&buf[..n]);
        while let Some(len) = client_msg_len(&pending) {
            if pending.len() < len {
                break;
            }
            if pending[0] == 3 {
                let _ = req_tx.send(());
            }
            pending.drain(..len);
        }
        if cfg.read_per_ms.is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    writer.abort();
    result
}
