//! The audit log against a real PostgreSQL: append and verify, every kind of
//! tampering named at the right seq, the append-only triggers, concurrent
//! appenders, fail-closed dispatch, and no personal value in any entry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::str::FromStr;
use std::sync::Arc;

use charon::core::action::{Action, ActionKind, GateInput, Reply};
use charon::core::audit::{
    self, AuditFilter, AuditKey, AuditRecord, Checkpoint, ExportDest, ExportFormat, NewEntry,
    Outcome, Problem, Verdict,
};
use charon::core::config::Config;
use charon::core::console::Console;
use charon::core::session::{Role, Session};
use charon::core::{Error, db};
use common::TestDb;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
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
        operator: format!("op{}", i % 3),
        role: "support".into(),
        key_id: Some("yubikey-otp:cccccc".into()),
        session_id: Uuid::from_u128(i as u128 / 5),
        event_code: "CH2002I".into(),
        action: if i.is_multiple_of(2) {
            "tenant.open"
        } else {
            "tenant.search"
        }
        .into(),
        tenant_id: Some(Uuid::from_u128(1000 + (i % 4) as u128)),
        target_table: Some("businesses".into()),
        target_pk: Some(format!("pk{i}")),
        target_columns: vec!["email".into(), "phone".into()],
        reason: Some(format!("TICKET-{i}")),
        outcome: if i.is_multiple_of(7) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        error: None,
        details: serde_json::json!({ "n": i, "z": [1, "two"], "a": { "y": true, "b": null } }),
    }
}

async fn fill(pool: &PgPool, key: &AuditKey, n: usize) -> Vec<AuditRecord> {
    let mut out = Vec::new();
    for i in 1..=n {
        out.push(audit::append(pool, key, &entry(i)).await.unwrap());
    }
    out
}

async fn verify(pool: &PgPool, key: &AuditKey, cp: Option<&Checkpoint>) -> Verdict {
    audit::verify(pool, key, None, cp, |_| {}).await.unwrap()
}

/// Runs statements as the superuser with triggers off (what an attacker
/// with database access would do).
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
async fn append_then_verify_is_intact_and_linked() {
    let db = console_db("audit_ok").await;
    let k = key();
    let recs = fill(&db.pool, &k, 30).await;
    assert_eq!(
        recs.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (1..=30).collect::<Vec<_>>()
    );
    assert_eq!(recs[0].prev_hash, audit::GENESIS);
    for w in recs.windows(2) {
        assert_eq!(w[1].prev_hash, w[0].hash);
        assert!(w[1].at >= w[0].at, "time runs with seq");
    }
    let mut seen = Vec::new();
    let v = audit::verify(&db.pool, &k, None, None, |p| seen.push(p))
        .await
        .unwrap();
    assert_eq!(
        v,
        Verdict::Intact {
            from: 1,
            to: 30,
            entries: 30
        }
    );
    assert_eq!(seen.last().map(|p| (p.done, p.total)), Some((30, 30)));
    // What was stored reads back as what was appended.
    let back = audit::show(&db.pool, 17).await.unwrap().unwrap();
    assert_eq!(back, recs[16]);
    // From the middle.
    let v = audit::verify(&db.pool, &k, Some(11), None, |_| {})
        .await
        .unwrap();
    assert_eq!(
        v,
        Verdict::Intact {
            from: 11,
            to: 30,
            entries: 20
        }
    );
    // An empty log verifies.
    let empty = console_db("audit_empty").await;
    assert!(verify(&empty.pool, &k, None).await.is_intact());
}

#[tokio::test]
async fn one_changed_byte_in_any_field_is_named_by_seq() {
    let db = console_db("audit_changed").await;
    let k = key();
    fill(&db.pool, &k, 12).await;
    // Tamper from the newest down, so that each time the newly changed entry
    // is the first broken one.
    let changes = [
        (12, "operator = overlay(operator placing 'X' from 1 for 1)"),
        (11, "at = at + interval '1 microsecond'"),
        (10, "details = jsonb_set(details, '{n}', '11')"),
        (9, "target_columns[2] = 'phonf'"),
        (8, "reason = 'TICKET-9'"),
        (7, "outcome = 'allowed'"),
        (6, "tenant_id = NULL"),
        (5, "key_id = 'yubikey-otp:cccccd'"),
        (
            4,
            "prev_hash = set_byte(prev_hash, 31, get_byte(prev_hash, 31) # 1)",
        ),
        (3, "hash = set_byte(hash, 0, get_byte(hash, 0) # 1)"),
        (2, "session_id = '00000000-0000-0000-0000-000000000009'"),
    ];
    for (seq, set) in changes {
        tamper(
            &db.pool,
            &format!("UPDATE audit_log SET {set} WHERE seq = {seq}"),
        )
        .await;
        let v = verify(&db.pool, &k, None).await;
        assert_eq!(
            v,
            broken(seq, Problem::Changed { or_bad_key: false }),
            "after {set}"
        );
        assert!(v.to_string().contains(&format!("seq {seq}")), "{v}");
        assert!(v.to_string().starts_with("changed"), "{v}");
    }
}

