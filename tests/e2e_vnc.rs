//! End to end against REAL peers: an X server (Xvfb, or
//! TigerVNC's Xtigervnc which is one), a real VNC server on it (x11vnc with
//! `-localhost`, or Xtigervnc's own), the in-process agent with a scripted
//! prompter, the real `accord connect` tunnel code, and a real VNC client
//! (vncdotool from PyPI, in a venv under target/ made by
//! `tests/e2e/setup-venv.sh`, driven by `tests/e2e/vnc_client.py`).
//!
//! What reaches the workstation is observed on the X server itself:
//! `xdotool getmouselocation` (pointer), `xinput test-xi2 --root` (every key,
//! button and motion event), `xclip` and the root window's CUT_BUFFER0
//! (x11vnc puts received cut text there), `import -window root` (the screen,
//! compared pixel for pixel with the client's capture), and /proc/net/tcp
//! (the server leg's TCP connections).
//!
//! A missing peer program makes a test print `SKIPPED: <binary> not
//! installed` and pass, unless `ACCORD_REQUIRE_PEERS=1` (CI, `make test`),
//! where it fails. `scripts/deps.sh test` installs them all.
//!
//! Everything binds 127.0.0.1 only. Every child process is killed when its
//! [`Peers`] guard drops, panic or not; on a panic their logs are printed.

mod common;

use accord::broker::{Answer, PromptError, PromptRequest, Prompter, SessionControl};
use accord::connect::{self, ConnectError};
use accord::policy::Policy;
use accord::protocol::{Mode, RefusalCode};
use common::peers::{have, require_peers};
use common::{Pki, RunningAgent, ScriptedPrompter, connect_tunnel, established_to, read_to_end};
use std::io::{BufRead as _, Read as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Screen size of every X server started here.
const W: u16 = 640;
const H: u16 = 480;

// ---------------------------------------------------------------------------
// Raw RFB through the tunnel (the agent, PKI and tunnel are tests/common's).
// ---------------------------------------------------------------------------

/// The agent's policy with the VNC server on 127.0.0.1:`port` upstream.
fn policy_for(pki: &Pki, port: u16) -> Policy {
    pki.policy(SocketAddr::from(([127, 0, 0, 1], port)))
}

/// A minimal hand-written RFB 3.8 viewer (security None) for raw, hostile
/// byte sequences. Returns the stream and ServerInit's width and height.
async fn raw_viewer(addr: SocketAddr) -> (TcpStream, u16, u16) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut v = [0u8; 12];
    s.read_exact(&mut v).await.unwrap();
    assert_eq!(&v, b"RFB 003.008\n");
    s.write_all(b"RFB 003.008\n").await.unwrap();
    let mut n = [0u8; 1];
    s.read_exact(&mut n).await.unwrap();
    let mut types = vec![0u8; n[0] as usize];
    s.read_exact(&mut types).await.unwrap();
    assert_eq!(
        types,
        [1],
        "Accord offers the technician security None only"
    );
    s.write_all(&[1]).await.unwrap();
    let mut result = [0u8; 4];
    s.read_exact(&mut result).await.unwrap();
    assert_eq!(result, [0, 0, 0, 0]);
    s.write_all(&[0]).await.unwrap(); // ClientInit, not shared (Accord forces 1)
    let mut head = [0u8; 24];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[4], 32, "32 bits per pixel from a depth-24 X server");
    let len = u32::from_be_bytes([head[20], head[21], head[22], head[23]]) as usize;
    let mut name = vec![0u8; len];
    s.read_exact(&mut name).await.unwrap();
    let w = u16::from_be_bytes([head[0], head[1]]);
    let h = u16::from_be_bytes([head[2], head[3]]);
    (s, w, h)
}

