//! `accord service` with session helpers of other uids: who is
//! asked, who consented, what a helper leaving or lying does, and who may
//! end a session. The service runs in this (root) process; each helper is a
//! separate process under its own uid (tests/service/fake_helper.py), so
//! the service sees real SO_PEERCRED credentials.

mod common;

use accord::policy::{Policy, SeatMode};
use accord::protocol::{Mode, RefusalCode};
use common::{Pki, RfbStub, connect_tunnel};
use serde_json::Value;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::oneshot;

const FAKE_HELPER: &str = include_str!("service/fake_helper.py");

/// Runs as root with python3, or says why it cannot.
fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let python = std::process::Command::new("python3")
        .arg("-c")
        .arg("")
        .status()
        .is_ok_and(|s| s.success());
    if root && python {
        return true;
    }
    let why = "needs root (helpers under other uids) and python3";
    if std::env::var_os("ACCORD_REQUIRE_PEERS").is_some() {
        panic!("{why}");
    }
    eprintln!("skipped: {why}");
    false
}

struct Service {
    #[allow(dead_code)]
    seat: SeatMode,
    _run: tempfile::TempDir,
    run: PathBuf,
    addr: SocketAddr,
    audit: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Service {
    async fn start(policy: Policy) -> Service {
        Self::start_on(policy, SeatMode::Single, None).await
    }

    /// With `seat = "logind"` and logind on `bus`.
    async fn start_on(mut policy: Policy, seat: SeatMode, bus: Option<String>) -> Service {
        policy.service.seat = seat;
        if seat == SeatMode::Single && policy.service.users.is_empty() {
            // The fake helpers' uids (no accounts of their own).
            policy.service.users = (64001..=64020).map(|u| u.to_string()).collect();
        }
        let audit = policy.audit.path.clone().unwrap();
        let run = tempfile::Builder::new()
            .prefix("accord-run")
            .tempdir()
            .unwrap();
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(run.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let path = run.path().to_path_buf();
        let (stop, rx) = oneshot::channel::<()>();
        let task = {
            let path = path.clone();
            tokio::spawn(async move {
                accord::seat::run::serve(Arc::new(policy), &path, bus, async move {
                    let _ = rx.await;
                })
                .await
            })
        };
        let addr = wait_listening(&path).await;
        Service {
            seat,
            _run: run,
            run: path,
            addr,
            audit,
            stop: Some(stop),
            task: Some(task),
        }
    }

    fn ui_sock(&self) -> PathBuf {
        self.run.join("ui.sock")
    }

    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    async fn wait_record(&self, event: &str, field: &str, value: &str) -> Value {
        self.wait_record_where(&format!("{event} {field}={value}"), |r| {
            r["event"] == event && (field.is_empty() || r[field].as_str() == Some(value))
        })
        .await
    }

    /// The first record `matches` accepts, within 10 s.
    async fn wait_record_where(&self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(r) = self.records().into_iter().find(|r| matches(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "no {what} in {:#?}",
                self.records()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(10), t)
                .await
                .expect("service stops within 10 s")
                .unwrap();
        }
    }
}

async fn wait_listening(run: &Path) -> SocketAddr {
    let sock = run.join("control.sock");
    for _ in 0..500 {
        if let Ok(v) = accord::control::call(&sock, "status").await
            && let Some(a) = v["agent"]["address"].as_str()
        {
            return a.parse().unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the service never listened");
}

/// A fake helper process under `uid`.
struct Helper {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Commands for the helper (fake_helper.py, after "go").
    stdin: tokio::process::ChildStdin,
}

impl Helper {
    async fn start(sock: &Path, uid: u32, behaviour: &str) -> Helper {
        Self::start_then(sock, uid, behaviour, |_| {}).await
    }

    /// `before_hello(pid)` runs before the helper connects (to tell the
    /// fake logind which session that pid is in).
    async fn start_then(
        sock: &Path,
        uid: u32,
        behaviour: &str,
        before_hello: impl FnOnce(u32),
    ) -> Helper {
        let mut cmd = std::process::Command::new("python3");
        cmd.arg("-c")
            .arg(FAKE_HELPER)
            .arg(sock)
            .arg(behaviour)
            .uid(uid)
            .gid(uid)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = tokio::process::Command::from(cmd)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        before_hello(child.id().unwrap());
        let mut stdin = child.stdin.take().unwrap();
        {
            use tokio::io::AsyncWriteExt;
            stdin.write_all(b"go\n").await.unwrap();
        }
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let l = lines.clone();
        tokio::spawn(async move {
            let mut r = BufReader::new(out).lines();
            while let Ok(Some(line)) = r.next_line().await {
                l.lock().unwrap().push(line);
            }
        });
        let h = Helper {
            child,
            lines,
            stdin,
        };
        // A helper that misbehaves at once may be cut off before welcome.
        if !matches!(behaviour, "forge" | "garbage" | "stranger") {
            h.wait_line("welcome").await;
        }
        h
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Sends the helper `command` (see fake_helper.py) and waits until it
    /// has acted on it.
    async fn tell(&mut self, command: &str) {
        use tokio::io::AsyncWriteExt;
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .unwrap();
        let told = format!("told {command}");
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.lines().contains(&told) {
            assert!(Instant::now() < deadline, "helper never did {command}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The `history` answers this helper received, parsed as `accord ui`
    /// would.
    fn histories(&self) -> Vec<Vec<accord::audit::history::Entry>> {
        use accord::seat::proto::{ToHelper, parse};
        self.lines()
            .iter()
            .filter(|l| l.starts_with('{') && l.contains("\"history\":{\"items\""))
            .map(|l| match parse::<ToHelper>(l.as_bytes()) {
                Ok(ToHelper::History(h)) => h.items,
                other => panic!("{other:?}: {l}"),
            })
            .collect()
    }

    /// Asks for the history and waits for one more answer.
    async fn history(&mut self) -> Vec<accord::audit::history::Entry> {
        let before = self.histories().len();
        self.tell(r#"{"history":{}}"#).await;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(h) = self.histories().into_iter().nth(before) {
                return h;
            }
            assert!(Instant::now() < deadline, "no history: {:?}", self.lines());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn was_asked(&self) -> bool {
        self.lines().iter().any(|l| l.contains("\"ask\""))
    }

    async fn wait_line(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "helper never saw {needle}: {:?}",
                self.lines()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn setup() -> (Pki, Policy) {
    let pki = Pki::new();
    let policy = pki.policy("127.0.0.1:9".parse().unwrap());
    (pki, policy)
}

/// [`setup`] with a stand-in VNC server, for tests that reach a session.
async fn setup_with_server() -> (Pki, Policy, RfbStub) {
    let stub = RfbStub::start().await;
    let (pki, mut policy) = setup();
    policy.upstream.launch = accord::policy::Launch::None;
    policy.upstream.vnc = accord::policy::UpstreamAddr::Tcp(stub.addr);
    (pki, policy, stub)
}

/// [`refused_with`], asked again while the service is still busy with the
/// last session or still sees a helper that has just left (`no_user`).
async fn refused_once_ready(pki: &Pki, svc: &Service) -> RefusalCode {
    for _ in 0..100 {
        match refused_with(pki, svc).await {
            RefusalCode::Busy | RefusalCode::NoUser => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            code => return code,
        }
    }
    panic!("the service stayed busy or without anyone to ask");
}

async fn refused_with(pki: &Pki, svc: &Service) -> RefusalCode {
    let (r, _task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    match r {
        Err(accord::connect::ConnectError::Refused(c)) => c,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_one_helper_is_asked_and_the_record_says_who_consented() {
    if !can_run() {
        return;
    }
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    let helper = Helper::start(&svc.ui_sock(), 64001, "view").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted");
    let d = svc.wait_record("decision", "decision", "accepted").await;
    assert_eq!(d["mode"], "view", "the helper said view only");
    assert_eq!(d["local_user"]["uid"], 64001);
    let started = svc.wait_record("session_started", "", "").await;
    assert_eq!(started["local_user"]["uid"], 64001);
    // The helper's banner gets the session; then `accord end` as that uid.
    helper.wait_line("\"session\":{").await;
    let out = end_as(&svc.run, 64001).await;
    assert!(out.contains("session ended"), "{out}");
    svc.wait_record("session_ended", "why", "user").await;
    task.abort();
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_or_two_helpers_mean_no_user_and_nobody_is_asked() {
    if !can_run() {
        return;
    }
    let (pki, policy) = setup();
    let svc = Service::start(policy).await;
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::NoUser);
    let a = Helper::start(&svc.ui_sock(), 64001, "control").await;
    let b = Helper::start(&svc.ui_sock(), 64002, "control").await;
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::NoUser);
    assert!(!a.was_asked() && !b.was_asked());
    let d = svc.wait_record("decision", "why", "no_user").await;
    assert_eq!(d["by"], "policy");
    assert!(d.get("local_user").is_none());
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_leaving_refuses_its_prompt_and_ends_its_session() {
    if !can_run() {
        return;
    }
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    let mut h = Helper::start(&svc.ui_sock(), 64001, "exit_on_ask").await;
    let t0 = Instant::now();
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::NoUser);
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    let _ = h.child.wait().await;

    let _h = Helper::start(&svc.ui_sock(), 64001, "exit_in_session").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted");
    svc.wait_record("session_ended", "why", "ui_lost").await;
    task.abort();
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_saver_of_the_consenting_session_ends_it() {
    if !can_run() {
        return;
    }
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    let _h = Helper::start(&svc.ui_sock(), 64001, "lock_in_session").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted");
    svc.wait_record("session_ended", "why", "screen_locked")
        .await;
    task.abort();
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_that_lies_or_babbles_is_cut_off_and_recorded() {
    if !can_run() {
        return;
    }
    let (_pki, policy) = setup();
    let svc = Service::start(policy).await;
    for behaviour in ["forge", "garbage"] {
        let mut h = Helper::start(&svc.ui_sock(), 64003, behaviour).await;
        h.wait_line("closed").await;
        let _ = h.child.wait().await;
    }
    let recs: Vec<Value> = svc
        .records()
        .into_iter()
        .filter(|r| r["event"] == "helper_rejected")
        .collect();
    assert_eq!(recs.len(), 2, "{recs:#?}");
    assert!(recs.iter().all(|r| r["uid"] == 64003));
    assert!(recs[0]["detail"].as_str().unwrap().contains("not asked"));
    svc.stop().await;
}

/// `accord end` under `uid`, against the service in `run`.
async fn end_as(run: &Path, uid: u32) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_accord"));
    cmd.arg("end").env("ACCORD_RUN_DIR", run).uid(uid).gid(uid);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_user_cannot_end_the_session_and_root_can() {
    if !can_run() {
        return;
    }
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    let _h = Helper::start(&svc.ui_sock(), 64001, "control").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted");
    svc.wait_record("session_started", "", "").await;
    let out = end_as(&svc.run, 64002).await;
    assert!(out.contains("not allowed"), "{out}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(svc.records().iter().all(|r| r["event"] != "session_ended"));
    let out = end_as(&svc.run, 0).await;
    assert!(out.contains("session ended"), "{out}");
    svc.wait_record("session_ended", "why", "user").await;
    task.abort();
    svc.stop().await;
}

/// With logind (a fake one on a private bus): only the helper of the seat's
/// active session is asked, a remote session never is; the lock and a user
/// switch end the session within a second.
#[cfg(feature = "logind")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_logind_only_the_active_session_is_asked_and_lock_or_switch_end_it() {
    use common::logind::{Bus, FakeLogind, session};
    if !can_run() {
        return;
    }
    let Some(bus) = Bus::start() else { return };
    let mut remote = session("4", 64003);
    remote.remote = true;
    let logind = FakeLogind::start(
        &bus,
        &[session("2", 64001), session("3", 64002), remote],
        &[],
        Some("2"),
    )
    .await;
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start_on(policy, SeatMode::Logind, Some(bus.address.clone())).await;
    let sock = svc.ui_sock();
    let a = Helper::start_then(&sock, 64001, "control", |pid| logind.add_pid(pid, "2")).await;
    let b = Helper::start_then(&sock, 64002, "refused", |pid| logind.add_pid(pid, "3")).await;
    let c = Helper::start_then(&sock, 64003, "control", |pid| logind.add_pid(pid, "4")).await;
    // A helper of the active uid but in no session of the seat: never asked.
    let stray = Helper::start(&sock, 64001, "control").await;

    // Session 2 is in front of the screen: A is asked, and consents.
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted by A");
    let d = svc.wait_record("decision", "decision", "accepted").await;
    assert_eq!(d["local_user"]["uid"], 64001);
    assert_eq!(d["local_session"], "2");
    assert!(a.was_asked() && !b.was_asked() && !c.was_asked() && !stray.was_asked());
    // The screen locks: the session ends within a second.
    svc.wait_record("session_started", "", "").await;
    let t0 = Instant::now();
    logind.set_locked("2", true).await;
    svc.wait_record("session_ended", "why", "screen_locked")
        .await;
    eprintln!("LockedHint -> session ended in {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    task.abort();
    // Locked: nobody can answer.
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::NoUser);
    logind.set_locked("2", false).await;
    // The watcher re-reads logind on the signal (well under a millisecond
    // here); give it time on a loaded machine.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A user switch ends the running session.
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted by A again");
    let started = svc
        .records()
        .into_iter()
        .filter(|r| r["event"] == "session_started")
        .count();
    assert_eq!(started, 2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    logind.set_active(Some("3")).await;
    svc.wait_record("session_ended", "why", "user_switched")
        .await;
    eprintln!("ActiveSession -> session ended in {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    task.abort();

    // Session 3 in front: B is asked (and refuses).
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::User);
    assert!(b.was_asked());
    // A remote session in front: nobody is asked.
    logind.set_active(Some("4")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::NoUser);
    assert!(!c.was_asked() && !stray.was_asked());
    svc.stop().await;
}

/// A technician in control acts with the clinician's uid. That uid cannot
/// read the workstation's key (0640 root:accord, here root:root), append to
/// or replace the audit log (0600 in the service's 0700 state directory), or
/// stop the service; `accord end` from another user is refused above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clinicians_uid_cannot_touch_the_key_the_log_or_the_service() {
    if !can_run() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let (pki, mut policy) = setup();
    // The deployed layout: /etc/accord readable, the key not; the state
    // directory the service's own.
    let etc = tempfile::tempdir().unwrap();
    std::fs::set_permissions(etc.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let key = etc.path().join("agent.key");
    std::fs::copy(&pki.agent_key, &key).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();
    policy.listen.key = key.clone();
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("audit.jsonl");
    policy.audit.path = Some(log.clone());
    let svc = Service::start(policy).await;
    assert!(log.exists());
    let attack = r#"
import os, signal, sys
key, log, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
def tried(what, f):
    try:
        f()
        print(what, "DONE")
    except PermissionError:
        print(what, "denied")
tried("read key", lambda: open(key, "rb").read())
tried("append log", lambda: open(log, "ab").write(b"{}\n"))
tried("replace log", lambda: os.rename(log, log + ".old"))
tried("stop service", lambda: os.kill(pid, signal.SIGTERM))
"#;
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c")
        .arg(attack)
        .arg(&key)
        .arg(&log)
        .arg(std::process::id().to_string())
        .uid(64001)
        .gid(64001);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for what in ["read key", "append log", "replace log", "stop service"] {
        assert!(
            text.contains(&format!("{what} denied")),
            "{what}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Still running, log intact.
    wait_listening(&svc.run).await;
    accord::audit::verify::verify_file(&log).expect("the chain verifies");
    svc.stop().await;
}

/// A socket planted where `accord status` looks, by another local user, is
/// not believed: it could lie that no session runs, or swallow `end`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_planted_by_another_user_is_not_used() {
    if !can_run() {
        return;
    }
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = dir.path().join("control.sock");
    let _liar = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    std::os::unix::fs::chown(&sock, Some(64005), Some(64005)).unwrap();
    for cmd in ["status", "end"] {
        let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_accord"));
        c.arg(cmd)
            .env("ACCORD_RUN_DIR", dir.path())
            .uid(64006)
            .gid(64006);
        let out = tokio::process::Command::from(c).output().await.unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains("belongs to uid 64005"), "{cmd}: {text}");
        assert_eq!(out.status.code(), Some(2), "{cmd}: {text}");
    }
}

/// A local user who reconnects a babbling helper in a loop cannot fill the
/// audit log: `helper_rejected` is recorded within a per-user budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_flood_costs_a_bounded_number_of_records() {
    if !can_run() {
        return;
    }
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_pki, policy) = setup();
    let svc = Service::start(policy).await;
    for _ in 0..40 {
        let mut s = tokio::net::UnixStream::connect(svc.ui_sock())
            .await
            .unwrap();
        s.write_all(b"not the protocol\n").await.unwrap();
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    }
    let n = svc
        .records()
        .iter()
        .filter(|r| r["event"] == "helper_rejected")
        .count();
    assert!(
        (1..=10).contains(&n),
        "{n} helper_rejected records for 40 breaches"
    );
    // Still serving helpers.
    let h = Helper::start(&svc.ui_sock(), 64001, "silent").await;
    drop(h);
    svc.stop().await;
}

/// Issue 14: with `launch` on, the consenting helper starts the server and
/// hands over the connection (`SCM_RIGHTS`); the service relays to it and
/// never opens anything in the user's runtime directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helper_hands_over_the_server_it_started() {
    if !can_run() {
        return;
    }
    let (pki, mut policy) = setup();
    policy.upstream.launch = accord::policy::Launch::Auto;
    let svc = Service::start(policy).await;
    let h = Helper::start(&svc.ui_sock(), 64001, "open_pair").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    let local = r.expect("accepted");
    let open = h.wait_line("\"open\"").await;
    assert!(open.contains("\"launch\":\"auto\""), "{open}");
    let started = svc.wait_record("session_started", "", "").await;
    let up = started["upstream"].as_str().unwrap();
    assert!(up.contains("started for the session by"), "{up}");
    // The viewer reaches the helper's server through the relay.
    let (_v, si) = common::rfb_viewer(local).await.unwrap();
    assert_eq!(
        &si[si.len() - 4..],
        b"pair",
        "ServerInit of the helper's server"
    );
    let out = end_as(&svc.run, 64001).await;
    assert!(out.contains("session ended"), "{out}");
    svc.wait_record("session_ended", "why", "user").await;
    assert!(
        !svc.records()
            .iter()
            .any(|r| r["event"] == "helper_rejected"),
        "{:#?}",
        svc.records()
    );
    task.abort();
    svc.stop().await;
}

/// What a helper hands over must be a connected Unix stream socket whose
/// other end runs as the helper's user: a file, a TCP connection, or no
/// descriptor at all cut the helper off (`helper_rejected`) and refuse the
/// session `upstream_unreachable`; a server that could not start is said
/// so in the record, without a breach.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_cannot_hand_over_anything_but_its_server() {
    if !can_run() {
        return;
    }
    let stub = RfbStub::start().await;
    let (pki, mut policy) = setup();
    policy.upstream.launch = accord::policy::Launch::Auto;
    let svc = Service::start(policy).await;
    let tcp = format!("open_tcp:{}", stub.addr.port());
    for (behaviour, detail) in [
        ("open_file", "not a socket"),
        (tcp.as_str(), "not a Unix socket"),
        ("open_nofd", "without its connection"),
    ] {
        let h = Helper::start(&svc.ui_sock(), 64004, behaviour).await;
        assert_eq!(
            refused_with(&pki, &svc).await,
            RefusalCode::UpstreamUnreachable,
            "{behaviour}: {:#?}",
            svc.records()
        );
        h.wait_line("closed").await;
        // The helper may see its link closed before the service has
        // written why: wait for this behaviour's own record, not any.
        svc.wait_record_where(&format!("helper_rejected with {detail:?}"), |r| {
            r["event"] == "helper_rejected"
                && r["detail"].as_str().unwrap_or_default().contains(detail)
        })
        .await;
    }
    // The helper connected to it, the relay never spoke to it.
    assert!(
        stub.received().is_empty(),
        "the relay used a foreign server"
    );

    let h = Helper::start(&svc.ui_sock(), 64005, "open_fail").await;
    assert_eq!(
        refused_with(&pki, &svc).await,
        RefusalCode::UpstreamUnreachable
    );
    let ended = svc
        .records()
        .into_iter()
        .rfind(|r| r["event"] == "session_ended")
        .unwrap();
    assert_eq!(ended["why"], "upstream");
    assert!(
        ended["detail"]
            .as_str()
            .unwrap()
            .contains("cannot open display"),
        "{ended}"
    );
    assert!(
        !svc.records()
            .iter()
            .any(|r| r["event"] == "helper_rejected" && r["uid"] == 64005),
        "a failed start is not a breach"
    );
    drop(h);
    svc.stop().await;
}

/// A prompt nobody answers is recorded with the user who was asked (her
/// own unanswered requests, for her history); a refusal before anyone is
/// asked names nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_time_out_names_who_was_asked() {
    if !can_run() {
        return;
    }
    let (pki, mut policy) = setup();
    policy.consent.timeout = Duration::from_secs(1);
    let svc = Service::start(policy).await;
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::NoUser);
    let h = Helper::start(&svc.ui_sock(), 64006, "silent").await;
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::Timeout);
    assert!(h.was_asked());
    let d = svc.wait_record("decision", "why", "timeout").await;
    assert_eq!(d["by"], "timeout");
    assert_eq!(d["local_user"]["uid"], 64006, "{d}");
    let nobody = svc.wait_record("decision", "why", "no_user").await;
    assert!(nobody.get("local_user").is_none(), "{nobody}");
    svc.stop().await;
}

/// The sessions of `uid`'s decisions (made, or let run out), newest first,
/// as the log has them.
fn decisions_of(svc: &Service, uid: u32) -> Vec<String> {
    let mut ids: Vec<String> = svc
        .records()
        .into_iter()
        .filter(|r| {
            r["event"] == "decision"
                && r["local_user"]["uid"] == uid
                && (r["by"] == "user" || r["by"] == "timeout")
        })
        .map(|r| r["session"].as_str().unwrap().to_string())
        .collect();
    ids.reverse();
    ids
}

/// Issue 11 item 6: a helper's `history` is its own user's decisions from
/// the audit log (a session she allowed, with how it ended; a refusal; a
/// prompt she let run out), newest first, and none of another user's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_is_the_helpers_own_decisions_only() {
    use accord::audit::history::Outcome;
    if !can_run() {
        return;
    }
    let (pki, mut policy, _stub) = setup_with_server().await;
    policy.consent.timeout = Duration::from_secs(1);
    let svc = Service::start(policy).await;
    let mut a = Helper::start(&svc.ui_sock(), 64007, "view").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted");
    a.wait_line("\"session\":{").await;
    let out = end_as(&svc.run, 64007).await;
    assert!(out.contains("session ended"), "{out}");
    svc.wait_record("session_ended", "why", "user").await;
    task.abort();
    a.tell("answer refused").await;
    assert_eq!(refused_once_ready(&pki, &svc).await, RefusalCode::User);
    a.tell("answer silent").await;
    assert_eq!(refused_once_ready(&pki, &svc).await, RefusalCode::Timeout);
    let mut a = a.child;
    let killed = a.id().unwrap();
    a.kill().await.unwrap();
    // Another user of the workstation refuses.
    let mut b = Helper::start(&svc.ui_sock(), 64008, "refused").await;
    assert_eq!(refused_once_ready(&pki, &svc).await, RefusalCode::User);

    let mut a = Helper::start(&svc.ui_sock(), 64007, "silent").await;
    let mine = a.history().await;
    let ids: Vec<String> = mine.iter().map(|e| e.session.to_string()).collect();
    assert_eq!(ids, decisions_of(&svc, 64007));
    assert_eq!(mine.len(), 3, "{mine:#?}");
    assert_eq!(mine[0].outcome, Outcome::TimedOut);
    assert_eq!(mine[1].outcome, Outcome::Refused);
    match &mine[2].outcome {
        Outcome::Accepted {
            mode: Mode::View,
            ended: Some(end),
        } => assert_eq!(end.why, "user"),
        other => panic!("{other:?}"),
    }
    assert!(mine.iter().all(|e| !e.technician.is_empty() && !e.raise));

    let theirs = b.history().await;
    let ids: Vec<String> = theirs.iter().map(|e| e.session.to_string()).collect();
    assert_eq!(ids, decisions_of(&svc, 64008));
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].outcome, Outcome::Refused);
    // A user who decided nothing has an empty history.
    let mut c = Helper::start(&svc.ui_sock(), 64009, "silent").await;
    assert!(c.history().await.is_empty());
    // Asking is no breach (killing a helper may read as one: its socket
    // is reset).
    assert!(
        svc.records()
            .iter()
            .all(|r| r["event"] != "helper_rejected" || r["pid"] == killed),
        "{:#?}",
        svc.records()
    );
    svc.stop().await;
}

/// A helper asking for its history in a loop is not a breach, and costs
/// the service at most one answer a second: thousands of requests are
/// coalesced into a few answers, other helpers and prompts go on, and the
/// next answer still sees what happened since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_flood_is_coalesced_and_breaks_nothing() {
    use tokio::io::AsyncWriteExt;
    if !can_run() {
        return;
    }
    let (pki, policy) = setup();
    let svc = Service::start(policy).await;
    let mut h = Helper::start(&svc.ui_sock(), 64010, "refused").await;
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::User);
    let t0 = Instant::now();
    let flood = "{\"history\":{}}\n".repeat(5000);
    h.stdin.write_all(flood.as_bytes()).await.unwrap();
    h.tell("answer refused").await;
    let sent = t0.elapsed();
    // The flood is over once the coalesced answer after it arrived.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let answers = h.histories();
    let elapsed = t0.elapsed();
    eprintln!(
        "5000 history requests (sent in {sent:?}): {} answers in {elapsed:?}",
        answers.len()
    );
    assert!(
        (1..=elapsed.as_secs() as usize + 2).contains(&answers.len()),
        "{} answers in {elapsed:?}",
        answers.len()
    );
    assert!(answers.iter().all(|a| a.len() == 1), "{answers:?}");
    // Still connected, still asked, and the next answer is fresh.
    assert_eq!(refused_with(&pki, &svc).await, RefusalCode::User);
    let fresh = h.history().await;
    assert_eq!(fresh.len(), 2, "{fresh:#?}");
    assert!(
        !svc.records()
            .iter()
            .any(|r| r["event"] == "helper_rejected"),
        "{:#?}",
        svc.records()
    );
    svc.stop().await;
}

/// Runs `python3 -c code args…` as `uid`, waits for it, returns its stdout.
async fn python_as(uid: u32, code: &str, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new("python3");
    cmd.arg("-c").arg(code).args(args).uid(uid).gid(uid);
    let out = tokio::process::Command::from(cmd).output().await.unwrap();
    assert!(
        out.status.success(),
        "python as {uid}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// This process's open descriptors (the service runs in it).
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Another local account opens ui.sock connections as fast as it can for
/// 30 s, each with two descriptors and no hello, replacing every one the
/// service drops: the service's descriptors stay bounded (counted at
/// accept, 8 per uid before the hello), the clinician's helper stays
/// connected, and a request is asked and answered meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_account_cannot_exhaust_the_services_descriptors() {
    if !can_run() {
        return;
    }
    const FLOOD: &str = r#"
import socket, sys, time, os
path, secs = sys.argv[1], float(sys.argv[2])
end = time.time() + secs
held, opened, peak = [], 0, 0
r, w = os.pipe()
while time.time() < end:
    while len(held) < 400 and time.time() < end:
        s = socket.socket(socket.AF_UNIX)
        s.setblocking(False)
        try:
            s.connect(path)
            socket.send_fds(s, [b'{"v":1,"hel'], [r, w])
        except OSError:
            s.close()
            break
        held.append(s); opened += 1
    alive = []
    for s in held:
        try:
            if s.recv(1) == b"":
                s.close(); continue
        except BlockingIOError:
            pass
        except OSError:
            s.close(); continue
        alive.append(s)
    held = alive
    peak = max(peak, len(held))
    time.sleep(0.01)
print(opened, peak)
"#;
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    let helper = Helper::start(&svc.ui_sock(), 64001, "control").await;
    let before = open_fds();
    let sock = svc.ui_sock();
    let flood = {
        let sock = sock.display().to_string();
        tokio::spawn(async move { python_as(64050, FLOOD, &[&sock, "30"]).await })
    };
    let mut max_fds = 0;
    let mut asked = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(28) {
        max_fds = max_fds.max(open_fds());
        if t0.elapsed() > Duration::from_secs(5) && asked < 3 {
            // A request mid-flood: asked, answered, session ended.
            let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
            r.expect("accepted during the flood");
            asked += 1;
            svc.wait_record("session_started", "", "").await;
            let out = end_as(&svc.run, 64001).await;
            assert!(out.contains("session ended"), "{out}");
            task.abort();
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = flood.await.unwrap();
    let mut it = out
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap_or(0));
    let (opened, peak) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    eprintln!(
        "flood: {opened} connections opened, {peak} held at once; service fds {before} -> max {max_fds}"
    );
    assert!(opened > 1000, "the flood did not flood: {opened}");
    // Other tests run in this process too: a margin, far below the flood.
    assert!(
        max_fds < before + 120,
        "descriptors grew from {before} to {max_fds} under the flood"
    );
    assert_eq!(asked, 3);
    assert!(
        !helper.lines().iter().any(|l| l == "closed"),
        "the clinician's helper was cut off"
    );
    svc.stop().await;
}

/// `seat = "single"`: only the policy's users. Another account's helper is
/// refused and recorded, never asked, cannot make requests `no_user`, and
/// cannot `accord end` the session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_mode_admits_only_the_policys_users() {
    if !can_run() {
        return;
    }
    let (pki, mut policy, _stub) = setup_with_server().await;
    policy.service.users = vec!["64001".into()];
    let svc = Service::start(policy).await;
    let a = Helper::start(&svc.ui_sock(), 64001, "control").await;
    let mut stranger = Helper::start(&svc.ui_sock(), 64009, "stranger").await;
    stranger.wait_line("closed").await;
    let _ = stranger.child.wait().await;
    let rec = svc.wait_record("helper_rejected", "", "").await;
    assert_eq!(rec["uid"], 64009);
    assert!(
        rec["detail"].as_str().unwrap().contains("[service] users"),
        "{rec}"
    );
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("the policy's user is asked and accepts");
    assert!(a.was_asked() && !stranger.was_asked());
    svc.wait_record("session_started", "", "").await;
    let out = end_as(&svc.run, 64009).await;
    assert!(out.contains("not allowed"), "{out}");
    let out = end_as(&svc.run, 64001).await;
    assert!(out.contains("session ended"), "{out}");
    task.abort();
    svc.stop().await;
}

/// `accord status` from an account that is neither root nor the user in
/// front of the screen: whether a session runs, not with whom, the ticket
/// or the session's id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_tells_other_accounts_only_that_a_session_runs() {
    if !can_run() {
        return;
    }
    const STATUS: &str = r#"
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"status\n")
out = b""
while True:
    d = s.recv(4096)
    if not d: break
    out += d
print(out.decode())
"#;
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    let _h = Helper::start(&svc.ui_sock(), 64001, "control").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted");
    let started = svc.wait_record("session_started", "", "").await;
    let id = started["session"].as_str().unwrap().to_string();
    let ctl = svc.run.join("control.sock").display().to_string();
    let other: Value =
        serde_json::from_str(python_as(64002, STATUS, &[&ctl]).await.trim()).unwrap();
    assert_eq!(other["activity"]["state"], "session", "{other}");
    let text = other.to_string();
    assert!(!text.contains(&id), "session id leaked: {text}");
    assert!(other["activity"].get("technician").is_none(), "{text}");
    assert!(other["activity"].get("ticket").is_none(), "{text}");
    assert_eq!(other["agent"]["listening"], true);
    // The user in front of the screen, and root, see it all.
    let mine: Value = serde_json::from_str(python_as(64001, STATUS, &[&ctl]).await.trim()).unwrap();
    assert_eq!(mine["activity"]["session"], id.as_str(), "{mine}");
    assert!(mine["activity"]["technician"].is_string());
    let root = accord::control::call(&svc.run.join("control.sock"), "status")
        .await
        .unwrap();
    assert_eq!(root["activity"]["session"], id.as_str());
    task.abort();
    svc.stop().await;
}

/// A helper that says its session is Wayland: the request is refused
/// `unsupported_session` (exit 8 for `accord connect`), recorded, nobody is
/// asked, and that helper is told (its notice).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wayland_session_is_refused_unsupported_and_she_is_told() {
    if !can_run() {
        return;
    }
    let (pki, policy) = setup();
    let svc = Service::start(policy).await;
    let h = Helper::start(&svc.ui_sock(), 64001, "wayland").await;
    assert_eq!(
        refused_with(&pki, &svc).await,
        RefusalCode::UnsupportedSession
    );
    let d = svc
        .wait_record("decision", "why", "unsupported_session")
        .await;
    assert_eq!(d["by"], "policy");
    assert!(!h.was_asked());
    h.wait_line("unsupported_session").await;
    svc.stop().await;
}

/// With logind: GNOME and Plasma start the helper as a user unit, in no
/// session. It is asked for the active session of its user (the record
/// names that session); a logind session of type wayland is refused
/// `unsupported_session` whoever runs there.
#[cfg(feature = "logind")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_logind_a_helper_of_the_users_manager_is_asked() {
    use common::logind::{Bus, FakeLogind, session};
    if !can_run() {
        return;
    }
    let Some(bus) = Bus::start() else { return };
    let mut wayland = session("7", 64002);
    wayland.kind = "wayland".into();
    let logind = FakeLogind::start(&bus, &[session("2", 64001), wayland], &[], Some("2")).await;
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start_on(policy, SeatMode::Logind, Some(bus.address.clone())).await;
    let sock = svc.ui_sock();
    let a = Helper::start_then(&sock, 64001, "control", |pid| {
        logind.add_managed_pid(pid, 64001)
    })
    .await;
    let b = Helper::start_then(&sock, 64002, "control", |pid| {
        logind.add_managed_pid(pid, 64002)
    })
    .await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted by the managed helper");
    let d = svc.wait_record("decision", "decision", "accepted").await;
    assert_eq!(d["local_user"]["uid"], 64001);
    assert_eq!(d["local_session"], "2");
    assert!(a.was_asked() && !b.was_asked());
    svc.wait_record("session_started", "", "").await;
    // The seat switches to 64002's Wayland session: hers ends, and the
    // next request is refused unsupported_session, told to B.
    logind.set_active(Some("7")).await;
    svc.wait_record("session_ended", "why", "user_switched")
        .await;
    task.abort();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        refused_once_ready(&pki, &svc).await,
        RefusalCode::UnsupportedSession
    );
    assert!(!b.was_asked());
    b.wait_line("unsupported_session").await;
    svc.stop().await;
}