#[tokio::test]
async fn a_deleted_entry_is_named_as_missing() {
    let db = console_db("audit_missing").await;
    let k = key();
    fill(&db.pool, &k, 10).await;
    tamper(&db.pool, "DELETE FROM audit_log WHERE seq IN (6, 7)").await;
    let v = verify(&db.pool, &k, None).await;
    assert_eq!(v, broken(6, Problem::Missing { through: 7 }));
    assert!(v.to_string().starts_with("missing"), "{v}");
    tamper(&db.pool, "DELETE FROM audit_log WHERE seq = 3").await;
    assert_eq!(
        verify(&db.pool, &k, None).await,
        broken(3, Problem::Missing { through: 3 })
    );
    tamper(&db.pool, "DELETE FROM audit_log WHERE seq = 1").await;
    assert_eq!(
        verify(&db.pool, &k, None).await,
        broken(1, Problem::Missing { through: 1 }),
        "the first entry itself is gone"
    );
}

fn swap(a: i64, b: i64) -> String {
    // Through a free seq: seq is the primary key.
    format!(
        "UPDATE audit_log SET seq = 999999 WHERE seq = {a};
         UPDATE audit_log SET seq = {a} WHERE seq = {b};
         UPDATE audit_log SET seq = {b} WHERE seq = 999999;"
    )
}

#[tokio::test]
async fn swapped_entries_are_named_as_reordered_at_the_right_seq() {
    let db = console_db("audit_swap").await;
    let k = key();
    fill(&db.pool, &k, 12).await;
    tamper(&db.pool, &swap(9, 10)).await;
    let v = verify(&db.pool, &k, None).await;
    assert_eq!(v, broken(9, Problem::Reordered { written_as: 10 }));
    assert!(v.to_string().starts_with("reordered"), "{v}");
    tamper(&db.pool, &swap(3, 7)).await;
    assert_eq!(
        verify(&db.pool, &k, None).await,
        broken(3, Problem::Reordered { written_as: 7 })
    );
    tamper(&db.pool, &swap(1, 2)).await;
    assert_eq!(
        verify(&db.pool, &k, None).await,
        broken(1, Problem::Reordered { written_as: 2 })
    );
}

/// An entry moved farther than the neighbourhood verify searches (256
/// seqs): it is still named as reordered, found through the entry whose
/// hash its `prev_hash` holds (written right after that one).
#[tokio::test]
async fn an_entry_moved_far_is_named_as_reordered_through_its_link() {
    let db = console_db("audit_far").await;
    let k = key();
    fill(&db.pool, &k, 300).await;
    tamper(&db.pool, &swap(5, 280)).await;
    assert_eq!(
        verify(&db.pool, &k, None).await,
        broken(5, Problem::Reordered { written_as: 280 })
    );
}

/// Verify started inside a shuffled region (`--from`): the first entry
/// checked was written two seqs lower, and the entry before it was moved
/// too, so only the search of the neighbourhood below can name it.
#[tokio::test]
async fn an_entry_moved_up_is_found_below_when_its_link_was_moved_too() {
    let db = console_db("audit_below").await;
    let k = key();
    fill(&db.pool, &k, 12).await;
    // seq 3 <- entry 6, seq 4 <- entry 3, seq 6 <- entry 4.
    tamper(
        &db.pool,
        "UPDATE audit_log SET seq = 999999 WHERE seq = 6;
         UPDATE audit_log SET seq = 6 WHERE seq = 4;
         UPDATE audit_log SET seq = 4 WHERE seq = 3;
         UPDATE audit_log SET seq = 3 WHERE seq = 999999;",
    )
    .await;
    let v = audit::verify(&db.pool, &k, Some(6), None, |_| {})
        .await
        .unwrap();
    assert_eq!(v, broken(6, Problem::Reordered { written_as: 4 }));
}

