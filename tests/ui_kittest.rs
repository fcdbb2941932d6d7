//! The prompt and the banner, driven like a person would (egui_kittest: the
//! accessibility tree, clicks, time), without a GPU or a display.

use accord::broker::{Answer, PromptRequest, Prompter, SessionInfo};
use accord::protocol::Mode;
use accord::tls::Identity;
use accord::ui::windows::{Shown, prompt_window_ui};
use accord::ui::{
    BannerAction, BannerState, Hub, Lang, PromptState, SessionActions, Strings, UiPrompter,
    banner_ui, prompt_ui,
};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

fn identity() -> Identity {
    Identity {
        subject: "CN=Jeanne Martin,O=Helpdesk CHU".into(),
        fingerprint: format!("sha256:{}", "ab12cd34".repeat(8)),
        common_name: Some("Jeanne Martin".into()),
        organization: Some("Helpdesk CHU".into()),
    }
}

fn request(asked: Mode, control_offered: bool, timeout: Duration, arm: Duration) -> PromptRequest {
    PromptRequest {
        id: uuid::Uuid::new_v4(),
        technician: identity(),
        peer: "10.1.2.3:51234".parse().unwrap(),
        ticket: "INC-4711".into(),
        reason: "Imprimante".into(),
        asked,
        control_offered,
        deadline: Instant::now() + timeout,
        timeout,
        arm_delay: arm,
    }
}

fn strings(lang: Lang) -> Arc<Strings> {
    Arc::new(Strings::load(lang).unwrap())
}

type PromptHarness = Harness<'static, (PromptState, Vec<Answer>)>;

fn prompt_harness(req: PromptRequest, lang: Lang) -> PromptHarness {
    Harness::builder().with_size([560.0, 470.0]).build_ui_state(
        |ui, (st, answers): &mut (PromptState, Vec<Answer>)| {
            if let Some(a) = prompt_ui(ui, st) {
                answers.push(a);
            }
        },
        (PromptState::new(req, strings(lang)), Vec::new()),
    )
}

/// Steps egui time forward (each step is 0.25 s of input time).
fn advance(h: &mut PromptHarness, secs: f32) {
    h.run_steps((secs / 0.25).ceil() as usize);
}

#[test]
fn prompt_shows_who_asks_first_then_what_they_typed_and_the_mode() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let short = req.technician.short_fingerprint();
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(2);
    h.get_by_label_contains("identité vérifiée par certificat");
    h.get_by_label("Jeanne Martin");
    h.get_by_label("Helpdesk CHU");
    h.get_by_label(&short);
    h.get_by_label_contains("Saisi par le technicien");
    h.get_by_label("INC-4711");
    h.get_by_label("Imprimante");
    h.get_by_label_contains("prendre le contrôle");
    h.get_by_label_contains("refus automatique dans 5");
    for b in [
        "Autoriser le contrôle",
        "Autoriser l'affichage seul",
        "Refuser",
    ] {
        h.get_by_label(b);
    }
    // Who asks comes before what was typed, which comes before the buttons.
    let y = |l: &str| h.get_by_label(l).rect().top();
    assert!(y("Jeanne Martin") < y("INC-4711"));
    assert!(y("INC-4711") < y("Refuser"));
    // The buttons are in the fixed order of DESIGN.md.
    let x = |l: &str| h.get_by_label(l).rect().left();
    assert!(x("Autoriser le contrôle") < x("Autoriser l'affichage seul"));
    assert!(x("Autoriser l'affichage seul") < x("Refuser"));
}

#[test]
fn buttons_ignore_clicks_during_the_arm_delay_and_accept_after() {
    // Building the harness and each queued event step time by 0.25 s.
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(3),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    h.get_by_label_contains("les boutons s'activent");
    h.get_by_label("Autoriser le contrôle").click();
    h.run_steps(1);
    h.get_by_label("Refuser").click();
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    assert!(
        h.state().1.is_empty(),
        "no answer while disarmed: {:?}",
        h.state().1
    );
    h.get_by_label_contains("les boutons s'activent");
    advance(&mut h, 3.0);
    assert!(
        h.query_by_label_contains("les boutons s'activent")
            .is_none()
    );
    h.get_by_label("Autoriser le contrôle").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Control]);
}

