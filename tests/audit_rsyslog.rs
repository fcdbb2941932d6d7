//! Forwarding to a real collector: rsyslogd with the gnutls driver, its own
//! configuration, certificates made here, bound to 127.0.0.1 only.
//!
//! Needs `rsyslogd` and its gtls module (Debian: `rsyslog rsyslog-gnutls`).
//! Without them the test is skipped loudly, unless `ACCORD_REQUIRE_PEERS=1`
//! (set by CI), where it fails.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use accord::audit::forward::{self, ForwardConfig};
use accord::audit::{Log, verify_bytes};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::{Map, json};
use tokio::sync::{Notify, oneshot};

fn find_rsyslogd() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join("rsyslogd"))
        .find(|p| p.is_file())
}

/// Test CA and a server certificate for localhost / 127.0.0.1.
fn make_pki(dir: &Path) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "Accord test collector CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut server =
        CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    std::fs::write(dir.join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
}

struct Collector {
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
}

impl Collector {
    fn out(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    /// Starts rsyslogd listening on `port` (0: any; the port it took is read
    /// back from listenPortFileName).
    fn start(&mut self, port: u16) -> u16 {
        let d = self.dir.display();
        let port_file = self.dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let conf = format!(
            r#"global(workDirectory="{d}/work"
       maxMessageSize="64k"
       defaultNetstreamDriver="gtls"
       defaultNetstreamDriverCAFile="{d}/ca.pem"
       defaultNetstreamDriverCertFile="{d}/server.pem"
       defaultNetstreamDriverKeyFile="{d}/server.key")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
template(name="raw" type="string" string="%rawmsg%\n")
ruleset(name="accord") {{
  action(type="omfile" file="{d}/received.log" template="raw")
}}
input(type="imtcp" port="{port}" address="127.0.0.1" listenPortFileName="{d}/port" ruleset="accord")
"#
        );
        std::fs::create_dir_all(self.dir.join("work")).unwrap();
        std::fs::write(self.dir.join("rsyslog.conf"), conf).unwrap();
        let log = std::fs::File::create(self.dir.join(format!("rsyslogd-{port}.stderr"))).unwrap();
        let child = Command::new(&self.bin)
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        // rsyslog writes listenPortFileName only for port 0; a fixed port
        // is ready once it accepts connections.
        let ready = wait_for(Duration::from_secs(30), || {
            if port == 0 {
                std::fs::read_to_string(&port_file)
                    .ok()
                    .and_then(|t| t.trim().parse::<u16>().ok())
            } else {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| port)
            }
        });
        ready.unwrap_or_else(|| {
            let err = std::fs::read_to_string(self.dir.join(format!("rsyslogd-{port}.stderr")))
                .unwrap_or_default();
            panic!("rsyslogd not listening within 30 s; its output:\n{err}")
        })
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

fn wait_for<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if start.elapsed() > limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// One received message: the header fields we check and MSG.
#[derive(Debug)]
struct Received {
    /// From the structured data (MSGID is the event name).
    msgid: u64,
    sd_hash: String,
    msg: String,
}

fn parse_received(text: &str) -> Vec<Received> {
    text.lines()
        .map(|l| {
            // <PRI>1 TS HOST accord PID EVENT [SD] MSG
            let mut parts = l.splitn(7, ' ');
            let pri = parts.next().unwrap();
            assert!(["<85>1", "<84>1", "<86>1", "<81>1"].contains(&pri), "{l}");
            let _ts = parts.next().unwrap();
            let _host = parts.next().unwrap();
            assert_eq!(parts.next(), Some("accord"), "{l}");
            let _pid = parts.next().unwrap();
            let event = parts.next().unwrap();
            let rest = parts.next().unwrap();
            let (sd, msg) = rest.split_once("] {").unwrap();
            let sd_hash = sd.split("hash=\"").nth(1).unwrap()[..64].to_owned();
            let msgid: u64 = sd
                .split("seq=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let v: serde_json::Value = serde_json::from_str(&format!("{{{msg}")).unwrap();
            assert_eq!(v["event"].as_str(), Some(event), "{l}");
            Received {
                msgid,
                sd_hash,
                msg: format!("{{{msg}"),
            }
        })
        .collect()
}

/// Received messages by seq (duplicates allowed, at least once: all copies
/// must be identical), and the order of first arrival.
fn received(c: &Collector) -> (BTreeMap<u64, String>, Vec<u64>) {
    let text = std::fs::read_to_string(c.out()).unwrap_or_default();
    let mut by_seq = BTreeMap::new();
    let mut order = Vec::new();
    for r in parse_received(&text) {
        let v: serde_json::Value = serde_json::from_str(&r.msg).unwrap();
        assert_eq!(v["seq"].as_u64(), Some(r.msgid));
        assert_eq!(v["hash"].as_str(), Some(r.sd_hash.as_str()));
        match by_seq.insert(r.msgid, r.msg.clone()) {
            Some(earlier) => {
                assert_eq!(earlier, r.msg, "two different records with seq {}", r.msgid)
            }
            None => order.push(r.msgid),
        }
    }
    (by_seq, order)
}

fn log_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn append(log: &mut Log, i: usize) {
    let mut m = Map::new();
    m.insert("event".into(), json!("decision"));
    m.insert(
        "reason".into(),
        json!(format!("Imprimante bloquée n°{i} \"salle\" \\ ]")),
    );
    m.insert(
        "technician".into(),
        json!({"subject":"CN=Jeanne Martin,O=Helpdesk CHU"}),
    );
    log.append(m).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_rsyslog_and_survive_its_outage() {
    let Some(bin) = find_rsyslogd() else {
        if std::env::var("ACCORD_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("rsyslogd not installed and ACCORD_REQUIRE_PEERS=1");
        }
        eprintln!(
            "\n!!!!!!!! SKIPPED: rsyslogd not installed (apt-get install rsyslog rsyslog-gnutls) !!!!!!!!\n"
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    make_pki(&dir);
    let mut collector = Collector {
        bin,
        dir: dir.clone(),
        child: None,
    };
    let port = tokio::task::block_in_place(|| collector.start(0));

    let log_path = dir.join("audit/audit.jsonl");
    let (mut log, _) = Log::open(&log_path).unwrap();
    for i in 0..20 {
        append(&mut log, i);
    }
    let wake = Arc::new(Notify::new());
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let cfg = ForwardConfig::parse(&format!("tls://127.0.0.1:{port}"), dir.join("ca.pem")).unwrap();
    let task = tokio::spawn(forward::run(
        cfg,
        log_path.clone(),
        dir.join("audit/forward.cursor"),
        wake.clone(),
        |reason: String| panic!("unexpected cursor reset: {reason}"),
        async move {
            let _ = stop_rx.await;
        },
    ));

    // Phase 1: everything already in the log arrives, byte for byte.
    let got = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(30), || {
            let (by_seq, _) = received(&collector);
            (by_seq.len() >= 20).then_some(by_seq)
        })
    })
    .expect("records did not reach rsyslog within 30 s");
    let lines = log_lines(&log_path);
    assert_eq!(got.len(), 20);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(
            got.get(&(i as u64 + 1)),
            Some(line),
            "record {} differs at the collector",
            i + 1
        );
    }

    // Phase 2: the collector dies; records wait in the log; it comes back
    // on the same port and gets all of them, in order.
    tokio::task::block_in_place(|| collector.kill());
    for i in 20..120 {
        append(&mut log, i);
        wake.notify_one();
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // let the forwarder see the outage
    let again = tokio::task::block_in_place(|| collector.start(port));
    assert_eq!(again, port);
    let (by_seq, order) = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(60), || {
            let (by_seq, order) = received(&collector);
            (by_seq.len() >= 120).then_some((by_seq, order))
        })
    })
    .expect("records appended during the outage did not arrive within 60 s");
    assert_eq!(
        order,
        (1..=120).collect::<Vec<u64>>(),
        "records arrived out of order"
    );
    let lines = log_lines(&log_path);
    assert_eq!(lines.len(), 120);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(by_seq.get(&(i as u64 + 1)), Some(line));
    }
    // The collector's copy is itself a verifiable chain with the same head.
    let copy: String = by_seq.values().map(|l| format!("{l}\n")).collect();
    let summary = verify_bytes(copy.as_bytes()).unwrap();
    assert_eq!((summary.head_seq, summary.head_hash), log.head());

    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("forwarder did not stop on shutdown")
        .unwrap();
    let cursor: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("audit/forward.cursor")).unwrap()).unwrap();
    assert_eq!(cursor["seq"], 120);

    // Phase 3: the README's archive procedure. The log is moved away and a
    // new one starts at seq 1, while the cursor still says 120: nothing of
    // the new log may be skipped. The forwarder sees the mismatch, records
    // `forward_cursor_reset` and sends the new log from its start.
    drop(log);
    std::fs::rename(&log_path, dir.join("audit/audit.jsonl.1")).unwrap();
    let (log, _) = Log::open(&log_path).unwrap();
    let log = Arc::new(std::sync::Mutex::new(log));
    for i in 0..5 {
        append(&mut log.lock().unwrap(), 1000 + i);
    }
    let before = parse_received(&std::fs::read_to_string(collector.out()).unwrap()).len();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let cfg = ForwardConfig::parse(&format!("tls://127.0.0.1:{port}"), dir.join("ca.pem")).unwrap();
    let (journal, wake2) = (log.clone(), Arc::new(Notify::new()));
    let task = tokio::spawn(forward::run(
        cfg,
        log_path.clone(),
        dir.join("audit/forward.cursor"),
        wake2.clone(),
        move |reason: String| {
            let mut m = Map::new();
            m.insert("event".into(), json!("forward_cursor_reset"));
            m.insert("reason".into(), json!(reason));
            journal.lock().unwrap().append(m).unwrap();
        },
        async move {
            let _ = stop_rx.await;
        },
    ));
    let new_lines = tokio::task::block_in_place(|| {
        wait_for(Duration::from_secs(30), || {
            let all = parse_received(&std::fs::read_to_string(collector.out()).unwrap());
            let lines = log_lines(&log_path);
            let tail: Vec<String> = all.iter().skip(before).map(|r| r.msg.clone()).collect();
            (lines.len() == 6 && tail.len() >= 6).then_some((tail, lines))
        })
    });
    let (tail, lines) = new_lines.expect("the new log did not reach rsyslog within 30 s");
    assert_eq!(&tail[..6], &lines[..], "the new log, whole and in order");
    let reset: serde_json::Value = serde_json::from_str(&lines[5]).unwrap();
    assert_eq!(reset["event"], "forward_cursor_reset");
    assert!(
        reset["reason"]
            .as_str()
            .unwrap()
            .contains("cursor is at seq 120"),
        "{reset}"
    );
    let _ = stop_tx.send(());
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("forwarder did not stop on shutdown")
        .unwrap();
}
