//! Forwarding of the audit log to the hospital's syslog collector over TLS
//! (RFC 5425), so that a copy of the trace lives outside the workstation
//! (T12) and the removal of the last local records, which the chain alone
//! cannot see, is visible against it.
//!
//! The local log is the queue: nothing is kept in memory between attempts.
//! A cursor file remembers the last forwarded record (`seq`, `hash` and the
//! byte offset after its line); on start, on every `wake` (the log's owner
//! calls `notify_one` after each append) and every [`PERIOD`], the records
//! after it are read from the log and sent in order. The forwarder runs in
//! its own task and only reads the log, so a collector that is down never
//! blocks or slows `Log::append`.
//!
//! Delivery is at least once. RFC 5425 has no acknowledgement: the cursor
//! is advanced after the TLS write and flush succeeded, which is the most the
//! protocol can tell. Records written into a connection the collector has
//! just dropped can be lost in the window before the drop is noticed; to
//! narrow it, the connection is checked for a close from the collector
//! before each batch (a collector never sends anything in RFC 5425). After
//! any failure everything after the cursor is sent again, so the collector
//! may see a record twice and deduplicates by `seq` + `hash`, both carried in
//! the structured data.
//!
//! The cursor is bound to the log: before each pass, the record at the
//! cursor's `seq` must exist in the current file with the cursor's `hash`.
//! Otherwise (the log was archived and a new one started, the cursor was
//! forged or belongs to another log) nothing may be silently skipped:
//! forwarding restarts from the file's first record and the reason is
//! recorded (`forward_cursor_reset`).

use std::future::Future;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::chain::{seq_prefix, split_hash};
use super::syslog::{Origin, frame_record};

/// How often the log is looked at without a wake, in case one was missed
/// (e.g. records appended by a previous run).
pub const PERIOD: Duration = Duration::from_secs(5);
/// Backoff after a failure: starts here and doubles …
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
/// … up to here, so a collector back after an outage gets the queue within a
/// minute without being hammered meanwhile.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A collector that accepts but stops reading must not hold the queue
/// forever: the connection is dropped and re-established.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Bounds the memory one batch takes when a long backlog is sent.
const BATCH_RECORDS: usize = 1000;
/// IANA port for syslog over TLS (RFC 5425).
pub const DEFAULT_PORT: u16 = 6514;

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("invalid forward address {0:?}: expected tls://host:port")]
    BadAddress(String),
    #[error("cannot read {}: {source}", path.display())]
    File {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no certificate", .0.display())]
    NoCertificate(PathBuf),
    #[error("{} holds no private key", .0.display())]
    NoKey(PathBuf),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0:?} is not a valid TLS server name")]
    ServerName(String),
    #[error("connecting to {addr}: {source}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("collector {0}: timed out")]
    Timeout(String),
    #[error("sending to the collector: {0}")]
    Send(#[source] std::io::Error),
    #[error("the collector closed the connection")]
    Closed,
    #[error("reading the audit log: {0}")]
    Log(#[source] std::io::Error),
}

/// Where and how to forward.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardConfig {
    pub host: String,
    pub port: u16,
    /// CA that issued the collector's certificate; the system store is not
    /// used, a hospital collector is certified by the hospital's own CA.
    pub ca_file: PathBuf,
    /// Certificate chain and key, for collectors that authenticate senders.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// The SD-ID of the structured data (`[audit] sd_id`).
    pub sd_id: String,
}

impl ForwardConfig {
    /// Parses the policy's `forward` value, `tls://host:port` (`port`
    /// defaults to 6514; IPv6 as `[::1]:6514`).
    pub fn parse(address: &str, ca_file: PathBuf) -> Result<Self, ForwardError> {
        let bad = || ForwardError::BadAddress(address.to_owned());
        let rest = address.strip_prefix("tls://").ok_or_else(bad)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(bad)?;
            h.parse::<std::net::Ipv6Addr>().map_err(|_| bad())?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(bad)?),
            };
            (h, port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(['/', '@', ' ', '[', ']']) {
            return Err(bad());
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?,
        };
        Ok(ForwardConfig {
            host: host.to_owned(),
            port,
            ca_file,
            client_cert: None,
            sd_id: super::syslog::SD_ID.to_owned(),
        })
    }
}