#[test]
fn a_press_begun_before_arming_does_not_click_after() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    let pos = h.get_by_label("Autoriser le contrôle").rect().center();
    let button = |pressed| egui::Event::PointerButton {
        pos,
        button: egui::PointerButton::Primary,
        pressed,
        modifiers: egui::Modifiers::default(),
    };
    h.event(egui::Event::PointerMoved(pos));
    h.event(button(true));
    h.run_steps(1);
    advance(&mut h, 2.5);
    h.event(button(false));
    h.run_steps(2);
    assert!(h.state().1.is_empty(), "{:?}", h.state().1);
}

#[test]
fn refuse_gives_refused() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    advance(&mut h, 1.0);
    h.get_by_label("Refuser").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

#[test]
fn escape_refuses_even_before_the_buttons_arm() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(5),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    h.key_press(egui::Key::Escape);
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

#[test]
fn view_only_button_yields_view_only_and_control_is_absent_when_not_offered() {
    // The technician asked for control but the policy forbids it.
    let req = request(
        Mode::Control,
        false,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    advance(&mut h, 0.5);
    assert!(h.query_by_label("Autoriser le contrôle").is_none());
    h.get_by_label_contains("limite l'accès à l'affichage seul");
    h.get_by_label("Autoriser l'affichage seul").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::ViewOnly]);

    // The technician asked only to view.
    let req = request(
        Mode::View,
        false,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    advance(&mut h, 0.5);
    assert!(h.query_by_label("Autoriser le contrôle").is_none());
    h.get_by_label_contains("voir l'écran seulement");
}

#[test]
fn countdown_reaching_zero_gives_refused() {
    let req = request(
        Mode::View,
        false,
        Duration::from_secs(2),
        Duration::from_millis(250),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(2);
    assert!(h.state().1.is_empty());
    // Deadline plus the grace left to the broker to record a timeout.
    advance(&mut h, 3.5);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

#[test]
fn long_and_odd_text_never_pushes_the_buttons_off_screen() {
    let mut req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    req.ticket = "W".repeat(64);
    req.reason = format!(
        "{}\u{202e}{}",
        "Mot_sans_espace".repeat(12),
        "x ".repeat(40)
    );
    let mut h = prompt_harness(req, Lang::Fr);
    advance(&mut h, 0.5);
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, egui::vec2(560.0, 470.0));
    for b in [
        "Autoriser le contrôle",
        "Autoriser l'affichage seul",
        "Refuser",
    ] {
        let r = h.get_by_label(b).rect();
        assert!(
            window.contains_rect(r),
            "{b} at {r:?} is outside the window"
        );
    }
    h.get_by_label("Refuser").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

#[test]
fn english_prompt_renders() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req, Lang::En);
    h.run_steps(2);
    h.get_by_label_contains("identity verified by certificate");
    h.get_by_label_contains("Typed by the technician");
    h.get_by_label_contains("take control of the screen");
    for b in ["Allow control", "Allow view only", "Refuse"] {
        h.get_by_label(b);
    }
}

// ---- the prompt window with the real prompter behind it ----

struct WindowState {
    hub: Arc<Hub>,
    prompt: PromptState,
    shown: Vec<Shown>,
}

fn window_harness(hub: Arc<Hub>, req: PromptRequest) -> Harness<'static, WindowState> {
    let prompt = PromptState::new(req, strings(Lang::Fr));
    Harness::builder().with_size([560.0, 470.0]).build_ui_state(
        |ui, st: &mut WindowState| {
            let shown = prompt_window_ui(ui, &st.hub, &mut st.prompt);
            st.shown.push(shown);
        },
        WindowState {
            hub,
            prompt,
            shown: Vec::new(),
        },
    )
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

