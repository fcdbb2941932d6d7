//! The main thread: opens a window only when there is something to show.
//!
//! eframe shows its root window even when asked to start hidden (egui
//! #3654, #8459), so the agent has no root window while idle: the main
//! thread sleeps on the hub's condition variable (no repaint; until its
//! first window it wakes twice a second only to drop the display's
//! events, see [`run`]), and each need opens one window whose root viewport
//! *is* what must be seen: the prompt, the banner, or the history. When the
//! need is gone the window closes and its run returns; the winit event
//! loop (the display connection) stays for the next one.
//!
//! The banner's window lasts as long as the session, so a question asked
//! during the session (a request for control) cannot wait for it to close:
//! it opens over the banners as a viewport of the banner's window, with the
//! prompt's own title, size, guards (arm delay, keyboard gate) and
//! stacking, and closes when answered or withdrawn; the banners stay
//! ([`HubState::showing`]).
//!
//! Always-on-top set at creation is ignored by some window managers until
//! the window has painted, so it is sent again after the first frames. The
//! prompt never asks for the keyboard focus (`docs/ui-keyboard.md`). The
//! banner is one window per monitor, kept on its monitor's top edge and on
//! top by [`crate::ui::stay`] and [`crate::ui::x11::Raiser`].

use crate::broker::Answer;
use crate::ui::banner::{
    BannerState, HEIGHT as BANNER_HEIGHT, MAX_WIDTH as BANNER_MAX_WIDTH, SessionActions, banner_ui,
};
use crate::ui::hub::{Hub, HubState, Root};
use crate::ui::prompt::{PromptState, prompt_ui};
use crate::ui::stay::{self, Home, Keeper};
use crate::ui::strings::Strings;
use crate::ui::x11;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;
use winit::application::ApplicationHandler;
use winit::error::EventLoopError;
use winit::event::WindowEvent;
use winit::event_loop::{ActiveEventLoop, EventLoop};
use winit::platform::pump_events::{EventLoopExtPumpEvents, PumpStatus};
use winit::platform::run_on_demand::EventLoopExtRunOnDemand;
use winit::window::WindowId;

/// Frames painted since start, all windows together (benchmark: an idle
/// agent must paint none).
pub static FRAMES: AtomicU64 = AtomicU64::new(0);
/// Microseconds from the request reaching the broker to the end of the
/// first frame of its prompt, for the last prompt shown (benchmark).
pub static LAST_PROMPT_LATENCY_US: AtomicU64 = AtomicU64::new(0);

/// The prompt's size: the three answer buttons on one line, everything
/// readable without scrolling for ordinary ticket and reason lengths.
pub const PROMPT_SIZE: [f32; 2] = [700.0, 580.0];

/// What the windows need besides the hub.
#[derive(Clone)]
pub struct WindowsConfig {
    pub strings: Arc<Strings>,
    pub actions: Arc<dyn SessionActions>,
    pub shortcut: String,
    /// Told when a prompt is first painted and when the history closes
    /// (the window process reports them to its parent).
    pub events: Option<Arc<dyn WindowEvents>>,
}

/// What the windows report besides answers and session actions.
pub trait WindowEvents: Send + Sync {
    /// The first frame of prompt `id` was painted, `us` after the request
    /// reached the broker.
    fn prompt_shown(&self, id: uuid::Uuid, us: u64);
    /// The history window closed.
    fn history_closed(&self);
}

enum Kind {
    Prompt(Box<Asked>),
    Banner(Box<SessionWindow>),
    History,
}

/// A prompt on screen, in the root viewport or over the banners, with what
/// its window needs besides the prompt itself.
struct Asked {
    st: PromptState,
    /// Frames of this prompt's viewport.
    frames: u64,
    opened: Instant,
    /// "Always on top" was sent again once the window manager had it.
    placed: bool,
    /// The first frame was reported.
    shown_reported: bool,
}

