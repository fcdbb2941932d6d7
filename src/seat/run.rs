//! `accord service`: wiring. The core of `accord agent` (listener, broker,
//! relay, audit log, forwarder, control socket) with the helpers in place
//! of the windows, and the seat watcher that says who may be asked.

use super::listener::{self, PlaceOf};
use super::registry::{HelperPrompter, Helpers};
use super::rule::SeatView;
use crate::engine::StartError;
use crate::policy::{Policy, SeatMode};
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the service until SIGTERM or Ctrl-C; returns once every session has
/// ended and been recorded.
pub fn run_service(mut policy: Policy) -> Result<(), StartError> {
    // The service's log lives in its state directory, out of every login
    // user's reach, unless the policy names another place.
    if policy.audit.path.is_none() {
        policy.audit.path = Some(crate::platform::service_state_dir().join("audit.jsonl"));
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("accord-service")
        .enable_all()
        .build()
        .map_err(StartError::Runtime)?;
    let run_dir = crate::platform::service_run_dir();
    rt.block_on(serve(
        Arc::new(policy),
        &run_dir,
        None,
        crate::engine::termination_signal(),
    ));
    Ok(())
}

/// The service until `shutdown` resolves, with its sockets in `run_dir`
/// and logind on `system_bus` (`None`: the system bus). Tests call this
/// directly with their own directory and bus.
pub async fn serve(
    policy: Arc<Policy>,
    run_dir: &std::path::Path,
    system_bus: Option<String>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let journal = crate::engine::open_journal(&policy);
    let run_dir = run_dir.to_path_buf();
    let (seat, sessions) = watch_seat(policy.service.seat, system_bus);
    let helpers = Helpers::new(
        policy.service.seat,
        policy.upstream.launch,
        &policy.service.users,
        policy.session.end_on_screen_lock,
        seat,
        journal.clone(),
        policy.audit_path(),
    );
    serve_with(
        policy,
        journal,
        helpers,
        Arc::new(sessions),
        &run_dir,
        shutdown,
    )
    .await;
}

/// Where helpers' sessions come from.
enum Sessions {
    /// Holds the seat's (never changing) sender: a closed watch would read
    /// as "the seat watcher stopped" and refuse every request.
    None {
        sessions: listener::NoSessions,
        _seat: watch::Sender<SeatView>,
    },
    #[cfg(feature = "logind")]
    Logind(super::seatwatch::LogindSessions),
}

impl PlaceOf for Sessions {
    async fn place_of(&self, pid: u32) -> listener::Place {
        match self {
            Sessions::None { sessions, .. } => sessions.place_of(pid).await,
            #[cfg(feature = "logind")]
            Sessions::Logind(l) => l.place_of(pid).await,
        }
    }
}

/// The seat as the policy says to watch it: logind's `seat0`, or nothing
/// (`single`: the helpers alone decide). Without logind support built in,
/// `logind` means nobody is ever in front of the screen (fail closed).
fn watch_seat(mode: SeatMode, system_bus: Option<String>) -> (watch::Receiver<SeatView>, Sessions) {
    let nobody = || {
        let (tx, rx) = watch::channel(SeatView::default());
        (
            rx,
            Sessions::None {
                sessions: listener::NoSessions,
                _seat: tx,
            },
        )
    };
    match mode {
        SeatMode::Single => nobody(),
        #[cfg(feature = "logind")]
        SeatMode::Logind => {
            let (seat, sessions) = super::seatwatch::start("seat0", system_bus);
            (seat, Sessions::Logind(sessions))
        }
        #[cfg(not(feature = "logind"))]
        SeatMode::Logind => {
            let _ = system_bus;
            tracing::error!(
                "built without logind support: set [service] seat = \"single\"; every request is refused"
            );
            nobody()
        }
    }
}

async fn serve_with<L: PlaceOf>(
    policy: Arc<Policy>,
    journal: Arc<dyn crate::broker::Journal>,
    helpers: Arc<Helpers>,
    sessions: Arc<L>,
    run_dir: &std::path::Path,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let may_end = {
        let h = helpers.clone();
        Arc::new(move |uid: u32| h.may_end(uid))
    };
    let control = Some((
        run_dir.join("control.sock"),
        crate::control::Access::Service { may_end },
    ));
    let ui_path = run_dir.join("ui.sock");
    let prompter = HelperPrompter::new(helpers.clone());
    let mut tasks = Vec::new();
    crate::engine::serve(
        policy,
        journal,
        prompter,
        control,
        |ctl| {
            helpers.set_control(ctl);
            tasks.push(tokio::spawn(helpers.clone().monitor()));
            tasks.push(tokio::spawn(helpers.clone().broadcast_state()));
            let h = helpers.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = listener::serve(&ui_path, h, sessions).await {
                    // Nobody can be asked: every request is refused no_user.
                    tracing::error!(
                        "session helpers cannot connect ({e}): every request will be refused"
                    );
                }
            }));
        },
        shutdown,
    )
    .await;
    // Stopped and waited for, with every connection they own.
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
}
