//! The data-subject requests (palette `:erasure`, `e` on the search list;
//! compliance only): a list of requests, unfinished first by due date, with
//! the overdue ones in the theme's danger style. `n` opens the new-request
//! form ([`super::erasure_form`]), Enter a request
//! ([`super::erasure_request`]).
//!
//! Also the pieces the erasure screens share: the subject's identifiers as
//! a small form ([`SubjectForm`]; the console stores only keyed hashes, so
//! they are typed again at plan and execute, and kept only in the form) and
//! a plan as the screens draw it ([`PlanView`]).

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use tui_input::Input;
use uuid::Uuid;

use crate::core::action::{Action, Reply};
use crate::core::erasure::{ErasureRequest, Plan, Subject};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::erasure_form::ErasureFormScreen;
use crate::tui::screens::erasure_request::ErasureRequestScreen;
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, date, safe_owned};

/// How many requests the list asks for.
pub const LIST_LIMIT: i64 = 500;

/// Days before the due date from which a request is drawn as a warning.
pub const DUE_SOON_DAYS: i64 = 3;

/// The style of a due date: danger when overdue, warning when due soon.
pub fn due_style(r: &ErasureRequest, now: DateTime<Utc>, theme: &Theme) -> Style {
    if r.overdue(now) {
        theme.style(Meaning::Danger)
    } else if r.state != "done" && r.due_at - now < chrono::Duration::days(DUE_SOON_DAYS) {
        theme.style(Meaning::Warning)
    } else {
        theme.style(Meaning::Text)
    }
}

/// The style of a state.
pub fn state_style(state: &str, theme: &Theme) -> Style {
    match state {
        "done" => theme.style(Meaning::Ok),
        "failed" => theme.style(Meaning::Danger),
        "executing" | "approved" => theme.style(Meaning::Warning),
        _ => theme.style(Meaning::Text),
    }
}

/// Splits a field typed as `a, b; c` into its values (a phone may hold
/// spaces, so only commas and semicolons separate).
pub fn split_values(s: &str) -> Vec<String> {
    s.split([',', ';'])
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

/// The subject's identifiers, typed: e-mails, phones, user ids (each comma
/// separated). The values live only here; problems are named by position,
/// never by echoing the value.
#[derive(Default)]
pub struct SubjectForm {
    pub emails: Input,
    pub phones: Input,
    pub user_ids: Input,
}

pub const SUBJECT_LABELS: [&str; 3] = ["e-mails", "phones", "user ids"];

impl SubjectForm {
    pub fn field(&self, i: usize) -> Option<&Input> {
        match i {
            0 => Some(&self.emails),
            1 => Some(&self.phones),
            2 => Some(&self.user_ids),
            _ => None,
        }
    }

    pub fn field_mut(&mut self, i: usize) -> Option<&mut Input> {
        match i {
            0 => Some(&mut self.emails),
            1 => Some(&mut self.phones),
            2 => Some(&mut self.user_ids),
            _ => None,
        }
    }

    /// The subject, or every problem in plain words.
    pub fn subject(&self) -> Result<Subject, Vec<String>> {
        let mut problems = Vec::new();
        let emails = split_values(self.emails.value());
        for (i, e) in emails.iter().enumerate() {
            let ok = e
                .split_once('@')
                .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'));
            if !ok {
                problems.push(format!(
                    "e-mail {} is not an address like name@example.com",
                    i + 1
                ));
            }
        }
        let phones = split_values(self.phones.value());
        for (i, p) in phones.iter().enumerate() {
            let digits = p.chars().filter(char::is_ascii_digit).count();
            let allowed = p
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '(' | ')' | '.' | ' '));
            if !allowed || digits < 6 {
                problems.push(format!(
                    "phone {} needs at least 6 digits (spaces, +, -, ( ) and . are allowed)",
                    i + 1
                ));
            }
        }
        let mut user_ids = Vec::new();
        for (i, u) in split_values(self.user_ids.value()).iter().enumerate() {
            match Uuid::parse_str(u) {
                Ok(id) => user_ids.push(id),
                Err(_) => problems.push(format!(
                    "user id {} is not a UUID (like 3f2b…-…, 36 characters)",
                    i + 1
                )),
            }
        }
        let subject = Subject {
            emails,
            phones,
            user_ids,
        };
        if problems.is_empty() && subject.is_empty() {
            problems.push("give at least one e-mail, phone or user id of the person".into());
        }
        if problems.is_empty() {
            Ok(subject)
        } else {
            Err(problems)
        }
    }
}

