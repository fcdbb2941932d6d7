//! The technician's profile: where `accord connect` finds its certificate,
//! key and CA when they are not typed, so that `accord connect HOST --ticket T
//! --reason R` is enough.
//!
//! Precedence, most specific first: the command-line flag, then the
//! environment (`ACCORD_CERT`, `ACCORD_KEY`, `ACCORD_CA`), then the profile
//! file `~/.config/accord/connect.toml` (`$XDG_CONFIG_HOME/accord/…`), whose
//! relative paths are relative to the file itself. An unknown key in the file
//! is an error, as in the policy: a typo must not silently use another file.

use super::ConnectError;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The three files a technician needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// What the command line gave (each may be missing).
#[derive(Clone, Debug, Default)]
pub struct Given {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    ca: Option<PathBuf>,
}

/// The profile file's usual place, if the platform has a config directory.
pub fn default_path() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.config_dir().join("accord").join("connect.toml"))
}

/// Resolves the credentials from the flags, the process environment and the
/// profile file at [`default_path`].
pub fn resolve(given: Given) -> Result<Credentials, ConnectError> {
    resolve_with(
        given,
        |k| std::env::var_os(k).map(PathBuf::from),
        default_path(),
    )
}

/// [`resolve`] with the environment and the file's location given (tests).
pub fn resolve_with(
    given: Given,
    env: impl Fn(&str) -> Option<PathBuf>,
    file: Option<PathBuf>,
) -> Result<Credentials, ConnectError> {
    let profile = match &file {
        Some(path) => read(path)?,
        None => ProfileFile::default(),
    };
    let base = file
        .as_deref()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let shown = file.as_deref().map_or_else(
        || "the profile file".to_string(),
        |p| p.display().to_string(),
    );
    let pick = |flag: Option<PathBuf>, var: &str, from_file: Option<PathBuf>, what: &str| {
        flag.or_else(|| env(var).filter(|p| !p.as_os_str().is_empty()))
            .or_else(|| from_file.map(|p| base.join(p)))
            .ok_or_else(|| {
                ConnectError::Usage(format!(
                    "no {what}: give --{flag_name}, set {var}, or put `{flag_name} = \"…\"` in {shown}",
                    flag_name = var.trim_start_matches("ACCORD_").to_lowercase(),
                ))
            })
    };
    Ok(Credentials {
        cert: pick(
            given.cert,
            "ACCORD_CERT",
            profile.cert,
            "technician certificate",
        )?,
        key: pick(given.key, "ACCORD_KEY", profile.key, "private key")?,
        ca: pick(given.ca, "ACCORD_CA", profile.ca, "workstation CA")?,
    })
}

/// Reads the profile file; a missing file is an empty profile.
fn read(path: &Path) -> Result<ProfileFile, ConnectError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ProfileFile::default()),
        Err(e) => {
            return Err(ConnectError::Usage(format!(
                "{}: cannot read: {e}",
                path.display()
            )));
        }
    };
    toml::from_str(&text).map_err(|e| {
        ConnectError::Usage(format!(
            "{}: {} (valid keys: cert, key, ca)",
            path.display(),
            e.message()
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<PathBuf> {
        None
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("connect.toml");
        std::fs::write(
            &file,
            "cert = \"tech.pem\"\nkey = \"/abs/tech.key\"\nca = \"ca.pem\"\n",
        )
        .unwrap();
        let env = |k: &str| (k == "ACCORD_CA").then(|| PathBuf::from("/env/ca.pem"));
        let c = resolve_with(
            Given {
                cert: Some("/flag/cert.pem".into()),
                ..Given::default()
            },
            env,
            Some(file.clone()),
        )
        .unwrap();
        assert_eq!(c.cert, PathBuf::from("/flag/cert.pem"));
        assert_eq!(c.key, PathBuf::from("/abs/tech.key"));
        assert_eq!(c.ca, PathBuf::from("/env/ca.pem"));

        let c = resolve_with(Given::default(), no_env, Some(file)).unwrap();
        assert_eq!(c.cert, dir.path().join("tech.pem"), "relative to the file");
    }

    #[test]
    fn missing_or_mistyped_says_how_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = resolve_with(Given::default(), no_env, Some(dir.path().join("none.toml")));
        assert!(
            matches!(&missing, Err(ConnectError::Usage(m)) if m.contains("--cert") && m.contains("ACCORD_CERT")),
            "{missing:?}"
        );
        let file = dir.path().join("connect.toml");
        std::fs::write(&file, "certificate = \"x\"\n").unwrap();
        let typo = resolve_with(Given::default(), no_env, Some(file));
        assert!(
            matches!(&typo, Err(ConnectError::Usage(m)) if m.contains("certificate") && m.contains("valid keys")),
            "{typo:?}"
        );
    }
}