#[tokio::test]
async fn truncated_tail_needs_a_checkpoint_when_the_head_is_rewound() {
    let db = console_db("audit_trunc").await;
    let k = key();
    fill(&db.pool, &k, 10).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.json");
    audit::checkpoint(&db.pool)
        .await
        .unwrap()
        .write(&path)
        .unwrap();
    let cp = Checkpoint::read(&path).unwrap();
    assert_eq!(cp.seq, 10);
    assert_eq!(verify(&db.pool, &k, Some(&cp)).await.broken_seq(), None);

    // A careless truncation leaves the head behind: caught without a checkpoint.
    tamper(&db.pool, "DELETE FROM audit_log WHERE seq > 8").await;
    let v = verify(&db.pool, &k, None).await;
    assert_eq!(v, broken(9, Problem::TailMissing { head_seq: 10 }));

    // A careful one also rewinds the head: without a checkpoint verify cannot know.
    tamper(
        &db.pool,
        "UPDATE audit_head SET seq = 8, hash = (SELECT hash FROM audit_log WHERE seq = 8)",
    )
    .await;
    assert_eq!(
        verify(&db.pool, &k, None).await,
        Verdict::Intact {
            from: 1,
            to: 8,
            entries: 8
        }
    );
    // With the checkpoint it is caught, at the first missing seq.
    let v = verify(&db.pool, &k, Some(&cp)).await;
    assert_eq!(
        v,
        broken(
            9,
            Problem::Truncated {
                checkpoint_seq: 10,
                checkpoint_at: cp.at
            }
        )
    );
    assert!(v.to_string().starts_with("truncated"), "{v}");

    // Re-appending after the truncation rewrites history: caught too.
    fill(&db.pool, &k, 2).await;
    assert_eq!(
        verify(&db.pool, &k, Some(&cp)).await,
        broken(10, Problem::CheckpointMismatch)
    );
}

#[tokio::test]
async fn a_wrong_key_is_detected_at_seq_1() {
    let db = console_db("audit_key").await;
    fill(&db.pool, &key(), 5).await;
    let other = AuditKey::generate().unwrap();
    let v = verify(&db.pool, &other, None).await;
    assert_eq!(v, broken(1, Problem::BadKey));
    let msg = v.to_string();
    assert!(msg.contains("seq 1") && msg.contains("wrong key"), "{msg}");

    let one = console_db("audit_key1").await;
    fill(&one.pool, &key(), 1).await;
    let v = verify(&one.pool, &other, None).await;
    assert_eq!(v, broken(1, Problem::Changed { or_bad_key: true }));
    assert!(
        v.to_string()
            .contains("hash mismatch at seq 1: wrong key or changed entry"),
        "{v}"
    );
}

#[tokio::test]
async fn update_delete_and_truncate_are_refused_by_the_table() {
    let db = console_db("audit_trig").await;
    fill(&db.pool, &key(), 3).await;
    for (sql, op) in [
        (
            "UPDATE audit_log SET operator = 'x' WHERE seq = 2",
            "UPDATE",
        ),
        ("DELETE FROM audit_log WHERE seq = 2", "DELETE"),
        ("TRUNCATE audit_log", "TRUNCATE"),
    ] {
        let e = sqlx::query(sql).execute(&db.pool).await.unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("audit_log is append-only") && msg.contains(op),
            "{sql}: {msg}"
        );
    }
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&db.pool)
        .await
        .unwrap();
    assert_eq!(n, 3);
    assert!(verify(&db.pool, &key(), None).await.is_intact());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appenders_keep_one_linear_complete_chain() {
    let db = console_db("audit_conc").await;
    let options = PgConnectOptions::from_str(db.url.expose()).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(24)
        .connect_with(options)
        .await
        .unwrap();
    let k = Arc::new(key());
    let mut tasks = Vec::new();
    for t in 0..20 {
        let (pool, k) = (pool.clone(), k.clone());
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..50 {
                let r = audit::append(&pool, &k, &entry(t * 100 + i)).await.unwrap();
                seqs.push(r.seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "each task's seqs rise"
        );
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=1000).collect::<Vec<i64>>(),
        "no seq twice, none lost"
    );
    let (n, distinct_prev): (i64, i64) =
        sqlx::query_as("SELECT count(*), count(DISTINCT prev_hash) FROM audit_log")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (n, distinct_prev),
        (1000, 1000),
        "no fork: every prev_hash once"
    );
    assert_eq!(
        verify(&pool, &k, None).await,
        Verdict::Intact {
            from: 1,
            to: 1000,
            entries: 1000
        }
    );
    pool.close().await;
}

