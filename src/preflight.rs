//! What `accord policy check` verifies on this machine, beyond the policy's
//! syntax: the files it names exist and are readable by the user who runs
//! the check, the agent's key matches its certificate, certificates are
//! within their validity (a warning under [`EXPIRY_WARNING`]), the
//! technicians' CA is a CA, the revocation list and the collector's CA
//! parse. A policy that passes the syntax check but names a missing key
//! would leave the agent not listening; IT must learn it here, not from a
//! technician on the phone.

use crate::policy::Policy;
use crate::tls;
use std::path::Path;
use std::time::Duration;
use x509_parser::prelude::{FromDer, X509Certificate};

/// Certificates expiring sooner than this are reported.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    /// The agent would not listen, or would refuse every request.
    Error,
}

/// One line of the check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    /// The policy key the finding is about, e.g. `listen.key`.
    pub key: &'static str,
    pub message: String,
}

/// Runs every check; `now` is the Unix time to judge validity against.
pub fn check(policy: &Policy, now: i64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut push = |level, key, message: String| {
        out.push(Finding {
            level,
            key,
            message,
        })
    };

    // The key must stay out of login users' reach: a technician
    // in control acts with the clinician's rights.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let Ok(m) = std::fs::metadata(&policy.listen.key)
            && m.mode() & 0o004 != 0
        {
            push(
                Level::Warning,
                "listen.key",
                format!(
                    "{} is readable by every local user: chown root:accord and chmod 0640",
                    policy.listen.key.display()
                ),
            );
        }
    }

    // The agent's certificate and key.
    match tls::load_certs(&policy.listen.cert) {
        Err(e) => push(Level::Error, "listen.cert", e.to_string()),
        Ok(chain) => {
            if let Some(leaf) = chain.first() {
                let (level, msg) = validity(leaf.as_ref(), now, "agent certificate");
                push(level, "listen.cert", msg);
                if let Some(sans) = san_names(leaf.as_ref()) {
                    push(
                        if sans.is_empty() {
                            Level::Warning
                        } else {
                            Level::Ok
                        },
                        "listen.cert",
                        if sans.is_empty() {
                            "no subject alternative names: technicians cannot verify this workstation by name".into()
                        } else {
                            format!("valid for: {}", sans.join(", "))
                        },
                    );
                }
            }
            match tls::load_key(&policy.listen.key) {
                Err(e) => push(Level::Error, "listen.key", e.to_string()),
                Ok(key) => {
                    let provider = rustls::crypto::ring::default_provider();
                    match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
                        Ok(_) => push(
                            Level::Ok,
                            "listen.key",
                            format!(
                                "{}: readable, matches the certificate",
                                policy.listen.key.display()
                            ),
                        ),
                        Err(rustls::Error::InconsistentKeys(_)) => push(
                            Level::Error,
                            "listen.key",
                            format!(
                                "{} is not the key of listen.cert {}",
                                policy.listen.key.display(),
                                policy.listen.cert.display()
                            ),
                        ),
                        Err(e) => push(Level::Error, "listen.key", e.to_string()),
                    }
                }
            }
        }
    }

    // The technicians' CA.
    match tls::load_certs(&policy.technicians.ca) {
        Err(e) => push(Level::Error, "technicians.ca", e.to_string()),
        Ok(cas) => {
            for ca in &cas {
                let (level, msg) = validity(ca.as_ref(), now, "technicians' CA");
                push(level, "technicians.ca", msg);
                if !is_ca(ca.as_ref()) {
                    push(
                        Level::Error,
                        "technicians.ca",
                        "is not a CA certificate (basicConstraints CA:TRUE missing): no technician certificate can chain to it".into(),
                    );
                }
            }
        }
    }
    if let Some(crl) = &policy.technicians.crl {
        match tls::load_crls(crl) {
            Ok(l) => push(
                Level::Ok,
                "technicians.crl",
                format!("{}: {} revocation list(s)", crl.display(), l.len()),
            ),
            Err(e) => push(Level::Error, "technicians.crl", e.to_string()),
        }
    }

    // A VNC server Accord did not start, on a port, is a way in
    // that bypasses consent for every local account.
    if policy.upstream.launch == crate::policy::Launch::None
        && let crate::policy::UpstreamAddr::Tcp(a) = &policy.upstream.vnc
    {
        push(
            Level::Warning,
            "upstream.launch",
            format!(
                "launch = \"none\" with vnc = \"{a}\": every local account can reach this VNC server without consent (set launch = \"auto\", or vnc = \"unix:/path\" to a 0600 socket)"
            ),
        );
    }

    #[cfg(unix)]
    if policy.upstream.launch != crate::policy::Launch::None {
        match crate::launch::pick(policy.upstream.launch) {
            Ok(server) => push(
                Level::Ok,
                "upstream.launch",
                match policy.upstream.launch {
                    crate::policy::Launch::Auto if server != crate::launch::Server::Mutter => {
                        format!(
                            "{server} is started for each X11 session, after consent; in a GNOME Wayland session, Accord's own server through Mutter"
                        )
                    }
                    _ => format!("{server} is started for each session, after consent"),
                },
            ),
            // The agent still listens; every accepted session would fail.
            Err(e) => push(
                Level::Warning,
                "upstream.launch",
                format!("{e}: every accepted session will fail (upstream_unreachable)"),
            ),
        }
    }

    // What the service reads besides.
    if let Some(p) = &policy.upstream.password_file {
        readable(&mut push, "upstream.password_file", p);
    }
    if policy.audit.forward.is_some()
        && let Some(ca) = &policy.audit.forward_ca
    {
        match tls::load_certs(ca) {
            Ok(cas) => {
                for c in &cas {
                    let (level, msg) = validity(c.as_ref(), now, "collector's CA");
                    push(level, "audit.forward_ca", msg);
                }
            }
            Err(e) => push(
                Level::Error,
                "audit.forward_ca",
                format!("{e}: records would stay on the workstation"),
            ),
        }
    }
    for (key, p) in [
        ("audit.forward_cert", &policy.audit.forward_cert),
        ("audit.forward_key", &policy.audit.forward_key),
    ] {
        if let Some(p) = p {
            readable(&mut push, key, p);
        }
    }
    // The login screen's default session: a Wayland one cannot be shared.
    for d in crate::login_screen::defaults(Path::new("/")) {
        let level = if d.wayland { Level::Warning } else { Level::Ok };
        push(level, "upstream.launch", crate::login_screen::describe(&d));
    }
    out
}

