//! `accord log show`: the log read back for people (E3: the trace must be
//! usable by whoever audits the interventions, not only by tools).
//!
//! One row per request, joined with its session by the `session` id: when,
//! who (the certificate CN, never a name the technician typed), ticket, what
//! was asked, what was decided, how long the session lasted and how it
//! ended; plus one row per rejected request and per audit incident (torn
//! tail recovered, tampering detected). `--json` prints the same rows as one
//! JSON object per line. This module does not verify: `log verify` does, and
//! showing a log is still useful when it fails.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::AuditError;

/// Every complete line of the log, parsed. A torn last line (no `\n`) is
/// not a record and is skipped; a complete line that is not JSON is an
/// error naming it.
pub fn read_records(path: impl AsRef<Path>) -> Result<Vec<Value>, AuditError> {
    let path = path.as_ref();
    let file = File::open(path).map_err(|e| AuditError::io(path, e))?;
    let mut records = Vec::new();
    for (i, line) in CompleteLines::new(BufReader::new(file)).enumerate() {
        let line = line.map_err(|e| AuditError::io(path, e))?;
        let value = serde_json::from_slice(&line).map_err(|_| AuditError::NotJson {
            path: path.to_path_buf(),
            line: i + 1,
        })?;
        records.push(value);
    }
    Ok(records)
}

/// The complete lines of a log, without their `\n`. A last line without
/// one is torn (a write cut short by a crash, or one still in progress
/// while another process reads) and is not a record: iteration ends there.
pub(crate) struct CompleteLines<R> {
    reader: R,
}

impl<R: BufRead> CompleteLines<R> {
    pub(crate) fn new(reader: R) -> Self {
        CompleteLines { reader }
    }
}

