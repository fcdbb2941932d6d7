//! Tamper evidence of the audit log (T12): every single-byte change, every
//! deleted, swapped or forged line is detected and named; a torn tail is
//! recovered without losing its bytes; mid-file tampering is reported on
//! open and never erased.

use std::fs;
use std::path::{Path, PathBuf};

use accord::audit::{Chain, Log, Why, read_records, verify_bytes, verify_file};
use serde_json::{Map, Value, json};

fn fields(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// A 50-record log with the kinds of values real records carry (accents,
/// quotes, backslashes, nested objects).
fn build_log(dir: &Path) -> PathBuf {
    let path = dir.join("audit.jsonl");
    let (mut log, _) = Log::open(&path).unwrap();
    for i in 0..50u64 {
        let event = match i % 4 {
            0 => json!({"event":"decision","session":format!("s{i}"),
                "technician":{"subject":"CN=Jeanne Martin,O=Helpdesk CHU","fingerprint":"sha256:00ff"},
                "peer":"10.1.2.3:51234","ticket":format!("INC-{i}"),"reason":"Imprimante bloquée \"salle 3\" \\ ]",
                "asked":"control","decision":"accepted","mode":"view","by":"user"}),
            1 => json!({"event":"session_started","session":format!("s{}", i - 1)}),
            2 => {
                json!({"event":"session_ended","session":format!("s{}", i - 2),"why":"user","bytes_in":1234,"bytes_out":99})
            }
            _ => {
                json!({"event":"request_rejected","peer":"10.9.9.9:4000","why":"rate_limited","detail":"é"})
            }
        };
        log.append(fields(event)).unwrap();
    }
    path
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn hash_of(line: &[u8]) -> String {
    let v: Value = serde_json::from_slice(line.strip_suffix(b"\n").unwrap()).unwrap();
    v["hash"].as_str().unwrap().to_owned()
}

#[test]
fn intact_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path());
    let s = verify_file(&path).unwrap();
    assert_eq!((s.records, s.head_seq), (50, 50));
    let bytes = fs::read(&path).unwrap();
    assert_eq!(s.head_hash, hash_of(lines(&bytes).last().unwrap()));
    assert_eq!(s.bytes, bytes.len() as u64);
}

#[test]
fn every_single_byte_flip_is_detected_and_located() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path());
    let original = fs::read(&path).unwrap();
    let mut bytes = original.clone();
    let mut checked = 0;
    for mask in [0x01u8, 0xff] {
        for i in 0..bytes.len() {
            bytes[i] ^= mask;
            let err = verify_bytes(&bytes).expect_err("a flipped byte went unnoticed");
            // The record a byte belongs to includes its own `\n`.
            let line = 1 + original[..i].iter().filter(|b| **b == b'\n').count();
            assert_eq!(
                (err.line, err.seq),
                (line, Some(line as u64)),
                "byte {i} mask {mask:#x}: {err}"
            );
            if i == bytes.len() - 1 {
                assert!(matches!(err.why, Why::Torn { .. }), "byte {i}: {err}");
            } else {
                assert!(
                    matches!(err.why, Why::Edited | Why::NotJson),
                    "byte {i}: {err}"
                );
            }
            bytes[i] ^= mask;
            checked += 1;
        }
    }
    assert_eq!(bytes, original);
    assert_eq!(checked, 2 * original.len());
    // Through the file as well, once.
    let mut edited = original.clone();
    edited[100] ^= 1;
    fs::write(&path, &edited).unwrap();
    let err = verify_file(&path).unwrap_err();
    assert_eq!(
        err.to_string(),
        "record seq 1 (line 1): hash does not match its content (edited)"
    );
}

fn verify_lines(lines: &[Vec<u8>]) -> accord::audit::ChainError {
    verify_bytes(&lines.concat()).unwrap_err()
}

#[test]
fn deleted_lines_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let all = lines(&fs::read(build_log(dir.path())).unwrap());
    let mut l = all.clone();
    l.remove(19); // seq 20
    let err = verify_lines(&l);
    assert_eq!((err.line, err.seq), (20, Some(21)));
    assert_eq!(
        err.why,
        Why::Deleted {
            expected: 20,
            missing: 1
        }
    );
    assert_eq!(
        err.to_string(),
        "record seq 21 (line 20): seq 20 expected: 1 record(s) deleted before this one"
    );
    let mut l = all.clone();
    l.drain(0..3);
    let err = verify_lines(&l);
    assert_eq!(
        (err.line, err.seq, err.why),
        (
            1,
            Some(4),
            Why::Deleted {
                expected: 1,
                missing: 3
            }
        )
    );
}

#[test]
fn swapped_lines_are_reordered() {
    let dir = tempfile::tempdir().unwrap();
    let all = lines(&fs::read(build_log(dir.path())).unwrap());
    let mut l = all.clone();
    l.swap(9, 29);
    let err = verify_lines(&l);
    assert_eq!(
        (err.line, err.seq, err.why),
        (10, Some(30), Why::Reordered { expected: 10 })
    );
    let mut l = all.clone();
    l.swap(9, 10);
    let err = verify_lines(&l);
    assert_eq!(
        (err.line, err.seq, err.why),
        (10, Some(11), Why::Reordered { expected: 10 })
    );
}

