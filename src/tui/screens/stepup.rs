//! The step-up prompt: pushed by the compositor when an action comes back
//! `MfaRequired` for a step-up (reveal, redaction apply, ...). It names the
//! action, asks for a fresh touch (`StepUp { input, action }`: a signing
//! factor signs exactly that action) and, once `SteppedUp` arrives, asks
//! the compositor to send the action again ([`Command::Resend`]) to the
//! screen that asked. Esc cancels ([`Command::CancelStepUp`]).
//!
//! In the demo, Enter touches the software key of the current role;
//! otherwise the OTP field (masked), `Ctrl-a` for the security key in the
//! ssh-agent, `Ctrl-p` for the PIV PIN (shown only as dots), as at the gate.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use tui_input::Input;

use crate::core::action::{Action, GateInput, Reply};
use crate::core::session::Role;
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Msg, RequestId, Screen};
use crate::tui::screens::gate::{masked, masked_pin};
use crate::tui::screens::search::input_key;
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{centered, safe_owned};

/// What the prompt names: "reveal of notes", "redaction" (sanitised when drawn).
pub fn describe(action: &Action) -> String {
    match action {
        Action::Reveal { field, .. } => format!("reveal of {field}"),
        Action::RedactApply { .. } => "the redaction".to_string(),
        Action::ErasureApprove { plan_sha256, .. } => format!(
            "approval of erasure plan {}",
            plan_sha256.get(..16).unwrap_or(plan_sha256)
        ),
        Action::ErasureExecute { .. } => "execution of the erasure (irreversible)".to_string(),
        other => other.kind().as_str().to_string(),
    }
}

pub struct StepUpScreen {
    /// The request that came back needing a step-up.
    asked: RequestId,
    action: Action,
    /// In the demo: the role whose software key signs.
    demo: Option<Role>,
    input: Input,
    piv: bool,
    /// The `StepUp` request in flight.
    checking: Option<RequestId>,
    error: Option<String>,
}

impl StepUpScreen {
    /// A prompt for `action` (asked as request `asked`); `demo` is the
    /// current role when the session is the demo's.
    pub fn new(asked: RequestId, action: Action, demo: Option<Role>) -> StepUpScreen {
        StepUpScreen {
            asked,
            action,
            demo,
            input: Input::default(),
            piv: false,
            checking: None,
            error: None,
        }
    }

    pub fn action(&self) -> &Action {
        &self.action
    }

    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn step_up(&mut self, input: GateInput) -> Vec<Command> {
        if self.checking.is_some() {
            return vec![];
        }
        let id = RequestId::next();
        self.checking = Some(id);
        self.error = None;
        vec![Command::Run {
            id,
            action: Action::StepUp {
                input,
                action: Box::new(self.action.clone()),
            },
        }]
    }

    fn cancel(&self) -> Vec<Command> {
        vec![Command::Pop, Command::CancelStepUp(self.asked)]
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(self.context(), key);
        if let Some(role) = self.demo {
            return match action {
                Some(KeyAction::Open) => self.step_up(GateInput::DemoRole(role)),
                Some(KeyAction::Back) => self.cancel(),
                _ => vec![],
            };
        }
        match super::factor::on_action(&mut self.input, &mut self.piv, action) {
            super::factor::Entry::Send(input) => return self.step_up(input),
            super::factor::Entry::Changed => return vec![],
            super::factor::Entry::Other => {}
        }
        match action {
            Some(KeyAction::Back) => self.cancel(),
            _ => {
                input_key(&mut self.input, key);
                vec![]
            }
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if Some(id) != self.checking {
            return vec![];
        }
        self.checking = None;
        match result {
            Ok(Reply::SteppedUp) => vec![
                Command::Pop,
                Command::Resend {
                    asked: self.asked,
                    action: self.action.clone(),
                },
            ],
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

impl Screen for StepUpScreen {
    fn name(&self) -> &'static str {
        "step-up"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let w = area.width.min(64);
        let h = area.height.min(9);
        let area = centered(area, w, h);
        frame.render_widget(Clear, area);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .style(theme.style(Meaning::Overlay))
            .title(Span::styled(" step-up ", theme.style(Meaning::Title)));
        let mut lines = vec![Line::from(vec![
            Span::styled("confirm ", theme.style(Meaning::Text)),
            Span::styled(
                safe_owned(&describe(&self.action)),
                theme.style(Meaning::Warning),
            ),
        ])];
        let key = |k: &'static str, what: &'static str| {
            Line::from(vec![
                Span::styled(k, theme.style(Meaning::Key)),
                Span::styled(what, theme.style(Meaning::Muted)),
            ])
        };
        match self.demo {
            Some(role) => {
                lines.push(Line::styled(
                    format!("DEMO — the software key of demo-{role} signs it"),
                    theme.style(Meaning::StatusDemo),
                ));
                lines.push(key("Enter", " touch the key  "));
            }
            None if self.piv => {
                let len = self.input.value().chars().count();
                lines.push(Line::from(vec![
                    Span::styled("PIN ", theme.style(Meaning::Prompt)),
                    Span::styled(masked_pin(len), theme.style(Meaning::Masked)),
                ]));
                lines.push(key("Ctrl-p", " back to the OTP"));
            }
            None => {
                let len = self.input.value().chars().count();
                lines.push(Line::from(vec![
                    Span::styled("OTP ", theme.style(Meaning::Prompt)),
                    Span::styled(masked(len), theme.style(Meaning::Masked)),
                ]));
                lines.push(key("Ctrl-a", " security key (ssh-agent)"));
                lines.push(key("Ctrl-p", " PIV key (PIN)"));
            }
        }
        lines.push(key("Esc", " cancel"));
        if self.checking.is_some() {
            lines.push(Line::styled(
                "checking… (confirm on your security key if it blinks)",
                theme.style(Meaning::Warning),
            ));
        }
        if let Some(e) = &self.error {
            lines.push(Line::styled(safe_owned(e), theme.style(Meaning::Danger)));
        }
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            area,
        );
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        if self.demo.is_some() {
            vec![(Context::StepUpDemo, keymap::STEP_UP_DEMO)]
        } else {
            vec![
                (Context::StepUpOtp, keymap::STEP_UP_OTP),
                (Context::StepUpPin, keymap::STEP_UP_PIN),
            ]
        }
    }

    fn context(&self) -> Context {
        match (self.demo, self.piv) {
            (Some(_), _) => Context::StepUpDemo,
            (None, true) => Context::StepUpPin,
            (None, false) => Context::StepUpOtp,
        }
    }

    fn is_overlay(&self) -> bool {
        true
    }
}
