//! A tenant's records (`r` on the tenant screen): one tab per record type,
//! a table of one keyset page (`n`/`p` next/previous, `g`/`G` first/last),
//! sort by date or amount, ascending or descending, a `/` filter line, and
//! Enter for one record in full (a trip with its route drawn on a canvas).
//! Every load is latest-request-wins: a reply to an older request is
//! dropped. Values arrive masked by the core; they are sanitised here.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Color;
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::canvas::{Canvas, Line as CanvasLine, Points};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState, Tabs, Wrap};
use tui_input::Input;
use uuid::Uuid;

use crate::core::action::{Action, Reply};
use crate::core::console::ConsoleInfo;
use crate::core::detect::Detector;
use crate::core::records::{
    At, Dir, Filter, How, Kind, MaskedRecord, Page, Pk, Query, Revealed, Route, SortBy,
};
use crate::core::session::Role;
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, safe_owned};

/// The filter words, for help and error messages.
pub const FILTER_HELP: &str = "text from:YYYY-MM-DD to:YYYY-MM-DD min:N max:N";

/// The most columns a page table shows.
const MAX_COLUMNS: usize = 6;
/// The widest a table column grows.
const MAX_COLUMN_WIDTH: usize = 40;

/// Parses a filter line: `from:` `to:` dates, `min:` `max:` amounts (in the
/// amount column's unit), every other word is text. An empty line is no
/// filter.
pub fn parse_filter(line: &str) -> Result<Filter, String> {
    let mut f = Filter::default();
    let mut text: Vec<&str> = Vec::new();
    for word in line.split_whitespace() {
        let bad = |what: &str, v: &str| format!("{what} {:?} — {FILTER_HELP}", safe_owned(v));
        let date = |v: &str| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| bad("not a date (YYYY-MM-DD)", v))
        };
        let amount = |v: &str| v.parse::<i64>().map_err(|_| bad("not a whole number", v));
        match word.split_once(':') {
            Some(("from", v)) => f.date_from = Some(date(v)?),
            Some(("to", v)) => f.date_to = Some(date(v)?),
            Some(("min", v)) => f.amount_min = Some(amount(v)?),
            Some(("max", v)) => f.amount_max = Some(amount(v)?),
            _ => text.push(word),
        }
    }
    if !text.is_empty() {
        f.text = Some(text.join(" "));
    }
    Ok(f)
}

/// Shows a field's value: sanitised, `NULL` for none.
fn shown(value: Option<&str>) -> String {
    value.map(safe_owned).unwrap_or_else(|| "NULL".to_string())
}

pub struct RecordsScreen {
    tenant: Uuid,
    tenant_name: String,
    tab: usize,
    sort: SortBy,
    dir: Dir,
    filter: Filter,
    filter_line: String,
    input: Input,
    filtering: bool,
    /// Where the shown (or loading) page starts, for reloads.
    at: At,
    pending: Option<RequestId>,
    page: Load<Page>,
    nav: ListNav,
}

impl RecordsScreen {
    /// A records screen of a tenant; [`RecordsScreen::start`] asks for the
    /// first page of the first tab.
    pub fn new(tenant: Uuid, tenant_name: &str) -> RecordsScreen {
        RecordsScreen {
            tenant,
            tenant_name: tenant_name.to_string(),
            tab: 0,
            sort: SortBy::Date,
            dir: Dir::Asc,
            filter: Filter::default(),
            filter_line: String::new(),
            input: Input::default(),
            filtering: false,
            at: At::First,
            pending: None,
            page: Load::Loading,
            nav: ListNav::default(),
        }
    }

    /// The first request: the first page of the first tab.
    pub fn start(&mut self) -> Vec<Command> {
        self.load(At::First)
    }

    pub fn kind(&self) -> Kind {
        Kind::ALL
            .get(self.tab)
            .copied()
            .unwrap_or(Kind::Transactions)
    }

    pub fn state(&self) -> &Load<Page> {
        &self.page
    }

    pub fn sort(&self) -> (SortBy, Dir) {
        (self.sort, self.dir)
    }

    pub fn filter(&self) -> &Filter {
        &self.filter
    }

    pub fn selected(&self) -> Option<&MaskedRecord> {
        let Load::Loaded(p) = &self.page else {
            return None;
        };
        self.nav.get(p.rows.len()).and_then(|i| p.rows.get(i))
    }

    /// The query for a page at `at` of the current tab.
    fn query(&self, at: At) -> Query {
        let mut filter = self.filter.clone();
        if !self.kind().has_amount() {
            filter.amount_min = None;
            filter.amount_max = None;
        }
        Query {
            sort: self.sort,
            dir: self.dir,
            filter,
            at,
            limit: 0,
        }
    }

    fn load(&mut self, at: At) -> Vec<Command> {
        let id = RequestId::next();
        self.pending = Some(id);
        self.at = at.clone();
        self.page = Load::Loading;
        self.nav = ListNav::default();
        vec![Command::Run {
            id,
            action: Action::RecordsList {
                tenant: self.tenant,
                kind: self.kind(),
                query: self.query(at),
            },
        }]
    }

