//! The external half of an erasure beyond the happy path: configuration
//! refusals, each way a step can end (not configured, no credential, a
//! credential sealed with another key, Plaid refusing or unreachable or
//! answering without an error code, an object store error), the back-off,
//! steps marked failed after their last try, and `retry_failed`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use charon::core::Error;
use charon::core::config::{ErasureConfig, SystemConfig};
use charon::core::datamap::DataMap;
use charon::core::erasure::external::{self, StepResult};
use charon::core::erasure::store::RequestKind;
use charon::core::erasure::{NewRequest, Regime, Subject, Systems, create_request};
use charon::core::secrets::MasterKey;
use common::TestDb;
use common::plaid::{CLIENT_ID, PlaidServer, SECRET};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

const SEAL: [u8; 32] = [7; 32];

fn file_system(dir: &Path) -> SystemConfig {
    SystemConfig {
        url: url::Url::from_directory_path(dir).unwrap(),
        options: BTreeMap::new(),
        client_id: None,
        secret_file: None,
    }
}

fn secret_file(dir: &Path, secret: &str) -> std::path::PathBuf {
    let p = dir.join(format!("plaid-{}.secret", secret.len()));
    std::fs::write(&p, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn plaid_system(url: &str, secret_file: &Path) -> SystemConfig {
    SystemConfig {
        url: url::Url::parse(url).unwrap(),
        options: BTreeMap::new(),
        client_id: Some(CLIENT_ID.into()),
        secret_file: Some(secret_file.to_path_buf()),
    }
}

fn systems(max_attempts: u32, list: Vec<(&str, SystemConfig)>) -> Result<Systems, Error> {
    let cfg = ErasureConfig {
        max_attempts,
        systems: list.into_iter().map(|(n, s)| (n.to_string(), s)).collect(),
        ..ErasureConfig::default()
    };
    Systems::from_config(&cfg, &DataMap::bundled().unwrap())
}

fn config_error(r: Result<Systems, Error>) -> String {
    match r {
        Err(Error::Config(m)) => m,
        Err(other) => panic!("expected a configuration error, got {other:?}"),
        Ok(s) => panic!("expected a configuration error, got {s:?}"),
    }
}

#[test]
fn configurations_the_data_map_or_the_system_cannot_use_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let m = config_error(systems(3, vec![("crm", file_system(dir.path()))]));
    assert_eq!(
        m,
        "[erasure.systems.crm]: the data map declares no system `crm`"
    );

    let m = config_error(systems(
        3,
        vec![("receipts_bucket", file_system(&dir.path().join("missing")))],
    ));
    assert!(
        m.starts_with("[erasure.systems.receipts_bucket] url: directory "),
        "{m}"
    );
    assert!(m.ends_with("does not exist"), "{m}");

    let mut remote = file_system(dir.path());
    remote.url = url::Url::parse("file://fileserver/share/receipts").unwrap();
    let m = config_error(systems(3, vec![("receipts_bucket", remote)]));
    assert!(
        m.contains("url: not a local path: file://fileserver/share/receipts"),
        "{m}"
    );

    let mut unknown = file_system(dir.path());
    unknown.url = url::Url::parse("gopher://bucket/receipts").unwrap();
    let m = config_error(systems(3, vec![("receipts_bucket", unknown)]));
    assert!(
        m.starts_with("[erasure.systems.receipts_bucket] url: "),
        "{m}"
    );

    let mut no_client = plaid_system("http://127.0.0.1:9/", &secret_file(dir.path(), SECRET));
    no_client.client_id = None;
    let m = config_error(systems(3, vec![("plaid", no_client)]));
    assert_eq!(
        m,
        "[erasure.systems.plaid]: `client_id` is required for Plaid"
    );

    let empty = secret_file(dir.path(), "");
    let m = config_error(systems(
        3,
        vec![("plaid", plaid_system("http://127.0.0.1:9/", &empty))],
    ));
    assert!(
        m.contains("no Plaid secret: set `secret_file` or CHARON_PLAID_SECRET"),
        "{m}"
    );
}

#[tokio::test]
async fn systems_say_which_are_configured_and_never_print_options() {
    let dir = tempfile::tempdir().unwrap();
    let mut memory = file_system(dir.path());
    memory.url = url::Url::parse("memory:///receipts").unwrap();
    memory
        .options
        .insert("aws_secret_access_key".into(), "hunter2-secret".into());
    let s = systems(0, vec![("receipts_bucket", memory)]).unwrap();
    assert!(s.is_configured("receipts_bucket"));
    assert!(!s.is_configured("plaid"));
    assert_eq!(s.max_attempts(), 1, "at least one try");
    let shown = format!("{s:?}");
    assert_eq!(shown, "Systems { names: [\"receipts_bucket\"] }");
    // A store that is not a local directory, through object_store's URL.
    assert!(matches!(
        s.run_step("receipts_bucket", "receipts/a.jpg", None).await,
        StepResult::Done(_)
    ));
    assert_eq!(
        s.run_step("plaid", "item-1", Some("access-token")).await,
        StepResult::Retry("system `plaid` is not configured ([erasure.systems.plaid])".into())
    );
}

/// A local HTTP server that answers every request with `status` and an
/// empty body.
async fn bare_status_server(status: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf).await;
            let _ = conn
                .write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                )
                .await;
            let _ = conn.shutdown().await;
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread")]
async fn plaid_steps_end_as_the_answer_says_and_never_name_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let plaid = PlaidServer::start(&[("access-live", "item-live")]).await;
    let good = secret_file(dir.path(), SECRET);
    let s = systems(3, vec![("plaid", plaid_system(&plaid.url, &good))]).unwrap();
    assert_eq!(
        s.run_step("plaid", "item-live", None).await,
        StepResult::Failed(
            "no access token for this item was found in Pluto; remove it in Plaid's dashboard"
                .into()
        )
    );
    assert_eq!(
        s.run_step("plaid", "item-live", Some("access-live")).await,
        StepResult::Done("removed".into())
    );

    let wrong = secret_file(dir.path(), "another-secret");
    let s = systems(3, vec![("plaid", plaid_system(&plaid.url, &wrong))]).unwrap();
    assert_eq!(
        s.run_step("plaid", "item-live", Some("access-live")).await,
        StepResult::Failed("Plaid refused: HTTP 400 INVALID_API_KEYS".into())
    );

    let bare = bare_status_server("503 Service Unavailable").await;
    let s = systems(3, vec![("plaid", plaid_system(&bare, &good))]).unwrap();
    assert_eq!(
        s.run_step("plaid", "item-live", Some("access-live")).await,
        StepResult::Retry("Plaid: HTTP 503 (no error code)".into())
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let s = systems(
        3,
        vec![(
            "plaid",
            plaid_system(&format!("http://127.0.0.1:{port}/"), &good),
        )],
    )
    .unwrap();
    match s.run_step("plaid", "item-live", Some("access-live")).await {
        StepResult::Retry(why) => {
            assert!(why.starts_with("Plaid unreachable: "), "{why}");
            assert!(!why.contains("access-live"), "{why}");
            assert!(!why.contains(SECRET), "{why}");
        }
        other => panic!("expected a retry, got {other:?}"),
    }

    let s = systems(
        3,
        vec![("plaid", plaid_system("mailto:plaid@example.test", &good))],
    )
    .unwrap();
    match s.run_step("plaid", "item-live", Some("access-live")).await {
        StepResult::Failed(why) => assert!(why.starts_with("Plaid URL: "), "{why}"),
        other => panic!("expected a failure, got {other:?}"),
    }
}

