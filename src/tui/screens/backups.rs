//! The Backups screen (palette `:backups`, role sre): the configured
//! sources as tabs, the selected source's backups (time, age coloured
//! against the RPO, size, checksum state), `Enter` restore-tests the
//! selected backup with a live progress line (step, elapsed), and the
//! history of restore tests as a table and as a chart of restore duration
//! and backup age over time against the RTO and RPO lines.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{
    Axis, Block, Borders, Chart, Dataset, GraphType, Paragraph, Row, Table, TableState,
};

use crate::core::action::{Action, Reply};
use crate::core::restore::source::SourceInfo;
use crate::core::restore::{Backup, CHECKS, HistoryRow, Verdict};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, safe, safe_owned};

/// A restore test started from this screen.
#[derive(Debug, Clone)]
pub enum RunState {
    Idle,
    Running {
        id: RequestId,
        backup: String,
        /// The step now running (one of [`CHECKS`]).
        step: Option<&'static str>,
        started: Option<Instant>,
        elapsed: Duration,
    },
    Done(Box<Verdict>),
    Failed(String),
}

pub struct BackupsScreen {
    sources: Load<Vec<SourceInfo>>,
    rpo: Duration,
    rto: Duration,
    /// The selected source (tab).
    source: usize,
    backups: Load<Vec<Backup>>,
    history: Load<Vec<HistoryRow>>,
    pending_sources: Option<RequestId>,
    pending_backups: Option<RequestId>,
    pending_history: Option<RequestId>,
    run: RunState,
    nav: ListNav,
    /// "Now" for ages (set from ticks; tests set it).
    now: DateTime<Utc>,
}

impl Default for BackupsScreen {
    fn default() -> Self {
        BackupsScreen::new()
    }
}

impl BackupsScreen {
    pub fn new() -> BackupsScreen {
        BackupsScreen {
            sources: Load::Loading,
            rpo: Duration::from_secs(15 * 60),
            rto: Duration::from_secs(4 * 3600),
            source: 0,
            backups: Load::Loading,
            history: Load::Loading,
            pending_sources: None,
            pending_backups: None,
            pending_history: None,
            run: RunState::Idle,
            nav: ListNav::default(),
            now: Utc::now(),
        }
    }

    /// Asks for the sources and the history.
    pub fn start(&mut self) -> Vec<Command> {
        let id = RequestId::next();
        self.pending_sources = Some(id);
        let mut c = vec![Command::Run {
            id,
            action: Action::BackupSources,
        }];
        c.extend(self.load_history());
        c
    }

    /// For tests and a fixed clock: the time ages are measured from.
    pub fn set_now(&mut self, now: DateTime<Utc>) {
        self.now = now;
    }

    pub fn run_state(&self) -> &RunState {
        &self.run
    }

    pub fn selected_source(&self) -> Option<&SourceInfo> {
        match &self.sources {
            Load::Loaded(s) => s.get(self.source),
            _ => None,
        }
    }

    fn load_history(&mut self) -> Vec<Command> {
        let id = RequestId::next();
        self.pending_history = Some(id);
        vec![Command::Run {
            id,
            action: Action::RestoreTestHistory { limit: 200 },
        }]
    }

    fn load_backups(&mut self) -> Vec<Command> {
        let Some(src) = self.selected_source() else {
            return vec![];
        };
        let source = src.name.clone();
        let id = RequestId::next();
        self.pending_backups = Some(id);
        self.backups = Load::Loading;
        self.nav = ListNav::default();
        vec![Command::Run {
            id,
            action: Action::BackupsList { source },
        }]
    }