impl Asked {
    fn new(req: crate::broker::PromptRequest, strings: Arc<Strings>) -> Asked {
        Asked {
            st: PromptState::new(req, strings),
            frames: 0,
            opened: Instant::now(),
            placed: false,
            shown_reported: false,
        }
    }

    /// One frame of the prompt's viewport: the prompt, its first-frame
    /// report, kept visible and on top. `Close` once answered or withdrawn.
    fn frame(&mut self, ui: &mut egui::Ui, hub: &Hub, events: Option<&dyn WindowEvents>) -> Shown {
        self.frames += 1;
        if prompt_window_ui(ui, hub, &mut self.st) == Shown::Close {
            return Shown::Close;
        }
        if !std::mem::replace(&mut self.shown_reported, true) {
            let us = log_latency(&self.st.req);
            if let Some(ev) = events {
                ev.prompt_shown(self.st.req.id, us);
            }
        }
        if ui.input(|i| i.viewport().minimized) == Some(true) {
            // Some window managers offer "iconify" whatever the hints say:
            // the prompt comes back until answered.
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::Minimized(false));
        }
        self.assert_on_top(ui);
        Shown::Keep
    }

    /// Re-asserts stacking once the window exists for the window manager
    /// (see the module comment). Never the keyboard focus.
    fn assert_on_top(&mut self, ui: &egui::Ui) {
        let age = self.opened.elapsed();
        if self.frames == 2 || (self.frames > 2 && !self.placed && age.as_millis() >= 300) {
            ui.ctx()
                .send_viewport_cmd(egui::ViewportCommand::WindowLevel(
                    egui::WindowLevel::AlwaysOnTop,
                ));
            if age.as_millis() >= 300 {
                self.placed = true;
            }
        }
        if !self.placed {
            ui.ctx()
                .request_repaint_after(std::time::Duration::from_millis(100));
        }
    }
}

/// The session's window: one banner per monitor (O7), the first the
/// window's root viewport, the others immediate viewports drawn in the same
/// frame; and over them, in a viewport of its own, the question asked
/// during the session (a request for control).
pub struct SessionWindow {
    /// One per monitor, with the keeper that holds it in place.
    each: Vec<(BannerState, Keeper)>,
    /// The monitors were not known before opening: place the root banner
    /// from what egui reports on the first frame.
    guess_home: bool,
    /// Raises the banners over a window that covers them (`None`: cannot,
    /// said once in the log; "always on top" still holds them over normal
    /// windows).
    raiser: Option<x11::Raiser>,
    /// The question asked during the session, over the banners.
    over: Option<Box<Asked>>,
    /// Raise our windows at the next frame: the banners' "always on top"
    /// sent again this frame is carried out by eframe after the frame, and
    /// the window manager raises a window it is told so; raised before
    /// that, the question would end under a banner.
    raise_next: bool,
}

