//! The compositor: a stack of screens and overlays, the status bar and the
//! message line. It turns screens' commands into stack changes and into
//! [`Effect`]s for the runner; it never touches the console itself, so it is
//! driven in tests by handing it messages.

use std::collections::{HashMap, VecDeque};

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use crate::core::action::{Action, ActionKind};
use crate::core::console::{ConsoleInfo, allowed};
use crate::tui::keymap::{Key, KeyAction, resolve};
use crate::tui::screen::{Command, Done, Failure, Msg, RequestId, Screen, is_step_up};
use crate::tui::screens::audit::AuditScreen;
use crate::tui::screens::backups::BackupsScreen;
use crate::tui::screens::erasure::ErasureScreen;
use crate::tui::screens::gate::{GateScreen, IDLED_OUT};
use crate::tui::screens::help::HelpScreen;
use crate::tui::screens::palette::PaletteScreen;
use crate::tui::screens::search::SearchScreen;
use crate::tui::screens::stepup::StepUpScreen;
use crate::tui::theme::{Meaning, Theme, ThemeSet};
use crate::tui::widgets::safe;

/// What the runner must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    Run { id: RequestId, action: Action },
    Quit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Error,
}

pub struct App {
    info: ConsoleInfo,
    themes: ThemeSet,
    theme: Theme,
    /// Bottom first. Until the MFA gate passes it holds only the gate;
    /// then the root is the search screen and is never popped. After an
    /// idle timeout a gate sits on top until it passes again.
    stack: Vec<Box<dyn Screen>>,
    /// The search screen, waiting for the gate to pass the first time.
    root: Option<SearchScreen>,
    message: Option<(Level, String)>,
    /// The `OpenConsole` request, answered before the first search.
    opening: Option<RequestId>,
    /// Actions in flight, so one that comes back asking for a step-up can
    /// be named and sent again.
    inflight: HashMap<RequestId, Action>,
    /// A re-sent action's id → the id of the request the screen made.
    aliases: HashMap<RequestId, RequestId>,
}

impl App {
    pub fn new(info: ConsoleInfo, themes: ThemeSet, theme: Theme) -> App {
        App::with_root(info, themes, theme, SearchScreen::new())
    }

    /// An app with a given root search screen (e.g. without debounce).
    pub fn with_root(info: ConsoleInfo, themes: ThemeSet, theme: Theme, root: SearchScreen) -> App {
        App {
            info,
            themes,
            theme,
            stack: vec![Box::new(GateScreen::opening())],
            root: Some(root),
            message: None,
            opening: None,
            inflight: HashMap::new(),
            aliases: HashMap::new(),
        }
    }

    /// The first effects: open the console. Then the gate asks what it
    /// waits for (`GateStatus`); the first search (recent tenants) follows
    /// once the gate has passed.
    pub fn start(&mut self) -> Vec<Effect> {
        let id = RequestId::next();
        self.opening = Some(id);
        vec![Effect::Run {
            id,
            action: Action::OpenConsole,
        }]
    }

    pub fn theme(&self) -> &Theme {
        &self.theme
    }

    /// Shows a message in the message line (until the next key).
    pub fn notify(&mut self, level: Level, message: impl Into<String>) {
        self.message = Some((level, message.into()));
    }

    pub fn message(&self) -> Option<&(Level, String)> {
        self.message.as_ref()
    }

