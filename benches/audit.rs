//! Audit log figures: durable append rate (one fdatasync per record, the
//! price of "returned Ok ⇒ on disk"), and the cost of verifying a large log
//! against merely reading it. Run with `cargo bench --bench audit`.
//! `ACCORD_BENCH_RECORDS` overrides the 1 000 000 records of the verify part.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::time::Instant;

use accord::audit::{Chain, Log, verify_file};
use serde_json::{Map, Value, json};

fn decision(i: u64) -> Map<String, Value> {
    match json!({"event":"decision","session":format!("5f0c2a9e-7d1b-4c3a-9e8f-{i:012}"),
        "technician":{"subject":"CN=Jeanne Martin,O=Helpdesk CHU","fingerprint":"sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"},
        "peer":"10.1.2.3:51234","ticket":"INC-4711","reason":"Imprimante bloquée","asked":"control",
        "decision":"accepted","mode":"view","by":"user"})
    {
        Value::Object(m) => m,
        _ => unreachable!(),
    }
}

/// CPU time of this process: on a shared machine wall time also counts
/// other people's builds.
fn cpu_s() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut rows: Vec<(String, String)> = Vec::new();

    // 1. Durable appends.
    let n_sync = 2000u64;
    let (mut log, _) = Log::open(&dir.path().join("sync.jsonl"))?;
    let t = Instant::now();
    for i in 0..n_sync {
        log.append(decision(i))?;
    }
    let s = t.elapsed().as_secs_f64();
    rows.push((
        format!("append + fdatasync, {n_sync} records"),
        format!(
            "{:.0} records/s ({:.0} µs/record)",
            n_sync as f64 / s,
            s * 1e6 / n_sync as f64
        ),
    ));
    drop(log);

    // 2. A large log, generated with the chain code but one buffered write.
    let n: u64 = std::env::var("ACCORD_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path = dir.path().join("big.jsonl");
    let t = Instant::now();
    let mut chain = Chain::new();
    let mut out = BufWriter::with_capacity(1 << 20, File::create(&path)?);
    let ts = time::OffsetDateTime::now_utc();
    for i in 0..n {
        let line = chain.append(&decision(i), ts)?;
        out.write_all(line.text.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.into_inner()?.sync_all()?;
    let bytes = std::fs::metadata(&path)?.len();
    rows.push((
        format!("generate {n} records (no fsync)"),
        format!(
            "{:.2} s, {:.0} MB",
            t.elapsed().as_secs_f64(),
            bytes as f64 / 1e6
        ),
    ));

    // 3. Baseline: read and split the same file (page cache warm, as for verify).
    let (t, c) = (Instant::now(), cpu_s());
    let mut reader = BufReader::with_capacity(1 << 20, File::open(&path)?);
    let mut buf = Vec::new();
    let mut lines = 0u64;
    while reader.read_until(b'\n', &mut buf)? > 0 {
        lines += 1;
        buf.clear();
    }
    let base = t.elapsed().as_secs_f64();
    let base_cpu = cpu_s() - c;
    assert_eq!(lines, n);
    rows.push((
        format!("read + split lines, {n}"),
        format!(
            "{base:.3} s wall, {base_cpu:.3} s CPU ({:.0} MB/s)",
            bytes as f64 / 1e6 / base
        ),
    ));

    // 4. verify_file.
    let (t, c) = (Instant::now(), cpu_s());
    let summary = verify_file(&path)?;
    let v = t.elapsed().as_secs_f64();
    let v_cpu = cpu_s() - c;
    assert_eq!(summary.records, n);
    rows.push((
        format!("verify_file, {n} records"),
        format!(
            "{v:.3} s wall, {v_cpu:.3} s CPU ({:.0} records/s, {:.1}× read+split CPU)",
            n as f64 / v,
            v_cpu / base_cpu.max(1e-9)
        ),
    ));

    let w = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0);
    println!("{:w$}  result", "audit benchmark");
    println!("{}  {}", "-".repeat(w), "-".repeat(48));
    for (k, val) in rows {
        println!("{k:w$}  {val}");
    }
    Ok(())
}
