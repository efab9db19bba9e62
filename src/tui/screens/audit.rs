//! The audit log screen (palette `:audit`, roles auditor and admin): entries
//! newest first, one page at a time (keyset: the next page is asked for with
//! `before = next_before` when the selection reaches the end), a `/` filter
//! line, Enter for one entry in full, `v` to verify the chain with a
//! progress gauge and the verdict.

use chrono::{DateTime, NaiveDate, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Gauge, Paragraph, Row, Table, TableState, Wrap};
use tui_input::Input;
use uuid::Uuid;

use crate::core::action::{Action, Reply};
use crate::core::audit::{AuditFilter, AuditRecord, Outcome, Verdict};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, safe_owned};

/// The filter keys, for help and error messages.
pub const FILTER_HELP: &str = "op:<login> action:<name> outcome:allowed|denied|failed tenant:<uuid> since:<YYYY-MM-DD|RFC 3339> until:<…>";

fn parse_time(v: &str, end_of_day: bool) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
    let d = if end_of_day { d.succ_opt()? } else { d };
    Some(d.and_hms_opt(0, 0, 0)?.and_utc())
}

/// Parses a filter line such as `op:alice action:tenant.search
/// outcome:denied tenant:<uuid> since:2024-01-01 until:2024-02-01` into an
/// [`AuditFilter`]. Words are `key:value`; an empty line matches every
/// entry. `until:<date>` includes that whole day.
pub fn parse_filter(line: &str) -> Result<AuditFilter, String> {
    let mut f = AuditFilter::default();
    for word in line.split_whitespace() {
        let Some((k, v)) = word.split_once(':') else {
            return Err(format!(
                "filter word {:?} is not key:value — {FILTER_HELP}",
                safe_owned(word)
            ));
        };
        let bad = |what: &str| format!("{what} {:?} — {FILTER_HELP}", safe_owned(v));
        match k {
            "op" | "operator" => f.operator = Some(v.to_string()),
            "action" => f.action = Some(v.to_string()),
            "outcome" => f.outcome = Some(Outcome::parse(v).ok_or_else(|| bad("bad outcome"))?),
            "tenant" => f.tenant = Some(Uuid::parse_str(v).map_err(|_| bad("bad tenant id"))?),
            "since" => f.since = Some(parse_time(v, false).ok_or_else(|| bad("bad time"))?),
            "until" => f.until = Some(parse_time(v, true).ok_or_else(|| bad("bad time"))?),
            other => {
                return Err(format!(
                    "unknown filter key {:?} — {FILTER_HELP}",
                    safe_owned(other)
                ));
            }
        }
    }
    Ok(f)
}

/// Where the chain verification is.
#[derive(Debug, Clone, PartialEq)]
pub enum VerifyState {
    Idle,
    Running {
        id: RequestId,
        done: u64,
        total: u64,
    },
    Done(Verdict),
    Failed(String),
}

pub struct AuditScreen {
    entries: Vec<AuditRecord>,
    next_before: Option<i64>,
    filter: AuditFilter,
    /// The text of the applied filter.
    filter_line: String,
    /// `Some` while typing a filter.
    editing: Option<Input>,
    /// The pending page request: its id and whether it replaces the list.
    pending: Option<(RequestId, bool)>,
    state: Load<()>,
    verify: VerifyState,
    nav: ListNav,
}

impl Default for AuditScreen {
    fn default() -> Self {
        AuditScreen::new()
    }
}

impl AuditScreen {
    pub fn new() -> AuditScreen {
        AuditScreen {
            entries: Vec::new(),
            next_before: None,
            filter: AuditFilter::default(),
            filter_line: String::new(),
            editing: None,
            pending: None,
            state: Load::Loading,
            verify: VerifyState::Idle,
            nav: ListNav::default(),
        }
    }

    /// Asks for the first page (newest first).
    pub fn start(&mut self) -> Vec<Command> {
        self.load(None)
    }

