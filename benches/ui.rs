//! UI figures (issues 6 and 11): request → first prompt frame (the first
//! after start, and later ones), "Terminer" → the technician's socket
//! closed, and an idle agent's window processes, CPU and RSS.
//!
//! Runs the real core (`engine::serve`), the real window host with real
//! `accord ui-window` processes, and the real tray, on `$DISPLAY`, or on an
//! Xvfb + openbox it starts itself. Every prompt is measured cold: the
//! window process of the previous round is gone, only the spare (started,
//! connected to the display, GL driver loaded, no window) waits, as on any idle workstation. The technician is the real `accord connect` code in a
//! thread; prompts are answered through the hub, "Terminer" is a real click
//! (xdotool) on the banner. Run with `cargo bench --bench ui`;
//! `ACCORD_BENCH_ROUNDS` (default 5) and `ACCORD_BENCH_IDLE_S` (default 60).

use accord::broker::{Activity, MemoryJournal, SessionControl};
use accord::connect::ConnectConfig;
use accord::protocol::Mode;
use accord::ui::banner::SessionActions;
use accord::ui::window::host::{self, HostConfig, LINGER};
use accord::ui::window::run::LAST_PROMPT_LATENCY_US;
use accord::ui::{Hub, Lang, Strings, UiPrompter};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the driver measured.
struct Figures {
    /// Request → first prompt frame (ms), one per round.
    first_frame: Vec<f64>,
    /// Of which in the window process: request read → first frame (ms).
    in_child: Vec<f64>,
    /// "Terminer" → technician socket closed (ms), one per round.
    kill: Vec<f64>,
    /// RSS of the window process while the banner shows (kB), per round.
    window_rss: Vec<u64>,
    /// Most window processes alive at once during the idle minute.
    idle_windows: usize,
    idle_cpu: Duration,
    /// UI process + window processes (kB), before any window / after.
    /// UI process + window processes, before any window / after: (RSS,
    /// private) in kB.
    rss: ((u64, u64), (u64, u64)),
    idle_s: u64,
}

type DriverResult = Result<Figures, String>;

