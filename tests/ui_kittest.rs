//! The prompt and the banner, driven like a person would (egui_kittest: the
//! accessibility tree, clicks, time), without a GPU or a display.

use accord::broker::{Answer, PromptRequest, Prompter, SessionInfo};
use accord::protocol::Mode;
use accord::tls::Identity;
use accord::ui::window::run::{PROMPT_SIZE, SessionWindow, Shown, WindowsConfig, prompt_window_ui};
use accord::ui::{
    BannerAction, BannerState, Hub, Lang, PromptState, SessionActions, Strings, UiPrompter,
    banner_ui, prompt_ui,
};
use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
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
        clipboard: accord::policy::Clipboard::ToWorkstation,
        raise: false,
        confirm: false,
        replaced: None,
    }
}

fn strings(lang: Lang) -> Arc<Strings> {
    Arc::new(Strings::load(lang).unwrap())
}

type PromptHarness = Harness<'static, (PromptState, Vec<Answer>)>;

fn prompt_harness(req: PromptRequest, lang: Lang) -> PromptHarness {
    Harness::builder().with_size(PROMPT_SIZE).build_ui_state(
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

const NB: char = '\u{a0}';

#[test]
fn prompt_says_who_why_what_and_what_will_happen_in_plain_french() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(2);
    let question = format!("Acceptez-vous l'assistance à distance{NB}?");
    h.get_by_role_and_label(Role::Heading, &question);
    h.get_by_label(&format!("Technicien{NB}: Jeanne Martin — Helpdesk CHU"));
    h.get_by_label("identité garantie par l'établissement");
    h.get_by_label(&format!(
        "Demande à{NB}: voir votre écran et utiliser votre clavier et votre souris"
    ));
    h.get_by_label(&format!("Motif{NB}: Imprimante"));
    h.get_by_label(&format!("Ticket{NB}: INC-4711"));
    h.get_by_label("motif et ticket saisis par le technicien");
    h.get_by_label(
        "Tout ce qui s'affiche, dossiers patients compris, sera visible. \
         Un bandeau restera affiché et vous pourrez arrêter à tout moment.",
    );
    // "Sans réponse, refus à 14 h 32 (dans 60 s)", with non-breaking spaces.
    let deadline = h.get_by_label_contains("Sans réponse, refus à ");
    let text = deadline.value().unwrap_or_default();
    assert!(text.contains(&format!("{NB}h{NB}")), "{text:?}");
    for word in ["certificat", "Empreinte", "session", "politique"] {
        assert!(h.query_by_label_contains(word).is_none(), "{word} shown");
    }
    // Who asks comes before what was typed, which comes before the buttons.
    let y = |l: &str| h.get_by_label_contains(l).rect().top();
    assert!(y("Technicien") < y("Motif"));
    assert!(y(&question) < y("Technicien"));
    assert!(y("Motif") < y("Refuser"));
    // The buttons are in the fixed order of DESIGN.md.
    let x = |l: &str| h.get_by_label(l).rect().left();
    assert!(x("Autoriser le contrôle") < x("Autoriser l'affichage seul"));
    assert!(x("Autoriser l'affichage seul") < x("Refuser"));
}

#[test]
fn a_replaced_helper_is_said_first_and_only_when_it_happened() {
    let mut req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let mut h = prompt_harness(req.clone(), Lang::Fr);
    h.run_steps(2);
    assert!(h.query_by_label_contains("a redémarré").is_none());
    req.replaced = Some(accord::broker::ReplacedHelper {
        pid: 4242,
        exe: "/home/clin/.local/bin/faux".into(),
    });
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(2);
    let warning =
        h.get_by_label_contains("a redémarré pendant ou après la dernière prise de contrôle");
    let text = warning.value().unwrap_or_default();
    assert!(
        text.contains("processus 4242, /home/clin/.local/bin/faux"),
        "{text:?}"
    );
    let top = warning.rect().top();
    let question = format!("Acceptez-vous l'assistance à distance{NB}?");
    assert!(top < h.get_by_label(&question).rect().top());
}

#[test]
fn the_verification_code_is_only_under_details() {
    let req = request(
        Mode::View,
        false,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    let short = req.technician.short_fingerprint();
    let mut h = prompt_harness(req, Lang::Fr);
    h.run_steps(2);
    assert!(h.query_by_label_contains(&short).is_none());
    assert!(h.query_by_label_contains("Code de vérification").is_none());
    h.get_by_label("Détails").click();
    h.run_steps(2);
    h.get_by_label(&format!("Code de vérification{NB}: {short}"));
    h.get_by_label(&format!("Demande à{NB}: voir votre écran"));
}

#[test]
fn the_prompt_is_named_for_a_screen_reader_and_refuser_stands_out() {
    let req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    let mut h = prompt_harness(req, Lang::Fr);
    advance(&mut h, 1.0);
    let question = format!("Acceptez-vous l'assistance à distance{NB}?");
    let q = h.get_by_role_and_label(Role::Heading, &question);
    // At least 18 pt: one line of it is at least that tall.
    assert!(q.rect().height() >= 18.0, "question {:?}", q.rect());
    h.get_by_role_and_label(
        Role::Label,
        &format!("Technicien{NB}: Jeanne Martin — Helpdesk CHU"),
    );
    h.get_by_role_and_label(Role::Label, "identité garantie par l'établissement");
    h.get_by_role_and_label(
        Role::ProgressIndicator,
        "Temps restant avant le refus automatique",
    );
    let deadline = h
        .get_all_by_role(Role::Label)
        .find(|n| format!("{n:?}").contains("Sans réponse, refus"));
    assert!(deadline.is_some(), "deadline is not a named label");
    for b in [
        "Autoriser le contrôle",
        "Autoriser l'affichage seul",
        "Refuser",
    ] {
        h.get_by_role_and_label(Role::Button, b);
    }
    // The safe answer is the biggest button; the one that gives the most is
    // not bigger than the view-only one.
    let area = |l: &str| {
        let r = h.get_by_label(l).rect();
        r.width() * r.height()
    };
    let refuse = h.get_by_label("Refuser").rect();
    let control = h.get_by_label("Autoriser le contrôle").rect();
    assert!(refuse.height() >= control.height());
    assert!(refuse.width() >= 140.0);
    assert!(area("Refuser") > area("Autoriser le contrôle") * 0.5);
    // A screen reader's "press" works once armed.
    h.get_by_label("Refuser").click_accesskit();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
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
    h.get_by_label_contains("n'autorise que l'affichage");
    // What is asked is what can be given: to see the screen.
    h.get_by_label(&format!("Demande à{NB}: voir votre écran"));
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
    h.get_by_label(&format!("Demande à{NB}: voir votre écran"));
}

/// The technician of a view-only session asks for control: the question
/// says so, and only "Autoriser le contrôle" and "Refuser" are offered.
#[test]
fn a_request_for_control_offers_only_control_or_refuse() {
    let mut req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(250),
    );
    req.raise = true;
    let mut h = prompt_harness(req.clone(), Lang::Fr);
    advance(&mut h, 0.5);
    h.get_by_role_and_label(
        Role::Heading,
        "Le technicien qui voit votre écran demande à prendre le contrôle",
    );
    assert!(h.query_by_label("Autoriser l'affichage seul").is_none());
    let x = |l: &str| h.get_by_label(l).rect().left();
    assert!(x("Autoriser le contrôle") < x("Refuser"));
    h.get_by_label("Autoriser le contrôle").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Control]);

    let mut h = prompt_harness(req, Lang::En);
    advance(&mut h, 0.5);
    h.get_by_role_and_label(
        Role::Heading,
        "The technician who sees your screen asks to take control",
    );
    assert!(h.query_by_label("Allow view only").is_none());
    h.get_by_label("Refuse").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
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
    let window = egui::Rect::from_min_size(egui::Pos2::ZERO, PROMPT_SIZE.into());
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
    h.get_by_role_and_label(Role::Heading, "Do you accept remote assistance?");
    h.get_by_label("Technician: Jeanne Martin — Helpdesk CHU");
    h.get_by_label("identity guaranteed by the hospital");
    h.get_by_label("Asks to: see your screen and use your keyboard and mouse");
    h.get_by_label("Reason: Imprimante");
    h.get_by_label("reason and ticket typed by the technician");
    h.get_by_label_contains("patient records included, will be visible");
    h.get_by_label_contains("No answer means refused at ");
    for b in ["Allow control", "Allow view only", "Refuse"] {
        h.get_by_role_and_label(Role::Button, b);
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
    Harness::builder().with_size(PROMPT_SIZE).build_ui_state(
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
    fn pause(&self, on: bool) {
        self.calls
            .lock()
            .unwrap()
            .push(if on { "pause(true)" } else { "pause(false)" });
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
        clipboard: accord::policy::Clipboard::ToWorkstation,
        paused: false,
    }
}

// ---- the session's window: a question asked during the session ----

struct SessionWindowState {
    hub: Arc<Hub>,
    cfg: WindowsConfig,
    win: SessionWindow,
    shown: Vec<Shown>,
}

const RAISE_QUESTION: &str = "Le technicien qui voit votre écran demande à prendre le contrôle";

fn session_window_harness(
    hub: Arc<Hub>,
    info: &SessionInfo,
) -> Harness<'static, SessionWindowState> {
    let cfg = WindowsConfig {
        strings: strings(Lang::Fr),
        actions: Arc::new(Recorder::default()),
        shortcut: "Ctrl+Alt+Pause".into(),
        events: None,
    };
    let win = SessionWindow::new(info, &cfg);
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(
            |ui, st: &mut SessionWindowState| {
                let shown = st.win.ui(ui, &st.hub, &st.cfg);
                st.shown.push(shown);
            },
            SessionWindowState {
                hub,
                cfg,
                win,
                shown: Vec::new(),
            },
        )
}