    fn switch_tab(&mut self, tab: usize) -> Vec<Command> {
        if tab == self.tab && self.pending.is_none() && matches!(self.page, Load::Loaded(_)) {
            return vec![];
        }
        self.tab = tab % Kind::ALL.len();
        if !self.kind().has_amount() {
            self.sort = SortBy::Date;
        }
        self.load(At::First)
    }

    fn open(&self) -> Vec<Command> {
        let Some(r) = self.selected() else {
            return vec![];
        };
        let (screen, cmds) = RecordScreen::open(self.tenant, r.kind, r.id);
        let mut out = vec![Command::Push(Box::new(screen))];
        out.extend(cmds);
        out
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(self.context(), key);
        if self.filtering {
            return match action {
                Some(KeyAction::Open) => {
                    let line = self.input.value().trim().to_string();
                    match parse_filter(&line) {
                        Ok(f) => {
                            self.filtering = false;
                            self.filter = f;
                            self.filter_line = line;
                            self.load(At::First)
                        }
                        Err(e) => vec![Command::Error(e)],
                    }
                }
                Some(KeyAction::Back) => {
                    self.filtering = false;
                    vec![]
                }
                _ => {
                    input_key(&mut self.input, key);
                    vec![]
                }
            };
        }
        let len = match &self.page {
            Load::Loaded(p) => p.rows.len(),
            _ => 0,
        };
        match action {
            Some(a @ (KeyAction::Up | KeyAction::Down)) => {
                self.nav.apply(a, len);
                vec![]
            }
            Some(KeyAction::NextPage) => match &self.page {
                Load::Loaded(Page { next: Some(c), .. }) => {
                    let c = *c;
                    self.load(At::After(c))
                }
                Load::Loaded(_) => vec![Command::Notify("this is the last page".into())],
                _ => vec![],
            },
            Some(KeyAction::PrevPage) => match &self.page {
                Load::Loaded(Page { prev: Some(c), .. }) => {
                    let c = *c;
                    self.load(At::Before(c))
                }
                Load::Loaded(_) => vec![Command::Notify("this is the first page".into())],
                _ => vec![],
            },
            Some(KeyAction::FirstPage) => self.load(At::First),
            Some(KeyAction::LastPage) => self.load(At::Last),
            Some(KeyAction::NextTab) => self.switch_tab(self.tab + 1),
            Some(KeyAction::PrevTab) => self.switch_tab(self.tab + Kind::ALL.len() - 1),
            Some(KeyAction::JumpTab) => match key.code {
                crossterm::event::KeyCode::Char(c) => match c.to_digit(10) {
                    Some(d @ 1..=8) => self.switch_tab(d as usize - 1),
                    _ => vec![],
                },
                _ => vec![],
            },
            Some(KeyAction::Sort) => {
                if !self.kind().has_amount() {
                    return vec![Command::Notify(format!(
                        "{} have no amount: sorted by date",
                        self.kind().label()
                    ))];
                }
                self.sort = match self.sort {
                    SortBy::Date => SortBy::Amount,
                    SortBy::Amount => SortBy::Date,
                };
                self.load(At::First)
            }
            Some(KeyAction::Order) => {
                self.dir = match self.dir {
                    Dir::Asc => Dir::Desc,
                    Dir::Desc => Dir::Asc,
                };
                self.load(At::First)
            }
            Some(KeyAction::Filter) => {
                self.filtering = true;
                self.input = Input::new(self.filter_line.clone());
                vec![]
            }
            Some(KeyAction::Open) => self.open(),
            Some(KeyAction::Back) => vec![Command::Pop],
            _ => vec![],
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if Some(id) != self.pending {
            return vec![];
        }
        self.pending = None;
        match result {
            Ok(Reply::Records(p)) => {
                self.page = Load::Loaded(p.clone());
                self.nav = ListNav::default();
                vec![]
            }
            Ok(_) => {
                self.page = Load::Failed("unexpected reply".into());
                vec![Command::Error("records: unexpected reply".into())]
            }
            Err(f) => {
                self.page = Load::Failed(f.message.clone());
                vec![Command::Error(f.message.clone())]
            }
        }
    }

    fn render_table(&self, frame: &mut Frame, area: Rect, theme: &Theme, p: &Page) {
        let title = format!(
            " {} — {} ",
            self.kind().label(),
            safe_owned(&self.tenant_name)
        );
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(title, theme.style(Meaning::Title)));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let Some(first) = p.rows.first() else {
            frame.render_widget(
                Paragraph::new("no records on this page").style(theme.style(Meaning::Muted)),
                inner,
            );
            return;
        };
        // Columns: the first fields of the rows, as many as fit.
        let avail = inner.width.saturating_sub(2) as usize;
        let mut cols: Vec<(usize, usize)> = Vec::new(); // (field index, width)
        let mut used = 0usize;
        for (i, f) in first.fields.iter().enumerate().take(MAX_COLUMNS) {
            let w = p
                .rows
                .iter()
                .filter_map(|r| r.fields.get(i))
                .map(|f| Span::raw(shown(f.value.as_deref())).width())
                .chain(std::iter::once(Span::raw(safe_owned(&f.name)).width()))
                .max()
                .unwrap_or(1)
                .clamp(1, MAX_COLUMN_WIDTH);
            let need = w + usize::from(!cols.is_empty());
            if !cols.is_empty() && used + need > avail {
                break;
            }
            used += need;
            cols.push((i, w));
        }
        let header = Row::new(
            cols.iter()
                .map(|(i, _)| {
                    first
                        .fields
                        .get(*i)
                        .map(|f| safe_owned(&f.name))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>(),
        )
        .style(theme.style(Meaning::Header));
        let rows = p.rows.iter().map(|r| {
            Row::new(
                cols.iter()
                    .map(|(i, _)| match r.fields.get(*i) {
                        Some(f) => {
                            let style = match (&f.value, f.personal) {
                                (None, _) => theme.style(Meaning::Muted),
                                (Some(_), true) => theme.style(Meaning::Masked),
                                (Some(_), false) => theme.style(Meaning::Text),
                            };
                            Line::styled(shown(f.value.as_deref()), style)
                        }
                        None => Line::default(),
                    })
                    .collect::<Vec<_>>(),
            )
        });
        // The last column takes what is left.
        let widths: Vec<Constraint> = cols
            .iter()
            .enumerate()
            .map(|(n, (_, w))| {
                if n + 1 == cols.len() {
                    Constraint::Fill(1)
                } else {
                    Constraint::Length(*w as u16)
                }
            })
            .collect();
        let visible = inner.height.saturating_sub(1) as usize;
        let offset = self.nav.offset_for(visible);
        let table = Table::new(rows, widths)
            .header(header)
            .row_highlight_style(theme.style(Meaning::Selection))
            .highlight_symbol("▶ ");
        let mut state = TableState::default()
            .with_offset(offset)
            .with_selected(self.nav.get(p.rows.len()));
        frame.render_stateful_widget(table, inner, &mut state);
    }

    fn render_footer(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let muted = theme.style(Meaning::Muted);
        let line = if self.filtering {
            Line::from(vec![
                Span::styled("/ ", theme.style(Meaning::Prompt)),
                Span::styled(safe_owned(self.input.value()), theme.style(Meaning::Input)),
            ])
        } else {
            let sort = match self.sort {
                SortBy::Date => "date",
                SortBy::Amount => "amount",
            };
            let dir = match self.dir {
                Dir::Asc => "↑",
                Dir::Desc => "↓",
            };
            let mut spans = vec![Span::styled(format!("sort {sort} {dir}"), muted)];
            if let Load::Loaded(p) = &self.page {
                let paging = match (p.prev.is_some(), p.next.is_some()) {
                    (false, false) => "only page",
                    (false, true) => "first page, more →",
                    (true, true) => "← more, more →",
                    (true, false) => "← more, last page",
                };
                spans.push(Span::styled(
                    format!(" · {} rows · {paging}", p.rows.len()),
                    muted,
                ));
            }
            if !self.filter_line.is_empty() {
                spans.push(Span::styled(" · / ", muted));
                spans.push(Span::styled(
                    safe_owned(&self.filter_line),
                    theme.style(Meaning::Input),
                ));
            }
            Line::from(spans)
        };
        frame.render_widget(Paragraph::new(line), area);
        if self.filtering && area.width > 2 {
            let x = area.x + 2 + self.input.visual_cursor() as u16;
            frame.set_cursor_position((x.min(area.right().saturating_sub(1)), area.y));
        }
    }
}

impl Screen for RecordsScreen {
    fn name(&self) -> &'static str {
        "records"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let [tabs_area, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(0),
            Constraint::Length(1),
        ])
        .areas(area);
        let titles: Vec<Line> = Kind::ALL
            .iter()
            .enumerate()
            .map(|(i, k)| Line::from(format!("{} {}", i + 1, k.label())))
            .collect();
        let full: usize = titles.iter().map(|t| t.width() + 3).sum();
        if full <= usize::from(tabs_area.width) {
            frame.render_widget(
                Tabs::new(titles)
                    .select(self.tab)
                    .style(theme.style(Meaning::Muted))
                    .highlight_style(theme.style(Meaning::Selection))
                    .divider("│"),
                tabs_area,
            );
        } else {
            // Too narrow for every tab: the current one and where it is.
            frame.render_widget(
                Paragraph::new(Line::from(vec![
                    Span::styled("‹ ", theme.style(Meaning::Key)),
                    Span::styled(
                        format!(
                            "{}/{} {}",
                            self.tab + 1,
                            Kind::ALL.len(),
                            self.kind().label()
                        ),
                        theme.style(Meaning::Selection),
                    ),
                    Span::styled(" ›", theme.style(Meaning::Key)),
                ])),
                tabs_area,
            );
        }
        match &self.page {
            Load::Loaded(p) => self.render_table(frame, body, theme, p),
            Load::Loading | Load::Failed(_) => {
                let (text, style) = match &self.page {
                    Load::Failed(m) => (
                        format!("could not load {}: {}", self.kind().label(), safe_owned(m)),
                        theme.style(Meaning::Danger),
                    ),
                    _ => ("loading…".to_string(), theme.style(Meaning::Warning)),
                };
                let block = Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.style(Meaning::Border))
                    .title(Span::styled(
                        format!(" {} ", self.kind().label()),
                        theme.style(Meaning::Title),
                    ));
                frame.render_widget(
                    Paragraph::new(Line::styled(text, style))
                        .wrap(Wrap { trim: false })
                        .block(block),
                    body,
                );
            }
        }
        self.render_footer(frame, footer, theme);
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![
            (Context::Records, keymap::RECORDS),
            (Context::RecordsFilter, keymap::RECORDS_FILTER),
        ]
    }

    fn context(&self) -> Context {
        if self.filtering {
            Context::RecordsFilter
        } else {
            Context::Records
        }
    }
}

