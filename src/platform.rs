//! Everything that differs by operating system: where the machine-wide policy
//! and per-user data live, and where the local control socket goes. Keeping it
//! in one place is what lets the rest of Accord stay portable.

use std::path::PathBuf;

/// Directory of the machine-wide policy and certificates.
#[cfg(unix)]
pub fn config_dir() -> PathBuf {
    PathBuf::from("/etc/accord")
}

/// Directory of the machine-wide policy and certificates.
#[cfg(windows)]
pub fn config_dir() -> PathBuf {
    std::env::var_os("ProgramData")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(r"C:\ProgramData"))
        .join("Accord")
}

/// The machine-wide policy file.
pub fn policy_path() -> PathBuf {
    config_dir().join("policy.toml")
}

/// Per-user data (the audit log): `~/.local/share/accord` on Linux,
/// `%APPDATA%\Accord\data` on Windows. Never removed by the package manager.
pub fn data_dir() -> PathBuf {
    directories::ProjectDirs::from("", "", "accord")
        .map(|d| d.data_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("accord-data"))
}

/// The per-user runtime directory for `accord agent`'s control socket:
/// `$XDG_RUNTIME_DIR/accord`, else `/run/user/<uid>/accord`, and only if
/// that base directory belongs to this user and nobody else may write in
/// it. Never a shared directory such as /tmp, where another user could
/// plant the socket first (`None`: no control socket).
#[cfg(unix)]
pub fn runtime_dir() -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions and cannot fail.
    let me = unsafe { libc::getuid() };
    let base = match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(format!("/run/user/{me}")),
    };
    let meta = std::fs::metadata(&base).ok()?;
    (meta.is_dir() && meta.uid() == me && meta.mode() & 0o022 == 0).then(|| base.join("accord"))
}

/// Whether this process runs in a Wayland session, by its environment:
/// `XDG_SESSION_TYPE=wayland` (set by pam_systemd and the display manager,
/// even where XWayland provides a `DISPLAY`), or `WAYLAND_DISPLAY` without
/// `DISPLAY`. There the VNC servers Accord starts would share XWayland's
/// empty root window, not her screen.
pub fn wayland_session() -> bool {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    wayland_by(
        var("XDG_SESSION_TYPE").as_deref(),
        var("WAYLAND_DISPLAY").is_some(),
        var("DISPLAY").is_some(),
    )
}

/// [`wayland_session`]'s rule, without the environment.
pub fn wayland_by(session_type: Option<&str>, wayland_display: bool, display: bool) -> bool {
    session_type == Some("wayland") || (wayland_display && !display)
}

#[cfg(test)]
mod wayland_tests {
    #[test]
    fn wayland_by_session_type_or_by_a_missing_display() {
        use super::wayland_by;
        assert!(
            wayland_by(Some("wayland"), true, true),
            "GNOME on Wayland, XWayland up"
        );
        assert!(wayland_by(None, true, false));
        assert!(!wayland_by(Some("x11"), false, true));
        assert!(!wayland_by(None, false, true), "plain X11 (Xvfb)");
        assert!(
            !wayland_by(Some("x11"), true, true),
            "a nested Wayland compositor in X11"
        );
    }
}

/// The system user `accord service` runs as (the .deb creates it).
pub const SERVICE_USER: &str = "accord";

/// Where `accord service` keeps its sockets (`ui.sock`, `control.sock`):
/// `$ACCORD_RUN_DIR` (tests), else systemd's `$RUNTIME_DIRECTORY`, else
/// `/run/accord`.
#[cfg(unix)]
pub fn service_run_dir() -> PathBuf {
    ["ACCORD_RUN_DIR", "RUNTIME_DIRECTORY"]
        .iter()
        .find_map(|k| std::env::var_os(k).filter(|v| !v.is_empty()))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/accord"))
}

/// Where `accord service` keeps its audit log by default: systemd's
/// `$STATE_DIRECTORY`, else `/var/lib/accord`.
pub fn service_state_dir() -> PathBuf {
    std::env::var_os("STATE_DIRECTORY")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/accord"))
}

