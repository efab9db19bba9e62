//! The command-line front end (clap): thin glue from arguments to the core.
//! `demo` and `tui` open the terminal UI; the other commands are for scripts
//! and cron and print text or `--json`.

mod admin;
pub mod audit;
mod bench;
mod bench_erasure;
pub mod bench_load;
mod bench_restore;
pub mod bench_table;
mod datamap;
mod demo;
mod erasure;
mod output;
pub mod records;
mod restore;
mod session;
mod tenants;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::core::config::Config;

#[derive(Debug, Parser)]
#[command(name = "charon", version, about = "Pluto's administration console")]
pub struct Cli {
    /// Configuration file (else $CHARON_CONFIG, else $XDG_CONFIG_HOME/charon/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Pass the MFA gate with a security key through the ssh-agent
    /// (SSH_AUTH_SOCK) instead of a YubiKey OTP read from standard input.
    #[arg(long, global = true, conflicts_with = "piv")]
    pub agent: bool,
    /// Pass the MFA gate with the PIV key (slot 9a) of a YubiKey plugged into
    /// this machine; the PIN is asked without echo.
    #[arg(long, global = true)]
    pub piv: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open the console on a throwaway PostgreSQL with synthetic data (no setup needed).
    ///
    /// Uses a temporary cluster started from the installed PostgreSQL server
    /// binaries, or the server in $DATABASE_URL when set; removed on exit.
    Demo(demo::DemoArgs),
    /// Open the console on the configured databases.
    Tui,
    /// Create the synthetic Pluto schema and data in a database.
    Seed {
        /// Number of tenants (businesses).
        #[arg(long, default_value_t = 100)]
        tenants: u32,
        /// Random seed: the same seed gives the same data.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Target database (else `pluto_url` from the configuration).
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// A tenant's records, masked (support, compliance, auditor).
    #[command(subcommand)]
    Records(records::RecordsCommand),
    /// Look up tenants.
    #[command(subcommand)]
    Tenants(tenants::TenantsCommand),
    /// Data-subject erasure requests (compliance): create, plan, approve, execute, show.
    #[command(subcommand)]
    Erasure(erasure::ErasureCommand),
    /// Apply the console database's migrations.
    Migrate,
    /// The data map: which Pluto columns hold personal data.
    #[command(subcommand)]
    Datamap(DatamapCommand),
    /// Operators of the console (admin role; `bootstrap` for the first admin).
    #[command(subcommand)]
    Operator(admin::OperatorCommand),
    /// Hardware keys of operators (admin role).
    #[command(subcommand)]
    Key(admin::KeyCommand),
    /// The audit log: verify the hash chain, write a checkpoint, export.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Benchmarks (see BENCHMARKS.md).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Restore tests of the configured backup sources (sre): run one (exit
    /// 0 on pass, 1 on fail, for cron), or show the history.
    #[command(subcommand, name = "restore-test")]
    RestoreTest(restore::RestoreTestCommand),
    /// Backups of the configured sources (sre).
    #[command(subcommand)]
    Backups(restore::BackupsCommand),
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain; exit 1 naming the first broken sequence number.
    Verify {
        /// Start at this sequence number (default: the first entry).
        #[arg(long, value_name = "SEQ")]
        from: Option<i64>,
        /// A checkpoint written by `charon audit checkpoint`: also detects a truncated tail.
        #[arg(long, value_name = "FILE")]
        checkpoint: Option<PathBuf>,
    },
    /// Write the current head (seq, hash, time) to a file outside the database.
    Checkpoint { file: PathBuf },
    /// Export entries for auditors.
    Export {
        /// RFC 3339 time, inclusive.
        #[arg(long)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// RFC 3339 time, exclusive.
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// jsonl or csv.
        #[arg(long, default_value = "jsonl")]
        format: String,
        /// Output file (default: standard output).
        #[arg(long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DatamapCommand {
    /// List every column of the live Pluto schema that the map does not
    /// classify (with a hint when it looks personal); exit 1 when there is any.
    Check {
        /// Data map file (default: the shipped map for the Pluto schema).
        #[arg(long, value_name = "PATH")]
        map: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

impl Cli {
    fn factor(&self) -> session::Factor {
        if self.agent {
            session::Factor::Agent
        } else if self.piv {
            session::Factor::Piv
        } else {
            session::Factor::Otp
        }
    }
}

/// Runs the parsed command; returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let factor = cli.factor();
    match cli.command {
        Command::Demo(args) => demo::run(args).await,
        Command::Tui => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::connect(&config).await?;
            crate::tui::run(
                console,
                crate::tui::TuiOptions {
                    theme: config.theme.clone(),
                    themes_dir: config.themes_dir.clone(),
                },
            )
            .await?;
            Ok(0)
        }
        Command::Seed {
            tenants,
            seed,
            database_url,
        } => {
            let url = match database_url {
                Some(u) => crate::core::config::DbUrl::parse(&u).map_err(anyhow::Error::msg)?,
                None => Config::load(cli.config.as_deref())?.pluto_url,
            };
            demo::seed_into(&url, tenants, seed).await?;
            Ok(0)
        }
        Command::Tenants(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            tenants::run(&console, cmd).await
        }
        Command::Migrate => {
            let config = Config::load(cli.config.as_deref())?;
            let pool = crate::core::db::connect(
                &config.console_url,
                crate::core::db::CONSOLE,
                &config.timeouts,
            )
            .await?;
            crate::core::db::migrate_console(&pool).await?;
            println!("console database is up to date");
            Ok(0)
        }
        Command::Bench(cmd) => bench::run(cmd).await,
        Command::Erasure(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            erasure::run(&console, cmd, factor).await
        }
        Command::RestoreTest(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            restore::restore_test(&console, cmd).await
        }
        Command::Backups(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            restore::backups(&console, cmd).await
        }
        Command::Records(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            records::run(&console, &cmd, factor).await
        }
        Command::Operator(admin::OperatorCommand::Bootstrap { name, key }) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::connect(&config).await?;
            admin::bootstrap(&console, name, &key).await
        }
        Command::Operator(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            admin::operator(&console, cmd, factor).await
        }
        Command::Key(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            admin::key(&console, cmd, factor).await
        }
        Command::Audit(cmd) => {
            let config = Config::load(cli.config.as_deref())?;
            let console = session::open(&config, factor).await?;
            let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
            Ok(match cmd {
                AuditCommand::Verify { from, checkpoint } => {
                    audit::verify(&console, from, checkpoint.as_deref(), &mut out, &mut err).await
                }
                AuditCommand::Checkpoint { file } => {
                    audit::checkpoint(&console, &file, &mut out).await
                }
                AuditCommand::Export {
                    since,
                    until,
                    format,
                    output,
                } => audit::export(&console, since, until, &format, output, &mut err).await,
            })
        }
        Command::Datamap(DatamapCommand::Check { map, json }) => {
            let config = Config::load(cli.config.as_deref())?;
            let pool = crate::core::db::connect(
                &config.pluto_read_url,
                crate::core::db::PLUTO,
                &config.timeouts,
            )
            .await?;
            datamap::check(&pool, map.as_deref(), json).await
        }
    }
}
