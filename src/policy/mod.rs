//! The machine-wide policy: parse, validate, then act.
//!
//! IT deploys one TOML file per workstation. Every key has a safe default and
//! every unknown key is an error, because a typo (`alow_control`) must never
//! silently leave a weaker setting in force. Errors name the file, the line and
//! the key, and say what would be valid. Only a [`Policy`] (validated) can be
//! used by the rest of Accord; the raw form never leaves [`parse`].
//!
//! Each default lives once: integer keys in [`limits`], every other key in
//! the `Default` of its section (or of its enum), which both
//! [`Policy::defaults`] and the parser's fallbacks use.

mod parse;
mod report;
#[cfg(test)]
mod tests;
mod write;

use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A validated policy.
#[derive(Clone, Debug, Default, PartialEq)]
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
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Service {
    pub seat: SeatMode,
    /// `seat = "single"` only, and required there: the login names (or
    /// decimal uids) whose helpers may be asked. Without logind nothing else says who sits in
    /// front of the screen, so any other local account's helper is refused.
    pub users: Vec<String>,
}

/// `[service] seat`: how the service finds the person in front of the screen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SeatMode {
    /// logind's `seat0`: its active session's helper.
    #[default]
    Logind,
    /// No logind (containers, CI): the one connected helper.
    Single,
}

