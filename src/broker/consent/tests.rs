//! The consent rules without I/O: every test drives the core with inputs
//! and a clock of its own, and reads the effects in order.

use super::*;
use crate::broker::Outcome;
use crate::broker::watcher::WatchOutcome;
use proptest::prelude::*;

const S: Duration = Duration::from_secs(1);

fn rules() -> Rules {
    Rules {
        allow_control: true,
        max_prompts_per_hour: 6,
        prompt_timeout: 60 * S,
        arm_delay: S,
        clipboard: Clipboard::ToWorkstation,
        launch: Launch::Auto,
        idle_timeout: 900 * S,
        max_duration: 7200 * S,
        confirm_every: Some(1800 * S),
        confirm_grace: 300 * S,
        upstream_grace: UPSTREAM_GRACE,
    }
}

fn tech(n: u8) -> Identity {
    Identity {
        subject: format!("CN=Tech {n},O=Helpdesk"),
        fingerprint: format!("sha256:{}", format!("{n:02x}").repeat(32)),
        common_name: Some(format!("Tech {n}")),
        organization: Some("Helpdesk".into()),
    }
}

fn peer() -> SocketAddr {
    "10.0.0.7:40000".parse().unwrap()
}

fn request(mode: Mode) -> Request {
    Request {
        ticket: "INC-1".into(),
        reason: "Imprimante".into(),
        mode,
        session: None,
    }
}

fn alice() -> LocalUser {
    LocalUser {
        name: "alice".into(),
        uid: 1000,
        session: Some("3".into()),
    }
}

/// A core, its clock, and the effects seen so far.
struct Bench {
    core: Consent,
    now: Instant,
    seen: Vec<Effect>,
}

impl Bench {
    fn new(rules: Rules) -> Bench {
        Bench {
            core: Consent::new(rules),
            now: Instant::now(),
            seen: Vec::new(),
        }
    }

    /// Every effect queued by the last step; records succeed.
    fn drain(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some(e) = self.core.poll() {
            out.push(e);
        }
        self.seen.extend(out.iter().cloned());
        out
    }

    fn input(&mut self, i: Input) -> Vec<Effect> {
        self.core.handle(self.now, i);
        self.drain()
    }

    fn advance(&mut self, d: Duration) -> Vec<Effect> {
        self.now += d;
        self.core.handle_timeout(self.now, |_| Some(alice()));
        self.drain()
    }

    fn ask(&mut self, conn: ConnId, who: u8, mode: Mode) -> Vec<Effect> {
        self.input(Input::Request {
            conn,
            technician: tech(who),
            peer: peer(),
            request: request(mode),
            log: Ok(()),
        })
    }

    fn answer(&mut self, prompt: Uuid, answer: Result<Answer, RefusalCode>) -> Vec<Effect> {
        self.input(Input::Answered {
            prompt,
            answer,
            local: Some(alice()),
            wall: SystemTime::now(),
        })
    }

    /// A request for control of running `session` from tech `who`.
    fn raise(&mut self, conn: ConnId, who: u8, session: Uuid) -> Vec<Effect> {
        self.input(Input::Request {
            conn,
            technician: tech(who),
            peer: peer(),
            request: Request {
                session: Some(session),
                ..request(Mode::Control)
            },
            log: Ok(()),
        })
    }

    /// `answer` to `prompt`, whose first record (the decision) fails.
    fn answer_unrecorded(&mut self, prompt: Uuid, answer: Answer) -> Vec<Effect> {
        self.core.handle(
            self.now,
            Input::Answered {
                prompt,
                answer: Ok(answer),
                local: None,
                wall: SystemTime::now(),
            },
        );
        let Some(Effect::Record { on_fail, .. }) = self.core.poll() else {
            panic!("the decision is not the first effect");
        };
        self.core.record_failed(self.now, on_fail);
        self.drain()
    }

    /// A session of tech 1 on conn 1, accepted in `mode` and relaying.
    fn running(&mut self, mode: Mode) -> Uuid {
        let e = self.ask(1, 1, mode);
        let prompt = asked(&e).expect("asked").id;
        let a = if mode == Mode::Control {
            Answer::Control
        } else {
            Answer::ViewOnly
        };
        let e = self.answer(prompt, Ok(a));
        let session = opened(&e).expect("screen opened").session;
        let e = self.input(Input::ScreenOpened {
            session,
            upstream: "x11vnc".into(),
        });
        assert!(e.iter().any(|e| matches!(e, Effect::Relay { .. })));
        session
    }

    fn relay_ended(&mut self, session: Uuid, why: EndReason) -> Vec<Effect> {
        self.input(Input::RelayEnded {
            session,
            why,
            detail: None,
            bytes_to_server: 10,
            bytes_to_technician: 20,
        })
    }
}

