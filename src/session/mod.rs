//! One live session: the relay between the technician and the local VNC
//! server, its mode, the kill switch and the idle / max-duration timers.
//!
//! O8: the clinician can end the session at any moment with one action —
//! from the moment she accepts, while Accord still connects to the server.
//! Whatever ends it, the keys and buttons the technician holds are released
//! on the server leg first, within a bound ([`rfb_io::RELEASE_WAIT`]), then
//! both legs close even if a write is blocked. T10: a session whose
//! technician sends no key, pointer or clipboard message for
//! `idle_timeout_s` ends by itself, however much the screen changes.

use crate::policy::{self, Clipboard, UpstreamAddr};
use crate::protocol::Mode;
pub use end::EndReason;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

/// Time allowed to reach the local VNC server.
pub const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Send buffer of the server leg. Input in a kernel buffer can no longer be
/// taken back by a decision, so it is kept small; the backlog waits in
/// [`outbox::Outbox`] instead (Linux doubles this and applies a minimum).
pub const UPSTREAM_SNDBUF: u32 = 4096;

/// The connection to the local VNC server (TCP loopback or Unix socket).
pub enum Upstream {
    Tcp(TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

impl Upstream {
    /// Connects to `[upstream].vnc`.
    pub async fn connect(cfg: &policy::Upstream) -> io::Result<Upstream> {
        let fut = async {
            match &cfg.vnc {
                UpstreamAddr::Tcp(a) => {
                    let sock = if a.is_ipv4() {
                        tokio::net::TcpSocket::new_v4()?
                    } else {
                        tokio::net::TcpSocket::new_v6()?
                    };
                    sock.set_send_buffer_size(UPSTREAM_SNDBUF)?;
                    let s = sock.connect(*a).await?;
                    s.set_nodelay(true)?;
                    Ok(Upstream::Tcp(s))
                }
                #[cfg(unix)]
                UpstreamAddr::Unix(p) => {
                    let s = tokio::net::UnixStream::connect(p).await?;
                    set_unix_sndbuf(&s)?;
                    Ok(Upstream::Unix(s))
                }
                #[cfg(not(unix))]
                UpstreamAddr::Unix(_) => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "Unix sockets are not supported on this platform",
                )),
            }
        };
        tokio::time::timeout(UPSTREAM_CONNECT_TIMEOUT, fut)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connection timed out"))?
    }
}

#[cfg(unix)]
fn set_unix_sndbuf(s: &tokio::net::UnixStream) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let size = libc::c_int::try_from(UPSTREAM_SNDBUF).unwrap_or(libc::c_int::MAX);
    // SAFETY: a valid open socket, a c_int option value of the right size.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_SNDBUF,
            (&size as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(unix)]
