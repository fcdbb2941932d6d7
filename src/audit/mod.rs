//! The audit trail: a hash-chained, append-only JSON Lines log of every
//! request, decision and session, and its forwarding to the hospital's syslog
//! collector.
//!
//! It serves PGSSI-S rules T11 (every remote intervention is traced: who,
//! when, what was asked and decided), T12 (the trace is protected against
//! modification and kept outside the workstation) and E3 (the trace is
//! exploitable: `accord log verify` and `accord log show`).
//!
//! What the chain can and cannot tell (see [`verify`]): any change to a record
//! that is followed by an untouched record is detected, and the first bad
//! record is named. It cannot detect the removal of the last records, nor a
//! rewrite of every record from some point to the end (a hash chain has no
//! secret). Those are what the forwarded copy is for: the collector holds
//! every record's `seq` and `hash` as soon as the network allows, so the local
//! file can be checked against it.
//!
//! Layout: [`chain`] is the sans-IO core (fields in, line out; line in,
//! verdict out), [`log`] owns the file and durability, [`verify`] reads a
//! whole file, [`show`] renders it for people, [`history`] reads its tail back
//! for the clinician's own history, [`syslog`] builds RFC 5424 /
//! RFC 5425 frames (sans-IO) and [`forward`] sends the log to the collector.

pub mod chain;
pub mod forward;
pub mod history;
pub mod journal;
pub mod log;
pub mod record;
pub mod show;
pub mod syslog;
pub mod verify;

use std::io;
use std::path::PathBuf;

pub use chain::{Chain, ChainError, GENESIS_PREV, Line, Why};
pub use log::{Appended, Log, OpenReport, Recovered};
pub use show::read_records;
pub use verify::{VerifySummary, verify_bytes, verify_file};

/// Everything that can go wrong while writing or reading the audit log.
///
/// The agent refuses consent when `append` fails: a decision it cannot trace
/// must not be carried out (T11).
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("audit log {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("audit log {} is already open in another process", path.display())]
    Locked { path: PathBuf },
    #[error("audit log {}: only {written} of {len} bytes written (disk full?)", path.display())]
    ShortWrite {
        path: PathBuf,
        written: usize,
        len: usize,
    },
    #[error(
        "audit log {} can no longer be trusted to be durable after an earlier failed write or sync; reopen it",
        path.display()
    )]
    Poisoned { path: PathBuf },
    #[error("audit record needs a string `event` field")]
    MissingEvent,
    #[error("audit record field `{0}` is set by the log itself and cannot be given")]
    ReservedField(String),
    #[error("audit record cannot be serialised: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error("audit log {} line {line}: not a JSON record", path.display())]
    NotJson { path: PathBuf, line: usize },
}

impl AuditError {
    pub(crate) fn io(path: &std::path::Path, source: io::Error) -> Self {
        AuditError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