// ---------------------------------------------------------------- detail

/// One record in full; a trip also loads and draws its route. `j`/`k`
/// select a field; `v` reveals a personal field for a reason (support,
/// compliance: for other roles the key is neither shown nor acted on).
pub struct RecordScreen {
    tenant: Uuid,
    kind: Kind,
    id: Pk,
    pending: Option<RequestId>,
    record: Load<Box<MaskedRecord>>,
    route_pending: Option<RequestId>,
    /// `None` for kinds without a route.
    route: Option<Load<Route>>,
    /// The selected field.
    selected: usize,
    /// Who is signed in (handed in by the compositor).
    role: Option<Role>,
    mode: Mode,
    /// The `Reveal` request in flight.
    revealing: Option<RequestId>,
    shown: Option<Shown>,
    /// The `RedactPreview` / `RedactApply` request in flight.
    previewing: Option<RequestId>,
    applying: Option<RequestId>,
}

/// The ways to redact a field, in the chooser's order.
pub const REDACT_HOW: [(&str, How); 5] = [
    ("card numbers", How::Span(Detector::Card)),
    ("IBANs", How::Span(Detector::Iban)),
    ("e-mail addresses", How::Span(Detector::Email)),
    ("phone numbers", How::Span(Detector::Phone)),
    ("the whole value (NULL)", How::Null),
];