impl Upstream {
    /// A connected Unix stream, with the server leg's small send buffer.
    pub fn from_unix(s: tokio::net::UnixStream) -> io::Result<Upstream> {
        set_unix_sndbuf(&s)?;
        Ok(Upstream::Unix(s))
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            #[cfg(unix)]
            Upstream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            #[cfg(unix)]
            Upstream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_flush(cx),
            #[cfg(unix)]
            Upstream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Upstream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            #[cfg(unix)]
            Upstream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// The broker's side of a running session: how to end it or change its mode.
pub struct LiveSession {
    end: watch::Sender<Option<EndReason>>,
    mode: watch::Sender<Mode>,
    hold: watch::Sender<bool>,
    hide: watch::Sender<bool>,
}

/// The relay's side of the same channels.
pub struct Handles {
    pub end: watch::Receiver<Option<EndReason>>,
    pub mode: watch::Receiver<Mode>,
    pub hold: watch::Receiver<bool>,
    /// Her screen is hidden: nothing the server sends reaches the viewer.
    pub hide: watch::Receiver<bool>,
}

impl LiveSession {
    pub fn new(mode: Mode) -> (LiveSession, Handles) {
        let (end, end_rx) = watch::channel(None);
        let (mode, mode_rx) = watch::channel(mode);
        let (hold, hold_rx) = watch::channel(false);
        let (hide, hide_rx) = watch::channel(false);
        (
            LiveSession {
                end,
                mode,
                hold,
                hide,
            },
            Handles {
                end: end_rx,
                mode: mode_rx,
                hold: hold_rx,
                hide: hide_rx,
            },
        )
    }

    /// First reason wins: a later "end" cannot rewrite why it ended.
    pub fn end(&self, why: EndReason) {
        self.end.send_if_modified(|cur| {
            if cur.is_none() {
                *cur = Some(why);
                true
            } else {
                false
            }
        });
    }

    /// Returns whether the mode changed. Control → view is the clinician's
    /// right at any moment; view → control is more rights, so only the
    /// broker calls it, after she consented to the technician's request for
    /// control (and recorded it).
    pub fn set_mode(&self, to: Mode) -> bool {
        self.mode.send_if_modified(|m| {
            if *m != to {
                *m = to;
                true
            } else {
                false
            }
        })
    }

    pub fn hold_input(&self, hold: bool) {
        self.hold.send_replace(hold);
    }

    /// Hides her screen (`true`) from the next server message on, or
    /// shows it again (the viewer then gets a whole new frame).
    pub fn hide(&self, hide: bool) {
        self.hide.send_replace(hide);
    }
}

/// Timers and permissions of a session (T10, clipboard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub clipboard: Clipboard,
}

/// How a session ended, with what the audit log needs.
#[derive(Clone, Debug)]
pub struct SessionResult {
    pub why: EndReason,
    pub detail: Option<String>,
    pub bytes_to_server: u64,
    pub bytes_to_technician: u64,
}

/// Shared counters: bytes each way and the instant of the technician's last
/// input (as milliseconds since the session start), read by the idle timer.
#[derive(Default)]
struct Counters {
    to_server: AtomicU64,
    to_technician: AtomicU64,
    last_activity_ms: AtomicU64,
}

impl Counters {
    fn touch(&self, start: Instant) {
        let ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_activity_ms.fetch_max(ms, Ordering::Relaxed);
    }
}

/// The technician → server relay's reports, into the counters.
struct ClientCounters {
    counters: Arc<Counters>,
    start: Instant,
}

impl rfb_io::ClientEvents for ClientCounters {
    fn read(&mut self, n: usize) {
        self.counters
            .to_server
            .fetch_add(n as u64, Ordering::Relaxed);
    }
    fn active(&mut self) {
        self.counters.touch(self.start);
    }
}

/// What ended one direction of the relay.
type DirResult = (EndReason, Option<String>);

/// The server leg, connected and past its RFB handshake, before the
/// technician is told "accepted".
pub struct Prepared {
    upstream: Upstream,
    server_init: Vec<u8>,
    leftover: Vec<u8>,
}

/// Connects to the local VNC server and runs Accord's handshake with it.
pub async fn prepare(cfg: &policy::Upstream) -> Result<Prepared, rfb_io::SetupError> {
    let password = match &cfg.password_file {
        Some(p) => Some(rfb_io::read_password(p)?),
        None => None,
    };
    let upstream = Upstream::connect(cfg)
        .await
        .map_err(rfb_io::SetupError::Connect)?;
    prepare_connected(upstream, password).await
}

/// Runs Accord's handshake on a connection made elsewhere (a server started
/// for the session, [`crate::launch`]).
pub async fn prepare_connected(
    mut upstream: Upstream,
    password: Option<Vec<u8>>,
) -> Result<Prepared, rfb_io::SetupError> {
    let (server_init, leftover) = rfb_io::upstream_handshake(&mut upstream, password).await?;
    Ok(Prepared {
        upstream,
        server_init,
        leftover,
    })
}

/// Relays until one side closes, the kill switch, or a timer. The
/// technician's stream comes right after the decision line.
pub async fn run<T>(
    mut tech: T,
    prepared: Prepared,
    handles: Handles,
    limits: Limits,
) -> SessionResult
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let start = Instant::now();
    let counters = Arc::new(Counters::default());
    let Handles {
        mut end,
        mode,
        hold,
        hide,
    } = handles;
    let Prepared {
        upstream,
        server_init,
        leftover: server_leftover,
    } = prepared;
    let max_deadline = start + limits.max_duration;
    let result = |why, detail, c: &Counters| SessionResult {
        why,
        detail,
        bytes_to_server: c.to_server.load(Ordering::Relaxed),
        bytes_to_technician: c.to_technician.load(Ordering::Relaxed),
    };

    // The viewer's handshake happens when the technician starts their
    // viewer: the kill switch and the timers already apply.
    let viewer_leftover = tokio::select! {
        r = rfb_io::technician_handshake(&mut tech, &server_init) => match r {
            Ok(l) => l,
            Err((why, detail)) => return result(why, detail, &counters),
        },
        why = ended(&mut end) => return result(why, None, &counters),
        _ = tokio::time::sleep_until(start + limits.idle_timeout) => {
            return result(EndReason::Idle, Some("no viewer connected".into()), &counters)
        }
        _ = tokio::time::sleep_until(max_deadline) => return result(EndReason::MaxDuration, None, &counters),
    };
    counters.touch(start);

    let (tech_r, tech_w) = tokio::io::split(tech);
    let (up_r, up_w) = tokio::io::split(upstream);

