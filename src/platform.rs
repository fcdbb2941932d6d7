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

/// The per-user runtime directory for the control socket: `$XDG_RUNTIME_DIR`
/// (0700, owned by the user) when set, else a per-user folder in the temp dir.
#[cfg(unix)]
pub fn runtime_dir() -> PathBuf {
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d).join("accord"),
        // SAFETY: getuid has no preconditions and cannot fail.
        _ => std::env::temp_dir().join(format!("accord-{}", unsafe { libc::getuid() })),
    }
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

/// The local control endpoint (`accord end`, `accord status`).
#[cfg(unix)]
pub fn control_socket_path() -> PathBuf {
    runtime_dir().join("control.sock")
}

/// The local control endpoint: a named pipe, per user.
#[cfg(windows)]
pub fn control_socket_path() -> PathBuf {
    let user = std::env::var("USERNAME").unwrap_or_else(|_| "user".into());
    PathBuf::from(format!(r"\\.\pipe\accord-{user}"))
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
