//! Starts a VNC server for one session on a private Unix socket, and makes
//! sure it dies with the session.
//!
//! A VNC server left listening on a port is reachable by every local account
//! without consent. So the server is started only for one session, for the
//! session's display, listening only on a socket in a fresh 0700 directory
//! (socket 0600) under the user's runtime directory, with no TCP port; the
//! launcher connects to it at once and hands over that one connection.
//!
//! Lifetime: the server runs in its own process group; [`Launched::stop`]
//! and dropping a [`Launched`] kill the group, and a dedicated thread reaps
//! it. `PR_SET_PDEATHSIG(SIGKILL)` takes the server down if the process that
//! started it dies (that thread is the "parent" the kernel watches, and it
//! lives exactly as long as the server).
//!
//! Who calls it: the process in the clinician's graphical session, after
//! consent — `accord agent` itself, or `accord ui`, which then passes the
//! connected stream to the service with `SCM_RIGHTS` (the service never
//! enters the user's runtime directory). See [`for_session`].

use crate::policy::{Clipboard, Launch};
use crate::protocol::Mode;
use crate::screen::{Grants, Screen, ScreenError, ScreenRequest};
use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead as _, Read as _};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::watch;
use tokio::time::Instant;

/// Exit status of Accord's own GNOME server when the clinician stopped the
/// sharing from GNOME's indicator (Mutter's `Closed`): her kill switch.
pub const EXIT_STOPPED_IN_GNOME: i32 = 10;

/// How long the server has to accept a connection and start speaking RFB.
pub const START_TIMEOUT: Duration = Duration::from_secs(5);
/// How long [`Launched::stop`] waits after SIGTERM before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(1);
/// Lines of the server's stderr kept (the last ones), and their byte bound.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 4096;
/// First lines that say what failed (x11vnc prints its reason, then ~50
/// lines of tips: the last lines alone would hide it).
const NOTABLE_LINES: usize = 4;
const LINE_MAX: usize = 160;
/// `sun_path` is 108 bytes with its NUL.
const SUN_PATH_MAX: usize = 107;

/// A VNC server Accord knows how to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    X11vnc,
    /// TigerVNC's scraping server (Debian: tigervnc-scraping-server).
    X0vncserver,
    /// Accord's own server for a GNOME Wayland session, through Mutter's
    /// remote-desktop API (`accord screen-server`, [`crate::mutter::server`]).
    Mutter,
}

impl Server {
    /// The name used in messages and in the policy.
    pub fn name(self) -> &'static str {
        match self {
            Server::X11vnc => "x11vnc",
            Server::X0vncserver => "x0vncserver",
            Server::Mutter => "mutter",
        }
    }

    /// The `[upstream] launch` choice that forces this server.
    pub fn launch(self) -> Launch {
        match self {
            Server::X11vnc => Launch::X11vnc,
            Server::X0vncserver => Launch::X0vncserver,
            Server::Mutter => Launch::Mutter,
        }
    }

    /// The program to run. Debian's `x0vncserver` is a Perl wrapper that
    /// reads ~/.vnc/ and daemonizes; its real server is `X0tigervnc`, run
    /// directly when present (other distributions ship the server itself as
    /// `x0vncserver`).
    fn program(self) -> Option<PathBuf> {
        match self {
            Server::X11vnc => which("x11vnc"),
            Server::X0vncserver => which("X0tigervnc").or_else(|| which("x0vncserver")),
            // This very program; a build without the feature has no server.
            Server::Mutter if cfg!(all(feature = "mutter", target_os = "linux")) => {
                std::env::current_exe().ok()
            }
            Server::Mutter => None,
        }
    }
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a server could not be started (or was stopped at start).
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("[upstream] launch = \"none\": Accord starts no VNC server")]
    Disabled,
    #[error("no VNC server installed: install x11vnc or tigervnc-scraping-server")]
    NoneInstalled,
    #[error("{0} is not installed")]
    NotInstalled(Server),
    #[error(
        "[upstream] launch = \"{}\" cannot share a Wayland session (it would show XWayland's empty screen): use \"auto\" or \"mutter\" on GNOME",
        .0.as_str()
    )]
    Wayland(Launch),
    #[error("{display:?} is not an X display name (e.g. \":0\")")]
    BadDisplay { display: String },
    #[error("runtime directory {}: {why}", path.display())]
    RuntimeDir { path: PathBuf, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start {server}: {source}")]
    Spawn {
        server: Server,
        #[source]
        source: io::Error,
    },
    #[error(
        "{server} exited at start ({}): {}",
        describe(status),
        summary(stderr_tail)
    )]
    Exited {
        server: Server,
        status: ExitStatus,
        /// The last lines of its stderr (bounded), for the log.
        stderr_tail: String,
    },
    #[error("{server} did not accept a connection within {} s: {}", START_TIMEOUT.as_secs(), summary(stderr_tail))]
    Timeout { server: Server, stderr_tail: String },
    #[error("{server} opened TCP port {port} although told not to: stopped")]
    TcpListener { server: Server, port: u16 },
}

