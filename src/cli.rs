//! The command line (DESIGN.md, "Command line"). Kept in the library so the
//! man page and shell completions are generated from the same definition.

use clap::{Args, CommandFactory, Parser, Subcommand};
use std::path::PathBuf;

/// Accord — consented, traced remote assistance (téléassistance).
#[derive(Parser, Debug)]
#[command(name = "accord", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the agent: tray, listener, prompt, banner (the default). One
    /// process as the logged-in user: for trying Accord out and development.
    Agent(AgentArgs),
    /// Run the system service (listener, consent, relay, audit log) under
    /// its own user; the session helpers ask the user (see `accord ui`).
    Service(AgentArgs),
    /// Run the session helper: prompt, banner, tray, notifications, kill
    /// shortcut, for `accord service` (started in every graphical session).
    Ui(AgentArgs),
    /// The window process of `accord agent` and `accord ui` (internal: they
    /// start it when there is something to show, over a pipe).
    #[command(hide = true)]
    UiWindow(UiWindowArgs),
    /// Accord's own VNC server for a GNOME Wayland session (internal: the
    /// helper starts it after consent, on a socket in a private directory).
    #[command(hide = true)]
    ScreenServer(ScreenServerArgs),
    /// Ask for a session on a workstation, then tunnel a local VNC viewer.
    Connect(ConnectArgs),
    /// End the running session (the kill switch, from a shell).
    End,
    /// Show whether a session runs, with whom, in which mode, and the
    /// health of the listener and the audit trail. Exit 0 healthy, 1
    /// degraded, 2 not running.
    Status(StatusArgs),
    /// Read and check the audit log.
    #[command(subcommand)]
    Log(LogCommand),
    /// Check a policy file.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Certificates for trying Accord out.
    #[command(subcommand)]
    Pki(PkiCommand),
}

#[derive(Args, Debug, Default)]
pub struct AgentArgs {
    /// Policy file (default: the machine-wide /etc/accord/policy.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct UiWindowArgs {
    /// `fr` or `en`.
    #[arg(long)]
    pub lang: String,
    /// The kill shortcut as the banner prints it.
    #[arg(long, default_value = "")]
    pub shortcut: String,
}

#[derive(Args, Debug)]
pub struct ScreenServerArgs {
    /// The socket to listen on (one connection).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// The mode she granted: `control` or `view`.
    #[arg(long, value_name = "MODE")]
    pub mode: String,
    /// The session may inject input (control now, or a view that may
    /// become control); without it no input reaches GNOME at all.
    #[arg(long)]
    pub input: bool,
    /// What the server itself shares of the clipboard, in the policy's
    /// spelling: `none`, `to_workstation` or `both` (Accord's relay filters
    /// it too).
    #[arg(long, value_name = "GRANT", default_value = "none")]
    pub clipboard: String,
}

#[derive(Args, Debug, Default)]
pub struct StatusArgs {
    /// The whole state as one JSON object, for monitoring tools.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// The workstation, HOST or HOST:PORT (default port 5988).
    #[arg(value_name = "HOST[:PORT]", required_unless_present = "whoami")]
    pub target: Option<String>,
    /// Your technician certificate (PEM). Default: $ACCORD_CERT, then `cert`
    /// in ~/.config/accord/connect.toml.
    #[arg(long, value_name = "FILE")]
    pub cert: Option<PathBuf>,
    /// Your private key (PEM). Default: $ACCORD_KEY, then the profile's `key`.
    #[arg(long, value_name = "FILE")]
    pub key: Option<PathBuf>,
    /// The CA that signed the workstation agents' certificates. Default:
    /// $ACCORD_CA, then the profile's `ca`.
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Helpdesk ticket number (shown to the user, at most 64 characters).
    /// With --request-control: default, the running session's.
    #[arg(long, value_name = "T", required_unless_present_any = ["whoami", "request_control"])]
    pub ticket: Option<String>,
    /// Why you ask (shown to the user, at most 280 characters). With
    /// --request-control: default, the running session's.
    #[arg(long, value_name = "R", required_unless_present_any = ["whoami", "request_control"])]
    pub reason: Option<String>,
    /// Ask only to see the screen.
    #[arg(long)]
    pub view_only: bool,
    /// Where your VNC viewer connects (loopback only).
    #[arg(long, value_name = "ADDR", default_value = crate::connect::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Start the VNC viewer once accepted, on a free loopback port: `auto`
    /// (TigerVNC, Remmina, gvncviewer) or a command with {host} and {port}.
    /// Closing the viewer ends the session.
    #[arg(long, value_name = "auto|COMMAND", num_args = 0..=1, default_missing_value = "auto")]
    pub viewer: Option<String>,
    /// Print who you are to the workstation (certificate subject and the
    /// verification code the user sees), then exit.
    #[arg(long)]
    pub whoami: bool,
    /// In your running view-only session on HOST, ask the user for control,
    /// then exit: 0 granted, 3 refused, 4 no answer in time, 6 control not
    /// allowed there. The session is the one the running `accord connect`
    /// to HOST[:PORT] noted in $XDG_RUNTIME_DIR/accord/ (with its ticket
    /// and reason), unless --session is given.
    #[arg(long, conflicts_with_all = ["view_only", "viewer", "whoami"])]
    pub request_control: bool,
    /// With --request-control: the session id (the "session" printed when
    /// it was accepted).
    #[arg(long, value_name = "UUID", requires = "request_control")]
    pub session: Option<uuid::Uuid>,
}

#[derive(Subcommand, Debug)]
pub enum LogCommand {
    /// Check the hash chain: exit 0 and a summary, or exit 1 and the first bad record.
    Verify {
        /// Log file (default: this user's audit log).
        file: Option<PathBuf>,
    },
    /// Show requests, decisions and sessions.
    Show {
        /// Log file (default: this user's audit log).
        file: Option<PathBuf>,
        /// One JSON object per line, for tools.
        #[arg(long)]
        json: bool,
        /// Only from this instant on (RFC 3339, e.g. 2026-11-27T00:00:00Z).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Validate; print the effective policy and the PGSSI-S conformity report.
    Check {
        /// Policy file (default: the machine-wide one).
        file: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum PkiCommand {
    /// Write a demo CA, agent and technician certificates and a loopback policy.
    Demo {
        /// Directory to write into (created if missing).
        dir: PathBuf,
    },
}

/// The clap command, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::command()
}
