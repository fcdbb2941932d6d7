//! A fake logind served with zbus on the private bus of `bus.rs`, for the
//! seat watcher's tests and the service's (tests/service_logind.rs,
//! tests/service.rs).
#![cfg(feature = "logind")]

use accord::seat::rule::LoginSession;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use zbus::object_server::SignalEmitter;
use zbus::zvariant::OwnedObjectPath;
use zbus::{Connection, interface};

pub const SEAT_PATH: &str = "/org/freedesktop/login1/seat/seat0";

pub use super::bus::Bus;

// ---------------------------------------------------------- a fake logind

#[derive(zbus::DBusError, Debug)]
#[zbus(prefix = "org.freedesktop.login1")]
enum LoginError {
    #[zbus(error)]
    ZBus(zbus::Error),
    NoSessionForPID(String),
    NoUserForPID(String),
    NoSuchSeat(String),
}

struct Manager {
    /// pid → session object.
    pids: Arc<Mutex<HashMap<u32, OwnedObjectPath>>>,
    /// pid → uid whose user manager runs it (a user unit: no session).
    managed: Arc<Mutex<HashMap<u32, u32>>>,
    /// `GetSeat` calls so far: how a test sees a watch read.
    seat_reads: Arc<AtomicU32>,
}

#[interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    #[zbus(name = "GetSessionByPID")]
    fn get_session_by_pid(&self, pid: u32) -> Result<OwnedObjectPath, LoginError> {
        let pids = self.pids.lock().unwrap_or_else(|p| p.into_inner());
        pids.get(&pid).cloned().ok_or_else(|| {
            LoginError::NoSessionForPID(format!("PID {pid} does not belong to any known session"))
        })
    }

    /// logind: the user of a process's session, else of its user slice.
    #[zbus(name = "GetUserByPID")]
    fn get_user_by_pid(&self, pid: u32) -> Result<OwnedObjectPath, LoginError> {
        let managed = self.managed.lock().unwrap_or_else(|p| p.into_inner());
        managed.get(&pid).map(|uid| user_path(*uid)).ok_or_else(|| {
            LoginError::NoUserForPID(format!(
                "PID {pid} does not belong to any known or logged in user"
            ))
        })
    }

    fn get_seat(&self, id: &str) -> Result<OwnedObjectPath, LoginError> {
        self.seat_reads.fetch_add(1, Ordering::SeqCst);
        if id == "seat0" {
            Ok(path(SEAT_PATH))
        } else {
            Err(LoginError::NoSuchSeat(format!("No seat '{id}' known")))
        }
    }
}

struct Seat {
    active: (String, OwnedObjectPath),
    sessions: Vec<(String, OwnedObjectPath)>,
}

#[interface(name = "org.freedesktop.login1.Seat")]
impl Seat {
    #[zbus(property)]
    fn active_session(&self) -> (String, OwnedObjectPath) {
        self.active.clone()
    }
    #[zbus(property)]
    fn sessions(&self) -> Vec<(String, OwnedObjectPath)> {
        self.sessions.clone()
    }
}

struct User(u32);

#[interface(name = "org.freedesktop.login1.User")]
impl User {
    #[zbus(property, name = "UID")]
    fn uid(&self) -> u32 {
        self.0
    }
}

pub fn user_path(uid: u32) -> OwnedObjectPath {
    path(&format!("/org/freedesktop/login1/user/_{uid}"))
}

struct Session(LoginSession);

#[interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    fn id(&self) -> String {
        self.0.id.clone()
    }
    #[zbus(property)]
    fn user(&self) -> (u32, OwnedObjectPath) {
        (self.0.uid, user_path(self.0.uid))
    }
    #[zbus(property)]
    fn name(&self) -> String {
        self.0.name.clone()
    }
    #[zbus(property)]
    fn remote(&self) -> bool {
        self.0.remote
    }
    #[zbus(property, name = "Type")]
    fn kind(&self) -> String {
        self.0.kind.clone()
    }
    #[zbus(property)]
    fn class(&self) -> String {
        self.0.class.clone()
    }
    #[zbus(property)]
    fn locked_hint(&self) -> bool {
        self.0.locked
    }
    #[zbus(property)]
    fn active(&self) -> bool {
        true
    }
}

