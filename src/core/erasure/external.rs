//! The external half of an erasure: objects in object storage and Plaid
//! items. Steps sit in `erasure_external_queue` (console database), written in
//! the same step as the Pluto transaction, and are run here with retries and
//! a back-off. Every step is idempotent: an object already gone or an item
//! already removed counts as done.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use sqlx::{PgPool, Row};
use url::Url;
use uuid::Uuid;

use crate::core::config::{ErasureConfig, SystemConfig};
use crate::core::datamap::{DataMap, SystemKind};
use crate::core::secrets::{MasterKey, read_protected_file};
use crate::core::{Error, Result};

/// Environment variable holding the Plaid secret when no `secret_file` is set.
pub const PLAID_SECRET_ENV: &str = "CHARON_PLAID_SECRET";

/// The configured external systems, by the name the data map gives them.
#[derive(Clone)]
pub struct Systems {
    targets: BTreeMap<String, Target>,
    max_attempts: u32,
}

impl Default for Systems {
    /// None configured: every step waits in the queue.
    fn default() -> Self {
        Systems {
            targets: BTreeMap::new(),
            max_attempts: ErasureConfig::default().max_attempts,
        }
    }
}

impl std::fmt::Debug for Systems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Systems")
            .field("names", &self.targets.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Clone)]
enum Target {
    Objects {
        store: Arc<dyn ObjectStore>,
        prefix: ObjectPath,
    },
    Plaid(Plaid),
}

#[derive(Clone)]
struct Plaid {
    base: Url,
    client_id: String,
    secret: Arc<String>,
    http: reqwest::Client,
}

/// What one step came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// Done; the text says how (`deleted`, `already gone`, `removed`,
    /// `already removed`).
    Done(String),
    /// Worth another try later.
    Retry(String),
    /// Will not succeed by retrying (e.g. no credential to revoke with).
    Failed(String),
}

impl Systems {
    /// Builds the systems the configuration names, checked against the data
    /// map's declarations (kind and name).
    pub fn from_config(cfg: &ErasureConfig, map: &DataMap) -> Result<Systems> {
        let mut targets = BTreeMap::new();
        for (name, sc) in &cfg.systems {
            let Some(decl) = map.system(name) else {
                return Err(Error::Config(format!(
                    "[erasure.systems.{name}]: the data map declares no system `{name}`"
                )));
            };
            let target = match decl.kind {
                SystemKind::ObjectStore => object_target(name, sc)?,
                SystemKind::Plaid => Target::Plaid(plaid_target(name, sc)?),
            };
            targets.insert(name.clone(), target);
        }
        Ok(Systems {
            targets,
            max_attempts: cfg.max_attempts,
        })
    }

    /// How many tries a step gets before it is marked failed.
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.max(1)
    }

    pub fn is_configured(&self, system: &str) -> bool {
        self.targets.contains_key(system)
    }

    fn names(&self) -> Vec<String> {
        self.targets.keys().cloned().collect()
    }

    /// Runs one step. `credential` is the opened secret for Plaid items.
    pub async fn run_step(
        &self,
        system: &str,
        object: &str,
        credential: Option<&str>,
    ) -> StepResult {
        let Some(target) = self.targets.get(system) else {
            return StepResult::Retry(format!(
                "system `{system}` is not configured ([erasure.systems.{system}])"
            ));
        };
        match target {
            Target::Objects { store, prefix } => {
                let path = match object_path(prefix, object) {
                    Ok(p) => p,
                    Err(e) => return StepResult::Failed(e),
                };
                match store.delete(&path).await {
                    Ok(()) => StepResult::Done("deleted".into()),
                    Err(object_store::Error::NotFound { .. }) => {
                        StepResult::Done("already gone".into())
                    }
                    Err(e) => StepResult::Retry(format!("object store: {}", short(&e.to_string()))),
                }
            }
            Target::Plaid(p) => match credential {
                None => StepResult::Failed(
                    "no access token for this item was found in Pluto; remove it in Plaid's \
                     dashboard"
                        .into(),
                ),
                Some(token) => p.remove_item(token).await,
            },
        }
    }
}

