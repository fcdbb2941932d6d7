//! Syslog framing of audit records, sans-IO: RFC 5424 messages in RFC 5425
//! octet-counted frames, the form the hospital's collector receives over TLS
//! (T12: a copy of the trace outside the workstation).
//!
//! Choices, fixed here so that collector rules can rely on them:
//! - facility `authpriv` (10), severity `notice` (5), so PRI is `<85>`:
//!   consent and access decisions are authorisation records, and stock
//!   syslog configurations file `authpriv` in a root-only file, which suits
//!   records naming people;
//! - APP-NAME `accord`, PROCID the agent's pid, MSGID the record's `seq`;
//! - TIMESTAMP is the record's own `ts` (the event time, not the sending
//!   time, which may be much later after an outage);
//! - one SD-ELEMENT `[accord@32473 seq="…" hash="…" event="…"]` so a
//!   collector can deduplicate (at-least-once delivery) and filter without
//!   parsing JSON. 32473 is the documentation PEN of RFC 5612; a deployment
//!   that needs its own registers one and changes [`SD_ID`];
//! - MSG is the JSON line exactly as in the log, without a BOM, so the
//!   collector's copy can be hash-checked byte for byte.

use serde::Deserialize;

use super::chain::{seq_prefix, split_hash};

/// PRI for authpriv.notice: 10 * 8 + 5.
pub const PRI: u8 = 85;
pub const APP_NAME: &str = "accord";
pub const SD_ID: &str = "accord@32473";

/// Escapes an SD-PARAM value (RFC 5424 §6.3.3): `"`, `\` and `]` get a
/// backslash; nothing else may be escaped.
pub fn escape_param(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A header field: 1..=`max` printable US-ASCII characters, or the nil
/// value `-`. Anything else is replaced rather than sent malformed, as a
/// collector may drop a non-conforming message.
fn header_field(value: &str, max: usize) -> String {
    let cleaned: String = value
        .chars()
        .map(|c| if ('!'..='~').contains(&c) { c } else { '_' })
        .take(max)
        .collect();
    if cleaned.is_empty() {
        "-".to_owned()
    } else {
        cleaned
    }
}

#[derive(Deserialize)]
struct EventOnly<'a> {
    #[serde(borrow)]
    event: Option<std::borrow::Cow<'a, str>>,
}

/// Builds the RFC 5424 message for one record line (without its `\n`).
pub fn rfc5424(record_line: &str, seq: u64, hostname: &str, ts: &str, pid: u32) -> String {
    let mut sd = format!("[{SD_ID} seq=\"{seq}\"");
    if let Some((_, hash)) = split_hash(record_line.as_bytes()) {
        sd.push_str(" hash=\"");
        sd.push_str(&escape_param(hash));
        sd.push('"');
    }
    if let Ok(EventOnly { event: Some(event) }) = serde_json::from_str(record_line) {
        sd.push_str(" event=\"");
        sd.push_str(&escape_param(&event));
        sd.push('"');
    }
    sd.push(']');
    format!(
        "<{PRI}>1 {} {} {APP_NAME} {pid} {seq} {sd} {record_line}",
        header_field(ts, 64),
        header_field(hostname, 255),
    )
}

/// RFC 5425 §4.3 framing: `MSG-LEN SP SYSLOG-MSG`, the length counted in
/// octets of the UTF-8 encoding (not characters).
pub fn octet_frame(msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.len() + 8);
    out.extend_from_slice(msg.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(msg.as_bytes());
    out
}

#[derive(Deserialize)]
struct TsOnly<'a> {
    #[serde(borrow)]
    ts: Option<std::borrow::Cow<'a, str>>,
}

/// The frame for a log line as the forwarder sends it, with its `seq`;
/// `None` for a line that has no readable `seq` or is not UTF-8 (only a
/// damaged line, which `verify` reports).
pub fn frame_record(line: &[u8], hostname: &str, pid: u32) -> Option<(u64, Vec<u8>)> {
    let seq = seq_prefix(line)?;
    let text = std::str::from_utf8(line).ok()?;
    let ts = serde_json::from_str::<TsOnly<'_>>(text)
        .ok()
        .and_then(|t| t.ts)
        .unwrap_or_default();
    Some((seq, octet_frame(&rfc5424(text, seq, hostname, &ts, pid))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(escape_param(r#"a"b\c]d[e"#), r#"a\"b\\c\]d[e"#);
        assert_eq!(header_field("", 10), "-");
        assert_eq!(header_field("poste 12é", 255), "poste_12_");
    }

    #[test]
    fn octet_length_is_bytes() {
        assert_eq!(octet_frame("é"), b"2 \xc3\xa9".to_vec());
    }
}