fn describe(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("status {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => status.to_string(),
    }
}

/// One line for a message: the lines that say what failed, else the last.
fn summary(tail: &str) -> String {
    let notable: Vec<&str> = tail.lines().filter(|l| is_notable(l)).collect();
    let lines: Vec<&str> = if notable.is_empty() {
        let all: Vec<&str> = tail.lines().collect();
        all[all.len().saturating_sub(3)..].to_vec()
    } else {
        notable
    };
    if lines.is_empty() {
        "no output".into()
    } else {
        lines.join(" / ")
    }
}

fn is_notable(line: &str) -> bool {
    let l = line.to_ascii_lowercase();
    [
        "fail", "error", "unable", "cannot", "can't", "refused", "denied",
    ]
    .iter()
    .any(|w| l.contains(w))
}

/// Picks the server for `[upstream] launch` in this process's session:
/// `auto` on a Wayland session is Accord's own server through Mutter (the
/// X11 servers would share XWayland's empty screen; elsewhere than GNOME
/// it fails at start, saying Mutter is not on the bus).
pub fn pick(choice: Launch) -> Result<Server, LaunchError> {
    pick_for(choice, crate::platform::wayland_session())
}

fn pick_for(choice: Launch, wayland: bool) -> Result<Server, LaunchError> {
    let installed = |s: Server| s.program().is_some();
    match choice {
        Launch::None => Err(LaunchError::Disabled),
        Launch::Auto if wayland => Ok(Server::Mutter),
        Launch::Auto => [Server::X11vnc, Server::X0vncserver]
            .into_iter()
            .find(|s| installed(*s))
            .ok_or(LaunchError::NoneInstalled),
        // They would share XWayland's empty screen.
        Launch::X11vnc | Launch::X0vncserver if wayland => Err(LaunchError::Wayland(choice)),
        Launch::Mutter if installed(Server::Mutter) => Ok(Server::Mutter),
        Launch::Mutter => Err(LaunchError::NotInstalled(Server::Mutter)),
        Launch::X11vnc if installed(Server::X11vnc) => Ok(Server::X11vnc),
        Launch::X0vncserver if installed(Server::X0vncserver) => Ok(Server::X0vncserver),
        Launch::X11vnc => Err(LaunchError::NotInstalled(Server::X11vnc)),
        Launch::X0vncserver => Err(LaunchError::NotInstalled(Server::X0vncserver)),
    }
}

/// The options for this process's own graphical session: `$DISPLAY`, in
/// `$XDG_RUNTIME_DIR`, else `/run/user/<uid>`, else (a session without
/// logind, e.g. `sudo make run` in a container) `~/.cache/accord/run`,
/// made 0700. [`start`] checks whichever it is: ours, closed to others.
/// `grants`: what the server itself may do for this session.
pub fn options_here(mode: Mode, grants: Grants) -> Options {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let runtime_dir = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let run_user = PathBuf::from(format!("/run/user/{uid}"));
            if run_user.is_dir() {
                run_user
            } else {
                private_cache_dir().unwrap_or(run_user)
            }
        }
    };
    Options {
        display: std::env::var("DISPLAY").unwrap_or_default(),
        mode,
        clipboard: grants.clipboard,
        input: grants.input,
        runtime_dir,
    }
}

/// `~/.cache/accord/run`, created 0700 (its parents as the user's umask
/// makes them; the check in [`start`] is on this directory itself).
fn private_cache_dir() -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt as _;
    let dir = directories::ProjectDirs::from("", "", "accord")?
        .cache_dir()
        .join("run");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .ok()?;
    Some(dir)
}

/// Starts the server `choice` picks for this process's own graphical
/// session ([`options_here`]).
pub async fn for_session(
    choice: Launch,
    mode: Mode,
    grants: Grants,
) -> Result<Launched, LaunchError> {
    let server = pick(choice)?;
    start(server, &options_here(mode, grants)).await
}

/// [`crate::broker::Prompter::open_screen`] for a process that runs in the
/// clinician's graphical session itself (`accord agent`): the server is
/// started here and stops when the returned [`Screen`]'s `keep` drops.
pub async fn screen_here(req: &ScreenRequest) -> Result<Screen, ScreenError> {
    let server = pick(req.launch).map_err(|e| ScreenError(e.to_string()))?;
    screen(server, &options_here(req.mode, req.grants)).await
}

