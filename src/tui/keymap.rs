//! Keymaps as data. Each context has a table of (keys, action, description);
//! [`resolve`] turns a key into an action with a pure lookup over the same
//! tables the `?` help overlay is drawn from, so help never lies.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A key as the keymap sees it: a code and the modifiers that matter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    pub code: KeyCode,
    pub mods: KeyModifiers,
}

impl Key {
    pub const fn plain(code: KeyCode) -> Key {
        Key {
            code,
            mods: KeyModifiers::NONE,
        }
    }

    pub const fn char(c: char) -> Key {
        Key::plain(KeyCode::Char(c))
    }

    pub const fn ctrl(c: char) -> Key {
        Key {
            code: KeyCode::Char(c),
            mods: KeyModifiers::CONTROL,
        }
    }

    /// Normalises a terminal key event: for characters, Shift is already in
    /// the character (`G`, `?`), so it is dropped; upper-case letters with
    /// Ctrl are folded to lower case.
    pub fn from_event(ev: &KeyEvent) -> Key {
        let mut mods =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        let mut code = ev.code;
        if let KeyCode::Char(c) = code {
            mods.remove(KeyModifiers::SHIFT);
            if mods.contains(KeyModifiers::CONTROL) {
                code = KeyCode::Char(c.to_ascii_lowercase());
            }
        }
        if code == KeyCode::BackTab {
            mods.remove(KeyModifiers::SHIFT);
        }
        Key { code, mods }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.mods.contains(KeyModifiers::CONTROL) {
            f.write_str("Ctrl-")?;
        }
        if self.mods.contains(KeyModifiers::ALT) {
            f.write_str("Alt-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("Space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::Enter => f.write_str("Enter"),
            KeyCode::Esc => f.write_str("Esc"),
            KeyCode::Tab => f.write_str("Tab"),
            KeyCode::BackTab => f.write_str("Shift-Tab"),
            KeyCode::Up => f.write_str("↑"),
            KeyCode::Down => f.write_str("↓"),
            KeyCode::Left => f.write_str("←"),
            KeyCode::Right => f.write_str("→"),
            KeyCode::Home => f.write_str("Home"),
            KeyCode::End => f.write_str("End"),
            KeyCode::PageUp => f.write_str("PgUp"),
            KeyCode::PageDown => f.write_str("PgDn"),
            KeyCode::Backspace => f.write_str("Backspace"),
            other => write!(f, "{other:?}"),
        }
    }
}

/// What a key asks for. Screens interpret these; text keys that resolve to
/// nothing go to the focused input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAction {
    /// Quit charon (Ctrl-C everywhere; q when not typing).
    Quit,
    Help,
    Palette,
    /// Esc: leave the input, close the overlay, or go back.
    Back,
    Up,
    Down,
    Top,
    Bottom,
    HalfPageDown,
    HalfPageUp,
    /// Enter: open the selection / run the command.
    Open,
    /// `/`: filter the current list.
    Filter,
    /// Tab in the palette.
    Complete,
    /// `v` on the audit screen: verify the hash chain.
    Verify,
    /// `a` / `Ctrl-a` at the gate: sign with the security key (ssh-agent).
    Agent,
    /// `Ctrl-p` at the gate: switch between the OTP and the PIV PIN field.
    Piv,
    /// `r` on a tenant: its records.
    Records,
    /// Records: the next / previous page (keyset), the first / last page.
    NextPage,
    PrevPage,
    FirstPage,
    LastPage,
    /// Records: the next / previous record type tab.
    NextTab,
    PrevTab,
    /// Records: `1`–`8` jump to that tab (the screen reads the digit).
    JumpTab,
    /// Records: sort by date / amount.
    Sort,
    /// Records: ascending / descending.
    Order,
    /// Record detail: `v` reveals the selected personal field (support,
    /// compliance), for a reason.
    Reveal,
    /// Record detail: `x` redacts the selected field (compliance).
    Redact,
    /// Redaction preview: `y` applies it (asks for a reason).
    Confirm,
    /// Redaction preview: `n` cancels.
    Cancel,
    /// `e` on the search list: the data-subject requests (compliance).
    Erasure,
    /// Erasure list: `n` a new request.
    New,
    /// `r`: ask the console again.
    Refresh,
    /// Erasure request: `p` plan (asks for the identifiers).
    Plan,
    /// Erasure request: `a` approve the shown plan (step-up).
    Approve,
    /// Erasure request: `x` execute (identifiers, step-up, progress).
    Execute,
    /// Erasure request: `u` run the external queue.
    RunQueue,
    /// Erasure request: `c` the certificate.
    Certificate,
    /// Forms: the next / previous field.
    NextField,
    PrevField,
}

