//! Real framebuffer streams for the relay bench, recorded at bench start
//! from x11vnc on a private Xvfb (1920×1080×24) showing a desktop that
//! changes: a gradient wallpaper, openbox, two xterms printing text and an
//! ImageMagick `animate` window cycling photo-like plasma images.
//!
//! A minimal RFB 3.8 viewer (security None) sets 32 bpp true colour,
//! announces one encoding plus the pseudo-encodings TigerVNC's viewer asks
//! for, requests the whole screen, then one incremental update after each
//! complete one (as a viewer does), and keeps the bytes the server sent after
//! ServerInit. Accord's [`ServerFramer`] follows the stream as it arrives,
//! so the recording is cut at an update boundary; a ServerCutText (none
//! expected) is left out, since Accord would drop it and the replay would
//! then not deliver the bytes the viewer waits for.
//!
//! Nothing is written to the repository: the desktop lives in a temporary
//! directory and every process started here is stopped when [`Desktop`] drops.

use accord::rfb::{ClientMessage, PixelFormat, ServerCounts, ServerFramer, ServerInit, ServerStep};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const WIDTH: u16 = 1920;
pub const HEIGHT: u16 = 1080;

/// What TigerVNC's viewer announces after its preferred encoding: Cursor,
/// DesktopSize, LastRect, ExtendedDesktopSize, DesktopName, its default
/// Tight quality (8: JPEG allowed) and compression level (2). Accord's
/// allow-list keeps all of them.
pub const PSEUDO: [i32; 7] = [-239, -223, -224, -308, -307, -32 + 8, -256 + 2];

/// One recorded server→viewer stream.
pub struct Recording {
    /// ServerInit as x11vnc sent it (the replaying server sends the same).
    pub server_init: Vec<u8>,
    /// The format the recording viewer set, in force for every update.
    pub pixel_format: PixelFormat,
    /// What the recording viewer announced.
    pub encodings: Vec<i32>,
    /// Every message the server sent after ServerInit, up to the end of
    /// the last complete update.
    pub body: Vec<u8>,
    /// What the framer saw in `body`.
    pub counts: ServerCounts,
    pub seconds: f64,
}

/// Which peers are missing (empty: the recordings can be made).
pub fn missing_peers() -> Vec<&'static str> {
    ["Xvfb", "x11vnc"]
        .into_iter()
        .filter(|b| !on_path(b))
        .collect()
}

fn on_path(bin: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(bin).is_file()))
}

/// The X server, x11vnc and the clients drawing on the screen.
pub struct Desktop {
    dir: tempfile::TempDir,
    procs: Vec<Child>,
    display: u32,
    port: u16,
}

