//! The erasure screens, driven by handing them replies (no database) and
//! rendered on ratatui's TestBackend.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use uuid::Uuid;

use charon::core::action::{Action, GateInput, Reply, RequestDetail};
use charon::core::console::ConsoleInfo;
use charon::core::erasure::certificate::Certificate;
use charon::core::erasure::external::Step;
use charon::core::erasure::store::RequestKind;
use charon::core::erasure::{
    ErasureRequest, ExecuteOutcome, ExecuteReport, ExternalPlan, Plan, QueueReport, Regime,
    RowAction, TablePlan,
};
use charon::core::session::Role;
use charon::tui::app::{App, Effect, Level};
use charon::tui::keymap::{self, Key};
use charon::tui::screen::{Command, Done, Failure, Msg, RequestId, Screen};
use charon::tui::screens::erasure::ErasureScreen;
use charon::tui::screens::erasure_form::ErasureFormScreen;
use charon::tui::screens::erasure_request::{CertificateScreen, ErasureRequestScreen, Outcome};
use charon::tui::screens::help::HelpScreen;
use charon::tui::theme::{Meaning, Theme, ThemeSet};

// ---------------------------------------------------------------- helpers

fn theme() -> Theme {
    ThemeSet::bundled_only().load("dark").unwrap().theme
}

fn day(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

/// The time every screen here judges "overdue" against.
fn now() -> DateTime<Utc> {
    day(2026, 3, 10)
}

fn text(buf: &Buffer) -> String {
    let mut out = String::new();
    for y in 0..buf.area.height {
        for x in 0..buf.area.width {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    out
}

fn render_screen(screen: &dyn Screen, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let th = theme();
    t.draw(|f| screen.render(f, f.area(), &th)).unwrap();
    t.backend().buffer().clone()
}

fn render_app(app: &App, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| app.render(f)).unwrap();
    t.backend().buffer().clone()
}

fn key(c: char) -> Msg {
    Msg::Key(Key::char(c))
}

fn special(code: KeyCode) -> Msg {
    Msg::Key(Key::plain(code))
}

fn typed(screen: &mut dyn Screen, s: &str) -> Vec<Command> {
    s.chars().flat_map(|c| screen.update(&key(c))).collect()
}

fn done(id: RequestId, reply: Reply) -> Msg {
    Msg::Done(Done {
        id,
        result: Ok(reply),
    })
}

fn failed(id: RequestId, message: &str, mfa_required: bool) -> Msg {
    Msg::Done(Done {
        id,
        result: Err(Failure {
            message: message.into(),
            unreachable: false,
            mfa_required,
        }),
    })
}

fn step_up_error(what: &str) -> Failure {
    Failure::from_error(&charon::core::Error::MfaRequired(format!(
        "{what} needs a fresh touch of your key (step-up)"
    )))
}

/// The one action the commands run.
fn run_in(cmds: &[Command]) -> (RequestId, Action) {
    let runs: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Run { id, action } => Some((*id, action.clone())),
            _ => None,
        })
        .collect();
    match runs.as_slice() {
        [one] => one.clone(),
        other => panic!("expected one Run in {cmds:?}, got {other:?}"),
    }
}

fn request(n: u128, state: &str, due: DateTime<Utc>, ticket: &str) -> ErasureRequest {
    ErasureRequest {
        id: Uuid::from_u128(n),
        kind: "erasure".into(),
        subject_ref: "j***@e***.com".into(),
        ticket: ticket.into(),
        regime: "gdpr".into(),
        note: String::new(),
        received_at: due - chrono::Duration::days(30),
        due_at: due,
        state: state.into(),
        created_by: "ada".into(),
        planned_by: None,
        approved_by: None,
        executed_by: None,
        plan_sha256: None,
        executed_at: None,
        failure: None,
        certificate_sha256: None,
    }
}

const SHA: &str = "3f2b9c0d1e2f3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d";
const NEW_SHA: &str = "aa11bb22cc33dd44ee55ff6677889900aabbccddeeff00112233445566778899";

