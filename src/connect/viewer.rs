//! `accord connect --viewer`: the VNC viewer started for the technician, so
//! that nobody has to type a port into a viewer by hand.
//!
//! The viewer is chosen and found *before* the request is sent (a missing
//! viewer must not disturb the clinician for nothing), started only once the
//! clinician accepted, pointed at a free loopback port of Accord's choosing,
//! and its lifetime is the session's: it exiting ends the tunnel, the session
//! ending kills it.

use super::ConnectError;
use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

/// What `--viewer` asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ViewerChoice {
    /// The first installed of TigerVNC, Remmina, gvncviewer.
    Auto,
    /// A command line with `{host}` and `{port}`, run by the shell.
    Command(String),
}

impl ViewerChoice {
    /// `--viewer` alone or `--viewer auto` is [`ViewerChoice::Auto`].
    pub fn parse(s: &str) -> ViewerChoice {
        if s.trim().is_empty() || s.trim() == "auto" {
            ViewerChoice::Auto
        } else {
            ViewerChoice::Command(s.to_string())
        }
    }
}

/// The viewers `auto` tries, in order: the program and its argument, where
/// `{host}`/`{port}`/`{display}` are filled in. TigerVNC takes `host::port`;
/// gvncviewer only a display number (port − 5900).
const AUTO: &[(&str, &str)] = &[
    ("vncviewer", "{host}::{port}"),
    ("xtigervncviewer", "{host}::{port}"),
    ("remmina", "-c vnc://{host}:{port}"),
    ("gvncviewer", "{host}:{display}"),
];

/// A viewer found and ready to start.
#[derive(Clone, Debug)]
pub struct ViewerPlan {
    kind: PlanKind,
}

#[derive(Clone, Debug)]
enum PlanKind {
    /// A program found on `PATH`, with its argument template.
    Program { path: PathBuf, args: &'static str },
    /// The technician's own command line, run by the shell.
    Shell(String),
}

impl ViewerPlan {
    /// Finds the viewer now, so that a missing one is a usage error before
    /// the clinician is asked.
    pub fn resolve(choice: &ViewerChoice) -> Result<ViewerPlan, ConnectError> {
        Self::resolve_with(choice, |name| find_on_path(name, std::env::var_os("PATH")))
    }

    fn resolve_with(
        choice: &ViewerChoice,
        find: impl Fn(&str) -> Option<PathBuf>,
    ) -> Result<ViewerPlan, ConnectError> {
        match choice {
            ViewerChoice::Command(c) => {
                if !c.contains("{port}") {
                    return Err(ConnectError::Usage(format!(
                        "--viewer {c:?}: the command must contain {{port}} (and usually {{host}}), \
                         e.g. --viewer \"vncviewer {{host}}::{{port}}\""
                    )));
                }
                Ok(ViewerPlan {
                    kind: PlanKind::Shell(c.clone()),
                })
            }
            ViewerChoice::Auto => AUTO
                .iter()
                .find_map(|(name, args)| {
                    find(name).map(|path| ViewerPlan {
                        kind: PlanKind::Program { path, args },
                    })
                })
                .ok_or_else(|| {
                    ConnectError::Usage(
                        "--viewer: no VNC viewer found (tried vncviewer, xtigervncviewer, remmina, \
                         gvncviewer); install TigerVNC's viewer (apt install tigervnc-viewer) or \
                         give a command: --viewer \"myviewer {host}:{port}\""
                            .into(),
                    )
                }),
        }
    }

    /// Whether the viewer can only be given a display number, so the port
    /// must be in 5900–5999.
    fn needs_display_port(&self) -> bool {
        matches!(&self.kind, PlanKind::Program { args, .. } if args.contains("{display}"))
    }

    /// Binds the local end of the tunnel on a free port of `ip` (loopback).
    pub async fn bind(&self, ip: IpAddr) -> Result<TcpListener, ConnectError> {
        if self.needs_display_port() {
            for port in 5901..=5999u16 {
                if let Ok(l) = TcpListener::bind((ip, port)).await {
                    return Ok(l);
                }
            }
            return Err(ConnectError::Usage(format!(
                "--viewer: no free port between 5901 and 5999 on {ip}"
            )));
        }
        TcpListener::bind((ip, 0))
            .await
            .map_err(|e| ConnectError::Usage(format!("--viewer: cannot listen on {ip}: {e}")))
    }