/// Starts `server` with `opts` and wraps its connection as a session's
/// server leg.
pub async fn screen(server: Server, opts: &Options) -> Result<Screen, ScreenError> {
    let mut launched = start(server, opts)
        .await
        .map_err(|e| ScreenError(e.to_string()))?;
    let stream = launched
        .take_stream()
        .ok_or_else(|| ScreenError("the server's connection was already taken".into()))?;
    let upstream = crate::session::Upstream::from_unix(stream)
        .map_err(|e| ScreenError(format!("{} socket: {e}", launched.server())))?;
    let exited = launched.exited();
    let server = launched.server();
    Ok(Screen {
        upstream,
        describe: launched.describe(),
        keep: Box::new(launched),
        stopped_by_her: Some(Box::pin(
            async move { stopped_in_gnome(server, exited.await) },
        )),
    })
}

/// Whether the server exited because she stopped the sharing from GNOME's
/// own indicator: her kill switch, not a server failure.
pub fn stopped_in_gnome(server: Server, status: ExitStatus) -> bool {
    server == Server::Mutter && status.code() == Some(EXIT_STOPPED_IN_GNOME)
}

fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.mode() & 0o111 != 0))
}

/// What to start the server for.
#[derive(Clone, Debug)]
pub struct Options {
    /// The session's X display, e.g. `:0` (unused by [`Server::Mutter`]).
    pub display: String,
    /// The mode she granted: Mutter's server opens no input at all for a
    /// view-only session (the X11 servers follow `input` alone).
    pub mode: Mode,
    /// What the server itself shares of the clipboard (Accord's filter
    /// still applies the policy on top).
    pub clipboard: crate::policy::Clipboard,
    /// `false` ⇒ the server injects no key, pointer or clipboard event.
    pub input: bool,
    /// Where the private directory is made: the user's `$XDG_RUNTIME_DIR`
    /// (never a shared directory: it must be ours and not writable by others).
    pub runtime_dir: PathBuf,
}

/// The arguments for `server`. No password: the socket's directory is the
/// only way in, and only its owner (who can read the screen anyway) passes.
fn args(server: Server, opts: &Options, socket: &Path, x0_has_clipboard: bool) -> Vec<String> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let sock = socket.display().to_string();
    match server {
        Server::X11vnc => {
            let mut a = s(&["-display", &opts.display, "-unixsock", &sock]);
            // `-rfbport 0` alone still leaves libvncserver's IPv6 listener on
            // [::]:5900 (x11vnc 0.9.16): both ports must be turned off.
            a.extend(s(&["-rfbport", "0", "-rfbportv6", "-1", "-noipv6"]));
            // One client: exit when it leaves, refuse a second meanwhile.
            a.extend(s(&["-once", "-nevershared", "-dontdisconnect"]));
            // No ~/.x11vncrc (it could add a port); no reverse connections
            // asked through the VNC_CONNECT X property, no remote control,
            // no external commands: nothing but this socket.
            a.extend(s(&["-norc", "-novncconnect", "-noremote", "-nocmds"]));
            a.extend(s(&["-nopw", "-nolookup", "-quiet"]));
            // x11vnc "naps" (long sleeps) while the screen is still: its
            // first update then came ~760 ms after the handshake, against 4
            // ms without (benches/launch.rs). It runs only during a session,
            // which is exactly when it must answer at once.
            a.push("-nonap".into());
            // At exit, however it comes (killed mid-session), x11vnc sends
            // a release for every key still down. Not `-clear_all`: it also
            // switches off CapsLock and NumLock, at start as at exit, so her
            // NumLock would go off with every session.
            a.push("-clear_keys".into());
            match opts.clipboard {
                // Neither CLIPBOARD nor PRIMARY nor the cut buffer.
                Clipboard::None => a.push("-nosel".into()),
                // Her selections are never sent; the technician's paste is.
                Clipboard::ToWorkstation => a.extend(s(&["-noprimary", "-noclipboard"])),
                Clipboard::Both => {}
            }
            if !opts.input {
                a.push("-viewonly".into());
            }
            a
        }
        Server::X0vncserver => {
            // `rfbport -1` = no TCP listener (0 would pick a random port on
            // every interface).
            let mut a = s(&[
                "-display",
                &opts.display,
                "-rfbunixpath",
                &sock,
                "-rfbunixmode",
                "0600",
                "-rfbport",
                "-1",
                "-SecurityTypes",
                "None",
                "-NeverShared=1",
                "-DisconnectClients=0",
                "-AcceptSetDesktopSize=0",
            ]);
            // TigerVNC < 1.13's scraping server has no clipboard at all,
            // and refuses parameters it does not know.
            if x0_has_clipboard {
                match opts.clipboard {
                    Clipboard::None => a.extend(s(&[
                        "-AcceptCutText=0",
                        "-SendCutText=0",
                        "-SetPrimary=0",
                        "-SendPrimary=0",
                    ])),
                    Clipboard::ToWorkstation => a.extend(s(&["-SendCutText=0", "-SendPrimary=0"])),
                    Clipboard::Both => {}
                }
            }
            if !opts.input {
                a.extend(s(&[
                    "-AcceptKeyEvents=0",
                    "-AcceptPointerEvents=0",
                    "-AcceptCutText=0",
                ]));
            }
            a
        }
        Server::Mutter => {
            let mut a = s(&[
                "screen-server",
                "--socket",
                &sock,
                "--mode",
                opts.mode.as_str(),
                "--clipboard",
                opts.clipboard.as_str(),
            ]);
            if opts.input {
                a.push("--input".into());
            }
            a
        }
    }
}

