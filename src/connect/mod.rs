//! `accord connect`: the technician's side. Asks for a session over mutual
//! TLS, shows progress while the clinician decides, then serves one local VNC
//! viewer and tunnels it (or starts the viewer itself, `--viewer`). No RFB
//! byte flows before the decision.
//!
//! Submodules: [`profile`] (where the certificate, key and CA come from),
//! [`text`] (what each outcome says, in French or English), [`viewer`] (the
//! viewer started for the technician), [`watch`] (what ended the session,
//! and mode changes as they happen, on a second connection).

pub mod profile;
pub mod text;
pub mod viewer;
pub mod watch;

pub use watch::Ending;

use crate::protocol::{self, AgentLine, Decision, LineReader, Mode, RefusalCode, Request};
use crate::tls::{self, TlsError};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use uuid::Uuid;

/// Default agent port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 5988;
/// Default local address for the technician's VNC viewer.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5901";
/// Longest wait for a decision: the policy's maximum timeout plus margin.
const MAX_WAIT: Duration = Duration::from_secs(660);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything `accord connect` needs, validated.
#[derive(Clone, Debug)]
pub struct ConnectConfig {
    pub host: String,
    pub port: u16,
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub ticket: String,
    pub reason: String,
    pub mode: Mode,
    pub listen: SocketAddr,
}

/// Failures, each with its documented exit code.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("network: {0}")]
    Network(String),
    /// The TLS handshake failed: which side refused, and why.
    #[error("{}", text::tls_failure(text::Lang::En, .0))]
    Handshake(TlsFailure),
    #[error("refused: {}", text::refusal(text::Lang::En, *.0))]
    Refused(RefusalCode),
    /// A refusal that says when a request may succeed (`rate_limited`'s
    /// `retry_after_s`, as a wall-clock time on this machine).
    #[error("refused: {}", text::refusal_until(text::Lang::En, *.why, *.retry_at))]
    RefusedUntil {
        why: RefusalCode,
        retry_at: SystemTime,
    },
}

/// Why the mutual-TLS handshake failed, told apart so the technician knows
/// whom to call: their own certificate refused by the workstation, or the
/// workstation's certificate refused by them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsFailure {
    /// The workstation refused the technician's certificate; the alert it
    /// sent (`certificate_expired`, `unknown_ca`, `certificate_revoked`, …).
    OursRefused(OursRefused),
    /// The workstation's certificate has expired (or is not yet valid).
    AgentCertExpired,
    /// The workstation's certificate was issued by a CA other than `--ca`.
    AgentCertUnknownIssuer,
    /// The workstation's certificate is not valid for the host name typed.
    AgentCertWrongName { host: String },
    /// Anything else, with rustls' words.
    Other(String),
}

/// The alert by which the workstation refused the technician's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OursRefused {
    Expired,
    UnknownCa,
    Revoked,
    /// Bad, unsupported or missing certificate: the workstation did not say more.
    Other,
}

impl TlsFailure {
    /// Classifies an I/O error from the TLS stream, if rustls is behind it.
    /// With TLS 1.3 the server's verdict on the client certificate arrives
    /// after the client's side of the handshake is done, so this is also
    /// applied to the first read.
    pub fn from_io(e: &std::io::Error, host: &str) -> Option<TlsFailure> {
        use rustls::{AlertDescription as A, CertificateError as C};
        let err = e.get_ref()?.downcast_ref::<rustls::Error>()?;
        Some(match err {
            rustls::Error::AlertReceived(a) => TlsFailure::OursRefused(match a {
                A::CertificateExpired => OursRefused::Expired,
                A::UnknownCA => OursRefused::UnknownCa,
                A::CertificateRevoked => OursRefused::Revoked,
                _ => OursRefused::Other,
            }),
            rustls::Error::InvalidCertificate(c) => match c {
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. } => TlsFailure::AgentCertExpired,
                C::UnknownIssuer => TlsFailure::AgentCertUnknownIssuer,
                C::NotValidForName | C::NotValidForNameContext { .. } => {
                    TlsFailure::AgentCertWrongName {
                        host: host.to_string(),
                    }
                }
                other => TlsFailure::Other(format!("{other:?}")),
            },
            other => TlsFailure::Other(other.to_string()),
        })
    }
}