fn asked(e: &[Effect]) -> Option<&PromptRequest> {
    e.iter().find_map(|e| match e {
        Effect::Ask(p) => Some(&**p),
        _ => None,
    })
}

fn opened(e: &[Effect]) -> Option<&ScreenRequest> {
    e.iter().find_map(|e| match e {
        Effect::OpenScreen(r) => Some(r),
        _ => None,
    })
}

fn told(e: &[Effect], conn: ConnId) -> Vec<&Reply> {
    e.iter()
        .filter_map(|e| match e {
            Effect::Tell { conn: c, reply } if *c == conn => Some(reply),
            _ => None,
        })
        .collect()
}

fn closed(e: &[Effect], conn: ConnId) -> Option<&Closed> {
    e.iter().find_map(|e| match e {
        Effect::Close { conn: c, closed } if *c == conn => Some(closed),
        _ => None,
    })
}

fn records(e: &[Effect]) -> Vec<&Event> {
    e.iter()
        .filter_map(|e| match e {
            Effect::Record { event, .. } => Some(event),
            _ => None,
        })
        .collect()
}

fn position(e: &[Effect], f: impl Fn(&Effect) -> bool) -> usize {
    e.iter().position(f).expect("effect present")
}

fn holds(e: &[Effect]) -> Vec<bool> {
    e.iter()
        .filter_map(|e| match e {
            Effect::Hold(h) => Some(*h),
            _ => None,
        })
        .collect()
}

#[test]
fn one_prompt_at_a_time_and_busy_for_the_next() {
    let mut b = Bench::new(rules());
    let e = b.ask(1, 1, Mode::Control);
    assert!(asked(&e).is_some());
    assert_eq!(
        told(&e, 1),
        [&Reply::Pending {
            timeout: 60 * S,
            asked: Mode::Control
        }]
    );
    let e = b.ask(2, 2, Mode::View);
    assert!(asked(&e).is_none(), "a second prompt was shown");
    assert_eq!(
        told(&e, 2),
        [&Reply::Refusal {
            why: RefusalCode::Busy,
            retry_after: None
        }]
    );
    assert!(matches!(
        e[0],
        Effect::Reject {
            why: RefusalCode::Busy,
            ..
        }
    ));
}

#[test]
fn a_decision_is_recorded_before_the_technician_hears_of_it() {
    let mut b = Bench::new(rules());
    let e = b.ask(1, 1, Mode::Control);
    let prompt = asked(&e).unwrap().id;
    let e = b.answer(prompt, Ok(Answer::Refused));
    let rec = position(&e, |e| {
        matches!(
            e,
            Effect::Record {
                event: Event::Decision { .. },
                ..
            }
        )
    });
    let tell = position(&e, |e| matches!(e, Effect::Tell { conn: 1, .. }));
    assert!(rec < tell);
    assert_eq!(
        closed(&e, 1),
        Some(&Closed::Request(Outcome::Refused(RefusalCode::User)))
    );
    // Accepted: the decision, then session_started, then "accepted".
    let session = {
        let e = b.ask(3, 1, Mode::Control);
        let p = asked(&e).unwrap().id;
        let e = b.answer(p, Ok(Answer::Control));
        assert!(told(&e, 3).is_empty(), "told before the screen was open");
        opened(&e).unwrap().session
    };
    let e = b.input(Input::ScreenOpened {
        session,
        upstream: "x".into(),
    });
    let rec = position(&e, |e| {
        matches!(
            e,
            Effect::Record {
                event: Event::SessionStarted { local: Some(_), .. },
                ..
            }
        )
    });
    let tell = position(&e, |e| {
        matches!(
            e,
            Effect::Tell {
                conn: 3,
                reply: Reply::Decision(Decision::Accepted { .. })
            }
        )
    });
    let relay = position(&e, |e| matches!(e, Effect::Relay { conn: 3, .. }));
    assert!(rec < tell && tell < relay);
}

#[test]
fn an_unrecorded_decision_refuses_and_opens_nothing() {
    let mut b = Bench::new(rules());
    let e = b.ask(1, 1, Mode::Control);
    let prompt = asked(&e).unwrap().id;
    let e = b.answer_unrecorded(prompt, Answer::Control);
    assert!(opened(&e).is_none(), "{e:?}");
    assert_eq!(
        closed(&e, 1),
        Some(&Closed::Request(Outcome::Refused(RefusalCode::Policy)))
    );
    assert!(!b.core.in_session());
    // And the next request is asked again.
    assert!(asked(&b.ask(2, 1, Mode::View)).is_some());
}