    fn backup_list(&self) -> &[Backup] {
        match &self.backups {
            Load::Loaded(b) => b,
            _ => &[],
        }
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(Context::Backups, key);
        if let Some(a) = action
            && self.nav.apply(a, self.backup_list().len())
        {
            return vec![];
        }
        let n = match &self.sources {
            Load::Loaded(s) => s.len(),
            _ => 0,
        };
        match action {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::NextTab) if n > 0 => {
                self.source = (self.source + 1) % n;
                self.load_backups()
            }
            Some(KeyAction::PrevTab) if n > 0 => {
                self.source = (self.source + n - 1) % n;
                self.load_backups()
            }
            Some(KeyAction::Open) => {
                if matches!(self.run, RunState::Running { .. }) {
                    return vec![Command::Notify("a restore test is already running".into())];
                }
                let Some(src) = self.selected_source().map(|s| s.name.clone()) else {
                    return vec![];
                };
                let Some(b) = self
                    .nav
                    .get(self.backup_list().len())
                    .and_then(|i| self.backup_list().get(i))
                    .map(|b| b.id.clone())
                else {
                    return vec![Command::Notify("no backup selected".into())];
                };
                let id = RequestId::next();
                self.run = RunState::Running {
                    id,
                    backup: b.clone(),
                    step: None,
                    started: None,
                    elapsed: Duration::ZERO,
                };
                vec![Command::Run {
                    id,
                    action: Action::RestoreTestRun {
                        source: src,
                        backup: Some(b),
                    },
                }]
            }
            _ => vec![],
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        let err = |f: &Failure| vec![Command::Error(f.message.clone())];
        if self.pending_sources == Some(id) {
            self.pending_sources = None;
            return match result {
                Ok(Reply::BackupSources { sources, rpo, rto }) => {
                    self.rpo = *rpo;
                    self.rto = *rto;
                    self.sources = Load::Loaded(sources.clone());
                    self.source = 0;
                    if sources.is_empty() {
                        self.backups = Load::Loaded(Vec::new());
                        vec![]
                    } else {
                        self.load_backups()
                    }
                }
                Ok(_) => vec![],
                Err(f) => {
                    self.sources = Load::Failed(f.message.clone());
                    err(f)
                }
            };
        }
        if self.pending_backups == Some(id) {
            self.pending_backups = None;
            match result {
                Ok(Reply::Backups { backups, .. }) => {
                    self.backups = Load::Loaded(backups.clone());
                    // The newest (last) backup is selected first.
                    self.nav.selected = backups.len().saturating_sub(1);
                }
                Ok(_) => {}
                Err(f) => self.backups = Load::Failed(f.message.clone()),
            }
            return vec![];
        }
        if self.pending_history == Some(id) {
            self.pending_history = None;
            match result {
                Ok(Reply::RestoreHistory(rows)) => self.history = Load::Loaded(rows.clone()),
                Ok(_) => {}
                Err(f) => self.history = Load::Failed(f.message.clone()),
            }
            return vec![];
        }
        if let RunState::Running { id: rid, .. } = self.run
            && rid == id
        {
            return match result {
                Ok(Reply::RestoreTested { verdict, .. }) => {
                    self.run = RunState::Done(verdict.clone());
                    self.load_history()
                }
                Ok(_) => vec![],
                Err(f) => {
                    self.run = RunState::Failed(f.message.clone());
                    err(f)
                }
            };
        }
        vec![]
    }

    fn age_style(&self, theme: &Theme, taken: Option<DateTime<Utc>>) -> ratatui::style::Style {
        match taken.map(|t| self.now - t) {
            Some(a) if a.num_seconds() >= 0 && a.to_std().unwrap_or_default() <= self.rpo => {
                theme.style(Meaning::Ok)
            }
            _ => theme.style(Meaning::Danger),
        }
    }
}

/// `3m05s`, `2h10m`, `4d03h`.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{}d{:02}h", s / 86_400, s / 3600 % 24)
    } else if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s / 60 % 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn size(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b as f64 / 1024.0)
    }
}