impl SessionWindow {
    pub fn new(info: &crate::broker::SessionInfo, cfg: &WindowsConfig) -> SessionWindow {
        let monitors = match x11::monitors() {
            Ok(m) => m,
            Err(e) => {
                tracing::info!("monitors: {e}; one banner, on the screen it opens on");
                Vec::new()
            }
        };
        let guess_home = monitors.is_empty();
        let homes: Vec<Home> = if guess_home {
            vec![Home {
                monitor: egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1024.0, 768.0)),
            }]
        } else {
            monitors
                .iter()
                .map(|m| Home {
                    monitor: egui::Rect::from_min_size(
                        egui::pos2(m.x as f32, m.y as f32),
                        egui::vec2(m.width as f32, m.height as f32),
                    ),
                })
                .collect()
        };
        let each = homes
            .into_iter()
            .map(|h| {
                (
                    BannerState::new(
                        info.clone(),
                        cfg.strings.clone(),
                        cfg.actions.clone(),
                        cfg.shortcut.clone(),
                    ),
                    Keeper::new(h),
                )
            })
            .collect();
        let raiser = x11::Raiser::new()
            .map_err(|e| tracing::info!("banner raiser: {e}; relying on \"always on top\""))
            .ok();
        SessionWindow {
            each,
            guess_home,
            raiser,
            over: None,
            raise_next: false,
        }
    }

    /// The prompt shown over the banners, if one is.
    pub fn question(&self) -> Option<uuid::Uuid> {
        self.over.as_ref().map(|a| a.st.req.id)
    }

    /// One frame of the session's window: the banners and the question
    /// asked meanwhile, if any. `Close` when the session is over or
    /// another one runs.
    pub fn ui(&mut self, ui: &mut egui::Ui, hub: &Hub, cfg: &WindowsConfig) -> Shown {
        let (current, showing) = {
            let g = hub.lock();
            (g.session.clone(), g.showing())
        };
        let Some(info) = current else {
            return Shown::Close;
        };
        if self
            .each
            .first()
            .is_none_or(|(st, _)| st.info.id != info.id)
        {
            return Shown::Close;
        }
        for (st, _) in &mut self.each {
            st.info = info.clone();
        }
        if self.guess_home {
            // No monitor list: the monitor egui reports, from the window's
            // origin.
            if let (Some(m), Some(o)) =
                ui.input(|i| (i.viewport().monitor_size, i.viewport().outer_rect))
                && let Some((_, k)) = self.each.first_mut()
            {
                let x0 = (o.min.x / m.x).floor() * m.x;
                let y0 = (o.min.y / m.y).floor() * m.y;
                k.home = Home {
                    monitor: egui::Rect::from_min_size(egui::pos2(x0, y0), m),
                };
                let (size, _) = banner_geometry(k.home);
                ui.ctx()
                    .send_viewport_cmd(egui::ViewportCommand::InnerSize(size));
                self.guess_home = false;
            }
        }
        if std::mem::take(&mut self.raise_next)
            && let Some(r) = &self.raiser
        {
            // Ours in the order they were mapped: the banners, then the
            // question over them, which stays on top.
            r.raise();
        }
        let title = cfg.strings.banner.title.clone();
        let mut raise = false;
        let mut rest = self.each.iter_mut();
        if let Some((st, k)) = rest.next() {
            raise |= banner_frame(ui, st, k);
        }
        for (i, (st, k)) in rest.enumerate() {
            let id = egui::ViewportId::from_hash_of(("accord_banner", i));
            let builder = banner_viewport(&title, k.home);
            raise |= ui
                .ctx()
                .show_viewport_immediate(id, builder, |ui, _class| banner_frame(ui, st, k));
        }
        // The question asked during the session, over the banners: the
        // banners' window lasts as long as the session, so the question
        // cannot wait for it to close.
        if self.question() != showing.over_banner {
            self.over = showing.over_banner.and_then(|id| {
                let g = hub.lock();
                let p = g.prompts.iter().find(|p| p.req.id == id)?;
                tracing::info!("prompt {id}: shown over the banner of session {}", info.id);
                Some(Box::new(Asked::new(p.req.clone(), cfg.strings.clone())))
            });
        }
        if let Some(a) = &mut self.over {
            // Centred on the primary monitor, as a prompt alone is.
            let monitor = self.each.first().map(|(_, k)| k.home.monitor);
            let builder = prompt_viewport(&cfg.strings.prompt.title, monitor);
            let id = egui::ViewportId::from_hash_of(("accord_prompt", a.st.req.id));
            let events = cfg.events.as_deref();
            let shown = ui
                .ctx()
                .show_viewport_immediate(id, builder, |ui, _class| a.frame(ui, hub, events));
            if shown == Shown::Close {
                self.over = None;
                // One more frame drops the closed viewport.
                ui.ctx().request_repaint();
            }
        }
        if raise && self.raiser.is_some() {
            self.raise_next = true;
            ui.ctx().request_repaint();
        }
        Shown::Keep
    }
}

