//! Her stop in the desktop's own sharing control (GNOME's indicator) is
//! her kill switch: the server Accord started exits saying so, and its
//! socket closes at the same moment. Whichever the broker hears first, the
//! session ends `user`; a server that died of anything else ends it
//! `upstream`. The server here is a stand-in on a socketpair, so that the
//! order of the two can be chosen.

#![cfg(unix)]

mod common;
use accord::broker::{
    Answer, PromptError, PromptRequest, Prompter, Screen, ScreenError, ScreenRequest, StoppedByHer,
};
use accord::protocol::Mode;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;

/// What the stand-in server does once the session runs.
#[derive(Clone, Copy)]
enum Exit {
    /// Closes its socket, then (after `after`) says it was her stop.
    Hers { after: Duration },
    /// Says it was her stop first, then closes its socket.
    HersFirst,
    /// Closes its socket and exits for another reason.
    Crash,
    /// Closes its socket; its exit is never known.
    Silent,
    /// Closes its socket; her stop comes 100 ms later as an ending from
    /// outside (the service's helper tells it so).
    HelperTells,
}

#[derive(Clone)]
struct Desktop {
    exit: Exit,
    /// Fires the stand-in's exit.
    go: Arc<Mutex<Option<oneshot::Receiver<()>>>>,
}

impl Prompter for Desktop {
    async fn ask(&self, _req: PromptRequest) -> Result<Answer, PromptError> {
        Ok(Answer::Control)
    }

    async fn open_screen(&self, _req: ScreenRequest) -> Result<Screen, ScreenError> {
        let (ours, mut theirs) = tokio::net::UnixStream::pair().unwrap();
        let go = self.go.lock().unwrap().take().expect("one session");
        let (said_tx, said_rx) = oneshot::channel::<bool>();
        let exit = self.exit;
        tokio::spawn(async move {
            let received = Mutex::new(Vec::new());
            tokio::select! {
                _ = common::serve_stub(&mut theirs, &received) => {}
                _ = go => {}
            }
            match exit {
                Exit::Hers { after } => {
                    drop(theirs);
                    tokio::time::sleep(after).await;
                    let _ = said_tx.send(true);
                }
                Exit::HersFirst => {
                    let _ = said_tx.send(true);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    drop(theirs);
                }
                Exit::Crash => {
                    drop(theirs);
                    let _ = said_tx.send(false);
                }
                Exit::Silent | Exit::HelperTells => {
                    drop(theirs);
                    std::future::pending::<()>().await;
                }
            }
        });
        let stopped: StoppedByHer = Box::pin(async move { said_rx.await.unwrap_or(false) });
        Ok(Screen {
            upstream: accord::session::Upstream::from_unix(ours).unwrap(),
            describe: "stand-in".into(),
            keep: Box::new(()),
            stopped_by_her: Some(stopped),
        })
    }
}

/// Runs one session through the stand-in and returns how it ended.
async fn ended_by(exit: Exit) -> String {
    let pki = common::Pki::new();
    let mut policy = pki.policy("127.0.0.1:9".parse().unwrap());
    policy.upstream.launch = accord::policy::Launch::X11vnc;
    let (go_tx, go_rx) = oneshot::channel();
    let desktop = Desktop {
        exit,
        go: Arc::new(Mutex::new(Some(go_rx))),
    };
    let a = common::spawn_agent(policy, desktop).await;
    let (local, _task) = common::connect_tunnel(pki.connect_config(a.addr, Mode::Control)).await;
    let (_viewer, _) = common::rfb_viewer(local.expect("accepted")).await.unwrap();
    let started = wait(&a.journal, "session_started").await;
    assert_eq!(started["upstream"], "stand-in");
    let _ = go_tx.send(());
    if let Exit::HelperTells = exit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        a.ctl.end();
    }
    let ended = wait(&a.journal, "session_ended").await;
    ended["why"].as_str().unwrap_or_default().to_string()
}

async fn wait(
    j: &accord::broker::MemoryJournal,
    name: &str,
) -> serde_json::Map<String, serde_json::Value> {
    for _ in 0..250 {
        if let Some(r) = common::records(j).into_iter().find(|r| r["event"] == name) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no {name}: {:?}", common::records(j));
}

#[tokio::test]
async fn her_stop_told_after_the_socket_closed_is_still_hers() {
    let after = Duration::from_millis(100);
    assert_eq!(ended_by(Exit::Hers { after }).await, "user");
}

#[tokio::test]
async fn her_stop_told_by_the_helper_after_the_socket_closed_is_hers() {
    assert_eq!(ended_by(Exit::HelperTells).await, "user");
}

#[tokio::test]
async fn her_stop_told_before_the_socket_closed_is_hers() {
    assert_eq!(ended_by(Exit::HersFirst).await, "user");
}

#[tokio::test]
async fn a_server_that_died_otherwise_ends_the_session_upstream() {
    assert_eq!(ended_by(Exit::Crash).await, "upstream");
    // Nothing said within the grace: the server's end, not hers.
    assert_eq!(ended_by(Exit::Silent).await, "upstream");
}

#[tokio::test]
async fn her_stop_told_too_late_is_not_taken_for_hers() {
    let after = Duration::from_secs(2);
    assert_eq!(ended_by(Exit::Hers { after }).await, "upstream");
}