/// Whether this x0vncserver knows the clipboard parameters.
fn x0_has_clipboard(program: &Path) -> bool {
    Command::new(program)
        .arg("--help")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .is_ok_and(|o| {
            let text = [o.stdout, o.stderr].concat();
            String::from_utf8_lossy(&text).contains("AcceptCutText")
        })
}

/// `:0`, `:1.0`, `host:0`; nothing that could pass for an option.
fn valid_display(d: &str) -> bool {
    let Some((host, num)) = d.rsplit_once(':') else {
        return false;
    };
    let num_ok = {
        let mut parts = num.splitn(2, '.');
        parts.all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    num_ok
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// The runtime directory must be ours and closed to others: the private
/// directory's name must not be raced by another account.
fn check_runtime_dir(dir: &Path) -> Result<(), LaunchError> {
    let bad = |why: String| LaunchError::RuntimeDir {
        path: dir.to_path_buf(),
        why,
    };
    let m = std::fs::metadata(dir).map_err(|e| bad(e.to_string()))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if !m.is_dir() {
        return Err(bad("not a directory".into()));
    }
    if m.uid() != me {
        return Err(bad(format!("owned by uid {}, not by us ({me})", m.uid())));
    }
    if m.mode() & 0o022 != 0 {
        return Err(bad(format!(
            "writable by group or others (mode {:o})",
            m.mode() & 0o7777
        )));
    }
    Ok(())
}

/// `mkdtemp`: a fresh 0700 directory with an unpredictable name.
fn make_private_dir(parent: &Path) -> Result<PathBuf, LaunchError> {
    use std::os::unix::ffi::OsStrExt as _;
    let template = parent.join("accord-vnc-XXXXXX");
    let mut bytes = template.as_os_str().as_bytes().to_vec();
    bytes.push(0);
    // SAFETY: a writable NUL-terminated buffer that mkdtemp fills in place.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(LaunchError::Io {
            what: format!("cannot create a directory in {}", parent.display()),
            source: io::Error::last_os_error(),
        });
    }
    bytes.pop();
    let dir = PathBuf::from(std::ffi::OsStr::from_bytes(&bytes));
    // mkdtemp makes 0700 already; say it rather than trust the libc.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).map_err(|source| {
        let _ = std::fs::remove_dir(&dir);
        LaunchError::Io {
            what: format!("chmod 0700 {}", dir.display()),
            source,
        }
    })?;
    Ok(dir)
}

/// The server's stderr: the first lines that say what failed, and the last
/// lines, bounded. No password is ever given to the server, so none can be
/// echoed here.
#[derive(Default)]
struct StderrLog {
    notable: Vec<String>,
    tail: VecDeque<String>,
}

impl StderrLog {
    fn push(&mut self, line: &str) {
        let line = line.trim_end();
        if line.trim().is_empty() {
            return;
        }
        let mut l = line.to_string();
        if l.len() > LINE_MAX {
            let mut cut = LINE_MAX;
            while !l.is_char_boundary(cut) {
                cut -= 1;
            }
            l.truncate(cut);
            l.push('…');
        }
        if self.notable.len() < NOTABLE_LINES && is_notable(&l) {
            self.notable.push(l.clone());
        }
        self.tail.push_back(l);
        while self.tail.len() > TAIL_LINES
            || self.tail.iter().map(|l| l.len() + 1).sum::<usize>() > TAIL_BYTES
        {
            self.tail.pop_front();
        }
    }

    /// Notable lines no longer in the tail, then the tail.
    fn render(&self) -> String {
        let mut out: Vec<&str> = self
            .notable
            .iter()
            .filter(|n| !self.tail.contains(n))
            .map(String::as_str)
            .collect();
        out.extend(self.tail.iter().map(String::as_str));
        out.join("\n")
    }
}

/// State shared with the thread that spawned and reaps the server.
struct Shared {
    pid: i32,
    /// Set under this lock just before the server is reaped: once it is
    /// true, its pid (and process group id) may belong to someone else.
    reaped: Mutex<bool>,
    stderr: Mutex<StderrLog>,
}