/// A technician in control acts as her and could replace `accord ui` by a
/// program that answers "control" by itself: a helper of her uid that
/// connects where she granted control is recorded (`helper_replaced`) and
/// she is told through it. After a view-only session it is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_helper_started_again_after_control_is_recorded_and_told() {
    if !can_run() {
        return;
    }
    let (pki, policy, _stub) = setup_with_server().await;
    let svc = Service::start(policy).await;
    // View only, then the helper goes: nothing to say when it comes back.
    let mut v = Helper::start(&svc.ui_sock(), 64004, "view").await;
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted in view only");
    svc.wait_record("session_started", "", "").await;
    let _ = v.child.kill().await;
    svc.wait_record("session_ended", "why", "ui_lost").await;
    task.abort();
    let back = Helper::start(&svc.ui_sock(), 64004, "exit_in_session").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        svc.records()
            .iter()
            .all(|r| r["event"] != "helper_replaced"),
        "recorded after a view-only session"
    );
    // Control, and the helper is killed mid-session (as a technician could).
    let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
    r.expect("accepted with control");
    svc.wait_record("session_ended", "why", "ui_lost").await;
    task.abort();
    drop(back);
    let again = Helper::start(&svc.ui_sock(), 64004, "control").await;
    let rec = svc.wait_record("helper_replaced", "", "").await;
    assert_eq!(rec["uid"], 64004);
    assert_eq!(rec["pid"], again.child.id().unwrap());
    assert!(rec["exe"].is_string(), "{rec}");
    again.wait_line("helper_replaced").await;
    // Her next prompt says it first, and only that one.
    let pid = again.child.id().unwrap();
    let asks = |h: &Helper| {
        h.lines()
            .into_iter()
            .filter(|l| l.contains("\"ask\""))
            .collect::<Vec<_>>()
    };
    for n in 1..=2 {
        let (r, task) = connect_tunnel(pki.connect_config(svc.addr, Mode::Control)).await;
        r.expect("accepted");
        task.abort();
        let deadline = Instant::now() + Duration::from_secs(10);
        while svc
            .records()
            .iter()
            .filter(|r| r["event"] == "session_ended")
            .count()
            < n + 2
        {
            assert!(Instant::now() < deadline, "session {n} never ended");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(asks(&again).len(), n, "{:?}", again.lines());
    }
    let lines = asks(&again);
    assert!(
        lines[0].contains("\"replaced\"") && lines[0].contains(&format!("\"pid\":{pid}")),
        "{}",
        lines[0]
    );
    assert!(!lines[1].contains("\"replaced\""), "{}", lines[1]);
    svc.stop().await;
}
