//! TUI tests: screens are driven by handing them messages and data (no
//! database), and rendered on ratatui's TestBackend.

// Test helpers may unwrap: a failure here is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use uuid::Uuid;

use charon::core::action::{Action, GateInput, Reply};
use charon::core::console::{ConsoleInfo, GateStatus};
use charon::core::session::Role;
use charon::core::tenants::{
    BankConnection, Matched, Member, RecordCount, RecordKind, TenantDetail, TenantHit,
};
use charon::tui::app::{App, Effect, Level};
use charon::tui::keymap::{self, Key};
use charon::tui::screen::{Command, Done, Failure, Load, Msg, RequestId, Screen};
use charon::tui::screens::gate::GateScreen;
use charon::tui::screens::help::HelpScreen;
use charon::tui::screens::palette::PaletteScreen;
use charon::tui::screens::search::SearchScreen;
use charon::tui::screens::tenant::TenantScreen;
use charon::tui::theme::{Meaning, Theme, ThemeError, ThemeSet};

// ---------------------------------------------------------------- helpers

fn info(production: bool) -> ConsoleInfo {
    ConsoleInfo {
        operator: "ada".into(),
        role: Role::Support,
        environment: if production { "production" } else { "staging" }.into(),
        production,
        database: "pluto@db.internal".into(),
        demo: !production,
    }
}

fn theme() -> Theme {
    ThemeSet::bundled_only().load("dark").unwrap().theme
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/themes")
}