impl Screen for BackupsScreen {
    fn name(&self) -> &'static str {
        "backups"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            Msg::Progress { id, done, .. } => {
                if let RunState::Running { id: rid, step, .. } = &mut self.run
                    && rid == id
                {
                    *step = usize::try_from(*done)
                        .ok()
                        .and_then(|d| d.checked_sub(1))
                        .and_then(|i| CHECKS.get(i).copied());
                }
                vec![]
            }
            Msg::Tick(t) => {
                if let RunState::Running {
                    started, elapsed, ..
                } = &mut self.run
                {
                    let s = *started.get_or_insert(*t);
                    *elapsed = t.saturating_duration_since(s);
                }
                vec![]
            }
            _ => vec![],
        }
    }

    fn animating(&self) -> bool {
        matches!(self.run, RunState::Running { .. })
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let [tabs, list, run, lower] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Percentage(45),
            Constraint::Length(2),
            Constraint::Fill(1),
        ])
        .areas(area);

        // Sources as tabs.
        let mut spans = vec![Span::styled("Backups  ", theme.style(Meaning::Title))];
        match &self.sources {
            Load::Loading => spans.push(Span::styled("loading…", theme.style(Meaning::Muted))),
            Load::Failed(e) => {
                spans.push(Span::styled(safe_owned(e), theme.style(Meaning::Danger)))
            }
            Load::Loaded(s) if s.is_empty() => spans.push(Span::styled(
                "no backup sources configured ([backups.NAME] in the configuration)",
                theme.style(Meaning::Muted),
            )),
            Load::Loaded(s) => {
                for (i, src) in s.iter().enumerate() {
                    let style = if i == self.source {
                        theme.style(Meaning::Selection)
                    } else {
                        theme.style(Meaning::Text)
                    };
                    spans.push(Span::styled(
                        format!(" {} ({}) ", safe(&src.name), src.kind),
                        style,
                    ));
                    spans.push(Span::raw(" "));
                }
                spans.push(Span::styled(
                    format!("RPO {}  RTO {}", short(self.rpo), short(self.rto)),
                    theme.style(Meaning::Muted),
                ));
            }
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), tabs);

        // The selected source's backups.
        let title = self
            .selected_source()
            .map(|s| format!(" {} — {} ", safe(&s.name), safe(&s.location)))
            .unwrap_or_else(|| " backups ".into());
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(title, theme.style(Meaning::Title)));
        match &self.backups {
            Load::Loaded(list_rows) if !list_rows.is_empty() => {
                let rows = list_rows.iter().map(|b| {
                    let age = b
                        .taken_at
                        .map(|t| short((self.now - t).to_std().unwrap_or_default()))
                        .unwrap_or_else(|| "?".into());
                    let state = match (&b.sha256_expected, &b.header_error) {
                        (_, Some(e)) => safe_owned(e),
                        (Some(_), None) => "sha256 on file".into(),
                        (None, None) => "checked by the source".into(),
                    };
                    Row::new(vec![
                        Span::raw(safe_owned(&b.id)),
                        Span::raw(
                            b.taken_at
                                .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
                                .unwrap_or_else(|| "unknown".into()),
                        ),
                        Span::styled(age, self.age_style(theme, b.taken_at)),
                        Span::raw(size(b.size)),
                        Span::styled(state, theme.style(Meaning::Muted)),
                    ])
                });
                let table = Table::new(
                    rows,
                    [
                        Constraint::Fill(2),
                        Constraint::Length(16),
                        Constraint::Length(8),
                        Constraint::Length(10),
                        Constraint::Fill(1),
                    ],
                )
                .header(
                    Row::new(["backup", "taken (UTC)", "age", "size", "checksum"])
                        .style(theme.style(Meaning::Header)),
                )
                .row_highlight_style(theme.style(Meaning::Selection))
                .block(block);
                let mut state = TableState::default();
                let height = list.height.saturating_sub(3) as usize;
                *state.offset_mut() = self.nav.offset_for(height);
                state.select(self.nav.get(list_rows.len()));
                frame.render_stateful_widget(table, list, &mut state);
            }
            other => {
                let (text, m) = match other {
                    Load::Loading => ("loading…".to_string(), Meaning::Muted),
                    Load::Failed(e) => (safe_owned(e), Meaning::Danger),
                    _ => ("no backups".to_string(), Meaning::Muted),
                };
                frame.render_widget(
                    Paragraph::new(Span::styled(text, theme.style(m))).block(block),
                    list,
                );
            }
        }

        // The run line.
        let line = match &self.run {
            RunState::Idle => Line::from(Span::styled(
                "Enter: restore-test the selected backup   Tab: next source   Esc: back",
                theme.style(Meaning::Muted),
            )),
            RunState::Running {
                backup,
                step,
                elapsed,
                ..
            } => {
                let pos = step
                    .and_then(|s| CHECKS.iter().position(|c| *c == s))
                    .map(|i| i + 1)
                    .unwrap_or(0);
                Line::from(vec![
                    Span::styled("running ", theme.style(Meaning::Warning)),
                    Span::raw(format!(
                        "{}: step {pos}/{} {}  {}",
                        safe(backup),
                        CHECKS.len(),
                        step.unwrap_or("starting"),
                        short(*elapsed)
                    )),
                ])
            }
            RunState::Done(v) => {
                let (word, m) = if v.passed {
                    ("PASS", Meaning::Ok)
                } else {
                    ("FAIL", Meaning::Danger)
                };
                let mut spans = vec![
                    Span::styled(format!("{word} "), theme.style(m)),
                    Span::raw(format!(
                        "{} in {}",
                        safe(&v.backup.id),
                        short(Duration::from_millis(v.total_ms))
                    )),
                ];
                if let Some(c) = v.first_failure() {
                    spans.push(Span::styled(
                        format!("  {}: {}", c.name, safe(&c.reason)),
                        theme.style(Meaning::Danger),
                    ));
                }
                Line::from(spans)
            }
            RunState::Failed(e) => Line::from(Span::styled(
                format!("not run: {}", safe(e)),
                theme.style(Meaning::Danger),
            )),
        };
        frame.render_widget(Paragraph::new(line), run);

        // History: table and chart side by side.
        let [table_area, chart_area] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(lower);
        let hblock = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::Border))
            .title(Span::styled(" restore tests ", theme.style(Meaning::Title)));
        let rows: Vec<HistoryRow> = match &self.history {
            Load::Loaded(r) => r.clone(),
            _ => Vec::new(),
        };
        if let Load::Failed(e) = &self.history {
            frame.render_widget(
                Paragraph::new(Span::styled(safe_owned(e), theme.style(Meaning::Danger)))
                    .block(hblock),
                table_area,
            );
        } else {
            let trows = rows.iter().map(|r| {
                let (v, m) = if r.passed {
                    ("pass", Meaning::Ok)
                } else {
                    ("FAIL", Meaning::Danger)
                };
                Row::new(vec![
                    Span::raw(r.started_at.format("%m-%d %H:%M").to_string()),
                    Span::styled(v, theme.style(m)),
                    Span::raw(safe_owned(&r.source)),
                    Span::raw(
                        r.restore_ms
                            .map(|ms| short(Duration::from_millis(ms.max(0) as u64)))
                            .unwrap_or_else(|| "-".into()),
                    ),
                    Span::styled(
                        safe_owned(r.failed_check.as_deref().unwrap_or("")),
                        theme.style(Meaning::Muted),
                    ),
                ])
            });
            let table = Table::new(
                trows,
                [
                    Constraint::Length(11),
                    Constraint::Length(4),
                    Constraint::Fill(1),
                    Constraint::Length(7),
                    Constraint::Fill(1),
                ],
            )
            .header(
                Row::new(["started", "", "source", "restore", "failed"])
                    .style(theme.style(Meaning::Header)),
            )
            .block(hblock);
            frame.render_widget(table, table_area);
        }
        render_chart(frame, chart_area, theme, &rows, self.rpo, self.rto);
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::Backups, keymap::BACKUPS)]
    }

    fn context(&self) -> Context {
        Context::Backups
    }
}