#[test]
fn forged_lines_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    let all = lines(&fs::read(build_log(dir.path())).unwrap());
    let ts = time::OffsetDateTime::now_utc();
    let forged_fields =
        fields(json!({"event":"decision","decision":"accepted","mode":"control","by":"user"}));

    // A well-formed record with a correct hash of its own, but made up
    // outside the chain: it claims seq 25 and links to nothing.
    let mut outsider = Chain::resume(24, &"ab".repeat(32));
    let forged = format!("{}\n", outsider.append(&forged_fields, ts).unwrap().text).into_bytes();
    let mut l = all.clone();
    l.insert(24, forged);
    let err = verify_lines(&l);
    assert_eq!(
        (err.line, err.seq, err.why),
        (25, Some(25), Why::Inserted { expected: 25 })
    );

    // A forger who links it properly to record 24: record 24 + forged pass,
    // and the genuine 25 then repeats a seq already used.
    let mut insider = Chain::resume(24, &hash_of(&all[23]));
    let forged = format!("{}\n", insider.append(&forged_fields, ts).unwrap().text).into_bytes();
    let mut l = all.clone();
    l.insert(24, forged.clone());
    let err = verify_lines(&l);
    assert_eq!(
        (err.line, err.seq, err.why),
        (26, Some(25), Why::Inserted { expected: 26 })
    );

    // The same forged record replacing the genuine 25: its successor's prev
    // no longer matches.
    let mut l = all.clone();
    l[24] = forged;
    let err = verify_lines(&l);
    assert_eq!(
        (err.line, err.seq, err.why),
        (26, Some(26), Why::BrokenLink)
    );
}

#[test]
fn torn_tail_is_moved_aside_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path());
    let bytes = fs::read(&path).unwrap();
    let last_start = bytes[..bytes.len() - 1]
        .iter()
        .rposition(|b| *b == b'\n')
        .unwrap()
        + 1;
    let cut = last_start + (bytes.len() - last_start) / 2;
    fs::write(&path, &bytes[..cut]).unwrap();
    let torn = &bytes[last_start..cut];
    assert!(
        matches!(verify_file(&path).unwrap_err().why, Why::Torn { bytes } if bytes == torn.len())
    );

    let (mut log, report) = Log::open(&path).unwrap();
    let rec = report.recovered.clone().expect("torn tail not recovered");
    assert_eq!(report.tampered, None);
    assert_eq!(rec.torn_bytes, torn.len());
    assert_eq!(rec.torn_path, dir.path().join("audit.jsonl.torn"));
    assert_eq!(fs::read(&rec.torn_path).unwrap(), torn);
    assert_eq!(
        log.head().0,
        50,
        "the torn record's seq is reused by log_recovered"
    );
    log.append(fields(json!({"event":"agent_started"})))
        .unwrap();
    drop(log);

    let (log, report) = Log::open(&path).unwrap();
    assert_eq!((report.recovered, report.tampered), (None, None));
    drop(log);
    let summary = verify_file(&path).unwrap();
    assert_eq!(summary.records, 51);
    let records = read_records(&path).unwrap();
    let recovered = records
        .iter()
        .find(|r| r["event"] == "log_recovered")
        .unwrap();
    assert_eq!(recovered["torn_bytes"], torn.len());
    assert_eq!(recovered["seq"], 50);
    // The genuine records before the tear are untouched.
    assert_eq!(
        &fs::read(&path).unwrap()[..last_start],
        &bytes[..last_start]
    );

    // A second tear is appended to the same .torn file.
    let mut now = fs::read(&path).unwrap();
    now.extend_from_slice(b"{\"seq\":52,\"ts");
    fs::write(&path, &now).unwrap();
    let (_log, report) = Log::open(&path).unwrap();
    assert_eq!(report.recovered.unwrap().torn_bytes, 13);
    assert_eq!(
        fs::read(dir.path().join("audit.jsonl.torn")).unwrap(),
        [torn, b"{\"seq\":52,\"ts"].concat()
    );
}

#[test]
fn mid_file_tampering_is_reported_kept_and_recorded_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = build_log(dir.path());
    let original = fs::read(&path).unwrap();
    let l = lines(&original);
    // Record 10 stays valid JSON: "s8" becomes "r8".
    let in_line = l[9]
        .windows(6)
        .position(|w| w == b":\"s8\"}" || w == b":\"s8\",")
        .unwrap()
        + 2;
    let pos = l[..9].concat().len() + in_line;
    let mut tampered = original.clone();
    tampered[pos] ^= 0x01;
    fs::write(&path, &tampered).unwrap();

    let (mut log, report) = Log::open(&path).unwrap();
    let err = report.tampered.clone().expect("tampering not reported");
    assert_eq!(
        (err.line, err.seq, err.why.clone()),
        (10, Some(10), Why::Edited)
    );
    assert_eq!(report.recovered, None);
    log.append(fields(json!({"event":"agent_started"})))
        .unwrap();
    drop(log);

    let after = fs::read(&path).unwrap();
    assert_eq!(
        &after[..tampered.len()],
        &tampered[..],
        "tampered file was rewritten"
    );
    let records = read_records(&path).unwrap();
    assert_eq!(records.len(), 52);
    let note = &records[50];
    assert_eq!(note["event"], "audit_tampering_detected");
    assert_eq!(
        (note["bad_seq"].as_u64(), note["bad_line"].as_u64()),
        (Some(10), Some(10))
    );
    assert_eq!(note["seq"], 51);
    assert_eq!(note["prev"].as_str().unwrap(), hash_of(&l[49]));
    // Still reported by verify, at the original break.
    assert_eq!(verify_file(&path).unwrap_err(), err);

    // Reopening reports it again but does not record the same break twice.
    let (log, report) = Log::open(&path).unwrap();
    assert_eq!(report.tampered, Some(err));
    assert_eq!(log.head().0, 52);
    drop(log);
    assert_eq!(read_records(&path).unwrap().len(), 52);
}
