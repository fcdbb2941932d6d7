//! The broker's [`Prompter`] in `accord service`: asks the one helper the
//! seat's rule picks, and opens the screen through it.

use super::{ASKED_USERS, Asking, Helpers, OPEN_TIMEOUT, Opening};
use crate::broker::{
    Answer, LocalUser, PromptError, PromptRequest, Prompter, Screen, ScreenError, ScreenRequest,
};
use crate::seat::proto::{ToHelper, WireAsk, WireOpen};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;
use uuid::Uuid;

/// The broker's [`Prompter`] in `accord service`.
#[derive(Clone)]
pub struct HelperPrompter {
    helpers: Arc<Helpers>,
}

impl HelperPrompter {
    pub fn new(helpers: Arc<Helpers>) -> HelperPrompter {
        HelperPrompter { helpers }
    }
}

/// Withdraws the prompt from its helper when the broker stops waiting.
struct Withdraw {
    helpers: Arc<Helpers>,
    id: Uuid,
    conn: u64,
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        let was_waiting = self.helpers.reg().asking.remove(&self.id).is_some();
        if was_waiting {
            self.helpers
                .send(self.conn, ToHelper::Withdraw { id: self.id });
        }
    }
}

impl Prompter for HelperPrompter {
    fn ask(&self, req: PromptRequest) -> impl Future<Output = Result<Answer, PromptError>> + Send {
        let helpers = self.helpers.clone();
        let mut req = req;
        async move {
            helpers.refuse_unsupported()?;
            let conn = helpers
                .choose()
                .map_err(|e| PromptError::NoUser(e.to_string()))?;
            let (tx, mut rx) = oneshot::channel();
            let id = req.id;
            {
                let mut r = helpers.reg();
                let Some(c) = r.conns.get_mut(&conn) else {
                    return Err(PromptError::NoUser("the helper went away".into()));
                };
                c.asked.insert(id);
                let who = helpers.local_user(c);
                // Said once, on the next prompt where it happened.
                let place = (c.id.uid, helpers.session_of(&c.id));
                if let Some(i) = r.replaced.iter().position(|(p, _)| *p == place) {
                    req.replaced = r.replaced.remove(i).map(|(_, h)| h);
                }
                r.asking.insert(id, Asking { conn, reply: tx });
                r.last_asked = Some(conn);
                if r.asked_users.len() >= ASKED_USERS {
                    r.asked_users.pop_front();
                }
                r.asked_users.push_back((id, who));
            }
            let _withdraw = Withdraw {
                helpers: helpers.clone(),
                id,
                conn,
            };
            helpers.send(
                conn,
                ToHelper::Ask(WireAsk::from_request(&req, Instant::now())),
            );
            let mut seat = helpers.seat.clone();
            let mut changed = helpers.changed.subscribe();
            loop {
                tokio::select! {
                    r = &mut rx => {
                        return r.map_err(|_| PromptError::NoUser(
                            "the session helper that was asked went away".into(),
                        ));
                    }
                    r = seat.changed() => if r.is_err() {
                        return Err(PromptError::NoUser("the seat watcher stopped".into()));
                    },
                    r = changed.changed() => if r.is_err() {
                        return Err(PromptError::NoUser("the service is stopping".into()));
                    },
                }
                // The person in front of the screen changed, locked it, or
                // another candidate appeared: this answer would not be theirs.
                if helpers.choose() != Ok(conn) {
                    return Err(PromptError::NoUser(
                        "the person in front of the screen changed while asked".into(),
                    ));
                }
            }
        }
    }

    fn consenter(&self, id: Uuid) -> Option<LocalUser> {
        self.helpers.reg().answered.remove(&id)
    }

    fn asked(&self, id: Uuid) -> Option<LocalUser> {
        let mut r = self.helpers.reg();
        let i = r.asked_users.iter().position(|(p, _)| *p == id)?;
        r.asked_users.remove(i).map(|(_, who)| who)
    }

    /// Asks the helper whose user accepted `req.session` to start the
    /// server in its graphical session and hand over the connection: the
    /// service never enters the user's runtime directory. The helper keeps
    /// the server and stops it when its `state` no longer shows the session.
    fn open_screen(
        &self,
        req: ScreenRequest,
    ) -> impl Future<Output = Result<Screen, ScreenError>> + Send {
        let helpers = self.helpers.clone();
        async move {
            let session = req.session;
            let (tx, rx) = oneshot::channel();
            let (conn, name) = {
                let mut r = helpers.reg();
                let owner = r.owners.get(&session).map(|o| o.conn);
                let Some((conn, c)) = owner.and_then(|o| r.conns.get_mut(&o).map(|c| (o, c)))
                else {
                    return Err(ScreenError(
                        "the session helper that accepted is gone".into(),
                    ));
                };
                c.opens.insert(session);
                let (uid, name) = (c.id.uid, c.name.clone());
                r.opening.insert(
                    session,
                    Opening {
                        conn,
                        uid,
                        reply: tx,
                    },
                );
                (conn, name)
            };
            /// Forgets the pending open however this ends.
            struct Forget(Arc<Helpers>, Uuid);
            impl Drop for Forget {
                fn drop(&mut self) {
                    self.0.reg().opening.remove(&self.1);
                }
            }
            let _forget = Forget(helpers.clone(), session);
            helpers.send(conn, ToHelper::Open(WireOpen::from_request(&req)));
            let (fd, server) = match tokio::time::timeout(OPEN_TIMEOUT, rx).await {
                Ok(Ok(Ok(opened))) => opened,
                Ok(Ok(Err(why))) => return Err(ScreenError(why.to_string())),
                Ok(Err(_)) => {
                    return Err(ScreenError(
                        "the session helper went away while starting the VNC server".into(),
                    ));
                }
                Err(_) => {
                    return Err(ScreenError(format!(
                        "the session helper did not start the VNC server within {} s",
                        OPEN_TIMEOUT.as_secs()
                    )));
                }
            };
            let std = std::os::unix::net::UnixStream::from(fd);
            let stream = std
                .set_nonblocking(true)
                .and_then(|()| tokio::net::UnixStream::from_std(std))
                .and_then(crate::session::Upstream::from_unix)
                .map_err(|e| ScreenError(format!("the connection handed over: {e}")))?;
            Ok(Screen {
                upstream: stream,
                describe: format!("{server} (started for the session by {name}'s helper)"),
                // The helper holds the server; the relay closing this
                // connection and the next `state` both stop it.
                keep: Box::new(()),
                // Her stop in GNOME comes from the helper as `end`.
                stopped_by_her: None,
            })
        }
    }
}
