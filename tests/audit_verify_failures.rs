//! Verify's failure verdicts that the main audit story does not reach: a
//! checkpoint below the range verified, a rewritten head, a broken link into
//! a partial range, a changed first entry, rows that cannot be read back, and
//! entries whose details take the slow canonical path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use charon::core::audit::{
    self, AuditKey, AuditRecord, Checkpoint, NewEntry, Outcome, Problem, Verdict,
};
use charon::core::{Error, db};
use common::TestDb;
use sqlx::{Acquire, PgPool};
use uuid::Uuid;

async fn console_db(prefix: &str) -> TestDb {
    let db = TestDb::new(prefix).await;
    db::migrate_console(&db.pool).await.unwrap();
    db
}

fn key() -> AuditKey {
    AuditKey::from_hex(&"5a".repeat(32)).unwrap()
}

fn entry(i: usize) -> NewEntry {
    NewEntry {
        operator: "ana".into(),
        role: "support".into(),
        key_id: None,
        session_id: Uuid::from_u128(7),
        event_code: "CH2002I".into(),
        action: "tenant.open".into(),
        tenant_id: None,
        target_table: Some("businesses".into()),
        target_pk: Some(format!("pk{i}")),
        target_columns: vec!["email".into()],
        reason: Some(format!("TICKET-{i}")),
        outcome: Outcome::Allowed,
        error: None,
        details: serde_json::json!({ "n": i }),
    }
}

async fn fill(pool: &PgPool, key: &AuditKey, n: usize) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(audit::append(pool, key, &entry(i)).await.unwrap());
    }
    out
}

async fn verify_from(pool: &PgPool, from: Option<i64>, cp: Option<&Checkpoint>) -> Verdict {
    audit::verify(pool, &key(), from, cp, |_| {}).await.unwrap()
}

/// Runs statements as the superuser with triggers off.
async fn tamper(pool: &PgPool, sql: &str) {
    let mut conn = pool.acquire().await.unwrap();
    let conn = conn.acquire().await.unwrap();
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("SET session_replication_role = origin")
        .execute(&mut *conn)
        .await
        .unwrap();
}

fn broken(seq: i64, problem: Problem) -> Verdict {
    Verdict::Broken { seq, problem }
}

#[tokio::test]
async fn a_checkpoint_below_the_range_is_checked_against_its_entry() {
    let db = console_db("avf_cpbelow").await;
    let recs = fill(&db.pool, &key(), 8).await;
    let cp = Checkpoint {
        seq: 3,
        hash: recs[2].hash,
        at: recs[2].at,
    };
    assert_eq!(
        verify_from(&db.pool, Some(6), Some(&cp)).await,
        Verdict::Intact {
            from: 6,
            to: 8,
            entries: 3
        }
    );
    let other = Checkpoint {
        hash: recs[3].hash,
        ..cp.clone()
    };
    let v = verify_from(&db.pool, Some(6), Some(&other)).await;
    assert_eq!(v, broken(3, Problem::CheckpointMismatch));
    assert!(
        v.to_string().contains("seq 3 differs from the checkpoint"),
        "{v}"
    );
    tamper(&db.pool, "DELETE FROM audit_log WHERE seq = 3").await;
    let v = verify_from(&db.pool, Some(6), Some(&cp)).await;
    assert_eq!(v, broken(3, Problem::Missing { through: 3 }));
    assert_eq!(v.to_string(), "missing: entry seq 3 is absent (gap in seq)");
}

#[tokio::test]
async fn a_genesis_checkpoint_with_another_hash_is_a_mismatch_at_seq_1() {
    let db = console_db("avf_cpzero").await;
    let recs = fill(&db.pool, &key(), 3).await;
    let cp = Checkpoint {
        seq: 0,
        hash: [1; 32],
        at: recs[0].at,
    };
    assert_eq!(
        verify_from(&db.pool, None, Some(&cp)).await,
        broken(1, Problem::CheckpointMismatch)
    );
    let genesis = Checkpoint {
        hash: audit::GENESIS,
        ..cp
    };
    assert!(
        verify_from(&db.pool, None, Some(&genesis))
            .await
            .is_intact()
    );
}

#[tokio::test]
async fn a_rewritten_head_hash_is_a_head_mismatch_at_the_last_seq() {
    let db = console_db("avf_head").await;
    fill(&db.pool, &key(), 5).await;
    tamper(
        &db.pool,
        "UPDATE audit_head SET hash = decode(repeat('ab', 32), 'hex')",
    )
    .await;
    let v = verify_from(&db.pool, None, None).await;
    assert_eq!(v, broken(5, Problem::HeadMismatch));
    assert!(v.to_string().starts_with("changed: the head's hash"), "{v}");
}