    pub fn entries(&self) -> &[AuditRecord] {
        &self.entries
    }

    pub fn filter(&self) -> &AuditFilter {
        &self.filter
    }

    pub fn verify_state(&self) -> &VerifyState {
        &self.verify
    }

    pub fn selected(&self) -> Option<&AuditRecord> {
        self.nav
            .get(self.entries.len())
            .and_then(|i| self.entries.get(i))
    }

    fn load(&mut self, before: Option<i64>) -> Vec<Command> {
        let id = RequestId::next();
        self.pending = Some((id, before.is_none()));
        self.state = Load::Loading;
        vec![Command::Run {
            id,
            action: Action::AuditList {
                filter: self.filter.clone(),
                before,
            },
        }]
    }

    /// The next (older) page, when the selection is on the last entry.
    fn maybe_more(&mut self) -> Vec<Command> {
        let at_end = self.nav.get(self.entries.len()) == Some(self.entries.len().saturating_sub(1));
        match (at_end, self.next_before, self.pending) {
            (true, Some(before), None) => self.load(Some(before)),
            _ => vec![],
        }
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        if let Some(input) = &mut self.editing {
            return match resolve(Context::AuditFilter, key) {
                Some(KeyAction::Back) => {
                    self.editing = None;
                    vec![]
                }
                Some(KeyAction::Open) => {
                    let line = input.value().to_string();
                    match parse_filter(&line) {
                        Ok(f) => {
                            self.editing = None;
                            self.filter = f;
                            self.filter_line = line.trim().to_string();
                            self.entries.clear();
                            self.next_before = None;
                            self.nav = ListNav::default();
                            self.load(None)
                        }
                        Err(e) => vec![Command::Error(e)],
                    }
                }
                _ => {
                    input_key(input, key);
                    vec![]
                }
            };
        }
        let action = resolve(Context::Audit, key);
        if let Some(a) = action
            && self.nav.apply(a, self.entries.len())
        {
            return self.maybe_more();
        }
        match action {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Filter) => {
                self.editing = Some(Input::new(self.filter_line.clone()));
                vec![]
            }
            Some(KeyAction::Open) => match self.selected() {
                Some(r) => {
                    let id = RequestId::next();
                    let seq = r.seq;
                    vec![
                        Command::Push(Box::new(AuditDetailScreen::loading(seq, id))),
                        Command::Run {
                            id,
                            action: Action::AuditShow { seq },
                        },
                    ]
                }
                None => vec![],
            },
            Some(KeyAction::Verify) => {
                if matches!(self.verify, VerifyState::Running { .. }) {
                    return vec![Command::Notify("verification already running".into())];
                }
                let id = RequestId::next();
                self.verify = VerifyState::Running {
                    id,
                    done: 0,
                    total: 0,
                };
                vec![Command::Run {
                    id,
                    action: Action::AuditVerify {
                        from: None,
                        checkpoint: None,
                    },
                }]
            }
            _ => vec![],
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if let VerifyState::Running { id: vid, .. } = self.verify
            && vid == id
        {
            return match result {
                Ok(Reply::AuditVerdict(v)) => {
                    self.verify = VerifyState::Done(v.clone());
                    vec![]
                }
                Ok(_) => {
                    self.verify = VerifyState::Failed("unexpected reply".into());
                    vec![]
                }
                Err(f) => {
                    self.verify = VerifyState::Failed(f.message.clone());
                    vec![Command::Error(f.message.clone())]
                }
            };
        }
        let Some((pid, replace)) = self.pending else {
            return vec![];
        };
        if pid != id {
            return vec![];
        }
        self.pending = None;
        match result {
            Ok(Reply::AuditPage(page)) => {
                if replace {
                    self.entries = page.entries.clone();
                    self.nav = ListNav::default();
                } else {
                    self.entries.extend(page.entries.iter().cloned());
                }
                self.next_before = page.next_before;
                self.state = Load::Loaded(());
                vec![]
            }
            Ok(_) => {
                self.state = Load::Failed("unexpected reply".into());
                vec![Command::Error("audit: unexpected reply".into())]
            }
            Err(f) => {
                self.state = Load::Failed(f.message.clone());
                vec![Command::Error(f.message.clone())]
            }
        }
    }