/// A redaction preview as the screen shows it (from
/// `Reply::RedactionPreview`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedactView {
    pub token: Uuid,
    pub field: String,
    pub before_masked: String,
    pub after: Option<String>,
    pub matches: usize,
}

/// What the detail screen does besides showing the record.
enum Mode {
    View,
    /// Typing the reason (or ticket) for a reveal or a redaction.
    Reason {
        purpose: Purpose,
        input: Input,
    },
    /// Choosing how to redact `field`.
    Choose {
        field: String,
        sel: usize,
    },
    /// The before / after of a redaction, waiting for `y` / `n`.
    Preview(RedactView),
}

enum Purpose {
    Reveal { field: String },
    Apply { token: Uuid },
}

/// A revealed value, shown until `until` (set at the first tick after it
/// arrived, so time comes only from ticks).
struct Shown {
    revealed: Arc<Revealed>,
    show_for: Duration,
    until: Option<Instant>,
    left: Duration,
}

/// Roles that may reveal a personal field.
pub fn may_reveal(role: Role) -> bool {
    matches!(role, Role::Support | Role::Compliance)
}

impl RecordScreen {
    /// A detail screen and the requests it waits for: `RecordShow`, and
    /// `TripRoute` for a trip.
    pub fn open(tenant: Uuid, kind: Kind, id: Pk) -> (RecordScreen, Vec<Command>) {
        let show = RequestId::next();
        let mut cmds = vec![Command::Run {
            id: show,
            action: Action::RecordShow { tenant, kind, id },
        }];
        let mut screen = RecordScreen {
            tenant,
            kind,
            id,
            pending: Some(show),
            record: Load::Loading,
            route_pending: None,
            route: None,
            selected: 0,
            role: None,
            mode: Mode::View,
            revealing: None,
            shown: None,
            previewing: None,
            applying: None,
        };
        if let (Kind::Trips, Pk::Int(trip_id)) = (kind, id) {
            let rid = RequestId::next();
            screen.route_pending = Some(rid);
            screen.route = Some(Load::Loading);
            cmds.push(Command::Run {
                id: rid,
                action: Action::TripRoute { tenant, trip_id },
            });
        }
        (screen, cmds)
    }

    /// A detail screen with the record (and route) at hand (tests, previews).
    pub fn loaded(record: MaskedRecord, route: Option<Route>) -> RecordScreen {
        RecordScreen {
            tenant: Uuid::nil(),
            kind: record.kind,
            id: record.id,
            pending: None,
            route_pending: None,
            route: route.map(Load::Loaded),
            record: Load::Loaded(Box::new(record)),
            selected: 0,
            role: None,
            mode: Mode::View,
            revealing: None,
            shown: None,
            previewing: None,
            applying: None,
        }
    }

    /// The same screen for a tenant (tests, previews).
    pub fn with_tenant(mut self, tenant: Uuid) -> RecordScreen {
        self.tenant = tenant;
        self
    }

