//! The agent's listener: accept, mutual TLS, read the request, hand it to the
//! broker (T5, T7, T8).
//!
//! Everything that can be decided without the clinician is decided here,
//! before any prompt: a missing or foreign certificate, a TLS 1.2 client,
//! bytes that are not TLS, a technician outside the allow-list, an oversized,
//! slow or malformed request. One task per connection and one shutdown signal
//! (mini-redis): Ctrl-C refuses the pending prompt and ends the session.
//!
//! Nobody on the network may keep a technician out: connections that are not
//! yet authenticated are limited *per source* ([`MAX_PENDING_PER_SOURCE`]),
//! the TLS handshake has a short deadline, and the listener keeps accepting
//! (a source over its limit has its new connection closed; others are
//! served). Rejections are recorded within a budget per class — each
//! technician, each anonymous source — so junk from one place can neither
//! fill the disk nor hide another's refusals; what is over budget is counted
//! into the next record of the same class.

use crate::broker::{Broker, Event, Listening, Prompter, SessionControl};
use crate::policy::Policy;
use crate::protocol::{self, ClientLine, Decision, LineReader, RefusalCode, RequestError};
use crate::tls::{self, Identity};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Unauthenticated connections (TLS handshake or request reading) from one
/// source at once. A real technician needs one; a few allow retries.
pub const MAX_PENDING_PER_SOURCE: usize = 4;
/// Unauthenticated connections from all sources at once: bounds memory and
/// tasks whatever the number of sources.
pub const MAX_PENDING: usize = 256;
/// Time allowed for the TLS handshake: a real client needs milliseconds.
pub const TLS_TIMEOUT: Duration = Duration::from_secs(5);
use crate::broker::budget::source_of;
pub use crate::broker::budget::{
    ANONYMOUS_REJECT_RECORDS_PER_MINUTE, REJECT_RECORDS_PER_CLASS_PER_MINUTE,
};

/// A bound (or deliberately not listening) agent, ready to run.
pub struct Listener<P: Prompter> {
    broker: Arc<Broker<P>>,
    listener: Option<(TcpListener, Arc<tls::ServerTls>)>,
    not_listening: Option<String>,
}

