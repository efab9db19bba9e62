//! The one dispatch point. Every action from every front end goes through
//! [`Console::dispatch`], which authorises it, (with the audit-log work)
//! records it, then runs it. Nothing else in charon touches tenant data.

use sqlx::PgPool;

use crate::core::action::{Action, ActionKind, Reply};
use crate::core::config::Config;
use crate::core::session::{Role, Session};
use crate::core::{Error, Result, db, tenants};

/// What the front ends show about the connection (status bar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleInfo {
    pub operator: String,
    pub role: Role,
    pub environment: String,
    pub production: bool,
    /// `dbname@host` of the Pluto database.
    pub database: String,
    pub demo: bool,
}

/// The core's handle: both pools and the session. Cheap to clone (pools are
/// reference-counted), so tasks can each hold one.
#[derive(Clone)]
pub struct Console {
    pluto_read: PgPool,
    console: PgPool,
    session: Session,
    info: ConsoleInfo,
}

/// Which roles may run which action. Every dispatch checks it.
pub fn allowed(role: Role, kind: ActionKind) -> bool {
    match kind {
        ActionKind::OpenConsole => true,
        ActionKind::SearchTenants | ActionKind::OpenTenant => matches!(
            role,
            Role::Support | Role::Compliance | Role::Sre | Role::Auditor | Role::Admin
        ),
    }
}

impl Console {
    /// Connects to both databases and migrates the console database.
    pub async fn connect(config: &Config, session: Session) -> Result<Console> {
        let pluto_read = db::connect(&config.pluto_read_url, db::PLUTO, &config.timeouts).await?;
        let console = db::connect(&config.console_url, db::CONSOLE, &config.timeouts).await?;
        db::migrate_console(&console).await?;
        Ok(Console::from_pools(config, session, pluto_read, console))
    }

    pub fn from_pools(
        config: &Config,
        session: Session,
        pluto_read: PgPool,
        console: PgPool,
    ) -> Console {
        let info = ConsoleInfo {
            operator: session.operator.clone(),
            role: session.role,
            environment: config.environment.clone(),
            production: config.is_production(),
            database: config.pluto_read_url.display_name(),
            demo: session.demo,
        };
        Console {
            pluto_read,
            console,
            session,
            info,
        }
    }

    pub fn info(&self) -> &ConsoleInfo {
        &self.info
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Authorises, then runs one action.
    pub async fn dispatch(&self, action: Action) -> Result<Reply> {
        let kind = action.kind();
        if !allowed(self.session.role, kind) {
            return Err(Error::Forbidden(format!(
                "role {} may not {}",
                self.session.role,
                kind.as_str()
            )));
        }
        self.run(action).await
    }

    async fn run(&self, action: Action) -> Result<Reply> {
        match action {
            Action::OpenConsole => {
                sqlx::query(
                    "INSERT INTO console_sessions (id, operator, role, demo, environment)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(self.session.id)
                .bind(&self.session.operator)
                .bind(self.session.role.as_str())
                .bind(self.session.demo)
                .bind(&self.info.environment)
                .execute(&self.console)
                .await?;
                Ok(Reply::Opened)
            }
            Action::SearchTenants { query } => {
                let hits = tenants::search(&self.pluto_read, &query, tenants::SEARCH_LIMIT).await?;
                Ok(Reply::Tenants(hits))
            }
            Action::OpenTenant { business_id } => {
                match tenants::detail(&self.pluto_read, business_id).await? {
                    Some(t) => Ok(Reply::Tenant(Box::new(t))),
                    None => Err(Error::NotFound(format!("no tenant with id {business_id}"))),
                }
            }
        }
    }
}