    /// The same screen for a role (the compositor hands it in on push).
    pub fn with_role(mut self, role: Role) -> RecordScreen {
        self.role = Some(role);
        self
    }

    /// The selected field's name.
    pub fn selected_field(&self) -> Option<&str> {
        match &self.record {
            Load::Loaded(r) => r.fields.get(self.selected).map(|f| f.name.as_str()),
            _ => None,
        }
    }

    /// True while a revealed value is on screen.
    pub fn showing_revealed(&self) -> bool {
        self.shown.is_some()
    }

    fn can_reveal(&self) -> bool {
        self.role.is_some_and(may_reveal)
    }

    fn can_redact(&self) -> bool {
        self.role == Some(Role::Compliance)
    }

    /// Shows a redaction preview (what `Reply::RedactionPreview` becomes).
    pub fn show_preview(&mut self, view: RedactView) {
        self.mode = Mode::Preview(view);
    }

    fn start_redact(&mut self) -> Vec<Command> {
        let Some(field) = self.selected_field().map(str::to_string) else {
            return vec![];
        };
        if self.previewing.is_some() || self.applying.is_some() {
            return vec![];
        }
        self.mode = Mode::Choose { field, sel: 0 };
        vec![]
    }

    fn on_choose_key(&mut self, key: Key) -> Vec<Command> {
        let Mode::Choose { field, sel } = &mut self.mode else {
            return vec![];
        };
        match resolve(Context::RecordRedactChoose, key) {
            Some(KeyAction::Back) => {
                self.mode = Mode::View;
                vec![]
            }
            Some(KeyAction::Down) => {
                *sel = (*sel + 1).min(REDACT_HOW.len() - 1);
                vec![]
            }
            Some(KeyAction::Up) => {
                *sel = sel.saturating_sub(1);
                vec![]
            }
            Some(KeyAction::Open) => {
                let how = REDACT_HOW.get(*sel).map_or(How::Null, |(_, h)| *h);
                let field = field.clone();
                self.mode = Mode::View;
                let id = RequestId::next();
                self.previewing = Some(id);
                vec![Command::Run {
                    id,
                    action: Action::RedactPreview {
                        tenant: self.tenant,
                        kind: self.kind,
                        id: self.id,
                        field,
                        how,
                    },
                }]
            }
            _ => vec![],
        }
    }

    fn on_preview_key(&mut self, key: Key) -> Vec<Command> {
        let Mode::Preview(view) = &self.mode else {
            return vec![];
        };
        match resolve(Context::RecordRedactPreview, key) {
            Some(KeyAction::Cancel) => {
                self.mode = Mode::View;
                vec![Command::Notify(
                    "redaction cancelled — nothing changed".into(),
                )]
            }
            Some(KeyAction::Confirm) if view.matches > 0 => {
                self.mode = Mode::Reason {
                    purpose: Purpose::Apply { token: view.token },
                    input: Input::default(),
                };
                vec![]
            }
            _ => vec![],
        }
    }