/// Posts `req` through the real prompter and waits until the hub has it.
fn ask(
    rt: &tokio::runtime::Runtime,
    hub: &Arc<Hub>,
    req: PromptRequest,
) -> tokio::task::JoinHandle<Result<Answer, accord::broker::PromptError>> {
    let prompter = UiPrompter::new(hub.clone());
    let task = rt.spawn(async move { prompter.ask(req).await });
    for _ in 0..200 {
        if !hub.lock().prompts.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    task
}

#[test]
fn closing_the_prompt_window_refuses() {
    let rt = runtime();
    let hub = Hub::new();
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let task = ask(&rt, &hub, req.clone());
    let mut h = window_harness(hub.clone(), req);
    h.run_steps(1);
    assert_eq!(h.state().shown.last(), Some(&Shown::Keep));
    // The window manager's close button, during the arm delay even.
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.run_steps(1);
    assert_eq!(h.state().shown.last(), Some(&Shown::Close));
    let answer = rt.block_on(task).unwrap().unwrap();
    assert_eq!(answer, Answer::Refused);
    assert!(hub.lock().prompts.is_empty());
}

#[test]
fn an_answer_reaches_the_broker_through_the_prompter() {
    let rt = runtime();
    let hub = Hub::new();
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    let task = ask(&rt, &hub, req.clone());
    let mut h = window_harness(hub.clone(), req);
    h.run_steps(3);
    h.get_by_label("Autoriser l'affichage seul").click();
    h.run_steps(1);
    assert_eq!(h.state().shown.last(), Some(&Shown::Close));
    assert_eq!(rt.block_on(task).unwrap().unwrap(), Answer::ViewOnly);
}

#[test]
fn a_prompt_the_broker_drops_disappears() {
    let rt = runtime();
    let hub = Hub::new();
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    let task = ask(&rt, &hub, req.clone());
    let mut h = window_harness(hub.clone(), req);
    h.run_steps(1);
    assert_eq!(h.state().shown.last(), Some(&Shown::Keep));
    // Deadline, shutdown or technician gone: the broker drops the future.
    task.abort();
    let _ = rt.block_on(task);
    assert!(hub.lock().prompts.is_empty());
    h.run_steps(1);
    assert_eq!(h.state().shown.last(), Some(&Shown::Close));
}

// ---- the banner ----

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<&'static str>>,
}

impl SessionActions for Recorder {
    fn end(&self) {
        self.calls.lock().unwrap().push("end");
    }
    fn set_view_only(&self) {
        self.calls.lock().unwrap().push("set_view_only");
    }
}

fn session(mode: Mode, elapsed: Duration) -> SessionInfo {
    SessionInfo {
        id: uuid::Uuid::new_v4(),
        technician: identity(),
        ticket: "INC-4711".into(),
        reason: "Imprimante".into(),
        mode,
        started: SystemTime::now() - elapsed,
        started_at: Instant::now() - elapsed,
    }
}

type BannerHarness = Harness<'static, (BannerState, Vec<BannerAction>)>;

fn banner_harness(info: SessionInfo, lang: Lang, rec: Arc<Recorder>) -> BannerHarness {
    let st = BannerState::new(info, strings(lang), rec, "Ctrl+Alt+Pause".into());
    Harness::builder().with_size([900.0, 44.0]).build_ui_state(
        |ui, (st, actions): &mut (BannerState, Vec<BannerAction>)| {
            if let Some(a) = banner_ui(ui, st) {
                actions.push(a);
            }
        },
        (st, Vec::new()),
    )
}

#[test]
fn banner_shows_who_mode_and_elapsed_time() {
    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(
        session(Mode::Control, Duration::from_secs(192)),
        Lang::Fr,
        rec,
    );
    h.run_steps(1);
    h.get_by_label(
        "Assistance à distance en cours — Jeanne Martin (Helpdesk CHU) — contrôle — 03:12",
    );
    h.get_by_label("Passer en affichage seul");
    h.get_by_label("Terminer");
    assert_eq!(h.state().0.fill(), accord::ui::banner::CONTROL_FILL);

    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(session(Mode::View, Duration::from_secs(5)), Lang::Fr, rec);
    h.run_steps(1);
    h.get_by_label_contains("affichage seul — 00:05");
    // No "switch to view only" in a view-only session.
    assert!(h.query_by_label("Passer en affichage seul").is_none());
    assert_eq!(h.state().0.fill(), accord::ui::banner::VIEW_FILL);
}

