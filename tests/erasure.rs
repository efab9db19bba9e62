//! Data-subject erasure against a real PostgreSQL: discovery across tenants,
//! the plan hash, the two-officer rule, atomic execution, completeness (a
//! scan of every text/JSON column without the data map), idempotence and
//! all-or-nothing on an injected failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};

use charon::core::Error;
use charon::core::datamap::{Catalog, DataMap};
use charon::core::erasure::store::RequestKind;
use charon::core::erasure::{
    self, ExecuteOutcome, Executor, NewRequest, Regime, RowAction, Subject, Systems, approve,
    create_request, discover, get_request, plan, store_plan,
};
use charon::core::secrets::MasterKey;
use charon::pluto::{SeedOptions, seed};
use common::TestDb;
use sqlx::{PgPool, Row};
use uuid::Uuid;

const KEY: &[u8] = b"erasure-test-hash-key-0123456789";
const EMAIL: &str = "q.erasmus@example.test";
const NAME: &str = "Quentin Erasmus-Testperson";
const PHONE: &str = "+1 999-555-0987";
const PHONE_DIGITS: &str = "9995550987";

struct Env {
    pluto: TestDb,
    console: TestDb,
    map: DataMap,
    catalog: Catalog,
    user: Uuid,
    other: Uuid,
    connection: Uuid,
    account: Uuid,
}

/// Seeded Pluto plus one subject with rows in two tenants, mentions of them
/// in another user's free text, and a console database.
async fn setup(prefix: &str) -> Env {
    let pluto = TestDb::new(&format!("{prefix}_p")).await;
    seed(
        &pluto.pool,
        &SeedOptions {
            tenants: 4,
            seed: 7,
        },
        &|_| {},
    )
    .await
    .unwrap();
    let console = TestDb::new(&format!("{prefix}_c")).await;
    charon::core::db::migrate_console(&console.pool)
        .await
        .unwrap();

    let p = &pluto.pool;
    let b: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM businesses ORDER BY id LIMIT 2")
        .fetch_all(p)
        .await
        .unwrap();
    let (b1, b2) = (b[0], b[1]);
    let other: Uuid = sqlx::query_scalar(
        "SELECT user_id FROM memberships WHERE business_id = $1 ORDER BY user_id LIMIT 1",
    )
    .bind(b2)
    .fetch_one(p)
    .await
    .unwrap();
    let user = Uuid::new_v4();
    let connection = Uuid::new_v4();
    let account = Uuid::new_v4();
    let ex = |sql: &'static str| sqlx::query(sql);
    ex("INSERT INTO users (id, email, full_name, phone, created_at) VALUES ($1, 'Q.Erasmus@Example.test', $2, $3, now())")
        .bind(user).bind(NAME).bind(PHONE).execute(p).await.unwrap();
    ex("INSERT INTO memberships VALUES ($1, $3, 'employee', now()), ($2, $3, 'manager', now())")
        .bind(b1)
        .bind(b2)
        .bind(user)
        .execute(p)
        .await
        .unwrap();
    ex("INSERT INTO receipts (id, business_id, uploaded_by, s3_key, merchant, amount_cents, receipt_date, ocr_text, notes, created_at) VALUES
        (9000000001, $1, $3, 'receipts/erasure-1.jpg', 'Cafe', 450, '2025-01-02', 'THANK YOU', NULL, now()),
        (9000000002, $2, $3, 'receipts/erasure-2.jpg', 'Taxi', 2300, '2025-01-03', 'TOTAL 23.00', 'call me on +1 999-555-0987', now()),
        (9000000003, $2, $4, 'receipts/other-3.jpg', 'Hotel', 9900, '2025-01-04', 'THANK YOU', 'forward to q.erasmus@example.test please', now())")
        .bind(b1).bind(b2).bind(user).bind(other).execute(p).await.unwrap();
    ex("INSERT INTO trips VALUES (9000000001, $1, $3, now(), now(), 1200, 'client visit'), (9000000002, $2, $3, now(), now(), 800, NULL)")
        .bind(b1).bind(b2).bind(user).execute(p).await.unwrap();
    ex("INSERT INTO trip_points VALUES
        (9000000001, 1, $1, now(), 52.1, 4.3), (9000000001, 2, $1, now(), 52.2, 4.3), (9000000001, 3, $1, now(), 52.3, 4.3),
        (9000000002, 1, $2, now(), 40.1, -74.0), (9000000002, 2, $2, now(), 40.2, -74.0)")
        .bind(b1).bind(b2).execute(p).await.unwrap();
    ex("INSERT INTO shifts VALUES (9000000001, $1, $2, now(), now(), 'swap with Anna'),
        (9000000002, $1, $3, now(), now(), 'covering for Quentin Erasmus-Testperson, reach him at 999.555.0987')")
        .bind(b2).bind(user).bind(other).execute(p).await.unwrap();
    ex("INSERT INTO payroll_entries VALUES (9000000001, $1, $2, '2025-01-01', '2025-01-31', 300000, 240000, '123-45-6789', '000123456789', now())")
        .bind(b1).bind(user).execute(p).await.unwrap();
    ex("INSERT INTO bank_connections VALUES ($1, $2, $3, 'First Test Bank', 'item-erasure-test-1', 'active', now())")
        .bind(connection).bind(b2).bind(user).execute(p).await.unwrap();
    ex("INSERT INTO bank_accounts VALUES ($1, $2, $3, 'Business Checking', '4321', 'checking')")
        .bind(account)
        .bind(b2)
        .bind(connection)
        .execute(p)
        .await
        .unwrap();
    ex("INSERT INTO transactions VALUES (9000000001, $1, $2, now(), 50000, 'Quentin Erasmus-Testperson', 'ACH credit', 'income')")
        .bind(b2).bind(account).execute(p).await.unwrap();
    ex("INSERT INTO invoices VALUES (9000000001, $1, 'INV-ERASE-1', $2, 'q.erasmus@EXAMPLE.test', '1 Test Street, Springfield', 12000, '2025-01-01', '2025-01-31', 'sent', now())")
        .bind(b1).bind(NAME).execute(p).await.unwrap();

    let map = DataMap::bundled().unwrap();
    let catalog = Catalog::load(p).await.unwrap();
    Env {
        pluto,
        console,
        map,
        catalog,
        user,
        other,
        connection,
        account,
    }
}

fn subject() -> Subject {
    Subject {
        emails: vec![EMAIL.to_uppercase()],
        phones: vec![PHONE.into()],
        user_ids: vec![],
    }
}

fn groups(p: &erasure::Plan) -> BTreeMap<(String, RowAction), u64> {
    p.per_table
        .iter()
        .map(|t| ((t.table.clone(), t.action), t.rows))
        .collect()
}

/// Every row of every table as text, per table (sorted).
async fn snapshot(pool: &PgPool) -> BTreeMap<String, Vec<String>> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut out = BTreeMap::new();
    for t in tables {
        let mut rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT t::text FROM \"{t}\" t"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        rows.sort();
        out.insert(t, rows);
    }
    out
}

/// Rows of every text and JSON column, found through information_schema
/// (not the data map), that contain the subject's e-mail, phone or name.
async fn scan_for_subject(pool: &PgPool) -> Vec<String> {
    let cols = sqlx::query(
        "SELECT c.table_name::text, c.column_name::text FROM information_schema.columns c
           JOIN information_schema.tables t
             ON t.table_schema = c.table_schema AND t.table_name = c.table_name
          WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
            AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(cols.len() > 20, "the scan sees the text columns");
    let mut hits = Vec::new();
    for c in cols {
        let (t, col): (String, String) = (c.get(0), c.get(1));
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM \"{t}\" WHERE \"{col}\"::text ILIKE $1 OR \"{col}\"::text ILIKE $2
                OR \"{col}\"::text ILIKE $3
                OR regexp_replace(\"{col}\"::text, '[^0-9]', '', 'g') LIKE $4"
        )))
        .bind(format!("%{EMAIL}%"))
        .bind(format!("%{NAME}%"))
        .bind(format!("%{PHONE}%"))
        .bind(format!("%{PHONE_DIGITS}%"))
        .fetch_one(pool)
        .await
        .unwrap();
        if n > 0 {
            hits.push(format!("{t}.{col}: {n}"));
        }
    }
    hits
}

/// A request of `kind` (GDPR) created by `by`, hashed with `key`.
async fn create_as(
    env: &Env,
    key: &[u8],
    kind: RequestKind,
    s: &Subject,
    ticket: &str,
    by: &str,
) -> Uuid {
    create_request(
        &env.console.pool,
        key,
        &NewRequest {
            id: Uuid::new_v4(),
            kind,
            subject: s,
            ticket: ticket.into(),
            regime: Regime::Gdpr,
            note: String::new(),
            received_at: chrono::Utc::now(),
            created_by: by.into(),
        },
    )
    .await
    .unwrap()
}

async fn new_request(env: &Env, s: &Subject, by: &str) -> Uuid {
    create_as(env, KEY, RequestKind::Erasure, s, "ZD-4711", by).await
}

/// Plans the request (as its creator "alice") and has "bob" approve it.
async fn plan_and_approve(env: &Env, id: Uuid, s: &Subject) -> erasure::Plan {
    let p = plan(
        &discover(&env.pluto.pool, &env.map, &env.catalog, s)
            .await
            .unwrap(),
    )
    .unwrap();
    store_plan(&env.console.pool, id, &p, "alice")
        .await
        .unwrap();
    approve(&env.console.pool, id, "bob", &p.sha256)
        .await
        .unwrap();
    p
}

/// The key that seals credentials in these tests' queues.
const SEAL: [u8; 32] = [7; 32];

/// An executor on the test's databases with these systems.
fn executor<'a>(
    env: &'a Env,
    systems: &'a Systems,
    seal: &'a MasterKey,
    export_dir: &'a std::path::Path,
) -> Executor<'a> {
    Executor {
        pluto: &env.pluto.pool,
        console: &env.console.pool,
        map: &env.map,
        catalog: &env.catalog,
        key: KEY,
        seal,
        systems,
        export_dir,
    }
}

