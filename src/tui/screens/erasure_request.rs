//! One data-subject request: its fields, its plan grouped by table and by
//! external system, its external steps, and the keys that move it along:
//! `p` plan and `x` execute (both ask for the subject's identifiers, which
//! the console keeps only as keyed hashes; they live in the prompt until
//! sent), `a` approve the shown plan (its SHA-256 shown first; the
//! compositor's step-up prompt follows), `u` run the external queue, `c`
//! the certificate. Execution and queue runs draw a gauge fed by
//! [`Msg::Progress`]. A plan that changed since approval is shown with its
//! differences and the words that a new approval is needed.

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Gauge, Paragraph, Wrap};
use uuid::Uuid;

use crate::core::action::{Action, QueueRun, Reply, RequestDetail};
use crate::core::erasure::certificate::Certificate;
use crate::core::erasure::{ExecuteOutcome, ExecuteReport};
use crate::tui::keymap::{self, Context, Key, KeyAction, resolve};
use crate::tui::screen::{Command, Failure, KeymapSection, Load, Msg, RequestId, Screen};
use crate::tui::screens::erasure::{
    PlanView, SUBJECT_LABELS, SubjectForm, due_style, input_line, move_focus, state_style,
    type_into,
};
use crate::tui::theme::{Meaning, Theme};
use crate::tui::widgets::{centered, date, safe_owned};

/// What the identifiers are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    Plan,
    Execute,
}

/// What an action in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Plan,
    Approve,
    Execute,
    RunQueue,
}

impl Op {
    fn doing(self) -> &'static str {
        match self {
            Op::Plan => "planning (discovering everything held)…",
            Op::Approve => "approving…",
            Op::Execute => "executing",
            Op::RunQueue => "running the external queue",
        }
    }
}

/// An action in flight and how far it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    pub id: RequestId,
    pub op: Op,
    pub step: String,
    pub done: u64,
    pub total: u64,
}

/// The last result, shown above the request.
#[derive(Debug, Clone)]
pub enum Outcome {
    Planned {
        sha256: String,
        empty: bool,
    },
    Approved {
        sha256: String,
    },
    Executed(ExecuteReport),
    PlanChanged {
        approved_sha256: String,
        new_sha256: String,
        differences: Vec<String>,
    },
    QueueRun(QueueRun),
    Failed(String),
}

/// The identifiers prompt (plan, execute): the values live only here.
struct Prompt {
    purpose: Purpose,
    form: SubjectForm,
    focus: usize,
    problems: Vec<String>,
}

enum Mode {
    View,
    Identifiers(Box<Prompt>),
    /// Approve the plan with this SHA-256?
    Confirm {
        sha256: String,
    },
}

pub struct ErasureRequestScreen {
    id: Uuid,
    detail: Load<Box<RequestDetail>>,
    /// The `ErasureShow` in flight.
    loading: Option<RequestId>,
    /// The plan shown: the last one planned, else the stored one.
    plan: Option<PlanView>,
    mode: Mode,
    running: Option<Running>,
    outcome: Option<Outcome>,
    scroll: u16,
    now: Option<DateTime<Utc>>,
}

impl ErasureRequestScreen {
    /// A screen for request `id` and the command that loads it.
    pub fn open(id: Uuid) -> (ErasureRequestScreen, Vec<Command>) {
        let mut s = ErasureRequestScreen {
            id,
            detail: Load::Loading,
            loading: None,
            plan: None,
            mode: Mode::View,
            running: None,
            outcome: None,
            scroll: 0,
            now: None,
        };
        let cmds = s.reload();
        (s, cmds)
    }

    /// A screen showing `detail` (tests, and a reply already in hand).
    pub fn loaded(detail: RequestDetail) -> ErasureRequestScreen {
        ErasureRequestScreen {
            id: detail.request.id,
            plan: detail.plan.as_ref().and_then(PlanView::from_json),
            detail: Load::Loaded(Box::new(detail)),
            loading: None,
            mode: Mode::View,
            running: None,
            outcome: None,
            scroll: 0,
            now: None,
        }
    }