#[test]
fn the_rate_limit_counts_prompts_per_technician_per_hour() {
    let mut r = rules();
    r.max_prompts_per_hour = 2;
    let mut b = Bench::new(r);
    for conn in 1..=2 {
        let e = b.ask(conn, 1, Mode::View);
        let p = asked(&e).unwrap().id;
        b.answer(p, Ok(Answer::Refused));
        b.now += 60 * S;
    }
    let e = b.ask(3, 1, Mode::View);
    assert!(asked(&e).is_none());
    let Reply::Refusal { why, retry_after } = told(&e, 3)[0] else {
        panic!()
    };
    assert_eq!(*why, RefusalCode::RateLimited);
    assert_eq!(*retry_after, Some(3600 * S - 120 * S));
    // Another technician is not limited by the first.
    assert!(asked(&b.ask(4, 2, Mode::View)).is_some());
}

#[test]
fn the_deadline_refuses_timeout_and_says_who_was_asked() {
    let mut b = Bench::new(rules());
    let e = b.ask(1, 1, Mode::View);
    let prompt = asked(&e).unwrap().id;
    assert_eq!(b.core.poll_timeout(), Some(b.now + 60 * S));
    assert!(b.advance(59 * S).is_empty());
    let e = b.advance(S);
    assert_eq!(e[0], Effect::Withdraw { prompt });
    let Event::Decision { by, why, local, .. } = records(&e)[0] else {
        panic!()
    };
    assert_eq!(
        (*by, *why),
        (DecidedBy::Timeout, Some(RefusalCode::Timeout))
    );
    assert_eq!(local, &Some(alice()));
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::Notify(Notice::PromptTimedOut { .. })))
    );
    // A late answer changes nothing.
    assert!(b.answer(prompt, Ok(Answer::Control)).is_empty());
}

#[test]
fn a_technician_who_hangs_up_withdraws_the_prompt() {
    let mut b = Bench::new(rules());
    let prompt = asked(&b.ask(1, 1, Mode::View)).unwrap().id;
    let e = b.input(Input::Gone { conn: 1 });
    assert_eq!(e[0], Effect::Withdraw { prompt });
    assert_eq!(
        closed(&e, 1),
        Some(&Closed::Request(Outcome::Refused(RefusalCode::BadRequest)))
    );
}

#[test]
fn never_more_than_was_offered() {
    let mut r = rules();
    r.allow_control = false;
    let mut b = Bench::new(r);
    let e = b.ask(1, 1, Mode::Control);
    let p = asked(&e).unwrap();
    assert!(!p.control_offered);
    let id = p.id;
    let e = b.answer(id, Ok(Answer::Control));
    assert_eq!(opened(&e).unwrap().mode, Mode::View);
    assert!(!opened(&e).unwrap().grants.input);
}

#[test]
fn a_session_that_ends_takes_its_request_for_control_with_it() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::View);
    let e = b.raise(2, 1, session);
    let raise = asked(&e).unwrap().id;
    let e = b.relay_ended(session, EndReason::Technician);
    assert!(e.contains(&Effect::Withdraw { prompt: raise }), "{e:?}");
    let Event::Decision { by, why, .. } = records(&e)[0] else {
        panic!("{e:?}")
    };
    assert_eq!(
        (*by, *why),
        (DecidedBy::Agent, Some(RefusalCode::BadRequest))
    );
    assert_eq!(
        closed(&e, 2),
        Some(&Closed::Request(Outcome::Refused(RefusalCode::BadRequest)))
    );
    assert_eq!(b.core.prompt(), None);
}

#[test]
fn nobody_can_ask_for_control_before_the_session_is_told_accepted() {
    let mut b = Bench::new(rules());
    let p = asked(&b.ask(1, 1, Mode::View)).unwrap().id;
    let session = opened(&b.answer(p, Ok(Answer::ViewOnly))).unwrap().session;
    let e = b.raise(2, 1, session);
    assert!(asked(&e).is_none());
    assert!(matches!(
        told(&e, 2)[0],
        Reply::Refusal {
            why: RefusalCode::BadRequest,
            ..
        }
    ));
}

#[test]
fn the_kill_switch_while_the_screen_opens_ends_it_there() {
    let mut b = Bench::new(rules());
    let p = asked(&b.ask(1, 1, Mode::Control)).unwrap().id;
    let session = opened(&b.answer(p, Ok(Answer::Control))).unwrap().session;
    let e = b.input(Input::End(EndReason::User));
    assert_eq!(e[0], Effect::CancelOpen { session });
    let Event::SessionEnded { why, detail, .. } = records(&e)[0] else {
        panic!()
    };
    assert_eq!(*why, EndReason::User);
    assert!(detail.as_deref().unwrap().contains("while connecting"));
    assert!(matches!(
        told(&e, 1)[0],
        Reply::Decision(Decision::Refused {
            why: RefusalCode::User
        })
    ));
    // The screen opening late is ignored.
    assert!(
        b.input(Input::ScreenOpened {
            session,
            upstream: "x".into()
        })
        .is_empty()
    );
}

