//! The sans-IO core of the hash chain: turn an event's fields into the exact
//! line to write, and check a line read back. No file, no clock (the time is
//! passed in), so both halves are unit-testable and shared by the writer
//! ([`super::Log`]), the verifier and the forwarder.
//!
//! Line format (one JSON object, no newline inside):
//! `{"seq":N,"ts":"…Z","event":"…",<other fields>,"prev":"<64 hex>","hash":"<64 hex>"}`.
//! `hash` is the SHA-256 of the exact bytes of the line without its
//! `,"hash":"…"` member; the written line is those bytes with the member
//! spliced in before the final `}`. Verification therefore strips that member
//! textually and hashes the bytes found in the file: a re-serialisation of the
//! parsed JSON could hide an edit (key order, escapes, number spelling).
//!
//! Key order: `seq`, `ts`, `event`, then the caller's other fields in the
//! iteration order of `serde_json::Map` (sorted by key, as this crate builds
//! serde_json without `preserve_order`), then `prev` and `hash`. `event` is
//! placed third so that a person reading the raw file sees what each line is.

use std::fmt;

use serde::de::IgnoredAny;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::macros::format_description;

use super::AuditError;

/// `prev` of the first record: there is nothing before it.
pub const GENESIS_PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Fields the log sets itself; a caller giving them would forge the chain.
const RESERVED: [&str; 4] = ["seq", "ts", "prev", "hash"];

const HASH_MEMBER_OPEN: &[u8] = b",\"hash\":\"";
/// `,"hash":"` + 64 hex + `"}`.
const HASH_SUFFIX_LEN: usize = HASH_MEMBER_OPEN.len() + 64 + 2;
const PREV_MEMBER_OPEN: &[u8] = b",\"prev\":\"";
const SEQ_OPEN: &[u8] = b"{\"seq\":";

/// RFC 3339, UTC, milliseconds, `Z`: fixed width so that lines sort and
/// compare as text, and what collectors parse without configuration.
pub fn format_ts(ts: OffsetDateTime) -> String {
    let fmt =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    let utc = ts.to_offset(time::UtcOffset::UTC);
    // Formatting a valid date with a fixed description only fails for years
    // outside 0..=9999, which the system clock does not produce; fall back to
    // the epoch rather than panic inside the audit path.
    utc.format(&fmt)
        .unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".to_owned())
}

/// One sealed record, ready to be written (without its `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub seq: u64,
    pub hash: String,
    pub text: String,
}

/// The writer's side of the chain: what the next record's `seq` and `prev`
/// are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    next_seq: u64,
    prev: String,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    /// An empty log: the first record gets `seq` 1 and `prev` [`GENESIS_PREV`].
    pub fn new() -> Self {
        Chain {
            next_seq: 1,
            prev: GENESIS_PREV.to_owned(),
        }
    }

    /// Continue after a record `last_seq` whose hash is `last_hash`.
    pub fn resume(last_seq: u64, last_hash: &str) -> Self {
        Chain {
            next_seq: last_seq.saturating_add(1),
            prev: last_hash.to_owned(),
        }
    }

    /// `(seq, hash)` of the last record; `(0, GENESIS_PREV)` when empty.
    pub fn head(&self) -> (u64, &str) {
        (self.next_seq - 1, &self.prev)
    }

    /// Seals `fields` as the next record at time `ts` and advances the chain.
    /// Callers that must only advance once the line is durable work on a
    /// clone and keep it on success.
    pub fn append(
        &mut self,
        fields: &Map<String, Value>,
        ts: OffsetDateTime,
    ) -> Result<Line, AuditError> {
        for key in RESERVED {
            if fields.contains_key(key) {
                return Err(AuditError::ReservedField(key.to_owned()));
            }
        }
        let event = match fields.get("event") {
            Some(Value::String(e)) => e,
            _ => return Err(AuditError::MissingEvent),
        };
        let seq = self.next_seq;
        let mut text = String::with_capacity(320);
        text.push_str("{\"seq\":");
        text.push_str(&seq.to_string());
        text.push_str(",\"ts\":\"");
        text.push_str(&format_ts(ts));
        text.push_str("\",\"event\":");
        text.push_str(&serde_json::to_string(event)?);
        for (key, value) in fields {
            if key == "event" {
                continue;
            }
            text.push(',');
            text.push_str(&serde_json::to_string(key)?);
            text.push(':');
            text.push_str(&serde_json::to_string(value)?);
        }
        text.push_str(",\"prev\":\"");
        text.push_str(&self.prev);
        text.push_str("\"}");
        let hash = hex::encode(Sha256::digest(text.as_bytes()));
        text.pop();
        text.push_str(",\"hash\":\"");
        text.push_str(&hash);
        text.push_str("\"}");
        self.next_seq = seq + 1;
        self.prev.clone_from(&hash);
        Ok(Line { seq, hash, text })
    }
}

