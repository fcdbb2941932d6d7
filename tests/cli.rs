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

/// Runs `accord` off the async runtime (the in-process agent keeps running),
/// with extra environment variables.
async fn accord_env(args: Vec<String>, env: Vec<(String, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_accord"))
            .args(&args)
            .env("ACCORD_LOG", "warn")
            .env("LANG", "C.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .envs(env)
            .output()
            .expect("run accord")
    })
    .await
    .unwrap()
}

fn owned(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
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
        err.contains("waiting for the user's answer (view only asked)… 2 s left"),
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

/// The countdown is the workstation's own deadline (its "pending" line), not
/// an assumed 60 s; a refusal says what to do next.
#[tokio::test(flavor = "multi_thread")]
async fn countdown_is_the_workstations_deadline() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.consent.timeout = Duration::from_secs(25);
    let prompter =
        ScriptedPrompter::new([Step::Answer(Answer::Refused, Duration::from_millis(1500))]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let out = accord_env(owned(&connect_args(&pki, &target, &[])), vec![]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("waiting for the user's answer (control asked)… 25 s left"),
        "{err}"
    );
    assert!(!err.contains("59 s"), "{err}");
    assert!(err.contains("Call them"), "{err}");

    // In French when the locale is French.
    agent
        .prompter
        .script
        .lock()
        .unwrap()
        .push_back(Step::Answer(Answer::Refused, Duration::from_millis(200)));
    let out = accord_env(
        owned(&connect_args(&pki, &target, &["--view-only"])),
        vec![("LC_ALL".into(), "fr_FR.UTF-8".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains(
            "En attente de la réponse de l'utilisateur (affichage seul demandé)… 25\u{a0}s"
        ),
        "{err}"
    );
    assert!(err.contains("l'utilisateur a refusé"), "{err}");
    agent.stop().await;
}

/// `--cert/--key/--ca` come from the environment or the profile file, and
/// `--whoami` prints what the clinician will see.
#[tokio::test(flavor = "multi_thread")]
async fn technician_profile_environment_and_whoami() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::Refused, Duration::from_millis(100)),
        Step::Answer(Answer::Refused, Duration::from_millis(100)),
    ]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let cfg_home = tempfile::tempdir().unwrap();
    let bare = owned(&[
        "connect",
        &target,
        "--ticket",
        "INC-1",
        "--reason",
        "Imprimante",
        "--listen",
        "127.0.0.1:0",
    ]);
    let home = (
        "XDG_CONFIG_HOME".to_string(),
        cfg_home.path().display().to_string(),
    );

    // Nothing anywhere: a usage error that says where to put them.
    let out = accord_env(bare.clone(), vec![home.clone()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("ACCORD_CERT"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(agent.prompter.asked(), 0);

    // From the environment.
    let env = vec![
        home.clone(),
        ("ACCORD_CERT".into(), pki.tech_cert.display().to_string()),
        ("ACCORD_KEY".into(), pki.tech_key.display().to_string()),
        ("ACCORD_CA".into(), pki.ca_path.display().to_string()),
    ];
    let out = accord_env(bare.clone(), env).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    // From ~/.config/accord/connect.toml, paths relative to the file.
    let dir = cfg_home.path().join("accord");
    std::fs::create_dir_all(&dir).unwrap();
    for (from, to) in [
        (&pki.tech_cert, "me.pem"),
        (&pki.tech_key, "me.key"),
        (&pki.ca_path, "ca.pem"),
    ] {
        std::fs::copy(from, dir.join(to)).unwrap();
    }
    std::fs::write(
        dir.join("connect.toml"),
        "cert = \"me.pem\"\nkey = \"me.key\"\nca = \"ca.pem\"\n",
    )
    .unwrap();
    let out = accord_env(bare, vec![home.clone()]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(agent.prompter.asked(), 2);

    // --whoami: the subject and the code the clinician sees.
    let out = accord_env(owned(&["connect", "--whoami"]), vec![home]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let der = rustls::pki_types::CertificateDer::from(
        rustls::pki_types::pem::PemObject::from_pem_slice(&std::fs::read(&pki.tech_cert).unwrap())
            .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
            .unwrap(),
    );
    let id = accord::tls::identity_of(&der).unwrap();
    let said = text(&out.stdout);
    assert!(
        said.contains(&format!("Technician: {}", id.subject)),
        "{said}"
    );
    assert!(
        said.contains(&format!("Verification code: {}", id.short_fingerprint())),
        "{said}"
    );
    agent.stop().await;
}

/// `--viewer COMMAND`: started once accepted, on a free loopback port; the
/// tunnel works and closes when the viewer exits, which ends the session.
#[tokio::test(flavor = "multi_thread")]
async fn viewer_is_started_and_its_exit_ends_the_session() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter =
        ScriptedPrompter::new([Step::Answer(Answer::Control, Duration::from_millis(100))]);
    let agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let out_dir = tempfile::tempdir().unwrap();
    let record = out_dir.path().join("viewer.txt");
    // A stand-in viewer: records its arguments, reads the RFB version line
    // through the tunnel, and exits.
    let viewer = format!(
        "echo {{host}} {{port}} > {r}; exec 3<>/dev/tcp/{{host}}/{{port}}; head -c 12 <&3 >> {r}",
        r = record.display()
    );
    let cmd = format!("bash -c '{viewer}'");
    let out = accord_env(
        owned(&connect_args(&pki, &target, &["--viewer", &cmd])),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("viewer started: bash -c"), "{err}");
    assert!(err.contains("session ended"), "{err}");
    let recorded = std::fs::read_to_string(&record).unwrap();
    let mut lines = recorded.lines();
    let first = lines.next().unwrap_or_default();
    let port: u16 = first
        .strip_prefix("127.0.0.1 ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("viewer arguments: {recorded:?}"));
    assert_ne!(port, 0);
    assert_eq!(lines.next(), Some("RFB 003.008"), "{recorded:?}");
    // The agent saw the technician leave.
    agent.wait_event("session_ended", "why", "technician").await;

    // A command without {port} is refused before anyone is asked.
    let out = accord_env(
        owned(&connect_args(&pki, &target, &["--viewer", "vncviewer"])),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("{port}"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(agent.prompter.asked(), 1);
}

/// TLS failures say which side refused which certificate.
#[tokio::test(flavor = "multi_thread")]
async fn tls_failures_say_which_side_refused() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let agent = RunningAgent::start(pki.policy(stub.addr), ScriptedPrompter::new([])).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let other = accord::tls::demo::Ca::new("Other CA").unwrap();
    let odir = tempfile::tempdir().unwrap();
    let other_ca = odir.path().join("other-ca.pem");
    std::fs::write(&other_ca, &other.pem.cert).unwrap();
    let (rogue_cert, rogue_key) = write_pem(
        odir.path(),
        "rogue",
        &other.leaf("Rogue", "Nowhere", false, 30).unwrap(),
    );

    // The workstation's certificate checked against the wrong CA: our side refuses.
    let mut args = connect_args(&pki, &target, &[]);
    let ca = other_ca.display().to_string();
    args[3] = &ca;
    let out = accord_env(owned(&args), vec![]).await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("not issued by the CA given with --ca"),
        "{}",
        text(&out.stderr)
    );

    // Our certificate from a CA the workstation does not trust: its side refuses.
    let mut args = connect_args(&pki, &target, &[]);
    let (c, k) = (
        rogue_cert.display().to_string(),
        rogue_key.display().to_string(),
    );
    args[5] = &c;
    args[7] = &k;
    let out = accord_env(owned(&args), vec![]).await;
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("the workstation refused your certificate"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(agent.prompter.asked(), 0);
}

/// `accord policy check` checks what the policy names, not only its syntax:
/// a missing key, a key of another certificate, an expired CA make the agent
/// unable to listen (exit 1); a certificate about to expire is a warning.
#[test]
fn policy_check_checks_the_files_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("demo");
    assert!(
        accord(&["pki", "demo", d.to_str().unwrap()])
            .status
            .success()
    );
    let policy = d.join("policy.toml");
    let check = || {
        let out = accord(&["policy", "check", policy.to_str().unwrap()]);
        (out.status.code(), text(&out.stdout))
    };
    let (code, out) = check();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("listen.key") && out.contains("matches the certificate"),
        "{out}"
    );

    // The key of another certificate.
    let key = std::fs::read(d.join("agent.key")).unwrap();
    std::fs::copy(d.join("technician.key"), d.join("agent.key")).unwrap();
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("is not the key of listen.cert"), "{out}");
    assert!(out.contains("would not listen"), "{out}");

    // No key at all.
    std::fs::remove_file(d.join("agent.key")).unwrap();
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("ERROR    listen.key"), "{out}");
    std::fs::write(d.join("agent.key"), key).unwrap();

    // An expired technicians' CA.
    let old = accord::tls::demo::Ca::expired("Old CA").unwrap();
    std::fs::write(d.join("ca.pem"), &old.pem.cert).unwrap();
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("technicians' CA") && out.contains("expired on"),
        "{out}"
    );

    // An agent certificate expiring in 10 days: a warning, still runs.
    let ca = accord::tls::demo::Ca::new("Fresh CA").unwrap();
    std::fs::write(d.join("ca.pem"), &ca.pem.cert).unwrap();
    let soon = ca.leaf("localhost", "Test", true, 10).unwrap();
    std::fs::write(d.join("agent.pem"), &soon.cert).unwrap();
    std::fs::write(d.join("agent.key"), &soon.key).unwrap();
    let (code, out) = check();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("warning  listen.cert") && out.contains("renew it"),
        "{out}"
    );
}