/// The prompt's window: on top, never taking the keyboard, centred on
/// `monitor` when it is known.
fn prompt_viewport(title: &str, monitor: Option<egui::Rect>) -> egui::ViewportBuilder {
    let builder = egui::ViewportBuilder::default()
        .with_title(title)
        .with_inner_size(PROMPT_SIZE)
        .with_min_inner_size([460.0, 400.0])
        .with_resizable(true)
        .with_minimize_button(false)
        .with_maximize_button(false)
        .with_always_on_top()
        // Never take the keyboard on its own: a clinician typing elsewhere
        // must not type into it (docs/ui-keyboard.md).
        .with_active(false)
        .with_window_type(egui::X11WindowType::Dialog)
        .with_app_id("accord");
    match monitor {
        Some(m) => builder.with_position(egui::pos2(
            m.min.x + ((m.width() - PROMPT_SIZE[0]) / 2.0).max(0.0),
            m.min.y + ((m.height() - PROMPT_SIZE[1]) / 2.0).max(0.0),
        )),
        None => builder,
    }
}

/// Size and top-centre position of a banner on its monitor.
fn banner_geometry(home: Home) -> (egui::Vec2, egui::Pos2) {
    let m = home.monitor;
    let w = BANNER_MAX_WIDTH.min(m.width());
    (
        egui::vec2(w, BANNER_HEIGHT),
        egui::pos2(m.min.x + ((m.width() - w) / 2.0).max(0.0), m.min.y),
    )
}

fn banner_viewport(title: &str, home: Home) -> egui::ViewportBuilder {
    let (size, pos) = banner_geometry(home);
    egui::ViewportBuilder::default()
        .with_title(title)
        .with_inner_size(size)
        .with_position(pos)
        .with_decorations(false)
        .with_resizable(false)
        .with_minimize_button(false)
        .with_maximize_button(false)
        .with_close_button(false)
        .with_always_on_top()
        .with_active(false)
        .with_taskbar(true)
        .with_app_id("accord")
}

/// One frame of one banner viewport: keep it in place and on top, draw it.
/// Returns whether it is time to raise it.
fn banner_frame(ui: &mut egui::Ui, st: &mut BannerState, keeper: &mut Keeper) -> bool {
    let (now, outer, minimized, close) = ui.input(|i| {
        (
            i.time,
            i.viewport().outer_rect,
            i.viewport().minimized,
            i.viewport().close_requested(),
        )
    });
    if close {
        // The banner goes only with the session (O7).
        ui.ctx()
            .send_viewport_cmd(egui::ViewportCommand::CancelClose);
    }
    if minimized == Some(true) {
        ui.ctx()
            .send_viewport_cmd(egui::ViewportCommand::Minimized(false));
    }
    let a = keeper.tick(now, outer);
    if let Some(p) = a.move_to {
        tracing::debug!("banner moved to {outer:?}: back to {p:?}");
        ui.ctx()
            .send_viewport_cmd(egui::ViewportCommand::OuterPosition(p));
    }
    if a.raise {
        // Someone may have taken "always on top" away; the raise itself
        // (over windows that are on top too) is the caller's, without focus.
        ui.ctx()
            .send_viewport_cmd(egui::ViewportCommand::WindowLevel(
                egui::WindowLevel::AlwaysOnTop,
            ));
    }
    if let Some(a) = banner_ui(ui, st) {
        tracing::info!("session {}: clinician pressed {a:?}", st.info.id);
    }
    ui.ctx()
        .request_repaint_after(std::time::Duration::from_secs_f64(stay::REASSERT));
    a.raise
}