/// Why a record fails verification. Ordering faults are told apart by
/// looking at the lines after the fault (see [`super::verify`]); "as well as
/// can be told" because a chain without a secret cannot say which of two
/// conflicting records is the genuine one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// The bytes do not hash to the record's `hash` (or the `hash` member
    /// itself is damaged): the record was changed after it was written.
    Edited,
    /// The line is not a JSON object.
    NotJson,
    /// The hash matches but a required member is missing or of the wrong
    /// type: a line written by something other than Accord.
    Malformed(&'static str),
    /// The last line has no newline: a write cut short by a crash.
    Torn { bytes: usize },
    /// `seq` jumps forward and the missing records appear nowhere later.
    Deleted { expected: u64, missing: u64 },
    /// `seq` is not the expected one, and the expected record appears later:
    /// records were moved.
    Reordered { expected: u64 },
    /// An extra record sits in the chain: either a record whose successor
    /// links past it, or a `seq` that was already used.
    Inserted { expected: u64 },
    /// `seq` is right but `prev` is not the hash of the record before: the
    /// record before was replaced by one with a valid hash of its own, or this
    /// one was forged.
    BrokenLink,
    /// The file could not be read.
    Unreadable(String),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Edited => f.write_str("hash does not match its content (edited)"),
            Why::NotJson => f.write_str("not a JSON record (edited)"),
            Why::Malformed(what) => write!(f, "hash matches but {what} (not written by Accord)"),
            Why::Torn { bytes } => write!(
                f,
                "last line has no newline: {bytes} bytes of a write cut short (torn)"
            ),
            Why::Deleted { expected, missing } => write!(
                f,
                "seq {expected} expected: {missing} record(s) deleted before this one"
            ),
            Why::Reordered { expected } => write!(
                f,
                "seq {expected} expected here but found later in the file (reordered)"
            ),
            Why::Inserted { expected } => write!(
                f,
                "seq {expected} expected: an extra record was inserted at or just before this one"
            ),
            Why::BrokenLink => f.write_str(
                "prev does not match the hash of the record before (that record was replaced, or this one forged)",
            ),
            Why::Unreadable(e) => write!(f, "cannot read the log: {e}"),
        }
    }
}

/// The first record that breaks the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ChainError {
    /// For content faults (edited, not JSON, malformed, torn): the `seq` the
    /// record at that position must have, since its own bytes cannot be
    /// trusted. For ordering faults: the `seq` the record carries.
    pub seq: Option<u64>,
    /// 1-based line number in the file; a record's line includes its `\n`.
    pub line: usize,
    pub why: Why,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "record seq {seq} (line {}): {}", self.line, self.why),
            None => write!(f, "line {}: {}", self.line, self.why),
        }
    }
}

/// What the verifier learnt from a good line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked<'a> {
    pub seq: u64,
    pub hash: &'a str,
}

/// A line that hashes correctly but is not the expected next link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutOfChain {
    pub expected: u64,
    pub found: u64,
    pub prev_ok: bool,
}

/// Why [`Verifier::check`] rejected a line, before any look-ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Content(Why),
    Order(OutOfChain),
}

/// The reader's side of the chain: feed it the lines in file order.
#[derive(Debug, Clone)]
pub struct Verifier {
    chain: Chain,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    pub fn new() -> Self {
        Verifier {
            chain: Chain::new(),
        }
    }

    /// `(seq, hash)` of the last good record.
    pub fn head(&self) -> (u64, &str) {
        self.chain.head()
    }

