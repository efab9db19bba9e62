//! The one dispatch point. Every action from every front end goes through
//! [`Console::dispatch`], which authorises it, records it in the audit log,
//! and only then runs it. Nothing else in charon touches tenant data.
//!
//! The order is the rule "audited before shown" (DESIGN.md):
//! 1. authorise (the permission table, [`allowed`]);
//! 2. append the audit entry, `allowed` (`...I`) or `denied` (`...E`). If
//!    the append fails, the action does not run and the caller gets
//!    [`Error::AuditUnavailable`] ("audit log unavailable: action refused");
//! 3. a denied action stops here with [`Error::Forbidden`];
//! 4. run it. If running fails, a second entry (`failed`, `...E`, a short
//!    error code, `details.entry` = the first entry's seq) is appended and
//!    the error returned.

use std::sync::Arc;

use sqlx::PgPool;

use crate::core::action::{Action, ActionKind, Reply};
use crate::core::audit::mirror::Mirror;
use crate::core::audit::{self, AuditKey, AuditRecord, ExportDest, NewEntry, Outcome, Verdict};
use crate::core::audit::{VerifyProgress, event_code};
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

/// The audit side of a console: the HMAC key and the optional mirror.
#[derive(Debug)]
struct AuditSink {
    key: AuditKey,
    mirror: Option<Mirror>,
}

/// The core's handle: both pools, the session and the audit key. Cheap to
/// clone (pools and the key are reference-counted), so tasks can each hold one.
#[derive(Clone)]
pub struct Console {
    pluto_read: PgPool,
    console: PgPool,
    session: Session,
    info: ConsoleInfo,
    audit: Arc<AuditSink>,
}

/// Which roles may run which action. Every dispatch checks it.
pub fn allowed(role: Role, kind: ActionKind) -> bool {
    match kind {
        ActionKind::OpenConsole => true,
        ActionKind::SearchTenants | ActionKind::OpenTenant => matches!(
            role,
            Role::Support | Role::Compliance | Role::Sre | Role::Auditor | Role::Admin
        ),
        ActionKind::AuditList
        | ActionKind::AuditShow
        | ActionKind::AuditVerify
        | ActionKind::AuditExport
        | ActionKind::AuditCheckpoint => matches!(role, Role::Auditor | Role::Admin),
    }
}

impl Console {
    /// Connects to both databases, migrates the console database and loads
    /// the audit key from the configuration (`[audit] key_file` or
    /// `CHARON_AUDIT_KEY`; a random key for the demo configuration).
    pub async fn connect(config: &Config, session: Session) -> Result<Console> {
        let key = config.audit.load_key()?;
        Console::connect_with_key(config, session, key).await
    }

    /// As [`Console::connect`], with the audit key given (the demo passes
    /// [`AuditKey::generate`]).
    pub async fn connect_with_key(
        config: &Config,
        session: Session,
        key: AuditKey,
    ) -> Result<Console> {
        let pluto_read = db::connect(&config.pluto_read_url, db::PLUTO, &config.timeouts).await?;
        let console = db::connect(&config.console_url, db::CONSOLE, &config.timeouts).await?;
        db::migrate_console(&console).await?;
        Ok(Console::from_pools(
            config, session, pluto_read, console, key,
        ))
    }

    pub fn from_pools(
        config: &Config,
        session: Session,
        pluto_read: PgPool,
        console: PgPool,
        key: AuditKey,
    ) -> Console {
        let info = ConsoleInfo {
            operator: session.operator.clone(),
            role: session.role,
            environment: config.environment.clone(),
            production: config.is_production(),
            database: config.pluto_read_url.display_name(),
            demo: session.demo,
        };
        let mirror = config.audit.mirror_jsonl.clone().map(Mirror::new);
        Console {
            pluto_read,
            console,
            session,
            info,
            audit: Arc::new(AuditSink { key, mirror }),
        }
    }

    pub fn info(&self) -> &ConsoleInfo {
        &self.info
    }

    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The public id of the audit key in use (never the key).
    pub fn audit_key_id(&self) -> String {
        self.audit.key.id()
    }

    /// Authorises, audits, then runs one action (see the module docs).
    pub async fn dispatch(&self, action: Action) -> Result<Reply> {
        self.dispatch_with_progress(action, |_| {}).await
    }

    /// As [`Console::dispatch`]; `progress` hears how far a long action
    /// (audit verify) is, for a progress bar.
    pub async fn dispatch_with_progress<P>(&self, action: Action, progress: P) -> Result<Reply>
    where
        P: FnMut(VerifyProgress) + Send,
    {
        let kind = action.kind();
        let permitted = allowed(self.session.role, kind);
        let outcome = if permitted {
            Outcome::Allowed
        } else {
            Outcome::Denied
        };
        let entry = self.entry_for(&action, outcome);
        let first = self.record(&entry).await?;
        if !permitted {
            return Err(Error::Forbidden(format!(
                "role {} may not {}",
                self.session.role,
                kind.as_str()
            )));
        }
        let result = self.run(action, progress).await;
        let failure = match &result {
            Ok(Reply::AuditVerdict(v @ Verdict::Broken { seq, .. })) => Some((
                "chain_broken".to_string(),
                serde_json::json!({ "broken_seq": seq, "verdict": v.to_string() }),
            )),
            Ok(_) => None,
            Err(e) => Some((e.audit_code(), serde_json::json!({}))),
        };
        if let Some((code, extra)) = failure {
            let mut fail = entry;
            fail.outcome = Outcome::Failed;
            fail.event_code = event_code(kind, Outcome::Failed);
            fail.error = Some(code);
            let mut details = serde_json::json!({ "entry": first.seq });
            if let (Some(d), Some(x)) = (details.as_object_mut(), extra.as_object()) {
                d.extend(x.clone());
            }
            fail.details = details;
            if let Err(e) = self.record(&fail).await {
                // The action already failed (or found a broken chain); the
                // operator sees that result. Say the follow-up entry is missing.
                tracing::warn!(error = %e, seq = first.seq, "failure entry not written");
            }
        }
        result
    }