#[test]
fn ending_a_running_session_waits_for_the_relay_before_the_next_prompt() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    let e = b.input(Input::End(EndReason::User));
    assert_eq!(e, [Effect::EndRelay(EndReason::User)]);
    // Still busy until the relay says its server leg is closed.
    assert!(asked(&b.ask(2, 2, Mode::View)).is_none());
    let e = b.relay_ended(session, EndReason::User);
    let Event::SessionEnded {
        why,
        bytes_to_technician,
        ..
    } = records(&e)[0]
    else {
        panic!()
    };
    assert_eq!((*why, *bytes_to_technician), (EndReason::User, 20));
    assert_eq!(
        closed(&e, 1),
        Some(&Closed::Request(Outcome::Ended(EndReason::User)))
    );
    assert!(asked(&b.ask(3, 2, Mode::View)).is_some());
}

#[test]
fn an_ending_asked_for_keeps_its_reason_when_the_server_closed_first() {
    // Her stop in GNOME's indicator: the server exits, its socket closes
    // (the relay sees `upstream`) as the stop is told; the stop is hers.
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    b.input(Input::End(EndReason::User));
    // A second ending does not change the first's reason.
    assert!(b.input(Input::End(EndReason::Idle)).is_empty());
    let e = b.relay_ended(session, EndReason::Upstream);
    let Event::SessionEnded { why, .. } = records(&e)[0] else {
        panic!()
    };
    assert_eq!(*why, EndReason::User);
    assert_eq!(
        closed(&e, 1),
        Some(&Closed::Request(Outcome::Ended(EndReason::User)))
    );
    // Without an ending asked for, the relay's own reason stands, once
    // nothing else came within the grace.
    let session = b.running(Mode::Control);
    assert!(b.relay_ended(session, EndReason::Upstream).is_empty());
    let e = b.advance(UPSTREAM_GRACE);
    let Event::SessionEnded { why, .. } = records(&e)[0] else {
        panic!()
    };
    assert_eq!(*why, EndReason::Upstream);
}

/// The first record of `e`, which must be the session's end: its reason.
fn ended_why(e: &[Effect]) -> EndReason {
    match records(e).first() {
        Some(Event::SessionEnded { why, .. }) => *why,
        other => panic!("not a session end first: {other:?} in {e:?}"),
    }
}

#[test]
fn a_server_that_closed_is_recorded_upstream_only_after_the_grace() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    let before = b.now;
    assert!(b.relay_ended(session, EndReason::Upstream).is_empty());
    assert_eq!(b.core.poll_timeout(), Some(before + UPSTREAM_GRACE));
    assert!(b.core.session().is_some(), "not over before the grace");
    assert!(
        b.advance(UPSTREAM_GRACE - Duration::from_millis(1))
            .is_empty()
    );
    let e = b.advance(Duration::from_millis(1));
    assert_eq!(ended_why(&e), EndReason::Upstream);
    assert_eq!(
        closed(&e, 1),
        Some(&Closed::Request(Outcome::Ended(EndReason::Upstream)))
    );
    assert_eq!(b.core.session(), None);
    assert_eq!(b.core.poll_timeout(), None);
}

#[test]
fn her_stop_told_within_the_grace_is_the_reason() {
    // Told by the service's helper (an ending) or by the exit status of
    // the server Accord started (agent mode).
    for told in [
        Input::End(EndReason::User),
        Input::ServerExited {
            session: Uuid::nil(),
            by_her: true,
        },
    ] {
        let mut b = Bench::new(rules());
        let session = b.running(Mode::Control);
        b.relay_ended(session, EndReason::Upstream);
        b.now += UPSTREAM_GRACE / 2;
        let told = match told.clone() {
            Input::ServerExited { by_her, .. } => Input::ServerExited { session, by_her },
            i => i,
        };
        let e = b.input(told);
        let Some(Event::SessionEnded { why, .. }) = records(&e).first().copied() else {
            panic!("{e:?}")
        };
        assert_eq!(*why, EndReason::User);
        assert_eq!(b.core.session(), None);
    }
}

#[test]
fn a_server_that_exited_not_by_her_is_recorded_at_once() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    // Another session's server says nothing about this one.
    b.input(Input::ServerExited {
        session: Uuid::new_v4(),
        by_her: true,
    });
    assert_eq!(b.core.session(), Some(session));
    b.input(Input::ServerExited {
        session,
        by_her: false,
    });
    let e = b.relay_ended(session, EndReason::Upstream);
    assert_eq!(ended_why(&e), EndReason::Upstream);
    // Exited while its end was held: no more waiting either.
    let session = b.running(Mode::Control);
    b.relay_ended(session, EndReason::Upstream);
    let e = b.input(Input::ServerExited {
        session,
        by_her: false,
    });
    assert_eq!(ended_why(&e), EndReason::Upstream);
}