/// Whether the agent would listen and record (no [`Level::Error`]).
pub fn would_run(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.level != Level::Error)
}

fn readable(push: &mut impl FnMut(Level, &'static str, String), key: &'static str, p: &Path) {
    match std::fs::File::open(p) {
        Ok(_) => push(Level::Ok, key, format!("{}: readable", p.display())),
        Err(e) => push(Level::Error, key, format!("{}: {e}", p.display())),
    }
}

fn parse(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

/// Validity of a certificate at `now`: expired or not yet valid is an error,
/// close to expiry a warning.
fn validity(der: &[u8], now: i64, what: &str) -> (Level, String) {
    let Some(c) = parse(der) else {
        return (Level::Error, format!("{what}: cannot be parsed"));
    };
    let (from, to) = (
        c.validity().not_before.timestamp(),
        c.validity().not_after.timestamp(),
    );
    let date = |t: i64| {
        time::OffsetDateTime::from_unix_timestamp(t)
            .map(|d| d.date().to_string())
            .unwrap_or_else(|_| t.to_string())
    };
    let subject = c.subject().to_string();
    if now > to {
        (
            Level::Error,
            format!("{what} {subject} expired on {}", date(to)),
        )
    } else if now < from {
        (
            Level::Error,
            format!("{what} {subject} not valid before {}", date(from)),
        )
    } else {
        let left = Duration::from_secs(u64::try_from(to - now).unwrap_or(0));
        if left < EXPIRY_WARNING {
            (
                Level::Warning,
                format!(
                    "{what} {subject} expires on {} (in {} days): renew it",
                    date(to),
                    left.as_secs() / 86_400
                ),
            )
        } else {
            (
                Level::Ok,
                format!("{what} {subject} valid until {}", date(to)),
            )
        }
    }
}

fn is_ca(der: &[u8]) -> bool {
    parse(der)
        .and_then(|c| c.basic_constraints().ok().flatten().map(|b| b.value.ca))
        .unwrap_or(false)
}

/// The certificate's DNS names and IP addresses, `None` if it cannot be read.
fn san_names(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let c = parse(der)?;
    let names = match c.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some((*d).to_string()),
                GeneralName::IPAddress(ip) => match ip.len() {
                    4 => <[u8; 4]>::try_from(*ip)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(*ip)
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    Some(names)
}

/// The check as `accord policy check` prints it.
pub fn render(findings: &[Finding]) -> String {
    let mut s = String::new();
    for f in findings {
        let tag = match f.level {
            Level::Ok => "ok     ",
            Level::Warning => "warning",
            Level::Error => "ERROR  ",
        };
        s.push_str(&format!("  {tag}  {:<22} {}\n", f.key, f.message));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Launch, UpstreamAddr};

    fn launch_findings(p: &Policy, level: Level) -> Vec<String> {
        check(p, 0)
            .into_iter()
            .filter(|f| f.key == "upstream.launch" && f.level == level)
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn a_tcp_server_not_started_by_accord_is_a_warning() {
        let mut p = Policy::defaults();
        p.upstream.launch = Launch::None;
        let w = launch_findings(&p, Level::Warning);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("every local account can reach this VNC server without consent"),
            "{}",
            w[0]
        );
        p.upstream.vnc = UpstreamAddr::Unix("/run/user/1000/vnc.sock".into());
        assert!(launch_findings(&p, Level::Warning).is_empty());
        p.upstream.vnc = UpstreamAddr::Tcp("127.0.0.1:5900".parse().unwrap());
        p.upstream.launch = Launch::Auto;
        // Launching: which server, or that none is installed; never "reach".
        let all = [
            launch_findings(&p, Level::Ok),
            launch_findings(&p, Level::Warning),
        ]
        .concat();
        assert_eq!(all.len(), 1, "{all:?}");
        assert!(
            all[0].contains("is started for each X11 session, after consent; in a GNOME Wayland session, Accord's own server through Mutter")
                || all[0].contains("is started for each session")
                || all[0].contains("no VNC server installed"),
            "{}",
            all[0]
        );
    }
}
