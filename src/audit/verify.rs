//! Verification of a whole log file (`accord log verify`, and the check
//! [`super::Log::open`] runs before it appends anything).
//!
//! The file is read once, as a stream, through [`Verifier`]. After the first
//! fault the rest is still read, cheaply and textually, for two reasons: an
//! ordering fault is classified by what comes after it (is the expected
//! record further down? does the next record link past this one?), and the
//! writer needs the actual last line to chain after it.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use super::chain::{
    ChainError, Fault, OutOfChain, Verifier, Why, prev_suffix, seq_prefix, split_hash,
};
use sha2::{Digest, Sha256};

/// What a good log holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifySummary {
    pub records: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub bytes: u64,
}

/// A complete line read after the first fault, kept only as far as the
/// classification needs it.
struct Pending {
    line: usize,
    fault: OutOfChain,
    own_hash: Option<String>,
    last_good_hash: String,
    next_links_back: Option<bool>,
    expected_found_later: bool,
    linked_later: bool,
}

/// Everything one pass over the file learns.
#[derive(Debug, Clone)]
pub(crate) struct Scan {
    /// Verified records before the first fault (all of them if none).
    pub verified: u64,
    pub head_seq: u64,
    pub head_hash: String,
    pub error: Option<ChainError>,
    /// Bytes up to and including the last `\n`, and how many lines that is.
    pub complete_len: u64,
    pub lines: u64,
    /// Bytes after the last `\n`, if any (a torn write).
    pub torn: Option<Vec<u8>>,
    /// `(seq, hash)` to chain after, taken from the last complete line as
    /// it actually is: its `seq` is the highest any line claims (so no seq
    /// is ever reused), its hash is its `hash` member, or the SHA-256 of the
    /// whole line if that member is unreadable.
    pub actual_head: (u64, String),
    /// An `audit_tampering_detected` record after the fault already names
    /// it, so reopening the log does not record the same break again.
    pub fault_on_record: bool,
}

pub(crate) fn scan(reader: impl BufRead) -> Result<Scan, std::io::Error> {
    let mut reader = reader;
    let mut verifier = Verifier::new();
    let mut buf = Vec::with_capacity(1024);
    let mut line_no = 0usize;
    let mut complete_len = 0u64;
    let mut torn = None;
    let mut error: Option<ChainError> = None;
    let mut pending: Option<Pending> = None;
    let mut verified = 0u64;
    let mut max_seq = 0u64;
    let mut last_hash = super::GENESIS_PREV.to_owned();
    let mut fault_on_record = false;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            break;
        }
        line_no += 1;
        let Some(line) = buf.strip_suffix(b"\n") else {
            if error.is_none() {
                error = Some(ChainError {
                    seq: Some(verifier.head().0 + 1),
                    line: line_no,
                    why: Why::Torn { bytes: n },
                });
            }
            torn = Some(buf.clone());
            break;
        };
        complete_len += n as u64;
        let claimed = seq_prefix(line);
        let split = split_hash(line);
        if let Some(s) = claimed {
            max_seq = max_seq.max(s);
        }
        last_hash = match split {
            Some((_, h)) => h.to_owned(),
            None => hex::encode(Sha256::digest(line)),
        };
        if error.is_none() {
            match verifier.check(line) {
                Ok(_) => verified += 1,
                Err(Fault::Content(why)) => {
                    error = Some(ChainError {
                        seq: Some(verifier.head().0 + 1),
                        line: line_no,
                        why,
                    });
                }
                Err(Fault::Order(fault)) => {
                    error = Some(ChainError {
                        seq: Some(fault.found),
                        line: line_no,
                        why: Why::BrokenLink, // refined at the end
                    });
                    pending = Some(Pending {
                        line: line_no,
                        own_hash: split.map(|(_, h)| h.to_owned()),
                        last_good_hash: verifier.head().1.to_owned(),
                        fault,
                        next_links_back: None,
                        expected_found_later: false,
                        linked_later: false,
                    });
                }
            }
            continue;
        }
        // After the fault: textual look-ahead only.
        let prev = split.and_then(|(body, _)| prev_suffix(body));
        if let Some(p) = pending.as_mut() {
            if p.next_links_back.is_none() {
                p.next_links_back = Some(
                    claimed == Some(p.fault.expected) && prev == Some(p.last_good_hash.as_str()),
                );
            }
            if claimed == Some(p.fault.expected) {
                p.expected_found_later = true;
            }
            if prev.is_some() && prev == p.own_hash.as_deref() {
                p.linked_later = true;
            }
        }
        if let Some(err) = &error
            && !fault_on_record
            && contains(line, b"audit_tampering_detected")
            && let Ok(v) = serde_json::from_slice::<serde_json::Value>(line)
        {
            fault_on_record = v.get("event").and_then(|e| e.as_str())
                == Some("audit_tampering_detected")
                && v.get("bad_line").and_then(|l| l.as_u64()) == Some(err.line as u64)
                && v.get("bad_seq").and_then(|s| s.as_u64()) == err.seq;
        }
    }
    if let (Some(p), Some(err)) = (pending, error.as_mut()) {
        err.why = classify(&p);
        err.line = p.line;
    }
    let (head_seq, head_hash) = verifier.head();
    let actual_head = if error.is_some() {
        (max_seq.max(head_seq), last_hash)
    } else {
        (head_seq, head_hash.to_owned())
    };
    Ok(Scan {
        verified,
        head_seq,
        head_hash: head_hash.to_owned(),
        error,
        complete_len,
        lines: line_no as u64 - u64::from(torn.is_some()),
        torn,
        actual_head,
        fault_on_record,
    })
}