    /// The same screen judging overdue at a fixed time (tests).
    pub fn with_now(mut self, now: DateTime<Utc>) -> ErasureRequestScreen {
        self.now = Some(now);
        self
    }

    pub fn plan(&self) -> Option<&PlanView> {
        self.plan.as_ref()
    }

    pub fn running(&self) -> Option<&Running> {
        self.running.as_ref()
    }

    pub fn outcome(&self) -> Option<&Outcome> {
        self.outcome.as_ref()
    }

    pub fn detail(&self) -> &Load<Box<RequestDetail>> {
        &self.detail
    }

    fn reload(&mut self) -> Vec<Command> {
        let id = RequestId::next();
        self.loading = Some(id);
        vec![Command::Run {
            id,
            action: Action::ErasureShow { request: self.id },
        }]
    }

    fn state(&self) -> Option<&str> {
        match &self.detail {
            Load::Loaded(d) => Some(d.request.state.as_str()),
            _ => None,
        }
    }

    fn run(&mut self, op: Op, action: Action) -> Vec<Command> {
        let id = RequestId::next();
        self.running = Some(Running {
            id,
            op,
            step: String::new(),
            done: 0,
            total: 0,
        });
        vec![Command::Run { id, action }]
    }

    fn busy(&self) -> Option<Vec<Command>> {
        self.running.as_ref().map(|r| {
            vec![Command::Notify(format!(
                "wait: {}",
                r.op.doing().trim_end_matches('…')
            ))]
        })
    }

    fn on_key(&mut self, key: Key) -> Vec<Command> {
        match &self.mode {
            Mode::Identifiers(_) => return self.on_identifiers_key(key),
            Mode::Confirm { .. } => return self.on_confirm_key(key),
            Mode::View => {}
        }
        let action = resolve(Context::ErasureRequest, key);
        if matches!(
            action,
            Some(
                KeyAction::Plan
                    | KeyAction::Approve
                    | KeyAction::Execute
                    | KeyAction::RunQueue
                    | KeyAction::Refresh
            )
        ) && let Some(cmds) = self.busy()
        {
            return cmds;
        }
        match action {
            Some(KeyAction::Back) => vec![Command::Pop],
            Some(KeyAction::Down) => {
                self.scroll = self.scroll.saturating_add(1);
                vec![]
            }
            Some(KeyAction::Up) => {
                self.scroll = self.scroll.saturating_sub(1);
                vec![]
            }
            Some(KeyAction::Refresh) => self.reload(),
            Some(KeyAction::Plan) => self.ask_identifiers(Purpose::Plan),
            Some(KeyAction::Execute) => match self.state() {
                Some("draft") | Some("planned") => vec![Command::Error(
                    "the plan must be approved before it is executed (p plan, a approve)".into(),
                )],
                Some("done") => vec![Command::Error(
                    "this request is done — c shows its certificate".into(),
                )],
                _ => self.ask_identifiers(Purpose::Execute),
            },
            Some(KeyAction::Approve) => match &self.plan {
                Some(p) => {
                    self.mode = Mode::Confirm {
                        sha256: p.sha256.clone(),
                    };
                    vec![]
                }
                None => vec![Command::Error(
                    "no plan to approve yet — p to plan first".into(),
                )],
            },
            Some(KeyAction::RunQueue) => {
                let retry_failed = match &self.detail {
                    Load::Loaded(d) => d.steps.iter().any(|s| s.state == "failed"),
                    _ => false,
                };
                self.run(
                    Op::RunQueue,
                    Action::ErasureRunQueue {
                        request: Some(self.id),
                        retry_failed,
                    },
                )
            }
            Some(KeyAction::Certificate) => match self.state() {
                Some("done") | None => {
                    let (screen, cmds) = CertificateScreen::open(self.id);
                    let mut all = vec![Command::Push(Box::new(screen))];
                    all.extend(cmds);
                    all
                }
                Some(other) => vec![Command::Error(format!(
                    "the certificate is made when the request is done; it is {}",
                    safe_owned(other)
                ))],
            },
            _ => vec![],
        }
    }