/// Draws one labelled input line; the focused one gets the cursor.
pub fn input_line(
    frame: &mut Frame,
    area: Rect,
    theme: &Theme,
    label: &str,
    input: &Input,
    focused: bool,
) {
    const LABEL: u16 = 14;
    let width = area.width.saturating_sub(LABEL + 1) as usize;
    let scroll = if focused {
        input.visual_scroll(width)
    } else {
        0
    };
    let shown: String = safe_owned(input.value()).chars().skip(scroll).collect();
    let (label_style, value_style) = if focused {
        (theme.style(Meaning::Prompt), theme.style(Meaning::Input))
    } else {
        (theme.style(Meaning::Muted), theme.style(Meaning::Text))
    };
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(
                format!("{:>w$} ", label, w = LABEL as usize - 1),
                label_style,
            ),
            Span::styled(shown, value_style),
        ])),
        area,
    );
    if focused && area.width > LABEL + 1 && area.height > 0 {
        let x = (input.visual_cursor().saturating_sub(scroll) as u16)
            .min(area.width.saturating_sub(LABEL + 1));
        frame.set_cursor_position((area.x + LABEL + x, area.y));
    }
}

/// Moves the focus between `n` fields; returns true when the key did.
pub fn move_focus(focus: &mut usize, n: usize, action: Option<KeyAction>) -> bool {
    match action {
        Some(KeyAction::NextField) => {
            *focus = (*focus + 1) % n;
            true
        }
        Some(KeyAction::PrevField) => {
            *focus = (*focus + n - 1) % n;
            true
        }
        _ => false,
    }
}

/// Types a key into an input (for forms).
pub fn type_into(input: Option<&mut Input>, key: Key) {
    if let Some(input) = input {
        input_key(input, key);
    }
}

/// One group of rows of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLine {
    pub table: String,
    pub action: String,
    pub rows: u64,
    pub reason: String,
}

/// A plan as drawn: rows per table and action, objects per system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanView {
    pub subject_ref: String,
    pub sha256: String,
    pub tables: Vec<TableLine>,
    /// (system, number of objects)
    pub external: Vec<(String, usize)>,
}

impl PlanView {
    pub fn from_plan(p: &Plan) -> PlanView {
        PlanView {
            subject_ref: p.subject_ref.clone(),
            sha256: p.sha256.clone(),
            tables: p
                .per_table
                .iter()
                .map(|t| TableLine {
                    table: t.table.clone(),
                    action: t.action.as_str().to_string(),
                    rows: t.rows,
                    reason: t.reason.clone(),
                })
                .collect(),
            external: p
                .external
                .iter()
                .map(|e| (e.system.clone(), e.objects.len()))
                .collect(),
        }
    }