    let (stop, stop_rx) = oneshot::channel();
    let clipboard = limits.clipboard;
    let (viewer_format, viewer_format_rx) = watch::channel(None);
    let (progress, progress_rx) = watch::channel(format_hold::ServerProgress::default());
    let server_ctl = rfb_io::ServerCtl {
        pixel_format: pixel_format_of(&server_init),
        viewer_format: viewer_format_rx,
        progress,
        mode: mode.clone(),
        clipboard,
        hide: hide.clone(),
    };
    let ctl = rfb_io::ClientCtl {
        mode,
        hold,
        hide,
        screen: screen_of(&server_init),
        stop: stop_rx,
        clipboard,
        viewer_format,
        progress: progress_rx,
    };
    let events = ClientCounters {
        counters: counters.clone(),
        start,
    };
    let mut to_server = tokio::spawn(rfb_io::client_to_server(
        tech_r,
        up_w,
        ctl,
        viewer_leftover,
        events,
    ));
    let c = counters.clone();
    let (cut, cut_rx) = oneshot::channel::<()>();
    let mut to_technician = tokio::spawn(async move {
        let mut up_r = up_r;
        // What the server sent before the viewer came goes through the
        // framer too (it may hold the clinician's clipboard).
        let relay = rfb_io::server_to_technician(
            &mut up_r,
            tech_w,
            server_ctl,
            server_leftover,
            move |n| {
                c.to_technician.fetch_add(n as u64, Ordering::Relaxed);
            },
        );
        tokio::select! {
            r = relay => r,
            // The viewer gets nothing more; the server is still read
            // (a server blocked writing reads nothing) until it closes.
            _ = cut_rx => {
                rfb_io::drain_until_closed(&mut up_r).await;
                (EndReason::Upstream, None)
            }
        }
    });

    // Which task already returned: a JoinHandle must not be awaited twice.
    let mut done = (false, false);
    let (why, detail) = loop {
        let last = Duration::from_millis(counters.last_activity_ms.load(Ordering::Relaxed));
        let idle_deadline = start + last + limits.idle_timeout;
        tokio::select! {
            r = &mut to_server => {
                done.0 = true;
                break joined(r, EndReason::Technician);
            }
            r = &mut to_technician => {
                done.1 = true;
                break joined(r, EndReason::Upstream);
            }
            why = ended(&mut end) => break (why, None),
            _ = tokio::time::sleep_until(idle_deadline) => {
                let now_last = Duration::from_millis(counters.last_activity_ms.load(Ordering::Relaxed));
                if now_last == last {
                    break (EndReason::Idle, None);
                }
            }
            _ = tokio::time::sleep_until(max_deadline) => break (EndReason::MaxDuration, None),
        }
    };
    // The viewer stops receiving at once; the server leg first gets the
    // releases of whatever the technician holds (bounded), then closes.
    // The server is read until it closes its end in turn: it reads its
    // input in order, so its close says the releases reached it before it
    // is stopped (a launched server killed with them unread left Ctrl and
    // button 1 down on her display).
    let _ = cut.send(());
    let _ = stop.send(());
    if !done.0 {
        let bound = rfb_io::RELEASE_WAIT + Duration::from_millis(100);
        if tokio::time::timeout(bound, &mut to_server).await.is_err() {
            to_server.abort();
            let _ = to_server.await;
        }
    }
    if !done.1
        && tokio::time::timeout(rfb_io::CLOSE_WAIT, &mut to_technician)
            .await
            .is_err()
    {
        tracing::warn!(
            "the VNC server did not close its end within {} ms of the session's end",
            rfb_io::CLOSE_WAIT.as_millis()
        );
        to_technician.abort();
        let _ = to_technician.await;
    }
    result(why, detail, &counters)
}

/// ServerInit's framebuffer size (checked as for [`pixel_format_of`]).
fn screen_of(server_init: &[u8]) -> (u16, u16) {
    crate::rfb::ServerInit::parse(server_init)
        .map(|si| (si.width, si.height))
        .unwrap_or((u16::MAX, u16::MAX))
}

/// ServerInit's pixel format (ServerInit was parsed and checked during the
/// upstream handshake, so this cannot fail; a default keeps it total).
fn pixel_format_of(server_init: &[u8]) -> crate::rfb::PixelFormat {
    crate::rfb::ServerInit::parse(server_init)
        .map(|si| si.pixel_format)
        .unwrap_or_default()
}

impl Handles {
    /// Resolves once the session is ended (kill switch, shutdown...), for
    /// the phases before [`run`] (upstream connect and handshake).
    pub async fn ended(&mut self) -> EndReason {
        ended(&mut self.end).await
    }
}

/// Resolves with the end reason once the kill switch (or any other ending)
/// is pulled. A dropped sender means the broker is gone: agent stopped.
async fn ended(end: &mut watch::Receiver<Option<EndReason>>) -> EndReason {
    match end.wait_for(Option::is_some).await {
        Ok(v) => (*v).unwrap_or(EndReason::AgentStopped),
        Err(_) => EndReason::AgentStopped,
    }
}

fn joined(r: Result<DirResult, tokio::task::JoinError>, default: EndReason) -> DirResult {
    match r {
        Ok(v) => v,
        Err(e) => (default, Some(format!("relay task failed: {e}"))),
    }
}

mod end;
pub mod format_hold;
pub mod outbox;
pub mod rfb_io;