/// The forwarding progress, persisted after each batch the collector took.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Last forwarded `seq` (0: nothing yet).
    pub seq: u64,
    pub hash: String,
    /// Byte offset just after that record's line: where to read next.
    pub offset: u64,
}

impl Cursor {
    /// A missing or unreadable cursor means "from the start": resending is
    /// harmless (deduplicated), skipping is not.
    pub fn load(path: &Path) -> Cursor {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(cursor = %path.display(), error = %e, "unreadable forward cursor; resending the whole log");
                Cursor::default()
            }),
            Err(_) => Cursor::default(),
        }
    }

    /// Writes a temporary file, syncs it and renames it over the cursor, so
    /// a crash leaves the old or the new cursor, never a torn one.
    pub fn store(&self, path: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec(self).map_err(std::io::Error::other)?)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

/// Why a cursor does not belong to the current log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CursorMismatch {
    /// The log has no record with the cursor's `seq` (it ends before).
    Missing { seq: u64, last: u64 },
    /// The record with the cursor's `seq` has another hash.
    OtherHash { seq: u64 },
}

impl std::fmt::Display for CursorMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CursorMismatch::Missing { seq, last } => write!(
                f,
                "the cursor is at seq {seq} but the log ends at seq {last} (log archived and restarted?)"
            ),
            CursorMismatch::OtherHash { seq } => write!(
                f,
                "the record at seq {seq} does not have the cursor's hash (log replaced, or cursor forged)"
            ),
        }
    }
}

/// The record (seq, hash, offset after its line) ending just before `offset`,
/// if `offset` sits right after a complete line.
fn line_before(file: &mut std::fs::File, offset: u64) -> std::io::Result<Option<(u64, String)>> {
    use std::io::Read;
    /// A record line is a few KiB at most; a longer look-back means the
    /// offset is not where a record ends.
    const LOOK_BACK: u64 = 64 * 1024;
    if offset == 0 {
        return Ok(None);
    }
    let start = offset.saturating_sub(LOOK_BACK);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = vec![0u8; usize::try_from(offset - start).unwrap_or(0)];
    if file.read_exact(&mut buf).is_err() {
        return Ok(None);
    }
    let Some(body) = buf.strip_suffix(b"\n") else {
        return Ok(None);
    };
    let line = match body.iter().rposition(|b| *b == b'\n') {
        Some(i) => body.get(i + 1..).unwrap_or_default(),
        None if start == 0 => body,
        None => return Ok(None),
    };
    Ok(seq_prefix(line).zip(split_hash(line).map(|(_, h)| h.to_owned())))
}

/// Checks that `cursor` points into the log at `log_path`. Returns the
/// cursor to use (its offset corrected if the record moved), or why it does
/// not belong to this log.
pub fn check_cursor(
    log_path: &Path,
    cursor: &Cursor,
) -> std::io::Result<Result<Cursor, CursorMismatch>> {
    if cursor.seq == 0 {
        return Ok(Ok(Cursor::default()));
    }
    let mut file = std::fs::File::open(log_path)?;
    if let Some((seq, hash)) = line_before(&mut file, cursor.offset)?
        && seq == cursor.seq
    {
        return Ok(if hash == cursor.hash {
            Ok(cursor.clone())
        } else {
            Err(CursorMismatch::OtherHash { seq })
        });
    }
    // The offset is stale: look for the seq from the start.
    file.seek(SeekFrom::Start(0))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    let (mut offset, mut last) = (0u64, 0u64);
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        let Some(complete) = line.strip_suffix(b"\n") else {
            break;
        };
        offset += n as u64;
        let Some(seq) = seq_prefix(complete) else {
            continue;
        };
        last = last.max(seq);
        if seq == cursor.seq {
            let hash = split_hash(complete).map(|(_, h)| h).unwrap_or_default();
            return Ok(if hash == cursor.hash {
                Ok(Cursor {
                    seq,
                    hash: hash.to_owned(),
                    offset,
                })
            } else {
                Err(CursorMismatch::OtherHash { seq })
            });
        }
    }
    Ok(Err(CursorMismatch::Missing {
        seq: cursor.seq,
        last,
    }))
}