/// Waits until the window processes of the previous round (`used`) are
/// gone (they linger [`LINGER`] after the last window) and the spare that
/// replaces them has started and settled (its CPU time still over 300 ms:
/// display connected, GL driver loaded): the next prompt is then as any
/// prompt of the day, which finds its spare long ready. `false` if that
/// does not happen within `limit`.
fn wait_for_spare(used: &[String], limit: Duration) -> bool {
    let t0 = Instant::now();
    let mut last: Option<(String, u64, Instant)> = None;
    loop {
        let now = window_processes();
        if now.len() == 1 && !now.iter().any(|p| used.contains(p)) {
            let ticks = cpu_ticks_of(&now[0]);
            match &last {
                Some((pid, t, since)) if *pid == now[0] && *t == ticks => {
                    if since.elapsed() >= Duration::from_millis(300) {
                        return true;
                    }
                }
                _ => last = Some((now[0].clone(), ticks, Instant::now())),
            }
        }
        if t0.elapsed() > limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// When "Terminer" was handled, to time the kill switch from the click.
static END_PRESSED: Mutex<Option<Instant>> = Mutex::new(None);

struct TimedActions(SessionControl);

impl SessionActions for TimedActions {
    fn end(&self) {
        if let Ok(mut t) = END_PRESSED.lock() {
            *t = Some(Instant::now());
        }
        self.0.end();
    }
    fn set_view_only(&self) {
        self.0.set_view_only();
    }
    fn pause(&self, on: bool) {
        self.0.pause(on);
    }
}

/// The log file this process and its window processes write to (fd 2 is
/// redirected to it), read back for the layout lines: where to click.
#[derive(Clone)]
struct LogFile(std::path::PathBuf);

impl LogFile {
    /// Sends this process's stderr, and so the window processes', there.
    fn capture(path: std::path::PathBuf) -> Result<LogFile, String> {
        use std::os::fd::AsRawFd;
        let f = std::fs::File::create(&path).map_err(|e| e.to_string())?;
        // SAFETY: dup2 onto fd 2 with a descriptor we own.
        if unsafe { libc::dup2(f.as_raw_fd(), 2) } < 0 {
            return Err(std::io::Error::last_os_error().to_string());
        }
        Ok(LogFile(path))
    }
    fn len(&self) -> usize {
        std::fs::metadata(&self.0).map_or(0, |m| m.len() as usize)
    }
    fn text_from(&self, from: usize) -> String {
        let v = std::fs::read(&self.0).unwrap_or_default();
        String::from_utf8_lossy(v.get(from..).unwrap_or_default()).into_owned()
    }
}

fn env_u64(k: &str, d: u64) -> u64 {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

fn start_display(children: &mut Vec<Child>) -> Result<(), String> {
    if std::env::var_os("DISPLAY").is_some() {
        return Ok(());
    }
    let disp = ":89";
    let x = Command::new("Xvfb")
        .args([disp, "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("Xvfb: {e} (install xvfb, or set DISPLAY)"))?;
    children.push(x);
    // SAFETY: single-threaded at this point; nothing else reads the env yet.
    unsafe { std::env::set_var("DISPLAY", disp) };
    for _ in 0..100 {
        if Command::new("xdpyinfo")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if let Ok(wm) = Command::new("openbox").stderr(Stdio::null()).spawn() {
        children.push(wm);
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A minimal RFB server (security None) standing in for the VNC server.
fn rfb_stub() -> Result<SocketAddr, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut c = c;
                let mut b = [0u8; 4096];
                let _ = c.write_all(b"RFB 003.008\n");
                let _ = c.read_exact(&mut b[..12]);
                let _ = c.write_all(&[1, 1]);
                let _ = c.read_exact(&mut b[..1]);
                let _ = c.write_all(&0u32.to_be_bytes());
                let _ = c.read_exact(&mut b[..1]);
                let mut si = vec![
                    0, 64, 0, 48, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
                ];
                si.extend_from_slice(&4u32.to_be_bytes());
                si.extend_from_slice(b"stub");
                let _ = c.write_all(&si);
                while matches!(c.read(&mut b), Ok(n) if n > 0) {}
            });
        }
    });
    Ok(addr)
}

fn rss_kb_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// User + system CPU time of `pid`, in clock ticks.
fn cpu_ticks_of(pid: &str) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(')')
        .map(|(_, rest)| {
            rest.split_whitespace()
                .skip(11)
                .take(2)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// What `pid` holds alone (kB): its private pages, clean and dirty. The
/// rest of its RSS is pages it shares, above all the GL driver's code,
/// which is the page cache's and mapped by every GL program on the desktop.
fn private_kb_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("Private_Clean:") || l.starts_with("Private_Dirty:"))
        .filter_map(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// The pids of this process's window processes (`accord ui-window`).
fn window_processes() -> Vec<String> {
    let me = std::process::id().to_string();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|pid| pid.bytes().all(|b| b.is_ascii_digit()))
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_string));
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            ppid.as_deref() == Some(me.as_str())
                && cmd.split(|b| *b == 0).any(|a| a == b"ui-window")
        })
        .collect()
}

/// This process plus its window processes: what the UI costs, as RSS and
/// as private memory.
fn rss_kb() -> (u64, u64) {
    let windows = window_processes();
    (
        rss_kb_of("self") + windows.iter().map(|p| rss_kb_of(p)).sum::<u64>(),
        private_kb_of("self") + windows.iter().map(|p| private_kb_of(p)).sum::<u64>(),
    )
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we own.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    // SAFETY: as above; RUSAGE_CHILDREN counts the reaped window processes.
    let rc = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, (t.tv_usec as u32) * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime) + tv(rc.ru_utime) + tv(rc.ru_stime)
}

fn layout_pos(log: &LogFile, from: usize, label: &str) -> Option<(i64, i64)> {
    let text = log.text_from(from);
    let needle = format!("button {label:?} centre ");
    let line = text.lines().rev().find(|l| l.contains(&needle))?;
    let rest = &line[line.find(&needle)? + needle.len()..];
    let mut it = rest.split_whitespace();
    let x = it
        .next()?
        .trim_matches(|c: char| !c.is_ascii_digit() && c != '-')
        .parse()
        .ok()?;
    let y = it
        .next()?
        .trim_matches(|c: char| !c.is_ascii_digit() && c != '-')
        .parse()
        .ok()?;
    Some((x, y))
}

