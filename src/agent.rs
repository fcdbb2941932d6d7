//! The agent's listener: accept, mutual TLS, read the request, hand it to the
//! broker (T5, T7, T8).
//!
//! Everything that can be decided without the clinician is decided here,
//! before any prompt: a missing or foreign certificate, a TLS 1.2 client,
//! bytes that are not TLS, a technician outside the allow-list, an oversized,
//! slow or malformed request. One task per connection and one shutdown signal
//! (mini-redis): Ctrl-C refuses the pending prompt and ends the session.

use crate::broker::{Broker, Event, Listening, Prompter, SessionControl};
use crate::policy::Policy;
use crate::protocol::{self, Decision, LineReader, RefusalCode, RequestError};
use crate::tls::{self, Identity};
use rustls::ServerConfig;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Connections being handshaken or read at once; more wait in the kernel's
/// backlog. Bounds what an unauthenticated flood can cost.
const MAX_PENDING: usize = 32;
/// Time allowed for the TLS handshake.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Rejections recorded per minute before they are only counted: a port scan
/// must not fill the disk with audit records.
const REJECT_RECORDS_PER_MINUTE: u32 = 30;

/// A bound (or deliberately not listening) agent, ready to run.
pub struct Agent<P: Prompter> {
    broker: Arc<Broker<P>>,
    listener: Option<(TcpListener, Arc<ServerConfig>)>,
    not_listening: Option<String>,
}

impl<P: Prompter> Agent<P> {
    /// Loads the certificates and binds the listen address. Missing or bad
    /// certificates, or a busy port, do not stop the agent: it runs without
    /// listening and says why (tray, log, `accord status`), since a real
    /// install has no self-signed fallback.
    pub async fn bind(broker: Arc<Broker<P>>) -> Agent<P> {
        let policy = broker.policy().clone();
        let tls = tls::server_config(
            &policy.listen.cert,
            &policy.listen.key,
            &policy.technicians.ca,
        );
        let (listener, not_listening) = match tls {
            Err(e) => (None, Some(format!("certificates not usable: {e}"))),
            Ok(cfg) => match TcpListener::bind(policy.listen.address).await {
                Ok(l) => (Some((l, cfg)), None),
                Err(e) => (
                    None,
                    Some(format!("cannot listen on {}: {e}", policy.listen.address)),
                ),
            },
        };
        match (&listener, &not_listening) {
            (Some((l, _)), _) => {
                broker.set_listening(Listening::On(
                    l.local_addr().unwrap_or(policy.listen.address),
                ));
            }
            (None, Some(why)) => {
                tracing::warn!("not listening: {why}");
                broker.set_listening(Listening::Off(why.clone()));
            }
            (None, None) => {}
        }
        Agent {
            broker,
            listener,
            not_listening,
        }
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
    }

    pub fn control(&self) -> SessionControl {
        self.broker.control()
    }

    pub fn broker(&self) -> &Arc<Broker<P>> {
        &self.broker
    }

    /// Serves until `shutdown` resolves, then refuses the pending prompt,
    /// ends the session and waits for every connection task.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let Agent {
            broker,
            listener,
            not_listening,
        } = self;
        let policy: Arc<Policy> = broker.policy().clone();
        let listen_addr = listener.as_ref().and_then(|(l, _)| l.local_addr().ok());
        if let Err(e) = broker.record(&Event::AgentStarted {
            version: env!("CARGO_PKG_VERSION").into(),
            listen: listen_addr,
            not_listening,
            policy: policy.source.as_ref().map(|p| p.display().to_string()),
        }) {
            tracing::error!("{e}");
        }
        let watcher = tokio::spawn(broker.clone().watch_prompter());
        let mut tasks = JoinSet::new();
        let limiter = Arc::new(RejectLimiter::default());
        tokio::pin!(shutdown);
        match listener {
            Some((listener, tls)) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let permits = Arc::new(Semaphore::new(MAX_PENDING));
                loop {
                    tokio::select! {
                        _ = &mut shutdown => break,
                        accepted = listener.accept() => {
                            let (tcp, peer) = match accepted {
                                Ok(a) => a,
                                Err(e) => {
                                    // EMFILE and friends: back off instead of spinning.
                                    tracing::warn!("accept: {e}");
                                    tokio::time::sleep(Duration::from_millis(100)).await;
                                    continue;
                                }
                            };
                            let Ok(permit) = permits.clone().try_acquire_owned() else {
                                // Too many unauthenticated connections at once.
                                drop(tcp);
                                continue;
                            };
                            let broker = broker.clone();
                            let acceptor = acceptor.clone();
                            let limiter = limiter.clone();
                            tasks.spawn(async move {
                                let _ = tcp.set_nodelay(true);
                                connection(broker, acceptor, tcp, peer, permit, limiter).await;
                            });
                        }
                        Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                    }
                }
            }
            None => shutdown.await,
        }
        broker.shutdown();
        // Connection tasks finish quickly once the broker has refused or ended
        // everything; do not hang the logout on a stuck peer.
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(5), drain)
            .await
            .is_err()
        {
            tasks.abort_all();
        }
        watcher.abort();
        if let Err(e) = broker.record(&Event::AgentStopped) {
            tracing::error!("{e}");
        }
    }
}