/// Issue 27: the banner's window lasts as long as the session, and a
/// request for control asked meanwhile was never drawn (the window only
/// looked at the session). It is shown over the banner, with the arm
/// delay, answered by a click; the banner stays.
#[test]
fn a_request_for_control_during_a_session_shows_over_the_banner() {
    let rt = runtime();
    let hub = Hub::new();
    let info = session(Mode::View, Duration::from_secs(30));
    hub.set_session(Some(info.clone()));
    let mut h = session_window_harness(hub.clone(), &info);
    h.run_steps(2);
    assert_eq!(h.state().win.question(), None);
    assert!(h.query_by_label(RAISE_QUESTION).is_none());

    let mut req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_secs(1),
    );
    req.raise = true;
    let task = ask(&rt, &hub, req.clone());
    h.run_steps(1);
    assert_eq!(h.state().win.question(), Some(req.id), "shown at once");
    // Here an embedded window, which egui sizes on its first frame.
    h.run_steps(1);
    h.get_by_role_and_label(Role::Heading, RAISE_QUESTION);
    h.get_by_role_and_label(Role::Button, "Terminer");
    // The arm delay holds as for the first prompt: a click now does nothing.
    h.get_by_label("Autoriser le contrôle").click();
    h.run_steps(1);
    assert!(!task.is_finished());
    assert_eq!(h.state().win.question(), Some(req.id));
    h.run_steps(4);
    h.get_by_label("Autoriser le contrôle").click();
    h.run_steps(2);
    assert_eq!(rt.block_on(task).unwrap().unwrap(), Answer::Control);
    assert_eq!(h.state().win.question(), None);
    assert!(h.query_by_label(RAISE_QUESTION).is_none());
    // The banner stays.
    assert_eq!(h.state().shown.last(), Some(&Shown::Keep));
    h.get_by_role_and_label(Role::Button, "Terminer");

    // A second request, refused; then the session ends: the window closes.
    let again = PromptRequest {
        id: uuid::Uuid::new_v4(),
        ..req
    };
    let task = ask(&rt, &hub, again);
    h.run_steps(6);
    h.get_by_label("Refuser").click();
    h.run_steps(2);
    assert_eq!(rt.block_on(task).unwrap().unwrap(), Answer::Refused);
    assert_eq!(h.state().shown.last(), Some(&Shown::Keep));
    hub.set_session(None);
    h.run_steps(1);
    assert_eq!(h.state().shown.last(), Some(&Shown::Close));
}