#[test]
fn what_comes_during_the_grace_finds_the_session_over() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    b.relay_ended(session, EndReason::Upstream);
    // A new request is not `busy`: the held end is recorded first.
    let e = b.ask(2, 2, Mode::View);
    assert_eq!(ended_why(&e), EndReason::Upstream);
    assert!(asked(&e).is_some(), "{e:?}");
    // A relay end of another kind is never held.
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    let e = b.relay_ended(session, EndReason::Technician);
    assert_eq!(ended_why(&e), EndReason::Technician);
}

#[test]
fn a_request_for_control_holds_input_and_switches_only_once_recorded() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::View);
    // Another certificate: bad_request.
    let e = b.raise(5, 2, session);
    assert!(matches!(
        told(&e, 5)[0],
        Reply::Refusal {
            why: RefusalCode::BadRequest,
            ..
        }
    ));
    let e = b.raise(2, 1, session);
    assert_eq!(holds(&e), [true]);
    let p = asked(&e).unwrap();
    assert!(p.raise);
    let prompt = p.id;
    // One question at a time.
    let e = b.raise(3, 1, session);
    assert!(matches!(
        told(&e, 3)[0],
        Reply::Refusal {
            why: RefusalCode::Busy,
            ..
        }
    ));
    let e = b.answer(prompt, Ok(Answer::Control));
    let rec = position(&e, |e| {
        matches!(
            e,
            Effect::Record {
                event: Event::ModeChanged { .. },
                ..
            }
        )
    });
    let set = position(&e, |e| *e == Effect::SetMode(Mode::Control));
    let release = position(&e, |e| *e == Effect::Hold(false));
    let tell = position(&e, |e| matches!(e, Effect::Tell { conn: 2, .. }));
    assert!(rec < set && set < release && release < tell, "{e:?}");
    assert_eq!(closed(&e, 2), Some(&Closed::Request(Outcome::Raised)));
}

#[test]
fn an_unrecorded_grant_of_control_switches_back() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::View);
    let e = b.raise(2, 1, session);
    let prompt = asked(&e).unwrap().id;
    let e = b.answer_unrecorded(prompt, Answer::Control);
    assert!(!e.contains(&Effect::SetMode(Mode::Control)), "{e:?}");
    assert_eq!(holds(&e), [false]);
    assert_eq!(
        closed(&e, 2),
        Some(&Closed::Request(Outcome::Refused(RefusalCode::Policy)))
    );
}

#[test]
fn pause_hides_and_holds_first_and_resume_shows_again() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    let watch = b.input(Input::Watch {
        conn: 9,
        technician: tech(1),
        peer: peer(),
        session,
    });
    assert_eq!(
        told(&watch, 9),
        [&Reply::Watch(WatchNews::Mode {
            mode: Mode::Control,
            by: None
        })]
    );
    let e = b.input(Input::Pause(true));
    assert_eq!(e[0], Effect::Hide(true));
    assert_eq!(e[1], Effect::Hold(true));
    assert!(matches!(records(&e)[0], Event::Paused { by: "user", .. }));
    assert_eq!(told(&e, 9), [&Reply::Watch(WatchNews::Paused(true))]);
    assert!(
        e.iter()
            .any(|e| matches!(e, Effect::Show(Activity::InSession(i)) if i.paused))
    );
    assert!(b.input(Input::Pause(true)).is_empty(), "paused twice");
    let e = b.input(Input::Pause(false));
    assert_eq!(e[0], Effect::Hide(false));
    assert_eq!(e[1], Effect::Hold(false));
    assert!(matches!(records(&e)[0], Event::Resumed { .. }));
}

#[test]
fn input_stays_held_while_paused_even_after_a_question_is_settled() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::View);
    b.input(Input::Pause(true));
    let e = b.raise(2, 1, session);
    let prompt = asked(&e).unwrap().id;
    let e = b.answer(prompt, Ok(Answer::Control));
    assert!(holds(&e).is_empty(), "input released while paused: {e:?}");
    let e = b.input(Input::Pause(false));
    assert_eq!(holds(&e), [false]);
}

#[test]
fn the_consent_period_asks_holds_and_continue_restarts_it() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    b.input(Input::Watch {
        conn: 9,
        technician: tech(1),
        peer: peer(),
        session,
    });
    assert_eq!(b.core.poll_timeout(), Some(b.now + 1800 * S));
    assert!(b.advance(1799 * S).is_empty());
    let e = b.advance(S);
    assert_eq!(holds(&e), [true]);
    let p = asked(&e).unwrap();
    assert!(p.confirm && !p.raise);
    assert_eq!(p.timeout, 300 * S);
    let prompt = p.id;
    assert_eq!(
        told(&e, 9),
        [&Reply::Watch(WatchNews::Confirming { grace: 300 * S })]
    );
    let e = b.answer(prompt, Ok(Answer::Continue));
    let Event::Confirmation {
        continued,
        by,
        local,
        ..
    } = records(&e)[0]
    else {
        panic!()
    };
    assert!(*continued && *by == DecidedBy::User && local.is_some());
    assert_eq!(holds(&e), [false]);
    assert_eq!(told(&e, 9), [&Reply::Watch(WatchNews::Confirmed)]);
    assert_eq!(b.core.poll_timeout(), Some(b.now + 1800 * S));
}

