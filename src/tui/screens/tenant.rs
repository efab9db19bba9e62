//! One tenant's overview: header facts, members (owners first, as the core
//! orders them), connected banks, and a count of each record type; `r`
//! opens the tenant's records.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table, TableState};
use tui_input::Input;
use uuid::Uuid;

use crate::core::action::Reply;
use crate::core::tenants::{Member, TenantDetail};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::records::RecordsScreen;
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, date, opt_date, safe};

pub struct TenantScreen {
    id: Uuid,
    /// The name known before the detail arrives (from the search hit).
    name: String,
    request: RequestId,
    detail: Load<Box<TenantDetail>>,
    nav: ListNav,
    filter: Input,
    filtering: bool,
}

impl TenantScreen {
    /// A screen waiting for the reply to `request`.
    pub fn loading(id: Uuid, name: &str, request: RequestId) -> TenantScreen {
        TenantScreen {
            id,
            name: name.to_string(),
            request,
            detail: Load::Loading,
            nav: ListNav::default(),
            filter: Input::default(),
            filtering: false,
        }
    }

    /// A screen showing a detail already at hand (tests, previews).
    pub fn loaded(detail: TenantDetail) -> TenantScreen {
        let mut s = TenantScreen::loading(detail.id, &detail.name, RequestId(0));
        s.detail = Load::Loaded(Box::new(detail));
        s
    }

    pub fn state(&self) -> &Load<Box<TenantDetail>> {
        &self.detail
    }

    pub fn filter(&self) -> &str {
        self.filter.value()
    }

    /// The members shown: all, or those whose masked name, e-mail or role
    /// contains the filter text (case-insensitive).
    pub fn visible_members(&self) -> Vec<&Member> {
        let Load::Loaded(d) = &self.detail else {
            return vec![];
        };
        let needle = self.filter.value().trim().to_lowercase();
        d.members
            .iter()
            .filter(|m| {
                needle.is_empty()
                    || m.role.to_lowercase().contains(&needle)
                    || m.name.to_lowercase().contains(&needle)
                    || m.email.to_lowercase().contains(&needle)
            })
            .collect()
    }

    pub fn selected_member(&self) -> Option<&Member> {
        let members = self.visible_members();
        self.nav
            .get(members.len())
            .and_then(|i| members.get(i).copied())
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(self.context(), key);
        let len = self.visible_members().len();
        if let Some(a) = action
            && self.nav.apply(a, len)
        {
            return vec![];
        }
        match (self.filtering, action) {
            (false, Some(KeyAction::Records)) => {
                let mut screen = RecordsScreen::new(self.id, &self.name);
                let mut cmds = screen.start();
                cmds.insert(0, Command::Push(Box::new(screen)));
                cmds
            }
            (false, Some(KeyAction::Filter)) => {
                self.filtering = true;
                vec![]
            }
            (false, Some(KeyAction::Back)) => {
                if self.filter.value().is_empty() {
                    vec![Command::Pop]
                } else {
                    self.filter.reset();
                    vec![]
                }
            }
            (true, Some(KeyAction::Open)) => {
                self.filtering = false;
                vec![]
            }
            (true, Some(KeyAction::Back)) => {
                self.filter.reset();
                self.filtering = false;
                vec![]
            }
            (true, None) => {
                if input_key(&mut self.filter, key) {
                    self.nav = ListNav::default();
                }
                vec![]
            }
            _ => vec![],
        }
    }

    fn on_reply(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if id != self.request {
            return vec![];
        }
        match result {
            Ok(Reply::Tenant(d)) if d.id == self.id => {
                self.name = d.name.clone();
                self.detail = Load::Loaded(d.clone());
                vec![]
            }
            Ok(_) => {
                self.detail = Load::Failed("unexpected reply".into());
                vec![Command::Error("tenant: unexpected reply".into())]
            }
            Err(f) => {
                self.detail = Load::Failed(f.message.clone());
                vec![Command::Error(f.message.clone())]
            }
        }
    }

