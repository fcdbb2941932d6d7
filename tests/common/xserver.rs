//! A real X server for tests that start VNC servers on it, and what those
//! tests look at around it: processes, listeners, shared memory, leftovers.

use accord::launch::{Options, Server};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
pub fn server_bin(s: Server) -> &'static str {
    match s {
        Server::X11vnc => "x11vnc",
        Server::X0vncserver => "x0vncserver",
        // Accord itself; tests/boot/wayland-test.sh runs it on GNOME.
        Server::Mutter => "accord",
    }
}

/// An Xvfb on a free display, killed on drop.
pub struct Xvfb {
    child: std::process::Child,
    n: u32,
}

impl Xvfb {
    /// A free display from :300 on; the X server's own lock file arbitrates
    /// between concurrent tests (the display is ours once the lock holds
    /// our child's pid).
    pub fn start() -> Xvfb {
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

    pub fn display(&self) -> String {
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
pub fn runtime_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

pub fn options(x: &Xvfb, rt: &Path) -> Options {
    Options {
        display: x.display(),
        mode: accord::protocol::Mode::Control,
        clipboard: accord::policy::Clipboard::None,
        input: true,
        runtime_dir: rt.to_path_buf(),
    }
}

/// Whether `pid` is gone (or a zombie nobody reaped yet: no longer runs).
pub fn dead(pid: u32) -> bool {
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

pub fn wait_dead(pid: u32, within: Duration) -> bool {
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
pub fn listening() -> Vec<String> {
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
pub fn shm_of(pid: u32) -> Vec<String> {
    std::fs::read_to_string("/proc/sysvipc/shm")
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(4) == Some(pid.to_string().as_str()))
        .map(str::to_string)
        .collect()
}

/// The processes of process group `pgid`.
pub fn group_members(pgid: u32) -> Vec<u32> {
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

pub fn leftovers(rt: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(rt)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect()
}

/// Where the real pointer is on `display`, as `x:N y:N`.
pub fn pointer(display: &str) -> String {
    let out = std::process::Command::new("xdotool")
        .arg("getmouselocation")
        .env("DISPLAY", display)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}