    fn field_count(&self) -> usize {
        match &self.record {
            Load::Loaded(r) => r.fields.len(),
            _ => 0,
        }
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        match self.mode {
            Mode::Reason { .. } => return self.on_reason_key(key),
            Mode::Choose { .. } => return self.on_choose_key(key),
            Mode::Preview(_) => return self.on_preview_key(key),
            Mode::View => {}
        }
        let action = resolve(Context::Record, key)
            .or_else(|| {
                self.can_reveal()
                    .then(|| resolve(Context::RecordReveal, key))
                    .flatten()
            })
            .or_else(|| {
                self.can_redact()
                    .then(|| resolve(Context::RecordRedact, key))
                    .flatten()
            });
        match action {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Down) => {
                if self.selected + 1 < self.field_count() {
                    self.selected += 1;
                }
                vec![]
            }
            Some(KeyAction::Up) => {
                self.selected = self.selected.saturating_sub(1);
                vec![]
            }
            Some(KeyAction::Reveal) => self.start_reveal(),
            Some(KeyAction::Redact) => self.start_redact(),
            _ => vec![],
        }
    }

    fn start_reveal(&mut self) -> Vec<Command> {
        let Load::Loaded(r) = &self.record else {
            return vec![];
        };
        let Some(f) = r.fields.get(self.selected) else {
            return vec![];
        };
        if !f.personal {
            return vec![Command::Notify(format!(
                "{} is not personal: it is shown as stored",
                safe_owned(&f.name)
            ))];
        }
        if self.revealing.is_some() {
            return vec![];
        }
        self.mode = Mode::Reason {
            purpose: Purpose::Reveal {
                field: f.name.clone(),
            },
            input: Input::default(),
        };
        vec![]
    }

    fn on_reason_key(&mut self, key: Key) -> Vec<Command> {
        let Mode::Reason { input, .. } = &mut self.mode else {
            return vec![];
        };
        match resolve(Context::RecordReason, key) {
            Some(KeyAction::Back) => {
                self.mode = Mode::View;
                vec![]
            }
            Some(KeyAction::Open) => {
                let reason = input.value().trim().to_string();
                if reason.is_empty() {
                    return vec![Command::Error("a reason or ticket is needed".into())];
                }
                let Mode::Reason { purpose, .. } = std::mem::replace(&mut self.mode, Mode::View)
                else {
                    return vec![];
                };
                self.send(purpose, reason)
            }
            _ => {
                input_key(input, key);
                vec![]
            }
        }
    }

    fn send(&mut self, purpose: Purpose, reason: String) -> Vec<Command> {
        match purpose {
            Purpose::Reveal { field } => {
                let id = RequestId::next();
                self.revealing = Some(id);
                vec![Command::Run {
                    id,
                    action: Action::Reveal {
                        tenant: self.tenant,
                        kind: self.kind,
                        id: self.id,
                        field,
                        reason,
                    },
                }]
            }
            Purpose::Apply { token } => {
                let id = RequestId::next();
                self.applying = Some(id);
                vec![Command::Run {
                    id,
                    action: Action::RedactApply {
                        preview: token,
                        reason,
                    },
                }]
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let Some(s) = &mut self.shown else {
            return;
        };
        let until = *s.until.get_or_insert(now + s.show_for);
        if now >= until {
            self.shown = None;
        } else {
            s.left = until - now;
        }
    }

    fn render_choose(&self, frame: &mut Frame, area: Rect, theme: &Theme, field: &str, sel: usize) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" redact {} — how? ", safe_owned(field)),
                theme.style(Meaning::Title),
            ));
        let lines: Vec<Line> = REDACT_HOW
            .iter()
            .enumerate()
            .map(|(i, (label, _))| {
                if i == sel {
                    Line::styled(format!("▶ {label}"), theme.style(Meaning::Selection))
                } else {
                    Line::styled(format!("  {label}"), theme.style(Meaning::Text))
                }
            })
            .collect();
        frame.render_widget(Paragraph::new(lines).block(block), area);
    }

    fn render_preview(&self, frame: &mut Frame, area: Rect, theme: &Theme, v: &RedactView) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" redact {} — preview ", safe_owned(&v.field)),
                theme.style(Meaning::Title),
            ));
        let muted = theme.style(Meaning::Muted);
        let mut lines = vec![
            Line::from(vec![
                Span::styled("before ", muted),
                Span::styled(safe_owned(&v.before_masked), theme.style(Meaning::Masked)),
            ]),
            Line::from(vec![
                Span::styled("after  ", muted),
                Span::styled(shown(v.after.as_deref()), theme.style(Meaning::Warning)),
            ]),
        ];
        if v.matches == 0 {
            lines.push(Line::styled(
                "no matches — nothing to redact",
                theme.style(Meaning::Muted),
            ));
            lines.push(Line::from(vec![
                Span::styled("n/Esc", theme.style(Meaning::Key)),
                Span::styled(" close", muted),
            ]));
        } else {
            lines.push(Line::styled(
                format!("{} match(es) — permanent", v.matches),
                theme.style(Meaning::Danger),
            ));
            lines.push(Line::from(vec![
                Span::styled("y", theme.style(Meaning::Key)),
                Span::styled(" apply (reason, step-up)  ", muted),
                Span::styled("n/Esc", theme.style(Meaning::Key)),
                Span::styled(" cancel", muted),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            area,
        );
    }

    /// The prompt under the fields (reason input), if any.
    fn render_prompt(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let (purpose, input) = match &self.mode {
            Mode::View => return,
            Mode::Choose { field, sel } => {
                return self.render_choose(frame, area, theme, field, *sel);
            }
            Mode::Preview(v) => return self.render_preview(frame, area, theme, v),
            Mode::Reason { purpose, input } => (purpose, input),
        };
        let title = match purpose {
            Purpose::Reveal { field } => format!(" reveal {} ", safe_owned(field)),
            Purpose::Apply { .. } => " apply the redaction ".to_string(),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(title, theme.style(Meaning::Title)));
        let inner = block.inner(area);
        let prompt = "reason or ticket › ";
        frame.render_widget(
            Paragraph::new(Line::from(vec![
                Span::styled(prompt, theme.style(Meaning::Prompt)),
                Span::styled(safe_owned(input.value()), theme.style(Meaning::Input)),
            ]))
            .block(block),
            area,
        );
        if inner.width > 0 && inner.height > 0 {
            let x = inner.x + Span::raw(prompt).width() as u16 + input.visual_cursor() as u16;
            frame.set_cursor_position((x.min(inner.right().saturating_sub(1)), inner.y));
        }
    }

    pub fn state(&self) -> &Load<Box<MaskedRecord>> {
        &self.record
    }

    pub fn route(&self) -> Option<&Load<Route>> {
        self.route.as_ref()
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if Some(id) == self.pending {
            self.pending = None;
            return match result {
                Ok(Reply::Record(r)) => {
                    self.record = Load::Loaded(r.clone());
                    vec![]
                }
                Ok(_) => {
                    self.record = Load::Failed("unexpected reply".into());
                    vec![Command::Error("record: unexpected reply".into())]
                }
                Err(f) => {
                    self.record = Load::Failed(f.message.clone());
                    vec![Command::Error(f.message.clone())]
                }
            };
        }
        if Some(id) == self.revealing {
            self.revealing = None;
            return match result {
                Ok(Reply::Revealed { revealed, show_for }) => {
                    self.shown = Some(Shown {
                        revealed: revealed.clone(),
                        show_for: *show_for,
                        until: None,
                        left: *show_for,
                    });
                    vec![]
                }
                Ok(_) => vec![Command::Error("reveal: unexpected reply".into())],
                Err(f) => vec![Command::Error(f.message.clone())],
            };
        }
        if Some(id) == self.previewing {
            self.previewing = None;
            return match result {
                Ok(Reply::RedactionPreview { token, preview }) => {
                    self.show_preview(RedactView {
                        token: *token,
                        field: preview.field.clone(),
                        before_masked: preview.before_masked.clone(),
                        after: preview.after.clone(),
                        matches: preview.matches,
                    });
                    vec![]
                }
                Ok(_) => vec![Command::Error("redaction: unexpected reply".into())],
                Err(f) => vec![Command::Error(f.message.clone())],
            };
        }
        if Some(id) == self.applying {
            self.applying = None;
            return match result {
                Ok(Reply::Redacted(a)) => {
                    // Show the record as it is now.
                    let show = RequestId::next();
                    self.pending = Some(show);
                    vec![
                        Command::Notify(format!("redacted {} match(es)", a.matches)),
                        Command::Run {
                            id: show,
                            action: Action::RecordShow {
                                tenant: self.tenant,
                                kind: self.kind,
                                id: self.id,
                            },
                        },
                    ]
                }
                Ok(_) => vec![Command::Error("redaction: unexpected reply".into())],
                Err(f) => vec![Command::Error(f.message.clone())],
            };
        }
        if Some(id) == self.route_pending {
            self.route_pending = None;
            self.route = Some(match result {
                Ok(Reply::Route(r)) => Load::Loaded(r.clone()),
                Ok(_) => Load::Failed("unexpected reply".into()),
                Err(f) => Load::Failed(f.message.clone()),
            });
        }
        vec![]
    }

    fn render_fields(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" {} {} ", self.kind.label(), self.id),
                theme.style(Meaning::Title),
            ));
        // Keep the selected field in view.
        let rows = area.height.saturating_sub(2).max(1) as usize;
        let scroll = u16::try_from(self.selected.saturating_sub(rows - 1)).unwrap_or(u16::MAX);
        let lines: Vec<Line> = match &self.record {
            Load::Loading => vec![Line::styled("loading…", theme.style(Meaning::Warning))],
            Load::Failed(m) => vec![Line::styled(safe_owned(m), theme.style(Meaning::Danger))],
            Load::Loaded(r) => {
                let w = r
                    .fields
                    .iter()
                    .map(|f| Span::raw(safe_owned(&f.name)).width())
                    .max()
                    .unwrap_or(0)
                    .min(24);
                r.fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let value_style = match (&f.value, f.personal) {
                            (None, _) => theme.style(Meaning::Muted),
                            (Some(_), true) => theme.style(Meaning::Masked),
                            (Some(_), false) => theme.style(Meaning::Text),
                        };
                        let name_style = if i == self.selected {
                            theme.style(Meaning::Selection)
                        } else {
                            theme.style(Meaning::Muted)
                        };
                        let revealed = self.shown.as_ref().filter(|s| s.revealed.field == f.name);
                        let mut spans = vec![
                            Span::styled(
                                {
                                    let name = safe_owned(&f.name);
                                    let pad = w.saturating_sub(Span::raw(name.as_str()).width());
                                    format!("{}{name} ", " ".repeat(pad))
                                },
                                name_style,
                            ),
                            Span::styled(if f.personal { "● " } else { "  " }, value_style),
                        ];
                        if let Some(s) = revealed {
                            // The unmasked value, sanitised, highlighted,
                            // with how long it stays.
                            spans.push(Span::styled(
                                shown(s.revealed.value.expose().as_deref()),
                                theme.style(Meaning::Warning),
                            ));
                            spans.push(Span::styled(
                                format!("  revealed, hides in {}s", s.left.as_secs().max(1)),
                                theme.style(Meaning::Danger),
                            ));
                            return Line::from(spans);
                        }
                        spans.push(Span::styled(shown(f.value.as_deref()), value_style));
                        if f.personal {
                            spans.push(Span::styled(
                                format!("  ({}, {})", safe_owned(f.category), safe_owned(f.mask)),
                                theme.style(Meaning::Muted),
                            ));
                        }
                        Line::from(spans)
                    })
                    .collect()
            }
        };
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((scroll, 0)),
            area,
        );
    }

    fn render_route(&self, frame: &mut Frame, area: Rect, theme: &Theme, route: &Load<Route>) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::Border))
            .title(Span::styled(" route (~1 km) ", theme.style(Meaning::Title)));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let r = match route {
            Load::Loading => {
                frame.render_widget(
                    Paragraph::new("loading the route…").style(theme.style(Meaning::Warning)),
                    inner,
                );
                return;
            }
            Load::Failed(m) => {
                frame.render_widget(
                    Paragraph::new(safe_owned(m))
                        .style(theme.style(Meaning::Danger))
                        .wrap(Wrap { trim: false }),
                    inner,
                );
                return;
            }
            Load::Loaded(r) => r,
        };
        let [map, facts] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(inner);
        let km = r.distance_m as f64 / 1000.0;
        let d = r.duration_s.max(0);
        frame.render_widget(
            Paragraph::new(Line::styled(
                format!(
                    "{km:.1} km · {}:{:02} · {}",
                    d / 3600,
                    (d % 3600) / 60,
                    r.started_at.format("%Y-%m-%d %H:%M UTC")
                ),
                theme.style(Meaning::Text),
            )),
            facts,
        );
        if r.points.is_empty() {
            frame.render_widget(
                Paragraph::new("route hidden by the data map")
                    .style(theme.style(Meaning::Muted))
                    .wrap(Wrap { trim: false }),
                map,
            );
            return;
        }
        let (mut lat0, mut lat1, mut lon0, mut lon1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(lat, lon) in &r.points {
            lat0 = lat0.min(lat);
            lat1 = lat1.max(lat);
            lon0 = lon0.min(lon);
            lon1 = lon1.max(lon);
        }
        let margin = |lo: f64, hi: f64| ((hi - lo) * 0.1).max(0.005);
        let (mut mlat, mut mlon) = (margin(lat0, lat1), margin(lon0, lon1));
        // Same scale on both axes: a braille dot is about square, and a
        // degree of longitude is cos(lat) of a degree of latitude.
        let cos = ((lat0 + lat1) / 2.0).to_radians().cos().abs().max(0.01);
        let (wdots, hdots) = (f64::from(map.width) * 2.0, f64::from(map.height) * 4.0);
        if wdots > 0.0 && hdots > 0.0 {
            let x_per_dot = (lon1 - lon0 + 2.0 * mlon) * cos / wdots;
            let y_per_dot = (lat1 - lat0 + 2.0 * mlat) / hdots;
            if x_per_dot < y_per_dot {
                mlon += (y_per_dot * wdots / cos - (lon1 - lon0 + 2.0 * mlon)) / 2.0;
            } else {
                mlat += (x_per_dot * hdots - (lat1 - lat0 + 2.0 * mlat)) / 2.0;
            }
        }
        let colour = theme.style(Meaning::Title).fg.unwrap_or(Color::Reset);
        let start = theme.style(Meaning::Ok).fg.unwrap_or(Color::Reset);
        let points = &r.points;
        let canvas = Canvas::default()
            .marker(Marker::Braille)
            .x_bounds([lon0 - mlon, lon1 + mlon])
            .y_bounds([lat0 - mlat, lat1 + mlat])
            .paint(move |ctx| {
                for w in points.windows(2) {
                    if let [(a_lat, a_lon), (b_lat, b_lon)] = w {
                        ctx.draw(&CanvasLine::new(*a_lon, *a_lat, *b_lon, *b_lat, colour));
                    }
                }
                if let Some(&(lat, lon)) = points.first() {
                    ctx.draw(&Points {
                        coords: &[(lon, lat)],
                        color: start,
                    });
                }
            });
        frame.render_widget(canvas, map);
    }
}