impl<R: BufRead> Iterator for CompleteLines<R> {
    type Item = io::Result<Vec<u8>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut buf = Vec::new();
        match self.reader.read_until(b'\n', &mut buf) {
            Ok(0) => None,
            Ok(_) => buf.pop().filter(|&b| b == b'\n').map(|_| Ok(buf)),
            Err(e) => Some(Err(e)),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct Row {
    kind: &'static str,
    when: String,
    session: Option<String>,
    subject: Option<String>,
    peer: Option<String>,
    ticket: Option<String>,
    reason: Option<String>,
    asked: Option<String>,
    decision: Option<String>,
    mode: Option<String>,
    why: Option<String>,
    detail: Option<String>,
    modes: Vec<String>,
    started: Option<String>,
    ended_at: Option<String>,
    ended: Option<String>,
}

/// A field as text: strings as they are, other values as JSON, `null` and
/// absent as `None`.
pub(crate) fn text(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

pub(crate) fn parse_ts(ts: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(ts, &Rfc3339).ok()
}

/// The value of attribute `key` (`CN`, `O`…) in an RFC 4514 subject,
/// honouring `\,` escapes.
pub(crate) fn subject_attribute(subject: &str, key: &str) -> Option<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in subject.chars() {
        match (escaped, c) {
            (true, _) => {
                cur.push(c);
                escaped = false;
            }
            (false, '\\') => escaped = true,
            (false, ',') => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    parts.iter().find_map(|p| {
        p.trim()
            .strip_prefix(key)
            .and_then(|v| v.strip_prefix('='))
            .map(str::to_owned)
    })
}

/// The CN of an RFC 4514 subject; the whole subject if it has none.
pub(crate) fn common_name(subject: &str) -> String {
    subject_attribute(subject, "CN").unwrap_or_else(|| subject.to_owned())
}

impl Row {
    fn duration_s(&self) -> Option<i64> {
        let start = parse_ts(self.started.as_deref().unwrap_or(&self.when))?;
        let end = parse_ts(self.ended_at.as_deref()?)?;
        Some((end - start).whole_seconds())
    }

    fn who(&self) -> String {
        match (&self.subject, &self.peer) {
            (Some(s), _) => common_name(s),
            (None, Some(p)) => p.clone(),
            (None, None) => String::new(),
        }
    }

    fn decided(&self) -> String {
        match self.kind {
            "rejected" => format!("rejected: {}", self.why.as_deref().unwrap_or("?")),
            "audit" => self.decision.clone().unwrap_or_default(),
            _ => match self.decision.as_deref() {
                Some("accepted") => {
                    let mut s = format!("accepted {}", self.mode.as_deref().unwrap_or("?"));
                    for m in &self.modes {
                        s.push_str(" → ");
                        s.push_str(m);
                    }
                    s
                }
                Some("refused") => format!("refused ({})", self.why.as_deref().unwrap_or("?")),
                Some(other) => other.to_owned(),
                None => "?".to_owned(),
            },
        }
    }

    fn duration_text(&self) -> String {
        match self.duration_s() {
            Some(s) if s >= 3600 => format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60),
            Some(s) if s >= 60 => format!("{}m{:02}s", s / 60, s % 60),
            Some(s) => format!("{s}s"),
            None if self.started.is_some() && self.ended.is_none() => "running".to_owned(),
            None => String::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                m.insert(k.to_owned(), v);
            }
        };
        put("when", Some(json!(self.when)));
        put("kind", Some(json!(self.kind)));
        put("session", self.session.as_ref().map(|s| json!(s)));
        put("who", Some(json!(self.who())));
        put("subject", self.subject.as_ref().map(|s| json!(s)));
        put("peer", self.peer.as_ref().map(|s| json!(s)));
        put("ticket", self.ticket.as_ref().map(|s| json!(s)));
        put("reason", self.reason.as_ref().map(|s| json!(s)));
        put("asked", self.asked.as_ref().map(|s| json!(s)));
        put("decided", Some(json!(self.decided())));
        put("mode", self.mode.as_ref().map(|s| json!(s)));
        put("why", self.why.as_ref().map(|s| json!(s)));
        put("detail", self.detail.as_ref().map(|s| json!(s)));
        put("started", self.started.as_ref().map(|s| json!(s)));
        put("ended_at", self.ended_at.as_ref().map(|s| json!(s)));
        put("duration_s", self.duration_s().map(|s| json!(s)));
        put("ended", self.ended.as_ref().map(|s| json!(s)));
        Value::Object(m)
    }
}

fn rows(records: &[Value]) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    let mut by_session: HashMap<String, usize> = HashMap::new();
    for r in records {
        let when = text(r, "ts").unwrap_or_default();
        let session = text(r, "session");
        let existing = session.as_ref().and_then(|s| by_session.get(s).copied());
        let mut row_for_session = |rows: &mut Vec<Row>, when: &str| -> usize {
            if let Some(i) = existing {
                return i;
            }
            rows.push(Row {
                kind: "request",
                when: when.to_owned(),
                session: session.clone(),
                ..Row::default()
            });
            let i = rows.len() - 1;
            if let Some(s) = &session {
                by_session.insert(s.clone(), i);
            }
            i
        };
        match r.get("event").and_then(Value::as_str).unwrap_or("") {
            "decision" => {
                let i = row_for_session(&mut rows, &when);
                let row = &mut rows[i];
                row.when = when;
                row.subject = r.get("technician").and_then(|t| text(t, "subject"));
                row.peer = text(r, "peer");
                row.ticket = text(r, "ticket");
                row.reason = text(r, "reason");
                row.asked = text(r, "asked");
                row.decision = text(r, "decision");
                row.mode = text(r, "mode");
                row.why = text(r, "why").or_else(|| {
                    (row.decision.as_deref() == Some("refused"))
                        .then(|| text(r, "by"))
                        .flatten()
                });
            }
            "session_started" => {
                let i = row_for_session(&mut rows, &when);
                rows[i].started = Some(when);
            }
            "mode_changed" => {
                let i = row_for_session(&mut rows, &when);
                if let Some(m) = text(r, "mode").or_else(|| text(r, "to")) {
                    rows[i].modes.push(m);
                }
            }
            // Her screen hidden and shown again, her "continue": steps of
            // the session's course, like its mode changes.
            e @ ("paused" | "resumed" | "confirmation") => {
                let i = row_for_session(&mut rows, &when);
                let step = match (e, text(r, "decision").as_deref()) {
                    ("paused", _) => "hidden",
                    ("resumed", _) => "shown",
                    (_, Some("continued")) => "continued",
                    _ => "not continued",
                };
                rows[i].modes.push(step.to_owned());
            }
            "session_ended" => {
                let i = row_for_session(&mut rows, &when);
                rows[i].ended_at = Some(when);
                rows[i].ended = Some(text(r, "why").unwrap_or_else(|| "?".to_owned()));
            }
            "request_rejected" => rows.push(Row {
                kind: "rejected",
                when,
                subject: r.get("technician").and_then(|t| text(t, "subject")),
                peer: text(r, "peer"),
                ticket: text(r, "ticket"),
                why: text(r, "why"),
                detail: text(r, "detail"),
                ..Row::default()
            }),
            e @ ("log_recovered" | "audit_tampering_detected") => rows.push(Row {
                kind: "audit",
                when,
                decision: Some(e.to_owned()),
                detail: text(r, "why").or_else(|| {
                    text(r, "torn_bytes").map(|b| format!("{b} torn bytes moved aside"))
                }),
                ..Row::default()
            }),
            _ => {}
        }
    }
    rows
}

/// Renders the rows at or after `since` as an aligned table, or as JSON
/// Lines when `json` is set.
pub fn render(records: &[Value], since: Option<OffsetDateTime>, json: bool) -> String {
    let rows: Vec<Row> = rows(records)
        .into_iter()
        .filter(|row| match since {
            None => true,
            Some(since) => parse_ts(&row.when).is_some_and(|t| t >= since),
        })
        .collect();
    let mut out = String::new();
    if json {
        for row in &rows {
            out.push_str(&row.to_json().to_string());
            out.push('\n');
        }
        return out;
    }
    let header = [
        "WHEN", "WHO", "TICKET", "ASKED", "DECIDED", "DURATION", "ENDED", "DETAIL",
    ];
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|row| {
            [
                row.when
                    .get(..19)
                    .map(|w| format!("{}Z", w.replace('T', " ")))
                    .unwrap_or_else(|| row.when.clone()),
                row.who(),
                row.ticket.clone().unwrap_or_default(),
                row.asked.clone().unwrap_or_default(),
                row.decided(),
                row.duration_text(),
                row.ended.clone().unwrap_or_default(),
                row.detail.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for cells in &table {
        for (w, c) in widths.iter_mut().zip(cells) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            if i > 0 {
                l.push_str("  ");
            }
            l.push_str(c);
            l.extend(std::iter::repeat_n(' ', w - c.chars().count()));
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for cells in &table {
        line(&cells.each_ref().map(String::as_str));
    }
    if table.is_empty() {
        out.push_str("(no requests)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Value> {
        vec![
            json!({"seq":1,"ts":"2026-11-27T10:15:00.000Z","event":"agent_started"}),
            json!({"seq":2,"ts":"2026-11-27T10:15:02.113Z","event":"decision","session":"s1",
                "technician":{"subject":"CN=Jeanne Martin,O=Helpdesk CHU","fingerprint":"sha256:ab"},
                "peer":"10.1.2.3:51234","ticket":"INC-4711","reason":"Imprimante","asked":"control",
                "decision":"accepted","mode":"view","by":"user"}),
            json!({"seq":3,"ts":"2026-11-27T10:15:03.000Z","event":"session_started","session":"s1"}),
            json!({"seq":4,"ts":"2026-11-27T10:20:10.500Z","event":"session_ended","session":"s1","why":"user"}),
            json!({"seq":5,"ts":"2026-11-27T11:00:00.000Z","event":"request_rejected","peer":"10.9.9.9:4000","why":"rate_limited","detail":"7 prompts in 1 h"}),
            json!({"seq":6,"ts":"2026-11-27T12:00:00.000Z","event":"decision","session":"s2",
                "technician":{"subject":"CN=Paul Durand\\, jr,O=X"},"ticket":"INC-1","asked":"view","decision":"refused","why":"timeout"}),
        ]
    }

    #[test]
    fn table_joins_sessions() {
        let out = render(&sample(), None, false);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        assert!(lines[0].starts_with("WHEN"));
        assert!(lines[1].contains("Jeanne Martin") && lines[1].contains("INC-4711"));
        assert!(
            lines[1].contains("accepted view")
                && lines[1].contains("5m07s")
                && lines[1].contains("user")
        );
        assert!(lines[2].contains("10.9.9.9:4000") && lines[2].contains("rejected: rate_limited"));
        assert!(lines[3].contains("Paul Durand, jr") && lines[3].contains("refused (timeout)"));
    }

    #[test]
    fn subject_attributes() {
        let s = "CN=Paul Durand\\, jr,O=Helpdesk\\, CHU,OU=N2";
        assert_eq!(common_name(s), "Paul Durand, jr");
        assert_eq!(subject_attribute(s, "O").as_deref(), Some("Helpdesk, CHU"));
        assert_eq!(subject_attribute(s, "OU").as_deref(), Some("N2"));
        assert_eq!(subject_attribute(s, "C"), None);
        assert_eq!(common_name("O=X"), "O=X");
    }

    #[test]
    fn json_rows_and_since() {
        let since = parse_ts("2026-11-27T10:30:00Z");
        let out = render(&sample(), since, true);
        let rows: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0]["kind"], "rejected");
        assert_eq!(rows[1]["decided"], "refused (timeout)");
        let all = render(&sample(), None, true);
        let first: Value = serde_json::from_str(all.lines().next().unwrap()).unwrap();
        assert_eq!(first["duration_s"], 307);
        assert_eq!(first["ended"], "user");
        assert_eq!(first["who"], "Jeanne Martin");
    }
}
