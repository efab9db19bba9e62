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

/// How the CLI passes the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// A Yubico OTP typed at the prompt or given on standard input.
    Otp,
    /// A FIDO security key through the forwarded ssh-agent.
    Agent,
    /// The PIV key of a YubiKey plugged into this machine (PIN asked).
    Piv,
}

/// Opens an authenticated console for the operator running this process.
pub async fn open(config: &Config, factor: Factor) -> anyhow::Result<Console> {
    let console = connect(config).await?;
    // Records the session; refused (and audited) for an account that is not
    // an active operator.
    console.dispatch(Action::OpenConsole).await?;
    let input = match factor {
        Factor::Agent => GateInput::Agent,
        Factor::Piv => GateInput::Piv { pin: read_pin()? },
        Factor::Otp => {
            let prompts = match console.dispatch(Action::GateStatus).await? {
                Reply::Gate(g) => g.prompts,
                _ => Vec::new(),
            };
            GateInput::Otp(read_otp(&prompts)?)
        }
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

/// Reads the PIV PIN without echoing it on a terminal (or the first line of
/// standard input for scripts). The terminal's echo is restored on every path.
fn read_pin() -> anyhow::Result<String> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        eprint!("charon: PIV PIN: ");
        let _ = std::io::stderr().flush();
        let saved = tcgetattr(&stdin)?;
        let mut quiet = saved.clone();
        quiet.local_flags.remove(LocalFlags::ECHO);
        tcsetattr(&stdin, SetArg::TCSANOW, &quiet)?;
        let read = stdin.lock().read_line(&mut line);
        tcsetattr(&stdin, SetArg::TCSANOW, &saved)?;
        eprintln!();
        read.context("reading the PIN")?;
    } else {
        stdin
            .lock()
            .read_line(&mut line)
            .context("reading the PIN")?;
    }
    let pin = line.trim_end_matches(['\r', '\n']).to_string();
    if pin.is_empty() {
        anyhow::bail!("no PIN given");
    }
    Ok(pin)
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
    factor: Factor,
) -> anyhow::Result<Reply> {
    if factor != Factor::Otp && crate::core::console::needs_step_up(action.kind()) {
        let input = match factor {
            Factor::Piv => GateInput::Piv { pin: read_pin()? },
            _ => {
                eprintln!(
                    "charon: confirm {} on your security key",
                    action.kind().as_str()
                );
                GateInput::Agent
            }
        };
        console
            .dispatch(Action::StepUp {
                input,
                action: Box::new(action.clone()),
            })
            .await?;
    }
    Ok(console.dispatch(action).await?)
}