fn short(s: &str) -> String {
    crate::core::sanitize::excerpt(s, 300)
}

/// The object's path under the configured prefix. Refuses keys that would
/// leave the prefix (`..`, empty segments).
fn object_path(prefix: &ObjectPath, key: &str) -> std::result::Result<ObjectPath, String> {
    let rel = ObjectPath::parse(key).map_err(|_| "not a valid object key".to_string())?;
    if rel.parts_count() == 0 {
        return Err("empty object key".into());
    }
    let mut p = prefix.clone();
    for part in rel.parts() {
        p = p.join(part);
    }
    Ok(p)
}

fn object_target(name: &str, sc: &SystemConfig) -> Result<Target> {
    let opts: Vec<(String, String)> = sc
        .options
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if sc.url.scheme() == "file" {
        // object_store's local store wants the directory to exist.
        let dir = sc.url.to_file_path().map_err(|_| {
            Error::Config(format!(
                "[erasure.systems.{name}] url: not a local path: {}",
                sc.url
            ))
        })?;
        if !dir.is_dir() {
            return Err(Error::Config(format!(
                "[erasure.systems.{name}] url: directory {} does not exist",
                dir.display()
            )));
        }
        let store = object_store::local::LocalFileSystem::new_with_prefix(&dir)
            .map_err(|e| Error::Config(format!("[erasure.systems.{name}] url: {e}")))?;
        return Ok(Target::Objects {
            store: Arc::new(store),
            prefix: ObjectPath::default(),
        });
    }
    let (store, prefix) = object_store::parse_url_opts(&sc.url, opts)
        .map_err(|e| Error::Config(format!("[erasure.systems.{name}] url: {e}")))?;
    Ok(Target::Objects {
        store: Arc::from(store),
        prefix,
    })
}

fn plaid_target(name: &str, sc: &SystemConfig) -> Result<Plaid> {
    let client_id = sc.client_id.clone().ok_or_else(|| {
        Error::Config(format!(
            "[erasure.systems.{name}]: `client_id` is required for Plaid"
        ))
    })?;
    let secret = match &sc.secret_file {
        Some(p) => read_protected_file(p, "Plaid secret file")?
            .trim()
            .to_string(),
        None => std::env::var(PLAID_SECRET_ENV).unwrap_or_default(),
    };
    if secret.is_empty() {
        return Err(Error::Config(format!(
            "[erasure.systems.{name}]: no Plaid secret: set `secret_file` or {PLAID_SECRET_ENV}"
        )));
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Config(format!("[erasure.systems.{name}]: HTTP client: {e}")))?;
    Ok(Plaid {
        base: sc.url.clone(),
        client_id,
        secret: Arc::new(secret),
        http,
    })
}

impl Plaid {
    /// `POST /item/remove` (Plaid API 2020-09-14). `ITEM_NOT_FOUND` means it
    /// is already gone. Error texts carry Plaid's code, never the token.
    async fn remove_item(&self, access_token: &str) -> StepResult {
        let url = match self.base.join("item/remove") {
            Ok(u) => u,
            Err(e) => return StepResult::Failed(format!("Plaid URL: {e}")),
        };
        let body = serde_json::json!({
            "client_id": self.client_id,
            "secret": self.secret.as_str(),
            "access_token": access_token,
        });
        let resp = match self
            .http
            .post(url)
            .header("Plaid-Version", "2020-09-14")
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            // reqwest's error names the URL only; the body holds the secrets.
            Err(e) => {
                return StepResult::Retry(format!("Plaid unreachable: {}", short(&e.to_string())));
            }
        };
        let status = resp.status();
        let json: serde_json::Value = resp.json().await.unwrap_or(serde_json::Value::Null);
        let code = json
            .get("error_code")
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string();
        if status.is_success() {
            return StepResult::Done("removed".into());
        }
        match code.as_str() {
            "ITEM_NOT_FOUND" => StepResult::Done("already removed".into()),
            "INVALID_ACCESS_TOKEN" | "INVALID_API_KEYS" | "INVALID_FIELD" => StepResult::Failed(
                format!("Plaid refused: HTTP {} {}", status.as_u16(), short(&code)),
            ),
            _ => StepResult::Retry(format!(
                "Plaid: HTTP {} {}",
                status.as_u16(),
                short(if code.is_empty() {
                    "(no error code)"
                } else {
                    &code
                })
            )),
        }
    }
}

