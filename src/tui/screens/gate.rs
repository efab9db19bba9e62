//! The MFA gate: the first screen, and the screen pushed over the others
//! when the core answers `MfaRequired` (session idled out). It asks the
//! core what it waits for (`GateStatus`), then sends `Authenticate`:
//! the OTP the YubiKey types (masked as it is typed), the security key in
//! the ssh-agent (`Ctrl-a`), the PIV key of the YubiKey (`Ctrl-p`, then its
//! PIN, shown only as dots), or, in the demo, a chosen role.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, List, ListItem, ListState, Paragraph, Wrap};
use tui_input::Input;

use crate::core::action::{Action, GateInput, Reply};
use crate::core::console::GateStatus;
use crate::core::session::Role;
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{ListNav, safe_owned};

/// The notice shown when the gate comes back after an idle timeout.
pub const IDLED_OUT: &str = "session idled out — touch your key again";

/// The length of a Yubico OTP.
pub const OTP_LEN: usize = 44;

pub struct GateScreen {
    status: Load<GateStatus>,
    /// The `GateStatus` request.
    asking: Option<RequestId>,
    /// The `Authenticate` request in flight.
    checking: Option<RequestId>,
    /// Why the gate is shown again (idle timeout), if it is.
    notice: Option<String>,
    /// The last refusal, in the danger style.
    error: Option<String>,
    input: Input,
    /// True while the field takes the PIV PIN instead of the OTP.
    piv: bool,
    nav: ListNav,
}

impl GateScreen {
    /// A gate waiting for the console to open (nothing asked yet).
    pub fn opening() -> GateScreen {
        GateScreen {
            status: Load::Loading,
            asking: None,
            checking: None,
            notice: None,
            error: None,
            input: Input::default(),
            piv: false,
            nav: ListNav::default(),
        }
    }

    /// A gate and the `GateStatus` request it waits for.
    pub fn ask(notice: Option<String>) -> (GateScreen, Command) {
        let id = RequestId::next();
        let mut g = GateScreen::opening();
        g.asking = Some(id);
        g.notice = notice;
        (
            g,
            Command::Run {
                id,
                action: Action::GateStatus,
            },
        )
    }

