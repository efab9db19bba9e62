//! `charon operator …` and `charon key …`: console administration for the
//! admin role, through the dispatch point (MFA, step-up, audit) like
//! everything else. `operator bootstrap` creates the first admin and their
//! first key, and works only on an empty operator table.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::output;
use super::session::Factor;
use crate::core::action::{Action, GateInput, Reply};
use crate::core::admin::{self, AdminReply, Enrolment};
use crate::core::console::Console;

#[derive(Debug, Subcommand)]
pub enum OperatorCommand {
    /// Create the first admin (the account running this) and their first key.
    Bootstrap {
        /// Display name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List operators.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Add an operator (the login is their OS account on the bastion).
    Add {
        login: String,
        #[arg(long)]
        name: String,
        /// support, compliance, sre, auditor or admin.
        #[arg(long)]
        role: String,
    },
    SetRole {
        login: String,
        role: String,
    },
    Lock {
        login: String,
    },
    /// Unlock an operator (and reset the failed-attempt count).
    Unlock {
        login: String,
    },
    /// Remove an operator: they can no longer sign in; their keys are revoked.
    Remove {
        login: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Enrol a key for an operator.
    Enroll {
        login: String,
        #[arg(long, default_value = "key")]
        label: String,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List enrolled keys (no secrets).
    List {
        login: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id.
    Revoke { id: String },
    /// Check one factor (an OTP on stdin, or --agent) and say which operator
    /// and key it matched, or exactly why not.
    Verify,
}

/// One key, by factor (exactly one of the four).
#[derive(Debug, Args)]
pub struct KeyArgs {
    /// Yubico OTP checked offline: the 12-character modhex public id; the
    /// secret comes from --otp-secret-file.
    #[arg(long)]
    otp_public_id: Option<String>,
    /// With --otp-public-id: a file of mode 0600 holding
    /// `AES_KEY_HEX PRIVATE_ID_HEX` (never on the command line).
    #[arg(long, value_name = "FILE")]
    otp_secret_file: Option<PathBuf>,
    /// Yubico OTP checked by the configured validation server: the public id.
    #[arg(long)]
    otp_server_public_id: Option<String>,
    /// FIDO security-key SSH public key file (sk-ecdsa-… / sk-ssh-ed25519-…).
    #[arg(long, value_name = "FILE.pub")]
    sk_public_key: Option<PathBuf>,
    /// PIV certificate (PEM) of slot 9a or 9c.
    #[arg(long, value_name = "FILE.pem")]
    piv_certificate: Option<PathBuf>,
}

impl KeyArgs {
    fn enrolment(&self) -> anyhow::Result<Enrolment> {
        let given = [
            self.otp_public_id.is_some(),
            self.otp_server_public_id.is_some(),
            self.sk_public_key.is_some(),
            self.piv_certificate.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            anyhow::bail!(
                "name exactly one key: --otp-public-id (with --otp-secret-file), --otp-server-public-id, --sk-public-key or --piv-certificate"
            );
        }
        if let Some(public_id) = &self.otp_public_id {
            let path = self
                .otp_secret_file
                .as_ref()
                .context("--otp-public-id needs --otp-secret-file")?;
            let (aes_key, private_id) = admin::read_otp_secret(path)?;
            return Ok(Enrolment::Otp {
                public_id: public_id.clone(),
                aes_key,
                private_id,
            });
        }
        if let Some(public_id) = &self.otp_server_public_id {
            return Ok(Enrolment::OtpServer {
                public_id: public_id.clone(),
            });
        }
        if let Some(p) = &self.sk_public_key {
            let line =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            return Ok(Enrolment::Sk {
                openssh_public_key: line.trim().to_string(),
            });
        }
        if let Some(p) = &self.piv_certificate {
            let pem =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            return Ok(Enrolment::Piv {
                certificate_pem: pem,
            });
        }
        anyhow::bail!(
            "name one key: --otp-public-id, --otp-server-public-id, --sk-public-key or --piv-certificate"
        )
    }
}

fn print(reply: Reply, json: bool) -> anyhow::Result<i32> {
    match reply {
        Reply::Admin(r) if json => output::json(&r)?,
        Reply::Admin(AdminReply::Operators(ops)) => {
            for o in ops {
                output::line(&format!(
                    "{:<20} {:<11} {:<8} failed {}  {}",
                    o.login, o.role, o.status, o.failed_attempts, o.display_name
                ));
            }
        }
        Reply::Admin(AdminReply::Operator(o)) => {
            output::line(&format!("operator {} ({}) {}", o.login, o.role, o.status));
        }
        Reply::Admin(AdminReply::Keys(keys)) => {
            for k in keys {
                output::line(&format!(
                    "{}  {:<14} {:<10} {:<8} {}  {}",
                    k.id,
                    k.login,
                    k.factor.as_str(),
                    format!("{:?}", k.status).to_lowercase(),
                    k.fingerprint,
                    k.label
                ));
            }
        }
        Reply::Admin(AdminReply::Key(k)) => {
            output::line(&format!(
                "key {} of {}: {} {} ({:?})",
                k.id,
                k.login,
                k.factor.as_str(),
                k.fingerprint,
                k.status
            ));
        }
        Reply::Admin(AdminReply::Done { what }) => output::line(&what),
        Reply::KeyVerified {
            login,
            key_id,
            label,
            factor,
        } => output::line(&format!(
            "matched operator {login}, key {key_id} ({factor}, \"{label}\")"
        )),
        _ => anyhow::bail!("unexpected reply"),
    }
    Ok(0)
}

pub async fn bootstrap(console: &Console, name: String, key: &KeyArgs) -> anyhow::Result<i32> {
    let login = console.session().operator;
    let reply = console
        .dispatch(Action::Bootstrap {
            login,
            display_name: name,
            key: key.enrolment()?,
        })
        .await?;
    print(reply, false)
}

pub async fn operator(
    console: &Console,
    cmd: OperatorCommand,
    factor: Factor,
) -> anyhow::Result<i32> {
    let (action, json) = match cmd {
        OperatorCommand::Bootstrap { .. } => anyhow::bail!("bootstrap runs before any session"),
        OperatorCommand::List { json } => (Action::OperatorList, json),
        OperatorCommand::Add { login, name, role } => (
            Action::OperatorAdd {
                login,
                display_name: name,
                role: admin::parse_role(&role)?,
            },
            false,
        ),
        OperatorCommand::SetRole { login, role } => (
            Action::OperatorSetRole {
                login,
                role: admin::parse_role(&role)?,
            },
            false,
        ),
        OperatorCommand::Lock { login } => (Action::OperatorLock { login }, false),
        OperatorCommand::Unlock { login } => (Action::OperatorUnlock { login }, false),
        OperatorCommand::Remove { login } => (Action::OperatorRemove { login }, false),
    };
    print(
        super::session::dispatch_stepped(console, action, factor).await?,
        json,
    )
}

pub async fn key(console: &Console, cmd: KeyCommand, factor: Factor) -> anyhow::Result<i32> {
    let (action, json) = match cmd {
        KeyCommand::Enroll { login, label, key } => (
            Action::KeyEnroll {
                login,
                label,
                key: key.enrolment()?,
            },
            false,
        ),
        KeyCommand::List { login, json } => (Action::KeyList { login }, json),
        KeyCommand::Revoke { id } => (
            Action::KeyRevoke {
                id: admin::parse_key_id(&id)?,
            },
            false,
        ),
        KeyCommand::Verify if factor == Factor::Agent => {
            (Action::KeyVerify(GateInput::Agent), false)
        }
        KeyCommand::Verify => {
            let otp = super::session::read_otp(&["the key to check".into()])?;
            (Action::KeyVerify(GateInput::Otp(otp)), false)
        }
    };
    print(
        super::session::dispatch_stepped(console, action, factor).await?,
        json,
    )
}