    /// Appends an entry (and mirrors it). Any failure is
    /// [`Error::AuditUnavailable`]: the caller must not run the action.
    async fn record(&self, entry: &NewEntry) -> Result<AuditRecord> {
        let rec = audit::append(&self.console, &self.audit.key, entry)
            .await
            .map_err(|e| Error::AuditUnavailable(e.to_string()))?;
        if let Some(m) = &self.audit.mirror {
            m.write(&rec)
                .map_err(|e| Error::AuditUnavailable(e.to_string()))?;
        }
        Ok(rec)
    }

    /// The audit entry of an action: who, what, which tenant and target; never
    /// a personal value (a search records how the query was read and its
    /// length, not its text).
    fn entry_for(&self, action: &Action, outcome: Outcome) -> NewEntry {
        let kind = action.kind();
        let mut e = NewEntry {
            operator: self.session.operator.clone(),
            role: self.session.role.as_str().to_string(),
            key_id: self.session.key_id.clone(),
            session_id: self.session.id,
            event_code: event_code(kind, outcome),
            action: kind.as_str().to_string(),
            tenant_id: action.tenant(),
            target_table: None,
            target_pk: None,
            target_columns: Vec::new(),
            reason: None,
            outcome,
            error: None,
            details: serde_json::json!({}),
        };
        let ts = |t: &Option<chrono::DateTime<chrono::Utc>>| {
            t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        };
        match action {
            Action::OpenConsole => {
                e.details = serde_json::json!({
                    "environment": self.info.environment,
                    "demo": self.session.demo,
                });
            }
            Action::SearchTenants { query } => {
                let how = tenants::classify(query);
                if let tenants::QueryKind::Id(id) = how {
                    e.tenant_id = Some(id);
                }
                e.details = serde_json::json!({
                    "query_kind": how.label(),
                    "query_len": query.chars().count(),
                });
            }
            Action::OpenTenant { business_id } => {
                e.target_table = Some("businesses".into());
                e.target_pk = Some(business_id.to_string());
            }
            Action::AuditList { filter, before } => {
                e.target_table = Some("audit_log".into());
                e.details = serde_json::json!({ "filter": filter.to_json(), "before": before });
            }
            Action::AuditShow { seq } => {
                e.target_table = Some("audit_log".into());
                e.target_pk = Some(seq.to_string());
            }
            Action::AuditVerify { from, checkpoint } => {
                e.target_table = Some("audit_log".into());
                e.details = serde_json::json!({
                    "from": from,
                    "checkpoint_seq": checkpoint.as_ref().map(|c| c.seq),
                });
            }
            Action::AuditExport {
                since,
                until,
                format,
                dest,
            } => {
                e.target_table = Some("audit_log".into());
                e.details = serde_json::json!({
                    "since": ts(since),
                    "until": ts(until),
                    "format": format.as_str(),
                    "dest": match dest { ExportDest::File(_) => "file", ExportDest::Stdout => "stdout" },
                });
            }
            Action::AuditCheckpoint { .. } => {
                e.target_table = Some("audit_head".into());
            }
        }
        e
    }

    async fn run<P>(&self, action: Action, progress: P) -> Result<Reply>
    where
        P: FnMut(VerifyProgress) + Send,
    {
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
            Action::AuditList { filter, before } => Ok(Reply::AuditPage(
                audit::list(&self.console, &filter, before, audit::PAGE_SIZE).await?,
            )),
            Action::AuditShow { seq } => match audit::show(&self.console, seq).await? {
                Some(r) => Ok(Reply::AuditEntry(Box::new(r))),
                None => Err(Error::NotFound(format!("no audit entry with seq {seq}"))),
            },
            Action::AuditVerify { from, checkpoint } => Ok(Reply::AuditVerdict(
                audit::verify(
                    &self.console,
                    &self.audit.key,
                    from,
                    checkpoint.as_ref(),
                    progress,
                )
                .await?,
            )),
            Action::AuditExport {
                since,
                until,
                format,
                dest,
            } => {
                let entries = match dest {
                    ExportDest::File(path) => {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&path)
                            .map_err(|e| {
                                Error::Io(std::io::Error::new(
                                    e.kind(),
                                    format!("export file {}: {e}", path.display()),
                                ))
                            })?;
                        let mut w = std::io::BufWriter::new(f);
                        audit::export(&self.console, since, until, format, &mut w).await?
                    }
                    ExportDest::Stdout => {
                        let mut w = std::io::BufWriter::new(std::io::stdout());
                        audit::export(&self.console, since, until, format, &mut w).await?
                    }
                };
                Ok(Reply::AuditExported { entries })
            }
            Action::AuditCheckpoint { path } => {
                let cp = audit::checkpoint(&self.console).await?;
                cp.write(&path)?;
                Ok(Reply::AuditCheckpoint(cp))
            }
        }
    }
}
