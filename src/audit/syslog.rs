//! Syslog framing of audit records, sans-IO: RFC 5424 messages in RFC 5425
//! octet-counted frames, the form the hospital's collector receives over TLS
//! (T12: a copy of the trace outside the workstation).
//!
//! Choices, fixed here so that collector rules can rely on them:
//! - facility `authpriv` (10): consent and access decisions are
//!   authorisation records, and stock syslog configurations file `authpriv`
//!   in a root-only file, which suits records naming people; severity by
//!   event ([`severity`]): tampering detected is `alert`, a recovered log or
//!   a reset forwarding cursor `warning`, the agent starting or stopping
//!   `info`, every decision, refusal and session `notice`;
//! - APP-NAME `accord`, PROCID the agent's pid, MSGID the event name
//!   (`decision`, `session_ended`, …) so that SIEM rules select on it;
//! - TIMESTAMP is the record's own `ts` (the event time, not the sending
//!   time, which may be much later after an outage);
//! - one SD-ELEMENT `[accord@32473 seq="…" hash="…" event="…"]` so a
//!   collector can deduplicate (at-least-once delivery, by `seq` + `hash`)
//!   and filter without parsing JSON. 32473 is the documentation PEN of
//!   RFC 5612, the default of `[audit] sd_id`: a hospital sets its own
//!   registered enterprise number there;
//! - MSG is the JSON line exactly as in the log, without a BOM, so the
//!   collector's copy can be hash-checked byte for byte.

use serde::Deserialize;

use super::chain::{seq_prefix, split_hash};

/// Facility authpriv (RFC 5424 §6.2.1).
pub const FACILITY: u8 = 10;
pub const APP_NAME: &str = "accord";
/// Default SD-ID (the documentation enterprise number of RFC 5612).
pub const SD_ID: &str = crate::policy::DEFAULT_SD_ID;

/// RFC 5424 severity of an audit event.
pub fn severity(event: &str) -> u8 {
    match event {
        "audit_tampering_detected" => 1,               // alert
        "log_recovered" | "forward_cursor_reset" => 4, // warning
        "agent_started" | "agent_stopped" => 6,        // informational
        _ => 5,                                        // notice: decisions, refusals, sessions
    }
}

/// Where a message comes from: the header fields that are not in the record.
#[derive(Clone, Copy, Debug)]
pub struct Origin<'a> {
    pub hostname: &'a str,
    pub pid: u32,
    /// The SD-ID (`[audit] sd_id`), already validated.
    pub sd_id: &'a str,
}

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
pub fn rfc5424(record_line: &str, seq: u64, ts: &str, origin: &Origin<'_>) -> String {
    let mut sd = format!("[{} seq=\"{seq}\"", origin.sd_id);
    if let Some((_, hash)) = split_hash(record_line.as_bytes()) {
        sd.push_str(" hash=\"");
        sd.push_str(&escape_param(hash));
        sd.push('"');
    }
    let event = match serde_json::from_str(record_line) {
        Ok(EventOnly { event: Some(event) }) => {
            sd.push_str(" event=\"");
            sd.push_str(&escape_param(&event));
            sd.push('"');
            Some(event)
        }
        _ => None,
    };
    sd.push(']');
    let pri = FACILITY * 8 + severity(event.as_deref().unwrap_or_default());
    format!(
        "<{pri}>1 {} {} {APP_NAME} {} {} {sd} {record_line}",
        header_field(ts, 64),
        header_field(origin.hostname, 255),
        origin.pid,
        header_field(event.as_deref().unwrap_or_default(), 32),
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
pub fn frame_record(line: &[u8], origin: &Origin<'_>) -> Option<(u64, Vec<u8>)> {
    let seq = seq_prefix(line)?;
    let text = std::str::from_utf8(line).ok()?;
    let ts = serde_json::from_str::<TsOnly<'_>>(text)
        .ok()
        .and_then(|t| t.ts)
        .unwrap_or_default();
    Some((seq, octet_frame(&rfc5424(text, seq, &ts, origin))))
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