/// The additional data a sealed credential is bound to.
pub fn credential_aad(request: Uuid, system: &str, object: &str) -> Vec<u8> {
    format!("charon-erasure-credential-v1\0{request}\0{system}\0{object}").into_bytes()
}

/// One step as the queue runner reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueProgress {
    pub done: u64,
    pub total: u64,
    pub system: String,
}

/// What a queue run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueReport {
    pub done: u64,
    pub retried: u64,
    pub failed: u64,
    /// Steps still pending (waiting for their next try).
    pub pending: u64,
}

type StepFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = (usize, StepResult)> + Send + 'a>>;

/// Steps run at once.
const PARALLEL: usize = 16;
/// Steps claimed per console transaction.
const BATCH: i64 = 64;

struct Claimed {
    id: i64,
    request: Uuid,
    system: String,
    object: String,
    payload: Option<Vec<u8>>,
    attempts: i32,
}

/// Runs every pending step that is due (of one request, or of all), until
/// none is due. Steps are claimed with `FOR UPDATE SKIP LOCKED`, so two
/// runners never run the same step. Failed tries are retried later with an
/// exponential back-off, up to [`Systems::max_attempts`].
pub async fn run_queue(
    console: &PgPool,
    systems: &Systems,
    seal: &MasterKey,
    request: Option<Uuid>,
    progress: &mut (dyn FnMut(QueueProgress) + Send),
) -> Result<QueueReport> {
    let total: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM erasure_external_queue
          WHERE state = 'pending' AND ($1::uuid IS NULL OR request_id = $1)",
    )
    .bind(request)
    .fetch_one(console)
    .await?;
    let total = total.max(0) as u64;
    // Steps of systems that are not configured wait (their tries are not
    // used up); they say why.
    let configured = systems.names();
    sqlx::query(
        "UPDATE erasure_external_queue
            SET last_error = 'system `' || system || '` is not configured ([erasure.systems.' || system || '])',
                updated_at = now()
          WHERE state = 'pending' AND NOT (system = ANY($2))
            AND ($1::uuid IS NULL OR request_id = $1)",
    )
    .bind(request)
    .bind(&configured)
    .execute(console)
    .await?;
    let mut report = QueueReport::default();
    let mut seen = 0u64;
    loop {
        let mut tx = console.begin().await?;
        let rows = sqlx::query(
            "SELECT id, request_id, system, object, payload, attempts
               FROM erasure_external_queue
              WHERE state = 'pending' AND next_attempt_at <= now()
                AND ($1::uuid IS NULL OR request_id = $1) AND system = ANY($3)
              ORDER BY id
              LIMIT $2
              FOR UPDATE SKIP LOCKED",
        )
        .bind(request)
        .bind(BATCH)
        .bind(&configured)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            break;
        }
        let mut claimed = Vec::with_capacity(rows.len());
        for r in rows {
            claimed.push(Claimed {
                id: r.try_get(0)?,
                request: r.try_get(1)?,
                system: r.try_get(2)?,
                object: r.try_get(3)?,
                payload: r.try_get(4)?,
                attempts: r.try_get(5)?,
            });
        }
        let mut steps: Vec<StepFuture<'_>> = Vec::with_capacity(claimed.len());
        for (i, c) in claimed.iter().enumerate() {
            let credential = match &c.payload {
                None => Ok(None),
                Some(sealed) => seal
                    .open(sealed, &credential_aad(c.request, &c.system, &c.object))
                    .map(|plain| String::from_utf8(plain.expose().clone()).ok())
                    .map_err(|_| ()),
            };
            let (system, object) = (c.system.clone(), c.object.clone());
            steps.push(Box::pin(async move {
                let result = match credential {
                    Err(()) => StepResult::Failed(
                        "the sealed credential cannot be opened (another key?)".into(),
                    ),
                    Ok(cred) => systems.run_step(&system, &object, cred.as_deref()).await,
                };
                (i, result)
            }));
        }
        let results: Vec<(usize, StepResult)> = futures::stream::iter(steps)
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        for (i, result) in results {
            let Some(c) = claimed.get(i) else { continue };
            let attempts = c.attempts + 1;
            match result {
                StepResult::Done(how) => {
                    sqlx::query(
                        "UPDATE erasure_external_queue
                            SET state = 'done', attempts = $2, outcome = $3, payload = NULL,
                                last_error = NULL, done_at = now(), updated_at = now()
                          WHERE id = $1",
                    )
                    .bind(c.id)
                    .bind(attempts)
                    .bind(how)
                    .execute(&mut *tx)
                    .await?;
                    report.done += 1;
                }
                StepResult::Retry(why) if (attempts as u32) < systems.max_attempts() => {
                    let backoff = 2i64.saturating_pow(attempts.clamp(0, 12) as u32).min(3600);
                    sqlx::query(
                        "UPDATE erasure_external_queue
                            SET attempts = $2, last_error = $3, updated_at = now(),
                                next_attempt_at = now() + make_interval(secs => $4)
                          WHERE id = $1",
                    )
                    .bind(c.id)
                    .bind(attempts)
                    .bind(why)
                    .bind(backoff as f64)
                    .execute(&mut *tx)
                    .await?;
                    report.retried += 1;
                }
                StepResult::Retry(why) | StepResult::Failed(why) => {
                    sqlx::query(
                        "UPDATE erasure_external_queue
                            SET state = 'failed', attempts = $2, last_error = $3,
                                updated_at = now()
                          WHERE id = $1",
                    )
                    .bind(c.id)
                    .bind(attempts)
                    .bind(why)
                    .execute(&mut *tx)
                    .await?;
                    report.failed += 1;
                }
            }
            seen += 1;
            progress(QueueProgress {
                done: seen.min(total.max(seen)),
                total: total.max(seen),
                system: c.system.clone(),
            });
        }
        tx.commit().await?;
    }
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM erasure_external_queue
          WHERE state = 'pending' AND ($1::uuid IS NULL OR request_id = $1)",
    )
    .bind(request)
    .fetch_one(console)
    .await?;
    report.pending = pending.max(0) as u64;
    Ok(report)
}

