//! `accord`: command-line parsing and dispatch only.

use accord::cli::{Cli, Command, ConnectArgs, LogCommand, PkiCommand, PolicyCommand};
use accord::connect::{self, ConnectConfig};
use accord::policy::Policy;
use accord::protocol::Mode;
use anyhow::Context as _;
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ACCORD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: the helper's and the service's logs
        // are files and the journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("accord: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs `f` on a fresh runtime with a progress callback that prints
/// through `out`, then gives `out` back for the final line. Exit 2 when no
/// runtime can start (said on `out`).
fn with_progress<T>(
    mut out: connect::text::Reporter<std::io::Stderr>,
    f: impl FnOnce(&tokio::runtime::Runtime, &mut (dyn FnMut(connect::Progress) + Send)) -> T,
) -> Result<(T, connect::text::Reporter<std::io::Stderr>), ExitCode> {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            out.line(&format!("{e:#}"));
            return Err(ExitCode::from(2));
        }
    };
    // The reporter is shared by the progress callback and the final line.
    let out = std::sync::Mutex::new(out);
    let mut progress = |p: connect::Progress| {
        if let Ok(mut o) = out.lock() {
            o.progress(&p);
        }
    };
    let r = f(&rt, &mut progress);
    Ok((r, out.into_inner().unwrap_or_else(|p| p.into_inner())))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command.unwrap_or(Command::Agent(Default::default())) {
        Command::Agent(args) => {
            let path = args.policy.unwrap_or_else(accord::platform::policy_path);
            let policy = Policy::load(&path)?;
            accord::modes::agent::run(policy)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Service(args) => {
            let path = args.policy.unwrap_or_else(accord::platform::policy_path);
            let policy = Policy::load(&path)?;
            accord::modes::service::run(policy)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ui(args) => {
            // The helper only needs `[ui]`; a policy it cannot read (not
            // world-readable here) means the defaults, never no helper.
            let path = args.policy.unwrap_or_else(accord::platform::policy_path);
            let policy = match Policy::load(&path) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!("{e}; using the default language and shortcut");
                    Policy::defaults()
                }
            };
            accord::modes::helper::run(policy)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::UiWindow(a) => {
            accord::modes::window::run(&a.lang, a.shortcut)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::ScreenServer(a) => screen_server(a),
        Command::Connect(a) => Ok(connect_command(a)),
        Command::End => {
            let rt = runtime()?;
            let path = accord::control::target()
                .context("no Accord service or agent to talk to (no private runtime directory)")?;
            let v = rt.block_on(accord::control::call(&path, "end"))?;
            if let Some(e) = v["error"].as_str() {
                anyhow::bail!("{e}");
            }
            if v["ended"].as_bool() == Some(true) {
                println!("session ended");
            } else {
                println!("no session to end");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(args) => {
            // Exit 2 when nothing answers: monitoring tells "down" from
            // "degraded" (1) without parsing text.
            let not_running = |why: String| {
                if args.json {
                    println!("{}", serde_json::json!({"running": false, "why": why}));
                } else {
                    println!("NOT running: {why}");
                }
                Ok(ExitCode::from(2))
            };
            let Some(path) = accord::control::target() else {
                return not_running("no Accord service or agent to talk to".into());
            };
            let rt = runtime()?;
            let answer = match rt.block_on(accord::control::call(&path, "status")) {
                Ok(v) => v,
                Err(e) => return not_running(e.to_string()),
            };
            let mut status: accord::control::Status = match serde_json::from_value(answer) {
                Ok(s) => s,
                Err(e) => return not_running(format!("its answer is not a status: {e}")),
            };
            status.running = Some(true);
            if args.json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                println!("{}", accord::control::status_text(&status));
            }
            Ok(ExitCode::from(accord::control::status_exit(&status)))
        }
        Command::Log(cmd) => log_command(cmd),
        Command::Policy(PolicyCommand::Check { file }) => {
            let path = file.unwrap_or_else(accord::platform::policy_path);
            match Policy::load(&path) {
                Ok(p) => {
                    println!("# {}: valid. Effective policy:\n", path.display());
                    print!("{}", p.to_toml());
                    println!();
                    print!("{}", p.conformity_report());
                    // The files it names, as this user sees them.
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    #[allow(unused_mut)]
                    let mut findings = accord::preflight::check(&p, now);
                    // The second kill switch (O8) must parse, or only the
                    // banner and the tray can end a session.
                    #[cfg(feature = "ui")]
                    for k in accord::ui::hotkey::shortcuts(&p.ui.kill_shortcut) {
                        if let Err(e) = accord::ui::hotkey::parse(&k) {
                            findings.push(accord::preflight::Finding {
                                level: accord::preflight::Level::Warning,
                                key: "ui.kill_shortcut",
                                message: format!(
                                    "{e}: only the banner and the tray can end a session"
                                ),
                            });
                        }
                    }
                    println!(
                        "\nFiles and certificates (as user {}):",
                        accord::platform::user_name()
                    );
                    print!("{}", accord::preflight::render(&findings));
                    if accord::preflight::would_run(&findings) {
                        Ok(ExitCode::SUCCESS)
                    } else {
                        println!(
                            "\nWith these errors the agent would not listen (or would refuse every request)."
                        );
                        Ok(ExitCode::from(1))
                    }
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
        Command::Pki(PkiCommand::Demo { dir }) => {
            let pki = accord::tls::demo::write(&dir)?;
            println!(
                "wrote a demo PKI in {}:\n  CA          {}\n  agent       {} (+ key, 0600)\n  technician  {} (+ key, 0600)\n  policy      {}\n\
                 Run the agent:  accord agent --policy {}\n\
                 Ask for a session:  accord connect 127.0.0.1 --ca {} --cert {} --key {} --ticket DEMO-1 --reason \"Essai\"",
                pki.dir.display(),
                pki.ca.display(),
                pki.agent_cert.display(),
                pki.technician_cert.display(),
                pki.policy.display(),
                pki.policy.display(),
                pki.ca.display(),
                pki.technician_cert.display(),
                pki.technician_key.display(),
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `accord connect`: every failure is printed as a sentence with what to do,
/// and the exit code is the one DESIGN.md fixes for it.
fn connect_command(mut a: ConnectArgs) -> ExitCode {
    use connect::text::{self, Lang, Reporter};
    use std::io::IsTerminal;
    let lang = Lang::from_env();
    let stderr = std::io::stderr();
    let tty = stderr.is_terminal();
    let mut out = Reporter::new(stderr, lang, tty);
    let fail = |out: &mut Reporter<std::io::Stderr>, e: connect::ConnectError| {
        let msg = match &e {
            connect::ConnectError::Refused(c) => text::refusal(out.lang(), *c).to_string(),
            connect::ConnectError::RefusedUntil { why, retry_at } => {
                text::refusal_until(out.lang(), *why, *retry_at)
            }
            connect::ConnectError::Handshake(f) => text::tls_failure(out.lang(), f),
            other => other.to_string(),
        };
        out.line(&msg);
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    };
    let creds = match connect::profile::resolve(connect::profile::Given {
        cert: a.cert.take(),
        key: a.key.take(),
        ca: a.ca.take(),
    }) {
        Ok(c) => c,
        Err(e) => return fail(&mut out, e),
    };
    if a.whoami {
        return match connect::whoami(&creds.cert) {
            Ok(id) => {
                let (subject, code) = match lang {
                    Lang::Fr => ("Technicien", "Code de vérification"),
                    Lang::En => ("Technician", "Verification code"),
                };
                let colon = if lang == Lang::Fr { "\u{a0}:" } else { ":" };
                println!("{subject}{colon} {}", id.subject);
                println!("{code}{colon} {}", id.short_fingerprint());
                ExitCode::SUCCESS
            }
            Err(e) => fail(&mut out, e),
        };
    }
    if a.request_control {
        return request_control_command(a, creds, out);
    }
    let (Some(target), Some(ticket), Some(reason)) = (a.target, a.ticket, a.reason) else {
        // clap requires them without --whoami.
        return fail(
            &mut out,
            connect::ConnectError::Usage("HOST, --ticket and --reason are required".into()),
        );
    };
    let (host, port) = match connect::parse_target(&target) {
        Ok(t) => t,
        Err(e) => return fail(&mut out, e),
    };
    let cfg = ConnectConfig {
        host,
        port,
        cert: creds.cert,
        key: creds.key,
        ca: creds.ca,
        ticket,
        reason,
        mode: if a.view_only {
            Mode::View
        } else {
            Mode::Control
        },
        listen: a.listen,
    };
    let viewer = a
        .viewer
        .as_deref()
        .map(connect::viewer::ViewerChoice::parse);
    let (r, mut out) = match with_progress(out, |rt, progress| {
        rt.block_on(connect::run(&cfg, viewer.as_ref(), progress))
    }) {
        Ok(done) => done,
        Err(code) => return code,
    };
    match r {
        // What ended it, when the workstation said; DESIGN's exit code.
        Ok(ending) => {
            out.line(&text::session_end(lang, &ending));
            ExitCode::from(u8::try_from(ending.exit_code()).unwrap_or(2))
        }
        Err(e) => fail(&mut out, e),
    }
}

/// `accord connect HOST --request-control`: asks for control of the running
/// view-only session, prints the outcome, exits with DESIGN.md's codes.
fn request_control_command(
    a: ConnectArgs,
    creds: connect::profile::Credentials,
    mut out: connect::text::Reporter<std::io::Stderr>,
) -> ExitCode {
    use connect::text;
    let lang = out.lang();
    let fail = |out: &mut connect::text::Reporter<std::io::Stderr>, e: connect::ConnectError| {
        let msg = match &e {
            connect::ConnectError::Refused(c) => text::raise_refusal(lang, *c).to_string(),
            connect::ConnectError::RefusedUntil { why, retry_at } => {
                text::refusal_until(lang, *why, *retry_at)
            }
            connect::ConnectError::Handshake(f) => text::tls_failure(lang, f),
            other => other.to_string(),
        };
        out.line(&msg);
        ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
    };
    let Some(target) = a.target else {
        return fail(
            &mut out,
            connect::ConnectError::Usage("HOST is required".into()),
        );
    };
    let (host, port) = match connect::parse_target(&target) {
        Ok(t) => t,
        Err(e) => return fail(&mut out, e),
    };
    // The running tunnel's note, needed unless everything is given.
    let noted = match (a.session, &a.ticket, &a.reason) {
        (Some(_), Some(_), Some(_)) => None,
        _ => match connect::read_session_file(&host, port) {
            Ok(n) => Some(n),
            Err(e) => return fail(&mut out, e),
        },
    };
    let session = match (a.session, &noted) {
        (Some(s), _) => s,
        (None, Some(n)) => n.session,
        (None, None) => {
            return fail(
                &mut out,
                connect::ConnectError::Usage("--session is required".into()),
            );
        }
    };
    let pick = |given: Option<String>, noted: Option<&String>| {
        given.or_else(|| noted.cloned()).unwrap_or_default()
    };
    let cfg = ConnectConfig {
        host,
        port,
        cert: creds.cert,
        key: creds.key,
        ca: creds.ca,
        ticket: pick(a.ticket, noted.as_ref().map(|n| &n.ticket)),
        reason: pick(a.reason, noted.as_ref().map(|n| &n.reason)),
        mode: Mode::Control,
        listen: a.listen,
    };
    let (r, mut out) = match with_progress(out, |rt, progress| {
        rt.block_on(connect::request_control(&cfg, session, progress))
    }) {
        Ok(done) => done,
        Err(code) => return code,
    };
    match r {
        Ok(()) => {
            out.line(text::control_granted(lang));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&mut out, e),
    }
}

/// `End` and `Status` share a code path; tell them apart by argv.
fn default_log_path() -> PathBuf {
    Policy::load(&accord::platform::policy_path())
        .map(|p| p.audit_path())
        .unwrap_or_else(|_| accord::platform::data_dir().join("audit.jsonl"))
}

fn log_command(cmd: LogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        LogCommand::Verify { file } => {
            let path = file.unwrap_or_else(default_log_path);
            match accord::audit::verify_file(&path) {
                Ok(s) => {
                    println!("{} records, chain intact, head {}", s.records, s.head_hash);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("{}: {e}", path.display());
                    Ok(ExitCode::from(1))
                }
            }
        }
        LogCommand::Show { file, json, since } => {
            let path = file.unwrap_or_else(default_log_path);
            let since = since
                .map(|s| {
                    time::OffsetDateTime::parse(&s, &time::format_description::well_known::Rfc3339)
                        .with_context(|| {
                            format!("--since {s:?}: expected RFC 3339, e.g. 2026-11-27T00:00:00Z")
                        })
                })
                .transpose()?;
            let records = accord::audit::read_records(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            print!("{}", accord::audit::show::render(&records, since, json));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `accord screen-server`: exit 0 when the viewer left,
/// `EXIT_STOPPED_IN_GNOME` when she stopped the sharing from GNOME.
#[cfg(all(feature = "mutter", target_os = "linux"))]
fn screen_server(a: accord::cli::ScreenServerArgs) -> anyhow::Result<ExitCode> {
    use accord::mutter::server::{self, Outcome, ServeOptions};
    let mode = match a.mode.as_str() {
        "control" => Mode::Control,
        "view" => Mode::View,
        m => anyhow::bail!("--mode {m:?}: expected control or view"),
    };
    let Some(clipboard) = accord::policy::Clipboard::parse(&a.clipboard) else {
        anyhow::bail!(
            "--clipboard {:?}: expected none, to_workstation or both",
            a.clipboard
        );
    };
    // One thread: the server is one connection, and the frame lock it
    // takes is held only between awaits.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let opts = ServeOptions {
        mode,
        input: a.input,
        clipboard,
    };
    match rt.block_on(server::run(&a.socket, opts))? {
        Outcome::ViewerLeft => Ok(ExitCode::SUCCESS),
        Outcome::StoppedInGnome => {
            tracing::info!("the sharing was stopped from GNOME's indicator");
            Ok(ExitCode::from(server::EXIT_STOPPED_IN_GNOME as u8))
        }
    }
}

#[cfg(not(all(feature = "mutter", target_os = "linux")))]
fn screen_server(_: accord::cli::ScreenServerArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("this build of Accord has no screen server for GNOME Wayland (feature mutter)")
}
