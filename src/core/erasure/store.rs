//! Erasure requests in the console database (migrations/console/0005) and
//! the execution of an approved plan against the Pluto database.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::{Plan, Subject};
use crate::core::{Error, Result};

/// The legal regime, which sets the due date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Regime {
    /// 30 days.
    Gdpr,
    /// 45 days.
    Ccpa,
    Custom {
        due_at: DateTime<Utc>,
    },
}

impl Regime {
    pub fn name(&self) -> &'static str {
        match self {
            Regime::Gdpr => "gdpr",
            Regime::Ccpa => "ccpa",
            Regime::Custom { .. } => "custom",
        }
    }

    pub fn due_at(&self, received_at: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Regime::Gdpr => received_at + Duration::days(30),
            Regime::Ccpa => received_at + Duration::days(45),
            Regime::Custom { due_at } => *due_at,
        }
    }
}

/// What a request asks for: erase the subject, or export what is held
/// about them (the right of access) with the same discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestKind {
    #[default]
    Erasure,
    Access,
}

impl RequestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestKind::Erasure => "erasure",
            RequestKind::Access => "access",
        }
    }
}

pub struct NewRequest<'a> {
    /// A fresh id chosen by the caller, so that the audit entry written
    /// before the request exists already names it.
    pub id: Uuid,
    pub kind: RequestKind,
    pub subject: &'a Subject,
    pub ticket: String,
    pub regime: Regime,
    pub note: String,
    pub received_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ErasureRequest {
    pub id: Uuid,
    pub kind: String,
    pub subject_ref: String,
    pub ticket: String,
    pub regime: String,
    pub note: String,
    pub received_at: DateTime<Utc>,
    pub due_at: DateTime<Utc>,
    pub state: String,
    pub created_by: String,
    pub planned_by: Option<String>,
    pub approved_by: Option<String>,
    pub executed_by: Option<String>,
    pub plan_sha256: Option<String>,
    pub executed_at: Option<DateTime<Utc>>,
    pub failure: Option<String>,
    pub certificate_sha256: Option<String>,
}

impl ErasureRequest {
    /// Not finished and past its due date.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.state != "done" && now > self.due_at
    }
}

const REQUEST_COLUMNS: &str = "id, kind, subject_ref, ticket, regime, note, received_at, due_at, \
     state, created_by, planned_by, approved_by, executed_by, plan_sha256, executed_at, failure, \
     certificate_sha256";

fn request_from(row: &sqlx::postgres::PgRow) -> Result<ErasureRequest> {
    Ok(ErasureRequest {
        id: row.try_get(0)?,
        kind: row.try_get(1)?,
        subject_ref: row.try_get(2)?,
        ticket: row.try_get(3)?,
        regime: row.try_get(4)?,
        note: row.try_get(5)?,
        received_at: row.try_get(6)?,
        due_at: row.try_get(7)?,
        state: row.try_get(8)?,
        created_by: row.try_get(9)?,
        planned_by: row.try_get(10)?,
        approved_by: row.try_get(11)?,
        executed_by: row.try_get(12)?,
        plan_sha256: row.try_get(13)?,
        executed_at: row.try_get(14)?,
        failure: row.try_get(15)?,
        certificate_sha256: row.try_get(16)?,
    })
}

fn keyed(key: &[u8], kind: &str, value: &str) -> Result<String> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .map_err(|_| Error::Config("erasure hash key cannot be used".into()))?;
    mac.update(kind.as_bytes());
    mac.update(b":");
    mac.update(value.as_bytes());
    Ok(hex::encode(mac.finalize().into_bytes()))
}

/// The key of the subject identifiers' keyed hashes: derived from the audit
/// key, never stored.
pub fn subject_key(audit: &crate::core::audit::AuditKey) -> [u8; 32] {
    audit.mac(b"charon-erasure-subject-key-v1")
}

/// The key that seals credentials (Plaid access tokens) in the external
/// queue: derived from the audit key, never stored.
pub fn credential_seal(audit: &crate::core::audit::AuditKey) -> crate::core::secrets::MasterKey {
    crate::core::secrets::MasterKey::new(audit.mac(b"charon-erasure-credential-seal-v1"))
}

