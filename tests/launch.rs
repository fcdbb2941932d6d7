//! The VNC server launcher (issue 14) against REAL servers — x11vnc and
//! TigerVNC's x0vncserver — on a real Xvfb.
//!
//! A missing program makes a test print `SKIPPED: <binary> not installed`
//! and pass, unless `ACCORD_REQUIRE_PEERS=1` (CI, `make test`), where it
//! fails. `scripts/deps.sh test` installs them all.

#![cfg(unix)]

use accord::launch::{self, LaunchError, Launched, Options, Server};
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

#[path = "common/peers.rs"]
mod peers;
use peers::{have, on_path};

fn server_bin(s: Server) -> &'static str {
    match s {
        Server::X11vnc => "x11vnc",
        Server::X0vncserver => "x0vncserver",
    }
}

/// An Xvfb on a free display, killed on drop.
struct Xvfb {
    child: std::process::Child,
    n: u32,
}

impl Xvfb {
    /// A free display from :300 on; the X server's own lock file arbitrates
    /// between concurrent tests (the display is ours once the lock holds
    /// our child's pid).
    fn start() -> Xvfb {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = (std::process::id() % 16) * 25;
        for _ in 0..40 {
            let n = 300 + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 400;
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if lock.exists() || sock.exists() {
                continue;
            }
            let mut child = Command::new("Xvfb")
                .arg(format!(":{n}"))
                .args(["-screen", "0", "640x480x24", "-nolisten", "tcp"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb");
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if let Ok(Some(_)) = child.try_wait() {
                    break; // lost the race for :n
                }
                let owner = std::fs::read_to_string(&lock)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                if owner == Some(child.id()) && sock.exists() {
                    return Xvfb { child, n };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("no free X display");
    }

    fn display(&self) -> String {
        format!(":{}", self.n)
    }
}

impl Drop for Xvfb {
    /// SIGTERM first: a killed Xvfb leaves its lock and socket in /tmp.
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A private runtime directory (0700, ours), like $XDG_RUNTIME_DIR.
fn runtime_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

fn options(x: &Xvfb, rt: &Path) -> Options {
    Options {
        display: x.display(),
        clipboard: accord::policy::Clipboard::None,
        input: true,
        runtime_dir: rt.to_path_buf(),
    }
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: no longer runs).
fn dead(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks existence.
    let rc = unsafe { libc::kill(pid as i32, 0) };
    if rc != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

fn wait_dead(pid: u32, within: Duration) -> bool {
    let t = Instant::now();
    while t.elapsed() < within {
        if dead(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    dead(pid)
}

/// Every TCP socket in LISTEN in this network namespace (local address).
fn listening() -> Vec<String> {
    let mut out = Vec::new();
    for t in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(t).unwrap_or_default();
        for l in text.lines().skip(1) {
            let f: Vec<&str> = l.split_whitespace().collect();
            if f.get(3) == Some(&"0A") {
                out.push(format!("{t} {} inode {}", f[1], f[9]));
            }
        }
    }
    out
}

/// SysV shared memory segments created by `pid` that still exist.
fn shm_of(pid: u32) -> Vec<String> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(4) == Some(pid.to_string().as_str()))
        .map(str::to_string)
        .collect()
}

/// The processes of process group `pgid`.
fn group_members(pgid: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|st| {
                st.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(3)?.parse::<u32>().ok())
                    == Some(pgid)
            })
        })
        .collect()
}

fn leftovers(rt: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(rt)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

async fn started(server: Server, x: &Xvfb, rt: &Path) -> Launched {
    launch::start(server, &options(x, rt))
        .await
        .unwrap_or_else(|e| panic!("{server}: {e}"))
}

// ---------------------------------------------------------------------------

async fn private_socket_rfb_and_stop(server: Server) {
    if !have(&["Xvfb", server_bin(server), "python3"]) {
        return;
    }
    let x = Xvfb::start();
    let rt = runtime_dir();
    let mut l = started(server, &x, rt.path()).await;
    let pid = l.pid();

    // 0600 socket in a 0700 directory, both ours, under the runtime dir.
    let me = unsafe { libc::geteuid() };
    let dm = std::fs::metadata(l.dir()).unwrap();
    assert_eq!(dm.mode() & 0o777, 0o700, "{server}: dir mode");
    assert_eq!(dm.uid(), me);
    assert_eq!(l.dir().parent(), Some(rt.path()));
    let sm = std::fs::symlink_metadata(l.socket_path()).unwrap();
    assert_eq!(sm.mode() & 0o777, 0o600, "{server}: socket mode");
    assert_eq!(sm.uid(), me);

    // The server speaks RFB on the stream we were given.
    let mut s = l.take_stream().expect("stream");
    let mut version = [0u8; 12];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut version))
        .await
        .expect("version line in 5 s")
        .unwrap();
    let v = String::from_utf8_lossy(&version).into_owned();
    assert!(v.starts_with("RFB 003.00") && v.ends_with('\n'), "{v:?}");

