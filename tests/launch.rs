//! The VNC server launcher against REAL servers — x11vnc and
//! TigerVNC's x0vncserver — on a real Xvfb.
//!
//! A missing program makes a test print `SKIPPED: <binary> not installed`
//! and pass, unless `ACCORD_REQUIRE_PEERS=1` (CI, `make test`), where it
//! fails. `scripts/deps.sh test` installs them all.

#![cfg(unix)]

mod common;

use accord::launch::{self, LaunchError, Launched, Options, Server};
use common::peers::{have, on_path};
use common::xserver::*;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt as _;

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
        mode: accord::protocol::Mode::Control,
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
        // Only in a Wayland session (tests run under Xvfb or none).
        Ok(Server::Mutter) => assert!(accord::platform::wayland_session()),
        Err(e) => assert!(matches!(e, LaunchError::NoneInstalled), "{e}"),
    }
}

#[tokio::test]
async fn refuses_a_shared_runtime_dir() {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let opts = Options {
        display: ":0".into(),
        mode: accord::protocol::Mode::Control,
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
        mode: accord::protocol::Mode::Control,
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
