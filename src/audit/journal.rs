//! The broker's [`Journal`] backed by the hash-chained [`Log`]: every event
//! is durable before `record` returns, and the forwarder is woken after each
//! append. A log found tampered at open keeps recording (the break is itself
//! on record) but makes the broker refuse every request.

use super::record::{Event, Journal, JournalError, LogUnusable};
use super::{Log, OpenReport};
use std::path::Path;
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

pub struct AuditJournal {
    log: Mutex<Log>,
    tampered: Option<LogUnusable>,
    /// Woken after each append so the forwarder sends at once.
    pub wake: Arc<Notify>,
}

impl AuditJournal {
    /// Opens (creating or recovering) the log at `path`.
    pub fn open(path: &Path) -> Result<(AuditJournal, OpenReport), super::AuditError> {
        let (log, report) = Log::open(path)?;
        let tampered = report.tampered.as_ref().map(|e| LogUnusable::Altered {
            path: path.to_path_buf(),
            source: e.clone(),
        });
        if let Some(t) = &tampered {
            tracing::error!("{t}; requests will be refused until IT investigates");
        }
        if let Some(r) = &report.recovered {
            tracing::warn!(
                "audit log had a torn last record ({} bytes), moved to {}",
                r.torn_bytes,
                r.torn_path.display()
            );
        }
        Ok((
            AuditJournal {
                log: Mutex::new(log),
                tampered,
                wake: Arc::new(Notify::new()),
            },
            report,
        ))
    }
}

/// Runs `f`, which waits on the disk (`fdatasync`), without holding up the
/// async tasks queued behind it: on a multi-threaded runtime the worker
/// hands its other tasks to another thread first, so a slow disk never
/// stalls the listener. Elsewhere (a current-thread test runtime) `f` just runs.
fn off_the_workers<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

impl Journal for AuditJournal {
    fn record(&self, event: &Event) -> Result<(), JournalError> {
        let fields = event.to_fields();
        off_the_workers(|| {
            let mut log = self
                .log
                .lock()
                .map_err(|_| JournalError("audit log lock poisoned".into()))?;
            log.append(fields).map_err(|e| JournalError(e.to_string()))
        })?;
        self.wake.notify_one();
        Ok(())
    }

    fn health(&self) -> Result<(), LogUnusable> {
        match &self.tampered {
            Some(t) => Err(t.clone()),
            None => Ok(()),
        }
    }

    fn wake(&self) -> Option<Arc<Notify>> {
        Some(self.wake.clone())
    }

    fn last_seq(&self) -> Option<u64> {
        self.log.lock().ok().map(|l| l.head().0)
    }
}