impl Shared {
    /// Signals the server's process group, unless it was already reaped.
    fn kill_group(&self, sig: libc::c_int) {
        let reaped = self.reaped.lock().unwrap_or_else(|e| e.into_inner());
        if !*reaped {
            // SAFETY: kill(2) on our child's process group, not yet reaped,
            // so the group id is still ours.
            unsafe { libc::kill(-self.pid, sig) };
        }
    }

    fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .render()
    }
}

/// A running server for one session.
pub struct Launched {
    server: Server,
    shared: Arc<Shared>,
    status: watch::Receiver<Option<ExitStatus>>,
    stream: Option<UnixStream>,
    dir: PathBuf,
    socket: PathBuf,
    /// Set once `stop` has done the cleanup, so `Drop` does not repeat it.
    done: bool,
}

/// Starts `server` for `opts.display`; returns once it has accepted our
/// connection and started speaking RFB.
pub async fn start(server: Server, opts: &Options) -> Result<Launched, LaunchError> {
    if server != Server::Mutter && !valid_display(&opts.display) {
        return Err(LaunchError::BadDisplay {
            display: opts.display.clone(),
        });
    }
    let program = server.program().ok_or(LaunchError::NotInstalled(server))?;
    check_runtime_dir(&opts.runtime_dir)?;
    let dir = make_private_dir(&opts.runtime_dir)?;
    let socket = dir.join("vnc.sock");
    if socket.as_os_str().len() > SUN_PATH_MAX {
        let _ = std::fs::remove_dir(&dir);
        return Err(LaunchError::RuntimeDir {
            path: opts.runtime_dir.clone(),
            why: "path too long for a Unix socket".into(),
        });
    }
    let has_clip = server == Server::X0vncserver && opts.clipboard != Clipboard::Both && {
        let p = program.clone();
        tokio::task::spawn_blocking(move || x0_has_clipboard(&p))
            .await
            .unwrap_or(false)
    };
    let mut cmd = Command::new(&program);
    cmd.args(args(server, opts, &socket, has_clip))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let parent = std::process::id();
    // SAFETY: only async-signal-safe calls (umask, prctl, getppid) between
    // fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            // x11vnc creates its socket with the umask: owner only.
            libc::umask(0o077);
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before prctl: then nobody would
            // ever kill this server.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::other("parent died during start"));
            }
            Ok(())
        });
    }
    let launched = match spawn(server, cmd) {
        Ok((shared, status)) => Launched {
            server,
            shared,
            status,
            stream: None,
            dir,
            socket,
            done: false,
        },
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
    };
    // On any error below, dropping `launched` kills and removes everything.
    launched.connect().await
}

/// Spawns on a thread of its own, which then waits for the server: the
/// kernel's parent-death signal follows the thread that forked, so that
/// thread must live exactly as long as the server (a runtime's worker or
/// blocking thread may exit before it).
fn spawn(
    server: Server,
    mut cmd: Command,
) -> Result<(Arc<Shared>, watch::Receiver<Option<ExitStatus>>), LaunchError> {
    let (status_tx, status_rx) = watch::channel(None);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Arc<Shared>, io::Error>>();
    std::thread::Builder::new()
        .name(format!("accord-{server}"))
        .spawn(move || {
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let Ok(pid) = i32::try_from(child.id()) else {
                let _ = child.kill();
                let _ = child.wait();
                let _ = ready_tx.send(Err(io::Error::other("pid out of range")));
                return;
            };
            let shared = Arc::new(Shared {
                pid,
                reaped: Mutex::new(false),
                stderr: Mutex::new(StderrLog::default()),
            });
            let reader = child.stderr.take().and_then(|err| {
                let sh = shared.clone();
                std::thread::Builder::new()
                    .name(format!("accord-{server}-err"))
                    .spawn(move || {
                        let mut r = io::BufReader::new(err);
                        let mut buf = Vec::new();
                        loop {
                            buf.clear();
                            // A line longer than this is cut, not buffered whole.
                            match (&mut r).take(8192).read_until(b'\n', &mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(_) => sh
                                    .stderr
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(&String::from_utf8_lossy(&buf)),
                            }
                        }
                    })
                    .ok()
            });
            let _ = ready_tx.send(Ok(shared.clone()));
            // Wait without reaping, kill what is left of the group while its
            // id is still reserved by the zombie, then reap.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            loop {
                // SAFETY: waitid on our own child, WNOWAIT leaves it unreaped.
                let rc = unsafe {
                    libc::waitid(
                        libc::P_PID,
                        pid as libc::id_t,
                        &mut info,
                        libc::WEXITED | libc::WNOWAIT,
                    )
                };
                if rc == 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            let status = {
                let mut reaped = shared.reaped.lock().unwrap_or_else(|e| e.into_inner());
                // SAFETY: the leader is a zombie, so the group id is ours.
                unsafe { libc::kill(-pid, libc::SIGKILL) };
                *reaped = true;
                child.wait()
            };
            // The last lines the server wrote belong with its exit status.
            if let Some(r) = reader {
                let _ = r.join();
            }
            let status = status.unwrap_or_else(|_| ExitStatus::from_raw(0));
            let _ = status_tx.send(Some(status));
        })
        .map_err(|source| LaunchError::Spawn { server, source })?;
    match ready_rx.recv() {
        Ok(Ok(shared)) => Ok((shared, status_rx)),
        Ok(Err(source)) => Err(LaunchError::Spawn { server, source }),
        Err(_) => Err(LaunchError::Spawn {
            server,
            source: io::Error::other("the launcher thread ended"),
        }),
    }
}