/// A row of a keymap table.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    pub keys: &'static [Key],
    pub action: KeyAction,
    pub desc: &'static str,
}

impl Binding {
    /// The keys as shown in help, e.g. `j / ↓`.
    pub fn keys_label(&self) -> String {
        self.keys
            .iter()
            .map(Key::to_string)
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

/// Where the keyboard focus is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Context {
    /// Typing in the tenant search input.
    SearchInput,
    /// Moving in the tenant search results.
    SearchList,
    /// The tenant overview (members list).
    Tenant,
    /// Typing the members filter on the tenant overview.
    TenantFilter,
    /// The `:` command palette.
    Palette,
    /// The `?` help overlay.
    Help,
    /// The audit log list.
    Audit,
    /// Typing the audit filter line.
    AuditFilter,
    /// One audit entry in full.
    AuditDetail,
    /// The MFA gate, choosing a demo role.
    GateRoles,
    /// The MFA gate, typing the OTP.
    GateOtp,
    /// The MFA gate, typing the PIN of the PIV key.
    GatePin,
    /// A tenant's records (tabs, one page of a table).
    Records,
    /// Typing the records filter line.
    RecordsFilter,
    /// One record in full (a trip with its route).
    Record,
    /// Record detail: the reveal key (roles that may reveal).
    RecordReveal,
    /// Record detail: the redaction key (compliance).
    RecordRedact,
    /// Typing the reason (or ticket) for a reveal or a redaction.
    RecordReason,
    /// Choosing how to redact a field.
    RecordRedactChoose,
    /// The before / after of a redaction.
    RecordRedactPreview,
    /// A step-up prompt in the demo (software key).
    StepUpDemo,
    /// A step-up prompt, typing the OTP.
    StepUpOtp,
    /// A step-up prompt, typing the PIV PIN.
    StepUpPin,
    /// The data-subject requests (erasure and access).
    ErasureList,
    /// Typing in the new-request form.
    ErasureForm,
    /// One request: fields, plan, steps.
    ErasureRequest,
    /// Typing the subject's identifiers (plan, execute).
    ErasureIdentifiers,
    /// Approve this plan? (its SHA-256 shown)
    ErasureConfirm,
    /// A certificate (Markdown).
    ErasureCertificate,
    /// The Backups screen (sources, backups, restore tests).
    Backups,
}

impl Context {
    /// True when printable keys are text, so `q`, `?` and `:` are typed
    /// rather than acted on.
    pub fn typing(self) -> bool {
        matches!(
            self,
            Context::SearchInput
                | Context::TenantFilter
                | Context::Palette
                | Context::AuditFilter
                | Context::GateOtp
                | Context::GatePin
                | Context::RecordsFilter
                | Context::RecordReason
                | Context::StepUpOtp
                | Context::StepUpPin
                | Context::ErasureForm
                | Context::ErasureIdentifiers
        )
    }

    pub fn title(self) -> &'static str {
        match self {
            Context::SearchInput => "Search (typing)",
            Context::SearchList => "Search results",
            Context::Tenant => "Tenant",
            Context::TenantFilter => "Members filter (typing)",
            Context::Palette => "Command palette",
            Context::Help => "Help",
            Context::Audit => "Audit log",
            Context::AuditFilter => "Audit filter (typing)",
            Context::AuditDetail => "Audit entry",
            Context::GateRoles => "MFA gate (demo roles)",
            Context::GateOtp => "MFA gate (typing the OTP)",
            Context::GatePin => "MFA gate (typing the PIV PIN)",
            Context::Records => "Records",
            Context::RecordsFilter => "Records filter (typing)",
            Context::Record => "Record",
            Context::RecordReveal => "Record (reveal)",
            Context::RecordRedact => "Record (redaction)",
            Context::RecordReason => "Reason or ticket (typing)",
            Context::RecordRedactChoose => "Redaction: how",
            Context::RecordRedactPreview => "Redaction: before / after",
            Context::StepUpDemo => "Step-up (demo software key)",
            Context::StepUpOtp => "Step-up (typing the OTP)",
            Context::StepUpPin => "Step-up (typing the PIV PIN)",
            Context::ErasureList => "Data-subject requests",
            Context::ErasureForm => "New request (typing)",
            Context::ErasureRequest => "Data-subject request",
            Context::ErasureIdentifiers => "Subject identifiers (typing)",
            Context::ErasureConfirm => "Approve the plan?",
            Context::ErasureCertificate => "Certificate",
            Context::Backups => "Backups",
        }
    }
}