    // No TCP listener: not among the server's sockets, nor in its process
    // group (a child it forked). Other tests of this binary run agents
    // meanwhile, so "no new listener at all" cannot be asked here.
    assert_eq!(launch::tcp_listeners(pid), Vec::<u16>::new(), "{server}");
    let group: Vec<(u32, Vec<u16>)> = group_members(pid)
        .into_iter()
        .map(|p| (p, launch::tcp_listeners(p)))
        .filter(|(_, l)| !l.is_empty())
        .collect();
    assert!(
        group.is_empty(),
        "{server}: TCP listeners in its group {group:?}"
    );

    // Another account cannot connect (tests run as root in CI).
    if me == 0 {
        let py = if Path::new("/usr/bin/python3").exists() {
            "/usr/bin/python3"
        } else {
            "python3"
        };
        let out = Command::new(py)
            .args([
                "-c",
                "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint('connected')",
            ])
            .arg(l.socket_path())
            .uid(65534)
            .gid(65534)
            .current_dir("/")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{server}: nobody connected");
        assert!(err.contains("PermissionError"), "{server}: {err}");
    } else {
        eprintln!("NOTE: not root: the other-account connection is not tried");
    }

    let dir = l.dir().to_path_buf();
    let t = Instant::now();
    l.stop().await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(dead(pid), "{server}: pid {pid} still there after stop");
    assert!(!dir.exists(), "{server}: {} left", dir.display());
    assert!(leftovers(rt.path()).is_empty());
    drop(s);
}

async fn drop_kills(server: Server) {
    if !have(&["Xvfb", server_bin(server)]) {
        return;
    }
    let x = Xvfb::start();
    let rt = runtime_dir();
    let l = started(server, &x, rt.path()).await;
    let pid = l.pid();
    drop(l);
    assert!(
        wait_dead(pid, Duration::from_secs(1)),
        "{server}: alive 1 s after drop"
    );
    assert!(leftovers(rt.path()).is_empty());
}

async fn bad_display(server: Server) {
    if !have(&["Xvfb", server_bin(server)]) {
        return;
    }
    let rt = runtime_dir();
    let opts = Options {
        display: ":99999".into(),
        clipboard: accord::policy::Clipboard::None,
        input: true,
        runtime_dir: rt.path().to_path_buf(),
    };
    let e = match launch::start(server, &opts).await {
        Ok(_) => panic!("{server} started on :99999"),
        Err(e) => e,
    };
    let msg = e.to_string();
    eprintln!("{msg}");
    match &e {
        LaunchError::Exited { stderr_tail, .. } => {
            assert!(stderr_tail.contains("99999"), "{server}: {stderr_tail}");
            assert!(stderr_tail.len() <= 4096 + 4 * 200);
        }
        other => panic!("{server}: {other:?}"),
    }
    assert!(
        msg.starts_with(&format!("{server} exited at start (status ")),
        "{msg}"
    );
    assert!(msg.contains("99999"), "{msg}");
    assert!(leftovers(rt.path()).is_empty());
}

async fn killed_from_outside(server: Server) {
    if !have(&["Xvfb", server_bin(server)]) {
        return;
    }
    let x = Xvfb::start();
    let rt = runtime_dir();
    let l = started(server, &x, rt.path()).await;
    let exited = l.exited();
    // SAFETY: kill(2) on the server we started.
    unsafe { libc::kill(l.pid() as i32, libc::SIGKILL) };
    let st = tokio::time::timeout(Duration::from_secs(2), exited)
        .await
        .expect("exited() resolves");
    assert!(!st.success());
    l.stop().await;
}