/// `accord connect HOST --request-control`: the running `accord connect`
/// notes its session in $XDG_RUNTIME_DIR/accord (0600, removed when the
/// tunnel ends); the request for control finds it there and exits 0 when
/// granted, 2 when there is no such session of this technician's.
#[tokio::test(flavor = "multi_thread")]
async fn request_control_from_the_command_line() {
    use std::os::unix::fs::PermissionsExt;
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::ViewOnly, Duration::ZERO),
        Step::Answer(Answer::Control, Duration::from_millis(200)),
    ]);
    let mut agent = RunningAgent::start(pki.policy(stub.addr), prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let run = tempfile::tempdir().unwrap();
    let run_env = (
        "XDG_RUNTIME_DIR".to_string(),
        run.path().display().to_string(),
    );
    let tls_args = [
        "--ca",
        pki.ca_path.to_str().unwrap(),
        "--cert",
        pki.tech_cert.to_str().unwrap(),
        "--key",
        pki.tech_key.to_str().unwrap(),
    ];
    let raise = |extra: &[&str]| {
        let mut v = owned(&["connect", &target, "--request-control"]);
        v.extend(owned(&tls_args));
        v.extend(owned(extra));
        v
    };

    // Nothing running yet: a usage error naming what to do.
    let out = accord_env(raise(&[]), vec![run_env.clone()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--session"),
        "{}",
        text(&out.stderr)
    );

    let mut tunnel = Command::new(env!("CARGO_BIN_EXE_accord"))
        .args(connect_args(&pki, &target, &[]))
        .env("ACCORD_LOG", "warn")
        .env("LANG", "C.UTF-8")
        .env("XDG_RUNTIME_DIR", run.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let file = run
        .path()
        .join("accord")
        .join(format!("connect-127.0.0.1-{}.session", agent.addr.port()));
    for _ in 0..500 {
        if file.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let started = agent.wait_event("session_started", "mode", "view").await;
    let noted = std::fs::read_to_string(&file).unwrap();
    assert!(
        noted.starts_with(started["session"].as_str().unwrap()),
        "{noted}"
    );

    // Granted: exit 0 with the sentence.
    let out = accord_env(raise(&[]), vec![run_env.clone()]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("control granted"),
        "{}",
        text(&out.stderr)
    );
    agent.wait_event("mode_changed", "mode", "control").await;
    assert_eq!(agent.prompter.asked.lock().unwrap()[1].ticket, "INC-4711");

    // Already in control, or another session id: bad_request, exit 2.
    let out = accord_env(raise(&[]), vec![run_env.clone()]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("no view-only session of yours"));
    let other = uuid::Uuid::new_v4().to_string();
    let out = accord_env(
        raise(&["--session", &other, "--ticket", "T", "--reason", "R"]),
        vec![],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(agent.prompter.asked(), 2, "never asked for those");

    // The tunnel ends: its note goes with it.
    agent.ctl.end();
    let status = tokio::task::spawn_blocking(move || tunnel.wait().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(!file.exists());
    agent.stop().await;
}

/// Minutes from now (local wall clock) to a printed `HH:MM` or `HH h MM`,
/// across midnight.
fn minutes_ahead(hh: u32, mm: u32) -> i64 {
    let (h, m, _) = accord::platform::local_time(std::time::SystemTime::now()).unwrap();
    let printed = i64::from(hh) * 60 + i64::from(mm);
    (printed - (h * 60 + m)).rem_euclid(24 * 60)
}

/// Rate limited: exit 5, and the sentence says after what local time a
/// request may succeed again (an hour after the first prompt of the hour,
/// rounded up to the minute).
#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_says_when_to_retry() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let mut policy = pki.policy(stub.addr);
    policy.consent.max_prompts_per_technician_per_hour = 1;
    let prompter = ScriptedPrompter::new([Step::Answer(Answer::Refused, Duration::ZERO)]);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let out = accord_env(owned(&connect_args(&pki, &target, &[])), vec![]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));

    let out = accord_env(owned(&connect_args(&pki, &target, &[])), vec![]).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let at = err
        .split("Retry after ")
        .nth(1)
        .and_then(|rest| rest.get(..5))
        .unwrap_or_else(|| panic!("no retry time in {err}"));
    let (hh, mm) = at.split_once(':').unwrap();
    let ahead = minutes_ahead(hh.parse().unwrap(), mm.parse().unwrap());
    assert!(
        (59..=61).contains(&ahead),
        "{at} is {ahead} min ahead: {err}"
    );
    assert!(err.contains("too many requests"), "{err}");

    // In French: « réessayez après 14 h 32 ».
    let out = accord_env(
        owned(&connect_args(&pki, &target, &[])),
        vec![("LC_ALL".into(), "fr_FR.UTF-8".into())],
    )
    .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let at = err
        .split("Réessayez après ")
        .nth(1)
        .unwrap_or_else(|| panic!("no retry time in {err}"));
    let mut parts = at.split('\u{a0}');
    let hh: u32 = parts.next().unwrap().parse().unwrap();
    assert_eq!(parts.next(), Some("h"), "{err}");
    let mm: u32 = parts.next().unwrap().get(..2).unwrap().parse().unwrap();
    assert!((59..=61).contains(&minutes_ahead(hh, mm)), "{err}");
    assert_eq!(
        agent.prompter.asked(),
        1,
        "a rate-limited request asks nobody"
    );
    agent.stop().await;
}

/// A running `accord connect` whose standard error is read line by line.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_accord"))
            .args(args)
            .env("ACCORD_LOG", "warn")
            .env("LANG", "C.UTF-8")
            .env_remove("LC_ALL")
            .env_remove("LC_MESSAGES")
            .envs(env.iter().copied())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for l in std::io::BufReader::new(stderr).lines() {
                let Ok(l) = l else { break };
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (off the runtime's threads) for a line containing `needle`.
    async fn wait_line(&mut self, needle: &str) -> String {
        let until = std::time::Instant::now() + Duration::from_secs(15);
        while std::time::Instant::now() < until {
            match self.lines.try_recv() {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(needle) {
                        return l;
                    }
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        panic!("no line with {needle:?} in {:#?}", self.seen);
    }

    async fn exit_code(mut self) -> Option<i32> {
        tokio::task::spawn_blocking(move || self.child.wait().unwrap().code())
            .await
            .unwrap()
    }
}

/// The running `accord connect` prints a mode change when it happens and,
/// at the end, what ended the session; the exit code is DESIGN's.
#[tokio::test(flavor = "multi_thread")]
async fn the_end_and_mode_changes_are_printed() {
    let pki = Pki::new();
    let stub = RfbStub::start().await;
    let prompter = ScriptedPrompter::new([
        Step::Answer(Answer::Control, Duration::ZERO),
        Step::Answer(Answer::Control, Duration::ZERO),
        Step::Answer(Answer::Control, Duration::ZERO),
    ]);
    let mut policy = pki.policy(stub.addr);
    policy.session.idle_timeout = Duration::from_secs(3);
    let mut agent = RunningAgent::start(policy, prompter).await;
    let target = format!("127.0.0.1:{}", agent.addr.port());
    let args = connect_args(&pki, &target, &[]);

    // The clinician switches to view only, then ends the session.
    let mut run = Running::start(&args, &[]);
    run.wait_line("accepted (control)").await;
    agent.ctl.set_view_only();
    run.wait_line("accord connect: switched to view only by the workstation's user")
        .await;
    agent.ctl.end();
    let last = run
        .wait_line("accord connect: session ended by the workstation's user")
        .await;
    assert!(!last.contains('\u{1b}'), "{last:?}");
    assert_eq!(run.exit_code().await, Some(0));
    agent.wait_event("session_ended", "why", "user").await;
    wait_idle(&agent).await;

    // Nobody types: idle, in French; a normal end, exit 0.
    let mut run = Running::start(&args, &[("LC_ALL", "fr_FR.UTF-8")]);
    run.wait_line("accepté (contrôle)").await;
    run.wait_line("session terminée pour inactivité (idle)")
        .await;
    assert_eq!(run.exit_code().await, Some(0));
    wait_idle(&agent).await;

    // Accord stops on the workstation: exit 7, retry later.
    let mut run = Running::start(&args, &[]);
    run.wait_line("accepted (control)").await;
    agent.stop().await;
    run.wait_line("session ended: Accord stopped on the workstation (agent stopped)")
        .await;
    assert_eq!(run.exit_code().await, Some(7));
}

async fn wait_idle(agent: &RunningAgent) {
    for _ in 0..500 {
        if matches!(
            agent.ctl.state().borrow().activity,
            accord::broker::Activity::Idle
        ) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the agent stays busy");
}
