//! From TOML text to a [`Policy`]: the raw form serde fills in, then one
//! function per section that checks it and returns the typed section (as
//! ripgrep turns its low-level arguments into high-level ones).
//!
//! A bad value is recorded as a [`Problem`] and replaced by its default, so
//! that every problem of the file is reported at once; a policy with any
//! problem is never returned.

use super::{
    AllowEntry, Audit, Clipboard, Consent, ForwardTarget, Language, Launch, Listen, Policy,
    PolicyError, Problem, SeatMode, Service, SessionLimits, Technicians, Ui, Upstream,
    UpstreamAddr, every, limits, millis, secs, spelled, valid_sd_id,
};
use serde::Deserialize;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};
use toml::Spanned;

// ---------------------------------------------------------------- raw form

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    #[serde(default)]
    listen: RawListen,
    #[serde(default)]
    technicians: RawTechnicians,
    #[serde(default)]
    upstream: RawUpstream,
    #[serde(default)]
    consent: RawConsent,
    #[serde(default)]
    session: RawSession,
    #[serde(default)]
    audit: RawAudit,
    #[serde(default)]
    ui: RawUi,
    #[serde(default)]
    service: RawService,
}

/// A key as written, with its place in the file; `None` = absent.
type S<T> = Option<Spanned<T>>;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawListen {
    address: S<String>,
    cert: S<String>,
    key: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTechnicians {
    ca: S<String>,
    allow: S<Vec<Spanned<String>>>,
    crl: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    launch: S<String>,
    vnc: S<String>,
    password_file: S<String>,
}

/// Integers are read as TOML's `i64` so that a negative or huge value is
/// reported as out of range rather than as a type error.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    timeout_s: S<i64>,
    arm_delay_ms: S<i64>,
    allow_control: S<bool>,
    max_prompts_per_technician_per_hour: S<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSession {
    idle_timeout_s: S<i64>,
    max_duration_s: S<i64>,
    end_on_screen_lock: S<bool>,
    clipboard: S<String>,
    confirm_every_s: S<i64>,
    confirm_grace_s: S<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAudit {
    path: S<String>,
    forward: S<String>,
    forward_ca: S<String>,
    forward_cert: S<String>,
    forward_key: S<String>,
    sd_id: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawUi {
    language: S<String>,
    kill_shortcut: S<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawService {
    seat: S<String>,
    users: S<Vec<Spanned<String>>>,
}

// ---------------------------------------------------------------- checker

/// Collects the problems of one file, each with its line.
struct Checker<'a> {
    src: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn problem<T>(&mut self, v: &Spanned<T>, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(line_of(self.src, v.span().start)),
            key: key.into(),
            message: message.into(),
        });
    }

    /// A required key that is absent (no line to point at).
    fn missing(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            line: None,
            key: key.into(),
            message: message.into(),
        });
    }

    /// A string key read by `parse`, whose error is the problem's message.
    fn parsed<T>(
        &mut self,
        v: &S<String>,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, ValueError>,
        default: T,
    ) -> T {
        let Some(s) = v else { return default };
        match parse(s.get_ref()) {
            Ok(t) => t,
            Err(e) => {
                self.problem(s, key, e.to_string());
                default
            }
        }
    }

    /// A key spelled as one of `all`; the problem lists every spelling.
    fn choice<T: Copy>(
        &mut self,
        v: &S<String>,
        key: &str,
        all: &[T],
        as_str: fn(T) -> &'static str,
        default: T,
    ) -> T {
        let parse = |s: &str| {
            spelled(all, as_str, s).ok_or_else(|| {
                let allowed: Vec<String> =
                    all.iter().map(|&t| format!("{:?}", as_str(t))).collect();
                ValueError::NotOneOf {
                    value: s.to_owned(),
                    allowed: allowed.join(", "),
                }
            })
        };
        self.parsed(v, key, parse, default)
    }

    fn int(&mut self, v: &S<i64>, key: &str, range: limits::Range) -> u32 {
        let limits::Range { min, max, default } = range;
        let Some(s) = v else { return default };
        let n = *s.get_ref();
        match u32::try_from(n) {
            Ok(k) if (min..=max).contains(&k) => k,
            _ => {
                self.problem(
                    s,
                    key,
                    format!("{n} is out of range (valid: {min} to {max}, default {default})"),
                );
                default
            }
        }
    }

    fn path(&mut self, v: &S<String>, key: &str, default: PathBuf) -> PathBuf {
        let parse = |s: &str| {
            if s.trim().is_empty() {
                Err(ValueError::EmptyPath)
            } else {
                Ok(PathBuf::from(s))
            }
        };
        self.parsed(v, key, parse, default)
    }
}