/// Executes with no external system configured (steps stay pending).
async fn exec(env: &Env, id: Uuid, s: &Subject, by: &str) -> charon::core::Result<ExecuteOutcome> {
    let seal = MasterKey::new(SEAL);
    executor(
        env,
        &Systems::default(),
        &seal,
        std::path::Path::new("/nonexistent"),
    )
    .execute(id, s, by, &mut |_| {})
    .await
}

/// Create, plan, approve (by another officer), execute.
async fn erase(env: &Env, s: &Subject) -> ExecuteOutcome {
    let id = approved_request(env, s).await;
    exec(env, id, s, "carol").await.unwrap()
}

/// The progress an execution reports (the TUI's gauge): per table and
/// action, counts that only grow and end at the table's total.
#[tokio::test]
async fn execution_reports_each_tables_progress_up_to_its_total() {
    let env = setup("er_prog").await;
    let s = subject();
    let id = approved_request(&env, &s).await;
    let seal = MasterKey::new(SEAL);
    let systems = Systems::default();
    let mut events: Vec<(String, RowAction, usize, usize)> = Vec::new();
    let out = executor(&env, &systems, &seal, std::path::Path::new("/nonexistent"))
        .execute(id, &s, "carol", &mut |p| {
            if let charon::core::erasure::execute::Progress::Table {
                table,
                action,
                done,
                total,
            } = p
            {
                events.push((table, action, done, total));
            }
        })
        .await
        .unwrap();
    assert!(matches!(out, ExecuteOutcome::Done(_)), "{out:?}");
    let mut last: BTreeMap<(String, RowAction), (usize, usize)> = BTreeMap::new();
    for (table, action, done, total) in events {
        let key = (table, action);
        if let Some((before, _)) = last.get(&key) {
            assert!(done >= *before, "{key:?}: {done} after {before}");
        }
        last.insert(key, (done, total));
    }
    assert!(
        last.contains_key(&("receipts".to_string(), RowAction::Redact)),
        "{last:?}"
    );
    assert!(
        last.contains_key(&("trip_points".to_string(), RowAction::Delete)),
        "{last:?}"
    );
    for (key, (done, total)) in &last {
        assert!(*total > 0, "{key:?}");
        assert_eq!(done, total, "{key:?} stopped short");
    }
}

/// A request found `executing` (its last run was interrupted before Pluto
/// committed) is recovered first, then executed, and the report says it
/// resumed.
#[tokio::test]
async fn an_interrupted_execution_is_recovered_and_reported_as_resumed() {
    let env = setup("er_resume").await;
    let s = subject();
    let id = approved_request(&env, &s).await;
    sqlx::query(
        "UPDATE erasure_requests SET state = 'executing', executed_by = 'carol' WHERE id = $1",
    )
    .bind(id)
    .execute(&env.console.pool)
    .await
    .unwrap();
    let out = exec(&env, id, &s, "carol").await.unwrap();
    let ExecuteOutcome::Done(report) = out else {
        panic!("not executed: {out:?}");
    };
    assert!(report.resumed);
    assert_eq!(report.rows_deleted, 12);
    assert_eq!(
        scan_for_subject(&env.pluto.pool).await,
        Vec::<String>::new()
    );
    // Pluto's part committed, the external steps still pending (no system
    // configured here): executing it again carries on with the queue only.
    assert_eq!(
        get_request(&env.console.pool, id).await.unwrap().state,
        "executing"
    );
    let out = exec(&env, id, &s, "carol").await.unwrap();
    let ExecuteOutcome::Done(again) = out else {
        panic!("not carried on: {out:?}");
    };
    assert!(again.resumed);
    assert_eq!((again.rows_deleted, again.external_enqueued), (0, 0));
    assert!(!again.complete);
}

#[tokio::test]
async fn discovery_finds_the_subject_across_tenants_and_nobody_else() {
    let env = setup("er_disc").await;
    let d = discover(&env.pluto.pool, &env.map, &env.catalog, &subject())
        .await
        .unwrap();
    assert_eq!(d.user_ids, vec![env.user]);
    let p = plan(&d).unwrap();
    let want: BTreeMap<(String, RowAction), u64> = [
        ("bank_accounts", RowAction::Retain, 1),
        ("bank_connections", RowAction::Retain, 1),
        ("invoices", RowAction::Retain, 1),
        ("memberships", RowAction::Delete, 2),
        ("payroll_entries", RowAction::Retain, 1),
        ("receipts", RowAction::Delete, 2),
        ("receipts", RowAction::Redact, 1),
        ("shifts", RowAction::Delete, 1),
        ("shifts", RowAction::Redact, 1),
        ("transactions", RowAction::Redact, 1),
        ("transactions", RowAction::Retain, 1),
        ("trip_points", RowAction::Delete, 5),
        ("trips", RowAction::Delete, 2),
        ("users", RowAction::Pseudonymise, 1),
    ]
    .into_iter()
    .map(|(t, a, n)| ((t.to_string(), a), n))
    .collect();
    assert_eq!(groups(&p), want);
    let ext: BTreeMap<_, _> = p
        .external
        .iter()
        .map(|e| (e.system.as_str(), e.objects.clone()))
        .collect();
    assert_eq!(ext["plaid"], vec!["item-erasure-test-1"]);
    assert_eq!(
        ext["receipts_bucket"],
        vec!["receipts/erasure-1.jpg", "receipts/erasure-2.jpg"]
    );
    // The retained rows carry the data map's reason.
    let payroll = p
        .per_table
        .iter()
        .find(|t| t.table == "payroll_entries")
        .unwrap();
    assert!(
        payroll.reason.contains("payroll records"),
        "{}",
        payroll.reason
    );
    // Keys are exactly the subject's (and the other user's mentioning rows).
    let receipts_deleted = d
        .tables
        .iter()
        .find(|t| t.table == "receipts" && t.action == RowAction::Delete)
        .unwrap();
    let keys = |f| erasure::group_keys(&env.pluto.pool, &env.map, &env.catalog, &d, f);
    assert_eq!(
        keys(receipts_deleted).await.unwrap(),
        vec![
            vec!["9000000001".to_string()],
            vec!["9000000002".to_string()]
        ]
    );
    // The plan never holds the subject's identifiers in clear.
    let json = p.canonical_json().unwrap();
    for v in [EMAIL, NAME, PHONE_DIGITS, "999-555-0987"] {
        assert!(
            !json.to_lowercase().contains(&v.to_lowercase()),
            "{v} in plan"
        );
    }

    // Another subject's discovery shares no deleted row with this one.
    let other = Subject {
        user_ids: vec![env.other],
        ..Subject::default()
    };
    let od = discover(&env.pluto.pool, &env.map, &env.catalog, &other)
        .await
        .unwrap();
    assert_eq!(od.user_ids, vec![env.other]);
    for t in d.tables.iter().filter(|t| t.action == RowAction::Delete) {
        let mine = keys(t).await.unwrap();
        for o in od.tables.iter().filter(|o| o.table == t.table) {
            let theirs = erasure::group_keys(&env.pluto.pool, &env.map, &env.catalog, &od, o)
                .await
                .unwrap();
            assert!(
                mine.iter().all(|k| !theirs.contains(k)),
                "{} rows shared between two subjects",
                t.table
            );
        }
    }
}