const UP: Key = Key::plain(KeyCode::Up);
const DOWN: Key = Key::plain(KeyCode::Down);
const ESC: Key = Key::plain(KeyCode::Esc);
const ENTER: Key = Key::plain(KeyCode::Enter);

/// Keys that work everywhere, even while typing.
pub const ALWAYS: &[Binding] = &[Binding {
    keys: &[Key::ctrl('c')],
    action: KeyAction::Quit,
    desc: "quit charon",
}];

/// Keys that work on every screen when not typing.
pub const GLOBAL: &[Binding] = &[
    Binding {
        keys: &[Key::char('q')],
        action: KeyAction::Quit,
        desc: "quit charon",
    },
    Binding {
        keys: &[Key::char('?')],
        action: KeyAction::Help,
        desc: "show or hide this help",
    },
    Binding {
        keys: &[Key::char(':')],
        action: KeyAction::Palette,
        desc: "command palette (:tenant, :audit, :erasure, :backups, :theme, :help, :quit)",
    },
];

const LIST_MOVES: [Binding; 6] = [
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "move up",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "move down",
    },
    Binding {
        keys: &[Key::char('g'), Key::plain(KeyCode::Home)],
        action: KeyAction::Top,
        desc: "go to the top",
    },
    Binding {
        keys: &[Key::char('G'), Key::plain(KeyCode::End)],
        action: KeyAction::Bottom,
        desc: "go to the bottom",
    },
    Binding {
        keys: &[Key::ctrl('d'), Key::plain(KeyCode::PageDown)],
        action: KeyAction::HalfPageDown,
        desc: "half a page down",
    },
    Binding {
        keys: &[Key::ctrl('u'), Key::plain(KeyCode::PageUp)],
        action: KeyAction::HalfPageUp,
        desc: "half a page up",
    },
];

pub const SEARCH_INPUT: &[Binding] = &[
    Binding {
        keys: &[UP, Key::ctrl('p')],
        action: KeyAction::Up,
        desc: "select the previous tenant",
    },
    Binding {
        keys: &[DOWN, Key::ctrl('n')],
        action: KeyAction::Down,
        desc: "select the next tenant",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "open the selected tenant",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "leave the input (list mode)",
    },
];

pub const SEARCH_LIST: &[Binding] = &[
    LIST_MOVES[0],
    LIST_MOVES[1],
    LIST_MOVES[2],
    LIST_MOVES[3],
    LIST_MOVES[4],
    LIST_MOVES[5],
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "open the selected tenant",
    },
    Binding {
        keys: &[Key::char('/'), Key::char('i')],
        action: KeyAction::Filter,
        desc: "back to the search input",
    },
    Binding {
        keys: &[Key::char('e')],
        action: KeyAction::Erasure,
        desc: "data-subject requests: erasure and access (compliance)",
    },
];

pub const TENANT: &[Binding] = &[
    LIST_MOVES[0],
    LIST_MOVES[1],
    LIST_MOVES[2],
    LIST_MOVES[3],
    LIST_MOVES[4],
    LIST_MOVES[5],
    Binding {
        keys: &[Key::char('/')],
        action: KeyAction::Filter,
        desc: "filter members by name or role",
    },
    Binding {
        keys: &[Key::char('r')],
        action: KeyAction::Records,
        desc: "the tenant's records (transactions, receipts, trips, ...)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back (clear the filter first)",
    },
];

pub const TENANT_FILTER: &[Binding] = &[
    Binding {
        keys: &[UP, Key::ctrl('p')],
        action: KeyAction::Up,
        desc: "select the previous member",
    },
    Binding {
        keys: &[DOWN, Key::ctrl('n')],
        action: KeyAction::Down,
        desc: "select the next member",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "keep the filter, back to the list",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "clear the filter",
    },
];