/// Why no window can be shown (no display, no GL): the caller marks the UI
/// dead, and every prompt is refused (fail closed).
#[derive(Debug, thiserror::Error)]
pub enum WindowError {
    #[error("cannot use the display: {0}")]
    NoDisplay(#[source] EventLoopError),
    #[error("{0}")]
    EventLoop(#[source] EventLoopError),
    /// Not one frame painted: eframe's only sign of no GL or no window.
    #[error("the window could not be opened or drawn")]
    NeverPainted,
}

/// Runs windows until the core quits. `Err` when a window cannot be opened
/// (no display, no GL): the caller marks the UI dead.
///
/// The display connection and its event loop are made at once, before
/// anything is asked: a window process is started ahead of need (the
/// spare, [`super::host`]) and a prompt should not wait for the X
/// connection and keymap (~20 ms). Until its first window the loop is
/// drained every [`DRAIN_EVERY`] so the server's events (keyboard state
/// changes) do not pile up for a process that may wait all day.
pub fn run(hub: &Arc<Hub>, cfg: &WindowsConfig) -> Result<(), WindowError> {
    let mut builder = EventLoop::<eframe::UserEvent>::with_user_event();
    // X11 (or XWayland) whenever there is one: only there does a window stay
    // on top. winit alone would take Wayland as soon as WAYLAND_DISPLAY is
    // set, XWayland or not.
    #[cfg(all(unix, not(target_os = "macos")))]
    {
        use winit::platform::wayland::EventLoopBuilderExtWayland as _;
        use winit::platform::x11::EventLoopBuilderExtX11 as _;
        if std::env::var_os("DISPLAY").is_some_and(|d| !d.is_empty()) {
            builder.with_x11();
        } else {
            builder.with_wayland();
        }
    }
    let mut event_loop = builder.build().map_err(WindowError::NoDisplay)?;
    #[cfg(all(unix, not(target_os = "macos")))]
    if std::env::var_os("ACCORD_GL_PRELOAD").is_none_or(|v| v != "0") {
        preload_gl(&event_loop);
    }
    let mut fresh = true;
    let needed = |s: &HubState| s.over() || s.needs_window();
    loop {
        let kind = {
            let mut g = loop {
                let g = hub.wait_until_for(DRAIN_EVERY, needed);
                if needed(&g) {
                    break g;
                }
                drop(g);
                if fresh {
                    drain(&mut event_loop, false);
                }
            };
            if g.over() {
                return Ok(());
            }
            match (g.showing().root, g.session.clone(), g.prompts.first()) {
                (Some(Root::Banner(_)), Some(info), _) => {
                    Kind::Banner(Box::new(SessionWindow::new(&info, cfg)))
                }
                (Some(Root::Prompt(_)), _, Some(p)) => {
                    Kind::Prompt(Box::new(Asked::new(p.req.clone(), cfg.strings.clone())))
                }
                _ => {
                    g.history_requested = false;
                    Kind::History
                }
            }
        };
        if std::mem::take(&mut fresh) {
            // Ends the drained loop, so that the window's run starts it
            // anew (its application is told `resumed` and opens windows).
            drain(&mut event_loop, true);
        }
        open(hub, cfg, kind, &mut event_loop)?;
    }
}

/// Loads the GL driver on the event loop's display connection, the way
/// eframe will (GLX first on X11, EGL on Wayland), and keeps it loaded for
/// the life of the process. Loading the driver is most of the time a first
/// window costs (~40 ms on a quiet machine, over 100 ms beside a build:
/// Mesa and LLVM mapped and relocated); a spare window process pays it
/// ahead of need, for ~12 MB of private memory (the driver's code pages are
/// the page cache's, shared). A display without GL is not an error here:
/// the window's own start says so, as before.
#[cfg(all(unix, not(target_os = "macos")))]
fn preload_gl(event_loop: &EventLoop<eframe::UserEvent>) {
    use glutin::config::ConfigTemplateBuilder;
    use glutin::display::{Display, DisplayApiPreference, GlDisplay as _};
    use winit::raw_window_handle::{HasDisplayHandle as _, RawDisplayHandle};
    let start = Instant::now();
    let raw = match event_loop.display_handle() {
        Ok(h) => h.as_raw(),
        Err(e) => {
            tracing::debug!("GL not loaded ahead: {e}");
            return;
        }
    };
    let preference = match raw {
        RawDisplayHandle::Xlib(_) => DisplayApiPreference::GlxThenEgl(Box::new(
            winit::platform::x11::register_xlib_error_hook,
        )),
        _ => DisplayApiPreference::Egl,
    };
    // SAFETY: `raw` is this event loop's own display connection, open until
    // the loop is dropped; the display made here is never used after that
    // (it is only kept, so that the driver stays loaded).
    let display = match unsafe { Display::new(raw, preference) } {
        Ok(d) => d,
        Err(e) => {
            tracing::debug!("GL not loaded ahead: {e}");
            return;
        }
    };
    // Listing the configurations is what makes GLX load the driver.
    // SAFETY: a default template asks nothing of the display.
    let configs = unsafe { display.find_configs(ConfigTemplateBuilder::new().build()) }
        .map(|c| c.count())
        .unwrap_or(0);
    tracing::debug!(
        "GL driver loaded ahead of the first window in {:.1} ms ({configs} configurations)",
        start.elapsed().as_secs_f64() * 1000.0
    );
    // Never dropped: dropping an EGL display may terminate the one eframe
    // shares with it.
    std::mem::forget(display);
}

/// How often an idle spare reads and drops the display's events.
const DRAIN_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// Reads the display's pending events and drops them; `last` ends the loop.
fn drain(event_loop: &mut EventLoop<eframe::UserEvent>, last: bool) {
    struct Discard {
        last: bool,
    }
    impl ApplicationHandler<eframe::UserEvent> for Discard {
        fn resumed(&mut self, _: &ActiveEventLoop) {}
        fn window_event(&mut self, _: &ActiveEventLoop, _: WindowId, _: WindowEvent) {}
        fn about_to_wait(&mut self, event_loop: &ActiveEventLoop) {
            if self.last {
                event_loop.exit();
            }
        }
    }
    let status = event_loop.pump_app_events(Some(std::time::Duration::ZERO), &mut Discard { last });
    if last && !matches!(status, PumpStatus::Exit(_)) {
        tracing::warn!("the idle event loop did not end");
    }
}

fn open(
    hub: &Arc<Hub>,
    cfg: &WindowsConfig,
    kind: Kind,
    event_loop: &mut EventLoop<eframe::UserEvent>,
) -> Result<(), WindowError> {
    let s = &cfg.strings;
    let (viewport, centered) = match &kind {
        Kind::Prompt(_) => {
            // Centred on the primary monitor (eframe would centre it on the
            // whole X screen, across two monitors).
            let primary = x11::monitors().ok().and_then(|m| m.first().copied());
            let monitor = primary.map(|m| {
                egui::Rect::from_min_size(
                    egui::pos2(m.x as f32, m.y as f32),
                    egui::vec2(m.width as f32, m.height as f32),
                )
            });
            (prompt_viewport(&s.prompt.title, monitor), monitor.is_none())
        }
        Kind::Banner(b) => {
            let home = b.each.first().map_or(
                Home {
                    monitor: egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(1024.0, 768.0)),
                },
                |(_, k)| k.home,
            );
            (banner_viewport(&s.banner.title, home), false)
        }
        Kind::History => (
            egui::ViewportBuilder::default()
                .with_title(s.history.title.as_str())
                .with_inner_size([640.0, 480.0])
                .with_app_id("accord"),
            true,
        ),
    };
    let options = eframe::NativeOptions {
        viewport,
        centered,
        run_and_return: true,
        persist_window: false,
        ..Default::default()
    };
    let app = Window {
        hub: hub.clone(),
        cfg: cfg.clone(),
        kind,
    };
    let title = match &app.kind {
        Kind::Prompt(_) => s.prompt.title.clone(),
        Kind::Banner(_) => s.banner.title.clone(),
        Kind::History => s.history.title.clone(),
    };
    let frames = FRAMES.load(Ordering::Relaxed);
    let result = {
        let mut winit_app = eframe::create_native(
            &title,
            options,
            Box::new(|cc| {
                cc.egui_ctx.set_theme(egui::Theme::Light);
                hub.lock().ctx = Some(cc.egui_ctx.clone());
                Ok(Box::new(app) as Box<dyn eframe::App>)
            }),
            event_loop,
        );
        event_loop
            .run_app_on_demand(&mut winit_app)
            .map_err(WindowError::EventLoop)
    };
    hub.lock().ctx = None;
    // eframe keeps its own errors (no GL, no window) to itself on this
    // path: a window that never painted one frame is the sign (fail closed).
    let result = result.and_then(|()| {
        if FRAMES.load(Ordering::Relaxed) == frames {
            Err(WindowError::NeverPainted)
        } else {
            Ok(())
        }
    });
    // The window's GL buffers were freed: give the memory back to the
    // system, an idle agent should stay small.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions.
    unsafe {
        libc::malloc_trim(0);
    }
    result
}

struct Window {
    hub: Arc<Hub>,
    cfg: WindowsConfig,
    kind: Kind,
}

impl Window {
    fn close(ui: &egui::Ui) {
        ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

impl eframe::App for Window {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        FRAMES.fetch_add(1, Ordering::Relaxed);
        let (quit, showing) = {
            let g = self.hub.lock();
            (g.over(), g.showing())
        };
        if quit {
            Self::close(ui);
            return;
        }
        let close_requested = ui.input(|i| i.viewport().close_requested());
        let events = self.cfg.events.as_deref();
        match &mut self.kind {
            Kind::Prompt(a) => {
                // A session started meanwhile: its banners are the root
                // now, and the prompt (if still asked) reopens over them.
                if showing.root != Some(Root::Prompt(a.st.req.id))
                    || a.frame(ui, &self.hub, events) == Shown::Close
                {
                    Self::close(ui);
                }
            }
            Kind::Banner(w) => {
                if w.ui(ui, &self.hub, &self.cfg) == Shown::Close {
                    Self::close(ui);
                }
            }
            Kind::History => {
                let wanted_again = std::mem::take(&mut self.hub.lock().history_requested);
                if wanted_again {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Focus);
                }
                let busy = {
                    let g = self.hub.lock();
                    !g.prompts.is_empty() || g.session.is_some()
                };
                // A prompt or a session always wins over the history.
                if busy
                    || close_requested
                    || crate::ui::history::history_ui(ui, &self.hub, &self.cfg.strings)
                {
                    if let Some(ev) = &self.cfg.events {
                        ev.history_closed();
                    }
                    Self::close(ui);
                }
            }
        }
    }
}

/// Whether a window stays after this frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shown {
    Keep,
    Close,
}