type BannerHarness = Harness<'static, (BannerState, Vec<BannerAction>)>;

fn banner_harness(info: SessionInfo, lang: Lang, rec: Arc<Recorder>) -> BannerHarness {
    banner_harness_with(info, lang, rec, "Ctrl+Alt+Pause")
}

fn banner_harness_with(
    info: SessionInfo,
    lang: Lang,
    rec: Arc<Recorder>,
    shortcut: &str,
) -> BannerHarness {
    let st = BannerState::new(info, strings(lang), rec, shortcut.into());
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
    let fr = strings(Lang::Fr);
    let since = fr.hm(h.state().0.info.started).unwrap();
    assert!(since.contains(&format!("{NB}h{NB}")), "{since}");
    h.get_by_label(&format!(
        "Prise en main à distance — Jeanne Martin (Helpdesk CHU) — depuis {since}"
    ));
    h.get_by_role_and_label(Role::Button, "Passer en affichage seul");
    h.get_by_role_and_label(Role::Button, "Terminer");
    h.get_by_label(&format!("Raccourci{NB}: Ctrl+Alt+Pause"));
    assert_eq!(h.state().0.fill(), accord::ui::banner::CONTROL_FILL);
    // "Terminer" is the biggest button on the bar.
    let end = h.get_by_label("Terminer").rect();
    let view = h.get_by_label("Passer en affichage seul").rect();
    assert!(end.height() > view.height(), "{end:?} vs {view:?}");
    assert!(end.height() >= 40.0);

    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(session(Mode::View, Duration::from_secs(5)), Lang::Fr, rec);
    h.run_steps(1);
    h.get_by_label_contains("Écran visible à distance — Jeanne Martin (Helpdesk CHU) — depuis ");
    // No "switch to view only" in a view-only session.
    assert!(h.query_by_label("Passer en affichage seul").is_none());
    assert_eq!(h.state().0.fill(), accord::ui::banner::VIEW_FILL);
}