impl Drop for Desktop {
    fn drop(&mut self) {
        // SIGTERM first, the X server last: Xvfb killed with SIGKILL
        // leaves its lock and socket in /tmp.
        for c in self.procs.iter_mut().rev() {
            if let Ok(pid) = libc::pid_t::try_from(c.id()) {
                // SAFETY: signalling a child this process started and has not reaped.
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let t = Instant::now();
            while matches!(c.try_wait(), Ok(None)) && t.elapsed() < Duration::from_secs(3) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Desktop {
    /// Starts Xvfb, x11vnc and the drawing clients; ready to record.
    pub fn start() -> Result<Desktop, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mut d = Desktop {
            dir,
            procs: Vec::new(),
            display: 0,
            port: 0,
        };
        d.xvfb()?;
        d.x11vnc()?;
        d.draw();
        // Windows map and x11vnc takes its first look at the screen.
        std::thread::sleep(Duration::from_millis(2500));
        Ok(d)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn command(&self, bin: &str) -> Command {
        let mut c = Command::new(bin);
        c.env("DISPLAY", format!(":{}", self.display))
            .env_remove("XAUTHORITY")
            .current_dir(self.dir.path());
        c
    }

    fn spawn(&mut self, name: &str, mut cmd: Command) -> Result<usize, String> {
        let log = std::fs::File::create(self.path(&format!("{name}-{}.log", self.procs.len())))
            .map_err(|e| e.to_string())?;
        let err = log.try_clone().map_err(|e| e.to_string())?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        self.procs.push(child);
        Ok(self.procs.len() - 1)
    }

    fn exited(&mut self, idx: usize) -> bool {
        self.procs
            .get_mut(idx)
            .is_none_or(|c| !matches!(c.try_wait(), Ok(None)))
    }

    /// Xvfb on a free display: ours once its lock file holds our child's pid.
    fn xvfb(&mut self) -> Result<(), String> {
        let base = 150 + std::process::id() % 100;
        for n in (base..base + 40).map(|n| n % 400 + 100) {
            let lock = PathBuf::from(format!("/tmp/.X{n}-lock"));
            let sock = PathBuf::from(format!("/tmp/.X11-unix/X{n}"));
            if lock.exists() || sock.exists() {
                continue;
            }
            let mut c = Command::new("Xvfb");
            c.arg(format!(":{n}")).args([
                "-screen",
                "0",
                &format!("{WIDTH}x{HEIGHT}x24"),
                "-nolisten",
                "tcp",
            ]);
            let idx = self.spawn("Xvfb", c)?;
            let pid = self.procs.get(idx).map(Child::id);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) && !self.exited(idx) {
                let owner = std::fs::read_to_string(&lock)
                    .ok()
                    .and_then(|s| s.trim().parse::<u32>().ok());
                if owner.is_some() && owner == pid && sock.exists() {
                    self.display = n;
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(30));
            }
            if !self.exited(idx) {
                return Err(format!("Xvfb :{n} did not come up in 15 s"));
            }
        }
        Err("no free X display for Xvfb".into())
    }

    fn x11vnc(&mut self) -> Result<(), String> {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map_err(|e| e.to_string())?
                .port();
            let mut c = self.command("x11vnc");
            c.args(["-display", &format!(":{}", self.display)])
                .args(["-rfbport", &port.to_string()])
                .args(["-localhost", "-noipv6", "-forever", "-shared", "-nopw"])
                .args(["-norc", "-quiet"]);
            let idx = self.spawn("x11vnc", c)?;
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(15) && !self.exited(idx) {
                if let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) {
                    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut v = [0u8; 12];
                    if s.read_exact(&mut v).is_ok() && v.starts_with(b"RFB 003.") {
                        self.port = port;
                        return Ok(());
                    }
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Err("x11vnc would not start".into())
    }

    /// Whatever of the drawing clients is installed; each is optional.
    /// Painted after x11vnc is up: its start-up resets the root window.
    fn draw(&mut self) {
        let wallpaper = self.path("wallpaper.png");
        let ok = on_path("convert")
            && on_path("display")
            && self
                .command("convert")
                .args(["-size", &format!("{WIDTH}x{HEIGHT}")])
                .args(["gradient:#4a7ab0-#0c1e3c"])
                .arg(&wallpaper)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        if ok {
            // Sets the root background and exits.
            let _ = self
                .command("display")
                .args(["-window", "root"])
                .arg(&wallpaper)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        } else if on_path("xsetroot") {
            let _ = self
                .command("xsetroot")
                .args(["-solid", "steelblue"])
                .status();
        }
        if on_path("openbox") {
            let c = self.command("openbox");
            let _ = self.spawn("openbox", c);
        }
        if on_path("xterm") {
            let mut c = self.command("xterm");
            c.args(["-geometry", "110x45+20+20", "-e", "sh", "-c"])
                .arg("while :; do date; ls -l /usr/bin | head -n 40; sleep 0.2; done");
            let _ = self.spawn("xterm", c);
            if on_path("top") {
                let mut c = self.command("xterm");
                c.args(["-geometry", "90x20+1000+640", "-e", "top", "-d", "0.5"]);
                let _ = self.spawn("xterm", c);
            }
        }
        if on_path("convert") && on_path("animate") {
            let mut frames = Vec::new();
            for seed in 1..=3 {
                let f = self.path(&format!("plasma{seed}.png"));
                let made = self
                    .command("convert")
                    .args(["-seed", &seed.to_string(), "-size", "800x500"])
                    .args(["plasma:fractal", "-blur", "0x2"])
                    .arg(&f)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                if made {
                    frames.push(f);
                }
            }
            if !frames.is_empty() {
                let mut c = self.command("animate");
                c.args(["-geometry", "+1040+60", "-delay", "25"])
                    .args(&frames);
                let _ = self.spawn("animate", c);
            }
        }
    }

    /// Records `encoding` (with [`PSEUDO`]) for `seconds` or `max_updates`
    /// complete updates, whichever comes first.
    pub fn record(
        &self,
        encoding: i32,
        seconds: f64,
        max_updates: u64,
    ) -> Result<Recording, String> {
        record(self.port, encoding, seconds, max_updates).map_err(|e| e.to_string())
    }
}

fn read_exact(s: &mut TcpStream, n: usize) -> std::io::Result<Vec<u8>> {
    let mut v = vec![0u8; n];
    s.read_exact(&mut v)?;
    Ok(v)
}

fn fbur(incremental: bool) -> Vec<u8> {
    ClientMessage::FramebufferUpdateRequest {
        incremental,
        x: 0,
        y: 0,
        width: WIDTH,
        height: HEIGHT,
    }
    .to_bytes()
}

fn record(
    port: u16,
    encoding: i32,
    seconds: f64,
    max_updates: u64,
) -> Result<Recording, Box<dyn std::error::Error>> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let version = read_exact(&mut s, 12)?;
    if !version.starts_with(b"RFB 003.") {
        return Err(format!("not an RFB server: {version:?}").into());
    }
    s.write_all(b"RFB 003.008\n")?;
    let n = read_exact(&mut s, 1)?;
    let types = read_exact(&mut s, usize::from(n.first().copied().unwrap_or(0)))?;
    if !types.contains(&1) {
        return Err(format!("x11vnc does not offer security None: {types:?}").into());
    }
    s.write_all(&[1])?;
    if read_exact(&mut s, 4)? != [0; 4] {
        return Err("security None refused".into());
    }
    s.write_all(&[1])?; // shared
    let mut server_init = read_exact(&mut s, 24)?;
    let name_len = u32::from_be_bytes([
        server_init[20],
        server_init[21],
        server_init[22],
        server_init[23],
    ]);
    server_init.extend(read_exact(&mut s, name_len as usize)?);
    let si = ServerInit::parse(&server_init).ok_or("malformed ServerInit")?;
    if (si.width, si.height) != (WIDTH, HEIGHT) {
        return Err(format!("x11vnc's screen is {}×{}", si.width, si.height).into());
    }

    let pixel_format = PixelFormat::RGB888;
    let mut encodings = vec![encoding];
    encodings.extend(PSEUDO);
    let mut hello = ClientMessage::SetPixelFormat(pixel_format).to_bytes();
    hello.extend(ClientMessage::SetEncodings(encodings.clone()).to_bytes());
    hello.extend(fbur(false));
    s.write_all(&hello)?;

    let mut framer = ServerFramer::new(si.pixel_format);
    framer.set_pixel_format(pixel_format);
    let (mut body, mut pending) = (Vec::new(), Vec::new());
    let (mut complete, mut cut) = (0u64, 0usize);
    let mut buf = vec![0u8; 256 * 1024];
    s.set_read_timeout(Some(Duration::from_millis(100)))?;
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < seconds && complete < max_updates {
        let n = match s.read(&mut buf) {
            Ok(0) => return Err("x11vnc closed the connection".into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        pending.extend_from_slice(&buf[..n]);
        let mut pos = 0;
        loop {
            match framer.step(&pending[pos..])? {
                ServerStep::Forward(k) => {
                    body.extend_from_slice(&pending[pos..pos + k]);
                    pos += k;
                }
                ServerStep::Drop(k) => pos += k,
                ServerStep::NeedMore => break,
            }
        }
        pending.drain(..pos);
        // One request outstanding at a time, as a viewer does.
        if pending.is_empty() && framer.at_boundary() && framer.counts().updates > complete {
            complete = framer.counts().updates;
            cut = body.len();
            s.write_all(&fbur(true))?;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    body.truncate(cut);
    // The counts of what is kept, and a check that it ends at a boundary.
    let mut check = ServerFramer::new(si.pixel_format);
    check.set_pixel_format(pixel_format);
    let mut pos = 0;
    while pos < body.len() {
        match check.step(&body[pos..])? {
            ServerStep::Forward(k) | ServerStep::Drop(k) => pos += k,
            ServerStep::NeedMore => break,
        }
    }
    if !check.at_boundary() || complete == 0 {
        return Err(format!("no complete update recorded ({complete} updates)").into());
    }
    Ok(Recording {
        server_init,
        pixel_format,
        encodings,
        body,
        counts: check.counts().clone(),
        seconds: secs,
    })
}