/// Reads server messages until one FramebufferUpdate has been read whole.
/// Only Raw (0) rectangles are expected: that is all the viewer asked for.
async fn read_one_update(s: &mut TcpStream) {
    loop {
        let t = s.read_u8().await.expect("server message");
        match t {
            0 => {
                let _pad = s.read_u8().await.unwrap();
                let n = s.read_u16().await.unwrap();
                for _ in 0..n {
                    let _x = s.read_u16().await.unwrap();
                    let _y = s.read_u16().await.unwrap();
                    let w = s.read_u16().await.unwrap() as usize;
                    let h = s.read_u16().await.unwrap() as usize;
                    let enc = s.read_i32().await.unwrap();
                    assert_eq!(enc, 0, "only Raw was asked for");
                    let mut px = vec![0u8; w * h * 4];
                    s.read_exact(&mut px).await.unwrap();
                }
                return;
            }
            2 => {} // Bell
            3 => {
                let mut pad = [0u8; 3];
                s.read_exact(&mut pad).await.unwrap();
                let len = s.read_u32().await.unwrap() as usize;
                let mut text = vec![0u8; len];
                s.read_exact(&mut text).await.unwrap();
            }
            other => panic!("unexpected server message type {other}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Peers: presence, processes, displays, ports.
// ---------------------------------------------------------------------------

/// Programs every test here needs.
const BASE: &[&str] = &[
    "Xvfb", "x11vnc", "xdotool", "xinput", "xclip", "xprop", "import", "convert", "display",
    "python3", "stdbuf", "timeout", "bash", "flock",
];

/// The venv's python with vncdotool, made once per test binary (and cached
/// under target/ across runs by the script). None ⇒ skip (or panic in CI).
fn vnc_python() -> Option<PathBuf> {
    static PY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let r = PY.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/setup-venv.sh");
        let venv = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .parent()
            .unwrap()
            .join("vncvenv");
        let out = Command::new("bash")
            .arg(&script)
            .arg(&venv)
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if !out.status.success() {
            return Err(format!(
                "{} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let py = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if py.is_file() {
            Ok(py)
        } else {
            Err(format!("no python at {}", py.display()))
        }
    });
    match r {
        Ok(p) => Some(p.clone()),
        Err(e) if require_peers() => {
            panic!("ACCORD_REQUIRE_PEERS=1 but the vncdotool venv is unusable: {e}")
        }
        Err(e) => {
            eprintln!("SKIPPED: vncdotool not installed ({e})");
            None
        }
    }
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Proc {
    name: String,
    child: std::process::Child,
    log: PathBuf,
}

/// Owns every child process of a test and kills them all when dropped.
struct Peers {
    dir: tempfile::TempDir,
    procs: Vec<Proc>,
}

impl Drop for Peers {
    fn drop(&mut self) {
        for p in self.procs.iter_mut().rev() {
            if let Ok(pid) = i32::try_from(p.child.id()) {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = p.child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
        if std::thread::panicking() {
            for p in &self.procs {
                let log = std::fs::read_to_string(&p.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("---- {} (last lines of {}) ----", p.name, p.log.display());
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

/// An X display started by [`Peers`].
#[derive(Clone, Copy, Debug)]
struct Display(u32);

impl Display {
    fn env(self) -> String {
        format!(":{}", self.0)
    }

    /// Runs an X client on this display (8 s at most), returning stdout.
    fn run(self, prog: &str, args: &[&str]) -> String {
        let out = Command::new("timeout")
            .arg("8")
            .arg(prog)
            .args(args)
            .env("DISPLAY", self.env())
            .env_remove("XAUTHORITY")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{prog}: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn pointer(self) -> (i32, i32) {
        let out = self.run("xdotool", &["getmouselocation", "--shell"]);
        let get = |k: &str| {
            out.lines()
                .find_map(|l| l.strip_prefix(k))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {k} in {out:?}"))
        };
        (get("X="), get("Y="))
    }

    fn move_pointer(self, x: i32, y: i32) {
        self.run("xdotool", &["mousemove", &x.to_string(), &y.to_string()]);
    }

    /// CLIPBOARD, PRIMARY and the root window's CUT_BUFFER0 (x11vnc sets it
    /// from the viewer's cut text), in one string.
    fn clipboard(self) -> String {
        let c = self.run("xclip", &["-o", "-selection", "clipboard"]);
        let p = self.run("xclip", &["-o", "-selection", "primary"]);
        let cut = self.run("xprop", &["-root", "CUT_BUFFER0"]);
        format!("clipboard={c:?} primary={p:?} {}", cut.trim())
    }

    /// The root window as RGB bytes, through ImageMagick's `import`.
    fn screenshot_rgb(self, dir: &Path) -> Vec<u8> {
        let f = dir.join(format!("root-{}.png", self.0));
        self.run("import", &["-window", "root", f.to_str().unwrap()]);
        png_rgb(&f)
    }
}

/// An image file as 8-bit RGB bytes (whatever PNG flavour it is).
fn png_rgb(f: &Path) -> Vec<u8> {
    let out = Command::new("convert")
        .arg(f)
        .args(["-depth", "8", "rgb:-"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "convert {}: {}",
        f.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Copies the named files of the test's directory to
/// target/tmp/e2e-failures/ when `ok` is false, to look at after a failure.
fn keep_on_failure(peers: &Peers, names: &[&str], ok: bool) {
    if ok {
        return;
    }
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e-failures");
    let _ = std::fs::create_dir_all(&dst);
    for n in names {
        let _ = std::fs::copy(peers.path(n), dst.join(n));
    }
    eprintln!("kept {names:?} in {}", dst.display());
}

/// Number of pixels that differ between two RGB buffers of W×H.
fn differing_pixels(a: &[u8], b: &[u8]) -> usize {
    assert_eq!(
        a.len(),
        W as usize * H as usize * 3,
        "first image is {W}x{H} RGB"
    );
    assert_eq!(b.len(), a.len(), "second image is {W}x{H} RGB");
    a.chunks(3).zip(b.chunks(3)).filter(|(x, y)| x != y).count()
}

/// `xinput test-xi2 --root`: every input event the X server delivers.
struct XiWatch {
    log: PathBuf,
    from: usize,
}

/// One `EVENT type N (Name)` block of `xinput test-xi2`.
#[derive(Debug)]
struct XiEvent {
    name: String,
    detail: Option<u32>,
}

impl XiWatch {
    fn read(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Forgets everything seen so far.
    fn mark(&mut self) {
        self.from = self.read().len();
    }

    /// Input events (keys, buttons, motion, touch, raw or not) since the
    /// last mark; DeviceChanged and property events are not input.
    fn input_events(&self) -> Vec<XiEvent> {
        let text = self.read();
        let mut out: Vec<XiEvent> = Vec::new();
        for line in text[self.from.min(text.len())..].lines() {
            if let Some(rest) = line.strip_prefix("EVENT type ") {
                let name = rest
                    .split_once('(')
                    .and_then(|(_, n)| n.strip_suffix(')'))
                    .unwrap_or(rest)
                    .to_string();
                out.push(XiEvent { name, detail: None });
            } else if let Some(d) = line.trim().strip_prefix("detail:")
                && let Some(e) = out.last_mut()
                && e.detail.is_none()
            {
                e.detail = d.trim().parse().ok();
            }
        }
        out.retain(|e| {
            ["Key", "Button", "Motion", "Touch", "Raw"]
                .iter()
                .any(|p| e.name.starts_with(p))
        });
        out
    }

    fn has(&self, name: &str) -> bool {
        self.input_events().iter().any(|e| e.name == name)
    }
}

impl Peers {
    fn new() -> Peers {
        Peers {
            dir: tempfile::tempdir().unwrap(),
            procs: Vec::new(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> usize {
        let log = self.path(&format!("{name}-{}.log", self.procs.len()));
        let f = std::fs::File::create(&log).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(f.try_clone().unwrap())
            .stderr(f)
            .env_remove("XAUTHORITY");
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        self.procs.push(Proc {
            name: name.to_string(),
            child,
            log,
        });
        self.procs.len() - 1
    }

    fn log_of(&self, idx: usize) -> String {
        std::fs::read_to_string(&self.procs[idx].log).unwrap_or_default()
    }

    fn exited(&mut self, idx: usize) -> bool {
        !matches!(self.procs[idx].child.try_wait(), Ok(None))
    }

    /// Starts an X server on a free display from :90 on. The X server's own
    /// lock file arbitrates between concurrent tests and processes: the
    /// display is ours once its lock holds our child's pid.
    fn start_x(&mut self, name: &str, make: impl Fn(u32) -> Command) -> (Display, usize) {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = (std::process::id() % 16) * 25;
        for _ in 0..40 {
            let n = 90 + (base + NEXT.fetch_add(1, Ordering::Relaxed)) % 400;
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if lock.exists() || sock.exists() {
                continue;
            }
            let idx = self.spawn(name, make(n));
            let pid = self.procs[idx].child.id();
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) {
                if self.exited(idx) {
                    break; // lost the race for :n, or failed: try the next one
                }
                let owner = std::fs::read_to_string(&lock)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                if owner == Some(pid) && sock.exists() {
                    return (Display(n), idx);
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            assert!(
                self.exited(idx),
                "{name} :{n} did not come up in 15 s:\n{}",
                self.log_of(idx)
            );
        }
        panic!("no free X display found for {name}");
    }

    /// Xvfb (its root window is painted by [`Peers::x11vnc`]).
    fn xvfb(&mut self) -> Display {
        self.xvfb_sized(W, H)
    }

    fn xvfb_sized(&mut self, w: u16, h: u16) -> Display {
        let geometry = format!("{w}x{h}x24");
        let (d, _) = self.start_x("Xvfb", |n| {
            let mut c = Command::new("Xvfb");
            c.arg(format!(":{n}"))
                .args(["-screen", "0", &geometry, "-nolisten", "tcp"]);
            c
        });
        d
    }

    /// Sets the root background to a fractal pattern (every pixel matters
    /// when the client's capture is compared with the display).
    fn paint(&mut self, d: Display) {
        let pat = self.path("pattern.png");
        if !pat.exists() {
            let st = Command::new("convert")
                .args([
                    "-seed",
                    "7",
                    "-size",
                    &format!("{W}x{H}"),
                    "plasma:fractal",
                    "-depth",
                    "8",
                ])
                .arg(format!("PNG24:{}", pat.display()))
                .status()
                .unwrap();
            assert!(st.success(), "convert plasma");
        }
        // `display -window root` sets the background and exits (status 1).
        d.run("display", &["-window", "root", pat.to_str().unwrap()]);
        let want = png_rgb(&pat);
        let got = d.screenshot_rgb(self.dir.path());
        assert_eq!(
            differing_pixels(&want, &got),
            0,
            "root window shows the pattern"
        );
    }

    /// x11vnc on a display, loopback only; returns its RFB port.
    fn x11vnc(&mut self, d: Display) -> (u16, usize) {
        for _ in 0..5 {
            let port = free_port();
            let mut c = Command::new("x11vnc");
            c.args(["-display", &d.env(), "-rfbport", &port.to_string()])
                .args([
                    "-localhost",
                    "-noipv6",
                    "-forever",
                    "-shared",
                    "-nopw",
                    "-norc",
                ]);
            let idx = self.spawn("x11vnc", c);
            if self.wait_rfb(idx, port) {
                // Painted once x11vnc is up: its start-up resets the root
                // window's background (seen with x11vnc 0.9.16 on Xvfb).
                self.paint(d);
                return (port, idx);
            }
        }
        panic!("x11vnc would not start");
    }

    /// Xtigervnc (X server and VNC server in one) with VNC authentication
    /// when `password` is given, security None otherwise.
    fn xtigervnc(&mut self, password: Option<&str>) -> (Display, u16, usize) {
        let auth = password.map(|pw| {
            let f = self.path("tigervnc.passwd");
            let mut child = Command::new("vncpasswd")
                .arg("-f")
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("vncpasswd");
            use std::io::Write as _;
            writeln!(child.stdin.take().unwrap(), "{pw}").unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success() && out.stdout.len() == 8,
                "vncpasswd -f"
            );
            std::fs::write(&f, &out.stdout).unwrap();
            f
        });
        for _ in 0..5 {
            let port = free_port();
            let geometry = format!("{W}x{H}");
            let auth = auth.clone();
            let (d, idx) = self.start_x("Xtigervnc", move |n| {
                let mut c = Command::new("Xtigervnc");
                c.arg(format!(":{n}"))
                    .args([
                        "-rfbport",
                        &port.to_string(),
                        "-localhost=1",
                        "-interface",
                        "127.0.0.1",
                    ])
                    .args([
                        "-UseIPv6=0",
                        "-geometry",
                        &geometry,
                        "-depth",
                        "24",
                        "-nolisten",
                        "tcp",
                    ])
                    .args(["-AlwaysShared=1"]);
                match &auth {
                    Some(f) => c.args(["-SecurityTypes", "VncAuth", "-rfbauth"]).arg(f),
                    None => c.args(["-SecurityTypes", "None"]),
                };
                c
            });
            if self.wait_rfb(idx, port) {
                self.paint(d);
                return (d, port, idx);
            }
        }
        panic!("Xtigervnc would not start");
    }

    /// Waits until `port` answers with an RFB banner (false: the process
    /// died or 15 s passed, e.g. someone else took the port).
    fn wait_rfb(&mut self, idx: usize, port: u16) -> bool {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(15) {
            if self.exited(idx) {
                return false;
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut v = [0u8; 12];
                if s.read_exact(&mut v).is_ok() && v.starts_with(b"RFB 003.") {
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// Starts `xinput test-xi2 --root` and waits until it sees events.
    /// Leaves the pointer at (`x`, `y`).
    fn xinput(&mut self, d: Display, x: i32, y: i32) -> XiWatch {
        let mut c = Command::new("stdbuf");
        c.args(["-oL", "xinput", "test-xi2", "--root"])
            .env("DISPLAY", d.env());
        let idx = self.spawn("xinput", c);
        let mut w = XiWatch {
            log: self.procs[idx].log.clone(),
            from: 0,
        };
        let t = Instant::now();
        let mut i = 0;
        while !w.has("Motion") && !w.has("RawMotion") {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "xinput test-xi2 sees no motion"
            );
            assert!(!self.exited(idx), "xinput died: {}", self.log_of(idx));
            i += 1;
            d.move_pointer(x + i % 2, y);
            std::thread::sleep(Duration::from_millis(50));
        }
        d.move_pointer(x, y);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(d.pointer(), (x, y));
        w.mark();
        w
    }
}

// ---------------------------------------------------------------------------
// The real VNC client.
// ---------------------------------------------------------------------------

/// vncdotool through `tests/e2e/vnc_client.py`, its stdout read line by
/// line (a thread feeds a channel). Killed on drop.
struct VncClient {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Drop for VncClient {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl VncClient {
    fn start(py: &Path, server: SocketAddr, args: &[&str]) -> VncClient {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/vnc_client.py");
        let mut child = Command::new(py)
            .arg(script)
            .arg(format!("{}::{}", server.ip(), server.port()))
            .args(args)
            .env("PYTHONWARNINGS", "ignore")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        VncClient {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (30 s at most) for a line of output equal to `want`.
    async fn wait_line(&mut self, want: &str) {
        let r = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = self.lines.recv().await {
                let hit = l == want;
                self.seen.push(l);
                if hit {
                    return true;
                }
            }
            false
        })
        .await;
        if r != Ok(true) {
            let err = self.stderr();
            panic!(
                "vnc client never printed {want:?}; printed {:?}; stderr: {err}",
                self.seen
            );
        }
    }

    /// Kills the client and returns what it wrote on stderr.
    fn stderr(&mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    /// Waits (60 s at most) for the client to exit; returns its status code.
    async fn finish(mut self) -> i32 {
        while let Ok(Some(l)) =
            tokio::time::timeout(Duration::from_secs(60), self.lines.recv()).await
        {
            self.seen.push(l);
        }
        let t = Instant::now();
        let code = loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                break st.code().unwrap_or(-1);
            }
            assert!(t.elapsed() < Duration::from_secs(10), "vnc client exits");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        if code != 0 {
            let err = self.stderr();
            eprintln!(
                "vnc client exited {code}; printed {:?}; stderr: {err}",
                self.seen
            );
        }
        code
    }
}

/// What every input test makes the client do: pointer to (10, 20), a left
/// click, the key `a`, a paste, then a full-screen capture (which also
/// proves the server processed everything sent before it), then stay
/// connected a while: TigerVNC drops the clipboard when its owner leaves,
/// so the display is checked while the client is still there.
const PASTE: &str = "accord-e2e-paste-7f3a";

fn input_script(capture: &Path) -> Vec<String> {
    [
        "move", "10", "20", "click", "1", "key", "a", "paste", PASTE, "pause", "0.3", "capture",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        capture.to_str().unwrap().to_string(),
        "pause".into(),
        "3".into(),
    ])
    .collect()
}

/// The agent accepted; returns the tunnel's local address.
async fn open_tunnel<P>(
    pki: &Pki,
    agent: &RunningAgent<P>,
    mode: Mode,
) -> (
    SocketAddr,
    tokio::task::JoinHandle<Result<(), ConnectError>>,
) {
    let (local, task) = connect_tunnel(pki.connect_config(agent.addr, mode)).await;
    (local.expect("accepted"), task)
}

/// Waits (10 s at most) until a process log contains `needle`.
async fn wait_log(peers: &Peers, idx: usize, needle: &str) {
    for _ in 0..200 {
        if peers.log_of(idx).contains(needle) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{needle:?} never logged by {}", peers.procs[idx].name);
}

/// [`x11vnc_received`] once x11vnc has written its whole table (it prints
/// it row by row after "Client … gone"; the TOTALS row comes last).
async fn x11vnc_stats(peers: &Peers, idx: usize) -> String {
    let mut got = String::new();
    for _ in 0..100 {
        got = x11vnc_received(&peers.log_of(idx));
        if got.contains("FramebufferUpdate") && got.contains("TOTALS") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got
}

/// x11vnc's per-client statistics (printed when the client leaves): the
/// names of the client→server messages it received.
fn x11vnc_received(log: &str) -> String {
    let Some(i) = log.rfind("Received/ RawEquiv") else {
        return String::new();
    };
    log[i..]
        .lines()
        .skip(1)
        .take_while(|l| l.contains('|'))
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_mode_input_reaches_the_display() {
    if !have(BASE) {
        return;
    }
    let Some(py) = vnc_python() else { return };
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, x11vnc) = peers.x11vnc(d);
    let xi = peers.xinput(d, 300, 200);
    let clip_before = d.clipboard();
    assert!(!clip_before.contains(PASTE));

    let pki = Pki::new();
    let mut agent = RunningAgent::start(
        policy_for(&pki, port),
        ScriptedPrompter::answers([Answer::Control]),
    )
    .await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    let shot = peers.path("control.png");
    let script = input_script(&shot);
    let args: Vec<&str> = script.iter().map(String::as_str).collect();
    let mut client = VncClient::start(&py, local, &args);
    client.wait_line("done capture").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(
        d.pointer(),
        (10, 20),
        "the pointer move reached the display"
    );
    let ev = xi.input_events();
    let names: Vec<&str> = ev.iter().map(|e| e.name.as_str()).collect();
    assert!(
        ev.iter()
            .any(|e| e.name == "RawButtonPress" && e.detail == Some(1)),
        "the click reached the display: {names:?}"
    );
    assert!(
        names.contains(&"RawKeyPress") && names.contains(&"RawKeyRelease"),
        "the key reached the display: {names:?}"
    );
    let clip = d.clipboard();
    assert!(
        clip.contains(PASTE),
        "the paste reached the display: {clip}"
    );
    // And the picture through the tunnel is the display's.
    let want = d.screenshot_rgb(peers.dir.path());
    let pattern = png_rgb(&peers.path("pattern.png"));
    assert_eq!(
        differing_pixels(&pattern, &want),
        0,
        "the display shows the test picture"
    );
    assert_eq!(
        differing_pixels(&png_rgb(&shot), &want),
        0,
        "capture through Accord = display"
    );

    assert_eq!(client.finish().await, 0, "the vnc client succeeded");
    task.await.unwrap().unwrap();
    let ended = agent.wait_event("session_ended", "why", "technician").await;
    assert!(ended["bytes_to_technician"].as_u64().unwrap() >= u64::from(W) * u64::from(H) * 4);
    wait_log(&peers, x11vnc, "Client 127.0.0.1 gone").await;
    // x11vnc prints its statistics just after "gone": wait for them (the
    // startup's all-zero table is in the log too).
    let mut got = String::new();
    for _ in 0..50 {
        got = x11vnc_received(&peers.log_of(x11vnc));
        if got.contains("KeyEvent") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for m in ["KeyEvent", "PointerEvent", "ClientCutText"] {
        assert!(got.contains(m), "x11vnc received {m}: {got}");
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn view_only_leaves_the_display_untouched_but_screenshots_work() {
    if !have(BASE) {
        return;
    }
    let Some(py) = vnc_python() else { return };
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, x11vnc) = peers.x11vnc(d);
    let xi = peers.xinput(d, 300, 200);
    let clip_before = d.clipboard();

    let pki = Pki::new();
    let mut agent = RunningAgent::start(
        policy_for(&pki, port),
        ScriptedPrompter::answers([Answer::ViewOnly]),
    )
    .await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    let d_ev = agent.wait_event("decision", "decision", "accepted").await;
    assert_eq!(d_ev["mode"], "view");
    let shot = peers.path("view.png");
    let script = input_script(&shot);
    let args: Vec<&str> = script.iter().map(String::as_str).collect();
    let mut client = VncClient::start(&py, local, &args);
    client.wait_line("done capture").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(d.pointer(), (300, 200), "the pointer did not move");
    let ev = xi.input_events();
    assert!(ev.is_empty(), "no input event reached the display: {ev:?}");
    assert_eq!(d.clipboard(), clip_before, "the clipboard is unchanged");
    let want = d.screenshot_rgb(peers.dir.path());
    let pattern = png_rgb(&peers.path("pattern.png"));
    assert_eq!(
        differing_pixels(&pattern, &want),
        0,
        "the display shows the test picture"
    );
    assert_eq!(
        differing_pixels(&png_rgb(&shot), &want),
        0,
        "capture through Accord = display"
    );

    assert_eq!(client.finish().await, 0, "the vnc client succeeded");
    task.await.unwrap().unwrap();
    agent.wait_event("session_ended", "why", "technician").await;
    // The server's own account: no input message ever reached it.
    wait_log(&peers, x11vnc, "Client 127.0.0.1 gone").await;
    let got = x11vnc_stats(&peers, x11vnc).await;
    let log = peers.log_of(x11vnc);
    assert!(
        got.contains("FramebufferUpdate"),
        "x11vnc stats parsed: {got:?}"
    );
    for m in ["KeyEvent", "PointerEvent", "ClientCutText"] {
        assert!(!got.contains(m), "x11vnc received no {m}: {got}");
    }
    // vncdotool asks for the QEMU extended key events (-258): stripped.
    assert!(
        !log.contains("0xFFFFFEFE"),
        "-258 was stripped from SetEncodings"
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switch_to_view_only_releases_held_input_and_drops_the_rest() {
    if !have(BASE) {
        return;
    }
    let Some(py) = vnc_python() else { return };
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, _x11vnc) = peers.x11vnc(d);
    let mut xi = peers.xinput(d, 300, 200);

    let pki = Pki::new();
    let mut agent = RunningAgent::start(
        policy_for(&pki, port),
        ScriptedPrompter::answers([Answer::Control]),
    )
    .await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    let mut client = VncClient::start(
        &py,
        local,
        &[
            "move",
            "50",
            "60",
            "keydown",
            "shift",
            "mousedown",
            "1",
            "refresh",
            "pause",
            "3",
            "move",
            "200",
            "100",
            "key",
            "b",
            "click",
            "3",
            "refresh",
            "pause",
            "0.5",
        ],
    );
    client.wait_line("done refresh").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.pointer(), (50, 60));
    let held: Vec<String> = xi.input_events().into_iter().map(|e| e.name).collect();
    assert!(
        held.contains(&"RawKeyPress".to_string()) && held.contains(&"RawButtonPress".to_string())
    );
    assert!(
        !held.contains(&"RawKeyRelease".to_string())
            && !held.contains(&"RawButtonRelease".to_string())
    );
    xi.mark();
    agent.ctl.set_view_only();
    agent.wait_event("mode_changed", "mode", "view").await;
    assert_eq!(client.finish().await, 0);
    let after = xi.input_events();
    let names: Vec<&str> = after.iter().map(|e| e.name.as_str()).collect();
    assert!(
        names.contains(&"RawKeyRelease"),
        "the held key was released: {names:?}"
    );
    assert!(
        names.contains(&"RawButtonRelease"),
        "the held button was released: {names:?}"
    );
    assert!(
        !names.contains(&"RawKeyPress"),
        "no key after view-only: {names:?}"
    );
    assert!(
        !names.contains(&"RawButtonPress"),
        "no click after view-only: {names:?}"
    );
    assert_eq!(d.pointer(), (50, 60), "no pointer move after view-only");
    task.await.unwrap().unwrap();
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_mid_stream_closes_both_legs() {
    if !have(BASE) {
        return;
    }
    let Some(py) = vnc_python() else { return };
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, x11vnc) = peers.x11vnc(d);

    let pki = Pki::new();
    let mut agent = RunningAgent::start(
        policy_for(&pki, port),
        ScriptedPrompter::answers([Answer::Control]),
    )
    .await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    // Full-screen updates back to back: the kill lands mid-stream.
    let mut client = VncClient::start(&py, local, &["stream", "30"]);
    client.wait_line("refresh 5").await;
    assert_eq!(established_to(port), 1, "one server leg while streaming");
    let t = Instant::now();
    agent.ctl.end();
    client.wait_line("lost").await;
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "viewer cut off after {took:?}"
    );
    assert_eq!(client.finish().await, 0);
    for _ in 0..100 {
        if established_to(port) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(established_to(port), 0, "the server leg is closed too");
    wait_log(&peers, x11vnc, "Client 127.0.0.1 gone").await;
    task.await.unwrap().unwrap();
    let e = agent.wait_event("session_ended", "why", "user").await;
    assert!(e["bytes_to_technician"].as_u64().unwrap() > 5 * u64::from(W) * u64::from(H) * 4);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vnc_auth_upstream_with_the_password_file() {
    if !have(BASE) || !have(&["Xtigervnc", "vncpasswd"]) {
        return;
    }
    let Some(py) = vnc_python() else { return };
    let mut peers = Peers::new();
    let (d, port, tiger) = peers.xtigervnc(Some("s3cr3t-pw"));
    let xi = peers.xinput(d, 300, 200);

    let pki = Pki::new();
    let pw = pki.dir.path().join("vnc-password");
    std::fs::write(&pw, "s3cr3t-pw\n").unwrap();
    let mut policy = policy_for(&pki, port);
    policy.upstream.password_file = Some(pw);
    let mut agent = RunningAgent::start(policy, ScriptedPrompter::answers([Answer::Control])).await;
    // The technician's viewer gets security None and no password: Accord
    // answered the server's DES challenge.
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    let shot = peers.path("tiger.png");
    let script = input_script(&shot);
    let args: Vec<&str> = script.iter().map(String::as_str).collect();
    let mut client = VncClient::start(&py, local, &args);
    client.wait_line("done capture").await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(
        d.pointer(),
        (10, 20),
        "the pointer move reached the display"
    );
    let names: Vec<String> = xi.input_events().into_iter().map(|e| e.name).collect();
    assert!(
        names.iter().any(|n| n == "RawButtonPress"),
        "click: {names:?}"
    );
    assert!(names.iter().any(|n| n == "RawKeyPress"), "key: {names:?}");
    let clip = d.clipboard();
    assert!(
        clip.contains(PASTE),
        "the paste reached the display: {clip}"
    );
    let want = d.screenshot_rgb(peers.dir.path());
    let pattern = png_rgb(&peers.path("pattern.png"));
    assert_eq!(
        differing_pixels(&pattern, &want),
        0,
        "the display shows the test picture"
    );
    assert_eq!(
        differing_pixels(&png_rgb(&shot), &want),
        0,
        "capture through Accord = display"
    );
    assert_eq!(client.finish().await, 0, "the vnc client succeeded");
    task.await.unwrap().unwrap();
    agent.wait_event("session_ended", "why", "technician").await;
    assert!(
        !peers
            .log_of(tiger)
            .to_lowercase()
            .contains("authentication failure")
    );
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_upstream_password_ends_with_a_clear_reason() {
    if !have(BASE) || !have(&["Xtigervnc", "vncpasswd"]) {
        return;
    }
    let mut peers = Peers::new();
    let (_d, port, tiger) = peers.xtigervnc(Some("s3cr3t-pw"));

    let pki = Pki::new();
    let pw = pki.dir.path().join("vnc-password");
    std::fs::write(&pw, "not-the-pw\n").unwrap();
    let mut policy = policy_for(&pki, port);
    policy.upstream.password_file = Some(pw);
    let mut agent = RunningAgent::start(policy, ScriptedPrompter::answers([Answer::Control])).await;
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    match r {
        Err(ConnectError::Refused(code)) => assert_eq!(code, RefusalCode::UpstreamUnreachable),
        other => panic!("expected upstream_unreachable, got {other:?}"),
    }
    let e = agent.wait_event("session_ended", "why", "upstream").await;
    let detail = e["detail"].as_str().unwrap_or_default().to_string();
    assert!(
        detail.to_lowercase().contains("authentication"),
        "detail names the failure: {detail:?}"
    );
    assert!(
        !detail.contains("not-the-pw"),
        "the password is not logged: {detail:?}"
    );
    // The server saw the failed attempt too.
    wait_log(&peers, tiger, "uthentication fail").await;
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_raw_client_in_view_only_cannot_touch_the_display() {
    if !have(BASE) {
        return;
    }
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, x11vnc) = peers.x11vnc(d);
    let xi = peers.xinput(d, 300, 200);
    let clip_before = d.clipboard();

    let pki = Pki::new();
    let mut agent = RunningAgent::start(
        policy_for(&pki, port),
        ScriptedPrompter::answers([Answer::ViewOnly]),
    )
    .await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::View).await;
    let (mut s, w, h) = raw_viewer(local).await;
    assert_eq!((w, h), (W, H));

    let mut bytes = Vec::new();
    // SetEncodings: Raw plus every input-unlocking pseudo-encoding.
    let encs: [i32; 7] = [0, -258, -257, -305, -309, -316, 0xC0A1E5CEu32 as i32];
    bytes.extend_from_slice(&[2, 0]);
    bytes.extend_from_slice(&(encs.len() as u16).to_be_bytes());
    for e in encs {
        bytes.extend_from_slice(&e.to_be_bytes());
    }
    // KeyEvent 'a' down and up.
    bytes.extend_from_slice(&[4, 1, 0, 0, 0, 0, 0, b'a']);
    bytes.extend_from_slice(&[4, 0, 0, 0, 0, 0, 0, b'a']);
    // QEMU extended key event 'b' (keycode 0x30) down and up.
    bytes.extend_from_slice(&[255, 0, 0, 1, 0, 0, 0, b'b', 0, 0, 0, 0x30]);
    bytes.extend_from_slice(&[255, 0, 0, 0, 0, 0, 0, b'b', 0, 0, 0, 0x30]);
    // PointerEvent to (10, 20) with button 1, then released.
    bytes.extend_from_slice(&[5, 1, 0, 10, 0, 20]);
    bytes.extend_from_slice(&[5, 0, 0, 10, 0, 20]);
    // ClientCutText.
    bytes.extend_from_slice(&[6, 0, 0, 0]);
    bytes.extend_from_slice(&(PASTE.len() as u32).to_be_bytes());
    bytes.extend_from_slice(PASTE.as_bytes());
    // SetDesktopSize to 320x240, one screen.
    bytes.extend_from_slice(&[251, 0, 1, 64, 0, 240, 1, 0]);
    bytes.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 1, 64, 0, 240, 0, 0, 0, 0]);
    // A full FramebufferUpdateRequest: its answer proves x11vnc processed
    // everything forwarded before it.
    bytes.extend_from_slice(&[3, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&W.to_be_bytes());
    bytes.extend_from_slice(&H.to_be_bytes());
    s.write_all(&bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(15), read_one_update(&mut s))
        .await
        .expect("a framebuffer update through the tunnel");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(d.pointer(), (300, 200));
    assert!(xi.input_events().is_empty(), "{:?}", xi.input_events());
    assert_eq!(d.clipboard(), clip_before);

    // An unknown message type: its length cannot be known ⇒ the end.
    s.write_all(&[77, b'a', 0, 0, 0, 0, 0, 0]).await.unwrap();
    let _ = read_to_end(&mut s).await;
    let e = agent.wait_event("session_ended", "why", "protocol").await;
    assert!(
        e["detail"].as_str().is_some_and(|d| d.contains("77")),
        "{e:?}"
    );
    let _ = task.await;
    wait_log(&peers, x11vnc, "Client 127.0.0.1 gone").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(d.pointer(), (300, 200));
    assert!(xi.input_events().is_empty(), "{:?}", xi.input_events());
    assert_eq!(d.clipboard(), clip_before);
    let got = x11vnc_stats(&peers, x11vnc).await;
    let log = peers.log_of(x11vnc);
    assert!(
        got.contains("SetEncodings") && got.contains("FramebufferUpdate"),
        "{got}"
    );
    for m in [
        "KeyEvent",
        "PointerEvent",
        "ClientCutText",
        "SetDesktopSize",
        "QEMU",
    ] {
        assert!(
            !got.to_lowercase().contains(&m.to_lowercase()),
            "x11vnc received no {m}: {got}"
        );
    }
    assert!(!log.contains("0xFFFFFEFE"), "-258 never reached the server");
    // The display is still the same picture.
    let after = d.screenshot_rgb(peers.dir.path());
    let pat = png_rgb(&peers.path("pattern.png"));
    keep_on_failure(
        &peers,
        &[&format!("root-{}.png", d.0), "pattern.png"],
        differing_pixels(&pat, &after) == 0,
    );
    assert_eq!(differing_pixels(&pat, &after), 0);
    agent.stop().await;
}

// ---------------------------------------------------------------------------
// Release on every ending, input bounded in flight, idle on a
// changing screen, the 10-minute soak.
// ---------------------------------------------------------------------------

/// `xinput test-xi2 --root` with the arrival time of every line, to measure
/// when input reached the X server.
struct TimedXi {
    child: std::process::Child,
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Drop for TimedXi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TimedXi {
    /// Starts it and waits until it sees motion (moving the pointer).
    fn start(d: Display) -> TimedXi {
        let mut child = Command::new("stdbuf")
            .args(["-oL", "xinput", "test-xi2", "--root"])
            .env("DISPLAY", d.env())
            .env_remove("XAUTHORITY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("xinput");
        let out = child.stdout.take().unwrap();
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                sink.lock().unwrap().push((Instant::now(), l));
            }
        });
        let xi = TimedXi { child, lines };
        let t = Instant::now();
        let mut i = 0;
        while xi.motion_since(t).is_empty() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "xinput sees no motion"
            );
            i += 1;
            d.move_pointer(300 + i % 2, 200);
            std::thread::sleep(Duration::from_millis(50));
        }
        xi
    }

    /// Arrival times of pointer motion events after `since`.
    fn motion_since(&self, since: Instant) -> Vec<Instant> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(t, l)| *t >= since && l.starts_with("EVENT type") && l.contains("Motion)"))
            .map(|(t, _)| *t)
            .collect()
    }
}

/// What `xinput query-state` says is down on the XTEST devices (the ones
/// x11vnc injects through).
fn held_on_display(d: Display) -> Vec<String> {
    let mut down = Vec::new();
    for dev in ["Virtual core XTEST keyboard", "Virtual core XTEST pointer"] {
        let out = d.run("xinput", &["query-state", dev]);
        down.extend(
            out.lines()
                .map(str::trim)
                .filter(|l| l.ends_with("=down"))
                .map(str::to_string),
        );
    }
    down
}

/// Polls `xinput query-state` (5 s at most) until `done` says so.
async fn wait_held(d: Display, done: impl Fn(&[String]) -> bool) -> Vec<String> {
    let t = Instant::now();
    loop {
        let held = held_on_display(d);
        if done(&held) || t.elapsed() > Duration::from_secs(5) {
            return held;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Ctrl and button 1 pressed through the tunnel in control, then the
/// session ends by the kill switch, a technician hang-up or idle: nothing
/// stays held on the X server (x11vnc does not release on disconnect).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_ending_releases_held_keys_and_buttons() {
    if !have(BASE) {
        return;
    }
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, _x11vnc) = peers.x11vnc(d);
    let pki = Pki::new();
    for how in ["kill switch", "hang-up", "idle"] {
        let mut policy = policy_for(&pki, port);
        if how == "idle" {
            policy.session.idle_timeout = Duration::from_secs(1);
        }
        let mut agent =
            RunningAgent::start(policy, ScriptedPrompter::answers([Answer::Control])).await;
        let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
        let (mut s, _, _) = raw_viewer(local).await;
        s.write_all(&[4, 1, 0, 0, 0, 0, 0xff, 0xe3]).await.unwrap(); // Control_L
        s.write_all(&[5, 1, 0, 10, 0, 20]).await.unwrap(); // button 1 at (10, 20)
        let both = |h: &[String]| {
            h.iter().any(|l| l.starts_with("key[37]")) && h.iter().any(|l| l == "button[1]=down")
        };
        let held = wait_held(d, both).await;
        assert!(
            both(&held),
            "{how}: Ctrl and button 1 held through the tunnel: {held:?}"
        );
        let why = match how {
            "kill switch" => {
                agent.ctl.end();
                let _ = read_to_end(&mut s).await;
                "user"
            }
            "hang-up" => {
                drop(s);
                "technician"
            }
            _ => {
                let _ = read_to_end(&mut s).await;
                "idle"
            }
        };
        agent.wait_event("session_ended", "why", why).await;
        let _ = task.await;
        let held = wait_held(d, |h| h.is_empty()).await;
        assert!(
            held.is_empty(),
            "{how}: still held on the display: {held:?}"
        );
        agent.stop().await;
    }
}

/// Floods pointer motion through the tunnel at x11vnc for 2 s, then
/// `decide`s; returns how long after the decision motion still reached the
/// X server.
async fn flood_then(decide: impl FnOnce(&SessionControl)) -> Duration {
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, _x11vnc) = peers.x11vnc(d);
    let xi = TimedXi::start(d);
    let pki = Pki::new();
    let mut agent = RunningAgent::start(
        policy_for(&pki, port),
        ScriptedPrompter::answers([Answer::Control]),
    )
    .await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    let (s, _, _) = raw_viewer(local).await;
    let (mut r, mut w) = s.into_split();
    let reader = tokio::spawn(async move { read_to_end(&mut r).await.len() });
    let started = Instant::now();
    let flood = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut i = 0u16;
        while started.elapsed() < Duration::from_secs(4) {
            let mut batch = Vec::with_capacity(6 * 128);
            for _ in 0..128 {
                i = (i + 1) % 400;
                batch.extend_from_slice(&[5, 0]);
                batch.extend_from_slice(&(100 + i).to_be_bytes());
                batch.extend_from_slice(&(100 + i / 2).to_be_bytes());
            }
            if w.write_all(&batch).await.is_err() {
                break;
            }
            sent += 128;
        }
        sent
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = xi.motion_since(started).len();
    let t = Instant::now();
    decide(&agent.ctl);
    let sent = flood.await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = xi.motion_since(t);
    let lag = after.last().map(|l| *l - t).unwrap_or_default();
    println!(
        "pointer flood at x11vnc: {sent} events sent by the viewer, {before} motion events on the display before the decision, {} after, the last {} ms after it",
        after.len(),
        lag.as_millis()
    );
    assert!(before > 10, "motion reached the display in control");
    let _ = reader.await;
    let _ = task.await;
    agent.stop().await;
    lag
}

/// Input cannot outlive a decision: under a flood, motion stops reaching
/// the X server within 100 ms of "Passer en affichage seul" (the bound
/// asserted leaves room for a loaded machine; the figure is printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stops_on_the_display_when_switched_to_view_only() {
    if !have(BASE) {
        return;
    }
    let lag = flood_then(|c| c.set_view_only()).await;
    assert!(
        lag < Duration::from_millis(250),
        "motion {lag:?} after the switch"
    );
}

/// The same for "Terminer".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_stops_on_the_display_when_ended() {
    if !have(BASE) {
        return;
    }
    let lag = flood_then(|c| c.end()).await;
    assert!(
        lag < Duration::from_millis(250),
        "motion {lag:?} after Terminer"
    );
}

/// T10 on a changing screen (the root window repainted every 0.5 s, as
/// `xclock -update 1` would): an abandoned session still ends `idle`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changing_screen_does_not_keep_an_idle_session_alive() {
    if !have(BASE) || !have(&["xsetroot"]) {
        return;
    }
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, _x11vnc) = peers.x11vnc(d);
    let mut c = Command::new("bash");
    c.args([
        "-c",
        "while :; do xsetroot -solid red; sleep 0.25; xsetroot -solid blue; sleep 0.25; done",
    ])
    .env("DISPLAY", d.env());
    peers.spawn("repaint", c);
    let pki = Pki::new();
    let mut policy = policy_for(&pki, port);
    // Long enough for several full-screen updates on a loaded CI machine.
    policy.session.idle_timeout = Duration::from_secs(5);
    let mut agent =
        RunningAgent::start(policy, ScriptedPrompter::answers([Answer::ViewOnly])).await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::View).await;
    let (mut s, _, _) = raw_viewer(local).await;
    let t = Instant::now();
    // A viewer that only asks for updates, as an abandoned one does.
    let mut updates = 0;
    let mut fbur = vec![3u8, 0, 0, 0, 0, 0];
    fbur.extend_from_slice(&W.to_be_bytes());
    fbur.extend_from_slice(&H.to_be_bytes());
    while s.write_all(&fbur).await.is_ok() {
        match tokio::time::timeout(Duration::from_secs(10), read_one_update_or_eof(&mut s)).await {
            Ok(true) => updates += 1,
            _ => break,
        }
        fbur[1] = 1; // incremental from now on
    }
    let took = t.elapsed();
    println!(
        "changing screen: {updates} updates, session ended after {} ms",
        took.as_millis()
    );
    assert!(updates >= 3, "the screen kept changing: {updates} updates");
    agent.wait_event("session_ended", "why", "idle").await;
    assert!(took < Duration::from_secs(12), "ended after {took:?}");
    let _ = task.await;
    agent.stop().await;
}

/// Like [`read_one_update`], but false at end of stream instead of a panic.
async fn read_one_update_or_eof(s: &mut TcpStream) -> bool {
    loop {
        let Ok(t) = s.read_u8().await else {
            return false;
        };
        match t {
            0 => {
                let mut head = [0u8; 3];
                if s.read_exact(&mut head).await.is_err() {
                    return false;
                }
                let n = u16::from_be_bytes([head[1], head[2]]);
                for _ in 0..n {
                    let mut r = [0u8; 12];
                    if s.read_exact(&mut r).await.is_err() {
                        return false;
                    }
                    let w = u16::from_be_bytes([r[4], r[5]]) as usize;
                    let h = u16::from_be_bytes([r[6], r[7]]) as usize;
                    let enc = i32::from_be_bytes([r[8], r[9], r[10], r[11]]);
                    assert_eq!(enc, 0, "only Raw was asked for");
                    let mut px = vec![0u8; w * h * 4];
                    if s.read_exact(&mut px).await.is_err() {
                        return false;
                    }
                }
                return true;
            }
            2 => {}
            3 => {
                let mut head = [0u8; 7];
                if s.read_exact(&mut head).await.is_err() {
                    return false;
                }
                let len = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
                let mut text = vec![0u8; len];
                if s.read_exact(&mut text).await.is_err() {
                    return false;
                }
            }
            other => panic!("unexpected server message type {other}"),
        }
    }
}

/// `make soak`: a viewer pulling full-screen updates through Accord from
/// x11vnc on a changing screen for 10 minutes (`ACCORD_SOAK_X11VNC_SECS`),
/// every update arriving within 1 s of its request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "10 minutes: run by `make soak`"]
async fn soak_x11vnc_ten_minutes() {
    if !have(BASE) || !have(&["xsetroot"]) {
        return;
    }
    let secs: u64 = std::env::var("ACCORD_SOAK_X11VNC_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, _x11vnc) = peers.x11vnc(d);
    let mut c = Command::new("bash");
    c.args([
        "-c",
        "while :; do xsetroot -solid red; sleep 0.2; xsetroot -solid blue; sleep 0.2; done",
    ])
    .env("DISPLAY", d.env());
    peers.spawn("repaint", c);
    let pki = Pki::new();
    let mut policy = policy_for(&pki, port);
    policy.session.idle_timeout = Duration::from_secs(secs + 60);
    policy.session.max_duration = Duration::from_secs(secs + 120);
    let mut agent =
        RunningAgent::start(policy, ScriptedPrompter::answers([Answer::ViewOnly])).await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::View).await;
    let (mut s, _, _) = raw_viewer(local).await;
    let mut fbur = vec![3u8, 0, 0, 0, 0, 0];
    fbur.extend_from_slice(&W.to_be_bytes());
    fbur.extend_from_slice(&H.to_be_bytes());
    let t0 = Instant::now();
    let (mut updates, mut worst) = (0u64, Duration::ZERO);
    while t0.elapsed() < Duration::from_secs(secs) {
        let t = Instant::now();
        s.write_all(&fbur).await.unwrap();
        let ok = tokio::time::timeout(Duration::from_secs(5), read_one_update_or_eof(&mut s))
            .await
            .unwrap_or_else(|_| panic!("no update for 5 s after {updates} updates"));
        assert!(ok, "stream ended after {updates} updates");
        worst = worst.max(t.elapsed());
        updates += 1;
    }
    println!(
        "x11vnc soak: {updates} full-screen updates in {secs} s, slowest {} ms",
        worst.as_millis()
    );
    assert!(worst <= Duration::from_secs(1), "an update took {worst:?}");
    drop(s);
    let _ = task.await;
    agent.stop().await;
}

/// Text the clinician selects: Xtigervnc sends it to legacy viewers as
/// ServerCutText (PRIMARY and CLIPBOARD). Through Accord it must never reach
/// a view-only technician, nor one in control with the default
/// `clipboard = "to_workstation"`; with `"both"` in control it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinicians_clipboard_reaches_the_viewer_only_when_allowed() {
    use accord::policy::Clipboard;
    if !have(BASE) || !have(&["Xtigervnc"]) {
        return;
    }
    let cases = [
        (Mode::View, Clipboard::Both, false),
        (Mode::Control, Clipboard::ToWorkstation, false),
        (Mode::Control, Clipboard::None, false),
        (Mode::Control, Clipboard::Both, true),
    ];
    for (i, (mode, clipboard, expected)) in cases.into_iter().enumerate() {
        let mut peers = Peers::new();
        let (d, port, _tiger) = peers.xtigervnc(None);
        let pki = Pki::new();
        let mut policy = policy_for(&pki, port);
        policy.session.clipboard = clipboard;
        let answer = match mode {
            Mode::Control => Answer::Control,
            Mode::View => Answer::ViewOnly,
        };
        let mut agent = RunningAgent::start(policy, ScriptedPrompter::answers([answer])).await;
        let (local, task) = open_tunnel(&pki, &agent, mode).await;
        let (mut viewer, w, h) = raw_viewer(local).await;
        // SetEncodings [Raw], then one full update request.
        let mut msg = vec![2, 0, 0, 1];
        msg.extend_from_slice(&0i32.to_be_bytes());
        msg.extend_from_slice(&[3, 0, 0, 0, 0, 0]);
        msg.extend_from_slice(&w.to_be_bytes());
        msg.extend_from_slice(&h.to_be_bytes());
        viewer.write_all(&msg).await.unwrap();
        read_one_update(&mut viewer).await;

        // The clinician selects and copies patient data.
        let marker = format!("PATIENT-DUPONT-{i}-NIR-1850775123456");
        for sel in ["primary", "clipboard"] {
            let mut c = Command::new("xclip")
                .args(["-selection", sel, "-loops", "3"])
                .env("DISPLAY", d.env())
                .env_remove("XAUTHORITY")
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("xclip");
            use std::io::Write as _;
            c.stdin
                .take()
                .unwrap()
                .write_all(marker.as_bytes())
                .unwrap();
            // xclip forks to serve the selection; the parent exits.
            let _ = c.wait();
        }
        // Everything the viewer receives for 3 s.
        let mut got = Vec::new();
        let until = Instant::now() + Duration::from_secs(3);
        let mut buf = vec![0u8; 64 * 1024];
        while Instant::now() < until {
            match tokio::time::timeout(Duration::from_millis(200), viewer.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        let seen = got
            .windows(marker.len())
            .any(|win| win == marker.as_bytes());
        assert_eq!(
            seen,
            expected,
            "{mode:?} with clipboard {clipboard:?}: the selection {} the technician",
            if seen { "reached" } else { "did not reach" }
        );
        drop(viewer);
        let _ = task.await;
        agent.stop().await;
        // Kill this case's xclip servers with the display.
        drop(peers);
    }
}

/// TigerVNC's own viewer, with its default encoding choice (Tight; JPEG
/// off so the picture can be compared), against x11vnc and Xtigervnc: the
/// server framer follows the whole stream (the session does not end
/// `protocol`), the viewer's window shows the clinician's screen, and closing
/// the viewer ends the session `technician`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tigervnc_viewer_with_tight_sees_the_screen_through_the_framer() {
    if !have(BASE) || !have(&["Xtigervnc", "xtigervncviewer"]) {
        return;
    }
    for server in ["x11vnc", "Xtigervnc"] {
        let mut peers = Peers::new();
        let (port, server_idx) = if server == "x11vnc" {
            let d = peers.xvfb();
            peers.x11vnc(d)
        } else {
            let (d, port, idx) = peers.xtigervnc(None);
            peers.paint(d);
            (port, idx)
        };
        let pki = Pki::new();
        let mut agent = RunningAgent::start(
            policy_for(&pki, port),
            ScriptedPrompter::answers([Answer::ViewOnly]),
        )
        .await;
        let (local, task) = open_tunnel(&pki, &agent, Mode::View).await;
        // Larger than the remote screen, so the viewer opens a window of
        // the remote's size at the top-left (not "full screen").
        let (vw, vh) = (W + 200, H + 200);
        let v = peers.xvfb_sized(vw, vh);
        let mut c = Command::new("xtigervncviewer");
        c.env("DISPLAY", v.env())
            .args(["-NoJPEG", "-Shared", "-geometry", "+0+0"])
            .arg(format!("127.0.0.1::{}", local.port()));
        let viewer = peers.spawn("xtigervncviewer", c);

        // The picture arrives; compare the viewer's display with the source.
        let pattern = png_rgb(&peers.path("pattern.png"));
        let mut diff = usize::MAX;
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let shot = v.screenshot_rgb(peers.dir.path());
            // The W×H region where the viewer put its window, near the
            // top-left of its display (the viewer may keep a margin).
            let region = |dx: usize, dy: usize| -> Vec<u8> {
                shot.chunks(vw as usize * 3)
                    .skip(dy)
                    .take(H as usize)
                    .flat_map(|row| row.iter().skip(dx * 3).take(W as usize * 3).copied())
                    .collect()
            };
            diff = (0..=40)
                .flat_map(|dy| (0..=8).map(move |dx| (dx, dy)))
                .map(|(dx, dy)| differing_pixels(&pattern, &region(dx, dy)))
                .min()
                .unwrap_or(usize::MAX);
            if diff < pattern.len() / 3 / 100 {
                break;
            }
        }
        let total = pattern.len() / 3;
        assert!(
            diff < total / 100,
            "{server}: the viewer shows the screen ({diff} of {total} pixels differ); viewer: {}; records: {:?}",
            peers.log_of(viewer),
            agent.records()
        );
        if server == "x11vnc" {
            wait_log(&peers, server_idx, "Using tight encoding").await;
        }
        let records = agent.records();
        assert!(
            !records.iter().any(|r| r["event"] == "session_ended"),
            "{server}: the session ended while the viewer was drawing: {:?}",
            records.last()
        );
        // Closing the viewer ends the session, for the right reason.
        if let Ok(pid) = i32::try_from(peers.procs[viewer].child.id()) {
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let ended = agent.wait_event("session_ended", "why", "technician").await;
        assert!(ended["bytes_to_technician"].as_u64().unwrap_or(0) > 0);
        let _ = task.await;
        agent.stop().await;
    }
}

// ---------------------------------------------------------------------------
// Input held while a request for control is pending.
// ---------------------------------------------------------------------------

/// Answers the first prompt at once, then each later one only when the
/// test says (the clinician reading the request for control).
#[derive(Clone)]
struct GatedPrompter {
    first: Answer,
    asked: Arc<AtomicU32>,
    gate: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Answer>>>,
}

impl GatedPrompter {
    fn new(first: Answer) -> (GatedPrompter, tokio::sync::mpsc::UnboundedSender<Answer>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let p = GatedPrompter {
            first,
            asked: Arc::new(AtomicU32::new(0)),
            gate: Arc::new(tokio::sync::Mutex::new(rx)),
        };
        (p, tx)
    }

    /// Waits (10 s at most) until `n` prompts have been shown.
    async fn wait_asked(&self, n: u32) {
        for _ in 0..500 {
            if self.asked.load(Ordering::SeqCst) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the prompter was not asked {n} times");
    }
}

impl Prompter for GatedPrompter {
    async fn ask(&self, _req: PromptRequest) -> Result<Answer, PromptError> {
        if self.asked.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(self.first);
        }
        match self.gate.lock().await.recv().await {
            Some(a) => Ok(a),
            None => std::future::pending().await,
        }
    }
}

/// PointerEvent: button mask and position.
fn pointer_event(mask: u8, x: u16, y: u16) -> Vec<u8> {
    let mut m = vec![5, mask];
    m.extend_from_slice(&x.to_be_bytes());
    m.extend_from_slice(&y.to_be_bytes());
    m
}

/// Sends `input`, then a full FramebufferUpdateRequest and reads its
/// answer: x11vnc has then processed everything Accord forwarded before
/// it (the request is not input, so it is never held).
async fn send_and_sync(s: &mut TcpStream, input: &[u8]) {
    let mut bytes = input.to_vec();
    bytes.extend_from_slice(&[3, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&W.to_be_bytes());
    bytes.extend_from_slice(&H.to_be_bytes());
    s.write_all(&bytes).await.unwrap();
    tokio::time::timeout(Duration::from_secs(15), read_one_update(s))
        .await
        .expect("a framebuffer update through the tunnel");
    // xinput's own output is line-buffered through a pipe: a moment for it.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// Right-button (3) clicks and motion all over the screen, e.g. on the
/// prompt's "Allow control".
fn held_input() -> Vec<u8> {
    let mut b = Vec::new();
    for (x, y) in [(10, 20), (320, 240), (600, 400)] {
        b.extend(pointer_event(0, x, y));
        b.extend(pointer_event(4, x, y));
        b.extend(pointer_event(0, x, y));
    }
    b
}

/// A view-only session asks for control; while the clinician reads the
/// request the technician moves and clicks. Refused: none of it ever
/// reached the X server (pointer still, no input event). Asked again with
/// more input meanwhile, then granted: only input sent after the grant
/// reaches X, and nothing held is replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_while_control_is_asked_never_reaches_x() {
    if !have(BASE) {
        return;
    }
    let mut peers = Peers::new();
    let d = peers.xvfb();
    let (port, _x11vnc) = peers.x11vnc(d);
    let mut xi = peers.xinput(d, 300, 200);

    let pki = Pki::new();
    let mut policy = policy_for(&pki, port);
    // The clinician takes her time: the test decides when she answers.
    policy.consent.timeout = Duration::from_secs(60);
    let (prompter, answer) = GatedPrompter::new(Answer::ViewOnly);
    let mut agent = RunningAgent::start(policy, prompter.clone()).await;
    let (local, task) = open_tunnel(&pki, &agent, Mode::Control).await;
    let started = agent.wait_event("session_started", "mode", "view").await;
    let session: uuid::Uuid = started["session"].as_str().unwrap().parse().unwrap();
    let (mut s, _, _) = raw_viewer(local).await;
    let raise = |agent: &RunningAgent<GatedPrompter>| {
        let cfg = pki.connect_config(agent.addr, Mode::Control);
        tokio::spawn(async move { connect::request_control(&cfg, session, &mut |_| {}).await })
    };

    // 1. Asked, then refused.
    let pending = raise(&agent);
    prompter.wait_asked(2).await;
    send_and_sync(&mut s, &held_input()).await;
    assert_eq!(d.pointer(), (300, 200), "held: the pointer did not move");
    assert!(xi.input_events().is_empty(), "{:?}", xi.input_events());
    answer.send(Answer::Refused).unwrap();
    match pending.await.unwrap() {
        Err(ConnectError::Refused(RefusalCode::User)) => {}
        other => panic!("expected the user's refusal, got {other:?}"),
    }
    agent.wait_event("decision", "why", "user").await;
    // Held input is dropped, not delivered late; and the session is still
    // view-only.
    send_and_sync(&mut s, &pointer_event(1, 50, 50)).await;
    assert_eq!(d.pointer(), (300, 200), "refused: the pointer never moved");
    assert!(xi.input_events().is_empty(), "{:?}", xi.input_events());

    // 2. Asked again, input meanwhile, then granted.
    let pending = raise(&agent);
    prompter.wait_asked(3).await;
    send_and_sync(&mut s, &held_input()).await;
    assert_eq!(d.pointer(), (300, 200), "held again");
    assert!(xi.input_events().is_empty(), "{:?}", xi.input_events());
    answer.send(Answer::Control).unwrap();
    pending.await.unwrap().expect("control granted");
    agent.wait_event("mode_changed", "mode", "control").await;
    xi.mark();

    // Now the technician's pointer reaches X: a move and a left click.
    let mut now = pointer_event(0, 123, 145);
    now.extend(pointer_event(1, 123, 145));
    now.extend(pointer_event(0, 123, 145));
    send_and_sync(&mut s, &now).await;
    assert_eq!(d.pointer(), (123, 145), "granted: the pointer moved");
    let ev = xi.input_events();
    let presses: Vec<Option<u32>> = ev
        .iter()
        .filter(|e| e.name == "RawButtonPress")
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        presses,
        [Some(1)],
        "one left click, nothing held replayed: {ev:?}"
    );

    drop(s);
    let _ = task.await;
    agent.wait_event("session_ended", "why", "technician").await;
    agent.stop().await;
}
