//! The terminal front end.
//!
//! - [`screen`]: the Elm-style contract (`Msg` in, `Command`s out, pure
//!   `render`) and the `Loading / Loaded / Failed` state.
//! - [`app`]: the compositor, a stack of screens and overlays (search,
//!   tenant, help, palette) with the status bar and message line. It emits
//!   [`app::Effect`]s and never touches the console.
//! - [`keymap`]: keys as data, one pure `resolve`; help is drawn from it.
//! - [`theme`]: themes as data (`themes/*.toml`, bundled into the binary).
//! - [`run`]: the only code that owns the terminal and the [`Console`]. Each
//!   action runs in its own task; results come back over a channel tagged
//!   with their request id, so the event loop never waits on the database.

pub mod app;
pub mod keymap;
pub mod screen;
pub mod screens;
pub mod terminal;
pub mod theme;
pub mod widgets;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::core::action::{Action, Progress};
use crate::core::console::Console;
use app::{App, Effect};
use keymap::Key;
use screen::{Done, Failure, Msg, RequestId};
use theme::ThemeSet;

/// How often the loop ticks (debounce resolution).
const TICK: Duration = Duration::from_millis(40);

/// How the TUI is started.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// The theme's name: a bundled one (`dark`, `light`, `high-contrast`)
    /// or a `<name>.toml` in `themes_dir`.
    pub theme: String,
    /// A folder of extra (or overriding) theme files.
    pub themes_dir: Option<PathBuf>,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            theme: "dark".to_string(),
            themes_dir: None,
        }
    }
}

/// Runs actions in tasks; replies come back on a channel.
struct Runner {
    console: Console,
    tx: mpsc::UnboundedSender<Msg>,
    tasks: JoinSet<()>,
}

impl Runner {
    fn spawn(&mut self, id: RequestId, action: Action) {
        let console = self.console.clone();
        let tx = self.tx.clone();
        self.tasks.spawn(async move {
            // A verification, an erasure or a restore test reports how far it
            // is (the gauge, the step) over the same channel as the replies,
            // tagged with the same id.
            let result = if matches!(
                action,
                Action::AuditVerify { .. }
                    | Action::ErasureExecute { .. }
                    | Action::ErasureRunQueue { .. }
                    | Action::RestoreTestRun { .. }
            ) {
                let progress = tx.clone();
                console
                    .dispatch_with_progress(action, move |p: Progress| {
                        let _ = progress.send(Msg::Progress {
                            id,
                            step: p.step,
                            done: p.done,
                            total: p.total,
                        });
                    })
                    .await
            } else {
                console.dispatch(action).await
            }
            .map_err(|e| Failure::from_error(&e));
            // The loop may have quit; nobody to tell then.
            let _ = tx.send(Msg::Done(Done { id, result }));
        });
    }
}

/// Opens the TUI on a console until the operator quits. The terminal is
/// restored on every exit path (return, error, panic).
pub async fn run(console: Console, options: TuiOptions) -> anyhow::Result<()> {
    let themes = ThemeSet::new(options.themes_dir.clone());
    let loaded = themes
        .load(&options.theme)
        .with_context(|| format!("loading theme {:?}", options.theme))?;
    let mut app = App::new(console.info().clone(), themes, loaded.theme);
    if let Some(w) = loaded.warnings.first() {
        app.notify(app::Level::Error, w.clone());
    }
    // A closed SSH session (SIGHUP) or a `kill` (SIGTERM) ends the loop like
    // `q`, so the terminal is restored and tasks are dropped.
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut runner = Runner {
        console,
        tx,
        tasks: JoinSet::new(),
    };

    let mut guard = terminal::TerminalGuard::enter().context("entering the terminal's raw mode")?;
    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    let mut effects = app.start();
    let mut redraw = true;
    loop {
        for effect in effects.drain(..) {
            match effect {
                Effect::Quit => {
                    runner.tasks.abort_all();
                    drop(guard);
                    return Ok(());
                }
                Effect::Run { id, action } => runner.spawn(id, action),
            }
        }
        if redraw {
            guard
                .terminal
                .draw(|frame| app.render(frame))
                .context("drawing the screen")?;
        }
        redraw = true;

        let msg = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(k))) if k.kind != KeyEventKind::Release => {
                    Msg::Key(Key::from_event(&k))
                }
                Some(Ok(Event::Resize(_, _))) => {
                    guard.terminal.autoresize().context("resizing")?;
                    continue;
                }
                Some(Ok(Event::Key(_))) => {
                    redraw = false;
                    continue;
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => return Ok(()),
            },
            Some(msg) = rx.recv() => msg,
            Some(joined) = runner.tasks.join_next(), if !runner.tasks.is_empty() => {
                if let Err(e) = joined
                    && e.is_panic()
                {
                    // The panic hook has already restored the terminal.
                    anyhow::bail!("an action task panicked: {e}");
                }
                redraw = false;
                continue;
            }
            // Returning drops the guard (terminal restored) and the tasks.
            _ = hangup.recv() => return Ok(()),
            _ = terminate.recv() => return Ok(()),
            _ = tick.tick() => Msg::Tick(Instant::now()),
        };
        // A tick changes the screen only when it starts something (the
        // debounced search); skip drawing otherwise.
        // A countdown (a revealed value) redraws on ticks, including the
        // tick that hides it.
        let was_tick = matches!(msg, Msg::Tick(_));
        let animating = app.animating();
        effects = app.update(msg);
        redraw = !was_tick || !effects.is_empty() || animating || app.animating();
    }
}