    fn ask_identifiers(&mut self, purpose: Purpose) -> Vec<Command> {
        self.mode = Mode::Identifiers(Box::new(Prompt {
            purpose,
            form: SubjectForm::default(),
            focus: 0,
            problems: Vec::new(),
        }));
        vec![]
    }

    fn on_identifiers_key(&mut self, key: Key) -> Vec<Command> {
        let action = resolve(Context::ErasureIdentifiers, key);
        let Mode::Identifiers(prompt) = &mut self.mode else {
            return vec![];
        };
        let Prompt {
            purpose,
            form,
            focus,
            problems,
        } = prompt.as_mut();
        if move_focus(focus, SUBJECT_LABELS.len(), action) {
            return vec![];
        }
        match action {
            // The identifiers are dropped with the prompt.
            Some(KeyAction::Back) => {
                self.mode = Mode::View;
                vec![]
            }
            Some(KeyAction::Open) => match form.subject() {
                Ok(subject) => {
                    let purpose = *purpose;
                    self.mode = Mode::View;
                    match purpose {
                        Purpose::Plan => self.run(
                            Op::Plan,
                            Action::ErasurePlan {
                                request: self.id,
                                subject,
                            },
                        ),
                        Purpose::Execute => self.run(
                            Op::Execute,
                            Action::ErasureExecute {
                                request: self.id,
                                subject,
                            },
                        ),
                    }
                }
                Err(p) => {
                    *problems = p;
                    vec![]
                }
            },
            _ => {
                let f = *focus;
                type_into(form.field_mut(f), key);
                vec![]
            }
        }
    }

    fn on_confirm_key(&mut self, key: Key) -> Vec<Command> {
        let Mode::Confirm { sha256 } = &self.mode else {
            return vec![];
        };
        match resolve(Context::ErasureConfirm, key) {
            Some(KeyAction::Confirm) => {
                let plan_sha256 = sha256.clone();
                self.mode = Mode::View;
                self.run(
                    Op::Approve,
                    Action::ErasureApprove {
                        request: self.id,
                        plan_sha256,
                    },
                )
            }
            Some(KeyAction::Cancel) => {
                self.mode = Mode::View;
                vec![]
            }
            _ => vec![],
        }
    }

    fn on_done(&mut self, id: RequestId, result: &Result<Reply, Failure>) -> Vec<Command> {
        if self.loading == Some(id) {
            self.loading = None;
            return match result {
                Ok(Reply::ErasureRequest(d)) => {
                    if let Some(p) = d.plan.as_ref().and_then(PlanView::from_json) {
                        self.plan = Some(p);
                    }
                    self.detail = Load::Loaded(d.clone());
                    vec![]
                }
                Ok(_) => {
                    self.detail = Load::Failed("unexpected reply".into());
                    vec![]
                }
                Err(f) => {
                    if !matches!(self.detail, Load::Loaded(_)) {
                        self.detail = Load::Failed(f.message.clone());
                    }
                    vec![Command::Error(f.message.clone())]
                }
            };
        }
        let Some(running) = &self.running else {
            return vec![];
        };
        if running.id != id {
            return vec![];
        }
        let op = running.op;
        self.running = None;
        let outcome = match result {
            Ok(Reply::ErasurePlanned(p)) => {
                self.plan = Some(PlanView::from_plan(p));
                Outcome::Planned {
                    sha256: p.sha256.clone(),
                    empty: p.is_empty(),
                }
            }
            Ok(Reply::ErasureApproved { plan_sha256, .. }) => Outcome::Approved {
                sha256: plan_sha256.clone(),
            },
            Ok(Reply::ErasureExecuted(o)) => match o.as_ref() {
                ExecuteOutcome::Done(r) => Outcome::Executed(r.clone()),
                ExecuteOutcome::PlanChanged {
                    approved_sha256,
                    new_plan,
                    differences,
                } => {
                    self.plan = Some(PlanView::from_plan(new_plan));
                    Outcome::PlanChanged {
                        approved_sha256: approved_sha256.clone(),
                        new_sha256: new_plan.sha256.clone(),
                        differences: differences.clone(),
                    }
                }
            },
            Ok(Reply::ErasureQueueRun(q)) => Outcome::QueueRun(q.as_ref().clone()),
            Ok(_) => Outcome::Failed(format!("{}: unexpected reply", op.doing())),
            Err(f) => {
                self.outcome = Some(Outcome::Failed(f.message.clone()));
                return vec![Command::Error(f.message.clone())];
            }
        };
        self.outcome = Some(outcome);
        // The state moved on: show it.
        self.reload()
    }