/// On Wayland alone no global shortcut can be registered: the banner then
/// names none rather than one that does nothing.
#[test]
fn a_banner_without_a_working_shortcut_names_none() {
    let rec = Arc::new(Recorder::default());
    let info = session(Mode::Control, Duration::from_secs(5));
    let mut h = banner_harness_with(info, Lang::Fr, rec, "");
    h.run_steps(1);
    assert!(h.query_by_label_contains("Raccourci").is_none());
    h.get_by_role_and_label(Role::Button, "Terminer");
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
fn a_narrow_banner_cuts_the_name_never_the_mode() {
    let rec = Arc::new(Recorder::default());
    let mut info = session(Mode::Control, Duration::ZERO);
    info.technician.common_name = Some("Jean-Baptiste de La Fontaine-Montmorency".into());
    info.technician.organization = Some("Centre de support informatique régional".into());
    let st = BannerState::new(info, strings(Lang::Fr), rec, "Ctrl+Alt+Pause".into());
    let mut h = Harness::builder().with_size([620.0, 60.0]).build_ui_state(
        |ui, st: &mut BannerState| {
            banner_ui(ui, st);
        },
        st,
    );
    h.run_steps(1);
    // The kill switch keeps its room inside the bar.
    let end = h.get_by_label("Terminer").rect();
    assert!(end.right() <= 620.0 && end.left() >= 0.0, "{end:?}");
    // The text starts with the mode, whatever is cut at its end.
    let label = h.get_by_label_contains("Prise en main à distance");
    assert!(label.rect().left() < 40.0, "{:?}", label.rect());
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
    h.get_by_label_contains("Remote control — Jeanne Martin (Helpdesk CHU) — since ");
    h.get_by_label("Switch to view only");
    h.get_by_label("Hide my screen");
    h.get_by_label("End session");
    h.state_mut().0.info.paused = true;
    h.run_steps(1);
    h.get_by_label("Screen hidden — Jeanne Martin no longer sees your screen");
    h.get_by_role_and_label(Role::Button, "Resume");
    h.get_by_label("End session");
}

// ---- hiding her screen: "Masquer mon écran", "Reprendre" ----

const HIDDEN_FR: &str = "Écran masqué — Jeanne Martin ne voit plus votre écran";

/// The button calls `pause(true)`; the banner says hidden only once the
/// core says so, then offers "Reprendre", which calls `pause(false)`; a
/// double click never undoes what its first click did; "Terminer" stays
/// the rightmost, biggest button throughout.
#[test]
fn the_banner_hides_her_screen_and_shows_it_again() {
    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(
        session(Mode::Control, Duration::from_secs(30)),
        Lang::Fr,
        rec.clone(),
    );
    h.run_steps(1);
    let pause = h.get_by_role_and_label(Role::Button, "Masquer mon écran");
    let end = h.get_by_role_and_label(Role::Button, "Terminer");
    assert!(
        end.rect().left() > pause.rect().right(),
        "Terminer comes last"
    );
    assert!(end.rect().height() > pause.rect().height());
    assert!(h.query_by_label("Reprendre").is_none());
    h.get_by_label("Masquer mon écran").click();
    h.run_steps(1);
    assert_eq!(*rec.calls.lock().unwrap(), vec!["pause(true)"]);
    assert_eq!(h.state().1, vec![BannerAction::Pause(true)]);
    // Not said hidden before the core says it is.
    assert!(h.query_by_label(HIDDEN_FR).is_none());
    h.get_by_label_contains("Prise en main à distance — Jeanne Martin");

    // The core hid it (at once, as it does).
    h.state_mut().0.info.paused = true;
    h.run_steps(1);
    h.get_by_label(HIDDEN_FR);
    // The second click of a double click lands on "Reprendre": nothing.
    let t = h.ctx.input(|i| i.time);
    h.get_by_label("Reprendre").click();
    h.run_steps(1);
    assert!(h.ctx.input(|i| i.time) - t < 1.0, "test ran too long");
    assert_eq!(*rec.calls.lock().unwrap(), vec!["pause(true)"]);
    assert!(h.query_by_label_contains("Prise en main").is_none());
    assert_eq!(h.state().0.fill(), accord::ui::banner::PAUSED_FILL);
    assert!(h.query_by_label("Masquer mon écran").is_none());
    let resume = h.get_by_role_and_label(Role::Button, "Reprendre");
    let end = h.get_by_role_and_label(Role::Button, "Terminer");
    assert!(end.rect().left() > resume.rect().right());
    assert!(end.rect().height() > resume.rect().height());
    // Control can still be given up while hidden.
    h.get_by_role_and_label(Role::Button, "Passer en affichage seul");
    h.run_steps(4);
    h.get_by_label("Reprendre").click();
    h.run_steps(1);
    assert_eq!(
        *rec.calls.lock().unwrap(),
        vec!["pause(true)", "pause(false)"]
    );
    assert_eq!(
        h.state().1,
        vec![BannerAction::Pause(true), BannerAction::Pause(false)]
    );
    // The core showed it again: the mode is back, and the button.
    h.state_mut().0.info.paused = false;
    h.run_steps(5);
    h.get_by_label_contains("Prise en main à distance — Jeanne Martin");
    assert_eq!(h.state().0.fill(), accord::ui::banner::CONTROL_FILL);
    h.get_by_label("Masquer mon écran").click();
    h.run_steps(1);
    assert_eq!(
        *rec.calls.lock().unwrap(),
        vec!["pause(true)", "pause(false)", "pause(true)"]
    );
    // And "Terminer" ends, hidden or not.
    h.get_by_label("Terminer").click();
    h.run_steps(1);
    assert_eq!(rec.calls.lock().unwrap().last(), Some(&"end"));
}

/// A core that does not follow (no session any more, a refusal) does not
/// leave the button dead: it can be pressed again after a few seconds.
#[test]
fn a_pause_the_core_did_not_follow_can_be_asked_again() {
    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(session(Mode::View, Duration::ZERO), Lang::Fr, rec.clone());
    h.run_steps(1);
    h.get_by_label("Masquer mon écran").click();
    h.run_steps(4);
    h.get_by_label("Masquer mon écran").click();
    h.run_steps(1);
    assert_eq!(*rec.calls.lock().unwrap(), vec!["pause(true)"]);
    h.run_steps(12);
    h.get_by_label("Masquer mon écran").click();
    h.run_steps(1);
    assert_eq!(
        *rec.calls.lock().unwrap(),
        vec!["pause(true)", "pause(true)"]
    );
}

/// The tray's item says what the banner's button says and does the same,
/// only while a session runs; the tooltip says hidden.
#[test]
fn the_tray_hides_and_shows_her_screen_only_in_a_session() {
    use accord::broker::{Activity, AgentState, Listening};
    use accord::ui::tray::{pause_item, status_line};
    let fr = strings(Lang::Fr);
    let mut st = AgentState {
        listening: Listening::On("127.0.0.1:5988".parse().unwrap()),
        ..AgentState::default()
    };
    assert_eq!(pause_item(&st), None);
    let mut info = session(Mode::View, Duration::ZERO);
    st.activity = Activity::InSession(Box::new(info.clone()));
    assert_eq!(pause_item(&st), Some(true));
    info.paused = true;
    st.activity = Activity::InSession(Box::new(info));
    assert_eq!(pause_item(&st), Some(false));
    assert_eq!(
        status_line(&st, &fr),
        "Accord — assistance à distance en cours avec Jeanne Martin (écran masqué)"
    );
    assert_eq!(fr.banner.pause, "Masquer mon écran");
    assert_eq!(fr.banner.resume, "Reprendre");
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
    assert_eq!(
        status_line(&st, &fr),
        "Accord — pas d'assistance à distance en cours"
    );
    let info = session(Mode::Control, Duration::ZERO);
    st.activity = Activity::InSession(Box::new(info.clone()));
    assert_eq!(TrayLook::of(&st), TrayLook::InSession);
    assert_eq!(
        status_line(&st, &fr),
        "Accord — assistance à distance en cours avec Jeanne Martin (prise en main à distance)"
    );
    st.blocked = Some("interface perdue".into());
    assert!(status_line(&st, &fr).contains("indisponible"));
    assert!(!status_line(&st, &fr).contains("interface"));
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
    let (summary, body) = accord::ui::notify::texts(&ended, &fr);
    assert_eq!(summary, "Assistance à distance terminée");
    assert_eq!(body, "Le technicien a terminé l'assistance à distance.");
}

#[test]
fn history_lists_her_decisions_newest_first_and_closes() {
    use accord::audit::history::{Entry, Outcome};
    let fr = strings(Lang::Fr);
    let now = SystemTime::now();
    let rfc = |t: SystemTime| {
        let secs = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        time::OffsetDateTime::from_unix_timestamp(secs)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let entry = |t: SystemTime, outcome| Entry {
        at: rfc(t),
        session: uuid::Uuid::new_v4(),
        technician: "Jeanne Martin".into(),
        organization: Some("DSI".into()),
        ticket: None,
        reason: None,
        raise: false,
        outcome,
    };
    let earlier = now - Duration::from_secs(600);
    // Most recent first, as the log reader returns them.
    let entries = [
        entry(now, Outcome::TimedOut),
        entry(
            earlier,
            Outcome::Failed {
                mode: Mode::Control,
                why: "upstream".into(),
            },
        ),
    ];
    let lines = accord::ui::history::lines(&entries, &fr, now);
    let (newest, oldest) = (lines[0].clone(), lines[1].clone());
    assert!(newest.ends_with(&format!("Jeanne Martin (DSI){NB}: sans réponse, refusée")));
    assert!(oldest.ends_with("prise en main acceptée, mais l'assistance n'a pas pu commencer."));
    let hub = Hub::new();
    hub.show_history(lines);
    assert!(hub.lock().history_requested);
    let mut h = Harness::builder().with_size([520.0, 380.0]).build_ui_state(
        move |ui, closed: &mut bool| {
            if accord::ui::history::history_ui(ui, &hub, &fr) {
                *closed = true;
            }
        },
        false,
    );
    h.run_steps(1);
    h.get_by_label("Vos décisions récentes");
    let y = |l: &str| h.get_by_label(l).rect().top();
    assert!(y(&newest) < y(&oldest));
    h.get_by_label("Fermer").click();
    h.run_steps(1);
    assert!(*h.state());
}

#[test]
fn an_empty_history_says_so() {
    let fr = strings(Lang::Fr);
    let hub = Hub::new();
    hub.show_history(accord::ui::history::lines(&[], &fr, SystemTime::now()));
    let mut h = Harness::builder()
        .with_size([520.0, 380.0])
        .build_ui(move |ui| {
            accord::ui::history::history_ui(ui, &hub, &fr);
        });
    h.run_steps(1);
    h.get_by_label("Aucune demande d'assistance à distance n'est enregistrée pour vous.");
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
    assert_eq!(
        focused_button(&h),
        None,
        "Tab moved the focus while unarmed"
    );
    // Tab, Enter, Tab, Enter… without a pause, across the moment the
    // buttons arm (4 s): each key comes less than a second after another.
    for _ in 0..5 {
        h.key_press(egui::Key::Tab);
        h.key_press(egui::Key::Enter);
    }
    h.run_steps(1);
    assert!(
        h.state().0.armed(h.ctx.input(|i| i.time)),
        "test ran too short"
    );
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
    // The prompt says why the keyboard does nothing, and what works.
    h.get_by_label_contains("Clavier ignoré pendant la frappe");
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

/// The clinician knows, before deciding and during the session, whether the
/// clipboard (patient data) is shared: with the default `to_workstation` the
/// technician may paste in, nothing she copies leaves; in view only nothing.
#[test]
fn prompt_and_banner_say_whether_the_clipboard_is_shared() {
    let mut req = request(
        Mode::Control,
        true,
        Duration::from_secs(60),
        Duration::from_millis(300),
    );
    let h = prompt_harness(req.clone(), Lang::Fr);
    h.get_by_label_contains("rien de ce que vous copiez ne lui parviendra");
    req.clipboard = accord::policy::Clipboard::Both;
    let h = prompt_harness(req.clone(), Lang::En);
    h.get_by_label_contains("shared both ways in control");
    // View only asked: never shared, whatever the policy.
    let view = request(
        Mode::View,
        false,
        Duration::from_secs(60),
        Duration::from_millis(300),
    );
    let h = prompt_harness(view, Lang::Fr);
    h.get_by_label(&format!("Presse-papiers{NB}: non partagé."));

    let rec = Arc::new(Recorder::default());
    let mut h = banner_harness(
        session(Mode::Control, Duration::from_secs(5)),
        Lang::Fr,
        rec.clone(),
    );
    h.run_steps(1);
    h.get_by_label(&format!("presse-papiers{NB}: vers votre poste seulement"));
    let mut h = banner_harness(session(Mode::View, Duration::from_secs(5)), Lang::En, rec);
    h.run_steps(1);
    h.get_by_label("clipboard not shared");
}

// ---- the consent period's question: "… continue ?" ----

/// The question as the broker asks it: about a control session
/// (`asked` is the session's mode), offering no control.
fn confirm_request(timeout: Duration, arm: Duration) -> PromptRequest {
    confirm_request_in(Mode::Control, timeout, arm)
}

fn confirm_request_in(mode: Mode, timeout: Duration, arm: Duration) -> PromptRequest {
    PromptRequest {
        confirm: true,
        peer: "0.0.0.0:0".parse().unwrap(),
        ..request(mode, false, timeout, arm)
    }
}

const CONFIRM_FR: &str = "L'assistance à distance avec Jeanne Martin continue\u{a0}?";
const CONFIRM_BUTTONS: [&str; 2] = ["Continuer", "Terminer"];

fn focused_of(h: &PromptHarness, labels: &[&str]) -> Option<String> {
    labels
        .iter()
        .find(|b| h.query_by_label(b).is_some_and(|n| n.is_focused()))
        .map(|b| b.to_string())
}

/// The question, who, what goes on, what no answer does, and exactly two
/// answers: "Continuer", then "Terminer" styled as the safe one.
#[test]
fn the_question_of_the_consent_period_offers_only_continuer_or_terminer() {
    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_millis(250)),
        Lang::Fr,
    );
    advance(&mut h, 0.5);
    h.get_by_role_and_label(Role::Heading, CONFIRM_FR);
    h.get_by_label(&format!("Technicien{NB}: Jeanne Martin — Helpdesk CHU"));
    h.get_by_label(&format!(
        "Le technicien peut{NB}: voir votre écran et utiliser votre clavier et votre souris"
    ));
    // What goes on is the session's mode and its clipboard, not "nothing
    // offered": in control the clipboard is as the policy says.
    h.get_by_label_contains("le technicien pourra coller du texte sur votre poste");
    h.get_by_label("Sans réponse, l'assistance à distance s'arrêtera à la fin du décompte.");
    h.get_by_label_contains("Sans réponse, fin à ");
    h.get_by_role_and_label(
        Role::ProgressIndicator,
        "Temps restant avant la fin automatique",
    );
    // Nothing of a request: no "accept?", no refusal, nothing to grant.
    for gone in [
        "Acceptez-vous",
        "Autoriser",
        "Refuser",
        "refus",
        "Demande à",
        "sera visible",
    ] {
        assert!(h.query_by_label_contains(gone).is_none(), "{gone} shown");
    }
    let answers: Vec<String> = h
        .get_all_by_role(Role::Button)
        .filter_map(|n| n.accesskit_node().label())
        .filter(|l| l != "Détails")
        .collect();
    assert_eq!(answers, CONFIRM_BUTTONS);
    let go_on = h.get_by_label("Continuer").rect();
    let end = h.get_by_label("Terminer").rect();
    assert!(go_on.left() < end.left());
    // "Terminer" looks like "Refuser" does on a request.
    assert!(end.width() >= 140.0 && end.height() >= go_on.height());

    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_millis(250)),
        Lang::En,
    );
    advance(&mut h, 0.5);
    h.get_by_role_and_label(
        Role::Heading,
        "Continue the remote assistance with Jeanne Martin?",
    );
    h.get_by_label("With no answer, the remote assistance stops when the countdown ends.");
    h.get_by_role_and_label(Role::Button, "Continue");
    h.get_by_role_and_label(Role::Button, "End");
    assert!(h.query_by_label("Refuse").is_none());
}