pub const PALETTE: &[Binding] = &[
    Binding {
        keys: &[Key::plain(KeyCode::Tab)],
        action: KeyAction::Complete,
        desc: "complete the command or argument",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "run the command",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "close the palette",
    },
];

pub const HELP: &[Binding] = &[
    Binding {
        keys: &[ESC, Key::char('?'), Key::char('q')],
        action: KeyAction::Back,
        desc: "close the help",
    },
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "scroll up",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "scroll down",
    },
];

pub const AUDIT: &[Binding] = &[
    LIST_MOVES[0],
    LIST_MOVES[1],
    LIST_MOVES[2],
    LIST_MOVES[3],
    LIST_MOVES[4],
    LIST_MOVES[5],
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "show the selected entry in full",
    },
    Binding {
        keys: &[Key::char('/')],
        action: KeyAction::Filter,
        desc: "filter: op:<login> action:<name> outcome:allowed|denied|failed tenant:<uuid> since:<date> until:<date>",
    },
    Binding {
        keys: &[Key::char('v')],
        action: KeyAction::Verify,
        desc: "verify the hash chain (progress, then the verdict)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back",
    },
];

pub const BACKUPS: &[Binding] = &[
    LIST_MOVES[0],
    LIST_MOVES[1],
    LIST_MOVES[2],
    LIST_MOVES[3],
    LIST_MOVES[4],
    LIST_MOVES[5],
    Binding {
        keys: &[Key::plain(KeyCode::Tab), Key::char(']')],
        action: KeyAction::NextTab,
        desc: "next backup source",
    },
    Binding {
        keys: &[Key::plain(KeyCode::BackTab), Key::char('[')],
        action: KeyAction::PrevTab,
        desc: "previous backup source",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "restore-test the selected backup (live progress, then the verdict)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back",
    },
];

pub const AUDIT_FILTER: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "apply the filter (an empty line shows every entry)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel, keep the current filter",
    },
];

pub const AUDIT_DETAIL: &[Binding] = &[
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "scroll up",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "scroll down",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back to the list",
    },
];

pub const GATE_ROLES: &[Binding] = &[
    LIST_MOVES[0],
    LIST_MOVES[1],
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "sign in with the chosen demo role (software key)",
    },
];

pub const GATE_OTP: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "send the OTP (a YubiKey types it and presses Enter)",
    },
    Binding {
        keys: &[Key::ctrl('a')],
        action: KeyAction::Agent,
        desc: "use the security key in the ssh-agent (confirm on the key)",
    },
    Binding {
        keys: &[Key::ctrl('p')],
        action: KeyAction::Piv,
        desc: "use the PIV key of the YubiKey (type its PIN)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "clear the typed text",
    },
];

pub const GATE_PIN: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "send the PIN to the PIV key (slot 9a)",
    },
    Binding {
        keys: &[Key::ctrl('p')],
        action: KeyAction::Piv,
        desc: "back to the OTP field",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "clear the typed PIN",
    },
];

pub const RECORDS: &[Binding] = &[
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "move up in the page",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "move down in the page",
    },
    Binding {
        keys: &[Key::char('n'), Key::plain(KeyCode::PageDown)],
        action: KeyAction::NextPage,
        desc: "next page",
    },
    Binding {
        keys: &[Key::char('p'), Key::plain(KeyCode::PageUp)],
        action: KeyAction::PrevPage,
        desc: "previous page",
    },
    Binding {
        keys: &[Key::char('g'), Key::plain(KeyCode::Home)],
        action: KeyAction::FirstPage,
        desc: "first page",
    },
    Binding {
        keys: &[Key::char('G'), Key::plain(KeyCode::End)],
        action: KeyAction::LastPage,
        desc: "last page",
    },
    Binding {
        keys: &[Key::plain(KeyCode::Tab), Key::char(']')],
        action: KeyAction::NextTab,
        desc: "next record type",
    },
    Binding {
        keys: &[Key::plain(KeyCode::BackTab), Key::char('[')],
        action: KeyAction::PrevTab,
        desc: "previous record type",
    },
    Binding {
        keys: &[
            Key::char('1'),
            Key::char('2'),
            Key::char('3'),
            Key::char('4'),
            Key::char('5'),
            Key::char('6'),
            Key::char('7'),
            Key::char('8'),
        ],
        action: KeyAction::JumpTab,
        desc: "that record type",
    },
    Binding {
        keys: &[Key::char('s')],
        action: KeyAction::Sort,
        desc: "sort by date / amount (types with an amount)",
    },
    Binding {
        keys: &[Key::char('o')],
        action: KeyAction::Order,
        desc: "ascending / descending",
    },
    Binding {
        keys: &[Key::char('/')],
        action: KeyAction::Filter,
        desc: "filter: text from:YYYY-MM-DD to:YYYY-MM-DD min:N max:N",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "the selected record in full",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back to the tenant",
    },
];