/// Counts rejections per minute; beyond the budget they go to `tracing` only.
#[derive(Default)]
struct RejectLimiter {
    minute: std::sync::Mutex<(Option<std::time::Instant>, u32)>,
    suppressed: AtomicU32,
}

impl RejectLimiter {
    fn allow(&self) -> bool {
        let Ok(mut m) = self.minute.lock() else {
            return false;
        };
        let now = std::time::Instant::now();
        match m.0 {
            Some(t) if now.duration_since(t) < Duration::from_secs(60) => {}
            _ => *m = (Some(now), 0),
        }
        m.1 += 1;
        m.1 <= REJECT_RECORDS_PER_MINUTE
    }
}

fn reject<P: Prompter>(
    broker: &Broker<P>,
    limiter: &RejectLimiter,
    peer: SocketAddr,
    why: &'static str,
    technician: Option<Identity>,
    detail: String,
) {
    tracing::info!(%peer, why, "request rejected: {detail}");
    if !limiter.allow() {
        let n = limiter.suppressed.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(
            "{n} rejections not recorded in the audit log (more than {REJECT_RECORDS_PER_MINUTE}/min)"
        );
        return;
    }
    let n = limiter.suppressed.swap(0, Ordering::Relaxed);
    let detail = if n > 0 {
        format!("{detail} ({n} earlier rejections not recorded: rate limit)")
    } else {
        detail
    };
    if let Err(e) = broker.record(&Event::RequestRejected {
        peer,
        why,
        technician,
        detail,
    }) {
        tracing::error!("{e}");
    }
}

async fn connection<P: Prompter>(
    broker: Arc<Broker<P>>,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: tokio::sync::OwnedSemaphorePermit,
    limiter: Arc<RejectLimiter>,
) {
    let mut stream = match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            reject(&broker, &limiter, peer, "tls", None, e.to_string());
            return;
        }
        Err(_) => {
            reject(
                &broker,
                &limiter,
                peer,
                "tls",
                None,
                "TLS handshake timed out".into(),
            );
            return;
        }
    };
    let identity = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        Some(der) => match tls::identity_of(der) {
            Ok(id) => id,
            Err(e) => {
                reject(&broker, &limiter, peer, "tls", None, e.to_string());
                return;
            }
        },
        // Unreachable with a verifier that requires a certificate; refuse anyway.
        None => {
            reject(
                &broker,
                &limiter,
                peer,
                "tls",
                None,
                "no client certificate".into(),
            );
            return;
        }
    };
    if !identity.allowed_by(&broker.policy().technicians.allow) {
        reject(
            &broker,
            &limiter,
            peer,
            RefusalCode::Policy.as_str(),
            Some(identity),
            "certificate not in technicians.allow".into(),
        );
        refuse(&mut stream, RefusalCode::Policy).await;
        return;
    }
    let request =
        match tokio::time::timeout(protocol::REQUEST_TIMEOUT, read_request(&mut stream)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                reject(
                    &broker,
                    &limiter,
                    peer,
                    RefusalCode::BadRequest.as_str(),
                    Some(identity),
                    e.to_string(),
                );
                refuse(&mut stream, RefusalCode::BadRequest).await;
                return;
            }
            Err(_) => {
                reject(
                    &broker,
                    &limiter,
                    peer,
                    RefusalCode::BadRequest.as_str(),
                    Some(identity),
                    "no complete request line within 10 s".into(),
                );
                refuse(&mut stream, RefusalCode::BadRequest).await;
                return;
            }
        };
    // Authenticated and well-formed: the connection no longer counts as pending.
    drop(permit);
    broker.handle(stream, identity, peer, request).await;
}

async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Result<protocol::Request, RequestError> {
    let mut reader = LineReader::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = s
            .read(&mut buf)
            .await
            .map_err(|_| RequestError::Incomplete)?;
        if n == 0 {
            return Err(RequestError::Incomplete);
        }
        if let Some((line, rest)) = reader.push(&buf[..n])? {
            // Nothing may follow the request before the decision.
            if !rest.is_empty() {
                return Err(RequestError::Json(
                    "bytes after the request line before the decision".into(),
                ));
            }
            return protocol::parse_request(&line);
        }
    }
}

async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, why: RefusalCode) {
    let _ = s
        .write_all(&protocol::encode_decision(&Decision::Refused { why }))
        .await;
    let _ = s.shutdown().await;
}
