//! The log file itself: creation with tight permissions, validation on open,
//! recovery of a torn tail, and durable appends.
//!
//! Durability contract (T11): `append` returns `Ok` only after the whole line
//! and its `\n` went out in a single `write` and `fdatasync` returned, so
//! "returned Ok ⇒ on disk", and the agent tells the technician a decision
//! only after that. Any failure is returned, never retried silently: the
//! agent refuses consent when it cannot trace it.
//!
//! Tampering (T12): a complete record that fails verification is never
//! truncated or rewritten — it is evidence. The log stays usable so that
//! what happens next is still traced: appending continues chained from the
//! last line's actual hash with the next unused `seq`, and the first record
//! written after detection is an `audit_tampering_detected` event naming the
//! bad record, so the break is itself on record (and forwarded). `verify`
//! keeps reporting the original break; the file must be archived and a new
//! one started by an operator. The agent refuses sessions while
//! [`OpenReport::tampered`] is set.

use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::AuditError;
use super::chain::{Chain, ChainError};
use super::verify::scan;

/// A durable record: what the caller may quote (e.g. in the decision frame
/// or the session banner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub seq: u64,
    pub hash: String,
}

/// A torn last line found on open, moved aside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    pub torn_bytes: usize,
    pub torn_path: PathBuf,
}

/// What `Log::open` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenReport {
    /// The file did not exist and was created.
    pub created: bool,
    /// Complete lines in the file before anything was appended by `open`.
    pub records: u64,
    pub recovered: Option<Recovered>,
    /// The first record that breaks the chain (never a torn tail, which is
    /// `recovered`). The agent refuses sessions while this is set.
    pub tampered: Option<ChainError>,
}

/// The open, locked, append-only audit log. One per process: `open` takes
/// an exclusive advisory lock so that two agents cannot interleave chains.
#[derive(Debug)]
pub struct Log {
    file: File,
    path: PathBuf,
    chain: Chain,
    /// Length of the file made of complete, acknowledged lines; a failed
    /// write is cut back to it.
    len: u64,
    /// Set after a failed write or sync: the kernel may have dropped the
    /// dirty pages, so nothing more may be chained on an unknown state.
    poisoned: bool,
}

impl Log {
    /// Opens (or creates, 0600 in a 0700 directory) the log at `path`,
    /// verifies the whole chain, moves a torn tail aside and records what it
    /// found. Blocking: call it from `spawn_blocking` in async code.
    pub fn open(path: &Path) -> Result<(Log, OpenReport), AuditError> {
        let io = |e| AuditError::io(path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir).map_err(io)?;
        }
        let (file, created) = open_private(path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                return Err(AuditError::Locked {
                    path: path.to_path_buf(),
                });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        if created {
            sync_parent(path).map_err(io)?;
        }
        // A fresh descriptor reads from offset 0 (append mode only moves
        // writes to the end).
        let scan = scan(BufReader::with_capacity(1 << 20, &file)).map_err(io)?;
        let tampered = match &scan.error {
            Some(e) if !matches!(e.why, super::Why::Torn { .. }) => Some(e.clone()),
            _ => None,
        };
        let chain = match &tampered {
            None => Chain::resume(scan.head_seq, &scan.head_hash),
            Some(_) => Chain::resume(scan.actual_head.0, &scan.actual_head.1),
        };
        let mut log = Log {
            file,
            path: path.to_path_buf(),
            chain,
            len: scan.complete_len,
            poisoned: false,
        };
        let report = OpenReport {
            created,
            records: scan.lines,
            recovered: None,
            tampered: tampered.clone(),
        };
        let recovered = match &scan.torn {
            Some(torn) => Some(log.move_torn_aside(torn)?),
            None => None,
        };
        let report = OpenReport {
            recovered,
            ..report
        };
        if let Some(err) = &tampered
            && !scan.fault_on_record
        {
            let mut fields = Map::new();
            fields.insert("event".into(), json!("audit_tampering_detected"));
            fields.insert("bad_seq".into(), json!(err.seq));
            fields.insert("bad_line".into(), json!(err.line));
            fields.insert("why".into(), json!(err.to_string()));
            log.append(fields)?;
        }
        if let Some(rec) = &report.recovered {
            let mut fields = Map::new();
            fields.insert("event".into(), json!("log_recovered"));
            fields.insert("torn_bytes".into(), json!(rec.torn_bytes));
            fields.insert(
                "torn_file".into(),
                json!(rec.torn_path.display().to_string()),
            );
            log.append(fields)?;
        }
        Ok((log, report))
    }

    /// Appends one record and returns once it is durable. `fields` holds
    /// `event` and the event's fields; `seq`, `ts`, `prev`, `hash` are added.
    pub fn append(&mut self, fields: Map<String, Value>) -> Result<Appended, AuditError> {
        self.append_inner(&fields)
    }

