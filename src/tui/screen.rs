//! The Elm-style contract every screen and overlay follows: messages in,
//! commands out, pure rendering. Only the runner (`tui::run`) turns commands
//! into effects on the terminal and the console.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ratatui::Frame;
use ratatui::layout::Rect;

use crate::core::action::{Action, Reply};
use crate::tui::keymap::{Binding, Context, Key};
use crate::tui::theme::Theme;

/// Identifies one dispatched action, so its reply finds its way back and a
/// stale one is recognised (latest request wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

impl RequestId {
    /// A fresh, process-unique id.
    pub fn next() -> RequestId {
        RequestId(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed))
    }
}

/// A failed action, as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What the message line shows, e.g. `database unreachable — ...`.
    pub message: String,
    pub unreachable: bool,
    /// The MFA gate must be passed (again): the compositor shows the gate.
    pub mfa_required: bool,
}

impl Failure {
    pub fn from_error(e: &crate::core::Error) -> Failure {
        if e.is_unreachable() {
            let detail = match e {
                crate::core::Error::Unavailable { which, detail } => format!("{which}: {detail}"),
                other => other.to_string(),
            };
            Failure {
                message: format!("database unreachable — {detail}"),
                unreachable: true,
                mfa_required: false,
            }
        } else {
            Failure {
                message: e.to_string(),
                unreachable: false,
                mfa_required: matches!(e, crate::core::Error::MfaRequired(_)),
            }
        }
    }
}

/// The result of one dispatched action.
#[derive(Debug, Clone)]
pub struct Done {
    pub id: RequestId,
    pub result: Result<Reply, Failure>,
}

/// What a screen receives.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(Key),
    /// An action finished; every screen sees it and ignores ids it did not
    /// ask for.
    Done(Done),
    /// Time passes (debounce, spinners).
    Tick(Instant),
    /// Replace the search query (palette `:tenant <query>`).
    SetQuery(String),
    /// How far a long action (audit verify) is; sent by the runner while
    /// the action runs, before its [`Msg::Done`].
    Progress {
        id: RequestId,
        /// What is being done (a table, an external system, "verify").
        step: String,
        done: u64,
        total: u64,
    },
}

/// What a screen asks for.
pub enum Command {
    /// Put a screen (or overlay) on top of the stack.
    Push(Box<dyn Screen>),
    /// Remove this screen from the stack.
    Pop,
    Quit,
    /// Run an action in a task; its reply comes back as [`Msg::Done`].
    Run {
        id: RequestId,
        action: Action,
    },
    /// Go to the search screen with this query.
    SearchFor(String),
    SetTheme(String),
    /// Toggle the help overlay for the screen below.
    Help,
    /// Open the command palette.
    Palette,
    /// Open the audit screen (palette `:audit`), if the role may.
    OpenAudit,
    /// Open the data-subject requests (palette `:erasure`, `e` on the
    /// search list), if the role may.
    OpenErasure,
    /// Open the Backups screen (palette `:backups`), if the role may.
    OpenBackups,
    /// The MFA gate passed: the status bar shows this operator and role,
    /// and the gate makes way for the screens.
    Authenticated(crate::core::console::ConsoleInfo),
    /// The step-up for request `asked` passed: send `action` again under a
    /// new id; its reply reaches the screens under `asked`, so the screen
    /// that asked takes it.
    Resend {
        asked: RequestId,
        action: Action,
    },
    /// The step-up for request `asked` was cancelled: the screen that asked
    /// gets a failure for it.
    CancelStepUp(RequestId),
    Error(String),
    Notify(String),
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Push(s) => write!(f, "Push({})", s.name()),
            Command::Pop => f.write_str("Pop"),
            Command::Quit => f.write_str("Quit"),
            Command::Run { id, action } => write!(f, "Run({id:?}, {action:?})"),
            Command::SearchFor(q) => write!(f, "SearchFor({q:?})"),
            Command::SetTheme(t) => write!(f, "SetTheme({t:?})"),
            Command::Help => f.write_str("Help"),
            Command::Palette => f.write_str("Palette"),
            Command::OpenAudit => f.write_str("OpenAudit"),
            Command::OpenErasure => f.write_str("OpenErasure"),
            Command::OpenBackups => f.write_str("OpenBackups"),
            Command::Authenticated(i) => write!(f, "Authenticated({}, {})", i.operator, i.role),
            Command::Resend { asked, action } => write!(f, "Resend({asked:?}, {action:?})"),
            Command::CancelStepUp(id) => write!(f, "CancelStepUp({id:?})"),
            Command::Error(m) => write!(f, "Error({m:?})"),
            Command::Notify(m) => write!(f, "Notify({m:?})"),
        }
    }
}

/// One section of a screen's help: a context and its table.
pub type KeymapSection = (Context, &'static [Binding]);

/// A screen or overlay on the stack.
pub trait Screen {
    /// A short name for titles and debugging.
    fn name(&self) -> &'static str;
    /// Handles one message. Never awaits; side effects are commands.
    fn update(&mut self, msg: &Msg) -> Vec<Command>;
    /// Draws the screen. Pure.
    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme);
    /// The keymap tables of this screen, for the help overlay.
    fn keymap(&self) -> Vec<KeymapSection>;
    /// Where the keyboard focus is now.
    fn context(&self) -> Context;
    /// Overlays are drawn over the screen below instead of replacing it.
    fn is_overlay(&self) -> bool {
        false
    }
    /// Who is signed in (operator, role, demo): handed to a screen when it
    /// is pushed and again when the gate passes.
    fn set_info(&mut self, _info: &crate::core::console::ConsoleInfo) {}
    /// True while the screen changes with time alone (a countdown): the
    /// runner redraws on ticks then.
    fn animating(&self) -> bool {
        false
    }
}

/// True for a failure that asks for a step-up of one action (not the gate).
pub fn is_step_up(f: &Failure) -> bool {
    f.mfa_required && f.message.contains("step-up")
}

/// The state of something being fetched.
#[derive(Debug, Clone, PartialEq)]
pub enum Load<T> {
    Loading,
    Loaded(T),
    Failed(String),
}