fn plan(sha: &str) -> Plan {
    let t = |table: &str, action, rows, reason: &str| TablePlan {
        table: table.into(),
        action,
        rows,
        reason: reason.into(),
        columns: vec![],
        keys_sha256: "00".into(),
    };
    Plan {
        subject_ref: "j***@e***.com".into(),
        per_table: vec![
            t("gps_points", RowAction::Delete, 2_000, "precise location"),
            t(
                "payroll_entries",
                RowAction::Retain,
                24,
                "7-year financial retention",
            ),
            t("receipts", RowAction::Delete, 12, "uploaded by the subject"),
            t("users", RowAction::Delete, 1, "the subject's account"),
        ],
        external: vec![
            ExternalPlan {
                system: "object_store".into(),
                objects: (0..12).map(|i| format!("receipts/{i}.jpg")).collect(),
            },
            ExternalPlan {
                system: "plaid".into(),
                objects: vec!["item-1".into()],
            },
        ],
        sha256: sha.into(),
    }
}

fn planned_detail() -> RequestDetail {
    let mut r = request(0xE1, "planned", day(2026, 4, 1), "DSR-1042");
    r.planned_by = Some("ada".into());
    r.plan_sha256 = Some(SHA.into());
    r.note = "asked by e-mail".into();
    RequestDetail {
        request: r,
        plan: Some(plan(SHA).to_json().unwrap()),
        steps: vec![
            Step {
                system: "object_store".into(),
                object: "receipts/1.jpg".into(),
                state: "done".into(),
                attempts: 1,
                outcome: Some("deleted".into()),
                last_error: None,
            },
            Step {
                system: "plaid".into(),
                object: "item-1".into(),
                state: "failed".into(),
                attempts: 5,
                outcome: None,
                last_error: Some("HTTP 500 from /item/remove".into()),
            },
        ],
    }
}

fn approved_screen() -> ErasureRequestScreen {
    let mut d = planned_detail();
    d.request.state = "approved".into();
    d.request.approved_by = Some("grace".into());
    ErasureRequestScreen::loaded(d).with_now(now())
}

fn compliance(operator: &str) -> ConsoleInfo {
    ConsoleInfo {
        operator: operator.into(),
        role: Role::Compliance,
        environment: "demo".into(),
        production: false,
        database: "pluto@localhost".into(),
        demo: true,
    }
}

const OTP: &str = "cccccbhkevejvhgnrhbtvtgdhnnnchlhkjjrlvdgnjvc";