    /// Names of the screens on the stack, bottom first.
    pub fn stack_names(&self) -> Vec<&'static str> {
        self.stack.iter().map(|s| s.name()).collect()
    }

    /// The operator and role the status bar shows.
    pub fn info(&self) -> &ConsoleInfo {
        &self.info
    }

    /// True while a gate is on the stack: nothing but the gate is reachable.
    pub fn gated(&self) -> bool {
        self.stack.iter().any(|s| s.name() == "gate")
    }

    pub fn top(&self) -> Option<&dyn Screen> {
        self.stack.last().map(|s| s.as_ref())
    }

    /// Handles one message and returns what the runner must do.
    pub fn update(&mut self, msg: Msg) -> Vec<Effect> {
        let mut effects = Vec::new();
        match msg {
            Msg::Key(key) => {
                let cmds = self.on_key(key);
                self.apply(cmds, &mut effects);
            }
            Msg::Done(done) if Some(done.id) == self.opening => {
                self.opening = None;
                self.on_opened(done, &mut effects);
            }
            Msg::Done(mut done) => {
                if let Some(asked) = self.aliases.remove(&done.id) {
                    done.id = asked;
                }
                let action = self.inflight.remove(&done.id);
                // An action that needs a fresh touch: the step-up prompt
                // goes on top; the screen that asked keeps waiting.
                if let (Err(f), Some(action)) = (&done.result, action)
                    && is_step_up(f)
                    && !matches!(action, Action::StepUp { .. })
                {
                    let demo = self.info.demo.then_some(self.info.role);
                    let prompt = StepUpScreen::new(done.id, action, demo);
                    self.apply(vec![Command::Push(Box::new(prompt))], &mut effects);
                    return effects;
                }
                self.deliver(Msg::Done(done), &mut effects);
            }
            // Progress of a re-sent action (after a step-up) goes to the
            // screen that asked, under the id it knows.
            Msg::Progress {
                id,
                step,
                done,
                total,
            } => {
                let id = self.aliases.get(&id).copied().unwrap_or(id);
                let msg = Msg::Progress {
                    id,
                    step,
                    done,
                    total,
                };
                self.deliver(msg, &mut effects);
            }
            msg @ Msg::Tick(_) => self.deliver(msg, &mut effects),
            Msg::SetQuery(q) => self.apply(vec![Command::SearchFor(q)], &mut effects),
        }
        effects
    }

    /// Puts a screen on top and runs the commands it starts with (e.g.
    /// [`crate::tui::screens::records::RecordScreen::open`]'s requests).
    pub fn push(&mut self, screen: Box<dyn Screen>, cmds: Vec<Command>) -> Vec<Effect> {
        let mut effects = Vec::new();
        let mut all = vec![Command::Push(screen)];
        all.extend(cmds);
        self.apply(all, &mut effects);
        effects
    }

    /// True while a screen changes with time alone (a countdown).
    pub fn animating(&self) -> bool {
        self.stack.iter().any(|s| s.animating())
    }

    fn deliver(&mut self, msg: Msg, effects: &mut Vec<Effect>) {
        // Every screen sees replies and ticks; each ignores what it did not
        // ask for.
        let mut cmds = Vec::new();
        for s in &mut self.stack {
            cmds.extend(s.update(&msg));
        }
        // The session needs the key again (never passed, or idled out): the
        // gate goes on top; once it passes, the operator continues where
        // they were.
        if let Msg::Done(Done { result: Err(f), .. }) = &msg
            && f.mfa_required
            && !is_step_up(f)
            && !self.gated()
        {
            let (gate, ask) = GateScreen::ask(Some(IDLED_OUT.to_string()));
            cmds.push(Command::Push(Box::new(gate)));
            cmds.push(ask);
        }
        self.apply(cmds, effects);
    }

    fn on_opened(&mut self, done: Done, effects: &mut Vec<Effect>) {
        match done.result {
            Ok(_) => {
                let (gate, ask) = GateScreen::ask(None);
                self.stack = vec![Box::new(gate)];
                self.apply(vec![ask], effects);
            }
            Err(f) => self.message = Some((Level::Error, f.message)),
        }
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        let gated = self.gated();
        let Some(top) = self.stack.last_mut() else {
            return vec![Command::Quit];
        };
        // Any key acknowledges the last message.
        self.message = None;
        match resolve(top.context(), key) {
            Some(KeyAction::Quit) => vec![Command::Quit],
            Some(KeyAction::Help) => vec![Command::Help],
            // Nothing but the gate is reachable before it passes.
            Some(KeyAction::Palette) if gated => vec![],
            Some(KeyAction::Palette) => vec![Command::Palette],
            _ => top.update(&Msg::Key(key)),
        }
    }

    fn apply(&mut self, cmds: Vec<Command>, effects: &mut Vec<Effect>) {
        let mut queue: VecDeque<Command> = cmds.into();
        while let Some(cmd) = queue.pop_front() {
            match cmd {
                Command::Push(mut s) => {
                    s.set_info(&self.info);
                    self.stack.push(s);
                }
                Command::Pop => {
                    if self.stack.len() > 1 {
                        self.stack.pop();
                    }
                }
                Command::Quit => effects.push(Effect::Quit),
                Command::Run { id, action } => {
                    self.inflight.insert(id, action.clone());
                    effects.push(Effect::Run { id, action });
                }
                Command::Resend { asked, action } => {
                    let id = RequestId::next();
                    self.aliases.insert(id, asked);
                    self.inflight.insert(asked, action.clone());
                    effects.push(Effect::Run { id, action });
                }
                Command::CancelStepUp(asked) => {
                    let cancelled = Msg::Done(Done {
                        id: asked,
                        result: Err(Failure {
                            message: "step-up cancelled — nothing was done".into(),
                            unreachable: false,
                            mfa_required: false,
                        }),
                    });
                    for s in &mut self.stack {
                        queue.extend(s.update(&cancelled));
                    }
                }
                Command::SearchFor(_)
                | Command::Palette
                | Command::OpenAudit
                | Command::OpenErasure
                | Command::OpenBackups
                    if self.gated() => {}
                Command::Authenticated(info) => {
                    self.info = info;
                    self.stack.retain(|s| s.name() != "gate");
                    for s in &mut self.stack {
                        s.set_info(&self.info);
                    }
                    if let Some(root) = self.root.take() {
                        self.stack.insert(0, Box::new(root));
                        queue.push_back(Command::SearchFor(String::new()));
                    }
                }
                Command::SearchFor(q) => {
                    self.stack.truncate(1);
                    if let Some(root) = self.stack.first_mut() {
                        queue.extend(root.update(&Msg::SetQuery(q)));
                    }
                }
                Command::SetTheme(name) => match self.themes.load(&name) {
                    Ok(loaded) => {
                        self.theme = loaded.theme;
                        self.message = Some(match loaded.warnings.first() {
                            Some(w) => (Level::Error, w.clone()),
                            None => (Level::Info, format!("theme {}", safe(&name))),
                        });
                    }
                    Err(e) => self.message = Some((Level::Error, e.to_string())),
                },
                Command::Help => {
                    if self.stack.last().is_some_and(|s| s.name() == "help") {
                        self.stack.pop();
                    } else if let Some(top) = self
                        .stack
                        .iter()
                        .rev()
                        .find(|s| !matches!(s.name(), "help" | "palette"))
                    {
                        let help = HelpScreen::new(top.keymap());
                        self.stack.push(Box::new(help));
                    }
                }
                Command::Palette => {
                    self.stack
                        .push(Box::new(PaletteScreen::new(self.themes.names())));
                }
                Command::OpenAudit => {
                    if allowed(self.info.role, ActionKind::AuditList) {
                        let mut screen = AuditScreen::new();
                        queue.extend(screen.start());
                        self.stack.push(Box::new(screen));
                    } else {
                        self.message = Some((
                            Level::Error,
                            format!(
                                "the audit log is for roles auditor and admin; you are {}",
                                self.info.role
                            ),
                        ));
                    }
                }
                Command::OpenErasure => {
                    if allowed(self.info.role, ActionKind::ErasureList) {
                        let mut screen = ErasureScreen::new();
                        queue.extend(screen.start());
                        self.stack.push(Box::new(screen));
                    } else {
                        self.message = Some((
                            Level::Error,
                            format!(
                                "data-subject requests are for the compliance role; you are {}",
                                self.info.role
                            ),
                        ));
                    }
                }
                Command::OpenBackups => {
                    if allowed(self.info.role, ActionKind::BackupSources) {
                        let mut screen = BackupsScreen::new();
                        queue.extend(screen.start());
                        self.stack.push(Box::new(screen));
                    } else {
                        self.message = Some((
                            Level::Error,
                            format!(
                                "backups and restore tests are for the sre role; you are {}",
                                self.info.role
                            ),
                        ));
                    }
                }
                Command::Error(m) => self.message = Some((Level::Error, m)),
                Command::Notify(m) => self.message = Some((Level::Info, m)),
            }
        }
    }

    /// Draws the screens, the message line and the status bar. Pure.
    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        let [main, message, status] = Layout::vertical([
            Constraint::Min(0),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        // Draw from the topmost full screen upwards, overlays over it.
        let base = self
            .stack
            .iter()
            .rposition(|s| !s.is_overlay())
            .unwrap_or(0);
        for s in &self.stack[base..] {
            s.render(frame, main, &self.theme);
        }
        self.render_message(frame, message);
        self.render_status(frame, status);
    }

    fn render_message(&self, frame: &mut Frame, area: Rect) {
        let line = match &self.message {
            Some((Level::Error, m)) => Line::styled(
                safe(m).into_owned(),
                self.theme.style(Meaning::MessageError),
            ),
            Some((Level::Info, m)) => {
                Line::styled(safe(m).into_owned(), self.theme.style(Meaning::MessageInfo))
            }
            // At the gate nothing but the gate (and quitting) is reachable.
            None if self.gated() => Line::from(vec![
                Span::styled("Ctrl-C", self.theme.style(Meaning::Key)),
                Span::styled(" quit", self.theme.style(Meaning::Muted)),
            ]),
            None => Line::from(vec![
                Span::styled("?", self.theme.style(Meaning::Key)),
                Span::styled(" help  ", self.theme.style(Meaning::Muted)),
                Span::styled(":", self.theme.style(Meaning::Key)),
                Span::styled(" commands  ", self.theme.style(Meaning::Muted)),
                Span::styled("q", self.theme.style(Meaning::Key)),
                Span::styled(" quit", self.theme.style(Meaning::Muted)),
            ]),
        };
        frame.render_widget(Paragraph::new(line), area);
    }

    fn render_status(&self, frame: &mut Frame, area: Rect) {
        let bar = self.theme.style(Meaning::StatusBar);
        let env_style = if self.info.production {
            self.theme.style(Meaning::StatusEnvProduction)
        } else {
            self.theme.style(Meaning::StatusEnv)
        };
        let mut spans = Vec::new();
        if self.info.demo {
            spans.push(Span::styled(
                " DEMO ",
                self.theme.style(Meaning::StatusDemo),
            ));
        }
        spans.push(Span::styled(
            format!(" {} ", safe(&self.info.environment)),
            env_style,
        ));
        // Before the gate first passes, the role is a placeholder (the
        // console database has not been asked yet): say so instead.
        let role = if self.root.is_some() {
            "not signed in".to_string()
        } else {
            self.info.role.to_string()
        };
        spans.push(Span::styled(
            format!(
                " {} ({role}) │ {} ",
                safe(&self.info.operator),
                safe(&self.info.database)
            ),
            bar,
        ));
        frame.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
    }
}