    /// Checks one line (without its `\n`) and, if good, makes it the head.
    pub fn check<'a>(&mut self, line: &'a [u8]) -> Result<Checked<'a>, Fault> {
        let Some((body, hash)) = split_hash(line) else {
            // No well-formed hash member at the end: a damaged hash if the
            // rest still parses, otherwise the line is just not a record.
            return Err(Fault::Content(
                if serde_json::from_slice::<IgnoredAny>(line).is_ok() {
                    Why::Edited
                } else {
                    Why::NotJson
                },
            ));
        };
        let mut hasher = Sha256::new();
        hasher.update(body);
        hasher.update(b"}");
        let mut actual = [0u8; 64];
        // Encoding 32 bytes into 64 always fits.
        if hex::encode_to_slice(hasher.finalize(), &mut actual).is_err()
            || actual != hash.as_bytes()
        {
            return Err(Fault::Content(Why::Edited));
        }
        // Layout written by `Chain::append`: `{"seq":N,"ts":"<24>","event":"`
        // … `,"prev":"<64 hex>"` then the hash member.
        let Some(seq) = seq_prefix(line) else {
            return Err(Fault::Content(Why::Malformed(
                "it does not start with its seq",
            )));
        };
        if !ts_event_follow(line) {
            return Err(Fault::Content(Why::Malformed(
                "ts and event do not follow seq",
            )));
        }
        let Some(prev) = prev_suffix(body).filter(|p| is_hex64(p.as_bytes())) else {
            return Err(Fault::Content(Why::Malformed(
                "prev is not the last member before hash",
            )));
        };
        // The values that count (seq, ts, event, prev, hash) are read
        // textually from the fixed layout above; serde only checks that the
        // whole line is JSON, skipping values without building them. A
        // derived struct would also reject duplicated members but doubles
        // the cost of verification; a duplicate can only come from a forger
        // who controls the whole line anyway, and the chain is judged on the
        // textual values.
        if serde_json::from_slice::<IgnoredAny>(line).is_err() {
            return Err(Fault::Content(Why::NotJson));
        }
        let (last_seq, last_hash) = self.chain.head();
        let expected = last_seq + 1;
        let prev_ok = prev == last_hash;
        if seq != expected || !prev_ok {
            return Err(Fault::Order(OutOfChain {
                expected,
                found: seq,
                prev_ok,
            }));
        }
        self.chain.next_seq = seq + 1;
        self.chain.prev.clear();
        self.chain.prev.push_str(hash);
        Ok(Checked { seq, hash })
    }
}

/// Splits a line into the bytes before its `,"hash":"…"}` member (without
/// the final `}`) and the hash, if it ends with a well-formed one.
pub fn split_hash(line: &[u8]) -> Option<(&[u8], &str)> {
    let cut = line.len().checked_sub(HASH_SUFFIX_LEN)?;
    let (body, suffix) = line.split_at(cut);
    let hex = suffix
        .strip_prefix(HASH_MEMBER_OPEN)?
        .strip_suffix(b"\"}")?;
    if is_hex64(hex) {
        std::str::from_utf8(hex).ok().map(|h| (body, h))
    } else {
        None
    }
}

