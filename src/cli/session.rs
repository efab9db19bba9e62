//! A CLI session: the OS account's operator, the session record, and the MFA
//! gate, exactly as in the TUI. An OTP is read from the terminal (the
//! YubiKey types it) or, for scripts, from the first line of standard input;
//! `--agent` signs with an enrolled security key through the ssh-agent.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

use crate::core::action::{Action, GateInput, Reply};
use crate::core::config::Config;
use crate::core::console::Console;
use crate::core::operators;
use crate::core::session::{Role, Session};

/// A console for the operator running this process, before the gate (the
/// TUI shows its own gate screen).
pub async fn connect(config: &Config) -> anyhow::Result<Console> {
    let session = Session {
        id: uuid::Uuid::new_v4(),
        operator: operators::os_account()?,
        // Placeholder until the console database says otherwise: before the
        // gate only the gate actions run, and after it every action reads the
        // operator's role from the database.
        role: Role::Auditor,
        demo: false,
        key_id: None,
    };
    Ok(Console::connect(config, session).await?)
}

/// Opens an authenticated console for the operator running this process.
pub async fn open(config: &Config, agent: bool) -> anyhow::Result<Console> {
    let console = connect(config).await?;
    // Records the session; refused (and audited) for an account that is not
    // an active operator.
    console.dispatch(Action::OpenConsole).await?;
    let input = if agent {
        GateInput::Agent
    } else {
        let prompts = match console.dispatch(Action::GateStatus).await? {
            Reply::Gate(g) => g.prompts,
            _ => Vec::new(),
        };
        GateInput::Otp(read_otp(&prompts)?)
    };
    match console.dispatch(Action::Authenticate(input)).await? {
        Reply::Authenticated(info) => {
            if std::io::stderr().is_terminal() {
                eprintln!("charon: {} ({}) authenticated", info.operator, info.role);
            }
            Ok(console)
        }
        _ => anyhow::bail!("unexpected reply from the MFA gate"),
    }
}

pub(super) fn read_otp(prompts: &[String]) -> anyhow::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        let mut err = std::io::stderr();
        for p in prompts {
            let _ = writeln!(err, "charon: {p}");
        }
        let _ = write!(err, "charon: OTP: ");
        let _ = err.flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("reading the OTP from standard input")?;
    let otp = line.trim().to_string();
    if otp.is_empty() {
        anyhow::bail!(
            "no OTP given: touch your YubiKey at the prompt, pipe the OTP on standard input, or use --agent"
        );
    }
    Ok(otp)
}

/// Dispatches an action, first asking for the step-up it needs: with a
/// signing factor (`--agent`) the key signs exactly this action; an OTP
/// session's fresh gate touch already counts.
pub async fn dispatch_stepped(
    console: &Console,
    action: Action,
    agent: bool,
) -> anyhow::Result<Reply> {
    if agent && crate::core::console::needs_step_up(action.kind()) {
        eprintln!(
            "charon: confirm {} on your security key",
            action.kind().as_str()
        );
        console
            .dispatch(Action::StepUp {
                input: GateInput::Agent,
                action: Box::new(action.clone()),
            })
            .await?;
    }
    Ok(console.dispatch(action).await?)
}