    fn outcome_lines(&self, theme: &Theme) -> Vec<Line<'static>> {
        let ok = theme.style(Meaning::Ok);
        let warn = theme.style(Meaning::Warning);
        let danger = theme.style(Meaning::Danger);
        let Some(o) = &self.outcome else {
            return vec![];
        };
        let mut out = match o {
            Outcome::Planned { sha256, empty } => vec![Line::styled(
                if *empty {
                    format!("planned: nothing was found for this subject (plan {sha256})")
                } else {
                    format!("planned: review the plan below, then a to approve (plan {sha256})")
                },
                ok,
            )],
            Outcome::Approved { sha256 } => vec![Line::styled(
                format!("approved plan {sha256} — x to execute"),
                ok,
            )],
            Outcome::Executed(r) => {
                let mut v = vec![Line::styled(
                    format!(
                        "executed{}: {} rows deleted, {} pseudonymised, {} redacted; {} external steps queued",
                        if r.resumed { " (resumed)" } else { "" },
                        r.rows_deleted,
                        r.rows_pseudonymised,
                        r.rows_redacted,
                        r.external_enqueued
                    ),
                    ok,
                )];
                v.push(Line::styled(
                    format!(
                        "queue: {} done, {} retried, {} failed, {} pending",
                        r.queue.done, r.queue.retried, r.queue.failed, r.queue.pending
                    ),
                    if r.queue.failed > 0 { danger } else { ok },
                ));
                v.push(match (&r.certificate_sha256, r.complete) {
                    (Some(sha), true) => {
                        Line::styled(format!("done — certificate {sha} (c to open it)"), ok)
                    }
                    _ => Line::styled(
                        "not finished: external steps remain — u runs the queue again",
                        warn,
                    ),
                });
                v
            }
            Outcome::PlanChanged {
                approved_sha256,
                new_sha256,
                differences,
            } => {
                let mut v = vec![
                    Line::styled(
                        "THE PLAN CHANGED since it was approved — nothing was changed; a new approval is needed (a)",
                        danger,
                    ),
                    Line::styled(format!("approved {approved_sha256}"), warn),
                    Line::styled(format!("now      {new_sha256}"), warn),
                ];
                for d in differences {
                    v.push(Line::styled(format!("  • {}", safe_owned(d)), warn));
                }
                v
            }
            Outcome::QueueRun(q) => {
                let mut v = vec![Line::styled(
                    format!(
                        "queue run: {} done, {} retried, {} failed, {} pending",
                        q.report.done, q.report.retried, q.report.failed, q.report.pending
                    ),
                    if q.report.failed > 0 { danger } else { ok },
                )];
                if q.finished.contains(&self.id) {
                    v.push(Line::styled(
                        "the request is done — c opens the certificate",
                        ok,
                    ));
                }
                v
            }
            Outcome::Failed(m) => vec![Line::styled(safe_owned(m), danger)],
        };
        out.push(Line::from(""));
        out
    }

    /// The body: outcome, fields, plan, steps (sanitised).
    fn body_lines(&self, theme: &Theme) -> Vec<Line<'static>> {
        let muted = theme.style(Meaning::Muted);
        let text = theme.style(Meaning::Text);
        let header = theme.style(Meaning::Header);
        let mut lines = self.outcome_lines(theme);
        let d = match &self.detail {
            Load::Loading => {
                lines.push(Line::styled("loading…", muted));
                return lines;
            }
            Load::Failed(m) => {
                lines.push(Line::styled(safe_owned(m), theme.style(Meaning::Danger)));
                return lines;
            }
            Load::Loaded(d) => d,
        };
        let r = &d.request;
        let now = self.now.unwrap_or_else(Utc::now);
        let field = |k: &str, v: Span<'static>| {
            Line::from(vec![Span::styled(format!("{k:>13} "), muted), v])
        };
        let opt = |o: &Option<String>| o.as_deref().map(safe_owned).unwrap_or_else(|| "—".into());
        lines.push(field("request", Span::styled(r.id.to_string(), text)));
        lines.push(Line::from(vec![
            Span::styled(format!("{:>13} ", "state"), muted),
            Span::styled(safe_owned(&r.state), state_style(&r.state, theme)),
            Span::styled("   kind ", muted),
            Span::styled(safe_owned(&r.kind), text),
        ]));
        lines.push(field(
            "subject",
            Span::styled(safe_owned(&r.subject_ref), theme.style(Meaning::Masked)),
        ));
        lines.push(field("ticket", Span::styled(safe_owned(&r.ticket), text)));
        lines.push(Line::from(vec![
            Span::styled(format!("{:>13} ", "regime"), muted),
            Span::styled(safe_owned(&r.regime), text),
            Span::styled("   received ", muted),
            Span::styled(date(&r.received_at), text),
            Span::styled("   due ", muted),
            Span::styled(
                if r.overdue(now) {
                    format!("{} OVERDUE", date(&r.due_at))
                } else {
                    date(&r.due_at)
                },
                due_style(r, now, theme),
            ),
        ]));
        lines.push(Line::from(vec![
            Span::styled(format!("{:>13} ", "created by"), muted),
            Span::styled(safe_owned(&r.created_by), text),
            Span::styled("   planned by ", muted),
            Span::styled(opt(&r.planned_by), text),
            Span::styled("   approved by ", muted),
            Span::styled(opt(&r.approved_by), text),
            Span::styled("   executed by ", muted),
            Span::styled(opt(&r.executed_by), text),
        ]));
        if let Some(at) = &r.executed_at {
            lines.push(field(
                "executed at",
                Span::styled(at.format("%Y-%m-%d %H:%M:%S UTC").to_string(), text),
            ));
        }
        lines.push(field(
            "plan sha256",
            Span::styled(opt(&r.plan_sha256), text),
        ));
        if let Some(c) = &r.certificate_sha256 {
            lines.push(field(
                "certificate",
                Span::styled(safe_owned(c), theme.style(Meaning::Ok)),
            ));
        }
        if let Some(f) = &r.failure {
            lines.push(field(
                "failure",
                Span::styled(safe_owned(f), theme.style(Meaning::Danger)),
            ));
        }
        if !r.note.is_empty() {
            lines.push(field("note", Span::styled(safe_owned(&r.note), text)));
        }
        lines.push(Line::from(""));
        match &self.plan {
            None => lines.push(Line::styled(
                "no plan yet — p finds everything held about the subject",
                muted,
            )),
            Some(p) => {
                lines.push(Line::styled(
                    format!("Plan {}", safe_owned(&p.sha256)),
                    theme.style(Meaning::Title),
                ));
                if p.is_empty() {
                    lines.push(Line::styled("  nothing was found for this subject", muted));
                }
                if !p.tables.is_empty() {
                    lines.push(Line::styled(
                        format!("  {:<28} {:<13} {:>8}  reason", "table", "action", "rows"),
                        header,
                    ));
                    for t in &p.tables {
                        let style = match t.action.as_str() {
                            "delete" => theme.style(Meaning::Danger),
                            "retain" => theme.style(Meaning::Warning),
                            _ => text,
                        };
                        lines.push(Line::from(vec![
                            Span::styled(format!("  {:<28} ", safe_owned(&t.table)), text),
                            Span::styled(format!("{:<13} ", safe_owned(&t.action)), style),
                            Span::styled(format!("{:>8}  ", t.rows), text),
                            Span::styled(safe_owned(&t.reason), muted),
                        ]));
                    }
                }
                if !p.external.is_empty() {
                    lines.push(Line::styled(
                        format!("  {:<28} {:>8}", "external system", "objects"),
                        header,
                    ));
                    for (system, n) in &p.external {
                        lines.push(Line::styled(
                            format!("  {:<28} {:>8}", safe_owned(system), n),
                            text,
                        ));
                    }
                }
            }
        }
        if !d.steps.is_empty() {
            lines.push(Line::from(""));
            lines.push(Line::styled("External steps", theme.style(Meaning::Title)));
            lines.push(Line::styled(
                format!(
                    "  {:<14} {:<40} {:<9} {:>5}  last error",
                    "system", "object", "state", "tries"
                ),
                header,
            ));
            for s in &d.steps {
                let style = match s.state.as_str() {
                    "done" => theme.style(Meaning::Ok),
                    "failed" => theme.style(Meaning::Danger),
                    _ => theme.style(Meaning::Warning),
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("  {:<14} ", safe_owned(&s.system)), text),
                    Span::styled(format!("{:<40} ", safe_owned(&s.object)), text),
                    Span::styled(format!("{:<9} ", safe_owned(&s.state)), style),
                    Span::styled(format!("{:>5}  ", s.attempts), text),
                    Span::styled(opt(&s.last_error), theme.style(Meaning::Danger)),
                ]));
            }
        }
        lines
    }

    fn render_bottom(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        match &self.running {
            Some(r) if matches!(r.op, Op::Execute | Op::RunQueue) => {
                let ratio = if r.total == 0 {
                    0.0
                } else {
                    (r.done as f64 / r.total as f64).clamp(0.0, 1.0)
                };
                let step = if r.step.is_empty() {
                    "starting".to_string()
                } else {
                    safe_owned(&r.step)
                };
                let gauge = Gauge::default()
                    .gauge_style(theme.style(Meaning::Ok))
                    .ratio(ratio)
                    .label(format!("{}: {step} {}/{}", r.op.doing(), r.done, r.total));
                frame.render_widget(gauge, area);
            }
            Some(r) => frame.render_widget(
                Paragraph::new(r.op.doing()).style(theme.style(Meaning::Warning)),
                area,
            ),
            None => frame.render_widget(
                Paragraph::new(
                    "p plan  a approve  x execute  u run queue  c certificate  r refresh  Esc back",
                )
                .style(theme.style(Meaning::Muted)),
                area,
            ),
        }
    }

    fn render_identifiers(&self, frame: &mut Frame, area: Rect, theme: &Theme, prompt: &Prompt) {
        let Prompt {
            purpose,
            form,
            focus,
            problems,
        } = prompt;
        let (purpose, focus) = (*purpose, *focus);
        let h = (7 + problems.len() as u16).min(area.height);
        let rect = centered(area, area.width.min(80), h);
        frame.render_widget(Clear, rect);
        let title = match purpose {
            Purpose::Plan => " Plan: the subject's identifiers ",
            Purpose::Execute => " Execute: the subject's identifiers again ",
        };
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .style(theme.style(Meaning::Overlay))
            .title(Span::styled(title, theme.style(Meaning::Title)));
        let inner = block.inner(rect);
        frame.render_widget(block, rect);
        let mut y = inner.y;
        let bottom = inner.y + inner.height;
        for (i, label) in SUBJECT_LABELS.iter().enumerate() {
            if y >= bottom {
                return;
            }
            if let Some(input) = form.field(i) {
                input_line(
                    frame,
                    Rect::new(inner.x, y, inner.width, 1),
                    theme,
                    label,
                    input,
                    i == focus,
                );
            }
            y += 1;
        }
        let mut lines = vec![Line::styled(
            "comma separated; the console keeps only keyed hashes, so type them as at creation",
            theme.style(Meaning::Muted),
        )];
        for p in problems {
            lines.push(Line::styled(
                format!("• {}", safe_owned(p)),
                theme.style(Meaning::Danger),
            ));
        }
        lines.push(Line::from(vec![
            Span::styled("Enter", theme.style(Meaning::Key)),
            Span::styled(
                match purpose {
                    Purpose::Plan => " plan  ",
                    Purpose::Execute => " execute (step-up)  ",
                },
                theme.style(Meaning::Muted),
            ),
            Span::styled("Tab", theme.style(Meaning::Key)),
            Span::styled(" next field  ", theme.style(Meaning::Muted)),
            Span::styled("Esc", theme.style(Meaning::Key)),
            Span::styled(" cancel", theme.style(Meaning::Muted)),
        ]));
        frame.render_widget(
            Paragraph::new(lines).wrap(Wrap { trim: false }),
            Rect::new(inner.x, y, inner.width, bottom.saturating_sub(y)),
        );
    }

    fn render_confirm(&self, frame: &mut Frame, area: Rect, theme: &Theme, sha256: &str) {
        let rect = centered(area, area.width.min(84), 7);
        frame.render_widget(Clear, rect);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .style(theme.style(Meaning::Overlay))
            .title(Span::styled(
                " Approve the plan ",
                theme.style(Meaning::Title),
            ));
        let lines = vec![
            Line::styled(
                "You approve exactly the plan with this SHA-256:",
                theme.style(Meaning::Text),
            ),
            Line::styled(safe_owned(sha256), theme.style(Meaning::Warning)),
            Line::styled(
                "(a different officer than the creator; a step-up follows)",
                theme.style(Meaning::Muted),
            ),
            Line::from(vec![
                Span::styled("y", theme.style(Meaning::Key)),
                Span::styled(" approve  ", theme.style(Meaning::Muted)),
                Span::styled("n / Esc", theme.style(Meaning::Key)),
                Span::styled(" cancel", theme.style(Meaning::Muted)),
            ]),
        ];
        frame.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(Wrap { trim: false }),
            rect,
        );
    }
}