/// Keyed hashes (HMAC-SHA256) of the subject's normalised identifiers,
/// sorted: what the console database keeps instead of the identifiers.
pub fn subject_hashes(key: &[u8], subject: &Subject) -> Result<Vec<String>> {
    let n = subject.normalized();
    let mut out = BTreeSet::new();
    for e in &n.emails {
        out.insert(keyed(key, "email", e)?);
    }
    for p in &n.phones {
        out.insert(keyed(key, "phone", p)?);
    }
    for u in &n.user_ids {
        out.insert(keyed(key, "user_id", &u.to_string())?);
    }
    Ok(out.into_iter().collect())
}

/// Creates a request in state `draft`.
pub async fn create_request(console: &PgPool, key: &[u8], req: &NewRequest<'_>) -> Result<Uuid> {
    if req.subject.is_empty() {
        return Err(Error::InvalidInput("no subject identifier given".into()));
    }
    if req.ticket.trim().is_empty() {
        return Err(Error::InvalidInput("a ticket reference is required".into()));
    }
    crate::core::input::subject(req.subject)?;
    crate::core::input::text(
        "the ticket",
        &req.ticket,
        crate::core::input::MAX_TICKET,
        true,
    )?;
    crate::core::input::text("the note", &req.note, crate::core::input::MAX_NOTE, false)?;
    let due = req.regime.due_at(req.received_at);
    if due < req.received_at {
        return Err(Error::InvalidInput(
            "due date before the request was received".into(),
        ));
    }
    let id = req.id;
    let hashes = serde_json::Value::from(subject_hashes(key, req.subject)?);
    sqlx::query(
        "INSERT INTO erasure_requests (id, subject_ref, subject_hashes, ticket, regime, note,
                                       received_at, due_at, created_by, kind)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(id)
    .bind(req.subject.masked_ref())
    .bind(hashes)
    .bind(req.ticket.trim())
    .bind(req.regime.name())
    .bind(&req.note)
    .bind(req.received_at)
    .bind(due)
    .bind(&req.created_by)
    .bind(req.kind.as_str())
    .execute(console)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            Error::Conflict(format!("a request with id {id} exists already"))
        }
        _ => e.into(),
    })?;
    Ok(id)
}

pub async fn get_request(console: &PgPool, id: Uuid) -> Result<ErasureRequest> {
    let sql = format!("SELECT {REQUEST_COLUMNS} FROM erasure_requests WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(console)
        .await?
        .ok_or_else(|| Error::NotFound(format!("erasure request {id}")))?;
    request_from(&row)
}

/// Requests, unfinished first (by due date), then finished ones (newest
/// first); at most `limit`.
pub async fn list_requests(console: &PgPool, limit: i64) -> Result<Vec<ErasureRequest>> {
    let sql = format!(
        "SELECT {REQUEST_COLUMNS} FROM erasure_requests
          ORDER BY (state = 'done'), CASE WHEN state = 'done' THEN NULL ELSE due_at END,
                   executed_at DESC NULLS LAST, created_at DESC
          LIMIT $1"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(limit.clamp(1, 10_000))
        .fetch_all(console)
        .await?;
    rows.iter().map(request_from).collect()
}

/// Refuses identifiers other than the ones the request was created with
/// (compared by their keyed hashes).
pub async fn check_subject(
    console: &PgPool,
    key: &[u8],
    id: Uuid,
    subject: &Subject,
) -> Result<()> {
    let stored: Option<serde_json::Value> =
        sqlx::query_scalar("SELECT subject_hashes FROM erasure_requests WHERE id = $1")
            .bind(id)
            .fetch_optional(console)
            .await?;
    let Some(stored) = stored else {
        return Err(Error::NotFound(format!("erasure request {id}")));
    };
    if stored != serde_json::Value::from(subject_hashes(key, subject)?) {
        return Err(Error::InvalidInput(
            "these identifiers are not the ones the request was created with".into(),
        ));
    }
    Ok(())
}

/// Stores a plan (state `planned`); any earlier approval is dropped.
pub async fn store_plan(console: &PgPool, id: Uuid, plan: &Plan, planner: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE erasure_requests
            SET plan = $2, plan_sha256 = $3, state = 'planned', approved_by = NULL,
                approved_at = NULL, planned_by = $4, planned_at = now()
          WHERE id = $1 AND state IN ('draft', 'planned', 'approved', 'failed')",
    )
    .bind(id)
    .bind(plan.to_json()?)
    .bind(&plan.sha256)
    .bind(planner)
    .execute(console)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        get_request(console, id).await?;
        Err(Error::Conflict(
            "the request is executing or finished: its plan cannot change".into(),
        ))
    }
}