/// Tells deletion, reordering and insertion apart from what follows the
/// first record that is out of chain.
fn classify(p: &Pending) -> Why {
    let OutOfChain {
        expected, found, ..
    } = p.fault;
    // The next record links to the last good one with the expected seq, and
    // nothing links to this one: this one is an extra.
    if p.next_links_back == Some(true) && !p.linked_later {
        return Why::Inserted { expected };
    }
    if found > expected {
        if p.expected_found_later {
            Why::Reordered { expected }
        } else {
            Why::Deleted {
                expected,
                missing: found - expected,
            }
        }
    } else if found < expected {
        // That seq was already verified earlier: one of the two is extra.
        Why::Inserted { expected }
    } else {
        Why::BrokenLink
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks the whole chain of the log at `path`: `Ok` with a summary, or the
/// first record that breaks it. A file that cannot be read is reported as a
/// [`Why::Unreadable`] at line 0 so that the caller has one error to print.
pub fn verify_file(path: impl AsRef<Path>) -> Result<VerifySummary, ChainError> {
    let unreadable = |e: std::io::Error| ChainError {
        seq: None,
        line: 0,
        why: Why::Unreadable(format!("{}: {e}", path.as_ref().display())),
    };
    let file = File::open(path.as_ref()).map_err(unreadable)?;
    let scan = scan(BufReader::with_capacity(1 << 20, file)).map_err(unreadable)?;
    summary(scan)
}

/// [`verify_file`] over bytes already in memory, e.g. the lines a
/// collector received, to check its copy against the same rules.
pub fn verify_bytes(bytes: &[u8]) -> Result<VerifySummary, ChainError> {
    let scan = scan(bytes).map_err(|e| ChainError {
        seq: None,
        line: 0,
        why: Why::Unreadable(e.to_string()),
    })?;
    summary(scan)
}

fn summary(scan: Scan) -> Result<VerifySummary, ChainError> {
    match scan.error {
        Some(e) => Err(e),
        None => Ok(VerifySummary {
            records: scan.verified,
            head_seq: scan.head_seq,
            head_hash: scan.head_hash,
            bytes: scan.complete_len,
        }),
    }
}