#[tokio::test]
async fn a_changed_hash_before_a_partial_range_is_a_broken_link_into_it() {
    let db = console_db("avf_link").await;
    fill(&db.pool, &key(), 6).await;
    tamper(
        &db.pool,
        "UPDATE audit_log SET hash = decode(repeat('cd', 32), 'hex') WHERE seq = 3",
    )
    .await;
    let v = verify_from(&db.pool, Some(4), None).await;
    assert_eq!(v, broken(4, Problem::BrokenLink));
    assert!(
        v.to_string().contains("prev_hash is not the hash of seq 3"),
        "{v}"
    );
    // From the start, the changed entry itself is named.
    assert_eq!(
        verify_from(&db.pool, None, None).await,
        broken(3, Problem::Changed { or_bad_key: false })
    );
}

#[tokio::test]
async fn a_changed_first_entry_followed_by_good_ones_is_changed_not_a_bad_key() {
    let db = console_db("avf_first").await;
    fill(&db.pool, &key(), 4).await;
    tamper(
        &db.pool,
        "UPDATE audit_log SET reason = 'TICKET-X' WHERE seq = 1",
    )
    .await;
    let v = verify_from(&db.pool, None, None).await;
    assert_eq!(v, broken(1, Problem::Changed { or_bad_key: false }));
    assert!(v.to_string().contains("the entry was changed"), "{v}");
}

#[tokio::test]
async fn details_with_escapes_take_the_slow_path_and_still_verify() {
    let db = console_db("avf_slow").await;
    let k = key();
    fill(&db.pool, &k, 2).await;
    let mut e = entry(3);
    e.details = serde_json::json!({ "q": "say \"hi\"\n", "u": "\u{e9}\\" });
    audit::append(&db.pool, &k, &e).await.unwrap();
    fill(&db.pool, &k, 1).await;
    assert_eq!(
        verify_from(&db.pool, None, None).await,
        Verdict::Intact {
            from: 1,
            to: 4,
            entries: 4
        }
    );
    // The slow path also catches a change.
    tamper(
        &db.pool,
        r#"UPDATE audit_log SET details = '{"q": "say \"ho\"\n", "u": "é\\"}' WHERE seq = 3"#,
    )
    .await;
    assert_eq!(
        verify_from(&db.pool, None, None).await,
        broken(3, Problem::Changed { or_bad_key: false })
    );
}

#[tokio::test]
async fn a_two_dimensional_column_list_is_an_unreadable_entry() {
    let db = console_db("avf_2dim").await;
    fill(&db.pool, &key(), 3).await;
    tamper(
        &db.pool,
        "UPDATE audit_log SET target_columns = ARRAY[['a','b'],['c','d']] WHERE seq = 2",
    )
    .await;
    match verify_from(&db.pool, None, None).await {
        Verdict::Broken {
            seq: 2,
            problem: Problem::Unreadable(why),
        } => assert!(why.contains("more than one dimension"), "{why}"),
        other => panic!("expected seq 2 unreadable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unknown_outcome_or_a_short_hash_cannot_be_read_back() {
    let db = console_db("avf_unread").await;
    fill(&db.pool, &key(), 4).await;
    tamper(
        &db.pool,
        "ALTER TABLE audit_log DROP CONSTRAINT audit_log_outcome_check;
         ALTER TABLE audit_log DROP CONSTRAINT audit_log_hash_check;
         UPDATE audit_log SET outcome = 'maybe' WHERE seq = 4;
         UPDATE audit_log SET hash = '\\x010203' WHERE seq = 2;",
    )
    .await;
    match audit::show(&db.pool, 4).await {
        Err(Error::InvalidInput(m)) => {
            assert!(m.contains("audit entry 4"), "{m}");
            assert!(m.contains("unknown outcome"), "{m}");
        }
        other => panic!("expected invalid input, got {other:?}"),
    }
    match audit::show(&db.pool, 2).await {
        Err(Error::InvalidInput(m)) => assert!(m.contains("hash has 3 bytes, not 32"), "{m}"),
        other => panic!("expected invalid input, got {other:?}"),
    }
    match verify_from(&db.pool, None, None).await {
        Verdict::Broken {
            seq: 2,
            problem: Problem::Unreadable(why),
        } => assert!(why.contains("3 bytes"), "{why}"),
        other => panic!("expected seq 2 unreadable, got {other:?}"),
    }
    match verify_from(&db.pool, Some(3), None).await {
        Verdict::Broken {
            seq: 4,
            problem: Problem::Unreadable(why),
        } => assert!(why.contains("unknown outcome"), "{why}"),
        other => panic!("expected seq 4 unreadable, got {other:?}"),
    }
}