    fn render_bottom(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        if let Some(input) = &self.editing {
            let width = area.width.saturating_sub(3) as usize;
            let scroll = input.visual_scroll(width);
            frame.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled("/ ", theme.style(Meaning::Prompt)),
                    Span::styled(safe_owned(input.value()), theme.style(Meaning::Input)),
                ]))
                .scroll((0, scroll as u16)),
                area,
            );
            if area.width > 2 && area.height > 0 {
                let x = (input.visual_cursor().saturating_sub(scroll) as u16)
                    .min(area.width.saturating_sub(3));
                frame.set_cursor_position((area.x + 2 + x, area.y));
            }
            return;
        }
        match &self.verify {
            VerifyState::Idle => {
                let text = if self.filter_line.is_empty() {
                    "no filter — / to filter, v to verify the chain".to_string()
                } else {
                    format!("filter: {}", safe_owned(&self.filter_line))
                };
                frame.render_widget(
                    Paragraph::new(text).style(theme.style(Meaning::Muted)),
                    area,
                );
            }
            VerifyState::Running { done, total, .. } => {
                let ratio = if *total == 0 {
                    0.0
                } else {
                    (*done as f64 / *total as f64).clamp(0.0, 1.0)
                };
                let gauge = Gauge::default()
                    .gauge_style(theme.style(Meaning::Ok))
                    .ratio(ratio)
                    .label(format!("verifying {done}/{total}"));
                frame.render_widget(gauge, area);
            }
            VerifyState::Done(v) => {
                let style = if v.is_intact() {
                    theme.style(Meaning::Ok)
                } else {
                    theme.style(Meaning::Danger)
                };
                let text = match v.broken_seq() {
                    None => format!("chain intact — {}", safe_owned(&v.to_string())),
                    Some(seq) => {
                        format!("chain BROKEN at seq {seq} — {}", safe_owned(&v.to_string()))
                    }
                };
                frame.render_widget(Paragraph::new(text).style(style), area);
            }
            VerifyState::Failed(m) => {
                frame.render_widget(
                    Paragraph::new(format!("verify failed — {}", safe_owned(m)))
                        .style(theme.style(Meaning::Danger)),
                    area,
                );
            }
        }
    }
}

fn outcome_style(o: Outcome, theme: &Theme) -> ratatui::style::Style {
    match o {
        Outcome::Allowed => theme.style(Meaning::Ok),
        Outcome::Denied => theme.style(Meaning::Danger),
        Outcome::Failed => theme.style(Meaning::Warning),
    }
}