/// A table with two external references (here receipts with a thumbnail
/// beside the image, both in the bucket): discovery collects both columns'
/// objects, each from its own column.
#[tokio::test]
async fn a_table_with_two_external_columns_gives_the_objects_of_both() {
    let env = setup("er_twoext").await;
    let p = &env.pluto.pool;
    sqlx::query("ALTER TABLE receipts ADD COLUMN thumb_key text")
        .execute(p)
        .await
        .unwrap();
    sqlx::query("UPDATE receipts SET thumb_key = 'thumbs/' || id WHERE id >= 9000000001")
        .execute(p)
        .await
        .unwrap();
    let s3 = r#"s3_key = { category = "external_ref", mask = "none", erasure = "delete_object", system = "receipts_bucket" }"#;
    let text = charon::core::datamap::PLUTO_MAP
        .replace(s3, &format!("{s3}\n{}", s3.replace("s3_key", "thumb_key")));
    assert_ne!(
        text,
        charon::core::datamap::PLUTO_MAP,
        "the receipts line moved"
    );
    let map = DataMap::parse(&text, std::path::Path::new("two-external.toml")).unwrap();
    let catalog = Catalog::load(p).await.unwrap();
    let d = discover(p, &map, &catalog, &subject()).await.unwrap();
    let plan = plan(&d).unwrap();
    let mut objects: Vec<String> = plan
        .external
        .iter()
        .filter(|e| e.system == "receipts_bucket")
        .flat_map(|e| e.objects.clone())
        .collect();
    objects.sort();
    assert_eq!(
        objects,
        vec![
            "receipts/erasure-1.jpg",
            "receipts/erasure-2.jpg",
            "thumbs/9000000001",
            "thumbs/9000000002",
        ]
    );
}

/// Free text that names the subject in a table whose primary key has two
/// columns (rows are matched on both) is redacted, and only there.
#[tokio::test]
async fn mentions_in_a_table_with_a_two_column_key_are_redacted() {
    let env = setup("er_twokey").await;
    let p = &env.pluto.pool;
    sqlx::raw_sql(
        "CREATE TABLE shift_notes (shift_id bigint, n int, business_id uuid, author_id uuid,
                                   note text, PRIMARY KEY (shift_id, n))",
    )
    .execute(p)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO shift_notes VALUES
           (9000000002, 1, $1, $2, 'ask q.erasmus@example.test to swap'),
           (9000000002, 2, $1, $2, 'nothing personal here'),
           (9000000003, 1, $1, $2, 'q.erasmus@example.test again')",
    )
    .bind(Uuid::new_v4())
    .bind(env.other)
    .execute(p)
    .await
    .unwrap();
    let text = format!(
        "{}\n[tables.shift_notes]\nprimary_key = [\"shift_id\", \"n\"]\ntenant = {{ column = \"business_id\" }}\n\
         subject = [{{ kind = \"user_id\", column = \"author_id\" }}]\nerasure = {{ rows = \"delete\" }}\n\n\
         [tables.shift_notes.columns]\nshift_id = {{ category = \"none\" }}\nn = {{ category = \"none\" }}\n\
         business_id = {{ category = \"none\" }}\nauthor_id = {{ category = \"identifier\", mask = \"none\" }}\n\
         note = {{ category = \"free_text\", mask = \"free_text\" }}\n",
        charon::core::datamap::PLUTO_MAP
    );
    let map = DataMap::parse(&text, std::path::Path::new("two-column-key.toml")).unwrap();
    let catalog = Catalog::load(p).await.unwrap();
    let s = subject();
    let d = discover(p, &map, &catalog, &s).await.unwrap();
    let planned = plan(&d).unwrap();
    assert!(
        planned
            .per_table
            .iter()
            .any(|t| t.table == "shift_notes" && t.action == RowAction::Redact && t.rows == 2),
        "{planned:?}"
    );
    let id = new_request(&env, &s, "alice").await;
    store_plan(&env.console.pool, id, &planned, "alice")
        .await
        .unwrap();
    approve(&env.console.pool, id, "bob", &planned.sha256)
        .await
        .unwrap();
    let seal = MasterKey::new(SEAL);
    let systems = Systems::default();
    let ex = Executor {
        map: &map,
        catalog: &catalog,
        ..executor(&env, &systems, &seal, std::path::Path::new("/nonexistent"))
    };
    let out = ex.execute(id, &s, "carol", &mut |_| {}).await.unwrap();
    assert!(matches!(out, ExecuteOutcome::Done(_)), "{out:?}");
    let notes: Vec<(i64, i32, String)> =
        sqlx::query_as("SELECT shift_id, n, note FROM shift_notes ORDER BY 1, 2")
            .fetch_all(p)
            .await
            .unwrap();
    assert_eq!(notes.len(), 3);
    assert_eq!(notes[1].2, "nothing personal here");
    for (_, _, note) in [&notes[0], &notes[2]] {
        assert!(!note.to_lowercase().contains(EMAIL), "{note}");
        assert!(note.contains("[REDACTED"), "{note}");
    }
}

