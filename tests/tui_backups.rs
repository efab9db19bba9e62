//! The Backups screen, driven by handing it messages and data (no
//! database), rendered on ratatui's TestBackend.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use crossterm::event::KeyCode;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;

use charon::core::action::{Action, Reply};
use charon::core::restore::source::SourceInfo;
use charon::core::restore::{Backup, HistoryRow, Verdict};
use charon::tui::keymap::Key;
use charon::tui::screen::{Command, Done, Msg, RequestId, Screen};
use charon::tui::screens::backups::{BackupsScreen, RunState};
use charon::tui::theme::{Meaning, Theme, ThemeSet};

fn theme() -> Theme {
    ThemeSet::bundled_only().load("dark").unwrap().theme
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 12, 0, 0).unwrap()
}

fn render(screen: &dyn Screen, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    let th = theme();
    t.draw(|f| screen.render(f, f.area(), &th)).unwrap();
    t.backend().buffer().clone()
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

fn done(id: RequestId, reply: Reply) -> Msg {
    Msg::Done(Done {
        id,
        result: Ok(reply),
    })
}

fn run_of(cmds: &[Command], f: impl Fn(&Action) -> bool) -> RequestId {
    cmds.iter()
        .find_map(|c| match c {
            Command::Run { id, action } if f(action) => Some(*id),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no such Run in {cmds:?}"))
}

fn backup(id: &str, minutes_old: i64) -> Backup {
    Backup {
        id: id.into(),
        path: PathBuf::from(format!("/var/backups/{id}")),
        size: 734_003_200,
        sha256_expected: Some("ab".repeat(32)),
        taken_at: Some(now() - chrono::TimeDelta::minutes(minutes_old)),
        header_error: None,
    }
}

fn history() -> Vec<HistoryRow> {
    (0..4)
        .map(|i| HistoryRow {
            id: uuid::Uuid::from_u128(i as u128 + 1),
            source: "nightly".into(),
            backup_id: format!("pluto-{i}.dump"),
            started_at: now() - chrono::TimeDelta::days(4 - i),
            passed: i != 2,
            restore_ms: Some(60_000 * (20 + 10 * i)),
            total_ms: 60_000 * (25 + 10 * i),
            backup_age_s: Some(60 * (5 + 3 * i)),
            failed_check: (i == 2).then(|| "row counts".to_string()),
        })
        .rev()
        .collect()
}

/// A screen with two sources, the first one's backups and the history.
fn loaded() -> (BackupsScreen, Vec<Command>) {
    let mut s = BackupsScreen::new();
    s.set_now(now());
    let start = s.start();
    let sources = run_of(&start, |a| matches!(a, Action::BackupSources));
    let hist = run_of(&start, |a| matches!(a, Action::RestoreTestHistory { .. }));
    let cmds = s.update(&done(
        sources,
        Reply::BackupSources {
            sources: vec![
                SourceInfo {
                    name: "nightly".into(),
                    kind: "dir".into(),
                    location: "/var/backups/pluto".into(),
                },
                SourceInfo {
                    name: "offsite".into(),
                    kind: "ssh".into(),
                    location: "charon@backup:22:/srv".into(),
                },
            ],
            rpo: Duration::from_secs(15 * 60),
            rto: Duration::from_secs(4 * 3600),
        },
    ));
    let list = run_of(
        &cmds,
        |a| matches!(a, Action::BackupsList { source } if source == "nightly"),
    );
    s.update(&done(
        list,
        Reply::Backups {
            source: "nightly".into(),
            kind: "dir".into(),
            location: "/var/backups/pluto".into(),
            backups: vec![
                backup("pluto-2026-11-22.dump", 2 * 24 * 60),
                backup("pluto-2026-11-24.dump", 5),
            ],
        },
    ));
    s.update(&done(hist, Reply::RestoreHistory(history())));
    (s, start)
}

fn cell_with<'a>(buf: &'a Buffer, needle: &str) -> &'a ratatui::buffer::Cell {
    let t = text(buf);
    let (y, line) = t
        .lines()
        .enumerate()
        .find(|(_, l)| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not drawn:\n{t}"));
    let x = line.find(needle).unwrap() + (needle.len() - needle.trim_start().len());
    let x = line[..x].chars().count() as u16;
    &buf[(x, y as u16)]
}

#[test]
fn backups_screen_shows_sources_backups_ages_history_and_chart() {
    let (s, _) = loaded();
    let buf = render(&s, 110, 30);
    insta::assert_snapshot!("backups", text(&buf));
    let th = theme();
    // Age against the RPO: 2 days is not fine (drawn unselected here) …
    assert_eq!(
        cell_with(&buf, "2d00h").fg,
        th.style(Meaning::Danger).fg.unwrap()
    );
    // … 5 minutes is (once the selection moves off its row).
    let mut s = s;
    s.update(&Msg::Key(Key::char('k')));
    let buf = render(&s, 110, 30);
    assert_eq!(
        // (not the "15m00s" of the RPO in the first line)
        cell_with(&buf, " 5m00s ").fg,
        th.style(Meaning::Ok).fg.unwrap()
    );
    let t = text(&buf);
    assert!(t.contains("RPO 15m00s  RTO 4h00m"), "{t}");
    assert!(t.contains("RTO") && t.contains("older"), "{t}");
    assert!(t.contains("row counts"), "{t}");
}

#[test]
fn enter_runs_the_selected_backup_with_live_progress_then_the_verdict() {
    let (mut s, _) = loaded();
    // The newest backup is selected first.
    let cmds = s.update(&Msg::Key(Key::plain(KeyCode::Enter)));
    let run = run_of(&cmds, |a| {
        matches!(a, Action::RestoreTestRun { source, backup }
            if source == "nightly" && backup.as_deref() == Some("pluto-2026-11-24.dump"))
    });
    assert!(s.animating());
    // A second Enter while it runs does not start another.
    let again = s.update(&Msg::Key(Key::plain(KeyCode::Enter)));
    assert!(again.iter().all(|c| !matches!(c, Command::Run { .. })));
    let t0 = Instant::now();
    s.update(&Msg::Tick(t0));
    s.update(&Msg::Progress {
        id: run,
        step: "restore".into(),
        done: 4,
        total: 14,
    });
    s.update(&Msg::Tick(t0 + Duration::from_secs(125)));
    let t = text(&render(&s, 110, 30));
    assert!(
        t.contains("running pluto-2026-11-24.dump: step 4/14 restore  2m05s"),
        "{t}"
    );
    // The verdict: a failure names its check; the history is reloaded.
    let v = Verdict::not_started(
        "nightly",
        "pluto-2026-11-24.dump",
        "cannot connect to backup",
    );
    let cmds = s.update(&done(
        run,
        Reply::RestoreTested {
            history_id: uuid::Uuid::nil(),
            verdict: Box::new(v),
        },
    ));
    assert!(matches!(s.run_state(), RunState::Done(_)));
    run_of(&cmds, |a| matches!(a, Action::RestoreTestHistory { .. }));
    let t = text(&render(&s, 110, 30));
    assert!(
        t.contains("FAIL pluto-2026-11-24.dump")
            && t.contains("checksum: cannot connect to backup"),
        "{t}"
    );
}

#[test]
fn tab_switches_source_and_esc_goes_back() {
    let (mut s, _) = loaded();
    let cmds = s.update(&Msg::Key(Key::plain(KeyCode::Tab)));
    run_of(
        &cmds,
        |a| matches!(a, Action::BackupsList { source } if source == "offsite"),
    );
    assert_eq!(s.selected_source().unwrap().name, "offsite");
    let cmds = s.update(&Msg::Key(Key::plain(KeyCode::BackTab)));
    run_of(
        &cmds,
        |a| matches!(a, Action::BackupsList { source } if source == "nightly"),
    );
    let cmds = s.update(&Msg::Key(Key::plain(KeyCode::Esc)));
    assert!(matches!(cmds.as_slice(), [Command::Pop]));
}

#[test]
fn hostile_backup_names_are_drawn_inert() {
    let mut s = BackupsScreen::new();
    s.set_now(now());
    let start = s.start();
    let sources = run_of(&start, |a| matches!(a, Action::BackupSources));
    let cmds = s.update(&done(
        sources,
        Reply::BackupSources {
            sources: vec![SourceInfo {
                name: "x".into(),
                kind: "dir".into(),
                location: "/b".into(),
            }],
            rpo: Duration::from_secs(900),
            rto: Duration::from_secs(3600),
        },
    ));
    let list = run_of(&cmds, |a| matches!(a, Action::BackupsList { .. }));
    s.update(&done(
        list,
        Reply::Backups {
            source: "x".into(),
            kind: "dir".into(),
            location: "/b".into(),
            backups: vec![backup("evil\u{1b}]0;pwned\u{7}\u{1b}[2J.dump", 1)],
        },
    ));
    let t = text(&render(&s, 110, 20));
    assert!(!t.contains('\u{1b}') && !t.contains('\u{7}'), "{t:?}");
}