fn is_hex64(s: &[u8]) -> bool {
    s.len() == 64 && s.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// After `{"seq":N`: `,"ts":"` + 24 characters + `","event":"`.
fn ts_event_follow(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(SEQ_OPEN) else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    rest.get(digits..)
        .and_then(|r| r.strip_prefix(b",\"ts\":\""))
        .and_then(|r| r.get(24..))
        .is_some_and(|r| r.starts_with(b"\",\"event\":\""))
}

/// The `seq` a line claims, read textually from its `{"seq":N,` prefix.
pub fn seq_prefix(line: &[u8]) -> Option<u64> {
    let rest = line.strip_prefix(SEQ_OPEN)?;
    let end = rest.iter().position(|b| !b.is_ascii_digit())?;
    if end == 0 || rest.get(end) != Some(&b',') {
        return None;
    }
    std::str::from_utf8(rest.get(..end)?).ok()?.parse().ok()
}

/// The `prev` a body (line without hash member and final `}`) ends with.
pub fn prev_suffix(body: &[u8]) -> Option<&str> {
    let cut = body.len().checked_sub(PREV_MEMBER_OPEN.len() + 64 + 1)?;
    let tail = body.get(cut..)?;
    let hex = tail.strip_prefix(PREV_MEMBER_OPEN)?.strip_suffix(b"\"")?;
    std::str::from_utf8(hex).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn ts() -> OffsetDateTime {
        time::macros::datetime!(2026-11-27 10:15:02.113456 UTC)
    }

    #[test]
    fn round_trip() {
        let mut chain = Chain::new();
        let mut verifier = Verifier::new();
        for i in 0..5 {
            let line = chain
                .append(
                    &fields(json!({"event":"decision","n":i,"reason":"Imprimante \"bloquée\"\n"})),
                    ts(),
                )
                .unwrap();
            let ok = verifier.check(line.text.as_bytes()).unwrap();
            assert_eq!((ok.seq, ok.hash), (line.seq, line.hash.as_str()));
        }
        assert_eq!(verifier.head(), chain.head());
        assert_eq!(chain.head().0, 5);
    }

    #[test]
    fn layout_and_ts_format() {
        let mut chain = Chain::new();
        let line = chain
            .append(
                &fields(json!({"event":"agent_started","version":"0.1.0"})),
                ts(),
            )
            .unwrap();
        assert!(line.text.starts_with(r#"{"seq":1,"ts":"2026-11-27T10:15:02.113Z","event":"agent_started","version":"0.1.0","prev":"0000"#));
        assert!(
            line.text
                .ends_with(&format!(",\"hash\":\"{}\"}}", line.hash))
        );
        let body = line
            .text
            .replace(&format!(",\"hash\":\"{}\"", line.hash), "");
        assert_eq!(line.hash, hex::encode(Sha256::digest(body.as_bytes())));
        // Offsets other than UTC are converted, never kept.
        let paris = ts().to_offset(time::macros::offset!(+1));
        assert_eq!(format_ts(paris), "2026-11-27T10:15:02.113Z");
    }

    #[test]
    fn reserved_and_missing_event_rejected() {
        let mut chain = Chain::new();
        assert!(matches!(
            chain.append(&fields(json!({"event":"x","prev":"y"})), ts()),
            Err(AuditError::ReservedField(k)) if k == "prev"
        ));
        assert!(matches!(
            chain.append(&fields(json!({"e":1})), ts()),
            Err(AuditError::MissingEvent)
        ));
        assert_eq!(chain, Chain::new());
    }

    #[test]
    fn hash_covers_exact_bytes_not_the_json_meaning() {
        let mut chain = Chain::new();
        let line = chain
            .append(
                &fields(json!({"event":"decision","asked":"control","by":"user"})),
                ts(),
            )
            .unwrap();
        // Same members, same values, same hash member, other order: equal
        // as JSON, different as bytes. It must fail.
        let reordered = line.text.replace(
            r#""asked":"control","by":"user""#,
            r#""by":"user","asked":"control""#,
        );
        assert_ne!(reordered, line.text);
        let a: Value = serde_json::from_str(&reordered).unwrap();
        let b: Value = serde_json::from_str(&line.text).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            Verifier::new().check(reordered.as_bytes()),
            Err(Fault::Content(Why::Edited))
        );
        // An escape that means the same character is an edit too.
        let escaped = line.text.replace("user", "\\u0075ser");
        assert_eq!(
            Verifier::new().check(escaped.as_bytes()),
            Err(Fault::Content(Why::Edited))
        );
        assert!(Verifier::new().check(line.text.as_bytes()).is_ok());
    }

    #[test]
    fn order_faults_are_reported_before_lookahead() {
        let mut chain = Chain::new();
        let a = chain.append(&fields(json!({"event":"a"})), ts()).unwrap();
        let b = chain.append(&fields(json!({"event":"b"})), ts()).unwrap();
        let mut v = Verifier::new();
        assert_eq!(
            v.check(b.text.as_bytes()),
            Err(Fault::Order(OutOfChain {
                expected: 1,
                found: 2,
                prev_ok: false
            }))
        );
        v.check(a.text.as_bytes()).unwrap();
        v.check(b.text.as_bytes()).unwrap();
    }

    #[test]
    fn textual_helpers() {
        assert_eq!(seq_prefix(br#"{"seq":42,"ts":"x"}"#), Some(42));
        assert_eq!(seq_prefix(br#"{"seq":,"ts":"x"}"#), None);
        assert_eq!(seq_prefix(br#"{"ts":"x","seq":1}"#), None);
        assert_eq!(split_hash(b"{}"), None);
    }
}