    fn render_loaded(&self, frame: &mut Frame, area: Rect, theme: &Theme, d: &TenantDetail) {
        let banks_h = (d.banks.len().max(1) as u16) + 3;
        let bottom_h = banks_h.max(d.records.len() as u16 + 3);
        let [head, members_area, bottom] = Layout::vertical([
            Constraint::Length(4),
            Constraint::Min(3),
            Constraint::Length(bottom_h),
        ])
        .areas(area);

        // Header facts.
        let label = |s: &'static str| Span::styled(s, theme.style(Meaning::Muted));
        let text = |s: String| Span::styled(s, theme.style(Meaning::Text));
        let head_block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::Border))
            .title(Span::styled(
                format!(" {} ", safe(&d.name)),
                theme.style(Meaning::Title),
            ));
        let lines = vec![
            Line::from(vec![
                label("id "),
                text(d.id.to_string()),
                label("  plan "),
                text(safe(&d.plan).into_owned()),
                label("  country "),
                text(safe(&d.country).into_owned()),
            ]),
            Line::from(vec![
                label("created "),
                text(date(&d.created_at)),
                label("  latest activity "),
                text(opt_date(d.latest_activity().as_ref())),
            ]),
        ];
        frame.render_widget(Paragraph::new(lines).block(head_block), head);

        // Members.
        let members = self.visible_members();
        let filter_title = if self.filtering || !self.filter.value().is_empty() {
            Line::from(vec![
                Span::styled(" / ", theme.style(Meaning::Prompt)),
                Span::styled(
                    format!("{} ", safe(self.filter.value())),
                    theme.style(Meaning::Input),
                ),
            ])
            .right_aligned()
        } else {
            Line::default()
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" Members {}/{} ", members.len(), d.members.len()),
                theme.style(Meaning::Title),
            ))
            .title_top(filter_title);
        let inner = block.inner(members_area);
        frame.render_widget(block, members_area);
        let wide = inner.width >= 60;
        let rows = members.iter().map(|m| {
            let role_style = if m.role == "owner" {
                theme.style(Meaning::Warning)
            } else {
                theme.style(Meaning::Text)
            };
            let name = Line::styled(safe(&m.name).into_owned(), theme.style(Meaning::Masked));
            let role = Line::styled(safe(&m.role).into_owned(), role_style);
            if wide {
                Row::new(vec![
                    name,
                    Line::styled(safe(&m.email).into_owned(), theme.style(Meaning::Masked)),
                    role,
                    Line::styled(date(&m.since), theme.style(Meaning::Muted)),
                ])
            } else {
                Row::new(vec![name, role])
            }
        });
        let (header, widths): (Row, Vec<Constraint>) = if wide {
            (
                Row::new(["Name", "E-mail", "Role", "Since"]),
                vec![
                    Constraint::Fill(1),
                    Constraint::Fill(2),
                    Constraint::Length(10),
                    Constraint::Length(10),
                ],
            )
        } else {
            (
                Row::new(["Name", "Role"]),
                vec![Constraint::Fill(1), Constraint::Length(10)],
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
            .with_selected(self.nav.get(members.len()));
        frame.render_stateful_widget(table, inner, &mut state);
        if self.filtering && inner.height > 0 {
            // Cursor at the end of the filter text in the title.
            let x = members_area.x + members_area.width.saturating_sub(2);
            frame.set_cursor_position((
                x.min(members_area.right().saturating_sub(1)),
                members_area.y,
            ));
        }

        // Banks and record counts side by side.
        let [banks_area, records_area] =
            Layout::horizontal([Constraint::Fill(1), Constraint::Fill(1)]).areas(bottom);
        let bank_rows: Vec<Row> = d
            .banks
            .iter()
            .map(|b| {
                let status_style = match b.status.as_str() {
                    "active" | "connected" | "ok" => theme.style(Meaning::Ok),
                    _ => theme.style(Meaning::Warning),
                };
                Row::new(vec![
                    Line::styled(
                        safe(&b.institution).into_owned(),
                        theme.style(Meaning::Text),
                    ),
                    Line::styled(safe(&b.status).into_owned(), status_style),
                    Line::styled(b.accounts.to_string(), theme.style(Meaning::Text)),
                ])
            })
            .collect();
        let banks_block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::Border))
            .title(Span::styled(" Banks ", theme.style(Meaning::Title)));
        if bank_rows.is_empty() {
            frame.render_widget(
                Paragraph::new("no bank connected")
                    .style(theme.style(Meaning::Muted))
                    .block(banks_block),
                banks_area,
            );
        } else {
            frame.render_widget(
                Table::new(
                    bank_rows,
                    [
                        Constraint::Fill(1),
                        Constraint::Length(12),
                        Constraint::Length(8),
                    ],
                )
                .header(
                    Row::new(["Institution", "Status", "Accounts"])
                        .style(theme.style(Meaning::Header)),
                )
                .block(banks_block),
                banks_area,
            );
        }
        let record_rows = d.records.iter().map(|r| {
            Row::new(vec![
                Line::styled(r.kind.label(), theme.style(Meaning::Text)),
                Line::styled(r.display(), theme.style(Meaning::Text)).right_aligned(),
                Line::styled(opt_date(r.latest.as_ref()), theme.style(Meaning::Muted)),
            ])
        });
        frame.render_widget(
            Table::new(
                record_rows,
                [
                    Constraint::Fill(1),
                    Constraint::Length(9),
                    Constraint::Length(10),
                ],
            )
            .header(Row::new(["Records", "Count", "Latest"]).style(theme.style(Meaning::Header)))
            .block(
                Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.style(Meaning::Border))
                    .title(Span::styled(" Records ", theme.style(Meaning::Title)))
                    .title_top(
                        Line::from(vec![
                            Span::styled(" r", theme.style(Meaning::Key)),
                            Span::styled(" open ", theme.style(Meaning::Muted)),
                        ])
                        .right_aligned(),
                    ),
            ),
            records_area,
        );
    }
}

impl Screen for TenantScreen {
    fn name(&self) -> &'static str {
        "tenant"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(key) => self.on_key(*key),
            Msg::Done(done) => self.on_reply(done.id, &done.result),
            Msg::Tick(_) | Msg::SetQuery(_) | Msg::Progress { .. } => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        match &self.detail {
            Load::Loaded(d) => self.render_loaded(frame, area, theme, d),
            Load::Loading | Load::Failed(_) => {
                let (text, style) = match &self.detail {
                    Load::Failed(m) => (
                        format!("could not open the tenant: {}", safe(m)),
                        theme.style(Meaning::Danger),
                    ),
                    _ => ("loading…".to_string(), theme.style(Meaning::Warning)),
                };
                let block = Block::default()
                    .borders(Borders::ALL)
                    .border_style(theme.style(Meaning::Border))
                    .title(Span::styled(
                        format!(" {} ", safe(&self.name)),
                        theme.style(Meaning::Title),
                    ));
                frame.render_widget(
                    Paragraph::new(vec![
                        Line::styled(self.id.to_string(), theme.style(Meaning::Muted)),
                        Line::styled(text, style),
                    ])
                    .block(block),
                    area,
                );
            }
        }
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![
            (Context::Tenant, keymap::TENANT),
            (Context::TenantFilter, keymap::TENANT_FILTER),
        ]
    }

    fn context(&self) -> Context {
        if self.filtering {
            Context::TenantFilter
        } else {
            Context::Tenant
        }
    }
}