impl<P: Prompter> Listener<P> {
    /// Loads the certificates and binds the listen address. Missing or bad
    /// certificates, or a busy port, do not stop the agent: it runs without
    /// listening and says why (tray, log, `accord status`), since a real
    /// install has no self-signed fallback.
    pub async fn bind(broker: Arc<Broker<P>>) -> Listener<P> {
        let policy = broker.policy().clone();
        let tls = tls::ServerTls::load(
            &policy.listen.cert,
            &policy.listen.key,
            &policy.technicians.ca,
            policy.technicians.crl.as_deref(),
        )
        .map(Arc::new);
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
        Listener {
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
        let Listener {
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
        tokio::pin!(shutdown);
        match listener {
            Some((listener, tls)) => {
                let gate = PendingGate::new();
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
                            let permit = match gate.try_enter(peer.ip()) {
                                Ok(p) => p,
                                Err(full) => {
                                    // Closed at once, without TLS: the
                                    // listener goes on accepting others.
                                    drop(tcp);
                                    reject(&broker, peer, "tls", None, full.to_string());
                                    continue;
                                }
                            };
                            let broker = broker.clone();
                            // Per connection: a CRL changed on disk applies
                            // from the next handshake on.
                            let acceptor = tokio_rustls::TlsAcceptor::from(tls.config());
                            tasks.spawn(async move {
                                let _ = tcp.set_nodelay(true);
                                connection(broker, acceptor, tcp, peer, permit).await;
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

/// Why a new unauthenticated connection was closed at once.
#[derive(Debug, thiserror::Error)]
enum GateFull {
    #[error("more than {MAX_PENDING_PER_SOURCE} unauthenticated connections from {0}")]
    Source(IpAddr),
    #[error("more than {MAX_PENDING} unauthenticated connections in all")]
    Global,
}

/// Counts unauthenticated connections per source and in all.
struct PendingGate {
    per_source: Mutex<HashMap<IpAddr, usize>>,
    global: Arc<Semaphore>,
}

/// One unauthenticated connection's place; freed when dropped (once the
/// request is read, or the connection is gone).
struct PendingSlot {
    gate: Arc<PendingGate>,
    source: IpAddr,
    _global: tokio::sync::OwnedSemaphorePermit,
}

impl PendingGate {
    fn new() -> Arc<PendingGate> {
        Arc::new(PendingGate {
            per_source: Mutex::new(HashMap::new()),
            global: Arc::new(Semaphore::new(MAX_PENDING)),
        })
    }

    fn try_enter(self: &Arc<Self>, ip: IpAddr) -> Result<PendingSlot, GateFull> {
        let source = source_of(ip);
        let mut map = self.per_source.lock().map_err(|_| GateFull::Global)?;
        let n = map.entry(source).or_insert(0);
        if *n >= MAX_PENDING_PER_SOURCE {
            return Err(GateFull::Source(source));
        }
        let permit = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| GateFull::Global)?;
        *n += 1;
        Ok(PendingSlot {
            gate: self.clone(),
            source,
            _global: permit,
        })
    }
}

impl Drop for PendingSlot {
    fn drop(&mut self) {
        if let Ok(mut map) = self.gate.per_source.lock()
            && let Some(n) = map.get_mut(&self.source)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

fn reject<P: Prompter>(
    broker: &Broker<P>,
    peer: SocketAddr,
    why: &'static str,
    technician: Option<Identity>,
    detail: String,
) {
    broker.reject_request(peer, why, technician, detail);
}

async fn connection<P: Prompter>(
    broker: Arc<Broker<P>>,
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    permit: PendingSlot,
) {
    let mut stream = match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            reject(&broker, peer, tls_why(&e), None, e.to_string());
            return;
        }
        Err(_) => {
            reject(&broker, peer, "tls", None, "TLS handshake timed out".into());
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
                reject(&broker, peer, "tls", None, e.to_string());
                return;
            }
        },
        // Unreachable with a verifier that requires a certificate; refuse anyway.
        None => {
            reject(&broker, peer, "tls", None, "no client certificate".into());
            return;
        }
    };
    if !identity.allowed_by(&broker.policy().technicians.allow) {
        reject(
            &broker,
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
    match request {
        ClientLine::Request(request) => {
            broker.handle(stream, identity, peer, request).await;
        }
        ClientLine::Watch(session) => {
            let outcome = broker.watch(stream, identity, peer, session).await;
            tracing::debug!(%peer, %session, "watch over: {outcome:?}");
        }
    }
}

/// `revoked` for a revoked technician certificate (DESIGN's audit record),
/// `tls` for every other handshake failure.
fn tls_why(e: &std::io::Error) -> &'static str {
    let revoked = e
        .get_ref()
        .and_then(|i| i.downcast_ref::<rustls::Error>())
        .is_some_and(|r| {
            matches!(
                r,
                rustls::Error::InvalidCertificate(rustls::CertificateError::Revoked)
            )
        });
    if revoked { "revoked" } else { "tls" }
}

/// The connection's first line: a request, or the watch of a running
/// session (same size, time and strictness rules).
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Result<ClientLine, RequestError> {
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
            return protocol::parse_client_line(&line);
        }
    }
}

async fn refuse<S: AsyncWrite + Unpin>(s: &mut S, why: RefusalCode) {
    let _ = s
        .write_all(&protocol::encode_decision(&Decision::Refused { why }))
        .await;
    let _ = s.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_limits_each_source_and_frees_on_drop() {
        let gate = PendingGate::new();
        let one: IpAddr = "127.0.0.1".parse().unwrap();
        let two: IpAddr = "127.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..MAX_PENDING_PER_SOURCE)
            .map(|_| gate.try_enter(one).unwrap())
            .collect();
        assert!(matches!(gate.try_enter(one), Err(GateFull::Source(_))));
        assert!(gate.try_enter(two).is_ok(), "another source is served");
        drop(held);
        assert!(gate.try_enter(one).is_ok());
        assert!(gate.per_source.lock().unwrap().len() <= 1);
    }
}