impl ConnectError {
    /// Exit codes of DESIGN.md: 2 usage/configuration, 3 refused by the user,
    /// 4 no answer in time, 5 busy or rate limited, 6 policy, 7 network/TLS,
    /// 8 nobody at the workstation can answer.
    /// `bad_request` is a usage error (2); an unreachable VNC server or a
    /// stopping agent is a network condition (7): retry later.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConnectError::Usage(_) | ConnectError::Tls(_) => 2,
            ConnectError::Network(_) | ConnectError::Handshake(_) => 7,
            ConnectError::Refused(c) | ConnectError::RefusedUntil { why: c, .. } => match c {
                RefusalCode::User => 3,
                RefusalCode::Timeout => 4,
                RefusalCode::Busy | RefusalCode::RateLimited => 5,
                RefusalCode::Policy => 6,
                RefusalCode::BadRequest => 2,
                RefusalCode::UpstreamUnreachable | RefusalCode::AgentShuttingDown => 7,
                RefusalCode::NoUser | RefusalCode::UnsupportedSession => 8,
            },
        }
    }

    /// The agent's refusal code, with or without a retry time.
    pub fn refusal(&self) -> Option<RefusalCode> {
        match self {
            ConnectError::Refused(c) | ConnectError::RefusedUntil { why: c, .. } => Some(*c),
            _ => None,
        }
    }
}

/// The technician's identity as the workstation will see it: the subject
/// and the short fingerprint shown to the clinician (`--whoami`), read from
/// the certificate itself.
pub fn whoami(cert: &std::path::Path) -> Result<crate::tls::Identity, ConnectError> {
    let chain = tls::load_certs(cert)?;
    let leaf = chain.first().ok_or_else(|| TlsError::NoCert {
        path: cert.display().to_string(),
    })?;
    Ok(tls::identity_of(leaf)?)
}

/// Splits `HOST[:PORT]` (IPv6 as `[::1]:5988`).
pub fn parse_target(s: &str) -> Result<(String, u16), ConnectError> {
    let bad = || ConnectError::Usage(format!("{s:?} is not HOST or HOST:PORT"));
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(bad)?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| bad())?,
            None if after.is_empty() => DEFAULT_PORT,
            None => return Err(bad()),
        };
        return Ok((host.to_string(), port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => {
            let port = p.parse().map_err(|_| bad())?;
            if h.is_empty() {
                return Err(bad());
            }
            Ok((h.to_string(), port))
        }
        _ if s.is_empty() => Err(bad()),
        _ => Ok((s.to_string(), DEFAULT_PORT)),
    }
}

impl ConnectConfig {
    /// Checks what can be checked before touching the network.
    pub fn validate(&self) -> Result<(), ConnectError> {
        let req = self.request();
        let line = protocol::encode_request(&req);
        protocol::parse_request(&line[..line.len().saturating_sub(1)])
            .map_err(|e| ConnectError::Usage(format!("--ticket/--reason: {e}")))?;
        if !self.listen.ip().is_loopback() {
            // The tunnel's end is plain, unauthenticated RFB: never expose it.
            return Err(ConnectError::Usage(format!(
                "--listen {}: only a loopback address is allowed (the tunnel end is unauthenticated)",
                self.listen
            )));
        }
        Ok(())
    }

    fn request(&self) -> Request {
        Request {
            ticket: self.ticket.clone(),
            reason: self.reason.clone(),
            mode: self.mode,
            session: None,
        }
    }
}

/// What `accord connect` prints while it works ([`text::progress`] words it).
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    Connected {
        agent: String,
    },
    /// The clinician is being asked; `left` of the workstation's own deadline
    /// (the agent's "pending" line).
    Pending {
        left: Duration,
        asked: Mode,
    },
    /// Waiting without a known deadline (an agent that sends no "pending").
    Waiting {
        elapsed: Duration,
    },
    Accepted {
        mode: Mode,
        session: Uuid,
        listen: SocketAddr,
    },
    ViewerStarted {
        command: String,
    },
    ViewerConnected {
        from: SocketAddr,
    },
    /// The session's mode changed (the watch, [`watch`]); `by_user`: the
    /// workstation's user did it (switched to view only, or granted a
    /// request for control).
    /// She hid her screen (`true`: nothing reaches the viewer, input is
    /// held) or showed it again.
    Paused(bool),
    /// Her consent period ended: she is asked whether to go on, input is
    /// held, and the session ends after `grace` without an answer.
    Confirming {
        grace: Duration,
    },
    /// She chose to go on: input flows again.
    Confirmed,
    ModeChanged {
        mode: Mode,
        by_user: bool,
    },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&text::progress(text::Lang::En, self))
    }
}