#[tokio::test]
async fn plan_hash_is_stable_and_follows_the_data() {
    let env = setup("er_hash").await;
    let s = subject();
    let a = plan(
        &discover(&env.pluto.pool, &env.map, &env.catalog, &s)
            .await
            .unwrap(),
    )
    .unwrap();
    let b = plan(
        &discover(&env.pluto.pool, &env.map, &env.catalog, &s)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(a, b);
    assert_eq!(a.sha256.len(), 64);
    assert_eq!(a.canonical_json().unwrap(), b.canonical_json().unwrap());

    // Approve, then the data changes: execution refuses and shows why.
    let id = new_request(&env, &s, "alice").await;
    store_plan(&env.console.pool, id, &a, "alice")
        .await
        .unwrap();
    approve(&env.console.pool, id, "bob", &a.sha256)
        .await
        .unwrap();
    sqlx::query("INSERT INTO trip_points VALUES (9000000001, 4, (SELECT business_id FROM trips WHERE id = 9000000001), now(), 1.0, 2.0)")
        .execute(&env.pluto.pool)
        .await
        .unwrap();
    let before = snapshot(&env.pluto.pool).await;
    let out = exec(&env, id, &s, "carol").await.unwrap();
    match out {
        ExecuteOutcome::PlanChanged {
            approved_sha256,
            new_plan,
            differences,
        } => {
            assert_eq!(approved_sha256, a.sha256);
            assert_ne!(new_plan.sha256, a.sha256);
            assert_eq!(differences, vec!["trip_points (delete): 5 -> 6 rows"]);
        }
        other => panic!("executed despite a changed plan: {other:?}"),
    }
    assert_eq!(snapshot(&env.pluto.pool).await, before, "nothing changed");
    let r = get_request(&env.console.pool, id).await.unwrap();
    assert_eq!(r.state, "planned");
    assert_eq!(r.approved_by, None);
}

#[tokio::test]
async fn the_creator_cannot_approve_their_own_request() {
    let env = setup("er_officer").await;
    let s = subject();
    let id = new_request(&env, &s, "alice").await;
    let p = plan(
        &discover(&env.pluto.pool, &env.map, &env.catalog, &s)
            .await
            .unwrap(),
    )
    .unwrap();
    store_plan(&env.console.pool, id, &p, "alice")
        .await
        .unwrap();
    let err = approve(&env.console.pool, id, "alice", &p.sha256)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err}");
    // The database refuses it too.
    let db = sqlx::query(
        "UPDATE erasure_requests SET approved_by = created_by, state = 'approved' WHERE id = $1",
    )
    .bind(id)
    .execute(&env.console.pool)
    .await;
    assert!(db.is_err());
    // A stale hash is refused; the right officer and hash are accepted.
    let stale = approve(&env.console.pool, id, "bob", &"0".repeat(64))
        .await
        .unwrap_err();
    assert!(matches!(stale, Error::Conflict(_)), "{stale}");
    approve(&env.console.pool, id, "bob", &p.sha256)
        .await
        .unwrap();
    let r = get_request(&env.console.pool, id).await.unwrap();
    assert_eq!(r.state, "approved");
    assert_eq!(r.approved_by.as_deref(), Some("bob"));
    assert_eq!((r.due_at - r.received_at).num_days(), 30);
    // No identifier in clear in the console database.
    let row: String = sqlx::query_scalar("SELECT t::text FROM erasure_requests t WHERE id = $1")
        .bind(id)
        .fetch_one(&env.console.pool)
        .await
        .unwrap();
    assert!(!row.to_lowercase().contains(EMAIL), "{row}");
    assert!(!row.contains(PHONE_DIGITS), "{row}");
}