    fn append_inner(&mut self, fields: &Map<String, Value>) -> Result<Appended, AuditError> {
        if self.poisoned {
            return Err(AuditError::Poisoned {
                path: self.path.clone(),
            });
        }
        let mut next = self.chain.clone();
        let line = next.append(fields, OffsetDateTime::now_utc())?;
        let mut bytes = line.text.into_bytes();
        bytes.push(b'\n');
        // One write: a reader (the forwarder) or a crash sees either nothing,
        // a prefix without `\n` (recovered as torn), or the whole line.
        match self.file.write(&bytes) {
            Ok(n) if n == bytes.len() => {}
            Ok(n) => {
                self.cut_back();
                return Err(AuditError::ShortWrite {
                    path: self.path.clone(),
                    written: n,
                    len: bytes.len(),
                });
            }
            Err(e) => {
                self.cut_back();
                return Err(AuditError::io(&self.path, e));
            }
        }
        if let Err(e) = self.file.sync_data() {
            // After a failed fdatasync the page cache may claim the data is
            // clean while it is not on disk; nothing can be built on it.
            self.poisoned = true;
            return Err(AuditError::io(&self.path, e));
        }
        self.len += bytes.len() as u64;
        self.chain = next;
        Ok(Appended {
            seq: line.seq,
            hash: line.hash,
        })
    }

    /// Removes a partial line left by a failed write so that the next record
    /// starts on its own line; if even that fails the log is poisoned.
    fn cut_back(&mut self) {
        if self
            .file
            .set_len(self.len)
            .and_then(|()| self.file.sync_data())
            .is_err()
        {
            self.poisoned = true;
        }
    }

    /// Appends the torn bytes to `<log>.torn` (durably) before cutting them
    /// from the log, so a crash in between duplicates them in `.torn` at
    /// worst, and never loses them.
    fn move_torn_aside(&mut self, torn: &[u8]) -> Result<Recovered, AuditError> {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".torn");
        let torn_path = PathBuf::from(name);
        let io = |e| AuditError::io(&torn_path, e);
        let (mut aside, created) = open_private(&torn_path).map_err(io)?;
        aside.write_all(torn).map_err(io)?;
        aside.sync_all().map_err(io)?;
        if created {
            sync_parent(&torn_path).map_err(io)?;
        }
        self.file
            .set_len(self.len)
            .and_then(|()| self.file.sync_all())
            .map_err(|e| AuditError::io(&self.path, e))?;
        Ok(Recovered {
            torn_bytes: torn.len(),
            torn_path,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `(seq, hash)` of the last record written; `(0, 64 zeros)` when empty.
    pub fn head(&self) -> (u64, String) {
        let (seq, hash) = self.chain.head();
        (seq, hash.to_owned())
    }
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    // Make the new directory entry itself durable.
    sync_parent(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

/// Opens for append, creating 0600; tells whether it was created.
fn open_private(path: &Path) -> std::io::Result<(File, bool)> {
    let mut opts = OpenOptions::new();
    opts.read(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    match opts.clone().create_new(true).open(path) {
        Ok(f) => Ok((f, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((opts.open(path)?, false)),
        Err(e) => Err(e),
    }
}

#[cfg(unix)]
fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => File::open(dir)?.sync_all(),
        None => File::open(".")?.sync_all(),
    }
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn append_then_verify_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/audit.jsonl");
        let (mut log, report) = Log::open(&path).unwrap();
        assert!(report.created);
        for i in 0..10 {
            let a = log.append(ev(json!({"event":"decision","i":i}))).unwrap();
            assert_eq!(a.seq, i + 1);
            assert_eq!(log.head(), (a.seq, a.hash));
        }
        let head = log.head();
        drop(log);
        let summary = crate::audit::verify_file(&path).unwrap();
        assert_eq!((summary.records, summary.head_hash), (10, head.1.clone()));
        let (log, report) = Log::open(&path).unwrap();
        assert_eq!(report.records, 10);
        assert_eq!(report.tampered, None);
        assert_eq!(log.head(), head);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn second_open_is_refused_while_locked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let _first = Log::open(&path).unwrap();
        assert!(matches!(Log::open(&path), Err(AuditError::Locked { .. })));
    }

    #[test]
    fn io_error_is_returned() {
        let dir = tempfile::tempdir().unwrap();
        // The parent "directory" is a file: creation must fail, not panic.
        let blocker = dir.path().join("file");
        fs::write(&blocker, b"x").unwrap();
        assert!(matches!(
            Log::open(&blocker.join("audit.jsonl")),
            Err(AuditError::Io { .. })
        ));
    }
}
