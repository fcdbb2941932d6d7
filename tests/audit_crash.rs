//! "append returned Ok ⇒ durable" under a crash: a child process appends in
//! a loop and reports each seq once `append` has returned; the parent kills
//! it with SIGKILL at a random moment. Every reported seq must be in the log
//! and the chain must verify after reopening (which may recover a torn tail).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use accord::audit::{Log, read_records, verify_file};
use serde_json::{Map, json};

const CHILD_ENV: &str = "ACCORD_AUDIT_CRASH_WRITER";

/// The writer, run only in the re-executed child (selected by the env var);
/// in a normal test run it returns at once.
#[test]
fn crash_writer_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (mut log, _) = Log::open(Path::new(&path)).unwrap();
    let stdout = std::io::stdout();
    for i in 0u64.. {
        let mut m = Map::new();
        m.insert("event".into(), json!("decision"));
        m.insert("n".into(), json!(i));
        m.insert("reason".into(), json!("x".repeat((i % 97) as usize)));
        let a = log.append(m).unwrap();
        let mut out = stdout.lock();
        writeln!(out, "APPENDED {}", a.seq).unwrap();
        out.flush().unwrap();
    }
}

/// A cheap varying delay without a random-number crate: the clock's nanos.
fn jitter_ms(min: u64, span: u64) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    min + (nanos / 7919) % span
}

#[test]
fn sigkill_never_loses_an_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let exe = std::env::current_exe().unwrap();
    let mut reported_total = 0usize;
    for round in 0..20 {
        let mut child = Command::new(&exe)
            .args([
                "crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.strip_prefix("APPENDED ")
                        .and_then(|s| s.parse::<u64>().ok())
                })
                .collect::<Vec<u64>>()
        });
        std::thread::sleep(Duration::from_millis(jitter_ms(30, 250)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let reported = reader.join().unwrap();

        let (log, report) = Log::open(&path).unwrap();
        assert_eq!(report.tampered, None, "round {round}");
        drop(log);
        let summary = verify_file(&path).unwrap_or_else(|e| panic!("round {round}: {e}"));
        let present: BTreeSet<u64> = read_records(&path)
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(present.len() as u64, summary.records);
        for seq in &reported {
            assert!(
                present.contains(seq),
                "round {round}: acknowledged seq {seq} lost"
            );
        }
        reported_total += reported.len();
    }
    assert!(
        reported_total > 20,
        "the child hardly wrote anything ({reported_total} records)"
    );
}