// ---- dispatch ----------------------------------------------------------

struct Setup {
    pluto: TestDb,
    console_db: TestDb,
    config: Config,
}

async fn setup(prefix: &str) -> Setup {
    let pluto = TestDb::pluto(&format!("{prefix}_p")).await;
    let console_db = console_db(&format!("{prefix}_c")).await;
    let config = Config::demo(pluto.url.clone(), console_db.url.clone());
    Setup {
        pluto,
        console_db,
        config,
    }
}

impl Setup {
    /// A demo console whose operator of `role` has passed the MFA gate with
    /// its software key (as `charon demo` does).
    async fn console(&self, role: Role) -> Console {
        let c = self.console_on(role, self.console_db.pool.clone());
        c.dispatch(Action::Authenticate(GateInput::DemoRole(role)))
            .await
            .unwrap();
        c
    }

    /// A console over `console_pool` that has not passed the gate.
    fn console_on(&self, role: Role, console_pool: PgPool) -> Console {
        Console::from_pools(
            &self.config,
            Session::demo(role),
            self.pluto.pool.clone(),
            console_pool,
            key(),
        )
        .unwrap()
    }

    async fn entries(&self) -> Vec<AuditRecord> {
        audit::list(&self.console_db.pool, &AuditFilter::default(), None, 1000)
            .await
            .unwrap()
            .entries
    }
}

