//! The tenant search screen: an input at the top, results narrowing as you
//! type. Each change of the query (after a short debounce) dispatches
//! `SearchTenants` under a new request id; only the reply to the latest id
//! is shown.

use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use tui_input::Input;
use tui_input::backend::crossterm::to_input_request;

use crate::core::action::{Action, Reply};
use crate::core::tenants::{Matched, TenantHit, classify};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::tenant::TenantScreen;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, date, safe};

/// How long typing must pause before a search is sent.
pub const DEBOUNCE: Duration = Duration::from_millis(120);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Input,
    List,
}

pub struct SearchScreen {
    input: Input,
    mode: Mode,
    /// The hits of the latest answered search.
    hits: Vec<TenantHit>,
    /// The state of the latest search (`Loaded` carries nothing: the hits
    /// stay visible while the next search runs).
    state: Load<()>,
    /// The request whose reply will be shown; any other reply is stale.
    pending: Option<RequestId>,
    /// The query the shown (or pending) results are for.
    sent: Option<String>,
    /// When the query last changed and has not been sent yet.
    changed_at: Option<Instant>,
    nav: ListNav,
    debounce: Duration,
}

impl Default for SearchScreen {
    fn default() -> Self {
        SearchScreen::new()
    }
}

/// Turns a keymap key back into a terminal event for the text input.
pub(crate) fn input_key(input: &mut Input, key: Key) -> bool {
    let ev = Event::Key(KeyEvent::new(key.code, key.mods));
    match to_input_request(&ev) {
        Some(req) => input.handle(req).is_some_and(|changed| changed.value),
        None => false,
    }
}

impl SearchScreen {
    pub fn new() -> SearchScreen {
        SearchScreen {
            input: Input::default(),
            mode: Mode::Input,
            hits: Vec::new(),
            state: Load::Loaded(()),
            pending: None,
            sent: None,
            changed_at: None,
            nav: ListNav::default(),
            debounce: DEBOUNCE,
        }
    }

    /// The same screen with another debounce (zero: send on the next tick).
    pub fn with_debounce(mut self, debounce: Duration) -> SearchScreen {
        self.debounce = debounce;
        self
    }

    pub fn query(&self) -> &str {
        self.input.value()
    }

    pub fn hits(&self) -> &[TenantHit] {
        &self.hits
    }

    pub fn selected(&self) -> Option<&TenantHit> {
        self.nav.get(self.hits.len()).and_then(|i| self.hits.get(i))
    }

    pub fn pending(&self) -> Option<RequestId> {
        self.pending
    }

    pub fn is_typing(&self) -> bool {
        self.mode == Mode::Input
    }

    /// Sends the current query now.
    fn search(&mut self) -> Vec<Command> {
        let query = self.input.value().to_string();
        let id = RequestId::next();
        self.pending = Some(id);
        self.sent = Some(query.clone());
        self.changed_at = None;
        self.state = Load::Loading;
        vec![Command::Run {
            id,
            action: Action::SearchTenants { query },
        }]
    }

    fn open(&mut self) -> Vec<Command> {
        let Some(hit) = self.selected() else {
            return vec![];
        };
        let id = RequestId::next();
        let business_id = hit.id;
        let screen = TenantScreen::loading(hit.id, &hit.name, id);
        vec![
            Command::Push(Box::new(screen)),
            Command::Run {
                id,
                action: Action::OpenTenant { business_id },
            },
        ]
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(self.context(), key);
        if let Some(a) = action
            && self.nav.apply(a, self.hits.len())
        {
            return vec![];
        }
        match (self.mode, action) {
            (_, Some(KeyAction::Open)) => self.open(),
            (Mode::Input, Some(KeyAction::Back)) => {
                self.mode = Mode::List;
                vec![]
            }
            (Mode::List, Some(KeyAction::Erasure)) => vec![Command::OpenErasure],
            (Mode::List, Some(KeyAction::Filter)) => {
                self.mode = Mode::Input;
                vec![]
            }
            (Mode::Input, None) => {
                if input_key(&mut self.input, key) {
                    self.changed_at = Some(Instant::now());
                }
                vec![]
            }
            _ => vec![],
        }
    }

    fn on_reply(
        &mut self,
        id: RequestId,
        result: &Result<Reply, crate::tui::screen::Failure>,
    ) -> Vec<Command> {
        if self.pending != Some(id) {
            return vec![]; // stale: a newer search was sent since
        }
        self.pending = None;
        match result {
            Ok(Reply::Tenants(hits)) => {
                self.hits = hits.clone();
                self.nav = ListNav::default();
                self.state = Load::Loaded(());
                vec![]
            }
            Ok(other) => {
                self.state = Load::Failed("unexpected reply".into());
                vec![Command::Error(format!(
                    "search: unexpected reply {:?}",
                    std::mem::discriminant(other)
                ))]
            }
            Err(f) => {
                // Fail closed: the hits of an earlier query are not shown as
                // if they answered this one (e.g. while the database is down).
                self.hits.clear();
                self.nav = ListNav::default();
                self.state = Load::Failed(f.message.clone());
                vec![Command::Error(f.message.clone())]
            }
        }
    }
}

fn matched(m: &Matched, theme: &Theme) -> Line<'static> {
    match m {
        Matched::Recent => Line::styled("recent", theme.style(Meaning::Muted)),
        Matched::Id => Line::styled("business id", theme.style(Meaning::Ok)),
        Matched::Name { similarity } => Line::styled(
            format!("name {:.0}%", similarity * 100.0),
            theme.style(Meaning::Muted),
        ),
        Matched::MemberEmail { masked } => Line::from(vec![
            Span::styled("member ", theme.style(Meaning::Muted)),
            Span::styled(safe(masked).into_owned(), theme.style(Meaning::Masked)),
        ]),
        Matched::MemberPhone { masked } => Line::from(vec![
            Span::styled("phone ", theme.style(Meaning::Muted)),
            Span::styled(safe(masked).into_owned(), theme.style(Meaning::Masked)),
        ]),
    }
}