/// One frame of the prompt window: the prompt, plus what the window itself
/// means. A prompt the broker withdrew closes; closing the window refuses
/// (O6); an answer goes to the hub, which hands it to the broker.
pub fn prompt_window_ui(ui: &mut egui::Ui, hub: &Hub, st: &mut PromptState) -> Shown {
    let id = st.req.id;
    let still_pending = hub.lock().prompts.iter().any(|p| p.req.id == id);
    if !still_pending {
        // Withdrawn (deadline, shutdown, technician gone): the prompt must
        // not stay on screen offering an answer nobody waits for.
        return Shown::Close;
    }
    if ui.input(|i| i.viewport().close_requested()) {
        tracing::info!("prompt {id}: window closed, which refuses");
        hub.answer(id, Answer::Refused);
        return Shown::Close;
    }
    match prompt_ui(ui, st) {
        Some(a) => {
            tracing::info!("prompt {id}: clinician answered {a:?}");
            hub.answer(id, a);
            Shown::Close
        }
        None => Shown::Keep,
    }
}

/// Logs and returns how long after the request the prompt was painted, as
/// this process can tell: in a window process, from when it read the
/// request (its parent times the whole, cold start included).
fn log_latency(req: &crate::broker::PromptRequest) -> u64 {
    let Some(t) = req.deadline.checked_sub(req.timeout) else {
        return 0;
    };
    let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
    LAST_PROMPT_LATENCY_US.store(us, Ordering::Relaxed);
    tracing::debug!(
        "prompt {} painted {:.1} ms after this process read the request",
        req.id,
        us as f64 / 1000.0
    );
    us
}
