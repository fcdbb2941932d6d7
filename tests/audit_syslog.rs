//! Golden RFC 5424 messages and RFC 5425 frames: what the collector's
//! parsing rules are written against must not drift.

use accord::audit::syslog::{Origin, SD_ID, frame_record, octet_frame, rfc5424};

fn origin(hostname: &'static str, pid: u32) -> Origin<'static> {
    Origin {
        hostname,
        pid,
        sd_id: SD_ID,
    }
}

const PREV: &str = "0000000000000000000000000000000000000000000000000000000000000000";
const HASH: &str = "4f1c0a57e2b3d9a8c6f0e1d2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f70";

fn line(event: &str, reason: &str) -> String {
    format!(
        r#"{{"seq":17,"ts":"2026-11-27T10:15:02.113Z","event":{},"reason":{},"prev":"{PREV}","hash":"{HASH}"}}"#,
        serde_json::to_string(event).unwrap(),
        serde_json::to_string(reason).unwrap()
    )
}

#[test]
fn golden_message() {
    let l = line("decision", "Imprimante");
    let msg = rfc5424(
        &l,
        17,
        "2026-11-27T10:15:02.113Z",
        &origin("poste-12.chu.local", 4242),
    );
    assert_eq!(
        msg,
        format!(
            "<85>1 2026-11-27T10:15:02.113Z poste-12.chu.local accord 4242 decision \
             [accord@32473 seq=\"17\" hash=\"{HASH}\" event=\"decision\"] {l}"
        )
    );
}

/// MSGID is the event and severity follows it, so SIEM rules select on the
/// header; the SD-ID is the hospital's own when the policy sets it.
#[test]
fn golden_severities_and_own_sd_id() {
    let own = Origin {
        hostname: "poste-12",
        pid: 1,
        sd_id: "chu-lyon@61234",
    };
    for (event, pri) in [
        ("audit_tampering_detected", 81), // authpriv.alert
        ("log_recovered", 84),            // authpriv.warning
        ("forward_cursor_reset", 84),
        ("agent_started", 86),    // authpriv.info
        ("request_rejected", 85), // authpriv.notice
        ("session_ended", 85),
    ] {
        let l = line(event, "x");
        let msg = rfc5424(&l, 17, "2026-11-27T10:15:02.113Z", &own);
        assert_eq!(
            msg,
            format!(
                "<{pri}>1 2026-11-27T10:15:02.113Z poste-12 accord 1 {event} \
                 [chu-lyon@61234 seq=\"17\" hash=\"{HASH}\" event=\"{event}\"] {l}"
            )
        );
    }
}

#[test]
fn sd_param_escaping_of_quote_backslash_bracket() {
    // JSON `"odd\"ev\\ent]"` is the value odd"ev\ent] which SD-PARAM
    // escaping turns into odd\"ev\\ent\].
    let l = line("odd\"ev\\ent]", "x");
    assert!(l.contains(r#""event":"odd\"ev\\ent]""#));
    let msg = rfc5424(&l, 17, "2026-11-27T10:15:02.113Z", &origin("h", 1));
    assert_eq!(
        msg,
        format!(
            "<85>1 2026-11-27T10:15:02.113Z h accord 1 odd\"ev\\ent] \
             [accord@32473 seq=\"17\" hash=\"{HASH}\" event=\"odd\\\"ev\\\\ent\\]\"] {l}"
        )
    );
    // MSG is the record line byte for byte, its own escapes untouched.
    assert!(msg.ends_with(&l));
}

#[test]
fn octet_counting_uses_utf8_bytes() {
    let l = line("decision", "Imprimante bloquée à l'accueil");
    let msg = rfc5424(
        &l,
        17,
        "2026-11-27T10:15:02.113Z",
        &origin("poste-12", 4242),
    );
    assert_eq!(msg.len(), msg.chars().count() + 2, "two 2-byte characters");
    let frame = octet_frame(&msg);
    let expected = format!("{} {msg}", msg.len());
    assert_eq!(frame, expected.as_bytes());
    assert!(!frame.starts_with(format!("{} ", msg.chars().count()).as_bytes()));
    // Golden bytes of a short frame.
    assert_eq!(
        octet_frame("<85>1 - - accord - - - é"),
        b"25 <85>1 - - accord - - - \xc3\xa9".to_vec()
    );
}

#[test]
fn invalid_header_values_become_safe() {
    let l = line("decision", "x");
    let msg = rfc5424(&l, 17, "", &origin("poste 12", 7));
    assert!(
        msg.starts_with("<85>1 - poste_12 accord 7 decision ["),
        "{msg}"
    );
}

#[test]
fn frame_record_reads_seq_and_ts_from_the_line() {
    let l = line("decision", "é");
    let (seq, frame) = frame_record(l.as_bytes(), &origin("h", 9)).unwrap();
    assert_eq!(seq, 17);
    let msg = rfc5424(&l, 17, "2026-11-27T10:15:02.113Z", &origin("h", 9));
    assert_eq!(frame, octet_frame(&msg));
    assert_eq!(frame_record(b"not a record", &origin("h", 9)), None);
}
