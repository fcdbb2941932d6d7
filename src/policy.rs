//! The machine-wide policy: parse, validate, then act.
//!
//! IT deploys one TOML file per workstation. Every key has a safe default and
//! every unknown key is an error, because a typo (`alow_control`) must never
//! silently leave a weaker setting in force. Errors name the file, the line and
//! the key, and say what would be valid. Only a [`Policy`] (validated) can be
//! used by the rest of Accord; the raw form never leaves this module.

use serde::Deserialize;
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A validated policy.
#[derive(Clone, Debug, PartialEq)]
pub struct Policy {
    /// Where it came from, for messages (`None` = built-in defaults).
    pub source: Option<PathBuf>,
    pub listen: Listen,
    pub technicians: Technicians,
    pub upstream: Upstream,
    pub consent: Consent,
    pub session: SessionLimits,
    pub audit: Audit,
    pub ui: Ui,
    pub service: Service,
}

/// `accord service` only: how it finds the person in front of the screen.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub seat: crate::seat::rule::SeatMode,
    /// `seat = "single"` only, and required there: the login names (or
    /// decimal uids) whose helpers may be asked. Without logind nothing else says who sits in
    /// front of the screen, so any other local account's helper is refused.
    pub users: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listen {
    pub address: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Technicians {
    pub ca: PathBuf,
    /// Empty = every certificate issued by `ca` is accepted.
    pub allow: Vec<AllowEntry>,
    /// Revocation list of `ca` (PEM or DER); re-read when the file changes.
    pub crl: Option<PathBuf>,
}

/// One allow-list entry (T8: filter by certificate).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowEntry {
    /// `sha256:<64 hex>` of the technician's certificate (DER).
    Fingerprint(String),
    /// An exact subject as Accord prints it, e.g. `CN=Jeanne Martin,O=Helpdesk CHU`.
    Subject(String),
}

/// Where the local VNC server listens. Loopback or a Unix socket only: a
/// remote upstream would turn Accord into a relay into the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UpstreamAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

impl fmt::Display for UpstreamAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamAddr::Tcp(a) => write!(f, "{a}"),
            UpstreamAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Upstream {
    /// Whether Accord starts the VNC server itself.
    pub launch: Launch,
    /// The server to connect to when `launch` is [`Launch::None`].
    pub vnc: UpstreamAddr,
    pub password_file: Option<PathBuf>,
}

/// `[upstream] launch`: which VNC server Accord starts for each session, on
/// a private Unix socket, after consent (see [`crate::launch`]). A server
/// left running on a port (`"none"` with a TCP `vnc`) is reachable by every
/// local account without consent. Default `"auto"` (DESIGN.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Launch {
    /// On X11: x11vnc if installed, else TigerVNC's x0vncserver. On a
    /// Wayland session: Accord's own screen server through GNOME's Mutter.
    Auto,
    X11vnc,
    X0vncserver,
    /// Accord's own screen server through GNOME's Mutter (Wayland).
    Mutter,
    /// Accord starts nothing and connects to `[upstream] vnc`.
    None,
}