/// The uid of a user name, from the password database.
#[cfg(unix)]
pub fn uid_of(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwnam_r to fill.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it.
    let rc =
        unsafe { libc::getpwnam_r(c.as_ptr(), &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    (rc == 0 && !out.is_null()).then_some(pw.pw_uid)
}

/// The login name of a uid (for the audit record), or `None`.
#[cfg(unix)]
pub fn name_of_uid(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: an all-zero passwd is a valid value for getpwuid_r to fill.
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives it.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    // SAFETY: pw_name points into buf, NUL-terminated by getpwuid_r.
    Some(
        unsafe { std::ffi::CStr::from_ptr(pw.pw_name) }
            .to_string_lossy()
            .into_owned(),
    )
}

/// The name of the user this process runs as (for messages): the login name
/// from the password database, else the uid.
#[cfg(unix)]
pub fn user_name() -> String {
    // SAFETY: getuid cannot fail; getpwuid returns NULL or a pointer to a
    // static record whose pw_name is a NUL-terminated string, read at once
    // and copied (this process is single-threaded where it is used, in
    // `accord policy check`).
    unsafe {
        let uid = libc::getuid();
        let pw = libc::getpwuid(uid);
        if pw.is_null() || (*pw).pw_name.is_null() {
            return format!("uid {uid}");
        }
        std::ffi::CStr::from_ptr((*pw).pw_name)
            .to_string_lossy()
            .into_owned()
    }
}

/// The name of the user this process runs as (for messages).
#[cfg(windows)]
pub fn user_name() -> String {
    std::env::var("USERNAME").unwrap_or_else(|_| "?".into())
}

/// `accord agent`'s control endpoint, if this user has a private runtime
/// directory ([`runtime_dir`]).
#[cfg(unix)]
pub fn control_socket_path() -> Option<PathBuf> {
    runtime_dir().map(|d| d.join("control.sock"))
}

/// The local control endpoint: a named pipe, per user.
#[cfg(windows)]
pub fn control_socket_path() -> Option<PathBuf> {
    let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
    Some(PathBuf::from(format!(r"\\.\pipe\accord-{user}")))
}

/// `accord service`'s control endpoint.
#[cfg(unix)]
pub fn service_control_path() -> PathBuf {
    service_run_dir().join("control.sock")
}

/// `accord service`'s endpoint for the session helpers.
#[cfg(unix)]
pub fn service_ui_path() -> PathBuf {
    service_run_dir().join("ui.sock")
}

/// Writes a file; `secret` files (private keys, the audit log) are created
/// with mode 0600 on Unix so other local users cannot read them.
pub fn write_private_or_public(
    path: &std::path::Path,
    content: &[u8],
    secret: bool,
) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut f = opts.open(path)?;
    #[cfg(unix)]
    if secret {
        // An existing file keeps its old mode: tighten it explicitly.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(content)?;
    f.sync_all()
}

/// A moment in local time (the clinician's wall clock).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i64,
    /// 1–12.
    pub month: u32,
    /// 1–31.
    pub day: u32,
    pub hour: i64,
    pub minute: i64,
    pub second: i64,
}

/// Local (hours, minutes, seconds) of a moment: the clinician's banner and
/// history, and the time `accord connect` says to retry after. `None` when
/// the local time cannot be known.
pub fn local_time(t: std::time::SystemTime) -> Option<(i64, i64, i64)> {
    local(t).map(|l| (l.hour, l.minute, l.second))
}

/// A moment in local time, date included (the history's "which day").
pub fn local(t: std::time::SystemTime) -> Option<LocalTime> {
    let secs = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    local_tm(i64::try_from(secs).ok()?)
}

#[cfg(unix)]
fn local_tm(secs: i64) -> Option<LocalTime> {
    #[allow(clippy::useless_conversion, reason = "time_t is i32 on some targets")]
    let t: libc::time_t = secs.try_into().ok()?;
    // SAFETY: `localtime_r` only writes into the `tm` we own; both pointers
    // are valid for the duration of the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        tm
    };
    Some(LocalTime {
        year: i64::from(tm.tm_year) + 1900,
        month: u32::try_from(tm.tm_mon + 1).ok()?,
        day: u32::try_from(tm.tm_mday).ok()?,
        hour: i64::from(tm.tm_hour),
        minute: i64::from(tm.tm_min),
        second: i64::from(tm.tm_sec),
    })
}

#[cfg(not(unix))]
fn local_tm(secs: i64) -> Option<LocalTime> {
    // UTC: the local offset is not known here.
    utc_tm(secs)
}

/// A moment in UTC, broken down like [`LocalTime`].
#[cfg_attr(unix, allow(dead_code, reason = "the non-unix fallback; tested here"))]
fn utc_tm(secs: i64) -> Option<LocalTime> {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).ok()?;
    Some(LocalTime {
        year: i64::from(t.year()),
        month: u32::from(u8::from(t.month())),
        day: u32::from(t.day()),
        hour: i64::from(t.hour()),
        minute: i64::from(t.minute()),
        second: i64::from(t.second()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_fallback_breaks_a_leap_day_down() {
        let t = utc_tm(1_709_251_198).expect("a valid moment");
        assert_eq!(
            t,
            LocalTime {
                year: 2024,
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 58,
            }
        );
    }
}