/// 1-based line of byte `offset` in `src`.
fn line_of(src: &str, offset: usize) -> usize {
    src.bytes().take(offset).filter(|&b| b == b'\n').count() + 1
}

/// Empty string = not set (the DESIGN.md defaults use `""` for "none").
fn opt_path(v: &S<String>) -> Option<PathBuf> {
    v.as_ref()
        .map(|s| s.get_ref().trim())
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
}

fn flag(v: &S<bool>, default: bool) -> bool {
    v.as_ref().map_or(default, |s| *s.get_ref())
}

// ---------------------------------------------------------------- sections

impl Policy {
    /// Validates a policy text; `path` only names it in messages.
    pub fn parse_str(src: &str, path: Option<&Path>) -> Result<Policy, PolicyError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<policy>".into());
        let raw: RawPolicy = toml::from_str(src).map_err(|e| PolicyError::Invalid {
            path: name.clone(),
            problems: vec![syntax(src, &e)],
        })?;
        let mut c = Checker {
            src,
            problems: Vec::new(),
        };
        // Fields are evaluated in order: problems come section by section.
        let policy = Policy {
            source: path.map(Path::to_path_buf),
            listen: listen(&mut c, &raw.listen),
            technicians: technicians(&mut c, &raw.technicians),
            upstream: upstream(&mut c, &raw.upstream),
            consent: consent(&mut c, &raw.consent),
            session: session(&mut c, &raw.session),
            audit: audit(&mut c, &raw.audit),
            ui: ui(&mut c, &raw.ui),
            service: service(&mut c, &raw.service),
        };
        if c.problems.is_empty() {
            Ok(policy)
        } else {
            Err(PolicyError::Invalid {
                path: name,
                problems: c.problems,
            })
        }
    }
}

/// A TOML syntax error, an unknown key or a wrong type: serde stops at the
/// first, so it is the only problem reported.
fn syntax(src: &str, e: &toml::de::Error) -> Problem {
    let message = e.message().to_string();
    Problem {
        line: e.span().map(|s| line_of(src, s.start)),
        key: message
            .split('`')
            .nth(1)
            .map(str::to_string)
            .unwrap_or_else(|| "syntax".into()),
        message: message.replace('\n', " "),
    }
}

fn listen(c: &mut Checker, raw: &RawListen) -> Listen {
    let d = Listen::default();
    let address = c.parsed(
        &raw.address,
        "listen.address",
        |s| {
            s.parse::<SocketAddr>()
                .map_err(|source| ValueError::NotListenAddress {
                    value: s.to_owned(),
                    example: d.address,
                    source,
                })
        },
        d.address,
    );
    Listen {
        address,
        cert: c.path(&raw.cert, "listen.cert", d.cert),
        key: c.path(&raw.key, "listen.key", d.key),
    }
}

fn technicians(c: &mut Checker, raw: &RawTechnicians) -> Technicians {
    let d = Technicians::default();
    let mut allow = d.allow;
    for e in raw.allow.iter().flat_map(|list| list.get_ref()) {
        match allow_entry(e.get_ref()) {
            Some(a) => allow.push(a),
            None => c.problem(
                e,
                "technicians.allow",
                format!(
                    "{:?} is neither \"sha256:<64 hex digits>\" nor a subject starting with \"CN=\"",
                    e.get_ref()
                ),
            ),
        }
    }
    Technicians {
        ca: c.path(&raw.ca, "technicians.ca", d.ca),
        allow,
        crl: opt_path(&raw.crl),
    }
}

fn upstream(c: &mut Checker, raw: &RawUpstream) -> Upstream {
    let d = Upstream::default();
    let vnc = c.parsed(&raw.vnc, "upstream.vnc", upstream_addr, d.vnc);
    let launch = c.choice(
        &raw.launch,
        "upstream.launch",
        &Launch::ALL,
        Launch::as_str,
        d.launch,
    );
    Upstream {
        launch,
        vnc,
        password_file: opt_path(&raw.password_file),
    }
}