/// Restore duration and backup age (minutes) over time, oldest left, with
/// the RTO and RPO as horizontal lines.
fn render_chart(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    rows: &[HistoryRow],
    rpo: Duration,
    rto: Duration,
) {
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.style(Meaning::Border))
        .title(Span::styled(
            " minutes: restore • age █ · RTO / RPO lines ",
            theme.style(Meaning::Title),
        ));
    let mut points: Vec<&HistoryRow> = rows.iter().collect();
    points.sort_by_key(|r| r.started_at);
    let min = |ms: i64| ms.max(0) as f64 / 60_000.0;
    let restore: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.restore_ms.map(|ms| (i as f64, min(ms))))
        .collect();
    let age: Vec<(f64, f64)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.backup_age_s.map(|s| (i as f64, s.max(0) as f64 / 60.0)))
        .collect();
    let n = points.len().max(2) as f64 - 1.0;
    let rto_m = rto.as_secs_f64() / 60.0;
    let rpo_m = rpo.as_secs_f64() / 60.0;
    let rto_line = [(0.0, rto_m), (n, rto_m)];
    let rpo_line = [(0.0, rpo_m), (n, rpo_m)];
    let top = restore
        .iter()
        .chain(age.iter())
        .map(|p| p.1)
        .fold(rto_m.max(rpo_m), f64::max)
        * 1.1;
    let datasets = vec![
        Dataset::default()
            .name("RTO")
            .graph_type(GraphType::Line)
            .marker(Marker::Braille)
            .style(theme.style(Meaning::Warning))
            .data(&rto_line),
        Dataset::default()
            .name("RPO")
            .graph_type(GraphType::Line)
            .marker(Marker::Braille)
            .style(theme.style(Meaning::Danger))
            .data(&rpo_line),
        Dataset::default()
            .name("restore")
            .graph_type(GraphType::Scatter)
            .marker(Marker::Dot)
            .style(theme.style(Meaning::Ok))
            .data(&restore),
        Dataset::default()
            .name("age")
            .graph_type(GraphType::Scatter)
            .marker(Marker::Block)
            .style(theme.style(Meaning::Text))
            .data(&age),
    ];
    let chart = Chart::new(datasets)
        .block(block)
        .x_axis(
            Axis::default()
                .style(theme.style(Meaning::Muted))
                .bounds([0.0, n.max(1.0)])
                .labels(["older", "newer"]),
        )
        .y_axis(
            Axis::default()
                .style(theme.style(Meaning::Muted))
                .bounds([0.0, top.max(1.0)])
                .labels(["0".to_string(), format!("{:.0}", top)]),
        );
    frame.render_widget(chart, area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(short(Duration::from_secs(185)), "3m05s");
        assert_eq!(short(Duration::from_secs(2 * 3600 + 600)), "2h10m");
        assert_eq!(short(Duration::from_secs(4 * 86_400 + 3 * 3600)), "4d03h");
        assert_eq!(size(2 << 20), "2.0 MiB");
    }
}
