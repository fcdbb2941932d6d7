//! Fail closed (O6, O7, O8): a UI that cannot show a window, or whose thread
//! dies, means refused requests and an ended session, never a session
//! nobody can see or stop. Driven through the real listener, broker and
//! `accord connect` code with the UI's own prompter; the "UI thread" here is
//! a plain thread holding the same drop guard as the real one.

mod common;

use accord::broker::{Activity, Answer, MemoryJournal};
use accord::protocol::Mode;
use accord::ui::banner::SessionActions;
use accord::ui::window::host::{self, HostConfig};
use accord::ui::{DeadOnDrop, Hub, Lang, UiPrompter};
use common::{Pki, RfbStub, connect_tunnel, records, rfb_viewer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

type Running = common::Spawned;

async fn start(pki: &Pki, upstream: SocketAddr, hub: &Arc<Hub>) -> Running {
    common::spawn_agent(pki.policy(upstream), UiPrompter::new(hub.clone())).await
}

async fn wait_for(j: &MemoryJournal, event: &str, field: &str, value: &str) {
    for _ in 0..500 {
        if records(j)
            .iter()
            .any(|r| r["event"] == event && r.get(field).and_then(|v| v.as_str()) == Some(value))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {event} with {field}={value}: {:?}", records(j));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_display_refuses_every_request_by_policy() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let hub = Hub::new();
    // What `run_agent` does when DISPLAY is unset or the window cannot open.
    hub.mark_dead("no display (DISPLAY unset)");
    let agent = start(&pki, stub.addr, &hub).await;
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let err = r.expect_err("refused");
    assert_eq!(err.exit_code(), 6, "refused by policy: {err}");
    assert!(agent.ctl.state().borrow().blocked.is_some());
    assert_eq!(
        *stub.connections.lock().unwrap(),
        0,
        "nothing reached the screen"
    );
    let _ = agent.stop.send(());
    let _ = agent.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_that_fails_while_asking_refuses_that_request() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let hub = Hub::new();
    let agent = start(&pki, stub.addr, &hub).await;
    // The UI thread sees the prompt, then its window fails to open.
    let ui = {
        let hub = hub.clone();
        std::thread::spawn(move || {
            drop(hub.wait_until(|s| !s.prompts.is_empty()));
            hub.mark_dead("cannot open a window: no GL");
        })
    };
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    ui.join().unwrap();
    assert_eq!(r.expect_err("refused").exit_code(), 6);
    wait_for(&agent.journal, "decision", "by", "policy").await;
    // And the next one is refused before any prompt.
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(r.expect_err("refused").exit_code(), 6);
    let _ = agent.stop.send(());
    let _ = agent.task.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ui_thread_that_panics_ends_the_session_with_ui_lost() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let hub = Hub::new();
    let agent = start(&pki, stub.addr, &hub).await;
    let (go, crash) = std::sync::mpsc::channel::<()>();
    let ui = {
        let hub = hub.clone();
        let mut state = agent.ctl.state();
        let rt = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            let _guard = DeadOnDrop {
                hub: hub.clone(),
                armed: true,
            };
            let id = hub.wait_until(|s| !s.prompts.is_empty()).prompts[0].req.id;
            assert!(hub.answer(id, Answer::Control));
            rt.block_on(state.wait_for(|s| matches!(s.activity, Activity::InSession(_))))
                .unwrap();
            // Crash once the technician's viewer is connected.
            let _ = crash.recv();
            panic!("simulated crash of the UI thread during a session");
        })
    };
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    let local = r.expect("accepted");
    let (mut viewer, _init) = rfb_viewer(local).await.unwrap();
    go.send(()).unwrap();
    assert!(ui.join().is_err(), "the UI thread panicked");
    assert!(hub.is_dead());
    wait_for(&agent.journal, "session_ended", "why", "ui_lost").await;
    // The technician's side is closed.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), viewer.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the tunnel closed");
    // No new session while the UI is gone.
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(r.expect_err("refused").exit_code(), 6);
    let _ = agent.stop.send(());
    let _ = agent.task.await;
}