/// An app past the gate for `who` (demo: the step-up is the software key).
fn signed_in(who: ConsoleInfo) -> App {
    let mut app = App::new(who.clone(), ThemeSet::bundled_only(), theme());
    let one = |effects: Vec<Effect>| match effects.as_slice() {
        [Effect::Run { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let open = one(app.start());
    let ask = one(app.update(done(open, Reply::Opened)));
    app.update(done(
        ask,
        Reply::Gate(charon::core::console::GateStatus {
            operator: who.operator.clone(),
            prompts: vec!["touch your YubiKey".into()],
            demo_roles: vec![],
        }),
    ));
    for c in OTP.chars() {
        app.update(key(c));
    }
    let auth = one(app.update(special(KeyCode::Enter)));
    one(app.update(done(auth, Reply::Authenticated(who))));
    assert!(!app.gated());
    app
}

// ---------------------------------------------------------------- list

fn list_with(requests: Vec<ErasureRequest>) -> ErasureScreen {
    let mut s = ErasureScreen::new().with_now(now());
    let (id, action) = run_in(&s.start());
    assert!(matches!(action, Action::ErasureList { .. }));
    assert!(s.update(&done(id, Reply::ErasureList(requests))).is_empty());
    s
}

#[test]
fn the_list_shows_state_kind_due_ticket_and_masked_subject_with_overdue_in_danger() {
    let mut done_late = request(3, "done", day(2026, 2, 1), "DSR-0999");
    done_late.kind = "access".into();
    // The selection (first row) is drawn in the selection style.
    let s = list_with(vec![
        request(2, "draft", day(2026, 4, 9), "DSR-1002"),
        request(1, "planned", day(2026, 3, 1), "DSR-1001"),
        request(4, "approved", day(2026, 3, 11), "DSR-1003"),
        done_late,
    ]);
    let buf = render_screen(&s, 110, 9);
    let screen = text(&buf);
    insta::assert_snapshot!("erasure_list", screen);
    assert_eq!(screen.matches("OVERDUE").count(), 1, "{screen}");
    assert!(screen.contains("4 requests, 1 overdue"), "{screen}");
    // The overdue date is drawn in the theme's danger style, the one due
    // tomorrow as a warning, the others as text.
    let th = theme();
    let style_of = |needle: &str| {
        let (x, y) = find(&buf, needle).unwrap_or_else(|| panic!("{needle} not in {screen}"));
        buf[(x, y)].fg
    };
    assert_eq!(
        style_of("2026-03-01"),
        th.style(Meaning::Danger).fg.unwrap()
    );
    assert_eq!(
        style_of("2026-03-11"),
        th.style(Meaning::Warning).fg.unwrap()
    );
    assert_eq!(style_of("2026-02-01"), th.style(Meaning::Text).fg.unwrap());
}

/// The position of the first cell of `needle` in the buffer.
fn find(buf: &Buffer, needle: &str) -> Option<(u16, u16)> {
    for y in 0..buf.area.height {
        let row: Vec<String> = (0..buf.area.width)
            .map(|x| buf[(x, y)].symbol().to_string())
            .collect();
        let line: String = row.concat();
        if let Some(byte) = line.find(needle) {
            // Cells are one character here (ASCII dates).
            let x = line[..byte].chars().count() as u16;
            return Some((x, y));
        }
    }
    None
}

#[test]
fn list_keys_open_create_and_refresh() {
    let mut s = list_with(vec![
        request(1, "planned", day(2026, 3, 1), "DSR-1001"),
        request(2, "draft", day(2026, 4, 9), "DSR-1002"),
    ]);
    s.update(&key('j'));
    let cmds = s.update(&special(KeyCode::Enter));
    assert!(matches!(cmds.first(), Some(Command::Push(p)) if p.name() == "erasure-request"));
    let (_, action) = run_in(&cmds);
    assert_eq!(
        action,
        Action::ErasureShow {
            request: Uuid::from_u128(2)
        }
    );
    assert!(matches!(
        s.update(&key('n')).as_slice(),
        [Command::Push(p)] if p.name() == "erasure-new"
    ));
    let (id, action) = run_in(&s.update(&key('r')));
    assert!(matches!(action, Action::ErasureList { .. }));
    // A failure is a message, the screen stays.
    let cmds = s.update(&failed(id, "database unreachable — console", false));
    assert!(matches!(cmds.as_slice(), [Command::Error(m)] if m.contains("unreachable")));
    assert!(matches!(
        s.update(&special(KeyCode::Esc)).as_slice(),
        [Command::Pop]
    ));
}

#[test]
fn the_list_refreshes_when_a_request_changes_elsewhere() {
    let mut s = list_with(vec![]);
    let (_, action) =
        run_in(&s.update(&done(RequestId::next(), Reply::ErasureCreated(Uuid::nil()))));
    assert!(matches!(action, Action::ErasureList { .. }));
}

#[test]
fn hostile_tickets_and_subjects_render_inert() {
    let evil = "\x1b[2J\x1b]0;pwned\x07DSR\u{202e}-1";
    let mut r = request(1, "planned\x1b[5m", day(2026, 3, 1), evil);
    r.subject_ref = format!("{}\x1b[31m{}", "x".repeat(300), "y".repeat(5000));
    r.note = "\x1b[1;1Hnote".into();
    let s = list_with(vec![r.clone()]);
    let d = ErasureRequestScreen::loaded(RequestDetail {
        request: r,
        plan: Some(plan("\x1b[2Jsha").to_json().unwrap()),
        steps: vec![Step {
            system: "object_store".into(),
            object: "receipts/\x1b]0;t\x07.jpg".into(),
            state: "failed".into(),
            attempts: 2,
            outcome: None,
            last_error: Some("\x1b[2Jboom".into()),
        }],
    })
    .with_now(now());
    for buf in [render_screen(&s, 120, 8), render_screen(&d, 120, 40)] {
        let screen = text(&buf);
        // Escapes are shown as text, never sent to the terminal.
        assert!(screen.contains(r"\x1b["), "{screen}");
        assert!(
            !buf.content()
                .iter()
                .any(|c| c.symbol().chars().any(charon::core::sanitize::is_unsafe)),
            "{screen}"
        );
    }
}

// ---------------------------------------------------------------- form

#[test]
fn the_form_lists_its_problems_in_plain_words_and_sends_nothing() {
    let mut f = ErasureFormScreen::new();
    // Focus starts on the e-mails.
    typed(&mut f, "not-an-address");
    f.update(&special(KeyCode::Tab));
    typed(&mut f, "12");
    f.update(&special(KeyCode::Tab));
    typed(&mut f, "abc");
    f.update(&special(KeyCode::Tab)); // ticket: left empty
    f.update(&special(KeyCode::Tab)); // regime
    for _ in 0..4 {
        f.update(&special(KeyCode::Backspace));
    }
    typed(&mut f, "2001-01-01");
    f.update(&special(KeyCode::BackTab));
    f.update(&special(KeyCode::BackTab));
    f.update(&special(KeyCode::BackTab));
    f.update(&special(KeyCode::BackTab));
    f.update(&special(KeyCode::BackTab)); // kind
    for _ in 0..7 {
        f.update(&special(KeyCode::Backspace));
    }
    typed(&mut f, "delete");
    assert!(
        f.update(&special(KeyCode::Enter)).is_empty(),
        "nothing is sent"
    );
    let screen = text(&render_screen(&f, 100, 20));
    insta::assert_snapshot!("erasure_form_problems", screen);
    for words in [
        "kind must be erasure or access",
        "e-mail 1 is not an address like name@example.com",
        "phone 1 needs at least 6 digits",
        "user id 1 is not a UUID",
        "a ticket reference is needed",
        "the due date 2001-01-01 is in the past",
    ] {
        assert!(screen.contains(words), "{words}: {screen}");
    }
    // Typing q, ? and : in the form is text, not quitting.
    assert_eq!(f.context(), keymap::Context::ErasureForm);
    assert!(keymap::Context::ErasureForm.typing());
}

#[test]
fn a_valid_form_sends_erasure_create_and_makes_way_for_the_request() {
    let mut f = ErasureFormScreen::new();
    typed(&mut f, "Jane@Example.com, jd@example.org");
    f.update(&special(KeyCode::Tab));
    typed(&mut f, "+49 170 1234567");
    f.update(&special(KeyCode::Tab));
    f.update(&special(KeyCode::Tab));
    typed(&mut f, "DSR-1042");
    f.update(&special(KeyCode::Tab));
    for _ in 0..4 {
        f.update(&special(KeyCode::Backspace));
    }
    typed(&mut f, "ccpa");
    f.update(&special(KeyCode::Tab));
    typed(&mut f, "by e-mail");
    f.update(&special(KeyCode::Tab)); // wraps to kind
    for _ in 0..7 {
        f.update(&special(KeyCode::Backspace));
    }
    typed(&mut f, "access");
    let (id, action) = run_in(&f.update(&special(KeyCode::Enter)));
    let Action::ErasureCreate {
        kind,
        subject,
        ticket,
        regime,
        note,
        ..
    } = action
    else {
        panic!("{action:?}");
    };
    assert_eq!(kind, RequestKind::Access);
    assert_eq!(subject.emails, ["Jane@Example.com", "jd@example.org"]);
    assert_eq!(subject.phones, ["+49 170 1234567"]);
    assert!(subject.user_ids.is_empty());
    assert_eq!(ticket, "DSR-1042");
    assert_eq!(regime, Regime::Ccpa);
    assert_eq!(note, "by e-mail");
    // The identifiers never reach a Debug (logs, audit).
    assert!(!format!("{subject:?}").contains("Jane"));
    let created = Uuid::from_u128(0xC0);
    let cmds = f.update(&done(id, Reply::ErasureCreated(created)));
    assert!(matches!(cmds.first(), Some(Command::Pop)));
    assert!(
        cmds.iter()
            .any(|c| matches!(c, Command::Push(p) if p.name() == "erasure-request"))
    );
    assert_eq!(run_in(&cmds).1, Action::ErasureShow { request: created });
}

#[test]
fn a_custom_due_date_is_the_end_of_that_day() {
    let mut f = ErasureFormScreen::new();
    typed(&mut f, "a@b.co");
    for _ in 0..3 {
        f.update(&special(KeyCode::Tab));
    }
    typed(&mut f, "T-1");
    f.update(&special(KeyCode::Tab));
    for _ in 0..4 {
        f.update(&special(KeyCode::Backspace));
    }
    typed(&mut f, "2099-12-31");
    let (_, action) = run_in(&f.update(&special(KeyCode::Enter)));
    assert!(matches!(
        action,
        Action::ErasureCreate { regime: Regime::Custom { due_at }, .. }
            if due_at == Utc.with_ymd_and_hms(2099, 12, 31, 23, 59, 59).unwrap()
    ));
}

// ---------------------------------------------------------------- request

#[test]
fn the_request_view_groups_the_plan_by_table_and_system_and_lists_the_steps() {
    let s = ErasureRequestScreen::loaded(planned_detail()).with_now(now());
    let screen = text(&render_screen(&s, 120, 34));
    insta::assert_snapshot!("erasure_request_plan", screen);
    for words in [
        "DSR-1042",
        "j***@e***.com",
        "gps_points",
        "2000",
        "7-year financial retention",
        "object_store",
        "12",
        "HTTP 500 from /item/remove",
        SHA,
    ] {
        assert!(screen.contains(words), "{words}: {screen}");
    }
}

#[test]
fn plan_asks_for_the_identifiers_and_shows_the_new_plan() {
    let mut d = planned_detail();
    d.plan = None;
    d.request.state = "draft".into();
    let mut s = ErasureRequestScreen::loaded(d).with_now(now());
    assert!(s.update(&key('p')).is_empty());
    assert_eq!(s.context(), keymap::Context::ErasureIdentifiers);
    // Nothing typed: a plain-words problem, nothing sent.
    assert!(s.update(&special(KeyCode::Enter)).is_empty());
    let screen = text(&render_screen(&s, 110, 30));
    assert!(
        screen.contains("give at least one e-mail, phone or user id"),
        "{screen}"
    );
    typed(&mut s, "jane@example.com");
    let (id, action) = run_in(&s.update(&special(KeyCode::Enter)));
    assert_eq!(s.context(), keymap::Context::ErasureRequest);
    let Action::ErasurePlan { request, subject } = action else {
        panic!("{action:?}");
    };
    assert_eq!(request, Uuid::from_u128(0xE1));
    assert_eq!(subject.emails, ["jane@example.com"]);
    // The reply shows the plan and reloads the request.
    let (_, reload) = run_in(&s.update(&done(id, Reply::ErasurePlanned(Box::new(plan(SHA))))));
    assert!(matches!(reload, Action::ErasureShow { .. }));
    assert_eq!(s.plan().unwrap().sha256, SHA);
    let screen = text(&render_screen(&s, 120, 30));
    assert!(
        screen.contains("planned: review the plan below"),
        "{screen}"
    );
}

#[test]
fn esc_drops_the_typed_identifiers() {
    let mut s = approved_screen();
    s.update(&key('x'));
    typed(&mut s, "jane@example.com");
    s.update(&special(KeyCode::Esc));
    s.update(&key('x'));
    let screen = text(&render_screen(&s, 110, 30));
    assert!(!screen.contains("jane@"), "{screen}");
}

#[test]
fn approve_shows_the_sha_then_goes_through_the_step_up_and_the_reply_reaches_the_screen() {
    let mut app = signed_in(compliance("demo-compliance"));
    let s = ErasureRequestScreen::loaded(planned_detail()).with_now(now());
    app.push(Box::new(s), vec![]);
    assert!(app.update(key('a')).is_empty());
    let screen = text(&render_app(&app, 120, 34));
    assert!(screen.contains("Approve the plan"), "{screen}");
    assert!(screen.contains(SHA), "{screen}");
    let (asked, action) = match app.update(key('y')).as_slice() {
        [Effect::Run { id, action }] => (*id, action.clone()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        action,
        Action::ErasureApprove {
            request: Uuid::from_u128(0xE1),
            plan_sha256: SHA.into()
        }
    );
    // The console asks for a fresh touch: the step-up prompt names it.
    app.update(Msg::Done(Done {
        id: asked,
        result: Err(step_up_error("erasure.approve")),
    }));
    assert_eq!(app.stack_names().last(), Some(&"step-up"));
    let screen = text(&render_app(&app, 120, 34));
    assert!(
        screen.contains("confirm approval of erasure plan 3f2b9c0d1e2f3a4b"),
        "{screen}"
    );
    let step = match app.update(special(KeyCode::Enter)).as_slice() {
        [
            Effect::Run {
                id,
                action:
                    Action::StepUp {
                        input: GateInput::DemoRole(Role::Compliance),
                        action: a,
                    },
            },
        ] if **a == action => *id,
        other => panic!("{other:?}"),
    };
    let again = match app.update(done(step, Reply::SteppedUp)).as_slice() {
        [Effect::Run { id, action: a }] if *a == action => *id,
        other => panic!("{other:?}"),
    };
    assert_ne!(again, asked);
    let effects = app.update(done(
        again,
        Reply::ErasureApproved {
            request: Uuid::from_u128(0xE1),
            plan_sha256: SHA.into(),
        },
    ));
    // The screen that asked took it and reloads.
    assert!(
        effects.iter().any(|e| matches!(
            e,
            Effect::Run {
                action: Action::ErasureShow { .. },
                ..
            }
        )),
        "{effects:?}"
    );
    let screen = text(&render_app(&app, 120, 34));
    assert!(screen.contains(&format!("approved plan {SHA}")), "{screen}");
}

#[test]
fn n_cancels_the_approval() {
    let mut s = ErasureRequestScreen::loaded(planned_detail()).with_now(now());
    s.update(&key('a'));
    assert_eq!(s.context(), keymap::Context::ErasureConfirm);
    assert!(s.update(&key('n')).is_empty());
    assert_eq!(s.context(), keymap::Context::ErasureRequest);
}

#[test]
fn a_forbidden_approval_is_a_clear_message_not_a_crash() {
    let mut s = ErasureRequestScreen::loaded(planned_detail()).with_now(now());
    s.update(&key('a'));
    let (id, _) = run_in(&s.update(&key('y')));
    let msg = "forbidden: the creator of a request cannot approve it";
    let cmds = s.update(&failed(id, msg, false));
    assert!(matches!(cmds.as_slice(), [Command::Error(m)] if m == msg));
    assert!(matches!(s.outcome(), Some(Outcome::Failed(m)) if m == msg));
    let screen = text(&render_screen(&s, 120, 34));
    assert!(screen.contains(msg), "{screen}");
    // And the screen still works.
    assert!(s.running().is_none());
    s.update(&key('a'));
    assert_eq!(s.context(), keymap::Context::ErasureConfirm);
}

#[test]
fn execute_asks_for_identifiers_steps_up_and_draws_progress_of_the_resent_action() {
    let mut app = signed_in(compliance("demo-compliance"));
    app.push(Box::new(approved_screen()), vec![]);
    app.update(key('x'));
    for c in "jane@example.com".chars() {
        app.update(key(c));
    }
    let (asked, action) = match app.update(special(KeyCode::Enter)).as_slice() {
        [Effect::Run { id, action }] => (*id, action.clone()),
        other => panic!("{other:?}"),
    };
    assert!(
        matches!(&action, Action::ErasureExecute { subject, .. } if subject.emails == ["jane@example.com"])
    );
    app.update(Msg::Done(Done {
        id: asked,
        result: Err(step_up_error("erasure.execute")),
    }));
    let screen = text(&render_app(&app, 120, 34));
    assert!(screen.contains("execution of the erasure"), "{screen}");
    let step = match app.update(special(KeyCode::Enter)).as_slice() {
        [Effect::Run { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let again = match app.update(done(step, Reply::SteppedUp)).as_slice() {
        [Effect::Run { id, action: a }] if *a == action => *id,
        other => panic!("{other:?}"),
    };
    // The runner tags progress with the id it ran: the re-sent one.
    app.update(Msg::Progress {
        id: again,
        step: "gps_points (delete)".into(),
        done: 1_500,
        total: 2_000,
    });
    let buf = render_app(&app, 120, 34);
    let screen = text(&buf);
    insta::assert_snapshot!("erasure_execute_progress", screen);
    assert!(
        screen.contains("executing: gps_points (delete) 1500/2000"),
        "{screen}"
    );
    // `..default()` keeps this test building when the report grows a field
    // (main adds an access request's export).
    #[allow(clippy::needless_update)]
    let report = ExecuteReport {
        rows_deleted: 2_013,
        rows_pseudonymised: 24,
        rows_redacted: 0,
        external_enqueued: 13,
        queue: QueueReport {
            done: 13,
            retried: 1,
            failed: 0,
            pending: 0,
        },
        complete: true,
        certificate_sha256: Some("cafe".repeat(16)),
        resumed: false,
        ..ExecuteReport::default()
    };
    app.update(done(
        again,
        Reply::ErasureExecuted(Box::new(ExecuteOutcome::Done(report))),
    ));
    let screen = text(&render_app(&app, 120, 34));
    assert!(
        screen.contains("executed: 2013 rows deleted, 24 pseudonymised, 0 redacted"),
        "{screen}"
    );
    assert!(
        screen.contains(&format!("done — certificate {}", "cafe".repeat(16))),
        "{screen}"
    );
}

#[test]
fn the_gauge_follows_progress_of_its_own_action_only() {
    let mut s = approved_screen();
    s.update(&key('x'));
    typed(&mut s, "jane@example.com");
    let (id, _) = run_in(&s.update(&special(KeyCode::Enter)));
    s.update(&Msg::Progress {
        id: RequestId::next(),
        step: "someone else".into(),
        done: 9,
        total: 9,
    });
    assert_eq!(s.running().unwrap().step, "");
    s.update(&Msg::Progress {
        id,
        step: "object_store".into(),
        done: 3,
        total: 12,
    });
    let screen = text(&render_screen(&s, 110, 30));
    assert!(screen.contains("executing: object_store 3/12"), "{screen}");
}

#[test]
fn a_changed_plan_shows_the_differences_and_asks_for_a_new_approval() {
    let mut s = approved_screen();
    s.update(&key('x'));
    typed(&mut s, "jane@example.com");
    let (id, _) = run_in(&s.update(&special(KeyCode::Enter)));
    let mut new_plan = plan(NEW_SHA);
    new_plan.per_table[2].rows = 13;
    s.update(&done(
        id,
        Reply::ErasureExecuted(Box::new(ExecuteOutcome::PlanChanged {
            approved_sha256: SHA.into(),
            new_plan,
            differences: vec![
                "receipts (delete): 12 -> 13 rows".into(),
                "object_store: 12 objects -> 13 (1 added, 0 gone)".into(),
            ],
        })),
    ));
    let screen = text(&render_screen(&s, 120, 40));
    insta::assert_snapshot!("erasure_plan_changed", screen);
    assert!(screen.contains("a new approval is needed"), "{screen}");
    assert!(
        screen.contains("receipts (delete): 12 -> 13 rows"),
        "{screen}"
    );
    // Approving now approves the new plan.
    assert_eq!(s.plan().unwrap().sha256, NEW_SHA);
    s.update(&key('a'));
    let (_, action) = run_in(&s.update(&key('y')));
    assert!(matches!(action, Action::ErasureApprove { plan_sha256, .. } if plan_sha256 == NEW_SHA));
}

#[test]
fn execute_before_approval_and_certificate_before_done_say_why() {
    let mut s = ErasureRequestScreen::loaded(planned_detail()).with_now(now());
    assert!(matches!(
        s.update(&key('x')).as_slice(),
        [Command::Error(m)] if m.contains("must be approved")
    ));
    assert!(matches!(
        s.update(&key('c')).as_slice(),
        [Command::Error(m)] if m.contains("when the request is done")
    ));
}

#[test]
fn run_queue_retries_failed_steps_and_reports() {
    let mut s = approved_screen();
    let (id, action) = run_in(&s.update(&key('u')));
    assert_eq!(
        action,
        Action::ErasureRunQueue {
            request: Some(Uuid::from_u128(0xE1)),
            retry_failed: true
        }
    );
    // Busy: a second action waits.
    assert!(matches!(
        s.update(&key('u')).as_slice(),
        [Command::Notify(_)]
    ));
    s.update(&done(
        id,
        Reply::ErasureQueueRun(Box::new(charon::core::action::QueueRun {
            recovered: vec![],
            report: QueueReport {
                done: 1,
                retried: 0,
                failed: 0,
                pending: 0,
            },
            finished: vec![Uuid::from_u128(0xE1)],
        })),
    ));
    let screen = text(&render_screen(&s, 120, 34));
    assert!(
        screen.contains("queue run: 1 done, 0 retried, 0 failed, 0 pending"),
        "{screen}"
    );
    assert!(screen.contains("c opens the certificate"), "{screen}");
}

// ---------------------------------------------------------------- certificate

fn certificate() -> Certificate {
    let json = serde_json::json!({
        "request": {
            "id": Uuid::from_u128(0xE1).to_string(),
            "kind": "erasure",
            "subject": "j***@e***.com",
            "ticket": "DSR-1042\u{1b}[2J",
            "regime": "gdpr",
            "received_at": "2026-02-01T12:00:00Z",
            "due_at": "2026-03-03T12:00:00Z",
            "executed_at": "2026-02-20T09:00:00Z",
            "completed_at": "2026-02-20T09:01:00Z",
            "on_time": true,
        },
        "operators": {
            "created_by": "ada",
            "planned_by": "ada",
            "approved_by": "grace",
            "executed_by": "grace",
        },
        "plan_sha256": SHA,
        "tables": [
            {"table": "users", "action": "delete", "rows": 1, "reason": "the subject's account"}
        ],
    });
    Certificate {
        json,
        sha256: "beef".repeat(16),
    }
}

#[test]
fn the_certificate_shows_its_sha_and_scrolls_its_markdown() {
    let (mut s, cmds) = CertificateScreen::open(Uuid::from_u128(0xE1));
    let (id, action) = run_in(&cmds);
    assert_eq!(
        action,
        Action::ErasureCertificate {
            request: Uuid::from_u128(0xE1)
        }
    );
    s.update(&done(
        id,
        Reply::ErasureCertificate(Box::new(certificate())),
    ));
    let buf = render_screen(&s, 110, 24);
    let screen = text(&buf);
    insta::assert_snapshot!("erasure_certificate", screen);
    assert!(
        screen.contains(&format!("SHA-256 {}", "beef".repeat(16))),
        "{screen}"
    );
    assert!(screen.contains("# Erasure certificate"), "{screen}");
    assert!(
        !buf.content()
            .iter()
            .any(|c| c.symbol().chars().any(charon::core::sanitize::is_unsafe))
    );
    s.update(&key('j'));
    s.update(&key('j'));
    assert_eq!(s.scroll(), 2);
    let screen = text(&render_screen(&s, 110, 24));
    assert!(
        !screen.contains("# Erasure certificate"),
        "scrolled: {screen}"
    );
    assert!(
        screen.contains("SHA-256"),
        "the SHA stays visible: {screen}"
    );
    assert!(matches!(
        s.update(&special(KeyCode::Esc)).as_slice(),
        [Command::Pop]
    ));
}

// ---------------------------------------------------------------- reach

#[test]
fn the_palette_and_the_search_list_open_the_erasure_screen_for_compliance_only() {
    assert!(matches!(
        charon::tui::screens::palette::parse(":erasure").as_slice(),
        [Command::Pop, Command::OpenErasure]
    ));
    let mut app = signed_in(compliance("demo-compliance"));
    // Leave the search input (where ':' is text), then the palette.
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    for c in "erasure".chars() {
        app.update(key(c));
    }
    let effects = app.update(special(KeyCode::Enter));
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::Run {
                action: Action::ErasureList { .. },
                ..
            }]
        ),
        "{effects:?}"
    );
    assert_eq!(app.stack_names().last(), Some(&"erasure"));

    let mut support = compliance("demo-support");
    support.role = Role::Support;
    let mut app = signed_in(support);
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    for c in "erasure".chars() {
        app.update(key(c));
    }
    assert!(app.update(special(KeyCode::Enter)).is_empty());
    assert_ne!(app.stack_names().last(), Some(&"erasure"));
    assert!(matches!(app.message(), Some((Level::Error, m)) if m.contains("compliance")));

    // `e` on the search list (not while typing a query).
    let mut search = charon::tui::screens::search::SearchScreen::new();
    search.update(&special(KeyCode::Esc));
    assert!(matches!(
        search.update(&key('e')).as_slice(),
        [Command::OpenErasure]
    ));
}

#[test]
fn help_shows_the_erasure_keys() {
    let s = ErasureRequestScreen::loaded(planned_detail());
    let help = text(&render_screen(&HelpScreen::new(s.keymap()), 110, 40));
    for words in [
        "approve the shown plan",
        "execute",
        "run the external queue",
        "certificate",
    ] {
        assert!(help.contains(words), "{words}: {help}");
    }
    let l = ErasureScreen::new();
    let help = text(&render_screen(&HelpScreen::new(l.keymap()), 110, 30));
    assert!(help.contains("a new request"), "{help}");
}