fn consent(c: &mut Checker, raw: &RawConsent) -> Consent {
    let d = Consent::default();
    Consent {
        timeout: secs(c.int(&raw.timeout_s, "consent.timeout_s", limits::TIMEOUT_S)),
        arm_delay: millis(c.int(
            &raw.arm_delay_ms,
            "consent.arm_delay_ms",
            limits::ARM_DELAY_MS,
        )),
        allow_control: flag(&raw.allow_control, d.allow_control),
        max_prompts_per_technician_per_hour: c.int(
            &raw.max_prompts_per_technician_per_hour,
            "consent.max_prompts_per_technician_per_hour",
            limits::MAX_PROMPTS,
        ),
    }
}

fn session(c: &mut Checker, raw: &RawSession) -> SessionLimits {
    let d = SessionLimits::default();
    let idle = c.int(
        &raw.idle_timeout_s,
        "session.idle_timeout_s",
        limits::IDLE_TIMEOUT_S,
    );
    let max = c.int(
        &raw.max_duration_s,
        "session.max_duration_s",
        limits::MAX_DURATION_S,
    );
    if idle > max
        && let Some(s) = &raw.idle_timeout_s
    {
        c.problem(
            s,
            "session.idle_timeout_s",
            format!("{idle} is longer than session.max_duration_s ({max})"),
        );
    }
    let clipboard = c.choice(
        &raw.clipboard,
        "session.clipboard",
        &Clipboard::ALL,
        Clipboard::as_str,
        d.clipboard,
    );
    let confirm_every = c.int(
        &raw.confirm_every_s,
        "session.confirm_every_s",
        limits::CONFIRM_EVERY_S,
    );
    let confirm_grace = c.int(
        &raw.confirm_grace_s,
        "session.confirm_grace_s",
        limits::CONFIRM_GRACE_S,
    );
    SessionLimits {
        idle_timeout: secs(idle),
        max_duration: secs(max),
        end_on_screen_lock: flag(&raw.end_on_screen_lock, d.end_on_screen_lock),
        clipboard,
        confirm_every: every(confirm_every),
        confirm_grace: secs(confirm_grace),
    }
}

fn audit(c: &mut Checker, raw: &RawAudit) -> Audit {
    let d = Audit::default();
    let forward = c.parsed(
        &raw.forward,
        "audit.forward",
        |s| {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                forward_target(s).map(Some)
            }
        },
        d.forward,
    );
    let audit = Audit {
        path: opt_path(&raw.path),
        forward,
        forward_ca: opt_path(&raw.forward_ca),
        forward_cert: opt_path(&raw.forward_cert),
        forward_key: opt_path(&raw.forward_key),
        sd_id: c.parsed(&raw.sd_id, "audit.sd_id", sd_id, d.sd_id),
    };
    if audit.forward.is_some()
        && audit.forward_ca.is_none()
        && let Some(s) = &raw.forward
    {
        c.problem(
            s,
            "audit.forward",
            "needs audit.forward_ca (the CA that signed the collector's certificate)",
        );
    }
    if audit.forward_cert.is_some() != audit.forward_key.is_some()
        && let Some(s) = raw.forward_cert.as_ref().or(raw.forward_key.as_ref())
    {
        c.problem(
            s,
            "audit.forward_cert",
            "audit.forward_cert and audit.forward_key go together",
        );
    }
    audit
}

fn ui(c: &mut Checker, raw: &RawUi) -> Ui {
    let d = Ui::default();
    let language = c.choice(
        &raw.language,
        "ui.language",
        &Language::ALL,
        Language::as_str,
        d.language,
    );
    let kill_shortcut = c.parsed(
        &raw.kill_shortcut,
        "ui.kill_shortcut",
        |s| {
            if s.trim().is_empty() {
                Err(ValueError::EmptyShortcut {
                    example: d.kill_shortcut.clone(),
                })
            } else {
                Ok(s.to_owned())
            }
        },
        d.kill_shortcut.clone(),
    );
    Ui {
        language,
        kill_shortcut,
    }
}