impl Launched {
    /// Polls the socket until the server accepts and speaks, or exits.
    async fn connect(mut self) -> Result<Launched, LaunchError> {
        let deadline = Instant::now() + START_TIMEOUT;
        let stream = loop {
            if let Some(status) = *self.status.borrow() {
                return Err(self.exited_error(status));
            }
            if let Ok(s) = UnixStream::connect(&self.socket).await {
                break s;
            }
            if Instant::now() >= deadline {
                return Err(self.timeout_error());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        // The version line comes once the server is in its main loop, after
        // it made every listener it will make: then look for TCP ports.
        let mut status = self.status.clone();
        tokio::select! {
            r = tokio::time::timeout_at(deadline, stream.readable()) => match r {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    return Err(LaunchError::Io { what: format!("{} socket", self.server), source })
                }
                Err(_) => return Err(self.timeout_error()),
            },
            r = status.wait_for(Option::is_some) => {
                let st = r.ok().and_then(|s| *s).unwrap_or_else(|| ExitStatus::from_raw(0));
                return Err(self.exited_error(st));
            }
        }
        // Owner only, whatever the server did with it (x11vnc: the umask).
        std::fs::set_permissions(&self.socket, std::fs::Permissions::from_mode(0o600)).map_err(
            |source| LaunchError::Io {
                what: format!("chmod 0600 {}", self.socket.display()),
                source,
            },
        )?;
        if let Some(port) = tcp_listeners(self.pid()).into_iter().next() {
            return Err(LaunchError::TcpListener {
                server: self.server,
                port,
            });
        }
        self.stream = Some(stream);
        Ok(self)
    }

    fn exited_error(&self, status: ExitStatus) -> LaunchError {
        LaunchError::Exited {
            server: self.server,
            status,
            stderr_tail: self.shared.stderr_tail(),
        }
    }

    fn timeout_error(&self) -> LaunchError {
        LaunchError::Timeout {
            server: self.server,
            stderr_tail: self.shared.stderr_tail(),
        }
    }

    /// What the audit log records as the session's `upstream`.
    pub fn describe(&self) -> String {
        format!(
            "{} (started for the session, pid {})",
            self.server,
            self.pid()
        )
    }

    /// The connection to the server, taken once.
    pub fn take_stream(&mut self) -> Option<UnixStream> {
        self.stream.take()
    }

    pub fn server(&self) -> Server {
        self.server
    }

    /// The server's pid (also its process group id).
    pub fn pid(&self) -> u32 {
        self.shared.pid.unsigned_abs()
    }

    pub fn socket_path(&self) -> &Path {
        &self.socket
    }

    /// The private directory holding the socket.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last lines of the server's stderr (bounded).
    pub fn stderr_tail(&self) -> String {
        self.shared.stderr_tail()
    }

    /// Resolves when the server has exited (on its own or killed) and was
    /// reaped: the session must then end (`upstream`).
    pub fn exited(&self) -> impl Future<Output = ExitStatus> + Send + 'static {
        let mut rx = self.status.clone();
        async move {
            match rx.wait_for(Option::is_some).await {
                Ok(s) => s.unwrap_or_else(|| ExitStatus::from_raw(0)),
                // The reaper thread is gone without a status: not running.
                Err(_) => ExitStatus::from_raw(0),
            }
        }
    }

    /// SIGTERM, [`STOP_GRACE`] to exit, then SIGKILL; reaps the server and
    /// removes the directory. Returns the exit status.
    pub async fn stop(mut self) -> ExitStatus {
        self.stream = None;
        self.shared.kill_group(libc::SIGTERM);
        let exited = self.exited();
        tokio::pin!(exited);
        let status = match tokio::time::timeout(STOP_GRACE, &mut exited).await {
            Ok(s) => s,
            Err(_) => {
                self.shared.kill_group(libc::SIGKILL);
                exited.await
            }
        };
        let _ = tokio::fs::remove_dir_all(&self.dir).await;
        self.done = true;
        status
    }
}