#[tokio::test]
async fn x11vnc_private_socket_rfb_and_stop() {
    private_socket_rfb_and_stop(Server::X11vnc).await;
}

#[tokio::test]
async fn x11vnc_drop_kills() {
    drop_kills(Server::X11vnc).await;
}

#[tokio::test]
async fn x11vnc_bad_display() {
    bad_display(Server::X11vnc).await;
}

#[tokio::test]
async fn x11vnc_killed_from_outside() {
    killed_from_outside(Server::X11vnc).await;
}

#[tokio::test]
async fn x0vncserver_private_socket_rfb_and_stop() {
    private_socket_rfb_and_stop(Server::X0vncserver).await;
}

#[tokio::test]
async fn x0vncserver_drop_kills() {
    drop_kills(Server::X0vncserver).await;
}

#[tokio::test]
async fn x0vncserver_bad_display() {
    bad_display(Server::X0vncserver).await;
}

#[tokio::test]
async fn x0vncserver_killed_from_outside() {
    killed_from_outside(Server::X0vncserver).await;
}

#[test]
fn pick_follows_the_policy() {
    use accord::policy::Launch;
    assert!(matches!(
        launch::pick(Launch::None),
        Err(LaunchError::Disabled)
    ));
    match launch::pick(Launch::Auto) {
        Ok(Server::X11vnc) => assert!(on_path("x11vnc")),
        Ok(Server::X0vncserver) => assert!(!on_path("x11vnc")),
        Err(e) => assert!(matches!(e, LaunchError::NoneInstalled), "{e}"),
    }
}

#[tokio::test]
async fn refuses_a_shared_runtime_dir() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let opts = Options {
        display: ":0".into(),
        clipboard: accord::policy::Clipboard::None,
        input: true,
        runtime_dir: d.path().to_path_buf(),
    };
    let server = if on_path("x11vnc") {
        Server::X11vnc
    } else if on_path("x0vncserver") {
        Server::X0vncserver
    } else {
        return;
    };
    match launch::start(server, &opts).await {
        Err(LaunchError::RuntimeDir { why, .. }) => assert!(why.contains("writable"), "{why}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("started in a shared directory"),
    }
    assert!(leftovers(d.path()).is_empty());
}

// ---------------------------------------------------------------------------
// PR_SET_PDEATHSIG: the test binary re-runs itself as the "helper" that
// starts a server, prints its pid, and waits; it is then SIGKILLed.

const HELPER_ENV: &str = "ACCORD_LAUNCH_TEST_HELPER";

/// Not a test on its own: the body of the re-executed helper.
#[tokio::test]
async fn pdeathsig_helper() {
    let Ok(spec) = std::env::var(HELPER_ENV) else {
        return;
    };
    let (server, display, rt) = {
        let mut it = spec.splitn(3, ' ');
        let s = match it.next() {
            Some("x0vncserver") => Server::X0vncserver,
            _ => Server::X11vnc,
        };
        (
            s,
            it.next().unwrap().to_string(),
            it.next().unwrap().to_string(),
        )
    };
    let opts = Options {
        display,
        clipboard: accord::policy::Clipboard::None,
        input: true,
        runtime_dir: rt.into(),
    };
    let l = launch::start(server, &opts).await.unwrap();
    println!("LAUNCHED_PID={}", l.pid());
    // Killed by the test long before; bounded so that nothing hangs.
    tokio::time::sleep(Duration::from_secs(30)).await;
}

fn dies_with_its_parent(server: Server) {
    if !have(&["Xvfb", server_bin(server)]) {
        return;
    }
    let x = Xvfb::start();
    let rt = runtime_dir();
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "pdeathsig_helper",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            HELPER_ENV,
            format!(
                "{} {} {}",
                server_bin(server),
                x.display(),
                rt.path().display()
            ),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The helper exits by itself after 30 s: this loop ends then at worst.
    let mut out = std::io::BufReader::new(helper.stdout.take().unwrap());
    let mut pid = None;
    let mut line = String::new();
    use std::io::BufRead as _;
    while out.read_line(&mut line).unwrap() > 0 {
        // libtest writes "test pdeathsig_helper ... " before it, unterminated.
        if let Some((_, p)) = line.trim().split_once("LAUNCHED_PID=") {
            pid = p.parse::<u32>().ok();
            break;
        }
        line.clear();
    }
    let pid = pid.expect("the helper printed the server's pid");
    assert!(!dead(pid));
    helper.kill().unwrap(); // SIGKILL: no destructor runs
    helper.wait().unwrap();
    assert!(
        wait_dead(pid, Duration::from_secs(1)),
        "{server}: alive 1 s after its parent was killed"
    );
}