#[test]
fn no_answer_within_the_grace_ends_the_session_not_confirmed() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::Control);
    let prompt = asked(&b.advance(1800 * S)).unwrap().id;
    assert!(b.advance(299 * S).is_empty());
    let e = b.advance(S);
    assert_eq!(e[0], Effect::Withdraw { prompt });
    let Event::Confirmation {
        continued,
        by,
        local,
        ..
    } = records(&e)[0]
    else {
        panic!()
    };
    assert!(!*continued && *by == DecidedBy::Timeout && local.is_some());
    assert!(e.contains(&Effect::EndRelay(EndReason::NotConfirmed)));
    let e = b.relay_ended(session, EndReason::NotConfirmed);
    assert!(matches!(
        records(&e)[0],
        Event::SessionEnded {
            why: EndReason::NotConfirmed,
            ..
        }
    ));
}

#[test]
fn terminer_ends_the_session_as_hers_and_any_other_answer_too() {
    for answer in [Answer::Refused, Answer::Control, Answer::ViewOnly] {
        let mut b = Bench::new(rules());
        b.running(Mode::Control);
        let prompt = asked(&b.advance(1800 * S)).unwrap().id;
        let e = b.answer(prompt, Ok(answer));
        assert!(
            e.contains(&Effect::EndRelay(EndReason::User)),
            "{answer:?}: {e:?}"
        );
        assert!(!e.contains(&Effect::Hold(false)), "{answer:?}");
    }
    // Nobody could be asked: nobody confirmed.
    let mut b = Bench::new(rules());
    b.running(Mode::View);
    let prompt = asked(&b.advance(1800 * S)).unwrap().id;
    let e = b.answer(prompt, Err(RefusalCode::NoUser));
    assert!(e.contains(&Effect::EndRelay(EndReason::NotConfirmed)));
}

#[test]
fn the_period_waits_for_a_pending_request_for_control() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::View);
    b.now += 1790 * S;
    let e = b.raise(2, 1, session);
    let raise = asked(&e).unwrap().id;
    // The period ends while the raise is asked: nothing more is asked.
    b.now += 20 * S;
    b.core.handle_timeout(b.now, |_| None);
    assert!(asked(&b.drain()).is_none());
    // Once the raise is settled, the question comes, input still held.
    let e = b.answer(raise, Ok(Answer::Refused));
    let q = asked(&e).expect("confirm asked after the raise");
    assert!(q.confirm);
    assert!(!e.contains(&Effect::Hold(false)), "{e:?}");
}

#[test]
fn confirm_every_zero_never_asks() {
    let mut r = rules();
    r.confirm_every = None;
    let mut b = Bench::new(r);
    b.running(Mode::Control);
    assert_eq!(b.core.poll_timeout(), None);
}

#[test]
fn a_watch_is_for_the_sessions_own_certificate_one_at_a_time_and_hears_the_end() {
    let mut b = Bench::new(rules());
    let session = b.running(Mode::View);
    let watch = |b: &mut Bench, conn, who| {
        b.input(Input::Watch {
            conn,
            technician: tech(who),
            peer: peer(),
            session,
        })
    };
    let e = watch(&mut b, 8, 2);
    assert_eq!(
        closed(&e, 8),
        Some(&Closed::Watch(WatchOutcome::Refused(
            RefusalCode::BadRequest
        )))
    );
    watch(&mut b, 9, 1);
    let e = watch(&mut b, 10, 1);
    assert_eq!(
        closed(&e, 10),
        Some(&Closed::Watch(WatchOutcome::Refused(RefusalCode::Busy)))
    );
    let e = b.input(Input::ViewOnly);
    assert!(e.is_empty(), "already view only");
    b.input(Input::End(EndReason::ScreenLocked));
    let e = b.relay_ended(session, EndReason::ScreenLocked);
    assert_eq!(
        told(&e, 9),
        [&Reply::Watch(WatchNews::Ended(EndReason::ScreenLocked))]
    );
    assert_eq!(
        closed(&e, 9),
        Some(&Closed::Watch(WatchOutcome::Ended(Some(
            EndReason::ScreenLocked
        ))))
    );
}