impl Screen for SearchScreen {
    fn name(&self) -> &'static str {
        "search"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(key) => self.on_key(*key),
            Msg::Done(done) => self.on_reply(done.id, &done.result),
            Msg::Tick(now) => match self.changed_at {
                Some(at) if now.saturating_duration_since(at) >= self.debounce => {
                    if self.sent.as_deref() == Some(self.input.value()) {
                        self.changed_at = None;
                        vec![]
                    } else {
                        self.search()
                    }
                }
                _ => vec![],
            },
            Msg::SetQuery(q) => {
                self.input = Input::new(q.clone());
                self.mode = Mode::Input;
                self.search()
            }
            Msg::Progress { .. } => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let [top, body] = Layout::vertical([Constraint::Length(3), Constraint::Min(0)]).areas(area);

        // The query input.
        let kind = classify(self.input.value()).label();
        let typing = self.mode == Mode::Input;
        let border = if typing {
            Meaning::BorderFocus
        } else {
            Meaning::Border
        };
        let input_block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(border))
            .title(Span::styled(" Find a tenant ", theme.style(Meaning::Title)))
            .title_top(
                Line::from(vec![
                    Span::styled(" read as ", theme.style(Meaning::Muted)),
                    Span::styled(format!("{kind} "), theme.style(Meaning::Key)),
                ])
                .right_aligned(),
            );
        let inner = input_block.inner(top);
        frame.render_widget(input_block, top);
        let [prompt, field] =
            Layout::horizontal([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
        frame.render_widget(Span::styled("/ ", theme.style(Meaning::Prompt)), prompt);
        // Scroll by the typed text; the drawn text is the sanitised value.
        let scroll = self
            .input
            .visual_scroll(field.width.saturating_sub(1) as usize);
        frame.render_widget(
            Paragraph::new(Span::styled(
                safe(self.input.value()).into_owned(),
                theme.style(Meaning::Input),
            ))
            .scroll((0, scroll as u16)),
            field,
        );
        if typing && field.width > 0 && field.height > 0 {
            let x = (self.input.visual_cursor().saturating_sub(scroll) as u16)
                .min(field.width.saturating_sub(1));
            frame.set_cursor_position((field.x + x, field.y));
        }

        // The results.
        let status = match &self.state {
            Load::Loading => Span::styled(" searching… ", theme.style(Meaning::Warning)),
            Load::Failed(_) => Span::styled(" search failed ", theme.style(Meaning::Danger)),
            Load::Loaded(()) => Span::styled(
                format!(" {} ", self.hits.len()),
                theme.style(Meaning::Muted),
            ),
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(if typing {
                Meaning::Border
            } else {
                Meaning::BorderFocus
            }))
            .title(Span::styled(" Tenants ", theme.style(Meaning::Title)))
            .title_top(Line::from(status).right_aligned());
        let table_area = block.inner(body);
        frame.render_widget(block, body);

        if let (Load::Failed(msg), true) = (&self.state, self.hits.is_empty()) {
            frame.render_widget(
                Paragraph::new(safe(msg).into_owned()).style(theme.style(Meaning::Danger)),
                table_area,
            );
            return;
        }
        if self.hits.is_empty() {
            let text = match self.state {
                Load::Loading => "searching…",
                _ if self.sent.is_none() => "",
                _ => "no tenant matches",
            };
            frame.render_widget(
                Paragraph::new(text).style(theme.style(Meaning::Muted)),
                table_area,
            );
            return;
        }

        // Narrow terminals keep the name and why it matched; wide ones
        // show every column.
        let wide = table_area.width >= 70;
        let rows = self.hits.iter().map(|h| {
            let name = Line::styled(safe(&h.name).into_owned(), theme.style(Meaning::Text));
            if wide {
                Row::new(vec![
                    name,
                    Line::styled(safe(&h.plan).into_owned(), theme.style(Meaning::Text)),
                    Line::styled(safe(&h.country).into_owned(), theme.style(Meaning::Text)),
                    Line::styled(date(&h.created_at), theme.style(Meaning::Muted)),
                    matched(&h.matched, theme),
                ])
            } else {
                Row::new(vec![name, matched(&h.matched, theme)])
            }
        });
        let (header, widths): (Row, Vec<Constraint>) = if wide {
            (
                Row::new(["Name", "Plan", "Country", "Created", "Matched"]),
                vec![
                    Constraint::Fill(3),
                    Constraint::Length(10),
                    Constraint::Length(7),
                    Constraint::Length(10),
                    Constraint::Fill(2),
                ],
            )
        } else {
            (
                Row::new(["Name", "Matched"]),
                vec![Constraint::Fill(3), Constraint::Fill(2)],
            )
        };
        let header = header.style(theme.style(Meaning::Header));
        let visible = table_area.height.saturating_sub(1) as usize;
        let offset = self.nav.offset_for(visible);
        let table = Table::new(rows, widths)
            .header(header)
            .row_highlight_style(theme.style(Meaning::Selection))
            .highlight_symbol("▶ ");
        let mut state = TableState::default()
            .with_offset(offset)
            .with_selected(self.nav.get(self.hits.len()));
        frame.render_stateful_widget(table, table_area, &mut state);
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![
            (Context::SearchInput, keymap::SEARCH_INPUT),
            (Context::SearchList, keymap::SEARCH_LIST),
        ]
    }

    fn context(&self) -> Context {
        match self.mode {
            Mode::Input => Context::SearchInput,
            Mode::List => Context::SearchList,
        }
    }
}
