//! The new-request form (`n` on the erasure list): kind (erasure or
//! access), the subject's e-mails / phones / user ids (comma separated),
//! ticket, regime (`gdpr`, `ccpa` or a due date `YYYY-MM-DD`) and a note.
//! Enter checks every field and lists the problems in plain words, or sends
//! `ErasureCreate`; once created, the form makes way for the request.

use chrono::{NaiveDate, TimeZone, Utc};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph, Wrap};
use tui_input::Input;
use uuid::Uuid;

use crate::core::action::{Action, Reply};
use crate::core::erasure::store::RequestKind;
use crate::core::erasure::{Regime, Subject};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Msg, RequestId, Screen};
use crate::tui::screens::erasure::{SubjectForm, input_line, move_focus, type_into};
use crate::tui::screens::erasure_request::ErasureRequestScreen;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::safe_owned;

/// The fields, in order.
pub const FIELDS: [&str; 7] = [
    "kind", "e-mails", "phones", "user ids", "ticket", "regime", "note",
];

const HINTS: [&str; 7] = [
    "erasure or access",
    "comma separated",
    "comma separated",
    "Pluto user ids (UUIDs), comma separated",
    "the ticket reference, e.g. DSR-1042",
    "gdpr (30 days), ccpa (45 days) or a due date YYYY-MM-DD",
    "optional",
];

use crate::core::input::{MAX_NOTE, MAX_TICKET};

/// A checked form.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRequest {
    pub kind: RequestKind,
    pub subject: Subject,
    pub ticket: String,
    pub regime: Regime,
    pub note: String,
}

pub struct ErasureFormScreen {
    kind: Input,
    subject: SubjectForm,
    ticket: Input,
    regime: Input,
    note: Input,
    focus: usize,
    problems: Vec<String>,
    /// The `ErasureCreate` in flight.
    sending: Option<RequestId>,
}