/// About a view-only session: what the technician can do is see.
#[test]
fn the_question_about_a_view_only_session_says_so() {
    let mut h = prompt_harness(
        confirm_request_in(
            Mode::View,
            Duration::from_secs(60),
            Duration::from_millis(250),
        ),
        Lang::Fr,
    );
    advance(&mut h, 0.5);
    h.get_by_role_and_label(Role::Heading, CONFIRM_FR);
    h.get_by_label(&format!("Le technicien peut{NB}: voir votre écran"));
    h.get_by_label(&format!("Presse-papiers{NB}: non partagé."));
    assert!(h.query_by_label_contains("clavier").is_none());
    h.get_by_label("Continuer").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Continue]);
}

#[test]
fn continuer_answers_continue_only_once_armed() {
    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_secs(2)),
        Lang::Fr,
    );
    h.run_steps(1);
    h.get_by_label_contains("les boutons s'activent");
    h.get_by_label("Continuer").click();
    h.run_steps(1);
    h.get_by_label("Terminer").click();
    h.run_steps(1);
    no_answer(&h);
    advance(&mut h, 2.0);
    h.get_by_label("Continuer").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Continue]);
}

#[test]
fn escape_ends_at_once_and_terminer_ends() {
    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_secs(5)),
        Lang::Fr,
    );
    h.run_steps(1);
    h.key_press(egui::Key::Escape);
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);

    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_millis(250)),
        Lang::Fr,
    );
    advance(&mut h, 0.5);
    h.get_by_label("Terminer").click();
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