struct NoActions;

impl SessionActions for NoActions {
    fn end(&self) {}
    fn set_view_only(&self) {}
    fn pause(&self, _: bool) {}
}

/// The real window host with a "window process" that reads the request
/// and dies (a crash of `accord ui-window`, a GL driver abort): the request
/// is refused by policy, and so is the next one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_process_that_dies_while_asking_refuses_that_request() {
    let dir = tempfile::tempdir().unwrap();
    let crash = dir.path().join("crashing-window");
    script(&crash, "#!/bin/sh\nread ask\nexit 3\n");
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let hub = Hub::new();
    let agent = start(&pki, stub.addr, &hub).await;
    let ui = host(&hub, crash);
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    assert_eq!(r.expect_err("refused").exit_code(), 6);
    let why = ui
        .join()
        .unwrap()
        .expect_err("the host reports the dead window process");
    assert!(why.contains("stopped"), "{why}");
    wait_for(&agent.journal, "decision", "by", "policy").await;
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::View)).await;
    assert_eq!(r.expect_err("refused").exit_code(), 6);
    assert_eq!(
        *stub.connections.lock().unwrap(),
        0,
        "nothing reached the screen"
    );
    let _ = agent.stop.send(());
    let _ = agent.task.await;
}

/// The spare window process (started ahead of need) dies while idle: it
/// showed nothing, so it is replaced when a prompt comes, not taken for a
/// failure; the clinician is asked and her answer counts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_window_process_that_died_idle_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let count = dir.path().join("started");
    let window = dir.path().join("window");
    // The first one (the spare) dies at once; the next reads the request
    // and answers "refused" as the real window would, then waits.
    script(
        &window,
        &format!(
            "#!/bin/sh\necho x >> '{}'\n[ \"$(wc -l < '{}')\" -eq 1 ] && exit 0\nread ask\n\
             id=$(echo \"$ask\" | sed -E 's/.*\"id\":\"([^\"]+)\".*/\\1/')\n\
             printf '{{\"v\":1,\"answer\":{{\"id\":\"%s\",\"answer\":\"refused\"}}}}\\n' \"$id\"\n\
             cat > /dev/null\n",
            count.display(),
            count.display()
        ),
    );
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let hub = Hub::new();
    let agent = start(&pki, stub.addr, &hub).await;
    let ui = host(&hub, window);
    // The spare has started and died.
    for _ in 0..100 {
        if std::fs::read_to_string(&count).is_ok_and(|s| s.lines().count() == 1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (r, _task) = connect_tunnel(pki.connect_config(agent.addr, Mode::Control)).await;
    assert_eq!(r.expect_err("refused").exit_code(), 3, "refused by her");
    wait_for(&agent.journal, "decision", "by", "user").await;
    assert!(hub.lock().dead.is_none(), "the UI is not taken for dead");
    hub.quit();
    ui.join().unwrap().expect("the host ends cleanly");
    let _ = agent.stop.send(());
    let _ = agent.task.await;
}

/// An executable script standing in for `accord ui-window`.
fn script(path: &std::path::Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The window host on its own thread with `program` as the window process,
/// marking the hub dead on error as `run_windows` does.
fn host(
    hub: &Arc<Hub>,
    program: std::path::PathBuf,
) -> std::thread::JoinHandle<Result<(), String>> {
    let hub = hub.clone();
    std::thread::spawn(move || {
        let cfg = HostConfig {
            program: Some(program),
            lang: Lang::Fr,
            shortcut: "ctrl+alt+Pause".into(),
            actions: Arc::new(NoActions),
        };
        let r = host::run(&hub, &cfg).map_err(|e| e.to_string());
        if let Err(e) = &r {
            hub.mark_dead(format!("no window can be shown: {e}"));
        }
        r
    })
}
