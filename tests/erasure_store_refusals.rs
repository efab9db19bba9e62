//! Erasure requests refused or read back in the states the stories do not
//! reach: bad new requests, duplicates, plans and approvals in the wrong
//! state, certificates of unfinished or altered requests, what a changed
//! plan says, and Debug output that never holds a search term.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use charon::core::Error;
use charon::core::erasure::certificate;
use charon::core::erasure::store::RequestKind;
use charon::core::erasure::{
    Discovery, ExternalPlan, NewRequest, Plan, Regime, RowAction, Subject, TablePlan, Terms,
    approve, create_request, get_request, store_plan,
};
use chrono::{Duration, Utc};
use common::TestDb;
use uuid::Uuid;

const KEY: &[u8] = b"erasure-store-test-hash-key-0123";

fn subject() -> Subject {
    Subject {
        emails: vec!["store.subject@example.test".into()],
        phones: vec![],
        user_ids: vec![],
    }
}

fn request<'a>(s: &'a Subject, regime: Regime) -> NewRequest<'a> {
    NewRequest {
        id: Uuid::new_v4(),
        kind: RequestKind::Erasure,
        subject: s,
        ticket: "TICKET-S".into(),
        regime,
        note: String::new(),
        received_at: Utc::now(),
        created_by: "alice".into(),
    }
}

async fn console() -> TestDb {
    let db = TestDb::new("ersr").await;
    charon::core::db::migrate_console(&db.pool).await.unwrap();
    db
}