/// An accepted session, before the viewer connects.
pub struct Accepted {
    pub session: Uuid,
    pub mode: Mode,
    stream: TlsStream<TcpStream>,
    /// RFB bytes the agent sent before the viewer connected.
    early: Vec<u8>,
}

/// Most the agent legitimately sends before the viewer answers: its RFB
/// version line (12 bytes). Anything beyond a small bound is refused.
const MAX_EARLY: usize = 4096;

/// Connects, sends the request and waits for the decision.
pub async fn ask(
    cfg: &ConnectConfig,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Accepted, ConnectError> {
    ask_request(cfg, cfg.request(), progress).await
}

/// `accord connect --request-control`: in running view-only session
/// `session` (of this same certificate), asks the user for control, on a
/// connection of its own that closes with the decision; the RFB stream
/// stays on the session's connection. `Ok` once control is granted.
pub async fn request_control(
    cfg: &ConnectConfig,
    session: Uuid,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), ConnectError> {
    let request = Request {
        mode: Mode::Control,
        session: Some(session),
        ..cfg.request()
    };
    let accepted = ask_request(cfg, request, progress).await?;
    if accepted.session != session || accepted.mode != Mode::Control {
        return Err(ConnectError::Network(format!(
            "the agent answered for session {} in {} mode, not control of {session}",
            accepted.session, accepted.mode
        )));
    }
    Ok(())
}

/// Where the running `accord connect` to `host:port` leaves its session id
/// for `--request-control`: `$XDG_RUNTIME_DIR/accord/connect-<host>-<port>.session`
/// (0600 in the 0700 per-user runtime directory, never a shared one such
/// as /tmp). `None` without a private runtime directory.
pub fn session_file(host: &str, port: u16) -> Option<PathBuf> {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    crate::platform::runtime_dir().map(|d| d.join(format!("connect-{safe}-{port}.session")))
}

/// What the running `accord connect` to a workstation leaves for
/// `--request-control`: its session, and the ticket and reason it asked
/// with (a request for control repeats them for the user).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionState {
    pub session: Uuid,
    pub ticket: String,
    pub reason: String,
}

/// The session the running `accord connect` to `host:port` wrote: one line
/// each for the session id, the ticket and the reason (neither may hold a
/// line break: the protocol forbids control characters).
pub fn read_session_file(host: &str, port: u16) -> Result<SessionState, ConnectError> {
    let path = session_file(host, port).ok_or_else(|| {
        ConnectError::Usage(
            "no private runtime directory ($XDG_RUNTIME_DIR): give the session with --session"
                .into(),
        )
    })?;
    let text = std::fs::read_to_string(&path).map_err(|e| {
        ConnectError::Usage(format!(
            "no running session to {host}:{port} known ({}: {e}): start `accord connect` first, or give --session",
            path.display()
        ))
    })?;
    let bad = || ConnectError::Usage(format!("{}: not a session file", path.display()));
    let mut lines = text.lines();
    let session = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or_else(bad)?;
    let ticket = lines.next().ok_or_else(bad)?.to_string();
    let reason = lines.next().ok_or_else(bad)?.to_string();
    Ok(SessionState {
        session,
        ticket,
        reason,
    })
}

/// The session file of a running tunnel; removed when the tunnel ends.
struct SessionFile(PathBuf);

impl SessionFile {
    /// Best effort: a session without the file only means
    /// `--request-control` needs `--session`.
    fn write(cfg: &ConnectConfig, session: Uuid) -> Option<SessionFile> {
        let (host, port) = (cfg.host.as_str(), cfg.port);
        use std::io::Write;
        let path = session_file(host, port)?;
        let dir = path.parent()?;
        let mut b = std::fs::DirBuilder::new();
        b.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(dir).ok()?;
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let mut f = o.open(&path).ok()?;
        write!(f, "{session}\n{}\n{}\n", cfg.ticket, cfg.reason).ok()?;
        Some(SessionFile(path))
    }
}