pub const RECORDS_FILTER: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "apply the filter (an empty line shows every record)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel, keep the current filter",
    },
];

pub const RECORD: &[Binding] = &[
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "select the previous field",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "select the next field",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back to the list",
    },
];

/// Shown (and acted on) only for roles that may reveal.
pub const RECORD_REVEAL: &[Binding] = &[Binding {
    keys: &[Key::char('v')],
    action: KeyAction::Reveal,
    desc: "reveal the selected personal field for a while (reason, step-up)",
}];

/// Shown (and acted on) only for compliance.
pub const RECORD_REDACT: &[Binding] = &[Binding {
    keys: &[Key::char('x')],
    action: KeyAction::Redact,
    desc: "redact the selected field permanently (preview first)",
}];

pub const RECORD_REASON: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "send with this reason or ticket",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel",
    },
];

pub const RECORD_REDACT_CHOOSE: &[Binding] = &[
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "previous way to redact",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "next way to redact",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "preview: card / iban / email / phone spans, or the whole value nulled",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel",
    },
];

pub const RECORD_REDACT_PREVIEW: &[Binding] = &[
    Binding {
        keys: &[Key::char('y')],
        action: KeyAction::Confirm,
        desc: "apply the redaction (asks for a reason, then step-up)",
    },
    Binding {
        keys: &[Key::char('n'), ESC],
        action: KeyAction::Cancel,
        desc: "cancel, nothing changes",
    },
];

pub const STEP_UP_DEMO: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "touch the demo software key for this action",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel the action",
    },
];

pub const STEP_UP_OTP: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "send the OTP (a YubiKey types it and presses Enter)",
    },
    Binding {
        keys: &[Key::ctrl('a')],
        action: KeyAction::Agent,
        desc: "sign this action with the security key in the ssh-agent",
    },
    Binding {
        keys: &[Key::ctrl('p')],
        action: KeyAction::Piv,
        desc: "sign this action with the PIV key of the YubiKey (type its PIN)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel the action",
    },
];

pub const STEP_UP_PIN: &[Binding] = &[
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "send the PIN to the PIV key (slot 9a)",
    },
    Binding {
        keys: &[Key::ctrl('p')],
        action: KeyAction::Piv,
        desc: "back to the OTP field",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel the action",
    },
];

pub const ERASURE_LIST: &[Binding] = &[
    LIST_MOVES[0],
    LIST_MOVES[1],
    LIST_MOVES[2],
    LIST_MOVES[3],
    LIST_MOVES[4],
    LIST_MOVES[5],
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "open the selected request",
    },
    Binding {
        keys: &[Key::char('n')],
        action: KeyAction::New,
        desc: "a new request (erasure or access)",
    },
    Binding {
        keys: &[Key::char('r')],
        action: KeyAction::Refresh,
        desc: "refresh the list",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back",
    },
];

pub const ERASURE_FORM: &[Binding] = &[
    Binding {
        keys: &[Key::plain(KeyCode::Tab), DOWN],
        action: KeyAction::NextField,
        desc: "next field",
    },
    Binding {
        keys: &[Key::plain(KeyCode::BackTab), UP],
        action: KeyAction::PrevField,
        desc: "previous field",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "check the form and create the request",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel, nothing is created",
    },
];

pub const ERASURE_REQUEST: &[Binding] = &[
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "scroll up",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "scroll down",
    },
    Binding {
        keys: &[Key::char('p')],
        action: KeyAction::Plan,
        desc: "plan: find everything held (asks for the identifiers)",
    },
    Binding {
        keys: &[Key::char('a')],
        action: KeyAction::Approve,
        desc: "approve the shown plan (its SHA-256; another officer; step-up)",
    },
    Binding {
        keys: &[Key::char('x')],
        action: KeyAction::Execute,
        desc: "execute (asks for the identifiers; step-up; progress)",
    },
    Binding {
        keys: &[Key::char('u')],
        action: KeyAction::RunQueue,
        desc: "run the external queue (failed steps are retried)",
    },
    Binding {
        keys: &[Key::char('c')],
        action: KeyAction::Certificate,
        desc: "the certificate (Markdown, SHA-256)",
    },
    Binding {
        keys: &[Key::char('r')],
        action: KeyAction::Refresh,
        desc: "refresh",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back to the list",
    },
];