impl Launch {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Launch::Auto => "auto",
            Launch::X11vnc => "x11vnc",
            Launch::X0vncserver => "x0vncserver",
            Launch::Mutter => "mutter",
            Launch::None => "none",
        }
    }

    /// The choice spelled `s`, if it is one.
    pub fn parse(s: &str) -> Option<Launch> {
        [
            Launch::Auto,
            Launch::X11vnc,
            Launch::X0vncserver,
            Launch::Mutter,
            Launch::None,
        ]
        .into_iter()
        .find(|l| l.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Consent {
    pub timeout: Duration,
    pub arm_delay: Duration,
    pub allow_control: bool,
    pub max_prompts_per_technician_per_hour: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionLimits {
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub end_on_screen_lock: bool,
    pub clipboard: Clipboard,
    /// How long her consent lasts before she is asked "continue?"
    /// (`confirm_every_s`; `None` = 0 = never asked again).
    pub confirm_every: Option<Duration>,
    /// How long that question waits before the session ends
    /// `not_confirmed` (`confirm_grace_s`).
    pub confirm_grace: Duration,
}

/// Which way clipboard text may cross, in control mode (view-only never
/// lets it cross either way). The clinician's clipboard holds patient data,
/// so nothing of it leaves unless IT says so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clipboard {
    /// No clipboard either way.
    None,
    /// The technician may paste into the workstation; nothing comes back.
    ToWorkstation,
    /// Both ways.
    Both,
}

impl Clipboard {
    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Clipboard::None => "none",
            Clipboard::ToWorkstation => "to_workstation",
            Clipboard::Both => "both",
        }
    }

    /// The permission spelled `s`, if it is one.
    pub fn parse(s: &str) -> Option<Clipboard> {
        [Clipboard::None, Clipboard::ToWorkstation, Clipboard::Both]
            .into_iter()
            .find(|c| c.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Audit {
    /// `None` = the platform's per-user data directory.
    pub path: Option<PathBuf>,
    /// `tls://host:port` of the hospital's syslog collector (RFC 5425).
    pub forward: Option<ForwardTarget>,
    pub forward_ca: Option<PathBuf>,
    /// Optional client certificate for collectors that require one.
    pub forward_cert: Option<PathBuf>,
    pub forward_key: Option<PathBuf>,
    /// SD-ID of forwarded messages, `name@<enterprise number>`.
    pub sd_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardTarget {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Auto,
    Fr,
    En,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ui {
    pub language: Language,
    /// Second kill switch, reachable even when the technician holds the pointer.
    pub kill_shortcut: String,
}

/// One problem in a policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: Option<usize>,
    pub key: String,
    pub message: String,
}

/// Everything wrong with a policy file (all problems, not only the first).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: String,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        match p.line {
            Some(l) => {
                let _ = write!(out, "{path}:{l}: {}: {}", p.key, p.message);
            }
            None => {
                let _ = write!(out, "{path}: {}: {}", p.key, p.message);
            }
        }
    }
    out
}

/// SD-ID of forwarded syslog messages unless `[audit] sd_id` says otherwise:
/// RFC 5612's documentation enterprise number (a hospital sets its own).
pub const DEFAULT_SD_ID: &str = "accord@32473";

/// Whether `id` is a valid private SD-ID, `name@<enterprise number>`
/// (RFC 5424 §6.3.2: at most 32 printable characters, no `=`, space, `]`
/// or `"`).
pub fn valid_sd_id(id: &str) -> bool {
    let printable = id.len() <= 32
        && id
            .chars()
            .all(|c| ('!'..='~').contains(&c) && !matches!(c, '=' | ']' | '"'));
    let shaped = id.split_once('@').is_some_and(|(name, pen)| {
        !name.is_empty()
            && !pen.is_empty()
            && pen
                .split('.')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    });
    printable && shaped
}

// ---------------------------------------------------------------- raw form

#[derive(Deserialize, Default)]
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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawService {
    seat: S<String>,
    users: S<Vec<Spanned<String>>>,
}

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

/// Range of each integer key: (min, max, default). Kept in one table so the
/// documentation (`accord policy check`) and validation cannot disagree.
pub mod limits {
    pub const TIMEOUT_S: (i64, i64, i64) = (10, 600, 60);
    pub const ARM_DELAY_MS: (i64, i64, i64) = (300, 10_000, 1000);
    pub const MAX_PROMPTS: (i64, i64, i64) = (1, 100, 6);
    pub const IDLE_TIMEOUT_S: (i64, i64, i64) = (30, 86_400, 900);
    pub const MAX_DURATION_S: (i64, i64, i64) = (60, 86_400, 7200);
    /// 0 = never asked again.
    pub const CONFIRM_EVERY_S: (i64, i64, i64) = (0, 86_400, 1800);
    pub const CONFIRM_GRACE_S: (i64, i64, i64) = (5, 3600, 300);
}

/// Defaults for the platform's machine-wide paths.
fn etc(name: &str) -> PathBuf {
    crate::platform::config_dir().join(name)
}

struct Checker<'a> {
    src: &'a str,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.src.len());
        self.src.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    fn problem<T>(&mut self, v: &Spanned<T>, key: &str, message: impl Into<String>) {
        let line = Some(self.line_of(v.span().start));
        self.problems.push(Problem {
            line,
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

    fn int(&mut self, v: &S<i64>, key: &str, (min, max, default): (i64, i64, i64)) -> i64 {
        match v {
            None => default,
            Some(s) => {
                let n = *s.get_ref();
                if n < min || n > max {
                    self.problem(
                        s,
                        key,
                        format!("{n} is out of range (valid: {min} to {max}, default {default})"),
                    );
                    default
                } else {
                    n
                }
            }
        }
    }

    fn path(&mut self, v: &S<String>, key: &str, default: PathBuf) -> PathBuf {
        match v {
            None => default,
            Some(s) if s.get_ref().trim().is_empty() => {
                self.problem(s, key, "must not be empty (a file path)");
                default
            }
            Some(s) => PathBuf::from(s.get_ref()),
        }
    }

    /// Empty string = not set (the DESIGN.md defaults use `""` for "none").
    fn opt_path(&mut self, v: &S<String>) -> Option<PathBuf> {
        v.as_ref()
            .map(|s| s.get_ref().trim())
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }
}

fn secs(n: i64) -> Duration {
    Duration::from_secs(u64::try_from(n).unwrap_or(0))
}

impl Policy {
    /// The built-in defaults (DESIGN.md), with the platform's paths.
    pub fn defaults() -> Policy {
        match Self::parse_str("", None) {
            Ok(p) => p,
            // The empty document has no problems by construction; keep the
            // type honest without a panic path.
            Err(_) => unreachable_defaults(),
        }
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let src = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_str(&src, Some(path))
    }

    /// Validates a policy text; `path` only names it in messages.
    pub fn parse_str(src: &str, path: Option<&Path>) -> Result<Policy, PolicyError> {
        let name = path
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "<policy>".into());
        let raw: RawPolicy = match toml::from_str(src) {
            Ok(r) => r,
            Err(e) => {
                let line = e.span().map(|s| {
                    let end = s.start.min(src.len());
                    src.as_bytes()[..end]
                        .iter()
                        .filter(|&&b| b == b'\n')
                        .count()
                        + 1
                });
                let message = e.message().to_string();
                let key = message
                    .split('`')
                    .nth(1)
                    .map(str::to_string)
                    .unwrap_or_else(|| "syntax".into());
                return Err(PolicyError::Invalid {
                    path: name,
                    problems: vec![Problem {
                        line,
                        key,
                        message: message.replace('\n', " "),
                    }],
                });
            }
        };
        let mut c = Checker {
            src,
            problems: Vec::new(),
        };

        let address = match &raw.listen.address {
            None => SocketAddr::from(([0, 0, 0, 0], 5988)),
            Some(s) => match s.get_ref().parse::<SocketAddr>() {
                Ok(a) => a,
                Err(_) => {
                    c.problem(
                        s,
                        "listen.address",
                        format!(
                            "{:?} is not an IP:port address (e.g. \"0.0.0.0:5988\")",
                            s.get_ref()
                        ),
                    );
                    SocketAddr::from(([0, 0, 0, 0], 5988))
                }
            },
        };
        let listen = Listen {
            address,
            cert: c.path(&raw.listen.cert, "listen.cert", etc("agent.pem")),
            key: c.path(&raw.listen.key, "listen.key", etc("agent.key")),
        };

        let mut allow = Vec::new();
        if let Some(list) = &raw.technicians.allow {
            for e in list.get_ref() {
                match parse_allow(e.get_ref()) {
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
        }
        let technicians = Technicians {
            ca: c.path(
                &raw.technicians.ca,
                "technicians.ca",
                etc("technicians-ca.pem"),
            ),
            allow,
            crl: c.opt_path(&raw.technicians.crl),
        };

        let vnc = match &raw.upstream.vnc {
            None => UpstreamAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 5900))),
            Some(s) => match parse_upstream(s.get_ref()) {
                Ok(u) => u,
                Err(msg) => {
                    c.problem(s, "upstream.vnc", msg);
                    UpstreamAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 5900)))
                }
            },
        };
        let launch = match &raw.upstream.launch {
            None => Launch::Auto,
            Some(s) => match Launch::parse(s.get_ref()) {
                Some(l) => l,
                None => {
                    c.problem(
                        s,
                        "upstream.launch",
                        format!(
                            "{:?} is not one of \"auto\", \"x11vnc\", \"x0vncserver\", \"mutter\", \"none\"",
                            s.get_ref()
                        ),
                    );
                    Launch::None
                }
            },
        };
        let upstream = Upstream {
            launch,
            vnc,
            password_file: c.opt_path(&raw.upstream.password_file),
        };

        let consent = Consent {
            timeout: secs(c.int(
                &raw.consent.timeout_s,
                "consent.timeout_s",
                limits::TIMEOUT_S,
            )),
            arm_delay: Duration::from_millis(
                u64::try_from(c.int(
                    &raw.consent.arm_delay_ms,
                    "consent.arm_delay_ms",
                    limits::ARM_DELAY_MS,
                ))
                .unwrap_or(1000),
            ),
            allow_control: raw
                .consent
                .allow_control
                .as_ref()
                .map(|s| *s.get_ref())
                .unwrap_or(true),
            max_prompts_per_technician_per_hour: u32::try_from(c.int(
                &raw.consent.max_prompts_per_technician_per_hour,
                "consent.max_prompts_per_technician_per_hour",
                limits::MAX_PROMPTS,
            ))
            .unwrap_or(6),
        };

        let idle = c.int(
            &raw.session.idle_timeout_s,
            "session.idle_timeout_s",
            limits::IDLE_TIMEOUT_S,
        );
        let max = c.int(
            &raw.session.max_duration_s,
            "session.max_duration_s",
            limits::MAX_DURATION_S,
        );
        if idle > max
            && let Some(s) = &raw.session.idle_timeout_s
        {
            c.problem(
                s,
                "session.idle_timeout_s",
                format!("{idle} is longer than session.max_duration_s ({max})"),
            );
        }
        let clipboard = match &raw.session.clipboard {
            None => Clipboard::ToWorkstation,
            Some(s) => match s.get_ref().as_str() {
                "none" => Clipboard::None,
                "to_workstation" => Clipboard::ToWorkstation,
                "both" => Clipboard::Both,
                other => {
                    c.problem(
                        s,
                        "session.clipboard",
                        format!("{other:?} is not one of \"none\", \"to_workstation\", \"both\""),
                    );
                    Clipboard::ToWorkstation
                }
            },
        };
        let confirm_every = c.int(
            &raw.session.confirm_every_s,
            "session.confirm_every_s",
            limits::CONFIRM_EVERY_S,
        );
        let confirm_grace = c.int(
            &raw.session.confirm_grace_s,
            "session.confirm_grace_s",
            limits::CONFIRM_GRACE_S,
        );
        let session = SessionLimits {
            confirm_every: (confirm_every > 0).then(|| secs(confirm_every)),
            confirm_grace: secs(confirm_grace),
            idle_timeout: secs(idle),
            max_duration: secs(max),
            end_on_screen_lock: raw
                .session
                .end_on_screen_lock
                .as_ref()
                .map(|s| *s.get_ref())
                .unwrap_or(true),
            clipboard,
        };

        let forward = match &raw.audit.forward {
            Some(s) if !s.get_ref().trim().is_empty() => match parse_forward(s.get_ref()) {
                Ok(t) => Some(t),
                Err(msg) => {
                    c.problem(s, "audit.forward", msg);
                    None
                }
            },
            _ => None,
        };
        let audit = Audit {
            path: c.opt_path(&raw.audit.path),
            forward,
            forward_ca: c.opt_path(&raw.audit.forward_ca),
            forward_cert: c.opt_path(&raw.audit.forward_cert),
            forward_key: c.opt_path(&raw.audit.forward_key),
            sd_id: match &raw.audit.sd_id {
                None => DEFAULT_SD_ID.to_owned(),
                Some(s) if valid_sd_id(s.get_ref()) => s.get_ref().clone(),
                Some(s) => {
                    c.problem(
                        s,
                        "audit.sd_id",
                        format!(
                            "{:?} is not an SD-ID: expected name@<your enterprise number>, e.g. \"accord@61234\" (at most 32 characters, no space, =, ] or \")",
                            s.get_ref()
                        ),
                    );
                    DEFAULT_SD_ID.to_owned()
                }
            },
        };
        if audit.forward.is_some()
            && audit.forward_ca.is_none()
            && let Some(s) = &raw.audit.forward
        {
            c.problem(
                s,
                "audit.forward",
                "needs audit.forward_ca (the CA that signed the collector's certificate)",
            );
        }
        if audit.forward_cert.is_some() != audit.forward_key.is_some() {
            let s = raw
                .audit
                .forward_cert
                .as_ref()
                .or(raw.audit.forward_key.as_ref());
            if let Some(s) = s {
                c.problem(
                    s,
                    "audit.forward_cert",
                    "audit.forward_cert and audit.forward_key go together",
                );
            }
        }

        let language = match &raw.ui.language {
            None => Language::Auto,
            Some(s) => match s.get_ref().as_str() {
                "auto" => Language::Auto,
                "fr" => Language::Fr,
                "en" => Language::En,
                other => {
                    c.problem(
                        s,
                        "ui.language",
                        format!("{other:?} is not one of \"auto\", \"fr\", \"en\""),
                    );
                    Language::Auto
                }
            },
        };
        let kill_shortcut = match &raw.ui.kill_shortcut {
            None => "Ctrl+Alt+Pause".to_string(),
            Some(s) if s.get_ref().trim().is_empty() => {
                c.problem(
                    s,
                    "ui.kill_shortcut",
                    "must not be empty (e.g. \"Ctrl+Alt+Pause\")",
                );
                "Ctrl+Alt+Pause".to_string()
            }
            Some(s) => s.get_ref().clone(),
        };

        use crate::seat::rule::SeatMode;
        let seat = match &raw.service.seat {
            None => SeatMode::Logind,
            Some(s) => match s.get_ref().as_str() {
                "logind" => SeatMode::Logind,
                "single" => SeatMode::Single,
                other => {
                    c.problem(
                        s,
                        "service.seat",
                        format!("{other:?} is not one of \"logind\", \"single\""),
                    );
                    SeatMode::Logind
                }
            },
        };
        let users: Vec<String> = raw
            .service
            .users
            .as_ref()
            .map(|u| u.get_ref().iter().map(|n| n.get_ref().clone()).collect())
            .unwrap_or_default();
        for (i, n) in users.iter().enumerate() {
            let valid = !n.is_empty()
                && n.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "._-".contains(ch));
            if !valid && let Some(u) = &raw.service.users {
                c.problem(
                    &u.get_ref()[i],
                    "service.users",
                    format!("{n:?} is not a login name"),
                );
            }
        }
        match (seat, &raw.service.users) {
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

        if !c.problems.is_empty() {
            return Err(PolicyError::Invalid {
                path: name,
                problems: c.problems,
            });
        }
        Ok(Policy {
            source: path.map(Path::to_path_buf),
            listen,
            technicians,
            upstream,
            consent,
            session,
            audit,
            ui: Ui {
                language,
                kill_shortcut,
            },
            service: Service { seat, users },
        })
    }

    /// The effective policy as TOML (every key, defaults filled in).
    pub fn to_toml(&self) -> String {
        let allow: Vec<String> = self
            .technicians
            .allow
            .iter()
            .map(|a| match a {
                AllowEntry::Fingerprint(f) => format!("{f:?}"),
                AllowEntry::Subject(s) => format!("{s:?}"),
            })
            .collect();
        let opt = |p: &Option<PathBuf>| {
            format!(
                "{:?}",
                p.as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default()
            )
        };
        let lang = match self.ui.language {
            Language::Auto => "auto",
            Language::Fr => "fr",
            Language::En => "en",
        };
        format!(
            "[listen]\naddress = \"{}\"\ncert = {:?}\nkey = {:?}\n\n\
             [technicians]\nca = {:?}\nallow = [{}]\ncrl = {}\n\n\
             [upstream]\nlaunch = \"{}\"\nvnc = \"{}\"\npassword_file = {}\n\n\
             [consent]\ntimeout_s = {}\narm_delay_ms = {}\nallow_control = {}\nmax_prompts_per_technician_per_hour = {}\n\n\
             [session]\nidle_timeout_s = {}\nmax_duration_s = {}\nend_on_screen_lock = {}\nclipboard = \"{}\"\nconfirm_every_s = {}\nconfirm_grace_s = {}\n\n\
             [audit]\npath = {}\nforward = {:?}\nforward_ca = {}\nforward_cert = {}\nforward_key = {}\nsd_id = {:?}\n\n\
             [ui]\nlanguage = \"{}\"\nkill_shortcut = {:?}\n\n\
             [service]\nseat = \"{}\"\n{}",
            self.listen.address,
            self.listen.cert.display().to_string(),
            self.listen.key.display().to_string(),
            self.technicians.ca.display().to_string(),
            allow.join(", "),
            opt(&self.technicians.crl),
            self.upstream.launch.as_str(),
            self.upstream.vnc,
            opt(&self.upstream.password_file),
            self.consent.timeout.as_secs(),
            self.consent.arm_delay.as_millis(),
            self.consent.allow_control,
            self.consent.max_prompts_per_technician_per_hour,
            self.session.idle_timeout.as_secs(),
            self.session.max_duration.as_secs(),
            self.session.end_on_screen_lock,
            self.session.clipboard.as_str(),
            self.session.confirm_every.map_or(0, |d| d.as_secs()),
            self.session.confirm_grace.as_secs(),
            opt(&self.audit.path),
            self.audit
                .forward
                .as_ref()
                .map(|f| format!("tls://{}:{}", f.host, f.port))
                .unwrap_or_default(),
            opt(&self.audit.forward_ca),
            opt(&self.audit.forward_cert),
            opt(&self.audit.forward_key),
            self.audit.sd_id,
            lang,
            self.ui.kill_shortcut,
            self.service.seat.as_str(),
            if self.service.users.is_empty() {
                String::new()
            } else {
                let users: Vec<String> = self
                    .service
                    .users
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect();
                format!("users = [{}]\n", users.join(", "))
            },
        )
    }

    /// Where the audit log lives.
    pub fn audit_path(&self) -> PathBuf {
        self.audit
            .path
            .clone()
            .unwrap_or_else(|| crate::platform::data_dir().join("audit.jsonl"))
    }

    /// The PGSSI-S conformity report: one line per rule Accord serves, with
    /// its palier and what this policy does about it.
    pub fn conformity_report(&self) -> String {
        let mut rows: Vec<(&str, &str, bool, String)> = Vec::new();
        rows.push((
            "O6",
            "1",
            true,
            format!(
                "explicit consent prompt for every session; {}",
                if self.consent.allow_control {
                    "clinician may restrict to view only"
                } else {
                    "control forbidden by policy: view only at most"
                }
            ),
        ));
        // Consent is only as strong as the only way in.
        let private = !matches!(
            (&self.upstream.launch, &self.upstream.vnc),
            (Launch::None, UpstreamAddr::Tcp(_))
        );
        rows.push((
            "O6",
            "1",
            private,
            match (&self.upstream.launch, &self.upstream.vnc) {
                (Launch::None, UpstreamAddr::Tcp(a)) => format!(
                    "the VNC server on {a} is not Accord's: every local account can reach it without consent (set upstream.launch = \"auto\")"
                ),
                (Launch::None, UpstreamAddr::Unix(p)) => format!(
                    "VNC server started by IT on {} (keep it 0600): Accord does not start or stop it",
                    p.display()
                ),
                (l, _) => format!(
                    "VNC server ({}) started only for a consented session, on a private 0600 socket, no TCP port",
                    l.as_str()
                ),
            },
        ));
        rows.push((
            "O7",
            "2",
            // "Met" only for what runs: logind's lock is watched only by
            // the service with seat = "logind"; the session bus's screen
            // saver by every helper and by `accord agent`.
            self.session.end_on_screen_lock
                && self.service.seat == crate::seat::rule::SeatMode::Logind
                && cfg!(feature = "logind"),
            format!(
                "always-on-top banner during sessions; end on screen lock: {}",
                match (self.session.end_on_screen_lock, self.service.seat) {
                    (false, _) => "NO",
                    _ if !cfg!(feature = "logind") => {
                        "requested, but NOT enforced by this build (no D-Bus watcher)"
                    }
                    (true, crate::seat::rule::SeatMode::Logind) => {
                        "yes, within 1 s: logind's LockedHint (GNOME, KDE) and the session's org.freedesktop.ScreenSaver (xscreensaver, light-locker)"
                    }
                    (true, crate::seat::rule::SeatMode::Single) => {
                        "only for lockers that report org.freedesktop.ScreenSaver on the session bus (seat = \"single\": no logind)"
                    }
                }
            ),
        ));
        rows.push((
            "O8",
            "1",
            true,
            format!(
                "one-click \"Terminer\" in the banner, shortcut {}, `accord end`",
                self.ui.kill_shortcut
            ),
        ));
        rows.push((
            "T5/T7",
            "2/1",
            true,
            "TLS 1.3 only, client certificate required and verified against technicians.ca; no session resumption".into(),
        ));
        rows.push((
            "T7",
            "2",
            self.technicians.crl.is_some(),
            match &self.technicians.crl {
                Some(p) => format!("revoked technician certificates refused (CRL {}, re-read when it changes)", p.display()),
                None => "no revocation list: a leaked technician key is accepted until it expires (consider technicians.crl)".into(),
            },
        ));
        rows.push((
            "T8",
            "1",
            !self.technicians.allow.is_empty(),
            if self.technicians.allow.is_empty() {
                "any certificate of technicians.ca accepted (no allow-list; consider technicians.allow)".into()
            } else {
                format!("allow-list of {} certificate(s)", self.technicians.allow.len())
            },
        ));
        let idle = self.session.idle_timeout.as_secs();
        rows.push((
            "T10",
            "2",
            idle <= 900,
            format!(
                "idle sessions closed after {idle} s{}; hard limit {} s",
                if idle > 900 {
                    " (longer than the 900 s default)"
                } else {
                    ""
                },
                self.session.max_duration.as_secs()
            ),
        ));
        rows.push((
            "O7",
            "1",
            self.session.confirm_every.is_some(),
            match self.session.confirm_every {
                Some(every) => format!(
                    "consent asked again every {} s (the session ends {} s after an unanswered \"continue?\")",
                    every.as_secs(),
                    self.session.confirm_grace.as_secs()
                ),
                None => "consent never asked again during a session (session.confirm_every_s = 0)".into(),
            },
        ));
        rows.push((
            "O6",
            "1",
            self.session.clipboard != Clipboard::Both,
            match self.session.clipboard {
                Clipboard::None => "clipboard: never shared".into(),
                Clipboard::ToWorkstation => {
                    "clipboard: technician may paste in control mode; the workstation's never leaves".into()
                }
                Clipboard::Both => {
                    "clipboard: shared both ways in control mode (the workstation's clipboard may hold patient data)".to_string()
                }
            },
        ));
        rows.push((
            "T11",
            "1",
            self.audit.forward.is_some(),
            match &self.audit.forward {
                Some(f) => format!("audit forwarded to tls://{}:{} (RFC 5425)", f.host, f.port),
                None => {
                    "NOT centralised: set audit.forward to the hospital's syslog collector".into()
                }
            },
        ));
        rows.push((
            "T12",
            "2",
            true,
            format!(
                "local hash-chained audit log at {}",
                self.audit_path().display()
            ),
        ));
        rows.push((
            "E3",
            "1",
            true,
            "technician identity = verified certificate subject and SHA-256 fingerprint".into(),
        ));
        let mut out = String::from("PGSSI-S conformity (rule, palier, status):\n");
        for (rule, palier, ok, text) in rows {
            let _ = writeln!(
                out,
                "  {rule:<6} P{palier:<4} {:<8} {text}",
                if ok { "ok" } else { "warning" }
            );
        }
        out
    }
}