impl Screen for AuditScreen {
    fn name(&self) -> &'static str {
        "audit"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            Msg::Progress {
                id, done, total, ..
            } => {
                if let VerifyState::Running { id: vid, .. } = self.verify
                    && vid == *id
                {
                    self.verify = VerifyState::Running {
                        id: vid,
                        done: *done,
                        total: *total,
                    };
                }
                vec![]
            }
            Msg::Tick(_) | Msg::SetQuery(_) => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let [body, bottom] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
        let status = match &self.state {
            Load::Loading => Span::styled(" loading… ", theme.style(Meaning::Warning)),
            Load::Failed(_) => Span::styled(" failed ", theme.style(Meaning::Danger)),
            Load::Loaded(()) => Span::styled(
                format!(
                    " {}{} ",
                    self.entries.len(),
                    if self.next_before.is_some() { "+" } else { "" }
                ),
                theme.style(Meaning::Muted),
            ),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                " Audit log (newest first) ",
                theme.style(Meaning::Title),
            ))
            .title_top(Line::from(status).right_aligned());
        let inner = block.inner(body);
        frame.render_widget(block, body);
        self.render_bottom(frame, bottom, theme);

        if self.entries.is_empty() {
            let (text, style) = match &self.state {
                Load::Loading => ("loading…".to_string(), Meaning::Muted),
                Load::Failed(m) => (safe_owned(m), Meaning::Danger),
                Load::Loaded(()) => ("no entry matches".to_string(), Meaning::Muted),
            };
            frame.render_widget(Paragraph::new(text).style(theme.style(style)), inner);
            return;
        }
        let wide = inner.width >= 100;
        let rows = self.entries.iter().map(|r| {
            let e = &r.entry;
            let time = if wide {
                r.at.format("%Y-%m-%d %H:%M:%S").to_string()
            } else {
                r.at.format("%m-%d %H:%M").to_string()
            };
            let outcome = Line::styled(e.outcome.as_str(), outcome_style(e.outcome, theme));
            let mut cells = vec![
                Line::styled(r.seq.to_string(), theme.style(Meaning::Muted)),
                Line::styled(time, theme.style(Meaning::Muted)),
                Line::styled(safe_owned(&e.operator), theme.style(Meaning::Text)),
            ];
            if wide {
                cells.push(Line::styled(
                    safe_owned(&e.role),
                    theme.style(Meaning::Text),
                ));
            }
            cells.push(Line::styled(
                safe_owned(&e.action),
                theme.style(Meaning::Text),
            ));
            if wide {
                cells.push(Line::styled(
                    safe_owned(&e.event_code),
                    theme.style(Meaning::Muted),
                ));
                cells.push(Line::styled(
                    e.tenant_id.map(|t| t.to_string()).unwrap_or_default(),
                    theme.style(Meaning::Muted),
                ));
            }
            cells.push(outcome);
            Row::new(cells)
        });
        let (header, widths): (Row, Vec<Constraint>) = if wide {
            (
                Row::new([
                    "Seq", "Time", "Operator", "Role", "Action", "Code", "Tenant", "Outcome",
                ]),
                vec![
                    Constraint::Length(8),
                    Constraint::Length(19),
                    Constraint::Fill(1),
                    Constraint::Length(10),
                    Constraint::Fill(2),
                    Constraint::Length(6),
                    Constraint::Length(36),
                    Constraint::Length(8),
                ],
            )
        } else {
            (
                Row::new(["Seq", "Time", "Operator", "Action", "Outcome"]),
                vec![
                    Constraint::Length(6),
                    Constraint::Length(11),
                    Constraint::Fill(1),
                    Constraint::Fill(2),
                    Constraint::Length(8),
                ],
            )
        };
        let visible = inner.height.saturating_sub(1) as usize;
        let offset = self.nav.offset_for(visible);
        let table = Table::new(rows, widths)
            .header(header.style(theme.style(Meaning::Header)))
            .row_highlight_style(theme.style(Meaning::Selection))
            .highlight_symbol("▶ ");
        let mut state = TableState::default()
            .with_offset(offset)
            .with_selected(self.nav.get(self.entries.len()));
        frame.render_stateful_widget(table, inner, &mut state);
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![
            (Context::Audit, keymap::AUDIT),
            (Context::AuditFilter, keymap::AUDIT_FILTER),
        ]
    }

    fn context(&self) -> Context {
        if self.editing.is_some() {
            Context::AuditFilter
        } else {
            Context::Audit
        }
    }
}

/// One audit entry in full: every field, the details JSON, both hashes.
pub struct AuditDetailScreen {
    seq: i64,
    pending: Option<RequestId>,
    record: Load<Box<AuditRecord>>,
    scroll: u16,
}

impl AuditDetailScreen {
    pub fn loading(seq: i64, id: RequestId) -> AuditDetailScreen {
        AuditDetailScreen {
            seq,
            pending: Some(id),
            record: Load::Loading,
            scroll: 0,
        }
    }