fn service(c: &mut Checker, raw: &RawService) -> Service {
    let d = Service::default();
    let seat = c.choice(
        &raw.seat,
        "service.seat",
        &SeatMode::ALL,
        SeatMode::as_str,
        d.seat,
    );
    for n in raw.users.iter().flat_map(|list| list.get_ref()) {
        if !login_name(n.get_ref()) {
            c.problem(
                n,
                "service.users",
                format!("{:?} is not a login name", n.get_ref()),
            );
        }
    }
    match (seat, &raw.users) {
        (SeatMode::Single, None) => c.missing(
            "service.users",
            "required with seat = \"single\": the login names whose helpers may be asked, e.g. users = [\"clinicien\"] (without logind nothing else tells who is in front of the screen)",
        ),
        (SeatMode::Single, Some(u)) if u.get_ref().is_empty() => c.problem(
            u,
            "service.users",
            "must name at least one login with seat = \"single\"",
        ),
        (SeatMode::Logind, Some(u)) => c.problem(
            u,
            "service.users",
            "applies to seat = \"single\" only (with logind, the seat's active session says who is asked)",
        ),
        _ => {}
    }
    let users = raw.users.as_ref().map_or(d.users, |list| {
        list.get_ref().iter().map(|n| n.get_ref().clone()).collect()
    });
    Service { seat, users }
}

// ---------------------------------------------------------------- values

fn allow_entry(s: &str) -> Option<AllowEntry> {
    let t = s.trim();
    if let Some(hex) = t.strip_prefix("sha256:") {
        let hex = hex.to_ascii_lowercase();
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(AllowEntry::Fingerprint(format!("sha256:{hex}")));
        }
        return None;
    }
    if t.starts_with("CN=") && t.len() > 3 {
        return Some(AllowEntry::Subject(t.to_string()));
    }
    None
}

/// Why a key's value was refused. Its text is the problem's message that
/// `accord policy check` prints and administrators search for: keep it word
/// for word (pinned by `policy::tests::value_messages_are_pinned`).
#[derive(Debug, thiserror::Error)]
enum ValueError {
    #[error("{value:?} is not one of {allowed}")]
    NotOneOf { value: String, allowed: String },
    #[error("must not be empty (a file path)")]
    EmptyPath,
    #[error("{value:?} is not an IP:port address (e.g. \"{example}\")")]
    NotListenAddress {
        value: String,
        example: SocketAddr,
        #[source]
        source: AddrParseError,
    },
    #[error("{0:?}: a Unix socket needs an absolute path, e.g. \"unix:/run/user/1000/vnc.sock\"")]
    RelativeSocket(String),
    /// A VNC server reachable from the network would bypass consent.
    #[error(
        "{0} is not a loopback address: the VNC server must only be reachable locally (127.0.0.1:5900 or unix:/path)"
    )]
    NotLoopback(SocketAddr),
    #[error("{value:?} is not \"IP:port\" or \"unix:/path\" (e.g. \"127.0.0.1:5900\")")]
    NotUpstreamAddress {
        value: String,
        #[source]
        source: AddrParseError,
    },
    #[error("{0:?} is not \"tls://host:port\" (e.g. \"tls://siem.example:6514\")")]
    NotTlsTarget(String),
    #[error(
        "{0:?} is not an SD-ID: expected name@<your enterprise number>, e.g. \"accord@61234\" (at most 32 characters, no space, =, ] or \")"
    )]
    NotSdId(String),
    #[error("must not be empty (e.g. {example:?})")]
    EmptyShortcut { example: String },
}

fn upstream_addr(s: &str) -> Result<UpstreamAddr, ValueError> {
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() || !p.starts_with('/') {
            return Err(ValueError::RelativeSocket(s.to_owned()));
        }
        return Ok(UpstreamAddr::Unix(PathBuf::from(p)));
    }
    match s.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Ok(UpstreamAddr::Tcp(a)),
        Ok(a) => Err(ValueError::NotLoopback(a)),
        Err(source) => Err(ValueError::NotUpstreamAddress {
            value: s.to_owned(),
            source,
        }),
    }
}

fn forward_target(s: &str) -> Result<ForwardTarget, ValueError> {
    let bad = || ValueError::NotTlsTarget(s.to_owned());
    let rest = s.strip_prefix("tls://").ok_or_else(bad)?;
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port: u16 = port.parse().map_err(|_| bad())?;
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok(ForwardTarget {
        host: host.to_string(),
        port,
    })
}

fn sd_id(s: &str) -> Result<String, ValueError> {
    if valid_sd_id(s) {
        Ok(s.to_owned())
    } else {
        Err(ValueError::NotSdId(s.to_owned()))
    }
}

/// A login name or decimal uid: letters, digits, `.`, `_` and `-` only.
fn login_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch))
}