pub fn path(p: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(p.to_owned()).expect("valid object path")
}

pub fn session_path(id: &str) -> OwnedObjectPath {
    path(&format!("/org/freedesktop/login1/session/_{id}"))
}

pub fn session(id: &str, uid: u32) -> LoginSession {
    LoginSession {
        id: id.into(),
        uid,
        name: format!("user{uid}"),
        remote: false,
        kind: "x11".into(),
        class: "user".into(),
        locked: false,
    }
}

/// logind as far as Accord asks it, owning `org.freedesktop.login1`.
pub struct FakeLogind {
    conn: Connection,
    pub seat_reads: Arc<AtomicU32>,
    pids: Arc<Mutex<HashMap<u32, OwnedObjectPath>>>,
    managed: Arc<Mutex<HashMap<u32, u32>>>,
}

impl FakeLogind {
    pub async fn start(
        bus: &Bus,
        sessions: &[LoginSession],
        pids: &[(u32, &str)],
        active: Option<&str>,
    ) -> FakeLogind {
        let pids: Arc<Mutex<HashMap<_, _>>> = Arc::new(Mutex::new(
            pids.iter()
                .map(|(pid, id)| (*pid, session_path(id)))
                .collect(),
        ));
        let seat_reads = Arc::new(AtomicU32::new(0));
        let managed = Arc::new(Mutex::new(HashMap::new()));
        let manager = Manager {
            pids: pids.clone(),
            managed: managed.clone(),
            seat_reads: seat_reads.clone(),
        };
        let mut b = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .serve_at("/org/freedesktop/login1", manager)
            .unwrap()
            .serve_at(
                SEAT_PATH,
                Seat {
                    active: active_pair(active),
                    sessions: sessions
                        .iter()
                        .map(|s| (s.id.clone(), session_path(&s.id)))
                        .collect(),
                },
            )
            .unwrap();
        let mut uids: Vec<u32> = sessions.iter().map(|s| s.uid).collect();
        uids.sort_unstable();
        uids.dedup();
        for s in sessions {
            b = b.serve_at(session_path(&s.id), Session(s.clone())).unwrap();
        }
        for uid in uids {
            b = b.serve_at(user_path(uid), User(uid)).unwrap();
        }
        let conn = b
            .name("org.freedesktop.login1")
            .unwrap()
            .build()
            .await
            .expect("fake logind on the bus");
        FakeLogind {
            conn,
            seat_reads,
            pids,
            managed,
        }
    }

    /// Puts a process in a user's manager, in no session (a user unit:
    /// how GNOME and Plasma start autostart entries).
    pub fn add_managed_pid(&self, pid: u32, uid: u32) {
        self.managed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, uid);
    }

    /// Puts a process in a session (as `GetSessionByPID` will say).
    pub fn add_pid(&self, pid: u32, session: &str) {
        self.pids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, session_path(session));
    }

    /// Switches the seat's active session, with `PropertiesChanged`.
    pub async fn set_active(&self, id: Option<&str>) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, Seat>(SEAT_PATH)
            .await
            .unwrap();
        let mut seat = iface.get_mut().await;
        seat.active = active_pair(id);
        seat.active_session_changed(iface.signal_emitter())
            .await
            .unwrap();
    }

    pub async fn set_locked(&self, id: &str, locked: bool) {
        let iface = self
            .conn
            .object_server()
            .interface::<_, Session>(session_path(id))
            .await
            .unwrap();
        let mut s = iface.get_mut().await;
        s.0.locked = locked;
        let emitter: &SignalEmitter<'_> = iface.signal_emitter();
        s.locked_hint_changed(emitter).await.unwrap();
    }

    /// logind exits: its connection closes, its name is released.
    pub async fn stop(self) {
        self.conn.close().await.unwrap();
    }
}

pub fn active_pair(id: Option<&str>) -> (String, OwnedObjectPath) {
    match id {
        Some(id) => (id.to_owned(), session_path(id)),
        None => (String::new(), path("/")),
    }
}
