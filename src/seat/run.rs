//! `accord service`: wiring. The core of `accord agent` (listener, broker,
//! relay, audit log, forwarder, control socket) with the helpers in place
//! of the windows, and the seat watcher that says who may be asked.

use super::helpers::{HelperPrompter, Helpers};
use super::listener::{self, SessionOf};
use super::rule::{SeatMode, SeatView};
use crate::app::AppError;
use crate::policy::Policy;
use std::sync::Arc;
use tokio::sync::watch;

/// Runs the service until SIGTERM or Ctrl-C; returns once every session has
/// ended and been recorded.
pub fn run_service(mut policy: Policy) -> Result<(), AppError> {
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
        .map_err(AppError::Runtime)?;
    let run_dir = crate::platform::service_run_dir();
    rt.block_on(serve(
        Arc::new(policy),
        &run_dir,
        None,
        crate::app::termination_signal(),
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
    let journal = crate::app::open_journal(&policy);
    let run_dir = run_dir.to_path_buf();
    match policy.service.seat {
        SeatMode::Single => {
            let (_keep, seat) = watch::channel(SeatView::default());
            let helpers = Helpers::new(
                SeatMode::Single,
                policy.session.end_on_screen_lock,
                seat,
                journal.clone(),
            );
            serve_with(
                policy,
                journal,
                helpers,
                Arc::new(listener::NoSessions),
                &run_dir,
                shutdown,
            )
            .await;
        }
        SeatMode::Logind => {
            #[cfg(feature = "logind")]
            {
                let (seat, sessions) = super::seatwatch::start("seat0", system_bus);
                let helpers = Helpers::new(
                    SeatMode::Logind,
                    policy.session.end_on_screen_lock,
                    seat,
                    journal.clone(),
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
            #[cfg(not(feature = "logind"))]
            {
                let _ = system_bus;
                tracing::error!(
                    "built without logind support: set [service] seat = \"single\"; every request is refused"
                );
                let (_keep, seat) = watch::channel(SeatView::default());
                let helpers = Helpers::new(SeatMode::Logind, true, seat, journal.clone());
                serve_with(
                    policy,
                    journal,
                    helpers,
                    Arc::new(listener::NoSessions),
                    &run_dir,
                    shutdown,
                )
                .await;
            }
        }
    }
}

async fn serve_with<L: SessionOf>(
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
    crate::app::serve(
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
    for t in tasks {
        t.abort();
    }
}