pub const ERASURE_IDENTIFIERS: &[Binding] = &[
    Binding {
        keys: &[Key::plain(KeyCode::Tab), DOWN],
        action: KeyAction::NextField,
        desc: "next field",
    },
    Binding {
        keys: &[Key::plain(KeyCode::BackTab), UP],
        action: KeyAction::PrevField,
        desc: "previous field",
    },
    Binding {
        keys: &[ENTER],
        action: KeyAction::Open,
        desc: "send (the identifiers are forgotten once sent)",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "cancel",
    },
];

pub const ERASURE_CONFIRM: &[Binding] = &[
    Binding {
        keys: &[Key::char('y')],
        action: KeyAction::Confirm,
        desc: "approve this plan (then step-up)",
    },
    Binding {
        keys: &[Key::char('n'), ESC],
        action: KeyAction::Cancel,
        desc: "cancel, nothing is approved",
    },
];

pub const ERASURE_CERTIFICATE: &[Binding] = &[
    Binding {
        keys: &[Key::char('k'), UP],
        action: KeyAction::Up,
        desc: "scroll up",
    },
    Binding {
        keys: &[Key::char('j'), DOWN],
        action: KeyAction::Down,
        desc: "scroll down",
    },
    Binding {
        keys: &[Key::ctrl('d'), Key::plain(KeyCode::PageDown)],
        action: KeyAction::HalfPageDown,
        desc: "half a page down",
    },
    Binding {
        keys: &[Key::ctrl('u'), Key::plain(KeyCode::PageUp)],
        action: KeyAction::HalfPageUp,
        desc: "half a page up",
    },
    Binding {
        keys: &[ESC],
        action: KeyAction::Back,
        desc: "back to the request",
    },
];

/// The table of one context (without the global keys).
pub fn bindings(ctx: Context) -> &'static [Binding] {
    match ctx {
        Context::SearchInput => SEARCH_INPUT,
        Context::SearchList => SEARCH_LIST,
        Context::Tenant => TENANT,
        Context::TenantFilter => TENANT_FILTER,
        Context::Palette => PALETTE,
        Context::Help => HELP,
        Context::Audit => AUDIT,
        Context::AuditFilter => AUDIT_FILTER,
        Context::AuditDetail => AUDIT_DETAIL,
        Context::GateRoles => GATE_ROLES,
        Context::GateOtp => GATE_OTP,
        Context::GatePin => GATE_PIN,
        Context::Records => RECORDS,
        Context::RecordsFilter => RECORDS_FILTER,
        Context::Record => RECORD,
        Context::RecordReveal => RECORD_REVEAL,
        Context::RecordRedact => RECORD_REDACT,
        Context::RecordReason => RECORD_REASON,
        Context::RecordRedactChoose => RECORD_REDACT_CHOOSE,
        Context::RecordRedactPreview => RECORD_REDACT_PREVIEW,
        Context::StepUpDemo => STEP_UP_DEMO,
        Context::StepUpOtp => STEP_UP_OTP,
        Context::StepUpPin => STEP_UP_PIN,
        Context::ErasureList => ERASURE_LIST,
        Context::ErasureForm => ERASURE_FORM,
        Context::ErasureRequest => ERASURE_REQUEST,
        Context::ErasureIdentifiers => ERASURE_IDENTIFIERS,
        Context::ErasureConfirm => ERASURE_CONFIRM,
        Context::ErasureCertificate => ERASURE_CERTIFICATE,
        Context::Backups => BACKUPS,
    }
}

/// The tables consulted for a key in this context, in order: the context's
/// own, then the keys that work everywhere, then (when not typing) the
/// global ones.
pub fn tables(ctx: Context) -> Vec<&'static [Binding]> {
    let mut t = vec![bindings(ctx), ALWAYS];
    if !ctx.typing() {
        t.push(GLOBAL);
    }
    t
}