#[test]
fn terminer_calls_end_at_once() {
    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(
        session(Mode::Control, Duration::ZERO),
        Lang::Fr,
        rec.clone(),
    );
    h.run_steps(1);
    h.get_by_label("Terminer").click();
    h.run_steps(1);
    assert_eq!(*rec.calls.lock().unwrap(), vec!["end"]);
    assert_eq!(h.state().1, vec![BannerAction::End]);
}

#[test]
fn switch_to_view_only_calls_set_view_only_then_disappears() {
    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(
        session(Mode::Control, Duration::ZERO),
        Lang::Fr,
        rec.clone(),
    );
    h.run_steps(1);
    h.get_by_label("Passer en affichage seul").click();
    h.run_steps(2);
    assert_eq!(*rec.calls.lock().unwrap(), vec!["set_view_only"]);
    assert!(h.query_by_label("Passer en affichage seul").is_none());
    // The kill switch stays.
    h.get_by_label("Terminer");
}

#[test]
fn english_banner_renders() {
    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(
        session(Mode::Control, Duration::from_secs(61)),
        Lang::En,
        rec,
    );
    h.run_steps(1);
    h.get_by_label(
        "Remote assistance in progress — Jeanne Martin (Helpdesk CHU) — control — 01:01",
    );
    h.get_by_label("Switch to view only");
    h.get_by_label("End session");
}

// ---- tray, notifications, history ----

#[test]
fn tray_status_and_notifications_say_who_and_why() {
    use accord::broker::{Activity, AgentState, EndReason, Listening, Notice};
    use accord::ui::tray::{TrayLook, decode_png, status_line};
    let fr = strings(Lang::Fr);
    let mut st = AgentState {
        listening: Listening::On("127.0.0.1:5988".parse().unwrap()),
        ..AgentState::default()
    };
    assert_eq!(TrayLook::of(&st), TrayLook::Idle);
    assert_eq!(status_line(&st, &fr), "Accord — aucune session");
    let info = session(Mode::Control, Duration::ZERO);
    st.activity = Activity::InSession(Box::new(info.clone()));
    assert_eq!(TrayLook::of(&st), TrayLook::InSession);
    assert_eq!(
        status_line(&st, &fr),
        "Accord — session en cours avec Jeanne Martin (contrôle)"
    );
    st.blocked = Some("interface perdue".into());
    assert!(status_line(&st, &fr).contains("refusées"));
    for png in [
        &include_bytes!("../assets/icons/tray-idle.png")[..],
        include_bytes!("../assets/icons/tray-asking.png"),
        include_bytes!("../assets/icons/tray-session.png"),
    ] {
        let (rgba, w, h) = decode_png(png).unwrap();
        assert_eq!(rgba.len() as u32, w * h * 4);
    }
    let ended = Notice::SessionEnded {
        info,
        why: EndReason::Technician,
    };
    let (summary, body, line) = accord::ui::notify::texts(&ended, &fr, SystemTime::now());
    assert_eq!(summary, "Assistance à distance terminée");
    assert_eq!(
        body,
        "Session avec Jeanne Martin terminée : par le technicien."
    );
    assert!(line.contains("session avec Jeanne Martin terminée (par le technicien)"));
}

#[test]
fn history_lists_newest_first_and_closes() {
    let hub = Hub::new();
    hub.lock().history.push_back("10:00:00 — première".into());
    hub.lock().history.push_back("10:05:00 — seconde".into());
    let fr = strings(Lang::Fr);
    let mut h = Harness::builder().with_size([520.0, 380.0]).build_ui_state(
        move |ui, closed: &mut bool| {
            if accord::ui::history::history_ui(ui, &hub, &fr) {
                *closed = true;
            }
        },
        false,
    );
    h.run_steps(1);
    let y = |l: &str| h.get_by_label(l).rect().top();
    assert!(y("10:05:00 — seconde") < y("10:00:00 — première"));
    h.get_by_label("Fermer").click();
    h.run_steps(1);
    assert!(*h.state());
}

// ---- the keyboard: no answer by stray typing (docs/ui-keyboard.md) ----