impl Screen for ErasureRequestScreen {
    fn name(&self) -> &'static str {
        "erasure-request"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => self.on_key(*k),
            Msg::Done(d) => self.on_done(d.id, &d.result),
            Msg::Progress {
                id,
                step,
                done,
                total,
            } => {
                if let Some(r) = &mut self.running
                    && r.id == *id
                {
                    r.step = step.clone();
                    r.done = *done;
                    r.total = *total;
                }
                vec![]
            }
            Msg::Tick(_) | Msg::SetQuery(_) => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let [body, bottom] =
            Layout::vertical([Constraint::Min(0), Constraint::Length(1)]).areas(area);
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" Data-subject request {} ", self.id),
                theme.style(Meaning::Title),
            ));
        frame.render_widget(
            Paragraph::new(self.body_lines(theme))
                .block(block)
                .wrap(Wrap { trim: false })
                .scroll((self.scroll, 0)),
            body,
        );
        self.render_bottom(frame, bottom, theme);
        match &self.mode {
            Mode::View => {}
            Mode::Identifiers(prompt) => self.render_identifiers(frame, body, theme, prompt),
            Mode::Confirm { sha256 } => self.render_confirm(frame, body, theme, sha256),
        }
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![
            (Context::ErasureRequest, keymap::ERASURE_REQUEST),
            (Context::ErasureIdentifiers, keymap::ERASURE_IDENTIFIERS),
            (Context::ErasureConfirm, keymap::ERASURE_CONFIRM),
        ]
    }

    fn context(&self) -> Context {
        match self.mode {
            Mode::View => Context::ErasureRequest,
            Mode::Identifiers(_) => Context::ErasureIdentifiers,
            Mode::Confirm { .. } => Context::ErasureConfirm,
        }
    }
}