async fn count(pool: &PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test]
async fn dispatch_writes_the_entry_before_running_and_a_failure_entry_after() {
    let s = setup("disp").await;
    let c = s.console(Role::Support).await;
    c.dispatch(Action::OpenConsole).await.unwrap();
    let missing = Uuid::new_v4();
    let e = c
        .dispatch(Action::OpenTenant {
            business_id: missing,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
    // Support may not read the audit log: denied, and recorded as denied.
    let e = c
        .dispatch(Action::AuditList {
            filter: AuditFilter::default(),
            before: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Forbidden(_)), "{e}");

    let got: Vec<(i64, String, String, Outcome, Option<String>)> = s
        .entries()
        .await
        .into_iter()
        .rev()
        .map(|r| {
            (
                r.seq,
                r.entry.event_code,
                r.entry.action,
                r.entry.outcome,
                r.entry.error,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            // The MFA gate: the attempt, then its success.
            (
                1,
                "CH7002I".into(),
                "mfa.verify".into(),
                Outcome::Allowed,
                None
            ),
            (
                2,
                "CH7002I".into(),
                "mfa.verify".into(),
                Outcome::Allowed,
                None
            ),
            (
                3,
                "CH1001I".into(),
                "console.open".into(),
                Outcome::Allowed,
                None
            ),
            (
                4,
                "CH2002I".into(),
                "tenant.open".into(),
                Outcome::Allowed,
                None
            ),
            (
                5,
                "CH2002E".into(),
                "tenant.open".into(),
                Outcome::Failed,
                Some("not_found".into())
            ),
            (
                6,
                "CH5001E".into(),
                "audit.list".into(),
                Outcome::Denied,
                Some("forbidden".into())
            ),
        ]
    );
    let failed = audit::show(&s.console_db.pool, 5).await.unwrap().unwrap();
    assert_eq!(failed.entry.details["entry"], 4);
    assert_eq!(failed.entry.tenant_id, Some(missing));
    assert_eq!(
        failed.entry.session_id,
        c.session().id,
        "entries carry the session"
    );
}

#[tokio::test]
async fn reading_the_log_is_itself_audited() {
    let s = setup("reads").await;
    let c = s.console(Role::Auditor).await;
    c.dispatch(Action::OpenConsole).await.unwrap();
    let Reply::AuditPage(page) = c
        .dispatch(Action::AuditList {
            filter: AuditFilter::default(),
            before: None,
        })
        .await
        .unwrap()
    else {
        panic!("not a page")
    };
    // The list's own entry is written before the list runs, so it is on it.
    assert_eq!(page.entries[0].entry.action, "audit.list");
    // Entries 1 and 2 are the gate (attempt, success); 3 opened the console.
    let Reply::AuditEntry(one) = c.dispatch(Action::AuditShow { seq: 3 }).await.unwrap() else {
        panic!("not an entry")
    };
    assert_eq!(one.entry.action, "console.open");
    let mut ticks = 0;
    let Reply::AuditVerdict(v) = c
        .dispatch_with_progress(
            Action::AuditVerify {
                from: None,
                checkpoint: None,
            },
            |_| ticks += 1,
        )
        .await
        .unwrap()
    else {
        panic!("not a verdict")
    };
    assert!(v.is_intact(), "{v}");
    assert!(ticks >= 1);
    let dir = tempfile::tempdir().unwrap();
    let cp_path = dir.path().join("cp.json");
    let Reply::AuditCheckpoint(cp) = c
        .dispatch(Action::AuditCheckpoint {
            path: cp_path.clone(),
        })
        .await
        .unwrap()
    else {
        panic!("not a checkpoint")
    };
    assert_eq!(Checkpoint::read(&cp_path).unwrap(), cp);
    let out = dir.path().join("export.jsonl");
    let Reply::AuditExported { entries } = c
        .dispatch(Action::AuditExport {
            since: None,
            until: None,
            format: ExportFormat::Jsonl,
            dest: ExportDest::File(out.clone()),
        })
        .await
        .unwrap()
    else {
        panic!("not an export")
    };
    assert_eq!(
        entries, 8,
        "the gate (2), open, list, show, verify, checkpoint and the export itself"
    );
    let actions: Vec<String> = s
        .entries()
        .await
        .into_iter()
        .rev()
        .map(|r| r.entry.action)
        .collect();
    assert_eq!(
        actions,
        [
            "mfa.verify",
            "mfa.verify",
            "console.open",
            "audit.list",
            "audit.show",
            "audit.verify",
            "audit.checkpoint",
            "audit.export"
        ]
    );
    // An existing export file is not overwritten; the failure is recorded.
    let e = c
        .dispatch(Action::AuditExport {
            since: None,
            until: None,
            format: ExportFormat::Csv,
            dest: ExportDest::File(out),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Io(_)), "{e}");
    assert_eq!(s.entries().await[0].entry.event_code, "CH5004E");
}

#[tokio::test]
async fn dispatch_refuses_the_action_when_insert_on_audit_log_is_revoked() {
    let s = setup("revoke").await;
    let role = format!(
        "charon_t_app_{}",
        &Uuid::new_v4().simple().to_string()[..10]
    );
    let admin = &s.console_db.pool;
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT SELECT, INSERT ON console_sessions TO {role}"),
        format!("GRANT SELECT ON audit_log TO {role}"),
        format!("GRANT SELECT, UPDATE ON audit_head TO {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(admin)
            .await
            .unwrap();
    }
    let options = PgConnectOptions::from_str(s.console_db.url.expose())
        .unwrap()
        .username(&role);
    let app_pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap();
    let c = s.console_on(Role::Support, app_pool.clone());

    let e = c.dispatch(Action::OpenConsole).await.unwrap_err();
    assert!(matches!(e, Error::AuditUnavailable(_)), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("audit log unavailable: action refused"),
        "{e}"
    );
    assert!(e.to_string().contains("permission denied"), "{e}");
    assert_eq!(
        count(admin, "SELECT count(*) FROM console_sessions").await,
        0,
        "the action did not run"
    );
    let e = c
        .dispatch(Action::SearchTenants {
            query: String::new(),
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::AuditUnavailable(_)), "{e:?}");
    assert_eq!(count(admin, "SELECT count(*) FROM audit_log").await, 0);
    assert_eq!(count(admin, "SELECT seq FROM audit_head").await, 0);

    // The same role with INSERT granted runs the action: the refusal above was the audit's.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "GRANT INSERT ON audit_log TO {role}"
    )))
    .execute(admin)
    .await
    .unwrap();
    assert!(matches!(
        c.dispatch(Action::OpenConsole).await.unwrap(),
        Reply::Opened
    ));
    assert_eq!(
        count(admin, "SELECT count(*) FROM console_sessions").await,
        1
    );
    // ...and still cannot change what it wrote.
    let e = sqlx::query("DELETE FROM audit_log")
        .execute(&app_pool)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("permission denied"), "{e}");

    app_pool.close().await;
    for sql in [format!("DROP OWNED BY {role}"), format!("DROP ROLE {role}")] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(admin)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn dispatch_refuses_the_action_when_the_console_database_is_gone() {
    let s = setup("closed").await;
    let options = PgConnectOptions::from_str(s.console_db.url.expose()).unwrap();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    pool.close().await;
    let c = s.console_on(Role::Support, pool);
    for action in [
        Action::OpenConsole,
        Action::SearchTenants {
            query: "acme".into(),
        },
        Action::OpenTenant {
            business_id: Uuid::new_v4(),
        },
    ] {
        let e = c.dispatch(action).await.unwrap_err();
        assert!(
            e.to_string()
                .starts_with("audit log unavailable: action refused"),
            "{e}"
        );
    }
    let admin = &s.console_db.pool;
    assert_eq!(
        count(admin, "SELECT count(*) FROM console_sessions").await,
        0
    );
    assert_eq!(count(admin, "SELECT count(*) FROM audit_log").await, 0);
}

