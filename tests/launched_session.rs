//! Sessions through a server Accord launched, against REAL servers (x11vnc
//! and TigerVNC's x0vncserver) on a real Xvfb: the broker asks the process
//! in the clinician's session to start the server only once she has
//! accepted; control and view-only act on the real X server; whatever ends
//! the session, no server process is left, nothing listens on TCP and
//! nothing the technician held stays down.
//!
//! A missing program makes a test print `SKIPPED: <binary> not installed`
//! and pass, unless `ACCORD_REQUIRE_PEERS=1` (CI, `make test`).

#![cfg(unix)]

mod common;
use accord::broker::{
    Answer, MemoryJournal, PromptError, PromptRequest, Prompter, Screen, ScreenError,
    ScreenRequest, SessionControl,
};
use accord::launch::{self, Options, Server};
use accord::protocol::Mode;
use common::peers::have;
use common::xserver::*;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;
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

    /// The server gets what the decision grants, as `accord ui` does.
    async fn open_screen(&self, req: ScreenRequest) -> Result<Screen, ScreenError> {
        let mut opts = self.opts.clone();
        opts.clipboard = req.grants.clipboard;
        opts.input = req.grants.input;
        self.opened.lock().unwrap().push(req);
        launch::screen(self.server, &opts).await
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
    policy.upstream.launch = server.launch();
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
        pointer(&self.display)
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

// ---------------------------------------------------------------------------
// A viewer that changes its pixel format with an update outstanding.

/// RGB565, little-endian: what a viewer on a slow link asks for.
const PF16: [u8; 16] = [16, 16, 0, 1, 0, 31, 0, 63, 0, 31, 11, 5, 0, 0, 0, 0];

/// Reads one FramebufferUpdate of Raw rectangles at `bpp` bytes per pixel
/// and paints it into a 640×480 `screen` (one pixel value per entry, `None`
/// where nothing came).
/// Anything else (a ServerCutText above all) fails the test.
async fn read_raw_update(v: &mut tokio::net::TcpStream, bpp: usize, screen: &mut [Option<u32>]) {
    let mut head = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), v.read_exact(&mut head))
        .await
        .expect("an update")
        .expect("the session goes on");
    assert_eq!(
        head[0], 0,
        "a FramebufferUpdate, not message type {}",
        head[0]
    );
    for _ in 0..u16::from_be_bytes([head[2], head[3]]) {
        let mut r = [0u8; 12];
        v.read_exact(&mut r).await.expect("rectangle header");
        let f = |i: usize| usize::from(u16::from_be_bytes([r[i], r[i + 1]]));
        let (x, y, w, h) = (f(0), f(2), f(4), f(6));
        assert_eq!(&r[8..12], &[0, 0, 0, 0], "Raw only was asked for");
        let mut px = vec![0u8; w * h * bpp];
        v.read_exact(&mut px).await.expect("pixels");
        for (i, p) in px.chunks_exact(bpp).enumerate() {
            let value = p.iter().rev().fold(0u32, |a, &b| a << 8 | u32::from(b));
            screen[(y + i / w) * 640 + x + i % w] = Some(value);
        }
    }
}

/// RFB forbids changing the pixel format with an update outstanding; a
/// hostile viewer does it anyway, in view only, with the default clipboard
/// policy: the request and the SetPixelFormat in one write. Accord holds the
/// format back until the server has answered in the old one: the session
/// goes on, the first update is whole in 32 bits, the next in 16 bits shows
/// the same screen, and nothing of her clipboard comes through. The server
/// itself was started without her selections.
async fn pixel_format_with_an_update_outstanding(server: Server) {
    if !have(&["Xvfb", server_bin(server), "xclip", "xsetroot"]) {
        return;
    }
    let r = rig(server, Answer::ViewOnly, Duration::from_secs(60)).await;
    // A screen that is not all zeros, so that "the same screen" means something.
    let painted = Command::new("xsetroot")
        .args(["-mod", "7", "5", "-fg", "#1f8a70", "-bg", "#f0c020"])
        .env("DISPLAY", &r.display)
        .status()
        .unwrap();
    assert!(painted.success());
    let (local, _task) = common::connect_tunnel(r.pki.connect_config(r.addr, Mode::Control)).await;
    let local = local.unwrap_or_else(|e| panic!("{server}: {e}"));
    let pids = r.servers();
    assert_eq!(pids.len(), 1);
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pids[0])).unwrap();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    // x11vnc never sends her selections, whatever Accord's filter does.
    // (TigerVNC's scraping server has clipboard parameters only from 1.13
    // on; Debian 12's has no clipboard at all.)
    if server == Server::X11vnc {
        assert!(has("-noclipboard") && has("-noprimary"), "{args:?}");
    }
    // Her clipboard holds something the technician must not get.
    let mut clip = Command::new("xclip")
        .args(["-selection", "clipboard", "-loops", "5"])
        .env("DISPLAY", &r.display)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = clip.stdin.take().unwrap();
        stdin.write_all(b"PATIENT-SECRET").unwrap();
    }

    let (mut v, _) = common::rfb_viewer(local).await.unwrap();
    // SetEncodings [Raw], a whole-screen request, and at once SetPixelFormat.
    let mut burst = vec![2u8, 0, 0, 1, 0, 0, 0, 0];
    burst.extend_from_slice(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 224]);
    burst.extend_from_slice(&[0, 0, 0, 0]);
    burst.extend_from_slice(&PF16);
    v.write_all(&burst).await.unwrap();
    let mut old = vec![None; 640 * 480];
    read_raw_update(&mut v, 4, &mut old).await;
    assert!(
        !old.contains(&None),
        "{server}: the first update covers the screen in the old format"
    );
    v.write_all(&[3, 0, 0, 0, 0, 0, 2, 128, 1, 224])
        .await
        .unwrap();
    let mut new = vec![None; 640 * 480];
    read_raw_update(&mut v, 2, &mut new).await;
    assert!(!new.contains(&None), "{server}: a whole screen in 16 bits");
    let to565 = |p: u32| (p >> 19 & 31) << 11 | (p >> 10 & 63) << 5 | (p >> 3 & 31);
    let differ = old
        .iter()
        .zip(&new)
        .filter(|(a, b)| a.map(to565) != **b)
        .count();
    assert_eq!(differ, 0, "{server}: the same screen in both formats");
    let colours: std::collections::HashSet<_> = new.iter().collect();
    assert!(
        colours.len() >= 2,
        "{server}: the painted screen came through"
    );
    assert!(
        r.record("session_ended").is_none(),
        "{server}: the session goes on"
    );
    let _ = clip.kill();
    let _ = clip.wait();
    r.ctl.end();
    assert_eq!(r.wait_ended().await, "user");
    r.no_server_left("pixel format").await;
}

#[tokio::test]
async fn x11vnc_pixel_format_with_an_update_outstanding() {
    pixel_format_with_an_update_outstanding(Server::X11vnc).await;
}

#[tokio::test]
async fn x0vncserver_pixel_format_with_an_update_outstanding() {
    pixel_format_with_an_update_outstanding(Server::X0vncserver).await;
}