/// Tab, space and Return answer nothing before arming, nor after it while
/// they are typing (a stream, or right after the window gets the focus):
/// stray keys can no more keep a session going than start one.
#[test]
fn stray_tab_space_and_return_never_answer_the_question() {
    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_secs(4)),
        Lang::Fr,
    );
    h.run_steps(1);
    for key in [egui::Key::Tab, egui::Key::Space, egui::Key::Enter] {
        h.key_press(key);
        h.run_steps(1);
    }
    h.key_press(egui::Key::Tab);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    no_answer(&h);
    assert_eq!(focused_of(&h, &CONFIRM_BUTTONS), None);
    // Across the moment the buttons arm, without a pause.
    for _ in 0..5 {
        h.key_press(egui::Key::Tab);
        h.key_press(egui::Key::Space);
        h.key_press(egui::Key::Enter);
    }
    h.run_steps(1);
    assert!(
        h.state().0.armed(h.ctx.input(|i| i.time)),
        "test ran too short"
    );
    no_answer(&h);
    assert_eq!(focused_of(&h, &CONFIRM_BUTTONS), None);
    // Armed, a stream of text with Tabs, spaces and Returns.
    type_text(&mut h, "suite\t \n\t\n ok\t\t\n \n");
    no_answer(&h);
    assert_eq!(focused_of(&h, &CONFIRM_BUTTONS), None);
    // The hint says what Escape does here.
    h.get_by_label_contains("Échap termine l'assistance");
    // Armed, quiet, then the window gets the focus and keys arrive at once.
    advance(&mut h, 2.0);
    h.event(egui::Event::WindowFocused(true));
    type_text(&mut h, "\t\n\t \n");
    no_answer(&h);
    assert_eq!(focused_of(&h, &CONFIRM_BUTTONS), None);
}