impl Screen for RecordScreen {
    fn name(&self) -> &'static str {
        "record"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            Msg::Tick(now) => {
                self.on_tick(*now);
                vec![]
            }
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let prompt_h = match self.mode {
            Mode::View => 0,
            Mode::Reason { .. } => 3,
            Mode::Choose { .. } => 7,
            Mode::Preview(_) => 6,
        };
        let [area, prompt] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(prompt_h)]).areas(area);
        self.render_prompt(frame, prompt, theme);
        match &self.route {
            None => self.render_fields(frame, area, theme),
            Some(route) => {
                let [fields, map] = if area.width >= 80 {
                    Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(area)
                } else {
                    Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(area)
                };
                self.render_fields(frame, fields, theme);
                self.render_route(frame, map, theme, route);
            }
        }
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        let mut k = vec![(Context::Record, keymap::RECORD)];
        if self.can_reveal() {
            k.push((Context::RecordReveal, keymap::RECORD_REVEAL));
        }
        if self.can_redact() {
            k.push((Context::RecordRedact, keymap::RECORD_REDACT));
            k.push((Context::RecordRedactChoose, keymap::RECORD_REDACT_CHOOSE));
            k.push((Context::RecordRedactPreview, keymap::RECORD_REDACT_PREVIEW));
        }
        if self.can_reveal() || self.can_redact() {
            k.push((Context::RecordReason, keymap::RECORD_REASON));
        }
        k
    }

    fn context(&self) -> Context {
        match self.mode {
            Mode::View => Context::Record,
            Mode::Reason { .. } => Context::RecordReason,
            Mode::Choose { .. } => Context::RecordRedactChoose,
            Mode::Preview(_) => Context::RecordRedactPreview,
        }
    }

    fn set_info(&mut self, info: &ConsoleInfo) {
        self.role = Some(info.role);
    }

    fn animating(&self) -> bool {
        self.shown.is_some()
    }
}