/// Unreachable in practice (the empty policy is valid); a plain value keeps
/// `defaults()` total without `unwrap`.
fn unreachable_defaults() -> Policy {
    Policy {
        source: None,
        listen: Listen {
            address: SocketAddr::from(([0, 0, 0, 0], 5988)),
            cert: etc("agent.pem"),
            key: etc("agent.key"),
        },
        technicians: Technicians {
            ca: etc("technicians-ca.pem"),
            allow: Vec::new(),
            crl: None,
        },
        upstream: Upstream {
            launch: Launch::Auto,
            vnc: UpstreamAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 5900))),
            password_file: None,
        },
        consent: Consent {
            timeout: Duration::from_secs(60),
            arm_delay: Duration::from_millis(1000),
            allow_control: true,
            max_prompts_per_technician_per_hour: 6,
        },
        session: SessionLimits {
            idle_timeout: Duration::from_secs(900),
            max_duration: Duration::from_secs(7200),
            end_on_screen_lock: true,
            clipboard: Clipboard::ToWorkstation,
            confirm_every: Some(Duration::from_secs(1800)),
            confirm_grace: Duration::from_secs(300),
        },
        audit: Audit {
            path: None,
            forward: None,
            forward_ca: None,
            forward_cert: None,
            forward_key: None,
            sd_id: DEFAULT_SD_ID.to_owned(),
        },
        ui: Ui {
            language: Language::Auto,
            kill_shortcut: "Ctrl+Alt+Pause".into(),
        },
        service: Service {
            users: Vec::new(),
            seat: crate::seat::rule::SeatMode::Logind,
        },
    }
}