    /// The stored plan (the JSON of [`Plan::to_json`]); `None` when it is
    /// not a plan.
    pub fn from_json(v: &serde_json::Value) -> Option<PlanView> {
        let s = |v: &serde_json::Value, k: &str| v.get(k)?.as_str().map(str::to_string);
        let tables = v
            .get("per_table")?
            .as_array()?
            .iter()
            .map(|t| {
                Some(TableLine {
                    table: s(t, "table")?,
                    action: s(t, "action")?,
                    rows: t.get("rows")?.as_u64()?,
                    reason: s(t, "reason").unwrap_or_default(),
                })
            })
            .collect::<Option<Vec<_>>>()?;
        let external = v
            .get("external")?
            .as_array()?
            .iter()
            .map(|e| Some((s(e, "system")?, e.get("objects")?.as_array()?.len())))
            .collect::<Option<Vec<_>>>()?;
        Some(PlanView {
            subject_ref: s(v, "subject_ref").unwrap_or_default(),
            sha256: s(v, "sha256")?,
            tables,
            external,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.external.is_empty()
    }
}

/// The list of requests.
pub struct ErasureScreen {
    requests: Vec<ErasureRequest>,
    state: Load<()>,
    pending: Option<RequestId>,
    nav: ListNav,
    /// The time overdue is judged against; `None`: the clock.
    now: Option<DateTime<Utc>>,
}

impl Default for ErasureScreen {
    fn default() -> Self {
        ErasureScreen::new()
    }
}

impl ErasureScreen {
    pub fn new() -> ErasureScreen {
        ErasureScreen {
            requests: Vec::new(),
            state: Load::Loading,
            pending: None,
            nav: ListNav::default(),
            now: None,
        }
    }

    /// The same screen judging overdue at a fixed time (tests).
    pub fn with_now(mut self, now: DateTime<Utc>) -> ErasureScreen {
        self.now = Some(now);
        self
    }

    fn now(&self) -> DateTime<Utc> {
        self.now.unwrap_or_else(Utc::now)
    }

    /// Asks for the list.
    pub fn start(&mut self) -> Vec<Command> {
        let id = RequestId::next();
        self.pending = Some(id);
        self.state = Load::Loading;
        vec![Command::Run {
            id,
            action: Action::ErasureList { limit: LIST_LIMIT },
        }]
    }

    pub fn requests(&self) -> &[ErasureRequest] {
        &self.requests
    }

    pub fn selected(&self) -> Option<&ErasureRequest> {
        self.nav
            .get(self.requests.len())
            .and_then(|i| self.requests.get(i))
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(Context::ErasureList, key);
        if let Some(a) = action
            && self.nav.apply(a, self.requests.len())
        {
            return vec![];
        }
        match action {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Refresh) => self.start(),
            Some(KeyAction::New) => vec![Command::Push(Box::new(ErasureFormScreen::new()))],
            Some(KeyAction::Open) => match self.selected() {
                Some(r) => {
                    let (screen, cmds) = ErasureRequestScreen::open(r.id);
                    let screen = match self.now {
                        Some(now) => screen.with_now(now),
                        None => screen,
                    };
                    let mut all = vec![Command::Push(Box::new(screen))];
                    all.extend(cmds);
                    all
                }
                None => vec![],
            },
            _ => vec![],
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if self.pending != Some(id) {
            // A request changed elsewhere (created, planned, approved,
            // executed, queue run): the list follows, unless it is loading.
            let changed = matches!(
                result,
                Ok(Reply::ErasureCreated(_)
                    | Reply::ErasurePlanned(_)
                    | Reply::ErasureApproved { .. }
                    | Reply::ErasureExecuted(_)
                    | Reply::ErasureQueueRun(_))
            );
            return if changed && self.pending.is_none() {
                self.start()
            } else {
                vec![]
            };
        }
        self.pending = None;
        match result {
            Ok(Reply::ErasureList(list)) => {
                self.requests = list.clone();
                self.nav.clamp(self.requests.len());
                self.state = Load::Loaded(());
                vec![]
            }
            Ok(_) => {
                self.state = Load::Failed("unexpected reply".into());
                vec![Command::Error("erasure list: unexpected reply".into())]
            }
            Err(f) => {
                self.state = Load::Failed(f.message.clone());
                vec![Command::Error(f.message.clone())]
            }
        }
    }
}

impl Screen for ErasureScreen {
    fn name(&self) -> &'static str {
        "erasure"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let now = self.now();
        let [body, bottom] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
        let overdue = self.requests.iter().filter(|r| r.overdue(now)).count();
        let status = match &self.state {
            Load::Loading => Span::styled(" loading… ", theme.style(Meaning::Warning)),
            Load::Failed(_) => Span::styled(" failed ", theme.style(Meaning::Danger)),
            Load::Loaded(()) if overdue > 0 => Span::styled(
                format!(" {} requests, {overdue} overdue ", self.requests.len()),
                theme.style(Meaning::Danger),
            ),
            Load::Loaded(()) => Span::styled(
                format!(" {} requests ", self.requests.len()),
                theme.style(Meaning::Muted),
            ),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                " Data-subject requests (unfinished first, by due date) ",
                theme.style(Meaning::Title),
            ))
            .title_top(Line::from(status).right_aligned());
        let inner = block.inner(body);
        frame.render_widget(block, body);
        frame.render_widget(
            Paragraph::new("Enter open  n new request  r refresh  Esc back")
                .style(theme.style(Meaning::Muted)),
            bottom,
        );
        if self.requests.is_empty() {
            let (text, style) = match &self.state {
                Load::Loading => ("loading…".to_string(), Meaning::Muted),
                Load::Failed(m) => (safe_owned(m), Meaning::Danger),
                Load::Loaded(()) => ("no request yet — n to open one".to_string(), Meaning::Muted),
            };
            frame.render_widget(Paragraph::new(text).style(theme.style(style)), inner);
            return;
        }
        let rows = self.requests.iter().map(|r| {
            let due = if r.overdue(now) {
                format!("{} OVERDUE", date(&r.due_at))
            } else {
                date(&r.due_at)
            };
            Row::new(vec![
                Line::styled(safe_owned(&r.state), state_style(&r.state, theme)),
                Line::styled(safe_owned(&r.kind), theme.style(Meaning::Text)),
                Line::styled(due, due_style(r, now, theme)),
                Line::styled(safe_owned(&r.ticket), theme.style(Meaning::Text)),
                Line::styled(safe_owned(&r.subject_ref), theme.style(Meaning::Masked)),
                Line::styled(
                    r.id.simple().to_string().get(..8).unwrap_or("").to_string(),
                    theme.style(Meaning::Muted),
                ),
            ])
        });
        let widths = [
            Constraint::Length(10),
            Constraint::Length(8),
            Constraint::Length(19),
            Constraint::Fill(1),
            Constraint::Fill(2),
            Constraint::Length(8),
        ];
        let header = Row::new(["State", "Kind", "Due", "Ticket", "Subject", "Id"]);
        let visible = inner.height.saturating_sub(1) as usize;
        let offset = self.nav.offset_for(visible);
        let table = Table::new(rows, widths)
            .header(header.style(theme.style(Meaning::Header)))
            .row_highlight_style(theme.style(Meaning::Selection))
            .highlight_symbol("▶ ");
        let mut state = TableState::default()
            .with_offset(offset)
            .with_selected(self.nav.get(self.requests.len()));
        frame.render_stateful_widget(table, inner, &mut state);
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::ErasureList, keymap::ERASURE_LIST)]
    }

    fn context(&self) -> Context {
        Context::ErasureList
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(e: &str, p: &str, u: &str) -> SubjectForm {
        SubjectForm {
            emails: Input::new(e.into()),
            phones: Input::new(p.into()),
            user_ids: Input::new(u.into()),
        }
    }

    #[test]
    fn values_split_on_commas_and_spaces() {
        assert_eq!(
            split_values(" a@b.c, d@e.f ;+49 170 1 "),
            ["a@b.c", "d@e.f", "+49 170 1"]
        );
        assert!(split_values(" , ").is_empty());
    }

    #[test]
    fn the_subject_form_names_problems_without_echoing_values() {
        let s = form("jane@example.com", "+49 170 1234567", "")
            .subject()
            .unwrap();
        assert_eq!(s.emails, ["jane@example.com"]);
        assert_eq!(s.phones, ["+49 170 1234567"]);
        let problems = form("a@b.c", "12, 555-0100-22", "").subject().unwrap_err();
        assert_eq!(
            problems,
            ["phone 1 needs at least 6 digits (spaces, +, -, ( ) and . are allowed)"]
        );
        let problems = form("secret-value", "", "not-a-uuid")
            .subject()
            .unwrap_err();
        assert_eq!(problems.len(), 2);
        assert!(problems.iter().all(|p| !p.contains("secret-value")));
        assert_eq!(
            form("", "", "").subject().unwrap_err(),
            ["give at least one e-mail, phone or user id of the person"]
        );
    }
}