#[tokio::test]
async fn execute_erases_completely_and_touches_nobody_else_and_twice_is_harmless() {
    let env = setup("er_exec").await;
    let before = snapshot(&env.pluto.pool).await;
    assert!(!scan_for_subject(&env.pluto.pool).await.is_empty());
    let planned = plan(
        &discover(&env.pluto.pool, &env.map, &env.catalog, &subject())
            .await
            .unwrap(),
    )
    .unwrap();
    let redact_rows: u64 = planned
        .per_table
        .iter()
        .filter(|t| t.action == RowAction::Redact)
        .map(|t| t.rows)
        .sum();
    assert!(redact_rows > 0, "{planned:?}");

    let out = erase(&env, &subject()).await;
    let ExecuteOutcome::Done(report) = out else {
        panic!("not executed: {out:?}");
    };
    assert_eq!(report.rows_deleted, 12);
    assert_eq!(report.external_enqueued, 3);
    assert!(!report.resumed, "a first execution resumes nothing");
    // The report counts the free-text rows it redacted: the plan's.
    assert_eq!(report.rows_redacted, redact_rows);

    // Completeness: nothing of the subject left in any text/JSON column.
    assert_eq!(
        scan_for_subject(&env.pluto.pool).await,
        Vec::<String>::new()
    );

    // Retained rows are still there, pseudonymised, amounts kept.
    let pay = sqlx::query(
        "SELECT tax_id, bank_account, gross_cents FROM payroll_entries WHERE id = 9000000001",
    )
    .fetch_one(&env.pluto.pool)
    .await
    .unwrap();
    assert!(pay.get::<String, _>(0).starts_with("erased:"));
    assert!(pay.get::<String, _>(1).starts_with("erased:"));
    assert_eq!(pay.get::<i64, _>(2), 300000);
    let u = sqlx::query("SELECT email, full_name, phone, phone_digits FROM users WHERE id = $1")
        .bind(env.user)
        .fetch_one(&env.pluto.pool)
        .await
        .unwrap();
    assert!(u.get::<String, _>(0).starts_with("erased:"));
    assert!(u.get::<String, _>(1).starts_with("erased:"));
    assert_eq!(u.get::<Option<String>, _>(2), None);
    assert_eq!(u.get::<String, _>(3), "");

    // Everybody else's rows are byte-for-byte unchanged: every row that
    // changed or went is one of the subject's, or mentioned them.
    let after = snapshot(&env.pluto.pool).await;
    let ours = [
        env.user.to_string(),
        env.connection.to_string(),
        env.account.to_string(),
        "(9000000".to_string(),
    ];
    let mut changed = 0;
    for (t, rows) in &before {
        let now = &after[t];
        for r in rows.iter().filter(|r| !now.contains(r)) {
            assert!(
                ours.iter().any(|o| r.contains(o.as_str())),
                "{t}: {r} changed"
            );
            changed += 1;
        }
    }
    // 12 deleted + 6 pseudonymised/redacted (users, payroll, invoices,
    // transactions, receipt 3, shift 2; bank rows have no personal text).
    assert_eq!(changed, 18);

    // Console side: queue and ledger written, request done.
    let queued: Vec<(String, String)> = sqlx::query_as(
        "SELECT system, object FROM erasure_external_queue WHERE state = 'pending' ORDER BY 1, 2",
    )
    .fetch_all(&env.console.pool)
    .await
    .unwrap();
    assert_eq!(
        queued,
        vec![
            ("plaid".into(), "item-erasure-test-1".into()),
            ("receipts_bucket".into(), "receipts/erasure-1.jpg".into()),
            ("receipts_bucket".into(), "receipts/erasure-2.jpg".into()),
        ]
    );
    let ledger: Vec<Uuid> = sqlx::query_scalar("SELECT unnest(user_ids) FROM erasure_ledger")
        .fetch_all(&env.console.pool)
        .await
        .unwrap();
    assert_eq!(ledger, vec![env.user]);
    let ledger_text: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM erasure_ledger t")
            .fetch_one(&env.console.pool)
            .await
            .unwrap();
    assert!(!ledger_text.to_lowercase().contains(EMAIL));
    assert!(!ledger_text.contains(PHONE_DIGITS));
    // No external system is configured here: the Pluto part is committed,
    // the request waits for its queue (tests/erasure_external.rs runs it).
    let (state, committed): (String, bool) =
        sqlx::query_as("SELECT state, pluto_committed_at IS NOT NULL FROM erasure_requests")
            .fetch_one(&env.console.pool)
            .await
            .unwrap();
    assert_eq!((state.as_str(), committed), ("executing", true));

    // Erasing the same person again (also by user id) is harmless.
    let settled = snapshot(&env.pluto.pool).await;
    let ExecuteOutcome::Done(again) = erase(&env, &subject()).await else {
        panic!("second erasure not executed");
    };
    assert_eq!(
        (
            again.rows_deleted,
            again.rows_pseudonymised,
            again.rows_redacted
        ),
        (0, 0, 0)
    );
    let by_id = Subject {
        user_ids: vec![env.user],
        ..subject()
    };
    let ExecuteOutcome::Done(third) = erase(&env, &by_id).await else {
        panic!("third erasure not executed");
    };
    assert_eq!(third.rows_deleted, 0);
    let last = snapshot(&env.pluto.pool).await;
    for (t, rows) in &settled {
        assert_eq!(rows.len(), last[t].len(), "{t} row count changed");
    }
    assert_eq!(
        scan_for_subject(&env.pluto.pool).await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn a_subject_that_matches_nothing_gives_an_empty_plan() {
    let env = setup("er_empty").await;
    let s = Subject {
        emails: vec!["nobody@nowhere.invalid".into()],
        phones: vec!["+1 000-555-0000".into()],
        user_ids: vec![Uuid::new_v4()],
    };
    let d = discover(&env.pluto.pool, &env.map, &env.catalog, &s)
        .await
        .unwrap();
    assert!(d.user_ids.is_empty());
    let p = plan(&d).unwrap();
    assert!(p.is_empty(), "{p:?}");
    let before = snapshot(&env.pluto.pool).await;
    let ExecuteOutcome::Done(r) = erase(&env, &s).await else {
        panic!("not executed");
    };
    assert_eq!(
        (r.rows_deleted, r.rows_pseudonymised, r.external_enqueued),
        (0, 0, 0)
    );
    // Nothing external to wait for: done at once, with a certificate that
    // says nothing was found.
    assert!(r.complete, "{r:?}");
    assert_eq!(snapshot(&env.pluto.pool).await, before);
    let id: Uuid = sqlx::query_scalar("SELECT id FROM erasure_requests")
        .fetch_one(&env.console.pool)
        .await
        .unwrap();
    let c = erasure::certificate::get(&env.console.pool, id)
        .await
        .unwrap();
    assert_eq!(Some(c.sha256.clone()), r.certificate_sha256);
    assert_eq!(c.json["found_nothing"], serde_json::json!(true));
    assert!(c.markdown().contains("Nothing was found for this subject"));
}

/// A person who is not a Pluto user, known only by a phone number that
/// someone else wrote into a free-text column: that mention is still found
/// and redacted (the free-text search must not depend on having an e-mail).
#[tokio::test]
async fn a_phone_number_alone_still_finds_the_free_text_that_mentions_it() {
    let env = setup("er_phone").await;
    sqlx::query(
        "UPDATE receipts SET notes = 'ask the courier on +1 888-555-0142' WHERE id = 9000000003",
    )
    .execute(&env.pluto.pool)
    .await
    .unwrap();
    let s = Subject {
        emails: vec![],
        phones: vec!["+1 (888) 555-0142".into()],
        user_ids: vec![],
    };
    let d = discover(&env.pluto.pool, &env.map, &env.catalog, &s)
        .await
        .unwrap();
    assert!(d.user_ids.is_empty());
    let p = plan(&d).unwrap();
    assert_eq!(
        groups(&p),
        BTreeMap::from([(("receipts".to_string(), RowAction::Redact), 1)]),
        "{p:?}"
    );
    // Executed: nothing external to wait for, so certified at once; rows
    // were found (only no objects), and the certificate says so.
    let ExecuteOutcome::Done(r) = erase(&env, &s).await else {
        panic!("not executed");
    };
    assert!(r.complete, "{r:?}");
    let id: Uuid = sqlx::query_scalar("SELECT id FROM erasure_requests")
        .fetch_one(&env.console.pool)
        .await
        .unwrap();
    let c = erasure::certificate::get(&env.console.pool, id)
        .await
        .unwrap();
    assert_eq!(c.json["found_nothing"], serde_json::json!(false));
    let md = c.markdown();
    assert!(!md.contains("Nothing was found for this subject"), "{md}");
    assert!(md.contains("No external objects."), "{md}");
}

/// The database deletes fewer rows than planned (here a trigger silently
/// skips one): the count check aborts the transaction, nothing changes,
/// and the request fails with both counts.
#[tokio::test]
async fn a_statement_touching_other_than_the_planned_rows_changes_nothing() {
    let env = setup("er_count").await;
    sqlx::raw_sql(
        "CREATE FUNCTION erasure_test_skip() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN IF OLD.id = 9000000001 THEN RETURN NULL; END IF; RETURN OLD; END $$;
         CREATE TRIGGER erasure_test_skip BEFORE DELETE ON trips
           FOR EACH ROW EXECUTE FUNCTION erasure_test_skip();",
    )
    .execute(&env.pluto.pool)
    .await
    .unwrap();
    let s = subject();
    let before = snapshot(&env.pluto.pool).await;
    let id = new_request(&env, &s, "alice").await;
    plan_and_approve(&env, id, &s).await;
    let err = exec(&env, id, &s, "carol").await.unwrap_err();
    assert!(
        matches!(&err, Error::Conflict(m)
            if m == "trips (delete): 1 rows touched, 2 planned; nothing was changed"),
        "{err}"
    );
    assert_eq!(snapshot(&env.pluto.pool).await, before);
    assert_eq!(
        get_request(&env.console.pool, id).await.unwrap().state,
        "failed"
    );
}

#[tokio::test]
async fn an_injected_failure_leaves_pluto_unchanged() {
    let env = setup("er_fail").await;
    sqlx::raw_sql(
        "CREATE FUNCTION erasure_test_fail() RETURNS trigger LANGUAGE plpgsql AS
           $$ BEGIN RAISE EXCEPTION 'injected failure'; END $$;
         CREATE TRIGGER erasure_test_fail BEFORE DELETE ON trips
           FOR EACH ROW EXECUTE FUNCTION erasure_test_fail();",
    )
    .execute(&env.pluto.pool)
    .await
    .unwrap();
    let s = subject();
    let before = snapshot(&env.pluto.pool).await;
    let id = new_request(&env, &s, "alice").await;
    let p = plan_and_approve(&env, id, &s).await;
    let err = exec(&env, id, &s, "carol").await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    // trip_points (children) were deleted before trips inside the
    // transaction; all of it is rolled back.
    assert_eq!(snapshot(&env.pluto.pool).await, before);
    let r = get_request(&env.console.pool, id).await.unwrap();
    assert_eq!(r.state, "failed");
    assert!(r.failure.unwrap_or_default().contains("injected failure"));
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM erasure_external_queue")
        .fetch_one(&env.console.pool)
        .await
        .unwrap();
    let ledger: i64 = sqlx::query_scalar("SELECT count(*) FROM erasure_ledger")
        .fetch_one(&env.console.pool)
        .await
        .unwrap();
    assert_eq!((queued, ledger), (0, 0));

    // Once the cause is gone, the failed request is planned, approved and
    // executed again.
    sqlx::raw_sql("DROP TRIGGER erasure_test_fail ON trips")
        .execute(&env.pluto.pool)
        .await
        .unwrap();
    store_plan(&env.console.pool, id, &p, "alice")
        .await
        .unwrap();
    approve(&env.console.pool, id, "bob", &p.sha256)
        .await
        .unwrap();
    let out = exec(&env, id, &s, "carol").await.unwrap();
    assert!(matches!(out, ExecuteOutcome::Done(_)), "{out:?}");
    assert_eq!(
        scan_for_subject(&env.pluto.pool).await,
        Vec::<String>::new()
    );
    let r = get_request(&env.console.pool, id).await.unwrap();
    assert_eq!((r.state.as_str(), r.failure), ("executing", None));
}

#[tokio::test]
async fn wrong_identifiers_cannot_execute_a_request() {
    let env = setup("er_ident").await;
    let s = subject();
    let id = approved_request(&env, &s).await;
    let wrong = Subject {
        emails: vec!["someone.else@example.test".into()],
        ..Subject::default()
    };
    let err = exec(&env, id, &wrong, "carol").await.unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
    assert_eq!(
        get_request(&env.console.pool, id).await.unwrap().state,
        "approved"
    );
}

// ---------------------------------------------------------------- external systems

const TOKEN: &str = "access-sandbox-erasure-test-1";

/// The subject's receipt images (and someone else's) in a local object
/// store, a Plaid server that knows the subject's item and another one.
struct External {
    dir: tempfile::TempDir,
    plaid: common::plaid::PlaidServer,
    other_token: String,
    secret_file: std::path::PathBuf,
}

async fn external(env: &Env) -> External {
    sqlx::query("UPDATE bank_connections SET plaid_access_token = $2 WHERE id = $1")
        .bind(env.connection)
        .bind(TOKEN)
        .execute(&env.pluto.pool)
        .await
        .unwrap();
    let other_token: String = sqlx::query_scalar(
        "SELECT plaid_access_token FROM bank_connections WHERE id <> $1 ORDER BY id LIMIT 1",
    )
    .bind(env.connection)
    .fetch_one(&env.pluto.pool)
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    for k in [
        "receipts/erasure-1.jpg",
        "receipts/erasure-2.jpg",
        "receipts/other-3.jpg",
    ] {
        let p = dir.path().join("bucket").join(k);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"jpeg").unwrap();
    }
    let secret_file = dir.path().join("plaid.secret");
    std::fs::write(&secret_file, common::plaid::SECRET).unwrap();
    std::fs::set_permissions(
        &secret_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let plaid = common::plaid::PlaidServer::start(&[
        (TOKEN, "item-erasure-test-1"),
        (other_token.as_str(), "item-other"),
    ])
    .await;
    External {
        dir,
        plaid,
        other_token,
        secret_file,
    }
}

impl External {
    /// The `[erasure]` configuration for these systems.
    fn config_toml(&self) -> String {
        format!(
            "[erasure]\nmax_attempts = 3\n\n[erasure.systems.receipts_bucket]\nurl = \"file://{}\"\n\n[erasure.systems.plaid]\nurl = \"{}\"\nclient_id = \"{}\"\nsecret_file = \"{}\"\n",
            self.dir.path().join("bucket").display(),
            self.plaid.url,
            common::plaid::CLIENT_ID,
            self.secret_file.display()
        )
    }

    fn systems(&self, map: &DataMap) -> Systems {
        let cfg = charon::core::config::Config::parse(
            &format!(
                "pluto_url = \"postgres://x@localhost/a\"\nconsole_url = \"postgres://x@localhost/b\"\n{}",
                self.config_toml()
            ),
            std::path::Path::new("test.toml"),
        )
        .unwrap();
        Systems::from_config(&cfg.erasure, map).unwrap()
    }

    fn object_exists(&self, key: &str) -> bool {
        self.dir.path().join("bucket").join(key).exists()
    }
}

async fn exec_with(
    env: &Env,
    systems: &Systems,
    id: Uuid,
    s: &Subject,
) -> charon::core::Result<ExecuteOutcome> {
    let seal = MasterKey::new(SEAL);
    executor(env, systems, &seal, std::path::Path::new("/nonexistent"))
        .execute(id, s, "carol", &mut |_| {})
        .await
}

async fn approved_request(env: &Env, s: &Subject) -> Uuid {
    let id = new_request(env, s, "alice").await;
    plan_and_approve(env, id, s).await;
    id
}

#[tokio::test]
async fn external_steps_delete_exactly_the_subjects_objects_and_items_then_certify() {
    let env = setup("er_ext").await;
    let ext = external(&env).await;
    let systems = ext.systems(&env.map);
    let id = approved_request(&env, &subject()).await;
    let ExecuteOutcome::Done(r) = exec_with(&env, &systems, id, &subject()).await.unwrap() else {
        panic!("not executed");
    };
    assert_eq!(r.external_enqueued, 3);
    assert_eq!((r.queue.done, r.queue.failed, r.queue.pending), (3, 0, 0));
    assert!(r.complete, "{r:?}");

    // Object storage: the subject's receipts are gone, the other is not.
    assert!(!ext.object_exists("receipts/erasure-1.jpg"));
    assert!(!ext.object_exists("receipts/erasure-2.jpg"));
    assert!(ext.object_exists("receipts/other-3.jpg"));
    // Plaid: exactly the subject's item, once, with its token.
    let calls = ext.plaid.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].path, "/item/remove");
    assert_eq!(calls[0].access_token, TOKEN);
    assert_ne!(calls[0].access_token, ext.other_token);
    assert_eq!(
        ext.plaid.removed_items(),
        ["item-erasure-test-1".to_string()].into_iter().collect()
    );
    // The sealed token is wiped from the queue once the item is removed, and
    // was never stored in clear.
    let payloads: i64 =
        sqlx::query_scalar("SELECT count(*) FROM erasure_external_queue WHERE payload IS NOT NULL")
            .fetch_one(&env.console.pool)
            .await
            .unwrap();
    assert_eq!(payloads, 0);
    let console_text: String =
        sqlx::query_scalar("SELECT string_agg(t::text, ' ') FROM erasure_external_queue t")
            .fetch_one(&env.console.pool)
            .await
            .unwrap();
    assert!(!console_text.contains(TOKEN));

    // The certificate: done, per table and per system, checkable.
    let req = get_request(&env.console.pool, id).await.unwrap();
    assert_eq!(req.state, "done");
    let c = erasure::certificate::get(&env.console.pool, id)
        .await
        .unwrap();
    assert_eq!(Some(&c.sha256), req.certificate_sha256.as_ref());
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
            c.canonical_json().as_bytes()
        )),
        c.sha256
    );
    let j = &c.json;
    assert_eq!(j["request"]["ticket"], "ZD-4711");
    assert_eq!(j["request"]["regime"], "gdpr");
    assert_eq!(j["operators"]["created_by"], "alice");
    assert_eq!(j["operators"]["planned_by"], "alice");
    assert_eq!(j["operators"]["approved_by"], "bob");
    assert_eq!(j["operators"]["executed_by"], "carol");
    assert_eq!(j["found_nothing"], false);
    let text = c.canonical_json();
    assert!(
        !text.to_lowercase().contains(EMAIL),
        "no identifier in clear"
    );
    assert!(!text.contains(PHONE_DIGITS));
    let tables: Vec<(String, String)> = j["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        tables.contains(&("users".into(), "pseudonymise".into())),
        "{tables:?}"
    );
    assert!(tables.contains(&("payroll_entries".into(), "retain".into())));
    assert!(tables.contains(&("trip_points".into(), "delete".into())));
    let plaid = j["external"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["system"] == "plaid")
        .unwrap();
    assert_eq!(plaid["objects"][0]["object"], "item-erasure-test-1");
    assert_eq!(plaid["objects"][0]["result"], "removed");
    let md = c.markdown();
    assert!(md.contains("| payroll_entries | retain |"), "{md}");
    assert!(md.contains(&c.sha256));
    // Each system and its objects, not "No external objects.".
    assert!(md.contains("### receipts_bucket"), "{md}");
    assert!(md.contains("- `receipts/erasure-1.jpg`: "), "{md}");
    assert!(!md.contains("No external objects."), "{md}");

    // Running the queue again, or erasing again, changes nothing outside.
    let again = approved_request(&env, &subject()).await;
    exec_with(&env, &systems, again, &subject()).await.unwrap();
    let calls = ext.plaid.calls();
    assert!(calls.iter().skip(1).all(|c| c.status == 400), "{calls:?}");
    let steps = erasure::external::steps(&env.console.pool, again)
        .await
        .unwrap();
    assert!(
        steps.iter().all(|s| s.state == "done"),
        "already gone is done: {steps:?}"
    );
    assert_eq!(
        get_request(&env.console.pool, again).await.unwrap().state,
        "done"
    );
    // A step run twice (a crash after the call, before it was marked done)
    // is success the second time.
    use erasure::external::StepResult;
    assert_eq!(
        systems
            .run_step("receipts_bucket", "receipts/erasure-1.jpg", None)
            .await,
        StepResult::Done("already gone".into())
    );
    assert_eq!(
        systems
            .run_step("plaid", "item-erasure-test-1", Some(TOKEN))
            .await,
        StepResult::Done("already removed".into())
    );
    // A key that would leave the bucket is refused, not followed.
    assert!(matches!(
        systems
            .run_step("receipts_bucket", "../plaid.secret", None)
            .await,
        StepResult::Failed(_)
    ));
    assert!(ext.secret_file.exists());
}

