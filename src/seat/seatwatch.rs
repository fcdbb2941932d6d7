//! Keeps the service's view of the seat current whatever logind does: it
//! may be missing at start, restart, or never come (then nobody is in front
//! of the screen and every request is refused `no_user`: fail closed).

use super::listener::{Place, PlaceOf};
use super::logind::Logind;
use super::rule::SeatView;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Finds helpers' sessions through the current logind connection.
pub struct LogindSessions {
    logind: watch::Receiver<Option<Arc<Logind>>>,
}

impl PlaceOf for LogindSessions {
    /// The session, else (only then) the user manager: an error counts as
    /// nowhere, which no rule admits.
    async fn place_of(&self, pid: u32) -> Place {
        let Some(l) = self.logind.borrow().clone() else {
            return Place::default();
        };
        match l.session_of_pid(pid).await {
            Ok(Some(session)) => {
                return Place {
                    session: Some(session),
                    manager_of: None,
                };
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!("logind: session of pid {pid}: {e}");
                return Place::default();
            }
        }
        match l.user_of_pid(pid).await {
            Ok(manager_of) => Place {
                session: None,
                manager_of,
            },
            Err(e) => {
                tracing::warn!("logind: user of pid {pid}: {e}");
                Place::default()
            }
        }
    }
}

/// Starts watching `seat` through logind on `bus` (`None`: the system
/// bus); the receiver starts empty (nobody) until logind answers.
pub fn start(seat: &str, bus: Option<String>) -> (watch::Receiver<SeatView>, LogindSessions) {
    let (view_tx, view_rx) = watch::channel(SeatView::default());
    let (logind_tx, logind_rx) = watch::channel(None::<Arc<Logind>>);
    let seat = seat.to_string();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        loop {
            let connected = match &bus {
                Some(a) => Logind::connect_to(a).await,
                None => Logind::connect().await,
            };
            match connected {
                Ok(l) => {
                    let l = Arc::new(l);
                    match l.watch_seat(&seat).await {
                        Ok(mut rx) => {
                            backoff = Duration::from_millis(500);
                            logind_tx.send_replace(Some(l.clone()));
                            loop {
                                view_tx.send_replace(rx.borrow_and_update().clone());
                                if rx.changed().await.is_err() {
                                    break;
                                }
                            }
                        }
                        Err(e) => tracing::warn!("logind: cannot watch {seat}: {e}"),
                    }
                }
                Err(e) => tracing::warn!("{e}; nobody can be asked until logind answers"),
            }
            logind_tx.send_replace(None);
            view_tx.send_replace(SeatView::default());
            if view_tx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    });
    (view_rx, LogindSessions { logind: logind_rx })
}