#[test]
fn shutdown_and_a_lost_ui_refuse_everything_after() {
    for (input, code, why) in [
        (
            Input::Shutdown,
            RefusalCode::AgentShuttingDown,
            EndReason::AgentStopped,
        ),
        (Input::UiLost, RefusalCode::Policy, EndReason::UiLost),
    ] {
        let mut b = Bench::new(rules());
        b.running(Mode::Control);
        let e = b.input(input.clone());
        assert!(e.contains(&Effect::EndRelay(why)));
        let e = b.ask(2, 2, Mode::View);
        assert!(asked(&e).is_none());
        assert!(matches!(told(&e, 2)[0], Reply::Refusal { why, .. } if *why == code));
        // A prompt on screen is withdrawn and refused.
        let mut b = Bench::new(rules());
        let p = asked(&b.ask(1, 1, Mode::View)).unwrap().id;
        let e = b.input(input);
        let withdraw = position(&e, |e| *e == Effect::Withdraw { prompt: p });
        let tell = position(&e, |e| matches!(e, Effect::Tell { .. }));
        assert!(withdraw < tell);
        assert_eq!(
            closed(&e, 1),
            Some(&Closed::Request(Outcome::Refused(code)))
        );
    }
}

#[test]
fn an_untrustworthy_log_refuses_before_anyone_is_asked() {
    let mut b = Bench::new(rules());
    let e = b.input(Input::Request {
        conn: 1,
        technician: tech(1),
        peer: peer(),
        request: request(Mode::View),
        log: Err(LogUnusable::Altered {
            path: "/var/log/accord/audit.jsonl".into(),
            source: crate::audit::ChainError {
                seq: Some(12),
                line: 12,
                why: crate::audit::Why::BrokenLink,
            },
        }),
    });
    assert!(asked(&e).is_none());
    assert!(
        matches!(&e[0], Effect::Reject { why: RefusalCode::Policy, detail, .. } if detail.contains("seq 12"))
    );
}

/// Random inputs for the property tests: requests, answers to whatever
/// is asked, hang-ups, openings, relay ends, switches, time passing.
#[derive(Clone, Debug)]
enum Op {
    Ask { who: u8, control: bool },
    Raise { who: u8 },
    Watch { who: u8 },
    Answer(u8),
    Fail,
    Gone(ConnId),
    Open,
    OpenFail,
    RelayEnd { upstream: bool },
    ServerExited { by_her: bool },
    End,
    ViewOnly,
    Pause(bool),
    Wait(u16),
    Shutdown,
    UiLost,
    RecordFails,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, any::<bool>()).prop_map(|(who, control)| Op::Ask { who, control }),
        2 => (0u8..3).prop_map(|who| Op::Raise { who }),
        2 => (0u8..3).prop_map(|who| Op::Watch { who }),
        4 => (0u8..4).prop_map(Op::Answer),
        1 => Just(Op::Fail),
        2 => (1u64..12).prop_map(Op::Gone),
        3 => Just(Op::Open),
        1 => Just(Op::OpenFail),
        1 => any::<bool>().prop_map(|upstream| Op::RelayEnd { upstream }),
        1 => any::<bool>().prop_map(|by_her| Op::ServerExited { by_her }),
        1 => Just(Op::End),
        1 => Just(Op::ViewOnly),
        2 => any::<bool>().prop_map(Op::Pause),
        3 => (0u16..2500).prop_map(Op::Wait),
        1 => Just(Op::Shutdown),
        1 => Just(Op::UiLost),
        1 => Just(Op::RecordFails),
    ]
}

/// The world as the effects leave it.
#[derive(Default)]
struct World {
    prompts: Vec<Uuid>,
    held: bool,
    hidden: bool,
    decided: Vec<Uuid>,
    started: Vec<Uuid>,
    relaying: Option<Uuid>,
    open_conns: Vec<ConnId>,
    fail_next_record: bool,
}