/// A request's certificate: its SHA-256, then the Markdown, scrollable.
pub struct CertificateScreen {
    request: Uuid,
    pending: Option<RequestId>,
    cert: Load<Box<Certificate>>,
    scroll: u16,
    /// The height of the last render, for half-page moves.
    viewport: std::cell::Cell<u16>,
}

impl CertificateScreen {
    pub fn open(request: Uuid) -> (CertificateScreen, Vec<Command>) {
        let id = RequestId::next();
        (
            CertificateScreen {
                request,
                pending: Some(id),
                cert: Load::Loading,
                scroll: 0,
                viewport: std::cell::Cell::new(0),
            },
            vec![Command::Run {
                id,
                action: Action::ErasureCertificate { request },
            }],
        )
    }

    pub fn loaded(request: Uuid, cert: Certificate) -> CertificateScreen {
        CertificateScreen {
            request,
            pending: None,
            cert: Load::Loaded(Box::new(cert)),
            scroll: 0,
            viewport: std::cell::Cell::new(0),
        }
    }

    pub fn scroll(&self) -> u16 {
        self.scroll
    }
}

impl Screen for CertificateScreen {
    fn name(&self) -> &'static str {
        "erasure-certificate"
    }

    fn update(&mut self, msg: &Msg) -> Vec<Command> {
        match msg {
            Msg::Key(k) => {
                let half = (self.viewport.get() / 2).max(1);
                match resolve(Context::ErasureCertificate, *k) {
                    Some(KeyAction::Back) => return vec![Command::Pop],
                    Some(KeyAction::Down) => self.scroll = self.scroll.saturating_add(1),
                    Some(KeyAction::Up) => self.scroll = self.scroll.saturating_sub(1),
                    Some(KeyAction::HalfPageDown) => self.scroll = self.scroll.saturating_add(half),
                    Some(KeyAction::HalfPageUp) => self.scroll = self.scroll.saturating_sub(half),
                    _ => {}
                }
                vec![]
            }
            Msg::Done(d) if Some(d.id) == self.pending => {
                self.pending = None;
                match &d.result {
                    Ok(Reply::ErasureCertificate(c)) => {
                        self.cert = Load::Loaded(c.clone());
                        vec![]
                    }
                    Ok(_) => {
                        self.cert = Load::Failed("unexpected reply".into());
                        vec![]
                    }
                    Err(f) => {
                        self.cert = Load::Failed(f.message.clone());
                        vec![Command::Error(f.message.clone())]
                    }
                }
            }
            _ => vec![],
        }
    }

    fn render(&self, frame: &mut Frame, area: Rect, theme: &Theme) {
        let block = Block::default()
            .borders(Borders::ALL)
            .border_style(theme.style(Meaning::BorderFocus))
            .title(Span::styled(
                format!(" Certificate of request {} ", self.request),
                theme.style(Meaning::Title),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let [head, body] =
            Layout::vertical([Constraint::Length(2), Constraint::Min(0)]).areas(inner);
        self.viewport.set(body.height);
        match &self.cert {
            Load::Loading => frame.render_widget(
                Paragraph::new("loading…").style(theme.style(Meaning::Muted)),
                inner,
            ),
            Load::Failed(m) => frame.render_widget(
                Paragraph::new(safe_owned(m))
                    .style(theme.style(Meaning::Danger))
                    .wrap(Wrap { trim: false }),
                inner,
            ),
            Load::Loaded(c) => {
                frame.render_widget(
                    Paragraph::new(vec![
                        Line::from(vec![
                            Span::styled("SHA-256 ", theme.style(Meaning::Muted)),
                            Span::styled(safe_owned(&c.sha256), theme.style(Meaning::Ok)),
                        ]),
                        Line::styled(
                            "of the canonical JSON (charon erasure certificate --out DIR writes both files)",
                            theme.style(Meaning::Muted),
                        ),
                    ]),
                    head,
                );
                let lines: Vec<Line> = c
                    .markdown()
                    .lines()
                    .map(|l| {
                        let style = if l.starts_with('#') {
                            theme.style(Meaning::Title)
                        } else {
                            theme.style(Meaning::Text)
                        };
                        Line::styled(safe_owned(l), style)
                    })
                    .collect();
                frame.render_widget(
                    Paragraph::new(lines)
                        .wrap(Wrap { trim: false })
                        .scroll((self.scroll, 0)),
                    body,
                );
            }
        }
    }

    fn keymap(&self) -> Vec<KeymapSection> {
        vec![(Context::ErasureCertificate, keymap::ERASURE_CERTIFICATE)]
    }

    fn context(&self) -> Context {
        Context::ErasureCertificate
    }
}