/// Resolves a key in a context. Pure: the same tables draw the help.
pub fn resolve(ctx: Context, key: Key) -> Option<KeyAction> {
    tables(ctx)
        .into_iter()
        .flat_map(|t| t.iter())
        .find(|b| b.keys.contains(&key))
        .map(|b| b.action)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyEventKind, KeyEventState};

    fn ev(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    #[test]
    fn list_keys_move() {
        use KeyAction::*;
        let ctx = Context::SearchList;
        assert_eq!(resolve(ctx, Key::char('j')), Some(Down));
        assert_eq!(resolve(ctx, Key::plain(KeyCode::Down)), Some(Down));
        assert_eq!(resolve(ctx, Key::char('k')), Some(Up));
        assert_eq!(resolve(ctx, Key::char('g')), Some(Top));
        assert_eq!(resolve(ctx, Key::char('G')), Some(Bottom));
        assert_eq!(resolve(ctx, Key::ctrl('d')), Some(HalfPageDown));
        assert_eq!(resolve(ctx, Key::ctrl('u')), Some(HalfPageUp));
        assert_eq!(resolve(ctx, Key::char('/')), Some(Filter));
        assert_eq!(resolve(ctx, Key::char('q')), Some(Quit));
        assert_eq!(resolve(ctx, Key::char('?')), Some(Help));
        assert_eq!(resolve(ctx, Key::char(':')), Some(Palette));
        assert_eq!(resolve(ctx, Key::char('x')), None);
    }

    #[test]
    fn typing_contexts_leave_letters_to_the_input() {
        for ctx in [
            Context::SearchInput,
            Context::TenantFilter,
            Context::Palette,
        ] {
            for c in ['q', 'j', 'k', 'g', 'G', '?', ':', '/'] {
                assert_eq!(resolve(ctx, Key::char(c)), None, "{ctx:?} {c}");
            }
            assert_eq!(resolve(ctx, Key::ctrl('c')), Some(KeyAction::Quit));
        }
        assert_eq!(
            resolve(Context::SearchInput, Key::ctrl('n')),
            Some(KeyAction::Down)
        );
        assert_eq!(
            resolve(Context::SearchInput, Key::ctrl('p')),
            Some(KeyAction::Up)
        );
        assert_eq!(
            resolve(Context::SearchInput, Key::plain(KeyCode::Esc)),
            Some(KeyAction::Back)
        );
    }

    #[test]
    fn events_are_normalised() {
        assert_eq!(
            Key::from_event(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Key::char('G')
        );
        assert_eq!(
            Key::from_event(&ev(KeyCode::Char('?'), KeyModifiers::SHIFT)),
            Key::char('?')
        );
        assert_eq!(
            Key::from_event(&ev(
                KeyCode::Char('C'),
                KeyModifiers::CONTROL | KeyModifiers::SHIFT
            )),
            Key::ctrl('c')
        );
    }

    #[test]
    fn no_key_is_bound_twice_in_one_context() {
        for ctx in [
            Context::SearchInput,
            Context::SearchList,
            Context::Tenant,
            Context::TenantFilter,
            Context::Palette,
            Context::Help,
            Context::Audit,
            Context::AuditFilter,
            Context::AuditDetail,
            Context::GateRoles,
            Context::GateOtp,
            Context::GatePin,
            Context::Records,
            Context::RecordsFilter,
            Context::Record,
            Context::RecordReveal,
            Context::RecordRedact,
            Context::RecordReason,
            Context::RecordRedactChoose,
            Context::RecordRedactPreview,
            Context::StepUpDemo,
            Context::StepUpOtp,
            Context::StepUpPin,
            Context::ErasureList,
            Context::ErasureForm,
            Context::ErasureRequest,
            Context::ErasureIdentifiers,
            Context::ErasureConfirm,
            Context::ErasureCertificate,
            Context::Backups,
        ] {
            let mut seen = std::collections::HashSet::new();
            for b in tables(ctx).into_iter().flat_map(|t| t.iter()) {
                for k in b.keys {
                    // A later table may repeat a key only if an earlier one
                    // already wins with the same meaning (Help: q closes).
                    if !seen.insert(*k) {
                        assert_eq!(ctx, Context::Help, "{ctx:?}: {k} bound twice");
                    }
                }
            }
        }
    }

    #[test]
    fn labels_read_well() {
        assert_eq!(Key::ctrl('d').to_string(), "Ctrl-d");
        assert_eq!(LIST_MOVES[1].keys_label(), "j / ↓");
    }
}