#[tokio::test]
async fn a_failing_external_step_is_retried_later_and_then_the_request_completes() {
    let env = setup("er_retry").await;
    let ext = external(&env).await;
    let systems = ext.systems(&env.map);
    ext.plaid.fail_next(1);
    let id = approved_request(&env, &subject()).await;
    let ExecuteOutcome::Done(r) = exec_with(&env, &systems, id, &subject()).await.unwrap() else {
        panic!("not executed");
    };
    assert_eq!((r.queue.done, r.queue.retried, r.queue.pending), (2, 1, 1));
    assert!(!r.complete);
    let req = get_request(&env.console.pool, id).await.unwrap();
    assert_eq!(req.state, "executing");
    let steps = erasure::external::steps(&env.console.pool, id)
        .await
        .unwrap();
    let plaid = steps.iter().find(|s| s.system == "plaid").unwrap();
    assert_eq!((plaid.state.as_str(), plaid.attempts), ("pending", 1));
    assert!(
        plaid
            .last_error
            .as_deref()
            .unwrap_or("")
            .contains("HTTP 500"),
        "{plaid:?}"
    );
    assert!(!plaid.last_error.as_deref().unwrap_or("").contains(TOKEN));

    // Not due yet: a run now leaves it alone.
    let seal = MasterKey::new(SEAL);
    let exec = executor(&env, &systems, &seal, std::path::Path::new("/nonexistent"));
    let (_, q, finished) = exec.run_queue(None, &mut |_| {}).await.unwrap();
    assert_eq!((q.done, q.pending), (0, 1));
    assert!(finished.is_empty());
    // Once due, the next run removes the item and finishes the request.
    sqlx::query("UPDATE erasure_external_queue SET next_attempt_at = now()")
        .execute(&env.console.pool)
        .await
        .unwrap();
    let (_, q, finished) = exec.run_queue(None, &mut |_| {}).await.unwrap();
    assert_eq!((q.done, q.pending, q.failed), (1, 0, 0));
    assert_eq!(finished, vec![id]);
    assert_eq!(
        get_request(&env.console.pool, id).await.unwrap().state,
        "done"
    );
    assert_eq!(
        ext.plaid.removed_items(),
        ["item-erasure-test-1".to_string()].into_iter().collect()
    );
}