/// Records read from the log, ready to send.
#[derive(Debug, Default)]
struct Batch {
    frames: Vec<u8>,
    records: usize,
    /// Cursor once these frames are sent.
    next: Cursor,
    /// Complete lines that could not be framed (no readable seq): damaged
    /// lines that `verify` reports; they are skipped, not sent.
    skipped: usize,
}

/// Reads up to [`BATCH_RECORDS`] complete records after `cursor`.
fn read_batch(log_path: &Path, cursor: &Cursor, origin: &Origin<'_>) -> std::io::Result<Batch> {
    let mut file = std::fs::File::open(log_path)?;
    let len = file.metadata()?.len();
    // Trust the saved offset only if it still sits at a line boundary within
    // the file; otherwise (file replaced, cursor from another log) rescan
    // from the start and skip by seq.
    let mut offset = cursor.offset;
    let at_boundary = offset == 0
        || (offset <= len && {
            file.seek(SeekFrom::Start(offset - 1))?;
            let mut b = [0u8; 1];
            std::io::Read::read_exact(&mut file, &mut b).is_ok() && b[0] == b'\n'
        });
    if !at_boundary {
        offset = 0;
    }
    file.seek(SeekFrom::Start(offset))?;
    let mut reader = BufReader::new(file);
    let mut batch = Batch {
        next: cursor.clone(),
        ..Batch::default()
    };
    batch.next.offset = offset;
    let mut line = Vec::new();
    while batch.records < BATCH_RECORDS {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        // Only complete lines: a line being written, or a torn one, waits.
        let Some(complete) = line.strip_suffix(b"\n") else {
            break;
        };
        let seq = seq_prefix(complete);
        if seq.is_some_and(|s| s > cursor.seq) {
            match frame_record(complete, origin) {
                Some((seq, frame)) => {
                    batch.frames.extend_from_slice(&frame);
                    batch.records += 1;
                    batch.next.seq = seq;
                    batch.next.hash = split_hash(complete)
                        .map(|(_, h)| h.to_owned())
                        .unwrap_or_default();
                }
                None => batch.skipped += 1,
            }
        } else if seq.is_none() {
            batch.skipped += 1;
        }
        batch.next.offset += n as u64;
    }
    Ok(batch)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its whole length, which is passed.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "-".to_owned();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(buf.get(..end).unwrap_or_default()).into_owned()
}

fn read_pem(path: &Path) -> Result<Vec<u8>, ForwardError> {
    std::fs::read(path).map_err(|source| ForwardError::File {
        path: path.to_path_buf(),
        source,
    })
}

/// TLS 1.3 or 1.2 (collectors often only do 1.2), ring, roots from the CA
/// file only. Read at each connection so a renewed CA is picked up.
pub fn client_config(cfg: &ForwardConfig) -> Result<Arc<rustls::ClientConfig>, ForwardError> {
    let certs = |path: &Path| -> Result<Vec<_>, ForwardError> {
        let pem = read_pem(path)?;
        let certs = rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| ForwardError::File {
                path: path.to_path_buf(),
                source,
            })?;
        if certs.is_empty() {
            return Err(ForwardError::NoCertificate(path.to_path_buf()));
        }
        Ok(certs)
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs(&cfg.ca_file)? {
        roots.add(cert)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_root_certificates(roots);
    let config = match &cfg.client_cert {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let pem = read_pem(key)?;
            let key_der = rustls_pemfile::private_key(&mut pem.as_slice())
                .map_err(|source| ForwardError::File {
                    path: key.clone(),
                    source,
                })?
                .ok_or_else(|| ForwardError::NoKey(key.clone()))?;
            builder.with_client_auth_cert(certs(chain)?, key_der)?
        }
    };
    Ok(Arc::new(config))
}