/// The window process's own count, from the host's log line "prompt …
/// painted N ms after the request reached the broker (window process: M ms
/// after it read the request)".
fn child_share(log: &LogFile, from: usize) -> Option<f64> {
    let text = log.text_from(from);
    let needle = "(window process: ";
    let line = text.lines().find(|l| l.contains(needle))?;
    let rest = &line[line.find(needle)? + needle.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn xdotool(args: &[&str]) -> Option<String> {
    let out = Command::new("xdotool").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo test --all-targets` runs benches too, without `--bench`: this
    // one needs a display and a minute, so it only runs under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ui bench: skipped (run it with `cargo bench --bench ui`)");
        return Ok(());
    }
    let mut children = Vec::new();
    start_display(&mut children)?;
    let logdir = tempfile::tempdir()?;
    let log = LogFile::capture(logdir.path().join("bench.log"))?;
    // The window processes log with the same filter, to the same file.
    // SAFETY: set before any other thread starts.
    unsafe { std::env::set_var("ACCORD_LOG", "info,accord::ui::layout=debug") };
    tracing_subscriber::fmt()
        .with_env_filter("info,accord::ui::layout=debug")
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
    let rounds = env_u64("ACCORD_BENCH_ROUNDS", 5);
    let idle_s = env_u64("ACCORD_BENCH_IDLE_S", 60);

    let dir = tempfile::tempdir()?;
    let pki = accord::tls::demo::write(dir.path())?;
    let upstream = rfb_stub()?;
    let port = free_port()?;
    let mut policy = accord::policy::Policy::load(&pki.policy)?;
    policy.listen.address = format!("127.0.0.1:{port}").parse()?;
    policy.upstream.launch = accord::policy::Launch::None;
    policy.upstream.vnc = accord::policy::UpstreamAddr::Tcp(upstream);
    policy.consent.arm_delay = Duration::from_millis(300);
    let policy = Arc::new(policy);
    // SAFETY: set before the runtime and the UI threads start.
    unsafe { std::env::set_var("XDG_RUNTIME_DIR", dir.path()) };

    let hub = Hub::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let handle = rt.handle().clone();
    let quit = Arc::new(tokio::sync::Notify::new());
    let (tx, rx) = std::sync::mpsc::channel::<SessionControl>();
    let core = {
        let (hub, quit, prompter, policy) = (
            hub.clone(),
            quit.clone(),
            UiPrompter::new(hub.clone()),
            policy.clone(),
        );
        std::thread::spawn(move || {
            rt.block_on(accord::engine::serve(
                policy,
                Arc::new(MemoryJournal::default()),
                prompter,
                None,
                move |c| {
                    let _ = tx.send(c);
                },
                async move { quit.notified().await },
            ));
            hub.quit();
        })
    };
    let control = rx.recv()?;
    let strings = Arc::new(Strings::load(Lang::Fr)?);
    accord::ui::tray::spawn(
        handle.clone(),
        control.state(),
        Arc::new(control.clone()),
        {
            let hub = hub.clone();
            Arc::new(move || hub.show_history(Vec::new()))
        },
        strings.clone(),
        quit.clone(),
    );
    {
        let (control, hub) = (control.clone(), hub.clone());
        handle.spawn(async move {
            let mut st = control.state();
            loop {
                let s = match &st.borrow_and_update().activity {
                    Activity::InSession(i) => Some((**i).clone()),
                    _ => None,
                };
                hub.set_session(s);
                if st.changed().await.is_err() {
                    break;
                }
            }
        });
    }

    // The technician and the clinician's hand, in another thread.
    let driver = {
        let (hub, log, control, quit) = (hub.clone(), log.clone(), control.clone(), quit.clone());
        let cfg = ConnectConfig {
            host: "127.0.0.1".into(),
            port,
            cert: pki.technician_cert.clone(),
            key: pki.technician_key.clone(),
            ca: pki.ca.clone(),
            ticket: "BENCH-1".into(),
            reason: "Mesure".into(),
            mode: Mode::Control,
            listen: "127.0.0.1:0".parse()?,
        };
        std::thread::spawn(move || -> DriverResult {
            let r = drive(&hub, &log, &control, &cfg, rounds, idle_s);
            // Whatever happened, stop the agent so the windows return.
            quit.notify_one();
            hub.quit();
            r
        })
    };
    fn drive(
        hub: &Hub,
        log: &LogFile,
        control: &SessionControl,
        cfg: &ConnectConfig,
        rounds: u64,
        idle_s: u64,
    ) -> DriverResult {
        {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            std::thread::sleep(Duration::from_secs(1));
            let rss_start = rss_kb();
            let mut first_frame = Vec::new();
            let mut in_child = Vec::new();
            let mut kill = Vec::new();
            let mut window_rss = Vec::new();
            let mut used = Vec::new();
            for round in 0..rounds {
                // Every prompt is measured cold: only the spare is waiting.
                if !wait_for_spare(&used, LINGER + Duration::from_secs(3)) {
                    return Err("no spare, or a window process outlived its linger".into());
                }
                let mark = log.len();
                LAST_PROMPT_LATENCY_US.store(0, Ordering::Relaxed);
                let cfg = cfg.clone();
                let session = rt.spawn(async move {
                    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                        .await
                        .map_err(|e| e.to_string())?;
                    let acc = accord::connect::ask(&cfg, &mut |_| {})
                        .await
                        .map_err(|e| e.to_string())?;
                    acc.serve(listener, &mut |_| {})
                        .await
                        .map_err(|e| e.to_string())?;
                    Ok::<Instant, String>(Instant::now())
                });
                // Wait for the first frame of the prompt, then answer.
                let t0 = Instant::now();
                while LAST_PROMPT_LATENCY_US.load(Ordering::Relaxed) == 0 {
                    if session.is_finished() || t0.elapsed() > Duration::from_secs(20) {
                        let why = if session.is_finished() {
                            format!("{:?}", rt.block_on(session))
                        } else {
                            "timeout".into()
                        };
                        return Err(format!("no prompt frame: {why}"));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                first_frame.push(LAST_PROMPT_LATENCY_US.load(Ordering::Relaxed) as f64 / 1000.0);
                let id = hub
                    .lock()
                    .prompts
                    .first()
                    .map(|p| p.req.id)
                    .ok_or("no prompt")?;
                hub.answer(id, accord::broker::Answer::Control);
                // Banner: find it, click "Terminer" where it is drawn.
                let mut pos = None;
                for _ in 0..200 {
                    pos = layout_pos(log, mark, "Terminer");
                    if pos.is_some() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                let (x, y) = pos.ok_or("banner never drawn")?;
                in_child.extend(child_share(log, mark));
                used = window_processes();
                window_rss.push(used.iter().map(|p| rss_kb_of(p)).sum());
                let wid = xdotool(&[
                    "search",
                    "--sync",
                    "--onlyvisible",
                    "--name",
                    "session en cours",
                ])
                .and_then(|s| s.lines().next().map(str::to_string))
                .ok_or("no banner window")?;
                std::thread::sleep(Duration::from_millis(300));
                if let Ok(mut t) = END_PRESSED.lock() {
                    *t = None;
                }
                xdotool(&[
                    "mousemove",
                    "--window",
                    &wid,
                    &x.to_string(),
                    &y.to_string(),
                    "click",
                    "1",
                ]);
                let closed = rt
                    .block_on(async {
                        tokio::time::timeout(Duration::from_secs(10), session).await
                    })
                    .map_err(|_| "session did not end")?
                    .map_err(|e| e.to_string())??;
                let pressed = END_PRESSED
                    .lock()
                    .ok()
                    .and_then(|t| *t)
                    .ok_or("Terminer not handled")?;
                kill.push(closed.saturating_duration_since(pressed).as_secs_f64() * 1000.0);
                println!(
                    "round {round}: first frame {:.1} ms, Terminer→closed {:.2} ms, window process {:.1} MB",
                    first_frame[first_frame.len() - 1],
                    kill[kill.len() - 1],
                    window_rss.last().copied().unwrap_or(0) as f64 / 1024.0
                );
                // Let the banner close before the next round.
                let mut st = control.state();
                let _ = rt.block_on(async {
                    tokio::time::timeout(
                        Duration::from_secs(5),
                        st.wait_for(|s| s.activity == Activity::Idle),
                    )
                    .await
                    .is_ok()
                });
                std::thread::sleep(Duration::from_millis(300));
            }
            // Idle: no window, tray and spare only, once the last window
            // process is gone.
            if !wait_for_spare(&used, LINGER + Duration::from_secs(3)) {
                return Err("no spare, or a window process outlived its linger".into());
            }
            let c0 = cpu_time();
            let mut idle_windows = 0;
            for _ in 0..idle_s {
                std::thread::sleep(Duration::from_secs(1));
                idle_windows = idle_windows.max(window_processes().len());
            }
            let c1 = cpu_time();
            let rss = rss_kb();
            Ok(Figures {
                first_frame,
                in_child,
                kill,
                window_rss,
                idle_windows,
                idle_cpu: c1 - c0,
                rss: (rss_start, rss),
                idle_s,
            })
        }
    }

    let cfg = HostConfig {
        program: Some(env!("CARGO_BIN_EXE_accord").into()),
        lang: strings.lang,
        shortcut: "Ctrl+Alt+Pause".into(),
        actions: Arc::new(TimedActions(control.clone())),
    };
    host::run(&hub, &cfg)?;
    let result = driver.join().map_err(|_| "driver panicked")?;
    let _ = core.join();
    for mut c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
    let mut f = match result {
        Ok(r) => r,
        Err(e) => {
            println!("{}", log.text_from(0));
            return Err(e.into());
        }
    };
    let idle_s = f.idle_s;
    let first_prompt = f.first_frame.first().copied().unwrap_or(f64::NAN);
    let mut later: Vec<f64> = f.first_frame.iter().skip(1).copied().collect();
    println!("| measure | value | target |");
    println!("| --- | --- | --- |");
    println!(
        "| request → first frame of the first prompt after start | {first_prompt:.1} ms | ≤ 100 ms |"
    );
    println!(
        "| request → first frame, later prompts (each in a spare window process), median of {} (max) | {:.1} ms ({:.1} ms) | ≤ 100 ms |",
        later.len(),
        median(&mut later),
        later.iter().copied().fold(0.0, f64::max)
    );
    let mut in_child = f.in_child.clone();
    println!(
        "| of which in the window process, request read → first frame, median of {} (max) | {:.1} ms ({:.1} ms) | |",
        in_child.len(),
        median(&mut in_child),
        in_child.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "| \"Terminer\" → technician socket closed, median (max) | {:.2} ms ({:.2} ms) | ≤ 20 ms |",
        median(&mut f.kill),
        f.kill.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "| window process while the banner shows, max | {:.1} MB | (exits {} s after the last window) |",
        f.window_rss.iter().copied().max().unwrap_or(0) as f64 / 1024.0,
        LINGER.as_secs()
    );
    println!(
        "| window processes alive while idle over {idle_s} s (the spare: display connected, GL driver loaded, no window) | {} | 1 |",
        f.idle_windows
    );
    println!(
        "| CPU while idle over {idle_s} s | {:.1} ms ({:.3} %) | no repaint loop |",
        f.idle_cpu.as_secs_f64() * 1000.0,
        f.idle_cpu.as_secs_f64() * 100.0 / idle_s as f64
    );
    println!(
        "| RSS idle with the tray, before any window / after {} sessions (UI process + window processes; the bench's own core and driver included) | {:.1} MB / {:.1} MB | |",
        f.first_frame.len(),
        f.rss.0.0 as f64 / 1024.0,
        f.rss.1.0 as f64 / 1024.0
    );
    println!(
        "| of which private (not shared: the GL driver's code is the page cache's), before / after | {:.1} MB / {:.1} MB | ≤ 40 MB |",
        f.rss.0.1 as f64 / 1024.0,
        f.rss.1.1 as f64 / 1024.0
    );
    Ok(())
}