// ---------------------------------------------------------------- crash safety

/// The request as the binary sees it: created with the binary's subject-hash
/// key (derived from its audit key), planned and approved by two officers.
async fn approved_for_binary(env: &Env, s: &Subject) -> Uuid {
    let audit = charon::core::audit::AuditKey::from_hex(&"ab".repeat(32)).unwrap();
    let key = erasure::store::subject_key(&audit);
    let id = create_as(env, &key, RequestKind::Erasure, s, "ZD-9", "alice").await;
    plan_and_approve(env, id, s).await;
    id
}

/// Starts `charon erasure execute`, waits until it reports the pause point,
/// and SIGKILLs it there.
fn kill_at(bin: &common::cli::Binary, args: &[String], otp: &str, point: &str) {
    use std::io::{BufRead, Write};
    let mut child = bin
        .command(args)
        .env("CHARON_ERASURE_PAUSE_AT", point)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{otp}").unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) if l.contains(&format!("paused at {point}")) => break,
            Ok(l) => seen.push(l),
            Err(_) => {
                let _ = child.kill();
                panic!("never reached {point}: {seen:?}");
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

// Multi-threaded: the Plaid server keeps answering while a worker thread
// waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_every_point_of_execution_leaves_pluto_whole_or_erased_and_the_next_run_finishes()
 {
    use charon::core::session::Role;
    for (i, (point, committed)) in [
        ("pluto_applied", false),
        ("console_committed", false),
        ("pluto_committed", true),
        ("queue_started", true),
    ]
    .into_iter()
    .enumerate()
    {
        let env = setup(&format!("er_kill{i}")).await;
        let ext = external(&env).await;
        let login = charon::core::operators::os_account().unwrap();
        charon::core::operators::add(&env.console.pool, "x", &login, "Officer", Role::Compliance)
            .await
            .unwrap();
        let master = [5u8; 32];
        let key = common::cli::TestOtpKey {
            public_id: "cccccbhkevbn",
            aes: [0x44; 16],
            private_id: [1, 2, 3, 4, 5, 6],
        };
        key.enroll(&env.console.pool, master, &login).await;
        let bin = common::cli::Binary::with_config(
            &env.pluto.url,
            &env.console.url,
            master,
            &ext.config_toml(),
        );
        let id = approved_for_binary(&env, &subject()).await;
        let before = snapshot(&env.pluto.pool).await;
        let execute: Vec<String> = [
            "erasure",
            "execute",
            "--request",
            &id.to_string(),
            "--email",
            EMAIL,
            "--phone",
            PHONE,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut n = 1u8;
        kill_at(&bin, &execute, &key.otp(n), point);

        // Pluto: whole, or the subject fully erased; never half.
        if committed {
            assert_eq!(
                scan_for_subject(&env.pluto.pool).await,
                Vec::<String>::new(),
                "{point}"
            );
        } else {
            assert_eq!(
                snapshot(&env.pluto.pool).await,
                before,
                "{point}: untouched"
            );
        }
        assert_eq!(
            get_request(&env.console.pool, id).await.unwrap().state,
            "executing",
            "{point}"
        );

        // The next run settles it (waiting while the server still holds the
        // killed session's transaction and lock).
        let mut out = String::new();
        for _ in 0..40 {
            n += 1;
            let (code, o, err) = bin.run(&["erasure", "run-queue"], &format!("{}\n", key.otp(n)));
            assert_eq!(code, Some(0), "{point}: {o}\n{err}");
            out = o;
            if !out.contains("is running in another session") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
        let r = get_request(&env.console.pool, id).await.unwrap();
        if committed {
            assert_eq!(r.state, "done", "{point}: {out}");
            assert!(r.certificate_sha256.is_some());
            assert!(!ext.object_exists("receipts/erasure-1.jpg"), "{point}");
            assert_eq!(
                ext.plaid.removed_items(),
                ["item-erasure-test-1".to_string()].into_iter().collect(),
                "{point}"
            );
        } else {
            assert!(out.contains("had not committed"), "{point}: {out}");
            assert_eq!(r.state, "approved", "{point}");
            assert_eq!(
                snapshot(&env.pluto.pool).await,
                before,
                "{point}: untouched"
            );
            let (queued, ledger): (i64, i64) = sqlx::query_as(
                "SELECT (SELECT count(*) FROM erasure_external_queue),
                        (SELECT count(*) FROM erasure_ledger)",
            )
            .fetch_one(&env.console.pool)
            .await
            .unwrap();
            assert_eq!((queued, ledger), (0, 0), "{point}");
            assert!(ext.object_exists("receipts/erasure-1.jpg"));
            // Executing again (the approval still holds) finishes it.
            n += 1;
            let (code, o, err) = bin.run(&execute, &format!("{}\n", key.otp(n)));
            assert_eq!(code, Some(0), "{point}: {o}\n{err}");
            assert!(o.contains("done; certificate sha256"), "{point}: {o}");
            assert_eq!(
                scan_for_subject(&env.pluto.pool).await,
                Vec::<String>::new()
            );
            assert!(!ext.object_exists("receipts/erasure-1.jpg"));
        }
        // The audit log says what happened: the killed execution's entry
        // (written first), then the run that settled it.
        let actions: Vec<String> = sqlx::query_scalar(
            "SELECT action FROM audit_log WHERE action LIKE 'erasure.%' ORDER BY seq",
        )
        .fetch_all(&env.console.pool)
        .await
        .unwrap();
        assert_eq!(
            actions.first().map(String::as_str),
            Some("erasure.execute"),
            "{point}"
        );
        assert!(
            actions.iter().any(|a| a == "erasure.run_queue"),
            "{point}: {actions:?}"
        );
        let audit_key = charon::core::audit::AuditKey::from_hex(&"ab".repeat(32)).unwrap();
        let verdict =
            charon::core::audit::verify(&env.console.pool, &audit_key, None, None, |_| {})
                .await
                .unwrap();
        assert!(
            matches!(verdict, charon::core::audit::Verdict::Intact { .. }),
            "{point}: {verdict:?}"
        );
    }
}

// ---------------------------------------------------------------- access requests

#[tokio::test]
async fn an_access_request_exports_exactly_what_an_erasure_would_find_and_changes_nothing() {
    let env = setup("er_access").await;
    sqlx::query("UPDATE bank_connections SET plaid_access_token = $2 WHERE id = $1")
        .bind(env.connection)
        .bind(TOKEN)
        .execute(&env.pluto.pool)
        .await
        .unwrap();
    let s = subject();
    let id = create_as(&env, KEY, RequestKind::Access, &s, "ZD-ACCESS", "alice").await;
    let p = plan_and_approve(&env, id, &s).await;
    let before = snapshot(&env.pluto.pool).await;
    let dir = tempfile::tempdir().unwrap();
    let seal = MasterKey::new(SEAL);
    let out = executor(&env, &Systems::default(), &seal, dir.path())
        .execute(id, &s, "carol", &mut |_| {})
        .await
        .unwrap();
    let ExecuteOutcome::Done(r) = out else {
        panic!("not executed: {out:?}");
    };
    assert_eq!(snapshot(&env.pluto.pool).await, before, "nothing changed");
    assert!(r.complete);
    let x = r.export.unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&x.path).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Read the archive back.
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&x.path).unwrap());
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut e, &mut text).unwrap();
        files.insert(name, text);
    }
    let manifest: serde_json::Value = serde_json::from_str(&files["manifest.json"]).unwrap();
    // What the erasure plan lists (but mentions in others' rows) is exactly
    // what was exported, table by table.
    let mut planned: BTreeMap<String, u64> = BTreeMap::new();
    for t in p.per_table.iter().filter(|t| t.action != RowAction::Redact) {
        *planned.entry(t.table.clone()).or_default() += t.rows;
    }
    let exported: BTreeMap<String, u64> = manifest["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["table"].as_str().unwrap().to_string(),
                t["rows"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(exported, planned);
    let mentions: u64 = p
        .per_table
        .iter()
        .filter(|t| t.action == RowAction::Redact)
        .map(|t| t.rows)
        .sum();
    assert_eq!(manifest["mentions_in_other_records_not_exported"], mentions);
    let users: serde_json::Value = serde_json::from_str(&files["tables/users.json"]).unwrap();
    assert_eq!(
        users[0]["full_name"], NAME,
        "the subject's own data, in clear"
    );
    let receipts: serde_json::Value = serde_json::from_str(&files["tables/receipts.json"]).unwrap();
    let ids: BTreeSet<i64> = receipts
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        [9000000001, 9000000002].into_iter().collect(),
        "not receipt 3 (someone else's)"
    );
    let conns = &files["tables/bank_connections.json"];
    assert!(conns.contains("item-erasure-test-1"));
    assert!(!conns.contains(TOKEN), "credentials are never exported");
    assert!(!conns.contains("plaid_access_token"));
    assert!(files["external.json"].contains("receipts/erasure-1.jpg"));

    // The certificate names the archive and its hash; the subject stays masked.
    let c = erasure::certificate::get(&env.console.pool, id)
        .await
        .unwrap();
    assert_eq!(c.json["request"]["kind"], "access");
    assert_eq!(c.json["totals"]["archive_sha256"], x.sha256);
    assert!(
        c.json["tables"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["action"] == "exported" || t["action"] == "mentioned (not exported)")
    );
    assert!(!c.canonical_json().to_lowercase().contains(EMAIL));
    assert!(c.markdown().starts_with("# Access request certificate"));
}