/// Puts a request's failed steps back in the queue (after the cause was
/// fixed, e.g. the bucket's permissions); returns how many.
pub async fn retry_failed(console: &PgPool, request: Uuid) -> Result<u64> {
    Ok(sqlx::query(
        "UPDATE erasure_external_queue
            SET state = 'pending', attempts = 0, next_attempt_at = now(), updated_at = now()
          WHERE request_id = $1 AND state = 'failed'",
    )
    .bind(request)
    .execute(console)
    .await?
    .rows_affected())
}

/// One step of a request, for `show` and the certificate.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Step {
    pub system: String,
    pub object: String,
    pub state: String,
    pub attempts: i32,
    pub outcome: Option<String>,
    pub last_error: Option<String>,
}

pub async fn steps(console: &PgPool, request: Uuid) -> Result<Vec<Step>> {
    let rows = sqlx::query(
        "SELECT system, object, state, attempts, outcome, last_error
           FROM erasure_external_queue WHERE request_id = $1 ORDER BY system, object",
    )
    .bind(request)
    .fetch_all(console)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Step {
            system: r.try_get(0)?,
            object: r.try_get(1)?,
            state: r.try_get(2)?,
            attempts: r.try_get(3)?,
            outcome: r.try_get(4)?,
            last_error: r.try_get(5)?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_keys_cannot_leave_the_prefix() {
        let prefix = ObjectPath::from("tenant-data");
        assert_eq!(
            object_path(&prefix, "receipts/a/b.jpg").map(|p| p.to_string()),
            Ok("tenant-data/receipts/a/b.jpg".to_string())
        );
        assert!(object_path(&prefix, "../etc/passwd").is_err());
        assert!(object_path(&prefix, "a/../../b").is_err());
        assert!(object_path(&prefix, "").is_err());
    }
}