    pub fn loaded(record: AuditRecord) -> AuditDetailScreen {
        AuditDetailScreen {
            seq: record.seq,
            pending: None,
            record: Load::Loaded(Box::new(record)),
            scroll: 0,
        }
    }

    /// The lines drawn: (label, value), values sanitised.
    pub fn lines(&self) -> Vec<(&'static str, String)> {
        let Load::Loaded(r) = &self.record else {
            return vec![];
        };
        let e = &r.entry;
        let opt = |o: &Option<String>| o.as_deref().map(safe_owned).unwrap_or_else(|| "—".into());
        let details = serde_json::to_string_pretty(&e.details).unwrap_or_else(|_| "?".into());
        let mut out = vec![
            ("seq", r.seq.to_string()),
            (
                "time",
                r.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            ),
            ("operator", safe_owned(&e.operator)),
            ("role", safe_owned(&e.role)),
            ("key id", opt(&e.key_id)),
            ("session", e.session_id.to_string()),
            ("event code", safe_owned(&e.event_code)),
            ("action", safe_owned(&e.action)),
            (
                "tenant",
                e.tenant_id
                    .map(|t| t.to_string())
                    .unwrap_or_else(|| "—".into()),
            ),
            ("target table", opt(&e.target_table)),
            ("target pk", opt(&e.target_pk)),
            (
                "target columns",
                if e.target_columns.is_empty() {
                    "—".into()
                } else {
                    safe_owned(&e.target_columns.join(", "))
                },
            ),
            ("reason", opt(&e.reason)),
            ("outcome", e.outcome.as_str().to_string()),
            ("error", opt(&e.error)),
            ("prev_hash", hex::encode(r.prev_hash)),
            ("hash", hex::encode(r.hash)),
        ];
        for (i, l) in details.lines().enumerate() {
            out.push((if i == 0 { "details" } else { "" }, safe_owned(l)));
        }
        out
    }
}

impl Screen for AuditDetailScreen {
    fn name(&self) -> &'static str {
        "audit-entry"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => match resolve(Context::AuditDetail, *k) {
                Some(KeyAction::Back) => vec![Command::Pop],
                Some(KeyAction::Down) => {
                    self.scroll = self.scroll.saturating_add(1);
                    vec![]
                }
                Some(KeyAction::Up) => {
                    self.scroll = self.scroll.saturating_sub(1);
                    vec![]
                }
                _ => vec![],
            },
            Msg::Done(d) if Some(d.id) == self.pending => {
                self.pending = None;
                match &d.result {
                    Ok(Reply::AuditEntry(r)) => {
                        self.record = Load::Loaded(r.clone());
                        vec![]
                    }
                    Ok(_) => {
                        self.record = Load::Failed("unexpected reply".into());
                        vec![]
                    }
                    Err(f) => {
                        self.record = Load::Failed(f.message.clone());
                        vec![Command::Error(f.message.clone())]
                    }
                }
            }
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" Audit entry {} ", self.seq),
                theme.style(Meaning::Title),
            ));
        let lines: Vec<Line> = match &self.record {
            Load::Loading => vec![Line::styled("loading…", theme.style(Meaning::Muted))],
            Load::Failed(m) => vec![Line::styled(safe_owned(m), theme.style(Meaning::Danger))],
            Load::Loaded(_) => self
                .lines()
                .into_iter()
                .map(|(k, v)| {
                    Line::from(vec![
                        Span::styled(format!("{k:>15} "), theme.style(Meaning::Muted)),
                        Span::styled(v, theme.style(Meaning::Text)),
                    ])
                })
                .collect(),
        };
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((self.scroll, 0)),
            area,
        );
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::AuditDetail, keymap::AUDIT_DETAIL)]
    }

    fn context(&self) -> Context {
        Context::AuditDetail
    }
}