// ---------------------------------------------------------------- the CLI, end to end

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_erasure_cli_creates_plans_executes_and_certifies() {
    use charon::core::session::Role;
    let env = setup("er_cli").await;
    let ext = external(&env).await;
    let login = charon::core::operators::os_account().unwrap();
    charon::core::operators::add(&env.console.pool, "x", &login, "Officer", Role::Compliance)
        .await
        .unwrap();
    let master = [6u8; 32];
    let key = common::cli::TestOtpKey {
        public_id: "cccccbhkevbn",
        aes: [0x55; 16],
        private_id: [9, 8, 7, 6, 5, 4],
    };
    key.enroll(&env.console.pool, master, &login).await;
    let bin = common::cli::Binary::with_config(
        &env.pluto.url,
        &env.console.url,
        master,
        &ext.config_toml(),
    );
    let mut n = 0u8;
    let mut run = |args: &[&str]| {
        n += 1;
        bin.run(args, &format!("{}\n", key.otp(n)))
    };
    let who = ["--email", EMAIL, "--phone", PHONE];

    let (code, out, err) = run(&[
        "erasure", "create", "--email", EMAIL, "--phone", PHONE, "--ticket", "ZD-CLI", "--regime",
        "gdpr", "--json",
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let created: serde_json::Value = serde_json::from_str(&out).unwrap();
    let id = created["request"].as_str().unwrap().to_string();

    let mut plan_args = vec!["erasure", "plan", "--request", &id, "--json"];
    plan_args.extend(who);
    let (code, out, err) = run(&plan_args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let planned: serde_json::Value = serde_json::from_str(&out).unwrap();
    let sha = planned["sha256"].as_str().unwrap().to_string();
    assert!(
        !out.to_lowercase().contains(EMAIL),
        "no identifier in the plan output"
    );

    // The creator cannot approve their own request.
    let (code, out, err) = run(&[
        "erasure",
        "approve",
        "--request",
        &id,
        "--plan-sha256",
        &sha,
    ]);
    assert_ne!(code, Some(0), "{out}");
    assert!(err.contains("cannot approve"), "{err}");
    approve(&env.console.pool, id.parse().unwrap(), "bob", &sha)
        .await
        .unwrap();

    let mut exec_args = vec!["erasure", "execute", "--request", &id];
    exec_args.extend(who);
    let (code, out, err) = run(&exec_args);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("done; certificate sha256"), "{out}");
    assert_eq!(
        scan_for_subject(&env.pluto.pool).await,
        Vec::<String>::new()
    );

    let (code, out, _) = run(&["erasure", "show", "--request", &id, "--json"]);
    assert_eq!(code, Some(0));
    let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["state"], "done");
    assert_eq!(shown["approved_by"], "bob");
    assert_eq!(shown["steps"].as_array().unwrap().len(), 3);
    let (code, out, _) = run(&["erasure", "list", "--json"]);
    assert_eq!(code, Some(0));
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["overdue"], false);

    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = run(&[
        "erasure",
        "certificate",
        "--request",
        &id,
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let json = std::fs::read(dir.path().join(format!("{id}.json"))).unwrap();
    let stated = out.split_whitespace().next().unwrap();
    assert_eq!(
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&json)),
        stated,
        "sha256sum of the written JSON is the certificate's hash"
    );
    let md = std::fs::read_to_string(dir.path().join(format!("{id}.md"))).unwrap();
    assert!(md.contains("ZD-CLI") && md.contains(stated), "{md}");

    // Nothing left for cron.
    let (code, out, _) = run(&["erasure", "run-queue", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let q: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (q["pending"].as_u64(), q["failed"].as_u64()),
        (Some(0), Some(0))
    );
}