    /// A gate showing a status (tests, previews).
    pub fn with_status(status: GateStatus) -> GateScreen {
        let mut g = GateScreen::opening();
        g.status = Load::Loaded(status);
        g
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn demo_roles(&self) -> &[Role] {
        match &self.status {
            Load::Loaded(s) => &s.demo_roles,
            _ => &[],
        }
    }

    fn is_demo(&self) -> bool {
        !self.demo_roles().is_empty()
    }

    fn authenticate(&mut self, input: GateInput) -> Vec<Command> {
        if self.checking.is_some() {
            return vec![];
        }
        let id = RequestId::next();
        self.checking = Some(id);
        self.error = None;
        vec![Command::Run {
            id,
            action: Action::Authenticate(input),
        }]
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        if !matches!(self.status, Load::Loaded(_)) {
            return vec![];
        }
        let ctx = self.context();
        let action = resolve(ctx, key);
        if self.is_demo() {
            let len = self.demo_roles().len();
            if let Some(a) = action
                && self.nav.apply(a, len)
            {
                return vec![];
            }
            if action == Some(KeyAction::Open)
                && let Some(role) = self.nav.get(len).and_then(|i| self.demo_roles().get(i))
            {
                let role = *role;
                return self.authenticate(GateInput::DemoRole(role));
            }
            return vec![];
        }
        match super::factor::on_action(&mut self.input, &mut self.piv, action) {
            super::factor::Entry::Send(input) => return self.authenticate(input),
            super::factor::Entry::Changed => return vec![],
            super::factor::Entry::Other => {}
        }
        match action {
            Some(KeyAction::Back) => {
                self.input = Input::default();
                vec![]
            }
            _ => {
                input_key(&mut self.input, key);
                vec![]
            }
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if Some(id) == self.asking {
            self.asking = None;
            match result {
                Ok(Reply::Gate(s)) => {
                    self.status = Load::Loaded(s.clone());
                    self.nav = ListNav::default();
                }
                Ok(_) => self.status = Load::Failed("unexpected reply".into()),
                Err(f) => self.status = Load::Failed(f.message.clone()),
            }
            return vec![];
        }
        if Some(id) != self.checking {
            return vec![];
        }
        self.checking = None;
        match result {
            Ok(Reply::Authenticated(info)) => vec![Command::Authenticated(info.clone())],
            Ok(_) => {
                self.error = Some("unexpected reply".into());
                vec![]
            }
            Err(f) => {
                self.error = Some(f.message.clone());
                vec![]
            }
        }
    }
}

/// What the OTP field shows: never the typed characters, only how many.
pub fn masked(len: usize) -> String {
    format!("{} {len}/{OTP_LEN}", "•".repeat(len.min(OTP_LEN)))
}

/// What the PIN field shows: one dot per typed character, nothing else.
pub fn masked_pin(len: usize) -> String {
    "•".repeat(len.min(64))
}

impl Screen for GateScreen {
    fn name(&self) -> &'static str {
        "gate"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        frame.render_widget(Clear, area);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                " charon — hardware-key gate ",
                theme.style(Meaning::Title),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);

        let mut head: Vec<Line> = Vec::new();
        if let Some(n) = &self.notice {
            head.push(Line::styled(safe_owned(n), theme.style(Meaning::Warning)));
        }
        match &self.status {
            Load::Loading => head.push(Line::styled(
                "asking what the gate waits for…",
                theme.style(Meaning::Muted),
            )),
            Load::Failed(m) => head.push(Line::styled(
                format!("the gate cannot be shown — {}", safe_owned(m)),
                theme.style(Meaning::Danger),
            )),
            Load::Loaded(s) => {
                head.push(Line::from(vec![
                    Span::styled("operator ", theme.style(Meaning::Muted)),
                    Span::styled(safe_owned(&s.operator), theme.style(Meaning::Text)),
                ]));
                if !s.demo_roles.is_empty() {
                    head.push(Line::styled(
                        "DEMO — software keys: choose a role",
                        theme.style(Meaning::StatusDemo),
                    ));
                }
                for p in &s.prompts {
                    head.push(Line::styled(
                        format!("• {}", safe_owned(p)),
                        theme.style(Meaning::Text),
                    ));
                }
                if s.demo_roles.is_empty() {
                    head.push(Line::from(vec![
                        Span::styled("Ctrl-a", theme.style(Meaning::Key)),
                        Span::styled(
                            " security key in the ssh-agent (confirm on your security key)",
                            theme.style(Meaning::Muted),
                        ),
                    ]));
                    head.push(Line::from(vec![
                        Span::styled("Ctrl-p", theme.style(Meaning::Key)),
                        Span::styled(
                            if self.piv {
                                " back to the OTP"
                            } else {
                                " PIV key of the YubiKey (slot 9a, PIN)"
                            },
                            theme.style(Meaning::Muted),
                        ),
                    ]));
                }
            }
        }
        if self.checking.is_some() {
            head.push(Line::styled(
                "checking… (confirm on your security key if it blinks)",
                theme.style(Meaning::Warning),
            ));
        }
        if let Some(e) = &self.error {
            head.push(Line::styled(safe_owned(e), theme.style(Meaning::Danger)));
        }
        let head_h = head.len() as u16;
        let [top, rest] =
            Layout::vertical([Constraint::Length(head_h), Constraint::Min(0)]).areas(inner);
        frame.render_widget(Paragraph::new(head).wrap(Wrap { trim: false }), top);

        if !matches!(self.status, Load::Loaded(_)) {
            return;
        }
        if self.is_demo() {
            let roles = self.demo_roles();
            let items: Vec<ListItem> = roles
                .iter()
                .map(|r| ListItem::new(r.to_string()).style(theme.style(Meaning::Text)))
                .collect();
            let list = List::new(items)
                .highlight_style(theme.style(Meaning::Selection))
                .highlight_symbol("▶ ")
                .block(
                    Block::default()
                        .borders(Borders::TOP)
                        .border_style(theme.style(Meaning::Border))
                        .title(Span::styled(" role ", theme.style(Meaning::Title))),
                );
            let visible = rest.height.saturating_sub(1) as usize;
            let offset = self.nav.offset_for(visible);
            let mut state = ListState::default()
                .with_offset(offset)
                .with_selected(self.nav.get(roles.len()));
            frame.render_stateful_widget(list, rest, &mut state);
        } else if self.piv {
            let len = self.input.value().chars().count();
            let field = Paragraph::new(Line::from(vec![
                Span::styled("PIN ", theme.style(Meaning::Prompt)),
                Span::styled(masked_pin(len), theme.style(Meaning::Masked)),
            ]))
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .border_style(theme.style(Meaning::Border))
                    .title(Span::styled(
                        " PIV key (YubiKey slot 9a): type its PIN ",
                        theme.style(Meaning::Title),
                    )),
            );
            frame.render_widget(field, rest);
        } else {
            let len = self.input.value().chars().count();
            let field = Paragraph::new(Line::from(vec![
                Span::styled("OTP ", theme.style(Meaning::Prompt)),
                Span::styled(masked(len), theme.style(Meaning::Masked)),
            ]))
            .block(
                Block::default()
                    .borders(Borders::TOP)
                    .border_style(theme.style(Meaning::Border))
                    .title(Span::styled(
                        " touch your YubiKey (it types the OTP) ",
                        theme.style(Meaning::Title),
                    )),
            );
            frame.render_widget(field, rest);
        }
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        if self.is_demo() {
            vec![(Context::GateRoles, keymap::GATE_ROLES)]
        } else {
            vec![
                (Context::GateOtp, keymap::GATE_OTP),
                (Context::GatePin, keymap::GATE_PIN),
            ]
        }
    }

    fn context(&self) -> Context {
        match &self.status {
            Load::Loaded(s) if s.demo_roles.is_empty() && self.piv => Context::GatePin,
            Load::Loaded(s) if s.demo_roles.is_empty() => Context::GateOtp,
            _ => Context::GateRoles,
        }
    }
}