fn invalid(r: charon::core::Result<Uuid>) -> String {
    match r {
        Err(Error::InvalidInput(m)) => m,
        other => panic!("expected invalid input, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_new_requests_are_refused_and_regimes_are_stored_by_name() {
    let db = console().await;
    let s = subject();
    let nobody = Subject::default();
    assert_eq!(
        invalid(create_request(&db.pool, KEY, &request(&nobody, Regime::Gdpr)).await),
        "no subject identifier given"
    );
    let mut blank = request(&s, Regime::Gdpr);
    blank.ticket = "   ".into();
    assert_eq!(
        invalid(create_request(&db.pool, KEY, &blank).await),
        "a ticket reference is required"
    );
    let early = request(
        &s,
        Regime::Custom {
            due_at: Utc::now() - Duration::days(1),
        },
    );
    assert_eq!(
        invalid(create_request(&db.pool, KEY, &early).await),
        "due date before the request was received"
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM erasure_requests")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "nothing refused was stored");

    let ccpa = request(&s, Regime::Ccpa);
    let id = create_request(&db.pool, KEY, &ccpa).await.unwrap();
    let r = get_request(&db.pool, id).await.unwrap();
    assert_eq!(r.regime, "ccpa");
    assert_eq!(r.due_at - r.received_at, Duration::days(45));
    let due = Utc::now() + Duration::days(3);
    let custom = request(&s, Regime::Custom { due_at: due });
    let cid = create_request(&db.pool, KEY, &custom).await.unwrap();
    assert_eq!(get_request(&db.pool, cid).await.unwrap().regime, "custom");

    match create_request(&db.pool, KEY, &ccpa).await {
        Err(Error::Conflict(m)) => assert_eq!(m, format!("a request with id {id} exists already")),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// Only a duplicate id is reported as one: any other refusal of the
/// database (here a constraint added for the test) is a database error.
#[tokio::test]
async fn a_database_refusal_other_than_a_duplicate_id_is_not_called_a_duplicate() {
    let db = console().await;
    sqlx::query(
        "ALTER TABLE erasure_requests ADD CONSTRAINT test_refuses_x CHECK (ticket <> 'TICKET-X')",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let s = subject();
    let mut r = request(&s, Regime::Gdpr);
    r.ticket = "TICKET-X".into();
    match create_request(&db.pool, KEY, &r).await {
        Err(Error::Database(e)) => assert!(e.to_string().contains("test_refuses_x"), "{e}"),
        other => panic!("expected the database's refusal, got {other:?}"),
    }
}

fn empty_plan(sha: &str) -> Plan {
    Plan {
        subject_ref: "s•••@example.test".into(),
        per_table: vec![],
        external: vec![],
        sha256: sha.into(),
    }
}

#[tokio::test]
async fn plans_and_approvals_in_the_wrong_state_are_conflicts() {
    let db = console().await;
    let s = subject();
    let id = create_request(&db.pool, KEY, &request(&s, Regime::Gdpr))
        .await
        .unwrap();
    match approve(&db.pool, id, "bob", "abc").await {
        Err(Error::Conflict(m)) => assert_eq!(m, "the request is draft, not planned"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    sqlx::query(
        "UPDATE erasure_requests SET state = 'executing', approved_by = 'bob' WHERE id = $1",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    match store_plan(&db.pool, id, &empty_plan("abc"), "alice").await {
        Err(Error::Conflict(m)) => {
            assert_eq!(
                m,
                "the request is executing or finished: its plan cannot change"
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(get_request(&db.pool, id).await.unwrap().plan_sha256, None);
    match store_plan(&db.pool, Uuid::new_v4(), &empty_plan("abc"), "alice").await {
        Err(Error::NotFound(_)) => {}
        other => panic!("expected not found, got {other:?}"),
    }
}

#[tokio::test]
async fn certificates_exist_only_for_done_requests_and_must_match_their_hash() {
    let db = console().await;
    let s = subject();
    let id = create_request(&db.pool, KEY, &request(&s, Regime::Gdpr))
        .await
        .unwrap();
    assert_eq!(
        certificate::finish_if_complete(&db.pool, id).await.unwrap(),
        None
    );
    // Executing, nothing left in the queue, but Pluto's part not committed
    // (yet, or never): no certificate may say it is erased.
    sqlx::query(
        "UPDATE erasure_requests SET state = 'executing', approved_by = 'bob' WHERE id = $1",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        certificate::finish_if_complete(&db.pool, id).await.unwrap(),
        None,
        "certified before Pluto committed"
    );
    assert_eq!(
        get_request(&db.pool, id).await.unwrap().certificate_sha256,
        None
    );
    sqlx::query("UPDATE erasure_requests SET state = 'draft', approved_by = NULL WHERE id = $1")
        .bind(id)
        .execute(&db.pool)
        .await
        .unwrap();
    match certificate::get(&db.pool, id).await {
        Err(Error::Conflict(m)) => {
            assert_eq!(
                m,
                "the request is draft: a certificate exists once it is done"
            )
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // A done request whose stored certificate was altered afterwards.
    sqlx::query(
        "UPDATE erasure_requests
            SET state = 'done', approved_by = 'bob', certificate = '{\"request\": \"x\"}',
                certificate_sha256 = repeat('0', 64)
          WHERE id = $1",
    )
    .bind(id)
    .execute(&db.pool)
    .await
    .unwrap();
    assert_eq!(
        certificate::finish_if_complete(&db.pool, id).await.unwrap(),
        Some("0".repeat(64)),
        "a done request keeps the hash it has"
    );
    match certificate::get(&db.pool, id).await {
        Err(Error::Conflict(m)) => {
            assert_eq!(m, "the stored certificate does not match its SHA-256")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn table(name: &str, action: RowAction, rows: u64, keys: &str) -> TablePlan {
    TablePlan {
        table: name.into(),
        action,
        rows,
        reason: "test".into(),
        columns: vec![],
        keys_sha256: keys.into(),
    }
}

#[test]
fn a_changed_plan_says_what_changed() {
    let old = Plan {
        subject_ref: "a".into(),
        per_table: vec![
            table("receipts", RowAction::Delete, 2, "k1"),
            table("trips", RowAction::Delete, 3, "k2"),
        ],
        external: vec![ExternalPlan {
            system: "receipts_bucket".into(),
            objects: vec!["a.jpg".into(), "b.jpg".into()],
        }],
        sha256: "old".into(),
    };
    let new = Plan {
        subject_ref: "a".into(),
        per_table: vec![
            table("receipts", RowAction::Delete, 2, "k1-other"),
            table("shifts", RowAction::Delete, 1, "k3"),
        ],
        external: vec![ExternalPlan {
            system: "receipts_bucket".into(),
            objects: vec!["b.jpg".into(), "c.jpg".into(), "d.jpg".into()],
        }],
        sha256: "new".into(),
    };
    assert_eq!(
        old.diff(&new),
        vec![
            "receipts (delete): same count (2), different rows".to_string(),
            "shifts (delete): 0 -> 1 rows".to_string(),
            "trips (delete): 3 -> 0 rows".to_string(),
            "receipts_bucket: 2 objects -> 3 (2 added, 1 gone)".to_string(),
        ]
    );
    let mut other_ref = old.clone();
    other_ref.subject_ref = "b".into();
    other_ref.sha256 = "other".into();
    assert_eq!(
        old.diff(&other_ref),
        vec!["subject reference differs".to_string()]
    );
    assert!(old.diff(&old).is_empty());
}

#[test]
fn debug_output_counts_search_terms_and_never_shows_them() {
    let terms = Terms {
        user_ids: vec![Uuid::from_u128(1)],
        emails: vec!["secret.person@example.test".into(), "b@example.test".into()],
        phones: vec![],
    };
    assert_eq!(format!("{terms:?}"), "Terms(1 ids, 2 e-mails, 0 phones)");
    let mut credentials = BTreeMap::new();
    credentials.insert(
        ("plaid".to_string(), "item-1".to_string()),
        "access-sandbox-secret".to_string(),
    );
    let d = Discovery {
        terms: terms.clone(),
        subject_ref: "s•••@example.test".into(),
        user_ids: vec![Uuid::from_u128(1)],
        emails: vec!["secret.person@example.test".into()],
        phones: vec!["+1 555 0100".into()],
        names: vec!["Secret Person".into()],
        tables: vec![],
        external: vec![],
        credentials,
    };
    let shown = format!("{d:?}");
    assert!(
        shown.starts_with("Discovery { subject_ref: \"s•••@example.test\""),
        "{shown}"
    );
    assert!(shown.contains("credentials: 1"), "{shown}");
    for secret in [
        "secret.person",
        "555 0100",
        "Secret Person",
        "access-sandbox-secret",
    ] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert_eq!(Subject::default().masked_ref(), "(no identifier)");
}