#[test]
fn x11vnc_dies_with_its_parent() {
    dies_with_its_parent(Server::X11vnc);
}

#[test]
fn x0vncserver_dies_with_its_parent() {
    dies_with_its_parent(Server::X0vncserver);
}

// ---------------------------------------------------------------------------
// Sessions through a launched server (issue 14): the broker asks the
// process in the clinician's session to start the server only once she has
// accepted; control and view-only act on the real X server; whatever ends
// the session, no server process is left and nothing listens on TCP.

mod common;
use accord::broker::{
    Answer, MemoryJournal, PromptError, PromptRequest, Prompter, Screen, ScreenError,
    ScreenRequest, SessionControl,
};
use accord::protocol::Mode;
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt as _;

/// Answers every prompt at once and starts `server` on the test's display,
/// like `accord agent` does on its own; counts what it was asked.
#[derive(Clone)]
struct LaunchingPrompter {
    answer: Answer,
    server: Server,
    opts: Options,
    opened: Arc<Mutex<Vec<ScreenRequest>>>,
}

impl Prompter for LaunchingPrompter {
    async fn ask(&self, _req: PromptRequest) -> Result<Answer, PromptError> {
        Ok(self.answer)
    }

    async fn open_screen(&self, req: ScreenRequest) -> Result<Screen, ScreenError> {
        self.opened.lock().unwrap().push(req);
        launch::screen(self.server, &self.opts).await
    }
}