    /// The program and arguments for a tunnel end at `addr`, and the command
    /// line as shown to the technician.
    fn command_for(&self, addr: SocketAddr) -> (OsString, Vec<OsString>, String) {
        let host = match addr.ip() {
            IpAddr::V6(ip) => format!("[{ip}]"),
            IpAddr::V4(ip) => ip.to_string(),
        };
        let fill = |t: &str| {
            t.replace("{host}", &host)
                .replace("{port}", &addr.port().to_string())
                .replace("{display}", &addr.port().saturating_sub(5900).to_string())
        };
        match &self.kind {
            PlanKind::Program { path, args } => {
                let args: Vec<String> = fill(args).split(' ').map(str::to_string).collect();
                let shown = format!("{} {}", path.display(), args.join(" "));
                (
                    path.clone().into_os_string(),
                    args.into_iter().map(OsString::from).collect(),
                    shown,
                )
            }
            // Only Accord's own values (a loopback address, a port number)
            // are put into the technician's command line: nothing from the
            // network reaches the shell.
            PlanKind::Shell(c) => {
                let line = fill(c);
                #[cfg(windows)]
                let (prog, flag) = ("cmd", "/C");
                #[cfg(not(windows))]
                let (prog, flag) = ("/bin/sh", "-c");
                (
                    prog.into(),
                    vec![flag.into(), OsString::from(line.clone())],
                    line,
                )
            }
        }
    }

    /// Starts the viewer towards `addr`. It is killed if dropped.
    pub fn spawn(&self, addr: SocketAddr) -> Result<(Child, String), ConnectError> {
        let (prog, args, shown) = self.command_for(addr);
        let child = Command::new(&prog)
            .args(&args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| ConnectError::Usage(format!("--viewer: cannot start {shown:?}: {e}")))?;
        Ok((child, shown))
    }
}

/// Resolves when the viewer process (if any) has exited; never without one.
pub async fn exited(child: &mut Option<Child>) {
    match child {
        Some(c) => {
            let _ = c.wait().await;
        }
        None => std::future::pending().await,
    }
}

/// The first executable file named `name` in `path` (a `PATH` value).
fn find_on_path(name: &str, path: Option<OsString>) -> Option<PathBuf> {
    std::env::split_paths(&path?)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.with_extension("exe").is_file() || p.is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn auto_takes_the_first_installed_viewer() {
        let only = |want: &'static str| {
            move |n: &str| (n == want).then(|| PathBuf::from(format!("/usr/bin/{n}")))
        };
        let p = ViewerPlan::resolve_with(&ViewerChoice::Auto, only("remmina")).unwrap();
        let (prog, args, _) = p.command_for(addr("127.0.0.1:41234"));
        assert_eq!(prog, "/usr/bin/remmina");
        assert_eq!(args, ["-c", "vnc://127.0.0.1:41234"]);

        let p = ViewerPlan::resolve_with(&ViewerChoice::Auto, |n: &str| {
            Some(PathBuf::from(format!("/usr/bin/{n}")))
        })
        .unwrap();
        let (_, args, _) = p.command_for(addr("127.0.0.1:41234"));
        assert_eq!(args, ["127.0.0.1::41234"], "TigerVNC first");

        let p = ViewerPlan::resolve_with(&ViewerChoice::Auto, only("gvncviewer")).unwrap();
        assert!(p.needs_display_port());
        let (_, args, _) = p.command_for(addr("127.0.0.1:5903"));
        assert_eq!(args, ["127.0.0.1:3"]);

        let none = ViewerPlan::resolve_with(&ViewerChoice::Auto, |_: &str| None);
        assert!(matches!(none, Err(ConnectError::Usage(m)) if m.contains("no VNC viewer found")));
    }

    #[test]
    fn a_command_needs_a_port_and_gets_only_our_values() {
        assert!(matches!(
            ViewerPlan::resolve_with(&ViewerChoice::parse("vncviewer"), |_: &str| None),
            Err(ConnectError::Usage(_))
        ));
        let p = ViewerPlan::resolve_with(
            &ViewerChoice::parse("myviewer --to {host}:{port}"),
            |_: &str| None,
        )
        .unwrap();
        let (_, args, shown) = p.command_for(addr("[::1]:6000"));
        assert_eq!(shown, "myviewer --to [::1]:6000");
        assert_eq!(args.last().unwrap(), "myviewer --to [::1]:6000");
        assert_eq!(ViewerChoice::parse("auto"), ViewerChoice::Auto);
        assert_eq!(ViewerChoice::parse(""), ViewerChoice::Auto);
    }
}