async fn connect(cfg: &ForwardConfig) -> Result<TlsStream<TcpStream>, ForwardError> {
    let config = client_config(cfg)?;
    let addr = match cfg.host.parse::<IpAddr>() {
        Ok(IpAddr::V6(ip)) => format!("[{ip}]:{}", cfg.port),
        _ => format!("{}:{}", cfg.host, cfg.port),
    };
    let name = ServerName::try_from(cfg.host.clone())
        .map_err(|_| ForwardError::ServerName(cfg.host.clone()))?;
    let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(&addr))
        .await
        .map_err(|_| ForwardError::Timeout(addr.clone()))?
        .map_err(|source| ForwardError::Connect {
            addr: addr.clone(),
            source,
        })?;
    // Best effort: records are small and should leave at once.
    let _ = tcp.set_nodelay(true);
    tokio::time::timeout(IO_TIMEOUT, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| ForwardError::Timeout(addr.clone()))?
        .map_err(|source| ForwardError::Connect { addr, source })
}

/// Whether the collector has closed (or broken) the connection, without
/// waiting: in RFC 5425 it never sends data, so anything readable is the end.
async fn peer_gone(stream: &mut TlsStream<TcpStream>) -> bool {
    let mut byte = [0u8; 1];
    // A zero timeout still polls the read once before giving up.
    matches!(
        tokio::time::timeout(Duration::ZERO, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// What a forwarding pass reads from and writes to.
struct Files<'a> {
    log_path: &'a Path,
    cursor_path: &'a Path,
    host: &'a str,
    sd_id: &'a str,
}

/// Sends everything after the cursor, batch by batch, storing the cursor
/// after each flushed batch.
async fn send_pending(
    stream: &mut TlsStream<TcpStream>,
    files: &Files<'_>,
    cursor: &mut Cursor,
    status: &mut Status,
    on_reset: &(dyn Fn(String) + Send + Sync),
) -> Result<(), ForwardError> {
    let Files {
        log_path,
        cursor_path,
        host,
        sd_id,
    } = *files;
    let (path, c) = (log_path.to_path_buf(), cursor.clone());
    let checked = tokio::task::spawn_blocking(move || check_cursor(&path, &c))
        .await
        .map_err(|e| ForwardError::Log(std::io::Error::other(e)))?
        .map_err(ForwardError::Log)?;
    match checked {
        Ok(c) => *cursor = c,
        Err(why) => {
            tracing::warn!(log = %log_path.display(), "forward cursor reset: {why}; forwarding the log from its start");
            *cursor = Cursor::default();
            if let Err(e) = cursor.store(cursor_path) {
                tracing::warn!(cursor = %cursor_path.display(), error = %e, "cannot save forward cursor");
            }
            // Recorded in the log itself, so it is forwarded too.
            on_reset(why.to_string());
        }
    }
    loop {
        if peer_gone(stream).await {
            return Err(ForwardError::Closed);
        }
        let (path, from, h, sd) = (
            log_path.to_path_buf(),
            cursor.clone(),
            host.to_owned(),
            sd_id.to_owned(),
        );
        let batch = tokio::task::spawn_blocking(move || {
            let origin = Origin {
                hostname: &h,
                pid: std::process::id(),
                sd_id: &sd,
            };
            read_batch(&path, &from, &origin)
        })
        .await
        .map_err(|e| ForwardError::Log(std::io::Error::other(e)))?
        .map_err(ForwardError::Log)?;
        if batch.skipped > 0 {
            tracing::warn!(log = %log_path.display(), lines = batch.skipped, "damaged audit lines not forwarded (run `accord log verify`)");
        }
        if batch.next == *cursor {
            return Ok(());
        }
        if !batch.frames.is_empty() {
            let write = async {
                stream.write_all(&batch.frames).await?;
                stream.flush().await
            };
            tokio::time::timeout(IO_TIMEOUT, write)
                .await
                .map_err(|_| ForwardError::Timeout("write".to_owned()))?
                .map_err(ForwardError::Send)?;
        }
        *cursor = batch.next;
        let (c, p) = (cursor.clone(), cursor_path.to_path_buf());
        // A cursor that cannot be saved only means resending later.
        match tokio::task::spawn_blocking(move || c.store(&p)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(cursor = %cursor_path.display(), error = %e, "cannot save forward cursor")
            }
            Err(e) => tracing::warn!(error = %e, "cursor task failed"),
        }
        status.sent(batch.records, cursor.seq);
    }
}

/// Logs link changes once, not once per retry.
#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum Link {
    Starting,
    Up,
    Down,
}