impl World {
    /// Carries out the core's effects as a driver would, checking the
    /// rules each one must obey.
    fn drive(&mut self, core: &mut Consent, now: Instant) -> Result<(), TestCaseError> {
        while let Some(e) = core.poll() {
            match &e {
                Effect::Record { event, on_fail } => {
                    if self.fail_next_record && *on_fail != OnFail::Nothing {
                        self.fail_next_record = false;
                        core.record_failed(now, *on_fail);
                        continue;
                    }
                    match event {
                        Event::Decision {
                            session: s,
                            granted: Some(_),
                            ..
                        } => self.decided.push(*s),
                        Event::SessionStarted { session: s, .. } => self.started.push(*s),
                        _ => {}
                    }
                }
                Effect::Ask(p) => {
                    prop_assert!(self.prompts.is_empty(), "two prompts at once");
                    self.prompts.push(p.id);
                }
                Effect::Withdraw { prompt } => self.prompts.retain(|p| p != prompt),
                Effect::OpenScreen(r) => {
                    prop_assert!(self.decided.contains(&r.session), "opened before recorded");
                    // The driver makes the session's switches afresh.
                    self.held = false;
                    self.hidden = false;
                }
                Effect::Tell {
                    reply: Reply::Decision(Decision::Accepted { session: s, .. }),
                    ..
                } => {
                    prop_assert!(self.decided.contains(s), "accepted before recorded");
                    prop_assert!(self.started.contains(s), "accepted before started");
                }
                Effect::Relay { session: s, .. } => {
                    prop_assert!(self.started.contains(s), "relayed before recorded");
                    self.relaying = Some(*s);
                }
                Effect::Hold(h) => self.held = *h,
                Effect::Hide(h) => self.hidden = *h,
                Effect::Close { conn, .. } => {
                    prop_assert!(
                        self.open_conns.contains(conn),
                        "closed twice or never opened"
                    );
                    self.open_conns.retain(|c| c != conn);
                }
                _ => {}
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_inputs_never_break_the_rules(ops in proptest::collection::vec(op(), 1..80)) {
        let mut core = Consent::new(rules());
        let mut now = Instant::now();
        let mut w = World::default();
        let mut next_conn: ConnId = 1;
        for op in ops {
            let session = core.session().unwrap_or_else(Uuid::new_v4);
            let mut new_conn = || {
                let c = next_conn;
                next_conn += 1;
                w.open_conns.push(c);
                c
            };
            let input = match op {
                Op::Ask { who, control } => Some(Input::Request {
                    conn: new_conn(),
                    technician: tech(who),
                    peer: peer(),
                    request: request(if control { Mode::Control } else { Mode::View }),
                    log: Ok(()),
                }),
                Op::Raise { who } => Some(Input::Request {
                    conn: new_conn(),
                    technician: tech(who),
                    peer: peer(),
                    request: Request { session: Some(session), ..request(Mode::Control) },
                    log: Ok(()),
                }),
                Op::Watch { who } => Some(Input::Watch {
                    conn: new_conn(),
                    technician: tech(who),
                    peer: peer(),
                    session,
                }),
                Op::Answer(a) => w.prompts.first().map(|p| Input::Answered {
                    prompt: *p,
                    answer: Ok([Answer::Control, Answer::ViewOnly, Answer::Refused, Answer::Continue][usize::from(a % 4)]),
                    local: None,
                    wall: SystemTime::now(),
                }),
                Op::Fail => w.prompts.first().map(|p| Input::Answered {
                    prompt: *p,
                    answer: Err(RefusalCode::NoUser),
                    local: None,
                    wall: SystemTime::now(),
                }),
                Op::Gone(c) => Some(Input::Gone { conn: c }),
                Op::Open => Some(Input::ScreenOpened { session, upstream: "x".into() }),
                Op::OpenFail => Some(Input::ScreenFailed { session, detail: "no".into() }),
                Op::RelayEnd { upstream } => w.relaying.map(|s| Input::RelayEnded {
                    session: s,
                    why: if upstream { EndReason::Upstream } else { EndReason::Technician },
                    detail: None,
                    bytes_to_server: 0,
                    bytes_to_technician: 0,
                }),
                Op::ServerExited { by_her } => Some(Input::ServerExited { session, by_her }),
                Op::End => Some(Input::End(EndReason::User)),
                Op::ViewOnly => Some(Input::ViewOnly),
                Op::Pause(on) => Some(Input::Pause(on)),
                Op::Wait(secs) => {
                    now += Duration::from_secs(u64::from(secs));
                    core.handle_timeout(now, |_| None);
                    None
                }
                Op::Shutdown => Some(Input::Shutdown),
                Op::UiLost => Some(Input::UiLost),
                Op::RecordFails => {
                    w.fail_next_record = true;
                    None
                }
            };
            if let Some(Input::Answered { prompt, .. }) = &input
                && core.prompt() == Some(*prompt)
            {
                // The core settles the prompt it is asking.
                w.prompts.clear();
            }
            if let Some(Input::RelayEnded { .. }) = &input {
                w.relaying = None;
            }
            if let Some(i) = input {
                core.handle(now, i);
            }
            w.drive(&mut core, now)?;
            prop_assert_eq!(w.prompts.first().copied(), core.prompt(), "prompt on screen");
            if core.session().is_some() {
                prop_assert_eq!(w.hidden, core.paused(), "hidden");
            }
            let must_hold = core.session().is_some() && (core.paused() || core.prompt().is_some());
            prop_assert!(!must_hold || w.held, "input flowing while paused or asked");
        }
        // Whatever happened, a shutdown leaves no connection open and
        // nothing on screen.
        core.handle(now, Input::Shutdown);
        w.drive(&mut core, now)?;
        if let Some(s) = w.relaying {
            core.handle(now, Input::RelayEnded {
                session: s, why: EndReason::AgentStopped, detail: None,
                bytes_to_server: 0, bytes_to_technician: 0,
            });
            w.drive(&mut core, now)?;
        }
        prop_assert!(core.session().is_none());
        prop_assert!(w.prompts.is_empty());
        prop_assert!(w.open_conns.is_empty(), "left open: {:?}", w.open_conns);
    }
}
