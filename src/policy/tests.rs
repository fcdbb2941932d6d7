use super::*;

fn problems(src: &str) -> Vec<Problem> {
    match Policy::parse_str(src, Some(Path::new("/etc/accord/policy.toml"))) {
        Err(PolicyError::Invalid { problems, .. }) => problems,
        other => panic!("expected problems, got {other:?}"),
    }
}

#[test]
fn every_default() {
    let p = Policy::parse_str("", None).unwrap();
    assert_eq!(p.listen.address, "0.0.0.0:5988".parse().unwrap());
    assert!(p.listen.cert.ends_with("agent.pem"));
    assert!(p.listen.key.ends_with("agent.key"));
    assert!(p.technicians.ca.ends_with("technicians-ca.pem"));
    assert!(p.technicians.allow.is_empty());
    assert_eq!(
        p.upstream.vnc,
        UpstreamAddr::Tcp("127.0.0.1:5900".parse().unwrap())
    );
    assert_eq!(p.upstream.password_file, None);
    assert_eq!(p.upstream.launch, Launch::Auto);
    assert_eq!(p.consent.timeout, Duration::from_secs(60));
    assert_eq!(p.consent.arm_delay, Duration::from_millis(1000));
    assert!(p.consent.allow_control);
    assert_eq!(p.consent.max_prompts_per_technician_per_hour, 6);
    assert_eq!(p.session.idle_timeout, Duration::from_secs(900));
    assert_eq!(p.session.max_duration, Duration::from_secs(7200));
    assert!(p.session.end_on_screen_lock);
    assert_eq!(p.session.clipboard, Clipboard::ToWorkstation);
    assert_eq!(p.audit.path, None);
    assert_eq!(p.audit.forward, None);
    assert_eq!(p.audit.forward_ca, None);
    assert_eq!(p.ui.language, Language::Auto);
    assert_eq!(p.ui.kill_shortcut, "Ctrl+Alt+Pause");
    assert_eq!(p, Policy::defaults());
}

