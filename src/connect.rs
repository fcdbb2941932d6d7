//! `accord connect`: the technician's side. Asks for a session over mutual
//! TLS, shows progress while the clinician decides, then serves one local VNC
//! viewer and tunnels it. No RFB byte flows before the decision.

use crate::protocol::{self, Decision, LineReader, Mode, RefusalCode, Request};
use crate::tls::{self, TlsError};
use rustls::pki_types::ServerName;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use uuid::Uuid;

/// Default agent port (DESIGN.md).
pub const DEFAULT_PORT: u16 = 5988;
/// Default local address for the technician's VNC viewer.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5901";
/// The agent's default consent timeout: the countdown shown while waiting.
/// The workstation's policy may differ (10–600 s), so this is only a hint.
const ASSUMED_TIMEOUT: Duration = Duration::from_secs(60);
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
    #[error("refused: {}", refusal_text(*.0))]
    Refused(RefusalCode),
}

fn refusal_text(c: RefusalCode) -> &'static str {
    match c {
        RefusalCode::User => "the user refused",
        RefusalCode::Timeout => "no answer in time",
        RefusalCode::Busy => "the workstation is busy with another request or session",
        RefusalCode::RateLimited => "too many requests from you in the last hour",
        RefusalCode::Policy => "the workstation's policy does not allow it",
        RefusalCode::BadRequest => "the request was not understood",
        RefusalCode::UpstreamUnreachable => "the workstation's VNC server is not reachable",
        RefusalCode::AgentShuttingDown => "the agent is shutting down",
    }
}

impl ConnectError {
    /// Exit codes of DESIGN.md: 2 usage/configuration, 3 refused by the user,
    /// 4 no answer in time, 5 busy or rate limited, 6 policy, 7 network/TLS.
    /// `bad_request` is a usage error (2); an unreachable VNC server or a
    /// stopping agent is a network condition (7): retry later.
    pub fn exit_code(&self) -> i32 {
        match self {
            ConnectError::Usage(_) | ConnectError::Tls(_) => 2,
            ConnectError::Network(_) => 7,
            ConnectError::Refused(c) => match c {
                RefusalCode::User => 3,
                RefusalCode::Timeout => 4,
                RefusalCode::Busy | RefusalCode::RateLimited => 5,
                RefusalCode::Policy => 6,
                RefusalCode::BadRequest => 2,
                RefusalCode::UpstreamUnreachable | RefusalCode::AgentShuttingDown => 7,
            },
        }
    }
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
        }
    }
}

/// What `accord connect` prints while it works.
#[derive(Clone, Debug, PartialEq)]
pub enum Progress {
    Connected {
        agent: String,
    },
    Waiting {
        elapsed: Duration,
        left: Option<Duration>,
    },
    Accepted {
        mode: Mode,
        session: Uuid,
        listen: SocketAddr,
    },
    ViewerConnected {
        from: SocketAddr,
    },
}

impl std::fmt::Display for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Progress::Connected { agent } => {
                write!(
                    f,
                    "connected to {agent}; request sent, the user is being asked"
                )
            }
            Progress::Waiting { left: Some(l), .. } => write!(
                f,
                "waiting for the user's answer… {} s left",
                l.as_millis().div_ceil(1000)
            ),
            Progress::Waiting {
                elapsed,
                left: None,
            } => write!(
                f,
                "waiting for the user's answer… {} s (the workstation allows more than the usual 60 s)",
                elapsed.as_secs()
            ),
            Progress::Accepted {
                mode,
                session,
                listen,
            } => write!(
                f,
                "accepted ({}) — session {session}; point your VNC viewer at {listen}",
                match mode {
                    Mode::Control => "control",
                    Mode::View => "view only",
                }
            ),
            Progress::ViewerConnected { from } => {
                write!(f, "viewer connected from {from}; tunnel open")
            }
        }
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
    cfg.validate()?;
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
    let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(server_name, tcp))
        .await
        .map_err(|_| ConnectError::Network("TLS handshake timed out".into()))?
        .map_err(|e| ConnectError::Network(format!("TLS: {e}")))?;
    stream
        .write_all(&protocol::encode_request(&cfg.request()))
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
    let mut buf = [0u8; 512];
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let (line, early) = loop {
        tokio::select! {
            r = stream.read(&mut buf) => {
                let n = r.map_err(|e| ConnectError::Network(format!("while waiting: {e}")))?;
                if n == 0 {
                    return Err(ConnectError::Network("the agent closed the connection without an answer".into()));
                }
                match reader.push(&buf[..n]) {
                    // After "accepted" the agent starts the RFB handshake at
                    // once: those bytes belong to the viewer.
                    Ok(Some((line, rest))) => break (line, rest),
                    Ok(None) => {}
                    Err(e) => return Err(ConnectError::Network(format!("agent answer: {e}"))),
                }
            }
            _ = tick.tick() => {
                let elapsed = started.elapsed();
                if elapsed > MAX_WAIT {
                    return Err(ConnectError::Network("no decision from the agent".into()));
                }
                progress(Progress::Waiting { elapsed, left: ASSUMED_TIMEOUT.checked_sub(elapsed) });
            }
        }
    };
    match protocol::parse_decision(&line).map_err(|e| ConnectError::Network(e.to_string()))? {
        Decision::Refused { why } => Err(ConnectError::Refused(why)),
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
        match tokio::io::copy_bidirectional(&mut viewer, &mut stream).await {
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

/// The whole `accord connect`: bind the local end first (so a busy port fails
/// before the clinician is disturbed), ask, then tunnel.
pub async fn run(
    cfg: &ConnectConfig,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<(), ConnectError> {
    cfg.validate()?;
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| ConnectError::Usage(format!("--listen {}: {e}", cfg.listen)))?;
    let listen = listener.local_addr().unwrap_or(cfg.listen);
    let accepted = ask(cfg, progress).await?;
    progress(Progress::Accepted {
        mode: accepted.mode,
        session: accepted.session,
        listen,
    });
    accepted.serve(listener, progress).await
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
        assert_eq!(ConnectError::Network("x".into()).exit_code(), 7);
        assert_eq!(ConnectError::Usage("x".into()).exit_code(), 2);
    }

    #[test]
    fn progress_reads_like_the_issue() {
        let p = Progress::Waiting {
            elapsed: Duration::from_secs(18),
            left: Some(Duration::from_secs(42)),
        };
        assert_eq!(p.to_string(), "waiting for the user's answer… 42 s left");
    }
}