/// Approves the stored plan whose SHA-256 the approver saw. The creator of
/// the request cannot approve it.
pub async fn approve(console: &PgPool, id: Uuid, approver: &str, plan_sha256: &str) -> Result<()> {
    let r = get_request(console, id).await?;
    if r.created_by == approver {
        return Err(Error::Forbidden(
            "the officer who created a request cannot approve it".into(),
        ));
    }
    if r.state != "planned" {
        return Err(Error::Conflict(format!(
            "the request is {}, not planned",
            r.state
        )));
    }
    if r.plan_sha256.as_deref() != Some(plan_sha256) {
        return Err(Error::Conflict(
            "the plan changed since it was shown: review it again".into(),
        ));
    }
    let done = sqlx::query(
        "UPDATE erasure_requests SET state = 'approved', approved_by = $2, approved_at = now()
          WHERE id = $1 AND state = 'planned' AND plan_sha256 = $3",
    )
    .bind(id)
    .bind(approver)
    .bind(plan_sha256)
    .execute(console)
    .await?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(Error::Conflict("the request changed meanwhile".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_key_is_derived_from_the_audit_key_and_differs_per_key() {
        use crate::core::audit::AuditKey;
        let a = AuditKey::from_hex(&"11".repeat(32)).unwrap();
        let b = AuditKey::from_hex(&"22".repeat(32)).unwrap();
        assert_eq!(subject_key(&a), subject_key(&a));
        assert_ne!(subject_key(&a), subject_key(&b));
        assert_ne!(subject_key(&a), [0u8; 32]);
        assert_eq!(
            subject_key(&a),
            a.mac(b"charon-erasure-subject-key-v1"),
            "a stored request's hashes must stay comparable across versions"
        );
        // And the hashes of one subject differ under two deployments' keys.
        let s = Subject {
            emails: vec!["a@example.test".into()],
            phones: vec![],
            user_ids: vec![],
        };
        assert_ne!(
            subject_hashes(&subject_key(&a), &s).unwrap(),
            subject_hashes(&subject_key(&b), &s).unwrap()
        );
    }

    #[test]
    fn overdue_means_unfinished_and_strictly_past_due() {
        let due = DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let later = due + chrono::Duration::seconds(1);
        let mut r = ErasureRequest {
            id: Uuid::nil(),
            kind: "erasure".into(),
            subject_ref: String::new(),
            ticket: String::new(),
            regime: "gdpr".into(),
            note: String::new(),
            received_at: due - chrono::Duration::days(30),
            due_at: due,
            state: "approved".into(),
            created_by: String::new(),
            planned_by: None,
            approved_by: None,
            executed_by: None,
            plan_sha256: None,
            executed_at: None,
            failure: None,
            certificate_sha256: None,
        };
        assert!(!r.overdue(due), "due today is not overdue yet");
        assert!(!r.overdue(due - chrono::Duration::seconds(1)));
        assert!(r.overdue(later));
        r.state = "done".into();
        assert!(!r.overdue(later), "a finished request is never overdue");
    }

    #[test]
    fn due_dates_follow_the_regime() {
        let at = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        assert_eq!(Regime::Gdpr.due_at(at) - at, Duration::days(30));
        assert_eq!(Regime::Ccpa.due_at(at) - at, Duration::days(45));
        let due = at + Duration::days(10);
        assert_eq!(Regime::Custom { due_at: due }.due_at(at), due);
    }

    #[test]
    fn subject_hashes_are_keyed_and_normalised() {
        let a = Subject {
            emails: vec!["Jane@Example.com".into()],
            phones: vec!["+1 415-555-0134".into()],
            user_ids: vec![],
        };
        let b = Subject {
            emails: vec!["jane@example.com ".into()],
            phones: vec!["14155550134".into()],
            user_ids: vec![],
        };
        let ha = subject_hashes(b"k1", &a).unwrap_or_default();
        assert_eq!(ha.len(), 2);
        assert_eq!(ha, subject_hashes(b"k1", &b).unwrap_or_default());
        assert_ne!(ha, subject_hashes(b"k2", &a).unwrap_or_default());
        assert!(ha.iter().all(|h| !h.contains("jane")));
    }
}