async fn console_with_request() -> (TestDb, Uuid) {
    let db = TestDb::new("erq").await;
    charon::core::db::migrate_console(&db.pool).await.unwrap();
    let subject = Subject {
        emails: vec!["queue.subject@example.test".into()],
        phones: vec![],
        user_ids: vec![],
    };
    let id = create_request(
        &db.pool,
        b"erasure-queue-test-hash-key-0123",
        &NewRequest {
            id: Uuid::new_v4(),
            kind: RequestKind::Erasure,
            subject: &subject,
            ticket: "TICKET-Q".into(),
            regime: Regime::Gdpr,
            note: String::new(),
            received_at: chrono::Utc::now(),
            created_by: "alice".into(),
        },
    )
    .await
    .unwrap();
    (db, id)
}

async fn enqueue(db: &TestDb, request: Uuid, system: &str, object: &str, payload: Option<Vec<u8>>) {
    sqlx::query(
        "INSERT INTO erasure_external_queue (request_id, system, object, payload)
         VALUES ($1, $2, $3, $4)",
    )
    .bind(request)
    .bind(system)
    .bind(object)
    .bind(payload)
    .execute(&db.pool)
    .await
    .unwrap();
}

async fn step_row(db: &TestDb, object: &str) -> (String, i32, Option<String>, f64) {
    sqlx::query_as(
        "SELECT state, attempts, last_error,
                extract(epoch FROM next_attempt_at - now())::float8
           FROM erasure_external_queue WHERE object = $1",
    )
    .bind(object)
    .fetch_one(&db.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_backs_off_then_fails_and_retry_failed_requeues_it() {
    let (db, request) = console_with_request().await;
    let bucket = tempfile::tempdir().unwrap();
    // A directory where the object should be: deleting it is an error that
    // is not "not found".
    std::fs::create_dir_all(bucket.path().join("receipts/stuck.jpg")).unwrap();
    std::fs::write(bucket.path().join("receipts/stuck.jpg/inner"), b"x").unwrap();
    let s = systems(2, vec![("receipts_bucket", file_system(bucket.path()))]).unwrap();
    enqueue(&db, request, "receipts_bucket", "receipts/stuck.jpg", None).await;
    let seal = MasterKey::new(SEAL);
    let mut seen = Vec::new();

    let r = external::run_queue(&db.pool, &s, &seal, Some(request), &mut |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!((r.done, r.retried, r.failed, r.pending), (0, 1, 0, 1));
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].system, "receipts_bucket");
    let (state, attempts, why, wait) = step_row(&db, "receipts/stuck.jpg").await;
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(
        why.as_deref().unwrap_or("").starts_with("object store: "),
        "{why:?}"
    );
    // Due 2 s after the try started (measured from now, a little less).
    assert!(
        wait > 0.0 && wait <= 2.0,
        "back-off of 2 s after the first try, got {wait}"
    );

    // Not due yet: nothing runs. (Pushed further out, so that a slow
    // machine does not reach the 2 s first.)
    sqlx::query("UPDATE erasure_external_queue SET next_attempt_at = now() + interval '1 hour'")
        .execute(&db.pool)
        .await
        .unwrap();
    let r = external::run_queue(&db.pool, &s, &seal, Some(request), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((r.done, r.retried, r.failed, r.pending), (0, 0, 0, 1));

    // Due again: the last try fails the step.
    sqlx::query("UPDATE erasure_external_queue SET next_attempt_at = now()")
        .execute(&db.pool)
        .await
        .unwrap();
    let r = external::run_queue(&db.pool, &s, &seal, Some(request), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((r.done, r.retried, r.failed, r.pending), (0, 0, 1, 0));
    let (state, attempts, why, _) = step_row(&db, "receipts/stuck.jpg").await;
    assert_eq!((state.as_str(), attempts), ("failed", 2));
    assert!(why.unwrap().starts_with("object store: "));

    // The cause is fixed; the step is put back and done.
    std::fs::remove_dir_all(bucket.path().join("receipts/stuck.jpg")).unwrap();
    std::fs::write(bucket.path().join("receipts/stuck.jpg"), b"jpeg").unwrap();
    assert_eq!(external::retry_failed(&db.pool, request).await.unwrap(), 1);
    assert_eq!(external::retry_failed(&db.pool, request).await.unwrap(), 0);
    let (state, attempts, _, _) = step_row(&db, "receipts/stuck.jpg").await;
    assert_eq!((state.as_str(), attempts), ("pending", 0));
    let r = external::run_queue(&db.pool, &s, &seal, Some(request), &mut |_| {})
        .await
        .unwrap();
    assert_eq!((r.done, r.failed, r.pending), (1, 0, 0));
    assert!(!bucket.path().join("receipts/stuck.jpg").exists());
    let steps = external::steps(&db.pool, request).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].state, "done");
    assert_eq!(steps[0].outcome.as_deref(), Some("deleted"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_credential_sealed_with_another_key_fails_its_step_without_calling_plaid() {
    let (db, request) = console_with_request().await;
    let dir = tempfile::tempdir().unwrap();
    let plaid = PlaidServer::start(&[("access-x", "item-x")]).await;
    let s = systems(
        5,
        vec![(
            "plaid",
            plaid_system(&plaid.url, &secret_file(dir.path(), SECRET)),
        )],
    )
    .unwrap();
    let other = MasterKey::new([9; 32]);
    let sealed = other
        .seal(
            b"access-x",
            &external::credential_aad(request, "plaid", "item-x"),
        )
        .unwrap();
    enqueue(&db, request, "plaid", "item-x", Some(sealed)).await;
    let r = external::run_queue(&db.pool, &s, &MasterKey::new(SEAL), None, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((r.done, r.retried, r.failed, r.pending), (0, 0, 1, 0));
    let (state, attempts, why, _) = step_row(&db, "item-x").await;
    assert_eq!((state.as_str(), attempts), ("failed", 1));
    assert_eq!(
        why.as_deref(),
        Some("the sealed credential cannot be opened (another key?)")
    );
    assert!(plaid.calls().is_empty(), "Plaid was not called");
}