#[tokio::test]
async fn a_session_over_seeded_data_leaves_no_personal_value_in_the_log() {
    let mut s = setup("pii").await;
    let dir = tempfile::tempdir().unwrap();
    let mirror = dir.path().join("mirror.jsonl");
    s.config.audit.mirror_jsonl = Some(mirror.clone());
    let biz = Uuid::new_v4();
    let (u1, u2) = (Uuid::new_v4(), Uuid::new_v4());
    let p = &s.pluto.pool;
    sqlx::query(
        "INSERT INTO businesses (id, name, plan, country, created_at)
         VALUES ($1, 'Quintessa Widgets', 'pro', 'US', now())",
    )
    .bind(biz)
    .execute(p)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO users (id, email, full_name, phone, created_at) VALUES
         ($1, 'zelda.marlowe@quintessa-mail.example', 'Zelda Marlowe', '+1 (415) 555-0199', now()),
         ($2, 'b.pennywhistle@example.net', 'Bartholomew Pennywhistle', '+44 20 7946 0321', now())",
    )
    .bind(u1)
    .bind(u2)
    .execute(p)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO memberships (business_id, user_id, role, created_at) VALUES
         ($1, $2, 'owner', now()), ($1, $3, 'accountant', now())",
    )
    .bind(biz)
    .bind(u1)
    .bind(u2)
    .execute(p)
    .await
    .unwrap();

    let c = s.console(Role::Support).await;
    c.dispatch(Action::OpenConsole).await.unwrap();
    for q in [
        "zelda.marlowe@quintessa-mail.example",
        "ZELDA.MARLOWE@",
        "+1 (415) 555-0199",
        "4155550199",
        "+44 20 7946 0321",
        "Quintessa Widgets",
        "Quintessa",
        "Pennywhistle",
        "b.pennywhistle@example.net",
        &biz.to_string(),
    ] {
        let Reply::Tenants(hits) = c
            .dispatch(Action::SearchTenants { query: q.into() })
            .await
            .unwrap()
        else {
            panic!("not hits")
        };
        if q != "Pennywhistle" {
            assert_eq!(
                hits.iter().map(|h| h.id).collect::<Vec<_>>(),
                [biz],
                "search {q}"
            );
        }
    }
    let Reply::Tenant(t) = c
        .dispatch(Action::OpenTenant { business_id: biz })
        .await
        .unwrap()
    else {
        panic!("not a tenant")
    };
    assert_eq!(t.members.len(), 2);
    c.dispatch(Action::OpenTenant {
        business_id: Uuid::new_v4(),
    })
    .await
    .unwrap_err();

    let rows: Vec<String> = sqlx::query_scalar("SELECT a::text FROM audit_log a ORDER BY seq")
        .fetch_all(&s.console_db.pool)
        .await
        .unwrap();
    // 14 for the actions, 2 for passing the MFA gate (attempt, success).
    assert_eq!(rows.len(), 16);
    let mirrored = std::fs::read_to_string(&mirror).unwrap();
    assert_eq!(mirrored.lines().count(), 16, "every entry mirrored");
    let needles = [
        "zelda",
        "marlowe",
        "quintessa",
        "widgets",
        "pennywhistle",
        "bartholomew",
        "example.net",
        "415",
        "555-0199",
        "4155550199",
        "7946",
        "2079460321",
    ];
    for text in rows.iter().chain(std::iter::once(&mirrored)) {
        let lower = text.to_lowercase();
        for n in needles {
            // Hex hashes and UUIDs could hold short digit runs by chance;
            // look for digit needles outside them only.
            let hay = if n.chars().all(|c| c.is_ascii_digit()) {
                strip_hex_runs(&lower)
            } else {
                lower.clone()
            };
            assert!(
                !hay.contains(n),
                "personal value {n:?} in audit entry: {text}"
            );
        }
    }
    // What it does record: kinds and lengths, the tenant id.
    // (1 and 2 are the MFA gate, 3 opened the console.)
    let search = audit::show(&s.console_db.pool, 4).await.unwrap().unwrap();
    assert_eq!(search.entry.details["query_kind"], "email");
    assert_eq!(
        search.entry.details["query_len"],
        "zelda.marlowe@quintessa-mail.example".len()
    );
    let page = audit::list(
        &s.console_db.pool,
        &AuditFilter {
            tenant: Some(biz),
            ..AuditFilter::default()
        },
        None,
        100,
    )
    .await
    .unwrap();
    assert_eq!(
        page.entries
            .iter()
            .map(|r| r.entry.action.as_str())
            .collect::<Vec<_>>(),
        ["tenant.open", "tenant.search"],
        "the open and the search by id name the tenant"
    );
}

