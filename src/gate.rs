//! The door of the service's local sockets (`ui.sock`, `control.sock`):
//! every local account may connect, so a connection is counted the moment
//! it is accepted, by the uid the kernel gives (`SO_PEERCRED`), before any
//! task is started or any byte read. Over the limits it is closed at once:
//! a local account that keeps hundreds of silent connections open cannot
//! push the service to its descriptor limit (no TLS accept, the clinician's
//! helper unable to reconnect).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Connections not yet identified (no hello yet, or a control command not
/// answered yet), in all and per uid.
pub const MAX_PENDING: usize = 64;
pub const MAX_PENDING_PER_UID: usize = 8;

#[derive(Default)]
struct Counts {
    total: usize,
    per_uid: HashMap<u32, usize>,
}

/// Counts the connections of one or more sockets (clone it to share).
#[derive(Clone)]
pub struct Gate {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_uid: usize,
}

impl Default for Gate {
    fn default() -> Self {
        Gate::new(MAX_PENDING, MAX_PENDING_PER_UID)
    }
}

/// One admitted connection: counted until dropped.
#[must_use = "the connection is counted only while its permit lives"]
pub struct Permit {
    counts: Arc<Mutex<Counts>>,
    uid: u32,
}

impl Gate {
    pub fn new(max_total: usize, max_per_uid: usize) -> Gate {
        Gate {
            counts: Arc::default(),
            max_total,
            max_per_uid,
        }
    }

    /// A permit for a connection of `uid`, or `None` when that uid or
    /// everyone together holds as many as allowed.
    pub fn admit(&self, uid: u32) -> Option<Permit> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.per_uid.get(&uid).copied().unwrap_or(0);
        if c.total >= self.max_total || mine >= self.max_per_uid {
            return None;
        }
        c.total += 1;
        c.per_uid.insert(uid, mine + 1);
        Some(Permit {
            counts: self.counts.clone(),
            uid,
        })
    }

    /// Connections counted now (for tests and status).
    pub fn held(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n -= 1;
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_uid_and_total_limits_hold_and_free_on_drop() {
        let g = Gate::new(3, 2);
        let a1 = g.admit(1000).unwrap();
        let _a2 = g.admit(1000).unwrap();
        assert!(g.admit(1000).is_none(), "third of one uid");
        let _b = g.admit(1001).unwrap();
        assert!(g.admit(1002).is_none(), "total reached");
        assert_eq!(g.held(), 3);
        drop(a1);
        let c = g.admit(1002);
        assert!(c.is_some(), "a freed permit is reusable");
        assert_eq!(g.held(), 3);
        drop(c);
        assert_eq!(g.held(), 2);
    }

    #[test]
    fn one_uid_cannot_take_everyones_place() {
        let g = Gate::default();
        let hostile: Vec<Permit> = (0..1000).filter_map(|_| g.admit(666)).collect();
        assert_eq!(hostile.len(), MAX_PENDING_PER_UID);
        assert!(g.admit(1000).is_some(), "the clinician still gets in");
    }
}