fn parse_allow(s: &str) -> Option<AllowEntry> {
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

fn parse_upstream(s: &str) -> Result<UpstreamAddr, String> {
    if let Some(p) = s.strip_prefix("unix:") {
        if p.is_empty() || !p.starts_with('/') {
            return Err(format!(
                "{s:?}: a Unix socket needs an absolute path, e.g. \"unix:/run/user/1000/vnc.sock\""
            ));
        }
        return Ok(UpstreamAddr::Unix(PathBuf::from(p)));
    }
    match s.parse::<SocketAddr>() {
        Ok(a) if a.ip().is_loopback() => Ok(UpstreamAddr::Tcp(a)),
        Ok(a) => Err(format!(
            "{a} is not a loopback address: the VNC server must only be reachable locally (127.0.0.1:5900 or unix:/path)"
        )),
        Err(_) => Err(format!(
            "{s:?} is not \"IP:port\" or \"unix:/path\" (e.g. \"127.0.0.1:5900\")"
        )),
    }
}

fn parse_forward(s: &str) -> Result<ForwardTarget, String> {
    let bad = || format!("{s:?} is not \"tls://host:port\" (e.g. \"tls://siem.example:6514\")");
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

#[cfg(test)]
mod tests {
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
        let p = problems(
            "[consent]\n\ntimeout_s = 5\narm_delay_ms = 0\n[session]\nidle_timeout_s = -1\n",
        );
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
            (include_str!("../assets/policy.toml"), Launch::Auto),
            // Nothing starts a VNC server on Windows (docs/windows.md).
            (
                include_str!("../installer/windows/policy.toml"),
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
}