impl Drop for SessionFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Opens a mutual-TLS connection to the agent.
async fn open_tls(cfg: &ConnectConfig) -> Result<TlsStream<TcpStream>, ConnectError> {
    let client = tls::client_config(&cfg.ca, &cfg.cert, &cfg.key)?;
    let server_name = ServerName::try_from(cfg.host.clone())
        .map_err(|_| ConnectError::Usage(format!("{:?} is not a valid host name", cfg.host)))?;
    let tcp = tokio::time::timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((cfg.host.as_str(), cfg.port)),
    )
    .await
    .map_err(|_| ConnectError::Network(format!("{}:{}: connection timed out", cfg.host, cfg.port)))?
    .map_err(|e| ConnectError::Network(format!("{}:{}: {e}", cfg.host, cfg.port)))?;
    let _ = tcp.set_nodelay(true);
    let connector = tokio_rustls::TlsConnector::from(client);
    let tls_error = |e: std::io::Error| match TlsFailure::from_io(&e, &cfg.host) {
        Some(f) => ConnectError::Handshake(f),
        None => ConnectError::Network(format!("TLS: {e}")),
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name, tcp))
        .await
        .map_err(|_| ConnectError::Network("TLS handshake timed out".into()))?
        .map_err(tls_error)
}

/// Sends `request` and waits for the decision.
async fn ask_request(
    cfg: &ConnectConfig,
    request: Request,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Accepted, ConnectError> {
    cfg.validate()?;
    let mut stream = open_tls(cfg).await?;
    stream
        .write_all(&protocol::encode_request(&request))
        .await
        .map_err(|e| ConnectError::Network(e.to_string()))?;
    stream
        .flush()
        .await
        .map_err(|e| ConnectError::Network(e.to_string()))?;
    progress(Progress::Connected {
        agent: format!("{}:{}", cfg.host, cfg.port),
    });

    let started = tokio::time::Instant::now();
    let mut reader = LineReader::new();
    // The workstation's deadline, once its "pending" line told it.
    let mut deadline_at: Option<(tokio::time::Instant, Mode)> = None;
    let mut buf = [0u8; 512];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (decision, retry_after, early) = 'wait: loop {
        tokio::select! {
            r = stream.read(&mut buf) => {
                // The workstation refusing our certificate shows up here
                // (TLS 1.3 sends its verdict after the client's handshake).
                let n = r.map_err(|e| match TlsFailure::from_io(&e, &cfg.host) {
                    Some(f) => ConnectError::Handshake(f),
                    None => ConnectError::Network(format!("while waiting: {e}")),
                })?;
                if n == 0 {
                    return Err(ConnectError::Network("the agent closed the connection without an answer".into()));
                }
                let mut input = buf[..n].to_vec();
                // One read may hold "pending", the decision and, after
                // "accepted", the first RFB bytes (they belong to the viewer).
                while let Some((line, rest)) = reader
                    .push(&input)
                    .map_err(|e| ConnectError::Network(format!("agent answer: {e}")))?
                {
                    reader = LineReader::new();
                    match protocol::parse_agent_line(&line)
                        .map_err(|e| ConnectError::Network(e.to_string()))?
                    {
                        AgentLine::Pending { deadline, asked } => {
                            deadline_at = Some((tokio::time::Instant::now() + deadline, asked));
                            progress(Progress::Pending { left: deadline, asked });
                            input = rest;
                        }
                        AgentLine::Decision { decision, retry_after } => {
                            break 'wait (decision, retry_after, rest)
                        }
                    }
                }
            }
            _ = tick.tick() => {
                let elapsed = started.elapsed();
                if elapsed > MAX_WAIT {
                    return Err(ConnectError::Network("no decision from the agent".into()));
                }
                progress(match deadline_at {
                    Some((at, asked)) => Progress::Pending {
                        left: at.saturating_duration_since(tokio::time::Instant::now()),
                        asked,
                    },
                    None => Progress::Waiting { elapsed },
                });
            }
        }
    };
    match decision {
        Decision::Refused { why } => Err(match retry_after {
            Some(d) => ConnectError::RefusedUntil {
                why,
                retry_at: SystemTime::now() + d,
            },
            None => ConnectError::Refused(why),
        }),
        Decision::Accepted { mode, session } => Ok(Accepted {
            session,
            mode,
            stream,
            early,
        }),
    }
}

