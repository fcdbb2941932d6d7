//! Black-box tests of the `accord` binary: the README's examples, kept true,
//! and one test per documented exit code of `accord connect`.

mod common;

use accord::broker::Answer;
use common::*;
use std::process::{Command, Output};
use std::time::Duration;

fn accord(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(args)
        .env("ACCORD_LOG", "warn")
        .output()
        .expect("run accord")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn pki_demo_writes_keys_0600_and_a_valid_policy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    let out = accord(&["pki", "demo", d.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("accord connect 127.0.0.1"));
    for f in [
        "ca.pem",
        "ca.key",
        "agent.pem",
        "agent.key",
        "technician.pem",
        "technician.key",
        "policy.toml",
    ] {
        assert!(d.join(f).is_file(), "{f} missing");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for f in ["ca.key", "agent.key", "technician.key"] {
            let mode = std::fs::metadata(d.join(f)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
    }
    let tech = std::fs::read(d.join("technician.pem")).unwrap();
    let der = rustls::pki_types::CertificateDer::from(
        rustls::pki_types::pem::PemObject::from_pem_slice(&tech)
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap(),
    );
    let id = accord::tls::identity_of(&der).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("Technicien Démo"));

    let out = accord(&["policy", "check", d.join("policy.toml").to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report = text(&out.stdout);
    assert!(report.contains("address = \"127.0.0.1:5988\""), "{report}");
    assert!(report.contains("PGSSI-S conformity"), "{report}");
    assert!(report.contains("T11"), "{report}");
}

#[test]
fn policy_check_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("policy.toml");
    std::fs::write(&p, "[consent]\ntimeout_s = 60\nalow_control = true\n").unwrap();
    let out = accord(&["policy", "check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains(&format!("{}:3:", p.display())), "{err}");
    assert!(err.contains("alow_control"), "{err}");

    std::fs::write(&p, "[session]\nidle_timeout_s = 5\n").unwrap();
    let out = accord(&["policy", "check", p.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("session.idle_timeout_s: 5 is out of range"));

    let out = accord(&["policy", "check", "/nonexistent/policy.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("cannot read"));
}

fn connect_args<'a>(pki: &'a Pki, port: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "connect",
        port,
        "--ca",
        pki.ca_path.to_str().unwrap(),
        "--cert",
        pki.tech_cert.to_str().unwrap(),
        "--key",
        pki.tech_key.to_str().unwrap(),
        "--ticket",
        "INC-4711",
        "--reason",
        "Imprimante",
        "--listen",
        "127.0.0.1:0",
    ];
    v.extend_from_slice(extra);
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_exit_codes() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.consent.timeout = Duration::from_secs(2);
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::Refused, Duration::from_millis(1500)),
        Step::Never,
    ]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());

    // 3: refused by the user; progress on stderr.
    let args: Vec<String> = connect_args(&pki, &target, &["--view-only"])
        .into_iter()
        .map(String::from)
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        accord(&a)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("waiting for the user's answer… 59 s left"),
        "{err}"
    );
    assert!(err.contains("the user refused"), "{err}");

    // 4: no answer in time.
    let args: Vec<String> = connect_args(&pki, &target, &[])
        .into_iter()
        .map(String::from)
        .collect();
    let out = tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        accord(&a)
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", text(&out.stderr));
    agent.stop().await;

    // 7: nothing listening any more.
    let out = accord(&connect_args(&pki, &target, &[]));
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));

    // 2: usage errors, before any network.
    let mut exposed = connect_args(&pki, &target, &[]);
    exposed[13] = "0.0.0.0:5901";
    let out = accord(&exposed);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("loopback"));
    let mut bidi = connect_args(&pki, &target, &[]);
    bidi[11] = "Imprimante \u{202E}gpj.exe";
    let out = accord(&bidi);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("U+202E"),
        "{}",
        text(&out.stderr)
    );
    let out = accord(&["connect", "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn version_and_help() {
    let out = accord(&["--version"]);
    assert!(out.status.success());
    assert!(text(&out.stdout).starts_with("accord "));
    let out = accord(&["--help"]);
    for cmd in ["agent", "connect", "end", "status", "log", "policy", "pki"] {
        assert!(text(&out.stdout).contains(cmd), "{cmd}");
    }
}