struct Status {
    link: Link,
    collector: String,
    since_up: usize,
}

impl Status {
    fn up(&mut self) {
        if self.link != Link::Up {
            tracing::info!(collector = %self.collector, "audit forwarding: connected");
            self.link = Link::Up;
            self.since_up = 0;
        }
    }

    fn down(&mut self, error: &ForwardError, retry: Duration) {
        if self.link != Link::Down {
            tracing::warn!(collector = %self.collector, %error, retry_s = retry.as_secs(), "audit forwarding interrupted; records wait in the log");
            self.link = Link::Down;
        } else {
            tracing::debug!(collector = %self.collector, %error, retry_s = retry.as_secs(), "audit forwarding retry failed");
        }
    }

    fn sent(&mut self, records: usize, seq: u64) {
        if records > 0 {
            if self.since_up == 0 {
                tracing::info!(collector = %self.collector, seq, "audit forwarding: sending");
            }
            self.since_up += records;
            tracing::debug!(records, seq, "audit records forwarded");
        }
    }
}

/// Forwards the log at `log_path` to the collector until `shutdown`
/// completes. Never returns early: every failure is logged and retried
/// with capped exponential backoff. `on_reset` records a
/// `forward_cursor_reset` with its reason in the log.
pub async fn run(
    cfg: ForwardConfig,
    log_path: PathBuf,
    cursor_path: PathBuf,
    wake: Arc<Notify>,
    on_reset: impl Fn(String) + Send + Sync,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let host = hostname();
    let mut cursor = Cursor::load(&cursor_path);
    let mut status = Status {
        link: Link::Starting,
        collector: format!("{}:{}", cfg.host, cfg.port),
        since_up: 0,
    };
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = async {
            let mut stream = connect(&cfg).await?;
            status.up();
            backoff = BACKOFF_MIN;
            loop {
                send_pending(
                    &mut stream,
                    &Files {
                        log_path: &log_path,
                        cursor_path: &cursor_path,
                        host: &host,
                        sd_id: &cfg.sd_id,
                    },
                    &mut cursor,
                    &mut status,
                    &on_reset,
                )
                .await?;
                let mut byte = [0u8; 1];
                tokio::select! {
                    biased;
                    r = stream.read(&mut byte) => {
                        // Data or EOF from a collector that never speaks: gone.
                        return Err::<(), _>(match r {
                            Err(e) => ForwardError::Send(e),
                            Ok(_) => ForwardError::Closed,
                        });
                    }
                    () = wake.notified() => {}
                    () = tokio::time::sleep(PERIOD) => {}
                }
            }
        };
        let error = tokio::select! {
            biased;
            () = &mut shutdown => return,
            r = attempt => match r {
                Ok(()) => continue,
                Err(e) => e,
            },
        };
        status.down(&error, backoff);
        tokio::select! {
            biased;
            () = &mut shutdown => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Origin<'static> = Origin {
        hostname: "h",
        pid: 1,
        sd_id: crate::audit::syslog::SD_ID,
    };

    #[test]
    fn parse_addresses() {
        let ca = PathBuf::from("ca.pem");
        let c = ForwardConfig::parse("tls://siem.example:6514", ca.clone()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("siem.example", 6514));
        let c = ForwardConfig::parse("tls://10.0.0.1", ca.clone()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("10.0.0.1", 6514));
        let c = ForwardConfig::parse("tls://[::1]:7000", ca.clone()).unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", 7000));
        for bad in [
            "tcp://a:1",
            "tls://",
            "tls://a:0",
            "tls://a:x",
            "tls://[zz]:1",
            "tls://u@a:1",
        ] {
            assert!(ForwardConfig::parse(bad, ca.clone()).is_err(), "{bad}");
        }
    }

    #[test]
    fn cursor_round_trip_and_batches() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("audit.jsonl");
        let (mut log, _) = crate::audit::Log::open(&log_path).unwrap();
        for _ in 0..3 {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), "x".into());
            log.append(m).unwrap();
        }
        let b = read_batch(&log_path, &Cursor::default(), &T).unwrap();
        assert_eq!((b.records, b.next.seq), (3, 3));
        assert_eq!(b.next.offset, std::fs::metadata(&log_path).unwrap().len());
        let cpath = dir.path().join("cursor");
        b.next.store(&cpath).unwrap();
        assert_eq!(Cursor::load(&cpath), b.next);
        let again = read_batch(&log_path, &b.next, &T).unwrap();
        assert_eq!(again.records, 0);
        // An offset that is not on a line boundary falls back to seq.
        let odd = Cursor {
            seq: 1,
            hash: String::new(),
            offset: 5,
        };
        let b = read_batch(&log_path, &odd, &T).unwrap();
        assert_eq!((b.records, b.next.seq), (2, 3));
    }

    fn log_with(path: &Path, n: usize) {
        let (mut log, _) = crate::audit::Log::open(path).unwrap();
        for _ in 0..n {
            let mut m = serde_json::Map::new();
            m.insert("event".into(), "x".into());
            log.append(m).unwrap();
        }
    }

    #[test]
    fn cursor_must_match_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let log_path = dir.path().join("audit.jsonl");
        log_with(&log_path, 5);
        let all = read_batch(&log_path, &Cursor::default(), &T).unwrap().next;
        // The true cursor, and the same with a stale offset: accepted.
        assert_eq!(check_cursor(&log_path, &all).unwrap(), Ok(all.clone()));
        let stale = Cursor {
            offset: 3,
            ..all.clone()
        };
        assert_eq!(check_cursor(&log_path, &stale).unwrap(), Ok(all.clone()));
        // A forged cursor: right seq, wrong hash.
        let forged = Cursor {
            hash: "0".repeat(64),
            ..all.clone()
        };
        assert_eq!(
            check_cursor(&log_path, &forged).unwrap(),
            Err(CursorMismatch::OtherHash { seq: 5 })
        );
        // A forged cursor far ahead (would skip everything to come).
        let ahead = Cursor {
            seq: 1_000_000,
            ..all.clone()
        };
        assert_eq!(
            check_cursor(&log_path, &ahead).unwrap(),
            Err(CursorMismatch::Missing {
                seq: 1_000_000,
                last: 5
            })
        );
        // Archived: the log is moved away and a new one starts at seq 1.
        std::fs::rename(&log_path, dir.path().join("audit.jsonl.1")).unwrap();
        log_with(&log_path, 2);
        assert_eq!(
            check_cursor(&log_path, &all).unwrap(),
            Err(CursorMismatch::Missing { seq: 5, last: 2 })
        );
        // A new log as long as the old: same seq, other hash.
        std::fs::remove_file(&log_path).unwrap();
        log_with(&log_path, 6);
        assert!(check_cursor(&log_path, &all).unwrap().is_err());
    }
}