impl SeatMode {
    /// Every choice, in the order the policy's messages list them.
    pub const ALL: [SeatMode; 2] = [SeatMode::Logind, SeatMode::Single];

    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SeatMode::Logind => "logind",
            SeatMode::Single => "single",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Listen {
    pub address: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Default for Listen {
    fn default() -> Listen {
        Listen {
            address: SocketAddr::from(([0, 0, 0, 0], 5988)),
            cert: etc("agent.pem"),
            key: etc("agent.key"),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Technicians {
    pub ca: PathBuf,
    /// Empty = every certificate issued by `ca` is accepted.
    pub allow: Vec<AllowEntry>,
    /// Revocation list of `ca` (PEM or DER); re-read when the file changes.
    pub crl: Option<PathBuf>,
}

impl Default for Technicians {
    fn default() -> Technicians {
        Technicians {
            ca: etc("technicians-ca.pem"),
            allow: Vec::new(),
            crl: None,
        }
    }
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

impl Default for Upstream {
    fn default() -> Upstream {
        Upstream {
            launch: Launch::default(),
            vnc: UpstreamAddr::Tcp(SocketAddr::from(([127, 0, 0, 1], 5900))),
            password_file: None,
        }
    }
}

/// `[upstream] launch`: which VNC server Accord starts for each session, on
/// a private Unix socket, after consent (see [`crate::launch`]). A server
/// left running on a port (`"none"` with a TCP `vnc`) is reachable by every
/// local account without consent. Default `"auto"` (DESIGN.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Launch {
    /// On X11: x11vnc if installed, else TigerVNC's x0vncserver. On a
    /// Wayland session: Accord's own screen server through GNOME's Mutter.
    #[default]
    Auto,
    X11vnc,
    X0vncserver,
    /// Accord's own screen server through GNOME's Mutter (Wayland).
    Mutter,
    /// Accord starts nothing and connects to `[upstream] vnc`.
    None,
}

impl Launch {
    /// Every choice, in the order the policy's messages list them.
    pub const ALL: [Launch; 5] = [
        Launch::Auto,
        Launch::X11vnc,
        Launch::X0vncserver,
        Launch::Mutter,
        Launch::None,
    ];

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
        spelled(&Self::ALL, Self::as_str, s)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Consent {
    pub timeout: Duration,
    pub arm_delay: Duration,
    pub allow_control: bool,
    pub max_prompts_per_technician_per_hour: u32,
}

impl Default for Consent {
    fn default() -> Consent {
        Consent {
            timeout: secs(limits::TIMEOUT_S.default),
            arm_delay: millis(limits::ARM_DELAY_MS.default),
            allow_control: true,
            max_prompts_per_technician_per_hour: limits::MAX_PROMPTS.default,
        }
    }
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

impl Default for SessionLimits {
    fn default() -> SessionLimits {
        SessionLimits {
            idle_timeout: secs(limits::IDLE_TIMEOUT_S.default),
            max_duration: secs(limits::MAX_DURATION_S.default),
            end_on_screen_lock: true,
            clipboard: Clipboard::default(),
            confirm_every: every(limits::CONFIRM_EVERY_S.default),
            confirm_grace: secs(limits::CONFIRM_GRACE_S.default),
        }
    }
}

/// Which way clipboard text may cross, in control mode (view-only never
/// lets it cross either way): the permission the RFB filter enforces, as
/// the policy spells it.
pub use crate::rfb::Clipboard;

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

impl Default for Audit {
    fn default() -> Audit {
        Audit {
            path: None,
            forward: None,
            forward_ca: None,
            forward_cert: None,
            forward_key: None,
            sd_id: DEFAULT_SD_ID.to_owned(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ForwardTarget {
    pub host: String,
    pub port: u16,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Language {
    /// From the session's locale: French for `fr…`, English otherwise.
    #[default]
    Auto,
    Fr,
    En,
}

impl Language {
    /// Every choice, in the order the policy's messages list them.
    pub const ALL: [Language; 3] = [Language::Auto, Language::Fr, Language::En];

    /// The policy spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Auto => "auto",
            Language::Fr => "fr",
            Language::En => "en",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ui {
    pub language: Language,
    /// Second kill switch, reachable even when the technician holds the pointer.
    pub kill_shortcut: String,
}

impl Default for Ui {
    fn default() -> Ui {
        Ui {
            language: Language::default(),
            kill_shortcut: "Ctrl+Alt+Pause".into(),
        }
    }
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

/// Range and default of each integer key, in the key's own unit. Kept in
/// one table so the documentation (`accord policy check`) and validation
/// cannot disagree.
pub mod limits {
    /// The values a key accepts (inclusive) and the one it takes when absent.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct Range {
        pub min: u32,
        pub max: u32,
        pub default: u32,
    }

    const fn range(min: u32, max: u32, default: u32) -> Range {
        Range { min, max, default }
    }

    pub const TIMEOUT_S: Range = range(10, 600, 60);
    pub const ARM_DELAY_MS: Range = range(300, 10_000, 1000);
    pub const MAX_PROMPTS: Range = range(1, 100, 6);
    pub const IDLE_TIMEOUT_S: Range = range(30, 86_400, 900);
    pub const MAX_DURATION_S: Range = range(60, 86_400, 7200);
    /// 0 = never asked again.
    pub const CONFIRM_EVERY_S: Range = range(0, 86_400, 1800);
    pub const CONFIRM_GRACE_S: Range = range(5, 3600, 300);
}

/// Defaults for the platform's machine-wide paths.
fn etc(name: &str) -> PathBuf {
    crate::platform::config_dir().join(name)
}

fn secs(n: u32) -> Duration {
    Duration::from_secs(u64::from(n))
}

fn millis(n: u32) -> Duration {
    Duration::from_millis(u64::from(n))
}

/// `confirm_every_s`: 0 means never.
fn every(n: u32) -> Option<Duration> {
    (n > 0).then(|| secs(n))
}

/// The choice among `all` spelled `s`, if any.
fn spelled<T: Copy>(all: &[T], as_str: fn(T) -> &'static str, s: &str) -> Option<T> {
    all.iter().copied().find(|&t| as_str(t) == s)
}

impl Policy {
    /// The built-in defaults (DESIGN.md), with the platform's paths.
    pub fn defaults() -> Policy {
        Policy::default()
    }

    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let src = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_str(&src, Some(path))
    }

    /// Where the audit log lives.
    pub fn audit_path(&self) -> PathBuf {
        self.audit
            .path
            .clone()
            .unwrap_or_else(|| crate::platform::data_dir().join("audit.jsonl"))
    }
}