/// Replaces runs of 16 or more hex digits and dashes (hashes, UUIDs) with a space.
/// Drops what can hold short digit runs by chance: hex runs (hashes, UUIDs)
/// and the database's timestamps (`2026-11-24 01:07:52.354159+00`, or the
/// mirror's `2026-11-24T01:07:52.354159Z`), so digit needles are looked for
/// only where a personal value could be.
fn strip_hex_runs(s: &str) -> String {
    strip_runs(&strip_times(&strip_fingerprints(s)))
}

/// Key fingerprints (`sha256:<base64>`, random per demo key) go too.
fn strip_fingerprints(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("sha256:") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + "sha256:".len()..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')))
            .unwrap_or(tail.len());
        out.push(' ');
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

fn strip_times(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let is_date = |i: usize| {
        i + 19 <= chars.len()
            && chars[i..i + 4].iter().all(char::is_ascii_digit)
            && chars[i + 4] == '-'
            && chars[i + 7] == '-'
            && (chars[i + 10] == ' ' || chars[i + 10] == 't')
            && chars[i + 13] == ':'
            && chars[i + 16] == ':'
    };
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if is_date(i) {
            i += 19;
            while i < chars.len()
                && (chars[i].is_ascii_digit() || matches!(chars[i], '.' | '+' | 'z' | ':'))
            {
                i += 1;
            }
            out.push(' ');
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

fn strip_runs(s: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for ch in s.chars().chain(std::iter::once(' ')) {
        if ch.is_ascii_hexdigit() || ch == '-' {
            run.push(ch);
        } else {
            if run.len() < 16 {
                out.push_str(&run);
            } else {
                out.push(' ');
            }
            run.clear();
            out.push(ch);
        }
    }
    out
}

#[tokio::test]
async fn pages_are_newest_first_filtered_and_keyset() {
    let db = console_db("audit_pages").await;
    let k = key();
    let recs = fill(&db.pool, &k, 40).await;
    let check = |filter: AuditFilter, want: Vec<i64>| {
        let pool = db.pool.clone();
        async move {
            let mut got = Vec::new();
            let mut before = None;
            loop {
                let page = audit::list(&pool, &filter, before, 3).await.unwrap();
                assert!(page.entries.len() <= 3);
                got.extend(page.entries.iter().map(|r| r.seq));
                match page.next_before {
                    Some(b) => before = Some(b),
                    None => break,
                }
            }
            assert_eq!(got, want, "{filter:?}");
        }
    };
    let all_desc = |pred: &dyn Fn(&AuditRecord) -> bool| -> Vec<i64> {
        recs.iter()
            .rev()
            .filter(|r| pred(r))
            .map(|r| r.seq)
            .collect()
    };
    check(AuditFilter::default(), all_desc(&|_| true)).await;
    check(
        AuditFilter {
            operator: Some("op1".into()),
            ..AuditFilter::default()
        },
        all_desc(&|r| r.entry.operator == "op1"),
    )
    .await;
    check(
        AuditFilter {
            action: Some(ActionKind::OpenTenant.as_str().into()),
            outcome: Some(Outcome::Denied),
            ..AuditFilter::default()
        },
        all_desc(&|r| r.entry.action == "tenant.open" && r.entry.outcome == Outcome::Denied),
    )
    .await;
    let tenant = Uuid::from_u128(1002);
    check(
        AuditFilter {
            tenant: Some(tenant),
            ..AuditFilter::default()
        },
        all_desc(&|r| r.entry.tenant_id == Some(tenant)),
    )
    .await;
    let (since, until) = (recs[9].at, recs[19].at);
    check(
        AuditFilter {
            since: Some(since),
            until: Some(until),
            operator: Some("op0".into()),
            ..AuditFilter::default()
        },
        all_desc(&|r| r.at >= since && r.at < until && r.entry.operator == "op0"),
    )
    .await;
}

#[tokio::test]
async fn export_writes_jsonl_and_csv_for_a_time_range() {
    let db = console_db("audit_export").await;
    let k = key();
    let recs = fill(&db.pool, &k, 20).await;
    let mut jsonl = Vec::new();
    let n = audit::export(&db.pool, None, None, ExportFormat::Jsonl, &mut jsonl)
        .await
        .unwrap();
    assert_eq!(n, 20);
    let lines: Vec<serde_json::Value> = String::from_utf8(jsonl)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 20);
    for (line, rec) in lines.iter().zip(&recs) {
        assert_eq!(line["seq"], rec.seq);
        assert_eq!(line["hash"], hex::encode(rec.hash));
        assert_eq!(line["prev_hash"], hex::encode(rec.prev_hash));
        assert_eq!(line["details"], rec.entry.details);
    }
    let mut csv = Vec::new();
    let n = audit::export(
        &db.pool,
        Some(recs[4].at),
        Some(recs[10].at),
        ExportFormat::Csv,
        &mut csv,
    )
    .await
    .unwrap();
    assert_eq!(n, 6, "seq 5 to 10");
    let csv = String::from_utf8(csv).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("seq,at,operator,role,"));
    assert_eq!(rows.len(), 7);
    assert!(rows[1].starts_with("5,"));
    assert!(rows[1].ends_with(&hex::encode(recs[4].hash)));
    let mut none = Vec::new();
    let n = audit::export(
        &db.pool,
        Some(recs[19].at + chrono::Duration::seconds(1)),
        None,
        ExportFormat::Jsonl,
        &mut none,
    )
    .await
    .unwrap();
    assert_eq!((n, none.len()), (0, 0));
}

#[tokio::test]
async fn cli_verify_exits_non_zero_naming_the_broken_seq() {
    use charon::cli::audit as cli;
    let s = setup("cli").await;
    let c = s.console(Role::Auditor).await;
    fill(&s.console_db.pool, &key(), 5).await;
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp.json");
    let mut out = Vec::new();
    assert_eq!(cli::checkpoint(&c, &cp, &mut out).await, cli::EXIT_OK);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        cli::verify(&c, None, Some(&cp), &mut out, &mut err).await,
        cli::EXIT_OK
    );
    assert!(String::from_utf8_lossy(&out).starts_with("ok:"));
    tamper(
        &s.console_db.pool,
        "UPDATE audit_log SET reason = 'x' WHERE seq = 4",
    )
    .await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        cli::verify(&c, None, Some(&cp), &mut out, &mut err).await,
        cli::EXIT_BROKEN
    );
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("hash mismatch at seq 4"), "{out}");
    // The broken verdict is itself recorded, as a failure entry.
    let last = audit::list(&s.console_db.pool, &AuditFilter::default(), None, 1)
        .await
        .unwrap()
        .entries;
    assert_eq!(last[0].entry.event_code, "CH5003E");
    assert_eq!(last[0].entry.error.as_deref(), Some("chain_broken"));
    assert_eq!(last[0].entry.details["broken_seq"], 4);
    let support = s.console(Role::Support).await;
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        cli::verify(&support, None, None, &mut out, &mut err).await,
        cli::EXIT_ERROR
    );
    assert!(String::from_utf8_lossy(&err).contains("not allowed"));
}