/// How long a dropped server has, after SIGTERM, before SIGKILL.
const DROP_GRACE: Duration = Duration::from_millis(500);

impl Drop for Launched {
    /// No server survives its handle: SIGTERM now, SIGKILL [`DROP_GRACE`]
    /// later if it is still there; the launcher's thread reaps it (nothing
    /// here blocks). SIGTERM first because x11vnc frees its SysV shared
    /// memory segments on SIGTERM and cannot on SIGKILL: killed sessions
    /// leaked them until the system limit (4096) was reached and no x11vnc
    /// could start any more ("shmget: No space left on device").
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.stream = None;
        self.shared.kill_group(libc::SIGTERM);
        let shared = self.shared.clone();
        let escalate = std::thread::Builder::new()
            .name("accord-vnc-stop".into())
            .spawn(move || {
                std::thread::sleep(DROP_GRACE);
                shared.kill_group(libc::SIGKILL);
            });
        if escalate.is_err() {
            self.shared.kill_group(libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// TCP ports in LISTEN owned by `pid` (its socket inodes matched against
/// its network namespace's /proc/net/tcp and tcp6).
pub fn tcp_listeners(pid: u32) -> Vec<u16> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    l.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local rem st tx:rx tr:tm retrnsmt uid timeout inode
            let (Some(local), Some(st), Some(inode)) = (f.get(1), f.get(3), f.get(9)) else {
                continue;
            };
            if *st != "0A" {
                continue;
            }
            let Ok(inode) = inode.parse::<u64>() else {
                continue;
            };
            if inodes.contains(&inode)
                && let Some(port) = local
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
            {
                ports.push(port);
            }
        }
    }
    ports
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_mutter_servers_exit_10_is_her_stop_in_gnome() {
        use std::os::unix::process::ExitStatusExt as _;
        let exit = |code: i32| std::process::ExitStatus::from_raw(code << 8);
        let ten = EXIT_STOPPED_IN_GNOME;
        assert!(stopped_in_gnome(Server::Mutter, exit(ten)));
        assert!(!stopped_in_gnome(Server::Mutter, exit(0)));
        assert!(!stopped_in_gnome(Server::Mutter, exit(1)));
        // x11vnc's own statuses mean nothing of the kind.
        assert!(!stopped_in_gnome(Server::X11vnc, exit(ten)));
        // Killed by a signal: no status code at all.
        assert!(!stopped_in_gnome(
            Server::Mutter,
            std::process::ExitStatus::from_raw(9)
        ));
    }

    #[test]
    fn displays() {
        for ok in [":0", ":10", ":1.0", "localhost:0", "host-1.example:3"] {
            assert!(valid_display(ok), "{ok}");
        }
        for bad in [
            "",
            "0",
            ":",
            ":a",
            "-rfbport:0",
            ":0 -rfbport 5900",
            ":1.",
            "a b:0",
        ] {
            assert!(!valid_display(bad), "{bad}");
        }
    }

    #[test]
    fn stderr_is_bounded_and_keeps_the_reason() {
        let mut log = StderrLog::default();
        log.push("*** XOpenDisplay failed (:99999)\n");
        for i in 0..100 {
            log.push(&format!("tip {i} {}\n", "x".repeat(400)));
        }
        let r = log.render();
        assert!(r.starts_with("*** XOpenDisplay failed"), "{r}");
        assert!(
            r.len() <= TAIL_BYTES + LINE_MAX * NOTABLE_LINES,
            "{}",
            r.len()
        );
        assert!(r.lines().count() <= TAIL_LINES + NOTABLE_LINES);
        assert!(r.contains("tip 99"));
        assert_eq!(summary(&r), "*** XOpenDisplay failed (:99999)");
        assert_eq!(summary("a\nb\nc\nd"), "b / c / d");
    }

    #[test]
    fn a_wayland_session_gets_accords_own_server_and_never_an_x11_one() {
        assert_eq!(pick_for(Launch::Auto, true).ok(), Some(Server::Mutter));
        assert!(matches!(
            pick_for(Launch::X11vnc, true),
            Err(LaunchError::Wayland(Launch::X11vnc))
        ));
        assert!(matches!(
            pick_for(Launch::X0vncserver, true),
            Err(LaunchError::Wayland(Launch::X0vncserver))
        ));
        assert!(matches!(
            pick_for(Launch::None, true),
            Err(LaunchError::Disabled)
        ));
        // On X11, auto never picks Mutter.
        assert_ne!(pick_for(Launch::Auto, false).ok(), Some(Server::Mutter));
        if cfg!(all(feature = "mutter", target_os = "linux")) {
            assert_eq!(pick_for(Launch::Mutter, false).ok(), Some(Server::Mutter));
        }
    }