struct SessionRig {
    _x: Xvfb,
    display: String,
    rt: tempfile::TempDir,
    pki: common::Pki,
    addr: std::net::SocketAddr,
    ctl: SessionControl,
    journal: Arc<MemoryJournal>,
    prompter: LaunchingPrompter,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn rig(server: Server, answer: Answer, idle: Duration) -> SessionRig {
    rig_on(server, answer, idle, None).await
}

/// [`rig`] with a maximum session duration.
async fn rig_max(server: Server, idle: Duration, max: Duration) -> SessionRig {
    rig_with(server, Answer::Control, idle, None, Some(max)).await
}

/// `display`: another display than the rig's Xvfb (one that does not exist).
async fn rig_on(
    server: Server,
    answer: Answer,
    idle: Duration,
    display: Option<&str>,
) -> SessionRig {
    rig_with(server, answer, idle, display, None).await
}

async fn rig_with(
    server: Server,
    answer: Answer,
    idle: Duration,
    display: Option<&str>,
    max: Option<Duration>,
) -> SessionRig {
    let x = Xvfb::start();
    let rt = runtime_dir();
    let mut opts = options(&x, rt.path());
    if let Some(d) = display {
        opts.display = d.into();
    }
    let pki = common::Pki::new();
    let mut policy = pki.policy("127.0.0.1:9".parse().unwrap());
    policy.upstream.launch = match server {
        Server::X11vnc => accord::policy::Launch::X11vnc,
        Server::X0vncserver => accord::policy::Launch::X0vncserver,
    };
    policy.session.idle_timeout = idle;
    if let Some(max) = max {
        policy.session.max_duration = max;
    }
    let prompter = LaunchingPrompter {
        answer,
        server,
        opts,
        opened: Arc::default(),
    };
    let a = common::spawn_agent(policy, prompter.clone()).await;
    SessionRig {
        display: x.display(),
        _x: x,
        rt,
        pki,
        addr: a.addr,
        ctl: a.ctl,
        journal: a.journal,
        prompter,
        _stop: a.stop,
    }
}

impl SessionRig {
    /// Pids of the servers started in this rig's runtime directory.
    fn servers(&self) -> Vec<u32> {
        let needle = self.rt.path().to_string_lossy().into_owned();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                    && !dead(*pid)
            })
            .collect()
    }

    fn record(&self, name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        common::records(&self.journal)
            .into_iter()
            .find(|r| r["event"] == name)
    }

    async fn wait_ended(&self) -> String {
        for _ in 0..500 {
            if let Some(r) = self.record("session_ended") {
                return r["why"].as_str().unwrap_or_default().to_string();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the session did not end");
    }

    async fn no_server_left(&self, what: &str) {
        let t = Instant::now();
        while !self.servers().is_empty() && t.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            self.servers(),
            Vec::<u32>::new(),
            "{what}: a server is left"
        );
        assert!(
            leftovers(self.rt.path()).is_empty(),
            "{what}: {:?}",
            leftovers(self.rt.path())
        );
    }

    fn pointer(&self) -> String {
        let out = Command::new("xdotool")
            .arg("getmouselocation")
            .env("DISPLAY", &self.display)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Before: nothing runs, nothing listens on 5900–5999. During: one server,
/// no TCP listener. Control moves the real pointer; `end()` (the kill
/// switch) stops the server.
async fn session_control_then_kill_switch(server: Server) {
    if !have(&["Xvfb", server_bin(server), "xdotool"]) {
        return;
    }
    let r = rig(server, Answer::Control, Duration::from_secs(60)).await;
    let vnc_ports = || {
        listening()
            .into_iter()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|a| a.rsplit_once(':'))
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
                    .is_some_and(|p| (5900..=5999).contains(&p))
            })
            .collect::<Vec<_>>()
    };
    assert!(r.servers().is_empty(), "{server} runs before any request");
    let before = vnc_ports();

    let (local, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    assert_eq!(r.prompter.opened.lock().unwrap().len(), 1);
    let pids = r.servers();
    assert_eq!(pids.len(), 1, "{server}: one server during the session");
    assert_eq!(launch::tcp_listeners(pids[0]), Vec::<u16>::new());
    assert_eq!(vnc_ports(), before, "{server}: something listens on 59xx");
    let started = r.record("session_started").unwrap();
    let up = started["upstream"].as_str().unwrap();
    assert!(
        up.contains(server.name()) && up.contains("started for the session"),
        "{up}"
    );

    let (mut v, si) = common::rfb_viewer(local).await.unwrap();
    assert_eq!(
        u16::from_be_bytes([si[0], si[1]]),
        640,
        "the real screen's width"
    );
    let target = (123u16, 77u16);
    let mut ev = vec![5u8, 0];
    ev.extend_from_slice(&target.0.to_be_bytes());
    ev.extend_from_slice(&target.1.to_be_bytes());
    v.write_all(&ev).await.unwrap();
    let want = format!("x:{} y:{}", target.0, target.1);
    let t = Instant::now();
    while r.pointer() != want && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        r.pointer(),
        want,
        "{server}: control moves the real pointer"
    );

    r.ctl.end();
    assert_eq!(r.wait_ended().await, "user");
    r.no_server_left("kill switch").await;
    // Stopped cleanly: no SysV shared memory left behind by the server
    // (leaked segments add up until no server can start any more).
    let t = Instant::now();
    while !shm_of(pids[0]).is_empty() && t.elapsed() < Duration::from_secs(2) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        shm_of(pids[0]),
        Vec::<String>::new(),
        "{server}: shm segments leaked"
    );
    assert_eq!(vnc_ports(), before);
}

/// View-only through a launched server: the pointer does not move; then the
/// technician hangs up and the server goes with the session.
async fn session_view_only_then_hang_up(server: Server) {
    if !have(&["Xvfb", server_bin(server), "xdotool"]) {
        return;
    }
    let r = rig(server, Answer::ViewOnly, Duration::from_secs(60)).await;
    let (local, task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    let (mut v, _) = common::rfb_viewer(local).await.unwrap();
    let before = r.pointer();
    v.write_all(&[5, 1, 0, 200, 0, 150]).await.unwrap();
    // A full update request, answered: the relay runs, the pointer did not move.
    v.write_all(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 224])
        .await
        .unwrap();
    let mut first = [0u8; 1];
    tokio::time::timeout(Duration::from_secs(5), v.read_exact(&mut first))
        .await
        .expect("an update in view-only")
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(r.pointer(), before, "{server}: view-only moved the pointer");
    drop(v);
    task.abort();
    let why = r.wait_ended().await;
    assert_eq!(why, "technician");
    r.no_server_left("technician hang-up").await;
}