impl Accepted {
    /// Waits for one VNC viewer on `listener` and tunnels it until either
    /// side closes. If the session ends before a viewer comes (kill switch,
    /// idle timeout), returns at once.
    pub async fn serve(
        self,
        listener: TcpListener,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ConnectError> {
        self.serve_with_viewer(listener, None, progress).await
    }

    /// [`Accepted::serve`], with the viewer `accord connect` started: the
    /// tunnel ends when that viewer exits, and the viewer is killed when the
    /// session ends (its `Child` is `kill_on_drop`).
    pub async fn serve_with_viewer(
        self,
        listener: TcpListener,
        mut viewer_process: Option<tokio::process::Child>,
        progress: &mut (dyn FnMut(Progress) + Send),
    ) -> Result<(), ConnectError> {
        let Accepted {
            mut stream,
            mut early,
            ..
        } = self;
        let mut buf = [0u8; 512];
        let (mut viewer, from) = loop {
            tokio::select! {
                a = listener.accept() => break a.map_err(|e| ConnectError::Network(format!("local listener: {e}")))?,
                // EOF here is the session ending before a viewer came
                // (kill switch, idle timeout): a normal end.
                r = stream.read(&mut buf) => match r {
                    Ok(0) | Err(_) => return Ok(()),
                    Ok(n) => {
                        early.extend_from_slice(&buf[..n]);
                        if early.len() > MAX_EARLY {
                            return Err(ConnectError::Network("the agent sent unexpected data before the viewer connected".into()));
                        }
                    }
                },
                // The viewer we started gave up before connecting.
                _ = viewer::exited(&mut viewer_process) => return Ok(()),
            }
        };
        drop(listener);
        let _ = viewer.set_nodelay(true);
        progress(Progress::ViewerConnected { from });
        if !early.is_empty() {
            viewer
                .write_all(&early)
                .await
                .map_err(|e| ConnectError::Network(format!("viewer: {e}")))?;
        }
        let tunnel = tokio::select! {
            r = tokio::io::copy_bidirectional(&mut viewer, &mut stream) => r,
            // The technician closed the viewer: the session ends (the agent
            // sees the tunnel close and records it as ended by the technician).
            _ = viewer::exited(&mut viewer_process) => Ok((0, 0)),
        };
        if let Some(child) = viewer_process.as_mut() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
        match tunnel {
            Ok(_) => Ok(()),
            // A reset by either side is how sessions end (kill switch).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset
                        | std::io::ErrorKind::BrokenPipe
                        | std::io::ErrorKind::UnexpectedEof
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(ConnectError::Network(e.to_string())),
        }
    }
}

/// How long, once the tunnel has closed, to wait for the watch to say why:
/// the agent closes the session's stream before it has recorded the end.
const END_WAIT: Duration = Duration::from_secs(2);

/// The whole `accord connect`: bind the local end first (so a busy port fails
/// before the clinician is disturbed), find the viewer to start if asked
/// (same reason), ask, watch the session, then tunnel. Returns what ended
/// the session, as far as the agent said ([`Ending::Untold`] without a
/// watch: an older agent, or the second connection failed).
pub async fn run(
    cfg: &ConnectConfig,
    viewer_choice: Option<&viewer::ViewerChoice>,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<Ending, ConnectError> {
    cfg.validate()?;
    let plan = viewer_choice.map(viewer::ViewerPlan::resolve).transpose()?;
    let listener = match &plan {
        // The viewer is ours: any free loopback port will do (in the VNC
        // display range for viewers that only take a display number).
        Some(p) => p.bind(cfg.listen.ip()).await?,
        None => TcpListener::bind(cfg.listen)
            .await
            .map_err(|e| ConnectError::Usage(format!("--listen {}: {e}", cfg.listen)))?,
    };
    let listen = listener.local_addr().unwrap_or(cfg.listen);
    let accepted = ask(cfg, progress).await?;
    // Before the technician is told "accepted" (and the viewer starts), so
    // that from then on every change and the end are told. Bounded: a
    // watch that cannot open only means the end is not explained.
    let watch = match watch::Watch::open(cfg, accepted.session).await {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::debug!("cannot watch session {}: {e}", accepted.session);
            None
        }
    };
    progress(Progress::Accepted {
        mode: accepted.mode,
        session: accepted.session,
        listen,
    });
    if let Some(w) = &watch
        && w.mode() != accepted.mode
    {
        progress(Progress::ModeChanged {
            mode: w.mode(),
            by_user: false,
        });
    }
    // Removed when this function returns: the tunnel is over.
    let _session_file = SessionFile::write(cfg, accepted.session);
    let child = match &plan {
        Some(p) => {
            let (child, command) = p.spawn(listen)?;
            progress(Progress::ViewerStarted { command });
            Some(child)
        }
        None => None,
    };
    // The tunnel and the watch run together; both report through `tx`, and
    // only this loop calls `progress`.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut forward = |p: Progress| {
        let _ = tx.send(p);
    };
    let serve = accepted.serve_with_viewer(listener, child, &mut forward);
    let follow = watch::follow(watch, tx.clone());
    tokio::pin!(serve, follow);
    let mut told: Option<Ending> = None;
    let served = loop {
        tokio::select! {
            r = &mut serve => break r,
            e = &mut follow, if told.is_none() => told = Some(e),
            Some(p) = rx.recv() => progress(p),
        }
    };
    if told.is_none() {
        let wait = async {
            loop {
                tokio::select! {
                    e = &mut follow => break e,
                    Some(p) = rx.recv() => progress(p),
                }
            }
        };
        told = tokio::time::timeout(END_WAIT, wait).await.ok();
    }
    while let Ok(p) = rx.try_recv() {
        progress(p);
    }
    match (served, told.unwrap_or(Ending::Untold)) {
        // The workstation said why: that is the story, whatever the
        // tunnel's last error was.
        (Err(e), Ending::Untold) => Err(e),
        (_, ending) => Ok(ending),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("poste-42").unwrap(), ("poste-42".into(), 5988));
        assert_eq!(
            parse_target("127.0.0.1:6000").unwrap(),
            ("127.0.0.1".into(), 6000)
        );
        assert_eq!(parse_target("[::1]:7").unwrap(), ("::1".into(), 7));
        assert_eq!(parse_target("[::1]").unwrap(), ("::1".into(), 5988));
        assert!(parse_target("h:x").is_err());
        assert!(parse_target("").is_err());
    }

    #[test]
    fn exit_codes_follow_design() {
        let r = |c| ConnectError::Refused(c).exit_code();
        assert_eq!(r(RefusalCode::User), 3);
        assert_eq!(r(RefusalCode::Timeout), 4);
        assert_eq!(r(RefusalCode::Busy), 5);
        assert_eq!(r(RefusalCode::RateLimited), 5);
        assert_eq!(r(RefusalCode::Policy), 6);
        assert_eq!(r(RefusalCode::NoUser), 8);
        assert_eq!(r(RefusalCode::UnsupportedSession), 8);
        assert_eq!(ConnectError::Network("x".into()).exit_code(), 7);
        assert_eq!(ConnectError::Usage("x".into()).exit_code(), 2);
    }

    #[test]
    fn tls_errors_are_told_apart() {
        use rustls::{AlertDescription, CertificateError};
        let io = |e: rustls::Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
        let f = |e| TlsFailure::from_io(&io(e), "poste-42");
        assert_eq!(
            f(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName
            )),
            Some(TlsFailure::AgentCertWrongName {
                host: "poste-42".into()
            })
        );
        assert_eq!(
            f(rustls::Error::InvalidCertificate(CertificateError::Expired)),
            Some(TlsFailure::AgentCertExpired)
        );
        assert_eq!(
            f(rustls::Error::AlertReceived(
                AlertDescription::CertificateRevoked
            )),
            Some(TlsFailure::OursRefused(OursRefused::Revoked))
        );
        assert_eq!(
            f(rustls::Error::AlertReceived(
                AlertDescription::CertificateExpired
            )),
            Some(TlsFailure::OursRefused(OursRefused::Expired))
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionReset);
        assert_eq!(TlsFailure::from_io(&plain, "x"), None);
        let msg = text::tls_failure(
            text::Lang::En,
            &TlsFailure::AgentCertWrongName {
                host: "poste-42".into(),
            },
        );
        assert!(
            msg.contains("\"poste-42\"") && msg.contains("host name"),
            "{msg}"
        );
    }

    #[test]
    fn progress_reads_like_the_issue() {
        let p = Progress::Pending {
            left: Duration::from_secs(42),
            asked: Mode::Control,
        };
        assert_eq!(
            p.to_string(),
            "waiting for the user's answer (control asked)… 42 s left"
        );
        assert_eq!(
            text::progress(text::Lang::Fr, &p),
            "En attente de la réponse de l'utilisateur (contrôle demandé)… 42\u{a0}s"
        );
    }
}