#[test]
fn the_design_example_is_valid_and_round_trips() {
    let src = r#"
[listen]
address = "0.0.0.0:5988"
cert = "/etc/accord/agent.pem"
key  = "/etc/accord/agent.key"
[technicians]
ca = "/etc/accord/technicians-ca.pem"
allow = ["sha256:00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF", "CN=Jeanne Martin,O=Helpdesk CHU"]
[upstream]
launch = "x0vncserver"
vnc = "unix:/run/user/1000/vnc.sock"
password_file = ""
[consent]
timeout_s = 60
arm_delay_ms = 1000
allow_control = false
max_prompts_per_technician_per_hour = 6
[session]
idle_timeout_s = 900
max_duration_s = 7200
end_on_screen_lock = true
[audit]
path = ""
forward = "tls://siem.example:6514"
forward_ca = "/etc/accord/siem-ca.pem"
[ui]
language = "fr"
"#;
    let p = Policy::parse_str(src, None).unwrap();
    assert_eq!(p.technicians.allow.len(), 2);
    assert_eq!(
        p.technicians.allow[0],
        AllowEntry::Fingerprint(
            "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff".into()
        )
    );
    assert!(!p.consent.allow_control);
    assert_eq!(
        p.audit.forward,
        Some(ForwardTarget {
            host: "siem.example".into(),
            port: 6514
        })
    );
    let again = Policy::parse_str(&p.to_toml(), None).unwrap();
    assert_eq!(again, p);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let err = Policy::parse_str(
        "[consent]\ntimeout_s = 60\nalow_control = true\n",
        Some(Path::new("/etc/accord/policy.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("/etc/accord/policy.toml:3: "), "{err}");
    assert!(err.contains("alow_control"), "{err}");
    let err = Policy::parse_str("[consnet]\n", None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("consnet"), "{err}");
}

#[test]
fn out_of_range_and_bad_values() {
    let p =
        problems("[consent]\n\ntimeout_s = 5\narm_delay_ms = 0\n[session]\nidle_timeout_s = -1\n");
    assert_eq!(p.len(), 3, "{p:?}");
    assert_eq!(p[0].line, Some(3));
    assert_eq!(p[0].key, "consent.timeout_s");
    assert!(
        p[0].message.contains("valid: 10 to 600"),
        "{}",
        p[0].message
    );
    assert_eq!(p[1].key, "consent.arm_delay_ms");
    assert_eq!(p[2].line, Some(6));

    let p = problems("[upstream]\nvnc = \"10.0.0.5:5900\"\n");
    assert!(p[0].message.contains("not a loopback"), "{p:?}");
    let p = problems("[consent]\ntimeout_s = \"sixty\"\n");
    assert_eq!(p[0].line, Some(2), "{p:?}");
    let p = problems("[technicians]\nallow = [\"sha256:12\"]\n");
    assert_eq!(p[0].key, "technicians.allow");
    let p = problems("[audit]\nforward = \"udp://x:514\"\n");
    assert_eq!(p[0].key, "audit.forward");
    let p = problems("[audit]\nforward = \"tls://x:6514\"\n");
    assert!(p[0].message.contains("forward_ca"));
    let p = problems("[session]\nclipboard = \"all\"\n");
    assert_eq!(p[0].key, "session.clipboard");
    assert_eq!(p[0].line, Some(2));
    assert!(p[0].message.contains("to_workstation"), "{}", p[0].message);
    for (v, want) in [
        ("none", Clipboard::None),
        ("to_workstation", Clipboard::ToWorkstation),
        ("both", Clipboard::Both),
    ] {
        let src = format!("[session]\nclipboard = \"{v}\"\n");
        assert_eq!(
            Policy::parse_str(&src, None).unwrap().session.clipboard,
            want
        );
    }
    let p = problems("[upstream]\n\nlaunch = \"tigervnc\"\n");
    assert_eq!(p[0].key, "upstream.launch");
    assert_eq!(p[0].line, Some(3));
    assert!(p[0].message.contains("x0vncserver"), "{}", p[0].message);
    for l in [
        Launch::Auto,
        Launch::X11vnc,
        Launch::X0vncserver,
        Launch::Mutter,
        Launch::None,
    ] {
        let src = format!("[upstream]\nlaunch = \"{}\"\n", l.as_str());
        assert_eq!(Policy::parse_str(&src, None).unwrap().upstream.launch, l);
    }
    let p = problems("[ui]\nlanguage = \"de\"\n");
    assert_eq!(p[0].key, "ui.language");
    let p = problems("[session]\nidle_timeout_s = 3000\nmax_duration_s = 600\n");
    assert!(p[0].message.contains("longer than"));
}

#[test]
fn the_shipped_policies_are_valid_and_launch_where_accord_can() {
    for (src, launch) in [
        (include_str!("../../assets/policy.toml"), Launch::Auto),
        // Nothing starts a VNC server on Windows (docs/windows.md).
        (
            include_str!("../../installer/windows/policy.toml"),
            Launch::None,
        ),
    ] {
        let p = Policy::parse_str(src, None).unwrap();
        assert_eq!(p.upstream.launch, launch);
    }
}

#[test]
fn sd_ids() {
    assert!(valid_sd_id(DEFAULT_SD_ID));
    assert!(valid_sd_id("chu-lyon@61234"));
    assert!(valid_sd_id("accord@61234.1.2"));
    for bad in [
        "accord",
        "accord@",
        "@1",
        "a@b",
        "a b@1",
        "a=b@1",
        "a]@1",
        "accord@123456789012345678901234567",
    ] {
        assert!(!valid_sd_id(bad), "{bad}");
    }
}

#[test]
fn conformity_report_names_every_rule() {
    let r = Policy::defaults().conformity_report();
    for rule in ["O6", "O7", "O8", "T5/T7", "T8", "T10", "T11", "T12", "E3"] {
        assert!(r.contains(rule), "{rule} missing in {r}");
    }
    assert!(r.contains("NOT centralised"));
}

#[test]
fn conformity_says_whether_accord_is_the_only_way_in() {
    let mut p = Policy::defaults();
    let line = |p: &Policy| {
        p.conformity_report()
            .lines()
            .find(|l| l.contains("VNC server"))
            .unwrap_or_default()
            .to_string()
    };
    let l = line(&p);
    assert!(
        l.contains(" ok ") && l.contains("only for a consented session"),
        "{l}"
    );
    p.upstream.launch = Launch::None;
    let l = line(&p);
    assert!(
        l.contains("warning") && l.contains("every local account"),
        "{l}"
    );
    p.upstream.vnc = UpstreamAddr::Unix("/run/user/1000/vnc.sock".into());
    assert!(line(&p).contains(" ok "), "{}", line(&p));
}

#[test]
fn single_seat_names_its_users() {
    let base = "[listen]\naddress = \"127.0.0.1:5988\"\n";
    let p = problems(&format!("{base}[service]\nseat = \"single\"\n"));
    assert!(p.iter().any(|p| p.key == "service.users"), "{p:?}");
    let p = problems(&format!("{base}[service]\nseat = \"single\"\nusers = []\n"));
    assert!(p.iter().any(|p| p.key == "service.users"), "{p:?}");
    let p = problems(&format!("{base}[service]\nusers = [\"anne\"]\n"));
    assert!(
        p.iter()
            .any(|p| p.key == "service.users" && p.message.contains("single"))
    );
    let p = problems(&format!(
        "{base}[service]\nseat = \"single\"\nusers = [\"an ne\"]\n"
    ));
    assert!(p.iter().any(|p| p.key == "service.users"), "{p:?}");
    let ok = Policy::parse_str(
        &format!("{base}[service]\nseat = \"single\"\nusers = [\"anne\", \"b.c\"]\n"),
        None,
    )
    .unwrap();
    assert_eq!(ok.service.users, ["anne", "b.c"]);
    let again = Policy::parse_str(&ok.to_toml(), None).unwrap();
    assert_eq!(again.service, ok.service);
}

/// The value parsers' messages, word for word: `accord policy check` prints
/// them and administrators search for them.
#[test]
fn value_messages_are_pinned() {
    for (src, key, want) in [
        (
            "[listen]\naddress = \"nope\"\n",
            "listen.address",
            r#""nope" is not an IP:port address (e.g. "0.0.0.0:5988")"#,
        ),
        (
            "[listen]\ncert = \" \"\n",
            "listen.cert",
            "must not be empty (a file path)",
        ),
        (
            "[upstream]\nvnc = \"unix:rel\"\n",
            "upstream.vnc",
            r#""unix:rel": a Unix socket needs an absolute path, e.g. "unix:/run/user/1000/vnc.sock""#,
        ),
        (
            "[upstream]\nvnc = \"unix:\"\n",
            "upstream.vnc",
            r#""unix:": a Unix socket needs an absolute path, e.g. "unix:/run/user/1000/vnc.sock""#,
        ),
        (
            "[upstream]\nvnc = \"10.0.0.5:5900\"\n",
            "upstream.vnc",
            "10.0.0.5:5900 is not a loopback address: the VNC server must only be reachable locally (127.0.0.1:5900 or unix:/path)",
        ),
        (
            "[upstream]\nvnc = \"localhost\"\n",
            "upstream.vnc",
            r#""localhost" is not "IP:port" or "unix:/path" (e.g. "127.0.0.1:5900")"#,
        ),
        (
            "[audit]\nforward = \"udp://x:514\"\n",
            "audit.forward",
            r#""udp://x:514" is not "tls://host:port" (e.g. "tls://siem.example:6514")"#,
        ),
        (
            "[audit]\nforward = \"tls://x\"\n",
            "audit.forward",
            r#""tls://x" is not "tls://host:port" (e.g. "tls://siem.example:6514")"#,
        ),
        (
            "[audit]\nforward = \"tls://x:port\"\n",
            "audit.forward",
            r#""tls://x:port" is not "tls://host:port" (e.g. "tls://siem.example:6514")"#,
        ),
        (
            "[audit]\nforward = \"tls://:6514\"\n",
            "audit.forward",
            r#""tls://:6514" is not "tls://host:port" (e.g. "tls://siem.example:6514")"#,
        ),
        (
            "[audit]\nsd_id = \"bad id\"\n",
            "audit.sd_id",
            r#""bad id" is not an SD-ID: expected name@<your enterprise number>, e.g. "accord@61234" (at most 32 characters, no space, =, ] or ")"#,
        ),
        (
            "[ui]\nkill_shortcut = \" \"\n",
            "ui.kill_shortcut",
            r#"must not be empty (e.g. "Ctrl+Alt+Pause")"#,
        ),
        (
            "[ui]\nlanguage = \"de\"\n",
            "ui.language",
            r#""de" is not one of "auto", "fr", "en""#,
        ),
    ] {
        let p = problems(src);
        assert_eq!(p.len(), 1, "{src}: {p:?}");
        assert_eq!(p[0].key, key, "{src}");
        assert_eq!(p[0].message, want, "{src}");
    }
}