/// T10 through a launched server: nobody acts, the session ends `idle` and
/// the server stops.
async fn session_idle(server: Server) {
    if !have(&["Xvfb", server_bin(server)]) {
        return;
    }
    let r = rig(server, Answer::Control, Duration::from_secs(2)).await;
    let (local, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::View)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    let (_v, _) = common::rfb_viewer(local).await.unwrap();
    assert_eq!(r.servers().len(), 1);
    assert_eq!(r.wait_ended().await, "idle");
    r.no_server_left("idle").await;
}

#[tokio::test]
async fn x11vnc_session_control_then_kill_switch() {
    session_control_then_kill_switch(Server::X11vnc).await;
}

#[tokio::test]
async fn x0vncserver_session_control_then_kill_switch() {
    session_control_then_kill_switch(Server::X0vncserver).await;
}

#[tokio::test]
async fn x11vnc_session_view_only_then_hang_up() {
    session_view_only_then_hang_up(Server::X11vnc).await;
}

#[tokio::test]
async fn x0vncserver_session_view_only_then_hang_up() {
    session_view_only_then_hang_up(Server::X0vncserver).await;
}

#[tokio::test]
async fn x11vnc_session_idle() {
    session_idle(Server::X11vnc).await;
}

#[tokio::test]
async fn x0vncserver_session_idle() {
    session_idle(Server::X0vncserver).await;
}