/// The keyboard way of docs/ui-keyboard.md holds unchanged: after a
/// quiet second, Tab to "Terminer" then Enter ends.
#[test]
fn after_a_pause_tab_to_terminer_then_enter_ends() {
    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(60), Duration::from_secs(1)),
        Lang::Fr,
    );
    h.run_steps(1);
    advance(&mut h, 2.5);
    for _ in 0..6 {
        if focused_of(&h, &CONFIRM_BUTTONS).as_deref() == Some("Terminer") {
            break;
        }
        h.key_press(egui::Key::Tab);
        h.run_steps(1);
    }
    assert_eq!(
        focused_of(&h, &CONFIRM_BUTTONS).as_deref(),
        Some("Terminer")
    );
    no_answer(&h);
    h.key_press(egui::Key::Enter);
    h.run_steps(1);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

#[test]
fn an_unanswered_question_ends_the_session_at_the_countdown() {
    let mut h = prompt_harness(
        confirm_request(Duration::from_secs(2), Duration::from_millis(250)),
        Lang::Fr,
    );
    h.run_steps(2);
    no_answer(&h);
    advance(&mut h, 3.5);
    assert_eq!(h.state().1, vec![Answer::Refused]);
}

/// Asked during the session, the question opens over the banner, with the
/// arm delay; "Continuer" reaches the broker as `Continue` and the banner
/// stays.
#[test]
fn the_question_during_a_session_shows_over_the_banner_and_continue_reaches_the_broker() {
    let rt = runtime();
    let hub = Hub::new();
    let info = session(Mode::Control, Duration::from_secs(600));
    hub.set_session(Some(info.clone()));
    let mut h = session_window_harness(hub.clone(), &info);
    h.run_steps(2);
    let req = confirm_request(Duration::from_secs(60), Duration::from_secs(1));
    let task = ask(&rt, &hub, req.clone());
    h.run_steps(2);
    assert_eq!(h.state().win.question(), Some(req.id));
    h.get_by_role_and_label(Role::Heading, CONFIRM_FR);
    // Two "Terminer": the banner's kill switch and the question's answer.
    assert_eq!(h.get_all_by_label("Terminer").count(), 2);
    h.get_by_label("Continuer").click();
    h.run_steps(1);
    assert!(!task.is_finished());
    h.run_steps(4);
    h.get_by_label("Continuer").click();
    h.run_steps(2);
    assert_eq!(rt.block_on(task).unwrap().unwrap(), Answer::Continue);
    assert_eq!(h.state().win.question(), None);
    assert_eq!(h.state().shown.last(), Some(&Shown::Keep));
    assert_eq!(h.get_all_by_label("Terminer").count(), 1);
}