impl Default for ErasureFormScreen {
    fn default() -> Self {
        ErasureFormScreen::new()
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

impl ErasureFormScreen {
    pub fn new() -> ErasureFormScreen {
        ErasureFormScreen {
            kind: Input::new("erasure".into()),
            subject: SubjectForm::default(),
            ticket: Input::default(),
            regime: Input::new("gdpr".into()),
            note: Input::default(),
            focus: 1,
            problems: Vec::new(),
            sending: None,
        }
    }

    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    pub fn focus(&self) -> usize {
        self.focus
    }

    fn field(&self, i: usize) -> Option<&Input> {
        match i {
            0 => Some(&self.kind),
            1..=3 => self.subject.field(i - 1),
            4 => Some(&self.ticket),
            5 => Some(&self.regime),
            6 => Some(&self.note),
            _ => None,
        }
    }

    fn field_mut(&mut self, i: usize) -> Option<&mut Input> {
        match i {
            0 => Some(&mut self.kind),
            1..=3 => self.subject.field_mut(i - 1),
            4 => Some(&mut self.ticket),
            5 => Some(&mut self.regime),
            6 => Some(&mut self.note),
            _ => None,
        }
    }

    /// Checks every field; the problems in plain words otherwise.
    pub fn check(&self, today: NaiveDate) -> Result<NewRequest, Vec<String>> {
        let mut problems = Vec::new();
        let kind = match self.kind.value().trim().to_lowercase().as_str() {
            "erasure" | "erase" | "e" => Some(RequestKind::Erasure),
            "access" | "a" => Some(RequestKind::Access),
            _ => {
                problems.push("kind must be erasure or access".to_string());
                None
            }
        };
        let subject = match self.subject.subject() {
            Ok(s) => Some(s),
            Err(p) => {
                problems.extend(p);
                None
            }
        };
        let ticket = self.ticket.value().trim().to_string();
        if ticket.is_empty() {
            problems.push("a ticket reference is needed".into());
        } else if ticket.chars().count() > MAX_TICKET {
            problems.push(format!("the ticket is longer than {MAX_TICKET} characters"));
        } else if has_control(&ticket) {
            problems.push("the ticket holds control characters".into());
        }
        let regime_text = self.regime.value().trim().to_lowercase();
        let regime = match regime_text.as_str() {
            "gdpr" => Some(Regime::Gdpr),
            "ccpa" => Some(Regime::Ccpa),
            other => match NaiveDate::parse_from_str(other, "%Y-%m-%d") {
                Ok(d) if d < today => {
                    problems.push(format!("the due date {d} is in the past"));
                    None
                }
                Ok(d) => d.and_hms_opt(23, 59, 59).map(|end| Regime::Custom {
                    due_at: Utc.from_utc_datetime(&end),
                }),
                Err(_) => {
                    problems
                        .push("regime must be gdpr, ccpa or a due date written YYYY-MM-DD".into());
                    None
                }
            },
        };
        let note = self.note.value().trim().to_string();
        if note.chars().count() > MAX_NOTE {
            problems.push(format!("the note is longer than {MAX_NOTE} characters"));
        } else if has_control(&note) {
            problems.push("the note holds control characters".into());
        }
        match (kind, subject, regime) {
            (Some(kind), Some(subject), Some(regime)) if problems.is_empty() => Ok(NewRequest {
                kind,
                subject,
                ticket,
                regime,
                note,
            }),
            _ => Err(problems),
        }
    }

    fn submit(&mut self) -> Vec<Command> {
        if self.sending.is_some() {
            return vec![Command::Notify("the request is being created…".into())];
        }
        match self.check(Utc::now().date_naive()) {
            Ok(r) => {
                self.problems.clear();
                let id = RequestId::next();
                self.sending = Some(id);
                vec![Command::Run {
                    id,
                    action: Action::ErasureCreate {
                        id: Uuid::new_v4(),
                        kind: r.kind,
                        subject: r.subject,
                        ticket: r.ticket,
                        regime: r.regime,
                        note: r.note,
                    },
                }]
            }
            Err(p) => {
                self.problems = p;
                vec![]
            }
        }
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(Context::ErasureForm, key);
        if move_focus(&mut self.focus, FIELDS.len(), action) {
            return vec![];
        }
        match action {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Open) => self.submit(),
            _ => {
                let focus = self.focus;
                type_into(self.field_mut(focus), key);
                vec![]
            }
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if self.sending != Some(id) {
            return vec![];
        }
        self.sending = None;
        match result {
            Ok(Reply::ErasureCreated(request)) => {
                // The identifiers go with the form.
                let (screen, cmds) = ErasureRequestScreen::open(*request);
                let mut all = vec![
                    Command::Pop,
                    Command::Notify(format!("request {request} created — p to plan it")),
                    Command::Push(Box::new(screen)),
                ];
                all.extend(cmds);
                all
            }
            Ok(_) => {
                self.problems = vec!["unexpected reply".into()];
                vec![]
            }
            Err(f) => {
                self.problems = vec![f.message.clone()];
                vec![Command::Error(f.message.clone())]
            }
        }
    }
}

impl Screen for ErasureFormScreen {
    fn name(&self) -> &'static str {
        "erasure-new"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                " New data-subject request ",
                theme.style(Meaning::Title),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let mut y = inner.y;
        let bottom = inner.y + inner.height;
        for (i, label) in FIELDS.iter().enumerate() {
            if y >= bottom {
                return;
            }
            if let Some(input) = self.field(i) {
                let line = Rect::new(inner.x, y, inner.width, 1);
                input_line(frame, line, theme, label, input, i == self.focus);
            }
            y += 1;
        }
        let mut lines = vec![
            Line::styled(
                format!(
                    "{:>13} {}",
                    "",
                    HINTS.get(self.focus).copied().unwrap_or("")
                ),
                theme.style(Meaning::Muted),
            ),
            Line::from(""),
        ];
        if self.sending.is_some() {
            lines.push(Line::styled("creating…", theme.style(Meaning::Warning)));
        }
        for p in &self.problems {
            lines.push(Line::styled(
                format!("• {}", safe_owned(p)),
                theme.style(Meaning::Danger),
            ));
        }
        lines.push(Line::from(vec![
            Span::styled("Tab", theme.style(Meaning::Key)),
            Span::styled(" next field  ", theme.style(Meaning::Muted)),
            Span::styled("Enter", theme.style(Meaning::Key)),
            Span::styled(" create  ", theme.style(Meaning::Muted)),
            Span::styled("Esc", theme.style(Meaning::Key)),
            Span::styled(" cancel", theme.style(Meaning::Muted)),
        ]));
        let rest = Rect::new(inner.x, y, inner.width, bottom.saturating_sub(y));
        frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), rest);
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::ErasureForm, keymap::ERASURE_FORM)]
    }

    fn context(&self) -> Context {
        Context::ErasureForm
    }
}