fn at(y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

fn hit(name: &str, matched: Matched) -> TenantHit {
    TenantHit {
        id: Uuid::new_v4(),
        name: name.into(),
        plan: "business".into(),
        country: "DE".into(),
        created_at: at(2023, 4, 5),
        matched,
    }
}

fn detail(name: &str) -> TenantDetail {
    let member = |name: &str, email: &str, role: &str| Member {
        user_id: Uuid::new_v4(),
        name: name.into(),
        email: email.into(),
        role: role.into(),
        since: at(2023, 5, 1),
    };
    TenantDetail {
        id: Uuid::from_u128(0x1234),
        name: name.into(),
        plan: "pro".into(),
        country: "FR".into(),
        created_at: at(2021, 2, 3),
        members: vec![
            member("J. D.", "j***@acme.test", "owner"),
            member("M. S.", "m***@acme.test", "accountant"),
            member("P. K.", "p***@acme.test", "employee"),
        ],
        banks: vec![BankConnection {
            institution: "First Platypus Bank".into(),
            status: "active".into(),
            accounts: 2,
            created_at: at(2022, 1, 1),
        }],
        records: RecordKind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| RecordCount {
                kind: *k,
                count: (i as i64 + 1) * 10,
                latest: (i != 5).then(|| at(2024, 6, 1 + i as u32)),
            })
            .collect(),
    }
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

fn later() -> Msg {
    Msg::Tick(Instant::now() + Duration::from_secs(1))
}

fn typed(screen: &mut dyn Screen, s: &str) -> Vec<Command> {
    s.chars().flat_map(|c| screen.update(&key(c))).collect()
}

/// The single search the commands ask for.
fn search_of(cmds: &[Command]) -> (RequestId, String) {
    match cmds {
        [
            Command::Run {
                id,
                action: Action::SearchTenants { query },
            },
        ] => (*id, query.clone()),
        other => panic!("expected one SearchTenants, got {other:?}"),
    }
}

fn done(id: RequestId, reply: Reply) -> Msg {
    Msg::Done(Done {
        id,
        result: Ok(reply),
    })
}

const OTP: &str = "cccccbhkevejvhgnrhbtvtgdhnnnchlhkjjrlvdgnjvc";

fn otp_gate() -> GateStatus {
    GateStatus {
        operator: "ada".into(),
        prompts: vec!["touch your YubiKey (it types a one-time password)".into()],
        demo_roles: vec![],
    }
}

fn demo_gate() -> GateStatus {
    GateStatus {
        operator: "demo".into(),
        prompts: vec!["demo: choose a role".into()],
        demo_roles: Role::ALL.to_vec(),
    }
}

/// The id of the one action of `effects` matching `f`.
fn run_of(effects: &[Effect], f: impl Fn(&Action) -> bool) -> RequestId {
    match effects {
        [Effect::Run { id, action }] if f(action) => *id,
        other => panic!("unexpected effects {other:?}"),
    }
}

/// From the effects after `Opened` (the GateStatus request): answers the
/// gate, types the OTP, answers `Authenticated(who)`; returns the id of the
/// first search.
fn pass_otp_gate(app: &mut App, effects: Vec<Effect>, who: ConsoleInfo) -> RequestId {
    let ask = run_of(&effects, |a| *a == Action::GateStatus);
    app.update(done(ask, Reply::Gate(otp_gate())));
    for c in OTP.chars() {
        assert!(app.update(key(c)).is_empty());
    }
    let auth = run_of(&app.update(special(KeyCode::Enter)), |a| {
        *a == Action::Authenticate(GateInput::Otp(OTP.into()))
    });
    let effects = app.update(done(auth, Reply::Authenticated(who)));
    run_of(
        &effects,
        |a| matches!(a, Action::SearchTenants { query } if query.is_empty()),
    )
}

/// Opens the console and passes the gate; returns the first search's id.
fn sign_in(app: &mut App, who: ConsoleInfo) -> RequestId {
    let open = run_of(&app.start(), |a| *a == Action::OpenConsole);
    let effects = app.update(done(open, Reply::Opened));
    pass_otp_gate(app, effects, who)
}

fn signed_in(who: ConsoleInfo) -> App {
    let mut app = App::new(who.clone(), ThemeSet::bundled_only(), theme());
    sign_in(&mut app, who);
    app
}

// ---------------------------------------------------------------- search

#[test]
fn typing_sends_one_search_for_the_typed_query_after_the_debounce() {
    let mut s = SearchScreen::new();
    assert!(typed(&mut s, "acme").is_empty(), "no search per keystroke");
    assert!(
        s.update(&Msg::Tick(Instant::now())).is_empty(),
        "still typing"
    );
    let (_, query) = search_of(&s.update(&later()));
    assert_eq!(query, "acme");
    // Nothing new typed: no second search.
    assert!(s.update(&later()).is_empty());
}

#[test]
fn results_with_the_latest_id_are_shown_and_stale_ones_dropped() {
    let mut s = SearchScreen::new();
    typed(&mut s, "ac");
    let (old, _) = search_of(&s.update(&later()));
    typed(&mut s, "me");
    let (new, query) = search_of(&s.update(&later()));
    assert_eq!(query, "acme");
    assert_ne!(old, new);

    // The newer reply arrives first, then the stale one: the stale is ignored.
    s.update(&done(
        new,
        Reply::Tenants(vec![
            hit("Acme Robotics", Matched::Name { similarity: 0.8 }),
            hit(
                "Acme Bakery",
                Matched::MemberEmail {
                    masked: "j***@acme.test".into(),
                },
            ),
        ]),
    ));
    s.update(&done(
        old,
        Reply::Tenants(vec![hit("Stale Old Result", Matched::Recent)]),
    ));
    let screen = text(&render_screen(&s, 100, 12));
    assert!(screen.contains("Acme Robotics"), "{screen}");
    assert!(screen.contains("Acme Bakery"), "{screen}");
    assert!(screen.contains("j***@acme.test"), "{screen}");
    assert!(screen.contains("name 80%"), "{screen}");
    assert!(screen.contains("business"), "plan shown\n{screen}");
    assert!(screen.contains("2023-04-05"), "created shown\n{screen}");
    assert!(!screen.contains("Stale Old Result"), "{screen}");
    assert!(screen.contains("read as name"), "{screen}");
}

#[test]
fn query_kind_is_shown() {
    for (q, label) in [
        ("jane@acme.test", "read as email"),
        ("+1 415 555 0134", "read as phone"),
        ("0c5e6a2e-4b7a-4c1e-9f0a-3d2b1c0a9e8f", "read as id"),
    ] {
        let mut s = SearchScreen::new();
        s.update(&Msg::SetQuery(q.into()));
        let screen = text(&render_screen(&s, 100, 8));
        assert!(screen.contains(label), "{q}: {screen}");
    }
    let s = SearchScreen::new();
    assert!(text(&render_screen(&s, 100, 8)).contains("read as recent"));
}

#[test]
fn arrows_move_while_typing_and_enter_opens_the_tenant() {
    let mut s = SearchScreen::new();
    let (id, q) = search_of(&s.update(&Msg::SetQuery(String::new())));
    assert_eq!(q, "");
    let hits = vec![
        hit("Alpha", Matched::Recent),
        hit("Beta", Matched::Recent),
        hit("Gamma", Matched::Recent),
    ];
    let beta = hits[1].id;
    s.update(&done(id, Reply::Tenants(hits)));
    s.update(&special(KeyCode::Down));
    s.update(&Msg::Key(Key::ctrl('n')));
    s.update(&Msg::Key(Key::ctrl('p')));
    assert_eq!(s.selected().unwrap().name, "Beta");
    assert_eq!(s.query(), "", "arrows are not typed");

    let cmds = s.update(&special(KeyCode::Enter));
    match cmds.as_slice() {
        [
            Command::Push(screen),
            Command::Run {
                action: Action::OpenTenant { business_id },
                ..
            },
        ] => {
            assert_eq!(screen.name(), "tenant");
            assert_eq!(*business_id, beta);
        }
        other => panic!("{other:?}"),
    }
}

/// Fail closed: when a search fails (the database went away), the hits of
/// the earlier query are not left on screen as if they answered this one.
#[test]
fn a_failed_search_shows_the_failure_not_the_earlier_hits() {
    let mut s = SearchScreen::new();
    let (id, _) = search_of(&s.update(&Msg::SetQuery(String::new())));
    s.update(&done(
        id,
        Reply::Tenants(vec![
            hit("Alpha", Matched::Recent),
            hit("Beta", Matched::Recent),
        ]),
    ));
    assert!(text(&render_screen(&s, 100, 8)).contains("Alpha"));
    let (id, _) = search_of(&s.update(&Msg::SetQuery("acme".into())));
    let cmds = s.update(&failed(
        id,
        Failure {
            message: "database unreachable — pluto: no answer within 15 s".into(),
            unreachable: true,
            mfa_required: false,
        },
    ));
    assert!(matches!(cmds.as_slice(), [Command::Error(_)]));
    let screen = text(&render_screen(&s, 100, 8));
    assert!(screen.contains("database unreachable"), "{screen}");
    assert!(!screen.contains("Alpha"), "{screen}");
    assert!(!screen.contains("Beta"), "{screen}");
    assert!(s.selected().is_none());
}

#[test]
fn list_mode_has_vim_keys_and_slash_returns_to_the_input() {
    let mut s = SearchScreen::new();
    let (id, _) = search_of(&s.update(&Msg::SetQuery(String::new())));
    let hits: Vec<TenantHit> = (0..30)
        .map(|i| hit(&format!("Tenant {i:02}"), Matched::Recent))
        .collect();
    s.update(&done(id, Reply::Tenants(hits)));
    s.update(&special(KeyCode::Esc));
    assert!(!s.is_typing());
    s.update(&key('j'));
    s.update(&key('j'));
    s.update(&key('k'));
    assert_eq!(s.selected().unwrap().name, "Tenant 01");
    s.update(&key('G'));
    assert_eq!(s.selected().unwrap().name, "Tenant 29");
    s.update(&key('g'));
    assert_eq!(s.selected().unwrap().name, "Tenant 00");
    render_screen(&s, 80, 14); // learns the page height (10 rows)
    s.update(&Msg::Key(Key::ctrl('d')));
    assert_eq!(s.selected().unwrap().name, "Tenant 04");
    s.update(&Msg::Key(Key::ctrl('u')));
    assert_eq!(s.selected().unwrap().name, "Tenant 00");
    // j in list mode is not typed.
    assert_eq!(s.query(), "");
    s.update(&key('/'));
    assert!(s.is_typing());
    typed(&mut s, "jk");
    assert_eq!(s.query(), "jk");
}

#[test]
fn a_failed_search_says_why() {
    let mut s = SearchScreen::new();
    let (id, _) = search_of(&s.update(&Msg::SetQuery("x".into())));
    let failure = Failure::from_error(&charon::core::Error::Unavailable {
        which: "pluto",
        detail: "connection refused".into(),
    });
    assert!(failure.message.starts_with("database unreachable — "));
    let cmds = s.update(&Msg::Done(Done {
        id,
        result: Err(failure),
    }));
    assert!(
        matches!(cmds.as_slice(), [Command::Error(m)] if m.contains("database unreachable — ") && m.contains("connection refused"))
    );
    let screen = text(&render_screen(&s, 100, 8));
    assert!(screen.contains("connection refused"), "{screen}");
}

// ---------------------------------------------------------------- tenant

#[test]
fn tenant_view_shows_the_detail() {
    let mut t = TenantScreen::loading(Uuid::from_u128(0x1234), "Acme Robotics", RequestId(77));
    assert_eq!(t.state(), &Load::Loading);
    assert!(text(&render_screen(&t, 100, 30)).contains("loading"));
    // Someone else's reply is ignored.
    t.update(&done(
        RequestId(76),
        Reply::Tenant(Box::new(detail("Wrong"))),
    ));
    assert_eq!(t.state(), &Load::Loading);
    t.update(&done(
        RequestId(77),
        Reply::Tenant(Box::new(detail("Acme Robotics"))),
    ));
    let screen = text(&render_screen(&t, 110, 30));
    for needle in [
        "Acme Robotics",
        "00000000-0000-0000-0000-000000001234",
        "pro",
        "FR",
        "2021-02-03",
        "latest activity 2024-06-05",
        "J. D.",
        "j***@acme.test",
        "owner",
        "accountant",
        "2023-05-01",
        "First Platypus Bank",
        "active",
        "transactions",
        "payroll entries",
        "60",
        "Members 3/3",
    ] {
        assert!(screen.contains(needle), "missing {needle:?}\n{screen}");
    }
    // Owners first, as the core orders them.
    assert!(screen.find("owner").unwrap() < screen.find("employee").unwrap());
}

#[test]
fn tenant_members_move_filter_and_back() {
    let mut t = TenantScreen::loaded(detail("Acme"));
    t.update(&key('j'));
    assert_eq!(t.selected_member().unwrap().role, "accountant");
    t.update(&key('G'));
    assert_eq!(t.selected_member().unwrap().role, "employee");
    t.update(&key('g'));
    assert_eq!(t.selected_member().unwrap().role, "owner");

    t.update(&key('/'));
    typed(&mut t, "acc");
    assert_eq!(t.filter(), "acc");
    assert_eq!(t.visible_members().len(), 1);
    let screen = text(&render_screen(&t, 100, 30));
    assert!(screen.contains("Members 1/3"), "{screen}");
    assert!(!screen.contains("employee"), "{screen}");
    // Enter keeps the filter; Esc clears it; a second Esc goes back.
    t.update(&special(KeyCode::Enter));
    assert_eq!(t.visible_members().len(), 1);
    assert!(t.update(&special(KeyCode::Esc)).is_empty());
    assert_eq!(t.visible_members().len(), 3);
    assert!(matches!(
        t.update(&special(KeyCode::Esc)).as_slice(),
        [Command::Pop]
    ));
}

// ---------------------------------------------------------------- hostile data

#[test]
fn hostile_strings_never_reach_the_buffer_raw() {
    let evil = "Evil\x1b[2J Corp\x1b]0;title\x07\u{202e}gnp.exe\u{9b}31m";
    let mut s = SearchScreen::new();
    let (id, _) = search_of(&s.update(&Msg::SetQuery(String::new())));
    let mut h = hit(
        evil,
        Matched::MemberEmail {
            masked: "a\x1b[31m***@x".into(),
        },
    );
    h.plan = "pro\x07".into();
    h.country = "\u{202e}DE".into();
    s.update(&done(id, Reply::Tenants(vec![h])));

    let mut d = detail(evil);
    d.members[0].name = "\x1b[1;1H".into();
    d.members[0].role = "owner\x1b]52;c;ZXZpbA==\x07".into();
    d.banks[0].institution = "Bank\x1b[?1049l".into();
    let t = TenantScreen::loaded(d);

    let bad = |c: char| charon::core::sanitize::is_unsafe(c);
    for (name, buf) in [
        ("search", render_screen(&s, 160, 10)),
        ("tenant", render_screen(&t, 160, 30)),
    ] {
        let screen = text(&buf);
        for cell in buf.content() {
            assert!(
                !cell.symbol().chars().any(bad),
                "{name}: raw control char {:?}\n{screen}",
                cell.symbol()
            );
        }
        assert!(
            screen.contains(r"Evil\x1b[2J Corp\x1b]0;title\x07\u{202e}gnp.exe"),
            "{name}: {screen}"
        );
    }
    let screen = text(&render_screen(&t, 160, 30));
    assert!(screen.contains(r"Bank\x1b[?1049l"), "{screen}");
}

// ---------------------------------------------------------------- help

#[test]
fn help_lists_every_binding_of_the_screen_from_the_keymap_table() {
    let search = SearchScreen::new();
    let help = HelpScreen::new(search.keymap());
    let screen = text(&render_screen(&help, 120, 60));
    let tables = [
        keymap::SEARCH_INPUT,
        keymap::SEARCH_LIST,
        keymap::ALWAYS,
        keymap::GLOBAL,
    ];
    for b in tables.iter().flat_map(|t| t.iter()) {
        assert!(screen.contains(b.desc), "missing {:?}\n{screen}", b.desc);
        assert!(
            screen.contains(&b.keys_label()),
            "missing {:?}\n{screen}",
            b.keys_label()
        );
    }
    // Exactly the table's rows (plus one title per section).
    let rows: usize = tables.iter().map(|t| t.len()).sum();
    assert_eq!(help.lines().len(), rows + tables.len());

    let tenant = TenantScreen::loaded(detail("Acme"));
    let help = HelpScreen::new(tenant.keymap());
    let screen = text(&render_screen(&help, 120, 60));
    for b in keymap::TENANT.iter().chain(keymap::TENANT_FILTER) {
        assert!(screen.contains(b.desc), "missing {:?}\n{screen}", b.desc);
    }
}

#[test]
fn question_mark_toggles_help_over_the_current_screen() {
    let mut app = signed_in(info(false));
    app.update(special(KeyCode::Esc)); // list mode: ? is not typed
    app.update(key('?'));
    assert_eq!(app.stack_names(), ["search", "help"]);
    let screen = text(&render_app(&app, 100, 40));
    assert!(screen.contains("back to the search input"), "{screen}");
    app.update(key('?'));
    assert_eq!(app.stack_names(), ["search"]);
    // While typing, ? is text.
    app.update(key('/'));
    app.update(key('?'));
    assert_eq!(app.stack_names(), ["search"]);
}

// ---------------------------------------------------------------- palette

fn palette_type(p: &mut PaletteScreen, s: &str) {
    for c in s.chars() {
        p.update(&key(c));
    }
}

#[test]
fn palette_completes_commands_and_theme_names() {
    let mut p = PaletteScreen::new(ThemeSet::bundled_only().names());
    palette_type(&mut p, "th");
    p.update(&special(KeyCode::Tab));
    assert_eq!(p.line(), "theme ");
    palette_type(&mut p, "l");
    p.update(&special(KeyCode::Tab));
    assert_eq!(p.line(), "theme light");
    match p.update(&special(KeyCode::Enter)).as_slice() {
        [Command::Pop, Command::SetTheme(t)] => assert_eq!(t, "light"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn palette_commands_act_on_the_app() {
    let mut app = signed_in(info(false));
    let light = ThemeSet::bundled_only().load("light").unwrap().theme;
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    assert_eq!(app.stack_names(), ["search", "palette"]);
    for c in "theme light".chars() {
        app.update(key(c));
    }
    app.update(special(KeyCode::Enter));
    assert_eq!(app.stack_names(), ["search"]);
    assert_eq!(app.theme(), &light);

    // :tenant goes to the search with that query.
    app.update(key(':'));
    for c in "tenant acme".chars() {
        app.update(key(c));
    }
    let effects = app.update(special(KeyCode::Enter));
    assert!(matches!(
        effects.as_slice(),
        [Effect::Run { action: Action::SearchTenants { query }, .. }] if query == "acme"
    ));

    // Unknown commands and themes say so in the message line.
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    for c in "frob".chars() {
        app.update(key(c));
    }
    app.update(special(KeyCode::Enter));
    let (level, msg) = app.message().unwrap();
    assert_eq!(*level, Level::Error);
    assert!(msg.contains("unknown command :frob"), "{msg}");
    assert!(text(&render_app(&app, 100, 20)).contains("unknown command :frob"));

    app.update(key(':'));
    for c in "theme nope".chars() {
        app.update(key(c));
    }
    app.update(special(KeyCode::Enter));
    assert!(app.message().unwrap().1.contains("no theme named \"nope\""));

    // :q quits.
    app.update(key(':'));
    app.update(key('q'));
    assert_eq!(app.update(special(KeyCode::Enter)), [Effect::Quit]);
}

// ---------------------------------------------------------------- app

#[test]
fn app_opens_the_console_first_then_searches_recent_tenants() {
    let mut app = App::new(info(false), ThemeSet::bundled_only(), theme());
    let effects = app.start();
    let open = match effects.as_slice() {
        [
            Effect::Run {
                id,
                action: Action::OpenConsole,
            },
        ] => *id,
        other => panic!("{other:?}"),
    };
    let effects = app.update(done(open, Reply::Opened));
    let search = pass_otp_gate(&mut app, effects, info(false));
    let effects = vec![Effect::Run {
        id: search,
        action: Action::SearchTenants {
            query: String::new(),
        },
    }];
    let search = match effects.as_slice() {
        [
            Effect::Run {
                id,
                action: Action::SearchTenants { query },
            },
        ] if query.is_empty() => *id,
        other => panic!("{other:?}"),
    };
    app.update(done(
        search,
        Reply::Tenants(vec![hit("Newest Co", Matched::Recent)]),
    ));
    let screen = text(&render_app(&app, 100, 20));
    assert!(screen.contains("Newest Co"), "{screen}");

    // Enter opens the tenant; its reply fills the tenant screen; Esc pops.
    let effects = app.update(special(KeyCode::Enter));
    let open_tenant = match effects.as_slice() {
        [
            Effect::Run {
                id,
                action: Action::OpenTenant { .. },
            },
        ] => *id,
        other => panic!("{other:?}"),
    };
    assert_eq!(app.stack_names(), ["search", "tenant"]);
    assert!(text(&render_app(&app, 100, 20)).contains("loading"));
    let mut d = detail("Newest Co");
    if let Some(Effect::Run {
        action: Action::OpenTenant { business_id },
        ..
    }) = effects.first()
    {
        d.id = *business_id;
    }
    app.update(done(open_tenant, Reply::Tenant(Box::new(d))));
    let screen = text(&render_app(&app, 100, 30));
    assert!(screen.contains("First Platypus Bank"), "{screen}");
    app.update(special(KeyCode::Esc));
    assert_eq!(app.stack_names(), ["search"]);
}

#[test]
fn quit_keys() {
    let mut app = signed_in(info(false));
    // Typing: q is text, Ctrl-C quits.
    assert!(app.update(key('q')).is_empty());
    assert_eq!(app.update(Msg::Key(Key::ctrl('c'))), [Effect::Quit]);
    app.update(special(KeyCode::Esc));
    assert_eq!(app.update(key('q')), [Effect::Quit]);
}

#[test]
fn status_bar_shows_who_where_and_demo() {
    let app = signed_in(info(false));
    let buf = render_app(&app, 100, 10);
    let status = text(&buf).lines().last().unwrap().to_string();
    for needle in ["ada (support)", "staging", "pluto@db.internal", "DEMO"] {
        assert!(status.contains(needle), "{needle}: {status}");
    }
    // Before the gate the role is not known yet: none is claimed.
    let app = App::new(info(false), ThemeSet::bundled_only(), theme());
    let buf = render_app(&app, 100, 10);
    let status = text(&buf).lines().last().unwrap().to_string();
    assert!(status.contains("ada (not signed in)"), "{status}");
    assert!(!status.contains("support"), "{status}");

    let app = App::new(info(true), ThemeSet::bundled_only(), theme());
    let buf = render_app(&app, 100, 10);
    let status = text(&buf).lines().last().unwrap().to_string();
    assert!(!status.contains("DEMO"), "{status}");
    let x = status.find("production").unwrap();
    let col = status[..x].chars().count() as u16;
    let danger = theme().style(Meaning::StatusEnvProduction);
    assert_eq!(buf[(col, 9)].fg, danger.fg.unwrap());
    assert_eq!(buf[(col, 9)].bg, danger.bg.unwrap());
}

#[test]
fn unreachable_database_is_reported_in_the_message_line() {
    let mut app = App::new(info(false), ThemeSet::bundled_only(), theme());
    let open = match app.start().as_slice() {
        [Effect::Run { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let err = charon::core::Error::Unavailable {
        which: "pluto",
        detail: "connection refused".into(),
    };
    app.update(Msg::Done(Done {
        id: open,
        result: Err(Failure::from_error(&err)),
    }));
    let screen = text(&render_app(&app, 120, 10));
    assert!(
        screen.contains("database unreachable — pluto: connection refused"),
        "{screen}"
    );
}

// ---------------------------------------------------------------- sizes

#[test]
fn narrow_and_tiny_terminals_do_not_panic() {
    let mut app = App::new(info(true), ThemeSet::bundled_only(), theme());
    let search = sign_in(&mut app, info(true));
    let long = "A very long tenant name that will never fit in forty columns".repeat(3);
    app.update(done(
        search,
        Reply::Tenants(vec![
            hit(
                &long,
                Matched::MemberPhone {
                    masked: "•••• 0134".into(),
                },
            ),
            hit("Ünïcödé 東京 Café", Matched::Recent),
        ]),
    ));
    let sizes = [(40, 12), (1, 1), (2, 2), (10, 3), (0, 0), (200, 5)];
    let check = |app: &App| {
        for (w, h) in sizes {
            render_app(app, w, h);
        }
    };
    check(&app);
    let narrow = text(&render_app(&app, 40, 12));
    assert!(narrow.contains("Ünïcödé"), "{narrow}");
    assert!(narrow.contains("production"), "{narrow}");
    insta::assert_snapshot!("search_40x12", narrow);
    for c in "東京 typing".chars() {
        app.update(key(c));
    }
    check(&app);
    app.update(special(KeyCode::Enter));
    check(&app); // tenant loading
    for s in [
        Box::new(TenantScreen::loaded(detail(&long))) as Box<dyn Screen>,
        Box::new(HelpScreen::new(SearchScreen::new().keymap())),
        Box::new(PaletteScreen::new(vec![])),
    ] {
        for (w, h) in sizes {
            render_screen(s.as_ref(), w, h);
        }
    }
    app.update(special(KeyCode::Esc));
    app.update(key('?'));
    check(&app);
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    check(&app);
}

// ---------------------------------------------------------------- themes

#[test]
fn every_bundled_theme_loads_without_warnings() {
    let set = ThemeSet::bundled_only();
    assert_eq!(set.names(), ["dark", "high-contrast", "light"]);
    for name in set.names() {
        let loaded = set.load(&name).unwrap();
        assert!(loaded.warnings.is_empty(), "{name}: {:?}", loaded.warnings);
    }
}

#[test]
fn a_bad_colour_is_an_error_naming_file_key_and_value() {
    let set = ThemeSet::new(Some(fixtures()));
    let err = set.load("bad-colour").unwrap_err();
    assert!(
        matches!(&err, ThemeError::BadColour { key, value, .. } if key == "palette.accent" && value == "#12345")
    );
    let msg = err.to_string();
    assert!(msg.contains("bad-colour.toml"), "{msg}");
    assert!(msg.contains("palette.accent"), "{msg}");
    assert!(msg.contains("#12345"), "{msg}");

    let msg = set.load("bad-style-colour").unwrap_err().to_string();
    assert!(msg.contains("bad-style-colour.toml"), "{msg}");
    assert!(msg.contains("styles.title.fg"), "{msg}");
    assert!(msg.contains("blurple"), "{msg}");
}

#[test]
fn unknown_keys_are_errors() {
    let set = ThemeSet::new(Some(fixtures()));
    let msg = set.load("unknown-style").unwrap_err().to_string();
    assert!(
        msg.contains("unknown-style.toml") && msg.contains("styles.titel"),
        "{msg}"
    );
    let msg = set.load("unknown-field").unwrap_err().to_string();
    assert!(
        msg.contains("unknown-field.toml") && msg.contains("colour"),
        "{msg}"
    );
}

#[test]
fn inherits_overrides_the_parent() {
    let set = ThemeSet::new(Some(fixtures()));
    let child = set.load("child").unwrap();
    assert!(child.warnings.is_empty(), "{:?}", child.warnings);
    let dark = theme();
    let child = child.theme;
    assert_eq!(
        child.style(Meaning::Title).fg,
        Some(ratatui::style::Color::Rgb(0, 255, 0))
    );
    // The overridden palette entry reaches the parent's styles.
    assert_eq!(
        child.style(Meaning::Danger).fg,
        Some(ratatui::style::Color::Rgb(255, 0, 0))
    );
    assert_eq!(child.style(Meaning::Ok), dark.style(Meaning::Ok));
    assert!(set.names().contains(&"child".to_string()));
}

#[test]
fn an_inherits_cycle_is_an_error() {
    let set = ThemeSet::new(Some(fixtures()));
    let err = set.load("cycle-a").unwrap_err();
    assert!(
        matches!(&err, ThemeError::Cycle { chain } if chain == &["cycle-a", "cycle-b", "cycle-a"])
    );
    assert!(err.to_string().contains("cycle-a -> cycle-b -> cycle-a"));
}

#[test]
fn a_missing_theme_lists_the_available_ones() {
    let err = ThemeSet::bundled_only().load("solarized").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("solarized") && msg.contains("dark, high-contrast, light"),
        "{msg}"
    );
}

// ---------------------------------------------------------------- snapshots

#[test]
fn snapshot_search_screen() {
    let mut app = App::new(info(false), ThemeSet::bundled_only(), theme());
    let search = sign_in(&mut app, info(false));
    let mut a = hit("Acme Robotics GmbH", Matched::Name { similarity: 0.72 });
    a.id = Uuid::from_u128(1);
    let mut b = hit(
        "Acme Bakery",
        Matched::MemberEmail {
            masked: "j***@acme.test".into(),
        },
    );
    b.country = "US".into();
    b.plan = "starter".into();
    app.update(done(search, Reply::Tenants(vec![a, b])));
    insta::assert_snapshot!("search", text(&render_app(&app, 90, 12)));
}

#[test]
fn snapshot_tenant_screen() {
    let t = TenantScreen::loaded(detail("Acme Robotics GmbH"));
    insta::assert_snapshot!("tenant", text(&render_screen(&t, 90, 22)));
}

#[test]
fn a_long_query_scrolls_and_keeps_the_cursor_in_the_field() {
    let mut s = SearchScreen::new();
    let long: String = (0..120)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    typed(&mut s, &format!("{long}XYZ"));
    let mut t = Terminal::new(TestBackend::new(40, 12)).unwrap();
    let th = theme();
    t.draw(|f| s.render(f, f.area(), &th)).unwrap();
    let screen = text(t.backend().buffer());
    assert!(screen.lines().nth(1).unwrap().contains("XYZ"), "{screen}");
    let cursor = t.get_cursor_position().unwrap();
    assert_eq!(cursor.y, 1);
    assert!(cursor.x > 3 && cursor.x < 39, "{cursor:?}");
}

#[test]
fn unused_palette_entries_and_bad_modifiers_are_reported() {
    let loaded = charon::tui::theme::load_file(&fixtures().join("unused-palette.toml")).unwrap();
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert!(loaded.warnings[0].contains("palette.orange"));

    let msg = ThemeSet::new(Some(fixtures()))
        .load("bad-modifier")
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bad-modifier.toml")
            && msg.contains("styles.text.modifiers")
            && msg.contains("sparkly"),
        "{msg}"
    );
}

#[test]
fn a_themes_dir_theme_can_be_chosen_from_the_palette() {
    let mut app = App::new(info(false), ThemeSet::new(Some(fixtures())), theme());
    sign_in(&mut app, info(false));
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    for c in "theme ch".chars() {
        app.update(key(c));
    }
    app.update(special(KeyCode::Tab));
    app.update(special(KeyCode::Enter));
    assert_eq!(app.theme().name, "child");
}

// ---------------------------------------------------------------- audit

use charon::core::audit::{AuditPage, AuditRecord, NewEntry, Outcome, Problem, Verdict};
use charon::tui::screens::audit::{AuditDetailScreen, AuditScreen, VerifyState, parse_filter};

fn record(seq: i64, operator: &str, action: &str, outcome: Outcome) -> AuditRecord {
    AuditRecord {
        seq,
        at: at(2024, 6, 1) + chrono::Duration::seconds(seq),
        entry: NewEntry {
            operator: operator.into(),
            role: "support".into(),
            key_id: Some("cccccbhkevej".into()),
            session_id: Uuid::from_u128(7),
            event_code: "T1002I".into(),
            action: action.into(),
            tenant_id: Some(Uuid::from_u128(0xabc)),
            target_table: Some("businesses".into()),
            target_pk: Some("42".into()),
            target_columns: vec!["name".into()],
            reason: None,
            outcome,
            error: None,
            details: serde_json::json!({"query_kind": "name", "len": 4}),
        },
        prev_hash: [0x11; 32],
        hash: [0xab; 32],
    }
}

fn page(from: i64, n: i64, next: Option<i64>) -> Reply {
    Reply::AuditPage(AuditPage {
        entries: (0..n)
            .map(|i| record(from - i, "alice", "tenant.search", Outcome::Allowed))
            .collect(),
        next_before: next,
    })
}

fn audit_list(cmds: &[Command]) -> (RequestId, Option<i64>, charon::core::audit::AuditFilter) {
    match cmds {
        [
            Command::Run {
                id,
                action: Action::AuditList { filter, before },
            },
        ] => (*id, *before, filter.clone()),
        other => panic!("expected one AuditList, got {other:?}"),
    }
}

fn loaded_audit(n: i64, next: Option<i64>) -> AuditScreen {
    let mut s = AuditScreen::new();
    let (id, before, _) = audit_list(&s.start());
    assert_eq!(before, None);
    s.update(&done(id, page(100, n, next)));
    s
}

#[test]
fn audit_screen_renders_a_page_newest_first() {
    let s = loaded_audit(3, None);
    let screen = text(&render_screen(&s, 140, 12));
    for needle in [
        "Seq",
        "Operator",
        "Outcome",
        "100",
        "alice",
        "tenant.search",
        "T1002I",
        "allowed",
        "support",
    ] {
        assert!(screen.contains(needle), "{needle}: {screen}");
    }
    let first = screen.find("100").unwrap();
    let last = screen.find(" 98 ").unwrap();
    assert!(first < last, "{screen}");
    insta::assert_snapshot!("audit", text(&render_screen(&s, 120, 8)));
}

#[test]
fn audit_paging_asks_with_before_at_the_end_of_the_list() {
    let mut s = loaded_audit(3, Some(98));
    assert!(s.update(&key('j')).is_empty());
    let (id, before, _) = audit_list(&s.update(&key('j')));
    assert_eq!(before, Some(98));
    // While the page is loading no second request goes out.
    assert!(s.update(&key('G')).is_empty());
    s.update(&done(id, page(97, 2, None)));
    assert_eq!(s.entries().len(), 5);
    assert_eq!(s.entries()[4].seq, 96);
    // Last page: nothing more asked.
    s.update(&key('G'));
    assert!(s.update(&key('j')).is_empty());
}

#[test]
fn audit_filter_line_is_parsed_and_reloads() {
    let f = parse_filter(&format!(
        "op:alice action:tenant.search outcome:denied tenant:{} since:2024-01-01 until:2024-01-31",
        Uuid::from_u128(5)
    ))
    .unwrap();
    assert_eq!(f.operator.as_deref(), Some("alice"));
    assert_eq!(f.action.as_deref(), Some("tenant.search"));
    assert_eq!(f.outcome, Some(Outcome::Denied));
    assert_eq!(f.tenant, Some(Uuid::from_u128(5)));
    assert_eq!(
        f.since,
        Some(Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap())
    );
    assert_eq!(
        f.until,
        Some(Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap())
    );
    assert!(
        parse_filter("outcome:maybe")
            .unwrap_err()
            .contains("bad outcome")
    );
    assert!(
        parse_filter("colour:red")
            .unwrap_err()
            .contains("unknown filter key")
    );
    assert!(parse_filter("alice").is_err());
    assert_eq!(parse_filter("  ").unwrap(), Default::default());

    let mut s = loaded_audit(3, None);
    s.update(&key('/'));
    assert_eq!(s.context(), keymap::Context::AuditFilter);
    assert!(typed(&mut s, "op:bob outcome:denied").is_empty());
    let (_, before, filter) = audit_list(&s.update(&special(KeyCode::Enter)));
    assert_eq!(before, None);
    assert_eq!(filter.operator.as_deref(), Some("bob"));
    assert_eq!(filter.outcome, Some(Outcome::Denied));
    assert!(text(&render_screen(&s, 100, 10)).contains("filter: op:bob outcome:denied"));
    // A bad filter is reported and the line stays open.
    s.update(&key('/'));
    typed(&mut s, " nope");
    assert!(
        matches!(s.update(&special(KeyCode::Enter)).as_slice(), [Command::Error(m)] if m.contains("not key:value"))
    );
    assert_eq!(s.context(), keymap::Context::AuditFilter);
}

#[test]
fn audit_enter_shows_the_entry_in_full() {
    let mut s = loaded_audit(3, None);
    s.update(&key('j'));
    let cmds = s.update(&special(KeyCode::Enter));
    let (id, mut detail) = match cmds.into_iter().collect::<Vec<_>>().as_mut_slice() {
        [
            Command::Push(_),
            Command::Run {
                id,
                action: Action::AuditShow { seq },
            },
        ] => {
            assert_eq!(*seq, 99);
            (*id, AuditDetailScreen::loading(99, *id))
        }
        other => panic!("{other:?}"),
    };
    assert!(text(&render_screen(&detail, 100, 30)).contains("loading"));
    detail.update(&done(
        id,
        Reply::AuditEntry(Box::new(record(
            99,
            "alice",
            "tenant.open",
            Outcome::Denied,
        ))),
    ));
    let screen = text(&render_screen(&detail, 100, 30));
    for needle in [
        "Audit entry 99",
        "cccccbhkevej",
        "businesses",
        "denied",
        &"11".repeat(32),
        &"ab".repeat(32),
        "\"query_kind\": \"name\"",
        "00000000-0000-0000-0000-000000000abc",
    ] {
        assert!(screen.contains(needle), "{needle}: {screen}");
    }
    assert!(matches!(
        detail.update(&special(KeyCode::Esc)).as_slice(),
        [Command::Pop]
    ));
}

#[test]
fn audit_verify_shows_a_gauge_then_the_verdict() {
    for (verdict, needle, meaning) in [
        (
            Verdict::Intact {
                from: 1,
                to: 100,
                entries: 100,
            },
            "chain intact",
            Meaning::Ok,
        ),
        (
            Verdict::Broken {
                seq: 42,
                problem: Problem::Changed { or_bad_key: false },
            },
            "chain BROKEN at seq 42",
            Meaning::Danger,
        ),
    ] {
        let mut s = loaded_audit(3, None);
        let id = match s.update(&key('v')).as_slice() {
            [
                Command::Run {
                    id,
                    action:
                        Action::AuditVerify {
                            from: None,
                            checkpoint: None,
                        },
                },
            ] => *id,
            other => panic!("{other:?}"),
        };
        s.update(&Msg::Progress {
            id,
            step: "verify".into(),
            done: 50,
            total: 100,
        });
        assert_eq!(
            s.verify_state(),
            &VerifyState::Running {
                id,
                done: 50,
                total: 100
            }
        );
        let screen = text(&render_screen(&s, 100, 10));
        assert!(screen.contains("verifying 50/100"), "{screen}");
        // Progress of another request is ignored.
        s.update(&Msg::Progress {
            id: RequestId::next(),
            step: "verify".into(),
            done: 1,
            total: 100,
        });
        assert!(text(&render_screen(&s, 100, 10)).contains("verifying 50/100"));
        s.update(&done(id, Reply::AuditVerdict(verdict.clone())));
        let buf = render_screen(&s, 100, 10);
        let screen = text(&buf);
        let line = screen.lines().last().unwrap();
        assert!(line.contains(needle), "{screen}");
        assert!(line.contains(&verdict.to_string()[..10]), "{line}");
        assert_eq!(buf[(0, 9)].fg, theme().style(meaning).fg.unwrap());
    }
}

#[test]
fn audit_hostile_strings_are_rendered_escaped() {
    let mut r = record(5, "ev\u{1b}[31mil", "tenant.search\u{7}", Outcome::Failed);
    r.entry.role = "a\u{202e}dmin".into();
    r.entry.reason = Some("line\nbreak\u{1b}]52;c;AAAA\u{7}".into());
    r.entry.details = serde_json::json!({"x": "\u{1b}[2J"});
    let mut s = AuditScreen::new();
    let (id, _, _) = audit_list(&s.start());
    s.update(&done(
        id,
        Reply::AuditPage(AuditPage {
            entries: vec![r.clone()],
            next_before: None,
        }),
    ));
    let d = AuditDetailScreen::loaded(r);
    for screen in [
        text(&render_screen(&s, 140, 10)),
        text(&render_screen(&d, 120, 40)),
    ] {
        assert!(!screen.contains('\u{1b}'), "{screen:?}");
        assert!(!screen.contains('\u{7}'), "{screen:?}");
        assert!(!screen.contains('\u{202e}'), "{screen:?}");
    }
}

#[test]
fn audit_is_reached_from_the_palette_by_auditors_only() {
    let mut app = signed_in(info(false));
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    typed_app(&mut app, "audit");
    assert!(app.update(special(KeyCode::Enter)).is_empty());
    assert_eq!(app.stack_names(), ["search"]);
    let (level, msg) = app.message().unwrap();
    assert_eq!(*level, Level::Error);
    assert!(
        msg.contains("auditor and admin") && msg.contains("support"),
        "{msg}"
    );

    let mut i = info(false);
    i.role = Role::Auditor;
    let mut app = signed_in(i);
    app.update(special(KeyCode::Esc));
    app.update(key(':'));
    typed_app(&mut app, "audit");
    let effects = app.update(special(KeyCode::Enter));
    assert!(
        matches!(
            effects.as_slice(),
            [Effect::Run {
                action: Action::AuditList { before: None, .. },
                ..
            }]
        ),
        "{effects:?}"
    );
    assert_eq!(app.stack_names(), ["search", "audit"]);
    let screen = text(&render_app(&app, 100, 12));
    assert!(screen.contains("Audit log"), "{screen}");
    // Help lists the audit keys.
    app.update(key('?'));
    let screen = text(&render_app(&app, 140, 40));
    assert!(screen.contains("verify the hash chain"), "{screen}");
}

fn typed_app(app: &mut App, s: &str) {
    for c in s.chars() {
        app.update(key(c));
    }
}

#[test]
fn audit_screens_at_40x12_do_not_panic() {
    let mut s = loaded_audit(30, Some(70));
    s.update(&key('v'));
    let d = AuditDetailScreen::loaded(record(1, "alice", "tenant.open", Outcome::Allowed));
    for (w, h) in [(40, 12), (1, 1), (0, 0), (10, 3), (200, 5)] {
        render_screen(&s, w, h);
        render_screen(&d, w, h);
    }
    s.update(&key('/'));
    render_screen(&s, 40, 12);
    render_screen(&s, 1, 1);
}

// ---------------------------------------------------------------- gate

#[test]
fn the_app_opens_on_the_gate_and_asks_for_its_status_after_open_console() {
    let mut app = App::new(info(false), ThemeSet::bundled_only(), theme());
    assert_eq!(app.stack_names(), ["gate"]);
    let open = run_of(&app.start(), |a| *a == Action::OpenConsole);
    let ask = run_of(&app.update(done(open, Reply::Opened)), |a| {
        *a == Action::GateStatus
    });
    assert_eq!(app.stack_names(), ["gate"]);
    app.update(done(ask, Reply::Gate(otp_gate())));
    let screen = text(&render_app(&app, 100, 14));
    for needle in ["operator ada", "touch your YubiKey", "Ctrl-a", "OTP"] {
        assert!(screen.contains(needle), "{needle}: {screen}");
    }
    assert!(!screen.contains("DEMO —"), "{screen}");
    insta::assert_snapshot!("gate_otp", screen);
}

#[test]
fn demo_gate_chooses_a_role_and_then_shows_search_with_the_new_identity() {
    let mut app = App::new(info(false), ThemeSet::bundled_only(), theme());
    let open = run_of(&app.start(), |a| *a == Action::OpenConsole);
    let ask = run_of(&app.update(done(open, Reply::Opened)), |a| {
        *a == Action::GateStatus
    });
    app.update(done(ask, Reply::Gate(demo_gate())));
    let screen = text(&render_app(&app, 100, 16));
    assert!(screen.contains("DEMO — software keys"), "{screen}");
    for r in Role::ALL {
        assert!(screen.contains(r.as_str()), "{r}: {screen}");
    }
    insta::assert_snapshot!("gate_demo", screen);
    app.update(key('j'));
    app.update(special(KeyCode::Down));
    app.update(key('j'));
    app.update(key('k'));
    let auth = run_of(&app.update(special(KeyCode::Enter)), |a| {
        *a == Action::Authenticate(GateInput::DemoRole(Role::Sre))
    });
    let mut who = info(false);
    who.operator = "demo-sre".into();
    who.role = Role::Sre;
    let effects = app.update(done(auth, Reply::Authenticated(who)));
    run_of(&effects, |a| matches!(a, Action::SearchTenants { .. }));
    assert_eq!(app.stack_names(), ["search"]);
    assert_eq!(app.info().role, Role::Sre);
    let status = text(&render_app(&app, 100, 10))
        .lines()
        .last()
        .unwrap()
        .to_string();
    assert!(status.contains("demo-sre (sre)"), "{status}");
}

#[test]
fn an_auth_error_is_shown_on_the_gate_and_nothing_else_is_reachable() {
    let mut app = App::new(info(false), ThemeSet::bundled_only(), theme());
    let open = run_of(&app.start(), |a| *a == Action::OpenConsole);
    let ask = run_of(&app.update(done(open, Reply::Opened)), |a| {
        *a == Action::GateStatus
    });
    app.update(done(ask, Reply::Gate(otp_gate())));
    for c in OTP.chars() {
        app.update(key(c));
    }
    let auth = run_of(&app.update(special(KeyCode::Enter)), |a| {
        matches!(a, Action::Authenticate(GateInput::Otp(_)))
    });
    let err = charon::core::Error::Auth(charon::core::auth::AuthFailure {
        login: "ada".into(),
        factor: charon::core::mfa::FactorKind::YubicoOtp,
        reason: charon::core::mfa::MfaError::Replayed {
            got: (3, 1),
            last: (3, 2),
        },
        attempts: 2,
        locked: false,
    });
    assert!(
        app.update(Msg::Done(Done {
            id: auth,
            result: Err(Failure::from_error(&err))
        }))
        .is_empty()
    );
    assert_eq!(app.stack_names(), ["gate"]);
    let buf = render_app(&app, 100, 14);
    let screen = text(&buf);
    assert!(screen.contains("replayed OTP"), "{screen}");
    assert!(screen.contains("3 attempts left"), "{screen}");
    let y = screen
        .lines()
        .position(|l| l.contains("replayed OTP"))
        .unwrap() as u16;
    let x = screen
        .lines()
        .nth(y as usize)
        .unwrap()
        .find("yubico_otp key rejected")
        .unwrap();
    let col = screen.lines().nth(y as usize).unwrap()[..x].chars().count() as u16;
    assert_eq!(buf[(col, y)].fg, theme().style(Meaning::Danger).fg.unwrap());

    // Ctrl-a asks the agent; the palette and search stay out of reach.
    run_of(&app.update(Msg::Key(Key::ctrl('a'))), |a| {
        *a == Action::Authenticate(GateInput::Agent)
    });
    app.update(Msg::SetQuery("acme".into()));
    assert_eq!(app.stack_names(), ["gate"]);
    for c in [':', 'q'] {
        // Typing: text into the OTP field, never a command.
        assert!(app.update(key(c)).is_empty());
    }
    assert_eq!(app.stack_names(), ["gate"]);
    assert_eq!(app.update(Msg::Key(Key::ctrl('c'))), [Effect::Quit]);

    // On the demo gate (not typing) q quits and : opens nothing.
    let mut g = App::new(info(false), ThemeSet::bundled_only(), theme());
    let open = run_of(&g.start(), |a| *a == Action::OpenConsole);
    let ask = run_of(&g.update(done(open, Reply::Opened)), |a| {
        *a == Action::GateStatus
    });
    g.update(done(ask, Reply::Gate(demo_gate())));
    assert!(g.update(key(':')).is_empty());
    assert_eq!(g.stack_names(), ["gate"]);
    assert_eq!(g.update(key('q')), [Effect::Quit]);
}

#[test]
fn the_typed_otp_is_masked() {
    let mut g = GateScreen::with_status(otp_gate());
    for c in OTP.chars() {
        g.update(&key(c));
    }
    let screen = text(&render_screen(&g, 120, 12));
    assert!(screen.contains("44/44"), "{screen}");
    assert!(!screen.contains(&OTP[..6]), "{screen}");
    assert!(!screen.contains(&OTP[12..20]), "{screen}");
    // Esc clears what was typed.
    g.update(&special(KeyCode::Esc));
    assert!(text(&render_screen(&g, 120, 12)).contains(" 0/44"));
}

#[test]
fn mfa_required_on_a_search_pushes_the_gate_and_passing_it_returns() {
    let mut app = signed_in(info(false));
    app.update(special(KeyCode::Esc));
    app.update(key('/'));
    for c in "acme".chars() {
        app.update(key(c));
    }
    let search = match app.update(later()).as_slice() {
        [
            Effect::Run {
                id,
                action: Action::SearchTenants { query },
            },
        ] if query == "acme" => *id,
        other => panic!("{other:?}"),
    };
    let err = charon::core::Error::MfaRequired("session idle for 15 minutes".into());
    let effects = app.update(Msg::Done(Done {
        id: search,
        result: Err(Failure::from_error(&err)),
    }));
    let ask = run_of(&effects, |a| *a == Action::GateStatus);
    assert_eq!(app.stack_names(), ["search", "gate"]);
    // A second refusal does not stack a second gate.
    let effects = app.update(Msg::Done(Done {
        id: search,
        result: Err(Failure::from_error(&err)),
    }));
    assert!(effects.is_empty(), "{effects:?}");
    app.update(done(ask, Reply::Gate(otp_gate())));
    let screen = text(&render_app(&app, 100, 14));
    assert!(
        screen.contains("session idled out — touch your key again"),
        "{screen}"
    );
    for c in OTP.chars() {
        app.update(key(c));
    }
    let auth = run_of(&app.update(special(KeyCode::Enter)), |a| {
        matches!(a, Action::Authenticate(GateInput::Otp(_)))
    });
    assert!(
        app.update(done(auth, Reply::Authenticated(info(false))))
            .is_empty()
    );
    assert_eq!(app.stack_names(), ["search"]);
    // The operator continues: the query is still there.
    let screen = text(&render_app(&app, 100, 14));
    assert!(screen.contains("acme"), "{screen}");
}

#[test]
fn gate_screens_at_40x12_do_not_panic() {
    let mut otp = GateScreen::with_status(otp_gate());
    for c in OTP.chars() {
        otp.update(&key(c));
    }
    let (loading, _) = GateScreen::ask(Some("session idled out — touch your key again".into()));
    for s in [
        &otp as &dyn Screen,
        &GateScreen::with_status(demo_gate()),
        &loading,
        &GateScreen::opening(),
    ] {
        for (w, h) in [(40, 12), (1, 1), (0, 0), (10, 3), (200, 5)] {
            render_screen(s, w, h);
        }
        let narrow = text(&render_screen(s, 40, 12));
        assert!(!narrow.contains(&OTP[..8]), "{narrow}");
    }
    let app = App::new(info(false), ThemeSet::bundled_only(), theme());
    render_app(&app, 40, 12);
}

// ---------------------------------------------------------------- records

use charon::core::records::{At, Cursor, Dir, Field, Kind, MaskedRecord, Page, Pk, Route, SortBy};
use charon::tui::screens::records::{
    RecordScreen, RecordsScreen, parse_filter as parse_records_filter,
};

const TENANT: Uuid = Uuid::from_u128(0x1234);

fn field(name: &str, value: Option<&str>, personal: bool) -> Field {
    Field {
        name: name.into(),
        value: value.map(Into::into),
        personal,
        category: if personal { "contact.email" } else { "none" },
        mask: if personal { "email" } else { "none" },
    }
}

fn txn(id: i64, merchant: &str, email: &str) -> MaskedRecord {
    MaskedRecord {
        kind: Kind::Transactions,
        id: Pk::Int(id),
        fields: vec![
            field("id", Some(&id.to_string()), false),
            field("posted_at", Some("2024-06-01T08:00:00Z"), false),
            field("amount_cents", Some(&(id * 100).to_string()), false),
            field("merchant", Some(merchant), false),
            field("payer_email", Some(email), true),
            field("description", None, false),
        ],
    }
}

fn cursor(kind: &str, pk: i64) -> Cursor {
    Cursor::parse(&format!("{kind}:date:asc:1700000000000000:{pk}")).unwrap()
}

fn txn_page(next: Option<i64>, prev: Option<i64>) -> Page {
    Page {
        kind: Kind::Transactions,
        rows: vec![
            txn(41, "Coffee\x1b]52;c;ZXZpbA==\x07 Bar", "j***@g***.com"),
            txn(42, "Platypus Books", "m***@a***.test"),
            txn(43, "Taxi \u{202e}gnp", "p***@x***.org"),
        ],
        next: next.map(|n| cursor("transactions", n)),
        prev: prev.map(|n| cursor("transactions", n)),
    }
}

/// The single `RecordsList` the commands ask for: (id, kind, query).
fn records_list(cmds: &[Command]) -> (RequestId, Kind, charon::core::records::Query) {
    let runs: Vec<_> = cmds
        .iter()
        .filter_map(|c| match c {
            Command::Run {
                id,
                action:
                    Action::RecordsList {
                        tenant,
                        kind,
                        query,
                    },
            } => {
                assert_eq!(*tenant, TENANT);
                Some((*id, *kind, query.clone()))
            }
            _ => None,
        })
        .collect();
    match runs.as_slice() {
        [one] => one.clone(),
        other => panic!("expected one RecordsList, got {other:?} from {cmds:?}"),
    }
}

/// A records screen showing `txn_page(Some(43), Some(41))`.
fn loaded_records() -> RecordsScreen {
    let mut s = RecordsScreen::new(TENANT, "Acme");
    let (id, _, _) = records_list(&s.start());
    s.update(&done(id, Reply::Records(txn_page(Some(43), Some(41)))));
    s
}

fn trip() -> MaskedRecord {
    MaskedRecord {
        kind: Kind::Trips,
        id: Pk::Int(7),
        fields: vec![
            field("id", Some("7"), false),
            field("started_at", Some("2024-06-01T08:00:00Z"), false),
            field("distance_m", Some("12345"), false),
            field("purpose", None, false),
            Field {
                name: "driver_email".into(),
                value: Some("d***@f***.com".into()),
                personal: true,
                category: "contact.email",
                mask: "email",
            },
        ],
    }
}

fn route(points: Vec<(f64, f64)>) -> Route {
    Route {
        trip_id: 7,
        points,
        distance_m: 12_345,
        started_at: at(2024, 6, 1),
        ended_at: at(2024, 6, 1) + chrono::Duration::seconds(3900),
        duration_s: 3900,
    }
}

fn berlin() -> Vec<(f64, f64)> {
    vec![
        (52.52, 13.40),
        (52.53, 13.42),
        (52.55, 13.45),
        (52.54, 13.49),
        (52.51, 13.50),
    ]
}

fn braille_cells(buf: &Buffer) -> usize {
    buf.content()
        .iter()
        .filter(|c| {
            c.symbol()
                .chars()
                .any(|ch| ('\u{2801}'..='\u{28ff}').contains(&ch))
        })
        .count()
}

#[test]
fn r_on_a_tenant_opens_records_for_the_first_kind_at_the_first_page() {
    let mut t = TenantScreen::loaded(detail("Acme"));
    let cmds = t.update(&key('r'));
    match cmds.first() {
        Some(Command::Push(s)) => assert_eq!(s.name(), "records"),
        other => panic!("{other:?}"),
    }
    let (_, kind, query) = records_list(&cmds);
    assert_eq!(kind, Kind::Transactions);
    assert_eq!(kind, Kind::ALL[0]);
    assert_eq!(query.at, At::First);
    assert_eq!((query.sort, query.dir), (SortBy::Date, Dir::Asc));
}

#[test]
fn a_records_page_renders_masked_values_and_escapes_hostile_strings() {
    let s = loaded_records();
    let buf = render_screen(&s, 120, 12);
    let screen = text(&buf);
    assert!(screen.contains("transactions"), "{screen}");
    assert!(screen.contains("j***@g***.com"), "{screen}");
    assert!(screen.contains("Platypus Books"), "{screen}");
    assert!(screen.contains("NULL"), "{screen}");
    assert!(
        screen.contains(r"Coffee\x1b]52;c;ZXZpbA==\x07 Bar"),
        "{screen}"
    );
    for cell in buf.content() {
        assert!(
            !cell.symbol().chars().any(charon::core::sanitize::is_unsafe),
            "raw control char {:?}\n{screen}",
            cell.symbol()
        );
    }
    // Personal fields in the theme's masked style.
    let masked = theme().style(Meaning::Masked);
    let y = (0..buf.area.height)
        .find(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("m***@a***.test")
        })
        .unwrap();
    let x = (0..buf.area.width)
        .find(|x| buf[(*x, y)].symbol() == "m")
        .unwrap();
    assert_eq!(buf[(x, y)].fg, masked.fg.unwrap());
    insta::assert_snapshot!("records", screen);
}

#[test]
fn paging_keys_send_keyset_positions() {
    let mut s = loaded_records();
    let (_, kind, q) = records_list(&s.update(&key('n')));
    assert_eq!(kind, Kind::Transactions);
    assert_eq!(q.at, At::After(cursor("transactions", 43)));

    let mut s = loaded_records();
    let (_, _, q) = records_list(&s.update(&special(KeyCode::PageUp)));
    assert_eq!(q.at, At::Before(cursor("transactions", 41)));

    let mut s = loaded_records();
    let (_, _, q) = records_list(&s.update(&key('G')));
    assert_eq!(q.at, At::Last);
    let (_, _, q) = records_list(&s.update(&key('g')));
    assert_eq!(q.at, At::First);

    // The last page: `n` asks for nothing.
    let mut s = RecordsScreen::new(TENANT, "Acme");
    let (id, _, _) = records_list(&s.start());
    s.update(&done(id, Reply::Records(txn_page(None, Some(41)))));
    assert!(
        !s.update(&key('n'))
            .iter()
            .any(|c| matches!(c, Command::Run { .. }))
    );
}

#[test]
fn switching_tabs_sends_records_list_for_that_kind() {
    let mut s = loaded_records();
    let (_, kind, q) = records_list(&s.update(&special(KeyCode::Tab)));
    assert_eq!(kind, Kind::Receipts);
    assert_eq!(q.at, At::First);
    let (_, kind, _) = records_list(&s.update(&key(']')));
    assert_eq!(kind, Kind::Invoices);
    let (_, kind, _) = records_list(&s.update(&key('[')));
    assert_eq!(kind, Kind::Receipts);
    let (_, kind, _) = records_list(&s.update(&key('8')));
    assert_eq!(kind, Kind::BankConnections);
    let (_, kind, _) = records_list(&s.update(&special(KeyCode::Tab)));
    assert_eq!(kind, Kind::Transactions, "wraps around");
    let (_, kind, _) = records_list(&s.update(&special(KeyCode::BackTab)));
    assert_eq!(kind, Kind::BankConnections);
}

#[test]
fn sort_is_offered_only_where_the_kind_has_an_amount() {
    let mut s = loaded_records();
    let (_, _, q) = records_list(&s.update(&key('s')));
    assert_eq!(q.sort, SortBy::Amount);
    let (_, _, q) = records_list(&s.update(&key('o')));
    assert_eq!(
        (q.sort, q.dir, q.at),
        (SortBy::Amount, Dir::Desc, At::First)
    );

    // Shifts have no amount: `s` sends nothing, and switching there sorted
    // by amount falls back to the date.
    let (_, kind, q) = records_list(&s.update(&key('5')));
    assert_eq!(kind, Kind::Shifts);
    assert_eq!(q.sort, SortBy::Date);
    let cmds = s.update(&key('s'));
    assert!(
        !cmds.iter().any(|c| matches!(c, Command::Run { .. })),
        "{cmds:?}"
    );
    assert!(!Kind::Shifts.has_amount());
}

#[test]
fn stale_record_replies_are_dropped() {
    let mut s = RecordsScreen::new(TENANT, "Acme");
    let (old, _, _) = records_list(&s.start());
    let (new, kind, _) = records_list(&s.update(&special(KeyCode::Tab)));
    assert_eq!(kind, Kind::Receipts);
    let mut receipts = txn_page(None, None);
    receipts.kind = Kind::Receipts;
    receipts.rows.truncate(1);
    receipts.rows[0].fields[3].value = Some("Fresh Receipt".into());
    s.update(&done(new, Reply::Records(receipts)));
    let mut stale = txn_page(None, None);
    stale.rows[0].fields[3].value = Some("Stale Transaction".into());
    s.update(&done(old, Reply::Records(stale)));
    let screen = text(&render_screen(&s, 120, 10));
    assert!(screen.contains("Fresh Receipt"), "{screen}");
    assert!(!screen.contains("Stale Transaction"), "{screen}");
}

#[test]
fn a_forbidden_records_list_is_shown_in_the_message_line() {
    let mut s = RecordsScreen::new(TENANT, "Acme");
    let (id, _, _) = records_list(&s.start());
    let cmds = s.update(&Msg::Done(Done {
        id,
        result: Err(Failure {
            message: "forbidden: records.list is not allowed for role viewer".into(),
            unreachable: false,
            mfa_required: false,
        }),
    }));
    assert!(
        matches!(cmds.as_slice(), [Command::Error(m)] if m.contains("forbidden")),
        "{cmds:?}"
    );
    assert!(matches!(s.state(), Load::Failed(_)));
    let screen = text(&render_screen(&s, 100, 8));
    assert!(screen.contains("could not load transactions"), "{screen}");
}

#[test]
fn the_filter_line_is_parsed_into_a_filter_and_reloads() {
    let f =
        parse_records_filter("coffee bar from:2024-01-01 to:2024-02-01 min:100 max:500").unwrap();
    assert_eq!(f.text.as_deref(), Some("coffee bar"));
    assert_eq!(f.date_from.unwrap().to_string(), "2024-01-01");
    assert_eq!(f.date_to.unwrap().to_string(), "2024-02-01");
    assert_eq!((f.amount_min, f.amount_max), (Some(100), Some(500)));
    assert!(parse_records_filter("from:yesterday").is_err());
    assert!(parse_records_filter("min:lots").is_err());
    assert_eq!(parse_records_filter("  ").unwrap(), Default::default());

    let mut s = loaded_records();
    assert!(s.update(&key('/')).is_empty());
    assert!(
        typed(&mut s, "taxi min:5 q").is_empty(),
        "typed, not acted on"
    );
    let (_, _, q) = records_list(&s.update(&special(KeyCode::Enter)));
    assert_eq!(q.filter.text.as_deref(), Some("taxi q"));
    assert_eq!(q.filter.amount_min, Some(5));
    assert_eq!(q.at, At::First);
    // A kind without an amount is not asked with amount bounds.
    let (_, kind, q) = records_list(&s.update(&key('7')));
    assert_eq!(kind, Kind::Members);
    assert_eq!(q.filter.amount_min, None);
    assert_eq!(q.filter.text.as_deref(), Some("taxi q"));
}

#[test]
fn enter_opens_the_record_with_record_show() {
    let mut s = loaded_records();
    s.update(&key('j'));
    let cmds = s.update(&special(KeyCode::Enter));
    let (screen, show) = match cmds.as_slice() {
        [
            Command::Push(screen),
            Command::Run {
                id,
                action:
                    Action::RecordShow {
                        tenant,
                        kind,
                        id: pk,
                    },
            },
        ] => {
            assert_eq!(
                (*tenant, *kind, *pk),
                (TENANT, Kind::Transactions, Pk::Int(42))
            );
            (screen, *id)
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(screen.name(), "record");

    let (mut d, cmds) = RecordScreen::open(TENANT, Kind::Transactions, Pk::Int(42));
    assert_eq!(cmds.len(), 1, "no route for a transaction");
    let id = match cmds.as_slice() {
        [Command::Run { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    assert_ne!(id, show);
    d.update(&done(
        id,
        Reply::Record(Box::new(txn(42, "Platypus Books", "m***@a***.test"))),
    ));
    let screen = text(&render_screen(&d, 100, 12));
    for needle in [
        "transactions 42",
        "merchant",
        "Platypus Books",
        "payer_email",
        "● m***@a***.test",
        "description",
        "NULL",
    ] {
        assert!(screen.contains(needle), "{needle}\n{screen}");
    }
    assert!(matches!(
        d.update(&special(KeyCode::Esc)).as_slice(),
        [Command::Pop]
    ));
}

#[test]
fn a_trip_detail_sends_trip_route_and_draws_it_on_a_canvas() {
    let (mut d, cmds) = RecordScreen::open(TENANT, Kind::Trips, Pk::Int(7));
    let (show, route_id) = match cmds.as_slice() {
        [
            Command::Run {
                id: a,
                action:
                    Action::RecordShow {
                        kind: Kind::Trips, ..
                    },
            },
            Command::Run {
                id: b,
                action: Action::TripRoute { tenant, trip_id: 7 },
            },
        ] => {
            assert_eq!(*tenant, TENANT);
            (*a, *b)
        }
        other => panic!("{other:?}"),
    };
    let loading = text(&render_screen(&d, 100, 16));
    assert!(loading.contains("loading"), "{loading}");
    d.update(&done(route_id, Reply::Route(route(berlin()))));
    d.update(&done(show, Reply::Record(Box::new(trip()))));
    let buf = render_screen(&d, 100, 16);
    let screen = text(&buf);
    assert!(braille_cells(&buf) >= 5, "{screen}");
    assert!(screen.contains("12.3 km"), "{screen}");
    assert!(screen.contains("1:05"), "{screen}");
    assert!(screen.contains("d***@f***.com"), "{screen}");
    insta::assert_snapshot!("trip_detail", screen);

    // A route the data map hides.
    let hidden = RecordScreen::loaded(trip(), Some(route(vec![])));
    let buf = render_screen(&hidden, 100, 16);
    let screen = text(&buf);
    assert!(screen.contains("route hidden by the data map"), "{screen}");
    assert_eq!(braille_cells(&buf), 0, "{screen}");
    // A single point still draws.
    let one = RecordScreen::loaded(trip(), Some(route(vec![(52.5, 13.4)])));
    assert!(braille_cells(&render_screen(&one, 100, 16)) >= 1);
}

#[test]
fn records_screens_at_narrow_sizes_do_not_panic() {
    let mut s = loaded_records();
    let wide = RecordScreen::loaded(trip(), Some(route(berlin())));
    let hidden = RecordScreen::loaded(trip(), Some(route(vec![])));
    let (loading, _) = RecordScreen::open(TENANT, Kind::Trips, Pk::Int(7));
    for (w, h) in [(40, 12), (1, 1), (2, 2), (10, 3), (0, 0), (200, 5)] {
        render_screen(&s, w, h);
        render_screen(&wide, w, h);
        render_screen(&hidden, w, h);
        render_screen(&loading, w, h);
        render_screen(&HelpScreen::new(s.keymap()), w, h);
    }
    let narrow = text(&render_screen(&s, 40, 12));
    assert!(narrow.contains("id"), "{narrow}");
    assert!(narrow.contains("‹ 1/8 transactions ›"), "{narrow}");
    insta::assert_snapshot!("records_40x12", narrow);
    s.update(&key('/'));
    typed(
        &mut s,
        "a very long filter line that does not fit in forty columns",
    );
    for (w, h) in [(40, 12), (1, 1)] {
        render_screen(&s, w, h);
    }
}

#[test]
fn help_on_records_lists_its_keys() {
    let s = loaded_records();
    let help = HelpScreen::new(s.keymap());
    let screen = text(&render_screen(&help, 100, 60));
    for needle in [
        "next page",
        "last page",
        "next record type",
        "sort by date",
        "from:YYYY-MM-DD",
    ] {
        assert!(screen.contains(needle), "{needle}\n{screen}");
    }
}

// ---------------------------------------------------------------- PIV

#[test]
fn the_piv_pin_is_masked_and_sent_with_enter() {
    let mut g = GateScreen::with_status(otp_gate());
    assert_eq!(g.context(), keymap::Context::GateOtp);
    assert!(g.update(&Msg::Key(Key::ctrl('p'))).is_empty());
    assert_eq!(g.context(), keymap::Context::GatePin);
    assert!(typed(&mut g, "918273").is_empty(), "q and ? are typed");
    let screen = text(&render_screen(&g, 100, 14));
    assert!(!screen.contains("918273"), "{screen}");
    assert!(screen.contains("PIN ••••••"), "{screen}");
    let id = match g.update(&special(KeyCode::Enter)).as_slice() {
        [
            Command::Run {
                id,
                action: Action::Authenticate(GateInput::Piv { pin }),
            },
        ] => {
            assert_eq!(pin, "918273");
            *id
        }
        other => panic!("{other:?}"),
    };
    g.update(&Msg::Done(Done {
        id,
        result: Err(Failure {
            message: "no PC/SC daemon running (pcscd)".into(),
            unreachable: false,
            mfa_required: false,
        }),
    }));
    let buf = render_screen(&g, 100, 14);
    let screen = text(&buf);
    assert!(!screen.contains("918273"), "{screen}");
    assert!(
        screen.contains("no PC/SC daemon running (pcscd)"),
        "{screen}"
    );
    let y = (0..buf.area.height)
        .find(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, *y)].symbol())
                .collect::<String>()
                .contains("no PC/SC")
        })
        .unwrap();
    let x = (0..buf.area.width)
        .find(|x| buf[(*x, y)].symbol() == "n")
        .unwrap();
    assert_eq!(buf[(x, y)].fg, theme().style(Meaning::Danger).fg.unwrap());
    // Ctrl-p goes back to the OTP field.
    g.update(&Msg::Key(Key::ctrl('p')));
    assert_eq!(g.context(), keymap::Context::GateOtp);
    for (w, h) in [(40, 12), (1, 1)] {
        render_screen(&g, w, h);
    }
}

#[test]
fn in_the_app_r_opens_records_a_forbidden_reply_goes_to_the_message_line_and_esc_returns() {
    let mut app = signed_in(info(false));
    let search = run_of(&app.update(Msg::SetQuery("acme".into())), |a| {
        matches!(a, Action::SearchTenants { .. })
    });
    let h = hit("Acme", Matched::Recent);
    let tenant_id = h.id;
    app.update(done(search, Reply::Tenants(vec![h])));
    let open = run_of(&app.update(special(KeyCode::Enter)), |a| {
        matches!(a, Action::OpenTenant { .. })
    });
    let mut d = detail("Acme");
    d.id = tenant_id;
    app.update(done(open, Reply::Tenant(Box::new(d))));

    let list = run_of(&app.update(key('r')), |a| {
        matches!(
            a,
            Action::RecordsList { tenant, kind: Kind::Transactions, query }
                if *tenant == tenant_id && query.at == At::First
        )
    });
    assert_eq!(app.stack_names(), ["search", "tenant", "records"]);
    app.update(Msg::Done(Done {
        id: list,
        result: Err(Failure {
            message: "forbidden: records.list needs support, compliance or auditor".into(),
            unreachable: false,
            mfa_required: false,
        }),
    }));
    let (level, message) = app.message().unwrap();
    assert_eq!(*level, Level::Error);
    assert!(message.contains("forbidden"), "{message}");
    let screen = text(&render_app(&app, 100, 14));
    assert!(screen.contains("forbidden: records.list"), "{screen}");

    // `?` shows the records keys; Esc closes it, Esc again back to the tenant.
    app.update(key('?'));
    let help = text(&render_app(&app, 100, 60));
    assert!(help.contains("next record type"), "{help}");
    app.update(special(KeyCode::Esc));
    app.update(special(KeyCode::Esc));
    assert_eq!(app.stack_names(), ["search", "tenant"]);
}

#[test]
fn record_field_names_are_sanitised_and_wide_characters_fit() {
    let mut r = txn(44, "東京 Café 東京 Café", "x***@y***.jp");
    r.fields[5].name = "note\x1b[31m".into();
    r.fields[5].value = Some("\u{202e}evil".into());
    let d = RecordScreen::loaded(r.clone(), None);
    let mut s = RecordsScreen::new(TENANT, "Acme");
    let (id, _, _) = records_list(&s.start());
    s.update(&done(
        id,
        Reply::Records(Page {
            kind: Kind::Transactions,
            rows: vec![r],
            next: None,
            prev: None,
        }),
    ));
    for buf in [render_screen(&d, 120, 12), render_screen(&s, 120, 8)] {
        let screen = text(&buf);
        assert!(screen.contains(r"note\x1b[31m"), "{screen}");
        assert!(screen.contains(r"\u{202e}evil"), "{screen}");
        assert!(screen.contains("東") && screen.contains("Café"), "{screen}");
        assert!(
            !buf.content()
                .iter()
                .any(|c| c.symbol().chars().any(charon::core::sanitize::is_unsafe)),
            "{screen}"
        );
    }
}

// ---------------------------------------------------------------- step-up

fn step_up_error() -> Failure {
    Failure::from_error(&charon::core::Error::MfaRequired(
        "records.reveal needs a fresh touch of your key (step-up)".into(),
    ))
}

fn failed(id: RequestId, f: Failure) -> Msg {
    Msg::Done(Done { id, result: Err(f) })
}

fn demo_info(role: Role) -> ConsoleInfo {
    ConsoleInfo {
        operator: format!("demo-{role}"),
        role,
        environment: "demo".into(),
        production: false,
        database: "pluto@localhost".into(),
        demo: true,
    }
}

#[test]
fn a_step_up_refusal_pushes_the_prompt_and_the_demo_touch_resends_the_action() {
    let mut app = signed_in(demo_info(Role::Compliance));
    let action = Action::RedactApply {
        preview: Uuid::from_u128(7),
        reason: "TICKET-1".into(),
    };
    // A screen asks for an action that needs a fresh touch.
    let (asked, _) = {
        let id = RequestId::next();
        let effects = app.push(
            Box::new(charon::tui::screens::help::HelpScreen::new(vec![])),
            vec![Command::Run {
                id,
                action: action.clone(),
            }],
        );
        assert!(matches!(effects.as_slice(), [Effect::Run { id: i, .. }] if *i == id));
        (id, ())
    };
    let effects = app.update(failed(asked, step_up_error()));
    assert!(effects.is_empty(), "{effects:?}");
    assert_eq!(app.stack_names().last(), Some(&"step-up"));
    assert!(!app.gated(), "a step-up is not the gate");
    let screen = text(&render_app(&app, 100, 20));
    assert!(screen.contains("confirm the redaction"), "{screen}");
    assert!(screen.contains("demo-compliance"), "{screen}");
    // Enter touches the demo software key for exactly this action.
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
    // SteppedUp: the prompt goes and the action is sent again, new id.
    let again = match app.update(done(step, Reply::SteppedUp)).as_slice() {
        [Effect::Run { id, action: a }] if *a == action => *id,
        other => panic!("{other:?}"),
    };
    assert_ne!(again, asked);
    assert_ne!(app.stack_names().last(), Some(&"step-up"));
}

#[test]
fn a_failed_step_up_is_shown_in_danger_and_esc_cancels() {
    let mut app = signed_in(info(true));
    let id = RequestId::next();
    let action = Action::RedactApply {
        preview: Uuid::from_u128(9),
        reason: "r".into(),
    };
    app.push(
        Box::new(charon::tui::screens::help::HelpScreen::new(vec![])),
        vec![Command::Run { id, action }],
    );
    app.update(failed(id, step_up_error()));
    assert_eq!(app.stack_names().last(), Some(&"step-up"));
    for c in OTP.chars() {
        assert!(app.update(key(c)).is_empty());
    }
    let screen = text(&render_app(&app, 100, 20));
    assert!(screen.contains("44/44"), "{screen}");
    assert!(!screen.contains(&OTP[..6]), "{screen}");
    assert!(!screen.contains(&OTP[12..24]), "{screen}");
    let step = match app.update(special(KeyCode::Enter)).as_slice() {
        [
            Effect::Run {
                id,
                action:
                    Action::StepUp {
                        input: GateInput::Otp(o),
                        ..
                    },
            },
        ] if o == OTP => *id,
        other => panic!("{other:?}"),
    };
    app.update(failed(
        step,
        Failure {
            message: "the OTP was replayed".into(),
            unreachable: false,
            mfa_required: false,
        },
    ));
    let buf = render_app(&app, 100, 20);
    let screen = text(&buf);
    assert!(screen.contains("the OTP was replayed"), "{screen}");
    // The PIV PIN is shown only as dots.
    app.update(Msg::Key(Key::ctrl('p')));
    for c in "424242".chars() {
        app.update(key(c));
    }
    let screen = text(&render_app(&app, 100, 20));
    assert!(screen.contains("PIN ••••••"), "{screen}");
    assert!(!screen.contains("4242"), "{screen}");
    // Esc cancels: the prompt goes, nothing is sent.
    assert!(app.update(special(KeyCode::Esc)).is_empty());
    assert_ne!(app.stack_names().last(), Some(&"step-up"));
}

#[test]
fn an_idle_mfa_required_still_pushes_the_gate_not_the_step_up() {
    let mut app = signed_in(info(false));
    let id = RequestId::next();
    app.push(
        Box::new(charon::tui::screens::help::HelpScreen::new(vec![])),
        vec![Command::Run {
            id,
            action: Action::GateStatus,
        }],
    );
    let err = charon::core::Error::MfaRequired("the session was idle too long".into());
    app.update(failed(id, Failure::from_error(&err)));
    assert!(app.gated());
    assert!(!app.stack_names().contains(&"step-up"));
}

// ---------------------------------------------------------------- reveal

use charon::core::records::Revealed;
use std::sync::Arc;

fn revealed(field: &str, value: &str) -> Reply {
    Reply::Revealed {
        revealed: Arc::new(Revealed {
            kind: Kind::Transactions,
            id: Pk::Int(42),
            field: field.into(),
            category: "contact.email",
            value: charon::core::mfa::Secret::new(Some(value.into())),
        }),
        show_for: Duration::from_secs(30),
    }
}

/// A detail screen of `txn(42, ..)` for `role`, with `payer_email` selected.
fn detail_for(role: Role) -> RecordScreen {
    let mut d = RecordScreen::loaded(txn(42, "Kiosk", "j***@g***.com"), None)
        .with_tenant(TENANT)
        .with_role(role);
    for _ in 0..4 {
        d.update(&key('j'));
    }
    assert_eq!(d.selected_field(), Some("payer_email"));
    d
}

fn run_in(cmds: &[Command]) -> (RequestId, Action) {
    match cmds {
        [Command::Run { id, action }] => (*id, action.clone()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn reveal_asks_a_reason_sends_reveal_shows_the_value_and_hides_it_after_the_ticks() {
    let mut d = detail_for(Role::Support);
    // A reason is needed.
    assert!(d.update(&key('v')).is_empty());
    let screen = text(&render_screen(&d, 100, 14));
    assert!(screen.contains("reason or ticket"), "{screen}");
    assert!(
        matches!(d.update(&special(KeyCode::Enter)).as_slice(), [Command::Error(m)] if m.contains("reason"))
    );
    // Typing: `q` and `v` are text here.
    assert!(typed(&mut d, "SUP-42 q").is_empty());
    let (id, action) = run_in(&d.update(&special(KeyCode::Enter)));
    assert_eq!(
        action,
        Action::Reveal {
            tenant: TENANT,
            kind: Kind::Transactions,
            id: Pk::Int(42),
            field: "payer_email".into(),
            reason: "SUP-42 q".into(),
        }
    );
    // The value replaces the mask, sanitised, with a countdown.
    d.update(&done(
        id,
        revealed("payer_email", "jane.doe@gmail.com\u{1b}]52;c;x\u{7}"),
    ));
    let t0 = Instant::now();
    d.update(&Msg::Tick(t0));
    assert!(d.animating());
    let buf = render_screen(&d, 100, 14);
    let screen = text(&buf);
    assert!(screen.contains("jane.doe@gmail.com"), "{screen}");
    assert!(screen.contains("hides in 30s"), "{screen}");
    assert!(!screen.contains('\u{1b}'), "{screen}");
    assert!(!screen.contains("j***@g***.com"), "{screen}");
    d.update(&Msg::Tick(t0 + Duration::from_secs(20)));
    assert!(text(&render_screen(&d, 100, 14)).contains("hides in 10s"));
    // Hidden again after show_for.
    d.update(&Msg::Tick(t0 + Duration::from_secs(31)));
    assert!(!d.animating());
    let screen = text(&render_screen(&d, 100, 14));
    assert!(!screen.contains("jane.doe"), "{screen}");
    assert!(screen.contains("j***@g***.com"), "{screen}");
}

#[test]
fn roles_that_may_not_reveal_get_no_v_and_help_does_not_offer_it() {
    for role in [Role::Sre, Role::Auditor, Role::Admin] {
        let mut d = detail_for(role);
        assert!(d.update(&key('v')).is_empty());
        assert_eq!(d.context(), keymap::Context::Record, "{role}");
        let help = text(&render_screen(&HelpScreen::new(d.keymap()), 100, 30));
        assert!(!help.contains("reveal"), "{role}: {help}");
    }
    let d = detail_for(Role::Support);
    let help = text(&render_screen(&HelpScreen::new(d.keymap()), 100, 30));
    assert!(
        help.contains("reveal the selected personal field"),
        "{help}"
    );
}

#[test]
fn a_reveal_through_the_app_steps_up_and_the_screen_gets_the_value() {
    let who = demo_info(Role::Support);
    let mut app = signed_in(who);
    let d = RecordScreen::loaded(txn(42, "Kiosk", "j***@g***.com"), None).with_tenant(TENANT);
    app.push(Box::new(d), vec![]);
    for _ in 0..4 {
        app.update(key('j'));
    }
    app.update(key('v'));
    typed_app(&mut app, "SUP-1");
    let (asked, action) = match app.update(special(KeyCode::Enter)).as_slice() {
        [Effect::Run { id, action }] => (*id, action.clone()),
        other => panic!("{other:?}"),
    };
    assert!(matches!(action, Action::Reveal { .. }));
    app.update(failed(asked, step_up_error()));
    let screen = text(&render_app(&app, 100, 20));
    assert!(screen.contains("confirm reveal of payer_email"), "{screen}");
    let step = match app.update(special(KeyCode::Enter)).as_slice() {
        [
            Effect::Run {
                id,
                action:
                    Action::StepUp {
                        input: GateInput::DemoRole(Role::Support),
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
    // The reply to the re-sent request reaches the screen that asked.
    app.update(done(again, revealed("payer_email", "jane.doe@gmail.com")));
    app.update(Msg::Tick(Instant::now()));
    assert!(app.animating());
    let screen = text(&render_app(&app, 100, 20));
    assert!(screen.contains("jane.doe@gmail.com"), "{screen}");
}

// ---------------------------------------------------------------- redaction

use charon::tui::screens::records::RedactView;

#[test]
fn a_support_role_gets_no_x_and_help_does_not_offer_redaction() {
    let mut d = detail_for(Role::Support);
    assert!(d.update(&key('x')).is_empty());
    assert_eq!(d.context(), keymap::Context::Record);
    let help = text(&render_screen(&HelpScreen::new(d.keymap()), 100, 30));
    assert!(!help.contains("redact"), "{help}");
    let c = detail_for(Role::Compliance);
    let help = text(&render_screen(&HelpScreen::new(c.keymap()), 100, 40));
    assert!(help.contains("redact the selected field"), "{help}");
}

#[test]
fn redaction_previews_then_applies_with_the_token_after_a_reason() {
    let mut d = detail_for(Role::Compliance);
    assert!(d.update(&key('x')).is_empty());
    let screen = text(&render_screen(&d, 100, 20));
    assert!(screen.contains("card numbers"), "{screen}");
    assert!(screen.contains("the whole value (NULL)"), "{screen}");
    d.update(&key('j'));
    let (pid, action) = run_in(&d.update(&special(KeyCode::Enter)));
    assert_eq!(
        action,
        Action::RedactPreview {
            tenant: TENANT,
            kind: Kind::Transactions,
            id: Pk::Int(42),
            field: "payer_email".into(),
            how: charon::core::records::How::Span(charon::core::detect::Detector::Iban),
        }
    );
    // `Preview` cannot be built outside the core (a private field): the
    // screen is handed what the reply becomes.
    let _ = pid;
    let token = Uuid::from_u128(0xabc);
    d.show_preview(RedactView {
        token,
        field: "payer_email".into(),
        before_masked: "IBAN DE** **** 3000\u{1b}[2J".into(),
        after: Some("IBAN [REDACTED:iban]".into()),
        matches: 1,
    });
    let screen = text(&render_screen(&d, 100, 20));
    assert!(screen.contains("before IBAN DE** **** 3000"), "{screen}");
    assert!(screen.contains("after  IBAN [REDACTED:iban]"), "{screen}");
    assert!(screen.contains("1 match(es)"), "{screen}");
    assert!(!screen.contains('\u{1b}'), "{screen}");
    // y asks for a reason, then RedactApply carries the token.
    assert!(d.update(&key('y')).is_empty());
    assert!(typed(&mut d, "DPO-7").is_empty());
    let (aid, action) = run_in(&d.update(&special(KeyCode::Enter)));
    assert_eq!(
        action,
        Action::RedactApply {
            preview: token,
            reason: "DPO-7".into(),
        }
    );
    let cmds = d.update(&done(
        aid,
        Reply::Redacted(charon::core::records::AppliedRedaction {
            batch_id: Uuid::from_u128(1),
            fields: 1,
            matches: 1,
        }),
    ));
    assert!(
        matches!(cmds.first(), Some(Command::Notify(m)) if m == "redacted 1 match(es)"),
        "{cmds:?}"
    );
    // The record is shown again as it is now.
    assert!(matches!(
        cmds.get(1),
        Some(Command::Run {
            action: Action::RecordShow { .. },
            ..
        })
    ));
}

#[test]
fn zero_matches_are_said_and_apply_is_not_offered_and_n_cancels() {
    let mut d = detail_for(Role::Compliance);
    d.show_preview(RedactView {
        token: Uuid::from_u128(5),
        field: "payer_email".into(),
        before_masked: "j***@g***.com".into(),
        after: Some("j***@g***.com".into()),
        matches: 0,
    });
    let screen = text(&render_screen(&d, 100, 20));
    assert!(
        screen.contains("no matches — nothing to redact"),
        "{screen}"
    );
    assert!(!screen.contains("apply"), "{screen}");
    assert!(d.update(&key('y')).is_empty());
    assert_eq!(d.context(), keymap::Context::RecordRedactPreview);
    d.update(&key('n'));
    assert_eq!(d.context(), keymap::Context::Record);
    // Esc cancels too; Esc in the chooser closes it.
    d.update(&key('x'));
    d.update(&special(KeyCode::Esc));
    assert_eq!(d.context(), keymap::Context::Record);
}

#[test]
fn record_detail_modes_at_narrow_sizes_do_not_panic() {
    let mut d = detail_for(Role::Compliance);
    for (w, h) in [(40, 12), (20, 6), (10, 3), (1, 1)] {
        render_screen(&d, w, h);
    }
    d.update(&key('x'));
    for (w, h) in [(40, 12), (20, 6), (10, 3), (1, 1)] {
        render_screen(&d, w, h);
    }
    d.update(&special(KeyCode::Esc));
    d.update(&key('v'));
    typed(
        &mut d,
        "a long reason that does not fit in a narrow terminal",
    );
    for (w, h) in [(40, 12), (20, 6), (10, 3), (1, 1)] {
        render_screen(&d, w, h);
    }
    let prompt = charon::tui::screens::stepup::StepUpScreen::new(
        RequestId::next(),
        Action::RedactApply {
            preview: Uuid::nil(),
            reason: "r".into(),
        },
        None,
    );
    for (w, h) in [(40, 12), (20, 6), (10, 3), (1, 1)] {
        render_screen(&prompt, w, h);
    }
}