    #[test]
    fn the_mutter_server_gets_the_mode_clipboard_and_input_and_no_display() {
        let sock = Path::new("/run/user/1000/accord-vnc-x/vnc.sock");
        let mut o = Options {
            display: String::new(),
            mode: Mode::View,
            clipboard: Clipboard::None,
            input: false,
            runtime_dir: "/run/user/1000".into(),
        };
        assert_eq!(
            args(Server::Mutter, &o, sock, false).join(" "),
            "screen-server --socket /run/user/1000/accord-vnc-x/vnc.sock --mode view --clipboard none"
        );
        o.input = true;
        o.mode = Mode::Control;
        o.clipboard = Clipboard::Both;
        assert_eq!(
            args(Server::Mutter, &o, sock, false).join(" "),
            "screen-server --socket /run/user/1000/accord-vnc-x/vnc.sock --mode control --clipboard both --input"
        );
    }

    #[test]
    fn no_tcp_port_in_the_arguments() {
        let opts = Options {
            display: ":0".into(),
            mode: Mode::Control,
            clipboard: Clipboard::None,
            input: true,
            runtime_dir: "/run/user/1000".into(),
        };
        let sock = Path::new("/run/user/1000/accord-vnc-x/vnc.sock");
        let a = args(Server::X11vnc, &opts, sock, false).join(" ");
        assert!(a.contains("-rfbport 0 -rfbportv6 -1"), "{a}");
        assert!(a.contains("-nosel") && a.contains("-novncconnect"), "{a}");
        let a = args(Server::X0vncserver, &opts, sock, true).join(" ");
        assert!(a.contains("-rfbport -1"), "{a}");
        assert!(a.contains("-AcceptCutText=0"), "{a}");
        let a = args(Server::X0vncserver, &opts, sock, false).join(" ");
        assert!(!a.contains("CutText"), "{a}");
        let open = Options {
            clipboard: Clipboard::Both,
            ..opts.clone()
        };
        assert!(!args(Server::X11vnc, &open, sock, false).contains(&"-nosel".to_string()));
    }

    #[test]
    fn the_servers_own_permissions_follow_the_decision() {
        let sock = Path::new("/run/user/1000/accord-vnc-x/vnc.sock");
        let opts = |clipboard, input| Options {
            display: ":0".into(),
            mode: Mode::Control,
            clipboard,
            input,
            runtime_dir: "/run/user/1000".into(),
        };
        let x11 = |o: &Options| args(Server::X11vnc, o, sock, false);
        let x0 = |o: &Options| args(Server::X0vncserver, o, sock, true);
        let has = |a: &[String], w: &str| a.iter().any(|x| x == w);
        // to_workstation: her selections never leave, even through the server.
        let a = x11(&opts(Clipboard::ToWorkstation, true));
        assert!(has(&a, "-noprimary") && has(&a, "-noclipboard") && !has(&a, "-nosel"));
        let a = x0(&opts(Clipboard::ToWorkstation, true));
        assert!(has(&a, "-SendCutText=0") && has(&a, "-SendPrimary=0"));
        assert!(!has(&a, "-AcceptCutText=0"));
        // both: nothing held back by the server.
        let a = x11(&opts(Clipboard::Both, true));
        assert!(!a.iter().any(|x| x.starts_with("-no") && x.contains("clip")));
        // view only for good: the server itself injects nothing.
        let a = x11(&opts(Clipboard::Both, false));
        assert!(has(&a, "-viewonly"));
        let a = x0(&opts(Clipboard::Both, false));
        for p in [
            "-AcceptKeyEvents=0",
            "-AcceptPointerEvents=0",
            "-AcceptCutText=0",
        ] {
            assert!(has(&a, p), "{p} in {a:?}");
        }
        assert!(!has(&x11(&opts(Clipboard::Both, true)), "-viewonly"));
        // Never -clear_all: it would switch her NumLock off at every start.
        let a = x11(&opts(Clipboard::None, true));
        assert!(has(&a, "-clear_keys") && !has(&a, "-clear_all"));
    }

    #[test]
    fn runtime_dir_must_be_private() {
        let d = std::env::temp_dir().join(format!("accord-launch-rt-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(matches!(
            check_runtime_dir(&d),
            Err(LaunchError::RuntimeDir { .. })
        ));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        check_runtime_dir(&d).unwrap();
        let sub = make_private_dir(&d).unwrap();
        let m = std::fs::metadata(&sub).unwrap();
        assert_eq!(m.mode() & 0o777, 0o700);
        assert!(
            sub.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("accord-vnc-")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}