/// What a window receives when `text` is typed into it: for each character
/// a key press, its text, then the key release, like winit delivers them.
/// Each event is one harness step (0.25 s), so the keys are 0.5 s apart:
/// continuous typing.
fn type_text(h: &mut PromptHarness, text: &str) {
    for c in text.chars() {
        let key = match c {
            '\t' => Some(egui::Key::Tab),
            '\n' => Some(egui::Key::Enter),
            ' ' => Some(egui::Key::Space),
            c => egui::Key::from_name(&c.to_ascii_uppercase().to_string()),
        };
        let ev = |pressed| egui::Event::Key {
            key: key.unwrap_or(egui::Key::A),
            physical_key: None,
            pressed,
            repeat: false,
            modifiers: egui::Modifiers::NONE,
        };
        h.event(ev(true));
        if c != '\t' && c != '\n' {
            h.event(egui::Event::Text(c.to_string()));
        }
        h.event(ev(false));
    }
    h.run_steps(1);
}

fn focused_button(h: &PromptHarness) -> Option<String> {
    [
        "Autoriser le contrôle",
        "Autoriser l'affichage seul",
        "Refuser",
    ]
    .into_iter()
    .find(|b| h.query_by_label(b).is_some_and(|n| n.is_focused()))
    .map(str::to_string)
}

fn no_answer(h: &PromptHarness) {
    assert!(h.state().1.is_empty(), "answered: {:?}", h.state().1);
}

#[test]
fn tab_then_space_or_enter_and_enter_alone_answer_nothing_before_arming() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(4),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    h.key_press(egui::Key::Tab);
    h.key_press(egui::Key::Space);
    h.run_steps(1);
    no_answer(&h);
    h.key_press(egui::Key::Tab);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    no_answer(&h);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    no_answer(&h);
    assert_eq!(focused_button(&h), None, "Tab moved the focus while unarmed");
    // Armed now, but those keys came less than a second before.
    advance(&mut h, 1.5);
    h.key_press(egui::Key::Tab);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    no_answer(&h);
    assert_eq!(focused_button(&h), None);
}

#[test]
fn a_typing_stream_across_arming_answers_nothing() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    // ~12 s of text with Tabs, spaces and Returns, starting as the prompt
    // appears and going on well past the arm delay.
    type_text(&mut h, "Patient\t12 \n\tok \t\n\n\t\t \tnote:\t \n");
    no_answer(&h);
    assert_eq!(focused_button(&h), None);
    // The same after a pause: a burst with letters is typing, not intent.
    advance(&mut h, 2.0);
    type_text(&mut h, "a\t\t\t\n \t\n");
    no_answer(&h);
    assert_eq!(focused_button(&h), None);
    // Only Tabs and Returns, but less than a second after the window got
    // the keyboard from somebody else: the keys before it went elsewhere.
    advance(&mut h, 2.0);
    h.event(egui::Event::WindowFocused(true));
    type_text(&mut h, "\t\t\t\n\t \n");
    no_answer(&h);
    assert!(h.query_by_label_contains("Refus").is_some());
}

#[test]
fn after_arming_and_a_pause_tab_to_refuser_then_enter_refuses() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    advance(&mut h, 2.5); // arm delay + 1.5 s of quiet
    for _ in 0..8 {
        if focused_button(&h).as_deref() == Some("Refuser") {
            break;
        }
        h.key_press(egui::Key::Tab);
        h.run_steps(1);
    }
    assert_eq!(focused_button(&h).as_deref(), Some("Refuser"));
    no_answer(&h);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

#[test]
fn after_a_pause_tab_then_space_allows_what_is_focused() {
    let req = request(
        Mode::View,
        false,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    advance(&mut h, 2.5);
    h.key_press(egui::Key::Tab);
    h.run_steps(1);
    assert_eq!(
        focused_button(&h).as_deref(),
        Some("Autoriser l'affichage seul")
    );
    h.key_press(egui::Key::Space);
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::ViewOnly]);
}

#[test]
fn escape_refuses_even_in_the_middle_of_typing() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(1);
    type_text(&mut h, "abc\t\t");
    no_answer(&h);
    h.key_press(egui::Key::Escape);
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}