/// A server that cannot start (no such display): the technician gets
/// `upstream_unreachable`, the log the server's reason, and nothing is left.
#[tokio::test]
async fn a_server_that_cannot_start_is_upstream_unreachable() {
    if !have(&["Xvfb", "x11vnc"]) {
        return;
    }
    let r = rig_on(
        Server::X11vnc,
        Answer::Control,
        Duration::from_secs(60),
        Some(":98765"),
    )
    .await;
    let (res, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    match res {
        Err(accord::connect::ConnectError::Refused(
            accord::protocol::RefusalCode::UpstreamUnreachable,
        )) => {}
        other => panic!("expected upstream_unreachable, got {other:?}"),
    }
    let ended = r.record("session_ended").expect("recorded");
    assert_eq!(ended["why"], "upstream");
    let detail = ended["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("x11vnc") && detail.contains("98765"),
        "{detail}"
    );
    r.no_server_left("failed start").await;
}

/// Refused: nothing is started at all.
#[tokio::test]
async fn a_refusal_starts_nothing() {
    if !have(&["Xvfb", "x11vnc"]) {
        return;
    }
    let r = rig(Server::X11vnc, Answer::Refused, Duration::from_secs(60)).await;
    let (res, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    assert!(res.is_err());
    assert!(
        r.prompter.opened.lock().unwrap().is_empty(),
        "opened after a refusal"
    );
    assert!(r.servers().is_empty());
}

/// The server exiting on its own ends the session `upstream`.
async fn server_exit_ends_the_session(server: Server) {
    if !have(&["Xvfb", server_bin(server)]) {
        return;
    }
    let r = rig(server, Answer::Control, Duration::from_secs(60)).await;
    let (local, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    let (_v, _) = common::rfb_viewer(local).await.unwrap();
    let pids = r.servers();
    assert_eq!(pids.len(), 1);
    // SAFETY: kill(2) on the server this test's session started.
    unsafe { libc::kill(pids[0] as i32, libc::SIGKILL) };
    assert_eq!(r.wait_ended().await, "upstream");
    r.no_server_left("server killed").await;
}

#[tokio::test]
async fn x11vnc_server_exit_ends_the_session() {
    server_exit_ends_the_session(Server::X11vnc).await;
}

#[tokio::test]
async fn x0vncserver_server_exit_ends_the_session() {
    server_exit_ends_the_session(Server::X0vncserver).await;
}

// ---------------------------------------------------------------------------
// Nothing of the technician outlives the session: keys and buttons held
// when it ends are released on the X server, whatever ends it, even though
// the server Accord started is stopped right after.

/// What `xinput query-state` says is down on the XTEST devices (the ones
/// the VNC servers inject through), e.g. `["key[37]", "button[1]"]`.
fn xtest_down(display: &str) -> Vec<String> {
    let mut down = Vec::new();
    for dev in ["Virtual core XTEST keyboard", "Virtual core XTEST pointer"] {
        let out = Command::new("xinput")
            .args(["query-state", dev])
            .env("DISPLAY", display)
            .output()
            .unwrap();
        for l in String::from_utf8_lossy(&out.stdout).lines() {
            let l = l.trim();
            if let Some((what, "down")) = l.split_once('=') {
                down.push(what.to_string());
            }
        }
    }
    down
}

#[derive(Clone, Copy, Debug)]
enum Ending {
    /// The banner's Terminer, the shortcut and `accord end` all call this.
    KillSwitch,
    Locked,
    ServiceStopped,
    TechnicianGone,
    Idle,
    MaxDuration,
}

/// The technician holds Ctrl and button 1; the session ends `ending`;
/// nothing stays down on her X server.
async fn nothing_held_after(server: Server, ending: Ending) {
    if !have(&["Xvfb", server_bin(server), "xinput"]) {
        return;
    }
    let (idle, max) = match ending {
        Ending::Idle => (Duration::from_secs(2), Duration::from_secs(600)),
        Ending::MaxDuration => (Duration::from_secs(60), Duration::from_secs(3)),
        _ => (Duration::from_secs(60), Duration::from_secs(600)),
    };
    let r = rig_max(server, idle, max).await;
    let (local, task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    let (mut v, _) = common::rfb_viewer(local).await.unwrap();
    // Control_L down, then button 1 down at (100, 100).
    v.write_all(&[4, 1, 0, 0, 0, 0, 0xff, 0xe3]).await.unwrap();
    v.write_all(&[5, 1, 0, 100, 0, 100]).await.unwrap();
    let t = Instant::now();
    while xtest_down(&r.display).len() < 2 && t.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = xtest_down(&r.display);
    assert!(
        held.iter().any(|d| d.starts_with("key")) && held.iter().any(|d| d == "button[1]"),
        "{server}: the technician's Ctrl and button 1 are down first: {held:?}"
    );
    // The viewer asks for whole screens and reads none: the server is busy
    // writing to Accord when the session ends (what a real viewer on a
    // busy screen does), and must still read the releases.
    for _ in 0..40 {
        v.write_all(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 224])
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let want = match ending {
        Ending::KillSwitch => {
            r.ctl.end();
            "user"
        }
        Ending::Locked => {
            r.ctl.end_with(accord::broker::EndReason::ScreenLocked);
            "screen_locked"
        }
        Ending::ServiceStopped => {
            r.ctl.end_with(accord::broker::EndReason::AgentStopped);
            "agent_stopped"
        }
        Ending::TechnicianGone => {
            drop(v);
            task.abort();
            "technician"
        }
        Ending::Idle => "idle",
        Ending::MaxDuration => "max_duration",
    };
    assert_eq!(r.wait_ended().await, want, "{server} {ending:?}");
    r.no_server_left("held keys").await;
    let left = xtest_down(&r.display);
    assert!(
        left.is_empty(),
        "{server} {ending:?}: still down on her display after the session: {left:?}"
    );
}

macro_rules! nothing_held {
    ($($name:ident: $server:expr, $ending:expr;)*) => {$(
        #[tokio::test]
        async fn $name() {
            nothing_held_after($server, $ending).await;
        }
    )*};
}

nothing_held! {
    x11vnc_kill_switch_leaves_nothing_held: Server::X11vnc, Ending::KillSwitch;
    x11vnc_lock_leaves_nothing_held: Server::X11vnc, Ending::Locked;
    x11vnc_service_stop_leaves_nothing_held: Server::X11vnc, Ending::ServiceStopped;
    x11vnc_technician_gone_leaves_nothing_held: Server::X11vnc, Ending::TechnicianGone;
    x11vnc_idle_leaves_nothing_held: Server::X11vnc, Ending::Idle;
    x11vnc_max_duration_leaves_nothing_held: Server::X11vnc, Ending::MaxDuration;
    x0vncserver_kill_switch_leaves_nothing_held: Server::X0vncserver, Ending::KillSwitch;
    x0vncserver_lock_leaves_nothing_held: Server::X0vncserver, Ending::Locked;
    x0vncserver_service_stop_leaves_nothing_held: Server::X0vncserver, Ending::ServiceStopped;
    x0vncserver_technician_gone_leaves_nothing_held: Server::X0vncserver, Ending::TechnicianGone;
    x0vncserver_idle_leaves_nothing_held: Server::X0vncserver, Ending::Idle;
    x0vncserver_max_duration_leaves_nothing_held: Server::X0vncserver, Ending::MaxDuration;
}
